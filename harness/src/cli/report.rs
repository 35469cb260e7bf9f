//! `harness report`: the report files of results (compared when asked, or when
//! the result is an A/B).

use clap::Args;
use std::path::PathBuf;

use super::{bad, compare_options, load_claims, write_report, CompareArgs, Fail};
use crate::compare;
use crate::exit;
use crate::result::{AnyResult, ResultDoc};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Result files: runs, or one A/B result (its arms are compared).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Compare the first two single-run results (baseline, candidate).
    #[arg(long)]
    pub compare: bool,
    #[arg(long, default_value = "reports/report")]
    pub out: PathBuf,
    #[command(flatten)]
    pub compare_args: CompareArgs,
}

pub(super) fn report(args: ReportArgs) -> Result<i32, Fail> {
    let ReportArgs { results, compare, out, compare_args } = args;
    let claims = load_claims(&compare_args)?;
    let mut docs = Vec::new();
    let mut interleaved = false;
    for p in &results {
        match AnyResult::read(p).map_err(bad)? {
            AnyResult::Single(d) => docs.push(*d),
            AnyResult::Ab(ab) => {
                if results.len() > 1 {
                    return Err(bad(format!("{}: an A/B result is reported on its own", p.display())));
                }
                interleaved = true;
                docs.extend(ab.arms);
            }
        }
    }
    let comparison = if interleaved || compare {
        if docs.len() < 2 {
            return Err(bad("--compare needs two results: BASE.json CAND.json"));
        }
        Some(compare::compare(&docs[0], &docs[1], interleaved, &claims, &compare_options(&compare_args)).map_err(bad)?)
    } else {
        None
    };
    if comparison.is_some() {
        docs.truncate(2);
    }
    let sources: Vec<String> = results.iter().map(|p| p.display().to_string()).collect();
    write_report(&docs, comparison.as_ref(), &sources, &out)?;
    // A part of a run never passes for a whole one.
    if docs.iter().any(ResultDoc::is_incomplete) {
        return Ok(exit::UNREACHABLE_OR_INVALID);
    }
    let gate = comparison.as_ref().map_or(exit::PASS, |c| {
        let claims_fail = compare_args.require_claims && c.claims_fail();
        if claims_fail || !c.regressions.is_empty() {
            exit::GATE_FAILED
        } else {
            exit::PASS
        }
    });
    Ok(gate)
}
