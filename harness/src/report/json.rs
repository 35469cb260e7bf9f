//! The JSON exporter: `bench.json`, a bench's findings as data (the verdict table,
//! validity, claims). A run's data is its result file, written by the runner.

use super::{Exporter, Output, Report};

pub const NAME: &str = "json";

pub struct Json;

impl Exporter for Json {
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        if let Report::Bench(s) = report {
            let text = serde_json::to_string_pretty(s).map_err(|e| e.to_string())? + "\n";
            out.write(NAME, "bench.json", &text)?;
        }
        Ok(())
    }
}
