//! `harness gate` and the workflow's gate step (`scripts/ci-gate`), for real:
//! a git repository whose "worker" is a small Python server with its delay in a
//! config file, built and started from a recipe at two commits, four instances;
//! a head twice as slow fails the gate (exit 1), a head that changes nothing
//! passes it (exit 0), too little traffic is undetermined (exit 4), a missing
//! base ref is bad input (exit 2). And the gate between two deployed URLs.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const SERVER: &str = r#"
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
delay = float(open("delay_ms").read()) / 1000
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, Nagle's algorithm and a delayed ACK add 40 ms to a response.
    disable_nagle_algorithm = True
    def do_GET(self):
        time.sleep(delay)
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

const RECIPE: &str = r#"
name = "py"
describes = "a Python server whose delay is its configuration"
start = ["python3", "server.py", "{port}"]
[ready]
path = "/"
timeout = "20s"
[arms.a]
label = "off"
cache = "off"
[arms.b]
label = "on"
cache = "on"
[gate]
# A placeholder, filled as in every other command of the recipe.
build = [["python3", "-c", "open('{dir}/built', 'w').write('ok')"]]
"#;

const SCENARIO: &str = r#"
name = "ping"
[load]
executor = "constant-arrival-rate"
rate = 100
duration = "4s"
warmup = "1s"
[[step]]
name = "ping"
request = { path = "/" }
expect = { status = 200 }
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with three commits: `base` (3 ms), `same` (a change that does
/// not touch the delay) and `slow` (6 ms); returns it and the commits.
fn repository() -> (tempfile::TempDir, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "--quiet", "-b", "main"]);
    for (name, text) in [("server.py", SERVER), ("gate.toml", RECIPE), ("ping.toml", SCENARIO), ("delay_ms", "3")] {
        std::fs::write(p.join(name), text).unwrap();
    }
    std::fs::write(p.join(".gitignore"), "built\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "--quiet", "-m", "base"]);
    let base = git(p, &["rev-parse", "HEAD"]);
    std::fs::write(p.join("README"), "docs only\n").unwrap();
    git(p, &["add", "README"]);
    git(p, &["commit", "--quiet", "-m", "same"]);
    let same = git(p, &["rev-parse", "HEAD"]);
    std::fs::write(p.join("delay_ms"), "6").unwrap();
    git(p, &["commit", "--quiet", "-am", "slow"]);
    let slow = git(p, &["rev-parse", "HEAD"]);
    (dir, [base, same, slow])
}

/// The workflow's gate step, as it runs it, in `repo` checked out at `head`.
fn gate_step(repo: &Path, head: &str, base: &str, summary: &Path) -> Output {
    git(repo, &["checkout", "--quiet", "--detach", head]);
    Command::new(repo_root().join("scripts/ci-gate"))
        .current_dir(repo)
        .env("GATE_BASE", base)
        .env("GATE_RECIPE", "gate.toml")
        .env("GATE_SCENARIOS", "ping.toml")
        .env("GATE_FLAGS", "--until-decided 12s")
        .env("HARNESS", env!("CARGO_BIN_EXE_harness"))
        .env("GITHUB_STEP_SUMMARY", summary)
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_gate_step_fails_a_slower_head_and_passes_an_unchanged_one() {
    let _x = exclusive();
    let (repo, [base, same, slow]) = repository();
    let summary = repo.path().join("summary.md");

    let out = gate_step(repo.path(), &slow, &base, &summary);
    assert_eq!(out.status.code(), Some(1), "a head twice as slow: {}", said(&out));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## Regression gate: REGRESSION"), "{md}");
    assert!(md.contains("| ping | \\*:p50 |"), "a table row per decision: {md}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.path().join("target/gate/gate.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "regression");
    let change = report["decisions"][0]["change"].as_f64().unwrap();
    assert!((0.5..1.5).contains(&change), "3 ms → 6 ms is about +100 %: {change}");
    // 12 s of stages of 4 s: three looks, α = 5 % spent over them.
    let level = report["ci_confidence"].as_f64().unwrap();
    assert!((level - (1.0 - 0.05 / 3.0)).abs() < 1e-9, "each look's CI at 98.3 %: {level}");
    assert!(md.contains("each CI at 98.33 %"), "{md}");
    assert_eq!(report["base"]["tree"]["commit"], base.as_str());
    assert_eq!(report["head"]["tree"]["commit"], slow.as_str());
    assert!(repo.path().join(".git/harness-gate/base/built").exists(), "the base was built in its own tree");
    assert!(repo.path().join("built").exists(), "and the head in the working tree");

    std::fs::remove_file(&summary).unwrap();
    let out = gate_step(repo.path(), &same, &base, &summary);
    assert_eq!(out.status.code(), Some(0), "a change that leaves the speed alone: {}", said(&out));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## Regression gate: no regression"), "{md}");

    let out = gate_step(repo.path(), &same, "origin/nowhere", &summary);
    assert_eq!(out.status.code(), Some(2), "a base that is not there is an error: {}", said(&out));
    assert!(said(&out).contains("fetch-depth: 0"), "{}", said(&out));
}

fn gate_urls(base: &[String], head: &[String], scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.arg("gate").arg(scenario).arg("--out").arg(out).arg("--quiet").args(extra);
    for u in base {
        cmd.args(["--base-url", u]);
    }
    for u in head {
        cmd.args(["--head-url", u]);
    }
    cmd.output().unwrap()
}

#[test]
fn the_gate_between_deployed_urls_says_all_three_outcomes() {
    let _x = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("ping.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let fast: Vec<TestServer> = (0..3).map(|_| spawn(Behaviour::Delay(Duration::from_millis(3)))).collect();
    let slow: Vec<TestServer> = (0..2).map(|_| spawn(Behaviour::Delay(Duration::from_millis(5)))).collect();
    let urls = |s: &[TestServer]| s.iter().map(TestServer::url).collect::<Vec<_>>();

    let out = gate_urls(&urls(&fast[..2]), &urls(&slow), &scenario, &dir.path().join("r"), &[]);
    assert_eq!(out.status.code(), Some(1), "3 ms → 5 ms: {}", said(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/gate.json")).unwrap()).unwrap();
    assert!(report["design"].as_str().unwrap().starts_with("two deployed URLs per build"), "{}", report["design"]);

    let out = gate_urls(&urls(&fast[..1]), &urls(&fast[2..]), &scenario, &dir.path().join("s"), &["--rate", "60"]);
    assert_eq!(out.status.code(), Some(0), "two equal servers: {}", said(&out));
    assert!(said(&out).contains("no regression"), "{}", said(&out));
    // --rate replaces the scenario's 100 iterations per second, and says so.
    let slower: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s/gate.json")).unwrap()).unwrap();
    let load = slower["scenarios"][0]["load"].as_str().unwrap();
    assert!(load.contains("60 iterations/s"), "{load}");
    let requests = |r: &serde_json::Value| r["scenarios"][0]["requests"][0].as_f64().unwrap();
    assert!(
        requests(&slower) < 0.75 * requests(&report),
        "{} at 60/s vs {} at 100/s",
        requests(&slower),
        requests(&report)
    );
    let md = std::fs::read_to_string(dir.path().join("s/summary.md")).unwrap();
    assert!(md.contains("60 iterations/s"), "{md}");
    let closed = dir.path().join("closed.toml");
    std::fs::write(
        &closed,
        SCENARIO.replace("constant-arrival-rate\"", "constant-vus\"\nvus = 2").replace("rate = 100\n", ""),
    )
    .unwrap();
    let out = gate_urls(&urls(&fast[..1]), &urls(&fast[2..]), &closed, &dir.path().join("c"), &["--rate", "60"]);
    assert_eq!(out.status.code(), Some(2), "a rate for VUs: {}", said(&out));
    assert!(said(&out).contains("closed model") && said(&out).contains("closed.toml"), "{}", said(&out));

    // Ten requests per build cannot give a median's CI: undetermined, never a pass.
    let few = dir.path().join("few.toml");
    std::fs::write(&few, SCENARIO.replace("duration = \"4s\"", "duration = \"100ms\"")).unwrap();
    let out = gate_urls(&urls(&fast[..1]), &urls(&fast[2..]), &few, &dir.path().join("u"), &[]);
    assert_eq!(out.status.code(), Some(4), "too little traffic: {}", said(&out));
    assert!(said(&out).contains("UNDETERMINED") && said(&out).contains("too few requests"), "{}", said(&out));
}
