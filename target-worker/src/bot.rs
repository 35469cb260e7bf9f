//! Bot detection (DESIGN.md §2.3): the User-Agent against isbot's maintained
//! pattern list, the verdict optionally cached in KV.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheRead};
use crate::config::Layer;
use crate::platform::{Kv, Runtime};
use crate::trace::{CacheOutcome, RequestTrace};

/// The compiled pattern set is pure data: built once per isolate, not per request.
fn patterns() -> &'static isbot::Bots {
    static BOTS: OnceLock<isbot::Bots> = OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

/// The uncached verdict. A missing or blank User-Agent counts as a bot.
pub fn is_bot_user_agent(user_agent: &str) -> bool {
    user_agent.trim().is_empty() || patterns().is_bot(user_agent)
}

/// KV key for a User-Agent's verdict: hashed, because KV keys are limited to 512
/// bytes and User-Agents are not.
pub fn cache_key(user_agent: &str) -> String {
    format!("bot:{}", hex::encode(Sha256::digest(user_agent.as_bytes())))
}

const BOT: &str = "1";
const HUMAN: &str = "0";

/// Decides whether `user_agent` is a bot, through the `bot` cache layer when it is
/// on, and records the layer's outcome and time in `trace`.
pub async fn detect<K: Kv>(
    user_agent: &str,
    cache: &Cache<'_, K>,
    runtime: &dyn Runtime,
    trace: &RequestTrace,
) -> bool {
    let start = runtime.now_ms();
    let (verdict, outcome) = if cache.enabled(Layer::Bot) {
        let key = cache_key(user_agent);
        match cache.read(Layer::Bot, &key).await {
            CacheRead::Hit(v) if v == BOT => (true, CacheOutcome::Hit),
            CacheRead::Hit(v) if v == HUMAN => (false, CacheOutcome::Hit),
            CacheRead::Hit(garbage) => {
                cache.report_garbage(
                    Layer::Bot,
                    &key,
                    &format!("expected \"0\" or \"1\", got {} bytes", garbage.len()),
                );
                (is_bot_user_agent(user_agent), CacheOutcome::Error)
            }
            CacheRead::Miss => {
                let verdict = is_bot_user_agent(user_agent);
                cache.write_behind(Layer::Bot, key, if verdict { BOT } else { HUMAN }.to_owned());
                (verdict, CacheOutcome::Miss)
            }
            // KV is failing: do not add a write to its load; compute and move on.
            CacheRead::Failed => (is_bot_user_agent(user_agent), CacheOutcome::Error),
        }
    } else {
        (is_bot_user_agent(user_agent), CacheOutcome::Off)
    };
    trace.record_layer(Layer::Bot, outcome, runtime.now_ms() - start);
    verdict
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
        assert_eq!(key.len(), 4 + 64);
        assert_ne!(cache_key("a"), cache_key("b"));
    }
}
