//! A plain HTTP API: the harness asks it nothing but the scenario's requests.

use std::collections::BTreeMap;

use super::{SetupClient, Target, TargetInfo, TargetKind};

#[derive(Debug, Clone, Copy)]
pub struct PlainHttp;

impl Target for PlainHttp {
    fn probe_path(&self) -> Option<&'static str> {
        None
    }

    fn read_probe(&self, _: Option<(u16, &[u8])>) -> Result<TargetInfo, String> {
        Ok(TargetInfo { kind: TargetKind::Http, ..TargetInfo::default() })
    }

    fn cache_switch(&self, _: &str, _: &str) -> Result<Vec<(String, String)>, String> {
        Err("a plain HTTP API has no per-request cache switch: give each arm its own URL (--a URL --b URL)".into())
    }

    fn seed(&self, _: &SetupClient, base: &str, _: &str, _: &BTreeMap<u64, u32>, _: bool) -> Result<(), String> {
        Err(format!(
            "{base} is a plain HTTP API: it has no seeding or reset routes; create its users yourself and give \
             the scenario their credentials"
        ))
    }
}
