//! `{{…}}` templates in request paths, headers and bodies, compiled once when the
//! scenario is loaded so that a typo is an error with a position, not a run-time
//! surprise.

use std::fmt::Write;

/// A value a template can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    UserId,
    UserSession,
    UserApiKey,
    UserEmail,
    UserName,
    UserIndex,
    /// A value extracted from an earlier response of the same user.
    Extracted(String),
    RandomU32,
    RandomHex16,
    RandomUuid,
    Iteration,
    /// An element of a `[lists.<name>]` list, drawn per iteration or kept per user.
    List(String),
}

pub const KNOWN: &str = "user.id, user.session, user.api_key, user.email, user.name, user.index, \
vars.<name> (extracted), list.<name> (from [lists]), random.u32, random.hex16, random.uuid, iteration, env.<NAME>";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A template error: what is wrong and the byte offset in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// What a rendering needs besides the template.
pub trait Values {
    fn user_field(&self, var: &Var) -> Option<String>;
    fn extracted(&self, name: &str) -> Option<String>;
    fn iteration(&self) -> u64;
    fn random_u64(&mut self) -> u64;
    /// The iteration's element of list `name`.
    fn list_item(&mut self, name: &str) -> Option<String>;
}

impl Template {
    /// Compiles `text`; `env.NAME` is substituted now from `env`.
    pub fn compile(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| TemplateError {
                offset: offset + open,
                message: "unclosed {{ in template; expected }}".into(),
            })?;
            let name = after[..close].trim();
            let at = offset + open;
            let var = match name {
                "user.id" => Var::UserId,
                "user.session" => Var::UserSession,
                "user.api_key" => Var::UserApiKey,
                "user.email" => Var::UserEmail,
                "user.name" => Var::UserName,
                "user.index" => Var::UserIndex,
                "random.u32" => Var::RandomU32,
                "random.hex16" => Var::RandomHex16,
                "random.uuid" => Var::RandomUuid,
                "iteration" => Var::Iteration,
                _ if name.starts_with("vars.") && name.len() > 5 => Var::Extracted(name[5..].to_owned()),
                _ if name.starts_with("list.") && name.len() > 5 => Var::List(name[5..].to_owned()),
                _ if name.starts_with("env.") && name.len() > 4 => {
                    let value = env(&name[4..]).ok_or_else(|| TemplateError {
                        offset: at,
                        message: format!("environment variable {} is not set (used as {{{{{name}}}}})", &name[4..]),
                    })?;
                    parts.push(Part::Text(value));
                    rest = &after[close + 2..];
                    offset = at + 2 + close + 2;
                    continue;
                }
                _ => {
                    return Err(TemplateError {
                        offset: at,
                        message: format!("unknown template variable {{{{{name}}}}}; known: {KNOWN}"),
                    })
                }
            };
            parts.push(Part::Var(var));
            rest = &after[close + 2..];
            offset = at + 2 + close + 2;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    pub fn is_static(&self) -> bool {
        self.vars().next().is_none()
    }

    /// Renders with `values`; `Err` names a variable that has no value yet.
    pub fn render(&self, values: &mut dyn Values) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match v {
                    Var::Extracted(name) => {
                        out.push_str(&values.extracted(name).ok_or_else(|| format!("vars.{name} has no value yet"))?)
                    }
                    Var::Iteration => {
                        let _ = write!(out, "{}", values.iteration());
                    }
                    Var::List(name) => {
                        out.push_str(&values.list_item(name).ok_or_else(|| format!("list.{name} is not defined"))?)
                    }
                    Var::RandomU32 => {
                        let _ = write!(out, "{}", values.random_u64() as u32);
                    }
                    Var::RandomHex16 => {
                        let _ = write!(out, "{:016x}", values.random_u64());
                    }
                    Var::RandomUuid => {
                        let (a, b) = (values.random_u64(), values.random_u64());
                        let _ = write!(
                            out,
                            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                            a >> 32,
                            (a >> 16) & 0xffff,
                            a & 0xfff,
                            ((b >> 48) & 0x3fff) | 0x8000,
                            b & 0xffff_ffff_ffff
                        );
                    }
                    user => out.push_str(&values.user_field(user).ok_or("the scenario has no users")?),
                },
            }
        }
        Ok(out)
    }

    /// The template text back, for explanations.
    pub fn source(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Var(v) => format!("{{{{{}}}}}", var_name(v)),
            })
            .collect()
    }
}

fn var_name(v: &Var) -> String {
    match v {
        Var::UserId => "user.id".into(),
        Var::UserSession => "user.session".into(),
        Var::UserApiKey => "user.api_key".into(),
        Var::UserEmail => "user.email".into(),
        Var::UserName => "user.name".into(),
        Var::UserIndex => "user.index".into(),
        Var::Extracted(n) => format!("vars.{n}"),
        Var::RandomU32 => "random.u32".into(),
        Var::RandomHex16 => "random.hex16".into(),
        Var::RandomUuid => "random.uuid".into(),
        Var::Iteration => "iteration".into(),
        Var::List(n) => format!("list.{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V;
    impl Values for V {
        fn user_field(&self, var: &Var) -> Option<String> {
            match var {
                Var::UserSession => Some("sess".into()),
                Var::UserIndex => Some("7".into()),
                _ => None,
            }
        }
        fn extracted(&self, name: &str) -> Option<String> {
            (name == "token").then(|| "tok".into())
        }
        fn iteration(&self) -> u64 {
            3
        }
        fn random_u64(&mut self) -> u64 {
            0x0123_4567_89ab_cdef
        }
        fn list_item(&mut self, name: &str) -> Option<String> {
            (name == "ua").then(|| "Mozilla/5.0".into())
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3".into())
    }

    #[test]
    fn render() {
        let t = Template::compile("session={{user.session}}; i={{ iteration }} {{vars.token}} {{env.SECRET}}", &env)
            .unwrap();
        assert_eq!(t.render(&mut V).unwrap(), "session=sess; i=3 tok s3");
        let ua = Template::compile("{{list.ua}}", &env).unwrap();
        assert_eq!(ua.render(&mut V).unwrap(), "Mozilla/5.0");
        assert_eq!(ua.source(), "{{list.ua}}");
        assert!(Template::compile("/models", &env).unwrap().is_static());
        let uuid = Template::compile("{{random.uuid}}", &env).unwrap().render(&mut V).unwrap();
        assert_eq!(uuid.len(), 36);
        let missing = Template::compile("{{vars.nope}}", &env).unwrap().render(&mut V);
        assert!(missing.unwrap_err().contains("vars.nope"));
    }

    #[test]
    fn errors_carry_offsets() {
        let e = Template::compile("ab{{user.sesion}}", &env).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("user.sesion") && e.message.contains("user.session"));
        assert_eq!(Template::compile("x {{user.id", &env).unwrap_err().offset, 2);
        assert!(Template::compile("{{env.NOPE}}", &env).unwrap_err().message.contains("NOPE"));
    }
}
