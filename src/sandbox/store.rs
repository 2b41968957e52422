//! The sandbox's data and business rules: SMS Partner groups and contacts, the
//! Mobivate address book, and the checks each API applies to a request body.
//!
//! Pure: no I/O, no clock (timestamps are passed in); the HTTP layer only
//! translates between these types and the wire.

use std::collections::HashMap;

use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, Region};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::normalize::Contact;
use crate::rng::SplitMix64;

/// Contacts on one page of `GET /v1/contact/list`.
pub(crate) const PAGE_SIZE: usize = 20;
/// Most contacts accepted by one bulk `POST /v1/contact/add`.
pub(crate) const BULK_MAX: usize = 500;
/// Code of the emulator's invalid-number error (not documented by SMS Partner).
pub(crate) const CODE_INVALID_NUMBER: u32 = 9;

/// The number in E.164 (national numbers read as French), if it is a valid number.
pub(crate) fn parse_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let number = PhoneNumber::parse(raw, Some(Region::FR)).ok()?;
    number
        .is_valid()
        .then(|| number.format_as(PhoneNumberFormat::E164).into_owned())
}

// ---------------------------------------------------------------- SMS Partner

/// An SMS Partner coded error: the `code` and `message` of a `{success:false}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpError {
    /// The documented control code (1, 2, 10, 15, 90, 404; 9 for invalid numbers).
    pub code: u32,
    /// The English message.
    pub message: &'static str,
}

impl SpError {
    const fn new(code: u32, message: &'static str) -> SpError {
        SpError { code, message }
    }
    /// Code 1: no `groupId`.
    pub(crate) const GROUP_REQUIRED: SpError = SpError::new(1, "groupId is required");
    /// Code 1: no `contactId`.
    pub(crate) const CONTACT_ID_REQUIRED: SpError = SpError::new(1, "contactId is required");
    /// Code 2: no contact (or no phone number in it).
    pub(crate) const CONTACT_REQUIRED: SpError = SpError::new(2, "Contact info is required");
    /// Code 2: a bulk list longer than [`BULK_MAX`].
    pub(crate) const TOO_MANY_CONTACTS: SpError =
        SpError::new(2, "contactsList must hold at most 500 contacts");
    /// Code 9 (emulator choice): the phone number is not a valid number.
    pub(crate) const INVALID_NUMBER: SpError =
        SpError::new(CODE_INVALID_NUMBER, "Invalid phone number");
    /// Code 10: no `apiKey`.
    pub(crate) const API_KEY_REQUIRED: SpError = SpError::new(10, "API key is required");
    /// Code 10: a wrong `apiKey`.
    pub(crate) const API_KEY_INCORRECT: SpError = SpError::new(10, "Incorrect API key");
    /// Code 15: the number is already in the group.
    pub(crate) const ALREADY_IN_GROUP: SpError =
        SpError::new(15, "The number is already in the group");
    /// Code 90: the body is not a JSON object.
    pub(crate) const MALFORMED_JSON: SpError = SpError::new(90, "Malformed JSON");
    /// Code 404: unknown contact.
    pub(crate) const CONTACT_NOT_FOUND: SpError = SpError::new(404, "Contact does not exist");
    /// Code 404: unknown group.
    pub(crate) const GROUP_NOT_FOUND: SpError = SpError::new(404, "Group does not exist");
}

/// Contact fields as sent in a request; `None` = absent (left unchanged by update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactInput {
    /// `phoneNumber`, as sent.
    pub phone_number: Option<String>,
    /// `firstname`.
    pub firstname: Option<String>,
    /// `lastname`.
    pub lastname: Option<String>,
    /// `date`.
    pub date: Option<String>,
    /// `url`.
    pub url: Option<String>,
    /// `shortUrlPartnr`.
    pub short_url: Option<String>,
    /// `custom1`..`custom4`.
    pub custom: [Option<String>; 4],
}

impl ContactInput {
    /// Reads a `contact` object; non-string scalars are taken as their text.
    pub(crate) fn from_json(value: &Value) -> Option<ContactInput> {
        let obj = value.as_object()?;
        let field = |name: &str| match obj.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        Some(ContactInput {
            phone_number: field("phoneNumber"),
            firstname: field("firstname"),
            lastname: field("lastname"),
            date: field("date"),
            url: field("url"),
            short_url: field("shortUrlPartnr"),
            custom: [
                field("custom1"),
                field("custom2"),
                field("custom3"),
                field("custom4"),
            ],
        })
    }
}

impl From<&Contact> for ContactInput {
    fn from(c: &Contact) -> ContactInput {
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        ContactInput {
            phone_number: Some(c.phone.clone()),
            firstname: some(&c.firstname),
            lastname: some(&c.lastname),
            date: some(&c.date),
            url: some(&c.url),
            short_url: None,
            custom: [
                some(&c.custom[0]),
                some(&c.custom[1]),
                some(&c.custom[2]),
                some(&c.custom[3]),
            ],
        }
    }
}

/// A contact held by the SMS Partner emulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsPartnerContact {
    /// Unique id (a decimal string).
    #[serde(rename = "contactId")]
    pub contact_id: String,
    /// The group it belongs to.
    #[serde(rename = "groupId")]
    pub group_id: String,
    /// E.164 number.
    pub phone: String,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// Date, as sent.
    pub date: String,
    /// URL, as sent.
    pub url: String,
    /// `shortUrlPartnr`, as sent.
    #[serde(rename = "shortUrlPartnr")]
    pub short_url: String,
    /// Custom field 1.
    pub custom1: String,
    /// Custom field 2.
    pub custom2: String,
    /// Custom field 3.
    pub custom3: String,
    /// Custom field 4.
    pub custom4: String,
}

impl SmsPartnerContact {
    fn apply(&mut self, input: &ContactInput) {
        let set = |slot: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                slot.clone_from(v);
            }
        };
        set(&mut self.firstname, &input.firstname);
        set(&mut self.lastname, &input.lastname);
        set(&mut self.date, &input.date);
        set(&mut self.url, &input.url);
        set(&mut self.short_url, &input.short_url);
        set(&mut self.custom1, &input.custom[0]);
        set(&mut self.custom2, &input.custom[1]);
        set(&mut self.custom3, &input.custom[2]);
        set(&mut self.custom4, &input.custom[3]);
    }
}

/// One SMS Partner group with its contacts in insertion order.
#[derive(Debug, Clone)]
struct Group {
    id: String,
    token: String,
    members: Vec<String>,
    phones: HashMap<String, String>,
}

/// One row of a bulk add's `results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BulkRow {
    /// Whether the row was imported.
    pub success: bool,
    /// 200, or the row's error code.
    pub code: u32,
    /// E.164 when the number parsed, else as sent.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    /// What happened.
    pub message: String,
}

/// The outcome of a bulk add that was accepted as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BulkOutcome {
    /// The group's name.
    pub group_name: String,
    /// The group's token.
    pub group_token: String,
    /// One row per contact sent, in request order.
    pub results: Vec<BulkRow>,
}

/// The SMS Partner side of the sandbox: groups and their contacts.
#[derive(Debug, Clone)]
pub(crate) struct SmsPartnerStore {
    groups: Vec<Group>,
    contacts: HashMap<String, SmsPartnerContact>,
    next_id: u64,
    /// Write requests so far: what reshuffles an unstable listing.
    writes: u64,
}

impl SmsPartnerStore {
    /// A store with the given (empty) groups; tokens come from `rng`.
    pub(crate) fn new(group_ids: &[String], rng: &mut SplitMix64) -> SmsPartnerStore {
        let mut groups: Vec<Group> = Vec::new();
        for id in group_ids {
            if groups.iter().any(|g| &g.id == id) {
                continue;
            }
            groups.push(Group {
                id: id.clone(),
                token: hex(rng, 32),
                members: Vec::new(),
                phones: HashMap::new(),
            });
        }
        SmsPartnerStore {
            groups,
            contacts: HashMap::new(),
            next_id: 1,
            writes: 0,
        }
    }

    fn group_index(&self, group_id: &str) -> Result<usize, SpError> {
        if group_id.is_empty() {
            return Err(SpError::GROUP_REQUIRED);
        }
        self.groups
            .iter()
            .position(|g| g.id == group_id)
            .ok_or(SpError::GROUP_NOT_FOUND)
    }

    /// Groups as `(id, name, token, contact count)`, in configuration order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (&str, &str, &str, usize)> {
        self.groups.iter().map(|g| {
            (
                g.id.as_str(),
                g.id.as_str(),
                g.token.as_str(),
                g.members.len(),
            )
        })
    }

    /// `POST /v1/contact/add` with one `contact`.
    pub(crate) fn add(
        &mut self,
        group_id: &str,
        input: &ContactInput,
    ) -> Result<SmsPartnerContact, SpError> {
        let gi = self.group_index(group_id)?;
        self.add_to(gi, input)
    }

    fn add_to(&mut self, gi: usize, input: &ContactInput) -> Result<SmsPartnerContact, SpError> {
        self.writes += 1;
        let raw = input
            .phone_number
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .ok_or(SpError::CONTACT_REQUIRED)?;
        let phone = parse_phone(raw).ok_or(SpError::INVALID_NUMBER)?;
        let group = &mut self.groups[gi];
        if group.phones.contains_key(&phone) {
            return Err(SpError::ALREADY_IN_GROUP);
        }
        let contact_id = self.next_id.to_string();
        self.next_id += 1;
        let mut contact = SmsPartnerContact {
            contact_id: contact_id.clone(),
            group_id: group.id.clone(),
            phone: phone.clone(),
            ..SmsPartnerContact::default()
        };
        contact.apply(input);
        group.members.push(contact_id.clone());
        group.phones.insert(phone, contact_id.clone());
        self.contacts.insert(contact_id, contact.clone());
        Ok(contact)
    }

    /// `POST /v1/contact/add` with a `contactsList`: per-row results in request order.
    pub(crate) fn add_bulk(
        &mut self,
        group_id: &str,
        inputs: &[Option<ContactInput>],
    ) -> Result<BulkOutcome, SpError> {
        let gi = self.group_index(group_id)?;
        if inputs.is_empty() {
            return Err(SpError::CONTACT_REQUIRED);
        }
        if inputs.len() > BULK_MAX {
            return Err(SpError::TOO_MANY_CONTACTS);
        }
        let results = inputs
            .iter()
            .map(|input| {
                let sent = input
                    .as_ref()
                    .and_then(|i| i.phone_number.clone())
                    .unwrap_or_default();
                let outcome = match input {
                    Some(input) => self.add_to(gi, input),
                    None => Err(SpError::CONTACT_REQUIRED),
                };
                match outcome {
                    Ok(contact) => BulkRow {
                        success: true,
                        code: 200,
                        phone_number: contact.phone,
                        message: "Contact added".into(),
                    },
                    Err(e) => BulkRow {
                        success: false,
                        code: e.code,
                        phone_number: parse_phone(&sent).unwrap_or(sent),
                        message: e.message.into(),
                    },
                }
            })
            .collect();
        let group = &self.groups[gi];
        Ok(BulkOutcome {
            group_name: group.id.clone(),
            group_token: group.token.clone(),
            results,
        })
    }

    /// `POST /v1/contact/update`: sets the fields present in `input`.
    pub(crate) fn update(
        &mut self,
        contact_id: &str,
        input: &ContactInput,
    ) -> Result<SmsPartnerContact, SpError> {
        self.writes += 1;
        if contact_id.is_empty() {
            return Err(SpError::CONTACT_ID_REQUIRED);
        }
        let current = self
            .contacts
            .get(contact_id)
            .ok_or(SpError::CONTACT_NOT_FOUND)?;
        let new_phone = match input.phone_number.as_deref() {
            Some(raw) if !raw.trim().is_empty() => {
                Some(parse_phone(raw).ok_or(SpError::INVALID_NUMBER)?)
            }
            _ => None,
        };
        let gi = self.group_index(&current.group_id)?;
        let group = &mut self.groups[gi];
        if let Some(phone) = &new_phone {
            match group.phones.get(phone) {
                Some(owner) if owner != contact_id => return Err(SpError::ALREADY_IN_GROUP),
                _ => {}
            }
        }
        let contact = self
            .contacts
            .get_mut(contact_id)
            .ok_or(SpError::CONTACT_NOT_FOUND)?;
        if let Some(phone) = new_phone {
            group.phones.remove(&contact.phone);
            group.phones.insert(phone.clone(), contact_id.to_string());
            contact.phone = phone;
        }
        contact.apply(input);
        Ok(contact.clone())
    }

    /// `POST /v1/contact/delete`.
    pub(crate) fn delete(&mut self, contact_id: &str) -> Result<(), SpError> {
        self.writes += 1;
        if contact_id.is_empty() {
            return Err(SpError::CONTACT_ID_REQUIRED);
        }
        let contact = self
            .contacts
            .remove(contact_id)
            .ok_or(SpError::CONTACT_NOT_FOUND)?;
        if let Some(group) = self.groups.iter_mut().find(|g| g.id == contact.group_id) {
            group.phones.remove(&contact.phone);
            group.members.retain(|id| id != contact_id);
        }
        Ok(())
    }

    /// `GET /v1/contact/detail`.
    pub(crate) fn detail(&self, contact_id: &str) -> Result<&SmsPartnerContact, SpError> {
        if contact_id.is_empty() {
            return Err(SpError::CONTACT_ID_REQUIRED);
        }
        self.contacts
            .get(contact_id)
            .ok_or(SpError::CONTACT_NOT_FOUND)
    }

    /// `GET /v1/contact/list`: page `page` (1 first) and the group's total.
    /// In insertion order, or `unstable`: in an order every write reshuffles
    /// (an API that promises no order).
    pub(crate) fn list(
        &self,
        group_id: &str,
        page: usize,
        unstable: bool,
    ) -> Result<(Vec<&SmsPartnerContact>, usize), SpError> {
        let group = &self.groups[self.group_index(group_id)?];
        let start = page.max(1).saturating_sub(1).saturating_mul(PAGE_SIZE);
        let mut members: Vec<&String> = group.members.iter().collect();
        if unstable {
            members.sort_by_key(|id| shuffled_rank(id, self.writes));
        }
        let rows = members
            .into_iter()
            .skip(start)
            .take(PAGE_SIZE)
            .filter_map(|id| self.contacts.get(id))
            .collect();
        Ok((rows, group.members.len()))
    }

    /// Every group with its contacts, in configuration and insertion order.
    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<SmsPartnerContact>)> {
        self.groups
            .iter()
            .map(|g| {
                let contacts = g
                    .members
                    .iter()
                    .filter_map(|id| self.contacts.get(id).cloned())
                    .collect();
                (g.id.clone(), contacts)
            })
            .collect()
    }
}

// ------------------------------------------------------------------- Mobivate

/// A Mobivate error: its `name`, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MvError {
    /// 400 `ValidationError`.
    Validation(String),
    /// 400 `ValidationError`: the alias belongs to another contact already.
    AliasTaken(String),
    /// 404 `NotFoundError`.
    NotFound,
}

impl MvError {
    /// The error `name` in the body.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            MvError::Validation(_) | MvError::AliasTaken(_) => "ValidationError",
            MvError::NotFound => "NotFoundError",
        }
    }

    /// The HTTP status (also the body's `statusCode`).
    pub(crate) fn status(&self) -> u16 {
        match self {
            MvError::Validation(_) | MvError::AliasTaken(_) => 400,
            MvError::NotFound => 404,
        }
    }

    /// The human-readable message.
    pub(crate) fn message(&self) -> &str {
        match self {
            MvError::Validation(m) | MvError::AliasTaken(m) => m,
            MvError::NotFound => "Contact not found",
        }
    }
}

/// A Mobivate create or update body; `None` = absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MobivateInput {
    /// `alias`.
    pub alias: Option<String>,
    /// `msisdn`.
    pub msisdn: Option<String>,
    /// `meta`.
    pub meta: Option<Map<String, Value>>,
}

impl MobivateInput {
    /// Reads a request body, checking the JSON types of the known fields.
    pub(crate) fn from_json(body: &[u8]) -> Result<MobivateInput, MvError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| MvError::Validation("Request body is not valid JSON".into()))?;
        let Value::Object(obj) = value else {
            return Err(MvError::Validation(
                "Request body must be a JSON object".into(),
            ));
        };
        let text = |name: &str| match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(MvError::Validation(format!("{name} must be a string"))),
        };
        let meta = match obj.get("meta") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(MvError::Validation("meta must be an object".into())),
        };
        Ok(MobivateInput {
            alias: text("alias")?,
            msisdn: text("msisdn")?,
            meta,
        })
    }
}

/// A contact in the Mobivate emulator's address book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobivateContact {
    /// UUID-shaped id.
    pub id: String,
    /// Unique alias.
    pub alias: String,
    /// International number, digits only.
    pub msisdn: String,
    /// Metadata as last sent.
    pub meta: Map<String, Value>,
    /// Creation time (RFC 3339, UTC).
    pub created_on: String,
    /// Last update time, if ever updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_on: Option<String>,
}

fn check_alias(alias: &str) -> Result<(), MvError> {
    if alias.trim().is_empty() {
        return Err(MvError::Validation("alias is required".into()));
    }
    Ok(())
}

fn check_msisdn(msisdn: &str) -> Result<(), MvError> {
    if msisdn.is_empty() {
        return Err(MvError::Validation("msisdn is required".into()));
    }
    if !(7..=15).contains(&msisdn.len()) || !msisdn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MvError::Validation(
            "msisdn must be an international number of 7 to 15 digits".into(),
        ));
    }
    Ok(())
}

/// A version-4-shaped UUID string (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
fn uuid(rng: &mut SplitMix64) -> String {
    let hi = (rng.next_u64() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let lo = (rng.next_u64() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// `n` random lower-case hex digits.
fn hex(rng: &mut SplitMix64, n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let word = format!("{:016x}", rng.next_u64());
        let take = (n - out.len()).min(word.len());
        out.push_str(&word[..take]);
    }
    out
}

/// A contact's place in a listing whose order every write reshuffles.
fn shuffled_rank(id: &str, writes: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    SplitMix64::new(h ^ writes.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// How a Mobivate listing is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SortField {
    /// Creation order (the default).
    #[default]
    CreatedOn,
    /// By alias.
    Alias,
    /// By msisdn.
    Msisdn,
    /// By id.
    Id,
    /// No sort asked for, under the sandbox's unstable-listing mode: an
    /// order every write reshuffles (nothing promised, nothing kept).
    Unspecified,
}

impl SortField {
    /// Reads a `sortField` value.
    pub(crate) fn parse(s: &str) -> Result<SortField, MvError> {
        match s {
            "created_on" | "createdOn" => Ok(SortField::CreatedOn),
            "alias" => Ok(SortField::Alias),
            "msisdn" => Ok(SortField::Msisdn),
            "id" => Ok(SortField::Id),
            other => Err(MvError::Validation(format!(
                "sortField {other:?} is not one of created_on, alias, msisdn, id"
            ))),
        }
    }
}

/// The Mobivate side of the sandbox: one address book.
#[derive(Debug, Clone)]
pub(crate) struct MobivateStore {
    order: Vec<String>,
    records: HashMap<String, MobivateContact>,
    aliases: HashMap<String, String>,
    rng: SplitMix64,
    /// Write requests so far: what reshuffles an unstable listing.
    writes: u64,
}

impl MobivateStore {
    /// An empty address book whose ids come from `seed`.
    pub(crate) fn new(seed: u64) -> MobivateStore {
        MobivateStore {
            order: Vec::new(),
            records: HashMap::new(),
            aliases: HashMap::new(),
            rng: SplitMix64::new(seed),
            writes: 0,
        }
    }

    /// `POST /addressbook/contacts`.
    pub(crate) fn create(
        &mut self,
        input: MobivateInput,
        now: &str,
    ) -> Result<MobivateContact, MvError> {
        self.writes += 1;
        let alias = input.alias.unwrap_or_default();
        check_alias(&alias)?;
        let msisdn = input.msisdn.unwrap_or_default();
        check_msisdn(&msisdn)?;
        if self.aliases.contains_key(&alias) {
            return Err(MvError::AliasTaken(format!(
                "alias {alias:?} already exists"
            )));
        }
        let mut id = uuid(&mut self.rng);
        while self.records.contains_key(&id) {
            id = uuid(&mut self.rng);
        }
        let record = MobivateContact {
            id: id.clone(),
            alias: alias.clone(),
            msisdn,
            meta: input.meta.unwrap_or_default(),
            created_on: now.to_string(),
            updated_on: None,
        };
        self.order.push(id.clone());
        self.aliases.insert(alias, id.clone());
        self.records.insert(id, record.clone());
        Ok(record)
    }

    /// `POST /addressbook/contacts/{id}`: sets the fields present in `input`.
    pub(crate) fn update(
        &mut self,
        id: &str,
        input: MobivateInput,
        now: &str,
    ) -> Result<MobivateContact, MvError> {
        self.writes += 1;
        if !self.records.contains_key(id) {
            return Err(MvError::NotFound);
        }
        if let Some(alias) = &input.alias {
            check_alias(alias)?;
            match self.aliases.get(alias) {
                Some(owner) if owner != id => {
                    return Err(MvError::AliasTaken(format!(
                        "alias {alias:?} already exists"
                    )));
                }
                _ => {}
            }
        }
        if let Some(msisdn) = &input.msisdn {
            check_msisdn(msisdn)?;
        }
        let record = self.records.get_mut(id).ok_or(MvError::NotFound)?;
        if let Some(alias) = input.alias {
            self.aliases.remove(&record.alias);
            self.aliases.insert(alias.clone(), id.to_string());
            record.alias = alias;
        }
        if let Some(msisdn) = input.msisdn {
            record.msisdn = msisdn;
        }
        if let Some(meta) = input.meta {
            record.meta = meta;
        }
        record.updated_on = Some(now.to_string());
        Ok(record.clone())
    }

    /// `DELETE /addressbook/contacts/{id}`.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), MvError> {
        self.writes += 1;
        let record = self.records.remove(id).ok_or(MvError::NotFound)?;
        self.aliases.remove(&record.alias);
        self.order.retain(|x| x != id);
        Ok(())
    }

    /// `GET /addressbook/contacts`: one window of the sorted book and its total.
    pub(crate) fn list(
        &self,
        offset: usize,
        limit: usize,
        sort: SortField,
        descending: bool,
    ) -> (Vec<&MobivateContact>, usize) {
        let mut all: Vec<&MobivateContact> = self
            .order
            .iter()
            .filter_map(|id| self.records.get(id))
            .collect();
        match sort {
            SortField::CreatedOn => {}
            SortField::Unspecified => all.sort_by_key(|r| shuffled_rank(&r.id, self.writes)),
            SortField::Alias => all.sort_by(|a, b| a.alias.cmp(&b.alias)),
            SortField::Msisdn => all.sort_by(|a, b| a.msisdn.cmp(&b.msisdn)),
            SortField::Id => all.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        if descending {
            all.reverse();
        }
        let total = all.len();
        let page = all.into_iter().skip(offset).take(limit).collect();
        (page, total)
    }

    /// Every contact in creation order.
    pub(crate) fn snapshot(&self) -> Vec<MobivateContact> {
        self.order
            .iter()
            .filter_map(|id| self.records.get(id).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sp() -> SmsPartnerStore {
        SmsPartnerStore::new(&["g1".into(), "g2".into()], &mut SplitMix64::new(1))
    }

    fn phone(p: &str) -> ContactInput {
        ContactInput {
            phone_number: Some(p.into()),
            ..ContactInput::default()
        }
    }

    #[test]
    fn phones_are_read_as_french_and_stored_in_e164() {
        assert_eq!(parse_phone("0612345678").as_deref(), Some("+33612345678"));
        assert_eq!(parse_phone("+33612345678").as_deref(), Some("+33612345678"));
        assert_eq!(
            parse_phone("0033612345678").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            parse_phone(" 06 12 34 56 78 ").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            parse_phone("+4915112345678").as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(parse_phone("12"), None);
        assert_eq!(parse_phone("hello"), None);
        assert_eq!(parse_phone(""), None);
    }

    #[test]
    fn add_stores_e164_with_fields_and_unique_ids() {
        let mut s = sp();
        let mut input = phone("0612345678");
        input.firstname = Some("Ada".into());
        input.custom[2] = Some("c3".into());
        let a = s.add("g1", &input).unwrap();
        assert_eq!(a.phone, "+33612345678");
        assert_eq!(a.firstname, "Ada");
        assert_eq!(a.custom3, "c3");
        assert_eq!(a.group_id, "g1");
        let b = s.add("g1", &phone("0612345679")).unwrap();
        assert_ne!(a.contact_id, b.contact_id);
        // The same number may live in another group.
        let c = s.add("g2", &phone("+33612345678")).unwrap();
        assert_ne!(c.contact_id, a.contact_id);
    }

    #[test]
    fn add_errors_carry_documented_codes() {
        let mut s = sp();
        s.add("g1", &phone("0612345678")).unwrap();
        assert_eq!(
            s.add("g1", &phone("+33 6 12 34 56 78")),
            Err(SpError::ALREADY_IN_GROUP)
        );
        assert_eq!(
            s.add("", &phone("0612345670")),
            Err(SpError::GROUP_REQUIRED)
        );
        assert_eq!(
            s.add("nope", &phone("0612345670")),
            Err(SpError::GROUP_NOT_FOUND)
        );
        assert_eq!(
            s.add("g1", &ContactInput::default()),
            Err(SpError::CONTACT_REQUIRED)
        );
        assert_eq!(s.add("g1", &phone("123")), Err(SpError::INVALID_NUMBER));
        assert_eq!(SpError::ALREADY_IN_GROUP.code, 15);
        assert_eq!(SpError::GROUP_NOT_FOUND.code, 404);
    }

    #[test]
    fn bulk_reports_each_row_in_order() {
        let mut s = sp();
        s.add("g1", &phone("0611111111")).unwrap();
        let rows = [
            Some(phone("0622222222")),
            Some(phone("+33611111111")),
            Some(phone("not a number")),
            None,
            Some(phone("0622222222")),
            Some(phone("0633333333")),
        ];
        let out = s.add_bulk("g1", &rows).unwrap();
        let codes: Vec<u32> = out.results.iter().map(|r| r.code).collect();
        assert_eq!(codes, [200, 15, CODE_INVALID_NUMBER, 2, 15, 200]);
        assert_eq!(out.results[0].phone_number, "+33622222222");
        assert_eq!(out.results[1].phone_number, "+33611111111");
        assert_eq!(out.results[2].phone_number, "not a number");
        assert!(out.results[0].success && !out.results[1].success);
        assert_eq!(out.group_name, "g1");
        assert_eq!(s.list("g1", 1, false).unwrap().1, 3);
    }

    #[test]
    fn bulk_rejects_empty_oversized_and_unknown_group_as_a_whole() {
        let mut s = sp();
        assert_eq!(s.add_bulk("g1", &[]), Err(SpError::CONTACT_REQUIRED));
        let many: Vec<Option<ContactInput>> = (0..=BULK_MAX)
            .map(|i| Some(phone(&format!("06{:08}", i))))
            .collect();
        assert_eq!(s.add_bulk("g1", &many), Err(SpError::TOO_MANY_CONTACTS));
        assert_eq!(s.list("g1", 1, false).unwrap().1, 0, "nothing applied");
        assert!(s.add_bulk("g1", &many[..BULK_MAX]).is_ok());
        assert_eq!(s.list("g1", 1, false).unwrap().1, BULK_MAX);
        assert_eq!(s.add_bulk("zz", &many[..1]), Err(SpError::GROUP_NOT_FOUND));
    }

    #[test]
    fn update_sets_present_fields_and_guards_the_number() {
        let mut s = sp();
        let mut input = phone("0611111111");
        input.firstname = Some("Ada".into());
        input.lastname = Some("Lovelace".into());
        let a = s.add("g1", &input).unwrap();
        let b = s.add("g1", &phone("0622222222")).unwrap();
        let change = ContactInput {
            firstname: Some("Grace".into()),
            phone_number: Some("0633333333".into()),
            ..ContactInput::default()
        };
        let u = s.update(&a.contact_id, &change).unwrap();
        assert_eq!(
            (u.firstname.as_str(), u.lastname.as_str(), u.phone.as_str()),
            ("Grace", "Lovelace", "+33633333333")
        );
        // The old number is free again, the new one is taken.
        assert!(s.add("g1", &phone("0611111111")).is_ok());
        assert_eq!(
            s.update(&b.contact_id, &phone("0633333333")),
            Err(SpError::ALREADY_IN_GROUP)
        );
        assert_eq!(
            s.update(&b.contact_id, &phone("x")),
            Err(SpError::INVALID_NUMBER)
        );
        assert_eq!(
            s.update("999", &phone("0644444444")),
            Err(SpError::CONTACT_NOT_FOUND)
        );
        assert_eq!(
            s.update("", &phone("0644444444")),
            Err(SpError::CONTACT_ID_REQUIRED)
        );
        // Keeping one's own number is not a conflict.
        assert!(s.update(&b.contact_id, &phone("0622222222")).is_ok());
    }

    #[test]
    fn delete_and_detail() {
        let mut s = sp();
        let a = s.add("g1", &phone("0611111111")).unwrap();
        assert_eq!(s.detail(&a.contact_id).unwrap().phone, "+33611111111");
        s.delete(&a.contact_id).unwrap();
        assert_eq!(s.detail(&a.contact_id), Err(SpError::CONTACT_NOT_FOUND));
        assert_eq!(s.delete(&a.contact_id), Err(SpError::CONTACT_NOT_FOUND));
        assert_eq!(s.list("g1", 1, false).unwrap().1, 0);
        // The number can be added again.
        assert!(s.add("g1", &phone("0611111111")).is_ok());
    }

    #[test]
    fn list_pages_by_twenty_in_insertion_order() {
        let mut s = sp();
        let ids: Vec<String> = (0..45)
            .map(|i| {
                s.add("g1", &phone(&format!("06{:08}", i)))
                    .unwrap()
                    .contact_id
            })
            .collect();
        let page = |p| {
            let (rows, total) = s.list("g1", p, false).unwrap();
            assert_eq!(total, 45);
            rows.iter()
                .map(|c| c.contact_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(page(1), ids[..20]);
        assert_eq!(page(2), ids[20..40]);
        assert_eq!(page(3), ids[40..]);
        assert!(page(4).is_empty());
        assert_eq!(page(0), page(1));
    }

    fn mv_input(alias: &str, msisdn: &str) -> MobivateInput {
        MobivateInput {
            alias: Some(alias.into()),
            msisdn: Some(msisdn.into()),
            meta: None,
        }
    }

    #[test]
    fn mobivate_create_validates_and_keeps_alias_unique() {
        let mut m = MobivateStore::new(1);
        let a = m.create(mv_input("ada", "33611111111"), "t0").unwrap();
        assert_eq!(a.id.len(), 36);
        assert_eq!(a.created_on, "t0");
        let err = m.create(mv_input("ada", "33622222222"), "t1").unwrap_err();
        assert_eq!((err.name(), err.status()), ("ValidationError", 400));
        assert!(matches!(err, MvError::AliasTaken(_)), "{err:?}");
        assert!(m.create(mv_input("", "33622222222"), "t").is_err());
        assert!(m.create(mv_input("bob", ""), "t").is_err());
        assert!(m.create(mv_input("bob", "+33622222222"), "t").is_err());
        assert!(m.create(mv_input("bob", "33 6222"), "t").is_err());
        assert!(
            m.create(
                MobivateInput {
                    alias: Some("bob".into()),
                    ..MobivateInput::default()
                },
                "t"
            )
            .is_err()
        );
        assert_eq!(m.snapshot().len(), 1);
    }

    #[test]
    fn mobivate_update_and_delete() {
        let mut m = MobivateStore::new(1);
        let a = m.create(mv_input("ada", "33611111111"), "t0").unwrap();
        let b = m.create(mv_input("bob", "33622222222"), "t0").unwrap();
        let meta = json!({"FIRSTNAME": "Ada"}).as_object().cloned();
        let u = m
            .update(
                &a.id,
                MobivateInput {
                    meta,
                    msisdn: Some("33633333333".into()),
                    alias: None,
                },
                "t1",
            )
            .unwrap();
        assert_eq!(u.alias, "ada");
        assert_eq!(u.msisdn, "33633333333");
        assert_eq!(u.meta["FIRSTNAME"], "Ada");
        assert_eq!(u.updated_on.as_deref(), Some("t1"));
        assert!(matches!(
            m.update(&b.id, mv_input("ada", "33622222222"), "t"),
            Err(MvError::AliasTaken(_))
        ));
        assert!(m.update(&a.id, mv_input("ada", "33611111111"), "t").is_ok());
        assert_eq!(
            m.update("nope", MobivateInput::default(), "t"),
            Err(MvError::NotFound)
        );
        m.delete(&a.id).unwrap();
        assert_eq!(m.delete(&a.id), Err(MvError::NotFound));
        // The alias is free again.
        assert!(m.create(mv_input("ada", "33611111111"), "t").is_ok());
    }

    #[test]
    fn mobivate_list_windows_and_sorts() {
        let mut m = MobivateStore::new(1);
        for alias in ["c", "a", "b"] {
            m.create(mv_input(alias, "33611111111"), "t").unwrap();
        }
        let aliases =
            |rows: Vec<&MobivateContact>| rows.iter().map(|r| r.alias.clone()).collect::<Vec<_>>();
        let (rows, total) = m.list(0, 10, SortField::CreatedOn, false);
        assert_eq!(
            (aliases(rows), total),
            (vec!["c".into(), "a".into(), "b".into()], 3)
        );
        let (rows, _) = m.list(1, 1, SortField::CreatedOn, false);
        assert_eq!(aliases(rows), ["a"]);
        let (rows, _) = m.list(0, 10, SortField::Alias, true);
        assert_eq!(aliases(rows), ["c", "b", "a"]);
        assert!(m.list(5, 10, SortField::Id, false).0.is_empty());
    }

    #[test]
    fn mobivate_body_types_are_checked() {
        assert!(MobivateInput::from_json(b"{").is_err());
        assert!(MobivateInput::from_json(b"[]").is_err());
        assert!(MobivateInput::from_json(br#"{"alias": ["x"]}"#).is_err());
        assert!(MobivateInput::from_json(br#"{"meta": "x"}"#).is_err());
        let i = MobivateInput::from_json(br#"{"alias":"a","msisdn":33611111111,"meta":{"K":1}}"#)
            .unwrap();
        assert_eq!(i.msisdn.as_deref(), Some("33611111111"));
        assert_eq!(i.meta.unwrap()["K"], 1);
    }

    #[test]
    fn uuid_has_v4_shape() {
        let mut r = SplitMix64::new(3);
        let id = uuid(&mut r);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(uuid(&mut r), id);
        assert_eq!(hex(&mut r, 20).len(), 20);
    }
}
