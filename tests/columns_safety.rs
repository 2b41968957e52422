//! Issue 8, column points: a CRM's own `Id` never addresses a provider's
//! contact, a landline column never silently wins over a mobile one, and
//! `--map FIELD=` unmaps a field.

use std::collections::BTreeMap;

use crate::util::*;

/// (contact id, phone, first name) of every contact in an SMS Partner group.
fn group_rows(sb: &Sandbox, group: &str) -> Vec<(String, String, String)> {
    sb.state()
        .group(group)
        .iter()
        .map(|c| (c.contact_id.clone(), c.phone.clone(), c.firstname.clone()))
        .collect()
}

/// Runs `validate in.csv --report -` and returns the exit code, the report
/// and stderr.
fn validate(dir: &Dir, extra: &[&str]) -> (i32, Vec<Line>, String) {
    let mut args = vec!["validate", "in.csv", "--report", "-"];
    args.extend(extra);
    let out = dir.run(&args);
    let report = if out.stdout.is_empty() {
        Vec::new()
    } else {
        parse_report(&String::from_utf8_lossy(&out.stdout))
    };
    (code(&out), report, stderr(&out))
}

#[test]
fn a_crm_id_column_leaves_prefilled_contacts_untouched() {
    let sb = Sandbox::calm();
    // The sandbox numbers its contacts 1, 2, 3 … like the CRM numbers its rows.
    let ids = sb.seed_group("g1", &["+33611111111", "+33622222222", "+33633333333"]);
    assert_eq!(ids, ["1", "2", "3"]);
    let before = group_rows(&sb, "g1");
    let phones = numbers(3, 0);
    let dir = Dir::new();
    dir.write(
        "in.csv",
        format!(
            "Id,First Name,Last Name,Phone\n\
             1,Ann,Arnaud,{}\n\
             2,Bob,Bernard,{}\n\
             3,Chloé,Carpentier,{}\n",
            phones[0], phones[1], phones[2]
        ),
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(
        triples(&report),
        vec![(2, "added", ""), (3, "added", ""), (4, "added", "")]
    );
    assert!(
        stderr(&out).contains("ignoring columns with no matching field: Id"),
        "{}",
        stderr(&out)
    );
    let after = group_rows(&sb, "g1");
    assert_eq!(after[..3], before[..], "the pre-filled contacts changed");
    let added: Vec<&str> = after[3..].iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(added, phones.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn a_salesforce_export_uses_neither_its_id_nor_its_landline() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111", "+33622222222"]);
    let before = group_rows(&sb, "g1");
    let mobiles = numbers(2, 100);
    let dir = Dir::new();
    // Salesforce Contact export: 18-character ids, Phone before MobilePhone.
    // The ids are chosen to collide with the sandbox's, as a CRM's 1, 2 … would.
    dir.write(
        "in.csv",
        format!(
            "Id,FirstName,LastName,Phone,Fax,MobilePhone\n\
             {},Ann,Arnaud,01 23 45 67 89,01 23 45 67 00,{}\n\
             {},Bob,Bernard,01 23 45 67 88,,{}\n",
            ids[0], mobiles[0], ids[1], mobiles[1]
        ),
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    let report = dir.report("in.report.csv");
    assert_eq!(triples(&report), vec![(2, "added", ""), (3, "added", "")]);
    let sent: Vec<&str> = report.iter().map(|l| l.phone.as_str()).collect();
    assert_eq!(sent, [mobiles[0].as_str(), mobiles[1].as_str()]);
    // The choice is logged, naming the column read and those passed over.
    assert!(
        err.contains("\"MobilePhone\"") && err.contains("passed over: \"Phone\""),
        "{err}"
    );
    let after = group_rows(&sb, "g1");
    assert_eq!(after[..2], before[..], "the pre-filled contacts changed");
    assert_eq!(after.len(), 4);
    assert!(!sb.group_phones("g1").contains_key("+33123456789"));
}

#[test]
fn map_contact_id_still_updates_by_id_when_asked() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111"]);
    let dir = Dir::new();
    dir.write(
        "in.csv",
        format!("Id,Phone,First Name\n{},+33611111111,Renamed\n", ids[0]),
    );
    let out = sb.sync(&dir, "smspartner", &["--map", "contactId=Id"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(triples(&report), vec![(2, "updated", "")]);
    assert_eq!(
        group_rows(&sb, "g1"),
        vec![(ids[0].clone(), "+33611111111".into(), "Renamed".into())]
    );
}

#[test]
fn landline_and_mobile_layouts_read_the_mobile_column() {
    let hubspot = "Record ID,First Name,Last Name,Phone Number,Mobile Phone Number\n\
                   101,Ann,Arnaud,01 23 45 67 89,06 12 34 56 78\n"
        .as_bytes()
        .to_vec();
    let salesforce = "Id,FirstName,LastName,Phone,MobilePhone,HomePhone\n\
                      0035g00000XyZabAAB,Ann,Arnaud,01 23 45 67 89,06 12 34 56 78,01 23 45 67 87\n"
        .as_bytes()
        .to_vec();
    // French Excel: Windows-1252, semicolons, CRLF.
    let excel =
        b"Nom;Pr\xE9nom;T\xE9l\xE9phone;T\xE9l\xE9phone portable\r\nArnaud;Ann;01 23 45 67 89;06 12 34 56 78\r\n"
            .to_vec();
    for (name, bytes, mobile_header) in [
        ("HubSpot", hubspot, "Mobile Phone Number"),
        ("Salesforce", salesforce, "MobilePhone"),
        ("French Excel", excel, "Téléphone portable"),
    ] {
        let dir = Dir::new();
        dir.write("in.csv", bytes);
        let (code, report, err) = validate(&dir, &[]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(triples(&report), vec![(2, "valid", "")], "{name}");
        assert_eq!(report[0].phone, "+33612345678", "{name}: read the landline");
        assert!(err.contains(&format!("{mobile_header:?}")), "{name}: {err}");
    }
}

#[test]
fn two_phone_columns_and_no_mobile_one_stop_the_run() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "Name,Phone,Home Phone\nAnn,06 12 34 56 78,01 23 45 67 89\n",
    );
    let (code_v, report, err) = validate(&dir, &[]);
    assert_eq!(code_v, 2, "{err}");
    assert!(report.is_empty());
    for needle in [
        "\"Phone\", \"Home Phone\"",
        "none is labelled mobile",
        "--map phoneNumber=\"Phone\"",
        "--map phoneNumber=\"Home Phone\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--map phoneNumber=\"Phone\""),
        "{}",
        stderr(&out)
    );
    assert!(sb.state().counters.requests.is_empty(), "nothing was sent");

    // Two columns labelled mobile are as ambiguous.
    dir.write(
        "in.csv",
        "Phone,Mobile,Cell Phone\n01 23 45 67 89,06 12 34 56 78,06 12 34 56 79\n",
    );
    let (code_v, _, err) = validate(&dir, &[]);
    assert_eq!(code_v, 2, "{err}");
    assert!(err.contains("\"Mobile\", \"Cell Phone\""), "{err}");
    assert!(err.contains("--map phoneNumber=\"Cell Phone\""), "{err}");
}

#[test]
fn map_phone_number_picks_any_candidate_without_error() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "Name,Phone,Home Phone\nAnn,06 12 34 56 78,01 23 45 67 89\n",
    );
    let (code_v, report, err) = validate(&dir, &["--map", "phoneNumber=Phone"]);
    assert_eq!(code_v, 0, "{err}");
    assert_eq!(report[0].phone, "+33612345678");
    let out = sb.sync(&dir, "smspartner", &["--map", "phoneNumber=Home Phone"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        sb.group_phones("g1"),
        BTreeMap::from([("+33123456789".to_string(), 1)])
    );

    // Even the landline of a file that has a mobile column, when asked.
    dir.write(
        "in.csv",
        "Phone Number,Mobile Phone Number\n01 23 45 67 89,06 12 34 56 78\n",
    );
    let (code_v, report, err) = validate(&dir, &["--map", "phoneNumber=Phone Number"]);
    assert_eq!(code_v, 0, "{err}");
    assert_eq!(report[0].phone, "+33123456789");
}

#[test]
fn an_empty_map_unmaps_a_field() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname,website\n06 12 34 56 78,Ann,www.example.com\n",
    );
    let (code_v, report, _) = validate(&dir, &[]);
    assert_eq!(code_v, 1);
    assert_eq!(triples(&report), vec![(2, "invalid", "URL_INVALID")]);

    let (code_v, report, err) = validate(&dir, &["--map", "url="]);
    assert_eq!(code_v, 0, "{err}");
    assert_eq!(triples(&report), vec![(2, "valid", "")]);
    assert!(
        err.contains("ignoring columns with no matching field: website"),
        "{err}"
    );
    let out = sb.sync(&dir, "smspartner", &["--map", "url="]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    let sent = state.group("g1");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].firstname.as_str(), sent[0].url.as_str()),
        ("Ann", "")
    );

    // Unmapping the phone number leaves no phone column.
    let (code_v, _, err) = validate(&dir, &["--map", "phoneNumber="]);
    assert_eq!(code_v, 2, "{err}");
    assert!(err.contains("no phone number column"), "{err}");
}
