//! `harness`: replays scenario files against the target worker and reports whether
//! a cache made it faster. The load engine arrives with the following issues; this
//! entry point already fixes the command-line surface and exit-code contract.

use clap::Parser;

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
struct Cli {}

fn main() {
    // clap exits with code 2 on usage errors, which is the contract's "bad input".
    let _cli = Cli::parse();
}
