//! The store's writer: one thread that owns the connection and commits what
//! the sending tasks report, a few hundred changes a transaction, as they
//! arrive. Pending marks are acknowledged only once committed, so a request
//! never leaves before the store knows it may be applied; and [`Settled`]
//! lets a request wait until every answer heard before it is committed, so a
//! killed run loses only the answers of requests still in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::{Connection, params};
use tokio::sync::{oneshot, watch};

use super::{StateError, Status, Store, now};

/// One change to the store.
#[derive(Debug)]
pub(crate) enum Update {
    /// These numbers are about to be sent: pending until answered.
    Pending {
        /// The target.
        target: i64,
        /// The rows, with what is sent.
        rows: Vec<Sent>,
    },
    /// The provider confirmed what was sent for this number.
    Confirmed {
        /// The target.
        target: i64,
        /// What was sent, and the id when the answer carried one.
        row: Sent,
    },
    /// The provider holds these numbers under these ids (listing, lookups).
    Known {
        /// The target.
        target: i64,
        /// (E.164 number, contact id).
        entries: Vec<(String, String)>,
    },
    /// The provider refused what was sent: what it holds is not known any more.
    Refused {
        /// The target.
        target: i64,
        /// The number.
        phone: String,
    },
    /// The stored id of this number does not exist on the provider any more.
    Stale {
        /// The target.
        target: i64,
        /// The number.
        phone: String,
    },
    /// This managed contact is about to be deleted (mirror mode): pending
    /// until answered.
    PendingDelete {
        /// The target.
        target: i64,
        /// The number.
        phone: String,
    },
    /// The provider deleted this contact (or says it was already gone): the
    /// store forgets it.
    Deleted {
        /// The target.
        target: i64,
        /// The number.
        phone: String,
    },
    /// The provider refused to delete this contact: it stands as before.
    Kept {
        /// The target.
        target: i64,
        /// The number.
        phone: String,
        /// Its status before the deletion was attempted.
        status: Status,
    },
    /// A run on this target went through to its end.
    Finished {
        /// The target.
        target: i64,
    },
}

impl Update {
    /// The target whose contacts this changes (`None`: it changes none).
    fn changed_target(&self) -> Option<i64> {
        match self {
            Update::Finished { .. } => None,
            Update::Pending { target, .. }
            | Update::Confirmed { target, .. }
            | Update::Known { target, .. }
            | Update::Refused { target, .. }
            | Update::Stale { target, .. }
            | Update::PendingDelete { target, .. }
            | Update::Deleted { target, .. }
            | Update::Kept { target, .. } => Some(*target),
        }
    }
}

/// What was (or is about to be) sent for one number.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// The E.164 number.
    pub phone: String,
    /// Add or update.
    pub kind: Status,
    /// The id, when known.
    pub contact_id: Option<String>,
    /// Fingerprint of the fields sent.
    pub fingerprint: u64,
    /// The fields sent, as JSON (for a later diff or a deletion backup).
    pub fields: String,
}

enum Msg {
    Update(Update),
    /// Commit what came before and stop.
    Close,
    /// Answered once everything before it is committed.
    Barrier(oneshot::Sender<Result<(), String>>),
}

/// The handle the run uses to change the store.
pub(crate) struct StateWriter {
    tx: mpsc::Sender<Msg>,
    /// Changes queued so far, and committed so far (by the writer thread).
    settled: Settled,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<Result<(), StateError>>>>,
}

impl StateWriter {
    /// Moves `store` to its own thread.
    pub(crate) fn start(store: Store) -> Result<StateWriter, StateError> {
        let (tx, rx) = mpsc::channel();
        let (committed_tx, committed) = watch::channel(0);
        let path = store.path.clone();
        let thread = std::thread::Builder::new()
            .name("state".into())
            .spawn(move || run(store.conn, store.path, rx, committed_tx))
            .map_err(|e| StateError::unusable(&path, format!("cannot start its writer: {e}")))?;
        Ok(StateWriter {
            tx,
            settled: Settled {
                queued: Arc::new(AtomicU64::new(0)),
                committed,
            },
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues a change.
    pub(crate) fn send(&self, update: Update) {
        self.settled.queued.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Update(update));
    }

    /// A handle that waits until what is queued at the time is committed.
    pub(crate) fn settled(&self) -> Settled {
        self.settled.clone()
    }

    /// Queues a change and waits until it is committed.
    pub(crate) async fn commit(&self, update: Update) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.settled.queued.fetch_add(1, Ordering::SeqCst);
        self.tx
            .send(Msg::Update(update))
            .and_then(|()| self.tx.send(Msg::Barrier(done)))
            .map_err(|_| "the state store's writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the state store's writer stopped".to_string())?
    }

    /// Commits what is queued and closes the store; later changes are dropped.
    pub(crate) fn close(&self) -> Result<(), StateError> {
        let _ = self.tx.send(Msg::Close);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match thread.map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StateError::Unusable {
                path: String::new(),
                message: "internal: the state writer panicked".into(),
            }),
            None => Ok(()),
        }
    }
}

/// Waits for the store to catch up with the changes queued so far.
#[derive(Clone)]
pub(crate) struct Settled {
    queued: Arc<AtomicU64>,
    committed: watch::Receiver<u64>,
}

impl Settled {
    /// Resolves once every change queued before the call is committed (or
    /// the writer is gone, which the next pending mark reports).
    pub(crate) async fn wait(&self) {
        let want = self.queued.load(Ordering::SeqCst);
        let mut committed = self.committed.clone();
        let _ = committed.wait_for(|done| *done >= want).await;
    }
}

/// How many changes go into one transaction at most.
const BATCH: usize = 512;

fn run(
    mut conn: Connection,
    path: PathBuf,
    rx: mpsc::Receiver<Msg>,
    committed: watch::Sender<u64>,
) -> Result<(), StateError> {
    let mut failed: Option<String> = None;
    // Targets whose contacts this run changed: their snapshots are renewed at the end.
    let mut touched = std::collections::BTreeSet::new();
    while let Ok(first) = rx.recv() {
        let mut msgs = vec![first];
        while msgs.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        let mut barriers = Vec::new();
        let mut updates = Vec::new();
        let mut closing = false;
        let mut seen = 0;
        for m in msgs {
            match m {
                Msg::Update(u) if !closing => {
                    seen += 1;
                    if let Some(target) = u.changed_target() {
                        touched.insert(target);
                    }
                    updates.push(u);
                }
                Msg::Update(_) => seen += 1,
                Msg::Barrier(b) => barriers.push(b),
                Msg::Close => closing = true,
            }
        }
        if failed.is_none()
            && !updates.is_empty()
            && let Err(e) = apply(&mut conn, &updates)
        {
            tracing::error!("cannot write the state store {}: {e}", path.display());
            failed = Some(e.to_string());
        }
        // Failed or not, these are done with: a failure stops the run through
        // the next pending mark, not by leaving a request waiting here.
        committed.send_modify(|done| *done += seen);
        for b in barriers {
            let _ = b.send(match &failed {
                None => Ok(()),
                Some(e) => Err(format!(
                    "cannot write the state store {}: {e}",
                    path.display()
                )),
            });
        }
        if closing {
            break;
        }
    }
    if failed.is_none() {
        for target in touched {
            // Only a speed-up for the next run: a failure here costs that run
            // a row-by-row read, nothing else.
            if let Err(e) = super::snapshot::renew(&conn, &path, target) {
                tracing::debug!("state snapshot not written: {e}");
            }
        }
    }
    match failed {
        None => Ok(()),
        Some(e) => Err(StateError::unusable(&path, format!("cannot write it: {e}"))),
    }
}

fn apply(conn: &mut Connection, updates: &[Update]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let at = now();
    for u in updates {
        match u {
            Update::Pending { target, rows } => write_pending(&tx, *target, rows, at)?,
            Update::Confirmed { target, row } => write_confirmed(&tx, *target, row, at)?,
            Update::Known { target, entries } => {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO contacts (target, phone, contact_id, status, managed, updated_at)
                     VALUES (?1, ?2, ?3, 3, 0, ?4)
                     ON CONFLICT (target, phone) DO UPDATE SET contact_id = excluded.contact_id",
                )?;
                for (phone, id) in entries {
                    stmt.execute(params![target, phone, id, at])?;
                }
            }
            Update::Refused { target, phone } => {
                // A refused first add leaves nothing; a refused update leaves
                // the id, with what it holds unknown (the next run sends again).
                tx.prepare_cached(
                    "DELETE FROM contacts WHERE target = ?1 AND phone = ?2 AND status = 1 AND managed = 0 AND contact_id IS NULL",
                )?
                .execute(params![target, phone])?;
                tx.prepare_cached(
                    "UPDATE contacts SET fingerprint = NULL, status = 3, updated_at = ?3 WHERE target = ?1 AND phone = ?2",
                )?
                .execute(params![target, phone, at])?;
            }
            Update::Stale { target, phone } => {
                tx.prepare_cached(
                    "UPDATE contacts SET contact_id = NULL, updated_at = ?3 WHERE target = ?1 AND phone = ?2",
                )?
                .execute(params![target, phone, at])?;
            }
            Update::PendingDelete { target, phone } => {
                tx.prepare_cached(
                    "UPDATE contacts SET status = 4, updated_at = ?3 WHERE target = ?1 AND phone = ?2",
                )?
                .execute(params![target, phone, at])?;
            }
            Update::Deleted { target, phone } => {
                tx.prepare_cached("DELETE FROM contacts WHERE target = ?1 AND phone = ?2")?
                    .execute(params![target, phone])?;
            }
            Update::Kept {
                target,
                phone,
                status,
            } => {
                tx.prepare_cached(
                    "UPDATE contacts SET status = ?3, updated_at = ?4 WHERE target = ?1 AND phone = ?2",
                )?
                .execute(params![target, phone, status.code(), at])?;
            }
            Update::Finished { target } => {
                tx.prepare_cached("UPDATE targets SET last_sync = ?2 WHERE id = ?1")?
                    .execute(params![target, at])?;
            }
        }
    }
    tx.commit()
}

/// Rows about to be sent: what is sent, and its status (add or update), kept
/// until the answer confirms them.
fn write_pending(
    tx: &rusqlite::Transaction<'_>,
    target: i64,
    rows: &[Sent],
    at: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO contacts (target, phone, contact_id, fields, fingerprint, status, managed, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
         ON CONFLICT (target, phone) DO UPDATE SET
             contact_id = COALESCE(excluded.contact_id, contacts.contact_id),
             fields = excluded.fields,
             fingerprint = excluded.fingerprint,
             status = excluded.status,
             updated_at = excluded.updated_at",
    )?;
    for r in rows {
        stmt.execute(params![
            target,
            r.phone,
            r.contact_id,
            r.fields,
            r.fingerprint as i64,
            r.kind.code(),
            at
        ])?;
    }
    Ok(())
}

/// A row the provider confirmed: what was sent, now managed by this tool.
fn write_confirmed(
    tx: &rusqlite::Transaction<'_>,
    target: i64,
    row: &Sent,
    at: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO contacts (target, phone, contact_id, fields, fingerprint, status, managed, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, 1, ?6)
         ON CONFLICT (target, phone) DO UPDATE SET
             contact_id = COALESCE(excluded.contact_id, contacts.contact_id),
             fields = excluded.fields,
             fingerprint = excluded.fingerprint,
             status = 0,
             managed = 1,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        target,
        row.phone,
        row.contact_id,
        row.fields,
        row.fingerprint as i64,
        at
    ])?;
    Ok(())
}
