//! The pairs of a running A/B (ARCHITECTURE.md, "Answers"): each pair's two
//! answers of one step are held until both have come, then compared under the
//! step's rule and tallied — unless the user had a write in flight in between.
//!
//! Why the write rule is needed, and what it is. The two iterations of a pair
//! run one after the other (and may overlap). Both replay one draw, so a write
//! step writes the same value in both arms; but between the first arm's write
//! and the second's, the two arms' stores differ (two servers' stores, or one
//! store written once), and a read of that user in between may rightly differ.
//! So a write opens from its first send until both arms' writes have answered
//! with one status; a pair-step whose user had another pair's write open at its
//! first send, or a write sent before its second answer, is counted apart
//! ("a write in between"). A write that reached one arm only (its partner
//! dropped, unsent or failed at the transport, or the two statuses differ)
//! never closes: that user's later pairs stay apart, since the arms' stores
//! now rightly differ. Read-backs are not compared (their expectation checks
//! them); `once_per_user` steps neither (tokens differ per arm by design).
//!
//! Shared by a run's threads (one lock; a pair never spans threads, a user's
//! writes may). Across shards on several machines it cannot be shared: each
//! shard sees only its own writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::diff;
use super::rule::{Answer, AnswerRule};
use super::tally::{AnswerTally, AnswersDoc, Difference, MAX_DIFFERENCES};
use crate::scenario::Scenario;
use crate::series::SeriesKey;

/// Pair-steps waiting for their second half at most: a half whose partner
/// never comes (dropped, or its flow stopped at an earlier failure) must not
/// hold memory for the rest of the run.
const MAX_PENDING: usize = 4096;
/// Bytes of bodies waiting at most (bodies are kept up to 4 MiB each).
const MAX_PENDING_BYTES: usize = 64 << 20;

/// One step of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairStep {
    pub pair: u64,
    pub step: usize,
}

/// How a step's answers are compared and where they are tallied.
#[derive(Debug, Clone)]
struct StepRule {
    name: String,
    rule: AnswerRule,
    /// Changes what later reads may see (not a GET, HEAD or OPTIONS; or read back).
    write: bool,
    step_series: String,
    /// `*`, the step's, its tags'.
    series: Vec<String>,
}

/// One arm's answer of a pair-step, waiting for the other's.
struct Half {
    arm: usize,
    answer: Option<Answer>,
    request: String,
}

impl Half {
    fn bytes(&self) -> usize {
        self.answer.as_ref().and_then(|a| a.body.as_ref()).map_or(0, Vec::len)
    }
}

struct Pending {
    user: usize,
    /// Both halves were sent in the measured part.
    measured: bool,
    /// Another pair's write of the user was open in between.
    write_between: bool,
    first: Option<Half>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.first.as_ref().map_or(0, Half::bytes)
    }
}

/// The statuses a write pair-step answered with so far (`None`: no answer).
#[derive(Default)]
struct OpenWrite {
    statuses: Vec<Option<u16>>,
}

#[derive(Default)]
struct Book {
    next_pair: u64,
    /// Oldest pair first: when the book is full the oldest are given up.
    pending: BTreeMap<PairStep, Pending>,
    /// Bytes of the bodies waiting in `pending`.
    pending_bytes: usize,
    /// Pairs below this number were given up: their halves are not waited for.
    given_up_below: u64,
    /// Per user, the write pair-steps not yet applied alike in both arms.
    open_writes: HashMap<usize, HashMap<PairStep, OpenWrite>>,
    doc: AnswersDoc,
}

/// The pairs of one A/B run; clones share one book.
#[derive(Clone)]
pub struct AnswerBook {
    steps: Arc<Vec<StepRule>>,
    book: Arc<Mutex<Book>>,
}

/// One arm's answer as the iteration got it.
pub struct Answered {
    pub arm: usize,
    pub user: usize,
    /// The user's index in the scenario's users, shown with a difference.
    pub user_index: Option<usize>,
    /// `GET /models/o3`.
    pub request: String,
    /// `None`: no answer (a transport error).
    pub answer: Option<Answer>,
}

impl AnswerBook {
    pub fn new(scenario: &Scenario) -> AnswerBook {
        let mut book = Book::default();
        let steps: Vec<StepRule> = scenario
            .steps
            .iter()
            .map(|s| {
                book.doc.rules.insert(s.name.clone(), s.answer_words());
                let step_series = SeriesKey::step(&s.name).to_string();
                let series = [SeriesKey::all().to_string(), step_series.clone()]
                    .into_iter()
                    .chain(s.tags.iter().map(|t| SeriesKey::tag(t).to_string()))
                    .collect();
                // A login's token is per arm by design: not a write the pairs wait for.
                let write = s.is_write() && !s.once_per_user;
                StepRule { name: s.name.clone(), rule: s.answer_rule(), write, step_series, series }
            })
            .collect();
        AnswerBook { steps: Arc::new(steps), book: Arc::new(Mutex::new(book)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pair's number (unique over the run's threads).
    pub fn pair(&self) -> u64 {
        let mut book = self.lock();
        book.next_pair += 1;
        book.next_pair
    }

    /// The rule of step `step`.
    pub fn rule(&self, step: usize) -> &AnswerRule {
        &self.steps[step].rule
    }

    /// Whether step `step` takes part: compared, or a write others must know of.
    pub fn follows(&self, step: usize) -> bool {
        let s = &self.steps[step];
        s.rule.compares() || s.write
    }

    /// One arm is about to send `key` for `user`.
    pub fn sent(&self, key: PairStep, user: usize, measured: bool) {
        let write = self.steps[key.step].write;
        let mut book = self.lock();
        let book = &mut *book;
        let other_open = book.open_writes.get(&user).is_some_and(|w| w.keys().any(|k| k.pair != key.pair));
        if write {
            book.open_writes.entry(user).or_default().entry(key).or_default();
        }
        if key.pair < book.given_up_below {
            return;
        }
        let p = book.pending.entry(key).or_insert(Pending { user, measured: true, write_between: false, first: None });
        p.measured &= measured;
        p.write_between |= other_open;
        if write {
            for (k, p) in book.pending.iter_mut() {
                if p.user == user && k.pair != key.pair {
                    p.write_between = true;
                }
            }
        }
        self.give_up_oldest(book);
    }

    /// Past [`MAX_PENDING`] pair-steps or [`MAX_PENDING_BYTES`], the oldest
    /// count as "no answer" and their late halves are not waited for.
    fn give_up_oldest(&self, book: &mut Book) {
        while book.pending.len() > MAX_PENDING || book.pending_bytes > MAX_PENDING_BYTES {
            let Some((key, p)) = book.pending.pop_first() else { return };
            book.pending_bytes -= p.bytes();
            book.given_up_below = book.given_up_below.max(key.pair + 1);
            if p.measured {
                self.unanswered(&mut book.doc, key);
            }
        }
    }

    /// Counts `key` as a pair-step one of whose arms got no answer.
    fn unanswered(&self, doc: &mut AnswersDoc, key: PairStep) {
        let step = &self.steps[key.step];
        if step.rule.compares() {
            for s in &step.series {
                doc.series.entry(s.clone()).or_default().no_answer += 1;
            }
        }
    }

    /// One arm's answer of `key`; the second of a pair settles it.
    pub fn answered(&self, key: PairStep, got: Answered) {
        let step = &self.steps[key.step];
        let mut book = self.lock();
        if step.write {
            close_write(&mut book, key, got.user, got.answer.as_ref().map(|a| a.status));
        }
        if !step.rule.compares() {
            book.pending.remove(&key);
            return;
        }
        let Some(p) = book.pending.get_mut(&key) else { return };
        let half = Half { arm: got.arm, answer: got.answer, request: got.request };
        let Some(first) = p.first.take() else {
            let bytes = half.bytes();
            p.first = Some(half);
            book.pending_bytes += bytes;
            self.give_up_oldest(&mut book);
            return;
        };
        book.pending_bytes -= first.bytes();
        let p = book.pending.remove(&key).expect("looked up above");
        if p.measured {
            settle(&mut book.doc, step, p.write_between, first, half, got.user_index);
        }
    }

    /// The tallies; pairs still waiting for an arm count as "no answer".
    pub fn finish(&self) -> AnswersDoc {
        let mut book = self.lock();
        let book = &mut *book;
        for (key, p) in std::mem::take(&mut book.pending) {
            if p.measured {
                self.unanswered(&mut book.doc, key);
            }
        }
        book.pending_bytes = 0;
        book.doc.clone()
    }
}

/// Notes a write's answer; both arms answered alike closes it.
fn close_write(book: &mut Book, key: PairStep, user: usize, status: Option<u16>) {
    let Some(writes) = book.open_writes.get_mut(&user) else { return };
    let Some(w) = writes.get_mut(&key) else { return };
    w.statuses.push(status);
    if let [Some(x), Some(y)] = w.statuses[..] {
        if x == y {
            writes.remove(&key);
            if writes.is_empty() {
                book.open_writes.remove(&user);
            }
        }
    }
}

fn settle(doc: &mut AnswersDoc, step: &StepRule, write_between: bool, one: Half, two: Half, user: Option<usize>) {
    let (a, b) = if one.arm <= two.arm { (one, two) } else { (two, one) };
    let outcome = match (&a.answer, &b.answer) {
        _ if write_between => Outcome::WriteBetween,
        (Some(x), Some(y)) if step.rule.same(x, y) => Outcome::Agreed,
        (Some(x), Some(y)) => Outcome::Differed(x, y),
        _ => Outcome::NoAnswer,
    };
    for s in &step.series {
        let tally = doc.series.entry(s.clone()).or_default();
        count(tally, &outcome);
        if let Outcome::Differed(x, y) = outcome {
            if *s == step.step_series && tally.differences.len() < MAX_DIFFERENCES {
                tally.differences.push(Difference {
                    step: step.name.clone(),
                    request: a.request.clone(),
                    user,
                    status_a: x.status,
                    status_b: y.status,
                    diff: diff::readable(&step.rule.normalised(x), &step.rule.normalised(y)),
                });
            }
        }
    }
}

enum Outcome<'a> {
    Agreed,
    Differed(&'a Answer, &'a Answer),
    WriteBetween,
    NoAnswer,
}

fn count(tally: &mut AnswerTally, outcome: &Outcome) {
    match outcome {
        Outcome::Agreed => tally.compared += 1,
        Outcome::Differed(..) => {
            tally.compared += 1;
            tally.mismatched += 1;
        }
        Outcome::WriteBetween => tally.write_between += 1,
        Outcome::NoAnswer => tally.no_answer += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: 0 `read` (GET), 1 `write` (PUT), 2 `token` (status only).
    fn book() -> AnswerBook {
        let text = r#"
name = "t"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 10
duration = "1s"
[[step]]
name = "read"
tags = ["lists"]
request = { path = "/r" }
[[step]]
name = "write"
request = { method = "PUT", path = "/w", body = "x" }
[[step]]
name = "token"
compare = "status"
request = { path = "/t" }
"#;
        let scenario = crate::scenario::parse(std::path::Path::new("t.toml"), text, &|_| None).unwrap();
        AnswerBook::new(&scenario)
    }

    fn json(status: u16, body: &str) -> Option<Answer> {
        Some(AnswerRule::default().answer(status, Some(body.as_bytes())))
    }

    /// Sends and answers one half: `arm` of `key` for `user`.
    fn half(book: &AnswerBook, key: PairStep, arm: usize, user: usize, answer: Option<Answer>) {
        book.sent(key, user, true);
        book.answered(key, Answered { arm, user, user_index: Some(user), request: "GET /r".into(), answer });
    }

    fn tally<'a>(doc: &'a AnswersDoc, series: &str) -> &'a AnswerTally {
        &doc.series[series]
    }

    #[test]
    fn pairs_that_agree_and_differ_are_counted_with_a_diff() {
        let b = book();
        for (i, body_b) in ["[1,2]", "[1,2]", "[1]"].iter().enumerate() {
            let key = PairStep { pair: b.pair(), step: 0 };
            // The arms answer in either order.
            let (first, second) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
            let bodies = ["[1,2]", body_b];
            half(&b, key, first, 7, json(200, bodies[first]));
            half(&b, key, second, 7, json(200, bodies[second]));
        }
        let doc = b.finish();
        for s in ["*", "step:read", "tag:lists"] {
            let t = tally(&doc, s);
            assert_eq!((t.compared, t.mismatched, t.write_between, t.no_answer), (3, 1, 0, 0), "{s}");
        }
        let d = &tally(&doc, "step:read").differences[0];
        assert_eq!((d.step.as_str(), d.user, d.status_a, d.status_b), ("read", Some(7), 200, 200));
        assert!(d.diff.contains("-  2"), "A had 2, B not: {}", d.diff);
        assert!(tally(&doc, "*").differences.is_empty(), "diffs are kept per step only");
        assert_eq!(doc.rules["token"], "status only");
    }

    #[test]
    fn a_write_of_the_user_between_the_sends_makes_a_pair_not_comparable() {
        let b = book();
        let read = PairStep { pair: b.pair(), step: 0 };
        let write = PairStep { pair: b.pair(), step: 1 };
        b.sent(read, 3, true);
        // Another pair writes user 3 before the read's second half is sent.
        half(&b, write, 0, 3, json(200, "{}"));
        b.answered(
            read,
            Answered { arm: 0, user: 3, user_index: None, request: "GET /r".into(), answer: json(200, "[1]") },
        );
        half(&b, read, 1, 3, json(200, "[1,2]"));
        // While the write has reached one arm only, a new pair of user 3 is apart too…
        let during = PairStep { pair: b.pair(), step: 0 };
        half(&b, during, 0, 3, json(200, "[1,2]"));
        half(&b, during, 1, 3, json(200, "[1]"));
        // …and another user's pair is compared.
        let other = PairStep { pair: b.pair(), step: 0 };
        half(&b, other, 0, 4, json(200, "[1]"));
        half(&b, other, 1, 4, json(200, "[1]"));
        // Once the write has answered alike in both arms, user 3 is compared again.
        half(&b, write, 1, 3, json(200, "{}"));
        let after = PairStep { pair: b.pair(), step: 0 };
        half(&b, after, 1, 3, json(200, "[1,2]"));
        half(&b, after, 0, 3, json(200, "[1,2]"));
        let doc = b.finish();
        let t = tally(&doc, "step:read");
        assert_eq!((t.compared, t.mismatched, t.write_between), (2, 0, 2), "{t:?}");
        // The write pair itself had no other write in between: compared.
        assert_eq!(tally(&doc, "step:write").compared, 1);
    }

    #[test]
    fn a_write_that_reached_one_arm_keeps_its_user_apart_and_missing_halves_have_no_answer() {
        let b = book();
        let write = PairStep { pair: b.pair(), step: 1 };
        half(&b, write, 0, 5, json(200, "{}"));
        half(&b, write, 1, 5, json(503, "{}"));
        let later = PairStep { pair: b.pair(), step: 0 };
        half(&b, later, 0, 5, json(200, "[1]"));
        half(&b, later, 1, 5, json(200, "[1]"));
        // A transport failure on one arm, and a half whose partner never came.
        let failed = PairStep { pair: b.pair(), step: 0 };
        half(&b, failed, 0, 6, json(200, "[1]"));
        half(&b, failed, 1, 6, None);
        half(&b, PairStep { pair: b.pair(), step: 0 }, 0, 6, json(200, "[1]"));
        let doc = b.finish();
        let w = tally(&doc, "step:write");
        assert_eq!((w.compared, w.mismatched), (1, 1), "the write's own statuses differ: {w:?}");
        let t = tally(&doc, "step:read");
        assert_eq!((t.compared, t.write_between, t.no_answer), (0, 1, 2), "{t:?}");
    }

    #[test]
    fn unmeasured_halves_are_not_counted() {
        let b = book();
        let key = PairStep { pair: b.pair(), step: 0 };
        b.sent(key, 1, false);
        b.answered(key, Answered { arm: 0, user: 1, user_index: None, request: String::new(), answer: json(200, "1") });
        half(&b, key, 1, 1, json(200, "2"));
        let lone = PairStep { pair: b.pair(), step: 0 };
        b.sent(lone, 1, false);
        assert!(b.finish().series.is_empty());
    }

    #[test]
    fn halves_whose_partner_never_comes_are_given_up_not_kept() {
        let b = book();
        for _ in 0..MAX_PENDING + 10 {
            half(&b, PairStep { pair: b.pair(), step: 0 }, 0, 1, json(200, "[1,2,3]"));
        }
        let waiting = b.lock().pending.len();
        assert_eq!(waiting, MAX_PENDING, "bounded");
        // The given-up pairs' late halves are not waited for again.
        half(&b, PairStep { pair: 1, step: 0 }, 1, 1, json(200, "[1,2,3]"));
        assert_eq!(b.lock().pending.len(), MAX_PENDING);
        let doc = b.finish();
        assert_eq!(doc.series["*"].no_answer, MAX_PENDING as u64 + 10);
        assert_eq!(doc.series["*"].compared, 0);
    }
}
