//! `harness bench --profile NAME`: which latency profiles the bench runs under,
//! checked against the target before anything is measured, and the figures with
//! their sources for the report. The worker owns the profiles
//! (`bench-seed/data/latency-profiles.json`); the harness reads the same file
//! only to show what each figure is and where it comes from.

use serde::Deserialize;

use super::BenchError;
use crate::result::Measurement;
use crate::target::{worker, SetupClient};

/// The worker's profile file, compiled in for the report's sources table.
const PROFILES_JSON: &str = bench_seed::LATENCY_PROFILES_JSON;

/// The profile that adds nothing: a measurement.
pub const LOCAL: &str = "local";

/// `--profile all`: every built-in profile, `local` first.
pub const ALL: &str = "all";

pub use crate::findings::{FigureSource, ProfileSummary};

#[derive(Deserialize)]
struct File {
    figures: std::collections::BTreeMap<String, RawFigure>,
    profiles: std::collections::BTreeMap<String, RawProfile>,
}

#[derive(Deserialize)]
struct RawFigure {
    p50_ms: f64,
    p99_ms: f64,
    source: String,
    url: String,
    date: String,
    estimate: bool,
    note: String,
}

#[derive(Deserialize)]
struct RawProfile {
    description: String,
    edge_hit_share: f64,
    operations: std::collections::BTreeMap<String, String>,
}

fn file() -> File {
    serde_json::from_str(PROFILES_JSON).expect("the worker's latency-profiles.json parses (tested in both crates)")
}

/// The built-in profiles' names, `local` first.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = file().profiles.into_keys().collect();
    names.sort_by_key(|n| (n != LOCAL, n.clone()));
    names
}

/// The figures used by `profiles` (names), with their sources.
pub fn sources(profiles: &[String]) -> (Vec<ProfileSummary>, Vec<FigureSource>) {
    let f = file();
    let mut used = std::collections::BTreeSet::new();
    let mut summaries = Vec::new();
    for name in profiles {
        let Some(p) = f.profiles.get(name) else { continue };
        used.extend(p.operations.values().cloned());
        summaries.push(ProfileSummary {
            name: name.clone(),
            description: p.description.clone(),
            edge_hit_share: p.edge_hit_share,
            operations: p.operations.iter().map(|(op, fig)| (op.clone(), fig.clone())).collect(),
        });
    }
    let figures = used
        .into_iter()
        .filter_map(|name| {
            let r = f.figures.get(&name)?;
            Some(FigureSource {
                name,
                p50_ms: r.p50_ms,
                p99_ms: r.p99_ms,
                source: r.source.clone(),
                url: r.url.clone(),
                date: r.date.clone(),
                estimate: r.estimate,
                note: r.note.clone(),
            })
        })
        .collect();
    (summaries, figures)
}

/// The measurements a bench makes, in order: `--profile` values (`all` expanded,
/// duplicates dropped), or a plain measurement when none is given.
pub fn resolve(requested: &[String]) -> Result<Vec<Measurement>, BenchError> {
    let known = names();
    let mut out: Vec<Measurement> = Vec::new();
    for name in requested {
        let expanded = if name == ALL { known.clone() } else { vec![name.trim().to_owned()] };
        for n in expanded {
            if !known.contains(&n) {
                return Err(BenchError::Setup(format!(
                    "--profile {n:?} is not a latency profile; known: {}, or {ALL} (bench-seed/data/latency-profiles.json)",
                    known.join(", ")
                )));
            }
            let m = if n == LOCAL { Measurement::Measured } else { Measurement::Modelled(n) };
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        out.push(Measurement::Measured);
    }
    Ok(out)
}

/// Asks `target` to confirm it knows every modelled profile: a deployed worker of
/// another version may not, and a run under an unknown profile would be refused
/// request by request.
pub fn check_target(
    client: &SetupClient,
    target: &str,
    secret: &str,
    wanted: &[Measurement],
) -> Result<(), BenchError> {
    for profile in wanted.iter().filter_map(Measurement::profile) {
        let headers = [(worker::SECRET, secret), (worker::PROFILE, profile)];
        let (status, said, body) = worker::health_with(client, target, &headers)
            .map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
        if status != 200 || said["latency_profile"]["name"].as_str() != Some(profile) {
            return Err(BenchError::Server(format!(
                "{target} does not run latency profile {profile:?} (status {status}: {}): is it a worker of this \
                 version, with BENCH_SECRET set?",
                body.chars().take(200).collect::<String>()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve_in_order_with_local_as_a_measurement() {
        let got = resolve(&["edge-far-from-primary".into(), "local".into(), "edge-far-from-primary".into()]).unwrap();
        assert_eq!(got, vec![Measurement::Modelled("edge-far-from-primary".into()), Measurement::Measured]);
        assert_eq!(resolve(&[]).unwrap(), vec![Measurement::Measured]);
        let all = resolve(&[ALL.into()]).unwrap();
        assert_eq!(all[0], Measurement::Measured);
        assert!(all.contains(&Measurement::Modelled("kv-cold".into())));
        let e = resolve(&["edge".into()]).unwrap_err().to_string();
        assert!(e.contains("edge-near-primary"), "{e}");
    }

    #[test]
    fn every_used_figure_has_a_source() {
        let (profiles, figures) = sources(&names());
        assert!(profiles.len() >= 4);
        assert!(figures.len() >= 7);
        assert!(figures.iter().all(|f| !f.source.is_empty() && f.url.starts_with("https://") && !f.date.is_empty()));
    }
}
