//! `contact-sync state`: where a target's store is and what it knows
//! (`show`), refilling it from the provider's listing (`rebuild`), and
//! deleting it (`forget`).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::{ProviderKind, StateAction, StateArgs, StateTarget};
use crate::codes::exit;
use crate::config::Error;
use crate::dispatch::DispatchConfig;
use crate::state::{Lock, StateError, StateWriter, Store, TargetKey};

use super::engine::StateCtx;
use super::{
    api_key, check_base_url, check_roots, default_rate, new_engine, provider_name, target_base,
};

/// Runs a `state` subcommand; `Ok` carries the exit code.
pub(crate) fn run(args: &StateArgs) -> Result<u8, Error> {
    match &args.action {
        StateAction::Show(target) => show(target),
        StateAction::Rebuild(target) => rebuild(target),
        StateAction::Forget { target, yes } => forget(target, *yes),
    }
}

fn state_err(e: StateError) -> Error {
    Error::Usage(e.to_string())
}

/// The base URL flag, checked like `sync` checks it.
fn base_url(t: &StateTarget) -> Result<Option<reqwest::Url>, Error> {
    t.base_url
        .as_deref()
        .map(|u| {
            let url = reqwest::Url::parse(u)
                .map_err(|e| Error::Usage(format!("--base-url {}: {e}", crate::words::quote(u))))?;
            check_base_url(&url, t.allow_insecure_http)?;
            Ok(url)
        })
        .transpose()
}

/// The target the flags name.
fn target_key(t: &StateTarget, kind: ProviderKind) -> Result<TargetKey, Error> {
    Ok(TargetKey {
        provider: provider_name(kind).into(),
        base_url: target_base(kind, base_url(t)?.as_ref()),
        group: t.group_id.clone().unwrap_or_default(),
    })
}

/// The store's file: `--state`, or the one `sync` would use for these flags.
fn store_path(t: &StateTarget) -> Result<PathBuf, Error> {
    if let Some(p) = &t.state {
        return Ok(p.clone());
    }
    let kind = t.provider.ok_or_else(|| {
        Error::Usage("name the store: --state PATH, or --provider (with --base-url and --group-id as for sync)".into())
    })?;
    crate::state::default_path(&target_key(t, kind)?).ok_or_else(|| {
        Error::Usage("cannot find the user's state directory: pass --state PATH".into())
    })
}

fn show(t: &StateTarget) -> Result<u8, Error> {
    let path = store_path(t)?;
    let mut out = std::io::stdout().lock();
    let print = |out: &mut dyn Write, s: String| {
        writeln!(out, "{s}").map_err(|e| Error::Runtime(format!("cannot write: {e}")))
    };
    if !path.exists() {
        print(&mut out, format!("no state store at {}", path.display()))?;
        return Ok(exit::OK);
    }
    // Listing targets needs no key: the account fingerprint is not shown.
    let store =
        Store::open(&path, &crate::secret::ApiKey::new(String::new()), true).map_err(state_err)?;
    print(&mut out, format!("state store: {}", path.display()))?;
    let summaries = store.summaries().map_err(state_err)?;
    if summaries.is_empty() {
        print(&mut out, "  no target yet".into())?;
    }
    for s in summaries {
        let when = s
            .last_sync
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or("never finished".into(), |d| {
                d.format("%Y-%m-%d %H:%M UTC").to_string()
            });
        let group = if s.key.group.is_empty() {
            String::new()
        } else {
            format!(" group {}", s.key.group)
        };
        print(
            &mut out,
            format!(
                "  {} {}{group}: {} numbers ({} synced by this tool), {} pending, last sync {when}",
                s.key.provider, s.key.base_url, s.numbers, s.managed, s.pending
            ),
        )?;
    }
    Ok(exit::OK)
}

fn rebuild(t: &StateTarget) -> Result<u8, Error> {
    let kind = t
        .provider
        .ok_or_else(|| Error::Usage("state rebuild needs --provider".into()))?;
    if kind == ProviderKind::Smspartner && t.group_id.is_none() {
        return Err(Error::Usage(
            "--provider smspartner needs --group-id".into(),
        ));
    }
    let url = base_url(t)?;
    if kind == ProviderKind::Mobivate && url.is_none() {
        return Err(Error::Usage("--provider mobivate needs --base-url".into()));
    }
    check_roots(kind, url.as_ref())?;
    let key = api_key(kind, false)?;
    let path = store_path(t)?;
    let _lock = Lock::acquire(&path).map_err(state_err)?;
    let store = Store::open(&path, &key, false).map_err(state_err)?;
    let group = t.group_id.clone().unwrap_or_default();
    let target = store.target(&target_key(t, kind)?).map_err(state_err)?;
    let writer = StateWriter::start(store).map_err(state_err)?;
    let state = StateCtx {
        writer,
        targets: HashMap::from([(group.clone(), target)]),
    };
    let dispatch = DispatchConfig {
        rate: default_rate(kind),
        ..DispatchConfig::default()
    };
    let engine = new_engine(kind, url.as_ref(), dispatch, key, Some(state))?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let listed = runtime.block_on(engine.list_target(&group));
    let closed = engine.state.as_ref().map(|s| s.writer.close());
    let sent = engine.dispatcher.stats().attempts;
    match listed {
        Ok(ids) => {
            if let Some(Err(e)) = closed {
                return Err(Error::Aborted(e.to_string()));
            }
            crate::logging::emit(
                crate::logging::Level::Info,
                &format!(
                    "state store {}: {} contacts of the target are known ({sent} requests); none is managed until a sync confirms it",
                    path.display(),
                    ids.len()
                ),
                None,
            );
            Ok(exit::OK)
        }
        Err(e) => Err(Error::Aborted(format!(
            "the listing did not complete: {}",
            e.map_or("stopped".into(), |e| e.message)
        ))),
    }
}

fn forget(t: &StateTarget, yes: bool) -> Result<u8, Error> {
    let path = store_path(t)?;
    if !path.exists() {
        crate::logging::emit(
            crate::logging::Level::Info,
            &format!("no state store at {}", path.display()),
            None,
        );
        return Ok(exit::OK);
    }
    if !yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(Error::Usage(format!(
                "state forget would delete {}: add --yes to confirm",
                path.display()
            )));
        }
        eprint!(
            "Delete {}? The next sync re-sends every row (no duplicates: existing contacts are updated). Type yes: ",
            path.display()
        );
        let mut answer = String::new();
        let _ = stdin.lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            crate::logging::emit(crate::logging::Level::Info, "nothing deleted", None);
            return Ok(exit::NOTHING_SENT);
        }
    }
    let lock = Lock::acquire(&path).map_err(state_err)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        remove(Path::new(&p))?;
    }
    drop(lock);
    crate::logging::emit(
        crate::logging::Level::Info,
        &format!("deleted {}", path.display()),
        None,
    );
    Ok(exit::OK)
}

fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Runtime(format!(
            "cannot delete {}: {e}",
            path.display()
        ))),
    }
}
