//! The one bootstrap loop: whatever draws the resamples (time blocks, or single
//! requests as a multinomial over the bins), the change of every metric is
//! collected per resample and read as a percentile interval with its p-value.

use super::{nearest_rank, PerMetric, METRICS};

/// One bootstrap estimate: the point change, its percentile interval and
/// the two-sided bootstrap p-value of "no change".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub point: f64,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
}

/// The relative change `(b − a) / a` of every metric at the `points` (A's and
/// B's metrics on all their data) and over `resamples` draws of `draw` (A's and
/// B's metrics of one resample), as `1 − alpha` intervals. A resample whose
/// change is not finite (an empty arm, a zero) is left out of that metric's.
pub(super) fn changes(
    points: (PerMetric<f64>, PerMetric<f64>),
    resamples: usize,
    alpha: f64,
    mut draw: impl FnMut() -> (PerMetric<f64>, PerMetric<f64>),
) -> PerMetric<Interval> {
    let mut changes: PerMetric<Vec<f64>> = Default::default();
    for _ in 0..resamples {
        let (ma, mb) = draw();
        for m in 0..METRICS {
            let c = (mb[m] - ma[m]) / ma[m];
            if c.is_finite() {
                changes[m].push(c);
            }
        }
    }
    let (pa, pb) = points;
    std::array::from_fn(|i| interval((pb[i] - pa[i]) / pa[i], &mut changes[i], alpha))
}

/// The `1 − alpha` percentile interval of `changes` around `point`, and the
/// bootstrap p-value: twice the smaller share of resamples on either side of zero.
/// When no resample crosses zero that share only says p < 2/(n+1) — 1/1000 for
/// 2000 resamples, which no Benjamini–Hochberg line over 200 series can pass —
/// so the tail is then read from the normal law with the resamples' spread.
pub(super) fn interval(point: f64, changes: &mut [f64], alpha: f64) -> Interval {
    if changes.is_empty() {
        return Interval { point, low: f64::NAN, high: f64::NAN, p_value: f64::NAN };
    }
    changes.sort_by(f64::total_cmp);
    let n = changes.len() as u64;
    let at = |q: f64| changes[(nearest_rank(q, n) - 1) as usize];
    let below = changes.iter().filter(|c| **c <= 0.0).count();
    let above = changes.iter().filter(|c| **c >= 0.0).count();
    let p_value = if below.min(above) == 0 {
        normal_tail(point, changes)
    } else {
        ((2 * below.min(above) + 1) as f64 / (n + 1) as f64).min(1.0)
    };
    if alpha / 2.0 * (n as f64) < MIN_TAIL {
        // Too few resamples beyond a percentile end at this α (the many looks
        // of --until-decided): the end would be one of the most extreme
        // resamples, no estimate of a quantile. The normal bootstrap interval
        // instead: the point ± z(α)·sd of the resamples.
        let half = z_two_sided(alpha) * spread(changes);
        return Interval { point, low: point - half, high: point + half, p_value };
    }
    Interval { point, low: at(alpha / 2.0), high: at(1.0 - alpha / 2.0), p_value }
}

/// Resamples a percentile end needs beyond it to be an estimate rather than an
/// extreme: at α = 0.05 and 2000 resamples there are 50.
pub const MIN_TAIL: f64 = 20.0;

/// The standard deviation of the resamples.
fn spread(changes: &[f64]) -> f64 {
    let n = changes.len() as f64;
    let mean = changes.iter().sum::<f64>() / n;
    (changes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
}

/// z with P(|Z| > z) = `alpha` for a standard normal Z, by bisection on erfc
/// (libm has no inverse; 100 halvings of [0, 40] are exact to f64).
pub fn z_two_sided(alpha: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if libm::erfc(mid / std::f64::consts::SQRT_2) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Two-sided p-value of "no change" for a `point` whose resamples never reach
/// zero: 2·Φ(−|point|/sd), sd the resamples' standard deviation. Resamples that
/// do not vary at all (tied data) are no evidence: 1.
fn normal_tail(point: f64, changes: &[f64]) -> f64 {
    let sd = spread(changes);
    if !(sd > 0.0 && point.is_finite()) {
        return 1.0;
    }
    (libm::erfc(point.abs() / sd / std::f64::consts::SQRT_2)).min(1.0)
}
