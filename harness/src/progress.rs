//! The live progress line while a run goes on (indicatif): elapsed, achieved
//! rate, p99 so far, errors. Hidden when stderr is not a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::recorder::SeriesStats;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, total: Duration) -> Progress {
        let target = if enabled { ProgressDrawTarget::stderr_with_hz(4) } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total.as_millis() as u64), target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:24}] {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        Progress { bar }
    }

    pub fn update(
        &self,
        elapsed: Duration,
        measuring: bool,
        started: u64,
        all: Option<&SeriesStats>,
        measured: Duration,
    ) {
        self.bar.set_position(elapsed.as_millis() as u64);
        if !measuring {
            self.bar.set_message("warming up (not recorded)");
            return;
        }
        let secs = measured.as_secs_f64().max(1e-3);
        let (p99, errors, requests) =
            all.map_or((0.0, 0, 0), |s| (s.corrected.value_at_quantile(0.99) as f64 / 1000.0, s.errors, s.requests));
        self.bar.set_message(format!(
            "{:.0} it/s  p99 {p99:.2} ms  requests {requests}  errors {errors}",
            started as f64 / secs
        ));
    }

    pub fn println(&self, line: &str) {
        self.bar.println(line);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
