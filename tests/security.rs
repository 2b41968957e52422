//! Outputs people open and hostile input files (docs/security.md): formula
//! neutralisation and its round trip, visible control characters,
//! owner-only permissions, and files built to break the reader.

use crate::util::*;

/// A rejects file fed back unchanged sends the values the first file held,
/// formula characters included: neutralised on the way out, restored on the
/// way in.
#[test]
fn a_rejects_file_fed_back_sends_the_original_values() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone;firstname;lastname;custom1;custom2;date\n\
         0612345678;=HYPERLINK(\"http://x\",\"y\");@SUM(1);-2+3;''=kept;02/12/1990\n\
         0612345679;Anne;Lee;+1;ok;1990-12-02\n",
    );
    let out = sb.sync(&dir, "smspartner", &["--rejects", "rej.csv", "--no-state"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(sb.group_phones("g1").len(), 1, "only the valid row went");
    let rejects = dir.read("rej.csv");
    let rejects = rejects.trim_start_matches('\u{FEFF}');
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 2, "{rejects}");
    // Every cell a spreadsheet would run is defused; `''=kept` was read as
    // `'=kept` (one quote removed), which is written back with one more.
    assert!(
        lines[1].starts_with(
            "0612345678;\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\";'@SUM(1);'-2+3;''=kept;02/12/1990;DATE_INVALID;"
        ),
        "{}",
        lines[1]
    );
    // Fed back as it is, with the date format that reads it.
    std::fs::copy(dir.path("rej.csv"), dir.path("in.csv")).unwrap();
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--no-state", "--date-format", "%d/%m/%Y"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    let sent = state
        .group("g1")
        .iter()
        .find(|c| c.phone == "+33612345678")
        .expect("the fixed row was added");
    assert_eq!(sent.firstname, "=HYPERLINK(\"http://x\",\"y\")");
    assert_eq!(sent.lastname, "@SUM(1)");
    assert_eq!(sent.custom1, "-2+3");
    assert_eq!(sent.custom2, "'=kept");
    assert_eq!(sent.date, "1990-12-02");
}

/// NUL bytes, escapes and line breaks in a cell never reach the report raw:
/// they are written visibly, one report line per row; the rejects file keeps
/// them as read.
#[test]
fn control_characters_are_escaped_visibly_in_the_report_only() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        b"phone,firstname\n06\x0012\x1b[31m,\"a\nb\"\n\"06\r\n12\",x\n0612345678,ok\n",
    );
    let out = dir.run(&["validate", "in.csv", "--rejects", "rej.csv"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let raw = std::fs::read(dir.path("in.report.csv")).unwrap();
    assert!(!raw.contains(&0), "no NUL byte in the report");
    assert!(!raw.contains(&0x1b), "no escape byte in the report");
    let text = String::from_utf8(raw).unwrap();
    assert_eq!(text.lines().count(), 4, "one physical line per row: {text}");
    let report = parse_report(&text);
    assert_eq!(report[0].phone, "06\\012\\u{1B}[31m");
    assert_eq!(report[1].phone, "06\\r\\n12");
    assert_eq!(report[1].line, 4);
    assert_eq!(report[2].line, 6);
    let rejects = std::fs::read(dir.path("rej.csv")).unwrap();
    assert!(
        rejects.windows(7).any(|w| w == b"06\x0012\x1b[".as_slice()),
        "the rejects file keeps the cell as read"
    );
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file a run leaves holds personal data: owner-only (0600), whatever
/// the umask; a report that existed world-readable is narrowed too.
#[cfg(unix)]
#[test]
fn every_output_and_the_state_store_are_owner_only() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(3, 0);
    dir.write("in.csv", csv_of(&phones) + "bad,x,y\n");
    dir.write("in.report.csv", "old");
    std::fs::set_permissions(
        dir.path("in.report.csv"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let extra = [
        "--state",
        "s.db",
        "--rejects",
        "rej.csv",
        "--summary-json",
        "sum.json",
    ];
    let out = sb.sync(&dir, "smspartner", &extra);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    for name in ["in.report.csv", "rej.csv", "sum.json", "s.db"] {
        assert_eq!(mode(&dir.path(name)), 0o600, "{name}");
    }
    // Mirror mode: the backup of the deleted contact.
    dir.write("in.csv", csv_of(&phones[..2]));
    let out = sb.sync(
        &dir,
        "smspartner",
        &[
            "--state",
            "s.db",
            "--delete-missing",
            "--max-delete",
            "100%",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dir.read("in.deleted.csv").contains(&phones[2]));
    assert_eq!(mode(&dir.path("in.deleted.csv")), 0o600);
}
