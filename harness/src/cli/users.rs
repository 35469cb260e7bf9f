//! `harness users`: writes out the users the scenarios will use — every
//! credential the runner will send and the forms a target stores — as CSV, JSON
//! or through a template for the target's own schema (SQL inserts, a KV bulk
//! file), so that any worker can be seeded without this project's seed routes.

use clap::Args;
use std::path::PathBuf;

use super::{bad, Fail};
use crate::exit;
use crate::user_file::{self, UserFormat};

#[derive(Args, Debug)]
pub struct UsersArgs {
    /// Scenario files whose [users] to write (the largest count per seed).
    pub scenarios: Vec<PathBuf>,
    /// The secret the credentials derive from: give the same to `run`/`ab`/`bench`
    /// (--users-secret) so they send these users' credentials.
    #[arg(long, env = "HARNESS_USERS_SECRET", hide_env_values = true)]
    pub users_secret: Option<String>,
    /// Take the template (and, if it has one, the secret) from this recipe's [seed].
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// A minijinja template rendered once with `users` (each with seed, index,
    /// number, user_id, email, name, session, session_sha256, api_key,
    /// api_key_sha256) and a `sql` filter that quotes a value for SQL.
    #[arg(long, value_name = "FILE", conflicts_with = "format")]
    pub template: Option<PathBuf>,
    /// A built-in format when there is no template.
    #[arg(long, value_enum)]
    pub format: Option<UserFormat>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Write this many users of --seed as well.
    #[arg(long, requires = "seed")]
    pub users: Option<u32>,
    /// The seed of --users.
    #[arg(long, requires = "users")]
    pub seed: Option<u64>,
}

pub(super) fn users(args: UsersArgs) -> Result<i32, Fail> {
    let recipe = args.recipe.as_deref().map(crate::recipe::load).transpose().map_err(bad)?;
    let per_seed = super::seed::wanted_users(&args.scenarios, args.users.zip(args.seed))?;
    if per_seed.is_empty() {
        return Err(bad(
            "no users to write: the scenarios given have no [users] section; give scenarios that do, or --users N \
             --seed K",
        ));
    }
    let secret =
        args.users_secret.or_else(|| recipe.as_ref().and_then(|r| r.users_secret.clone())).ok_or_else(|| {
            bad("give --users-secret (or HARNESS_USERS_SECRET): the credentials derive from it, and the runs that use \
             these users need the same one")
        })?;
    let template =
        args.template.or_else(|| recipe.as_ref().and_then(|r| r.seed.as_ref().and_then(|s| s.template.clone())));
    let rows = user_file::rows(&secret, &per_seed);
    let text = match (template, args.format) {
        (Some(t), None) => user_file::render_template(&rows, &t).map_err(bad)?,
        (_, Some(f)) => user_file::render(&rows, f),
        (None, None) => user_file::render(&rows, UserFormat::Csv),
    };
    match &args.out {
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| bad(format!("cannot write {}: {e}", p.display())))?;
            eprintln!("wrote {} users to {}", rows.len(), p.display());
        }
        None => {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            use std::io::Write;
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    Ok(exit::PASS)
}
