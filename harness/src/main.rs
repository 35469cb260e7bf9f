//! `harness`: the command-line edge; everything it does is in `harness::cli`.

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
