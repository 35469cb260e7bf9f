//! Comparison of two arms (DESIGN.md §3.5): per series and metric, both values,
//! the relative change with its bootstrap 95 % CI, the Mann-Whitney p-value, and
//! a plain-words line; then claim verdicts and the baseline regression gate.
//! Analysis only: printing lives in `compare_report`.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::claims::{Claim, ClaimVerdict};
use crate::result::{ResultDoc, SeriesDoc};
use crate::stats::{self, Dist, MannWhitney, Metric};

#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Changes within ± this fraction count as no difference.
    pub noise: f64,
    pub resamples: usize,
    pub seed: u64,
    /// Fail the gate when a series is slower than this fraction (and beyond noise).
    pub max_regression: Option<f64>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { noise: 0.02, resamples: 2000, seed: 0x5eed, max_regression: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    pub metric: Metric,
    /// Milliseconds.
    pub a: f64,
    pub b: f64,
    /// `(b - a) / a`: negative is faster.
    pub change: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// `faster`, `slower` or `same` (inside the noise band, or CI spanning zero).
    pub direction: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesComparison {
    /// `tag:auth`, `*`, … with `server:<entry>` for Server-Timing histograms.
    pub series: String,
    pub count_a: u64,
    pub count_b: u64,
    pub metrics: Vec<MetricChange>,
    pub mann_whitney: MannWhitney,
    pub summary: String,
}

impl SeriesComparison {
    pub fn metric(&self, m: Metric) -> Option<&MetricChange> {
        self.metrics.iter().find(|c| c.metric == m)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub series: String,
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
}

pub const COMPARISON_SCHEMA: &str = "cache-bench/comparison/v1";

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0).trim_end_matches(".0").to_owned()
}

/// "auth: 31 % faster at p50, 95 % CI 27–35 %".
fn plain_words(series: &str, m: &MetricChange, noise: f64) -> String {
    let name = series.strip_prefix("tag:").unwrap_or(series);
    let metric = m.metric.name();
    match m.direction.as_str() {
        "faster" => {
            format!("{name}: {} % faster at {metric}, 95 % CI {}–{} %", pct(-m.change), pct(-m.ci_high), pct(-m.ci_low))
        }
        "slower" => {
            format!("{name}: {} % slower at {metric}, 95 % CI {}–{} %", pct(m.change), pct(m.ci_low), pct(m.ci_high))
        }
        _ => format!(
            "{name}: no difference beyond ±{} % at {metric} (change {} %, 95 % CI {} to {} %)",
            pct(noise),
            pct(m.change),
            pct(m.ci_low),
            pct(m.ci_high)
        ),
    }
}

fn direction(change: f64, lo: f64, hi: f64, noise: f64) -> &'static str {
    if hi < 0.0 && change < -noise {
        "faster"
    } else if lo > 0.0 && change > noise {
        "slower"
    } else {
        "same"
    }
}

/// Compares one distribution pair.
pub fn compare_dists(series: &str, a: &Dist, b: &Dist, opts: &CompareOptions, rng: &mut SmallRng) -> SeriesComparison {
    let metrics: Vec<MetricChange> = Metric::ALL
        .iter()
        .map(|&metric| {
            let (change, lo, hi) = stats::bootstrap_change(a, b, metric, opts.resamples, rng);
            MetricChange {
                metric,
                a: metric.of(a),
                b: metric.of(b),
                change,
                ci_low: lo,
                ci_high: hi,
                direction: direction(change, lo, hi, opts.noise).to_owned(),
            }
        })
        .collect();
    let summary = plain_words(series, &metrics[0], opts.noise);
    SeriesComparison {
        series: series.to_owned(),
        count_a: a.len(),
        count_b: b.len(),
        metrics,
        mann_whitney: stats::mann_whitney(a, b),
        summary,
    }
}

fn comparable(name: &str) -> bool {
    name == "*" || name.starts_with("tag:") || name.starts_with("step:")
}

fn dist(s: &SeriesDoc) -> Result<Dist, String> {
    Ok(Dist::from_histogram(&s.corrected.decode()?))
}

/// Compares `a` (the baseline) with `b` (the candidate).
pub fn compare(
    a: &ResultDoc,
    b: &ResultDoc,
    interleaved: bool,
    claims: &[Claim],
    opts: &CompareOptions,
) -> Result<Comparison, String> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut series = Vec::new();
    let mut notes = Vec::new();
    let names: Vec<&String> = a.series.keys().filter(|k| comparable(k) && b.series.contains_key(*k)).collect();
    for name in names {
        let (sa, sb) = (&a.series[name], &b.series[name]);
        if sa.requests == 0 || sb.requests == 0 {
            continue;
        }
        series.push(compare_dists(name, &dist(sa)?, &dist(sb)?, opts, &mut rng));
        let entries: BTreeMap<&String, _> =
            sa.server_timing.iter().filter(|(k, _)| sb.server_timing.contains_key(*k)).collect();
        for (entry, ha) in entries {
            let da = Dist::from_histogram(&ha.decode()?);
            let db = Dist::from_histogram(&sb.server_timing[entry].decode()?);
            series.push(compare_dists(&format!("{name} server:{entry}"), &da, &db, opts, &mut rng));
        }
    }
    for name in a.series.keys().filter(|k| comparable(k) && !b.series.contains_key(*k)) {
        notes.push(format!("{name} is only in {}", label(a)));
    }
    for name in b.series.keys().filter(|k| comparable(k) && !a.series.contains_key(*k)) {
        notes.push(format!("{name} is only in {}", label(b)));
    }
    if a.metadata.scenario_sha256 != b.metadata.scenario_sha256 {
        notes.push(format!(
            "the two results come from different scenario files ({} and {})",
            a.metadata.scenario_file, b.metadata.scenario_file
        ));
    }
    if !interleaved {
        notes.push(
            "the arms were recorded one after the other: drift between the runs (warm caches, other load) \
             shows up as a difference; `harness ab` interleaves them"
                .to_owned(),
        );
    }
    let claims = claims.iter().map(|c| c.judge(&series, opts.noise)).collect();
    let regressions = match opts.max_regression {
        None => Vec::new(),
        Some(limit) => series
            .iter()
            .flat_map(|s| {
                s.metrics.iter().filter(move |m| m.change > limit && m.ci_low > opts.noise).map(move |m| Regression {
                    series: s.series.clone(),
                    metric: m.metric,
                    change: m.change,
                    ci_low: m.ci_low,
                    limit,
                })
            })
            .collect(),
    };
    Ok(Comparison {
        schema: COMPARISON_SCHEMA.to_owned(),
        a: label(a),
        b: label(b),
        interleaved,
        noise: opts.noise,
        series,
        claims,
        max_regression: opts.max_regression,
        regressions,
        notes,
    })
}

fn label(d: &ResultDoc) -> String {
    d.metadata.variant.clone().unwrap_or_else(|| d.metadata.target.clone())
}
