//! The `model-config` layer: one model's configuration by id, keyed by the
//! catalogue's fingerprint so a new catalogue never serves an old entry.

use std::convert::Infallible;

use sha2::{Digest, Sha256};

use super::{read_through, CacheLayer, Decoded};
use crate::cache::Cache;
use crate::catalogue::{catalogue, Model};
use crate::config::Layer;
use crate::platform::Kv;

struct ModelConfig<'a> {
    id: &'a str,
}

impl CacheLayer for ModelConfig<'_> {
    /// `None` for an id the catalogue does not hold, cached like a model (as
    /// `null`): "no such model" must cost what "not yours" costs, down to the
    /// cache outcome, or the layer would tell the two apart. Ids are hashed into
    /// the key, as User-Agents are in the `bot` layer, so any id costs one entry.
    type Value = Option<Model>;
    const LAYER: Layer = Layer::ModelConfig;
    const ADMIT_ANONYMOUS_ON_SECOND_MISS: bool = true;

    fn key(&self) -> String {
        format!("model-config:{}:{}", catalogue().fingerprint, hex::encode(Sha256::digest(self.id.as_bytes())))
    }

    fn encode(&self, model: &Option<Model>, _guard: &str) -> Option<String> {
        serde_json::to_string(model).ok()
    }

    fn decode(&self, raw: &str, _guard: &str) -> Decoded<Option<Model>> {
        match serde_json::from_str::<Option<Model>>(raw) {
            Ok(Some(m)) if m.id == self.id => Decoded::Fresh(Some(m)),
            Ok(Some(_)) => Decoded::Corrupt("entry is another model".into()),
            // The key is the catalogue's fingerprint and the id: a `null` under it
            // stays true until the catalogue changes, which changes the key.
            Ok(None) if catalogue().get(self.id).is_none() => Decoded::Fresh(None),
            Ok(None) => Decoded::Corrupt("entry says no such model, but the catalogue holds it".into()),
            Err(e) => Decoded::Corrupt(e.to_string()),
        }
    }
}

/// The configuration of model `id` through the `model-config` layer.
pub async fn lookup<K: Kv>(cache: &Cache<'_, K>, id: &str) -> Option<Model> {
    let compute = || async { Ok::<_, Infallible>(catalogue().get(id).cloned()) };
    match read_through(cache, &ModelConfig { id }, compute).await {
        Ok(model) => model,
        Err(never) => match never {},
    }
}
