//! The open-model schedule: when each iteration is meant to start, as an offset
//! from the start of the run. Latency is measured from these intended times, so a
//! stalled server cannot hide the requests it kept waiting (coordinated omission).
//! `vus.rs` is the closed model's: how many virtual users run when.

mod vus;

pub use vus::{VuSchedule, VuWindow};

use std::time::Duration;

use crate::scenario::{Executor, Segment};
use crate::shard::Shard;

/// Offsets of iteration starts, in order, covering warm-up and the measured part.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    segments: Vec<Segment>,
    segment: usize,
    /// Iterations already scheduled before the current segment.
    before: f64,
    index: u64,
    end: f64,
}

impl ArrivalSchedule {
    /// `None` for closed-model executors; the segments are the executor's own.
    pub fn new(executor: &Executor, warmup: Duration) -> Option<ArrivalSchedule> {
        let segments = executor.segments(warmup)?;
        let end = segments.last().map_or(0.0, |s| s.start + s.duration);
        Some(ArrivalSchedule { segments, segment: 0, before: 0.0, index: 0, end })
    }

    /// Iterations the schedule holds in `[from, to)` seconds.
    pub fn count_between(&self, from: f64, to: f64) -> f64 {
        self.cumulative(to) - self.cumulative(from)
    }

    /// The arrivals of `shard`: the schedule's iterations in units of `unit`
    /// consecutive ones (one per arm, so a pair is never split), every
    /// `shard.count`-th unit from the `shard.index`-th.
    pub fn sharded(self, shard: Shard, unit: u64) -> impl Iterator<Item = Duration> {
        let unit = unit.max(1);
        self.enumerate().filter(move |(n, _)| shard.takes(*n as u64 / unit)).map(|(_, d)| d)
    }

    /// Iterations of `shard` (see [`ArrivalSchedule::sharded`]) in `[from, to)` seconds.
    pub fn shard_count_between(&self, shard: Shard, unit: u64, from: f64, to: f64) -> f64 {
        if shard.is_whole() {
            return self.count_between(from, to);
        }
        let range = Duration::from_secs_f64(from.max(0.0))..Duration::from_secs_f64(to.max(0.0));
        self.clone().sharded(shard, unit).filter(|d| range.contains(d)).count() as f64
    }

    fn cumulative(&self, t: f64) -> f64 {
        Segment::arrivals_until(&self.segments, t)
    }
}

impl Iterator for ArrivalSchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // The n-th arrival (0-based) is at the time t where cumulative(t) = n.
        let n = self.index as f64;
        while let Some(&Segment { start, duration: dur, rate_from: r0, rate_to: r1 }) = self.segments.get(self.segment)
        {
            let in_segment = (r0 + r1) / 2.0 * dur;
            let k = n - self.before;
            if k < in_segment - 1e-9 {
                let a = (r1 - r0) / (2.0 * dur);
                let x = if a.abs() < 1e-12 { k / r0 } else { (-r0 + (r0 * r0 + 4.0 * a * k).sqrt()) / (2.0 * a) };
                let t = start + x;
                if t >= self.end {
                    return None;
                }
                self.index += 1;
                return Some(Duration::from_secs_f64(t.max(0.0)));
            }
            self.before += in_segment;
            self.segment += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;

    #[test]
    fn constant_rate() {
        let s = ArrivalSchedule::new(
            &Executor::ConstantArrivalRate { rate: 4.0, duration: Duration::from_secs(2) },
            Duration::from_secs(1),
        )
        .unwrap();
        let offsets: Vec<f64> = s.map(|d| d.as_secs_f64()).collect();
        assert_eq!(offsets.len(), 12);
        assert!((offsets[1] - 0.25).abs() < 1e-9 && (offsets[11] - 2.75).abs() < 1e-9);
    }

    #[test]
    fn ramp_counts_match_the_area_under_the_rate() {
        let ex = Executor::RampingArrivalRate {
            start_rate: 0.0,
            stages: vec![
                Stage { target: 100.0, duration: Duration::from_secs(10) },
                Stage { target: 100.0, duration: Duration::from_secs(5) },
            ],
        };
        let s = ArrivalSchedule::new(&ex, Duration::ZERO).unwrap();
        assert!((s.count_between(0.0, 15.0) - 1000.0).abs() < 1e-6);
        let offsets: Vec<f64> = s.map(|d| d.as_secs_f64()).collect();
        assert!((offsets.len() as i64 - 1000).abs() <= 1, "{}", offsets.len());
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        // Half of the ramp's 500 arrivals come in its last 2.93 s (t = 10/sqrt(2)).
        let first_half = offsets.iter().filter(|t| **t < 10.0 / 2f64.sqrt()).count();
        assert!((first_half as i64 - 250).abs() <= 1, "{first_half}");
    }

    #[test]
    fn shards_together_are_the_schedule_and_keep_pairs() {
        let ex = Executor::ConstantArrivalRate { rate: 100.0, duration: Duration::from_secs(3) };
        let whole: Vec<Duration> = ArrivalSchedule::new(&ex, Duration::ZERO).unwrap().collect();
        let mut union: Vec<Duration> = Vec::new();
        let halves = [Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 }];
        for shard in halves.iter().flat_map(|h| h.split(2)) {
            let mine: Vec<Duration> = ArrivalSchedule::new(&ex, Duration::ZERO).unwrap().sharded(shard, 2).collect();
            // Pairs stay whole: each shard's arrivals come in twos of neighbours.
            assert!(mine.chunks(2).all(|p| p.len() == 2 && (p[1] - p[0]).as_secs_f64() < 0.0101), "{shard}");
            let s = ArrivalSchedule::new(&ex, Duration::ZERO).unwrap();
            assert_eq!(s.shard_count_between(shard, 2, 0.0, 3.0), mine.len() as f64);
            union.extend(mine);
        }
        union.sort();
        assert_eq!(union, whole);
    }

    #[test]
    fn closed_models_have_no_schedule() {
        assert!(ArrivalSchedule::new(
            &Executor::ConstantVus { vus: 1, duration: Duration::from_secs(1) },
            Duration::ZERO
        )
        .is_none());
    }
}
