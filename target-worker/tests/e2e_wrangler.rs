//! End to end under real `wrangler dev` (workerd with local KV and D1): the wasm
//! build, the D1 migrations, seeding over HTTP, and the auth and bot-cache behaviour
//! seen by a client. Each test starts its own instance on a free loopback port with
//! its own state directory, and a guard stops it on every path.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BENCH_SECRET: &str = "e2e-bench-secret";
const JWT_SECRET: &str = "e2e-jwt-secret";
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SEED: u64 = 7;
const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
/// Cold: wrangler's start-up plus its double rebuild check; the wasm is built before.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn wrangler_bin() -> PathBuf {
    let bin = repo_root().join("node_modules/.bin/wrangler");
    assert!(bin.exists(), "{} is missing: run scripts/setup (it runs npm ci) first", bin.display());
    bin
}

/// Builds the worker once per test binary, so a build failure shows its own output
/// instead of a wrangler time-out.
fn ensure_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/build-worker"))
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("cannot run scripts/build-worker: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/build-worker failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wrangler(args: &[&str]) -> Command {
    let mut cmd = Command::new(wrangler_bin());
    cmd.args(args).current_dir(repo_root()).env("WRANGLER_SEND_METRICS", "false").env("CI", "1");
    cmd
}

/// A running `wrangler dev`; dropping it stops wrangler and its workerd children.
struct WranglerDev {
    child: Child,
    /// Kills the group if this test process dies without dropping the guard (a
    /// SIGKILL of `cargo test`): `sh` in the group reads a pipe only this
    /// process writes, and kills the group at its end of file (as
    /// `harness/src/bench/servers.rs::watchdog` does for the bench).
    watchdog: Child,
    _lifeline: std::io::PipeWriter,
    base: String,
    log: PathBuf,
    state: PathBuf,
}

impl WranglerDev {
    fn start(name: &str, env: Option<&str>) -> WranglerDev {
        ensure_built();
        let state = repo_root().join("target/e2e").join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let state_arg = state.to_str().unwrap();
        let env_args: Vec<&str> = env.map(|e| vec!["--env", e]).unwrap_or_default();

        let mut migrate = wrangler(&["d1", "migrations", "apply", "DB", "--local", "--persist-to", state_arg]);
        let out = migrate.args(&env_args).output().expect("run wrangler d1 migrations apply");
        assert!(
            out.status.success(),
            "migrations failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port().to_string();
        let inspector = free_port().to_string();
        let log = state.join("wrangler.log");
        let log_file = File::create(&log).unwrap();
        let bench = format!("BENCH_SECRET:{BENCH_SECRET}");
        let jwt = format!("JWT_SECRET:{JWT_SECRET}");
        let encryption = format!("ENCRYPTION_KEY:{ENCRYPTION_KEY}");
        let mut cmd = wrangler(&[
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &port,
            "--inspector-port",
            &inspector,
            "--local",
            "--persist-to",
            state_arg,
            "--show-interactive-dev-session=false",
            "--var",
            &bench,
            "--var",
            &jwt,
            "--var",
            &encryption,
        ]);
        cmd.args(&env_args).stdin(Stdio::null()).stdout(log_file.try_clone().unwrap()).stderr(log_file);
        // Its own process group, so the guard can stop workerd along with wrangler.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn wrangler dev");
        let (reader, lifeline) = std::io::pipe().expect("a pipe");
        let mut watchdog = Command::new("sh");
        watchdog.args(["-c", "read -r _; kill -KILL 0"]).stdin(reader).stdout(Stdio::null()).stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut watchdog, child.id() as i32);
        let watchdog = watchdog.spawn().expect("spawn the watchdog");
        let base = format!("http://127.0.0.1:{port}");
        let mut dev = WranglerDev { child, watchdog, _lifeline: lifeline, base, log, state };
        dev.wait_ready();
        dev
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(200) = http_status(&format!("{}/health", self.base)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wrangler dev exited ({status}) before it was ready:\n{}", self.log_tail());
            }
            assert!(Instant::now() < deadline, "wrangler dev not ready after {READY_TIMEOUT:?}:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group we created for this child.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // workerd may outlive wrangler's exit; make sure the whole group is gone.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = self.watchdog.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// `GET url` over a plain socket, returning the status code: a readiness probe
/// that needs no async runtime inside the synchronous start-up.
fn http_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {buf:?}")))
}

struct Reply {
    status: u16,
    x_cache: String,
    server_timing: String,
    body: serde_json::Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request to wrangler dev");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (x_cache, server_timing) = (header("x-cache"), header("server-timing"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
    Reply { status, x_cache, server_timing, body }
}

async fn seed(client: &reqwest::Client, base: &str) {
    let r = send(
        client
            .post(format!("{base}/__bench/seed"))
            .header("x-bench-secret", BENCH_SECRET)
            .body(format!(r#"{{"users":3,"seed":{SEED}}}"#)),
    )
    .await;
    assert_eq!(r.status, 200, "seed: {}", r.body);
}

#[tokio::test(flavor = "current_thread")]
async fn cache_on_authenticates_and_caches_bot_verdicts() {
    let dev = WranglerDev::start("cache-on", None);
    let base = dev.base.as_str();
    let client = reqwest::Client::new();
    let me = format!("{base}/auth/me");

    // Bench routes do not exist without the secret.
    let r = send(client.post(format!("{base}/__bench/seed")).body(r#"{"users":1,"seed":1}"#)).await;
    assert_eq!(r.status, 404);
    let r = send(
        client.post(format!("{base}/__bench/seed")).header("x-bench-secret", "wrong").body(r#"{"users":1,"seed":1}"#),
    )
    .await;
    assert_eq!(r.status, 404);
    seed(&client, base).await;
    let u = bench_seed::seeded_user(BENCH_SECRET, SEED, 1);

    let r =
        send(client.get(&me).header("user-agent", BROWSER_UA).header("cookie", format!("session={}", u.session_id)))
            .await;
    assert_eq!(r.status, 200, "session: {}", r.body);
    assert_eq!(r.body["user"]["id"], u.user_id.as_str());
    println!("session  -> {} x-cache: {} | server-timing: {}", r.status, r.x_cache, r.server_timing);

    let r = send(client.get(&me).header("user-agent", BROWSER_UA).bearer_auth(&u.api_key)).await;
    assert_eq!(r.status, 200, "api key: {}", r.body);
    assert_eq!(r.body["user"]["id"], u.user_id.as_str());
    println!("api key  -> {} x-cache: {}", r.status, r.x_cache);

    let t = send(
        client
            .post(format!("{base}/auth/token"))
            .header("user-agent", BROWSER_UA)
            .header("content-type", "application/json")
            .header("cookie", format!("session={}", u.session_id)),
    )
    .await;
    assert_eq!(t.status, 200, "token: {}", t.body);
    let token = t.body["token"].as_str().unwrap().to_owned();
    let r = send(client.get(&me).header("user-agent", BROWSER_UA).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "jwt: {}", r.body);
    assert_eq!(r.body["auth"], "jwt");
    println!("jwt      -> {} x-cache: {}", r.status, r.x_cache);

    let r = send(client.get(&me).bearer_auth(format!("{token}x"))).await;
    assert_eq!(r.status, 401, "tampered jwt: {}", r.body);

    let r = send(client.get(&me).header("user-agent", "Googlebot/2.1 (+http://www.google.com/bot.html)")).await;
    assert_eq!((r.status, r.body["error"].as_str()), (401, Some("bot access is not allowed")));
    // reqwest sends no User-Agent unless told to.
    let r = send(client.get(&me)).await;
    assert_eq!((r.status, r.body["error"].as_str()), (401, Some("bot access is not allowed")));

    // A User-Agent this instance has never seen: miss, then (once the wait_until
    // write has landed) hit.
    let ua = format!("{BROWSER_UA} e2e/{}", std::process::id());
    let cookie = format!("session={}", u.session_id);
    let first = send(client.get(&me).header("user-agent", &ua).header("cookie", &cookie)).await;
    println!("repeated UA #1 -> x-cache: {} | server-timing: {}", first.x_cache, first.server_timing);
    assert_eq!(first.x_cache, "bot=miss");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 1;
    loop {
        n += 1;
        let again = send(client.get(&me).header("user-agent", &ua).header("cookie", &cookie)).await;
        assert_eq!(again.status, 200);
        if again.x_cache == "bot=hit" {
            println!("repeated UA #{n} -> x-cache: {} | server-timing: {}", again.x_cache, again.server_timing);
            assert!(again.server_timing.contains("bot;desc=hit"), "{}", again.server_timing);
            break;
        }
        assert_eq!(again.x_cache, "bot=miss");
        assert!(Instant::now() < deadline, "the bot verdict never became a hit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The per-request override, with the secret, turns the layer off.
    let r = send(
        client
            .get(&me)
            .header("user-agent", &ua)
            .header("cookie", &cookie)
            .header("x-bench-secret", BENCH_SECRET)
            .header("x-bench-cache", "off"),
    )
    .await;
    assert_eq!(r.x_cache, "bot=off");

    // Latency profiles through the real Workers adapter: chosen per request with
    // the secret, reported by /health, refused by name when unknown; every
    // response counts its backend operations.
    let profiled = |path: &str, profile: &str| {
        client
            .get(format!("{base}{path}"))
            .header("user-agent", BROWSER_UA)
            .header("x-bench-secret", BENCH_SECRET)
            .header("x-bench-profile", profile)
    };
    let r = send(profiled("/health", "edge-far-from-primary")).await;
    assert_eq!(r.body["latency_profile"]["name"], "edge-far-from-primary");
    assert_eq!(r.body["latency_profile"]["modelled"], true);
    assert_eq!(r.body["anonymous_user_write"], true);
    let r = send(profiled("/health", "atlantis")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let resp = profiled("/auth/me", "edge-near-primary")
        .header("cookie", format!("session={}", u.session_id))
        .header("x-bench-cache", "off")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ops = resp.headers().get("x-ops").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    // The session, then the user's settings.
    assert_eq!(ops, "kv-read=0,kv-write=0,d1-read=2,d1-write=0,kv-delete=0", "{ops}");

    // Bad input through the real Workers adapter.
    let r = send(
        client.post(format!("{base}/__bench/seed")).header("x-bench-secret", BENCH_SECRET).body(vec![b' '; 70 * 1024]),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r =
        send(client.post(format!("{base}/__bench/seed")).header("x-bench-secret", BENCH_SECRET).body("{nope")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = send(client.delete(&me).header("user-agent", BROWSER_UA)).await;
    assert_eq!(r.status, 405);
    let r = send(client.get(format!("{base}/does-not-exist")).header("user-agent", BROWSER_UA)).await;
    assert_eq!(r.status, 404);
}

/// Status and raw body of a GET, the part a client sees.
async fn raw_get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let req = headers.iter().fold(client.get(url), |r, (k, v)| r.header(*k, *v));
    let resp = req.send().await.expect("request to wrangler dev");
    let x_cache = resp.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (resp.status().as_u16(), resp.text().await.unwrap(), x_cache)
}

const READ_ROUTES: &[&str] = &[
    "/models",
    "/models?capability=vision",
    "/models?type=text-embeddings",
    "/models/capabilities",
    "/models/mistral/mistral-large-latest",
    "/models/openai/gpt-4.1",
    "/models/openai/no-such-model",
    "/models?capability=telepathy",
    "/user/settings",
    "/user/providers",
    "/auth/me",
];

/// Cache on and the `cache-off` environment, side by side, seeded alike: the same
/// bytes for every read route (cold, warm, and under each KV fault), read-your-writes
/// and the filtered-list regression over real HTTP.
#[tokio::test(flavor = "current_thread")]
async fn cache_on_and_cache_off_answer_alike() {
    let off = WranglerDev::start("cache-off", Some("cache-off"));
    let on = WranglerDev::start("cache-on-ab", None);
    let client = reqwest::Client::new();
    let health = send(client.get(format!("{}/health", off.base))).await;
    assert_eq!(health.body["cache"]["mode"], "off", "{}", health.body);
    seed(&client, &off.base).await;
    seed(&client, &on.base).await;
    let u = bench_seed::seeded_user(BENCH_SECRET, SEED, 2);
    let cookie = format!("session={}", u.session_id);
    let as_user = [("user-agent", BROWSER_UA), ("content-type", "application/json"), ("cookie", cookie.as_str())];

    for i in 0..3 {
        let r =
            send(client.get(format!("{}/auth/me", off.base)).header("user-agent", BROWSER_UA).bearer_auth(&u.api_key))
                .await;
        assert_eq!(r.status, 200, "{}", r.body);
        println!("cache-off request {} -> x-cache: {} | server-timing: {}", i + 1, r.x_cache, r.server_timing);
        assert_eq!(r.x_cache, "bot=off");
        assert!(!r.server_timing.contains("kv;"), "{}", r.server_timing);
    }

    let fault = |f: &'static str| [("x-bench-secret", BENCH_SECRET), ("x-bench-kv-fault", f)];
    for route in READ_ROUTES {
        for who in [&as_user[..], &[("user-agent", BROWSER_UA)][..]] {
            let reference = raw_get(&client, &format!("{}{route}", off.base), who).await;
            assert!(!reference.2.contains("hit") && !reference.2.contains("miss"), "{route}: {}", reference.2);
            let mut seen = Vec::new();
            for pass in 0..2 {
                let got = raw_get(&client, &format!("{}{route}", on.base), who).await;
                assert_eq!((got.0, &got.1), (reference.0, &reference.1), "{route} pass {pass}");
                seen.push(got.2);
            }
            for f in ["error", "garbage", "slow:1500"] {
                let headers: Vec<(&str, &str)> = who.iter().copied().chain(fault(f)).collect();
                let got = raw_get(&client, &format!("{}{route}", on.base), &headers).await;
                assert_eq!((got.0, &got.1), (reference.0, &reference.1), "{route} with KV fault {f}");
                seen.push(got.2);
            }
            println!("{route:<40} x-cache: {}", seen.join(" | "));
        }
    }

    // The seed's bug: a filtered list cached under the unfiltered key.
    let full = raw_get(&client, &format!("{}/models", off.base), &as_user).await.1;
    let u3 = bench_seed::seeded_user(BENCH_SECRET, SEED, 0);
    let cookie3 = format!("session={}", u3.session_id);
    let as_u3 = [("user-agent", BROWSER_UA), ("cookie", cookie3.as_str())];
    let full3 = raw_get(&client, &format!("{}/models", off.base), &as_u3).await.1;
    raw_get(&client, &format!("{}/models?capability=vision", on.base), &as_u3).await;
    let after = raw_get(&client, &format!("{}/models", on.base), &as_u3).await;
    assert_eq!(after.1, full3, "GET /models after a filtered GET must be the full list");
    assert_ne!(full, "");

    // Read-your-writes: enable a provider, then the very next list shows it.
    let providers = send(client.get(format!("{}/user/providers", on.base)).headers(header_map(&as_user))).await;
    let disabled = providers.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["enabled"] == false)
        .map(|p| p["provider_id"].as_str().unwrap().to_owned())
        .expect("a disabled provider");
    let before = raw_get(&client, &format!("{}/models", on.base), &as_user).await;
    assert!(!before.1.contains(&format!("\"provider\":\"{disabled}\"")));
    for (method, path, body) in [
        ("POST", "/user/store-provider-api-key", format!(r#"{{"providerId":"{disabled}","apiKey":"sk-e2e"}}"#)),
        ("PUT", "/user/settings", r#"{"nickname":"e2e"}"#.to_owned()),
        ("POST", "/user/sync-providers", String::new()),
    ] {
        let warm = raw_get(&client, &format!("{}/models", on.base), &as_user).await;
        let req = client
            .request(method.parse().unwrap(), format!("{}{path}", on.base))
            .headers(header_map(&as_user))
            .body(body);
        let r = send(req).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let next = raw_get(&client, &format!("{}/models", on.base), &as_user).await;
        println!("read-your-writes {path:<30} before: {} after: {}", warm.2, next.2);
        assert!(next.2.contains("user-models=miss"), "{path}: the write must invalidate ({})", next.2);
        assert!(next.1.contains(&format!("\"provider\":\"{disabled}\"")), "{path}: list lacks {disabled}");
    }
    let settings = send(client.get(format!("{}/user/settings", on.base)).headers(header_map(&as_user))).await;
    assert_eq!(settings.body["nickname"], "e2e");
}

fn header_map(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap()))
        .collect()
}

/// Sends a whole `total`-byte chunked body (64 KiB chunks) with `headers` and
/// returns the status line.
fn chunked_upload_status(base: &str, method: &str, path: &str, headers: &str, total: usize) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let host = base.strip_prefix("http://").expect("http URL");
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n{headers}\r\n")?;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        write!(s, "{:x}\r\n", chunk.len())?;
        s.write_all(&chunk)?;
        s.write_all(b"\r\n")?;
        sent += chunk.len();
    }
    s.write_all(b"0\r\n\r\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn faults_and_limits_under_workerd() {
    let dev = WranglerDev::start("faults", None);
    let base = dev.base.as_str();
    let client = reqwest::Client::new();
    seed(&client, base).await;
    let u = bench_seed::seeded_user(BENCH_SECRET, SEED, 2);
    let session = format!("session={}", u.session_id);

    // Without the secret the bench routes are unknown routes, whatever the method.
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::POST] {
        let r = send(client.request(method.clone(), format!("{base}/__bench/reset"))).await;
        println!("{method} /__bench/reset without the secret -> {}", r.status);
        assert_eq!(r.status, 404, "{method}");
        assert_eq!(r.body["error"], "not found");
    }

    // A failed invalidation is a 503, never a 200 over a stale list.
    let list = || client.get(format!("{base}/models")).header("user-agent", BROWSER_UA).header("cookie", &session);
    send(list()).await;
    assert_eq!(send(list()).await.x_cache, "bot=hit,user-models=hit");
    let save = |fault: &str| {
        client
            .post(format!("{base}/user/sync-providers"))
            .header("user-agent", BROWSER_UA)
            .header("content-type", "application/json")
            .header("cookie", &session)
            .header("x-bench-secret", BENCH_SECRET)
            .header("x-bench-kv-fault", fault)
    };
    let resp = save("write-error").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(send(list()).await.x_cache, "bot=hit,user-models=bypass");
    // Two saves within a second under KV's per-key write limit both land.
    assert_eq!(send(save("write-limit")).await.status, 200);
    assert_eq!(send(save("write-limit")).await.status, 200);
    assert_eq!(send(list()).await.x_cache, "bot=hit,user-models=miss");

    // Repeated KV failures open the breaker for fault-injected requests only.
    let faulty = || list().header("x-bench-secret", BENCH_SECRET).header("x-bench-kv-fault", "error");
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let r = send(faulty()).await;
        assert_eq!(r.status, 200);
        outcomes.push(r.x_cache);
    }
    assert_eq!(outcomes[0], "bot=error,user-models=error");
    assert_eq!(outcomes[3], "bot=bypass,user-models=bypass", "{outcomes:?}");
    assert_eq!(send(list()).await.x_cache, "bot=hit,user-models=hit");

    // A 10 MB chunked body (no Content-Length), sent whole as clients do, is
    // refused with 413 (issue 28, finding 10): answered before the upload ended,
    // wrangler's proxy turned the 413 into "worker restarted mid-request" (503),
    // so the worker drains a body up to 32 MiB first. Then: the next request
    // answers (after an upload cut short, requests on other keep-alive
    // connections to wrangler's proxy were seen to hang).
    let json = format!("Content-Type: application/json\r\nUser-Agent: {BROWSER_UA}\r\n");
    for (method, path, headers) in
        [("POST", "/auth/token", json.clone()), ("PUT", "/user/settings", format!("{json}Cookie: {session}\r\n"))]
    {
        let status = chunked_upload_status(base, method, path, &headers, 10 << 20).expect("chunked upload");
        assert!(status.contains(" 413"), "a whole chunked 10 MB {method} {path}: {status}");
        println!("chunked 10 MB {method} {path} -> {status}");
    }
    assert_eq!(send(list()).await.status, 200);
}

/// The strategies' correctness suite under workerd (issue 15), each strategy chosen
/// per request with `x-bench-strategy` and a user of its own: the bodies cache-off
/// serves (cold, warm, under KV faults), a hit on the second read (the wasm bulk
/// read and `cacheTtl` paths included), read-your-writes, another user's list left
/// alone, and a failed invalidation refused (or, for `original`, ignored as its
/// contract says).
#[tokio::test(flavor = "current_thread")]
async fn every_strategy_under_workerd() {
    let dev = WranglerDev::start("strategies", None);
    let base = dev.base.as_str();
    let client = reqwest::Client::new();
    let r = send(
        client
            .post(format!("{base}/__bench/seed"))
            .header("x-bench-secret", BENCH_SECRET)
            .body(format!(r#"{{"users":{},"seed":{SEED}}}"#, target_worker::Strategy::ALL.len() + 1)),
    )
    .await;
    assert_eq!(r.status, 200, "seed: {}", r.body);
    let bystander = bench_seed::seeded_user(BENCH_SECRET, SEED, target_worker::Strategy::ALL.len() as u32);
    let by_cookie = format!("session={}", bystander.session_id);
    for (i, strategy) in target_worker::Strategy::ALL.into_iter().enumerate() {
        let name = strategy.name();
        let u = bench_seed::seeded_user(BENCH_SECRET, SEED, i as u32);
        let cookie = format!("session={}", u.session_id);
        let bench = [("x-bench-secret", BENCH_SECRET), ("x-bench-strategy", name)];
        let with =
            |who: &[(&'static str, &str)], extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
                who.iter().chain(bench.iter()).chain(extra.iter()).map(|(k, v)| (*k, v.to_string())).collect()
            };
        let get = |path: String, headers: Vec<(&'static str, String)>| {
            let client = client.clone();
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                raw_get(&client, &format!("{base}{path}"), &h).await
            }
        };
        let as_user = [("user-agent", BROWSER_UA), ("content-type", "application/json"), ("cookie", cookie.as_str())];
        let as_bystander = [("user-agent", BROWSER_UA), ("cookie", by_cookie.as_str())];
        for route in ["/models", "/models?capability=vision", "/models/openai/gpt-4.1", "/models/openai/no-such-model"]
        {
            let off = get(route.into(), with(&as_user, &[("x-bench-cache", "off")])).await;
            for pass in 0..2 {
                let on = get(route.into(), with(&as_user, &[])).await;
                assert_eq!((on.0, &on.1), (off.0, &off.1), "{name} {route} pass {pass}");
                if pass == 1 && route.starts_with("/models?") {
                    assert!(on.2.contains("user-models=hit"), "{name} {route}: {}", on.2);
                }
            }
            for fault in ["error", "garbage"] {
                let on = get(route.into(), with(&as_user, &[("x-bench-kv-fault", fault)])).await;
                assert_eq!((on.0, &on.1), (off.0, &off.1), "{name} {route} under {fault}");
            }
        }
        let by_before = get("/models".into(), with(&as_bystander, &[])).await;
        let providers =
            send(client.get(format!("{base}/user/providers")).headers(header_map(&with_refs(&with(&as_user, &[])))))
                .await;
        let disabled: Vec<String> = providers.body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["enabled"] == false)
            .map(|p| p["provider_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(disabled.len() >= 2, "{name}: two disabled providers needed: {}", providers.body);
        let store = |provider: &str, extra: &[(&'static str, &'static str)]| {
            client
                .post(format!("{base}/user/store-provider-api-key"))
                .headers(header_map(&with_refs(&with(&as_user, extra))))
                .body(format!(r#"{{"providerId":"{provider}","apiKey":"sk-e2e"}}"#))
        };
        let shows = |body: &str, provider: &str| body.contains(&format!("\"provider\":\"{provider}\""));
        // Read-your-writes.
        assert_eq!(send(store(&disabled[0], &[])).await.status, 200, "{name}");
        let next = get("/models".into(), with(&as_user, &[])).await;
        assert!(shows(&next.1, &disabled[0]), "{name}: the next read lacks {} ({})", disabled[0], next.2);
        if strategy.warms_on_write() {
            // The fill runs after the write's response (waitUntil): hit soon after.
            let mut hit = false;
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let r = get("/models?capability=vision".into(), with(&as_user, &[])).await;
                hit |= r.2.contains("user-models=hit");
            }
            assert!(hit, "warm: the list stored on write was never hit");
        }
        // Another user's list is untouched.
        let by_after = get("/models".into(), with(&as_bystander, &[])).await;
        assert_eq!(by_after.1, by_before.1, "{name}: the bystander's list changed");
        // A write whose invalidation cannot land. Wait out KV's per-key second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        get("/models".into(), with(&as_user, &[])).await;
        let refused = send(store(&disabled[1], &[("x-bench-kv-fault", "write-error")])).await;
        let after = get("/models".into(), with(&as_user, &[])).await;
        if strategy.refuses_failed_invalidation() {
            assert_eq!(refused.status, 503, "{name}: {}", refused.body);
            assert!(shows(&after.1, &disabled[1]), "{name}: stale after a refused write ({})", after.2);
        } else {
            assert_eq!(refused.status, 200, "original ignores a failed delete");
            assert!(!shows(&after.1, &disabled[1]), "original: the stale list its contract admits");
        }
        println!("{name:<22} ok: bodies, hits, read-your-writes, isolation, failed invalidation");
    }
}

fn with_refs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
