//! HS256 JSON Web Tokens.
//!
//! Written on `hmac` + `sha2` rather than taken from `jsonwebtoken`: that crate's
//! pure-Rust backend pulls RSA and elliptic-curve code (and a wasm `getrandom`) into
//! the Worker for one algorithm we use. The rules that matter are all here: the
//! header must say `HS256` (so `alg: none` and algorithm confusion are refused), the
//! signature is compared in constant time, and `exp`, `nbf`, `iss`, `aud` are checked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `iss` and `aud` of every token this worker issues and accepts.
pub const ISSUER: &str = "target-worker";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// `aud` may be one string or a list (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn includes(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(list) => list.iter().any(|a| a == aud),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error("JWT algorithm {0:?} is not accepted; only HS256")]
    Algorithm(String),
    #[error("JWT signature does not verify")]
    Signature,
    #[error("JWT expired")]
    Expired,
    #[error("JWT not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("JWT issuer must be {ISSUER:?}")]
    Issuer,
    #[error("JWT audience must include {ISSUER:?}")]
    Audience,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Signs a token for `sub`, valid for `ttl_seconds` from `now`.
pub fn issue(secret: &str, sub: &str, now: i64, ttl_seconds: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        sub: sub.to_owned(),
        iss: ISSUER.into(),
        aud: Audience::One(ISSUER.into()),
        iat: now,
        exp: now + ttl_seconds,
        nbf: None,
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies `token` at time `now` (Unix seconds) and returns its claims.
pub fn verify(secret: &str, token: &str, now: i64) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("expected three dot-separated parts".into()));
    };
    let decode = |what: &str, part: &str| {
        URL_SAFE_NO_PAD.decode(part).map_err(|e| JwtError::Malformed(format!("{what} is not base64url: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode("header", h)?)
        .map_err(|e| JwtError::Malformed(format!("header is not a JSON object with alg: {e}")))?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm(header.alg));
    }
    let signature = decode("signature", s)?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&signature).map_err(|_| JwtError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decode("payload", p)?).map_err(|e| JwtError::Malformed(format!("claims: {e}")))?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(JwtError::NotYetValid);
    }
    if claims.iss != ISSUER {
        return Err(JwtError::Issuer);
    }
    if !claims.aud.includes(ISSUER) {
        return Err(JwtError::Audience);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge(header: &str, claims: &str, secret: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let mut m = mac(secret);
        m.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn round_trip() {
        let t = issue("k", "user-1", 1_000, 60);
        let c = verify("k", &t, 1_010).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.exp, 1_060);
    }

    #[test]
    fn refusals() {
        let t = issue("k", "u", 1_000, 60);
        assert_eq!(verify("other", &t, 1_010), Err(JwtError::Signature));
        assert_eq!(verify("k", &t, 1_060), Err(JwtError::Expired));
        assert!(matches!(verify("k", "a.b", 0), Err(JwtError::Malformed(_))));
        assert!(matches!(verify("k", "!!.b.c", 0), Err(JwtError::Malformed(_))));
        let claims = r#"{"sub":"u","iss":"target-worker","aud":"target-worker","iat":0,"exp":99999}"#;
        // alg none with an empty signature: the classic bypass.
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(verify("k", &none, 10), Err(JwtError::Algorithm("none".into())));
        let wrong_iss =
            forge(r#"{"alg":"HS256"}"#, r#"{"sub":"u","iss":"x","aud":"target-worker","iat":0,"exp":99999}"#, "k");
        assert_eq!(verify("k", &wrong_iss, 10), Err(JwtError::Issuer));
        let aud_list = forge(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"u","iss":"target-worker","aud":["a","target-worker"],"iat":0,"exp":99999}"#,
            "k",
        );
        assert!(verify("k", &aud_list, 10).is_ok());
        let wrong_aud =
            forge(r#"{"alg":"HS256"}"#, r#"{"sub":"u","iss":"target-worker","aud":"a","iat":0,"exp":99999}"#, "k");
        assert_eq!(verify("k", &wrong_aud, 10), Err(JwtError::Audience));
        let future = forge(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"u","iss":"target-worker","aud":"target-worker","iat":0,"exp":99999,"nbf":500}"#,
            "k",
        );
        assert_eq!(verify("k", &future, 10), Err(JwtError::NotYetValid));
    }
}
