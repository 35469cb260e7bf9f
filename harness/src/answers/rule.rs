//! What of an answer is compared between the two arms of a pair: a step's
//! `compare` (ARCHITECTURE.md, "Answers"). The status always; the body as
//! canonical JSON (keys sorted, whitespace dropped, the pointers in `ignore`
//! removed), as exact bytes, or not at all.

use serde_json::Value;

/// How a step's two answers are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerRule {
    /// Status, and the body as canonical JSON without the `ignore` pointers (a
    /// body that is not JSON is compared as bytes). The default.
    Json { ignore: Vec<IgnoredPointer> },
    /// Status and the exact bytes of the body.
    Bytes,
    /// Status only.
    Status,
    /// Not compared (answers that differ by design: fresh tokens, per-arm state).
    Off,
}

impl Default for AnswerRule {
    fn default() -> AnswerRule {
        AnswerRule::Json { ignore: Vec::new() }
    }
}

/// A JSON pointer whose value is left out of the comparison; a `*` segment
/// stands for every element of an array or member of an object
/// (`/models/*/updated_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredPointer {
    text: String,
    segments: Vec<String>,
}

impl IgnoredPointer {
    /// `text` must be a JSON pointer (`/a/0/b`, `~1` for `/`, `~0` for `~`).
    pub fn parse(text: &str) -> Result<IgnoredPointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("{text:?} is not a JSON pointer: it must start with '/' (\"/request_id\")"));
        };
        let segments = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        Ok(IgnoredPointer { text: text.to_owned(), segments })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One answer as received: its status and, when the rule compares bodies, the
/// body as it came (normalised only when two differ: a correct cache's answers
/// are byte for byte the same, and parsing every body would cost the harness
/// more than its sending does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Option<Vec<u8>>,
}

impl AnswerRule {
    /// Whether the step's answers are compared at all.
    pub fn compares(&self) -> bool {
        *self != AnswerRule::Off
    }

    /// Whether the comparison needs the body kept.
    pub fn needs_body(&self) -> bool {
        matches!(self, AnswerRule::Json { .. } | AnswerRule::Bytes)
    }

    /// The answer as this rule keeps it: the body only when it is compared.
    pub fn answer(&self, status: u16, body: Option<&[u8]>) -> Answer {
        let body = self.needs_body().then(|| body.unwrap_or_default().to_vec());
        Answer { status, body }
    }

    /// Whether two answers are the same under this rule.
    pub fn same(&self, a: &Answer, b: &Answer) -> bool {
        if a.status != b.status {
            return false;
        }
        match (self, &a.body, &b.body) {
            (_, x, y) if x == y => true,
            (AnswerRule::Json { .. }, Some(_), Some(_)) => self.normalised(a) == self.normalised(b),
            (AnswerRule::Status | AnswerRule::Off, _, _) => true,
            _ => false,
        }
    }

    /// The answer in the form this rule compares (canonical JSON for `Json`).
    pub fn normalised(&self, a: &Answer) -> Answer {
        let body = match (self, &a.body) {
            (AnswerRule::Json { ignore }, Some(raw)) => {
                Some(canonical_json(raw, ignore).unwrap_or_else(|| raw.clone()))
            }
            (_, body) => body.clone(),
        };
        Answer { status: a.status, body }
    }

    /// The rule in words, for reports: "status and canonical JSON (ignoring /id)".
    pub fn describe(&self) -> String {
        match self {
            AnswerRule::Json { ignore } if ignore.is_empty() => "status and body as canonical JSON".to_owned(),
            AnswerRule::Json { ignore } => format!(
                "status and body as canonical JSON, ignoring {}",
                ignore.iter().map(IgnoredPointer::as_str).collect::<Vec<_>>().join(", ")
            ),
            AnswerRule::Bytes => "status and exact body bytes".to_owned(),
            AnswerRule::Status => "status only".to_owned(),
            AnswerRule::Off => "not compared".to_owned(),
        }
    }
}

/// `raw` as JSON with object keys sorted, pretty-printed one value per line (so
/// a difference reads as a line diff), the ignored pointers removed; `None` when
/// `raw` is not JSON.
fn canonical_json(raw: &[u8], ignore: &[IgnoredPointer]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(raw).ok()?;
    for pointer in ignore {
        remove(&mut value, &pointer.segments);
    }
    let mut text = serde_json::to_vec_pretty(&sorted(value)).ok()?;
    // A last line like every other: a diff need not say "no newline at end of file".
    text.push(b'\n');
    Some(text)
}

/// The value with every object's members in key order, whatever map the JSON
/// library keeps (insertion order or sorted).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(String, Value)> = map.into_iter().collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn remove(value: &mut Value, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else { return };
    let wildcard = first == "*";
    match value {
        Value::Object(map) if rest.is_empty() => {
            if wildcard {
                map.clear();
            } else {
                map.remove(first);
            }
        }
        Value::Array(items) if rest.is_empty() => {
            if wildcard {
                items.clear();
            } else if let Ok(i) = first.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        Value::Object(map) if wildcard => map.values_mut().for_each(|v| remove(v, rest)),
        Value::Array(items) if wildcard => items.iter_mut().for_each(|v| remove(v, rest)),
        Value::Object(map) => {
            if let Some(v) = map.get_mut(first) {
                remove(v, rest);
            }
        }
        Value::Array(items) => {
            if let Some(v) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                remove(v, rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ignore: &[&str]) -> AnswerRule {
        AnswerRule::Json { ignore: ignore.iter().map(|p| IgnoredPointer::parse(p).unwrap()).collect() }
    }

    fn same(rule: &AnswerRule, a: (u16, &[u8]), b: (u16, &[u8])) -> bool {
        rule.same(&rule.answer(a.0, Some(a.1)), &rule.answer(b.0, Some(b.1)))
    }

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace_but_not_values() {
        let rule = json(&[]);
        let a: &[u8] = br#"{"b":1,"a":[1,2],"c":{"y":true,"x":null}}"#;
        assert!(same(&rule, (200, a), (200, b"{ \"a\": [1, 2],\n \"c\": {\"x\": null, \"y\": true}, \"b\": 1 }")));
        assert!(!same(&rule, (200, a), (200, br#"{"b":1,"a":[2,1],"c":{"y":true,"x":null}}"#)));
        assert!(!same(&rule, (200, a), (404, a)));
        let text = rule.normalised(&rule.answer(200, Some(a))).body.unwrap();
        assert!(String::from_utf8(text).unwrap().starts_with("{\n  \"a\": ["), "keys sorted, one per line");
    }

    #[test]
    fn ignored_pointers_and_wildcards_leave_the_rest_compared() {
        let rule = json(&["/request_id", "/models/*/updated", "/a~1b"]);
        let one: &[u8] = br#"{"request_id":"r1","a/b":1,"models":[{"id":"x","updated":1},{"id":"y","updated":2}]}"#;
        let two: &[u8] = br#"{"request_id":"r2","a/b":2,"models":[{"id":"x","updated":9},{"id":"y","updated":8}]}"#;
        assert!(same(&rule, (200, one), (200, two)));
        assert!(!same(&rule, (200, one), (200, br#"{"request_id":"r2","models":[{"id":"x","updated":9}]}"#)));
        assert!(IgnoredPointer::parse("request_id").is_err());
    }

    #[test]
    fn non_json_bodies_compare_as_bytes_and_status_only_ignores_bodies() {
        let rule = json(&[]);
        assert!(same(&rule, (200, b"ok"), (200, b"ok")));
        assert!(!same(&rule, (200, b"ok"), (200, b"ok ")));
        assert!(!same(&AnswerRule::Bytes, (200, b"{\"a\":1}"), (200, b"{\"a\": 1}")));
        assert!(same(&AnswerRule::Status, (200, b"x"), (200, b"y")));
        assert!(!same(&AnswerRule::Status, (200, b"x"), (404, b"x")));
        assert_eq!(AnswerRule::Status.answer(200, Some(b"x")).body, None, "nothing kept that is not compared");
    }
}
