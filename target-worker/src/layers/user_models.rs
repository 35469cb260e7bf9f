//! The `user-models` layer: the filtered list of models a user may use, and its
//! per-user invalidation.
//!
//! Invalidation uses a per-user **generation** (`user-models:<user>:gen`), not an
//! index of keys: every list entry records the generation it was computed under,
//! and a write to the user's data stores a fresh random generation, which makes
//! every older entry unusable at once without listing or deleting anything. The
//! generation is the layer's guard key, read concurrently with the entry, so a hit
//! still costs one KV round trip. A request that read the old generation and writes
//! its entry after the user's write has landed labels it with the old generation,
//! so it is never served: no lost-invalidation race, unlike a read-modify-write
//! index.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{read_through, CacheLayer, Decoded};
use crate::cache::{Cache, WriteWindow, SAME_KEY_WRITE_INTERVAL_MS};
use crate::catalogue::{catalogue, Model};
use crate::config::{Config, Layer};
use crate::context::RequestContext;
use crate::http::{ApiError, Failure};
use crate::models::ModelFilter;
use crate::platform::{Database, Kv};
use crate::trace::CacheOutcome;

/// What a `user-models` entry holds: the generation it was computed under and the
/// ids of the visible models, in order.
#[derive(Serialize, Deserialize)]
struct ListEntry {
    generation: String,
    ids: Vec<String>,
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

struct UserModels<'a> {
    config: &'a Config,
    user_id: &'a str,
    filter: &'a ModelFilter,
}

impl CacheLayer for UserModels<'_> {
    type Value = Vec<&'static Model>;
    const LAYER: Layer = Layer::UserModels;
    // A corrupt entry under a good generation is replaced at once.
    const REWRITE_CORRUPT: bool = true;

    /// Every input of the list besides the user's providers (which the generation
    /// covers): the catalogue version, the always-enabled providers, the filter.
    fn key(&self) -> String {
        let always = Sha256::digest(self.config.always_enabled_providers.join(",").as_bytes());
        format!(
            "user-models:{}:{}:ae-{}:{}",
            self.user_id,
            catalogue().fingerprint,
            &hex::encode(always)[..12],
            self.filter.key()
        )
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
        let entry = ListEntry { generation: generation.to_owned(), ids: models.iter().map(|m| m.id.clone()).collect() };
        serde_json::to_string(&entry).ok()
    }

    fn decode(&self, raw: &str, generation: &str) -> Decoded<Vec<&'static Model>> {
        match serde_json::from_str::<ListEntry>(raw) {
            Ok(e) if e.generation == generation => {
                let c = catalogue();
                match e.ids.iter().map(|id| c.get(id)).collect::<Option<Vec<&Model>>>() {
                    Some(models) => Decoded::Fresh(models),
                    None => Decoded::Corrupt("entry names a model not in the catalogue".into()),
                }
            }
            // Computed before the user's last write: stale, replaced.
            Ok(_) => Decoded::Outdated,
            Err(e) => Decoded::Corrupt(e.to_string()),
        }
    }
}

/// The models `user_id` may use under `filter`, through the `user-models` layer;
/// `compute` reads them from the database.
pub async fn lookup<K, F, Fut>(
    cache: &Cache<'_, K>,
    config: &Config,
    user_id: &str,
    filter: &ModelFilter,
    compute: F,
) -> Result<Vec<&'static Model>, Failure>
where
    K: Kv,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<&'static Model>, Failure>>,
{
    if cache.enabled(Layer::UserModels) && uninvalidated(user_id, cache.now_ms()) {
        let start = cache.now_ms();
        let models = compute().await?;
        cache.trace().record_layer(Layer::UserModels, CacheOutcome::Bypass, cache.now_ms() - start);
        return Ok(models);
    }
    read_through(cache, &UserModels { config, user_id, filter }, compute).await
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
pub async fn invalidate_user<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, user_id: &str) -> Result<(), Failure> {
    // Outlives every entry written under the previous generation (see module docs).
    let ttl = ctx.cache.ttl_seconds() * 2 + 60;
    let key = generation_key(user_id);
    if !ctx.cache.enabled(Layer::UserModels) {
        if ctx.layers_overridden {
            // The "off" arm of an A/B on one namespace: a cache-off deployment
            // would not invalidate at all, so this arm must not wait for it (nor
            // for KV's per-key window); the write only keeps the "on" arm's
            // entries right, and lands after the response.
            ctx.cache.write_in_background(Layer::UserModels, key, new_generation(ctx.runtime.now_ms()), ttl);
        }
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
    let mut e = ApiError::new(
        503,
        format!(
            "your change is saved, but the cached model lists could not be invalidated ({attempts} attempts; KV: {}); \
             other servers may show the old list for up to {} s. Repeat the request: it is safe to repeat and \
             retries the invalidation.",
            error.0,
            ctx.cache.ttl_seconds()
        ),
    );
    e.headers.push(("retry-after".into(), "1".into()));
    Err(e.into())
}
