//! Latency profiles (ARCHITECTURE.md, "Modelled production"): production's KV and
//! D1 costs, modelled as a delay added to each operation in the adapters of
//! [`crate::modelled`]. Under `wrangler dev` KV and D1 are local SQLite services
//! costing about the same; a profile says what they would cost at the edge. The
//! figures and their sources live in `data/latency-profiles.json`, the one place
//! they are written down (the harness reads the same file for its reports).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The profile data file, compiled in: a Worker has no file system.
pub const PROFILES_JSON: &str = bench_seed::LATENCY_PROFILES_JSON;

/// The profile that adds nothing; what a run without a profile measures.
pub const LOCAL: &str = "local";

/// An operation a profile can delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A KV read served by the edge location's cache.
    KvHotRead,
    /// A KV read that goes past the edge cache (not read there within `cacheTtl`).
    KvColdRead,
    KvWrite,
    KvList,
    KvDelete,
    D1Read,
    D1Write,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::KvHotRead,
        Operation::KvColdRead,
        Operation::KvWrite,
        Operation::KvList,
        Operation::KvDelete,
        Operation::D1Read,
        Operation::D1Write,
    ];
}

/// A log-normal delay given by its median and 99th percentile, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Figure {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// z of the 99th percentile of the standard normal.
const Z99: f64 = 2.326_347_874;

/// No modelled delay exceeds this multiple of its p99: a log-normal's far tail is
/// a property of the formula, not of anything measured.
const TAIL_CAP: f64 = 4.0;

impl Figure {
    fn sigma(&self) -> f64 {
        (self.p99_ms / self.p50_ms).ln().max(0.0) / Z99
    }

    /// The delay for two independent uniforms in (0, 1] (Box–Muller), in ms.
    pub fn sample(&self, u1: f64, u2: f64) -> f64 {
        let z = (-2.0 * u1.max(f64::MIN_POSITIVE).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.p50_ms * (self.sigma() * z).exp()).min(self.p99_ms * TAIL_CAP)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EdgeCache {
    pub cache_ttl_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct ProfileSpec {
    description: String,
    edge_hit_share: f64,
    /// Operation → the figure's name in `figures`.
    operations: BTreeMap<Operation, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProfilesFile {
    edge_cache: EdgeCache,
    figures: BTreeMap<String, Figure>,
    profiles: BTreeMap<String, ProfileSpec>,
}

/// One named profile, its figures resolved.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Of the KV reads the edge would have cached (read there within `cacheTtl`),
    /// the share it serves hot.
    pub edge_hit_share: f64,
    pub edge_cache_ttl_ms: f64,
    pub delays: BTreeMap<Operation, Figure>,
}

impl Profile {
    /// True for a profile that adds nothing (`local`): its runs are measurements.
    pub fn is_measured(&self) -> bool {
        self.delays.is_empty()
    }

    pub fn delay(&self, op: Operation) -> Option<&Figure> {
        self.delays.get(&op)
    }
}

fn parse(json: &str) -> Result<Vec<Profile>, String> {
    let file: ProfilesFile = serde_json::from_str(json).map_err(|e| format!("latency-profiles.json: {e}"))?;
    let mut out = Vec::new();
    for (name, spec) in file.profiles {
        let mut delays = BTreeMap::new();
        for (op, figure) in spec.operations {
            let f = file
                .figures
                .get(&figure)
                .ok_or_else(|| format!("latency-profiles.json: profile {name}: no figure named {figure:?}"))?;
            if !(f.p50_ms > 0.0 && f.p99_ms >= f.p50_ms) {
                return Err(format!("latency-profiles.json: figure {figure}: need 0 < p50_ms <= p99_ms"));
            }
            delays.insert(op, *f);
        }
        if !(0.0..=1.0).contains(&spec.edge_hit_share) {
            return Err(format!("latency-profiles.json: profile {name}: edge_hit_share must lie in [0, 1]"));
        }
        out.push(Profile {
            name,
            description: spec.description,
            edge_hit_share: spec.edge_hit_share,
            edge_cache_ttl_ms: file.edge_cache.cache_ttl_s * 1000.0,
            delays,
        });
    }
    Ok(out)
}

/// Every built-in profile; the data file is checked by the tests, so a broken one
/// cannot be deployed.
pub fn profiles() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| parse(PROFILES_JSON).expect("data/latency-profiles.json is valid (tested)"))
}

/// The profile called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static Profile, String> {
    let name = name.trim();
    profiles().iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = profiles().iter().map(|p| p.name.as_str()).collect();
        format!("unknown latency profile {name:?}; known profiles: {}", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_parses_with_the_built_in_profiles() {
        let names: Vec<&str> = profiles().iter().map(|p| p.name.as_str()).collect();
        for wanted in [LOCAL, "edge-near-primary", "edge-far-from-primary", "kv-cold"] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        assert!(find(LOCAL).unwrap().is_measured());
        for p in profiles().iter().filter(|p| p.name != LOCAL) {
            assert!(!p.is_measured(), "{}", p.name);
            for op in Operation::ALL {
                assert!(p.delay(op).is_some(), "{} has no figure for {op:?}", p.name);
            }
        }
        assert!(find("mars").unwrap_err().contains("edge-far-from-primary"));
    }

    /// The samples have the stated median and p99: the uniforms come from a fixed
    /// sequence, so this checks the formula, not a clock.
    #[test]
    fn samples_have_the_stated_quantiles() {
        let f = Figure { p50_ms: 25.0, p99_ms: 100.0 };
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut uniform = || {
            // SplitMix64: a fixed, well-spread sequence.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut xs: Vec<f64> = (0..40_000).map(|_| f.sample(uniform(), uniform())).collect();
        xs.sort_by(f64::total_cmp);
        let q = |p: f64| xs[(p * xs.len() as f64) as usize];
        assert!((q(0.5) / 25.0 - 1.0).abs() < 0.03, "p50 {}", q(0.5));
        assert!((q(0.99) / 100.0 - 1.0).abs() < 0.08, "p99 {}", q(0.99));
        assert!(xs.iter().all(|x| *x > 0.0 && *x <= 400.0));
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let bad = PROFILES_JSON.replace("\"d1_read\": \"d1_far_read\"", "\"d1_read\": \"d1_nowhere\"");
        assert!(parse(&bad).unwrap_err().contains("d1_nowhere"));
    }
}
