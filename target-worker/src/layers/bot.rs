//! Bot detection (ARCHITECTURE.md, "The worker"): the User-Agent against isbot's
//! maintained pattern list, the verdict optionally cached in KV (layer `bot`).

use std::convert::Infallible;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::{read_through, CacheLayer, Decoded};
use crate::cache::Cache;
use crate::config::Layer;
use crate::platform::Kv;

/// The compiled pattern set is pure data: built once per isolate, not per request.
fn patterns() -> &'static isbot::Bots {
    static BOTS: OnceLock<isbot::Bots> = OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

/// The uncached verdict. A missing or blank User-Agent counts as a bot.
pub fn is_bot_user_agent(user_agent: &str) -> bool {
    user_agent.trim().is_empty() || patterns().is_bot(user_agent)
}

/// The version of the pattern list the verdicts come from (the `isbot` crate's,
/// as Cargo.lock pins it; a test holds the two equal). It is part of every key:
/// a new list never serves a verdict of the old one.
pub const PATTERNS_VERSION: &str = "isbot-0.1.3";

/// KV key for a User-Agent's verdict: hashed, because KV keys are limited to 512
/// bytes and User-Agents are not.
pub fn cache_key(user_agent: &str) -> String {
    format!("bot:{PATTERNS_VERSION}:{}", hex::encode(Sha256::digest(user_agent.as_bytes())))
}

const BOT: &str = "1";
const HUMAN: &str = "0";

/// The `bot` layer: one verdict per User-Agent.
struct BotVerdict<'a> {
    user_agent: &'a str,
}

impl CacheLayer for BotVerdict<'_> {
    type Value = bool;
    const LAYER: Layer = Layer::Bot;
    const ADMIT_ANONYMOUS_ON_SECOND_MISS: bool = true;

    fn key(&self) -> String {
        cache_key(self.user_agent)
    }

    fn encode(&self, verdict: &bool, _guard: &str) -> Option<String> {
        Some(if *verdict { BOT } else { HUMAN }.to_owned())
    }

    fn decode(&self, raw: &str, _guard: &str) -> Decoded<bool> {
        match raw {
            BOT => Decoded::Fresh(true),
            HUMAN => Decoded::Fresh(false),
            other => Decoded::Corrupt(format!("expected \"0\" or \"1\", got {} bytes", other.len())),
        }
    }
}

/// Decides whether `user_agent` is a bot, through the `bot` cache layer when it is
/// on, and records the layer's outcome and time in the request's trace.
pub async fn detect<K: Kv>(user_agent: &str, cache: &Cache<'_, K>) -> bool {
    let compute = || async { Ok::<_, Infallible>(is_bot_user_agent(user_agent)) };
    match read_through(cache, &BotVerdict { user_agent }, compute).await {
        Ok(verdict) => verdict,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bots_and_browsers() {
        assert!(is_bot_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)"));
        assert!(is_bot_user_agent("curl/8.5.0"));
        assert!(is_bot_user_agent("python-requests/2.31.0"));
        assert!(is_bot_user_agent(""));
        assert!(is_bot_user_agent("   "));
        assert!(!is_bot_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
        ));
    }

    #[test]
    fn key_is_hashed_and_bounded() {
        let long = "x".repeat(10_000);
        let key = cache_key(&long);
        assert_eq!(key.len(), 4 + PATTERNS_VERSION.len() + 1 + 64);
        assert_ne!(cache_key("a"), cache_key("b"));
    }

    #[test]
    fn the_keys_version_is_the_pattern_list_cargo_pins() {
        let lock = include_str!("../../../Cargo.lock");
        let at = lock.find("name = \"isbot\"\nversion = \"").expect("isbot in Cargo.lock");
        let rest = &lock[at + "name = \"isbot\"\nversion = \"".len()..];
        let version = &rest[..rest.find('"').unwrap()];
        assert_eq!(PATTERNS_VERSION, format!("isbot-{version}"), "a new pattern list needs a new key version");
    }
}
