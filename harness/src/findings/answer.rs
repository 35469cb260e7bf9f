//! The bench's answer in one table: each claim under each measurement, the
//! backend operations of a request with and without the cache, and a fresh
//! isolate's requests.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bench::BenchSummary;
use crate::claims::Verdict;
use crate::compare::MetricChange;
use crate::recorder::Ops;
use crate::result::Measurement;
use crate::series::SeriesKey;

/// One claim under one measurement, for the answer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerCell {
    /// The run it was judged on.
    pub run: String,
    pub verdict: Verdict,
    /// The primary metric: percent faster (negative: slower) and its CI.
    pub improvement: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl fmt::Display for AnswerCell {
    /// "12.3 % faster (CI 8.1–16.0 % faster): confirmed".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::claims::{ci_words, speed};
        let ci = ci_words(self.ci_low, self.ci_high, "");
        write!(f, "{} ({}): {}", speed(self.improvement), ci.trim_start(), self.verdict.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRow {
    pub claim: String,
    pub statement: String,
    /// One per measurement of [`Answer::columns`]; `None` when not judged there.
    pub cells: Vec<Option<AnswerCell>>,
}

/// Backend operations per request of one scenario run, cache off and on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsRow {
    pub measurement: Measurement,
    pub run: String,
    pub off: Ops,
    pub on: Ops,
}

/// A fresh isolate's request, cache off and on, beside the warm answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdRow {
    pub measurement: Measurement,
    /// The step's tag series (`tag:cold-first`…).
    pub series: SeriesKey,
    pub samples: u64,
    pub p50_off: f64,
    pub p50_on: f64,
    pub p50: MetricChange,
}

/// The bench's answer in one table: each claim measured and under each profile,
/// what a request costs in KV and D1 operations with and without the cache, and
/// what a fresh isolate's requests cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub columns: Vec<Measurement>,
    pub rows: Vec<AnswerRow>,
    pub ops: Vec<OpsRow>,
    pub cold: Vec<ColdRow>,
}

impl BenchSummary {
    pub fn answer(&self) -> Answer {
        let columns = self.groups();
        let mut rows: Vec<AnswerRow> = Vec::new();
        for (i, m) in columns.iter().enumerate() {
            for (run, c) in self.headline_claims_under(m) {
                let row = match rows.iter().position(|r| r.claim == c.name) {
                    Some(k) => &mut rows[k],
                    None => {
                        rows.push(AnswerRow {
                            claim: c.name.clone(),
                            statement: c.statement.clone(),
                            cells: vec![None; columns.len()],
                        });
                        rows.last_mut().expect("just pushed")
                    }
                };
                row.cells[i] = c.metrics.first().map(|p| AnswerCell {
                    run: run.to_owned(),
                    verdict: c.verdict,
                    improvement: p.improvement,
                    ci_low: p.ci_low,
                    ci_high: p.ci_high,
                });
            }
        }
        let ops = self
            .runs
            .iter()
            .filter(|r| r.is_warm_ab() && !(r.ops_a.is_empty() && r.ops_b.is_empty()))
            .map(|r| OpsRow {
                measurement: r.measurement.clone(),
                run: r.name.clone(),
                off: r.ops_a.clone(),
                on: r.ops_b.clone(),
            })
            .collect();
        Answer { columns, rows, ops, cold: self.cold_rows() }
    }

    /// Each cold-start run's steps, cache off → on.
    fn cold_rows(&self) -> Vec<ColdRow> {
        self.runs
            .iter()
            .filter(|r| r.cold_start)
            .flat_map(|r| {
                r.rows.iter().filter(|x| !x.series.is_server_side() && !x.series.is_all()).map(|x| ColdRow {
                    measurement: r.measurement.clone(),
                    series: x.series.clone(),
                    samples: x.count_a.min(x.count_b),
                    p50_off: x.p50_a,
                    p50_on: x.p50_b,
                    p50: x.p50.clone(),
                })
            })
            .collect()
    }
}
