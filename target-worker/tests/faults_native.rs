//! The worker under KV faults and limits, natively (issue 14): failed
//! invalidations are never answered 200, KV's one-write-per-second-per-key limit
//! is respected, the read time-out and the per-isolate circuit breaker, the bench
//! routes' invisibility, equal work for "no such model" and "not yours", deleted
//! users' tokens, and seed/reset within a Worker's per-invocation limits.

mod common;

use bench_seed::{seeded_user, SeededUser};
use common::*;
use target_worker::{ApiRequest, ApiResponse};

const SEED: u64 = 14;
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn user(index: u32) -> SeededUser {
    seeded_user(BENCH_SECRET, SEED, index)
}

async fn worker(vars: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("ENCRYPTION_KEY", ENCRYPTION_KEY)];
    all.extend_from_slice(vars);
    let w = TestWorker::new(config(&all));
    w.seed(3, SEED).await;
    w
}

fn with_fault(req: ApiRequest, fault: &str) -> ApiRequest {
    req.header("x-bench-secret", BENCH_SECRET).header("x-bench-kv-fault", fault)
}

#[tokio::test(start_paused = true)]
async fn a_failed_invalidation_is_a_503_and_the_stale_list_is_not_served_here() {
    let w = worker(&[]).await;
    let u = user(0);
    let (provider, model) = disabled_provider(&w, &u);
    let before = w.send(as_user("GET", "/models", &u)).await;
    assert!(!ids(&before).contains(&model));
    assert_eq!(header(&w.send(as_user("GET", "/models", &u)).await, "x-cache"), "bot=hit,user-models=hit");

    for fault in ["write-error", "error", "slow:3000"] {
        let resp = w.send(with_fault(store_key(&u, &provider), fault)).await;
        assert_eq!(resp.status, 503, "{fault}: {}", body_text(&resp));
        assert_eq!(resp.header_value("retry-after"), Some("1"), "{fault}");
        let msg = body_json(&resp)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains("saved") && msg.contains("Repeat the request"), "{fault}: {msg}");
        // The change is in D1; this isolate answers from it, not from the old entry.
        let after = w.send(as_user("GET", "/models", &u)).await;
        assert!(ids(&after).contains(&model), "{fault}: the stale list was served");
        assert_eq!(header(&after, "x-cache"), "bot=hit,user-models=bypass", "{fault}");
    }
    let logs = w.runtime.logs.borrow().iter().filter(|l| l.contains(r#""op":"put""#)).count();
    assert!(logs >= 3, "every failed generation write is logged: {logs}");

    // Repeating the request without the fault retries the invalidation.
    let resp = w.send(store_key(&u, &provider)).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    let miss = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(header(&miss, "x-cache"), "bot=hit,user-models=miss");
    let hit = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(header(&hit, "x-cache"), "bot=hit,user-models=hit");
    assert!(ids(&hit).contains(&model));
}

#[tokio::test(start_paused = true)]
async fn a_second_save_within_a_second_waits_for_the_per_key_write_limit() {
    let w = worker(&[]).await;
    let u = user(1);
    let (provider, model) = disabled_provider(&w, &u);
    let start = w.clock.now_ms();
    let first = w.send(with_fault(store_key(&u, "mistral"), "write-limit")).await;
    assert_eq!(first.status, 200, "{}", body_text(&first));
    w.send(as_user("GET", "/models", &u)).await; // caches the list under the new generation
    let second = w.send(with_fault(store_key(&u, &provider), "write-limit")).await;
    assert_eq!(second.status, 200, "{}", body_text(&second));
    assert!(w.clock.now_ms() - start >= 1000.0, "the second generation write waited out the window");
    assert!(!w.runtime.logs.borrow().iter().any(|l| l.contains("429")), "no write hit the limit");
    let list = w.send(as_user("GET", "/models", &u)).await;
    assert!(ids(&list).contains(&model), "the second save is visible at once");
    assert_eq!(header(&list, "x-cache"), "bot=hit,user-models=miss");
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_opens_after_repeated_failures_and_probes_after_its_pause() {
    // Six failed reads: three requests of two reads each (bot, then the list's pair).
    let w = worker(&[("KV_BREAKER_FAILURES", "6"), ("KV_BREAKER_OPEN_MS", "5000"), ("KV_TIMEOUT_MS", "20")]).await;
    let u = user(2);
    let list = || as_user("GET", "/models", &u);
    w.send(list()).await;
    for fault in ["error", "slow:200"] {
        for i in 0..3 {
            let resp = w.send(with_fault(list(), fault)).await;
            assert_eq!(resp.status, 200);
            assert_eq!(header(&resp, "x-cache"), "bot=error,user-models=error", "{fault} #{i}");
        }
        // Open: KV is not asked at all, and the answer is still right.
        let resp = w.send(with_fault(list(), fault)).await;
        assert_eq!(header(&resp, "x-cache"), "bot=bypass,user-models=bypass", "{fault}");
        assert!(header(&resp, "x-ops").starts_with("kv-read=0,kv-write=0"), "{}", header(&resp, "x-ops"));
        assert!(w.runtime.logs.borrow().iter().any(|l| l.contains("kv_breaker_open")));
        // Traffic without injected faults has its own breaker, still closed.
        assert_eq!(header(&w.send(list()).await, "x-cache"), "bot=hit,user-models=hit");
        // After the pause one read goes through; failing, it opens the breaker again at once.
        w.clock.advance_secs(5.0);
        let probe = w.send(with_fault(list(), fault)).await;
        assert_eq!(header(&probe, "x-cache"), "bot=error,user-models=bypass", "{fault}: the probe failed");
        assert_eq!(header(&w.send(with_fault(list(), fault)).await, "x-cache"), "bot=bypass,user-models=bypass");
        // A success closes it.
        w.clock.advance_secs(5.0);
        let ok = w.send(with_fault(list(), "garbage")).await;
        assert_eq!(header(&ok, "x-cache"), "bot=error,user-models=error", "garbage answers: KV is up");
        assert_eq!(header(&w.send(with_fault(list(), "garbage")).await, "x-cache"), "bot=error,user-models=error");
    }
}

#[tokio::test]
async fn bench_routes_without_the_secret_are_unknown_routes_for_every_method() {
    let w = TestWorker::new(config(&[]));
    let unknown = w.send(ApiRequest::new("GET", "/no-such-route")).await;
    for path in ["/__bench/seed", "/__bench/reset"] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
            let resp = w.send(ApiRequest::new(method, path).header("x-bench-secret", "wrong")).await;
            assert_eq!((resp.status, &resp.body), (unknown.status, &unknown.body), "{method} {path}");
            assert_eq!(resp.header_value("allow"), None, "{method} {path}");
        }
        // With the secret the route exists, and says which method it takes.
        let resp = w.send(ApiRequest::new("GET", path).header("x-bench-secret", BENCH_SECRET)).await;
        assert_eq!((resp.status, resp.header_value("allow")), (405, Some("POST")), "{path}");
    }
}

#[tokio::test]
async fn no_such_model_and_not_yours_cost_the_same_work() {
    let w = worker(&[]).await;
    let u = user(0);
    let (_, hidden) = disabled_provider(&w, &u);
    // Warm the model-config layer for both ids alike (a missing id is cached too).
    for _ in 0..2 {
        w.send(as_user("GET", &format!("/models/{hidden}"), &u)).await;
        w.send(as_user("GET", "/models/openai/no-such-model", &u)).await;
    }
    let before = w.db.statements();
    let not_yours = w.send(as_user("GET", &format!("/models/{hidden}"), &u)).await;
    let mid = w.db.statements();
    let missing = w.send(as_user("GET", "/models/openai/no-such-model", &u)).await;
    let after = w.db.statements();
    assert_eq!((not_yours.status, &not_yours.body), (missing.status, &missing.body));
    assert_eq!(mid - before, after - mid, "the same number of database statements");
    assert_eq!(header(&not_yours, "x-ops"), header(&missing, "x-ops"), "the same KV and D1 operations");
    assert_eq!(header(&not_yours, "x-cache"), header(&missing, "x-cache"), "the same cache outcomes");
    let d1 =
        |r: &ApiResponse| header(r, "x-ops").split(',').filter(|p| p.starts_with("d1-")).collect::<Vec<_>>().join(",");
    assert_eq!(d1(&not_yours), d1(&missing));
    assert_eq!(d1(&missing), "d1-read=2,d1-write=0", "session lookup and the provider query");
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_refused_on_every_route() {
    let w = worker(&[]).await;
    let u = user(0);
    let token = body_json(&w.send(as_user("POST", "/auth/token", &u)).await)["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let routes = [
        ("GET", "/auth/me"),
        ("POST", "/auth/token"),
        ("GET", "/models"),
        ("GET", "/models/capabilities"),
        ("GET", "/models/mistral/mistral-small"),
        ("GET", "/user/settings"),
        ("GET", "/user/providers"),
        ("POST", "/user/sync-providers"),
    ];
    let req =
        |m: &str, p: &str| ApiRequest::new(m, p).header("user-agent", BROWSER_UA).header("authorization", &bearer);
    for (m, p) in routes {
        assert_ne!(w.send(req(m, p)).await.status, 401, "{m} {p} before the deletion");
    }
    w.db.conn().execute("DELETE FROM user WHERE id = ?1", [&u.user_id]).unwrap();
    for (m, p) in routes {
        let resp = w.send(req(m, p)).await;
        assert_eq!(resp.status, 401, "{m} {p}: {}", body_text(&resp));
        assert!(body_text(&resp).contains("no longer exists"), "{m} {p}");
    }
}

/// The largest population the standard scenarios seed (scenarios/*.toml: 300).
const LARGEST_POPULATION: u32 = 300;

#[tokio::test]
async fn seed_and_reset_stay_within_a_free_plan_invocation() {
    let budget = 50u64;
    let w = TestWorker::new(config(&[("BENCH_OPS_PER_INVOCATION", "50")]));
    let mut offset = 0u64;
    let mut calls = 0;
    loop {
        let before = w.db.statements();
        let resp = w.seed_call(LARGEST_POPULATION, SEED, offset).await;
        assert_eq!(resp.status, 200, "{}", body_text(&resp));
        assert!(w.db.statements() - before <= budget, "call {calls}: {} statements", w.db.statements() - before);
        calls += 1;
        match body_json(&resp)["next_offset"].as_u64() {
            Some(next) => {
                assert!(next > offset);
                offset = next;
            }
            None => break,
        }
    }
    let users: i64 = w.db.conn().query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0)).unwrap();
    assert_eq!(users, LARGEST_POPULATION as i64);
    assert!(calls > 1, "one call would have exceeded the budget");
    // Every seeded user works, the last one included.
    let last = seeded_user(BENCH_SECRET, SEED, LARGEST_POPULATION - 1);
    assert_eq!(w.send(as_user("GET", "/auth/me", &last)).await.status, 200);

    // Fill the cache with more keys than one reset call may delete.
    for i in 0..LARGEST_POPULATION {
        w.send(as_user("GET", "/models", &seeded_user(BENCH_SECRET, SEED, i))).await;
    }
    let keys = w.kv.keys().len();
    assert!(keys as u64 > budget, "{keys} keys");
    let mut resets = 0;
    loop {
        let (db_before, kv_before) = (w.db.statements(), w.kv.calls().total());
        let resp = w.send(ApiRequest::new("POST", "/__bench/reset").header("x-bench-secret", BENCH_SECRET)).await;
        assert_eq!(resp.status, 200, "{}", body_text(&resp));
        let ops = (w.db.statements() - db_before) + u64::from(w.kv.calls().total() - kv_before);
        assert!(ops <= budget, "reset call {resets}: {ops} operations");
        resets += 1;
        if body_json(&resp)["done"] == true {
            break;
        }
        assert!(resets < 100, "reset never finished");
    }
    assert!(resets > 1);
    assert!(w.kv.keys().is_empty(), "{:?}", w.kv.keys());
    let users: i64 = w.db.conn().query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0)).unwrap();
    assert_eq!(users, 0);
}

/// The write path under each KV fault: what the client is told, how long it
/// waited, and whether the user's next read is fresh.
#[tokio::test(start_paused = true)]
async fn the_write_path_under_every_fault() {
    println!("| fault on the write | status | waited (ms) | generation writes landed | next read fresh | x-cache of next read |");
    println!("|---|---|---|---|---|---|");
    for (i, (fault, expected)) in [
        ("none", 200),
        ("garbage", 200),
        ("slow:200", 200),
        ("write-limit", 200),
        ("write-error", 503),
        ("error", 503),
        ("slow:3000", 503),
    ]
    .into_iter()
    .enumerate()
    {
        // Users of their own: the per-isolate write times are thread-local and
        // every test worker's clock starts at the same instant.
        let seed = SEED + 100 + i as u64;
        let w = TestWorker::new(config(&[("ENCRYPTION_KEY", ENCRYPTION_KEY)]));
        w.seed(1, seed).await;
        let u = seeded_user(BENCH_SECRET, seed, 0);
        let (provider, model) = disabled_provider(&w, &u);
        w.send(as_user("GET", "/models", &u)).await;
        let puts_before = w.kv.calls().put;
        let start = w.clock.now_ms();
        let req = store_key(&u, &provider);
        let resp = if fault == "none" { w.send(req).await } else { w.send(with_fault(req, fault)).await };
        let waited = w.clock.now_ms() - start;
        // Generation writes that reached the KV store (an injected failure stops them before).
        let landed = w.kv.calls().put - puts_before;
        assert_eq!(resp.status, expected, "{fault}: {}", body_text(&resp));
        assert_eq!(landed, u32::from(expected == 200), "{fault}");
        let next = w.send(as_user("GET", "/models", &u)).await;
        let fresh = ids(&next).contains(&model);
        assert!(fresh, "{fault}: the next read by the same user in this isolate is fresh");
        println!("| {fault} | {} | {waited:.0} | {landed} | {fresh} | {} |", resp.status, header(&next, "x-cache"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_off_arm_of_a_shared_namespace_never_waits_for_invalidation() {
    let w = worker(&[]).await;
    let u = user(2);
    let (provider, model) = disabled_provider(&w, &u);
    let off = |req: ApiRequest| req.header("x-bench-secret", BENCH_SECRET).header("x-bench-cache", "off");
    // The on arm caches the list.
    w.send(as_user("GET", "/models", &u)).await;
    let start = w.clock.now_ms();
    for p in ["mistral", provider.as_str()] {
        let resp = w.send(off(store_key(&u, p))).await;
        assert_eq!(resp.status, 200, "{}", body_text(&resp));
        // A cache-off deployment makes no KV write: neither is one billed to this arm.
        assert!(header(&resp, "x-ops").starts_with("kv-read=0,kv-write=0,"), "{}", header(&resp, "x-ops"));
    }
    assert_eq!(w.clock.now_ms(), start, "two saves within a second: no wait in the off arm");
    // Its invalidation still landed (after the response): the on arm's list is fresh.
    let on = w.send(as_user("GET", "/models", &u)).await;
    assert!(ids(&on).contains(&model));
    assert_eq!(header(&on, "x-cache"), "bot=hit,user-models=miss");
}
