//! The Markdown exporter: `summary.md`, the report in a form a CI step summary or
//! a pull-request comment shows (same numbers as the HTML, no charts).

use super::{context, Exporter, Output, Report};

pub const NAME: &str = "markdown";

pub struct Markdown;

impl Exporter for Markdown {
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        let text = match report {
            Report::Run(r) => super::render("summary.md", &context::run(r, &[]))?,
            Report::Bench(s) => super::render("bench.md", &context::bench(s, None))?,
        };
        out.write(NAME, "summary.md", &text)?;
        Ok(())
    }
}
