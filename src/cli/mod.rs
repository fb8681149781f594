//! The command-line front end: the only place that reads the process
//! environment, opens the configuration file for a command, and prints.
//!
//! Each subcommand lives in its own module and returns an exit status:
//! 0 success, 1 the configuration has errors, 2 usage (clap's own).

mod completions;
mod diff;
mod env;
mod explain;
mod export;
mod flavors;
mod gc;
mod healthcheck;
mod init;
mod migrate;
mod render;
mod schema;
mod serve;
mod validate;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Env, Inherit, Resolved, Source, overrides};
use crate::diagnostics::{Diagnostic, report};

/// The bundled default configuration (`flavors/default.yml`).
pub const BUNDLED: &str = include_str!("../../flavors/default.yml");
/// How the bundled file is named in messages.
pub(crate) const BUNDLED_NAME: &str = "<bundled>/default.yml";

/// Environment variables regconf reads, all in one place.
pub(crate) mod vars {
    /// The configuration file, when no FILE is given (relative to the current
    /// directory, unlike docker-registry, which resolved it against its
    /// install directory).
    pub(crate) const DOCKER_REGISTRY_CONFIG: &str = "DOCKER_REGISTRY_CONFIG";
    /// The flavor, when `--flavor` is not given.
    pub(crate) const SETTINGS_FLAVOR: &str = "SETTINGS_FLAVOR";
    /// Disables colour when set.
    pub(crate) const NO_COLOR: &str = "NO_COLOR";
    /// Terminal width for diagnostics.
    pub(crate) const COLUMNS: &str = "COLUMNS";
}

#[derive(Debug, Parser)]
#[command(
    after_help = "Secrets (keys, passwords, tokens) are masked in `explain`, `env` and `diff` unless --show-secrets; `render` and `export` print them.",
    name = "regconf",
    version,
    about = "Validate, render and serve docker-registry style configuration files",
    long_about = None
)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the fully resolved configuration of one flavor.
    #[command(long_about = render::LONG_ABOUT)]
    Render(render::Args),
    /// Check a configuration file and report every problem.
    Validate(validate::Args),
    /// Print the JSON Schema of a configuration file or of one flavor.
    Schema(schema::Args),
    /// Run a container registry configured by one flavor.
    Serve(serve::Args),
    /// Exit 0 if a running `serve` answers `GET /v2/` (for HEALTHCHECK).
    Healthcheck(healthcheck::Args),
    /// Show where a setting's value comes from: file, merge keys, variable.
    Explain(explain::Args),
    /// List the environment variables a flavor reads.
    Env(env::Args),
    /// Compare two flavors, or one flavor under two environment files.
    Diff(diff::Args),
    /// Show every flavor of a file and how it inherits.
    Flavors(flavors::Args),
    /// Write the bundled configuration file, to start editing.
    Init(init::Args),
    /// Write an equivalent configuration for another registry.
    Export(export::Args),
    /// Convert the v1 images a docker-registry left in storage into images today's clients pull.
    #[command(name = "migrate-v1")]
    MigrateV1(migrate::Args),
    /// Remove blobs and links no kept manifest references (safe while serving).
    Gc(gc::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
    /// Print the manual page (roff).
    Man,
}

/// `--set KEY=VALUE` overrides, for the commands that resolve a flavor.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct SetArgs {
    /// Override a setting after the flavor is resolved (repeatable): a dotted
    /// key, the value typed as YAML (`--set cache.port=6380`)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

// `--format` of the commands that print text for people or JSON for
// programs. (A plain comment: clap would read a doc comment as help.)
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct TextOrJsonArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TextOrJson {
    Text,
    Json,
}

/// Whether a positional argument names a configuration file rather than a
/// key or a flavor (`.yml`/`.yaml`, or a path with `/`).
pub(crate) fn looks_like_file(s: &str) -> bool {
    s.ends_with(".yml") || s.ends_with(".yaml") || s.contains('/')
}

/// Where the configuration comes from: FILE, flavor and inheritance rule.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArgs {
    /// The configuration file [default: $DOCKER_REGISTRY_CONFIG, else
    /// ./config.yml, else the bundled default]
    pub file: Option<PathBuf>,
    /// The flavor (section) to use [default: $SETTINGS_FLAVOR, else `dev`]
    #[arg(long, short = 'f')]
    pub flavor: Option<String>,
    /// How flavors inherit: `auto` treats `common` as every flavor's base
    /// when the file has no merge key (`<<`), as docker-registry 0.6 did
    #[arg(long, value_enum, default_value_t = InheritArg::Auto)]
    pub inherit: InheritArg,
}

/// `--inherit` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum InheritArg {
    /// Implicit when the file has no merge key, explicit otherwise.
    Auto,
    /// Only merge keys share settings (docker-registry 0.8+).
    Explicit,
    /// `common` is the shallow base of every flavor (0.6/0.7).
    Implicit,
}

impl From<InheritArg> for Inherit {
    fn from(a: InheritArg) -> Inherit {
        match a {
            InheritArg::Auto => Inherit::Auto,
            InheritArg::Explicit => Inherit::Explicit,
            InheritArg::Implicit => Inherit::Implicit,
        }
    }
}

/// What every command gets: the environment snapshot and output settings.
pub(crate) struct Context {
    /// The process environment, read once.
    pub env: Env,
    /// How to draw diagnostics.
    pub style: report::Style,
}

impl Context {
    /// Prints diagnostics to stderr.
    pub(crate) fn report(&self, diags: &[Diagnostic]) {
        let text = report::human_all(diags, self.style);
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// The selected flavor: `--flavor`, else `SETTINGS_FLAVOR`, else `dev`.
    pub(crate) fn flavor(&self, args: &ConfigArgs) -> String {
        args.flavor
            .clone()
            .or_else(|| self.env.get(vars::SETTINGS_FLAVOR).map(str::to_owned))
            .unwrap_or_else(|| "dev".to_owned())
    }

    /// Reads the file, resolves the flavor in `env` and applies `--set`;
    /// problems are reported and `None` returned.
    pub(crate) fn resolve(
        &self,
        args: &ConfigArgs,
        sets: &[String],
        env: &Env,
    ) -> Option<(Arc<Source>, Resolved)> {
        let source = match self.source(args) {
            Ok(s) => s,
            Err(d) => {
                self.report(&[d]);
                return None;
            }
        };
        let overrides = match overrides::parse_all(sets) {
            Ok(o) => o,
            Err(diags) => {
                self.report(&diags);
                return None;
            }
        };
        let flavor = self.flavor(args);
        let mut resolved =
            match config::load(Arc::clone(&source), &flavor, args.inherit.into(), env) {
                Ok(r) => r,
                Err(diags) => {
                    self.report(&diags);
                    return None;
                }
            };
        if let Err(diags) = overrides::apply(&mut resolved, &overrides) {
            self.report(&diags);
            return None;
        }
        Some((source, resolved))
    }

    /// Reads the configuration file chosen by `args` and the environment.
    pub(crate) fn source(&self, args: &ConfigArgs) -> Result<Arc<Source>, Diagnostic> {
        let path = match &args.file {
            Some(p) => p.clone(),
            None => match self.env.get(vars::DOCKER_REGISTRY_CONFIG) {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ if Path::new("config.yml").exists() => PathBuf::from("config.yml"),
                _ => return Ok(Source::new(BUNDLED_NAME, BUNDLED)),
            },
        };
        read_file(&path)
    }
}

/// Reads a configuration file as text (a regular file of at most
/// [`CONFIG_LIMIT`](crate::config::source::CONFIG_LIMIT) bytes).
pub(crate) fn read_file(path: &Path) -> Result<Arc<Source>, Diagnostic> {
    use crate::config::source::{CONFIG_LIMIT, ReadError, read_capped, size_text};
    let shown = path.display().to_string();
    let bytes = read_capped(path, CONFIG_LIMIT).map_err(|e| match e {
        ReadError::TooLarge(limit) => Diagnostic::error(
            "regconf::file::too_large",
            format!("cannot read `{shown}`: {}", e.reason()),
        )
        .help(format!("a configuration file holds at most {}; check the path", size_text(limit))),
        _ => Diagnostic::error(
            "regconf::file::unreadable",
            format!("cannot read `{shown}`: {}", e.reason()),
        )
        .help("give the path of the configuration file, or omit it to use $DOCKER_REGISTRY_CONFIG, ./config.yml or the bundled default"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Diagnostic::error(
            "regconf::file::not_utf8",
            format!(
                "`{shown}` is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .help("save the file as UTF-8")
    })?;
    Ok(Source::new(shown, text))
}

/// The command-line definition (for completions and the manual page).
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs regconf with the process arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && env.get(vars::NO_COLOR).is_none(),
    };
    let width = env
        .get(vars::COLUMNS)
        .and_then(|c| c.parse().ok())
        .unwrap_or(80);
    let ctx = Context {
        env,
        style: report::Style { color, width },
    };
    let status = match cli.command {
        Command::Render(args) => render::run(&ctx, &args),
        Command::Validate(args) => validate::run(&ctx, &args),
        Command::Schema(args) => schema::run(&args),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Healthcheck(args) => healthcheck::run(&ctx, &args),
        Command::Explain(args) => explain::run(&ctx, &args),
        Command::Env(args) => env::run(&ctx, &args),
        Command::Diff(args) => diff::run(&ctx, &args),
        Command::Flavors(args) => flavors::run(&ctx, &args),
        Command::Init(args) => init::run(&ctx, &args),
        Command::Export(args) => export::run(&ctx, &args),
        Command::MigrateV1(args) => migrate::run(&ctx, &args),
        Command::Gc(args) => gc::run(&ctx, &args),
        Command::Completions(args) => completions::run(&args, command()),
        Command::Man => completions::man(command()),
    };
    ExitCode::from(status)
}
