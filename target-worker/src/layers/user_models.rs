//! The `user-models` layer: the list of models a user may use, and its per-user
//! invalidation, in the layout of the request's strategy ([`crate::strategy`]).
//!
//! The generation strategies invalidate with a per-user **generation**
//! (`user-models:<user>:gen`), not an index of keys: every list entry records the
//! generation it was computed under, and a write to the user's data stores a fresh
//! random generation, which makes every older entry unusable at once without
//! listing or deleting anything. The generation is the layer's guard key, read
//! with the entry, so a hit still costs one KV round trip. A request that read the
//! old generation and writes its entry after the user's write has landed labels it
//! with the old generation, so it is never served: no lost-invalidation race,
//! unlike a read-modify-write index, or `original`'s delete.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{read_through, CacheLayer, Decoded};
use crate::cache::{log_cache_failure, WriteWindow, SAME_KEY_WRITE_INTERVAL_MS};
use crate::catalogue::{catalogue, Model};
use crate::config::{Config, Layer};
use crate::context::RequestContext;
use crate::http::{ApiError, Failure};
use crate::models::{compute_list, ModelFilter};
use crate::platform::{Database, Kv};
use crate::store::Store;
use crate::strategy::{ListLayout, SWR_SOFT_TTL_MS};
use crate::trace::{BackendOp, CacheOutcome, RequestTrace};

/// What a generation strategy's entry holds: the generation it was computed under,
/// the ids of the visible models in order, and when it was computed (`swr`).
#[derive(Serialize, Deserialize)]
struct ListEntry {
    generation: String,
    ids: Vec<String>,
    #[serde(default)]
    at_ms: f64,
}

fn generation_key(user_id: &str) -> String {
    format!("user-models:{user_id}:gen")
}

/// Generations are random so that no read-modify-write is needed to make one new.
fn new_generation(now_ms: f64) -> String {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => format!("t{}", now_ms as u64),
    }
}

fn is_generation(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The key of `user_id`'s entry under `filter` (unprefixed): every input of the
/// list besides the user's providers (which the generation covers): the catalogue
/// version, the always-enabled providers, the filter.
fn entry_key(config: &Config, user_id: &str, filter: &ModelFilter) -> String {
    let always = Sha256::digest(config.always_enabled_providers.join(",").as_bytes());
    format!("user-models:{}:{}:ae-{}:{}", user_id, catalogue().fingerprint, &hex::encode(always)[..12], filter.key())
}

fn encode_entry(models: &[&'static Model], generation: &str, now_ms: f64) -> Option<String> {
    let entry = ListEntry {
        generation: generation.to_owned(),
        ids: models.iter().map(|m| m.id.clone()).collect(),
        at_ms: now_ms,
    };
    serde_json::to_string(&entry).ok()
}

/// A generation strategy's entry for one user and filter (the unfiltered layouts
/// pass the empty filter).
struct UserModels<'a> {
    config: &'a Config,
    user_id: &'a str,
    filter: &'a ModelFilter,
    now_ms: f64,
    /// `swr`: set to the generation of a fresh entry older than the soft TTL.
    aging: Cell<Option<String>>,
    swr: bool,
}

impl CacheLayer for UserModels<'_> {
    type Value = Vec<&'static Model>;
    const LAYER: Layer = Layer::UserModels;
    // A corrupt entry under a good generation is replaced at once.
    const REWRITE_CORRUPT: bool = true;

    fn key(&self) -> String {
        entry_key(self.config, self.user_id, self.filter)
    }

    fn guard_key(&self) -> Option<String> {
        Some(generation_key(self.user_id))
    }

    fn check_guard(&self, generation: &str) -> Result<(), String> {
        if is_generation(generation) {
            Ok(())
        } else {
            Err(format!("not a generation: {} bytes", generation.len()))
        }
    }

    fn encode(&self, models: &Vec<&'static Model>, generation: &str) -> Option<String> {
        encode_entry(models, generation, self.now_ms)
    }

    fn decode(&self, raw: &str, generation: &str) -> Decoded<Vec<&'static Model>> {
        match serde_json::from_str::<ListEntry>(raw) {
            Ok(e) if e.generation == generation => {
                let c = catalogue();
                match e.ids.iter().map(|id| c.get(id)).collect::<Option<Vec<&Model>>>() {
                    Some(models) => {
                        if self.swr && self.now_ms - e.at_ms > SWR_SOFT_TTL_MS {
                            self.aging.set(Some(e.generation));
                        }
                        Decoded::Fresh(models)
                    }
                    None => Decoded::Corrupt("entry names a model not in the catalogue".into()),
                }
            }
            // Computed before the user's last write: stale, replaced.
            Ok(_) => Decoded::Outdated,
            Err(e) => Decoded::Corrupt(e.to_string()),
        }
    }
}

/// `original`: the source's entry, one per user, the full model objects of every
/// model the user may use, no generation.
struct OriginalList<'a> {
    user_id: &'a str,
}

fn original_key(user_id: &str) -> String {
    format!("user-models:{user_id}")
}

impl CacheLayer for OriginalList<'_> {
    type Value = Vec<&'static Model>;
    const LAYER: Layer = Layer::UserModels;
    const REWRITE_CORRUPT: bool = true;

    fn key(&self) -> String {
        original_key(self.user_id)
    }

    fn encode(&self, models: &Vec<&'static Model>, _guard: &str) -> Option<String> {
        serde_json::to_string(models).ok()
    }

    /// The source's key has no catalogue version: an object that is no longer the
    /// catalogue's is treated as a miss here (the source served it).
    fn decode(&self, raw: &str, _guard: &str) -> Decoded<Vec<&'static Model>> {
        let c = catalogue();
        match serde_json::from_str::<Vec<Model>>(raw) {
            Ok(models) => models
                .iter()
                .map(|m| c.get(&m.id).filter(|current| *current == m))
                .collect::<Option<Vec<&'static Model>>>()
                .map_or(Decoded::Outdated, Decoded::Fresh),
            Err(e) => Decoded::Corrupt(e.to_string()),
        }
    }
}

/// The models the caller may use under `filter`, through the `user-models` layer
/// in the request's strategy's layout.
pub async fn lookup<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    user_id: &str,
    filter: &ModelFilter,
) -> Result<Vec<&'static Model>, Failure> {
    let cache = &ctx.cache;
    let layout = cache.strategy().list_layout();
    // The unfiltered layouts cache every model the user may use and filter here.
    let stored_filter = match layout {
        ListLayout::Filtered => filter.clone(),
        ListLayout::Unfiltered | ListLayout::OriginalObjects => ModelFilter::default(),
    };
    let compute = || compute_list(&ctx.store, ctx.config, user_id, &stored_filter);
    let models = if cache.enabled(Layer::UserModels) && uninvalidated(user_id, cache.now_ms()) {
        let start = cache.now_ms();
        let models = compute().await?;
        cache.trace().record_layer(Layer::UserModels, CacheOutcome::Bypass, cache.now_ms() - start);
        models
    } else if layout == ListLayout::OriginalObjects {
        read_through(cache, &OriginalList { user_id }, compute).await?
    } else {
        let layer = UserModels {
            config: ctx.config,
            user_id,
            filter: &stored_filter,
            now_ms: cache.now_ms(),
            aging: Cell::new(None),
            swr: cache.strategy().stale_while_revalidate(),
        };
        let models = read_through(cache, &layer, compute).await?;
        if let Some(generation) = layer.aging.take() {
            spawn_fill(ctx, user_id, stored_filter.clone(), generation);
        }
        models
    };
    Ok(match layout {
        ListLayout::Filtered => models,
        _ => models.into_iter().filter(|m| filter.matches(m)).collect(),
    })
}

/// Computes `user_id`'s list under `filter` and stores it under `generation`, after
/// the response (`swr`'s refresh, `warm`'s fill). Its operations are counted on
/// the request that caused it. An entry stored under a generation a write has
/// since replaced is never served, so a refresh racing a write is harmless.
fn spawn_fill<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    user_id: &str,
    filter: ModelFilter,
    generation: String,
) {
    let cache = &ctx.cache;
    let key = cache.strategy().prefixed(&entry_key(ctx.config, user_id, &filter));
    let ttl = cache.layer_ttl_seconds(Layer::UserModels);
    ctx.trace.count(BackendOp::D1Read, 1);
    ctx.trace.count(BackendOp::KvWrite, 1);
    let (kv, db, config, runtime, user_id) =
        (cache.kv(), ctx.db.clone(), ctx.config.clone(), cache.runtime(), user_id.to_owned());
    cache.runtime().spawn(Box::pin(async move {
        let trace = RequestTrace::new(runtime.now_ms());
        let store = Store::new(&db, &trace, &*runtime);
        let models = match compute_list(&store, &config, &user_id, &filter).await {
            Ok(models) => models,
            Err(e) => {
                runtime.log(&serde_json::json!({"level": "warn", "event": "list_fill_failed", "user": user_id, "error": format!("{e:?}")}).to_string());
                return;
            }
        };
        let Some(value) = encode_entry(&models, &generation, runtime.now_ms()) else { return };
        if let Err(e) = kv.put(&key, &value, ttl).await {
            log_cache_failure(&*runtime, "put", Layer::UserModels, &key, &e.0);
        }
    }));
}

/// How long a write may wait for its invalidation to land: a retry is made only if
/// it can end (window plus its own time-out) within this.
const INVALIDATION_BUDGET_MS: f64 = 2500.0;
/// One write and one retry after KV's one-write-per-second-per-key window.
const MAX_GENERATION_WRITES: u32 = 2;
/// Each generation write waits at most this long (a write the user waits for
/// anyway; far longer than the read time-out).
const GENERATION_WRITE_TIMEOUT_MS: u64 = 1000;

thread_local! {
    /// Per isolate: when this isolate last wrote each user's generation, so that a
    /// user saving twice within a second waits out KV's per-key write limit instead
    /// of hitting it (429).
    static GENERATION_WINDOW: WriteWindow = WriteWindow::default();
    /// Per isolate: users whose last invalidation failed, until when their lists
    /// bypass the cache here (an entry of theirs may be stale until then).
    static UNINVALIDATED_UNTIL_MS: RefCell<HashMap<String, f64>> = RefCell::default();
}

/// Forgets this isolate's generation write windows and bypasses (a bench reset).
pub fn clear_isolate_state() {
    GENERATION_WINDOW.with(|w| w.clear());
    UNINVALIDATED_UNTIL_MS.with(|m| m.borrow_mut().clear());
}

/// Whether `user_id`'s cached lists must not be used in this isolate now.
fn uninvalidated(user_id: &str, now_ms: f64) -> bool {
    UNINVALIDATED_UNTIL_MS.with(|m| {
        let mut m = m.borrow_mut();
        m.retain(|_, until| *until > now_ms);
        m.contains_key(user_id)
    })
}

fn set_uninvalidated(user_id: &str, until_ms: Option<f64>) {
    UNINVALIDATED_UNTIL_MS.with(|m| match until_ms {
        Some(until) => m.borrow_mut().insert(user_id.to_owned(), until),
        None => m.borrow_mut().remove(user_id),
    });
}

/// Makes every `user-models` entry of `user_id` stale before the response of a
/// write is sent (ARCHITECTURE.md, "Failure behaviour"). Skipped when the layer is
/// off for this request and the request did not override the cache mode: then this
/// deployment never fills the layer. An override means one KV namespace serves both
/// arms of an A/B run: a write in the "off" arm still invalidates the "on" arm's
/// entries, in the background, at no cost to the "off" arm's latency.
///
/// A failed invalidation is never ignored. The generation write respects KV's
/// one-write-per-second limit per key (a second save within the second waits for
/// the window), and is retried once when the window has passed (a 429 from a write
/// in another isolate, a KV hiccup), if that can end within
/// [`INVALIDATION_BUDGET_MS`]. If it still
/// fails, the write request answers 503 with `Retry-After` (the data change is saved;
/// repeating the request is safe and retries the invalidation) and this isolate
/// stops serving the user's cached lists until an invalidation succeeds or every
/// entry written before it has expired. Other isolates may serve the old list until
/// then: the 503 says so.
///
/// `original` deletes the user's entry instead, and ignores a failed delete, as
/// the source did ([`invalidate_original`]). `warm` also stores the user's fresh
/// list under the new generation, after the response.
pub async fn invalidate_user<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, user_id: &str) -> Result<(), Failure> {
    if !ctx.cache.strategy().uses_generation() {
        invalidate_original(ctx, user_id).await;
        return Ok(());
    }
    // Outlives every entry written under the previous generation (see module docs).
    let ttl = ctx.cache.layer_ttl_seconds(Layer::UserModels) * 2 + 60;
    let key = generation_key(user_id);
    if !ctx.cache.enabled(Layer::UserModels) {
        // The layer is off for this request (by configuration, or the "off" arm
        // of an A/B): nothing here reads the entries, so nothing waits for the
        // invalidation, but it is still made, after the response — entries
        // written while the layer was on must not be served when it is on again
        // (a cache turned off and on within a TTL, a gradual deployment running
        // both, the other arm of one namespace).
        ctx.cache.write_for_other_arm(Layer::UserModels, key, new_generation(ctx.runtime.now_ms()), ttl);
        return Ok(());
    }
    let start = ctx.runtime.now_ms();
    let mut attempts = 0;
    let error = loop {
        let wait = GENERATION_WINDOW.with(|w| w.wait_ms(&key, ctx.runtime.now_ms()));
        if wait > 0.0 {
            ctx.runtime.sleep(wait.ceil() as u64).await;
        }
        attempts += 1;
        GENERATION_WINDOW.with(|w| w.note(&key, ctx.runtime.now_ms()));
        let generation = new_generation(ctx.runtime.now_ms());
        match ctx.cache.write_now(Layer::UserModels, &key, &generation, ttl, GENERATION_WRITE_TIMEOUT_MS).await {
            Ok(()) => {
                set_uninvalidated(user_id, None);
                if ctx.cache.strategy().warms_on_write() {
                    spawn_fill(ctx, user_id, ModelFilter::default(), generation);
                }
                return Ok(());
            }
            Err(e) => {
                let elapsed = ctx.runtime.now_ms() - start;
                let next_would_end = elapsed + SAME_KEY_WRITE_INTERVAL_MS + GENERATION_WRITE_TIMEOUT_MS as f64;
                if attempts >= MAX_GENERATION_WRITES || next_would_end > INVALIDATION_BUDGET_MS {
                    break e;
                }
            }
        }
    };
    let now = ctx.runtime.now_ms();
    ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Error, now - start);
    set_uninvalidated(user_id, Some(now + ttl as f64 * 1000.0));
    // KV's own words go to the log, not to the caller (they name keys and internals).
    log_cache_failure(ctx.runtime, "invalidate", Layer::UserModels, &key, &error.0);
    let mut e = ApiError::new(
        503,
        format!(
            "your change is saved, but the cached model lists could not be invalidated ({attempts} attempts); \
             other servers may show the old list for up to {} s. Repeat the request: it is safe to repeat and \
             retries the invalidation.",
            ctx.cache.ttl_seconds()
        ),
    );
    e.headers.push(("retry-after".into(), "1".into()));
    Err(e.into())
}

/// `original`'s invalidation, as the source had it: delete the user's entry and
/// carry on whatever KV answers. See [`crate::strategy::Strategy::contract`] for
/// the race this leaves.
async fn invalidate_original<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, user_id: &str) {
    let key = ctx.cache.strategy().prefixed(&original_key(user_id));
    if !ctx.cache.enabled(Layer::UserModels) {
        // Off for this request: still dropped, after the response (see invalidate_user).
        ctx.cache.delete_for_other_arm(Layer::UserModels, key);
        return;
    }
    // The failure is logged by the cache and otherwise ignored: the source's behaviour.
    let _ = ctx.cache.delete_now(Layer::UserModels, &key, GENERATION_WRITE_TIMEOUT_MS).await;
}
