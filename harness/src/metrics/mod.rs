//! A run's figures in the OpenMetrics text format (Prometheus reads it): request
//! and error counters, response classes and cache outcomes, and the corrected
//! latency as a histogram, labelled by scenario, arm and series (`series.rs`
//! names). Made from a finished result (`harness report` writes `metrics.txt`) or
//! live from the recorders while a run goes on (`live.rs`, `--metrics-listen`).
//!
//! What the numbers are: counts are exact. Bucket counts come from the HDR
//! histogram, so a value within its precision (3 significant digits) of a bucket
//! bound may fall on either side of it; `_sum` is the histogram's mean times its
//! count, exact to the same precision.

pub mod live;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::recorder::SeriesStats;
use crate::result::{ResultDoc, RunFigures, SeriesDoc};

/// Upper bounds of the latency buckets, in seconds (`+Inf` is added).
pub const BOUNDS_SECONDS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The media type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One series of one arm: what it counted and its latency buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesFigures {
    pub requests: u64,
    pub errors: u64,
    pub status: BTreeMap<String, u64>,
    pub cache: crate::recorder::CacheOutcomes,
    /// Values at or below each bound of [`BOUNDS_SECONDS`] (cumulative).
    pub buckets: Vec<u64>,
    /// Values in the histogram (the `+Inf` bucket).
    pub count: u64,
    pub sum_seconds: f64,
}

impl SeriesFigures {
    fn of_histogram(h: &Histogram<u64>) -> SeriesFigures {
        let mut buckets = vec![0u64; BOUNDS_SECONDS.len()];
        for v in h.iter_recorded() {
            let seconds = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
            let first = BOUNDS_SECONDS.iter().position(|b| seconds <= *b).unwrap_or(BOUNDS_SECONDS.len());
            for b in &mut buckets[first..] {
                *b += v.count_at_value();
            }
        }
        SeriesFigures { buckets, count: h.len(), sum_seconds: h.mean() * h.len() as f64 / 1e6, ..Default::default() }
    }

    /// A series as the recorder holds it (live).
    pub fn of_stats(s: &SeriesStats) -> SeriesFigures {
        SeriesFigures {
            requests: s.requests,
            errors: s.errors,
            status: s.status.clone(),
            cache: s.cache.clone(),
            ..SeriesFigures::of_histogram(&s.corrected)
        }
    }

    /// A series of a result file.
    pub fn of_doc(s: &SeriesDoc) -> Result<SeriesFigures, String> {
        Ok(SeriesFigures {
            requests: s.requests,
            errors: s.errors,
            status: s.status.clone(),
            cache: s.cache.clone(),
            ..SeriesFigures::of_histogram(&s.corrected.decode()?)
        })
    }

    fn add(&mut self, o: &SeriesFigures) {
        self.requests += o.requests;
        self.errors += o.errors;
        for (k, n) in &o.status {
            *self.status.entry(k.clone()).or_default() += n;
        }
        for (layer, outcomes) in &o.cache {
            let into = self.cache.entry(layer.clone()).or_default();
            for (k, n) in outcomes {
                *into.entry(k.clone()).or_default() += n;
            }
        }
        self.buckets.resize(BOUNDS_SECONDS.len(), 0);
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum_seconds += o.sum_seconds;
    }
}

/// One run's figures (of one process, thread or the merged run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub scenario: String,
    pub scheduled: u64,
    pub started: u64,
    pub dropped: u64,
    pub late: u64,
    pub target_rate: Option<f64>,
    /// Per arm (its label): series name → figures.
    pub arms: Vec<(String, BTreeMap<String, SeriesFigures>)>,
    /// An A/B's pairs, per series: how their answers compared.
    pub answers: BTreeMap<String, crate::answers::AnswerTally>,
}

impl Figures {
    pub fn new(scenario: &str, run: &RunFigures, arms: Vec<(String, BTreeMap<String, SeriesFigures>)>) -> Figures {
        Figures {
            scenario: scenario.to_owned(),
            scheduled: run.scheduled_iterations,
            started: run.started_iterations,
            dropped: run.dropped_iterations,
            late: run.late_sends,
            target_rate: run.target_rate,
            arms,
            answers: BTreeMap::new(),
        }
    }

    /// A result's figures: one document per arm (one for `run`, two for `ab`).
    pub fn of_docs(docs: &[ResultDoc]) -> Result<Figures, String> {
        let first = docs.first().ok_or("no result")?;
        let arms = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let label = d.metadata.variant.clone().unwrap_or_else(|| arm_letter(i));
                let series = d
                    .series
                    .iter()
                    .map(|(k, s)| Ok((k.clone(), SeriesFigures::of_doc(s)?)))
                    .collect::<Result<_, String>>()?;
                Ok((label, series))
            })
            .collect::<Result<_, String>>()?;
        let mut figures = Figures::new(&first.metadata.scenario, &first.run, arms);
        figures.answers = first.answers.as_ref().map(|a| a.series.clone()).unwrap_or_default();
        Ok(figures)
    }

    /// Adds another part of the same run (another thread's).
    pub fn add(&mut self, o: &Figures) {
        self.scheduled += o.scheduled;
        self.started += o.started;
        self.dropped += o.dropped;
        self.late += o.late;
        self.target_rate = match (self.target_rate, o.target_rate) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        for (label, series) in &o.arms {
            let at = match self.arms.iter().position(|(l, _)| l == label) {
                Some(i) => i,
                None => {
                    self.arms.push((label.clone(), BTreeMap::new()));
                    self.arms.len() - 1
                }
            };
            for (name, s) in series {
                self.arms[at].1.entry(name.clone()).or_default().add(s);
            }
        }
    }
}

/// The name of arm `i` when it has no label.
pub fn arm_letter(i: usize) -> String {
    if i == 0 { "a" } else { "b" }.to_owned()
}

/// A label value, escaped as the format asks (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// One metric family: its header, then every sample line.
fn family(out: &mut String, name: &str, kind: &str, unit: Option<&str>, help: &str, samples: &[String]) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    if let Some(u) = unit {
        let _ = writeln!(out, "# UNIT {name} {u}");
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    for s in samples {
        out.push_str(s);
        out.push('\n');
    }
}

/// Every run's figures as one OpenMetrics exposition, ending with `# EOF`.
pub fn render(runs: &[Figures]) -> String {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    let mut responses = Vec::new();
    let mut cache = Vec::new();
    let mut latency = Vec::new();
    let mut iterations = Vec::new();
    let mut late = Vec::new();
    let mut target = Vec::new();
    let mut pairs = Vec::new();
    for run in runs {
        let sc = run.scenario.as_str();
        for (series, t) in &run.answers {
            let outcomes = [
                ("agreed", t.compared - t.mismatched),
                ("differed", t.mismatched),
                ("write_between", t.write_between),
                ("no_answer", t.no_answer),
            ];
            for (outcome, n) in outcomes {
                let l = labels(&[("scenario", sc), ("series", series.as_str()), ("outcome", outcome)]);
                pairs.push(format!("harness_answer_pairs_total{l} {n}"));
            }
        }
        for (state, n) in [("scheduled", run.scheduled), ("started", run.started), ("dropped", run.dropped)] {
            iterations.push(format!("harness_iterations_total{} {n}", labels(&[("scenario", sc), ("state", state)])));
        }
        late.push(format!("harness_late_sends_total{} {}", labels(&[("scenario", sc)]), run.late));
        if let Some(r) = run.target_rate {
            target.push(format!("harness_target_rate{} {r:?}", labels(&[("scenario", sc)])));
        }
        for (arm, series) in &run.arms {
            for (name, s) in series {
                let base = [("scenario", sc), ("arm", arm.as_str()), ("series", name.as_str())];
                requests.push(format!("harness_requests_total{} {}", labels(&base), s.requests));
                errors.push(format!("harness_errors_total{} {}", labels(&base), s.errors));
                for (class, n) in &s.status {
                    let l = labels(&[base[0], base[1], base[2], ("status", class.as_str())]);
                    responses.push(format!("harness_responses_total{l} {n}"));
                }
                if name == crate::series::ALL_TEXT {
                    for (layer, outcomes) in &s.cache {
                        for (outcome, n) in outcomes {
                            let l =
                                labels(&[base[0], base[1], ("layer", layer.as_str()), ("outcome", outcome.as_str())]);
                            cache.push(format!("harness_cache_outcomes_total{l} {n}"));
                        }
                    }
                }
                for (bound, n) in BOUNDS_SECONDS.iter().zip(&s.buckets) {
                    let le = format!("{bound:?}");
                    let l = labels(&[base[0], base[1], base[2], ("le", le.as_str())]);
                    latency.push(format!("harness_latency_seconds_bucket{l} {n}"));
                }
                let l = labels(&[base[0], base[1], base[2], ("le", "+Inf")]);
                latency.push(format!("harness_latency_seconds_bucket{l} {}", s.count));
                latency.push(format!("harness_latency_seconds_count{} {}", labels(&base), s.count));
                latency.push(format!("harness_latency_seconds_sum{} {:?}", labels(&base), s.sum_seconds));
            }
        }
    }
    let mut out = String::new();
    family(
        &mut out,
        "harness_requests",
        "counter",
        None,
        "Requests of the measured part (warm-up excluded), per series.",
        &requests,
    );
    family(
        &mut out,
        "harness_errors",
        "counter",
        None,
        "Requests that failed or did not meet the step's expectations.",
        &errors,
    );
    family(&mut out, "harness_responses", "counter", None, "Answers by status class.", &responses);
    family(
        &mut out,
        "harness_answer_pairs",
        "counter",
        None,
        "A/B pairs by how the two arms' answers compared (differed: a cache changed an answer).",
        &pairs,
    );
    family(
        &mut out,
        "harness_cache_outcomes",
        "counter",
        None,
        "Cache outcomes the target reported in x-cache, per layer.",
        &cache,
    );
    family(
        &mut out,
        "harness_latency_seconds",
        "histogram",
        Some("seconds"),
        "Latency from the intended start (corrected for coordinated omission); buckets within HDR precision (3 digits).",
        &latency,
    );
    family(&mut out, "harness_iterations", "counter", None, "Iterations of the measured part by state.", &iterations);
    family(&mut out, "harness_late_sends", "counter", None, "Sends more than 1 ms after their intended time.", &late);
    family(
        &mut out,
        "harness_target_rate",
        "gauge",
        None,
        "Iterations per second the schedule asks for (open model).",
        &target,
    );
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{new_histogram, record};

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let mut h = new_histogram();
        for us in [300, 800, 800, 4_000, 70_000_000] {
            record(&mut h, us);
        }
        let s = SeriesFigures::of_histogram(&h);
        assert_eq!(s.count, 5);
        assert_eq!(&s.buckets[..4], &[1, 3, 3, 4]);
        // 70 s (beyond the histogram's 60 s range, clamped there) is in the last bucket.
        assert!(s.buckets.windows(2).all(|w| w[0] <= w[1]));
        assert!(*s.buckets.last().unwrap() <= s.count);
        let mut twice = s.clone();
        twice.add(&s);
        assert_eq!((twice.count, twice.buckets[1]), (10, 6));
    }

    #[test]
    fn text_escapes_labels_and_ends_with_eof() {
        let mut series = BTreeMap::new();
        series.insert("step:say \"hi\"".to_owned(), SeriesFigures { requests: 2, ..Default::default() });
        let run = Figures { scenario: "s".into(), arms: vec![("a".into(), series)], ..Default::default() };
        let text = render(&[run]);
        assert!(text.contains(r#"harness_requests_total{scenario="s",arm="a",series="step:say \"hi\""} 2"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
