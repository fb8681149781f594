//! `regconf completions` and `regconf man`.

use std::io::Write;

/// Arguments of `regconf completions`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The shell
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script for a shell.
pub(super) fn run(args: &Args, mut cmd: clap::Command) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "regconf", &mut out);
    let _ = std::io::stdout().write_all(&out);
    0
}

/// Prints the manual page (subcommands are listed in it; each has `--help`).
pub(super) fn man(cmd: clap::Command) -> u8 {
    let mut out = Vec::new();
    if clap_mangen::Man::new(cmd).render(&mut out).is_err() {
        return 1;
    }
    let _ = std::io::stdout().write_all(&out);
    0
}
