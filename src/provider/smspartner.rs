//! SMS Partner's contact API (`/v1/contact/...`, API-NOTES.md): the key rides
//! in the JSON body of POSTs and the query string of GETs; every answer is read
//! from the body's `success`/`code`, whose HTTP status is undocumented.

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use super::{
    AddResult, ApiRequest, BaseUrlError, Fingerprint, ListPage, Listed, OpError, Provider,
    check_base, endpoint, http_failure, is_success, json_id, json_int, json_object, listed_e164,
    server_message, status_text,
};
use crate::codes::{ErrorCode, RowError};
use crate::columns::Field;
use crate::normalize::Contact;
use crate::secret::ApiKey;

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://api.smspartner.fr";

/// Contacts in one bulk add, at most (documented).
pub const MAX_BATCH: usize = 500;

/// Contacts on one listing page (documented).
pub const PAGE_SIZE: u64 = 20;

/// Code 10: API key required or incorrect.
const CODE_BAD_KEY: i64 = 10;
/// Code 15: the number is already in the group.
const CODE_ALREADY_IN_GROUP: i64 = 15;
/// Code 404: the contact (or group) does not exist.
const CODE_NOT_FOUND: i64 = 404;

/// Codes that refuse the account rather than the request: 20 account disabled,
/// 30 account blocked, 40 API access denied, 96 IP not allowed. They are
/// treated like a rejected key ([`OpError::Auth`], the run stops): no other row
/// can succeed either, and carrying on would only hammer a closed door.
const ACCOUNT_CODES: [i64; 4] = [20, 30, 40, 96];

/// The SMS Partner provider.
#[derive(Debug, Clone)]
pub struct SmsPartner {
    base: Url,
}

impl SmsPartner {
    /// A provider talking to `base` (e.g. [`DEFAULT_BASE_URL`], or a sandbox with a path prefix).
    pub fn new(base: Url) -> Result<SmsPartner, BaseUrlError> {
        Ok(SmsPartner {
            base: check_base(base)?,
        })
    }

    /// A GET whose query carries the key, then `params`, in this order.
    fn get(&self, path: &[&str], key: &ApiKey, params: &[(&str, &str)]) -> ApiRequest {
        let mut url = endpoint(&self.base, path);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("apiKey", key.expose());
            for (name, value) in params {
                query.append_pair(name, value);
            }
        }
        ApiRequest {
            method: Method::GET,
            url,
            body: None,
            bearer: None,
        }
    }

    fn post(&self, path: &[&str], body: Value) -> ApiRequest {
        ApiRequest {
            method: Method::POST,
            url: endpoint(&self.base, path),
            body: Some(body),
            bearer: None,
        }
    }
}

/// The contact fields SMS Partner takes, in the order they are sent and hashed.
fn contact_fields(c: &Contact) -> [(Field, &'static str, &str); 9] {
    [
        (Field::PhoneNumber, "phoneNumber", &c.phone),
        (Field::Firstname, "firstname", &c.firstname),
        (Field::Lastname, "lastname", &c.lastname),
        (Field::Date, "date", &c.date),
        (Field::Url, "url", &c.url),
        (Field::Custom1, "custom1", &c.custom[0]),
        (Field::Custom2, "custom2", &c.custom[1]),
        (Field::Custom3, "custom3", &c.custom[2]),
        (Field::Custom4, "custom4", &c.custom[3]),
    ]
}

/// What to send of a field: its value; `""` when the file has the column but
/// the cell is empty and `clear` is set (an update clearing it); else nothing.
fn sent_fields(c: &Contact, clear: bool) -> impl Iterator<Item = (&'static str, &str)> {
    contact_fields(c)
        .into_iter()
        .filter(move |(field, _, v)| !v.is_empty() || (clear && c.present.contains(*field)))
        .map(|(_, name, v)| (name, v))
}

/// The `contact` object: every non-empty field, plus empty ones to clear when `clear`.
fn contact_json(c: &Contact, clear: bool) -> Value {
    let map: Map<String, Value> = sent_fields(c, clear)
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    Value::Object(map)
}

/// A JSON answer: a body to read, or a refusal with its code.
enum Reply {
    Body(Map<String, Value>),
    Refused { code: Option<i64>, message: String },
}

/// Reads status and body up to "success body or coded refusal".
fn read(status: u16, body: &[u8]) -> Result<Reply, OpError> {
    let obj = json_object(body);
    let message = obj
        .as_ref()
        .and_then(|o| o.get("message"))
        .and_then(Value::as_str)
        .map(server_message)
        .unwrap_or_default();
    if status == 401 || status == 403 {
        let code = obj.as_ref().and_then(|o| json_int(o.get("code")));
        let mut text = format!("SMS Partner refused the credentials (HTTP {status})");
        if let Some(code) = code {
            text.push_str(&format!(", code {code}"));
        }
        return Err(OpError::Auth(RowError::new(
            ErrorCode::Auth,
            with_server(text, &message),
        )));
    }
    let Some(obj) = obj else {
        return Err(if is_success(status) {
            http_failure(
                status,
                "malformed SMS Partner response: the body is not a JSON object",
            )
        } else {
            http_failure(status, status_text(status))
        });
    };
    let success = obj.get("success").and_then(Value::as_bool);
    let code = json_int(obj.get("code"));
    let refused = match success {
        Some(ok) => !ok,
        None => code.is_some_and(|c| c != 200),
    };
    if refused {
        return Ok(Reply::Refused { code, message });
    }
    if success.is_none() && code.is_none() && !is_success(status) {
        let text = if message.is_empty() {
            status_text(status)
        } else {
            message
        };
        return Err(http_failure(status, text));
    }
    Ok(Reply::Body(obj))
}

/// The English meaning of a documented code.
fn describe(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "groupId (or contactId) is required",
        2 => "contact info is required",
        10 => "API key is required or incorrect",
        15 => "the number is already in the group",
        20 => "account disabled",
        30 => "account blocked",
        40 => "API access denied",
        90 => "malformed JSON request",
        96 => "IP address not allowed",
        404 => "contact or group does not exist",
        _ => return None,
    })
}

/// `text`, then the server's own words when it gave any.
fn with_server(text: String, server: &str) -> String {
    if server.is_empty() {
        text
    } else {
        format!("{text} (server: {server})")
    }
}

/// The report code and message of a coded refusal.
fn coded(code: i64, server: &str) -> RowError {
    let text = match describe(code) {
        Some(d) => format!("SMS Partner error {code}: {d}"),
        None => format!("SMS Partner error {code}"),
    };
    RowError::new(ErrorCode::Api(code), with_server(text, server))
}

/// The request-level error for a refusal.
fn refusal(status: u16, code: Option<i64>, server: &str) -> OpError {
    match code {
        Some(CODE_BAD_KEY) => OpError::Auth(RowError::new(
            ErrorCode::Auth,
            with_server(
                "SMS Partner rejected the API key (code 10: key required or incorrect)".into(),
                server,
            ),
        )),
        Some(c) if ACCOUNT_CODES.contains(&c) => OpError::Auth(coded(c, server)),
        Some(c) => OpError::Failed(coded(c, server)),
        None => http_failure(
            status,
            with_server(
                "SMS Partner refused the request without an error code".into(),
                server,
            ),
        ),
    }
}

/// One entry of a bulk add's `results`.
fn row_result(status: u16, v: &Value) -> Result<AddResult, OpError> {
    let Some(obj) = v.as_object() else {
        return Ok(AddResult::Rejected(RowError::new(
            ErrorCode::Http(status),
            "malformed SMS Partner bulk result: not a JSON object",
        )));
    };
    let success = obj.get("success").and_then(Value::as_bool);
    let code = json_int(obj.get("code"));
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .map(server_message)
        .unwrap_or_default();
    if code == Some(CODE_ALREADY_IN_GROUP) {
        return Ok(AddResult::AlreadyExists);
    }
    if success == Some(true) || (success.is_none() && code == Some(200)) {
        return Ok(AddResult::Added {
            contact_id: json_id(obj.get("contactId")),
        });
    }
    match refusal(status, code, &message) {
        abort @ OpError::Auth(_) => Err(abort),
        OpError::Failed(e) | OpError::NotFound(e) if success == Some(false) || code.is_some() => {
            Ok(AddResult::Rejected(e))
        }
        _ => Ok(AddResult::Rejected(RowError::new(
            ErrorCode::Http(status),
            "malformed SMS Partner bulk result: neither success nor an error code",
        ))),
    }
}

/// Whether a body that is not a refusal says the call succeeded.
fn succeeded(obj: &Map<String, Value>) -> bool {
    obj.get("success").and_then(Value::as_bool) == Some(true)
        || json_int(obj.get("code")) == Some(200)
}

impl Provider for SmsPartner {
    fn name(&self) -> &'static str {
        "smspartner"
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Code 15, the number is already in the group.
    fn already_exists_code(&self) -> ErrorCode {
        ErrorCode::Api(15)
    }

    /// One contact: `{apiKey, groupId, contact}` (the answer carries the new
    /// id); several: bulk `{apiKey, groupId, contactsList}` (it does not).
    fn add(&self, key: &ApiKey, group: &str, contacts: &[&Contact]) -> ApiRequest {
        let body = match contacts {
            [one] => json!({
                "apiKey": key.expose(),
                "groupId": group,
                "contact": contact_json(one, false),
            }),
            many => json!({
                "apiKey": key.expose(),
                "groupId": group,
                "contactsList": many.iter().map(|c| contact_json(c, false)).collect::<Vec<_>>(),
            }),
        };
        self.post(&["v1", "contact", "add"], body)
    }

    /// A single add's code 15 is that contact's [`AddResult::AlreadyExists`];
    /// any other refusal of the whole request is an `Err` for every contact.
    fn parse_add(&self, count: usize, status: u16, body: &[u8]) -> Result<Vec<AddResult>, OpError> {
        let obj = match read(status, body)? {
            Reply::Refused {
                code: Some(CODE_ALREADY_IN_GROUP),
                ..
            } if count == 1 => return Ok(vec![AddResult::AlreadyExists]),
            Reply::Refused { code, message } => return Err(refusal(status, code, &message)),
            Reply::Body(obj) => obj,
        };
        if let Some(results) = obj.get("results") {
            let Some(results) = results.as_array() else {
                return Err(http_failure(
                    status,
                    "malformed SMS Partner bulk response: `results` is not a list",
                ));
            };
            if results.len() != count {
                return Err(http_failure(
                    status,
                    format!(
                        "malformed SMS Partner bulk response: {} results for {count} contacts",
                        results.len()
                    ),
                ));
            }
            return results.iter().map(|r| row_result(status, r)).collect();
        }
        if count == 1 && succeeded(&obj) {
            let contact_id = obj.get("contact").and_then(|c| json_id(c.get("contactId")));
            return Ok(vec![AddResult::Added { contact_id }]);
        }
        Err(http_failure(
            status,
            "malformed SMS Partner add response: neither per-row results nor a contact",
        ))
    }

    fn update(
        &self,
        key: &ApiKey,
        contact_id: &str,
        contact: &Contact,
    ) -> Result<ApiRequest, OpError> {
        if contact_id.trim().is_empty() {
            return Err(OpError::NotFound(RowError::new(
                ErrorCode::Api(CODE_NOT_FOUND),
                "cannot update a contact with an empty contact id",
            )));
        }
        let body = json!({
            "apiKey": key.expose(),
            "contactId": contact_id,
            "contact": contact_json(contact, true),
        });
        Ok(self.post(&["v1", "contact", "update"], body))
    }

    /// Code 404 is [`OpError::NotFound`]: the id is stale.
    fn parse_update(&self, contact_id: &str, status: u16, body: &[u8]) -> Result<String, OpError> {
        match read(status, body)? {
            Reply::Refused {
                code: Some(CODE_NOT_FOUND),
                message,
            } => Err(OpError::NotFound(coded(CODE_NOT_FOUND, &message))),
            Reply::Refused { code, message } => Err(refusal(status, code, &message)),
            Reply::Body(obj) if succeeded(&obj) => Ok(obj
                .get("contact")
                .and_then(|c| json_id(c.get("contactId")))
                .unwrap_or_else(|| contact_id.to_string())),
            Reply::Body(_) => Err(http_failure(
                status,
                "malformed SMS Partner update response: no success flag",
            )),
        }
    }

    /// `GET /v1/contact/list?apiKey&groupId&page`, page = cursor + 1.
    fn list(&self, key: &ApiKey, group: &str, cursor: u64) -> ApiRequest {
        let page = cursor.saturating_add(1).to_string();
        self.get(
            &["v1", "contact", "list"],
            key,
            &[("groupId", group), ("page", &page)],
        )
    }

    /// The listing ends at a short page, at `total`, or when the server
    /// answers another page than the one asked for (it clamped).
    fn parse_list(&self, cursor: u64, status: u16, body: &[u8]) -> Result<ListPage, OpError> {
        let obj = match read(status, body)? {
            Reply::Refused { code, message } => return Err(refusal(status, code, &message)),
            Reply::Body(obj) => obj,
        };
        let datas = match obj.get("datas") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(http_failure(
                    status,
                    "malformed SMS Partner listing: `datas` is not a list",
                ));
            }
        };
        let entries = datas
            .iter()
            .filter_map(|d| {
                // Documented as `phone`; `phoneNumber` (what add echoes) is accepted too.
                let phone = d
                    .get("phone")
                    .or_else(|| d.get("phoneNumber"))
                    .and_then(Value::as_str)?;
                let contact_id = json_id(d.get("contactId"))?;
                Some(Listed {
                    phone: listed_e164(phone),
                    contact_id,
                    alias: None,
                })
            })
            .collect();
        let page = cursor.saturating_add(1);
        let len = u64::try_from(datas.len()).unwrap_or(u64::MAX);
        let total = json_int(obj.get("total")).and_then(|t| u64::try_from(t).ok());
        let clamped = json_int(obj.get("currentPage"))
            .and_then(|p| u64::try_from(p).ok())
            .is_some_and(|p| p != page);
        let past_total = total.is_some_and(|t| page.saturating_mul(PAGE_SIZE) >= t);
        let next = if len < PAGE_SIZE || past_total || clamped {
            None
        } else {
            Some(page)
        };
        Ok(ListPage { entries, next })
    }

    /// `GET /v1/contact/detail?apiKey&contactId`.
    fn detail(&self, key: &ApiKey, contact_id: &str) -> Option<ApiRequest> {
        Some(self.get(
            &["v1", "contact", "detail"],
            key,
            &[("contactId", contact_id)],
        ))
    }

    /// The contact's `phone` (documented; `phoneNumber` accepted too), made
    /// E.164 like a listed one. Not found: code 404 in the body whatever the
    /// status, or HTTP 404 whose body carries no other code (a body's own
    /// code wins: a 404 saying code 10 is a rejected key).
    fn parse_detail(&self, status: u16, body: &[u8]) -> Result<Option<String>, OpError> {
        let obj = match read(status, body) {
            Ok(Reply::Refused {
                code: Some(CODE_NOT_FOUND),
                ..
            }) => return Ok(None),
            Ok(Reply::Refused { code: None, .. }) | Err(OpError::Failed(_)) if status == 404 => {
                return Ok(None);
            }
            Ok(Reply::Refused { code, message }) => return Err(refusal(status, code, &message)),
            Err(e) => return Err(e),
            Ok(Reply::Body(obj)) => obj,
        };
        if !succeeded(&obj) {
            return Err(http_failure(
                status,
                "malformed SMS Partner detail response: no success flag",
            ));
        }
        obj.get("contact")
            .and_then(|c| c.get("phone").or_else(|| c.get("phoneNumber")))
            .and_then(Value::as_str)
            .map(listed_e164)
            .filter(|phone| !phone.is_empty())
            .map(Some)
            .ok_or_else(|| {
                http_failure(
                    status,
                    "malformed SMS Partner detail response: no contact phone",
                )
            })
    }

    fn payload_fingerprint(&self, contact: &Contact) -> u64 {
        let mut f = Fingerprint::new("smspartner/contact/1");
        // The update form: clearing a field changes what is sent.
        for (name, value) in sent_fields(contact, true) {
            f.field(name, value);
        }
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SP-k3y-9f8e";

    fn provider(base: &str) -> SmsPartner {
        SmsPartner::new(Url::parse(base).unwrap()).unwrap()
    }

    fn sp() -> SmsPartner {
        provider(DEFAULT_BASE_URL)
    }

    fn key() -> ApiKey {
        ApiKey::new(SECRET.into())
    }

    fn contact(phone: &str) -> Contact {
        Contact {
            phone: phone.into(),
            ..Contact::default()
        }
    }

    fn full() -> Contact {
        Contact {
            phone: "+33612345678".into(),
            firstname: "Zoé".into(),
            lastname: "Martin".into(),
            date: "1990-05-17".into(),
            url: "https://example.com/z".into(),
            custom: ["c1".into(), "c2".into(), "c3".into(), "c4".into()],
            contact_id: "ignored-id".into(),
            group_id: "ignored-group".into(),
            alias: "ignored-alias".into(),
            ..Contact::default()
        }
    }

    fn add(count: usize, status: u16, body: &str) -> Result<Vec<AddResult>, OpError> {
        sp().parse_add(count, status, body.as_bytes())
    }

    fn rejected(code: ErrorCode) -> impl Fn(&AddResult) -> bool {
        move |r| matches!(r, AddResult::Rejected(e) if e.code == code)
    }

    // ---- requests ----

    #[test]
    fn updates_clear_empty_cells_of_present_columns_adds_do_not_send_them() {
        let mut c = Contact {
            phone: "+33612345678".into(),
            firstname: "Zoé".into(),
            ..Contact::default()
        };
        c.present.insert(Field::PhoneNumber);
        c.present.insert(Field::Firstname);
        c.present.insert(Field::Url);
        assert_eq!(
            contact_json(&c, true),
            json!({"phoneNumber": "+33612345678", "firstname": "Zoé", "url": ""})
        );
        assert_eq!(
            contact_json(&c, false),
            json!({"phoneNumber": "+33612345678", "firstname": "Zoé"})
        );
        let mut cleared = c.clone();
        cleared.firstname.clear();
        assert_ne!(
            sp().payload_fingerprint(&c),
            sp().payload_fingerprint(&cleared)
        );
    }

    #[test]
    fn single_add_sends_contact_with_non_empty_fields() {
        let req = sp().add(&key(), "G1", &[&full()]);
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.as_str(), "https://api.smspartner.fr/v1/contact/add");
        assert!(req.bearer.is_none());
        assert_eq!(
            req.body.unwrap(),
            json!({
                "apiKey": SECRET,
                "groupId": "G1",
                "contact": {
                    "phoneNumber": "+33612345678",
                    "firstname": "Zoé",
                    "lastname": "Martin",
                    "date": "1990-05-17",
                    "url": "https://example.com/z",
                    "custom1": "c1", "custom2": "c2", "custom3": "c3", "custom4": "c4",
                }
            })
        );
        let sparse = Contact {
            lastname: "Roy".into(),
            custom: [String::new(), String::new(), "x".into(), String::new()],
            ..contact("+33600000001")
        };
        let body = sp().add(&key(), "G1", &[&sparse]).body.unwrap();
        assert_eq!(
            body["contact"],
            json!({"phoneNumber": "+33600000001", "lastname": "Roy", "custom3": "x"})
        );
    }

    #[test]
    fn several_contacts_go_through_bulk_add_in_order() {
        let a = contact("+33600000001");
        let b = Contact {
            firstname: "B".into(),
            ..contact("+33600000002")
        };
        let req = sp().add(&key(), "G1", &[&a, &b]);
        assert_eq!(req.url.path(), "/v1/contact/add");
        assert_eq!(
            req.body.unwrap(),
            json!({
                "apiKey": SECRET,
                "groupId": "G1",
                "contactsList": [
                    {"phoneNumber": "+33600000001"},
                    {"phoneNumber": "+33600000002", "firstname": "B"},
                ]
            })
        );
        assert_eq!(sp().max_batch(), 500);
    }

    #[test]
    fn update_sends_contact_id_and_contact() {
        let req = sp().update(&key(), "C42", &full()).unwrap();
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.path(), "/v1/contact/update");
        let body = req.body.unwrap();
        assert_eq!(body["apiKey"], SECRET);
        assert_eq!(body["contactId"], "C42");
        assert_eq!(body["contact"], contact_json(&full(), false));
        assert!(body.get("groupId").is_none());
    }

    #[test]
    fn update_without_an_id_is_refused_before_sending() {
        let err = sp().update(&key(), " ", &full()).unwrap_err();
        assert!(matches!(err, OpError::NotFound(_)), "{err:?}");
    }

    #[test]
    fn list_is_a_get_with_key_group_and_one_based_page() {
        let req = sp().list(&key(), "G 1&x", 0);
        assert_eq!(req.method, Method::GET);
        assert!(req.body.is_none());
        assert_eq!(req.url.path(), "/v1/contact/list");
        let q: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            vec![
                ("apiKey".into(), SECRET.into()),
                ("groupId".into(), "G 1&x".into()),
                ("page".into(), "1".into()),
            ]
        );
        let req = sp().list(&key(), "G", 4);
        assert!(req.url.query().unwrap().ends_with("page=5"));
    }

    #[test]
    fn detail_is_a_get_with_key_and_contact_id() {
        let req = sp()
            .detail(&key(), "C 42&x")
            .expect("SMS Partner reads by id");
        assert_eq!(req.method, Method::GET);
        assert!(req.body.is_none() && req.bearer.is_none());
        assert_eq!(req.url.path(), "/v1/contact/detail");
        let q: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            vec![
                ("apiKey".into(), SECRET.into()),
                ("contactId".into(), "C 42&x".into()),
            ]
        );
    }

    #[test]
    fn base_url_path_prefix_is_kept() {
        for base in ["http://127.0.0.1:9/mock/", "http://127.0.0.1:9/mock"] {
            let p = provider(base);
            assert_eq!(
                p.add(&key(), "G", &[&full()]).url.as_str(),
                "http://127.0.0.1:9/mock/v1/contact/add"
            );
            assert_eq!(
                p.update(&key(), "C", &full()).unwrap().url.as_str(),
                "http://127.0.0.1:9/mock/v1/contact/update"
            );
            assert_eq!(p.list(&key(), "G", 0).url.path(), "/mock/v1/contact/list");
            assert_eq!(
                p.detail(&key(), "C").unwrap().url.path(),
                "/mock/v1/contact/detail"
            );
        }
    }

    #[test]
    fn debug_of_requests_hides_the_key() {
        let reqs = [
            sp().add(&key(), "G", &[&full()]),
            sp().update(&key(), "C", &full()).unwrap(),
            sp().list(&key(), "G", 0),
            sp().detail(&key(), "C").unwrap(),
        ];
        for req in reqs {
            let shown = format!("{req:?}");
            assert!(!shown.contains(SECRET), "{shown}");
        }
    }

    // ---- add responses ----

    #[test]
    fn single_add_success_gives_the_contact_id() {
        // The documented response (seed 002).
        let body = r#"{"success": true, "code": 200, "contact": {"phoneNumber": "xxxxxxxx",
            "firstname": "First name", "lastname": "Last name", "date": "YYYY-MM-DD",
            "shortUrlPartnr": "http://", "url": "http://", "custom1": "custom 1",
            "custom2": "custom 2", "custom3": "custom 3", "custom4": "custom 4",
            "contactId": "ID CONTACT"}}"#;
        assert_eq!(
            add(1, 200, body).unwrap(),
            vec![AddResult::Added {
                contact_id: Some("ID CONTACT".into())
            }]
        );
        // A numeric id is accepted too.
        let body = r#"{"success": true, "code": 200, "contact": {"contactId": 1234}}"#;
        assert_eq!(
            add(1, 200, body).unwrap(),
            vec![AddResult::Added {
                contact_id: Some("1234".into())
            }]
        );
    }

    #[test]
    fn single_add_code_15_is_already_exists_whatever_the_status() {
        for status in [200, 400, 409, 500] {
            let body = r#"{"success": false, "code": 15, "message": "The number is already in the group"}"#;
            assert_eq!(
                add(1, status, body).unwrap(),
                vec![AddResult::AlreadyExists],
                "{status}"
            );
        }
    }

    #[test]
    fn bulk_results_are_matched_in_order() {
        let body = r#"{
            "groupe": {"name": "Clients", "token": "t"},
            "results": [
                {"success": true, "code": 200, "phoneNumber": "+33600000001", "message": "ok"},
                {"success": false, "code": 15, "phoneNumber": "+33600000002", "message": "Le numéro est déjà dans le groupe"},
                {"success": false, "code": 3, "phoneNumber": "+3360", "message": "Numéro invalide"},
                {"success": true, "code": 200, "phoneNumber": "+33600000004"}
            ],
            "rapport": {"nbline": 4, "nbline_imported": 2, "nbline_updated": 0, "errors": {}}
        }"#;
        let results = add(4, 200, body).unwrap();
        assert_eq!(results[0], AddResult::Added { contact_id: None });
        assert_eq!(results[1], AddResult::AlreadyExists);
        match &results[2] {
            AddResult::Rejected(e) => {
                assert_eq!(e.code, ErrorCode::Api(3));
                assert_eq!(e.code.to_string(), "API_3");
                assert!(e.message.contains("Numéro invalide"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results[3], AddResult::Added { contact_id: None });
    }

    #[test]
    fn bulk_result_count_mismatch_fails_the_request() {
        let body = r#"{"results": [{"success": true, "code": 200}]}"#;
        let err = add(2, 200, body).unwrap_err();
        match err {
            OpError::Failed(e) => assert!(e.message.contains("1 results for 2"), "{}", e.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bulk_row_with_an_account_code_aborts() {
        let body = r#"{"results": [{"success": true, "code": 200}, {"success": false, "code": 10, "message": "x"}]}"#;
        assert!(matches!(add(2, 200, body), Err(OpError::Auth(_))));
    }

    #[test]
    fn malformed_bulk_rows_are_rejected_without_panicking() {
        let body = r#"{"results": [7, {}, {"success": false}, {"code": "15"}, {"code": 200}]}"#;
        let r = add(5, 200, body).unwrap();
        assert!(rejected(ErrorCode::Http(200))(&r[0]));
        assert!(rejected(ErrorCode::Http(200))(&r[1]));
        assert!(rejected(ErrorCode::Http(200))(&r[2]));
        assert_eq!(r[3], AddResult::AlreadyExists);
        assert_eq!(r[4], AddResult::Added { contact_id: None });
    }

    #[test]
    fn key_rejection_is_auth_by_code_or_status() {
        let doc = r#"{"success": false, "code": 10, "message": "Incorrect API key"}"#;
        for (status, body) in [
            (200, doc),
            (400, doc),
            (401, "Unauthorized"),
            (403, "<html>forbidden</html>"),
            (403, r#"{"success": false, "code": 1}"#),
        ] {
            for result in [
                add(1, status, body).map(|_| ()),
                add(3, status, body).map(|_| ()),
                sp().parse_update("C", status, body.as_bytes()).map(|_| ()),
                sp().parse_list(0, status, body.as_bytes()).map(|_| ()),
                sp().parse_detail(status, body.as_bytes()).map(|_| ()),
            ] {
                match result {
                    Err(OpError::Auth(e)) => {
                        assert_eq!(e.code, ErrorCode::Auth, "{status} {body}");
                        assert!(!e.message.contains(SECRET));
                    }
                    other => panic!("{status} {body}: {other:?}"),
                }
            }
        }
        let e = add(1, 200, doc).unwrap_err();
        assert!(e.row_error().message.contains("code 10"), "{e}");
        assert!(e.is_abort());
    }

    #[test]
    fn account_codes_abort_with_their_own_code() {
        for code in [20, 30, 40, 96] {
            let body = format!(r#"{{"success": false, "code": {code}, "message": "nope"}}"#);
            match add(2, 200, &body) {
                Err(OpError::Auth(e)) => assert_eq!(e.code, ErrorCode::Api(code)),
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_documented_codes_fail_the_request_with_api_codes() {
        for code in [1, 2, 90, 404, 15] {
            let body = format!(r#"{{"success": false, "code": {code}, "message": "m"}}"#);
            // 15 is only a per-row answer for a single add; in bulk it fails the request.
            match add(2, 400, &body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Api(code));
                    assert!(e.message.starts_with(&format!("SMS Partner error {code}")));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let body = r#"{"success": false, "code": 1}"#;
        assert!(
            matches!(add(1, 200, body), Err(OpError::Failed(e)) if e.code == ErrorCode::Api(1))
        );
    }

    #[test]
    fn code_in_body_wins_over_a_success_status() {
        // Undocumented statuses: a coded error may come with 200.
        let body =
            r#"{"success": false, "code": 2, "message": "Les infos du contact sont requises"}"#;
        match add(1, 200, body) {
            Err(OpError::Failed(e)) => {
                assert_eq!(e.code, ErrorCode::Api(2));
                assert!(
                    e.message.contains("contact info is required"),
                    "{}",
                    e.message
                );
                assert!(e.message.contains("sont requises"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        // A code without a success flag still counts; a string code too.
        let body = r#"{"code": "90"}"#;
        assert!(
            matches!(add(2, 200, body), Err(OpError::Failed(e)) if e.code == ErrorCode::Api(90))
        );
    }

    #[test]
    fn non_json_error_bodies_fail_with_the_http_status() {
        for status in [400, 404, 429, 500, 502] {
            match add(1, status, "<html>Bad Gateway</html>") {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(status));
                    assert!(e.message.starts_with(&format!("HTTP {status}")));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        // JSON without success or code on an error status: the status decides.
        let r = add(1, 503, r#"{"error": "maintenance"}"#);
        assert!(matches!(r, Err(OpError::Failed(e)) if e.code == ErrorCode::Http(503)));
    }

    #[test]
    fn malformed_success_bodies_fail_clearly() {
        for (count, body) in [
            (1, ""),
            (1, "not json"),
            (1, "[1,2]"),
            (1, "{}"),
            (2, r#"{"success": true, "code": 200}"#),
            (2, r#"{"results": "nope"}"#),
            (1, "\u{0}\u{ff}"),
        ] {
            match add(count, 200, body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(200));
                    assert!(e.message.contains("malformed"), "{body}: {}", e.message);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let bad = [0xffu8, 0xfe, b'{'];
        assert!(sp().parse_add(1, 200, &bad).is_err());
        assert!(sp().parse_update("C", 200, &bad).is_err());
        assert!(sp().parse_list(0, 200, &bad).is_err());
        assert!(sp().parse_detail(200, &bad).is_err());
    }

    #[test]
    fn single_add_success_without_id_still_counts_as_added() {
        let body = r#"{"success": true, "code": 200}"#;
        assert_eq!(
            add(1, 200, body).unwrap(),
            vec![AddResult::Added { contact_id: None }]
        );
    }

    // ---- update responses ----

    #[test]
    fn update_success_returns_the_id() {
        // The documented response (seed 000).
        let body = r#"{"success": true, "code": 200, "contact": {"phoneNumber": "+xxxxxxxx",
            "firstname": "firstname", "lastname": "lastname", "url": "", "date": "12-06-2020",
            "custom2": "custom2", "contactId": "CONTACT ID"}}"#;
        assert_eq!(
            sp().parse_update("sent", 200, body.as_bytes()).unwrap(),
            "CONTACT ID"
        );
        let body = r#"{"success": true, "code": 200}"#;
        assert_eq!(
            sp().parse_update("sent", 200, body.as_bytes()).unwrap(),
            "sent"
        );
    }

    #[test]
    fn update_of_a_missing_contact_is_not_found() {
        let body = r#"{"success": false, "code": 404, "message": "Contact introuvable"}"#;
        match sp().parse_update("C", 200, body.as_bytes()) {
            Err(OpError::NotFound(e)) => assert_eq!(e.code, ErrorCode::Api(404)),
            other => panic!("{other:?}"),
        }
        let body = r#"{"success": false, "code": 15}"#;
        assert!(matches!(
            sp().parse_update("C", 200, body.as_bytes()),
            Err(OpError::Failed(e)) if e.code == ErrorCode::Api(15)
        ));
        assert!(matches!(
            sp().parse_update("C", 200, br#"{"success": "yes"}"#),
            Err(OpError::Failed(e)) if e.message.contains("malformed")
        ));
    }

    // ---- listing ----

    fn page_body(current: u64, total: &str, n: usize) -> String {
        let datas: Vec<Value> = (0..n)
            .map(|i| json!({"contactId": format!("id{i}"), "phone": format!("+3360000{i:04}"), "firstname": "x"}))
            .collect();
        json!({"success": true, "code": 200, "currentPage": current, "total": total, "datas": datas})
            .to_string()
    }

    #[test]
    fn listing_pages_until_short_or_total() {
        let full_page = page_body(1, "45", 20);
        let p = sp().parse_list(0, 200, full_page.as_bytes()).unwrap();
        assert_eq!(p.entries.len(), 20);
        assert_eq!(
            p.entries[3],
            Listed {
                phone: "+33600000003".into(),
                contact_id: "id3".into(),
                alias: None
            }
        );
        assert_eq!(p.next, Some(1));
        let p = sp()
            .parse_list(1, 200, page_body(2, "45", 20).as_bytes())
            .unwrap();
        assert_eq!(p.next, Some(2));
        let p = sp()
            .parse_list(2, 200, page_body(3, "45", 5).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
        // Exactly at the total: a full page, but nothing after it.
        let p = sp()
            .parse_list(1, 200, page_body(2, "40", 20).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
        // Empty group.
        let p = sp()
            .parse_list(0, 200, page_body(1, "0", 0).as_bytes())
            .unwrap();
        assert_eq!(
            p,
            ListPage {
                entries: vec![],
                next: None
            }
        );
    }

    #[test]
    fn listing_stops_when_the_server_clamps_the_page() {
        let p = sp()
            .parse_list(7, 200, page_body(3, "60", 20).as_bytes())
            .unwrap();
        assert_eq!(p.next, None);
    }

    #[test]
    fn listing_without_total_follows_page_length() {
        let body = json!({"success": true, "datas": (0..20).map(|i| json!({"contactId": i, "phone": "33600000000"})).collect::<Vec<_>>()});
        let p = sp()
            .parse_list(0, 200, body.to_string().as_bytes())
            .unwrap();
        assert_eq!(p.next, Some(1));
        assert_eq!(p.entries[5].contact_id, "5");
        assert_eq!(p.entries[5].phone, "+33600000000");
    }

    #[test]
    fn listing_skips_entries_without_phone_or_id_but_pages_on() {
        let mut datas: Vec<Value> = (0..17)
            .map(|i| json!({"contactId": i, "phone": "+33600000000"}))
            .collect();
        datas.push(json!({"contactId": "x"}));
        datas.push(json!({"phone": "+33600000001"}));
        datas.push(json!({"contactId": 99, "phoneNumber": "+33600000002"}));
        let body = json!({"success": true, "total": "100", "datas": datas});
        let p = sp()
            .parse_list(0, 200, body.to_string().as_bytes())
            .unwrap();
        assert_eq!(p.entries.len(), 18);
        assert_eq!(p.entries[17].phone, "+33600000002");
        assert_eq!(p.next, Some(1));
    }

    #[test]
    fn listing_errors() {
        let body = r#"{"success": false, "code": 404, "message": "Groupe introuvable"}"#;
        assert!(matches!(
            sp().parse_list(0, 200, body.as_bytes()),
            Err(OpError::Failed(e)) if e.code == ErrorCode::Api(404)
        ));
        assert!(matches!(
            sp().parse_list(0, 200, br#"{"success": true, "datas": {}}"#),
            Err(OpError::Failed(e)) if e.message.contains("malformed")
        ));
        assert!(matches!(
            sp().parse_list(0, 500, b"oops"),
            Err(OpError::Failed(e)) if e.code == ErrorCode::Http(500)
        ));
    }

    // ---- detail ----

    fn detail(status: u16, body: &str) -> Result<Option<String>, OpError> {
        sp().parse_detail(status, body.as_bytes())
    }

    #[test]
    fn detail_gives_the_contacts_phone_in_e164() {
        // The documented shape (API-NOTES): `phone`, not `phoneNumber`.
        let body = r#"{"success": true, "code": 200, "contact": {"contactId": "C42",
            "phone": "+33612345678", "firstname": "Zoé", "lastname": "Martin",
            "groupId": "G1"}}"#;
        assert_eq!(detail(200, body).unwrap().as_deref(), Some("+33612345678"));
        // Normalised as a listed number: separators, `00`, bare digits.
        for (phone, want) in [
            ("+33 6 12 34 56 78", "+33612345678"),
            ("0033612345678", "+33612345678"),
            ("33612345678", "+33612345678"),
        ] {
            let body = json!({"success": true, "code": 200, "contact": {"phone": phone}});
            assert_eq!(
                detail(200, &body.to_string()).unwrap().as_deref(),
                Some(want),
                "{phone}"
            );
        }
        // What add and update echo is accepted too; `phone` wins.
        let body = r#"{"success": true, "contact": {"phoneNumber": "+33611111111"}}"#;
        assert_eq!(detail(200, body).unwrap().as_deref(), Some("+33611111111"));
        let body =
            r#"{"code": 200, "contact": {"phone": "+33622222222", "phoneNumber": "+33611111111"}}"#;
        assert_eq!(detail(200, body).unwrap().as_deref(), Some("+33622222222"));
    }

    #[test]
    fn detail_of_a_missing_contact_is_none() {
        let coded = r#"{"success": false, "code": 404, "message": "Contact introuvable"}"#;
        // Code 404 in the body, whatever the status.
        for status in [200, 400, 404] {
            assert_eq!(detail(status, coded), Ok(None), "{status}");
        }
        // HTTP 404 with nothing readable, or a refusal without a code.
        for body in [
            "Not Found",
            "",
            r#"{"success": false}"#,
            r#"{"error": "x"}"#,
        ] {
            assert_eq!(detail(404, body), Ok(None), "{body}");
        }
    }

    #[test]
    fn detail_with_a_rejected_key_is_auth() {
        let body = r#"{"success": false, "code": 10, "message": "Clef API incorrecte"}"#;
        // The body's code wins over a 404 status.
        for status in [200, 400, 404] {
            match detail(status, body) {
                Err(OpError::Auth(e)) => {
                    assert_eq!(e.code, ErrorCode::Auth, "{status}");
                    assert!(!e.message.contains(SECRET));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [401, 403] {
            assert!(
                matches!(detail(status, "nope"), Err(OpError::Auth(_))),
                "{status}"
            );
        }
        assert!(matches!(
            detail(200, r#"{"success": false, "code": 30}"#),
            Err(OpError::Auth(e)) if e.code == ErrorCode::Api(30)
        ));
    }

    #[test]
    fn detail_failures_are_failed_not_missing() {
        let failed = |status: u16, body: &str| match detail(status, body) {
            Err(OpError::Failed(e)) => e,
            other => panic!("{status} {body}: {other:?}"),
        };
        assert_eq!(
            failed(
                200,
                r#"{"success": false, "code": 1, "message": "contactId requis"}"#
            )
            .code,
            ErrorCode::Api(1)
        );
        assert_eq!(
            failed(404, r#"{"success": false, "code": 1}"#).code,
            ErrorCode::Api(1),
            "a body's own code wins over the status"
        );
        for body in [
            "garbage",
            "",
            "[]",
            "{}",
            r#"{"success": "yes"}"#,
            r#"{"success": true}"#,
            r#"{"success": true, "contact": null}"#,
            r#"{"success": true, "contact": {"contactId": "C"}}"#,
            r#"{"success": true, "contact": {"phone": 33612345678}}"#,
            r#"{"success": true, "contact": {"phone": "  "}}"#,
        ] {
            let e = failed(200, body);
            assert_eq!(e.code, ErrorCode::Http(200), "{body}");
            assert!(e.message.contains("malformed"), "{body}: {}", e.message);
        }
        for status in [429, 500, 502] {
            assert_eq!(
                failed(status, "<html>oops</html>").code,
                ErrorCode::Http(status)
            );
        }
    }

    // ---- fingerprint ----

    #[test]
    fn fingerprint_follows_exactly_the_sent_fields() {
        let p = sp();
        let base = full();
        assert_eq!(p.payload_fingerprint(&base), p.payload_fingerprint(&full()));
        // Fields that are not sent do not count.
        let unsent = Contact {
            contact_id: "other".into(),
            group_id: "other".into(),
            alias: "other".into(),
            ..full()
        };
        assert_eq!(p.payload_fingerprint(&base), p.payload_fingerprint(&unsent));
        let variants: Vec<Contact> = vec![
            Contact {
                phone: "+33612345679".into(),
                ..full()
            },
            Contact {
                firstname: "Zoe".into(),
                ..full()
            },
            Contact {
                lastname: String::new(),
                ..full()
            },
            Contact {
                date: "1990-05-18".into(),
                ..full()
            },
            Contact {
                url: "https://example.com/y".into(),
                ..full()
            },
            Contact {
                custom: ["c1".into(), "c2".into(), "c3".into(), "x".into()],
                ..full()
            },
            // Same values, moved between fields.
            Contact {
                custom: ["c2".into(), "c1".into(), "c3".into(), "c4".into()],
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
        let moved_a = Contact {
            firstname: "A".into(),
            ..contact("+1")
        };
        let moved_b = Contact {
            lastname: "A".into(),
            ..contact("+1")
        };
        assert_ne!(
            p.payload_fingerprint(&moved_a),
            p.payload_fingerprint(&moved_b)
        );
    }
}
