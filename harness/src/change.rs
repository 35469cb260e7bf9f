//! One series' change from arm A to arm B: per metric both values, the relative
//! change with its bootstrap 95 % CI and its direction, the Mann-Whitney test,
//! and a plain-words line. Claims and the comparison are built on it.

use std::fmt;

use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use crate::compare::CompareOptions;
use crate::series::SeriesKey;
use crate::stats::{self, Dist, MannWhitney, Metric};

/// Which way a metric moved, beyond the noise band and with a CI clear of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Faster,
    Slower,
    /// Inside the noise band, or the CI spans zero.
    Same,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Faster => "faster",
            Direction::Slower => "slower",
            Direction::Same => "same",
        }
    }

    fn of(change: f64, lo: f64, hi: f64, noise: f64) -> Direction {
        if hi < 0.0 && change < -noise {
            Direction::Faster
        } else if lo > 0.0 && change > noise {
            Direction::Slower
        } else {
            Direction::Same
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Direction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesComparison {
    /// `tag:auth`, `*`, … with `server:<entry>` for Server-Timing histograms.
    pub series: SeriesKey,
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

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0).trim_end_matches(".0").to_owned()
}

/// "auth: 31 % faster at p50, 95 % CI 27–35 %".
fn plain_words(series: &SeriesKey, m: &MetricChange, noise: f64) -> String {
    let name = series.short_name();
    let metric = m.metric.name();
    match m.direction {
        Direction::Faster => {
            format!("{name}: {} % faster at {metric}, 95 % CI {}–{} %", pct(-m.change), pct(-m.ci_high), pct(-m.ci_low))
        }
        Direction::Slower => {
            format!("{name}: {} % slower at {metric}, 95 % CI {}–{} %", pct(m.change), pct(m.ci_low), pct(m.ci_high))
        }
        Direction::Same => format!(
            "{name}: no difference beyond ±{} % at {metric} (change {} %, 95 % CI {} to {} %)",
            pct(noise),
            pct(m.change),
            pct(m.ci_low),
            pct(m.ci_high)
        ),
    }
}

/// Compares one distribution pair.
pub fn compare_dists(
    series: &SeriesKey,
    a: &Dist,
    b: &Dist,
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> SeriesComparison {
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
                direction: Direction::of(change, lo, hi, opts.noise),
            }
        })
        .collect();
    let summary = plain_words(series, &metrics[0], opts.noise);
    SeriesComparison {
        series: series.clone(),
        count_a: a.len(),
        count_b: b.len(),
        metrics,
        mann_whitney: stats::mann_whitney(a, b),
        summary,
    }
}
