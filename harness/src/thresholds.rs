//! Thresholds in k6 syntax (ARCHITECTURE.md, "Exit codes"): `p(95) < 40ms`, `avg`, `med`, `max`,
//! `min`, `error_rate < 0.1%`, `rps > 100`. Latency thresholds judge the
//! coordinated-omission-corrected latency.

use serde::{Deserialize, Serialize};

/// What a threshold aggregates (k6's aggregation methods).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Percentile(f64),
    Avg,
    Med,
    Min,
    Max,
    ErrorRate,
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

impl Op {
    /// Every comparison with its text, the two-character ones first (so `<=` is
    /// not read as `<`).
    pub const TEXTS: [(&'static str, Op); 5] =
        [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("<", Op::Lt), (">", Op::Gt)];

    /// Whether `actual` compares with `limit` so.
    pub fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
            Op::Eq => (actual - limit).abs() < 1e-9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// A step name, a tag, or `*` for every request.
    pub series: String,
    pub source: String,
    pub metric: Aggregate,
    pub op: Op,
    /// Milliseconds for latency, a fraction for `error_rate`, per second for `rps`.
    pub limit: f64,
}

/// What a threshold is judged on: what a run observed of its series.
pub struct Observed<'a> {
    pub corrected: &'a hdrhistogram::Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
}

/// A threshold judged: pass or fail, on what actual value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub series: String,
    pub threshold: String,
    pub actual: f64,
    pub unit: String,
    pub pass: bool,
}

/// The error-rate limit of every run whose scenario sets none for `*`: a run in
/// which most requests failed must not pass a CI gate silently. A scenario
/// changes it with its own `"*" = ["error_rate < X%"]` (`error_rate <= 100%`
/// switches it off).
pub const DEFAULT_ERROR_RATE_LIMIT: f64 = 0.01;
/// How a default threshold's source reads in summaries and reports.
pub const DEFAULT_MARK: &str = " (default; set [thresholds] \"*\" = [\"error_rate < X%\"] to change)";

fn parse_latency(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e3)
    } else {
        (t, 1.0) // k6: a bare number is milliseconds
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{t:?} is not a latency; expected e.g. 40ms, 1.5s, 800us"))?;
    if v < 0.0 {
        return Err(format!("latency {t:?} is negative"));
    }
    Ok(v * scale)
}

impl Threshold {
    pub fn parse(series: &str, text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let (pos, len, op) = Op::TEXTS
            .iter()
            .filter_map(|(s, op)| t.find(s).map(|p| (p, s.len(), *op)))
            .min_by_key(|(p, len, _)| (*p, usize::MAX - len))
            .ok_or_else(|| format!("threshold {t:?} has no comparison; expected e.g. \"p(95) < 40ms\""))?;
        let (lhs, rhs) = (t[..pos].trim(), t[pos + len..].trim());
        let metric = match lhs {
            "avg" => Aggregate::Avg,
            "med" => Aggregate::Med,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "error_rate" => Aggregate::ErrorRate,
            "rps" => Aggregate::Rps,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let q: f64 = p[2..p.len() - 1].trim().parse().map_err(|_| format!("bad percentile in {p:?}"))?;
                if !(0.0..=100.0).contains(&q) {
                    return Err(format!("percentile {q} is outside 0–100"));
                }
                Aggregate::Percentile(q)
            }
            other => {
                return Err(format!(
                    "unknown threshold metric {other:?}; expected p(N), avg, med, min, max, error_rate or rps"
                ))
            }
        };
        let limit = match metric {
            Aggregate::ErrorRate => match rhs.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0).map_err(|_| format!("bad percentage {rhs:?}"))?,
                None => {
                    rhs.parse::<f64>().map_err(|_| format!("bad error rate {rhs:?}; expected e.g. 0.1% or 0.001"))?
                }
            },
            Aggregate::Rps => {
                rhs.parse::<f64>().map_err(|_| format!("bad rate {rhs:?}; expected requests per second"))?
            }
            _ => parse_latency(rhs)?,
        };
        Ok(Threshold { series: series.to_owned(), source: t.to_owned(), metric, op, limit })
    }

    /// `error_rate < 1%` on every request, marked as the default.
    pub fn default_error_rate() -> Threshold {
        Threshold {
            series: crate::series::ALL_TEXT.to_owned(),
            source: format!("error_rate < {}%{DEFAULT_MARK}", DEFAULT_ERROR_RATE_LIMIT * 100.0),
            metric: Aggregate::ErrorRate,
            op: Op::Lt,
            limit: DEFAULT_ERROR_RATE_LIMIT,
        }
    }

    /// The threshold a verdict judged, from its source text: a result carries its
    /// thresholds this way, so merged shards are judged as the run would have been.
    pub fn from_verdict(v: &Outcome) -> Result<Threshold, String> {
        if v.threshold.ends_with(DEFAULT_MARK) {
            return Ok(Threshold { series: v.series.clone(), ..Threshold::default_error_rate() });
        }
        Threshold::parse(&v.series, &v.threshold)
    }

    pub fn evaluate(&self, f: &Observed) -> Outcome {
        let ms = |us: u64| us as f64 / 1000.0;
        let h = f.corrected;
        let (actual, unit) = match self.metric {
            Aggregate::Percentile(q) => (ms(h.value_at_quantile(q / 100.0)), "ms"),
            Aggregate::Avg => (h.mean() / 1000.0, "ms"),
            Aggregate::Med => (ms(h.value_at_quantile(0.5)), "ms"),
            Aggregate::Min => (ms(h.min()), "ms"),
            Aggregate::Max => (ms(h.max()), "ms"),
            Aggregate::ErrorRate => (if f.requests == 0 { 0.0 } else { f.errors as f64 / f.requests as f64 }, "ratio"),
            Aggregate::Rps => (if f.seconds > 0.0 { f.requests as f64 / f.seconds } else { 0.0 }, "req/s"),
        };
        // No requests: a latency or rate threshold cannot be met.
        let pass = (f.requests > 0 || self.metric == Aggregate::ErrorRate) && self.op.holds(actual, self.limit);
        Outcome { series: self.series.clone(), threshold: self.source.clone(), actual, unit: unit.to_owned(), pass }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_forms() {
        let t = Threshold::parse("x", "p(95) < 40ms").unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Aggregate::Percentile(95.0), Op::Lt, 40.0));
        assert_eq!(Threshold::parse("x", "p(99.9)<=1.5s").unwrap().limit, 1500.0);
        assert_eq!(Threshold::parse("x", "avg < 800us").unwrap().limit, 0.8);
        assert_eq!(Threshold::parse("x", "med < 12").unwrap().limit, 12.0);
        assert!((Threshold::parse("x", "error_rate < 0.1%").unwrap().limit - 0.001).abs() < 1e-12);
        assert_eq!(Threshold::parse("x", "rps >= 100").unwrap().op, Op::Ge);
        assert!(Threshold::parse("x", "p95 < 4ms").unwrap_err().contains("unknown threshold metric"));
        assert!(Threshold::parse("x", "p(95) 4ms").unwrap_err().contains("comparison"));
        assert!(Threshold::parse("x", "p(95) < fast").is_err());
        assert!(Threshold::parse("x", "p(101) < 1ms").is_err());
    }

    #[test]
    fn evaluates() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let f = Observed { corrected: &h, requests: 100, errors: 1, seconds: 10.0 };
        let check = |s: &str| Threshold::parse("x", s).unwrap().evaluate(&f);
        assert!(check("p(95) < 96ms").pass);
        assert!(!check("p(95) < 94ms").pass);
        // HDR reports the top of the value's bucket: 100 ms reads as 100.03 ms.
        assert!(check("max <= 100.1ms").pass);
        assert!(!check("max < 99.9ms").pass);
        assert!(check("error_rate <= 1%").pass);
        assert!(!check("error_rate < 1%").pass);
        assert!(check("rps == 10").pass);
        let v = check("avg < 40ms");
        assert!(!v.pass && (v.actual - 50.5).abs() < 0.1, "{v:?}");
    }
}
