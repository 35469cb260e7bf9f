//! What a handler gets for one request: the request, its settings, its services
//! (store, cache) and the trace its timings go into. Built by [`crate::app::App`]
//! per request from the bindings.

use crate::cache::{Cache, FaultyKv};
use crate::config::Config;
use crate::http::ApiRequest;
use crate::latency::Profile;
use crate::modelled::{ModelledDb, ModelledKv};
use crate::namespace::NamespacedKv;
use crate::platform::{Database, Kv, Runtime};
use crate::store::Store;
use crate::trace::RequestTrace;

pub struct RequestContext<'r, K: Kv, D: Database> {
    pub req: &'r ApiRequest,
    pub config: &'r Config,
    pub runtime: &'r dyn Runtime,
    pub trace: &'r RequestTrace,
    pub store: Store<'r, ModelledDb<D>>,
    /// The database with the request's latency profile, for background work.
    pub db: ModelledDb<D>,
    pub cache: Cache<'r, NamespacedKv<FaultyKv<ModelledKv<K>>>>,
    /// The bare KV binding, for bench maintenance (never fault-injected).
    pub kv: &'r K,
    /// The latency profile in effect (`LATENCY_PROFILE`, or `x-bench-profile`).
    pub profile: &'static Profile,
    /// `x-bench-bot-check: skip`: no bot check, every caller taken as no bot.
    pub skip_bot_check: bool,
    /// The request carries the bench secret.
    pub bench_authorized: bool,
}

impl<K: Kv, D: Database> RequestContext<'_, K, D> {
    pub fn now_seconds(&self) -> i64 {
        (self.runtime.now_ms() / 1000.0).floor() as i64
    }
}
