//! Log set-up: text or JSON lines on stderr, verbosity from `-q`/`-v`.
//!
//! Everything the tool writes on stderr goes through here: log events through
//! `tracing`, and the lines that are not events (the end-of-run summary, a
//! fatal error, a command's result) through [`emit`], so that with
//! `--log-format json` every line on stderr is one JSON object.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

use crate::cli::{LogArgs, LogFormat};

/// The format chosen by [`init`]; text until then.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The log level implied by `-q`/`-v`.
pub(crate) fn level(args: &LogArgs) -> &'static str {
    match (args.quiet, args.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    }
}

/// Installs the global subscriber; `RUST_LOG` overrides the level when set.
pub fn init(args: &LogArgs) {
    let _ = FORMAT.set(args.log_format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies stay at warn unless asked for; their debug lines carry URLs.
        EnvFilter::new(format!("warn,contact_sync={}", level(args)))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match args.log_format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => {
            // A panic's message is a line on stderr too.
            std::panic::set_hook(Box::new(|info| {
                emit(
                    Level::Error,
                    &format!("internal error (a bug): {info}"),
                    None,
                );
            }));
            builder.json().try_init()
        }
    };
}

/// The format in use.
pub(crate) fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// The level of a line written by [`emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// A result or a summary.
    Info,
    /// Something went wrong.
    Error,
}

/// Writes `text` (one or more lines) on stderr: as it is in text mode, or as
/// one JSON object shaped like the log events' (`timestamp`, `level`,
/// `fields.message`, plus `fields`' other members) in JSON mode.
pub(crate) fn emit(
    level: Level,
    text: &str,
    fields: Option<serde_json::Map<String, serde_json::Value>>,
) {
    let mut err = std::io::stderr().lock();
    // Nothing to do if stderr is gone: there is nowhere left to say so.
    let _ = match format() {
        LogFormat::Text => write!(
            err,
            "{text}{}",
            if text.ends_with('\n') { "" } else { "\n" }
        ),
        LogFormat::Json => writeln!(err, "{}", json_line(level, text, fields)),
    };
}

/// A fatal error: `contact-sync: error: …` in text mode.
pub fn error(message: &str) {
    match format() {
        LogFormat::Text => emit(
            Level::Error,
            &format!("contact-sync: error: {message}"),
            None,
        ),
        LogFormat::Json => emit(Level::Error, message, None),
    }
}

/// Reports a command line clap could not parse (or prints the help or
/// version it asked for) and returns the exit code. With `--log-format json`
/// among the arguments, the error is one JSON line like any other.
pub fn usage_error(e: clap::Error) -> std::process::ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(crate::codes::exit::NOTHING_SENT);
    if e.use_stderr() && json_asked(std::env::args_os().skip(1)) {
        let _ = FORMAT.set(LogFormat::Json);
        let text = e.render().to_string();
        emit(Level::Error, text.trim_start_matches("error: "), None);
    } else {
        // Help and version go to stdout, as clap prints them.
        let _ = e.print();
    }
    std::process::ExitCode::from(code)
}

/// Reports an error found before logging is set up (a config file's), as
/// [`usage_error`] does, and returns exit 2.
pub fn early_error(message: &str) -> std::process::ExitCode {
    if json_asked(std::env::args_os().skip(1)) {
        let _ = FORMAT.set(LogFormat::Json);
    }
    error(message);
    std::process::ExitCode::from(crate::codes::exit::NOTHING_SENT)
}

/// Whether raw arguments ask for `--log-format json` (they could not be parsed).
fn json_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut previous_is_flag = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg == "--log-format=json" || (previous_is_flag && arg == "json") {
            return true;
        }
        previous_is_flag = arg == "--log-format";
    }
    false
}

/// One JSON log line.
fn json_line(
    level: Level,
    text: &str,
    fields: Option<serde_json::Map<String, serde_json::Value>>,
) -> String {
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let mut all = serde_json::Map::new();
    all.insert("message".into(), text.trim_end().into());
    all.extend(fields.unwrap_or_default());
    let level = match level {
        Level::Info => "INFO",
        Level::Error => "ERROR",
    };
    // Written by hand to keep the log events' key order.
    format!(
        "{{\"timestamp\":{},\"level\":\"{level}\",\"fields\":{}}}",
        serde_json::Value::from(timestamp),
        serde_json::Value::Object(all)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_among_arguments_clap_could_not_parse() {
        let asked = |args: &[&str]| json_asked(args.iter().map(std::ffi::OsString::from));
        assert!(asked(&["--log-format", "json", "validate"]));
        assert!(asked(&["validate", "--bogus", "--log-format=json"]));
        assert!(!asked(&["validate", "--log-format", "text", "json"]));
        assert!(!asked(&["validate", "json"]));
    }

    #[test]
    fn a_json_line_is_one_line_shaped_like_a_log_event() {
        let mut fields = serde_json::Map::new();
        fields.insert("rows".into(), 3.into());
        let line = json_line(Level::Error, "two\nlines\n", Some(fields));
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["fields"]["message"], "two\nlines");
        assert_eq!(v["fields"]["rows"], 3);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
    }
}
