//! The bench's own report: `index.html` (self-contained: inline CSS, the chart as
//! an embedded PNG, links only to the per-run reports beside it), `summary.md`,
//! `bench.json` (the verdict table as data) and `junit.xml`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::{BenchSummary, Change, Row};
use crate::report::charts::{bar_chart, Bar};

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1} %", x * 100.0)
    } else {
        "–".into()
    }
}

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".into()
    }
}

/// "−12.3 % [−15.0, −9.1]": the change of B against A and its 95 % CI.
fn change(c: &Change) -> String {
    format!("{} [{:+.1}, {:+.1}]", pct(c.change), c.ci_low * 100.0, c.ci_high * 100.0)
}

/// `faster`, `slower` or `same`, as a CSS class and a word.
fn direction(c: &Change) -> &str {
    match c.direction.as_str() {
        "faster" => "faster",
        "slower" => "slower",
        _ => "same",
    }
}

fn shown(series: &str) -> String {
    let (base, server) = match series.split_once(" server:") {
        Some((b, s)) => (b, Some(s)),
        None => (series, None),
    };
    let base = if base == crate::recorder::ALL {
        "all requests".to_owned()
    } else {
        base.trim_start_matches("tag:").to_owned()
    };
    match server {
        Some(s) => format!("{base} — server-side `{s}`"),
        None => base,
    }
}

fn row_context(r: &Row) -> Value {
    json!({
        "series": shown(&r.series),
        "server_side": r.series.contains(" server:"),
        "count": format!("{} / {}", r.count_a, r.count_b),
        "p50_a": ms(r.p50_a), "p50_b": ms(r.p50_b), "p50": change(&r.p50), "p50_dir": direction(&r.p50),
        "p99_a": ms(r.p99_a), "p99_b": ms(r.p99_b), "p99": change(&r.p99), "p99_dir": direction(&r.p99),
        "summary": r.summary,
    })
}

/// The client-side rows lead; server-side timings follow in their own table.
fn context(s: &BenchSummary, chart: Option<String>) -> Value {
    let runs: Vec<Value> = s
        .runs
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
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
                "rows": r.rows.iter().filter(|x| !x.series.contains(" server:")).map(row_context).collect::<Vec<_>>(),
                "server_rows": r.rows.iter().filter(|x| x.series.contains(" server:")).map(row_context).collect::<Vec<_>>(),
                "claims": r.claims.iter().map(|c| json!({
                    "name": c.name, "statement": c.statement, "verdict": c.verdict.as_str(),
                    "class": c.verdict.as_str().replace(' ', "-"), "reason": c.reason,
                })).collect::<Vec<_>>(),
                "report": r.report,
                "result": r.result,
            })
        })
        .collect();
    let headline: Vec<Value> = s
        .headline_claims()
        .into_iter()
        .map(|(run, c)| {
            json!({
                "run": run, "name": c.name, "statement": c.statement, "verdict": c.verdict.as_str(),
                "class": c.verdict.as_str().replace(' ', "-"), "reason": c.reason,
            })
        })
        .collect();
    let overall: Vec<Value> = s
        .runs
        .iter()
        .filter_map(|r| {
            let all = r.rows.iter().find(|x| x.series == crate::recorder::ALL)?;
            Some(json!({
                "name": r.name, "what": match &r.layer { Some(l) => format!("off → only {l} on ({})", r.scenario), None => "cache-off → cache-on".to_owned() },
                "status": r.status, "p50": change(&all.p50), "p50_dir": direction(&all.p50),
                "p99": change(&all.p99), "p99_dir": direction(&all.p99), "stale_reads": r.stale_reads, "errors": r.errors,
            }))
        })
        .collect();
    json!({
        "title": format!("Cache benchmark — {}", s.mode),
        "started_at": s.started_at,
        "wall": format!("{:.0} s ({:.1} min)", s.wall_s, s.wall_s / 60.0),
        "mode": s.mode,
        "quick": s.quick,
        "environment": s.environment,
        "target_on": crate::report::shown_target(&s.target_on),
        "target_off": crate::report::shown_target(&s.target_off),
        "harness_version": s.harness_version,
        "worker_version": s.worker_version.clone().unwrap_or_else(|| "not reported".into()),
        "git": s.git_revision.clone().unwrap_or_else(|| "–".into()),
        "valid": s.valid,
        "invalid_reasons": s.invalid_reasons,
        "notes": s.notes,
        "headline": headline,
        "overall": overall,
        "runs": runs,
        "chart": chart,
    })
}

/// p50 change of every request, per run, with its CI: the bench at a glance.
fn draw_chart(s: &BenchSummary, dir: &Path) -> Result<Option<(std::path::PathBuf, String)>, String> {
    let bars: Vec<Bar> = s
        .runs
        .iter()
        .filter_map(|r| {
            let all = r.rows.iter().find(|x| x.series == crate::recorder::ALL)?;
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
    let title = "Change of p50 latency, all requests (negative = faster with the cache), 95 % CI";
    bar_chart(&path, title, "change of p50 (%)", &bars)?;
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some((path, STANDARD.encode(data))))
}

pub fn write(s: &BenchSummary, dir: &Path) -> Result<(), String> {
    let chart = draw_chart(s, dir)?;
    let ctx = context(s, chart.map(|(_, data)| data));
    let env = crate::report::environment_templates()?;
    let render = |name: &str, ctx: &Value| {
        env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| format!("template {name}: {e}"))
    };
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("index.html", render("bench.html", &ctx)?)?;
    write("summary.md", render("bench.md", &ctx)?)?;
    write("bench.json", serde_json::to_string_pretty(s).map_err(|e| e.to_string())? + "\n")?;
    let mut cases = vec![json!({
        "class": "bench", "name": "the bench is valid", "pass": s.valid, "message": s.invalid_reasons.join("; "),
    })];
    for r in &s.runs {
        cases.push(json!({
            "class": "run", "name": format!("{} is valid", r.name), "pass": r.status == "valid",
            "message": r.invalid_reasons.join("; "),
        }));
        cases.push(json!({
            "class": "thresholds", "name": format!("{} thresholds", r.name), "pass": r.thresholds_failed.is_empty(),
            "message": r.thresholds_failed.join("; "),
        }));
    }
    // Claims are findings: reported, and failures only under --require-claims.
    for (run, c) in s.headline_claims() {
        cases.push(json!({
            "class": "claim", "name": format!("{}: {} ({run})", c.name, c.statement), "pass": c.verdict.holds(),
            "message": format!("{}: {}", c.verdict.as_str(), c.reason),
        }));
    }
    let failures = cases.iter().filter(|c| c["pass"] != true).count();
    write(
        "junit.xml",
        render("junit.xml", &json!({ "title": "harness bench", "cases": cases, "failures": failures }))?,
    )?;
    Ok(())
}

/// The verdicts for the terminal, after the runs' own summaries.
pub fn console(s: &BenchSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "\n== harness bench: {} in {:.0} s ==", s.mode, s.wall_s);
    if !s.valid {
        let _ = writeln!(
            out,
            "INVALID: {}",
            if s.invalid_reasons.is_empty() { "no run completed".to_owned() } else { s.invalid_reasons.join("; ") }
        );
    }
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:<30} {:<30} {:>6} {:>6}",
        "run", "status", "p50 change [95% CI]", "p99 change [95% CI]", "errors", "stale"
    );
    for r in &s.runs {
        for row in r.rows.iter().filter(|x| !x.series.contains(" server:")) {
            let name =
                if row.series == crate::recorder::ALL { r.name.clone() } else { format!("  {}", shown(&row.series)) };
            let (errors, stale) = if row.series == crate::recorder::ALL {
                (r.errors.to_string(), r.stale_reads.to_string())
            } else {
                (String::new(), String::new())
            };
            let status = if row.series == crate::recorder::ALL { r.status.as_str() } else { "" };
            let _ = writeln!(
                out,
                "{name:<20} {status:<12} {:<30} {:<30} {errors:>6} {stale:>6}",
                change(&row.p50),
                change(&row.p99)
            );
        }
    }
    for (run, c) in s.headline_claims() {
        let _ = writeln!(out, "claim {} ({run}): {} — {}", c.name, c.verdict.as_str().to_uppercase(), c.reason);
    }
    out
}
