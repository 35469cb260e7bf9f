//! `harness bench` (ARCHITECTURE.md, "The harness"): the main job. Starts (or is
//! given) a cache-on and a cache-off worker, seeds both identically, runs every
//! standard scenario as an interleaved A/B, a per-layer ablation, compares,
//! judges the claims and hands what it found to an observer. Orchestration only:
//! running is `runner`, statistics are `compare`, what was found is `findings`,
//! rendering is `report` (wired by `cli/bench.rs`).
//!
//! | room | job |
//! |---|---|
//! | `targets.rs` | the local stack's and deployed workers' lifecycle and mode checks |
//! | `servers.rs` | one `wrangler dev` process: start, readiness, stop |
//! | `recipe_stack.rs` | a recipe's instances: reset, seed, start before every run |
//! | `seeding.rs` | users per seed; reset and seed every target (`harness seed`) |
//! | `plan.rs` | scenarios, the plan said up front, every job and its notes |
//! | `run.rs` | the run loop: jobs in order, seeded, until one cannot go on |
//! | `job.rs` | one A/B: run (in stages until decided), compare, sum up |
//! | `cold.rs` | cold isolates: one restart of the worker per sample |
//! | `profiles.rs`, `strategies.rs`, `staleness.rs` | `--profile`, `--strategies` and their probes |
//! | `observer.rs` | what the bench tells whoever runs it |

mod cold;
mod head_to_head;
mod job;
pub mod observer;
pub mod plan;
mod pool;
pub mod profiles;
pub mod recipe_stack;
mod run;
pub mod seeding;
pub mod servers;
pub mod staleness;
pub mod strategies;
mod targets;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::claims::Claim;
use crate::client::ClientKind;
use crate::compare::CompareOptions;
pub use crate::findings::ranking;
pub use crate::findings::{
    AbStatus, AbSummary, Answer, AnswerCell, AnswerRow, BenchSummary, ColdRow, OpsRow, Row, BENCH_SCHEMA,
};
use crate::result::{self, Measurement};
use crate::target::SetupClient;
pub use observer::{FinishedJob, Observer};
pub use plan::{load_scenarios, shorten, DEFAULT_BUDGET, LAYERS, QUICK_MEASURED, QUICK_WARMUP, STANDARD_SCENARIOS};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad input or a machine that is not set up: nothing was measured.
    #[error("{0}")]
    Setup(String),
    /// A server could not be started or reached.
    #[error("{0}")]
    Server(String),
    #[error("interrupted before any measurement")]
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Scenario files, run in this order.
    pub scenarios: Vec<PathBuf>,
    /// Deployed workers; both or neither.
    pub target_on: Option<String>,
    pub target_off: Option<String>,
    /// One deployed worker serving both arms through `x-bench-cache`.
    pub target: Option<String>,
    /// The deployed workers' BENCH_SECRET (local runs make their own).
    pub bench_secret: Option<String>,
    /// Do not seed deployed workers (they were seeded before with this secret).
    pub no_seed: bool,
    pub quick: bool,
    /// `--until-decided`: the most measured traffic per run.
    pub until_decided: Option<Duration>,
    /// The per-layer ablation: `None` none; `Some(None)` on `mixed` if it runs, else
    /// on the last scenario; `Some(Some(name))` on that scenario.
    pub ablation: Option<Option<String>>,
    /// `reports/`: the run writes `reports/<timestamp>/`.
    pub out: PathBuf,
    /// Where to look for wrangler.toml (local runs).
    pub root: PathBuf,
    pub wrangler: Option<PathBuf>,
    /// Preferred ports of the local servers; another is picked when one is in use.
    pub port_on: Option<u16>,
    pub port_off: Option<u16>,
    /// `--controls N`: each scenario's A/A control runs N times, pooled into one.
    pub controls: u32,
    /// `--two-servers`: the local stack as two servers, each with its own state,
    /// the arms crossed between them (default: one server serving both arms).
    pub two_servers: bool,
    pub http_client: ClientKind,
    pub progress: bool,
    pub compare: CompareOptions,
    /// `--profile`: latency profiles to run every A/B under (`local` = measured;
    /// empty: measured only).
    pub profiles: Vec<String>,
    /// `--strategies`: cache strategies to rank (`all`, or names); empty: the
    /// worker's own strategy only.
    pub strategies: Vec<String>,
    /// Re-run each ranking's tied leaders against each other in one interleaved
    /// run (`head_to_head.rs`; off with `--no-head-to-head`).
    pub head_to_head: bool,
    /// Sending threads per run (`--threads`).
    pub threads: u32,
    /// This process's part of every run's schedule (`--shard`, deployed form only).
    pub shard: crate::shard::Shard,
    /// Live figures for a Prometheus scrape (`--metrics-listen`).
    pub live: Option<crate::metrics::live::Board>,
    pub tls: crate::client::TlsOptions,
    /// `--align-start`: each run begins at the next whole multiple of this.
    pub align_start: Option<Duration>,
    /// `--recipe`: how to run the two arms of any worker (`crate::recipe`).
    pub recipe: Option<crate::recipe::Recipe>,
    /// Derives the users' credentials when the target has no bench secret
    /// (`--users-secret`; else the recipe's, else a fresh one per bench).
    pub users_secret: Option<String>,
    /// `--max-late-share`: overrides every scenario's `[load] max_late_share`.
    pub max_late_share: Option<f64>,
}

/// What every part of one bench shares besides its options: the Ctrl-C flag,
/// the set-up client (trusting what the measured requests trust) and the observer.
pub struct Env<'a> {
    pub cancel: &'a Arc<AtomicBool>,
    pub setup: &'a SetupClient,
    pub observer: &'a dyn Observer,
}

/// `reports/<UTC date>T<time>`, unique.
fn bench_dir(out: &Path) -> Result<PathBuf, BenchError> {
    crate::outdir::check(out).map_err(BenchError::Setup)?;
    let stamp: String = result::rfc3339(SystemTime::now()).chars().take(19).collect::<String>().replace(':', "-");
    let mut dir = out.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{stamp}-{n}"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Runs the whole bench and hands its summary to the observer (which writes the
/// report into `reports/<timestamp>/`). The servers it started are stopped
/// before it returns, on every path.
pub fn run(opts: &BenchOptions, claims: &[Claim], env: &Env<'_>) -> Result<(BenchSummary, PathBuf), BenchError> {
    let started = Instant::now();
    let started_at = result::rfc3339(SystemTime::now());
    let scenarios = load_scenarios(opts)?;
    let measurements = profiles::resolve(&opts.profiles)?;
    // The built-in local stack (a recipe starts its own servers its own way).
    let local = opts.target_on.is_none() && opts.target.is_none() && opts.recipe.is_none();
    if !local && opts.bench_secret.is_none() && measurements.iter().any(Measurement::is_modelled) {
        return Err(BenchError::Setup(
            "--profile needs --bench-secret: the worker applies a profile chosen per request (x-bench-profile) only \
             with its BENCH_SECRET"
                .into(),
        ));
    }
    env.observer.say(&plan::announce(&scenarios, opts, local, measurements.len(), plan::strategy_count(opts)));
    let dir = bench_dir(&opts.out)?;
    let mut notes = Vec::new();
    let mut targets = match targets::open(opts, &scenarios, &dir, env, &mut notes) {
        Err(BenchError::Server(reason)) if local => {
            // Nothing was measured, but the report says why: CI and users look there.
            let summary = BenchSummary {
                wall_s: started.elapsed().as_secs_f64(),
                invalid_reasons: vec![format!("the local servers did not start: {reason}")],
                notes,
                ..BenchSummary::begin(started_at, true, opts.quick)
            };
            env.observer.bench_finished(&summary, &dir).map_err(BenchError::Setup)?;
            return Err(BenchError::Server(format!("{reason}\nreport: {}", dir.join("index.html").display())));
        }
        other => other?,
    };
    let strategies = targets::check(&targets, opts, &measurements, env.setup, local, &mut notes)?;
    let jobs = plan::jobs(&scenarios, opts, &targets, &measurements, &strategies, &mut notes)?;
    let seeding = targets.secret.is_some() && (local || !opts.no_seed);
    let seed_users = seeding.then(|| seeding::users_per_seed(&scenarios, strategies.len()));
    let ctx = run::JobContext { opts, claims, dir: &dir, env, local, seed_users };
    let (mut runs, mut invalid_reasons, staleness) =
        run::run_jobs(jobs, &ctx, &mut targets, &strategies, &measurements);
    let head_to_head = if opts.head_to_head && !strategies.is_empty() && invalid_reasons.is_empty() {
        let (done, invalid) = head_to_head::run_all(&ctx, &mut targets, &scenarios, &runs);
        invalid_reasons.extend(invalid);
        done
    } else {
        Vec::new()
    };
    pool::pool_controls(&mut runs, opts.compare.noise, opts.compare.alpha);
    crate::findings::hold_to_control(&mut runs);
    let capabilities = crate::findings::capabilities::capabilities(&runs, targets.health_route().as_deref());
    if let Some(warning) =
        targets.cache_on_label().and_then(|on| crate::findings::capabilities::no_sign_of_caching(&runs, &on))
    {
        env.observer.say(&format!("warning: {warning}"));
        notes.push(warning);
    }
    let profile_names: Vec<String> = measurements.iter().filter_map(|m| m.profile().map(str::to_owned)).collect();
    let (profiles, figures) = profiles::sources(&profile_names);
    let design = targets.design();
    targets.stop();
    let begun = match &opts.recipe {
        Some(r) => BenchSummary::begin_recipe(started_at, r, opts.quick),
        None => BenchSummary::begin(started_at, local, opts.quick),
    };
    let mut summary = BenchSummary {
        wall_s: started.elapsed().as_secs_f64(),
        target_on: targets.on.clone(),
        target_off: targets.off.clone(),
        worker_version: targets.worker_version.clone(),
        valid: invalid_reasons.is_empty() && !runs.is_empty(),
        invalid_reasons,
        notes,
        runs,
        measurements,
        profiles,
        figures,
        staleness,
        design,
        capabilities,
        ..begun
    };
    if !strategies.is_empty() {
        summary.strategies = strategies;
        summary.rankings = ranking::rankings(&summary);
        summary.head_to_head = head_to_head;
        summary.prices = Some(ranking::prices().clone());
    }
    env.observer.bench_finished(&summary, &dir).map_err(BenchError::Setup)?;
    Ok((summary, dir))
}
