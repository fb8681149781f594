//! `regconf env`: the environment variables a flavor reads.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use serde_json::json;

use super::{ConfigArgs, Context};
use crate::diagnostics::Diagnostic;
use crate::inspect::variables::{self, Variable};

/// Arguments of `regconf env`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "List every environment variable a flavor reads: its name, the keys that use \
it, its default, whether it is set now, the type its text gives, and whether it is required \
(no default, and `serve` needs the setting it gives).\n\nWith --check, exit 1 when a required \
variable is unset, naming each one (for CI). Secrets are masked unless --show-secrets."
)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// KEY=VALUE lines layered over the environment
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Exit 1 when a required variable is unset
    #[arg(long)]
    check: bool,
    /// Print secret values as they are
    #[arg(long)]
    show_secrets: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Dotenv,
}

/// Runs `regconf env`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let env = match &args.env_file {
        Some(path) => match super::validate::read_env_file(path, ctx.env.clone()) {
            Ok(env) => env,
            Err(d) => {
                ctx.report(&[*d]);
                return 1;
            }
        },
        None => ctx.env.clone(),
    };
    let Some((source, resolved)) = ctx.resolve(&args.config, &[], &env) else {
        return 1;
    };
    let vars = variables::variables(
        &resolved,
        &source,
        args.config.inherit.into(),
        &env,
        args.show_secrets,
    );
    let missing: Vec<&Variable> = vars.iter().filter(|v| v.required && !v.is_set()).collect();
    if args.check {
        if missing.is_empty() {
            eprintln!(
                "flavor `{}`: every required variable is set ({} read)",
                resolved.flavor,
                vars.len()
            );
            return 0;
        }
        let diags: Vec<Diagnostic> = missing
            .iter()
            .map(|v| {
                Diagnostic::error(
                    "regconf::env::required_unset",
                    format!(
                        "`{}` is not set, and flavor `{}` needs it for `{}`",
                        v.name,
                        resolved.flavor,
                        v.keys.join("`, `")
                    ),
                )
                .with_source(&source)
                .in_flavor(&resolved.flavor)
                .label(v.reference, "no default")
                .help(format!(
                    "set `{}` in the environment, or write a default: `_env:{}:VALUE`",
                    v.name, v.name
                ))
            })
            .collect();
        ctx.report(&diags);
        eprintln!(
            "\nflavor `{}`: {} required variable{} unset: {}",
            resolved.flavor,
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 1;
    }
    let text = match args.format {
        Format::Json => {
            let list: Vec<_> = vars
                .iter()
                .map(|v| {
                    json!({
                        "name": v.name,
                        "keys": v.keys,
                        "default": v.default,
                        "set": v.is_set(),
                        "value": v.value,
                        "type": v.type_name,
                        "required": v.required,
                        "secret": v.secret,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&json!({
                "file": source.name(),
                "flavor": resolved.flavor,
                "variables": list,
            }))
            .expect("JSON serialises")
                + "\n"
        }
        Format::Dotenv => dotenv(&vars, &resolved.flavor, source.name()),
        Format::Table => table(&vars, &resolved.flavor, source.name()),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

fn table(vars: &[Variable], flavor: &str, file: &str) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "REQUIRED".to_owned(),
        "NOW".to_owned(),
        "TYPE".to_owned(),
        "DEFAULT".to_owned(),
        "KEYS".to_owned(),
    ]];
    for v in vars {
        let mut keys = v.keys.join(", ");
        if v.secret {
            keys.push_str(" (secret)");
        }
        rows.push([
            v.name.clone(),
            if v.required { "yes" } else { "no" }.to_owned(),
            if v.is_set() { "set" } else { "unset" }.to_owned(),
            v.type_name.to_owned(),
            v.default.clone().map_or_else(
                || "-".to_owned(),
                |d| if d.is_empty() { "''".to_owned() } else { d },
            ),
            keys,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "flavor `{flavor}` of {file} reads {} variable{}\n\n",
        vars.len(),
        if vars.len() == 1 { "" } else { "s" }
    );
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i < 5 {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn dotenv(vars: &[Variable], flavor: &str, file: &str) -> String {
    let mut out = format!(
        "# The variables flavor `{flavor}` of {file} reads (regconf env --format dotenv).\n"
    );
    for v in vars {
        let mut notes = Vec::new();
        if v.required {
            notes.push("required".to_owned());
        }
        notes.push(format!("used by {}", v.keys.join(", ")));
        if let Some(d) = &v.default {
            notes.push(format!("default `{d}`"));
        }
        let value = match (&v.value, &v.default) {
            (Some(x), _) if x == crate::model::MASK => {
                notes.push("set; secret, not shown".to_owned());
                String::new()
            }
            (Some(x), _) => x.clone(),
            (None, Some(d)) if d == crate::model::MASK => String::new(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::new(),
        };
        out.push_str(&format!("\n# {}\n", notes.join("; ")));
        let line = format!("{}={value}", v.name);
        if v.value.is_none() && !v.required {
            out.push_str(&format!("#{line}\n"));
        } else {
            out.push_str(&format!("{line}\n"));
        }
    }
    out
}
