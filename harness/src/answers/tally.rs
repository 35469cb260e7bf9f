//! What the pairs of an A/B said about the answers, as the result file keeps it:
//! per series (`*`, `step:…`, `tag:…`), how many pairs were compared and how
//! many disagreed, the pairs that could not be compared and why, and the first
//! few differences as readable diffs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Differences kept per step: enough to read what went wrong, not a log.
pub const MAX_DIFFERENCES: usize = 3;

/// The answers of an A/B's pairs, in a result file (both arms' documents carry
/// the same one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswersDoc {
    /// Per step: how its pairs were compared ("status and body as canonical JSON").
    pub rules: BTreeMap<String, String>,
    /// Per series name.
    pub series: BTreeMap<String, AnswerTally>,
}

/// The pairs of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerTally {
    /// Pairs whose two answers were compared.
    pub compared: u64,
    /// Compared pairs whose answers differed (status, or body under the step's rule).
    pub mismatched: u64,
    /// Not comparable: the user had a write in flight between the two sends (or a
    /// write that reached one arm only), so the arms could rightly differ.
    pub write_between: u64,
    /// Not comparable: an arm got no answer (a transport error, a dropped or
    /// unsent iteration, the run's end).
    pub no_answer: u64,
    /// The first differences (step series only), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
}

/// One pair whose answers differed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub step: String,
    /// The request as arm A sent it (`GET /models/o3`).
    pub request: String,
    /// The user (index into the scenario's users), when the scenario has users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<usize>,
    pub status_a: u16,
    pub status_b: u16,
    /// A unified diff of A's answer against B's under the step's rule, capped.
    pub diff: String,
}

impl Difference {
    /// "list: GET /models (user 17), status 200 → 404": what the diff is of.
    pub fn heading(&self) -> String {
        let user = self.user.map(|u| format!(" (user {u})")).unwrap_or_default();
        format!("{}: {}{user}, status {} → {}", self.step, self.request, self.status_a, self.status_b)
    }
}

impl AnswerTally {
    /// The share of compared pairs that disagreed, with its 95 % Wilson interval
    /// (`None` when no pair was compared).
    pub fn mismatch_rate(&self) -> Option<(f64, f64, f64)> {
        (self.compared > 0).then(|| {
            let (lo, hi) = crate::stats::wilson(self.mismatched, self.compared, 1.96);
            (self.mismatched as f64 / self.compared as f64, lo, hi)
        })
    }

    pub fn add(&mut self, other: &AnswerTally) {
        self.compared += other.compared;
        self.mismatched += other.mismatched;
        self.write_between += other.write_between;
        self.no_answer += other.no_answer;
        let room = MAX_DIFFERENCES.saturating_sub(self.differences.len());
        self.differences.extend(other.differences.iter().take(room).cloned());
    }
}

impl AnswersDoc {
    /// The answers of runs added together (threads, shards, stages of one A/B).
    pub fn add(&mut self, other: &AnswersDoc) {
        for (step, rule) in &other.rules {
            self.rules.entry(step.clone()).or_insert_with(|| rule.clone());
        }
        for (name, tally) in &other.series {
            self.series.entry(name.clone()).or_default().add(tally);
        }
    }

    /// The sum of `docs`, `None` when none has answers.
    pub fn sum<'a>(docs: impl IntoIterator<Item = Option<&'a AnswersDoc>>) -> Option<AnswersDoc> {
        docs.into_iter().flatten().fold(None, |acc: Option<AnswersDoc>, d| {
            let mut acc = acc.unwrap_or_default();
            acc.add(d);
            Some(acc)
        })
    }

    /// The series with compared pairs that disagreed.
    pub fn wrong(&self) -> impl Iterator<Item = (&String, &AnswerTally)> {
        self.series.iter().filter(|(_, t)| t.mismatched > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_and_keep_only_the_first_differences() {
        let diff = |n: u16| Difference {
            step: "s".into(),
            request: "GET /".into(),
            user: None,
            status_a: 200,
            status_b: n,
            diff: String::new(),
        };
        let mut a =
            AnswerTally { compared: 10, mismatched: 2, differences: vec![diff(1), diff(2)], ..Default::default() };
        let b = AnswerTally {
            compared: 5,
            mismatched: 1,
            write_between: 3,
            no_answer: 1,
            differences: vec![diff(3), diff(4)],
        };
        a.add(&b);
        assert_eq!((a.compared, a.mismatched, a.write_between, a.no_answer), (15, 3, 3, 1));
        assert_eq!(a.differences.iter().map(|d| d.status_b).collect::<Vec<_>>(), vec![1, 2, 3]);
        let (rate, lo, hi) = a.mismatch_rate().unwrap();
        assert!((rate - 0.2).abs() < 1e-12 && lo < rate && rate < hi);
        assert_eq!(AnswerTally::default().mismatch_rate(), None);
    }
}
