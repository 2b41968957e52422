//! The sending side of a sync: each row's ticket, the tasks that add and
//! update through the dispatcher, and the lookup of existing contacts. The
//! writer that puts results back in input order is `report::write_in_order`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{RwLock, mpsc, watch};

use crate::codes::{ErrorCode, Outcome, RowError};
use crate::dispatch::{Dispatcher, HttpReply, Meter, SendError};
use crate::normalize::Contact;
use crate::progress;
use crate::provider::{AddResult, ApiRequest, ListPage, Listed, OpError, Provider};
use crate::record::Record;
use crate::report::{BackupWriter, Done};
use crate::secret::ApiKey;
use crate::state::{Managed, Sent, StateWriter, Status, Update};

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Abort {
    Auth(String),
    Interrupted,
    Unanswered,
    Unreachable {
        host: String,
        cause: String,
    },
    Output(String),
    /// The provider's answers say no request can go on (a `Retry-After`
    /// beyond `--max-retry-after`, a base URL that is not its API).
    Provider(String),
}

/// Calls in a row that got no answer even after their retries before the
/// run gives up on the provider (exit 3).
const MAX_CONSECUTIVE_NETWORK_FAILURES: u32 = 10;

/// Calls in a row whose every attempt failed to connect (refused, DNS, TLS)
/// before the run gives up: the provider cannot be reached at all.
const MAX_CONSECUTIVE_CONNECT_FAILURES: u32 = 3;

/// What a row's report says when the run stopped before its request left.
pub(super) const NOT_SENT: &str = "run stopped before this row was sent";

/// One row waiting for its fate; reports `not_attempted` if dropped unfinished
/// (an aborted task), so the report always lists every row.
pub(super) struct Ticket {
    pub(super) seq: u64,
    pub(super) line: u64,
    pub(super) phone: String,
    pub(super) record: Option<Record>,
    pub(super) tx: mpsc::UnboundedSender<Done>,
    pub(super) finished: bool,
    /// Raised while a request carrying this row is out without an answer.
    pub(super) sent: Arc<AtomicBool>,
    /// What normalisation noted about the row (a date left out, a name cut…).
    pub(super) note: String,
}

impl Ticket {
    pub(super) fn finish(
        mut self,
        outcome: Outcome,
        errors: Vec<RowError>,
        note: &str,
        contact_id: &str,
    ) {
        self.finished = true;
        let note = match (note.is_empty(), self.note.is_empty()) {
            (_, true) => note.to_string(),
            (true, false) => std::mem::take(&mut self.note),
            (false, false) => format!("{note}; {}", self.note),
        };
        let record = if outcome.is_problem() {
            self.record.take()
        } else {
            None
        };
        let _ = self.tx.send(Done {
            seq: self.seq,
            line: self.line,
            outcome,
            errors,
            note,
            phone: std::mem::take(&mut self.phone),
            contact_id: contact_id.to_string(),
            record,
        });
    }

    pub(super) fn fail(self, error: RowError) {
        self.finish(Outcome::Failed, vec![error], "", "");
    }

    pub(super) fn not_attempted(self, why: &str) {
        self.finish(Outcome::NotAttempted, Vec::new(), why, "");
    }
}

impl Drop for Ticket {
    /// A ticket dropped unfinished belongs to an abandoned task: its row was
    /// either never sent, or sent and never answered — or to a task that
    /// panicked, a fault of this tool that the row reports as `INTERNAL`.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (outcome, errors, note) = if std::thread::panicking() {
            let error = RowError::new(
                ErrorCode::Internal,
                "a fault of this tool (a panic, logged) ended this row; it may have been sent, and the next run settles it",
            );
            (Outcome::Failed, vec![error], String::new())
        } else if self.sent.load(Ordering::SeqCst) {
            let error = RowError::new(
                ErrorCode::Unconfirmed,
                "the request was sent but the run stopped before its answer came; it may have been applied, and the next run settles it",
            );
            (Outcome::Failed, vec![error], String::new())
        } else {
            (Outcome::NotAttempted, Vec::new(), NOT_SENT.to_string())
        };
        let _ = self.tx.send(Done {
            seq: self.seq,
            line: self.line,
            outcome,
            errors,
            note,
            phone: std::mem::take(&mut self.phone),
            contact_id: String::new(),
            record: self.record.take(),
        });
    }
}

/// A valid row on its way to the provider.
pub(super) struct Job {
    pub(super) ticket: Ticket,
    pub(super) contact: Box<Contact>,
    /// The target group (SMS Partner), empty for Mobivate.
    pub(super) group: String,
    /// Fingerprint of what is sent.
    pub(super) fingerprint: u64,
    /// What the store knew of the number before this run.
    pub(super) prior: Option<Status>,
    /// The id to update comes from the store (a 404 on it means: add again).
    pub(super) stored_id: bool,
}

impl Job {
    /// The row as the store records it.
    fn sent(&self, kind: Status, contact_id: Option<String>) -> Sent {
        let c = &self.contact;
        let mut fields = serde_json::Map::new();
        let mut put = |name: &str, value: &str| {
            if !value.is_empty() {
                fields.insert(name.into(), value.into());
            }
        };
        put("phoneNumber", &c.phone);
        put("firstname", &c.firstname);
        put("lastname", &c.lastname);
        put("date", &c.date);
        put("url", &c.url);
        for (i, v) in c.custom.iter().enumerate() {
            put(&format!("custom{}", i + 1), v);
        }
        put("groupId", &self.group);
        put("alias", &c.alias);
        Sent {
            phone: c.phone.clone(),
            kind,
            contact_id: contact_id.filter(|id| !id.is_empty()),
            fingerprint: self.fingerprint,
            fields: serde_json::Value::Object(fields).to_string(),
        }
    }
}

/// A managed contact that mirror mode deletes, and its target group.
pub(super) struct Deletion {
    /// The target group (SMS Partner), empty for Mobivate.
    pub(super) group: String,
    /// What the store holds of it.
    pub(super) contact: Managed,
}

impl crate::dispatch::Gate for crate::state::Settled {
    fn open(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.wait())
    }
}

/// The state store's side of a run: its writer, and the target of each group.
pub(super) struct StateCtx {
    pub(super) writer: StateWriter,
    pub(super) targets: HashMap<String, i64>,
}

/// Everything the sending tasks share.
pub(super) struct Engine {
    pub(super) provider: Box<dyn Provider>,
    pub(super) dispatcher: Dispatcher,
    pub(super) key: ApiKey,
    pub(super) directory: Directory,
    pub(super) abort: Mutex<Option<Abort>>,
    pub(super) stop: watch::Sender<bool>,
    /// Raised to abandon every task still running (the grace after a stop is over).
    pub(super) cancel: watch::Sender<bool>,
    /// Calls in a row that ended in a network failure.
    pub(super) unanswered: AtomicU32,
    /// Calls in a row that never got a connection.
    pub(super) unreachable: AtomicU32,
    /// The provider's host, for messages.
    pub(super) host: String,
    /// The state store, unless the run has none.
    pub(super) state: Option<StateCtx>,
    /// Listings under way, for the progress display.
    pub(super) listing: progress::ListingGauge,
    /// Sending tasks that panicked (a bug): the run fails, with a message.
    pub(super) panicked: AtomicU32,
    /// Rows sent in add calls so far (counted when a call is first sent):
    /// how much a listing in creation order may have grown after a call.
    pub(super) rows_in_adds: AtomicU64,
}

/// Per-target listing of existing contacts, fetched on first need.
#[derive(Default)]
pub(super) struct Directory {
    targets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Listing>>>>,
    /// Per target, for providers whose listing order writes can disturb:
    /// each write holds it shared while in flight, a listing holds it alone,
    /// so no write of this run lands in a target while it is listed.
    gates: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    /// Per target, the rows of lost answers waiting for a read of the end
    /// of its listing, and the lock that lets one such read run at a time.
    settles: Mutex<HashMap<String, Arc<Settles>>>,
}

impl Directory {
    fn listing(&self, group: &str) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
        let mut targets = self.targets.lock().ok()?;
        Some(Arc::clone(targets.entry(group.to_string()).or_default()))
    }

    fn settles(&self, group: &str) -> Option<Arc<Settles>> {
        let mut settles = self.settles.lock().ok()?;
        Some(Arc::clone(settles.entry(group.to_string()).or_default()))
    }

    fn gate(&self, group: &str) -> Option<Arc<RwLock<()>>> {
        let mut gates = self.gates.lock().ok()?;
        Some(Arc::clone(gates.entry(group.to_string()).or_default()))
    }
}

#[derive(Default)]
struct Listing {
    /// When the last whole listing began.
    loaded_at: Option<Instant>,
    /// When it ended: every contact it shows existed by then.
    ended: Option<Instant>,
    ids: HashMap<String, String>,
    /// The last listing that spent its budget: when it ended, and why.
    failed: Option<(Instant, RowError)>,
}

/// Pages of a listing asked for at once, per request `--concurrency` lets
/// fly: a page waiting to be retried holds no permit, so under faults more
/// pages than permits keep the permits busy (the permits still bound what is
/// in flight).
const LISTING_WINDOW: usize = 8;

/// Pages read from the end of a listing for rows of lost answers that may
/// hold none of them, beyond those the rows added after theirs fill. The
/// rows a contact that was there before explains are left to the whole
/// listing.
const MAX_PROBES: u32 = 8;

/// The rows of lost answers of a target waiting to be looked for in the
/// end of its listing. Whoever holds `pass` reads for every row waiting,
/// so rows that come while a read is under way share the next one: the
/// reads cost about one per stretch of time, not one per row.
#[derive(Default)]
struct Settles {
    waiting: Mutex<Vec<Wanted>>,
    pass: tokio::sync::Mutex<()>,
}

/// A row of a lost answer, waiting for a read of the listing's end.
struct Wanted {
    phone: String,
    /// The rows of its call: they were created together, so fill that
    /// many listing places in a row.
    call_rows: usize,
    /// When its call was first sent: a whole listing that ended before
    /// then and shows the number shows a contact that was there before.
    sent_at: Instant,
    /// [`Engine::rows_in_adds`] once its call was counted: the rows added
    /// since may stand after its own in the listing.
    added_upto: u64,
    /// Where the listed contact goes; dropped when it was not found.
    tx: tokio::sync::oneshot::Sender<Listed>,
}

/// What a listing has spent: requests sent (retries included) and pages
/// read, shared by the pages read at once.
#[derive(Default)]
pub(super) struct ListSpend {
    meter: Meter,
    pages: AtomicU64,
    /// The pages the listing has, once its first page gave the total.
    known: AtomicU64,
}

/// A page of a listing being read: its cursor and what came of it.
type PageRead<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (u64, Result<ListPage, Option<RowError>>)> + Send + 'a>,
>;

/// Waits for the first of `reads` to finish, removes it and gives its output.
/// `reads` must not be empty.
async fn first_done(reads: &mut Vec<PageRead<'_>>) -> (u64, Result<ListPage, Option<RowError>>) {
    let (i, out) = std::future::poll_fn(|cx| {
        for (i, read) in reads.iter_mut().enumerate() {
            if let std::task::Poll::Ready(out) = read.as_mut().poll(cx) {
                return std::task::Poll::Ready((i, out));
            }
        }
        std::task::Poll::Pending
    })
    .await;
    drop(reads.swap_remove(i));
    out
}

/// Requests a listing may send before its rows fail `LISTING_FAILED`:
/// `2 × (--max-retries + 1) × (pages + 2)`, pages being those read or, once
/// the first page gave the total, those the listing has — every page earns
/// two pages' worth of attempts, and the listing starts with four. A listing
/// failing most of its attempts (70% at 30% 5xx, 20% lost, 20% dropped)
/// spends about 3.3 requests a page against the 12 each earns at the
/// default 5 retries.
pub(super) fn listing_budget(max_retries: u32, pages_read: u64) -> u64 {
    (u64::from(max_retries) + 1)
        .saturating_mul(2)
        .saturating_mul(pages_read.saturating_add(2))
}

impl Engine {
    pub(super) fn aborted(&self) -> bool {
        self.abort.lock().map(|a| a.is_some()).unwrap_or(true)
    }

    pub(super) fn abort(&self, why: Abort) {
        if let Ok(mut a) = self.abort.lock()
            && a.is_none()
        {
            match &why {
                Abort::Auth(m) => tracing::error!("credentials rejected: {m}; stopping"),
                Abort::Interrupted => tracing::warn!(
                    "interrupted: sending nothing more; requests in flight get 5 s to finish (interrupt again to stop at once)"
                ),
                Abort::Unanswered => tracing::error!(
                    "{MAX_CONSECUTIVE_NETWORK_FAILURES} calls in a row to {} got no answer after their retries; stopping",
                    self.host
                ),
                Abort::Unreachable { host, cause } => {
                    tracing::error!("cannot reach {host}: {cause}; stopping")
                }
                Abort::Output(m) | Abort::Provider(m) => tracing::error!("{m}; stopping"),
            }
            *a = Some(why);
        }
        let _ = self.stop.send(true);
    }

    /// Whether the tasks still running must be abandoned now.
    pub(super) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// What a write to `group` holds (shared) while each attempt is out, so
    /// that none lands while the group is listed: every deletion (it shifts
    /// any order), and adds and updates unless the provider's listing order
    /// is stable under them.
    fn write_gate(&self, group: &str, deletion: bool) -> Option<Arc<RwLock<()>>> {
        if !deletion && self.provider.listing_stable_under_writes() {
            return None;
        }
        self.directory.gate(group)
    }

    /// Sends `req` (`sent` is raised while it is out unanswered), counting its attempts in `meter`; each attempt
    /// holds `shared` (read) while it is out.
    pub(super) async fn call_counted(
        &self,
        req: ApiRequest,
        sent: &AtomicBool,
        meter: &Meter,
        shared: Option<&RwLock<()>>,
    ) -> Result<HttpReply, SendError> {
        let classify = |status: u16, after: Option<std::time::Duration>, body: &[u8]| {
            self.provider.classify(status, after, body)
        };
        let result = self
            .dispatcher
            .send_counted(&req, sent, &classify, meter, shared)
            .await;
        if let Err(SendError::InvalidKey) = result {
            // No request can ever carry this key: stop instead of failing every row.
            self.abort(Abort::Auth(
                "the API key holds a character that is not allowed in an HTTP header".into(),
            ));
            return Err(SendError::Network {
                message: SendError::InvalidKey.to_string(),
                maybe_applied: false,
            });
        }
        // Answered, or given up on: either way nothing of it is pending any more.
        sent.store(false, Ordering::SeqCst);
        match &result {
            Ok(_) => {
                self.unanswered.store(0, Ordering::Relaxed);
                self.unreachable.store(0, Ordering::Relaxed);
            }
            Err(e @ (SendError::RetryAfterTooLong { .. } | SendError::Misdirected { .. })) => {
                self.abort(Abort::Provider(e.to_string()));
            }
            Err(e @ (SendError::Network { .. } | SendError::TooLarge { .. })) => {
                let (message, maybe_applied) = match e {
                    SendError::Network {
                        message,
                        maybe_applied,
                    } => (message.clone(), *maybe_applied),
                    other => (other.to_string(), true),
                };
                let n = self.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
                let unreachable = if maybe_applied {
                    self.unreachable.store(0, Ordering::Relaxed);
                    0
                } else {
                    self.unreachable.fetch_add(1, Ordering::Relaxed) + 1
                };
                if unreachable >= MAX_CONSECUTIVE_CONNECT_FAILURES {
                    self.abort(Abort::Unreachable {
                        host: self.host.clone(),
                        cause: message,
                    });
                } else if n >= MAX_CONSECUTIVE_NETWORK_FAILURES {
                    self.abort(Abort::Unanswered);
                }
            }
            Err(SendError::Cancelled | SendError::InvalidKey) => {}
        }
        result
    }

    /// Maps an op-level error to a row error, aborting the run on auth failures.
    pub(super) fn op_error(&self, e: OpError) -> RowError {
        match e {
            OpError::Auth(r) => {
                self.abort(Abort::Auth(r.message.clone()));
                r
            }
            OpError::NotFound(r) | OpError::Failed(r) => r,
        }
    }

    /// The row error for a call that got no answer; `Err` when it was never sent.
    pub(super) fn send_error(e: SendError) -> Result<RowError, ()> {
        match e {
            SendError::Network {
                message,
                maybe_applied: true,
            } => Ok(RowError::new(
                ErrorCode::Unconfirmed,
                format!(
                    "no answer came after every retry ({message}); the request may have been applied, and the next run settles it"
                ),
            )),
            SendError::Network { message, .. } => Ok(RowError::new(ErrorCode::Network, message)),
            SendError::TooLarge { limit } => Ok(RowError::new(
                ErrorCode::ResponseInvalid,
                format!(
                    "every answer was larger than {limit} bytes and was not read; the request may have been applied, and the next run settles it"
                ),
            )),
            SendError::RetryAfterTooLong {
                maybe_applied: true,
                ..
            } => Ok(RowError::new(
                ErrorCode::Unconfirmed,
                "an earlier attempt got no answer, then the provider asked for a pause longer than --max-retry-after; it may have been applied, and the next run settles it",
            )),
            SendError::Misdirected { code, message } => Ok(RowError::new(code, message)),
            SendError::RetryAfterTooLong { .. } | SendError::Cancelled | SendError::InvalidKey => {
                Err(())
            }
        }
    }

    fn target(&self, group: &str) -> Option<(&StateWriter, i64)> {
        let state = self.state.as_ref()?;
        Some((&state.writer, *state.targets.get(group)?))
    }

    /// Records `rows` as about to be sent; `false` (and the run stopped) when
    /// the store cannot be written, in which case nothing may be sent.
    async fn mark_pending(&self, group: &str, rows: Vec<Sent>) -> bool {
        let Some((writer, target)) = self.target(group) else {
            return true;
        };
        match writer.commit(Update::Pending { target, rows }).await {
            Ok(()) => true,
            Err(e) => {
                self.abort(Abort::Output(e));
                false
            }
        }
    }

    fn record(&self, group: &str, update: impl FnOnce(i64) -> Update) {
        if let Some((writer, target)) = self.target(group) {
            writer.send(update(target));
        }
    }

    pub(super) async fn add_batch(self: Arc<Self>, group: String, jobs: Vec<Job>) {
        if self.aborted() {
            for j in jobs {
                j.ticket.not_attempted(NOT_SENT);
            }
            return;
        }
        let pending = jobs
            .iter()
            .map(|j| j.sent(Status::PendingAdd, None))
            .collect();
        if !self.mark_pending(&group, pending).await {
            for j in jobs {
                j.ticket.not_attempted(NOT_SENT);
            }
            return;
        }
        let sent = Arc::new(AtomicBool::new(false));
        let mut jobs = jobs;
        for j in &mut jobs {
            j.ticket.sent = Arc::clone(&sent);
        }
        let contacts: Vec<&Contact> = jobs.iter().map(|j| j.contact.as_ref()).collect();
        tracing::debug!("adding {} rows to target {group:?}", contacts.len());
        let req = self.provider.add(&self.key, &group, &contacts);
        let gate = self.write_gate(&group, false);
        let meter = Meter::default();
        let sent_at = Instant::now();
        let added_upto = self
            .rows_in_adds
            .fetch_add(contacts.len() as u64, Ordering::Relaxed)
            + contacts.len() as u64;
        let reply = self.call_counted(req, &sent, &meter, gate.as_deref()).await;
        let answered = Instant::now();
        // An attempt may have been applied without an answer: the rows the
        // final answer calls "already there" may be this call's own work.
        let lost = meter.unanswered.load(Ordering::Relaxed) > 0;
        let results = match reply {
            Ok(r) => self.provider.parse_add(&contacts, r.status, &r.body),
            Err(e) => {
                let err = Self::send_error(e);
                for j in jobs {
                    match &err {
                        Ok(row) => j.ticket.fail(row.clone()),
                        Err(()) => j.ticket.not_attempted(NOT_SENT),
                    }
                }
                return;
            }
        };
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                let row = self.op_error(e);
                for j in jobs {
                    j.ticket.fail(row.clone());
                }
                return;
            }
        };
        let mut existing = Vec::new();
        for (job, result) in jobs.into_iter().zip(results) {
            match result {
                AddResult::Added { contact_id } => {
                    let row = job.sent(Status::Confirmed, contact_id.clone());
                    self.record(&group, |target| Update::Confirmed { target, row });
                    let id = contact_id.unwrap_or_default();
                    job.ticket.finish(Outcome::Added, Vec::new(), "", &id);
                }
                AddResult::Rejected(e) => {
                    // An answer that cannot be read may hide an applied add:
                    // the row stays pending, for the next run to settle.
                    if e.code != ErrorCode::ResponseInvalid {
                        let phone = job.contact.phone.clone();
                        self.record(&group, |target| Update::Refused { target, phone });
                    }
                    job.ticket.fail(e);
                }
                AddResult::AlreadyExists => existing.push(job),
            }
        }
        let existing = if lost && !existing.is_empty() {
            self.settle_lost(&group, existing, (sent_at, added_upto))
                .await
        } else {
            existing
        };
        // The rows already there are updated concurrently (each still waits for
        // the dispatcher's permits); aborting this task aborts them too.
        let mut updates = tokio::task::JoinSet::new();
        for job in existing {
            let engine = Arc::clone(&self);
            let group = group.clone();
            updates.spawn(async move { engine.update_existing(&group, job, answered).await });
        }
        while let Some(joined) = updates.join_next().await {
            self.reap(joined);
        }
    }

    /// Settles the rows of a call whose earlier attempt got no answer and
    /// whose final answer says they are already there: each is looked for
    /// in the end of the target's listing, by a read shared with every row
    /// of other calls waiting meanwhile ([`Engine::settle_pass`]). A row
    /// found holding what was sent is `added` (no update needed), one
    /// holding something else is updated. The rows not found (a contact
    /// that was there before, another order, a page that cannot be read)
    /// are handed back for the usual lookup. `sent_at`: when the call was
    /// first sent.
    async fn settle_lost(
        &self,
        group: &str,
        jobs: Vec<Job>,
        (sent_at, added_upto): (Instant, u64),
    ) -> Vec<Job> {
        let Some(settles) = self.directory.settles(group) else {
            return jobs;
        };
        let mut replies = Vec::with_capacity(jobs.len());
        {
            let Ok(mut waiting) = settles.waiting.lock() else {
                return jobs;
            };
            for job in &jobs {
                let (tx, rx) = tokio::sync::oneshot::channel();
                waiting.push(Wanted {
                    phone: job.contact.phone.clone(),
                    call_rows: jobs.len(),
                    sent_at,
                    added_upto,
                    tx,
                });
                replies.push(rx);
            }
        }
        {
            // One read at a time; whoever gets to read takes every row waiting.
            let _pass = settles.pass.lock().await;
            let wanted = settles
                .waiting
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            if !wanted.is_empty() {
                self.settle_pass(group, wanted).await;
            }
        }
        let mut back = Vec::new();
        let mut found = Vec::new();
        for (job, reply) in jobs.into_iter().zip(replies) {
            match reply.await {
                Ok(entry) => found.push((job, entry)),
                Err(_) => back.push(job),
            }
        }
        for (job, entry) in found {
            if self.provider.listed_holds(&entry, &job.contact) {
                let row = job.sent(Status::Confirmed, Some(entry.contact_id.clone()));
                self.record(group, |target| Update::Confirmed { target, row });
                job.ticket.finish(
                    Outcome::Added,
                    Vec::new(),
                    "its answer was lost; the retry found it added with the data sent",
                    &entry.contact_id,
                );
            } else {
                let mut job = job;
                job.stored_id = false;
                let _ = self
                    .update(
                        job,
                        entry.contact_id,
                        "its answer was lost and the retry met it; updated",
                    )
                    .await;
            }
        }
        back
    }

    /// Looks for `rows` (of lost answers) in a few pages of `group`'s
    /// listing, read while no write of this run lands: the first (for the
    /// total), then pages from the end, where a listing in creation order
    /// holds what those calls created. From the end, every `step`th page
    /// (a call of many rows fills `step` pages in a row, so no probe jumps
    /// over it); after a page that held some, the pages skipped on its way
    /// and the one before it. At most [`MAX_PROBES`] pages may hold none,
    /// beyond those the rows added after the oldest call waiting fill:
    /// a pass reads at most `1 + rows + MAX_PROBES` pages and those. Correctness does
    /// not rest on the order: a row counts as found only when a page shows
    /// its number. A row a whole listing that ended before its call was
    /// sent already shows was there before: it is left to that listing. A
    /// row found gets its listed contact; the others get nothing.
    async fn settle_pass(&self, group: &str, rows: Vec<Wanted>) {
        let Some(listing) = self.directory.listing(group) else {
            return;
        };
        // A listing in an order writes cannot disturb needs no lock while
        // rows are sent (deletions come after them): a pass runs beside them.
        let (held, _alone) = if self.provider.listing_stable_under_writes() {
            (listing.try_lock_owned().ok(), None)
        } else {
            let Some(gate) = self.directory.gate(group) else {
                return;
            };
            let held = listing.lock_owned().await;
            (Some(held), Some(gate.write_owned().await))
        };
        let mut wanted: HashMap<String, Wanted> = HashMap::new();
        for row in rows {
            let before = held.as_ref().is_some_and(|l| {
                l.ended.is_some_and(|t| t < row.sent_at) && l.ids.contains_key(&row.phone)
            });
            if !before {
                // A number twice in the queue: the later row is looked for.
                wanted.insert(row.phone.clone(), row);
            }
        }
        if self.provider.listing_stable_under_writes() {
            drop(held);
        }
        if wanted.is_empty() {
            return;
        }
        let rows = wanted.len();
        let call_rows = wanted.values().map(|w| w.call_rows).min().unwrap_or(1);
        let oldest = wanted.values().map(|w| w.added_upto).min().unwrap_or(0);
        let added_after = self
            .rows_in_adds
            .load(Ordering::Relaxed)
            .saturating_sub(oldest);
        let spend = ListSpend::default();
        let mut found = 0usize;
        // Hands the page's wanted contacts over; whether there were any.
        let mut take = |page: &ListPage, wanted: &mut HashMap<String, Wanted>| {
            let mut hit = false;
            for entry in &page.entries {
                if let Some(w) = wanted.remove(&entry.phone) {
                    let _ = w.tx.send(entry.clone());
                    found += 1;
                    hit = true;
                }
            }
            hit
        };
        if let Ok(first) = self.fetch_page(group, 0, &spend).await {
            take(&first, &mut wanted);
            let per_page = first.entries.len().max(1);
            let step = u64::try_from(call_rows / per_page).unwrap_or(1).max(1);
            let back = |mut c: u64, n: u64| {
                for _ in 0..n {
                    c = self.provider.previous_cursor(c)?;
                }
                Some(c)
            };
            let mut read = std::collections::HashSet::from([0u64]);
            let mut misses = 0;
            // Each probe steps over `step` pages: the pages of every row
            // added after the oldest call waiting, and MAX_PROBES more.
            let max_misses = MAX_PROBES
                + u32::try_from(added_after / (step * per_page as u64)).unwrap_or(u32::MAX);
            let mut probe = first
                .total
                .and_then(|t| self.provider.last_cursor(t))
                .filter(|&c| c > 0);
            'probing: while let Some(c) =
                probe.filter(|_| !wanted.is_empty() && misses < max_misses)
            {
                if !read.insert(c) {
                    probe = back(c, 1).filter(|&p| p > 0);
                    continue;
                }
                let Ok(page) = self.fetch_page(group, c, &spend).await else {
                    break;
                };
                if !take(&page, &mut wanted) {
                    misses += 1;
                    probe = back(c, step).filter(|&p| p > 0);
                    continue;
                }
                // The pages a step jumped over, while they hold some.
                let mut ahead = page.next;
                while let Some(p) = ahead.filter(|_| !wanted.is_empty()) {
                    if !read.insert(p) {
                        break;
                    }
                    let Ok(page) = self.fetch_page(group, p, &spend).await else {
                        break 'probing;
                    };
                    if take(&page, &mut wanted) {
                        ahead = page.next;
                    } else {
                        misses += 1;
                        break;
                    }
                }
                probe = back(c, 1).filter(|&p| p > 0);
            }
        }
        tracing::debug!(
            "settled {found} of {rows} rows of lost answers in target {group:?} from {} pages of its listing",
            spend.pages.load(Ordering::Relaxed),
        );
    }

    /// Finds the id of a row the provider already holds, then updates it.
    async fn update_existing(&self, group: &str, mut job: Job, answered: Instant) {
        match self.find(group, &job.contact.phone, answered).await {
            Ok(Some(id)) => {
                job.stored_id = false;
                let note = if job.prior == Some(Status::PendingAdd) {
                    "added by an earlier run whose answer was lost; updated now"
                } else {
                    "already in the target; updated"
                };
                // Not a stored id: never handed back.
                let _ = self.update(job, id, note).await;
            }
            Ok(None) => job.ticket.fail(RowError::new(
                self.provider.already_exists_code(),
                "the provider says this contact already exists, but its listing shows no contact with this number (on Mobivate, the alias may belong to another number)",
            )),
            Err(Some(e)) => job.ticket.fail(e),
            Err(None) => job
                .ticket
                .not_attempted(NOT_SENT),
        }
    }

    /// Updates contact `id` with the row. A stored id the provider no longer
    /// knows is forgotten and the job handed back, to be added again.
    pub(super) async fn update(&self, job: Job, id: String, note: &str) -> Option<Job> {
        if self.aborted() {
            job.ticket.not_attempted(NOT_SENT);
            return None;
        }
        let req = match self.provider.update(&self.key, &id, &job.contact) {
            Ok(req) => req,
            Err(e) => {
                let row = self.op_error(e);
                job.ticket.fail(row);
                return None;
            }
        };
        let group = job.group.clone();
        let pending = vec![job.sent(Status::PendingUpdate, Some(id.clone()))];
        if !self.mark_pending(&group, pending).await {
            job.ticket.not_attempted(NOT_SENT);
            return None;
        }
        let gate = self.write_gate(&group, false);
        let reply = self
            .call_counted(req, &job.ticket.sent, &Meter::default(), gate.as_deref())
            .await;
        match reply {
            Ok(r) => match self.provider.parse_update(&id, r.status, &r.body) {
                Ok(id) => {
                    let row = job.sent(Status::Confirmed, Some(id.clone()));
                    self.record(&group, |target| Update::Confirmed { target, row });
                    // The add this run's predecessor sent did go through.
                    let outcome = if job.prior == Some(Status::PendingAdd) {
                        Outcome::Added
                    } else {
                        Outcome::Updated
                    };
                    job.ticket.finish(outcome, Vec::new(), note, &id);
                }
                Err(OpError::NotFound(_)) if job.stored_id => {
                    tracing::debug!("stored id {id} no longer exists; adding the row again");
                    let phone = job.contact.phone.clone();
                    self.record(&group, |target| Update::Stale { target, phone });
                    let mut job = job;
                    job.stored_id = false;
                    return Some(job);
                }
                Err(e) => {
                    let phone = job.contact.phone.clone();
                    self.record(&group, |target| Update::Refused { target, phone });
                    let row = self.op_error(e);
                    job.ticket.fail(row);
                }
            },
            Err(e) => match Self::send_error(e) {
                Ok(row) => job.ticket.fail(row),
                Err(()) => job.ticket.not_attempted(NOT_SENT),
            },
        }
        None
    }

    /// Deletes one managed contact (mirror mode): its id from the store, else
    /// from the listing; its last-sent fields appended to `backup` and
    /// flushed; then recorded pending, and only then sent. Deleted, or
    /// already gone (a 404), the store forgets it; refused, it stands as
    /// before; unanswered, it stays pending for the next run.
    pub(super) async fn delete(
        &self,
        deletion: Deletion,
        ticket: Ticket,
        backup: Arc<Mutex<BackupWriter>>,
        started: Instant,
    ) {
        let Deletion { group, contact } = deletion;
        let phone = contact.phone.clone();
        if self.aborted() {
            return ticket.not_attempted(NOT_SENT);
        }
        let id = match contact.contact_id.clone() {
            Some(id) => id,
            // Added in bulk and never listed: the listing gives its id.
            None => match self.find(&group, &phone, started).await {
                Ok(Some(id)) => id,
                Ok(None) => {
                    self.record(&group, |target| Update::Deleted { target, phone });
                    return ticket.finish(
                        Outcome::Deleted,
                        Vec::new(),
                        "not on the provider any more; forgotten",
                        "",
                    );
                }
                Err(Some(e)) => return ticket.fail(e),
                Err(None) => return ticket.not_attempted(NOT_SENT),
            },
        };
        if self.aborted() {
            return ticket.not_attempted(NOT_SENT);
        }
        let req = match self.provider.delete(&self.key, &id) {
            Ok(req) => req,
            Err(e) => {
                let row = self.op_error(e);
                return ticket.finish(Outcome::Failed, vec![row], "", &id);
            }
        };
        let written = match backup.lock() {
            Ok(mut b) => b.write(&contact.fields).map_err(|e| e.to_string()),
            Err(_) => Err("internal: the deletion backup's lock is poisoned".to_string()),
        };
        if let Err(e) = written {
            // No deletion without its backup.
            self.abort(Abort::Output(e));
            return ticket.not_attempted(NOT_SENT);
        }
        if let Some((writer, target)) = self.target(&group) {
            let pending = Update::PendingDelete {
                target,
                phone: phone.clone(),
            };
            if let Err(e) = writer.commit(pending).await {
                self.abort(Abort::Output(e));
                return ticket.not_attempted(NOT_SENT);
            }
        }
        let kept = |phone: String| {
            let status = contact.status;
            move |target| Update::Kept {
                target,
                phone,
                status,
            }
        };
        let gate = self.write_gate(&group, true);
        let reply = self
            .call_counted(req, &ticket.sent, &Meter::default(), gate.as_deref())
            .await;
        match reply {
            Ok(r) => match self.provider.parse_delete(r.status, &r.body) {
                Ok(()) => {
                    self.record(&group, |target| Update::Deleted { target, phone });
                    ticket.finish(Outcome::Deleted, Vec::new(), "", &id);
                }
                Err(OpError::NotFound(_)) => {
                    self.record(&group, |target| Update::Deleted { target, phone });
                    ticket.finish(Outcome::Deleted, Vec::new(), "already gone", &id);
                }
                Err(e) => {
                    self.record(&group, kept(phone));
                    let row = self.op_error(e);
                    ticket.finish(Outcome::Failed, vec![row], "", &id);
                }
            },
            Err(e) => match Self::send_error(e) {
                // May have been applied: stays pending, for the next run.
                Ok(row)
                    if matches!(
                        row.code,
                        ErrorCode::Unconfirmed | ErrorCode::ResponseInvalid
                    ) =>
                {
                    ticket.finish(Outcome::Failed, vec![row], "", &id)
                }
                Ok(row) => {
                    self.record(&group, kept(phone));
                    ticket.finish(Outcome::Failed, vec![row], "", &id);
                }
                Err(()) => {
                    self.record(&group, kept(phone));
                    ticket.not_attempted(NOT_SENT);
                }
            },
        }
    }

    /// Every contact of `group` on the provider (number → id), recorded in
    /// the state store as known.
    pub(super) async fn list_target(
        &self,
        group: &str,
    ) -> Result<HashMap<String, String>, Option<RowError>> {
        self.list_budgeted(group).await.map(|(ids, _)| ids)
    }

    /// Lists `group` whole within [`listing_budget`]: the first page, then
    /// (its total known) the others [`LISTING_WINDOW`] × `--concurrency` at
    /// a time, then on from the last while it says there is more (contacts
    /// added meanwhile, or no total). The contacts and when it began.
    async fn list_budgeted(
        &self,
        group: &str,
    ) -> Result<(HashMap<String, String>, Instant), Option<RowError>> {
        let started = Instant::now();
        let _shown = self.listing.start();
        let spend = ListSpend::default();
        let mut ids = HashMap::new();
        let first = self.fetch_page(group, 0, &spend).await?;
        let mut cursors = Vec::new();
        if first.next.is_some() {
            let mut c = first.total.and_then(|t| self.provider.last_cursor(t));
            while let Some(p) = c.filter(|&p| p > 0) {
                cursors.push(p);
                c = self.provider.previous_cursor(p);
            }
            cursors.reverse();
        }
        let known = u64::try_from(cursors.len()).unwrap_or(u64::MAX);
        spend
            .known
            .store(known.saturating_add(1), Ordering::Relaxed);
        let mut next = if cursors.is_empty() { first.next } else { None };
        for entry in first.entries {
            ids.insert(entry.phone, entry.contact_id);
        }
        // A sliding window: a page is asked for as soon as another is in.
        let read = |c: u64| -> PageRead<'_> {
            let spend = &spend;
            Box::pin(async move { (c, self.fetch_page(group, c, spend).await) })
        };
        let mut waiting = cursors.iter().copied();
        let mut reading: Vec<PageRead<'_>> = waiting
            .by_ref()
            .take(LISTING_WINDOW.saturating_mul(self.dispatcher.concurrency().max(1)))
            .map(read)
            .collect();
        while !reading.is_empty() {
            let (c, page) = first_done(&mut reading).await;
            let page = page?;
            if cursors.last() == Some(&c) {
                next = page.next;
            }
            for entry in page.entries {
                ids.insert(entry.phone, entry.contact_id);
            }
            if let Some(c) = waiting.next() {
                reading.push(read(c));
            }
        }
        while let Some(c) = next {
            let page = self.fetch_page(group, c, &spend).await?;
            next = page.next;
            for entry in page.entries {
                ids.insert(entry.phone, entry.contact_id);
            }
        }
        tracing::debug!(
            "listed {} contacts of target {group:?} in {} requests",
            ids.len(),
            spend.meter.attempts.load(Ordering::Relaxed)
        );
        let entries: Vec<(String, String)> =
            ids.iter().map(|(p, i)| (p.clone(), i.clone())).collect();
        self.record(group, |target| Update::Known { target, entries });
        Ok((ids, started))
    }

    /// One page of `group`'s listing, fetched again on failure (never a
    /// restart from page 1) while the listing's budget lasts; past it,
    /// `LISTING_FAILED`. `Err(None)` when the run stops.
    async fn fetch_page(
        &self,
        group: &str,
        cursor: u64,
        spend: &ListSpend,
    ) -> Result<ListPage, Option<RowError>> {
        loop {
            let req = self.provider.list(&self.key, group, cursor);
            let result = match self
                .call_counted(req, &AtomicBool::new(false), &spend.meter, None)
                .await
            {
                Ok(reply) => self
                    .provider
                    .parse_list(cursor, reply.status, &reply.body)
                    .map_err(|e| Some(self.op_error(e))),
                Err(e) => Err(Self::send_error(e).ok()),
            };
            let last = match result {
                Ok(page) => {
                    spend.pages.fetch_add(1, Ordering::Relaxed);
                    self.listing.page(page.entries.len());
                    return Ok(page);
                }
                Err(e) if self.aborted() => return Err(e),
                Err(None) => return Err(None),
                Err(Some(e)) => e,
            };
            let spent = spend.meter.attempts.load(Ordering::Relaxed);
            let pages = spend.pages.load(Ordering::Relaxed);
            // Pages read at once each count from the start.
            let counted = pages.max(spend.known.load(Ordering::Relaxed));
            let budget = listing_budget(self.dispatcher.max_retries(), counted);
            if spent >= budget {
                tracing::warn!(
                    "listing of target {group:?} stopped after {spent} requests: {}",
                    last.message
                );
                return Err(Some(RowError::new(
                    ErrorCode::ListingFailed,
                    format!(
                        "the listing of existing contacts did not complete within its budget of {budget} requests ({pages} pages read; the last failure: {})",
                        last.message
                    ),
                )));
            }
            tracing::debug!(
                "listing of target {group:?}: a page failed ({}); fetching it again ({spent} of {budget} requests spent)",
                last.message
            );
        }
    }

    /// The id of `phone` in `group`'s listing, fetched once and fetched again
    /// only when it predates the answer that said the number exists.
    pub(super) async fn find(
        &self,
        group: &str,
        phone: &str,
        answered: Instant,
    ) -> Result<Option<String>, Option<RowError>> {
        let listing = {
            let Ok(mut targets) = self.directory.targets.lock() else {
                return Err(None);
            };
            Arc::clone(targets.entry(group.to_string()).or_default())
        };
        let mut listing = listing.lock().await;
        if let Some(id) = listing.ids.get(phone) {
            return Ok(Some(id.clone()));
        }
        if listing.loaded_at.is_some_and(|t| t > answered) {
            return Ok(None);
        }
        if let Some((at, e)) = &listing.failed
            && *at > answered
        {
            // The rows that were waiting on a listing that spent its budget.
            return Err(Some(e.clone()));
        }
        // No write of this run that could disturb the listing reaches the
        // target while it is listed (see `write_gate`).
        let Some(gate) = self.directory.gate(group) else {
            return Err(None);
        };
        let _alone = gate.write_owned().await;
        let (ids, started) = match self.list_budgeted(group).await {
            Ok(listed) => listed,
            Err(Some(e)) if e.code == ErrorCode::ListingFailed => {
                listing.failed = Some((Instant::now(), e.clone()));
                return Err(Some(e));
            }
            Err(e) => return Err(e),
        };
        listing.ids = ids;
        listing.loaded_at = Some(started);
        listing.ended = Some(Instant::now());
        Ok(listing.ids.get(phone).cloned())
    }
}

impl Engine {
    /// [`reap`]s a finished task, counting it when it panicked.
    pub(super) fn reap(&self, joined: Result<(), tokio::task::JoinError>) {
        if reap(joined, &self.key) {
            self.panicked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Logs a sending task that panicked, and says whether it did: its rows
/// already reported `INTERNAL` as the panic dropped their tickets. The
/// message passes through the key's redaction.
pub(super) fn reap(joined: Result<(), tokio::task::JoinError>, key: &ApiKey) -> bool {
    let Err(e) = joined else { return false };
    if !e.is_panic() {
        return false;
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    tracing::error!(
        "internal error: a sending task panicked ({}); its rows are reported failed INTERNAL",
        key.redact(&message)
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(seq: u64, tx: &mpsc::UnboundedSender<Done>) -> Ticket {
        Ticket {
            seq,
            line: seq + 2,
            phone: format!("+3361234567{seq}"),
            record: None,
            tx: tx.clone(),
            finished: false,
            sent: Arc::new(AtomicBool::new(false)),
            note: String::new(),
        }
    }

    #[tokio::test]
    async fn a_row_whose_task_panics_is_reported_internal_not_lost() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let held = ticket(0, &tx);
        let task = tokio::spawn(async move {
            let _held = held;
            panic!("a bug");
        });
        let joined = task.await;
        assert!(joined.as_ref().is_err_and(|e| e.is_panic()));
        assert!(reap(joined, &ApiKey::new("k".into())));
        let done = rx.recv().await.expect("the row is reported");
        assert_eq!(done.outcome, Outcome::Failed);
        assert_eq!(done.errors.len(), 1);
        assert_eq!(done.errors[0].code, ErrorCode::Internal);
        assert!(done.errors[0].message.contains("fault of this tool"));
    }

    #[tokio::test]
    async fn a_row_of_an_abandoned_task_is_not_attempted_or_unconfirmed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(ticket(0, &tx));
        let sent = ticket(1, &tx);
        sent.sent.store(true, Ordering::SeqCst);
        drop(sent);
        let first = rx.recv().await.unwrap();
        assert_eq!(first.outcome, Outcome::NotAttempted);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.errors[0].code, ErrorCode::Unconfirmed);
    }

    #[test]
    fn the_listing_budget_grows_with_the_pages_read() {
        assert_eq!(listing_budget(2, 0), 12);
        assert_eq!(listing_budget(5, 0), 24);
        assert_eq!(listing_budget(5, 1), 36);
        assert_eq!(listing_budget(0, 10), 24);
        assert_eq!(listing_budget(u32::MAX, u64::MAX), u64::MAX);
    }
}
