//! `regconf explain`: where a setting's value comes from.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::{ConfigArgs, Context, SetArgs, TextOrJson, TextOrJsonArgs, looks_like_file};
use crate::config::env::Given;
use crate::config::origin::Injected;
use crate::config::{Value, render};
use crate::inspect::explain::{self, Explanation, Site};

/// Arguments of `regconf explain`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Show where the value of a setting comes from, most specific first: the value; \
the `--set` that gave it; where it is written (file:line:col, with the line); each merge key \
(`<<`) it came through; the `_env:` variable and whether its value or its default gave it; a \
note when YAML 1.1 typing changed the text (`0755` is 493, `no` is false); and the sections \
whose value for it lost.\n\nWithout KEY, every setting of the flavor is explained. A KEY that \
ends in `.yml` or `.yaml`, or holds a `/`, is taken as FILE.\n\nSecrets are masked unless \
--show-secrets."
)]
pub(super) struct Args {
    /// A dotted key (`storage_path`, `cache.host`) [default: every key]
    key: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    set: SetArgs,
    /// Print secrets (keys, passwords) as they are
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    output: TextOrJsonArgs,
}

/// Runs `regconf explain`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let mut config = args.config.clone();
    let mut key = args.key.clone();
    if config.file.is_none() && key.as_deref().is_some_and(looks_like_file) {
        config.file = key.take().map(PathBuf::from);
    }
    let Some((source, resolved)) = ctx.resolve(&config, &args.set.set, &ctx.env) else {
        return 1;
    };
    let list = match explain::explain(&resolved, &source, key.as_deref(), args.show_secrets) {
        Ok(l) => l,
        Err(d) => {
            ctx.report(&[d]);
            return 1;
        }
    };
    let lineage = explain::lineage(&source, &resolved);
    let text = match args.output.format {
        TextOrJson::Json => {
            let value = json!({
                "file": source.name(),
                "flavor": resolved.flavor,
                "inherits": lineage,
                "keys": list.iter().map(to_json).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&value).expect("JSON serialises") + "\n"
        }
        TextOrJson::Text => {
            let mut out = format!(
                "flavor `{}` of {}: {}\n",
                resolved.flavor,
                source.name(),
                lineage.join(" → ")
            );
            for e in &list {
                out.push('\n');
                out.push_str(&to_text(e));
            }
            out
        }
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

fn shown(v: &Value) -> String {
    match v {
        Value::Str(s) if s == crate::model::MASK => s.clone(),
        Value::Str(s) => render::yaml_string(s),
        other => render::to_json(other),
    }
}

fn site_lines(out: &mut String, label: &str, site: &Site) {
    out.push_str(&format!("  {label:<10}{}\n", site.location()));
    out.push_str(&format!("  {:<10}{:>5} | {}\n", "", site.line, site.text));
}

fn to_text(e: &Explanation) -> String {
    let mut out = format!("{} = {}", e.key, shown(&e.value));
    if e.secret {
        out.push_str("  (secret)");
    }
    out.push('\n');
    if let Some(cli) = &e.cli {
        out.push_str(&format!(
            "  {:<10}the command line: `{}`\n",
            "set by",
            cli_shown(e, cli)
        ));
    }
    match e.injected {
        Some(Injected::Flavor) => {
            out.push_str(&format!(
                "  {:<10}the loader: always the selected flavor's name\n",
                "set by"
            ));
        }
        Some(Injected::IndexEndpointStripped) => {
            out.push_str(&format!(
                "  {:<10}leading and trailing `/` were stripped by the loader\n",
                "note"
            ));
        }
        None => {}
    }
    if let Some(site) = &e.written {
        site_lines(&mut out, "written", site);
    }
    if let (None, Some(v)) = (&e.written, &e.variable) {
        site_lines(&mut out, "written", &v.at);
    }
    if let Some(section) = &e.section {
        out.push_str(&format!("  {:<10}section `{section}`\n", "in"));
    }
    if !e.merges.is_empty() {
        let mut chain = String::new();
        for m in &e.merges {
            chain.push_str(&format!(
                "{} → `<<: *{}` (line {}) → ",
                m.from, m.anchor, m.at.line
            ));
        }
        chain.push_str(e.section.as_deref().unwrap_or("?"));
        out.push_str(&format!("  {:<10}{chain}\n", "merged"));
    }
    if e.implicit_common {
        out.push_str(&format!(
            "  {:<10}`common`, the implicit base of every flavor\n",
            "from"
        ));
    }
    if let Some(v) = &e.variable {
        let line = match &v.given {
            Given::Set(value) => format!("`{}` is set to `{}`", v.name, value.escape_debug()),
            Given::Default(d) => format!("`{}` is unset: the default `{}` gave it", v.name, d),
            Given::Unset => format!("`{}` is unset and has no default: null", v.name),
        };
        out.push_str(&format!("  {:<10}{line}\n", "variable"));
        if let (Given::Set(_), Some(d)) = (&v.given, &v.default) {
            out.push_str(&format!("  {:<10}(its default, `{d}`, is not used)\n", ""));
        }
    }
    if let Some(v) = &e.inside_variable {
        out.push_str(&format!("  {:<10}inside the YAML text of `{v}`\n", "from"));
    }
    if let Some(t) = &e.typed_from {
        out.push_str(&format!(
            "  {:<10}YAML 1.1 reads the text `{t}` as {} `{}`\n",
            "typed",
            article(e.value.type_name()),
            render::to_json(&e.value)
        ));
    }
    for (section, site) in &e.overridden {
        out.push_str(&format!(
            "  {:<10}section `{section}`, {}\n",
            "overrides",
            site.location()
        ));
        out.push_str(&format!("  {:<10}{:>5} | {}\n", "", site.line, site.text));
    }
    out
}

fn cli_shown(e: &Explanation, cli: &str) -> String {
    if e.secret && matches!(e.value, Value::Str(ref s) if s == crate::model::MASK) {
        let key = cli.split_once('=').map_or(cli, |(k, _)| k);
        format!("{key}={}", crate::model::MASK)
    } else {
        cli.to_owned()
    }
}

fn article(t: &str) -> String {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {t}")
    } else {
        format!("a {t}")
    }
}

fn site_json(s: &Site) -> serde_json::Value {
    json!({ "file": s.file, "line": s.line, "column": s.column, "text": s.text })
}

fn to_json(e: &Explanation) -> serde_json::Value {
    json!({
        "key": e.key,
        "value": crate::config::typed::to_json_value(&e.value),
        "secret": e.secret,
        "set_by": e.cli.as_ref().map(|c| cli_shown(e, c)),
        "injected": e.injected.map(|i| match i {
            Injected::Flavor => "flavor",
            Injected::IndexEndpointStripped => "index_endpoint_stripped",
        }),
        "written": e.written.as_ref().map(site_json),
        "section": e.section,
        "merges": e.merges.iter().map(|m| json!({
            "from": m.from, "anchor": m.anchor, "at": site_json(&m.at),
        })).collect::<Vec<_>>(),
        "implicit_common": e.implicit_common,
        "variable": e.variable.as_ref().map(|v| json!({
            "name": v.name,
            "given": match v.given { Given::Set(_) => "set", Given::Default(_) => "default", Given::Unset => "unset" },
            "text": match &v.given { Given::Unset => None, g => Some(g.text()) },
            "default": v.default,
            "at": site_json(&v.at),
        })),
        "inside_variable": e.inside_variable,
        "typed_from": e.typed_from,
        "overrides": e.overridden.iter().map(|(s, site)| json!({
            "section": s, "at": site_json(site),
        })).collect::<Vec<_>>(),
    })
}
