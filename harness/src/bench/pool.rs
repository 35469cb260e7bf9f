//! Pooling repeated A/A controls (`--controls N`): one control run is one draw
//! of the noise, and a control that calls a difference by chance (5 % of
//! them) takes its scenario's verdicts away. Repeated controls of one scenario
//! and measurement are pooled into one, `A/A control <scenario> (pooled, N
//! runs)`, which `findings::hold_to_control` holds the verdicts to.
//!
//! Pooled by their changes, not by their requests: each run's change is a log
//! ratio with a standard error read from its interval, and the pool is their
//! inverse-variance mean (a fixed-effect meta-analysis). Laying the runs' time
//! blocks end to end was tried first: when the machine's level differed between
//! the runs (it does, minutes apart), each arm's pooled distribution was a
//! mixture whose p50 fell between its modes, and the pooled interval came out
//! wider than either run's (±47 % against ±21 and ±15 in one CI run).

use super::AbSummary;
use crate::change::{Direction, MetricChange};
use crate::findings::Row;
use crate::stats::z_two_sided;

/// Adds, for every scenario and measurement with more than one valid control,
/// the pooled control.
pub(super) fn pool_controls(runs: &mut Vec<AbSummary>, noise: f64, alpha: f64) {
    let mut groups: Vec<Vec<&AbSummary>> = Vec::new();
    for r in runs.iter().filter(|r| r.control && r.status.is_valid() && r.pooled == 0) {
        match groups.iter_mut().find(|g| g[0].scenario == r.scenario && g[0].measurement == r.measurement) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let pooled: Vec<AbSummary> = groups.into_iter().filter(|g| g.len() > 1).map(|g| pool(&g, noise, alpha)).collect();
    runs.extend(pooled);
}

/// One pooled control of `group` (same scenario and measurement): every
/// client-side row the runs share, its p50 and p99 pooled at `1 − alpha`.
fn pool(group: &[&AbSummary], noise: f64, alpha: f64) -> AbSummary {
    let first = group[0];
    let rows = first
        .rows
        .iter()
        .filter(|r| !r.series.is_server_side())
        .filter_map(|r| {
            let same: Vec<&Row> = group.iter().filter_map(|g| g.rows.iter().find(|x| x.series == r.series)).collect();
            (same.len() == group.len()).then(|| pooled_row(&same, noise, alpha))
        })
        .collect();
    AbSummary {
        name: format!("{} (pooled, {} runs)", first.name, group.len()),
        pooled: group.len() as u32,
        measured_s: group.iter().map(|g| g.measured_s).sum(),
        requests: group.iter().map(|g| g.requests).sum(),
        errors: group.iter().map(|g| g.errors).sum(),
        stale_reads: group.iter().map(|g| g.stale_reads).sum(),
        warnings: Vec::new(),
        thresholds_failed: Vec::new(),
        answers: None,
        claims: Vec::new(),
        report: None,
        result: group.iter().map(|g| g.result.as_str()).collect::<Vec<_>>().join(", "),
        rows,
        ..first.clone()
    }
}

fn pooled_row(rows: &[&Row], noise: f64, alpha: f64) -> Row {
    let p50: Vec<(&MetricChange, f64)> = rows.iter().map(|r| (&r.p50, r.confidence)).collect();
    let p99: Vec<(&MetricChange, f64)> = rows.iter().map(|r| (&r.p99, r.confidence)).collect();
    let mean = |f: fn(&Row) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / rows.len() as f64;
    Row {
        count_a: rows.iter().map(|r| r.count_a).sum(),
        count_b: rows.iter().map(|r| r.count_b).sum(),
        p50_a: mean(|r| r.p50_a),
        p50_b: mean(|r| r.p50_b),
        p50: pooled_change(&p50, noise, alpha),
        p99_a: mean(|r| r.p99_a),
        p99_b: mean(|r| r.p99_b),
        p99: pooled_change(&p99, noise, alpha),
        fdr_significant: false,
        summary: String::new(),
        confidence: 1.0 - alpha,
        ..rows[0].clone()
    }
}

/// The inverse-variance mean of the runs' log ratios (each with its interval's
/// confidence, which sizes its standard error), its interval at `1 − alpha`.
/// A run without a finite interval (too few requests) leaves the pool without
/// one: undetermined.
pub(super) fn pooled_change(runs: &[(&MetricChange, f64)], noise: f64, alpha: f64) -> MetricChange {
    let mut weights = 0.0;
    let mut sum = 0.0;
    let mut usable = true;
    for (m, confidence) in runs {
        let (l, lo, hi) = ((1.0 + m.change).ln(), (1.0 + m.ci_low).ln(), (1.0 + m.ci_high).ln());
        let se = (hi - lo) / (2.0 * z_two_sided(1.0 - confidence));
        if !(l.is_finite() && se.is_finite() && se > 0.0 && m.enough_samples) {
            usable = false;
            continue;
        }
        weights += 1.0 / (se * se);
        sum += l / (se * se);
    }
    let first = runs[0].0;
    let mean = |f: fn(&MetricChange) -> f64| runs.iter().map(|(m, _)| f(m)).sum::<f64>() / runs.len() as f64;
    let (a, b) = (mean(|m| m.a), mean(|m| m.b));
    if !usable || weights == 0.0 {
        return MetricChange {
            a,
            b,
            change: b / a - 1.0,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            direction: Direction::Undetermined,
            enough_samples: false,
            ..first.clone()
        };
    }
    let (l, se, z) = (sum / weights, weights.sqrt().recip(), z_two_sided(alpha));
    let (change, ci_low, ci_high) = (l.exp_m1(), (l - z * se).exp_m1(), (l + z * se).exp_m1());
    MetricChange {
        a,
        b,
        change,
        ci_low,
        ci_high,
        direction: Direction::of(change, ci_low, ci_high, noise),
        enough_samples: true,
        at_resolution: false,
        ..first.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metric;

    fn change(change: f64, lo: f64, hi: f64) -> MetricChange {
        MetricChange {
            metric: Metric::P50,
            a: 10.0,
            b: 10.0 * (1.0 + change),
            change,
            ci_low: lo,
            ci_high: hi,
            direction: Direction::of(change, lo, hi, 0.02),
            enough_samples: true,
            at_resolution: false,
        }
    }

    #[test]
    fn pooling_narrows_the_interval_and_weighs_the_tighter_run_more() {
        // Two runs at different levels of noise: one called +6 %, one nothing.
        let (one, two) = (change(0.06, 0.02, 0.10), change(-0.01, -0.02, 0.0));
        let p = pooled_change(&[(&one, 0.95), (&two, 0.95)], 0.02, 0.05);
        let half = |m: &MetricChange| (m.ci_high - m.ci_low) / 2.0;
        assert!(half(&p) < half(&one).min(half(&two)), "{p:?}");
        assert!(p.change > -0.01 && p.change < 0.06 && (p.change - -0.01).abs() < (p.change - 0.06).abs(), "{p:?}");
        // Two equal runs: the same change, the interval narrower by about √2.
        let p = pooled_change(&[(&one, 0.95), (&one, 0.95)], 0.02, 0.05);
        assert!((p.change - 0.06).abs() < 1e-9);
        let ratio = half(&one) / half(&p);
        assert!((ratio - 2f64.sqrt()).abs() < 0.1, "{ratio}");
    }

    #[test]
    fn each_run_is_read_at_its_own_confidence_and_the_pool_at_the_bench_s() {
        // The same interval read as 99 % holds a smaller standard error than as
        // 95 %: that run weighs more. One run pooled alone at 95 % is itself.
        let (wide, narrow) = (change(0.06, 0.02, 0.10), change(-0.02, -0.06, 0.02));
        let as95 = pooled_change(&[(&wide, 0.95), (&narrow, 0.95)], 0.02, 0.05);
        let narrow_at_99 = pooled_change(&[(&wide, 0.95), (&narrow, 0.99)], 0.02, 0.05);
        assert!(narrow_at_99.change < as95.change, "{narrow_at_99:?} vs {as95:?}");
        let alone = pooled_change(&[(&wide, 0.95)], 0.02, 0.05);
        let (lo, hi) = ((1.02f64).ln(), (1.10f64).ln());
        let l = (1.06f64).ln();
        // Symmetric in logs around the run's point: its own ends, in logs, up to the asymmetry of the given interval.
        assert!(((1.0 + alone.ci_high).ln() - l - (hi - lo) / 2.0).abs() < 1e-9, "{alone:?}");
        // At 99 % the pool is wider than at 95 %.
        let at99 = pooled_change(&[(&wide, 0.95)], 0.02, 0.01);
        assert!(at99.ci_high - at99.ci_low > alone.ci_high - alone.ci_low);
    }

    #[test]
    fn a_run_without_an_interval_leaves_the_pool_undetermined() {
        let none = MetricChange { ci_low: f64::NAN, ci_high: f64::NAN, enough_samples: false, ..change(0.0, 0.0, 0.0) };
        let p = pooled_change(&[(&change(0.01, -0.01, 0.03), 0.95), (&none, 0.95)], 0.02, 0.05);
        assert!(!p.enough_samples && p.direction == Direction::Undetermined);
    }
}
