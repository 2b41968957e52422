//! Files as real products write them (docs/spreadsheets.md), validated with
//! no flag: the columns chosen, every report row, and what the log says.
//! Fixtures are built here, byte for byte, with made-up people.

use crate::util::{Dir, Line, code, stderr};

/// (line, outcome, code, message, phone) of every report row.
fn rows(report: &[Line]) -> Vec<(u64, &str, &str, &str, &str)> {
    report
        .iter()
        .map(|l| {
            (
                l.line,
                l.outcome.as_str(),
                l.code.as_str(),
                l.message.as_str(),
                l.phone.as_str(),
            )
        })
        .collect()
}

/// Runs `validate FILE --report r.csv` plus `extra`: exit code, report, stderr.
fn validate(dir: &Dir, file: &str, extra: &[&str]) -> (i32, Vec<Line>, String) {
    let mut args = vec!["validate", file, "--report", "r.csv"];
    args.extend(extra);
    let out = dir.run(&args);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    (code(&out), dir.report("r.csv"), err)
}

/// `text` in Windows-1252 with CRLF line ends.
fn windows_1252(text: &str) -> Vec<u8> {
    let crlf = text.replace('\n', "\r\n");
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&crlf);
    assert!(!unmappable);
    bytes.into_owned()
}

/// `text` in UTF-16 with its byte-order mark and CRLF line ends.
fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.replace('\n', "\r\n").encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// Every cell in double quotes, as Outlook and Salesforce write them.
fn quoted(cells: &[&str]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| format!("\"{c}\"")).collect();
    cells.join(",") + "\n"
}

const OUTLOOK_HEADER: &[&str] = &[
    "Title",
    "First Name",
    "Middle Name",
    "Last Name",
    "Suffix",
    "Company",
    "Department",
    "Job Title",
    "Business Street",
    "Business City",
    "Business Postal Code",
    "Business Country/Region",
    "Home Street",
    "Home City",
    "Home Postal Code",
    "Home Country/Region",
    "Assistant's Phone",
    "Business Fax",
    "Business Phone",
    "Business Phone 2",
    "Callback",
    "Car Phone",
    "Company Main Phone",
    "Home Fax",
    "Home Phone",
    "Home Phone 2",
    "ISDN",
    "Mobile Phone",
    "Other Fax",
    "Other Phone",
    "Pager",
    "Primary Phone",
    "Radio Phone",
    "TTY/TDD Phone",
    "Telex",
    "Anniversary",
    "Birthday",
    "Categories",
    "E-mail Address",
    "E-mail Type",
    "E-mail Display Name",
    "Gender",
    "Notes",
    "Priority",
    "Private",
    "Sensitivity",
    "Web Page",
];

/// An Outlook row: empty cells but for the named columns, and Outlook's
/// `0/0/00` in both date columns unless given.
fn outlook_row(set: &[(&str, &str)]) -> String {
    let cells: Vec<&str> = OUTLOOK_HEADER
        .iter()
        .map(|h| {
            set.iter().find(|(k, _)| k == h).map_or(
                match *h {
                    "Anniversary" | "Birthday" => "0/0/00",
                    "Gender" => "Unspecified",
                    "Priority" | "Sensitivity" => "Normal",
                    "Private" => "False",
                    _ => "",
                },
                |(_, v)| v,
            )
        })
        .collect();
    quoted(&cells)
}

#[test]
fn outlook_csv_reads_the_mobile_phone_and_treats_0_0_00_as_no_birthday() {
    let dir = Dir::new();
    let mut text = quoted(OUTLOOK_HEADER);
    text += &outlook_row(&[
        ("First Name", "Zoé"),
        ("Last Name", "Lefèvre"),
        ("Business Phone", "+33 1 23 45 67 89"),
        ("Mobile Phone", "+33 6 12 34 56 78"),
        ("Web Page", "https://example.com/zoe"),
    ]);
    text += &outlook_row(&[
        ("First Name", "Renée"),
        ("Mobile Phone", "06 87 45 74 46"),
        ("Birthday", "25/12/1980"),
    ]);
    // A landline only: never used for an SMS list.
    text += &outlook_row(&[("First Name", "Hélène"), ("Home Phone", "01 40 00 00 00")]);
    dir.write("contacts.CSV", windows_1252(&text));
    let (exit, report, err) = validate(&dir, "contacts.CSV", &[]);
    assert_eq!(exit, 1, "{err}");
    assert_eq!(
        rows(&report),
        [
            (
                2,
                "valid",
                "",
                "date \"0/0/00\" means no date: left out",
                "+33612345678"
            ),
            (
                3,
                "invalid",
                "DATE_INVALID",
                "\"25/12/1980\" is not a real calendar date in an accepted format (YYYY-MM-DD): \
                 it reads as 1980-12-25 with the day first; pass --date-format %d/%m/%Y to read \
                 such dates",
                "+33687457446"
            ),
            (
                4,
                "invalid",
                "PHONE_MISSING",
                "the phone number is empty",
                ""
            ),
        ]
    );
    assert!(
        err.contains("phone numbers are read from column \"Mobile Phone\""),
        "{err}"
    );
    // With the format the message names, the row goes through.
    let (exit, report, _) = validate(&dir, "contacts.CSV", &["--date-format", "%d/%m/%Y"]);
    assert_eq!(exit, 1);
    assert_eq!(
        (report[1].outcome.as_str(), report[1].message.as_str()),
        ("valid", "")
    );
}

#[test]
fn google_contacts_labelled_phones_give_the_mobile_one_and_note_the_others() {
    let dir = Dir::new();
    let text = "First Name,Middle Name,Last Name,Phonetic First Name,Nickname,File As,\
                Organization Name,Birthday,Notes,Photo,Labels,E-mail 1 - Label,E-mail 1 - Value,\
                Phone 1 - Label,Phone 1 - Value,Phone 2 - Label,Phone 2 - Value,\
                Website 1 - Label,Website 1 - Value\n\
                Zoé,,Lefèvre,,,,,--12-25,,,* myContacts,* Home,zoe@example.com,\
                Mobile,+33 6 12 34 56 78 ::: +33 6 87 45 74 46,Home,+33 1 23 45 67 89,,\n\
                Paul,,Martin,,,,ACME,1979-11-02,,,* myContacts,,,\
                Work,+33 1 40 00 00 00,Mobile,+33 7 51 23 45 67,Profile,https://example.com/paul\n\
                Anne,,Petit,,,,,,,,* myContacts,,,Home,01 23 45 67 00,,,,\n";
    dir.write("contacts.csv", text);
    let (exit, report, err) = validate(&dir, "contacts.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(
        rows(&report),
        [
            (
                2,
                "valid",
                "",
                "other numbers of the row ignored: \"+33 6 87 45 74 46\", \"+33 1 23 45 67 89\"; \
                 date \"--12-25\" has no year: left out",
                "+33612345678"
            ),
            (
                3,
                "valid",
                "",
                "other numbers of the row ignored: \"+33 1 40 00 00 00\"",
                "+33751234567"
            ),
            // No mobile: the one valid number.
            (4, "valid", "", "", "+33123456700"),
        ]
    );
    assert!(
        err.contains("labelled columns \"Phone 1 - Value\", \"Phone 2 - Value\""),
        "{err}"
    );
}

#[test]
fn older_google_csv_in_utf16_reads_phone_types() {
    let dir = Dir::new();
    let text = "Name,Given Name,Additional Name,Family Name,Yomi Name,Birthday,Gender,Notes,\
                Group Membership,E-mail 1 - Type,E-mail 1 - Value,Phone 1 - Type,Phone 1 - Value,\
                Phone 2 - Type,Phone 2 - Value\n\
                Zoé Lefèvre,Zoé,,Lefèvre,,1985-03-14,,,* My Contacts,,,Work,07 51 23 45 67,\
                * Mobile,06 12 34 56 78\n\
                Jürgen Groß,Jürgen,,Groß,,,,,* My Contacts,,,Mobile,+49 1512 3456789,,\n";
    dir.write("google.csv", utf16(text, false));
    let (exit, report, err) = validate(&dir, "google.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(
        rows(&report),
        [
            (
                2,
                "valid",
                "",
                // Both are mobile numbers: the one labelled mobile wins.
                "other numbers of the row ignored: \"07 51 23 45 67\"",
                "+33612345678"
            ),
            (3, "valid", "", "", "+4915123456789"),
        ]
    );
    assert!(err.contains("UTF-16LE"), "{err}");
}

#[test]
fn hubspot_export_reads_the_mobile_phone_number() {
    let dir = Dir::new();
    let text = "Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number,\
                Date of birth,Website URL,Contact owner,Lead Status\n\
                1501,Zoé,Lefèvre,zoe@example.com,+33 1 23 45 67 89,+33 6 12 34 56 78,1985-03-14,\
                https://example.com,Ana Admin,NEW\n\
                1502,Paul,Martin,paul@example.com,+33 1 40 00 00 00,,,,Ana Admin,\n";
    dir.write("hubspot-crm-exports-all-contacts.csv", text);
    let (exit, report, err) = validate(&dir, "hubspot-crm-exports-all-contacts.csv", &[]);
    assert_eq!(exit, 1, "{err}");
    assert_eq!(
        rows(&report),
        [
            (2, "valid", "", "", "+33612345678"),
            (
                3,
                "invalid",
                "PHONE_MISSING",
                "the phone number is empty",
                ""
            ),
        ]
    );
    // HubSpot's own id is never taken for the provider's.
    assert!(report.iter().all(|l| l.contact_id.is_empty()));
    assert!(
        err.contains("\"Mobile Phone Number\", the one labelled mobile"),
        "{err}"
    );
}

#[test]
fn salesforce_export_reads_mobilephone() {
    let dir = Dir::new();
    let header = [
        "Id",
        "IsDeleted",
        "AccountId",
        "LastName",
        "FirstName",
        "Salutation",
        "Name",
        "Phone",
        "Fax",
        "MobilePhone",
        "HomePhone",
        "OtherPhone",
        "AssistantPhone",
        "Email",
        "Birthdate",
        "OwnerId",
    ];
    let mut text = quoted(&header);
    text += &quoted(&[
        "0035g00000AbCdEAAZ",
        "false",
        "0015g00000XyZaBAAV",
        "Lefèvre",
        "Zoé",
        "Ms.",
        "Zoé Lefèvre",
        "+33 1 23 45 67 89",
        "",
        "+33 6 12 34 56 78",
        "",
        "",
        "",
        "",
        "1985-03-14",
        "0055g00000QwErTAAZ",
    ]);
    text += &quoted(&[
        "0035g00000AbCdFAAZ",
        "false",
        "",
        "Martin",
        "Paul",
        "",
        "Paul Martin",
        "",
        "",
        "07.51.23.45.67",
        "",
        "",
        "",
        "paul@example.com",
        "",
        "0055g00000QwErTAAZ",
    ]);
    dir.write("Contact.csv", text.replace('\n', "\r\n"));
    let (exit, report, err) = validate(&dir, "Contact.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(
        rows(&report),
        [
            (2, "valid", "", "", "+33612345678"),
            (3, "valid", "", "", "+33751234567"),
        ]
    );
    assert!(report.iter().all(|l| l.contact_id.is_empty()));
}

#[test]
fn brevo_export_reads_the_sms_column() {
    let dir = Dir::new();
    let text = "EMAIL;NOM;PRENOM;SMS;LANDLINE_NUMBER;WHATSAPP;EXT_ID;SMS_BLACKLISTED\n\
                zoe@example.com;Lefèvre;Zoé;33612345678;33123456789;;C-17;false\n\
                paul@example.com;Martin;Paul;+33751234567;;+33751234567;C-18;false\n\
                anne@example.com;Petit;Anne;;33140000000;;C-19;false\n";
    dir.write("brevo.csv", text);
    let (exit, report, err) = validate(&dir, "brevo.csv", &[]);
    assert_eq!(exit, 1, "{err}");
    assert_eq!(
        rows(&report),
        [
            (2, "valid", "", "", "+33612345678"),
            (3, "valid", "", "", "+33751234567"),
            (
                4,
                "invalid",
                "PHONE_MISSING",
                "the phone number is empty",
                ""
            ),
        ]
    );
}

#[test]
fn mailchimp_export_leaves_out_yearless_birthdays() {
    let dir = Dir::new();
    let text = "Email Address,First Name,Last Name,Address,Phone Number,Birthday,MEMBER_RATING,\
                OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,\
                TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\n\
                zoe@example.com,Zoé,Lefèvre,,+33 6 12 34 56 78,12/25,2,\
                \"2024-01-05 10:00:00\",,\"2024-01-05 10:01:00\",,,,,,,FR,,\
                \"2024-01-05 10:01:00\",123456,abc123,,\n";
    dir.write("subscribed_members_export.csv", text);
    let (exit, report, err) = validate(&dir, "subscribed_members_export.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(
        rows(&report),
        [(
            2,
            "valid",
            "",
            "date \"12/25\" has no year: left out",
            "+33612345678"
        )]
    );
}

#[test]
fn french_excel_reads_the_portable_column_and_names_the_date_format() {
    let dir = Dir::new();
    let text = "Nom;Prénom;Téléphone;Téléphone portable;Date de naissance;Ville\n\
                Lefèvre;Zoé;01 23 45 67 89;06 12 34 56 78;25/12/1980;Lyon\n\
                Müller;François;;'0687454746;;Paris\n\
                Roux;Inès;01 40 00 00 00;=\"07 51 23 45 67\";;\n";
    dir.write("export.csv", windows_1252(text));
    let (exit, report, err) = validate(&dir, "export.csv", &[]);
    assert_eq!(exit, 1, "{err}");
    assert_eq!(
        rows(&report),
        [
            (
                2,
                "invalid",
                "DATE_INVALID",
                "\"25/12/1980\" is not a real calendar date in an accepted format (YYYY-MM-DD): \
                 it reads as 1980-12-25 with the day first; pass --date-format %d/%m/%Y to read \
                 such dates",
                "+33612345678"
            ),
            (3, "valid", "", "", "+33687454746"),
            (4, "valid", "", "", "+33751234567"),
        ]
    );
    assert!(
        err.contains("\"Téléphone portable\", the one labelled mobile"),
        "{err}"
    );
    let (exit, _, _) = validate(&dir, "export.csv", &["--date-format", "%d/%m/%Y"]);
    assert_eq!(exit, 0);
}

#[test]
fn english_excel_csv_utf8_with_serial_dates() {
    let dir = Dir::new();
    let text = "\u{feff}First Name,Last Name,Phone,Mobile,Birthday\n\
                Zoë,Brontë,+44 20 7946 0000,+44 7400 123456,29221\n\
                Ann,Lee,,+44 7400 123457,\n\
                Bob,Ray,,+44 7400 123458,45123\n";
    dir.write("Book1.csv", text.replace('\n', "\r\n"));
    let (exit, report, err) = validate(&dir, "Book1.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(
        rows(&report),
        [
            (
                2,
                "valid",
                "",
                "date \"29221\" read as an Excel serial date: 1980-01-01",
                "+447400123456"
            ),
            (3, "valid", "", "", "+447400123457"),
            (
                4,
                "valid",
                "",
                "date \"45123\" read as an Excel serial date: 2023-07-16",
                "+447400123458"
            ),
        ]
    );
    assert!(err.contains("Excel serial numbers"), "{err}");
}

#[test]
fn excel_unicode_text_is_utf16_and_tab_separated() {
    for big_endian in [false, true] {
        let dir = Dir::new();
        let text = "First Name\tLast Name\tMobile\tBirthday\n\
                    Zoë\t\"De La Tour\"\t06 12 34 56 78\t\n\
                    Jürgen\tGroß\t+49 1512 3456789\t1980-01-31\n";
        dir.write("Book1.txt", utf16(text, big_endian));
        let (exit, report, err) = validate(&dir, "Book1.txt", &[]);
        assert_eq!(exit, 0, "{err}");
        assert_eq!(
            rows(&report),
            [
                (2, "valid", "", "", "+33612345678"),
                (3, "valid", "", "", "+4915123456789"),
            ]
        );
    }
}

#[test]
fn a_sep_line_sets_the_delimiter_and_keeps_physical_line_numbers() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "sep=;\r\nphone;firstname\r\n06 12 34 56 78;Zoé, dite Zou\r\n06 12;Paul\r\n",
    );
    let (exit, report, _) = validate(&dir, "in.csv", &[]);
    assert_eq!(exit, 1);
    assert_eq!(
        rows(&report),
        [
            (3, "valid", "", "", "+33612345678"),
            (
                4,
                "invalid",
                "PHONE_INVALID",
                "\"06 12\" is not a valid phone number for region FR",
                "06 12"
            ),
        ]
    );
}

#[test]
fn trailing_empty_fields_are_not_ragged_rows() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname,lastname\n0612345678,Zoé,Martin,,\n0612345679,Paul\n0612345680,A,B,C\n",
    );
    let (exit, report, _) = validate(&dir, "in.csv", &[]);
    assert_eq!(exit, 1);
    assert_eq!(
        crate::util::triples(&report),
        [
            (2, "valid", ""),
            (3, "valid", ""),
            (4, "invalid", "ROW_MALFORMED")
        ]
    );
    assert_eq!(
        report[2].message,
        "the row has 4 cells with something in them but the header has only 3 columns: a cell \
         may hold the delimiter \",\" (comma) without quotes around the cell"
    );
}

#[test]
fn mixed_encodings_are_decoded_row_by_row_and_counted() {
    let dir = Dir::new();
    let mut bytes = "phone,firstname\n0612345678,Zoé\n".as_bytes().to_vec();
    bytes.extend(b"0612345679,Ren\xE9e\n");
    bytes.extend("0612345680,André\n".as_bytes());
    dir.write("in.csv", bytes);
    let out = dir.run(&["validate", "in.csv", "--report", "-"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the file mixes encodings, so each row was decoded on its own: 2 rows with accents in UTF-8, 1 row in Windows-1252 (line 3)"),
        "{err}"
    );
    assert!(
        err.contains("no --encoding reads both kinds right"),
        "{err}"
    );
    assert!(err.contains("decoded as Windows-1252: 1 row\n"), "{err}");
    let counted = dir.run(&["validate", "in.csv", "--summary-json", "s.json"]);
    assert_eq!(code(&counted), 0, "{}", stderr(&counted));
    let summary: serde_json::Value = serde_json::from_str(&dir.read("s.json")).unwrap();
    assert_eq!(summary["windows_1252_rows"], 1, "the header is not counted");
    // sync counts them alike, and sends the accents right.
    let sb = crate::util::Sandbox::calm();
    let synced = sb.sync(&dir, "smspartner", &["--summary-json", "sync.json"]);
    assert_eq!(code(&synced), 0, "{}", stderr(&synced));
    let summary: serde_json::Value = serde_json::from_str(&dir.read("sync.json")).unwrap();
    assert_eq!(summary["windows_1252_rows"], 1);
    let names: std::collections::BTreeSet<String> = sb
        .state()
        .group("g1")
        .iter()
        .map(|c| c.firstname.clone())
        .collect();
    assert_eq!(names, ["André", "Renée", "Zoé"].map(String::from).into());
    let report = crate::util::parse_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report.len(), 3);
    // Forcing Windows-1252 garbles the UTF-8 rows: the warning names them.
    let (exit, _, err) = validate(&dir, "in.csv", &["--encoding", "windows-1252"]);
    assert_eq!(exit, 0);
    assert!(
        err.contains("--encoding windows-1252: 2 rows are valid UTF-8 with accents (lines 2, 4), which windows-1252 garbles"),
        "{err}"
    );
    // Forcing UTF-8 rejects that row, and says what would read it.
    let (exit, report, _) = validate(&dir, "in.csv", &["--encoding", "utf-8"]);
    assert_eq!(exit, 1);
    assert_eq!(report[1].code, "ROW_MALFORMED");
    assert!(
        report[1].message.contains("read as Windows-1252"),
        "{}",
        report[1].message
    );
}

#[test]
fn a_header_only_file_warns_and_exits_0() {
    let dir = Dir::new();
    dir.write("in.csv", "phone,firstname\r\n");
    let (exit, report, err) = validate(&dir, "in.csv", &[]);
    assert_eq!(exit, 0);
    assert!(report.is_empty());
    assert!(err.contains("no data rows"), "{err}");
}

#[test]
fn an_empty_group_cell_falls_back_to_group_id_else_is_group_missing() {
    let dir = Dir::new();
    dir.write("in.csv", "phone,group\n0612345678,g1\n0612345679,\n");
    let (exit, report, _) = validate(&dir, "in.csv", &[]);
    assert_eq!(exit, 1);
    assert_eq!(
        rows(&report)[1],
        (
            3,
            "invalid",
            "GROUP_MISSING",
            "the group cell is empty and no --group-id was given to fall back to",
            "+33612345679"
        )
    );
    let (exit, _, _) = validate(&dir, "in.csv", &["--group-id", "g0"]);
    assert_eq!(exit, 0);
}

#[test]
fn names_typed_on_a_mac_are_counted_composed_and_cuts_are_noted() {
    let dir = Dir::new();
    // 32 accented letters, each typed as e + a combining accent (NFD).
    let nfd = "e\u{301}".repeat(32);
    dir.write(
        "in.csv",
        format!(
            "phone,firstname,lastname\n0612345678,{nfd},Martin\n0612345679,{},B\n",
            "x".repeat(35)
        ),
    );
    let (exit, report, _) = validate(&dir, "in.csv", &[]);
    assert_eq!(exit, 1);
    assert_eq!(
        crate::util::triples(&report),
        [(2, "valid", ""), (3, "invalid", "FIRSTNAME_TOO_LONG")]
    );
    let (exit, report, _) = validate(&dir, "in.csv", &["--truncate-names"]);
    assert_eq!(exit, 0);
    assert_eq!(report[0].message, "");
    assert_eq!(
        report[1].message,
        format!(
            "first name cut to 32 characters (it had 35): \"{}\"",
            "x".repeat(32)
        )
    );
}

#[test]
fn sync_sends_an_empty_group_cell_to_the_group_id() {
    let sandbox = crate::util::Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", "phone,group\n0612345678,g2\n0612345679,\n");
    let out = sandbox.sync(
        &dir,
        "smspartner",
        &["--group-id", "g1", "--report", "r.csv"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        sandbox.group_phones("g1").into_keys().collect::<Vec<_>>(),
        ["+33612345679"]
    );
    assert_eq!(
        sandbox.group_phones("g2").into_keys().collect::<Vec<_>>(),
        ["+33612345678"]
    );
}

/// Every line of `out`'s stderr, parsed as JSON: fails on the first that is not.
fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    let err = stderr(out);
    assert!(!err.trim().is_empty(), "something was logged");
    err.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{err}")))
        .collect()
}

/// The one line that carries the end-of-run summary.
fn summary_line(lines: &[serde_json::Value]) -> &serde_json::Value {
    let found: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["summary"].is_object())
        .collect();
    assert_eq!(found.len(), 1, "{lines:?}");
    found[0]
}

#[test]
fn json_logs_every_stderr_line_is_one_json_object() {
    let sb = crate::util::Sandbox::calm();
    let dir = Dir::new();

    // A run that goes through, at debug verbosity.
    dir.write(
        "in.csv",
        "phone,first name\n0612345678,Ann\n0612345679,Bob\n",
    );
    let out = sb.sync(&dir, "smspartner", &["--log-format", "json", "-v"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&out);
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "{lines:?}");
    let summary = summary_line(&lines);
    assert_eq!(summary["level"], "INFO");
    assert_eq!(summary["fields"]["summary"]["outcomes"]["added"], 2);
    assert_eq!(summary["fields"]["exit_code"], 0);
    assert_eq!(summary["fields"]["report"], "in.report.csv");
    assert!(summary["timestamp"].is_string());
    assert_eq!(sb.group_phones("g1").len(), 2);

    // A run with row errors and warnings: the bundled sample.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/contacts.csv");
    let out = dir.run(&[
        "--log-format",
        "json",
        "validate",
        sample.to_str().unwrap(),
        "--report",
        "r.csv",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let lines = json_lines(&out);
    let summary = summary_line(&lines);
    assert!(summary["fields"]["summary"]["outcomes"]["invalid"].as_u64() > Some(0));
    assert_eq!(summary["fields"]["exit_code"], 1);

    // Refused by --max-invalid: a warning, the error and the summary.
    dir.write("bad.csv", "phone,colour\n06 12,red\n0612345678,blue\n");
    let out = dir.run(&[
        "validate",
        "bad.csv",
        "--max-invalid",
        "0",
        "--log-format",
        "json",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let lines = json_lines(&out);
    assert!(lines.iter().any(|l| l["level"] == "WARN"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("--max-invalid 0"))),
        "{lines:?}"
    );
    assert_eq!(summary_line(&lines)["fields"]["exit_code"], 2);

    // Fatal errors (exit 2): an input-file error, and a command line clap refuses.
    dir.write("nophone.csv", "name,email\nBob,bob@example.com\n");
    for args in [
        &["--log-format", "json", "validate", "nophone.csv"][..],
        &[
            "validate",
            "nophone.csv",
            "--log-format=json",
            "--no-such-flag",
        ],
        &[
            "--log-format",
            "json",
            "sync",
            "nophone.csv",
            "--provider",
            "sandbox",
        ],
    ] {
        let out = dir.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let lines = json_lines(&out);
        let last = lines.last().unwrap();
        assert_eq!(last["level"], "ERROR", "{args:?}: {lines:?}");
        let message = last["fields"]["message"].as_str().unwrap();
        assert!(!message.starts_with("error:"), "{message}");
        assert!(
            message.contains("no phone number column") || message.contains("--no-such-flag"),
            "{args:?}: {message}"
        );
    }

    // Aborted after sending began (exit 3): rejected credentials.
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", "wrong-key-e81d")
        .args(["--log-format", "json", "sync", "in.csv", "--provider"])
        .args(["mobivate", "--base-url", &sb.url()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(summary_line(&lines)["fields"]["exit_code"], 3);

    // Text stays as it was.
    let out = dir.run(&["validate", "nophone.csv"]);
    assert!(
        stderr(&out).starts_with("contact-sync: error: "),
        "{}",
        stderr(&out)
    );
}

/// The fenced block of `lang` that follows `after` in `doc`.
fn fenced<'a>(doc: &'a str, after: &str, lang: &str) -> &'a str {
    let from = doc.find(after).expect("anchor in the doc") + after.len();
    let open = format!("```{lang}\n");
    let start = doc[from..].find(&open).expect("fenced block") + from + open.len();
    let end = doc[start..].find("```").expect("closed block") + start;
    &doc[start..end]
}

#[test]
fn docs_report_md_examples_are_what_the_sample_produces() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.md"),
    )
    .unwrap();
    let dir = Dir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/contacts.csv");
    let out = dir.run(&[
        "sync",
        sample.to_str().unwrap(),
        "--provider",
        "sandbox",
        "--summary-json",
        "contacts.json",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    let report = dir.read("contacts.report.csv");
    let actual: Vec<&str> = report.lines().collect();
    let shown = fenced(&doc, "## An example", "csv");
    assert!(shown.lines().count() > 5);
    for line in shown.lines() {
        assert!(actual.contains(&line), "not in the sample's report: {line}");
    }

    // The summary on stderr, but for its timing.
    let shown = fenced(&doc, "The end-of-run summary of the same run", "text");
    let (timing, rest) = shown.split_once('\n').unwrap();
    assert!(timing.starts_with("54 rows in "), "{timing}");
    assert!(stderr(&out).contains(rest), "{}", stderr(&out));

    // The JSON summary, but for its timing.
    let untimed = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("duration_seconds").is_some());
        assert!(o.remove("rows_per_second").is_some());
        v
    };
    assert_eq!(
        untimed(fenced(&doc, "## Summary", "json")),
        untimed(&dir.read("contacts.json"))
    );
}

#[test]
fn invisible_characters_in_headers_and_flags_are_named_not_escaped() {
    let dir = Dir::new();
    dir.write(
        "nbsp.csv",
        "First Name,Mobile\u{a0}Phone,Business Phone\n\"Ann\",\"06 12 34 56 78\",\"01 23 45 67 89\"\n",
    );
    let (exit, _, err) = validate(&dir, "nbsp.csv", &[]);
    assert_eq!(exit, 0, "{err}");
    assert!(
        err.contains("column \"Mobile Phone\" (with a non-breaking space at position 7), the one labelled mobile"),
        "{err}"
    );
    dir.write("zw.csv", "Phone,Home\u{200b}Phone\n0612345678,\n");
    let (exit, _, err) = validate(&dir, "zw.csv", &[]);
    assert_eq!(exit, 2);
    assert!(
        err.contains("\"HomePhone\" (with a zero-width space at position 5)"),
        "{err}"
    );
    for args in [
        &["--map", "phoneNumber=Home\u{a0}Phone"][..],
        &["--delimiter", "\t\t"],
        &["--default-region", "F\u{a0}R"],
        &["--date-format", "%d\u{200b}"],
        &["--max-invalid", "5\u{a0}%"],
    ] {
        let out = dir.run(&[&["validate", "zw.csv"][..], args].concat());
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(!err.contains("\\u{"), "{args:?}: {err}");
        assert!(err.contains(" at position "), "{args:?}: {err}");
    }
}

#[test]
fn docs_usage_md_json_log_example_is_what_the_french_sample_produces() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/usage.md"),
    )
    .unwrap();
    let shown = fenced(&doc, "`contact-sync --log-format json validate", "json");
    let dir = Dir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/excel-fr.csv");
    let out = dir.run(&["--log-format", "json", "validate", sample.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // Times and speeds vary from run to run; everything else must match.
    let untimed = |line: &str| {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("timestamp").is_some());
        let fields = o["fields"].as_object_mut().unwrap();
        if let Some(summary) = fields.get_mut("summary") {
            let s = summary.as_object_mut().unwrap();
            assert!(s.remove("duration_seconds").is_some());
            assert!(s.remove("rows_per_second").is_some());
            let message = fields["message"].as_str().unwrap();
            let rows = message.split(" in ").next().unwrap().to_string();
            fields.insert("message".into(), rows.into());
        }
        v
    };
    let want: Vec<_> = shown.lines().map(untimed).collect();
    let got: Vec<_> = stderr(&out).lines().map(untimed).collect();
    assert_eq!(want, got);
}
