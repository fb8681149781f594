//! The `regconf` binary: parse the command line, run, exit with its status.

fn main() -> std::process::ExitCode {
    regconf::cli::main()
}
