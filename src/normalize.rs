//! Per-row validation and normalisation (SPEC §4): pure functions, no I/O.
//!
//! Phone numbers go through `rlibphonenumber` (a libphonenumber port). Before
//! that, one pass over the cell copies its digits into a stack buffer, drops
//! the separators SPEC §4 allows and turns a `00` prefix into `+`; any other
//! character (letters, commas, an Excel exponent) makes the number invalid, so
//! nothing that only looks like a number is silently accepted.

use std::fmt::Write as _;

use chrono::NaiveDate;
use chrono::format::{Item, Parsed, StrftimeItems};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType, Region};

use crate::codes::{ErrorCode, RowError};
use crate::columns::{ColumnMap, Field, FieldSet};
use crate::record::Record;

/// Most characters (Unicode scalar values) a first or last name may have.
pub const MAX_NAME_CHARS: usize = 32;

/// Most digits a phone number cell may hold (E.164 allows 15; room for a `00`
/// prefix and a national `0`).
const MAX_PHONE_DIGITS: usize = 20;

/// How much of a raw cell an error message quotes.
const MAX_QUOTED_CHARS: usize = 40;

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
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            default_region: "FR".into(),
            date_formats: Vec::new(),
            truncate_names: false,
            mobile_only: false,
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
    /// The fields the file has a column for: an empty cell in one of them
    /// means "clear it" on update, a missing column means "leave it".
    pub present: FieldSet,
}

/// A configuration problem found before any row is read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// `--default-region` is not a region libphonenumber knows.
    #[error("--default-region {0:?} is not a known ISO 3166 region code (e.g. FR, GB, US)")]
    UnknownRegion(String),
    /// A `--date-format` is not a usable strftime pattern.
    #[error("--date-format {0:?} is not a usable date pattern (e.g. %d/%m/%Y)")]
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
        })
    }

    /// The options this normaliser was built with.
    pub fn options(&self) -> &NormalizeOptions {
        &self.opts
    }

    /// The normalised contact, or every problem of the row in column order.
    pub fn normalize(&self, map: &ColumnMap, record: &Record) -> Result<Contact, Vec<RowError>> {
        // (column index, error); sorted by column at the end.
        let mut errors: Vec<(usize, RowError)> = Vec::new();
        let cell = |field: Field| -> Option<(usize, &str)> {
            let col = map.get(field)?;
            Some((col, record.get(col)?.trim()))
        };
        let text = |field: Field| cell(field).map_or_else(String::new, |(_, s)| s.to_string());

        let mut contact = Contact {
            present: map.fields(),
            ..Contact::default()
        };

        match cell(Field::PhoneNumber) {
            Some((col, raw)) => match self.phone(raw) {
                Ok(e164) => contact.phone = e164,
                Err(e) => errors.push((col, e)),
            },
            None => errors.push((
                map.get(Field::PhoneNumber).unwrap_or(0),
                RowError::new(ErrorCode::PhoneMissing, "the phone number is missing"),
            )),
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
            if let Some((col, raw)) = cell(field) {
                match self.name(raw, code, what) {
                    Ok(name) => *out = name.to_string(),
                    Err(e) => errors.push((col, e)),
                }
            }
        }

        if let Some((col, raw)) = cell(Field::Date) {
            match self.date(raw) {
                Ok(date) => contact.date = date,
                Err(e) => errors.push((col, e)),
            }
        }

        if let Some((col, raw)) = cell(Field::Url) {
            match url(raw) {
                Ok(url) => contact.url = url,
                Err(e) => errors.push((col, e)),
            }
        }

        if !errors.is_empty() {
            errors.sort_by_key(|(col, _)| *col);
            return Err(errors.into_iter().map(|(_, e)| e).collect());
        }

        contact.custom = [
            text(Field::Custom1),
            text(Field::Custom2),
            text(Field::Custom3),
            text(Field::Custom4),
        ];
        contact.contact_id = text(Field::ContactId);
        contact.group_id = text(Field::GroupId);
        contact.alias = text(Field::Alias);
        Ok(contact)
    }

    /// The row's number in E.164 when its phone cell alone is valid (for
    /// reporting rows that other fields made invalid).
    pub fn phone_of(&self, map: &ColumnMap, record: &Record) -> Option<String> {
        let raw = record.get(map.get(Field::PhoneNumber)?)?.trim();
        self.phone(raw).ok()
    }

    /// The E.164 form of a trimmed phone cell.
    fn phone(&self, raw: &str) -> Result<String, RowError> {
        if raw.is_empty() {
            return Err(RowError::new(
                ErrorCode::PhoneMissing,
                "the phone number is empty",
            ));
        }
        let mut buf = [0u8; MAX_PHONE_DIGITS + 1];
        let cleaned = match clean_phone(raw, &mut buf) {
            Ok(c) => c,
            Err(why) => {
                return Err(RowError::new(
                    ErrorCode::PhoneInvalid,
                    format!("{} is not a valid phone number: {why}", quote(raw)),
                ));
            }
        };
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
        if self.opts.mobile_only
            && !matches!(
                kind,
                PhoneNumberType::Mobile | PhoneNumberType::FixedLineOrMobile
            )
        {
            return Err(RowError::new(
                ErrorCode::PhoneNotMobile,
                format!(
                    "{} is a {} number, not a mobile number (--mobile-only)",
                    quote(raw),
                    type_name(kind)
                ),
            ));
        }
        Ok(PHONE_NUMBER_UTIL
            .format(&number, PhoneNumberFormat::E164)
            .into_owned())
    }

    /// A trimmed name, cut to 32 characters with `--truncate-names`.
    fn name<'a>(&self, raw: &'a str, code: ErrorCode, what: &str) -> Result<&'a str, RowError> {
        // At most 4 bytes a char: a short byte length settles it without counting.
        if raw.len() <= MAX_NAME_CHARS {
            return Ok(raw);
        }
        match raw.char_indices().nth(MAX_NAME_CHARS) {
            None => Ok(raw),
            Some((cut, _)) if self.opts.truncate_names => Ok(raw[..cut].trim_end()),
            Some(_) => Err(RowError::new(
                code,
                format!(
                    "{what} {} has {} characters, more than the {MAX_NAME_CHARS} allowed \
                     (--truncate-names cuts it instead)",
                    quote(raw),
                    raw.chars().count()
                ),
            )),
        }
    }

    /// A trimmed date cell as `YYYY-MM-DD` (empty stays empty); the year
    /// must lie in 1900–2100.
    fn date(&self, raw: &str) -> Result<String, RowError> {
        if raw.is_empty() {
            return Ok(String::new());
        }
        if let Some(date) = iso_date_fast(raw)
            && year_in_range(date)
        {
            return Ok(iso(date));
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
                    return Ok(iso(date));
                }
                out_of_range.get_or_insert((date, f));
            }
        }
        let message = match out_of_range {
            Some((date, f)) => year_message(raw, date, &f.pattern),
            None => format!(
                "{} is not a real calendar date in an accepted format ({})",
                quote(raw),
                self.date_formats_shown
            ),
        };
        Err(RowError::new(ErrorCode::DateInvalid, message))
    }
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

/// A trimmed URL cell, checked to be an absolute http(s) URL with a host and
/// returned exactly as written: the provider stores what the user wrote.
fn url(raw: &str) -> Result<String, RowError> {
    if raw.is_empty() {
        return Ok(String::new());
    }
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
        Err(e) => return Err(bad(&e.to_string())),
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

/// Copies a trimmed phone cell into `buf` without separators, with a `00`
/// prefix turned into `+`; or says why it cannot be a phone number.
fn clean_phone<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str, &'static str> {
    if looks_scientific(raw) {
        return Err(
            "it looks like a number a spreadsheet turned into scientific notation, \
                    which loses digits (format the column as text)",
        );
    }
    let mut n = 0;
    for c in raw.chars() {
        let byte = match c {
            '0'..='9' => c as u8,
            '+' if n == 0 => b'+',
            ' ' | '.' | '-' | '(' | ')' | '/' => continue,
            // Spreadsheets group digits with (narrow) no-break spaces and tabs.
            c if c.is_whitespace() => continue,
            '+' => return Err("a + may only start the number"),
            _ => {
                return Err(
                    "only digits, a leading + and the separators space . - ( ) / \
                            are allowed",
                );
            }
        };
        if n == buf.len() {
            return Err("it has too many digits");
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
    let cleaned = std::str::from_utf8(&buf[start..n]).map_err(|_| "it is not text")?;
    if !cleaned.bytes().any(|b| b.is_ascii_digit()) {
        return Err("it has no digits");
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

/// A raw cell in double quotes for a message, shortened when long.
fn quote(raw: &str) -> String {
    match raw.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{raw:?}"),
        Some((cut, _)) => format!("{:?}…", &raw[..cut]),
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
            // Letters, extensions, stray signs.
            "06 12 34 56 7A",
            "06 12 34 56 78 ext 12",
            "0612345678;0687654321",
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
}
