//! The finish of a run, from plain data: its validity (rate shortfall, an
//! unreachable target, nothing measured), warnings (template failures, a
//! client-bound harness), threshold verdicts per arm, and the result documents.
//! It takes what was recorded ([`ArmRecord`]s and [`RunFigures`]), not the
//! engine, so results recorded elsewhere (merged shards) are finished the same way.

use std::time::SystemTime;

use super::{ArmSpec, CLIENT_BOUND_CPU_SHARE, LATE, MAX_RATE_SHORTFALL, WARN_LATE_SHARE};
use crate::client::{ClientKind, ErrorKind};
use crate::recorder::{IntervalSummary, Recorder};
use crate::result::{self, Machine, Metadata, ResultDoc, RunFigures, SeriesDoc, Status};
use crate::scenario::{Flow, Scenario};
use crate::series::SeriesKey;
use crate::target::TargetInfo;
use crate::thresholds::{Observed, Outcome, Threshold};

/// What one arm recorded.
#[derive(Clone)]
pub struct ArmRecord {
    pub spec: ArmSpec,
    pub http_client: ClientKind,
    /// What the target's `GET /health` said about itself.
    pub target: TargetInfo,
    /// The servers the arm's requests went to, when it crossed to the other
    /// arm's server in half of its pairs (empty: its own target only).
    pub servers: Vec<String>,
    pub recorder: Recorder,
    pub intervals: Vec<IntervalSummary>,
    /// Every request sent, warm-up included.
    pub requests: u64,
    pub warmup_requests: u64,
}

impl ArmRecord {
    pub fn new(spec: ArmSpec, http_client: ClientKind, target: TargetInfo) -> ArmRecord {
        ArmRecord {
            spec,
            http_client,
            target,
            servers: Vec::new(),
            recorder: Recorder::default(),
            intervals: Vec::new(),
            requests: 0,
            warmup_requests: 0,
        }
    }

    /// One record of what the threads of one run recorded of this arm (`parts`,
    /// at least one): series added, seconds added once over all of them (they
    /// share one start, so blocks and seconds line up as they are).
    pub fn sum(parts: &[&ArmRecord]) -> Result<ArmRecord, String> {
        let (first, rest) = parts.split_first().ok_or("no part recorded this arm")?;
        let mut out = (*first).clone();
        if rest.is_empty() {
            return Ok(out);
        }
        for p in rest {
            out.recorder.add(&p.recorder);
            out.requests += p.requests;
            out.warmup_requests += p.warmup_requests;
        }
        out.intervals = crate::merge::add_seconds(parts.iter().map(|p| p.intervals.as_slice()))?;
        Ok(out)
    }

    /// A record of the same arm with nothing recorded yet.
    pub fn empty(like: &ArmRecord) -> ArmRecord {
        ArmRecord {
            servers: like.servers.clone(),
            ..ArmRecord::new(like.spec.clone(), like.http_client, like.target.clone())
        }
    }
}

/// How the run ended, besides its figures.
pub struct Ending {
    pub interrupted: bool,
    /// Iterations stopped before a request, and the first failure seen.
    pub template_failures: u64,
    pub first_error: Option<String>,
}

/// What judging a run takes from its scenario and its set-up. A result document
/// carries all of it ([`Judging::of_doc`]), so parts merged from threads or
/// shards are judged exactly as a single run is.
#[derive(Debug, Clone)]
pub struct Judging {
    /// An open model (arrival rate): a rate shortfall makes the run invalid.
    pub open: bool,
    pub max_late_share: f64,
    /// Sending threads: the harness is client-bound above 80 % of each.
    pub threads: u32,
    pub thresholds: Vec<Threshold>,
}

impl Judging {
    pub fn of(scenario: &Scenario, threads: u32) -> Judging {
        Judging {
            open: scenario.load.executor.is_open(),
            max_late_share: scenario.load.max_late_share,
            threads: threads.max(1),
            thresholds: scenario.thresholds.clone(),
        }
    }

    /// From a result document: its load description and its thresholds' verdicts.
    pub fn of_doc(doc: &ResultDoc) -> Result<Judging, String> {
        let load = &doc.metadata.load;
        let executor = load["executor"].as_str().unwrap_or_default();
        Ok(Judging {
            open: matches!(executor, "constant-arrival-rate" | "ramping-arrival-rate"),
            max_late_share: load["max_late_share"].as_f64().unwrap_or(crate::scenario::DEFAULT_MAX_LATE_SHARE),
            threads: load["threads"].as_u64().unwrap_or(1).max(1) as u32,
            thresholds: doc.thresholds.iter().map(Threshold::from_verdict).collect::<Result<_, _>>()?,
        })
    }
}

/// Judges result documents of one run's arms (recorded here, or merged from
/// threads or shards): validity, warnings and thresholds, from the documents'
/// figures alone. Reasons a document already carries (a shard's) are kept.
pub fn judge(docs: Vec<ResultDoc>, judging: &Judging, ending: &Ending) -> Vec<ResultDoc> {
    let Some(first) = docs.first() else { return docs };
    let run = judge_run(first.run.clone(), ending, judging);
    let interrupted = ending.interrupted || docs.iter().any(|d| d.run.status == Status::Interrupted);
    docs.into_iter()
        .map(|mut doc| {
            let mut arm_run = RunFigures {
                requests: doc.run.requests,
                warmup_requests: doc.run.warmup_requests,
                invalid_reasons: doc.run.invalid_reasons.clone(),
                ..run.clone()
            };
            arm_run.invalid_reasons.extend(run.invalid_reasons.iter().cloned());
            arm_run.invalid_reasons.extend(arm_invalid_reasons(&doc, ending));
            dedup(&mut arm_run.invalid_reasons);
            doc.thresholds = thresholds(judging, &doc);
            // An interrupted run says so first: its other flaws (nothing measured yet) follow from it.
            arm_run.status = if interrupted {
                Status::Interrupted
            } else if arm_run.invalid_reasons.is_empty() {
                Status::Complete
            } else {
                Status::Invalid
            };
            doc.run = arm_run;
            doc
        })
        .collect()
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|r| seen.insert(r.clone()));
}

/// The run-wide validity and warnings.
fn judge_run(mut run: RunFigures, ending: &Ending, judging: &Judging) -> RunFigures {
    run.warnings.clear();
    let late_share =
        if run.started_iterations > 0 { run.late_sends as f64 / run.started_iterations as f64 } else { 0.0 };
    let mut reasons = Vec::new();
    if late_share > judging.max_late_share {
        reasons.push(format!(
            "{:.1} % of the sends left more than {} ms after their intended time (at most {:.0} % allowed): the \
             harness could not keep to its schedule, so it was part of what it measured",
            late_share * 100.0,
            LATE.as_millis(),
            judging.max_late_share * 100.0
        ));
    } else if late_share > WARN_LATE_SHARE {
        run.warnings.push(format!(
            "{:.1} % of the sends left more than {} ms after their intended time: the harness waited for a CPU \
             (it shares them with the target?); latencies count from the intended start, so the delay is \
             measured, and in an A/B it falls on both arms alike",
            late_share * 100.0,
            LATE.as_millis()
        ));
    }
    if !judging.open {
        run.warnings.push(
            "closed model: latencies are not corrected for coordinated omission (each virtual user waits for its \
             previous iteration, so a slow server is asked less often); the corrected figures equal the raw ones"
                .to_owned(),
        );
    }
    if let (Some(target), false) = (run.target_rate, ending.interrupted) {
        if target > 0.0 && run.achieved_rate < target * (1.0 - MAX_RATE_SHORTFALL) {
            reasons.push(format!(
                "achieved {:.1} iterations/s, {:.1} % below the target {:.1}/s ({} dropped, {} late sends): the harness or the target could not keep up",
                run.achieved_rate,
                100.0 * (1.0 - run.achieved_rate / target),
                target,
                run.dropped_iterations,
                run.late_sends
            ));
        }
    }
    if ending.template_failures > 0 {
        run.warnings.push(format!(
            "{} iterations stopped before a request (counted as errors of kind `template`){}",
            ending.template_failures,
            ending.first_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    let threads = f64::from(judging.threads);
    if run.client_cpu_share > CLIENT_BOUND_CPU_SHARE * threads {
        run.warnings.push(format!(
            "the harness used {:.0} % of a core{}: the run may be client-bound, so latencies may include the client's own queueing",
            run.client_cpu_share * 100.0,
            if judging.threads > 1 { format!(" ({} threads)", judging.threads) } else { String::new() }
        ));
    }
    run.invalid_reasons = reasons;
    run
}

/// Why one arm's figures cannot be used: its target unreachable throughout, or
/// nothing measured.
fn arm_invalid_reasons(doc: &ResultDoc, ending: &Ending) -> Vec<String> {
    let mut reasons = Vec::new();
    let all = doc.series.get(crate::series::ALL_TEXT);
    if let Some(all) = all {
        let connect = all.error_kinds.get(&ErrorKind::Connect).copied().unwrap_or(0);
        if connect == all.requests && connect > 0 {
            reasons.push(format!("target unreachable during the run: all {connect} requests failed to connect"));
        }
    }
    if all.map_or(0, |s| s.requests) == 0 {
        let why = ending.first_error.clone().map(|e| format!(" (first failure: {e})")).unwrap_or_default();
        reasons.push(format!("no request was measured{why}"));
    }
    reasons
}

/// The thresholds on one arm's series, from its document.
fn thresholds(judging: &Judging, doc: &ResultDoc) -> Vec<Outcome> {
    let empty = hdrhistogram::Histogram::<u64>::new(3).expect("a 3-digit histogram");
    judging
        .thresholds
        .iter()
        .map(|t| {
            let s = series_for_threshold(doc, &t.series);
            let corrected = s.and_then(|s| s.corrected.decode().ok());
            t.evaluate(&Observed {
                corrected: corrected.as_ref().unwrap_or(&empty),
                requests: s.map_or(0, |s| s.requests),
                errors: s.map_or(0, |s| s.errors),
                seconds: doc.run.measured_s,
            })
        })
        .collect()
}

fn load_description(scenario: &Scenario) -> serde_json::Value {
    let l = &scenario.load;
    let mut v = serde_json::json!({
        "executor": l.executor.name(),
        "warmup_s": l.warmup.as_secs_f64(),
        "duration_s": l.executor.duration().as_secs_f64(),
        "max_in_flight": l.max_in_flight,
        "timeout_s": l.timeout.as_secs_f64(),
        "flow": match scenario.flow { Flow::Sequence => "sequence", Flow::Mix => "mix" },
        "max_late_share": l.max_late_share,
    });
    l.executor.parameters(&mut v);
    if let Some(u) = &scenario.users {
        v["users"] = serde_json::json!({"count": u.count, "seed": u.seed, "pick": format!("{:?}", u.pick)});
    }
    v
}

/// What the result documents need besides the records.
pub struct DocContext<'a> {
    pub scenario: &'a Scenario,
    pub started_at: SystemTime,
    /// When the measured part began (shards are aligned on it).
    pub measure_start: SystemTime,
    pub machine: Machine,
    pub git: Option<String>,
    /// The part of the schedule this process sent.
    pub shard: crate::shard::Shard,
    pub threads: u32,
}

impl DocContext<'_> {
    /// One document per arm of what `parts` (threads of one run, each with its
    /// arms' records and its figures) recorded: the parts' records added in
    /// memory, each arm encoded once, the figures merged as parts that ran at once.
    pub fn documents(&self, parts: &[(&[ArmRecord], &RunFigures)], ended: bool) -> Result<Vec<ResultDoc>, String> {
        let Some(((first, figures), rest)) = parts.split_first() else { return Ok(Vec::new()) };
        let arms = (0..first.len())
            .map(|i| ArmRecord::sum(&parts.iter().map(|(arms, _)| &arms[i]).collect::<Vec<_>>()))
            .collect::<Result<Vec<_>, _>>()?;
        let run = match rest {
            [] => (*figures).clone(),
            _ => crate::merge::merge_run(
                &parts.iter().map(|p| p.1).collect::<Vec<_>>(),
                crate::merge::Timing::Concurrent,
            ),
        };
        Ok(arms.iter().map(|a| self.document(a, run.clone(), Vec::new(), ended)).collect())
    }

    /// The result document of one arm: `run` with the arm's own request counts.
    pub fn document(&self, arm: &ArmRecord, run: RunFigures, thresholds: Vec<Outcome>, ended: bool) -> ResultDoc {
        let rec = &arm.recorder;
        let mut load = load_description(self.scenario);
        load["http_client"] = match arm.http_client {
            crate::client::ClientKind::Hyper => "hyper",
            _ => "reqwest",
        }
        .into();
        load["threads"] = self.threads.into();
        ResultDoc {
            schema: result::SCHEMA.to_owned(),
            metadata: Metadata {
                scenario: self.scenario.name.clone(),
                scenario_file: self.scenario.file.display().to_string(),
                scenario_sha256: self.scenario.sha256.clone(),
                target: arm.spec.target.clone(),
                variant: arm.spec.label.clone(),
                git_revision: self.git.clone(),
                harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                target_kind: arm.target.kind,
                target_version: arm.target.version.clone(),
                servers: arm.servers.clone(),
                measurement: arm.target.measurement.clone(),
                anonymous_user_write: arm.target.anonymous_user_write,
                started_at: result::rfc3339(self.started_at),
                ended_at: ended.then(|| result::rfc3339(SystemTime::now())),
                measure_start_unix_ms: self
                    .measure_start
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64),
                shard: (!self.shard.is_whole()).then_some(self.shard),
                merged: None,
                load,
                machine: self.machine.clone(),
            },
            run: RunFigures { requests: arm.requests, warmup_requests: arm.warmup_requests, ..run },
            series: rec.series.iter().map(|(k, s)| (k.clone(), SeriesDoc::from_stats(s))).collect(),
            intervals: arm.intervals.clone(),
            thresholds,
            answers: None,
        }
    }
}

/// A threshold names `*`, a tag or a step, as k6's do; a tag wins over a step.
fn series_for_threshold<'a>(doc: &'a ResultDoc, name: &str) -> Option<&'a SeriesDoc> {
    if name == crate::series::ALL_TEXT {
        return doc.series.get(name);
    }
    doc.series.get(&SeriesKey::tag(name).to_string()).or_else(|| doc.series.get(&SeriesKey::step(name).to_string()))
}

/// Writes one document per arm: a result file for one arm, an A/B file for two.
pub fn write_docs(path: &std::path::Path, docs: &[ResultDoc]) -> std::io::Result<()> {
    match docs {
        [one] => one.write(path),
        many => result::AbDoc::new(many.to_vec()).write(path),
    }
}
