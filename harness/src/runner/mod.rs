//! One run: scenario → schedule → client → recorder → result file. The load runs
//! on one thread per part (a tokio current-thread runtime each, `--threads N`),
//! so recording needs no locks; each thread sends its shard of the schedule with
//! its own connections and recorder, and their records are merged at the end as
//! shards of several machines are (`merge::merge_concurrent`), then judged once.
//!
//! - `engine.rs` drives the load and records it (drivers, the loop, intervals);
//! - `iteration.rs` is one iteration (arm and user, requests, read-backs);
//! - `writer.rs` encodes and writes the interval log and snapshots on its own thread;
//! - `finish.rs` judges what was recorded (validity, thresholds) and assembles the
//!   result documents, from plain data.

mod engine;
pub mod finish;
mod iteration;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::answers::AnswerBook;
use crate::client::HttpClient;
use crate::cpu;
use crate::recorder;
use crate::result::{self, Machine, ResultDoc, RunFigures, RunFiles};
use crate::scenario::Scenario;
use crate::shard::Shard;
use crate::target::{Target, TargetChoice, TargetInfo};
use crate::users::Population;
use engine::Arm;
use finish::{ArmRecord, DocContext, Ending, Judging};
use writer::Writer;

/// A send more than this behind its intended time counts as late (ARCHITECTURE.md,
/// "Measurement").
pub const LATE: Duration = Duration::from_millis(1);
/// Above this share of sends late (beyond [`LATE`]) a run carries a warning;
/// above its scenario's `max_late_share` (default 25 %) it is invalid: the
/// harness did not keep to its schedule. (On a 2-core machine that also runs two
/// local workers, 5–22 % of sends are more than 1 ms late: the harness's thread
/// waits for a core.)
pub const WARN_LATE_SHARE: f64 = 0.05;
/// A run whose achieved rate is this much below its target is invalid.
pub const MAX_RATE_SHORTFALL: f64 = 0.02;
/// Above this share of one core the harness may have been the bottleneck.
pub const CLIENT_BOUND_CPU_SHARE: f64 = 0.8;

/// One side of a run: where its requests go and what they carry.
#[derive(Debug, Clone)]
pub struct ArmSpec {
    /// A label for the result (e.g. `cache-on`).
    pub label: Option<String>,
    /// Base URL requests are sent to (scheme, host, port, optional path prefix).
    pub target: String,
    /// Headers added to every request (e.g. a cache switch).
    pub extra_headers: Vec<(String, String)>,
}

impl ArmSpec {
    /// An arm of a one-target A/B: the target's cache set for each request as
    /// the target switches it (this project's worker: `x-bench-cache`, honoured
    /// only with its bench secret).
    pub fn with_cache(
        label: &str,
        url: &str,
        mut extra_headers: Vec<(String, String)>,
        target: &dyn Target,
        secret: &str,
        cache: &str,
    ) -> Result<ArmSpec, String> {
        extra_headers.extend(target.cache_switch(secret, cache)?);
        Ok(ArmSpec { label: Some(label.to_owned()), target: url.to_owned(), extra_headers })
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// One arm for `run`; two for `ab`, whose iterations alternate between them in
    /// pairs of random order under one schedule; more (a head-to-head of several
    /// strategies, an overhead's three arms) in sets of one iteration per arm.
    pub arms: Vec<ArmSpec>,
    pub out_dir: PathBuf,
    /// The target's bench secret; derives the seeded users' credentials
    /// (`{{user.*}}`) when there is no `users_secret`.
    pub bench_secret: Option<String>,
    /// Derives the users' credentials on a target without a bench secret
    /// (`--users-secret`, a recipe's).
    pub users_secret: Option<String>,
    pub progress: bool,
    /// File name stem of the result files; derived from the scenario when `None`.
    pub stem: Option<String>,
    /// Stop after this long even if the scenario runs longer (tests, smoke runs).
    pub max_duration: Option<Duration>,
    pub http_client: crate::client::ClientKind,
    /// Two arms on two servers: each arm's iterations go to both servers, balanced
    /// in every block of two pairs (one pair crossed, one not, in random order), so
    /// a difference between the servers cannot read as a difference between arms.
    pub cross_servers: bool,
    /// A second server of each arm (A's, B's), for arms that are two builds and
    /// cannot serve each other's requests (`harness gate`): each arm's iterations
    /// go to both of its servers, balanced in every block of two pairs, so one
    /// process's speed cannot read as a difference between the builds.
    pub twins: Option<[String; 2]>,
    /// Set from outside (a signal handler) to stop the run as Ctrl-C would.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Sending threads, each with its shard of this process's schedule (at least 1).
    pub threads: u32,
    /// The part of the schedule this process sends (`--shard I/N`).
    pub shard: crate::shard::Shard,
    /// Where live figures go for a Prometheus scrape (`--metrics-listen`).
    pub live: Option<crate::metrics::live::Board>,
    /// How https targets are trusted (`--ca-cert`, `--insecure`).
    pub tls: crate::client::TlsOptions,
    /// Begin the schedule when the wall clock next reaches a whole multiple of
    /// this (`--align-start`): shards started on several machines within one such
    /// period begin together.
    pub align_start: Option<Duration>,
    /// What the targets are: what is asked of them before the run, and what
    /// their results and reports say they are.
    pub target: Arc<dyn Target>,
}

impl RunOptions {
    /// One thread, the whole schedule, no extras: what tests and the local bench use.
    pub fn new(arms: Vec<ArmSpec>, out_dir: PathBuf) -> RunOptions {
        RunOptions {
            arms,
            out_dir,
            bench_secret: None,
            users_secret: None,
            progress: false,
            stem: None,
            max_duration: None,
            http_client: crate::client::ClientKind::Auto,
            cross_servers: false,
            twins: None,
            cancel: None,
            threads: 1,
            shard: crate::shard::Shard::WHOLE,
            live: None,
            tls: crate::client::TlsOptions::default(),
            align_start: None,
            target: TargetChoice::Auto.target(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("target unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Setup(String),
}

pub struct ArmOutcome {
    pub doc: ResultDoc,
    /// The histograms as recorded (the document holds them encoded); empty when
    /// several threads recorded (the document holds their sum).
    pub series: std::collections::BTreeMap<String, recorder::SeriesStats>,
}

pub struct RunOutcome {
    /// One per arm, in the order of [`RunOptions::arms`].
    pub arms: Vec<ArmOutcome>,
    pub files: RunFiles,
}

impl RunOutcome {
    /// The result of the first (for `run`, the only) arm.
    pub fn doc(&self) -> &ResultDoc {
        &self.arms[0].doc
    }
}

/// Runs `scenario` against `opts.target` and writes its result files.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> Result<RunOutcome, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Setup(format!("cannot start the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_async(scenario, opts))
}

async fn run_async(scenario: &Scenario, opts: &RunOptions) -> Result<RunOutcome, RunError> {
    if let crate::scenario::Executor::ColdStart { .. } = scenario.load.executor {
        return Err(RunError::Setup(format!(
            "{}: executor \"cold-start\" restarts the target's runtime before every sample, which only \
             `harness bench` can do (it runs the local stack itself): run `harness bench {}`",
            scenario.file.display(),
            scenario.file.display()
        )));
    }
    check_arms(opts)?;
    // Before anything is spent: results that cannot be written are no results.
    crate::outdir::check(&opts.out_dir).map_err(RunError::Setup)?;
    for arm in &opts.arms {
        preflight(&arm.target, &opts.tls).await?;
    }
    let population = population(scenario, opts)?;
    let label = match opts.arms.as_slice() {
        [one] => one.label.clone(),
        [_, _] => Some("ab".to_owned()),
        more => Some(format!("{}-arms", more.len())),
    };
    let stem = opts.stem.clone().unwrap_or_else(|| stem_for(scenario, label.as_deref(), opts.shard));
    let files = RunFiles::new(&opts.out_dir, &stem);
    let mut arms = Vec::new();
    let mut infos = Vec::new();
    for (i, spec) in opts.arms.iter().enumerate() {
        // The arm's own connection asks; it then carries the run's first requests.
        let mut arm = arm_for(scenario, opts, i, spec, &TargetInfo::default())?;
        let info = crate::target::describe(opts.target.as_ref(), &arm.client, &spec.extra_headers)
            .await
            .map_err(|e| RunError::Setup(format!("{}: {e}", spec.target)))?;
        arm.record.get_mut().target = info.clone();
        infos.push(info);
        arms.push(arm);
    }
    let (arms, set_up) = engine::set_up(scenario, opts, arms, population).await?;
    if let Some(period) = opts.align_start {
        tokio::time::sleep(until_aligned(SystemTime::now(), period)).await;
    }
    // Every part counts its schedule from one instant, a moment after the threads start.
    let lead = if opts.threads > 1 { Duration::from_millis(50) } else { Duration::ZERO };
    let t0 = Instant::now() + lead;
    let ctx = DocContext {
        scenario,
        started_at: SystemTime::now(),
        measure_start: SystemTime::now() + lead + scenario.load.warmup,
        machine: Machine::current(),
        git: result::git_revision(),
        shard: opts.shard,
        threads: opts.threads.max(1),
    };
    let writer = Writer::start(&files, &ctx, opts.threads.max(1) as usize).map_err(RunError::Setup)?;
    let locks = engine::UserLocks::default();
    // An A/B's two answers of each pair are compared, whatever the target. A
    // run of more arms does not compare (its arms' answers are each compared
    // with a reference in their own A/Bs).
    let answers = (opts.arms.len() == 2).then(|| AnswerBook::new(scenario));
    let usage0 = cpu::usage();
    let wall0 = Instant::now();
    let parts = Parts { infos: &infos, t0, writer: &writer, stem: &stem, locks: &locks, answers: answers.as_ref() };
    let recorded = if opts.threads <= 1 {
        let part = part(opts, opts.shard, 0, &parts);
        vec![engine::drive(scenario, opts, arms, set_up, part).await?]
    } else {
        drop(arms);
        run_threads(scenario, opts, set_up, &parts)?
    };
    writer.finish();
    let mut docs = judged_docs(&ctx, opts, &recorded, usage0, wall0)?;
    if let Some(book) = &answers {
        let answers = book.finish();
        for d in &mut docs {
            d.answers = Some(answers.clone());
        }
    }
    finish::write_docs(&files.json, &docs)
        .map_err(|e| RunError::Setup(format!("cannot write {}: {e}", files.json.display())))?;
    let mut series = recorded.into_iter().map(|r| r.arms).collect::<Vec<_>>();
    let first = series.swap_remove(0);
    let arms = docs
        .into_iter()
        .zip(first)
        .map(|(doc, arm)| ArmOutcome {
            doc,
            series: if opts.threads > 1 { Default::default() } else { arm.recorder.series },
        })
        .collect();
    Ok(RunOutcome { arms, files })
}

/// The run's documents, one per arm: every part's records merged, with the
/// process's CPU figures when threads shared it, judged once.
fn judged_docs(
    ctx: &DocContext<'_>,
    opts: &RunOptions,
    recorded: &[engine::Recorded],
    usage0: cpu::Usage,
    wall0: Instant,
) -> Result<Vec<ResultDoc>, RunError> {
    let ending = Ending {
        interrupted: recorded.iter().any(|r| r.interrupted),
        template_failures: recorded.iter().map(|r| r.template_failures).max().unwrap_or(0),
        first_error: recorded.iter().find_map(|r| r.first_error.clone()),
    };
    let parts: Vec<(&[finish::ArmRecord], &RunFigures)> =
        recorded.iter().map(|r| (r.arms.as_slice(), &r.figures)).collect();
    let mut docs = ctx.documents(&parts, true).map_err(RunError::Setup)?;
    if opts.threads > 1 {
        // Each thread measured the process's CPU: the process's figures, once.
        let usage = cpu::usage();
        let cpu = usage.cpu.saturating_sub(usage0.cpu).as_secs_f64();
        let requests: u64 = recorded.iter().map(|r| r.figures.requests).sum();
        for d in &mut docs {
            d.run.client_cpu_share = cpu / wall0.elapsed().as_secs_f64().max(1e-9);
            d.run.client_cpu_us_per_request = if requests > 0 { cpu * 1e6 / requests as f64 } else { 0.0 };
            d.run.client_max_rss_kib = usage.max_rss_kib;
        }
    }
    Ok(finish::judge(docs, &Judging::of(ctx.scenario, opts.threads), &ending))
}

/// A run has at least one arm; more than two are interleaved in sets on their
/// own servers (crossing and twins pair two arms' servers, so they take two).
fn check_arms(opts: &RunOptions) -> Result<(), RunError> {
    match opts.arms.len() {
        0 => Err(RunError::Setup("a run needs at least one arm".into())),
        n if n > 2 && (opts.cross_servers || opts.twins.is_some()) => Err(RunError::Setup(format!(
            "a run of {n} arms cannot cross servers or use twins: those balance two arms over two servers; \
             give every arm the same target (a per-request switch), or run the arms two at a time"
        ))),
        n if n > MAX_ARMS => Err(RunError::Setup(format!(
            "a run of {n} arms: at most {MAX_ARMS} are interleaved in one run (each set of {n} iterations \
             shares one draw, so a set spans {n} sends)"
        ))),
        _ => Ok(()),
    }
}

/// The most arms one run interleaves.
pub const MAX_ARMS: usize = 8;

/// How long from `now` until the wall clock reaches the next whole multiple of `period`.
fn until_aligned(now: SystemTime, period: Duration) -> Duration {
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let period = period.as_nanos().max(1);
    Duration::from_nanos(((period - since_epoch % period) % period) as u64)
}

/// The connections of one arm (and, when the arms cross servers, to the other's;
/// with twins, to its own second server).
fn arm_for(
    scenario: &Scenario,
    opts: &RunOptions,
    i: usize,
    spec: &ArmSpec,
    info: &TargetInfo,
) -> Result<Arm, RunError> {
    let client = client_of(scenario, opts, &spec.target)?;
    let mut record = ArmRecord::new(spec.clone(), client.kind, info.clone());
    let other = match (&opts.twins, opts.cross_servers && opts.arms.len() == 2) {
        (Some(twins), _) if opts.arms.len() == 2 => Some(&twins[i]),
        (_, true) => Some(&opts.arms[1 - i].target),
        _ => None,
    };
    let other = match other {
        Some(other) => {
            record.servers = vec![spec.target.clone(), other.clone()];
            Some(client_of(scenario, opts, other)?)
        }
        None => None,
    };
    Ok(Arm::new(client, other, record))
}

fn client_of(scenario: &Scenario, opts: &RunOptions, target: &str) -> Result<HttpClient, RunError> {
    // Each thread keeps its share of the scenario's connections.
    let connections = opts.shard.share(scenario.load.max_in_flight as u64).max(1) as usize;
    let per_thread = (connections / opts.threads.max(1) as usize).max(1);
    HttpClient::new(target, per_thread, scenario.load.timeout, opts.http_client, &opts.tls).map_err(RunError::Setup)
}

fn part(opts: &RunOptions, shard: Shard, index: usize, parts: &Parts<'_>) -> engine::Part {
    engine::Part {
        shard,
        t0: parts.t0,
        writer: parts.writer.handle(index),
        progress: index == 0,
        live: opts.live.as_ref().map(|board| board.slot(parts.stem, index)),
        write_locks: parts.locks.clone(),
        answers: parts.answers.cloned(),
    }
}

/// What every thread of a run shares.
struct Parts<'a> {
    infos: &'a [TargetInfo],
    t0: Instant,
    writer: &'a Writer,
    stem: &'a str,
    locks: &'a engine::UserLocks,
    answers: Option<&'a AnswerBook>,
}

/// Runs the process's shard as `opts.threads` parts, one per thread, each with its
/// own runtime, connections and recorder, and the users as set up.
fn run_threads(
    scenario: &Scenario,
    opts: &RunOptions,
    set_up: engine::SetUp,
    shared: &Parts<'_>,
) -> Result<Vec<engine::Recorded>, RunError> {
    let infos = shared.infos;
    let shards = opts.shard.split(opts.threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(index, &shard)| {
                let set_up = engine::SetUp {
                    population: set_up.population.clone(),
                    first_error: set_up.first_error.clone(),
                    template_failures: set_up.template_failures,
                };
                let part = part(opts, shard, index, shared);
                std::thread::Builder::new()
                    .name(format!("harness-send-{index}"))
                    .spawn_scoped(scope, move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| RunError::Setup(format!("cannot start the runtime: {e}")))?;
                        let local = tokio::task::LocalSet::new();
                        local.block_on(&rt, async {
                            let arms = opts
                                .arms
                                .iter()
                                .enumerate()
                                .map(|(i, spec)| arm_for(scenario, opts, i, spec, &infos[i]))
                                .collect::<Result<Vec<_>, _>>()?;
                            engine::drive(scenario, opts, arms, set_up, part).await
                        })
                    })
                    .map_err(|e| RunError::Setup(format!("cannot start a sending thread: {e}")))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h?.join().map_err(|_| RunError::Setup("a sending thread panicked".into()))?)
            .collect()
    })
}

/// The scenario's users, with credentials derived from the bench secret.
fn population(scenario: &Scenario, opts: &RunOptions) -> Result<Population, RunError> {
    match &scenario.users {
        None => Ok(Population::anonymous(scenario.steps.len(), opts.arms.len())),
        Some(u) => {
            let secret = opts.users_secret.as_deref().or(opts.bench_secret.as_deref()).ok_or_else(|| {
                RunError::Setup(format!(
                    "{} has [users]: pass --users-secret (the secret the users were exported with by `harness                      users`) or --bench-secret (this project's worker) so their credentials can be derived",
                    scenario.file.display()
                ))
            })?;
            Population::new(u, secret, scenario.steps.len(), opts.arms.len()).map_err(RunError::Setup)
        }
    }
}

fn stem_for(scenario: &Scenario, variant: Option<&str>, shard: Shard) -> String {
    let clean =
        |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>();
    let ts = result::rfc3339(SystemTime::now()).replace([':', '.'], "-");
    // Shards of one run write side by side (a shared volume): the index keeps them apart.
    let shard = if shard.is_whole() { String::new() } else { format!("-shard{}of{}", shard.index, shard.count) };
    match variant {
        Some(v) => format!("{}-{}{shard}-{ts}", clean(&scenario.name), clean(v)),
        None => format!("{}{shard}-{ts}", clean(&scenario.name)),
    }
}

/// Connects once to the target before any load (and, for https://, completes a
/// TLS handshake), so an unreachable or untrusted target is a one-line error
/// rather than a run full of failed requests.
async fn preflight(target: &str, tls: &crate::client::TlsOptions) -> Result<(), RunError> {
    let url = url::Url::parse(target).map_err(|e| RunError::Setup(format!("--target {target:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RunError::Setup(format!("--target must be http:// or https://, got {target:?}")));
    }
    let host = url.host_str().ok_or_else(|| RunError::Setup(format!("--target {target:?} has no host")))?.to_owned();
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((bare.as_str(), port));
    let stream = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(RunError::Unreachable(format!("cannot connect to {host}:{port}: {e}"))),
        Err(_) => return Err(RunError::Unreachable(format!("no answer from {host}:{port} within 5 s"))),
    };
    if url.scheme() != "https" {
        return Ok(());
    }
    let config = tls.config().map_err(RunError::Setup)?;
    let name = rustls::pki_types::ServerName::try_from(bare.clone())
        .map_err(|e| RunError::Setup(format!("--target {target:?}: {bare:?} is no TLS server name: {e}")))?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, stream);
    match tokio::time::timeout(Duration::from_secs(5), handshake).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let cause = crate::client::tls::tls_cause(&e).unwrap_or_else(|| e.to_string());
            Err(RunError::Unreachable(format!(
                "TLS handshake with {host}:{port} failed: {cause}; {}",
                crate::client::tls::advice(&cause)
            )))
        }
        Err(_) => Err(RunError::Unreachable(format!(
            "TLS handshake with {host}:{port}: no answer within 5 s (is it an https:// port?)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_starts_wait_for_the_next_multiple() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(until_aligned(at(10_300), Duration::from_secs(10)), Duration::from_millis(9_700));
        assert_eq!(until_aligned(at(20_000), Duration::from_secs(10)), Duration::ZERO);
    }
}
