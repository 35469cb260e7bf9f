//! The model routes (ARCHITECTURE.md, "The worker"): `GET /models`,
//! `/models/capabilities` and `/models/:id`. Their cache layers live in
//! [`crate::layers::user_models`] (the filtered list a user may use, with the
//! per-user invalidation) and [`crate::layers::model_config`] (one model's
//! configuration).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::auth::Identity;
use crate::catalogue::{catalogue, Model};
use crate::config::Config;
use crate::context::RequestContext;
use crate::http::{ApiError, ApiResponse, Failure};
use crate::layers::{model_config, user_models};
use crate::platform::{Database, Kv};
use crate::store::Store;

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

    pub(crate) fn matches(&self, m: &Model) -> bool {
        self.capability.as_ref().is_none_or(|c| m.capabilities.contains(c))
            && self.model_type.as_ref().is_none_or(|t| m.types.contains(t))
    }

    /// Canonical text of the filter for cache keys.
    pub(crate) fn key(&self) -> String {
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

fn list_body(models: Vec<&Model>) -> ApiResponse {
    ApiResponse::json(200, &ModelList { models })
}

/// The models `user_id` may use under `filter`, from the database: one query.
pub(crate) async fn compute_list<D: Database>(
    store: &Store<'_, D>,
    config: &Config,
    user_id: &str,
    filter: &ModelFilter,
) -> Result<Vec<&'static Model>, Failure> {
    let enabled = store.enabled_providers(user_id).await?;
    let access = Access { config, user_enabled: Some(enabled.into_iter().collect()) };
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
    let models = user_models::lookup(ctx, identity.user_id.as_str(), &filter).await?;
    Ok(list_body(models))
}

/// `GET /models/capabilities`.
pub fn capabilities() -> ApiResponse {
    let c = catalogue();
    ApiResponse::json(200, &serde_json::json!({ "capabilities": c.capabilities, "types": c.types }))
}

/// `GET /models/:id`: one model, or the same 404 whether it does not exist or the
/// caller may not use it, so the route reveals nothing about other providers: the
/// same body and the same work. For an authenticated caller, an id the catalogue
/// does not hold still costs the provider query a "not yours" answer costs (for a
/// provider no row can hold), so neither the time nor `x-ops` tells the two apart.
pub async fn get<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
    id: &str,
) -> Result<ApiResponse, Failure> {
    let model = model_config::lookup(&ctx.cache, id).await;
    let (free, provider) = match &model {
        Some(m) => (m.free || ctx.config.always_enabled(&m.provider), m.provider.as_str()),
        None => (false, NO_PROVIDER),
    };
    // The query runs before `model.is_some()` is looked at: that order is the
    // equal work.
    let allowed = free
        || (!identity.is_anonymous()
            && ctx.store.provider_enabled(&identity.user_id, provider).await?
            && model.is_some());
    match model {
        Some(model) if allowed => Ok(ApiResponse::json(200, &model)),
        _ => Err(ApiError::new(404, "model not found").into()),
    }
}

/// A provider id no `provider_settings` row holds (ids are validated against the
/// provider list on every write).
const NO_PROVIDER: &str = "\u{0}no-such-provider";

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
