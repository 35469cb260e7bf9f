//! The `harness` binary as a user meets it: exit codes, one-line errors, the
//! summary, Ctrl-C, closed-model executors and values extracted from responses.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use harness::result::{ResultDoc, Status};

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn only_result(dir: &std::path::Path) -> ResultDoc {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].with_extension("hlog").exists());
    ResultDoc::read(&files[0]).unwrap()
}

#[test]
fn target_down_exits_3_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "s.toml", SMALL);
    let out = harness()
        .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &format!("http://127.0.0.1:{port}"), "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("target unreachable") && stderr.contains(&port.to_string()), "{stderr}");
}

#[test]
fn thresholds_decide_the_exit_code() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(3)));
    for (threshold, code) in [("p(50) < 1ms", 1), ("p(50) < 500ms", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{SMALL}\n[thresholds]\n\"get\" = [\"{threshold}\", \"error_rate < 1%\"]\n");
        let sc = write(dir.path(), "s.toml", &text);
        let out = harness()
            .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &server.url(), "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{threshold}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("threshold get"), "{stdout}");
        assert!(stdout.contains("raw p99") && stdout.contains("all requests"), "{stdout}");
        let doc = only_result(dir.path());
        // The scenario's two, and the default error-rate limit on all requests.
        assert_eq!(doc.thresholds.len(), 3);
        assert_eq!(doc.thresholds[0].pass, code == 0);
        assert!(doc.thresholds[2].threshold.starts_with("error_rate < 1% (default") && doc.thresholds[2].pass);
        assert!(stdout.contains("(default;"), "the summary says which limit is the default: {stdout}");
    }
}

#[test]
fn bad_input_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "bad.toml", &SMALL.replace("rate = 50", "rate = -1"));
    for args in
        [vec!["run", sc.to_str().unwrap(), "--target", "http://127.0.0.1:9"], vec!["validate", sc.to_str().unwrap()]]
    {
        let out = harness().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bad.toml:5:8: rate must be a positive number"), "{stderr}");
    }
    let out = harness().args(["run", "--target", "http://x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors are bad input");
    let good = write(dir.path(), "good.toml", SMALL);
    let out = harness().args(["validate", good.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("50 iterations/s"));
    let out = harness().args(["run", good.to_str().unwrap(), "--target", "ftp://127.0.0.1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_what_was_measured() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(2)));
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "long.toml", &SMALL.replace("duration = \"1s\"", "duration = \"60s\""));
    let child = harness()
        .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &server.url(), "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "an interrupted run is not a valid run: {stdout}");
    assert!(stdout.contains("interrupted") && stdout.contains("all requests"), "{stdout}");
    let doc = only_result(dir.path());
    assert_eq!(doc.run.status, Status::Interrupted);
    let n = doc.series["*"].requests;
    assert!((80..=150).contains(&n), "about 2.5 s at 50/s, got {n}");
    assert!(doc.run.measured_s < 4.0, "{}", doc.run.measured_s);
}

#[test]
fn closed_models_and_extracted_values() {
    let _x = exclusive();
    let server = spawn(Behaviour::Auth);
    let dir = tempfile::tempdir().unwrap();
    let flow = r#"
[[step]]
name = "token"
request = { method = "POST", path = "/token" }
extract = { token = "/token" }
[[step]]
name = "me"
request = { path = "/me", headers = { authorization = "Bearer {{vars.token}}" } }
expect = { status = 200 }
"#;
    let iterations = format!("name = \"it\"\n[load]\nexecutor = \"iterations\"\nvus = 3\niterations = 30\n{flow}");
    let sc = common::scenario(&iterations);
    let out = harness::runner::run(&sc, &common::options(&server.url(), dir.path())).unwrap();
    assert_eq!(out.doc().series["*"].requests, 60);
    assert_eq!(out.doc().series["step:me"].errors, 0, "the extracted token was sent back");
    assert_eq!(out.doc().run.started_iterations, 30);

    let vus = format!(
        "name = \"vu\"\n[load]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"1s\"\nthink_time = \"50ms\"\n{flow}"
    );
    let out = harness::runner::run(&common::scenario(&vus), &common::options(&server.url(), dir.path())).unwrap();
    let n = out.doc().series["step:me"].requests;
    // 2 VUs, each iteration about 50 ms of think time plus two quick requests.
    assert!((20..=42).contains(&n), "{n}");
    assert_eq!(out.doc().series["step:me"].errors, 0);

    // Without the extraction the request cannot be rendered: every such iteration
    // counts as an error of its step (kind `template`), none is sent, and none
    // disappears from the data.
    let broken = vus.replace("extract = { token = \"/token\" }", "extract = { token = \"/missing\" }");
    let out = harness::runner::run(&common::scenario(&broken), &common::options(&server.url(), dir.path())).unwrap();
    let me = &out.doc().series["step:me"];
    assert!(me.requests > 0 && me.errors == me.requests, "{} requests, {} errors", me.requests, me.errors);
    assert_eq!(me.error_kinds[&harness::client::ErrorKind::Template], me.requests);
    assert_eq!(me.raw_ms.max, 0.0, "nothing was sent");
    assert!(
        out.doc().run.warnings.iter().any(|w| w.contains("vars.token has no value yet")),
        "{:?}",
        out.doc().run.warnings
    );
}

/// Every user's `once_per_user` steps run before the schedule, so no measured
/// request waits for a login; a set-up step that fails (here the first two token
/// requests answer 503) is tried again, so the user's later steps have its token.
#[test]
fn once_per_user_steps_run_before_the_schedule_and_are_retried() {
    let _x = exclusive();
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(2));
    let server = spawn(Behaviour::FlakyAuth { failures: std::sync::Arc::clone(&failures) });
    let dir = tempfile::tempdir().unwrap();
    let text = r#"name = "once"
[load]
executor = "constant-arrival-rate"
rate = 50
duration = "1s"
[[step]]
name = "token"
once_per_user = true
request = { method = "POST", path = "/token" }
extract = { token = "/token" }
[[step]]
name = "me"
request = { path = "/me", headers = { authorization = "Bearer {{vars.token}}" } }
expect = { status = 200 }
"#;
    let out = harness::runner::run(&common::scenario(text), &common::options(&server.url(), dir.path())).unwrap();
    let doc = out.doc();
    assert_eq!(failures.load(std::sync::atomic::Ordering::SeqCst), 0, "both failures were met");
    assert!(!doc.series.contains_key("step:token"), "the login was not measured: {:?}", doc.series.keys());
    let me = &doc.series["step:me"];
    assert!(me.requests >= 45, "{}", me.requests);
    assert_eq!(me.errors, 0, "{:?}", doc.run.warnings);
}

#[test]
fn a_killed_run_reports_as_incomplete_and_never_passes() {
    let _one = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(2)));
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "long.toml", &SMALL.replace("duration = \"1s\"", "duration = \"60s\""));
    let out = dir.path().join("out");
    let mut child = harness()
        .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &server.url(), "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The result file is rewritten every 5 s: kill after the first save.
    std::thread::sleep(Duration::from_millis(7500));
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("the periodic save is on disk");
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(raw["run"]["status"], "running", "as the killed process left it");

    let doc = ResultDoc::read(&file).unwrap();
    assert_eq!(doc.run.status, Status::Invalid);
    let reason = &doc.run.invalid_reasons[0];
    assert!(reason.starts_with("incomplete:") && reason.contains("of the 60 s planned"), "{reason}");
    assert!(doc.series["*"].requests > 0, "what was measured is kept");

    let report = dir.path().join("report");
    let r = harness().args(["report", file.to_str().unwrap(), "--out", report.to_str().unwrap()]).output().unwrap();
    assert_eq!(r.status.code(), Some(3), "a part of a run never passes: {}", String::from_utf8_lossy(&r.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("incomplete: this run never finished"), "the report says so");
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(md.contains("incomplete"), "{md}");
}

#[test]
fn an_unwritable_output_directory_is_refused_before_the_run() {
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "s.toml", &SMALL.replace("duration = \"1s\"", "duration = \"30s\""));
    let blocker = write(dir.path(), "a-file", "x");
    let start = std::time::Instant::now();
    let out = harness()
        .args(["run", sc.to_str().unwrap(), "--quiet", "--target", &server.url(), "--out"])
        .arg(blocker.join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(start.elapsed() < Duration::from_secs(10), "refused at the start, not after 30 s of load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not writable") && stderr.contains("--out"), "{stderr}");
    assert!(server.first_request.lock().unwrap().is_none(), "no request was sent");
}
