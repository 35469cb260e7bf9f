//! Bench namespaces (`x-bench-namespace: <id>`, bench secret): every cache key of a
//! request is put under `ns/<id>/`, in KV, in the modelled edge copies and write
//! windows (they see the namespaced key) and in the `memory` layer (the cache
//! scopes its keys alike). A bench run in a fresh namespace starts with nothing
//! any earlier run left — in KV and in every isolate, which no reset call can
//! reach — so "each strategy starts cold" holds by construction. Requests without
//! the header use the bare keys, as production's do.

use crate::platform::{KeyPage, Kv, KvError};

/// The prefix all namespaces live under: what a reset clears of old runs.
pub const ROOT: &str = "ns/";

/// The longest namespace id (KV keys are at most 512 bytes).
const MAX_ID: usize = 40;

/// The key prefix of namespace `id`, or why the id is not one.
pub fn prefix(id: &str) -> Result<String, String> {
    let id = id.trim();
    let ok =
        !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(format!("{ROOT}{id}/"))
    } else {
        Err(format!("{id:?} is not a namespace: 1–{MAX_ID} characters of A–Z, a–z, 0–9, - and _"))
    }
}

/// A KV store whose keys live under a prefix (empty: the bare keys).
#[derive(Clone)]
pub struct NamespacedKv<K: Kv> {
    inner: K,
    prefix: String,
}

impl<K: Kv> NamespacedKv<K> {
    pub fn new(inner: K, prefix: String) -> Self {
        NamespacedKv { inner, prefix }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl<K: Kv> Kv for NamespacedKv<K> {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.inner.get(&self.key(key)).await
    }
    async fn get_cached(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        self.inner.get_cached(&self.key(key), cache_ttl_s).await
    }
    async fn get_bulk(&self, keys: &[String], cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.inner.get_bulk(&keys, cache_ttl_s).await
    }
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError> {
        self.inner.put(&self.key(key), value, ttl_seconds).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(&self.key(key)).await
    }
    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError> {
        let page = self.inner.list_page(&self.key(prefix), cursor).await?;
        let keys =
            page.keys.into_iter().map(|k| k.strip_prefix(&self.prefix).map(str::to_owned).unwrap_or(k)).collect();
        Ok(KeyPage { keys, cursor: page.cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_prefixed() {
        assert_eq!(prefix("run-1_a").unwrap(), "ns/run-1_a/");
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(41)] {
            assert!(prefix(bad).is_err(), "{bad:?}");
        }
    }
}
