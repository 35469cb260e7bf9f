//! `harness`: the command-line edge. Errors become one line and an exit code:
//! 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable or run invalid.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use harness::claims::{self, Claim};
use harness::client::ClientKind;
use harness::compare::{self, CompareOptions, Comparison};
use harness::exit;
use harness::result::{AnyResult, ResultDoc, Status};
use harness::runner::{self, ArmSpec, RunError, RunOptions};
use harness::scenario::{self, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Cache benchmark load generator: scenario -> schedule -> client -> recorder -> result -> compare -> report",
    arg_required_else_help = true,
    long_about = "Replays scenario files (scenarios/*.toml) against a target worker and says, with \
statistics and an exit code, whether a cache really makes it faster. \
Exit codes: 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable or run invalid."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Directory for result files (<scenario>-<label>-<time>.json and .hlog).
    #[arg(long, env = "HARNESS_OUT", default_value = "reports/runs")]
    out: PathBuf,
    /// The target's BENCH_SECRET: derives the seeded users' credentials.
    #[arg(long, env = "BENCH_SECRET", hide_env_values = true)]
    bench_secret: Option<String>,
    /// Extra header for every request, "name: value" (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// No live progress line.
    #[arg(long, short)]
    quiet: bool,
    /// HTTP implementation: auto (hyper for http://, reqwest for https://), hyper, reqwest.
    #[arg(long, value_enum, default_value = "auto", env = "HARNESS_HTTP_CLIENT")]
    http_client: ClientKind,
}

#[derive(Args, Debug, Clone)]
struct CompareArgs {
    /// Claims to judge (e.g. scenarios/claims.toml).
    #[arg(long)]
    claims: Option<PathBuf>,
    /// Exit 1 unless every claim is confirmed or exceeded.
    #[arg(long)]
    require_claims: bool,
    /// Exit 1 when a series is slower than this (e.g. 10%) beyond the noise band.
    #[arg(long, value_parser = parse_percent)]
    max_regression: Option<f64>,
    /// Changes inside ± this count as no difference.
    #[arg(long, value_parser = parse_percent, default_value = "2%")]
    noise: f64,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Seed of the bootstrap, for reproducible intervals.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios against a target, write result files, print a summary, enforce thresholds.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Base URL of the target, e.g. http://127.0.0.1:8787
        #[arg(long, env = "HARNESS_TARGET")]
        target: String,
        /// A label stored with the result, e.g. cache-on.
        #[arg(long)]
        variant: Option<String>,
        /// Compare with this earlier result and fail on a regression (with --max-regression).
        #[arg(long, requires = "max_regression")]
        baseline: Option<PathBuf>,
        #[arg(long, value_parser = parse_percent)]
        max_regression: Option<f64>,
        /// Also write the HTML/PNG/Markdown report into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// One schedule, iterations alternating between A and B in pairs of random order;
    /// then the comparison of B against A.
    Ab {
        scenario: PathBuf,
        /// Baseline target (two-target form).
        #[arg(long, requires = "b")]
        a: Option<String>,
        /// Candidate target (two-target form).
        #[arg(long, requires = "a")]
        b: Option<String>,
        /// One target whose arms differ by x-bench-cache (needs --bench-secret).
        #[arg(long, conflicts_with_all = ["a", "b"])]
        target: Option<String>,
        /// x-bench-cache for arm A in the one-target form.
        #[arg(long, default_value = "off")]
        a_cache: String,
        /// x-bench-cache for arm B in the one-target form.
        #[arg(long, default_value = "on")]
        b_cache: String,
        #[arg(long, default_value = "a")]
        a_label: String,
        #[arg(long, default_value = "b")]
        b_label: String,
        /// Also write the HTML/PNG/Markdown report into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Compare a baseline and a candidate result (or the two arms of one `ab` result).
    Compare {
        /// BASE.json CAND.json, or one A/B result.
        #[arg(required = true, num_args = 1..=2)]
        results: Vec<PathBuf>,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Write index.html (self-contained), one PNG per chart, summary.md and junit.xml.
    Report {
        /// Result files: runs, or one A/B result (its arms are compared).
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Compare the first two single-run results (baseline, candidate).
        #[arg(long)]
        compare: bool,
        #[arg(long, default_value = "reports/report")]
        out: PathBuf,
        #[command(flatten)]
        compare_args: CompareArgs,
    },
    /// The main job: a complete A/B benchmark of the cached API with a report.
    ///
    /// With no target: builds the worker if needed, starts two `wrangler dev` (cache on, and
    /// the `cache-off` env) on free loopback ports, migrates and seeds both, runs every
    /// scenario as an interleaved A/B and a per-layer ablation, judges the claims, writes
    /// reports/<timestamp>/index.html and stops both servers on every path (Ctrl-C too).
    /// Exit: 0 valid, 1 a threshold failed (or a claim, with --require-claims),
    /// 2 bad input or a machine not set up, 3 a server failed or the run is invalid.
    Bench(BenchArgs),
    /// Parse scenarios (or a claims file) and explain what they would do.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v: f64 = t.trim_end_matches('%').trim().parse().map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if !(0.0..=1000.0).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v / 100.0)
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let (k, v) = h.split_once(':').ok_or_else(|| format!("--header {h:?}: expected \"name: value\""))?;
    let k = k.trim();
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("--header {h:?}: {k:?} is not a header name"));
    }
    Ok((k.to_owned(), v.trim().to_owned()))
}

/// A failure at the edge: what to print and the exit code.
struct Fail(i32, String);

impl From<RunError> for Fail {
    fn from(e: RunError) -> Fail {
        match e {
            RunError::Unreachable(_) => Fail(exit::UNREACHABLE_OR_INVALID, e.to_string()),
            RunError::Setup(_) => Fail(exit::BAD_INPUT, e.to_string()),
        }
    }
}

fn bad(msg: impl Into<String>) -> Fail {
    Fail(exit::BAD_INPUT, msg.into())
}

fn load_scenario(f: &Path) -> Result<Scenario, Fail> {
    scenario::load(f).map_err(|e| bad(e.to_string()))
}

fn options(load: &LoadArgs, arms: Vec<ArmSpec>) -> RunOptions {
    RunOptions {
        arms,
        out_dir: load.out.clone(),
        bench_secret: load.bench_secret.clone(),
        progress: !load.quiet,
        stem: None,
        max_duration: None,
        http_client: load.http_client,
        cancel: None,
    }
}

fn headers(load: &LoadArgs) -> Result<Vec<(String, String)>, Fail> {
    load.headers.iter().map(|h| parse_header(h).map_err(bad)).collect()
}

fn run_code(doc: &ResultDoc) -> i32 {
    match doc.run.status {
        Status::Invalid | Status::Interrupted => exit::UNREACHABLE_OR_INVALID,
        _ if doc.thresholds.iter().any(|t| !t.pass) => exit::GATE_FAILED,
        _ => exit::PASS,
    }
}

fn compare_options(c: &CompareArgs) -> CompareOptions {
    CompareOptions { noise: c.noise, resamples: c.resamples, seed: c.seed, max_regression: c.max_regression }
}

fn load_claims(c: &CompareArgs) -> Result<Vec<Claim>, Fail> {
    match &c.claims {
        None => Ok(Vec::new()),
        Some(p) => claims::load(p).map_err(bad),
    }
}

/// Prints the comparison, writes its JSON, and returns the gate's exit code.
fn finish_comparison(c: &Comparison, args: &CompareArgs) -> Result<i32, Fail> {
    print!("{}", harness::compare_report::render(c));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(c).map_err(|e| bad(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
    }
    let claims_fail = args.require_claims && c.claims.iter().any(|v| !v.verdict.holds());
    Ok(if claims_fail || !c.regressions.is_empty() { exit::GATE_FAILED } else { exit::PASS })
}

fn read_arms(results: &[PathBuf]) -> Result<(ResultDoc, ResultDoc, bool), Fail> {
    let read = |p: &PathBuf| AnyResult::read(p).map_err(bad);
    match results {
        [one] => match read(one)? {
            AnyResult::Ab(ab) if ab.arms.len() == 2 => {
                let mut arms = ab.arms.into_iter();
                Ok((arms.next().unwrap(), arms.next().unwrap(), true))
            }
            _ => Err(bad(format!(
                "{}: one file must be an A/B result; otherwise give BASE.json CAND.json",
                one.display()
            ))),
        },
        [base, cand] => match (read(base)?, read(cand)?) {
            (AnyResult::Single(a), AnyResult::Single(b)) => Ok((*a, *b, false)),
            _ => Err(bad("compare BASE.json CAND.json takes two single-run results")),
        },
        _ => Err(bad("compare takes BASE.json CAND.json, or one A/B result")),
    }
}

fn write_report(
    docs: &[ResultDoc],
    comparison: Option<&Comparison>,
    sources: &[String],
    dir: &Path,
) -> Result<(), Fail> {
    let files = harness::report::write(docs, comparison, sources, dir).map_err(|e| Fail(exit::BAD_INPUT, e))?;
    println!(
        "report: {} ({} charts, {}, {})",
        files.html.display(),
        files.charts.len(),
        files.markdown.display(),
        files.junit.display()
    );
    Ok(())
}

/// The directory scenarios are found in: `<repo>/scenarios`, the repository found
/// upwards from `root` by its wrangler.toml (or `root` itself).
fn repo_dir(root: &Path) -> PathBuf {
    harness::bench::servers::repo_root(root).unwrap_or_else(|| root.canonicalize().unwrap_or_else(|_| root.to_owned()))
}

fn bench(opts: BenchArgs) -> Result<i32, Fail> {
    use harness::bench::{self, BenchError, BenchOptions};
    let repo = repo_dir(&opts.root);
    let scenarios = if opts.scenarios.is_empty() {
        bench::STANDARD_SCENARIOS.iter().map(|n| repo.join("scenarios").join(format!("{n}.toml"))).collect()
    } else {
        opts.scenarios
    };
    let claims_file = opts.compare.claims.clone().or_else(|| {
        let default = repo.join("scenarios/claims.toml");
        default.is_file().then_some(default)
    });
    let claims = match &claims_file {
        Some(p) => claims::load(p).map_err(bad)?,
        None => Vec::new(),
    };
    let bench_opts = BenchOptions {
        scenarios,
        target_on: opts.target_on,
        target_off: opts.target_off,
        bench_secret: opts.bench_secret,
        no_seed: opts.no_seed,
        quick: opts.quick,
        ablation: if opts.no_ablation { None } else { Some(opts.ablation_scenario) },
        out: opts.out.unwrap_or_else(|| repo.join("reports")),
        root: opts.root,
        wrangler: opts.wrangler,
        port_on: opts.port_on,
        port_off: opts.port_off,
        http_client: opts.http_client,
        progress: !opts.quiet,
        compare: compare_options(&opts.compare),
    };
    let cancel = bench::cancel_flag();
    match bench::run(&bench_opts, &claims, &cancel) {
        Ok((summary, dir)) => {
            print!("{}", harness::bench::report::console(&summary));
            println!("report: {}", dir.join("index.html").display());
            Ok(summary.exit_code(opts.compare.require_claims))
        }
        Err(BenchError::Setup(m)) => Err(bad(m)),
        Err(e @ (BenchError::Server(_) | BenchError::Interrupted)) => {
            Err(Fail(exit::UNREACHABLE_OR_INVALID, e.to_string()))
        }
    }
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Scenario files [default: scenarios/{auth,model-list,settings-change,mixed}.toml].
    scenarios: Vec<PathBuf>,
    /// Deployed cache-on worker (with --target-off): no local servers.
    #[arg(long, env = "HARNESS_TARGET_ON", requires = "target_off")]
    target_on: Option<String>,
    /// Deployed cache-off worker (`wrangler deploy --env cache-off`).
    #[arg(long, env = "HARNESS_TARGET_OFF", requires = "target_on")]
    target_off: Option<String>,
    /// The deployed workers' BENCH_SECRET: seeds users, enables the layer ablation.
    #[arg(long, env = "BENCH_SECRET", hide_env_values = true)]
    bench_secret: Option<String>,
    /// Deployed workers are already seeded with this secret: do not seed them.
    #[arg(long)]
    no_seed: bool,
    /// A few seconds per run (5 s measured, 2 s warm-up): a smoke test for CI.
    #[arg(long, env = "HARNESS_QUICK")]
    quick: bool,
    /// Scenario (by name) of the per-layer ablation [default: mixed if it runs, else the last one].
    #[arg(long)]
    ablation_scenario: Option<String>,
    /// Skip the per-layer ablation.
    #[arg(long)]
    no_ablation: bool,
    /// Directory of bench reports: each run writes <DIR>/<timestamp>/ [default: <repo>/reports].
    #[arg(long, env = "HARNESS_REPORTS")]
    out: Option<PathBuf>,
    /// The repository (wrangler.toml, node_modules, scenarios); found upwards from here.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Port of the local cache-on server [default: a free one]; another if it is in use.
    #[arg(long, conflicts_with = "target_on")]
    port_on: Option<u16>,
    /// Port of the local cache-off server [default: a free one]; another if it is in use.
    #[arg(long, conflicts_with = "target_off")]
    port_off: Option<u16>,
    /// The wrangler to run [default: <root>/node_modules/.bin/wrangler].
    #[arg(long, env = "HARNESS_WRANGLER")]
    wrangler: Option<PathBuf>,
    /// HTTP implementation: auto (hyper for http://, reqwest for https://), hyper, reqwest.
    #[arg(long, value_enum, default_value = "auto", env = "HARNESS_HTTP_CLIENT")]
    http_client: ClientKind,
    /// No live progress line.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    compare: CompareArgs,
}

fn main_inner(cli: Cli) -> Result<i32, Fail> {
    match cli.command {
        Command::Bench(args) => bench(args),
        Command::Validate { scenarios } => {
            let mut code = exit::PASS;
            for f in &scenarios {
                // scenarios/ also holds the claims file: it is checked as what it is.
                let is_claims = std::fs::read_to_string(f).is_ok_and(|t| t.lines().any(|l| l.trim() == "[[claim]]"));
                let explained = if is_claims {
                    claims::load(f).map(|c| claims::explain(f, &c))
                } else {
                    scenario::load(f).map(|s| s.explain()).map_err(|e| e.to_string())
                };
                match explained {
                    Ok(text) => print!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = exit::BAD_INPUT;
                    }
                }
            }
            Ok(code)
        }
        Command::Run { scenarios, target, variant, baseline, max_regression, report, load } => {
            // Every input is checked before any load is sent.
            let scenarios = scenarios.iter().map(|f| load_scenario(f)).collect::<Result<Vec<_>, _>>()?;
            let baseline = match &baseline {
                None => None,
                Some(p) => match AnyResult::read(p).map_err(bad)? {
                    AnyResult::Single(d) => Some(*d),
                    AnyResult::Ab(_) => {
                        return Err(bad(format!("{}: --baseline takes a single-run result", p.display())))
                    }
                },
            };
            let arm = ArmSpec { label: variant, target, extra_headers: headers(&load)? };
            let opts = options(&load, vec![arm]);
            let mut code = exit::PASS;
            for sc in &scenarios {
                let outcome = runner::run(sc, &opts)?;
                let doc = outcome.doc();
                print!("{}", harness::summary::render(doc));
                println!("result: {} (interval log {})", outcome.files.json.display(), outcome.files.hlog.display());
                code = code.max(run_code(doc));
                let mut comparison = None;
                if let Some(base) = &baseline {
                    let copts = CompareOptions { max_regression, ..CompareOptions::default() };
                    let c = compare::compare(base, doc, false, &[], &copts).map_err(bad)?;
                    print!("{}", harness::compare_report::render(&c));
                    if !c.regressions.is_empty() {
                        code = code.max(exit::GATE_FAILED);
                    }
                    comparison = Some(c);
                }
                if let Some(dir) = &report {
                    let dir = if scenarios.len() > 1 { dir.join(&sc.name) } else { dir.clone() };
                    let docs: Vec<ResultDoc> = baseline.iter().cloned().chain(std::iter::once(doc.clone())).collect();
                    let docs = if comparison.is_some() { docs } else { vec![doc.clone()] };
                    write_report(&docs, comparison.as_ref(), &[outcome.files.json.display().to_string()], &dir)?;
                }
                if doc.run.status == Status::Interrupted {
                    break;
                }
            }
            Ok(code)
        }
        Command::Ab { scenario, a, b, target, a_cache, b_cache, a_label, b_label, report, load, compare } => {
            let sc = load_scenario(&scenario)?;
            let claims = load_claims(&compare)?;
            let extra = headers(&load)?;
            let arms = match (a, b, target) {
                (Some(a), Some(b), None) => vec![
                    ArmSpec { label: Some(a_label), target: a, extra_headers: extra.clone() },
                    ArmSpec { label: Some(b_label), target: b, extra_headers: extra },
                ],
                (None, None, Some(t)) => {
                    let secret = load.bench_secret.clone().ok_or_else(|| {
                        bad("the one-target form needs --bench-secret: x-bench-cache is ignored without it")
                    })?;
                    vec![
                        ArmSpec::with_bench_cache(&a_label, &t, extra.clone(), &secret, &a_cache),
                        ArmSpec::with_bench_cache(&b_label, &t, extra, &secret, &b_cache),
                    ]
                }
                _ => {
                    return Err(bad(
                        "give --a URL --b URL, or --target URL (with --a-cache/--b-cache and --bench-secret)",
                    ))
                }
            };
            let outcome = runner::run(&sc, &options(&load, arms))?;
            for arm in &outcome.arms {
                print!("{}", harness::summary::render(&arm.doc));
            }
            println!("result: {} (interval log {})", outcome.files.json.display(), outcome.files.hlog.display());
            let run = outcome.arms.iter().map(|a| run_code(&a.doc)).max().unwrap_or(exit::PASS);
            let c =
                compare::compare(&outcome.arms[0].doc, &outcome.arms[1].doc, true, &claims, &compare_options(&compare))
                    .map_err(bad)?;
            let gate = finish_comparison(&c, &compare)?;
            if let Some(dir) = &report {
                let docs: Vec<ResultDoc> = outcome.arms.iter().map(|a| a.doc.clone()).collect();
                write_report(&docs, Some(&c), &[outcome.files.json.display().to_string()], dir)?;
            }
            Ok(run.max(gate))
        }
        Command::Report { results, compare, out, compare_args } => {
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
                Some(
                    compare::compare(&docs[0], &docs[1], interleaved, &claims, &compare_options(&compare_args))
                        .map_err(bad)?,
                )
            } else {
                None
            };
            if comparison.is_some() {
                docs.truncate(2);
            }
            let sources: Vec<String> = results.iter().map(|p| p.display().to_string()).collect();
            write_report(&docs, comparison.as_ref(), &sources, &out)?;
            let gate = comparison.as_ref().map_or(exit::PASS, |c| {
                let claims_fail = compare_args.require_claims && c.claims.iter().any(|v| !v.verdict.holds());
                if claims_fail || !c.regressions.is_empty() {
                    exit::GATE_FAILED
                } else {
                    exit::PASS
                }
            });
            Ok(gate)
        }
        Command::Compare { results, compare } => {
            let claims = load_claims(&compare)?;
            let (a, b, interleaved) = read_arms(&results)?;
            let c = compare::compare(&a, &b, interleaved, &claims, &compare_options(&compare)).map_err(bad)?;
            finish_comparison(&c, &compare)
        }
    }
}

fn main() -> ExitCode {
    // clap exits with code 2 on usage errors: the contract's "bad input".
    let cli = Cli::parse();
    let code = main_inner(cli).unwrap_or_else(|Fail(code, msg)| {
        eprintln!("error: {msg}");
        code
    });
    ExitCode::from(code as u8)
}
