//! `regconf export`: a flavor as another registry's configuration.

use std::io::Write;

use clap::ValueEnum;

use super::{ConfigArgs, Context, SetArgs};
use crate::config::typed;
use crate::export;

/// Arguments of `regconf export`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Write an equivalent configuration of one flavor for another registry. \
`--to distribution`: the CNCF distribution registry's `version: 0.1` YAML (storage \
filesystem/s3/gcs/azure/swift/oss, http address, log level, CORS headers, upload purging), \
with a `#` comment for each setting that has no equivalent there.\n\nThe address is --listen, \
else $REGISTRY_HOST:$REGISTRY_PORT, else 127.0.0.1:5000, as for `serve`. Like `render`, the \
output feeds a program, so it holds secrets as they are."
)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    set: SetArgs,
    /// The registry to configure
    #[arg(long, value_enum)]
    to: Target,
    /// Address to listen on [default: $REGISTRY_HOST:$REGISTRY_PORT, else
    /// 127.0.0.1:5000]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    /// The CNCF distribution registry (`registry:2`, Debian's `docker-registry`)
    Distribution,
}

/// Runs `regconf export`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let Some((source, resolved)) = ctx.resolve(&args.config, &args.set.set, &ctx.env) else {
        return 1;
    };
    let (model, diags) = typed::to_model(&resolved, &source, typed::Mode::Environment(&ctx.env));
    // What `serve` cannot run is no concern of another registry's.
    let errors: Vec<_> = diags
        .into_iter()
        .filter(|d| d.is_error() && !d.code.starts_with("regconf::serve::"))
        .collect();
    if !errors.is_empty() {
        ctx.report(&errors);
        return 1;
    }
    let listen = match super::serve::listen_address(ctx, args.listen.as_deref()) {
        Ok(a) => a,
        Err(d) => {
            ctx.report(&[d]);
            return 1;
        }
    };
    match args.to {
        Target::Distribution => match export::distribution(&model, &listen.to_string()) {
            Ok(text) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                0
            }
            Err(d) => {
                ctx.report(&[d.in_flavor(&resolved.flavor)]);
                1
            }
        },
    }
}
