//! What a bench will run and for how long: the standard scenarios, the layers of
//! the ablation, `--quick`'s shortening, and the plan printed up front.

use std::time::Duration;

use super::{BenchError, BenchOptions};
use crate::scenario::{format_duration, Scenario};

/// The standard scenarios, in the order they run.
pub const STANDARD_SCENARIOS: [&str; 5] = ["auth", "model-list", "settings-change", "mixed", "cold-start"];

/// The layers of the ablation, each switched on alone.
pub const LAYERS: [&str; 3] = ["bot", "model-config", "user-models"];

/// `--quick`: measured seconds and warm-up per run.
pub const QUICK_MEASURED: Duration = Duration::from_secs(5);

pub const QUICK_WARMUP: Duration = Duration::from_secs(2);

/// Roughly what starting the two local servers costs with an up-to-date build
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
    let versus = if opts_strategies > 0 {
        format!("cache-off vs each of {opts_strategies} strategies")
    } else {
        "cache-off vs cache-on".to_owned()
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
        total += run_time(s);
        lines.push(format!(
            "  {:<16} A/A cache-off on both sides (the noise floor), scenario {name}, {} warm-up + {} measured",
            "A/A control",
            format_duration(s.load.warmup),
            format_duration(s.load.executor.duration())
        ));
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
