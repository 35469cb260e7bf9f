//! What the gate decides from a comparison of head against base: for each
//! pre-declared primary, regression, no regression or undetermined, by where its
//! confidence interval lies against the tolerance; and the gate's outcome.
//!
//! With tolerance t and the CI [lo, hi] of the change (head − base) / base:
//! *regression* when lo > t (head slower than tolerated, at the stated
//! confidence); *no regression* when hi ≤ t (any slow-down is within the
//! tolerance, at that confidence); *undetermined* otherwise — the interval
//! straddles t, or the data cannot say (too few requests, an arm whose run was
//! not valid). A CI says nothing about what its resampling cannot see: the
//! gate's design (interleaved pairs, two instances per build) is what keeps an
//! instance's speed out of it, and `bench/gate-calibrate` measures how often it
//! is right on the real stack.

use serde::{Deserialize, Serialize};

use crate::change::MetricChange;
use crate::compare::Comparison;
use crate::series::SeriesKey;
use crate::stats::Metric;

/// The gate's outcome, in the order of precedence (a regression anywhere wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    NoRegression,
    Undetermined,
    Regression,
}

impl Outcome {
    /// The process's exit code (ARCHITECTURE.md, "Exit codes").
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::NoRegression => crate::exit::PASS,
            Outcome::Regression => crate::exit::GATE_FAILED,
            Outcome::Undetermined => crate::exit::UNDETERMINED,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Outcome::NoRegression => "no regression",
            Outcome::Regression => "REGRESSION",
            Outcome::Undetermined => "UNDETERMINED",
        }
    }
}

/// A metric of a series that decides the gate (`--primary SERIES:METRIC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Primary {
    pub series: SeriesKey,
    pub metric: Metric,
}

impl Primary {
    /// `*:p50` (all requests' median), `tag:auth:p99`, `step:list:mean`.
    pub fn parse(text: &str) -> Result<Primary, String> {
        let (series, metric) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("--primary {text:?}: expected SERIES:METRIC, e.g. \"*:p50\" or \"tag:auth:p99\""))?;
        let metric = Metric::parse(metric)
            .ok_or_else(|| format!("--primary {text:?}: unknown metric {metric:?}; one of p50, p90, p95, p99, mean"))?;
        let series: SeriesKey = series.parse().map_err(|e| format!("--primary {text:?}: {e}"))?;
        if series.is_server_side() {
            return Err(format!(
                "--primary {text:?}: a Server-Timing series cannot decide a gate (the worker's clock has whole \
                 milliseconds and stands still during computation); use a client-side series"
            ));
        }
        Ok(Primary { series, metric })
    }

    /// The default: p50 of all requests.
    pub fn all_p50() -> Primary {
        Primary { series: SeriesKey::all(), metric: Metric::P50 }
    }
}

impl std::fmt::Display for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.series, self.metric.name())
    }
}

/// One primary's decision in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub scenario: String,
    pub primary: String,
    /// Milliseconds (NaN when the series was not recorded).
    pub base_ms: f64,
    pub head_ms: f64,
    /// (head − base) / base, and its CI.
    pub change: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub outcome: Outcome,
    /// Why, in one sentence.
    pub reason: String,
}

/// A primary as both builds recorded it: its change (head = arm B) and the
/// share of each build's requests of its series that failed.
#[derive(Debug, Clone, Copy)]
pub struct Found<'c> {
    pub change: &'c MetricChange,
    pub error_rates: (f64, f64),
}

/// The primary in `c`, if both builds recorded it.
pub fn find<'c>(c: &'c Comparison, primary: &Primary) -> Option<Found<'c>> {
    let s = c.series.iter().find(|s| s.series == primary.series)?;
    Some(Found { change: s.metric(primary.metric)?, error_rates: (s.error_rate_a, s.error_rate_b) })
}

/// Decides `primary` from its change `found` at `tolerance`; `confidence` is the
/// CI's, for the words. `invalid` is why the runs cannot be judged, if they cannot.
pub fn decide(
    scenario: &str,
    primary: &Primary,
    found: Option<Found<'_>>,
    tolerance: f64,
    confidence: f64,
    invalid: Option<&str>,
) -> Decision {
    let mut d = Decision {
        scenario: scenario.to_owned(),
        primary: primary.to_string(),
        base_ms: f64::NAN,
        head_ms: f64::NAN,
        change: f64::NAN,
        ci_low: f64::NAN,
        ci_high: f64::NAN,
        outcome: Outcome::Undetermined,
        reason: String::new(),
    };
    let Some(Found { change: m, error_rates: (failed_base, failed_head) }) = found else {
        d.reason = format!("{} was not recorded by both builds: nothing to judge", primary.series);
        return d;
    };
    (d.base_ms, d.head_ms, d.change, d.ci_low, d.ci_high) = (m.a, m.b, m.change, m.ci_low, m.ci_high);
    let pct = |x: f64| format!("{:+.1} %", x * 100.0);
    let ci = format!("{} [{}, {}] at {:.1} %", pct(m.change), pct(m.ci_low), pct(m.ci_high), confidence * 100.0);
    let tol = format!("{:.1} %", tolerance * 100.0);
    (d.outcome, d.reason) = if let Some(why) = invalid {
        (Outcome::Undetermined, format!("not judged: {why}"))
    } else if primary.metric == Metric::Mean && failed_base + failed_head > 0.0 {
        // Percentiles rank failures slowest; a mean can only leave them out, so
        // a build that fails its slow requests would have the faster mean.
        let share = |x: f64| format!("{:.2} %", x * 100.0);
        (
            Outcome::Undetermined,
            format!(
                "not judged: requests failed (base {}, head {}) and a mean is of successful requests only; \
                 gate on a percentile, which ranks failures slowest",
                share(failed_base),
                share(failed_head)
            ),
        )
    } else if !(m.enough_samples && m.ci_low.is_finite() && m.ci_high.is_finite()) {
        let need = primary.metric.min_samples();
        (Outcome::Undetermined, format!("too few requests for a {} (at least {need} per build)", primary.metric.name()))
    } else if m.ci_low > tolerance {
        (Outcome::Regression, format!("head is slower by more than the tolerance of {tol}: {ci}"))
    } else if m.ci_high <= tolerance {
        (Outcome::NoRegression, format!("any slow-down is within the tolerance of {tol}: {ci}"))
    } else {
        (Outcome::Undetermined, format!("the CI straddles the tolerance of {tol}: {ci}; more traffic would decide"))
    };
    d
}

/// The gate's outcome over every decision: a regression anywhere fails it;
/// otherwise anything undetermined leaves it undetermined; no decisions at
/// all is undetermined too (nothing was judged, never a silent pass).
pub fn overall(decisions: &[Decision]) -> Outcome {
    decisions.iter().map(|d| d.outcome).max().unwrap_or(Outcome::Undetermined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Direction;

    fn change(change: f64, lo: f64, hi: f64, enough: bool) -> MetricChange {
        MetricChange {
            metric: Metric::P50,
            a: 2.0,
            b: 2.0 * (1.0 + change),
            change,
            ci_low: lo,
            ci_high: hi,
            direction: Direction::Undetermined,
            enough_samples: enough,
            at_resolution: false,
        }
    }

    fn decided(m: &MetricChange, invalid: Option<&str>) -> Decision {
        decide("s", &Primary::all_p50(), Some(Found { change: m, error_rates: (0.0, 0.0) }), 0.05, 0.95, invalid)
    }

    fn outcome(c: f64, lo: f64, hi: f64) -> Outcome {
        decided(&change(c, lo, hi, true), None).outcome
    }

    #[test]
    fn the_interval_against_the_tolerance_decides() {
        assert_eq!(outcome(0.10, 0.07, 0.13), Outcome::Regression);
        assert_eq!(outcome(0.00, -0.02, 0.02), Outcome::NoRegression);
        assert_eq!(outcome(0.06, 0.03, 0.09), Outcome::Undetermined, "straddles 5 %");
        // Faster is no regression however wide, as long as the upper end is within the tolerance.
        assert_eq!(outcome(-0.30, -0.50, 0.05), Outcome::NoRegression);
        // A point estimate beyond the tolerance is not enough.
        assert_eq!(outcome(0.08, 0.04, 0.12), Outcome::Undetermined);
    }

    #[test]
    fn too_few_requests_or_an_invalid_run_is_never_a_pass() {
        assert_eq!(decided(&change(0.0, -0.01, 0.01, false), None).outcome, Outcome::Undetermined);
        let d = decided(&change(0.0, -0.01, 0.01, true), Some("head's run was interrupted"));
        assert_eq!(d.outcome, Outcome::Undetermined);
        assert!(d.reason.contains("interrupted"), "{}", d.reason);
        let missing = decide("s", &Primary::all_p50(), None, 0.05, 0.95, None);
        assert_eq!(missing.outcome, Outcome::Undetermined);
        assert!(missing.reason.contains("not recorded"), "{}", missing.reason);
    }

    #[test]
    fn a_mean_primary_is_not_judged_when_requests_failed() {
        let mean = Primary::parse("*:mean").unwrap();
        let m = MetricChange { metric: Metric::Mean, ..change(-0.2, -0.25, -0.15, true) };
        let judged = |error_rates| decide("s", &mean, Some(Found { change: &m, error_rates }), 0.05, 0.95, None);
        assert_eq!(judged((0.0, 0.0)).outcome, Outcome::NoRegression);
        let d = judged((0.0, 0.1));
        assert_eq!(d.outcome, Outcome::Undetermined, "head failing 10 % has the faster mean: {}", d.reason);
        assert!(d.reason.contains("head 10.00 %"), "{}", d.reason);
        // A percentile ranks the failures: judged as usual.
        let p50 = Found { change: &change(-0.2, -0.25, -0.15, true), error_rates: (0.0, 0.1) };
        assert_eq!(decide("s", &Primary::all_p50(), Some(p50), 0.05, 0.95, None).outcome, Outcome::NoRegression);
    }

    #[test]
    fn a_regression_anywhere_fails_and_nothing_judged_is_undetermined() {
        let d = |o| Decision { outcome: o, ..decided(&change(0.0, 0.0, 0.0, true), None) };
        let all = [d(Outcome::NoRegression), d(Outcome::Regression), d(Outcome::Undetermined)];
        assert_eq!(overall(&all), Outcome::Regression);
        assert_eq!(overall(&[d(Outcome::NoRegression), d(Outcome::Undetermined)]), Outcome::Undetermined);
        assert_eq!(overall(&[d(Outcome::NoRegression)]), Outcome::NoRegression);
        assert_eq!(overall(&[]), Outcome::Undetermined);
    }

    #[test]
    fn primaries_parse_with_their_errors() {
        assert_eq!(Primary::parse("*:p50").unwrap(), Primary::all_p50());
        let p = Primary::parse("tag:auth:p99").unwrap();
        assert_eq!((p.series.to_string().as_str(), p.metric), ("tag:auth", Metric::P99));
        assert!(Primary::parse("p50").unwrap_err().contains("SERIES:METRIC"));
        assert!(Primary::parse("*:p42").unwrap_err().contains("unknown metric"));
    }
}
