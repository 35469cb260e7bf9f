//! `harness validate`: parses scenarios (or a claims file) and explains them.

use clap::Args;
use std::path::PathBuf;

use super::Fail;
use crate::{claims, exit, scenario};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

pub(super) fn validate(args: ValidateArgs) -> Result<i32, Fail> {
    let ValidateArgs { scenarios } = args;
    let mut code = exit::PASS;
    for f in &scenarios {
        // scenarios/ also holds the claims file: it is checked as what it is.
        let is_claims = std::fs::read_to_string(f).is_ok_and(|t| t.lines().any(|l| l.trim() == "[[claim]]"));
        let explained = if is_claims {
            claims::load(f).map(|c| claims::explain(f, &c))
        } else {
            scenario::load(f).map(|s| s.explain()).map_err(|e| e.to_string())
        };
        match explained {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    Ok(code)
}
