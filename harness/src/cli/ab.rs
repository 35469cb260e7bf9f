//! `harness ab`: one schedule whose iterations alternate between two arms, then
//! the comparison of B against A and its gates.

use clap::Args;
use std::path::PathBuf;

use super::{
    bad, compare_options, finish_comparison, headers, load_claims, load_scenario_with, options, parse_header,
    print_terminal, run_code, write_report, CompareArgs, Fail, LoadArgs,
};
use crate::compare;
use crate::exit;
use crate::runner::ArmSpec;
use crate::sequential;

#[derive(Args, Debug)]
pub struct AbArgs {
    pub scenario: PathBuf,
    /// Baseline target (two-target form).
    #[arg(long, requires = "b")]
    pub a: Option<String>,
    /// Candidate target (two-target form).
    #[arg(long, requires = "a")]
    pub b: Option<String>,
    /// A target whose arms differ by x-bench-cache (needs --bench-secret). Give it
    /// twice for two instances of one worker: each arm then goes to both, balanced
    /// within every two pairs, so an instance difference cannot read as an effect.
    #[arg(long, conflicts_with_all = ["a", "b"], num_args = 1, action = clap::ArgAction::Append)]
    pub target: Vec<String>,
    /// x-bench-cache for arm A in the one-target form.
    #[arg(long, default_value = "off")]
    pub a_cache: String,
    /// x-bench-cache for arm B in the one-target form.
    #[arg(long, default_value = "on")]
    pub b_cache: String,
    /// A header for arm A's requests only, "name: value" (repeatable), after
    /// --header's: e.g. a fault or a delay injected into one arm.
    #[arg(long = "a-header", value_name = "HEADER")]
    pub a_headers: Vec<String>,
    /// A header for arm B's requests only (repeatable).
    #[arg(long = "b-header", value_name = "HEADER")]
    pub b_headers: Vec<String>,
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
    let AbArgs {
        scenario,
        a,
        b,
        target,
        a_cache,
        b_cache,
        a_headers,
        b_headers,
        a_label,
        b_label,
        report,
        load,
        compare,
    } = args;
    let sc = load_scenario_with(&scenario, &load.client)?;
    let claims = load_claims(&compare)?;
    let extra = headers(&load)?;
    let with = |own: &[String]| -> Result<Vec<(String, String)>, Fail> {
        let own: Vec<(String, String)> = own.iter().map(|h| parse_header(h).map_err(bad)).collect::<Result<_, _>>()?;
        Ok(extra.iter().cloned().chain(own).collect())
    };
    let (extra_a, extra_b) = (with(&a_headers)?, with(&b_headers)?);
    let usage = "give --a URL --b URL, or --target URL (once, or twice for two instances) with \
                 --a-cache/--b-cache and --bench-secret";
    let arms = match (a, b, target.as_slice()) {
        (Some(a), Some(b), []) => vec![
            ArmSpec { label: Some(a_label), target: a, extra_headers: extra_a },
            ArmSpec { label: Some(b_label), target: b, extra_headers: extra_b },
        ],
        (None, None, [first, rest @ ..]) if rest.len() <= 1 => {
            let secret =
                load.client.bench_secret.clone().ok_or_else(|| {
                    bad("the --target form needs --bench-secret: x-bench-cache is ignored without it")
                })?;
            let second = rest.first().unwrap_or(first);
            let target = load.client.target_kind.target();
            vec![
                ArmSpec::with_cache(&a_label, first, extra_a, target.as_ref(), &secret, &a_cache).map_err(bad)?,
                ArmSpec::with_cache(&b_label, second, extra_b, target.as_ref(), &secret, &b_cache).map_err(bad)?,
            ]
        }
        _ => return Err(bad(usage)),
    };
    let mut run_opts = options(&load, arms)?;
    run_opts.cross_servers = target.len() == 2;
    let copts = compare_options(&compare);
    let staged = sequential::run_stages(
        &sc,
        &run_opts,
        load.until_decided,
        copts.alpha,
        &sequential::decided,
        |docs, alpha| {
            compare::compare(&docs[0], &docs[1], true, &claims, &compare::CompareOptions { alpha, ..copts.clone() })
                .map(Some)
        },
    )?;
    let docs = &staged.arms;
    print_terminal(docs, None)?;
    let logs: Vec<String> = staged.hlogs.iter().map(|p| p.display().to_string()).collect();
    println!("result: {} (interval log {})", staged.json.display(), logs.join(", "));
    let run = docs.iter().map(run_code).max().unwrap_or(exit::PASS);
    let c = staged.comparison.expect("an A/B is always compared");
    let mut gate = finish_comparison(&c, &compare)?;
    if run_opts.shard.count > 1 {
        println!("{}", super::SHARD_NOTE);
        gate = exit::PASS;
    }
    if let Some(dir) = &report {
        write_report(docs, Some(&c), &[staged.json.display().to_string()], dir)?;
    }
    Ok(run.max(gate))
}
