//! What a bench will run and for how long: the standard scenarios, the layers of
//! the ablation, `--quick`'s shortening, the plan said up front, and every A/B
//! job under every measurement with the notes that say how they were designed.

use std::time::Duration;

use super::job::{arm, AbJob, JobKind};
use super::targets::Targets;
use super::{strategies, BenchError, BenchOptions};
use crate::result::Measurement;
use crate::runner::ArmSpec;
use crate::scenario::{format_duration, Scenario};
use crate::target::{worker, BenchWorker};

/// The standard scenarios, in the order they run.
pub const STANDARD_SCENARIOS: [&str; 5] = ["auth", "model-list", "settings-change", "mixed", "cold-start"];

/// The layers of the ablation, each switched on alone.
pub const LAYERS: [&str; 3] = ["bot", "model-config", "user-models"];

/// `--quick`: measured seconds and warm-up per run.
pub const QUICK_MEASURED: Duration = Duration::from_secs(5);

pub const QUICK_WARMUP: Duration = Duration::from_secs(2);

/// Roughly what starting the local server(s) costs with an up-to-date build
/// (migrations, `wrangler dev`'s double start), for the up-front estimate.
const LOCAL_STARTUP: Duration = Duration::from_secs(45);

/// The promise of issue 7: the default run on a 2-core machine.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(600);

/// The scenario the per-layer ablation runs, if any.
pub fn ablation_scenario<'a>(scenarios: &'a [Scenario], opts: &BenchOptions) -> Option<&'a Scenario> {
    let warm = || scenarios.iter().filter(|s| !is_cold(s));
    match opts.ablation.as_ref()? {
        Some(name) => warm().find(|s| &s.name == name),
        None => warm().find(|s| s.name == "mixed").or(warm().next_back()),
    }
}

/// A cold-start scenario: run by `cold.rs`, never ablated.
pub fn is_cold(s: &Scenario) -> bool {
    matches!(s.load.executor, crate::scenario::Executor::ColdStart { .. })
}

/// Loads the scenarios and shortens them for `--quick`.
pub fn load_scenarios(opts: &BenchOptions) -> Result<Vec<Scenario>, BenchError> {
    let mut out = Vec::new();
    for f in &opts.scenarios {
        let mut sc = crate::scenario::load(f).map_err(|e| BenchError::Setup(e.to_string()))?;
        if opts.quick {
            shorten(&mut sc, QUICK_MEASURED, QUICK_WARMUP);
        }
        if let Some(share) = opts.max_late_share {
            sc.load.max_late_share = share;
        }
        out.push(sc);
    }
    if let Some(Some(name)) = &opts.ablation {
        if !out.iter().any(|s| &s.name == name) {
            return Err(BenchError::Setup(format!(
                "the ablation scenario {name:?} is not among the scenarios ({})",
                out.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(out)
}

/// At most `measured` of measured load after at most `warmup` of warm-up: a
/// smoke test, whose runs are not invalidated by late sends (they are warned
/// about): right after the workers start, on a small machine, the harness waits
/// for a core for 35–50 % of its sends.
pub fn shorten(sc: &mut Scenario, measured: Duration, warmup: Duration) {
    sc.load.warmup = sc.load.warmup.min(warmup);
    sc.load.executor.shorten(measured);
    sc.load.max_late_share = 1.0;
}

/// The plan in words, with its expected duration.
pub fn plan(
    scenarios: &[Scenario],
    opts: &BenchOptions,
    local: bool,
    ablation: bool,
    measurements: usize,
    opts_strategies: usize,
) -> (String, Duration) {
    // With --until-decided a run may take every look its budget allows.
    let looks = |s: &Scenario| crate::sequential::planned_looks(s.load.executor.duration(), opts.until_decided);
    let run_time = |s: &Scenario| (s.load.warmup + s.load.executor.duration()) * looks(s);
    // With --strategies every warm scenario runs once per strategy.
    let per_scenario = opts_strategies.max(1) as u32;
    let mut total: Duration =
        scenarios.iter().map(|s| if is_cold(s) { run_time(s) } else { run_time(s) * per_scenario }).sum();
    let mut lines = Vec::new();
    let versus = match &opts.recipe {
        _ if opts_strategies > 0 => format!("cache-off vs each of {opts_strategies} strategies"),
        Some(r) => {
            use crate::recipe::CacheRole;
            format!("{} vs {}", r.arm(CacheRole::Off).label, r.arm(CacheRole::On).label)
        }
        None => "cache-off vs cache-on".to_owned(),
    };
    for s in scenarios.iter().filter(|s| !is_cold(s)) {
        lines.push(format!(
            "  {:<16} A/B {versus}, {} warm-up + {} measured{}",
            s.name,
            format_duration(s.load.warmup),
            format_duration(s.load.executor.duration()),
            if looks(s) > 1 { format!(", up to {} times until decided", looks(s)) } else { String::new() }
        ));
    }
    if let Some(s) = ablation_scenario(scenarios, opts).filter(|_| ablation) {
        let name = &s.name;
        for layer in LAYERS {
            total += run_time(s);
            lines.push(format!(
                "  {:<16} A/B off vs only `{layer}` on, scenario {name}, {} warm-up + {} measured",
                format!("layer {layer}"),
                format_duration(s.load.warmup),
                format_duration(s.load.executor.duration())
            ));
        }
    }
    // Every warm scenario's A/A control (it needs the per-request switch: the
    // local stack's own secret, or the one given for a deployment).
    if local || opts.bench_secret.is_some() {
        let times = opts.controls.max(1);
        let arms = if times > 1 {
            format!("cache-off on both sides, {times} runs pooled")
        } else {
            "cache-off on both sides".to_owned()
        };
        for s in scenarios.iter().filter(|s| !is_cold(s)) {
            total += run_time(s) * times;
            lines.push(control_line(s, &arms));
        }
    }
    // Cold starts run last: they restart the cache-on server.
    for s in scenarios.iter().filter(|s| is_cold(s)) {
        lines.push(format!(
            "  {:<16} cache-off vs cache-on, {} (about {} with restarts; local stack only)",
            s.name,
            s.load.executor.describe("", Duration::ZERO),
            format_duration(s.load.executor.duration())
        ));
    }
    if opts_strategies > 0 {
        total += super::staleness::MAX_WAIT;
        lines.push(format!(
            "  {:<16} {opts_strategies} strategies × {} writes, each read until fresh at two locations (at most {} s)",
            "staleness probes",
            super::staleness::PROBES_PER_STRATEGY,
            super::staleness::MAX_WAIT.as_secs()
        ));
    }
    // Every run again under each latency profile.
    let measurements = measurements.max(1) as u32;
    total *= measurements;
    if measurements > 1 {
        lines.push(format!("  … all of the above under each of {measurements} measurements (--profile)"));
    }
    // Reports (bootstrap CIs, charts) take a few seconds per run.
    total += Duration::from_secs(3) * lines.len() as u32 * measurements;
    if local {
        total += LOCAL_STARTUP;
    }
    (lines.join("\n"), total)
}

/// The A/A control of scenario `name`: its verdicts are held to it.
pub fn control_name(name: &str) -> String {
    format!("A/A control {name}")
}

/// The `k`th run (from 1) of scenario `name`'s A/A control: repeats are
/// numbered from the second on, and pooled (`pool.rs`).
fn control_run_name(name: &str, k: u32) -> String {
    match k {
        1 => control_name(name),
        k => format!("{} #{k}", control_name(name)),
    }
}

/// The plan's line for scenario `s`'s A/A control, `arms` saying what is run.
fn control_line(s: &Scenario, arms: &str) -> String {
    format!(
        "  {:<16} {arms} (the noise floor of {}), {} warm-up + {} measured",
        control_name(&s.name),
        s.name,
        format_duration(s.load.warmup),
        format_duration(s.load.executor.duration())
    )
}

/// A recipe's plan: its scenarios, then each one's A/A control, each after a
/// restart of its instances (reset and seeding take about as long as a start).
fn recipe_plan(scenarios: &[Scenario], text: String, estimate: Duration, controls: u32) -> (String, Duration) {
    const RESTART: Duration = Duration::from_secs(15);
    let warm: Vec<&Scenario> = scenarios.iter().filter(|s| !is_cold(s)).collect();
    let mut lines = vec![text];
    let times = controls.max(1);
    let mut total = estimate + RESTART * ((1 + times) * warm.len() as u32);
    let arms = match times {
        1 => "the cache-off arm on two instances".to_owned(),
        n => format!("the cache-off arm on two instances, {n} runs pooled"),
    };
    for s in &warm {
        lines.push(control_line(s, &arms));
        total += (s.load.warmup + s.load.executor.duration()) * times;
    }
    (lines.join("\n"), total)
}

/// How many strategies `--strategies` names, for the plan printed before the
/// target is asked (`all`: every strategy this version of the worker has).
pub(super) fn strategy_count(opts: &BenchOptions) -> usize {
    const WORKER_STRATEGIES: usize = bench_seed::strategies::NAMES.len();
    let names: Vec<&str> =
        opts.strategies.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.contains(&strategies::ALL) {
        WORKER_STRATEGIES
    } else {
        names.len()
    }
}

/// The plan and its expected wall time, said before anything starts.
pub(super) fn announce(
    scenarios: &[Scenario],
    opts: &BenchOptions,
    local: bool,
    measurements: usize,
    strategies: usize,
) -> String {
    let (plan_text, estimate) =
        plan(scenarios, opts, local, local || opts.bench_secret.is_some(), measurements, strategies);
    let (plan_text, estimate) = match &opts.recipe {
        Some(_) => recipe_plan(scenarios, plan_text, estimate, opts.controls),
        None => (plan_text, estimate),
    };
    let head = format!("harness bench: {} run(s):\n{plan_text}", plan_text.lines().count());
    let budget = if strategies > 0 {
        format!("--strategies: every warm scenario runs {strategies} times")
    } else if measurements > 1 {
        format!("{measurements} measurements: each adds about as much as the first")
    } else {
        format!("the default run finishes in under {} minutes on a 2-core machine", DEFAULT_BUDGET.as_secs() / 60)
    };
    format!(
        "{head}\nexpected wall time: about {} ({}); {budget}",
        format_duration(Duration::from_secs(estimate.as_secs())),
        if opts.quick { "--quick" } else { "full" },
    )
}

/// The A/Bs to run, under each measurement in turn (measured, then each latency
/// profile): every scenario (cache off vs on), then the ablation's layers, then
/// the A/A control. With the bench secret one server serves both arms, or two
/// servers both arms each (the arm's cache chosen per request with
/// `x-bench-cache`), balanced per block of pairs; without it each arm is tied to
/// its server.
pub(super) fn jobs<'a>(
    scenarios: &'a [Scenario],
    opts: &BenchOptions,
    targets: &Targets,
    measurements: &[Measurement],
    strategies: &[strategies::StrategyInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<AbJob<'a>>, BenchError> {
    if let Some(stack) = &targets.recipe {
        let jobs = recipe_jobs(scenarios, targets, stack, opts.controls);
        if jobs.is_empty() {
            return Err(BenchError::Setup("nothing to run: no scenario".into()));
        }
        return Ok(jobs);
    }
    let crossed = targets.secret.is_some() && targets.on != targets.off;
    if targets.secret.is_none() {
        notes.push(
            "without --bench-secret each arm is tied to its target (cache-off to one, cache-on to the other): a \
             difference between the two deployments reads as a cache effect, and there is no A/A control"
                .to_owned(),
        );
    } else if targets.on == targets.off {
        notes.push(
            "both arms ran on one server (each request's cache set with x-bench-cache), on one KV and one D1 \
             state as production's requests share one namespace: a key one request cached is there for the next, \
             whichever arm's turn it is, and there is no instance difference between the arms to confound"
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
             scenario; each run in a fresh bench namespace (x-bench-namespace), so every strategy started cold, \
             in KV and in the worker's isolate. Claims are judged on \
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
        measurement.profile().map(|p| vec![(worker::PROFILE.to_owned(), p.to_owned())]).unwrap_or_default();
    let pair_with = |a: (&str, &str), b: (&str, &str), strategy: Option<&str>| {
        let mut headers = profile_header.clone();
        headers.extend(strategy.map(|s| (worker::STRATEGY.to_owned(), s.to_owned())));
        // Each run in a namespace of its own: it starts with nothing any earlier
        // run cached, in KV or in an isolate (both arms share it, as production's
        // requests share one namespace).
        let (name, id) = worker::fresh_namespace();
        headers.push((name.to_owned(), id));
        match &targets.secret {
            Some(secret) => vec![
                switched(a.0, &targets.off, headers.clone(), secret, a.1),
                switched(b.0, &targets.on, headers, secret, b.1),
            ],
            None => vec![arm(a.0, &targets.off, Vec::new()), arm(b.0, &targets.on, Vec::new())],
        }
    };
    let pair = |a: (&str, &str), b: (&str, &str)| pair_with(a, b, None);
    let named = |name: &str| match measurement {
        Measurement::Measured => name.to_owned(),
        modelled => format!("{name} [{modelled}]"),
    };
    let job = |name: String, scenario: &'a Scenario, kind: JobKind<'a>, arms: Vec<ArmSpec>| {
        AbJob::new(name, scenario, kind, arms, crossed, measurement.clone())
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
    // Each scenario's A/A control: the same arm on both sides, in the design
    // of the A/Bs (one server, or crossed over two) — what the bench
    // reports when there is nothing to find, for the verdicts of that scenario.
    if targets.secret.is_some() {
        let controlled: Vec<&'a Scenario> = scenarios
            .iter()
            .filter(|s| !is_cold(s) && jobs.iter().any(|j: &AbJob| j.scenario.name == s.name))
            .collect();
        for s in controlled {
            // Repeats (`--controls N`) are pooled after the runs (`pool.rs`).
            for k in 1..=opts.controls.max(1) {
                let arms = pair(("cache-off", "off"), ("cache-off'", "off"));
                jobs.push(job(named(&control_run_name(&s.name, k)), s, JobKind::Control, arms));
            }
        }
    }
    match (ablation_scenario(scenarios, opts), &targets.secret) {
        (Some(s), Some(_)) => {
            for layer in LAYERS {
                let mut arms = pair(("off", "off"), (&format!("only {layer}"), layer));
                if let Some((label, mut skip)) = without_work(layer, &profile_header, targets, crossed) {
                    // The overhead's third arm: the work itself skipped (`crate::overhead`),
                    // in the run's namespace.
                    skip.extend(arms[0].extra_headers.iter().filter(|(k, _)| k == worker::NAMESPACE).cloned());
                    arms.push(switched(label, &targets.on, skip, targets.secret.as_deref().unwrap_or_default(), "off"));
                }
                jobs.push(job(named(&format!("layer {layer}")), s, JobKind::Layer(layer), arms));
            }
        }
        (Some(_), None) => {
            skipped.push("per-layer ablation skipped: it needs --bench-secret (x-bench-cache)".to_owned())
        }
        _ => {}
    }
    jobs
}

/// A recipe's A/Bs: every scenario (its cache-off arm against its cache-on
/// arm), then the A/A control — crossed over both instances when the recipe has
/// a per-request switch, else the cache-off arm on two instances of its own.
/// Cold starts, layers, profiles and strategies need this project's worker.
fn recipe_jobs<'a>(
    scenarios: &'a [Scenario],
    targets: &Targets,
    stack: &super::recipe_stack::RecipeStack,
    controls: u32,
) -> Vec<AbJob<'a>> {
    use crate::recipe::CacheRole;
    let recipe = &stack.recipe;
    let (off, on) = (recipe.arm(CacheRole::Off), recipe.arm(CacheRole::On));
    let crossed = recipe.switch.is_some();
    let arm_on = |label: &str, value: &crate::recipe::Arm, url: &str| arm(label, url, stack.switch_headers(value));
    let job = |name: String, scenario: &'a Scenario, kind: JobKind<'a>, arms: Vec<ArmSpec>| {
        AbJob::new(name, scenario, kind, arms, crossed, Measurement::Measured)
    };
    let warm: Vec<&Scenario> = scenarios.iter().filter(|s| !is_cold(s)).collect();
    let mut jobs: Vec<AbJob> = warm
        .iter()
        .map(|s| {
            let arms = vec![arm_on(&off.label, off, &targets.off), arm_on(&on.label, on, &targets.on)];
            job(s.name.clone(), s, JobKind::Scenario, arms)
        })
        .collect();
    for s in warm {
        let twin = format!("{}'", off.label);
        let arms = match targets.twin() {
            Some(url) => vec![arm(&off.label, &targets.off, Vec::new()), arm(&twin, &url, Vec::new())],
            None => vec![arm_on(&off.label, off, &targets.off), arm_on(&twin, off, &targets.on)],
        };
        for k in 1..=controls.max(1) {
            jobs.push(job(control_run_name(&s.name, k), s, JobKind::Control, arms.clone()));
        }
    }
    jobs
}

/// The arm of a layer's run without the work the layer caches, when the worker
/// can skip it (one server, the bench secret): its label and headers. Only the
/// bot check can be skipped (a model list cannot be served without reading it).
fn without_work(
    layer: &str,
    profile_header: &[(String, String)],
    targets: &Targets,
    crossed: bool,
) -> Option<(&'static str, Vec<(String, String)>)> {
    // Crossing balances two arms over two servers: a third has no place in it.
    if crossed {
        return None;
    }
    targets.secret.as_ref()?;
    (layer == "bot").then(|| {
        let mut headers = profile_header.to_vec();
        headers.push((worker::BOT_CHECK.to_owned(), "skip".to_owned()));
        ("no bot check", headers)
    })
}

/// An arm of the bench's worker with its cache set per request.
pub(super) fn switched(label: &str, url: &str, headers: Vec<(String, String)>, secret: &str, cache: &str) -> ArmSpec {
    ArmSpec::with_cache(label, url, headers, &BenchWorker { required: true }, secret, cache)
        .expect("the bench's worker switches its cache per request")
}
