//! Scenario files (ARCHITECTURE.md, "Data flow"): TOML naming a load model, users, steps and
//! thresholds. Every error names the file, line and column and what was expected.

pub mod duration;
pub mod executor;
mod expect;
pub mod template;

pub use executor::{Executor, Segment, Stage};
use expect::{parse_expect, RawExpect};
pub use expect::{Expect, HeaderCheck, JsonCheck, JsonTest, Needles, Pattern};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

pub use duration::{format_duration, parse_duration};
pub use template::{Template, Var};

use crate::answers::AnswerRule;
use crate::thresholds::{Aggregate, Threshold};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
    }
}

// ---- the file as written ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    flow: Option<Spanned<String>>,
    load: Spanned<RawLoad>,
    #[serde(default)]
    users: Option<Spanned<RawUsers>>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    thresholds: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    lists: BTreeMap<String, Spanned<RawList>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    #[serde(default)]
    per: Option<Spanned<String>>,
    #[serde(default)]
    values: Option<Spanned<Vec<String>>>,
    /// One value per line, relative to the scenario file; `#` starts a comment.
    #[serde(default)]
    file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadBack {
    request: Spanned<RawRequest>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    executor: Spanned<String>,
    rate: Option<Spanned<f64>>,
    start_rate: Option<Spanned<f64>>,
    stages: Option<Vec<Spanned<RawStage>>>,
    duration: Option<Spanned<String>>,
    warmup: Option<Spanned<String>>,
    max_in_flight: Option<Spanned<i64>>,
    vus: Option<Spanned<i64>>,
    iterations: Option<Spanned<i64>>,
    think_time: Option<Spanned<String>>,
    drop_after: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_late_share: Option<Spanned<f64>>,
    starts: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    target: Spanned<f64>,
    duration: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    count: Spanned<i64>,
    #[serde(default)]
    pick: Option<Spanned<toml::Value>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    #[serde(default)]
    weight: Option<Spanned<f64>>,
    #[serde(default)]
    tags: Vec<String>,
    request: Spanned<RawRequest>,
    #[serde(default)]
    expect: Option<RawExpect>,
    #[serde(default)]
    extract: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    think_time: Option<Spanned<String>>,
    #[serde(default)]
    once_per_user: bool,
    #[serde(default)]
    read_back: Option<Spanned<RawReadBack>>,
    /// How the arms' answers are compared in an A/B.
    #[serde(default)]
    compare: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    body: Option<Spanned<String>>,
}

// ---- the validated scenario ---------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub executor: Executor,
    /// Runs before the measured part, at the same load, and is not recorded.
    pub warmup: Duration,
    pub max_in_flight: usize,
    /// Closed model: pause between iterations of one VU.
    pub think_time: Duration,
    /// Open model: an iteration that cannot start within this much of its intended
    /// time (every in-flight slot busy) is dropped and counted.
    pub drop_after: Duration,
    /// Per-request time-out.
    pub timeout: Duration,
    /// A run with a larger share of its sends more than 1 ms late is invalid
    /// (0.25 unless the scenario says; 1 never).
    pub max_late_share: f64,
}

/// The share of late sends a run may have unless its scenario says otherwise.
pub const DEFAULT_MAX_LATE_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    Uniform,
    Zipf(f64),
    Sequential,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Users {
    pub count: u32,
    pub pick: Pick,
    /// The `seed` of `POST /__bench/seed` that created them.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Every iteration runs every step, in order.
    Sequence,
    /// Every iteration runs one step, chosen by weight.
    Mix,
}

/// A `[lists.<name>]` table: values a template draws with `{{list.<name>}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct List {
    pub name: String,
    /// Each user keeps one value (a browser's User-Agent); otherwise one value is
    /// drawn per iteration, the same for every template of that iteration.
    pub per_user: bool,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: String,
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
}

/// A read made right after its step succeeded, by the same user, that must show
/// the write: when its expectation fails, that is a stale read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBack {
    pub request: RequestSpec,
    pub expect: Expect,
}

/// The tag of every read-back series.
pub const READ_BACK_TAG: &str = "read-your-writes";

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub weight: f64,
    pub tags: Vec<String>,
    pub request: RequestSpec,
    pub expect: Expect,
    /// Name → JSON pointer into the response body.
    pub extract: Vec<(String, String)>,
    pub think_time: Option<Duration>,
    pub once_per_user: bool,
    pub read_back: Option<ReadBack>,
    /// How an A/B compares the two arms' answers of this step.
    pub compare: AnswerRule,
}

impl Step {
    /// The step name its read-back is recorded under.
    pub fn read_back_name(&self) -> String {
        format!("{}.read-back", self.name)
    }

    /// Whether the step changes what later reads may see: any method but GET,
    /// HEAD and OPTIONS, or a step whose write is read back.
    pub fn is_write(&self) -> bool {
        self.read_back.is_some() || !matches!(self.request.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }

    /// How an A/B compares this step's two answers: as its `compare` says, but
    /// never for a `once_per_user` step (a login's token is per arm by design).
    pub fn answer_rule(&self) -> AnswerRule {
        if self.once_per_user {
            AnswerRule::Off
        } else {
            self.compare.clone()
        }
    }

    /// [`Step::answer_rule`] in words, for `validate` and the result file.
    pub fn answer_words(&self) -> String {
        if self.once_per_user {
            "not compared (once per user: per-arm state)".to_owned()
        } else {
            self.compare.describe()
        }
    }

    /// Every template the step renders, read-back included.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        fn of(r: &RequestSpec) -> impl Iterator<Item = &Template> {
            std::iter::once(&r.path).chain(r.headers.iter().map(|(_, t)| t)).chain(r.body.iter())
        }
        let rb = self.read_back.iter().flat_map(|rb| of(&rb.request).chain(rb.expect.templates()));
        of(&self.request).chain(self.expect.templates()).chain(rb)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// SHA-256 of the file, recorded in results.
    pub sha256: String,
    pub flow: Flow,
    pub load: Load,
    pub users: Option<Users>,
    pub steps: Vec<Step>,
    pub thresholds: Vec<Threshold>,
    pub lists: Vec<List>,
}

// ---- parsing ------------------------------------------------------------------

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let (line, col) = line_col(self.text, offset);
        ScenarioError { file: self.file.to_owned(), line, col, message: message.into() }
    }

    fn err<T>(&self, span: &Spanned<T>, message: impl Into<String>) -> ScenarioError {
        self.at(span.span().start, message)
    }

    fn duration(&self, s: &Spanned<String>, what: &str) -> Result<Duration, ScenarioError> {
        parse_duration(s.get_ref()).map_err(|e| self.err(s, format!("{what}: {e}")))
    }

    /// A template inside a TOML string: offsets move past the opening quote.
    fn template(&self, s: &Spanned<String>, env: &dyn Fn(&str) -> Option<String>) -> Result<Template, ScenarioError> {
        Template::compile(s.get_ref(), env).map_err(|e| self.at(s.span().start + 1 + e.offset, e.message))
    }
}

fn positive(ctx: &Ctx, v: &Spanned<f64>, what: &str) -> Result<f64, ScenarioError> {
    let x = *v.get_ref();
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(ctx.err(v, format!("{what} must be a positive number, got {x}")))
    }
}

fn count(ctx: &Ctx, v: &Spanned<i64>, what: &str) -> Result<u64, ScenarioError> {
    match *v.get_ref() {
        n if n >= 1 => Ok(n as u64),
        n => Err(ctx.err(v, format!("{what} must be at least 1, got {n}"))),
    }
}

/// A cold start's first request must be a measured step: nothing may run in the
/// fresh isolate before it, and an iteration must be every step in order.
fn check_cold_start(ctx: &Ctx, raw: &RawScenario, steps: &[Step], flow: Flow) -> Result<(), ScenarioError> {
    if flow != Flow::Sequence {
        let message =
            "executor \"cold-start\" needs flow = \"sequence\": each fresh isolate serves every step in order";
        return Err(raw.flow.as_ref().map_or_else(|| ctx.at(0, message), |f| ctx.err(f, message)));
    }
    if let Some(i) = steps.iter().position(|s| s.once_per_user) {
        return Err(ctx.err(
            &raw.steps[i].get_ref().name,
            "executor \"cold-start\" cannot have once_per_user steps: they would run in the fresh isolate before \
             the first measured request",
        ));
    }
    Ok(())
}

fn required<'a, T>(
    ctx: &Ctx,
    load: &Spanned<RawLoad>,
    field: &'a Option<T>,
    name: &str,
    executor: &str,
) -> Result<&'a T, ScenarioError> {
    field.as_ref().ok_or_else(|| ctx.err(load, format!("[load] {name} is required by executor {executor:?}")))
}

fn parse_load(ctx: &Ctx, raw: &Spanned<RawLoad>) -> Result<Load, ScenarioError> {
    let l = raw.get_ref();
    let ex = l.executor.get_ref().as_str();
    let dur = |s: &Option<Spanned<String>>, name: &str| -> Result<Duration, ScenarioError> {
        ctx.duration(required(ctx, raw, s, name, ex)?, name)
    };
    let executor = match ex {
        "constant-arrival-rate" => Executor::ConstantArrivalRate {
            rate: positive(ctx, required(ctx, raw, &l.rate, "rate", ex)?, "rate")?,
            duration: dur(&l.duration, "duration")?,
        },
        "ramping-arrival-rate" => {
            let stages = required(ctx, raw, &l.stages, "stages", ex)?;
            if stages.is_empty() {
                return Err(ctx.err(raw, "[load] stages must hold at least one { target, duration }"));
            }
            let start_rate = match &l.start_rate {
                None => 0.0,
                Some(r) if *r.get_ref() >= 0.0 && r.get_ref().is_finite() => *r.get_ref(),
                Some(r) => return Err(ctx.err(r, format!("start_rate must be 0 or more, got {}", r.get_ref()))),
            };
            let stages = stages
                .iter()
                .map(|s| {
                    let st = s.get_ref();
                    let target = *st.target.get_ref();
                    if !(target.is_finite() && target >= 0.0) {
                        return Err(ctx.err(&st.target, format!("stage target must be 0 or more, got {target}")));
                    }
                    Ok(Stage { target, duration: ctx.duration(&st.duration, "stage duration")? })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Executor::RampingArrivalRate { start_rate, stages }
        }
        "constant-vus" => Executor::ConstantVus {
            vus: count(ctx, required(ctx, raw, &l.vus, "vus", ex)?, "vus")? as u32,
            duration: dur(&l.duration, "duration")?,
        },
        "iterations" => Executor::Iterations {
            vus: l.vus.as_ref().map(|v| count(ctx, v, "vus")).transpose()?.unwrap_or(1) as u32,
            iterations: count(ctx, required(ctx, raw, &l.iterations, "iterations", ex)?, "iterations")?,
            max_duration: l
                .duration
                .as_ref()
                .map(|d| ctx.duration(d, "duration"))
                .transpose()?
                .unwrap_or(Duration::from_secs(600)),
        },
        "cold-start" => {
            let starts = count(ctx, required(ctx, raw, &l.starts, "starts", ex)?, "starts")?;
            if l.duration.is_some() || l.warmup.is_some() {
                return Err(ctx.err(raw, "[load] a cold-start run has no duration or warm-up: give starts = N"));
            }
            Executor::ColdStart { starts }
        }
        other => {
            return Err(ctx.err(
                &l.executor,
                format!(
                    "unknown executor {other:?}; expected constant-arrival-rate, ramping-arrival-rate, constant-vus, \
                     iterations or cold-start"
                ),
            ))
        }
    };
    if l.starts.is_some() && !matches!(executor, Executor::ColdStart { .. }) {
        return Err(ctx.err(raw, format!("[load] starts applies to executor \"cold-start\" only, not {ex:?}")));
    }
    if executor.duration().is_zero() {
        return Err(ctx.err(raw, "[load] the run has no duration"));
    }
    let open_only =
        [("rate", l.rate.is_some()), ("stages", l.stages.is_some()), ("start_rate", l.start_rate.is_some())];
    let closed_only = [("vus", l.vus.is_some()), ("think_time", l.think_time.is_some())];
    for (name, given) in if executor.is_open() { &closed_only[..] } else { &open_only[..] } {
        if *given {
            return Err(ctx.err(raw, format!("[load] {name} does not apply to executor {ex:?}")));
        }
    }
    let max_in_flight = match &l.max_in_flight {
        None => 1024,
        Some(v) => count(ctx, v, "max_in_flight")? as usize,
    };
    let opt_dur = |s: &Option<Spanned<String>>, name: &str, default: Duration| {
        s.as_ref().map(|d| ctx.duration(d, name)).transpose().map(|d| d.unwrap_or(default))
    };
    Ok(Load {
        executor,
        warmup: opt_dur(&l.warmup, "warmup", Duration::ZERO)?,
        max_in_flight,
        think_time: opt_dur(&l.think_time, "think_time", Duration::ZERO)?,
        drop_after: opt_dur(&l.drop_after, "drop_after", Duration::from_secs(10))?,
        timeout: opt_dur(&l.timeout, "timeout", Duration::from_secs(30))?,
        max_late_share: match &l.max_late_share {
            None => DEFAULT_MAX_LATE_SHARE,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(ctx.err(v, "max_late_share is a share of the sends between 0 and 1 (e.g. 0.25)"));
            }
        },
    })
}

fn parse_users(ctx: &Ctx, raw: &Spanned<RawUsers>) -> Result<Users, ScenarioError> {
    let u = raw.get_ref();
    let n = count(ctx, &u.count, "users.count")?;
    if n > u32::MAX as u64 {
        return Err(ctx.err(&u.count, "users.count is too large"));
    }
    let pick = match &u.pick {
        None => Pick::Uniform,
        Some(p) => match p.get_ref() {
            toml::Value::String(s) if s == "uniform" => Pick::Uniform,
            toml::Value::String(s) if s == "sequential" => Pick::Sequential,
            toml::Value::Table(t) if t.len() == 1 && t.contains_key("zipf") => match t["zipf"] {
                toml::Value::Float(s) if s > 0.0 => Pick::Zipf(s),
                toml::Value::Integer(s) if s > 0 => Pick::Zipf(s as f64),
                _ => return Err(ctx.err(p, "users.pick zipf exponent must be a positive number, e.g. { zipf = 1.1 }")),
            },
            _ => return Err(ctx.err(p, "users.pick must be \"uniform\", \"sequential\" or { zipf = <exponent> }")),
        },
    };
    let seed = match &u.seed {
        None => 1,
        Some(s) if *s.get_ref() >= 0 => *s.get_ref() as u64,
        Some(s) => return Err(ctx.err(s, "users.seed must be 0 or more")),
    };
    Ok(Users { count: n as u32, pick, seed })
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn parse_request(
    ctx: &Ctx,
    raw: &Spanned<RawRequest>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RequestSpec, ScenarioError> {
    let req = raw.get_ref();
    let method = match &req.method {
        None => "GET".to_owned(),
        Some(m) => {
            let up = m.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&up.as_str()) {
                return Err(
                    ctx.err(m, format!("unknown method {:?}; expected one of {}", m.get_ref(), METHODS.join(", ")))
                );
            }
            up
        }
    };
    if !req.path.get_ref().starts_with('/') {
        return Err(ctx.err(&req.path, "request.path must start with '/' (it is appended to --target)"));
    }
    let headers = req
        .headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            if matches!(lower.as_str(), "if-none-match" | "if-modified-since" | "if-match" | "if-unmodified-since") {
                return Err(ctx.err(
                    v,
                    format!("header {k} is refused: only the server cache is measured, never a conditional request"),
                ));
            }
            Ok((k.clone(), ctx.template(v, env)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RequestSpec {
        method,
        path: ctx.template(&req.path, env)?,
        headers,
        body: req.body.as_ref().map(|b| ctx.template(b, env)).transpose()?,
    })
}

/// The values of a list file: one per line, blank lines and `#` comments skipped.
fn list_file_values(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

fn parse_lists(ctx: &Ctx, raw: &BTreeMap<String, Spanned<RawList>>) -> Result<(Vec<List>, String), ScenarioError> {
    // The list files' text, hashed with the scenario so a result names exactly what ran.
    let mut included = String::new();
    let lists = raw
        .iter()
        .map(|(name, l)| {
            let list = l.get_ref();
            let per_user = match list.per.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("iteration") => false,
                Some("user") => true,
                Some(other) => {
                    return Err(ctx.err(
                        list.per.as_ref().expect("matched Some"),
                        format!("lists.{name}.per is {other:?}; expected \"iteration\" or \"user\""),
                    ))
                }
            };
            let values = match (&list.values, &list.file) {
                (Some(v), None) => v.get_ref().clone(),
                (None, Some(f)) => {
                    let path = ctx.file.parent().unwrap_or(Path::new(".")).join(f.get_ref());
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| ctx.err(f, format!("lists.{name}.file: cannot read {}: {e}", path.display())))?;
                    included.push_str(&text);
                    list_file_values(&text)
                }
                _ => {
                    return Err(
                        ctx.err(l, format!("lists.{name} needs exactly one of values = [...] or file = \"...\""))
                    )
                }
            };
            if values.is_empty() {
                return Err(ctx.err(l, format!("lists.{name} has no values; give at least one")));
            }
            Ok(List { name: name.clone(), per_user, values })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((lists, included))
}

fn parse_steps(
    ctx: &Ctx,
    raw: &[Spanned<RawStep>],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Step>, ScenarioError> {
    let mut names = BTreeSet::new();
    raw.iter()
        .map(|s| {
            let st = s.get_ref();
            let name = st.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(ctx.err(&st.name, "step name must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(ctx.err(&st.name, format!("step name {name:?} is used twice; names must be unique")));
            }
            let weight = match &st.weight {
                None => 1.0,
                Some(w) => positive(ctx, w, "weight")?,
            };
            let request = parse_request(ctx, &st.request, env)?;
            let expect = parse_expect(ctx, st.expect.as_ref(), env)?;
            let extract = st
                .extract
                .iter()
                .map(|(name, path)| {
                    let p = path.get_ref();
                    let pointer = if let Some(rest) = p.strip_prefix("$.") {
                        format!("/{}", rest.replace('.', "/"))
                    } else if p.starts_with('/') {
                        p.clone()
                    } else {
                        return Err(ctx.err(path, "extract paths are JSON pointers (\"/token\") or \"$.token\""));
                    };
                    Ok((name.clone(), pointer))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let read_back = match &st.read_back {
                None => None,
                Some(rb) => {
                    let rb = rb.get_ref();
                    Some(ReadBack {
                        request: parse_request(ctx, &rb.request, env)?,
                        expect: parse_expect(ctx, rb.expect.as_ref(), env)?,
                    })
                }
            };
            Ok(Step {
                name,
                weight,
                tags: st.tags.clone(),
                request,
                expect,
                extract,
                think_time: st.think_time.as_ref().map(|t| ctx.duration(t, "think_time")).transpose()?,
                once_per_user: st.once_per_user,
                read_back,
                compare: expect::parse_compare(ctx, st.compare.as_ref())?,
            })
        })
        .collect()
}

/// Every `vars.X` a step uses must be extracted by a step that can run before it,
/// and every `list.X` must be a `[lists]` entry.
fn check_template_vars(
    ctx: &Ctx,
    raw: &[Spanned<RawStep>],
    steps: &[Step],
    flow: Flow,
    lists: &[List],
) -> Result<(), ScenarioError> {
    let all: BTreeSet<&str> = steps.iter().flat_map(|s| s.extract.iter().map(|(n, _)| n.as_str())).collect();
    // `once_per_user` steps run before the others.
    let mut before: BTreeSet<&str> =
        steps.iter().filter(|s| s.once_per_user).flat_map(|s| s.extract.iter().map(|(n, _)| n.as_str())).collect();
    for (raw_step, step) in raw.iter().zip(steps) {
        for var in step.templates().flat_map(|t| t.vars()) {
            if let Var::List(name) = var {
                if !lists.iter().any(|l| &l.name == name) {
                    let known: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
                    return Err(ctx.err(
                        &raw_step.get_ref().name,
                        format!(
                            "step {:?} uses {{{{list.{name}}}}} but there is no [lists.{name}]; defined: {}",
                            step.name,
                            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                        ),
                    ));
                }
            }
            if let Var::Extracted(name) = var {
                let known = match flow {
                    Flow::Sequence => before.contains(name.as_str()),
                    Flow::Mix => all.contains(name.as_str()),
                };
                if !known {
                    return Err(ctx.err(
                        &raw_step.get_ref().request,
                        format!("step {:?} uses {{{{vars.{name}}}}} but no earlier step extracts {name:?}", step.name),
                    ));
                }
            }
        }
        before.extend(step.extract.iter().map(|(n, _)| n.as_str()));
    }
    Ok(())
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
}

/// `file:line:col: message` for a TOML error in `text` read from `path` (any of
/// the project's TOML files: claims, recipes); `0:0` when TOML gives no position.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
    format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
}

/// Parses scenario `text` read from `file`; `env` resolves `{{env.NAME}}`.
pub fn parse(file: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Scenario, ScenarioError> {
    let ctx = Ctx { file, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ctx.at(offset, e.message().trim().to_owned())
    })?;
    if raw.name.get_ref().trim().is_empty() {
        return Err(ctx.err(&raw.name, "name must not be empty"));
    }
    let load = parse_load(&ctx, &raw.load)?;
    let users = raw.users.as_ref().map(|u| parse_users(&ctx, u)).transpose()?;
    if raw.steps.is_empty() {
        return Err(ctx.at(text.len(), "the scenario has no steps; add at least one [[step]] with a request"));
    }
    let flow = match raw.flow.as_ref().map(|f| f.get_ref().as_str()) {
        None | Some("sequence") => Flow::Sequence,
        Some("mix") => Flow::Mix,
        Some(other) => {
            return Err(ctx
                .err(raw.flow.as_ref().unwrap(), format!("unknown flow {other:?}; expected \"sequence\" or \"mix\"")))
        }
    };
    let steps = parse_steps(&ctx, &raw.steps, env)?;
    if steps.iter().all(|s| s.once_per_user) {
        return Err(
            ctx.err(&raw.steps[0].get_ref().name, "every step is once_per_user: add a step that iterations repeat")
        );
    }
    if let Executor::ColdStart { .. } = load.executor {
        check_cold_start(&ctx, &raw, &steps, flow)?;
    }
    let (lists, included) = parse_lists(&ctx, &raw.lists)?;
    check_template_vars(&ctx, &raw.steps, &steps, flow, &lists)?;
    let uses_users = steps.iter().any(|s| {
        s.templates().flat_map(|t| t.vars()).any(|v| {
            matches!(
                v,
                Var::UserId | Var::UserSession | Var::UserApiKey | Var::UserEmail | Var::UserName | Var::UserIndex
            )
        })
    });
    if uses_users && users.is_none() {
        return Err(ctx.at(0, "steps use {{user.*}} but the scenario has no [users] section"));
    }
    if let (Some(l), None) = (lists.iter().find(|l| l.per_user), &users) {
        return Err(ctx.err(
            &raw.lists[&l.name],
            format!("lists.{} has per = \"user\" but the scenario has no [users] section", l.name),
        ));
    }
    let read_backs: Vec<String> = steps.iter().filter(|s| s.read_back.is_some()).map(Step::read_back_name).collect();
    let mut series: BTreeSet<&str> =
        steps.iter().flat_map(|s| std::iter::once(s.name.as_str()).chain(s.tags.iter().map(String::as_str))).collect();
    if !read_backs.is_empty() {
        series.insert(READ_BACK_TAG);
        series.extend(read_backs.iter().map(String::as_str));
    }
    let mut thresholds = Vec::new();
    for (key, exprs) in &raw.thresholds {
        let name = key.get_ref().as_str();
        if name != crate::series::ALL_TEXT && !series.contains(name) {
            return Err(ctx.err(
                key,
                format!(
                    "threshold for {name:?}, which is no step name or tag; known: *, {}",
                    series.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for expr in exprs {
            let t = Threshold::parse(name, expr.get_ref()).map_err(|e| ctx.at(expr.span().start + 1, e))?;
            thresholds.push(t);
        }
    }
    if !thresholds.iter().any(|t| t.series == crate::series::ALL_TEXT && t.metric == Aggregate::ErrorRate) {
        thresholds.push(Threshold::default_error_rate());
    }
    Ok(Scenario {
        name: raw.name.get_ref().trim().to_owned(),
        description: raw.description,
        file: file.to_owned(),
        sha256: hex::encode(Sha256::new().chain_update(text.as_bytes()).chain_update(included.as_bytes()).finalize()),
        flow,
        load,
        users,
        steps,
        thresholds,
        lists,
    })
}

/// Reads and parses a scenario file, with `{{env.NAME}}` from the process environment.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(file).map_err(|e| ScenarioError {
        file: file.to_owned(),
        line: 0,
        col: 0,
        message: format!("cannot read the scenario: {e}"),
    })?;
    parse(file, &text, &|name| std::env::var(name).ok())
}

impl Scenario {
    /// A plain-words account of what the scenario will do (`harness validate`).
    pub fn explain(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let l = &self.load;
        let _ = writeln!(out, "scenario {:?} ({})", self.name, self.file.display());
        if let Some(d) = &self.description {
            let _ = writeln!(out, "  {d}");
        }
        let warm = if l.warmup.is_zero() {
            String::new()
        } else {
            format!(", after {} of warm-up (run, not recorded)", format_duration(l.warmup))
        };
        let load = l.executor.describe(&warm, l.think_time);
        let _ = writeln!(out, "load: {load}");
        let _ = writeln!(
            out,
            "limits: at most {} requests in flight; request time-out {}{}",
            l.max_in_flight,
            format_duration(l.timeout),
            if l.executor.is_open() {
                format!(
                    "; an iteration not started {} after its time is dropped; more than {:.0} % of sends over 1 ms \
                     late makes the run invalid",
                    format_duration(l.drop_after),
                    l.max_late_share * 100.0
                )
            } else {
                String::new()
            }
        );
        match &self.users {
            None => {
                let _ = writeln!(out, "users: none (no {{{{user.*}}}} templates)");
            }
            Some(u) => {
                let pick = match u.pick {
                    Pick::Uniform => "uniformly at random".to_owned(),
                    Pick::Sequential => "in turn".to_owned(),
                    Pick::Zipf(s) => format!("by a Zipf law, exponent {s} (a few users are hot)"),
                };
                let _ = writeln!(out, "users: {} seeded users (seed {}), picked {pick}", u.count, u.seed);
            }
        }
        let total: f64 = self.steps.iter().filter(|s| !s.once_per_user).map(|s| s.weight).sum();
        let _ = writeln!(
            out,
            "flow: {}",
            match self.flow {
                Flow::Sequence => "each iteration runs every step in order",
                Flow::Mix => "each iteration runs one step, chosen by weight",
            }
        );
        let _ = writeln!(out, "steps:");
        for s in &self.steps {
            let share = if s.once_per_user {
                " once per user, before its first iteration".to_owned()
            } else if self.flow == Flow::Mix {
                format!(" weight {} ({:.1} %)", s.weight, 100.0 * s.weight / total)
            } else {
                String::new()
            };
            let tags = if s.tags.is_empty() { String::new() } else { format!(" tags [{}]", s.tags.join(", ")) };
            let r = &s.request;
            let _ = writeln!(
                out,
                "  - {}{share}: {} {}{tags}, expects {}",
                s.name,
                r.method,
                r.path.source(),
                s.expect.describe()
            );
            for (name, ptr) in &s.extract {
                let _ = writeln!(out, "      extracts vars.{name} from {ptr}");
            }
            let _ = writeln!(out, "      in an A/B, the arms' answers: {}", s.answer_words());
            if let Some(rb) = &s.read_back {
                let _ = writeln!(
                    out,
                    "      then reads back {} {} as the same user (series {}, tag {READ_BACK_TAG}): expects {}; \
                     otherwise a stale read",
                    rb.request.method,
                    rb.request.path.source(),
                    s.read_back_name(),
                    rb.expect.describe()
                );
            }
        }
        for l in &self.lists {
            let _ = writeln!(
                out,
                "list {}: {} values, {}",
                l.name,
                l.values.len(),
                if l.per_user { "one kept per user" } else { "one drawn per iteration" }
            );
        }
        if self.thresholds.is_empty() {
            let _ = writeln!(out, "thresholds: none");
        } else {
            let _ = writeln!(out, "thresholds:");
            for t in &self.thresholds {
                let _ = writeln!(out, "  - {}: {}", t.series, t.source);
            }
        }
        out
    }
}
