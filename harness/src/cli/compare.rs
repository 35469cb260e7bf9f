//! `harness compare`: a baseline against a candidate, or the arms of one A/B result.

use clap::Args;
use std::path::PathBuf;

use super::{bad, compare_options, finish_comparison, load_claims, read_arms, CompareArgs, Fail};

#[derive(Args, Debug)]
pub struct CompareCommand {
    /// BASE.json CAND.json, or one A/B result.
    #[arg(required = true, num_args = 1..=2)]
    pub results: Vec<PathBuf>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

pub(super) fn compare(args: CompareCommand) -> Result<i32, Fail> {
    let CompareCommand { results, compare } = args;
    let claims = load_claims(&compare)?;
    let (a, b, interleaved) = read_arms(&results)?;
    let c = crate::compare::compare(&a, &b, interleaved, &claims, &compare_options(&compare)).map_err(bad)?;
    finish_comparison(&c, &compare)
}
