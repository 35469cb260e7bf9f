//! The request-scoped cache service: KV reads (with a time-out) and writes for the
//! layers switched on for this request, timed into the request's trace, plus the
//! bench-only KV fault injection (ARCHITECTURE.md, "Failure behaviour").

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::future::{self, Either};

use crate::breaker::{BreakerPolicy, KvBreaker, ReadResult};
use crate::config::{CacheLayers, Config, Layer};
use crate::memory;
use crate::platform::{KeyPage, Kv, KvError, Runtime};
use crate::strategy::Strategy;
use crate::trace::{BackendOp, RequestTrace};

/// The result of looking a key up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRead {
    Hit(String),
    Miss,
    /// KV failed or timed out; the caller computes the answer instead.
    Failed,
    /// Not asked: the circuit breaker is open. The caller computes the answer.
    Bypassed,
}

/// A KV failure mode injected per request with `x-bench-kv-fault` (bench secret
/// required), so tests and the benchmark can exercise the failure paths under real workerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFault {
    /// Every KV operation fails.
    Error,
    /// Every KV operation is delayed by this many milliseconds.
    Slow(u64),
    /// Reads return bytes that are no value the worker ever wrote.
    Garbage,
    /// Writes and deletes fail; reads work (a stale entry stays readable).
    WriteError,
    /// Workers KV's limit of one write per second to the same key, enforced per
    /// isolate: a second write to a key within a second fails as production's
    /// would (429).
    WriteLimit,
}

/// What a `garbage` read returns: invalid for every layer's format.
pub const GARBAGE_VALUE: &str = "\u{1}garbage\u{fffd}{not json";
const DEFAULT_SLOW_MS: u64 = 2000;

impl KvFault {
    /// `error`, `garbage`, `write-error`, `write-limit`, `slow` or `slow:<ms>`.
    pub fn parse(spec: &str) -> Result<KvFault, String> {
        match spec.trim() {
            "error" => Ok(KvFault::Error),
            "garbage" => Ok(KvFault::Garbage),
            "write-error" => Ok(KvFault::WriteError),
            "write-limit" => Ok(KvFault::WriteLimit),
            "slow" => Ok(KvFault::Slow(DEFAULT_SLOW_MS)),
            other => other.strip_prefix("slow:").and_then(|ms| ms.parse().ok()).map(KvFault::Slow).ok_or_else(|| {
                format!(
                    "unknown KV fault {other:?}; expected error, garbage, write-error, write-limit, slow or slow:<ms>"
                )
            }),
        }
    }
}

/// A KV store with an optional injected fault; a no-op wrapper without one.
#[derive(Clone)]
pub struct FaultyKv<K: Kv> {
    inner: K,
    fault: Option<KvFault>,
    runtime: Rc<dyn Runtime>,
}

impl<K: Kv> FaultyKv<K> {
    pub fn new(inner: K, fault: Option<KvFault>, runtime: Rc<dyn Runtime>) -> Self {
        FaultyKv { inner, fault, runtime }
    }

    async fn before(&self) -> Result<(), KvError> {
        match self.fault {
            Some(KvFault::Error) => Err(KvError("injected fault: error".into())),
            Some(KvFault::Slow(ms)) => {
                self.runtime.sleep(ms).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The write-path faults, on top of [`FaultyKv::before`].
    fn before_write(&self, key: &str) -> Result<(), KvError> {
        match self.fault {
            Some(KvFault::WriteError) => Err(KvError("injected fault: write-error".into())),
            Some(KvFault::WriteLimit) => same_key_write_allowed(key, self.runtime.now_ms()),
            _ => Ok(()),
        }
    }
}

/// Workers KV accepts one write per second to the same key.
pub const SAME_KEY_WRITE_INTERVAL_MS: f64 = 1000.0;

/// When each key was last written, kept only while KV's one-second window for it
/// is open. One per purpose: the `write-limit` fault (KV enforcing the limit) and
/// the invalidation (this worker respecting it) must not share one.
#[derive(Default)]
pub struct WriteWindow(RefCell<HashMap<String, f64>>);

impl WriteWindow {
    /// Milliseconds until `key` may be written again (0: now).
    pub fn wait_ms(&self, key: &str, now_ms: f64) -> f64 {
        let mut last = self.0.borrow_mut();
        // Bounded: only entries younger than the window matter.
        last.retain(|_, t| now_ms - *t < SAME_KEY_WRITE_INTERVAL_MS);
        last.get(key).map_or(0.0, |t| t + SAME_KEY_WRITE_INTERVAL_MS - now_ms)
    }

    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    pub fn note(&self, key: &str, now_ms: f64) {
        self.0.borrow_mut().insert(key.to_owned(), now_ms);
    }

    /// KV's answer to a write of `key` at `now_ms`: a 429 (`who` says whose
    /// limit) while its window is open, else the write is noted and allowed.
    pub fn admit(&self, key: &str, now_ms: f64, who: &str) -> Result<(), KvError> {
        if self.wait_ms(key, now_ms) > 0.0 {
            return Err(KvError(format!("{who}429 Too Many Requests (KV allows one write per second to {key})")));
        }
        self.note(key, now_ms);
        Ok(())
    }
}

thread_local! {
    /// Per isolate, for the `write-limit` fault.
    static FAULT_WINDOW: WriteWindow = WriteWindow::default();
}

/// Forgets this isolate's write windows and anonymous sightings (a bench reset).
pub fn clear_write_windows() {
    FAULT_WINDOW.with(WriteWindow::clear);
    DOORKEEPER.with(|d| d.borrow_mut().clear());
}

fn same_key_write_allowed(key: &str, now_ms: f64) -> Result<(), KvError> {
    FAULT_WINDOW.with(|window| window.admit(key, now_ms, "injected fault: write-limit: "))
}

impl<K: Kv> Kv for FaultyKv<K> {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.get_cached(key, None).await
    }
    async fn get_cached(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        self.before().await?;
        if self.fault == Some(KvFault::Garbage) {
            return Ok(Some(GARBAGE_VALUE.to_owned()));
        }
        self.inner.get_cached(key, cache_ttl_s).await
    }
    async fn get_bulk(&self, keys: &[String], cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        self.before().await?;
        if self.fault == Some(KvFault::Garbage) {
            return Ok(vec![Some(GARBAGE_VALUE.to_owned()); keys.len()]);
        }
        self.inner.get_bulk(keys, cache_ttl_s).await
    }
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError> {
        self.before().await?;
        self.before_write(key)?;
        self.inner.put(key, value, ttl_seconds).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.before().await?;
        self.before_write(key)?;
        self.inner.delete(key).await
    }
    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError> {
        self.before().await?;
        self.inner.list_page(prefix, cursor).await
    }
}

/// One JSON log line for a failed cache operation.
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

pub struct Cache<'r, K: Kv> {
    kv: K,
    layers: CacheLayers,
    strategy: Strategy,
    /// The modelled edge location (`x-bench-location`): the `memory` layer's too.
    location: u32,
    ttl_seconds: u64,
    timeout_ms: u64,
    breaker: Rc<KvBreaker>,
    policy: BreakerPolicy,
    runtime: Rc<dyn Runtime>,
    trace: &'r RequestTrace,
    /// The bench namespace's key prefix (`crate::namespace`), for the `memory`
    /// layer; KV sees it through its [`crate::namespace::NamespacedKv`].
    namespace: String,
    /// The request carries no credential: its misses are written only on a
    /// second sighting ([`Cache::admits_fill`]).
    anonymous: bool,
}

/// A KV read that owns what it reads, so it can outlive its request.
type PendingRead = Pin<Box<dyn Future<Output = Result<Vec<Option<String>>, KvError>>>>;

/// Keys an isolate has missed once for an anonymous caller, before it admits
/// their fills: cleared whole when full (a doorkeeper, as TinyLFU's).
const DOORKEEPER_MAX: usize = 10_000;

thread_local! {
    static DOORKEEPER: RefCell<std::collections::HashSet<String>> = RefCell::default();
}

/// Which cache a request uses: its layers, strategy and modelled location.
#[derive(Debug, Clone, Copy)]
pub struct CacheChoice {
    pub layers: CacheLayers,
    pub strategy: Strategy,
    pub location: u32,
}

impl<'r, K: Kv> Cache<'r, K> {
    /// `breaker` is the isolate's ([`KvBreaker::for_isolate`]); TTL, read time-out
    /// and breaker policy come from `config`.
    pub fn new(
        kv: K,
        choice: CacheChoice,
        config: &Config,
        breaker: Rc<KvBreaker>,
        runtime: Rc<dyn Runtime>,
        trace: &'r RequestTrace,
    ) -> Self {
        Cache {
            kv,
            layers: choice.layers,
            strategy: choice.strategy,
            location: choice.location,
            ttl_seconds: config.ttl_seconds,
            timeout_ms: config.kv_timeout_ms,
            breaker,
            policy: config.kv_breaker,
            runtime,
            trace,
            namespace: String::new(),
            anonymous: false,
        }
    }

    /// The cache of a caller without a credential (`true`), or of one with.
    pub fn for_anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Whether a miss of `key` may be written: always for a caller with a
    /// credential; for an anonymous one, when this isolate missed the key
    /// before. Random keys (a flood of made-up User-Agents or ids) are each seen
    /// once and never written; keys real traffic repeats are written on their
    /// second miss.
    pub fn admits_fill(&self, key: &str) -> bool {
        if !self.anonymous {
            return true;
        }
        let key = format!("{}{key}", self.namespace);
        DOORKEEPER.with(|d| {
            let mut d = d.borrow_mut();
            if d.contains(&key) {
                return true;
            }
            if d.len() >= DOORKEEPER_MAX {
                d.clear();
            }
            d.insert(key);
            false
        })
    }

    /// The cache with its `memory` layer in the bench namespace `prefix` (the KV
    /// it was built with must be in the same one).
    pub fn in_namespace(mut self, prefix: String) -> Self {
        self.namespace = prefix;
        self
    }

    pub fn enabled(&self, layer: Layer) -> bool {
        self.layers.contains(layer)
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The deployment's `CACHE_TTL_SECONDS`.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// How long `layer`'s entries live under this request's strategy.
    pub fn layer_ttl_seconds(&self, layer: Layer) -> u64 {
        self.strategy.ttl_seconds(layer, self.ttl_seconds)
    }

    pub fn now_ms(&self) -> f64 {
        self.runtime.now_ms()
    }

    /// The request's trace, where layers record their outcome and time.
    pub fn trace(&self) -> &'r RequestTrace {
        self.trace
    }

    /// The KV store (with the request's fault and profile), for background work
    /// that outlives the request.
    pub fn kv(&self) -> K {
        self.kv.clone()
    }

    pub fn runtime(&self) -> Rc<dyn Runtime> {
        Rc::clone(&self.runtime)
    }

    /// Awaits a KV operation for at most `timeout_ms`, adding its time to the
    /// trace's `kv` entry.
    async fn bounded<T>(&self, timeout_ms: u64, op: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
        let start = self.runtime.now_ms();
        let op = std::pin::pin!(op);
        let result = match future::select(op, self.runtime.sleep(timeout_ms)).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(KvError(format!("timed out after {timeout_ms} ms"))),
        };
        self.trace.add_kv(self.runtime.now_ms() - start);
        result
    }

    /// Whether the breaker lets reads through now.
    fn reads_allowed(&self) -> bool {
        self.breaker.allows(self.runtime.now_ms())
    }

    /// Feeds one read's result to the breaker, logging when it opens.
    fn count_read(&self, failed: bool) {
        let result = if failed { ReadResult::Failed } else { ReadResult::Answered };
        if self.breaker.record(result, self.runtime.now_ms(), self.policy) {
            self.runtime.log(
                &serde_json::json!({
                    "level": "warn",
                    "event": "kv_breaker_open",
                    "open_ms": self.policy.open_ms,
                    "after_failures": self.policy.failures,
                })
                .to_string(),
            );
        }
    }

    fn outcome(&self, layer: Layer, key: &str, result: Result<Option<String>, KvError>) -> CacheRead {
        match result {
            Ok(Some(v)) => CacheRead::Hit(v),
            Ok(None) => CacheRead::Miss,
            Err(e) => {
                log_cache_failure(&*self.runtime, "get", layer, key, &e.0);
                CacheRead::Failed
            }
        }
    }

    /// What the `memory` layer holds for `key`, when the strategy has one.
    fn recall(&self, key: &str) -> Option<Option<String>> {
        let key = format!("{}{key}", self.namespace);
        self.strategy.memory().then(|| memory::recall(self.location, &key, self.runtime.now_ms())).flatten()
    }

    /// Keeps what KV answered (or what was written) in the `memory` layer.
    fn remember(&self, key: &str, value: Option<&str>) {
        if self.strategy.memory() {
            let key = format!("{}{key}", self.namespace);
            memory::remember(self.location, &key, value.map(str::to_owned), self.runtime.now_ms());
        }
    }

    /// Reads `keys` from KV (one bulk read, or concurrent reads: one round trip of
    /// latency either way), counting one billed read per key.
    async fn fetch(&self, layer: Layer, keys: &[String]) -> Result<Vec<Option<String>>, KvError> {
        self.trace.count(BackendOp::KvRead, keys.len() as u32);
        let cache_ttl = self.strategy.edge_cache_ttl(layer);
        let (kv, owned, bulk) = (self.kv.clone(), keys.to_vec(), self.strategy.bulk_read() && keys.len() > 1);
        let read: PendingRead = Box::pin(async move {
            if bulk {
                kv.get_bulk(&owned, cache_ttl).await
            } else {
                future::join_all(owned.iter().map(|k| kv.get_cached(k, cache_ttl))).await.into_iter().collect()
            }
        });
        let start = self.runtime.now_ms();
        let result = match future::select(read, self.runtime.sleep(self.timeout_ms)).await {
            Either::Left((result, _)) => result,
            Either::Right((_, unfinished)) => {
                // The answer does not wait, but the read is left to finish after
                // the response: a cold read fills its location's edge cache, so
                // where cold reads are slower than the time-out the location
                // still warms (abandoned, it never would, and the breaker would
                // keep opening).
                self.runtime.spawn(Box::pin(async move {
                    let _ = unfinished.await;
                }));
                Err(KvError(format!("timed out after {} ms", self.timeout_ms)))
            }
        };
        self.trace.add_kv(self.runtime.now_ms() - start);
        self.count_read(result.is_err());
        if let Ok(values) = &result {
            for (k, v) in keys.iter().zip(values) {
                self.remember(k, v.as_deref());
            }
        }
        result
    }

    /// Reads `keys` together: from the `memory` layer when it holds all of them,
    /// else from KV. A failure or time-out is logged and reported as `Failed` for
    /// every key, an open breaker as `Bypassed` (KV not asked).
    pub async fn read_many(&self, layer: Layer, keys: &[String]) -> Vec<CacheRead> {
        let remembered: Option<Vec<Option<String>>> = keys.iter().map(|k| self.recall(k)).collect();
        if let Some(values) = remembered {
            return keys.iter().zip(values).map(|(k, v)| self.outcome(layer, k, Ok(v))).collect();
        }
        if !self.reads_allowed() {
            return vec![CacheRead::Bypassed; keys.len()];
        }
        match self.fetch(layer, keys).await {
            Ok(values) => keys.iter().zip(values).map(|(k, v)| self.outcome(layer, k, Ok(v))).collect(),
            Err(e) => keys.iter().map(|k| self.outcome(layer, k, Err(e.clone()))).collect(),
        }
    }

    /// Reads `key` (see [`Cache::read_many`]).
    pub async fn read(&self, layer: Layer, key: &str) -> CacheRead {
        self.read_many(layer, &[key.to_owned()]).await.pop().unwrap_or(CacheRead::Failed)
    }

    /// Reads a guard key and an entry together (see [`Cache::read_many`]).
    pub async fn read_pair(&self, layer: Layer, first: &str, second: &str) -> (CacheRead, CacheRead) {
        let mut reads = self.read_many(layer, &[first.to_owned(), second.to_owned()]).await.into_iter();
        let mut next = || reads.next().unwrap_or(CacheRead::Failed);
        (next(), next())
    }

    /// Logs a value read from KV that does not decode: treated like a failed read.
    pub fn report_garbage(&self, layer: Layer, key: &str, detail: &str) {
        log_cache_failure(&*self.runtime, "decode", layer, key, detail);
    }

    /// Stores `value` under `key` after the response is sent (`ctx.wait_until` in the
    /// Worker), so a slow or failing KV never delays the answer.
    /// Skipped while the breaker is open: a failing KV gets no extra load.
    pub fn write_behind(&self, layer: Layer, key: String, value: String, ttl: u64) {
        if !self.reads_allowed() {
            return;
        }
        self.write_in_background(layer, key, value, ttl);
    }

    /// As [`Cache::write_behind`], whatever the breaker says.
    pub fn write_in_background(&self, layer: Layer, key: String, value: String, ttl: u64) {
        self.trace.count(BackendOp::KvWrite, 1);
        self.remember(&key, Some(&value));
        self.spawn_put(layer, key, value, ttl);
    }

    /// A write made only to keep entries right for requests with the layer on
    /// (the other arm of an A/B sharing one namespace, or the same deployment
    /// once its cache is on again), by a request with the layer off: after the
    /// response, and not in `x-ops`, which count what serving the request cost.
    pub fn write_for_other_arm(&self, layer: Layer, key: String, value: String, ttl: u64) {
        self.remember(&key, Some(&value));
        self.spawn_put(layer, key, value, ttl);
    }

    /// As [`Cache::write_for_other_arm`], a delete.
    pub fn delete_for_other_arm(&self, layer: Layer, key: String) {
        self.remember(&key, None);
        self.spawn_delete(layer, key);
    }

    fn spawn_put(&self, layer: Layer, key: String, value: String, ttl: u64) {
        let kv = self.kv.clone();
        let runtime = Rc::clone(&self.runtime);
        self.runtime.spawn(Box::pin(async move {
            if let Err(e) = kv.put(&key, &value, ttl).await {
                log_cache_failure(&*runtime, "put", layer, &key, &e.0);
            }
        }));
    }

    /// Stores `value` before returning, waiting at most `timeout_ms` (invalidation
    /// must land before the response). Attempted whatever the breaker says: a
    /// write that must land is never skipped, only reported as failed.
    pub async fn write_now(
        &self,
        layer: Layer,
        key: &str,
        value: &str,
        ttl_seconds: u64,
        timeout_ms: u64,
    ) -> Result<(), KvError> {
        self.trace.count(BackendOp::KvWrite, 1);
        let result = self.bounded(timeout_ms, self.kv.put(key, value, ttl_seconds)).await;
        match &result {
            Ok(()) => self.remember(key, Some(value)),
            Err(e) => log_cache_failure(&*self.runtime, "put", layer, key, &e.0),
        }
        result
    }

    /// Deletes `key` before returning, waiting at most `timeout_ms`.
    pub async fn delete_now(&self, layer: Layer, key: &str, timeout_ms: u64) -> Result<(), KvError> {
        self.trace.count(BackendOp::KvDelete, 1);
        let result = self.bounded(timeout_ms, self.kv.delete(key)).await;
        match &result {
            Ok(()) => self.remember(key, None),
            Err(e) => log_cache_failure(&*self.runtime, "delete", layer, key, &e.0),
        }
        result
    }

    fn spawn_delete(&self, layer: Layer, key: String) {
        let kv = self.kv.clone();
        let runtime = Rc::clone(&self.runtime);
        self.runtime.spawn(Box::pin(async move {
            if let Err(e) = kv.delete(&key).await {
                log_cache_failure(&*runtime, "delete", layer, &key, &e.0);
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs() {
        assert_eq!(KvFault::parse("error"), Ok(KvFault::Error));
        assert_eq!(KvFault::parse("garbage"), Ok(KvFault::Garbage));
        assert_eq!(KvFault::parse("slow"), Ok(KvFault::Slow(2000)));
        assert_eq!(KvFault::parse("slow:150"), Ok(KvFault::Slow(150)));
        assert_eq!(KvFault::parse("write-error"), Ok(KvFault::WriteError));
        assert_eq!(KvFault::parse("write-limit"), Ok(KvFault::WriteLimit));
        assert!(KvFault::parse("slow:x").unwrap_err().contains("slow:x"));
        assert!(KvFault::parse("down").is_err());
    }

    #[test]
    fn write_limit_allows_one_write_per_second_per_key() {
        assert!(same_key_write_allowed("a", 0.0).is_ok());
        assert!(same_key_write_allowed("b", 10.0).is_ok());
        let e = same_key_write_allowed("a", 999.0).unwrap_err();
        assert!(e.0.contains("429"), "{}", e.0);
        assert!(same_key_write_allowed("a", 1000.0).is_ok());
    }
}
