//! Bench state that really resets (issue 28, finding 1 and 5), natively over
//! SQLite and the in-process KV: a run in a fresh bench namespace starts with no
//! entry of the one before, in KV, the modelled edge and the isolate's memory; a
//! reset deletes every cache key page by page within one invocation's budget,
//! clears this isolate's memory and edge, and deletes only bench-made rows.

mod common;

use common::*;
use target_worker::{ApiRequest, Kv};

const SEED: u64 = 28;

/// `GET /models` as user 0 in `namespace` with `strategy` under `profile`.
fn list(namespace: &str, strategy: &str, profile: &str) -> ApiRequest {
    as_user("GET", "/models", &bench_seed::seeded_user(BENCH_SECRET, SEED, 0))
        .header("x-bench-secret", BENCH_SECRET)
        .header("x-bench-namespace", namespace)
        .header("x-bench-strategy", strategy)
        .header("x-bench-profile", profile)
}

fn lists(resp: &target_worker::ApiResponse) -> String {
    let cache = resp.header_value("x-cache").unwrap_or_default();
    cache.split(',').find_map(|p| p.strip_prefix("user-models=")).unwrap_or("none").to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_run_in_a_fresh_namespace_starts_with_nothing_of_the_run_before() {
    // A cold read under the profile may be slower than the default read time-out
    // (a miss would read as an error): this test is about which entries exist.
    let w = TestWorker::new(config(&[("KV_TIMEOUT_MS", "60000")]));
    w.seed(2, SEED).await;
    // Run one: `memory` (an in-isolate layer) under a profile with an edge cache.
    for _ in 0..3 {
        assert_eq!(w.send(list("run-1", "memory", "edge-near-primary")).await.status, 200);
    }
    assert_eq!(lists(&w.send(list("run-1", "memory", "edge-near-primary")).await), "hit", "run one warmed up");
    assert!(w.kv.keys().iter().any(|k| k.starts_with("ns/run-1/")), "{:?}", w.kv.keys());
    assert!(w.kv.keys().iter().all(|k| k.starts_with("ns/run-1/")), "every key in the namespace: {:?}", w.kv.keys());
    assert!(
        target_worker::memory::len() > 0 && target_worker::modelled::edge_len() > 0,
        "memory and edge hold run one"
    );
    // Run two, the same strategy and user: nothing of run one answers, anywhere.
    assert_eq!(lists(&w.send(list("run-2", "memory", "edge-near-primary")).await), "miss");
    // And another strategy back to back.
    assert_eq!(lists(&w.send(list("run-3", "generation", "edge-near-primary")).await), "miss");
    // Without the header (production's requests) the bare keys, untouched by runs.
    let bare = w.send(as_user("GET", "/models", &bench_seed::seeded_user(BENCH_SECRET, SEED, 0))).await;
    assert_eq!(lists(&bare), "miss");
    // A bad namespace is a 400 naming the rule; without the secret it is ignored.
    let bad = w.send(list("a/b", "memory", "local")).await;
    assert_eq!(bad.status, 400, "{}", body_text(&bad));
    assert!(body_text(&bad).contains("x-bench-namespace"), "{}", body_text(&bad));
}

#[tokio::test(start_paused = true)]
async fn reset_deletes_every_cache_key_page_by_page_within_its_budget() {
    let budget = 300;
    let w = TestWorker::new(config(&[("BENCH_OPS_PER_INVOCATION", "300"), ("KV_TIMEOUT_MS", "60000")]));
    w.seed(2, SEED).await;
    // Every strategy's prefix, earlier namespaces, and more keys than a page.
    for i in 0..2500 {
        let key = match i % 5 {
            0 => format!("bot:{i}"),
            1 => format!("original/user-models:{i}"),
            2 => format!("cache-ttl/model-config:{i}"),
            3 => format!("ns/old-run/user-models:{i}"),
            _ => format!("swr/user-models:{i}"),
        };
        w.kv.put(&key, "v", 3600).await.unwrap();
    }
    w.send(list("run-1", "memory", "edge-near-primary")).await;
    assert!(target_worker::memory::len() > 0 && target_worker::modelled::edge_len() > 0);
    let mut cursor: Option<String> = None;
    let mut calls = 0;
    loop {
        let before = w.kv.calls();
        let body = match &cursor {
            Some(c) => serde_json::json!({ "cursor": c }).to_string(),
            None => String::new(),
        };
        let resp =
            w.send(ApiRequest::new("POST", "/__bench/reset").header("x-bench-secret", BENCH_SECRET).body(body)).await;
        assert_eq!(resp.status, 200, "{}", body_text(&resp));
        let after = w.kv.calls();
        let ops = (after.list - before.list) + (after.delete - before.delete);
        assert!(ops as usize <= budget - 3, "call {calls}: {ops} KV operations, over the budget");
        let said = body_json(&resp);
        assert!(
            said["deleted_cache_keys"].as_u64().unwrap() > 0 || said["done"] == true,
            "progress on every call: {said}"
        );
        calls += 1;
        if said["done"] == true {
            break;
        }
        cursor = said["cursor"].as_str().map(str::to_owned);
        assert!(calls < 50, "reset never finished");
    }
    assert!(calls >= 2500 / budget, "{calls} calls for 2500 keys at {budget} operations each");
    assert!(w.kv.keys().is_empty(), "every key gone: {} left", w.kv.keys().len());
    assert_eq!((target_worker::memory::len(), target_worker::modelled::edge_len()), (0, 0), "the isolate forgets too");
}

#[tokio::test]
async fn reset_deletes_the_anonymous_callers_bench_requests_made_and_no_others() {
    let w = TestWorker::new(config(&[]));
    let count = |sql: &str| -> i64 { w.db.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    // A real visitor, then a bench request's anonymous caller.
    w.send(get("/models/capabilities", &[("cf-connecting-ip", "198.51.100.1")])).await;
    w.send(get("/models/capabilities", &[("cf-connecting-ip", "198.51.100.2"), ("x-bench-secret", BENCH_SECRET)]))
        .await;
    assert_eq!(count("SELECT COUNT(*) FROM anonymous_user"), 2);
    let resp = w.send(ApiRequest::new("POST", "/__bench/reset").header("x-bench-secret", BENCH_SECRET)).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert_eq!(count("SELECT COUNT(*) FROM anonymous_user"), 1, "the real visitor's row stays");
    assert_eq!(count("SELECT COUNT(*) FROM anonymous_user WHERE is_bench = 0"), 1);
}
