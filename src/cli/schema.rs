//! `regconf schema`: print the JSON Schema of a configuration file or of one
//! resolved flavor, exactly as committed under `schemas/`.

use std::io::Write;

use crate::model::schema;

/// Arguments of `regconf schema`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Print the JSON Schema (draft 2020-12) of a configuration file (the default) \
or of one resolved flavor. The same text is committed as schemas/regconf-file.schema.json and \
schemas/regconf-flavor.schema.json; editors use the file schema through yaml-language-server \
(`# yaml-language-server: $schema=...`)."
)]
pub(super) struct Args {
    /// The schema of a whole file: flavor name → flavor; any value may be an
    /// `_env:` string (the default)
    #[arg(long, conflicts_with = "flavor")]
    file: bool,
    /// The schema of one resolved flavor, as `render --format json` prints it
    #[arg(long)]
    flavor: bool,
}

/// Runs `regconf schema`.
pub(super) fn run(args: &Args) -> u8 {
    let value = if args.flavor {
        schema::flavor()
    } else {
        schema::file()
    };
    let _ = std::io::stdout().write_all(schema::to_text(&value).as_bytes());
    0
}
