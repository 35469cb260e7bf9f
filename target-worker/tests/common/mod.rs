//! Native test doubles that are real implementations, not mocks: SQLite (rusqlite)
//! running the D1 migrations, and an in-process KV with Workers KV's TTL rules
//! against an injectable clock.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use rusqlite::types::{Value as SqlV, ValueRef};
use target_worker::platform::{
    BackgroundTask, Database, DbError, KeyPage, Kv, KvError, Row, Runtime, SqlValue, Statement, KV_LIST_PAGE,
    KV_MIN_TTL_SECONDS,
};
use target_worker::{ApiRequest, ApiResponse, App, Config};

/// A clock the test moves by hand. Starts at a fixed, realistic instant.
#[derive(Clone)]
pub struct ManualClock(Rc<Cell<f64>>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(Rc::new(Cell::new(1_790_000_000_000.0)))
    }
}

impl ManualClock {
    pub fn now_ms(&self) -> f64 {
        self.0.get()
    }
    pub fn advance_secs(&self, secs: f64) {
        self.0.set(self.0.get() + secs * 1000.0);
    }
}

/// A failure mode the in-process KV can be put into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFault {
    /// Every operation fails.
    Error,
    /// Reads return bytes that are not any value the worker wrote.
    Garbage,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCalls {
    pub get: u32,
    /// Bulk reads (each key also counted in `get`).
    pub bulk: u32,
    pub put: u32,
    pub delete: u32,
    pub list: u32,
}

impl KvCalls {
    pub fn total(&self) -> u32 {
        self.get + self.put + self.delete + self.list
    }
}

/// In-process KV: entries expire at `put time + ttl` on the injected clock, TTLs under
/// 60 s are refused as Workers KV refuses them.
#[derive(Clone)]
pub struct MemoryKv {
    entries: Rc<RefCell<BTreeMap<String, (String, f64)>>>,
    clock: ManualClock,
    calls: Rc<Cell<KvCalls>>,
    fault: Rc<Cell<Option<KvFault>>>,
}

impl MemoryKv {
    pub fn new(clock: ManualClock) -> Self {
        MemoryKv { entries: Rc::default(), clock, calls: Rc::default(), fault: Rc::default() }
    }
    pub fn calls(&self) -> KvCalls {
        self.calls.get()
    }
    pub fn set_fault(&self, fault: Option<KvFault>) {
        self.fault.set(fault);
    }
    /// Live (unexpired) keys.
    pub fn keys(&self) -> Vec<String> {
        let now = self.clock.now_ms();
        self.entries.borrow().iter().filter(|(_, (_, exp))| *exp > now).map(|(k, _)| k.clone()).collect()
    }
    pub fn raw_get(&self, key: &str) -> Option<String> {
        let now = self.clock.now_ms();
        self.entries.borrow().get(key).filter(|(_, exp)| *exp > now).map(|(v, _)| v.clone())
    }
    fn count(&self, f: impl FnOnce(&mut KvCalls)) {
        let mut c = self.calls.get();
        f(&mut c);
        self.calls.set(c);
    }
    fn check_fault(&self) -> Result<(), KvError> {
        match self.fault.get() {
            Some(KvFault::Error) => Err(KvError("simulated KV outage".into())),
            _ => Ok(()),
        }
    }
}

impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.count(|c| c.get += 1);
        self.check_fault()?;
        if self.fault.get() == Some(KvFault::Garbage) {
            return Ok(Some("\u{0}garbage\u{fffd}".into()));
        }
        let now = self.clock.now_ms();
        let mut entries = self.entries.borrow_mut();
        match entries.get(key) {
            Some((_, exp)) if *exp <= now => {
                entries.remove(key);
                Ok(None)
            }
            other => Ok(other.map(|(v, _)| v.clone())),
        }
    }

    /// One call, as Workers KV's bulk read; the keys are read as single gets.
    async fn get_bulk(&self, keys: &[String], _cache_ttl_s: Option<u64>) -> Result<Vec<Option<String>>, KvError> {
        self.count(|c| c.bulk += 1);
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await?);
        }
        Ok(out)
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), KvError> {
        self.count(|c| c.put += 1);
        self.check_fault()?;
        if ttl_seconds < KV_MIN_TTL_SECONDS {
            return Err(KvError(format!(
                "Invalid expiration_ttl of {ttl_seconds}. Expiration TTL must be at least 60."
            )));
        }
        if key.len() > 512 {
            return Err(KvError(format!("KV key too long: {} bytes > 512", key.len())));
        }
        let expires = self.clock.now_ms() + ttl_seconds as f64 * 1000.0;
        self.entries.borrow_mut().insert(key.to_owned(), (value.to_owned(), expires));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.count(|c| c.delete += 1);
        self.check_fault()?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError> {
        self.count(|c| c.list += 1);
        self.check_fault()?;
        // Workers KV's shape: key order, at most a page, an opaque cursor (here
        // the last key returned).
        let mut keys: Vec<String> = self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix) && cursor.is_none_or(|c| k.as_str() > c))
            .collect();
        keys.sort();
        let more = keys.len() > KV_LIST_PAGE;
        keys.truncate(KV_LIST_PAGE);
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(KeyPage { keys, cursor })
    }
}

/// SQLite with the worker's D1 migrations applied, foreign keys on as in D1.
#[derive(Clone)]
pub struct SqliteDb {
    conn: Rc<rusqlite::Connection>,
    failing: Rc<Cell<bool>>,
    /// Statements run, a batch's each counted (as D1 counts queries per invocation).
    statements: Rc<Cell<u64>>,
}

impl SqliteDb {
    pub fn migrated() -> Self {
        let conn = rusqlite::Connection::open_in_memory().expect("open in-memory SQLite");
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations in {}", dir.display());
        for f in files {
            let sql = std::fs::read_to_string(&f).unwrap();
            conn.execute_batch(&sql).unwrap_or_else(|e| panic!("migration {}: {e}", f.display()));
        }
        SqliteDb { conn: Rc::new(conn), failing: Rc::default(), statements: Rc::default() }
    }

    /// Makes every following statement fail, as an unreachable D1 would.
    pub fn set_failing(&self, failing: bool) {
        self.failing.set(failing);
    }

    pub fn conn(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// Statements run so far.
    pub fn statements(&self) -> u64 {
        self.statements.get()
    }

    fn check(&self) -> Result<(), DbError> {
        self.statements.set(self.statements.get() + 1);
        if self.failing.get() {
            Err(DbError("D1_ERROR: simulated database outage".into()))
        } else {
            Ok(())
        }
    }
}

fn bind(params: &[SqlValue]) -> Vec<SqlV> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => SqlV::Null,
            SqlValue::Integer(i) => SqlV::Integer(*i),
            SqlValue::Real(f) => SqlV::Real(*f),
            SqlValue::Text(s) => SqlV::Text(s.clone()),
        })
        .collect()
}

fn sqlite_err(e: rusqlite::Error) -> DbError {
    DbError(e.to_string())
}

impl Database for SqliteDb {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        self.check()?;
        let mut stmt = self.conn.prepare(sql).map_err(sqlite_err)?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(bind(params))).map_err(sqlite_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            let mut map = Row::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i).map_err(sqlite_err)? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(f) => f.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(b) => hex::encode(b).into(),
                };
                map.insert(name.clone(), v);
            }
            out.push(map);
        }
        Ok(out)
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), DbError> {
        self.check()?;
        self.conn.execute(sql, rusqlite::params_from_iter(bind(params))).map(drop).map_err(sqlite_err)
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), DbError> {
        self.check()?;
        self.statements.set(self.statements.get() + statements.len().saturating_sub(1) as u64);
        // D1 runs a batch as one transaction; so does this.
        let tx = self.conn.unchecked_transaction().map_err(sqlite_err)?;
        for s in statements {
            tx.execute(s.sql, rusqlite::params_from_iter(bind(&s.params))).map_err(sqlite_err)?;
        }
        tx.commit().map_err(sqlite_err)
    }
}

/// The host runtime: the manual clock, a queue of background tasks that run only
/// when the test says so (after the response, like `wait_until`), captured logs.
pub struct TestRuntime {
    pub clock: ManualClock,
    tasks: RefCell<Vec<BackgroundTask>>,
    pub logs: RefCell<Vec<String>>,
    /// Every timer started, its milliseconds.
    pub sleeps: RefCell<Vec<u64>>,
}

impl Runtime for TestRuntime {
    fn now_ms(&self) -> f64 {
        self.clock.now_ms()
    }
    fn spawn(&self, task: BackgroundTask) {
        self.tasks.borrow_mut().push(task);
    }
    fn log(&self, line: &str) {
        self.logs.borrow_mut().push(line.to_owned());
    }
    /// Real tokio timers: tests that exercise time-outs run with tokio's clock
    /// paused, which makes them deterministic.
    /// The manual clock moves on by the time slept when the timer fires (a timer
    /// dropped early, as a time-out that lost its race, moves nothing).
    fn sleep(&self, ms: u64) -> BackgroundTask {
        self.sleeps.borrow_mut().push(ms);
        let clock = self.clock.clone();
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            clock.advance_secs(ms as f64 / 1000.0);
        })
    }
}

impl TestRuntime {
    pub fn pending_tasks(&self) -> usize {
        self.tasks.borrow().len()
    }
    pub async fn run_background(&self) {
        let tasks: Vec<_> = self.tasks.borrow_mut().drain(..).collect();
        for t in tasks {
            t.await;
        }
    }
}

pub const BENCH_SECRET: &str = "test-bench-secret";
pub const JWT_SECRET: &str = "test-jwt-secret";
pub const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// Builds a [`Config`] from `KEY=VALUE` pairs, with the test secrets unless overridden.
pub fn config(vars: &[(&str, &str)]) -> Config {
    let mut all: Vec<(String, String)> =
        vec![("BENCH_SECRET".into(), BENCH_SECRET.into()), ("JWT_SECRET".into(), JWT_SECRET.into())];
    for (k, v) in vars {
        all.retain(|(name, _)| name != k);
        all.push((k.to_string(), v.to_string()));
    }
    Config::from_lookup(|name| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).expect("valid test config")
}

/// One worker over fresh SQLite and KV.
pub struct TestWorker {
    pub app: App<MemoryKv, SqliteDb>,
    pub kv: MemoryKv,
    pub db: SqliteDb,
    pub runtime: Rc<TestRuntime>,
    pub clock: ManualClock,
}

impl TestWorker {
    pub fn new(config: Config) -> Self {
        let clock = ManualClock::default();
        let kv = MemoryKv::new(clock.clone());
        let db = SqliteDb::migrated();
        let runtime = Rc::new(TestRuntime {
            clock: clock.clone(),
            tasks: RefCell::default(),
            logs: RefCell::default(),
            sleeps: RefCell::default(),
        });
        let app = App::new(kv.clone(), db.clone(), runtime.clone(), config);
        TestWorker { app, kv, db, runtime, clock }
    }

    /// Sends a request and then runs what it left for `wait_until`, as the Workers
    /// runtime does after the response has gone out.
    pub async fn send(&self, req: ApiRequest) -> ApiResponse {
        let resp = self.app.handle(req).await;
        self.runtime.run_background().await;
        resp
    }

    /// One `POST /__bench/seed` call: users `offset..` of a population of `users`.
    pub async fn seed_call(&self, users: u32, seed: u64, offset: u64) -> ApiResponse {
        self.send(
            ApiRequest::new("POST", "/__bench/seed")
                .header("x-bench-secret", BENCH_SECRET)
                .body(format!(r#"{{"users":{users},"seed":{seed},"offset":{offset}}}"#)),
        )
        .await
    }

    /// Seeds as the harness does: call after call until `next_offset` is null.
    pub async fn seed(&self, users: u32, seed: u64) {
        let mut offset = 0;
        loop {
            let resp = self.seed_call(users, seed, offset).await;
            assert_eq!(resp.status, 200, "seed failed: {}", body_text(&resp));
            match body_json(&resp)["next_offset"].as_u64() {
                Some(next) => offset = next,
                None => return,
            }
        }
    }
}

pub fn body_text(resp: &ApiResponse) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

pub fn body_json(resp: &ApiResponse) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", body_text(resp)))
}

/// A browser request to `path` with optional extra headers.
pub fn get(path: &str, headers: &[(&str, &str)]) -> ApiRequest {
    headers.iter().fold(ApiRequest::new("GET", path).header("user-agent", BROWSER_UA), |r, (k, v)| r.header(k, v))
}

/// A request as a seeded user (session cookie, browser User-Agent).
pub fn as_user(method: &str, target: &str, u: &bench_seed::SeededUser) -> ApiRequest {
    // A JSON client, as the API's own front end: writes with the cookie must say so.
    ApiRequest::new(method, target)
        .header("user-agent", BROWSER_UA)
        .header("content-type", "application/json")
        .header("cookie", &format!("session={}", u.session_id))
}

/// `POST /user/store-provider-api-key` for `provider`, as `u`.
pub fn store_key(u: &bench_seed::SeededUser, provider: &str) -> ApiRequest {
    as_user("POST", "/user/store-provider-api-key", u)
        .body(format!(r#"{{"providerId":"{provider}","apiKey":"sk-test"}}"#))
}

/// The model ids of a `GET /models` answer.
pub fn ids(resp: &ApiResponse) -> Vec<String> {
    body_json(resp)["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

pub fn header(resp: &ApiResponse, name: &str) -> String {
    resp.header_value(name).unwrap_or_default().to_owned()
}

/// A provider `u` has not enabled, and a model of it that `u`'s list lacks.
pub fn disabled_provider(w: &TestWorker, u: &bench_seed::SeededUser) -> (String, String) {
    let provider: String = w
        .db
        .conn()
        .query_row(
            "SELECT provider_id FROM provider_settings WHERE user_id = ?1 AND enabled = 0 ORDER BY provider_id LIMIT 1",
            [&u.user_id],
            |r| r.get(0),
        )
        .expect("seeded user has a disabled provider");
    let catalogue = target_worker::catalogue::catalogue();
    let model = catalogue.models.iter().find(|m| !m.free && m.provider == provider).expect("a paid model");
    (provider, model.id.clone())
}
