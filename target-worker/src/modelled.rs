//! The KV and D1 adapters that add a latency profile's delay to each operation
//! (see [`crate::latency`]). With the `local` profile they pass every call straight
//! through: no timer, no random draw.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::latency::{Operation, Profile};
use crate::platform::{Database, DbError, Kv, KvError, Row, Runtime, SqlValue, Statement};

/// Draws a profile's delay for `op` and waits it out.
async fn wait(profile: &Profile, runtime: &dyn Runtime, op: Operation) {
    let Some(figure) = profile.delay(op) else { return };
    let (u1, u2) = uniforms();
    let ms = figure.sample(u1, u2);
    // Timers have whole milliseconds: rounding up or down at random keeps the
    // mean of a sub-millisecond delay (a hot KV read) where the profile puts it.
    let whole = ms.floor() as u64 + u64::from(uniforms().0 < ms.fract());
    if whole > 0 {
        runtime.sleep(whole).await;
    }
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

thread_local! {
    /// The modelled edge cache of this isolate: key → when a read last filled it (ms).
    static EDGE: RefCell<HashMap<String, f64>> = RefCell::new(HashMap::new());
}

/// Keys the edge cache model remembers before it drops the expired ones.
const EDGE_PRUNE_AT: usize = 20_000;

/// Whether a read of `key` at `now_ms` is served by the edge cache: read there
/// within its `cacheTtl`, and (for profiles whose edge misses) lucky. A read that
/// goes past it fills it for `cacheTtl`.
fn edge_hit(profile: &Profile, key: &str, now_ms: f64) -> bool {
    EDGE.with(|edge| {
        let mut edge = edge.borrow_mut();
        let cached = edge.get(key).is_some_and(|filled| now_ms - filled < profile.edge_cache_ttl_ms);
        if cached {
            return uniforms().0 <= profile.edge_hit_share;
        }
        if edge.len() >= EDGE_PRUNE_AT {
            edge.retain(|_, filled| now_ms - *filled < profile.edge_cache_ttl_ms);
        }
        edge.insert(key.to_owned(), now_ms);
        false
    })
}

/// A KV store whose operations take as long as the profile says (plus their own time).
#[derive(Clone)]
pub struct ModelledKv<K: Kv> {
    inner: K,
    profile: &'static Profile,
    runtime: Rc<dyn Runtime>,
}

impl<K: Kv> ModelledKv<K> {
    pub fn new(inner: K, profile: &'static Profile, runtime: Rc<dyn Runtime>) -> Self {
        ModelledKv { inner, profile, runtime }
    }

    async fn wait(&self, op: Operation) {
        if !self.profile.is_measured() {
            wait(self.profile, &*self.runtime, op).await;
        }
    }
}

impl<K: Kv> Kv for ModelledKv<K> {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        if !self.profile.is_measured() {
            let hot = edge_hit(self.profile, key, self.runtime.now_ms());
            self.wait(if hot { Operation::KvHotRead } else { Operation::KvColdRead }).await;
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError> {
        self.wait(Operation::KvWrite).await;
        self.inner.put(key, value, ttl_seconds).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.wait(Operation::KvDelete).await;
        self.inner.delete(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.wait(Operation::KvList).await;
        self.inner.list_keys(prefix).await
    }
}

/// A database whose reads (`query`) and writes (`execute`, `batch`: one round
/// trip each) take as long as the profile says (plus their own time).
pub struct ModelledDb<'r, D: Database> {
    inner: &'r D,
    profile: &'static Profile,
    runtime: &'r dyn Runtime,
}

impl<'r, D: Database> ModelledDb<'r, D> {
    pub fn new(inner: &'r D, profile: &'static Profile, runtime: &'r dyn Runtime) -> Self {
        ModelledDb { inner, profile, runtime }
    }

    async fn wait(&self, op: Operation) {
        if !self.profile.is_measured() {
            wait(self.profile, self.runtime, op).await;
        }
    }
}

impl<D: Database> Database for ModelledDb<'_, D> {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        self.wait(Operation::D1Read).await;
        self.inner.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), DbError> {
        self.wait(Operation::D1Write).await;
        self.inner.execute(sql, params).await
    }
    async fn batch(&self, statements: &[Statement]) -> Result<(), DbError> {
        self.wait(Operation::D1Write).await;
        self.inner.batch(statements).await
    }
}
