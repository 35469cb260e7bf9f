//! The engine of a run: it drives the load (the open-model dispatcher or the
//! closed-model virtual users), closes one-second intervals into the interval
//! log, writes a snapshot of the result every 5 s, and stops on time, on Ctrl-C
//! or when cancelled. It produces what was recorded ([`ArmRecord`]s) and the
//! run's figures; judging them is `finish.rs`'s job.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::weighted::WeightedIndex;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::finish::ArmRecord;
pub(super) use super::iteration::UserLocks;
use super::iteration::{run_iteration, ArmAlternator, Route};
use super::writer::WriterHandle;
use super::{RunError, RunOptions};
use crate::client::HttpClient;
use crate::cpu;
use crate::recorder;
use crate::result::{RunFigures, Status};
use crate::scenario::{Scenario, READ_BACK_TAG};
use crate::schedule::{ArrivalSchedule, VuSchedule, VuWindow};
use crate::shard::Shard;
use crate::users::Population;

/// Schedule-level counts, shared by the arms.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) scheduled: u64,
    pub(super) started: u64,
    pub(super) dropped: u64,
    pub(super) late: u64,
    pub(super) requests: u64,
    pub(super) template_failures: u64,
}

/// One arm while the load runs: its connections and what it has recorded.
pub(super) struct Arm {
    pub(super) client: HttpClient,
    /// Connections to the other arm's server, when the arms cross servers.
    pub(super) other: Option<HttpClient>,
    pub(super) record: RefCell<ArmRecord>,
}

impl Arm {
    pub(super) fn new(client: HttpClient, other: Option<HttpClient>, record: ArmRecord) -> Arm {
        Arm { client, other, record: RefCell::new(record) }
    }

    /// The connections to its own server, or (`crossed`) to its second one (the other arm's, or its twin).
    pub(super) fn client(&self, crossed: bool) -> &HttpClient {
        match (&self.other, crossed) {
            (Some(other), true) => other,
            _ => &self.client,
        }
    }
}

/// What the drivers and iterations of one run share (one thread: no locks).
pub(super) struct Shared {
    pub(super) scenario: Scenario,
    pub(super) arms: Vec<Arm>,
    pub(super) population: RefCell<Population>,
    pub(super) rng: RefCell<SmallRng>,
    pub(super) counters: RefCell<Counters>,
    pub(super) mix: Option<Mix>,
    /// Per activity band of the users (one when there are none), per step, the
    /// series its requests are recorded in: the band's tag among them.
    step_series: Vec<Vec<recorder::StepSeries>>,
    /// Each user's activity band, an index into `step_series` (empty: band 0).
    user_band: Vec<u8>,
    /// Every arm sends to one server (arms switched per request): one store.
    one_server: bool,
    /// Per step, the series of its read-back (if it has one).
    pub(super) read_back_series: Vec<Option<recorder::StepSeries>>,
    /// Held from a write through its read-back: two writes of one user on one
    /// server must not overlap, or a read-back could see the other write and be
    /// called stale. Per server: tied arms never wait for each other's writes.
    pub(super) write_locks: UserLocks,
    /// Held while a user's `once_per_user` steps run in an arm (only for users
    /// the set-up did not cover).
    pub(super) once_locks: UserLocks,
    pub(super) has_once: bool,
    /// An A/B's pairs, whose answers are compared (none in a one-arm run).
    pub(super) answers: Option<crate::answers::AnswerBook>,
    pub(super) alternator: RefCell<ArmAlternator>,
    pub(super) measure_start: Instant,
    pub(super) measure_end: Instant,
    pub(super) stop: Cell<bool>,
    pub(super) iteration: Cell<u64>,
    pub(super) first_error: RefCell<Option<String>>,
}

/// The measured part's planned length.
fn planned_of(scenario: &Scenario, opts: &RunOptions) -> Duration {
    let planned = scenario.load.executor.duration();
    opts.max_duration.map_or(planned, |max| planned.min(max))
}

/// Per activity band (or once, with none), the series of each step.
fn band_series(scenario: &Scenario, bands: &[(String, std::ops::Range<usize>)]) -> Vec<Vec<recorder::StepSeries>> {
    let steps = |band: Option<&String>| {
        let tagged = |s: &crate::scenario::Step| {
            let tags: Vec<String> = s.tags.iter().chain(band).cloned().collect();
            recorder::StepSeries::new(&s.name, &tags)
        };
        scenario.steps.iter().map(tagged).collect()
    };
    match bands {
        [] => vec![steps(None)],
        _ => bands.iter().map(|(tag, _)| steps(Some(tag))).collect(),
    }
}

impl Shared {
    /// The series a request of step `s` by `user` is recorded in.
    pub(super) fn series_of(&self, s: usize, user: usize) -> &recorder::StepSeries {
        let band = self.user_band.get(user).map_or(0, |&b| usize::from(b));
        &self.step_series[band][s]
    }

    /// The server `route` sends to, as a key of the write locks: one for all
    /// arms when they share their server.
    pub(super) fn server_of(&self, route: Route) -> usize {
        if self.one_server {
            0
        } else {
            route.server()
        }
    }

    fn new(
        scenario: &Scenario,
        arms: Vec<Arm>,
        population: Population,
        mix: Option<Mix>,
        measure_start: Instant,
        planned: Duration,
    ) -> Shared {
        let bands = population.activity_bands();
        let target = |a: &Arm| a.record.borrow().spec.target.clone();
        let one_server = arms.len() > 1 && arms.iter().all(|a| a.other.is_none() && target(a) == target(&arms[0]));
        Shared {
            scenario: scenario.clone(),
            // Two arms that each hold a second server (the other arm's, or a twin) alternate between their two.
            alternator: RefCell::new(ArmAlternator::new(
                arms.len(),
                arms.len() == 2 && arms.iter().all(|a| a.other.is_some()),
            )),
            arms,
            population: RefCell::new(population),
            rng: RefCell::new(SmallRng::from_os_rng()),
            counters: RefCell::new(Counters::default()),
            mix,
            step_series: band_series(scenario, &bands),
            one_server,
            user_band: bands
                .iter()
                .enumerate()
                .flat_map(|(i, (_, users))| users.clone().map(move |_| i as u8))
                .collect(),
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
            answers: None,
            measure_start,
            measure_end: measure_start + planned,
            stop: Cell::new(false),
            iteration: Cell::new(0),
            first_error: RefCell::new(None),
        }
    }
}

/// What a run recorded, for `finish` to judge.
pub(super) struct Recorded {
    pub(super) arms: Vec<ArmRecord>,
    /// Measured part, without status or validity yet.
    pub(super) figures: RunFigures,
    pub(super) interrupted: bool,
    /// Iterations stopped before a request (a template had no value).
    pub(super) template_failures: u64,
    pub(super) first_error: Option<String>,
}

/// The run's timing: when it started and where the measured part lies.
struct Clock {
    t0: Instant,
    measure_start: Instant,
    planned: Duration,
    /// Iterations the schedule plans in the measured part (open model).
    target_count: Option<f64>,
    usage0: cpu::Usage,
}

impl Clock {
    /// The run's figures as of `end`.
    fn figures(&self, shared: &Shared, scenario: &Scenario, end: Instant, usage: cpu::Usage) -> RunFigures {
        let c = shared.counters.borrow();
        let measured_s = end.saturating_duration_since(self.measure_start).as_secs_f64();
        let cpu = usage.cpu.saturating_sub(self.usage0.cpu).as_secs_f64();
        let wall = end.saturating_duration_since(self.t0).as_secs_f64().max(1e-9);
        let planned = self.planned.as_secs_f64();
        RunFigures {
            status: Status::Running,
            invalid_reasons: Vec::new(),
            warnings: Vec::new(),
            warmup_s: scenario.load.warmup.as_secs_f64(),
            measured_s,
            target_rate: self.target_count.map(|n| if planned > 0.0 { n / planned } else { 0.0 }),
            achieved_rate: if measured_s > 0.0 { c.started as f64 / measured_s } else { 0.0 },
            scheduled_iterations: c.scheduled,
            started_iterations: c.started,
            dropped_iterations: c.dropped,
            late_sends: c.late,
            requests: c.requests,
            warmup_requests: shared.arms.iter().map(|a| a.record.borrow().warmup_requests).sum(),
            client_cpu_share: cpu / wall,
            client_cpu_us_per_request: if c.requests > 0 { cpu * 1e6 / c.requests as f64 } else { 0.0 },
            client_max_rss_kib: usage.max_rss_kib,
        }
    }
}

/// The users after their set-up (`once_per_user` steps run for every user in
/// every arm), ready to be handed to the parts that send the load.
pub(super) struct SetUp {
    pub(super) population: Population,
    pub(super) first_error: Option<String>,
    pub(super) template_failures: u64,
}

/// Runs every user's `once_per_user` steps over `arms` before any load.
pub(super) async fn set_up(
    scenario: &Scenario,
    opts: &RunOptions,
    arms: Vec<Arm>,
    population: Population,
) -> Result<(Vec<Arm>, SetUp), RunError> {
    let mix = mix_choice(scenario)?;
    let setup = Rc::new(Shared::new(scenario, arms, population, mix, Instant::now(), planned_of(scenario, opts)));
    super::iteration::set_up_users(&setup).await;
    let Ok(Shared { arms, population, first_error, counters, .. }) = Rc::try_unwrap(setup) else {
        unreachable!("the set-up holds no iteration past its end")
    };
    let done = SetUp {
        population: population.into_inner(),
        first_error: first_error.into_inner(),
        template_failures: counters.into_inner().template_failures,
    };
    Ok((arms, done))
}

/// One sending part of a run (the whole run, or one thread's shard of it).
pub(super) struct Part {
    /// The part of the schedule it sends.
    pub(super) shard: Shard,
    /// When the run starts: every part's schedule counts from this one instant.
    pub(super) t0: Instant,
    pub(super) writer: WriterHandle,
    /// Draws the progress line (one part of a run does).
    pub(super) progress: bool,
    pub(super) live: Option<crate::metrics::live::Slot>,
    /// The run's write locks, shared by its threads.
    pub(super) write_locks: UserLocks,
    /// The run's pairs (an A/B), shared by its threads.
    pub(super) answers: Option<crate::answers::AnswerBook>,
}

/// Drives `scenario` over `arms` until its schedule (the part's shard of it)
/// ends or it is stopped, handing seconds and snapshots to the writer.
pub(super) async fn drive(
    scenario: &Scenario,
    opts: &RunOptions,
    arms: Vec<Arm>,
    set_up: SetUp,
    part: Part,
) -> Result<Recorded, RunError> {
    let mix = mix_choice(scenario)?;
    let t0 = part.t0;
    let measure_start = t0 + scenario.load.warmup;
    let planned = planned_of(scenario, opts);
    let mut shared = Shared::new(scenario, arms, set_up.population, mix, measure_start, planned);
    // What went wrong in the set-up is the run's to report.
    shared.first_error = RefCell::new(set_up.first_error);
    shared.counters.get_mut().template_failures = set_up.template_failures;
    shared.write_locks = part.write_locks.clone();
    shared.answers = part.answers.clone();
    let shared = Rc::new(shared);

    let in_flight = Rc::new(InFlight::default());
    let schedule = ArrivalSchedule::new(&scenario.load.executor, scenario.load.warmup);
    let unit = shared.arms.len() as u64;
    let clock = Clock {
        t0,
        measure_start,
        planned,
        target_count: schedule.as_ref().map(|s| {
            let w = scenario.load.warmup.as_secs_f64();
            s.shard_count_between(part.shard, unit, w, w + planned.as_secs_f64())
        }),
        usage0: cpu::usage(),
    };
    let drivers = start_drivers(&shared, schedule, &part, &in_flight);
    let interrupted = run_loop(&shared, opts, &clock, drivers, &in_flight, &part).await;
    let end = Instant::now().min(shared.measure_end.max(measure_start));

    let figures = clock.figures(&shared, scenario, end, cpu::usage());
    let template_failures = shared.counters.borrow().template_failures;
    let first_error = shared.first_error.borrow().clone();
    // Iterations dropped at the drain deadline still hold `shared`: the records are
    // taken out of it, not unwrapped.
    let arms = shared
        .arms
        .iter()
        .map(|a| {
            let empty = ArmRecord::empty(&a.record.borrow());
            a.record.replace(empty)
        })
        .collect();
    Ok(Recorded { arms, figures, interrupted, template_failures, first_error })
}

/// Mix flow: the weighted choice among the steps that are not `once_per_user`,
/// and the step index of each choice.
pub(super) type Mix = (WeightedIndex<f64>, Vec<usize>);

fn mix_choice(scenario: &Scenario) -> Result<Option<Mix>, RunError> {
    match scenario.flow {
        crate::scenario::Flow::Mix => {
            let index: Vec<usize> = (0..scenario.steps.len()).filter(|&i| !scenario.steps[i].once_per_user).collect();
            let weights = index.iter().map(|&i| scenario.steps[i].weight);
            Ok(Some((WeightedIndex::new(weights).map_err(|e| RunError::Setup(e.to_string()))?, index)))
        }
        crate::scenario::Flow::Sequence => Ok(None),
    }
}

/// The open model's dispatcher, or one task per virtual user.
fn start_drivers(
    shared: &Rc<Shared>,
    schedule: Option<ArrivalSchedule>,
    part: &Part,
    in_flight: &Rc<InFlight>,
) -> JoinSet<()> {
    let mut drivers: JoinSet<()> = JoinSet::new();
    let shard = part.shard;
    match schedule {
        Some(s) => {
            let arrivals = s.sharded(shard, shared.arms.len() as u64);
            // The scenario's limit is the run's: each part holds its share of it.
            let slots = shard.share(shared.scenario.load.max_in_flight as u64).max(1) as usize;
            drivers.spawn_local(dispatch_open(Rc::clone(shared), arrivals, part.t0, slots, Rc::clone(in_flight)));
        }
        None => {
            let Some((vus, budget)) = VuSchedule::of(&shared.scenario.load.executor) else { return drivers };
            let budget = budget.map(|n| Rc::new(Cell::new(shard.share(n))));
            for window in vus.sharded(shard) {
                drivers.spawn_local(virtual_user(Rc::clone(shared), budget.clone(), part.t0, window));
            }
        }
    }
    drivers
}

/// Waits for the drivers and the iterations in flight, closing intervals and
/// writing snapshots as time passes. Returns whether the run was interrupted.
async fn run_loop(
    shared: &Rc<Shared>,
    opts: &RunOptions,
    clock: &Clock,
    mut drivers: JoinSet<()>,
    in_flight: &InFlight,
    part: &Part,
) -> bool {
    let scenario = &shared.scenario;
    let t0 = clock.t0;
    let writer = &part.writer;
    let total = scenario.load.warmup + clock.planned;
    let bar = crate::progress::Progress::new(opts.progress && part.progress, total);
    let mut next_interval = clock.measure_start + Duration::from_secs(1);
    let mut interval_index = 0u64;
    let mut last_snapshot = Instant::now();
    let mut interrupted = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    // A run given no flag of its own still stops on Ctrl-C: the process's.
    let cancel = opts.cancel.clone().unwrap_or_else(crate::cancel::flag);
    let interrupt = |interrupted: &mut bool| {
        *interrupted = true;
        shared.stop.set(true);
        bar.println("interrupted: stopping the schedule, letting requests in flight finish");
    };

    // The drivers end when the schedule (or the VUs) are done; then the in-flight
    // iterations finish, bounded by the request time-out.
    let mut drivers_done = false;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if !interrupted && cancel.load(std::sync::atomic::Ordering::Relaxed) {
                    interrupt(&mut interrupted);
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
            close_interval(shared, interval_index, start, writer, true);
            next_interval += Duration::from_secs(1);
            if let Some(live) = &part.live {
                live.publish(live_figures(shared, clock, now));
            }
        }
        if now.duration_since(last_snapshot) >= Duration::from_secs(5) {
            let run = clock.figures(shared, scenario, now.min(shared.measure_end), cpu::usage());
            writer.snapshot(shared.arms.iter().map(|a| a.record.borrow().clone()).collect(), run);
            last_snapshot = now;
        }
        let first = shared.arms[0].record.borrow();
        let c = shared.counters.borrow();
        bar.update(
            now.duration_since(t0),
            now >= clock.measure_start,
            c.started,
            first.recorder.all(),
            now.saturating_duration_since(clock.measure_start),
        );
    }
    // The last, partial interval.
    interval_index += 1;
    let start = (next_interval - Duration::from_secs(1)).saturating_duration_since(t0);
    close_interval(shared, interval_index, start, writer, false);
    // Every part's last records, so the snapshot of a run whose parts ended at
    // different times (a thread without virtual users) is still written.
    let run = clock.figures(shared, scenario, Instant::now().min(shared.measure_end), cpu::usage());
    writer.snapshot(shared.arms.iter().map(|a| a.record.borrow().clone()).collect(), run);
    if let Some(live) = &part.live {
        live.publish(live_figures(shared, clock, Instant::now()));
    }
    bar.finish();
    interrupted
}

/// What the part has recorded so far, for a Prometheus scrape.
fn live_figures(shared: &Shared, clock: &Clock, now: Instant) -> crate::metrics::Figures {
    let run = clock.figures(shared, &shared.scenario, now.min(shared.measure_end), cpu::Usage::default());
    let arms: Vec<(String, std::collections::BTreeMap<String, crate::metrics::SeriesFigures>)> = shared
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let record = a.record.borrow();
            let label = record.spec.label.clone().unwrap_or_else(|| if i == 0 { "a".into() } else { "b".into() });
            let series = record
                .recorder
                .series
                .iter()
                .map(|(k, s)| (k.clone(), crate::metrics::SeriesFigures::of_stats(s)))
                .collect();
            (label, series)
        })
        .collect();
    crate::metrics::Figures::new(&shared.scenario.name, &run, arms)
}

/// Iterations started by the open-model dispatcher and not finished yet.
#[derive(Default)]
pub(super) struct InFlight {
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
async fn dispatch_open(
    shared: Rc<Shared>,
    schedule: impl Iterator<Item = Duration>,
    t0: Instant,
    slots: usize,
    in_flight: Rc<InFlight>,
) {
    let sc = &shared.scenario;
    let slots = std::sync::Arc::new(Semaphore::new(slots));
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
                            super::iteration::record_dropped(&shared, intended, sc.load.drop_after);
                        }
                        continue;
                    }
                }
            }
        };
        if measured {
            shared.counters.borrow_mut().started += 1;
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
async fn virtual_user(shared: Rc<Shared>, budget: Option<Rc<Cell<u64>>>, t0: Instant, window: VuWindow) {
    if !window.start.is_zero() {
        tokio::time::sleep_until((t0 + window.start).into()).await;
    }
    let stop = window.stop.map_or(shared.measure_end, |s| (t0 + s).min(shared.measure_end));
    loop {
        let now = Instant::now();
        if shared.stop.get() || now >= stop {
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

/// Closes the interval `index` of every arm: summaries kept, histograms handed
/// to the writer for the interval log.
fn close_interval(shared: &Shared, index: u64, start: Duration, writer: &WriterHandle, keep_empty: bool) {
    let mut histograms = Vec::new();
    for arm in &shared.arms {
        let mut record = arm.record.borrow_mut();
        let record = &mut *record;
        let prefix = match (&record.spec.label, shared.arms.len()) {
            (Some(l), n) if n > 1 => format!("{l}/"),
            _ => String::new(),
        };
        for (summary, h) in record.recorder.close_interval(index) {
            if summary.requests == 0 && !keep_empty {
                continue;
            }
            let tag = format!("{prefix}{}", summary.series).replace([',', ' '], "_");
            histograms.push((tag, h));
            record.intervals.push(summary);
        }
    }
    writer.seconds(start, histograms);
}
