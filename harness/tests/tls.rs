//! https as a new user meets it: a loopback server with a self-signed
//! certificate (what `wrangler dev --local-protocol https` serves). Untrusted, the
//! run stops before any load with the TLS cause named; trusted by `--ca-cert`,
//! by `SSL_CERT_FILE` or skipped with `--insecure`, it runs.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use harness::result::ResultDoc;

fn harness() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    // The machine's own certificate settings are not the test's.
    c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    c
}

struct Https {
    server: TestServer,
    dir: tempfile::TempDir,
}

impl Https {
    fn start() -> Https {
        let identity = self_signed();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), &identity.0).unwrap();
        std::fs::write(dir.path().join("s.toml"), SMALL).unwrap();
        Https { server: spawn_tls(Behaviour::Delay(Duration::from_millis(1)), &identity), dir }
    }

    fn url(&self) -> String {
        format!("https://{}", self.server.addr)
    }

    fn run(&self, extra: &[&str], env: &[(&str, &std::path::Path)]) -> std::process::Output {
        let out = self.dir.path().join("out");
        let mut cmd = harness();
        cmd.args(["run", "--quiet", "--threads", "1", "--target", &self.url()])
            .arg(self.dir.path().join("s.toml"))
            .arg("--out")
            .arg(&out)
            .args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn result(&self) -> ResultDoc {
        let json = std::fs::read_dir(self.dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("a result file");
        ResultDoc::read(&json).unwrap()
    }
}

#[test]
fn an_untrusted_certificate_stops_the_run_at_once_and_says_tls() {
    let https = Https::start();
    let started = Instant::now();
    let out = https.run(&[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(stderr.contains("TLS handshake") && stderr.contains("certificate"), "{stderr}");
    assert!(
        stderr.contains("--ca-cert") && stderr.contains("--insecure") && stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );
    assert!(
        !https.dir.path().join("out").exists() || std::fs::read_dir(https.dir.path().join("out")).unwrap().count() == 0
    );
}

#[test]
fn a_trusted_certificate_runs_by_ca_cert_by_ssl_cert_file_or_insecure() {
    let _x = exclusive();
    let https = Https::start();
    let cert = https.cert();
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a std::path::Path)>);
    let cases: [Case; 3] = [
        ("--ca-cert", vec!["--ca-cert", cert.to_str().unwrap()], vec![]),
        ("SSL_CERT_FILE", vec![], vec![("SSL_CERT_FILE", cert.as_path())]),
        ("--insecure", vec!["--insecure"], vec![]),
    ];
    for (name, args, env) in cases {
        let _ = std::fs::remove_dir_all(https.dir.path().join("out"));
        let out = https.run(&args, &env);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let doc = https.result();
        let all = doc.all().unwrap();
        assert_eq!((all.requests, all.errors), (50, 0), "{name}");
        assert_eq!(doc.metadata.load["http_client"], "hyper", "{name}: the lean path speaks https");
    }
    // reqwest is given the same trust.
    let _ = std::fs::remove_dir_all(https.dir.path().join("out"));
    let out = https.run(&["--ca-cert", cert.to_str().unwrap(), "--http-client", "reqwest"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(https.result().all().unwrap().requests, 50);
}

#[test]
fn a_ca_cert_that_is_no_certificate_is_bad_input() {
    let https = Https::start();
    let bogus = https.dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let out = https.run(&["--ca-cert", bogus.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bogus.pem") && stderr.contains("no certificate"), "{stderr}");
}

#[test]
fn an_http_port_asked_for_https_is_named_as_such() {
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SMALL).unwrap();
    let out = harness()
        .args(["run", "--quiet", "--target", &format!("https://{}", server.addr)])
        .arg(dir.path().join("s.toml"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("TLS handshake") && stderr.contains("http:// port"), "{stderr}");
}

/// A handshake that fails during a run is an error of kind `tls`, not `connect`
/// (the client asked directly: the preflight stops a run before it).
#[test]
fn a_failed_handshake_is_an_error_of_kind_tls() {
    let https = Https::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    let failure = local.block_on(&rt, async {
        let client = harness::client::HttpClient::new(
            &https.url(),
            1,
            Duration::from_secs(5),
            harness::client::ClientKind::Auto,
            &harness::client::TlsOptions::default(),
        )
        .unwrap();
        let req = harness::client::Request {
            method: "GET",
            path: "/x",
            headers: &[],
            body: None,
            keep_body: false,
            keep_headers: &[],
        };
        client.send(req).await.unwrap_err()
    });
    assert_eq!(failure.kind, harness::client::ErrorKind::Tls, "{}", failure.message);
    assert!(failure.message.contains("certificate"), "{}", failure.message);
}

/// The set-up calls (here `harness seed`) trust what the measured requests trust:
/// `--ca-cert` and `SSL_CERT_FILE`; without either the certificate is refused.
#[test]
fn set_up_calls_trust_the_same_certificates_as_the_run() {
    let _x = exclusive();
    let identity = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &identity.0).unwrap();
    let log = common::FullLog::default();
    let server = spawn_tls(Behaviour::BenchProtocol { log: log.clone() }, &identity);
    let url = format!("https://{}", server.addr);
    let seed = |extra: &[&str], env: Option<&std::path::Path>| {
        let mut cmd = harness();
        cmd.args(["seed", "--target", &url, "--bench-secret", "s", "--users", "3", "--seed", "9"]).args(extra);
        cmd.env_remove("SSL_CERT_FILE");
        if let Some(file) = env {
            cmd.env("SSL_CERT_FILE", file);
        }
        cmd.output().unwrap()
    };
    let untrusted = seed(&[], None);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("--ca-cert") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(log.lock().unwrap().is_empty(), "nothing reached the server over an untrusted connection");
    for out in [seed(&["--ca-cert", cert.to_str().unwrap()], None), seed(&[], Some(&cert)), seed(&["--insecure"], None)]
    {
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "one seeding call per trusted run: {calls:?}");
    assert!(calls.iter().all(|c| c.1 == "/__bench/seed" && c.3.contains("\"seed\":9")));
}
