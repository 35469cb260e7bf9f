//! Which charts a report has, drawn from the data with `charts`' primitives:
//! for a run the percentile curve, latency, throughput and hit ratio over time,
//! latency by cache outcome and the A/B change per tag; for a bench the p50
//! change per run.

use std::path::{Path, PathBuf};

use super::charts::{self, Bar, Line, LineChart};
use super::context::{label, shown_target};
use crate::compare::Comparison;
use crate::findings::BenchSummary;
use crate::recorder;
use crate::result::ResultDoc;
use crate::series::{Series, SeriesKey};

/// A run's arms with their labels.
type Arms<'a> = [(String, &'a ResultDoc)];

/// A drawn chart: its file and title.
type Drawn = (PathBuf, String);

/// Draws every chart a run's data allows; returns (file, title) pairs.
pub(super) fn run(docs: &[ResultDoc], comparison: Option<&Comparison>, out: &Path) -> Result<Vec<Drawn>, String> {
    let arms: Vec<(String, &ResultDoc)> = docs.iter().enumerate().map(|(i, d)| (label(d, i), d)).collect();
    // A modelled run says so in every chart's title, drawn into the image too.
    let tag = docs.first().map(|d| d.metadata.measurement.suffix()).unwrap_or_default();
    let mut made = Vec::new();
    made.extend(percentile_curve(&arms, out, &tag)?);
    made.extend(over_time(&arms, out, &tag)?);
    made.extend(by_cache_outcome(&arms, out, &tag)?);
    if let Some(c) = comparison {
        made.extend(ab_change(c, out, &tag)?);
    }
    Ok(made)
}

/// The HdrHistogram percentile plot: latency against 1 / (1 − p), log scale.
fn percentile_curve(arms: &Arms<'_>, out: &Path, tag: &str) -> Result<Option<Drawn>, String> {
    let mut lines = Vec::new();
    for (name, d) in arms {
        let Some(all) = d.all() else { continue };
        for (kind, hist, thin) in [("corrected", &all.corrected, false), ("raw", &all.raw, true)] {
            let h = hist.decode()?;
            let points: Vec<(f64, f64)> = h
                .iter_quantiles(4)
                .map(|v| {
                    let q = v.quantile_iterated_to().min(0.99999);
                    (1.0 / (1.0 - q), h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0)
                })
                .collect();
            lines.push(Line { name: format!("{name} {kind}"), points, thin });
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let path = out.join("latency-percentiles.png");
    charts::line_chart(
        &path,
        &LineChart {
            title: &format!("Latency by percentile (x: 1 / (1 − p), so 10 = p90, 100 = p99, 1000 = p99.9){tag}"),
            x_label: "1 / (1 − percentile)",
            y_label: "latency, ms",
            x_log: true,
            lines,
        },
    )?;
    Ok(Some((path, format!("Latency percentile curve, corrected and raw{tag}"))))
}

/// One line per quantity of the per-second intervals of every request.
fn interval_line(
    name: String,
    iv: &[&recorder::IntervalSummary],
    thin: bool,
    y: fn(&recorder::IntervalSummary) -> f64,
) -> Line {
    Line { name, points: iv.iter().map(|i| (i.t as f64, y(i))).collect(), thin }
}

/// Per layer, the share of hits among its outcomes in each second.
fn hit_ratio_lines(name: &str, iv: &[&recorder::IntervalSummary]) -> Vec<Line> {
    let layers: std::collections::BTreeSet<&String> = iv.iter().flat_map(|i| i.cache.keys()).collect();
    layers
        .into_iter()
        .map(|layer| {
            let points = iv
                .iter()
                .filter_map(|i| {
                    let o = i.cache.get(layer)?;
                    let total: u64 = o.values().sum();
                    (total > 0).then(|| (i.t as f64, o.get("hit").copied().unwrap_or(0) as f64 / total as f64))
                })
                .collect();
            Line { name: format!("{name} {layer}"), points, thin: false }
        })
        .collect()
}

/// Latency, throughput and errors, and hit ratio over time.
fn over_time(arms: &Arms<'_>, out: &Path, tag: &str) -> Result<Vec<Drawn>, String> {
    let mut latency = Vec::new();
    let mut throughput = Vec::new();
    let mut hit_ratio = Vec::new();
    let all = SeriesKey::all().to_string();
    for (name, d) in arms {
        let iv: Vec<&recorder::IntervalSummary> = d.intervals.iter().filter(|i| i.series == all).collect();
        if iv.is_empty() {
            continue;
        }
        latency.push(interval_line(format!("{name} p50"), &iv, false, |i| i.p50_ms));
        latency.push(interval_line(format!("{name} p99"), &iv, true, |i| i.p99_ms));
        throughput.push(interval_line(format!("{name} requests/s"), &iv, false, |i| i.requests as f64));
        throughput.push(interval_line(format!("{name} errors/s"), &iv, true, |i| i.errors as f64));
        hit_ratio.extend(hit_ratio_lines(name, &iv));
    }
    let mut made = Vec::new();
    for (file, title, y, lines) in [
        ("latency-over-time.png", "Latency over time (corrected, per second)", "latency, ms", latency),
        ("throughput-errors.png", "Throughput and errors over time", "per second", throughput),
        ("cache-hit-ratio.png", "Cache hit ratio over time, per layer (hit / all outcomes)", "hit ratio", hit_ratio),
    ] {
        if lines.is_empty() {
            continue;
        }
        let path = out.join(file);
        let title = format!("{title}{tag}");
        charts::line_chart(
            &path,
            &LineChart { title: &title, x_label: "seconds into the measured part", y_label: y, x_log: false, lines },
        )?;
        made.push((path, title));
    }
    Ok(made)
}

/// Median latency split by cache outcome.
fn by_cache_outcome(arms: &Arms<'_>, out: &Path, tag: &str) -> Result<Option<Drawn>, String> {
    let mut bars = Vec::new();
    for (i, (name, d)) in arms.iter().enumerate() {
        for (key, s) in d.keyed_series().filter(|(k, _)| matches!(k.series, Series::Cache { .. })) {
            let prefix = if arms.len() > 1 { format!("{name} ") } else { String::new() };
            bars.push(Bar { label: format!("{prefix}{}", key.label()), value: s.corrected_ms.p50, ci: None, color: i });
        }
    }
    if bars.is_empty() {
        return Ok(None);
    }
    let path = out.join("latency-by-cache-outcome.png");
    charts::bar_chart(&path, &format!("Median latency by cache outcome (ms, corrected){tag}"), "p50, ms", &bars)?;
    Ok(Some((path, format!("Latency split by cache outcome{tag}"))))
}

/// A/B: the change of p50 per tag with its confidence interval.
fn ab_change(c: &Comparison, out: &Path, tag: &str) -> Result<Option<Drawn>, String> {
    let bars: Vec<Bar> = c
        .series
        .iter()
        .filter(|s| s.series.is_headline() && !s.series.is_server_side())
        .filter_map(|s| {
            let m = s.metric(crate::stats::Metric::P50)?;
            Some(Bar {
                label: if s.series.is_all() { s.series.to_string() } else { s.series.label() },
                value: m.change * 100.0,
                ci: Some((m.ci_low * 100.0, m.ci_high * 100.0)),
                color: if m.change < 0.0 { 2 } else { 3 },
            })
        })
        .collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let path = out.join("ab-change-by-tag.png");
    let title = format!(
        "Change of p50 from {} to {} per tag, with 95 % CI (negative is faster){tag}",
        shown_target(&c.a),
        shown_target(&c.b)
    );
    charts::bar_chart(&path, &title, "change, %", &bars)?;
    Ok(Some((path, title)))
}

/// p50 change of every request, per run, with its CI: the bench at a glance.
/// Returns the file and its base64 PNG.
pub(super) fn bench(s: &BenchSummary, dir: &Path) -> Result<Option<(PathBuf, String)>, String> {
    let bars: Vec<Bar> = s
        .runs
        .iter()
        .filter_map(|r| {
            let all = r.all_row()?;
            Some(Bar {
                label: r.name.clone(),
                value: all.p50.change * 100.0,
                ci: Some((all.p50.ci_low * 100.0, all.p50.ci_high * 100.0)),
                color: usize::from(r.layer.is_some()),
            })
        })
        .collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let path = dir.join("p50-change.png");
    let mut title = "Change of p50 latency, all requests (negative = faster with the cache), 95 % CI".to_owned();
    if s.runs.iter().any(|r| r.measurement.is_modelled()) {
        title.push_str("; [modelled: …] bars are modelled, not measured");
    }
    charts::bar_chart(&path, &title, "change of p50 (%)", &bars)?;
    Ok(Some((path.clone(), super::base64_file(&path)?)))
}
