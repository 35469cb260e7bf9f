//! Pooling repeated A/A controls (`--controls N`): one control run is one draw
//! of the noise, and a control that calls a difference by chance (5 % of
//! them) takes its scenario's verdicts away. Repeated controls of one scenario
//! and measurement are pooled into one: their runs' time blocks laid end to end
//! (`merge::merge_arms`, as the stages of `--until-decided`) and compared
//! again, so the pooled control's interval rests on all their traffic. The
//! pooled control is the one the scenario's verdicts are held to
//! (`findings::hold_to_control` takes the control that pooled most runs).

use std::path::Path;

use super::job::{summarize, JobMeta};
use super::{AbSummary, BenchOptions, Observer};
use crate::compare::{self, CompareOptions};
use crate::result::{AbDoc, AnyResult, ResultDoc};

/// Adds, for every scenario and measurement with more than one valid control,
/// the pooled control; says what could not be pooled in `notes`.
pub(super) fn pool_controls(
    runs: &mut Vec<AbSummary>,
    opts: &BenchOptions,
    dir: &Path,
    observer: &dyn Observer,
    notes: &mut Vec<String>,
) {
    let mut groups: Vec<Vec<&AbSummary>> = Vec::new();
    for r in runs.iter().filter(|r| r.control && r.status.is_valid()) {
        match groups.iter_mut().find(|g| g[0].scenario == r.scenario && g[0].measurement == r.measurement) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let mut pooled = Vec::new();
    for group in groups.into_iter().filter(|g| g.len() > 1) {
        match pool(&group, &opts.compare, dir, observer) {
            Ok(summary) => pooled.push(summary),
            Err(e) => notes.push(format!("the A/A controls of {} were not pooled: {e}", group[0].scenario)),
        }
    }
    runs.extend(pooled);
}

/// One pooled control of `group` (same scenario and measurement).
fn pool(
    group: &[&AbSummary],
    copts: &CompareOptions,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<AbSummary, String> {
    let mut merged: Vec<ResultDoc> = Vec::new();
    for run in group {
        let arms = match AnyResult::read(&dir.join(&run.result))? {
            AnyResult::Ab(ab) => ab.arms,
            AnyResult::Single(_) => return Err(format!("{} is not an A/B result", run.result)),
        };
        merged = if merged.is_empty() { arms } else { crate::merge::merge_arms(&merged, &arms)? };
    }
    let comparison = compare::compare(&merged[0], &merged[1], true, &[], copts)?;
    let first = group[0];
    let name = format!("{} (pooled, {} runs)", first.name, group.len());
    let file = dir.join("results").join(format!("{}.json", super::job::slug(&name)));
    AbDoc::new(merged.clone()).write(&file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let meta = JobMeta {
        name,
        scenario: first.scenario.clone(),
        layer: None,
        control: true,
        cold_start: false,
        measurement: first.measurement.clone(),
        strategy: first.strategy.clone(),
    };
    let source = file.strip_prefix(dir).unwrap_or(&file).display().to_string();
    let mut summary = summarize(&meta, [&merged[0], &merged[1]], &comparison, dir, source, observer);
    summary.pooled = group.len() as u32;
    Ok(summary)
}
