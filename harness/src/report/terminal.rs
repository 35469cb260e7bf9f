//! The terminal exporter: a run's summary (per series count, rate, corrected
//! latency percentiles with raw p99 beside them, errors, validity, thresholds),
//! a comparison's table, plain-words lines, claims and gate, and a bench's
//! verdict table.

use std::fmt::Write;

use super::context::shown;
use super::{Exporter, Output, Report};
use crate::compare::Comparison;
use crate::findings::BenchSummary;
use crate::result::{ResultDoc, Status};
use crate::series::SeriesKey;

/// Prints nothing itself: the text goes to [`Output::terminal`] for the command
/// to print where its other lines go.
pub struct Terminal;

impl Exporter for Terminal {
    fn is_terminal(&self) -> bool {
        true
    }

    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        match report {
            Report::Run(r) => {
                for doc in r.docs {
                    out.terminal.push_str(&render(doc));
                }
                if let Some(c) = r.comparison {
                    out.terminal.push_str(&render_comparison(c));
                }
            }
            Report::Bench(s) => out.terminal.push_str(&render_bench(s)),
        }
        Ok(())
    }
}

fn label(key: &SeriesKey) -> String {
    if key.is_all() {
        key.label()
    } else {
        key.to_string()
    }
}

/// One run (or one arm): what ran, per series latency, errors and validity, thresholds.
pub fn render(doc: &ResultDoc) -> String {
    let mut out = String::new();
    run_line(&mut out, doc);
    series_table(&mut out, doc);
    outcome(&mut out, doc);
    out
}

/// The scenario, target, rate and counts.
fn run_line(out: &mut String, doc: &ResultDoc) {
    let r = &doc.run;
    let m = &doc.metadata;
    let _ = writeln!(
        out,
        "\n{} → {}{}{}",
        m.scenario,
        m.target,
        m.variant.as_ref().map(|v| format!(" ({v})")).unwrap_or_default(),
        m.measurement.suffix()
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
        doc.all().map_or(0, |s| s.requests),
        r.dropped_iterations,
        r.late_sends
    );
}

/// Per series: count, rate, corrected percentiles, raw p99, errors.
fn series_table(out: &mut String, doc: &ResultDoc) {
    let r = &doc.run;
    let _ = writeln!(
        out,
        "latency in ms from the intended start (corrected); raw = from the actual send\n{:<34} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "series", "count", "req/s", "p50", "p90", "p99", "max", "raw p99", "errors"
    );
    let secs = r.measured_s.max(1e-9);
    for (key, s) in doc.keyed_series() {
        let l = label(&key);
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
}

/// Errors, read-your-writes, status classes, the client's own cost, warnings,
/// validity and thresholds.
fn outcome(out: &mut String, doc: &ResultDoc) {
    let r = &doc.run;
    if let Some(all) = doc.all() {
        if !all.error_kinds.is_empty() || all.check_failures > 0 {
            let kinds: Vec<String> = all.error_kinds.iter().map(|(k, n)| format!("{} {n}", k.as_str())).collect();
            let _ = writeln!(
                out,
                "errors: {} failed checks; transport: {}",
                all.check_failures,
                if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
            );
        }
        if let Some(rb) = doc.series_of(&SeriesKey::tag(crate::scenario::READ_BACK_TAG)) {
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
}

/// "95 %", or the lowest confidence of the comparison's CIs (fewer under
/// `--until-decided`, whose looks spend α).
fn level(c: &Comparison) -> String {
    let lowest = c.series.iter().map(|s| s.confidence).fold(f64::INFINITY, f64::min);
    crate::change::level_words(if lowest.is_finite() { lowest } else { 0.95 })
}

fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// The pairs' answers: the headline, a row per series, the first differences.
fn answers_table(out: &mut String, a: &crate::answers::AnswersDoc) {
    let _ = writeln!(out, "\nanswers (A against B, pair by pair): {}", super::context::answers_headline(a));
    answer_row(out, 36, ["series", "compared", "differed", "rate [95 % CI]", "write between", "no answer"]);
    for l in super::context::answer_lines(a) {
        answer_row(out, 36, answer_cells(&l.series, &l));
    }
    differences(out, a, "");
}

/// One line of an answers table: a name `width` wide, then the five figures.
fn answer_row<S: std::fmt::Display>(
    out: &mut String,
    width: usize,
    [name, compared, differed, rate, between, none]: [S; 6],
) {
    let _ = writeln!(out, "{name:<width$} {compared:>9} {differed:>10} {rate:>22} {between:>14} {none:>10}");
}

fn answer_cells(name: &str, l: &super::context::AnswerLine) -> [String; 6] {
    let n = |x: u64| x.to_string();
    [name.to_owned(), n(l.compared), n(l.mismatched), l.rate.clone(), n(l.write_between), n(l.no_answer)]
}

/// The first differences kept, each as a readable diff, indented.
fn differences(out: &mut String, a: &crate::answers::AnswersDoc, run: &str) {
    for d in a.series.values().flat_map(|t| &t.differences) {
        let _ = writeln!(out, "  {run}{}", d.heading());
        for line in d.diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// A comparison: the answers first, the table per series and metric, then the
/// plain words.
pub fn render_comparison(c: &Comparison) -> String {
    let mut out = String::new();
    if let Some(a) = &c.answers {
        answers_table(&mut out, a);
    }
    let _ = writeln!(
        out,
        "\nA = {}  →  B = {}  ({}; change = (B − A) / A, negative is faster; noise band ±{:.0} %)",
        c.a,
        c.b,
        if c.interleaved { "interleaved A/B" } else { "separate runs" },
        c.noise * 100.0
    );
    let _ = writeln!(
        out,
        "{:<36} {:>6} {:>9} {:>9} {:>8} {:>20} {:>8}",
        "series",
        "metric",
        "A ms",
        "B ms",
        "change",
        format!("{} CI", level(c)),
        "rank p"
    );
    for s in &c.series {
        for (i, m) in s.metrics.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<36} {:>6} {:>9.3} {:>9.3} {:>7.1}% {:>20} {:>8}",
                if i == 0 { s.series.to_string() } else { String::new() },
                m.metric.name(),
                m.a,
                m.b,
                m.change * 100.0,
                format!("[{:.1}, {:.1}] %", m.ci_low * 100.0, m.ci_high * 100.0),
                if i == 0 { p_value(s.mann_whitney.p_value) } else { String::new() }
            );
        }
    }
    let _ = writeln!(
        out,
        "rank p: Mann–Whitney over the whole distributions, requests taken as independent (they are not): a \
         screen, not a test of p50 or of any one metric.\n"
    );
    for s in c.series.iter().filter(|s| !s.series.is_server_side()) {
        let _ = writeln!(out, "{}", s.summary);
    }
    if !c.claims.is_empty() {
        let _ = writeln!(out, "\nclaims:");
        for v in &c.claims {
            let _ = writeln!(out, "  {} — \"{}\": {}", v.name, v.statement, v.verdict.as_str().to_uppercase());
            let _ = writeln!(out, "      {}", v.reason);
        }
    }
    if !c.claims_elsewhere.is_empty() {
        let _ = writeln!(
            out,
            "claims about series this run did not record (not judged here): {}",
            c.claims_elsewhere.join(", ")
        );
    }
    if let Some(limit) = c.max_regression {
        if c.regressions.is_empty() {
            let _ =
                writeln!(out, "\nbaseline gate: no series slower than {:.0} % beyond the noise band", limit * 100.0);
        } else {
            let _ = writeln!(out, "\nbaseline gate FAILED (limit {:.0} %):", limit * 100.0);
            for r in &c.regressions {
                let _ = writeln!(
                    out,
                    "  {} {}: {:.1} % slower (95 % CI from {:.1} %)",
                    r.series,
                    r.metric.name(),
                    r.change * 100.0,
                    r.ci_low * 100.0
                );
            }
        }
    }
    for n in &c.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The verdicts for the terminal, after the runs' own summaries.
pub fn render_bench(s: &BenchSummary) -> String {
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
    if let Some(design) = &s.design {
        let _ = writeln!(out, "design: {design}");
    }
    for c in &s.capabilities {
        let _ = writeln!(out, "target offered {:<14} {:<3} {}", c.name, if c.offered { "yes" } else { "no" }, c.detail);
    }
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:<44} {:<44} {:>6} {:>6}",
        "run", "status", "p50 change [95% CI]", "p99 change [95% CI]", "errors", "stale"
    );
    let said = |c: &crate::compare::MetricChange, metric: crate::stats::Metric| {
        let word =
            if c.enough_samples { c.direction.as_str().to_owned() } else { format!("n < {}", metric.min_samples()) };
        format!("{c} {word}")
    };
    for r in &s.runs {
        if r.control {
            let _ = writeln!(out, "(the A/A control: cache off on both sides — the noise floor)");
        }
        for row in r.rows.iter().filter(|x| !x.series.is_server_side()) {
            let name = if row.series.is_all() { r.name.clone() } else { format!("  {}", shown(&row.series)) };
            let (errors, stale) = if row.series.is_all() {
                (r.errors.to_string(), r.stale_reads.to_string())
            } else {
                (String::new(), String::new())
            };
            let status = if row.series.is_all() { r.status.as_str() } else { "" };
            let _ = writeln!(
                out,
                "{name:<20} {status:<12} {:<44} {:<44} {errors:>6} {stale:>6}",
                said(&row.p50, crate::stats::Metric::P50),
                said(&row.p99, crate::stats::Metric::P99)
            );
        }
        if let Some(all) = r.all_row() {
            let traffic = if r.cold_start {
                format!(
                    "{} requests per arm, each from a fresh isolate's first iteration",
                    all.count_a.min(all.count_b)
                )
            } else {
                format!("{:.0} s of measured traffic", r.measured_s)
            };
            let _ = writeln!(
                out,
                "  ({traffic}; CI half-width ±{:.1} points at p50, ±{:.1} at p99)",
                all.p50.half_width(),
                all.p99.half_width()
            );
            let hits = r.hit_words();
            if hits != "–" {
                let _ = writeln!(out, "  (hit ratio of {}: {hits})", r.b);
            }
        }
    }
    let groups = s.groups();
    for m in &groups {
        if groups.len() > 1 {
            let _ = writeln!(out, "-- claims, {m} --");
        }
        for (run, c) in s.headline_claims_under(m) {
            let _ = writeln!(out, "claim {} ({run}): {} — {}", c.name, c.verdict.as_str().to_uppercase(), c.reason);
            if let Some((full, v)) = s.full_ab_verdict(&c.name, m).filter(|(full, _)| *full != run) {
                let _ = writeln!(out, "  beside it, the full A/B ({full}): {}", v.verdict.as_str());
            }
        }
    }
    bench_answers(&mut out, s);
    answer_table(&mut out, &s.answer());
    ranking_tables(&mut out, s);
    head_to_head_tables(&mut out, s);
    out
}

/// Per A/B, how often the arms answered differently, and the first differences.
fn bench_answers(out: &mut String, s: &BenchSummary) {
    if s.runs.iter().all(|r| r.answers.is_none()) {
        return;
    }
    let _ = writeln!(out, "\n-- answers, cache on against cache off pair by pair --");
    answer_row(out, 28, ["run", "compared", "differed", "rate [95 % CI]", "write between", "no answer"]);
    for r in &s.runs {
        let Some(doc) = &r.answers else { continue };
        for l in super::context::answer_lines(doc).into_iter().filter(|l| l.series == crate::series::ALL_TEXT) {
            answer_row(out, 28, answer_cells(&r.name, &l));
        }
    }
    for r in s.runs.iter().filter(|r| r.wrong_answers()) {
        if let Some(a) = &r.answers {
            differences(out, a, &format!("{}: ", r.name));
        }
    }
}

/// `--strategies`: one table per scenario and measurement, fastest p50 first.
fn ranking_tables(out: &mut String, s: &BenchSummary) {
    for k in &s.rankings {
        let _ = writeln!(
            out,
            "\n-- strategies, {}, {}{} (change against cache-off [95 % CI]) --",
            k.scenario,
            k.measurement,
            if k.modelled { ": a model of production, not a measurement" } else { "" }
        );
        for r in &k.rows {
            let rank = format!("{:>3}", r.rank_words);
            let _ = writeln!(out, "{rank} {:<22} p50 {} · p99 {} · {} ms", r.strategy, r.p50, r.p99, r.p50_ms);
            let _ = writeln!(
                out,
                "   hits {} · wrong answers {} · stale read-backs {} · fresh here {} · elsewhere {}",
                r.hits, r.wrong_answers, r.stale_read_backs, r.fresh_here, r.fresh_elsewhere
            );
            let _ = writeln!(
                out,
                "   per 1,000 requests {} · {} per M requests, {} a month · {}",
                r.ops_per_1000, r.cost_per_million, r.monthly_cost, r.risk
            );
        }
    }
}

/// `--strategies`: each ranking's tied leaders, re-run against each other.
fn head_to_head_tables(out: &mut String, s: &BenchSummary) {
    for h in &s.head_to_head {
        let _ = writeln!(
            out,
            "\n-- head-to-head, {}, {}: one interleaved run ({}); pairs at {:.2} % (Bonferroni) --",
            h.scenario,
            h.measurement,
            h.status,
            h.confidence_per_pair * 100.0
        );
        for r in &h.rows {
            let _ = writeln!(out, "{:>3} {:<22} p50 {:.3} ms", r.rank_words, r.strategy, r.p50_ms);
        }
        for p in &h.pairs {
            let _ = writeln!(
                out,
                "    {} against {}: {}{}",
                p.slower,
                p.faster,
                p.p50,
                if p.resolved { " slower, resolved" } else { ", not resolved" }
            );
        }
    }
}

/// The answer in one table: each claim (primary metric, percent faster with its
/// CI, verdict) per measurement, then the operations per request.
fn answer_table(out: &mut String, a: &crate::findings::Answer) {
    if !a.rows.is_empty() {
        let _ = writeln!(out, "\n-- the answer: each claim per measurement (p50 with its CI, verdict) --");
    }
    for row in &a.rows {
        let _ = writeln!(out, "{}: {}", row.claim, row.statement);
        for (m, cell) in a.columns.iter().zip(&row.cells) {
            let cell = cell.as_ref().map_or("not judged".to_owned(), ToString::to_string);
            let _ = writeln!(out, "  {:<34} {cell}", m.to_string());
        }
    }
    if !a.cold.is_empty() {
        let _ = writeln!(out, "-- a fresh isolate's requests (p50 ms, cache off → on, change [95 % CI]) --");
        for c in &a.cold {
            let _ = writeln!(
                out,
                "  {:<34} {:<14} {:.1} → {:.1} ms  {} {} ({} starts per arm)",
                c.measurement.to_string(),
                c.series.label(),
                c.p50_off,
                c.p50_on,
                c.p50,
                c.p50.direction.as_str(),
                c.samples
            );
        }
    }
    if !a.ops.is_empty() {
        let _ = writeln!(out, "-- backend operations per request (x-ops), cache off → on --");
        for o in &a.ops {
            let _ =
                writeln!(out, "  {:<40} off: {}; on: {}", o.run, o.off.per_request_words(), o.on.per_request_words());
        }
    }
}
