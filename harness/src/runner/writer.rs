//! The run's files, written on their own thread: encoding histograms (deflate,
//! base64) and writing JSON take milliseconds, and on the thread that sends and
//! receives they would delay sends and replies — the harness would disturb what
//! it measures. The engine hands over copies (an interval's histogram, a
//! snapshot of the records) and goes on. With several sending threads (parts of
//! one run) it adds their seconds together before logging them and merges their
//! snapshots, so the files are those of one run.

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
    /// One part's second of every series for the `.hlog`: (tag, histogram).
    Interval { start: Duration, histograms: Vec<(String, Histogram<u64>)> },
    /// One part's records as of now (the result file, status running).
    Snapshot { part: usize, arms: Vec<ArmRecord>, run: RunFigures },
}

/// The owned parts of a [`DocContext`], for the writer thread.
struct Context {
    scenario: Scenario,
    started_at: SystemTime,
    measure_start: SystemTime,
    machine: Machine,
    git: Option<String>,
    shard: crate::shard::Shard,
    threads: u32,
}

pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// What one sending thread hands the writer.
#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    part: usize,
}

/// Seconds and snapshots of the parts, held until every part has given its own.
struct Parts {
    count: usize,
    seconds: std::collections::BTreeMap<Duration, (usize, std::collections::BTreeMap<String, Histogram<u64>>)>,
    snapshots: Vec<Option<(Vec<ArmRecord>, RunFigures)>>,
}

impl Parts {
    /// Adds one part's second; returns the seconds every part has given, in order.
    fn second(
        &mut self,
        start: Duration,
        histograms: Vec<(String, Histogram<u64>)>,
    ) -> Vec<(Duration, std::collections::BTreeMap<String, Histogram<u64>>)> {
        let entry = self.seconds.entry(start).or_default();
        entry.0 += 1;
        for (tag, h) in histograms {
            match entry.1.get_mut(&tag) {
                Some(sum) => {
                    let _ = sum.add(&h);
                }
                None => {
                    entry.1.insert(tag, h);
                }
            }
        }
        let ready: Vec<Duration> =
            self.seconds.iter().filter(|(_, (n, _))| *n >= self.count).map(|(t, _)| *t).collect();
        ready.into_iter().filter_map(|t| self.seconds.remove(&t).map(|(_, h)| (t, h))).collect()
    }

    /// Every second still held (a part ended before giving it).
    fn rest(&mut self) -> Vec<(Duration, std::collections::BTreeMap<String, Histogram<u64>>)> {
        std::mem::take(&mut self.seconds).into_iter().map(|(t, (_, h))| (t, h)).collect()
    }
}

impl Writer {
    /// Creates the interval log (its header written at once) and starts the thread,
    /// which writes for `parts` sending threads.
    pub(super) fn start(files: &RunFiles, ctx: &DocContext<'_>, parts: usize) -> Result<Writer, String> {
        let hlog = files.hlog.clone();
        let mut file = std::fs::File::create(&hlog).map_err(|e| format!("{}: {e}", hlog.display()))?;
        let context = Context {
            scenario: ctx.scenario.clone(),
            started_at: ctx.started_at,
            measure_start: ctx.measure_start,
            machine: ctx.machine.clone(),
            git: ctx.git.clone(),
            shard: ctx.shard,
            threads: ctx.threads,
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
                let mut parts =
                    Parts { count: parts.max(1), seconds: Default::default(), snapshots: vec![None; parts.max(1)] };
                let mut log_seconds = |seconds: Vec<(Duration, std::collections::BTreeMap<String, Histogram<u64>>)>| {
                    for (start, histograms) in seconds {
                        for (tag, h) in histograms {
                            let _ = log.write_histogram(&h, start, Duration::from_secs(1), Tag::new(&tag));
                        }
                    }
                };
                for job in rx {
                    match job {
                        Job::Interval { start, histograms } => log_seconds(parts.second(start, histograms)),
                        Job::Snapshot { part, arms, run } => {
                            parts.snapshots[part] = Some((arms, run));
                            if parts.snapshots.iter().all(Option::is_some) {
                                write_snapshot(&context, &json, &parts.snapshots);
                            }
                        }
                    }
                }
                log_seconds(parts.rest());
            })
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        ready_rx.recv().map_err(|_| "the writer thread ended before it began".to_owned())??;
        Ok(Writer { jobs: Some(tx), thread: Some(thread) })
    }

    /// The handle of sending thread `part`.
    pub(super) fn handle(&self, part: usize) -> WriterHandle {
        WriterHandle { jobs: self.jobs.clone().expect("the writer runs until finished"), part }
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

impl WriterHandle {
    /// One second (starting `start` after the run's start) of every series.
    pub(super) fn seconds(&self, start: Duration, histograms: Vec<(String, Histogram<u64>)>) {
        self.send(Job::Interval { start, histograms });
    }

    pub(super) fn snapshot(&self, arms: Vec<ArmRecord>, run: RunFigures) {
        self.send(Job::Snapshot { part: self.part, arms, run });
    }

    fn send(&self, job: Job) {
        // A writer that died (a full disk) loses its files, not the run.
        let _ = self.jobs.send(job);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_snapshot(context: &Context, json: &std::path::Path, parts: &[Option<(Vec<ArmRecord>, RunFigures)>]) {
    let ctx = DocContext {
        scenario: &context.scenario,
        started_at: context.started_at,
        measure_start: context.measure_start,
        machine: context.machine.clone(),
        git: context.git.clone(),
        shard: context.shard,
        threads: context.threads,
    };
    let parts: Vec<(&[ArmRecord], &RunFigures)> = parts.iter().flatten().map(|(a, r)| (a.as_slice(), r)).collect();
    if let Ok(docs) = ctx.documents(&parts, false) {
        let _ = finish::write_docs(json, &docs);
    }
}
