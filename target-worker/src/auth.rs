//! Authentication (ARCHITECTURE.md, "Request path"): which credential a request carries, and who it
//! belongs to. Bad credentials are always a 401, never a silent fall-back to
//! anonymous.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::http::{ApiError, ApiRequest, Failure};
use crate::jwt;
use crate::platform::Database;
use crate::store::{Store, User};

/// Longest credential we look at; anything longer is malformed, not a lookup.
const MAX_CREDENTIAL_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session(String),
    ApiKey(String),
    Jwt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Session,
    ApiKey,
    Jwt,
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub method: AuthMethod,
    /// Loaded while authenticating; `None` only for anonymous callers.
    pub user: Option<User>,
}

impl Identity {
    pub fn is_anonymous(&self) -> bool {
        self.method == AuthMethod::Anonymous
    }

    /// The user id of an authenticated caller; 401 for anonymous ones.
    pub fn require_user(&self) -> Result<&str, ApiError> {
        if self.is_anonymous() {
            Err(ApiError::unauthorized("authentication required: send a session cookie, an ak_ API key or a JWT"))
        } else {
            Ok(&self.user_id)
        }
    }
}

fn token_chars_ok(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The credential the request presents, if any. `Authorization` wins over the
/// session cookie when both are sent.
pub fn credential(req: &ApiRequest) -> Result<Option<Credential>, ApiError> {
    if let Some(header) = req.header_value("authorization") {
        let header = header.trim();
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized(format!(
                "unsupported Authorization scheme {scheme:?}; expected 'Bearer <API key or JWT>'"
            )));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::unauthorized("Authorization header has an empty Bearer token"));
        }
        if token.len() > MAX_CREDENTIAL_LEN || !token_chars_ok(token) {
            return Err(ApiError::unauthorized(
                "malformed Bearer token: expected an ak_ API key or a JWT (base64url parts)",
            ));
        }
        return Ok(Some(if token.starts_with("ak_") {
            Credential::ApiKey(token.to_owned())
        } else {
            Credential::Jwt(token.to_owned())
        }));
    }
    if let Some(header) = req.header_value("cookie") {
        // Other cookies may be malformed without being our business; only `session`
        // is judged.
        let session = cookie::Cookie::split_parse(header)
            .filter_map(Result::ok)
            .find(|c| c.name() == "session")
            .map(|c| c.value().to_owned());
        if let Some(id) = session {
            if id.is_empty() || id.len() > 256 || !token_chars_ok(&id) {
                return Err(ApiError::unauthorized(
                    "malformed session cookie: expected session=<id> with letters, digits, '-', '_' or '.'",
                ));
            }
            return Ok(Some(Credential::Session(id)));
        }
    }
    Ok(None)
}

/// SHA-256 hex of an API key: the only form in which keys are stored.
pub fn hash_api_key(key: &str) -> String {
    hash_secret(key)
}

/// How a credential is stored: its SHA-256, hex (API keys, session ids).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Resolves `credential` to a user at time `now` (Unix seconds).
pub async fn authenticate<D: Database>(
    credential: Credential,
    store: &Store<'_, D>,
    jwt_secret: Option<&str>,
    now: i64,
) -> Result<Identity, Failure> {
    let identity = match credential {
        Credential::Session(id) => match store.session_user(&id).await? {
            None => Err(ApiError::unauthorized("invalid session")),
            Some((_, expires_at)) if expires_at <= now => Err(ApiError::unauthorized("session expired")),
            Some((user, _)) => Ok(Identity { user_id: user.id.clone(), method: AuthMethod::Session, user: Some(user) }),
        },
        Credential::ApiKey(key) => match store.api_key_user(&hash_api_key(&key)).await? {
            None => Err(ApiError::unauthorized("invalid API key")),
            Some(user) => Ok(Identity { user_id: user.id.clone(), method: AuthMethod::ApiKey, user: Some(user) }),
        },
        Credential::Jwt(token) => match jwt_secret {
            None => Err(ApiError::new(500, "JWT authentication is unavailable: JWT_SECRET is not set")),
            Some(secret) => match jwt::verify(secret, &token, now) {
                Err(e) => Err(ApiError::unauthorized(e.to_string())),
                // A valid signature is not a live account: a token outlives the
                // deletion of its user, and every route must refuse it alike.
                Ok(claims) => match store.user(&claims.sub).await? {
                    None => Err(ApiError::unauthorized("the token's user no longer exists")),
                    Some(user) => Ok(Identity { user_id: user.id.clone(), method: AuthMethod::Jwt, user: Some(user) }),
                },
            },
        },
    };
    Ok(identity?)
}

/// The identity of a caller without credentials: the first 32 hex digits of the
/// SHA-256 of its IP (`CF-Connecting-IP`, else the first `X-Forwarded-For` hop).
pub fn anonymous(req: &ApiRequest) -> Identity {
    let ip = req
        .header_value("cf-connecting-ip")
        .or_else(|| req.header_value("x-forwarded-for").and_then(|v| v.split(',').next()))
        .map(str::trim)
        .unwrap_or("");
    let digest = hex::encode(Sha256::digest(ip.as_bytes()));
    Identity { user_id: digest[..32].to_owned(), method: AuthMethod::Anonymous, user: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> ApiRequest {
        headers.iter().fold(ApiRequest::new("GET", "/auth/me"), |r, (k, v)| r.header(k, v))
    }

    #[test]
    fn credential_kinds() {
        assert_eq!(credential(&req(&[])).unwrap(), None);
        assert_eq!(
            credential(&req(&[("cookie", "theme=dark; session=abc123")])).unwrap(),
            Some(Credential::Session("abc123".into()))
        );
        assert_eq!(
            credential(&req(&[("authorization", "Bearer ak_xyz")])).unwrap(),
            Some(Credential::ApiKey("ak_xyz".into()))
        );
        assert_eq!(
            credential(&req(&[("authorization", "bearer a.b.c"), ("cookie", "session=s")])).unwrap(),
            Some(Credential::Jwt("a.b.c".into()))
        );
        assert_eq!(credential(&req(&[("cookie", "theme=dark")])).unwrap(), None);
    }

    #[test]
    fn malformed_credentials_are_named() {
        let msg = |h: &[(&str, &str)]| credential(&req(h)).unwrap_err();
        assert!(msg(&[("authorization", "Basic dXNlcjpwYXNz")]).message.contains("Basic"));
        assert!(msg(&[("authorization", "Bearer")]).message.contains("empty"));
        assert!(msg(&[("authorization", "Bearer a b\"c")]).message.contains("malformed"));
        assert!(msg(&[("cookie", "session=")]).message.contains("session cookie"));
        assert!(msg(&[("cookie", "session=a%00b")]).message.contains("session cookie"));
        assert_eq!(msg(&[("cookie", "session=")]).status, 401);
    }

    #[test]
    fn anonymous_identity_from_ip() {
        let a = anonymous(&req(&[("cf-connecting-ip", "203.0.113.9")]));
        let b = anonymous(&req(&[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]));
        assert_eq!(a.user_id, b.user_id);
        assert_eq!(a.user_id.len(), 32);
        assert_ne!(a.user_id, anonymous(&req(&[("cf-connecting-ip", "203.0.113.10")])).user_id);
    }
}
