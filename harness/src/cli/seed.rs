//! `harness seed`: resets (with `--reset`) and seeds deployed targets with the
//! users the scenarios need, as `harness bench` does before each scenario: the
//! step a Kubernetes Job runs once before its shards (`--no-seed`) send load.

use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{bad, load_scenario, Fail};
use crate::bench::seeding;
use crate::exit;

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Scenario files whose [users] to seed (the largest count per seed).
    pub scenarios: Vec<PathBuf>,
    /// A target to seed (repeatable: every instance the arms will reach).
    #[arg(long, env = "HARNESS_TARGET", required = true, num_args = 1, action = clap::ArgAction::Append)]
    pub target: Vec<String>,
    /// The targets' BENCH_SECRET: the users' credentials derive from it.
    #[arg(long, env = "BENCH_SECRET", hide_env_values = true)]
    pub bench_secret: String,
    /// Seed this many users of --seed as well (e.g. for a scenario not at hand).
    #[arg(long, requires = "seed")]
    pub users: Option<u32>,
    /// The seed of --users.
    #[arg(long, requires = "users")]
    pub seed: Option<u64>,
    /// Delete the bench data first (every seeded user and bench entry), as the
    /// local bench does before each scenario.
    #[arg(long)]
    pub reset: bool,
    /// What the target is (see `harness run --help`); a plain HTTP API cannot be seeded.
    #[arg(long, value_enum, default_value = "auto", env = "HARNESS_TARGET_KIND")]
    pub target_kind: crate::target::TargetChoice,
    /// Trust this CA (PEM) for https:// targets. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Do not verify https:// certificates.
    #[arg(long, short = 'k')]
    pub insecure: bool,
}

pub(super) fn seed(args: SeedArgs) -> Result<i32, Fail> {
    let users = wanted_users(&args.scenarios, args.users.zip(args.seed))?;
    if users.is_empty() && !args.reset {
        return Err(bad(
            "nothing to seed: the scenarios given have no [users] section; give scenarios that do, or --users N \
             --seed K, or --reset alone",
        ));
    }
    let tls = crate::client::TlsOptions::new(args.ca_cert.clone(), args.insecure);
    tls.config().map_err(bad)?;
    let client = crate::target::SetupClient::new(&tls).map_err(bad)?;
    let target = args.target_kind.target();
    let urls: Vec<&str> = args.target.iter().map(String::as_str).collect();
    seeding::seed_all(target.as_ref(), &client, &urls, &args.bench_secret, &users, args.reset)
        .map_err(|e| Fail(exit::UNREACHABLE_OR_INVALID, format!("seeding failed: {e}")))?;
    let said: Vec<String> = users.iter().map(|(seed, n)| format!("{n} of seed {seed}")).collect();
    println!(
        "seeded {} on {}{}",
        if said.is_empty() { "no users".to_owned() } else { said.join(", ") },
        urls.join(", "),
        if args.reset { " (reset first)" } else { "" }
    );
    Ok(exit::PASS)
}

/// The users per seed the scenarios use (the largest count per seed), and
/// `extra` users of a seed besides (`--users N --seed K`).
pub(super) fn wanted_users(scenarios: &[PathBuf], extra: Option<(u32, u64)>) -> Result<BTreeMap<u64, u32>, Fail> {
    let scenarios = scenarios.iter().map(|f| load_scenario(f)).collect::<Result<Vec<_>, _>>()?;
    let mut users: BTreeMap<u64, u32> = seeding::users_per_seed(&scenarios, 0);
    if let Some((count, seed)) = extra {
        let n = users.entry(seed).or_insert(0);
        *n = (*n).max(count);
    }
    Ok(users)
}
