//! An in-memory emulator of the SMS Partner and Mobivate contact APIs (SPEC §7).
//!
//! [`start`] serves both APIs on loopback from memory, with optional stress
//! behaviour (rate limit, injected 5xx, dropped connections, lost responses,
//! latency) and hostile modes (endless bodies, `200 {}`, coded errors,
//! reordered bulk results, odd `Retry-After`s, a base URL that is not the
//! API, the key echoed in errors), reproducible from a seed. [`store`] holds
//! the data and rules, [`faults`] decides what happens to each request,
//! `http` is the wire.

pub mod faults;
mod http;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use faults::{FaultCounts, FaultPlan, FaultSettings, Misdirect, RetryAfterForm};

use crate::rng::SplitMix64;
pub use store::{ContactInput, MobivateContact, MobivateInput, SmsPartnerContact};
use store::{MobivateStore, SmsPartnerStore};

/// Command-line flags of `contact-sync sandbox`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests per second allowed (token bucket); no limit when absent.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Token bucket size; defaults to the rate rounded up (at least 1).
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// Share (0..1) of requests answered with an injected 5xx, nothing applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share (0..1) of reads (listings, detail lookups) answered with an injected 5xx, on top of --fault-rate.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub read_fault_rate: f64,
    /// Share (0..1) of connections closed before anything is applied, with no response.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Share (0..1) of requests applied, then left without a response (connection closed).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub lose_rate: f64,
    /// Share (0..1) of requests applied, then answered 200 with a body that never ends.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub oversize_rate: f64,
    /// Share (0..1) of write requests applied, then answered 200 without the documented body.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub hollow_rate: f64,
    /// Share (0..1) of write requests answered with a provider error, nothing applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub coded_rate: f64,
    /// HTTP status of the SMS Partner coded errors that --coded-rate injects.
    #[arg(long, value_name = "STATUS", default_value_t = 500)]
    pub coded_status: u16,
    /// Return SMS Partner bulk-add results in a shuffled order.
    #[arg(long)]
    pub reorder_bulk: bool,
    /// How a 429's Retry-After is written.
    #[arg(long, value_enum, value_name = "FORM", default_value_t = RetryAfterForm::Seconds)]
    pub retry_after: RetryAfterForm,
    /// Retry-After of every 429, in seconds, instead of the time until the next token.
    #[arg(long, value_name = "S")]
    pub retry_after_secs: Option<u64>,
    /// Answer every API request as a server that is not the API: `404` or `html`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub misdirect: Option<Misdirect>,
    /// Echo the API key each request carried in every error message.
    #[arg(long)]
    pub echo_key: bool,
    /// List contacts (when no sort order is asked for) in an order every write reshuffles.
    #[arg(long)]
    pub unstable_listing: bool,
    /// Delay added to every request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra random delay of up to this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter_ms: u64,
    /// Seed of every random choice (faults, jitter, ids, tokens).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// HTTP status of SMS Partner coded errors (`{"success": false, "code": …}`).
    #[arg(long, value_name = "STATUS", default_value_t = 200)]
    pub error_status: u16,
    /// The API key both APIs accept.
    #[arg(long, default_value = "sandbox-key")]
    pub api_key: String,
    /// An SMS Partner group that exists (repeatable).
    #[arg(long = "group", value_name = "ID", default_values_t = [String::from("sandbox")])]
    pub groups: Vec<String>,
}

impl Default for SandboxArgs {
    fn default() -> SandboxArgs {
        SandboxArgs {
            port: 8080,
            rate: None,
            burst: None,
            fault_rate: 0.0,
            read_fault_rate: 0.0,
            drop_rate: 0.0,
            lose_rate: 0.0,
            oversize_rate: 0.0,
            hollow_rate: 0.0,
            coded_rate: 0.0,
            coded_status: 500,
            reorder_bulk: false,
            retry_after: RetryAfterForm::Seconds,
            retry_after_secs: None,
            misdirect: None,
            echo_key: false,
            unstable_listing: false,
            latency_ms: 0,
            jitter_ms: 0,
            seed: 1,
            error_status: 200,
            api_key: "sandbox-key".into(),
            groups: vec!["sandbox".into()],
        }
    }
}

/// The API key the sandbox accepts unless told otherwise.
pub(crate) const DEFAULT_API_KEY: &str = "sandbox-key";
/// The SMS Partner group the sandbox holds unless told otherwise.
pub(crate) const DEFAULT_GROUP: &str = "sandbox";

/// A checked sandbox configuration, ready for [`start`].
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Port on 127.0.0.1; 0 = ephemeral.
    pub port: u16,
    /// Rate limit, latency and fault shares.
    pub stress: FaultSettings,
    /// Seed of every random choice.
    pub seed: u64,
    /// HTTP status of SMS Partner coded errors.
    pub error_status: u16,
    /// The accepted API key.
    pub api_key: String,
    /// SMS Partner groups that exist.
    pub groups: Vec<String>,
    /// Log every request on one line (`tracing::info!`).
    pub log_requests: bool,
}

impl Default for SandboxConfig {
    /// Ephemeral port, no stress, key `sandbox-key`, group `sandbox`.
    fn default() -> SandboxConfig {
        SandboxConfig {
            port: 0,
            stress: FaultSettings::default(),
            seed: 1,
            error_status: 200,
            api_key: DEFAULT_API_KEY.into(),
            groups: vec![DEFAULT_GROUP.into()],
            log_requests: false,
        }
    }
}

impl TryFrom<SandboxArgs> for SandboxConfig {
    type Error = SandboxError;

    fn try_from(args: SandboxArgs) -> Result<SandboxConfig, SandboxError> {
        let rate = match args.rate {
            Some(r) if !(r.is_finite() && r > 0.0) => {
                return Err(SandboxError::Config(format!(
                    "--rate must be a positive number of requests a second, got {r}"
                )));
            }
            other => other,
        };
        let burst = match (args.burst, rate) {
            (Some(0), _) => {
                return Err(SandboxError::Config("--burst must be at least 1".into()));
            }
            (Some(b), _) => b,
            // Saturating float-to-int cast; the rate is positive and finite here.
            (None, Some(r)) => (r.ceil() as u32).max(1),
            (None, None) => 1,
        };
        let shares = [
            ("--fault-rate", args.fault_rate),
            ("--drop-rate", args.drop_rate),
            ("--lose-rate", args.lose_rate),
            ("--oversize-rate", args.oversize_rate),
            ("--hollow-rate", args.hollow_rate),
            ("--coded-rate", args.coded_rate),
        ];
        for (flag, p) in shares {
            if !(0.0..=1.0).contains(&p) {
                return Err(SandboxError::Config(format!(
                    "{flag} must be between 0 and 1, got {p}"
                )));
            }
        }
        if !(0.0..=1.0).contains(&args.read_fault_rate) {
            return Err(SandboxError::Config(format!(
                "--read-fault-rate must be between 0 and 1, got {}",
                args.read_fault_rate
            )));
        }
        let total: f64 = shares.iter().map(|(_, p)| p).sum();
        if total > 1.0 + 1e-9 {
            return Err(SandboxError::Config(format!(
                "--fault-rate, --drop-rate, --lose-rate, --oversize-rate, --hollow-rate and --coded-rate add up to {total}, more than 1"
            )));
        }
        for (flag, status) in [
            ("--error-status", args.error_status),
            ("--coded-status", args.coded_status),
        ] {
            if axum::http::StatusCode::from_u16(status).is_err() {
                return Err(SandboxError::Config(format!(
                    "{flag} {status} is not an HTTP status"
                )));
            }
        }
        if args.api_key.is_empty() {
            return Err(SandboxError::Config("--api-key must not be empty".into()));
        }
        let groups = if args.groups.is_empty() {
            vec!["sandbox".to_string()]
        } else {
            args.groups
        };
        if groups.iter().any(|g| g.is_empty()) {
            return Err(SandboxError::Config("--group must not be empty".into()));
        }
        Ok(SandboxConfig {
            port: args.port,
            stress: FaultSettings {
                rate,
                burst,
                fault_rate: args.fault_rate,
                read_fault_rate: args.read_fault_rate,
                drop_rate: args.drop_rate,
                lose_rate: args.lose_rate,
                oversize_rate: args.oversize_rate,
                hollow_rate: args.hollow_rate,
                coded_rate: args.coded_rate,
                coded_status: args.coded_status,
                latency: Duration::from_millis(args.latency_ms),
                jitter: Duration::from_millis(args.jitter_ms),
                reorder_bulk: args.reorder_bulk,
                retry_after: args.retry_after,
                retry_after_secs: args.retry_after_secs,
                misdirect: args.misdirect,
                echo_key: args.echo_key,
                unstable_listing: args.unstable_listing,
            },
            seed: args.seed,
            error_status: args.error_status,
            api_key: args.api_key,
            groups,
            log_requests: false,
        })
    }
}

/// Why the sandbox could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A flag value is out of range.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// The port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The requested port.
        port: u16,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Ctrl-C could not be awaited.
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
    /// Pre-loaded data was refused (unknown group, invalid number, duplicate…).
    #[error("cannot pre-load the sandbox: {0}")]
    Seed(String),
}

/// Requests counted by endpoint and status, plus injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// `"METHOD /route/template"` → status (`"200"`, `"429"`, … or `"dropped"`,
    /// `"lost"` when no response was sent) → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Injected faults by kind.
    pub faults: FaultCounts,
    /// Adds and updates that reached the store, by target and number or id.
    #[serde(default)]
    pub received: Received,
    /// The part of `received` whose response was lost (fault `lost`): applied
    /// or refused, but the client never heard, so sending it again is fair.
    #[serde(default)]
    pub unanswered: Received,
    /// Requests held without an answer by [`SandboxHandle::hold_from`].
    #[serde(default)]
    pub held: u64,
}

impl Counters {
    /// How many requests to `endpoint` (e.g. `"POST /v1/contact/add"`) got `status`.
    #[cfg(test)]
    fn count(&self, endpoint: &str, status: &str) -> u64 {
        self.requests
            .get(endpoint)
            .and_then(|m| m.get(status))
            .copied()
            .unwrap_or(0)
    }

    /// How many requests reached `endpoint`, whatever their fate.
    pub fn total(&self, endpoint: &str) -> u64 {
        self.requests
            .get(endpoint)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
}

/// What reached the store, counted per target and number (adds) or contact id
/// (updates), so a test can tell a client that sends a number twice from one
/// that sends it once: the store itself refuses the second add, so its
/// contents alone cannot.
///
/// An add counts when it was applied or refused as already there (SMS Partner
/// code 15, a Mobivate alias taken); one refused for another reason (bad key,
/// invalid number, unknown group) does not, nor one that never reached the
/// store (429, injected 5xx, dropped connection). An update counts when applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// SMS Partner add items (a single add, or each item of a bulk add): group →
    /// E.164 number → count.
    #[serde(default)]
    pub smspartner_adds: BTreeMap<String, BTreeMap<String, u64>>,
    /// Mobivate creates: `msisdn` → count.
    #[serde(default)]
    pub mobivate_adds: BTreeMap<String, u64>,
    /// SMS Partner updates applied: `contactId` → count.
    #[serde(default)]
    pub smspartner_updates: BTreeMap<String, u64>,
    /// Mobivate updates applied: record id → count.
    #[serde(default)]
    pub mobivate_updates: BTreeMap<String, u64>,
    /// SMS Partner deletes that removed a contact: `contactId` → count.
    #[serde(default)]
    pub smspartner_deletes: BTreeMap<String, u64>,
    /// Mobivate deletes that removed a contact: record id → count.
    #[serde(default)]
    pub mobivate_deletes: BTreeMap<String, u64>,
}

impl Received {
    /// The SMS Partner adds received for `group`, by E.164 number (empty if none).
    pub fn smspartner_adds_in(&self, group: &str) -> BTreeMap<String, u64> {
        self.smspartner_adds.get(group).cloned().unwrap_or_default()
    }

    /// How many add items for `phone` (E.164) reached SMS Partner group `group`.
    pub fn smspartner_add_count(&self, group: &str, phone: &str) -> u64 {
        self.smspartner_adds
            .get(group)
            .and_then(|m| m.get(phone))
            .copied()
            .unwrap_or(0)
    }

    /// How many Mobivate creates carried `msisdn` (digits, no `+`).
    pub fn mobivate_add_count(&self, msisdn: &str) -> u64 {
        self.mobivate_adds.get(msisdn).copied().unwrap_or(0)
    }

    /// Deletes that removed a contact, on either API.
    pub fn delete_count(&self) -> u64 {
        self.smspartner_deletes
            .values()
            .chain(self.mobivate_deletes.values())
            .sum()
    }

    /// Whether nothing was counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.smspartner_adds.values().all(BTreeMap::is_empty)
            && self.mobivate_adds.is_empty()
            && self.smspartner_updates.is_empty()
            && self.mobivate_updates.is_empty()
            && self.smspartner_deletes.is_empty()
            && self.mobivate_deletes.is_empty()
    }

    fn smspartner_add(&mut self, group: &str, phone: &str) {
        *self
            .smspartner_adds
            .entry(group.to_string())
            .or_default()
            .entry(phone.to_string())
            .or_default() += 1;
    }

    fn mobivate_add(&mut self, msisdn: &str) {
        *self.mobivate_adds.entry(msisdn.to_string()).or_default() += 1;
    }

    fn smspartner_update(&mut self, contact_id: &str) {
        *self
            .smspartner_updates
            .entry(contact_id.to_string())
            .or_default() += 1;
    }

    fn mobivate_update(&mut self, id: &str) {
        *self.mobivate_updates.entry(id.to_string()).or_default() += 1;
    }

    fn smspartner_delete(&mut self, contact_id: &str) {
        *self
            .smspartner_deletes
            .entry(contact_id.to_string())
            .or_default() += 1;
    }

    fn mobivate_delete(&mut self, id: &str) {
        *self.mobivate_deletes.entry(id.to_string()).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    fn merge(&mut self, other: &Received) {
        for (group, phones) in &other.smspartner_adds {
            let mine = self.smspartner_adds.entry(group.clone()).or_default();
            for (phone, n) in phones {
                *mine.entry(phone.clone()).or_default() += n;
            }
        }
        let sum = |mine: &mut BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>| {
            for (k, n) in theirs {
                *mine.entry(k.clone()).or_default() += n;
            }
        };
        sum(&mut self.mobivate_adds, &other.mobivate_adds);
        sum(&mut self.smspartner_updates, &other.smspartner_updates);
        sum(&mut self.mobivate_updates, &other.mobivate_updates);
        sum(&mut self.smspartner_deletes, &other.smspartner_deletes);
        sum(&mut self.mobivate_deletes, &other.mobivate_deletes);
    }
}

/// One SMS Partner group and its contacts, in insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The group id.
    pub id: String,
    /// Its contacts.
    pub contacts: Vec<SmsPartnerContact>,
}

/// Everything the sandbox holds, as served by `GET /_sandbox/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    /// SMS Partner groups in configuration order.
    pub smspartner: Vec<GroupState>,
    /// The Mobivate address book in creation order.
    pub mobivate: Vec<MobivateContact>,
    /// Request and fault counters.
    pub counters: Counters,
}

impl SandboxState {
    /// The contacts of one SMS Partner group (empty if the group is unknown).
    pub fn group(&self, id: &str) -> &[SmsPartnerContact] {
        self.smspartner
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.contacts.as_slice())
            .unwrap_or(&[])
    }
}

/// State shared by the server's tasks.
#[derive(Debug)]
struct App {
    config: SandboxConfig,
    smspartner: Mutex<SmsPartnerStore>,
    mobivate: Mutex<MobivateStore>,
    faults: Mutex<FaultPlan>,
    counters: Mutex<Counters>,
    /// Draws for `reorder_bulk`, apart from the fault draws.
    shuffle: Mutex<SplitMix64>,
    /// Where [`SandboxHandle::hold_from`] starts holding requests.
    hold: Mutex<Hold>,
    /// Bumped by [`SandboxHandle::release`] and at shutdown: held requests end.
    released: watch::Sender<u64>,
    /// Signalled whenever `counters.held` grows.
    held_grew: Condvar,
}

/// The test hook that freezes the server at a chosen request.
#[derive(Debug, Default)]
struct Hold {
    /// Hold from this API request on (1-based, counted since it was set).
    from: Option<u64>,
    /// API requests seen since it was set.
    seen: u64,
}

/// What the hold does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldFate {
    /// Served as usual.
    Serve,
    /// Applied, then never answered.
    ApplyAndHold,
    /// Never applied, never answered.
    Hold,
}

impl Hold {
    /// The fate of the next API request.
    fn admit(&mut self) -> HoldFate {
        let Some(from) = self.from else {
            return HoldFate::Serve;
        };
        self.seen += 1;
        match self.seen.cmp(&from) {
            std::cmp::Ordering::Less => HoldFate::Serve,
            std::cmp::Ordering::Equal => HoldFate::ApplyAndHold,
            std::cmp::Ordering::Greater => HoldFate::Hold,
        }
    }
}

/// Locks a mutex; a poisoned one is still usable since every update is atomic
/// under the lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl App {
    fn new(config: SandboxConfig) -> App {
        // Independent streams, so fault draws never shift ids and vice versa.
        let mut rng = SplitMix64::new(config.seed);
        let fault_seed = rng.next_u64();
        let mobivate_seed = rng.next_u64();
        let smspartner = SmsPartnerStore::new(&config.groups, &mut rng);
        // Drawn last, so every other stream is what it was before it existed.
        let shuffle = SplitMix64::new(rng.next_u64());
        let plan = FaultPlan::new(
            config.stress.clone(),
            fault_seed,
            tokio::time::Instant::now(),
        );
        App {
            smspartner: Mutex::new(smspartner),
            mobivate: Mutex::new(MobivateStore::new(mobivate_seed)),
            faults: Mutex::new(plan),
            counters: Mutex::new(Counters::default()),
            shuffle: Mutex::new(shuffle),
            hold: Mutex::new(Hold::default()),
            released: watch::channel(0).0,
            held_grew: Condvar::new(),
            config,
        }
    }

    fn snapshot(&self) -> SandboxState {
        let smspartner = lock(&self.smspartner)
            .snapshot()
            .into_iter()
            .map(|(id, contacts)| GroupState { id, contacts })
            .collect();
        SandboxState {
            smspartner,
            mobivate: lock(&self.mobivate).snapshot(),
            counters: lock(&self.counters).clone(),
        }
    }
}

/// A running sandbox; dropping it stops the server.
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SandboxHandle {
    /// The address the server listens on.
    #[cfg(test)]
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of both APIs, e.g. `http://127.0.0.1:8080`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with.
    pub(crate) fn config(&self) -> &SandboxConfig {
        &self.app.config
    }

    /// Everything held and counted so far (the same data as `/_sandbox/state`).
    pub fn snapshot(&self) -> SandboxState {
        self.app.snapshot()
    }

    /// How many contacts each SMS Partner group holds, by group id (what a
    /// sync run reports when it ends).
    pub(crate) fn group_sizes(&self) -> Vec<(String, usize)> {
        lock(&self.app.smspartner)
            .groups()
            .map(|(id, _, _, members)| (id.to_string(), members))
            .collect()
    }

    /// Pre-loads contacts into an SMS Partner group, as if added earlier;
    /// returns their contact ids. Stops at the first refused contact.
    pub fn seed_smspartner<I>(&self, group: &str, contacts: I) -> Result<Vec<String>, SandboxError>
    where
        I: IntoIterator<Item = ContactInput>,
    {
        let mut store = lock(&self.app.smspartner);
        contacts
            .into_iter()
            .map(|c| {
                store.add(group, &c).map(|c| c.contact_id).map_err(|e| {
                    SandboxError::Seed(format!(
                        "{:?} in group {group:?}: {} (code {})",
                        c.phone_number.unwrap_or_default(),
                        e.message,
                        e.code
                    ))
                })
            })
            .collect()
    }

    /// Pre-loads contacts into the Mobivate address book; returns their ids.
    /// Stops at the first refused contact.
    pub fn seed_mobivate<I>(&self, contacts: I) -> Result<Vec<String>, SandboxError>
    where
        I: IntoIterator<Item = MobivateInput>,
    {
        let now = http::now();
        let mut store = lock(&self.app.mobivate);
        contacts
            .into_iter()
            .map(|c| {
                store
                    .create(c, &now)
                    .map(|r| r.id)
                    .map_err(|e| SandboxError::Seed(e.message().to_string()))
            })
            .collect()
    }

    /// Deletes an SMS Partner contact, as a user would by hand on the provider.
    pub fn delete_smspartner(&self, contact_id: &str) -> Result<(), SandboxError> {
        lock(&self.app.smspartner)
            .delete(contact_id)
            .map_err(|e| SandboxError::Seed(format!("{contact_id:?}: {}", e.message)))
    }

    /// Freezes the server for a kill test: the `n`th API request from now
    /// (1-based) is applied and never answered, and every later one is held
    /// unapplied, until [`SandboxHandle::release`]. `counters.held` counts
    /// both, so a test waits for it, then kills the client at a known point.
    pub fn hold_from(&self, n: u64) {
        *lock(&self.app.hold) = Hold {
            from: Some(n.max(1)),
            seen: 0,
        };
    }

    /// Serves new requests as usual again; those held so far are answered
    /// 503 (to a client that is still there, like any transient refusal).
    pub fn release(&self) {
        *lock(&self.app.hold) = Hold::default();
        self.app.released.send_modify(|generation| *generation += 1);
    }

    /// Blocks the calling thread until `counters.held` reaches `n`; false if
    /// `timeout` passed first (a test that never got there fails, not hangs).
    pub fn wait_held(&self, n: u64, timeout: Duration) -> bool {
        let counters = lock(&self.app.counters);
        match self
            .app
            .held_grew
            .wait_timeout_while(counters, timeout, |c| c.held < n)
        {
            Ok((_, result)) => !result.timed_out(),
            Err(poisoned) => poisoned.into_inner().0.held >= n,
        }
    }

    /// Stops accepting, lets in-flight requests finish (5 s at most), and returns.
    pub async fn shutdown(mut self) {
        self.app.released.send_modify(|generation| *generation += 1);
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds 127.0.0.1 and serves both APIs in a background task.
pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
    let port = config.port;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SandboxError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { port, source })?;
    let app = Arc::new(App::new(config));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(http::serve(listener, app.clone(), shutdown_rx));
    Ok(SandboxHandle {
        addr,
        app,
        shutdown,
        task: Some(task),
    })
}

/// Serves until Ctrl-C, logging each request on one line, then stops cleanly.
pub(crate) async fn run_foreground(mut config: SandboxConfig) -> Result<(), SandboxError> {
    config.log_requests = true;
    let handle = start(config).await?;
    // Listening for Ctrl-C before saying the server is up: a Ctrl-C right
    // after that line stops it cleanly instead of killing it.
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(SandboxError::Signal)?;
    tracing::info!(
        url = %handle.base_url(),
        groups = ?handle.config().groups,
        "sandbox listening; state at {}/_sandbox/state; Ctrl-C to stop",
        handle.base_url()
    );
    #[cfg(unix)]
    interrupt.recv().await;
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .map_err(SandboxError::Signal)?;
    tracing::info!("sandbox stopping");
    handle.shutdown().await;
    Ok(())
}
