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

/// Runs `validate in.csv` on `bytes` with `extra` flags: exit code, report, stderr.
fn validate_bytes(dir: &Dir, bytes: &[u8], extra: &[&str]) -> (i32, Vec<Line>, String) {
    dir.write("in.csv", bytes);
    let mut args = vec!["validate", "in.csv"];
    args.extend(extra);
    let out = dir.run(&args);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let report = if dir.path("in.report.csv").exists() {
        dir.report("in.report.csv")
    } else {
        Vec::new()
    };
    (code(&out), report, err)
}

#[test]
fn nul_bytes_are_row_problems_and_shown_visibly_in_messages() {
    let dir = Dir::new();
    let (rc, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\n0612345678,a\x00b\n\x00\x00\x00\n0612345679,ok\n",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(
        triples(&report),
        [
            (2, "valid", ""),
            (3, "invalid", "PHONE_INVALID"),
            (4, "valid", "")
        ]
    );
    assert_eq!(report[1].phone, "\\0\\0\\0");
    // A header cell with a NUL is named, in words, in the warning.
    let (rc, _, err) = validate_bytes(&dir, b"phone,na\x00me\n0612345678,a\n", &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        err.contains(
            "ignoring columns with no matching field: \"name\" (with a control character (U+0000)"
        ),
        "{err}"
    );
    assert!(!err.contains('\0'));
}

#[test]
fn invalid_utf8_inside_a_utf8_file_is_read_as_windows_1252_or_refused_when_forced() {
    let dir = Dir::new();
    let file =
        b"phone,firstname\n0612345678,Zo\xc3\xab\n0612345679,a\xff\xfeb\n0612345670,\xc3\x89lise\n";
    let (rc, report, err) = validate_bytes(&dir, file, &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(report.len(), 3);
    assert!(err.contains("Windows-1252"), "{err}");
    let (rc, report, _) = validate_bytes(&dir, file, &["--encoding", "utf-8"]);
    assert_eq!(rc, 1);
    assert_eq!(
        triples(&report),
        [
            (2, "valid", ""),
            (3, "invalid", "ROW_MALFORMED"),
            (4, "valid", "")
        ]
    );
}

#[test]
fn a_header_of_100_000_columns_is_read_and_the_warning_stays_short() {
    let dir = Dir::new();
    let mut file = String::from("phone");
    for i in 0..100_000 {
        file.push_str(&format!(",c{i}"));
    }
    file.push_str("\n0612345678");
    file.push_str(&",".repeat(100_000));
    file.push('\n');
    let (rc, report, err) = validate_bytes(&dir, file.as_bytes(), &[]);
    assert_eq!(rc, 0, "{}", &err[..err.len().min(2000)]);
    assert_eq!(triples(&report), [(2, "valid", "")]);
    assert!(err.contains("c0, c1,") && err.contains("and 99980 more"));
    assert!(err.len() < 10_000, "the warning names a few columns only");
}

#[test]
fn a_50_mib_line_is_one_malformed_row_and_reading_goes_on() {
    let dir = Dir::new();
    for filler in [b'x', b','] {
        let mut file = b"phone,name\n0612345678,".to_vec();
        file.resize(file.len() + (50 << 20), filler);
        file.extend(b"\n0612345679,ok\n");
        let (rc, report, _) = validate_bytes(&dir, &file, &[]);
        assert_eq!(rc, 1, "filler {}", filler as char);
        assert_eq!(
            triples(&report),
            [(2, "invalid", "ROW_MALFORMED"), (3, "valid", "")],
            "filler {}",
            filler as char
        );
        assert!(report[0].message.contains("longer than 1048576 bytes"));
    }
}

#[test]
fn ten_million_blank_lines_produce_no_rows_and_keep_line_numbers() {
    let dir = Dir::new();
    let mut file = b"phone\n0612345678\n".to_vec();
    file.resize(file.len() + 10_000_000, b'\n');
    file.extend(b"0612345679\n");
    let (rc, report, _) = validate_bytes(&dir, &file, &[]);
    assert_eq!(rc, 0);
    assert_eq!(
        triples(&report),
        [(2, "valid", ""), (10_000_003, "valid", "")]
    );
}

#[test]
fn cr_only_line_endings_keep_physical_line_numbers() {
    let dir = Dir::new();
    let (rc, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\r0612345678,a\r\r\"0612345679\",\"b\rc\"\rbad,d\r",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(
        triples(&report),
        [
            (2, "valid", ""),
            (4, "valid", ""),
            (6, "invalid", "PHONE_INVALID")
        ]
    );
}

#[test]
fn a_header_repeated_mid_file_is_named_and_the_rows_after_it_are_read() {
    let dir = Dir::new();
    let (rc, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\n0612345678,a\n Phone ,firstname\n0612345679,b\n",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(
        triples(&report),
        [
            (2, "valid", ""),
            (3, "invalid", "PHONE_INVALID"),
            (4, "valid", "")
        ]
    );
    // ` Phone ` is not `phone`: only cells equal to the header's (trimmed) count.
    assert_eq!(report[1].phone, " Phone ");
    let (_, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\n0612345678,a\nphone,firstname\n0612345679,b\n",
        &[],
    );
    assert_eq!(report[1].code, "ROW_MALFORMED");
    assert!(
        report[1].message.contains("repeats the header of line 1"),
        "{}",
        report[1].message
    );
}

#[test]
fn a_quote_never_closed_names_its_line_and_the_lines_it_swallowed() {
    let dir = Dir::new();
    let (rc, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\n0612345678,a\n0612345679,\"open\n0612345670,c\n0612345671,d\n",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(
        triples(&report),
        [(2, "valid", ""), (3, "invalid", "ROW_MALFORMED")]
    );
    assert!(
        report[1].message.contains(
            "a quote opened on line 3 is never closed: it swallowed the 2 lines after it"
        ),
        "{}",
        report[1].message
    );
    // Closed quotes spanning lines, and `""` inside them, are no such thing.
    let (rc, report, _) = validate_bytes(
        &dir,
        b"phone,firstname\n0612345678,\"a\n\"\"b\"\"\"\n0612345679,x\"y\n",
        &[],
    );
    assert_eq!(rc, 0, "{report:?}");
    assert_eq!(triples(&report), [(2, "valid", ""), (4, "valid", "")]);
}

/// Rows appended while a run is under way are not read, by any pass: the
/// run reads the length the file had when it started, says so, and the next
/// run takes the rest.
#[test]
fn a_file_that_grows_while_it_is_read_is_read_as_it_was_opened() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(5, 0);
    dir.write("in.csv", csv_of(&phones[..3]));
    sb.handle().hold_from(1);
    let url = sb.url();
    let args = [
        "sync",
        "in.csv",
        "--provider",
        "smspartner",
        "--base-url",
        &url,
        "--group-id",
        "g1",
        "--no-state",
        "--concurrency",
        "1",
    ];
    let mut child = spawn(&dir, &args, std::process::Stdio::null());
    let mut err = child.stderr.take().unwrap();
    assert!(
        sb.handle().wait_held(1, std::time::Duration::from_secs(60)),
        "no request was held"
    );
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("in.csv"))
        .unwrap();
    use std::io::{Read, Write};
    write!(more, "{},Late,Row\n{},Half", phones[3], phones[4]).unwrap();
    drop(more);
    sb.handle().release();
    let status = child.wait().unwrap();
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("the input grew by"), "{text}");
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 3, "{report:?}");
    let held = sb.group_phones("g1");
    assert_eq!(
        held.keys().cloned().collect::<Vec<_>>(),
        {
            let mut p = phones[..3].to_vec();
            p.sort();
            p
        },
        "only the rows the file had when the run started"
    );
    assert!(held.values().all(|n| *n == 1));
}

/// `validate` reads a growing file as `sync` does: up to the length it had
/// when opened, with the same warning. The report goes to a pipe the test
/// does not drain, so the run stops writing (and, its channels full, reading)
/// far from the end of the file; the rows are appended then.
#[test]
fn validate_reads_a_growing_file_as_it_was_opened() {
    use std::io::{BufRead, BufReader, Read, Write};
    // Far more rows than the run holds in its buffers while blocked on the
    // pipe (look-ahead, batches in flight, the report's buffer, the pipe).
    const ROWS: usize = 40_000;
    let dir = Dir::new();
    let phones = numbers(ROWS + 2, 0);
    dir.write("in.csv", csv_of(&phones[..ROWS]));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .current_dir(dir.path(""))
        .env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", dir.state_home())
        .args(["validate", "in.csv", "--report", "-", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // Report bytes come only once the input is open (its length fixed).
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(
        first.trim_end(),
        "line,outcome,code,message,phone,contact_id"
    );
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("in.csv"))
        .unwrap();
    write!(more, "{},Late,Row\n{},Half", phones[ROWS], phones[ROWS + 1]).unwrap();
    drop(more);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("the input grew by"), "{err}");
    let report = parse_report(&format!("{first}{rest}"));
    assert_eq!(report.len(), ROWS, "only the rows the file had when opened");
    assert_eq!(report.last().map(|l| l.line), Some(ROWS as u64 + 1));
    assert!(report.iter().all(|l| l.outcome == "valid"));
    // Run again once complete: every row, and no warning.
    let out = dir.run(&["validate", "in.csv", "--report", "r.csv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("grew"), "{}", stderr(&out));
    assert_eq!(dir.report("r.csv").len(), ROWS + 2);
}

/// Regression (property tests): a UTF-16 file whose byte count is odd ends
/// in half a character; the reader panicked on the read after it.
#[test]
fn a_utf16_file_with_an_odd_byte_count_reads_without_a_panic() {
    let dir = Dir::new();
    let mut file = vec![0xFF, 0xFE];
    for unit in "phone,firstname\n0612345678,Zoé\n".encode_utf16() {
        file.extend(unit.to_le_bytes());
    }
    file.push(b'x');
    let (rc, report, err) = validate_bytes(&dir, &file, &[]);
    assert_eq!(rc, 1, "{err}");
    // The half character is a replacement character on a line of its own.
    assert_eq!(
        triples(&report),
        [(2, "valid", ""), (3, "invalid", "PHONE_INVALID")]
    );
}

/// `sync in.csv` to SMS Partner group `g1` at `url`, then `extra`.
fn to<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["in.csv", "--provider", "smspartner", "--base-url", url];
    args.extend(["--group-id", "g1"]);
    args.extend_from_slice(extra);
    args
}

/// A self-signed certificate authority, only for `SSL_CERT_FILE` here: the
/// platform's store as the test makes it (one root).
const TEST_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAT+gAwIBAgIUYX1M6uTPXIkiFaSQgV9o4TreBvEwCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWY29udGFjdC1zeW5jLXRlc3Qtcm9vdDAgFw0yNjEyMDIxNTQ4
MjdaGA8yMTI2MTEwODE1NDgyN1owITEfMB0GA1UEAwwWY29udGFjdC1zeW5jLXRl
c3Qtcm9vdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAXOt7GiLZ91DUCozeCY
8z6K5mRr8G5+GNMYAVy3hH3eqhS9Q+Md1Xz4GjaV0y0jamqvJtxfCWEqcjrntovG
nCSjUzBRMB0GA1UdDgQWBBQ1cYAlz6PVh7kfhr2X0Tg3HjMoyjAfBgNVHSMEGDAW
gBQ1cYAlz6PVh7kfhr2X0Tg3HjMoyjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0kAMEYCIQCC+JVtZuc+ahnMAHSXxNQqMxIKSJYuyzjg02oY9hKlLAIhAN0Q
m1U41b2XmiRuRG1YGK5MVg/n6gdEXL3GhYX85+wU
-----END CERTIFICATE-----
";

/// A loopback listener that no one should reach: after the run, whether a
/// connection came (the backlog keeps one even if the client left).
struct Untouched(std::net::TcpListener);

impl Untouched {
    fn bind(ip: &str) -> Untouched {
        Untouched(std::net::TcpListener::bind((ip, 0)).unwrap())
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.0.local_addr().unwrap()
    }

    fn reached(&self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A sync run with the test key, `env` set and the platform's certificate
/// variables cleared unless `env` sets them.
fn sync_env(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = dir.command();
    cmd.env("CONTACT_SYNC_API_KEY", KEY)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("sync").args(args).output().unwrap()
}

/// With no certificate authority on the platform, no HTTPS server can be
/// verified: the run stops with exit 2 and says how to fix it, before any
/// output exists or any connection is made. A dry run sends nothing, so it
/// needs no roots.
#[test]
fn https_with_no_trusted_roots_is_refused_before_any_connection() {
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(2, 0)));
    let server = Untouched::bind("127.0.0.1");
    let url = format!("https://{}", server.addr());
    let missing = dir.path("no-such-bundle.pem");
    let env = [("SSL_CERT_FILE", missing.to_str().unwrap())];
    let args = to(&url, &["--no-state"]);
    let out = sync_env(&dir, &args, &env);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("no trusted certificate authorities"), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");
    assert!(
        err.contains("no-such-bundle.pem"),
        "names where it looked: {err}"
    );
    assert!(!err.contains(KEY));
    assert!(!server.reached(), "a connection was made");
    assert!(!dir.path("in.report.csv").exists());
    assert!(!dir.path("in.report.csv.partial").exists());
    // `state rebuild` lists over the network: refused the same way.
    let mut cmd = dir.command();
    let out = cmd
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("SSL_CERT_FILE", &missing)
        .env_remove("SSL_CERT_DIR")
        .args(["state", "rebuild", "--provider", "smspartner"])
        .args(["--base-url", &url, "--group-id", "g1"])
        .args(["--state", dir.path("s.db").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no trusted certificate authorities"));
    assert!(!server.reached(), "a connection was made");
    // A dry run sends nothing and needs none.
    let out = sync_env(&dir, &to(&url, &["--no-state", "--dry-run"]), &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!server.reached());
}

/// With the platform's roots (here a store of one, through `SSL_CERT_FILE`)
/// the run goes ahead and speaks TLS: the first bytes the server gets are a
/// TLS handshake, not a request with the key in clear.
#[test]
fn https_speaks_tls_with_the_platform_roots() {
    use std::io::Read;
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(1, 0)));
    let bundle = dir.write("roots.pem", TEST_ROOT);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Takes one connection, keeps its first bytes and hangs up (no TLS
    // server here: the client fails the handshake at once).
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut first = [0u8; 3];
        let n = conn.read(&mut first).unwrap_or(0);
        first[..n].to_vec()
    });
    let url = format!("https://{addr}");
    let out = sync_env(
        &dir,
        &to(&url, &["--no-state", "--max-retries", "0"]),
        &[("SSL_CERT_FILE", bundle.to_str().unwrap())],
    );
    // Wake the server if the run never connected; it then sees no handshake.
    let _ = std::net::TcpStream::connect(addr);
    let first = server.join().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("no trusted certificate authorities"), "{err}");
    assert_ne!(code(&out), 2, "{err}");
    assert_eq!(
        first.get(..2),
        Some(&[0x16, 0x03][..]),
        "a TLS handshake record: {first:?} {err}"
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].outcome, "failed", "{report:?}");
}

/// Plain http carries the key in clear: refused for a host that is not
/// loopback (SPEC §2), as a usage error (exit 2) before anything is read or
/// sent, whichever way the URL is given. `0.0.0.0` reaches this machine's
/// sandbox but is not loopback: with the check gone the sandbox would see
/// the requests.
#[test]
fn plain_http_to_a_host_that_is_not_loopback_is_refused_before_any_request() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(2, 0)));
    let port = sb
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let wildcard = format!("http://0.0.0.0:{port}");
    let out = sync(&dir, &to(&wildcard, &["--no-state"]));
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains("plain http would send the API key in clear"),
        "{err}"
    );
    assert_eq!(requests(&sb), 0, "nothing reached the server");
    assert!(!dir.path("in.report.csv").exists());
    // Names and addresses that only look like loopback, in a flag, a config
    // file, and for `state`; a dry run checks too (it sends nothing anyway).
    for url in [
        "http://api.example.com",
        "http://localhost.example.com:8080",
        "http://127.0.0.1.example.com",
        "http://[::ffff:127.0.0.1]:8080",
        "http://192.0.2.1",
    ] {
        let out = sync(&dir, &to(url, &["--dry-run"]));
        assert_eq!(code(&out), 2, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--allow-insecure-http"),
            "{url}: {}",
            stderr(&out)
        );
    }
    dir.write(
        "nightly.toml",
        "provider = \"smspartner\"\nbase-url = \"http://api.example.com\"\ngroup-id = \"g1\"\n",
    );
    let out = sync(&dir, &["in.csv", "--config", "nightly.toml", "--dry-run"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
    let out = dir.run(&[
        "state",
        "show",
        "--provider",
        "smspartner",
        "--base-url",
        "http://api.example.com",
        "--group-id",
        "g1",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
}

/// Loopback by name or address may use plain http (the sandbox, test rigs):
/// the whole suite relies on `127.0.0.1`; `localhost` works the same.
/// `--allow-insecure-http` is the operator's explicit opt-in for any other
/// host (SPEC §2), checked here without sending anything.
#[test]
fn plain_http_to_loopback_is_accepted_and_elsewhere_only_when_allowed() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(2, 0);
    dir.write("in.csv", csv_of(&phones));
    let local = sb.url().replace("127.0.0.1", "localhost");
    let out = sync(&dir, &to(&local, &["--no-state"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sb.group_phones("g1").len(), 2);
    let allowed = ["--allow-insecure-http", "--dry-run", "--no-state"];
    let out = sync(&dir, &to("http://api.example.com", &allowed));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// A loopback server that answers every request with a `307` to another
/// host, and a second host that must never be reached: a redirect would
/// take the body, and the key in it, there.
#[test]
fn a_redirect_to_another_host_is_not_followed_with_the_key() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let elsewhere = Untouched::bind("127.0.0.2");
    let target = format!("http://{}/v1/contact/add", elsewhere.addr());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let server = {
        let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut conn = conn.unwrap();
                // Read the head and the body it announces, then redirect.
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let mut want = None;
                while want.is_none_or(|w| got.len() < w) {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if want.is_none()
                        && let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
                    {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        want = Some(end + 4 + len);
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        })
    };
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(2, 0)));
    let base = format!("http://{addr}");
    let out = sync(
        &dir,
        &to(&base, &["--no-state", "--max-retries", "0", "-vv"]),
    );
    stop.store(true, Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(addr);
    server.join().unwrap();
    let err = stderr(&out);
    assert!(
        seen.load(Ordering::SeqCst) >= 1,
        "the run reached its server: {err}"
    );
    assert!(!elsewhere.reached(), "the redirect was followed: {err}");
    assert!(matches!(code(&out), 1 | 3), "{err}");
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 2, "{report:?}");
    assert!(report.iter().all(|l| l.outcome != "added"), "{report:?}");
    assert_key_absent(&out, &dir, &["in.report.csv"]);
}
