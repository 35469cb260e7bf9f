//! Real loopback HTTP servers with known behaviour, for the harness's tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// (path, User-Agent) of every request a `Store` server answered.
pub type RequestLog = Arc<Mutex<Vec<(String, String)>>>;
/// Key → (value before the last write, value now).
pub type StoreValues = Arc<Mutex<std::collections::HashMap<String, (String, String)>>>;

/// One second at 50 it/s of one GET: the smallest scenario worth a run.
pub const SMALL: &str = r#"
name = "small"
[load]
executor = "constant-arrival-rate"
rate = 50
duration = "1s"
[[step]]
name = "get"
request = { path = "/x" }
"#;

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// A plain API: see [`plain`].
    Plain { log: FullLog },
    /// A plain API with the worker's seeding routes: see [`plain`].
    BenchProtocol { log: FullLog },
    /// Answers every request after exactly this long.
    Delay(Duration),
    /// Answers after `base`; once every `period`, starting `first` after the first
    /// request arrives, stops answering for `stall` (requests wait until it ends).
    Stall { base: Duration, period: Duration, first: Duration, stall: Duration },
    /// One request at a time, each taking this long: a fixed capacity.
    Serial(Duration),
    /// Always this status.
    Status(u16),
    /// `/token` returns `{"token":"t-123"}`; `/me` answers 200 only to
    /// `authorization: Bearer t-123`, else 401.
    Auth,
    /// As `Auth`, but the first `failures` requests to `/token` answer 503.
    FlakyAuth { failures: Arc<std::sync::atomic::AtomicU64> },
    /// Accepts connections and closes them without answering.
    Close,
    /// Known effects for A/B tests: `median` times a shape drawn per request
    /// (uniform 0.8–1.2), every `tail_every`-th request (0: none) multiplied by 6,
    /// plus `drift` per second since the first request. The tail is counted, not
    /// drawn, so two servers have exactly the same tail share.
    Shaped { median: Duration, tail_every: u64, drift: Duration, served: Arc<std::sync::atomic::AtomicU64> },
    /// A key-value store: `PUT /kv/<key>` stores the body, `GET /kv/<key>` returns
    /// it — or, when `stale`, the value before the last write (a cache that was not
    /// invalidated). Every request's path and User-Agent is logged.
    Store {
        stale: bool,
        log: Arc<Mutex<Vec<(String, String)>>>,
        values: Arc<Mutex<std::collections::HashMap<String, (String, String)>>>,
    },
    /// See [`models`]: a model API, with the seed's cache bug when `cached`.
    Models { cached: bool, state: Arc<ModelsState> },
}

/// What a [`Behaviour::Models`] server served, counted by the server itself: the
/// true rate of wrong answers, to hold the harness's measured rate against.
#[derive(Default, Debug)]
pub struct ModelsState {
    /// The cache (when the server has one): user → the list last computed for
    /// them, whatever its filter — the seed's per-user list bug.
    cache: Mutex<std::collections::HashMap<String, Vec<u32>>>,
    /// Answers served, and those that differ from the right answer.
    pub served: std::sync::atomic::AtomicU64,
    pub wrong: std::sync::atomic::AtomicU64,
}

/// The models a user may use: every model `0..10` but those whose number
/// matches the user's last digit.
fn models_of(user: &str) -> Vec<u32> {
    let last = user.bytes().last().map_or(0, |b| u32::from(b % 10));
    (0..10).filter(|m| *m != last).collect()
}

/// A small model API with the seed's cache bug when `cached`: `GET
/// /models?user=U` lists U's models; `GET /models/<n>?user=U` answers the model
/// (404 if U may not use it) and, with the cache, stores the filtered list it
/// computed — one model — under U's unfiltered key, where the next list is read
/// from: that list then has one model, and other models answer 404.
async fn models(req: Request<hyper::body::Incoming>, cached: bool, state: &ModelsState) -> Response<Full<Bytes>> {
    use std::sync::atomic::Ordering;
    let path = req.uri().path().to_owned();
    let user = req.uri().query().and_then(|q| q.strip_prefix("user=")).unwrap_or("anon").to_owned();
    let right = models_of(&user);
    let mut cache = state.cache.lock().unwrap();
    let known = if cached { cache.get(&user).cloned() } else { None };
    let reply = |status: u16, body: String, wrong: bool| {
        state.served.fetch_add(1, Ordering::Relaxed);
        if wrong {
            state.wrong.fetch_add(1, Ordering::Relaxed);
        }
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let list = |models: &[u32]| {
        let items: Vec<String> = models.iter().map(|m| format!(r#"{{"id":"m{m}","name":"Model {m}"}}"#)).collect();
        format!(r#"{{"models":[{}],"user":"{user}"}}"#, items.join(","))
    };
    if path == "/models" {
        let served = known.unwrap_or_else(|| right.clone());
        if cached {
            cache.insert(user.clone(), served.clone());
        }
        return reply(200, list(&served), served != right);
    }
    let Some(id) = path.strip_prefix("/models/m").and_then(|n| n.parse::<u32>().ok()) else {
        return reply(404, r#"{"error":"no such route"}"#.to_owned(), false);
    };
    let allowed = right.contains(&id);
    let seen = known.as_ref().map_or(allowed, |k| k.contains(&id));
    if cached && allowed && known.is_none() {
        // The bug: the filtered list stored under the unfiltered key.
        cache.insert(user.clone(), vec![id]);
    }
    if seen {
        reply(200, format!(r#"{{"id":"m{id}","name":"Model {id}","user":"{user}"}}"#), !allowed)
    } else {
        reply(404, format!(r#"{{"error":"model m{id} not found"}}"#), allowed)
    }
}

/// Method, path, the `x-bench-secret` header and the body of every request a
/// `Plain` or `BenchProtocol` server answered.
pub type FullLog = Arc<Mutex<Vec<(String, String, Option<String>, String)>>>;

/// A plain API (`Plain`): 200 `{"ok":true}` to every path, `/health` included,
/// with none of the worker's headers; or (`BenchProtocol`) one that also speaks
/// the worker's seeding routes: `/__bench/reset` and `/__bench/seed` answer 200
/// with the secret `s` and 404 without it.
async fn plain(req: Request<hyper::body::Incoming>, log: &FullLog, bench: bool) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let secret = req.headers().get("x-bench-secret").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    log.lock().unwrap().push((method, path.clone(), secret.clone(), String::from_utf8_lossy(&body).into_owned()));
    let answer = |status: u16, body: &'static str| {
        Response::builder().status(status).body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap()
    };
    match path.as_str() {
        "/__bench/reset" | "/__bench/seed" if bench && secret.as_deref() != Some("s") => answer(404, "not found"),
        "/__bench/reset" if bench => answer(200, r#"{"done":true}"#),
        "/__bench/seed" if bench => answer(200, r#"{"seeded":true}"#),
        _ => answer(200, r#"{"ok":true}"#),
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// When the first request arrived (for `Stall`).
    pub first_request: Arc<Mutex<Option<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    b: Behaviour,
    first: Arc<Mutex<Option<Instant>>>,
    serial: Arc<tokio::sync::Mutex<()>>,
) -> Response<Full<Bytes>> {
    if let Behaviour::Plain { log } | Behaviour::BenchProtocol { log } = &b {
        return plain(req, log, matches!(b, Behaviour::BenchProtocol { .. })).await;
    }
    if let Behaviour::Models { cached, state } = &b {
        return models(req, *cached, state).await;
    }
    if req.uri().path() == "/health" {
        // What the target worker answers (in its shape: the cache mode); the
        // harness records the version and, as the worker does for
        // `x-bench-profile`, the latency profile in effect.
        // The cache mode only when a request sets it: these servers stand for
        // both arms of a deployed bench, whose modes are then not checked.
        let cache = match req.headers().get("x-bench-cache").and_then(|v| v.to_str().ok()) {
            Some(mode) => format!(r#","cache":{{"mode":"{mode}"}}"#),
            None => String::new(),
        };
        let (profile, modelled) = match req.headers().get("x-bench-profile").and_then(|v| v.to_str().ok()) {
            Some(p) => (p.to_owned(), p != "local"),
            None => ("local".to_owned(), false),
        };
        let body = format!(
            r#"{{"status":"ok","version":"test-1.2.3"{cache},"latency_profile":{{"name":"{profile}","modelled":{modelled}}},"anonymous_user_write":true}}"#
        );
        return Response::builder().status(200).body(Full::new(Bytes::from(body))).unwrap();
    }
    let arrived = Instant::now();
    let t0 = *first.lock().unwrap().get_or_insert(arrived);
    let ok = |status: u16| {
        Response::builder()
            .status(status)
            .header("x-cache", "bot=hit,user-models=miss")
            .header("server-timing", "bot;desc=hit;dur=0.5, kv;dur=0.5, total;dur=1.0")
            .header("x-ops", "kv-read=2,kv-write=0,d1-read=1,d1-write=0")
            .body(Full::new(Bytes::from_static(br#"{"ok":true,"token":"t-123"}"#)))
            .unwrap()
    };
    match b {
        Behaviour::Delay(d) => {
            // tokio's own timer would add up to 2 ms to a 5 ms delay.
            let timer = harness::timer::PreciseTimer::new().unwrap();
            timer.sleep_until(arrived + d).await.unwrap();
            ok(200)
        }
        Behaviour::Stall { base, period, first, stall } => {
            harness::timer::PreciseTimer::new().unwrap().sleep_until(arrived + base).await.unwrap();
            // Inside a stall window: wait for its end.
            let since = Instant::now().duration_since(t0);
            if since >= first {
                let into = (since - first).as_secs_f64() % period.as_secs_f64();
                if into < stall.as_secs_f64() {
                    tokio::time::sleep(Duration::from_secs_f64(stall.as_secs_f64() - into)).await;
                }
            }
            ok(200)
        }
        Behaviour::Serial(d) => {
            let _one = serial.lock().await;
            tokio::time::sleep(d).await;
            ok(200)
        }
        Behaviour::Status(s) => ok(s),
        Behaviour::Close => unreachable!("connections are closed on accept"),
        Behaviour::Plain { .. } | Behaviour::BenchProtocol { .. } | Behaviour::Models { .. } => {
            unreachable!("answered above")
        }
        Behaviour::Shaped { median, tail_every, drift, served } => {
            use rand::Rng;
            let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let heavy = tail_every > 0 && n % tail_every == tail_every - 1;
            let shape = rand::rng().random_range(0.8..1.2);
            let elapsed = arrived.duration_since(t0).as_secs_f64();
            let secs = median.as_secs_f64() * shape * if heavy { 6.0 } else { 1.0 } + drift.as_secs_f64() * elapsed;
            harness::timer::PreciseTimer::new()
                .unwrap()
                .sleep_until(arrived + Duration::from_secs_f64(secs))
                .await
                .unwrap();
            ok(200)
        }
        Behaviour::Store { stale, log, values } => {
            use http_body_util::BodyExt;
            let path = req.uri().path().to_owned();
            let ua = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            log.lock().unwrap().push((path.clone(), ua));
            let Some(key) = path.strip_prefix("/kv/").map(str::to_owned) else { return ok(404) };
            if req.method() == hyper::Method::PUT {
                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let mut map = values.lock().unwrap();
                let entry = map.entry(key).or_default();
                entry.0 = std::mem::replace(&mut entry.1, String::from_utf8_lossy(&body).into_owned());
                return ok(200);
            }
            let map = values.lock().unwrap();
            let (before, now) = map.get(&key).cloned().unwrap_or_default();
            Response::builder().status(200).body(Full::new(Bytes::from(if stale { before } else { now }))).unwrap()
        }
        Behaviour::FlakyAuth { failures } => {
            use std::sync::atomic::Ordering;
            let failing = req.uri().path() == "/token"
                && failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if failing {
                return ok(503);
            }
            let authorized = req.headers().get("authorization").is_some_and(|v| v == "Bearer t-123");
            match req.uri().path() {
                "/token" => ok(200),
                "/me" if authorized => ok(200),
                _ => ok(401),
            }
        }
        Behaviour::Auth => {
            let authorized = req.headers().get("authorization").is_some_and(|v| v == "Bearer t-123");
            match req.uri().path() {
                "/token" => ok(200),
                "/me" if authorized => ok(200),
                _ => ok(401),
            }
        }
    }
}

pub fn spawn(behaviour: Behaviour) -> TestServer {
    spawn_with(behaviour, None)
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

/// As [`spawn`], speaking https with the certificate `(cert PEM, key PEM)`.
pub fn spawn_tls(behaviour: Behaviour, identity: &(String, String)) -> TestServer {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(identity.0.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    spawn_with(behaviour, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

fn spawn_with(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let first = Arc::new(Mutex::new(None));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let first2 = Arc::clone(&first);
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let serial = Arc::new(tokio::sync::Mutex::new(()));
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        if matches!(behaviour, Behaviour::Close) {
                            drop(stream);
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        let (b, f, s) = (behaviour.clone(), Arc::clone(&first2), Arc::clone(&serial));
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                                let (b, f, s) = (b.clone(), Arc::clone(&f), Arc::clone(&s));
                                async move { Ok::<_, Infallible>(answer(req, b, f, s).await) }
                            });
                            match tls {
                                None => {
                                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                                }
                                // A failed handshake (an untrusting client) just closes.
                                Some(acceptor) => {
                                    if let Ok(stream) = acceptor.accept(stream).await {
                                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                                    }
                                }
                            }
                        });
                    }
                }
            }
        });
    });
    TestServer { addr, first_request: first, stop: Some(stop_tx), thread: Some(thread) }
}

/// Timing-sensitive tests run one at a time: two load runs on two cores would
/// measure each other.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(())).lock().unwrap_or_else(|e| e.into_inner())
}

pub fn scenario(text: &str) -> harness::scenario::Scenario {
    harness::scenario::parse(std::path::Path::new("test.toml"), text, &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

pub fn options(target: &str, out: &std::path::Path) -> harness::runner::RunOptions {
    harness::runner::RunOptions {
        bench_secret: Some("s".into()),
        stem: Some("run".into()),
        ..harness::runner::RunOptions::new(
            vec![harness::runner::ArmSpec { label: None, target: target.to_owned(), extra_headers: vec![] }],
            out.to_owned(),
        )
    }
}

/// A Python tool of the tests' (`kubernetes-validate`, `check-jsonschema`, the
/// `python` with prometheus_client, PyYAML and dockerfile-parse), installed by
/// scripts/setup into `target/pytools`.
pub fn pytool(name: &str) -> std::path::PathBuf {
    let p = repo_root().join("target/pytools/bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/setup (it installs the Python tools the tests use)", p.display());
    p
}

/// The repository's root (the workspace).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Every sample of an OpenMetrics exposition, parsed by prometheus_client's strict
/// OpenMetrics parser (which rejects what the format forbids): one
/// `(name, labels, value)` per sample, in order.
pub fn parse_openmetrics(text: &str) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = sys.stdin.read()
out = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new(pytool("python"))
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not valid OpenMetrics: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
