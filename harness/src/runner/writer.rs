//! The run's files, written on their own thread: encoding histograms (deflate,
//! base64) and writing JSON take milliseconds, and on the thread that sends and
//! receives they would delay sends and replies — the harness would disturb what
//! it measures. The engine hands over copies (an interval's histogram, a
//! snapshot of the records) and goes on.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::finish::{self, ArmRecord, DocContext};
use crate::result::{Machine, RunFigures, RunFiles};
use crate::scenario::Scenario;

enum Job {
    /// One interval of one series for the `.hlog`.
    Interval { tag: String, histogram: Histogram<u64>, start: Duration },
    /// The result file as of now (status running).
    Snapshot { arms: Vec<ArmRecord>, run: RunFigures },
}

/// The owned parts of a [`DocContext`], for the writer thread.
struct Context {
    scenario: Scenario,
    started_at: SystemTime,
    machine: Machine,
    git: Option<String>,
}

pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Creates the interval log (its header written at once) and starts the thread.
    pub(super) fn start(files: &RunFiles, ctx: &DocContext<'_>) -> Result<Writer, String> {
        let hlog = files.hlog.clone();
        let mut file = std::fs::File::create(&hlog).map_err(|e| format!("{}: {e}", hlog.display()))?;
        let context = Context {
            scenario: ctx.scenario.clone(),
            started_at: ctx.started_at,
            machine: ctx.machine.clone(),
            git: ctx.git.clone(),
        };
        let json = files.json.clone();
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("harness-writer".into())
            .spawn(move || {
                let mut serializer = V2DeflateSerializer::new();
                let started = IntervalLogWriterBuilder::new()
                    .add_comment(&format!(
                        "cache-bench harness {} scenario {}",
                        env!("CARGO_PKG_VERSION"),
                        context.scenario.name
                    ))
                    .with_start_time(context.started_at)
                    .with_base_time(context.started_at)
                    .with_max_value_divisor(1000.0) // µs recorded, milliseconds in the log's max column
                    .begin_log_with(&mut file, &mut serializer);
                let mut log = match started {
                    Ok(log) => {
                        let _ = ready_tx.send(Ok(()));
                        log
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{}: {e}", hlog.display())));
                        return;
                    }
                };
                for job in rx {
                    match job {
                        Job::Interval { tag, histogram, start } => {
                            let _ = log.write_histogram(&histogram, start, Duration::from_secs(1), Tag::new(&tag));
                        }
                        Job::Snapshot { arms, run } => write_snapshot(&context, &json, &arms, run),
                    }
                }
            })
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        ready_rx.recv().map_err(|_| "the writer thread ended before it began".to_owned())??;
        Ok(Writer { jobs: Some(tx), thread: Some(thread) })
    }

    pub(super) fn interval(&self, tag: String, histogram: Histogram<u64>, start: Duration) {
        self.send(Job::Interval { tag, histogram, start });
    }

    pub(super) fn snapshot(&self, arms: Vec<ArmRecord>, run: RunFigures) {
        self.send(Job::Snapshot { arms, run });
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            // A writer that died (a full disk) loses its files, not the run.
            let _ = tx.send(job);
        }
    }

    /// Writes what was handed over and stops the thread: after this no snapshot
    /// can overwrite the final result file.
    pub(super) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_snapshot(context: &Context, json: &std::path::Path, arms: &[ArmRecord], run: RunFigures) {
    let ctx = DocContext {
        scenario: &context.scenario,
        started_at: context.started_at,
        machine: context.machine.clone(),
        git: context.git.clone(),
    };
    let docs: Vec<_> = arms.iter().map(|a| ctx.document(a, run.clone(), vec![], false)).collect();
    let _ = finish::write_docs(json, &docs);
}
