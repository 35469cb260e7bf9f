//! `harness compare`: a baseline against a candidate, or the arms of one A/B result.

use clap::Args;
use std::path::PathBuf;

use super::{arm_of, bad, compare_options, finish_comparison, load_claims, read_arms, CompareArgs, Fail};

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
    /// With one result of more than two arms (a head-to-head, an overhead's
    /// three arms): the two to compare, base first, as an interleaved A/B.
    #[arg(long, value_name = "BASE,CAND", value_delimiter = ',', conflicts_with = "arm")]
    pub arms: Vec<String>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

pub(super) fn compare(args: CompareCommand) -> Result<i32, Fail> {
    let CompareCommand { results, arm, arms, compare } = args;
    let claims = load_claims(&compare)?;
    if arm.is_some() && results.len() != 2 {
        return Err(bad("--arm picks one arm of each of BASE.json CAND.json: give two files"));
    }
    let (a, b, interleaved) = match (arms.as_slice(), results.as_slice()) {
        ([base, cand], [one]) => (arm_of(one, base)?, arm_of(one, cand)?, true),
        ([_, _], _) => return Err(bad("--arms picks two arms of one result file: give one file")),
        ([_, ..], _) => return Err(bad(format!("--arms takes two labels, BASE,CAND; got {}", arms.join(",")))),
        _ => read_arms(&results, arm.as_deref())?,
    };
    let c = crate::compare::compare(&a, &b, interleaved, &claims, &compare_options(&compare)).map_err(bad)?;
    finish_comparison(&c, &compare)
}
