//! Provider API keys at rest: AES-256-GCM with a random 96-bit nonce per value,
//! bound to its owner and provider as associated data, so a ciphertext copied to
//! another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("encryption failed")]
    Encrypt,
    #[error("stored value is not a valid ciphertext")]
    Malformed,
    #[error("decryption failed (wrong key or tampered value)")]
    Decrypt,
}

/// The associated data binding a ciphertext to its row.
pub fn row_binding(user_id: &str, provider_id: &str) -> Vec<u8> {
    format!("provider-key|{user_id}|{provider_id}").into_bytes()
}

/// Encrypts `plaintext` and returns `base64(nonce || ciphertext+tag)`.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| CryptoError::Random(e.to_string()))?;
    let cipher = Aes256Gcm::new(key.into());
    let sealed =
        cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }).map_err(|_| CryptoError::Encrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

pub fn decrypt(key: &[u8; 32], stored: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let bytes = STANDARD.decode(stored).map_err(|_| CryptoError::Malformed)?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let key = [7u8; 32];
        let aad = row_binding("u1", "openai");
        let a = encrypt(&key, b"sk-secret", &aad).unwrap();
        let b = encrypt(&key, b"sk-secret", &aad).unwrap();
        assert_ne!(a, b, "a nonce must never repeat");
        assert!(!a.contains("sk-secret"));
        assert_eq!(decrypt(&key, &a, &aad).unwrap(), b"sk-secret");
    }

    #[test]
    fn wrong_key_row_or_tampering_fail() {
        let key = [7u8; 32];
        let aad = row_binding("u1", "openai");
        let sealed = encrypt(&key, b"sk-secret", &aad).unwrap();
        assert_eq!(decrypt(&[8u8; 32], &sealed, &aad), Err(CryptoError::Decrypt));
        assert_eq!(decrypt(&key, &sealed, &row_binding("u2", "openai")), Err(CryptoError::Decrypt));
        let mut raw = STANDARD.decode(&sealed).unwrap();
        raw[20] ^= 1;
        assert_eq!(decrypt(&key, &STANDARD.encode(raw), &aad), Err(CryptoError::Decrypt));
        assert_eq!(decrypt(&key, "@@", &aad), Err(CryptoError::Malformed));
        assert_eq!(decrypt(&key, "AAAA", &aad), Err(CryptoError::Malformed));
    }
}
