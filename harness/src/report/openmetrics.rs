//! The OpenMetrics exporter: `metrics.txt`, a run's figures in the text format
//! Prometheus reads (`crate::metrics`), for a node_exporter textfile collector, a
//! Pushgateway or any tool that parses it. A bench's runs are each a result file
//! (`results/`), which `harness report` turns into their own.

use super::{Exporter, Output, Report};
use crate::metrics::{self, Figures};

pub const NAME: &str = "openmetrics";

pub struct OpenMetrics;

impl Exporter for OpenMetrics {
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        if let Report::Run(r) = report {
            let figures = Figures::of_docs(r.docs)?;
            out.write(NAME, "metrics.txt", &metrics::render(&[figures]))?;
        }
        Ok(())
    }
}
