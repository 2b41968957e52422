//! contact-sync: keeps an SMS provider's address book in step with a CSV file.
//!
//! The pipeline, one module per stage: [`reader`] decodes and streams records,
//! [`columns`] maps the header to fields, [`normalize`] validates each row,
//! `scan` runs those in parallel and in order, `report` writes what
//! happened to every row. `sync` adds the planner, dispatcher and providers;
//! [`sandbox`] emulates the providers on loopback.

pub mod cli;
pub(crate) mod codes;
pub mod columns;
pub(crate) mod config;
pub mod config_file;
pub(crate) mod dispatch;
mod hash;
pub(crate) mod html;
pub(crate) mod input;
pub mod logging;
pub mod normalize;
mod phone;
pub(crate) mod plan;
pub(crate) mod private;
pub(crate) mod progress;
pub mod provider;
pub mod reader;
pub mod record;
pub(crate) mod report;
pub mod rng;
pub(crate) mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub(crate) mod scan;
pub mod secret;
pub(crate) mod state;
pub(crate) mod sync;
pub(crate) mod validate;
pub(crate) mod words;

use cli::{Cli, Command};

/// Runs one command; `Ok` carries the exit code, `Err` means nothing was sent (exit 2).
pub fn run(cli: Cli) -> Result<u8, config::Error> {
    match cli.command {
        Command::Validate(args) => Ok(finish(validate::run(&args)?, &cli.log)),
        Command::Sync(args) => Ok(finish(sync::run(&args, &cli.log)?, &cli.log)),
        Command::State(args) => sync::admin::run(&args),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => {
            let config = sandbox::SandboxConfig::try_from(args)
                .map_err(|e| config::Error::Usage(e.to_string()))?;
            let runtime = tokio::runtime::Runtime::new().map_err(|e| {
                config::Error::Runtime(format!("cannot start the async runtime: {e}"))
            })?;
            runtime
                .block_on(sandbox::run_foreground(config))
                .map_err(|e| config::Error::Runtime(e.to_string()))?;
            Ok(codes::exit::OK)
        }
        Command::Config(args) => match args.action {
            cli::ConfigAction::Check { path, file } => config_file::check(&path, file.as_deref()),
        },
        Command::Completions(args) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Generated into memory (the generator panics on a write error),
            // then written like the man page.
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "contact-sync", &mut script);
            print_generated("the completion script", &script)
        }
        Command::Man => {
            let mut page = Vec::new();
            cli::render_man(&mut page)
                .map_err(|e| config::Error::Runtime(format!("cannot render the man page: {e}")))?;
            print_generated("the man page", &page)
        }
    }
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is
/// not an error.
fn print_generated(what: &str, bytes: &[u8]) -> Result<u8, config::Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(codes::exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(codes::exit::OK),
        Err(e) => Err(config::Error::Runtime(format!("cannot write {what}: {e}"))),
    }
}

/// Prints the end-of-run summary (unless quiet) and returns the exit code.
fn finish(result: run::RunResult, log: &cli::LogArgs) -> u8 {
    if !log.quiet {
        let mut fields = serde_json::Map::new();
        fields.insert("summary".into(), result.summary.to_json());
        fields.insert("report".into(), result.report.clone().into());
        if let Some(rejects) = &result.rejects {
            fields.insert("rejects".into(), rejects.clone().into());
        }
        fields.insert("exit_code".into(), result.exit_code.into());
        if let Some(next) = result.summary.next(&result.closing()) {
            fields.insert("next".into(), next.into());
        }
        let text = match log.log_format {
            cli::LogFormat::Text => result.render(),
            cli::LogFormat::Json => result.summary.headline(),
        };
        logging::emit(logging::Level::Info, &text, Some(fields));
    }
    if let Some(error) = &result.error {
        logging::error(error);
    }
    result.exit_code
}
