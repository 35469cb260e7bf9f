//! The request-scoped cache service: KV reads and fire-and-forget writes for the
//! layers switched on for this request, timed into the request's trace.

use std::rc::Rc;

use crate::config::{CacheLayers, Layer};
use crate::platform::{Kv, Runtime};
use crate::trace::RequestTrace;

/// The result of looking a key up in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRead {
    Hit(String),
    Miss,
    /// KV failed; the caller computes the answer instead.
    Failed,
}

pub struct Cache<'r, K: Kv> {
    kv: K,
    layers: CacheLayers,
    ttl_seconds: u64,
    runtime: Rc<dyn Runtime>,
    trace: &'r RequestTrace,
}

/// One JSON log line for a failed cache operation (DESIGN.md §2.6).
pub fn log_cache_failure(runtime: &dyn Runtime, op: &str, layer: Layer, key: &str, error: &str) {
    runtime.log(
        &serde_json::json!({
            "level": "warn",
            "event": "cache_failure",
            "op": op,
            "layer": layer.name(),
            "key": key,
            "error": error,
        })
        .to_string(),
    );
}

impl<'r, K: Kv> Cache<'r, K> {
    pub fn new(
        kv: K,
        layers: CacheLayers,
        ttl_seconds: u64,
        runtime: Rc<dyn Runtime>,
        trace: &'r RequestTrace,
    ) -> Self {
        Cache {
            kv,
            layers,
            ttl_seconds,
            runtime,
            trace,
        }
    }

    pub fn enabled(&self, layer: Layer) -> bool {
        self.layers.contains(layer)
    }

    /// Reads `key`; the KV time goes into the trace and a failure is logged.
    pub async fn read(&self, layer: Layer, key: &str) -> CacheRead {
        let start = self.runtime.now_ms();
        let result = self.kv.get(key).await;
        self.trace.add_kv(self.runtime.now_ms() - start);
        match result {
            Ok(Some(v)) => CacheRead::Hit(v),
            Ok(None) => CacheRead::Miss,
            Err(e) => {
                log_cache_failure(&*self.runtime, "get", layer, key, &e.0);
                CacheRead::Failed
            }
        }
    }

    /// Logs a value read from KV that does not decode: treated like a failed read.
    pub fn report_garbage(&self, layer: Layer, key: &str, detail: &str) {
        log_cache_failure(&*self.runtime, "decode", layer, key, detail);
    }

    /// Stores `value` under `key` after the response is sent (`ctx.wait_until` in the
    /// Worker), so a slow or failing KV never delays the answer.
    pub fn write_behind(&self, layer: Layer, key: String, value: String) {
        let kv = self.kv.clone();
        let runtime = Rc::clone(&self.runtime);
        let ttl = self.ttl_seconds;
        self.runtime.spawn(Box::pin(async move {
            if let Err(e) = kv.put(&key, &value, ttl).await {
                log_cache_failure(&*runtime, "put", layer, &key, &e.0);
            }
        }));
    }
}
