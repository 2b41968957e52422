//! The `contact-sync` command line: parse, set up logging, run, exit.

use std::process::ExitCode;

use clap::Parser;
use contact_sync::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    contact_sync::logging::init(&cli.log);
    match contact_sync::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let err = anyhow::Error::from(err);
            // `… --report - | head`: the reader went away, which is not an error.
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            // Every error's message already names its cause.
            eprintln!("contact-sync: error: {err}");
            ExitCode::from(contact_sync::codes::exit::NOTHING_SENT)
        }
    }
}
