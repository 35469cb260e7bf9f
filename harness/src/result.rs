//! The result file (ARCHITECTURE.md, "Result file schema"): one JSON document per run, histograms as
//! HdrHistogram V2 compressed and base64, rewritten atomically while the run goes
//! on; beside it an `.hlog` interval log for the standard HdrHistogram tools.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::ErrorKind;
use crate::recorder::{IntervalSummary, Ops, SeriesStats};
use crate::series::{SeriesKey, ALL_TEXT};
use crate::thresholds::Outcome;

pub const SCHEMA: &str = "cache-bench/result/v1";

pub use crate::recorder::EncodedHistogram;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub min: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            min: ms(h.min()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDoc {
    pub requests: u64,
    pub errors: u64,
    pub check_failures: u64,
    /// Read-backs that did not show the write they followed.
    #[serde(default)]
    pub stale_reads: u64,
    pub status: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    pub bytes: u64,
    pub cache: crate::recorder::CacheOutcomes,
    /// Milliseconds, from the histograms below (for people; tools decode these).
    pub corrected_ms: Percentiles,
    pub raw_ms: Percentiles,
    /// µs from the intended start (coordinated-omission corrected).
    pub corrected: EncodedHistogram,
    /// µs from the actual send.
    pub raw: EncodedHistogram,
    /// Server-Timing entry → µs.
    pub server_timing: BTreeMap<String, EncodedHistogram>,
    /// The same in milliseconds, for people and scripts (`bench/profiles`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_timing_ms: BTreeMap<String, Percentiles>,
    /// The corrected latencies by time block, for the block bootstrap (absent in
    /// per-cache-outcome series and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlocksDoc>,
    /// Each Server-Timing entry's µs by time block (successes only), for the
    /// block bootstrap of the server-side series.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_timing_blocks: BTreeMap<String, BlocksDoc>,
    /// The target's backend operations (`x-ops`) over the successful responses,
    /// when it reports them (comparable series only).
    #[serde(default, skip_serializing_if = "Ops::is_empty")]
    pub ops: Ops,
}

/// A series' corrected latencies per time block of intended start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksDoc {
    /// Length of a block; block 0 begins with the measured part.
    pub block_ms: u32,
    /// `[block, µs, count]`, by block then µs.
    pub counts: Vec<[u64; 3]>,
}

impl BlocksDoc {
    fn of(blocks: &BTreeMap<u32, BTreeMap<u64, u64>>) -> BlocksDoc {
        BlocksDoc {
            block_ms: crate::recorder::BLOCK_MS,
            counts: blocks
                .iter()
                .flat_map(|(b, values)| values.iter().map(move |(us, c)| [u64::from(*b), *us, *c]))
                .collect(),
        }
    }

    /// In milliseconds, for the bootstrap ([`crate::recorder::FAILED_US`] becomes
    /// [`crate::stats::FAILED_MS`]).
    pub fn to_blocks(&self) -> crate::stats::Blocks {
        let mut out = crate::stats::Blocks { unit_ms: self.block_ms, blocks: Vec::new() };
        for [b, us, c] in &self.counts {
            let b = u32::try_from(*b).unwrap_or(u32::MAX);
            if out.blocks.last().is_none_or(|(last, _)| *last != b) {
                out.blocks.push((b, Vec::new()));
            }
            out.blocks.last_mut().expect("pushed above").1.push((*us as f64 / 1000.0, *c));
        }
        out
    }
}

impl SeriesDoc {
    /// Every time-block record it holds: all requests', then each server entry's.
    pub fn blocks_mut(&mut self) -> impl Iterator<Item = &mut BlocksDoc> {
        self.blocks.iter_mut().chain(self.server_timing_blocks.values_mut())
    }

    pub fn from_stats(s: &SeriesStats) -> SeriesDoc {
        SeriesDoc {
            requests: s.requests,
            errors: s.errors,
            check_failures: s.check_failures,
            stale_reads: s.stale_reads,
            status: s.status.clone(),
            error_kinds: s.error_kinds.clone(),
            bytes: s.bytes,
            cache: s.cache.clone(),
            corrected_ms: Percentiles::of(&s.corrected),
            raw_ms: Percentiles::of(&s.raw),
            corrected: EncodedHistogram::encode(&s.corrected),
            raw: EncodedHistogram::encode(&s.raw),
            server_timing: s.server_timing.iter().map(|(k, h)| (k.clone(), EncodedHistogram::encode(h))).collect(),
            server_timing_ms: s.server_timing.iter().map(|(k, h)| (k.clone(), Percentiles::of(h))).collect(),
            blocks: (!s.blocks.is_empty()).then(|| BlocksDoc::of(&s.blocks)),
            server_timing_blocks: s.server_blocks.iter().map(|(k, b)| (k.clone(), BlocksDoc::of(b))).collect(),
            ops: s.ops.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
    pub cpu_model: Option<String>,
}

impl Machine {
    pub fn current() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        Machine {
            hostname: read("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: read("/proc/cpuinfo").and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            }),
        }
    }
}

/// What a result was measured against, as its file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// This project's worker (it answered `GET /health` in its own shape). Files
    /// written before the kind was recorded were all made against it.
    #[default]
    BenchWorker,
    /// Any other HTTP API: no bench protocol.
    Http,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BenchWorker => "bench-worker",
            TargetKind::Http => "http",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub scenario: String,
    pub scenario_file: String,
    pub scenario_sha256: String,
    pub target: String,
    pub variant: Option<String>,
    pub git_revision: Option<String>,
    pub harness_version: String,
    /// What the target is (`bench-worker`: this project's worker; `http`: any
    /// other API). Absent in files from before it was recorded: the worker.
    #[serde(default)]
    pub target_kind: TargetKind,
    /// The version the target said it was (its health answer), if it said.
    #[serde(default, alias = "worker_version", skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// The servers this arm's requests went to, balanced with the other arm's
    /// (`harness ab`/`bench` with two servers); empty when only `target`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// `measured`, or `modelled: <profile>` when the target added a latency
    /// profile's delays (its `GET /health` says which): such a result is never
    /// compared with a measured one.
    #[serde(default)]
    pub measurement: Measurement,
    /// Whether the target wrote an anonymous-user record on every anonymous
    /// request, as the source API did (its `GET /health` says; `None`: not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_user_write: Option<bool>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: Option<String>,
    /// When the measured part began, in milliseconds since the Unix epoch: shards
    /// of one run are aligned on it (`harness merge`). Absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_start_unix_ms: Option<u64>,
    /// The part of the schedule this result sent (`--shard I/N`); absent when it
    /// sent the whole schedule. A merged result has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// The shards a merged result was made of, and which were missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergedFrom>,
    pub load: serde_json::Value,
    pub machine: Machine,
}

/// What a merged result was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedFrom {
    /// Shards out of how many.
    pub shards: Vec<crate::shard::Shard>,
    pub count: u32,
    /// Shards of the run that were not given (merged with `--allow-missing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// The machines the shards ran on.
    pub machines: Vec<String>,
    /// How far apart the shards' measured parts began (ms): beyond a second, the
    /// merged schedule is the requested rate only where they overlap.
    #[serde(default)]
    pub start_spread_ms: u64,
}

/// Whether a result measures the target as it is or under a modelled latency
/// profile. Written as `measured` or `modelled: <profile>` wherever it appears.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Measurement {
    #[default]
    Measured,
    Modelled(String),
}

impl Measurement {
    pub fn is_modelled(&self) -> bool {
        matches!(self, Measurement::Modelled(_))
    }

    /// The profile's name; `None` for a measurement.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Measurement::Measured => None,
            Measurement::Modelled(p) => Some(p),
        }
    }

    /// `" (modelled: p)"` for titles; empty for a measurement.
    pub fn suffix(&self) -> String {
        match self {
            Measurement::Measured => String::new(),
            Measurement::Modelled(_) => format!(" ({self})"),
        }
    }
}

impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Measurement::Measured => f.write_str("measured"),
            Measurement::Modelled(p) => write!(f, "modelled: {p}"),
        }
    }
}

impl From<Measurement> for String {
    fn from(m: Measurement) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Measurement {
    type Error = String;
    fn try_from(s: String) -> Result<Measurement, String> {
        match s.strip_prefix("modelled:") {
            _ if s == "measured" => Ok(Measurement::Measured),
            Some(p) if !p.trim().is_empty() => Ok(Measurement::Modelled(p.trim().to_owned())),
            _ => Err(format!("measurement {s:?}: expected \"measured\" or \"modelled: <profile>\"")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Complete,
    Interrupted,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub status: Status,
    /// Why the run is invalid (empty when it is not).
    pub invalid_reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub warmup_s: f64,
    /// Length of the measured part as run.
    pub measured_s: f64,
    /// Open model: iterations per second the schedule asked for in the measured part.
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub scheduled_iterations: u64,
    pub started_iterations: u64,
    pub dropped_iterations: u64,
    /// Sends more than 1 ms behind their intended time.
    pub late_sends: u64,
    pub requests: u64,
    pub warmup_requests: u64,
    /// Share of one core the harness used (user + system) over the run.
    pub client_cpu_share: f64,
    pub client_cpu_us_per_request: f64,
    pub client_max_rss_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultDoc {
    pub schema: String,
    pub metadata: Metadata,
    pub run: RunFigures,
    pub series: BTreeMap<String, SeriesDoc>,
    pub intervals: Vec<IntervalSummary>,
    pub thresholds: Vec<Outcome>,
    /// An A/B's pairs: how often the two arms answered differently (both arms'
    /// documents carry the same). Absent in one-arm runs and older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<crate::answers::AnswersDoc>,
}

impl ResultDoc {
    /// Reads a result file. One still marked `running` is the last periodic save of
    /// a run whose process never finished it (killed, crashed): it is read as
    /// invalid, with the reason first ([`ResultDoc::settle_incomplete`]).
    pub fn read(path: &Path) -> Result<ResultDoc, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut doc: ResultDoc =
            serde_json::from_str(&text).map_err(|e| format!("{}: not a result file: {e}", path.display()))?;
        if doc.schema != SCHEMA {
            return Err(format!("{}: schema {:?}, expected {SCHEMA:?}", path.display(), doc.schema));
        }
        doc.settle_incomplete();
        Ok(doc)
    }

    /// A document still `running` when read is a part of a run: marked invalid,
    /// saying where it stopped and why it does not count.
    pub fn settle_incomplete(&mut self) {
        if self.run.status != Status::Running {
            return;
        }
        let planned = self.metadata.load["duration_s"].as_f64();
        let last = self.intervals.iter().map(|i| i.t).max();
        let reason = format!(
            "incomplete: this run never finished (its process was killed or crashed; the file is its last periodic \
             save). It stopped after {:.0} s of measured traffic{}{} and {} requests. Part of a run is not the run \
             its scenario describes, so its figures count for nothing: no threshold, comparison or claim is \
             judged on them.",
            self.run.measured_s,
            planned.map(|p| format!(" of the {p:.0} s planned")).unwrap_or_default(),
            last.map(|t| format!(" (last complete interval ending at {t} s)")).unwrap_or_default(),
            self.run.requests,
        );
        self.run.status = Status::Invalid;
        self.run.invalid_reasons.insert(0, reason);
    }

    /// Whether [`ResultDoc::settle_incomplete`] marked this document.
    pub fn is_incomplete(&self) -> bool {
        self.run.invalid_reasons.first().is_some_and(|r| r.starts_with("incomplete:"))
    }

    /// Writes the document atomically: a reader (or a crash) sees the previous
    /// complete version or this one, never half of one.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_json_atomically(path, self)
    }

    /// The series named `key`, if the run recorded a request in it.
    pub fn series_of(&self, key: &SeriesKey) -> Option<&SeriesDoc> {
        self.series.get(&key.to_string())
    }

    /// Every request of the run.
    pub fn all(&self) -> Option<&SeriesDoc> {
        self.series.get(ALL_TEXT)
    }

    /// The series with their names parsed (a name no [`SeriesKey`] reads is skipped).
    pub fn keyed_series(&self) -> impl Iterator<Item = (SeriesKey, &SeriesDoc)> {
        self.series.iter().filter_map(|(k, s)| Some((SeriesKey::parse(k)?, s)))
    }
}

pub const AB_SCHEMA: &str = "cache-bench/ab/v1";

/// The result of an interleaved A/B run: one [`ResultDoc`] per arm, measured under
/// one schedule whose iterations alternate between the arms in pairs of random order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbDoc {
    pub schema: String,
    pub interleaving: String,
    pub arms: Vec<ResultDoc>,
}

impl AbDoc {
    pub fn new(arms: Vec<ResultDoc>) -> AbDoc {
        AbDoc {
            schema: AB_SCHEMA.to_owned(),
            interleaving: "pairs in random order (AB or BA), one schedule".to_owned(),
            arms,
        }
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_json_atomically(path, self)
    }
}

/// A result file of either kind, as read back.
pub enum AnyResult {
    Single(Box<ResultDoc>),
    Ab(AbDoc),
}

impl AnyResult {
    pub fn read(path: &Path) -> Result<AnyResult, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let parse_err = |e: serde_json::Error| format!("{}: not a result file: {e}", path.display());
        match probe.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {
                let mut doc: ResultDoc = serde_json::from_value(probe).map_err(parse_err)?;
                doc.settle_incomplete();
                Ok(AnyResult::Single(Box::new(doc)))
            }
            Some(AB_SCHEMA) => Ok(AnyResult::Ab(serde_json::from_value(probe).map_err(parse_err)?)),
            other => Err(format!("{}: schema {other:?}; expected {SCHEMA:?} or {AB_SCHEMA:?}", path.display())),
        }
    }
}

fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        f.into_inner().map_err(|e| e.into_error())?.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// Paths of a run's files in `out_dir`.
pub struct RunFiles {
    pub json: PathBuf,
    pub hlog: PathBuf,
}

impl RunFiles {
    pub fn new(out_dir: &Path, stem: &str) -> RunFiles {
        RunFiles { json: out_dir.join(format!("{stem}.json")), hlog: out_dir.join(format!("{stem}.hlog")) }
    }
}

/// The current git revision of the working directory, if any.
pub fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn histogram_round_trip() {
        let mut h = crate::recorder::new_histogram();
        for v in [1u64, 17, 5_000, 1_000_000, 59_000_000] {
            crate::recorder::record(&mut h, v);
        }
        let back = EncodedHistogram::encode(&h).decode().unwrap();
        assert_eq!(back, h);
        assert!(EncodedHistogram("!!".into()).decode().is_err());
    }
}
