//! `--until-decided MAX` (run, ab, bench): measure in stages of the scenario's
//! length until every claim has a verdict other than inconclusive (without
//! claims: until the headline p50 change is no longer undetermined), or MAX of
//! measured traffic is spent.
//!
//! Looking at a fixed-sample CI after every stage and stopping when it looks
//! decided would make its 95 % a fiction. This is a group-sequential design with
//! K = ⌈MAX / stage⌉ planned looks and α spent evenly over them (Bonferroni):
//! every look's CIs have confidence 1 − α/K, so the chance that any look's CI
//! misses the truth is at most α however early the run stops. It is
//! conservative (an O'Brien–Fleming spending would spend less early), but valid
//! for the block bootstrap's intervals without a normal approximation.

use std::path::PathBuf;
use std::time::Duration;

use crate::claims::Verdict;
use crate::compare::{Comparison, Direction};
use crate::merge::merge_arms;
use crate::result::{AbDoc, ResultDoc, RunFiles, Status};
use crate::runner::{self, RunError, RunOptions};
use crate::scenario::Scenario;
use crate::stats::Metric;

/// How many looks a budget of `max` allows for stages of `stage`.
pub fn planned_looks(stage: Duration, max: Option<Duration>) -> u32 {
    match max {
        None => 1,
        Some(max) if stage.is_zero() => u32::from(!max.is_zero()).max(1),
        // Whole stages only: the run never measures more than MAX.
        Some(max) => (max.as_secs_f64() / stage.as_secs_f64()).floor().clamp(1.0, 1000.0) as u32,
    }
}

/// Every claim has a verdict other than inconclusive; without measured claims,
/// the headline p50 change is not undetermined.
pub fn decided(c: &Comparison) -> bool {
    let measured: Vec<_> = c.claims.iter().filter(|v| v.verdict != Verdict::NotMeasured).collect();
    if !measured.is_empty() {
        return measured.iter().all(|v| v.verdict != Verdict::Inconclusive);
    }
    c.series
        .iter()
        .find(|s| s.series.is_all() && !s.series.is_server_side())
        .and_then(|s| s.metric(Metric::P50))
        .is_some_and(|m| m.direction != Direction::Undetermined)
}

/// What a staged run measured: each arm's results merged over its stages.
pub struct Staged {
    pub arms: Vec<ResultDoc>,
    pub comparison: Option<Comparison>,
    pub looks: u32,
    pub planned_looks: u32,
    /// The result file holding every stage (the only stage's, or the merged one).
    pub json: PathBuf,
    /// The interval logs, one per stage.
    pub hlogs: Vec<PathBuf>,
}

/// Runs `scenario` once (no `max`) or in stages; after each stage `judge` gets
/// the merged results and the α of one look, and the run stops once its
/// comparison is decided by `is_decided` ([`decided`] for claims and the headline).
pub fn run_stages(
    scenario: &Scenario,
    opts: &RunOptions,
    max: Option<Duration>,
    alpha: f64,
    is_decided: &dyn Fn(&Comparison) -> bool,
    mut judge: impl FnMut(&[ResultDoc], f64) -> Result<Option<Comparison>, String>,
) -> Result<Staged, RunError> {
    let stage =
        opts.max_duration.map_or(scenario.load.executor.duration(), |m| m.min(scenario.load.executor.duration()));
    let planned = planned_looks(stage, max);
    let look_alpha = alpha / f64::from(planned);
    let mut merged: Vec<ResultDoc> = Vec::new();
    let mut hlogs = Vec::new();
    let mut last: Option<RunFiles> = None;
    let mut comparison = None;
    let mut looks = 0;
    while looks < planned {
        looks += 1;
        let mut stage_opts = opts.clone();
        if planned > 1 {
            stage_opts.stem = opts.stem.as_ref().map(|s| format!("{s}-look{looks}"));
        }
        let outcome = runner::run(scenario, &stage_opts)?;
        let stage_docs: Vec<ResultDoc> = outcome.arms.iter().map(|a| a.doc.clone()).collect();
        merged =
            if merged.is_empty() { stage_docs } else { merge_arms(&merged, &stage_docs).map_err(RunError::Setup)? };
        hlogs.push(outcome.files.hlog.clone());
        last = Some(outcome.files);
        comparison = judge(&merged, look_alpha).map_err(RunError::Setup)?;
        let stop = merged.iter().any(|d| d.run.status != Status::Complete)
            || opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        if stop || comparison.as_ref().is_none_or(is_decided) {
            break;
        }
    }
    let files = last.expect("at least one look ran");
    let json = if looks > 1 { write_merged(&files, &merged)? } else { files.json };
    if let Some(c) = comparison.as_mut().filter(|_| max.is_some()) {
        let done = is_decided(c);
        c.notes.push(note(done, looks, planned, &merged, alpha));
    }
    Ok(Staged { arms: merged, comparison, looks, planned_looks: planned, json, hlogs })
}

fn write_merged(files: &RunFiles, merged: &[ResultDoc]) -> Result<PathBuf, RunError> {
    let stem = files.json.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let path = files.json.with_file_name(format!("{stem}-merged.json"));
    let written = match merged {
        [one] => one.write(&path),
        many => AbDoc::new(many.to_vec()).write(&path),
    };
    written.map_err(|e| RunError::Setup(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn note(done: bool, looks: u32, planned: u32, merged: &[ResultDoc], alpha: f64) -> String {
    let traffic = merged.first().map_or(0.0, |d| d.run.measured_s);
    let outcome = if done { "decided" } else { "still undecided (the budget is spent)" };
    format!(
        "--until-decided: {outcome} after {looks} of at most {planned} looks, {traffic:.0} s of measured traffic; \
         every look's CIs have confidence {:.2} % (α = {alpha} spent evenly over the {planned} looks), so the \
         verdicts hold whenever the run stopped",
        (1.0 - alpha / f64::from(planned)) * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_split_the_budget_into_stages() {
        let s = Duration::from_secs(30);
        assert_eq!(planned_looks(s, None), 1);
        assert_eq!(planned_looks(s, Some(Duration::from_secs(120))), 4);
        assert_eq!(planned_looks(s, Some(Duration::from_secs(100))), 3);
        assert_eq!(planned_looks(s, Some(Duration::from_secs(10))), 1);
    }
}
