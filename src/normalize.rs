//! Per-row validation and normalisation (SPEC §4): pure functions, no I/O.
//!
//! Phone numbers go through `rlibphonenumber` (a libphonenumber port). Before
//! that, one pass over the cell copies its digits into a stack buffer, drops
//! the separators SPEC §4 allows, reads full-width digits as digits and turns
//! a `00` prefix into `+`; any other character (letters, commas, an Excel
//! exponent) makes the number invalid, so nothing that only looks like a
//! number is silently accepted. What spreadsheets wrap around a number (a
//! leading `'`, `="…"`) is taken off first; an extension (`ext 12`, `x12`,
//! `poste 12`) is taken off and noted. A cell holding several numbers
//! (`:::`, `;`, ` or `, `/`) gives its first mobile one, and the others are
//! noted.
//!
//! Valid rows can carry notes (a placeholder date left out, a name cut, other
//! numbers ignored), which the report shows in `message` (SPEC §6).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono::format::{Item, Parsed, StrftimeItems};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType, Region};

use crate::codes::{ErrorCode, RowError};
use crate::columns::{ColumnMap, Field, FieldSet, PhoneSlot};
use crate::phone::FastPhone;
use crate::record::Record;
use crate::words::{describe, quote};

/// Most characters (Unicode scalar values) a first or last name may have.
pub(crate) const MAX_NAME_CHARS: usize = 32;

/// Most digits a phone number cell may hold (E.164 allows 15; room for a `00`
/// prefix and a national `0`).
const MAX_PHONE_DIGITS: usize = 20;

/// The earliest year a date may have.
const MIN_YEAR: i32 = 1900;

/// The latest year a date may have.
const MAX_YEAR: i32 = 2100;

/// The input date format that is always accepted.
const ISO_DATE: &str = "%Y-%m-%d";

/// Options that change how rows are normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// ISO region for national-format numbers, e.g. `FR`.
    pub default_region: String,
    /// Extra accepted input date formats (strftime style), besides `%Y-%m-%d`.
    pub date_formats: Vec<String>,
    /// Cut names to 32 characters instead of rejecting them.
    pub truncate_names: bool,
    /// Reject numbers that are not mobile (or fixed-or-mobile).
    pub mobile_only: bool,
    /// The group an empty `groupId` cell falls back to (`--group-id`).
    pub default_group: Option<String>,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            default_region: "FR".into(),
            date_formats: Vec::new(),
            truncate_names: false,
            mobile_only: false,
            default_group: None,
        }
    }
}

/// A row that passed validation, with every field normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Contact {
    /// E.164, e.g. `+33612345678`.
    pub phone: String,
    /// Trimmed first name (empty when absent).
    pub firstname: String,
    /// Trimmed last name (empty when absent).
    pub lastname: String,
    /// `YYYY-MM-DD` (empty when absent).
    pub date: String,
    /// Absolute http(s) URL exactly as written, trimmed (empty when absent).
    pub url: String,
    /// custom1..custom4, trimmed (empty when absent).
    pub custom: [String; 4],
    /// The provider's contact id from the file (empty when absent).
    pub contact_id: String,
    /// SMS Partner group id from the file (empty when absent).
    pub group_id: String,
    /// Mobivate alias from the file (empty when absent).
    pub alias: String,
    /// The person asked for no SMS (`optOut` cell true-ish): never added or
    /// updated; mirror mode deletes the contact.
    pub opt_out: bool,
    /// The fields the file has a column for: an empty cell in one of them
    /// means "clear it" on update, a missing column means "leave it".
    pub present: FieldSet,
}

/// A configuration problem found before any row is read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// `--default-region` is not a region libphonenumber knows.
    #[error("--default-region {} is not a known ISO 3166 region code (e.g. FR, GB, US)", crate::words::quote(.0))]
    UnknownRegion(String),
    /// A `--date-format` is not a usable strftime pattern.
    #[error("--date-format {} is not a usable date pattern (e.g. %d/%m/%Y)", crate::words::quote(.0))]
    BadDateFormat(String),
}

/// One accepted input date format, parsed once.
#[derive(Debug, Clone)]
struct DateFormat {
    /// As the user wrote it, for messages.
    pattern: String,
    items: Vec<Item<'static>>,
}

/// Validates and normalises rows under fixed options.
///
/// It holds no interior mutability and the phone metadata is a process-wide
/// static, so one `Normalizer` can be shared by reference (or `Arc`) across
/// worker threads.
#[derive(Debug, Clone)]
pub struct Normalizer {
    opts: NormalizeOptions,
    region: Region,
    /// `%Y-%m-%d` first, then the user's formats.
    date_formats: Vec<DateFormat>,
    /// The accepted formats, for the DATE_INVALID message.
    date_formats_shown: String,
    /// What the first rows of the file say about its columns.
    facts: ColumnFacts,
    /// The default region's metadata compiled for the phone fast path
    /// (`None`: every number takes the library's full path).
    fast: Option<Arc<FastPhone>>,
}

/// What the first rows of a file say about its columns, decided once before
/// any row is normalised (see [`FactsFinder`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ColumnFacts {
    /// Every non-empty date cell looked at is an Excel serial number.
    pub serial_dates: bool,
    /// Which comes first in the slash dates looked at, day or month.
    pub date_order: DateOrder,
}

/// The order of day and month in dates like `05/06/1980`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DateOrder {
    /// Nothing told (every date had both parts at most 12), or no such date.
    #[default]
    Unknown,
    /// Some date had a first part over 12 (`25/12/1980`), none a second one.
    DayFirst,
    /// Some date had a second part over 12 (`12/25/1980`), none a first one.
    MonthFirst,
}

/// Looks at the date cells of a file's first rows to decide [`ColumnFacts`].
#[derive(Debug, Clone, Default)]
pub(crate) struct FactsFinder {
    serials: u64,
    others: u64,
    day_first: bool,
    month_first: bool,
}

impl FactsFinder {
    /// Takes one row into account.
    pub(crate) fn observe(&mut self, map: &ColumnMap, record: &Record) {
        let Some(cell) = map.get(Field::Date).and_then(|c| record.get(c)) else {
            return;
        };
        let cell = cell.trim();
        if cell.is_empty() || placeholder_date(cell).is_some() {
            return;
        }
        if excel_serial(cell).is_some() {
            self.serials += 1;
        } else {
            self.others += 1;
        }
        if let Some((a, b, _)) = three_numbers(cell) {
            self.day_first |= a > 12 && (1..=12).contains(&b);
            self.month_first |= b > 12 && (1..=12).contains(&a);
        }
    }

    /// The decision.
    pub(crate) fn finish(&self) -> ColumnFacts {
        ColumnFacts {
            serial_dates: self.serials > 0 && self.others == 0,
            date_order: match (self.day_first, self.month_first) {
                (true, false) => DateOrder::DayFirst,
                (false, true) => DateOrder::MonthFirst,
                _ => DateOrder::Unknown,
            },
        }
    }
}

/// Appends `note` to the `; `-joined notes of a row.
fn note(notes: &mut String, note: impl std::fmt::Display) {
    if !notes.is_empty() {
        notes.push_str("; ");
    }
    let _ = write!(notes, "{note}");
}

/// NFC, the composed form: a name typed on macOS (`e` + combining accent)
/// counts and compares like one typed elsewhere (`é`).
pub(crate) fn nfc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    const NFC: icu_normalizer::ComposingNormalizerBorrowed<'static> =
        icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    NFC.normalize(s)
}

/// A phone number as libphonenumber read it.
struct Number {
    e164: String,
    kind: PhoneNumberType,
    /// An extension taken off the cell.
    extension: Option<String>,
}

/// One number of a cell or of a labelled layout's slots.
struct Part<'a> {
    raw: &'a str,
    label_mobile: bool,
    parsed: Result<Number, RowError>,
}

impl Normalizer {
    /// Checks the options once, so rows never meet a configuration error.
    pub fn new(opts: NormalizeOptions) -> Result<Normalizer, OptionsError> {
        let region = parse_region(&opts.default_region)
            .ok_or_else(|| OptionsError::UnknownRegion(opts.default_region.clone()))?;
        let mut date_formats = vec![date_format(ISO_DATE)?];
        for pattern in &opts.date_formats {
            if date_formats.iter().all(|f| f.pattern != *pattern) {
                date_formats.push(date_format(pattern)?);
            }
        }
        let date_formats_shown = date_formats
            .iter()
            .map(|f| {
                if f.pattern == ISO_DATE {
                    "YYYY-MM-DD".to_string()
                } else {
                    f.pattern.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Normalizer {
            opts,
            region,
            date_formats,
            date_formats_shown,
            facts: ColumnFacts::default(),
            fast: FastPhone::for_region(region),
        })
    }

    /// This normaliser, for a file whose first rows showed `facts`.
    pub(crate) fn with_facts(&self, facts: ColumnFacts) -> Normalizer {
        Normalizer {
            facts,
            ..self.clone()
        }
    }

    /// This normaliser without the phone fast path: every number goes through
    /// the library's full `parse` and `get_number_type` (for the differential test).
    pub fn full_path_only(&self) -> Normalizer {
        Normalizer {
            fast: None,
            ..self.clone()
        }
    }

    /// Whether the phone fast path serves the default region.
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether the fast path, not the library, reads this phone cell (one
    /// number); for the differential test to know what it compared.
    pub fn phone_fast_path_answers(&self, cell: &str) -> bool {
        let body = unwrap_spreadsheet(cell.trim());
        let main = split_extension(body).map_or(body, |(main, _)| main);
        let mut buf = [0u8; MAX_PHONE_DIGITS + 1];
        match (&self.fast, clean_phone(main, &mut buf)) {
            (Some(fast), Ok(cleaned)) => fast.valid(cleaned).is_some(),
            _ => false,
        }
    }

    /// The options this normaliser was built with.
    pub(crate) fn options(&self) -> &NormalizeOptions {
        &self.opts
    }

    /// The normalised contact, or every problem of the row in column order.
    pub fn normalize(&self, map: &ColumnMap, record: &Record) -> Result<Contact, Vec<RowError>> {
        self.normalize_noted(map, record, &mut String::new())
    }

    /// [`Normalizer::normalize`], appending to `notes` what a valid row's
    /// report message should say about it (`; `-joined).
    pub(crate) fn normalize_noted(
        &self,
        map: &ColumnMap,
        record: &Record,
        notes: &mut String,
    ) -> Result<Contact, Vec<RowError>> {
        // (column index, error); sorted by column at the end.
        let mut errors: Vec<(usize, RowError)> = Vec::new();
        let cell = |field: Field| -> Option<(usize, &str)> {
            let col = map.get(field)?;
            Some((col, record.get(col)?.trim()))
        };
        let text = |field: Field| cell(field).map_or_else(String::new, |(_, s)| s.to_string());
        let nfc_text =
            |field: Field| cell(field).map_or_else(String::new, |(_, s)| nfc(s).into_owned());

        let mut contact = Contact {
            present: map.fields(),
            ..Contact::default()
        };

        match self.phone_field(map, record, notes) {
            Ok(e164) => contact.phone = e164,
            Err(e) => errors.push(e),
        }

        if let Some((col, raw)) = cell(Field::OptOut) {
            match opt_out(raw) {
                Ok(v) => contact.opt_out = v,
                Err(e) => errors.push((col, e)),
            }
        }
        // Nothing of an opted-out row is sent: only its number (and group) matter.
        let checked = !contact.opt_out;
        if contact.opt_out {
            note(notes, OPTED_OUT_NOTE);
        }

        for (field, out, code, what) in [
            (
                Field::Firstname,
                &mut contact.firstname,
                ErrorCode::FirstnameTooLong,
                "first name",
            ),
            (
                Field::Lastname,
                &mut contact.lastname,
                ErrorCode::LastnameTooLong,
                "last name",
            ),
        ] {
            if let Some((col, raw)) = cell(field).filter(|_| checked) {
                match self.name(raw, code, what, notes) {
                    Ok(name) => *out = name,
                    Err(e) => errors.push((col, e)),
                }
            }
        }

        if let Some((col, raw)) = cell(Field::Date).filter(|_| checked) {
            match self.date(raw, notes) {
                Ok(Some(date)) => contact.date = date,
                // A placeholder: the field is left out, so an update leaves it as it is.
                Ok(None) => contact.present.remove(Field::Date),
                Err(e) => errors.push((col, e)),
            }
        }

        if let Some((col, raw)) = cell(Field::Url).filter(|_| checked) {
            match url(raw) {
                Ok(url) => contact.url = url,
                Err(e) => errors.push((col, e)),
            }
        }

        if let Some((col, raw)) = cell(Field::GroupId) {
            if !raw.is_empty() {
                contact.group_id = raw.to_string();
            } else if let Some(group) = &self.opts.default_group {
                contact.group_id = group.clone();
            } else {
                errors.push((
                    col,
                    RowError::new(
                        ErrorCode::GroupMissing,
                        "the group cell is empty and no --group-id was given to fall back to",
                    ),
                ));
            }
        }

        if !errors.is_empty() {
            errors.sort_by_key(|(col, _)| *col);
            return Err(errors.into_iter().map(|(_, e)| e).collect());
        }

        contact.custom = [
            nfc_text(Field::Custom1),
            nfc_text(Field::Custom2),
            nfc_text(Field::Custom3),
            nfc_text(Field::Custom4),
        ];
        contact.contact_id = text(Field::ContactId);
        contact.alias = text(Field::Alias);
        Ok(contact)
    }

    /// The row's number in E.164 when its phone cell alone is valid (for
    /// reporting rows that other fields made invalid).
    pub(crate) fn phone_of(&self, map: &ColumnMap, record: &Record) -> Option<String> {
        self.phone_field(map, record, &mut String::new()).ok()
    }

    /// The row's phone number: from its one column, or the best of a
    /// labelled layout's slots or of a cell holding several numbers.
    fn phone_field(
        &self,
        map: &ColumnMap,
        record: &Record,
        notes: &mut String,
    ) -> Result<String, (usize, RowError)> {
        let Some(col) = map.get(Field::PhoneNumber) else {
            return Err((
                0,
                RowError::new(ErrorCode::PhoneMissing, "the phone number is missing"),
            ));
        };
        let slots = map.phone_slots();
        if slots.len() <= 1 {
            let raw = record.get(col).unwrap_or("").trim();
            if plain_phone_text(raw) || !may_hold_several(raw) {
                return self.phone(raw, notes).map_err(|e| (col, e));
            }
            let pieces = self.split_numbers(raw);
            if pieces.len() <= 1 {
                let one = pieces.first().copied().unwrap_or(raw);
                return self.phone(one, notes).map_err(|e| (col, e));
            }
        }
        let single = [PhoneSlot {
            label: None,
            value: col,
        }];
        let slots = if slots.is_empty() { &single[..] } else { slots };
        let mut parts = Vec::new();
        for slot in slots {
            let label_mobile = slot
                .label
                .and_then(|l| record.get(l))
                .is_some_and(label_says_mobile);
            let raw = record.get(slot.value).unwrap_or("").trim();
            for piece in self.split_numbers(raw) {
                parts.push(Part {
                    raw: piece,
                    label_mobile,
                    parsed: self.number(piece),
                });
            }
        }
        self.choose(parts, slots.len() > 1, notes)
            .map_err(|e| (col, e))
    }

    /// The best of several numbers: valid, then mobile by libphonenumber's
    /// metadata, then labelled mobile, then first; the others are noted.
    fn choose(
        &self,
        parts: Vec<Part<'_>>,
        slots: bool,
        notes: &mut String,
    ) -> Result<String, RowError> {
        let score = |p: &Part<'_>| match &p.parsed {
            Ok(n) => 1 + 4 * u8::from(is_mobile(n.kind)) + 2 * u8::from(p.label_mobile),
            Err(_) => 0,
        };
        let mut best: Option<usize> = None;
        for (i, p) in parts.iter().enumerate() {
            if score(p) > best.map_or(0, |b| score(&parts[b])) {
                best = Some(i);
            }
        }
        let Some(best) = best else {
            if parts.is_empty() {
                return Err(RowError::new(
                    ErrorCode::PhoneMissing,
                    "the phone number is empty",
                ));
            }
            if parts.len() == 1 {
                if let Some(Part { parsed: Err(e), .. }) = parts.into_iter().next() {
                    return Err(e);
                }
                return Err(RowError::new(
                    ErrorCode::PhoneInvalid,
                    "no valid phone number",
                ));
            }
            let why: Vec<String> = parts
                .into_iter()
                .filter_map(|p| p.parsed.err().map(|e| e.message))
                .collect();
            return Err(RowError::new(
                ErrorCode::PhoneInvalid,
                format!(
                    "none of the {} numbers {} is valid: {}",
                    why.len(),
                    if slots { "of the row" } else { "in the cell" },
                    why.join("; ")
                ),
            ));
        };
        let others: Vec<String> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, p)| quote(p.raw))
            .collect();
        let Some(Part {
            raw,
            parsed: Ok(number),
            ..
        }) = parts.into_iter().nth(best)
        else {
            return Err(RowError::new(
                ErrorCode::PhoneInvalid,
                "no valid phone number",
            ));
        };
        let e164 = self.accept(raw, number, notes)?;
        if !others.is_empty() {
            note(
                notes,
                format_args!(
                    "other numbers {} ignored: {}",
                    if slots { "of the row" } else { "in the cell" },
                    others.join(", ")
                ),
            );
        }
        Ok(e164)
    }

    /// The cell's pieces when it holds several numbers (`:::`, `;`, ` or `,
    /// ` ou `, and `/` when every piece is a valid number on its own); else
    /// the cell itself. Empty pieces are dropped.
    fn split_numbers<'a>(&self, raw: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![raw];
        for sep in [":::", ";", " or ", " ou "] {
            pieces = pieces
                .into_iter()
                .flat_map(|p| split_ignoring_case(p, sep))
                .collect();
        }
        let mut out = Vec::with_capacity(pieces.len());
        for p in pieces {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let slashed: Vec<&str> = p.split('/').map(str::trim).collect();
            if slashed.len() > 1 && slashed.iter().all(|s| self.number(s).is_ok()) {
                out.extend(slashed);
            } else {
                out.push(p);
            }
        }
        out
    }

    /// The E.164 form of a trimmed phone cell holding one number.
    fn phone(&self, raw: &str, notes: &mut String) -> Result<String, RowError> {
        if raw.is_empty() {
            return Err(RowError::new(
                ErrorCode::PhoneMissing,
                "the phone number is empty",
            ));
        }
        let number = self.number(raw)?;
        self.accept(raw, number, notes)
    }

    /// Applies `--mobile-only` to a number read from `raw`, noting an
    /// extension taken off.
    fn accept(&self, raw: &str, number: Number, notes: &mut String) -> Result<String, RowError> {
        if self.opts.mobile_only && !is_mobile(number.kind) {
            return Err(RowError::new(
                ErrorCode::PhoneNotMobile,
                format!(
                    "{} is a {} number, not a mobile number (--mobile-only)",
                    quote(raw),
                    type_name(number.kind)
                ),
            ));
        }
        if let Some(ext) = &number.extension {
            note(
                notes,
                format_args!(
                    "extension {ext} left out of the number (an SMS goes to the number itself)"
                ),
            );
        }
        Ok(number.e164)
    }

    /// Reads one number (trimmed, not empty) with libphonenumber, after
    /// taking off a spreadsheet's wrapping and an extension.
    fn number(&self, raw: &str) -> Result<Number, RowError> {
        if raw.is_empty() {
            return Err(RowError::new(
                ErrorCode::PhoneMissing,
                "the phone number is empty",
            ));
        }
        let (main, extension) = if plain_phone_text(raw) {
            (raw, None)
        } else {
            let body = unwrap_spreadsheet(raw);
            match split_extension(body) {
                Some((main, ext)) => (main, Some(ext.to_string())),
                None => (body, None),
            }
        };
        let mut buf = [0u8; MAX_PHONE_DIGITS + 1];
        let cleaned = clean_phone(main, &mut buf).map_err(|why| unclean(raw, why))?;
        if let Some((e164, kind)) = self.fast.as_ref().and_then(|f| f.valid(cleaned)) {
            return Ok(Number {
                e164,
                kind,
                extension,
            });
        }
        let invalid = || {
            let msg = if cleaned.starts_with('+') {
                format!("{} is not a valid phone number", quote(raw))
            } else {
                format!(
                    "{} is not a valid phone number for region {}",
                    quote(raw),
                    self.region
                )
            };
            RowError::new(ErrorCode::PhoneInvalid, msg)
        };
        let number = PHONE_NUMBER_UTIL
            .parse(cleaned, Some(self.region))
            .map_err(|_| invalid())?;
        // `get_number_type` is `Unknown` exactly when `is_valid_number` is
        // false (both test the same metadata), so one call answers both
        // questions.
        let kind = PHONE_NUMBER_UTIL.get_number_type(&number);
        if kind == PhoneNumberType::Unknown {
            return Err(invalid());
        }
        Ok(Number {
            e164: PHONE_NUMBER_UTIL
                .format(&number, PhoneNumberFormat::E164)
                .into_owned(),
            kind,
            extension,
        })
    }

    /// A trimmed name in NFC, cut to 32 characters with `--truncate-names`
    /// (and the cut noted).
    fn name(
        &self,
        raw: &str,
        code: ErrorCode,
        what: &str,
        notes: &mut String,
    ) -> Result<String, RowError> {
        // At most 4 bytes a char: a short byte length settles it without counting.
        if raw.len() <= MAX_NAME_CHARS {
            return Ok(nfc(raw).into_owned());
        }
        let name = nfc(raw);
        match name.char_indices().nth(MAX_NAME_CHARS) {
            None => Ok(name.into_owned()),
            Some((cut, _)) if self.opts.truncate_names => {
                let kept = name[..cut].trim_end();
                note(
                    notes,
                    format_args!(
                        "{what} cut to {MAX_NAME_CHARS} characters (it had {}): {}",
                        name.chars().count(),
                        quote(kept)
                    ),
                );
                Ok(kept.to_string())
            }
            Some(_) => Err(RowError::new(
                code,
                format!(
                    "{what} {} has {} characters, more than the {MAX_NAME_CHARS} allowed \
                     (--truncate-names cuts it instead)",
                    quote(&name),
                    name.chars().count()
                ),
            )),
        }
    }

    /// A trimmed date cell as `YYYY-MM-DD`: `Some("")` when empty, `None`
    /// for a placeholder meaning "no date" (noted); the year must lie in
    /// 1900–2100.
    fn date(&self, raw: &str, notes: &mut String) -> Result<Option<String>, RowError> {
        if raw.is_empty() {
            return Ok(Some(String::new()));
        }
        if let Some(date) = iso_date_fast(raw)
            && year_in_range(date)
        {
            return Ok(Some(iso(date)));
        }
        if let Some(why) = placeholder_date(raw) {
            note(notes, format_args!("date {} {why}: left out", quote(raw)));
            return Ok(None);
        }
        if self.facts.serial_dates
            && let Some(serial) = excel_serial(raw)
        {
            return match serial_date(serial) {
                Some(date) => {
                    let date = iso(date);
                    note(
                        notes,
                        format_args!("date {} read as an Excel serial date: {date}", quote(raw)),
                    );
                    Ok(Some(date))
                }
                None => Err(RowError::new(
                    ErrorCode::DateInvalid,
                    format!(
                        "{} is Excel's serial number for 29 February 1900, a day that \
                             did not exist (Excel's 1900 leap-year error)",
                        quote(raw)
                    ),
                )),
            };
        }
        // The first format that read a date whose year is out of range: a
        // later format may still read the cell well (`%Y`, then `%y`).
        let mut out_of_range: Option<(NaiveDate, &DateFormat)> = None;
        for f in &self.date_formats {
            let mut parsed = Parsed::new();
            if chrono::format::parse(&mut parsed, raw, f.items.iter()).is_ok()
                && let Ok(date) = parsed.to_naive_date()
            {
                if year_in_range(date) {
                    return Ok(Some(iso(date)));
                }
                out_of_range.get_or_insert((date, f));
            }
        }
        let message = match out_of_range {
            Some((date, f)) => year_message(raw, date, &f.pattern),
            None => self.date_message(raw),
        };
        Err(RowError::new(ErrorCode::DateInvalid, message))
    }

    /// Why a date cell read by no format is not a date, with the
    /// `--date-format` that would read it when there is one.
    fn date_message(&self, raw: &str) -> String {
        let base = format!(
            "{} is not a real calendar date in an accepted format ({})",
            quote(raw),
            self.date_formats_shown
        );
        if excel_serial(raw).is_some() {
            return format!(
                "{base}: it looks like an Excel serial date, but other cells of the column \
                 are not, so it is not read as one (format the column as dates, YYYY-MM-DD)"
            );
        }
        if let Ok(year) = raw.parse::<u32>()
            && (MIN_YEAR as u32..=MAX_YEAR as u32).contains(&year)
        {
            return format!("{base}: it looks like a year alone");
        }
        let day_first = read_with(raw, DAY_FIRST);
        let month_first = read_with(raw, MONTH_FIRST);
        let suggest = |(pattern, date): (&str, NaiveDate), order: &str| {
            format!(
                "{base}: it reads as {} {order}; pass --date-format {pattern} to read such dates",
                iso(date)
            )
        };
        match (day_first, month_first, self.facts.date_order) {
            (Some(d), None, _) | (Some(d), Some(_), DateOrder::DayFirst) => {
                suggest(d, "with the day first")
            }
            (None, Some(m), _) | (Some(_), Some(m), DateOrder::MonthFirst) => {
                suggest(m, "with the month first")
            }
            (Some((dp, _)), Some((mp, _)), DateOrder::Unknown) => format!(
                "{base}: pass --date-format {dp} if your dates put the day first, \
                 or --date-format {mp} if they put the month first"
            ),
            (None, None, _) => base,
        }
    }
}

/// Day-first formats a date that failed is tried with, for the message.
const DAY_FIRST: &[&str] = &[
    "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%d.%m.%y", "%d-%m-%y",
];

/// Month-first formats a date that failed is tried with, for the message.
const MONTH_FIRST: &[&str] = &["%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y", "%m-%d-%y"];

/// The first of `patterns` that reads `raw` as a date in 1900–2100.
fn read_with(raw: &str, patterns: &[&'static str]) -> Option<(&'static str, NaiveDate)> {
    patterns.iter().find_map(|&p| {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, raw, StrftimeItems::new(p)).ok()?;
        let date = parsed.to_naive_date().ok()?;
        year_in_range(date).then_some((p, date))
    })
}

/// Why a date cell means "no date", when it does: Outlook's `0/0/00`, any
/// date of zeros (`00/00/0000`, `0000-00-00`), Google's yearless `--12-25`,
/// Mailchimp's yearless `12/25`.
fn placeholder_date(raw: &str) -> Option<&'static str> {
    let b = raw.as_bytes();
    if b.iter().any(u8::is_ascii_digit) && b.iter().all(|&c| matches!(c, b'0' | b'/' | b'-' | b'.'))
    {
        return Some("means no date");
    }
    let yearless = |m: &str, d: &str| -> bool {
        let (Ok(m), Ok(d)) = (m.parse::<u32>(), d.parse::<u32>()) else {
            return false;
        };
        // 2000 is a leap year: 29 February is a birthday.
        (1..=2).contains(&m.to_string().len().max(1))
            && NaiveDate::from_ymd_opt(2000, m, d).is_some()
    };
    if let Some(rest) = raw.strip_prefix("--")
        && let Some((m, d)) = rest.split_once('-')
        && m.len() == 2
        && d.len() == 2
        && yearless(m, d)
    {
        return Some("has no year");
    }
    if let Some((m, d)) = raw.split_once('/')
        && (1..=2).contains(&m.len())
        && (1..=2).contains(&d.len())
        && m.bytes().chain(d.bytes()).all(|c| c.is_ascii_digit())
        && (yearless(m, d) || yearless(d, m))
    {
        return Some("has no year");
    }
    None
}

/// `a/b/c` (or with `.` or `-`) made of three numbers.
fn three_numbers(raw: &str) -> Option<(u32, u32, u32)> {
    let mut it = raw.split(['/', '.', '-']);
    let a = it.next()?.trim().parse().ok()?;
    let b = it.next()?.trim().parse().ok()?;
    let c = it.next()?.trim().parse().ok()?;
    it.next().is_none().then_some((a, b, c))
}

/// The last day an Excel serial date may name: 2100-12-31.
const MAX_SERIAL: u32 = 73_415;

/// The day number of a cell that looks like an Excel serial date: an
/// integer (a fraction, the time of day, is ignored) from 1 to 73415 —
/// except 1900 to 2100, which read as a year alone.
fn excel_serial(raw: &str) -> Option<u32> {
    let whole = match raw.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => w,
        Some(_) => return None,
        None => raw,
    };
    if whole.is_empty() || whole.len() > 5 || !whole.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u32 = whole.parse().ok()?;
    let year_like = (MIN_YEAR as u32..=MAX_YEAR as u32).contains(&n);
    ((1..=MAX_SERIAL).contains(&n) && !year_like).then_some(n)
}

/// The date of an Excel serial number in the 1900 date system, where 1 is
/// 1900-01-01 and 60 is the 29 February 1900 that Excel (after Lotus 1-2-3)
/// counts though it never was: `None` for 60.
fn serial_date(serial: u32) -> Option<NaiveDate> {
    let base = NaiveDate::from_ymd_opt(1899, 12, 31)?;
    let days = match serial {
        60 => return None,
        1..=59 => serial,
        _ => serial - 1,
    };
    base.checked_add_days(chrono::Days::new(u64::from(days)))
}

/// Whether a label cell of a labelled layout says the number is a mobile
/// (`Mobile`, `* Mobile`, `Cell`, `Portable` …).
fn label_says_mobile(label: &str) -> bool {
    crate::columns::phone_label(label.trim_start_matches(['*', ' ']))
        == crate::columns::PhoneLabel::Mobile
}

/// Whether libphonenumber's type for a number can receive SMS.
fn is_mobile(kind: PhoneNumberType) -> bool {
    matches!(
        kind,
        PhoneNumberType::Mobile | PhoneNumberType::FixedLineOrMobile
    )
}

/// Whether a phone cell holds only digits, spaces and `+ . - ( )`, as most
/// do: no spreadsheet wrapping, no extension, no second number to look for.
fn plain_phone_text(raw: &str) -> bool {
    raw.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'.' | b'-' | b'(' | b')' | b'+'))
}

/// Whether a phone cell may hold several numbers; cheap, for every row.
fn may_hold_several(raw: &str) -> bool {
    raw.bytes().any(|b| matches!(b, b':' | b';' | b'/'))
        || contains_ignoring_case(raw, " or ")
        || contains_ignoring_case(raw, " ou ")
}

/// Whether `hay` holds the ASCII `needle`, whatever the case.
fn contains_ignoring_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `hay` split at each ASCII `sep`, whatever the case.
fn split_ignoring_case<'a>(hay: &'a str, sep: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let (h, s) = (hay.as_bytes(), sep.as_bytes());
    let mut start = 0;
    let mut i = 0;
    while i + s.len() <= h.len() {
        if h[i..i + s.len()].eq_ignore_ascii_case(s) {
            out.push(&hay[start..i]);
            i += s.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&hay[start..]);
    out
}

/// The number inside what a spreadsheet wraps around it: a leading `'`
/// (Excel's "this is text" mark) or a `="…"` formula.
fn unwrap_spreadsheet(raw: &str) -> &str {
    if let Some(inner) = raw.strip_prefix("=\"").and_then(|r| r.strip_suffix('"')) {
        return inner.trim();
    }
    raw.strip_prefix('\'').map_or(raw, str::trim)
}

/// The digits of an extension at the start of `tail` (`ext 12`, `ext. 12`,
/// `extension 12`, `x12`, `#12`, `poste 12`, `p. 12`), when that is all it holds.
fn extension(tail: &str) -> Option<&str> {
    let digits_at = tail.find(|c: char| c.is_ascii_digit())?;
    let (label, digits) = tail.split_at(digits_at);
    let digits = digits.trim_end();
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let label = label.trim().trim_end_matches(['.', ':']).trim_end();
    const LABELS: &[&str] = &["ext", "extn", "extension", "x", "#", "poste", "p"];
    LABELS
        .iter()
        .any(|l| l.eq_ignore_ascii_case(label))
        .then_some(digits)
}

/// Whether a date's year lies in 1900–2100, the years a contact's date can
/// have (a birthday, a renewal): anything else is a misread cell.
fn year_in_range(date: NaiveDate) -> bool {
    use chrono::Datelike as _;
    (MIN_YEAR..=MAX_YEAR).contains(&date.year())
}

/// Why a date read with `pattern` has an unacceptable year.
fn year_message(raw: &str, date: NaiveDate, pattern: &str) -> String {
    use chrono::Datelike as _;
    let year = date.year();
    // `%Y` reads `99` as the year 99; `0099` is written with four digits.
    if (0..1000).contains(&year) && !raw.contains(&format!("{year:04}")) {
        let hint = if pattern.contains("%Y") {
            format!(
                ", or pass --date-format {} for two-digit years",
                pattern.replace("%Y", "%y")
            )
        } else {
            String::new()
        };
        format!(
            "{} has a year with fewer than four digits: write it with four digits{hint}",
            quote(raw)
        )
    } else {
        format!(
            "{}: the year {year} is outside {MIN_YEAR}–{MAX_YEAR}",
            quote(raw)
        )
    }
}

/// The region for a `--default-region` value, if libphonenumber has metadata for it.
fn parse_region(code: &str) -> Option<Region> {
    let region = Region::from_code(code.trim()).ok()?;
    if region == Region::World {
        return None;
    }
    PHONE_NUMBER_UTIL.get_country_code_for_region(region)?;
    Some(region)
}

/// A user date format, checked to parse a full date: it must round-trip a
/// date whose day, month and year are all distinct.
fn date_format(pattern: &str) -> Result<DateFormat, OptionsError> {
    let bad = || OptionsError::BadDateFormat(pattern.to_string());
    let items = StrftimeItems::new(pattern)
        .parse_to_owned()
        .map_err(|_| bad())?;
    let probe = NaiveDate::from_ymd_opt(1987, 11, 23).ok_or_else(bad)?;
    let mut shown = String::new();
    write!(shown, "{}", probe.format_with_items(items.iter())).map_err(|_| bad())?;
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, &shown, items.iter()).map_err(|_| bad())?;
    if parsed.to_naive_date().ok() != Some(probe) {
        return Err(bad());
    }
    Ok(DateFormat {
        pattern: pattern.to_string(),
        items,
    })
}

/// `YYYY-MM-DD` exactly, without going through the format machinery.
fn iso_date_fast(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

/// `YYYY-MM-DD`.
fn iso(date: NaiveDate) -> String {
    use chrono::Datelike as _;
    let (y, m, d) = (date.year(), date.month(), date.day());
    if (0..=9999).contains(&y) {
        // Cheaper than going through the strftime machinery for every row.
        let mut out = String::with_capacity(10);
        for n in [y / 1000, y / 100 % 10, y / 10 % 10, y % 10] {
            out.push(digit(n.unsigned_abs()));
        }
        out.push('-');
        out.push(digit(m / 10));
        out.push(digit(m % 10));
        out.push('-');
        out.push(digit(d / 10));
        out.push(digit(d % 10));
        out
    } else {
        date.format(ISO_DATE).to_string()
    }
}

/// The ASCII digit for `n` (0–9).
fn digit(n: u32) -> char {
    char::from_digit(n, 10).unwrap_or('0')
}

/// What the report says of an opted-out row.
pub(crate) const OPTED_OUT_NOTE: &str =
    "opted out (optOut): never added or updated; --delete-missing deletes its contact";

/// Folded cell values that mean "opted out" (SPEC §3: yes, true, 1, x, oui),
/// with the words exports write for it.
const OPT_OUT_YES: &[&str] = &[
    "yes",
    "y",
    "true",
    "t",
    "1",
    "x",
    "oui",
    "o",
    "vrai",
    "optedout",
    "optout",
    "stop",
    "unsubscribed",
    "blacklisted",
    "blocked",
];

/// Folded cell values that mean "not opted out".
const OPT_OUT_NO: &[&str] = &[
    "",
    "no",
    "n",
    "false",
    "f",
    "0",
    "non",
    "faux",
    "optedin",
    "optin",
    "subscribed",
    "notspecified",
];

/// Whether an opt-out cell says the person opted out; a value that is
/// neither a yes nor a no is refused rather than guessed.
fn opt_out(raw: &str) -> Result<bool, RowError> {
    let key = crate::columns::fold(raw);
    if OPT_OUT_YES.contains(&key.as_str()) {
        Ok(true)
    } else if OPT_OUT_NO.contains(&key.as_str()) {
        Ok(false)
    } else {
        Err(RowError::new(
            ErrorCode::OptOutInvalid,
            format!(
                "{raw:?} in the opt-out column is neither a yes (yes, true, 1, x, oui) nor a no (no, false, 0, non, empty); the row is not sent and its contact is kept"
            ),
        ))
    }
}

/// A trimmed URL cell, checked to be an absolute http(s) URL with a host and
/// returned exactly as written: the provider stores what the user wrote.
fn url(raw: &str) -> Result<String, RowError> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    if plain_http_url(raw) {
        return Ok(raw.to_string());
    }
    url_parsed(raw)
}

/// [`url`] through the URL parser, whatever the cell's shape.
fn url_parsed(raw: &str) -> Result<String, RowError> {
    let bad = |why: &str| {
        RowError::new(
            ErrorCode::UrlInvalid,
            format!(
                "{} is not an absolute http(s) URL: {why} (e.g. https://example.com/page)",
                quote(raw)
            ),
        )
    };
    // The parser forgives what a browser would repair (it drops tabs and
    // newlines, encodes spaces, reads `\` as `/`); the cell is sent as
    // written, so such a cell would pass a check it does not meet.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains a space or a control character"));
    }
    if raw.contains('\\') {
        return Err(bad("it contains a backslash"));
    }
    let parsed = match reqwest::Url::parse(raw) {
        Ok(u) => u,
        Err(_) if !raw.contains(':') => return Err(bad("it has no scheme")),
        Err(e) => return Err(bad(url_error_words(e))),
    };
    // The parser lower-cases the scheme, so `HTTP://` lands here too.
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "the scheme is {:?}, not http or https",
            parsed.scheme()
        )));
    }
    // `http:x.fr`, `http:/x.fr` and `http:///x.fr` parse too, but only
    // because the parser adds or drops slashes.
    let after_scheme = raw.split_once(':').map_or("", |(_, rest)| rest);
    match after_scheme.strip_prefix("//") {
        Some(authority) if !authority.starts_with('/') => {}
        _ => return Err(bad("the scheme must be followed by // and the host")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(raw.to_string())
}

/// Whether `raw` is an http(s) URL of the plainest shape, which the URL
/// parser and the checks of [`url`] accept: a lower-case scheme, `//`, a
/// host of lower-case ASCII labels (no empty label, no `xn--` label for IDNA
/// to decode, the last one starting with a letter so it is not read as an
/// IPv4 address), then at most a path of unreserved characters. Saves the
/// parser's 2,500 instructions on the URLs most files hold; anything else
/// goes through the parser.
fn plain_http_url(raw: &str) -> bool {
    let Some(rest) = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.as_bytes();
    let (host, path) = rest.split_at(rest.iter().position(|&b| b == b'/').unwrap_or(rest.len()));
    let mut label_start = 0;
    for i in 0..=host.len() {
        if i == host.len() || host[i] == b'.' {
            let label = &host[label_start..i];
            let last = i == host.len();
            if label.is_empty()
                || label.starts_with(b"xn--")
                || (last && !label[0].is_ascii_lowercase())
            {
                return false;
            }
            label_start = i + 1;
        } else if !(host[i].is_ascii_lowercase() || host[i].is_ascii_digit() || host[i] == b'-') {
            return false;
        }
    }
    path.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'~' | b'-'))
}

/// The URL parser's complaint in a user's words.
fn url_error_words(e: url::ParseError) -> &'static str {
    use url::ParseError as P;
    match e {
        P::EmptyHost => "it has no host",
        P::IdnaError => "its host is not a valid domain name",
        P::InvalidPort => "its port is not a number from 0 to 65535",
        P::InvalidIpv4Address => "its host is not a valid IPv4 address",
        P::InvalidIpv6Address => "its host is not a valid IPv6 address",
        P::InvalidDomainCharacter => "its host holds a character a domain name cannot have",
        P::RelativeUrlWithoutBase | P::RelativeUrlWithCannotBeABaseBase => "it has no scheme",
        _ => "it cannot be read as a URL",
    }
}

/// Why a cell cannot be one phone number, before libphonenumber looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclean {
    Scientific,
    PlusInside,
    Char(char),
    TooManyDigits,
    NoDigits,
}

/// The PHONE_INVALID error for a cell that is not made of a number's characters.
fn unclean(raw: &str, why: Unclean) -> RowError {
    let why = match why {
        Unclean::Scientific => "it looks like a number a spreadsheet turned into scientific \
             notation, which loses digits (format the column as text)"
            .to_string(),
        Unclean::PlusInside => "a + may only start the number".to_string(),
        Unclean::TooManyDigits => "it has too many digits".to_string(),
        Unclean::NoDigits => "it has no digits".to_string(),
        Unclean::Char(c) => format!(
            "it holds {} at position {} (only digits, a leading + and the separators \
             space . - ( ) / are allowed)",
            describe(c),
            raw.chars().position(|x| x == c).map_or(0, |p| p + 1)
        ),
    };
    RowError::new(
        ErrorCode::PhoneInvalid,
        format!("{} is not a valid phone number: {why}", quote(raw)),
    )
}

/// A cell cut before its extension, and the extension's digits, when it
/// ends with one (`06 12 34 56 78 ext 12`).
fn split_extension(body: &str) -> Option<(&str, &str)> {
    let at = body.find(|c: char| c.is_ascii_alphabetic() || c == '#')?;
    extension(&body[at..]).map(|ext| (body[..at].trim_end(), ext))
}

/// Copies a trimmed phone cell into `buf` without separators, with
/// full-width digits as ASCII and a `00` prefix turned into `+`; or says why
/// it cannot be a phone number.
fn clean_phone<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str, Unclean> {
    if looks_scientific(raw) {
        return Err(Unclean::Scientific);
    }
    let mut n = 0;
    for c in raw.chars() {
        let byte = match c {
            '0'..='9' => c as u8,
            // Full-width forms, typed with an East Asian keyboard layout.
            '\u{ff10}'..='\u{ff19}' => b'0' + (c as u32 - 0xff10) as u8,
            '+' | '\u{ff0b}' if n == 0 => b'+',
            ' ' | '.' | '-' | '(' | ')' | '/' => continue,
            '\u{ff0e}' | '\u{ff0d}' | '\u{ff08}' | '\u{ff09}' | '\u{ff0f}' => continue,
            // Spreadsheets group digits with (narrow) no-break spaces and tabs.
            c if c.is_whitespace() => continue,
            '+' | '\u{ff0b}' => return Err(Unclean::PlusInside),
            other => return Err(Unclean::Char(other)),
        };
        if n == buf.len() {
            return Err(Unclean::TooManyDigits);
        }
        buf[n] = byte;
        n += 1;
    }
    let mut start = 0;
    if n >= 2 && buf[0] == b'0' && buf[1] == b'0' {
        // `00` international prefix, whatever the default region's own prefix is.
        buf[1] = b'+';
        start = 1;
    }
    let cleaned = std::str::from_utf8(&buf[start..n]).map_err(|_| Unclean::NoDigits)?;
    if !cleaned.bytes().any(|b| b.is_ascii_digit()) {
        return Err(Unclean::NoDigits);
    }
    Ok(cleaned)
}

/// Whether a cell looks like `3.36123E+10` or `6,12345E+08`.
fn looks_scientific(raw: &str) -> bool {
    let Some(e) = raw.find(['e', 'E']) else {
        return false;
    };
    let (mantissa, exponent) = (&raw[..e], &raw[e + 1..]);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',' || b == b'+' || b == b'-')
        && mantissa.bytes().any(|b| b.is_ascii_digit())
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A human name for a libphonenumber number type.
fn type_name(kind: PhoneNumberType) -> &'static str {
    match kind {
        PhoneNumberType::FixedLine => "fixed-line",
        PhoneNumberType::Mobile => "mobile",
        PhoneNumberType::FixedLineOrMobile => "fixed-line or mobile",
        PhoneNumberType::TollFree => "toll-free",
        PhoneNumberType::PremiumRate => "premium-rate",
        PhoneNumberType::SharedCost => "shared-cost",
        PhoneNumberType::VoIP => "VoIP",
        PhoneNumberType::PersonalNumber => "personal",
        PhoneNumberType::Pager => "pager",
        PhoneNumberType::UAN => "UAN",
        PhoneNumberType::VoiceMail => "voicemail",
        _ => "non-mobile",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map with the fields at the given columns.
    fn map(pairs: &[(Field, usize)]) -> ColumnMap {
        ColumnMap::from_positions(pairs)
    }

    fn norm(opts: NormalizeOptions) -> Normalizer {
        Normalizer::new(opts).unwrap()
    }

    fn fr() -> Normalizer {
        norm(NormalizeOptions::default())
    }

    fn region(code: &str) -> Normalizer {
        norm(NormalizeOptions {
            default_region: code.into(),
            ..NormalizeOptions::default()
        })
    }

    /// Normalises a one-column row holding just a phone number.
    fn phone_with(n: &Normalizer, raw: &str) -> Result<String, Vec<RowError>> {
        n.normalize(
            &map(&[(Field::PhoneNumber, 0)]),
            &Record::from_cells(2, &[raw]),
        )
        .map(|c| c.phone)
    }

    fn codes(errors: &[RowError]) -> Vec<ErrorCode> {
        errors.iter().map(|e| e.code).collect()
    }

    fn phone_code(n: &Normalizer, raw: &str) -> Vec<ErrorCode> {
        codes(&phone_with(n, raw).expect_err(raw))
    }

    #[test]
    fn every_accepted_french_notation_gives_the_same_e164() {
        let n = fr();
        for raw in [
            "0612345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "06/12/34/56/78",
            "(06) 12 34 56 78",
            "  06 12 34 56 78  ",
            "06\u{a0}12\u{a0}34\u{a0}56\u{a0}78",
            "06\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
            "+33612345678",
            "+33 6 12 34 56 78",
            "+33.6.12.34.56.78",
            "+33 (0)6 12 34 56 78",
            "+33 (0) 6 12 34 56 78",
            "+33 06 12 34 56 78",
            "0033612345678",
            "0033 6 12 34 56 78",
            "00 33 (0)6 12 34 56 78",
            // Excel dropped the leading 0 of a French mobile.
            "612345678",
            "6 12 34 56 78",
        ] {
            assert_eq!(
                phone_with(&n, raw).as_deref(),
                Ok("+33612345678"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn international_numbers_ignore_the_default_region() {
        for n in [fr(), region("GB"), region("US")] {
            for (raw, want) in [
                ("+44 7911 123456", "+447911123456"),
                ("0044 7911 123456", "+447911123456"),
                ("+49 1512 3456789", "+4915123456789"),
                ("+32 470 12 34 56", "+32470123456"),
                ("+1 (650) 253-0000", "+16502530000"),
                ("+33 1 23 45 67 89", "+33123456789"),
                // `00` is accepted even where the region's own prefix is 011 (US).
                ("0033612345678", "+33612345678"),
            ] {
                assert_eq!(phone_with(&n, raw).as_deref(), Ok(want), "{raw:?}");
            }
        }
    }

    #[test]
    fn national_numbers_use_the_default_region() {
        assert_eq!(
            phone_with(&region("GB"), "07911 123456").as_deref(),
            Ok("+447911123456")
        );
        assert_eq!(
            phone_with(&region("us"), "(650) 253-0000").as_deref(),
            Ok("+16502530000")
        );
        assert_eq!(
            phone_with(&fr(), "01 23 45 67 89").as_deref(),
            Ok("+33123456789")
        );
        // A British national number is not a French one.
        assert_eq!(phone_code(&fr(), "07911 123456"), [ErrorCode::PhoneInvalid]);
    }

    #[test]
    fn numbers_that_look_right_but_are_not_are_invalid() {
        let n = fr();
        for raw in [
            // Unallocated ranges: French mobiles are 06 and 073-079.
            "07 12 34 56 78",
            "07 00 00 00 00",
            // Too short, too long.
            "06 12",
            "06 12 34 56 7",
            "06 12 34 56 78 9",
            "06 12 34 56 78 90 12 34 56 78 90",
            // Unknown country calling code.
            "+999 612345678",
            "+0 612345678",
            // Letters, stray signs.
            "06 12 34 56 7A",
            "06 12 34 56 78 ext",
            "06 12 34 56 78 ext 12 bis",
            "0612345678,0687654321",
            "++33612345678",
            "+33 6 12 34 56 78+",
            "06 12 34 56 78 #",
            "+",
            "---",
            "phone",
        ] {
            assert_eq!(phone_code(&n, raw), [ErrorCode::PhoneInvalid], "{raw:?}");
        }
    }

    #[test]
    fn scientific_notation_from_excel_is_invalid_not_guessed() {
        let n = fr();
        for raw in [
            "3.36123E+10",
            "3,36123E+10",
            "6,12345E+08",
            "6.12345e8",
            "3.36123457E+10",
        ] {
            let errors = phone_with(&n, raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::PhoneInvalid], "{raw:?}");
            assert!(
                errors[0].message.contains("scientific notation"),
                "{errors:?}"
            );
            assert!(errors[0].message.contains(raw), "{errors:?}");
        }
    }

    #[test]
    fn invalid_phone_messages_show_the_raw_value() {
        let errors = phone_with(&fr(), "06 12").unwrap_err();
        assert_eq!(
            errors[0].message,
            "\"06 12\" is not a valid phone number for region FR"
        );
        let errors = phone_with(&fr(), "+999 612345678").unwrap_err();
        assert_eq!(
            errors[0].message,
            "\"+999 612345678\" is not a valid phone number"
        );
        let long = "6".repeat(200);
        let errors = phone_with(&fr(), &long).unwrap_err();
        assert!(errors[0].message.len() < 200, "{errors:?}");
    }

    #[test]
    fn a_missing_or_blank_phone_is_phone_missing() {
        let n = fr();
        assert_eq!(phone_code(&n, ""), [ErrorCode::PhoneMissing]);
        assert_eq!(phone_code(&n, "  \t "), [ErrorCode::PhoneMissing]);
        // The record is shorter than the column map says.
        let short = n.normalize(
            &map(&[(Field::Firstname, 0), (Field::PhoneNumber, 1)]),
            &Record::from_cells(2, &["Zoé"]),
        );
        assert_eq!(codes(&short.unwrap_err()), [ErrorCode::PhoneMissing]);
    }

    #[test]
    fn mobile_only_rejects_other_types_and_keeps_mobiles() {
        let n = norm(NormalizeOptions {
            mobile_only: true,
            ..NormalizeOptions::default()
        });
        for raw in ["06 12 34 56 78", "07 51 23 45 67", "+44 7911 123456"] {
            assert!(phone_with(&n, raw).is_ok(), "{raw:?}");
        }
        // The US does not tell mobiles from fixed lines: fixed-or-mobile passes.
        assert_eq!(
            phone_with(&n, "+1 650 253 0000").as_deref(),
            Ok("+16502530000")
        );
        let errors = phone_with(&n, "01 23 45 67 89").unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::PhoneNotMobile]);
        assert!(errors[0].message.contains("fixed-line"), "{errors:?}");
        assert_eq!(phone_code(&n, "0800 12 34 56"), [ErrorCode::PhoneNotMobile]);
        // Invalid stays invalid.
        assert_eq!(phone_code(&n, "07 12 34 56 78"), [ErrorCode::PhoneInvalid]);
        // Without the option the fixed line is fine.
        assert!(phone_with(&fr(), "01 23 45 67 89").is_ok());
    }

    #[test]
    fn number_type_unknown_matches_is_valid() {
        for raw in [
            "+33612345678",
            "+33712345678",
            "+33123456789",
            "+33800123456",
            "+447911123456",
            "+16502530000",
            "+3361234",
            "+80012345678",
        ] {
            let number = PHONE_NUMBER_UTIL.parse(raw, Some(Region::FR)).unwrap();
            assert_eq!(
                PHONE_NUMBER_UTIL.is_valid_number(&number),
                PHONE_NUMBER_UTIL.get_number_type(&number) != PhoneNumberType::Unknown,
                "{raw}"
            );
        }
    }

    fn names(n: &Normalizer, first: &str, last: &str) -> Result<Contact, Vec<RowError>> {
        n.normalize(
            &map(&[
                (Field::PhoneNumber, 0),
                (Field::Firstname, 1),
                (Field::Lastname, 2),
            ]),
            &Record::from_cells(2, &["0612345678", first, last]),
        )
    }

    #[test]
    fn names_count_characters_not_bytes() {
        let n = fr();
        let e32 = "é".repeat(32);
        let e33 = "é".repeat(33);
        assert_eq!(e32.len(), 64);
        let c = names(&n, &e32, &format!("  {e32}  ")).unwrap();
        assert_eq!((c.firstname.as_str(), c.lastname.as_str()), (&*e32, &*e32));
        assert_eq!(
            codes(&names(&n, &e33, "Martin").unwrap_err()),
            [ErrorCode::FirstnameTooLong]
        );
        assert_eq!(
            codes(&names(&n, "Zoé", &e33).unwrap_err()),
            [ErrorCode::LastnameTooLong]
        );
        let err = names(&n, &e33, "").unwrap_err();
        assert!(err[0].message.contains("33 characters"), "{err:?}");
        // 32 ASCII + 1 two-byte char is 33 chars in 34 bytes.
        let mixed = format!("{}é", "a".repeat(32));
        assert!(names(&n, &mixed, "").is_err());
        let c = names(&n, "  Zoé  ", "\tDe La Tour ").unwrap();
        assert_eq!(
            (c.firstname.as_str(), c.lastname.as_str()),
            ("Zoé", "De La Tour")
        );
    }

    #[test]
    fn truncate_names_cuts_to_32_characters() {
        let n = norm(NormalizeOptions {
            truncate_names: true,
            ..NormalizeOptions::default()
        });
        let e33 = "é".repeat(33);
        let c = names(&n, &e33, &format!("{} de la Tour", "x".repeat(31))).unwrap();
        assert_eq!(c.firstname, "é".repeat(32));
        // The cut lands after a space, which is trimmed.
        assert_eq!(c.lastname, "x".repeat(31));
        let c = names(&n, "Zoé", "").unwrap();
        assert_eq!(c.firstname, "Zoé");
    }

    fn date_with(n: &Normalizer, raw: &str) -> Result<String, Vec<RowError>> {
        n.normalize(
            &map(&[(Field::PhoneNumber, 0), (Field::Date, 1)]),
            &Record::from_cells(2, &["0612345678", raw]),
        )
        .map(|c| c.date)
    }

    #[test]
    fn dates_must_be_real_calendar_dates() {
        let n = fr();
        assert_eq!(date_with(&n, "2024-02-29").as_deref(), Ok("2024-02-29"));
        assert_eq!(date_with(&n, " 1999-12-31 ").as_deref(), Ok("1999-12-31"));
        assert_eq!(date_with(&n, "").as_deref(), Ok(""));
        // chrono accepts unpadded month and day in %Y-%m-%d; output is padded.
        assert_eq!(date_with(&n, "2024-2-9").as_deref(), Ok("2024-02-09"));
        for raw in [
            "2023-02-29",
            "2024-02-30",
            "2024-13-01",
            "2024-00-10",
            "29/02/2024",
            "45351",
            "2024-02-29T10:00",
            "yesterday",
        ] {
            let errors = date_with(&n, raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::DateInvalid], "{raw:?}");
            assert!(errors[0].message.contains("YYYY-MM-DD"), "{errors:?}");
        }
    }

    #[test]
    fn years_lie_in_1900_to_2100() {
        let n = fr();
        for raw in ["1900-01-01", "2100-12-31", "1999-12-31"] {
            assert_eq!(date_with(&n, raw).as_deref(), Ok(raw));
        }
        for (raw, year) in [
            ("0099-12-31", "0099"),
            ("1899-12-31", "1899"),
            ("2101-01-01", "2101"),
            ("0001-01-01", "0001"),
            ("9999-12-31", "9999"),
        ] {
            let errors = date_with(&n, raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::DateInvalid], "{raw:?}");
            assert_eq!(
                errors[0].message,
                format!(
                    "\"{raw}\": the year {} is outside 1900–2100",
                    year.trim_start_matches('0')
                ),
            );
        }
        // chrono reads `%Y` from one to four digits: 99 is the year 99.
        let errors = date_with(&n, "99-12-31").unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::DateInvalid]);
        assert!(errors[0].message.contains("four digits"), "{errors:?}");
        assert!(errors[0].message.contains("%y-%m-%d"), "{errors:?}");
    }

    #[test]
    fn a_two_digit_year_read_by_percent_capital_y_is_refused() {
        let n = norm(NormalizeOptions {
            date_formats: vec!["%d/%m/%Y".into()],
            ..NormalizeOptions::default()
        });
        assert_eq!(date_with(&n, "31/12/1999").as_deref(), Ok("1999-12-31"));
        for raw in ["31/12/99", "1/1/5", "31/12/999"] {
            let errors = date_with(&n, raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::DateInvalid], "{raw:?}");
            assert_eq!(
                errors[0].message,
                format!(
                    "\"{raw}\" has a year with fewer than four digits: write it with four \
                     digits, or pass --date-format %d/%m/%y for two-digit years"
                )
            );
        }
        for (raw, year) in [
            ("31/12/0099", 99),
            ("31/12/1899", 1899),
            ("01/01/2101", 2101),
        ] {
            let errors = date_with(&n, raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::DateInvalid], "{raw:?}");
            assert!(
                errors[0]
                    .message
                    .contains(&format!("the year {year} is outside 1900–2100")),
                "{errors:?}"
            );
        }
        // A later format can still read the cell well.
        let n = norm(NormalizeOptions {
            date_formats: vec!["%d/%m/%Y".into(), "%d/%m/%y".into()],
            ..NormalizeOptions::default()
        });
        assert_eq!(date_with(&n, "31/12/99").as_deref(), Ok("1999-12-31"));
        assert_eq!(date_with(&n, "31/12/1999").as_deref(), Ok("1999-12-31"));
        // `%y` puts 00–69 in 2000–2069, 70–99 in 1970–1999: always in range.
        let n = norm(NormalizeOptions {
            date_formats: vec!["%d.%m.%y".into()],
            ..NormalizeOptions::default()
        });
        assert_eq!(date_with(&n, "01.01.69").as_deref(), Ok("2069-01-01"));
        assert_eq!(date_with(&n, "01.01.70").as_deref(), Ok("1970-01-01"));
    }

    #[test]
    fn iso_output_pads_every_part() {
        for (y, m, d, want) in [
            (2024, 2, 9, "2024-02-09"),
            (999, 12, 31, "0999-12-31"),
            (1, 1, 1, "0001-01-01"),
            (10000, 1, 1, "+10000-01-01"),
        ] {
            assert_eq!(iso(NaiveDate::from_ymd_opt(y, m, d).unwrap()), want);
        }
    }

    #[test]
    fn extra_date_formats_are_accepted_and_normalised() {
        let n = norm(NormalizeOptions {
            date_formats: vec!["%d/%m/%Y".into(), "%d.%m.%y".into()],
            ..NormalizeOptions::default()
        });
        assert_eq!(date_with(&n, "29/02/2024").as_deref(), Ok("2024-02-29"));
        assert_eq!(date_with(&n, "2024-02-29").as_deref(), Ok("2024-02-29"));
        assert_eq!(date_with(&n, "31.12.99").as_deref(), Ok("1999-12-31"));
        let errors = date_with(&n, "29/02/2023").unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::DateInvalid]);
        assert!(errors[0].message.contains("%d/%m/%Y"), "{errors:?}");
    }

    #[test]
    fn date_formats_that_cannot_give_a_full_date_are_refused() {
        for bad in ["%m/%Y", "%d/%m", "%Q", "garbage", "", "%H:%M", "%d/%m/%"] {
            assert_eq!(
                Normalizer::new(NormalizeOptions {
                    date_formats: vec![bad.into()],
                    ..NormalizeOptions::default()
                })
                .map(|_| ()),
                Err(OptionsError::BadDateFormat(bad.into())),
                "{bad:?}"
            );
        }
        for good in ["%d/%m/%Y", "%Y%m%d", "%d %B %Y", "%Y-%j", "%m/%d/%y"] {
            assert!(
                Normalizer::new(NormalizeOptions {
                    date_formats: vec![good.into()],
                    ..NormalizeOptions::default()
                })
                .is_ok(),
                "{good:?}"
            );
        }
    }

    fn url_with(raw: &str) -> Result<String, Vec<RowError>> {
        fr().normalize(
            &map(&[(Field::PhoneNumber, 0), (Field::Url, 1)]),
            &Record::from_cells(2, &["0612345678", raw]),
        )
        .map(|c| c.url)
    }

    #[test]
    fn url_parser_complaints_are_worded_for_people() {
        for (raw, why) in [
            ("http://", "it has no host"),
            (
                "https://example.com:99999/",
                "its port is not a number from 0 to 65535",
            ),
            ("http://[::1/", "its host is not a valid IPv6 address"),
            ("http://1.2.3.256/", "its host is not a valid IPv4 address"),
            (
                "http://exa<mple.com/",
                "its host is not a valid domain name",
            ),
        ] {
            let errors = url_with(raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::UrlInvalid], "{raw}");
            assert!(
                errors[0].message.contains(why),
                "{raw}: {}",
                errors[0].message
            );
        }
    }

    #[test]
    fn plain_urls_are_exactly_those_the_parser_accepts() {
        let mut urls: Vec<String> = [
            "https://example.com/c/1",
            "http://a.b/",
            "https://e.com",
            "https://x/",
            "https://a-.b-c.d/~x_y.z-",
            "https://-a-.com/",
            "https://1.2.3.4/x",
            "https://999.1.1.1/",
            "https://a.1/",
            "https://a.0x1/",
            "https://xn--a.com/",
            "https://a.xn--b/",
            "https://ex..com/",
            "https://.e.com/",
            "https://e.com./",
            "https://E.com/",
            "HTTPS://e.com/",
            "https://e.com:80/",
            "https://e.com/a?b",
            "https://e.com/a#b",
            "https://e.com/%zz",
            "https:///e.com",
            "https://",
            "http:e.com",
            "https://e.com/a b",
            "https://e.com\\a",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every host of up to three labels over a small alphabet.
        let alphabet = ["a", "z", "0", "9", "-", "xn--", ""];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    urls.push(format!("https://{a}{b}.{c}{a}/p"));
                    urls.push(format!("http://{c}.{a}{b}.{b}{c}"));
                }
            }
        }
        let mut plain = 0;
        for u in &urls {
            if plain_http_url(u) {
                plain += 1;
                assert_eq!(url_parsed(u), Ok(u.clone()), "{u}");
            }
        }
        assert!(plain > 50, "{plain}");
    }

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        for raw in [
            "http://x.fr",
            "HTTP://x.fr",
            "HTTP://EXAMPLE.COM/Path",
            "HttpS://Example.COM/a?b=c#d",
            "https://x.fr:8443/a/../b?q=%41",
            "https://café.fr/été",
            "http://[::1]:8080",
        ] {
            assert_eq!(url_with(raw).as_deref(), Ok(raw), "{raw:?}");
        }
        assert_eq!(
            url_with(" https://x.fr/page\t").as_deref(),
            Ok("https://x.fr/page")
        );
        assert_eq!(url_with("").as_deref(), Ok(""));
        for raw in [
            "ftp://x.fr",
            "mailto:a@x.fr",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "www.x.fr",
            "x.fr/page",
            "http://",
            "https://",
            "http://exa mple.fr",
            // The parser would repair these; they are not sent repaired.
            "http:x.fr",
            "http:/x.fr",
            "http:///x.fr",
            "http:\\\\x.fr",
            "https://x.fr\\page",
            "https://x.fr/my page",
            "https://x.fr/a\tb",
            "https://x.fr/a\nb",
        ] {
            let errors = url_with(raw).expect_err(raw);
            assert_eq!(codes(&errors), [ErrorCode::UrlInvalid], "{raw:?}");
            assert!(errors[0].message.contains(&quote(raw.trim())), "{errors:?}");
        }
    }

    #[test]
    fn all_problems_are_listed_in_input_column_order() {
        let n = fr();
        let e33 = "é".repeat(33);
        // Input columns: url, lastname, date, phone, firstname.
        let layout = map(&[
            (Field::Url, 0),
            (Field::Lastname, 1),
            (Field::Date, 2),
            (Field::PhoneNumber, 3),
            (Field::Firstname, 4),
        ]);
        let row = Record::from_cells(7, &["ftp://x", &e33, "2023-02-29", "06 12", &e33]);
        assert_eq!(
            codes(&n.normalize(&layout, &row).unwrap_err()),
            [
                ErrorCode::UrlInvalid,
                ErrorCode::LastnameTooLong,
                ErrorCode::DateInvalid,
                ErrorCode::PhoneInvalid,
                ErrorCode::FirstnameTooLong,
            ]
        );
        let row = Record::from_cells(7, &["", "Martin", "2023-02-29", "", "Zoé"]);
        assert_eq!(
            codes(&n.normalize(&layout, &row).unwrap_err()),
            [ErrorCode::DateInvalid, ErrorCode::PhoneMissing]
        );
    }

    #[test]
    fn pass_through_fields_are_trimmed_and_absent_ones_empty() {
        let layout = map(&[
            (Field::Custom3, 0),
            (Field::PhoneNumber, 1),
            (Field::ContactId, 2),
            (Field::GroupId, 3),
            (Field::Alias, 4),
            (Field::Custom1, 5),
        ]);
        let row = Record::from_cells(2, &[" c3 ", "0612345678", " 42 ", "g1", " Bob ", "x"]);
        let c = fr().normalize(&layout, &row).unwrap();
        assert_eq!(
            c,
            Contact {
                phone: "+33612345678".into(),
                custom: ["x".into(), String::new(), "c3".into(), String::new()],
                contact_id: "42".into(),
                group_id: "g1".into(),
                alias: "Bob".into(),
                present: layout.fields(),
                ..Contact::default()
            }
        );
        assert!(c.present.contains(Field::Custom1));
        assert!(!c.present.contains(Field::Url));
    }

    #[test]
    fn default_region_is_checked_case_insensitively() {
        for good in ["FR", "fr", "Gb", " us "] {
            assert!(
                Normalizer::new(NormalizeOptions {
                    default_region: good.into(),
                    ..NormalizeOptions::default()
                })
                .is_ok()
            );
        }
        for bad in ["ZZ", "XX", "FRA", "F", "", "001", "33", "é"] {
            assert_eq!(
                Normalizer::new(NormalizeOptions {
                    default_region: bad.into(),
                    ..NormalizeOptions::default()
                })
                .map(|_| ()),
                Err(OptionsError::UnknownRegion(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn normalizer_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Normalizer>();
        let n = fr();
        let layout = map(&[(Field::PhoneNumber, 0)]);
        std::thread::scope(|s| {
            for raw in ["0612345678", "+44 7911 123456"] {
                let (n, layout) = (&n, &layout);
                s.spawn(move || {
                    assert!(n.normalize(layout, &Record::from_cells(2, &[raw])).is_ok());
                });
            }
        });
    }

    /// The number, and the notes, of a one-column row.
    fn noted(n: &Normalizer, raw: &str) -> Result<(String, String), Vec<RowError>> {
        let mut notes = String::new();
        n.normalize_noted(
            &map(&[(Field::PhoneNumber, 0)]),
            &Record::from_cells(2, &[raw]),
            &mut notes,
        )
        .map(|c| (c.phone, notes))
    }

    #[test]
    fn spreadsheet_wrappings_and_full_width_digits_are_read() {
        let n = fr();
        for raw in [
            "'0612345678",
            "' 06 12 34 56 78",
            "=\"0612345678\"",
            "=\"+33 6 12 34 56 78\"",
            "０６１２３４５６７８",
            "＋３３　６　１２　３４　５６　７８",
            "０６－１２－３４－５６－７８",
        ] {
            assert_eq!(
                noted(&n, raw),
                Ok(("+33612345678".into(), String::new())),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn an_extension_is_left_out_and_noted() {
        let n = fr();
        for raw in [
            "06 12 34 56 78 ext 12",
            "06 12 34 56 78 ext. 12",
            "06 12 34 56 78 EXT:12",
            "06 12 34 56 78 x12",
            "06 12 34 56 78 extension 12",
            "06 12 34 56 78 poste 12",
            "06 12 34 56 78 #12",
            "06 12 34 56 78 p. 12",
        ] {
            assert_eq!(
                noted(&n, raw),
                Ok((
                    "+33612345678".into(),
                    "extension 12 left out of the number (an SMS goes to the number itself)".into()
                )),
                "{raw:?}"
            );
        }
        // Not an extension: the message names what was found, and where.
        let errors = noted(&n, "06 12 34 56 78 ext").unwrap_err();
        assert_eq!(
            errors[0].message,
            "\"06 12 34 56 78 ext\" is not a valid phone number: it holds the letter \"e\" at \
             position 16 (only digits, a leading + and the separators space . - ( ) / are allowed)"
        );
        let errors = noted(&n, "06 12 34 56 7A").unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("the letter \"A\" at position 14"),
            "{errors:?}"
        );
    }

    #[test]
    fn messages_name_invisible_characters_in_words() {
        let errors = noted(&fr(), "06\u{a0}12\u{200b}").unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::PhoneInvalid]);
        assert_eq!(
            errors[0].message,
            "\"06 12\" (with a non-breaking space at position 3 and 1 more invisible character) \
             is not a valid phone number: it holds a zero-width space at position 6 (only \
             digits, a leading + and the separators space . - ( ) / are allowed)"
        );
        assert!(!errors[0].message.contains("\\u"), "{errors:?}");
    }

    #[test]
    fn a_cell_with_several_numbers_gives_its_first_mobile_one() {
        let n = fr();
        for (raw, want, others) in [
            (
                "+33 6 12 34 56 78 ::: +33 1 23 45 67 89",
                "+33612345678",
                "\"+33 1 23 45 67 89\"",
            ),
            (
                "+33 1 23 45 67 89 ::: +33 6 12 34 56 78",
                "+33612345678",
                "\"+33 1 23 45 67 89\"",
            ),
            (
                "01 23 45 67 89; 06 12 34 56 78",
                "+33612345678",
                "\"01 23 45 67 89\"",
            ),
            (
                "06 12 34 56 78 or 07 51 23 45 67",
                "+33612345678",
                "\"07 51 23 45 67\"",
            ),
            (
                "06 12 34 56 78 OU 07 51 23 45 67",
                "+33612345678",
                "\"07 51 23 45 67\"",
            ),
            (
                "06 12 34 56 78 / 07 51 23 45 67",
                "+33612345678",
                "\"07 51 23 45 67\"",
            ),
            // An invalid piece is ignored, and named.
            ("06 12 ::: 06 12 34 56 78", "+33612345678", "\"06 12\""),
        ] {
            assert_eq!(
                noted(&n, raw),
                Ok((
                    want.to_string(),
                    format!("other numbers in the cell ignored: {others}")
                )),
                "{raw:?}"
            );
        }
        // `/` splits only when every piece is a number on its own.
        assert_eq!(
            noted(&n, "06/12/34/56/78"),
            Ok(("+33612345678".into(), String::new()))
        );
        // Empty pieces are no numbers.
        assert_eq!(
            noted(&n, "06 12 34 56 78 ::: "),
            Ok(("+33612345678".into(), String::new()))
        );
        // No mobile among them: the first valid one.
        assert_eq!(
            noted(&n, "01 23 45 67 89 ::: 01 40 00 00 00").map(|p| p.0),
            Ok("+33123456789".into())
        );
        let errors = noted(&n, "06 12 ::: abc").unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::PhoneInvalid]);
        assert!(
            errors[0]
                .message
                .starts_with("none of the 2 numbers in the cell is valid: \"06 12\""),
            "{errors:?}"
        );
        assert_eq!(
            codes(&noted(&n, " ::: ").unwrap_err()),
            [ErrorCode::PhoneInvalid]
        );
        // --mobile-only: a cell of landlines is not mobile.
        let mobile = norm(NormalizeOptions {
            mobile_only: true,
            ..NormalizeOptions::default()
        });
        assert_eq!(
            codes(&noted(&mobile, "01 23 45 67 89 ::: 01 40 00 00 00").unwrap_err()),
            [ErrorCode::PhoneNotMobile]
        );
        assert_eq!(
            noted(&mobile, "01 23 45 67 89 ::: 06 12 34 56 78").map(|p| p.0),
            Ok("+33612345678".into())
        );
    }

    fn date_noted(n: &Normalizer, raw: &str) -> Result<(Contact, String), Vec<RowError>> {
        let mut notes = String::new();
        n.normalize_noted(
            &map(&[(Field::PhoneNumber, 0), (Field::Date, 1)]),
            &Record::from_cells(2, &["0612345678", raw]),
            &mut notes,
        )
        .map(|c| (c, notes))
    }

    #[test]
    fn placeholder_dates_are_left_out_and_noted() {
        let n = fr();
        for (raw, why) in [
            ("0/0/00", "means no date"),
            ("00/00/0000", "means no date"),
            ("0000-00-00", "means no date"),
            ("0", "means no date"),
            ("--12-25", "has no year"),
            ("--02-29", "has no year"),
            ("12/25", "has no year"),
            ("25/12", "has no year"),
        ] {
            let (c, notes) = date_noted(&n, raw).expect(raw);
            assert_eq!(c.date, "", "{raw:?}");
            assert!(
                !c.present.contains(Field::Date),
                "{raw:?}: left out, not cleared"
            );
            assert_eq!(notes, format!("date \"{raw}\" {why}: left out"));
        }
        // An empty cell is a present, empty date (it clears the field on update).
        let (c, notes) = date_noted(&n, "").unwrap();
        assert!(c.present.contains(Field::Date));
        assert_eq!(notes, "");
        for raw in ["--02-30", "--13-01", "13/13", "0/0/01"] {
            assert_eq!(
                codes(&date_noted(&n, raw).unwrap_err()),
                [ErrorCode::DateInvalid],
                "{raw:?}"
            );
        }
    }

    #[test]
    fn excel_serial_dates_follow_the_1900_system() {
        let n = fr().with_facts(ColumnFacts {
            serial_dates: true,
            ..ColumnFacts::default()
        });
        for (raw, want) in [
            ("1", "1900-01-01"),
            ("59", "1900-02-28"),
            ("61", "1900-03-01"),
            ("45123", "2023-07-16"),
            ("29221", "1980-01-01"),
            ("29221.75", "1980-01-01"),
            ("73415", "2100-12-31"),
        ] {
            let (c, notes) = date_noted(&n, raw).expect(raw);
            assert_eq!(c.date, want, "{raw:?}");
            assert_eq!(
                notes,
                format!("date \"{raw}\" read as an Excel serial date: {want}")
            );
        }
        let errors = date_noted(&n, "60").unwrap_err();
        assert!(errors[0].message.contains("29 February 1900"), "{errors:?}");
        // ISO dates still read as such.
        assert_eq!(date_noted(&n, "1980-01-01").unwrap().0.date, "1980-01-01");
        // Without the column-wide decision a serial is not guessed.
        let errors = date_noted(&fr(), "45123").unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("looks like an Excel serial date"),
            "{errors:?}"
        );
        let errors = date_noted(&fr(), "1980").unwrap_err();
        assert!(
            errors[0].message.ends_with("it looks like a year alone"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_serial_decision_needs_every_non_empty_date_to_be_one() {
        let layout = map(&[(Field::PhoneNumber, 0), (Field::Date, 1)]);
        let facts = |cells: &[&str]| {
            let mut f = FactsFinder::default();
            for c in cells {
                f.observe(&layout, &Record::from_cells(2, &["x", c]));
            }
            f.finish()
        };
        assert!(facts(&["45123", "", "29221", "0/0/00"]).serial_dates);
        assert!(!facts(&["45123", "1980-01-01"]).serial_dates);
        assert!(!facts(&["", ""]).serial_dates);
        assert!(!facts(&["1980", "1975"]).serial_dates);
        assert_eq!(
            facts(&["05/06/1980", "25/12/1980"]).date_order,
            DateOrder::DayFirst
        );
        assert_eq!(
            facts(&["05/06/1980", "12/25/1980"]).date_order,
            DateOrder::MonthFirst
        );
        assert_eq!(facts(&["05/06/1980"]).date_order, DateOrder::Unknown);
        assert_eq!(
            facts(&["25/12/1980", "12/25/1980"]).date_order,
            DateOrder::Unknown
        );
    }

    #[test]
    fn a_date_that_reads_day_first_names_the_format() {
        let message =
            |n: &Normalizer, raw: &str| date_noted(n, raw).unwrap_err()[0].message.clone();
        let n = fr();
        assert_eq!(
            message(&n, "25/12/1980"),
            "\"25/12/1980\" is not a real calendar date in an accepted format (YYYY-MM-DD): it \
             reads as 1980-12-25 with the day first; pass --date-format %d/%m/%Y to read such dates"
        );
        assert!(message(&n, "25.12.80").contains("--date-format %d.%m.%y"));
        assert!(
            message(&n, "12/25/1980").contains("with the month first; pass --date-format %m/%d/%Y")
        );
        let both = message(&n, "05/06/1980");
        assert!(
            both.contains("%d/%m/%Y if your dates put the day first"),
            "{both}"
        );
        assert!(
            both.contains("%m/%d/%Y if they put the month first"),
            "{both}"
        );
        let day_first = fr().with_facts(ColumnFacts {
            date_order: DateOrder::DayFirst,
            ..ColumnFacts::default()
        });
        assert!(message(&day_first, "05/06/1980").contains("1980-06-05 with the day first"));
        assert!(message(&n, "31/02/1980").ends_with("(YYYY-MM-DD)"));
    }

    #[test]
    fn names_are_nfc_before_counting() {
        let n = fr();
        let nfd = "e\u{301}".repeat(32);
        assert_eq!(nfd.chars().count(), 64);
        let c = names(&n, &nfd, "Zoe\u{301}").unwrap();
        assert_eq!(c.firstname, "é".repeat(32));
        assert_eq!(c.lastname, "Zoé");
        assert_eq!(
            codes(&names(&n, &"e\u{301}".repeat(33), "").unwrap_err()),
            [ErrorCode::FirstnameTooLong]
        );
        let row = Record::from_cells(2, &["0612345678", "Cafe\u{301}"]);
        let c = n
            .normalize(&map(&[(Field::PhoneNumber, 0), (Field::Custom2, 1)]), &row)
            .unwrap();
        assert_eq!(c.custom[1], "Café");
    }

    #[test]
    fn opt_out_cells_are_yes_no_or_refused_and_an_opted_out_row_needs_only_its_number() {
        let n = fr();
        let layout = map(&[
            (Field::PhoneNumber, 0),
            (Field::Firstname, 1),
            (Field::OptOut, 2),
        ]);
        let row = |phone: &str, first: &str, opt: &str| {
            n.normalize(&layout, &Record::from_cells(2, &[phone, first, opt]))
        };
        for yes in [
            "yes",
            "TRUE",
            "1",
            "x",
            "Oui",
            "Opted out",
            "opted-out",
            "STOP",
        ] {
            assert!(row("0612345678", "Ann", yes).unwrap().opt_out, "{yes}");
        }
        for no in ["", "no", "False", "0", "non", "Opted in", "Not specified"] {
            assert!(!row("0612345678", "Ann", no).unwrap().opt_out, "{no}");
        }
        assert_eq!(
            codes(&row("0612345678", "Ann", "maybe").unwrap_err()),
            [ErrorCode::OptOutInvalid]
        );
        // Nothing of it is sent: a name too long does not matter, the number does.
        let long = "a".repeat(40);
        assert!(row("0612345678", &long, "yes").unwrap().opt_out);
        assert_eq!(
            codes(&row("0612345678", &long, "no").unwrap_err()),
            [ErrorCode::FirstnameTooLong]
        );
        assert_eq!(
            codes(&row("06 12", "Ann", "yes").unwrap_err()),
            [ErrorCode::PhoneInvalid]
        );
    }

    #[test]
    fn truncate_names_notes_each_cut() {
        let n = norm(NormalizeOptions {
            truncate_names: true,
            ..NormalizeOptions::default()
        });
        let mut notes = String::new();
        let c = n
            .normalize_noted(
                &map(&[
                    (Field::PhoneNumber, 0),
                    (Field::Firstname, 1),
                    (Field::Lastname, 2),
                ]),
                &Record::from_cells(2, &["0612345678", &"a".repeat(40), "Zoé"]),
                &mut notes,
            )
            .unwrap();
        assert_eq!(c.firstname, "a".repeat(32));
        assert_eq!(
            notes,
            format!(
                "first name cut to 32 characters (it had 40): \"{}\"",
                "a".repeat(32)
            )
        );
    }

    #[test]
    fn an_empty_group_falls_back_to_the_default_group() {
        let layout = map(&[(Field::PhoneNumber, 0), (Field::GroupId, 1)]);
        let row = |g: &str| Record::from_cells(2, &["0612345678", g]);
        let with = norm(NormalizeOptions {
            default_group: Some("g0".into()),
            ..NormalizeOptions::default()
        });
        assert_eq!(with.normalize(&layout, &row(" ")).unwrap().group_id, "g0");
        assert_eq!(with.normalize(&layout, &row("g7")).unwrap().group_id, "g7");
        assert_eq!(fr().normalize(&layout, &row("g7")).unwrap().group_id, "g7");
        let errors = fr().normalize(&layout, &row("")).unwrap_err();
        assert_eq!(codes(&errors), [ErrorCode::GroupMissing]);
        // No group column: nothing to fall back from.
        let c = fr()
            .normalize(
                &map(&[(Field::PhoneNumber, 0)]),
                &Record::from_cells(2, &["0612345678"]),
            )
            .unwrap();
        assert_eq!(c.group_id, "");
    }
}
