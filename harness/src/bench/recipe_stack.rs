//! A recipe's instances for one bench (`crate::recipe`): ports picked once, and
//! before every run each instance the run needs is stopped, reset (its state
//! removed while stopped, the recipe's reset commands), seeded from the
//! exported users and started again, then waited for. Every instance is
//! stopped, with its process group, when the stack is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::servers::{free_port, run_logged, LocalServer};
use super::{BenchError, Env};
use crate::recipe::{fill, Arm, CacheRole, Recipe, SeedProtocol};

/// Which instance: the arms' own, the cache-off arm's second one (the A/A
/// control of a tied design), or one of a gate's two builds (two instances each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Off,
    On,
    OffTwin,
    Base,
    BaseTwin,
    Head,
    HeadTwin,
}

struct Instance {
    slot: Slot,
    name: String,
    port: u16,
    state: PathBuf,
    server: Option<LocalServer>,
}

/// What a stack's instances are given besides the recipe: where their state and
/// logs go, the users rendered for a seeding template, and the secrets.
pub struct StackInputs {
    /// The instances' state, removed when the stack is dropped.
    pub state_root: PathBuf,
    pub logs: PathBuf,
    pub users: Option<String>,
    /// Users per seed, for a seeding protocol.
    pub per_seed: BTreeMap<u64, u32>,
    /// Fills `{secret}`: given to the worker by its start command if it needs one.
    pub secret: String,
    /// Derives the users' credentials (the runner's and the seeding's).
    pub users_secret: String,
}

impl StackInputs {
    /// The secrets and users for `scenarios` on a recipe's instances; the
    /// logs go under `dir`. `users_secret` is the one the target's users were
    /// exported with, when the recipe seeds nothing itself.
    pub fn for_scenarios(
        recipe: &Recipe,
        users_secret: Option<String>,
        scenarios: &[crate::scenario::Scenario],
        dir: &Path,
    ) -> Result<StackInputs, BenchError> {
        let fresh = || hex::encode(rand::random::<[u8; 16]>());
        let secret = fresh();
        let per_seed = super::seeding::users_per_seed(scenarios, 0);
        let seed = recipe.seed.as_ref();
        let seeded = seed.is_some_and(|s| s.template.is_some() || s.protocol.is_some());
        // A target seeded by its own protocol derives credentials from its secret.
        let by_protocol = seed.is_some_and(|s| s.protocol.is_some());
        let users_secret = match (users_secret.or_else(|| recipe.users_secret.clone()), by_protocol) {
            (_, true) => secret.clone(),
            (Some(s), false) => s,
            (None, false) if !seeded && !per_seed.is_empty() => {
                return Err(BenchError::Setup(format!(
                    "{}: the scenarios use [users] ({} users) but the recipe seeds nothing: give --users-secret (the \
                     secret the target's users were exported with by `harness users`), or a [seed] that creates them",
                    recipe.file.display(),
                    per_seed.values().sum::<u32>()
                )))
            }
            (None, false) => fresh(),
        };
        let users = match seed.and_then(|s| s.template.as_ref()) {
            Some(template) => {
                let rows = crate::user_file::rows(&users_secret, &per_seed);
                Some(crate::user_file::render_template(&rows, template).map_err(BenchError::Setup)?)
            }
            None => None,
        };
        let stamp = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let state_root = std::env::temp_dir().join(format!("harness-recipe-{}-{stamp}", std::process::id()));
        Ok(StackInputs { state_root, logs: dir.join("logs"), users, per_seed, secret, users_secret })
    }
}

pub struct RecipeStack {
    pub recipe: Recipe,
    /// A gate's base build: the same recipe moved to the base's checkout.
    base: Option<Recipe>,
    /// Fills `{secret}`: given to the worker by its start command if it needs one.
    secret: String,
    users_file: Option<String>,
    /// Users per seed, for a seeding protocol.
    per_seed: BTreeMap<u64, u32>,
    /// Derives the users' credentials (the runner's and the seeding's).
    pub users_secret: String,
    logs: PathBuf,
    /// The instances' state, removed when the stack is dropped (after the servers).
    root: PathBuf,
    instances: Vec<Instance>,
    /// The first answer to the readiness request, when it was a JSON object: a
    /// health document that says what the target is.
    pub health: Option<serde_json::Value>,
}

impl RecipeStack {
    /// A bench's instances: the two arms', and a twin of the cache-off arm when
    /// the worker has no switch. Picks ports and state directories; starts nothing.
    pub fn open(recipe: Recipe, inputs: StackInputs) -> Result<RecipeStack, BenchError> {
        let mut slots = vec![Slot::Off, Slot::On];
        if recipe.switch.is_none() {
            slots.push(Slot::OffTwin);
        }
        RecipeStack::with_slots(recipe, None, inputs, &slots)
    }

    /// A gate's instances: two of the base build (the recipe moved to its
    /// checkout) and two of the head's.
    pub fn open_gate(head: Recipe, base: Recipe, inputs: StackInputs) -> Result<RecipeStack, BenchError> {
        RecipeStack::with_slots(head, Some(base), inputs, &[Slot::Base, Slot::Head, Slot::BaseTwin, Slot::HeadTwin])
    }

    fn with_slots(
        recipe: Recipe,
        base: Option<Recipe>,
        inputs: StackInputs,
        slots: &[Slot],
    ) -> Result<RecipeStack, BenchError> {
        let StackInputs { state_root, logs, users, per_seed, secret, users_secret } = inputs;
        let mut stack = RecipeStack {
            recipe,
            base,
            secret,
            users_file: users,
            per_seed,
            users_secret,
            logs,
            root: state_root,
            instances: Vec::new(),
            health: None,
        };
        for &slot in slots {
            let port = free_port().map_err(|e| BenchError::Setup(format!("no free loopback port: {e}")))?;
            let name = match slot {
                Slot::OffTwin => format!("{}'", stack.arm_of(Slot::Off).label),
                Slot::Base => "base".to_owned(),
                Slot::BaseTwin => "base'".to_owned(),
                Slot::Head => "head".to_owned(),
                Slot::HeadTwin => "head'".to_owned(),
                Slot::Off | Slot::On => stack.arm_of(slot).label.clone(),
            };
            let state = stack.root.join(slot.file_stem());
            stack.instances.push(Instance { slot, name, port, state, server: None });
        }
        std::fs::create_dir_all(&stack.logs)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", stack.logs.display())))?;
        Ok(stack)
    }

    pub fn url(&self, slot: Slot) -> String {
        let i = self.instances.iter().find(|i| i.slot == slot).expect("the stack has every slot it is asked for");
        format!("http://127.0.0.1:{}", i.port)
    }

    pub fn has(&self, slot: Slot) -> bool {
        self.instances.iter().any(|i| i.slot == slot)
    }

    /// The recipe an instance runs from: a gate's base build has its own checkout.
    fn recipe_of(&self, slot: Slot) -> &Recipe {
        match (&self.base, slot) {
            (Some(base), Slot::Base | Slot::BaseTwin) => base,
            _ => &self.recipe,
        }
    }

    fn arm_of(&self, slot: Slot) -> &Arm {
        let recipe = self.recipe_of(slot);
        match slot {
            Slot::On => recipe.arm(CacheRole::On),
            Slot::Off | Slot::OffTwin => recipe.arm(CacheRole::Off),
            Slot::Base | Slot::BaseTwin | Slot::Head | Slot::HeadTwin => &recipe.arms[recipe.gate.arm],
        }
    }

    fn vars(&self, i: &Instance) -> BTreeMap<String, String> {
        self.recipe_of(i.slot).vars(self.arm_of(i.slot), i.port, &i.state, &self.secret, &i.name)
    }

    /// A command of the recipe for instance `i`, in its directory and environment.
    fn command(&self, i: &Instance, argv: &[String]) -> Result<Command, BenchError> {
        let vars = self.vars(i);
        let filled: Vec<String> =
            argv.iter().map(|a| fill(a, &vars)).collect::<Result<_, _>>().map_err(BenchError::Setup)?;
        let mut cmd = Command::new(&filled[0]);
        let recipe = self.recipe_of(i.slot);
        cmd.args(&filled[1..]).current_dir(&recipe.dir).stdin(Stdio::null());
        for (k, v) in recipe.env.iter().chain(&self.arm_of(i.slot).env) {
            cmd.env(k, fill(v, &vars).map_err(BenchError::Setup)?);
        }
        Ok(cmd)
    }

    /// Stops every instance, then resets, seeds and starts those in `slots`, and
    /// waits until each answers the readiness request.
    pub fn fresh(&mut self, slots: &[Slot], env: &Env<'_>) -> Result<(), BenchError> {
        for i in &mut self.instances {
            if let Some(mut s) = i.server.take() {
                s.stop();
            }
        }
        for n in 0..self.instances.len() {
            if slots.contains(&self.instances[n].slot) {
                self.reset_and_seed(n, env)?;
                self.start(n, env.cancel)?;
            }
        }
        let path = self.recipe.ready_path.clone();
        let timeout = self.recipe.ready_timeout;
        for i in self.instances.iter_mut().filter(|i| slots.contains(&i.slot)) {
            let url = format!("http://127.0.0.1:{}{path}", i.port);
            let server = i.server.as_mut().expect("started above");
            let (_, body) = server.wait_for(&format!("GET {path}"), timeout, env.cancel, || {
                env.setup.send(reqwest::Method::GET, &url, &[], None).ok().filter(|(s, _)| (200..300).contains(s))
            })?;
            if self.health.is_none() {
                self.health = serde_json::from_str::<serde_json::Value>(&body).ok().filter(|v| v.is_object());
            }
            env.observer.say(&format!("{}: ready on {} (GET {path})", i.name, server.url));
        }
        if let Some(SeedProtocol::BenchWorker) = self.recipe.seed.as_ref().and_then(|s| s.protocol) {
            let worker = crate::target::BenchWorker { required: true };
            for i in self.instances.iter().filter(|i| slots.contains(&i.slot)) {
                let url = format!("http://127.0.0.1:{}", i.port);
                crate::target::Target::seed(&worker, env.setup, &url, &self.secret, &self.per_seed, false)
                    .map_err(|e| BenchError::Server(format!("{}: seeding over its protocol failed: {e}", i.name)))?;
            }
        }
        Ok(())
    }

    fn reset_and_seed(&self, n: usize, env: &Env<'_>) -> Result<(), BenchError> {
        let i = &self.instances[n];
        let vars = self.vars(i);
        self.run_commands(i, "reset", &self.recipe.reset_commands, env)?;
        for p in &self.recipe.reset_remove {
            let p = PathBuf::from(fill(p, &vars).map_err(BenchError::Setup)?);
            self.remove(i.slot, &p)?;
        }
        std::fs::create_dir_all(&i.state).map_err(|e| BenchError::Setup(format!("{}: {e}", i.state.display())))?;
        let Some(seed) = &self.recipe.seed else { return Ok(()) };
        if let Some(users) = &self.users_file {
            let file = PathBuf::from(fill(&seed.file, &vars).map_err(BenchError::Setup)?);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| BenchError::Setup(format!("{}: {e}", parent.display())))?;
            }
            std::fs::write(&file, users).map_err(|e| BenchError::Setup(format!("{}: {e}", file.display())))?;
        }
        self.run_commands(i, "seed", &seed.commands, env)
    }

    /// Runs the recipe's `[gate] build` commands once per tree (the gate's base
    /// and head instances), as the instance's other commands run: in its tree's
    /// directory, with its placeholders filled and its environment.
    pub fn build(&self, env: &Env<'_>) -> Result<(), BenchError> {
        for i in self.instances.iter().filter(|i| matches!(i.slot, Slot::Base | Slot::Head)) {
            let started = Instant::now();
            self.run_commands(i, "build", &self.recipe_of(i.slot).gate.build, env)?;
            env.observer.say(&format!("{}: built in {:.0} s", i.name, started.elapsed().as_secs_f64()));
        }
        Ok(())
    }

    /// Runs the recipe's `what` commands for instance `i` to their end, each
    /// logged to `logs/<slot>-<what>-<k>.log`.
    fn run_commands(
        &self,
        i: &Instance,
        what: &str,
        commands: &[Vec<String>],
        env: &Env<'_>,
    ) -> Result<(), BenchError> {
        for (k, argv) in commands.iter().enumerate() {
            let log = self.logs.join(format!("{}-{what}-{k}.log", i.slot.file_stem()));
            let said = format!("{}: {what} command {k}", i.name);
            run_logged(self.command(i, argv)?, &said, &log, env.cancel, env.observer)?;
        }
        Ok(())
    }

    /// Removes `p` if it is the instances' own state or inside the recipe's
    /// directories: a recipe's reset must not reach anything else.
    fn remove(&self, slot: Slot, p: &Path) -> Result<(), BenchError> {
        if !p.exists() {
            return Ok(());
        }
        let canon = p.canonicalize().unwrap_or_else(|_| p.to_owned());
        let recipe = self.recipe_of(slot);
        let allowed = [&self.root, &recipe.dir, &recipe.file.parent().unwrap_or(Path::new(".")).to_owned()]
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .any(|d| canon.starts_with(&d) && canon != d);
        if !allowed {
            return Err(BenchError::Setup(format!(
                "{}: reset.remove names {}, which is outside the instances' state and the recipe's directories; \
                 remove only state the worker writes (the default is {{state}})",
                recipe.file.display(),
                p.display()
            )));
        }
        let removed = if canon.is_dir() { std::fs::remove_dir_all(&canon) } else { std::fs::remove_file(&canon) };
        removed.map_err(|e| BenchError::Setup(format!("reset: cannot remove {}: {e}", canon.display())))
    }

    fn start(&mut self, n: usize, cancel: &AtomicBool) -> Result<(), BenchError> {
        let port = self.instances[n].port;
        // The port was its own before the stop; wait a moment for it to be free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(BenchError::Server(format!(
                    "{}: port {port} is still in use 10 s after its server stopped; is another process on it?",
                    self.instances[n].name
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let i = &self.instances[n];
        let log = self.logs.join(format!("{}.log", i.slot.file_stem()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| BenchError::Setup(e.to_string()))?;
        let mut cmd = self.command(i, &self.arm_of(i.slot).start)?;
        cmd.stdout(out).stderr(err);
        let mut server = LocalServer::spawn(&i.name, format!("http://127.0.0.1:{port}"), &log, cmd)?;
        server.stop_signal = self.recipe.stop_signal;
        self.instances[n].server = Some(server);
        Ok(())
    }

    /// The headers that make a request run as `arm` on a worker with a
    /// per-request switch (none without one).
    pub fn switch_headers(&self, arm: &Arm) -> Vec<(String, String)> {
        let Some(sw) = &self.recipe.switch else { return Vec::new() };
        let vars = BTreeMap::from([("secret".to_owned(), self.secret.clone())]);
        let mut headers: Vec<(String, String)> =
            sw.headers.iter().map(|(k, v)| (k.clone(), fill(v, &vars).unwrap_or_else(|_| v.clone()))).collect();
        headers.push((sw.header.clone(), arm.value.clone().unwrap_or_default()));
        headers
    }

    /// Why a running instance is gone, if one is.
    pub fn dead(&mut self) -> Option<String> {
        self.instances
            .iter_mut()
            .filter_map(|i| i.server.as_mut())
            .find_map(|s| s.exited().map(|r| format!("{r}; its log: {}", s.log.display())))
    }

    /// How each instance was run, for the report.
    pub fn describe(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| {
                let vars = self.vars(i);
                let start: Vec<String> =
                    self.arm_of(i.slot).start.iter().map(|a| fill(a, &vars).unwrap_or_else(|_| a.clone())).collect();
                format!(
                    "{} on port {}: `{}` in {}",
                    i.name,
                    i.port,
                    start.join(" "),
                    self.recipe_of(i.slot).dir.display()
                )
            })
            .collect()
    }

    pub fn stop(&mut self) {
        for i in &mut self.instances {
            if let Some(mut s) = i.server.take() {
                s.stop();
            }
        }
    }
}

impl Slot {
    fn file_stem(self) -> &'static str {
        match self {
            Slot::Off => "arm-off",
            Slot::On => "arm-on",
            Slot::OffTwin => "arm-off-twin",
            Slot::Base => "base",
            Slot::BaseTwin => "base-twin",
            Slot::Head => "head",
            Slot::HeadTwin => "head-twin",
        }
    }
}

impl Drop for RecipeStack {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
