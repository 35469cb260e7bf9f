//! The request pipeline (ARCHITECTURE.md, "The worker"): router → access (bench
//! secret, or the auth middleware once for every caller route) → handler, whose
//! cache layers read through KV to the store. Services (cache, store) are built per
//! request from the bindings; only pure data (routes, bot patterns) lives for the
//! isolate.

use std::rc::Rc;

use subtle::ConstantTimeEq;

use crate::auth::{self, AuthMethod, Identity};
use crate::bench;
use crate::breaker::KvBreaker;
use crate::cache::{Cache, CacheChoice, FaultyKv, KvFault};
use crate::config::{CacheLayers, Config};
use crate::context::RequestContext;
use crate::http::{body_too_large, ApiError, ApiRequest, ApiResponse, Failure, MAX_BODY_BYTES};
use crate::jwt;
use crate::latency::{self, Profile};
use crate::layers::bot;
use crate::modelled::{ModelledDb, ModelledKv};
use crate::models;
use crate::namespace::{self, NamespacedKv};
use crate::platform::{Database, Kv, Runtime};
use crate::router::{self, Access, Endpoint};
use crate::store::Store;
use crate::strategy::Strategy;
use crate::trace::RequestTrace;
use crate::user;

/// Modelled locations a bench request may pick (`x-bench-location`).
pub const MAX_LOCATIONS: u32 = 16;

/// Lifetime of tokens from `POST /auth/token`.
pub const TOKEN_TTL_SECONDS: i64 = 3600;

/// The API over a KV store, a database and a host runtime.
pub struct App<K: Kv, D: Database> {
    pub kv: K,
    pub db: D,
    pub runtime: Rc<dyn Runtime>,
    pub config: Config,
}

impl<K: Kv, D: Database> App<K, D> {
    pub fn new(kv: K, db: D, runtime: Rc<dyn Runtime>, config: Config) -> Self {
        App { kv, db, runtime, config }
    }

    /// Answers one request. Never panics on input; every failure is a JSON error.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let trace = RequestTrace::new(self.runtime.now_ms());
        let mut resp = match self.dispatch(&req, &trace).await {
            Ok(resp) => resp,
            Err(Failure::Api(e)) => e.into_response(),
            Err(Failure::Db(e)) => {
                self.runtime.log(
                    &serde_json::json!({"level": "error", "event": "db_failure", "path": req.path, "error": e.0})
                        .to_string(),
                );
                ApiError::new(503, "database unavailable; try again").into_response()
            }
        };
        if self.config.diagnostic_headers || self.bench_authorized(&req) {
            resp.set_header("server-timing", trace.server_timing(self.runtime.now_ms()));
            resp.set_header("x-cache", trace.x_cache());
            resp.set_header("x-ops", trace.x_ops());
        }
        // Only the server-side cache is under test: no intermediary may cache answers.
        resp.set_header("cache-control", "no-store");
        resp
    }

    /// True when bench routes are enabled and the request carries the secret.
    fn bench_authorized(&self, req: &ApiRequest) -> bool {
        match (&self.config.bench_secret, req.header_value("x-bench-secret")) {
            (Some(secret), Some(sent)) => bool::from(secret.as_bytes().ct_eq(sent.as_bytes())),
            _ => false,
        }
    }

    /// The cache layers for this request: the configuration, unless a bench client
    /// with the secret overrides them with `x-bench-cache`. Without the secret the
    /// header is ignored, so it reveals nothing.
    fn request_layers(&self, req: &ApiRequest, bench_authorized: bool) -> Result<CacheLayers, ApiError> {
        match req.header_value("x-bench-cache") {
            Some(spec) if bench_authorized => {
                CacheLayers::parse(spec).map_err(|e| ApiError::bad_request(format!("x-bench-cache: {e}")))
            }
            _ => Ok(self.config.active_layers()),
        }
    }

    /// The KV fault injected with `x-bench-kv-fault`; ignored without the secret.
    fn request_fault(&self, req: &ApiRequest, bench_authorized: bool) -> Result<Option<KvFault>, ApiError> {
        match req.header_value("x-bench-kv-fault") {
            Some(spec) if bench_authorized => {
                KvFault::parse(spec).map(Some).map_err(|e| ApiError::bad_request(format!("x-bench-kv-fault: {e}")))
            }
            _ => Ok(None),
        }
    }

    /// The cache strategy: the configuration's, unless a bench client with the
    /// secret picks one with `x-bench-strategy`.
    fn request_strategy(&self, req: &ApiRequest, bench_authorized: bool) -> Result<Strategy, ApiError> {
        match req.header_value("x-bench-strategy") {
            Some(name) if bench_authorized => {
                Strategy::parse(name).map_err(|e| ApiError::bad_request(format!("x-bench-strategy: {e}")))
            }
            _ => Ok(self.config.strategy),
        }
    }

    /// The modelled location of a request (`x-bench-location`, bench secret): its
    /// edge cache under a latency profile and its `memory` layer stand for those
    /// of another location's isolate. 0 without the header.
    fn request_location(&self, req: &ApiRequest, bench_authorized: bool) -> Result<u32, ApiError> {
        match req.header_value("x-bench-location") {
            Some(n) if bench_authorized => {
                n.trim().parse::<u32>().ok().filter(|n| *n < MAX_LOCATIONS).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "x-bench-location: {n:?} is not a location number below {MAX_LOCATIONS}"
                    ))
                })
            }
            _ => Ok(0),
        }
    }

    /// Whether the bot check is skipped (`x-bench-bot-check: skip`, bench secret):
    /// the arm without the work the bot layer caches, so the check's overhead
    /// is measurable as a difference of arms. A skipped check takes every caller
    /// as no bot.
    fn request_skips_bot_check(&self, req: &ApiRequest, bench_authorized: bool) -> Result<bool, ApiError> {
        match req.header_value("x-bench-bot-check") {
            Some(value) if bench_authorized => match value.trim() {
                "skip" => Ok(true),
                "run" => Ok(false),
                other => Err(ApiError::bad_request(format!("x-bench-bot-check: {other:?}; expected skip or run"))),
            },
            _ => Ok(false),
        }
    }

    /// The key prefix of the request's bench namespace (`x-bench-namespace`,
    /// bench secret; `crate::namespace`): empty without one.
    fn request_namespace(&self, req: &ApiRequest, bench_authorized: bool) -> Result<String, ApiError> {
        match req.header_value("x-bench-namespace") {
            Some(id) if bench_authorized => {
                namespace::prefix(id).map_err(|e| ApiError::bad_request(format!("x-bench-namespace: {e}")))
            }
            _ => Ok(String::new()),
        }
    }

    /// The latency profile: the configuration's, unless a bench client with the
    /// secret picks one with `x-bench-profile`.
    fn request_profile(&self, req: &ApiRequest, bench_authorized: bool) -> Result<&'static Profile, ApiError> {
        match req.header_value("x-bench-profile") {
            Some(name) if bench_authorized => {
                latency::find(name).map_err(|e| ApiError::bad_request(format!("x-bench-profile: {e}")))
            }
            _ => Ok(self.config.latency_profile),
        }
    }

    async fn dispatch(&self, req: &ApiRequest, trace: &RequestTrace) -> Result<ApiResponse, Failure> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(body_too_large(req.body.len()).into());
        }
        let bench_authorized = self.bench_authorized(req);
        let (endpoint, id) = router::resolve(req, bench_authorized)?;
        let layers = self.request_layers(req, bench_authorized)?;
        let fault = self.request_fault(req, bench_authorized)?;
        let profile = self.request_profile(req, bench_authorized)?;
        let choice = CacheChoice {
            layers,
            strategy: self.request_strategy(req, bench_authorized)?,
            location: self.request_location(req, bench_authorized)?,
        };
        let namespace = self.request_namespace(req, bench_authorized)?;
        let modelled = ModelledKv::new(self.kv.clone(), profile, Rc::clone(&self.runtime), choice.location);
        let kv = NamespacedKv::new(FaultyKv::new(modelled, fault, Rc::clone(&self.runtime)), namespace.clone());
        let db = ModelledDb::new(self.db.clone(), profile, Rc::clone(&self.runtime));
        let ctx = RequestContext {
            req,
            config: &self.config,
            runtime: &*self.runtime,
            trace,
            store: Store::new(&db, trace, &*self.runtime),
            db: db.clone(),
            cache: Cache::new(
                kv,
                choice,
                &self.config,
                KvBreaker::for_isolate(fault.is_some()),
                Rc::clone(&self.runtime),
                trace,
            )
            .in_namespace(namespace)
            .for_anonymous(!matches!(auth::credential(req), Ok(Some(_)))),
            kv: &self.kv,
            profile,
            skip_bot_check: self.request_skips_bot_check(req, bench_authorized)?,
            bench_authorized,
        };
        let identity = match endpoint.access() {
            Access::Open => None,
            Access::Bench if bench_authorized => None,
            Access::Bench => return Err(ApiError::not_found().into()),
            Access::Caller => Some(authenticate_request(&ctx).await?),
        };
        if let Some(identity) = &identity {
            refuse_cross_site_write(req, identity)?;
        }
        let caller = || identity.as_ref().expect("caller routes are authenticated above");
        match endpoint {
            Endpoint::Health => Ok(health(&ctx, layers, choice.strategy)),
            Endpoint::BenchSeed => bench::seed(&ctx).await,
            Endpoint::BenchReset => bench::reset(&ctx).await,
            Endpoint::AuthMe => auth_me(&ctx, caller()).await,
            Endpoint::AuthToken => auth_token(&ctx, caller()),
            Endpoint::Models => models::list(&ctx, caller()).await,
            Endpoint::ModelCapabilities => Ok(models::capabilities()),
            Endpoint::Model => models::get(&ctx, caller(), id.as_deref().unwrap_or_default()).await,
            Endpoint::GetSettings => user::get_settings(&ctx, caller()).await,
            Endpoint::PutSettings => user::put_settings(&ctx, caller()).await,
            Endpoint::Providers => user::providers(&ctx, caller()).await,
            Endpoint::StoreProviderKey => user::store_provider_api_key(&ctx, caller()).await,
            Endpoint::SyncProviders => user::sync_providers(&ctx, caller()).await,
        }
    }
}

/// The auth middleware: bot verdict (through the `bot` cache layer), then the
/// credential. An anonymous bot is refused; an authenticated one is let through.
async fn authenticate_request<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>) -> Result<Identity, Failure> {
    crate::slowdown::work(ctx.config.calibration_work);
    let user_agent = ctx.req.header_value("user-agent").unwrap_or("");
    let is_bot = !ctx.skip_bot_check && bot::detect(user_agent, &ctx.cache).await;
    match auth::credential(ctx.req)? {
        None if is_bot => Err(ApiError::unauthorized("bot access is not allowed").into()),
        None => {
            let identity = auth::anonymous(ctx.req);
            if ctx.config.anonymous_user_write {
                ctx.store.touch_anonymous_user(&identity.user_id, ctx.now_seconds(), ctx.bench_authorized).await?;
            }
            Ok(identity)
        }
        Some(credential) => {
            auth::authenticate(credential, &ctx.store, ctx.config.jwt_secret.as_deref(), ctx.now_seconds()).await
        }
    }
}

/// A write authenticated by the session cookie must be sent as JSON: a page of
/// another site can make a browser send the cookie with a form or a simple
/// `fetch` (`text/plain`, form encodings), but not with `application/json`
/// without a CORS preflight this API never grants. Bearer credentials are not
/// sent by browsers on their own, so they need no such check.
fn refuse_cross_site_write(req: &ApiRequest, identity: &Identity) -> Result<(), ApiError> {
    let safe = matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    if safe || identity.method != AuthMethod::Session {
        return Ok(());
    }
    let json = req.header_value("content-type").is_some_and(|t| {
        // A header sent twice arrives joined by ", ": its first type decides.
        let media = t.split([';', ',']).next().unwrap_or_default().trim().to_ascii_lowercase();
        media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
    });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            format!(
                "{} with a session cookie must be sent with content-type: application/json (another site's form \
                 could send the cookie otherwise); got {:?}",
                req.method,
                req.header_value("content-type").unwrap_or("none")
            ),
        ))
    }
}

fn health<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, layers: CacheLayers, strategy: Strategy) -> ApiResponse {
    ApiResponse::json(
        200,
        &serde_json::json!({
            "status": "ok",
            // Recorded by the harness with every result, so a report names what it measured.
            "version": env!("CARGO_PKG_VERSION"),
            "cache": {
                "mode": if layers == CacheLayers::NONE { "off" } else { "on" },
                "layers": layers.names(),
                "ttl_seconds": ctx.config.ttl_seconds,
                "strategy": strategy.name(),
                "contract": strategy.contract(),
                "risk": strategy.risk(),
                "strategies": Strategy::ALL.map(Strategy::name),
            },
            // What the harness labels a run with: a modelled profile's results are
            // never compared with measured ones.
            "latency_profile": {
                "name": ctx.profile.name,
                "modelled": !ctx.profile.is_measured(),
            },
            "anonymous_user_write": ctx.config.anonymous_user_write,
            "calibration_work": ctx.config.calibration_work,
        }),
    )
}

async fn auth_me<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    identity.require_user()?;
    let user = identity.user.clone().ok_or_else(|| ApiError::unauthorized("authentication required"))?;
    let settings = ctx.store.user_settings(&user.id).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({ "user": user, "auth": identity.method, "settings": settings })))
}

fn auth_token<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>, identity: &Identity) -> Result<ApiResponse, Failure> {
    identity.require_user()?;
    // A token minted from a token would outlive the session or API key behind the
    // first one for ever: only those credentials can ask.
    if identity.method == AuthMethod::Jwt {
        return Err(ApiError::new(
            403,
            "a JWT cannot be exchanged for a new one: ask with the session cookie or an API key",
        )
        .into());
    }
    let secret = ctx
        .config
        .jwt_secret
        .as_deref()
        .ok_or_else(|| ApiError::new(500, "cannot issue tokens: JWT_SECRET is not set"))?;
    let now = ctx.now_seconds();
    let token = jwt::issue(secret, &identity.user_id, now, TOKEN_TTL_SECONDS);
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({
            "token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "expires_at": now + TOKEN_TTL_SECONDS,
        }),
    ))
}
