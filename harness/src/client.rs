//! The HTTP client: one request in, its status, cache headers and size out, with
//! failures sorted into the error kinds the results report. It keeps no response
//! cache and sends no conditional requests: only the server's cache is measured.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Connect,
    Timeout,
    Reset,
    Body,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Body => "body",
            ErrorKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub x_cache: Option<String>,
    pub server_timing: Option<String>,
    pub bytes: u64,
    /// Only when the step needs it (extraction, body checks).
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Option<String>,
    pub keep_body: bool,
}

/// Which HTTP implementation sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// hyper for http:// targets, reqwest for https://.
    Auto,
    /// A lean HTTP/1.1 path on hyper's connection API: one keep-alive connection
    /// per request in flight, no pool bookkeeping. http:// only.
    Hyper,
    /// reqwest (hyper's pooled client, rustls for https).
    Reqwest,
}

/// Sends requests to one target. Used from one thread (the run's runtime).
pub struct HttpClient {
    backend: Backend,
    /// The implementation chosen (never `Auto`).
    pub kind: ClientKind,
}

enum Backend {
    Reqwest { inner: reqwest::Client, base: String },
    Hyper(crate::client_hyper::HyperClient),
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_connect() {
        return ErrorKind::Connect;
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(io.kind(), K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted | K::UnexpectedEof) {
                return ErrorKind::Reset;
            }
        }
        source = s.source();
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

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl HttpClient {
    /// A client for `base` (scheme, host, port, optional path prefix) keeping up to
    /// `connections` idle keep-alive connections.
    pub fn new(base: &str, connections: usize, timeout: Duration, kind: ClientKind) -> Result<HttpClient, String> {
        let https = base.starts_with("https://");
        match kind {
            ClientKind::Hyper if https => Err("--http-client hyper supports http:// targets only; use reqwest".into()),
            ClientKind::Hyper | ClientKind::Auto if !https => Ok(HttpClient {
                backend: Backend::Hyper(crate::client_hyper::HyperClient::new(base, connections, timeout)?),
                kind: ClientKind::Hyper,
            }),
            _ => Ok(HttpClient {
                backend: Backend::Reqwest {
                    inner: Self::reqwest(connections, timeout)?,
                    base: base.trim_end_matches('/').to_owned(),
                },
                kind: ClientKind::Reqwest,
            }),
        }
    }

    fn reqwest(connections: usize, timeout: Duration) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(crate::client_hyper::MAX_IDLE)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .no_proxy()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    pub async fn send(&self, req: Request<'_>) -> Result<Reply, Failure> {
        match &self.backend {
            Backend::Hyper(h) => h.send(req).await,
            Backend::Reqwest { inner, base } => Self::send_reqwest(inner, base, req).await,
        }
    }

    async fn send_reqwest(inner: &reqwest::Client, base: &str, req: Request<'_>) -> Result<Reply, Failure> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| Failure { kind: ErrorKind::Other, message: e.to_string() })?;
        let mut builder = inner.request(method, format!("{base}{}", req.path));
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let fail = |e: reqwest::Error| Failure { kind: classify(&e), message: describe(&e) };
        let mut resp = builder.send().await.map_err(fail)?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (x_cache, server_timing) = (header("x-cache"), header("server-timing"));
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
            if let Some(b) = body.as_mut() {
                b.extend_from_slice(&chunk);
            }
        }
        Ok(Reply { status, x_cache, server_timing, bytes, body })
    }
}
