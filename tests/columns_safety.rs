//! Issue 8, column points: a CRM's own `Id` never addresses a provider's
//! contact, and `--map FIELD=` unmaps a field.

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
fn map_contact_id_still_updates_by_id_when_asked() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111"]);
    let dir = Dir::new();
    dir.write(
        "in.csv",
        format!("Id,Phone,First Name\n{},+33644444444,Renamed\n", ids[0]),
    );
    let out = sb.sync(&dir, "smspartner", &["--map", "contactId=Id"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(triples(&report), vec![(2, "updated", "")]);
    assert_eq!(
        group_rows(&sb, "g1"),
        vec![(ids[0].clone(), "+33644444444".into(), "Renamed".into())]
    );
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
