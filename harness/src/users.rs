//! The user population of a run: seeded users whose credentials are derived from
//! the bench secret and seed (as the worker derived them), picked per iteration.

use std::collections::HashMap;

use bench_seed::{seeded_user, SeededUser};
use rand::Rng;
use rand_distr::{Distribution, Zipf};

use crate::scenario::{Pick, Users};

pub struct Population {
    users: Vec<SeededUser>,
    picker: Picker,
    /// Values extracted from responses, per user; kept for the user's later steps.
    extracted: Vec<HashMap<String, String>>,
    /// Steps marked `once_per_user` that have run for the user.
    done_once: Vec<Vec<bool>>,
}

enum Picker {
    Uniform,
    Zipf(Zipf<f64>),
    Sequential(usize),
}

impl Population {
    /// A run without `[users]`: one anonymous slot that holds extracted values.
    pub fn anonymous(steps: usize) -> Population {
        Population {
            users: Vec::new(),
            picker: Picker::Sequential(0),
            extracted: vec![HashMap::new()],
            done_once: vec![vec![false; steps]],
        }
    }

    pub fn new(spec: &Users, bench_secret: &str, steps: usize) -> Result<Population, String> {
        let n = spec.count as usize;
        let picker = match spec.pick {
            Pick::Uniform => Picker::Uniform,
            Pick::Sequential => Picker::Sequential(0),
            Pick::Zipf(s) => Picker::Zipf(Zipf::new(n as f64, s).map_err(|e| format!("zipf({s}): {e}"))?),
        };
        Ok(Population {
            users: (0..spec.count).map(|i| seeded_user(bench_secret, spec.seed, i)).collect(),
            picker,
            extracted: vec![HashMap::new(); n],
            done_once: vec![vec![false; steps]; n],
        })
    }

    pub fn len(&self) -> usize {
        self.users.len()
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

    pub fn user(&self, i: usize) -> Option<&SeededUser> {
        self.users.get(i)
    }

    pub fn extracted(&self, i: usize, name: &str) -> Option<&String> {
        self.extracted[i].get(name)
    }

    pub fn set_extracted(&mut self, i: usize, name: &str, value: String) {
        self.extracted[i].insert(name.to_owned(), value);
    }

    /// Marks step `s` as run for user `i`; false if it had run already.
    pub fn claim_once(&mut self, i: usize, s: usize) -> bool {
        !std::mem::replace(&mut self.done_once[i][s], true)
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
        let mut p = Population::new(&spec(Pick::Zipf(1.1)), "s", 1).unwrap();
        let mut rng = rand::rng();
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[p.pick(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[10] * 5, "{} vs {}", counts[0], counts[10]);
    }

    #[test]
    fn sequential_cycles_and_credentials_match_the_seed() {
        let mut p = Population::new(&spec(Pick::Sequential), "s", 1).unwrap();
        let mut rng = rand::rng();
        let picks: Vec<usize> = (0..102).map(|_| p.pick(&mut rng)).collect();
        assert_eq!(&picks[..3], &[0, 1, 2]);
        assert_eq!(picks[100], 0);
        assert_eq!(p.user(5), Some(&seeded_user("s", 1, 5)));
        assert!(p.claim_once(3, 0));
        assert!(!p.claim_once(3, 0));
    }
}
