//! The built-in model catalogue (ARCHITECTURE.md, "Request path"): pure data, parsed once per
//! isolate from `data/models.json`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const CATALOGUE_JSON: &str = include_str!("../data/models.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub description: String,
    pub types: Vec<String>,
    pub capabilities: Vec<String>,
    pub context_window: u32,
    pub max_tokens: u32,
    pub cost_per_1k_input: f64,
    pub cost_per_1k_output: f64,
    pub free: bool,
    pub featured: bool,
    pub beta: bool,
    /// 1 (slowest) to 5 (fastest).
    pub speed: u8,
}

#[derive(Deserialize)]
struct CatalogueFile {
    version: u32,
    models: Vec<Model>,
}

#[derive(Debug)]
pub struct Catalogue {
    /// Sorted by id.
    pub models: Vec<Model>,
    pub capabilities: Vec<String>,
    pub types: Vec<String>,
    /// Changes whenever the data changes; part of every cache key derived from the
    /// catalogue, so a new deployment never serves entries computed from the old one.
    pub fingerprint: String,
}

impl Catalogue {
    fn parse(json: &str) -> Result<Catalogue, String> {
        let file: CatalogueFile = serde_json::from_str(json).map_err(|e| format!("models.json: {e}"))?;
        let mut models = file.models;
        models.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = models.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(format!("models.json: duplicate id {}", w[0].id));
        }
        if let Some(m) = models.iter().find(|m| !crate::providers::is_known(&m.provider)) {
            return Err(format!("models.json: {} has unknown provider {}", m.id, m.provider));
        }
        let collect = |f: fn(&Model) -> &Vec<String>| -> Vec<String> {
            models.iter().flat_map(|m| f(m).iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
        };
        let capabilities = collect(|m| &m.capabilities);
        let types = collect(|m| &m.types);
        let digest = hex::encode(Sha256::digest(json.as_bytes()));
        Ok(Catalogue { fingerprint: format!("v{}-{}", file.version, &digest[..12]), models, capabilities, types })
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.binary_search_by(|m| m.id.as_str().cmp(id)).ok().map(|i| &self.models[i])
    }

    pub fn providers(&self) -> BTreeSet<&str> {
        self.models.iter().map(|m| m.provider.as_str()).collect()
    }
}

/// The catalogue of this build. The data is compiled in and checked by a unit test,
/// so parsing cannot fail at run time.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| Catalogue::parse(CATALOGUE_JSON).expect("data/models.json is validated by tests"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_size_and_shape() {
        let c = catalogue();
        assert!(c.models.len() >= 120, "{} models", c.models.len());
        assert!(c.providers().len() >= 15, "{} providers", c.providers().len());
        for m in &c.models {
            assert!((1..=5).contains(&m.speed), "{}: speed {}", m.id, m.speed);
            assert!(!m.types.is_empty() && !m.name.is_empty() && !m.description.is_empty(), "{}", m.id);
            assert!(m.id.starts_with(&format!("{}/", m.provider)), "{}", m.id);
            assert!(m.cost_per_1k_input >= 0.0 && m.cost_per_1k_output >= 0.0, "{}", m.id);
        }
        assert!(c.models.iter().any(|m| m.free) && c.models.iter().any(|m| !m.free));
        assert!(c.capabilities.contains(&"vision".to_string()));
        assert!(c.types.contains(&"text-embeddings".to_string()));
        assert!(c.get("openai/gpt-4.1").is_some());
        assert!(c.get("openai/nope").is_none());
    }

    #[test]
    fn every_catalogue_provider_is_configurable() {
        for p in catalogue().providers() {
            assert!(crate::providers::is_known(p), "{p}");
        }
    }

    #[test]
    fn bad_data_is_reported() {
        assert!(Catalogue::parse("{").is_err());
        let dup = r#"{"version":1,"models":[MODEL,MODEL]}"#.replace(
            "MODEL",
            r#"{"id":"openai/a","provider":"openai","name":"A","description":"d","types":["t"],"capabilities":[],
               "context_window":1,"max_tokens":1,"cost_per_1k_input":0,"cost_per_1k_output":0,"free":true,
               "featured":false,"beta":false,"speed":3}"#,
        );
        assert!(Catalogue::parse(&dup).unwrap_err().contains("duplicate"));
    }
}
