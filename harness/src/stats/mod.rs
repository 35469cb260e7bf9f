//! Statistics for comparisons (ARCHITECTURE.md, "Compare and claims"): percentiles and means of recorded
//! distributions, the Mann-Whitney U test, and bootstrap confidence intervals of a
//! relative change, all computed from (value, count) bins so that a run of millions
//! of requests costs no more than its histogram has buckets. `blocks.rs` holds the
//! design-aware (time-block) bootstrap; the one here resamples single requests, for
//! results that kept no blocks; `bootstrap.rs` is the one loop both resample in.
//!
//! The metric set is data: [`Metric::ALL`] says which metrics a comparison
//! computes and [`Metric::quantile`] what each is; every array of per-metric
//! values is a [`PerMetric`] in that order. A new statistic is one variant there.

mod blocks;
mod bootstrap;
mod mean_t;
mod overhead;

pub use blocks::{block_bootstrap, block_layout, Blocks, MIN_BLOCKS};
pub use bootstrap::{z_two_sided, Interval, MIN_TAIL};
pub use overhead::{overhead_fall, OverheadFall};

use hdrhistogram::Histogram;
use rand::Rng;
use rand_distr::{Binomial, Distribution};

/// Where a failure stands in a distribution of milliseconds
/// ([`crate::recorder::FAILED_US`]): ranked slower than every success by the
/// percentiles, left out of the mean (the mean latency of requests that never
/// answered is no figure; the error rate is compared beside it).
pub const FAILED_MS: f64 = crate::recorder::FAILED_US as f64 / 1000.0;

/// A distribution as ascending distinct values with their counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    values: Vec<f64>,
    counts: Vec<u64>,
    total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    P50,
    P90,
    P95,
    P99,
    Mean,
}

/// How many metrics a comparison computes.
pub const METRICS: usize = Metric::ALL.len();

/// One value per metric, in [`Metric::ALL`]'s order.
pub type PerMetric<T> = [T; METRICS];

impl Metric {
    pub const ALL: [Metric; 5] = [Metric::P50, Metric::P90, Metric::P95, Metric::P99, Metric::Mean];

    /// The quantile this metric is (nearest rank); `None` for the mean.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.50),
            Metric::P90 => Some(0.90),
            Metric::P95 => Some(0.95),
            Metric::P99 => Some(0.99),
            Metric::Mean => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::Mean => "mean",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Requests per arm below which a change of this metric is not called: the
    /// percentile must have about ten requests beyond it in each arm.
    pub fn min_samples(self) -> u64 {
        match self {
            Metric::P50 | Metric::Mean => 20,
            Metric::P90 => 100,
            Metric::P95 => 200,
            Metric::P99 => 1000,
        }
    }

    pub fn of(self, d: &Dist) -> f64 {
        match self.quantile() {
            Some(q) => d.quantile(q),
            None => d.mean(),
        }
    }
}

impl Dist {
    /// From raw samples (any order).
    pub fn from_samples(samples: &[f64]) -> Dist {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut d = Dist { values: Vec::new(), counts: Vec::new(), total: 0 };
        for v in sorted {
            if d.values.last() == Some(&v) {
                *d.counts.last_mut().unwrap() += 1;
            } else {
                d.values.push(v);
                d.counts.push(1);
            }
            d.total += 1;
        }
        d
    }

    /// From (value, count) pairs in ascending order of value.
    pub fn from_pairs(pairs: &[(f64, u64)]) -> Dist {
        let mut d = Dist { values: Vec::new(), counts: Vec::new(), total: 0 };
        for &(v, c) in pairs {
            if d.values.last() == Some(&v) {
                *d.counts.last_mut().expect("a value was pushed") += c;
            } else {
                d.values.push(v);
                d.counts.push(c);
            }
            d.total += c;
        }
        d
    }

    /// From an HDR histogram of microseconds, in milliseconds. Each bucket stands
    /// for its median-equivalent value (the middle of the values it cannot tell apart).
    pub fn from_histogram(h: &Histogram<u64>) -> Dist {
        let mut d = Dist { values: Vec::new(), counts: Vec::new(), total: 0 };
        for v in h.iter_recorded() {
            d.values.push(h.median_equivalent(v.value_iterated_to()) as f64 / 1000.0);
            d.counts.push(v.count_at_value());
            d.total += v.count_at_value();
        }
        d
    }

    fn with_counts(&self, counts: Vec<u64>) -> Dist {
        Dist { values: self.values.clone(), total: counts.iter().sum(), counts }
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The nearest-rank quantile: the smallest value with at least ⌈q·n⌉ values at
    /// or below it (HdrHistogram's definition).
    pub fn quantile(&self, q: f64) -> f64 {
        self.at_rank(q).map_or(f64::NAN, |(i, _)| self.values[i])
    }

    /// The distinct value holding the nearest rank ⌈q·n⌉ (its index), and how
    /// many values lie below it; `None` when empty.
    fn at_rank(&self, q: f64) -> Option<(usize, u64)> {
        if self.total == 0 {
            return None;
        }
        let rank = nearest_rank(q, self.total);
        let mut before = 0;
        for (i, c) in self.counts.iter().enumerate() {
            if before + c >= rank {
                return Some((i, before));
            }
            before += c;
        }
        Some((self.values.len() - 1, self.total - self.counts[self.values.len() - 1]))
    }

    /// Whether the quantile `q` sits on a tie that spans its own sampling
    /// spread: the value at rank ⌈qn⌉ is shared by every rank within one
    /// standard deviation of the rank (√(n·q·(1−q))) on both sides. Then nearly
    /// every bootstrap resample returns that same value and a percentile interval
    /// collapses to a point ("[0, 0]", "[+100, +100]"): the data are at their
    /// clock's resolution (a Worker's whole milliseconds), not precise. An empty
    /// distribution is tied: there is nothing to resolve.
    pub fn tied_at(&self, q: f64) -> bool {
        let Some((i, before)) = self.at_rank(q) else { return true };
        let n = self.total as f64;
        let rank = nearest_rank(q, self.total) as f64;
        let spread = (n * q * (1.0 - q)).sqrt().max(1.0);
        let (first, last) = ((before + 1) as f64, (before + self.counts[i]) as f64);
        first <= rank - spread && last >= rank + spread
    }

    /// The distinct values on either side of the quantile `q`'s value: where
    /// the true quantile may lie when the data are at their resolution. Below
    /// the smallest value, 0; above the largest, as far as the step below it
    /// (twice the value when there is only one).
    pub fn bracket_at(&self, q: f64) -> (f64, f64) {
        let Some((i, _)) = self.at_rank(q) else { return (f64::NAN, f64::NAN) };
        let v = self.values[i];
        let below = if i > 0 { self.values[i - 1] } else { 0.0 };
        let above = self.values.get(i + 1).copied().unwrap_or(v + (v - below));
        (below, above)
    }

    /// The mean of the successes (values other than [`FAILED_MS`]).
    pub fn mean(&self) -> f64 {
        let i = Metric::ALL.iter().position(|m| *m == Metric::Mean).expect("the mean is a metric");
        metrics(&self.values, &self.counts)[i]
    }

    /// A bootstrap resample: n draws with replacement, as new bin counts
    /// (a multinomial drawn as a chain of binomials).
    pub fn resample(&self, rng: &mut impl Rng) -> Dist {
        let mut left = self.total;
        let mut mass_left = self.total;
        let counts = self
            .counts
            .iter()
            .map(|&c| {
                if left == 0 || mass_left == 0 {
                    return 0;
                }
                let p = (c as f64 / mass_left as f64).min(1.0);
                let drawn = if p >= 1.0 { left } else { Binomial::new(left, p).map_or(0, |b| b.sample(rng)) };
                left -= drawn;
                mass_left -= c;
                drawn
            })
            .collect();
        self.with_counts(counts)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MannWhitney {
    /// U of the first sample: the number of (a, b) pairs with a > b, ties counting ½.
    pub u_a: f64,
    pub u_b: f64,
    pub z: f64,
    /// Two-sided, normal approximation with tie and continuity corrections.
    pub p_value: f64,
}

/// The standard normal distribution function.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

pub fn mann_whitney(a: &Dist, b: &Dist) -> MannWhitney {
    let (na, nb) = (a.total as f64, b.total as f64);
    let n = na + nb;
    let (mut i, mut j) = (0, 0);
    let mut rank_before = 0.0;
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    while i < a.values.len() || j < b.values.len() {
        let va = a.values.get(i).copied().unwrap_or(f64::INFINITY);
        let vb = b.values.get(j).copied().unwrap_or(f64::INFINITY);
        let v = va.min(vb);
        let ca = if va == v { a.counts[i] as f64 } else { 0.0 };
        let cb = if vb == v { b.counts[j] as f64 } else { 0.0 };
        let t = ca + cb;
        let mid_rank = rank_before + (t + 1.0) / 2.0;
        rank_sum_a += ca * mid_rank;
        ties += t * t * t - t;
        rank_before += t;
        if va == v {
            i += 1;
        }
        if vb == v {
            j += 1;
        }
    }
    let u_a = rank_sum_a - na * (na + 1.0) / 2.0;
    let u_b = na * nb - u_a;
    let mean = na * nb / 2.0;
    let var = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var.is_nan() || var <= 0.0 {
        return MannWhitney { u_a, u_b, z: 0.0, p_value: 1.0 };
    }
    let diff = u_a - mean;
    // Continuity correction towards 0, never past it.
    let corrected = if diff.abs() <= 0.5 { 0.0 } else { diff - 0.5 * diff.signum() };
    let z = corrected / var.sqrt();
    MannWhitney { u_a, u_b, z, p_value: (2.0 * (1.0 - phi(z.abs()))).clamp(0.0, 1.0) }
}

/// The relative change of B against A read as a factor — a shift of log latency
/// (Hodges–Lehmann: the median of every pairwise difference ln b − ln a) — with its
/// distribution-free `1 − alpha` interval (Moses: the order statistics of those
/// differences at the Mann–Whitney critical value, normal approximation), and the
/// Mann–Whitney p-value. For small independent samples (cold starts: one request
/// per fresh isolate), where a percentile bootstrap of a median has too few
/// distinct values to be trusted. It assumes independent samples and arms that
/// differ by a factor; `None` for a failure or a zero in an arm (no logarithm),
/// or fewer than 5 values, or samples too large for n² differences.
pub fn log_shift(a: &Dist, b: &Dist, alpha: f64) -> Option<Interval> {
    let logs = |d: &Dist| -> Option<Vec<f64>> {
        let mut out = Vec::new();
        for (v, c) in d.values.iter().zip(&d.counts) {
            if *v <= 0.0 || *v == FAILED_MS {
                return None;
            }
            out.extend(std::iter::repeat_n(v.ln(), *c as usize));
        }
        Some(out)
    };
    let (la, lb) = (logs(a)?, logs(b)?);
    let (na, nb) = (la.len(), lb.len());
    if na < 5 || nb < 5 || na * nb > 4_000_000 {
        return None;
    }
    let mut d: Vec<f64> = lb.iter().flat_map(|y| la.iter().map(move |x| y - x)).collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let point = if n % 2 == 1 { d[n / 2] } else { (d[n / 2 - 1] + d[n / 2]) / 2.0 };
    let (fa, fb) = (na as f64, nb as f64);
    let spread = (fa * fb * (fa + fb + 1.0) / 12.0).sqrt();
    let k = ((fa * fb / 2.0 - bootstrap::z_two_sided(alpha) * spread).floor().max(0.0) as usize).min((n - 1) / 2);
    Some(Interval {
        point: point.exp() - 1.0,
        low: d[k].exp() - 1.0,
        high: d[n - 1 - k].exp() - 1.0,
        p_value: mann_whitney(a, b).p_value,
    })
}

/// The 1-based nearest rank of quantile `q` among `n` ordered values: ⌈q·n⌉,
/// at least 1 (HdrHistogram's and the percentile bootstrap's definition).
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// The Wilson score interval of a proportion, `k` of `n`, at the normal quantile
/// `z` (1.96 for 95 %): `(low, high)` as shares. Unlike `k/n ± z·se` it stays
/// inside [0, 1] and is not empty at `k = 0`: 0 of 300 gives 0–1.3 %. It
/// assumes the `n` trials independent; trials that cluster (one user's pairs,
/// one time block) make the true interval wider.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The relative change `(b − a) / a` of every metric in [`Metric::ALL`], each
/// with its `1 − alpha` percentile-bootstrap interval, resampling single requests
/// as if they were independent (they are not: see `blocks.rs`). The block
/// bootstrap with one request per block, drawn as a multinomial over the
/// histogram's bins: a resample costs what the histogram has bins, not requests.
pub fn bootstrap_changes(a: &Dist, b: &Dist, resamples: usize, alpha: f64, rng: &mut impl Rng) -> PerMetric<Interval> {
    let of = |d: &Dist| metrics(&d.values, &d.counts);
    bootstrap::changes((of(a), of(b)), resamples, alpha, || (of(&a.resample(rng)), of(&b.resample(rng))))
}

/// Every metric of [`Metric::ALL`] of a distribution on ascending `values` with
/// `counts`, in one pass: the quantiles at their nearest ranks over every value
/// (failures, at [`FAILED_MS`], rank last), the mean over the successes.
pub(crate) fn metrics(values: &[f64], counts: &[u64]) -> PerMetric<f64> {
    let total: u64 = counts.iter().sum();
    let mut out = [f64::NAN; METRICS];
    if total == 0 {
        return out;
    }
    let mut succeeded = 0u64;
    // (rank, slot) of every metric, lowest rank first; the mean has no rank and
    // sorts last. An array: this runs twice per bootstrap resample.
    let mut ranks: PerMetric<(u64, usize)> =
        std::array::from_fn(|i| (Metric::ALL[i].quantile().map_or(u64::MAX, |q| nearest_rank(q, total)), i));
    ranks.sort_unstable();
    let (mut seen, mut next, mut sum) = (0u64, 0usize, 0.0);
    for (v, &c) in values.iter().zip(counts) {
        seen += c;
        if *v != FAILED_MS {
            sum += v * c as f64;
            succeeded += c;
        }
        while next < METRICS && ranks[next].0 != u64::MAX && seen >= ranks[next].0 {
            out[ranks[next].1] = *v;
            next += 1;
        }
    }
    for (o, m) in out.iter_mut().zip(Metric::ALL) {
        if m.quantile().is_none() {
            // No successes: NaN, no mean to compare.
            *o = sum / succeeded as f64;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // 5 of 10 at 95 %: 0.2366–0.7634 (Wilson 1927; Newcombe 1998, table I).
        let (lo, hi) = wilson(5, 10, 1.96);
        assert!((lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4, "{lo} {hi}");
        // None of n: from 0 to z²/(n + z²).
        let (lo, hi) = wilson(0, 300, 1.96);
        assert_eq!(lo, 0.0);
        assert!((hi - 1.96f64.powi(2) / (300.0 + 1.96f64.powi(2))).abs() < 1e-12);
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
        let (lo, hi) = wilson(300, 300, 1.96);
        assert!(lo > 0.98 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
    }
    use rand::SeedableRng;

    #[test]
    fn percentiles_by_hand() {
        // 1..=10: nearest rank p50 = 5th value, p90 = 9th, p95 = p99 = 10th.
        let d = Dist::from_samples(&[7.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0]);
        assert_eq!(Metric::P50.of(&d), 5.0);
        assert_eq!(Metric::P90.of(&d), 9.0);
        assert_eq!(Metric::P95.of(&d), 10.0);
        assert_eq!(Metric::P99.of(&d), 10.0);
        assert_eq!(Metric::Mean.of(&d), 5.5);
        let dup = Dist::from_samples(&[2.0, 2.0, 2.0, 9.0]);
        assert_eq!(dup.quantile(0.75), 2.0);
        assert_eq!(dup.quantile(0.76), 9.0);
    }

    #[test]
    fn mann_whitney_by_hand() {
        // No overlap: U_a = 0, U_b = 9; z = (0 - 4.5 + 0.5) / sqrt(3·3·7/12) = -1.746.
        let m = mann_whitney(&Dist::from_samples(&[1.0, 2.0, 3.0]), &Dist::from_samples(&[4.0, 5.0, 6.0]));
        assert_eq!((m.u_a, m.u_b), (0.0, 9.0));
        assert!((m.z + 1.7457).abs() < 1e-3, "{}", m.z);
        assert!((m.p_value - 0.0809).abs() < 1e-3, "{}", m.p_value);
        // With ties: a = {1, 2, 2}, b = {2, 3}: pairs a > b: 0; ties (2,2): 2 → U_a = 1.
        let t = mann_whitney(&Dist::from_samples(&[1.0, 2.0, 2.0]), &Dist::from_samples(&[2.0, 3.0]));
        assert_eq!(t.u_a, 1.0);
        assert_eq!(t.u_b, 5.0);
        // Identical samples: no evidence of a difference.
        let same = mann_whitney(&Dist::from_samples(&[1.0, 2.0, 3.0, 4.0]), &Dist::from_samples(&[1.0, 2.0, 3.0, 4.0]));
        assert_eq!(same.u_a, 8.0);
        assert!(same.p_value > 0.99);
    }

    #[test]
    fn bootstrap_brackets_a_known_change() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let a: Vec<f64> = (0..4000).map(|i| 10.0 + (i % 100) as f64 / 10.0).collect();
        let b: Vec<f64> = a.iter().map(|v| v * 0.7).collect();
        let p50 = bootstrap_changes(&Dist::from_samples(&a), &Dist::from_samples(&b), 500, 0.05, &mut rng)[0];
        assert!((p50.point + 0.3).abs() < 1e-9, "{p50:?}");
        assert!(p50.low <= p50.point && p50.point <= p50.high && p50.high - p50.low < 0.05, "{p50:?}");
        let mean = bootstrap_changes(&Dist::from_samples(&a), &Dist::from_samples(&a), 500, 0.05, &mut rng)[4];
        assert!(mean.point == 0.0 && mean.low < 0.0 && mean.high > 0.0);
        // A resample keeps the sample size.
        assert_eq!(Dist::from_samples(&a).resample(&mut rng).len(), 4000);
    }

    #[test]
    fn a_quantile_on_a_tie_wider_than_its_spread_is_tied() {
        // Whole milliseconds: 0, 1 and 2 ms, mostly 1. p50's rank (500 of 1000)
        // ± √250 ≈ 16 ranks lies inside the 700 requests at 1 ms.
        let mut v = vec![0.0; 150];
        v.extend([1.0; 700]);
        v.extend([2.0; 150]);
        let whole = Dist::from_samples(&v);
        assert!(whole.tied_at(0.5));
        // p99 (rank 990 ± 3) lies inside the 150 at 2 ms: tied too.
        assert!(whole.tied_at(0.99));
        // Microseconds: every value distinct, nothing tied.
        let fine = Dist::from_samples(&(0..1000).map(|i| 10.0 + i as f64 * 0.001).collect::<Vec<_>>());
        assert!(!fine.tied_at(0.5) && !fine.tied_at(0.99));
        // A tie that ends inside the spread (at rank 505 of 1000) is not enough.
        let mut edge = vec![1.0; 505];
        edge.extend((0..495).map(|i| 2.0 + i as f64 * 0.001));
        assert!(!Dist::from_samples(&edge).tied_at(0.5));
        assert!(Dist::from_samples(&[]).tied_at(0.5));
    }

    #[test]
    fn a_log_shift_by_hand() {
        // B is A × 2 exactly: every pairwise log difference centres on ln 2.
        let a: Vec<f64> = (1..=20).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|v| v * 2.0).collect();
        let i = log_shift(&Dist::from_samples(&a), &Dist::from_samples(&b), 0.05).unwrap();
        assert!((i.point - 1.0).abs() < 1e-12, "{i:?}");
        assert!(i.low < 1.0 && 1.0 < i.high, "{i:?}");
        // Moses' k for 20 × 20 at 95 %: ⌊200 − 1.96·√(400·41/12)⌋ = ⌊127.54⌋ = 127.
        let d = {
            let mut d: Vec<f64> = b.iter().flat_map(|y| a.iter().map(move |x| y.ln() - x.ln())).collect::<Vec<_>>();
            d.sort_by(f64::total_cmp);
            d
        };
        assert!((i.low - (d[127].exp() - 1.0)).abs() < 1e-12 && (i.high - (d[400 - 128].exp() - 1.0)).abs() < 1e-12);
        // A failure or a zero: no logarithm, no interval.
        assert!(
            log_shift(&Dist::from_samples(&[1.0, 2.0, 3.0, 4.0, FAILED_MS]), &Dist::from_samples(&a), 0.05).is_none()
        );
        assert!(log_shift(&Dist::from_samples(&[0.0, 2.0, 3.0, 4.0, 5.0]), &Dist::from_samples(&a), 0.05).is_none());
    }

    #[test]
    fn a_bracket_is_the_neighbouring_values() {
        let d = Dist::from_samples(&[0.0, 1.0, 1.0, 1.0, 2.0]);
        assert_eq!(d.bracket_at(0.5), (0.0, 2.0));
        assert_eq!(d.bracket_at(1.0), (1.0, 3.0));
        assert_eq!(Dist::from_samples(&[0.5, 0.5]).bracket_at(0.5), (0.0, 1.0));
    }

    #[test]
    fn failures_rank_last_in_percentiles_and_stay_out_of_the_mean() {
        // 6 successes of 1..=6 ms and 4 failures: p50 is the 5th value (a
        // success), p90 the 9th (a failure); the mean is of the six successes.
        let mut v: Vec<f64> = (1..=6).map(f64::from).collect();
        v.extend([FAILED_MS; 4]);
        let d = Dist::from_samples(&v);
        assert_eq!(Metric::P50.of(&d), 5.0);
        assert_eq!(Metric::P90.of(&d), FAILED_MS);
        assert_eq!(Metric::Mean.of(&d), 3.5);
        assert_eq!(metrics(&d.values, &d.counts)[4], 3.5);
        // An arm that fails its slow requests at once is not faster: A answers
        // 10 and 30 ms, B answers the 10s alike and fails where A took 30.
        let a = Dist::from_samples(&[10.0, 10.0, 30.0, 30.0, 30.0]);
        let b = Dist::from_samples(&[10.0, 10.0, FAILED_MS, FAILED_MS, FAILED_MS]);
        assert!(Metric::P50.of(&b) > Metric::P50.of(&a));
        assert!(Dist::from_samples(&[FAILED_MS]).mean().is_nan(), "no success, no mean");
    }

    #[test]
    fn histogram_bins_become_values() {
        let mut h = crate::recorder::new_histogram();
        for us in [1000u64, 1000, 2000, 50_000] {
            crate::recorder::record(&mut h, us);
        }
        let d = Dist::from_histogram(&h);
        assert_eq!(d.len(), 4);
        assert!((d.quantile(0.5) - 1.0).abs() < 0.001);
        assert!((d.quantile(1.0) - 50.0).abs() < 0.05);
    }
}
