//! An overhead claim (`Claim::overhead`, such as the bot check's "overhead
//! 50–60 % lower") judged on its overhead itself: three arms of one interleaved
//! run — without the work, with it uncached, with it cached — give the
//! overhead uncached and cached and its fall (`stats::overhead_fall`), where the
//! two-arm change of whole requests could only bound it from below.
//!
//! What it cannot say: the arm without the work must answer as the others do
//! on the claim's series (a skipped bot check takes every caller as no bot, so
//! the claim's series must hold only callers that are none); its failures on
//! that series make the verdict "failing", as an A/B's would.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::change::{level_words, CompareOptions};
use crate::claims::{judge_metric_at, Claim, ClaimVerdict, MetricVerdict, Verdict, MAX_ERROR_RATE};
use crate::result::ResultDoc;
use crate::stats::{overhead_fall, OverheadFall};

/// The arms of an overhead's run, as result documents.
pub struct OverheadArms<'a> {
    pub without: &'a ResultDoc,
    pub uncached: &'a ResultDoc,
    pub cached: &'a ResultDoc,
}

/// `claim` judged on its overhead, given its two-arm verdict (uncached against
/// cached) for what the latency cannot decide: wrong answers, failures and an
/// uncalibrated control keep their verdict, the latency's words follow.
pub fn judge(claim: &Claim, arms: &OverheadArms<'_>, two_arm: &ClaimVerdict, opts: &CompareOptions) -> ClaimVerdict {
    if matches!(
        two_arm.verdict,
        Verdict::WrongAnswers | Verdict::Failing | Verdict::NotCalibrated | Verdict::NotMeasured
    ) {
        return two_arm.clone();
    }
    let Some(key) = claim.key() else { return two_arm.clone() };
    let series = [arms.without, arms.uncached, arms.cached].map(|d| d.series_of(&key));
    let [Some(without), Some(uncached), Some(cached)] = series else { return two_arm.clone() };
    let (Some(bn), Some(bu), Some(bc)) = (&without.blocks, &uncached.blocks, &cached.blocks) else {
        return two_arm.clone();
    };
    let rate = if without.requests > 0 { without.errors as f64 / without.requests as f64 } else { 1.0 };
    if rate > MAX_ERROR_RATE {
        return ClaimVerdict {
            verdict: Verdict::Failing,
            reason: format!(
                "the arm without the work failed {:.1} % of {key}'s requests (more than {:.0} %): its speed is no \
                 baseline for the overhead",
                rate * 100.0,
                MAX_ERROR_RATE * 100.0
            ),
            metrics: Vec::new(),
            ..two_arm.clone()
        };
    }
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let blocks = [&bn.to_blocks(), &bu.to_blocks(), &bc.to_blocks()];
    let falls = overhead_fall(blocks, &claim.judged_metrics(), opts.resamples_needed(), opts.alpha, &mut rng);
    let level = level_words(1.0 - opts.alpha);
    let judged: Vec<(MetricVerdict, String)> =
        falls.iter().map(|f| judge_fall(f, claim.faster_by, opts.noise * 100.0, &level)).collect();
    let Some((primary, words)) = judged.first() else { return two_arm.clone() };
    let mut reason = format!("{}: {words}", primary.metric.name());
    for (m, w) in &judged[1..] {
        let agreement = if m.verdict == primary.verdict { "agrees" } else { "disagrees" };
        reason.push_str(&format!("; secondary {} {agreement}, {}: {w}", m.metric.name(), m.verdict.as_str()));
    }
    reason.push_str(&format!(
        " (the overhead measured directly: an arm without the work interleaved with both; whole requests alone \
         said {}: {})",
        two_arm.verdict.as_str(),
        two_arm.reason
    ));
    ClaimVerdict {
        verdict: primary.verdict,
        reason,
        metrics: judged.into_iter().map(|(m, _)| m).collect(),
        ..two_arm.clone()
    }
}

/// One metric's verdict on the overhead's fall, and its words.
fn judge_fall(f: &OverheadFall, range: [f64; 2], noise: f64, level: &str) -> (MetricVerdict, String) {
    let over = &f.uncached_overhead;
    let costs = format!(
        "the work costs {:.3} ms uncached ({level} CI {:.3} to {:.3}) and {:.3} ms cached, over {:.3} ms without it",
        over.point,
        over.low,
        over.high,
        f.cached_ms - f.none_ms,
        f.none_ms
    );
    let Some(fall) = f.fall else {
        let verdict = MetricVerdict {
            metric: f.metric,
            improvement: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            verdict: Verdict::NotMeasurable,
        };
        return (verdict, format!("{costs}: its uncached cost is not resolved from zero, so no fall can be said"));
    };
    let (imp, lo, hi) = (fall.point * 100.0, fall.low * 100.0, fall.high * 100.0);
    let (verdict, words) = judge_metric_at(imp, lo, hi, range, noise, level);
    // judge_metric_at speaks of speed; an overhead is lower or higher.
    let words = words.replace("faster", "lower").replace("slower", "higher");
    let metric = MetricVerdict { metric: f.metric, improvement: imp, ci_low: lo, ci_high: hi, verdict };
    (metric, format!("{costs}: the overhead {words}"))
}
