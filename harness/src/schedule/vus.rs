//! The closed model's schedule: how many virtual users run when. Each virtual
//! user has a window of the run (offsets from its start) in which it begins
//! iterations; a constant count is one window per user over the whole run, and
//! a ramping count (k6's `ramping-vus`) is stages of counts, users joining when
//! the count rises and leaving — after their iteration in flight — when it falls.

use std::time::Duration;

use crate::scenario::Executor;
use crate::shard::Shard;

/// When one virtual user begins iterations: from `start`, until `stop` (`None`:
/// the end of the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VuWindow {
    /// Which user (0-based): shards and threads deal users out by it.
    pub vu: u32,
    pub start: Duration,
    pub stop: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VuSchedule {
    windows: Vec<VuWindow>,
}

impl VuSchedule {
    /// A closed model's users over time (a ramping executor's are its stages)
    /// and the iteration budget they share; `None` for the open models.
    pub fn of(executor: &Executor) -> Option<(VuSchedule, Option<u64>)> {
        let (vus, budget) = executor.virtual_users()?;
        Some((VuSchedule::constant(vus), budget))
    }

    /// `vus` users for the whole run.
    pub fn constant(vus: u32) -> VuSchedule {
        VuSchedule::stages(&[(Duration::ZERO, vus)])
    }

    /// From each stage's offset on, its count of users runs (offsets ascending).
    /// Users `0..n` run while the count is `n`: a rise adds the next ones, a
    /// fall stops the highest.
    pub fn stages(stages: &[(Duration, u32)]) -> VuSchedule {
        let mut windows: Vec<VuWindow> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for &(at, n) in stages {
            while (open.len() as u32) < n {
                windows.push(VuWindow { vu: open.len() as u32, start: at, stop: None });
                open.push(windows.len() - 1);
            }
            while open.len() as u32 > n {
                let w = open.pop().expect("more open than wanted");
                windows[w].stop = Some(at);
            }
        }
        VuSchedule { windows }
    }

    /// The windows of `shard`'s users: every `shard.count`-th user from the
    /// `shard.index`-th, so shards (and a shard's threads) together run them all once.
    pub fn sharded(&self, shard: Shard) -> impl Iterator<Item = VuWindow> + '_ {
        self.windows.iter().copied().filter(move |w| shard.takes(u64::from(w.vu)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_count_is_every_user_for_the_whole_run_dealt_out_as_shares() {
        let s = VuSchedule::constant(5);
        assert_eq!(s.sharded(Shard::WHOLE).count(), 5);
        assert!(s.sharded(Shard::WHOLE).all(|w| w.start.is_zero() && w.stop.is_none()));
        for count in 1..=4u32 {
            let mut seen: Vec<u32> = Vec::new();
            for index in 0..count {
                let shard = Shard { index, count };
                let mine: Vec<u32> = s.sharded(shard).map(|w| w.vu).collect();
                assert_eq!(mine.len() as u64, shard.share(5), "{shard:?}");
                seen.extend(mine);
            }
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn stages_add_users_on_a_rise_and_stop_the_highest_on_a_fall() {
        let s = |t: u64| Duration::from_secs(t);
        let v = VuSchedule::stages(&[(s(0), 2), (s(10), 4), (s(20), 1), (s(30), 3)]);
        let w: Vec<(u32, u64, Option<u64>)> =
            v.sharded(Shard::WHOLE).map(|w| (w.vu, w.start.as_secs(), w.stop.map(|d| d.as_secs()))).collect();
        assert_eq!(
            w,
            [(0, 0, None), (1, 0, Some(20)), (2, 10, Some(20)), (3, 10, Some(20)), (1, 30, None), (2, 30, None)]
        );
    }
}
