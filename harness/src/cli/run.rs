//! `harness run`: scenarios against one target; result files, the terminal
//! summary, thresholds, an optional baseline gate and report.

use clap::Args;
use std::path::PathBuf;

use super::{
    bad, headers, load_scenario_with, options, parse_percent, print_terminal, run_code, write_report, Fail, LoadArgs,
};
use crate::compare::{self, CompareOptions};
use crate::exit;
use crate::result::{AnyResult, ResultDoc, Status};
use crate::runner::ArmSpec;
use crate::sequential;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Base URL of the target, e.g. http://127.0.0.1:8787
    #[arg(long, env = "HARNESS_TARGET")]
    pub target: String,
    /// A label stored with the result, e.g. cache-on.
    #[arg(long)]
    pub variant: Option<String>,
    /// Compare with this earlier result and fail on a regression (with --max-regression).
    #[arg(long, requires = "max_regression")]
    pub baseline: Option<PathBuf>,
    #[arg(long, value_parser = parse_percent)]
    pub max_regression: Option<f64>,
    /// Also write the HTML/PNG/Markdown report into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
}

pub(super) fn run(args: RunArgs) -> Result<i32, Fail> {
    let RunArgs { scenarios, target, variant, baseline, max_regression, report, load } = args;
    // Every input is checked before any load is sent.
    let scenarios = scenarios.iter().map(|f| load_scenario_with(f, &load.client)).collect::<Result<Vec<_>, _>>()?;
    let baseline = match &baseline {
        None => None,
        Some(p) => match AnyResult::read(p).map_err(bad)? {
            AnyResult::Single(d) => Some(*d),
            AnyResult::Ab(_) => return Err(bad(format!("{}: --baseline takes a single-run result", p.display()))),
        },
    };
    let arm = ArmSpec { label: variant, target, extra_headers: headers(&load)? };
    let opts = options(&load, vec![arm])?;
    if opts.shard.count > 1 && baseline.is_some() {
        return Err(bad(
            "--baseline compares a whole run: compare the merged result (`harness merge`, then `harness compare`)",
        ));
    }
    if load.until_decided.is_some() {
        // Growing a run recorded now against one recorded before: any drift
        // between the two (warm caches, other load, another machine) is a
        // difference more traffic eventually calls with confidence.
        return Err(bad(
            "--until-decided needs two arms measured side by side: with `run` (and --baseline) one arm is \
             measured now and the other was before, and more traffic only makes the drift between them look \
             certain; interleave them instead: `harness ab SCENARIO --a BASE_URL --b URL --until-decided MAX`",
        ));
    }
    let mut code = exit::PASS;
    let copts = CompareOptions { max_regression, ..CompareOptions::default() };
    for sc in &scenarios {
        let staged =
            sequential::run_stages(sc, &opts, load.until_decided, copts.alpha, &sequential::decided, |docs, alpha| {
                baseline
                    .as_ref()
                    .map(|base| {
                        compare::compare(base, &docs[0], false, &[], &CompareOptions { alpha, ..copts.clone() })
                    })
                    .transpose()
            })?;
        let doc = &staged.arms[0];
        print_terminal(std::slice::from_ref(doc), None)?;
        let logs: Vec<String> = staged.hlogs.iter().map(|p| p.display().to_string()).collect();
        println!("result: {} (interval log {})", staged.json.display(), logs.join(", "));
        code = code.max(run_code(doc));
        if doc.metadata.shard.is_some() {
            println!("{}", super::SHARD_NOTE);
        }
        let comparison = staged.comparison;
        if let Some(c) = &comparison {
            print_terminal(&[], Some(c))?;
            if !c.regressions.is_empty() {
                code = code.max(exit::GATE_FAILED);
            }
        }
        if let Some(dir) = &report {
            let dir = if scenarios.len() > 1 { dir.join(&sc.name) } else { dir.clone() };
            let docs: Vec<ResultDoc> = baseline.iter().cloned().chain(std::iter::once(doc.clone())).collect();
            let docs = if comparison.is_some() { docs } else { vec![doc.clone()] };
            write_report(&docs, comparison.as_ref(), &[staged.json.display().to_string()], &dir)?;
        }
        if doc.run.status == Status::Interrupted {
            break;
        }
    }
    Ok(code)
}
