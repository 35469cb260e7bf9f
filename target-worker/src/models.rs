//! The model routes (DESIGN.md §2.4) and the two cache layers that serve them:
//! `model-config` (one model's configuration) and `user-models` (the filtered list
//! a user may use), with the per-user invalidation of §2.5.
//!
//! Invalidation uses a per-user **generation** (`user-models:<user>:gen`), not an
//! index of keys: every list entry records the generation it was computed under,
//! and a write to the user's data stores a fresh random generation, which makes
//! every older entry unusable at once without listing or deleting anything. The
//! generation and the entry are read concurrently, so a hit still costs one KV
//! round trip. A request that read the old generation and writes its entry after
//! the user's write has landed labels it with the old generation, so it is never
//! served: no lost-invalidation race, unlike a read-modify-write index.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::RequestContext;
use crate::auth::Identity;
use crate::cache::CacheRead;
use crate::catalogue::{catalogue, Model};
use crate::config::{Config, Layer};
use crate::http::{ApiError, ApiResponse, Failure};
use crate::platform::{Database, Kv};
use crate::trace::CacheOutcome;

/// The list filters of `GET /models`. Part of the cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFilter {
    pub capability: Option<String>,
    pub model_type: Option<String>,
}

impl ModelFilter {
    /// Reads `?capability=` and `?type=`; anything else, a repeat, or an unknown
    /// value is a 400 that lists what is valid.
    pub fn from_query(pairs: &[(String, String)]) -> Result<ModelFilter, ApiError> {
        let c = catalogue();
        let mut filter = ModelFilter::default();
        for (name, value) in pairs {
            let (slot, valid) = match name.as_str() {
                "capability" => (&mut filter.capability, &c.capabilities),
                "type" => (&mut filter.model_type, &c.types),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter {other:?}; /models takes capability and type"
                    )))
                }
            };
            if slot.is_some() {
                return Err(ApiError::bad_request(format!("query parameter {name:?} given more than once")));
            }
            if !valid.contains(value) {
                return Err(ApiError::bad_request(format!(
                    "unknown {name} {value:?}; valid values: {}",
                    valid.join(", ")
                )));
            }
            *slot = Some(value.clone());
        }
        Ok(filter)
    }

    fn matches(&self, m: &Model) -> bool {
        self.capability.as_ref().is_none_or(|c| m.capabilities.contains(c))
            && self.model_type.as_ref().is_none_or(|t| m.types.contains(t))
    }

    /// Canonical text of the filter for cache keys.
    fn key(&self) -> String {
        format!(
            "capability={}&type={}",
            self.capability.as_deref().unwrap_or("*"),
            self.model_type.as_deref().unwrap_or("*")
        )
    }
}

/// Who may use which provider: the inputs of the access rule besides the model.
struct Access<'a> {
    config: &'a Config,
    /// `None` for anonymous callers (no per-user providers).
    user_enabled: Option<BTreeSet<String>>,
}

impl Access<'_> {
    fn allows(&self, m: &Model) -> bool {
        m.free
            || self.config.always_enabled(&m.provider)
            || self.user_enabled.as_ref().is_some_and(|set| set.contains(&m.provider))
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    models: Vec<&'a Model>,
}

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

/// Every input of the list besides the user's providers (which the generation
/// covers): the catalogue version, the always-enabled providers, the filter.
fn list_key<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, user_id: &str, filter: &ModelFilter) -> String {
    let always = Sha256::digest(ctx.config.always_enabled_providers.join(",").as_bytes());
    format!("user-models:{user_id}:{}:ae-{}:{}", catalogue().fingerprint, &hex::encode(always)[..12], filter.key())
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

fn list_body(models: Vec<&Model>) -> ApiResponse {
    ApiResponse::json(200, &ModelList { models })
}

async fn compute_list<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    user_id: &str,
    filter: &ModelFilter,
) -> Result<Vec<&'static Model>, Failure> {
    let enabled = ctx.store.enabled_providers(user_id).await?;
    let access = Access { config: ctx.config, user_enabled: Some(enabled.into_iter().collect()) };
    Ok(catalogue().models.iter().filter(|m| access.allows(m) && filter.matches(m)).collect())
}

/// `GET /models[?capability=X][&type=Y]`.
pub async fn list<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let filter = ModelFilter::from_query(&ctx.req.query_pairs())?;
    if identity.is_anonymous() {
        // Nothing user-specific to compute or cache: free and always-enabled only.
        let access = Access { config: ctx.config, user_enabled: None };
        return Ok(list_body(catalogue().models.iter().filter(|m| access.allows(m) && filter.matches(m)).collect()));
    }
    let user_id = identity.user_id.as_str();
    if !ctx.cache.enabled(Layer::UserModels) {
        let start = ctx.runtime.now_ms();
        let models = compute_list(ctx, user_id, &filter).await?;
        ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Off, ctx.runtime.now_ms() - start);
        return Ok(list_body(models));
    }

    let start = ctx.runtime.now_ms();
    let (gen_key, key) = (generation_key(user_id), list_key(ctx, user_id, &filter));
    let (generation, entry) = ctx.cache.read_pair(Layer::UserModels, &gen_key, &key).await;
    let generation = match generation {
        CacheRead::Hit(g) if is_generation(&g) => Some(g),
        CacheRead::Hit(g) => {
            ctx.cache.report_garbage(Layer::UserModels, &gen_key, &format!("not a generation: {} bytes", g.len()));
            None
        }
        CacheRead::Miss => Some(String::new()),
        CacheRead::Failed => None,
    };
    // Without a trustworthy generation no entry can be trusted, nor written.
    let Some(generation) = generation else {
        let models = compute_list(ctx, user_id, &filter).await?;
        ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Error, ctx.runtime.now_ms() - start);
        return Ok(list_body(models));
    };
    let outcome = match entry {
        CacheRead::Hit(raw) => match serde_json::from_str::<ListEntry>(&raw) {
            Ok(e) if e.generation == generation => {
                let c = catalogue();
                let models: Option<Vec<&Model>> = e.ids.iter().map(|id| c.get(id)).collect();
                match models {
                    Some(models) => {
                        ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Hit, ctx.runtime.now_ms() - start);
                        return Ok(list_body(models));
                    }
                    None => {
                        ctx.cache.report_garbage(Layer::UserModels, &key, "entry names a model not in the catalogue");
                        CacheOutcome::Error
                    }
                }
            }
            // Computed before the user's last write: stale, replaced below.
            Ok(_) => CacheOutcome::Miss,
            Err(e) => {
                ctx.cache.report_garbage(Layer::UserModels, &key, &e.to_string());
                CacheOutcome::Error
            }
        },
        CacheRead::Miss => CacheOutcome::Miss,
        CacheRead::Failed => {
            let models = compute_list(ctx, user_id, &filter).await?;
            ctx.trace.record_layer(Layer::UserModels, CacheOutcome::Error, ctx.runtime.now_ms() - start);
            return Ok(list_body(models));
        }
    };
    let models = compute_list(ctx, user_id, &filter).await?;
    let entry = ListEntry { generation, ids: models.iter().map(|m| m.id.clone()).collect() };
    if let Ok(value) = serde_json::to_string(&entry) {
        ctx.cache.write_behind(Layer::UserModels, key, value);
    }
    ctx.trace.record_layer(Layer::UserModels, outcome, ctx.runtime.now_ms() - start);
    Ok(list_body(models))
}

/// `GET /models/capabilities`.
pub fn capabilities() -> ApiResponse {
    let c = catalogue();
    ApiResponse::json(200, &serde_json::json!({ "capabilities": c.capabilities, "types": c.types }))
}

/// The configuration of model `id` through the `model-config` layer.
async fn model_config<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, id: &str) -> Option<Model> {
    let start = ctx.runtime.now_ms();
    let from_catalogue = || catalogue().get(id).cloned();
    if !ctx.cache.enabled(Layer::ModelConfig) {
        let model = from_catalogue();
        ctx.trace.record_layer(Layer::ModelConfig, CacheOutcome::Off, ctx.runtime.now_ms() - start);
        return model;
    }
    let key = format!("model-config:{}:{}", catalogue().fingerprint, hex::encode(Sha256::digest(id.as_bytes())));
    let (model, outcome) = match ctx.cache.read(Layer::ModelConfig, &key).await {
        CacheRead::Hit(raw) => match serde_json::from_str::<Model>(&raw) {
            Ok(m) if m.id == id => (Some(m), CacheOutcome::Hit),
            Ok(_) => {
                ctx.cache.report_garbage(Layer::ModelConfig, &key, "entry is another model");
                (from_catalogue(), CacheOutcome::Error)
            }
            Err(e) => {
                ctx.cache.report_garbage(Layer::ModelConfig, &key, &e.to_string());
                (from_catalogue(), CacheOutcome::Error)
            }
        },
        CacheRead::Miss => {
            let model = from_catalogue();
            if let Some(value) = model.as_ref().and_then(|m| serde_json::to_string(m).ok()) {
                ctx.cache.write_behind(Layer::ModelConfig, key, value);
            }
            (model, CacheOutcome::Miss)
        }
        CacheRead::Failed => (from_catalogue(), CacheOutcome::Error),
    };
    ctx.trace.record_layer(Layer::ModelConfig, outcome, ctx.runtime.now_ms() - start);
    model
}

/// `GET /models/:id`: one model, or the same 404 whether it does not exist or the
/// caller may not use it, so the route reveals nothing about other providers.
pub async fn get<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
    id: &str,
) -> Result<ApiResponse, Failure> {
    let not_found = || ApiError::new(404, "model not found");
    let model = model_config(ctx, id).await.ok_or_else(not_found)?;
    let always = ctx.config.always_enabled(&model.provider);
    let allowed = model.free
        || always
        || (!identity.is_anonymous() && ctx.store.provider_enabled(&identity.user_id, &model.provider).await?);
    if !allowed {
        return Err(not_found().into());
    }
    Ok(ApiResponse::json(200, &model))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn filters_are_validated() {
        assert_eq!(ModelFilter::from_query(&q(&[])).unwrap(), ModelFilter::default());
        let f = ModelFilter::from_query(&q(&[("capability", "vision"), ("type", "text-generation")])).unwrap();
        assert_eq!(f.key(), "capability=vision&type=text-generation");
        let e = ModelFilter::from_query(&q(&[("capability", "telepathy")])).unwrap_err();
        assert!(e.message.contains("telepathy") && e.message.contains("vision"), "{}", e.message);
        assert!(ModelFilter::from_query(&q(&[("sort", "x")])).unwrap_err().message.contains("sort"));
        let dup = ModelFilter::from_query(&q(&[("type", "text-generation"), ("type", "text-embeddings")]));
        assert!(dup.unwrap_err().message.contains("more than once"));
    }

    #[test]
    fn keys_differ_by_filter() {
        let all = ModelFilter::default().key();
        let vision = ModelFilter { capability: Some("vision".into()), model_type: None }.key();
        assert_ne!(all, vision);
    }
}
