//! Every provider answer, however odd, ends as the right row outcome (issue
//! 10): endless bodies, `200 {}`, reordered bulk results, coded errors inside
//! 5xx, `Retry-After` in every form, a base URL that is not the API, a server
//! that echoes the key, flags out of range — and a fault campaign on both
//! providers that must end with exactly the file's contacts.

use std::collections::{BTreeMap, BTreeSet};

use contact_sync::sandbox::faults::{FaultSettings, Misdirect, RetryAfterForm};
use contact_sync::sandbox::{MobivateInput, SandboxState};

use crate::util::*;

const PROVIDERS: [&str; 2] = ["smspartner", "mobivate"];

/// What the sandbox holds for `provider`: E.164 number → (id, firstname) of
/// each contact holding it.
fn held(state: &SandboxState, provider: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if provider == "mobivate" {
        for c in &state.mobivate {
            let first = c
                .meta
                .get("FIRSTNAME")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            m.entry(format!("+{}", c.msisdn))
                .or_default()
                .push((c.id.clone(), first.to_string()));
        }
    } else {
        for c in state.group("g1") {
            m.entry(c.phone.clone())
                .or_default()
                .push((c.contact_id.clone(), c.firstname.clone()));
        }
    }
    m
}

/// Adds received for `phone` by `provider`, and the part whose answer was lost.
fn adds_of(state: &SandboxState, provider: &str, phone: &str) -> (u64, u64) {
    let c = &state.counters;
    if provider == "mobivate" {
        let msisdn = phone.trim_start_matches('+');
        (
            c.received.mobivate_add_count(msisdn),
            c.unanswered.mobivate_add_count(msisdn),
        )
    } else {
        (
            c.received.smspartner_add_count("g1", phone),
            c.unanswered.smspartner_add_count("g1", phone),
        )
    }
}

/// Pre-loads `phones` with first name "Old", as an earlier sync would have.
fn preload(sb: &Sandbox, provider: &str, phones: &[String]) {
    if provider == "mobivate" {
        let contacts = phones.iter().map(|p| MobivateInput {
            alias: Some(p.clone()),
            msisdn: Some(p.trim_start_matches('+').to_string()),
            meta: serde_json::json!({"FIRSTNAME": "Old"}).as_object().cloned(),
        });
        sb.handle().seed_mobivate(contacts).unwrap();
    } else {
        let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
        sb.seed_group("g1", &refs);
    }
}

/// Every data line of a `csv_of` file (lines 2..), once, in order.
fn assert_every_row_once(report: &[Line], rows: usize) {
    let lines: Vec<u64> = report.iter().map(|l| l.line).collect();
    let expected: Vec<u64> = (2..2 + rows as u64).collect();
    assert_eq!(lines, expected, "every row once, in input order");
}

/// Runs `sync in.csv` in `dir` against `sb` with `provider` and `extra`
/// flags, failing the test if the run has not ended after `limit` (a guard
/// against a run that never ends, not a measure of speed).
fn sync_or_hang_on(
    sb: &Sandbox,
    dir: &Dir,
    provider: &str,
    extra: &[&str],
    limit: u64,
) -> std::process::Output {
    let url = sb.url();
    let mut args = vec!["in.csv", "--provider", provider, "--base-url", &url];
    args.extend(extra);
    sync_or_hang(dir, &args, std::time::Duration::from_secs(limit))
}

// ------------------------------------------------------------ body cap

/// The peak resident memory of `child` in KiB while it runs (Linux), killing
/// it past `limit_kib` so a client that reads without limit fails the test
/// instead of the machine.
#[cfg(target_os = "linux")]
fn peak_rss_kib(child: &mut std::process::Child, limit_kib: u64) -> u64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
            if peak > limit_kib {
                let _ = child.kill();
                return peak;
            }
        }
        if child.try_wait().unwrap().is_some() {
            return peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn endless_answers_are_cut_at_the_cap_retried_and_memory_stays_bounded() {
    for provider in PROVIDERS {
        let sb = Sandbox::start(FaultSettings {
            oversize_rate: 0.3,
            ..FaultSettings::default()
        });
        // Half already there: an add, a listing and updates, so that even
        // SMS Partner (one bulk add) sends enough requests to meet the fault.
        let phones = numbers(30, 0);
        preload(&sb, provider, &phones[..15]);
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&phones));
        let url = sb.url();
        let mut args = vec![
            "sync",
            "in.csv",
            "--provider",
            provider,
            "--base-url",
            &url,
            "--rate",
            "1000",
            "--max-retries",
            "10",
        ];
        if provider == "smspartner" {
            args.extend(["--group-id", "g1"]);
        }
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
            .current_dir(dir.path(""))
            .env("CONTACT_SYNC_API_KEY", KEY)
            .env("XDG_STATE_HOME", dir.state_home())
            .env_remove("RUST_LOG")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let peak = peak_rss_kib(&mut child, 1 << 20);
        let status = child.wait().unwrap();
        assert!(peak < 400 << 10, "{provider}: peak RSS {peak} KiB");
        let state = sb.state();
        assert!(state.counters.faults.oversized > 0, "{provider}: provoked");
        assert_eq!(status.code(), Some(0), "{provider}");
        let held = held(&state, provider);
        assert_eq!(
            held.keys().cloned().collect::<BTreeSet<_>>(),
            phones.iter().cloned().collect(),
            "{provider}: every contact"
        );
        for p in &phones {
            let (received, unanswered) = adds_of(&state, provider, p);
            assert!(
                received - unanswered <= 1,
                "{provider} {p}: sent again after an answer"
            );
            assert_eq!(held[p].len(), 1, "{provider} {p}");
        }
        let report = dir.report("in.report.csv");
        assert_every_row_once(&report, phones.len());
    }
}

#[test]
fn a_call_that_keeps_getting_oversized_answers_ends_response_invalid() {
    for provider in PROVIDERS {
        let sb = Sandbox::start(FaultSettings {
            oversize_rate: 1.0,
            ..FaultSettings::default()
        });
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&numbers(3, 0)));
        let out = sb.sync(&dir, provider, &["--rate", "1000", "--max-retries", "2"]);
        assert_eq!(code(&out), 1, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        assert_eq!(
            triples(&report),
            vec![
                (2, "failed", "RESPONSE_INVALID"),
                (3, "failed", "RESPONSE_INVALID"),
                (4, "failed", "RESPONSE_INVALID"),
            ],
            "{provider}"
        );
        assert!(
            report[0].message.contains("larger than")
                && report[0].message.contains("may have been applied"),
            "{provider}: {}",
            report[0].message
        );
    }
}

// ------------------------------------------------------------ bulk results

#[test]
fn more_than_500_adds_go_in_several_bulk_batches_each_number_once() {
    let sb = Sandbox::calm();
    let phones = numbers(1234, 0);
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(&dir, "smspartner", &["--rate", "1000"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    assert_eq!(
        state.counters.total("POST /v1/contact/add"),
        3,
        "500 + 500 + 234"
    );
    let received = state.counters.received.smspartner_adds_in("g1");
    assert_eq!(received.len(), 1234);
    assert!(received.values().all(|n| *n == 1), "each number sent once");
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, 1234);
    assert!(report.iter().all(|l| l.outcome == "added"));
    let held = held(&state, "smspartner");
    for (i, p) in phones.iter().enumerate() {
        assert_eq!(held[p], vec![(held[p][0].0.clone(), format!("First{i}"))]);
    }
}

#[test]
fn reordered_bulk_results_are_matched_by_number_not_position() {
    let sb = Sandbox::start(FaultSettings {
        reorder_bulk: true,
        ..FaultSettings::default()
    });
    // 1,200 rows in three batches; every other number is already there.
    let phones = numbers(1200, 0);
    let existing: Vec<String> = phones.iter().step_by(2).cloned().collect();
    preload(&sb, "smspartner", &existing);
    let before = held(&sb.state(), "smspartner");
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(&dir, "smspartner", &["--rate", "1000"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    let state = sb.state();
    let held = held(&state, "smspartner");
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        let want = if i % 2 == 0 { "updated" } else { "added" };
        assert_eq!(row.outcome, want, "line {}: {row:?}", row.line);
        assert_eq!(held[phone].len(), 1);
        assert_eq!(
            held[phone][0].1,
            format!("First{i}"),
            "{phone} holds its own row"
        );
        if i % 2 == 0 {
            assert_eq!(row.contact_id, before[phone][0].0, "{phone}");
        }
    }
}

#[test]
fn a_success_without_the_documented_body_is_response_invalid_not_added() {
    for provider in PROVIDERS {
        // `200 {}` after applying: Mobivate's create without its record,
        // SMS Partner's add without results or contact.
        let sb = Sandbox::start(FaultSettings {
            hollow_rate: 1.0,
            ..FaultSettings::default()
        });
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&numbers(3, 0)));
        let out = sb.sync(&dir, provider, &["--rate", "1000"]);
        assert_eq!(code(&out), 1, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        for row in &report {
            assert_eq!(
                (row.outcome.as_str(), row.code.as_str()),
                ("failed", "RESPONSE_INVALID"),
                "{provider}: {row:?}"
            );
        }
        assert_eq!(report.len(), 3);
    }
}

#[test]
fn an_add_whose_answer_cannot_be_read_stays_pending_for_the_next_run() {
    // Mobivate creates each contact, then answers without its record: the
    // add may have been applied, so the store keeps it pending (like an
    // unanswered one) rather than forgetting it.
    let sb = Sandbox::start(FaultSettings {
        hollow_rate: 1.0,
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let out = sb.sync(&dir, "mobivate", &["--rate", "1000"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert!(
        report.iter().all(|l| l.code == "RESPONSE_INVALID"),
        "{report:?}"
    );
    let url = sb.url();
    let show = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .args([
            "state",
            "show",
            "--provider",
            "mobivate",
            "--base-url",
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    assert!(text.contains("3 pending"), "{text}");
}

// ------------------------------------------------------------ coded errors

#[test]
fn an_sms_partner_code_inside_a_5xx_is_not_retried() {
    let sb = Sandbox::start(FaultSettings {
        coded_rate: 1.0,
        coded_status: 502,
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(5, 0)));
    let out = sb.sync(&dir, "smspartner", &["--rate", "1000"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let state = sb.state();
    assert_eq!(
        state.counters.total("POST /v1/contact/add"),
        1,
        "sent once: the provider answered"
    );
    let report = dir.report("in.report.csv");
    assert!(
        report
            .iter()
            .all(|l| l.outcome == "failed" && l.code == "API_90"),
        "{report:?}"
    );
}

// ------------------------------------------------------------ Retry-After

/// A sandbox that lets `burst` requests through, then answers every request
/// 429 with the given `Retry-After`.
fn throttled(burst: u32, form: RetryAfterForm, secs: Option<u64>) -> Sandbox {
    Sandbox::start(FaultSettings {
        rate: Some(0.0001),
        burst,
        retry_after: form,
        retry_after_secs: secs,
        ..FaultSettings::default()
    })
}

#[test]
fn a_retry_after_beyond_the_cap_stops_the_run_and_names_the_delay() {
    for (form, secs, named) in [
        (RetryAfterForm::Seconds, Some(3600), "3600 s"),
        (RetryAfterForm::Date, Some(3600), "Retry-After"),
        (
            RetryAfterForm::Seconds,
            Some(u64::MAX),
            "18446744073709551615 s",
        ),
    ] {
        let sb = throttled(2, form, secs);
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&numbers(10, 0)));
        let out = sb.sync(&dir, "mobivate", &["--rate", "1000", "--concurrency", "1"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{form:?}: {err}");
        assert!(err.contains("Retry-After"), "{err}");
        assert!(err.contains(named), "{form:?}: {err}");
        assert!(err.contains("--max-retry-after 120"), "{err}");
        let report = dir.report("in.report.csv");
        assert_every_row_once(&report, 10);
        // Two tokens, two rows added; the row that met the 429 and every
        // later one are not attempted (with one request in flight, which row
        // takes a token first is the scheduler's choice).
        let added = report.iter().filter(|l| l.outcome == "added").count();
        assert_eq!(added, 2, "{form:?}: {report:?}");
        assert!(
            report.iter().all(
                |l| l.outcome == "added" || (l.outcome == "not_attempted" && l.code.is_empty())
            ),
            "{form:?}: {report:?}"
        );
        // It stopped at the first 429 (one more may have left meanwhile).
        let throttled = sb.state().counters.faults.rate_limited;
        assert!((1..=2).contains(&throttled), "{form:?}: {throttled}");
    }
}

#[test]
fn a_larger_max_retry_after_lets_the_run_wait_and_a_date_in_range_is_waited_for() {
    // Retry-After of one second, as seconds and as a date: waited for, then
    // every row goes through; the run never stops for it.
    for form in [RetryAfterForm::Seconds, RetryAfterForm::Date] {
        let sb = Sandbox::start(FaultSettings {
            rate: Some(20.0),
            burst: 2,
            retry_after: form,
            retry_after_secs: Some(1),
            ..FaultSettings::default()
        });
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&numbers(8, 0)));
        let out = sb.sync(
            &dir,
            "mobivate",
            &[
                "--rate",
                "1000",
                "--max-retries",
                "10",
                "--max-retry-after",
                "2",
            ],
        );
        assert_eq!(code(&out), 0, "{form:?}: {}", stderr(&out));
        assert!(
            sb.state().counters.faults.rate_limited > 0,
            "{form:?}: provoked"
        );
        assert_eq!(sb.state().mobivate.len(), 8);
    }
    // The same one-second pause with --max-retry-after 0: the run stops.
    let sb = throttled(1, RetryAfterForm::Seconds, Some(1));
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(4, 0)));
    let out = sb.sync(
        &dir,
        "mobivate",
        &["--rate", "1000", "--max-retry-after", "0"],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[test]
fn a_garbage_retry_after_is_ignored_with_a_debug_line() {
    let sb = Sandbox::start(FaultSettings {
        rate: Some(20.0),
        burst: 2,
        retry_after: RetryAfterForm::Garbage,
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(8, 0)));
    let out = sb.sync(
        &dir,
        "mobivate",
        &["-v", "--rate", "1000", "--max-retries", "15"],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(sb.state().counters.faults.rate_limited > 0, "provoked");
    assert!(
        err.contains("ignoring a Retry-After header that is neither seconds nor an HTTP date"),
        "{err}"
    );
    assert!(
        !err.contains("in a moment"),
        "the server's value is not echoed"
    );
}

// ------------------------------------------------------------ wrong base URL

#[test]
fn a_base_url_that_is_not_the_api_stops_within_a_handful_of_requests() {
    for (mode, code_seen) in [
        (Misdirect::NotFound, "HTTP_404"),
        (Misdirect::Html, "RESPONSE_INVALID"),
    ] {
        let sb = Sandbox::start(FaultSettings {
            misdirect: Some(mode),
            ..FaultSettings::default()
        });
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&numbers(60, 0)));
        let out = sb.sync(&dir, "mobivate", &["--rate", "1000"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{mode:?}: {err}");
        assert!(err.contains("check --base-url"), "{mode:?}: {err}");
        let sent: u64 = sb
            .state()
            .counters
            .requests
            .values()
            .flat_map(|m| m.values())
            .sum();
        assert!(sent <= 8, "{mode:?}: {sent} requests before stopping");
        let report = dir.report("in.report.csv");
        assert_every_row_once(&report, 60);
        let failed = report.iter().filter(|l| l.outcome == "failed").count();
        assert!((3..=8).contains(&failed), "{mode:?}: {failed}");
        assert!(report.iter().all(
            |l| l.outcome == "not_attempted" || (l.outcome == "failed" && l.code == code_seen)
        ));
    }
    // SMS Partner: three batches are three answers — the third stops the run.
    let sb = Sandbox::start(FaultSettings {
        misdirect: Some(Misdirect::NotFound),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(1200, 0)));
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--rate", "1000", "--concurrency", "1"],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("check --base-url"));
    assert_eq!(sb.state().counters.total("POST /v1/contact/add"), 3);
}

#[test]
fn a_json_contact_does_not_exist_404_stays_a_row_matter() {
    // Mobivate answers 404 in its own JSON for an id it does not hold: each
    // such row fails, the run goes on (exit 1, not 3), however many in a row.
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,id\n");
    for (i, p) in numbers(12, 0).iter().enumerate() {
        file.push_str(&format!("{p},F{i},no-such-id-{i}\n"));
    }
    dir.write("in.csv", file);
    let out = sb.sync(
        &dir,
        "mobivate",
        &["--rate", "1000", "--map", "contactId=id"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert!(
        report
            .iter()
            .all(|l| l.outcome == "failed" && l.code == "HTTP_404"),
        "{report:?}"
    );
    assert!(!stderr(&out).contains("--base-url"));
}

// ------------------------------------------------------------ the key

#[test]
fn server_messages_that_echo_the_key_are_redacted_everywhere() {
    let sb = Sandbox::start(FaultSettings {
        echo_key: true,
        ..FaultSettings::default()
    });
    // SMS Partner: an unknown group, refused with the key in the message.
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let out = sb.sync(
        &dir,
        "smspartner",
        &[
            "-vv",
            "--group-id",
            "nope",
            "--rate",
            "1000",
            "--rejects",
            "rej.csv",
            "--summary-json",
            "s.json",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert!(report.iter().all(|l| l.code == "API_404"), "{report:?}");
    assert!(
        report[0].message.contains("[redacted]"),
        "{}",
        report[0].message
    );
    assert_key_absent(&out, &dir, &["in.report.csv", "rej.csv", "s.json"]);
    // Mobivate: ids it does not hold, refused with the key in error.message.
    let dir = Dir::new();
    dir.write("in.csv", "phone,id\n+33611111111,x1\n+33622222222,x2\n");
    let out = sb.sync(
        &dir,
        "mobivate",
        &["-vv", "--map", "contactId=id", "--rejects", "rej.csv"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert!(
        report[0].message.contains("[redacted]"),
        "{}",
        report[0].message
    );
    assert_key_absent(&out, &dir, &["in.report.csv", "rej.csv"]);
}

// ------------------------------------------------------------ flags

#[test]
fn flag_values_out_of_range_are_usage_errors_and_send_nothing() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    for (flag, value) in [
        ("--concurrency", "0"),
        ("--concurrency", "100000000"),
        ("--concurrency", "257"),
        ("--rate", "0"),
        ("--rate", "-1"),
        ("--rate", "NaN"),
        ("--rate", "inf"),
        ("--rate", "0.001"),
        ("--rate", "1e300"),
        ("--max-retry-after", "86401"),
    ] {
        let out = sb.sync(&dir, "smspartner", &[&format!("{flag}={value}")]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(sb.state().counters.requests.is_empty(), "nothing sent");
    assert!(!dir.path("in.report.csv").exists());
    // The bounds themselves are accepted.
    for (flag, value) in [
        ("--concurrency", "256"),
        ("--rate", "0.01"),
        ("--max-retry-after", "0"),
    ] {
        let out = sb.sync(
            &dir,
            "smspartner",
            &[&format!("{flag}={value}"), "--dry-run"],
        );
        assert_eq!(code(&out), 0, "{flag} {value}: {}", stderr(&out));
    }
}

// ------------------------------------------------------------ report window

/// The report's window admits `max_batch × (concurrency + 2) + 1024` rows
/// that are not written yet; these files hold more, and slow answers come
/// back out of order, so the window fills and must drain in input order.
#[test]
fn mobivate_rows_beyond_the_window_with_slow_answers_come_back_in_order() {
    let sb = Sandbox::start(FaultSettings {
        latency: std::time::Duration::from_millis(1),
        jitter: std::time::Duration::from_millis(6),
        ..FaultSettings::default()
    });
    // Window: 1 × (4 + 2) + 1024 = 1,030 rows.
    let phones = numbers(1_300, 0);
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sync_or_hang_on(
        &sb,
        &dir,
        "mobivate",
        &["--rate", "10000", "--concurrency", "4"],
        300,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    let held = held(&sb.state(), "mobivate");
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        assert_eq!(row.outcome, "added", "{row:?}");
        assert_eq!(&row.phone, phone, "line {} holds its own row", row.line);
        assert_eq!(
            held[phone],
            vec![(row.contact_id.clone(), format!("First{i}"))]
        );
    }
}

#[test]
fn partial_batches_of_many_groups_are_sent_when_they_fill_the_window() {
    // Eight groups, rows dealt round-robin: at --concurrency 1 the window
    // (500 × 3 + 1024 = 2,524 rows) fills while no group has a full batch
    // of 500, so the partial batches must go out, or nothing moves again.
    let groups = ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"];
    let sb = Sandbox::with_groups(
        FaultSettings {
            latency: std::time::Duration::from_millis(2),
            ..FaultSettings::default()
        },
        1,
        &groups,
    );
    let phones = numbers(3_000, 0);
    let mut text = String::from("phone,firstname,groupId\n");
    for (i, p) in phones.iter().enumerate() {
        text.push_str(&format!("{p},First{i},{}\n", groups[i % groups.len()]));
    }
    let dir = Dir::new();
    dir.write("in.csv", text);
    let out = sync_or_hang_on(
        &sb,
        &dir,
        "smspartner",
        &["--rate", "1000", "--concurrency", "1"],
        300,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    assert!(report.iter().all(|l| l.outcome == "added"));
    let state = sb.state();
    // At least each group's partial batch when the window first filled,
    // and the rest at the end; never row by row.
    let adds = state.counters.total("POST /v1/contact/add");
    assert!((16..=48).contains(&adds), "{adds} bulk adds");
    for (g, group) in groups.iter().enumerate() {
        let held: Vec<&str> = state
            .group(group)
            .iter()
            .map(|c| c.phone.as_str())
            .collect();
        let want: Vec<&str> = phones
            .iter()
            .skip(g)
            .step_by(groups.len())
            .map(String::as_str)
            .collect();
        assert_eq!(held, want, "{group}");
    }
}

// ------------------------------------------------------------ listings

/// The listing endpoint of `provider`, as the sandbox counts it.
fn listing_endpoint(provider: &str) -> &'static str {
    if provider == "mobivate" {
        "GET /addressbook/contacts"
    } else {
        "GET /v1/contact/list"
    }
}

#[test]
fn a_listing_that_cannot_complete_spends_its_budget_and_its_rows_fail_listing_failed() {
    for provider in PROVIDERS {
        // Every read fails, every write passes: the adds say "already
        // there", and the listing that would find the ids never completes.
        let sb = Sandbox::start(FaultSettings {
            read_fault_rate: 1.0,
            ..FaultSettings::default()
        });
        let phones = numbers(12, 0);
        preload(&sb, provider, &phones);
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&phones));
        let out = sb.sync(&dir, provider, &["--rate", "1000", "--max-retries", "2"]);
        assert_eq!(code(&out), 1, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        assert_every_row_once(&report, phones.len());
        for row in &report {
            assert_eq!(
                (row.outcome.as_str(), row.code.as_str()),
                ("failed", "LISTING_FAILED"),
                "{provider}: {row:?}"
            );
            assert!(row.message.contains("budget of 12 requests"), "{row:?}");
        }
        // 2 × (2 + 1) × (0 pages + 2) = 12 requests a listing. SMS Partner's
        // rows all wait on one listing; Mobivate's rows are answered one by
        // one, and a row answered after a listing failed may start another.
        let listings = sb.state().counters.total(listing_endpoint(provider));
        if provider == "smspartner" {
            assert_eq!(listings, 12, "{provider}");
        } else {
            assert!(
                listings.is_multiple_of(12) && listings <= 12 * 12,
                "{provider}: {listings}"
            );
        }
        let held = held(&sb.state(), provider);
        assert!(held.values().all(|c| c.len() == 1 && c[0].1 == "Old"));
    }
}

#[test]
fn a_check_of_file_ids_that_cannot_complete_spends_its_budget_and_only_their_rows_fail() {
    // Every read fails, every write passes: the ids of the file cannot be
    // read back, so no update may go through them; the rows without an id
    // are added as usual.
    let sb = Sandbox::start(FaultSettings {
        read_fault_rate: 1.0,
        ..FaultSettings::default()
    });
    let held = numbers(3, 0);
    let refs: Vec<&str> = held.iter().map(String::as_str).collect();
    let ids = sb.seed_group("g1", &refs);
    let new = numbers(3, 100);
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,contactId\n");
    for (p, id) in held.iter().zip(&ids) {
        file.push_str(&format!("{p},New,{id}\n"));
    }
    for p in &new {
        file.push_str(&format!("{p},New,\n"));
    }
    dir.write("in.csv", file);
    let out = sync_or_hang_on(
        &sb,
        &dir,
        "smspartner",
        &["--group-id", "g1", "--rate", "1000", "--max-retries", "2"],
        120,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, 6);
    for row in &report[..3] {
        assert_eq!(
            (row.outcome.as_str(), row.code.as_str()),
            ("failed", "LISTING_FAILED"),
            "{row:?}"
        );
        // 2 × (2 + 1) × (3 ids + 2) = 30 requests.
        assert!(row.message.contains("budget of 30 requests"), "{row:?}");
    }
    assert!(
        report[3..].iter().all(|l| l.outcome == "added"),
        "{report:?}"
    );
    let state = sb.state();
    assert_eq!(state.counters.total("GET /v1/contact/detail"), 30);
    assert_eq!(state.counters.total("POST /v1/contact/update"), 0);
}

#[test]
fn a_listing_whose_pages_often_fail_completes_page_by_page_within_its_budget() {
    for provider in PROVIDERS {
        let sb = Sandbox::start(FaultSettings {
            read_fault_rate: 0.5,
            ..FaultSettings::default()
        });
        // SMS Partner: 15 pages of 20; Mobivate: 3 pages of 100.
        let phones = numbers(300, 0);
        preload(&sb, provider, &phones);
        let dir = Dir::new();
        dir.write("in.csv", csv_of(&phones));
        let out = sb.sync(&dir, provider, &["--rate", "1000", "--max-retries", "1"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        assert!(report.iter().all(|l| l.outcome == "updated"), "{provider}");
    }
}

/// A file whose first `existing` numbers are already on the provider and
/// whose other rows are new: the existing rows need a listing while the
/// new rows are being added to the same target.
fn listing_under_concurrent_adds(provider: &str, existing: usize, new: usize, conc: &str) {
    // Injected 5xx (nothing applied) send writes back to wait for their
    // retries: they land between the listing's pages.
    let sb = Sandbox::start(FaultSettings {
        unstable_listing: true,
        fault_rate: 0.2,
        ..FaultSettings::default()
    });
    let phones = numbers(existing + new, 0);
    preload(&sb, provider, &phones[..existing]);
    let before = held(&sb.state(), provider);
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(&dir, provider, &["--rate", "1000", "--concurrency", conc]);
    assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    let held = held(&sb.state(), provider);
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        let want = if i < existing { "updated" } else { "added" };
        assert_eq!(row.outcome, want, "{provider}: {row:?}");
        assert_eq!(held[phone].len(), 1, "{provider}: {phone}");
        assert_eq!(held[phone][0].1, format!("First{i}"), "{provider}: {phone}");
        if i < existing {
            assert_eq!(row.contact_id, before[phone][0].0, "{provider}: {phone}");
        }
    }
}

#[test]
fn a_mobivate_listing_is_sorted_so_concurrent_adds_cannot_make_it_miss_a_contact() {
    // Without a sort order, this sandbox reshuffles the listing on every
    // write; one add per request lands between every two pages.
    listing_under_concurrent_adds("mobivate", 300, 300, "4");
}

#[test]
fn an_sms_partner_group_gets_no_add_while_it_is_listed() {
    // SMS Partner promises no order: this sandbox reshuffles the group on
    // every write. The existing rows' listing (25 pages or more) would
    // otherwise run while later batches are retried.
    listing_under_concurrent_adds("smspartner", 100, 2900, "2");
}

// ------------------------------------------------------------ lost answers

/// A sandbox losing 20% of answers whose first request is lost (applied,
/// no answer) and whose second is served: the seed is found from the draws
/// the sandbox will make.
fn sandbox_losing_the_first_request() -> Sandbox {
    use contact_sync::rng::SplitMix64;
    use contact_sync::sandbox::faults::{Fault, FaultPlan};
    let stress = FaultSettings {
        lose_rate: 0.2,
        ..FaultSettings::default()
    };
    let now = tokio::time::Instant::now();
    let seed = (1..10_000)
        .find(|&seed| {
            // The sandbox's fault stream is the first draw of its seed.
            let fault_seed = SplitMix64::new(seed).next_u64();
            let mut plan = FaultPlan::new(stress.clone(), fault_seed, now);
            plan.decide(now).fault == Fault::Lose && plan.decide(now).fault == Fault::None
        })
        .expect("a seed");
    Sandbox::seeded(stress, seed)
}

/// Syncs `phones` (csv_of) to SMS Partner one request at a time.
fn sync_one_at_a_time(sb: &Sandbox, phones: &[String]) -> Vec<Line> {
    let dir = Dir::new();
    dir.write("in.csv", csv_of(phones));
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--rate", "1000", "--concurrency", "1"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    report
}

#[test]
fn a_lost_bulk_answer_is_settled_from_the_end_of_the_listing_without_updates() {
    let sb = sandbox_losing_the_first_request();
    // A large group the file does not touch: 4,000 contacts, 200 pages.
    let others = numbers(4_000, 1);
    preload(&sb, "smspartner", &others);
    // One batch of 400 new rows; its first attempt is applied and lost, the
    // retry meets code 15 for every row.
    let phones = numbers(400, 0);
    let report = sync_one_at_a_time(&sb, &phones);
    let state = sb.state();
    assert_eq!(
        state
            .counters
            .unanswered
            .smspartner_add_count("g1", &phones[0]),
        1
    );
    let held = held(&state, "smspartner");
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        assert_eq!(row.outcome, "added", "{row:?}");
        assert!(row.message.contains("answer was lost"), "{row:?}");
        assert_eq!(
            held[phone],
            vec![(row.contact_id.clone(), format!("First{i}"))]
        );
    }
    assert_eq!(held.len(), 4_400);
    // The first page (for the total) and the last 20 or 21 pages hold the
    // batch; the whole listing would be 220 pages, and 400 updates.
    let listing = state.counters.total("GET /v1/contact/list");
    assert!(listing <= 40, "{listing} listing requests");
    assert_eq!(state.counters.total("POST /v1/contact/update"), 0);
}

#[test]
fn a_lost_answer_for_a_contact_that_was_there_with_other_data_updates_it() {
    let sb = sandbox_losing_the_first_request();
    // Already there with old data, unknown to the store: the retry's code 15
    // is not this run's own add, and the listing's data says so.
    let phones = numbers(30, 0);
    preload(&sb, "smspartner", &phones[..10]);
    let before = held(&sb.state(), "smspartner");
    let report = sync_one_at_a_time(&sb, &phones);
    let held = held(&sb.state(), "smspartner");
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        let want = if i < 10 { "updated" } else { "added" };
        assert_eq!(row.outcome, want, "{row:?}");
        assert_eq!(
            held[phone],
            vec![(row.contact_id.clone(), format!("First{i}"))]
        );
        if i < 10 {
            assert_eq!(row.contact_id, before[phone][0].0);
        }
    }
}

#[test]
fn lost_answers_of_many_mobivate_rows_share_their_reads_of_the_listing() {
    // 100 rows already on the second page of an address book of 1,000 (10
    // pages), unknown to the store; 40% of answers lost, so about half the
    // adds are retried into "alias taken" after a lost attempt. Read for
    // one by one, each such row would cost the first page and 8 pages from
    // the end, all without it (and their retries): over 400 listing
    // requests.
    let sb = Sandbox::seeded(
        FaultSettings {
            lose_rate: 0.4,
            ..FaultSettings::default()
        },
        7,
    );
    let phones = numbers(100, 0);
    let others = numbers(900, 1);
    preload(&sb, "mobivate", &others[..100]);
    preload(&sb, "mobivate", &phones);
    preload(&sb, "mobivate", &others[100..]);
    let before = held(&sb.state(), "mobivate");
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(&dir, "mobivate", &["--rate", "1000", "--max-retries", "30"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    let state = sb.state();
    let held = held(&state, "mobivate");
    let mut lost = 0;
    for (i, (row, phone)) in report.iter().zip(&phones).enumerate() {
        assert_eq!(row.outcome, "updated", "{row:?}");
        assert_eq!(row.contact_id, before[phone][0].0, "{row:?}");
        assert_eq!(
            held[phone],
            vec![(row.contact_id.clone(), format!("First{i}"))]
        );
        lost += u64::from(adds_of(&state, "mobivate", phone).1 > 0);
    }
    assert!(lost >= 30, "{lost} lost adds");
    let listing = state.counters.total("GET /addressbook/contacts");
    println!("{lost} rows with a lost add, {listing} listing requests");
    assert!(
        listing <= 150,
        "{listing} listing requests for {lost} lost adds"
    );
}

// ------------------------------------------------------------ fault campaign

/// One campaign seed on one provider: `rows` rows, a third already on the
/// provider with old data, a sandbox mixing every fault. Every run must
/// report every row truly and never send a number as an add again once an
/// answer to it was read (counted by the sandbox). A first run at the
/// default retries, then reruns with `--max-retries 30` (as cron would) must
/// end with exactly the file's contacts, none duplicated, each with its row's
/// data. One row in `old_every` is already there; the runs must be exact
/// after `max_runs` at most. Returns the runs and each one's requests.
fn campaign(
    provider: &str,
    seed: u64,
    rows: usize,
    stress: FaultSettings,
    old_every: usize,
    max_runs: usize,
) -> (usize, Vec<u64>) {
    let sb = Sandbox::seeded(stress, seed);
    let phones = numbers(rows, 0);
    let old: Vec<String> = phones.iter().step_by(old_every).cloned().collect();
    preload(&sb, provider, &old);
    let old: BTreeSet<String> = old.into_iter().collect();
    let first_name: BTreeMap<&String, String> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| (p, format!("First{i}")))
        .collect();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let mut runs = 0;
    let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut spent: Vec<u64> = Vec::new();
    loop {
        runs += 1;
        let retries = if runs == 1 { "5" } else { "30" };
        let out = sb.sync(
            &dir,
            provider,
            &["--rate", "1000", "--max-retries", retries],
        );
        let exit = code(&out);
        let why = format!("{provider} seed {seed} run {runs}");
        assert!(
            exit == 0 || exit == 1,
            "{why}: exit {exit}: {}",
            stderr(&out)
        );
        let report = dir.report("in.report.csv");
        assert_every_row_once(&report, rows);
        let mut tally: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for row in &report {
            *tally.entry((&row.outcome, &row.code)).or_default() += 1;
        }
        println!("  {why}: exit {exit}, {tally:?}");
        let state = sb.state();
        let held = held(&state, provider);
        for (row, phone) in report.iter().zip(&phones) {
            assert_eq!(&row.phone, phone, "{why}");
            match row.outcome.as_str() {
                "added" | "updated" | "unchanged" => {
                    let contact = held.get(phone).map(Vec::as_slice).unwrap_or_default();
                    assert_eq!(contact.len(), 1, "{why}: {phone} held once");
                    assert_eq!(
                        contact[0].1, first_name[phone],
                        "{why}: {phone} has its row's data"
                    );
                    if !row.contact_id.is_empty() {
                        assert_eq!(row.contact_id, contact[0].0, "{why}: {phone}'s id");
                    }
                    // A number that was there before the first run is never
                    // `added` by it. (A rerun reports `added` for a row whose
                    // earlier add went unanswered, taking the contact it then
                    // finds for that add's: the store cannot tell it from one
                    // that was there before.)
                    if old.contains(phone) && runs == 1 {
                        assert_eq!(row.outcome, "updated", "{why}: {phone} existed");
                    }
                }
                // What a bad day may leave, each for the next run to settle.
                "failed" => assert!(
                    [
                        "UNCONFIRMED",
                        "RESPONSE_INVALID",
                        "API_90",
                        "HTTP_400",
                        "HTTP_500",
                        "HTTP_429",
                        "NETWORK",
                        "API_15",
                        "LISTING_FAILED",
                    ]
                    .contains(&row.code.as_str()),
                    "{why}: {row:?}"
                ),
                other => panic!("{why}: {row:?} ({other})"),
            }
        }
        // Within this run, no number was sent as an add again once an
        // answer to it had been read.
        for phone in &phones {
            let (received, unanswered) = adds_of(&state, provider, phone);
            let (r0, u0) = seen.get(phone).copied().unwrap_or_default();
            assert!(
                (received - r0) - (unanswered - u0) <= 1,
                "{why}: {phone} added {} times, {} unanswered",
                received - r0,
                unanswered - u0
            );
            seen.insert(phone.clone(), (received, unanswered));
        }
        let exact = held.keys().collect::<BTreeSet<_>>() == phones.iter().collect()
            && phones
                .iter()
                .all(|p| held[p].len() == 1 && held[p][0].1 == first_name[p]);
        assert!(exact || exit != 0, "{why}: exit 0 but not exactly the file");
        if !exact {
            let off: Vec<String> = report
                .iter()
                .zip(&phones)
                .filter(|(_, p)| {
                    held.get(*p)
                        .is_none_or(|h| h.len() != 1 || h[0].1 != first_name[p])
                })
                .map(|(r, p)| {
                    format!(
                        "{p} {} {} {} {:?}",
                        r.outcome,
                        r.code,
                        r.message,
                        held.get(p)
                    )
                })
                .take(5)
                .collect();
            println!("  {why}: not yet exact: {off:?}");
        }
        let total: u64 = state
            .counters
            .requests
            .values()
            .flat_map(|m| m.values())
            .sum();
        spent.push(total - spent.iter().sum::<u64>());
        if exact {
            return (runs, spent);
        }
        assert!(
            runs < max_runs,
            "{why}: not exactly the file's contacts after {runs} runs"
        );
    }
}

/// Every fault the sandbox has, at shares a real bad day could show.
fn mixed_faults() -> FaultSettings {
    FaultSettings {
        rate: Some(400.0),
        burst: 20,
        fault_rate: 0.06,
        drop_rate: 0.04,
        lose_rate: 0.04,
        oversize_rate: 0.01,
        hollow_rate: 0.01,
        coded_rate: 0.02,
        coded_status: 500,
        latency: std::time::Duration::from_millis(1),
        jitter: std::time::Duration::from_millis(4),
        reorder_bulk: true,
        retry_after_secs: Some(1),
        ..FaultSettings::default()
    }
}

#[test]
fn fault_campaign_short() {
    for seed in 1..=3 {
        for provider in PROVIDERS {
            let started = std::time::Instant::now();
            let (runs, spent) = campaign(provider, seed, 60, mixed_faults(), 3, 5);
            let requests: u64 = spent.iter().sum();
            println!(
                "{provider:<11} seed {seed}: {runs} runs, {requests} requests, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The long campaign, by hand:
/// `cargo test --release --test integration robust::fault_campaign_long -- --ignored --nocapture`.
/// Figures in docs/reliability.md.
#[test]
#[ignore = "long: 20 seeds × 2 providers × 600 rows"]
fn fault_campaign_long() {
    // CAMPAIGN_SEEDS=3,14 and CAMPAIGN_PROVIDERS=mobivate replay a part.
    let list = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
    };
    let seeds: Vec<u64> = list("CAMPAIGN_SEEDS")
        .map(|v| v.iter().filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| (1..=20).collect());
    let providers =
        list("CAMPAIGN_PROVIDERS").unwrap_or_else(|| PROVIDERS.map(String::from).to_vec());
    println!("provider    seed  rows  runs  requests");
    for seed in seeds {
        for provider in providers.iter().map(String::as_str) {
            let started = std::time::Instant::now();
            let (runs, spent) = campaign(provider, seed, 600, mixed_faults(), 3, 5);
            let requests: u64 = spent.iter().sum();
            println!(
                "{provider:<11} {seed:>4} {:>5} {runs:>5} {requests:>9}   {:.1} s",
                600,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The faults of issue 10's last check: 30% 5xx, 20% lost answers, 20%
/// dropped connections, nothing else.
fn heavy_faults() -> FaultSettings {
    FaultSettings {
        fault_rate: 0.3,
        lose_rate: 0.2,
        drop_rate: 0.2,
        ..FaultSettings::default()
    }
}

/// The requests a first run of `rows` rows (every other one already there,
/// unknown to the store) may send under [`heavy_faults`] at the default 5
/// retries, as docs/reliability.md states it: a call fails 70% of its
/// attempts, so costs about 2.9; SMS Partner needs a call per 500 adds, per
/// update and per listing page (2 requests a row in all), Mobivate a call per
/// add and per update (4.4 a row) plus the shared reads of its listing's end
/// for the adds whose answer was lost (6 a row; 25,432 requests, 12.7 a row,
/// when each such add read for itself).
fn first_run_budget(provider: &str, rows: u64) -> u64 {
    rows * if provider == "mobivate" { 6 } else { 2 }
}

/// Issue 10's "done when": with 30% 5xx, 20% lost answers and 20% dropped
/// connections, a 2,000-row upsert at the default retries ends within its
/// request budget with a true report for every row, and one rerun at
/// `--max-retries 30` leaves exactly the file's contacts. By hand:
/// `cargo test --release --test integration robust::heavy_faults_2000 -- --ignored --nocapture`.
/// Figures in docs/reliability.md.
#[test]
#[ignore = "long: 2,000 rows × 2 providers under 70% failed attempts"]
fn heavy_faults_2000_rows_upsert_then_one_rerun_is_exact() {
    let seeds: Vec<u64> = std::env::var("HEAVY_SEEDS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![1]);
    let providers: Vec<String> = std::env::var("HEAVY_PROVIDERS")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| PROVIDERS.map(String::from).to_vec());
    for seed in seeds {
        for provider in providers.iter().map(String::as_str) {
            let started = std::time::Instant::now();
            let (runs, spent) = campaign(provider, seed, 2_000, heavy_faults(), 2, 2);
            let budget = first_run_budget(provider, 2_000);
            println!(
                "{provider:<11} seed {seed}: {runs} runs, requests per run {spent:?} (first-run budget {budget}), {:.1} s",
                started.elapsed().as_secs_f64()
            );
            assert!(spent[0] <= budget, "{provider}: {} > {budget}", spent[0]);
        }
    }
}

#[test]
fn a_lost_batch_is_read_back_from_the_listing_end_with_many_batches_added_after_it() {
    // 10,000 new rows, 20 batches of 500, answers lost at 10%: a lost batch
    // is read back while later batches keep landing after it, often more
    // than eight of them. Its rows must come from the pages near the end
    // (about 30 requests a lost batch), not from the whole listing (up to
    // 500 pages each).
    let sb = Sandbox::seeded(
        FaultSettings {
            lose_rate: 0.1,
            ..FaultSettings::default()
        },
        3,
    );
    let phones = numbers(10_000, 0);
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--rate", "1000", "--max-retries", "30"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_every_row_once(&report, phones.len());
    assert!(
        report.iter().all(|l| l.outcome == "added"),
        "every row added"
    );
    let state = sb.state();
    let held = held(&state, "smspartner");
    assert_eq!(held.len(), phones.len());
    assert!(held.values().all(|c| c.len() == 1), "none twice");
    let lost = state.counters.faults.lost;
    let listing = state.counters.total("GET /v1/contact/list");
    println!("{lost} lost answers, {listing} listing requests");
    assert!(lost > 0, "provoked");
    assert!(
        listing <= 60 * lost,
        "{listing} listing requests for {lost} lost answers"
    );
}
