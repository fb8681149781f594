//! `regconf diff`: two flavors, or one flavor under two environments.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::{ConfigArgs, Context, InheritArg, TextOrJson, TextOrJsonArgs, looks_like_file};
use crate::config::{Env, Value, render, typed};
use crate::inspect::diff::{self, Change, Side};

/// Arguments of `regconf diff`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Show key-by-key differences between two flavors of a file (`regconf diff dev \
prod`), or between one flavor under two environment files (`regconf diff prod --env-file \
a.env --env-file b.env`); each side is shown with where it came from. A second name that ends \
in `.yml` or `.yaml`, or holds a `/`, is taken as FILE.\n\nExit status: 0 no difference, \
1 differences, 2 usage. Secrets are masked unless --show-secrets."
)]
pub(super) struct Args {
    /// The first flavor
    a: String,
    /// The second flavor [default: A, with two --env-file]
    b: Option<String>,
    /// The configuration file [default: $DOCKER_REGISTRY_CONFIG, else
    /// ./config.yml, else the bundled default]
    file: Option<PathBuf>,
    /// How flavors inherit (see `render --help`)
    #[arg(long, value_enum, default_value_t = InheritArg::Auto)]
    inherit: InheritArg,
    /// KEY=VALUE lines layered over the environment: once for both sides,
    /// or twice, one per side
    #[arg(long, value_name = "PATH")]
    env_file: Vec<PathBuf>,
    /// Print secrets as they are
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    output: TextOrJsonArgs,
}

/// Runs `regconf diff`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let (mut b, mut file) = (args.b.clone(), args.file.clone());
    if file.is_none() && b.as_deref().is_some_and(looks_like_file) {
        file = b.take().map(PathBuf::from);
    }
    let b = b.unwrap_or_else(|| args.a.clone());
    let envs: Vec<(Env, String)> = {
        let mut out = Vec::new();
        for path in &args.env_file {
            match super::validate::read_env_file(path, ctx.env.clone()) {
                Ok(env) => out.push((env, path.display().to_string())),
                // a file that cannot be read is a data error, not a usage one
                Err(d) => {
                    ctx.report(&[*d]);
                    return 1;
                }
            }
        }
        out
    };
    let (left_env, right_env) = match envs.as_slice() {
        [] => ((ctx.env.clone(), None), (ctx.env.clone(), None)),
        [one] => ((one.0.clone(), None), (one.0.clone(), None)),
        [l, r] => (
            (l.0.clone(), Some(l.1.clone())),
            (r.0.clone(), Some(r.1.clone())),
        ),
        _ => {
            eprintln!("error: give --env-file at most twice, one per side");
            return 2;
        }
    };
    if args.a == b && right_env.1.is_none() {
        eprintln!(
            "error: `diff` compares two flavors, or one flavor under two environment files: give B or two --env-file"
        );
        return 2;
    }
    let config = |flavor: &str| ConfigArgs {
        file: file.clone(),
        flavor: Some(flavor.to_owned()),
        inherit: args.inherit,
    };
    let Some((source, left)) = ctx.resolve(&config(&args.a), &[], &left_env.0) else {
        return 1;
    };
    let Some((_, right)) = ctx.resolve(&config(&b), &[], &right_env.0) else {
        return 1;
    };
    let label = |flavor: &str, env: &Option<String>| match env {
        Some(e) => format!("`{flavor}` with {e}"),
        None => format!("`{flavor}`"),
    };
    let (ll, rl) = (label(&args.a, &left_env.1), label(&b, &right_env.1));
    let changes = diff::diff(&left, &right, &source, args.show_secrets);
    let text = match args.output.format {
        TextOrJson::Json => {
            let side = |s: &Option<Side>| {
                s.as_ref()
                    .map(|s| json!({ "value": typed::to_json_value(&s.value), "origin": s.origin }))
            };
            let list: Vec<_> = changes
                .iter()
                .map(|c| json!({ "key": c.key, "left": side(&c.left), "right": side(&c.right) }))
                .collect();
            serde_json::to_string_pretty(&json!({
                "file": source.name(),
                "left": ll,
                "right": rl,
                "changes": list,
            }))
            .expect("JSON serialises")
                + "\n"
        }
        TextOrJson::Text => text(&changes, &ll, &rl, source.name()),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    u8::from(!changes.is_empty())
}

fn shown(v: &Value) -> String {
    match v {
        Value::Str(s) => render::yaml_string(s),
        other => render::to_json(other),
    }
}

fn text(changes: &[Change], left: &str, right: &str, file: &str) -> String {
    let mut out = format!(
        "{left} → {right} in {file}: {} key{} differ{}\n",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if changes.len() == 1 { "s" } else { "" }
    );
    for c in changes {
        out.push('\n');
        let mark = match (&c.left, &c.right) {
            (Some(_), None) => "-",
            (None, Some(_)) => "+",
            _ => "~",
        };
        out.push_str(&format!("{mark} {}\n", c.key));
        for (name, side) in [(left, &c.left), (right, &c.right)] {
            match side {
                Some(s) => out.push_str(&format!(
                    "    {name}: {}\n        from {}\n",
                    shown(&s.value),
                    s.origin
                )),
                None => out.push_str(&format!("    {name}: (not set)\n")),
            }
        }
    }
    out
}
