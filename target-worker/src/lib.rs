//! target-worker: the cached AI-platform API under test (DESIGN.md §2).
//!
//! Everything but [`wasm`] is platform-free and runs natively in tests against
//! SQLite and an in-process KV; the wasm entry only adapts the Workers bindings.

pub mod app;
pub mod auth;
pub mod bench;
pub mod bot;
pub mod cache;
pub mod catalogue;
pub mod config;
pub mod crypto;
pub mod http;
pub mod jwt;
pub mod models;
pub mod platform;
pub mod providers;
pub mod store;
pub mod trace;
pub mod user;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use app::App;
pub use config::{CacheLayers, Config, Layer};
pub use http::{ApiRequest, ApiResponse};
pub use platform::{Database, Kv, Runtime};
