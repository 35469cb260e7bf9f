//! One A/B of the bench: what it stands for ([`JobKind`]), running it
//! (interleaved, possibly in stages until decided), and its summary and report.

use std::path::Path;
use std::sync::Arc;

use super::observer::FinishedJob;
use super::run::JobContext;
use super::{AbStatus, AbSummary, Observer};
use crate::claims::{Claim, ClaimVerdict, Verdict};
use crate::compare::{self, CompareOptions, Comparison};
use crate::findings::{rows, status_of};
use crate::overhead::OverheadArms;
use crate::result::{self, Measurement, ResultDoc};
use crate::runner::{ArmSpec, RunError, RunOptions};
use crate::scenario::Scenario;
use crate::sequential;

/// What an A/B of the bench stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind<'a> {
    /// A scenario, cache off against cache on.
    Scenario,
    /// One layer alone against all off, on the ablation scenario.
    Layer(&'a str),
    /// Cache off on both sides, two instances: the noise floor.
    Control,
    /// A fresh isolate per sample (executor `cold-start`, `cold.rs`).
    ColdStart,
}

/// One A/B: run, compare, report; the server check after it.
pub(super) struct AbJob<'a> {
    pub name: String,
    pub scenario: &'a Scenario,
    pub kind: JobKind<'a>,
    pub arms: Vec<ArmSpec>,
    /// Each arm goes to both arms' servers, balanced (see `RunOptions::cross_servers`).
    pub cross_servers: bool,
    /// Measured, or under a latency profile (both arms send `x-bench-profile`).
    pub measurement: Measurement,
    /// The cache strategy both arms send (`x-bench-strategy`), if one was chosen.
    pub strategy: Option<String>,
}

impl<'a> AbJob<'a> {
    /// A job of the worker's default strategy.
    pub(super) fn new(
        name: String,
        scenario: &'a Scenario,
        kind: JobKind<'a>,
        arms: Vec<ArmSpec>,
        cross_servers: bool,
        measurement: Measurement,
    ) -> AbJob<'a> {
        AbJob { name, scenario, kind, arms, cross_servers, measurement, strategy: None }
    }
}

/// Runs `job`; `secret` is the bench protocol's (none for a recipe's worker),
/// `users_secret` derives the users' credentials.
pub(super) fn run_ab(
    job: AbJob,
    ctx: &JobContext<'_>,
    secret: Option<&str>,
    users_secret: Option<&str>,
) -> Result<AbSummary, String> {
    let (opts, claims, dir) = (ctx.opts, ctx.claims, ctx.dir);
    let run_opts = RunOptions {
        cross_servers: job.cross_servers,
        ..run_options(ctx, &job.name, job.arms.clone(), secret, users_secret)
    };
    // A layer's run judges the claims about that layer; a scenario run all of
    // them (shown beside the layer's verdict); the control none.
    let judged: Vec<Claim> = match job.kind {
        // Claims are about the worker's default strategy; the others are ranked.
        JobKind::Scenario if job.strategy.as_deref().is_some_and(|s| s != super::strategies::DEFAULT) => Vec::new(),
        JobKind::Scenario => claims.to_vec(),
        JobKind::Layer(layer) => claims.iter().filter(|c| c.layer.as_deref() == Some(layer)).cloned().collect(),
        JobKind::Control | JobKind::ColdStart => Vec::new(),
    };
    let staged = sequential::run_stages(
        job.scenario,
        &run_opts,
        opts.until_decided,
        opts.compare.alpha,
        &sequential::decided,
        |d, alpha| {
            compare::compare(&d[0], &d[1], true, &judged, &CompareOptions { alpha, ..opts.compare.clone() }).map(Some)
        },
    )
    .map_err(|e| match e {
        RunError::Unreachable(m) => format!("target unreachable: {m}"),
        RunError::Setup(m) => m,
    })?;
    let (a, b) = (&staged.arms[0], &staged.arms[1]);
    let mut comparison = staged.comparison.clone().expect("an A/B is always compared");
    if let Some(without) = staged.arms.get(2) {
        judge_overheads(&mut comparison, &judged, OverheadArms { without, uncached: a, cached: b }, &opts.compare);
    }
    // The full tables are in the run's report; the terminal gets the plain words.
    for d in &staged.arms {
        let label = d.metadata.variant.as_deref().unwrap_or("?");
        let r = &d.run;
        ctx.env.observer.say(&format!(
            "{label}: {} measured requests (+{} in warm-up), the schedule (all arms) at {:.1} it/s, {:?}{}",
            r.requests.saturating_sub(r.warmup_requests),
            r.warmup_requests,
            r.achieved_rate,
            r.status,
            if r.invalid_reasons.is_empty() { String::new() } else { format!(": {}", r.invalid_reasons.join("; ")) }
        ));
    }
    for s in comparison.series.iter().filter(|s| s.series.is_headline() && !s.series.is_server_side()) {
        ctx.env.observer.say(&format!("  {}", s.summary));
    }
    let source = staged.json.strip_prefix(dir).unwrap_or(&staged.json).display().to_string();
    let docs: Vec<&ResultDoc> = staged.arms.iter().collect();
    Ok(summarize(&job.into_meta(), &docs, &comparison, dir, source, ctx.env.observer))
}

/// The overhead claims of a run with an arm without the work (its third),
/// judged on the overhead itself rather than bounded by whole requests.
fn judge_overheads(comparison: &mut Comparison, judged: &[Claim], arms: OverheadArms<'_>, opts: &CompareOptions) {
    for verdict in &mut comparison.claims {
        if let Some(claim) = judged.iter().find(|c| c.overhead && c.name == verdict.name) {
            *verdict = crate::overhead::judge(claim, &arms, verdict, opts);
        }
    }
}

/// The options of a bench's run named `name` with `arms` (uncrossed).
pub(super) fn run_options(
    ctx: &JobContext<'_>,
    name: &str,
    arms: Vec<ArmSpec>,
    secret: Option<&str>,
    users_secret: Option<&str>,
) -> RunOptions {
    let opts = ctx.opts;
    RunOptions {
        bench_secret: secret.map(str::to_owned),
        users_secret: users_secret.map(str::to_owned),
        progress: opts.progress,
        stem: Some(slug(name)),
        http_client: opts.http_client,
        cancel: Some(Arc::clone(ctx.env.cancel)),
        threads: opts.threads,
        shard: opts.shard,
        live: opts.live.clone(),
        tls: opts.tls.clone(),
        align_start: opts.align_start,
        ..RunOptions::new(arms, ctx.dir.join("results"))
    }
}

/// What a finished A/B's summary says of the job, besides its results.
pub(super) struct JobMeta {
    pub name: String,
    pub scenario: String,
    pub layer: Option<String>,
    pub control: bool,
    pub cold_start: bool,
    pub measurement: Measurement,
    pub strategy: Option<String>,
}

impl AbJob<'_> {
    pub(super) fn into_meta(self) -> JobMeta {
        JobMeta {
            layer: match self.kind {
                JobKind::Layer(l) => Some(l.to_owned()),
                _ => None,
            },
            control: self.kind == JobKind::Control,
            cold_start: self.kind == JobKind::ColdStart,
            scenario: self.scenario.name.clone(),
            name: self.name,
            measurement: self.measurement,
            strategy: self.strategy,
        }
    }
}

/// A claim judged on a run that is not valid is no verdict: it reads
/// inconclusive and says why (its latency's verdict kept in the reason).
fn unless_invalid(c: &ClaimVerdict, status: AbStatus, reasons: &[String]) -> ClaimVerdict {
    if status == AbStatus::Valid {
        return c.clone();
    }
    ClaimVerdict {
        verdict: Verdict::Inconclusive,
        reason: format!(
            "the run is {status} ({}): no verdict; the latency alone said {}: {}",
            if reasons.is_empty() { "see its report".to_owned() } else { reasons.join("; ") },
            c.verdict.as_str(),
            c.reason
        ),
        ..c.clone()
    }
}

/// File name of a job's report directory and result files.
pub(super) fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

/// Sums the A/B up for the bench — validity, errors, thresholds, the verdict
/// rows and the claims measured — after the observer has had it (for its own report).
pub(super) fn summarize(
    job: &JobMeta,
    docs: &[&ResultDoc],
    comparison: &Comparison,
    dir: &Path,
    source: String,
    observer: &dyn Observer,
) -> AbSummary {
    let (a, b) = (docs[0], docs[1]);
    let slug = slug(&job.name);
    let finished = FinishedJob { name: &job.name, slug: &slug, docs: [a, b], comparison, source: &source, dir };
    let report = observer.job_finished(&finished);
    let all = |d: &ResultDoc, f: fn(&result::SeriesDoc) -> u64| d.all().map_or(0, f);
    let mut invalid_reasons = Vec::new();
    // Every arm's validity counts (an overhead's third arm too); thresholds are
    // A's and B's (the arm without the work may fail what the work decides).
    let mut status = status_of(docs);
    if comparison.measurement != job.measurement {
        // The worker did not apply the profile asked for (or applied one that was
        // not asked for): the run is not what its label would say.
        invalid_reasons.push(format!(
            "meant to be {} but the target's /health reported {}",
            job.measurement, comparison.measurement
        ));
        status = AbStatus::Invalid;
    }
    let mut warnings = Vec::new();
    let mut thresholds_failed = Vec::new();
    for d in docs {
        let label = d.metadata.variant.clone().unwrap_or_default();
        invalid_reasons.extend(d.run.invalid_reasons.iter().map(|r| format!("{label}: {r}")));
        warnings.extend(d.run.warnings.iter().map(|w| format!("{label}: {w}")));
    }
    for d in [a, b] {
        let label = d.metadata.variant.clone().unwrap_or_default();
        thresholds_failed.extend(
            d.thresholds
                .iter()
                .filter(|t| !t.pass)
                .map(|t| format!("{label}: {} {} (actual {:.3} {})", t.series, t.threshold, t.actual, t.unit)),
        );
    }
    let claims = comparison
        .claims
        .iter()
        .filter(|c| c.verdict != Verdict::NotMeasured)
        .map(|c| unless_invalid(c, status, &invalid_reasons))
        .collect();
    AbSummary {
        name: job.name.clone(),
        measurement: comparison.measurement.clone(),
        ops_a: a.all().map(|s| s.ops.clone()).unwrap_or_default(),
        ops_b: b.all().map(|s| s.ops.clone()).unwrap_or_default(),
        scenario: job.scenario.clone(),
        layer: job.layer.clone(),
        strategy: job.strategy.clone(),
        cache_b: b.all().map(|s| s.cache.clone()).unwrap_or_default(),
        cache_b_bands: activity_bands(b),
        pooled: 0,
        read_backs_b: read_backs(b).0,
        stale_reads_b: read_backs(b).1,
        control: job.control,
        cold_start: job.cold_start,
        measured_s: a.run.measured_s,
        a: comparison.a.clone(),
        b: comparison.b.clone(),
        status,
        invalid_reasons,
        warnings,
        requests: all(a, |s| s.requests) + all(b, |s| s.requests),
        errors: all(a, |s| s.errors) + all(b, |s| s.errors),
        stale_reads: all(a, |s| s.stale_reads) + all(b, |s| s.stale_reads),
        thresholds_failed,
        rows: rows(comparison),
        answers: comparison.answers.clone(),
        claims,
        report,
        result: source,
    }
}

/// An arm's cache outcomes per user-activity band (`crate::users::activity_bands`).
fn activity_bands(d: &ResultDoc) -> std::collections::BTreeMap<String, crate::recorder::CacheOutcomes> {
    d.keyed_series()
        .filter_map(|(key, s)| match &key.series {
            crate::series::Series::Tag(t) if t.starts_with(crate::users::ACTIVITY_TAG) => {
                Some((t.clone(), s.cache.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Read-backs of an arm and how many were stale.
fn read_backs(d: &ResultDoc) -> (u64, u64) {
    let key = format!("tag:{}", crate::scenario::READ_BACK_TAG);
    d.series.get(&key).map_or((0, 0), |s| (s.requests, s.stale_reads))
}

pub(super) fn arm(label: &str, target: &str, headers: Vec<(String, String)>) -> ArmSpec {
    ArmSpec { label: Some(label.to_owned()), target: target.to_owned(), extra_headers: headers }
}
