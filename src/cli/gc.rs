//! `regconf gc`: collects garbage once on the storage of one flavor and
//! prints what it removed (or, with `--dry-run`, would remove).
//!
//! It is safe while `serve` processes run on the same storage (see
//! `src/registry/store/gc/GC.md`); this module only resolves the flavor,
//! runs the registry's collector and prints its report. Exit 0 when the run
//! met no problem, 1 otherwise.

use std::time::Duration;

use super::{ConfigArgs, Context, SetArgs, TextOrJson, TextOrJsonArgs};
use crate::config::typed;
use crate::diagnostics::Diagnostic;
use crate::registry::{self, GcOptions, GcReport, Tally};

/// Arguments of `regconf gc`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    set: SetArgs,
    /// Remove nothing; report what would be removed
    #[arg(long)]
    dry_run: bool,
    /// Never remove what was modified less than this many seconds ago
    /// [default: the flavor's `gc.grace_secs`, else 3600]
    #[arg(long, value_name = "SECONDS")]
    grace: Option<u64>,
    /// Also delete manifests that no tag reaches (with their revision links)
    #[arg(long)]
    untagged: bool,
    #[command(flatten)]
    format: TextOrJsonArgs,
}

/// Runs `regconf gc`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let Some((source, resolved)) = ctx.resolve(&args.config, &args.set.set, &ctx.env) else {
        return 1;
    };
    let (model, diags) = typed::to_model(&resolved, &source, typed::Mode::Environment(&ctx.env));
    let errors: Vec<Diagnostic> = diags.into_iter().filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        ctx.report(&errors);
        return 1;
    }
    // The collector logs its phases (`loglevel: debug`) and oddities it
    // meets (a linked manifest without content) through `tracing`.
    registry::init_logging(&model);
    let options = GcOptions {
        grace: Duration::from_secs(args.grace.unwrap_or(model.gc.grace_secs)),
        untagged: args.untagged,
        dry_run: args.dry_run,
        upload_max_age: Duration::from_secs(model.upload_purge.max_age_secs),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.report(&[Diagnostic::error(
                "regconf::gc::failed",
                format!("cannot start the runtime: {e}"),
            )]);
            return 1;
        }
    };
    let report = match runtime.block_on(registry::gc(&model, options)) {
        Ok(r) => r,
        Err(e @ registry::RegistryError::Gc(_)) => {
            ctx.report(&[
                Diagnostic::error("regconf::gc::failed", e.to_string()).help(
                    "check the storage settings of this flavor with `regconf validate --flavor`",
                ),
            ]);
            return 1;
        }
        Err(e @ registry::RegistryError::GcBusy { .. }) => {
            ctx.report(&[Diagnostic::error("regconf::gc::failed", e.to_string())
                .help("wait for the other run to end; a lease left by a process that died expires by itself")]);
            return 1;
        }
        Err(e) => {
            ctx.report(&[super::serve::start_problem(
                &e,
                &source,
                &resolved.provenance,
            )]);
            return 1;
        }
    };
    match args.format.format {
        TextOrJson::Text => print!("{}", text(&report, options)),
        TextOrJson::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
    }
    if report.errors.is_empty() {
        return 0;
    }
    let d = Diagnostic::error(
        "regconf::gc::failed",
        format!(
            "garbage collection met {} problem{}: {}",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" },
            report.errors.join("; ")
        ),
    )
    .help("nothing referenced was removed; fix the storage problem and run `regconf gc` again");
    ctx.report(&[d]);
    1
}

fn tally(t: Tally) -> String {
    format!("{} ({} bytes)", t.count, t.bytes)
}

/// The text report.
fn text(r: &GcReport, options: GcOptions) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    if r.dry_run {
        out.push_str("dry run: nothing was removed\n");
    }
    out.push_str(&format!("{verb} blobs: {}\n", tally(r.removed.blobs)));
    out.push_str(&format!(
        "{verb} untagged manifests: {}\n",
        tally(r.removed.manifests)
    ));
    out.push_str(&format!(
        "{verb} layer links: {}\n",
        r.removed.layer_links.count
    ));
    out.push_str(&format!("{verb} uploads: {}\n", tally(r.removed.uploads)));
    out.push_str(&format!(
        "kept back (younger than {} s): blobs {}, manifests {}\n",
        options.grace.as_secs(),
        tally(r.kept_back.blobs),
        r.kept_back.manifests.count
    ));
    if r.restored > 0 {
        out.push_str(&format!(
            "put back for pushes during the run: {}\n",
            r.restored
        ));
    }
    out
}
