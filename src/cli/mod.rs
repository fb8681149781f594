//! The command-line front end.
use std::process::ExitCode;

/// Runs regconf with the process arguments and environment.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
