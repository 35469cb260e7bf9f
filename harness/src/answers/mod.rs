//! Answers before speed (ARCHITECTURE.md, "Answers"): every pair of an A/B
//! replays one request on both arms, so its two answers can be compared.
//!
//! - `rule.rs`: what of an answer is compared (a step's `compare`);
//! - `book.rs`: the pairs while a run goes on, and the write rule;
//! - `tally.rs`: what the result file keeps (counts, rates, first differences);
//! - `diff.rs`: a difference as a readable, capped diff.

mod book;
mod diff;
mod rule;
mod tally;

pub use book::{AnswerBook, Answered, PairStep};
pub use rule::{Answer, AnswerRule, IgnoredPointer};
pub use tally::{AnswerTally, AnswersDoc, Difference, MAX_DIFFERENCES};
