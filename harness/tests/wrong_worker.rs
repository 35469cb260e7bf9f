//! A worker of the tests' own, wrong on purpose, under real `wrangler dev`
//! (`tests/wrong-cache-worker/`, JavaScript: it speaks none of this project's
//! bench protocol): its KV cache stores a filtered list under the user's
//! unfiltered key, as the seed's original does. Run as cache off (no KV binding)
//! against cache on, `harness ab` must report the wrong answers at the rate the
//! worker itself counted, show a diff, and fail its gate.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `wrangler dev` of the wrong-cache worker; dropping it stops its process
/// group (wrangler and workerd), on every path.
struct Dev {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Dev {
    fn start(env: Option<&str>, state: &Path) -> Dev {
        let wrangler = repo().join("node_modules/.bin/wrangler");
        assert!(wrangler.is_file(), "{} is missing: run scripts/setup first", wrangler.display());
        let port = free_port();
        let log = state.with_extension("log");
        let out = File::create(&log).unwrap();
        let mut cmd = Command::new(wrangler);
        cmd.current_dir(repo().join("harness/tests/wrong-cache-worker"))
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string(), "--local", "--persist-to"])
            .arg(state)
            .arg("--show-interactive-dev-session=false")
            .args(env.map(|e| vec!["--env", e]).unwrap_or_default())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut dev = Dev { child: cmd.spawn().unwrap(), url: format!("http://127.0.0.1:{port}"), log };
        dev.wait_ready();
        dev
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while get(&format!("{}/status", self.url)).is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("wrangler dev exited ({s}):\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "not ready:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: signals the process group this test created for its own child.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The body of `GET url`, `None` unless it answered 200.
fn get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

const SCENARIO: &str = r#"
name = "wrong-cache"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 40
duration = "6s"
max_in_flight = 64
[lists.user]
values = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13", "u14", "u15", "u16", "u17", "u18", "u19", "u20", "u21", "u22", "u23", "u24"]
[lists.model]
values = ["m0", "m2", "m4", "m6", "m8", "m10"]
[[step]]
name = "list"
weight = 3
tags = ["model-list"]
request = { path = "/models?user={{list.user}}" }
expect = { status = 200 }
[[step]]
name = "coding"
tags = ["model-list"]
request = { path = "/models/coding?user={{list.user}}" }
expect = { status = 200 }
[[step]]
name = "config"
tags = ["model-config"]
request = { path = "/models/{{list.model}}?user={{list.user}}" }
expect = { status = [200, 404] }
"#;

#[test]
fn a_worker_whose_cache_changes_answers_is_reported_at_its_true_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let off = Dev::start(Some("nocache"), &tmp.path().join("off"));
    let on = Dev::start(None, &tmp.path().join("on"));
    let file = tmp.path().join("wrong-cache.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let out = tmp.path().join("out");
    let report = tmp.path().join("report");
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["ab", file.to_str().unwrap(), "--a", &off.url, "--b", &on.url])
        .args(["--a-label", "cache-off", "--b-label", "cache-on", "--target-kind", "http", "--out"])
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}");
    assert_eq!(o.status.code(), Some(1), "the gate fails on wrong answers:\n{}", String::from_utf8_lossy(&o.stderr));

    let truth: serde_json::Value = serde_json::from_str(&get(&format!("{}/__truth", on.url)).unwrap()).unwrap();
    let off_truth: serde_json::Value = serde_json::from_str(&get(&format!("{}/__truth", off.url)).unwrap()).unwrap();
    assert_eq!(off_truth["wrong"], 0, "without the cache every answer is right");
    let result = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(result).unwrap()).unwrap();
    let all = &doc["arms"][1]["answers"]["series"]["*"];
    println!("worker's count: {truth}; harness: {all}");
    assert_eq!(all["no_answer"], 0, "{all}");
    assert_eq!(all["write_between"], 0, "{all}");
    // Each wrong answer of the cached arm is one differing pair: the same count.
    assert_eq!(all["mismatched"], truth["wrong"], "{all} vs {truth}");
    assert!(all["mismatched"].as_u64().unwrap() > 0, "{all}");
    assert!(stdout.contains("WRONG ANSWERS"), "{stdout}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<pre class=\"diff\">") && html.contains("+++ arm B"), "the report shows a diff");
}
