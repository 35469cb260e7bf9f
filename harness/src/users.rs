//! The user population of a run: seeded users whose credentials are derived from
//! the bench secret and seed (as the worker derived them), picked per iteration.

use std::collections::HashMap;

use bench_seed::{seeded_user, SeededUser};
use rand::Rng;
use rand_distr::{Distribution, Zipf};

use crate::scenario::{Pick, Users};

/// The prefix of the activity bands' tags (`users-1-10`, `users-11-100`, …).
pub const ACTIVITY_TAG: &str = "users-";

/// The first rank of an activity band's tag (`users-11-100` → 11), for ordering.
pub fn band_start(tag: &str) -> u64 {
    let rest = tag.strip_prefix(ACTIVITY_TAG).unwrap_or(tag);
    rest.split('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

/// Where the activity bands end, by rank.
const ACTIVITY_EDGES: [usize; 2] = [10, 100];

#[derive(Clone)]
pub struct Population {
    users: Vec<SeededUser>,
    picker: Picker,
    /// Slots per arm: the users, or one anonymous slot.
    slots: usize,
    /// Values extracted from responses, per arm and user (slot `arm * slots + user`);
    /// kept for the user's later steps in that arm. Each arm of an A/B is its own
    /// client: a token fetched by one arm is never used by the other, nor waited for.
    extracted: Vec<HashMap<String, String>>,
    /// Steps marked `once_per_user` that have run for the user in the arm.
    done_once: Vec<Vec<bool>>,
}

#[derive(Clone)]
enum Picker {
    Uniform,
    Zipf(Zipf<f64>),
    Sequential(usize),
}

impl Population {
    /// A run without `[users]`: one anonymous slot that holds extracted values.
    pub fn anonymous(steps: usize, arms: usize) -> Population {
        Population {
            users: Vec::new(),
            picker: Picker::Sequential(0),
            slots: 1,
            extracted: vec![HashMap::new(); arms],
            done_once: vec![vec![false; steps]; arms],
        }
    }

    pub fn new(spec: &Users, bench_secret: &str, steps: usize, arms: usize) -> Result<Population, String> {
        let n = spec.count as usize;
        let picker = match spec.pick {
            Pick::Uniform => Picker::Uniform,
            Pick::Sequential => Picker::Sequential(0),
            Pick::Zipf(s) => Picker::Zipf(Zipf::new(n as f64, s).map_err(|e| format!("zipf({s}): {e}"))?),
        };
        Ok(Population {
            users: (0..spec.count).map(|i| seeded_user(bench_secret, spec.seed, i)).collect(),
            picker,
            slots: n,
            extracted: vec![HashMap::new(); n * arms],
            done_once: vec![vec![false; steps]; n * arms],
        })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// The users an arm keeps state for: the population, or the anonymous slot.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn slot(&self, arm: usize, user: usize) -> usize {
        arm * self.slots + user
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn pick(&mut self, rng: &mut impl Rng) -> usize {
        let n = self.users.len();
        if n == 0 {
            return 0;
        }
        match &mut self.picker {
            Picker::Uniform => rng.random_range(0..n),
            // Zipf samples 1..=n, 1 the most frequent: user 0 is the hottest.
            Picker::Zipf(z) => (z.sample(rng) as usize).clamp(1, n) - 1,
            Picker::Sequential(next) => {
                let i = *next % n;
                *next = next.wrapping_add(1);
                i
            }
        }
    }

    /// Bands of user activity, as series tags with the users of each: under a
    /// Zipf pick user 0 is the most active, so ranks 1–10, 11–100 and 101 on
    /// hold users of very different request rates, and a hit ratio over all
    /// requests is mostly the top band's. Empty under other picks (all users
    /// alike) or with ten users or fewer.
    pub fn activity_bands(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let n = self.users.len();
        if !matches!(self.picker, Picker::Zipf(_)) || n <= ACTIVITY_EDGES[0] {
            return Vec::new();
        }
        let mut edges: Vec<usize> = ACTIVITY_EDGES.iter().copied().filter(|&e| e < n).collect();
        edges.insert(0, 0);
        edges.push(n);
        edges.windows(2).map(|w| (format!("{ACTIVITY_TAG}{}-{}", w[0] + 1, w[1]), w[0]..w[1])).collect()
    }

    pub fn user(&self, i: usize) -> Option<&SeededUser> {
        self.users.get(i)
    }

    pub fn extracted(&self, arm: usize, i: usize, name: &str) -> Option<&String> {
        self.extracted[self.slot(arm, i)].get(name)
    }

    pub fn set_extracted(&mut self, arm: usize, i: usize, name: &str, value: String) {
        let slot = self.slot(arm, i);
        self.extracted[slot].insert(name.to_owned(), value);
    }

    /// Marks step `s` as not run for user `i` in `arm` (its set-up failed): the
    /// user's next iteration in the arm runs it.
    pub fn release_once(&mut self, arm: usize, i: usize, s: usize) {
        let slot = self.slot(arm, i);
        self.done_once[slot][s] = false;
    }

    /// Marks step `s` as run for user `i` in `arm`; false if it had run already.
    pub fn claim_once(&mut self, arm: usize, i: usize, s: usize) -> bool {
        let slot = self.slot(arm, i);
        !std::mem::replace(&mut self.done_once[slot][s], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pick: Pick) -> Users {
        Users { count: 100, pick, seed: 1 }
    }

    #[test]
    fn zipf_makes_the_first_users_hot() {
        let mut p = Population::new(&spec(Pick::Zipf(1.1)), "s", 1, 1).unwrap();
        let mut rng = rand::rng();
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[p.pick(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[10] * 5, "{} vs {}", counts[0], counts[10]);
    }

    #[test]
    fn activity_bands_split_a_zipf_population_by_rank() {
        let bands = |count, pick| {
            let p = Population::new(&Users { count, pick, seed: 1 }, "s", 1, 1).unwrap();
            p.activity_bands().into_iter().map(|(tag, r)| format!("{tag}:{}..{}", r.start, r.end)).collect::<Vec<_>>()
        };
        assert_eq!(bands(300, Pick::Zipf(1.1)), ["users-1-10:0..10", "users-11-100:10..100", "users-101-300:100..300"]);
        assert_eq!(bands(40, Pick::Zipf(1.1)), ["users-1-10:0..10", "users-11-40:10..40"]);
        assert_eq!(bands(100, Pick::Zipf(1.1)), ["users-1-10:0..10", "users-11-100:10..100"]);
        assert!(bands(10, Pick::Zipf(1.1)).is_empty(), "one band says nothing");
        assert!(bands(300, Pick::Uniform).is_empty(), "users alike: no activity bands");
        assert_eq!(band_start("users-11-100"), 11);
        assert!(band_start("users-101-300") > band_start("users-11-100"));
    }

    #[test]
    fn sequential_cycles_and_credentials_match_the_seed() {
        let mut p = Population::new(&spec(Pick::Sequential), "s", 1, 2).unwrap();
        let mut rng = rand::rng();
        let picks: Vec<usize> = (0..102).map(|_| p.pick(&mut rng)).collect();
        assert_eq!(&picks[..3], &[0, 1, 2]);
        assert_eq!(picks[100], 0);
        assert_eq!(p.user(5), Some(&seeded_user("s", 1, 5)));
        assert!(p.claim_once(0, 3, 0));
        assert!(!p.claim_once(0, 3, 0));
        // Each arm keeps its own once-per-user state and extracted values.
        assert!(p.claim_once(1, 3, 0));
        p.release_once(1, 3, 0);
        assert!(p.claim_once(1, 3, 0), "released: claimable again");
        p.set_extracted(0, 3, "token", "a".into());
        assert_eq!(p.extracted(0, 3, "token").map(String::as_str), Some("a"));
        assert_eq!(p.extracted(1, 3, "token"), None);
    }
}
