//! `contact-sync sync`: validated rows become add or update calls, sent under
//! the rate, concurrency and retry rules, with every row's fate in the report.
//!
//! Flow: a pre-pass validates the whole file (exact total, `--max-invalid`);
//! the second pass streams checked rows into the planner; adds are batched
//! per target, each batch or update runs as a task through the dispatcher;
//! results come back out of order and a writer puts them back in input order.
//! A window of admitted-but-unwritten rows bounds memory.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::{LogArgs, ProviderKind, SyncArgs};
use crate::codes::{Outcome, exit};
use crate::config::{Error, InputConfig, OutputConfig, Source};
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::plan::{Action, Batcher, plan};
use crate::progress::{self, Progress};
use crate::provider::Provider;
use crate::provider::mobivate::Mobivate;
use crate::provider::smspartner::SmsPartner;
use crate::report::{RejectsWriter, ReportWriter, Summary};
use crate::scan::{Verdict, scan};
use crate::secret::ApiKey;
use crate::validate::{RunResult, default_threads};

mod engine;

use engine::{Abort, Directory, Done, Engine, Job, Ticket, write_in_order};

/// A share or a count of invalid rows beyond which nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxInvalid {
    /// At most this many invalid rows.
    Count(u64),
    /// At most this percentage of the rows.
    Percent(f64),
}

impl MaxInvalid {
    /// `N` or `N%`.
    pub fn parse(s: &str) -> Result<MaxInvalid, Error> {
        let bad = || {
            Error::Usage(format!(
                "--max-invalid {s:?}: expected a count like 10 or a share like 5%"
            ))
        };
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if (0.0..=100.0).contains(&p) {
                    Ok(MaxInvalid::Percent(p))
                } else {
                    Err(bad())
                }
            }
            None => s.trim().parse().map(MaxInvalid::Count).map_err(|_| bad()),
        }
    }

    /// Whether `invalid` of `rows` is more than allowed.
    pub fn exceeded(self, invalid: u64, rows: u64) -> bool {
        match self {
            MaxInvalid::Count(n) => invalid > n,
            MaxInvalid::Percent(p) => rows > 0 && (invalid as f64) * 100.0 > p * rows as f64,
        }
    }
}

/// The default rate for each provider, in requests per second.
pub fn default_rate(kind: ProviderKind) -> f64 {
    match kind {
        // Neighbouring SMS Partner endpoints allow 360/min; contact endpoints document nothing.
        ProviderKind::Smspartner | ProviderKind::Mobivate => 5.0,
        ProviderKind::Sandbox => 50.0,
    }
}

/// Refuses plain `http://` to anything but loopback unless explicitly allowed.
pub fn check_base_url(url: &reqwest::Url, allow_insecure: bool) -> Result<(), Error> {
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

/// A copy of standard input on disk, removed when dropped.
struct Spool(PathBuf);

impl Spool {
    fn stdin() -> Result<Spool, Error> {
        let path = std::env::temp_dir().join(format!(
            "contact-sync-stdin-{}-{}.csv",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let mut file = std::fs::File::create(&path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        let spool = Spool(path);
        std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(|source| Error::Open {
            path: "<stdin>".into(),
            source,
        })?;
        Ok(spool)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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
}

impl SyncConfig {
    fn from_args(args: &SyncArgs) -> Result<SyncConfig, Error> {
        let input = InputConfig::from_args(&args.input)?;
        let output = OutputConfig::from_args(&args.output, &input.source)?;
        let base_url = match &args.base_url {
            Some(u) => {
                let url = reqwest::Url::parse(u)
                    .map_err(|e| Error::Usage(format!("--base-url {u:?}: {e}")))?;
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
        let rate = args.rate.unwrap_or_else(|| default_rate(args.provider));
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::Usage(format!(
                "--rate {rate}: must be a positive number"
            )));
        }
        if args.concurrency == 0 {
            return Err(Error::Usage("--concurrency must be at least 1".into()));
        }
        let mut dispatch = DispatchConfig {
            rate,
            concurrency: args.concurrency,
            ..DispatchConfig::default()
        };
        dispatch.retry.max_retries = args.max_retries;
        let max_invalid = args
            .max_invalid
            .as_deref()
            .map(MaxInvalid::parse)
            .transpose()?;
        Ok(SyncConfig {
            input,
            output,
            kind: args.provider,
            base_url,
            group: args.group_id.clone(),
            dispatch,
            dry_run: args.dry_run,
            max_invalid,
        })
    }
}

/// Runs `sync`.
pub fn run(args: &SyncArgs, log: &LogArgs) -> Result<RunResult, Error> {
    let started = Instant::now();
    let mut cfg = SyncConfig::from_args(args)?;
    let _spool = if cfg.input.source == Source::Stdin {
        let spool = Spool::stdin()?;
        cfg.input.source = Source::File(spool.0.clone());
        Some(spool)
    } else {
        None
    };
    let threads = default_threads();

    // Pass 1: validate everything before the first request.
    let opened = cfg.input.open()?;
    if !opened.ignored.is_empty() {
        tracing::warn!(
            "ignoring columns with no matching field: {}",
            opened.ignored.join(", ")
        );
    }
    let has_group_column = opened.map.get(crate::columns::Field::GroupId).is_some();
    let (mut rows, mut invalid) = (0u64, 0u64);
    scan(
        opened.reader,
        &opened.map,
        &cfg.input.normalizer,
        threads,
        |row| {
            rows += 1;
            invalid += u64::from(matches!(row.verdict, Verdict::Invalid(_)));
            ControlFlow::Continue(())
        },
    )
    .map_err(|source| Error::Read {
        path: cfg.input.source.describe(),
        source,
    })?;
    let refuse = cfg.max_invalid.is_some_and(|m| m.exceeded(invalid, rows));
    if refuse {
        tracing::error!(
            "{invalid} of {rows} rows are invalid, more than --max-invalid allows: sending nothing"
        );
    }
    if matches!(cfg.kind, ProviderKind::Smspartner) && cfg.group.is_none() && !has_group_column {
        return Err(Error::Usage(
            "--provider smspartner needs --group-id (or a groupId column)".into(),
        ));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(threads.max(2))
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let mode = progress::mode(std::io::stderr().is_terminal(), log.quiet);
    let (summary, aborted) = runtime.block_on(async {
        #[cfg(feature = "sandbox")]
        let sandbox = if cfg.kind == ProviderKind::Sandbox && !cfg.dry_run && !refuse {
            let handle = crate::sandbox::start(crate::sandbox::SandboxConfig::default())
                .await
                .map_err(|e| Error::Runtime(format!("cannot start the sandbox: {e}")))?;
            tracing::info!("sandbox listening on {}", handle.base_url());
            if std::env::var_os(crate::secret::ENV_VAR).is_some() {
                tracing::warn!("ignoring {} for the sandbox", crate::secret::ENV_VAR);
            }
            Some(handle)
        } else {
            None
        };
        #[cfg(feature = "sandbox")]
        if let Some(handle) = &sandbox {
            cfg.base_url = Some(
                reqwest::Url::parse(&handle.base_url())
                    .map_err(|e| Error::Runtime(format!("sandbox address: {e}")))?,
            );
            if cfg.group.is_none() {
                cfg.group = Some(crate::sandbox::DEFAULT_GROUP.to_string());
            }
        }
        let result = sync_rows(&cfg, rows, refuse, mode).await;
        #[cfg(feature = "sandbox")]
        if let Some(handle) = sandbox {
            let state = handle.snapshot();
            for g in &state.smspartner {
                tracing::info!(
                    "sandbox group {:?} now holds {} contacts",
                    g.id,
                    g.contacts.len()
                );
            }
            handle.shutdown().await;
        }
        result
    })?;
    let stopped = if refuse {
        Some(exit::NOTHING_SENT)
    } else if aborted {
        Some(exit::ABORTED)
    } else {
        None
    };
    RunResult::conclude(summary, started, &cfg.output, stopped)
}

/// The key from the environment; the sandbox brings its own, a dry run needs none.
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

/// Pass 2: stream rows through planner, dispatcher and report.
async fn sync_rows(
    cfg: &SyncConfig,
    total: u64,
    refuse: bool,
    mode: progress::Mode,
) -> Result<(Summary, bool), Error> {
    let key = api_key(cfg.kind, cfg.dry_run || refuse)?;
    let bad_url = |e: crate::provider::BaseUrlError| Error::Usage(format!("--base-url: {e}"));
    let base = |default: &str| match &cfg.base_url {
        Some(u) => Ok(u.clone()),
        None => reqwest::Url::parse(default).map_err(|e| Error::Usage(e.to_string())),
    };
    let provider: Box<dyn Provider> = match cfg.kind {
        // Only a dry run gets here without a Mobivate base URL, and it sends nothing.
        ProviderKind::Mobivate => {
            Box::new(Mobivate::new(base("https://mobivate.invalid/")?).map_err(bad_url)?)
        }
        ProviderKind::Smspartner | ProviderKind::Sandbox => Box::new(
            SmsPartner::new(base(crate::provider::smspartner::DEFAULT_BASE_URL)?)
                .map_err(bad_url)?,
        ),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher =
        Dispatcher::new(cfg.dispatch.clone(), stop_rx).map_err(|e| Error::Usage(e.to_string()))?;
    let engine = Arc::new(Engine {
        provider,
        dispatcher,
        key,
        directory: Directory::default(),
        abort: Mutex::new(None),
        stop: stop_tx,
        unanswered: std::sync::atomic::AtomicU32::new(0),
    });

    let opened = cfg.input.open()?;
    let header = opened.reader.header().to_vec();
    let delimiter = opened.reader.delimiter();
    let map = opened.map.clone();
    let mut report = ReportWriter::create(&cfg.output.report)?;
    let mut rejects = match &cfg.output.rejects {
        Some(t) => Some(RejectsWriter::create(t, &header, delimiter)?),
        None => None,
    };

    // Rows admitted but not yet written: bounds memory whatever the file size.
    let batch = engine.provider.max_batch();
    let window = batch * (cfg.dispatch.concurrency + 2) + 1024;
    let permits = Arc::new(Semaphore::new(window));

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut progress = Progress::new(mode, total);
    let counts = Arc::clone(&progress.counts);
    let writer_permits = Arc::clone(&permits);
    let writer = tokio::spawn(async move {
        let result = write_in_order(
            &mut done_rx,
            &mut report,
            &mut rejects,
            &writer_permits,
            &counts,
        )
        .await;
        if result.is_err() {
            // Unblock the reader side: nothing more can be written.
            writer_permits.close();
        }
        let summary = result?;
        report.finish()?;
        if let Some(r) = rejects {
            r.finish()?;
        }
        Ok::<Summary, Error>(summary)
    });
    // The reader runs on its own threads and feeds rows in order.
    let (row_tx, mut row_rx) = mpsc::channel(1024);
    let scan_input = cfg.input.clone();
    let threads = default_threads();
    let reader = tokio::task::spawn_blocking(move || -> Result<(), Error> {
        scan(
            opened.reader,
            &opened.map,
            &scan_input.normalizer,
            threads,
            |row| {
                if row_tx.blocking_send(row).is_err() {
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
        Ok(())
    });

    let signal_engine = Arc::clone(&engine);
    let signals = tokio::spawn(async move {
        wait_for_stop_signal().await;
        signal_engine.abort(Abort::Interrupted);
    });

    let mut tasks = JoinSet::new();
    let mut batcher: Batcher<Job> = Batcher::new(batch);
    let default_group = cfg.group.clone().unwrap_or_default();
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        let row = tokio::select! {
            row = row_rx.recv() => row,
            _ = ticker.tick() => {
                let stats = engine.dispatcher.stats();
                progress.tick(stats.attempts, stats.rate);
                continue;
            }
        };
        let Some(row) = row else { break };
        // Admit the row into the window. While requests are in flight their
        // completion frees room; once none are, only the partial batches can
        // be holding the window, so send them rather than wait forever.
        let permit = loop {
            if let Ok(p) = Arc::clone(&permits).try_acquire_owned() {
                break p;
            }
            if tasks.is_empty() {
                for (group, jobs) in batcher.drain() {
                    tasks.spawn(Arc::clone(&engine).add_batch(group, jobs));
                }
            }
            tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => {
                    break p.map_err(|_| Error::Runtime("internal: report window closed".into()))?;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = ticker.tick() => {
                    let stats = engine.dispatcher.stats();
                    progress.tick(stats.attempts, stats.rate);
                }
            }
        };
        permit.forget();
        progress
            .counts
            .read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ticket = Ticket {
            seq,
            line: row.record.line,
            phone: row.phone(&map).to_string(),
            record: Some(row.record),
            tx: done_tx.clone(),
            finished: false,
        };
        seq += 1;
        let contact = match row.verdict {
            Verdict::Invalid(errors) => {
                ticket.finish(Outcome::Invalid, errors, "", "");
                continue;
            }
            Verdict::Valid(c) => c,
        };
        if refuse {
            ticket.not_attempted("not sent: more invalid rows than --max-invalid allows");
            continue;
        }
        if engine.aborted() {
            ticket.not_attempted("run stopped before this row was sent");
            continue;
        }
        let group = if contact.group_id.is_empty() {
            default_group.clone()
        } else {
            contact.group_id.clone()
        };
        let action = plan(&contact, None, 0);
        if cfg.dry_run {
            let (outcome, id) = match &action {
                Action::Add => (Outcome::WouldAdd, String::new()),
                Action::Update(id) | Action::Unchanged(id) => (Outcome::WouldUpdate, id.clone()),
            };
            ticket.finish(outcome, Vec::new(), "", &id);
            continue;
        }
        let job = Job { ticket, contact };
        match action {
            Action::Add => {
                if let Some((group, jobs)) = batcher.push(&group, job) {
                    tasks.spawn(Arc::clone(&engine).add_batch(group, jobs));
                }
            }
            Action::Update(id) | Action::Unchanged(id) => {
                let engine = Arc::clone(&engine);
                tasks.spawn(async move { engine.update(job, id, "").await });
            }
        }
        // Reap finished tasks so the set does not grow with the file.
        while tasks.try_join_next().is_some() {}
    }
    for (group, jobs) in batcher.drain() {
        tasks.spawn(Arc::clone(&engine).add_batch(group, jobs));
    }
    // Wait for in-flight work; once stopped, give it a few seconds, then abandon it.
    loop {
        let stopped = engine.aborted();
        let next = if stopped {
            match tokio::time::timeout(Duration::from_secs(5), tasks.join_next()).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!("abandoning {} in-flight requests", tasks.len());
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    None
                }
            }
        } else {
            tokio::select! {
                n = tasks.join_next() => n,
                _ = ticker.tick() => {
                    let stats = engine.dispatcher.stats();
                    progress.tick(stats.attempts, stats.rate);
                    continue;
                }
            }
        };
        if next.is_none() {
            break;
        }
    }
    signals.abort();
    drop(done_tx);
    let read_result = reader
        .await
        .map_err(|e| Error::Runtime(format!("internal: reader failed: {e}")))?;
    let mut summary = writer
        .await
        .map_err(|e| Error::Runtime(format!("internal: report writer failed: {e}")))??;
    read_result?;
    progress.finish();
    let stats = engine.dispatcher.stats();
    summary.requests = stats.attempts;
    summary.retries = stats.retries;
    summary.throttled = stats.throttled;
    let aborted = engine.aborted();
    Ok((summary, aborted))
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_invalid_counts_and_shares() {
        assert_eq!(MaxInvalid::parse("10").unwrap(), MaxInvalid::Count(10));
        assert_eq!(MaxInvalid::parse("5%").unwrap(), MaxInvalid::Percent(5.0));
        assert!(MaxInvalid::parse("x").is_err());
        assert!(MaxInvalid::parse("150%").is_err());
        assert!(!MaxInvalid::Count(2).exceeded(2, 100));
        assert!(MaxInvalid::Count(2).exceeded(3, 100));
        assert!(!MaxInvalid::Percent(5.0).exceeded(5, 100));
        assert!(MaxInvalid::Percent(5.0).exceeded(6, 100));
    }

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
}
