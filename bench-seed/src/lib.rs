//! What the worker and the harness must agree on, in one place both depend on:
//! deterministic benchmark identities, the latency profiles' data, and the
//! names of the cache strategies.
//!
//! Deterministic benchmark identities:
//!
//! `POST /__bench/seed {users, seed}` stores users whose credentials are derived here,
//! and the harness derives the very same credentials from `(BENCH_SECRET, seed, index)`
//! instead of reading them back over HTTP. Keying the derivation with the bench secret
//! (HMAC-SHA-256) means knowing a seed number is not enough to forge a session on a
//! deployment that has bench routes enabled.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The latency profiles of the worker's modelled runs, every figure with its
/// public source: the worker adds their delays, the harness shows their sources.
pub const LATENCY_PROFILES_JSON: &str = include_str!("../data/latency-profiles.json");

/// The worker's cache strategies by name, in the order it lists them, and the
/// one it runs by default (the one the bench judges claims on).
pub mod strategies {
    pub const NAMES: [&str; 8] =
        ["original", "generation", "generation-unfiltered", "generation-bulk", "cache-ttl", "memory", "swr", "warm"];
    pub const DEFAULT: &str = "generation";
}

/// Marks every row the seed creates, so `POST /__bench/reset` deletes exactly those.
pub const BENCH_EMAIL_DOMAIN: &str = "bench.invalid";

/// The credentials and identifiers of one seeded user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededUser {
    pub index: u32,
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// Value of the `session` cookie.
    pub session_id: String,
    /// Plain API key (`ak_…`); the worker stores only its SHA-256.
    pub api_key: String,
}

fn derive(bench_secret: &str, seed: u64, index: u32, purpose: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(bench_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("bench-seed/v1|{seed}|{index}|{purpose}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// Derives user number `index` of the population seeded with `seed`.
pub fn seeded_user(bench_secret: &str, seed: u64, index: u32) -> SeededUser {
    let user_id = format!("bu_{}", &hex::encode(derive(bench_secret, seed, index, "user"))[..29]);
    SeededUser {
        index,
        email: format!("user{index}.s{seed}@{BENCH_EMAIL_DOMAIN}"),
        name: format!("Bench User {index}"),
        session_id: hex::encode(derive(bench_secret, seed, index, "session")),
        api_key: format!("ak_{}", &hex::encode(derive(bench_secret, seed, index, "api-key"))[..48]),
        user_id,
    }
}

/// Which of `providers` the seeded user has enabled: a deterministic, roughly even
/// split, so per-user model lists differ between users the way real ones do.
pub fn enabled_providers<'a>(bench_secret: &str, seed: u64, index: u32, providers: &[&'a str]) -> Vec<&'a str> {
    let bits = derive(bench_secret, seed, index, "providers");
    providers.iter().enumerate().filter(|(i, _)| bits[i % 32] & (1 << (i / 32 % 8)) != 0).map(|(_, p)| *p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_credentials() {
        assert_eq!(seeded_user("s", 7, 3), seeded_user("s", 7, 3));
    }

    #[test]
    fn secret_seed_and_index_each_change_every_credential() {
        let base = seeded_user("s", 7, 3);
        for other in [seeded_user("t", 7, 3), seeded_user("s", 8, 3), seeded_user("s", 7, 4)] {
            assert_ne!(base.user_id, other.user_id);
            assert_ne!(base.session_id, other.session_id);
            assert_ne!(base.api_key, other.api_key);
        }
    }

    #[test]
    fn credential_formats() {
        let u = seeded_user("secret", 1, 0);
        assert!(u.api_key.starts_with("ak_") && u.api_key.len() == 51);
        assert_eq!(u.session_id.len(), 64);
        assert_eq!(u.user_id.len(), 32);
        assert!(u.email.ends_with("@bench.invalid"));
    }

    #[test]
    fn provider_split_is_deterministic_and_not_degenerate() {
        let providers = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let counts: Vec<usize> = (0..64).map(|i| enabled_providers("s", 1, i, &providers).len()).collect();
        assert_eq!(enabled_providers("s", 1, 5, &providers), enabled_providers("s", 1, 5, &providers));
        assert!(counts.iter().any(|&c| c < providers.len()));
        assert!(counts.iter().any(|&c| c > 0));
    }
}
