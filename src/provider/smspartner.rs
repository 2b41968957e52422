//! SMS Partner's contact API (`/v1/contact/...`, API-NOTES.md): the key rides
//! in the JSON body of POSTs and the query string of GETs; every answer is read
//! from the body's `success`/`code` first, its (undocumented) HTTP status second.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value, json};

use super::{
    AddResult, ApiRequest, BaseUrlError, Fingerprint, ListPage, Listed, OpError, Provider,
    Redactor, Verdict, check_base, endpoint, is_success, json_id, json_int, json_object,
    listed_e164, misdirected, not_a_success, response_invalid, status_text,
};
use crate::codes::{ErrorCode, RowError};
use crate::columns::Field;
use crate::dispatch::{looks_like_markup, transient_status};
use crate::normalize::Contact;
use crate::secret::ApiKey;

/// The production API.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.smspartner.fr";

/// Contacts in one bulk add, at most (documented).
pub(crate) const MAX_BATCH: usize = 500;

/// Contacts on one listing page (documented).
pub(crate) const PAGE_SIZE: u64 = 20;

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
    redactor: Redactor,
}

impl SmsPartner {
    /// A provider talking to `base` (e.g. [`DEFAULT_BASE_URL`], or a sandbox with a path prefix).
    pub fn new(base: Url) -> Result<SmsPartner, BaseUrlError> {
        Ok(SmsPartner {
            base: check_base(base)?,
            redactor: Redactor::default(),
        })
    }

    /// The same provider, striking `key` out of every server message it reads.
    pub fn redacting(mut self, key: &ApiKey) -> SmsPartner {
        self.redactor = Redactor::new(key);
        self
    }

    /// The server's `message`, redacted and made one bounded line.
    fn message(&self, obj: &Map<String, Value>) -> String {
        obj.get("message")
            .and_then(Value::as_str)
            .map(|m| self.redactor.message(m))
            .unwrap_or_default()
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
        ApiRequest::get(url)
    }

    fn post(&self, path: &[&str], body: Value) -> ApiRequest {
        ApiRequest::post_json(endpoint(&self.base, path), body)
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

/// The fields a listed contact shows that a row sets.
const HELD_FIELDS: [&str; 8] = [
    "firstname",
    "lastname",
    "date",
    "url",
    "custom1",
    "custom2",
    "custom3",
    "custom4",
];

/// A fingerprint of what a contact holds in [`HELD_FIELDS`] (an absent field
/// empty), the same from a listing and from a row.
fn held_fingerprint(values: [&str; 8]) -> u64 {
    let mut f = Fingerprint::new("smspartner/held/1");
    for (name, value) in HELD_FIELDS.iter().zip(values) {
        f.field(name, value.trim());
    }
    f.finish()
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

/// Whether a JSON object is an SMS Partner answer: it carries `success`,
/// `code` or (bulk add) `results`.
fn own_shape(obj: &Map<String, Value>) -> bool {
    ["success", "code", "results"]
        .iter()
        .any(|k| obj.contains_key(*k))
}

/// Whether the body says the call succeeded: `success: true`, or no flag and code 200.
fn succeeded(obj: &Map<String, Value>) -> bool {
    match obj.get("success").and_then(Value::as_bool) {
        Some(ok) => ok,
        None => json_int(obj.get("code")) == Some(200),
    }
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

/// The verdict on a coded refusal: a stop for the key and account codes, a
/// row matter for the others.
fn coded_verdict(code: i64, server: &str) -> Verdict {
    match code {
        CODE_BAD_KEY => Verdict::Fatal(RowError::new(
            ErrorCode::Auth,
            with_server(
                "SMS Partner rejected the API key (code 10: key required or incorrect)".into(),
                server,
            ),
        )),
        c if ACCOUNT_CODES.contains(&c) => Verdict::Fatal(coded(c, server)),
        c => Verdict::Refused(coded(c, server)),
    }
}

impl SmsPartner {
    /// A success verdict, or why not: code 404 in the body is
    /// [`OpError::NotFound`] (the contact id names nothing).
    fn found(&self, status: u16, body: &[u8]) -> Result<(), OpError> {
        match self.classify(status, None, body) {
            Verdict::Success => Ok(()),
            Verdict::Refused(e) if e.code == ErrorCode::Api(CODE_NOT_FOUND) => {
                Err(OpError::NotFound(e))
            }
            other => Err(not_a_success(status, other)),
        }
    }

    /// One entry of a bulk add's `results`.
    fn row_result(&self, v: &Value) -> Result<AddResult, OpError> {
        let Some(obj) = v.as_object() else {
            return Ok(AddResult::Rejected(response_invalid(
                "malformed SMS Partner bulk result: not a JSON object",
            )));
        };
        let success = obj.get("success").and_then(Value::as_bool);
        let code = json_int(obj.get("code"));
        if code == Some(CODE_ALREADY_IN_GROUP) {
            return Ok(AddResult::AlreadyExists);
        }
        if succeeded(obj) {
            return Ok(AddResult::Added {
                contact_id: json_id(obj.get("contactId")),
            });
        }
        match (success, code) {
            (_, Some(c)) => match coded_verdict(c, &self.message(obj)) {
                Verdict::Fatal(e) => Err(OpError::Auth(e)),
                Verdict::Refused(e) => Ok(AddResult::Rejected(e)),
                _ => Ok(AddResult::Rejected(coded(c, ""))),
            },
            _ => Ok(AddResult::Rejected(response_invalid(
                "malformed SMS Partner bulk result: neither success nor an error code",
            ))),
        }
    }

    /// A bulk add's `results` matched to `contacts` by E.164 number. The
    /// documented order is not relied on: a server that answers in another
    /// order must not swap outcomes between rows. With a count that differs
    /// from the batch the answer does not describe it, and every row fails.
    fn match_results(
        &self,
        contacts: &[&Contact],
        results: &[Value],
    ) -> Result<Vec<AddResult>, OpError> {
        if results.len() != contacts.len() {
            return Err(OpError::Failed(response_invalid(format!(
                "SMS Partner answered {} bulk results for {} contacts",
                results.len(),
                contacts.len()
            ))));
        }
        // A key or account code anywhere stops the run, matched or not.
        for r in results.iter().filter_map(Value::as_object) {
            if let Some(c) = json_int(r.get("code"))
                && let Verdict::Fatal(e) = coded_verdict(c, &self.message(r))
            {
                return Err(OpError::Auth(e));
            }
        }
        let mut named: HashMap<String, Vec<&Value>> = HashMap::new();
        let mut unnamed = 0usize;
        for r in results {
            match r.get("phoneNumber").and_then(Value::as_str) {
                Some(phone) if !phone.trim().is_empty() => {
                    named.entry(listed_e164(phone)).or_default().push(r)
                }
                _ => unnamed += 1,
            }
        }
        let mut wanted: HashMap<&str, usize> = HashMap::new();
        for c in contacts {
            *wanted.entry(c.phone.as_str()).or_default() += 1;
        }
        let strays = unnamed
            + named
                .iter()
                .filter(|(phone, _)| !wanted.contains_key(phone.as_str()))
                .map(|(_, rs)| rs.len())
                .sum::<usize>();
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(contacts.len());
        for c in contacts {
            let phone = c.phone.as_str();
            let mine = named.get(phone).map_or(&[][..], Vec::as_slice);
            let result = if mine.len() == wanted.get(phone).copied().unwrap_or(0) {
                // One result for one row (or, for a number sent twice, as many
                // results as rows, taken in turn: they cannot be told apart).
                let turn = taken.entry(phone).or_default();
                let r = mine.get(*turn);
                *turn += 1;
                match r {
                    Some(r) => self.row_result(r)?,
                    None => AddResult::Rejected(response_invalid(
                        "SMS Partner's bulk answer has no result for this number",
                    )),
                }
            } else if mine.is_empty() {
                let why = if strays > 0 {
                    format!(
                        "SMS Partner's bulk answer has no result for this number ({strays} of its results name numbers not in the batch)"
                    )
                } else {
                    "SMS Partner's bulk answer has no result for this number".to_string()
                };
                AddResult::Rejected(response_invalid(why))
            } else {
                AddResult::Rejected(response_invalid(format!(
                    "SMS Partner's bulk answer has {} results for this number",
                    mine.len()
                )))
            };
            out.push(result);
        }
        Ok(out)
    }
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

    /// HTTP 401/403 stop the run whatever the body. Then the body: a coded
    /// refusal is decided by its code whatever the status (a code inside a
    /// 5xx is not retried; codes 10, 20, 30, 40, 96 stop the run), an explicit
    /// success is a success. Then the status: 429 and 5xx (but 501) are
    /// transient, an HTML page, a redirect or a 404/405/501 without
    /// SMS Partner's JSON is misdirected, a 2xx that is not its JSON cannot
    /// be read (`RESPONSE_INVALID`).
    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
        let obj = json_object(body).filter(own_shape);
        let code = obj.as_ref().and_then(|o| json_int(o.get("code")));
        let message = obj.as_ref().map(|o| self.message(o)).unwrap_or_default();
        if status == 401 || status == 403 {
            let mut text = format!("SMS Partner refused the credentials (HTTP {status})");
            if let Some(code) = code {
                text.push_str(&format!(", code {code}"));
            }
            return Verdict::Fatal(RowError::new(ErrorCode::Auth, with_server(text, &message)));
        }
        if let Some(o) = &obj {
            let refused = !succeeded(o)
                && (o.get("success").and_then(Value::as_bool) == Some(false) || code.is_some());
            match code {
                Some(c) if refused => {
                    let verdict = coded_verdict(c, &message);
                    // A 429 is about the pace, whatever the body adds to it.
                    return match verdict {
                        Verdict::Refused(_) if status == 429 => {
                            Verdict::Retry { after: retry_after }
                        }
                        v => v,
                    };
                }
                _ if succeeded(o) => return Verdict::Success,
                _ => {}
            }
        }
        if transient_status(status) {
            return Verdict::Retry { after: retry_after };
        }
        let refused_in_shape = obj
            .as_ref()
            .is_some_and(|o| o.get("success").and_then(Value::as_bool) == Some(false));
        if obj.is_none()
            && (looks_like_markup(body)
                || matches!(status, 404 | 405 | 501)
                || (300..400).contains(&status))
        {
            return Verdict::Misdirected(misdirected("SMS Partner", status, body));
        }
        if is_success(status) {
            return match &obj {
                Some(_) if !refused_in_shape => Verdict::Success,
                Some(_) => Verdict::Refused(RowError::new(
                    ErrorCode::Http(status),
                    with_server(
                        "SMS Partner refused the request without an error code".into(),
                        &message,
                    ),
                )),
                None => Verdict::Refused(response_invalid(
                    "the answer is not SMS Partner's JSON (no success, code or results)",
                )),
            };
        }
        let text = if refused_in_shape {
            "SMS Partner refused the request without an error code".to_string()
        } else {
            status_text(status)
        };
        Verdict::Refused(RowError::new(
            ErrorCode::Http(status),
            with_server(text, &message),
        ))
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
    /// Bulk results are matched to contacts by number.
    fn parse_add(
        &self,
        contacts: &[&Contact],
        status: u16,
        body: &[u8],
    ) -> Result<Vec<AddResult>, OpError> {
        match self.classify(status, None, body) {
            Verdict::Success => {}
            Verdict::Refused(e) if e.code == ErrorCode::Api(CODE_ALREADY_IN_GROUP) => {
                return if contacts.len() == 1 {
                    Ok(vec![AddResult::AlreadyExists])
                } else {
                    Err(OpError::Failed(e))
                };
            }
            other => return Err(not_a_success(status, other)),
        }
        let Some(obj) = json_object(body) else {
            return Err(OpError::Failed(response_invalid(
                "malformed SMS Partner add response: not a JSON object",
            )));
        };
        if let Some(results) = obj.get("results") {
            let Some(results) = results.as_array() else {
                return Err(OpError::Failed(response_invalid(
                    "malformed SMS Partner bulk response: `results` is not a list",
                )));
            };
            return self.match_results(contacts, results);
        }
        if contacts.len() == 1 && succeeded(&obj) {
            let contact_id = obj.get("contact").and_then(|c| json_id(c.get("contactId")));
            return Ok(vec![AddResult::Added { contact_id }]);
        }
        Err(OpError::Failed(response_invalid(
            "malformed SMS Partner add response: neither per-row results nor a contact",
        )))
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

    /// Code 404 is [`OpError::NotFound`]: the id is stale. A bare HTTP 404
    /// is not: it says nothing of the contact (misdirected).
    fn parse_update(&self, contact_id: &str, status: u16, body: &[u8]) -> Result<String, OpError> {
        self.found(status, body)?;
        match json_object(body) {
            Some(obj) if succeeded(&obj) => Ok(obj
                .get("contact")
                .and_then(|c| json_id(c.get("contactId")))
                .unwrap_or_else(|| contact_id.to_string())),
            _ => Err(OpError::Failed(response_invalid(
                "malformed SMS Partner update response: no success flag",
            ))),
        }
    }

    /// `POST /v1/contact/delete` with `{apiKey, contactId}`.
    fn delete(&self, key: &ApiKey, contact_id: &str) -> Result<ApiRequest, OpError> {
        if contact_id.trim().is_empty() {
            return Err(OpError::NotFound(RowError::new(
                ErrorCode::Api(CODE_NOT_FOUND),
                "cannot delete a contact with an empty contact id",
            )));
        }
        let body = json!({"apiKey": key.expose(), "contactId": contact_id});
        Ok(self.post(&["v1", "contact", "delete"], body))
    }

    /// Code 404 in the body is [`OpError::NotFound`] (already gone); a bare
    /// HTTP 404 is not: it says nothing of the contact (misdirected).
    fn parse_delete(&self, status: u16, body: &[u8]) -> Result<(), OpError> {
        self.found(status, body)?;
        match json_object(body) {
            Some(obj) if succeeded(&obj) => Ok(()),
            _ => Err(OpError::Failed(response_invalid(
                "malformed SMS Partner delete response: no success flag",
            ))),
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
        let verdict = self.classify(status, None, body);
        let obj = match (verdict, json_object(body)) {
            (Verdict::Success, Some(obj)) => obj,
            (Verdict::Success, None) => {
                return Err(OpError::Failed(response_invalid(
                    "malformed SMS Partner listing: not a JSON object",
                )));
            }
            (other, _) => return Err(not_a_success(status, other)),
        };
        let datas = match obj.get("datas") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(OpError::Failed(response_invalid(
                    "malformed SMS Partner listing: `datas` is not a list",
                )));
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
                let held = held_fingerprint(
                    HELD_FIELDS.map(|name| d.get(name).and_then(Value::as_str).unwrap_or("")),
                );
                Some(Listed {
                    phone: listed_e164(phone),
                    contact_id,
                    alias: None,
                    held: Some(held),
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
        Ok(ListPage {
            entries,
            next,
            total,
        })
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
    /// status, or an SMS Partner refusal without a code under HTTP 404 (a
    /// body's own code wins: a 404 saying code 10 is a rejected key). A bare
    /// HTTP 404 is misdirected, not "does not exist".
    fn parse_detail(&self, status: u16, body: &[u8]) -> Result<Option<String>, OpError> {
        match self.classify(status, None, body) {
            Verdict::Success => {}
            Verdict::Refused(e)
                if e.code == ErrorCode::Api(CODE_NOT_FOUND) || e.code == ErrorCode::Http(404) =>
            {
                return Ok(None);
            }
            other => return Err(not_a_success(status, other)),
        }
        let obj = json_object(body).filter(succeeded).ok_or_else(|| {
            OpError::Failed(response_invalid(
                "malformed SMS Partner detail response: no success flag",
            ))
        })?;
        obj.get("contact")
            .and_then(|c| c.get("phone").or_else(|| c.get("phoneNumber")))
            .and_then(Value::as_str)
            .map(listed_e164)
            .filter(|phone| !phone.is_empty())
            .map(Some)
            .ok_or_else(|| {
                OpError::Failed(response_invalid(
                    "malformed SMS Partner detail response: no contact phone",
                ))
            })
    }

    /// Compares every field a row sets (an empty one: the contact has none).
    fn listed_holds(&self, listed: &Listed, contact: &Contact) -> bool {
        let c = contact;
        let values = [
            c.firstname.as_str(),
            &c.lastname,
            &c.date,
            &c.url,
            &c.custom[0],
            &c.custom[1],
            &c.custom[2],
            &c.custom[3],
        ];
        listed.held == Some(held_fingerprint(values))
    }

    /// Pages of 20: cursor = page - 1.
    fn last_cursor(&self, total: u64) -> Option<u64> {
        total.checked_sub(1).map(|t| t / PAGE_SIZE)
    }

    fn previous_cursor(&self, cursor: u64) -> Option<u64> {
        cursor.checked_sub(1)
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
    use reqwest::Method;

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

    /// `count` contacts numbered +33600000001, +33600000002, …
    fn batch(count: usize) -> Vec<Contact> {
        (1..=count)
            .map(|i| contact(&format!("+336000000{i:02}")))
            .collect()
    }

    fn add(count: usize, status: u16, body: &str) -> Result<Vec<AddResult>, OpError> {
        let contacts = batch(count);
        let refs: Vec<&Contact> = contacts.iter().collect();
        sp().parse_add(&refs, status, body.as_bytes())
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

    fn bulk(results: &[Value]) -> String {
        json!({
            "groupe": {"name": "Clients", "token": "t"},
            "results": results,
            "rapport": {"nbline": results.len(), "nbline_imported": 0, "nbline_updated": 0, "errors": {}}
        })
        .to_string()
    }

    fn ok(phone: &str) -> Value {
        json!({"success": true, "code": 200, "phoneNumber": phone, "message": "ok"})
    }

    fn refused(phone: &str, code: i64, message: &str) -> Value {
        json!({"success": false, "code": code, "phoneNumber": phone, "message": message})
    }

    fn invalid(r: &AddResult) -> bool {
        rejected(ErrorCode::ResponseInvalid)(r)
    }

    #[test]
    fn bulk_results_are_matched_by_number_in_any_order() {
        let results = [
            ok("+33600000001"),
            refused("+33600000002", 15, "Le numéro est déjà dans le groupe"),
            refused("+33600000003", 3, "Numéro invalide"),
            ok("+33600000004"),
        ];
        let expected = |r: &[AddResult]| {
            assert_eq!(r[0], AddResult::Added { contact_id: None });
            assert_eq!(r[1], AddResult::AlreadyExists);
            match &r[2] {
                AddResult::Rejected(e) => {
                    assert_eq!(e.code, ErrorCode::Api(3));
                    assert_eq!(e.code.to_string(), "API_3");
                    assert!(e.message.contains("Numéro invalide"), "{}", e.message);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(r[3], AddResult::Added { contact_id: None });
        };
        expected(&add(4, 200, &bulk(&results)).unwrap());
        // Reversed, or any order: each row still gets its own result.
        let mut reversed = results.to_vec();
        reversed.reverse();
        expected(&add(4, 200, &bulk(&reversed)).unwrap());
        let rotated = [
            results[2].clone(),
            results[0].clone(),
            results[3].clone(),
            results[1].clone(),
        ];
        expected(&add(4, 200, &bulk(&rotated)).unwrap());
        // The number as the server writes it (E.164 without +, 00, spaces).
        let written = [
            ok("33600000001"),
            refused("0033 6 00 00 00 02", 15, ""),
            refused("+33 6 00 00 00 03", 3, "Numéro invalide"),
            ok("+33600000004"),
        ];
        expected(&add(4, 200, &bulk(&written)).unwrap());
    }

    #[test]
    fn bulk_results_that_do_not_account_for_a_row_make_it_response_invalid() {
        // A result for a number not in the batch: the row it displaced has none.
        let r = add(
            3,
            200,
            &bulk(&[ok("+33600000001"), ok("+33699999999"), ok("+33600000003")]),
        )
        .unwrap();
        assert_eq!(r[0], AddResult::Added { contact_id: None });
        assert!(invalid(&r[1]), "{:?}", r[1]);
        match &r[1] {
            AddResult::Rejected(e) => {
                assert!(
                    e.message.contains("no result for this number"),
                    "{}",
                    e.message
                );
                assert!(e.message.contains("not in the batch"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r[2], AddResult::Added { contact_id: None });
        // Two results for one number, none for another.
        let r = add(2, 200, &bulk(&[ok("+33600000001"), ok("+33600000001")])).unwrap();
        assert!(r.iter().all(invalid), "{r:?}");
        // Results without a number cannot be matched.
        let r = add(
            2,
            200,
            &bulk(&[json!({"success": true, "code": 200}), ok("+33600000002")]),
        )
        .unwrap();
        assert!(invalid(&r[0]), "{:?}", r[0]);
        assert_eq!(r[1], AddResult::Added { contact_id: None });
    }

    #[test]
    fn bulk_result_count_mismatch_fails_every_row() {
        for results in [
            vec![ok("+33600000001")],
            vec![ok("+33600000001"), ok("+33600000002"), ok("+33600000003")],
            vec![],
        ] {
            match add(2, 200, &bulk(&results)).unwrap_err() {
                OpError::Failed(e) => {
                    assert_eq!(e.code, ErrorCode::ResponseInvalid);
                    assert!(
                        e.message
                            .contains(&format!("{} bulk results for 2", results.len())),
                        "{}",
                        e.message
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bulk_row_with_an_account_code_aborts_matched_or_not() {
        for second in [
            refused("+33600000002", 10, "x"),
            json!({"success": false, "code": 30}),
        ] {
            let body = bulk(&[ok("+33600000001"), second]);
            assert!(
                matches!(add(2, 200, &body), Err(OpError::Auth(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_bulk_rows_are_rejected_without_panicking() {
        let body = bulk(&[
            json!(7),
            json!({"phoneNumber": "+33600000002"}),
            json!({"success": false, "phoneNumber": "+33600000003"}),
            json!({"code": "15", "phoneNumber": "+33600000004"}),
            json!({"code": 200, "phoneNumber": "+33600000005"}),
            json!({"success": true, "phoneNumber": 33600000006u64}),
        ]);
        let r = add(6, 200, &body).unwrap();
        assert!(invalid(&r[0]), "no result names it: {:?}", r[0]);
        assert!(invalid(&r[1]), "neither success nor code: {:?}", r[1]);
        assert!(invalid(&r[2]), "{:?}", r[2]);
        assert_eq!(r[3], AddResult::AlreadyExists);
        assert_eq!(r[4], AddResult::Added { contact_id: None });
        assert!(invalid(&r[5]), "a number that is not a string: {:?}", r[5]);
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
        assert!(matches!(e, OpError::Auth(_)), "{e:?}");
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
    fn transient_answers_fail_with_the_http_status_once_retries_are_used_up() {
        for status in [429, 500, 502, 503] {
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
    fn answers_that_are_not_sms_partners_say_to_check_the_base_url() {
        for (status, body) in [
            (404, "Not Found"),
            (404, ""),
            (404, r#"{"error": "no route"}"#),
            (405, "Method Not Allowed"),
            (400, "<html><body>Bad request</body></html>"),
            (200, "<!DOCTYPE html><html>Welcome</html>"),
            (301, ""),
        ] {
            match add(1, status, body) {
                Err(OpError::Failed(e)) => {
                    let code = if status == 200 {
                        ErrorCode::ResponseInvalid
                    } else {
                        ErrorCode::Http(status)
                    };
                    assert_eq!(e.code, code, "{status} {body}");
                    assert!(e.message.contains("--base-url"), "{}", e.message);
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_success_bodies_are_response_invalid() {
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
                    assert_eq!(e.code, ErrorCode::ResponseInvalid, "{body}");
                    assert!(
                        e.message.contains("may have been applied"),
                        "{body}: {}",
                        e.message
                    );
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let bad = [0xffu8, 0xfe, b'{'];
        assert!(add(1, 200, "\u{ff}").is_err());
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

    // ---- classification ----

    /// A verdict reduced to its kind and code, for tables.
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
        use ErrorCode::{Api, Auth, Http, ResponseInvalid};
        let after = Some(Duration::from_secs(7));
        let table: &[(u16, &str, &str, Option<ErrorCode>)] = &[
            // The body decides first.
            (
                200,
                r#"{"success": true, "code": 200, "contact": {}}"#,
                "success",
                None,
            ),
            (200, r#"{"groupe": {}, "results": []}"#, "success", None),
            (200, r#"{"code": 200}"#, "success", None),
            (500, r#"{"success": true, "code": 200}"#, "success", None),
            (
                200,
                r#"{"success": false, "code": 15}"#,
                "refused",
                Some(Api(15)),
            ),
            // A coded error inside a 5xx is the provider's answer: not retried.
            (
                500,
                r#"{"success": false, "code": 15}"#,
                "refused",
                Some(Api(15)),
            ),
            (
                503,
                r#"{"success": false, "code": 2, "message": "x"}"#,
                "refused",
                Some(Api(2)),
            ),
            (
                502,
                r#"{"success": false, "code": 404}"#,
                "refused",
                Some(Api(404)),
            ),
            (
                404,
                r#"{"success": false, "code": 404}"#,
                "refused",
                Some(Api(404)),
            ),
            (200, r#"{"code": "90"}"#, "refused", Some(Api(90))),
            // Key and account codes stop the run, whatever the status.
            (
                200,
                r#"{"success": false, "code": 10}"#,
                "fatal",
                Some(Auth),
            ),
            (
                500,
                r#"{"success": false, "code": 10}"#,
                "fatal",
                Some(Auth),
            ),
            (
                200,
                r#"{"success": false, "code": 20}"#,
                "fatal",
                Some(Api(20)),
            ),
            (
                200,
                r#"{"success": false, "code": 30}"#,
                "fatal",
                Some(Api(30)),
            ),
            (
                503,
                r#"{"success": false, "code": 40}"#,
                "fatal",
                Some(Api(40)),
            ),
            (
                200,
                r#"{"success": false, "code": 96}"#,
                "fatal",
                Some(Api(96)),
            ),
            (
                429,
                r#"{"success": false, "code": 10}"#,
                "fatal",
                Some(Auth),
            ),
            // 401/403 stop the run whatever the body.
            (401, "", "fatal", Some(Auth)),
            (403, "<html>forbidden</html>", "fatal", Some(Auth)),
            (401, r#"{"success": false, "code": 1}"#, "fatal", Some(Auth)),
            // Transient.
            (429, "", "retry", None),
            (429, r#"{"success": false, "code": 2}"#, "retry", None),
            (500, "", "retry", None),
            (502, "<html>Bad Gateway</html>", "retry", None),
            (503, r#"{"error": "maintenance"}"#, "retry", None),
            (504, r#"{"success": false}"#, "retry", None),
            // Not SMS Partner's API.
            (404, "Not Found", "misdirected", Some(Http(404))),
            (404, "", "misdirected", Some(Http(404))),
            (404, r#"{"error": "x"}"#, "misdirected", Some(Http(404))),
            (405, "", "misdirected", Some(Http(405))),
            (501, "", "misdirected", Some(Http(501))),
            (302, "", "misdirected", Some(Http(302))),
            (400, "<html>x</html>", "misdirected", Some(Http(400))),
            (200, "<!DOCTYPE html>", "misdirected", Some(ResponseInvalid)),
            // Row matters.
            (404, r#"{"success": false}"#, "refused", Some(Http(404))),
            (200, r#"{"success": false}"#, "refused", Some(Http(200))),
            (418, r#"{"success": false}"#, "refused", Some(Http(418))),
            (400, "Bad Request", "refused", Some(Http(400))),
            (200, "", "refused", Some(ResponseInvalid)),
            (200, "{}", "refused", Some(ResponseInvalid)),
            (200, "[]", "refused", Some(ResponseInvalid)),
            (200, "garbage", "refused", Some(ResponseInvalid)),
        ];
        for (status, body, want, code) in table {
            let v = sp().classify(*status, after, body.as_bytes());
            assert_eq!(kind(&v), (*want, *code), "{status} {body}");
            if let Verdict::Retry { after: got } = v {
                assert_eq!(got, after, "the server's delay is kept: {status} {body}");
            }
        }
    }

    #[test]
    fn server_messages_echoing_the_key_are_redacted() {
        let p = sp().redacting(&key());
        let echo = format!("bad request from key {SECRET} (apiKey={SECRET})");
        let body = json!({"success": false, "code": 2, "message": echo}).to_string();
        for e in [
            p.parse_add(&[&contact("+33600000001")], 200, body.as_bytes())
                .unwrap_err()
                .row_error()
                .clone(),
            p.parse_update("C", 500, body.as_bytes())
                .unwrap_err()
                .row_error()
                .clone(),
        ] {
            assert!(!e.message.contains(SECRET), "{}", e.message);
            assert!(e.message.contains("[redacted]"), "{}", e.message);
        }
        let body = json!({"success": false, "code": 10, "message": echo}).to_string();
        let e = p.parse_list(0, 200, body.as_bytes()).unwrap_err();
        assert!(!e.row_error().message.contains(SECRET), "{e}");
        let bulk_body = bulk(&[refused("+33600000001", 3, &echo)]);
        let r = p
            .parse_add(&[&contact("+33600000001")], 200, bulk_body.as_bytes())
            .unwrap();
        assert!(matches!(&r[0], AddResult::Rejected(e) if !e.message.contains(SECRET)));
        // Without the key to redact, the message is kept as it came: the
        // provider alone cannot know what to strike out.
        let e = sp().parse_update("C", 200, body.as_bytes()).unwrap_err();
        assert!(e.row_error().message.contains(SECRET));
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

    #[test]
    fn delete_posts_key_and_id_and_reads_not_found_as_gone() {
        let req = sp().delete(&key(), "C42").unwrap();
        assert_eq!(req.method, Method::POST);
        assert!(req.url.as_str().ends_with("/v1/contact/delete"));
        assert_eq!(
            req.body,
            Some(json!({"apiKey": SECRET, "contactId": "C42"}))
        );
        assert!(matches!(
            sp().delete(&key(), " "),
            Err(OpError::NotFound(_))
        ));
        assert_eq!(
            sp().parse_delete(200, br#"{"success": true, "code": 200}"#),
            Ok(())
        );
        let gone = br#"{"success": false, "code": 404, "message": "Contact introuvable"}"#;
        assert!(matches!(
            sp().parse_delete(200, gone),
            Err(OpError::NotFound(e)) if e.code == ErrorCode::Api(404)
        ));
        assert!(matches!(
            sp().parse_delete(200, br#"{"success": false, "code": 10}"#),
            Err(OpError::Auth(_))
        ));
        // A bare 404 says nothing of the contact: not "already gone".
        assert!(matches!(
            sp().parse_delete(404, b"<html>not here</html>"),
            Err(OpError::Failed(_))
        ));
        assert!(matches!(
            sp().parse_delete(200, br#"{"success": "yes"}"#),
            Err(OpError::Failed(e)) if e.code == ErrorCode::ResponseInvalid
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
        let third = &p.entries[3];
        assert_eq!(
            (
                third.phone.as_str(),
                third.contact_id.as_str(),
                &third.alias
            ),
            ("+33600000003", "id3", &None)
        );
        assert_eq!(p.total, Some(45));
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
                next: None,
                total: Some(0),
            }
        );
    }

    #[test]
    fn a_listed_contact_holds_a_row_when_every_field_a_row_sets_matches() {
        let body = json!({"success": true, "code": 200, "currentPage": 1, "total": "41", "datas": [
            {"contactId": "7", "phone": "+33612345678", "firstname": "Ann", "lastname": "Lee", "custom2": "x"},
        ]})
        .to_string();
        let page = sp().parse_list(0, 200, body.as_bytes()).unwrap();
        let listed = &page.entries[0];
        let mut c = contact("+33612345678");
        c.firstname = "Ann".into();
        c.lastname = "Lee".into();
        c.custom[1] = "x".into();
        assert!(sp().listed_holds(listed, &c));
        c.custom[1] = String::new();
        assert!(
            !sp().listed_holds(listed, &c),
            "a field the contact has and the row clears"
        );
        c.custom[1] = "x".into();
        c.date = "1990-01-01".into();
        assert!(
            !sp().listed_holds(listed, &c),
            "a field the row sets and the contact lacks"
        );
        // 41 contacts: pages 1..=3, cursors 0..=2.
        assert_eq!(sp().last_cursor(41), Some(2));
        assert_eq!(sp().last_cursor(40), Some(1));
        assert_eq!(sp().last_cursor(0), None);
        assert_eq!(sp().previous_cursor(2), Some(1));
        assert_eq!(sp().previous_cursor(0), None);
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
        // An SMS Partner refusal without a code under HTTP 404.
        assert_eq!(detail(404, r#"{"success": false}"#), Ok(None));
        // A bare 404 says nothing of the contact: misdirected, a failure.
        for body in ["Not Found", "", r#"{"error": "x"}"#, "<html>404</html>"] {
            match detail(404, body) {
                Err(OpError::Failed(e)) => {
                    assert_eq!(e.code, ErrorCode::Http(404), "{body}");
                    assert!(e.message.contains("--base-url"), "{}", e.message);
                }
                other => panic!("{body}: {other:?}"),
            }
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
            assert_eq!(e.code, ErrorCode::ResponseInvalid, "{body}");
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
