//! The terminal form of a comparison: a table per series and metric, the
//! plain-words lines, claim verdicts, regressions and notes.

use std::fmt::Write;

use crate::compare::Comparison;

fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
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
        "series", "metric", "A ms", "B ms", "change", "95 % CI", "MW p"
    );
    for s in &c.series {
        for (i, m) in s.metrics.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<36} {:>6} {:>9.3} {:>9.3} {:>7.1}% {:>20} {:>8}",
                if i == 0 { s.series.as_str() } else { "" },
                m.metric.name(),
                m.a,
                m.b,
                m.change * 100.0,
                format!("[{:.1}, {:.1}] %", m.ci_low * 100.0, m.ci_high * 100.0),
                if i == 0 { p_value(s.mann_whitney.p_value) } else { String::new() }
            );
        }
    }
    let _ = writeln!(out);
    for s in c.series.iter().filter(|s| !s.series.contains(" server:")) {
        let _ = writeln!(out, "{}", s.summary);
    }
    if !c.claims.is_empty() {
        let _ = writeln!(out, "\nclaims:");
        for v in &c.claims {
            let _ = writeln!(out, "  {} — \"{}\": {}", v.name, v.statement, v.verdict.as_str().to_uppercase());
            let _ = writeln!(out, "      {}", v.reason);
        }
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
