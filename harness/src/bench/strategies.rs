//! `harness bench --strategies`: which cache strategies of the worker to rank, as
//! the target itself describes them (`GET /health` with `x-bench-strategy`: its
//! name, consistency contract and risk), checked before anything is measured.

use super::BenchError;
use crate::target::{worker, SetupClient};

/// `--strategies all`: every strategy the target knows.
pub const ALL: &str = "all";

/// The strategy the worker runs by default: the one the claims are judged on.
pub const DEFAULT: &str = bench_seed::strategies::DEFAULT;

pub use crate::findings::StrategyInfo;

fn health(
    client: &SetupClient,
    target: &str,
    secret: &str,
    strategy: Option<&str>,
) -> Result<serde_json::Value, BenchError> {
    let mut headers = vec![(worker::SECRET, secret)];
    if let Some(s) = strategy {
        headers.push((worker::STRATEGY, s));
    }
    let (status, said, body) = worker::health_with(client, target, &headers)
        .map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
    if status != 200 {
        return Err(BenchError::Setup(format!("{target}: {status}: {}", said["error"].as_str().unwrap_or(&body))));
    }
    Ok(said)
}

/// The strategies `wanted` names (`all`: every one the target knows), in the
/// order given, each checked to be served by `target`.
pub fn resolve(
    client: &SetupClient,
    target: &str,
    secret: &str,
    wanted: &[String],
) -> Result<Vec<StrategyInfo>, BenchError> {
    let known: Vec<String> = health(client, target, secret, None)?["cache"]["strategies"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if known.is_empty() {
        return Err(BenchError::Server(format!(
            "{target} does not list cache strategies in GET /health: is it a worker of this version?"
        )));
    }
    let mut names: Vec<String> = Vec::new();
    for w in wanted.iter().flat_map(|w| w.split(',')).map(str::trim).filter(|w| !w.is_empty()) {
        let add: Vec<String> = if w == ALL { known.clone() } else { vec![w.to_owned()] };
        for name in add {
            if !known.contains(&name) {
                return Err(BenchError::Setup(format!(
                    "--strategies: unknown strategy {name:?}; the target knows {} (or all)",
                    known.join(", ")
                )));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let said = health(client, target, secret, Some(&name))?;
            let cache = &said["cache"];
            if cache["strategy"].as_str() != Some(name.as_str()) {
                return Err(BenchError::Server(format!("{target} did not switch to strategy {name:?}: {cache}")));
            }
            let text = |k: &str| cache[k].as_str().unwrap_or_default().to_owned();
            Ok(StrategyInfo { contract: text("contract"), risk: text("risk"), name })
        })
        .collect()
}

/// The order the strategies run in for the `i`-th scenario: rotated, so that no
/// strategy always runs first (or last) while the machine warms up or drifts.
pub fn rotated(strategies: &[StrategyInfo], i: usize) -> Vec<&StrategyInfo> {
    let n = strategies.len().max(1);
    (0..strategies.len()).map(|k| &strategies[(k + i) % n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_puts_each_strategy_first_once() {
        let s: Vec<StrategyInfo> = ["a", "b", "c"]
            .iter()
            .map(|n| StrategyInfo { name: (*n).into(), contract: String::new(), risk: String::new() })
            .collect();
        let firsts: Vec<&str> = (0..3).map(|i| rotated(&s, i)[0].name.as_str()).collect();
        assert_eq!(firsts, ["a", "b", "c"]);
        assert_eq!(rotated(&s, 1).iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
    }
}
