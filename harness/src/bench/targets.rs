//! What the bench runs against, for its whole life: the local stack (the worker
//! built, two `wrangler dev` started on fresh state, their cache modes checked,
//! the cache-on one restarted for cold starts, both stopped on every path) or
//! deployed workers (their health and modes checked).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::recipe_stack::{RecipeStack, Slot, StackInputs};
use super::servers::{self, LocalServer, Secrets, ServerSpec, Workspace};
use super::{BenchError, BenchOptions, Env};
use crate::target::worker::{get_health, Health, HealthCache};
use crate::target::SetupClient;

/// The local servers' KV/D1 state: disposable (every bench starts fresh, the logs
/// are in the report), removed when dropped — after the servers, which are declared
/// (and so dropped) before it.
pub(super) struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the bench runs against. Field order is drop order: servers, then their state.
pub(super) struct Targets {
    pub on: String,
    pub off: String,
    pub secret: Option<String>,
    /// Local servers, stopped when this is dropped.
    pub local: Vec<LocalServer>,
    pub state: Option<StateDir>,
    pub worker_version: Option<String>,
    /// How to start the cache-on server again (local stack only): cold starts.
    pub restart: Option<Restart>,
    /// A recipe's instances, reset, seeded and started before every run.
    pub recipe: Option<RecipeStack>,
}

/// What starting the local cache-on server again needs.
pub(super) struct Restart {
    ws: Workspace,
    secrets: Secrets,
    state: PathBuf,
    log: PathBuf,
    cpus: Vec<usize>,
}

impl Targets {
    /// Stops the cache-on server and starts it again on the same state (and,
    /// when it is free, the same port): a fresh isolate. `on` is its new URL.
    pub(super) fn restart_on(&mut self, env: &Env<'_>) -> Result<(), String> {
        let (setup, cancel): (&SetupClient, &AtomicBool) = (env.setup, env.cancel);
        let r = self.restart.as_ref().ok_or("cold starts need the local stack (the harness restarts wrangler dev)")?;
        let port = self.on.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        self.local[0].stop();
        let spec = ServerSpec {
            name: "cache-on",
            env: None,
            state: &r.state,
            log: &r.log,
            cpus: &r.cpus,
            port,
            migrate: false,
        };
        let mut server =
            LocalServer::start(&r.ws, &spec, &r.secrets, cancel, env.observer).map_err(|e| e.to_string())?;
        let health = server.wait_ready(setup, cancel).map_err(|e| e.to_string())?;
        check_mode(&health, "on", "cache-on", &server.url).map_err(|e| e.to_string())?;
        if self.off == self.on {
            self.off = server.url.clone();
        }
        self.on = server.url.clone();
        self.local[0] = server;
        Ok(())
    }

    /// Why a local server is gone, if one is.
    pub(super) fn dead_server(&mut self) -> Option<String> {
        let local =
            self.local.iter_mut().find_map(|s| s.exited().map(|r| format!("{r}; its log: {}", s.log.display())));
        local.or_else(|| self.recipe.as_mut().and_then(RecipeStack::dead))
    }

    /// Derives the scenarios' users' credentials: a recipe's users secret, else the bench secret.
    pub(super) fn users_secret(&self) -> Option<&str> {
        match &self.recipe {
            Some(stack) => Some(&stack.users_secret),
            None => self.secret.as_deref(),
        }
    }

    /// The route that says what the target is, when it has one, and what it said.
    pub(super) fn health_route(&self) -> Option<String> {
        match (&self.recipe, &self.secret) {
            (Some(stack), _) => stack.health.as_ref().and_then(serde_json::Value::as_object).map(|o| {
                let keys: Vec<&str> = o.keys().map(String::as_str).collect();
                format!("GET {} answers JSON with {}", stack.recipe.ready_path, keys.join(", "))
            }),
            (None, Some(_)) => Some("GET /health: version, cache mode and layers, latency profile".into()),
            (None, None) if self.worker_version.is_some() => Some("GET /health: version".into()),
            (None, None) => None,
        }
    }

    /// The cache-on arm's label, for a target whose caching is not reported by
    /// a health route (a recipe's).
    pub(super) fn cache_on_label(&self) -> Option<String> {
        self.recipe.as_ref().map(|r| r.recipe.arm(crate::recipe::CacheRole::On).label.clone())
    }

    /// The A/B design, in the report's words.
    pub(super) fn design(&self) -> Option<String> {
        self.recipe.as_ref().map(|r| r.recipe.design().to_owned())
    }

    /// Before a run: a recipe's instances that `control` (the A/A control) or a
    /// scenario run needs, reset, seeded and started.
    pub(super) fn prepare(&mut self, control: bool, env: &Env<'_>) -> Result<(), BenchError> {
        let Some(stack) = &mut self.recipe else { return Ok(()) };
        let slots: &[Slot] =
            if control && stack.has(Slot::OffTwin) { &[Slot::Off, Slot::OffTwin] } else { &[Slot::Off, Slot::On] };
        stack.fresh(slots, env)
    }

    /// The URL of the cache-off arm's second instance (a tied recipe's control).
    pub(super) fn twin(&self) -> Option<String> {
        self.recipe.as_ref().filter(|r| r.has(Slot::OffTwin)).map(|r| r.url(Slot::OffTwin))
    }
}

/// Builds the worker if its sources changed (`scripts/build-worker`), logging to `logs/build.log`.
fn build_worker(ws: &Workspace, logs: &Path, env: &Env<'_>) -> Result<(), BenchError> {
    let log = logs.join("build.log");
    env.observer.say(&format!("building the worker if needed (scripts/build-worker; log {})", log.display()));
    let mut build = std::process::Command::new("bash");
    build.arg("scripts/build-worker").current_dir(&ws.root);
    servers::run_logged(build, "the worker build (scripts/build-worker)", &log, env.cancel, env.observer).map_err(|e| {
        match e {
            BenchError::Setup(m) => BenchError::Setup(format!(
                "{m}\nIf a tool is missing (worker-build, wasm-bindgen, the wasm32 target), run scripts/setup."
            )),
            other => other,
        }
    })
}

/// Pins the harness to one CPU and returns the servers' CPUs, when the machine
/// has enough to keep them apart (empty: any); what was done goes to `notes`.
fn pin_apart(notes: &mut Vec<String>) -> Vec<usize> {
    match servers::cpu_split() {
        Some((harness_cpu, rest)) => match servers::pin_to(&[harness_cpu]) {
            Ok(()) => {
                notes.push(format!("the harness ran on CPU {harness_cpu}, the servers on CPUs {rest:?}"));
                rest
            }
            Err(e) => {
                notes.push(format!("CPUs not pinned: {e}"));
                Vec::new()
            }
        },
        None => {
            notes.push(format!(
                "harness and servers share the machine's {} CPU(s): too few to pin them apart without starving \
                 the servers; each run records the harness's CPU share and flags a client-bound run",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ));
            Vec::new()
        }
    }
}

/// Starts the local server (two with `--two-servers`): migrated, healthy, its mode checked.
pub(super) fn start_local(
    opts: &BenchOptions,
    dir: &Path,
    env: &Env<'_>,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    let cancel: &AtomicBool = env.cancel;
    let ws = Workspace::find(&opts.root, opts.wrangler.clone())?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", logs.display())))?;
    build_worker(&ws, &logs, env)?;
    let secrets = Secrets::random();
    let server_cpus = pin_apart(notes);
    // Fresh state per run, beside the other wrangler state (not in the report).
    let stamp = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let state_root = ws.root.join(".wrangler/bench").join(&stamp);
    let state_dir = StateDir(state_root.clone());
    // One server by default: both arms on one KV and one D1, as production's
    // requests share one namespace. Two servers cannot share them (two workerd
    // processes on one persisted state fail with SQLITE_BUSY under load), so
    // with two each key misses once per server and the cache-on arm pays its
    // cold misses twice.
    let all_kinds = [("cache-on", None, opts.port_on), ("cache-off", Some("cache-off"), opts.port_off)];
    let kinds = &all_kinds[..if opts.two_servers { 2 } else { 1 }];
    if opts.two_servers {
        notes.push(
            "--two-servers: each local server had its own KV and D1 state, so every cache key missed once per \
             server and the cache-on arm paid its cold misses twice (hit ratios below a one-server run's)"
                .to_owned(),
        );
    }
    let start = |(name, wrangler_env, port): (&str, Option<&str>, Option<u16>)| {
        let state = state_root.join(name);
        let log = logs.join(format!("wrangler-{name}.log"));
        let spec =
            ServerSpec { name, env: wrangler_env, state: &state, log: &log, cpus: &server_cpus, port, migrate: true };
        let server = LocalServer::start(&ws, &spec, &secrets, cancel, env.observer)?;
        env.observer.say(&format!("{name}: starting wrangler dev on {} (log {})", server.url, log.display()));
        Ok::<_, BenchError>(server)
    };
    let mut local = kinds.iter().copied().map(start).collect::<Result<Vec<_>, _>>()?;
    let mut worker_version = None;
    for (i, expected) in ["on", "off"].into_iter().enumerate().take(local.len()) {
        let mut health = local[i].wait_ready(env.setup, cancel);
        // The port was free when picked, but something may have taken it before
        // wrangler bound it: start again on another.
        for _ in 0..2 {
            match &health {
                Err(BenchError::Server(m)) if m.to_ascii_lowercase().contains("address already in use") => {
                    let (name, wrangler_env, _) = kinds[i];
                    env.observer.say(&format!("{name}: its port was taken; starting again on another"));
                    local[i] = start((name, wrangler_env, None))?;
                    health = local[i].wait_ready(env.setup, cancel);
                }
                _ => break,
            }
        }
        let (server, health) = (&local[i], health?);
        let cache = check_mode(&health, expected, &server.name, &server.url)?;
        let layers = if cache.layers.is_empty() { "no layers".to_owned() } else { cache.layers.join(",") };
        env.observer.say(&format!("{}: ready on {} (cache {}: {layers})", server.name, server.url, cache.mode));
        worker_version = worker_version.or(health.version);
    }
    let restart = Restart {
        ws,
        state: state_root.join("cache-on"),
        log: logs.join("wrangler-cache-on-restarts.log"),
        cpus: server_cpus,
        secrets: secrets.clone(),
    };
    Ok(Targets {
        on: local[0].url.clone(),
        off: local.last().map(|s| s.url.clone()).unwrap_or_default(),
        secret: Some(secrets.bench.clone()),
        local,
        state: Some(state_dir),
        worker_version,
        restart: Some(restart),
        recipe: None,
    })
}

/// The cache mode a target reports must be the one its arm stands for: a swapped
/// pair, or another server on the port, would turn the verdicts upside down.
fn check_mode(health: &Health, expected: &str, name: &str, url: &str) -> Result<HealthCache, BenchError> {
    let cache = health.cache.clone().ok_or_else(|| {
        BenchError::Server(format!(
            "{name} ({url}) does not report its cache mode in GET /health: is it the target worker?"
        ))
    })?;
    if cache.mode != expected {
        return Err(BenchError::Server(format!(
            "{name} ({url}) reports cache mode {:?}, expected {expected:?}: are the targets swapped, or is another \
             server on that port?",
            cache.mode
        )));
    }
    Ok(cache)
}

/// Deployed workers: each must answer `/health` and, when it reports one, with
/// the cache mode it stands for.
pub(super) fn deployed(
    on: &str,
    off: &str,
    secret: Option<String>,
    client: &SetupClient,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    let mut targets = Targets {
        on: on.to_owned(),
        off: off.to_owned(),
        secret,
        local: Vec::new(),
        state: None,
        worker_version: None,
        restart: None,
        recipe: None,
    };
    for (t, name, expected) in [(on, "cache-on", "on"), (off, "cache-off", "off")] {
        let h = get_health(client, t).map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
        if h.cache.is_some() {
            check_mode(&h, expected, name, t)?;
        } else {
            notes.push(format!("the {name} target does not report its cache mode in GET /health: not checked"));
        }
        targets.worker_version = targets.worker_version.take().or(h.version);
    }
    Ok(targets)
}

/// One deployed worker serving both arms: each request's cache is set with
/// `x-bench-cache`, so the arms differ in nothing else.
pub(super) fn deployed_one(
    url: &str,
    secret: Option<String>,
    client: &SetupClient,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    let secret = secret.ok_or_else(|| {
        BenchError::Setup(
            "--target needs --bench-secret: the arms are told apart by x-bench-cache, which the worker honours only \
             with its BENCH_SECRET"
                .into(),
        )
    })?;
    let h = get_health(client, url).map_err(|e| BenchError::Server(format!("target unreachable: {e}")))?;
    notes.push(format!("one deployment ({url}) served both arms, the cache set per request with x-bench-cache"));
    Ok(Targets {
        on: url.to_owned(),
        off: url.to_owned(),
        secret: Some(secret),
        local: Vec::new(),
        state: None,
        worker_version: h.version,
        restart: None,
        recipe: None,
    })
}

/// The bench's targets as the options give them: one deployment, two, or the
/// local stack started here.
/// A recipe's instances: ports and state picked, the users rendered for its
/// seeding; nothing started until the first run's `prepare`.
fn from_recipe(
    recipe: &crate::recipe::Recipe,
    opts: &BenchOptions,
    scenarios: &[crate::scenario::Scenario],
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    let inputs = StackInputs::for_scenarios(recipe, opts.users_secret.clone(), scenarios, dir)?;
    let stack = RecipeStack::open(recipe.clone(), inputs)?;
    notes.push(format!("target: {} (recipe {})", recipe.describes, recipe.file.display()));
    notes.push(format!("design: {}", recipe.design()));
    notes.extend(stack.describe().into_iter().map(|d| format!("instance {d}")));
    notes.push(
        "before every run each instance was stopped, its state reset (the recipe's reset), seeded from the exported users and started again: no run saw another's cache"
            .to_owned(),
    );
    Ok(Targets {
        on: stack.url(Slot::On),
        off: stack.url(Slot::Off),
        secret: None,
        local: Vec::new(),
        state: None,
        worker_version: None,
        restart: None,
        recipe: Some(stack),
    })
}

pub(super) fn open(
    opts: &BenchOptions,
    scenarios: &[crate::scenario::Scenario],
    dir: &Path,
    env: &Env<'_>,
    notes: &mut Vec<String>,
) -> Result<Targets, BenchError> {
    if let Some(recipe) = &opts.recipe {
        if opts.target.is_some() || opts.target_on.is_some() {
            return Err(BenchError::Setup(
                "--recipe starts its own servers: give it without --target or --target-on".into(),
            ));
        }
        return from_recipe(recipe, opts, scenarios, dir, notes);
    }
    match (&opts.target_on, &opts.target_off, &opts.target) {
        (None, None, Some(one)) => deployed_one(one, opts.bench_secret.clone(), env.setup, notes),
        (Some(on), Some(off), None) => deployed(on, off, opts.bench_secret.clone(), env.setup, notes),
        (None, None, None) => start_local(opts, dir, env, notes),
        _ => Err(BenchError::Setup(
            "give --target URL (one deployment), or both --target-on URL and --target-off URL, or none".into(),
        )),
    }
}

/// Checks what the bench asks of its targets before anything is measured: the
/// latency profiles and the strategies (returned, as the worker describes them).
pub(super) fn check(
    targets: &Targets,
    opts: &BenchOptions,
    measurements: &[crate::result::Measurement],
    client: &SetupClient,
    local: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<super::strategies::StrategyInfo>, BenchError> {
    if !local && targets.secret.is_none() && targets.recipe.is_none() {
        notes.push(
            "no --bench-secret: nothing was seeded, no layer ablation, and scenarios with [users] were skipped \
             (their credentials derive from the secret)"
                .to_owned(),
        );
    }
    if let Some(secret) = &targets.secret {
        for t in [&targets.on, &targets.off] {
            super::profiles::check_target(client, t, secret, measurements)?;
        }
    }
    match (&targets.secret, opts.strategies.is_empty()) {
        (_, true) => Ok(Vec::new()),
        (Some(secret), false) => super::strategies::resolve(client, &targets.on, secret, &opts.strategies),
        (None, false) => Err(BenchError::Setup(
            "--strategies needs --bench-secret: the worker switches strategy per request (x-bench-strategy) only \
             with its BENCH_SECRET"
                .into(),
        )),
    }
}

impl Targets {
    /// Stops the local servers and removes their state: nothing of theirs is
    /// needed once the runs are done.
    pub(super) fn stop(&mut self) {
        for s in &mut self.local {
            s.stop();
        }
        self.state = None;
    }
}
