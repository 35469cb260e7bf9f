//! A head-to-head of a ranking's tied leaders: strategies whose changes
//! against cache-off were not resolved from each other (separate A/Bs, each CI
//! wide with its own run's noise) re-run as the arms of one interleaved run, in
//! sets of one iteration per strategy sharing one draw, so each pair's change is
//! measured directly and the noise they share cancels. Pure data from the run's
//! pairwise comparisons; the exporters only lay it out.
//!
//! What it cannot say: each pair's interval is at `1 − α / pairs` (Bonferroni),
//! so the family of pairs is wrong somewhere with chance at most α; strategies
//! still not resolved share a rank. Answers are not compared within the run
//! (each strategy's were compared with cache-off in its own A/B).

use serde::{Deserialize, Serialize};

use crate::change::MetricChange;

/// One strategy of a head-to-head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadRow {
    pub rank: usize,
    /// "1", "=1" for a shared rank.
    pub rank_words: String,
    pub strategy: String,
    /// Its p50 in the run, ms (failures ranked slowest).
    #[serde(with = "crate::nullable")]
    pub p50_ms: f64,
}

/// One pair's p50 change, the faster (by point) first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadPair {
    pub faster: String,
    pub slower: String,
    /// `slower` against `faster`, with its interval at the per-pair confidence.
    pub p50: MetricChange,
    /// The interval lies wholly above zero: `slower` is slower.
    pub resolved: bool,
}

/// The leaders of one ranking, re-run against each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadToHead {
    pub measurement: String,
    pub scenario: String,
    /// `valid`, `invalid`, `interrupted`: an invalid run's ranks are no verdict.
    pub status: String,
    pub invalid_reasons: Vec<String>,
    /// The run's result file, relative to the bench directory.
    pub result: String,
    /// Each pair's interval's confidence (Bonferroni over the pairs).
    pub confidence_per_pair: f64,
    pub rows: Vec<HeadRow>,
    pub pairs: Vec<HeadPair>,
}

/// Ranks strategies by their p50 in one interleaved run: fastest first, and a
/// strategy shares the rank of its group's leader unless their pair's interval
/// resolves it as slower. `p50_ms[i]` is strategy `i`'s p50; `pair(i, j)` the
/// change of `j` against `i` (`None`: not compared, never resolved).
pub fn rank(
    names: &[String],
    p50_ms: &[f64],
    mut pair: impl FnMut(usize, usize) -> Option<MetricChange>,
) -> (Vec<HeadRow>, Vec<HeadPair>) {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&i, &j| p50_ms[i].total_cmp(&p50_ms[j]));
    let mut pairs = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        for &j in &order[k + 1..] {
            if let Some(change) = pair(i, j) {
                let resolved = change.ci_low > 0.0;
                pairs.push(HeadPair { faster: names[i].clone(), slower: names[j].clone(), p50: change, resolved });
            }
        }
    }
    let resolved = |a: &str, b: &str| pairs.iter().any(|p| p.faster == a && p.slower == b && p.resolved);
    let mut ranks = vec![0usize; names.len()];
    let mut leader = None;
    for (position, &i) in order.iter().enumerate() {
        if leader.is_none_or(|l: usize| resolved(&names[l], &names[i])) {
            leader = Some(i);
            ranks[i] = position + 1;
        } else {
            ranks[i] = ranks[leader.expect("set above")];
        }
    }
    let rows = order
        .iter()
        .map(|&i| {
            let shared = ranks.iter().filter(|&&r| r == ranks[i]).count() > 1;
            HeadRow {
                rank: ranks[i],
                rank_words: if shared { format!("={}", ranks[i]) } else { ranks[i].to_string() },
                strategy: names[i].clone(),
                p50_ms: p50_ms[i],
            }
        })
        .collect();
    (rows, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Direction;
    use crate::stats::Metric;

    fn change(lo: f64, hi: f64) -> MetricChange {
        MetricChange {
            metric: Metric::P50,
            a: 1.0,
            b: 1.0,
            change: (lo + hi) / 2.0,
            ci_low: lo,
            ci_high: hi,
            direction: Direction::Undetermined,
            enough_samples: true,
            at_resolution: false,
        }
    }

    #[test]
    fn resolved_pairs_split_ranks_and_unresolved_ones_share() {
        let names: Vec<String> = ["memory", "generation", "swr"].iter().map(|s| s.to_string()).collect();
        // memory 4.0 ms, generation 4.1, swr 4.6; memory→generation not
        // resolved, memory→swr resolved: =1, =1, 3.
        let p50 = [4.0, 4.1, 4.6];
        let (rows, pairs) = rank(&names, &p50, |i, j| {
            Some(match (i, j) {
                (0, 1) => change(-0.01, 0.06),
                (0, 2) => change(0.08, 0.22),
                _ => change(0.05, 0.18),
            })
        });
        let words: Vec<(&str, &str)> = rows.iter().map(|r| (r.strategy.as_str(), r.rank_words.as_str())).collect();
        assert_eq!(words, [("memory", "=1"), ("generation", "=1"), ("swr", "3")]);
        assert_eq!(pairs.len(), 3);
        assert!(pairs.iter().any(|p| p.faster == "generation" && p.slower == "swr" && p.resolved));
        // Given in another order, the same ranks (sorted by p50).
        let (rows, _) = rank(&names, &[4.6, 4.0, 4.1], |_, _| Some(change(-0.01, 0.02)));
        assert_eq!(rows.iter().map(|r| r.rank_words.as_str()).collect::<Vec<_>>(), ["=1", "=1", "=1"]);
        assert_eq!(rows[0].strategy, "generation");
        // All resolved: 1, 2, 3; nothing compared: all share.
        let (rows, _) = rank(&names, &p50, |_, _| Some(change(0.02, 0.1)));
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3]);
        let (rows, _) = rank(&names, &p50, |_, _| None);
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
