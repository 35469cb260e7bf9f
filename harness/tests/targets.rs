//! The target seam against real loopback servers: a plain HTTP API is asked
//! nothing but the scenario's requests and is reported as what it is; `auto`
//! tells the worker from any other API by its health answer; a declared worker
//! that is not one is refused before any load; `harness seed` speaks the
//! worker's seeding routes and refuses a plain API.

mod common;

use std::process::Command;

use common::{Behaviour, FullLog};
use harness::result::ResultDoc;
use harness::target::{TargetChoice, TargetKind};

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn paths(log: &FullLog) -> Vec<String> {
    log.lock().unwrap().iter().map(|(_, p, _, _)| p.clone()).collect()
}

fn plain_run(choice: TargetChoice) -> (ResultDoc, Vec<String>, String) {
    let log = FullLog::default();
    let server = common::spawn(Behaviour::Plain { log: log.clone() });
    let dir = tempfile::tempdir().unwrap();
    let opts = harness::runner::RunOptions { target: choice.target(), ..common::options(&server.url(), dir.path()) };
    let out = harness::runner::run(&common::scenario(common::SMALL), &opts).unwrap();
    let doc = out.doc().clone();
    let files = harness::report::write(std::slice::from_ref(&doc), None, &[], &dir.path().join("report")).unwrap();
    let html = std::fs::read_to_string(files.html).unwrap();
    (doc, paths(&log), html)
}

#[test]
fn a_plain_api_is_asked_nothing_but_the_scenario_and_reported_as_what_it_is() {
    let _x = common::exclusive();
    let (doc, paths, html) = plain_run(TargetChoice::Http);
    assert!(!paths.is_empty() && paths.iter().all(|p| p == "/x"), "only the scenario's path: {paths:?}");
    assert_eq!(doc.metadata.target_kind, TargetKind::Http);
    assert_eq!(doc.metadata.target_version, None);
    assert_eq!(doc.metadata.anonymous_user_write, None);
    let raw = serde_json::to_value(&doc).unwrap();
    assert_eq!(raw["metadata"]["target_kind"], "http");
    assert!(raw["metadata"].get("worker_version").is_none() && raw["metadata"].get("anonymous_user_write").is_none());
    assert!(!html.contains("wrangler") && !html.contains("KV and D1"), "the report assumes the worker");
    assert!(html.contains("HTTP API on loopback that speaks none of the bench protocol"));
}

#[test]
fn auto_asks_health_once_and_takes_another_api_for_a_plain_one() {
    let _x = common::exclusive();
    let (doc, paths, html) = plain_run(TargetChoice::Auto);
    assert_eq!(paths.iter().filter(|p| *p == "/health").count(), 1, "{paths:?}");
    assert_eq!(doc.metadata.target_kind, TargetKind::Http);
    assert!(!html.contains("wrangler"));
    // The worker's own shape makes it the worker.
    let worker = common::spawn(Behaviour::Status(200));
    let dir = tempfile::tempdir().unwrap();
    let out =
        harness::runner::run(&common::scenario(common::SMALL), &common::options(&worker.url(), dir.path())).unwrap();
    assert_eq!(out.doc().metadata.target_kind, TargetKind::BenchWorker);
    assert_eq!(out.doc().metadata.target_version.as_deref(), Some("test-1.2.3"));
}

#[test]
fn a_declared_worker_that_is_not_one_is_refused_before_any_load() {
    let _x = common::exclusive();
    let log = FullLog::default();
    let server = common::spawn(Behaviour::Plain { log: log.clone() });
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("small.toml");
    std::fs::write(&scenario, common::SMALL).unwrap();
    let out = harness()
        .args(["run", scenario.to_str().unwrap(), "--target", &server.url(), "--target-kind", "bench-worker", "-q"])
        .args(["--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--target-kind http"), "{stderr}");
    assert_eq!(paths(&log), ["/health"], "nothing but the probe was sent");
}

#[test]
fn seed_resets_and_seeds_what_the_scenarios_need_and_refuses_a_plain_api() {
    let _x = common::exclusive();
    let log = FullLog::default();
    let server = common::spawn(Behaviour::BenchProtocol { log: log.clone() });
    let auth = common::repo_root().join("scenarios/auth.toml");
    let out = harness()
        .args(["seed", auth.to_str().unwrap(), "--target", &server.url(), "--bench-secret", "s", "--reset"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["/__bench/reset", "/__bench/seed"]);
    assert!(calls.iter().all(|c| c.0 == "POST" && c.2.as_deref() == Some("s")));
    let sc = harness::scenario::load(&auth).unwrap();
    let users = sc.users.expect("auth.toml seeds users");
    let body: serde_json::Value = serde_json::from_str(&calls[1].3).unwrap();
    assert_eq!((body["users"].as_u64(), body["seed"].as_u64()), (Some(users.count as u64), Some(users.seed)));
    // A wrong secret is the worker's 404: said, exit 3.
    let out = harness()
        .args(["seed", auth.to_str().unwrap(), "--target", &server.url(), "--bench-secret", "wrong"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no BENCH_SECRET or it is not the one given"), "{stderr}");
    // A plain API has no seeding: said before anything is sent.
    let plain_log = FullLog::default();
    let plain = common::spawn(Behaviour::Plain { log: plain_log.clone() });
    let out = harness()
        .args([
            "seed",
            auth.to_str().unwrap(),
            "--target",
            &plain.url(),
            "--bench-secret",
            "s",
            "--target-kind",
            "http",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no seeding"), "{stderr}");
    assert!(plain_log.lock().unwrap().is_empty());
}
