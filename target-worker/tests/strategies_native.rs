//! The correctness suite every cache strategy passes (issue 15), natively over
//! SQLite and the in-process KV: the bodies cache-off serves, read-your-writes
//! within the strategy's own contract (`Strategy::contract`), isolation between
//! users, and KV faults. Then what makes each strategy what it says it is.

mod common;

use bench_seed::{seeded_user, SeededUser};
use common::*;
use target_worker::catalogue::catalogue;
use target_worker::strategy::{MEMORY_TTL_MS, SWR_SOFT_TTL_MS};
use target_worker::{ApiRequest, ApiResponse, Strategy};

const SEED: u64 = 15;
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn user(index: u32) -> SeededUser {
    seeded_user(BENCH_SECRET, SEED, index)
}

async fn worker(strategy: Strategy, vars: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("ENCRYPTION_KEY", ENCRYPTION_KEY), ("CACHE_STRATEGY", strategy.name())];
    all.extend_from_slice(vars);
    let w = TestWorker::new(config(&all));
    w.seed(4, SEED).await;
    w
}

fn bench(req: ApiRequest) -> ApiRequest {
    req.header("x-bench-secret", BENCH_SECRET)
}

/// The same request as cache-off serves it (one deployment, the cache switched
/// off for this request).
fn cache_off(req: ApiRequest) -> ApiRequest {
    bench(req).header("x-bench-cache", "off")
}

fn at_location(req: ApiRequest, location: u32) -> ApiRequest {
    bench(req).header("x-bench-location", &location.to_string())
}

/// The `user-models` outcome of a response.
fn list_outcome(resp: &ApiResponse) -> String {
    header(resp, "x-cache").split(',').find_map(|p| p.strip_prefix("user-models=")).unwrap_or("none").to_owned()
}

/// What the suite reads: lists with and without filters, single models (present,
/// paid, missing), the user's providers and profile.
fn reads() -> Vec<String> {
    let c = catalogue();
    let mut out: Vec<String> = vec!["/models".into(), "/models/capabilities".into(), "/user/providers".into()];
    out.extend(c.capabilities.iter().map(|cap| format!("/models?capability={cap}")));
    out.extend(c.types.iter().map(|t| format!("/models?type={t}")));
    out.push(format!("/models?capability={}&type={}", c.capabilities[0], c.types[0]));
    out.extend(c.models.iter().step_by(3).map(|m| format!("/models/{}", m.id)));
    out.push("/models/no-such-model".into());
    out
}

#[tokio::test(start_paused = true)]
async fn every_strategy_serves_the_bodies_cache_off_serves() {
    for strategy in Strategy::ALL {
        let w = worker(strategy, &[]).await;
        let mut hits = 0;
        // Three passes: the first fills the cache, the later ones are served from it.
        for pass in 0..3 {
            for index in 0..4 {
                let u = user(index);
                for path in reads() {
                    let on = w.send(as_user("GET", &path, &u)).await;
                    let off = w.send(cache_off(as_user("GET", &path, &u))).await;
                    assert_eq!(on.status, off.status, "{strategy} {path} pass {pass}");
                    assert_eq!(on.body, off.body, "{strategy} {path} pass {pass}: body differs from cache-off");
                    hits += usize::from(pass > 0 && list_outcome(&on) == "hit");
                }
            }
            // Anonymous callers (no user-specific list) as well.
            let anon = ApiRequest::new("GET", "/models").header("user-agent", BROWSER_UA);
            let on = w.send(anon.clone()).await;
            assert_eq!(on.body, w.send(cache_off(anon)).await.body, "{strategy} anonymous");
        }
        assert!(hits > 0, "{strategy}: no list was ever served from the cache");
        let health = body_json(&w.send(ApiRequest::new("GET", "/health")).await);
        assert_eq!(health["cache"]["strategy"], strategy.name());
        assert_eq!(health["cache"]["contract"], strategy.contract());
    }
}

#[tokio::test(start_paused = true)]
async fn the_strategy_is_chosen_per_request_only_with_the_bench_secret() {
    let w = worker(Strategy::Generation, &[]).await;
    let u = user(0);
    let with = |s: &str| bench(as_user("GET", "/models", &u)).header("x-bench-strategy", s);
    w.send(with("original")).await;
    assert!(w.kv.keys().iter().any(|k| k.starts_with("original/user-models:")), "{:?}", w.kv.keys());
    let bad = w.send(with("lru")).await;
    assert_eq!(bad.status, 400);
    assert!(body_text(&bad).contains("generation-unfiltered"), "{}", body_text(&bad));
    // Without the secret the header is ignored: the deployment's strategy.
    let plain = w.send(as_user("GET", "/models", &u).header("x-bench-strategy", "lru")).await;
    assert_eq!(plain.status, 200);
}

/// Read-your-writes in the isolate (location) that took the write: every
/// strategy's next read shows it. At another location: as the contract says.
#[tokio::test(start_paused = true)]
async fn read_your_writes_within_each_contract() {
    for strategy in Strategy::ALL {
        let w = worker(strategy, &[]).await;
        let u = user(1);
        let (provider, model) = disabled_provider(&w, &u);
        for location in [0, 1] {
            for _ in 0..2 {
                let before = w.send(at_location(as_user("GET", "/models", &u), location)).await;
                assert!(!ids(&before).contains(&model), "{strategy}");
            }
        }
        let resp = w.send(store_key(&u, &provider)).await;
        assert_eq!(resp.status, 200, "{strategy}: {}", body_text(&resp));
        for path in ["/models", &format!("/models?type={}", catalogue().types[0])] {
            let after = w.send(as_user("GET", path, &u)).await;
            let off = w.send(cache_off(as_user("GET", path, &u))).await;
            assert_eq!(after.body, off.body, "{strategy} {path}: the writer's next read is stale");
        }
        let elsewhere = w.send(at_location(as_user("GET", "/models", &u), 1)).await;
        if strategy.fresh_everywhere_after_write() || strategy == Strategy::Original {
            // One local KV: every location reads the new generation (or the delete).
            assert!(ids(&elsewhere).contains(&model), "{strategy}: stale at another location");
        } else {
            assert_eq!(strategy, Strategy::Memory);
            assert!(!ids(&elsewhere).contains(&model), "memory: another isolate keeps its copy");
            w.clock.advance_secs(MEMORY_TTL_MS / 1000.0 + 0.1);
            let later = w.send(at_location(as_user("GET", "/models", &u), 1)).await;
            assert!(ids(&later).contains(&model), "memory: still stale after its TTL");
        }
    }
}

/// The known race of `original`: a reader that computed the list before a write
/// stores it after the write's delete. The generation strategies label that
/// entry with the old generation and never serve it.
#[tokio::test(start_paused = true)]
async fn a_fill_that_races_a_write_is_served_only_by_original() {
    for strategy in Strategy::ALL {
        let w = worker(strategy, &[]).await;
        let u = user(2);
        let (provider, model) = disabled_provider(&w, &u);
        // The reader's response is out; its write-behind has not run yet.
        let racing = w.app.handle(as_user("GET", "/models", &u)).await;
        assert!(!ids(&racing).contains(&model));
        // The write lands, then the reader's fill.
        assert_eq!(w.send(store_key(&u, &provider)).await.status, 200);
        w.clock.advance_secs(2.0);
        let after = w.send(as_user("GET", "/models", &u)).await;
        let stale = !ids(&after).contains(&model);
        assert_eq!(stale, strategy == Strategy::Original, "{strategy}: x-cache {}", header(&after, "x-cache"));
    }
}

#[tokio::test(start_paused = true)]
async fn one_users_write_leaves_other_users_lists_alone() {
    for strategy in Strategy::ALL {
        let w = worker(strategy, &[]).await;
        let (a, b) = (user(0), user(3));
        for u in [&a, &b] {
            w.send(as_user("GET", "/models", u)).await;
        }
        let b_before = w.send(as_user("GET", "/models", &b)).await;
        assert_eq!(list_outcome(&b_before), "hit", "{strategy}");
        let (provider, _) = disabled_provider(&w, &a);
        assert_eq!(w.send(store_key(&a, &provider)).await.status, 200);
        let b_after = w.send(as_user("GET", "/models", &b)).await;
        assert_eq!(list_outcome(&b_after), "hit", "{strategy}: b's entry was touched by a's write");
        assert_eq!(b_after.body, b_before.body);
        assert_eq!(b_after.body, w.send(cache_off(as_user("GET", "/models", &b))).await.body);
        let a_list = w.send(as_user("GET", "/models", &a)).await;
        assert_ne!(a_list.body, b_after.body, "{strategy}: a is served b's list");
    }
}

/// Under every KV fault every strategy answers reads with cache-off's bodies;
/// a write whose invalidation fails is refused by every strategy that promises
/// read-your-writes, and answered 200 over a stale entry by `original`.
#[tokio::test(start_paused = true)]
async fn kv_faults_in_every_strategy() {
    for strategy in Strategy::ALL {
        let w = worker(strategy, &[]).await;
        let u = user(1);
        w.send(as_user("GET", "/models", &u)).await;
        w.send(as_user("GET", "/models", &u)).await;
        for fault in ["error", "garbage", "slow:3000", "write-error", "write-limit"] {
            for path in ["/models", "/models?capability=vision", "/models/no-such-model"] {
                let faulty = w.send(bench(as_user("GET", path, &u)).header("x-bench-kv-fault", fault)).await;
                let off = w.send(cache_off(as_user("GET", path, &u))).await;
                assert_eq!(faulty.status, off.status, "{strategy} {fault} {path}");
                assert_eq!(faulty.body, off.body, "{strategy} {fault} {path}");
            }
        }
        let (provider, model) = disabled_provider(&w, &u);
        let write = w.send(bench(store_key(&u, &provider)).header("x-bench-kv-fault", "write-error")).await;
        let next = w.send(as_user("GET", "/models", &u)).await;
        if strategy.refuses_failed_invalidation() {
            assert_eq!(write.status, 503, "{strategy}: {}", body_text(&write));
            assert!(ids(&next).contains(&model), "{strategy}: stale after a refused write");
        } else {
            assert_eq!(write.status, 200, "original ignores a failed delete");
            assert!(!ids(&next).contains(&model), "original serves the stale list, as its contract says");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn unfiltered_layouts_keep_one_entry_per_user() {
    for (strategy, entries) in
        [(Strategy::Generation, 3), (Strategy::GenerationUnfiltered, 1), (Strategy::Warm, 1), (Strategy::Original, 1)]
    {
        let w = worker(strategy, &[]).await;
        let u = user(0);
        let c = catalogue();
        for path in [
            "/models".to_owned(),
            format!("/models?capability={}", c.capabilities[0]),
            format!("/models?type={}", c.types[0]),
        ] {
            w.send(as_user("GET", &path, &u)).await;
        }
        let prefix = format!("{}user-models:{}", strategy.key_prefix(), u.user_id);
        let keys: Vec<String> =
            w.kv.keys().into_iter().filter(|k| k.starts_with(&prefix) && !k.ends_with(":gen")).collect();
        assert_eq!(keys.len(), entries, "{strategy}: {keys:?}");
        // The second read of another filter is a hit when one entry serves all.
        let again = w.send(as_user("GET", &format!("/models?capability={}", c.capabilities[1]), &u)).await;
        assert_eq!(list_outcome(&again) == "hit", entries == 1, "{strategy}");
    }
}

#[tokio::test(start_paused = true)]
async fn generation_bulk_reads_generation_and_entry_in_one_bulk_read() {
    let w = worker(Strategy::GenerationBulk, &[]).await;
    let u = user(0);
    w.send(as_user("GET", "/models", &u)).await;
    let before = w.kv.calls();
    let hit = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(list_outcome(&hit), "hit");
    let after = w.kv.calls();
    assert_eq!(after.bulk - before.bulk, 1, "one bulk read for the list");
    assert!(header(&hit, "x-ops").starts_with("kv-read=3,"), "billed per key: {}", header(&hit, "x-ops"));
}

#[tokio::test(start_paused = true)]
async fn memory_serves_repeat_reads_without_kv() {
    let w = worker(Strategy::Memory, &[]).await;
    let u = user(0);
    w.send(as_user("GET", "/models", &u)).await;
    let gets = w.kv.calls().get;
    let hit = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(list_outcome(&hit), "hit");
    assert_eq!(w.kv.calls().get, gets, "no KV read within the memory TTL");
    assert!(header(&hit, "x-ops").starts_with("kv-read=0,"), "{}", header(&hit, "x-ops"));
    w.clock.advance_secs(MEMORY_TTL_MS / 1000.0 + 0.1);
    w.send(as_user("GET", "/models", &u)).await;
    assert!(w.kv.calls().get > gets, "read from KV again after the memory TTL");
}

#[tokio::test(start_paused = true)]
async fn swr_serves_an_aging_entry_and_refreshes_it_in_the_background() {
    let w = worker(Strategy::Swr, &[]).await;
    let u = user(0);
    w.send(as_user("GET", "/models", &u)).await;
    let key = w.kv.keys().into_iter().find(|k| k.starts_with("swr/user-models:") && !k.ends_with(":gen")).unwrap();
    let first = w.kv.raw_get(&key).unwrap();
    w.clock.advance_secs(SWR_SOFT_TTL_MS / 1000.0 + 1.0);
    let puts = w.kv.calls().put;
    let aging = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(list_outcome(&aging), "hit", "an aging entry is served");
    assert_eq!(aging.body, w.send(cache_off(as_user("GET", "/models", &u))).await.body);
    assert!(header(&aging, "x-ops").contains("d1-read=2"), "session + the refresh: {}", header(&aging, "x-ops"));
    assert_eq!(w.kv.calls().put, puts + 1, "the refresh stored a new entry");
    assert_ne!(w.kv.raw_get(&key).unwrap(), first, "with a new time");
    let fresh = w.send(as_user("GET", "/models", &u)).await;
    assert!(header(&fresh, "x-ops").contains("d1-read=1"), "no refresh of a fresh entry: {}", header(&fresh, "x-ops"));
}

#[tokio::test(start_paused = true)]
async fn warm_stores_the_fresh_list_on_write() {
    for (strategy, after_write) in [(Strategy::Warm, "hit"), (Strategy::GenerationUnfiltered, "miss")] {
        let w = worker(strategy, &[]).await;
        let u = user(1);
        w.send(as_user("GET", "/models", &u)).await;
        let (provider, model) = disabled_provider(&w, &u);
        assert_eq!(w.send(store_key(&u, &provider)).await.status, 200);
        let next = w.send(as_user("GET", "/models", &u)).await;
        assert_eq!(list_outcome(&next), after_write, "{strategy}");
        assert!(ids(&next).contains(&model), "{strategy}");
    }
}

/// KV's eventual consistency between locations, modelled under a latency
/// profile: another location keeps serving what it read until its copy
/// expires (60 s); the location that made the write sees it at once.
#[tokio::test(start_paused = true)]
async fn other_locations_see_a_write_after_the_edge_copy_expires() {
    // No cold read may time out (which would leave the edge unfilled).
    let w = worker(Strategy::Generation, &[("KV_TIMEOUT_MS", "2000")]).await;
    let u = user(1);
    let (provider, model) = disabled_provider(&w, &u);
    let profiled =
        |req: ApiRequest, location: u32| at_location(req, location).header("x-bench-profile", "edge-near-primary");
    // Location 1's first read fills the entry, which (written there) it then
    // reads back into its edge copy.
    for location in [0, 1, 1] {
        w.send(profiled(as_user("GET", "/models", &u), location)).await;
    }
    assert_eq!(w.send(profiled(store_key(&u, &provider), 0)).await.status, 200);
    assert!(ids(&w.send(profiled(as_user("GET", "/models", &u), 0)).await).contains(&model), "the writer's location");
    assert!(
        !ids(&w.send(profiled(as_user("GET", "/models", &u), 1)).await).contains(&model),
        "another location, at once"
    );
    w.clock.advance_secs(61.0);
    assert!(
        ids(&w.send(profiled(as_user("GET", "/models", &u), 1)).await).contains(&model),
        "another location, after 60 s"
    );
}

/// `cache-ttl` asks the edge to keep bot verdicts a day: under a latency profile a
/// verdict read again a minute later is still hot there; with KV's default
/// `cacheTtl` (60 s) each such read goes past the edge (cold).
#[tokio::test(start_paused = true)]
async fn cache_ttl_keeps_immutable_entries_hot_at_the_edge() {
    let mut bot_ms = Vec::new();
    for strategy in [Strategy::CacheTtl, Strategy::Generation] {
        // No cold read may time out (which would leave the edge unfilled).
        let w = worker(strategy, &[("KV_TIMEOUT_MS", "2000")]).await;
        let read = || {
            bench(ApiRequest::new("GET", "/models").header("user-agent", BROWSER_UA))
                .header("x-bench-profile", "edge-near-primary")
        };
        // The first read stores the verdict (a write, which this location's edge
        // then forgets); the second reads it back into the edge.
        w.send(read()).await;
        w.clock.advance_secs(1.0);
        w.send(read()).await;
        let mut total = 0.0;
        // Within the entries' KV TTL (300 s), past the default edge copy (60 s).
        for _ in 0..4 {
            w.clock.advance_secs(70.0);
            let resp = w.send(read()).await;
            let timing = header(&resp, "server-timing");
            let bot = timing
                .split(", ")
                .find_map(|e| e.strip_prefix("bot;desc=").and_then(|e| e.split_once(";dur=")))
                .map(|(_, ms)| ms)
                .unwrap_or_else(|| panic!("{timing}"));
            total += bot.parse::<f64>().unwrap();
        }
        bot_ms.push(total);
    }
    // Four hot reads (p50 1 ms) against four cold ones (p50 25 ms).
    assert!(
        bot_ms[0] < 40.0 && bot_ms[1] > 40.0,
        "bot verdict time over 4 reads: cache-ttl {} ms, generation {} ms",
        bot_ms[0],
        bot_ms[1]
    );
}
