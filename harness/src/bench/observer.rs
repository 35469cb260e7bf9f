//! What the bench tells whoever runs it (criterion's `Report` hooks are the
//! model): a line of progress, an A/B finished, the bench finished. The bench
//! itself renders nothing; `cli/bench.rs` wires the exporters and the terminal.

use std::path::Path;

use crate::compare::Comparison;
use crate::findings::BenchSummary;
use crate::result::ResultDoc;

/// One finished A/B, for its own report.
pub struct FinishedJob<'a> {
    pub name: &'a str,
    /// Where its report goes: `<bench dir>/<slug>/`.
    pub slug: &'a str,
    pub docs: [&'a ResultDoc; 2],
    pub comparison: &'a Comparison,
    /// Its result file, relative to the bench directory.
    pub source: &'a str,
    /// The bench directory.
    pub dir: &'a Path,
}

pub trait Observer {
    /// A line of progress.
    fn say(&self, line: &str);

    /// An A/B finished. Returns its report's page relative to the bench
    /// directory, if one was written.
    fn job_finished(&self, job: &FinishedJob<'_>) -> Option<String>;

    /// The bench finished, or could not start (its summary then says why):
    /// write its report into `dir`.
    fn bench_finished(&self, summary: &BenchSummary, dir: &Path) -> Result<(), String>;
}
