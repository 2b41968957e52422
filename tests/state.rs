//! The state store end to end: a rerun of an unchanged file sends nothing, a
//! changed row costs one update, a stale id is added again, a dry run reads
//! the store, one run per store at a time, and a run killed anywhere and run
//! again ends exact.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use contact_sync::sandbox::faults::FaultSettings;
use contact_sync::sandbox::{Received, SandboxState};

use crate::util::*;

/// `csv_of` with row `i`'s first name changed.
fn edited(phones: &[String], i: usize) -> String {
    csv_of(phones).replacen(&format!("First{i},"), &format!("Edited{i},"), 1)
}

#[test]
fn an_unchanged_file_synced_again_sends_nothing() {
    for provider in ["smspartner", "mobivate"] {
        let sb = Sandbox::calm();
        let dir = Dir::new();
        let phones = numbers(700, 0);
        dir.write("in.csv", csv_of(&phones));
        let first = sb.sync(&dir, provider, &["--rate", "1000"]);
        assert_eq!(code(&first), 0, "{provider}: {}", stderr(&first));
        let before = requests(&sb);
        let second = sb.sync(&dir, provider, &["--rate", "1000"]);
        assert_eq!(code(&second), 0, "{provider}: {}", stderr(&second));
        assert_eq!(requests(&sb), before, "{provider}: the rerun sent nothing");
        let report = dir.report("in.report.csv");
        assert_eq!(report.len(), 700);
        assert!(
            report.iter().all(|l| l.outcome == "unchanged"),
            "{provider}: {:?}",
            outcomes(&report)
        );
        // --no-state sends again (the provider answers "already exists").
        let third = sb.sync(&dir, provider, &["--no-state", "--rate", "1000"]);
        assert_eq!(code(&third), 0, "{provider}: {}", stderr(&third));
        assert!(requests(&sb) > before, "{provider}: --no-state sends");
    }
}

#[test]
fn one_edited_row_costs_one_update() {
    // Mobivate answers adds with ids: the edit is one update by id.
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(50, 0);
    dir.write("in.csv", csv_of(&phones));
    assert_eq!(code(&sb.sync(&dir, "mobivate", &[])), 0);
    let before = requests(&sb);
    dir.write("in.csv", edited(&phones, 7));
    let out = sb.sync(&dir, "mobivate", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(requests(&sb) - before, 1, "exactly one request");
    let report = dir.report("in.report.csv");
    let counts = outcomes(&report);
    assert_eq!(counts.get("updated"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("unchanged"), Some(&49), "{counts:?}");
    assert_eq!(report[7].outcome, "updated");
    let held = sb.state().mobivate;
    assert_eq!(held.len(), 50);
}

#[test]
fn smspartner_finds_bulk_added_ids_once_then_updates_by_id() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(60, 0);
    dir.write("in.csv", csv_of(&phones));
    assert_eq!(code(&sb.sync(&dir, "smspartner", &[])), 0);
    // Bulk adds return no ids: the first edit finds them through one listing
    // of the group (3 pages of 20), which the store keeps.
    dir.write("in.csv", edited(&phones, 3));
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let updates = sb.state().counters.total("POST /v1/contact/update");
    assert_eq!(updates, 1);
    let listings = sb.state().counters.total("GET /v1/contact/list");
    assert_eq!(listings, 3);
    // The next edit costs one request, with no listing.
    let before = requests(&sb);
    dir.write(
        "in.csv",
        edited(&phones, 3).replacen("First40,", "Edited40,", 1),
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(requests(&sb) - before, 1, "one update by its stored id");
    let report = dir.report("in.report.csv");
    assert_eq!(report[40].outcome, "updated", "{:?}", report[40]);
    // Rows 3's edit is what was last sent now: unchanged.
    assert_eq!(report[3].outcome, "unchanged");
    let firstnames: BTreeMap<String, String> = sb
        .state()
        .group("g1")
        .iter()
        .map(|c| (c.phone.clone(), c.firstname.clone()))
        .collect();
    assert_eq!(firstnames[&phones[40]], "Edited40");
    assert_eq!(firstnames.len(), 60);
}

#[test]
fn a_contact_deleted_by_hand_is_added_again_when_its_row_changes() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(5, 0);
    dir.write("in.csv", csv_of(&phones));
    assert_eq!(code(&sb.sync(&dir, "smspartner", &[])), 0);
    // Learn the ids (one listing), then delete one contact by hand.
    dir.write("in.csv", edited(&phones, 0));
    assert_eq!(code(&sb.sync(&dir, "smspartner", &[])), 0);
    let gone = sb
        .state()
        .group("g1")
        .iter()
        .find(|c| c.phone == phones[2])
        .map(|c| c.contact_id.clone())
        .unwrap();
    sb.handle().delete_smspartner(&gone).unwrap();
    let mut file = edited(&phones, 0);
    file = file.replacen("First2,", "Edited2,", 1);
    dir.write("in.csv", file);
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(report[2].outcome, "added", "{:?}", report[2]);
    let held: Vec<_> = sb
        .state()
        .group("g1")
        .iter()
        .filter(|c| c.phone == phones[2])
        .map(|c| c.firstname.clone())
        .collect();
    assert_eq!(held, ["Edited2"]);
}

#[test]
fn a_dry_run_reads_the_store_and_writes_nothing() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(20, 0);
    dir.write("in.csv", csv_of(&phones));
    assert_eq!(code(&sb.sync(&dir, "mobivate", &[])), 0);
    let store = store_rows(&dir.state_home());
    assert_eq!(store.len(), 20);
    let before = requests(&sb);
    dir.write(
        "in.csv",
        edited(&phones, 5) + &format!("{},New,One\n", numbers(1, 900)[0]),
    );
    let out = sb.sync(&dir, "mobivate", &["--dry-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(requests(&sb), before, "a dry run sends nothing");
    let counts = outcomes(&dir.report("in.report.csv"));
    assert_eq!(
        counts,
        BTreeMap::from([
            ("unchanged".to_string(), 19),
            ("would_update".to_string(), 1),
            ("would_add".to_string(), 1),
        ])
    );
    assert!(
        store_rows(&dir.state_home()) == store,
        "the store is untouched"
    );
}

/// Every contact row of the one store under `home`.
fn store_rows(home: &std::path::Path) -> Vec<(String, Option<String>, Option<i64>, i64)> {
    let dir = home.join("contact-sync");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT phone, contact_id, fingerprint, status FROM contacts ORDER BY phone")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[cfg(unix)]
#[test]
fn a_second_run_on_the_same_store_is_refused_while_the_first_runs() {
    let slow = Sandbox::start(FaultSettings {
        latency: Duration::from_secs(60),
        ..FaultSettings::default()
    });
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let url = slow.url();
    let (mut first, mut lines) = spawn_mobivate(&dir, &url, &[]);
    wait_for(&mut lines, "adding 1 rows");
    let second = slow.sync(&dir, "mobivate", &["--report", "second.csv"]);
    let err = stderr(&second);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(code(&second), 2, "{err}");
    assert!(
        err.contains("in use by another run") && err.contains(&first.id().to_string()),
        "names the store and the other process: {err}"
    );
    // The killed run's lock is taken over by the next one.
    let calm = Sandbox::calm();
    let out = calm.sync(&dir, "mobivate", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_damaged_or_foreign_store_stops_the_run_with_a_message() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    dir.write(
        "junk.sqlite",
        "this is not a database, just text that is long enough......",
    );
    let out = sb.sync(&dir, "mobivate", &["--state", "junk.sqlite"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("junk.sqlite"), "{}", stderr(&out));
    assert_eq!(requests(&sb), 0);
}

#[test]
fn state_show_forget_and_rebuild() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(30, 0);
    dir.write("in.csv", csv_of(&phones));
    assert_eq!(code(&sb.sync(&dir, "smspartner", &[])), 0);
    let url = sb.url();
    let target = [
        "--provider",
        "smspartner",
        "--base-url",
        &url,
        "--group-id",
        "g1",
    ];
    let state = |verb: &str, extra: &[&str]| {
        dir.command()
            .env("CONTACT_SYNC_API_KEY", KEY)
            .arg("state")
            .arg(verb)
            .args(target)
            .args(extra)
            .output()
            .unwrap()
    };
    let show = state("show", &[]);
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    assert!(
        text.contains("30 numbers (30 synced by this tool), 0 pending"),
        "{text}"
    );

    let refused = state("forget", &[]);
    assert_eq!(code(&refused), 2, "forget asks for --yes off a terminal");
    assert!(String::from_utf8_lossy(&state("show", &[]).stdout).contains("30 numbers"));
    assert_eq!(code(&state("forget", &["--yes"])), 0);
    assert!(String::from_utf8_lossy(&state("show", &[]).stdout).contains("no state store"));

    let rebuilt = state("rebuild", &[]);
    assert_eq!(code(&rebuilt), 0, "{}", stderr(&rebuilt));
    assert!(
        stderr(&rebuilt).contains("30 contacts"),
        "{}",
        stderr(&rebuilt)
    );
    let text = String::from_utf8_lossy(&state("show", &[]).stdout).into_owned();
    assert!(
        text.contains("30 numbers (0 synced by this tool)"),
        "{text}"
    );
    // The ids are known again: no add is sent, each row is one update.
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let received = sb.state().counters.received;
    assert!(received.smspartner_adds_in("g1").values().all(|n| *n == 1));
    assert_eq!(sb.state().counters.total("POST /v1/contact/update"), 30);
}

#[test]
fn full_sends_every_valid_row_once_and_refreshes_the_store() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(15, 0)));
    assert_eq!(code(&sb.sync(&dir, "mobivate", &["--rate", "1000"])), 0);
    let before = requests(&sb);
    let out = sb.sync(&dir, "mobivate", &["--rate", "1000", "--full"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(requests(&sb) - before, 15, "one update a row");
    assert!(
        dir.report("in.report.csv")
            .iter()
            .all(|l| l.outcome == "updated")
    );
    // The store is fresh again: the next run sends nothing.
    let before = requests(&sb);
    assert_eq!(code(&sb.sync(&dir, "mobivate", &["--rate", "1000"])), 0);
    assert_eq!(requests(&sb), before);
}

/// Starts `sync in.csv` on `provider` one request at a time with the sandbox
/// set to hold from its `at`-th request, kills the run (SIGKILL) once that
/// request is applied and unanswered; returns the sandbox before the run and
/// as the kill left it.
fn killed_at_hold(sb: &Sandbox, dir: &Dir, provider: &str, at: u64) -> [SandboxState; 2] {
    let url = sb.url();
    let mut args = vec!["sync", "in.csv", "--provider", provider, "--base-url", &url];
    args.extend(["--concurrency", "1", "--rate", "1000"]);
    if provider == "smspartner" {
        args.extend(["--group-id", "g1"]);
    }
    let before = sb.state();
    sb.handle().hold_from(at);
    let mut child = spawn(dir, &args, Stdio::null());
    let held = sb
        .handle()
        .wait_held(before.counters.held + 1, Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held, "the run reached request {at}");
    let at_kill = sb.state();
    sb.handle().release();
    [before, at_kill]
}

/// Per key, what the run had heard back by the kill (a request leaves only
/// once every answer before it is committed, so the rerun sends none again): received minus
/// unanswered, between two snapshots of the sandbox's counts.
fn answered(
    counts: impl Fn(&Received) -> &BTreeMap<String, u64>,
    [before, at_kill]: &[SandboxState; 2],
) -> BTreeMap<String, u64> {
    let heard = |s: &SandboxState, k: &String| {
        let received = counts(&s.counters.received).get(k).copied().unwrap_or(0);
        received - counts(&s.counters.unanswered).get(k).copied().unwrap_or(0)
    };
    counts(&at_kill.counters.received)
        .keys()
        .map(|k| (k.clone(), heard(at_kill, k) - heard(before, k)))
        .filter(|(_, c)| *c > 0)
        .collect()
}

/// No key in `heard` reached the sandbox again between `at_kill` and `now`.
fn assert_none_sent_again(
    counts: impl Fn(&Received) -> &BTreeMap<String, u64>,
    heard: &BTreeMap<String, u64>,
    at_kill: &SandboxState,
    now: &SandboxState,
) {
    let count = |s: &SandboxState, k: &String| counts(&s.counters.received).get(k).copied();
    let again: Vec<&String> = heard
        .keys()
        .filter(|k| count(now, k) > count(at_kill, k))
        .collect();
    assert!(
        again.is_empty(),
        "{again:?} were confirmed before the kill and sent again"
    );
}

#[cfg(unix)]
#[test]
fn a_mobivate_run_killed_at_a_chosen_request_and_run_again_ends_exact() {
    let mut lost_answers = 0;
    for at in [1, 4, 8] {
        // Latency and lost answers, so some rows are retried before the kill.
        let sb = Sandbox::seeded(
            FaultSettings {
                latency: Duration::from_millis(20),
                lose_rate: 0.2,
                ..FaultSettings::default()
            },
            at,
        );
        let dir = Dir::new();
        let phones = numbers(8, 0);
        dir.write("in.csv", csv_of(&phones));
        let at_kill = killed_at_hold(&sb, &dir, "mobivate", at);
        let heard = answered(|r| &r.mobivate_adds, &at_kill);
        let out = sb.sync(&dir, "mobivate", &["--max-retries", "30"]);
        assert_eq!(code(&out), 0, "kill at {at}: {}", stderr(&out));
        let state = sb.state();
        let mut held: Vec<String> = state
            .mobivate
            .iter()
            .map(|c| format!("+{}", c.msisdn))
            .collect();
        held.sort();
        assert_eq!(
            held, phones,
            "kill at {at}: exactly the file's contacts, once each"
        );
        assert_none_sent_again(|r| &r.mobivate_adds, &heard, &at_kill[1], &state);
        let report = dir.report("in.report.csv");
        assert_eq!(report.len(), 8, "kill at {at}: every row reported");
        let unchanged = report.iter().filter(|l| l.outcome == "unchanged").count();
        assert_eq!(unchanged, heard.len(), "kill at {at}: {report:?}");
        // An add is sent again only when its answer was lost (or held).
        for p in &phones {
            let m = p.trim_start_matches('+');
            let adds = state.counters.received.mobivate_adds[m];
            let lost = state.counters.unanswered.mobivate_adds.get(m).copied();
            assert!(
                adds <= 1 + lost.unwrap_or(0),
                "kill at {at}: {p} added {adds} times, {lost:?} answers lost"
            );
        }
        lost_answers += state.counters.faults.lost;
    }
    assert!(lost_answers > 0, "the runs met lost answers");
}

#[cfg(unix)]
#[test]
fn smspartner_runs_killed_during_a_bulk_add_and_during_updates_end_exact() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(30, 0);
    dir.write("in.csv", csv_of(&phones));
    // The bulk add is applied, its answer never comes.
    let [_, at_kill] = killed_at_hold(&sb, &dir, "smspartner", 1);
    assert_eq!(at_kill.counters.held, 1);
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let group = sb.group_phones("g1");
    assert_eq!(group.keys().cloned().collect::<Vec<_>>(), phones);
    assert!(group.values().all(|n| *n == 1));
    // Five edited rows, killed at the third update: the two confirmed ones are
    // not sent again, the rest are, and every first name ends as the file says.
    let mut file = csv_of(&phones);
    for i in [2, 9, 14, 21, 28] {
        file = file.replacen(&format!("First{i},"), &format!("Edited{i},"), 1);
    }
    dir.write("in.csv", &file);
    let at_kill = killed_at_hold(&sb, &dir, "smspartner", 3);
    let heard = answered(|r| &r.smspartner_updates, &at_kill);
    assert_eq!(heard.len(), 2, "{:?}", at_kill[1].counters);
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = sb.state();
    assert_none_sent_again(|r| &r.smspartner_updates, &heard, &at_kill[1], &state);
    let firstnames: BTreeMap<String, String> = state
        .group("g1")
        .iter()
        .map(|c| (c.phone.clone(), c.firstname.clone()))
        .collect();
    for (i, p) in phones.iter().enumerate() {
        let want = if [2, 9, 14, 21, 28].contains(&i) {
            format!("Edited{i}")
        } else {
            format!("First{i}")
        };
        assert_eq!(firstnames[p], want);
    }
    let report = dir.report("in.report.csv");
    let counts = outcomes(&report);
    assert_eq!(
        counts.get("unchanged"),
        Some(&(30 - 5 + heard.len())),
        "{counts:?}"
    );
}
