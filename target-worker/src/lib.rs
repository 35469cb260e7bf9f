//! target-worker: the cached AI-platform API under test (ARCHITECTURE.md, "The
//! worker").
//!
//! Everything but [`wasm`] is platform-free and runs natively in tests against
//! SQLite and an in-process KV; the wasm entry only adapts the Workers bindings.

pub mod app;
pub mod auth;
pub mod bench;
pub mod breaker;
pub mod cache;
pub mod catalogue;
pub mod config;
pub mod context;
pub mod crypto;
pub mod http;
pub mod jwt;
pub mod latency;
pub mod layers;
pub mod memory;
pub mod modelled;
pub mod models;
pub mod namespace;
pub mod platform;
pub mod providers;
pub mod router;
pub mod slowdown;
pub mod store;
pub mod strategy;
pub mod trace;
pub mod user;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use app::App;
pub use config::{CacheLayers, Config, Layer};
pub use http::{ApiRequest, ApiResponse};
/// The bot detection and its cache layer, at the path tests and tools know.
pub use layers::bot;
pub use platform::{Database, Kv, Runtime};
pub use strategy::Strategy;
