//! `--strategies`: after the ranking's runs, each ranking's tied leaders (the
//! strategies sharing the first rank, `ranking::tied_leaders`) re-run against
//! each other as the arms of one interleaved run on the one server, every arm
//! with the cache on and its strategy, and ranked from their pairwise changes
//! (`findings::head_to_head`). Seeded as every scenario run is.

use super::job::run_options;
use super::plan::switched;
use super::run::JobContext;
use super::targets::Targets;
use super::{seeding, AbSummary};
use crate::compare::{self, CompareOptions};
use crate::findings::head_to_head::{rank, HeadToHead};
use crate::findings::{ranking, status_of};
use crate::result::{Measurement, ResultDoc};
use crate::runner::{self, ArmSpec, MAX_ARMS};
use crate::scenario::Scenario;
use crate::stats::Metric;
use crate::target::{worker, BenchWorker};

/// Every ranking's head-to-head, in the order of the rankings; the reasons the
/// bench is invalid if one could not run.
pub(super) fn run_all(
    ctx: &JobContext<'_>,
    targets: &mut Targets,
    scenarios: &[Scenario],
    runs: &[AbSummary],
) -> (Vec<HeadToHead>, Vec<String>) {
    let mut done = Vec::new();
    let mut invalid = Vec::new();
    for (measurement, name, leaders) in ranking::tied_leaders(runs) {
        let Some(scenario) = scenarios.iter().find(|s| s.name == name) else { continue };
        if ctx.env.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            invalid.push("interrupted (Ctrl-C): the head-to-heads after it did not happen".to_owned());
            break;
        }
        let leaders: Vec<String> = leaders.into_iter().take(MAX_ARMS).collect();
        ctx.env.observer.say(&format!(
            "\n== head-to-head, {name}, {measurement}: {} share the first rank; one run, interleaved ==",
            leaders.join(", ")
        ));
        match run_one(ctx, targets, scenario, &measurement, &leaders) {
            Ok(h) => {
                for row in &h.rows {
                    ctx.env
                        .observer
                        .say(&format!("  {:>3} {:<22} p50 {:.2} ms", row.rank_words, row.strategy, row.p50_ms));
                }
                invalid.extend(h.invalid_reasons.iter().map(|r| format!("head-to-head {name}: {r}")));
                done.push(h);
            }
            Err(e) => {
                invalid.push(format!("head-to-head {name} ({measurement}): {e}"));
                break;
            }
        }
    }
    (done, invalid)
}

/// One head-to-head: seeded, run, every pair compared.
fn run_one(
    ctx: &JobContext<'_>,
    targets: &mut Targets,
    scenario: &Scenario,
    measurement: &Measurement,
    leaders: &[String],
) -> Result<HeadToHead, String> {
    let secret = targets.secret.clone().ok_or("a head-to-head needs the bench secret")?;
    targets.prepare(false, ctx.env).map_err(|e| e.to_string())?;
    if let Some(users) = &ctx.seed_users {
        let urls = [targets.on.as_str()];
        seeding::seed_all(&BenchWorker { required: true }, ctx.env.setup, &urls, &secret, users, ctx.local)?;
    }
    let (name, namespace) = worker::fresh_namespace();
    let arms: Vec<ArmSpec> = leaders
        .iter()
        .map(|strategy| {
            let mut headers: Vec<(String, String)> =
                measurement.profile().map(|p| vec![(worker::PROFILE.to_owned(), p.to_owned())]).unwrap_or_default();
            headers.push((worker::STRATEGY.to_owned(), strategy.clone()));
            headers.push((name.to_owned(), namespace.clone()));
            switched(strategy, &targets.on, headers, &secret, "on")
        })
        .collect();
    let name = format!("head-to-head · {} [{measurement}]", scenario.name);
    let opts = run_options(ctx, &name, arms, Some(&secret), targets.users_secret());
    let outcome = runner::run(scenario, &opts).map_err(|e| e.to_string())?;
    let docs: Vec<&ResultDoc> = outcome.arms.iter().map(|a| &a.doc).collect();
    let pairs = leaders.len() * (leaders.len() - 1) / 2;
    let per_pair = CompareOptions { alpha: ctx.opts.compare.alpha / pairs.max(1) as f64, ..ctx.opts.compare.clone() };
    let p50_of = |d: &ResultDoc| {
        d.all().and_then(|s| s.blocks.as_ref()).map_or(f64::NAN, |b| Metric::P50.of(&b.to_blocks().dist()))
    };
    let p50: Vec<f64> = docs.iter().map(|d| p50_of(d)).collect();
    let (rows, pairs) = rank(leaders, &p50, |i, j| {
        let c = compare::compare_arms(docs[i], docs[j], true, &per_pair).ok()?;
        c.series.iter().find(|s| s.series.is_all() && !s.series.is_server_side())?.metric(Metric::P50).cloned()
    });
    let invalid_reasons: Vec<String> = docs
        .iter()
        .flat_map(|d| {
            let label = d.metadata.variant.clone().unwrap_or_default();
            d.run.invalid_reasons.iter().map(move |r| format!("{label}: {r}"))
        })
        .collect();
    Ok(HeadToHead {
        measurement: measurement.to_string(),
        scenario: scenario.name.clone(),
        status: status_of(&docs).to_string(),
        invalid_reasons,
        result: outcome.files.json.strip_prefix(ctx.dir).unwrap_or(&outcome.files.json).display().to_string(),
        confidence_per_pair: 1.0 - per_pair.alpha,
        rows,
        pairs,
    })
}
