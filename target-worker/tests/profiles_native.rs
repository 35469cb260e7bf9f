//! Latency profiles, `x-ops` and the anonymous-user write, natively over SQLite and
//! the in-process KV. Whether a profile's delays have their stated distribution
//! is measured through the harness (`bench/profiles`); here: which operations a
//! profile delays, that `local` delays none, and who may choose a profile.

mod common;

use bench_seed::seeded_user;
use common::*;
use target_worker::ApiRequest;

const SEED: u64 = 7;

async fn seeded(vars: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("KV_TIMEOUT_MS", "777")];
    all.extend_from_slice(vars);
    let w = TestWorker::new(config(&all));
    w.seed(3, SEED).await;
    w.runtime.sleeps.borrow_mut().clear();
    w
}

/// The KV time-out every read races against (its timer is not a delay).
const KV_TIMEOUT_MS: u64 = 777;

/// Timers started since the last call, the KV time-outs left out: (count, total ms).
fn delays(w: &TestWorker) -> (usize, u64) {
    let all: Vec<u64> = w.runtime.sleeps.borrow_mut().drain(..).filter(|ms| *ms != KV_TIMEOUT_MS).collect();
    (all.len(), all.iter().sum())
}

fn models_request(extra: &[(&str, &str)]) -> ApiRequest {
    let u = seeded_user(BENCH_SECRET, SEED, 0);
    let cookie = format!("session={}", u.session_id);
    let mut headers: Vec<(&str, &str)> = vec![("cookie", cookie.as_str())];
    headers.extend_from_slice(extra);
    get("/models", &headers)
}

/// `x-ops` as (kind, count) pairs.
fn ops(resp: &target_worker::ApiResponse) -> Vec<(String, u32)> {
    let raw = resp.header_value("x-ops").expect("every response has x-ops");
    raw.split(',')
        .map(|p| {
            let (k, v) = p.split_once('=').expect("kind=count");
            (k.to_owned(), v.parse().expect("a count"))
        })
        .collect()
}

fn op(resp: &target_worker::ApiResponse, kind: &str) -> u32 {
    ops(resp).into_iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| n)
}

#[tokio::test(start_paused = true)]
async fn the_local_profile_adds_no_timer_and_a_modelled_one_delays_every_operation() {
    let w = seeded(&[]).await;
    let resp = w.send(models_request(&[])).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert_eq!(delays(&w), (0, 0), "local must not add a single delay");

    let far = [("x-bench-secret", BENCH_SECRET), ("x-bench-profile", "edge-far-from-primary")];
    let resp = w.send(models_request(&far)).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    let (timers, total_ms) = delays(&w);
    // Bot and list reads from KV, session and provider queries from D1: each one
    // delayed. A far D1 read has a median of 150 ms.
    assert!(timers >= 2, "{timers} timers");
    assert!(total_ms >= 30, "{total_ms} ms in all");
}

#[tokio::test]
async fn only_a_bench_client_picks_a_profile_and_an_unknown_one_is_named() {
    let w = seeded(&[]).await;
    let without_secret = w.send(models_request(&[("x-bench-profile", "edge-far-from-primary")])).await;
    assert_eq!(without_secret.status, 200);
    assert_eq!(delays(&w).0, 0, "the header is ignored without the secret");

    let unknown = w.send(models_request(&[("x-bench-secret", BENCH_SECRET), ("x-bench-profile", "moon")])).await;
    assert_eq!(unknown.status, 400);
    let msg = body_json(&unknown)["error"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains("moon") && msg.contains("kv-cold"), "{msg}");

    let health = w.send(get("/health", &[("x-bench-secret", BENCH_SECRET), ("x-bench-profile", "kv-cold")])).await;
    let h = body_json(&health);
    assert_eq!(h["latency_profile"]["name"], "kv-cold");
    assert_eq!(h["latency_profile"]["modelled"], true);
    let h = body_json(&w.send(get("/health", &[])).await);
    assert_eq!(h["latency_profile"]["name"], "local");
    assert_eq!(h["latency_profile"]["modelled"], false);
}

#[tokio::test]
async fn a_var_selects_the_profile_for_every_request() {
    let w = seeded(&[("LATENCY_PROFILE", "edge-near-primary")]).await;
    let h = body_json(&w.send(get("/health", &[])).await);
    assert_eq!(h["latency_profile"]["name"], "edge-near-primary");
}

#[tokio::test]
async fn x_ops_counts_what_a_request_costs_with_and_without_the_cache() {
    let w = seeded(&[]).await;
    let off = [("x-bench-secret", BENCH_SECRET), ("x-bench-cache", "off")];
    let uncached = w.send(models_request(&off)).await;
    assert_eq!(op(&uncached, "kv-read"), 0);
    assert_eq!(op(&uncached, "kv-write"), 0);
    assert!(op(&uncached, "d1-read") >= 2, "{:?}", ops(&uncached));

    let first = w.send(models_request(&[])).await;
    assert!(op(&first, "kv-write") >= 1, "a miss writes behind: {:?}", ops(&first));
    let hit = w.send(models_request(&[])).await;
    assert_eq!(hit.header_value("x-cache"), Some("bot=hit,user-models=hit"));
    assert_eq!(op(&hit, "kv-write"), 0);
    // Bot verdict, list generation and list entry.
    assert_eq!(op(&hit, "kv-read"), 3, "{:?}", ops(&hit));
    assert!(op(&hit, "d1-read") < op(&uncached, "d1-read"), "{:?} vs {:?}", ops(&hit), ops(&uncached));
}

fn anonymous_rows(w: &TestWorker) -> i64 {
    w.db.conn().query_row("SELECT COUNT(*) FROM anonymous_user", [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn anonymous_callers_are_recorded_unless_switched_off() {
    let w = seeded(&[]).await;
    let resp = w.send(get("/models", &[("cf-connecting-ip", "203.0.113.5")])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(op(&resp, "d1-write"), 1);
    w.send(get("/models", &[("cf-connecting-ip", "203.0.113.5")])).await;
    w.send(get("/models", &[("cf-connecting-ip", "203.0.113.6")])).await;
    assert_eq!(anonymous_rows(&w), 2);
    let h = body_json(&w.send(get("/health", &[])).await);
    assert_eq!(h["anonymous_user_write"], true);

    let w = seeded(&[("ANONYMOUS_USER_WRITE", "off")]).await;
    let resp = w.send(get("/models", &[("cf-connecting-ip", "203.0.113.5")])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(op(&resp, "d1-write"), 0);
    assert_eq!(anonymous_rows(&w), 0);
}

/// A database whose every operation takes `ms` on the test's clock: a local
/// operation slower than the profile's figure.
#[derive(Clone)]
struct SlowDb {
    inner: SqliteDb,
    runtime: std::rc::Rc<TestRuntime>,
    ms: u64,
}

impl target_worker::Database for SlowDb {
    async fn query(
        &self,
        sql: &str,
        params: &[target_worker::platform::SqlValue],
    ) -> Result<Vec<target_worker::platform::Row>, target_worker::platform::DbError> {
        target_worker::Runtime::sleep(&*self.runtime, self.ms).await;
        self.inner.query(sql, params).await
    }
    async fn execute(
        &self,
        sql: &str,
        params: &[target_worker::platform::SqlValue],
    ) -> Result<(), target_worker::platform::DbError> {
        target_worker::Runtime::sleep(&*self.runtime, self.ms).await;
        self.inner.execute(sql, params).await
    }
    async fn batch(
        &self,
        statements: &[target_worker::platform::Statement],
    ) -> Result<(), target_worker::platform::DbError> {
        target_worker::Runtime::sleep(&*self.runtime, self.ms).await;
        self.inner.batch(statements).await
    }
}

/// Issue 28, finding 7: a modelled operation costs the larger of the profile's
/// drawn delay and the local operation's own time, for every operation — the
/// delay is no longer added on top of local work (which cache hits, having
/// none, never paid).
#[tokio::test(start_paused = true)]
async fn a_modelled_operation_takes_the_larger_of_its_drawn_delay_and_its_local_time() {
    use target_worker::modelled::ModelledDb;
    use target_worker::Database;
    let w = TestWorker::new(config(&[]));
    let profile = target_worker::latency::find("edge-near-primary").unwrap();
    let runtime: std::rc::Rc<dyn target_worker::Runtime> = w.runtime.clone();
    // Local work slower than any drawn delay: the operation takes exactly that.
    let slow = ModelledDb::new(
        SlowDb { inner: w.db.clone(), runtime: w.runtime.clone(), ms: 10_000 },
        profile,
        runtime.clone(),
    );
    for _ in 0..20 {
        let t0 = w.clock.now_ms();
        slow.query("SELECT 1 AS n", &[]).await.unwrap();
        assert_eq!(w.clock.now_ms() - t0, 10_000.0, "the local time, nothing added");
    }
    // Local work of no time: the drawn delay alone, as a hot KV read pays.
    let fast = ModelledDb::new(w.db.clone(), profile, runtime);
    let t0 = w.clock.now_ms();
    for _ in 0..50 {
        fast.query("SELECT 1 AS n", &[]).await.unwrap();
    }
    let mean = (w.clock.now_ms() - t0) / 50.0;
    assert!(mean > 1.0 && mean < 10_000.0, "the profile's D1 read figure: {mean} ms");
}

/// Issue 28, "limits as production has them": under a modelled profile KV
/// refuses a second write to a key within a second (429), as Workers KV does;
/// the `local` profile passes writes through as the local stack takes them.
#[tokio::test(start_paused = true)]
async fn a_modelled_kv_allows_one_write_per_second_to_a_key() {
    use target_worker::modelled::ModelledKv;
    use target_worker::Kv;
    let w = TestWorker::new(config(&[]));
    let runtime: std::rc::Rc<dyn target_worker::Runtime> = w.runtime.clone();
    let modelled =
        ModelledKv::new(w.kv.clone(), target_worker::latency::find("edge-near-primary").unwrap(), runtime.clone(), 0);
    modelled.put("k", "1", 600).await.unwrap();
    let second = modelled.put("k", "2", 600).await.unwrap_err();
    assert!(second.0.contains("429") && second.0.contains("one write per second"), "{}", second.0);
    modelled.put("other", "1", 600).await.expect("another key is its own");
    w.clock.advance_secs(1.0);
    modelled.put("k", "3", 600).await.expect("a second later");
    assert_eq!(w.kv.raw_get("k").as_deref(), Some("3"));
    let local = ModelledKv::new(w.kv.clone(), target_worker::latency::find("local").unwrap(), runtime, 0);
    local.put("j", "1", 600).await.unwrap();
    local.put("j", "2", 600).await.expect("the local profile does not enforce it");
}
