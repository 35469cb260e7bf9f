//! The `memory` strategy's in-isolate layer in front of KV: what this isolate read
//! from or wrote to KV, for [`MEMORY_TTL_MS`], at most [`MEMORY_MAX_ENTRIES`]
//! entries. Keyed by the modelled location too (`x-bench-location`), so one local
//! isolate can stand for the isolates of several locations: what another isolate
//! would still serve after a write here is then measurable.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::strategy::{MEMORY_MAX_ENTRIES, MEMORY_TTL_MS};

struct Remembered {
    expires_ms: f64,
    /// `None`: KV had no value (a miss is remembered as well).
    value: Option<String>,
}

thread_local! {
    static MEMORY: RefCell<HashMap<(u32, String), Remembered>> = RefCell::new(HashMap::new());
}

/// What this isolate remembers of `key` at `now_ms`: `Some(value)` while fresh.
pub fn recall(location: u32, key: &str, now_ms: f64) -> Option<Option<String>> {
    MEMORY.with(|m| {
        let m = m.borrow();
        let r = m.get(&(location, key.to_owned()))?;
        (now_ms < r.expires_ms).then(|| r.value.clone())
    })
}

/// Remembers `value` for `key`, evicting the expired entries and then the ones
/// closest to expiry when the memory is full.
pub fn remember(location: u32, key: &str, value: Option<String>, now_ms: f64) {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MEMORY_MAX_ENTRIES {
            m.retain(|_, r| r.expires_ms > now_ms);
        }
        while m.len() >= MEMORY_MAX_ENTRIES {
            let oldest = m.iter().min_by(|a, b| a.1.expires_ms.total_cmp(&b.1.expires_ms)).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert((location, key.to_owned()), Remembered { expires_ms: now_ms + MEMORY_TTL_MS, value });
    })
}

/// Forgets everything (a bench reset).
pub fn clear() {
    MEMORY.with(|m| m.borrow_mut().clear());
}

/// How many entries this isolate holds (tests, the size cap).
pub fn len() -> usize {
    MEMORY.with(|m| m.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_is_capped() {
        remember(7, "k", Some("v".into()), 0.0);
        assert_eq!(recall(7, "k", 1.0), Some(Some("v".into())));
        assert_eq!(recall(8, "k", 1.0), None, "another location remembers nothing");
        assert_eq!(recall(7, "k", MEMORY_TTL_MS + 1.0), None);
        remember(7, "gone", None, 0.0);
        assert_eq!(recall(7, "gone", 1.0), Some(None), "a miss is remembered");
        for i in 0..MEMORY_MAX_ENTRIES + 50 {
            remember(9, &format!("k{i}"), Some(String::new()), 10.0 + i as f64);
        }
        assert!(len() <= MEMORY_MAX_ENTRIES);
        let last = format!("k{}", MEMORY_MAX_ENTRIES + 49);
        assert!(recall(9, &last, 20.0).is_some(), "the newest entry is kept");
        assert!(recall(9, "k0", 20.0).is_none(), "the oldest entries are evicted");
    }
}
