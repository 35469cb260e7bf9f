//! A step's expectations (`expect = {…}`) and how its answers are compared
//! between the arms of an A/B (`compare = …`): parsed with file:line:col errors,
//! and checked against a reply.

use serde::Deserialize;
use toml::Spanned;

use super::template::Template;
use super::{Ctx, ScenarioError};
use crate::answers::{AnswerRule, IgnoredPointer};
use crate::thresholds::Op;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    #[serde(default)]
    status: Option<Spanned<toml::Value>>,
    #[serde(default)]
    body_contains: Option<Spanned<String>>,
    #[serde(default)]
    body_not_contains: Option<Spanned<String>>,
    /// JSON pointer → checks (`{ exists = true }`, `{ equals = … }`,
    /// `{ length = ">= 3" }`, `{ matches = "^bench-" }`).
    #[serde(default)]
    json: Option<Spanned<toml::Table>>,
    /// Header name → a regular expression its value must match.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Accepted statuses; empty means any 2xx or 3xx.
    pub status: Vec<u16>,
    pub body_contains: Option<Template>,
    pub body_not_contains: Option<Template>,
    pub json: Vec<JsonCheck>,
    pub headers: Vec<HeaderCheck>,
}

/// A check of one value of a JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCheck {
    pub pointer: String,
    pub test: JsonTest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonTest {
    /// The pointer resolves (`true`) or does not (`false`).
    Exists(bool),
    Equals(serde_json::Value),
    /// An array's elements, an object's members or a string's characters.
    Length(Op, u64),
    /// A string value (or a number or boolean as written) matches.
    Matches(Pattern),
}

/// A regular expression, compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A response header that must be present and match.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderCheck {
    /// Lower case.
    pub name: String,
    pub pattern: Pattern,
}

/// What the rendered templates of an expectation look for in one reply.
pub struct Needles {
    pub contains: Option<String>,
    pub not_contains: Option<String>,
}

impl Expect {
    pub fn status_ok(&self, status: u16) -> bool {
        if self.status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.status.contains(&status)
        }
    }

    /// Whether checking needs the body.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some() || self.body_not_contains.is_some() || !self.json.is_empty()
    }

    /// The response headers the checks read.
    pub fn header_names(&self) -> Vec<String> {
        self.headers.iter().map(|h| h.name.clone()).collect()
    }

    /// Whether a reply meets every expectation.
    pub fn met_by(&self, reply: &crate::client::Reply, needles: &Needles) -> bool {
        if !self.status_ok(reply.status) {
            return false;
        }
        let text = reply.body.as_deref().map(String::from_utf8_lossy);
        let body_ok = match (&needles.contains, &text) {
            (Some(n), Some(t)) => t.contains(n.as_str()),
            (Some(_), None) => false,
            _ => true,
        } && match (&needles.not_contains, &text) {
            (Some(n), Some(t)) => !t.contains(n.as_str()),
            (Some(_), None) => false,
            _ => true,
        };
        body_ok && self.json_ok(reply.body.as_deref()) && self.headers_ok(&reply.headers)
    }

    fn json_ok(&self, body: Option<&[u8]>) -> bool {
        if self.json.is_empty() {
            return true;
        }
        let Some(value) = body.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok()) else {
            return false;
        };
        self.json.iter().all(|c| c.test.holds(value.pointer(&c.pointer)))
    }

    fn headers_ok(&self, headers: &[(String, String)]) -> bool {
        self.headers.iter().all(|h| headers.iter().any(|(n, v)| *n == h.name && h.pattern.0.is_match(v)))
    }

    pub(super) fn describe(&self) -> String {
        let mut out = if self.status.is_empty() {
            "2xx/3xx".to_owned()
        } else {
            self.status.iter().map(u16::to_string).collect::<Vec<_>>().join("|")
        };
        if let Some(t) = &self.body_contains {
            out.push_str(&format!(" and a body containing {:?}", t.source()));
        }
        if let Some(t) = &self.body_not_contains {
            out.push_str(&format!(" and a body without {:?}", t.source()));
        }
        for c in &self.json {
            out.push_str(&format!(" and JSON {} {}", c.pointer, c.test.describe()));
        }
        for h in &self.headers {
            out.push_str(&format!(" and header {} matching /{}/", h.name, h.pattern.0.as_str()));
        }
        out
    }

    /// The templates the checks render.
    pub(super) fn templates(&self) -> impl Iterator<Item = &Template> {
        self.body_contains.iter().chain(self.body_not_contains.iter())
    }
}

impl JsonTest {
    fn holds(&self, value: Option<&serde_json::Value>) -> bool {
        use serde_json::Value;
        match (self, value) {
            (JsonTest::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (JsonTest::Equals(want), Some(v)) => v == want,
            (JsonTest::Length(cmp, n), Some(v)) => {
                let len = match v {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return false,
                };
                cmp.holds(len as f64, *n as f64)
            }
            (JsonTest::Matches(p), Some(v)) => match v {
                Value::String(s) => p.0.is_match(s),
                Value::Number(_) | Value::Bool(_) => p.0.is_match(&v.to_string()),
                _ => false,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            JsonTest::Exists(true) => "exists".to_owned(),
            JsonTest::Exists(false) => "is absent".to_owned(),
            JsonTest::Equals(v) => format!("equals {v}"),
            JsonTest::Length(c, n) => format!("has length {} {n}", op_text(*c)),
            JsonTest::Matches(p) => format!("matches /{}/", p.0.as_str()),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    Op::TEXTS.iter().find(|(_, o)| *o == op).map_or("?", |(t, _)| t)
}

pub(super) fn parse_expect(
    ctx: &Ctx,
    raw: Option<&RawExpect>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expect, ScenarioError> {
    let Some(e) = raw else {
        return Ok(Expect {
            status: Vec::new(),
            body_contains: None,
            body_not_contains: None,
            json: Vec::new(),
            headers: Vec::new(),
        });
    };
    Ok(Expect {
        status: e.status.as_ref().map(|v| parse_status(ctx, v)).transpose()?.unwrap_or_default(),
        body_contains: e.body_contains.as_ref().map(|b| ctx.template(b, env)).transpose()?,
        body_not_contains: e.body_not_contains.as_ref().map(|b| ctx.template(b, env)).transpose()?,
        json: e.json.as_ref().map(|j| parse_json_checks(ctx, j)).transpose()?.unwrap_or_default(),
        headers: e
            .headers
            .iter()
            .map(|(name, p)| {
                Ok(HeaderCheck { name: name.to_ascii_lowercase(), pattern: pattern(ctx, p, "expect.headers")? })
            })
            .collect::<Result<_, ScenarioError>>()?,
    })
}

fn parse_status(ctx: &Ctx, v: &Spanned<toml::Value>) -> Result<Vec<u16>, ScenarioError> {
    let one = |x: &toml::Value| match x {
        toml::Value::Integer(n) if (100..=599).contains(n) => Some(*n as u16),
        _ => None,
    };
    let bad = || ctx.err(v, "expect.status must be an HTTP status (100–599) or a list of them");
    match v.get_ref() {
        toml::Value::Array(items) if !items.is_empty() => items.iter().map(|x| one(x).ok_or_else(bad)).collect(),
        x => one(x).map(|s| vec![s]).ok_or_else(bad),
    }
}

fn pattern(ctx: &Ctx, p: &Spanned<String>, what: &str) -> Result<Pattern, ScenarioError> {
    regex::Regex::new(p.get_ref())
        .map(Pattern)
        .map_err(|e| ctx.err(p, format!("{what}: {:?} is not a regular expression: {e}", p.get_ref())))
}

/// `json = { "/models" = { length = ">= 3" }, "/auth" = { equals = "session" } }`.
/// The inner tables carry no spans of their own: errors point at the `json` table.
fn parse_json_checks(ctx: &Ctx, table: &Spanned<toml::Table>) -> Result<Vec<JsonCheck>, ScenarioError> {
    let err = |m: String| ctx.err(table, format!("expect.json: {m}"));
    let mut out = Vec::new();
    for (pointer, tests) in table.get_ref() {
        if !pointer.starts_with('/') {
            return Err(err(format!("{pointer:?} is not a JSON pointer: it must start with '/' (\"/models\")")));
        }
        let toml::Value::Table(tests) = tests else {
            return Err(err(format!(
                "\"{pointer}\" needs a table of checks: {{ exists = true }}, {{ equals = … }}, {{ length = \">= 1\" }} or {{ matches = \"regex\" }}"
            )));
        };
        for (kind, value) in tests {
            let test = match (kind.as_str(), value) {
                ("exists", toml::Value::Boolean(b)) => JsonTest::Exists(*b),
                ("equals", v) => JsonTest::Equals(
                    serde_json::to_value(v).map_err(|e| err(format!("\"{pointer}\".equals: {e}")))?,
                ),
                ("length", toml::Value::Integer(n)) if *n >= 0 => JsonTest::Length(Op::Eq, *n as u64),
                ("length", toml::Value::String(s)) => {
                    let (c, n) = parse_length(s).ok_or_else(|| {
                        err(format!("\"{pointer}\".length is {s:?}; expected a number or a comparison such as \">= 3\" (<, <=, >, >=, ==)"))
                    })?;
                    JsonTest::Length(c, n)
                }
                ("matches", toml::Value::String(s)) => JsonTest::Matches(Pattern(
                    regex::Regex::new(s).map_err(|e| err(format!("\"{pointer}\".matches: {s:?} is not a regular expression: {e}")))?,
                )),
                (other, v) => {
                    return Err(err(format!(
                        "\"{pointer}\".{other} = {v} is not a check; expected exists = true|false, equals = <value>, length = <n or \">= n\">, matches = \"<regex>\""
                    )))
                }
            };
            out.push(JsonCheck { pointer: pointer.clone(), test });
        }
    }
    Ok(out)
}

fn parse_length(s: &str) -> Option<(Op, u64)> {
    let s = s.trim();
    let (op, rest) = Op::TEXTS.iter().find_map(|(t, op)| s.strip_prefix(t).map(|r| (*op, r)))?;
    Some((op, rest.trim().parse().ok()?))
}

/// `compare = "json" | "bytes" | "status" | "off"` or
/// `compare = { body = "json", ignore = ["/request_id"] }`; JSON when absent.
pub(super) fn parse_compare(ctx: &Ctx, raw: Option<&Spanned<toml::Value>>) -> Result<AnswerRule, ScenarioError> {
    let Some(raw) = raw else { return Ok(AnswerRule::default()) };
    let expected =
        "compare must be \"json\", \"bytes\", \"status\", \"off\" or { body = \"json\", ignore = [\"/pointer\", …] }";
    let (body, ignore) = match raw.get_ref() {
        toml::Value::String(s) => (s.as_str(), None),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "body" | "ignore")) {
                return Err(ctx.err(raw, format!("compare.{k} is not a key; {expected}")));
            }
            let body = match t.get("body") {
                None => "json",
                Some(toml::Value::String(s)) => s.as_str(),
                Some(_) => return Err(ctx.err(raw, expected)),
            };
            (body, t.get("ignore"))
        }
        _ => return Err(ctx.err(raw, expected)),
    };
    let ignore = match ignore {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                toml::Value::String(s) => {
                    IgnoredPointer::parse(s).map_err(|e| ctx.err(raw, format!("compare.ignore: {e}")))
                }
                other => Err(ctx.err(raw, format!("compare.ignore: {other} is not a JSON pointer string"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ctx.err(raw, "compare.ignore must be a list of JSON pointers: [\"/request_id\"]")),
    };
    match body {
        "json" => Ok(AnswerRule::Json { ignore }),
        _ if !ignore.is_empty() => Err(ctx.err(raw, "compare.ignore needs body = \"json\": pointers address JSON")),
        "bytes" => Ok(AnswerRule::Bytes),
        "status" => Ok(AnswerRule::Status),
        "off" => Ok(AnswerRule::Off),
        other => Err(ctx.err(raw, format!("compare is {other:?}; {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::client::Reply;
    use crate::scenario::{parse, Needles, Scenario};

    fn scenario(step: &str) -> Result<Scenario, String> {
        let text = format!(
            "name = \"t\"\n[load]\nexecutor = \"constant-arrival-rate\"\nrate = 1\nduration = \"1s\"\n[[step]]\nname = \"s\"\nrequest = {{ path = \"/\" }}\n{step}\n"
        );
        parse(std::path::Path::new("t.toml"), &text, &|_| None).map_err(|e| e.to_string())
    }

    fn reply(status: u16, body: &str, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            x_cache: None,
            server_timing: None,
            ops: None,
            bytes: body.len() as u64,
            body: Some(body.as_bytes().to_vec()),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn met(step: &str, r: &Reply) -> bool {
        let sc = scenario(step).unwrap();
        let e = &sc.steps[0].expect;
        let needles = Needles {
            contains: e.body_contains.as_ref().map(|t| t.source().to_owned()),
            not_contains: e.body_not_contains.as_ref().map(|t| t.source().to_owned()),
        };
        e.met_by(r, &needles)
    }

    #[test]
    fn json_pointer_checks_hold_or_fail_as_written() {
        let body = r#"{"models":[{"id":"a"},{"id":"b"}],"auth":"session","n":3}"#;
        let r = reply(200, body, &[]);
        let checks = r#"expect = { json = { "/models" = { length = ">= 2" }, "/auth" = { equals = "session" }, "/models/0/id" = { matches = "^a$" }, "/gone" = { exists = false }, "/n" = { equals = 3 } } }"#;
        assert!(met(checks, &r));
        assert!(!met(r#"expect = { json = { "/models" = { length = 3 } } }"#, &r));
        assert!(!met(r#"expect = { json = { "/auth" = { equals = "jwt" } } }"#, &r));
        assert!(!met(r#"expect = { json = { "/missing" = { exists = true } } }"#, &r));
        assert!(!met(r#"expect = { json = { "/auth" = { exists = true } } }"#, &reply(200, "not json", &[])));
    }

    #[test]
    fn statuses_bodies_and_headers_are_checked() {
        let r = reply(404, "no such model", &[("content-type", "application/json; charset=utf-8")]);
        assert!(met("expect = { status = [200, 404] }", &r));
        assert!(!met("expect = { status = 200 }", &r));
        assert!(!met(r#"expect = { status = 404, body_not_contains = "no such" }"#, &r));
        assert!(met(r#"expect = { status = 404, headers = { Content-Type = "^application/json" } }"#, &r));
        assert!(!met(r#"expect = { status = 404, headers = { x-cache = "hit" } }"#, &r));
    }

    #[test]
    fn bad_checks_and_compare_rules_name_their_place() {
        let e = scenario(r#"expect = { json = { "/a" = { length = "about 3" } } }"#).unwrap_err();
        assert!(e.contains("t.toml:9:") && e.contains("length"), "{e}");
        let e = scenario(r#"expect = { headers = { x = "(" } }"#).unwrap_err();
        assert!(e.contains("t.toml:9:") && e.contains("regular expression"), "{e}");
        let e = scenario(r#"compare = "sometimes""#).unwrap_err();
        assert!(e.contains("t.toml:9:11") && e.contains("\"json\""), "{e}");
        let e = scenario(r#"compare = { body = "bytes", ignore = ["/id"] }"#).unwrap_err();
        assert!(e.contains("needs body = \"json\""), "{e}");
        let ok = scenario(r#"compare = { ignore = ["/request_id", "/models/*/updated_at"] }"#).unwrap();
        assert!(ok.steps[0].compare.describe().contains("/models/*/updated_at"));
    }
}
