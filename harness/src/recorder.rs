//! Recording: every measured request goes into HDR histograms per series (all,
//! step, tag, cache outcome), corrected and raw, beside its status, error kind,
//! size, cache outcomes and Server-Timing entries; and into per-second interval
//! histograms. Memory is bounded by the number of series, not the run's length.

use std::collections::BTreeMap;

/// Cache lookups by layer and outcome (`x-cache`: `bot=hit` counts 1 under
/// `bot` → `hit`), as recorded per series and kept in result files.
pub type CacheOutcomes = BTreeMap<String, BTreeMap<String, u64>>;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::{ErrorKind, Failure, Reply};
use crate::series::{SeriesKey, ALL_TEXT};

/// 1 µs … 60 s at 3 significant digits (ARCHITECTURE.md, "Measurement").
pub const HIGHEST_US: u64 = 60_000_000;

/// Where a request that did not succeed — a transport error or time-out, a
/// response that failed its checks, an iteration dropped because the target fell
/// behind — stands in the comparison's evidence (the blocks): at the recording
/// ceiling, slower than every success, as a request timed out at k6's default 60 s
/// would be. So an arm cannot look faster by failing its slow requests: the
/// percentiles rank its failures last. Successes are stored at their bucket's
/// median-equivalent, never exactly this value, so the mean (of successes) can
/// leave failures out (`stats::metrics`).
pub const FAILED_US: u64 = HIGHEST_US;
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram over 1 µs … 60 s. It starts small and grows to the largest value
/// recorded, so a series of fast requests costs kilobytes, not a full 60 s range.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 10_000, SIGNIFICANT_DIGITS).expect("static bounds are valid");
    h.auto(true);
    h
}

pub fn record(h: &mut Histogram<u64>, micros: u64) {
    // Auto-resize cannot fail short of memory; values beyond 60 s are clamped.
    let _ = h.record(micros.clamp(1, HIGHEST_US));
}

pub use crate::annotations::{parse_server_timing, parse_x_cache};

/// A histogram in HdrHistogram's V2 compressed encoding, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(pub String);

impl EncodedHistogram {
    pub fn encode(h: &Histogram<u64>) -> EncodedHistogram {
        let mut buf = Vec::new();
        // Serialising into memory fails only for histograms V2 cannot express.
        V2DeflateSerializer::new().serialize(h, &mut buf).expect("V2 serialisation of a u64 histogram");
        EncodedHistogram(STANDARD.encode(buf))
    }

    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let bytes = STANDARD.decode(&self.0).map_err(|e| format!("histogram is not base64: {e}"))?;
        Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("histogram does not decode: {e:?}"))
    }
}

#[derive(Debug, Clone)]
pub struct SeriesStats {
    /// From the intended start (coordinated-omission corrected).
    pub corrected: Histogram<u64>,
    /// From the actual send.
    pub raw: Histogram<u64>,
    pub requests: u64,
    /// Transport errors plus responses that failed the step's expectations.
    pub errors: u64,
    pub check_failures: u64,
    /// Read-backs that did not show the write they followed (read-your-writes broken).
    pub stale_reads: u64,
    pub status: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    pub bytes: u64,
    /// layer → outcome → count.
    pub cache: CacheOutcomes,
    /// Server-Timing entry → µs.
    pub server_timing: BTreeMap<String, Histogram<u64>>,
    /// The corrected latencies again, by [`BLOCK_MS`] block of intended start:
    /// block → µs (at the histogram's precision) → count, every measured request
    /// (failures at [`FAILED_US`]). For the comparable series only (not per cache
    /// outcome): the block bootstrap resamples them.
    pub blocks: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// Each Server-Timing entry's µs by block, likewise (successes only): the
    /// server's timings drift with the machine as the client's do, so their
    /// intervals are resampled by time block too.
    pub server_blocks: BTreeMap<String, BTreeMap<u32, BTreeMap<u64, u64>>>,
    /// Backend operations (`x-ops`) summed over the successful responses that
    /// reported them, and how many did: comparable series only.
    pub ops: Ops,
}

/// Sums of the target's `x-ops` counts (`kv-read`, `kv-write`, `kv-delete`, `d1-read`, `d1-write`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ops {
    /// Responses that carried `x-ops`.
    pub responses: u64,
    /// Kind → operations in all of them.
    pub totals: BTreeMap<String, u64>,
}

impl Ops {
    pub fn add_header(&mut self, value: &str) {
        self.responses += 1;
        for (kind, n) in crate::annotations::parse_ops(value) {
            *self.totals.entry(kind.to_owned()).or_insert(0) += n;
        }
    }

    pub fn add(&mut self, other: &Ops) {
        self.responses += other.responses;
        for (k, n) in &other.totals {
            *self.totals.entry(k.clone()).or_insert(0) += n;
        }
    }

    /// Mean operations of `kind` per response that reported any; `None` without reports.
    pub fn per_request(&self, kind: &str) -> Option<f64> {
        (self.responses > 0).then(|| self.totals.get(kind).copied().unwrap_or(0) as f64 / self.responses as f64)
    }

    pub fn is_empty(&self) -> bool {
        self.responses == 0
    }

    /// `kv-read 2.00, kv-write 0.05, kv-delete 0.00, d1-read 1.00, d1-write 0.00`: every kind the
    /// worker reports, per request; `–` without reports.
    pub fn per_request_words(&self) -> String {
        if self.is_empty() {
            return "–".to_owned();
        }
        ["kv-read", "kv-write", "kv-delete", "d1-read", "d1-write"]
            .iter()
            .map(|k| format!("{k} {:.2}", self.per_request(k).unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl SeriesStats {
    /// Adds what another thread of the same run recorded of this series: the
    /// histograms by HDR addition (lossless), everything else by counting.
    pub fn add(&mut self, o: &SeriesStats) {
        add_histogram(&mut self.corrected, &o.corrected);
        add_histogram(&mut self.raw, &o.raw);
        self.requests += o.requests;
        self.errors += o.errors;
        self.check_failures += o.check_failures;
        self.stale_reads += o.stale_reads;
        add_counts(&mut self.status, &o.status);
        add_counts(&mut self.error_kinds, &o.error_kinds);
        self.bytes += o.bytes;
        for (layer, outcomes) in &o.cache {
            add_counts(self.cache.entry(layer.clone()).or_default(), outcomes);
        }
        for (entry, h) in &o.server_timing {
            add_histogram(self.server_timing.entry(entry.clone()).or_insert_with(new_histogram), h);
        }
        add_blocks(&mut self.blocks, &o.blocks);
        for (entry, blocks) in &o.server_blocks {
            add_blocks(self.server_blocks.entry(entry.clone()).or_default(), blocks);
        }
        self.ops.add(&o.ops);
    }
}

fn add_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both auto-resize from the same bounds: addition cannot fail short of memory.
    into.add(from).expect("histograms of one run add");
}

fn add_blocks(into: &mut BTreeMap<u32, BTreeMap<u64, u64>>, from: &BTreeMap<u32, BTreeMap<u64, u64>>) {
    for (block, values) in from {
        add_counts(into.entry(*block).or_default(), values);
    }
}

/// Adds `from`'s counts into `into`, key by key.
pub(crate) fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k.clone()).or_insert(0) += n;
    }
}

impl Default for SeriesStats {
    fn default() -> Self {
        SeriesStats {
            corrected: new_histogram(),
            raw: new_histogram(),
            requests: 0,
            errors: 0,
            check_failures: 0,
            stale_reads: 0,
            status: BTreeMap::new(),
            error_kinds: BTreeMap::new(),
            bytes: 0,
            cache: BTreeMap::new(),
            server_timing: BTreeMap::new(),
            blocks: BTreeMap::new(),
            server_blocks: BTreeMap::new(),
            ops: Ops::default(),
        }
    }
}

/// Length of the time blocks the corrected latencies are also kept in. Short,
/// so that a run of a few seconds still has enough of them; `compare` joins
/// neighbours into longer resampling blocks for longer runs.
pub const BLOCK_MS: u32 = 100;

/// The series a step's requests are recorded in, computed once per step so that
/// recording allocates nothing per request.
#[derive(Debug, Clone)]
pub struct StepSeries {
    /// `*`, `step:<name>`, `tag:<tag>`… as text ([`SeriesKey`]'s), the maps' keys.
    pub all: Vec<String>,
    /// The time-series subset: `*` and the tags.
    pub intervals: Vec<String>,
}

impl StepSeries {
    pub fn new(step: &str, tags: &[String]) -> StepSeries {
        let tag_keys = tags.iter().map(|t| SeriesKey::tag(t).to_string());
        let all = SeriesKey::all().to_string();
        StepSeries {
            all: [all.clone(), SeriesKey::step(step).to_string()].into_iter().chain(tag_keys.clone()).collect(),
            intervals: std::iter::once(all).chain(tag_keys).collect(),
        }
    }
}

fn series_mut<'m, T: Default>(map: &'m mut BTreeMap<String, T>, key: &str) -> &'m mut T {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), T::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// One finished request, as the recorder needs it.
pub struct Sample<'a> {
    pub series: &'a StepSeries,
    pub corrected_us: u64,
    pub raw_us: u64,
    pub result: Result<&'a Reply, &'a Failure>,
    /// The response met the step's expectations.
    pub ok: bool,
    /// A read-back answered but did not show the write: a stale read.
    pub stale: bool,
    /// The [`BLOCK_MS`] block of the measured part the request was meant to start in.
    pub block: u32,
}

/// An iteration the open model dropped: how long it waited for a slot (a lower
/// bound of the latency it would have had) and the block it was meant to start in.
#[derive(Debug, Clone, Copy)]
pub struct Censored {
    pub waited_us: u64,
    pub block: u32,
}

#[derive(Debug, Clone, Default)]
struct IntervalStats {
    corrected: Option<Histogram<u64>>,
    requests: u64,
    errors: u64,
    cache: CacheOutcomes,
}

/// One second of one series, for time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalSummary {
    /// Seconds since the measured part began (end of this interval).
    pub t: u64,
    pub series: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cache: CacheOutcomes,
    /// The second's corrected latencies, so that shards' seconds add up exactly
    /// (`harness merge`); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<EncodedHistogram>,
}

#[derive(Default, Clone)]
pub struct Recorder {
    pub series: BTreeMap<String, SeriesStats>,
    interval: BTreeMap<String, IntervalStats>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Recorder {
    /// Adds another thread's series of the same run.
    pub fn add(&mut self, o: &Recorder) {
        for (key, stats) in &o.series {
            series_mut(&mut self.series, key).add(stats);
        }
    }

    pub fn record(&mut self, s: &Sample) {
        let reply = s.result.ok();
        let cache: Vec<(&str, &str)> = reply.and_then(|r| r.x_cache.as_deref()).map(parse_x_cache).unwrap_or_default();
        let timings: Vec<(&str, u64)> =
            reply.and_then(|r| r.server_timing.as_deref()).map(parse_server_timing).unwrap_or_default();

        let cache_keys: Vec<String> = cache.iter().map(|(l, o)| SeriesKey::cache(l, o).to_string()).collect();
        let with_timing = s.series.all.len();
        for (i, key) in s.series.all.iter().chain(cache_keys.iter()).enumerate() {
            let st = series_mut(&mut self.series, key);
            record(&mut st.corrected, s.corrected_us);
            record(&mut st.raw, s.raw_us);
            st.requests += 1;
            match s.result {
                Ok(r) => {
                    bump(&mut st.status, format!("{}xx", r.status / 100));
                    st.bytes += r.bytes;
                    if !s.ok {
                        st.errors += 1;
                        st.check_failures += 1;
                        st.stale_reads += u64::from(s.stale);
                    }
                }
                Err(f) => {
                    st.errors += 1;
                    bump(&mut st.error_kinds, f.kind);
                }
            }
            for (layer, outcome) in &cache {
                bump(st.cache.entry((*layer).to_owned()).or_default(), (*outcome).to_owned());
            }
            // The comparison's evidence, for the series a comparison is made on
            // (not repeated per cache outcome): every request, a failure at
            // FAILED_US; the server's timings and operations of successes only.
            if i < with_timing {
                let us =
                    if s.ok { st.corrected.median_equivalent(s.corrected_us.clamp(1, HIGHEST_US)) } else { FAILED_US };
                bump(st.blocks.entry(s.block).or_default(), us);
            }
            if i < with_timing && s.ok {
                if let Some(ops) = reply.and_then(|r| r.ops.as_deref()) {
                    st.ops.add_header(ops);
                }
                for (name, us) in &timings {
                    record(st.server_timing.entry((*name).to_owned()).or_insert_with(new_histogram), *us);
                    let blocks = st.server_blocks.entry((*name).to_owned()).or_default();
                    bump(blocks.entry(s.block).or_default(), *us);
                }
            }
        }
        // Time series: everything, and each tag.
        for key in &s.series.intervals {
            let iv = series_mut(&mut self.interval, key);
            record(iv.corrected.get_or_insert_with(new_histogram), s.corrected_us);
            iv.requests += 1;
            if !s.ok {
                iv.errors += 1;
            }
            for (layer, outcome) in &cache {
                bump(iv.cache.entry((*layer).to_owned()).or_default(), (*outcome).to_owned());
            }
        }
    }

    /// An iteration that sent nothing: an error of `kind` in the series of the
    /// step it would have run. One the open model dropped (`censored`) enters the
    /// corrected histogram at its wait, a lower bound of the latency it would have
    /// had, so the displayed tail does not lose it, and the comparison's evidence
    /// as a failure ([`FAILED_US`]). One that could not be rendered (a scenario
    /// fault, not the target's) is an error only.
    pub fn record_unsent(&mut self, series: &StepSeries, kind: ErrorKind, censored: Option<Censored>) {
        for key in &series.all {
            let st = series_mut(&mut self.series, key);
            st.requests += 1;
            st.errors += 1;
            bump(&mut st.error_kinds, kind);
            if let Some(c) = censored {
                record(&mut st.corrected, c.waited_us);
                bump(st.blocks.entry(c.block).or_default(), FAILED_US);
            }
        }
        for key in &series.intervals {
            let iv = series_mut(&mut self.interval, key);
            iv.requests += 1;
            iv.errors += 1;
            if let Some(c) = censored {
                record(iv.corrected.get_or_insert_with(new_histogram), c.waited_us);
            }
        }
    }

    /// Closes the interval ending `t` seconds into the measured part: its summaries,
    /// and its histograms for the interval log. The interval state is reset.
    pub fn close_interval(&mut self, t: u64) -> Vec<(IntervalSummary, Histogram<u64>)> {
        let mut out = Vec::new();
        for (series, iv) in self.interval.iter_mut() {
            let Some(h) = iv.corrected.as_mut() else { continue };
            let summary = IntervalSummary {
                t,
                series: series.clone(),
                requests: iv.requests,
                errors: iv.errors,
                p50_ms: ms(h.value_at_quantile(0.5)),
                p90_ms: ms(h.value_at_quantile(0.9)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                max_ms: ms(h.max()),
                cache: std::mem::take(&mut iv.cache),
                histogram: Some(EncodedHistogram::encode(h)),
            };
            out.push((summary, h.clone()));
            h.reset();
            iv.requests = 0;
            iv.errors = 0;
        }
        out
    }

    /// The series named by `key`, if any request was recorded in it.
    pub fn get(&self, key: &SeriesKey) -> Option<&SeriesStats> {
        self.series.get(&key.to_string())
    }

    pub fn all(&self) -> Option<&SeriesStats> {
        self.series.get(ALL_TEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        assert_eq!(parse_x_cache("bot=hit,user-models=miss"), vec![("bot", "hit"), ("user-models", "miss")]);
        assert!(parse_x_cache("none").is_empty());
        assert_eq!(
            parse_server_timing("bot;desc=hit;dur=0.4, kv;dur=1.2, total;dur=5.000, cfEdge;desc=x"),
            vec![("bot", 400), ("kv", 1200), ("total", 5000)]
        );
    }

    /// Two threads' recorders added equal one recorder that saw every request:
    /// the in-memory merge of a threaded run loses nothing.
    #[test]
    fn recorders_added_equal_one_that_saw_everything() {
        let reply = |cache: &str, timing: &str| Reply {
            status: 200,
            x_cache: Some(cache.into()),
            server_timing: Some(timing.into()),
            ops: Some("kv-read=1,d1-read=2".into()),
            bytes: 7,
            body: None,
            headers: Vec::new(),
        };
        let (hit, miss) = (reply("bot=hit", "kv;dur=0.5"), reply("bot=miss", "kv;dur=3, d1;dur=9"));
        let fail = Failure { kind: ErrorKind::Reset, message: "r".into() };
        let series = [StepSeries::new("a", &["t".to_owned()]), StepSeries::new("b", &[])];
        let (mut one, mut two, mut both) = (Recorder::default(), Recorder::default(), Recorder::default());
        for i in 0..400u64 {
            let result = match i % 7 {
                0 => Err(&fail),
                1 | 2 => Ok(&miss),
                _ => Ok(&hit),
            };
            let sample = Sample {
                series: &series[(i % 3 == 0) as usize],
                corrected_us: 300 + i * i * 37 % 90_000,
                raw_us: 200 + i * 13 % 5_000,
                result,
                ok: i % 11 != 0,
                stale: i % 13 == 0,
                block: (i / 9) as u32,
            };
            if i % 2 == 0 { &mut one } else { &mut two }.record(&sample);
            both.record(&sample);
        }
        let dropped = Some(Censored { waited_us: 700_000, block: 3 });
        one.record_unsent(&series[0], ErrorKind::Dropped, dropped);
        both.record_unsent(&series[0], ErrorKind::Dropped, dropped);
        one.add(&two);
        assert_eq!(one.series.keys().collect::<Vec<_>>(), both.series.keys().collect::<Vec<_>>());
        for (key, want) in &both.series {
            let got = &one.series[key];
            assert_eq!(got.corrected, want.corrected, "{key}");
            assert_eq!(got.raw, want.raw, "{key}");
            assert_eq!(got.server_timing, want.server_timing, "{key}");
            assert_eq!(got.blocks, want.blocks, "{key}");
            assert_eq!(got.server_blocks, want.server_blocks, "{key}");
            assert_eq!(
                (got.requests, got.errors, got.check_failures, got.stale_reads, got.bytes),
                (want.requests, want.errors, want.check_failures, want.stale_reads, want.bytes),
                "{key}"
            );
            assert_eq!(
                (&got.status, &got.error_kinds, &got.cache, &got.ops),
                (&want.status, &want.error_kinds, &want.cache, &want.ops)
            );
        }
    }

    #[test]
    fn series_and_intervals() {
        let mut r = Recorder::default();
        let reply = Reply {
            status: 200,
            x_cache: Some("bot=hit".into()),
            server_timing: Some("bot;dur=1, total;dur=2".into()),
            ops: Some("kv-read=2,kv-write=0,d1-read=1".into()),
            bytes: 10,
            body: None,
            headers: Vec::new(),
        };
        let series = StepSeries::new("me", &["auth".to_owned()]);
        for us in [1000, 2000, 3000] {
            r.record(&Sample {
                series: &series,
                corrected_us: us,
                raw_us: us / 2,
                result: Ok(&reply),
                ok: true,
                stale: false,
                block: us as u32 / 1000,
            });
        }
        let fail = Failure { kind: ErrorKind::Timeout, message: "t".into() };
        r.record(&Sample {
            series: &series,
            corrected_us: 9000,
            raw_us: 9000,
            result: Err(&fail),
            ok: false,
            stale: false,
            block: 0,
        });
        let all = r.all().unwrap();
        assert_eq!((all.requests, all.errors, all.bytes), (4, 1, 30));
        // Blocks hold every request of the comparable series once, by block; the
        // failed one ranks slower than every success, whatever its own time.
        assert_eq!(all.blocks[&0].iter().collect::<Vec<_>>(), [(&FAILED_US, &1)]);
        assert_eq!(all.blocks[&3].keys().collect::<Vec<_>>(), [&all.corrected.median_equivalent(3000)]);
        assert_eq!(all.blocks.values().flat_map(|b| b.values()).sum::<u64>(), 4);
        assert!((1..=3).all(|b| all.blocks[&b].keys().all(|us| *us != FAILED_US)), "successes are never at FAILED_US");
        // Server timings are of successes: the failure carried none, and a
        // response that fails its checks must not add its own.
        assert_eq!(all.server_timing["total"].len(), 3);
        assert_eq!(all.server_blocks["total"][&2].iter().collect::<Vec<_>>(), [(&2000, &1)]);
        // An iteration that sent nothing is an error; a dropped one enters the
        // corrected histogram at its (censored) wait and the evidence as a failure;
        // one the scenario could not render is an error only.
        r.record_unsent(&series, ErrorKind::Dropped, Some(Censored { waited_us: 500_000, block: 7 }));
        r.record_unsent(&series, ErrorKind::Template, None);
        let all = r.all().unwrap();
        assert_eq!(all.blocks[&7].iter().collect::<Vec<_>>(), [(&FAILED_US, &1)]);
        assert_eq!(all.blocks.values().flat_map(|b| b.values()).sum::<u64>(), 5);
        assert_eq!((all.requests, all.errors), (6, 3));
        assert_eq!((all.error_kinds[&ErrorKind::Dropped], all.error_kinds[&ErrorKind::Template]), (1, 1));
        assert_eq!(all.corrected.len(), 5);
        assert!(all.corrected.max() >= 500_000);
        assert!(r.series.keys().filter(|k| k.starts_with("cache:")).all(|k| r.series[k].blocks.is_empty()));
        assert_eq!(
            (all.ops.responses, all.ops.per_request("kv-read"), all.ops.per_request("d1-write")),
            (3, Some(2.0), Some(0.0))
        );
        assert_eq!(all.status["2xx"], 3);
        assert_eq!(all.error_kinds[&ErrorKind::Timeout], 1);
        assert_eq!(r.series["cache:bot=hit"].requests, 3);
        assert_eq!(r.series["tag:auth"].server_timing["total"].len(), 3);
        assert!(!r.series["cache:bot=hit"].server_timing.contains_key("total"));
        assert_eq!(all.raw.max(), hdrhistogram::Histogram::<u64>::new(3).unwrap().highest_equivalent(9000));
        let closed = r.close_interval(1);
        let star = closed.iter().find(|(s, _)| s.series == "*").unwrap();
        assert_eq!((star.0.requests, star.0.errors), (6, 3));
        assert_eq!(star.0.cache["bot"]["hit"], 3);
        assert!(r.close_interval(2).iter().all(|(s, _)| s.requests == 0));
    }
}
