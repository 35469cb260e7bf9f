//! The lean HTTP/1.1 path: hyper's connection API with one keep-alive connection
//! per request in flight, kept on a free list. No pool keyed by host, no locks:
//! the run is single-threaded. This is where the harness's CPU per request comes
//! close to oha's (which drives hyper the same way); reqwest's pool adds about
//! 7 µs per request on this machine. https:// is rustls over the same path
//! (as oha's).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use ::hyper::client::conn::http1::{self, SendRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{io_error_kind, ErrorKind, Failure, Reply, Request};

/// Idle connections older than this are dropped, not reused: servers close idle
/// keep-alive connections (Node's default, wrangler dev's proxy included, after 5 s),
/// and a request sent on one just as it closes fails with a reset that is the
/// client's doing, not the target's.
pub const MAX_IDLE: Duration = Duration::from_secs(4);

pub struct HyperClient {
    /// host:port to connect to.
    addr: String,
    /// `Host` header value.
    host: String,
    /// Path prefix of the target URL, without the trailing slash.
    prefix: String,
    /// Idle connections and when each went idle.
    idle: RefCell<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
    max_idle: usize,
    timeout: Duration,
    /// For https://: the TLS configuration and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

fn failure(kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure { kind, message: message.into() }
}

fn classify(e: &::hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return ErrorKind::Reset;
    }
    if e.is_parse() || e.is_parse_status() {
        return ErrorKind::Protocol;
    }
    io_error_kind(e).unwrap_or(ErrorKind::Other)
}

impl HyperClient {
    pub fn new(
        base: &str,
        connections: usize,
        timeout: Duration,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<HyperClient, String> {
        let url = url::Url::parse(base).map_err(|e| format!("{base:?} is not a URL: {e}"))?;
        let host = url.host_str().ok_or_else(|| format!("{base:?} has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tls = match tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
                    .map_err(|e| format!("{base:?}: {bare:?} is no TLS server name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
            None => None,
        };
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(HyperClient {
            addr: format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']')),
            host: host_header,
            prefix: url.path().trim_end_matches('/').to_owned(),
            idle: RefCell::new(Vec::with_capacity(connections)),
            max_idle: connections,
            timeout,
            tls,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| failure(ErrorKind::Connect, format!("connect to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => self.handshake(stream).await,
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), stream).await.map_err(|e| {
                    let cause = super::tls::tls_cause(&e).unwrap_or_else(|| e.to_string());
                    failure(ErrorKind::Tls, format!("TLS handshake with {}: {cause}", self.addr))
                })?;
                self.handshake(stream).await
            }
        }
    }

    async fn handshake<S>(&self, stream: S) -> Result<SendRequest<Full<Bytes>>, Failure>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failure(ErrorKind::Connect, format!("HTTP handshake with {}: {e}", self.addr)))?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// An idle connection that is still usable, or a new one.
    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        loop {
            let pooled = self.idle.borrow_mut().pop();
            match pooled {
                Some((_, since)) if since.elapsed() > MAX_IDLE => {}
                Some((mut c, _)) if !c.is_closed() => {
                    // A connection the server closed while idle is not the request's fault.
                    if c.ready().await.is_ok() {
                        return Ok(c);
                    }
                }
                Some(_) => {}
                None => return self.connect().await,
            }
        }
    }

    pub async fn send(&self, req: Request<'_>) -> Result<Reply, Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(failure(ErrorKind::Timeout, format!("no complete answer within {:?}", self.timeout))),
        }
    }

    async fn exchange(&self, req: Request<'_>) -> Result<Reply, Failure> {
        let mut conn = self.connection().await?;
        let mut builder = hyper::Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.prefix, req.path))
            .header(hyper::header::HOST, &self.host);
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        let body = req.body.map(Bytes::from).unwrap_or_default();
        let request = builder.body(Full::new(body)).map_err(|e| failure(ErrorKind::Other, e.to_string()))?;
        let resp = conn.send_request(request).await.map_err(|e| failure(classify(&e), e.to_string()))?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (x_cache, server_timing, ops) = {
            use crate::annotations::{SERVER_TIMING, X_CACHE, X_OPS};
            (header(X_CACHE), header(SERVER_TIMING), header(X_OPS))
        };
        let headers = super::kept_headers(resp.headers(), req.keep_headers);
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut bytes = 0u64;
        let mut kept = req.keep_body.then(Vec::new);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| failure(ErrorKind::Body, e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                bytes += data.len() as u64;
                super::keep(&mut kept, &data);
            }
        }
        if !conn.is_closed() {
            let mut idle = self.idle.borrow_mut();
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
        Ok(Reply { status, x_cache, server_timing, ops, bytes, body: kept, headers })
    }
}
