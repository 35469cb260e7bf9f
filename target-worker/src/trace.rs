//! Per-request observability: `Server-Timing` and `x-cache` (ARCHITECTURE.md, "Request path").

use std::cell::{Cell, RefCell};
use std::fmt::Write;

use crate::config::Layer;

/// What a cache layer did for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// The layer is switched off for this request.
    Off,
    /// KV failed or returned garbage; the answer was computed without it.
    Error,
    /// KV not asked: the circuit breaker is open, or the user's last invalidation
    /// failed in this isolate. The answer was computed.
    Bypass,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Off => "off",
            CacheOutcome::Error => "error",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone)]
struct LayerVisit {
    layer: Layer,
    outcome: CacheOutcome,
    dur_ms: f64,
}

/// A KV or D1 operation, counted per request for `x-ops`: what a request costs in
/// billed operations (KV reads and writes, D1 round trips), cache on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendOp {
    KvRead,
    /// Write-behind writes included, counted when they are scheduled.
    KvWrite,
    D1Read,
    D1Write,
    /// Listed last so `x-ops` readers of the first four keep working.
    KvDelete,
}

impl BackendOp {
    const ALL: [BackendOp; 5] =
        [BackendOp::KvRead, BackendOp::KvWrite, BackendOp::D1Read, BackendOp::D1Write, BackendOp::KvDelete];

    fn name(self) -> &'static str {
        match self {
            BackendOp::KvRead => "kv-read",
            BackendOp::KvWrite => "kv-write",
            BackendOp::D1Read => "d1-read",
            BackendOp::D1Write => "d1-write",
            BackendOp::KvDelete => "kv-delete",
        }
    }
}

/// Collects, for one request, the cache layers touched, the time spent in KV
/// and the database, and the operations made there.
#[derive(Debug)]
pub struct RequestTrace {
    start_ms: f64,
    layers: RefCell<Vec<LayerVisit>>,
    kv: Cell<Option<f64>>,
    db: Cell<Option<f64>>,
    ops: Cell<[u32; 5]>,
}

fn add(cell: &Cell<Option<f64>>, ms: f64) {
    cell.set(Some(cell.get().unwrap_or(0.0) + ms));
}

impl RequestTrace {
    pub fn new(start_ms: f64) -> Self {
        RequestTrace {
            start_ms,
            layers: RefCell::new(Vec::new()),
            kv: Cell::new(None),
            db: Cell::new(None),
            ops: Cell::new([0; 5]),
        }
    }

    pub fn count(&self, op: BackendOp, n: u32) {
        let mut ops = self.ops.get();
        ops[op as usize] += n;
        self.ops.set(ops);
    }

    /// `x-ops`: every operation kind with its count, e.g.
    /// `kv-read=2,kv-write=0,d1-read=1,d1-write=0,kv-delete=0`.
    pub fn x_ops(&self) -> String {
        let ops = self.ops.get();
        BackendOp::ALL.iter().map(|op| format!("{}={}", op.name(), ops[*op as usize])).collect::<Vec<_>>().join(",")
    }

    pub fn record_layer(&self, layer: Layer, outcome: CacheOutcome, dur_ms: f64) {
        self.layers.borrow_mut().push(LayerVisit { layer, outcome, dur_ms });
    }

    pub fn add_kv(&self, ms: f64) {
        add(&self.kv, ms);
    }

    pub fn add_db(&self, ms: f64) {
        add(&self.db, ms);
    }

    /// The outcomes recorded for `layer`, in order.
    pub fn outcomes(&self, layer: Layer) -> Vec<CacheOutcome> {
        self.layers.borrow().iter().filter(|v| v.layer == layer).map(|v| v.outcome).collect()
    }

    /// `x-cache`: one `layer=outcome` per layer touched; when a layer is visited more
    /// than once, the worst outcome wins (error > miss > hit), so a hit ratio is
    /// never overstated (error > bypass > miss). `none` when no layer was touched.
    pub fn x_cache(&self) -> String {
        let layers = self.layers.borrow();
        let parts: Vec<String> = Layer::ALL
            .into_iter()
            .filter_map(|layer| {
                let rank = |o: CacheOutcome| match o {
                    CacheOutcome::Hit => 0,
                    CacheOutcome::Off => 1,
                    CacheOutcome::Miss => 2,
                    CacheOutcome::Bypass => 3,
                    CacheOutcome::Error => 4,
                };
                layers
                    .iter()
                    .filter(|v| v.layer == layer)
                    .map(|v| v.outcome)
                    .max_by_key(|o| rank(*o))
                    .map(|o| format!("{}={}", layer.name(), o.as_str()))
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(",")
        }
    }

    /// `Server-Timing`: one entry per layer touched, then `kv`, `db` (when used) and
    /// `total`, durations in milliseconds.
    pub fn server_timing(&self, now_ms: f64) -> String {
        let mut out = String::new();
        for v in self.layers.borrow().iter() {
            let _ = write!(out, "{};desc={};dur={:.3}, ", v.layer.name(), v.outcome.as_str(), v.dur_ms);
        }
        if let Some(ms) = self.kv.get() {
            let _ = write!(out, "kv;dur={ms:.3}, ");
        }
        if let Some(ms) = self.db.get() {
            let _ = write!(out, "db;dur={ms:.3}, ");
        }
        let _ = write!(out, "total;dur={:.3}", (now_ms - self.start_ms).max(0.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_a_request_that_touched_bot_kv_and_db() {
        let t = RequestTrace::new(1000.0);
        t.record_layer(Layer::Bot, CacheOutcome::Hit, 0.4);
        t.add_kv(0.4);
        t.add_db(1.5);
        t.add_db(1.6);
        assert_eq!(t.x_cache(), "bot=hit");
        assert_eq!(t.server_timing(1005.0), "bot;desc=hit;dur=0.400, kv;dur=0.400, db;dur=3.100, total;dur=5.000");
        t.count(BackendOp::KvRead, 2);
        t.count(BackendOp::D1Read, 1);
        assert_eq!(t.x_ops(), "kv-read=2,kv-write=0,d1-read=1,d1-write=0,kv-delete=0");
    }

    #[test]
    fn worst_outcome_wins_and_untouched_is_none() {
        let t = RequestTrace::new(0.0);
        assert_eq!(t.x_cache(), "none");
        t.record_layer(Layer::UserModels, CacheOutcome::Hit, 0.0);
        t.record_layer(Layer::UserModels, CacheOutcome::Error, 0.0);
        t.record_layer(Layer::Bot, CacheOutcome::Off, 0.0);
        assert_eq!(t.x_cache(), "bot=off,user-models=error");
    }
}
