//! `harness gate`: is the head build slower than the base build? Two builds of
//! one worker — two git refs built and started as a recipe says (the worker as
//! it deploys, no per-request override), or two deployed URLs — run side by
//! side on one machine as interleaved A/Bs, base as A and head as B, and a
//! pre-declared primary decides (p50 of all requests per scenario by default)
//! with three outcomes: regression, no regression, undetermined.
//!
//! | room | job |
//! |---|---|
//! | `trees.rs` | the two refs' source trees (a persistent worktree for the base) |
//! | `decision.rs` | the primaries, the rule against the tolerance, the outcome |
//! | `render.rs` | the gate's terminal lines and its Markdown step summary |
//!
//! The design: each build runs twice (base, base', head, head'); every pair sends
//! one iteration to each build in random order, and within every two pairs each
//! build goes once to each of its instances, so one process's speed cannot read as
//! a difference between the builds. Every instance is restarted, reset and seeded
//! before every scenario. The CIs are the bench's (a time-block bootstrap of the
//! interleaved pairs), at a confidence that holds over every decision of the gate
//! (Bonferroni over scenarios × primaries, and over the looks of --until-decided).

pub mod decision;
pub mod render;
pub mod trees;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::bench::recipe_stack::{RecipeStack, Slot, StackInputs};
use crate::bench::{BenchError, Env};
use crate::compare::{self, CompareOptions, Comparison};
use crate::result::{ResultDoc, Status};
use crate::runner::{ArmSpec, RunError, RunOptions};
use crate::scenario::Scenario;
use crate::sequential;
pub use decision::{Decision, Outcome, Primary};
pub use trees::Tree;

pub const GATE_SCHEMA: &str = "cache-bench/gate/v1";

/// Where the two builds come from.
#[derive(Debug, Clone)]
pub enum Builds {
    /// Two refs of the recipe's repository, built and started here. `head: None`
    /// is the working tree as it is.
    Refs { recipe: PathBuf, base: String, head: Option<String> },
    /// Deployed workers, one or two URLs per build (two: each build's requests
    /// alternate between its two, as with local instances).
    Urls { base: Vec<String>, head: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct GateOptions {
    pub builds: Builds,
    pub scenarios: Vec<Scenario>,
    pub primaries: Vec<Primary>,
    /// Head may be this much slower (a fraction) before it is a regression.
    pub tolerance: f64,
    /// The whole gate's chance of a wrong regression call or a wrong pass, at most
    /// (each CI's is this over the decisions and looks).
    pub alpha: f64,
    /// Measure in stages of each scenario's length until every primary is decided,
    /// at most this much measured traffic per scenario.
    pub until_decided: Option<Duration>,
    /// Where results, logs and the gate's report go.
    pub out: PathBuf,
    pub compare: CompareOptions,
    /// Credentials of the scenarios' users on deployed workers (their bench
    /// secret, or the secret they were exported with).
    pub bench_secret: Option<String>,
    pub users_secret: Option<String>,
    pub http_client: crate::client::ClientKind,
    pub tls: crate::client::TlsOptions,
    pub threads: u32,
    pub progress: bool,
}

/// Everything the gate found: its report and its exit code's reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    pub schema: String,
    pub outcome: Outcome,
    /// The decisive decisions' reasons, or why nothing could be decided.
    pub reason: String,
    pub base: Side,
    pub head: Side,
    pub design: String,
    pub tolerance: f64,
    /// The confidence the whole gate holds (1 − α).
    pub confidence: f64,
    /// Each CI's confidence (of the last look).
    pub ci_confidence: f64,
    pub primaries: Vec<String>,
    pub decisions: Vec<Decision>,
    pub scenarios: Vec<ScenarioRun>,
    pub notes: Vec<String>,
    pub started_at: String,
    pub wall_s: f64,
}

/// One build as the report names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub label: String,
    /// Its tree, when it was built here.
    pub tree: Option<Tree>,
    pub urls: Vec<String>,
}

/// One scenario's A/B: what was measured, shown beside the decisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioRun {
    pub scenario: String,
    pub result: String,
    pub comparison: String,
    pub looks: u32,
    pub planned_looks: u32,
    /// The load model as run (after --rate, --duration and --warmup), in words.
    pub load: String,
    /// Measured requests per build.
    pub requests: [u64; 2],
    pub measured_s: f64,
    /// Pairs compared and those answered differently (shown, never gated).
    pub answers: Option<(u64, u64)>,
    /// Headline series' changes, shown, never gated: (series, metric, change, low, high).
    pub shown: Vec<(String, String, f64, f64, f64)>,
}

/// The builds' servers for one scenario: the URLs of A and B, and their twins.
struct Servers {
    base: String,
    head: String,
    twins: Option<[String; 2]>,
}

/// Runs the gate. Local instances are stopped on every path.
pub fn run(opts: &GateOptions, env: &Env<'_>) -> Result<GateReport, BenchError> {
    let started = Instant::now();
    let started_at = crate::result::rfc3339(SystemTime::now());
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", opts.out.display())))?;
    let decisions_per_look = (opts.scenarios.len() * opts.primaries.len()).max(1) as f64;
    let family_alpha = opts.alpha / decisions_per_look;
    let mut notes = Vec::new();
    let (mut stack, base, head, design) = match &opts.builds {
        Builds::Refs { recipe, base, head } => {
            let (stack, b, h) = open_refs(recipe, base, head.as_deref(), opts, env, &mut notes)?;
            (Some(stack), b, h, DESIGN_LOCAL.to_owned())
        }
        Builds::Urls { base, head } => {
            let design = if base.len() == 2 && head.len() == 2 { DESIGN_TWO_URLS } else { DESIGN_ONE_URL };
            let side = |label: &str, urls: &[String]| Side { label: label.into(), tree: None, urls: urls.to_vec() };
            (None, side("base", base), side("head", head), design.to_owned())
        }
    };
    let mut decisions = Vec::new();
    let mut runs = Vec::new();
    // The least confidence any scenario's CIs had (each look's: α over decisions and looks).
    let mut ci_confidence: f64 = 1.0;
    for sc in &opts.scenarios {
        let servers = match &mut stack {
            Some(stack) => {
                env.observer.say(&format!("{}: starting base, base', head, head' afresh", sc.name));
                stack.fresh(&[Slot::Base, Slot::BaseTwin, Slot::Head, Slot::HeadTwin], env)?;
                Servers {
                    base: stack.url(Slot::Base),
                    head: stack.url(Slot::Head),
                    twins: Some([stack.url(Slot::BaseTwin), stack.url(Slot::HeadTwin)]),
                }
            }
            None => urls_servers(&base.urls, &head.urls),
        };
        let users_secret = stack.as_ref().map(|s| s.users_secret.clone()).or_else(|| opts.users_secret.clone());
        let (run, mut decided, confidence) = gate_scenario(sc, &servers, users_secret, family_alpha, opts, env)?;
        ci_confidence = ci_confidence.min(confidence);
        decisions.append(&mut decided);
        runs.push(run);
        if env.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BenchError::Server("interrupted before every scenario was gated: no outcome".into()));
        }
        if let Some(why) = stack.as_mut().and_then(RecipeStack::dead) {
            return Err(BenchError::Server(format!("an instance stopped during the run: {why}")));
        }
    }
    if let Some(s) = stack.as_mut() {
        s.stop();
    }
    let outcome = decision::overall(&decisions);
    let report = GateReport {
        schema: GATE_SCHEMA.into(),
        outcome,
        reason: reason(outcome, &decisions),
        base,
        head,
        design,
        tolerance: opts.tolerance,
        confidence: 1.0 - opts.alpha,
        ci_confidence,
        primaries: opts.primaries.iter().map(ToString::to_string).collect(),
        decisions,
        scenarios: runs,
        notes,
        started_at,
        wall_s: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| BenchError::Setup(e.to_string()))? + "\n";
    let path = opts.out.join("gate.json");
    std::fs::write(&path, json).map_err(|e| BenchError::Setup(format!("cannot write {}: {e}", path.display())))?;
    Ok(report)
}

const DESIGN_LOCAL: &str = "two builds on this machine, two instances each (base, base', head, head'), every \
     instance restarted, reset and seeded before each scenario; pairs of one iteration per build in random order, \
     each build's requests alternating between its two instances, balanced within every two pairs";
const DESIGN_TWO_URLS: &str = "two deployed URLs per build; pairs of one iteration per build in random order, each \
     build's requests alternating between its two URLs, balanced within every two pairs";
const DESIGN_ONE_URL: &str = "one deployed URL per build, pairs of one iteration per build in random order: a \
     difference between the two deployments themselves (placement, warm isolates) reads as a difference between \
     the builds; give each build two URLs (--base-url and --head-url twice) to balance it";

fn urls_servers(base: &[String], head: &[String]) -> Servers {
    let twins = match (base, head) {
        ([_, b2], [_, h2]) => Some([b2.clone(), h2.clone()]),
        _ => None,
    };
    Servers { base: base[0].clone(), head: head[0].clone(), twins }
}

/// The two trees built, the recipe's four instances ready to start.
fn open_refs(
    recipe_path: &Path,
    base: &str,
    head: Option<&str>,
    opts: &GateOptions,
    env: &Env<'_>,
    notes: &mut Vec<String>,
) -> Result<(RecipeStack, Side, Side), BenchError> {
    let setup = BenchError::Setup;
    let here = recipe_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let root = trees::repo_root(here).map_err(setup)?;
    let base_commit = trees::resolve(&root, base).map_err(setup)?;
    let head_tree = match head {
        None => trees::working_tree(&root).map_err(setup)?,
        Some(h) => trees::checkout(&root, "head", h, &trees::resolve(&root, h).map_err(setup)?).map_err(setup)?,
    };
    let base_tree = trees::checkout(&root, "base", base, &base_commit).map_err(setup)?;
    // The head's recipe, read in the head's tree, then moved to the base's:
    // both builds are built and started by the same instructions.
    let relative = recipe_path
        .canonicalize()
        .ok()
        .and_then(|p| p.strip_prefix(root.canonicalize().unwrap_or(root.clone())).ok().map(Path::to_owned))
        .ok_or_else(|| BenchError::Setup(format!("{} is not inside {}", recipe_path.display(), root.display())))?;
    let head_recipe = crate::recipe::load(&head_tree.root.join(&relative)).map_err(setup)?;
    let head_root = head_tree.root.canonicalize().unwrap_or(head_tree.root.clone());
    let base_recipe = head_recipe.rebased(&head_root, &base_tree.root);
    // Dependencies installed in the working tree are borrowed by each worktree:
    // the recipe's directory as it lies in the working tree.
    let installed = match head {
        None => head_recipe.dir.clone(),
        Some(_) => head_recipe.rebased(&head_root, &root.canonicalize().unwrap_or(root.clone())).dir,
    };
    let checkouts = if head.is_some() { vec![&base_recipe, &head_recipe] } else { vec![&base_recipe] };
    for checkout in checkouts {
        trees::share(&installed, &checkout.dir, &head_recipe.gate.share).map_err(setup)?;
    }
    if head_tree.uncommitted {
        notes.push("head is the working tree with uncommitted changes".into());
    }
    notes.push(format!(
        "recipe {} ({}), as deployed: arm {:?}",
        relative.display(),
        head_recipe.describes,
        head_recipe.arms[head_recipe.gate.arm].label
    ));
    let inputs = StackInputs::for_scenarios(&head_recipe, opts.users_secret.clone(), &opts.scenarios, &opts.out)?;
    let stack = RecipeStack::open_gate(head_recipe, base_recipe, inputs)?;
    stack.build(env)?;
    notes.extend(stack.describe().into_iter().map(|d| format!("instance {d}")));
    let side = |tree: Tree| Side { label: tree.side.clone(), tree: Some(tree), urls: Vec::new() };
    Ok((stack, side(base_tree), side(head_tree)))
}

/// One scenario as an interleaved A/B of base against head, in stages until its
/// primaries are decided; returns what ran, the decisions and the CIs' confidence.
fn gate_scenario(
    sc: &Scenario,
    servers: &Servers,
    users_secret: Option<String>,
    family_alpha: f64,
    opts: &GateOptions,
    env: &Env<'_>,
) -> Result<(ScenarioRun, Vec<Decision>, f64), BenchError> {
    let arm = |label: &str, url: &str| ArmSpec { label: Some(label.into()), target: url.into(), extra_headers: vec![] };
    let run_opts = RunOptions {
        bench_secret: opts.bench_secret.clone(),
        users_secret,
        progress: opts.progress,
        stem: Some(format!("gate-{}", sc.name)),
        http_client: opts.http_client,
        twins: servers.twins.clone(),
        cancel: Some(Arc::clone(env.cancel)),
        threads: opts.threads,
        tls: opts.tls.clone(),
        ..RunOptions::new(vec![arm("base", &servers.base), arm("head", &servers.head)], opts.out.join("results"))
    };
    let judged = |c: &Comparison| {
        opts.primaries.iter().all(|p| {
            let d = decision::decide(&sc.name, p, decision::find(c, p), opts.tolerance, 0.0, None);
            d.outcome != Outcome::Undetermined
        })
    };
    let staged = sequential::run_stages(sc, &run_opts, opts.until_decided, family_alpha, &judged, |d, alpha| {
        // Enough resamples for the look's α: CompareOptions::resamples_needed.
        let copts = CompareOptions { alpha, max_regression: None, ..opts.compare.clone() };
        compare::compare(&d[0], &d[1], true, &[], &copts).map(Some)
    })
    .map_err(|e| match e {
        RunError::Unreachable(m) => BenchError::Server(format!("{}: target unreachable: {m}", sc.name)),
        RunError::Setup(m) => BenchError::Setup(m),
    })?;
    let c = staged.comparison.clone().expect("an A/B is always compared");
    let confidence = 1.0 - family_alpha / f64::from(staged.planned_looks);
    let invalid = invalid(&staged.arms);
    let decisions: Vec<Decision> = opts
        .primaries
        .iter()
        .map(|p| decision::decide(&sc.name, p, decision::find(&c, p), opts.tolerance, confidence, invalid.as_deref()))
        .collect();
    for d in &decisions {
        env.observer.say(&format!("  {} {}: {} — {}", d.scenario, d.primary, d.outcome.words(), d.reason));
    }
    let comparison_path = opts.out.join(format!("{}-comparison.json", sc.name));
    let text = serde_json::to_string_pretty(&c).map_err(|e| BenchError::Setup(e.to_string()))? + "\n";
    std::fs::write(&comparison_path, text)
        .map_err(|e| BenchError::Setup(format!("cannot write {}: {e}", comparison_path.display())))?;
    let rel = |p: &Path| p.strip_prefix(&opts.out).unwrap_or(p).display().to_string();
    let measured = |d: &ResultDoc| d.run.requests.saturating_sub(d.run.warmup_requests);
    let run = ScenarioRun {
        scenario: sc.name.clone(),
        result: rel(&staged.json),
        comparison: rel(&comparison_path),
        looks: staged.looks,
        planned_looks: staged.planned_looks,
        load: sc.load.executor.describe("", sc.load.think_time),
        requests: [measured(&staged.arms[0]), measured(&staged.arms[1])],
        measured_s: staged.arms[0].run.measured_s,
        answers: c
            .answers
            .as_ref()
            .and_then(|a| a.series.get(crate::series::ALL_TEXT))
            .map(|t| (t.compared, t.mismatched)),
        shown: shown(&c),
    };
    Ok((run, decisions, confidence))
}

/// Why the runs cannot be judged: one was not valid, or failed its thresholds
/// (its latency then leaves out the failures that made it look fast or slow).
fn invalid(arms: &[ResultDoc]) -> Option<String> {
    let mut why = Vec::new();
    for d in arms {
        let label = d.metadata.variant.as_deref().unwrap_or("?");
        if d.run.status != Status::Complete {
            why.push(format!("{label}'s run was {:?}: {}", d.run.status, d.run.invalid_reasons.join("; ")));
        }
        let failed: Vec<String> =
            d.thresholds.iter().filter(|t| !t.pass).map(|t| format!("{} {}", t.series, t.threshold)).collect();
        if !failed.is_empty() {
            why.push(format!("{label} failed its thresholds ({})", failed.join(", ")));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Every headline series' p50 and p99 change: shown beside the decisions, never gated.
fn shown(c: &Comparison) -> Vec<(String, String, f64, f64, f64)> {
    c.series
        .iter()
        .filter(|s| s.series.is_headline() && !s.series.is_server_side())
        .flat_map(|s| {
            s.metrics
                .iter()
                .filter(|m| matches!(m.metric, crate::stats::Metric::P50 | crate::stats::Metric::P99))
                .map(|m| (s.series.to_string(), m.metric.name().to_owned(), m.change, m.ci_low, m.ci_high))
        })
        .collect()
}

/// The outcome's reason: the decisions that made it.
fn reason(outcome: Outcome, decisions: &[Decision]) -> String {
    if decisions.is_empty() {
        return "nothing was judged: no scenario ran".into();
    }
    decisions
        .iter()
        .filter(|d| d.outcome == outcome)
        .map(|d| format!("{} {}: {}", d.scenario, d.primary, d.reason))
        .collect::<Vec<_>>()
        .join("; ")
}
