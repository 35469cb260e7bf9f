//! The KV and D1 adapters that give each operation a latency profile's cost (see
//! [`crate::latency`]). A modelled operation takes the larger of the profile's
//! drawn delay and the local operation's own time — the same rule for every
//! operation: the drawn figure stands for what production's operation costs,
//! and a local operation slower than that is not hidden. (Before issue 28 the
//! delay was added to the local cost, except on hot KV reads, which have no
//! local operation: the cache-off arm carried milliseconds of local D1 work
//! production would not, and cache hits none.) The local operation runs first
//! and the rest of the delay after it, so a write is applied up to the modelled
//! time before the caller hears of it. With the `local` profile every call passes
//! straight through: no timer, no random draw.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use crate::cache::WriteWindow;
use crate::latency::{Operation, Profile};
use crate::platform::{Database, DbError, KeyPage, Kv, KvError, Row, Runtime, SqlValue, Statement};

/// Runs `local` (the local operation; a hot KV read has none) so that the whole
/// takes the profile's drawn delay for `op`, or the local time when longer.
async fn modelled<T>(profile: &Profile, runtime: &dyn Runtime, op: Operation, local: impl Future<Output = T>) -> T {
    let Some(figure) = profile.delay(op).filter(|_| !profile.is_measured()) else { return local.await };
    let (u1, u2) = uniforms();
    let drawn = figure.sample(u1, u2);
    let start = runtime.now_ms();
    let out = local.await;
    let left = drawn - (runtime.now_ms() - start);
    if left > 0.0 {
        // Timers have whole milliseconds: rounding up or down at random keeps the
        // mean of a sub-millisecond delay (a hot KV read) where the profile puts it.
        let whole = left.floor() as u64 + u64::from(uniforms().0 < left.fract());
        if whole > 0 {
            runtime.sleep(whole).await;
        }
    }
    out
}

/// Two uniforms in (0, 1] from the platform's random source.
fn uniforms() -> (f64, f64) {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        return (0.5, 0.5);
    }
    let unit = |b: &[u8]| {
        let n = u64::from_le_bytes(b.try_into().expect("8 bytes")) >> 11;
        (n as f64 + 1.0) / (1u64 << 53) as f64
    };
    (unit(&bytes[..8]), unit(&bytes[8..]))
}

/// What one modelled edge location holds for a key: when a read filled it, for how
/// long (the read's `cacheTtl`), and the value it read (`None`: not found).
struct EdgeCopy {
    filled_ms: f64,
    ttl_ms: f64,
    value: Option<String>,
}

thread_local! {
    /// The modelled edge caches: (location, key) → the copy a read left there.
    static EDGE: RefCell<HashMap<(u32, String), EdgeCopy>> = RefCell::new(HashMap::new());
}

thread_local! {
    /// When each key was last written under a modelled profile.
    static MODELLED_WRITES: WriteWindow = WriteWindow::default();
}

/// Forgets the modelled write windows (a bench reset).
pub fn clear_write_window() {
    MODELLED_WRITES.with(WriteWindow::clear);
}

/// Keys the edge cache model remembers before it drops the expired ones.
const EDGE_PRUNE_AT: usize = 20_000;

/// The copy `location`'s edge cache serves for `key` at `now_ms`, if the read is
/// served there: a copy within its `cacheTtl`, and (for profiles whose edge misses)
/// a lucky read. Its value may be older than KV's: that is KV's eventual
/// consistency between locations.
fn edge_copy(profile: &Profile, location: u32, key: &str, now_ms: f64) -> Option<Option<String>> {
    EDGE.with(|edge| {
        let edge = edge.borrow();
        let copy = edge.get(&(location, key.to_owned()))?;
        (now_ms - copy.filled_ms < copy.ttl_ms && uniforms().0 <= profile.edge_hit_share).then(|| copy.value.clone())
    })
}

/// A read that went past the edge leaves its result there for `ttl_ms`. The
/// map is bounded: past [`EDGE_PRUNE_AT`] keys the expired copies go, and if
/// that is not enough the older half (an edge cache evicts too).
fn fill_edge(location: u32, key: &str, value: Option<String>, now_ms: f64, ttl_ms: f64) {
    EDGE.with(|edge| {
        let mut edge = edge.borrow_mut();
        if edge.len() >= EDGE_PRUNE_AT {
            edge.retain(|_, c| now_ms - c.filled_ms < c.ttl_ms);
        }
        if edge.len() >= EDGE_PRUNE_AT {
            let mut filled: Vec<f64> = edge.values().map(|c| c.filled_ms).collect();
            filled.sort_by(f64::total_cmp);
            let median = filled[filled.len() / 2];
            edge.retain(|_, c| c.filled_ms > median);
        }
        edge.insert((location, key.to_owned()), EdgeCopy { filled_ms: now_ms, ttl_ms, value });
    })
}

/// Forgets every location's copies (a bench reset).
pub fn clear_edge() {
    EDGE.with(|edge| edge.borrow_mut().clear());
}

/// How many copies the edge model holds (tests, the bound).
pub fn edge_len() -> usize {
    EDGE.with(|edge| edge.borrow().len())
}

/// A write is visible at once in the location that made it (Cloudflare's "How KV
/// works"); other locations keep their copies until those expire.
fn forget_edge(location: u32, key: &str) {
    EDGE.with(|edge| edge.borrow_mut().remove(&(location, key.to_owned())));
}

/// A KV store whose operations take as long as the profile says (or their own
/// time, when longer), read through a modelled edge cache per location.
#[derive(Clone)]
pub struct ModelledKv<K: Kv> {
    inner: K,
    profile: &'static Profile,
    runtime: Rc<dyn Runtime>,
    /// The modelled edge location of the request (`x-bench-location`).
    location: u32,
}

impl<K: Kv> ModelledKv<K> {
    pub fn new(inner: K, profile: &'static Profile, runtime: Rc<dyn Runtime>, location: u32) -> Self {
        ModelledKv { inner, profile, runtime, location }
    }

    async fn modelled<T>(&self, op: Operation, local: impl Future<Output = T>) -> T {
        modelled(self.profile, &*self.runtime, op, local).await
    }

    /// Workers KV's limit of one write per second to a key, as production
    /// enforces it (429), under every modelled profile; the local stack does
    /// not enforce it, and the `local` profile passes through. Per isolate (the
    /// limit is per key across all of them; one local isolate is all there is).
    fn write_allowed(&self, key: &str) -> Result<(), KvError> {
        if self.profile.is_measured() {
            return Ok(());
        }
        MODELLED_WRITES.with(|window| window.admit(key, self.runtime.now_ms(), "modelled: "))
    }

    fn edge_ttl_ms(&self, cache_ttl_s: Option<u64>) -> f64 {
        cache_ttl_s.map_or(self.profile.edge_cache_ttl_ms, |s| s as f64 * 1000.0)
    }

    /// The edge's copies of `keys`, or `None` when any read must go past the edge.
    fn edge_copies(&self, keys: &[String]) -> Option<Vec<Option<String>>> {
        let now = self.runtime.now_ms();
        keys.iter().map(|k| edge_copy(self.profile, self.location, k, now)).collect()
    }

    /// A single key is a single read below, as the caller asked; several a bulk read.
    async fn inner_read(&self, keys: &[String], cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        match keys {
            [key] => Ok(vec![self.inner.get_cached(key, cache_ttl_s).await?]),
            _ => self.inner.get_bulk(keys, cache_ttl_s).await,
        }
    }

    fn fill(&self, keys: &[String], values: &[Option<String>], cache_ttl_s: Option<u64>) {
        let now = self.runtime.now_ms();
        for (k, v) in keys.iter().zip(values) {
            fill_edge(self.location, k, v.clone(), now, self.edge_ttl_ms(cache_ttl_s));
        }
    }
}

impl<K: Kv> Kv for ModelledKv<K> {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.get_cached(key, None).await
    }
    async fn get_cached(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        let mut values = self.get_bulk(&[key.to_owned()], cache_ttl_s).await?;
        Ok(values.pop().flatten())
    }
    /// One round trip: hot when the edge holds every key, else cold.
    async fn get_bulk(&self, keys: &[String], cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        if self.profile.is_measured() {
            return self.inner_read(keys, cache_ttl_s).await;
        }
        if let Some(copies) = self.edge_copies(keys) {
            return Ok(self.modelled(Operation::KvHotRead, async { copies }).await);
        }
        let values = self.modelled(Operation::KvColdRead, self.inner_read(keys, cache_ttl_s)).await?;
        self.fill(keys, &values, cache_ttl_s);
        Ok(values)
    }
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError> {
        self.write_allowed(key)?;
        self.modelled(Operation::KvWrite, self.inner.put(key, value, ttl_seconds)).await?;
        forget_edge(self.location, key);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write_allowed(key)?;
        self.modelled(Operation::KvDelete, self.inner.delete(key)).await?;
        forget_edge(self.location, key);
        Ok(())
    }
    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError> {
        self.modelled(Operation::KvList, self.inner.list_page(prefix, cursor)).await
    }
}

/// A database whose reads (`query`) and writes (`execute`, `batch`: one round
/// trip each) take as long as the profile says (or their own time, when longer). Owns cheap
/// handles, so background work (a `swr` refresh) can take one along.
#[derive(Clone)]
pub struct ModelledDb<D: Database> {
    inner: D,
    profile: &'static Profile,
    runtime: Rc<dyn Runtime>,
}

impl<D: Database> ModelledDb<D> {
    pub fn new(inner: D, profile: &'static Profile, runtime: Rc<dyn Runtime>) -> Self {
        ModelledDb { inner, profile, runtime }
    }

    async fn modelled<T>(&self, op: Operation, local: impl Future<Output = T>) -> T {
        modelled(self.profile, &*self.runtime, op, local).await
    }
}

impl<D: Database> Database for ModelledDb<D> {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        self.modelled(Operation::D1Read, self.inner.query(sql, params)).await
    }
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), DbError> {
        self.modelled(Operation::D1Write, self.inner.execute(sql, params)).await
    }
    async fn batch(&self, statements: &[Statement]) -> Result<(), DbError> {
        self.modelled(Operation::D1Write, self.inner.batch(statements)).await
    }
}
