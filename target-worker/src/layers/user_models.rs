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

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{read_through, CacheLayer, Decoded};
use crate::cache::Cache;
use crate::catalogue::{catalogue, Model};
use crate::config::{Config, Layer};
use crate::context::RequestContext;
use crate::http::Failure;
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
    read_through(cache, &UserModels { config, user_id, filter }, compute).await
}

/// Makes every `user-models` entry of `user_id` stale before the response of a
/// write is sent. Skipped only when the layer is off for this request and the
/// request did not override the cache mode: then this deployment never fills the
/// layer. An override means one KV namespace serves both arms of an A/B run, and
/// a write in the "off" arm must still invalidate the "on" arm's entries.
pub async fn invalidate_user<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, user_id: &str) {
    if !ctx.cache.enabled(Layer::UserModels) && !ctx.layers_overridden {
        return;
    }
    let start = ctx.runtime.now_ms();
    // Outlives every entry written under the previous generation (see module docs).
    let ttl = ctx.cache.ttl_seconds() * 2 + 60;
    let generation = new_generation(ctx.runtime.now_ms());
    if ctx.cache.write_now(Layer::UserModels, &generation_key(user_id), &generation, ttl).await.is_err() {
        ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Error, ctx.runtime.now_ms() - start);
    }
}
