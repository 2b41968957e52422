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
            eprintln!("contact-sync: error: {:#}", anyhow::Error::from(err));
            ExitCode::from(contact_sync::codes::exit::NOTHING_SENT)
        }
    }
}
