//! Mobivate's address book API (`/addressbook/contacts`, API-NOTES.md): Bearer
//! auth, one contact a request, answers decided by the HTTP status (which
//! Mobivate documents) with details from the `error` object.

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use super::{
    AddResult, ApiRequest, BaseUrlError, Fingerprint, ListPage, Listed, OpError, Provider,
    check_base, endpoint, http_failure, is_success, json_id, json_int, json_object, listed_e164,
    server_message, status_text, unusable_segment,
};
use crate::codes::{ErrorCode, RowError};
use crate::normalize::Contact;
use crate::secret::ApiKey;

/// Contacts a listing page asks for.
pub const PAGE_LIMIT: u64 = 100;

/// The Mobivate provider.
#[derive(Debug, Clone)]
pub struct Mobivate {
    base: Url,
}

impl Mobivate {
    /// A provider talking to `base` (Mobivate gives each customer theirs; there is no default).
    pub fn new(base: Url) -> Result<Mobivate, BaseUrlError> {
        Ok(Mobivate {
            base: check_base(base)?,
        })
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

    /// The request-level error for statuses every call shares: 401/403 (key
    /// invalid, expired or missing a permission) and 402 (out of credit) stop
    /// the run — no other row could succeed either; anything else fails.
    fn into_error(self) -> OpError {
        let text = self.text();
        match self.status {
            401 => OpError::Auth(RowError::new(
                ErrorCode::Auth,
                format!("Mobivate rejected the API key (HTTP 401, invalid or expired): {text}"),
            )),
            403 => OpError::Auth(RowError::new(
                ErrorCode::Auth,
                format!("Mobivate API key lacks the permission for this call (HTTP 403): {text}"),
            )),
            402 => OpError::Auth(RowError::new(
                ErrorCode::Http(402),
                format!("Mobivate account is out of credit (HTTP 402): {text}"),
            )),
            status => http_failure(status, format!("Mobivate error: {text}")),
        }
    }
}

/// Reads status and body up to "success body or refusal".
fn read(status: u16, body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let obj = json_object(body);
    let error = obj.as_ref().and_then(|o| o.get("error"));
    let name = error
        .and_then(|e| e.get("name"))
        .and_then(Value::as_str)
        .map(server_message)
        .unwrap_or_default();
    let message = error
        .and_then(|e| e.get("message"))
        .or_else(|| obj.as_ref().and_then(|o| o.get("message")))
        .and_then(Value::as_str)
        .map(server_message)
        .unwrap_or_default();
    let inner_status = json_int(error.and_then(|e| e.get("statusCode")))
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| !is_success(*s));
    if !is_success(status) {
        return Err(Refusal {
            status,
            name,
            message,
        });
    }
    let Some(obj) = obj else {
        return Err(Refusal {
            status,
            name,
            message: "malformed Mobivate response: the body is not a JSON object".into(),
        });
    };
    if obj.get("success").and_then(Value::as_bool) == Some(false) {
        // A refusal under a 2xx status: its own statusCode says which.
        let inner = inner_status.unwrap_or(status);
        let message = if message.is_empty() {
            "Mobivate refused the request without a message".into()
        } else {
            message
        };
        return Err(Refusal {
            status: inner,
            name,
            message,
        });
    }
    Ok(obj)
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

    /// `count` must be 1 (or 0); for more, every contact fails rather than any
    /// being silently dropped.
    fn parse_add(&self, count: usize, status: u16, body: &[u8]) -> Result<Vec<AddResult>, OpError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        if count > 1 {
            return Err(http_failure(
                status,
                format!("Mobivate adds one contact a request; {count} were given"),
            ));
        }
        match read(status, body) {
            Ok(obj) => Ok(vec![AddResult::Added {
                contact_id: record_id(&obj),
            }]),
            Err(r) if r.is_duplicate() => Ok(vec![AddResult::AlreadyExists]),
            Err(r) if r.status == 400 => Ok(vec![AddResult::Rejected(RowError::new(
                ErrorCode::Http(400),
                format!("Mobivate refused the contact: {}", r.text()),
            ))]),
            Err(r) => Err(r.into_error()),
        }
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
                format!("contact id {contact_id:?} cannot name a Mobivate contact"),
            )));
        }
        Ok(self.request(
            Method::POST,
            &["addressbook", "contacts", contact_id],
            key,
            Some(Payload::of(contact).json()),
        ))
    }

    /// 404 (or 400 "not found") is [`OpError::NotFound`], code `HTTP_404`.
    fn parse_update(&self, contact_id: &str, status: u16, body: &[u8]) -> Result<String, OpError> {
        match read(status, body) {
            Ok(obj) => Ok(record_id(&obj).unwrap_or_else(|| contact_id.to_string())),
            Err(r) if r.is_not_found() => Err(OpError::NotFound(RowError::new(
                ErrorCode::Http(404),
                format!("contact not found: {}", r.text()),
            ))),
            Err(r) => Err(r.into_error()),
        }
    }

    /// `GET /addressbook/contacts?offset&limit`, cursor = offset (`group` unused).
    fn list(&self, key: &ApiKey, _group: &str, cursor: u64) -> ApiRequest {
        let mut req = self.request(Method::GET, &["addressbook", "contacts"], key, None);
        req.url
            .query_pairs_mut()
            .append_pair("offset", &cursor.to_string())
            .append_pair("limit", &PAGE_LIMIT.to_string());
        req
    }

    /// The listing ends on an empty page, at `total`, or (with no total) at a short page.
    fn parse_list(&self, cursor: u64, status: u16, body: &[u8]) -> Result<ListPage, OpError> {
        let obj = read(status, body).map_err(Refusal::into_error)?;
        let records = match obj.get("records") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(http_failure(
                    status,
                    "malformed Mobivate listing: `records` is not a list",
                ));
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
                })
            })
            .collect();
        let len = u64::try_from(records.len()).unwrap_or(u64::MAX);
        let end = cursor.saturating_add(len);
        let next = match json_int(obj.get("total")).and_then(|t| u64::try_from(t).ok()) {
            _ if len == 0 => None,
            Some(total) if end >= total => None,
            None if len < PAGE_LIMIT => None,
            _ => Some(end),
        };
        Ok(ListPage { entries, next })
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
        mv().parse_add(1, status, body.as_bytes())
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
    fn list_uses_offset_and_limit() {
        let req = mv().list(&key(), "unused", 200);
        assert_eq!(req.method, Method::GET);
        assert!(req.body.is_none());
        assert_eq!(req.url.path(), "/api/addressbook/contacts");
        assert_eq!(req.url.query(), Some("offset=200&limit=100"));
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
        assert_eq!(
            add(200, r#"{"success": true}"#).unwrap(),
            vec![AddResult::Added { contact_id: None }]
        );
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
                        assert!(e.is_abort());
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
        for body in ["", "nope", "[]", "\u{0}"] {
            match add(200, body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(200));
                    assert!(e.message.contains("malformed"), "{}", e.message);
                }
                other => panic!("{body:?}: {other:?}"),
            }
            assert!(update(200, body).is_err());
            assert!(mv().parse_list(0, 200, body.as_bytes()).is_err());
        }
    }

    #[test]
    fn more_than_one_contact_fails_every_row_rather_than_dropping_any() {
        assert!(matches!(
            mv().parse_add(2, 200, br#"{"success":true}"#),
            Err(OpError::Failed(_))
        ));
        assert_eq!(mv().parse_add(0, 200, b"").unwrap(), vec![]);
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
        assert!(matches!(update(404, ""), Err(OpError::NotFound(_))));
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
                alias: Some("a7".into())
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
                next: None
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
        let sms = crate::provider::SmsPartner::new(Url::parse("http://h").unwrap()).unwrap();
        assert_ne!(
            p.payload_fingerprint(&base),
            sms.payload_fingerprint(&base),
            "providers hash in their own domains"
        );
    }
}
