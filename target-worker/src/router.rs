//! The route table: path and method → endpoint, and what each endpoint requires of
//! the caller. Authentication runs once, in [`crate::app`], for the endpoints
//! that need a caller; handlers receive the identity.

use std::sync::OnceLock;

use crate::http::{ApiError, ApiRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    AuthMe,
    AuthToken,
    Models,
    ModelCapabilities,
    Model,
    GetSettings,
    PutSettings,
    Providers,
    StoreProviderKey,
    SyncProviders,
    BenchSeed,
    BenchReset,
}

/// What an endpoint requires before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; no bot check (health).
    Open,
    /// The bench secret; without it the route does not exist (404).
    Bench,
    /// The auth middleware: bot check, then the credential (anonymous allowed
    /// where the handler allows it).
    Caller,
}

impl Endpoint {
    pub fn access(self) -> Access {
        match self {
            Endpoint::Health => Access::Open,
            // An operator API keyed by the secret, not user traffic.
            Endpoint::BenchSeed | Endpoint::BenchReset => Access::Bench,
            _ => Access::Caller,
        }
    }
}

/// Path → the methods it answers.
const ROUTES: &[(&str, &[(&str, Endpoint)])] = &[
    ("/health", &[("GET", Endpoint::Health)]),
    ("/auth/me", &[("GET", Endpoint::AuthMe)]),
    ("/auth/token", &[("POST", Endpoint::AuthToken)]),
    ("/models", &[("GET", Endpoint::Models)]),
    ("/models/capabilities", &[("GET", Endpoint::ModelCapabilities)]),
    // Model ids contain slashes (provider/model): a catch-all segment.
    ("/models/{*id}", &[("GET", Endpoint::Model)]),
    ("/user/settings", &[("GET", Endpoint::GetSettings), ("PUT", Endpoint::PutSettings)]),
    ("/user/providers", &[("GET", Endpoint::Providers)]),
    ("/user/store-provider-api-key", &[("POST", Endpoint::StoreProviderKey)]),
    ("/user/sync-providers", &[("POST", Endpoint::SyncProviders)]),
    ("/__bench/seed", &[("POST", Endpoint::BenchSeed)]),
    ("/__bench/reset", &[("POST", Endpoint::BenchReset)]),
];

fn router() -> &'static matchit::Router<usize> {
    static ROUTER: OnceLock<matchit::Router<usize>> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut r = matchit::Router::new();
        for (i, (path, _)) in ROUTES.iter().enumerate() {
            r.insert(*path, i).expect("route table paths are distinct and valid");
        }
        r
    })
}

/// The endpoint and its `{*id}` path parameter (percent-decoded), if any.
/// Without the bench secret (`bench_authorized` false) a bench route does not
/// exist: 404 for every method, exactly as an unknown path, never a 405 that would
/// tell it apart.
pub fn resolve(req: &ApiRequest, bench_authorized: bool) -> Result<(Endpoint, Option<String>), ApiError> {
    let matched = router().at(&req.path).map_err(|_| ApiError::not_found())?;
    let methods = ROUTES[*matched.value].1;
    if !bench_authorized && methods.iter().all(|(_, e)| e.access() == Access::Bench) {
        return Err(ApiError::not_found());
    }
    let param = match matched.params.get("id") {
        None => None,
        Some(raw) => Some(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request("path is not valid UTF-8 after percent-decoding"))?
                .into_owned(),
        ),
    };
    let endpoint = methods.iter().find(|(m, _)| *m == req.method).map(|(_, e)| *e).ok_or_else(|| {
        let allow = methods.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ");
        let mut e = ApiError::new(405, format!("method {} not allowed on {}; allowed: {allow}", req.method, req.path));
        e.headers.push(("allow".into(), allow));
        e
    })?;
    Ok((endpoint, param))
}
