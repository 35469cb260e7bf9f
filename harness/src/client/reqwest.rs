//! The reqwest path: any scheme (https included), its own keep-alive pool. Used
//! for https targets and when asked for (`--http-client reqwest`).

use std::time::Duration;

use super::{describe, io_error_kind, ErrorKind, Failure, Reply, Request, MAX_IDLE};

pub struct ReqwestClient {
    inner: ::reqwest::Client,
    /// The target URL without its trailing slash.
    base: String,
}

fn classify(e: &::reqwest::Error) -> ErrorKind {
    if super::tls::tls_cause(e).is_some() {
        return ErrorKind::Tls;
    }
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_connect() {
        return ErrorKind::Connect;
    }
    if let Some(kind) = io_error_kind(e) {
        return kind;
    }
    if source_is_parse_error(e) {
        return ErrorKind::Protocol;
    }
    if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else if e.is_request() {
        // hyper reports a connection closed before the response as a request error.
        ErrorKind::Reset
    } else {
        ErrorKind::Other
    }
}

impl ReqwestClient {
    pub fn new(
        base: &str,
        connections: usize,
        timeout: Duration,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<ReqwestClient, String> {
        let mut builder = ::reqwest::Client::builder();
        if let Some(config) = tls {
            builder = builder.use_preconfigured_tls((*config).clone());
        }
        let inner = builder
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(MAX_IDLE)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .no_proxy()
            .http1_only()
            .redirect(::reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ReqwestClient { inner, base: base.trim_end_matches('/').to_owned() })
    }

    pub async fn send(&self, req: Request<'_>) -> Result<Reply, Failure> {
        let method = ::reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| Failure { kind: ErrorKind::Other, message: e.to_string() })?;
        let mut builder = self.inner.request(method, format!("{}{}", self.base, req.path));
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let fail = |e: ::reqwest::Error| Failure { kind: classify(&e), message: describe(&e) };
        let mut resp = builder.send().await.map_err(fail)?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (x_cache, server_timing, ops) = {
            use crate::annotations::{SERVER_TIMING, X_CACHE, X_OPS};
            (header(X_CACHE), header(SERVER_TIMING), header(X_OPS))
        };
        let headers = super::kept_headers(resp.headers(), req.keep_headers);
        let status = resp.status().as_u16();
        let mut bytes = 0u64;
        let mut body = req.keep_body.then(Vec::new);
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            let mut f = fail(e);
            if f.kind == ErrorKind::Other {
                f.kind = ErrorKind::Body;
            }
            f
        })? {
            bytes += chunk.len() as u64;
            super::keep(&mut body, &chunk);
        }
        Ok(Reply { status, x_cache, server_timing, ops, bytes, body, headers })
    }
}

/// Whether hyper, under reqwest, found the answer not to be HTTP.
fn source_is_parse_error(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_parse() || h.is_parse_status();
        }
        source = s.source();
    }
    false
}
