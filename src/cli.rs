//! Command-line arguments as parsed by clap (raw flags); `config` turns them
//! into validated, ready-to-use settings before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::reader::Encoding;

/// Examples shown at the end of `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  Check a file, send nothing (no key needed):
    contact-sync validate contacts.csv --rejects contacts.rejects.csv

  Dry run: what a sync would add and update, sending nothing:
    contact-sync sync contacts.csv --provider smspartner --group-id 1234 --dry-run

  One-off import of a client's file into Mobivate:
    export CONTACT_SYNC_API_KEY_FILE=~/.config/contact-sync/mobivate.key
    contact-sync sync client.csv --provider mobivate --base-url https://api.example.com \\
        --rejects client.rejects.csv --report-html client.report.html

  Nightly job (cron), every option in a config file:
    contact-sync sync --config /etc/contact-sync/nightly.toml --log-format json

  Try the whole pipeline without an account:
    contact-sync sync samples/contacts.csv --provider sandbox

The API key comes from CONTACT_SYNC_API_KEY, or from the file named by
CONTACT_SYNC_API_KEY_FILE; never from a flag or a config file.
Exit codes: 0 all rows fine, 1 some rows invalid or failed, 2 nothing sent
(usage, config or input error), 3 aborted mid-run.";

/// The switches a config file can turn on, each with the flag that turns it
/// off for one run (a config's `dry-run = true` against `--no-dry-run`), as
/// ripgrep pairs `--X` / `--no-X`: of the two, the last given wins.
pub const NEGATIONS: [(&str, &str); 7] = [
    ("truncate-names", "no-truncate-names"),
    ("mobile-only", "no-mobile-only"),
    ("dry-run", "no-dry-run"),
    ("allow-insecure-http", "no-allow-insecure-http"),
    ("no-state", "use-state"),
    ("full", "no-full"),
    ("delete-missing", "no-delete-missing"),
];

/// Flags that mean something only with a switch: a config file's value is
/// left out when the command line turns the switch off.
pub const NEEDS_SWITCH: [(&str, &str); 2] = [
    ("max-delete", "delete-missing"),
    ("deleted-backup", "delete-missing"),
];

/// Keeps an SMS provider's address book in step with a CSV file.
#[derive(Debug, Parser)]
#[command(
    name = "contact-sync",
    version,
    about,
    propagate_version = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a file and report every row's problems; sends nothing.
    Validate(ValidateArgs),
    /// Add or update every valid row on the provider, rate-limited and retried.
    #[command(after_help = EXAMPLES)]
    Sync(SyncArgs),
    /// Inspect, rebuild or forget the state store of a target.
    State(StateArgs),
    /// Serve the built-in SMS Partner / Mobivate emulator on loopback.
    #[cfg(feature = "sandbox")]
    Sandbox(crate::sandbox::SandboxArgs),
    /// Check a config file (and its column map against a file) without sending anything.
    Config(ConfigArgs),
    /// Print a shell completion script to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout.
    Man,
}

/// `contact-sync config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// What to do with the config file.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// The `config` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigAction {
    /// Validate a config file: keys, values, paths; with FILE (or the config's `file`), the column map too.
    Check {
        /// The TOML config file.
        path: PathBuf,
        /// An input file to resolve the column map against [default: the config's `file`, when it exists].
        file: Option<PathBuf>,
    },
}

/// `contact-sync completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags shared by every command.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More log lines (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Fewer log lines: errors only, no progress, no summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// How to read and check the input file (validate and sync).
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// The CSV file, or `-` for standard input.
    pub file: PathBuf,
    /// Field separator (`,` `;` `tab` `|` or any single character); sniffed from the header when absent.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Input encoding.
    #[arg(long, value_enum, default_value_t = Encoding::Auto)]
    pub encoding: Encoding,
    /// Use column HEADER for FIELD (repeatable), e.g. `--map phoneNumber="Cell B"`.
    #[arg(long = "map", value_name = "FIELD=HEADER")]
    pub map: Vec<String>,
    /// Region for national-format numbers (ISO 3166 code).
    #[arg(long, default_value = "FR", value_name = "CC")]
    pub default_region: String,
    /// Extra accepted input date format, strftime style, e.g. `%d/%m/%Y` (repeatable).
    #[arg(long = "date-format", value_name = "FMT")]
    pub date_format: Vec<String>,
    /// Cut first/last names to 32 characters instead of rejecting the row.
    #[arg(long, overrides_with = "no_truncate_names")]
    pub truncate_names: bool,
    /// Turn off --truncate-names (e.g. set by --config).
    #[arg(long, overrides_with = "truncate_names")]
    pub no_truncate_names: bool,
    /// Reject numbers that are not mobile (or fixed-or-mobile).
    #[arg(long, overrides_with = "no_mobile_only")]
    pub mobile_only: bool,
    /// Turn off --mobile-only (e.g. set by --config).
    #[arg(long, overrides_with = "mobile_only")]
    pub no_mobile_only: bool,
}

/// Where results go (validate and sync).
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Per-row report (`-` = stdout) [default: <input stem>.report.csv in the current directory].
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Also write the rejected input rows, with error_code and error_message columns.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<String>,
    /// Write the end-of-run summary as JSON.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// Write a self-contained HTML report: the summary, charts of outcomes and error codes, the rejected rows in a table that sorts and filters.
    #[arg(long, value_name = "PATH")]
    pub report_html: Option<PathBuf>,
}

/// `contact-sync validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Read options from this TOML file; flags given on the command line win (see docs/configuration.md).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The group a sync would use: empty groupId cells fall back to it, as in sync.
    #[arg(long, value_name = "ID")]
    pub group_id: Option<String>,
    /// Exit 2 when more rows than this are invalid, as sync would (it would send nothing): a count, or a share like 5%.
    #[arg(long, value_name = "N[%]")]
    pub max_invalid: Option<String>,
    /// Worker threads for normalisation [default: number of CPUs].
    #[arg(long, hide = true)]
    pub threads: Option<usize>,
}

/// `contact-sync sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// Read options from this TOML file; flags given on the command line win (see docs/configuration.md).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The provider: smspartner, mobivate, or sandbox (the built-in emulator, started in-process).
    #[arg(long, value_enum)]
    pub provider: ProviderKind,
    /// API base URL [smspartner: https://api.smspartner.fr; mobivate: required].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// SMS Partner group that contacts are added to (required unless a groupId column is mapped).
    #[arg(long, value_name = "ID")]
    pub group_id: Option<String>,
    /// Requests per second sent to the provider, at most [default: 5; sandbox: 50].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Requests in flight, at most.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Retries of one request on 429 / 5xx / network errors.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_retries: u32,
    /// Longest Retry-After waited for, in seconds; a provider asking for more stops the run (exit 3).
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub max_retry_after: u64,
    /// Plan only: report would_add / would_update, send nothing.
    #[arg(long, overrides_with = "no_dry_run")]
    pub dry_run: bool,
    /// Turn off --dry-run (e.g. set by --config): send.
    #[arg(long, overrides_with = "dry_run")]
    pub no_dry_run: bool,
    /// Send nothing (exit 2) when more rows than this are invalid: a count, or a share like 5%.
    #[arg(long, value_name = "N[%]")]
    pub max_invalid: Option<String>,
    /// Allow a plain http:// base URL that is not loopback (the key would travel in clear).
    #[arg(long, overrides_with = "no_allow_insecure_http")]
    pub allow_insecure_http: bool,
    /// Turn off --allow-insecure-http (e.g. set by --config).
    #[arg(long, overrides_with = "allow_insecure_http")]
    pub no_allow_insecure_http: bool,
    /// State store (SQLite) [default: one file per provider and group in the user's state directory; none for the sandbox].
    #[arg(long, value_name = "PATH", conflicts_with = "no_state")]
    pub state: Option<PathBuf>,
    /// Do not read or write a state store: every valid row is sent.
    #[arg(long, overrides_with = "use_state")]
    pub no_state: bool,
    /// Turn off --no-state (e.g. set by --config): use the state store.
    #[arg(long, overrides_with = "no_state")]
    pub use_state: bool,
    /// Ignore what the state store says was sent: send every valid row once and refresh the store.
    #[arg(long, overrides_with = "no_full")]
    pub full: bool,
    /// Turn off --full (e.g. set by --config).
    #[arg(long, overrides_with = "full")]
    pub no_full: bool,
    /// Mirror mode: after the rows, delete the contacts this tool put on the target whose number left the file (or opted out).
    #[arg(long, overrides_with = "no_delete_missing")]
    pub delete_missing: bool,
    /// Turn off --delete-missing (e.g. set by --config).
    #[arg(long, overrides_with = "delete_missing")]
    pub no_delete_missing: bool,
    /// With --delete-missing: when more deletions than this are due, send nothing (exit 2); a count, or a share of the managed contacts like 10% [default: 10%].
    #[arg(long, value_name = "N[%]", requires = "delete_missing")]
    pub max_delete: Option<String>,
    /// With --delete-missing: where each deleted contact's last-sent fields are appended, as sync input [default: <report stem>.deleted.csv beside the report].
    #[arg(long, value_name = "PATH", requires = "delete_missing")]
    pub deleted_backup: Option<PathBuf>,
}

/// Which provider to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// SMS Partner (bulk add, groups).
    Smspartner,
    /// Mobivate address book.
    Mobivate,
    /// The built-in emulator, started in-process (SMS Partner API).
    Sandbox,
}

/// `contact-sync state`.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// What to do with the store.
    #[command(subcommand)]
    pub action: StateAction,
}

/// The `state` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StateAction {
    /// Where the store is, how many numbers it knows, when it was last synced, pending sends.
    Show(StateTarget),
    /// Fill the store from the provider's listing (after losing the state file): one listing pass, not a full re-send.
    Rebuild(StateTarget),
    /// Delete what the store knows of a target (asks for confirmation unless --yes).
    Forget {
        /// The target.
        #[command(flatten)]
        target: StateTarget,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Which store and target a `state` subcommand works on: the same flags as `sync`.
#[derive(Debug, Clone, Args)]
pub struct StateTarget {
    /// Read the target (provider, base-url, group-id, state) from a sync config file; flags win.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The provider.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// API base URL [smspartner: https://api.smspartner.fr; mobivate: required].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// SMS Partner group.
    #[arg(long, value_name = "ID")]
    pub group_id: Option<String>,
    /// The store's file [default: as `sync` chooses it from the flags above].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Allow a plain http:// base URL that is not loopback.
    #[arg(long, overrides_with = "no_allow_insecure_http")]
    pub allow_insecure_http: bool,
    /// Turn off --allow-insecure-http (e.g. set by --config).
    #[arg(long, overrides_with = "allow_insecure_http")]
    pub no_allow_insecure_http: bool,
}

/// Writes the man page: the command, then each subcommand's synopsis and
/// options (their flags are what a reader looks for).
pub(crate) fn render_man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands() {
        render_man_section(out, sub, "contact-sync")?;
    }
    // The after-help text is the examples.
    let mut extra = Vec::new();
    man.render_extra_section(&mut extra)?;
    out.write_all(
        String::from_utf8_lossy(&extra)
            .replace(".SH EXTRA", ".SH EXAMPLES")
            .as_bytes(),
    )?;
    man.render_version_section(out)?;
    Ok(())
}

/// One subcommand's section of the man page (its synopsis and options),
/// then one for each of its own subcommands (`state show`, `config check`).
fn render_man_section(
    out: &mut dyn std::io::Write,
    sub: &clap::Command,
    parent: &str,
) -> std::io::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
    if let Some(about) = sub.get_about() {
        writeln!(out, "{}", roff_escape(&about.to_string()))?;
    }
    let page = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
    let mut section = Vec::new();
    page.render_synopsis_section(&mut section)?;
    page.render_options_section(&mut section)?;
    // Subsections of the command's section, not top-level sections.
    let section = String::from_utf8_lossy(&section)
        .replace(".SH SYNOPSIS", ".SS Synopsis")
        .replace(".SH OPTIONS", ".SS Options");
    out.write_all(section.as_bytes())?;
    for nested in sub.get_subcommands() {
        render_man_section(out, nested, &name)?;
    }
    Ok(())
}

/// Text safe on a roff line: no leading control character, backslashes doubled.
fn roff_escape(text: &str) -> String {
    let text = text.replace('\\', "\\\\");
    match text.chars().next() {
        Some('.') | Some('\'') => format!("\\&{text}"),
        _ => text,
    }
}
