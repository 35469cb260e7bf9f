//! The seed's claims (`scenarios/claims.toml`) and their verdicts (ARCHITECTURE.md,
//! "Compare and claims"), judged on the series changes of a comparison:
//! confirmed (the CI of the improvement lies inside the claimed range), exceeded
//! (above it), short (below it, but an improvement), refuted (no improvement, or
//! worse), inconclusive (the CI straddles an edge of the range). The verdict is
//! the pre-registered primary metric's (p50 unless the claim names another); the
//! other metrics are shown, and one that disagrees is said in the reason.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::answers::{AnswerTally, AnswersDoc};
use crate::change::SeriesComparison;
use crate::series::SeriesKey;
use crate::stats::Metric;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    #[serde(rename = "claim")]
    claims: Vec<Claim>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub name: String,
    /// The claim in the seed's words.
    pub statement: String,
    /// The series it is about: `tag:auth`, `*`, …
    pub series: String,
    /// A Server-Timing entry of that series (`bot`), for server-side claims.
    #[serde(default)]
    pub server_timing: Option<String>,
    /// The metric the verdict is the verdict of, fixed before the run.
    #[serde(default = "p50")]
    pub primary: String,
    /// Secondary metrics, judged and shown beside the primary.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// The claimed improvement, percent faster (or lower): `[25, 35]`.
    pub faster_by: [f64; 2],
    /// The cache layer the claim is about: `harness bench` judges it on the run
    /// that switches on that layer alone (against all layers off).
    #[serde(default)]
    pub layer: Option<String>,
    /// The claim is about a part of each request's time (an overhead such as
    /// the bot check), judged on whole requests: their improvement is only a
    /// lower bound of the part's, so it can refute (slower) but not size it.
    #[serde(default)]
    pub overhead: bool,
}

fn p50() -> String {
    "p50".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    Exceeded,
    Short,
    Refuted,
    Inconclusive,
    NotMeasured,
    /// The series is at the clock's resolution in an arm: no figure to judge.
    NotMeasurable,
    /// The arms answered differently in some of the series' pairs: a cache that
    /// changes answers is wrong, whatever its latency.
    WrongAnswers,
    /// An arm failed more than [`MAX_ERROR_RATE`] of the series' requests: the
    /// speed of its remaining successes is no verdict.
    Failing,
    /// The A/A control of the claim's scenario (the same arm on both sides)
    /// called a difference: the intervals are not calibrated now, no verdict.
    NotCalibrated,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Exceeded => "exceeded",
            Verdict::Short => "short",
            Verdict::Refuted => "refuted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
            Verdict::NotMeasurable => "not measurable",
            Verdict::WrongAnswers => "wrong answers",
            Verdict::Failing => "failing",
            Verdict::NotCalibrated => "not calibrated",
        }
    }

    /// What `--require-claims` accepts.
    pub fn holds(self) -> bool {
        matches!(self, Verdict::Confirmed | Verdict::Exceeded)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    pub metric: Metric,
    /// Percent faster (negative: slower), with its 95 % CI.
    #[serde(with = "crate::nullable")]
    pub improvement: f64,
    #[serde(with = "crate::nullable")]
    pub ci_low: f64,
    #[serde(with = "crate::nullable")]
    pub ci_high: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimVerdict {
    pub name: String,
    pub statement: String,
    pub series: String,
    pub verdict: Verdict,
    pub reason: String,
    pub metrics: Vec<MetricVerdict>,
}

/// Above this share of failed requests (transport errors, failed checks, dropped
/// iterations) in either arm, a claim is not judged on speed: the default
/// `error_rate < 1%` threshold of every scenario.
pub const MAX_ERROR_RATE: f64 = 0.01;

/// Why a series' speed is no verdict, if it is not: its arms answered some of
/// its pairs differently (`tally`, its pairs' answers), or an arm failed more
/// than [`MAX_ERROR_RATE`] of its requests. The claims and the comparison's
/// plain words say it alike.
pub fn held_back(s: &SeriesComparison, tally: Option<&AnswerTally>, name: &str) -> Option<(Verdict, String)> {
    if let Some(t) = tally.filter(|t| t.mismatched > 0) {
        let (rate, lo, hi) = t.mismatch_rate()?;
        return Some((
            Verdict::WrongAnswers,
            format!(
                "wrong answers in {:.1} % of pairs (95 % CI {:.1}–{:.1} %, {} of {} compared pairs of {name} answered \
                 differently): a cache that changes answers is not judged on its speed",
                rate * 100.0,
                lo * 100.0,
                hi * 100.0,
                t.mismatched,
                t.compared
            ),
        ));
    }
    let (arm, rate) = if s.error_rate_b >= s.error_rate_a { ("B", s.error_rate_b) } else { ("A", s.error_rate_a) };
    (rate > MAX_ERROR_RATE).then(|| {
        (
            Verdict::Failing,
            format!(
                "arm {arm} failed {:.1} % of its requests in {name} (transport errors, failed checks, dropped; more \
                 than {:.0} %): the speed of its remaining successes is no verdict",
                rate * 100.0,
                MAX_ERROR_RATE * 100.0
            ),
        )
    })
}

/// Recorded values at or under this many milliseconds are the 1 µs floor: zero.
const FLOOR_MS: f64 = 0.0011;

/// `improvement` and its CI `lo`–`hi` in percent faster; `noise` in percent.
/// "12.0 % faster" / "3.1 % slower" for an improvement in percent.
pub(crate) fn speed(improvement: f64) -> String {
    if improvement < 0.0 {
        format!("{:.1} % slower", -improvement)
    } else {
        format!("{improvement:.1} % faster")
    }
}

/// The CI of an improvement in words that keep their sign's meaning:
/// "7.5–12.2 % faster", "0.5–9.6 % slower", "from 4.1 % slower to 0.8 % faster".
pub(crate) fn ci_words(lo: f64, hi: f64, level: &str) -> String {
    if lo >= 0.0 {
        format!("{level} CI {lo:.1}–{hi:.1} % faster")
    } else if hi <= 0.0 {
        format!("{level} CI {:.1}–{:.1} % slower", -hi, -lo)
    } else {
        format!("{level} CI from {} to {}", speed(lo), speed(hi))
    }
}

#[cfg(test)]
fn judge_metric(improvement: f64, lo: f64, hi: f64, range: [f64; 2], noise: f64) -> (Verdict, String) {
    judge_metric_at(improvement, lo, hi, range, noise, "95 %")
}

/// The verdict of an overhead claim (`Claim::overhead`) from its whole
/// requests' improvement `imp` [`lo`, `hi`] (percent faster): with the rest of
/// each request unchanged, a part that fell by x % makes the whole fall by
/// share × x %, so the whole's CI bounds the part's from below only. Slower
/// (beyond the noise band) refutes it; anything else is a lower bound.
fn judge_overhead(imp: f64, lo: f64, hi: f64, range: [f64; 2], noise: f64, level: &str) -> (Verdict, String) {
    let [low, high] = range;
    let (now, ci) = (speed(imp), ci_words(lo, hi, level));
    if hi < -noise {
        return (Verdict::Refuted, format!("the whole request got slower: {now}, {ci}, claimed {low}–{high} % lower"));
    }
    let bound = if lo >= low {
        format!("the overhead fell by at least {low} %, but whether within or beyond {high} % cannot be told")
    } else {
        "a lower bound of the overhead's fall only".to_owned()
    };
    (
        Verdict::Inconclusive,
        format!(
            "whole requests {now}, {ci}: {bound}; the overhead alone was not measured (it needs an arm without \
             the work it is the overhead of)"
        ),
    )
}

/// The verdict of one metric whose CI has confidence `level` ("95 %").
pub(crate) fn judge_metric_at(
    improvement: f64,
    lo: f64,
    hi: f64,
    range: [f64; 2],
    noise: f64,
    level: &str,
) -> (Verdict, String) {
    let [low, high] = range;
    let (now, ci) = (speed(improvement), ci_words(lo, hi, level));
    if lo >= low && hi <= high {
        (Verdict::Confirmed, format!("{now}, {ci}, inside the claimed {low}–{high} %"))
    } else if lo > high {
        (Verdict::Exceeded, format!("{now}, {ci}, above the claimed {low}–{high} %"))
    } else if hi < low && lo > noise {
        // The whole CI is below the range and clear of the noise band: an
        // improvement, smaller than claimed.
        (Verdict::Short, format!("{now}, {ci}, below the claimed {low}–{high} % but beyond the ±{noise} % noise band"))
    } else if hi < low {
        // Below the range, and the CI does not show an improvement beyond the
        // noise band: the interval decides the words, not the point estimate.
        let what = if hi < -noise {
            format!("it got slower: {now}, {ci}")
        } else if hi <= noise {
            format!("no improvement beyond the ±{noise} % noise band: {now}, {ci}")
        } else {
            format!("no improvement shown: {now}, {ci}, which does not exclude none beyond the ±{noise} % noise band")
        };
        (Verdict::Refuted, format!("{what}, claimed {low}–{high} % faster"))
    } else {
        let edge = if lo < low { low } else { high };
        (
            Verdict::Inconclusive,
            format!("{now} but the {ci} straddles the claimed range's edge at {edge} %: more samples needed"),
        )
    }
}

impl Claim {
    /// The series the claim is judged on; `None` when `series` is no series name
    /// (`load` refuses such a file).
    pub fn key(&self) -> Option<SeriesKey> {
        let base = SeriesKey::parse(&self.series)?;
        Some(match &self.server_timing {
            Some(entry) => base.server_timing(entry),
            None => base,
        })
    }

    fn key_text(&self) -> String {
        self.key().map_or_else(|| self.series.clone(), |k| k.to_string())
    }

    /// The primary metric first, then the secondaries (without repeating it).
    pub(crate) fn judged_metrics(&self) -> Vec<Metric> {
        let mut out: Vec<Metric> = Metric::parse(&self.primary).into_iter().collect();
        for m in self.metrics.iter().filter_map(|m| Metric::parse(m)) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// The verdict on the compared series: the primary metric's, unless the
    /// arms' answers differed in the series' pairs or an arm failed too often.
    pub fn judge(&self, compared: &[SeriesComparison], answers: Option<&AnswersDoc>, noise: f64) -> ClaimVerdict {
        let mut verdict = self.judge_speed(compared, noise);
        if verdict.verdict == Verdict::NotMeasured {
            return verdict;
        }
        let base = SeriesKey::parse(&self.series).map_or_else(|| self.series.clone(), |k| k.to_string());
        let tally = answers.and_then(|a| a.series.get(&base));
        let series = compared.iter().find(|s| Some(&s.series) == self.key().as_ref());
        let held = series.and_then(|s| held_back(s, tally, &base));
        if let Some((held, why)) = held {
            verdict.reason = format!("{why}; latency alone said {}: {}", verdict.verdict.as_str(), verdict.reason);
            verdict.verdict = held;
        }
        verdict
    }

    /// The verdict of the latencies alone: the primary metric's.
    fn judge_speed(&self, compared: &[SeriesComparison], noise: f64) -> ClaimVerdict {
        let key = self.key_text();
        let base = |verdict, reason: String, metrics| ClaimVerdict {
            name: self.name.clone(),
            statement: self.statement.clone(),
            series: key.clone(),
            verdict,
            reason,
            metrics,
        };
        let Some(s) = compared.iter().find(|s| Some(&s.series) == self.key().as_ref()) else {
            return base(Verdict::NotMeasured, format!("{key} is not in both results"), Vec::new());
        };
        let mut metrics = Vec::new();
        let mut reasons = Vec::new();
        for metric in self.judged_metrics() {
            let Some(m) = s.metric(metric) else { continue };
            let (imp, lo, hi) = (-m.change * 100.0, -m.ci_high * 100.0, -m.ci_low * 100.0);
            let (verdict, reason) = if m.a <= FLOOR_MS || m.b <= FLOOR_MS {
                // 1 µs is the recording floor: an arm there measured zero (Workers'
                // clock does not advance during pure computation), and a change
                // relative to zero is no figure: no verdict either way.
                (
                    Verdict::NotMeasurable,
                    format!(
                        "A {:.3} ms, B {:.3} ms: an arm is at the clock's resolution (CPU-only work does not \
                         advance a Worker's clock); judge it client-side",
                        m.a, m.b
                    ),
                )
            } else if m.metric == Metric::Mean && (s.error_rate_a > 0.0 || s.error_rate_b > 0.0) {
                (
                    Verdict::Inconclusive,
                    "the mean is of successful responses, and requests failed: an arm that fails its slow \
                     requests would look faster by it (the percentiles rank failures slowest)"
                        .to_owned(),
                )
            } else if !m.enough_samples {
                (
                    Verdict::Inconclusive,
                    format!("fewer than {} requests per arm for {}", m.metric.min_samples(), m.metric.name()),
                )
            } else {
                let level = crate::change::level_words(s.confidence);
                let judge = if self.overhead { judge_overhead } else { judge_metric_at };
                let (v, why) = judge(imp, lo, hi, self.faster_by, noise * 100.0, &level);
                let why = if m.at_resolution {
                    format!("{why} (the values are at their clock's resolution: the CI was widened to the neighbouring values)")
                } else {
                    why
                };
                (v, why)
            };
            reasons.push(format!("{}: {reason}", m.metric.name()));
            metrics.push(MetricVerdict { metric: m.metric, improvement: imp, ci_low: lo, ci_high: hi, verdict });
        }
        let Some(primary) = metrics.first().filter(|m| Some(m.metric) == Metric::parse(&self.primary)) else {
            return base(
                Verdict::NotMeasured,
                format!("the primary metric {} was not compared", self.primary),
                metrics,
            );
        };
        let verdict = primary.verdict;
        let mut reason = reasons[0].clone();
        let (agree, disagree): (Vec<&MetricVerdict>, Vec<&MetricVerdict>) =
            metrics[1..].iter().partition(|m| m.verdict == verdict);
        if !agree.is_empty() {
            let names: Vec<&str> = agree.iter().map(|m| m.metric.name()).collect();
            reason.push_str(&format!(
                " ({} {} too)",
                names.join(", "),
                if agree.len() == 1 { "agrees" } else { "agree" }
            ));
        }
        for m in disagree {
            let i = metrics.iter().position(|x| x.metric == m.metric).expect("from metrics");
            reason.push_str(&format!(
                "; secondary {} disagrees, {}: {}",
                m.metric.name(),
                m.verdict.as_str(),
                reasons[i]
            ));
        }
        base(verdict, reason, metrics)
    }
}

/// A plain-words account of a claims file (`harness validate`).
pub fn explain(path: &Path, claims: &[Claim]) -> String {
    use std::fmt::Write;
    let mut out = format!("claims {} ({} claims)\n", path.display(), claims.len());
    for c in claims {
        let on = match &c.server_timing {
            Some(entry) => format!("server-side `{entry}` timing of {}", c.series),
            None => c.series.clone(),
        };
        let _ = writeln!(
            out,
            "  - {}: {:?} — judged on {on}{}, primary metric {} (also shown: {}), claimed {}–{} % faster (B against A){}",
            c.name,
            c.statement,
            c.layer.as_ref().map(|l| format!(" in the `{l}` layer run")).unwrap_or_default(),
            c.primary,
            if c.metrics.is_empty() { "none".to_owned() } else { c.metrics.join(", ") },
            c.faster_by[0],
            c.faster_by[1],
            if c.overhead {
                "; an overhead: judged on its own fall where the run has an arm without the work (`harness bench`'s \
                 bot layer run), else bounded from below by whole requests (refuted when slower, never confirmed)"
            } else {
                ""
            }
        );
    }
    out
}

/// Every claim's verdict on the compared series and the pairs' answers.
pub fn judge_all(
    claims: &[Claim],
    compared: &[SeriesComparison],
    answers: Option<&AnswersDoc>,
    noise: f64,
) -> Vec<ClaimVerdict> {
    claims.iter().map(|c| c.judge(compared, answers, noise)).collect()
}

pub fn load(path: &Path) -> Result<Vec<Claim>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(path, &text)
}

/// Parses the text of a claims file; errors name `path` (and line:col where the
/// TOML is at fault).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Claim>, String> {
    let file: ClaimsFile = toml::from_str(text).map_err(|e| crate::scenario::toml_error(path, text, &e))?;
    for c in &file.claims {
        if let Err(e) = c.series.parse::<SeriesKey>() {
            return Err(format!("{}: claim {:?}: series {e}", path.display(), c.name));
        }
        if let Some(bad) = std::iter::once(&c.primary).chain(&c.metrics).find(|m| Metric::parse(m).is_none()) {
            return Err(format!(
                "{}: claim {:?}: unknown metric {bad:?}; expected p50, p90, p95, p99 or mean",
                path.display(),
                c.name
            ));
        }
        if c.faster_by[0].partial_cmp(&c.faster_by[1]) != Some(std::cmp::Ordering::Less) {
            return Err(format!(
                "{}: claim {:?}: faster_by must be [low, high] with low < high",
                path.display(),
                c.name
            ));
        }
    }
    Ok(file.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_rules() {
        let r = [25.0, 35.0];
        assert_eq!(judge_metric(30.0, 27.0, 33.0, r, 2.0).0, Verdict::Confirmed);
        assert_eq!(judge_metric(45.0, 40.0, 50.0, r, 2.0).0, Verdict::Exceeded);
        assert_eq!(judge_metric(10.0, 7.0, 13.0, r, 2.0).0, Verdict::Short);
        assert_eq!(judge_metric(0.5, -1.0, 1.5, r, 2.0).0, Verdict::Refuted);
        assert_eq!(judge_metric(-20.0, -25.0, -15.0, r, 2.0).0, Verdict::Refuted);
        assert!(judge_metric(-20.0, -25.0, -15.0, r, 2.0).1.contains("it got slower"));
        // Slower at the point, but the CI reaches into faster: refuted, without
        // saying it got slower.
        let (v, why) = judge_metric(-17.9, -46.1, 9.0, [50.0, 60.0], 2.0);
        assert_eq!(v, Verdict::Refuted);
        assert!(why.contains("no improvement shown") && !why.contains("got slower"), "{why}");
        // The interval decides, not the point: 8.7 % faster at the point but the CI
        // reaches below the noise band — no improvement shown, so refuted…
        let (v, why) = judge_metric(8.7, -0.3, 16.8, r, 2.0);
        assert_eq!(v, Verdict::Refuted);
        assert!(why.contains("does not exclude none"), "{why}");
        // …while a CI from 2.5 to 24 % faster is short (an improvement, smaller),
        // even with the point inside the noise band's reach.
        assert_eq!(judge_metric(3.0, 2.5, 24.0, r, 2.0).0, Verdict::Short);
        assert_eq!(judge_metric(1.0, -3.0, 5.0, r, 2.0).0, Verdict::Refuted);
        // A CI reaching 24 % faster is not "no improvement": it is "not shown".
        let (v, why) = judge_metric(11.0, -2.0, 24.0, r, 2.0);
        assert_eq!(v, Verdict::Refuted);
        assert!(why.contains("no improvement shown") && !why.contains("beyond the ±2 % noise band:"), "{why}");
        // Straddling an edge of the range: it may hold.
        assert_eq!(judge_metric(24.0, 20.0, 28.0, r, 2.0).0, Verdict::Inconclusive);
        assert!(judge_metric(24.0, 20.0, 28.0, r, 2.0).1.contains("edge at 25"));
        assert_eq!(judge_metric(36.0, 31.0, 41.0, r, 2.0).0, Verdict::Inconclusive);
    }

    fn compared(series: SeriesKey, changes: &[(Metric, f64, f64, f64, f64)]) -> SeriesComparison {
        SeriesComparison {
            series,
            count_a: 5000,
            count_b: 5000,
            error_rate_a: 0.0,
            error_rate_b: 0.0,
            metrics: changes
                .iter()
                .map(|&(metric, a, b, lo, hi)| {
                    let change = (b - a) / a;
                    crate::change::MetricChange {
                        metric,
                        a,
                        b,
                        change,
                        ci_low: lo,
                        ci_high: hi,
                        direction: crate::change::Direction::of(change, lo, hi, 0.02),
                        enough_samples: true,
                        at_resolution: false,
                    }
                })
                .collect(),
            mann_whitney: crate::stats::MannWhitney { u_a: 0.0, u_b: 0.0, z: 0.0, p_value: 0.0 },
            p_value: 0.0,
            fdr_significant: false,
            resampling: crate::change::Resampling::Requests,
            confidence: 0.95,
            summary: String::new(),
        }
    }

    fn claim(series: &str, server_timing: Option<&str>, metrics: &[&str], range: [f64; 2]) -> Claim {
        Claim {
            name: "c".into(),
            statement: "s".into(),
            series: series.into(),
            server_timing: server_timing.map(str::to_owned),
            primary: "p50".into(),
            metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
            faster_by: range,
            layer: None,
            overhead: false,
        }
    }

    #[test]
    fn an_overhead_judged_on_whole_requests_is_only_bounded() {
        let judged = |imp: f64, lo: f64, hi: f64| {
            let c = compared(
                SeriesKey::all(),
                &[(Metric::P50, 10.0, 10.0 * (1.0 - imp / 100.0), -hi / 100.0, -lo / 100.0)],
            );
            let claim = Claim { overhead: true, ..claim("*", None, &[], [50.0, 60.0]) };
            claim.judge(&[c], None, 0.02)
        };
        // 55 % faster as a whole: the overhead fell by at least 50 %, not "confirmed".
        let v = judged(55.0, 52.0, 58.0);
        assert_eq!(v.verdict, Verdict::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("at least 50 %"), "{}", v.reason);
        // 20 % faster as a whole is no "short": the part may have fallen by 55 %.
        let v = judged(20.0, 17.0, 23.0);
        assert_eq!(v.verdict, Verdict::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("lower bound"), "{}", v.reason);
        // Slower as a whole: the part got slower.
        assert_eq!(judged(-20.0, -25.0, -15.0).verdict, Verdict::Refuted);
        // The same numbers on a claim about whole requests.
        let whole = claim("*", None, &[], [50.0, 60.0]);
        let c = compared(SeriesKey::all(), &[(Metric::P50, 10.0, 8.0, -0.23, -0.17)]);
        assert_eq!(whole.judge(&[c], None, 0.02).verdict, Verdict::Short);
    }

    #[test]
    fn a_series_at_the_clock_floor_is_not_measurable() {
        let claim = claim("tag:auth", Some("bot"), &["mean"], [50.0, 60.0]);
        let key = SeriesKey::tag("auth").server_timing("bot");
        let floor = compared(key.clone(), &[(Metric::P50, 0.001, 1.0, 999.0, 999.0)]);
        let v = claim.judge(&[floor], None, 0.02);
        assert_eq!(v.verdict, Verdict::NotMeasurable, "{}", v.reason);
        assert!(v.reason.contains("clock's resolution") && v.reason.contains("B 1.000 ms"), "{}", v.reason);
        assert!(!v.reason.contains("99900"), "no percentage from zero: {}", v.reason);
        let both = compared(key, &[(Metric::P50, 0.001, 0.001, 0.0, 0.0)]);
        assert_eq!(claim.judge(&[both], None, 0.02).verdict, Verdict::NotMeasurable);
    }

    #[test]
    fn the_primary_metric_decides_and_a_disagreeing_secondary_is_said() {
        let key = SeriesKey::tag("auth");
        // p50 30 % faster (CI 27–33): confirmed; mean 10 % faster: short.
        let c =
            compared(key.clone(), &[(Metric::P50, 10.0, 7.0, -0.33, -0.27), (Metric::Mean, 10.0, 9.0, -0.13, -0.07)]);
        let v = claim("tag:auth", None, &["mean"], [25.0, 35.0]).judge(std::slice::from_ref(&c), None, 0.02);
        assert_eq!(v.verdict, Verdict::Confirmed, "{}", v.reason);
        assert!(v.reason.contains("secondary mean disagrees, short"), "{}", v.reason);
        assert_eq!(v.metrics.iter().map(|m| m.metric).collect::<Vec<_>>(), [Metric::P50, Metric::Mean]);
        // Both refute: one verdict, said once, the secondary agreeing.
        let c = compared(key, &[(Metric::P50, 10.0, 10.1, -0.01, 0.03), (Metric::Mean, 10.0, 10.0, -0.01, 0.01)]);
        let v = claim("tag:auth", None, &["mean"], [25.0, 35.0]).judge(&[c], None, 0.02);
        assert_eq!(v.verdict, Verdict::Refuted, "{}", v.reason);
        assert!(v.reason.contains("(mean agrees too)"), "{}", v.reason);
    }

    #[test]
    fn a_fast_cache_that_changes_answers_or_fails_is_not_judged_on_speed() {
        use crate::answers::{AnswerTally, AnswersDoc};
        let key = SeriesKey::tag("model-list");
        // 30 % faster at p50: confirmed on latency alone.
        let c = compared(key.clone(), &[(Metric::P50, 10.0, 7.0, -0.33, -0.27)]);
        let claim = claim("tag:model-list", None, &[], [25.0, 35.0]);
        let mut answers = AnswersDoc::default();
        answers.series.insert(key.to_string(), AnswerTally { compared: 300, ..Default::default() });
        assert_eq!(claim.judge(std::slice::from_ref(&c), Some(&answers), 0.02).verdict, Verdict::Confirmed);
        answers.series.insert(key.to_string(), AnswerTally { compared: 300, mismatched: 219, ..Default::default() });
        let v = claim.judge(std::slice::from_ref(&c), Some(&answers), 0.02);
        assert_eq!(v.verdict, Verdict::WrongAnswers, "{}", v.reason);
        assert!(v.reason.starts_with("wrong answers in 73.0 % of pairs"), "{}", v.reason);
        assert!(v.reason.contains("latency alone said confirmed"), "{}", v.reason);
        assert!(!v.verdict.holds());
        // An arm that fails its slow path looks faster on its successes: not judged.
        let failing = SeriesComparison { error_rate_b: 0.6, ..c };
        let v = claim.judge(&[failing], None, 0.02);
        assert_eq!(v.verdict, Verdict::Failing, "{}", v.reason);
        assert!(v.reason.starts_with("arm B failed 60.0 %"), "{}", v.reason);
    }
}
