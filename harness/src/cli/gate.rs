//! `harness gate`: base against head, three outcomes (see `crate::gate`).

use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::{bad, load_scenario_with, parse_percent, ClientFlags, Fail};
use crate::bench::BenchError;
use crate::exit;
use crate::gate::{self, Builds, GateOptions, Primary};
use crate::scenario::duration::parse_duration;

#[derive(Args, Debug)]
pub struct GateArgs {
    /// Scenario files, each its own A/B [default: scenarios/*.toml beside the recipe].
    pub scenarios: Vec<PathBuf>,
    /// How to build and start the worker (its `[gate]` table: the arm that is the
    /// worker as deployed, the build commands, dependencies shared between trees).
    /// Read from the head's tree and used for both builds.
    #[arg(long, value_name = "FILE", env = "HARNESS_GATE_RECIPE", conflicts_with_all = ["base_url", "head_url"])]
    pub recipe: Option<PathBuf>,
    /// The base: a git ref of the recipe's repository (e.g. origin/main, or the
    /// merge base of a pull request), checked out into a worktree kept under
    /// .git/harness-gate/ so its build cache stays warm.
    #[arg(long, value_name = "REF", env = "HARNESS_GATE_BASE", requires = "recipe")]
    pub base: Option<String>,
    /// The head: a git ref [default: the working tree as it is, uncommitted changes included].
    #[arg(long, value_name = "REF", env = "HARNESS_GATE_HEAD", requires = "recipe")]
    pub head: Option<String>,
    /// A deployed base (give it twice for two deployments, balanced as local instances are).
    #[arg(long, value_name = "URL", requires = "head_url")]
    pub base_url: Vec<String>,
    /// A deployed head (once or twice, as --base-url).
    #[arg(long, value_name = "URL", requires = "base_url")]
    pub head_url: Vec<String>,
    /// What decides, per scenario: SERIES:METRIC (repeatable), e.g. "*:p50" (all
    /// requests' median), "tag:auth:p99". Everything else is shown, never gated.
    #[arg(long = "primary", value_name = "SERIES:METRIC", default_value = "*:p50", value_parser = Primary::parse)]
    pub primaries: Vec<Primary>,
    /// Head may be this much slower than base on a primary before it is a regression.
    #[arg(long, default_value = "5%", value_parser = parse_percent)]
    pub tolerance: f64,
    /// The confidence of the gate as a whole: of a regression call, and of a pass.
    #[arg(long, default_value = "95%", value_parser = parse_percent)]
    pub confidence: f64,
    /// Keep measuring each scenario, in stages of its length, until every primary
    /// is decided, spending at most this much measured traffic per scenario (e.g.
    /// 4m); the CIs are widened for the looks so the outcome stays valid.
    #[arg(long, value_name = "MAX", value_parser = parse_duration)]
    pub until_decided: Option<Duration>,
    /// Measure at most this long per scenario stage (default: the scenario's duration).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm up at most this long per stage (default: the scenario's warm-up).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Iterations per second (an arrival-rate scenario's rate; a ramp's peak),
    /// instead of the scenario's. Four local instances share this machine: a rate
    /// that overloads them makes the gate undetermined, not wrong.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Results, logs, gate.json and summary.md go here.
    #[arg(long, default_value = "reports/gate")]
    pub out: PathBuf,
    /// Also append the Markdown summary to this file (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Bootstrap resamples (at least enough for the CIs' confidence).
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Seed of the bootstrap, for reproducible intervals.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    #[command(flatten)]
    pub client: ClientFlags,
}

pub(super) fn gate(args: GateArgs) -> Result<i32, Fail> {
    let builds = match (&args.recipe, &args.base, args.base_url.len(), args.head_url.len()) {
        (Some(recipe), Some(base), 0, 0) => {
            Builds::Refs { recipe: recipe.clone(), base: base.clone(), head: args.head.clone() }
        }
        (Some(_), None, _, _) => return Err(bad("--recipe needs --base REF: the build head is compared with")),
        (None, _, 1..=2, 1..=2) => Builds::Urls { base: args.base_url.clone(), head: args.head_url.clone() },
        (None, _, 0, 0) => {
            return Err(bad("give --recipe FILE --base REF (two builds made here), or --base-url URL --head-url URL"))
        }
        _ => return Err(bad("--base-url and --head-url: once or twice each")),
    };
    let scenarios = scenario_files(&args)?
        .iter()
        .map(|f| {
            let mut sc = load_scenario_with(f, &args.client)?;
            if let Some(d) = args.duration {
                sc.load.executor.shorten(d);
            }
            if let Some(w) = args.warmup {
                sc.load.warmup = sc.load.warmup.min(w);
            }
            if let Some(r) = args.rate {
                sc.load.executor.set_rate(r).map_err(|e| bad(format!("--rate for {}: {e}", f.display())))?;
            }
            Ok(sc)
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    if !(0.5..1.0).contains(&args.confidence) {
        return Err(bad(format!("--confidence {}: give one from 50 % to below 100 %", args.confidence * 100.0)));
    }
    let urls: Vec<&str> = args.base_url.iter().chain(&args.head_url).map(String::as_str).collect();
    let opts = GateOptions {
        builds,
        scenarios,
        primaries: args.primaries.clone(),
        tolerance: args.tolerance,
        alpha: 1.0 - args.confidence,
        until_decided: args.until_decided,
        out: args.out.clone(),
        compare: crate::compare::CompareOptions { resamples: args.resamples, seed: args.seed, ..Default::default() },
        bench_secret: args.client.bench_secret.clone(),
        users_secret: args.client.users_secret.clone(),
        http_client: args.client.http_client,
        tls: args.client.checked_tls()?,
        // Local instances need this machine's cores: one sending thread unless asked.
        threads: if urls.is_empty() { args.client.threads.unwrap_or(1) } else { args.client.threads_for(&urls) },
        progress: !args.client.quiet,
    };
    let cancel = crate::cancel::flag();
    let setup = crate::target::SetupClient::new(&opts.tls).map_err(bad)?;
    let env = crate::bench::Env { cancel: &cancel, setup: &setup, observer: &Lines };
    let report = gate::run(&opts, &env).map_err(|e| match e {
        BenchError::Setup(m) => bad(m),
        e @ (BenchError::Server(_) | BenchError::Interrupted) => Fail(exit::UNREACHABLE_OR_INVALID, e.to_string()),
    })?;
    let markdown = gate::render::markdown(&report);
    let md_path = args.out.join("summary.md");
    std::fs::write(&md_path, &markdown).map_err(|e| bad(format!("cannot write {}: {e}", md_path.display())))?;
    if let Some(path) = &args.summary {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| bad(format!("cannot append to {}: {e}", path.display())))?;
        f.write_all(markdown.as_bytes()).map_err(|e| bad(format!("cannot append to {}: {e}", path.display())))?;
    }
    print!("{}", gate::render::terminal(&report));
    println!("report: {} ({})", args.out.join("gate.json").display(), md_path.display());
    Ok(report.outcome.exit_code())
}

/// The scenarios given, else `scenarios/*.toml` beside the recipe.
fn scenario_files(args: &GateArgs) -> Result<Vec<PathBuf>, Fail> {
    if !args.scenarios.is_empty() {
        return Ok(args.scenarios.clone());
    }
    match args.recipe.as_deref().and_then(std::path::Path::parent) {
        Some(dir) => super::bench::recipe_scenarios(dir),
        None => Err(bad("give the scenario files to gate on")),
    }
}

/// Progress lines on the terminal.
struct Lines;

impl crate::bench::Observer for Lines {
    fn say(&self, line: &str) {
        println!("{line}");
    }

    fn job_finished(&self, _: &crate::bench::FinishedJob<'_>) -> Option<String> {
        None
    }

    fn bench_finished(&self, _: &crate::bench::BenchSummary, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }
}
