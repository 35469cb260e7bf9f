//! The bench's run loop: the jobs in order until one cannot go on (Ctrl-C, a
//! dead server, a failed seeding), each seeded before it when asked, then the
//! staleness probes of `--strategies`. What it has to say goes to the observer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::job::{run_ab, AbJob, JobKind};
use super::targets::Targets;
use super::{cold, seeding, staleness, strategies, AbStatus, AbSummary, BenchOptions, Env};
use crate::claims::Claim;
use crate::findings::ranking;
use crate::result::Measurement;
use crate::target::BenchWorker;

/// What every job of one bench shares.
pub(super) struct JobContext<'a> {
    pub opts: &'a BenchOptions,
    pub claims: &'a [Claim],
    pub dir: &'a Path,
    pub env: &'a Env<'a>,
    pub local: bool,
    /// Seed before each scenario run, with these users per seed.
    pub seed_users: Option<BTreeMap<u64, u32>>,
}

/// Runs the jobs in order until one cannot go on (Ctrl-C, a dead server, a
/// failed seeding); returns their summaries and why the bench is invalid.
pub(super) fn run_jobs(
    jobs: Vec<AbJob>,
    ctx: &JobContext<'_>,
    targets: &mut Targets,
    strategies: &[strategies::StrategyInfo],
    measurements: &[Measurement],
) -> (Vec<AbSummary>, Vec<String>, Vec<staleness::Staleness>) {
    let (runs, mut invalid_reasons) = run_ab_jobs(jobs, ctx, targets);
    let mut probed = Vec::new();
    if strategies.is_empty() || !invalid_reasons.is_empty() || ctx.env.cancel.load(Ordering::Relaxed) {
        return (runs, invalid_reasons, probed);
    }
    let secret = targets.secret.clone().expect("strategies need the secret");
    for m in measurements {
        ctx.env.observer.say(&format!(
            "\n== staleness probes, {m}: {} strategies × {} writes, each read at two locations until fresh (at most {} s) ==",
            strategies.len(),
            staleness::PROBES_PER_STRATEGY,
            staleness::MAX_WAIT.as_secs()
        ));
        let found = staleness::probe_all(&ctx.opts.tls, &targets.on, &secret, strategies, m);
        for s in &found {
            ctx.env.observer.say(&ranking::staleness_line(s));
            invalid_reasons.extend(s.errors.iter().map(|e| format!("staleness probe of {} ({m}): {e}", s.strategy)));
        }
        probed.extend(found);
    }
    (runs, invalid_reasons, probed)
}

fn run_ab_jobs(jobs: Vec<AbJob>, ctx: &JobContext<'_>, targets: &mut Targets) -> (Vec<AbSummary>, Vec<String>) {
    let mut invalid_reasons = Vec::new();
    let mut runs = Vec::new();
    let total = jobs.len();
    for (i, job) in jobs.into_iter().enumerate() {
        if ctx.env.cancel.load(Ordering::Relaxed) {
            invalid_reasons.push("interrupted (Ctrl-C): the runs after it did not happen".to_owned());
            break;
        }
        if let Some(dead) = targets.dead_server() {
            invalid_reasons.push(format!("{dead}; the runs from {} on did not happen", job.name));
            break;
        }
        let labels: Vec<&str> = job.arms.iter().map(|a| a.label.as_deref().unwrap_or("?")).collect();
        ctx.env.observer.say(&format!("\n== [{}/{total}] {} ({}) ==", i + 1, job.name, labels.join(" vs ")));
        if let Err(e) = targets.prepare(job.kind == JobKind::Control, ctx.env) {
            invalid_reasons.push(format!("starting the recipe's instances before {} failed: {e}", job.name));
            break;
        }
        if let (Some(users), false) = (&ctx.seed_users, matches!(job.kind, JobKind::Layer(_))) {
            let secret = targets.secret.as_deref().expect("seeding needs the secret");
            let urls = [targets.on.as_str(), targets.off.as_str()];
            let worker = BenchWorker { required: true };
            if let Err(e) = seeding::seed_all(&worker, ctx.env.setup, &urls, secret, users, ctx.local) {
                invalid_reasons.push(format!("seeding before {} failed: {e}", job.name));
                break;
            }
        }
        let name = job.name.clone();
        let ran = match job.kind {
            JobKind::ColdStart => cold::run(job, ctx, targets),
            _ => run_ab(job, ctx, targets.secret.as_deref(), targets.users_secret()),
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
