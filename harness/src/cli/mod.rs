//! The command line: clap's definitions and one file per command. Each command
//! checks every input before any load is sent, then wires the library's parts
//! together; errors become one line and an exit code (ARCHITECTURE.md, "Exit
//! codes"): 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable
//! or run invalid.

mod ab;
mod bench;
mod compare;
mod gate;
mod merge;
mod report;
mod run;
mod seed;
mod users;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::claims::{self, Claim};
use crate::client::ClientKind;
use crate::compare::{CompareOptions, Comparison};
use crate::exit;
use crate::report::{self as exporters, Destinations, Report, RunReport};
use crate::result::{AnyResult, ResultDoc, Status};
use crate::runner::{ArmSpec, RunError, RunOptions};
use crate::scenario::{self, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Cache benchmark load generator: scenario -> schedule -> client -> recorder -> result -> compare -> report",
    arg_required_else_help = true,
    long_about = "Replays scenario files (scenarios/*.toml) against this project's worker or any HTTP API \
(--target-kind) and says, with statistics and an exit code, whether a cache really makes it faster. \
Exit codes: 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable or run invalid."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags every command that sends load shares (`run`, `ab`, `bench`).
#[derive(Args, Debug, Clone)]
pub struct ClientFlags {
    /// The target's BENCH_SECRET: derives the seeded users' credentials; `bench`
    /// also seeds deployed workers with it and runs the layer ablation.
    #[arg(long, env = "BENCH_SECRET", hide_env_values = true)]
    pub bench_secret: Option<String>,
    /// Derives the scenarios' users' credentials on a target with no bench secret:
    /// the secret `harness users` exported them with (a recipe's bench makes its
    /// own when none is given).
    #[arg(long, env = "HARNESS_USERS_SECRET", hide_env_values = true)]
    pub users_secret: Option<String>,
    /// The largest share of sends allowed to leave late (e.g. 25%), overriding
    /// every scenario's `[load] max_late_share`; beyond it a run is invalid.
    #[arg(long, value_name = "PERCENT", value_parser = parse_share)]
    pub max_late_share: Option<f64>,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// HTTP implementation: auto (= hyper, the lean path, rustls for https://), hyper, reqwest.
    #[arg(long, value_enum, default_value = "auto", env = "HARNESS_HTTP_CLIENT")]
    pub http_client: ClientKind,
    /// Sending threads, each with its own connections and its shard of the schedule
    /// (A/B pairs stay on one thread), merged at the end [default: the cores
    /// available; 1 when a target is on this machine (loopback) or for `bench`'s
    /// local stack: the target needs those cores, and a second sending thread
    /// competing with it made A/A verdicts less reliable in bench/calibrate].
    #[arg(long, env = "HARNESS_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Send only shard I of N of the schedule (0 <= I < N): N processes, on as many
    /// machines, together send what the scenario asks for; `harness merge` joins
    /// their results. `/N` takes I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, env = "HARNESS_SHARD", value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<crate::shard::Shard>,
    /// Begin each run's schedule when the wall clock next reaches a whole multiple
    /// of this (e.g. 30s), after the set-up: shards started within one such period
    /// on machines with synchronised clocks begin together (`harness merge` warns
    /// when shards began more than 1 s apart).
    #[arg(long, env = "HARNESS_ALIGN_START", value_name = "PERIOD", value_parser = crate::scenario::duration::parse_duration)]
    pub align_start: Option<std::time::Duration>,
    /// Serve the live figures in the OpenMetrics text format at http://ADDR/metrics
    /// while the run goes on, for a Prometheus scrape (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Trust this CA (or self-signed certificate), PEM, for https:// targets, besides
    /// the platform's (SSL_CERT_FILE and SSL_CERT_DIR are honoured). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Do not verify https:// certificates (encrypted, but any server is believed).
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// What the target is: `auto` asks GET /health once before the run and takes
    /// an answer in this project's worker's shape for that worker (its version,
    /// latency profile), anything else for a plain HTTP API; `http` asks nothing
    /// before the run; `bench-worker` requires the worker's answer.
    #[arg(long, value_enum, default_value = "auto", env = "HARNESS_TARGET_KIND")]
    pub target_kind: crate::target::TargetChoice,
}

impl ClientFlags {
    /// `--threads`; else 1 when a target is on this machine, else the cores available.
    pub fn threads_for(&self, targets: &[&str]) -> u32 {
        self.threads.unwrap_or_else(|| {
            if targets.iter().any(|t| crate::target::is_loopback(t)) {
                1
            } else {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            }
        })
    }

    pub fn tls(&self) -> crate::client::TlsOptions {
        crate::client::TlsOptions::new(self.ca_cert.clone(), self.insecure)
    }

    /// The live board, serving at `--metrics-listen` from now on.
    pub fn live(&self) -> Result<Option<crate::metrics::live::Board>, Fail> {
        let Some(addr) = &self.metrics_listen else { return Ok(None) };
        let board = crate::metrics::live::Board::default();
        let bound = board.serve(addr).map_err(bad)?;
        eprintln!("metrics: http://{bound}/metrics");
        Ok(Some(board))
    }

    /// Checks the TLS flags before any load: a bad --ca-cert is bad input.
    pub fn checked_tls(&self) -> Result<crate::client::TlsOptions, Fail> {
        let tls = self.tls();
        if !self.ca_cert.is_empty() {
            tls.config().map_err(bad)?;
        }
        Ok(tls)
    }
}

fn parse_shard(s: &str) -> Result<crate::shard::Shard, String> {
    crate::shard::Shard::parse(s, &|k| std::env::var(k).ok())
}

/// Flags of `run` and `ab`: where results go and what every request carries.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Directory for result files (<scenario>-<label>-<time>.json and .hlog).
    #[arg(long, env = "HARNESS_OUT", default_value = "reports/runs")]
    pub out: PathBuf,
    /// Extra header for every request, "name: value" (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Keep measuring, in stages of the scenario's length, until every claim has a
    /// verdict other than inconclusive (without claims: until the p50 change of all
    /// requests is decided), spending at most this much measured traffic (e.g. 2m).
    /// The CIs of every look are widened so the verdicts stay valid (group-sequential,
    /// α spent evenly over the looks).
    #[arg(long, value_name = "MAX", value_parser = crate::scenario::duration::parse_duration)]
    pub until_decided: Option<std::time::Duration>,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Claims to judge (e.g. scenarios/claims.toml).
    #[arg(long)]
    pub claims: Option<PathBuf>,
    /// Exit 1 unless every claim is confirmed or exceeded.
    #[arg(long)]
    pub require_claims: bool,
    /// Do not exit 1 when the arms answered a pair differently (an A/B of a change
    /// meant to change answers). Without it, a cache that changes answers fails the
    /// gate whatever its speed.
    #[arg(long, env = "HARNESS_ALLOW_ANSWER_CHANGES")]
    pub allow_answer_changes: bool,
    /// Exit 1 when a series is slower than this (e.g. 10%) beyond the noise band.
    #[arg(long, value_parser = parse_percent)]
    pub max_regression: Option<f64>,
    /// Changes inside ± this count as no difference.
    #[arg(long, value_parser = parse_percent, default_value = "2%")]
    pub noise: f64,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Seed of the bootstrap, for reproducible intervals.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios against a target, write result files, print a summary, enforce thresholds.
    Run(run::RunArgs),
    /// One schedule, iterations alternating between A and B in pairs of random order;
    /// then the comparison of B against A.
    Ab(ab::AbArgs),
    /// Compare a baseline and a candidate result (or the two arms of one `ab` result).
    Compare(compare::CompareCommand),
    /// Write index.html (self-contained), one PNG per chart, summary.md and junit.xml.
    Report(report::ReportArgs),
    /// The main job: a complete A/B benchmark of the cached API with a report.
    ///
    /// With no target: builds the worker if needed, starts two `wrangler dev` (cache on, and
    /// the `cache-off` env) on free loopback ports, migrates and seeds both, runs every
    /// scenario as an interleaved A/B and a per-layer ablation, judges the claims, writes
    /// reports/<timestamp>/index.html and stops both servers on every path (Ctrl-C too).
    /// Exit: 0 valid, 1 a threshold failed (or a claim, with --require-claims),
    /// 2 bad input or a machine not set up, 3 a server failed or the run is invalid.
    Bench(bench::BenchArgs),
    /// Parse scenarios (or a claims file) and explain what they would do.
    Validate(validate::ValidateArgs),
    /// Merge the results of one run's shards (--shard I/N, on one or many machines)
    /// into one result: histograms added losslessly, counters summed, seconds aligned
    /// on the wall clock; then judged (validity, thresholds) and, for A/B results,
    /// compared with claims as a single run. Refuses results of different scenarios,
    /// overlapping shards and missing shards (unless --allow-missing).
    Merge(merge::MergeArgs),
    /// Reset (with --reset) and seed deployed targets with the users the scenarios
    /// need, as `harness bench` does before each scenario: run it once before the
    /// shards of a Kubernetes Job, which then run with --no-seed.
    Seed(seed::SeedArgs),
    /// Write out the users the scenarios will use (ids, emails, session tokens, API
    /// keys and their SHA-256 as a target stores them) as CSV, JSON or through a
    /// template for the target's own schema (e.g. SQL inserts): seeds any worker.
    Users(users::UsersArgs),
    /// A regression gate between two builds of a worker: two git refs (base, and
    /// head = the working tree by default) built and started as a recipe says, or
    /// two deployed URLs, run side by side as interleaved A/Bs (two instances per
    /// build, balanced); a pre-declared primary (p50 of all requests per scenario)
    /// decides against a tolerance. Exit: 0 no regression, 1 regression, 4
    /// undetermined (not enough evidence: never a pass), 2 bad input, 3 a server failed.
    Gate(gate::GateArgs),
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v: f64 = t.trim_end_matches('%').trim().parse().map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if !(0.0..=1000.0).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v / 100.0)
}

/// A share of sends: `25%` or `0.25`, at most all of them.
fn parse_share(s: &str) -> Result<f64, String> {
    let v = if s.trim().ends_with('%') {
        parse_percent(s)?
    } else {
        s.trim().parse().map_err(|_| format!("{s:?} is not a share (e.g. 25% or 0.25)"))?
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?}: a share of the sends is between 0 and 100 %"));
    }
    Ok(v)
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
pub struct Fail(pub i32, pub String);

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

/// A scenario with the command line's overrides of its `[load]`.
fn load_scenario_with(f: &Path, c: &ClientFlags) -> Result<Scenario, Fail> {
    let mut sc = load_scenario(f)?;
    if let Some(share) = c.max_late_share {
        sc.load.max_late_share = share;
    }
    Ok(sc)
}

fn options(load: &LoadArgs, arms: Vec<ArmSpec>) -> Result<RunOptions, Fail> {
    let c = &load.client;
    if c.shard.is_some_and(|s| !s.is_whole()) && load.until_decided.is_some() {
        return Err(bad("--until-decided cannot be sharded: each shard would decide on its own part of the data"));
    }
    Ok(RunOptions {
        bench_secret: c.bench_secret.clone(),
        users_secret: c.users_secret.clone(),
        progress: !c.quiet,
        http_client: c.http_client,
        threads: c.threads_for(&arms.iter().map(|a| a.target.as_str()).collect::<Vec<_>>()),
        shard: c.shard.unwrap_or_default(),
        live: c.live()?,
        tls: c.checked_tls()?,
        align_start: c.align_start,
        target: c.target_kind.target(),
        ..RunOptions::new(arms, load.out.clone())
    })
}

fn headers(load: &LoadArgs) -> Result<Vec<(String, String)>, Fail> {
    load.headers.iter().map(|h| parse_header(h).map_err(bad)).collect()
}

/// The exit code of a result: invalid, a failed threshold, or a pass. A shard's
/// thresholds are not the run's (a shard sends part of the rate): they are judged
/// on the merged result, so a shard exits 0 on them — a pod of an Indexed Job must
/// fail only when its part is no measurement.
fn run_code(doc: &ResultDoc) -> i32 {
    match doc.run.status {
        Status::Invalid | Status::Interrupted => exit::UNREACHABLE_OR_INVALID,
        _ if doc.metadata.shard.is_some() => exit::PASS,
        _ if doc.thresholds.iter().any(|t| !t.pass) => exit::GATE_FAILED,
        _ => exit::PASS,
    }
}

/// Said after a shard's summary: what it does not decide.
const SHARD_NOTE: &str = "this is one shard of a run: its thresholds, comparison and claims are shown but not \
                          enforced; `harness merge` judges the whole run";

fn compare_options(c: &CompareArgs) -> CompareOptions {
    CompareOptions {
        noise: c.noise,
        resamples: c.resamples,
        seed: c.seed,
        max_regression: c.max_regression,
        ..Default::default()
    }
}

fn load_claims(c: &CompareArgs) -> Result<Vec<Claim>, Fail> {
    match &c.claims {
        None => Ok(Vec::new()),
        Some(p) => claims::load(p).map_err(bad),
    }
}

/// Prints what the terminal exporter makes of `docs` and `comparison`.
fn print_terminal(docs: &[ResultDoc], comparison: Option<&Comparison>) -> Result<(), Fail> {
    let report = Report::Run(RunReport { docs, comparison, sources: &[] });
    let out = exporters::export(&report, Destinations { dir: None, terminal: true }).map_err(bad)?;
    print!("{}", out.terminal);
    Ok(())
}

/// Prints the comparison, writes its JSON, and returns the gate's exit code.
fn finish_comparison(c: &Comparison, args: &CompareArgs) -> Result<i32, Fail> {
    print_terminal(&[], Some(c))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(c).map_err(|e| bad(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
    }
    let claims_fail = args.require_claims && c.claims_fail();
    let wrong = c.answers.as_ref().and_then(|a| a.series.get(crate::series::ALL_TEXT)).filter(|t| t.mismatched > 0);
    if let Some(t) = wrong {
        let what = if args.allow_answer_changes { "allowed by --allow-answer-changes" } else { "gate FAILED" };
        println!("\nanswers: {what}: the arms answered {} of {} compared pairs differently", t.mismatched, t.compared);
    }
    let answers_fail = wrong.is_some() && !args.allow_answer_changes;
    Ok(if claims_fail || answers_fail || !c.regressions.is_empty() { exit::GATE_FAILED } else { exit::PASS })
}

/// The arm labelled `label` of a result file: an A/B result's arm, or a single
/// run (which must carry the label, when it has one).
pub(super) fn arm_of(path: &Path, label: &str) -> Result<ResultDoc, Fail> {
    let labels = |docs: &[ResultDoc]| docs.iter().filter_map(|d| d.metadata.variant.clone()).collect::<Vec<_>>();
    match AnyResult::read(path).map_err(bad)? {
        AnyResult::Single(d) if d.metadata.variant.as_deref().is_none_or(|v| v == label) => Ok(*d),
        AnyResult::Single(d) => {
            Err(bad(format!("{}: its arm is {:?}, not {label:?}", path.display(), labels(std::slice::from_ref(&d)))))
        }
        AnyResult::Ab(ab) => {
            let names = labels(&ab.arms);
            ab.arms
                .into_iter()
                .find(|d| d.metadata.variant.as_deref() == Some(label))
                .ok_or_else(|| bad(format!("{}: no arm {label:?} (its arms: {})", path.display(), names.join(", "))))
        }
    }
}

fn read_arms(results: &[PathBuf], arm: Option<&str>) -> Result<(ResultDoc, ResultDoc, bool), Fail> {
    let read = |p: &PathBuf| AnyResult::read(p).map_err(bad);
    if let (Some(label), [base, cand]) = (arm, results) {
        return Ok((arm_of(base, label)?, arm_of(cand, label)?, false));
    }
    match results {
        [one] => match read(one)? {
            AnyResult::Ab(ab) if ab.arms.len() == 2 => {
                let mut arms = ab.arms.into_iter();
                Ok((arms.next().unwrap(), arms.next().unwrap(), true))
            }
            AnyResult::Ab(ab) => {
                let labels: Vec<String> = ab.arms.iter().filter_map(|d| d.metadata.variant.clone()).collect();
                Err(bad(format!(
                    "{}: a run of {} arms ({}); pick two with --arms BASE,CAND",
                    one.display(),
                    ab.arms.len(),
                    labels.join(", ")
                )))
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
    crate::outdir::check(dir).map_err(|e| Fail(exit::BAD_INPUT, e))?;
    let files = exporters::write(docs, comparison, sources, dir).map_err(|e| Fail(exit::BAD_INPUT, e))?;
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
    crate::bench::servers::repo_root(root).unwrap_or_else(|| root.canonicalize().unwrap_or_else(|_| root.to_owned()))
}

/// Parses the command line, runs the command, prints a failure as one line.
pub fn main() -> ExitCode {
    // clap exits with code 2 on usage errors: the contract's "bad input".
    let cli = Cli::parse();
    let code = dispatch(cli).unwrap_or_else(|Fail(code, msg)| {
        eprintln!("error: {msg}");
        code
    });
    ExitCode::from(code as u8)
}

fn dispatch(cli: Cli) -> Result<i32, Fail> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Ab(args) => ab::ab(args),
        Command::Compare(args) => compare::compare(args),
        Command::Report(args) => report::report(args),
        Command::Bench(args) => bench::bench(args),
        Command::Validate(args) => validate::validate(args),
        Command::Merge(args) => merge::merge(args),
        Command::Seed(args) => seed::seed(args),
        Command::Users(args) => users::users(args),
        Command::Gate(args) => gate::gate(args),
    }
}
