//! `harness bench`: the main job (see `crate::bench`).

use clap::Args;
use std::path::PathBuf;

use super::{bad, compare_options, repo_dir, ClientFlags, CompareArgs, Fail};
use crate::bench;
use crate::claims;
use crate::exit;
use crate::report::{self as exporters, Destinations, Report};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scenario files [default: scenarios/{auth,model-list,settings-change,mixed}.toml].
    pub scenarios: Vec<PathBuf>,
    /// Deployed cache-on worker (with --target-off): no local servers.
    #[arg(long, env = "HARNESS_TARGET_ON", requires = "target_off")]
    pub target_on: Option<String>,
    /// Deployed cache-off worker (`wrangler deploy --env cache-off`).
    #[arg(long, env = "HARNESS_TARGET_OFF", requires = "target_on")]
    pub target_off: Option<String>,
    /// One deployed worker serving both arms through x-bench-cache (needs
    /// --bench-secret): no local servers, no instance difference between the arms.
    #[arg(long, env = "HARNESS_TARGET", conflicts_with_all = ["target_on", "target_off"])]
    pub target: Option<String>,
    /// Deployed workers are already seeded with this secret: do not seed them.
    #[arg(long)]
    pub no_seed: bool,
    /// A few seconds per run (5 s measured, 2 s warm-up): a smoke test for CI.
    #[arg(long, env = "HARNESS_QUICK")]
    pub quick: bool,
    /// Scenario (by name) of the per-layer ablation [default: mixed if it runs, else the last one].
    #[arg(long)]
    pub ablation_scenario: Option<String>,
    /// Keep measuring each run, in stages of its scenario's length, until its claims
    /// have verdicts other than inconclusive (or its p50 change is decided), spending
    /// at most this much measured traffic per run (e.g. 2m); CIs widened per look.
    #[arg(long, value_name = "MAX", value_parser = crate::scenario::duration::parse_duration)]
    pub until_decided: Option<std::time::Duration>,
    /// Run every A/B (scenarios, ablation, A/A control) again under this latency
    /// profile of the worker (repeatable; `local` = measured, `all` = every built-in
    /// profile): KV and D1 delays modelled on production's, each figure with its
    /// source in bench-seed/data/latency-profiles.json. Modelled runs are
    /// labelled "modelled: <profile>" everywhere. Needs the bench secret.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Rank cache strategies of the worker (`all`, or a comma list such as
    /// generation,memory,swr): each scenario runs as an interleaved A/B of cache-off
    /// against each strategy, then a staleness probe per strategy; one ranking table
    /// per scenario and measurement (latency, hit ratio, staleness, operations,
    /// cost). Composes with --profile. Needs the bench secret.
    #[arg(long, value_name = "LIST")]
    pub strategies: Vec<String>,
    /// With --strategies: do not re-run a ranking's tied leaders (strategies
    /// sharing the first rank) against each other in one interleaved run.
    #[arg(long, requires = "strategies")]
    pub no_head_to_head: bool,
    /// Run the two arms of any worker as this recipe says (start, readiness,
    /// reset, seed, what each arm is): see examples/ai-platform/recipe.toml. The
    /// scenarios default to the recipe's directory's scenarios/*.toml and the
    /// claims to its claims.toml.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "target_on", "target_off", "profiles", "strategies"])]
    pub recipe: Option<PathBuf>,
    /// Skip the per-layer ablation.
    #[arg(long)]
    pub no_ablation: bool,
    /// Directory of bench reports: each run writes <DIR>/<timestamp>/ [default: <repo>/reports].
    #[arg(long, env = "HARNESS_REPORTS")]
    pub out: Option<PathBuf>,
    /// The repository (wrangler.toml, node_modules, scenarios); found upwards from here.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Port of the local cache-on server [default: a free one]; another if it is in use.
    #[arg(long, conflicts_with = "target_on")]
    pub port_on: Option<u16>,
    /// Port of the local cache-off server (with --two-servers) [default: a free one]; another if it is in use.
    #[arg(long, conflicts_with = "target_off", requires = "two_servers")]
    pub port_off: Option<u16>,
    /// Run each scenario's A/A control this many times and pool them into one
    /// (their changes averaged by inverse variance): the verdicts are held to
    /// the pooled control, narrower than any of its runs, so one control that
    /// called a difference by chance does not take them away.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub controls: u32,
    /// The local stack as two wrangler dev, the second on the cache-off config,
    /// both arms crossed between them. Each has its own KV and D1 (two processes
    /// cannot share them), so every key misses once per server and the cache-on
    /// arm pays its cold misses twice. Default: one server serves both arms
    /// (x-bench-cache per request) on one state, as production's requests share
    /// one namespace, and there is no instance difference to confound.
    #[arg(long, conflicts_with_all = ["target", "target_on", "target_off", "recipe"])]
    pub two_servers: bool,
    /// The wrangler to run [default: <root>/node_modules/.bin/wrangler].
    #[arg(long, env = "HARNESS_WRANGLER")]
    pub wrangler: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// A sharded bench is one of N processes against deployed workers: it must not
/// reset or seed them under the others' feet, nor decide on its part of the data.
fn check_sharded_bench(opts: &BenchArgs, deployed: bool) -> Result<(), Fail> {
    if !deployed {
        return Err(bad(
            "--shard splits a run over machines sending to deployed workers (--target, or --target-on and \
             --target-off); the local stack is on this machine: use --threads",
        ));
    }
    if !opts.no_seed {
        return Err(bad(
            "a sharded bench cannot seed: each shard would reset the workers under the others; seed them once \
             (one unsharded `harness bench --target … --quick`), then run every shard with --no-seed",
        ));
    }
    if !opts.strategies.is_empty() || opts.until_decided.is_some() {
        return Err(bad(
            "--strategies (resets KV between runs) and --until-decided (decides on its own data) cannot be sharded",
        ));
    }
    Ok(())
}

pub(super) fn bench(opts: BenchArgs) -> Result<i32, Fail> {
    use crate::bench::{BenchError, BenchOptions};
    let repo = repo_dir(&opts.root);
    let deployed = opts.target.is_some() || opts.target_on.is_some();
    let shard = opts.client.shard.unwrap_or_default();
    if !shard.is_whole() {
        check_sharded_bench(&opts, deployed)?;
    }
    let recipe = opts.recipe.as_deref().map(crate::recipe::load).transpose().map_err(bad)?;
    let recipe_dir = recipe.as_ref().map(|r| r.file.parent().unwrap_or(std::path::Path::new(".")).to_owned());
    let scenarios = match (&recipe_dir, opts.scenarios.is_empty()) {
        (_, false) => opts.scenarios,
        (Some(dir), true) => recipe_scenarios(dir)?,
        (None, true) => {
            bench::STANDARD_SCENARIOS.iter().map(|n| repo.join("scenarios").join(format!("{n}.toml"))).collect()
        }
    };
    let claims_file = opts.compare.claims.clone().or_else(|| {
        let default = match &recipe_dir {
            Some(dir) => dir.join("claims.toml"),
            None => repo.join("scenarios/claims.toml"),
        };
        default.is_file().then_some(default)
    });
    let claims = match &claims_file {
        Some(p) => claims::load(p).map_err(bad)?,
        None => Vec::new(),
    };
    // The local stack's servers share this machine's cores with the harness: one
    // sending thread unless asked (the calibration was made so).
    let threads = match opts.client.threads {
        Some(n) => n,
        None if deployed => {
            let targets = [&opts.target, &opts.target_on, &opts.target_off];
            opts.client.threads_for(&targets.iter().filter_map(|t| t.as_deref()).collect::<Vec<_>>())
        }
        None => 1,
    };
    let live = opts.client.live()?;
    let tls = opts.client.checked_tls()?;
    let bench_opts = BenchOptions {
        scenarios,
        target_on: opts.target_on,
        target_off: opts.target_off,
        target: opts.target,
        bench_secret: opts.client.bench_secret,
        no_seed: opts.no_seed,
        quick: opts.quick,
        until_decided: opts.until_decided,
        ablation: if opts.no_ablation { None } else { Some(opts.ablation_scenario) },
        out: opts.out.unwrap_or_else(|| repo.join("reports")),
        root: opts.root,
        wrangler: opts.wrangler,
        port_on: opts.port_on,
        port_off: opts.port_off,
        two_servers: opts.two_servers,
        controls: opts.controls,
        http_client: opts.client.http_client,
        progress: !opts.client.quiet,
        compare: compare_options(&opts.compare),
        profiles: opts.profiles,
        strategies: opts.strategies,
        head_to_head: !opts.no_head_to_head,
        threads,
        shard,
        live,
        tls,
        align_start: opts.client.align_start,
        recipe,
        users_secret: opts.client.users_secret,
        max_late_share: opts.client.max_late_share,
    };
    let cancel = crate::cancel::flag();
    let setup = crate::target::SetupClient::new(&bench_opts.tls).map_err(bad)?;
    let env = bench::Env { cancel: &cancel, setup: &setup, observer: &Exporters };
    match bench::run(&bench_opts, &claims, &env) {
        Ok((summary, dir)) => {
            let out =
                exporters::export(&Report::Bench(&summary), Destinations { dir: None, terminal: true }).map_err(bad)?;
            print!("{}", out.terminal);
            println!("report: {}", dir.join("index.html").display());
            let code = summary.exit_code(opts.compare.require_claims, opts.compare.allow_answer_changes);
            if !shard.is_whole() && code == exit::GATE_FAILED {
                println!("{}", super::SHARD_NOTE);
                return Ok(exit::PASS);
            }
            Ok(code)
        }
        Err(BenchError::Setup(m)) => Err(bad(m)),
        Err(e @ (BenchError::Server(_) | BenchError::Interrupted)) => {
            Err(Fail(exit::UNREACHABLE_OR_INVALID, e.to_string()))
        }
    }
}

/// A recipe's scenarios: `scenarios/*.toml` beside it, in name order.
pub(super) fn recipe_scenarios(dir: &std::path::Path) -> Result<Vec<PathBuf>, Fail> {
    let sdir = dir.join("scenarios");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&sdir)
        .map_err(|e| bad(format!("no scenarios given and none beside the recipe ({}): {e}", sdir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(bad(format!("no scenarios given and no *.toml in {}", sdir.display())));
    }
    Ok(found)
}

/// The bench's observer on the command line: progress to the terminal, each
/// A/B's report into its own directory, the bench's report files at the end.
struct Exporters;

impl bench::Observer for Exporters {
    fn say(&self, line: &str) {
        println!("{line}");
    }

    fn job_finished(&self, job: &bench::FinishedJob<'_>) -> Option<String> {
        let docs = [job.docs[0].clone(), job.docs[1].clone()];
        let sources = [job.source.to_owned()];
        match exporters::write(&docs, Some(job.comparison), &sources, &job.dir.join(job.slug)) {
            Ok(_) => Some(format!("{}/index.html", job.slug)),
            Err(e) => {
                eprintln!("warning: the report of {} could not be written: {e}", job.name);
                None
            }
        }
    }

    fn bench_finished(&self, summary: &bench::BenchSummary, dir: &std::path::Path) -> Result<(), String> {
        exporters::export(&Report::Bench(summary), Destinations { dir: Some(dir), terminal: false }).map(drop)
    }
}
