//! `harness ab`: one schedule whose iterations alternate between two arms, then
//! the comparison of B against A and its gates.

use clap::Args;
use std::path::PathBuf;

use super::{
    bad, compare_options, finish_comparison, headers, load_claims, load_scenario, options, print_terminal, run_code,
    write_report, CompareArgs, Fail, LoadArgs,
};
use crate::compare;
use crate::exit;
use crate::result::ResultDoc;
use crate::runner::{self, ArmSpec};

#[derive(Args, Debug)]
pub struct AbArgs {
    pub scenario: PathBuf,
    /// Baseline target (two-target form).
    #[arg(long, requires = "b")]
    pub a: Option<String>,
    /// Candidate target (two-target form).
    #[arg(long, requires = "a")]
    pub b: Option<String>,
    /// One target whose arms differ by x-bench-cache (needs --bench-secret).
    #[arg(long, conflicts_with_all = ["a", "b"])]
    pub target: Option<String>,
    /// x-bench-cache for arm A in the one-target form.
    #[arg(long, default_value = "off")]
    pub a_cache: String,
    /// x-bench-cache for arm B in the one-target form.
    #[arg(long, default_value = "on")]
    pub b_cache: String,
    #[arg(long, default_value = "a")]
    pub a_label: String,
    #[arg(long, default_value = "b")]
    pub b_label: String,
    /// Also write the HTML/PNG/Markdown report into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub compare: CompareArgs,
}

pub(super) fn ab(args: AbArgs) -> Result<i32, Fail> {
    let AbArgs { scenario, a, b, target, a_cache, b_cache, a_label, b_label, report, load, compare } = args;
    let sc = load_scenario(&scenario)?;
    let claims = load_claims(&compare)?;
    let extra = headers(&load)?;
    let arms = match (a, b, target) {
        (Some(a), Some(b), None) => vec![
            ArmSpec { label: Some(a_label), target: a, extra_headers: extra.clone() },
            ArmSpec { label: Some(b_label), target: b, extra_headers: extra },
        ],
        (None, None, Some(t)) => {
            let secret =
                load.client.bench_secret.clone().ok_or_else(|| {
                    bad("the one-target form needs --bench-secret: x-bench-cache is ignored without it")
                })?;
            vec![
                ArmSpec::with_bench_cache(&a_label, &t, extra.clone(), &secret, &a_cache),
                ArmSpec::with_bench_cache(&b_label, &t, extra, &secret, &b_cache),
            ]
        }
        _ => return Err(bad("give --a URL --b URL, or --target URL (with --a-cache/--b-cache and --bench-secret)")),
    };
    let outcome = runner::run(&sc, &options(&load, arms))?;
    let docs: Vec<ResultDoc> = outcome.arms.iter().map(|a| a.doc.clone()).collect();
    print_terminal(&docs, None)?;
    println!("result: {} (interval log {})", outcome.files.json.display(), outcome.files.hlog.display());
    let run = outcome.arms.iter().map(|a| run_code(&a.doc)).max().unwrap_or(exit::PASS);
    let c = compare::compare(&outcome.arms[0].doc, &outcome.arms[1].doc, true, &claims, &compare_options(&compare))
        .map_err(bad)?;
    let gate = finish_comparison(&c, &compare)?;
    if let Some(dir) = &report {
        write_report(&docs, Some(&c), &[outcome.files.json.display().to_string()], dir)?;
    }
    Ok(run.max(gate))
}
