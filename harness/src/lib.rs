//! The harness: scenario → schedule → client → recorder → result file (and, in
//! later commands, compare → report). One module, one job.

pub mod annotations;
pub mod answers;
pub mod bench;
pub mod cancel;
pub mod change;
pub mod claims;
pub mod cli;
pub mod client;
pub mod compare;
pub mod cpu;
pub mod findings;
pub mod gate;
pub mod merge;
pub mod metrics;
pub mod nullable;
pub mod outdir;
pub mod overhead;
pub mod progress;
pub mod recipe;
pub mod recorder;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod sequential;
pub mod series;
pub mod shard;
pub mod stats;
pub mod target;
pub mod thresholds;
pub mod timer;
pub mod user_file;
pub mod users;

/// Exit codes (ARCHITECTURE.md, "Exit codes").
pub mod exit {
    pub const PASS: i32 = 0;
    pub const GATE_FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const UNREACHABLE_OR_INVALID: i32 = 3;
    /// `harness gate`: not enough evidence within the budget to say either way.
    pub const UNDETERMINED: i32 = 4;
}
