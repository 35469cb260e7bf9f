//! The users a run will use, written out for a target's own schema (`harness
//! users`, and a recipe's seeding): every credential derived from the users
//! secret exactly as the runner derives it, plus the forms a target stores
//! (SHA-256 of the API key and of the session id, an integer id for schemas whose
//! user ids are numbers). Built-in CSV and JSON; anything else through a
//! minijinja template the user (or recipe) names.

use std::collections::BTreeMap;
use std::path::Path;

use bench_seed::seeded_user;
use sha2::{Digest, Sha256};

/// One exported user: what the scenarios send and what the target stores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserRow {
    pub seed: u64,
    pub index: u32,
    /// A positive integer, unique across seeds (`seed × 1,000,000 + index + 1`),
    /// for schemas whose user ids are integers.
    pub number: u64,
    /// `{{user.id}}` in scenarios.
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// `{{user.session}}`: the session cookie's value.
    pub session: String,
    pub session_sha256: String,
    /// `{{user.api_key}}`.
    pub api_key: String,
    pub api_key_sha256: String,
}

/// How users are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UserFormat {
    Csv,
    Json,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Every user of every seed, in seed then index order.
pub fn rows(secret: &str, per_seed: &BTreeMap<u64, u32>) -> Vec<UserRow> {
    let mut out = Vec::new();
    for (&seed, &count) in per_seed {
        for index in 0..count {
            let u = seeded_user(secret, seed, index);
            out.push(UserRow {
                seed,
                index,
                number: seed * 1_000_000 + u64::from(index) + 1,
                session_sha256: sha256_hex(&u.session_id),
                api_key_sha256: sha256_hex(&u.api_key),
                user_id: u.user_id,
                email: u.email,
                name: u.name,
                session: u.session_id,
                api_key: u.api_key,
            });
        }
    }
    out
}

const CSV_HEADER: [&str; 10] =
    ["seed", "index", "number", "user_id", "email", "name", "session", "session_sha256", "api_key", "api_key_sha256"];

/// RFC 4180: a field with a comma, quote or line break is quoted.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn render(rows: &[UserRow], format: UserFormat) -> String {
    match format {
        UserFormat::Json => serde_json::to_string_pretty(rows).expect("rows serialize") + "\n",
        UserFormat::Csv => {
            let mut out = CSV_HEADER.join(",") + "\n";
            for r in rows {
                let fields = [
                    r.seed.to_string(),
                    r.index.to_string(),
                    r.number.to_string(),
                    r.user_id.clone(),
                    r.email.clone(),
                    r.name.clone(),
                    r.session.clone(),
                    r.session_sha256.clone(),
                    r.api_key.clone(),
                    r.api_key_sha256.clone(),
                ];
                out += &fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
                out.push('\n');
            }
            out
        }
    }
}

/// A SQL string literal: single quotes doubled (`{{ u.email | sql }}`).
fn sql_literal(value: String) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Renders `template` (minijinja; `users` is the list of rows, `secret_sha256`
/// identifies the secret without revealing it) — e.g. SQL inserts for a schema
/// the harness does not know. Errors name the template file and line.
pub fn render_template(rows: &[UserRow], template: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(template)
        .map_err(|e| format!("cannot read the users template {}: {e}", template.display()))?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("sql", sql_literal);
    let name = template.display().to_string();
    let at = |e: minijinja::Error| {
        format!("{}:{}: {}", name, e.line().unwrap_or(0), e.detail().unwrap_or(&e.kind().to_string()))
    };
    env.add_template(&name, &text).map_err(at)?;
    let tmpl = env.get_template(&name).map_err(at)?;
    tmpl.render(minijinja::context! { users => rows }).map_err(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<UserRow> {
        rows("s3cret", &BTreeMap::from([(1, 2)]))
    }

    #[test]
    fn rows_carry_the_runners_credentials_and_their_stored_hashes() {
        let r = two();
        let u = seeded_user("s3cret", 1, 1);
        assert_eq!((r[1].user_id.as_str(), r[1].api_key.as_str()), (u.user_id.as_str(), u.api_key.as_str()));
        assert_eq!(r[1].session, u.session_id);
        // SHA-256 of the key as text, hex: what `crypto.subtle.digest` of its UTF-8 gives.
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(r[1].api_key_sha256, sha256_hex(&u.api_key));
        assert_eq!((r[0].number, r[1].number), (1_000_001, 1_000_002));
        assert_ne!(rows("other", &BTreeMap::from([(1, 2)]))[0].api_key, r[0].api_key, "the secret changes keys");
    }

    #[test]
    fn csv_and_json_hold_every_field() {
        let r = two();
        let csv = render(&r, UserFormat::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("seed,index,number,user_id,email"));
        assert_eq!(lines[2].split(',').count(), CSV_HEADER.len());
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        let json: serde_json::Value = serde_json::from_str(&render(&r, UserFormat::Json)).unwrap();
        assert_eq!(json[1]["api_key_sha256"], r[1].api_key_sha256.as_str());
    }

    #[test]
    fn a_template_renders_sql_with_quoted_values_and_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("user-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("users.sql");
        std::fs::write(
            &t,
            "{% for u in users %}INSERT INTO user VALUES ({{ u.number }}, {{ u.email | sql }});\n{% endfor %}",
        )
        .unwrap();
        let out = render_template(&two(), &t).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.starts_with("INSERT INTO user VALUES (1000001, 'user0.s1@"), "{out}");
        assert_eq!(sql_literal("o'k".into()), "'o''k'");
        std::fs::write(&t, "line one\n{{ u.nope }}").unwrap();
        let err = render_template(&two(), &t).unwrap_err();
        assert!(err.contains("users.sql:2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
