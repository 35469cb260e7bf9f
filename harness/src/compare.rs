//! Comparison of two arms (ARCHITECTURE.md, "Compare and claims"): every series
//! both arms recorded, as [`SeriesComparison`]s (`change.rs`), and the baseline
//! regression gate. Claims are judged on the result by `claims.rs`; analysis
//! only, the exporters in `report/` print it.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::answers::AnswersDoc;
pub use crate::change::{compare_series, ArmSeries, Direction, MetricChange, Resampling, SeriesComparison};
use crate::claims::{self, Claim, ClaimVerdict};
use crate::result::{Measurement, ResultDoc, SeriesDoc};
use crate::series::SeriesKey;
use crate::stats::{Dist, Metric};

pub use crate::change::CompareOptions;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub series: SeriesKey,
    pub metric: Metric,
    pub change: f64,
    pub ci_low: f64,
    pub limit: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema: String,
    pub a: String,
    pub b: String,
    pub interleaved: bool,
    pub noise: f64,
    pub series: Vec<SeriesComparison>,
    pub claims: Vec<ClaimVerdict>,
    pub max_regression: Option<f64>,
    pub regressions: Vec<Regression>,
    pub notes: Vec<String>,
    /// `measured`, or `modelled: <profile>`: both arms are always the same.
    #[serde(default)]
    pub measurement: Measurement,
    /// How often the arms answered differently, pair by pair (interleaved A/Bs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswersDoc>,
    /// Claims about a series neither arm recorded (a shared claims file's claims
    /// about other scenarios): named once, never a verdict row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_elsewhere: Vec<String>,
}

pub const COMPARISON_SCHEMA: &str = "cache-bench/comparison/v1";

/// A series held back from speed words ([`claims::held_back`]) says why first
/// in its plain-words line, and its latency after.
fn hold_speed_words(series: &mut [SeriesComparison], answers: Option<&AnswersDoc>) {
    for s in series.iter_mut().filter(|s| !s.series.is_server_side()) {
        let key = s.series.to_string();
        let Some((_, why)) = claims::held_back(s, answers.and_then(|a| a.series.get(&key)), &key) else { continue };
        let name = s.series.short_name();
        let speed = s.summary.strip_prefix(&format!("{name}: ")).unwrap_or(&s.summary).to_owned();
        s.summary = format!("{name}: {why}; its latency, failures ranked slowest: {speed}");
    }
}

/// The false-discovery rate the exploratory series are marked at.
pub const FDR_Q: f64 = 0.05;

/// Every measured request of a series (its blocks; failures at
/// [`crate::stats::FAILED_MS`]); a file without blocks gives its corrected
/// histogram, failures at their own times.
fn arm_series(s: &SeriesDoc) -> Result<ArmSeries, String> {
    let blocks = s.blocks.as_ref().map(|b| b.to_blocks());
    let dist = match &blocks {
        Some(b) => b.dist(),
        None => Dist::from_histogram(&s.corrected.decode()?),
    };
    Ok(ArmSeries { dist, blocks, requests: s.requests, errors: s.errors })
}

/// A Server-Timing entry of `parent` (its successful responses): by time block
/// when the result kept them (older files: its histogram, resampled per request);
/// the series' requests and errors are those of `parent`.
fn server_series(entry: &str, parent: &SeriesDoc) -> Result<ArmSeries, String> {
    let blocks = parent.server_timing_blocks.get(entry).map(|b| b.to_blocks());
    let dist = match &blocks {
        Some(b) => b.dist(),
        None => Dist::from_histogram(&parent.server_timing[entry].decode()?),
    };
    Ok(ArmSeries { dist, blocks, requests: parent.requests, errors: parent.errors })
}

/// Compares `a` (the baseline) with `b` (the candidate) and judges `claims` on
/// the result.
pub fn compare(
    a: &ResultDoc,
    b: &ResultDoc,
    interleaved: bool,
    claims: &[Claim],
    opts: &CompareOptions,
) -> Result<Comparison, String> {
    let mut comparison = compare_arms(a, b, interleaved, opts)?;
    let recorded = |c: &Claim| c.key().is_some_and(|k| comparison.series.iter().any(|s| s.series == k));
    let (here, elsewhere): (Vec<Claim>, Vec<Claim>) = claims.iter().cloned().partition(recorded);
    comparison.claims_elsewhere = elsewhere.iter().map(|c| format!("{} ({})", c.name, c.series)).collect();
    comparison.claims = claims::judge_all(&here, &comparison.series, comparison.answers.as_ref(), opts.noise);
    comparison.label_modelled();
    Ok(comparison)
}

/// The comparison of every series both arms recorded, without claims.
pub fn compare_arms(
    a: &ResultDoc,
    b: &ResultDoc,
    interleaved: bool,
    opts: &CompareOptions,
) -> Result<Comparison, String> {
    let measurement = same_measurement(a, b)?;
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut series = Vec::new();
    for (key, sa) in a.keyed_series().filter(|(k, _)| k.is_comparable()) {
        let Some(sb) = b.series_of(&key) else { continue };
        if sa.requests == 0 || sb.requests == 0 {
            continue;
        }
        series.push(compare_series(&key, &arm_series(sa)?, &arm_series(sb)?, interleaved, opts, &mut rng));
        let entries: Vec<&String> = sa.server_timing.keys().filter(|k| sb.server_timing.contains_key(*k)).collect();
        for entry in entries {
            let (da, db) = (server_series(entry, sa)?, server_series(entry, sb)?);
            series.push(compare_series(&key.server_timing(entry), &da, &db, interleaved, opts, &mut rng));
        }
    }
    // Everything below all requests' client-side latency is exploratory: many
    // series (tags, steps, server timings), one family.
    let family: Vec<usize> =
        (0..series.len()).filter(|&i| !series[i].series.is_all() || series[i].series.is_server_side()).collect();
    crate::change::mark_fdr(&mut series, &family, FDR_Q);
    // A per-series "faster" is a 95 % call; among many series some are chance.
    for &i in &family {
        let s = &mut series[i];
        if !s.fdr_significant && s.metric(Metric::P50).is_some_and(|m| m.direction.is_called()) {
            s.summary.push_str(&format!(
                " (exploratory: not significant after the false-discovery correction over {} series)",
                family.len()
            ));
        }
    }
    let regressions = match opts.max_regression {
        None => Vec::new(),
        Some(limit) => regressions(&series, limit),
    };
    // Both arms' documents carry the pairs' answers; either will do.
    let answers = b.answers.clone().or_else(|| a.answers.clone()).filter(|_| interleaved);
    hold_speed_words(&mut series, answers.as_ref());
    Ok(Comparison {
        answers,
        schema: COMPARISON_SCHEMA.to_owned(),
        a: label(a),
        b: label(b),
        interleaved,
        noise: opts.noise,
        notes: notes(a, b, interleaved, &series),
        series,
        claims: Vec::new(),
        claims_elsewhere: Vec::new(),
        max_regression: opts.max_regression,
        regressions,
        measurement,
    })
}

impl Comparison {
    /// `--require-claims`: a judged claim did not hold, or claims were given and
    /// none was about what this run recorded (nothing measured is no pass).
    pub fn claims_fail(&self) -> bool {
        self.claims.iter().any(|v| !v.verdict.holds()) || (self.claims.is_empty() && !self.claims_elsewhere.is_empty())
    }

    /// A modelled comparison says so at the start of every plain-words line and
    /// claim reason, wherever they are printed.
    fn label_modelled(&mut self) {
        if !self.measurement.is_modelled() {
            return;
        }
        let tag = format!("[{}] ", self.measurement);
        for s in &mut self.series {
            s.summary.insert_str(0, &tag);
        }
        for c in &mut self.claims {
            c.reason.insert_str(0, &tag);
        }
    }
}

/// The measurement both results are: a modelled and a measured result (or two
/// profiles) are different questions, never one comparison.
fn same_measurement(a: &ResultDoc, b: &ResultDoc) -> Result<Measurement, String> {
    let (ma, mb) = (&a.metadata.measurement, &b.metadata.measurement);
    if ma != mb {
        return Err(format!(
            "{} is {ma} and {} is {mb}: a modelled result is never compared with a measured one, nor with another \
             profile's; compare results recorded the same way (both measured, or both under one profile)",
            label(a),
            label(b)
        ));
    }
    Ok(ma.clone())
}

/// Metrics called slower (the rule of [`Direction`]) by more than `limit`.
fn regressions(series: &[SeriesComparison], limit: f64) -> Vec<Regression> {
    series
        .iter()
        .flat_map(|s| {
            s.metrics.iter().filter(move |m| m.direction == Direction::Slower && m.change > limit).map(move |m| {
                Regression { series: s.series.clone(), metric: m.metric, change: m.change, ci_low: m.ci_low, limit }
            })
        })
        .collect()
}

/// What the reader must know about the two results before trusting the changes.
fn notes(a: &ResultDoc, b: &ResultDoc, interleaved: bool, series: &[SeriesComparison]) -> Vec<String> {
    let mut notes = Vec::new();
    let by_request = series
        .iter()
        .filter(|s| s.resampling == Resampling::Requests)
        .map(|s| s.series.to_string())
        .collect::<Vec<_>>();
    if !by_request.is_empty() {
        notes.push(format!(
            "{}: the CIs resample single requests as if independent (the results kept no time blocks, or fewer \
             than {} of them), so they may be too narrow",
            by_request.join(", "),
            crate::stats::MIN_BLOCKS
        ));
    }
    let by_ranks: Vec<String> =
        series.iter().filter(|s| s.resampling == Resampling::LogShift).map(|s| s.series.to_string()).collect();
    if !by_ranks.is_empty() {
        notes.push(format!(
            "{}: fewer than 100 separately recorded requests per arm, so p50's change is the Hodges–Lehmann \
             factor of the two samples with its distribution-free (Moses) interval, not a bootstrap of two \
             medians; it assumes independent samples that differ by a factor",
            by_ranks.join(", ")
        ));
    }
    let only = |x: &ResultDoc, y: &ResultDoc| {
        x.keyed_series()
            .filter(|(k, _)| k.is_comparable() && y.series_of(k).is_none())
            .map(|(k, _)| format!("{k} is only in {}", label(x)))
            .collect::<Vec<_>>()
    };
    notes.extend(only(a, b));
    notes.extend(only(b, a));
    if a.metadata.scenario_sha256 != b.metadata.scenario_sha256 {
        notes.push(format!(
            "the two results come from different scenario files ({} and {})",
            a.metadata.scenario_file, b.metadata.scenario_file
        ));
    }
    if interleaved && a.answers.is_none() && b.answers.is_none() {
        notes.push(
            "the arms' answers were not compared: the results carry no pairs' answers (written before \
             answers were compared)"
                .to_owned(),
        );
    }
    if !interleaved {
        notes.push(
            "the arms were recorded one after the other: drift between the runs (warm caches, other load) \
             shows up as a difference, and answers cannot be compared pair by pair; `harness ab` interleaves \
             them"
                .to_owned(),
        );
    }
    notes
}

fn label(d: &ResultDoc) -> String {
    let name = d.metadata.variant.clone().unwrap_or_else(|| d.metadata.target.clone());
    format!("{name}{}", d.metadata.measurement.suffix())
}
