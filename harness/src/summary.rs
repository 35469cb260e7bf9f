//! The terminal summary of a run: per series count, rate, corrected latency
//! percentiles (raw p99 beside them), errors; then the run's validity and the
//! threshold verdicts.

use std::fmt::Write;

use crate::result::{ResultDoc, Status};

fn label(series: &str) -> Option<String> {
    match series {
        "*" => Some("all requests".into()),
        s if s.starts_with("tag:") || s.starts_with("step:") || s.starts_with("cache:") => Some(s.to_owned()),
        _ => None,
    }
}

pub fn render(doc: &ResultDoc) -> String {
    let mut out = String::new();
    let r = &doc.run;
    let m = &doc.metadata;
    let _ = writeln!(
        out,
        "\n{} → {}{}",
        m.scenario,
        m.target,
        m.variant.as_ref().map(|v| format!(" ({v})")).unwrap_or_default()
    );
    let rate = match r.target_rate {
        Some(t) => format!("{:.1} it/s achieved of {:.1} target", r.achieved_rate, t),
        None => format!("{:.1} it/s", r.achieved_rate),
    };
    let _ = writeln!(
        out,
        "measured {:.1} s after {:.1} s warm-up: {} requests, {rate}; {} dropped, {} late sends",
        r.measured_s,
        r.warmup_s,
        doc.series.get("*").map_or(0, |s| s.requests),
        r.dropped_iterations,
        r.late_sends
    );
    let _ = writeln!(
        out,
        "latency in ms from the intended start (corrected); raw = from the actual send\n{:<34} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "series", "count", "req/s", "p50", "p90", "p99", "max", "raw p99", "errors"
    );
    let secs = r.measured_s.max(1e-9);
    for (name, s) in &doc.series {
        let Some(l) = label(name) else { continue };
        let _ = writeln!(
            out,
            "{:<34} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>7}",
            l,
            s.requests,
            s.requests as f64 / secs,
            s.corrected_ms.p50,
            s.corrected_ms.p90,
            s.corrected_ms.p99,
            s.corrected_ms.max,
            s.raw_ms.p99,
            s.errors
        );
    }
    if let Some(all) = doc.series.get("*") {
        if !all.error_kinds.is_empty() || all.check_failures > 0 {
            let kinds: Vec<String> = all.error_kinds.iter().map(|(k, n)| format!("{} {n}", k.as_str())).collect();
            let _ = writeln!(
                out,
                "errors: {} failed checks; transport: {}",
                all.check_failures,
                if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
            );
        }
        if let Some(rb) = doc.series.get(&crate::recorder::tag_series(crate::scenario::READ_BACK_TAG)) {
            let _ = writeln!(
                out,
                "read-your-writes: {} read-backs, {} stale{}",
                rb.requests,
                rb.stale_reads,
                if rb.stale_reads > 0 { " (a read after a write did not show it: counted as errors)" } else { "" }
            );
        }
        let statuses: Vec<String> = all.status.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "status: {}", statuses.join(", "));
    }
    let _ = writeln!(
        out,
        "client: {:.0} % of a core, {:.1} µs CPU per request, peak RSS {:.1} MiB",
        r.client_cpu_share * 100.0,
        r.client_cpu_us_per_request,
        r.client_max_rss_kib as f64 / 1024.0
    );
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    match r.status {
        Status::Invalid => {
            for reason in &r.invalid_reasons {
                let _ = writeln!(out, "INVALID: {reason}");
            }
        }
        Status::Interrupted => {
            let _ = writeln!(out, "interrupted: the figures cover the part that ran");
        }
        _ => {}
    }
    for t in &doc.thresholds {
        let _ = writeln!(
            out,
            "threshold {} {:<24} {} (actual {:.3} {})",
            t.series,
            t.threshold,
            if t.pass { "pass" } else { "FAIL" },
            t.actual,
            t.unit
        );
    }
    out
}
