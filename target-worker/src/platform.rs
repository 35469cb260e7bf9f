//! The small seams between the API logic and the platform it runs on.
//!
//! In the Worker these are backed by the KV and D1 bindings and `ctx.wait_until`;
//! in native tests by SQLite and an in-process KV with real TTL expiry. Nothing in
//! the API logic knows which.

use std::future::Future;
use std::pin::Pin;

/// A task that must not delay the response (KV write-behind).
pub type BackgroundTask = Pin<Box<dyn Future<Output = ()>>>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// A key-value store with per-key expiry, shaped after Workers KV.
///
/// `Clone + 'static` because writes are handed to a background task that outlives
/// the request's borrows; the Workers binding and the test store are both cheap
/// handles.
#[allow(async_fn_in_trait)] // single-threaded runtime (wasm): no Send bound wanted
pub trait Kv: Clone + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError>;
    /// A read that asks the edge location to keep the result for `cache_ttl_s`
    /// (Workers KV's `cacheTtl`; `None`: its default). Stores without an edge cache
    /// ignore it.
    async fn get_cached(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        let _ = cache_ttl_s;
        self.get(key).await
    }
    /// Several keys in one bulk read (Workers KV: up to 100 keys, one round trip,
    /// billed per key), in the order asked. Without bulk reads: concurrent reads.
    async fn get_bulk(&self, keys: &[String], cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        let reads = keys.iter().map(|k| self.get_cached(k, cache_ttl_s));
        futures_util::future::join_all(reads).await.into_iter().collect()
    }
    /// Workers KV rejects TTLs under 60 s; implementations must do the same.
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError>;
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// One page of the keys under `prefix`, in key order, from `cursor` (the
    /// previous page's; `None`: the first). Workers KV returns at most
    /// [`KV_LIST_PAGE`] keys per call, one billed operation each.
    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError>;
}

/// Keys one KV list call returns at most.
pub const KV_LIST_PAGE: usize = 1000;

/// A page of a KV listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// Workers KV's lower bound on `expirationTtl`.
pub const KV_MIN_TTL_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(v as i64)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One SQL statement with its bound parameters (`?1`, `?2`, …).
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<SqlValue>) -> Self {
        Statement { sql, params }
    }
}

/// A result row, column name → value, as D1 returns it.
pub type Row = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

/// A SQLite-dialect database, shaped after D1. Only bound parameters: no statement
/// is ever built from request data. `Clone + 'static` as [`Kv`] is: a background
/// refresh (`swr`, `warm`) queries it after the response.
#[allow(async_fn_in_trait)]
pub trait Database: Clone + 'static {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError>;
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), DbError>;
    /// Runs the statements in one transaction.
    async fn batch(&self, statements: &[Statement]) -> Result<(), DbError>;
}

/// Clock, background tasks and logging of the host.
pub trait Runtime {
    /// Wall-clock milliseconds since the Unix epoch.
    fn now_ms(&self) -> f64;
    /// Runs `task` after (or beside) the response, never before it.
    fn spawn(&self, task: BackgroundTask);
    /// One structured (JSON) log line.
    fn log(&self, line: &str);
    /// Completes after `ms` milliseconds (KV time-outs, the `slow` fault).
    fn sleep(&self, ms: u64) -> BackgroundTask;
}

/// Typed access to a [`Row`]. D1 hands numbers over as JavaScript numbers, so an
/// integer column may arrive as `1` or `1.0`; both are accepted.
pub trait RowExt {
    fn text(&self, column: &str) -> Result<String, DbError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, DbError>;
    fn int(&self, column: &str) -> Result<i64, DbError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, DbError>;
}

impl RowExt for Row {
    fn text(&self, column: &str) -> Result<String, DbError> {
        self.opt_text(column)?.ok_or_else(|| DbError(format!("column {column} is NULL or missing")))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, DbError> {
        match self.get(column) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(DbError(format!("column {column}: expected text, got {other}"))),
        }
    }

    fn int(&self, column: &str) -> Result<i64, DbError> {
        self.opt_int(column)?.ok_or_else(|| DbError(format!("column {column} is NULL or missing")))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, DbError> {
        match self.get(column) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| DbError(format!("column {column}: expected integer, got {n}"))),
            Some(other) => Err(DbError(format!("column {column}: expected integer, got {other}"))),
        }
    }
}
