//! The target seam: everything the harness knows about a target beyond plain
//! HTTP. The runner, the bench and the reports ask a [`Target`]; none of them
//! names a route or a bench header.
//!
//! - `worker.rs`: this project's worker — `GET /health` with its cache mode and
//!   latency profile, the `x-bench-*` request headers, seeding and reset;
//! - `http.rs`: a plain HTTP API that speaks none of it: nothing is asked before a
//!   run, nothing can be seeded, and reports say what it is;
//! - `crate::annotations`: the response headers a target may annotate its answers
//!   with (`x-cache`, `Server-Timing`, `x-ops`), read by the recorder when present;
//! - `setup.rs`: the blocking client of set-up calls (health, seed, reset), which
//!   are not measured.
//!
//! A third kind — a worker described by a recipe (start, readiness, reset, seed)
//! — is one more implementation of [`Target`].

mod http;
pub mod setup;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{HttpClient, Request};
use crate::result::Measurement;
pub use http::PlainHttp;
pub use setup::SetupClient;
pub use worker::BenchWorker;

pub use crate::result::TargetKind;

/// Where the numbers come from, in plain words, for a target of `kind` on this
/// machine (`loopback`) or elsewhere.
pub fn environment(kind: TargetKind, loopback: bool) -> &'static str {
    match (kind, loopback) {
        (TargetKind::BenchWorker, true) => {
            "Measured on this machine against loopback targets (local wrangler dev: workerd with KV and D1 \
             simulated on the same machine). Absolute latencies do not transfer to production, and local KV \
             sees its own writes at once while production KV is eventually consistent; the verdicts hold for \
             the environment measured."
        }
        (TargetKind::BenchWorker, false) => {
            "Measured against remote targets from this machine: latencies include the network path from here; \
             production KV is eventually consistent (up to about 60 s between locations)."
        }
        (TargetKind::Http, true) => {
            "Measured on this machine against an HTTP API on loopback that speaks none of the bench protocol: \
             client and server shared this machine's cores, so absolute latencies do not transfer to another \
             machine or to production; the verdicts hold for the environment measured."
        }
        (TargetKind::Http, false) => {
            "Measured against a remote HTTP API from this machine: latencies include the network path from \
             here, and whatever caches and instances stand between here and the API."
        }
    }
}

/// `--target-kind`: what the user says the target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TargetChoice {
    /// Ask `GET /health` once before the run: an answer in this project's worker's
    /// shape makes it that worker, anything else a plain HTTP API.
    #[default]
    Auto,
    /// This project's worker: its `GET /health` must answer in its shape.
    BenchWorker,
    /// A plain HTTP API: nothing is asked before the run.
    Http,
}

impl TargetChoice {
    pub fn target(self) -> Arc<dyn Target> {
        match self {
            TargetChoice::Auto => Arc::new(BenchWorker { required: false }),
            TargetChoice::BenchWorker => Arc::new(BenchWorker { required: true }),
            TargetChoice::Http => Arc::new(PlainHttp),
        }
    }
}

/// What a target said about itself before a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetInfo {
    pub kind: TargetKind,
    pub version: Option<String>,
    /// `modelled: <profile>` when the target adds a latency profile's delays.
    pub measurement: Measurement,
    pub anonymous_user_write: Option<bool>,
}

/// A kind of target: what can be asked of it besides the scenario's requests.
pub trait Target: fmt::Debug + Send + Sync {
    /// The path asked (GET) before a run for what the target is; `None`: nothing is asked.
    fn probe_path(&self) -> Option<&'static str>;

    /// What the answer to the probe says (`None`: no answer in time, or none that
    /// could be read). An error: the target is not what it was declared to be.
    fn read_probe(&self, answer: Option<(u16, &[u8])>) -> Result<TargetInfo, String>;

    /// Headers that make a request run with `cache` (`on`, `off`, a layer) on a
    /// target that switches its cache per request.
    fn cache_switch(&self, secret: &str, cache: &str) -> Result<Vec<(String, String)>, String>;

    /// Resets the bench data (when `reset`) and seeds `users` per seed on the
    /// target at `base`, so that every arm starts from the same state.
    fn seed(
        &self,
        client: &SetupClient,
        base: &str,
        secret: &str,
        users: &BTreeMap<u64, u32>,
        reset: bool,
    ) -> Result<(), String>;
}

/// Asks `target` what it is over `client` (the arm's own connection, which then
/// carries the run's first requests), with the arm's headers: a latency profile
/// chosen per request applies to the probe too.
pub async fn describe(
    target: &dyn Target,
    client: &HttpClient,
    headers: &[(String, String)],
) -> Result<TargetInfo, String> {
    let Some(path) = target.probe_path() else { return target.read_probe(None) };
    let req = Request { method: "GET", path, headers, body: None, keep_body: true, keep_headers: &[] };
    match tokio::time::timeout(Duration::from_secs(2), client.send(req)).await {
        Ok(Ok(reply)) => target.read_probe(Some((reply.status, reply.body.as_deref().unwrap_or_default()))),
        _ => target.read_probe(None),
    }
}

/// Whether `target` (a URL) is on this machine: localhost (and `*.localhost`,
/// which resolves to loopback) or a loopback address (all of 127/8, ::1).
pub fn is_loopback(target: &str) -> bool {
    match url::Url::parse(target).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_all_of_127_8_localhost_names_and_v6() {
        for t in [
            "http://127.0.0.1:8787",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://api.localhost",
            "http://[::1]:9",
        ] {
            assert!(is_loopback(t), "{t}");
        }
        for t in ["https://example.com", "http://10.0.0.1", "http://localhost.example.com", "not a url"] {
            assert!(!is_loopback(t), "{t}");
        }
    }

    #[test]
    fn a_plain_api_is_never_asked_and_has_no_bench_protocol() {
        let t = TargetChoice::Http.target();
        assert_eq!(t.probe_path(), None);
        assert_eq!(t.read_probe(None).unwrap().kind, TargetKind::Http);
        assert!(t.cache_switch("s", "on").is_err());
        let err =
            t.seed(&SetupClient::new(&Default::default()).unwrap(), "http://127.0.0.1:9", "s", &BTreeMap::new(), true);
        assert!(err.unwrap_err().contains("no seeding"));
    }

    #[test]
    fn auto_tells_the_worker_from_any_other_api_by_its_health() {
        let t = TargetChoice::Auto.target();
        assert_eq!(t.probe_path(), Some("/health"));
        let worker = br#"{"status":"ok","version":"1.2.3","cache":{"mode":"on","layers":["bot"]}}"#;
        let info = t.read_probe(Some((200, worker))).unwrap();
        assert_eq!((info.kind, info.version.as_deref()), (TargetKind::BenchWorker, Some("1.2.3")));
        for other in [Some((200, &br#"{"status":"ok"}"#[..])), Some((404, &b"not found"[..])), None] {
            assert_eq!(t.read_probe(other).unwrap().kind, TargetKind::Http, "{other:?}");
        }
        let strict = TargetChoice::BenchWorker.target();
        assert!(strict.read_probe(Some((404, b"nope"))).unwrap_err().contains("--target-kind"));
    }
}
