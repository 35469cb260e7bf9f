//! A target recipe (`harness bench --recipe FILE`): how to run any worker as the
//! two arms of a bench — per arm the command that starts it on a given port, its
//! readiness request, how its state is reset and seeded from the exported users,
//! and what the arm is (cache on or off, and the per-request switch if the worker
//! has one). This file is the format and its checks; `bench/recipe_stack.rs` runs it.
//!
//! Strings may use `${VAR}` (the environment, read when the recipe is loaded:
//! a checkout's path) and `{placeholder}` (filled per instance: `{port}`,
//! `{state}`, `{users}`, `{secret}`, `{recipe_dir}`, `{dir}`, `{instance}`, and
//! the arm's own `vars`); `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What an arm of the bench stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheRole {
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    name: String,
    describes: String,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    start: Option<Vec<String>>,
    ready: RawReady,
    #[serde(default)]
    reset: RawReset,
    #[serde(default)]
    seed: Option<RawSeed>,
    #[serde(default)]
    users: RawUsers,
    #[serde(default)]
    switch: Option<RawSwitch>,
    #[serde(default)]
    stop_signal: Option<String>,
    arms: RawArms,
    #[serde(default)]
    gate: RawGate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    #[serde(default)]
    arm: Option<String>,
    #[serde(default)]
    build: Vec<Vec<String>>,
    #[serde(default)]
    share: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    path: String,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReset {
    #[serde(default)]
    remove: Option<Vec<String>>,
    #[serde(default)]
    commands: Vec<Vec<String>>,
}

/// A seeding protocol a target speaks once it is up (`[seed] protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedProtocol {
    /// This project's worker: `POST /__bench/seed` with `x-bench-secret: {secret}`.
    BenchWorker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    protocol: Option<SeedProtocol>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    commands: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    header: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArms {
    a: RawArm,
    b: RawArm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    label: String,
    cache: CacheRole,
    #[serde(default)]
    start: Option<Vec<String>>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<String>,
}

/// A loaded, checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub file: PathBuf,
    pub name: String,
    /// What the target is, in the report's words.
    pub describes: String,
    /// Where the commands run (`dir`, relative to the recipe's directory).
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub ready_path: String,
    pub ready_timeout: Duration,
    /// Removed while the instance is stopped, before every run.
    pub reset_remove: Vec<String>,
    pub reset_commands: Vec<Vec<String>>,
    pub seed: Option<Seed>,
    pub users_secret: Option<String>,
    pub switch: Option<Switch>,
    /// SIGTERM unless the recipe says SIGINT.
    pub stop_signal: i32,
    /// A then B.
    pub arms: [Arm; 2],
    /// How `harness gate` runs two builds of the worker's repository.
    pub gate: Gate,
}

/// What `harness gate` needs beyond a bench (`[gate]`): which arm is the worker
/// as it deploys (its start, vars and env; its switch value is never sent), the
/// commands that build a checkout, and the installed dependencies a second
/// checkout borrows from the first instead of installing them again.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Index into `Recipe::arms`.
    pub arm: usize,
    /// Run in order in each build's directory (`dir` of its checkout).
    pub build: Vec<Vec<String>>,
    /// Paths relative to `dir` linked from the head's checkout into the base's
    /// (`node_modules`).
    pub share: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Seed {
    /// A minijinja template of the users (`crate::user_file::render_template`).
    pub template: Option<PathBuf>,
    /// Seeds the users over HTTP once the instance is ready, with `{secret}`
    /// as the target's secret and credentials derived from it.
    pub protocol: Option<SeedProtocol>,
    /// Where the rendered users go (`{users}` in commands).
    pub file: String,
    /// Run in order while the instance is stopped, after the reset.
    pub commands: Vec<Vec<String>>,
}

/// A worker that serves both arms, its cache set per request: `header` carries
/// each arm's `value`, `headers` are sent with every request (a secret).
#[derive(Debug, Clone)]
pub struct Switch {
    pub header: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Arm {
    pub label: String,
    pub cache: CacheRole,
    pub start: Vec<String>,
    pub vars: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// The switch header's value for this arm.
    pub value: Option<String>,
}

/// Every `{name}` an instance fills.
pub const PLACEHOLDERS: [&str; 7] = ["port", "state", "users", "secret", "recipe_dir", "dir", "instance"];

/// Fills `{name}` from `vars`; `{{`/`}}` are literal braces. An unknown name is an error.
pub fn fill(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!("{s:?}: a lone '}}' (write '}}}}' for a literal brace)"));
        }
        let end = tail.find('}').ok_or_else(|| format!("{s:?}: '{{' without its '}}'"))?;
        let name = &tail[1..end];
        let value = vars.get(name).ok_or_else(|| {
            let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
            known.sort_unstable();
            format!("{s:?}: unknown placeholder {{{name}}}; known: {}", known.join(", "))
        })?;
        out.push_str(value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `${VAR}` from `lookup`; an unset variable is an error that says how to set it.
fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail.find('}').ok_or_else(|| format!("{s:?}: '${{' without its '}}'"))?;
        let name = &tail[..end];
        let value = lookup(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("{s:?} needs the environment variable {name}, which is not set: export {name}=… and run again")
        })?;
        out.push_str(&value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn load(path: &Path) -> Result<Recipe, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the recipe {}: {e}", path.display()))?;
    parse(path, &text, &|name| std::env::var(name).ok())
}

/// Parses and checks a recipe: every command and path resolvable, every
/// placeholder known, so that nothing fails halfway through a bench.
pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Recipe, String> {
    let raw: RawRecipe = toml::from_str(text).map_err(|e| crate::scenario::toml_error(path, text, &e))?;
    let at = |what: &str, e: String| format!("{}: {what}: {e}", path.display());
    let expand = |what: &str, s: &str| expand_env(s, env).map_err(|e| at(what, e));
    let expand_all = |what: &str, v: &[String]| v.iter().map(|s| expand(what, s)).collect::<Result<Vec<_>, _>>();
    let recipe_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let dir = match &raw.dir {
        Some(d) => recipe_dir.join(expand("dir", d)?),
        None => recipe_dir.clone(),
    };
    if !dir.is_dir() {
        return Err(at("dir", format!("{} is not a directory (is the checkout there?)", dir.display())));
    }
    let ready_timeout = match &raw.ready.timeout {
        Some(t) => crate::scenario::duration::parse_duration(t).map_err(|e| at("ready.timeout", e))?,
        None => Duration::from_secs(180),
    };
    if !raw.ready.path.starts_with('/') {
        return Err(at("ready.path", format!("{:?} must start with '/' (e.g. \"/status\")", raw.ready.path)));
    }
    let mut arms = Vec::new();
    for (key, a) in [("a", &raw.arms.a), ("b", &raw.arms.b)] {
        let what = format!("arms.{key}");
        let start = match (&a.start, &raw.start) {
            (Some(s), _) | (None, Some(s)) => expand_all(&format!("{what}.start"), s)?,
            (None, None) => return Err(at(&what, "no start command: give `start` at the top or in the arm".into())),
        };
        if start.is_empty() {
            return Err(at(&format!("{what}.start"), "the command is empty".into()));
        }
        if raw.switch.is_some() && a.value.is_none() {
            return Err(at(&what, "the recipe has a [switch]: give each arm the header's `value`".into()));
        }
        let vars = a.vars.iter().map(|(k, v)| Ok((k.clone(), expand(&what, v)?))).collect::<Result<_, String>>()?;
        let env = a.env.iter().map(|(k, v)| Ok((k.clone(), expand(&what, v)?))).collect::<Result<_, String>>()?;
        arms.push(Arm { label: a.label.clone(), cache: a.cache, start, vars, env, value: a.value.clone() });
    }
    let [a, b]: [Arm; 2] = arms.try_into().expect("two arms");
    if a.label == b.label {
        return Err(at(
            "arms",
            format!("both arms are labelled {:?}: labels tell them apart in every report", a.label),
        ));
    }
    if a.cache == b.cache {
        return Err(at("arms", "one arm must be `cache = \"off\"` and the other `cache = \"on\"`".into()));
    }
    let seed = match &raw.seed {
        None => None,
        Some(s) => {
            let template = match &s.template {
                Some(t) => {
                    let template = recipe_dir.join(expand("seed.template", t)?);
                    if !template.is_file() {
                        return Err(at("seed.template", format!("{} does not exist", template.display())));
                    }
                    Some(template)
                }
                None => None,
            };
            if template.is_some() && s.protocol.is_some() {
                return Err(at(
                    "seed",
                    "give a `template` (users written for commands) or a `protocol`, not both".into(),
                ));
            }
            let mut commands = Vec::new();
            for c in &s.commands {
                commands.push(expand_all("seed.commands", c)?);
            }
            let file = s.file.clone().unwrap_or_else(|| "{state}/users.seed".into());
            Some(Seed { template, protocol: s.protocol, file, commands })
        }
    };
    let mut reset_commands = Vec::new();
    for c in &raw.reset.commands {
        reset_commands.push(expand_all("reset.commands", c)?);
    }
    let stop_signal = match raw.stop_signal.as_deref() {
        None | Some("SIGTERM") => libc::SIGTERM,
        Some("SIGINT") => libc::SIGINT,
        Some(other) => return Err(at("stop_signal", format!("{other:?}: expected \"SIGTERM\" or \"SIGINT\""))),
    };
    let gate = Gate {
        arm: match raw.gate.arm.as_deref() {
            Some("a") => 0,
            Some("b") => 1,
            None => usize::from(b.cache == CacheRole::On),
            Some(other) => return Err(at("gate.arm", format!("{other:?}: expected \"a\" or \"b\""))),
        },
        build: raw.gate.build.iter().map(|c| expand_all("gate.build", c)).collect::<Result<_, _>>()?,
        share: raw.gate.share.iter().map(|p| expand("gate.share", p)).collect::<Result<_, _>>()?,
    };
    if let Some(bad) = gate.share.iter().find(|p| Path::new(p).is_absolute() || p.contains("..")) {
        return Err(at("gate.share", format!("{bad:?}: give a path inside `dir` (e.g. \"node_modules\")")));
    }
    let recipe = Recipe {
        file: path.to_owned(),
        name: raw.name,
        describes: raw.describes,
        dir,
        env: raw.env.iter().map(|(k, v)| Ok((k.clone(), expand("env", v)?))).collect::<Result<_, String>>()?,
        ready_path: raw.ready.path,
        ready_timeout,
        reset_remove: match raw.reset.remove {
            Some(r) => expand_all("reset.remove", &r)?,
            None => vec!["{state}".into()],
        },
        reset_commands,
        seed,
        users_secret: raw.users.secret,
        switch: raw.switch.map(|s| Switch { header: s.header, headers: s.headers }),
        stop_signal,
        arms: [a, b],
        gate,
    };
    recipe.check_placeholders().map_err(|e| at("placeholder", e))?;
    Ok(recipe)
}

impl Recipe {
    /// The arm that stands for `role`.
    pub fn arm(&self, role: CacheRole) -> &Arm {
        if self.arms[0].cache == role {
            &self.arms[0]
        } else {
            &self.arms[1]
        }
    }

    /// The same recipe for another checkout of its repository: every path under
    /// `from` (the head's tree) moved under `to` (the base's), so each build runs
    /// from its own tree with the head's instructions.
    pub fn rebased(&self, from: &Path, to: &Path) -> Recipe {
        let move_path = |p: &Path| {
            let abs = p.canonicalize().unwrap_or_else(|_| p.to_owned());
            abs.strip_prefix(from).map_or_else(|_| p.to_owned(), |rest| to.join(rest))
        };
        let mut r = self.clone();
        r.file = move_path(&self.file);
        r.dir = move_path(&self.dir);
        if let Some(seed) = &mut r.seed {
            seed.template = seed.template.as_deref().map(move_path);
        }
        r
    }

    /// Every placeholder an instance of `arm` fills, with these values.
    pub fn vars(&self, arm: &Arm, port: u16, state: &Path, secret: &str, instance: &str) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = arm.vars.clone();
        let recipe_dir = self.file.parent().unwrap_or(Path::new("."));
        let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned()).display().to_string();
        v.insert("port".into(), port.to_string());
        v.insert("state".into(), state.display().to_string());
        v.insert("secret".into(), secret.to_owned());
        v.insert("recipe_dir".into(), abs(recipe_dir));
        v.insert("dir".into(), abs(&self.dir));
        v.insert("instance".into(), instance.to_owned());
        let users = self.seed.as_ref().map_or(String::new(), |s| s.file.clone());
        let users = fill(&users, &v).unwrap_or(users);
        v.insert("users".into(), users);
        // An arm's own vars may use the built-in ones (`{recipe_dir}/on.jsonc`).
        for (k, value) in &arm.vars {
            let filled = fill(value, &v).unwrap_or_else(|_| value.clone());
            v.insert(k.clone(), filled);
        }
        v
    }

    /// Fills every command and path once with stand-in values: an unknown
    /// placeholder is found at load time, not after the first server started.
    fn check_placeholders(&self) -> Result<(), String> {
        for arm in &self.arms {
            let vars = self.vars(arm, 1, Path::new("/state"), "s", "a");
            let seeds = self.seed.iter().flat_map(|s| s.commands.iter().flatten().chain(std::iter::once(&s.file)));
            let all = arm
                .start
                .iter()
                .chain(self.reset_commands.iter().flatten())
                .chain(self.gate.build.iter().flatten())
                .chain(&self.reset_remove)
                .chain(seeds)
                .chain(arm.env.values())
                .chain(self.env.values())
                .chain(self.switch.iter().flat_map(|s| s.headers.values()));
            for s in all {
                fill(s, &vars)?;
            }
        }
        Ok(())
    }

    /// The design the recipe allows, in the report's words.
    pub fn design(&self) -> &'static str {
        match self.switch {
            Some(_) => {
                "crossed: two instances, each serving both arms (the cache set per request by the recipe's switch \
                 header), each arm sent to each instance equally often: an instance difference cannot read as a \
                 cache effect"
            }
            None => {
                "tied: each arm on its own instance (the worker has no per-request switch), so instance and cache \
                 are confounded; an A/A control of two instances of the cache-off arm measured that confound, \
                 and every verdict is held to its floor"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "toy"
describes = "a toy worker under wrangler dev"
start = ["wrangler", "dev", "--port", "{port}", "--persist-to", "{state}", "--config", "{config}"]
[ready]
path = "/status"
[seed]
template = "recipe.toml"
commands = [["wrangler", "d1", "execute", "--file", "{users}"]]
[arms.a]
label = "cache-off"
cache = "off"
vars = { config = "${CHECKOUT}/off.toml" }
[arms.b]
label = "cache-on"
cache = "on"
vars = { config = "${CHECKOUT}/on.toml" }
"#;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("recipe-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("recipe.toml"), GOOD).unwrap();
        d
    }

    fn env(name: &str) -> Option<String> {
        (name == "CHECKOUT").then(|| "/src/app".to_owned())
    }

    #[test]
    fn a_recipe_loads_with_its_defaults_and_fills_an_instance() {
        let d = dir();
        let r = parse(&d.join("recipe.toml"), GOOD, &env).unwrap();
        assert_eq!(r.arm(CacheRole::On).label, "cache-on");
        assert_eq!(r.reset_remove, vec!["{state}"], "by default the state directory is removed");
        assert_eq!(r.ready_timeout, Duration::from_secs(180));
        let vars = r.vars(r.arm(CacheRole::Off), 8787, Path::new("/tmp/s"), "k", "a");
        let start: Vec<String> = r.arms[0].start.iter().map(|s| fill(s, &vars).unwrap()).collect();
        assert_eq!(start[3..], ["8787", "--persist-to", "/tmp/s", "--config", "/src/app/off.toml"]);
        assert_eq!(vars["users"], "/tmp/s/users.seed");
        assert!(r.design().starts_with("tied"));
    }

    #[test]
    fn mistakes_are_named_where_they_are() {
        let d = dir();
        let p = d.join("recipe.toml");
        let err = parse(&p, GOOD, &|_| None).unwrap_err();
        assert!(err.contains("CHECKOUT") && err.contains("export CHECKOUT="), "{err}");
        let err = parse(&p, &GOOD.replace("{config}", "{konfig}"), &env).unwrap_err();
        assert!(err.contains("unknown placeholder {konfig}") && err.contains("config"), "{err}");
        let err = parse(&p, &GOOD.replace("cache = \"on\"", "cache = \"maybe\""), &env).unwrap_err();
        assert!(err.contains("recipe.toml:") && err.contains("maybe"), "{err}");
        let err = parse(&p, &GOOD.replace("cache = \"on\"", "cache = \"off\""), &env).unwrap_err();
        assert!(err.contains("one arm must be"), "{err}");
        let err = parse(&p, &format!("{GOOD}\n[switch]\nheader = \"x-cache-mode\"\n"), &env).unwrap_err();
        assert!(err.contains("value"), "{err}");
        let err = parse(&p, &GOOD.replace("template = \"recipe.toml\"", "template = \"nope.sql\""), &env).unwrap_err();
        assert!(err.contains("nope.sql does not exist"), "{err}");
        let both = GOOD.replace("[seed]\n", "[seed]\nprotocol = \"bench-worker\"\n");
        assert!(parse(&p, &both, &env).unwrap_err().contains("not both"));
        let protocol = both.replace("template = \"recipe.toml\"\n", "");
        let r = parse(&p, &protocol, &env).unwrap();
        let seed = r.seed.unwrap();
        assert_eq!((seed.protocol, seed.template), (Some(SeedProtocol::BenchWorker), None));
        let err = parse(&p, &both.replace("bench-worker", "carrier-pigeon"), &env).unwrap_err();
        assert!(err.contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn braces_double_for_literals_and_must_balance() {
        let vars = BTreeMap::from([("port".to_owned(), "1".to_owned())]);
        assert_eq!(fill("{{\"a\":{port}}}", &vars).unwrap(), "{\"a\":1}");
        assert!(fill("{port", &vars).is_err());
        assert!(fill("port}", &vars).is_err());
    }
}
