//! This project's worker (target-worker) and its bench protocol: `GET /health`
//! says what it is (version, cache mode and layers, latency profile, strategies);
//! the `x-bench-*` request headers, honoured only with its `BENCH_SECRET`, switch
//! a request's cache, strategy, latency profile and location; `/__bench/reset`
//! and `/__bench/seed` make every arm start from the same data.

use std::collections::BTreeMap;

use super::{SetupClient, Target, TargetInfo, TargetKind};
use crate::result::Measurement;

/// The route that says what the worker is.
pub const HEALTH: &str = "/health";
/// The bench secret: without it the worker ignores every other `x-bench-*` header.
pub const SECRET: &str = "x-bench-secret";
/// `on`, `off`, or the layers on (`bot,model-config`).
pub const CACHE: &str = "x-bench-cache";
/// A cache strategy by name (`generation`, `memory`, …).
pub const STRATEGY: &str = "x-bench-strategy";
/// A latency profile by name (`local` = measured).
pub const PROFILE: &str = "x-bench-profile";
/// The modelled edge location a request is served at.
pub const LOCATION: &str = "x-bench-location";
/// `skip` leaves out the bot check (every caller taken as no bot): the arm
/// without the work of an overhead claim's three-arm run.
pub const BOT_CHECK: &str = "x-bench-bot-check";
/// A bench namespace: every cache key of the request under `ns/<id>/` (KV, the
/// modelled edge, the isolate's memory), so a run in a fresh one starts cold.
pub const NAMESPACE: &str = "x-bench-namespace";

/// A namespace no earlier run used.
pub fn fresh_namespace() -> (&'static str, String) {
    (NAMESPACE, format!("run-{:016x}", rand::random::<u64>()))
}

/// This project's worker. `required`: it was declared so (`--target-kind
/// bench-worker`), and a target that does not answer as it does is an error;
/// otherwise (`auto`) such a target is taken for a plain HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct BenchWorker {
    pub required: bool,
}

/// What the worker's `GET /health` says of its cache.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Health {
    #[serde(default)]
    pub version: Option<String>,
    /// The target worker reports its cache mode; other servers may not.
    #[serde(default)]
    pub cache: Option<HealthCache>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct HealthCache {
    pub mode: String,
    #[serde(default)]
    pub layers: Vec<String>,
}

/// Whether a health answer is in this worker's shape: it reports its cache or
/// its latency profile (a bare `{"status":"ok"}` is any API's).
fn is_worker_health(body: &serde_json::Value) -> bool {
    body["cache"]["mode"].is_string() || body["latency_profile"]["name"].is_string()
}

fn info_of(body: &serde_json::Value) -> TargetInfo {
    let profile = &body["latency_profile"];
    let measurement = match (profile["modelled"].as_bool(), profile["name"].as_str()) {
        (Some(true), Some(name)) => Measurement::Modelled(name.to_owned()),
        _ => Measurement::Measured,
    };
    TargetInfo {
        kind: TargetKind::BenchWorker,
        version: body["version"].as_str().map(str::to_owned),
        measurement,
        anonymous_user_write: body["anonymous_user_write"].as_bool(),
    }
}

impl Target for BenchWorker {
    fn probe_path(&self) -> Option<&'static str> {
        Some(HEALTH)
    }

    fn read_probe(&self, answer: Option<(u16, &[u8])>) -> Result<TargetInfo, String> {
        let body = match answer {
            Some((200, body)) => serde_json::from_slice::<serde_json::Value>(body).ok(),
            _ => None,
        };
        match body {
            Some(b) if is_worker_health(&b) => Ok(info_of(&b)),
            _ if self.required => Err(format!(
                "the target does not answer GET {HEALTH} as this project's worker does (with its cache mode or \
                 latency profile): {}; for any other HTTP API use --target-kind http",
                match answer {
                    None => "no answer within 2 s".to_owned(),
                    Some((status, _)) => format!("status {status}"),
                }
            )),
            // Another API's health answer: its version is still worth recording.
            other => Ok(TargetInfo {
                kind: TargetKind::Http,
                version: other.as_ref().and_then(|b| b["version"].as_str().map(str::to_owned)),
                ..TargetInfo::default()
            }),
        }
    }

    fn cache_switch(&self, secret: &str, cache: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![(SECRET.into(), secret.to_owned()), (CACHE.into(), cache.to_owned())])
    }

    fn seed(
        &self,
        client: &SetupClient,
        base: &str,
        secret: &str,
        users: &BTreeMap<u64, u32>,
        reset: bool,
    ) -> Result<(), String> {
        let base = base.trim_end_matches('/');
        let h = [(SECRET, secret)];
        // Both routes work within a deployed Worker's per-invocation limits and say
        // when another call is needed; the bound only guards against a worker that
        // never says it is done.
        const MAX_CALLS: usize = 10_000;
        let refused = |route: &str, status: u16, body: String| match status {
            404 => format!("POST {base}{route}: 404: the worker has no BENCH_SECRET or it is not the one given"),
            _ => format!("POST {base}{route}: {status} {body}"),
        };
        if reset {
            let mut cursor: Option<String> = None;
            for call in 0.. {
                // The previous call's cursor: where its listing stopped.
                let ask = cursor.as_ref().map(|c| serde_json::json!({ "cursor": c }).to_string());
                let (status, body) = client.send(reqwest::Method::POST, &format!("{base}/__bench/reset"), &h, ask)?;
                if status != 200 {
                    return Err(refused("/__bench/reset", status, body));
                }
                let said = serde_json::from_str::<serde_json::Value>(&body).ok();
                let done = said.as_ref().and_then(|v| v["done"].as_bool());
                cursor = said.as_ref().and_then(|v| v["cursor"].as_str().map(str::to_owned));
                if done != Some(false) {
                    break;
                }
                if call >= MAX_CALLS {
                    return Err(format!("POST {base}/__bench/reset: not done after {MAX_CALLS} calls"));
                }
            }
        }
        for (seed, count) in users {
            let mut offset = 0u64;
            for _ in 0..MAX_CALLS {
                let body = serde_json::json!({ "users": count, "seed": seed, "offset": offset }).to_string();
                let (status, answer) =
                    client.send(reqwest::Method::POST, &format!("{base}/__bench/seed"), &h, Some(body))?;
                if status != 200 {
                    return Err(refused("/__bench/seed", status, answer));
                }
                match serde_json::from_str::<serde_json::Value>(&answer).ok().map(|v| v["next_offset"].as_u64()) {
                    Some(Some(next)) if next > offset => offset = next,
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

/// The worker's `GET /health` at `base`, as a set-up call (not measured).
pub fn get_health(client: &SetupClient, base: &str) -> Result<Health, String> {
    let url = format!("{}{HEALTH}", base.trim_end_matches('/'));
    match health_with(client, base, &[])? {
        (200, _, body) => {
            serde_json::from_str(&body).map_err(|e| format!("{url}: not the target worker's health ({e})"))
        }
        (status, _, _) => Err(format!("{url}: status {status}")),
    }
}

/// The worker's `GET /health` asked with bench headers (a strategy, a profile):
/// its status, its JSON (null when it is none) and its text.
pub fn health_with(
    client: &SetupClient,
    base: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, serde_json::Value, String), String> {
    let url = format!("{}{HEALTH}", base.trim_end_matches('/'));
    let (status, body) = client.send(reqwest::Method::GET, &url, headers, None)?;
    Ok((status, serde_json::from_str(&body).unwrap_or_default(), body))
}
