//! `regconf init`: write the bundled configuration file for editing.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BUNDLED, Context};
use crate::diagnostics::Diagnostic;

/// Arguments of `regconf init`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Write the bundled configuration file (every flavor, commented) for editing. \
The file starts with a yaml-language-server line that points at `regconf-file.schema.json` \
beside it; write that schema with `regconf schema --file > regconf-file.schema.json` for \
completion and checks in editors.\n\nAn existing file is never overwritten without --force, and \
the file is written whole or not at all (a temporary file in the same directory, then renamed)."
)]
pub(super) struct Args {
    /// Where to write it
    #[arg(default_value = "config.yml")]
    path: PathBuf,
    /// Overwrite an existing file
    #[arg(long)]
    force: bool,
}

/// The schema line of the bundled file points into regconf's repository;
/// a user's copy points at a schema beside it.
pub(super) fn text() -> String {
    let mut out = String::with_capacity(BUNDLED.len() + 200);
    for line in BUNDLED.lines() {
        if line.starts_with("# yaml-language-server: $schema=") {
            out.push_str("# yaml-language-server: $schema=regconf-file.schema.json\n");
            out.push_str(
                "# (write the schema beside this file for editor completion and checks:\n",
            );
            out.push_str("# `regconf schema --file > regconf-file.schema.json`)\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn write_problem(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(
        "regconf::file::unwritable",
        format!(
            "cannot write `{}`: {}",
            path.display(),
            e.to_string().to_lowercase()
        ),
    )
    .help("choose a path in a directory you can write to")
}

/// Runs `regconf init`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let path = &args.path;
    if path.exists() && !args.force {
        ctx.report(&[Diagnostic::error(
            "regconf::file::exists",
            format!("`{}` already exists", path.display()),
        )
        .help("pass --force to overwrite it, or give another path: `regconf init PATH`")]);
        return 1;
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "config.yml".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.regconf-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text().as_bytes())?;
        f.sync_all()?;
        drop(f);
        if args.force {
            std::fs::rename(&tmp, path)
        } else {
            // A hard link never replaces a file that appeared meanwhile.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            linked
        }
    })();
    match result {
        Ok(()) => {
            eprintln!(
                "wrote {}: edit it, then `regconf validate {}`",
                path.display(),
                path.display()
            );
            0
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            let d = if e.kind() == std::io::ErrorKind::AlreadyExists {
                Diagnostic::error(
                    "regconf::file::exists",
                    format!("`{}` already exists", path.display()),
                )
                .help("pass --force to overwrite it, or give another path: `regconf init PATH`")
            } else {
                write_problem(path, &e)
            };
            ctx.report(&[d]);
            1
        }
    }
}
