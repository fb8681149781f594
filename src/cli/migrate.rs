//! `regconf migrate-v1`: converts the v1 images a docker-registry left in a
//! flavor's storage into images today's clients pull (see
//! `registry::migrate` for what is written and why). This module resolves
//! the flavors, shows progress (a bar on a terminal, a line per tag
//! otherwise, on stderr) and prints the summary (stdout).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use super::{ConfigArgs, Context, TextOrJson, TextOrJsonArgs};
use crate::config::typed;
use crate::diagnostics::Diagnostic;
use crate::model;
use crate::registry::migrate::{self, Event, Options, Outcome, Summary, TagReport};

/// Arguments of `regconf migrate-v1`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Convert the images docker-registry 0.9 stored (the v1 layout under the \
flavor's storage: images/<id>/{json,layer,ancestry,_checksum}, repositories/<ns>/<repo>/tag_<tag>) \
into Docker schema 2 images, one per tag, written as a push would write them. The v1 data is \
only read. `library/<name>` becomes `<name>`. Broken images (still uploading, missing layer, \
ancestry not matching the parents, checksum mismatch) are reported and their tags skipped; the \
exit status is then 1. A second run converts nothing twice, also after an interrupted run."
)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Write into this flavor's storage (same file) instead of FLAVOR's own
    #[arg(long, value_name = "FLAVOR")]
    to: Option<String>,
    /// Read and check everything, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Convert only this repository (repeatable; `library/x` or `x`)
    #[arg(long = "repository", value_name = "NAME")]
    repositories: Vec<String>,
    #[command(flatten)]
    format: TextOrJsonArgs,
}

fn model_of(ctx: &Context, args: &ConfigArgs) -> Option<model::Config> {
    let (source, resolved) = ctx.resolve(args, &[], &ctx.env)?;
    let (model, diags) = typed::to_model(&resolved, &source, typed::Mode::Environment(&ctx.env));
    let errors: Vec<Diagnostic> = diags.into_iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        ctx.report(&errors);
        return None;
    }
    Some(model)
}

/// Runs `regconf migrate-v1`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let Some(from) = model_of(ctx, &args.config) else {
        return 1;
    };
    let to = match &args.to {
        Some(f) if *f != ctx.flavor(&args.config) => {
            let mut c = args.config.clone();
            c.flavor = Some(f.clone());
            match model_of(ctx, &c) {
                Some(m) => Some(m),
                None => return 1,
            }
        }
        _ => None,
    };
    let options = Options {
        dry_run: args.dry_run,
        repositories: args.repositories.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.report(&[failed(format!("cannot start the runtime: {e}"))]);
            return 1;
        }
    };
    let progress = Arc::new(Progress::new(std::io::stderr().is_terminal()));
    let events = {
        let p = Arc::clone(&progress);
        Arc::new(move |e: Event| p.event(e))
    };
    let result = runtime.block_on(migrate::run(&from, to.as_ref(), &options, events));
    progress.finish();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            ctx.report(&[failed(e.to_string())]);
            return 1;
        }
    };
    let text = match args.format.format {
        TextOrJson::Text => text(&summary, args.dry_run),
        TextOrJson::Json => format!("{:#}\n", to_json(&summary, args.dry_run)),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    let skipped = summary
        .tags
        .iter()
        .any(|t| matches!(t.outcome, Outcome::Skipped { .. }));
    u8::from(skipped)
}

fn failed(message: String) -> Diagnostic {
    Diagnostic::error("regconf::migrate::failed", message)
        .help("check the storage settings of both flavors with `regconf validate --flavor`")
}

/// One line per tag (the plain progress and the text summary).
fn tag_line(t: &TagReport) -> String {
    let name = format!("{}:{}", t.repository, t.tag);
    match &t.outcome {
        Outcome::Converted { digest, layers } => format!(
            "converted {name} -> {}:{} {digest} ({layers} layers)",
            t.target, t.tag
        ),
        Outcome::Unchanged { digest } => {
            format!(
                "already converted {name} -> {}:{} {digest}",
                t.target, t.tag
            )
        }
        Outcome::Skipped { image, reason } => {
            format!("skipped {name}: image `{image}`: {reason}")
        }
    }
}

fn count(s: &Summary, f: impl Fn(&Outcome) -> bool) -> usize {
    s.tags.iter().filter(|t| f(&t.outcome)).count()
}

fn text(s: &Summary, dry_run: bool) -> String {
    let mut out = String::new();
    if dry_run {
        out.push_str("dry run: nothing was written\n");
    }
    out.push_str(&format!(
        "tags: {} converted, {} already converted, {} skipped\n",
        count(s, |o| matches!(o, Outcome::Converted { .. })),
        count(s, |o| matches!(o, Outcome::Unchanged { .. })),
        count(s, |o| matches!(o, Outcome::Skipped { .. })),
    ));
    out.push_str(&format!(
        "layers: {} converted, {} already converted\n",
        s.layers_converted, s.layers_reused
    ));
    out.push_str(&format!(
        "bytes: {} read, {} written\n",
        s.bytes_read, s.bytes_written
    ));
    for t in &s.tags {
        if matches!(t.outcome, Outcome::Skipped { .. }) {
            out.push_str(&tag_line(t));
            out.push('\n');
        }
    }
    for (id, sum) in &s.unverified {
        out.push_str(&format!(
            "not verified: image `{id}` has no sha256 checksum (`{sum}`)\n"
        ));
    }
    out
}

fn to_json(s: &Summary, dry_run: bool) -> Value {
    let tags: Vec<Value> = s
        .tags
        .iter()
        .map(|t| {
            let mut v = json!({"repository": t.repository, "target": t.target, "tag": t.tag});
            match &t.outcome {
                Outcome::Converted { digest, layers } => {
                    v["outcome"] = "converted".into();
                    v["digest"] = digest.clone().into();
                    v["layers"] = (*layers).into();
                }
                Outcome::Unchanged { digest } => {
                    v["outcome"] = "already_converted".into();
                    v["digest"] = digest.clone().into();
                }
                Outcome::Skipped { image, reason } => {
                    v["outcome"] = "skipped".into();
                    v["image"] = image.clone().into();
                    v["reason"] = reason.to_string().into();
                }
            }
            v
        })
        .collect();
    let unverified: Vec<Value> = s
        .unverified
        .iter()
        .map(|(id, sum)| json!({"image": id, "checksum": sum}))
        .collect();
    json!({
        "dry_run": dry_run,
        "tags": tags,
        "layers_converted": s.layers_converted,
        "layers_already_converted": s.layers_reused,
        "bytes_read": s.bytes_read,
        "bytes_written": s.bytes_written,
        "unverified": unverified,
    })
}

/// The progress display: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<(u64, u64)>,
    started: Instant,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} tags  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            indicatif::ProgressBar::new(0).with_style(style)
        });
        Self {
            bar,
            state: Mutex::new((0, 0)),
            started: Instant::now(),
        }
    }

    fn event(&self, e: Event) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Tags(n) => {
                if let Some(b) = &self.bar {
                    b.set_length(n as u64);
                }
            }
            Event::Layer(repo, id, size) => {
                st.0 += 1;
                match &self.bar {
                    Some(_) => {}
                    None => eprintln!("layer {id} of {repo} ({size} bytes)"),
                }
            }
            Event::Read(n) => st.1 += n,
            Event::Tag(t) => match &self.bar {
                Some(b) => {
                    if matches!(t.outcome, Outcome::Skipped { .. }) {
                        b.println(tag_line(&t));
                    }
                    b.inc(1);
                }
                None => eprintln!("{}", tag_line(&t)),
            },
        }
        if let Some(b) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{} layers, {} read, {}/s",
                st.0,
                indicatif::HumanBytes(st.1),
                indicatif::HumanBytes((st.1 as f64 / secs) as u64)
            ));
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
