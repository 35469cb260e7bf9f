//! The gate's words: a few terminal lines, and a Markdown summary for a CI
//! step summary (`$GITHUB_STEP_SUMMARY`): pipe tables, which render on the
//! run's page where fixed-width text collapses.

use std::fmt::Write as _;

use super::{GateReport, Outcome, Side};

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1} %", x * 100.0)
    } else {
        "–".into()
    }
}

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "–".into()
    }
}

fn side(s: &Side) -> String {
    match &s.tree {
        Some(t) => {
            let short: String = t.commit.chars().take(10).collect();
            let dirty = if t.uncommitted { ", with uncommitted changes" } else { "" };
            format!("{} ({short}{dirty})", t.given)
        }
        None => s.urls.join(" and "),
    }
}

/// What the outcome means for whoever reads the check.
fn meaning(r: &GateReport) -> String {
    let tol = format!("{:.1} %", r.tolerance * 100.0);
    let conf = format!("{:.0} %", r.confidence * 100.0);
    match r.outcome {
        Outcome::Regression => format!("head is slower than base by more than {tol} on a primary ({conf} confidence)"),
        Outcome::NoRegression => {
            format!("head is at most {tol} slower than base on every primary ({conf} confidence)")
        }
        Outcome::Undetermined => format!(
            "not enough evidence to say whether head is more than {tol} slower: not a pass; rerun with a larger \
             --until-decided budget, or look at the run"
        ),
    }
}

/// The terminal's summary, after the progress lines.
pub fn terminal(r: &GateReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\ngate: base {} → head {}", side(&r.base), side(&r.head));
    for d in &r.decisions {
        let _ = writeln!(
            out,
            "  {:<20} {:<12} base {:>9} ms  head {:>9} ms  {:>9} [{}, {}]  {}",
            d.scenario,
            d.primary,
            ms(d.base_ms),
            ms(d.head_ms),
            pct(d.change),
            pct(d.ci_low),
            pct(d.ci_high),
            d.outcome.words()
        );
    }
    let _ = writeln!(out, "gate: {}: {}", r.outcome.words(), meaning(r));
    let _ = writeln!(out, "why: {}", r.reason);
    out
}

/// The Markdown summary.
pub fn markdown(r: &GateReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Regression gate: {}\n", r.outcome.words());
    let _ = writeln!(out, "**{}.**\n", capitalised(&meaning(r)));
    let _ = writeln!(out, "base {} → head {}\n", side(&r.base), side(&r.head));
    let _ = writeln!(out, "| scenario | primary | base (ms) | head (ms) | change | CI | outcome |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|---|");
    for d in &r.decisions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} to {} | **{}** |",
            d.scenario,
            d.primary.replace('*', "\\*"),
            ms(d.base_ms),
            ms(d.head_ms),
            pct(d.change),
            pct(d.ci_low),
            pct(d.ci_high),
            d.outcome.words()
        );
    }
    let _ = writeln!(
        out,
        "\nTolerance {:+.1} %; each CI at {:.2} % so that the gate's {} decisions hold together at {:.0} %.\n",
        r.tolerance * 100.0,
        r.ci_confidence * 100.0,
        r.decisions.len(),
        r.confidence * 100.0
    );
    for d in &r.decisions {
        let _ = writeln!(out, "- {} {}: {}", d.scenario, d.primary.replace('*', "\\*"), d.reason);
    }
    let _ = writeln!(out, "\n<details><summary>Shown, never gated</summary>\n");
    let _ = writeln!(out, "| scenario | series | metric | change | CI |");
    let _ = writeln!(out, "|---|---|---|---:|---|");
    for s in &r.scenarios {
        for (series, metric, change, lo, hi) in &s.shown {
            let _ = writeln!(
                out,
                "| {} | {} | {metric} | {} | {} to {} |",
                s.scenario,
                series.replace('*', "\\*"),
                pct(*change),
                pct(*lo),
                pct(*hi)
            );
        }
    }
    let _ = writeln!(out);
    for s in &r.scenarios {
        let answers = match s.answers {
            Some((compared, 0)) => format!("base and head answered alike in all {compared} pairs"),
            Some((compared, differed)) => {
                format!("**base and head answered {differed} of {compared} pairs differently** (see the comparison)")
            }
            None => "answers not compared".into(),
        };
        let _ = writeln!(
            out,
            "- {}: {} + {} measured requests over {:.0} s, {} of at most {} looks; {answers}. Each look: {}.",
            s.scenario, s.requests[0], s.requests[1], s.measured_s, s.looks, s.planned_looks, s.load
        );
    }
    let _ = writeln!(out, "\nDesign: {}.\n", r.design);
    for n in &r.notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(out, "\nWall time {:.0} s.\n</details>", r.wall_s);
    out
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().collect::<String>() + c.as_str())
}
