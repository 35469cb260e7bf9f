//! Cold isolates (executor `cold-start`): the first requests a fresh isolate
//! serves, cache on against cache off. Local `wrangler dev` offers no way to
//! start a new isolate inside a running process, so each sample restarts the
//! cache-on server (stop, start on the same persisted KV/D1 state, readiness
//! probe) and sends one iteration: the scenario's steps in order, the first of
//! them the isolate's first request after `GET /health`. The arms alternate per
//! start in pairs of random order, so drift in the machine hits both alike; the
//! arms differ only in `x-bench-cache`. KV is warmed once before the first
//! start: in production an isolate starts cold while KV is warm.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;

use super::job::{slug, summarize, AbJob, JobKind};
use super::run::JobContext;
use super::targets::Targets;
use super::AbSummary;
use crate::compare;
use crate::result::ResultDoc;
use crate::runner::{ArmSpec, RunError, RunOptions};
use crate::scenario::{Executor, Scenario};

/// The longest one start's iteration may take.
const ONE_ITERATION_LIMIT: Duration = Duration::from_secs(60);

/// The scenario as one iteration by one virtual user, without warm-up.
fn one_iteration(scenario: &Scenario) -> Scenario {
    let mut once = scenario.clone();
    once.load.executor = Executor::Iterations { vus: 1, iterations: 1, max_duration: ONE_ITERATION_LIMIT };
    once.load.warmup = Duration::ZERO;
    // Samples are not scheduled: a start's first send waits for the restart, by design.
    once.load.max_late_share = 1.0;
    once
}

fn run_once(
    once: &Scenario,
    arm: ArmSpec,
    out: &Path,
    stem: String,
    ctx: &JobContext<'_>,
    secret: Option<&str>,
) -> Result<ResultDoc, String> {
    let opts = RunOptions {
        bench_secret: secret.map(str::to_owned),
        stem: Some(stem),
        max_duration: Some(ONE_ITERATION_LIMIT),
        http_client: ctx.opts.http_client,
        cancel: Some(std::sync::Arc::clone(ctx.env.cancel)),
        tls: ctx.opts.tls.clone(),
        ..RunOptions::new(vec![arm], out.to_owned())
    };
    let outcome = crate::runner::run(once, &opts).map_err(|e| match e {
        RunError::Unreachable(m) => format!("target unreachable: {m}"),
        RunError::Setup(m) => m,
    })?;
    Ok(outcome.arms.into_iter().next().expect("one arm").doc)
}

/// Runs a cold-start job on the local stack; `targets.on` changes with every restart.
pub(super) fn run(job: AbJob<'_>, ctx: &JobContext<'_>, targets: &mut Targets) -> Result<AbSummary, String> {
    let Executor::ColdStart { starts } = job.scenario.load.executor else {
        return Err(format!("{} is not a cold-start scenario", job.scenario.name));
    };
    debug_assert_eq!(job.kind, JobKind::ColdStart);
    let secret = targets.secret.clone();
    let once = one_iteration(job.scenario);
    let out = ctx.dir.join("results").join(slug(&job.name));
    let at = |spec: &ArmSpec, url: &str| ArmSpec { target: url.to_owned(), ..spec.clone() };
    // The cache-on arm's entries in KV, as a deployment that has served traffic has them.
    run_once(&once, at(&job.arms[1], &targets.on), &out, "kv-warm-up".into(), ctx, secret.as_deref())?;
    let mut merged: [Option<ResultDoc>; 2] = [None, None];
    let mut rng = rand::rng();
    for i in 0..starts {
        if ctx.env.cancel.load(Ordering::Relaxed) {
            break;
        }
        let order = if rng.random::<bool>() { [0, 1] } else { [1, 0] };
        for arm in order {
            targets.restart_on(ctx.env)?;
            let spec = at(&job.arms[arm], &targets.on);
            let label = spec.label.clone().unwrap_or_default();
            let doc = run_once(&once, spec, &out, format!("{}-{i}", slug(&label)), ctx, secret.as_deref())?;
            merged[arm] = Some(match merged[arm].take() {
                None => doc,
                Some(earlier) => crate::merge::merge(&earlier, &doc)?,
            });
        }
        ctx.env.observer.say(&format!("cold start {}/{starts}: both arms served by a fresh isolate", i + 1));
    }
    let [Some(mut a), Some(mut b)] = merged else {
        return Err("interrupted before the first cold start".to_owned());
    };
    // One iteration per start: nothing is scheduled, so nothing can be omitted.
    for d in [&mut a, &mut b] {
        d.run.warnings.retain(|w| !w.starts_with("closed model"));
    }
    // Starts are independent samples: each arm's are resampled on their own (not
    // jointly: an arm's iteration may span one 100 ms block or two).
    let mut comparison = compare::compare(&a, &b, false, &[], &ctx.opts.compare)?;
    comparison.notes.retain(|n| !n.contains("one after the other"));
    comparison.notes.push(format!(
        "cold starts: each of the {} samples per arm is one iteration served by a freshly started wrangler dev \
         (its first request after the readiness probe GET /health); the arms alternate per start in pairs of \
         random order",
        a.run.requests.min(b.run.requests) / once.steps.len().max(1) as u64
    ));
    let path = out.join("cold-start-merged.json");
    crate::runner::finish::write_docs(&path, &[a.clone(), b.clone()])
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let source = path.strip_prefix(ctx.dir).unwrap_or(&path).display().to_string();
    Ok(summarize(&job.into_meta(), &[&a, &b], &comparison, ctx.dir, source, ctx.env.observer))
}
