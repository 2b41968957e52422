//! Contact fields and the mapping from an input file's header to them (SPEC §3).
//!
//! Two rules guard the provider's address book against a wrong column: a
//! contact id is only taken from a header that names it without doubt (never
//! a CRM's own `Id`), and when several headers could be the phone number a
//! mobile-labelled one must stand out, else the run stops and asks for `--map`.
//!
//! Besides the aliases of SPEC §3, headers are matched against a table of
//! real export layouts ([`EXPORT_LAYOUTS`], one entry per product), which
//! docs/spreadsheets.md shows. A labelled layout (Google Contacts' numbered
//! `Phone N - Label` / `Phone N - Value` columns) is read as one phone field:
//! each row's mobile number among them ([`PhoneSlot`]).

use std::fmt;

/// A contact field the tool understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The phone number (required).
    PhoneNumber,
    /// First name.
    Firstname,
    /// Last name.
    Lastname,
    /// A date, e.g. a birthday.
    Date,
    /// A web address.
    Url,
    /// Custom field 1.
    Custom1,
    /// Custom field 2.
    Custom2,
    /// Custom field 3.
    Custom3,
    /// Custom field 4.
    Custom4,
    /// The provider's id of an existing contact.
    ContactId,
    /// SMS Partner group id.
    GroupId,
    /// Mobivate alias.
    Alias,
    /// The person asked for no SMS (a yes/no cell): the row is never sent,
    /// and mirror mode deletes its contact.
    OptOut,
}

impl Field {
    /// Number of fields.
    pub const COUNT: usize = 13;
    /// Every field, in canonical order.
    pub const ALL: [Field; Field::COUNT] = [
        Field::PhoneNumber,
        Field::Firstname,
        Field::Lastname,
        Field::Date,
        Field::Url,
        Field::Custom1,
        Field::Custom2,
        Field::Custom3,
        Field::Custom4,
        Field::ContactId,
        Field::GroupId,
        Field::Alias,
        Field::OptOut,
    ];

    /// The canonical field name, as in SPEC §3 and `--map`.
    pub fn name(self) -> &'static str {
        match self {
            Field::PhoneNumber => "phoneNumber",
            Field::Firstname => "firstname",
            Field::Lastname => "lastname",
            Field::Date => "date",
            Field::Url => "url",
            Field::Custom1 => "custom1",
            Field::Custom2 => "custom2",
            Field::Custom3 => "custom3",
            Field::Custom4 => "custom4",
            Field::ContactId => "contactId",
            Field::GroupId => "groupId",
            Field::Alias => "alias",
            Field::OptOut => "optOut",
        }
    }

    /// The field whose canonical name or alias matches `header` (after folding).
    pub fn from_header(header: &str) -> Option<Field> {
        let key = fold(header);
        FOLDED_NAMES
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, f)| *f)
    }

    /// Header names that also map to this field, besides its canonical name.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::PhoneNumber => &[
                "phone",
                "phone number",
                "mobile",
                "mobile number",
                "msisdn",
                "tel",
                "telephone",
                "téléphone",
                "portable",
                "gsm",
                "numero",
                "numéro",
                "numéro de téléphone",
                "cell",
                "sms",
            ],
            Field::Firstname => &["first name", "given name", "prénom", "forename"],
            Field::Lastname => &[
                "last name",
                "surname",
                "family name",
                "nom",
                "nom de famille",
            ],
            Field::Date => &["birthday", "birth date", "date de naissance", "dob"],
            Field::Url => &["website", "site", "lien", "link", "web", "web page"],
            // Never a bare `id`: CRMs (Salesforce, HubSpot, Mobivate's own
            // records) export their ids under it, and taking one for the
            // provider's id would rewrite unrelated contacts. `contact_id` and
            // `contactId` (SMS Partner's name, and the report's column) fold
            // to the same key.
            Field::ContactId => &["contact id"],
            Field::GroupId => &["group", "group id", "groupe"],
            Field::OptOut => OPT_OUT_HEADERS,
            Field::Custom1 | Field::Custom2 | Field::Custom3 | Field::Custom4 | Field::Alias => &[],
        }
    }

    /// The field with this canonical name (for `--map FIELD=HEADER`), case-insensitively.
    pub fn from_name(name: &str) -> Option<Field> {
        let key = fold(name);
        Field::ALL.into_iter().find(|f| fold(f.name()) == key)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Headers that map to `optOut` (matched folded, like every alias): what
/// real exports call an SMS opt-out. Never an email opt-out (`Unsubscribed`,
/// `EMAIL_BLACKLISTED`, `HasOptedOutOfEmail`): someone who wants no email may
/// still want texts. docs/usage.md lists them; a test keeps the two in step.
pub(crate) const OPT_OUT_HEADERS: &[&str] = &[
    "opt out",
    "opted out",
    "sms opt out",
    "sms opted out",
    "opted out of sms",
    "opted out of all sms",
    "sms unsubscribed",
    "unsubscribed from sms",
    "stop sms",
    "sms stop",
    "sms blacklisted",
    "blacklisted sms",
    "do not text",
    "do not sms",
    "sms désinscrit",
    "désinscrit sms",
    "opposition sms",
    "refus sms",
];

/// Every name a header can match, folded once (a header of 100,000 columns
/// would otherwise fold each alias 100,000 times): canonical names and
/// aliases first, then the export layouts' names, in the order they win.
static FOLDED_NAMES: std::sync::LazyLock<Vec<(String, Field)>> = std::sync::LazyLock::new(|| {
    let mut names = Vec::new();
    for f in Field::ALL {
        names.push((fold(f.name()), f));
        names.extend(f.aliases().iter().map(|a| (fold(a), f)));
    }
    for l in EXPORT_LAYOUTS {
        for (h, f) in l.read {
            if !h.contains(" N ") {
                names.push((fold(h), *f));
            }
        }
    }
    names
});

/// Lower-cases and drops accents, spaces, `_` and `-`, so `Prénom` matches `prenom`.
pub(crate) fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-' && *c != '.')
        .flat_map(char::to_lowercase)
        .map(strip_accent)
        .collect()
}

/// The unaccented Latin letter for the accented letters French, Spanish and
/// German headers use; any other character unchanged.
fn strip_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// How one product writes its contacts export, and which of its columns are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExportLayout {
    /// The product and the export it comes from.
    pub product: &'static str,
    /// How the product writes the file (encoding, delimiter, quoting).
    pub file: &'static str,
    /// Headers read, and the field each gives (`N` stands for 1, 2, 3 …).
    pub read: &'static [(&'static str, Field)],
    /// Phone columns of the layout that are not read: the mobile one wins.
    pub passed_over: &'static [&'static str],
}

/// The export layouts of the products customers' files come from; their
/// headers are matched like aliases, so each is read with no `--map`.
pub(crate) const EXPORT_LAYOUTS: &[ExportLayout] = &[
    ExportLayout {
        product: "Outlook (File > Export > CSV)",
        file: "Windows-1252, comma, CRLF, every cell quoted; `0/0/00` for no birthday",
        read: &[
            ("First Name", Field::Firstname),
            ("Last Name", Field::Lastname),
            ("Mobile Phone", Field::PhoneNumber),
            ("Birthday", Field::Date),
            ("Web Page", Field::Url),
        ],
        passed_over: &[
            "Business Phone",
            "Business Phone 2",
            "Home Phone",
            "Home Phone 2",
            "Company Main Phone",
            "Other Phone",
            "Primary Phone",
        ],
    },
    ExportLayout {
        product: "Google Contacts (Export > Google CSV)",
        file: "UTF-8, comma; several numbers of one kind in one cell, joined by ` ::: `; \
               yearless birthdays as `--MM-DD`",
        read: &[
            ("First Name", Field::Firstname),
            ("Last Name", Field::Lastname),
            ("Birthday", Field::Date),
            ("Phone N - Value", Field::PhoneNumber),
            ("Website 1 - Value", Field::Url),
        ],
        passed_over: &[],
    },
    ExportLayout {
        product: "Google Contacts, older exports (Google CSV before 2023)",
        file: "UTF-8 or UTF-16 with a BOM, comma; `Phone N - Type` instead of `Phone N - Label`, \
               `* Mobile` for the primary mobile",
        read: &[
            ("Given Name", Field::Firstname),
            ("Family Name", Field::Lastname),
            ("Birthday", Field::Date),
            ("Phone N - Value", Field::PhoneNumber),
            ("Website 1 - Value", Field::Url),
        ],
        passed_over: &[],
    },
    ExportLayout {
        product: "HubSpot (Contacts > Export)",
        file: "UTF-8, comma",
        read: &[
            ("First Name", Field::Firstname),
            ("Last Name", Field::Lastname),
            ("Mobile Phone Number", Field::PhoneNumber),
            ("Date of birth", Field::Date),
            ("Website URL", Field::Url),
        ],
        passed_over: &["Phone Number"],
    },
    ExportLayout {
        product: "Salesforce (Data Export / Data Loader, Contact)",
        file: "UTF-8, comma, every cell quoted; API field names as headers",
        read: &[
            ("FirstName", Field::Firstname),
            ("LastName", Field::Lastname),
            ("MobilePhone", Field::PhoneNumber),
            ("Birthdate", Field::Date),
        ],
        passed_over: &["Phone", "HomePhone", "OtherPhone"],
    },
    ExportLayout {
        product: "Brevo, formerly Sendinblue (Contacts > Export)",
        file: "UTF-8, semicolon; attribute names as headers (NOM, PRENOM in French accounts); \
               numbers with their country code",
        read: &[
            ("FIRSTNAME", Field::Firstname),
            ("LASTNAME", Field::Lastname),
            ("PRENOM", Field::Firstname),
            ("NOM", Field::Lastname),
            ("SMS", Field::PhoneNumber),
        ],
        passed_over: &[],
    },
    ExportLayout {
        product: "Mailchimp (Audience > Export)",
        file: "UTF-8, comma; birthdays as `MM/DD`, without a year",
        read: &[
            ("First Name", Field::Firstname),
            ("Last Name", Field::Lastname),
            ("Phone Number", Field::PhoneNumber),
            ("Birthday", Field::Date),
        ],
        passed_over: &[],
    },
    ExportLayout {
        product: "Excel, French (CSV (séparateur : point-virgule))",
        file: "Windows-1252, semicolon, CRLF; dates as `31/12/1980` (pass `--date-format %d/%m/%Y`)",
        read: &[
            ("Prénom", Field::Firstname),
            ("Nom", Field::Lastname),
            ("Téléphone portable", Field::PhoneNumber),
            ("Date de naissance", Field::Date),
        ],
        passed_over: &["Téléphone"],
    },
    ExportLayout {
        product: "Excel, English (CSV UTF-8, or Unicode Text)",
        file: "UTF-8 with a BOM, comma, CRLF — or, as Unicode Text, UTF-16 with a BOM and tabs; \
               dates as `12/31/1980` (pass `--date-format %m/%d/%Y`) or serial numbers",
        read: &[
            ("First Name", Field::Firstname),
            ("Last Name", Field::Lastname),
            ("Mobile", Field::PhoneNumber),
            ("Birthday", Field::Date),
        ],
        passed_over: &["Phone"],
    },
];

/// The layouts table of docs/spreadsheets.md, in Markdown.
#[cfg(test)]
fn layouts_table() -> String {
    let mut out = String::from(
        "| product | file as the product writes it | columns read | phone columns passed over |\n\
         |---|---|---|---|\n",
    );
    for l in EXPORT_LAYOUTS {
        let read: Vec<String> = l.read.iter().map(|(h, f)| format!("`{h}` → {f}")).collect();
        let passed: Vec<String> = l.passed_over.iter().map(|h| format!("`{h}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            l.product,
            l.file,
            read.join(", "),
            if passed.is_empty() {
                "—".to_string()
            } else {
                passed.join(", ")
            }
        ));
    }
    out
}

/// A set of fields, e.g. those the input file has a column for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Whether `field` is in the set.
    pub(crate) fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u16) != 0
    }

    /// Adds `field`.
    pub(crate) fn insert(&mut self, field: Field) {
        self.0 |= 1 << field as u16;
    }

    /// Removes `field`.
    pub(crate) fn remove(&mut self, field: Field) {
        self.0 &= !(1 << field as u16);
    }
}

/// One numbered phone of a labelled layout (Google Contacts' `Phone 1 -
/// Label` / `Phone 1 - Value`): the column saying what kind of number it is,
/// and the column holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhoneSlot {
    /// The label (or, in older exports, type) column, if the file has one.
    pub label: Option<usize>,
    /// The value column.
    pub value: usize,
}

/// Which input column holds each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    index: [Option<usize>; Field::COUNT],
    /// The numbered phones of a labelled layout, in order; empty otherwise.
    phone_slots: Vec<PhoneSlot>,
    /// The fields whose column `--map` named.
    explicit: FieldSet,
    /// How the phone column was chosen among several, for the log.
    phone_choice: Option<String>,
}

/// Why a header cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    /// No column maps to phoneNumber.
    #[error(
        "no phone number column: the header has none of phoneNumber, phone, mobile, msisdn, tel, telephone, portable, gsm, cell, numero (use --map phoneNumber=HEADER)"
    )]
    NoPhoneColumn,
    /// Several headers could be the phone number and none stands out as the
    /// mobile one (or more than one does).
    #[error("{}", ambiguous_phone_message(candidates, *mobile))]
    AmbiguousPhone {
        /// The headers in question, in file order.
        candidates: Vec<String>,
        /// Whether they are all labelled mobile (else none is).
        mobile: bool,
    },
    /// `--map` names a header that is not in the file.
    #[error(
        "--map {field}={header}: the file has no column named {}; its columns are {}",
        crate::words::quote(header),
        some_columns(columns)
    )]
    UnknownHeader {
        /// The field being mapped.
        field: Field,
        /// The header named.
        header: String,
        /// The file's columns, for the message.
        columns: Vec<String>,
    },
}

/// The columns a header leaves unused, to be named in a warning.
pub(crate) type Ignored = Vec<String>;

impl ColumnMap {
    /// Maps `headers` to fields.
    ///
    /// Explicit `overrides` (`--map`) come first; the last one for a field
    /// wins, and an empty header unmaps the field: it is then never
    /// auto-mapped. The phone column is chosen among every header that could
    /// be one ([`choose_phone`]); the choice is logged when there was one to
    /// make. Every other field takes the first column whose name matches it.
    pub fn resolve(
        headers: &[&str],
        overrides: &[(Field, String)],
    ) -> Result<(ColumnMap, Ignored), MapError> {
        // None: not named by --map; Some(None): unmapped; Some(Some(pos)): named.
        let mut named: [Option<Option<usize>>; Field::COUNT] = [None; Field::COUNT];
        for (field, header) in overrides {
            named[*field as usize] = if header.trim().is_empty() {
                Some(None)
            } else {
                Some(Some(find_header(headers, header).ok_or_else(|| {
                    MapError::UnknownHeader {
                        field: *field,
                        header: header.clone(),
                        columns: headers.iter().map(|h| h.to_string()).collect(),
                    }
                })?))
            };
        }
        let mut map = ColumnMap::default();
        let mut used = vec![false; headers.len()];
        for field in Field::ALL {
            if let Some(Some(pos)) = named[field as usize] {
                map.index[field as usize] = Some(pos);
                map.explicit.insert(field);
                used[pos] = true;
            }
        }
        if named[Field::PhoneNumber as usize].is_none() {
            map.map_phone(headers, &mut used)?;
        }
        for (pos, header) in headers.iter().enumerate() {
            if used[pos] {
                continue;
            }
            if let Some(field) = Field::from_header(header)
                && field != Field::PhoneNumber
                && named[field as usize].is_none()
                && map.index[field as usize].is_none()
            {
                map.index[field as usize] = Some(pos);
                used[pos] = true;
            }
        }
        if map.index[Field::PhoneNumber as usize].is_none() {
            return Err(MapError::NoPhoneColumn);
        }
        let ignored = headers
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(h, _)| h.to_string())
            .collect();
        Ok((map, ignored))
    }

    /// Picks the phone column (or the labelled phone layout) among the
    /// headers not yet `used` by `--map`, marking what it takes as used.
    fn map_phone(&mut self, headers: &[&str], used: &mut [bool]) -> Result<(), MapError> {
        let slots = phone_slots(headers);
        let mut in_slots = vec![false; headers.len()];
        for slot in &slots {
            in_slots[slot.value] = true;
            if let Some(label) = slot.label {
                in_slots[label] = true;
            }
        }
        let free: Vec<(usize, &str)> = headers
            .iter()
            .enumerate()
            .filter(|(pos, _)| !used[*pos] && !in_slots[*pos])
            .map(|(pos, h)| (pos, *h))
            .collect();
        let choice = choose_phone(&free)?;
        if !slots.is_empty() {
            let slot_names = || slots.iter().map(|s| headers[s.value].trim().to_string());
            match &choice {
                PhoneChoice::None => {
                    self.phone_choice = Some(format!(
                        "phone numbers are read from the labelled columns {}: in each row \
                         the mobile number (by its label and by the number itself), else \
                         the first valid one; the others are noted in the report",
                        quoted_list(slots.iter().map(|s| headers[s.value]))
                    ));
                    self.index[Field::PhoneNumber as usize] = Some(slots[0].value);
                    self.phone_slots = slots.clone();
                }
                PhoneChoice::Only(pos) if phone_label(headers[*pos]) != PhoneLabel::Mobile => {
                    return Err(MapError::AmbiguousPhone {
                        candidates: std::iter::once(headers[*pos].trim().to_string())
                            .chain(slot_names())
                            .collect(),
                        mobile: false,
                    });
                }
                // A column labelled mobile wins over the labelled layout too.
                _ => {}
            }
            for (pos, in_slot) in in_slots.iter().enumerate() {
                used[pos] |= *in_slot;
            }
        }
        match choice {
            PhoneChoice::None => {}
            PhoneChoice::Only(pos) => {
                self.index[Field::PhoneNumber as usize] = Some(pos);
                used[pos] = true;
            }
            PhoneChoice::Mobile {
                chosen,
                passed_over,
            } => {
                self.phone_choice = Some(format!(
                    "phone numbers are read from column {}, the one labelled mobile; \
                     passed over: {} (--map phoneNumber=HEADER picks another)",
                    crate::words::quote(headers[chosen].trim()),
                    quoted_list(passed_over.iter().map(|&p| headers[p]))
                ));
                self.index[Field::PhoneNumber as usize] = Some(chosen);
                // Passed-over candidates are explained by that line, not
                // named again as columns with no matching field.
                for pos in std::iter::once(chosen).chain(passed_over) {
                    used[pos] = true;
                }
            }
        }
        Ok(())
    }

    /// The numbered phones of a labelled layout, in order (empty when the
    /// phone number has one column, [`ColumnMap::get`]).
    pub(crate) fn phone_slots(&self) -> &[PhoneSlot] {
        &self.phone_slots
    }

    /// How the phone column was chosen among several candidates, when it was.
    pub(crate) fn phone_choice(&self) -> Option<&str> {
        self.phone_choice.as_deref()
    }

    /// Whether `field`'s column was named by `--map` (false when it has none):
    /// a contact id the user pointed at, rather than one found by name.
    pub(crate) fn explicit(&self, field: Field) -> bool {
        self.explicit.contains(field) && self.get(field).is_some()
    }

    /// A map from explicit positions, for tests and callers that know the layout.
    pub fn from_positions(pairs: &[(Field, usize)]) -> ColumnMap {
        let mut map = ColumnMap::default();
        for (f, i) in pairs {
            map.index[*f as usize] = Some(*i);
        }
        map
    }

    /// The fields that have a column.
    pub(crate) fn fields(&self) -> FieldSet {
        let mut set = FieldSet::default();
        for f in Field::ALL {
            if self.get(f).is_some() {
                set.insert(f);
            }
        }
        set
    }

    /// The column holding `field`, if any.
    pub(crate) fn get(&self, field: Field) -> Option<usize> {
        self.index[field as usize]
    }
}

/// The position of `wanted` among `headers`: an exact match (trimmed) first,
/// else one equal after folding.
fn find_header(headers: &[&str], wanted: &str) -> Option<usize> {
    let key = fold(wanted);
    headers
        .iter()
        .position(|h| h.trim() == wanted.trim())
        .or_else(|| headers.iter().position(|h| fold(h) == key))
}

/// The numbered phones of a labelled layout: `Phone N - Value` columns, each
/// with its `Phone N - Label` (or `Phone N - Type`) column, in order of N.
pub(crate) fn phone_slots(headers: &[&str]) -> Vec<PhoneSlot> {
    // (N, position) of each `Phone N - <suffix>` header.
    let numbered = |suffixes: &[&str]| -> Vec<(u32, usize)> {
        headers
            .iter()
            .enumerate()
            .filter_map(|(pos, h)| {
                let key: String = fold(h).chars().filter(|c| c.is_alphanumeric()).collect();
                let rest = key.strip_prefix("phone")?;
                let digits =
                    rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let suffix = &rest[digits..];
                suffixes
                    .contains(&suffix)
                    .then(|| rest[..digits].parse().ok().map(|n| (n, pos)))
                    .flatten()
            })
            .collect()
    };
    let labels = numbered(&["label", "type"]);
    let mut values = numbered(&["value"]);
    values.sort_by_key(|(n, _)| *n);
    values
        .into_iter()
        .map(|(n, value)| PhoneSlot {
            label: labels.iter().find(|(m, _)| *m == n).map(|(_, p)| *p),
            value,
        })
        .collect()
}

/// Longest folded header (bytes) that is looked at as a possible phone column.
const MAX_PHONE_HEADER: usize = 80;

/// Words that make a header a phone number column (folded).
const PHONE_WORDS: &[&str] = &[
    "phone",
    "telephone",
    "tel",
    "numero",
    "mobile",
    "portable",
    "cell",
    "cellphone",
    "gsm",
    "msisdn",
    "sms",
];

/// Phone words that say the number is a mobile one. MSISDN is the number of
/// a SIM card, and an SMS column holds numbers that take texts, so both count
/// as mobile.
const MOBILE_WORDS: &[&str] = &[
    "mobile",
    "portable",
    "cell",
    "cellphone",
    "gsm",
    "msisdn",
    "sms",
];

/// Words that may stand beside a phone word in a compound header (`Home
/// Phone`, `Numéro de téléphone`, `Tel. fixe`) without making it something
/// else. A header with any other word (`Phone Type`, `Phone Extension`,
/// `Numéro client`) is not a phone column.
const PHONE_QUALIFIERS: &[&str] = &[
    "number",
    "no",
    "num",
    "nr",
    "de",
    "du",
    "contact",
    "main",
    "primary",
    "secondary",
    "other",
    "alternate",
    "alt",
    "home",
    "work",
    "office",
    "business",
    "company",
    "personal",
    "private",
    "direct",
    "landline",
    "fixed",
    "fixe",
    "domicile",
    "maison",
    "bureau",
    "travail",
    "pro",
    "professionnel",
    "professionnelle",
    "perso",
    "personnel",
    "personnelle",
    "principal",
    "principale",
    "secondaire",
    "autre",
];

/// What a header says about being the phone number column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneLabel {
    /// It is not a phone number column.
    NotPhone,
    /// A phone column with nothing saying it is a mobile.
    Phone,
    /// A phone column labelled mobile (`Mobile Phone`, `Téléphone portable`).
    Mobile,
}

/// Whether `header` could be the phone number column, and whether it is
/// labelled mobile.
///
/// A candidate is an alias of `phoneNumber`, or a header made only of phone
/// words (phone, tel, telephone, numero, mobile, portable, cell, gsm,
/// msisdn …), words that qualify them (number, home, work, fixe, de …) and
/// digits, with at least one phone word. Words are found after folding and
/// dropping punctuation, so `MobilePhone`, `mobile_phone`, `Mobile Phone` and
/// `Phone (Mobile)` read alike.
pub(crate) fn phone_label(header: &str) -> PhoneLabel {
    // Punctuation separates words like a space does: `Phone (Mobile)`, `Tel.`.
    let key: String = fold(header)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    let alias = Field::from_header(header) == Some(Field::PhoneNumber);
    match segment(&key) {
        Some(words) if words.iter().any(|w| PHONE_WORDS.contains(w)) => {
            if words.iter().any(|w| MOBILE_WORDS.contains(w)) {
                PhoneLabel::Mobile
            } else {
                PhoneLabel::Phone
            }
        }
        _ if alias => PhoneLabel::Phone,
        _ => PhoneLabel::NotPhone,
    }
}

/// Splits a folded header into phone words, qualifiers and digit runs, or
/// `None` when some part of it is none of those.
fn segment(key: &str) -> Option<Vec<&str>> {
    // The split is quadratic in the length; no phone header is this long.
    if key.is_empty() || key.len() > MAX_PHONE_HEADER {
        return None;
    }
    // best[i]: the start of the last word of a split of key[..i], if any.
    let mut best: Vec<Option<usize>> = vec![None; key.len() + 1];
    best[0] = Some(0);
    for end in 1..=key.len() {
        if !key.is_char_boundary(end) {
            continue;
        }
        best[end] = (0..end).rev().find(|&start| {
            best[start].is_some() && key.is_char_boundary(start) && is_phone_token(&key[start..end])
        });
    }
    let mut words = Vec::new();
    let mut end = key.len();
    while end > 0 {
        let start = best[end]?;
        words.push(&key[start..end]);
        end = start;
    }
    words.reverse();
    Some(words)
}

/// A phone word, a qualifier, or a run of digits.
fn is_phone_token(s: &str) -> bool {
    PHONE_WORDS.contains(&s)
        || PHONE_QUALIFIERS.contains(&s)
        || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// How the phone number column was found among the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PhoneChoice {
    /// No header could be the phone number.
    None,
    /// Exactly one header could be: this position.
    Only(usize),
    /// Several could; the one labelled mobile was chosen.
    Mobile {
        /// The chosen position.
        chosen: usize,
        /// The other candidates' positions, in file order.
        passed_over: Vec<usize>,
    },
}

/// Chooses the phone number column among `(position, header)` pairs: the
/// only candidate, else the only mobile-labelled one; several candidates with
/// no single mobile one is [`MapError::AmbiguousPhone`].
pub(crate) fn choose_phone(headers: &[(usize, &str)]) -> Result<PhoneChoice, MapError> {
    let candidates: Vec<(usize, &str, PhoneLabel)> = headers
        .iter()
        .map(|&(pos, h)| (pos, h, phone_label(h)))
        .filter(|(_, _, label)| *label != PhoneLabel::NotPhone)
        .collect();
    let mobile: Vec<&(usize, &str, PhoneLabel)> = candidates
        .iter()
        .filter(|(_, _, label)| *label == PhoneLabel::Mobile)
        .collect();
    let names = |list: Vec<&str>| list.into_iter().map(|h| h.trim().to_string()).collect();
    match (candidates.as_slice(), mobile.as_slice()) {
        ([], _) => Ok(PhoneChoice::None),
        ([(pos, _, _)], _) => Ok(PhoneChoice::Only(*pos)),
        (_, [(chosen, _, _)]) => Ok(PhoneChoice::Mobile {
            chosen: *chosen,
            passed_over: candidates
                .iter()
                .map(|(pos, _, _)| *pos)
                .filter(|pos| pos != chosen)
                .collect(),
        }),
        (_, []) => Err(MapError::AmbiguousPhone {
            candidates: names(candidates.iter().map(|(_, h, _)| *h).collect()),
            mobile: false,
        }),
        (_, _) => Err(MapError::AmbiguousPhone {
            candidates: names(mobile.iter().map(|(_, h, _)| *h).collect()),
            mobile: true,
        }),
    }
}

/// The message of [`MapError::AmbiguousPhone`].
fn ambiguous_phone_message(candidates: &[String], mobile: bool) -> String {
    let what = if mobile {
        "several columns labelled mobile could be the phone number"
    } else {
        "several columns could be the phone number and none is labelled mobile"
    };
    let maps: Vec<String> = candidates
        .iter()
        .map(|h| format!("--map phoneNumber={}", shell_quote(h)))
        .collect();
    format!(
        "{what}: {}; pick one with {}",
        quoted_list(candidates.iter().map(String::as_str)),
        or_list(&maps)
    )
}

/// The first columns of a header, quoted, with the count when there are more.
fn some_columns(columns: &[String]) -> String {
    const SHOWN: usize = 20;
    let list = quoted_list(columns.iter().take(SHOWN).map(String::as_str));
    if columns.len() > SHOWN {
        format!("{list} … ({} in all)", columns.len())
    } else {
        list
    }
}

/// `"A", "B", "C"`.
fn quoted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|h| crate::words::quote(h.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `header` quoted so that a POSIX shell passes it through unchanged.
fn shell_quote(header: &str) -> String {
    if header.contains(['"', '$', '`', '\\', '!']) {
        format!("'{}'", header.replace('\'', r"'\''"))
    } else {
        format!("\"{header}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_ignore_case_accents_spaces_and_separators() {
        assert_eq!(Field::from_header("Téléphone"), Some(Field::PhoneNumber));
        assert_eq!(Field::from_header("PHONE_NUMBER"), Some(Field::PhoneNumber));
        assert_eq!(Field::from_header(" Prénom "), Some(Field::Firstname));
        assert_eq!(Field::from_header("Nom de famille"), Some(Field::Lastname));
        assert_eq!(Field::from_header("date-de-naissance"), Some(Field::Date));
        assert_eq!(Field::from_header("Contact ID"), Some(Field::ContactId));
        assert_eq!(Field::from_header("custom_3"), Some(Field::Custom3));
        assert_eq!(Field::from_header("Numéro"), Some(Field::PhoneNumber));
        assert_eq!(Field::from_header("favourite colour"), None);
    }

    #[test]
    fn resolve_reports_ignored_columns_and_requires_phone() {
        let (map, ignored) =
            ColumnMap::resolve(&["Nom", "Prénom", "Portable", "Couleur"], &[]).unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(2));
        assert_eq!(map.get(Field::Lastname), Some(0));
        assert_eq!(ignored, vec!["Couleur".to_string()]);
        assert!(map.fields().contains(Field::Firstname));
        assert!(!map.fields().contains(Field::Url));
        assert_eq!(
            ColumnMap::resolve(&["name", "colour"], &[]),
            Err(MapError::NoPhoneColumn)
        );
    }

    #[test]
    fn overrides_win_and_unknown_override_is_an_error() {
        let (map, _) = ColumnMap::resolve(
            &["phone", "Cell B"],
            &[(Field::PhoneNumber, "Cell B".into())],
        )
        .unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(1));
        let err = ColumnMap::resolve(&["phone", "Site\u{a0}web"], &[(Field::Url, "web".into())])
            .unwrap_err();
        assert!(matches!(err, MapError::UnknownHeader { .. }));
        assert_eq!(
            err.to_string(),
            "--map url=web: the file has no column named \"web\"; its columns are \"phone\", \"Site web\" (with a non-breaking space at position 5)"
        );
        let many: Vec<String> = (1..=25).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = ColumnMap::resolve(&many, &[(Field::Url, "web".into())]).unwrap_err();
        assert!(
            err.to_string().ends_with("\"c19\", \"c20\" … (25 in all)"),
            "{err}"
        );
    }

    fn resolve(
        headers: &[&str],
        overrides: &[(Field, &str)],
    ) -> Result<(ColumnMap, Ignored), MapError> {
        let overrides: Vec<(Field, String)> =
            overrides.iter().map(|(f, h)| (*f, h.to_string())).collect();
        ColumnMap::resolve(headers, &overrides)
    }

    #[test]
    fn contact_id_comes_only_from_a_header_that_says_so() {
        for h in [
            "contactId",
            "contact_id",
            "Contact ID",
            "CONTACT-ID",
            "contact id",
            "Contact.Id",
        ] {
            assert_eq!(Field::from_header(h), Some(Field::ContactId), "{h:?}");
        }
        for h in [
            "Id",
            "ID",
            "id",
            "#",
            "Record ID",
            "Customer ID",
            "Contact",
            "Mobivate ID",
            "uid",
        ] {
            assert_eq!(Field::from_header(h), None, "{h:?}");
        }
        // A CRM export: its own `Id` first, then the data.
        let (map, ignored) = resolve(&["Id", "First Name", "Phone"], &[]).unwrap();
        assert_eq!(map.get(Field::ContactId), None);
        assert_eq!(map.get(Field::PhoneNumber), Some(2));
        assert_eq!(ignored, vec!["Id".to_string()]);
        let (map, _) = resolve(&["Id", "Phone", "contact_id"], &[]).unwrap();
        assert_eq!(map.get(Field::ContactId), Some(2));
        assert!(!map.explicit(Field::ContactId), "found by name, not --map");
        // `--map contactId=Id` takes it on purpose, and says so.
        let (map, ignored) = resolve(&["Id", "Phone"], &[(Field::ContactId, "Id")]).unwrap();
        assert_eq!(map.get(Field::ContactId), Some(0));
        assert!(map.explicit(Field::ContactId));
        assert!(!map.explicit(Field::PhoneNumber));
        assert!(ignored.is_empty());
    }

    #[test]
    fn an_empty_map_unmaps_the_field() {
        let (map, ignored) = resolve(&["phone", "website"], &[(Field::Url, "")]).unwrap();
        assert_eq!(map.get(Field::Url), None);
        assert!(!map.explicit(Field::Url));
        assert_eq!(ignored, vec!["website".to_string()]);
        // Blank counts as empty.
        let (map, _) = resolve(&["phone", "website"], &[(Field::Url, "  ")]).unwrap();
        assert_eq!(map.get(Field::Url), None);
        assert_eq!(
            resolve(&["phone", "name"], &[(Field::PhoneNumber, "")]),
            Err(MapError::NoPhoneColumn)
        );
        // The last --map of a field wins.
        let (map, _) = resolve(
            &["phone", "website"],
            &[(Field::Url, "website"), (Field::Url, "")],
        )
        .unwrap();
        assert_eq!(map.get(Field::Url), None);
        let (map, _) = resolve(
            &["phone", "website"],
            &[(Field::Url, ""), (Field::Url, "website")],
        )
        .unwrap();
        assert_eq!(map.get(Field::Url), Some(1));
        assert!(map.explicit(Field::Url));
    }

    #[test]
    fn phone_labels() {
        use PhoneLabel::*;
        for (h, want) in [
            ("Phone", Phone),
            ("phoneNumber", Phone),
            ("Phone Number", Phone),
            ("Tel", Phone),
            ("Tél. domicile", Phone),
            ("Téléphone", Phone),
            ("Téléphone fixe", Phone),
            ("Numéro", Phone),
            ("Numéro de téléphone", Phone),
            ("Home Phone", Phone),
            ("HomePhone", Phone),
            ("Work phone 2", Phone),
            ("Phone No.", Phone),
            ("phone_2", Phone),
            ("Mobile", Mobile),
            ("Mobile Phone", Mobile),
            ("MobilePhone", Mobile),
            ("mobilephone", Mobile),
            ("Mobile Phone Number", Mobile),
            ("Téléphone portable", Mobile),
            ("Tél. portable", Mobile),
            ("Numéro de mobile", Mobile),
            ("Portable", Mobile),
            ("Cell", Mobile),
            ("Cell Phone", Mobile),
            ("Cellphone", Mobile),
            ("GSM", Mobile),
            ("MSISDN", Mobile),
            ("Phone (Mobile)", Mobile),
            ("Phone Type", NotPhone),
            ("Phone Extension", NotPhone),
            ("Fax", NotPhone),
            ("Fax Number", NotPhone),
            ("Phone/Fax", NotPhone),
            ("AssistantPhone", NotPhone),
            ("Mobile Opt-In", NotPhone),
            ("Numéro client", NotPhone),
            ("Customer Number", NotPhone),
            ("Cell B", NotPhone),
            ("Hotel", NotPhone),
            ("Number", NotPhone),
            ("Contact", NotPhone),
            ("Id", NotPhone),
            ("", NotPhone),
            ("2", NotPhone),
            (&"phone ".repeat(100), NotPhone),
        ] {
            assert_eq!(phone_label(h), want, "{h:?}");
        }
    }

    fn phone_column(headers: &[&str]) -> Result<Option<usize>, MapError> {
        match resolve(headers, &[]) {
            Ok((map, _)) => Ok(map.get(Field::PhoneNumber)),
            Err(MapError::NoPhoneColumn) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn the_mobile_column_wins_in_real_export_layouts() {
        for (headers, want) in [
            // HubSpot.
            (
                &["First Name", "Phone Number", "Mobile Phone Number"][..],
                2,
            ),
            // Salesforce.
            (&["Id", "Phone", "Fax", "MobilePhone", "HomePhone"][..], 3),
            // French Excel.
            (&["Nom", "Téléphone", "Téléphone portable"][..], 2),
            (&["Cell Phone", "Home Phone", "Work Phone"][..], 0),
            (&["Tel", "GSM"][..], 1),
            (&["msisdn", "landline"][..], 0),
            (&["Téléphone fixe", "Portable", "Fax"][..], 1),
        ] {
            assert_eq!(phone_column(headers), Ok(Some(want)), "{headers:?}");
        }
        assert_eq!(
            choose_phone(&[(0, "Phone"), (1, "Fax"), (2, "Mobile"), (3, "Home Phone")]),
            Ok(PhoneChoice::Mobile {
                chosen: 2,
                passed_over: vec![0, 3]
            })
        );
        assert_eq!(
            choose_phone(&[(4, "Tel"), (5, "Fax")]),
            Ok(PhoneChoice::Only(4))
        );
        assert_eq!(choose_phone(&[(0, "Fax")]), Ok(PhoneChoice::None));
    }

    #[test]
    fn passed_over_phone_columns_are_not_reported_as_unknown() {
        let (_, ignored) =
            resolve(&["Phone Number", "Mobile Phone Number", "Colour"], &[]).unwrap();
        assert_eq!(ignored, vec!["Colour".to_string()]);
    }

    #[test]
    fn several_phone_columns_with_no_single_mobile_one_are_an_error() {
        let err = resolve(&["Name", "Phone", "Home Phone"], &[]).unwrap_err();
        assert_eq!(
            err,
            MapError::AmbiguousPhone {
                candidates: vec!["Phone".into(), "Home Phone".into()],
                mobile: false
            }
        );
        assert_eq!(
            err.to_string(),
            "several columns could be the phone number and none is labelled mobile: \
             \"Phone\", \"Home Phone\"; pick one with --map phoneNumber=\"Phone\" or \
             --map phoneNumber=\"Home Phone\""
        );
        assert!(matches!(
            resolve(&["Téléphone 1", "Téléphone 2", "Téléphone 3"], &[]),
            Err(MapError::AmbiguousPhone { mobile: false, .. })
        ));
        let err = resolve(&["Phone", "Mobile", "Cell Phone"], &[]).unwrap_err();
        assert_eq!(
            err,
            MapError::AmbiguousPhone {
                candidates: vec!["Mobile".into(), "Cell Phone".into()],
                mobile: true
            }
        );
        assert!(
            err.to_string()
                .starts_with("several columns labelled mobile"),
            "{err}"
        );
        // An explicit choice always wins, with no error.
        let (map, ignored) = resolve(
            &["Phone", "Home Phone"],
            &[(Field::PhoneNumber, "Home Phone")],
        )
        .unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(1));
        assert!(map.explicit(Field::PhoneNumber));
        assert_eq!(ignored, vec!["Phone".to_string()]);
        let (map, _) = resolve(
            &["Phone Number", "Mobile Phone Number"],
            &[(Field::PhoneNumber, "Phone Number")],
        )
        .unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(0));
    }

    #[test]
    fn map_suggestions_survive_a_shell() {
        assert_eq!(shell_quote("Home Phone"), "\"Home Phone\"");
        assert_eq!(shell_quote("Tél. \"pro\""), "'Tél. \"pro\"'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(or_list(&["a".into()]), "a");
        assert_eq!(or_list(&["a".into(), "b".into(), "c".into()]), "a, b or c");
    }

    #[test]
    fn every_export_layout_is_read_with_no_map() {
        for layout in EXPORT_LAYOUTS {
            // The layout's columns, with the numbered ones twice, among others.
            let mut headers: Vec<String> = vec!["Notes".into(), "E-mail 1 - Value".into()];
            for (h, _) in layout.read {
                if h.contains(" N ") {
                    for n in 1..=2 {
                        headers.push(h.replace(" N ", &format!(" {n} ")));
                        let label = if layout.product.contains("older") {
                            "Type"
                        } else {
                            "Label"
                        };
                        headers.push(format!("Phone {n} - {label}"));
                    }
                } else {
                    headers.push(h.to_string());
                }
            }
            headers.extend(layout.passed_over.iter().map(|h| h.to_string()));
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            let (map, ignored) =
                resolve(&refs, &[]).unwrap_or_else(|e| panic!("{}: {e}", layout.product));
            for (h, field) in layout.read {
                let h = h.replace(" N ", " 1 ");
                let col = refs.iter().position(|x| *x == h).unwrap();
                // Brevo's two name spellings: the first column found wins.
                if map.get(*field) != Some(col) {
                    assert!(
                        layout.read.iter().any(|(o, f)| f == field && *o != h),
                        "{}: {h:?} is not read as {field}",
                        layout.product
                    );
                }
            }
            for h in layout.passed_over {
                assert!(!ignored.contains(&h.to_string()), "{}: {h}", layout.product);
            }
            assert!(ignored.contains(&"Notes".to_string()), "{}", layout.product);
        }
    }

    #[test]
    fn a_labelled_layout_is_one_phone_field() {
        let headers = [
            "First Name",
            "Phone 1 - Label",
            "Phone 1 - Value",
            "Phone 2 - Label",
            "Phone 2 - Value",
            "Phone 10 - Value",
        ];
        let (map, ignored) = resolve(&headers, &[]).unwrap();
        assert_eq!(
            map.phone_slots(),
            [
                PhoneSlot {
                    label: Some(1),
                    value: 2
                },
                PhoneSlot {
                    label: Some(3),
                    value: 4
                },
                PhoneSlot {
                    label: None,
                    value: 5
                },
            ]
        );
        assert_eq!(map.get(Field::PhoneNumber), Some(2));
        assert!(ignored.is_empty(), "{ignored:?}");
        assert!(map.phone_choice().unwrap().contains("labelled columns"));
        // Older exports say Type.
        let (map, _) = resolve(&["Phone 1 - Type", "Phone 1 - Value"], &[]).unwrap();
        assert_eq!(
            map.phone_slots(),
            [PhoneSlot {
                label: Some(0),
                value: 1
            }]
        );
        // A mobile column beside it wins; a plain phone column is ambiguous.
        let (map, _) = resolve(&["Mobile", "Phone 1 - Label", "Phone 1 - Value"], &[]).unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(0));
        assert!(map.phone_slots().is_empty());
        assert!(matches!(
            resolve(&["Phone", "Phone 1 - Label", "Phone 1 - Value"], &[]),
            Err(MapError::AmbiguousPhone { .. })
        ));
        // --map decides.
        let (map, _) = resolve(
            &["Phone 1 - Value", "Phone 2 - Value"],
            &[(Field::PhoneNumber, "Phone 2 - Value")],
        )
        .unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(1));
        assert!(map.phone_slots().is_empty());
    }

    #[test]
    fn an_sms_column_is_a_mobile_one() {
        assert_eq!(phone_label("SMS"), PhoneLabel::Mobile);
        assert_eq!(phone_label("SMS_BLACKLISTED"), PhoneLabel::NotPhone);
        assert_eq!(phone_label("LANDLINE_NUMBER"), PhoneLabel::NotPhone);
        assert_eq!(phone_label("WHATSAPP"), PhoneLabel::NotPhone);
        assert_eq!(phone_column(&["SMS", "Phone"]), Ok(Some(0)));
    }

    #[test]
    fn sms_opt_out_headers_map_to_opt_out_and_email_ones_do_not() {
        for h in OPT_OUT_HEADERS.iter().copied().chain([
            "SMS_BLACKLISTED",
            "Opt-Out",
            "Stop SMS",
            "optOut",
            "OPTED_OUT",
        ]) {
            assert_eq!(Field::from_header(h), Some(Field::OptOut), "{h}");
            assert_eq!(phone_label(h), PhoneLabel::NotPhone, "{h}");
        }
        for h in [
            "EMAIL_BLACKLISTED",
            "Unsubscribed",
            "HasOptedOutOfEmail",
            "Stop",
        ] {
            assert_eq!(Field::from_header(h), None, "{h}");
        }
        let (map, ignored) = ColumnMap::resolve(
            &["EMAIL", "SMS", "SMS_BLACKLISTED", "EMAIL_BLACKLISTED"],
            &[],
        )
        .unwrap();
        assert_eq!(map.get(Field::PhoneNumber), Some(1));
        assert_eq!(map.get(Field::OptOut), Some(2));
        assert_eq!(ignored, ["EMAIL", "EMAIL_BLACKLISTED"]);
    }

    #[test]
    fn the_docs_list_every_opt_out_header() {
        let docs = include_str!("../docs/usage.md")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        for h in OPT_OUT_HEADERS {
            assert!(docs.contains(h), "docs/usage.md does not name {h:?}");
        }
    }

    #[test]
    fn the_docs_show_the_layouts_table_as_the_code_has_it() {
        let docs = include_str!("../docs/spreadsheets.md");
        assert!(
            docs.contains(&layouts_table()),
            "docs/spreadsheets.md must hold this table:\n{}",
            layouts_table()
        );
    }
}
