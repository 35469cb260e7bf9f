//! Cache layers as one unit. Each layer is a small description ([`CacheLayer`]:
//! its key, how a value is encoded and decoded, an optional guard key read with
//! the entry) and [`read_through`] does the rest the same way for all of them:
//! read (bounded by the KV time-out) → decode or report the entry as corrupt →
//! compute on a miss or a failure → write-behind → record the outcome and time in
//! the request's trace.
//!
//! Adding a layer: a file here with its description and the function a handler
//! calls, and its name in [`crate::config::Layer`] (the layer list).

pub mod bot;
pub mod model_config;
pub mod user_models;

use std::future::Future;

use crate::cache::{Cache, CacheRead};
use crate::config::Layer;
use crate::platform::Kv;
use crate::trace::CacheOutcome;

/// What a layer makes of the bytes stored under its key.
pub enum Decoded<V> {
    /// A value the layer can serve.
    Fresh(V),
    /// A well-formed entry that no longer applies (computed before an
    /// invalidation): a miss, replaced by a fresh entry.
    Outdated,
    /// Bytes the layer never writes: logged, and the answer computed without them.
    Corrupt(String),
}

/// One cache layer: which entry a request uses and how it is stored.
pub trait CacheLayer {
    type Value;
    const LAYER: Layer;
    /// A corrupt entry is overwritten with the computed value. Off by default: a
    /// KV that returns garbage is treated like a failing one and gets no writes.
    const REWRITE_CORRUPT: bool = false;
    /// An anonymous caller's miss is written only when this isolate has missed
    /// the same key before ([`Cache::admits_fill`]): keys a caller chooses freely
    /// (a User-Agent, a model id) would otherwise cost a KV write each — a
    /// write quota anyone can spend. Off for layers only users reach.
    const ADMIT_ANONYMOUS_ON_SECOND_MISS: bool = false;

    /// The KV key of this request's entry, before the strategy's prefix
    /// ([`crate::strategy::Strategy::key_prefix`]).
    fn key(&self) -> String;

    /// A key read concurrently with the entry, whose value every served entry
    /// must have been written under (a generation; shared by the strategies, so
    /// not prefixed). A missing guard reads as
    /// `""`; an unreadable one disables the layer for the request.
    fn guard_key(&self) -> Option<String> {
        None
    }

    /// Whether a value read under [`CacheLayer::guard_key`] is one this layer
    /// writes; `Err` says what is wrong with it.
    fn check_guard(&self, _guard: &str) -> Result<(), String> {
        Ok(())
    }

    /// The entry to store for `value` (computed under `guard`); `None` stores nothing.
    fn encode(&self, value: &Self::Value, guard: &str) -> Option<String>;

    fn decode(&self, raw: &str, guard: &str) -> Decoded<Self::Value>;
}

/// The value for this request through `layer`: served from KV when the layer is on
/// and holds a fresh entry, otherwise `compute`d (and stored after the response on
/// a miss). A failure of `compute` (the database) is returned as is.
pub async fn read_through<K, L, F, Fut, E>(cache: &Cache<'_, K>, layer: &L, compute: F) -> Result<L::Value, E>
where
    K: Kv,
    L: CacheLayer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<L::Value, E>>,
{
    let start = cache.now_ms();
    let (value, outcome) = lookup(cache, layer, compute).await?;
    cache.trace().record_layer(L::LAYER, outcome, cache.now_ms() - start);
    Ok(value)
}

async fn lookup<K, L, F, Fut, E>(cache: &Cache<'_, K>, layer: &L, compute: F) -> Result<(L::Value, CacheOutcome), E>
where
    K: Kv,
    L: CacheLayer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<L::Value, E>>,
{
    if !cache.enabled(L::LAYER) {
        return Ok((compute().await?, CacheOutcome::Off));
    }
    let key = cache.strategy().prefixed(&layer.key());
    let (guard, entry) = match layer.guard_key() {
        None => (String::new(), cache.read(L::LAYER, &key).await),
        Some(guard_key) => {
            let (guard, entry) = cache.read_pair(L::LAYER, &guard_key, &key).await;
            if guard == CacheRead::Bypassed {
                return Ok((compute().await?, CacheOutcome::Bypass));
            }
            match trusted_guard(cache, layer, &guard_key, guard) {
                Some(guard) => (guard, entry),
                // Without a trustworthy guard no entry can be trusted, nor written.
                None => return Ok((compute().await?, CacheOutcome::Error)),
            }
        }
    };
    let outcome = match entry {
        CacheRead::Hit(raw) => match layer.decode(&raw, &guard) {
            Decoded::Fresh(value) => return Ok((value, CacheOutcome::Hit)),
            Decoded::Outdated => CacheOutcome::Miss,
            Decoded::Corrupt(detail) => {
                cache.report_garbage(L::LAYER, &key, &detail);
                if !L::REWRITE_CORRUPT {
                    return Ok((compute().await?, CacheOutcome::Error));
                }
                CacheOutcome::Error
            }
        },
        CacheRead::Miss => CacheOutcome::Miss,
        // KV is failing: do not add a write to its load; compute and move on.
        CacheRead::Failed => return Ok((compute().await?, CacheOutcome::Error)),
        CacheRead::Bypassed => return Ok((compute().await?, CacheOutcome::Bypass)),
    };
    let value = compute().await?;
    if L::ADMIT_ANONYMOUS_ON_SECOND_MISS && !cache.admits_fill(&key) {
        return Ok((value, outcome));
    }
    if let Some(encoded) = layer.encode(&value, &guard) {
        cache.write_behind(L::LAYER, key, encoded, cache.layer_ttl_seconds(L::LAYER));
    }
    Ok((value, outcome))
}

fn trusted_guard<K: Kv, L: CacheLayer>(
    cache: &Cache<'_, K>,
    layer: &L,
    guard_key: &str,
    read: CacheRead,
) -> Option<String> {
    match read {
        CacheRead::Hit(g) => match layer.check_guard(&g) {
            Ok(()) => Some(g),
            Err(detail) => {
                cache.report_garbage(L::LAYER, guard_key, &detail);
                None
            }
        },
        CacheRead::Miss => Some(String::new()),
        CacheRead::Failed | CacheRead::Bypassed => None,
    }
}
