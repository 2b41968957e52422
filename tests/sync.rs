//! `contact-sync sync` against the built-in sandbox on an ephemeral loopback
//! port: the report, the exit code and the sandbox's final contents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use contact_sync::sandbox::faults::FaultSettings;
use contact_sync::sandbox::{ContactInput, MobivateInput, SandboxState};

use crate::util::*;

#[test]
fn mixed_file_ends_with_exactly_the_right_contacts_and_outcomes() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111", "+33622222222"]);
    let dir = Dir::new();
    let file = format!(
        "phone,firstname,contactId\n\
         06 33 33 33 33,New,\n\
         06 11 11 11 11,Known,\n\
         06 22 22 22 22,ById,{}\n\
         06 12,Bad,\n\
         +33 6 33 33 33 33,Dup,\n\
         0655555555,New2,\n",
        ids[1]
    );
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    let got: Vec<(u64, &str, &str)> = report
        .iter()
        .map(|l| (l.line, l.outcome.as_str(), l.code.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "added", ""),
            (3, "updated", ""),
            (4, "updated", ""),
            (5, "invalid", "PHONE_INVALID"),
            (6, "invalid", "DUPLICATE_PHONE"),
            (7, "added", ""),
        ]
    );
    assert_eq!(report[1].contact_id, ids[0], "found through the listing");
    assert_eq!(report[2].contact_id, ids[1]);
    let group = sb.state().group("g1").to_vec();
    let by_phone: BTreeMap<&str, &str> = group
        .iter()
        .map(|c| (c.phone.as_str(), c.firstname.as_str()))
        .collect();
    assert_eq!(
        by_phone,
        BTreeMap::from([
            ("+33611111111", "Known"),
            ("+33622222222", "ById"),
            ("+33633333333", "New"),
            ("+33655555555", "New2"),
        ])
    );
    // Two new rows, one bulk add.
    assert_eq!(sb.state().counters.total("POST /v1/contact/add"), 1);
    // Each number sent as an add exactly once: the known one too (refused with
    // 15, then updated); the row with an id is only updated. Each contact is
    // updated once.
    let received = sb.state().counters.received;
    assert_eq!(
        received.smspartner_adds_in("g1"),
        BTreeMap::from([
            ("+33611111111".to_string(), 1),
            ("+33633333333".to_string(), 1),
            ("+33655555555".to_string(), 1),
        ])
    );
    assert_eq!(
        received.smspartner_updates,
        BTreeMap::from([(ids[0].clone(), 1), (ids[1].clone(), 1)])
    );
}

#[test]
fn faults_lose_nothing_and_duplicate_nothing() {
    let sb = Sandbox::start(FaultSettings {
        fault_rate: 0.10,
        drop_rate: 0.05,
        lose_rate: 0.05,
        ..FaultSettings::default()
    });
    // 200 new numbers, 200 already in the group (50 of them with their id in
    // the file): one bulk add, a paged listing and 200 updates, all under faults.
    let phones = numbers(400, 0);
    let seeded: Vec<&str> = phones[200..].iter().map(String::as_str).collect();
    let ids = sb.seed_group("g2", &seeded);
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,contactId\n");
    for (i, p) in phones.iter().enumerate() {
        let id = if i >= 350 { ids[i - 200].as_str() } else { "" };
        file.push_str(&format!("{p},New{i},{id}\n"));
    }
    dir.write("in.csv", file);
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--group-id", "g2", "--rate", "1000", "--max-retries", "10"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    let faults = &state.counters.faults;
    assert!(
        faults.server_error + faults.dropped + faults.lost > 5,
        "faults were injected: {faults:?}"
    );
    let held = sb.group_phones("g2");
    assert!(held.values().all(|n| *n == 1), "none duplicated");
    assert_eq!(
        held.keys().cloned().collect::<BTreeSet<_>>(),
        phones.iter().cloned().collect(),
        "none missing"
    );
    // None sent twice. An add whose response was lost is legitimately sent
    // again (the sandbox applied it; the retry is refused as existing), so a
    // number may be received more than once here. What a client must never do
    // is send an add of a number again once an answer came back: for every
    // number, received − unanswered ≤ 1. The new numbers got in by an add;
    // the rows with an id are only updated; nothing outside the file is added.
    let received = state.counters.received.smspartner_adds_in("g2");
    let unanswered = state.counters.unanswered.smspartner_adds_in("g2");
    for (phone, n) in &received {
        let lost = unanswered.get(phone).copied().unwrap_or(0);
        assert!(
            *n <= lost + 1,
            "{phone}: {n} adds received, only {lost} of them unanswered"
        );
    }
    assert!(phones[..200].iter().all(|p| received.contains_key(p)));
    assert!(phones[350..].iter().all(|p| !received.contains_key(p)));
    assert!(received.keys().all(|p| phones.contains(p)), "{received:?}");
    let names: BTreeSet<String> = state
        .group("g2")
        .iter()
        .map(|c| c.firstname.clone())
        .collect();
    assert_eq!(
        names,
        (0..400).map(|i| format!("New{i}")).collect(),
        "every row's data applied"
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 400);
    assert!(
        report[..200]
            .iter()
            .all(|l| l.outcome == "added" || l.outcome == "updated")
    );
    assert!(
        report[200..].iter().all(|l| l.outcome == "updated"),
        "{report:?}"
    );
}

#[test]
fn wrong_key_aborts_with_exit_3_and_lists_every_row() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(30, 0)));
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", "wrong-key-e81d")
        .args([
            "sync",
            "in.csv",
            "--provider",
            "mobivate",
            "--base-url",
            &sb.url(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 30);
    assert!(report.iter().any(|l| l.code == "AUTH"));
    assert!(
        report
            .iter()
            .all(|l| l.outcome == "failed" || l.outcome == "not_attempted")
    );
    let requests = sb.state().counters.total("POST /addressbook/contacts");
    assert!(requests <= 5, "a handful of requests, not {requests}");
    assert!(sb.state().mobivate.is_empty());
}

#[test]
fn the_key_never_appears_in_any_output_at_maximum_verbosity() {
    let sb = Sandbox::calm();
    sb.seed_group("g1", &["+33611111111"]);
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname\n0611111111,A\n0622222222,B\n06 12,C\n",
    );
    let out = sb.sync(
        &dir,
        "smspartner",
        &[
            "-vv",
            "--group-id",
            "g1",
            "--rejects",
            "rejects.csv",
            "--summary-json",
            "s.json",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // The listing (key in the query) and the update ran.
    assert_eq!(sb.state().counters.total("GET /v1/contact/list"), 1);
    assert_key_absent(&out, &dir, &["in.report.csv", "rejects.csv", "s.json"]);
}

/// One request per row for either provider: Mobivate adds new numbers; SMS
/// Partner updates contacts already in the group by id. Returns the run, the
/// sandbox's final state, and the number of contacts now holding the file's data.
fn one_request_per_row(
    provider: &str,
    server: FaultSettings,
    rows: usize,
    extra: &[&str],
) -> (std::process::Output, SandboxState, usize, Dir) {
    let sb = Sandbox::start(server);
    let phones = numbers(rows, 0);
    let dir = Dir::new();
    let mut file = String::from("phone,firstname,contactId\n");
    if provider == "smspartner" {
        let seeded: Vec<&str> = phones.iter().map(String::as_str).collect();
        let ids = sb.seed_group("g1", &seeded);
        for (p, id) in phones.iter().zip(&ids) {
            file.push_str(&format!("{p},Fresh,{id}\n"));
        }
    } else {
        for p in &phones {
            file.push_str(&format!("{p},Fresh,\n"));
        }
    }
    dir.write("in.csv", file);
    let out = sb.sync(&dir, provider, extra);
    let state = sb.state();
    let fresh = if provider == "smspartner" {
        state
            .group("g1")
            .iter()
            .filter(|c| c.firstname == "Fresh")
            .count()
    } else {
        state.mobivate.len()
    };
    (out, state, fresh, dir)
}

#[test]
fn client_at_the_server_rate_sees_no_429() {
    for provider in ["mobivate", "smspartner"] {
        let server = FaultSettings {
            rate: Some(20.0),
            burst: 20,
            ..FaultSettings::default()
        };
        let (out, state, fresh, _) = one_request_per_row(provider, server, 50, &["--rate", "20"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(state.counters.faults.rate_limited, 0, "{provider}");
        assert_eq!(fresh, 50, "{provider}");
        // Each row reached the provider once: a create, or an update by id.
        let received = &state.counters.received;
        let sent: Vec<u64> = if provider == "mobivate" {
            received.mobivate_adds.values().copied().collect()
        } else {
            assert!(received.smspartner_adds.is_empty(), "{received:?}");
            received.smspartner_updates.values().copied().collect()
        };
        assert_eq!(sent, vec![1; 50], "{provider}");
    }
}

#[test]
fn client_far_above_the_server_limit_converges_and_loses_nothing() {
    for provider in ["mobivate", "smspartner"] {
        let server = FaultSettings {
            rate: Some(25.0),
            burst: 5,
            ..FaultSettings::default()
        };
        let extra = [
            "--rate",
            "500",
            "--max-retries",
            "10",
            "--summary-json",
            "s.json",
        ];
        let (out, state, fresh, dir) = one_request_per_row(provider, server, 60, &extra);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(fresh, 60, "{provider}: nothing lost");
        // Nothing sent twice: a 429 applies nothing, so its retry is the one
        // that counts, once per row (a create, or an update by id).
        let received = &state.counters.received;
        let sent: Vec<u64> = if provider == "mobivate" {
            received.mobivate_adds.values().copied().collect()
        } else {
            assert!(received.smspartner_adds.is_empty(), "{received:?}");
            received.smspartner_updates.values().copied().collect()
        };
        assert_eq!(sent, vec![1; 60], "{provider}: nothing sent twice");
        let throttled = state.counters.faults.rate_limited;
        assert!(
            throttled > 0,
            "{provider}: the test must actually provoke 429s"
        );
        assert!(
            throttled < 30,
            "{provider}: the sender slowed down: {throttled} 429s for 60 rows"
        );
        let summary: serde_json::Value = serde_json::from_str(&dir.read("s.json")).unwrap();
        assert_eq!(summary["throttled"], throttled, "{provider}");
    }
}

#[test]
fn mobivate_mixed_and_faulty_ends_exact() {
    let sb = Sandbox::start(FaultSettings {
        fault_rate: 0.10,
        drop_rate: 0.05,
        lose_rate: 0.05,
        ..FaultSettings::default()
    });
    let existing = sb
        .handle()
        .seed_mobivate([MobivateInput {
            alias: Some("+33611111111".into()),
            msisdn: Some("33611111111".into()),
            meta: None,
        }])
        .unwrap();
    let mut phones = numbers(150, 0);
    phones.push("+33611111111".into());
    let dir = Dir::new();
    let mut file = csv_of(&phones);
    file.push_str("not a number,X,Y\n");
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "mobivate", &["--rate", "1000", "--max-retries", "10"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let state = sb.state();
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for c in &state.mobivate {
        *held.entry(format!("+{}", c.msisdn)).or_default() += 1;
    }
    assert_eq!(held.len(), 151);
    assert!(held.values().all(|n| *n == 1), "none duplicated");
    // None sent twice once answered (see faults_lose_nothing_and_duplicate_nothing:
    // a create whose response was lost may be sent again, nothing else).
    let received = &state.counters.received.mobivate_adds;
    let unanswered = &state.counters.unanswered.mobivate_adds;
    for (msisdn, n) in received {
        let lost = unanswered.get(msisdn).copied().unwrap_or(0);
        assert!(
            *n <= lost + 1,
            "{msisdn}: {n} creates received, only {lost} of them unanswered"
        );
        assert!(
            phones.contains(&format!("+{msisdn}")),
            "{msisdn} is not in the file"
        );
    }
    assert!(phones.iter().all(|p| received.contains_key(&p[1..])));
    let known = state.mobivate.iter().find(|c| c.id == existing[0]).unwrap();
    assert_eq!(
        known.meta.get("FIRSTNAME").and_then(|v| v.as_str()),
        Some("First150")
    );
    let report = dir.report("in.report.csv");
    let counts = outcomes(&report);
    assert_eq!(counts.get("invalid"), Some(&1));
    assert_eq!(counts.get("failed"), None, "{report:?}");
    assert_eq!(report[150].outcome, "updated");
    assert_eq!(report[150].contact_id, existing[0]);
}

#[test]
fn dry_run_and_max_invalid_send_nothing() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,contactId\n0611111111,\n0622222222,c7\n06 12,\n06 13,\n",
    );
    let out = sb.sync(&dir, "smspartner", &["--dry-run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    let got: Vec<&str> = report.iter().map(|l| l.outcome.as_str()).collect();
    assert_eq!(got, vec!["would_add", "would_update", "invalid", "invalid"]);
    assert_eq!(report[1].contact_id, "c7");

    let out = sb.sync(
        &dir,
        "smspartner",
        &["--group-id", "g1", "--max-invalid", "25%"],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-invalid"));
    let got: Vec<String> = dir
        .report("in.report.csv")
        .into_iter()
        .map(|l| l.outcome)
        .collect();
    assert_eq!(
        got,
        vec!["not_attempted", "not_attempted", "invalid", "invalid"]
    );
    assert!(sb.state().counters.requests.is_empty(), "nothing was sent");
}

#[test]
fn the_readme_command_runs_the_sample_through_the_sandbox() {
    let dir = Dir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/contacts.csv");
    let out = dir
        .command()
        .args(["sync", sample.to_str().unwrap(), "--provider", "sandbox"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        1,
        "the sample has invalid rows: {}",
        stderr(&out)
    );
    let report = dir.report("contacts.report.csv");
    let counts = outcomes(&report);
    assert!(
        counts.get("added").copied().unwrap_or(0) >= 40,
        "{counts:?}"
    );
    assert!(!counts.contains_key("failed"), "{report:?}");
    assert!(stderr(&out).contains("added"));
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let dir = Dir::new();
    dir.write("in.csv", "phone\n0611111111\n");
    let out = sync(
        &dir,
        &[
            "in.csv",
            "--provider",
            "smspartner",
            "--base-url",
            "http://api.example.com",
            "--group-id",
            "1",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--allow-insecure-http"));
}

#[test]
fn an_unreachable_provider_stops_the_run_after_three_refused_calls() {
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(40, 0)));
    // Port 1 on loopback: connection refused at once.
    let out = sync(
        &dir,
        &[
            "in.csv",
            "--provider",
            "mobivate",
            "--base-url",
            "http://127.0.0.1:1",
            "--rate",
            "1000",
            "--max-retries",
            "0",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ERROR") && err.contains("cannot reach 127.0.0.1"),
        "names the host: {err}"
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 40, "every row is reported");
    let counts = outcomes(&report);
    // The third refusal stops the run; one more call may have started meanwhile.
    let failed = counts.get("failed").copied().unwrap_or(0);
    assert!((3..=4).contains(&failed), "{counts:?}");
    assert_eq!(
        counts.get("not_attempted").copied().unwrap_or(0),
        40 - failed
    );
    assert!(
        report
            .iter()
            .filter(|l| l.outcome == "failed")
            .all(|l| l.code == "NETWORK"),
        "a refused connection never reached the provider: NETWORK, not UNCONFIRMED"
    );
}

#[cfg(unix)]
#[test]
fn sigint_finishes_in_flight_work_reports_every_row_and_exits_3() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let sb = Sandbox::start(FaultSettings {
        latency: Duration::from_millis(1_500),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(20, 0)));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
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
            &sb.url(),
            "--concurrency",
            "1",
            "--rate",
            "1000",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait (by reading, not sleeping) until the first request is on its way.
    for line in lines.by_ref() {
        if line.unwrap().contains("adding 1 rows") {
            break;
        }
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 20, "every row is reported");
    let counts = outcomes(&report);
    assert!(
        counts.get("not_attempted").copied().unwrap_or(0) >= 15,
        "{counts:?}"
    );
    assert!(!counts.contains_key("failed"), "{counts:?}");
    let added = counts.get("added").copied().unwrap_or(0);
    assert_eq!(
        sb.state().mobivate.len(),
        added,
        "the report matches the provider"
    );
}

#[test]
fn smspartner_wrong_key_in_a_200_body_aborts_too() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    // Rows with ids: one update request each, so the abort must stop the rest.
    let mut file = String::from("phone,contactId\n");
    for (i, p) in numbers(30, 0).iter().enumerate() {
        file.push_str(&format!("{p},{i}\n"));
    }
    dir.write("in.csv", file);
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", "wrong-key-e81d")
        .args([
            "sync",
            "in.csv",
            "--provider",
            "smspartner",
            "--base-url",
            &sb.url(),
            "--group-id",
            "g1",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("credentials rejected"),
        "{}",
        stderr(&out)
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 30);
    // The ids are read back before any update: the first read meets the wrong key.
    assert!(report.iter().all(|l| l.outcome == "not_attempted"));
    let requests = sb.state().counters.total("POST /v1/contact/update");
    assert_eq!(requests, 0, "no update was sent");
    assert!(!stderr(&out).contains("wrong-key-e81d"));
}

#[test]
fn mobivate_key_never_appears_at_maximum_verbosity() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", "phone,firstname\n0611111111,A\n06 12,C\n");
    let out = sb.sync(&dir, "mobivate", &["-vv", "--rejects", "rejects.csv"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(sb.state().mobivate.len(), 1);
    assert_key_absent(&out, &dir, &["in.report.csv", "rejects.csv"]);
}

#[test]
fn an_empty_cell_clears_the_field_and_a_missing_column_leaves_it() {
    let sb = Sandbox::calm();
    let ids = sb
        .handle()
        .seed_smspartner(
            "g1",
            [ContactInput {
                phone_number: Some("+33611111111".into()),
                firstname: Some("Old".into()),
                lastname: Some("Keep".into()),
                ..ContactInput::default()
            }],
        )
        .unwrap();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        format!("phone,firstname,contactId\n0611111111,,{}\n", ids[0]),
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    let c = &state.group("g1")[0];
    assert_eq!((c.firstname.as_str(), c.lastname.as_str()), ("", "Keep"));
}

#[test]
fn mobivate_alias_taken_by_another_number_fails_the_row_and_changes_nothing() {
    let sb = Sandbox::calm();
    sb.handle()
        .seed_mobivate([MobivateInput {
            alias: Some("vip".into()),
            msisdn: Some("33622222222".into()),
            meta: None,
        }])
        .unwrap();
    let dir = Dir::new();
    dir.write("in.csv", "phone,alias\n0611111111,vip\n0633333333,other\n");
    let out = sb.sync(&dir, "mobivate", &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(
        (report[0].outcome.as_str(), report[0].code.as_str()),
        ("failed", "HTTP_400")
    );
    assert_eq!(report[1].outcome, "added");
    let held: BTreeSet<(String, String)> = sb
        .state()
        .mobivate
        .iter()
        .map(|c| (c.alias.clone(), c.msisdn.clone()))
        .collect();
    assert_eq!(
        held,
        BTreeSet::from([
            ("vip".to_string(), "33622222222".to_string()),
            ("other".to_string(), "33633333333".to_string()),
        ])
    );
    // One create per row, the refused one not retried, and no update.
    let received = sb.state().counters.received;
    assert_eq!(
        received.mobivate_adds,
        BTreeMap::from([
            ("33611111111".to_string(), 1),
            ("33633333333".to_string(), 1),
        ])
    );
    assert!(received.mobivate_updates.is_empty(), "{received:?}");
}

#[test]
fn notes_about_a_row_reach_the_sync_report() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname,birthday\n0611111111,Ann,0/0/00\n",
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(report[0].outcome, "added");
    assert!(report[0].message.contains("0/0/00"), "{:?}", report[0]);
}

#[test]
fn a_listing_that_fails_on_a_page_resumes_there_instead_of_from_page_one() {
    let sb = Sandbox::start(FaultSettings {
        fault_rate: 0.3,
        ..FaultSettings::default()
    });
    let phones = numbers(200, 0);
    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
    sb.seed_group("g1", &refs);
    let dir = Dir::new();
    // Every row already exists: each needs the group's listing (10 pages).
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--max-retries", "0", "--rate", "1000"],
    );
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 200, "{}", stderr(&out));
    let listings = sb.state().counters.total("GET /v1/contact/list");
    // Restarting from page 1 after each failed page costs hundreds of pages
    // here (a 30% failure rate and no retries); resuming costs about 10/0.7.
    assert!(listings < 100, "{listings} listing requests");
    let updated = report.iter().filter(|l| l.outcome == "updated").count();
    assert!(updated > 100, "{updated} rows updated");
}
