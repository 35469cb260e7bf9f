//! The HTTP client: one request in, its status, cache headers and size out, with
//! failures sorted into the error kinds the results report. It keeps no response
//! cache and sends no conditional requests: only the server's cache is measured.

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod hyper;
mod reqwest;
pub mod tls;

pub use self::hyper::MAX_IDLE;
pub use tls::TlsOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Connect,
    /// The TLS handshake failed (an untrusted certificate, no TLS on the port).
    Tls,
    Timeout,
    Reset,
    Body,
    /// The answer is not HTTP: malformed, or another protocol (a TLS port spoken
    /// to in plain HTTP answers with a TLS alert).
    Protocol,
    Other,
    /// Never sent: the iteration waited `drop_after` for a free slot (open model).
    Dropped,
    /// Never sent: a template of the request had no value.
    Template,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Body => "body",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Other => "other",
            ErrorKind::Dropped => "dropped",
            ErrorKind::Template => "template",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub x_cache: Option<String>,
    pub server_timing: Option<String>,
    /// `x-ops: kv-read=2,kv-write=0,d1-read=1,d1-write=0`: the backend operations
    /// the target worker made for this request.
    pub ops: Option<String>,
    pub bytes: u64,
    /// Only when the step needs it (extraction, body checks); at most
    /// [`MAX_KEPT_BODY`] bytes of it.
    pub body: Option<Vec<u8>>,
    /// The headers asked for by [`Request::keep_headers`] (name in lower case,
    /// values of a repeated header joined by ", ").
    pub headers: Vec<(String, String)>,
}

/// The most of one answer kept in memory for extraction and checks: every byte is
/// counted, but a 50 MB answer must not cost 50 MB per request in flight. An
/// extraction or check beyond this point sees the body cut short, and fails.
pub const MAX_KEPT_BODY: usize = 4 << 20;

/// Appends `data` to a kept body, up to [`MAX_KEPT_BODY`].
pub fn keep(kept: &mut Option<Vec<u8>>, data: &[u8]) {
    if let Some(k) = kept.as_mut() {
        let room = MAX_KEPT_BODY.saturating_sub(k.len());
        k.extend_from_slice(&data[..data.len().min(room)]);
    }
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
    /// Response headers to keep (lower-case names), for the step's header checks.
    pub keep_headers: &'a [String],
}

/// The headers of `map` named in `names`, for [`Reply::headers`].
fn kept_headers(map: &::hyper::HeaderMap, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter(|n| map.contains_key(n.as_str()))
        .map(|n| {
            let values: Vec<&str> = map.get_all(n.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
            (n.clone(), values.join(", "))
        })
        .collect()
}

/// Which HTTP implementation sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// hyper (the lean path), for http:// and https:// targets.
    Auto,
    /// A lean HTTP/1.1 path on hyper's connection API: one keep-alive connection
    /// per request in flight, no pool bookkeeping; rustls for https://.
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
    Reqwest(reqwest::ReqwestClient),
    Hyper(hyper::HyperClient),
}

/// The error kind of an I/O error anywhere in `e`'s source chain: a connection
/// closed or reset under the request is a reset, whichever client saw it.
pub(crate) fn io_error_kind(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(io.kind(), K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted | K::UnexpectedEof) {
                return Some(ErrorKind::Reset);
            }
        }
        source = s.source();
    }
    None
}

/// `e` and every error in its source chain, joined by `: `.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
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
    pub fn new(
        base: &str,
        connections: usize,
        timeout: Duration,
        kind: ClientKind,
        tls: &TlsOptions,
    ) -> Result<HttpClient, String> {
        let config = if base.starts_with("https://") { Some(tls.config()?) } else { None };
        match kind {
            ClientKind::Hyper | ClientKind::Auto => Ok(HttpClient {
                backend: Backend::Hyper(hyper::HyperClient::new(base, connections, timeout, config)?),
                kind: ClientKind::Hyper,
            }),
            ClientKind::Reqwest => Ok(HttpClient {
                backend: Backend::Reqwest(reqwest::ReqwestClient::new(base, connections, timeout, config)?),
                kind: ClientKind::Reqwest,
            }),
        }
    }

    pub async fn send(&self, req: Request<'_>) -> Result<Reply, Failure> {
        match &self.backend {
            Backend::Hyper(h) => h.send(req).await,
            Backend::Reqwest(r) => r.send(req).await,
        }
    }
}
