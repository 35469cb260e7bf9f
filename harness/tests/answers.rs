//! Answers before speed: an A/B compares both arms' answers pair by pair. Against
//! a loopback API with the seed's cache bug (a filtered list stored under the
//! unfiltered key), the harness must find the wrong answers at the rate the
//! server itself counted, name them in every report, refuse to call the cache
//! fast, and fail the gate; against correct arms it must find none, writes of
//! the same user included.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use harness::answers::AnswersDoc;
use harness::claims::{Claim, Verdict};
use harness::compare::{compare, CompareOptions};
use harness::runner::{self, ArmSpec};

/// Lists and single models of 40 users, in the proportions of the seed's traffic.
/// The bug shows only for a user whose first request is an allowed model (a list
/// first caches the right list): with 10 users no user started so in 5.6 % of
/// runs (0.75^10), which failed a CI run; with 40, 0.775^40 ≈ 4e-5.
const MODELS: &str = r#"
name = "models"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 200
duration = "4s"
max_in_flight = 64
[lists.user]
values = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13", "u14", "u15", "u16", "u17", "u18", "u19", "u20", "u21", "u22", "u23", "u24", "u25", "u26", "u27", "u28", "u29", "u30", "u31", "u32", "u33", "u34", "u35", "u36", "u37", "u38", "u39"]
[lists.model]
values = ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]
[[step]]
name = "list"
weight = 3
tags = ["model-list"]
request = { path = "/models?user={{list.user}}" }
expect = { status = 200, json = { "/models" = { length = ">= 1" } } }
[[step]]
name = "config"
tags = ["model-config"]
request = { path = "/models/{{list.model}}?user={{list.user}}" }
expect = { status = [200, 404] }
"#;

fn models_server(cached: bool) -> (TestServer, Arc<ModelsState>) {
    let state = Arc::new(ModelsState::default());
    (spawn(Behaviour::Models { cached, state: Arc::clone(&state) }), state)
}

fn arms(a: &str, b: &str) -> Vec<ArmSpec> {
    vec![
        ArmSpec { label: Some("cache-off".into()), target: a.to_owned(), extra_headers: vec![] },
        ArmSpec { label: Some("cache-on".into()), target: b.to_owned(), extra_headers: vec![] },
    ]
}

fn ab(text: &str, a: &str, b: &str, dir: &Path) -> (Vec<harness::result::ResultDoc>, AnswersDoc) {
    let mut opts = options(a, dir);
    opts.arms = arms(a, b);
    let out = runner::run(&scenario(text), &opts).unwrap();
    let docs: Vec<_> = out.arms.into_iter().map(|a| a.doc).collect();
    let answers = docs[1].answers.clone().expect("an A/B records its pairs' answers");
    assert_eq!(docs[0].answers.as_ref(), Some(&answers), "both arms' documents carry the same answers");
    (docs, answers)
}

fn list_claim() -> Claim {
    Claim {
        name: "lists".into(),
        statement: "model lists 60–80 % faster".into(),
        series: "tag:model-list".into(),
        server_timing: None,
        primary: "p50".into(),
        metrics: vec![],
        faster_by: [60.0, 80.0],
        layer: None,
        overhead: false,
    }
}

#[test]
fn a_cache_that_changes_answers_is_found_at_its_true_rate_and_never_called_fast() {
    let _x = exclusive();
    let (off, off_state) = models_server(false);
    let (on, on_state) = models_server(true);
    let dir = tempfile::tempdir().unwrap();
    let (docs, answers) = ab(MODELS, &off.url(), &on.url(), dir.path());
    let all = &answers.series["*"];
    let truth = on_state.wrong.load(Ordering::Relaxed);
    assert_eq!(off_state.wrong.load(Ordering::Relaxed), 0, "the server without a cache is right");
    // No warm-up, no writes, no lost answers: every pair is compared, and each
    // wrong answer of the cached arm is exactly one differing pair.
    assert_eq!((all.write_between, all.no_answer), (0, 0), "{all:?}");
    assert_eq!(all.compared, docs[1].series["*"].requests, "{all:?}");
    assert_eq!(all.mismatched, truth, "measured {all:?}, the server counted {truth} wrong answers");
    let (rate, lo, hi) = all.mismatch_rate().unwrap();
    println!("true rate {:.3}, measured {rate:.3} [{lo:.3}, {hi:.3}]", truth as f64 / all.compared as f64);
    assert!(rate > 0.05, "lists go wrong after a single lookup: {rate}");
    let list = &answers.series["step:list"];
    assert!(list.mismatched > 0 && !list.differences.is_empty());
    let d = &list.differences[0];
    assert!(d.request.starts_with("GET /models?user=u"), "{d:?}");
    assert!(d.diff.contains("--- arm A") && d.diff.contains("\"id\": \"m"), "a readable JSON diff: {}", d.diff);
    assert_eq!(answers.rules["list"], "status and body as canonical JSON");

    // Fast or not, a cache that changes answers is not called fast.
    let c = compare(&docs[0], &docs[1], true, &[list_claim()], &CompareOptions::default()).unwrap();
    assert_eq!(c.claims[0].verdict, Verdict::WrongAnswers, "{}", c.claims[0].reason);
    assert!(c.claims[0].reason.starts_with("wrong answers in "), "{}", c.claims[0].reason);
    let lists = c.series.iter().find(|s| s.series == "tag:model-list").unwrap();
    assert!(lists.summary.starts_with("model-list: wrong answers in "), "no speed words first: {}", lists.summary);
    let text = harness::report::terminal::render_comparison(&c);
    let (answers_at, table_at) = (text.find("WRONG ANSWERS").unwrap(), text.find("series").unwrap());
    assert!(answers_at < table_at, "answers before speed:\n{text}");

    // Every report format says so.
    let files = harness::report::write(&docs, Some(&c), &[], &dir.path().join("report")).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("id=\"answers\"") && html.contains("WRONG ANSWERS") && html.contains("--- arm A"));
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("WRONG ANSWERS") && md.contains("```diff"), "{md}");
    let junit = std::fs::read_to_string(&files.junit).unwrap();
    assert!(junit.contains("answers agree: step:list\"><failure"), "{junit}");
    let metrics = std::fs::read_to_string(dir.path().join("report/metrics.txt")).unwrap();
    let differed =
        format!("harness_answer_pairs_total{{scenario=\"models\",series=\"*\",outcome=\"differed\"}} {truth}");
    assert!(metrics.contains(&differed), "{metrics}");
}

#[test]
fn a_correct_cache_answers_alike_in_every_pair() {
    let _x = exclusive();
    let (a, _) = models_server(false);
    let (b, _) = models_server(false);
    let dir = tempfile::tempdir().unwrap();
    let (docs, answers) = ab(MODELS, &a.url(), &b.url(), dir.path());
    let all = &answers.series["*"];
    assert_eq!(all.mismatched, 0, "{all:?}");
    assert!(all.compared > 300, "one per pair: {all:?}");
    let c = compare(&docs[0], &docs[1], true, &[list_claim()], &CompareOptions::default()).unwrap();
    assert_ne!(c.claims[0].verdict, Verdict::WrongAnswers);
    assert!(harness::report::terminal::render_comparison(&c).contains("answers agree: all"));
}

/// Writes, each arm on its own store: a pair's write reaches both stores, so
/// reads after it are compared and agree when both stores are right; a store
/// that serves the value before the last write is caught.
#[test]
fn writes_reach_both_arms_and_a_store_that_serves_old_values_is_caught() {
    let _x = exclusive();
    let store = |stale| spawn(Behaviour::Store { stale, log: Default::default(), values: Default::default() });
    let (a, b, old) = (store(false), store(false), store(true));
    let text = r#"
name = "kv"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 300
duration = "3s"
[lists.key]
values = ["k0", "k1", "k2"]
[[step]]
name = "read"
weight = 4
request = { path = "/kv/{{list.key}}" }
[[step]]
name = "write"
request = { method = "PUT", path = "/kv/{{list.key}}", body = "v{{iteration}}" }
"#;
    let dir = tempfile::tempdir().unwrap();
    let (_, answers) = ab(text, &a.url(), &b.url(), dir.path());
    let read = &answers.series["step:read"];
    assert_eq!(read.mismatched, 0, "{read:?}");
    assert!(read.compared > 200, "{read:?}");
    assert_eq!(answers.series["step:write"].mismatched, 0);
    let (_, answers) = ab(text, &a.url(), &old.url(), dir.path());
    let read = &answers.series["step:read"];
    assert!(read.mismatched > read.compared / 2, "{read:?}");
}

#[test]
fn harness_ab_fails_the_gate_on_wrong_answers_unless_allowed() {
    let _x = exclusive();
    let (off, _) = models_server(false);
    let (on, _) = models_server(true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("models.toml");
    std::fs::write(&file, MODELS.replace("duration = \"4s\"", "duration = \"2s\"")).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["ab", file.to_str().unwrap(), "--a", &off.url(), "--b", &on.url(), "--out"])
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("answers: gate FAILED"), "{text}");
    let out = run(&["--allow-answer-changes"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
