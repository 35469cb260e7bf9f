//! The JUnit exporter: `junit.xml`, one test case per threshold, claim and run
//! validity (and, for a bench, per run's thresholds), so CI systems show the gates.
//! A claim that does not hold is a failed case here; whether it fails the
//! command is the exit code's business (`--require-claims`).

use serde::Serialize;

use super::context::{f, label};
use super::{Exporter, Output, Report, RunReport};
use crate::claims::ClaimVerdict;
use crate::findings::BenchSummary;
use crate::result::{ResultDoc, Status};

pub const NAME: &str = "junit";

pub struct Junit;

/// The JUnit class of a case: what kind of gate it is.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum CaseClass {
    Threshold,
    Thresholds,
    Claim,
    /// The arms' answers of an A/B's pairs agree.
    Answers,
    Run,
    Bench,
}

#[derive(Debug, Serialize)]
struct TestCase {
    class: CaseClass,
    name: String,
    pass: bool,
    message: String,
}

#[derive(Serialize)]
struct Suite<'a> {
    title: &'a str,
    cases: &'a [TestCase],
    failures: usize,
}

impl Exporter for Junit {
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        let (title, cases) = match report {
            Report::Run(r) => (super::context::title(r), run_cases(r)),
            Report::Bench(s) => ("harness bench".to_owned(), bench_cases(s)),
        };
        let failures = cases.iter().filter(|c| !c.pass).count();
        let xml = super::render("junit.xml", &Suite { title: &title, cases: &cases, failures })?;
        out.write(NAME, "junit.xml", &xml)?;
        Ok(())
    }
}

fn claim_case(c: &ClaimVerdict, name: String) -> TestCase {
    TestCase {
        class: CaseClass::Claim,
        name,
        pass: c.verdict.holds(),
        message: format!("{}: {}", c.verdict.as_str(), c.reason),
    }
}

/// One case per series of the pairs' answers: it fails when the arms answered
/// differently in any compared pair.
fn answer_cases(a: &crate::answers::AnswersDoc, run: &str) -> Vec<TestCase> {
    a.series
        .iter()
        .map(|(series, t)| TestCase {
            class: CaseClass::Answers,
            name: format!("{run}answers agree: {series}"),
            pass: t.mismatched == 0,
            message: format!(
                "{} of {} compared pairs answered differently ({} with a write in between, {} without an answer)",
                t.mismatched, t.compared, t.write_between, t.no_answer
            ),
        })
        .collect()
}

fn run_valid(doc: &ResultDoc) -> bool {
    !matches!(doc.run.status, Status::Invalid | Status::Interrupted)
}

fn run_cases(r: &RunReport<'_>) -> Vec<TestCase> {
    let mut cases = Vec::new();
    for (i, d) in r.docs.iter().enumerate() {
        for t in &d.thresholds {
            cases.push(TestCase {
                class: CaseClass::Threshold,
                name: format!("{} {}: {}", label(d, i), t.series, t.threshold),
                pass: t.pass,
                message: format!("actual {} {}", f(t.actual, 3), t.unit),
            });
        }
    }
    for a in r.comparison.iter().filter_map(|c| c.answers.as_ref()) {
        cases.extend(answer_cases(a, ""));
    }
    for c in r.comparison.iter().flat_map(|c| &c.claims) {
        cases.push(claim_case(c, format!("{}: {}", c.name, c.statement)));
    }
    for (i, d) in r.docs.iter().enumerate() {
        cases.push(TestCase {
            class: CaseClass::Run,
            name: format!("{} run is valid", label(d, i)),
            pass: run_valid(d),
            message: d.run.invalid_reasons.join("; "),
        });
    }
    cases
}

fn bench_cases(s: &BenchSummary) -> Vec<TestCase> {
    let mut cases = vec![TestCase {
        class: CaseClass::Bench,
        name: "the bench is valid".into(),
        pass: s.valid,
        message: s.invalid_reasons.join("; "),
    }];
    for r in &s.runs {
        cases.push(TestCase {
            class: CaseClass::Run,
            name: format!("{} is valid", r.name),
            pass: r.status.is_valid(),
            message: r.invalid_reasons.join("; "),
        });
        if let Some(t) = r.answers_all() {
            cases.push(TestCase {
                class: CaseClass::Answers,
                name: format!("{} answers agree", r.name),
                pass: t.mismatched == 0,
                message: format!("{} of {} compared pairs answered differently", t.mismatched, t.compared),
            });
        }
        cases.push(TestCase {
            class: CaseClass::Thresholds,
            name: format!("{} thresholds", r.name),
            pass: r.thresholds_failed.is_empty(),
            message: r.thresholds_failed.join("; "),
        });
    }
    // Claims are findings: reported, and failures only under --require-claims.
    for (run, c) in s.headline_claims() {
        cases.push(claim_case(c, format!("{}: {} ({run})", c.name, c.statement)));
    }
    cases
}
