//! `contact-sync sync`: validated rows become add or update calls, sent under
//! the rate, concurrency and retry rules, with every row's fate in the report.
//!
//! Flow: signal handlers first; output paths checked; the input opened once
//! (or a stream spooled); every output created; a first pass validates the
//! whole file (exact total, `--max-invalid`); the second pass streams checked
//! rows into the planner; adds are batched per target, each batch or update
//! runs as a task through the dispatcher; results come back out of order and
//! a writer puts them back in input order. A window of admitted-but-unwritten
//! rows bounds memory.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::{LogArgs, ProviderKind, SyncArgs};
use crate::codes::Outcome;
use crate::columns::Field;
use crate::config::{Error, InputConfig, MaxInvalid, OutputConfig, Source};
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::input::{InputBytes, Opened, SpoolEnd, Spooling};
use crate::plan::{Action, Batcher, plan};
use crate::progress::{self, Progress};
use crate::provider::Provider;
use crate::provider::mobivate::Mobivate;
use crate::provider::smspartner::SmsPartner;
use crate::report::{
    Done, Outputs, RejectsWriter, ReportWriter, Summary, WriteError, write_in_order,
};
use crate::run::{Ending, RunResult, default_threads, log_input_facts};
use crate::scan::{CheckedRow, Verdict, scan};
use crate::secret::ApiKey;
use crate::state::{Lock, StateWriter, Store, TargetKey, TargetMap, Update as StateUpdate};

pub(crate) mod admin;
mod engine;
mod signals;

use engine::{Abort, Deletion, Directory, Engine, Job, NOT_SENT, StateCtx, Ticket};
use signals::Signals;

/// How long requests in flight may still run once the run is stopping.
const GRACE: Duration = Duration::from_secs(5);

/// The largest `--max-retry-after`, in seconds: a day.
const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// The default rate for each provider, in requests per second.
pub(crate) fn default_rate(kind: ProviderKind) -> f64 {
    match kind {
        // Neighbouring SMS Partner endpoints allow 360/min; contact endpoints document nothing.
        ProviderKind::Smspartner | ProviderKind::Mobivate => 5.0,
        ProviderKind::Sandbox => 50.0,
    }
}

/// Refuses plain `http://` to anything but loopback unless explicitly allowed.
pub(crate) fn check_base_url(url: &reqwest::Url, allow_insecure: bool) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback || allow_insecure {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "--base-url {url}: plain http would send the API key in clear; use https, or pass --allow-insecure-http"
                )))
            }
        }
        other => Err(Error::Usage(format!(
            "--base-url {url}: unsupported scheme {other:?} (expected https)"
        ))),
    }
}

/// Refuses a run that would speak HTTPS while the platform trusts no
/// certificate authority: every request would fail verification.
pub(crate) fn check_roots(
    kind: ProviderKind,
    base_url: Option<&reqwest::Url>,
) -> Result<(), Error> {
    if speaks_https(kind, base_url) {
        crate::dispatch::platform_roots().map_err(|e| Error::Usage(e.to_string()))?;
    }
    Ok(())
}

/// Whether requests to `kind` at `base_url` (its default when `None`) use TLS.
fn speaks_https(kind: ProviderKind, base_url: Option<&reqwest::Url>) -> bool {
    match base_url {
        Some(u) => u.scheme() == "https",
        // SMS Partner's default is https; Mobivate has none (a run needs
        // --base-url); the sandbox is plain http on loopback.
        None => kind != ProviderKind::Sandbox,
    }
}

/// Validated sync settings.
struct SyncConfig {
    input: InputConfig,
    output: OutputConfig,
    kind: ProviderKind,
    base_url: Option<reqwest::Url>,
    group: Option<String>,
    dispatch: DispatchConfig,
    dry_run: bool,
    max_invalid: Option<MaxInvalid>,
    key: ApiKey,
    /// The state store's file, unless the run has none.
    state: Option<PathBuf>,
    /// Ignore the store's fingerprints.
    full: bool,
    /// Mirror mode: delete managed contacts the file no longer holds.
    delete_missing: bool,
    /// Above this many deletions (or this share of the managed contacts), none.
    max_delete: MaxInvalid,
}

/// `--max-delete`'s default: a tenth of the target's managed contacts.
const DEFAULT_MAX_DELETE: MaxInvalid = MaxInvalid::Percent(10.0);

/// Checks the sync settings as a run would, reading no input and needing no
/// API key (`contact-sync config check`).
pub(crate) fn check(args: &SyncArgs) -> Result<(), Error> {
    SyncConfig::from_args(args, false).map(|_| ())
}

impl SyncConfig {
    /// `need_key`: whether the API key must be there (a run) or not (a check).
    fn from_args(args: &SyncArgs, need_key: bool) -> Result<SyncConfig, Error> {
        let mut input = InputConfig::from_args(&args.input)?;
        // An empty groupId cell falls back to --group-id (SPEC §4).
        input.set_default_group(args.group_id.as_deref())?;
        let output = OutputConfig::from_args(&args.output, &input.source)?;
        let base_url = match &args.base_url {
            Some(u) => {
                let url = reqwest::Url::parse(u).map_err(|e| {
                    Error::Usage(format!("--base-url {}: {e}", crate::words::quote(u)))
                })?;
                check_base_url(&url, args.allow_insecure_http)?;
                Some(url)
            }
            None => None,
        };
        if args.provider == ProviderKind::Mobivate && base_url.is_none() && !args.dry_run {
            return Err(Error::Usage(
                "--provider mobivate needs --base-url (Mobivate gives it on request)".into(),
            ));
        }
        if !args.dry_run {
            check_roots(args.provider, base_url.as_ref())?;
        }
        let dispatch = dispatch_config(args)?;
        let max_invalid = MaxInvalid::from_arg(args.max_invalid.as_deref())?;
        let key = api_key(args.provider, args.dry_run || !need_key)?;
        if args.provider == ProviderKind::Mobivate
            && !args.dry_run
            && need_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose())).is_err()
        {
            // Caught here, the run stops before reading anything (exit 2).
            return Err(Error::Usage(format!(
                "{} holds a character that cannot go in an HTTP header (a line break or a control character?): check how it was set",
                crate::secret::ENV_VAR
            )));
        }
        let state = state_path(args, base_url.as_ref())?;
        if args.delete_missing && state.is_none() {
            return Err(Error::Usage(
                "--delete-missing needs the state store: it deletes only the contacts this tool put on the target, and the store is what knows them (drop --no-state; with --provider sandbox, pass --state)".into(),
            ));
        }
        let max_delete = args
            .max_delete
            .as_deref()
            .map(|s| MaxInvalid::parse_for("--max-delete", s))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_DELETE);
        let output = if args.delete_missing && !args.dry_run {
            output.with_backup(args.deleted_backup.as_deref(), &input.source)?
        } else {
            output
        };
        Ok(SyncConfig {
            input,
            output,
            kind: args.provider,
            base_url,
            group: args.group_id.clone(),
            dispatch,
            dry_run: args.dry_run,
            max_invalid,
            key,
            state,
            full: args.full,
            delete_missing: args.delete_missing,
            max_delete,
        })
    }
}

/// The dispatcher's settings from `--rate`, `--concurrency`, `--max-retries`
/// and `--max-retry-after`, each checked against its bounds.
fn dispatch_config(args: &SyncArgs) -> Result<DispatchConfig, Error> {
    let rate = args.rate.unwrap_or_else(|| default_rate(args.provider));
    if !(crate::dispatch::MIN_RATE..=crate::dispatch::MAX_RATE).contains(&rate) {
        return Err(Error::Usage(format!(
            "--rate {rate}: must be between {} and {} requests per second",
            crate::dispatch::MIN_RATE,
            crate::dispatch::MAX_RATE
        )));
    }
    if !(1..=crate::dispatch::MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(Error::Usage(format!(
            "--concurrency {}: must be between 1 and {}",
            args.concurrency,
            crate::dispatch::MAX_CONCURRENCY
        )));
    }
    if args.max_retry_after > MAX_RETRY_AFTER_SECS {
        return Err(Error::Usage(format!(
            "--max-retry-after {}: must be at most {MAX_RETRY_AFTER_SECS} seconds (one day)",
            args.max_retry_after
        )));
    }
    let mut dispatch = DispatchConfig {
        rate,
        concurrency: args.concurrency,
        ..DispatchConfig::default()
    };
    dispatch.retry.max_retries = args.max_retries;
    dispatch.retry.max_retry_after = Duration::from_secs(args.max_retry_after);
    Ok(dispatch)
}

/// The state store's file: `--state`, none (`--no-state`, the sandbox), or
/// the per-target default.
fn state_path(args: &SyncArgs, base_url: Option<&reqwest::Url>) -> Result<Option<PathBuf>, Error> {
    if args.no_state {
        return Ok(None);
    }
    if let Some(path) = &args.state {
        return Ok(Some(path.clone()));
    }
    if args.provider == ProviderKind::Sandbox {
        // A fresh emulator each run: a store would think its contacts exist.
        return Ok(None);
    }
    let target = TargetKey {
        provider: provider_name(args.provider).into(),
        base_url: target_base(args.provider, base_url),
        group: args.group_id.clone().unwrap_or_default(),
    };
    let path = crate::state::default_path(&target).ok_or_else(|| {
        Error::Usage(
            "cannot find the user's state directory: pass --state PATH (or --no-state)".into(),
        )
    })?;
    Ok(Some(path))
}

/// The provider's name in the state store.
fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Smspartner => "smspartner",
        ProviderKind::Mobivate => "mobivate",
        ProviderKind::Sandbox => "sandbox",
    }
}

/// The base URL a target is known by in the state store.
fn target_base(kind: ProviderKind, base_url: Option<&reqwest::Url>) -> String {
    match (base_url, kind) {
        (Some(u), _) => u.as_str().trim_end_matches('/').to_string(),
        (None, ProviderKind::Mobivate) => String::new(),
        (None, _) => crate::provider::smspartner::DEFAULT_BASE_URL
            .trim_end_matches('/')
            .to_string(),
    }
}

/// What the second pass does with valid rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// Send them.
    Send,
    /// Report what would be sent.
    DryRun,
    /// Send nothing: `--max-invalid` was exceeded.
    Refused,
    /// Send nothing: more deletions are due than `--max-delete` allows.
    TooManyDeletes,
    /// Send nothing: interrupted before sending began.
    Interrupted,
}

/// What the first pass learnt.
#[derive(Default)]
struct FirstPass {
    rows: u64,
    invalid: u64,
    /// Data rows decoded as Windows-1252.
    windows_1252: u64,
    interrupted: bool,
    /// The first valid rows whose contact id comes from the file: (id, phone, group).
    file_ids: Vec<(String, String, String)>,
    /// The groups of the valid rows (empty: the default).
    groups: std::collections::BTreeSet<String>,
    /// The report written while reading, when it was.
    speculation: Option<Speculation>,
    /// Which numbers the file holds (mirror mode only).
    presence: Option<Presence>,
}

/// What mirror mode needs from the file: which numbers it holds, per group
/// as the file names it (empty: the default group).
#[derive(Default)]
struct Presence {
    /// Numbers of valid rows that did not opt out.
    kept: HashMap<String, HashSet<u64>>,
    /// Numbers of valid rows marked `optOut`.
    opted_out: HashMap<String, HashSet<u64>>,
    /// Numbers of invalid rows whose phone is readable: kept in every group.
    anywhere: HashSet<u64>,
    /// Rows whose phone could not be read (missing, invalid, malformed row).
    unreadable: u64,
}

impl Presence {
    fn record(&mut self, row: &CheckedRow) {
        match &row.verdict {
            Verdict::Valid(c) => {
                let Some(key) = crate::state::phone_key(&c.phone) else {
                    self.unreadable += 1;
                    return;
                };
                let set = if c.opt_out {
                    &mut self.opted_out
                } else {
                    &mut self.kept
                };
                set.entry(c.group_id.clone()).or_default().insert(key);
            }
            Verdict::Invalid(_) => match row.phone.as_deref().and_then(crate::state::phone_key) {
                Some(key) => {
                    self.anywhere.insert(key);
                }
                None => self.unreadable += 1,
            },
        }
    }

    /// Whether the managed contact `phone` of `group` is to be deleted: it
    /// opted out, or no row of the file holds it. `default` is the group
    /// of rows with an empty group cell.
    fn deletes(&self, group: &str, default: &str, phone: &str) -> bool {
        let Some(key) = crate::state::phone_key(phone) else {
            return false;
        };
        let in_set = |sets: &HashMap<String, HashSet<u64>>| {
            sets.get(group).is_some_and(|s| s.contains(&key))
                || (group == default && sets.get("").is_some_and(|s| s.contains(&key)))
        };
        in_set(&self.opted_out) || !(in_set(&self.kept) || self.anywhere.contains(&key))
    }
}

/// What mirror mode is to delete, known before the first request.
#[derive(Default)]
struct DeletionPlan {
    due: Vec<Deletion>,
    /// The managed contacts of the targets looked at (the guard's base).
    managed: u64,
}

/// How many file-given contact ids are read back before any update through them.
const ID_SAMPLE: usize = 10;

/// Runs `sync`.
pub(crate) fn run(args: &SyncArgs, log: &LogArgs) -> Result<RunResult, Error> {
    let started = Instant::now();
    let cfg = SyncConfig::from_args(args, true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(default_threads().max(2))
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let mode = progress::mode(std::io::stderr().is_terminal(), log.quiet);
    let result = runtime.block_on(run_async(cfg, started, mode));
    // A reader stopped by a second interrupt may still be winding down: do not wait for it.
    runtime.shutdown_background();
    result
}

async fn run_async(
    mut cfg: SyncConfig,
    started: Instant,
    mode: progress::Mode,
) -> Result<RunResult, Error> {
    // Before the input is touched, so no signal ever finds the run without a report.
    let signals = Signals::install()?;
    // The store first: one in use or unusable stops the run before anything is read.
    let (store, _lock) = open_store(&cfg)?;
    let input = open_sync_input(&mut cfg, &signals).await?;
    // Fingerprints do not depend on the URL (the sandbox's comes later), and a
    // bad URL is refused here, before any output exists.
    let (_, fingerprinter) = make_provider(cfg.kind, cfg.base_url.as_ref(), &cfg.key)?;
    let header = input.opened.reader.header().to_vec();
    let delimiter = input.opened.reader.delimiter();
    let outputs = create_outputs(&cfg, &header, delimiter)?;
    let preload = match preload_target(store.as_ref(), &cfg, input.has_group_column) {
        Ok(p) => p,
        Err(e) => {
            outputs.discard();
            return Err(e);
        }
    };
    let skip = preload.as_ref().map(|(_, map)| Skip {
        map: Arc::clone(map),
        fingerprinter,
        full: cfg.full,
    });
    let (writers, speculation, summary_file) = start_report(&cfg, outputs, skip.is_some());

    // Pass 1: validate everything before the first request.
    let spool_end = input.spool_end;
    let checked = check_every_row(&cfg, input.opened, spool_end, &signals, skip, speculation);
    let mut first = match checked.await {
        Ok(first) => first,
        Err(e) => {
            discard_outputs(writers, None, summary_file);
            return Err(e);
        }
    };
    let sending = decide_sending(&cfg, &first, spool_end);
    // Mirror mode: the deletions due are known now, before any request,
    // and the guard is checked against them.
    let (sending, deletions) = match due_deletions(&cfg, store.as_ref(), &first, sending) {
        Ok(due) => due,
        Err(e) => {
            discard_outputs(writers, first.speculation.take(), summary_file);
            return Err(e);
        }
    };
    let writers = match first.speculation.take() {
        Some(spec) if spec.stands(&deletions, sending) => {
            return finish_without_sending(
                &cfg,
                store,
                first,
                sending,
                spec,
                summary_file,
                started,
            );
        }
        Some(spec) => Some(restart_report(&cfg, spec, &header, delimiter)?),
        None => writers,
    };
    let Some((report_writer, rejects_writer)) = writers else {
        return Err(Error::Runtime("internal: no report writer".into()));
    };
    // Created before the first request, like every output.
    let backup = match open_backup(&cfg, sending, &deletions) {
        Ok(b) => b,
        Err(e) => {
            discard_outputs(Some((report_writer, rejects_writer)), None, summary_file);
            return Err(e);
        }
    };

    #[cfg(feature = "sandbox")]
    let sandbox = start_sandbox(&mut cfg, sending, &first.groups).await?;
    let groups = target_groups(&cfg, &first);
    let (maps, state) = match prepare_state(store, &cfg, groups, sending, preload) {
        Ok(s) => s,
        Err(e) => {
            discard_outputs(Some((report_writer, rejects_writer)), None, summary_file);
            return Err(e);
        }
    };
    let engine = Arc::new(build_engine(&cfg, state)?);
    let ids_unchecked = match &input.id_column {
        Some(column) if sending == Sending::Send => {
            match check_file_ids(&engine, &unchecked_ids(&cfg, &first, &maps), column).await {
                Ok(unchecked) => unchecked,
                Err(e) => {
                    discard_outputs(Some((report_writer, rejects_writer)), None, summary_file);
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    let pass = sync_rows(
        &cfg,
        &engine,
        &maps,
        &input.bytes,
        (report_writer, rejects_writer),
        first.rows,
        sending,
        mode,
        &signals,
        (deletions, backup),
        ids_unchecked,
    )
    .await;
    #[cfg(feature = "sandbox")]
    if let Some(handle) = sandbox {
        stop_sandbox(handle).await;
    }
    conclude(&cfg, &engine, pass, &first, sending, summary_file, started)
}

/// Creates every output of the run (report, rejects, JSON summary, HTML)
/// before anything is sent.
fn create_outputs(cfg: &SyncConfig, header: &[String], delimiter: u8) -> Result<Outputs, Error> {
    Ok(Outputs::create(
        &cfg.output.report,
        cfg.output.rejects.as_ref(),
        cfg.output.summary_json.as_deref(),
        cfg.output.html.as_deref(),
        header,
        delimiter,
    )?)
}

/// The input of a sync run, opened and its columns mapped.
struct SyncInput {
    bytes: InputBytes,
    spool_end: SpoolEnd,
    opened: crate::config::OpenInput,
    /// The header of the column read as contact ids, if one is.
    id_column: Option<String>,
    has_group_column: bool,
}

/// Reads (or spools) the input and maps its columns: a Mobivate contact id
/// column is used only when `--map` names it, and SMS Partner needs a group.
async fn open_sync_input(cfg: &mut SyncConfig, signals: &Signals) -> Result<SyncInput, Error> {
    tracing::debug!("reading {}", cfg.input.source.describe());
    let (bytes, spool_end) = open_input(&cfg.input.source, signals).await?;
    if spool_end == SpoolEnd::Stopped {
        tracing::warn!("interrupted while reading the input: nothing was sent");
    }
    let opened = match cfg.input.open_stream(Box::new(bytes.reader())) {
        Err(e) if spool_end == SpoolEnd::Stopped => {
            return Err(Error::Aborted(format!(
                "interrupted before the input could be read ({e})"
            )));
        }
        other => other?,
    };
    if let Some(choice) = opened.map.phone_choice() {
        tracing::info!("{choice}");
    }
    if let Some(warning) = opened.ignored_warning() {
        tracing::warn!("{warning}");
    }
    let mut opened = opened;
    if let Some(col) = opened.map.get(Field::ContactId)
        && cfg.kind == ProviderKind::Mobivate
        && !opened.map.explicit(Field::ContactId)
    {
        // Mobivate has no read by id, so a file's ids cannot be checked first:
        // only a column the user pointed at is trusted.
        let header = opened.reader.header().get(col).cloned().unwrap_or_default();
        tracing::warn!(
            "not using column {} as Mobivate contact ids (they cannot be checked before updating); --map contactId=\"{header}\" uses it",
            crate::words::quote(&header)
        );
        cfg.input.overrides.push((Field::ContactId, String::new()));
        opened = cfg.input.open_stream(Box::new(bytes.reader()))?;
    }
    let id_column = opened
        .map
        .get(Field::ContactId)
        .and_then(|c| opened.reader.header().get(c).cloned());
    let has_group_column = opened.map.get(Field::GroupId).is_some();
    if matches!(cfg.kind, ProviderKind::Smspartner) && cfg.group.is_none() && !has_group_column {
        return Err(Error::Usage(
            "--provider smspartner needs --group-id (or a groupId column)".into(),
        ));
    }
    Ok(SyncInput {
        bytes,
        spool_end,
        opened,
        id_column,
        has_group_column,
    })
}

/// What the store knows of the one target of a file without a group
/// column, so the first pass can tell which rows are unchanged.
fn preload_target(
    store: Option<&Store>,
    cfg: &SyncConfig,
    has_group_column: bool,
) -> Result<Option<(String, Arc<TargetMap>)>, Error> {
    let Some(store) = store.filter(|_| !has_group_column) else {
        return Ok(None);
    };
    let group = cfg.group.clone().unwrap_or_default();
    let key = state_key(cfg, &group);
    let found = store
        .find_target(&key)
        .map_err(|e| Error::Usage(e.to_string()));
    let loaded = found.and_then(|t| {
        t.map(|t| store.load(t).map_err(|e| Error::Usage(e.to_string())))
            .transpose()
    });
    Ok(loaded?.map(|m| (group, Arc::new(m))))
}

/// The report writers of the second pass, or none yet when the first pass
/// writes the report as it goes.
type Writers = Option<(ReportWriter, Option<RejectsWriter>)>;

/// Where the report goes first. When the store knows the target, the first
/// pass writes the report as it goes: if no row needs a request, that report
/// is the run's, and the file is not read a second time (the nightly
/// unchanged rerun).
fn start_report(
    cfg: &SyncConfig,
    outputs: Outputs,
    skip: bool,
) -> (
    Writers,
    Option<Speculation>,
    Option<crate::report::SummaryFile>,
) {
    let Outputs {
        report,
        rejects,
        summary: summary_file,
    } = outputs;
    let rewindable = matches!(cfg.output.report, crate::report::Target::File(_))
        && !matches!(cfg.output.rejects, Some(crate::report::Target::Stdout));
    if skip && rewindable {
        let speculation = Speculation {
            report,
            rejects,
            summary: Summary::default(),
            complete: true,
            failed: None,
        };
        (None, Some(speculation), summary_file)
    } else {
        (Some((report, rejects)), None, summary_file)
    }
}

/// Removes every output of a run that stops before sending.
fn discard_outputs(
    writers: Writers,
    speculation: Option<Speculation>,
    summary_file: Option<crate::report::SummaryFile>,
) {
    if let Some((r, j)) = writers {
        r.discard();
        if let Some(j) = j {
            j.discard();
        }
    }
    if let Some(s) = speculation {
        s.report.discard();
        if let Some(j) = s.rejects {
            j.discard();
        }
    }
    if let Some(f) = summary_file {
        f.discard();
    }
}

/// The first pass (SPEC §4): every row checked before the first request.
async fn check_every_row(
    cfg: &SyncConfig,
    opened: crate::config::OpenInput,
    spool_end: SpoolEnd,
    signals: &Signals,
    skip: Option<Skip>,
    speculation: Option<Speculation>,
) -> Result<FirstPass, Error> {
    if spool_end == SpoolEnd::Stopped {
        return Ok(FirstPass {
            interrupted: true,
            ..FirstPass::default()
        });
    }
    tracing::debug!("checking every row before sending anything");
    let input = cfg.input.clone();
    let raised = signals.raised();
    let mirror = cfg.delete_missing;
    tokio::task::spawn_blocking(move || {
        first_pass(opened, &input, &raised, skip.as_ref(), speculation, mirror)
    })
    .await
    .map_err(|e| Error::Runtime(format!("internal: the first pass failed: {e}")))?
}

/// Whether the run sends, after the first pass: not when interrupted, nor
/// above `--max-invalid`, nor in a dry run.
fn decide_sending(cfg: &SyncConfig, first: &FirstPass, spool_end: SpoolEnd) -> Sending {
    if first.interrupted {
        if spool_end != SpoolEnd::Stopped {
            tracing::warn!("interrupted while checking the file: nothing was sent");
        }
        Sending::Interrupted
    } else if let Some(limit) = cfg
        .max_invalid
        .filter(|m| m.exceeded(first.invalid, first.rows))
    {
        tracing::error!(
            "{}: sending nothing",
            limit.refusal(first.invalid, first.rows)
        );
        Sending::Refused
    } else if cfg.dry_run {
        Sending::DryRun
    } else {
        Sending::Send
    }
}

/// Mirror mode (SPEC §5): the deletions due, and whether the run still
/// sends — above `--max-delete` it deletes and sends nothing.
fn due_deletions(
    cfg: &SyncConfig,
    store: Option<&Store>,
    first: &FirstPass,
    sending: Sending,
) -> Result<(Sending, Vec<Deletion>), Error> {
    let deletions = if cfg.delete_missing && matches!(sending, Sending::Send | Sending::DryRun) {
        plan_deletions(cfg, store, first)?
    } else {
        DeletionPlan::default()
    };
    if cfg
        .max_delete
        .exceeded(deletions.due.len() as u64, deletions.managed)
    {
        tracing::error!(
            "{} of the {} contacts this tool manages on the target are due for deletion, more than --max-delete allows ({}): deleting nothing and sending nothing (check the file is the whole export; raise --max-delete if the deletions are meant)",
            deletions.due.len(),
            deletions.managed,
            describe_limit(cfg.max_delete)
        );
        return Ok((Sending::TooManyDeletes, Vec::new()));
    }
    Ok((sending, deletions.due))
}

/// Some row needs a request: the first pass's report is dropped and the
/// report starts again for the second pass.
fn restart_report(
    cfg: &SyncConfig,
    spec: Speculation,
    header: &[String],
    delimiter: u8,
) -> Result<(ReportWriter, Option<RejectsWriter>), Error> {
    spec.report.discard();
    if let Some(j) = spec.rejects {
        j.discard();
    }
    let report = ReportWriter::create(&cfg.output.report)?;
    let rejects = match &cfg.output.rejects {
        Some(t) => Some(RejectsWriter::create(t, header, delimiter)?),
        None => None,
    };
    Ok((report, rejects))
}

/// The backup of what deleted contacts held, when deletions will be sent.
fn open_backup(
    cfg: &SyncConfig,
    sending: Sending,
    deletions: &[Deletion],
) -> Result<Option<Arc<Mutex<crate::report::BackupWriter>>>, Error> {
    match (&cfg.output.backup, sending) {
        (Some(path), Sending::Send) if !deletions.is_empty() => {
            let groups = cfg.kind != ProviderKind::Mobivate;
            let backup = crate::report::BackupWriter::open(path, groups)?;
            Ok(Some(Arc::new(Mutex::new(backup))))
        }
        _ => Ok(None),
    }
}

/// `--provider sandbox`: starts the built-in emulator with the groups the
/// run sends to, and points the run at it.
#[cfg(feature = "sandbox")]
async fn start_sandbox(
    cfg: &mut SyncConfig,
    sending: Sending,
    first_groups: &std::collections::BTreeSet<String>,
) -> Result<Option<crate::sandbox::SandboxHandle>, Error> {
    if cfg.kind != ProviderKind::Sandbox || sending != Sending::Send {
        return Ok(None);
    }
    if cfg.group.is_none() {
        cfg.group = Some(crate::sandbox::DEFAULT_GROUP.to_string());
    }
    // The groups the run sends to exist: the built-in sandbox stands for
    // the user's own account (the standalone one keeps a 404 for others).
    let groups = crate::run::sandbox_groups(cfg.group.as_deref().unwrap_or_default(), first_groups);
    let handle = crate::sandbox::start(crate::sandbox::SandboxConfig {
        groups,
        ..crate::sandbox::SandboxConfig::default()
    })
    .await
    .map_err(|e| Error::Runtime(format!("cannot start the sandbox: {e}")))?;
    tracing::info!("sandbox listening on {}", handle.base_url());
    if std::env::var_os(crate::secret::ENV_VAR).is_some() {
        tracing::warn!("ignoring {} for the sandbox", crate::secret::ENV_VAR);
    }
    cfg.base_url = Some(
        reqwest::Url::parse(&handle.base_url())
            .map_err(|e| Error::Runtime(format!("sandbox address: {e}")))?,
    );
    Ok(Some(handle))
}

/// Logs what the built-in sandbox holds at the end, and stops it.
#[cfg(feature = "sandbox")]
async fn stop_sandbox(handle: crate::sandbox::SandboxHandle) {
    for (group, size) in handle.group_sizes() {
        tracing::info!(
            "sandbox group {} now holds {size} contacts",
            crate::words::quote(&group)
        );
    }
    handle.shutdown().await;
}

/// The groups the valid rows go to, the default one for rows naming none.
fn target_groups(cfg: &SyncConfig, first: &FirstPass) -> Vec<String> {
    first
        .groups
        .iter()
        .map(|g| {
            if g.is_empty() {
                cfg.group.clone().unwrap_or_default()
            } else {
                g.clone()
            }
        })
        .collect()
}

/// The file's contact ids to check before sending: those the store has not
/// confirmed (a rerun costs nothing).
fn unchecked_ids(cfg: &SyncConfig, first: &FirstPass, maps: &Maps) -> Vec<(String, String)> {
    first
        .file_ids
        .iter()
        .filter(|(id, phone, group)| {
            let group = if group.is_empty() {
                cfg.group.as_deref().unwrap_or("")
            } else {
                group
            };
            !maps.get(group).and_then(|m| m.get(phone)).is_some_and(|e| {
                e.status == crate::state::Status::Confirmed && e.contact_id.as_ref() == Some(id)
            })
        })
        .map(|(id, phone, _)| (id.clone(), phone.clone()))
        .collect()
}

/// Closes the state store, fills the summary's request counts and picks
/// how the run ended (SPEC §2's exit codes).
fn conclude(
    cfg: &SyncConfig,
    engine: &Engine,
    pass: Result<SecondPass, Error>,
    first: &FirstPass,
    sending: Sending,
    summary_file: Option<crate::report::SummaryFile>,
    started: Instant,
) -> Result<RunResult, Error> {
    let stats = engine.dispatcher.stats();
    let sent = stats.attempts > 0;
    let pass = close_state(engine, pass, sending);
    let mut pass = match pass {
        Ok(p) => p,
        Err(e) if sent => return Err(Error::Aborted(e.to_string())),
        Err(e) => return Err(e),
    };
    pass.summary.requests = stats.attempts;
    pass.summary.retries = stats.retries;
    pass.summary.throttled = stats.throttled;
    pass.summary.windows_1252_rows = first.windows_1252;
    let ending = if let Some(why) = pass.stopped_early {
        Ending::Aborted(Some(why))
    } else {
        match sending {
            Sending::Refused | Sending::TooManyDeletes => Ending::NothingSent,
            Sending::Interrupted => Ending::Aborted(None),
            Sending::Send | Sending::DryRun if engine.aborted() => Ending::Aborted(None),
            Sending::Send | Sending::DryRun => Ending::Finished,
        }
    };
    let ending = with_panics(ending, engine.panicked.load(Ordering::Relaxed));
    RunResult::conclude(
        pass.summary,
        started,
        summary_file,
        &cfg.output,
        ending,
        sent,
    )
}

/// A run whose sending tasks panicked (a bug) fails, and says so: their rows
/// are `failed` `INTERNAL`, and the exit code is 1 even when the panic came
/// after every row of the task was reported. A run stopped early stays so.
fn with_panics(ending: Ending, panicked: u32) -> Ending {
    match ending {
        Ending::Finished if panicked > 0 => Ending::Faulted(format!(
            "internal error: {panicked} sending task(s) panicked (a bug of this tool; the log above has the message); their rows are reported failed INTERNAL, and the next run settles them"
        )),
        other => other,
    }
}

/// The report the first pass wrote while it read, valid as the run's own
/// when no row needs a request.
struct Speculation {
    report: ReportWriter,
    rejects: Option<RejectsWriter>,
    summary: Summary,
    /// Every row so far has its final outcome in the report.
    complete: bool,
    failed: Option<WriteError>,
}

impl Speculation {
    /// Whether this report is the run's own: every row has its final
    /// outcome, and no deletion is due.
    fn stands(&self, deletions: &[Deletion], sending: Sending) -> bool {
        self.complete && deletions.is_empty() && matches!(sending, Sending::Send | Sending::DryRun)
    }

    /// Writes one row's final outcome, or gives up at the first row that needs a request.
    fn row(
        &mut self,
        row: &CheckedRow,
        map: &crate::columns::ColumnMap,
        unchanged_id: Option<Option<String>>,
    ) {
        if !self.complete {
            return;
        }
        let (outcome, errors): (Outcome, &[crate::codes::RowError]) =
            match (&row.verdict, &unchanged_id) {
                (Verdict::Invalid(errors), _) => (Outcome::Invalid, errors),
                (Verdict::Valid(_), Some(_)) => (Outcome::Unchanged, &[]),
                (Verdict::Valid(_), None) => {
                    self.complete = false;
                    return;
                }
            };
        let id = unchanged_id.flatten().unwrap_or_default();
        self.summary.record_at(row.record.line, outcome, errors);
        let written = self
            .report
            .write(&crate::report::ReportRow {
                line: row.record.line,
                outcome,
                errors,
                note: if errors.is_empty() { &row.note } else { "" },
                phone: row.phone(map),
                contact_id: &id,
            })
            .and_then(|()| match (&mut self.rejects, outcome) {
                (Some(r), Outcome::Invalid) => r.write(&row.record, errors),
                _ => Ok(()),
            });
        if let Err(e) = written {
            self.failed = Some(e);
            self.complete = false;
        }
    }
}

/// Ends a run in which no row needed a request: the first pass's report is
/// moved into place and the store notes the run; nothing is sent.
fn finish_without_sending(
    cfg: &SyncConfig,
    store: Option<Store>,
    first: FirstPass,
    sending: Sending,
    spec: Speculation,
    summary_file: Option<crate::report::SummaryFile>,
    started: Instant,
) -> Result<RunResult, Error> {
    tracing::debug!("no row needs a request: the first pass's report is the run's");
    let Speculation {
        report,
        rejects,
        mut summary,
        ..
    } = spec;
    summary.windows_1252_rows = first.windows_1252;
    report.finish()?;
    if let Some(r) = rejects {
        r.finish()?;
    }
    if sending == Sending::Send
        && let Some(store) = store
    {
        for group in &first.groups {
            let group = if group.is_empty() {
                cfg.group.as_deref().unwrap_or("")
            } else {
                group
            };
            let state_err = |e: crate::state::StateError| Error::Usage(e.to_string());
            let target = store.target(&state_key(cfg, group)).map_err(state_err)?;
            store.mark_finished(target).map_err(state_err)?;
        }
    }
    RunResult::conclude(
        summary,
        started,
        summary_file,
        &cfg.output,
        Ending::Finished,
        false,
    )
}

/// The input's bytes: a regular file opened once, anything else spooled
/// (stopped by the first signal, with what came so far).
async fn open_input(source: &Source, signals: &Signals) -> Result<(InputBytes, SpoolEnd), Error> {
    let spooling = match source {
        Source::Stdin => Spooling::start(std::io::stdin(), "standard input")?,
        Source::File(path) => match InputBytes::open(path)? {
            Opened::File(bytes) => return Ok((bytes, SpoolEnd::Complete)),
            Opened::Stream(file) => Spooling::start(file, &path.display().to_string())?,
        },
    };
    Ok(spooling.finish(signals.at_least(1)).await?)
}

/// The store's key of `group`'s target.
fn state_key(cfg: &SyncConfig, group: &str) -> TargetKey {
    TargetKey {
        provider: provider_name(cfg.kind).into(),
        base_url: target_base(cfg.kind, cfg.base_url.as_ref()),
        group: group.to_string(),
    }
}

/// What the store knows of each group's target.
type Maps = HashMap<String, Arc<TargetMap>>;

/// What the first pass needs to tell which rows are unchanged.
struct Skip {
    map: Arc<TargetMap>,
    fingerprinter: Box<dyn Provider>,
    full: bool,
}

/// Locks and opens the run's store (read-only for a dry run, which takes no lock).
fn open_store(cfg: &SyncConfig) -> Result<(Option<Store>, Option<Lock>), Error> {
    let Some(path) = &cfg.state else {
        return Ok((None, None));
    };
    let state_err = |e: crate::state::StateError| Error::Usage(e.to_string());
    if cfg.dry_run {
        let store = Store::open_existing(path, &cfg.key).map_err(state_err)?;
        return Ok((store, None));
    }
    let lock = Lock::acquire(path).map_err(state_err)?;
    let store = Store::open(path, &cfg.key, false).map_err(state_err)?;
    tracing::debug!("state store {}", path.display());
    Ok((Some(store), Some(lock)))
}

/// Loads what the store knows of each group's target and, when rows are to be
/// sent, hands the store to its writer.
fn prepare_state(
    store: Option<Store>,
    cfg: &SyncConfig,
    groups: Vec<String>,
    sending: Sending,
    preload: Option<(String, Arc<TargetMap>)>,
) -> Result<(Maps, Option<StateCtx>), Error> {
    let Some(store) = store else {
        return Ok((HashMap::new(), None));
    };
    let state_err = |e: crate::state::StateError| Error::Usage(e.to_string());
    let mut maps = HashMap::new();
    let mut targets = HashMap::new();
    for group in groups {
        let key = state_key(cfg, &group);
        let target = if sending == Sending::Send {
            Some(store.target(&key).map_err(state_err)?)
        } else {
            store.find_target(&key).map_err(state_err)?
        };
        if let Some(target) = target {
            let map = match &preload {
                Some((g, map)) if *g == group => Arc::clone(map),
                _ => Arc::new(store.load(target).map_err(state_err)?),
            };
            tracing::debug!(
                "the state store knows {} numbers of target {group:?}",
                map.len()
            );
            maps.insert(group.clone(), map);
            targets.insert(group, target);
        }
    }
    let ctx = if sending == Sending::Send {
        let writer = StateWriter::start(store).map_err(state_err)?;
        Some(StateCtx { writer, targets })
    } else {
        None
    };
    Ok((maps, ctx))
}

/// The managed contacts mirror mode deletes: in each group the file names,
/// those it no longer holds or that opted out. None at all for a file with
/// no data rows, or with a row whose phone could not be read (its contact
/// cannot be told apart from a missing one); a warning says why.
fn plan_deletions(
    cfg: &SyncConfig,
    store: Option<&Store>,
    first: &FirstPass,
) -> Result<DeletionPlan, Error> {
    let mut plan = DeletionPlan::default();
    let (Some(store), Some(presence)) = (store, &first.presence) else {
        return Ok(plan);
    };
    if first.rows == 0 {
        tracing::warn!("the input has no data rows: --delete-missing deletes nothing");
        return Ok(plan);
    }
    if presence.unreadable > 0 {
        tracing::warn!(
            "{} rows have a phone number that could not be read (PHONE_MISSING, PHONE_INVALID, ROW_MALFORMED): their contacts cannot be told apart from missing ones, so --delete-missing deletes nothing this run",
            presence.unreadable
        );
        return Ok(plan);
    }
    let state_err = |e: crate::state::StateError| Error::Usage(e.to_string());
    let default = cfg.group.clone().unwrap_or_default();
    let groups: std::collections::BTreeSet<String> = first
        .groups
        .iter()
        .map(|g| {
            if g.is_empty() {
                default.clone()
            } else {
                g.clone()
            }
        })
        .collect();
    for group in groups {
        let Some(target) = store
            .find_target(&state_key(cfg, &group))
            .map_err(state_err)?
        else {
            continue;
        };
        plan.managed += store.managed_count(target).map_err(state_err)?;
        store
            .each_managed(target, |contact| {
                if presence.deletes(&group, &default, &contact.phone) {
                    plan.due.push(Deletion {
                        group: group.clone(),
                        contact,
                    });
                }
            })
            .map_err(state_err)?;
    }
    if !plan.due.is_empty() {
        tracing::info!(
            "mirror mode: {} of the {} contacts this tool manages are due for deletion",
            plan.due.len(),
            plan.managed
        );
    }
    Ok(plan)
}

/// `--max-delete`'s value as the user would write it.
fn describe_limit(limit: MaxInvalid) -> String {
    match limit {
        MaxInvalid::Count(n) => n.to_string(),
        MaxInvalid::Percent(p) => format!("{p}%"),
    }
}

/// Marks the targets synced when the run went through, and closes the store.
fn close_state(
    engine: &Engine,
    pass: Result<SecondPass, Error>,
    sending: Sending,
) -> Result<SecondPass, Error> {
    let Some(state) = &engine.state else {
        return pass;
    };
    if sending == Sending::Send && !engine.aborted() && pass.is_ok() {
        for target in state.targets.values() {
            state.writer.send(StateUpdate::Finished { target: *target });
        }
    }
    let closed = state.writer.close();
    let mut pass = pass?;
    if let Err(e) = closed {
        pass.stopped_early.get_or_insert_with(|| e.to_string());
    }
    Ok(pass)
}

/// Reads back a sample of the contact ids the file gives and refuses the run
/// when most of them do not exist or hold another number: a CRM's own id
/// column taken for the provider's would rewrite unrelated contacts. A few
/// changed numbers pass, so a file can still change numbers by id on purpose.
///
/// Each read is sent again after a failure (its retries spent, or an answer
/// that cannot be read) while the check's budget lasts: the listing's,
/// `2 × (--max-retries + 1) × (ids + 2)` requests. Past it, the ids cannot be
/// trusted nor refused: `Ok(Some(error))`, the `LISTING_FAILED` that every
/// row updating through an id of the file (one the store has not confirmed)
/// then ends with; the other rows go on.
async fn check_file_ids(
    engine: &Engine,
    samples: &[(String, String)],
    column: &str,
) -> Result<Option<crate::codes::RowError>, Error> {
    let meter = crate::dispatch::Meter::default();
    let budget = engine::listing_budget(
        engine.dispatcher.max_retries(),
        u64::try_from(samples.len()).unwrap_or(u64::MAX),
    );
    let mut wrong = Vec::new();
    for (id, phone) in samples {
        let Some(req) = engine.provider.detail(&engine.key, id) else {
            return Ok(None);
        };
        let found = loop {
            let failure = match engine
                .call_counted(req.clone(), &AtomicBool::new(false), &meter, None)
                .await
            {
                Ok(reply) => match engine.provider.parse_detail(reply.status, &reply.body) {
                    Ok(found) => break found,
                    Err(e @ crate::provider::OpError::Auth(_)) => {
                        // Credentials rejected: the run stops like any other call's would.
                        engine.op_error(e);
                        return Ok(None);
                    }
                    Err(e) => e.to_string(),
                },
                // An unreachable provider stops the run by itself; the rows say so.
                Err(_) if engine.aborted() => return Ok(None),
                Err(e) => e.to_string(),
            };
            let spent = meter.attempts.load(Ordering::Relaxed);
            if spent >= budget {
                tracing::warn!(
                    "the check of the contact ids of column {column:?} stopped after {spent} requests: {failure}"
                );
                return Ok(Some(crate::codes::RowError::new(
                    crate::codes::ErrorCode::ListingFailed,
                    format!(
                        "the check of the file's contact ids (column {}) did not complete within its budget of {budget} requests, so no update goes through an id of the file (the last failure: {failure}); the next run checks them again",
                        crate::words::quote(column)
                    ),
                )));
            }
            tracing::debug!(
                "checking contact id {id}: {failure}; reading it again ({spent} of {budget} requests spent)"
            );
        };
        match found {
            Some(held) if held == *phone => {}
            Some(_) => wrong.push(format!("{id} holds another number")),
            None => wrong.push(format!("{id} does not exist")),
        }
    }
    tracing::debug!(
        "checked {} contact ids of column {column:?}: {} wrong",
        samples.len(),
        wrong.len()
    );
    if wrong.len() * 2 > samples.len() {
        return Err(Error::Usage(format!(
            "column {} does not hold this provider's contact ids: of the first {} ids of the file, {} do not exist or hold another number ({}). Nothing was sent. If it is another system's id, leave it out with --map contactId= ; rows are then matched by phone number",
            crate::words::quote(column),
            samples.len(),
            wrong.len(),
            wrong.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(None)
}

/// Counts rows and invalid rows, stopping early when `raised` is.
fn first_pass(
    opened: crate::config::OpenInput,
    input: &InputConfig,
    raised: &AtomicBool,
    skip: Option<&Skip>,
    mut speculation: Option<Speculation>,
    mirror: bool,
) -> Result<FirstPass, Error> {
    let mut first = FirstPass {
        presence: mirror.then(Presence::default),
        ..FirstPass::default()
    };
    let map = opened.map.clone();
    let stats = scan(
        opened.reader,
        &opened.map,
        &input.normalizer,
        default_threads(),
        |row| {
            if raised.load(Ordering::Relaxed) {
                first.interrupted = true;
                return ControlFlow::Break(());
            }
            first.rows += 1;
            let mut unchanged_id = None;
            match &row.verdict {
                Verdict::Invalid(_) => first.invalid += 1,
                Verdict::Valid(c) => {
                    if c.opt_out {
                        unchanged_id = Some(None);
                    } else if let Some(skip) = skip
                        && let Some(digits) = crate::state::phone_key(&c.phone)
                    {
                        let known = skip.map.get_key(digits);
                        let fingerprint = skip.fingerprinter.payload_fingerprint(c);
                        if let Action::Unchanged(id) =
                            plan(c, known.as_ref(), fingerprint, skip.full)
                        {
                            unchanged_id = Some(id);
                        }
                    }
                    if !first.groups.contains(&c.group_id) {
                        first.groups.insert(c.group_id.clone());
                    }
                    if !c.contact_id.is_empty() && first.file_ids.len() < ID_SAMPLE {
                        first.file_ids.push((
                            c.contact_id.clone(),
                            c.phone.clone(),
                            c.group_id.clone(),
                        ));
                    }
                }
            }
            if let Some(presence) = first.presence.as_mut() {
                presence.record(&row);
            }
            if let Some(spec) = speculation.as_mut() {
                spec.row(&row, &map, unchanged_id);
            }
            ControlFlow::Continue(())
        },
    )
    .map_err(|source| Error::Read {
        path: input.source.describe(),
        source,
    })?;
    log_input_facts(&stats);
    first.windows_1252 = stats.encoding.data_rows_1252();
    // A signal after the last row still means the run was interrupted.
    first.interrupted |= raised.load(Ordering::Relaxed);
    if let Some(spec) = speculation.as_mut()
        && let Some(e) = spec.failed.take()
    {
        // The report cannot be written: nothing has been sent yet.
        return Err(e.into());
    }
    first.speculation = speculation;
    Ok(first)
}

/// The key from the environment; the sandbox brings its own, a dry run needs none.
#[cfg_attr(not(feature = "sandbox"), expect(unused_variables))]
fn api_key(kind: ProviderKind, dry_run: bool) -> Result<ApiKey, Error> {
    #[cfg(feature = "sandbox")]
    if kind == ProviderKind::Sandbox {
        return Ok(ApiKey::new(crate::sandbox::DEFAULT_API_KEY.to_string()));
    }
    match ApiKey::from_env() {
        Ok(k) => Ok(k),
        Err(_) if dry_run => Ok(ApiKey::new(String::new())),
        Err(e) => Err(Error::Usage(e.to_string())),
    }
}

/// The provider, dispatcher and shared state of the sending tasks.
fn build_engine(cfg: &SyncConfig, state: Option<StateCtx>) -> Result<Engine, Error> {
    new_engine(
        cfg.kind,
        cfg.base_url.as_ref(),
        cfg.dispatch.clone(),
        cfg.key.clone(),
        state,
    )
}

/// The provider `kind` at `base_url` (its default when `None`), redacting
/// `key` from what the server says, and that URL.
fn make_provider(
    kind: ProviderKind,
    base_url: Option<&reqwest::Url>,
    key: &ApiKey,
) -> Result<(reqwest::Url, Box<dyn Provider>), Error> {
    let bad_url = |e: crate::provider::BaseUrlError| Error::Usage(format!("--base-url: {e}"));
    let base = |default: &str| match base_url {
        Some(u) => Ok(u.clone()),
        None => reqwest::Url::parse(default).map_err(|e| Error::Usage(e.to_string())),
    };
    Ok(match kind {
        // Only a dry run gets here without a Mobivate base URL, and it sends nothing.
        ProviderKind::Mobivate => {
            let url = base("https://mobivate.invalid/")?;
            let provider = Mobivate::new(url.clone()).map_err(bad_url)?;
            (url, Box::new(provider.redacting(key)))
        }
        ProviderKind::Smspartner | ProviderKind::Sandbox => {
            let url = base(crate::provider::smspartner::DEFAULT_BASE_URL)?;
            let provider = SmsPartner::new(url.clone()).map_err(bad_url)?;
            (url, Box::new(provider.redacting(key)))
        }
    })
}

/// An engine for `kind` at `base_url` (the provider's default when `None`).
fn new_engine(
    kind: ProviderKind,
    base_url: Option<&reqwest::Url>,
    dispatch: DispatchConfig,
    key: ApiKey,
    state: Option<StateCtx>,
) -> Result<Engine, Error> {
    let (url, provider) = make_provider(kind, base_url, &key)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut dispatcher =
        Dispatcher::new(dispatch, stop_rx).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(state) = &state {
        // A request leaves only once the answers heard before it are stored.
        dispatcher = dispatcher.with_gate(Box::new(state.writer.settled()));
    }
    Ok(Engine {
        provider,
        dispatcher,
        key,
        directory: Directory::default(),
        abort: Mutex::new(None),
        stop: stop_tx,
        cancel: watch::channel(false).0,
        unanswered: std::sync::atomic::AtomicU32::new(0),
        unreachable: std::sync::atomic::AtomicU32::new(0),
        host: url.host_str().unwrap_or("the provider").to_string(),
        state,
        listing: progress::ListingGauge::default(),
        panicked: std::sync::atomic::AtomicU32::new(0),
        rows_in_adds: std::sync::atomic::AtomicU64::new(0),
    })
}

/// What the second pass leaves.
struct SecondPass {
    summary: Summary,
    /// Why the run ended early, when the log has not said it yet.
    stopped_early: Option<String>,
}

/// Resolves once `rx` holds `true`; never, if its sender is gone.
async fn raised(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|&v| v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs `job` as a task that is abandoned (its tickets dropped) once the
/// engine cancels the work in flight.
fn spawn_job(
    tasks: &mut JoinSet<()>,
    engine: &Engine,
    job: impl Future<Output = ()> + Send + 'static,
) {
    let cancel = engine.cancel.subscribe();
    tasks.spawn(async move {
        tokio::select! {
            biased;
            () = raised(cancel) => {}
            () = job => {}
        }
    });
}

/// Pass 2: stream rows through planner, dispatcher and report.
#[allow(clippy::too_many_arguments)]
async fn sync_rows(
    cfg: &SyncConfig,
    engine: &Arc<Engine>,
    maps: &Maps,
    bytes: &InputBytes,
    outputs: (ReportWriter, Option<RejectsWriter>),
    total: u64,
    sending: Sending,
    mode: progress::Mode,
    signals: &Signals,
    (deletions, backup): (
        Vec<Deletion>,
        Option<Arc<Mutex<crate::report::BackupWriter>>>,
    ),
    ids_unchecked: Option<crate::codes::RowError>,
) -> Result<SecondPass, Error> {
    let opened = cfg.input.open_stream(Box::new(bytes.reader()))?;
    let map = opened.map.clone();

    // Rows admitted but not yet written: bounds memory whatever the file size.
    let batch = engine.provider.max_batch();
    let window = batch * (cfg.dispatch.concurrency + 2) + 1024;
    let permits = Arc::new(Semaphore::new(window));

    let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
    let progress = Progress::new(mode, total + deletions.len() as u64);
    let writer = spawn_writer(done_rx, outputs, &permits, &progress, engine);
    let (mut row_rx, reader) = spawn_reader(cfg, opened);
    let watcher = watch_signals(engine, signals);
    let mut rows = Streaming {
        cfg,
        engine,
        maps,
        sending,
        map,
        permits,
        done_tx,
        tasks: JoinSet::new(),
        batcher: Batcher::new(batch),
        default_group: cfg.group.clone().unwrap_or_default(),
        ids_unchecked,
        seq: 0,
        ticker: tokio::time::interval(Duration::from_millis(200)),
        progress,
    };
    rows.take_all(&mut row_rx).await?;
    rows.flush_batches();
    // Wait for the work in flight; once stopping, the watcher cancels it after the grace.
    rows.drain().await;
    rows.delete_missing(deletions, backup);
    rows.drain().await;
    watcher.abort();
    let Streaming {
        done_tx, progress, ..
    } = rows;
    drop(done_tx);
    finish_second_pass(writer, reader, progress, bytes).await
}

/// What the report writer's task gives back: the summary, the write error
/// that stopped it if one did, and the writers to close.
type Written = (
    Summary,
    Option<WriteError>,
    ReportWriter,
    Option<RejectsWriter>,
);

/// Starts the report writer: results back in input order (SPEC §6).
fn spawn_writer(
    mut done_rx: mpsc::UnboundedReceiver<Done>,
    (mut report, mut rejects): (ReportWriter, Option<RejectsWriter>),
    permits: &Arc<Semaphore>,
    progress: &Progress,
    engine: &Arc<Engine>,
) -> tokio::task::JoinHandle<Written> {
    let counts = Arc::clone(&progress.counts);
    let writer_permits = Arc::clone(permits);
    let writer_engine = Arc::clone(engine);
    tokio::spawn(async move {
        let (summary, failed) = write_in_order(
            &mut done_rx,
            &mut report,
            &mut rejects,
            &writer_permits,
            &counts,
            |e| writer_engine.abort(Abort::Output(e.to_string())),
        )
        .await;
        (summary, failed, report, rejects)
    })
}

/// Starts the second pass's reader: it runs on its own threads and feeds
/// rows in order, a few hundred at a time (one message a row would cost
/// more than the row).
fn spawn_reader(
    cfg: &SyncConfig,
    opened: crate::config::OpenInput,
) -> (
    mpsc::Receiver<Vec<CheckedRow>>,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    const ROWS_A_MESSAGE: usize = 256;
    let (row_tx, row_rx) = mpsc::channel::<Vec<CheckedRow>>(8);
    let scan_input = cfg.input.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut buf = Vec::with_capacity(ROWS_A_MESSAGE);
        scan(
            opened.reader,
            &opened.map,
            &scan_input.normalizer,
            default_threads(),
            |row| {
                buf.push(row);
                if buf.len() < ROWS_A_MESSAGE {
                    return ControlFlow::Continue(());
                }
                let full = std::mem::replace(&mut buf, Vec::with_capacity(ROWS_A_MESSAGE));
                if row_tx.blocking_send(full).is_err() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .map_err(|source| Error::Read {
            path: scan_input.source.describe(),
            source,
        })?;
        if !buf.is_empty() {
            let _ = row_tx.blocking_send(buf);
        }
        Ok(())
    });
    (row_rx, reader)
}

/// SIGINT/SIGTERM (SPEC §5): a signal stops new requests; the grace ends
/// early on a second one, and the rest of the file is then only listed, so
/// the report stays whole.
fn watch_signals(engine: &Arc<Engine>, signals: &Signals) -> tokio::task::JoinHandle<()> {
    let engine = Arc::clone(engine);
    let signals = signals.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = signals.at_least(1) => engine.abort(Abort::Interrupted),
            () = raised(engine.stop.subscribe()) => {}
        }
        tokio::select! {
            () = signals.at_least(2) => {}
            () = tokio::time::sleep(GRACE) => {}
        }
        if !engine.cancelled() {
            tracing::warn!("abandoning the requests still in flight");
        }
        engine.cancel.send_replace(true);
    })
}

/// The second pass while rows stream through it: the report window, the
/// tasks sending, and the adds waiting to fill a batch.
struct Streaming<'a> {
    cfg: &'a SyncConfig,
    engine: &'a Arc<Engine>,
    maps: &'a Maps,
    sending: Sending,
    map: crate::columns::ColumnMap,
    /// Room in the report window (rows admitted but not yet written).
    permits: Arc<Semaphore>,
    done_tx: mpsc::UnboundedSender<Done>,
    tasks: JoinSet<()>,
    batcher: Batcher<Job>,
    default_group: String,
    /// Why the file's contact ids could not be checked, when they could not:
    /// no update goes through one the store has not confirmed.
    ids_unchecked: Option<crate::codes::RowError>,
    /// The next row's place in the report.
    seq: u64,
    ticker: tokio::time::Interval,
    progress: Progress,
}

impl Streaming<'_> {
    /// Takes every row the reader sends, in order.
    async fn take_all(
        &mut self,
        row_rx: &mut mpsc::Receiver<Vec<CheckedRow>>,
    ) -> Result<(), Error> {
        let mut received = Vec::new().into_iter();
        loop {
            let Some(row) = received.next() else {
                let rows = tokio::select! {
                    rows = row_rx.recv() => rows,
                    _ = self.ticker.tick() => {
                        self.progress.tick(self.engine.dispatcher.stats().attempts, self.engine.listing.now());
                        continue;
                    }
                };
                let Some(rows) = rows else { break };
                received = rows.into_iter();
                continue;
            };
            self.admit().await?;
            self.take(row);
        }
        Ok(())
    }

    /// Admits one row into the window. While requests are in flight their
    /// completion frees room; once none are, only the partial batches can
    /// be holding the window, so send them rather than wait forever.
    async fn admit(&mut self) -> Result<(), Error> {
        let permit = loop {
            if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
                break p;
            }
            if self.tasks.is_empty() {
                self.flush_batches();
            }
            tokio::select! {
                p = Arc::clone(&self.permits).acquire_owned() => {
                    break p.map_err(|_| Error::Runtime("internal: report window closed".into()))?;
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => self.engine.reap(joined),
                _ = self.ticker.tick() => {
                    self.progress.tick(self.engine.dispatcher.stats().attempts, self.engine.listing.now());
                }
            }
        };
        permit.forget();
        Ok(())
    }

    /// The ticket of the next row of the report.
    fn ticket(
        &mut self,
        line: u64,
        phone: String,
        record: Option<crate::record::Record>,
        note: String,
    ) -> Ticket {
        let ticket = Ticket {
            seq: self.seq,
            line,
            phone,
            record,
            tx: self.done_tx.clone(),
            finished: false,
            sent: Arc::new(AtomicBool::new(false)),
            note,
        };
        self.seq += 1;
        ticket
    }

    /// One row of the file (SPEC §5): reported at once when it needs no
    /// request (invalid, opted out, nothing sent, the run stopped, a dry
    /// run, unchanged), else sent.
    fn take(&mut self, mut row: CheckedRow) {
        let phone = row.phone(&self.map).to_string();
        let note = std::mem::take(&mut row.note);
        let ticket = self.ticket(row.record.line, phone, Some(row.record), note);
        let contact = match row.verdict {
            Verdict::Invalid(errors) => {
                ticket.finish(Outcome::Invalid, errors, "", "");
                return;
            }

            Verdict::Valid(c) => c,
        };
        if contact.opt_out {
            // Never added or updated; its note says so.
            ticket.finish(Outcome::Unchanged, Vec::new(), "", "");
            return;
        }
        match self.sending {
            Sending::Refused => {
                ticket.not_attempted("not sent: more invalid rows than --max-invalid allows");
                return;
            }
            Sending::TooManyDeletes => {
                ticket.not_attempted("not sent: more deletions due than --max-delete allows");
                return;
            }
            Sending::Interrupted => {
                ticket.not_attempted("not sent: the run was interrupted before sending began");
                return;
            }
            Sending::Send | Sending::DryRun => {}
        }
        if self.engine.aborted() {
            ticket.not_attempted(NOT_SENT);
            return;
        }
        let group = if contact.group_id.is_empty() {
            self.default_group.clone()
        } else {
            contact.group_id.clone()
        };
        let fingerprint = self.engine.provider.payload_fingerprint(&contact);
        let known = self.maps.get(&group).and_then(|m| m.get(&contact.phone));
        let action = plan(&contact, known.as_ref(), fingerprint, self.cfg.full);
        if self.sending == Sending::DryRun {
            let (outcome, id) = match action {
                Action::Add => (Outcome::WouldAdd, None),
                Action::Update(id) => (Outcome::WouldUpdate, Some(id)),
                Action::Unchanged(id) => (Outcome::Unchanged, id),
            };
            ticket.finish(outcome, Vec::new(), "", id.as_deref().unwrap_or(""));
            return;
        }
        if let (Action::Update(id), Some(unchecked)) = (&action, &self.ids_unchecked)
            && !contact.contact_id.is_empty()
            && !known.as_ref().is_some_and(|k| {
                k.status == crate::state::Status::Confirmed && k.contact_id.as_ref() == Some(id)
            })
        {
            // An id of the file that could not be checked is not used.
            ticket.fail(unchecked.clone());
            return;
        }
        let stored_id = contact.contact_id.is_empty();
        let job = Job {
            ticket,
            contact,
            group,
            fingerprint,
            prior: known.map(|k| k.status),
            stored_id,
        };
        self.send(job, action);
        // Reap finished tasks so the set does not grow with the file.
        while let Some(joined) = self.tasks.try_join_next() {
            self.engine.reap(joined);
        }
    }

    /// The planner's decision carried out: adds wait to fill a batch,
    /// updates go one by one (an update that finds the contact gone adds it).
    fn send(&mut self, job: Job, action: Action) {
        match action {
            Action::Unchanged(id) => {
                let Job { ticket, .. } = job;
                ticket.finish(
                    Outcome::Unchanged,
                    Vec::new(),
                    "",
                    id.as_deref().unwrap_or(""),
                );
            }
            Action::Add => {
                let group = job.group.clone();
                if let Some((group, jobs)) = self.batcher.push(&group, job) {
                    spawn_job(
                        &mut self.tasks,
                        self.engine,
                        Arc::clone(self.engine).add_batch(group, jobs),
                    );
                }
            }
            Action::Update(id) => {
                let worker = Arc::clone(self.engine);
                spawn_job(&mut self.tasks, self.engine, async move {
                    if let Some(job) = worker.update(job, id, "").await {
                        let group = job.group.clone();
                        worker.add_batch(group, vec![job]).await;
                    }
                });
            }
        }
    }

    /// Sends the adds still waiting in partial batches.
    fn flush_batches(&mut self) {
        for (group, jobs) in self.batcher.drain() {
            spawn_job(
                &mut self.tasks,
                self.engine,
                Arc::clone(self.engine).add_batch(group, jobs),
            );
        }
    }

    /// Waits for the work in flight.
    async fn drain(&mut self) {
        drain_tasks(
            &mut self.tasks,
            self.engine,
            &mut self.progress,
            &mut self.ticker,
        )
        .await;
    }

    /// Mirror mode (SPEC §5), once every row is through: one report row per
    /// deletion. No more deletions under way than requests in flight, so a
    /// contact is backed up and marked pending only just before its request
    /// can leave.
    fn delete_missing(
        &mut self,
        deletions: Vec<Deletion>,
        backup: Option<Arc<Mutex<crate::report::BackupWriter>>>,
    ) {
        let started = Instant::now();
        let slots = Arc::new(Semaphore::new(self.cfg.dispatch.concurrency));
        for deletion in deletions {
            let ticket = self.ticket(0, deletion.contact.phone.clone(), None, String::new());
            match (&backup, self.sending) {
                (Some(backup), Sending::Send) => {
                    let worker = Arc::clone(self.engine);
                    let backup = Arc::clone(backup);
                    let slots = Arc::clone(&slots);
                    spawn_job(&mut self.tasks, self.engine, async move {
                        let _slot = slots.acquire_owned().await;
                        worker.delete(deletion, ticket, backup, started).await;
                    });
                }
                (_, Sending::DryRun) => {
                    let id = deletion.contact.contact_id.unwrap_or_default();
                    ticket.finish(Outcome::WouldDelete, Vec::new(), "", &id);
                }
                _ => ticket.not_attempted(NOT_SENT),
            }
        }
    }
}

/// Waits for the report writer and the reader, and closes the outputs.
async fn finish_second_pass(
    writer: tokio::task::JoinHandle<Written>,
    reader: tokio::task::JoinHandle<Result<(), Error>>,
    progress: Progress,
    bytes: &InputBytes,
) -> Result<SecondPass, Error> {
    let (summary, failed, report, rejects) = writer
        .await
        .map_err(|e| Error::Runtime(format!("internal: report writer failed: {e}")))?;
    progress.finish();
    let read_result = reader
        .await
        .map_err(|e| Error::Runtime(format!("internal: reader failed: {e}")))?;
    if let Some(e) = failed {
        // The partial report keeps what could be written.
        let _ = finish_outputs(report, rejects, false);
        return Ok(SecondPass {
            summary,
            stopped_early: Some(format!("{e}; stopped sending")),
        });
    }
    read_result?;
    if let Some(warning) = bytes.size_warning() {
        tracing::warn!("{warning}");
    }
    finish_outputs(report, rejects, true)?;
    Ok(SecondPass {
        summary,
        stopped_early: None,
    })
}

/// Waits for every task of `tasks`, ticking the progress display meanwhile.
async fn drain_tasks(
    tasks: &mut JoinSet<()>,
    engine: &Engine,
    progress: &mut Progress,
    ticker: &mut tokio::time::Interval,
) {
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(joined) => engine.reap(joined),
                None => break,
            },
            _ = ticker.tick() => {
                progress.tick(engine.dispatcher.stats().attempts, engine.listing.now());
            }
        }
    }
}

/// Moves the report and rejects file to their final paths (`commit`), or
/// only flushes them, leaving each at its `.partial` path.
fn finish_outputs(
    mut report: ReportWriter,
    rejects: Option<RejectsWriter>,
    commit: bool,
) -> Result<(), WriteError> {
    if !commit {
        report.flush()?;
        if let Some(mut r) = rejects {
            r.flush()?;
        }
        return Ok(());
    }
    report.finish()?;
    if let Some(r) = rejects {
        r.finish()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_base_url(&u("https://api.smspartner.fr"), false).is_ok());
        assert!(check_base_url(&u("http://127.0.0.1:8080"), false).is_ok());
        assert!(check_base_url(&u("http://localhost:8080"), false).is_ok());
        assert!(check_base_url(&u("http://[::1]:8080"), false).is_ok());
        assert!(check_base_url(&u("http://api.example.com"), false).is_err());
        assert!(check_base_url(&u("http://api.example.com"), true).is_ok());
        assert!(check_base_url(&u("ftp://api.example.com"), true).is_err());
    }

    #[test]
    fn a_panicking_task_fails_a_run_that_would_have_finished() {
        assert_eq!(with_panics(Ending::Finished, 0), Ending::Finished);
        assert!(matches!(
            with_panics(Ending::Finished, 2),
            Ending::Faulted(m) if m.contains("2 sending task(s) panicked")
        ));
        // Stopped early or sending nothing: that ending stands.
        assert_eq!(with_panics(Ending::Aborted(None), 1), Ending::Aborted(None));
        assert_eq!(with_panics(Ending::NothingSent, 1), Ending::NothingSent);
    }

    #[test]
    fn the_default_smspartner_url_needs_the_platform_roots() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(speaks_https(ProviderKind::Smspartner, None));
        assert!(speaks_https(ProviderKind::Mobivate, None));
        assert!(!speaks_https(ProviderKind::Sandbox, None));
        let local = u("http://127.0.0.1:8080");
        assert!(!speaks_https(ProviderKind::Smspartner, Some(&local)));
        let remote = u("https://api.example.com");
        assert!(speaks_https(ProviderKind::Mobivate, Some(&remote)));
    }
}
