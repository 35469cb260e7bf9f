//! The strategy ranking of `harness bench --strategies`: per scenario and
//! measurement, one row per strategy (and the cache-off baseline) with its latency
//! change against cache-off (p50, p99 and their CIs), hit ratio, staleness
//! (read-backs in the A/B, the probes' time to a fresh read), backend operations
//! per 1,000 requests and their cost from `harness/data/prices.json`, and the
//! correctness risk in the worker's words. Pure data from the bench summary; the
//! exporters only lay it out.
//!
//! What it cannot say: a local ranking weighs KV and D1 as the local stack does
//! (both local SQLite services), so only a modelled or deployed ranking speaks for
//! production; costs use operation counts measured here and published prices, with
//! D1 rows per query estimated (see the price file).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::bench::{AbSummary, BenchSummary};
use super::strategies::{Side, Staleness};
use crate::compare::MetricChange;
use crate::recorder::Ops;
use crate::result::Measurement;

/// The price file, compiled in.
const PRICES_JSON: &str = include_str!("../../data/prices.json");

/// The operation kinds of `x-ops` that cost money, in the order shown.
pub const PRICED: [&str; 5] = ["kv-read", "kv-write", "kv-delete", "d1-read", "d1-write"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub usd_per_million: f64,
    /// Billed units per counted operation (D1 bills rows, `x-ops` counts queries).
    pub units_per_operation: f64,
    pub unit: String,
    pub source: String,
    pub url: String,
    pub estimate: bool,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub currency: String,
    pub plan: String,
    /// When the prices were read.
    pub read: String,
    /// The volume of the monthly cost column.
    pub monthly_requests: f64,
    pub items: BTreeMap<String, Price>,
}

/// The prices of `harness/data/prices.json` (checked by the tests).
pub fn prices() -> &'static Prices {
    static PRICES: OnceLock<Prices> = OnceLock::new();
    PRICES.get_or_init(|| serde_json::from_str(PRICES_JSON).expect("harness/data/prices.json is valid (tested)"))
}

/// The KV and D1 cost of a million requests with these operations, beyond the
/// plan's inclusions; `None` without `x-ops` reports.
pub fn cost_per_million(ops: &Ops, prices: &Prices) -> Option<f64> {
    if ops.is_empty() {
        return None;
    }
    Some(
        PRICED
            .iter()
            .filter_map(|k| {
                let p = prices.items.get(*k)?;
                Some(ops.per_request(k).unwrap_or(0.0) * p.units_per_operation * p.usd_per_million)
            })
            .sum(),
    )
}

/// One strategy's row of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRow {
    /// 1 = the largest p50 reduction among the valid runs; `None` for the baseline
    /// and for invalid runs. Strategies whose p50 changes are not resolved from
    /// each other share a rank (competition ranking: 1, =2, =2, 4).
    pub rank: Option<usize>,
    /// The rank as shown: "1", "=2" for a shared one, "" for none.
    #[serde(default)]
    pub rank_words: String,
    pub strategy: String,
    pub status: String,
    pub p50: String,
    pub p99: String,
    /// p50 with this strategy, ms.
    pub p50_ms: String,
    /// User-list lookups served from the cache, and all layers' lookups.
    pub hits: String,
    /// Pairs of the A/B whose two answers differed, of those compared: a
    /// strategy that changes answers ranks below every one that does not.
    #[serde(default)]
    pub wrong_answers: String,
    #[serde(default)]
    pub answers_wrong: bool,
    /// Stale read-backs of the A/B (a read right after a write that did not show it).
    pub stale_read_backs: String,
    /// Time from a write's answer to the first fresh read: the writer's location,
    /// another location.
    pub fresh_here: String,
    pub fresh_elsewhere: String,
    /// Operations per 1,000 requests, by kind.
    pub ops_per_1000: String,
    pub cost_per_million: String,
    pub monthly_cost: String,
    pub risk: String,
    #[serde(skip)]
    sort_key: f64,
    /// The p50 change's CI (of this strategy's own A/B against cache-off).
    #[serde(skip)]
    ci: (f64, f64),
}

/// The ranking of one scenario under one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    pub measurement: String,
    pub modelled: bool,
    pub scenario: String,
    pub rows: Vec<RankRow>,
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn usd(x: f64) -> String {
    if x >= 100.0 {
        format!("${x:.0}")
    } else {
        format!("${x:.2}")
    }
}

fn change(c: &MetricChange) -> String {
    format!("{c} {}", c.direction.as_str())
}

/// Hits over hits, misses, errors and bypasses of `layer` (`None`: every layer).
pub fn hit_ratio(cache: &crate::recorder::CacheOutcomes, layer: Option<&str>) -> Option<f64> {
    let (mut hits, mut lookups) = (0u64, 0u64);
    for outcomes in cache.iter().filter(|(name, _)| layer.is_none_or(|l| l == name.as_str())).map(|(_, o)| o) {
        for (outcome, n) in outcomes {
            if outcome != "off" {
                lookups += n;
                hits += if outcome == "hit" { *n } else { 0 };
            }
        }
    }
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

fn ops_words(ops: &Ops) -> String {
    if ops.is_empty() {
        return "–".into();
    }
    PRICED
        .iter()
        .map(|k| format!("{k} {:.0}", ops.per_request(k).unwrap_or(0.0) * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "first read fresh (4/4; answered within 12 ms)", "max 10.3 s, first read stale
/// in 4/4": how long until a read showed the write.
fn fresh_words(side: &Side, probes: u32) -> String {
    if probes == 0 {
        return "–".into();
    }
    let seen = side.fresh_after_ms.len();
    let longest = match side.max_ms() {
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{:.1} s", ms / 1000.0),
        None => "never".into(),
    };
    // A first read that is already fresh: its time is only that read's own latency.
    let mut out = if side.first_read_stale == 0 && side.never_fresh == 0 {
        format!("first read fresh ({probes}/{probes}; answered within {longest})")
    } else {
        format!("max {longest}, first read stale in {}/{probes}", side.first_read_stale)
    };
    if side.never_fresh > 0 {
        out.push_str(&format!(
            ", {} of {} never fresh within {} s",
            side.never_fresh,
            seen + side.never_fresh as usize,
            super::strategies::MAX_WAIT.as_secs()
        ));
    }
    out
}

/// One line per probed strategy, for the progress output.
pub fn staleness_line(s: &Staleness) -> String {
    format!(
        "  {:<22} {} probes; writer's location: {}; another location: {}{}",
        s.strategy,
        s.probes,
        fresh_words(&s.same, s.probes),
        fresh_words(&s.other, s.probes),
        if s.errors.is_empty() { String::new() } else { format!("; {} failed", s.errors.len()) }
    )
}

fn row(run: &AbSummary, summary: &BenchSummary, prices: &Prices) -> RankRow {
    let strategy = run.strategy.clone().unwrap_or_default();
    let all = run.all_row();
    let probe = summary.staleness.iter().find(|s| s.strategy == strategy && s.measurement == run.measurement);
    let cost = cost_per_million(&run.ops_b, prices);
    let risk = summary.strategies.iter().find(|s| s.name == strategy).map(|s| s.risk.clone()).unwrap_or_default();
    let ratio = |layer| hit_ratio(&run.cache_b, layer).map_or("–".to_owned(), pct);
    RankRow {
        rank: None,
        status: run.status.to_string(),
        p50: all.map_or("–".into(), |r| change(&r.p50)),
        p99: all.map_or("–".into(), |r| change(&r.p99)),
        p50_ms: all.map_or("–".into(), |r| format!("{:.2}", r.p50_b)),
        hits: format!("{} lists, {} all", ratio(Some("user-models")), ratio(None)),
        wrong_answers: run.answers_all().map_or("not compared".into(), |t| match t.mismatch_rate() {
            Some((rate, lo, hi)) if t.mismatched > 0 => {
                format!("{} of {} pairs ({} [{}–{}])", t.mismatched, t.compared, pct(rate), pct(lo), pct(hi))
            }
            _ => format!("none of {}", t.compared),
        }),
        answers_wrong: run.wrong_answers(),
        stale_read_backs: if run.read_backs_b == 0 {
            "–".into()
        } else {
            format!("{} of {}", run.stale_reads_b, run.read_backs_b)
        },
        fresh_here: probe.map_or("–".into(), |p| fresh_words(&p.same, p.probes)),
        fresh_elsewhere: probe.map_or("–".into(), |p| fresh_words(&p.other, p.probes)),
        ops_per_1000: ops_words(&run.ops_b),
        cost_per_million: cost.map_or("–".into(), usd),
        monthly_cost: cost.map_or("–".into(), |c| usd(c * prices.monthly_requests / 1e6)),
        risk,
        sort_key: position(run).0,
        ci: position(run).1,
        rank_words: String::new(),
        strategy,
    }
}

/// Added to the sort key of a strategy that changed answers.
const WRONG: f64 = 1e6;

/// The cache-off arm of a scenario's strategy runs (its operations summed over them).
fn baseline(runs: &[&AbSummary], prices: &Prices) -> RankRow {
    let mut ops = Ops::default();
    for r in runs {
        ops.add(&r.ops_a);
    }
    let cost = cost_per_million(&ops, prices);
    let p50s: Vec<f64> = runs.iter().filter_map(|r| r.all_row().map(|x| x.p50_a)).collect();
    RankRow {
        strategy: "cache-off (baseline)".into(),
        status: "–".into(),
        p50: "0 (the reference)".into(),
        p99: "0 (the reference)".into(),
        p50_ms: if p50s.is_empty() {
            "–".into()
        } else {
            format!("{:.2}", p50s.iter().sum::<f64>() / p50s.len() as f64)
        },
        hits: "–".into(),
        wrong_answers: "–".into(),
        answers_wrong: false,
        stale_read_backs: "–".into(),
        fresh_here: "–".into(),
        fresh_elsewhere: "–".into(),
        ops_per_1000: ops_words(&ops),
        cost_per_million: cost.map_or("–".into(), usd),
        monthly_cost: cost.map_or("–".into(), |c| usd(c * prices.monthly_requests / 1e6)),
        risk: "none: every answer computed".into(),
        sort_key: f64::INFINITY,
        ci: (f64::NAN, f64::NAN),
        rank: None,
        rank_words: String::new(),
    }
}

/// Ranks `rows` (sorted fastest first) in groups (see [`group_ranks`]).
fn rank_groups(rows: &mut [RankRow]) {
    let positions: Vec<(f64, (f64, f64))> = rows.iter().map(|r| (r.sort_key, r.ci)).collect();
    let ranks = group_ranks(&positions);
    for (i, rank) in ranks.iter().enumerate() {
        rows[i].rank = *rank;
        let Some(n) = rank else { continue };
        let shared = ranks.iter().filter(|r| **r == Some(*n)).count() > 1;
        rows[i].rank_words = if shared { format!("={n}") } else { n.to_string() };
    }
}

/// The ranks of strategies given as (sort key, p50 CI), sorted fastest first:
/// a strategy joins the group of the one before it unless its p50 CI lies
/// wholly above the group leader's (each CI from its own A/B against
/// cache-off, so non-overlap is the test: a conservative one, at about 0.6 %
/// for two 95 % intervals). A strategy that changed answers never shares a
/// group with one that did not; one without a finite key has no rank. A
/// ranking of point estimates alone orders noise whenever the gaps are inside
/// the CIs; the leaders' ties are what a head-to-head (`head_to_head.rs`) splits.
fn group_ranks(positions: &[(f64, (f64, f64))]) -> Vec<Option<usize>> {
    let mut ranks = vec![None; positions.len()];
    let mut leader: Option<usize> = None;
    let mut rank = 0;
    let ranked = (0..positions.len()).filter(|&i| positions[i].0.is_finite());
    for (position, i) in ranked.enumerate() {
        let joins = leader.is_some_and(|l| {
            let same_class = (positions[l].0 >= WRONG / 2.0) == (positions[i].0 >= WRONG / 2.0);
            // NaN (no CI) is never resolved: it shares the leader's rank.
            let resolved = positions[i].1 .0 > positions[l].1 .1;
            same_class && !resolved
        });
        if !joins {
            leader = Some(i);
            rank = position + 1;
        }
        ranks[i] = Some(rank);
    }
    ranks
}

/// The sort key of a strategy's run (its p50 change; a strategy that changed
/// answers below every one that did not; an invalid run last) and its p50 CI.
fn position(run: &AbSummary) -> (f64, (f64, f64)) {
    let all = run.all_row();
    let key = match (run.status.is_valid(), all) {
        // Below every strategy that answers right, however fast (changes are
        // above -1: a strategy cannot be more than 100 % faster).
        (true, Some(r)) if r.p50.change.is_finite() && run.wrong_answers() => WRONG + r.p50.change,
        (true, Some(r)) if r.p50.change.is_finite() => r.p50.change,
        _ => f64::INFINITY,
    };
    (key, all.map_or((f64::NAN, f64::NAN), |r| (r.p50.ci_low, r.p50.ci_high)))
}

/// The strategy runs of each scenario and measurement, in the order first run.
fn strategy_groups(runs: &[AbSummary]) -> Vec<(Measurement, String, Vec<&AbSummary>)> {
    let mut groups: Vec<(Measurement, String, Vec<&AbSummary>)> = Vec::new();
    for r in runs.iter().filter(|r| r.strategy.is_some()) {
        match groups.iter_mut().find(|(m, s, _)| *m == r.measurement && *s == r.scenario) {
            Some((_, _, members)) => members.push(r),
            None => groups.push((r.measurement.clone(), r.scenario.clone(), vec![r])),
        }
    }
    groups
}

/// Per scenario and measurement, the strategies that share the first rank —
/// two or more, each answering right in a valid run: what a head-to-head re-runs.
pub fn tied_leaders(runs: &[AbSummary]) -> Vec<(Measurement, String, Vec<String>)> {
    let mut out = Vec::new();
    for (m, scenario, members) in strategy_groups(runs) {
        let mut positions: Vec<(f64, (f64, f64), &str)> = members
            .iter()
            .map(|r| {
                let (key, ci) = position(r);
                (key, ci, r.strategy.as_deref().unwrap_or_default())
            })
            .collect();
        positions.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ranks = group_ranks(&positions.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
        let leaders: Vec<String> = positions
            .iter()
            .zip(&ranks)
            .filter(|(p, rank)| **rank == Some(1) && p.0 < WRONG / 2.0)
            .map(|(p, _)| p.2.to_owned())
            .collect();
        if leaders.len() >= 2 {
            out.push((m, scenario, leaders));
        }
    }
    out
}

/// One ranking per scenario and measurement that ran strategies, fastest first.
pub fn rankings(summary: &BenchSummary) -> Vec<Ranking> {
    let prices = prices();
    strategy_groups(&summary.runs)
        .into_iter()
        .map(|(m, scenario, runs)| {
            let mut rows: Vec<RankRow> = runs.iter().map(|r| row(r, summary, prices)).collect();
            rows.sort_by(|a, b| a.sort_key.total_cmp(&b.sort_key));
            rank_groups(&mut rows);
            rows.push(baseline(&runs, prices));
            Ranking { measurement: m.to_string(), modelled: m.is_modelled(), scenario, rows }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_file_parses_and_prices_every_counted_operation() {
        let p = prices();
        for k in PRICED {
            let item = p.items.get(k).unwrap_or_else(|| panic!("no price for {k}"));
            assert!(item.usd_per_million > 0.0 && item.units_per_operation > 0.0, "{k}");
            assert!(item.url.starts_with("https://developers.cloudflare.com/"), "{k}: {}", item.url);
        }
        assert!(p.monthly_requests > 0.0);
        assert_eq!(p.read.len(), 10, "a date: {}", p.read);
    }

    #[test]
    fn cost_adds_each_operation_at_its_price() {
        let mut ops = Ops::default();
        // Two requests: 4 KV reads, 1 KV write, 2 D1 reads in all.
        ops.add_header("kv-read=2,kv-write=1,d1-read=1,d1-write=0,kv-delete=0");
        ops.add_header("kv-read=2,kv-write=0,d1-read=1,d1-write=0,kv-delete=0");
        let p = prices();
        let d1 = p.items["d1-read"].units_per_operation * p.items["d1-read"].usd_per_million;
        let want = 2.0 * 0.5 + 0.5 * 5.0 + 1.0 * d1;
        assert!((cost_per_million(&ops, p).unwrap() - want).abs() < 1e-9);
        assert_eq!(cost_per_million(&Ops::default(), p), None);
    }

    fn ranked(changes: &[(f64, f64, f64)]) -> Vec<String> {
        let mut rows: Vec<RankRow> = changes
            .iter()
            .map(|&(change, lo, hi)| {
                let mut r = baseline(&[], prices());
                r.sort_key = change;
                r.ci = (lo, hi);
                r
            })
            .collect();
        rows.sort_by(|a, b| a.sort_key.total_cmp(&b.sort_key));
        rank_groups(&mut rows);
        rows.iter().map(|r| r.rank_words.clone()).collect()
    }

    #[test]
    fn strategies_whose_intervals_overlap_share_a_rank() {
        // -30 [-33, -27] and -28 [-31, -25] overlap: =1; -20 [-22, -18] is clear
        // of the leader's -27: 3; -19 overlaps -20: =3.
        let words =
            ranked(&[(-0.30, -0.33, -0.27), (-0.28, -0.31, -0.25), (-0.20, -0.22, -0.18), (-0.19, -0.21, -0.17)]);
        assert_eq!(words, ["=1", "=1", "=3", "=3"]);
        // All resolved: 1, 2, 3.
        assert_eq!(ranked(&[(-0.3, -0.31, -0.29), (-0.2, -0.21, -0.19), (-0.1, -0.11, -0.09)]), ["1", "2", "3"]);
        // Just clear of the leader: [-0.27, -0.23] starts above -0.28.
        assert_eq!(ranked(&[(-0.30, -0.32, -0.28), (-0.25, -0.27, -0.23)]), ["1", "2"]);
        // A strategy that changed answers never ties with one that did not.
        assert_eq!(ranked(&[(-0.30, -0.33, -0.27), (WRONG - 0.31, -0.34, -0.28)]), ["1", "2"]);
    }

    #[test]
    fn hit_ratio_ignores_switched_off_layers() {
        let mut cache = BTreeMap::new();
        cache.insert("bot".to_owned(), BTreeMap::from([("hit".to_owned(), 9), ("miss".to_owned(), 1)]));
        cache.insert(
            "user-models".to_owned(),
            BTreeMap::from([("hit".to_owned(), 1), ("miss".to_owned(), 1), ("off".to_owned(), 8)]),
        );
        assert_eq!(hit_ratio(&cache, Some("user-models")), Some(0.5));
        assert_eq!(hit_ratio(&cache, None), Some(10.0 / 12.0));
        assert_eq!(hit_ratio(&BTreeMap::new(), None), None);
    }
}
