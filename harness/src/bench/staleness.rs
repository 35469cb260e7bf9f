//! How stale each cache strategy gets, measured (not assumed): a user's write,
//! then that user's reads until one shows it — at the location that took the
//! write and at another one (`x-bench-location`: another isolate's `memory`
//! layer; under a latency profile also another edge cache, with KV's eventual
//! propagation modelled). Reported: the time from the write's answer to the first
//! fresh read, and the stale reads seen before it.
//!
//! Probes of every strategy run at once, after the A/Bs of a measurement (never
//! beside one): each waits up to [`MAX_WAIT`] for a fresh read, which would
//! otherwise add up to minutes per strategy.

use std::time::{Duration, Instant};

use crate::client::TlsOptions;
use crate::findings::StrategyInfo;
pub use crate::findings::{Side, Staleness};
use crate::result::Measurement;
use crate::target::{worker, SetupClient};

/// The users the probes write with (never used by a scenario).
pub const PROBE_SEED: u64 = 1515;
/// Probes per strategy and measurement (one user each).
pub const PROBES_PER_STRATEGY: u32 = 4;
pub use crate::findings::strategies::MAX_WAIT;
/// The location that did not take the write.
const OTHER_LOCATION: &str = "1";
const FIRST_POLL: Duration = Duration::from_millis(25);
const MAX_POLL: Duration = Duration::from_secs(1);

/// What a probe needs to address the target as one user.
struct Probe<'a> {
    client: SetupClient,
    base: String,
    headers: Vec<(&'static str, String)>,
    strategy: &'a str,
}

impl Probe<'_> {
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        location: &str,
        body: Option<String>,
    ) -> Result<(u16, String), String> {
        let mut headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push((worker::LOCATION, location));
        self.client.send(method, &format!("{}{path}", self.base), &headers, body)
    }

    fn list_shows(&self, provider: &str, location: &str) -> Result<bool, String> {
        let (status, body) = self.send(reqwest::Method::GET, "/models", location, None)?;
        if status != 200 {
            return Err(format!("GET /models: {status} {}", body.chars().take(200).collect::<String>()));
        }
        Ok(body.contains(&format!("\"provider\":\"{provider}\"")))
    }

    /// A provider the user has not enabled and whose models the list lacks.
    fn disabled_provider(&self) -> Result<String, String> {
        let (status, body) = self.send(reqwest::Method::GET, "/user/providers", "0", None)?;
        let said: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/user/providers ({status}): {e}"))?;
        let candidates = said["providers"].as_array().cloned().unwrap_or_default();
        for p in candidates.iter().filter(|p| p["enabled"] == false) {
            let id = p["provider_id"].as_str().unwrap_or_default();
            if !id.is_empty() && !self.list_shows(id, "0")? {
                return Ok(id.to_owned());
            }
        }
        Err(format!("{}: the probe user has no provider left to enable", self.strategy))
    }

    /// Reads at `location` until the list shows `provider` or [`MAX_WAIT`] has
    /// passed since `written`.
    fn until_fresh(&self, provider: &str, location: &str, written: Instant) -> Result<Side, String> {
        let mut side = Side::default();
        let mut pause = FIRST_POLL;
        loop {
            if self.list_shows(provider, location)? {
                side.fresh_after_ms.push(written.elapsed().as_secs_f64() * 1000.0);
                return Ok(side);
            }
            if side.stale_reads == 0 {
                side.first_read_stale = 1;
            }
            side.stale_reads += 1;
            if written.elapsed() >= MAX_WAIT {
                side.never_fresh = 1;
                return Ok(side);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Both locations read (their caches and edge copies filled), the write, then
    /// the reads until fresh at each.
    fn run(&self) -> Result<(Side, Side), String> {
        let provider = self.disabled_provider()?;
        for location in ["0", "0", OTHER_LOCATION, OTHER_LOCATION] {
            self.list_shows(&provider, location)?;
        }
        let body = serde_json::json!({ "providerId": provider, "apiKey": "sk-staleness-probe" }).to_string();
        let (status, answer) = self.send(reqwest::Method::POST, "/user/store-provider-api-key", "0", Some(body))?;
        let written = Instant::now();
        if status != 200 {
            return Err(format!("the write was answered {status}: {}", answer.chars().take(200).collect::<String>()));
        }
        let same = self.until_fresh(&provider, "0", written)?;
        let other = self.until_fresh(&provider, OTHER_LOCATION, written)?;
        Ok((same, other))
    }
}

/// Probes every strategy at once on `target` under `measurement`; strategy `k`
/// writes with users `k * PROBES_PER_STRATEGY ..` of [`PROBE_SEED`].
pub fn probe_all(
    tls: &TlsOptions,
    target: &str,
    secret: &str,
    strategies: &[StrategyInfo],
    measurement: &Measurement,
) -> Vec<Staleness> {
    let base = target.trim_end_matches('/');
    // The probes start cold too: a namespace of their own.
    let namespace = worker::fresh_namespace();
    let probe = |k: usize, j: u32| {
        let strategy = strategies[k].name.as_str();
        let user = bench_seed::seeded_user(secret, PROBE_SEED, k as u32 * PROBES_PER_STRATEGY + j);
        let mut headers = vec![
            (worker::SECRET, secret.to_owned()),
            (worker::CACHE, "on".to_owned()),
            (worker::STRATEGY, strategy.to_owned()),
            ("user-agent", BROWSER_UA.to_owned()),
            ("cookie", format!("session={}", user.session_id)),
            (namespace.0, namespace.1.clone()),
        ];
        headers.extend(measurement.profile().map(|p| (worker::PROFILE, p.to_owned())));
        // A client per probe thread: the probes time their reads, and threads
        // taking turns on one client's runtime would add each other's waits.
        let client = SetupClient::new(tls)?;
        Probe { client, base: base.to_owned(), headers, strategy }.run()
    };
    let mut out: Vec<Staleness> = strategies
        .iter()
        .map(|s| Staleness {
            strategy: s.name.clone(),
            measurement: measurement.clone(),
            probes: 0,
            same: Side::default(),
            other: Side::default(),
            errors: Vec::new(),
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..strategies.len())
            .flat_map(|k| (0..PROBES_PER_STRATEGY).map(move |j| (k, j)))
            .map(|(k, j)| (k, scope.spawn(move || probe(k, j))))
            .collect();
        for (k, handle) in handles {
            let s = &mut out[k];
            match handle.join() {
                Ok(Ok((same, other))) => {
                    s.probes += 1;
                    s.same.add(same);
                    s.other.add(other);
                }
                Ok(Err(e)) => s.errors.push(e),
                Err(_) => s.errors.push("a probe thread panicked".into()),
            }
        }
    });
    out
}

const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_add_up() {
        let mut a = Side { first_read_stale: 1, stale_reads: 3, fresh_after_ms: vec![10.0], never_fresh: 0 };
        a.add(Side { first_read_stale: 0, stale_reads: 0, fresh_after_ms: vec![2.0], never_fresh: 1 });
        assert_eq!((a.first_read_stale, a.stale_reads, a.never_fresh), (1, 3, 1));
        assert_eq!(a.max_ms(), Some(10.0));
        assert_eq!(Side::default().max_ms(), None);
    }
}
