//! One arm's results of successive runs (the stages of a `--until-decided` run,
//! later the shards of one run) as one result: counts and histograms add up,
//! time blocks and intervals of a later run follow the earlier ones (so the block
//! bootstrap never joins two runs into one block), validity is the worst of them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::result::{BlocksDoc, EncodedHistogram, ResultDoc, RunFigures, SeriesDoc, Status};

fn add_histograms(a: &EncodedHistogram, b: &EncodedHistogram) -> Result<(EncodedHistogram, Histogram<u64>), String> {
    let mut h = a.decode()?;
    // A decoded histogram covers only the range its values needed; the other's
    // may reach further.
    h.auto(true);
    h.add(b.decode()?).map_err(|e| format!("histograms do not add: {e:?}"))?;
    Ok((EncodedHistogram::encode(&h), h))
}

fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k.clone()).or_insert(0) += n;
    }
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

fn merge_run(a: &RunFigures, b: &RunFigures) -> RunFigures {
    let measured_s = a.measured_s + b.measured_s;
    let started = a.started_iterations + b.started_iterations;
    let worst = |x: Status, y: Status| {
        let rank = |s: Status| match s {
            Status::Complete => 0,
            Status::Running => 1,
            Status::Invalid => 2,
            Status::Interrupted => 3,
        };
        if rank(y) > rank(x) {
            y
        } else {
            x
        }
    };
    let mut warnings = a.warnings.clone();
    warnings.extend(b.warnings.iter().filter(|w| !a.warnings.contains(w)).cloned());
    let mut invalid_reasons = a.invalid_reasons.clone();
    invalid_reasons.extend(b.invalid_reasons.iter().cloned());
    let per_request = |r: &RunFigures| r.client_cpu_us_per_request * r.requests as f64;
    let requests = a.requests + b.requests;
    RunFigures {
        status: worst(a.status, b.status),
        invalid_reasons,
        warnings,
        warmup_s: a.warmup_s + b.warmup_s,
        measured_s,
        target_rate: a.target_rate,
        achieved_rate: if measured_s > 0.0 { started as f64 / measured_s } else { 0.0 },
        scheduled_iterations: a.scheduled_iterations + b.scheduled_iterations,
        started_iterations: started,
        dropped_iterations: a.dropped_iterations + b.dropped_iterations,
        late_sends: a.late_sends + b.late_sends,
        requests,
        warmup_requests: a.warmup_requests + b.warmup_requests,
        client_cpu_share: a.client_cpu_share.max(b.client_cpu_share),
        client_cpu_us_per_request: if requests > 0 { (per_request(a) + per_request(b)) / requests as f64 } else { 0.0 },
        client_max_rss_kib: a.client_max_rss_kib.max(b.client_max_rss_kib),
    }
}

/// `later` appended to `earlier` (one arm, the same scenario, run after it).
pub fn merge(earlier: &ResultDoc, later: &ResultDoc) -> Result<ResultDoc, String> {
    if earlier.metadata.scenario_sha256 != later.metadata.scenario_sha256 {
        return Err(format!(
            "results of different scenario files cannot be merged ({} and {})",
            earlier.metadata.scenario_file, later.metadata.scenario_file
        ));
    }
    if earlier.metadata.measurement != later.metadata.measurement {
        return Err(format!(
            "a {} and a {} result cannot be merged",
            earlier.metadata.measurement, later.metadata.measurement
        ));
    }
    let offset = block_end(earlier);
    let mut series = earlier.series.clone();
    for (key, b) in &later.series {
        let merged = match series.get(key) {
            Some(a) => merge_series(a, b, offset)?,
            None => SeriesDoc { blocks: merge_blocks(None, b.blocks.as_ref(), offset), ..b.clone() },
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
        run: merge_run(&earlier.run, &later.run),
        series,
        intervals,
        thresholds,
    })
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
            worker_version: None,
            servers: vec![],
            measurement: Default::default(),
            anonymous_user_write: None,
            started_at: "t".into(),
            ended_at: None,
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
}
