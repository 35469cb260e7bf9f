//! Which part of a run's schedule one process (or one thread of it) sends, so that
//! N of them together send the schedule the scenario asks for (k6's execution
//! segments are the model). The schedule is striped: its iterations, taken in
//! units of one per arm (so the two iterations of an A/B pair stay together, on
//! one thread, and are never split), go to shard `u mod N` for unit `u`. Closed
//! models split their virtual users and iteration budget the same way.

use serde::{Deserialize, Serialize};

/// The environment variable a Kubernetes Indexed Job sets in each pod: its index.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Shard `index` of `count` (0-based, as `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole schedule.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Parses `--shard I/N` (I from 0 to N−1). `/N` takes I from `env`'s
    /// `JOB_COMPLETION_INDEX`, as a pod of a Kubernetes Indexed Job has it.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let usage = "expected I/N with 0 <= I < N (e.g. 0/4 … 3/4), or /N to take I from JOB_COMPLETION_INDEX";
        let (i, n) = text.trim().split_once('/').ok_or_else(|| format!("--shard {text:?}: {usage}"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("--shard {text:?}: {n:?} is not a count; {usage}"))?;
        let index_text = match i.trim() {
            "" => env(JOB_COMPLETION_INDEX).ok_or_else(|| {
                format!("--shard {text:?} takes its index from {JOB_COMPLETION_INDEX}, which is not set; {usage}")
            })?,
            given => given.to_owned(),
        };
        let index: u32 = index_text
            .trim()
            .parse()
            .map_err(|_| format!("--shard {text:?}: index {index_text:?} is not a number; {usage}"))?;
        if count == 0 || index >= count {
            return Err(format!("--shard {text:?}: index {index} is not below the count {count}; {usage}"));
        }
        Ok(Shard { index, count })
    }

    /// This shard cut into `parts` (one per thread): part `j` takes every
    /// `parts`-th unit of this shard's, starting with its `j`-th.
    pub fn split(self, parts: u32) -> Vec<Shard> {
        let parts = parts.max(1);
        (0..parts).map(|j| Shard { index: self.index + self.count * j, count: self.count * parts }).collect()
    }

    /// Whether unit `u` of the schedule (iterations `u·arms … u·arms + arms − 1`) is this shard's.
    pub fn takes(self, unit: u64) -> bool {
        unit % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's part of `total` things dealt out one at a time (virtual
    /// users, an iteration budget): `total / N`, one more for the first `total mod N`.
    pub fn share(self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_and_takes_the_index_from_the_job() {
        assert_eq!(Shard::parse("2/4", &no_env).unwrap(), Shard { index: 2, count: 4 });
        let job = |k: &str| (k == JOB_COMPLETION_INDEX).then(|| "3".to_owned());
        assert_eq!(Shard::parse("/4", &job).unwrap(), Shard { index: 3, count: 4 });
        assert!(Shard::parse("/4", &no_env).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(Shard::parse("4/4", &no_env).unwrap_err().contains("not below"));
        assert!(Shard::parse("1/0", &no_env).is_err());
        assert!(Shard::parse("x/4", &no_env).is_err());
        assert!(Shard::parse("4", &no_env).is_err());
    }

    #[test]
    fn shards_and_their_threads_cover_every_unit_once() {
        let shards: Vec<Shard> = (0..3).flat_map(|i| Shard { index: i, count: 3 }.split(2)).collect();
        for unit in 0..600u64 {
            assert_eq!(shards.iter().filter(|s| s.takes(unit)).count(), 1, "unit {unit}");
        }
        let total: u64 = shards.iter().map(|s| s.share(10)).sum();
        assert_eq!(total, 10);
        assert_eq!(Shard { index: 0, count: 4 }.share(10), 3);
        assert_eq!(Shard { index: 3, count: 4 }.share(10), 2);
    }
}
