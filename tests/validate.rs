//! `contact-sync validate` on real files: outcomes, codes, line numbers and
//! exit codes as SPEC §2–§6 prescribe, and never a panic.

use crate::util::{Dir, code, stderr, triples};

fn assert_no_panic(out: &std::process::Output) {
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

#[test]
fn french_excel_export_windows_1252_semicolons() {
    let dir = Dir::new();
    // "Téléphone;Prénom;Nom;Date de naissance" in Windows-1252, CRLF line ends.
    let mut bytes = b"T\xE9l\xE9phone;Pr\xE9nom;Nom;Date de naissance\r\n".to_vec();
    bytes.extend(b"06 12 34 56 78;Ren\xE9e;L\xE9ger;1980-02-29\r\n");
    bytes.extend(b"612345679;Fran\xE7ois;M\xFCller;\r\n");
    bytes.extend(b"06 12;Zo\xE9;Ab;1981-02-29\r\n");
    dir.write("export.csv", bytes);
    let out = dir.run(&["validate", "export.csv"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("export.report.csv");
    assert_eq!(
        triples(&report),
        vec![
            (2, "valid", ""),
            (3, "valid", ""),
            (4, "invalid", "PHONE_INVALID|DATE_INVALID"),
        ]
    );
    assert_eq!(report[0].phone, "+33612345678");
    assert_eq!(report[1].phone, "+33612345679");
    assert_eq!(report[2].phone, "06 12");
}

#[test]
fn utf8_bom_tab_separated_english_headers() {
    let dir = Dir::new();
    let text = "\u{feff}Mobile\tFirst Name\tLast Name\tWebsite\n\
                +44 7400 123456\tZoë\tBrontë\thttps://example.com\n\
                +33 (0)6 12 34 56 78\tA\tB\tftp://example.com\n";
    dir.write("in.tsv", text);
    let out = dir.run(&["validate", "in.tsv", "--report", "r.csv"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("r.csv");
    assert_eq!(
        triples(&report),
        vec![(2, "valid", ""), (3, "invalid", "URL_INVALID")]
    );
    assert_eq!(report[0].phone, "+447400123456");
    assert_eq!(report[1].phone, "+33612345678");
}

#[test]
fn quoted_newlines_blank_lines_and_a_ragged_row_keep_line_numbers() {
    let dir = Dir::new();
    let text = "phone,firstname,custom1\n\
                0612345678,\"Anne\nMarie\",x\n\
                \n\
                ;;\n\
                0612345679,Bob,x,y\n\
                \n\
                0612345680,\"multi\n\nline\",\"a, \"\"quoted\"\" cell\"\n\
                0612345681,Eve,z\n";
    dir.write("in.csv", text);
    let out = dir.run(&["validate", "in.csv", "--delimiter", ",", "--report", "-"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1);
    let report = crate::util::parse_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        triples(&report),
        vec![
            (2, "valid", ""),
            // One field short of the header: the missing ones are empty (SPEC §3).
            (5, "invalid", "PHONE_INVALID"),
            (6, "invalid", "ROW_MALFORMED"),
            (8, "valid", ""),
            (11, "valid", ""),
        ]
    );
    assert!(
        report[2].message.contains("4 cells"),
        "{}",
        report[2].message
    );
}

#[test]
fn a_five_mib_field_is_malformed_and_the_run_goes_on() {
    let dir = Dir::new();
    let mut bytes = b"phone,firstname\n0612345678,".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
    bytes.extend(b"\n0612345679,Bob\n");
    dir.write("big.csv", bytes);
    let out = dir.run(&["validate", "big.csv"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1);
    let report = dir.report("big.report.csv");
    assert_eq!(
        triples(&report),
        vec![(2, "invalid", "ROW_MALFORMED"), (3, "valid", "")]
    );
}

#[test]
fn random_binary_is_a_file_error_not_a_panic() {
    let dir = Dir::new();
    let mut rng = contact_sync::rng::SplitMix64::new(0x2545_F491_4F6C_DD1D);
    let bytes: Vec<u8> = (0..200_000).map(|_| (rng.next_u64() >> 24) as u8).collect();
    dir.write("noise.bin", bytes);
    let out = dir.run(&["validate", "noise.bin"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no phone number column"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_file_no_phone_column_and_header_only() {
    let dir = Dir::new();
    dir.write("empty.csv", "");
    let out = dir.run(&["validate", "empty.csv"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));

    dir.write("nophone.csv", "name,email\nBob,bob@example.com\n");
    let out = dir.run(&["validate", "nophone.csv"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no phone number column"));

    dir.write("header.csv", "phone,firstname\n");
    let out = dir.run(&["validate", "header.csv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dir.report("header.report.csv"), vec![]);
}

#[test]
fn missing_input_file_is_exit_2() {
    let dir = Dir::new();
    let out = dir.run(&["validate", "nope.csv"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("nope.csv"));
}

#[test]
fn duplicates_name_the_first_line_and_stdin_works() {
    let dir = Dir::new();
    let out = dir
        .command()
        .args(["validate", "-", "--report", "-"])
        .write_stdin("tel,prénom\n0612345678,A\n+33 6 12 34 56 78,B\n0033612345678,C\n")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let report = crate::util::parse_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        triples(&report),
        vec![
            (2, "valid", ""),
            (3, "invalid", "DUPLICATE_PHONE"),
            (4, "invalid", "DUPLICATE_PHONE")
        ]
    );
    assert!(
        report[1].message.contains("line 2"),
        "{}",
        report[1].message
    );
}

#[test]
fn rejects_keep_original_cells_and_summary_json_counts() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "Portable;Prénom;Couleur\n0612345678;Anne;bleu\nabc;=cmd;rouge\n",
    );
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--rejects",
        "rejects.csv",
        "--summary-json",
        "summary.json",
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("Couleur"),
        "unknown column named in a warning"
    );
    let rejects = std::fs::read(dir.path("rejects.csv")).unwrap();
    assert!(rejects.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(rejects[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Portable;Prénom;Couleur;error_code;error_message");
    assert!(
        lines[1].starts_with("abc;'=cmd;rouge;PHONE_INVALID;"),
        "{}",
        lines[1]
    );
    assert_eq!(lines.len(), 2);
    let summary: serde_json::Value = serde_json::from_str(&dir.read("summary.json")).unwrap();
    assert_eq!(summary["rows"], 2);
    assert_eq!(summary["outcomes"]["valid"], 1);
    assert_eq!(summary["outcomes"]["invalid"], 1);
    assert_eq!(summary["codes"]["PHONE_INVALID"], 1);
}

#[test]
fn map_overrides_the_header_and_formulas_are_neutralised() {
    let dir = Dir::new();
    dir.write("in.csv", "Cell B,phone,Note\n0612345678,=HYPERLINK(1),x\n");
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--map",
        "phoneNumber=Cell B",
        "--map",
        "custom1=Note",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = dir.read("in.report.csv");
    assert!(text.contains("+33612345678"));

    dir.write("bad.csv", "phone,firstname\n=1+1,x\n");
    let out = dir.run(&["validate", "bad.csv"]);
    assert_eq!(code(&out), 1);
    let report = dir.report("bad.report.csv");
    assert_eq!(report[0].phone, "'=1+1");
}

/// Regression: a report piped into `head` used to hang the run (the reader
/// thread waited forever on a channel no one read).
#[test]
fn report_to_a_closed_pipe_ends_quietly() {
    let dir = Dir::new();
    let mut text = String::from("phone,firstname\n");
    for i in 0..30_000 {
        text.push_str(&format!("+336{:08},Name{i}\n", 10_000_000 + i));
    }
    dir.write("big.csv", text);
    let bin = assert_cmd::cargo::cargo_bin("contact-sync");
    let out = assert_cmd::Command::new("bash")
        .current_dir(dir.path(""))
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' validate big.csv --report - | head -n 1",
            bin.display()
        ))
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line,outcome,code,message,phone,contact_id\n"
    );
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn max_invalid_refuses_the_same_files_as_sync_would() {
    let dir = Dir::new();
    // 2 invalid rows of 4: 50%.
    dir.write("in.csv", "phone\n0612345678\n06 12\n06 13\n0612345679\n");
    for (limit, want) in [("1", 2), ("2", 1), ("50%", 1), ("49%", 2), ("0%", 2)] {
        let out = dir.run(&[
            "validate",
            "in.csv",
            "--max-invalid",
            limit,
            "--summary-json",
            "summary.json",
        ]);
        assert_eq!(code(&out), want, "--max-invalid {limit}: {}", stderr(&out));
        if want == 2 {
            assert!(
                stderr(&out).contains(&format!(
                    "2 of 4 rows are invalid, more than --max-invalid {limit} allows"
                )),
                "{}",
                stderr(&out)
            );
        }
        // The report and the summary are whole either way: they say what to fix.
        let report = dir.report("in.report.csv");
        assert_eq!(
            triples(&report),
            [
                (2, "valid", ""),
                (3, "invalid", "PHONE_INVALID"),
                (4, "invalid", "PHONE_INVALID"),
                (5, "valid", "")
            ]
        );
        let summary: serde_json::Value = serde_json::from_str(&dir.read("summary.json")).unwrap();
        assert_eq!(summary["outcomes"]["invalid"], 2);

        // A dry run with the same limit decides alike (it sends nothing either way).
        let out = dir.run(&[
            "sync",
            "in.csv",
            "--provider",
            "smspartner",
            "--group-id",
            "g1",
            "--dry-run",
            "--no-state",
            "--max-invalid",
            limit,
            "--report",
            "dry.csv",
        ]);
        assert_eq!(
            code(&out),
            want,
            "sync --max-invalid {limit}: {}",
            stderr(&out)
        );
    }

    let out = dir.run(&["validate", "in.csv", "--max-invalid", "lots"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("expected a count like 10 or a share like 5%"));
    // No rows, nothing to refuse.
    dir.write("header.csv", "phone\n");
    let out = dir.run(&["validate", "header.csv", "--max-invalid", "0"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// `--report /dev/null` and friends: a path that is a device or a FIFO is
/// written in place, never replaced by a renamed file (as root, that
/// replaced /dev/null with a regular file). FIFOs stand in for the device,
/// held open for reading and writing here so nothing blocks.
#[cfg(unix)]
#[test]
fn a_report_to_a_fifo_or_device_is_written_in_place_not_replaced() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = Dir::new();
    dir.write("in.csv", "phone\n0612345678\n06 12\n");
    let mut ends = Vec::new();
    for name in ["report.fifo", "other.fifo"] {
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path(name))
            .status()
            .unwrap();
        assert!(made.success());
        let end = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path(name))
            .unwrap();
        ends.push(end);
    }
    // Two outputs on one device destroy nothing: allowed.
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--report",
        "report.fifo",
        "--rejects",
        "other.fifo",
        "--summary-json",
        "other.fifo",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    for name in ["report.fifo", "other.fifo"] {
        let meta = std::fs::metadata(dir.path(name)).unwrap();
        assert!(meta.file_type().is_fifo(), "{name} is still a FIFO");
        assert!(!dir.path(&format!("{name}.partial")).exists());
    }
    let mut buf = vec![0; 4096];
    let n = ends[0].read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("line,outcome,code,message,phone,contact_id\n2,valid,"),
        "{text}"
    );
    let n = ends[1].read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("PHONE_INVALID"));
}
