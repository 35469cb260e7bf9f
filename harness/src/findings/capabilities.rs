//! What the target told the bench about itself, read from what the runs
//! recorded: which of the optional annotations (`x-cache`, `x-ops`,
//! `Server-Timing`) and a health route it offered, what the report cannot show
//! without each, and whether the cache-on arm showed any sign of caching at all
//! (a cache that never hits is measured as "no effect" and nothing else says so).

use serde::{Deserialize, Serialize};

use super::bench::AbSummary;
use crate::change::Direction;

/// One optional capability of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    /// `health`, `x-cache`, `x-ops`, `Server-Timing`.
    pub name: String,
    pub offered: bool,
    /// Where it was seen, or what is missing without it.
    pub detail: String,
}

/// The runs that compare a cache with none (scenarios, not the control or the layers).
fn cache_runs(runs: &[AbSummary]) -> impl Iterator<Item = &AbSummary> {
    runs.iter().filter(|r| !r.control && r.layer.is_none())
}

/// What the target offered, over the bench's runs. `health`: the route that
/// says what the target is, if it has one (`None`: it was not asked).
pub fn capabilities(runs: &[AbSummary], health: Option<&str>) -> Vec<Capability> {
    let with_cache = cache_runs(runs).filter(|r| r.cache_b.values().any(|m| m.values().any(|&n| n > 0))).count();
    let with_ops = runs.iter().filter(|r| r.ops_a.responses + r.ops_b.responses > 0).count();
    let with_timing = runs.iter().filter(|r| r.rows.iter().any(|row| row.series.is_server_side())).count();
    let n = runs.len();
    let seen = |k: usize, what: &str| format!("seen in {k} of {n} runs: {what}");
    vec![
        Capability {
            name: "health".into(),
            offered: health.is_some(),
            detail: match health {
                Some(h) => h.to_owned(),
                None => "no route says what the target is (version, cache mode): the report names it from the \
                         recipe and cannot check that each arm runs the cache mode it stands for"
                    .into(),
            },
        },
        Capability {
            name: "x-cache".into(),
            offered: with_cache > 0,
            detail: if with_cache > 0 {
                seen(with_cache, "hit ratios per layer")
            } else {
                "no x-cache header: no hit ratios, and whether the cache-on arm caches can only be read from its \
                 latency"
                    .into()
            },
        },
        Capability {
            name: "x-ops".into(),
            offered: with_ops > 0,
            detail: if with_ops > 0 {
                seen(with_ops, "KV and D1 operations per request")
            } else {
                "no x-ops header: no backend operations per request, so no reads saved or cost per request".into()
            },
        },
        Capability {
            name: "Server-Timing".into(),
            offered: with_timing > 0,
            detail: if with_timing > 0 {
                seen(with_timing, "server-side durations")
            } else {
                "no Server-Timing header: no server-side durations, so time in the worker cannot be told from \
                 time on the way to it"
                    .into()
            },
        },
    ]
}

/// A warning when the cache-on arm showed no sign of caching in any valid run:
/// no `x-cache` hit, and all requests not measurably faster than cache off.
pub fn no_sign_of_caching(runs: &[AbSummary], cache_on: &str) -> Option<String> {
    let scenario_runs: Vec<&AbSummary> = cache_runs(runs).filter(|r| r.status.is_valid()).collect();
    if scenario_runs.is_empty() {
        return None;
    }
    let hits = scenario_runs
        .iter()
        .any(|r| r.cache_b.values().any(|m| m.iter().any(|(outcome, &n)| outcome.starts_with("hit") && n > 0)));
    let faster = scenario_runs
        .iter()
        .any(|r| r.rows.iter().any(|row| row.series.is_all() && row.p50.direction == Direction::Faster));
    (!hits && !faster).then(|| {
        format!(
            "the {cache_on} arm showed no sign of caching: no x-cache hit and not measurably faster than cache off \
             at p50 in any of {} runs. Check that its cache binding is set and that its entries are written and \
             read back (the worker's log, or its KV state); a cache that never hits reads here as \"no effect\"",
            scenario_runs.len()
        )
    })
}
