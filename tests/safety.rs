//! One-keystroke mistakes and stopped runs: no output may destroy the input,
//! an unusable output stops the run before anything is sent, a stopped run
//! still reports every row truthfully, and streams are read safely.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use contact_sync::sandbox::faults::FaultSettings;

use crate::util::*;

#[test]
fn an_output_that_is_the_input_is_refused_and_the_input_is_untouched() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let original = csv_of(&numbers(50, 0));
    let input = dir.write("in.csv", &original);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&input, dir.path("link.csv")).unwrap();
    std::fs::hard_link(&input, dir.path("hard.csv")).unwrap();
    let mut aliases = vec!["in.csv", "./in.csv", "hard.csv"];
    if cfg!(unix) {
        aliases.push("link.csv");
    }
    for flag in ["--report", "--rejects", "--summary-json"] {
        for alias in &aliases {
            for command in ["validate", "sync"] {
                let mut args = vec![command, "in.csv", flag, alias];
                let url = sb.url();
                if command == "sync" {
                    args.extend(["--provider", "smspartner", "--base-url", &url]);
                    args.extend(["--group-id", "g1"]);
                }
                let out = dir
                    .command()
                    .env("CONTACT_SYNC_API_KEY", KEY)
                    .args(&args)
                    .output()
                    .unwrap();
                let err = stderr(&out);
                assert_eq!(code(&out), 2, "{command} {flag} {alias}: {err}");
                assert!(
                    err.contains(flag) && err.contains(alias) && err.contains("in.csv"),
                    "the message names both paths: {err}"
                );
                assert_eq!(dir.read("in.csv"), original, "{command} {flag} {alias}");
                assert!(!dir.path("in.report.csv").exists());
                assert!(!dir.path("in.report.csv.partial").exists());
            }
        }
    }
    assert_eq!(requests(&sb), 0, "nothing was sent");
}

#[test]
fn two_outputs_on_one_file_are_refused() {
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--report",
        "out.csv",
        "--rejects",
        "./out.csv",
    ]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("--report out.csv") && err.contains("--rejects ./out.csv"),
        "{err}"
    );
    assert!(!dir.path("out.csv").exists());
}

#[test]
fn an_unwritable_summary_path_sends_nothing_and_leaves_nothing() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(20, 0)));
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--summary-json", "no/such/dir/s.json"],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no/such/dir/s.json"),
        "{}",
        stderr(&out)
    );
    assert_eq!(requests(&sb), 0, "nothing was sent");
    assert!(!dir.path("in.report.csv").exists());
    assert!(
        !dir.path("in.report.csv.partial").exists(),
        "no half-made report is left"
    );
}

#[test]
fn a_report_on_a_closed_pipe_stops_the_sending_with_exit_3() {
    let sb = Sandbox::start(FaultSettings {
        latency: Duration::from_millis(20),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(2_000, 0)));
    let url = sb.url();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .current_dir(dir.path(""))
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("XDG_STATE_HOME", dir.state_home())
        .args([
            "-v",
            "sync",
            "in.csv",
            "--provider",
            "mobivate",
            "--base-url",
            &url,
        ])
        .args(["--rate", "100000", "--concurrency", "1", "--report", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = stderr_lines(&mut child);
    wait_for(&mut lines, "adding 1 rows");
    // The reader goes away once sending has begun.
    drop(child.stdout.take());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let err = rest.join("\n");
    assert!(
        err.contains("cannot write report standard output"),
        "names the output: {err}"
    );
    assert!(!err.contains("internal"), "{err}");
    let added = sb.state().mobivate.len();
    assert!(added < 2_000, "the sending stopped ({added} added)");
}

#[test]
fn a_sync_report_on_a_pipe_closed_before_it_starts_sends_nothing() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(20, 0)));
    let url = sb.url();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .current_dir(dir.path(""))
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("XDG_STATE_HOME", dir.state_home())
        .args([
            "sync",
            "in.csv",
            "--provider",
            "mobivate",
            "--base-url",
            &url,
        ])
        .args(["--report", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(requests(&sb), 0);
}

#[cfg(unix)]
#[test]
fn a_killed_run_leaves_a_partial_report_that_the_next_run_names() {
    let slow = Sandbox::start(FaultSettings {
        latency: Duration::from_secs(60),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(5, 0)));
    let url = slow.url();
    let (mut child, mut lines) = spawn_mobivate(&dir, &url, &[]);
    wait_for(&mut lines, "adding 1 rows");
    signal(&child, "KILL");
    child.wait().unwrap();
    assert!(
        !dir.path("in.report.csv").exists(),
        "never a half report at the final path"
    );
    let partial = dir.read("in.report.csv.partial");
    assert!(
        partial.starts_with("line,outcome,code,message,phone,contact_id"),
        "never a 0-byte report: {partial:?}"
    );

    let calm = Sandbox::calm();
    let out = calm.sync(&dir, "mobivate", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in.report.csv.partial was left by a run that did not finish"),
        "{}",
        stderr(&out)
    );
    assert_eq!(dir.report("in.report.csv").len(), 5);
    assert!(!dir.path("in.report.csv.partial").exists());
}

/// A run interrupted by `sig` while it checks a large file: every row is
/// reported, nothing is sent, exit 3.
#[cfg(unix)]
fn interrupt_during_the_first_pass(sig: &str) {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let rows = 60_000;
    dir.write("in.csv", csv_of(&numbers(rows, 0)));
    let url = sb.url();
    let (mut child, mut lines) = spawn_mobivate(&dir, &url, &[]);
    wait_for(&mut lines, "checking every row before sending");
    signal(&child, sig);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), rows, "every line is reported");
    assert!(report.iter().all(|l| l.outcome == "not_attempted"));
    assert_eq!(requests(&sb), 0, "nothing was sent");
}

#[cfg(unix)]
#[test]
fn sigint_during_the_first_pass_reports_every_row_and_sends_nothing() {
    interrupt_during_the_first_pass("INT");
}

#[cfg(unix)]
#[test]
fn sigterm_during_the_first_pass_reports_every_row_and_sends_nothing() {
    interrupt_during_the_first_pass("TERM");
}

#[cfg(unix)]
#[test]
fn sigint_while_standard_input_is_spooled_reports_what_came_and_leaves_no_spool() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let url = sb.url();
    let mut child = spawn(
        &dir,
        &[
            "-v",
            "sync",
            "-",
            "--provider",
            "mobivate",
            "--base-url",
            &url,
        ],
        Stdio::piped(),
    );
    // Ten rows in one write, and the stream left open, as a hung producer would.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(csv_of(&numbers(10, 0)).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut lines = stderr_lines(&mut child);
    wait_for(&mut lines, "spooled the first");
    signal(&child, "INT");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let report = dir.report("stdin.report.csv");
    assert_eq!(report.len(), 10, "every row that came is reported");
    assert!(report.iter().all(|l| l.outcome == "not_attempted"));
    assert_eq!(requests(&sb), 0);
    let left: Vec<_> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "stdin.report.csv")
        .collect();
    assert!(left.is_empty(), "no spool left in TMPDIR: {left:?}");
}

/// Interrupts (`signals` times, with `sig`) a run whose requests hang; returns the report.
#[cfg(unix)]
fn interrupt_hung_requests(sig: &str, signals: usize) -> Vec<Line> {
    let sb = Sandbox::start(FaultSettings {
        latency: Duration::from_secs(120),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(12, 0)));
    let url = sb.url();
    let (mut child, mut lines) =
        spawn_mobivate(&dir, &url, &["--concurrency", "2", "--rate", "1000"]);
    wait_for(&mut lines, "adding 1 rows");
    wait_for(&mut lines, "adding 1 rows");
    signal(&child, sig);
    if signals > 1 {
        wait_for(&mut lines, "interrupted: sending nothing more");
        signal(&child, sig);
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("abandoning the requests still in flight")),
        "{rest:?}"
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 12, "every line is reported");
    report
}

#[cfg(unix)]
fn assert_hung_outcomes(report: &[Line]) {
    let unconfirmed: Vec<_> = report.iter().filter(|l| l.outcome == "failed").collect();
    assert!(!unconfirmed.is_empty(), "{report:?}");
    assert!(
        unconfirmed.len() <= 2,
        "at most the requests in flight: {report:?}"
    );
    for l in &unconfirmed {
        assert_eq!(l.code, "UNCONFIRMED", "{l:?}");
        assert!(l.message.contains("may have been applied"), "{l:?}");
    }
    assert_eq!(
        report
            .iter()
            .filter(|l| l.outcome == "not_attempted")
            .count(),
        12 - unconfirmed.len(),
        "{report:?}"
    );
}

#[cfg(unix)]
#[test]
fn sigint_with_hung_requests_reports_them_unconfirmed_after_the_grace() {
    assert_hung_outcomes(&interrupt_hung_requests("INT", 1));
}

#[cfg(unix)]
#[test]
fn sigterm_with_hung_requests_reports_them_unconfirmed_after_the_grace() {
    assert_hung_outcomes(&interrupt_hung_requests("TERM", 1));
}

#[cfg(unix)]
#[test]
fn a_second_sigint_stops_at_once_and_still_reports_every_row() {
    assert_hung_outcomes(&interrupt_hung_requests("INT", 2));
}

#[test]
fn standard_input_is_synced_end_to_end() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(30, 0);
    let url = sb.url();
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("TMPDIR", dir.path(""))
        .args(["sync", "-", "--provider", "smspartner", "--base-url", &url])
        .args(["--group-id", "g1"])
        .write_stdin(csv_of(&phones))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("stdin.report.csv");
    assert_eq!(report.len(), 30);
    assert!(report.iter().all(|l| l.outcome == "added"));
    let held = sb.group_phones("g1");
    assert_eq!(held.len(), 30);
    assert!(held.values().all(|n| *n == 1));
}

#[cfg(unix)]
#[test]
fn a_fifo_is_synced_end_to_end() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let fifo = dir.path("pipe.csv");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let phones = numbers(25, 0);
    let text = csv_of(&phones);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || std::fs::write(writer_path, text).unwrap());
    let url = sb.url();
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("TMPDIR", dir.path(""))
        .args([
            "sync",
            "pipe.csv",
            "--provider",
            "smspartner",
            "--base-url",
            &url,
        ])
        .args(["--group-id", "g1"])
        .output()
        .unwrap();
    if !writer.is_finished() {
        // The run never opened the FIFO: take the writer's bytes so the test ends.
        let _ = std::fs::read(&fifo);
    }
    writer.join().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dir.report("pipe.report.csv").len(), 25);
    assert_eq!(sb.group_phones("g1").len(), 25);
}

#[cfg(unix)]
#[test]
fn an_endless_stream_is_refused_within_bounded_disk() {
    let dir = Dir::new();
    let out = dir
        .command()
        .env("TMPDIR", dir.path(""))
        .args(["sync", "/dev/zero", "--provider", "sandbox"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not a CSV file"), "{}", stderr(&out));
}

/// A sandbox group `g1` holding ten numbers, and their ids.
fn ten_seeded(sb: &Sandbox) -> (Vec<String>, Vec<String>) {
    let held = numbers(10, 0);
    let refs: Vec<&str> = held.iter().map(String::as_str).collect();
    let ids = sb.seed_group("g1", &refs);
    (held, ids)
}

#[test]
fn file_ids_that_hold_other_numbers_stop_the_run_before_any_update() {
    let sb = Sandbox::calm();
    let (held, ids) = ten_seeded(&sb);
    let others = numbers(10, 500);
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,contactId\n");
    for (p, id) in others.iter().zip(&ids) {
        file.push_str(&format!("{p},New,{id}\n"));
    }
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "smspartner", &[]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains("column \"contactId\""),
        "names the column: {err}"
    );
    let state = sb.state();
    assert!(
        state.counters.received.smspartner_updates.is_empty(),
        "no update was sent"
    );
    let now: Vec<(String, String)> = state
        .group("g1")
        .iter()
        .map(|c| (c.phone.clone(), c.firstname.clone()))
        .collect();
    assert_eq!(now.len(), 10);
    assert!(
        now.iter().all(|(p, n)| held.contains(p) && n == "Old"),
        "{now:?}"
    );
}

#[test]
fn a_few_numbers_changed_by_id_on_purpose_go_through() {
    let sb = Sandbox::calm();
    let (mut phones, ids) = ten_seeded(&sb);
    // Two of ten contacts get a new number through their id.
    phones[3] = numbers(1, 900)[0].clone();
    phones[7] = numbers(1, 950)[0].clone();
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,contactId\n");
    for (p, id) in phones.iter().zip(&ids) {
        file.push_str(&format!("{p},New,{id}\n"));
    }
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert!(report.iter().all(|l| l.outcome == "updated"), "{report:?}");
    let now: BTreeSet<String> = sb
        .state()
        .group("g1")
        .iter()
        .map(|c| c.phone.clone())
        .collect();
    assert_eq!(now, phones.iter().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn mobivate_ignores_an_auto_mapped_id_column_it_cannot_check() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let mut file = String::from("phone,contact_id\n");
    for p in numbers(5, 0) {
        file.push_str(&format!("{p},some-crm-id\n"));
    }
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "mobivate", &[]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("--map contactId=\"contact_id\""), "{err}");
    assert_eq!(
        sb.state().mobivate.len(),
        5,
        "rows were matched by number and added"
    );
}

#[test]
fn a_key_that_cannot_be_a_header_stops_mobivate_before_anything_is_read() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let url = sb.url();
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", "abc\u{7f}def")
        .args([
            "sync",
            "in.csv",
            "--provider",
            "mobivate",
            "--base-url",
            &url,
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains("CONTACT_SYNC_API_KEY") && !err.contains("abc"),
        "{err}"
    );
    assert_eq!(requests(&sb), 0);
    assert!(!dir.path("in.report.csv").exists());
}
