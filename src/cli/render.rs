//! `regconf render`: print the resolved configuration of one flavor.

use std::io::Write;

use clap::ValueEnum;

use super::{ConfigArgs, Context, SetArgs};
use crate::config::{Rule, render};

/// What `regconf render --help` says.
pub(super) const LONG_ABOUT: &str = "Print the fully resolved configuration of one flavor: exactly \
what docker-registry 0.9.1 would have seen, with every `_env:` value filled from the environment \
and typed as YAML.\n\nThe output feeds programs, so it prints secrets (keys, passwords) as they \
are; `explain`, `env` and `diff` mask them.";

/// Arguments of `regconf render`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    set: SetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

/// Runs `regconf render`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let Some((source, resolved)) = ctx.resolve(&args.config, &args.set.set, &ctx.env) else {
        return 1;
    };
    let name = source.name();
    if resolved.rule == Rule::Implicit {
        let why = if resolved.rule_was_auto {
            "the file has no merge key (`<<`)"
        } else {
            "--inherit implicit"
        };
        eprintln!(
            "note: `common` is the base of every flavor in `{name}`, as in docker-registry 0.6, since {why}"
        );
    }
    let text = match args.format {
        Format::Json => render::map_to_json(&resolved.config) + "\n",
        Format::Yaml => render::map_to_yaml(&resolved.config),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
