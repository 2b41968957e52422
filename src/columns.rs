//! Contact fields and the mapping from an input file's header to them (SPEC §3).
//!
//! A contact id is only taken from a header that names it without doubt
//! (never a CRM's own `Id`): a wrong column would rewrite unrelated contacts.

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
}

impl Field {
    /// Number of fields.
    pub const COUNT: usize = 12;
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
        }
    }

    /// The field whose canonical name or alias matches `header` (after folding).
    pub fn from_header(header: &str) -> Option<Field> {
        let key = fold(header);
        Field::ALL
            .into_iter()
            .find(|f| fold(f.name()) == key || f.aliases().iter().any(|a| fold(a) == key))
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
            Field::Url => &["website", "site", "lien", "link", "web"],
            // Never a bare `id`: CRMs (Salesforce, HubSpot, Mobivate's own
            // records) export their ids under it, and taking one for the
            // provider's id would rewrite unrelated contacts. `contact_id` and
            // `contactId` (SMS Partner's name, and the report's column) fold
            // to the same key.
            Field::ContactId => &["contact id"],
            Field::GroupId => &["group", "group id", "groupe"],
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

/// Lower-cases and drops accents, spaces, `_` and `-`, so `Prénom` matches `prenom`.
pub fn fold(s: &str) -> String {
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

/// A set of fields, e.g. those the input file has a column for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Whether `field` is in the set.
    pub fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u16) != 0
    }

    /// Adds `field`.
    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field as u16;
    }
}

/// Which input column holds each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    index: [Option<usize>; Field::COUNT],
    /// The fields whose column `--map` named.
    explicit: FieldSet,
}

/// Why a header cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    /// No column maps to phoneNumber.
    #[error(
        "no phone number column: the header has none of phoneNumber, phone, mobile, msisdn, tel, telephone, portable, gsm, cell, numero (use --map phoneNumber=HEADER)"
    )]
    NoPhoneColumn,
    /// `--map` names a header that is not in the file.
    #[error("--map {field}={header}: the file has no column named {header:?}")]
    UnknownHeader {
        /// The field being mapped.
        field: Field,
        /// The header named.
        header: String,
    },
}

/// The columns a header leaves unused, to be named in a warning.
pub type Ignored = Vec<String>;

impl ColumnMap {
    /// Maps `headers` to fields.
    ///
    /// Explicit `overrides` (`--map`) come first; the last one for a field
    /// wins, and an empty header unmaps the field: it is then never
    /// auto-mapped. Every other field takes the first column whose name
    /// matches it.
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
        for (pos, header) in headers.iter().enumerate() {
            if used[pos] {
                continue;
            }
            if let Some(field) = Field::from_header(header)
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

    /// Whether `field`'s column was named by `--map` (false when it has none):
    /// a contact id the user pointed at, rather than one found by name.
    pub fn explicit(&self, field: Field) -> bool {
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
    pub fn fields(&self) -> FieldSet {
        let mut set = FieldSet::default();
        for f in Field::ALL {
            if self.get(f).is_some() {
                set.insert(f);
            }
        }
        set
    }

    /// The column holding `field`, if any.
    pub fn get(&self, field: Field) -> Option<usize> {
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
        assert!(matches!(
            ColumnMap::resolve(&["phone"], &[(Field::Url, "web".into())]),
            Err(MapError::UnknownHeader { .. })
        ));
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
}
