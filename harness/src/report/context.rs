//! What the HTML and Markdown templates show, built from typed data: a run's
//! (or an A/B's) context and a bench's. The numbers are formatted here, once,
//! for both formats.

use serde_json::{json, Value};

use super::RunReport;
use crate::answers::AnswersDoc;
use crate::compare::{Comparison, MetricChange};
use crate::findings::{AbSummary, Answer, BenchSummary, Row};
use crate::result::TargetKind;
use crate::result::{Measurement, ResultDoc};
use crate::series::SeriesKey;
use crate::target::is_loopback;

pub(super) fn label(doc: &ResultDoc, i: usize) -> String {
    doc.metadata.variant.clone().unwrap_or_else(|| format!("run {}", i + 1))
}

pub(super) fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// A target as shown in the report: no `scheme://`, so the page holds no URL a
/// browser or a reader could mistake for something to fetch.
pub fn shown_target(target: &str) -> String {
    match target.split_once("://") {
        Some((scheme, rest)) => format!("{} ({scheme})", rest.trim_end_matches('/')),
        None => target.to_owned(),
    }
}

/// The plain statement of where the numbers come from: what the targets were
/// (as each result recorded it) and whether they were on this machine.
fn environment(docs: &[ResultDoc]) -> String {
    let loopback = docs.iter().all(|d| is_loopback(&d.metadata.target));
    let kinds: Vec<TargetKind> = docs.iter().map(|d| d.metadata.target_kind).collect();
    let kind =
        if kinds.iter().all(|k| *k == TargetKind::BenchWorker) { TargetKind::BenchWorker } else { TargetKind::Http };
    crate::target::environment(kind, loopback).to_owned()
}

/// "this project's worker, version 1.2.3" / "an HTTP API (no bench protocol)".
fn target_words(m: &crate::result::Metadata) -> String {
    let version = m.target_version.as_deref().map(|v| format!(", version {v}")).unwrap_or_default();
    match m.target_kind {
        TargetKind::BenchWorker => {
            format!("target-worker{}", if version.is_empty() { ", version not reported".to_owned() } else { version })
        }
        TargetKind::Http => format!("an HTTP API without the bench protocol{version}"),
    }
}

fn series_rows(doc: &ResultDoc) -> Vec<Value> {
    let secs = doc.run.measured_s.max(1e-9);
    doc.keyed_series()
        .map(|(key, s)| {
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
                "name": if key.is_all() { key.label() } else { key.to_string() },
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
        "ops": doc.all().filter(|s| !s.ops.is_empty()).map(|s| format!("{} per request", s.ops.per_request_words())),
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
                    "series": s.series.to_string(), "metric": m.metric.name(), "a": f(m.a, 3), "b": f(m.b, 3),
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
        "lines": c.series.iter().filter(|s| !s.series.is_server_side()).map(|s| s.summary.clone()).collect::<Vec<_>>(),
        "rows": rows,
        "notes": c.notes,
    })
}

/// The headline of the pairs' answers: wrong, alike, or not compared, in words.
pub(crate) fn answers_headline(a: &AnswersDoc) -> String {
    let all = a.series.get(crate::series::ALL_TEXT).cloned().unwrap_or_default();
    let apart = match (all.write_between, all.no_answer) {
        (0, 0) => String::new(),
        (w, n) => format!(
            "; not comparable: {w} pair{} with a write of the user in between, {n} without an answer on one arm",
            if w == 1 { "" } else { "s" }
        ),
    };
    match all.mismatch_rate() {
        None => format!("no pair's answers could be compared{apart}"),
        Some((rate, lo, hi)) if all.mismatched > 0 => format!(
            "WRONG ANSWERS: the arms answered differently in {} of {} compared pairs ({} %, 95 % CI {}–{} %){apart}",
            all.mismatched,
            all.compared,
            f(rate * 100.0, 1),
            f(lo * 100.0, 1),
            f(hi * 100.0, 1)
        ),
        Some((_, _, hi)) => format!(
            "answers agree: all {} compared pairs answered alike (the mismatch rate is below {} %, 95 %){apart}",
            all.compared,
            f(hi * 100.0, 2)
        ),
    }
}

/// One series' pairs for a table: counts and the mismatch rate with its CI.
pub(crate) struct AnswerLine {
    pub series: String,
    pub compared: u64,
    pub mismatched: u64,
    pub rate: String,
    pub write_between: u64,
    pub no_answer: u64,
}

pub(crate) fn answer_lines(a: &AnswersDoc) -> Vec<AnswerLine> {
    a.series
        .iter()
        .map(|(name, t)| AnswerLine {
            series: name.clone(),
            compared: t.compared,
            mismatched: t.mismatched,
            rate: t.mismatch_rate().map_or_else(
                || "–".to_owned(),
                |(r, lo, hi)| format!("{} % [{}–{}]", f(r * 100.0, 1), f(lo * 100.0, 1), f(hi * 100.0, 1)),
            ),
            write_between: t.write_between,
            no_answer: t.no_answer,
        })
        .collect()
}

/// The first differences kept, each a heading and its diff.
fn differences_context(a: &AnswersDoc) -> Vec<Value> {
    a.series.values().flat_map(|t| &t.differences).map(|d| json!({"heading": d.heading(), "diff": d.diff})).collect()
}

/// The pairs' answers for the templates.
pub(super) fn answers_context(a: &AnswersDoc) -> Value {
    json!({
        "headline": answers_headline(a),
        "wrong": a.wrong().next().is_some(),
        "rows": answer_lines(a).iter().map(|l| json!({
            "series": l.series, "compared": l.compared, "mismatched": l.mismatched, "rate": l.rate,
            "write_between": l.write_between, "no_answer": l.no_answer,
        })).collect::<Vec<_>>(),
        "rules": a.rules.iter().map(|(step, rule)| format!("{step}: {rule}")).collect::<Vec<_>>(),
        "differences": differences_context(a),
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

pub(super) fn thresholds_context(docs: &[ResultDoc]) -> Vec<Value> {
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

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".into()
    }
}

fn change(c: &MetricChange) -> String {
    c.to_string()
}

/// `faster`, `slower` or `same`, as a CSS class and a word.
fn direction(c: &MetricChange) -> &'static str {
    c.direction.as_str()
}

/// A verdict-table series as a person reads it: `all requests`, `auth`,
/// `auth — server-side `bot``.
pub(super) fn shown(series: &SeriesKey) -> String {
    let base = match &series.series {
        crate::series::Series::Tag(name) => name.clone(),
        _ if series.is_all() => "all requests".to_owned(),
        _ => SeriesKey::from(series.series.clone()).to_string(),
    };
    match &series.server {
        Some(s) => format!("{base} — server-side `{s}`"),
        None => base,
    }
}

fn row_context(r: &Row) -> Value {
    json!({
        "series": shown(&r.series),
        "server_side": r.series.is_server_side(),
        "count": format!("{} / {}", r.count_a, r.count_b),
        "p50_a": ms(r.p50_a), "p50_b": ms(r.p50_b), "p50": change(&r.p50), "p50_dir": direction(&r.p50),
        "p99_a": ms(r.p99_a), "p99_b": ms(r.p99_b), "p99": change(&r.p99), "p99_dir": direction(&r.p99),
        "p99_short": !r.p99.enough_samples,
        "fdr": r.fdr_significant,
        "headline": r.series.is_all(),
        "summary": r.summary,
    })
}

/// Per A/B of a bench, its pairs' answers over every request, and the first
/// differences of the runs that had any.
fn bench_answers(s: &BenchSummary) -> Vec<Value> {
    s.runs
        .iter()
        .filter_map(|r| {
            let doc = r.answers.as_ref()?;
            let line = answer_lines(doc).into_iter().find(|l| l.series == crate::series::ALL_TEXT)?;
            Some(json!({
                "name": r.name, "compared": line.compared, "mismatched": line.mismatched, "rate": line.rate,
                "write_between": line.write_between, "no_answer": line.no_answer, "wrong": line.mismatched > 0,
                "differences": differences_context(doc),
            }))
        })
        .collect()
}

/// A bench's context: the client-side rows lead; server-side timings follow in
/// their own table. `chart` is the verdict chart as base64 PNG.
pub(super) fn bench(s: &BenchSummary, chart: Option<String>) -> Value {
    let runs: Vec<Value> = s
        .runs
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "measurement": r.measurement.to_string(),
                "modelled": r.measurement.is_modelled(),
                "scenario": r.scenario,
                "layer": r.layer,
                "a": r.a, "b": r.b,
                "status": r.status,
                "invalid_reasons": r.invalid_reasons,
                "warnings": r.warnings,
                "requests": r.requests,
                "errors": r.errors,
                "stale_reads": r.stale_reads,
                "thresholds_failed": r.thresholds_failed,
                "rows": r.rows.iter().filter(|x| !x.series.is_server_side()).map(row_context).collect::<Vec<_>>(),
                "server_rows": r.rows.iter().filter(|x| x.series.is_server_side()).map(row_context).collect::<Vec<_>>(),
                "claims": r.claims.iter().map(|c| json!({
                    "name": c.name, "statement": c.statement, "verdict": c.verdict.as_str(),
                    "class": c.verdict.as_str().replace(' ', "-"), "reason": c.reason,
                })).collect::<Vec<_>>(),
                "report": r.report,
                "result": r.result,
            })
        })
        .collect();
    let groups: Vec<Value> = s
        .groups()
        .iter()
        .map(|m| {
            json!({
                "measurement": m.to_string(),
                "modelled": m.is_modelled(),
                "headline": headline_context(s, m),
                "overall": s.runs.iter().filter(|r| &r.measurement == m).filter_map(overall_row).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "title": format!("Cache benchmark — {}", s.mode),
        "started_at": s.started_at,
        "wall": format!("{:.0} s ({:.1} min)", s.wall_s, s.wall_s / 60.0),
        "mode": s.mode,
        "quick": s.quick,
        "environment": s.environment,
        "design": s.design,
        "capabilities": s.capabilities,
        "target_on": shown_target(&s.target_on),
        "target_off": shown_target(&s.target_off),
        "harness_version": s.harness_version,
        "worker_version": s.worker_version.clone().unwrap_or_else(|| "not reported".into()),
        "git": s.git_revision.clone().unwrap_or_else(|| "–".into()),
        "valid": s.valid,
        "invalid_reasons": s.invalid_reasons,
        "notes": s.notes,
        "groups": groups,
        "answer": answer_context(&s.answer()),
        "answers": bench_answers(s),
        "answers_wrong": s.runs.iter().any(|r| r.wrong_answers()),
        "profiles": s.profiles,
        "figures": s.figures,
        "rankings": s.rankings,
        "head_to_head": s.head_to_head,
        "strategies": s.strategies,
        "prices": s.prices,
        "runs": runs,
        "chart": chart,
    })
}

/// The claims of one measurement, each judged on the run that isolates it.
fn headline_context(s: &BenchSummary, m: &Measurement) -> Vec<Value> {
    s.headline_claims_under(m)
        .into_iter()
        .map(|(run, c)| {
            let beside = s
                .full_ab_verdict(&c.name, m)
                .filter(|(full, _)| *full != run)
                .map(|(full, v)| format!("full A/B ({full}): {}", v.verdict.as_str()));
            json!({
                "run": run, "name": c.name, "statement": c.statement, "verdict": c.verdict.as_str(),
                "class": c.verdict.as_str().replace(' ', "-"), "reason": c.reason, "beside": beside,
            })
        })
        .collect()
}

/// A run's line in its measurement's verdict table.
fn overall_row(r: &AbSummary) -> Option<Value> {
    let all = r.all_row()?;
    let what = match (&r.layer, r.control) {
        (Some(l), _) => format!("off → only {l} on ({})", r.scenario),
        (None, true) => format!("cache-off against itself: the noise floor ({})", r.scenario),
        (None, false) if r.cold_start => "cache-off → cache-on, a fresh isolate per sample".to_owned(),
        (None, false) => "cache-off → cache-on".to_owned(),
    };
    Some(json!({
        "name": r.name, "what": what, "control": r.control,
        "status": r.status, "p50": change(&all.p50), "p50_dir": direction(&all.p50),
        "p99": change(&all.p99), "p99_dir": direction(&all.p99), "stale_reads": r.stale_reads, "errors": r.errors,
        "hits": r.hit_words(),
        "measured": if r.cold_start {
            format!("{} cold requests per arm", all.count_a.min(all.count_b))
        } else {
            format!("{:.0} s", r.measured_s)
        },
        "p50_half": format!("±{:.1}", all.p50.half_width()),
        "p99_half": if all.p99.enough_samples { format!("±{:.1}", all.p99.half_width()) } else { "n < 1000".to_owned() },
    }))
}

fn answer_context(a: &Answer) -> Value {
    json!({
        "columns": a.columns.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rows": a.rows.iter().map(|r| json!({
            "claim": r.claim,
            "statement": r.statement,
            "cells": r.cells.iter().map(|c| match c {
                Some(c) => json!({"text": c.to_string(), "class": c.verdict.as_str().replace(' ', "-"), "run": c.run}),
                None => json!({"text": "not judged", "class": "", "run": ""}),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "cold": a.cold.iter().map(|c| json!({
            "measurement": c.measurement.to_string(),
            "series": c.series.label(),
            "samples": c.samples,
            "p50_off": f(c.p50_off, 1),
            "p50_on": f(c.p50_on, 1),
            "change": change(&c.p50),
            "dir": direction(&c.p50),
        })).collect::<Vec<_>>(),
        "ops": a.ops.iter().map(|o| json!({
            "measurement": o.measurement.to_string(),
            "run": o.run,
            "off": o.off.per_request_words(),
            "on": o.on.per_request_words(),
        })).collect::<Vec<_>>(),
    })
}

/// A run's (or an A/B's) context; `charts` are (title, file name, base64 PNG).
pub(super) fn run(r: &RunReport<'_>, charts: &[(String, String, String)]) -> Value {
    let docs = r.docs;
    let first = &docs[0];
    let title = title(r);
    let m = &first.metadata.machine;
    json!({
        "title": title,
        "measurement": first.metadata.measurement.to_string(),
        "modelled": first.metadata.measurement.is_modelled(),
        "anonymous_user_write": docs.iter().find_map(|d| d.metadata.anonymous_user_write),
        "harness_version": first.metadata.harness_version,
        "targets": docs
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{}: {}", label(d, i), target_words(&d.metadata)))
            .collect::<Vec<_>>()
            .join("; "),
        "machine": format!("{} ({} {}, {} CPUs{})", m.hostname, m.os, m.arch, m.cpus, m.cpu_model.as_ref().map(|c| format!(", {c}")).unwrap_or_default()),
        "sources": r.sources,
        "environment": environment(docs),
        "arms": docs.iter().enumerate().map(|(i, d)| arm_context(d, i)).collect::<Vec<_>>(),
        "claims": claims_context(r.comparison),
        "claims_elsewhere": r.comparison.map(|c| c.claims_elsewhere.clone()).unwrap_or_default(),
        "comparison": r.comparison.map(comparison_context),
        "answers": r.comparison.and_then(|c| c.answers.as_ref()).map(answers_context),
        "thresholds": thresholds_context(docs),
        "charts": charts.iter().map(|(title, file, data)| json!({"title": title, "file": file, "data": data})).collect::<Vec<_>>(),
    })
}

/// The page title of a run report.
pub(super) fn title(r: &RunReport<'_>) -> String {
    let first = &r.docs[0];
    // Comparison labels carry the measurement already; a single run's title gets it here.
    match r.comparison {
        Some(c) => format!("{}: {} vs {}", first.metadata.scenario, shown_target(&c.a), shown_target(&c.b)),
        None => format!(
            "{} against {}{}",
            first.metadata.scenario,
            shown_target(&first.metadata.target),
            first.metadata.measurement.suffix()
        ),
    }
}
