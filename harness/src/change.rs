//! One series' change from arm A to arm B: per metric both values, the relative
//! change with its bootstrap 95 % CI (time blocks when the results kept them) and
//! what it says (faster, slower, no difference, undetermined), the Mann-Whitney
//! test, and a plain-words line. Claims and the comparison are built on it.

use std::fmt;

use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use crate::series::SeriesKey;
use crate::stats::{self, Blocks, Dist, Interval, MannWhitney, Metric, PerMetric, MIN_BLOCKS};

/// What a metric's change says, by one rule used by the verdict tables, the
/// claims' wording and the regression gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The CI lies below zero and the change beyond the noise band.
    Faster,
    /// The CI lies above zero and the change beyond the noise band.
    Slower,
    /// No difference: the whole CI lies inside the ±noise band.
    Same,
    /// Neither: the CI is wider than the band (it may span zero), or the arms
    /// had too few samples for the metric.
    Undetermined,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Faster => "faster",
            Direction::Slower => "slower",
            Direction::Same => "same",
            Direction::Undetermined => "undetermined",
        }
    }

    pub fn of(change: f64, lo: f64, hi: f64, noise: f64) -> Direction {
        if hi < 0.0 && change < -noise {
            Direction::Faster
        } else if lo > 0.0 && change > noise {
            Direction::Slower
        } else if lo >= -noise && hi <= noise {
            Direction::Same
        } else {
            Direction::Undetermined
        }
    }

    /// A difference was called.
    pub fn is_called(self) -> bool {
        matches!(self, Direction::Faster | Direction::Slower)
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

/// How a comparison is made: its noise band, resampling and gate.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Changes within ± this fraction count as no difference.
    pub noise: f64,
    pub resamples: usize,
    /// 1 − the CIs' confidence: 0.05 for 95 % (less under `--until-decided`,
    /// whose every look spends a share of it).
    pub alpha: f64,
    pub seed: u64,
    /// Fail the gate when a series is slower than this fraction (and beyond noise).
    pub max_regression: Option<f64>,
}

/// The most resamples a small α raises a comparison to (α ≥ 0.002 at 20 beyond
/// each end); below that the intervals fall back to the normal bootstrap one.
pub const MAX_RESAMPLES: usize = 20_000;

impl CompareOptions {
    /// The resamples the CIs are drawn from: at least `resamples`, and enough
    /// that each end of a `1 − alpha` percentile interval has
    /// [`stats::MIN_TAIL`] resamples beyond it (the looks of `--until-decided`
    /// spend α in shares; MC: with 1000 resamples at α = 1.25 % the normal
    /// fallback covered 97.3–98.3 % where 98.75 % was due, 4000 covered it).
    pub fn resamples_needed(&self) -> usize {
        let wanted = (2.0 * stats::MIN_TAIL / self.alpha).ceil();
        self.resamples.max(if wanted.is_finite() { (wanted as usize).min(MAX_RESAMPLES) } else { 0 })
    }
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { noise: 0.02, resamples: 2000, alpha: 0.05, seed: 0x5eed, max_regression: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    pub metric: Metric,
    /// Milliseconds (NaN, written `null`: no value, e.g. the mean of an arm
    /// whose requests all failed).
    #[serde(with = "crate::nullable")]
    pub a: f64,
    #[serde(with = "crate::nullable")]
    pub b: f64,
    /// `(b - a) / a`: negative is faster.
    #[serde(with = "crate::nullable")]
    pub change: f64,
    #[serde(with = "crate::nullable")]
    pub ci_low: f64,
    #[serde(with = "crate::nullable")]
    pub ci_high: f64,
    pub direction: Direction,
    /// Both arms had at least [`Metric::min_samples`] requests; when not, the
    /// direction is undetermined whatever the CI says.
    #[serde(default = "yes")]
    pub enough_samples: bool,
    /// The metric sat on a tie wider than its sampling spread in an arm (the
    /// data at their clock's resolution, `Dist::tied_at`): the CI was widened to
    /// every change the neighbouring values allow.
    #[serde(default)]
    pub at_resolution: bool,
}

fn yes() -> bool {
    true
}

impl MetricChange {
    /// Half the CI's width, in percentage points: the precision of the change.
    pub fn half_width(&self) -> f64 {
        (self.ci_high - self.ci_low) * 50.0
    }
}

/// "−12.3 % [−15.0, −9.1]": the change of B against A and its 95 % CI.
impl fmt::Display for MetricChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.change.is_finite() {
            write!(f, "{:+.1} %", self.change * 100.0)?;
        } else {
            f.write_str("–")?;
        }
        write!(f, " [{:+.1}, {:+.1}]", self.ci_low * 100.0, self.ci_high * 100.0)
    }
}

/// How the CIs of a series were resampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Resampling {
    /// Time blocks, `joint` when one draw served both arms (interleaved runs).
    Blocks { blocks: usize, block_ms: u32, joint: bool },
    /// Single requests, as if independent: the result kept no blocks (older
    /// files) or too few of them.
    Requests,
    /// Small independent samples (cold starts): p50's change as a factor, with
    /// the distribution-free Hodges–Lehmann / Moses interval of log latency
    /// (`stats::log_shift`); the other metrics by bootstrap as above.
    LogShift,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesComparison {
    /// `tag:auth`, `*`, … with `server:<entry>` for Server-Timing histograms.
    pub series: SeriesKey,
    /// The requests compared per arm: every measured request when the result
    /// kept blocks (failures ranked slowest), else the display histogram's.
    pub count_a: u64,
    pub count_b: u64,
    /// Share of the series' requests that failed (transport errors, failed
    /// expectations, dropped or unrendered iterations), per arm: the percentiles
    /// rank them slowest, the mean leaves them out, and above 1 % a claim is
    /// "failing" whatever the latencies say.
    #[serde(default)]
    pub error_rate_a: f64,
    #[serde(default)]
    pub error_rate_b: f64,
    pub metrics: Vec<MetricChange>,
    pub mann_whitney: MannWhitney,
    /// Two-sided bootstrap p-value of "no change at p50".
    #[serde(default)]
    pub p_value: f64,
    /// In an exploratory table: whether the p50 change survives the
    /// Benjamini–Hochberg false-discovery-rate correction at 5 % over the table.
    #[serde(default)]
    pub fdr_significant: bool,
    #[serde(default = "requests")]
    pub resampling: Resampling,
    /// The CIs' confidence (0.95 unless a sequential run spent alpha over looks).
    #[serde(default = "ninety_five")]
    pub confidence: f64,
    pub summary: String,
}

fn requests() -> Resampling {
    Resampling::Requests
}

fn ninety_five() -> f64 {
    0.95
}

impl SeriesComparison {
    pub fn metric(&self, m: Metric) -> Option<&MetricChange> {
        self.metrics.iter().find(|c| c.metric == m)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0).trim_end_matches(".0").to_owned()
}

/// "95 %" for a confidence of 0.95.
pub fn level_words(confidence: f64) -> String {
    format!("{} %", pct(confidence))
}

/// "auth: 31 % faster at p50, 95 % CI 27–35 %".
fn plain_words(series: &SeriesKey, m: &MetricChange, noise: f64, confidence: f64) -> String {
    let name = series.short_name();
    let metric = m.metric.name();
    let level = level_words(confidence);
    let (change, lo, hi) = (pct(m.change), pct(m.ci_low), pct(m.ci_high));
    match m.direction {
        Direction::Faster => format!(
            "{name}: {} % faster at {metric}, {level} CI {}–{} %",
            pct(-m.change),
            pct(-m.ci_high),
            pct(-m.ci_low)
        ),
        Direction::Slower => format!("{name}: {change} % slower at {metric}, {level} CI {lo}–{hi} %"),
        Direction::Same => format!(
            "{name}: no difference at {metric}: the {level} CI {lo} to {hi} % lies inside ±{} % (change {change} %)",
            pct(noise)
        ),
        Direction::Undetermined if !m.enough_samples => format!(
            "{name}: undetermined at {metric}: fewer than {} requests per arm (change {change} %, {level} CI {lo} to {hi} %)",
            m.metric.min_samples()
        ),
        Direction::Undetermined if m.at_resolution => format!(
            "{name}: undetermined at {metric}: its values are at their clock's resolution (change {change} %, \
             {level} CI widened to the neighbouring values: {lo} to {hi} %)"
        ),
        Direction::Undetermined => format!(
            "{name}: undetermined at {metric} (change {change} %, {level} CI {lo} to {hi} %, wider than ±{} %)",
            pct(noise)
        ),
    }
}

/// One arm's requests of a series, as the comparison reads them.
pub struct ArmSeries {
    /// The latencies compared: every measured request, failures at
    /// [`stats::FAILED_MS`] (when the result kept blocks).
    pub dist: Dist,
    /// By time block, when the result kept them.
    pub blocks: Option<Blocks>,
    /// Every request of the series, and the errors among them.
    pub requests: u64,
    pub errors: u64,
}

impl ArmSeries {
    fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Below this many requests per arm, separately recorded (not interleaved)
/// samples get p50's change from ranks, not from a bootstrap of a median.
const SMALL_SAMPLE: u64 = 100;

/// Block bootstrap when both arms kept enough blocks, else single requests; for
/// small separate samples p50 from ranks ([`Resampling::LogShift`]).
fn intervals(
    a: &ArmSeries,
    b: &ArmSeries,
    joint: bool,
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> (PerMetric<Interval>, Resampling) {
    let (mut found, resampling) = resampled(a, b, joint, opts, rng);
    if !joint && a.dist.len() < SMALL_SAMPLE && b.dist.len() < SMALL_SAMPLE {
        if let Some(shift) = stats::log_shift(&a.dist, &b.dist, opts.alpha) {
            let p50 = Metric::ALL.iter().position(|m| *m == Metric::P50).expect("p50 is a metric");
            found[p50] = shift;
            return (found, Resampling::LogShift);
        }
    }
    (found, resampling)
}

fn resampled(
    a: &ArmSeries,
    b: &ArmSeries,
    joint: bool,
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> (PerMetric<Interval>, Resampling) {
    if let (Some(ba), Some(bb)) = (&a.blocks, &b.blocks) {
        let (len, blocks) = stats::block_layout(ba, bb, joint);
        if blocks >= MIN_BLOCKS && ba.unit_ms == bb.unit_ms {
            let block_ms = ba.unit_ms * len;
            let out = stats::block_bootstrap(ba, bb, joint, opts.resamples_needed(), opts.alpha, rng);
            return (out, Resampling::Blocks { blocks, block_ms, joint });
        }
    }
    (stats::bootstrap_changes(&a.dist, &b.dist, opts.resamples_needed(), opts.alpha, rng), Resampling::Requests)
}

/// The widest a change at resolution is reported: +1000 % (the change from a
/// value whose lower neighbour is 0 is unbounded; the words say so, the number
/// stays finite for JSON).
const RESOLUTION_CAP: f64 = 10.0;

/// A quantile's interval, widened when either arm's value sits on a tie wider
/// than its sampling spread: a bootstrap of tied data returns the same value in
/// almost every resample and its interval collapses to a point ("[0, 0]" read
/// as "no difference"), so the interval must at least hold every change between
/// the values neighbouring each arm's. `None` when neither arm is tied.
fn widened_for_resolution(q: f64, a: &Dist, b: &Dist, i: &Interval) -> Option<(f64, f64)> {
    if !a.tied_at(q) && !b.tied_at(q) {
        return None;
    }
    let ((a_lo, a_hi), (b_lo, b_hi)) = (a.bracket_at(q), b.bracket_at(q));
    let change =
        |from: f64, to: f64| if from > 0.0 { ((to - from) / from).min(RESOLUTION_CAP) } else { RESOLUTION_CAP };
    let (lo, hi) = (change(a_hi, b_lo), change(a_lo, b_hi));
    Some((i.low.min(lo), if i.high.is_nan() { hi } else { i.high.max(hi) }))
}

/// Compares one series of two arms; `joint`: the arms were interleaved.
pub fn compare_series(
    series: &SeriesKey,
    a: &ArmSeries,
    b: &ArmSeries,
    joint: bool,
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> SeriesComparison {
    let (found, resampling) = intervals(a, b, joint, opts, rng);
    let fewest = a.dist.len().min(b.dist.len());
    let failed = a.errors + b.errors > 0;
    let metrics: Vec<MetricChange> = Metric::ALL
        .iter()
        .zip(found)
        .map(|(&metric, i)| {
            let enough_samples = fewest >= metric.min_samples();
            let widened = metric.quantile().and_then(|q| widened_for_resolution(q, &a.dist, &b.dist, &i));
            let (ci_low, ci_high) = widened.unwrap_or((i.low, i.high));
            // The mean is of successes: an arm that fails its slow requests
            // would look faster by it, so with failures it calls nothing.
            let mean_blind = metric == Metric::Mean && failed;
            let direction = if enough_samples && !mean_blind {
                Direction::of(i.point, ci_low, ci_high, opts.noise)
            } else {
                Direction::Undetermined
            };
            MetricChange {
                metric,
                a: metric.of(&a.dist),
                b: metric.of(&b.dist),
                change: i.point,
                ci_low,
                ci_high,
                direction,
                enough_samples,
                at_resolution: widened.is_some(),
            }
        })
        .collect();
    // A p50 at its clock's resolution is not tested: its resamples say nothing
    // the tie does not (no Benjamini–Hochberg mark from it).
    let p_value = if metrics[0].at_resolution { 1.0 } else { found[0].p_value };
    let mut summary = plain_words(series, &metrics[0], opts.noise, 1.0 - opts.alpha);
    if a.errors + b.errors > 0 && !series.is_server_side() {
        summary.push_str(&format!(
            "; errors {:.2} % → {:.2} % (ranked slower than every success; the mean is of successes)",
            a.error_rate() * 100.0,
            b.error_rate() * 100.0
        ));
    }
    SeriesComparison {
        series: series.clone(),
        count_a: a.dist.len(),
        count_b: b.dist.len(),
        error_rate_a: a.error_rate(),
        error_rate_b: b.error_rate(),
        metrics,
        mann_whitney: stats::mann_whitney(&a.dist, &b.dist),
        p_value,
        fdr_significant: false,
        resampling,
        confidence: 1.0 - opts.alpha,
        summary,
    }
}

/// Marks the series whose p50 change survives Benjamini–Hochberg at `q` among
/// `family` (indices into `series`).
pub fn mark_fdr(series: &mut [SeriesComparison], family: &[usize], q: f64) {
    let mut order: Vec<usize> = family.to_vec();
    order.sort_by(|&x, &y| series[x].p_value.total_cmp(&series[y].p_value));
    let m = order.len() as f64;
    let passing = order
        .iter()
        .enumerate()
        .filter(|(k, &i)| series[i].p_value <= (k + 1) as f64 / m * q)
        .map(|(k, _)| k)
        .next_back();
    for (k, &i) in order.iter().enumerate() {
        series[i].fdr_significant = passing.is_some_and(|last| k <= last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_p(p: f64) -> SeriesComparison {
        SeriesComparison {
            series: SeriesKey::tag("t"),
            count_a: 100,
            count_b: 100,
            error_rate_a: 0.0,
            error_rate_b: 0.0,
            metrics: Vec::new(),
            mann_whitney: MannWhitney { u_a: 0.0, u_b: 0.0, z: 0.0, p_value: p },
            p_value: p,
            fdr_significant: false,
            resampling: Resampling::Requests,
            confidence: 0.95,
            summary: String::new(),
        }
    }

    fn marked(ps: &[f64], family: &[usize]) -> Vec<bool> {
        let mut s: Vec<SeriesComparison> = ps.iter().map(|&p| with_p(p)).collect();
        mark_fdr(&mut s, family, 0.05);
        s.iter().map(|x| x.fdr_significant).collect()
    }

    #[test]
    fn benjamini_hochberg_by_hand() {
        // Sorted p against k/m·q = 0.01, 0.02, 0.03, 0.04, 0.05: the 4th is the
        // largest under its line, so the first four survive (0.03 and 0.04 included).
        assert_eq!(marked(&[0.04, 0.001, 0.5, 0.03, 0.01], &[0, 1, 2, 3, 4]), [true, true, false, true, true]);
        // 0.03 > 0.025 and 0.2 > 0.05: nothing survives.
        assert_eq!(marked(&[0.03, 0.2], &[0, 1]), [false, false]);
        // A step-up rule: 0.045 is over its own line (0.025) but under 0.05 at rank 2.
        assert_eq!(marked(&[0.045, 0.04], &[0, 1]), [true, true]);
        // Outside the family: left unmarked.
        assert_eq!(marked(&[0.0001, 0.0001], &[1]), [false, true]);
    }

    #[test]
    fn one_rule_for_what_a_change_says() {
        let noise = 0.02;
        assert_eq!(Direction::of(-0.10, -0.13, -0.07, noise), Direction::Faster);
        assert_eq!(Direction::of(0.10, 0.07, 0.13, noise), Direction::Slower);
        // The whole CI inside ±2 %: no difference, even when it excludes zero.
        assert_eq!(Direction::of(0.01, 0.002, 0.018, noise), Direction::Same);
        // Spanning zero but wider than the band: undetermined, not "same".
        assert_eq!(Direction::of(0.0, -0.05, 0.05, noise), Direction::Undetermined);
        // Clear of zero but the change inside the band: undetermined.
        assert_eq!(Direction::of(0.015, 0.002, 0.03, noise), Direction::Undetermined);
    }
}
