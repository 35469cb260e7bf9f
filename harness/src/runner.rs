//! One run: scenario → schedule → client → recorder → result file. The load runs
//! on one thread (a tokio current-thread runtime), so recording needs no locks and
//! the harness's CPU use per request is the figure the benchmark compares.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::weighted::WeightedIndex;
use rand_distr::Distribution;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{ErrorKind, HttpClient, Request};
use crate::cpu;
use crate::recorder::{self, Recorder, Sample};
use crate::result::{self, Machine, Metadata, ResultDoc, RunFigures, RunFiles, SeriesDoc, Status};
use crate::scenario::template::{Values, Var};
use crate::scenario::{Executor, Expect, Flow, List, RequestSpec, Scenario, READ_BACK_TAG};
use crate::schedule::ArrivalSchedule;
use crate::thresholds::{Figures, Verdict};
use crate::users::Population;

/// A send more than this behind its intended time counts as late (DESIGN.md §3.3).
pub const LATE: Duration = Duration::from_millis(1);
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

/// Schedule-level counts, shared by the arms.
#[derive(Default)]
struct Counters {
    scheduled: u64,
    started: u64,
    dropped: u64,
    late: u64,
    requests: u64,
    template_failures: u64,
}

struct Arm {
    spec: ArmSpec,
    client: HttpClient,
    /// From the target's `GET /health`, when it answers with a `version`.
    worker_version: Option<String>,
    recorder: RefCell<Recorder>,
    intervals: RefCell<Vec<recorder::IntervalSummary>>,
    requests: Cell<u64>,
    warmup_requests: Cell<u64>,
}

/// What an iteration draws before it starts: its user, its step (mix flow), the
/// seed of its random values and its number. In an A/B run both iterations of a
/// pair replay one draw, so the arms see the same users, steps and bodies.
#[derive(Debug, Clone, Copy)]
struct Draw {
    user: usize,
    mix_choice: Option<usize>,
    seed: u64,
    iteration: u64,
}

/// Which arm iteration `k` goes to: pairs (2j, 2j+1) go to both arms, in an order
/// drawn at random per pair, so that drift and noise hit both arms alike; the pair
/// shares one [`Draw`].
struct ArmAlternator {
    arms: usize,
    k: u64,
    swap: bool,
    draw: Option<Draw>,
}

impl ArmAlternator {
    fn new(arms: usize) -> ArmAlternator {
        ArmAlternator { arms, k: 0, swap: false, draw: None }
    }

    /// The arm of the next iteration, and its draw (made by `fresh` once per pair).
    fn next(&mut self, rng: &mut SmallRng, fresh: impl FnOnce(&mut SmallRng) -> Draw) -> (usize, Draw) {
        if self.arms < 2 {
            return (0, fresh(rng));
        }
        let first = self.k.is_multiple_of(2);
        if first {
            self.swap = rng.random();
            self.draw = Some(fresh(rng));
        }
        let arm = ((self.k % 2) as usize) ^ usize::from(self.swap);
        self.k += 1;
        let draw =
            if first { self.draw.expect("set above") } else { self.draw.take().expect("set by the pair's first") };
        (arm, draw)
    }
}

struct Shared {
    scenario: Scenario,
    arms: Vec<Arm>,
    population: RefCell<Population>,
    rng: RefCell<SmallRng>,
    counters: RefCell<Counters>,
    /// Mix flow: the weighted choice among the steps that are not `once_per_user`,
    /// and the step index of each choice.
    mix: Option<(WeightedIndex<f64>, Vec<usize>)>,
    /// Per step, the series its requests are recorded in.
    step_series: Vec<recorder::StepSeries>,
    /// Per step, the series of its read-back (if it has one).
    read_back_series: Vec<Option<recorder::StepSeries>>,
    /// Held from a write through its read-back: two writes of one user must not
    /// overlap, or a read-back could see the other write and be called stale.
    write_locks: UserLocks,
    /// Held while a user's `once_per_user` steps run.
    once_locks: UserLocks,
    has_once: bool,
    alternator: RefCell<ArmAlternator>,
    measure_start: Instant,
    measure_end: Instant,
    stop: Cell<bool>,
    iteration: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

/// One async lock per user, made when first asked for.
#[derive(Default)]
struct UserLocks(RefCell<std::collections::HashMap<usize, Rc<tokio::sync::Mutex<()>>>>);

impl UserLocks {
    fn of(&self, user: usize) -> Rc<tokio::sync::Mutex<()>> {
        Rc::clone(self.0.borrow_mut().entry(user).or_default())
    }
}

/// What templates read during one iteration.
struct StepValues<'a> {
    population: &'a Population,
    lists: &'a [List],
    user: usize,
    iteration: u64,
    rng: &'a mut SmallRng,
    /// Per list, the element drawn for this iteration.
    picks: &'a mut [Option<usize>],
}

/// A stable element index for `user` in list `list` (splitmix64 of both).
fn per_user_index(user: usize, list: usize, len: usize) -> usize {
    let mut z = (user as u64) ^ ((list as u64) << 40) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % len as u64) as usize
}

impl Values for StepValues<'_> {
    fn user_field(&self, var: &Var) -> Option<String> {
        let u = self.population.user(self.user)?;
        Some(match var {
            Var::UserId => u.user_id.clone(),
            Var::UserSession => u.session_id.clone(),
            Var::UserApiKey => u.api_key.clone(),
            Var::UserEmail => u.email.clone(),
            Var::UserName => u.name.clone(),
            Var::UserIndex => u.index.to_string(),
            _ => return None,
        })
    }
    fn extracted(&self, name: &str) -> Option<String> {
        self.population.extracted(self.user, name).cloned()
    }
    fn iteration(&self) -> u64 {
        self.iteration
    }
    fn random_u64(&mut self) -> u64 {
        self.rng.random()
    }
    fn list_item(&mut self, name: &str) -> Option<String> {
        let i = self.lists.iter().position(|l| l.name == name)?;
        let list = &self.lists[i];
        let index = if list.per_user {
            per_user_index(self.user, i, list.values.len())
        } else {
            *self.picks[i].get_or_insert_with(|| self.rng.random_range(0..list.values.len()))
        };
        list.values.get(index).cloned()
    }
}

fn json_pointer_text(body: &[u8], pointer: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A request as sent, and the body text its expectation looks for.
struct Rendered {
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    needle: Option<String>,
}

fn render(request: &RequestSpec, expect: &Expect, values: &mut StepValues) -> Result<Rendered, String> {
    Ok(Rendered {
        path: request.path.render(values)?,
        headers: request
            .headers
            .iter()
            .map(|(k, t)| t.render(values).map(|v| (k.clone(), v)))
            .collect::<Result<Vec<_>, _>>()?,
        body: request.body.as_ref().map(|b| b.render(values)).transpose()?,
        needle: expect.body_contains.as_ref().map(|b| b.render(values)).transpose()?,
    })
}

/// One request of an iteration: what it is and where it is recorded.
struct Call<'a> {
    request: &'a RequestSpec,
    expect: &'a Expect,
    series: &'a recorder::StepSeries,
    /// The body is needed (for extraction) even without a body expectation.
    keep_body: bool,
    /// A read-back: a reply that fails its expectation is a stale read.
    read_back: bool,
}

/// Sends and records one request: the reply and whether it met its expectation,
/// or `Err` when it failed at the transport.
async fn exchange(
    shared: &Shared,
    arm: &Arm,
    call: Call<'_>,
    r: Rendered,
    intended: Instant,
    measured: bool,
) -> Result<(crate::client::Reply, bool), ()> {
    let Call { request, expect, series, keep_body, read_back } = call;
    let mut headers = r.headers;
    headers.extend(arm.spec.extra_headers.iter().cloned());
    let sent = Instant::now();
    let keep_body = keep_body || r.needle.is_some();
    let result = arm
        .client
        .send(Request { method: &request.method, path: &r.path, headers: &headers, body: r.body, keep_body })
        .await;
    let done = Instant::now();
    let ok = match &result {
        Ok(reply) => {
            let body_ok = match (&r.needle, &reply.body) {
                (Some(needle), Some(b)) => String::from_utf8_lossy(b).contains(needle.as_str()),
                (Some(_), None) => false,
                _ => true,
            };
            expect.status_ok(reply.status) && body_ok
        }
        Err(_) => false,
    };
    shared.counters.borrow_mut().requests += 1;
    arm.requests.set(arm.requests.get() + 1);
    if !measured {
        arm.warmup_requests.set(arm.warmup_requests.get() + 1);
    }
    if measured {
        if let Err(f) = &result {
            shared
                .first_error
                .borrow_mut()
                .get_or_insert_with(|| format!("{} {}: {}", request.method, r.path, f.message));
        }
        arm.recorder.borrow_mut().record(&Sample {
            series,
            corrected_us: done.saturating_duration_since(intended).as_micros() as u64,
            raw_us: done.saturating_duration_since(sent).as_micros() as u64,
            result: result.as_ref(),
            ok,
            stale: read_back && result.is_ok() && !ok,
        });
    }
    result.map(|reply| (reply, ok)).map_err(|_| ())
}

/// Runs one iteration: one user, its steps. `intended` is when it was meant to
/// start; `measured` says whether it falls in the measured part.
async fn run_iteration(shared: Rc<Shared>, mut intended: Instant, measured: bool) {
    let sc = &shared.scenario;
    let (arm, draw) = {
        let mut rng = shared.rng.borrow_mut();
        let fresh = |rng: &mut SmallRng| {
            let iteration = shared.iteration.get();
            shared.iteration.set(iteration + 1);
            Draw {
                user: shared.population.borrow_mut().pick(rng),
                mix_choice: shared.mix.as_ref().map(|(mix, index)| index[mix.sample(rng)]),
                seed: rng.random(),
                iteration,
            }
        };
        let (arm, draw) = shared.alternator.borrow_mut().next(&mut rng, fresh);
        (&shared.arms[arm], draw)
    };
    let user = draw.user;
    let mut rng = SmallRng::seed_from_u64(draw.seed);
    let mut picks = vec![None; sc.lists.len()];
    // `once_per_user` steps run first, the first time the user is picked (a login,
    // a token); then the iteration's own steps.
    // While one iteration runs them, the user's other iterations wait: they need
    // what those steps extract (the token), as the same client would; the wait is
    // part of their latency (measured from the intended start).
    let once_lock = shared.has_once.then(|| shared.once_locks.of(user));
    let mut once_guard = match &once_lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let mut steps: Vec<usize> = (0..sc.steps.len())
        .filter(|&s| sc.steps[s].once_per_user && shared.population.borrow_mut().claim_once(user, s))
        .collect();
    let once_steps = steps.len();
    match (sc.flow, draw.mix_choice) {
        (Flow::Mix, Some(choice)) => steps.push(choice),
        _ => steps.extend((0..sc.steps.len()).filter(|&s| !sc.steps[s].once_per_user)),
    }
    for (i, s) in steps.into_iter().enumerate() {
        if i == once_steps {
            drop(once_guard.take());
        }
        let step = &sc.steps[s];
        let rendered = {
            let pop = shared.population.borrow();
            let mut values = StepValues {
                population: &pop,
                lists: &sc.lists,
                user,
                iteration: draw.iteration,
                rng: &mut rng,
                picks: &mut picks,
            };
            render(&step.request, &step.expect, &mut values).and_then(|main| {
                let rb = step.read_back.as_ref().map(|rb| render(&rb.request, &rb.expect, &mut values)).transpose()?;
                Ok((main, rb))
            })
        };
        let (main, read_back) = match rendered {
            Ok(r) => r,
            Err(e) => {
                shared.counters.borrow_mut().template_failures += 1;
                shared.first_error.borrow_mut().get_or_insert_with(|| format!("step {}: {e}", step.name));
                return;
            }
        };
        let lock = read_back.as_ref().map(|_| shared.write_locks.of(user));
        let _held = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let keep_body = !step.extract.is_empty();
        let call = Call {
            request: &step.request,
            expect: &step.expect,
            series: &shared.step_series[s],
            keep_body,
            read_back: false,
        };
        let reply = exchange(&shared, arm, call, main, intended, measured).await;
        let failed = reply.is_err();
        if let Ok((r, true)) = &reply {
            if let Some(body) = &r.body {
                let mut pop = shared.population.borrow_mut();
                for (name, pointer) in &step.extract {
                    if let Some(v) = json_pointer_text(body, pointer) {
                        pop.set_extracted(user, name, v);
                    }
                }
            }
        }
        if let (Ok((_, true)), Some(rb), Some(spec), Some(series)) =
            (&reply, read_back, &step.read_back, &shared.read_back_series[s])
        {
            let call = Call { request: &spec.request, expect: &spec.expect, series, keep_body: false, read_back: true };
            // The read is meant to follow the write at once, as a client's would.
            let _ = exchange(&shared, arm, call, rb, Instant::now(), measured).await;
        }
        drop(_held);
        if failed || shared.stop.get() {
            return; // a user whose request failed does not go on with the flow
        }
        if let Some(think) = step.think_time {
            tokio::time::sleep(think).await;
        }
        // The next step is meant to start as soon as this one has finished.
        intended = Instant::now();
    }
}

/// Iterations started by the open-model dispatcher and not finished yet.
#[derive(Default)]
struct InFlight {
    count: Cell<usize>,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn enter(&self) {
        self.count.set(self.count.get() + 1);
    }
    fn leave(&self) {
        self.count.set(self.count.get() - 1);
        if self.count.get() == 0 {
            self.idle.notify_one();
        }
    }
}

/// Open model: starts iterations at their intended times, whatever the server does.
async fn dispatch_open(shared: Rc<Shared>, schedule: ArrivalSchedule, t0: Instant, in_flight: Rc<InFlight>) {
    let sc = &shared.scenario;
    let slots = std::sync::Arc::new(Semaphore::new(sc.load.max_in_flight));
    // Without a precise timer, fall back to tokio's (sends then land up to ~2 ms late).
    let timer = crate::timer::PreciseTimer::new().ok();
    for offset in schedule {
        if shared.stop.get() {
            break;
        }
        let intended = t0 + offset;
        if intended >= shared.measure_end {
            break;
        }
        match &timer {
            Some(t) if t.sleep_until(intended).await.is_ok() => {}
            _ => tokio::time::sleep_until(intended.into()).await,
        }
        let measured = intended >= shared.measure_start;
        if measured {
            shared.counters.borrow_mut().scheduled += 1;
        }
        let permit = match std::sync::Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let deadline = intended + sc.load.drop_after;
                match tokio::time::timeout_at(deadline.into(), std::sync::Arc::clone(&slots).acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        if measured {
                            shared.counters.borrow_mut().dropped += 1;
                        }
                        continue;
                    }
                }
            }
        };
        if measured {
            let mut c = shared.counters.borrow_mut();
            c.started += 1;
            if Instant::now().saturating_duration_since(intended) > LATE {
                c.late += 1;
            }
        }
        let shared = Rc::clone(&shared);
        let in_flight = Rc::clone(&in_flight);
        in_flight.enter();
        tokio::task::spawn_local(async move {
            run_iteration(shared, intended, measured).await;
            drop(permit);
            in_flight.leave();
        });
    }
}

/// Closed model: `vus` loops; each starts its next iteration when the last is done.
async fn virtual_user(shared: Rc<Shared>, budget: Option<Rc<Cell<u64>>>) {
    loop {
        let now = Instant::now();
        if shared.stop.get() || now >= shared.measure_end {
            return;
        }
        let measured = now >= shared.measure_start;
        if measured {
            if let Some(b) = &budget {
                if b.get() == 0 {
                    return;
                }
                b.set(b.get() - 1);
            }
            let mut c = shared.counters.borrow_mut();
            c.scheduled += 1;
            c.started += 1;
        }
        run_iteration(Rc::clone(&shared), now, measured).await;
        let think = shared.scenario.load.think_time;
        if !think.is_zero() {
            tokio::time::sleep(think).await;
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

fn load_description(scenario: &Scenario) -> serde_json::Value {
    let l = &scenario.load;
    let mut v = serde_json::json!({
        "executor": l.executor.name(),
        "warmup_s": l.warmup.as_secs_f64(),
        "duration_s": l.executor.duration().as_secs_f64(),
        "max_in_flight": l.max_in_flight,
        "timeout_s": l.timeout.as_secs_f64(),
        "flow": match scenario.flow { Flow::Sequence => "sequence", Flow::Mix => "mix" },
    });
    match &l.executor {
        Executor::ConstantArrivalRate { rate, .. } => v["rate"] = (*rate).into(),
        Executor::RampingArrivalRate { start_rate, stages } => {
            v["start_rate"] = (*start_rate).into();
            v["stages"] = stages
                .iter()
                .map(|s| serde_json::json!({"target": s.target, "duration_s": s.duration.as_secs_f64()}))
                .collect();
        }
        Executor::ConstantVus { vus, .. } => v["vus"] = (*vus).into(),
        Executor::Iterations { vus, iterations, .. } => {
            v["vus"] = (*vus).into();
            v["iterations"] = (*iterations).into();
        }
    }
    if let Some(u) = &scenario.users {
        v["users"] = serde_json::json!({"count": u.count, "seed": u.seed, "pick": format!("{:?}", u.pick)});
    }
    v
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

/// Asks the target's `GET /health` for its version (the target worker reports one);
/// any other answer, or none within 2 s, leaves it unknown.
async fn worker_version(client: &HttpClient) -> Option<String> {
    let req = Request { method: "GET", path: "/health", headers: &[], body: None, keep_body: true };
    let reply = tokio::time::timeout(Duration::from_secs(2), client.send(req)).await.ok()?.ok()?;
    let body: serde_json::Value = serde_json::from_slice(reply.body.as_deref()?).ok()?;
    (reply.status == 200).then(|| body.get("version")?.as_str().map(str::to_owned)).flatten()
}

/// What the result documents need besides the recorders.
struct DocContext<'a> {
    scenario: &'a Scenario,
    started_at: SystemTime,
    machine: Machine,
    git: Option<String>,
}

impl DocContext<'_> {
    fn document(&self, arm: &Arm, run: RunFigures, thresholds: Vec<Verdict>, ended: bool) -> ResultDoc {
        let rec = arm.recorder.borrow();
        let mut load = load_description(self.scenario);
        load["http_client"] = match arm.client.kind {
            crate::client::ClientKind::Hyper => "hyper",
            _ => "reqwest",
        }
        .into();
        ResultDoc {
            schema: result::SCHEMA.to_owned(),
            metadata: Metadata {
                scenario: self.scenario.name.clone(),
                scenario_file: self.scenario.file.display().to_string(),
                scenario_sha256: self.scenario.sha256.clone(),
                target: arm.spec.target.clone(),
                variant: arm.spec.label.clone(),
                git_revision: self.git.clone(),
                harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                worker_version: arm.worker_version.clone(),
                started_at: result::rfc3339(self.started_at),
                ended_at: ended.then(|| result::rfc3339(SystemTime::now())),
                load,
                machine: self.machine.clone(),
            },
            run: RunFigures { requests: arm.requests.get(), warmup_requests: arm.warmup_requests.get(), ..run },
            series: rec.series.iter().map(|(k, s)| (k.clone(), SeriesDoc::from_stats(s))).collect(),
            intervals: arm.intervals.borrow().clone(),
            thresholds,
        }
    }
}

fn series_for_threshold<'a>(rec: &'a Recorder, name: &str) -> Option<&'a recorder::SeriesStats> {
    if name == "*" {
        return rec.all();
    }
    rec.series.get(&recorder::tag_series(name)).or_else(|| rec.series.get(&recorder::step_series(name)))
}

/// Writes one document per arm: a result file for one arm, an A/B file for two.
fn write_docs(path: &std::path::Path, docs: &[ResultDoc]) -> std::io::Result<()> {
    match docs {
        [one] => one.write(path),
        many => result::AbDoc::new(many.to_vec()).write(path),
    }
}

/// Closes the interval `index` of every arm: summaries kept, histograms logged.
fn close_interval<W: std::io::Write, S: hdrhistogram::serialization::Serializer>(
    shared: &Shared,
    index: u64,
    start: Duration,
    hlog: &mut hdrhistogram::serialization::interval_log::IntervalLogWriter<'_, '_, W, S>,
    keep_empty: bool,
) {
    for arm in &shared.arms {
        let prefix = match (&arm.spec.label, shared.arms.len()) {
            (Some(l), n) if n > 1 => format!("{l}/"),
            _ => String::new(),
        };
        for (summary, h) in arm.recorder.borrow_mut().close_interval(index) {
            if summary.requests == 0 && !keep_empty {
                continue;
            }
            let tag = format!("{prefix}{}", summary.series).replace([',', ' '], "_");
            let _ = hlog.write_histogram(&h, start, Duration::from_secs(1), Tag::new(&tag));
            arm.intervals.borrow_mut().push(summary);
        }
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
    if opts.arms.is_empty() || opts.arms.len() > 2 {
        return Err(RunError::Setup(format!("a run has one or two arms, not {}", opts.arms.len())));
    }
    for arm in &opts.arms {
        preflight(&arm.target).await?;
    }
    let population = match &scenario.users {
        None => Population::anonymous(scenario.steps.len()),
        Some(u) => {
            let secret = opts.bench_secret.as_deref().ok_or_else(|| {
                RunError::Setup(format!(
                    "{} has [users]: pass --bench-secret (or BENCH_SECRET) so their credentials can be derived",
                    scenario.file.display()
                ))
            })?;
            Population::new(u, secret, scenario.steps.len()).map_err(RunError::Setup)?
        }
    };
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| RunError::Setup(format!("cannot create {}: {e}", opts.out_dir.display())))?;
    let label = match opts.arms.as_slice() {
        [one] => one.label.clone(),
        _ => Some("ab".to_owned()),
    };
    let stem = opts.stem.clone().unwrap_or_else(|| stem_for(scenario, label.as_deref()));
    let files = RunFiles::new(&opts.out_dir, &stem);
    let mut arms = opts
        .arms
        .iter()
        .map(|spec| {
            Ok(Arm {
                client: HttpClient::new(
                    &spec.target,
                    scenario.load.max_in_flight,
                    scenario.load.timeout,
                    opts.http_client,
                )
                .map_err(RunError::Setup)?,
                spec: spec.clone(),
                worker_version: None,
                recorder: RefCell::new(Recorder::default()),
                intervals: RefCell::new(Vec::new()),
                requests: Cell::new(0),
                warmup_requests: Cell::new(0),
            })
        })
        .collect::<Result<Vec<Arm>, RunError>>()?;
    for arm in &mut arms {
        arm.worker_version = worker_version(&arm.client).await;
    }
    let mix = match scenario.flow {
        Flow::Mix => {
            let index: Vec<usize> = (0..scenario.steps.len()).filter(|&i| !scenario.steps[i].once_per_user).collect();
            let weights = index.iter().map(|&i| scenario.steps[i].weight);
            Some((WeightedIndex::new(weights).map_err(|e| RunError::Setup(e.to_string()))?, index))
        }
        Flow::Sequence => None,
    };

    let started_at = SystemTime::now();
    let usage0 = cpu::usage();
    let t0 = Instant::now();
    let measure_start = t0 + scenario.load.warmup;
    let mut planned = scenario.load.executor.duration();
    if let Some(max) = opts.max_duration {
        planned = planned.min(max);
    }
    let shared = Rc::new(Shared {
        scenario: scenario.clone(),
        alternator: RefCell::new(ArmAlternator::new(arms.len())),
        arms,
        population: RefCell::new(population),
        rng: RefCell::new(SmallRng::from_os_rng()),
        counters: RefCell::new(Counters::default()),
        mix,
        step_series: scenario.steps.iter().map(|s| recorder::StepSeries::new(&s.name, &s.tags)).collect(),
        read_back_series: scenario
            .steps
            .iter()
            .map(|s| {
                s.read_back
                    .as_ref()
                    .map(|_| recorder::StepSeries::new(&s.read_back_name(), &[READ_BACK_TAG.to_owned()]))
            })
            .collect(),
        write_locks: UserLocks::default(),
        once_locks: UserLocks::default(),
        has_once: scenario.steps.iter().any(|s| s.once_per_user),
        measure_start,
        measure_end: measure_start + planned,
        stop: Cell::new(false),
        iteration: Cell::new(0),
        first_error: RefCell::new(None),
    });

    // Unbuffered: each interval reaches the file when it closes, so a crash keeps it.
    let mut hlog_file =
        std::fs::File::create(&files.hlog).map_err(|e| RunError::Setup(format!("{}: {e}", files.hlog.display())))?;
    let mut serializer = V2DeflateSerializer::new();
    let mut hlog = IntervalLogWriterBuilder::new()
        .add_comment(&format!("cache-bench harness {} scenario {}", env!("CARGO_PKG_VERSION"), scenario.name))
        .with_start_time(started_at)
        .with_base_time(started_at)
        .with_max_value_divisor(1000.0) // µs recorded, milliseconds in the log's max column
        .begin_log_with(&mut hlog_file, &mut serializer)
        .map_err(|e| RunError::Setup(format!("{}: {e}", files.hlog.display())))?;

    let in_flight = Rc::new(InFlight::default());
    let schedule = ArrivalSchedule::new(&scenario.load.executor, scenario.load.warmup);
    let target_count = schedule.as_ref().map(|s| {
        let w = scenario.load.warmup.as_secs_f64();
        s.count_between(w, w + planned.as_secs_f64())
    });
    let mut drivers: JoinSet<()> = JoinSet::new();
    match schedule {
        Some(s) => {
            drivers.spawn_local(dispatch_open(Rc::clone(&shared), s, t0, Rc::clone(&in_flight)));
        }
        None => {
            let (vus, budget) = match scenario.load.executor {
                Executor::ConstantVus { vus, .. } => (vus, None),
                Executor::Iterations { vus, iterations, .. } => (vus, Some(Rc::new(Cell::new(iterations)))),
                _ => unreachable!("open executors have a schedule"),
            };
            for _ in 0..vus {
                drivers.spawn_local(virtual_user(Rc::clone(&shared), budget.clone()));
            }
        }
    }

    let total = scenario.load.warmup + planned;
    let bar = crate::progress::Progress::new(opts.progress, total);
    let ctx = DocContext { scenario, started_at, machine: Machine::current(), git: result::git_revision() };
    let mut next_interval = measure_start + Duration::from_secs(1);
    let mut interval_index = 0u64;
    let mut last_snapshot = Instant::now();
    let mut interrupted = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let figures = |shared: &Shared, end: Instant, usage: cpu::Usage| -> RunFigures {
        let c = shared.counters.borrow();
        let measured_s = end.saturating_duration_since(shared.measure_start).as_secs_f64();
        let cpu = usage.cpu.saturating_sub(usage0.cpu).as_secs_f64();
        let wall = end.saturating_duration_since(t0).as_secs_f64().max(1e-9);
        RunFigures {
            status: Status::Running,
            invalid_reasons: Vec::new(),
            warnings: Vec::new(),
            warmup_s: scenario.load.warmup.as_secs_f64(),
            measured_s,
            target_rate: target_count
                .map(|n| if planned.as_secs_f64() > 0.0 { n / planned.as_secs_f64() } else { 0.0 }),
            achieved_rate: if measured_s > 0.0 { c.started as f64 / measured_s } else { 0.0 },
            scheduled_iterations: c.scheduled,
            started_iterations: c.started,
            dropped_iterations: c.dropped,
            late_sends: c.late,
            requests: c.requests,
            warmup_requests: shared.arms.iter().map(|a| a.warmup_requests.get()).sum(),
            client_cpu_share: cpu / wall,
            client_cpu_us_per_request: if c.requests > 0 { cpu * 1e6 / c.requests as f64 } else { 0.0 },
            client_max_rss_kib: usage.max_rss_kib,
        }
    };

    // The drivers end when the schedule (or the VUs) are done; then the in-flight
    // iterations finish, bounded by the request time-out.
    let mut drivers_done = false;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if !interrupted && opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                    interrupted = true;
                    shared.stop.set(true);
                    bar.println("interrupted: stopping the schedule, letting requests in flight finish");
                }
            }
            r = &mut ctrl_c, if !interrupted => {
                if r.is_ok() {
                    interrupted = true;
                    shared.stop.set(true);
                    bar.println("interrupted: stopping the schedule, letting requests in flight finish");
                }
            }
            d = drivers.join_next(), if !drivers_done => {
                if d.is_none() { drivers_done = true; }
            }
            _ = in_flight.idle.notified(), if drivers_done => {}
        }
        if drivers_done && in_flight.count.get() == 0 {
            break;
        }
        let now = Instant::now();
        if drivers_done && drain_deadline.is_none() {
            drain_deadline = Some(now + scenario.load.timeout + Duration::from_secs(1));
        }
        if interrupted && drain_deadline.is_none() {
            drain_deadline = Some(now + Duration::from_secs(5).min(scenario.load.timeout));
        }
        if drain_deadline.is_some_and(|d| now >= d) {
            // What is still in flight is dropped with the runtime.
            drivers.abort_all();
            break;
        }
        while now >= next_interval {
            interval_index += 1;
            let start = (next_interval - Duration::from_secs(1)).saturating_duration_since(t0);
            close_interval(&shared, interval_index, start, &mut hlog, true);
            next_interval += Duration::from_secs(1);
        }
        if now.duration_since(last_snapshot) >= Duration::from_secs(5) {
            let run = figures(&shared, now.min(shared.measure_end), cpu::usage());
            let docs: Vec<ResultDoc> = shared
                .arms
                .iter()
                .map(|a| ctx.document(a, RunFigures { status: Status::Running, ..run.clone() }, vec![], false))
                .collect();
            let _ = write_docs(&files.json, &docs);
            last_snapshot = now;
        }
        let first = shared.arms[0].recorder.borrow();
        let c = shared.counters.borrow();
        bar.update(
            now.duration_since(t0),
            now >= measure_start,
            c.started,
            first.all(),
            now.saturating_duration_since(measure_start),
        );
    }
    let end = Instant::now().min(shared.measure_end.max(measure_start));
    // The last, partial interval.
    interval_index += 1;
    let start = (next_interval - Duration::from_secs(1)).saturating_duration_since(t0);
    close_interval(&shared, interval_index, start, &mut hlog, false);
    drop(hlog);
    bar.finish();

    let mut run = figures(&shared, end, cpu::usage());
    let status = if interrupted { Status::Interrupted } else { Status::Complete };
    if let (Some(target), false) = (run.target_rate, interrupted) {
        if target > 0.0 && run.achieved_rate < target * (1.0 - MAX_RATE_SHORTFALL) {
            run.invalid_reasons.push(format!(
                "achieved {:.1} iterations/s, {:.1} % below the target {:.1}/s ({} dropped, {} late sends): the harness or the target could not keep up",
                run.achieved_rate,
                100.0 * (1.0 - run.achieved_rate / target),
                target,
                run.dropped_iterations,
                run.late_sends
            ));
        }
    }
    let template_failures = shared.counters.borrow().template_failures;
    if template_failures > 0 {
        run.warnings.push(format!(
            "{template_failures} iterations stopped before a request: {}",
            shared.first_error.borrow().clone().unwrap_or_default()
        ));
    }
    if run.client_cpu_share > CLIENT_BOUND_CPU_SHARE {
        run.warnings.push(format!(
            "the harness used {:.0} % of a core: the run may be client-bound, so latencies may include the client's own queueing",
            run.client_cpu_share * 100.0
        ));
    }
    let mut docs = Vec::new();
    for arm in &shared.arms {
        let mut arm_run = run.clone();
        let rec = arm.recorder.borrow();
        let measured = rec.all().map_or(0, |s| s.requests);
        if let Some(all) = rec.all() {
            let connect = all.error_kinds.get(&ErrorKind::Connect).copied().unwrap_or(0);
            if connect == all.requests && connect > 0 {
                arm_run
                    .invalid_reasons
                    .push(format!("target unreachable during the run: all {connect} requests failed to connect"));
            }
        }
        if measured == 0 {
            let why = shared.first_error.borrow().clone().map(|e| format!(" (first failure: {e})")).unwrap_or_default();
            arm_run.invalid_reasons.push(format!("no request was measured{why}"));
        }
        let empty = recorder::SeriesStats::default();
        let verdicts: Vec<Verdict> = scenario
            .thresholds
            .iter()
            .map(|t| {
                let s = series_for_threshold(&rec, &t.series).unwrap_or(&empty);
                t.evaluate(&Figures {
                    corrected: &s.corrected,
                    requests: s.requests,
                    errors: s.errors,
                    seconds: run.measured_s,
                })
            })
            .collect();
        // An interrupted run says so first: its other flaws (nothing measured yet) follow from it.
        arm_run.status =
            if arm_run.invalid_reasons.is_empty() || status == Status::Interrupted { status } else { Status::Invalid };
        drop(rec);
        docs.push(ctx.document(arm, arm_run, verdicts, true));
    }
    write_docs(&files.json, &docs)
        .map_err(|e| RunError::Setup(format!("cannot write {}: {e}", files.json.display())))?;
    let arms = shared
        .arms
        .iter()
        .zip(docs)
        .map(|(arm, doc)| ArmOutcome { doc, series: std::mem::take(&mut arm.recorder.borrow_mut().series) })
        .collect();
    Ok(RunOutcome { arms, files })
}
