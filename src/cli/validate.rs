//! `regconf validate`: report every problem of a configuration file.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::{ConfigArgs, Context};
use crate::config::Env;
use crate::config::source::{read_capped, size_text};
use crate::config::validate::{self, Options};
use crate::diagnostics::{Diagnostic, Severity, report};

/// Arguments of `regconf validate`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Check a configuration file and report every problem, sorted by position: would \
docker-registry 0.9.1 accept it and use every value as meant?\n\n\
Without --flavor, every flavor is checked statically: `_env:` values are checked through their \
defaults. With --flavor, that flavor is also resolved in this environment (plus --env-file) and \
decides the exit status; other flavors' errors are listed as notes, and so is what `regconf \
serve` cannot run (ask `regconf serve --check` for that).\n\nExit status: 0 valid (warnings \
allowed), 1 errors, 2 usage."
)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Override a setting of --flavor after it is resolved (repeatable): a
    /// dotted key, the value typed as YAML (`--set cache.port=6380`)
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "flavor")]
    set: Vec<String>,
    /// KEY=VALUE lines layered over the environment (with --flavor)
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Treat warnings as errors
    #[arg(long)]
    strict: bool,
    /// Output format: diagnostics on stderr, or a JSON array on stdout
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// The most diagnostics drawn in full in human output; the others are
/// counted by code (JSON output lists every one).
const FULL_REPORTS: usize = 200;

/// The most an environment file may hold: Linux passes a process at most a
/// few MiB of arguments and environment together, so no environment a file
/// stands for is larger.
const ENV_FILE_LIMIT: u64 = 4 << 20;

/// Reads `KEY=VALUE` lines; blank lines and `#` comments are skipped, and
/// the value is taken as is (no quote removal), as `docker run --env-file`.
pub(crate) fn read_env_file(path: &Path, mut env: Env) -> Result<Env, Box<Diagnostic>> {
    let shown = path.display().to_string();
    let problem = |reason: String| {
        Box::new(
            Diagnostic::error(
                "regconf::file::env_file",
                format!("cannot read the environment file `{shown}`: {reason}"),
            )
            .help(format!(
                "give a file of `NAME=value` lines, at most {}",
                size_text(ENV_FILE_LIMIT)
            )),
        )
    };
    let bytes = read_capped(path, ENV_FILE_LIMIT).map_err(|e| problem(e.reason()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        problem(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => env.set(name.trim(), value),
            _ => {
                return Err(Box::new(
                    Diagnostic::error(
                        "regconf::file::env_file",
                        format!("line {} of `{shown}` is not `NAME=value`: `{line}`", i + 1),
                    )
                    .help("write one `NAME=value` per line; `#` starts a comment line"),
                ));
            }
        }
    }
    Ok(env)
}

/// Runs `regconf validate`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let source = match ctx.source(&args.config) {
        Ok(s) => s,
        Err(d) => return finish(ctx, args, vec![d], 0, ""),
    };
    let env = match &args.env_file {
        Some(path) => match read_env_file(path, ctx.env.clone()) {
            Ok(env) => env,
            // a data error (exit 1), reported as the file's problems are
            Err(d) => return finish(ctx, args, vec![*d], 0, ""),
        },
        None => ctx.env.clone(),
    };
    let overrides = match crate::config::overrides::parse_all(&args.set) {
        Ok(o) => o,
        Err(diags) => return finish(ctx, args, diags, 0, ""),
    };
    let name = source.name().to_owned();
    let validate::Report {
        diagnostics,
        flavors,
        parsed,
    } = validate::validate(
        source,
        Options {
            flavor: args.config.flavor.as_deref(),
            inherit: args.config.inherit.into(),
            env: &env,
            overrides: &overrides,
        },
    );
    // The process ends after the report: the parsed file is left to the
    // system rather than freed node by node (a tenth of the time of a
    // 50 MB file's `validate`).
    std::mem::forget(parsed);
    finish(ctx, args, diagnostics, flavors, &name)
}

fn finish(
    ctx: &Context,
    args: &Args,
    mut diags: Vec<Diagnostic>,
    flavors: usize,
    name: &str,
) -> u8 {
    if args.strict {
        for d in &mut diags {
            if d.severity == Severity::Warning {
                d.severity = Severity::Error;
            }
        }
    }
    let (errors, warnings) = validate::counts(&diags);
    match args.format {
        Format::Json => {
            let values: Vec<_> = diags.iter().map(report::json_value).collect();
            let text = serde_json::to_string_pretty(&values).expect("JSON serialises") + "\n";
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
        Format::Human => {
            let text = report::human_capped(&diags, ctx.style, FULL_REPORTS);
            let _ = std::io::stderr().write_all(text.as_bytes());
            if !name.is_empty() {
                let plural =
                    |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
                let verdict = if errors == 0 { "valid" } else { "invalid" };
                eprintln!(
                    "{}{name}: {verdict} ({} checked; {}, {})",
                    if diags.is_empty() { "" } else { "\n" },
                    plural(flavors, "flavor"),
                    plural(errors, "error"),
                    plural(warnings, "warning")
                );
            }
        }
    }
    u8::from(errors > 0)
}
