//! The harness against misbehaving targets (issue 14): a matrix of raw loopback
//! servers — refused, reset mid-headers and mid-body, stalled, a 5xx storm,
//! trickled bytes, a 50 MB body, malformed HTTP, a TLS port spoken to in plain
//! HTTP — each under the open and the closed model. Every run must end on time,
//! classify every request, exit with the documented code, keep its memory bounded
//! and leave a complete, valid result file that `harness report` reads.
//!
//! The servers speak raw TCP (not hyper), so they can break HTTP in ways a
//! well-behaved server library never would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use harness::result::{ResultDoc, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Nothing listens on the port.
    Refused,
    /// The status line and half a header, then a TCP reset.
    ResetMidHeaders,
    /// Headers promising 1000 bytes, 10 of them, then a TCP reset.
    ResetMidBody,
    /// Reads the request and never answers.
    Stall,
    /// Every answer a 503.
    ServerErrors,
    /// The answer one byte per 100 ms.
    Trickle,
    /// A 50 MB body.
    HugeBody,
    /// Bytes that are no HTTP.
    Malformed,
    /// What a TLS server answers to a plain-HTTP request: a TLS alert record
    /// (protocol version; as rustls and OpenSSL send), then close.
    TlsPort,
}

const ALL: [Fault; 9] = [
    Fault::Refused,
    Fault::ResetMidHeaders,
    Fault::ResetMidBody,
    Fault::Stall,
    Fault::ServerErrors,
    Fault::Trickle,
    Fault::HugeBody,
    Fault::Malformed,
    Fault::TlsPort,
];

const HUGE: usize = 50 << 20;

/// A raw server on a loopback port, stopped (and its connections closed) on drop.
struct FaultServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request's head (up to the blank line), or gives up quietly.
fn read_head(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
    true
}

/// Closes with a TCP RST instead of a FIN (SO_LINGER 0).
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn serve_connection(mut s: TcpStream, fault: Fault, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_nodelay(true);
    loop {
        // Read with a short time-out so the connection notices the stop.
        let got = loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut peek = [0u8; 1];
            match s.peek(&mut peek) {
                Ok(0) => return,
                Ok(_) => break read_head(&mut s),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        };
        if !got {
            return;
        }
        let _ = s.set_read_timeout(None);
        match fault {
            Fault::Refused => unreachable!("nothing listens"),
            Fault::ResetMidHeaders => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty");
                return reset(s);
            }
            Fault::ResetMidBody => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
                thread::sleep(Duration::from_millis(20));
                return reset(s);
            }
            Fault::Stall => {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Fault::ServerErrors => {
                let body = br#"{"error":"overloaded"}"#;
                let head = format!("HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n", body.len());
                if s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).is_err() {
                    return;
                }
            }
            Fault::Trickle => {
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
                    if stop.load(Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
            Fault::HugeBody => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n");
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..HUGE / chunk.len() {
                    if stop.load(Ordering::SeqCst) || s.write_all(&chunk).is_err() {
                        return;
                    }
                }
            }
            Fault::Malformed => {
                let _ = s.write_all(b"HELLO THERE\r\nthis is not: HTTP\r\n\r\n");
                return;
            }
            Fault::TlsPort => {
                // Alert record: content type 21, TLS 1.0 record version, length 2,
                // level fatal (2), description protocol_version (70).
                let _ = s.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]);
                return;
            }
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    }
}

fn spawn(fault: Fault) -> FaultServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    if fault == Fault::Refused {
        drop(listener);
        return FaultServer { addr, stop, thread: None };
    }
    let stop2 = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        let mut conns = Vec::new();
        for stream in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let stop3 = Arc::clone(&stop2);
            conns.push(thread::spawn(move || serve_connection(stream, fault, &stop3)));
        }
        for c in conns {
            let _ = c.join();
        }
    });
    FaultServer { addr, stop, thread: Some(thread) }
}

#[derive(Clone, Copy, Debug)]
enum Model {
    Open,
    Closed,
}

const DURATION_S: f64 = 2.0;
const TIMEOUT_S: f64 = 1.0;

fn scenario(model: Model) -> String {
    let load = match model {
        Model::Open => "executor = \"constant-arrival-rate\"\nrate = 20\nmax_in_flight = 20".to_owned(),
        Model::Closed => "executor = \"constant-vus\"\nvus = 4".to_owned(),
    };
    format!(
        "name = \"fault\"\n[load]\n{load}\nduration = \"{DURATION_S}s\"\ntimeout = \"{TIMEOUT_S}s\"\n\
         [[step]]\nname = \"get\"\nrequest = {{ path = \"/x\" }}\n"
    )
}

struct Outcome {
    code: i32,
    wall: Duration,
    doc: Option<ResultDoc>,
    stderr: String,
    dir: tempfile::TempDir,
}

fn run(fault: Fault, model: Model) -> Outcome {
    let server = spawn(fault);
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("fault.toml");
    std::fs::write(&sc, scenario(model)).unwrap();
    let out_dir = dir.path().join("out");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &format!("http://{}", server.addr), "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let wall = start.elapsed();
    drop(server);
    let doc = std::fs::read_dir(&out_dir).ok().and_then(|entries| {
        entries
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| ResultDoc::read(&p).unwrap_or_else(|e| panic!("{fault:?} {model:?}: result file invalid: {e}")))
    });
    Outcome {
        code: out.status.code().unwrap_or(-1),
        wall,
        doc,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// Every request of the run is in exactly one class: a status or an error kind.
fn assert_all_classified(o: &Outcome, what: &str) -> (u64, Vec<String>) {
    let doc = o.doc.as_ref().unwrap_or_else(|| panic!("{what}: no result file; stderr: {}", o.stderr));
    let all = &doc.series["*"];
    let by_status: u64 = all.status.values().sum();
    let by_error: u64 = all.error_kinds.values().sum();
    // A response with a status can still be an error (a failed check: 5xx).
    let check_failures = all.check_failures;
    assert_eq!(
        by_status + by_error,
        all.requests,
        "{what}: statuses {:?} + error kinds {:?} must account for all {} requests",
        all.status,
        all.error_kinds,
        all.requests
    );
    assert!(all.errors <= all.requests && check_failures <= by_status, "{what}");
    let mut classes: Vec<String> = all.status.keys().cloned().collect();
    classes.extend(all.error_kinds.keys().map(|k| format!("{k:?}").to_lowercase()));
    (all.requests, classes)
}

/// `harness report` reads the result file.
fn assert_reportable(o: &Outcome, what: &str) {
    let file = std::fs::read_dir(o.dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let report_dir = o.dir.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["report", file.to_str().unwrap(), "--out", report_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{what}: harness report failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn check(fault: Fault, model: Model) {
    let what = format!("{fault:?} under the {model:?} model");
    let o = run(fault, model);
    // On time: the schedule, one time-out for the requests in flight, and the
    // set-up and writing of the files.
    let limit = Duration::from_secs_f64(DURATION_S + TIMEOUT_S + 8.0);
    assert!(o.wall < limit, "{what}: took {:?} (limit {limit:?})", o.wall);
    if fault == Fault::Refused {
        // Refused before any load: a one-line error, exit 3, nothing to report.
        assert_eq!(o.code, 3, "{what}: {}", o.stderr);
        assert!(o.stderr.contains("unreachable"), "{what}: {}", o.stderr);
        assert_eq!(o.stderr.trim().lines().count(), 1, "{what}: {}", o.stderr);
        println!("| {fault:?} | {model:?} | exit 3 | refused at the preflight | 0 |");
        return;
    }
    let (requests, classes) = assert_all_classified(&o, &what);
    let doc = o.doc.as_ref().unwrap();
    assert_ne!(doc.run.status, Status::Running, "{what}: the file must be finished");
    assert!(requests > 0, "{what}: nothing was attempted");
    // The documented exit codes: 3 an invalid run, 1 a failed threshold, else 0.
    let failed_default = doc.thresholds.iter().any(|t| !t.pass && t.threshold.contains("(default"));
    let expected = match doc.run.status {
        Status::Invalid => 3,
        _ if doc.thresholds.iter().any(|t| !t.pass) => 1,
        _ => 0,
    };
    assert_eq!(o.code, expected, "{what}: {}", o.stderr);
    // Bounded memory whatever the target does (peak RSS of the harness process).
    let rss = doc.run.client_max_rss_kib;
    assert!(rss < 64 * 1024, "{what}: the harness grew to {rss} KiB");
    if fault == Fault::HugeBody {
        // A 50 MB answer is an answer: counted as it streams, never kept.
        assert!(doc.series["*"].bytes >= (HUGE as u64), "{what}: bytes counted");
    } else {
        // Every request failed, and the default error-rate limit says so: a CI
        // gate does not pass on such a run.
        assert_eq!(doc.series["*"].errors, requests, "{what}: every request is an error");
        assert!(doc.run.status == Status::Invalid || failed_default, "{what}: {:?}", doc.thresholds);
        assert_ne!(o.code, 0, "{what}");
    }
    assert_reportable(&o, &what);
    println!(
        "| {fault:?} | {model:?} | exit {} ({:?}) | {} | {requests} | {} MiB | {:.1} s |",
        o.code,
        doc.run.status,
        classes.join(", "),
        doc.run.client_max_rss_kib / 1024,
        o.wall.as_secs_f64()
    );
}

fn check_both(fault: Fault) {
    check(fault, Model::Open);
    check(fault, Model::Closed);
}

#[test]
fn refused() {
    check_both(Fault::Refused);
}
#[test]
fn reset_mid_headers() {
    check_both(Fault::ResetMidHeaders);
}
#[test]
fn reset_mid_body() {
    check_both(Fault::ResetMidBody);
}
#[test]
fn stall() {
    check_both(Fault::Stall);
}
#[test]
fn server_error_storm() {
    check_both(Fault::ServerErrors);
}
#[test]
fn trickle() {
    check_both(Fault::Trickle);
}
#[test]
fn huge_body() {
    check_both(Fault::HugeBody);
}
#[test]
fn malformed_http() {
    check_both(Fault::Malformed);
}
#[test]
fn tls_port_in_plain_http() {
    check_both(Fault::TlsPort);
}

#[test]
fn the_matrix_is_complete() {
    // One test per fault above; this keeps the list and the tests in step.
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults.rs")).unwrap();
    for fault in ALL {
        assert!(src.contains(&format!("check_both(Fault::{fault:?})")), "{fault:?} has no test");
    }
}
