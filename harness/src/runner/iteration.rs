//! One iteration: which arm and user it serves (pairs of an A/B share one draw),
//! its templates rendered, its requests sent and recorded, values extracted, and
//! a write read back by the same user.

use std::rc::Rc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;

use super::engine::Shared;
use super::LATE;
use crate::answers::{Answered, PairStep};
use crate::client::{ErrorKind, Request};
use crate::recorder::{self, Sample, BLOCK_MS};
use crate::scenario::template::{Values, Var};
use crate::scenario::{Expect, Flow, List, Needles, RequestSpec};
use crate::users::Population;

/// What an iteration draws before it starts: its user, its step (mix flow), the
/// seed of its random values and its number. In an A/B run both iterations of a
/// pair replay one draw, so the arms see the same users, steps and bodies.
#[derive(Debug, Clone, Copy)]
struct Draw {
    user: usize,
    mix_choice: Option<usize>,
    seed: u64,
    iteration: u64,
    /// The pair's number in an A/B whose answers are compared.
    pair: Option<u64>,
}

/// Which arm iteration `k` goes to: sets of consecutive iterations (one per arm)
/// go to every arm, in an order drawn at random per set, so that drift and noise
/// hit all arms alike; the set shares one [`Draw`]. With two arms a set is a pair;
/// with `crossed` servers (two arms only), in every block of two pairs one pair
/// sends each arm to the other arm's server (which one is drawn at random), so
/// each arm meets each server equally often.
pub(super) struct ArmAlternator {
    arms: usize,
    crossed: bool,
    k: u64,
    /// The arms of the current set, in the order they are sent.
    order: Vec<usize>,
    cross: bool,
    draw: Option<Draw>,
}

/// Where an iteration goes: its arm, and whether to the other arm's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) arm: usize,
    pub(super) crossed: bool,
}

impl Route {
    /// The server the iteration goes to, as the index of the arm whose target it
    /// is (only two-arm runs cross).
    pub(super) fn server(self) -> usize {
        if self.crossed {
            1 - self.arm
        } else {
            self.arm
        }
    }
}

impl ArmAlternator {
    pub(super) fn new(arms: usize, crossed: bool) -> ArmAlternator {
        ArmAlternator {
            arms,
            crossed: crossed && arms == 2,
            k: 0,
            order: (0..arms).collect(),
            cross: false,
            draw: None,
        }
    }

    /// The route of the next iteration, and its draw (made by `fresh` once per set).
    fn next(&mut self, rng: &mut SmallRng, fresh: impl FnOnce(&mut SmallRng) -> Draw) -> (Route, Draw) {
        if self.arms < 2 {
            return (Route { arm: 0, crossed: false }, fresh(rng));
        }
        let n = self.arms as u64;
        let position = (self.k % n) as usize;
        if position == 0 {
            self.shuffle(rng);
            self.draw = Some(fresh(rng));
            // The first pair of a block draws; the second does the opposite.
            self.cross = if (self.k / n).is_multiple_of(2) { rng.random() } else { !self.cross };
        }
        let arm = self.order[position];
        self.k += 1;
        let draw = self.draw.expect("drawn by the set's first");
        if position + 1 == self.arms {
            self.draw = None;
        }
        (Route { arm, crossed: self.crossed && self.cross }, draw)
    }

    /// A random order of the arms for the next set.
    fn shuffle(&mut self, rng: &mut SmallRng) {
        if self.arms == 2 {
            // One coin per pair, as two-arm runs always drew.
            let swap: bool = rng.random();
            self.order = vec![usize::from(swap), usize::from(!swap)];
        } else {
            use rand::seq::SliceRandom;
            self.order.shuffle(rng);
        }
    }
}

/// One async lock per arm (or server) and user, made when first asked for. Shared
/// by the threads of a run (a clone is the same locks): two threads' writes of one
/// user must not overlap either. tokio's mutex works across runtimes.
#[derive(Default, Clone)]
pub(super) struct UserLocks(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ArmUser, std::sync::Arc<tokio::sync::Mutex<()>>>>>,
);

/// An arm and a user of it.
type ArmUser = (usize, usize);

impl UserLocks {
    fn of(&self, arm: usize, user: usize) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::sync::Arc::clone(locks.entry((arm, user)).or_default())
    }
}

/// What templates read during one iteration.
struct StepValues<'a> {
    population: &'a Population,
    lists: &'a [List],
    arm: usize,
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
        self.population.extracted(self.arm, self.user, name).cloned()
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
    needles: Needles,
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
        needles: Needles {
            contains: expect.body_contains.as_ref().map(|b| b.render(values)).transpose()?,
            not_contains: expect.body_not_contains.as_ref().map(|b| b.render(values)).transpose()?,
        },
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
    /// The pair-step whose answers are compared, and its user.
    pairing: Option<Pairing<'a>>,
}

/// One arm's half of a pair-step whose answers the book compares.
struct Pairing<'a> {
    book: &'a crate::answers::AnswerBook,
    key: PairStep,
    user: usize,
    user_index: Option<usize>,
}

/// Sends and records one request: the reply and whether it met its expectation,
/// or `Err` when it failed at the transport.
async fn exchange(
    shared: &Shared,
    route: Route,
    call: Call<'_>,
    r: Rendered,
    intended: Instant,
    measured: bool,
) -> Result<(crate::client::Reply, bool), ()> {
    let Call { request, expect, series, keep_body, read_back, pairing } = call;
    let arm = &shared.arms[route.arm];
    let mut headers = r.headers;
    headers.extend(arm.record.borrow().spec.extra_headers.iter().cloned());
    let sent = Instant::now();
    // Late is measured at the actual send: the dispatcher's wait for a slot and
    // the runtime's own delay both count.
    if measured && !read_back && sent.saturating_duration_since(intended) > LATE {
        shared.counters.borrow_mut().late += 1;
    }
    let rule = pairing.as_ref().map(|p| p.book.rule(p.key.step));
    let keep_body = keep_body || expect.needs_body() || rule.is_some_and(|r| r.needs_body());
    let keep_headers = expect.header_names();
    if let Some(p) = &pairing {
        p.book.sent(p.key, p.user, measured);
    }
    let result = arm
        .client(route.crossed)
        .send(Request {
            method: &request.method,
            path: &r.path,
            headers: &headers,
            body: r.body,
            keep_body,
            keep_headers: &keep_headers,
        })
        .await;
    let done = Instant::now();
    let ok = result.as_ref().is_ok_and(|reply| expect.met_by(reply, &r.needles));
    if let (Some(p), Some(rule)) = (&pairing, rule) {
        let answered = Answered {
            arm: route.arm,
            user: p.user,
            user_index: p.user_index,
            request: format!("{} {}", request.method, r.path),
            answer: result.as_ref().ok().map(|reply| rule.answer(reply.status, reply.body.as_deref())),
        };
        p.book.answered(p.key, answered);
    }
    shared.counters.borrow_mut().requests += 1;
    let mut record = arm.record.borrow_mut();
    record.requests += 1;
    if !measured {
        record.warmup_requests += 1;
    }
    if measured {
        if let Err(f) = &result {
            shared
                .first_error
                .borrow_mut()
                .get_or_insert_with(|| format!("{} {}: {}", request.method, r.path, f.message));
        }
        record.recorder.record(&Sample {
            series,
            corrected_us: done.saturating_duration_since(intended).as_micros() as u64,
            raw_us: done.saturating_duration_since(sent).as_micros() as u64,
            result: result.as_ref(),
            ok,
            stale: read_back && result.is_ok() && !ok,
            block: block_of(shared, intended),
        });
    }
    result.map(|reply| (reply, ok)).map_err(|_| ())
}

/// Runs one iteration: one user, its steps. `intended` is when it was meant to
/// start; `measured` says whether it falls in the measured part.
pub(super) async fn run_iteration(shared: Rc<Shared>, intended: Instant, measured: bool) {
    let (route, draw) = next_draw(&shared);
    // `once_per_user` steps run first, the first time the user is picked in the
    // arm (a login, a token) — normally done by the set-up, before the schedule.
    // While one iteration runs them, the user's other iterations in that arm wait:
    // they need what those steps extract (the token), as the same client would.
    let once_lock = shared.has_once.then(|| shared.once_locks.of(route.arm, draw.user));
    let once_guard = match &once_lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let (steps, once_steps) = steps_of(&shared, route.arm, &draw);
    run_steps(&shared, route, &draw, &steps, (once_steps, once_guard), intended, measured).await;
}

/// Runs every `once_per_user` step for every user of the population in every arm,
/// before the schedule starts, so that no request of the run waits for another's
/// login. Unmeasured; at most [`SET_UP_IN_FLIGHT`] at a time.
pub(super) async fn set_up_users(shared: &Rc<Shared>) {
    if !shared.has_once {
        return;
    }
    let slots = shared.population.borrow().slots();
    let gate = Rc::new(tokio::sync::Semaphore::new(SET_UP_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for arm in 0..shared.arms.len() {
        for user in 0..slots {
            let (shared, gate) = (Rc::clone(shared), Rc::clone(&gate));
            tasks.spawn_local(async move {
                let Ok(_permit) = gate.acquire().await else { return };
                let steps: Vec<usize> = (0..shared.scenario.steps.len())
                    .filter(|&s| {
                        shared.scenario.steps[s].once_per_user
                            && shared.population.borrow_mut().claim_once(arm, user, s)
                    })
                    .collect();
                let route = Route { arm, crossed: false };
                // A set-up step that fails (a 503 from a worker under the burst) is
                // tried again; after the last try the user's first iteration in the
                // arm runs it, as without the set-up.
                for attempt in 1..=SET_UP_TRIES {
                    let draw = Draw { user, mix_choice: None, seed: rand::random(), iteration: 0, pair: None };
                    let done = (steps.len(), None);
                    if run_steps(&shared, route, &draw, &steps, done, Instant::now(), false).await {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                let mut population = shared.population.borrow_mut();
                for &s in &steps {
                    population.release_once(arm, user, s);
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Users' set-up requests in flight at once.
const SET_UP_IN_FLIGHT: usize = 16;
/// Tries of a user's set-up steps before its first iteration is left to run them.
const SET_UP_TRIES: u64 = 3;

/// Runs `steps` of one iteration in order; the first `once.0` are the user's
/// `once_per_user` steps, during which `once.1` (the user's lock) is held.
/// Returns whether every step was sent and met its expectations.
async fn run_steps(
    shared: &Shared,
    route: Route,
    draw: &Draw,
    steps: &[usize],
    once: (usize, Option<tokio::sync::MutexGuard<'_, ()>>),
    mut intended: Instant,
    measured: bool,
) -> bool {
    let sc = &shared.scenario;
    let (once_steps, mut once_guard) = once;
    let mut all_ok = true;
    let mut rng = SmallRng::seed_from_u64(draw.seed);
    let mut picks = vec![None; sc.lists.len()];
    for (i, &s) in steps.iter().enumerate() {
        if i == once_steps {
            drop(once_guard.take());
        }
        let step = &sc.steps[s];
        let rendered = {
            let pop = shared.population.borrow();
            let mut values = StepValues {
                population: &pop,
                lists: &sc.lists,
                arm: route.arm,
                user: draw.user,
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
                if measured {
                    let mut record = shared.arms[route.arm].record.borrow_mut();
                    record.recorder.record_unsent(shared.series_of(s, draw.user), ErrorKind::Template, None);
                }
                return false;
            }
        };
        let sent = Sent { route, step: s, user: draw.user, pair: draw.pair, intended, measured };
        match run_step(shared, sent, main, read_back).await {
            Some(ok) => all_ok &= ok,
            None => return false, // a user whose request failed does not go on with the flow
        }
        if shared.stop.get() {
            return false;
        }
        if let Some(think) = step.think_time {
            tokio::time::sleep(think).await;
        }
        // The next step is meant to start as soon as this one has finished.
        intended = Instant::now();
    }
    all_ok
}

/// The [`BLOCK_MS`] block of the measured part an iteration meant to start at
/// `intended` belongs to.
fn block_of(shared: &Shared, intended: Instant) -> u32 {
    (intended.saturating_duration_since(shared.measure_start).as_millis() / u128::from(BLOCK_MS)) as u32
}

/// An iteration the open model dropped after waiting `waited` for a slot: it
/// takes its place in the pairs (its partner still runs, in the other arm) and
/// counts as an error of its arm, censored at `waited`, in the series of the
/// step it would have run first.
pub(super) fn record_dropped(shared: &Shared, intended: Instant, waited: std::time::Duration) {
    let (route, draw) = next_draw(shared);
    let sc = &shared.scenario;
    let step = match (sc.flow, draw.mix_choice) {
        (Flow::Mix, Some(choice)) => Some(choice),
        _ => (0..sc.steps.len()).find(|&s| !sc.steps[s].once_per_user),
    };
    if let Some(s) = step {
        let mut record = shared.arms[route.arm].record.borrow_mut();
        let censored = recorder::Censored { waited_us: waited.as_micros() as u64, block: block_of(shared, intended) };
        record.recorder.record_unsent(shared.series_of(s, draw.user), ErrorKind::Dropped, Some(censored));
    }
}

/// The route of the next iteration and its draw (shared by the two of a pair).
fn next_draw(shared: &Shared) -> (Route, Draw) {
    let mut rng = shared.rng.borrow_mut();
    let fresh = |rng: &mut SmallRng| {
        let iteration = shared.iteration.get();
        shared.iteration.set(iteration + 1);
        Draw {
            user: shared.population.borrow_mut().pick(rng),
            mix_choice: shared.mix.as_ref().map(|(mix, index)| index[mix.sample(rng)]),
            seed: rng.random(),
            iteration,
            pair: shared.answers.as_ref().map(|book| book.pair()),
        }
    };
    shared.alternator.borrow_mut().next(&mut rng, fresh)
}

/// The steps this iteration runs, in order, and how many of them lead as the
/// user's `once_per_user` steps in `arm` (claimed here, so no other iteration runs them).
fn steps_of(shared: &Shared, arm: usize, draw: &Draw) -> (Vec<usize>, usize) {
    let sc = &shared.scenario;
    let mut steps: Vec<usize> = (0..sc.steps.len())
        .filter(|&s| sc.steps[s].once_per_user && shared.population.borrow_mut().claim_once(arm, draw.user, s))
        .collect();
    let once_steps = steps.len();
    match (sc.flow, draw.mix_choice) {
        (Flow::Mix, Some(choice)) => steps.push(choice),
        _ => steps.extend((0..sc.steps.len()).filter(|&s| !sc.steps[s].once_per_user)),
    }
    (steps, once_steps)
}

/// Which step of which iteration is sent, and when it was meant to be.
struct Sent {
    route: Route,
    step: usize,
    user: usize,
    pair: Option<u64>,
    intended: Instant,
    measured: bool,
}

/// Sends one step (and its read-back after a successful write), extracting what
/// the step asks for. Returns whether the answer met the step's expectations, or
/// `None` when the request got no answer.
async fn run_step(shared: &Shared, sent: Sent, main: Rendered, read_back: Option<Rendered>) -> Option<bool> {
    let Sent { route, step: s, user, pair, intended, measured } = sent;
    let step = &shared.scenario.steps[s];
    // Keyed by the server the write goes to: arms tied to servers of their own
    // never share one (each arm its own lock), but crossed arms, and arms on one
    // server, write the same user's data on the same server, and a read-back
    // must not see the other arm's write.
    let lock = read_back.as_ref().map(|_| shared.write_locks.of(shared.server_of(route), user));
    let _held = match &lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let call = Call {
        request: &step.request,
        expect: &step.expect,
        series: shared.series_of(s, user),
        keep_body: !step.extract.is_empty(),
        read_back: false,
        pairing: pairing(shared, pair, s, user),
    };
    let reply = exchange(shared, route, call, main, intended, measured).await;
    if let Ok((r, true)) = &reply {
        if let Some(body) = &r.body {
            let mut pop = shared.population.borrow_mut();
            for (name, pointer) in &step.extract {
                if let Some(v) = json_pointer_text(body, pointer) {
                    pop.set_extracted(route.arm, user, name, v);
                }
            }
        }
    }
    if let (Ok((_, true)), Some(rb), Some(spec), Some(series)) =
        (&reply, read_back, &step.read_back, &shared.read_back_series[s])
    {
        let call = Call {
            request: &spec.request,
            expect: &spec.expect,
            series,
            keep_body: false,
            read_back: true,
            pairing: None,
        };
        // The read is meant to follow the write at once, as a client's would.
        let _ = exchange(shared, route, call, rb, Instant::now(), measured).await;
    }
    reply.ok().map(|(_, ok)| ok)
}

/// The pair-step of step `s`, when the run compares answers and the step takes part.
fn pairing(shared: &Shared, pair: Option<u64>, s: usize, user: usize) -> Option<Pairing<'_>> {
    let book = shared.answers.as_ref()?;
    let pair = pair?;
    book.follows(s).then(|| Pairing {
        book,
        key: PairStep { pair, step: s },
        user,
        user_index: (!shared.population.borrow().is_empty()).then_some(user),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(rng: &mut SmallRng) -> Draw {
        Draw { user: rng.random_range(0..1000), mix_choice: None, seed: rng.random(), iteration: 0, pair: None }
    }

    #[test]
    fn every_set_sends_each_arm_once_with_one_draw_in_varied_orders() {
        for arms in [2usize, 3, 5] {
            let mut alternator = ArmAlternator::new(arms, false);
            let mut rng = SmallRng::seed_from_u64(7);
            let mut firsts = vec![0u32; arms];
            for _ in 0..300 {
                let set: Vec<(Route, Draw)> = (0..arms).map(|_| alternator.next(&mut rng, draw)).collect();
                let mut seen: Vec<usize> = set.iter().map(|(r, _)| r.arm).collect();
                firsts[seen[0]] += 1;
                seen.sort_unstable();
                assert_eq!(seen, (0..arms).collect::<Vec<_>>(), "{arms} arms: each once per set");
                assert!(set.iter().all(|(r, d)| d.seed == set[0].1.seed && d.user == set[0].1.user && !r.crossed));
            }
            // Each arm goes first in about 1/arms of the sets (300 sets: far from 0).
            assert!(firsts.iter().all(|&f| f > 300 / arms as u32 / 2), "{arms} arms: {firsts:?}");
        }
    }

    #[test]
    fn two_crossed_arms_meet_each_server_once_in_every_block_of_two_pairs() {
        let mut alternator = ArmAlternator::new(2, true);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..100 {
            let block: Vec<Route> = (0..4).map(|_| alternator.next(&mut rng, draw).0).collect();
            for arm in 0..2 {
                let servers: Vec<usize> = block.iter().filter(|r| r.arm == arm).map(|r| r.server()).collect();
                assert_eq!(servers.len(), 2);
                assert_ne!(servers[0], servers[1], "arm {arm} meets both servers: {block:?}");
            }
        }
        // More than two arms never cross.
        let mut three = ArmAlternator::new(3, true);
        assert!((0..30).all(|_| !three.next(&mut rng, draw).0.crossed));
    }
}
