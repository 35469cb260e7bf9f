//! Reports (DESIGN.md §3.7): a self-contained `index.html` (inline CSS, charts as
//! embedded PNG), the charts as PNG files, `summary.md` for a CI step summary and
//! `junit.xml` with one test case per threshold and claim. Rendering is separate
//! from analysis: the comparison is computed by `compare`, the charts by `charts`.

pub mod charts;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::compare::Comparison;
use crate::recorder;
use crate::result::{ResultDoc, Status};
use charts::{Bar, Line, LineChart};

pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
    pub charts: Vec<PathBuf>,
}

fn label(doc: &ResultDoc, i: usize) -> String {
    doc.metadata.variant.clone().unwrap_or_else(|| format!("run {}", i + 1))
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// A target as shown in the report: no `scheme://`, so the page holds no URL a
/// browser or a reader could mistake for something to fetch.
pub(crate) fn shown_target(target: &str) -> String {
    match target.split_once("://") {
        Some((scheme, rest)) => format!("{} ({scheme})", rest.trim_end_matches('/')),
        None => target.to_owned(),
    }
}

fn is_loopback(target: &str) -> bool {
    url::Url::parse(target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]" || h == "::1")
}

/// The plain statement of where the numbers come from (DESIGN.md §4).
fn environment(docs: &[ResultDoc]) -> String {
    if docs.iter().all(|d| is_loopback(&d.metadata.target)) {
        "Measured on this machine against loopback targets (local wrangler dev: workerd with KV and D1 \
         simulated on the same machine). Absolute latencies do not transfer to production, and local KV \
         sees its own writes at once while production KV is eventually consistent; the verdicts hold for \
         the environment measured."
            .into()
    } else {
        "Measured against remote targets from this machine: latencies include the network path from here; \
         production KV is eventually consistent (up to about 60 s between locations)."
            .into()
    }
}

fn series_rows(doc: &ResultDoc) -> Vec<Value> {
    let secs = doc.run.measured_s.max(1e-9);
    doc.series
        .iter()
        .map(|(name, s)| {
            let cache: Vec<String> = s
                .cache
                .iter()
                .map(|(layer, outcomes)| {
                    let total: u64 = outcomes.values().sum();
                    let hits = outcomes.get("hit").copied().unwrap_or(0);
                    format!("{layer} {:.0} % hit", 100.0 * hits as f64 / total.max(1) as f64)
                })
                .collect();
            json!({
                "name": if name == recorder::ALL { "all requests".to_owned() } else { name.clone() },
                "requests": s.requests,
                "rps": f(s.requests as f64 / secs, 1),
                "p50": f(s.corrected_ms.p50, 2), "p90": f(s.corrected_ms.p90, 2), "p95": f(s.corrected_ms.p95, 2),
                "p99": f(s.corrected_ms.p99, 2), "max": f(s.corrected_ms.max, 2), "mean": f(s.corrected_ms.mean, 2),
                "raw_p99": f(s.raw_ms.p99, 2),
                "errors": s.errors,
                "stale_reads": s.stale_reads,
                "cache": cache.join(", "),
            })
        })
        .collect()
}

fn arm_context(doc: &ResultDoc, i: usize) -> Value {
    let r = &doc.run;
    let load = &doc.metadata.load;
    let rate = load.get("rate").map(|v| format!(" {v}/s")).unwrap_or_default();
    let vus = load.get("vus").map(|v| format!(" {v} VUs")).unwrap_or_default();
    json!({
        "label": label(doc, i),
        "status": serde_json::to_value(r.status).unwrap_or(Value::Null),
        "invalid_reasons": r.invalid_reasons,
        "warnings": r.warnings,
        "target": shown_target(&doc.metadata.target),
        "scenario": doc.metadata.scenario,
        "load": format!("{}{rate}{vus}", load.get("executor").and_then(|v| v.as_str()).unwrap_or("?")),
        "warmup_s": f(r.warmup_s, 1),
        "measured_s": f(r.measured_s, 1),
        "requests": r.requests,
        "achieved": match r.target_rate {
            Some(t) => format!("{:.1} of {:.1} it/s", r.achieved_rate, t),
            None => format!("{:.1} it/s", r.achieved_rate),
        },
        "dropped": r.dropped_iterations,
        "late": r.late_sends,
        "started_at": doc.metadata.started_at,
        "git": doc.metadata.git_revision.clone().unwrap_or_else(|| "–".into()),
        "cpu": format!("{:.0} % of a core, {:.1} µs/request", r.client_cpu_share * 100.0, r.client_cpu_us_per_request),
        "series": series_rows(doc),
    })
}

fn comparison_context(c: &Comparison) -> Value {
    let rows: Vec<Value> = c
        .series
        .iter()
        .flat_map(|s| {
            s.metrics.iter().map(move |m| {
                json!({
                    "series": s.series, "metric": m.metric.name(), "a": f(m.a, 3), "b": f(m.b, 3),
                    "change": format!("{} %", f(m.change * 100.0, 1)),
                    "ci": format!("{} to {} %", f(m.ci_low * 100.0, 1), f(m.ci_high * 100.0, 1)),
                    "p": if s.mann_whitney.p_value < 0.001 { "<0.001".to_owned() } else { f(s.mann_whitney.p_value, 3) },
                })
            })
        })
        .collect();
    json!({
        "a": shown_target(&c.a), "b": shown_target(&c.b),
        "kind": if c.interleaved { "Interleaved A/B under one schedule" } else { "Separately recorded runs" },
        "noise": f(c.noise * 100.0, 0),
        "lines": c.series.iter().filter(|s| !s.series.contains(" server:")).map(|s| s.summary.clone()).collect::<Vec<_>>(),
        "rows": rows,
        "notes": c.notes,
    })
}

fn claims_context(c: Option<&Comparison>) -> Vec<Value> {
    c.map(|c| {
        c.claims
            .iter()
            .map(|v| {
                json!({
                    "name": v.name, "statement": v.statement, "verdict": v.verdict.as_str(),
                    "class": v.verdict.as_str().replace(' ', "-"), "reason": v.reason, "holds": v.verdict.holds(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn thresholds_context(docs: &[ResultDoc]) -> Vec<Value> {
    docs.iter()
        .enumerate()
        .flat_map(|(i, d)| {
            d.thresholds.iter().map(move |t| {
                json!({
                    "arm": label(d, i), "series": t.series, "threshold": t.threshold,
                    "actual": format!("{} {}", f(t.actual, 3), t.unit),
                    "result": if t.pass { "pass" } else { "FAIL" }, "class": if t.pass { "pass" } else { "fail" },
                    "pass": t.pass,
                })
            })
        })
        .collect()
}

/// Draws every chart the data allows; returns (file, title) pairs.
#[allow(clippy::type_complexity)]
fn draw_charts(
    docs: &[ResultDoc],
    comparison: Option<&Comparison>,
    out: &Path,
) -> Result<Vec<(PathBuf, String)>, String> {
    let mut made = Vec::new();
    let arms: Vec<(String, &ResultDoc)> = docs.iter().enumerate().map(|(i, d)| (label(d, i), d)).collect();

    // 1. The HdrHistogram percentile plot: latency against 1 / (1 − p), log scale.
    let mut lines = Vec::new();
    for (name, d) in &arms {
        if let Some(all) = d.series.get(recorder::ALL) {
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
    }
    if !lines.is_empty() {
        let path = out.join("latency-percentiles.png");
        charts::line_chart(
            &path,
            &LineChart {
                title: "Latency by percentile (x: 1 / (1 − p), so 10 = p90, 100 = p99, 1000 = p99.9)",
                x_label: "1 / (1 − percentile)",
                y_label: "latency, ms",
                x_log: true,
                lines,
            },
        )?;
        made.push((path, "Latency percentile curve, corrected and raw".to_owned()));
    }

    // 2. Latency over time; 3. throughput and errors over time.
    let mut latency = Vec::new();
    let mut throughput = Vec::new();
    let mut hit_ratio = Vec::new();
    for (name, d) in &arms {
        let iv: Vec<&recorder::IntervalSummary> = d.intervals.iter().filter(|i| i.series == recorder::ALL).collect();
        if iv.is_empty() {
            continue;
        }
        latency.push(Line {
            name: format!("{name} p50"),
            points: iv.iter().map(|i| (i.t as f64, i.p50_ms)).collect(),
            thin: false,
        });
        latency.push(Line {
            name: format!("{name} p99"),
            points: iv.iter().map(|i| (i.t as f64, i.p99_ms)).collect(),
            thin: true,
        });
        throughput.push(Line {
            name: format!("{name} requests/s"),
            points: iv.iter().map(|i| (i.t as f64, i.requests as f64)).collect(),
            thin: false,
        });
        throughput.push(Line {
            name: format!("{name} errors/s"),
            points: iv.iter().map(|i| (i.t as f64, i.errors as f64)).collect(),
            thin: true,
        });
        let layers: std::collections::BTreeSet<&String> = iv.iter().flat_map(|i| i.cache.keys()).collect();
        for layer in layers {
            let points = iv
                .iter()
                .filter_map(|i| {
                    let o = i.cache.get(layer)?;
                    let total: u64 = o.values().sum();
                    (total > 0).then(|| (i.t as f64, o.get("hit").copied().unwrap_or(0) as f64 / total as f64))
                })
                .collect();
            hit_ratio.push(Line { name: format!("{name} {layer}"), points, thin: false });
        }
    }
    for (file, title, y, lines) in [
        ("latency-over-time.png", "Latency over time (corrected, per second)", "latency, ms", latency),
        ("throughput-errors.png", "Throughput and errors over time", "per second", throughput),
        ("cache-hit-ratio.png", "Cache hit ratio over time, per layer (hit / all outcomes)", "hit ratio", hit_ratio),
    ] {
        if lines.is_empty() {
            continue;
        }
        let path = out.join(file);
        charts::line_chart(
            &path,
            &LineChart { title, x_label: "seconds into the measured part", y_label: y, x_log: false, lines },
        )?;
        made.push((path, title.to_owned()));
    }

    // 4. Latency split by cache outcome.
    let mut bars = Vec::new();
    for (i, (name, d)) in arms.iter().enumerate() {
        for (series, s) in d.series.iter().filter(|(k, _)| k.starts_with("cache:")) {
            let short = series.trim_start_matches("cache:");
            let prefix = if arms.len() > 1 { format!("{name} ") } else { String::new() };
            bars.push(Bar { label: format!("{prefix}{short}"), value: s.corrected_ms.p50, ci: None, color: i });
        }
    }
    if !bars.is_empty() {
        let path = out.join("latency-by-cache-outcome.png");
        charts::bar_chart(&path, "Median latency by cache outcome (ms, corrected)", "p50, ms", &bars)?;
        made.push((path, "Latency split by cache outcome".to_owned()));
    }

    // 5. A/B: change per tag at p50 with its confidence interval.
    if let Some(c) = comparison {
        let bars: Vec<Bar> = c
            .series
            .iter()
            .filter(|s| (s.series == recorder::ALL || s.series.starts_with("tag:")) && !s.series.contains(" server:"))
            .filter_map(|s| {
                let m = s.metric(crate::stats::Metric::P50)?;
                Some(Bar {
                    label: s.series.trim_start_matches("tag:").to_owned(),
                    value: m.change * 100.0,
                    ci: Some((m.ci_low * 100.0, m.ci_high * 100.0)),
                    color: if m.change < 0.0 { 2 } else { 3 },
                })
            })
            .collect();
        if !bars.is_empty() {
            let path = out.join("ab-change-by-tag.png");
            let title = format!(
                "Change of p50 from {} to {} per tag, with 95 % CI (negative is faster)",
                shown_target(&c.a),
                shown_target(&c.b)
            );
            charts::bar_chart(&path, &title, "change, %", &bars)?;
            made.push((path, title));
        }
    }
    Ok(made)
}

pub(crate) fn environment_templates() -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    // One <head> (inline CSS) for every HTML page.
    env.add_template("head.html", include_str!("../../templates/head.html")).map_err(|e| e.to_string())?;
    env.add_template("report.html", include_str!("../../templates/report.html")).map_err(|e| e.to_string())?;
    env.add_template("junit.xml", include_str!("../../templates/junit.xml")).map_err(|e| e.to_string())?;
    env.add_template("summary.md", include_str!("../../templates/summary.md")).map_err(|e| e.to_string())?;
    env.add_template("bench.html", include_str!("../../templates/bench.html")).map_err(|e| e.to_string())?;
    env.add_template("bench.md", include_str!("../../templates/bench.md")).map_err(|e| e.to_string())?;
    // Markdown is not HTML: no escaping there; HTML and XML escape every value.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md") {
            minijinja::AutoEscape::None
        } else {
            minijinja::AutoEscape::Html
        }
    });
    Ok(env)
}

/// Writes the report of `docs` (one per run or arm) and, for A/B, `comparison`.
pub fn write(
    docs: &[ResultDoc],
    comparison: Option<&Comparison>,
    sources: &[String],
    out: &Path,
) -> Result<ReportFiles, String> {
    if docs.is_empty() {
        return Err("a report needs at least one result".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let charts = draw_charts(docs, comparison, out)?;
    let chart_ctx: Vec<Value> = charts
        .iter()
        .map(|(path, title)| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(json!({
                "title": title,
                "file": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                "data": STANDARD.encode(bytes),
            }))
        })
        .collect::<Result<_, String>>()?;
    let first = &docs[0];
    let title = match comparison {
        Some(c) => format!("{}: {} vs {}", first.metadata.scenario, shown_target(&c.a), shown_target(&c.b)),
        None => format!("{} against {}", first.metadata.scenario, shown_target(&first.metadata.target)),
    };
    let claims = claims_context(comparison);
    let thresholds = thresholds_context(docs);
    let m = &first.metadata.machine;
    let ctx = json!({
        "title": title,
        "harness_version": first.metadata.harness_version,
        "worker_version": docs
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{}: {}", label(d, i), d.metadata.worker_version.as_deref().unwrap_or("not reported by the target")))
            .collect::<Vec<_>>()
            .join(", "),
        "machine": format!("{} ({} {}, {} CPUs{})", m.hostname, m.os, m.arch, m.cpus, m.cpu_model.as_ref().map(|c| format!(", {c}")).unwrap_or_default()),
        "sources": sources,
        "environment": environment(docs),
        "arms": docs.iter().enumerate().map(|(i, d)| arm_context(d, i)).collect::<Vec<_>>(),
        "claims": claims,
        "comparison": comparison.map(comparison_context),
        "thresholds": thresholds,
        "charts": chart_ctx,
    });
    let env = environment_templates()?;
    let render = |name: &str, ctx: &Value| {
        env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| format!("template {name}: {e}"))
    };
    let html = out.join("index.html");
    std::fs::write(&html, render("report.html", &ctx)?).map_err(|e| format!("{}: {e}", html.display()))?;
    let markdown = out.join("summary.md");
    std::fs::write(&markdown, render("summary.md", &ctx)?).map_err(|e| format!("{}: {e}", markdown.display()))?;

    let mut cases: Vec<Value> = thresholds
        .iter()
        .map(|t| {
            json!({
                "class": "threshold", "name": format!("{} {}: {}", t["arm"].as_str().unwrap_or(""), t["series"].as_str().unwrap_or(""), t["threshold"].as_str().unwrap_or("")),
                "pass": t["pass"], "message": format!("actual {}", t["actual"].as_str().unwrap_or("")),
            })
        })
        .collect();
    cases.extend(comparison.into_iter().flat_map(|c| &c.claims).map(|v| {
        json!({ "class": "claim", "name": format!("{}: {}", v.name, v.statement), "pass": v.verdict.holds(), "message": format!("{}: {}", v.verdict.as_str(), v.reason) })
    }));
    for (i, d) in docs.iter().enumerate() {
        let valid = !matches!(d.run.status, Status::Invalid | Status::Interrupted);
        cases.push(json!({
            "class": "run", "name": format!("{} run is valid", label(d, i)), "pass": valid,
            "message": d.run.invalid_reasons.join("; "),
        }));
    }
    let failures = cases.iter().filter(|c| c["pass"] != true).count();
    let junit = out.join("junit.xml");
    std::fs::write(&junit, render("junit.xml", &json!({ "title": title, "cases": cases, "failures": failures }))?)
        .map_err(|e| format!("{}: {e}", junit.display()))?;
    Ok(ReportFiles { html, markdown, junit, charts: charts.into_iter().map(|(p, _)| p).collect() })
}
