//! One arm's results as one result, in two ways:
//! - [`merge`]: successive runs (the stages of a `--until-decided` run, cold
//!   starts): counts and histograms add up, time blocks and intervals of a later
//!   run follow the earlier ones (so the block bootstrap never joins two runs into
//!   one block), validity is the worst of them;
//! - [`merge_concurrent`]: parts of one run that ran at the same time (threads,
//!   shards on several machines): counts and histograms add up (HDR addition is
//!   lossless), time blocks and seconds are aligned on the wall clock, rates add.
//!   The result is judged afterwards as a single run would be (`runner::finish`).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::recorder::add_counts;
use crate::result::{BlocksDoc, EncodedHistogram, MergedFrom, ResultDoc, RunFigures, SeriesDoc, Status};
use crate::shard::Shard;

fn add_histograms(a: &EncodedHistogram, b: &EncodedHistogram) -> Result<(EncodedHistogram, Histogram<u64>), String> {
    let mut h = a.decode()?;
    // A decoded histogram covers only the range its values needed; the other's
    // may reach further.
    h.auto(true);
    h.add(b.decode()?).map_err(|e| format!("histograms do not add: {e:?}"))?;
    Ok((EncodedHistogram::encode(&h), h))
}

/// The first block index after every block of `doc`.
fn block_end(doc: &ResultDoc) -> u64 {
    doc.series
        .values()
        .filter_map(|s| s.blocks.as_ref())
        .flat_map(|b| b.counts.iter().map(|c| c[0] + 1))
        .max()
        .unwrap_or(0)
}

fn merge_blocks(a: Option<&BlocksDoc>, b: Option<&BlocksDoc>, offset: u64) -> Option<BlocksDoc> {
    match (a, b) {
        (Some(a), Some(b)) if a.block_ms == b.block_ms => {
            let mut counts = a.counts.clone();
            counts.extend(b.counts.iter().map(|[i, us, n]| [i + offset, *us, *n]));
            Some(BlocksDoc { block_ms: a.block_ms, counts })
        }
        (Some(a), None) => Some(a.clone()),
        (None, Some(b)) => Some(BlocksDoc {
            block_ms: b.block_ms,
            counts: b.counts.iter().map(|[i, us, n]| [i + offset, *us, *n]).collect(),
        }),
        // Blocks of different lengths cannot be resampled together.
        _ => None,
    }
}

/// Each Server-Timing entry's blocks of `a` and `b` (`b`'s moved `offset` later).
fn merge_entry_blocks(
    a: &BTreeMap<String, BlocksDoc>,
    b: &BTreeMap<String, BlocksDoc>,
    offset: u64,
) -> BTreeMap<String, BlocksDoc> {
    let entries: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    entries.into_iter().filter_map(|e| Some((e.clone(), merge_blocks(a.get(e), b.get(e), offset)?))).collect()
}

/// `s` with every block record moved `by` blocks later.
fn shift_series(s: &mut SeriesDoc, by: u64) {
    for b in s.blocks_mut() {
        for c in &mut b.counts {
            c[0] += by;
        }
    }
}

fn merge_series(a: &SeriesDoc, b: &SeriesDoc, offset: u64) -> Result<SeriesDoc, String> {
    let (corrected, ch) = add_histograms(&a.corrected, &b.corrected)?;
    let (raw, rh) = add_histograms(&a.raw, &b.raw)?;
    let mut server_timing = a.server_timing.clone();
    for (entry, h) in &b.server_timing {
        let merged = match server_timing.get(entry) {
            Some(mine) => add_histograms(mine, h)?.0,
            None => h.clone(),
        };
        server_timing.insert(entry.clone(), merged);
    }
    let server_timing_ms = server_timing
        .iter()
        .map(|(k, h)| Ok((k.clone(), crate::result::Percentiles::of(&h.decode()?))))
        .collect::<Result<_, String>>()?;
    let mut out = SeriesDoc {
        requests: a.requests + b.requests,
        errors: a.errors + b.errors,
        check_failures: a.check_failures + b.check_failures,
        stale_reads: a.stale_reads + b.stale_reads,
        bytes: a.bytes + b.bytes,
        corrected_ms: crate::result::Percentiles::of(&ch),
        raw_ms: crate::result::Percentiles::of(&rh),
        corrected,
        raw,
        server_timing,
        server_timing_ms,
        blocks: merge_blocks(a.blocks.as_ref(), b.blocks.as_ref(), offset),
        server_timing_blocks: merge_entry_blocks(&a.server_timing_blocks, &b.server_timing_blocks, offset),
        ..a.clone()
    };
    add_counts(&mut out.status, &b.status);
    add_counts(&mut out.error_kinds, &b.error_kinds);
    for (layer, outcomes) in &b.cache {
        add_counts(out.cache.entry(layer.clone()).or_default(), outcomes);
    }
    out.ops.add(&b.ops);
    Ok(out)
}

/// Results that may be merged: one scenario file, one kind of measurement.
fn check_compatible(a: &ResultDoc, b: &ResultDoc) -> Result<(), String> {
    if a.metadata.scenario_sha256 != b.metadata.scenario_sha256 {
        return Err(format!(
            "results of different scenario files cannot be merged ({} and {}: their contents differ)",
            a.metadata.scenario_file, b.metadata.scenario_file
        ));
    }
    if a.metadata.measurement != b.metadata.measurement {
        return Err(format!("a {} and a {} result cannot be merged", a.metadata.measurement, b.metadata.measurement));
    }
    Ok(())
}

/// `later` appended to `earlier` (one arm, the same scenario, run after it).
pub fn merge(earlier: &ResultDoc, later: &ResultDoc) -> Result<ResultDoc, String> {
    merge_after(earlier, later, block_end(earlier))
}

/// The arms of a later stage appended to the same arms of the earlier ones
/// (an interleaved run, stage by stage): every arm's later blocks move by the
/// same offset, past the last block of any arm, so the block a joint bootstrap
/// draws is the same stretch of time in every arm.
pub fn merge_arms(earlier: &[ResultDoc], later: &[ResultDoc]) -> Result<Vec<ResultDoc>, String> {
    let offset = earlier.iter().map(block_end).max().unwrap_or(0);
    earlier.iter().zip(later).map(|(e, l)| merge_after(e, l, offset)).collect()
}

fn merge_after(earlier: &ResultDoc, later: &ResultDoc, offset: u64) -> Result<ResultDoc, String> {
    check_compatible(earlier, later)?;
    let mut series = earlier.series.clone();
    for (key, b) in &later.series {
        let merged = match series.get(key) {
            Some(a) => merge_series(a, b, offset)?,
            None => {
                let mut s = b.clone();
                shift_series(&mut s, offset);
                s
            }
        };
        series.insert(key.clone(), merged);
    }
    let t_offset = earlier.intervals.iter().map(|i| i.t).max().unwrap_or(0);
    let mut intervals = earlier.intervals.clone();
    intervals
        .extend(later.intervals.iter().map(|i| crate::recorder::IntervalSummary { t: i.t + t_offset, ..i.clone() }));
    let mut thresholds = earlier.thresholds.clone();
    thresholds.extend(later.thresholds.iter().cloned());
    let mut metadata = earlier.metadata.clone();
    metadata.ended_at = later.metadata.ended_at.clone();
    Ok(ResultDoc {
        schema: earlier.schema.clone(),
        metadata,
        run: merge_run(&[&earlier.run, &later.run], Timing::Sequential),
        series,
        intervals,
        thresholds,
        answers: crate::answers::AnswersDoc::sum([earlier.answers.as_ref(), later.answers.as_ref()]),
    })
}

/// `doc` with its time blocks moved `blocks` later and its seconds `seconds` later.
fn shifted(doc: &ResultDoc, blocks: u64, seconds: u64) -> ResultDoc {
    let mut out = doc.clone();
    for s in out.series.values_mut() {
        shift_series(s, blocks);
    }
    for i in &mut out.intervals {
        i.t += seconds;
    }
    out
}

/// Counts of one block and value given twice (two shards' share of one block)
/// become one, in the order the bootstrap reads them (by block, then value).
fn combine_blocks(doc: &mut ResultDoc) {
    for b in doc.series.values_mut().flat_map(SeriesDoc::blocks_mut) {
        let mut sums: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for [i, us, n] in &b.counts {
            *sums.entry((*i, *us)).or_insert(0) += n;
        }
        b.counts = sums.into_iter().map(|((i, us), n)| [i, us, n]).collect();
    }
}

/// The seconds of every part, summed per second and series: counts add, the
/// percentiles come from the added histograms (or, for older files without
/// them, the most any part saw, marked by the absence of a histogram).
fn add_intervals(parts: &[ResultDoc]) -> Result<Vec<crate::recorder::IntervalSummary>, String> {
    add_seconds(parts.iter().map(|p| p.intervals.as_slice()))
}

/// Seconds of parts that ran at once, aligned: each second's counts and
/// histograms added, its percentiles recomputed from the sum.
pub(crate) fn add_seconds<'a>(
    parts: impl Iterator<Item = &'a [crate::recorder::IntervalSummary]>,
) -> Result<Vec<crate::recorder::IntervalSummary>, String> {
    let mut by_second: BTreeMap<(u64, String), crate::recorder::IntervalSummary> = BTreeMap::new();
    for part in parts {
        for i in part {
            let key = (i.t, i.series.clone());
            let Some(into) = by_second.get_mut(&key) else {
                by_second.insert(key, i.clone());
                continue;
            };
            into.requests += i.requests;
            into.errors += i.errors;
            for (layer, outcomes) in &i.cache {
                add_counts(into.cache.entry(layer.clone()).or_default(), outcomes);
            }
            match (&into.histogram, &i.histogram) {
                (Some(a), Some(b)) => {
                    let (encoded, h) = add_histograms(a, b)?;
                    let ms = |us: u64| us as f64 / 1000.0;
                    into.p50_ms = ms(h.value_at_quantile(0.5));
                    into.p90_ms = ms(h.value_at_quantile(0.9));
                    into.p99_ms = ms(h.value_at_quantile(0.99));
                    into.max_ms = ms(h.max());
                    into.histogram = Some(encoded);
                }
                _ => {
                    into.p50_ms = into.p50_ms.max(i.p50_ms);
                    into.p90_ms = into.p90_ms.max(i.p90_ms);
                    into.p99_ms = into.p99_ms.max(i.p99_ms);
                    into.max_ms = into.max_ms.max(i.max_ms);
                    into.histogram = None;
                }
            }
        }
    }
    Ok(by_second.into_values().collect())
}

/// How the parts of a merge shared time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    /// One after the other (stages of one run, cold starts): times add, the
    /// target rate is the first's, the worst status and every reason stand.
    Sequential,
    /// At the same time (threads, shards): the measured time is the longest
    /// part's, so rates add; status and reasons are left to the judging.
    Concurrent,
}

/// The run figures of `parts` as one: counts add, times as `timing` says. CPU
/// is each part's own machine's: the largest share, and the CPU per request
/// over all requests.
pub(crate) fn merge_run(parts: &[&RunFigures], timing: Timing) -> RunFigures {
    let sum = |f: fn(&RunFigures) -> u64| parts.iter().map(|p| f(p)).sum::<u64>();
    let max = |f: fn(&RunFigures) -> f64| parts.iter().map(|p| f(p)).fold(0.0, f64::max);
    let time = |f: fn(&RunFigures) -> f64| match timing {
        Timing::Sequential => parts.iter().map(|p| f(p)).sum(),
        Timing::Concurrent => max(f),
    };
    let measured_s = time(|r| r.measured_s);
    let started = sum(|r| r.started_iterations);
    let requests = sum(|r| r.requests);
    let cpu_us: f64 = parts.iter().map(|p| p.client_cpu_us_per_request * p.requests as f64).sum();
    let (status, invalid_reasons, warnings, target_rate) = match timing {
        Timing::Sequential => {
            let mut warnings: Vec<String> = Vec::new();
            for w in parts.iter().flat_map(|p| &p.warnings) {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            let status = parts.iter().map(|p| p.status).max_by_key(|s| severity(*s)).unwrap_or(Status::Complete);
            let reasons = parts.iter().flat_map(|p| p.invalid_reasons.iter().cloned()).collect();
            (status, reasons, warnings, parts.first().and_then(|p| p.target_rate))
        }
        Timing::Concurrent => {
            (Status::Running, Vec::new(), Vec::new(), parts.iter().map(|p| p.target_rate).sum::<Option<f64>>())
        }
    };
    RunFigures {
        status,
        invalid_reasons,
        warnings,
        warmup_s: time(|r| r.warmup_s),
        measured_s,
        target_rate,
        achieved_rate: if measured_s > 0.0 { started as f64 / measured_s } else { 0.0 },
        scheduled_iterations: sum(|r| r.scheduled_iterations),
        started_iterations: started,
        dropped_iterations: sum(|r| r.dropped_iterations),
        late_sends: sum(|r| r.late_sends),
        requests,
        warmup_requests: sum(|r| r.warmup_requests),
        client_cpu_share: max(|r| r.client_cpu_share),
        client_cpu_us_per_request: if requests > 0 { cpu_us / requests as f64 } else { 0.0 },
        client_max_rss_kib: parts.iter().map(|p| p.client_max_rss_kib).max().unwrap_or(0),
    }
}

/// How bad a status is: the worse of two parts' stands for both.
fn severity(s: Status) -> u8 {
    match s {
        Status::Complete => 0,
        Status::Running => 1,
        Status::Invalid => 2,
        Status::Interrupted => 3,
    }
}

/// One arm's parts that ran at the same time (threads of one process, shards on
/// several machines) as one result, not yet judged: its status is `running` and
/// its reasons are the parts' own, each prefixed with `label(i)`, until
/// `runner::finish::judge` judges it as a single run.
pub fn merge_concurrent(parts: &[ResultDoc], label: &dyn Fn(usize) -> String) -> Result<ResultDoc, String> {
    let first = parts.first().ok_or("nothing to merge")?;
    for p in &parts[1..] {
        check_compatible(first, p)?;
    }
    let base = parts.iter().filter_map(|p| p.metadata.measure_start_unix_ms).min();
    let aligned: Vec<ResultDoc> = parts
        .iter()
        .map(|p| {
            let offset_ms = match (p.metadata.measure_start_unix_ms, base) {
                (Some(t), Some(b)) => t - b,
                _ => 0,
            };
            let block_ms = u64::from(crate::recorder::BLOCK_MS);
            shifted(p, (offset_ms + block_ms / 2) / block_ms, (offset_ms + 500) / 1000)
        })
        .collect();
    let mut series = aligned[0].series.clone();
    for part in &aligned[1..] {
        for (key, b) in &part.series {
            let merged = match series.get(key) {
                Some(a) => merge_series(a, b, 0)?,
                None => b.clone(),
            };
            series.insert(key.clone(), merged);
        }
    }
    let mut run = merge_run(&aligned.iter().map(|d| &d.run).collect::<Vec<_>>(), Timing::Concurrent);
    for (i, p) in parts.iter().enumerate() {
        run.invalid_reasons.extend(p.run.invalid_reasons.iter().map(|r| format!("{}: {r}", label(i))));
        if p.run.status == Status::Interrupted {
            run.status = Status::Interrupted;
        }
    }
    let mut metadata = first.metadata.clone();
    metadata.started_at = parts.iter().map(|p| p.metadata.started_at.clone()).min().unwrap_or_default();
    metadata.ended_at = parts.iter().map(|p| p.metadata.ended_at.clone()).max().flatten();
    metadata.measure_start_unix_ms = base;
    metadata.shard = None;
    for p in &parts[1..] {
        for s in &p.metadata.servers {
            if !metadata.servers.contains(s) {
                metadata.servers.push(s.clone());
            }
        }
    }
    let mut doc = ResultDoc {
        schema: first.schema.clone(),
        metadata,
        run,
        series,
        intervals: add_intervals(&aligned)?,
        thresholds: first.thresholds.clone(),
        answers: crate::answers::AnswersDoc::sum(parts.iter().map(|p| p.answers.as_ref())),
    };
    combine_blocks(&mut doc);
    Ok(doc)
}

/// One result file of a sharded run: its name (for messages) and its documents,
/// one per arm.
pub struct ShardFile {
    pub name: String,
    pub arms: Vec<ResultDoc>,
}

/// The shards of one run (`--shard I/N`, one file each) as the run's documents,
/// one per arm, not yet judged. Refused: a file that is no shard, shards of
/// different runs (scenario, count, arms), a shard given twice (overlapping), and
/// missing shards unless `allow_missing` (the result then names them).
pub fn merge_shards(files: &[ShardFile], allow_missing: bool) -> Result<Vec<ResultDoc>, String> {
    let first = files.first().ok_or("no result files to merge")?;
    let shard_of = |f: &ShardFile| {
        f.arms.first().and_then(|d| d.metadata.shard).ok_or_else(|| {
            format!(
                "{}: not a shard (it was run without --shard); `harness merge` joins the shards of one run, \
                 each run with --shard I/N",
                f.name
            )
        })
    };
    let count = shard_of(first)?.count;
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for f in files {
        let shard = shard_of(f)?;
        if shard.count != count {
            return Err(format!(
                "{} is shard {shard}, {} is shard {}: shards of one run share N",
                f.name,
                first.name,
                shard_of(first)?
            ));
        }
        if f.arms.len() != first.arms.len() {
            return Err(format!("{} and {}: an A/B result and a single run cannot be merged", first.name, f.name));
        }
        let labels = |d: &ShardFile| d.arms.iter().map(|a| a.metadata.variant.clone()).collect::<Vec<_>>();
        if labels(f) != labels(first) {
            return Err(format!(
                "{} and {}: their arms differ ({:?} and {:?})",
                first.name,
                f.name,
                labels(first),
                labels(f)
            ));
        }
        if let Some(other) = seen.insert(shard.index, &f.name) {
            return Err(format!(
                "shard {shard} is given twice ({other} and {}): overlapping shards would count its requests twice",
                f.name
            ));
        }
    }
    let missing: Vec<u32> = (0..count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() && !allow_missing {
        let names: Vec<String> = missing.iter().map(|i| format!("{i}/{count}")).collect();
        return Err(format!(
            "shard{} {} of the run {} missing: the merged result would hold only part of the schedule; give every \
             shard's result, or --allow-missing to merge these (the result then says which are missing)",
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            if names.len() > 1 { "are" } else { "is" }
        ));
    }
    let shards: Vec<Shard> = files.iter().map(shard_of).collect::<Result<_, _>>()?;
    let label = |i: usize| format!("shard {}", shards[i]);
    let mut machines: Vec<String> = Vec::new();
    for f in files {
        let host = f.arms[0].metadata.machine.hostname.clone();
        if !machines.contains(&host) {
            machines.push(host);
        }
    }
    let starts: Vec<u64> = files.iter().filter_map(|f| f.arms[0].metadata.measure_start_unix_ms).collect();
    let start_spread_ms = starts.iter().max().zip(starts.iter().min()).map_or(0, |(hi, lo)| hi - lo);
    let mut sorted = shards.clone();
    sorted.sort();
    let from = MergedFrom { shards: sorted, count, missing, machines, start_spread_ms };
    (0..first.arms.len())
        .map(|arm| {
            let parts: Vec<ResultDoc> = files.iter().map(|f| f.arms[arm].clone()).collect();
            let mut doc = merge_concurrent(&parts, &label)?;
            doc.metadata.merged = Some(from.clone());
            Ok(doc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{new_histogram, record};

    fn series(values: &[u64], blocks: &[[u64; 3]]) -> SeriesDoc {
        let mut h = new_histogram();
        for v in values {
            record(&mut h, *v);
        }
        let e = EncodedHistogram::encode(&h);
        SeriesDoc {
            requests: values.len() as u64,
            errors: 1,
            check_failures: 0,
            stale_reads: 0,
            status: BTreeMap::from([("2xx".to_owned(), values.len() as u64)]),
            error_kinds: BTreeMap::new(),
            bytes: 10,
            cache: BTreeMap::new(),
            corrected_ms: crate::result::Percentiles::of(&h),
            raw_ms: crate::result::Percentiles::of(&h),
            corrected: e.clone(),
            raw: e,
            server_timing: BTreeMap::new(),
            server_timing_ms: BTreeMap::new(),
            server_timing_blocks: BTreeMap::new(),
            blocks: Some(BlocksDoc { block_ms: 100, counts: blocks.to_vec() }),
            ops: Default::default(),
        }
    }

    fn doc(series_doc: SeriesDoc) -> ResultDoc {
        let run = RunFigures {
            status: Status::Complete,
            invalid_reasons: vec![],
            warnings: vec!["w".into()],
            warmup_s: 1.0,
            measured_s: 0.4,
            target_rate: Some(10.0),
            achieved_rate: 10.0,
            scheduled_iterations: 4,
            started_iterations: 4,
            dropped_iterations: 0,
            late_sends: 1,
            requests: 4,
            warmup_requests: 1,
            client_cpu_share: 0.1,
            client_cpu_us_per_request: 50.0,
            client_max_rss_kib: 100,
        };
        let metadata = crate::result::Metadata {
            scenario: "s".into(),
            scenario_file: "s.toml".into(),
            scenario_sha256: "x".into(),
            target: "http://127.0.0.1:1".into(),
            variant: None,
            git_revision: None,
            harness_version: "0".into(),
            target_kind: Default::default(),
            target_version: None,
            servers: vec![],
            measurement: Default::default(),
            anonymous_user_write: None,
            started_at: "t".into(),
            ended_at: None,
            measure_start_unix_ms: None,
            shard: None,
            merged: None,
            load: serde_json::Value::Null,
            machine: crate::result::Machine::current(),
        };
        ResultDoc {
            schema: crate::result::SCHEMA.into(),
            metadata,
            run,
            series: BTreeMap::from([("*".to_owned(), series_doc)]),
            intervals: vec![],
            thresholds: vec![],
            answers: None,
        }
    }

    #[test]
    fn a_later_run_adds_up_and_its_blocks_follow() {
        let a = doc(series(&[1000, 2000], &[[0, 1000, 1], [3, 2000, 1]]));
        let b = doc(series(&[3000], &[[0, 3000, 1]]));
        let m = merge(&a, &b).unwrap();
        let all = &m.series["*"];
        assert_eq!((all.requests, all.errors, all.bytes), (3, 2, 20));
        assert_eq!(all.corrected.decode().unwrap().len(), 3);
        assert_eq!(all.status["2xx"], 3);
        // The later run's block 0 follows the earlier run's last block (3).
        assert_eq!(all.blocks.as_ref().unwrap().counts.last(), Some(&[4, 3000, 1]));
        assert_eq!((m.run.measured_s, m.run.started_iterations, m.run.late_sends), (0.8, 8, 2));
        assert_eq!(m.run.warnings, ["w"]);
        let mut other = b.clone();
        other.metadata.scenario_sha256 = "y".into();
        assert!(merge(&a, &other).is_err());
        let mut modelled = b.clone();
        modelled.metadata.measurement = crate::result::Measurement::Modelled("kv-cold".into());
        assert!(merge(&a, &modelled).unwrap_err().contains("modelled: kv-cold"));
    }

    /// Two arms of a staged A/B whose first stages ended in different blocks
    /// (arm B had nothing in block 3): the second stage's blocks move by one
    /// offset, so block 4 is the same stretch of time in both arms.
    #[test]
    fn the_arms_of_a_later_stage_move_by_one_offset() {
        let a = doc(series(&[1000, 2000], &[[0, 1000, 1], [3, 2000, 1]]));
        let b = doc(series(&[1000], &[[1, 1000, 1]]));
        let later = [doc(series(&[5000], &[[0, 5000, 1]])), doc(series(&[6000], &[[0, 6000, 1]]))];
        let m = merge_arms(&[a, b], &later).unwrap();
        let last = |d: &ResultDoc| d.series["*"].blocks.as_ref().unwrap().counts.last().copied();
        assert_eq!((last(&m[0]), last(&m[1])), (Some([4, 5000, 1]), Some([4, 6000, 1])));
    }

    /// Server-Timing entries' blocks follow their series' blocks through a merge.
    #[test]
    fn server_timing_blocks_follow_their_series() {
        let mut a = series(&[1000], &[[0, 1000, 1], [2, 1000, 1]]);
        a.server_timing_blocks.insert("kv".into(), BlocksDoc { block_ms: 100, counts: vec![[2, 1000, 1]] });
        let mut b = series(&[1000], &[[0, 1000, 1]]);
        b.server_timing_blocks.insert("kv".into(), BlocksDoc { block_ms: 100, counts: vec![[0, 2000, 1]] });
        b.server_timing_blocks.insert("d1".into(), BlocksDoc { block_ms: 100, counts: vec![[0, 3000, 1]] });
        let m = merge(&doc(a), &doc(b)).unwrap();
        let kv = &m.series["*"].server_timing_blocks["kv"].counts;
        assert_eq!(kv, &vec![[2, 1000, 1], [3, 2000, 1]]);
        assert_eq!(m.series["*"].server_timing_blocks["d1"].counts, vec![[3, 3000, 1]]);
    }

    /// A decoded histogram covers only the range its values needed: a later run
    /// with a value far beyond it must still add (it did not, until cold starts
    /// merged a 2 ms run with a 90 ms one).
    #[test]
    fn a_later_run_with_far_larger_values_adds() {
        let a = doc(series(&[1000], &[[0, 1000, 1]]));
        let b = doc(series(&[30_000_000], &[[0, 30_000_000, 1]]));
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.series["*"].corrected.decode().unwrap().len(), 2);
    }

    /// Parts that ran at once: counts add, the later-started part's blocks and
    /// seconds move by its start's offset, a shared block is one, rates add.
    #[test]
    fn parts_that_ran_at_once_align_on_the_wall_clock() {
        let mut a = doc(series(&[1000, 2000], &[[0, 1000, 1], [10, 1000, 1]]));
        let mut b = doc(series(&[1000], &[[0, 1000, 1]]));
        a.metadata.measure_start_unix_ms = Some(5_000);
        b.metadata.measure_start_unix_ms = Some(6_000);
        let second = |t: u64| crate::recorder::IntervalSummary {
            t,
            series: "*".into(),
            requests: 1,
            errors: 0,
            p50_ms: 1.0,
            p90_ms: 1.0,
            p99_ms: 1.0,
            max_ms: 1.0,
            cache: BTreeMap::new(),
            histogram: Some(EncodedHistogram::encode(&{
                let mut h = crate::recorder::new_histogram();
                record(&mut h, 1000);
                h
            })),
        };
        a.intervals = vec![second(1), second(2)];
        b.intervals = vec![second(1)];
        b.run.invalid_reasons = vec!["slow".into()];
        let m = merge_concurrent(&[a, b], &|i| format!("shard {i}/2")).unwrap();
        let all = &m.series["*"];
        assert_eq!(all.requests, 3);
        // b's block 0 is a's block 10 (one second later): one entry of two.
        assert_eq!(all.blocks.as_ref().unwrap().counts, vec![[0, 1000, 1], [10, 1000, 2]]);
        let seconds: Vec<(u64, u64)> = m.intervals.iter().map(|i| (i.t, i.requests)).collect();
        assert_eq!(seconds, vec![(1, 1), (2, 2)]);
        assert_eq!(m.run.target_rate, Some(20.0));
        assert_eq!((m.run.measured_s, m.run.started_iterations), (0.4, 8));
        assert_eq!(m.run.invalid_reasons, ["shard 1/2: slow"]);
        assert_eq!(m.metadata.measure_start_unix_ms, Some(5_000));
    }
}
