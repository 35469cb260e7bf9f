//! `harness`: the command-line edge. Errors become one line and an exit code:
//! 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable or run invalid.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use harness::exit;
use harness::result::Status;
use harness::runner::{self, RunError, RunOptions};
use harness::scenario;

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Cache benchmark load generator: scenario -> schedule -> client -> recorder -> result -> compare -> report",
    arg_required_else_help = true,
    long_about = "Replays scenario files (scenarios/*.toml) against a target worker and says, with \
statistics and an exit code, whether a cache really makes it faster. \
Exit codes: 0 pass, 1 a gate failed, 2 bad input or usage, 3 target unreachable or run invalid."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios against a target, write result files, print a summary, enforce thresholds.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Base URL of the target, e.g. http://127.0.0.1:8787
        #[arg(long, env = "HARNESS_TARGET")]
        target: String,
        /// Directory for result files (<scenario>-<time>.json and .hlog).
        #[arg(long, env = "HARNESS_OUT", default_value = "reports/runs")]
        out: PathBuf,
        /// The target's BENCH_SECRET: derives the seeded users' credentials.
        #[arg(long, env = "BENCH_SECRET", hide_env_values = true)]
        bench_secret: Option<String>,
        /// A label stored with the result, e.g. cache-on.
        #[arg(long)]
        variant: Option<String>,
        /// Extra header for every request, "name: value" (repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// No live progress line.
        #[arg(long, short)]
        quiet: bool,
        /// HTTP implementation: auto (hyper for http://, reqwest for https://), hyper, reqwest.
        #[arg(long, value_enum, default_value = "auto", env = "HARNESS_HTTP_CLIENT")]
        http_client: harness::client::ClientKind,
    },
    /// Parse scenarios and explain what they would do.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let (k, v) = h.split_once(':').ok_or_else(|| format!("--header {h:?}: expected \"name: value\""))?;
    let k = k.trim();
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("--header {h:?}: {k:?} is not a header name"));
    }
    Ok((k.to_owned(), v.trim().to_owned()))
}

fn validate(files: &[PathBuf]) -> i32 {
    let mut code = exit::PASS;
    for f in files {
        match scenario::load(f) {
            Ok(s) => print!("{}", s.explain()),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

fn run(files: &[PathBuf], opts: RunOptions) -> i32 {
    // Every file is checked before any load is sent.
    let mut scenarios = Vec::new();
    for f in files {
        match scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    let mut code = exit::PASS;
    for sc in &scenarios {
        match runner::run(sc, &opts) {
            Ok(outcome) => {
                print!("{}", harness::summary::render(&outcome.doc));
                println!("result: {} (interval log {})", outcome.files.json.display(), outcome.files.hlog.display());
                let c = match outcome.doc.run.status {
                    Status::Invalid | Status::Interrupted => exit::UNREACHABLE_OR_INVALID,
                    _ if outcome.doc.thresholds.iter().any(|t| !t.pass) => exit::GATE_FAILED,
                    _ => exit::PASS,
                };
                code = code.max(c);
                if outcome.doc.run.status == Status::Interrupted {
                    break;
                }
            }
            Err(e @ RunError::Unreachable(_)) => {
                eprintln!("error: {e}");
                return exit::UNREACHABLE_OR_INVALID;
            }
            Err(e @ RunError::Setup(_)) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    code
}

fn main() -> ExitCode {
    // clap exits with code 2 on usage errors: the contract's "bad input".
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Run { scenarios, target, out, bench_secret, variant, headers, quiet, http_client } => {
            let extra_headers = match headers.iter().map(|h| parse_header(h)).collect::<Result<Vec<_>, _>>() {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(exit::BAD_INPUT as u8);
                }
            };
            let opts = RunOptions {
                target,
                out_dir: out,
                bench_secret,
                variant,
                extra_headers,
                progress: !quiet,
                stem: None,
                max_duration: None,
                http_client,
            };
            run(&scenarios, opts)
        }
    };
    ExitCode::from(code as u8)
}
