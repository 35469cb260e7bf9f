//! The design-aware bootstrap (ARCHITECTURE.md, "Compare and claims"): latency is
//! correlated in time (a GC pause, a SQLite checkpoint, the node proxy slows every
//! request for a while), so requests are not independent draws and resampling them
//! one by one understates the uncertainty. Instead each arm's requests are kept in
//! short time blocks (by intended start), and a resample draws whole blocks with
//! replacement. In an interleaved A/B the two arms ran in the same blocks of time
//! and, pair by pair, replayed the same users and steps: one draw of block indices
//! serves both arms, so whatever slowed both at once cancels in the change, as it
//! did in the run, and the step mix of every drawn block is the same in both arms.

use rand::Rng;

use super::bootstrap::{self, Interval};
use super::mean_t;
use super::Metric;
use super::{metrics, PerMetric};

/// An arm's requests of one series, by time block: block index (of `unit_ms`
/// blocks since the measured part began) → (milliseconds, count) pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    pub unit_ms: u32,
    pub blocks: Vec<(u32, Vec<(f64, u64)>)>,
}

impl Blocks {
    /// Every block's requests as one distribution.
    pub fn dist(&self) -> super::Dist {
        let mut pairs: Vec<(f64, u64)> = self.blocks.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
        super::Dist::from_pairs(&pairs)
    }
}

/// Resamples are made of about this many blocks: enough for the percentiles of
/// the bootstrap distribution to be smooth, with blocks as long as a run allows.
const TARGET_BLOCKS: u32 = 40;
/// Fewer blocks than this cannot stand for the run's variability.
pub const MIN_BLOCKS: usize = 10;

/// One arm's distinct values and, per resampling block, the counts at them.
pub(super) struct Grid {
    values: Vec<f64>,
    blocks: Vec<Vec<(usize, u64)>>,
}

impl Grid {
    pub(super) fn new(b: &Blocks, len: u32, count: usize) -> Grid {
        let mut values: Vec<f64> = b.blocks.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let mut blocks = vec![Vec::new(); count];
        for (i, pairs) in &b.blocks {
            let k = (*i / len) as usize;
            for (v, c) in pairs {
                let g = values.binary_search_by(|x| x.total_cmp(v)).expect("every value is on the grid");
                blocks[k.min(count - 1)].push((g, *c));
            }
        }
        Grid { values, blocks }
    }

    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The metrics of the blocks `drawn`, summed; `counts` is scratch space.
    pub(super) fn metrics_of(&self, drawn: &[usize], counts: &mut Vec<u64>) -> PerMetric<f64> {
        counts.clear();
        counts.resize(self.values.len(), 0);
        for &k in drawn {
            for &(g, c) in &self.blocks[k] {
                counts[g] += c;
            }
        }
        metrics(&self.values, counts)
    }
}

/// Resampling-block length (in units) and count for block indices up to `max`.
pub(super) fn layout(max: u32) -> (u32, usize) {
    let units = max + 1;
    let len = units.div_ceil(TARGET_BLOCKS).max(1);
    (len, units.div_ceil(len) as usize)
}

pub(super) fn max_index(b: &Blocks) -> u32 {
    b.blocks.iter().map(|(i, _)| *i).max().unwrap_or(0)
}

/// Each arm's resampling blocks: (length in units, count). Drawn jointly both
/// arms are cut alike, over the longer arm's span; drawn apart each on its own.
fn layouts(a: &Blocks, b: &Blocks, joint: bool) -> [(u32, usize); 2] {
    if joint {
        let both = layout(max_index(a).max(max_index(b)));
        [both, both]
    } else {
        [layout(max_index(a)), layout(max_index(b))]
    }
}

/// The resampling blocks `a` and `b` are cut into: their length in units (the
/// longer arm's, when drawn apart) and how many (the fewer).
pub fn block_layout(a: &Blocks, b: &Blocks, joint: bool) -> (u32, usize) {
    let [(la, ca), (lb, cb)] = layouts(a, b, joint);
    (la.max(lb), ca.min(cb))
}

/// The relative change `(b − a) / a` of every metric (in [`Metric::ALL`]'s order), with its block-bootstrap
/// interval. `joint`: the arms were interleaved, so one draw of blocks serves both.
/// `alpha`: 0.05 for 95 % intervals.
pub fn block_bootstrap(
    a: &Blocks,
    b: &Blocks,
    joint: bool,
    resamples: usize,
    alpha: f64,
    rng: &mut impl Rng,
) -> PerMetric<Interval> {
    let [(la, ca), (lb, cb)] = layouts(a, b, joint);
    let (ga, gb) = (Grid::new(a, la, ca), Grid::new(b, lb, cb));
    let all = |g: &Grid| (0..g.len()).collect::<Vec<_>>();
    let mut scratch = Vec::new();
    let points = (ga.metrics_of(&all(&ga), &mut scratch), gb.metrics_of(&all(&gb), &mut scratch));
    let (mut da, mut db) = (vec![0; ga.len()], vec![0; gb.len()]);
    let mut intervals = bootstrap::changes(points, resamples, alpha, || {
        da.iter_mut().for_each(|k| *k = rng.random_range(0..ga.len()));
        if joint {
            db.copy_from_slice(&da);
        } else {
            db.iter_mut().for_each(|k| *k = rng.random_range(0..gb.len()));
        }
        (ga.metrics_of(&da, &mut scratch), gb.metrics_of(&db, &mut scratch))
    });
    let mean = Metric::ALL.iter().position(|m| *m == Metric::Mean).expect("the mean is a metric");
    let (sa, sb) = (mean_t::block_sums(&ga.values, &ga.blocks), mean_t::block_sums(&gb.values, &gb.blocks));
    if let Some(t) = mean_t::interval(&sa, &sb, joint, resamples, alpha, intervals[mean], rng) {
        intervals[mean] = t;
    }
    intervals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::bootstrap::interval;
    use rand::SeedableRng;

    /// `blocks` blocks of `per` requests; `value(block, j)` in ms.
    fn blocks(n: u32, per: u32, value: impl Fn(u32, u32) -> f64) -> Blocks {
        Blocks { unit_ms: 100, blocks: (0..n).map(|i| (i, (0..per).map(|j| (value(i, j), 1)).collect())).collect() }
    }

    #[test]
    fn metrics_by_hand() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let m = metrics(&values, &[1; 10]);
        assert_eq!(m, [5.0, 9.0, 10.0, 10.0, 5.5]);
        assert!(metrics(&values, &[0; 10])[0].is_nan());
    }

    #[test]
    fn layout_aims_at_forty_blocks() {
        assert_eq!(layout(39), (1, 40));
        assert_eq!(layout(299), (8, 38));
        assert_eq!(layout(4), (1, 5));
    }

    #[test]
    fn percentile_indices_are_nearest_rank() {
        let mut c: Vec<f64> = (1..=2000).map(|i| f64::from(i) - 100.0).collect();
        let i = interval(900.0, &mut c, 0.05);
        // 2.5 % of 2000 = the 50th value; 97.5 % = the 1950th.
        assert_eq!((i.low, i.high), (-50.0, 1850.0));
        // 100 resamples at or below zero: p = (2·100 + 1) / 2001.
        assert_eq!(i.p_value, 201.0 / 2001.0);
        // None cross zero: the normal tail, 2·Φ(−5) for a point 5 sd from zero,
        // far below the 1/2001 the counts could show.
        let mut far: Vec<f64> =
            (0..2000).map(|i| 0.5 + 0.1 * ((f64::from(i) + 0.5) / 2000.0 * 12.0 - 6.0) / 3.465).collect();
        let sd = {
            let m = far.iter().sum::<f64>() / 2000.0;
            (far.iter().map(|c| (c - m).powi(2)).sum::<f64>() / 1999.0).sqrt()
        };
        let p = interval(0.5, &mut far, 0.05).p_value;
        let want = libm::erfc(0.5 / sd / std::f64::consts::SQRT_2);
        assert!((p - want).abs() < 1e-12 && p < 1e-5, "{p} vs {want}");
        // Tied resamples (no spread) are no evidence.
        assert_eq!(interval(0.5, &mut [0.5; 100], 0.05).p_value, 1.0);
    }

    #[test]
    fn too_few_resamples_for_a_percentile_end_give_the_normal_interval() {
        use crate::stats::bootstrap::z_two_sided;
        assert!((z_two_sided(0.05) - 1.959964).abs() < 1e-6);
        assert!((z_two_sided(0.0025) - 3.023341).abs() < 1e-6);
        // 2000 resamples at α = 0.0025 (20 looks): 2.5 beyond each end, fewer
        // than 20. The interval is the point ± z·sd, not the 3rd order statistic.
        let mut c: Vec<f64> = (0..2000).map(|i| (f64::from(i) - 999.5) / 1000.0).collect();
        let sd = (c.iter().map(|x| x * x).sum::<f64>() / 1999.0).sqrt();
        let i = interval(0.0, &mut c, 0.0025);
        assert!((i.high - z_two_sided(0.0025) * sd).abs() < 1e-9 && (i.low + i.high).abs() < 1e-12, "{i:?}");
        // At α = 0.05 the percentile ends stay.
        let i = interval(0.0, &mut c, 0.05);
        assert_eq!((i.low, i.high), (c[49], c[1949]));
    }

    #[test]
    fn a_shared_slowdown_cancels_when_blocks_are_drawn_jointly() {
        // Both arms slow down together in every other block; B is 10 % faster
        // throughout. Drawn jointly the change is 10 % in every resample; drawn
        // apart, the shared slowdown widens the interval.
        let slow = |i: u32| if i.is_multiple_of(2) { 10.0 } else { 30.0 };
        let a = blocks(40, 20, |i, j| slow(i) + j as f64 * 0.01);
        let b = blocks(40, 20, |i, j| (slow(i) + j as f64 * 0.01) * 0.9);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let joint = block_bootstrap(&a, &b, true, 500, 0.05, &mut rng)[4];
        let apart = block_bootstrap(&a, &b, false, 500, 0.05, &mut rng)[4];
        assert!((joint.point + 0.1).abs() < 1e-9, "{joint:?}");
        assert!(joint.high - joint.low < 1e-9, "{joint:?}");
        assert!(apart.high - apart.low > 0.05, "{apart:?}");
        assert!(joint.p_value < 0.01);
    }

    #[test]
    fn blocks_see_correlation_that_single_requests_hide() {
        // Identical arms whose latency wanders slowly (a level per block): the
        // block bootstrap of independent runs must be wider than the i.i.d. one.
        let level = |i: u32| 10.0 + ((i * 7919) % 13) as f64;
        let a = blocks(40, 25, |i, j| level(i) + j as f64 * 0.001);
        let b = blocks(40, 25, |i, j| level((i + 17) % 40) + j as f64 * 0.001);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let by_block = block_bootstrap(&a, &b, false, 500, 0.05, &mut rng)[4];
        let flat = |x: &Blocks| {
            let v: Vec<f64> = x.blocks.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).collect();
            super::super::Dist::from_samples(&v)
        };
        let iid = super::super::bootstrap_changes(&flat(&a), &flat(&b), 500, 0.05, &mut rng)[4];
        assert!(by_block.high - by_block.low > 2.0 * (iid.high - iid.low), "{by_block:?} vs {iid:?}");
    }
}
