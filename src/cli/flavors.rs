//! `regconf flavors`: every flavor of a file and how it inherits.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use serde_json::json;

use super::{ConfigArgs, Context, InheritArg};
use crate::config::Rule;
use crate::inspect::flavors::{self, Flavor, Inheritance};

/// Arguments of `regconf flavors`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Show every flavor of a file and how it inherits: the sections each merges \
with `<<` (by anchor), and `common` when it is the implicit base, drawn as a tree. A flavor \
that merges several sections is drawn under the first, and names the others."
)]
pub(super) struct Args {
    /// The configuration file [default: $DOCKER_REGISTRY_CONFIG, else
    /// ./config.yml, else the bundled default]
    file: Option<PathBuf>,
    /// How flavors inherit (see `render --help`)
    #[arg(long, value_enum, default_value_t = InheritArg::Auto)]
    inherit: InheritArg,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Tree)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Tree,
    Json,
}

/// Runs `regconf flavors`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let config = ConfigArgs {
        file: args.file.clone(),
        flavor: None,
        inherit: args.inherit,
    };
    let source = match ctx.source(&config) {
        Ok(s) => s,
        Err(d) => {
            ctx.report(&[d]);
            return 1;
        }
    };
    let inh = match flavors::inheritance(std::sync::Arc::clone(&source), args.inherit.into()) {
        Ok(i) => i,
        Err(diags) => {
            ctx.report(&diags);
            return 1;
        }
    };
    let text = match args.format {
        Format::Json => {
            let list: Vec<_> = inh
                .flavors
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "anchor": f.anchor,
                        "line": source.line_col(f.at.start).0,
                        "merges": f.parents.iter().map(|p| json!({
                            "anchor": p.anchor,
                            "flavor": p.flavor,
                            "line": source.line_col(p.merge_key.start).0,
                        })).collect::<Vec<_>>(),
                        "implicit_common": f.implicit_common,
                        "variable": f.variable,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&json!({
                "file": source.name(),
                "rule": match inh.rule { Rule::Explicit => "explicit", Rule::Implicit => "implicit" },
                "flavors": list,
            }))
            .expect("JSON serialises")
                + "\n"
        }
        Format::Tree => tree(&inh, source.name()),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

/// The parent a flavor is drawn under: its first merged section, or
/// `common` under the implicit rule.
fn parent_of(f: &Flavor) -> Option<String> {
    match f.parents.first() {
        Some(p) => Some(p.flavor.clone().unwrap_or_else(|| format!("*{}", p.anchor))),
        None if f.implicit_common => Some("common".to_owned()),
        None => None,
    }
}

fn tree(inh: &Inheritance, file: &str) -> String {
    let rule = match (inh.rule, inh.rule_was_auto) {
        (Rule::Explicit, _) => "flavors share settings through merge keys (`<<`)".to_owned(),
        (Rule::Implicit, true) => {
            "`common` is the implicit base of every flavor (the file has no merge key)".to_owned()
        }
        (Rule::Implicit, false) => "`common` is the implicit base of every flavor".to_owned(),
    };
    let mut out = format!("{file}: {} flavors; {rule}\n\n", inh.flavors.len());
    let names: Vec<&str> = inh.flavors.iter().map(|f| f.name.as_str()).collect();
    // Anchors that are not flavors but are merged get a node of their own.
    let mut nodes: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    for f in &inh.flavors {
        for p in &f.parents {
            if p.flavor.is_none() && !nodes.contains(&format!("*{}", p.anchor)) {
                nodes.push(format!("*{}", p.anchor));
            }
        }
    }
    let parent = |n: &str| inh.get(n).and_then(parent_of);
    let children = |n: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|c| parent(c).as_deref() == Some(n) && c.as_str() != n)
            .cloned()
            .collect()
    };
    let label = |n: &str| -> String {
        let Some(f) = inh.get(n) else {
            return format!("{n} (an anchored mapping)");
        };
        let mut l = n.to_owned();
        if let Some(a) = &f.anchor
            && a != n
        {
            l.push_str(&format!(" (&{a})"));
        }
        let more: Vec<String> = f
            .parents
            .iter()
            .skip(1)
            .map(|p| format!("*{}", p.anchor))
            .collect();
        if !more.is_empty() {
            l.push_str(&format!(", also merges {}", more.join(", ")));
        }
        if f.parents.is_empty() && f.implicit_common {
            l.push_str(" (implicit)");
        }
        if let Some(v) = &f.variable {
            l.push_str(&format!(" (the whole section from `${v}`)"));
        }
        l
    };
    let roots: Vec<String> = nodes
        .iter()
        .filter(|n| parent(n).is_none_or(|p| !nodes.contains(&p) || p == **n))
        .cloned()
        .collect();
    let mut seen = std::collections::HashSet::new();
    for root in &roots {
        draw(&mut out, root, "", None, &children, &label, &mut seen);
    }
    out
}

fn draw(
    out: &mut String,
    node: &str,
    prefix: &str,
    last: Option<bool>,
    children: &dyn Fn(&str) -> Vec<String>,
    label: &dyn Fn(&str) -> String,
    seen: &mut std::collections::HashSet<String>,
) {
    let (branch, next) = match last {
        None => ("", String::new()),
        Some(true) => ("└── ", format!("{prefix}    ")),
        Some(false) => ("├── ", format!("{prefix}│   ")),
    };
    out.push_str(&format!("{prefix}{branch}{}\n", label(node)));
    if !seen.insert(node.to_owned()) {
        return;
    }
    let kids = children(node);
    for (i, k) in kids.iter().enumerate() {
        draw(
            out,
            k,
            &next,
            Some(i + 1 == kids.len()),
            children,
            label,
            seen,
        );
    }
}
