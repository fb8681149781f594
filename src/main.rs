//! The `regconf` binary: parse the command line, run, exit with its status.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    regconf::cli::main()
}
