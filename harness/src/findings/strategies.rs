//! What the bench found of cache strategies and latency profiles: the strategies
//! as the worker describes them, how stale each got, and the profiles and figures
//! a modelled run used.

use serde::{Deserialize, Serialize};

use crate::result::Measurement;

/// How long a staleness probe waits for a fresh read: KV's documented
/// propagation between locations (up to 60 s) with a margin.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(75);

/// A strategy as the worker describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyInfo {
    pub name: String,
    /// Its consistency contract, in the worker's words.
    pub contract: String,
    /// Its correctness risk, in a few words.
    pub risk: String,
}

/// What the reads at one location saw after the writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Probes whose first read after the write did not show it.
    pub first_read_stale: u32,
    /// Reads that did not show the write, over all probes (polling backs off from
    /// 25 ms to 1 s: a count of what a client polling so would have seen).
    pub stale_reads: u32,
    /// Per probe that saw a fresh read: ms from the write's answer to that read's.
    pub fresh_after_ms: Vec<f64>,
    /// Probes with no fresh read within [`MAX_WAIT`].
    pub never_fresh: u32,
}

impl Side {
    /// The longest time to a fresh read, `None` when none was seen.
    pub fn max_ms(&self) -> Option<f64> {
        self.fresh_after_ms.iter().copied().reduce(f64::max)
    }

    pub fn add(&mut self, other: Side) {
        self.first_read_stale += other.first_read_stale;
        self.stale_reads += other.stale_reads;
        self.fresh_after_ms.extend(other.fresh_after_ms);
        self.never_fresh += other.never_fresh;
    }
}

/// One strategy's staleness under one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staleness {
    pub strategy: String,
    pub measurement: Measurement,
    /// Probes that wrote successfully (the others are in `errors`).
    pub probes: u32,
    /// At the location that took the write (read-your-writes).
    pub same: Side,
    /// At another location.
    pub other: Side,
    pub errors: Vec<String>,
}

/// One figure of the data file, for the sources table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureSource {
    pub name: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub source: String,
    pub url: String,
    pub date: String,
    pub estimate: bool,
    pub note: String,
}

/// A profile as the report describes it: its operations and the figures they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub name: String,
    pub description: String,
    pub edge_hit_share: f64,
    /// (operation, figure name).
    pub operations: Vec<(String, String)>,
}
