//! Platform-neutral request and response, and the JSON error shape.

use serde::Serialize;

use crate::platform::DbError;

/// Request bodies above this size are refused with 413 (ARCHITECTURE.md, "Failure behaviour").
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// `target` is a path with an optional `?query`.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            query: query.to_owned(),
            ..Default::default()
        }
    }

    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        // Serialising our own plain data structures cannot fail; fall back to a
        // fixed body rather than panic (a panic kills the isolate).
        let body = serde_json::to_vec(value).unwrap_or_else(|_| br#"{"error":"serialisation failed"}"#.to_vec());
        ApiResponse { status, headers: vec![("content-type".into(), "application/json".into())], body }
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.into()));
    }
}

/// The 413 for a body of at least `seen` bytes.
pub fn body_too_large(seen: usize) -> ApiError {
    ApiError::new(413, format!("request body is at least {seen} bytes; the limit is {MAX_BODY_BYTES}"))
}

/// How much of an oversized body is read (and dropped) before the 413 goes out.
/// Answering while the client is still sending makes `wrangler dev`'s proxy
/// report "Your worker restarted mid-request" as a 503 (issue 28: a 10 MB
/// upload got 503, not 413); a body up to this size is drained first, so the
/// client hears the 413. Beyond it the answer goes out at once: draining an
/// endless upload would cost the worker its time for nothing.
pub const DRAIN_LIMIT_BYTES: usize = 32 * 1024 * 1024;

/// Reads a request body from its chunks, refusing it with 413 when more than
/// `limit` bytes arrive: a body without `Content-Length` (chunked) or with a
/// false one is never held in memory beyond the limit plus one chunk. The rest
/// of an oversized body is read and dropped up to `drain` bytes in all (see
/// [`DRAIN_LIMIT_BYTES`]).
pub async fn read_capped<S, E>(chunks: S, limit: usize, drain: usize) -> Result<Vec<u8>, ApiError>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>>,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let mut chunks = std::pin::pin!(chunks);
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            let seen = body.len() + chunk.len();
            drop(body);
            return Err(body_too_large(drained(&mut chunks, seen, drain).await));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and drops chunks until the body ends or `drain` bytes were seen; the
/// bytes seen.
async fn drained<S, E>(chunks: &mut std::pin::Pin<&mut S>, mut seen: usize, drain: usize) -> usize
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>>,
{
    use futures_util::StreamExt;
    while seen <= drain {
        match chunks.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            _ => break,
        }
    }
    seen
}

/// An error that becomes a JSON response `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// Extra headers (e.g. `allow` on 405).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), headers: Vec::new() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn not_found() -> Self {
        Self::new(404, "not found")
    }

    pub fn into_response(self) -> ApiResponse {
        let mut resp = ApiResponse::json(self.status, &serde_json::json!({ "error": self.message }));
        for (k, v) in self.headers {
            resp.set_header(&k, v);
        }
        resp
    }
}

/// Parses a JSON request body into `T`, answering 400 with serde's own message
/// (which names the field, line and column).
pub fn parse_json_body<T: serde::de::DeserializeOwned>(req: &ApiRequest) -> Result<T, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("request body is empty; expected a JSON object"));
    }
    // The path names the offending field, which serde's own message leaves out for
    // wrong values ("invalid value: integer `-1`" → "users: invalid value …").
    let mut de = serde_json::Deserializer::from_slice(&req.body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    // serde's derived structs also accept a JSON array of the fields in order; our
    // bodies are objects, and a positional form would be an accident.
    if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("invalid JSON body: expected a JSON object"));
    }
    Ok(value)
}

/// Why a handler did not produce its answer: a client-facing error, or a database
/// failure that the pipeline logs and turns into 503 (never a partial answer).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("database failure: {0}")]
    Db(#[from] DbError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("ready streams never wait")
    }

    #[test]
    fn bodies_are_capped_while_streaming() {
        let pulled = Cell::new(0usize);
        // A 10 MB body in 16 KiB chunks, produced lazily: the count of chunks
        // pulled shows how much was read before the refusal.
        let chunks = futures_util::stream::iter((0..640).map(|_| {
            pulled.set(pulled.get() + 1);
            Ok::<_, String>(vec![b'x'; 16 * 1024])
        }));
        let e = block_on(read_capped(chunks, MAX_BODY_BYTES, DRAIN_LIMIT_BYTES)).unwrap_err();
        assert_eq!(e.status, 413);
        assert!(e.message.contains("limit is 65536"), "{}", e.message);
        assert_eq!(pulled.get(), 640, "the rest drained (and dropped), so the client hears the 413");
        assert!(e.message.contains(&(640 * 16 * 1024).to_string()), "{}", e.message);
        // Past the drain limit the answer goes out: an endless upload is not read to its end.
        pulled.set(0);
        let endless = futures_util::stream::iter((0..u32::MAX).map(|_| {
            pulled.set(pulled.get() + 1);
            Ok::<_, String>(vec![b'x'; 16 * 1024])
        }));
        assert_eq!(block_on(read_capped(endless, MAX_BODY_BYTES, 1 << 20)).unwrap_err().status, 413);
        assert_eq!(pulled.get(), (1 << 20) / (16 * 1024) + 1, "stops at the first chunk past the drain limit");
    }

    #[test]
    fn bodies_within_the_cap_are_read_whole() {
        let chunks = futures_util::stream::iter(vec![Ok::<_, String>(b"{\"a\":".to_vec()), Ok(b"1}".to_vec())]);
        assert_eq!(block_on(read_capped(chunks, MAX_BODY_BYTES, DRAIN_LIMIT_BYTES)).unwrap(), b"{\"a\":1}");
        let exact = futures_util::stream::iter(vec![Ok::<_, String>(vec![0u8; MAX_BODY_BYTES])]);
        assert_eq!(block_on(read_capped(exact, MAX_BODY_BYTES, DRAIN_LIMIT_BYTES)).unwrap().len(), MAX_BODY_BYTES);
        let failing = futures_util::stream::iter(vec![Err::<Vec<u8>, _>("reset".to_string())]);
        assert_eq!(block_on(read_capped(failing, 10, DRAIN_LIMIT_BYTES)).unwrap_err().status, 400);
    }
}
