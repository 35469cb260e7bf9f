//! One run: scenario → schedule → client → recorder → result file. The load runs
//! on one thread (a tokio current-thread runtime), so recording needs no locks and
//! the harness's CPU use per request is the figure the benchmark compares.
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
use std::time::{Duration, SystemTime};

use crate::client::{HttpClient, Request};
use crate::recorder;
use crate::result::{self, Machine, Measurement, ResultDoc, RunFiles};
use crate::scenario::Scenario;
use crate::users::Population;
use engine::Arm;
use finish::{ArmRecord, DocContext, Ending};

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
    /// Headers added to every request (e.g. `x-bench-cache: off`).
    pub extra_headers: Vec<(String, String)>,
}

impl ArmSpec {
    /// An arm of a one-target A/B: the target's cache set for each request by
    /// `x-bench-cache` (`on`, `off` or layers), which it honours only with its
    /// bench secret.
    pub fn with_bench_cache(
        label: &str,
        target: &str,
        mut extra_headers: Vec<(String, String)>,
        secret: &str,
        cache: &str,
    ) -> ArmSpec {
        extra_headers.push(("x-bench-secret".into(), secret.to_owned()));
        extra_headers.push(("x-bench-cache".into(), cache.to_owned()));
        ArmSpec { label: Some(label.to_owned()), target: target.to_owned(), extra_headers }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// One arm for `run`; two for `ab`, whose iterations alternate between them in
    /// pairs of random order under one schedule.
    pub arms: Vec<ArmSpec>,
    pub out_dir: PathBuf,
    /// Derives the seeded users' credentials (`{{user.*}}`).
    pub bench_secret: Option<String>,
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
    /// Set from outside (a signal handler) to stop the run as Ctrl-C would.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
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
    /// The histograms as recorded (the document holds them encoded).
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
    if opts.arms.is_empty() || opts.arms.len() > 2 {
        return Err(RunError::Setup(format!("a run has one or two arms, not {}", opts.arms.len())));
    }
    // Before anything is spent: results that cannot be written are no results.
    crate::outdir::check(&opts.out_dir).map_err(RunError::Setup)?;
    for arm in &opts.arms {
        preflight(&arm.target).await?;
    }
    let population = population(scenario, opts)?;
    let label = match opts.arms.as_slice() {
        [one] => one.label.clone(),
        _ => Some("ab".to_owned()),
    };
    let stem = opts.stem.clone().unwrap_or_else(|| stem_for(scenario, label.as_deref()));
    let files = RunFiles::new(&opts.out_dir, &stem);
    let crossed = opts.cross_servers && opts.arms.len() == 2;
    let client_of = |target: &str| {
        HttpClient::new(target, scenario.load.max_in_flight, scenario.load.timeout, opts.http_client)
            .map_err(RunError::Setup)
    };
    let mut arms = Vec::new();
    for (i, spec) in opts.arms.iter().enumerate() {
        let client = client_of(&spec.target)?;
        let info = target_info(&client, &spec.extra_headers).await;
        let mut record = ArmRecord::new(spec.clone(), client.kind, info);
        let other = if crossed {
            let other = &opts.arms[1 - i].target;
            record.servers = vec![spec.target.clone(), other.clone()];
            Some(client_of(other)?)
        } else {
            None
        };
        arms.push(Arm::new(client, other, record));
    }
    let ctx = DocContext {
        scenario,
        started_at: SystemTime::now(),
        machine: Machine::current(),
        git: result::git_revision(),
    };
    let recorded = engine::drive(scenario, opts, arms, population, &files, &ctx).await?;
    let ending = Ending {
        interrupted: recorded.interrupted,
        template_failures: recorded.template_failures,
        first_error: recorded.first_error,
    };
    let docs = finish::finish(&ctx, &recorded.arms, recorded.figures, &ending);
    finish::write_docs(&files.json, &docs)
        .map_err(|e| RunError::Setup(format!("cannot write {}: {e}", files.json.display())))?;
    let arms =
        recorded.arms.into_iter().zip(docs).map(|(arm, doc)| ArmOutcome { doc, series: arm.recorder.series }).collect();
    Ok(RunOutcome { arms, files })
}

/// The scenario's users, with credentials derived from the bench secret.
fn population(scenario: &Scenario, opts: &RunOptions) -> Result<Population, RunError> {
    match &scenario.users {
        None => Ok(Population::anonymous(scenario.steps.len(), opts.arms.len())),
        Some(u) => {
            let secret = opts.bench_secret.as_deref().ok_or_else(|| {
                RunError::Setup(format!(
                    "{} has [users]: pass --bench-secret (or BENCH_SECRET) so their credentials can be derived",
                    scenario.file.display()
                ))
            })?;
            Population::new(u, secret, scenario.steps.len(), opts.arms.len()).map_err(RunError::Setup)
        }
    }
}

fn stem_for(scenario: &Scenario, variant: Option<&str>) -> String {
    let clean =
        |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>();
    let ts = result::rfc3339(SystemTime::now()).replace([':', '.'], "-");
    match variant {
        Some(v) => format!("{}-{}-{ts}", clean(&scenario.name), clean(v)),
        None => format!("{}-{ts}", clean(&scenario.name)),
    }
}

/// Connects once to the target before any load, so an unreachable target is a
/// one-line error rather than a run full of connect failures.
async fn preflight(target: &str) -> Result<(), RunError> {
    let url = url::Url::parse(target).map_err(|e| RunError::Setup(format!("--target {target:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RunError::Setup(format!("--target must be http:// or https://, got {target:?}")));
    }
    let host = url.host_str().ok_or_else(|| RunError::Setup(format!("--target {target:?} has no host")))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(RunError::Unreachable(format!("cannot connect to {host}:{port}: {e}"))),
        Err(_) => Err(RunError::Unreachable(format!("no answer from {host}:{port} within 5 s"))),
    }
}

/// What a target's `GET /health` says about itself.
#[derive(Debug, Clone, Default)]
pub struct TargetInfo {
    pub version: Option<String>,
    /// `modelled: <profile>` when the target adds a latency profile's delays.
    pub measurement: Measurement,
    pub anonymous_user_write: Option<bool>,
}

impl TargetInfo {
    /// From the body of a `GET /health` (the target worker's shape; any other
    /// server's leaves everything unknown and the run counted as measured).
    pub fn from_health(body: &serde_json::Value) -> TargetInfo {
        let profile = &body["latency_profile"];
        let measurement = match (profile["modelled"].as_bool(), profile["name"].as_str()) {
            (Some(true), Some(name)) => Measurement::Modelled(name.to_owned()),
            _ => Measurement::Measured,
        };
        TargetInfo {
            version: body["version"].as_str().map(str::to_owned),
            measurement,
            anonymous_user_write: body["anonymous_user_write"].as_bool(),
        }
    }
}

/// Asks the target's `GET /health`, with the arm's headers (a profile chosen per
/// request applies to it too), what it is; any other answer, or none within 2 s,
/// leaves it unknown.
async fn target_info(client: &HttpClient, headers: &[(String, String)]) -> TargetInfo {
    let req = Request { method: "GET", path: "/health", headers, body: None, keep_body: true };
    let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(2), client.send(req)).await else {
        return TargetInfo::default();
    };
    match serde_json::from_slice::<serde_json::Value>(reply.body.as_deref().unwrap_or_default()) {
        Ok(body) if reply.status == 200 => TargetInfo::from_health(&body),
        _ => TargetInfo::default(),
    }
}
