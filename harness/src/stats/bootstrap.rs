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
pub(super) fn interval(point: f64, changes: &mut [f64], alpha: f64) -> Interval {
    if changes.is_empty() {
        return Interval { point, low: f64::NAN, high: f64::NAN, p_value: f64::NAN };
    }
    changes.sort_by(f64::total_cmp);
    let n = changes.len() as u64;
    let at = |q: f64| changes[(nearest_rank(q, n) - 1) as usize];
    let below = changes.iter().filter(|c| **c <= 0.0).count();
    let above = changes.iter().filter(|c| **c >= 0.0).count();
    let p_value = ((2 * below.min(above) + 1) as f64 / (n + 1) as f64).min(1.0);
    Interval { point, low: at(alpha / 2.0), high: at(1.0 - alpha / 2.0), p_value }
}
