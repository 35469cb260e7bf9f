//! Settings from the Worker's vars and secrets (ARCHITECTURE.md, "The worker").

use std::fmt;

use crate::breaker::BreakerPolicy;
use crate::latency::{self, Profile};
use crate::strategy::Strategy;

/// A cache layer that can be switched on or off on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Bot,
    ModelConfig,
    UserModels,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Bot, Layer::ModelConfig, Layer::UserModels];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Bot => "bot",
            Layer::ModelConfig => "model-config",
            Layer::UserModels => "user-models",
        }
    }

    fn parse(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The set of cache layers switched on for a request.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheLayers(u8);

impl CacheLayers {
    pub const NONE: CacheLayers = CacheLayers(0);
    pub const ALL: CacheLayers = CacheLayers(0b111);

    pub fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    pub fn with(self, layer: Layer) -> CacheLayers {
        CacheLayers(self.0 | layer.bit())
    }

    pub fn names(self) -> Vec<&'static str> {
        Layer::ALL.into_iter().filter(|l| self.contains(*l)).map(Layer::name).collect()
    }

    /// Parses `on`, `off`, or a comma list of layer names (the form of both
    /// `CACHE_LAYERS` and the `x-bench-cache` header).
    pub fn parse(spec: &str) -> Result<CacheLayers, String> {
        match spec.trim() {
            "on" | "all" => return Ok(CacheLayers::ALL),
            "off" | "none" | "" => return Ok(CacheLayers::NONE),
            _ => {}
        }
        spec.split(',').map(str::trim).filter(|s| !s.is_empty()).try_fold(CacheLayers::NONE, |set, name| {
            Layer::parse(name).map(|l| set.with(l)).ok_or_else(|| {
                format!(
                    "unknown cache layer '{name}'; expected on, off, or a comma list of bot, model-config, user-models"
                )
            })
        })
    }
}

impl fmt::Debug for CacheLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct Config {
    /// `CACHE_MODE`: the master switch.
    pub cache_mode_on: bool,
    /// `CACHE_LAYERS` as configured (before the master switch is applied).
    pub configured_layers: CacheLayers,
    pub ttl_seconds: u64,
    /// `CACHE_STRATEGY`: how the layers store, read and invalidate.
    pub strategy: Strategy,
    pub always_enabled_providers: Vec<String>,
    pub jwt_secret: Option<String>,
    pub bench_secret: Option<String>,
    /// AES-256-GCM key for stored provider API keys.
    pub encryption_key: Option<[u8; 32]>,
    /// A KV read slower than this counts as failed and the answer is computed.
    pub kv_timeout_ms: u64,
    /// When the per-isolate KV circuit breaker opens, and for how long.
    pub kv_breaker: BreakerPolicy,
    /// `BENCH_OPS_PER_INVOCATION`: D1 statements plus KV operations one seed or
    /// reset call may make (Workers Paid: 1,000 per invocation; Free: 50).
    pub bench_ops_per_invocation: u32,
    /// `LATENCY_PROFILE`: the modelled production delays added to KV and D1
    /// operations (`local`, the default, adds none).
    pub latency_profile: &'static Profile,
    /// `ANONYMOUS_USER_WRITE`: record every anonymous caller in D1 on every
    /// request, as the source API did (on by default).
    pub anonymous_user_write: bool,
    /// `CALIBRATION_WORK`: rounds of extra work in the auth middleware (0, the
    /// default, adds none): a known regression for calibrating a gate.
    pub calibration_work: u32,
    /// `DIAGNOSTIC_HEADERS` (on by default): `Server-Timing`, `x-cache` and
    /// `x-ops` on every response. Off: only on requests with the bench secret —
    /// they tell any client which layers hit and what each request cost.
    pub diagnostic_headers: bool,
}

impl fmt::Debug for Config {
    // Secrets stay out of logs and test failure output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("cache_mode_on", &self.cache_mode_on)
            .field("configured_layers", &self.configured_layers)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("strategy", &self.strategy)
            .field("always_enabled_providers", &self.always_enabled_providers)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("bench_secret", &self.bench_secret.as_ref().map(|_| "<set>"))
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<set>"))
            .field("kv_timeout_ms", &self.kv_timeout_ms)
            .field("kv_breaker", &self.kv_breaker)
            .field("bench_ops_per_invocation", &self.bench_ops_per_invocation)
            .field("latency_profile", &self.latency_profile.name)
            .field("anonymous_user_write", &self.anonymous_user_write)
            .field("diagnostic_headers", &self.diagnostic_headers)
            .finish()
    }
}

pub const DEFAULT_TTL_SECONDS: u64 = 300;
/// Above a healthy KV read (a few ms hot at the edge, tens of ms cold) and well
/// under what a failed read costs the request: the time-out is paid on top of the
/// database work the cache was meant to save (a D1 read is ~7 ms near its primary,
/// ~150 ms far from it: `data/latency-profiles.json`). Reads slower than this are
/// treated as failed; the slowest cold reads are given up on by design.
pub const DEFAULT_KV_TIMEOUT_MS: u64 = 50;
/// Workers Paid's limit of D1 queries and of KV operations per invocation (D1 and
/// KV limits pages of the Cloudflare docs, read 2026-11-30); the Free plan's is 50.
pub const DEFAULT_BENCH_OPS_PER_INVOCATION: u64 = 1000;

impl Config {
    /// Reads every setting through `lookup` (a var or secret by name; `None` when
    /// unset). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let switch = |name: &'static str| match get(name).as_deref().map(str::trim) {
            None | Some("on") => Ok(true),
            Some("off") => Ok(false),
            Some(other) => Err(ConfigError { name, value: other.into(), reason: "expected on or off".into() }),
        };
        let cache_mode_on = switch("CACHE_MODE")?;
        let anonymous_user_write = switch("ANONYMOUS_USER_WRITE")?;
        let diagnostic_headers = switch("DIAGNOSTIC_HEADERS")?;
        let latency_profile =
            latency::find(get("LATENCY_PROFILE").as_deref().unwrap_or(latency::LOCAL)).map_err(|reason| {
                ConfigError { name: "LATENCY_PROFILE", value: get("LATENCY_PROFILE").unwrap_or_default(), reason }
            })?;
        let configured_layers = match get("CACHE_LAYERS") {
            None => CacheLayers::ALL,
            Some(v) => CacheLayers::parse(&v).map_err(|reason| ConfigError {
                name: "CACHE_LAYERS",
                value: v.clone(),
                reason,
            })?,
        };
        let ttl_seconds = match get("CACHE_TTL_SECONDS") {
            None => DEFAULT_TTL_SECONDS,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= crate::platform::KV_MIN_TTL_SECONDS => n,
                _ => {
                    return Err(ConfigError {
                        name: "CACHE_TTL_SECONDS",
                        value: v,
                        reason: "expected a whole number of seconds, at least 60 (the Workers KV minimum)".into(),
                    })
                }
            },
        };
        let strategy = match get("CACHE_STRATEGY") {
            None => Strategy::DEFAULT,
            Some(v) => {
                Strategy::parse(&v).map_err(|reason| ConfigError { name: "CACHE_STRATEGY", value: v, reason })?
            }
        };
        let always_enabled_providers = get("ALWAYS_ENABLED_PROVIDERS")
            .unwrap_or_else(|| "workers-ai,mistral".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let encryption_key = match get("ENCRYPTION_KEY") {
            None => None,
            Some(v) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD.decode(v.trim()).unwrap_or_default();
                Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| ConfigError {
                    name: "ENCRYPTION_KEY",
                    value: "(hidden)".into(),
                    reason: "expected 32 bytes, base64-encoded (openssl rand -base64 32)".into(),
                })?)
            }
        };
        let positive = |name: &'static str, default: u64, unit: &str| match get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| ConfigError {
                name,
                value: v.clone(),
                reason: format!("expected a positive whole number of {unit}"),
            }),
        };
        let kv_timeout_ms = positive("KV_TIMEOUT_MS", DEFAULT_KV_TIMEOUT_MS, "milliseconds")?;
        let breaker = BreakerPolicy::default();
        let kv_breaker = BreakerPolicy {
            failures: u32::try_from(positive("KV_BREAKER_FAILURES", breaker.failures.into(), "failures")?)
                .unwrap_or(u32::MAX),
            open_ms: positive("KV_BREAKER_OPEN_MS", breaker.open_ms, "milliseconds")?,
        };
        let bench_ops_per_invocation =
            u32::try_from(positive("BENCH_OPS_PER_INVOCATION", DEFAULT_BENCH_OPS_PER_INVOCATION, "operations")?)
                .unwrap_or(u32::MAX);
        let calibration_work = match get("CALIBRATION_WORK") {
            None => 0,
            Some(v) => v.trim().parse::<u32>().ok().filter(|n| *n <= crate::slowdown::MAX_ROUNDS).ok_or_else(|| {
                ConfigError {
                    name: "CALIBRATION_WORK",
                    value: v.clone(),
                    reason: format!("expected a whole number of rounds from 0 to {}", crate::slowdown::MAX_ROUNDS),
                }
            })?,
        };
        Ok(Config {
            cache_mode_on,
            configured_layers,
            ttl_seconds,
            strategy,
            always_enabled_providers,
            jwt_secret: get("JWT_SECRET"),
            bench_secret: get("BENCH_SECRET"),
            encryption_key,
            kv_timeout_ms,
            kv_breaker,
            bench_ops_per_invocation,
            latency_profile,
            anonymous_user_write,
            calibration_work,
            diagnostic_headers,
        })
    }

    /// Whether every user may use `provider` without enabling it.
    pub fn always_enabled(&self, provider: &str) -> bool {
        self.always_enabled_providers.iter().any(|p| p == provider)
    }

    /// The layers in effect when no per-request override applies.
    pub fn active_layers(&self) -> CacheLayers {
        if self.cache_mode_on {
            self.configured_layers
        } else {
            CacheLayers::NONE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert!(c.cache_mode_on);
        assert_eq!(c.active_layers(), CacheLayers::ALL);
        assert_eq!(c.ttl_seconds, 300);
        assert_eq!(c.strategy, Strategy::Generation);
        assert_eq!(c.always_enabled_providers, vec!["workers-ai", "mistral"]);
        assert!(c.bench_secret.is_none());
        assert_eq!(c.latency_profile.name, "local");
        assert!(c.anonymous_user_write);
        assert_eq!(c.kv_timeout_ms, 50);
        assert_eq!(c.kv_breaker, BreakerPolicy { failures: 5, open_ms: 10_000 });
        assert_eq!(c.calibration_work, 0, "no extra work unless configured");
    }

    #[test]
    fn calibration_work_is_bounded() {
        assert_eq!(cfg(&[("CALIBRATION_WORK", "300")]).unwrap().calibration_work, 300);
        for bad in ["-1", "many", "1000001"] {
            assert_eq!(cfg(&[("CALIBRATION_WORK", bad)]).unwrap_err().name, "CALIBRATION_WORK", "{bad}");
        }
    }

    #[test]
    fn kv_failure_settings() {
        let c = cfg(&[("KV_TIMEOUT_MS", "20"), ("KV_BREAKER_FAILURES", "2"), ("KV_BREAKER_OPEN_MS", "500")]).unwrap();
        assert_eq!((c.kv_timeout_ms, c.kv_breaker.failures, c.kv_breaker.open_ms), (20, 2, 500));
        for name in ["KV_TIMEOUT_MS", "KV_BREAKER_FAILURES", "KV_BREAKER_OPEN_MS"] {
            assert_eq!(cfg(&[(name, "0")]).unwrap_err().name, name);
        }
    }

    #[test]
    fn profile_and_anonymous_switch() {
        let c = cfg(&[("LATENCY_PROFILE", "kv-cold"), ("ANONYMOUS_USER_WRITE", "off")]).unwrap();
        assert_eq!(c.latency_profile.name, "kv-cold");
        assert!(!c.anonymous_user_write);
        let e = cfg(&[("LATENCY_PROFILE", "moon")]).unwrap_err();
        assert_eq!(e.name, "LATENCY_PROFILE");
        assert!(e.reason.contains("edge-near-primary"), "{e}");
        assert_eq!(cfg(&[("ANONYMOUS_USER_WRITE", "sometimes")]).unwrap_err().name, "ANONYMOUS_USER_WRITE");
    }

    #[test]
    fn master_switch_off_disables_every_layer() {
        let c = cfg(&[("CACHE_MODE", "off"), ("CACHE_LAYERS", "bot")]).unwrap();
        assert_eq!(c.active_layers(), CacheLayers::NONE);
    }

    #[test]
    fn layer_list() {
        let c = cfg(&[("CACHE_LAYERS", "bot, user-models")]).unwrap();
        assert!(c.active_layers().contains(Layer::Bot));
        assert!(!c.active_layers().contains(Layer::ModelConfig));
        assert!(c.active_layers().contains(Layer::UserModels));
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert_eq!(cfg(&[("CACHE_MODE", "maybe")]).unwrap_err().name, "CACHE_MODE");
        let e = cfg(&[("CACHE_LAYERS", "bot,redis")]).unwrap_err();
        assert!(e.to_string().contains("redis"), "{e}");
        assert_eq!(cfg(&[("CACHE_TTL_SECONDS", "30")]).unwrap_err().name, "CACHE_TTL_SECONDS");
        assert_eq!(cfg(&[("CACHE_TTL_SECONDS", "-5")]).unwrap_err().name, "CACHE_TTL_SECONDS");
        assert_eq!(cfg(&[("CACHE_STRATEGY", "swr")]).unwrap().strategy, Strategy::Swr);
        let e = cfg(&[("CACHE_STRATEGY", "lru")]).unwrap_err();
        assert!(e.name == "CACHE_STRATEGY" && e.reason.contains("generation-unfiltered"), "{e}");
    }
}
