//! The Workers entry: adapts the request, the KV and D1 bindings and
//! `ctx.wait_until` to the platform traits, and nothing else.

use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::{event, Context, D1Database, Env, KvStore, Request, Response, Result};

use crate::app::App;
use crate::config::Config;
use crate::http::{body_too_large, read_capped, ApiError, ApiRequest, ApiResponse, DRAIN_LIMIT_BYTES, MAX_BODY_BYTES};
use crate::platform::{
    BackgroundTask, Database, DbError, KeyPage, Kv, KvError, Row, Runtime, SqlValue, Statement, KV_LIST_PAGE,
};

#[derive(Clone)]
struct WorkersKv(KvStore);

impl Kv for WorkersKv {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, KvError> {
        self.get_cached(key, None).await
    }

    async fn get_cached(&self, key: &str, cache_ttl_s: Option<u64>) -> std::result::Result<Option<String>, KvError> {
        let mut get = self.0.get(key);
        if let Some(ttl) = cache_ttl_s {
            get = get.cache_ttl(ttl);
        }
        get.text().await.map_err(|e| KvError(e.to_string()))
    }

    async fn get_bulk(
        &self,
        keys: &[String],
        cache_ttl_s: Option<u64>,
    ) -> std::result::Result<Vec<Option<String>>, KvError> {
        let mut get = self.0.get_bulk(keys);
        if let Some(ttl) = cache_ttl_s {
            get = get.cache_ttl(ttl);
        }
        let mut values = get.text().await.map_err(|e| KvError(e.to_string()))?;
        Ok(keys.iter().map(|k| values.remove(k).flatten()).collect())
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> std::result::Result<(), KvError> {
        self.0
            .put(key, value)
            .map_err(|e| KvError(e.to_string()))?
            .expiration_ttl(ttl_seconds)
            .execute()
            .await
            .map_err(|e| KvError(e.to_string()))
    }

    async fn delete(&self, key: &str) -> std::result::Result<(), KvError> {
        self.0.delete(key).await.map_err(|e| KvError(e.to_string()))
    }

    async fn list_page(&self, prefix: &str, cursor: Option<&str>) -> std::result::Result<KeyPage, KvError> {
        let mut list = self.0.list().prefix(prefix.to_owned()).limit(KV_LIST_PAGE as u64);
        if let Some(c) = cursor {
            list = list.cursor(c.to_owned());
        }
        let page = list.execute().await.map_err(|e| KvError(e.to_string()))?;
        let cursor = page.cursor.filter(|_| !page.list_complete);
        Ok(KeyPage { keys: page.keys.into_iter().map(|k| k.name).collect(), cursor })
    }
}

/// `Rc`: the database handle is cloned into background work (a `swr` refresh).
#[derive(Clone)]
struct D1(Rc<D1Database>);

fn js_params(params: &[SqlValue]) -> Vec<JsValue> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => JsValue::NULL,
            // D1 numbers are JavaScript numbers; our integers (timestamps, flags)
            // stay far below 2^53.
            SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
            SqlValue::Real(f) => JsValue::from_f64(*f),
            SqlValue::Text(s) => JsValue::from_str(s),
        })
        .collect()
}

fn db_err(e: worker::Error) -> DbError {
    DbError(e.to_string())
}

impl Database for D1 {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> std::result::Result<Vec<Row>, DbError> {
        let stmt = self.0.prepare(sql).bind(&js_params(params)).map_err(db_err)?;
        stmt.all().await.map_err(db_err)?.results::<Row>().map_err(db_err)
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> std::result::Result<(), DbError> {
        let stmt = self.0.prepare(sql).bind(&js_params(params)).map_err(db_err)?;
        stmt.run().await.map_err(db_err).map(drop)
    }

    async fn batch(&self, statements: &[Statement]) -> std::result::Result<(), DbError> {
        let prepared = statements
            .iter()
            .map(|s| self.0.prepare(s.sql).bind(&js_params(&s.params)))
            .collect::<Result<Vec<_>>>()
            .map_err(db_err)?;
        self.0.batch(prepared).await.map_err(db_err).map(drop)
    }
}

struct WorkersRuntime(Context);

impl Runtime for WorkersRuntime {
    fn now_ms(&self) -> f64 {
        // Workers advance the clock only across I/O, so pure CPU work reads as 0 ms:
        // Server-Timing then shows the KV and D1 time, which is what is compared.
        worker::js_sys::Date::now()
    }

    fn spawn(&self, task: BackgroundTask) {
        self.0.wait_until(task);
    }

    fn log(&self, line: &str) {
        worker::console_log!("{line}");
    }

    fn sleep(&self, ms: u64) -> BackgroundTask {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }
}

fn env_string(env: &Env, name: &str) -> Option<String> {
    env.var(name).map(|v| v.to_string()).or_else(|_| env.secret(name).map(|v| v.to_string())).ok()
}

async fn api_request(mut req: Request) -> std::result::Result<ApiRequest, ApiError> {
    // Refuse by the declared length before reading anything — unless it is small
    // enough to drain (`DRAIN_LIMIT_BYTES`): then it is read and dropped below, so
    // the client hears the 413 rather than a proxy's 503.
    if let Some(len) = req.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok()) {
        if len > DRAIN_LIMIT_BYTES {
            return Err(body_too_large(len));
        }
    }
    let url = req.url().map_err(|e| ApiError::bad_request(format!("bad URL: {e}")))?;
    let headers = req.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    // Streamed and counted: a chunked body has no length to refuse by, and a
    // declared one may be false.
    let body = match req.method() {
        worker::Method::Get | worker::Method::Head => Vec::new(),
        _ if req.inner().body().is_none() => Vec::new(),
        _ => {
            let chunks = req.stream().map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
            read_capped(chunks, MAX_BODY_BYTES, DRAIN_LIMIT_BYTES).await?
        }
    };
    let query = url.query().unwrap_or_default().to_owned();
    Ok(ApiRequest { method: req.method().to_string(), path: url.path().to_owned(), query, headers, body })
}

fn worker_response(resp: ApiResponse) -> Result<Response> {
    let mut out = Response::from_bytes(resp.body)?.with_status(resp.status);
    let headers = out.headers_mut();
    for (k, v) in &resp.headers {
        headers.set(k, v)?;
    }
    Ok(out)
}

/// An answer given before the pipeline runs (bad configuration, oversized body)
/// still carries the observability headers every response has.
fn early_error(e: ApiError) -> ApiResponse {
    let mut resp = e.into_response();
    resp.set_header("server-timing", "total;dur=0.000");
    resp.set_header("x-cache", "none");
    resp.set_header("cache-control", "no-store");
    resp
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let config = match Config::from_lookup(|name| env_string(&env, name)) {
        Ok(c) => c,
        Err(e) => return worker_response(early_error(ApiError::new(500, e.to_string()))),
    };
    let req = match api_request(req).await {
        Ok(r) => r,
        Err(e) => return worker_response(early_error(e)),
    };
    let app = App::new(WorkersKv(env.kv("CACHE")?), D1(Rc::new(env.d1("DB")?)), Rc::new(WorkersRuntime(ctx)), config);
    worker_response(app.handle(req).await)
}
