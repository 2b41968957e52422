//! The `contact-sync` command line: parse, set up logging, run, exit.

use std::process::ExitCode;

use contact_sync::cli::Command;
use contact_sync::config_file::{self, ConfigError};

fn main() -> ExitCode {
    let cli = match config_file::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ConfigError::Clap(e)) => return contact_sync::logging::usage_error(e),
        Err(ConfigError::File(message)) => return contact_sync::logging::early_error(&message),
    };
    contact_sync::logging::init(&cli.log);
    // `validate … --report - | head`: the reader went away, which is not an
    // error. A sync that cannot write its report is one.
    let pipe_may_close = matches!(cli.command, Command::Validate(_));
    match contact_sync::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
            while let Some(e) = cause.filter(|_| pipe_may_close) {
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                {
                    return ExitCode::SUCCESS;
                }
                cause = e.source();
            }
            let code = err.exit_code();
            // Every error's message already names its cause.
            contact_sync::logging::error(&anyhow::Error::from(err).to_string());
            ExitCode::from(code)
        }
    }
}
