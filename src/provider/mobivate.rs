//! Mobivate's address book API (`/addressbook/contacts`, API-NOTES.md): Bearer
//! auth, one contact a request, answers decided by the HTTP status (which
//! Mobivate documents) with details from the `error` object.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use super::{
    AddResult, ApiRequest, BaseUrlError, Fingerprint, ListPage, Listed, OpError, Provider,
    Redactor, Verdict, check_base, endpoint, http_failure, is_success, json_id, json_int,
    json_object, listed_e164, misdirected, not_a_success, response_invalid, status_text,
    unusable_segment,
};
use crate::codes::{ErrorCode, RowError};
use crate::dispatch::{looks_like_markup, transient_status};
use crate::normalize::Contact;
use crate::secret::ApiKey;

/// Contacts a listing page asks for.
pub(crate) const PAGE_LIMIT: u64 = 100;

/// The Mobivate provider.
#[derive(Debug, Clone)]
pub struct Mobivate {
    base: Url,
    redactor: Redactor,
}

impl Mobivate {
    /// A provider talking to `base` (Mobivate gives each customer theirs; there is no default).
    pub fn new(base: Url) -> Result<Mobivate, BaseUrlError> {
        Ok(Mobivate {
            base: check_base(base)?,
            redactor: Redactor::default(),
        })
    }

    /// The same provider, striking `key` out of every server message it reads.
    pub fn redacting(mut self, key: &ApiKey) -> Mobivate {
        self.redactor = Redactor::new(key);
        self
    }

    fn request(
        &self,
        method: Method,
        path: &[&str],
        key: &ApiKey,
        body: Option<Value>,
    ) -> ApiRequest {
        ApiRequest {
            method,
            url: endpoint(&self.base, path),
            body,
            bearer: Some(key.clone()),
        }
    }
}

/// What is sent for a contact, per API-NOTES: `alias` = the alias column or
/// else the E.164 number; `msisdn` = E.164 without `+`; `meta` = the other
/// non-empty fields under upper-case keys, in this order.
struct Payload<'a> {
    alias: &'a str,
    msisdn: &'a str,
    meta: Vec<(&'static str, &'a str)>,
}

impl<'a> Payload<'a> {
    fn of(c: &'a Contact) -> Payload<'a> {
        let alias = if c.alias.is_empty() {
            &c.phone
        } else {
            &c.alias
        };
        let meta = [
            ("FIRSTNAME", &c.firstname),
            ("LASTNAME", &c.lastname),
            ("DATE", &c.date),
            ("URL", &c.url),
            ("CUSTOM1", &c.custom[0]),
            ("CUSTOM2", &c.custom[1]),
            ("CUSTOM3", &c.custom[2]),
            ("CUSTOM4", &c.custom[3]),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect();
        Payload {
            alias,
            msisdn: c.phone.strip_prefix('+').unwrap_or(&c.phone),
            meta,
        }
    }

    fn json(&self) -> Value {
        let meta: Map<String, Value> = self
            .meta
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        json!({ "alias": self.alias, "msisdn": self.msisdn, "meta": meta })
    }
}

/// A refused call: effective status and the `error` object's details.
struct Refusal {
    status: u16,
    name: String,
    message: String,
}

impl Refusal {
    /// `error.message` (or a bare `message`), else the status line.
    fn text(&self) -> String {
        if self.message.is_empty() {
            status_text(self.status)
        } else {
            self.message.clone()
        }
    }

    /// 400 "alias/msisdn already exists". Mobivate does not document the
    /// wording, so any 409, or a 400 whose name or message (any case) says
    /// "already exist", "unique", "duplicate" or "conflict", counts. The
    /// sandbox answers `alias "…" already exists`.
    fn is_duplicate(&self) -> bool {
        let text = format!("{} {}", self.name, self.message).to_lowercase();
        self.status == 409
            || (self.status == 400
                && ["already exist", "unique", "duplicate", "conflict"]
                    .iter()
                    .any(|w| text.contains(w)))
    }

    /// 404, or a 400 saying not found (an older version of the docs answers so).
    fn is_not_found(&self) -> bool {
        self.status == 404
            || (self.status == 400
                && (self.name == "NotFoundError"
                    || self.message.to_lowercase().contains("not found")))
    }
}

/// What a Mobivate answer is, before the verdict.
enum Read {
    /// A success body (2xx, Mobivate's JSON, `success` not false).
    Body(Map<String, Value>),
    /// A refusal, with its effective status and details.
    Refused(Refusal),
    /// Not Mobivate's JSON, under `status`.
    Foreign,
}

/// Whether a JSON object is a Mobivate answer: it carries `success`,
/// `error`, `record` or `records`.
fn own_shape(obj: &Map<String, Value>) -> bool {
    ["success", "error", "record", "records"]
        .iter()
        .any(|k| obj.contains_key(*k))
}

impl Mobivate {
    /// Reads status and body up to "success body, refusal, or not Mobivate's".
    fn read(&self, status: u16, body: &[u8]) -> Read {
        let Some(obj) = json_object(body).filter(own_shape) else {
            return Read::Foreign;
        };
        let error = obj.get("error");
        let name = error
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str)
            .map(|n| self.redactor.message(n))
            .unwrap_or_default();
        let message = error
            .and_then(|e| e.get("message"))
            .or_else(|| obj.get("message"))
            .and_then(Value::as_str)
            .map(|m| self.redactor.message(m))
            .unwrap_or_default();
        if !is_success(status) {
            return Read::Refused(Refusal {
                status,
                name,
                message,
            });
        }
        if obj.get("success").and_then(Value::as_bool) == Some(false) {
            // A refusal under a 2xx status: its own statusCode says which.
            let inner = json_int(error.and_then(|e| e.get("statusCode")))
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| !is_success(*s));
            let message = if message.is_empty() {
                "Mobivate refused the request without a message".into()
            } else {
                message
            };
            return Read::Refused(Refusal {
                status: inner.unwrap_or(status),
                name,
                message,
            });
        }
        Read::Body(obj)
    }

    /// The request-level error of an answer that is not a success; a
    /// transient one (its retries used up) keeps Mobivate's own message.
    fn failure(&self, status: u16, verdict: Verdict, body: &[u8]) -> OpError {
        match (&verdict, self.read(status, body)) {
            (Verdict::Retry { .. }, Read::Refused(r)) if !r.message.is_empty() => {
                http_failure(r.status, format!("Mobivate error: {}", r.text()))
            }
            _ => not_a_success(status, verdict),
        }
    }

    /// The verdict on an effective status: 401/403 (key invalid, expired or
    /// missing a permission) and 402 (out of credit) stop the run — no other
    /// row could succeed either; 429 and 5xx (but 501) are transient.
    fn status_verdict(status: u16, retry_after: Option<Duration>, text: &str) -> Option<Verdict> {
        Some(match status {
            401 => Verdict::Fatal(RowError::new(
                ErrorCode::Auth,
                format!("Mobivate rejected the API key (HTTP 401, invalid or expired): {text}"),
            )),
            403 => Verdict::Fatal(RowError::new(
                ErrorCode::Auth,
                format!("Mobivate API key lacks the permission for this call (HTTP 403): {text}"),
            )),
            402 => Verdict::Fatal(RowError::new(
                ErrorCode::Http(402),
                format!("Mobivate account is out of credit (HTTP 402): {text}"),
            )),
            s if transient_status(s) => Verdict::Retry { after: retry_after },
            _ => return None,
        })
    }
}

/// `record.id` of a success body.
fn record_id(obj: &Map<String, Value>) -> Option<String> {
    json_id(obj.get("record").and_then(|r| r.get("id")))
}

impl Provider for Mobivate {
    fn name(&self) -> &'static str {
        "mobivate"
    }

    fn max_batch(&self) -> usize {
        1
    }

    /// A 400 for a unique alias (or number) already taken.
    fn already_exists_code(&self) -> ErrorCode {
        ErrorCode::Http(400)
    }

    /// `POST /addressbook/contacts` for the first contact (Mobivate takes one a
    /// request; `group` is unused: the key names the address book).
    fn add(&self, key: &ApiKey, _group: &str, contacts: &[&Contact]) -> ApiRequest {
        let body = contacts
            .first()
            .map_or_else(|| json!({}), |c| Payload::of(c).json());
        self.request(Method::POST, &["addressbook", "contacts"], key, Some(body))
    }

    /// Decided by the (documented) status: 401/403/402 stop the run, 429 and
    /// 5xx (but 501) are transient, other refusals are row matters; a
    /// `success: false` under 2xx takes its `error.statusCode`. An HTML page,
    /// a redirect or a 404/405/501 without Mobivate's JSON is misdirected; a
    /// 2xx that is not its JSON (`200 {}`) cannot be read (`RESPONSE_INVALID`).
    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
        match self.read(status, body) {
            Read::Body(_) => Verdict::Success,
            Read::Refused(r) => {
                let text = r.text();
                Self::status_verdict(r.status, retry_after, &text).unwrap_or_else(|| {
                    Verdict::Refused(RowError::new(
                        ErrorCode::Http(r.status),
                        format!("Mobivate error: {text}"),
                    ))
                })
            }
            Read::Foreign => {
                let text = status_text(status);
                if let Some(v) = Self::status_verdict(status, retry_after, &text) {
                    v
                } else if looks_like_markup(body)
                    || matches!(status, 404 | 405 | 501)
                    || (300..400).contains(&status)
                {
                    Verdict::Misdirected(misdirected("Mobivate", status, body))
                } else if is_success(status) {
                    Verdict::Refused(response_invalid(
                        "the answer is not Mobivate's JSON (no success, error or record)",
                    ))
                } else {
                    Verdict::Refused(RowError::new(
                        ErrorCode::Http(status),
                        format!("Mobivate error: {text}"),
                    ))
                }
            }
        }
    }

    /// One contact (or none); for more, every contact fails rather than any
    /// being silently dropped. A success must carry the documented
    /// `record.id`: without it the contact is `RESPONSE_INVALID`, not `added`.
    fn parse_add(
        &self,
        contacts: &[&Contact],
        status: u16,
        body: &[u8],
    ) -> Result<Vec<AddResult>, OpError> {
        match contacts.len() {
            0 => return Ok(Vec::new()),
            1 => {}
            n => {
                return Err(http_failure(
                    status,
                    format!("Mobivate adds one contact a request; {n} were given"),
                ));
            }
        }
        let result = match (self.classify(status, None, body), self.read(status, body)) {
            (Verdict::Success, Read::Body(obj)) => match record_id(&obj) {
                Some(id) => AddResult::Added {
                    contact_id: Some(id),
                },
                None => AddResult::Rejected(response_invalid(
                    "Mobivate answered success without the created record's id",
                )),
            },
            (Verdict::Refused(_), Read::Refused(r)) if r.is_duplicate() => AddResult::AlreadyExists,
            (Verdict::Refused(_), Read::Refused(r)) if r.status == 400 => {
                AddResult::Rejected(RowError::new(
                    ErrorCode::Http(400),
                    format!("Mobivate refused the contact: {}", r.text()),
                ))
            }
            // A bare 409 Conflict: the alias is taken.
            (Verdict::Refused(_), Read::Foreign) if status == 409 => AddResult::AlreadyExists,
            (verdict, _) => return Err(self.failure(status, verdict, body)),
        };
        Ok(vec![result])
    }

    /// `POST /addressbook/contacts/{id}` with the same fields as an add.
    fn update(
        &self,
        key: &ApiKey,
        contact_id: &str,
        contact: &Contact,
    ) -> Result<ApiRequest, OpError> {
        if unusable_segment(contact_id) {
            // Sent, "" "." or ".." would collapse onto the create endpoint.
            return Err(OpError::NotFound(RowError::new(
                ErrorCode::Http(404),
                format!(
                    "contact id {} cannot name a Mobivate contact",
                    crate::words::quote(contact_id)
                ),
            )));
        }
        Ok(self.request(
            Method::POST,
            &["addressbook", "contacts", contact_id],
            key,
            Some(Payload::of(contact).json()),
        ))
    }

    /// A Mobivate 404 (or 400 "not found") is [`OpError::NotFound`], code
    /// `HTTP_404`; a bare 404 without Mobivate's JSON is misdirected, not that.
    fn parse_update(&self, contact_id: &str, status: u16, body: &[u8]) -> Result<String, OpError> {
        match (self.classify(status, None, body), self.read(status, body)) {
            (Verdict::Success, Read::Body(obj)) => {
                Ok(record_id(&obj).unwrap_or_else(|| contact_id.to_string()))
            }
            (Verdict::Refused(_), Read::Refused(r)) if r.is_not_found() => {
                Err(OpError::NotFound(RowError::new(
                    ErrorCode::Http(404),
                    format!("contact not found: {}", r.text()),
                )))
            }
            (verdict, _) => Err(self.failure(status, verdict, body)),
        }
    }

    /// `DELETE /addressbook/contacts/{id}`.
    fn delete(&self, key: &ApiKey, contact_id: &str) -> Result<ApiRequest, OpError> {
        if unusable_segment(contact_id) {
            // Sent, "" "." or ".." would address the collection, not a contact.
            return Err(OpError::NotFound(RowError::new(
                ErrorCode::Http(404),
                format!("contact id {contact_id:?} cannot name a Mobivate contact"),
            )));
        }
        Ok(self.request(
            Method::DELETE,
            &["addressbook", "contacts", contact_id],
            key,
            None,
        ))
    }

    /// A Mobivate 404 (or 400 "not found") is [`OpError::NotFound`] (already
    /// gone); a bare 404 without Mobivate's JSON is misdirected, not that.
    fn parse_delete(&self, status: u16, body: &[u8]) -> Result<(), OpError> {
        match (self.classify(status, None, body), self.read(status, body)) {
            (Verdict::Success, Read::Body(_)) => Ok(()),
            (Verdict::Refused(_), Read::Refused(r)) if r.is_not_found() => {
                Err(OpError::NotFound(RowError::new(
                    ErrorCode::Http(404),
                    format!("contact not found: {}", r.text()),
                )))
            }
            (verdict, _) => Err(self.failure(status, verdict, body)),
        }
    }

    /// `GET /addressbook/contacts?offset&limit&sortField=created_on&sortDir=asc`,
    /// cursor = offset (`group` unused). Oldest first: a contact created
    /// while the listing runs sorts after every contact that existed when it
    /// began, and an update moves nothing, so paging by offset never skips
    /// one of those (an insert can only repeat a record, which is harmless).
    fn list(&self, key: &ApiKey, _group: &str, cursor: u64) -> ApiRequest {
        let mut req = self.request(Method::GET, &["addressbook", "contacts"], key, None);
        req.url
            .query_pairs_mut()
            .append_pair("offset", &cursor.to_string())
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("sortField", "created_on")
            .append_pair("sortDir", "asc");
        req
    }

    /// Pages of 100 records: cursor = offset.
    fn last_cursor(&self, total: u64) -> Option<u64> {
        total.checked_sub(1).map(|t| t / PAGE_LIMIT * PAGE_LIMIT)
    }

    fn previous_cursor(&self, cursor: u64) -> Option<u64> {
        cursor.checked_sub(PAGE_LIMIT)
    }

    /// Sorted oldest first (see [`Provider::list`] above): no lock needed.
    fn listing_stable_under_writes(&self) -> bool {
        true
    }

    /// The listing ends on an empty page, at `total`, or (with no total) at a short page.
    fn parse_list(&self, cursor: u64, status: u16, body: &[u8]) -> Result<ListPage, OpError> {
        let obj = match (self.classify(status, None, body), self.read(status, body)) {
            (Verdict::Success, Read::Body(obj)) => obj,
            (verdict, _) => return Err(self.failure(status, verdict, body)),
        };
        let records = match obj.get("records") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(OpError::Failed(response_invalid(
                    "malformed Mobivate listing: `records` is not a list",
                )));
            }
        };
        let entries = records
            .iter()
            .filter_map(|r| {
                let msisdn = r.get("msisdn").and_then(|m| json_id(Some(m)))?;
                let contact_id = json_id(r.get("id"))?;
                Some(Listed {
                    phone: listed_e164(&msisdn),
                    contact_id,
                    alias: r.get("alias").and_then(Value::as_str).map(str::to_string),
                    held: None,
                })
            })
            .collect();
        let len = u64::try_from(records.len()).unwrap_or(u64::MAX);
        let end = cursor.saturating_add(len);
        let total = json_int(obj.get("total")).and_then(|t| u64::try_from(t).ok());
        let next = match total {
            _ if len == 0 => None,
            Some(total) if end >= total => None,
            None if len < PAGE_LIMIT => None,
            _ => Some(end),
        };
        Ok(ListPage {
            entries,
            next,
            total,
        })
    }

    /// Mobivate has no read by id (API-NOTES): `None`.
    fn detail(&self, _key: &ApiKey, _contact_id: &str) -> Option<ApiRequest> {
        None
    }

    /// Never a request of ours to parse ([`Mobivate::detail`] builds none): a failure.
    fn parse_detail(&self, status: u16, _body: &[u8]) -> Result<Option<String>, OpError> {
        Err(http_failure(
            status,
            "Mobivate has no read by contact id: no detail answer to read",
        ))
    }

    fn payload_fingerprint(&self, contact: &Contact) -> u64 {
        let p = Payload::of(contact);
        let mut f = Fingerprint::new("mobivate/contact/1");
        f.field("alias", p.alias);
        f.field("msisdn", p.msisdn);
        for (k, v) in &p.meta {
            f.field(k, v);
        }
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "mv_bearer_77c1";
    const BASE: &str = "https://mobivate.example/api/";

    fn provider(base: &str) -> Mobivate {
        Mobivate::new(Url::parse(base).unwrap()).unwrap()
    }

    fn mv() -> Mobivate {
        provider(BASE)
    }

    fn key() -> ApiKey {
        ApiKey::new(SECRET.into())
    }

    fn full() -> Contact {
        Contact {
            phone: "+33612345678".into(),
            firstname: "Zoé".into(),
            lastname: "Martin".into(),
            date: "1990-05-17".into(),
            url: "https://example.com/z".into(),
            custom: ["c1".into(), "c2".into(), "c3".into(), "c4".into()],
            contact_id: "ignored".into(),
            group_id: "ignored".into(),
            alias: String::new(),
            ..Contact::default()
        }
    }

    fn add(status: u16, body: &str) -> Result<Vec<AddResult>, OpError> {
        mv().parse_add(&[&full()], status, body.as_bytes())
    }

    fn update(status: u16, body: &str) -> Result<String, OpError> {
        mv().parse_update("sent-id", status, body.as_bytes())
    }

    fn error_body(name: &str, code: u16, message: &str) -> String {
        json!({"success": false, "error": {"name": name, "statusCode": code, "message": message}})
            .to_string()
    }

    // ---- requests ----

    #[test]
    fn add_maps_fields_per_api_notes() {
        let req = mv().add(&key(), "unused", &[&full()]);
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url.as_str(),
            "https://mobivate.example/api/addressbook/contacts"
        );
        assert_eq!(req.bearer.as_ref().map(ApiKey::expose), Some(SECRET));
        assert_eq!(
            req.body.unwrap(),
            json!({
                "alias": "+33612345678",
                "msisdn": "33612345678",
                "meta": {
                    "FIRSTNAME": "Zoé", "LASTNAME": "Martin", "DATE": "1990-05-17",
                    "URL": "https://example.com/z",
                    "CUSTOM1": "c1", "CUSTOM2": "c2", "CUSTOM3": "c3", "CUSTOM4": "c4",
                }
            })
        );
        let sparse = Contact {
            phone: "+447700900123".into(),
            alias: "john".into(),
            custom: [String::new(), "x".into(), String::new(), String::new()],
            ..Contact::default()
        };
        assert_eq!(
            mv().add(&key(), "", &[&sparse]).body.unwrap(),
            json!({"alias": "john", "msisdn": "447700900123", "meta": {"CUSTOM2": "x"}})
        );
        assert_eq!(mv().max_batch(), 1);
    }

    #[test]
    fn delete_is_a_delete_on_the_id_and_reads_not_found_as_gone() {
        let req = mv().delete(&key(), "3392287d").unwrap();
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(
            req.url.as_str(),
            "https://mobivate.example/api/addressbook/contacts/3392287d"
        );
        assert!(req.body.is_none());
        assert!(matches!(
            mv().delete(&key(), ".."),
            Err(OpError::NotFound(_))
        ));
        assert_eq!(mv().parse_delete(200, br#"{"success": true}"#), Ok(()));
        let gone = error_body("NotFoundError", 404, "no such contact");
        assert!(matches!(
            mv().parse_delete(404, gone.as_bytes()),
            Err(OpError::NotFound(e)) if e.code == ErrorCode::Http(404)
        ));
        let old = error_body("BadRequestError", 400, "Contact not found");
        assert!(matches!(
            mv().parse_delete(400, old.as_bytes()),
            Err(OpError::NotFound(_))
        ));
        let denied = error_body("ForbiddenError", 403, "missing delete:Contacts");
        assert!(matches!(
            mv().parse_delete(403, denied.as_bytes()),
            Err(OpError::Auth(_))
        ));
        assert!(matches!(
            mv().parse_delete(404, b"<html>nginx</html>"),
            Err(OpError::Failed(_))
        ));
    }

    #[test]
    fn update_posts_to_the_percent_encoded_id() {
        let req = mv()
            .update(&key(), "3392287d-7a79-4789-9ef8-7dc174836688", &full())
            .unwrap();
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url.as_str(),
            "https://mobivate.example/api/addressbook/contacts/3392287d-7a79-4789-9ef8-7dc174836688"
        );
        assert_eq!(req.bearer.as_ref().map(ApiKey::expose), Some(SECRET));
        assert_eq!(req.body.unwrap(), Payload::of(&full()).json());
        let req = mv().update(&key(), "a/b?c#d", &full()).unwrap();
        assert_eq!(req.url.path(), "/api/addressbook/contacts/a%2Fb%3Fc%23d");
        assert_eq!(req.url.query(), None);
        assert_eq!(req.url.fragment(), None);
    }

    #[test]
    fn update_with_an_id_that_would_hit_another_endpoint_is_refused() {
        for id in ["", " ", ".", ".."] {
            match mv().update(&key(), id, &full()) {
                Err(OpError::NotFound(e)) => assert_eq!(e.code, ErrorCode::Http(404)),
                other => panic!("{id:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn list_uses_offset_and_limit_oldest_first() {
        let req = mv().list(&key(), "unused", 200);
        assert_eq!(req.method, Method::GET);
        assert!(req.body.is_none());
        assert_eq!(req.url.path(), "/api/addressbook/contacts");
        assert_eq!(
            req.url.query(),
            Some("offset=200&limit=100&sortField=created_on&sortDir=asc")
        );
        assert_eq!(req.bearer.as_ref().map(ApiKey::expose), Some(SECRET));
    }

    #[test]
    fn base_without_trailing_slash_or_prefix() {
        assert_eq!(
            provider("http://127.0.0.1:9/mock")
                .add(&key(), "", &[&full()])
                .url
                .as_str(),
            "http://127.0.0.1:9/mock/addressbook/contacts"
        );
        assert_eq!(
            provider("http://127.0.0.1:9")
                .list(&key(), "", 0)
                .url
                .path(),
            "/addressbook/contacts"
        );
    }

    #[test]
    fn debug_of_requests_hides_the_bearer() {
        let reqs = [
            mv().add(&key(), "", &[&full()]),
            mv().update(&key(), "id", &full()).unwrap(),
            mv().list(&key(), "", 0),
        ];
        for req in reqs {
            let shown = format!("{req:?}");
            assert!(!shown.contains(SECRET), "{shown}");
        }
    }

    // ---- add responses ----

    #[test]
    fn add_success_gives_the_record_id() {
        let body = r#"{"success": true, "record": {"id": "3392287d-7a79-4789-9ef8-7dc174836688",
            "alias": "john", "msisdn": "55555555555", "created_on": "2025-11-10T20:45:30.000Z"}}"#;
        assert_eq!(
            add(200, body).unwrap(),
            vec![AddResult::Added {
                contact_id: Some("3392287d-7a79-4789-9ef8-7dc174836688".into())
            }]
        );
    }

    #[test]
    fn a_success_without_the_record_is_response_invalid_not_added() {
        // `200 {}`, or any success without the documented record: the
        // contact may exist, but nothing says so.
        for body in [
            "{}",
            r#"{"success": true}"#,
            r#"{"success": true, "record": {}}"#,
            r#"{"success": true, "record": {"alias": "x"}}"#,
            r#"{"record": null}"#,
        ] {
            match add(200, body) {
                Ok(r) => match r.as_slice() {
                    [AddResult::Rejected(e)] => {
                        assert_eq!(e.code, ErrorCode::ResponseInvalid, "{body}")
                    }
                    other => panic!("{body}: {other:?}"),
                },
                Err(OpError::Failed(e)) => assert_eq!(e.code, ErrorCode::ResponseInvalid, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn add_of_an_existing_alias_is_already_exists() {
        for (status, body) in [
            (
                400,
                error_body(
                    "ValidationError",
                    400,
                    r#"alias "+33612345678" already exists"#,
                ),
            ),
            (
                400,
                error_body("BadRequestError", 400, "Alias must be UNIQUE"),
            ),
            (400, error_body("DuplicateKey", 400, "")),
            (409, error_body("ConflictError", 409, "exists")),
            (409, "Conflict".to_string()),
        ] {
            assert_eq!(
                add(status, &body).unwrap(),
                vec![AddResult::AlreadyExists],
                "{body}"
            );
        }
    }

    #[test]
    fn other_validation_errors_reject_the_row() {
        let body = error_body(
            "ValidationError",
            400,
            "msisdn must be an international number",
        );
        match add(400, &body).unwrap().as_slice() {
            [AddResult::Rejected(e)] => {
                assert_eq!(e.code, ErrorCode::Http(400));
                assert!(e.message.contains("msisdn must be"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_and_credit_errors_abort() {
        for (status, code) in [
            (401, ErrorCode::Auth),
            (403, ErrorCode::Auth),
            (402, ErrorCode::Http(402)),
        ] {
            let body = error_body("E", status, "no");
            for result in [
                add(status, &body).map(|_| ()),
                add(status, "").map(|_| ()),
                update(status, &body).map(|_| ()),
                mv().parse_list(0, status, body.as_bytes()).map(|_| ()),
            ] {
                match result {
                    Err(e @ OpError::Auth(_)) => {
                        assert_eq!(e.row_error().code, code, "{status}");
                    }
                    other => panic!("{status}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn refusal_under_a_success_status_uses_its_own_status_code() {
        let body = error_body("UnauthorizedError", 401, "expired");
        assert!(matches!(add(200, &body), Err(OpError::Auth(_))));
        let body = error_body("ValidationError", 400, "alias already exists");
        assert_eq!(add(200, &body).unwrap(), vec![AddResult::AlreadyExists]);
        match add(200, r#"{"success": false}"#) {
            Err(OpError::Failed(e)) => assert_eq!(e.code, ErrorCode::Http(200)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_errors_and_malformed_bodies_fail_clearly() {
        for status in [404, 429, 500, 503] {
            match add(status, "<html>oops</html>") {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(status));
                    assert!(
                        e.message.contains(&format!("HTTP {status}")),
                        "{}",
                        e.message
                    );
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        let body = error_body("InternalServerError", 500, "db down");
        assert!(
            matches!(add(500, &body), Err(OpError::Failed(e)) if e.message.contains("db down"))
        );
        for body in ["", "nope", "[]", "\u{0}", "{}"] {
            match add(200, body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::ResponseInvalid, "{body:?}");
                    assert!(e.message.contains("not Mobivate's JSON"), "{}", e.message);
                }
                other => panic!("{body:?}: {other:?}"),
            }
            assert!(update(200, body).is_err());
            assert!(mv().parse_list(0, 200, body.as_bytes()).is_err());
        }
    }

    #[test]
    fn more_than_one_contact_fails_every_row_rather_than_dropping_any() {
        let (a, b) = (full(), full());
        assert!(matches!(
            mv().parse_add(&[&a, &b], 200, br#"{"success":true}"#),
            Err(OpError::Failed(_))
        ));
        assert_eq!(mv().parse_add(&[], 200, b"").unwrap(), vec![]);
    }

    // ---- classification ----

    fn kind(v: &Verdict) -> (&'static str, Option<ErrorCode>) {
        match v {
            Verdict::Success => ("success", None),
            Verdict::Retry { .. } => ("retry", None),
            Verdict::Refused(e) => ("refused", Some(e.code)),
            Verdict::Fatal(e) => ("fatal", Some(e.code)),
            Verdict::Misdirected(e) => ("misdirected", Some(e.code)),
        }
    }

    #[test]
    fn classification_table() {
        use ErrorCode::{Auth, Http, ResponseInvalid};
        let after = Some(Duration::from_secs(9));
        let e = |name: &str, status: u16| error_body(name, status, "m");
        let table: Vec<(u16, String, &str, Option<ErrorCode>)> = vec![
            (
                200,
                r#"{"success": true, "record": {"id": "x"}}"#.into(),
                "success",
                None,
            ),
            (200, r#"{"success": true}"#.into(), "success", None),
            (
                201,
                r#"{"records": [], "total": 0}"#.into(),
                "success",
                None,
            ),
            // Stops: key, permission, credit — JSON or not.
            (401, e("UnauthorizedError", 401), "fatal", Some(Auth)),
            (401, String::new(), "fatal", Some(Auth)),
            (403, e("ForbiddenError", 403), "fatal", Some(Auth)),
            (403, "<html>WAF</html>".into(), "fatal", Some(Auth)),
            (
                402,
                e("PaymentRequiredError", 402),
                "fatal",
                Some(Http(402)),
            ),
            (200, e("UnauthorizedError", 401), "fatal", Some(Auth)),
            // Transient.
            (429, e("TooManyRequestsError", 429), "retry", None),
            (429, String::new(), "retry", None),
            (500, e("InternalServerError", 500), "retry", None),
            (502, "<html>Bad Gateway</html>".into(), "retry", None),
            (503, String::new(), "retry", None),
            // Row matters.
            (400, e("ValidationError", 400), "refused", Some(Http(400))),
            (404, e("NotFoundError", 404), "refused", Some(Http(404))),
            (409, "Conflict".into(), "refused", Some(Http(409))),
            (
                422,
                r#"{"success": false}"#.into(),
                "refused",
                Some(Http(422)),
            ),
            (
                200,
                r#"{"success": false}"#.into(),
                "refused",
                Some(Http(200)),
            ),
            (501, e("NotImplemented", 501), "refused", Some(Http(501))),
            (200, "{}".into(), "refused", Some(ResponseInvalid)),
            (200, String::new(), "refused", Some(ResponseInvalid)),
            (
                200,
                r#"{"id": "x"}"#.into(),
                "refused",
                Some(ResponseInvalid),
            ),
            // Not Mobivate's API.
            (404, String::new(), "misdirected", Some(Http(404))),
            (
                404,
                "Cannot POST /addressbook/contacts".into(),
                "misdirected",
                Some(Http(404)),
            ),
            (405, String::new(), "misdirected", Some(Http(405))),
            (501, String::new(), "misdirected", Some(Http(501))),
            (308, String::new(), "misdirected", Some(Http(308))),
            (
                200,
                "<html><body>Login</body></html>".into(),
                "misdirected",
                Some(ResponseInvalid),
            ),
            (400, "<html>x</html>".into(), "misdirected", Some(Http(400))),
        ];
        for (status, body, want, code) in &table {
            let v = mv().classify(*status, after, body.as_bytes());
            assert_eq!(kind(&v), (*want, *code), "{status} {body}");
            if let Verdict::Retry { after: got } = v {
                assert_eq!(got, after, "{status} {body}");
            }
        }
    }

    #[test]
    fn server_messages_echoing_the_key_are_redacted() {
        let p = mv().redacting(&key());
        let body = error_body("ValidationError", 400, &format!("bad token {SECRET}"));
        match p
            .parse_add(&[&full()], 400, body.as_bytes())
            .unwrap()
            .as_slice()
        {
            [AddResult::Rejected(e)] => {
                assert!(!e.message.contains(SECRET), "{}", e.message);
                assert!(e.message.contains("[redacted]"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        let body = error_body(
            &format!("Err{SECRET}"),
            401,
            &format!("key {SECRET} expired"),
        );
        let e = p.parse_update("id", 401, body.as_bytes()).unwrap_err();
        assert!(!e.row_error().message.contains(SECRET), "{e}");
        let body = error_body("InternalServerError", 500, &format!("{SECRET} broke"));
        let e = p.parse_list(0, 500, body.as_bytes()).unwrap_err();
        assert!(!e.row_error().message.contains(SECRET), "{e}");
        assert!(e.row_error().message.contains("broke"), "{e}");
    }

    // ---- update responses ----

    #[test]
    fn update_success_returns_the_id() {
        // The documented response (seed 003).
        let body = r#"{"success": true, "record": {"id": "3392287d-7a79-4789-9ef8-7dc174836688",
            "alias": "john", "msisdn": "55555555555", "updated_on": "2025-11-10T20:45:30.000Z"}}"#;
        assert_eq!(
            update(200, body).unwrap(),
            "3392287d-7a79-4789-9ef8-7dc174836688"
        );
        assert_eq!(update(200, r#"{"success": true}"#).unwrap(), "sent-id");
    }

    #[test]
    fn update_not_found_under_404_or_the_documented_400() {
        // Seed 003 documents this body under HTTP 400.
        let body = error_body("NotFoundError", 404, "Contact not found");
        for status in [400, 404] {
            match update(status, &body) {
                Err(OpError::NotFound(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(404));
                    assert!(e.message.starts_with("contact not found"), "{}", e.message);
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        // A bare 404 is not Mobivate saying "not found": it is misdirected.
        for body in ["", "Not Found", "<html>404</html>"] {
            match update(404, body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(404));
                    assert!(e.message.contains("--base-url"), "{}", e.message);
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
        let dup = error_body("ValidationError", 400, "alias already exists");
        assert!(
            matches!(update(400, &dup), Err(OpError::Failed(e)) if e.code == ErrorCode::Http(400))
        );
    }

    // ---- listing ----

    fn page(offset: u64, n: u64, total: Option<u64>) -> String {
        let records: Vec<Value> = (0..n)
            .map(|i| {
                let k = offset + i;
                json!({"id": format!("id-{k}"), "alias": format!("a{k}"),
                       "msisdn": format!("336000{k:05}"), "created_on": "2025-01-01T00:00:00Z"})
            })
            .collect();
        let mut body = json!({"success": true, "records": records, "offset": offset, "limit": 100});
        if let Some(t) = total {
            body["total"] = json!(t);
        }
        body.to_string()
    }

    #[test]
    fn listing_entries_and_paging() {
        let p = mv()
            .parse_list(0, 200, page(0, 100, Some(250)).as_bytes())
            .unwrap();
        assert_eq!(p.entries.len(), 100);
        assert_eq!(
            p.entries[7],
            Listed {
                phone: "+33600000007".into(),
                contact_id: "id-7".into(),
                alias: Some("a7".into()),
                held: None,
            }
        );
        assert_eq!(p.next, Some(100));
        let p = mv()
            .parse_list(200, 200, page(200, 50, Some(250)).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
        let p = mv()
            .parse_list(100, 200, page(100, 100, Some(200)).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
        let p = mv()
            .parse_list(300, 200, page(300, 0, Some(250)).as_bytes())
            .unwrap();
        assert_eq!(
            p,
            ListPage {
                entries: vec![],
                next: None,
                total: Some(250),
            }
        );
        // Without a total, a full page asks for more and a short one ends.
        let p = mv()
            .parse_list(0, 200, page(0, 100, None).as_bytes())
            .unwrap();
        assert_eq!(p.next, Some(100));
        let p = mv()
            .parse_list(100, 200, page(100, 3, None).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
        // Empty page with a stale total larger than the book: stop, do not loop.
        let p = mv()
            .parse_list(0, 200, page(0, 0, Some(10)).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
    }

    #[test]
    fn listing_skips_incomplete_records_and_rejects_bad_shapes() {
        let body = json!({"success": true, "total": 3, "records": [
            {"id": "a", "msisdn": "33600000001"},
            {"id": "b"},
            {"msisdn": "33600000003"},
        ]});
        let p = mv()
            .parse_list(0, 200, body.to_string().as_bytes())
            .unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].alias, None);
        assert!(matches!(
            mv().parse_list(0, 200, br#"{"success": true, "records": 5}"#),
            Err(OpError::Failed(e)) if e.message.contains("malformed")
        ));
        assert!(matches!(
            mv().parse_list(0, 404, b""),
            Err(OpError::Failed(e)) if e.code == ErrorCode::Http(404)
        ));
    }

    // ---- fingerprint ----

    #[test]
    fn there_is_no_read_by_id() {
        assert!(mv().detail(&key(), "3392287d-7a79").is_none());
        let body = r#"{"success": true, "record": {"id": "x", "msisdn": "33611111111"}}"#;
        match mv().parse_detail(200, body.as_bytes()) {
            Err(OpError::Failed(e)) => assert!(e.message.contains("no read by contact id")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fingerprint_follows_exactly_the_sent_fields() {
        let p = mv();
        let base = full();
        assert_eq!(p.payload_fingerprint(&base), p.payload_fingerprint(&full()));
        let unsent = Contact {
            contact_id: "x".into(),
            group_id: "y".into(),
            ..full()
        };
        assert_eq!(p.payload_fingerprint(&base), p.payload_fingerprint(&unsent));
        // An alias equal to the default (the number) sends the same thing.
        let same_alias = Contact {
            alias: base.phone.clone(),
            ..full()
        };
        assert_eq!(
            p.payload_fingerprint(&base),
            p.payload_fingerprint(&same_alias)
        );
        let variants = [
            Contact {
                phone: "+33612345679".into(),
                ..full()
            },
            Contact {
                alias: "john".into(),
                ..full()
            },
            Contact {
                firstname: String::new(),
                ..full()
            },
            Contact {
                lastname: "X".into(),
                ..full()
            },
            Contact {
                date: "1990-05-18".into(),
                ..full()
            },
            Contact {
                url: "https://example.com/".into(),
                ..full()
            },
            Contact {
                custom: ["c1".into(), "c2".into(), "c3".into(), "c5".into()],
                ..full()
            },
        ];
        for v in &variants {
            assert_ne!(
                p.payload_fingerprint(&base),
                p.payload_fingerprint(v),
                "{v:?}"
            );
        }
        let sms =
            crate::provider::smspartner::SmsPartner::new(Url::parse("http://h").unwrap()).unwrap();
        assert_ne!(
            p.payload_fingerprint(&base),
            sms.payload_fingerprint(&base),
            "providers hash in their own domains"
        );
    }
}
