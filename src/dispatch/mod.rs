//! The request dispatcher: sends fully described HTTP calls at no more than
//! `--rate` requests/s and `--concurrency` in flight, retrying transient
//! answers and network failures with full-jitter backoff that honours
//! `Retry-After` up to `--max-retry-after`, and slowing down by itself on
//! repeated 429s (SPEC §5).
//!
//! Providers build [`ApiRequest`]s, classify answers ([`Verdict`], from status
//! and body together) and interpret [`HttpReply`]s; the dispatcher knows
//! nothing of their APIs. Every response body is read incrementally up to
//! [`MAX_BODY`]; a larger one is dropped unread and counts as a lost answer.
//! Every attempt, retries included, takes a concurrency permit and a rate
//! token; the permit is given back while a retry waits. URLs and bodies may
//! carry the API key, so neither is ever logged nor put in an error: only the
//! method and path are.

mod aimd;
mod pacer;
mod retry;
mod verdict;

#[cfg(test)]
#[cfg(feature = "sandbox")]
mod tests;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use tokio::sync::{RwLock, Semaphore, watch};
use tokio::time::Instant;

pub(crate) use retry::{AttemptResult, NetworkKind, RetryPolicy, RetryStep, parse_retry_after};
pub(crate) use verdict::{Verdict, looks_like_markup, transient_status};

use pacer::Pacer;

use crate::rng::{SplitMix64, fresh_seed};
use crate::secret::ApiKey;

/// One HTTP request, built by a provider and sent (again on each retry) by
/// the dispatcher.
///
/// `Debug` shows the method and URL path only: the SMS Partner key sits in the
/// body and the query string, the Mobivate key in `bearer`.
#[derive(Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Full URL, query included (it may carry the key: never log it).
    pub url: Url,
    /// JSON body, if any (it may carry the key: never log it); sent with
    /// `Content-Type: application/json`.
    pub body: Option<Value>,
    /// Key for an `Authorization: Bearer` header, if the provider uses one.
    pub bearer: Option<ApiKey>,
}

impl ApiRequest {
    /// A request with no body and no authorization.
    pub(crate) fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            body: None,
            bearer: None,
        }
    }

    /// A `GET` of `url`.
    pub(crate) fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST` of the JSON `body` to `url`.
    pub(crate) fn post_json(url: Url, body: Value) -> Self {
        Self {
            body: Some(body),
            ..Self::new(Method::POST, url)
        }
    }

    /// What may be logged about this request: method and path, no query.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

impl fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Query, authorization and body may all hold the key.
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.url.path())
            .finish_non_exhaustive()
    }
}

/// An [`ApiRequest`] as every attempt puts it on the wire: the body encoded
/// and the key made a (sensitive) header once.
struct Wire<'a> {
    request: &'a ApiRequest,
    authorization: Option<HeaderValue>,
    json: Option<Vec<u8>>,
}

impl<'a> Wire<'a> {
    fn of(request: &'a ApiRequest) -> Result<Self, SendError> {
        let json = match &request.body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| SendError::Network {
                message: format!("cannot encode request: {e}"),
                maybe_applied: false,
            })?),
            None => None,
        };
        let authorization = match &request.bearer {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| SendError::InvalidKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            request,
            authorization,
            json,
        })
    }

    fn describe(&self) -> String {
        self.request.describe()
    }
}

/// The final answer to a call: any status the dispatcher does not retry, or
/// the last 429/5xx once retries are used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpReply {
    /// The HTTP status code.
    pub status: u16,
    /// The full response body.
    pub body: Vec<u8>,
}

/// Why a call produced no reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SendError {
    /// No answer after every retry (or a request that cannot be sent); the
    /// message names no URL.
    #[error("network error: {message}")]
    Network {
        /// What failed last, without the URL.
        message: String,
        /// Whether an attempt reached the server, so the request may have
        /// been applied (a timeout or a connection lost after sending, as
        /// opposed to one never established).
        maybe_applied: bool,
    },
    /// The API key cannot be an HTTP header value, so no request can carry
    /// it; nothing was sent.
    #[error("the API key is not a valid HTTP header value")]
    InvalidKey,
    /// The last attempt's answer was larger than the cap, so it was dropped
    /// unread; the request may have been applied.
    #[error("the answer was larger than {limit} bytes and was not read")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The server asked for a pause (`Retry-After`) longer than
    /// `--max-retry-after`: the run must stop sending.
    #[error(
        "the provider asked to wait {} s before the next request (Retry-After), more than --max-retry-after {} s allows",
        .asked.as_secs(),
        .limit.as_secs()
    )]
    RetryAfterTooLong {
        /// The pause the server asked for.
        asked: Duration,
        /// `--max-retry-after`.
        limit: Duration,
        /// Whether an earlier attempt of this call may have been applied.
        maybe_applied: bool,
    },
    /// Answers in a row that were not the provider's (see
    /// [`Verdict::Misdirected`]): the base URL does not lead to its API.
    #[error("{message}")]
    Misdirected {
        /// The report code of the last answer (`HTTP_<status>`, or
        /// `RESPONSE_INVALID` for a 2xx page).
        code: crate::codes::ErrorCode,
        /// What came back, and what to check.
        message: String,
    },
    /// The stop signal came before the call's first attempt.
    #[error("cancelled before sending")]
    Cancelled,
}

/// Largest response body read, in bytes (8 MiB). The largest legitimate
/// answers are a 500-row SMS Partner bulk add result (about 50–150 KB) and a
/// listing page (20 SMS Partner contacts, or 100 Mobivate records: under
/// 100 KB with ordinary fields; about 7.7 MB for 20 contacts whose every
/// field holds the 64 KiB a cell may). Memory for bodies stays under
/// `--concurrency` × this cap. See docs/reliability.md.
pub(crate) const MAX_BODY: usize = 8 << 20;

/// Answers in a row that are not the provider's after which the run stops:
/// one could be a proxy's hiccup, three are a wrong `--base-url`.
pub(crate) const MISDIRECTED_LIMIT: u32 = 3;

/// Most requests in flight `--concurrency` may ask for: beyond it, memory
/// (bodies up to [`MAX_BODY`] each, the report window) grows for no gain.
pub(crate) const MAX_CONCURRENCY: usize = 256;

/// The fastest `--rate` accepted, requests/s.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;

/// The slowest `--rate` accepted, requests/s (one request every 100 s).
pub(crate) const MIN_RATE: f64 = 0.01;

/// Everything a [`Dispatcher`] needs, validated by [`Dispatcher::new`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DispatchConfig {
    /// Requests per second, at most (`--rate`).
    pub rate: f64,
    /// The adaptive rate never drops below this share of `rate`.
    pub floor_share: f64,
    /// A fixed quota burst; `None` picks [`burst_for`] the current rate.
    pub burst: Option<NonZeroU32>,
    /// Requests in flight, at most (`--concurrency`).
    pub concurrency: usize,
    /// Retry limits and backoff (`--max-retries` is `retry.max_retries`).
    pub retry: RetryPolicy,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole attempt, response body included.
    pub request_timeout: Duration,
    /// Seed of the jitter draws; `None` (the default) takes a fresh one from
    /// the OS, so runs that fail together do not retry in lock-step. Tests
    /// that need reproducible draws set one.
    pub seed: Option<u64>,
    /// Largest response body read, in bytes ([`MAX_BODY`]).
    pub max_body: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            rate: 5.0,
            floor_share: aimd::Aimd::FLOOR_SHARE,
            burst: None,
            concurrency: 4,
            retry: RetryPolicy {
                max_retries: 5,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
                max_retry_after: Duration::from_secs(120),
            },
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            seed: None,
            max_body: MAX_BODY,
        }
    }
}

/// Why a [`DispatchConfig`] was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The rate is not a number of requests per second in
    /// [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("rate must be between {MIN_RATE} and {MAX_RATE} requests per second, got {0}")]
    Rate(f64),
    /// Concurrency must be in 1..=[`MAX_CONCURRENCY`].
    #[error("concurrency must be between 1 and {MAX_CONCURRENCY}, got {0}")]
    Concurrency(usize),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The platform trusts no certificate authority: no HTTPS server can be verified.
    #[error(
        "no trusted certificate authorities were found on this system{0}, so no HTTPS server can be verified and nothing was sent: install the system's CA certificates (Debian, Ubuntu: the ca-certificates package) or point SSL_CERT_FILE at a PEM bundle"
    )]
    NoRoots(String),
}

/// Counts the certificate authorities the platform trusts (its store, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), as the HTTP client loads
/// them: with none, every HTTPS request would fail, so a run that would send
/// one is refused first (docs/security.md, "TLS").
pub(crate) fn platform_roots() -> Result<usize, ConfigError> {
    let found = rustls_native_certs::load_native_certs();
    if !found.certs.is_empty() {
        return Ok(found.certs.len());
    }
    let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    Err(ConfigError::NoRoots(if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.join("; "))
    }))
}

/// A snapshot of the dispatcher's counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Stats {
    /// Attempts sent, retries included.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 429 responses received.
    pub throttled: u64,
    /// 5xx responses received.
    pub server_errors: u64,
    /// Attempts that got no complete answer (oversized ones included).
    pub network_errors: u64,
    /// Attempts whose answer was larger than the cap.
    pub oversized: u64,
    /// Answers that were not the provider's (wrong endpoint).
    pub misdirected: u64,
    /// The rate currently paced at, requests/s.
    pub rate: f64,
}

#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    network_errors: AtomicU64,
    oversized: AtomicU64,
    misdirected: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Sends [`ApiRequest`]s under the rate, concurrency and retry rules; share it
/// between tasks (it is `Send + Sync`).
pub(crate) struct Dispatcher {
    client: reqwest::Client,
    permits: Semaphore,
    pacer: Pacer,
    retry: RetryPolicy,
    jitter: Mutex<SplitMix64>,
    stop: watch::Receiver<bool>,
    hold: Hold,
    counters: Counters,
    max_body: usize,
    /// Answers in a row that were not the provider's.
    misdirected_streak: AtomicU32,
    /// What every attempt waits for once it may leave, if anything.
    gate: Option<Box<dyn Gate>>,
    /// `--concurrency`.
    concurrency: usize,
}

/// Something each attempt waits for after its permit and pacing, just before
/// it leaves (the state store catching up with the answers heard so far).
pub(crate) trait Gate: Send + Sync {
    /// Resolves when the attempt may leave.
    fn open(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// A time before which no attempt starts, set from `Retry-After`.
#[derive(Default)]
struct Hold(Mutex<Option<Instant>>);

impl Hold {
    fn until(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the hold to `until` unless it already reaches further.
    fn extend(&self, until: Instant) {
        let mut hold = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if hold.is_none_or(|h| h < until) {
            *hold = Some(until);
        }
    }

    /// Waits until no hold is in force (a hold may be extended meanwhile).
    async fn wait(&self) {
        while let Some(until) = self.until().filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The outcome of one attempt, before the retry decision.
enum Attempt {
    Reply {
        reply: HttpReply,
        retry_after: Option<Duration>,
    },
    Failed {
        kind: NetworkKind,
        message: String,
    },
}

/// What one call (or a series of them) cost, for callers that keep count.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Attempts sent, retries included.
    pub attempts: AtomicU64,
    /// Attempts that reached the server and got no answer that could be
    /// read (timeout, connection closed after sending, body cut short or
    /// over the cap): each may have been applied.
    pub unanswered: AtomicU64,
}

/// How a call classifies a complete answer: status, `Retry-After`, body.
pub(crate) type Classify<'a> = &'a (dyn Fn(u16, Option<Duration>, &[u8]) -> Verdict + Sync);

/// Resolves once `stop` holds `true`; never, if its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&s| s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sorts a reqwest failure for the retry policy.
fn network_kind(err: &reqwest::Error) -> NetworkKind {
    if err.is_builder() {
        NetworkKind::Invalid
    } else if err.is_timeout() {
        NetworkKind::Timeout
    } else if err.is_connect() {
        NetworkKind::Connect
    } else if err.is_body() || err.is_decode() {
        NetworkKind::Body
    } else {
        NetworkKind::Closed
    }
}

/// The error and its causes, joined, without the URL reqwest attaches.
fn error_message(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl Dispatcher {
    /// Validates `config` and builds the HTTP client (rustls, no redirects,
    /// timeouts). `stop` turning `true` stops new attempts.
    pub(crate) fn new(
        config: DispatchConfig,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, ConfigError> {
        if !(MIN_RATE..=MAX_RATE).contains(&config.rate) {
            return Err(ConfigError::Rate(config.rate));
        }
        if !(1..=MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(ConfigError::Concurrency(config.concurrency));
        }
        let share = if (0.0..=1.0).contains(&config.floor_share) {
            config.floor_share
        } else {
            aimd::Aimd::FLOOR_SHARE
        };
        let pacer = Pacer::new(config.rate, config.rate * share, config.burst)
            .ok_or(ConfigError::Rate(config.rate))?;
        // rustls with the platform's roots (reqwest's native-roots feature):
        // certificate verification has no off switch.
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            // Requests carry the key: never let a redirect take it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("contact-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(error_message(e)))?;
        Ok(Self {
            client,
            permits: Semaphore::new(config.concurrency),
            pacer,
            retry: config.retry,
            jitter: Mutex::new(SplitMix64::new(config.seed.unwrap_or_else(fresh_seed))),
            stop,
            hold: Hold::default(),
            counters: Counters::default(),
            max_body: config.max_body,
            misdirected_streak: AtomicU32::new(0),
            gate: None,
            concurrency: config.concurrency,
        })
    }

    /// Retries of one call at most (`--max-retries`).
    pub(crate) fn max_retries(&self) -> u32 {
        self.retry.max_retries
    }

    /// Requests in flight at most (`--concurrency`).
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Makes every attempt wait for `gate` just before it leaves.
    pub(crate) fn with_gate(mut self, gate: Box<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The counters so far and the current paced rate.
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            attempts: c.attempts.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            network_errors: c.network_errors.load(Ordering::Relaxed),
            oversized: c.oversized.load(Ordering::Relaxed),
            misdirected: c.misdirected.load(Ordering::Relaxed),
            rate: self.pacer.rate(),
        }
    }

    /// Sends `call`, classifying answers by status alone ([`verdict::by_status`]),
    /// retrying transient failures, and returns the final reply whatever its
    /// status. Fails with [`SendError::Cancelled`] if stopped before the
    /// first attempt; a stop after that returns the last sent attempt's
    /// result as final.
    #[cfg(test)]
    async fn send(&self, call: &ApiRequest) -> Result<HttpReply, SendError> {
        self.send_marked(call, &AtomicBool::new(false)).await
    }

    /// [`Dispatcher::send`], raising `sent` when the first attempt leaves,
    /// so a caller abandoned mid-call knows the request may have been applied.
    #[cfg(test)]
    async fn send_marked(
        &self,
        call: &ApiRequest,
        sent: &AtomicBool,
    ) -> Result<HttpReply, SendError> {
        self.send_classified(call, sent, &verdict::by_status).await
    }

    /// [`Dispatcher::send_marked`] with the provider's own classification of
    /// answers: it alone decides what is retried (a provider error inside a
    /// 5xx is final), and [`MISDIRECTED_LIMIT`] misdirected answers in a row
    /// end in [`SendError::Misdirected`].
    #[cfg(test)]
    async fn send_classified(
        &self,
        call: &ApiRequest,
        sent: &AtomicBool,
        classify: Classify<'_>,
    ) -> Result<HttpReply, SendError> {
        self.send_counted(call, sent, classify, &Meter::default(), None)
            .await
    }

    /// [`Dispatcher::send_classified`], counting in `meter` the attempts
    /// sent (so a caller can keep a budget of requests) and those that may
    /// have been applied without an answer (so a caller can tell an "already
    /// exists" that its own lost attempt caused). Each attempt holds
    /// `shared` (read) while it is out, never while it waits to be retried.
    pub(crate) async fn send_counted(
        &self,
        request: &ApiRequest,
        sent: &AtomicBool,
        classify: Classify<'_>,
        meter: &Meter,
        shared: Option<&RwLock<()>>,
    ) -> Result<HttpReply, SendError> {
        let call = &Wire::of(request)?;
        let mut stop = self.stop.clone();
        let mut retries = 0u32;
        let mut last: Option<Attempt> = None;
        let mut reached = false;
        loop {
            // Stopped while waiting for a permit or a token: this attempt was
            // not sent, so the answer is the previous one's, if any.
            let Some((attempt, sent_at)) = self
                .attempt(call, retries > 0, &mut stop, sent, &meter.attempts, shared)
                .await
            else {
                return last.map_or(Err(SendError::Cancelled), |a| self.finish(a, reached));
            };
            let result = match &attempt {
                Attempt::Reply { reply, retry_after } => {
                    let verdict = classify(reply.status, *retry_after, &reply.body);
                    if let Some(stop) = self.track_endpoint(&verdict) {
                        return Err(stop);
                    }
                    match verdict {
                        Verdict::Retry { after } => AttemptResult::Transient {
                            status: reply.status,
                            retry_after: after,
                        },
                        _ => AttemptResult::Final {
                            status: reply.status,
                        },
                    }
                }
                Attempt::Failed { kind, .. } => AttemptResult::Network(*kind),
            };
            self.observe(&result, sent_at);
            let was_reached = reached;
            let unanswered = match &attempt {
                Attempt::Reply { .. } => false,
                Attempt::Failed { kind, .. } => {
                    !matches!(kind, NetworkKind::Connect | NetworkKind::Invalid)
                }
            };
            if unanswered {
                bump(&meter.unanswered);
            }
            reached |= unanswered;
            let draw = self
                .jitter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next_f64();
            let delay = match self.retry.next_step(retries, &result, draw) {
                RetryStep::After(delay) => delay,
                RetryStep::Stop => return self.finish(attempt, reached),
                RetryStep::TooLong(asked) => {
                    return Err(SendError::RetryAfterTooLong {
                        asked,
                        limit: self.retry.max_retry_after,
                        maybe_applied: was_reached,
                    });
                }
            };
            tracing::debug!(
                call = %call.describe(),
                ?result,
                retry = retries + 1,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            let stopped_early = tokio::select! {
                biased;
                () = stopped(&mut stop) => true,
                () = tokio::time::sleep(delay) => false,
            };
            if stopped_early {
                return self.finish(attempt, reached);
            }
            last = Some(attempt);
            retries += 1;
        }
    }

    /// Counts answers that are not the provider's; the
    /// [`MISDIRECTED_LIMIT`]th in a row stops the call (and the caller's run).
    fn track_endpoint(&self, verdict: &Verdict) -> Option<SendError> {
        match verdict {
            Verdict::Misdirected(e) => {
                bump(&self.counters.misdirected);
                let streak = self.misdirected_streak.fetch_add(1, Ordering::Relaxed) + 1;
                (streak >= MISDIRECTED_LIMIT).then(|| SendError::Misdirected {
                    code: e.code,
                    message: format!(
                        "{MISDIRECTED_LIMIT} answers in a row were not the provider's API; the last: {}",
                        e.message
                    ),
                })
            }
            v if v.is_the_providers() => {
                self.misdirected_streak.store(0, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }

    /// Feeds one attempt's result to the counters and the adaptive rate.
    fn observe(&self, result: &AttemptResult, sent_at: Instant) {
        match *result {
            AttemptResult::Transient {
                status: 429,
                retry_after,
            } => {
                bump(&self.counters.throttled);
                self.pacer.on_throttled(sent_at);
                self.hold_for(retry_after);
            }
            AttemptResult::Transient { status, .. } | AttemptResult::Final { status }
                if status == 429 =>
            {
                // A 429 that is final (its body says more) still means "slower".
                bump(&self.counters.throttled);
                self.pacer.on_throttled(sent_at);
            }
            AttemptResult::Transient {
                status,
                retry_after,
            } => {
                if status >= 500 {
                    bump(&self.counters.server_errors);
                }
                self.hold_for(retry_after);
            }
            AttemptResult::Final { status } => {
                if status >= 500 {
                    bump(&self.counters.server_errors);
                }
            }
            AttemptResult::Network(kind) => {
                bump(&self.counters.network_errors);
                if kind == NetworkKind::Oversized {
                    bump(&self.counters.oversized);
                }
            }
        }
    }

    /// A server's `Retry-After` on a 429/5xx pauses every call, not just the
    /// one it answered: the others would only be refused too.
    fn hold_for(&self, retry_after: Option<Duration>) {
        if let Some(after) = retry_after.filter(|a| *a <= self.retry.max_retry_after)
            && let Some(until) = Instant::now().checked_add(after)
        {
            self.hold.extend(until);
        }
    }

    /// One attempt: waits out any server-requested pause, takes a permit and
    /// a rate token, then sends the request and reads its body (up to the
    /// cap). `None` if the stop came before sending; once sent, the attempt
    /// runs to its end.
    async fn attempt(
        &self,
        call: &Wire<'_>,
        is_retry: bool,
        stop: &mut watch::Receiver<bool>,
        sent: &AtomicBool,
        attempts: &AtomicU64,
        shared: Option<&RwLock<()>>,
    ) -> Option<(Attempt, Instant)> {
        let ready = async {
            self.hold.wait().await;
            // Before the permit: what holds `shared` alone may need permits.
            let shared = match shared {
                Some(lock) => Some(lock.read().await),
                None => None,
            };
            let permit = self.permits.acquire().await.ok();
            self.pacer.ready().await;
            if let Some(gate) = &self.gate {
                gate.open().await;
            }
            permit.map(|p| (p, shared))
        };
        let _permit = tokio::select! {
            biased;
            () = stopped(stop) => None,
            permit = ready => permit,
        }?;
        if *stop.borrow() {
            return None;
        }
        sent.store(true, Ordering::SeqCst);
        bump(&self.counters.attempts);
        bump(attempts);
        if is_retry {
            bump(&self.counters.retries);
        }
        let sent_at = Instant::now();
        Some((self.exchange(call).await, sent_at))
    }

    async fn exchange(&self, call: &Wire<'_>) -> Attempt {
        let mut request = self
            .client
            .request(call.request.method.clone(), call.request.url.clone());
        if let Some(auth) = &call.authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(json) = &call.json {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(json.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                return Attempt::Failed {
                    kind: network_kind(&err),
                    message: error_message(err),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| {
                let parsed = value
                    .to_str()
                    .ok()
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                if parsed.is_none() {
                    // The value itself is not logged: it is the server's to fill.
                    tracing::debug!(
                        call = %call.describe(),
                        status,
                        "ignoring a Retry-After header that is neither seconds nor an HTTP date ({} bytes); backing off on our own",
                        value.len()
                    );
                }
                parsed
            });
        match read_capped(response, self.max_body).await {
            Ok(body) => Attempt::Reply {
                reply: HttpReply { status, body },
                retry_after,
            },
            Err(BodyError::TooLarge) => {
                tracing::debug!(
                    call = %call.describe(),
                    status,
                    limit = self.max_body,
                    "answer larger than the cap: connection dropped, counted as lost"
                );
                Attempt::Failed {
                    kind: NetworkKind::Oversized,
                    message: format!(
                        "the answer was larger than {} bytes and was not read",
                        self.max_body
                    ),
                }
            }
            Err(BodyError::Read(err)) => Attempt::Failed {
                kind: NetworkKind::Body,
                message: error_message(err),
            },
        }
    }

    /// Turns the last attempt into the call's result; `reached` says whether
    /// any attempt may have reached the server.
    fn finish(&self, attempt: Attempt, reached: bool) -> Result<HttpReply, SendError> {
        match attempt {
            Attempt::Reply { reply, .. } => Ok(reply),
            Attempt::Failed {
                kind: NetworkKind::Oversized,
                ..
            } => Err(SendError::TooLarge {
                limit: self.max_body,
            }),
            Attempt::Failed { message, .. } => Err(SendError::Network {
                message,
                maybe_applied: reached,
            }),
        }
    }
}

/// Why a body was not read.
enum BodyError {
    /// Larger than the cap (announced, or counted while reading).
    TooLarge,
    /// The transfer failed.
    Read(reqwest::Error),
}

/// Reads the body chunk by chunk, giving up (and dropping the connection
/// with `response`) as soon as it is known to exceed `cap` bytes: memory never
/// holds more than the cap plus one chunk.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let announced = response.content_length();
    if announced.is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(BodyError::TooLarge);
    }
    // Trust the announced length only as far as the cap, and only for the
    // first allocation.
    let first = announced
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(cap)
        .min(1 << 20);
    let mut body = Vec::with_capacity(first);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len().saturating_add(chunk.len()) > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
