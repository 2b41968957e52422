//! The provider layer, sans-IO: each provider turns contacts into
//! [`ApiRequest`]s, classifies every raw answer (status + body together) into
//! one [`Verdict`], and reads per-row results from it. Sending, retries and
//! rate limiting belong to the dispatcher (which retries what the verdict
//! says is transient); what to send belongs to the planner.

pub mod mobivate;
pub mod smspartner;

use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};

use crate::codes::{ErrorCode, RowError};
pub(crate) use crate::dispatch::{ApiRequest, Verdict};
use crate::normalize::Contact;
use crate::secret::ApiKey;

/// What an add did to one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddResult {
    /// Created; the provider's id when the response carries one (SMS Partner
    /// bulk add does not).
    Added {
        /// The new contact's id, if known.
        contact_id: Option<String>,
    },
    /// The number (or Mobivate alias) is already in the target: look it up and update.
    AlreadyExists,
    /// The provider refused this contact; other contacts of the request may have gone through.
    Rejected(RowError),
}

/// One contact of a provider's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The number in E.164 with a leading `+` (as listed when it could not be made so).
    pub phone: String,
    /// The provider's contact id.
    pub contact_id: String,
    /// The Mobivate alias (`None` for SMS Partner, which has none).
    pub alias: Option<String>,
    /// A fingerprint of the fields the contact holds, when the listing shows
    /// them (SMS Partner), for [`Provider::listed_holds`].
    pub held: Option<u64>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The contacts on this page.
    pub entries: Vec<Listed>,
    /// The cursor of the next page, `None` at the end.
    pub next: Option<u64>,
    /// How many contacts the whole listing has, when the answer says.
    pub total: Option<u64>,
}

/// Why a whole request failed (as opposed to one contact of it, see [`AddResult::Rejected`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The run must stop: credentials rejected, or the account refused whatever
    /// is sent (disabled, blocked, no API access, IP not allowed, out of
    /// credit). Code `AUTH` for a rejected key, else the provider's code.
    #[error("{}", .0.message)]
    Auth(RowError),
    /// Update only: the contact id does not exist (any more) at the provider.
    #[error("{}", .0.message)]
    NotFound(RowError),
    /// The request failed; code `API_<n>` or `HTTP_<status>`.
    #[error("{}", .0.message)]
    Failed(RowError),
}

impl OpError {
    /// The code and message for the report.
    pub fn row_error(&self) -> &RowError {
        match self {
            OpError::Auth(e) | OpError::NotFound(e) | OpError::Failed(e) => e,
        }
    }
}

/// A base URL that cannot address an API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Not `http` or `https`.
    #[error("the base URL must use http or https, not {0:?}")]
    Scheme(String),
    /// Has no host.
    #[error("the base URL has no host")]
    NoHost,
}

/// A provider API: builds requests and reads responses, doing no I/O.
///
/// Every `parse_*` takes the HTTP status and the raw body, starts from
/// [`Provider::classify`], never panics on anything a server sends, and puts
/// no key in any message (server messages pass through the key's redaction
/// when the provider was built with [`SmsPartner::redacting`] /
/// [`Mobivate::redacting`]).
pub trait Provider: Send + Sync {
    /// Short name, as given to `--provider`.
    fn name(&self) -> &'static str;

    /// The most contacts one add request may carry.
    fn max_batch(&self) -> usize;

    /// The report code of this provider's "already exists" answer, for a row
    /// whose contact cannot then be found in the listing.
    fn already_exists_code(&self) -> ErrorCode;

    /// How an answer is to be taken, from its status, `Retry-After` and body
    /// together: the one classification the dispatcher's retries and every
    /// `parse_*` follow. Pure; see docs/reliability.md for the table.
    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict;

    /// The request adding `contacts` (1 to [`Provider::max_batch`] of them) to `group`.
    fn add(&self, key: &ApiKey, group: &str, contacts: &[&Contact]) -> ApiRequest;

    /// One result per contact of `contacts` (the slice given to
    /// [`Provider::add`]), in that order, each matched to its contact by
    /// phone number (E.164), never by position; a contact the answer does not
    /// account for exactly is `Rejected` with `RESPONSE_INVALID`.
    fn parse_add(
        &self,
        contacts: &[&Contact],
        status: u16,
        body: &[u8],
    ) -> Result<Vec<AddResult>, OpError>;

    /// The request updating contact `contact_id` with `contact`'s fields.
    ///
    /// `Err(OpError::NotFound)` when the id cannot name a contact at all (so no
    /// request could be sent safely).
    fn update(
        &self,
        key: &ApiKey,
        contact_id: &str,
        contact: &Contact,
    ) -> Result<ApiRequest, OpError>;

    /// The updated contact's id: the one in the response, else `contact_id`.
    fn parse_update(&self, contact_id: &str, status: u16, body: &[u8]) -> Result<String, OpError>;

    /// The request deleting contact `contact_id` (mirror mode).
    ///
    /// `Err(OpError::NotFound)` when the id cannot name a contact at all (so no
    /// request could be sent safely).
    fn delete(&self, key: &ApiKey, contact_id: &str) -> Result<ApiRequest, OpError>;

    /// `Ok(())` when the contact was deleted; `Err(OpError::NotFound)` when
    /// the provider says it does not exist (already gone: the caller counts
    /// it as deleted); `Err(OpError::Auth)` to stop the run; `Err(OpError::Failed)`
    /// for anything else.
    fn parse_delete(&self, status: u16, body: &[u8]) -> Result<(), OpError>;

    /// The request for one page of `group`'s contacts; cursor 0 is the first page.
    fn list(&self, key: &ApiKey, group: &str, cursor: u64) -> ApiRequest;

    /// The page answered to `list(.., cursor)`.
    fn parse_list(&self, cursor: u64, status: u16, body: &[u8]) -> Result<ListPage, OpError>;

    /// Whether `listed` holds exactly `contact`'s fields, so that an update
    /// would change nothing; `false` when the listing does not show them.
    fn listed_holds(&self, _listed: &Listed, _contact: &Contact) -> bool {
        false
    }

    /// The cursor of the last page of a listing of `total` contacts (`None`
    /// when empty), to read a listing from its end.
    fn last_cursor(&self, total: u64) -> Option<u64>;

    /// The cursor of the page before `cursor` (`None` on the first page).
    fn previous_cursor(&self, cursor: u64) -> Option<u64>;

    /// Whether paging through [`Provider::list`] while this run adds and
    /// updates contacts of the target still sees every contact that existed
    /// when the listing began (a sort order that adds and updates cannot
    /// disturb). When not, the engine sends no add or update to a target
    /// while it is listed; deletions (which shift any order) never go then.
    fn listing_stable_under_writes(&self) -> bool {
        false
    }

    /// The request reading back contact `contact_id`, to check that an id
    /// given by the file holds the row's number before updating through it;
    /// `None` when the provider has no read by id (Mobivate).
    fn detail(&self, key: &ApiKey, contact_id: &str) -> Option<ApiRequest>;

    /// The number (E.164 with `+`, normalised as [`Listed::phone`]) of the
    /// contact answered to `detail`; `Ok(None)` when the provider says it does
    /// not exist; `Err(OpError::Auth)` for rejected credentials (or a refused
    /// account), `Err(OpError::Failed)` for anything else.
    fn parse_detail(&self, status: u16, body: &[u8]) -> Result<Option<String>, OpError>;

    /// A stable hash of exactly the contact fields an add or update would send
    /// (key, group and contact id excluded); equal across runs and platforms.
    fn payload_fingerprint(&self, contact: &Contact) -> u64;
}

/// Checks a base URL and drops its query, fragment and trailing slashes.
pub(crate) fn check_base(mut base: Url) -> Result<Url, BaseUrlError> {
    match base.scheme() {
        "http" | "https" => {}
        other => return Err(BaseUrlError::Scheme(other.to_string())),
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(BaseUrlError::NoHost);
    }
    base.set_query(None);
    base.set_fragment(None);
    let path = base.path().trim_end_matches('/').to_string();
    base.set_path(&path);
    Ok(base)
}

/// `base` with `segments` appended to its path, each percent-encoded as needed.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // Cannot fail: check_base only lets http(s) URLs with a host through.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A path segment that `endpoint` would drop or that names nothing: using it
/// would send the request to another endpoint (e.g. update → create).
pub(crate) fn unusable_segment(s: &str) -> bool {
    s.trim().is_empty() || s == "." || s == ".."
}

/// FNV-1a (64-bit) over length-prefixed fields: stable, and unambiguous
/// whatever the fields contain.
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    /// Starts a fingerprint; `domain` names the provider and its payload version.
    pub(crate) fn new(domain: &str) -> Fingerprint {
        let mut f = Fingerprint(0xcbf2_9ce4_8422_2325);
        f.bytes(domain.as_bytes());
        f
    }

    /// Adds one sent field.
    pub(crate) fn field(&mut self, name: &str, value: &str) {
        self.bytes(name.as_bytes());
        self.bytes(value.as_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        for b in len.to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash.
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// The body as a JSON object, if it is one.
pub(crate) fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A JSON string or integer as a string (ids come as either).
pub(crate) fn json_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON integer or numeric string as an integer (codes and totals come as either).
pub(crate) fn json_int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Longest server message kept, in characters.
const MESSAGE_MAX: usize = 300;

/// A server-supplied message made safe for a one-line report cell: control
/// characters become spaces, long text is cut.
pub(crate) fn server_message(raw: &str) -> String {
    let mut out = String::new();
    for (i, c) in raw.trim().chars().enumerate() {
        if i == MESSAGE_MAX {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// `HTTP 502 Bad Gateway`, for responses that carry no message of their own.
pub(crate) fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// A failure with code `HTTP_<status>`.
pub(crate) fn http_failure(status: u16, message: impl Into<String>) -> OpError {
    OpError::Failed(RowError::new(ErrorCode::Http(status), message))
}

/// A row error with code `RESPONSE_INVALID`: an answer that cannot be read,
/// which may nevertheless have been applied.
pub(crate) fn response_invalid(message: impl Into<String>) -> RowError {
    RowError::new(
        ErrorCode::ResponseInvalid,
        format!(
            "{}; the request may have been applied, and the next run settles it",
            message.into()
        ),
    )
}

/// The request-level error for an answer that is not a success: a stop
/// ([`OpError::Auth`]) or a failure. A transient one only reaches a parser
/// once its retries are used up.
pub(crate) fn not_a_success(status: u16, verdict: Verdict) -> OpError {
    match verdict {
        Verdict::Fatal(e) => OpError::Auth(e),
        Verdict::Refused(e) | Verdict::Misdirected(e) => OpError::Failed(e),
        Verdict::Retry { .. } | Verdict::Success => http_failure(status, status_text(status)),
    }
}

/// The message of an answer that is not the provider's API: what came, and
/// what to check.
pub(crate) fn misdirected(provider: &str, status: u16, body: &[u8]) -> RowError {
    let what = if crate::dispatch::looks_like_markup(body) {
        format!("an HTML page ({})", status_text(status))
    } else if (300..400).contains(&status) {
        format!("a redirect ({})", status_text(status))
    } else {
        format!(
            "{} without {provider}'s JSON error body",
            status_text(status)
        )
    };
    let code = if is_success(status) {
        ErrorCode::ResponseInvalid
    } else {
        ErrorCode::Http(status)
    };
    RowError::new(
        code,
        format!("the provider answered {what}: this is not {provider}'s API; check --base-url"),
    )
}

/// The key to strike out of server messages, if the provider was given one.
#[derive(Clone, Default)]
pub(crate) struct Redactor(Option<ApiKey>);

impl Redactor {
    /// Strikes out `key` from now on.
    pub(crate) fn new(key: &ApiKey) -> Redactor {
        Redactor(Some(key.clone()))
    }

    /// A server message made safe: the key redacted, then one bounded line.
    pub(crate) fn message(&self, raw: &str) -> String {
        match &self.0 {
            Some(key) => server_message(&key.redact(raw)),
            None => server_message(raw),
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Redactor(key)"
        } else {
            "Redactor(none)"
        })
    }
}

/// Whether the status is 2xx.
pub(crate) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A listed number in E.164 with `+`: separators dropped, `00` read as `+`,
/// bare digits prefixed. A national number (leading single `0`) cannot be
/// placed without a region and is returned as listed (it then matches no row).
pub(crate) fn listed_e164(raw: &str) -> String {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '/'))
        .collect();
    if compact.starts_with('+') {
        compact
    } else if let Some(rest) = compact.strip_prefix("00") {
        format!("+{rest}")
    } else if compact.starts_with('0') || compact.is_empty() {
        compact
    } else {
        format!("+{compact}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn endpoint_joins_onto_bases_with_and_without_prefix_or_slash() {
        let cases = [
            ("https://api.example", "https://api.example/v1/contact/add"),
            ("https://api.example/", "https://api.example/v1/contact/add"),
            (
                "http://127.0.0.1:9/mock",
                "http://127.0.0.1:9/mock/v1/contact/add",
            ),
            (
                "http://127.0.0.1:9/mock/",
                "http://127.0.0.1:9/mock/v1/contact/add",
            ),
            (
                "http://127.0.0.1:9/a/b//",
                "http://127.0.0.1:9/a/b/v1/contact/add",
            ),
            ("http://h/p?x=1#f", "http://h/p/v1/contact/add"),
        ];
        for (base, want) in cases {
            let base = check_base(url(base)).unwrap();
            assert_eq!(
                endpoint(&base, &["v1", "contact", "add"]).as_str(),
                want,
                "{base}"
            );
        }
    }

    #[test]
    fn endpoint_percent_encodes_segments() {
        let base = check_base(url("http://h/x/")).unwrap();
        let u = endpoint(&base, &["contacts", "a/b?c#d%e f"]);
        assert_eq!(u.path(), "/x/contacts/a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(u.query(), None);
    }

    #[test]
    fn base_must_be_http_with_a_host() {
        assert_eq!(
            check_base(url("ftp://h/")),
            Err(BaseUrlError::Scheme("ftp".into()))
        );
        assert!(matches!(
            check_base(url("mailto:a@b")),
            Err(BaseUrlError::Scheme(_))
        ));
        assert!(check_base(url("https://h")).is_ok());
    }

    #[test]
    fn unusable_segments_are_the_ones_endpoint_would_drop() {
        let base = check_base(url("http://h/")).unwrap();
        for s in ["", " ", ".", ".."] {
            assert!(unusable_segment(s), "{s:?}");
        }
        // Proof of the danger: these would address the collection itself.
        assert_eq!(endpoint(&base, &["c", "."]).path(), "/c");
        assert_eq!(endpoint(&base, &["c", ".."]).path(), "/c");
        assert!(!unusable_segment("..."));
        assert!(!unusable_segment("3392287d-7a79"));
    }

    #[test]
    fn api_request_debug_shows_method_and_path_only() {
        let secret = "s3cr3t-key";
        let mut u = url("http://h/mock/v1/contact/list");
        u.query_pairs_mut().append_pair("apiKey", secret);
        let req = ApiRequest {
            method: Method::GET,
            url: u,
            body: Some(serde_json::json!({ "apiKey": secret })),
            bearer: Some(ApiKey::new(secret.into())),
        };
        let shown = format!("{req:?} {req:#?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("apiKey"), "{shown}");
        assert!(shown.contains("GET"), "{shown}");
        assert!(shown.contains("/mock/v1/contact/list"), "{shown}");
    }

    #[test]
    fn fingerprint_is_stable_and_unambiguous() {
        let fp = |fields: &[(&str, &str)]| {
            let mut f = Fingerprint::new("t/1");
            for (n, v) in fields {
                f.field(n, v);
            }
            f.finish()
        };
        // Pinned (computed independently): a change of algorithm would make
        // every stored row look changed.
        assert_eq!(fp(&[]), fp(&[]));
        assert_eq!(fp(&[("a", "1")]), 0x28af_40d7_aad1_441e_u64);
        assert_ne!(fp(&[("a", "bc")]), fp(&[("ab", "c")]));
        assert_ne!(fp(&[("a", "1"), ("b", "")]), fp(&[("a", "1")]));
        let mut other = Fingerprint::new("u/1");
        other.field("a", "1");
        assert_ne!(other.finish(), fp(&[("a", "1")]));
    }

    #[test]
    fn providers_are_object_safe_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Provider>();
        let base = url("http://127.0.0.1:9/");
        let all: Vec<Box<dyn Provider>> = vec![
            Box::new(smspartner::SmsPartner::new(base.clone()).unwrap()),
            Box::new(mobivate::Mobivate::new(base).unwrap()),
        ];
        let names: Vec<_> = all.iter().map(|p| (p.name(), p.max_batch())).collect();
        assert_eq!(names, [("smspartner", 500), ("mobivate", 1)]);
    }

    #[test]
    fn server_messages_are_one_line_and_bounded() {
        assert_eq!(server_message(" a\nb\tc "), "a b c");
        let long = "é".repeat(1000);
        let cut = server_message(&long);
        assert_eq!(cut.chars().count(), MESSAGE_MAX + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn listed_numbers_become_e164() {
        assert_eq!(listed_e164("+33600000000"), "+33600000000");
        assert_eq!(listed_e164("33600000000"), "+33600000000");
        assert_eq!(listed_e164("0033 6 00 00 00 00"), "+33600000000");
        assert_eq!(listed_e164("+44 (20) 7946-0018"), "+442079460018");
        assert_eq!(listed_e164("0600000000"), "0600000000");
        assert_eq!(listed_e164(""), "");
    }

    #[test]
    fn json_helpers_accept_strings_and_numbers() {
        let v = serde_json::json!({"a": "15", "b": 15, "c": "x", "d": 1.5, "e": " 7 "});
        assert_eq!(json_int(v.get("a")), Some(15));
        assert_eq!(json_int(v.get("b")), Some(15));
        assert_eq!(json_int(v.get("c")), None);
        assert_eq!(json_int(v.get("d")), None);
        assert_eq!(json_id(v.get("b")), Some("15".into()));
        assert_eq!(json_id(v.get("e")), Some("7".into()));
        assert_eq!(json_id(v.get("d")), None);
        assert_eq!(json_id(v.get("zz")), None);
        assert_eq!(status_text(502), "HTTP 502 Bad Gateway");
        assert_eq!(status_text(599), "HTTP 599");
    }
}
