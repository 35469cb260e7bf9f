//! `harness compare`: a baseline against a candidate, or the arms of one A/B result.

use clap::Args;
use std::path::PathBuf;

use super::{bad, compare_options, finish_comparison, load_claims, read_arms, CompareArgs, Fail};

#[derive(Args, Debug)]
pub struct CompareCommand {
    /// BASE.json CAND.json, or one A/B result.
    #[arg(required = true, num_args = 1..=2)]
    pub results: Vec<PathBuf>,
    /// With BASE.json CAND.json: compare this arm (its label, e.g. cache-on) of
    /// each, either file may be an A/B result (a bench's results/<scenario>.json):
    /// the regression gate of a stored baseline.
    #[arg(long, value_name = "LABEL")]
    pub arm: Option<String>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

pub(super) fn compare(args: CompareCommand) -> Result<i32, Fail> {
    let CompareCommand { results, arm, compare } = args;
    let claims = load_claims(&compare)?;
    if arm.is_some() && results.len() != 2 {
        return Err(bad("--arm picks one arm of each of BASE.json CAND.json: give two files"));
    }
    let (a, b, interleaved) = read_arms(&results, arm.as_deref())?;
    let c = crate::compare::compare(&a, &b, interleaved, &claims, &compare_options(&compare)).map_err(bad)?;
    finish_comparison(&c, &compare)
}
