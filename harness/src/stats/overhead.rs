//! The fall of an overhead, measured as the difference of arms: an arm without
//! the work (N), with it uncached (U), and with it cached (C), interleaved in one
//! run. The overhead is `U − N` uncached and `C − N` cached, so its fall is
//! `1 − (C − N) / (U − N)` — a figure the two-arm change `C / U − 1` of whole
//! requests cannot give, since the rest of each request dilutes it.
//!
//! The interval is a percentile block bootstrap with one draw of blocks for all
//! three arms (they ran in the same blocks of time). A ratio is only a figure
//! when its denominator is clear of zero: the fall is given only when the
//! uncached overhead's own interval excludes zero, else the work's cost was not
//! resolved and no fall can be said.

use rand::Rng;

use super::blocks::{layout, max_index, Blocks, Grid};
use super::bootstrap::{interval, Interval};
use super::{Metric, PerMetric};

/// The overhead of a metric, uncached and cached, and its fall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverheadFall {
    pub metric: Metric,
    /// The metric in each arm, ms: without the work, uncached, cached.
    pub none_ms: f64,
    pub uncached_ms: f64,
    pub cached_ms: f64,
    /// `U − N` in ms, with its interval.
    pub uncached_overhead: Interval,
    /// `1 − (C − N)/(U − N)` (0.55: 55 % lower), with its interval; `None`
    /// when the uncached overhead's interval reaches zero.
    pub fall: Option<Interval>,
}

/// The overhead's fall for every metric of `metrics`, from the three arms'
/// blocks of one interleaved run. `alpha`: 0.05 for 95 % intervals.
pub fn overhead_fall(
    [none, uncached, cached]: [&Blocks; 3],
    metrics: &[Metric],
    resamples: usize,
    alpha: f64,
    rng: &mut impl Rng,
) -> Vec<OverheadFall> {
    let (len, count) = layout(max_index(none).max(max_index(uncached)).max(max_index(cached)));
    let grids = [none, uncached, cached].map(|b| Grid::new(b, len, count));
    let mut scratch = Vec::new();
    let mut of = |drawn: &[usize]| grids.each_ref().map(|g| g.metrics_of(drawn, &mut scratch));
    let all: Vec<usize> = (0..count).collect();
    let points = of(&all);
    let slots: Vec<usize> =
        metrics.iter().map(|m| Metric::ALL.iter().position(|x| x == m).expect("a metric of Metric::ALL")).collect();
    let mut overheads = vec![Vec::with_capacity(resamples); metrics.len()];
    let mut falls = vec![Vec::with_capacity(resamples); metrics.len()];
    let mut drawn = vec![0; count];
    for _ in 0..resamples {
        drawn.iter_mut().for_each(|k| *k = rng.random_range(0..count));
        let m = of(&drawn);
        for (j, &slot) in slots.iter().enumerate() {
            let (over, fall) = overhead_and_fall(&m, slot);
            if over.is_finite() {
                overheads[j].push(over);
                // A resample whose uncached overhead is not above zero has no
                // fall: counted as unbounded below, so the interval widens.
                falls[j].push(if over > 0.0 && fall.is_finite() { fall } else { f64::NEG_INFINITY });
            }
        }
    }
    slots
        .iter()
        .enumerate()
        .map(|(j, &slot)| {
            let (over, fall) = overhead_and_fall(&points, slot);
            let uncached_overhead = interval(over, &mut overheads[j], alpha);
            let resolved = uncached_overhead.low > 0.0;
            OverheadFall {
                metric: metrics[j],
                none_ms: points[0][slot],
                uncached_ms: points[1][slot],
                cached_ms: points[2][slot],
                uncached_overhead,
                fall: resolved.then(|| interval(fall, &mut falls[j], alpha)),
            }
        })
        .collect()
}

/// `U − N` and `1 − (C − N)/(U − N)` of one metric's slot.
fn overhead_and_fall(m: &[PerMetric<f64>; 3], slot: usize) -> (f64, f64) {
    let [n, u, c] = [m[0][slot], m[1][slot], m[2][slot]];
    let over = u - n;
    (over, 1.0 - (c - n) / over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// 60 blocks of 30 requests: a shared level per block (drift), and `extra` ms.
    fn arm(extra: f64, seed: u64) -> Blocks {
        let mut rng = SmallRng::seed_from_u64(seed);
        let blocks = (0..60u32)
            .map(|i| {
                let level = 5.0 + (f64::from(i) * 0.3).sin();
                (i, (0..30).map(|_| (level + extra + rng.random::<f64>(), 1)).collect())
            })
            .collect();
        Blocks { unit_ms: 100, blocks }
    }

    #[test]
    fn a_known_fall_is_recovered_and_an_unresolved_cost_gives_none() {
        // Uncached work costs 2 ms, cached 0.9 ms: 55 % lower.
        let (n, u, c) = (arm(0.0, 1), arm(2.0, 2), arm(0.9, 3));
        let mut rng = SmallRng::seed_from_u64(9);
        let got = overhead_fall([&n, &u, &c], &[Metric::P50, Metric::Mean], 2000, 0.05, &mut rng);
        for f in &got {
            let fall = f.fall.expect("a 2 ms cost is resolved");
            assert!((fall.point - 0.55).abs() < 0.06, "{:?}: {fall:?}", f.metric);
            assert!(fall.low < 0.55 && fall.high > 0.55, "{:?}: {fall:?}", f.metric);
            assert!(f.uncached_overhead.low > 1.5 && f.uncached_overhead.high < 2.5, "{f:?}");
        }
        // No cost at all: nothing to divide by.
        let same = arm(0.0, 4);
        let none = overhead_fall([&n, &same, &c], &[Metric::P50], 2000, 0.05, &mut rng);
        assert_eq!(none[0].fall, None, "{:?}", none[0]);
    }
}
