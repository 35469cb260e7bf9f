//! `harness bench` (ARCHITECTURE.md, "The harness"): the main job. Starts (or is given) a cache-on
//! and a cache-off worker, seeds both identically, runs every standard scenario as
//! an interleaved A/B, a per-layer ablation, compares, judges the claims and writes
//! one report directory. Orchestration only: running is `runner`, statistics are
//! `compare`, rendering is `bench::report`.

mod cold;
mod job;
pub mod plan;
pub mod profiles;
pub mod ranking;
pub mod servers;
pub mod staleness;
pub mod strategies;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::claims::Claim;
use crate::client::ClientKind;
use crate::compare::CompareOptions;
use crate::result::{self, Measurement};
use crate::runner::ArmSpec;
use crate::scenario::{format_duration, Scenario};
use job::{arm, run_ab, AbJob, JobKind};
use plan::{ablation_scenario, is_cold, plan};
pub use plan::{load_scenarios, shorten, DEFAULT_BUDGET, LAYERS, QUICK_MEASURED, QUICK_WARMUP, STANDARD_SCENARIOS};
use servers::{LocalServer, Secrets, ServerSpec, SetupClient, Workspace};
pub use summary::{
    AbStatus, AbSummary, Answer, AnswerCell, AnswerRow, BenchSummary, Change, ColdRow, OpsRow, Row, BENCH_SCHEMA,
};

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
    pub http_client: ClientKind,
    pub progress: bool,
    pub compare: CompareOptions,
    /// `--profile`: latency profiles to run every A/B under (`local` = measured;
    /// empty: measured only).
    pub profiles: Vec<String>,
    /// `--strategies`: cache strategies to rank (`all`, or names); empty: the
    /// worker's own strategy only.
    pub strategies: Vec<String>,
    /// Sending threads per run (`--threads`).
    pub threads: u32,
    /// This process's part of every run's schedule (`--shard`, deployed form only).
    pub shard: crate::shard::Shard,
    /// Live figures for a Prometheus scrape (`--metrics-listen`).
    pub live: Option<crate::metrics::live::Board>,
    pub tls: crate::client::TlsOptions,
    /// `--align-start`: each run begins at the next whole multiple of this.
    pub align_start: Option<Duration>,
}

/// Installs the Ctrl-C/SIGTERM/SIGHUP flag: the bench stops what it is doing,
/// stops the servers and writes what it has.
pub fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        // Registration fails only for forbidden signals, which these are not.
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// The local servers' KV/D1 state: disposable (every bench starts fresh, the logs
/// are in the report), removed when dropped — after the servers, which are declared
/// (and so dropped) before it.
struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the bench runs against. Field order is drop order: servers, then their state.
struct Targets {
    on: String,
    off: String,
    secret: Option<String>,
    /// Local servers, stopped when this is dropped.
    local: Vec<LocalServer>,
    state: Option<StateDir>,
    worker_version: Option<String>,
    /// How to start the cache-on server again (local stack only): cold starts.
    restart: Option<Restart>,
}

/// What starting the local cache-on server again needs.
struct Restart {
    ws: Workspace,
    secrets: Secrets,
    state: PathBuf,
    log: PathBuf,
    cpus: Vec<usize>,
}

impl Targets {
    /// Stops the cache-on server and starts it again on the same state (and,
    /// when it is free, the same port): a fresh isolate. `on` is its new URL.
    fn restart_on(&mut self, cancel: &AtomicBool) -> Result<(), String> {
        let r = self.restart.as_ref().ok_or("cold starts need the local stack (the harness restarts wrangler dev)")?;
        let port = self.on.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        self.local[0].stop();
        let spec = ServerSpec {
            name: "cache-on",
            env: None,
            state: &r.state,
            log: &r.log,
            cpus: &r.cpus,
            port,
            migrate: false,
        };
        let mut server = LocalServer::start(&r.ws, &spec, &r.secrets, cancel).map_err(|e| e.to_string())?;
        let health = server.wait_ready(cancel).map_err(|e| e.to_string())?;
        check_mode(&health, "on", "cache-on", &server.url).map_err(|e| e.to_string())?;
        self.on = server.url.clone();
        self.local[0] = server;
        Ok(())
    }

    /// Why a local server is gone, if one is.
    fn dead_server(&mut self) -> Option<String> {
        self.local.iter_mut().find_map(|s| s.exited().map(|r| format!("{r}; its log: {}", s.log.display())))
    }
}

/// Starts the two local servers: migrated, healthy, their modes checked.
fn start_local(
    opts: &BenchOptions,
    dir: &Path,
    cancel: &AtomicBool,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    let ws = Workspace::find(&opts.root, opts.wrangler.clone())?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", logs.display())))?;
    println!("building the worker if needed (scripts/build-worker; log {})", logs.join("build.log").display());
    let mut build = std::process::Command::new("bash");
    build.arg("scripts/build-worker").current_dir(&ws.root);
    servers::run_logged(build, "the worker build (scripts/build-worker)", &logs.join("build.log"), cancel).map_err(
        |e| match e {
            BenchError::Setup(m) => BenchError::Setup(format!(
                "{m}\nIf a tool is missing (worker-build, wasm-bindgen, the wasm32 target), run scripts/setup."
            )),
            other => other,
        },
    )?;
    let secrets = Secrets::random();
    let server_cpus = match servers::cpu_split() {
        Some((harness_cpu, rest)) => match servers::pin_to(&[harness_cpu]) {
            Ok(()) => {
                notes.push(format!("the harness ran on CPU {harness_cpu}, the servers on CPUs {rest:?}"));
                rest
            }
            Err(e) => {
                notes.push(format!("CPUs not pinned: {e}"));
                Vec::new()
            }
        },
        None => {
            notes.push(format!(
                "harness and servers share the machine's {} CPU(s): too few to pin them apart without starving \
                 the servers; each run records the harness's CPU share and flags a client-bound run",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ));
            Vec::new()
        }
    };
    // Fresh state per run, beside the other wrangler state (not in the report).
    let stamp = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let state_root = ws.root.join(".wrangler/bench").join(&stamp);
    let state_dir = StateDir(state_root.clone());
    let kinds = [("cache-on", None, opts.port_on), ("cache-off", Some("cache-off"), opts.port_off)];
    let start = |(name, env, port): (&str, Option<&str>, Option<u16>)| {
        let state = state_root.join(name);
        let log = logs.join(format!("wrangler-{name}.log"));
        let spec = ServerSpec { name, env, state: &state, log: &log, cpus: &server_cpus, port, migrate: true };
        let server = LocalServer::start(&ws, &spec, &secrets, cancel)?;
        println!("{name}: starting wrangler dev on {} (log {})", server.url, log.display());
        Ok::<_, BenchError>(server)
    };
    let mut local = kinds.into_iter().map(start).collect::<Result<Vec<_>, _>>()?;
    let mut worker_version = None;
    for (i, expected) in ["on", "off"].into_iter().enumerate() {
        let mut health = local[i].wait_ready(cancel);
        // The port was free when picked, but something may have taken it before
        // wrangler bound it: start again on another.
        for _ in 0..2 {
            match &health {
                Err(BenchError::Server(m)) if m.to_ascii_lowercase().contains("address already in use") => {
                    let (name, env, _) = kinds[i];
                    println!("{name}: its port was taken; starting again on another");
                    local[i] = start((name, env, None))?;
                    health = local[i].wait_ready(cancel);
                }
                _ => break,
            }
        }
        let (server, health) = (&local[i], health?);
        let cache = check_mode(&health, expected, &server.name, &server.url)?;
        let layers = if cache.layers.is_empty() { "no layers".to_owned() } else { cache.layers.join(",") };
        println!("{}: ready on {} (cache {}: {layers})", server.name, server.url, cache.mode);
        worker_version = worker_version.or(health.version);
    }
    let restart = Restart {
        ws,
        state: state_root.join("cache-on"),
        log: logs.join("wrangler-cache-on-restarts.log"),
        cpus: server_cpus,
        secrets: secrets.clone(),
    };
    Ok(Targets {
        on: local[0].url.clone(),
        off: local[1].url.clone(),
        secret: Some(secrets.bench),
        local,
        state: Some(state_dir),
        worker_version,
        restart: Some(restart),
    })
}

/// The cache mode a target reports must be the one its arm stands for: a swapped
/// pair, or another server on the port, would turn the verdicts upside down.
fn check_mode(
    health: &servers::Health,
    expected: &str,
    name: &str,
    url: &str,
) -> Result<servers::HealthCache, BenchError> {
    let cache = health.cache.clone().ok_or_else(|| {
        BenchError::Server(format!(
            "{name} ({url}) does not report its cache mode in GET /health: is it the target worker?"
        ))
    })?;
    if cache.mode != expected {
        return Err(BenchError::Server(format!(
            "{name} ({url}) reports cache mode {:?}, expected {expected:?}: are the targets swapped, or is another \
             server on that port?",
            cache.mode
        )));
    }
    Ok(cache)
}

/// Resets the bench data and seeds `users` per seed on `target`, so both arms start
/// from the same state.
fn seed(
    client: &SetupClient,
    target: &str,
    secret: &str,
    users: &BTreeMap<u64, u32>,
    reset: bool,
) -> Result<(), String> {
    let base = target.trim_end_matches('/');
    let h = [("x-bench-secret", secret)];
    // Both routes work within a deployed Worker's per-invocation limits and say
    // when another call is needed; the bound only guards against a worker that
    // never says it is done.
    const MAX_CALLS: usize = 10_000;
    let refused = |route: &str, status: u16, body: String| match status {
        404 => format!("POST {base}{route}: 404: the worker has no BENCH_SECRET or it is not the one given"),
        _ => format!("POST {base}{route}: {status} {body}"),
    };
    if reset {
        for call in 0.. {
            let (status, body) = client.send(reqwest::Method::POST, &format!("{base}/__bench/reset"), &h, None)?;
            if status != 200 {
                return Err(refused("/__bench/reset", status, body));
            }
            let done = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["done"].as_bool());
            if done != Some(false) {
                break;
            }
            if call >= MAX_CALLS {
                return Err(format!("POST {base}/__bench/reset: not done after {MAX_CALLS} calls"));
            }
        }
    }
    for (seed, count) in users {
        let mut offset = 0u64;
        for _ in 0..MAX_CALLS {
            let body = serde_json::json!({ "users": count, "seed": seed, "offset": offset }).to_string();
            let (status, answer) =
                client.send(reqwest::Method::POST, &format!("{base}/__bench/seed"), &h, Some(body))?;
            if status != 200 {
                return Err(refused("/__bench/seed", status, answer));
            }
            match serde_json::from_str::<serde_json::Value>(&answer).ok().map(|v| v["next_offset"].as_u64()) {
                Some(Some(next)) if next > offset => offset = next,
                _ => break,
            }
        }
    }
    Ok(())
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

/// Runs the whole bench and writes its report into `reports/<timestamp>/`. The
/// servers it started are stopped before it returns, on every path.
pub fn run(
    opts: &BenchOptions,
    claims: &[Claim],
    cancel: &Arc<AtomicBool>,
) -> Result<(BenchSummary, PathBuf), BenchError> {
    let started = Instant::now();
    let started_at = result::rfc3339(SystemTime::now());
    let scenarios = load_scenarios(opts)?;
    let measurements = profiles::resolve(&opts.profiles)?;
    let local = opts.target_on.is_none() && opts.target.is_none();
    if !local && opts.bench_secret.is_none() && measurements.iter().any(Measurement::is_modelled) {
        return Err(BenchError::Setup(
            "--profile needs --bench-secret: the worker applies a profile chosen per request (x-bench-profile) only \
             with its BENCH_SECRET"
                .into(),
        ));
    }
    announce(&scenarios, opts, local, measurements.len(), strategy_count(opts));
    let dir = bench_dir(&opts.out)?;
    let mut notes = Vec::new();
    let mut targets = match (&opts.target_on, &opts.target_off, &opts.target) {
        (None, None, Some(one)) => deployed_one(one, opts.bench_secret.clone(), &mut notes)?,
        (Some(on), Some(off), None) => deployed(on, off, opts.bench_secret.clone(), &mut notes)?,
        (None, None, None) => match start_local(opts, &dir, cancel, &mut notes) {
            Ok(t) => t,
            Err(BenchError::Server(reason)) => {
                // Nothing was measured, but the report says why: CI and users look there.
                let summary = BenchSummary {
                    wall_s: started.elapsed().as_secs_f64(),
                    invalid_reasons: vec![format!("the local servers did not start: {reason}")],
                    notes,
                    ..BenchSummary::begin(started_at, true, opts.quick)
                };
                write_report(&summary, &dir)?;
                return Err(BenchError::Server(format!("{reason}\nreport: {}", dir.join("index.html").display())));
            }
            Err(e) => return Err(e),
        },
        _ => {
            return Err(BenchError::Setup(
                "give --target URL (one deployment), or both --target-on URL and --target-off URL, or none".into(),
            ))
        }
    };
    let seeding = targets.secret.is_some() && (local || !opts.no_seed);
    if !local && targets.secret.is_none() {
        notes.push(
            "no --bench-secret: nothing was seeded, no layer ablation, and scenarios with [users] were skipped \
             (their credentials derive from the secret)"
                .to_owned(),
        );
    }
    if let Some(secret) = &targets.secret {
        for t in [&targets.on, &targets.off] {
            profiles::check_target(t, secret, &measurements)?;
        }
    }
    let strategies =
        match (&targets.secret, opts.strategies.is_empty()) {
            (_, true) => Vec::new(),
            (Some(secret), false) => strategies::resolve(&targets.on, secret, &opts.strategies)?,
            (None, false) => return Err(BenchError::Setup(
                "--strategies needs --bench-secret: the worker switches strategy per request (x-bench-strategy) only \
                 with its BENCH_SECRET"
                    .into(),
            )),
        };
    let jobs = jobs(&scenarios, opts, &targets, &measurements, &strategies, &mut notes)?;
    let seed_users = if seeding { Some(users_per_seed(&scenarios, strategies.len())) } else { None };
    let ctx = JobContext { opts, claims, dir: &dir, cancel, local, seed_users };
    let (mut runs, invalid_reasons, staleness) = run_jobs(jobs, &ctx, &mut targets, &strategies, &measurements);
    summary::hold_to_control(&mut runs);
    let profile_names: Vec<String> = measurements.iter().filter_map(|m| m.profile().map(str::to_owned)).collect();
    let (profiles, figures) = profiles::sources(&profile_names);
    // Stop the servers before the report: nothing of theirs is needed now.
    for s in &mut targets.local {
        s.stop();
    }
    targets.state = None;
    let summary = BenchSummary {
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
        strategies,
        staleness,
        ..BenchSummary::begin(started_at, local, opts.quick)
    };
    write_report(&summary, &dir)?;
    Ok((summary, dir))
}

/// How many strategies `--strategies` names, for the plan printed before the
/// target is asked (`all`: every strategy this version of the worker has).
fn strategy_count(opts: &BenchOptions) -> usize {
    const WORKER_STRATEGIES: usize = 8;
    let names: Vec<&str> =
        opts.strategies.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.contains(&strategies::ALL) {
        WORKER_STRATEGIES
    } else {
        names.len()
    }
}

/// Prints the plan and its expected wall time before anything starts.
fn announce(scenarios: &[Scenario], opts: &BenchOptions, local: bool, measurements: usize, strategies: usize) {
    let (plan_text, estimate) =
        plan(scenarios, opts, local, local || opts.bench_secret.is_some(), measurements, strategies);
    println!("harness bench: {} run(s):\n{plan_text}", plan_text.lines().count());
    let budget = if strategies > 0 {
        format!("--strategies: every warm scenario runs {strategies} times")
    } else if measurements > 1 {
        format!("{measurements} measurements: each adds about as much as the first")
    } else {
        format!("the default run finishes in under {} minutes on a 2-core machine", DEFAULT_BUDGET.as_secs() / 60)
    };
    println!(
        "expected wall time: about {} ({}); {budget}",
        format_duration(Duration::from_secs(estimate.as_secs())),
        if opts.quick { "--quick" } else { "full" },
    );
}

/// Deployed workers: each must answer `/health` and, when it reports one, with
/// the cache mode it stands for.
fn deployed(on: &str, off: &str, secret: Option<String>, notes: &mut Vec<String>) -> Result<Targets, BenchError> {
    let mut targets = Targets {
        on: on.to_owned(),
        off: off.to_owned(),
        secret,
        local: Vec::new(),
        state: None,
        worker_version: None,
        restart: None,
    };
    let client = SetupClient::new();
    for (t, name, expected) in [(on, "cache-on", "on"), (off, "cache-off", "off")] {
        let h = servers::get_health(&client, t).map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
        if h.cache.is_some() {
            check_mode(&h, expected, name, t)?;
        } else {
            notes.push(format!("the {name} target does not report its cache mode in GET /health: not checked"));
        }
        targets.worker_version = targets.worker_version.take().or(h.version);
    }
    Ok(targets)
}

/// One deployed worker serving both arms: each request's cache is set with
/// `x-bench-cache`, so the arms differ in nothing else.
fn deployed_one(url: &str, secret: Option<String>, notes: &mut Vec<String>) -> Result<Targets, BenchError> {
    let secret = secret.ok_or_else(|| {
        BenchError::Setup(
            "--target needs --bench-secret: the arms are told apart by x-bench-cache, which the worker honours only \
             with its BENCH_SECRET"
                .into(),
        )
    })?;
    let h = servers::get_health(&SetupClient::new(), url)
        .map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
    notes.push(format!("one deployment ({url}) served both arms, the cache set per request with x-bench-cache"));
    Ok(Targets {
        on: url.to_owned(),
        off: url.to_owned(),
        secret: Some(secret),
        local: Vec::new(),
        state: None,
        worker_version: h.version,
        restart: None,
    })
}

/// Users each seed must provide: the largest count any scenario asks for, and
/// the staleness probes' users of `strategies` strategies.
fn users_per_seed(scenarios: &[Scenario], strategies: usize) -> BTreeMap<u64, u32> {
    let mut users: BTreeMap<u64, u32> = BTreeMap::new();
    for u in scenarios.iter().filter_map(|s| s.users.as_ref()) {
        let n = users.entry(u.seed).or_insert(0);
        *n = (*n).max(u.count);
    }
    if strategies > 0 {
        users.insert(staleness::PROBE_SEED, strategies as u32 * staleness::PROBES_PER_STRATEGY);
    }
    users
}

/// The A/Bs to run, under each measurement in turn (measured, then each latency
/// profile): every scenario (cache off vs on), then the ablation's layers, then
/// the A/A control. With the bench secret both servers serve both arms (the
/// arm's cache chosen per request with `x-bench-cache`), balanced per block of
/// pairs; without it each arm is tied to its server.
fn jobs<'a>(
    scenarios: &'a [Scenario],
    opts: &BenchOptions,
    targets: &Targets,
    measurements: &[Measurement],
    strategies: &[strategies::StrategyInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<AbJob<'a>>, BenchError> {
    let crossed = targets.secret.is_some() && targets.on != targets.off;
    if targets.secret.is_none() {
        notes.push(
            "without --bench-secret each arm is tied to its target (cache-off to one, cache-on to the other): a \
             difference between the two deployments reads as a cache effect, and there is no A/A control"
                .to_owned(),
        );
    } else if crossed {
        notes.push(
            "both servers served both arms: each request's cache was set with x-bench-cache, and within every \
             two pairs each arm went once to each server, so a difference between the servers cannot read as \
             a cache effect"
                .to_owned(),
        );
    }
    if !strategies.is_empty() {
        notes.push(format!(
            "--strategies: each scenario ran once per strategy ({}), each run an interleaved A/B of cache-off \
             against that strategy (both arms sending x-bench-strategy), the strategies in a rotated order per \
             scenario; KV was reset before each run, so every strategy started cold. Claims are judged on \
             the default strategy ({}) only",
            strategies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            strategies::DEFAULT
        ));
    }
    if measurements.iter().any(Measurement::is_modelled) {
        notes.push(
            "runs marked \"modelled: <profile>\" added that latency profile's delays to every KV and D1 operation \
             of both arms (x-bench-profile): a model of production built from the figures and sources listed \
             below, not a measurement; they are never compared with measured runs"
                .to_owned(),
        );
    }
    let mut jobs: Vec<AbJob> = Vec::new();
    for (i, m) in measurements.iter().enumerate() {
        // What is skipped is said once, not once per profile.
        let mut skipped = Vec::new();
        jobs.extend(jobs_under(scenarios, opts, targets, m, crossed, strategies, &mut skipped));
        if i == 0 {
            notes.extend(skipped);
        }
    }
    if jobs.is_empty() {
        return Err(BenchError::Setup(
            "nothing to run: every scenario needs seeded users; pass --bench-secret (the workers' BENCH_SECRET)".into(),
        ));
    }
    // Cold starts restart the cache-on server, which may come back on another
    // port: every run that addresses it by URL goes first.
    jobs.sort_by_key(|j| j.kind == JobKind::ColdStart);
    Ok(jobs)
}

/// The jobs of one measurement (see [`jobs`]).
fn jobs_under<'a>(
    scenarios: &'a [Scenario],
    opts: &BenchOptions,
    targets: &Targets,
    measurement: &Measurement,
    crossed: bool,
    strategies: &[strategies::StrategyInfo],
    skipped: &mut Vec<String>,
) -> Vec<AbJob<'a>> {
    let profile_header: Vec<(String, String)> =
        measurement.profile().map(|p| vec![("x-bench-profile".to_owned(), p.to_owned())]).unwrap_or_default();
    let pair_with = |a: (&str, &str), b: (&str, &str), strategy: Option<&str>| {
        let mut headers = profile_header.clone();
        headers.extend(strategy.map(|s| ("x-bench-strategy".to_owned(), s.to_owned())));
        match &targets.secret {
            Some(secret) => vec![
                ArmSpec::with_bench_cache(a.0, &targets.off, headers.clone(), secret, a.1),
                ArmSpec::with_bench_cache(b.0, &targets.on, headers, secret, b.1),
            ],
            None => vec![arm(a.0, &targets.off, Vec::new()), arm(b.0, &targets.on, Vec::new())],
        }
    };
    let pair = |a: (&str, &str), b: (&str, &str)| pair_with(a, b, None);
    let named = |name: &str| match measurement {
        Measurement::Measured => name.to_owned(),
        modelled => format!("{name} [{modelled}]"),
    };
    let job = |name: String, scenario: &'a Scenario, kind: JobKind<'a>, arms: Vec<ArmSpec>| AbJob {
        name,
        scenario,
        kind,
        arms,
        cross_servers: crossed,
        measurement: measurement.clone(),
        strategy: None,
    };
    let mut jobs = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        if s.users.is_some() && targets.secret.is_none() {
            skipped.push(format!("{}: skipped, it needs --bench-secret", s.name));
            continue;
        }
        let kind = if is_cold(s) { JobKind::ColdStart } else { JobKind::Scenario };
        if kind == JobKind::ColdStart && (targets.restart.is_none() || targets.secret.is_none()) {
            skipped.push(format!(
                "{}: skipped, cold starts need the local stack (the harness restarts wrangler dev for each sample)",
                s.name
            ));
            continue;
        }
        if kind == JobKind::Scenario && !strategies.is_empty() {
            for st in strategies::rotated(strategies, i) {
                let arms = pair_with(("cache-off", "off"), (&st.name, "on"), Some(&st.name));
                let mut j = job(named(&format!("{} · {}", s.name, st.name)), s, kind, arms);
                j.strategy = Some(st.name.clone());
                jobs.push(j);
            }
            continue;
        }
        jobs.push(job(named(&s.name), s, kind, pair(("cache-off", "off"), ("cache-on", "on"))));
    }
    match (ablation_scenario(scenarios, opts), &targets.secret) {
        (Some(s), Some(_)) => {
            for layer in LAYERS {
                let arms = pair(("off", "off"), (&format!("only {layer}"), layer));
                jobs.push(job(named(&format!("layer {layer}")), s, JobKind::Layer(layer), arms));
            }
            // The same arm on both sides, two instances, in the design of the
            // A/Bs (crossed when they are): what the bench reports when there is
            // nothing to find.
            let arms = pair(("cache-off", "off"), ("cache-off'", "off"));
            jobs.push(job(named("A/A control"), s, JobKind::Control, arms));
        }
        (Some(_), None) => {
            skipped.push("per-layer ablation skipped: it needs --bench-secret (x-bench-cache)".to_owned())
        }
        _ => {}
    }
    jobs
}

/// What every job of one bench shares.
struct JobContext<'a> {
    opts: &'a BenchOptions,
    claims: &'a [Claim],
    dir: &'a Path,
    cancel: &'a Arc<AtomicBool>,
    local: bool,
    /// Seed before each scenario run, with these users per seed.
    seed_users: Option<BTreeMap<u64, u32>>,
}

/// Runs the jobs in order until one cannot go on (Ctrl-C, a dead server, a
/// failed seeding); returns their summaries and why the bench is invalid.
fn run_jobs(
    jobs: Vec<AbJob>,
    ctx: &JobContext<'_>,
    targets: &mut Targets,
    strategies: &[strategies::StrategyInfo],
    measurements: &[Measurement],
) -> (Vec<AbSummary>, Vec<String>, Vec<staleness::Staleness>) {
    let (runs, mut invalid_reasons) = run_ab_jobs(jobs, ctx, targets);
    let mut probed = Vec::new();
    if strategies.is_empty() || !invalid_reasons.is_empty() || ctx.cancel.load(Ordering::Relaxed) {
        return (runs, invalid_reasons, probed);
    }
    let secret = targets.secret.clone().expect("strategies need the secret");
    for m in measurements {
        println!(
            "\n== staleness probes, {m}: {} strategies × {} writes, each read at two locations until fresh (at most {} s) ==",
            strategies.len(),
            staleness::PROBES_PER_STRATEGY,
            staleness::MAX_WAIT.as_secs()
        );
        let found = staleness::probe_all(&targets.on, &secret, strategies, m);
        for s in &found {
            println!("{}", ranking::staleness_line(s));
            invalid_reasons.extend(s.errors.iter().map(|e| format!("staleness probe of {} ({m}): {e}", s.strategy)));
        }
        probed.extend(found);
    }
    (runs, invalid_reasons, probed)
}

fn run_ab_jobs(jobs: Vec<AbJob>, ctx: &JobContext<'_>, targets: &mut Targets) -> (Vec<AbSummary>, Vec<String>) {
    let client = SetupClient::new();
    let mut invalid_reasons = Vec::new();
    let mut runs = Vec::new();
    let total = jobs.len();
    for (i, job) in jobs.into_iter().enumerate() {
        if ctx.cancel.load(Ordering::Relaxed) {
            invalid_reasons.push("interrupted (Ctrl-C): the runs after it did not happen".to_owned());
            break;
        }
        if let Some(dead) = targets.dead_server() {
            invalid_reasons.push(format!("{dead}; the runs from {} on did not happen", job.name));
            break;
        }
        println!(
            "\n== [{}/{total}] {} ({} vs {}) ==",
            i + 1,
            job.name,
            job.arms[0].label.as_deref().unwrap_or("a"),
            job.arms[1].label.as_deref().unwrap_or("b")
        );
        if let (Some(users), false) = (&ctx.seed_users, matches!(job.kind, JobKind::Layer(_))) {
            let secret = targets.secret.as_deref().expect("seeding needs the secret");
            let one = targets.on == targets.off;
            for t in [&targets.on, &targets.off].into_iter().take(if one { 1 } else { 2 }) {
                if let Err(e) = seed(&client, t, secret, users, ctx.local) {
                    invalid_reasons.push(format!("seeding before {} failed: {e}", job.name));
                }
            }
            if !invalid_reasons.is_empty() {
                break;
            }
        }
        let name = job.name.clone();
        let ran = match job.kind {
            JobKind::ColdStart => cold::run(job, ctx, targets),
            _ => run_ab(job, ctx.opts, ctx.claims, ctx.dir, targets.secret.as_deref(), ctx.cancel),
        };
        match ran {
            Ok(mut summary) => {
                let dead = targets.dead_server();
                if let Some(dead) = &dead {
                    summary.status = AbStatus::Invalid;
                    summary.invalid_reasons.push(format!("{dead} during this run"));
                }
                if !summary.status.is_valid() {
                    invalid_reasons.extend(summary.invalid_reasons.iter().map(|r| format!("{name}: {r}")));
                    if summary.status == AbStatus::Interrupted && summary.invalid_reasons.is_empty() {
                        invalid_reasons.push(format!("{name}: interrupted (Ctrl-C)"));
                    }
                }
                runs.push(summary);
                if dead.is_some() {
                    break;
                }
            }
            Err(e) => {
                let dead = targets.dead_server();
                invalid_reasons.push(format!("{name}: {}", dead.unwrap_or(e)));
                break;
            }
        }
    }
    (runs, invalid_reasons)
}

/// The bench's own report files (its terminal text is printed by the command).
fn write_report(summary: &BenchSummary, dir: &Path) -> Result<(), BenchError> {
    let to = crate::report::Destinations { dir: Some(dir), terminal: false };
    crate::report::export(&crate::report::Report::Bench(summary), to).map(drop).map_err(BenchError::Setup)
}
