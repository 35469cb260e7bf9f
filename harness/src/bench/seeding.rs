//! The seeding protocol of a bench: which users each seed must provide, and
//! resetting and seeding every target before a scenario runs so that both arms
//! start from the same data. `harness seed` runs the same steps on its own (a
//! Kubernetes Job seeds once before its shards run with `--no-seed`).

use std::collections::BTreeMap;

use super::staleness;
use crate::scenario::Scenario;
use crate::target::{SetupClient, Target};

/// Users each seed must provide: the largest count any scenario asks for, and
/// the staleness probes' users of `strategies` strategies.
pub fn users_per_seed(scenarios: &[Scenario], strategies: usize) -> BTreeMap<u64, u32> {
    let mut users: BTreeMap<u64, u32> = BTreeMap::new();
    for u in scenarios.iter().filter_map(|s| s.users.as_ref()) {
        let n = users.entry(u.seed).or_insert(0);
        *n = (*n).max(u.count);
    }
    if strategies > 0 {
        users.insert(staleness::PROBE_SEED, strategies as u32 * staleness::PROBES_PER_STRATEGY);
    }
    users
}

/// Resets (when `reset`) and seeds `users` on each distinct target of `urls`.
pub fn seed_all(
    target: &dyn Target,
    client: &SetupClient,
    urls: &[&str],
    secret: &str,
    users: &BTreeMap<u64, u32>,
    reset: bool,
) -> Result<(), String> {
    let mut done: Vec<&str> = Vec::new();
    for url in urls {
        if !done.contains(url) {
            target.seed(client, url, secret, users, reset)?;
            done.push(url);
        }
    }
    Ok(())
}
