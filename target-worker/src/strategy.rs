//! Cache strategies (ARCHITECTURE.md, "Cache strategies"): how the cache layers store,
//! read and invalidate, selected per deployment with `CACHE_STRATEGY` and per request
//! with `x-bench-strategy` (bench secret). Every strategy serves the same bodies as
//! cache-off; they differ in KV operations, latency and how stale an answer may be.
//! Each one's consistency contract is [`Strategy::contract`]; the correctness suite
//! (`tests/strategies_native.rs`, `tests/e2e_wrangler.rs`) holds each to its own.
//!
//! Entries of each strategy live under its own key prefix, so strategies compared in
//! one KV namespace never serve each other's entries; the generation strategies share
//! the per-user generation key, so any write invalidates all of their entries.

use std::fmt;

/// A cache strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    Original,
    Generation,
    GenerationUnfiltered,
    GenerationBulk,
    CacheTtl,
    Memory,
    Swr,
    Warm,
}

/// How the `user-models` layer stores a user's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLayout {
    /// One entry per user and filter, labelled with the user's generation.
    Filtered,
    /// One entry per user (every model the user may use), labelled with the
    /// generation; the filter is applied in memory.
    Unfiltered,
    /// The source's layout: one entry per user holding the full model objects, no
    /// generation; a write deletes it.
    OriginalObjects,
}

/// `cache-ttl`: immutable entries (bot verdicts, model configs) live a day in KV and
/// are kept a day in the edge cache of every location that reads them.
pub const LONG_TTL_SECONDS: u64 = 86_400;
/// `memory`: how long an isolate keeps what it read from (or wrote to) KV.
pub const MEMORY_TTL_MS: f64 = 10_000.0;
/// `memory`: the most entries one isolate keeps.
pub const MEMORY_MAX_ENTRIES: usize = 2_000;
/// `swr`: entries older than this are served and refreshed in the background.
pub const SWR_SOFT_TTL_MS: f64 = 30_000.0;

impl Strategy {
    pub const ALL: [Strategy; 8] = [
        Strategy::Original,
        Strategy::Generation,
        Strategy::GenerationUnfiltered,
        Strategy::GenerationBulk,
        Strategy::CacheTtl,
        Strategy::Memory,
        Strategy::Swr,
        Strategy::Warm,
    ];

    /// What a deployment runs without `CACHE_STRATEGY`.
    pub const DEFAULT: Strategy = Strategy::Generation;

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Original => "original",
            Strategy::Generation => "generation",
            Strategy::GenerationUnfiltered => "generation-unfiltered",
            Strategy::GenerationBulk => "generation-bulk",
            Strategy::CacheTtl => "cache-ttl",
            Strategy::Memory => "memory",
            Strategy::Swr => "swr",
            Strategy::Warm => "warm",
        }
    }

    pub fn parse(name: &str) -> Result<Strategy, String> {
        let name = name.trim();
        Strategy::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
            format!("unknown cache strategy {name:?}; known strategies: {}", known.join(", "))
        })
    }

    /// The prefix of this strategy's KV keys (none for the default, whose keys
    /// predate strategies).
    pub fn key_prefix(self) -> &'static str {
        match self {
            Strategy::Generation => "",
            Strategy::Original => "original/",
            Strategy::GenerationUnfiltered => "generation-unfiltered/",
            Strategy::GenerationBulk => "generation-bulk/",
            Strategy::CacheTtl => "cache-ttl/",
            Strategy::Memory => "memory/",
            Strategy::Swr => "swr/",
            Strategy::Warm => "warm/",
        }
    }

    /// `key` under this strategy's prefix.
    pub fn prefixed(self, key: &str) -> String {
        format!("{}{key}", self.key_prefix())
    }

    pub fn list_layout(self) -> ListLayout {
        match self {
            Strategy::Original => ListLayout::OriginalObjects,
            Strategy::GenerationUnfiltered | Strategy::Warm => ListLayout::Unfiltered,
            _ => ListLayout::Filtered,
        }
    }

    /// Whether a list's generation and entry are read in one KV bulk read.
    pub fn bulk_read(self) -> bool {
        self == Strategy::GenerationBulk
    }

    /// Whether an in-isolate memory layer sits in front of KV.
    pub fn memory(self) -> bool {
        self == Strategy::Memory
    }

    /// Whether a list older than [`SWR_SOFT_TTL_MS`] is refreshed in the background.
    pub fn stale_while_revalidate(self) -> bool {
        self == Strategy::Swr
    }

    /// Whether a write stores the user's fresh list (not only invalidates it).
    pub fn warms_on_write(self) -> bool {
        self == Strategy::Warm
    }

    /// Whether a write invalidates with a new generation (else: deletes the entry).
    pub fn uses_generation(self) -> bool {
        self != Strategy::Original
    }

    /// Entry TTL of a layer, given the deployment's `CACHE_TTL_SECONDS`.
    pub fn ttl_seconds(self, layer: crate::config::Layer, configured: u64) -> u64 {
        use crate::config::Layer;
        match (self, layer) {
            // The source's TTLs.
            (Strategy::Original, Layer::Bot) => 86_400,
            (Strategy::Original, Layer::ModelConfig) => 14_400,
            (Strategy::Original, Layer::UserModels) => 3_600,
            (Strategy::CacheTtl, Layer::Bot | Layer::ModelConfig) => LONG_TTL_SECONDS,
            _ => configured,
        }
    }

    /// The `cacheTtl` a read of the layer's entries asks for (how long the edge
    /// location keeps what it read); `None`: KV's default (60 s).
    pub fn edge_cache_ttl(self, layer: crate::config::Layer) -> Option<u64> {
        (self == Strategy::CacheTtl && layer != crate::config::Layer::UserModels).then_some(LONG_TTL_SECONDS)
    }

    /// Whether the strategy promises that the user's next read anywhere (any
    /// isolate, any location) shows their write once the write has answered 2xx —
    /// as far as KV's own propagation allows.
    pub fn fresh_everywhere_after_write(self) -> bool {
        !matches!(self, Strategy::Original | Strategy::Memory)
    }

    /// Whether a write whose invalidation fails is refused (503) instead of
    /// answered 200 over a stale entry.
    pub fn refuses_failed_invalidation(self) -> bool {
        self != Strategy::Original
    }

    /// The correctness risk in a few words (the ranking table).
    pub fn risk(self) -> &'static str {
        match self {
            Strategy::Original => {
                "stale list for up to 1 h after a racing fill or a failed delete; ignores failed invalidation"
            }
            Strategy::Generation | Strategy::GenerationUnfiltered | Strategy::GenerationBulk => {
                "none beyond KV propagation (other locations up to 60 s); writes refused (503) when KV cannot invalidate"
            }
            Strategy::CacheTtl => "as generation; only immutable entries kept long at the edge",
            Strategy::Memory => "other isolates serve the old list up to 10 s longer than KV propagation",
            Strategy::Swr => "as generation; background refreshes cost D1 reads and KV writes",
            Strategy::Warm => "as generation; every write also costs a D1 read and a KV write",
        }
    }

    /// The consistency contract, in words (reports, `/health`, the docs).
    pub fn contract(self) -> &'static str {
        match self {
            Strategy::Original => {
                "The source's layout: one key per user with the full model objects of every model the user may use \
                 (filtered in memory), TTLs 1 h (lists), 4 h (model configs), 24 h (bot verdicts). A write deletes \
                 the user's key and ignores a failed delete. Known race: a request that read the database before \
                 the write and stores its list after the delete puts the old list back for up to 1 h; a failed \
                 delete leaves it there too; other locations see the delete only after KV's propagation (up to \
                 60 s)."
            }
            Strategy::Generation => {
                "One entry per user and filter, each labelled with the user's generation, read together with the \
                 generation key (two KV reads, one round trip). A write stores a new generation before it answers \
                 (503 if it cannot): the same user's next read is fresh wherever the new generation is visible; \
                 other locations may serve the old list until KV propagates the generation (up to 60 s)."
            }
            Strategy::GenerationUnfiltered => {
                "As generation, with one entry per user (every model the user may use) filtered in memory: fewer \
                 entries, more hits; the same contract."
            }
            Strategy::GenerationBulk => {
                "As generation, the generation and the entry read in one KV bulk read (billed as two reads, one \
                 operation against the per-invocation limit); the same contract."
            }
            Strategy::CacheTtl => {
                "As generation for lists; bot verdicts and model configs, which never change under their key \
                 (hashed User-Agent; catalogue fingerprint), live a day in KV and are read with cacheTtl of a day, \
                 so every location keeps them hot. Nothing that can change is read with a long cacheTtl."
            }
            Strategy::Memory => {
                "As generation, with an in-isolate memory of what was read from or written to KV (10 s, at most \
                 2,000 entries) in front of it: the isolate that took a write serves it at once; other isolates may \
                 serve the old list for up to 10 s more than KV's own propagation."
            }
            Strategy::Swr => {
                "As generation; a list older than 30 s is served and recomputed in the background, so popular \
                 lists never expire on a reader. A write still invalidates at once: the same contract."
            }
            Strategy::Warm => {
                "As generation-unfiltered; a write also computes the user's fresh list and stores it under the new \
                 generation after answering, so the next read hits instead of missing. The same contract."
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layer;

    #[test]
    fn names_and_default_are_the_ones_the_harness_knows() {
        assert_eq!(Strategy::ALL.map(Strategy::name), bench_seed::strategies::NAMES);
        assert_eq!(Strategy::DEFAULT.name(), bench_seed::strategies::DEFAULT);
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.name()), Ok(s));
        }
        let e = Strategy::parse("redis").unwrap_err();
        assert!(e.contains("generation-bulk") && e.contains("redis"), "{e}");
    }

    #[test]
    fn prefixes_are_distinct_and_ttls_follow_the_source_for_original() {
        let mut prefixes: Vec<&str> = Strategy::ALL.iter().map(|s| s.key_prefix()).collect();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), Strategy::ALL.len());
        assert_eq!(Strategy::Original.ttl_seconds(Layer::UserModels, 300), 3600);
        assert_eq!(Strategy::Original.ttl_seconds(Layer::ModelConfig, 300), 14_400);
        assert_eq!(Strategy::Original.ttl_seconds(Layer::Bot, 300), 86_400);
        assert_eq!(Strategy::CacheTtl.ttl_seconds(Layer::UserModels, 300), 300);
        assert_eq!(Strategy::CacheTtl.edge_cache_ttl(Layer::Bot), Some(LONG_TTL_SECONDS));
        assert_eq!(Strategy::CacheTtl.edge_cache_ttl(Layer::UserModels), None);
        assert_eq!(Strategy::Generation.ttl_seconds(Layer::Bot, 300), 300);
    }
}
