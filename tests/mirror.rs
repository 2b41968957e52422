//! Mirror mode (`--delete-missing`, issue 15): a contact that leaves the file
//! leaves the provider — only one this tool put there, only within the
//! guard, never on an empty or unreadable export, with a backup first.

use std::collections::BTreeSet;

use contact_sync::sandbox::MobivateInput;

use crate::util::*;

const PROVIDERS: [&str; 2] = ["smspartner", "mobivate"];

/// The numbers the sandbox holds for `provider` (group g1 for SMS Partner), E.164.
fn held(sb: &Sandbox, provider: &str) -> Vec<String> {
    let state = sb.state();
    let mut phones: Vec<String> = match provider {
        "smspartner" => state.group("g1").iter().map(|c| c.phone.clone()).collect(),
        _ => state
            .mobivate
            .iter()
            .map(|c| format!("+{}", c.msisdn))
            .collect(),
    };
    phones.sort();
    phones
}

/// A sandbox holding 30 contacts synced by this tool from `in.csv`, the
/// dir of that run, and their numbers.
fn synced(provider: &str) -> (Sandbox, Dir, Vec<String>) {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(30, 0);
    dir.write("in.csv", csv_of(&phones));
    let out = sb.sync(&dir, provider, &[]);
    assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
    (sb, dir, phones)
}

/// A contact added on the provider by hand, not by this tool.
fn add_by_hand(sb: &Sandbox, provider: &str, phone: &str) {
    if provider == "smspartner" {
        sb.seed_group("g1", &[phone]);
    } else {
        sb.handle()
            .seed_mobivate([MobivateInput {
                alias: Some("by-hand".into()),
                msisdn: Some(phone.trim_start_matches('+').into()),
                meta: None,
            }])
            .unwrap();
    }
}

/// `phones` without the rows at `gone`.
fn without(phones: &[String], gone: &[usize]) -> Vec<String> {
    phones
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, p)| p.clone())
        .collect()
}

/// `csv_of(phones)` keeping each number's original First/Last index, so a
/// file with rows removed still sends what was sent before.
fn csv_keeping(all: &[String], kept: &[String]) -> String {
    let mut s = String::from("phone,firstname,lastname\n");
    for (i, p) in all.iter().enumerate() {
        if kept.contains(p) {
            s.push_str(&format!("{p},First{i},Last{i}\n"));
        }
    }
    s
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The report's deletion rows (empty `line`): (outcome, phone).
fn deletions(report: &[Line]) -> Vec<(String, String)> {
    let first = report
        .iter()
        .position(|l| l.line == 0)
        .unwrap_or(report.len());
    assert!(
        report[first..].iter().all(|l| l.line == 0),
        "deletions come after every input row: {report:?}"
    );
    report[first..]
        .iter()
        .map(|l| (l.outcome.clone(), l.phone.clone()))
        .collect()
}

/// Starts a mirror run of `in.csv` (one request at a time) whose second
/// request the sandbox applies and never answers, holding every later one;
/// returns once it holds that one.
#[cfg(unix)]
fn spawn_held(sb: &Sandbox, dir: &Dir, provider: &str) -> std::process::Child {
    sb.handle().hold_from(2);
    let url = sb.url();
    let mut args = vec![
        "sync",
        "in.csv",
        "--provider",
        provider,
        "--base-url",
        &url,
        "--delete-missing",
        "--concurrency",
        "1",
    ];
    if provider == "smspartner" {
        args.extend(["--group-id", "g1"]);
    }
    let child = spawn(dir, &args, std::process::Stdio::null());
    assert!(
        sb.handle().wait_held(1, std::time::Duration::from_secs(60)),
        "{provider}: no request was held"
    );
    child
}

#[test]
fn three_rows_removed_delete_exactly_their_contacts_never_one_added_by_hand() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        let hand = "+33699999999";
        add_by_hand(&sb, provider, hand);
        let kept = without(&phones, &[3, 10, 20]);
        dir.write("in.csv", csv_keeping(&phones, &kept));

        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        assert_eq!(report.len(), 27 + 3, "{provider}");
        assert!(report[..27].iter().all(|l| l.outcome == "unchanged"));
        let gone = sorted(vec![
            phones[3].clone(),
            phones[10].clone(),
            phones[20].clone(),
        ]);
        let deleted = deletions(&report);
        assert_eq!(
            deleted,
            gone.iter()
                .map(|p| ("deleted".to_string(), p.clone()))
                .collect::<Vec<_>>(),
            "{provider}"
        );
        assert!(report[27..].iter().all(|l| !l.contact_id.is_empty()));
        let mut want = kept.clone();
        want.push(hand.to_string());
        assert_eq!(held(&sb, provider), sorted(want), "{provider}");
        assert_eq!(sb.state().counters.received.delete_count(), 3, "{provider}");
        let summary = stderr(&out);
        assert!(summary.contains("deleted"), "{provider}: {summary}");

        // The backup holds each deleted contact's last-sent fields.
        let backup = dir.read("in.deleted.csv");
        let mut rdr = csv::Reader::from_reader(backup.as_bytes());
        assert_eq!(
            rdr.headers().unwrap().iter().take(3).collect::<Vec<_>>(),
            ["phoneNumber", "firstname", "lastname"]
        );
        let rows: BTreeSet<(String, String)> = rdr
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_string(), r[1].to_string())
            })
            .collect();
        assert_eq!(
            rows,
            BTreeSet::from([
                (phones[3].clone(), "First3".to_string()),
                (phones[10].clone(), "First10".to_string()),
                (phones[20].clone(), "First20".to_string()),
            ]),
            "{provider}"
        );

        // Run again: nothing left to delete, nothing sent.
        let before = requests(&sb);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(requests(&sb), before, "{provider}");
        assert!(deletions(&dir.report("in.report.csv")).is_empty());
    }
}

#[test]
fn more_deletions_than_the_guard_allows_send_nothing_at_all() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        // 9 of 30 rows gone (30%), and one row edited: not even the update goes.
        let kept = without(&phones, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let file = csv_keeping(&phones, &kept).replace("First12,", "Edited12,");
        dir.write("in.csv", &file);
        let before = requests(&sb);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 2, "{provider}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("9 of the 30") && err.contains("--max-delete"),
            "{provider}: {err}"
        );
        assert_eq!(requests(&sb), before, "{provider}: nothing sent");
        assert_eq!(held(&sb, provider), sorted(phones.clone()));
        assert!(
            !dir.path("in.deleted.csv").exists(),
            "no backup: nothing deleted"
        );
        let report = dir.report("in.report.csv");
        assert_eq!(report.len(), 21);
        assert!(deletions(&report).is_empty());

        // A guard raised on purpose lets them through.
        let out = sb.sync(&dir, provider, &["--delete-missing", "--max-delete", "9"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(held(&sb, provider), sorted(kept.clone()));
        assert_eq!(sb.state().counters.received.delete_count(), 9);
    }
}

#[test]
fn opted_out_rows_are_deleted_and_never_added_again() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        // Brevo's SMS_BLACKLISTED: two customers opt out, and a new one who
        // opted out before ever being synced.
        let newcomer = numbers(1, 900)[0].clone();
        let mut file = String::from("phone,firstname,lastname,SMS_BLACKLISTED\n");
        for (i, p) in phones.iter().enumerate() {
            let flag = if i == 4 || i == 7 { "true" } else { "false" };
            file.push_str(&format!("{p},First{i},Last{i},{flag}\n"));
        }
        file.push_str(&format!("{newcomer},New,Comer,yes\n"));
        dir.write("in.csv", &file);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        for line in [6, 9, 32] {
            let row = report.iter().find(|l| l.line == line).unwrap();
            assert_eq!(row.outcome, "unchanged", "{provider} {row:?}");
            assert!(row.message.contains("opted out"), "{provider} {row:?}");
        }
        assert_eq!(
            deletions(&report),
            sorted(vec![phones[4].clone(), phones[7].clone()])
                .into_iter()
                .map(|p| ("deleted".to_string(), p))
                .collect::<Vec<_>>()
        );
        let kept = without(&phones, &[4, 7]);
        assert_eq!(held(&sb, provider), sorted(kept.clone()), "{provider}");

        // Without mirror mode too, an opted-out row is never sent.
        let before = requests(&sb);
        let out = sb.sync(&dir, provider, &[]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(requests(&sb), before, "{provider}: nothing re-added");
        assert_eq!(held(&sb, provider), sorted(kept), "{provider}");
    }
}

#[test]
fn the_backup_fed_back_restores_the_deleted_contacts() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        dir.write(
            "in.csv",
            csv_keeping(&phones, &without(&phones, &[2, 15, 29])),
        );
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(held(&sb, provider).len(), 27);

        // A mistake: the backup, taken as input, puts them back as they were.
        let url = sb.url();
        let mut args = vec!["in.deleted.csv", "--provider", provider, "--base-url", &url];
        if provider == "smspartner" {
            args.extend(["--group-id", "g1"]);
        }
        let out = sync(&dir, &args);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        let report = dir.report("in.deleted.report.csv");
        assert_eq!(
            outcomes(&report).get("added").copied(),
            Some(3),
            "{provider}"
        );
        assert_eq!(held(&sb, provider), sorted(phones.clone()), "{provider}");
        let state = sb.state();
        for i in [2, 15, 29] {
            let first = match provider {
                "smspartner" => state
                    .group("g1")
                    .iter()
                    .find(|c| c.phone == phones[i])
                    .map(|c| c.firstname.clone()),
                _ => state
                    .mobivate
                    .iter()
                    .find(|c| format!("+{}", c.msisdn) == phones[i])
                    .and_then(|c| c.meta.get("FIRSTNAME").and_then(|v| v.as_str()))
                    .map(str::to_string),
            };
            assert_eq!(first, Some(format!("First{i}")), "{provider} {i}");
        }
    }
}

#[test]
fn an_empty_file_or_an_unreadable_phone_deletes_nothing() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);

        dir.write("in.csv", "phone,firstname,lastname\n");
        let out = sb.sync(
            &dir,
            provider,
            &["--delete-missing", "--max-delete", "100%"],
        );
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert!(stderr(&out).contains("no data rows"), "{}", stderr(&out));
        assert_eq!(held(&sb, provider), sorted(phones.clone()));

        // One row whose phone cannot be read: it may be any of the missing ones.
        let mut file = csv_keeping(&phones, &without(&phones, &[1, 2]));
        file.push_str("06 12,Broken,Number\n");
        dir.write("in.csv", &file);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 1, "{provider}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("could not be read"),
            "{}",
            stderr(&out)
        );
        assert_eq!(held(&sb, provider), sorted(phones.clone()));
        assert_eq!(sb.state().counters.received.delete_count(), 0);
    }
}

#[test]
fn a_dry_run_reports_would_delete_and_sends_nothing() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        dir.write("in.csv", csv_keeping(&phones, &without(&phones, &[5, 6])));
        let before = requests(&sb);
        let out = sb.sync(&dir, provider, &["--delete-missing", "--dry-run"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(requests(&sb), before, "{provider}: a dry run sends nothing");
        let report = dir.report("in.report.csv");
        assert_eq!(
            deletions(&report),
            sorted(vec![phones[5].clone(), phones[6].clone()])
                .into_iter()
                .map(|p| ("would_delete".to_string(), p))
                .collect::<Vec<_>>()
        );
        assert!(!dir.path("in.deleted.csv").exists());
        // The store is untouched: the real run deletes them.
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(held(&sb, provider).len(), 28);
    }
}

#[test]
fn deletions_happen_only_in_the_groups_the_file_names() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    let phones = numbers(40, 0);
    let mut file = String::from("phone,firstname,groupId\n");
    for (i, p) in phones.iter().enumerate() {
        let group = if i < 20 { "g1" } else { "g2" };
        file.push_str(&format!("{p},First{i},{group}\n"));
    }
    dir.write("in.csv", &file);
    let url = sb.url();
    let run = |extra: &[&str]| {
        let mut args = vec!["in.csv", "--provider", "smspartner", "--base-url", &url];
        args.extend(extra);
        sync(&dir, &args)
    };
    assert_eq!(code(&run(&[])), 0);
    // Only g1's rows, two of them gone: g2 is not named, so not touched.
    let mut file = String::from("phone,firstname,groupId\n");
    for (i, p) in phones.iter().enumerate().take(20) {
        if i != 3 && i != 4 {
            file.push_str(&format!("{p},First{i},g1\n"));
        }
    }
    dir.write("in.csv", &file);
    let out = run(&["--delete-missing"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sb.group_phones("g1").len(), 18);
    assert!(!sb.group_phones("g1").contains_key(&phones[3]));
    assert_eq!(sb.group_phones("g2").len(), 20, "g2 untouched");
    assert_eq!(sb.state().counters.received.delete_count(), 2);
}

#[test]
fn an_invalid_row_keeps_its_contact() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        // Row 5's name is now too long: invalid, but its number is in the file.
        let long = "N".repeat(40);
        let file = csv_keeping(&phones, &without(&phones, &[8, 9]))
            .replace("First5,", &format!("{long},"));
        dir.write("in.csv", &file);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 1, "{provider}: {}", stderr(&out));
        let report = dir.report("in.report.csv");
        assert_eq!(report[5].code, "FIRSTNAME_TOO_LONG");
        assert_eq!(deletions(&report).len(), 2, "{provider}");
        let held = held(&sb, provider);
        assert!(held.contains(&phones[5]), "{provider}: kept");
        assert_eq!(held, sorted(without(&phones, &[8, 9])));
    }
}

#[test]
fn deletion_flags_need_the_store_and_each_other() {
    let dir = Dir::new();
    dir.write("in.csv", csv_of(&numbers(3, 0)));
    let out = sync(
        &dir,
        &["in.csv", "--provider", "sandbox", "--delete-missing"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("needs the state store"),
        "{}",
        stderr(&out)
    );
    let out = sync(
        &dir,
        &["in.csv", "--provider", "sandbox", "--max-delete", "5"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--delete-missing"),
        "{}",
        stderr(&out)
    );
}

/// Kills a mirror run after one deletion was answered and while another is
/// applied but unanswered (the third never sent), then runs again with the
/// two deleted numbers back in the file: they are added again (the pending
/// one is never left deleted), the third is deleted, and exactly the file's
/// contacts remain.
#[cfg(unix)]
#[test]
fn a_run_killed_during_deletions_and_run_again_ends_exact() {
    for provider in PROVIDERS {
        let (sb, dir, phones) = synced(provider);
        // SMS Partner: a second run with an edit learns the bulk-added ids,
        // so the deletions need no listing and are the only requests.
        let edit = |text: String| {
            if provider == "smspartner" {
                text.replace("First0,", "Edited0,")
            } else {
                text
            }
        };
        dir.write("in.csv", edit(csv_of(&phones)));
        assert_eq!(code(&sb.sync(&dir, provider, &[])), 0);
        let gone = [11, 12, 13];
        dir.write(
            "in.csv",
            edit(csv_keeping(&phones, &without(&phones, &gone))),
        );
        // The first deletion answered, the second applied and never answered.
        let mut child = spawn_held(&sb, &dir, provider);
        child.kill().unwrap();
        child.wait().unwrap();
        sb.handle().release();
        let after = held(&sb, provider);
        let deleted: Vec<usize> = gone
            .into_iter()
            .filter(|&i| !after.contains(&phones[i]))
            .collect();
        assert_eq!(deleted.len(), 2, "{provider}: two deleted before the kill");
        let survivor = gone.into_iter().find(|i| !deleted.contains(i)).unwrap();
        let backup = dir.read("in.deleted.csv");
        for &i in &deleted {
            assert!(
                backup.contains(&phones[i]),
                "{provider}: backed up before sending: {backup}"
            );
        }
        assert!(
            !backup.contains(&phones[survivor]),
            "{provider}: never sent, so not backed up yet: {backup}"
        );

        // A run without --delete-missing deletes nothing more.
        let out = sb.sync(&dir, provider, &[]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(held(&sb, provider), after, "{provider}");

        // The two deleted numbers are back in the file: added again.
        let kept = without(&phones, &[survivor]);
        dir.write("in.csv", edit(csv_keeping(&phones, &kept)));
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(held(&sb, provider), sorted(kept.clone()), "{provider}");
        let report = dir.report("in.report.csv");
        for &i in &deleted {
            let row = report.iter().find(|l| l.phone == phones[i]).unwrap();
            assert_eq!(row.outcome, "added", "{provider}: {row:?}");
        }
        assert_eq!(
            deletions(&report),
            vec![("deleted".to_string(), phones[survivor].clone())],
            "{provider}"
        );
        // Once more: all settled, nothing sent.
        let before = requests(&sb);
        let out = sb.sync(&dir, provider, &["--delete-missing"]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(requests(&sb), before, "{provider}");
    }
}

#[test]
fn a_contact_already_gone_counts_as_deleted_and_the_summary_counts_deletions() {
    let (sb, dir, phones) = synced("smspartner");
    // Bulk-added: the store has no ids. One of them is deleted by hand first.
    let id_of = |phone: &str| {
        sb.state()
            .group("g1")
            .iter()
            .find(|c| c.phone == phone)
            .map(|c| c.contact_id.clone())
            .unwrap()
    };
    sb.handle().delete_smspartner(&id_of(&phones[1])).unwrap();
    // A row whose opt-out cell says neither yes nor no keeps its contact.
    let mut file = String::from("phone,firstname,lastname,opted out\n");
    for (i, p) in phones.iter().enumerate().skip(2) {
        let flag = if i == 9 { "maybe" } else { "" };
        file.push_str(&format!("{p},First{i},Last{i},{flag}\n"));
    }
    dir.write("in.csv", &file);
    let out = sb.sync(
        &dir,
        "smspartner",
        &["--delete-missing", "--summary-json", "sum.json"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    assert_eq!(report[7].code, "OPTOUT_INVALID");
    let gone: Vec<&Line> = report.iter().filter(|l| l.line == 0).collect();
    assert_eq!(gone.len(), 2);
    assert!(gone.iter().all(|l| l.outcome == "deleted"), "{gone:?}");
    let by_hand = gone.iter().find(|l| l.phone == phones[1]).unwrap();
    assert!(
        by_hand.message.contains("not on the provider"),
        "{by_hand:?}"
    );
    let held = held(&sb, "smspartner");
    assert_eq!(held, sorted(without(&phones, &[0, 1])));
    assert!(
        held.contains(&phones[9]),
        "an unreadable opt-out keeps its contact"
    );
    let summary: serde_json::Value = serde_json::from_str(&dir.read("sum.json")).unwrap();
    assert_eq!(summary["deletions"], 2);
    assert_eq!(summary["outcomes"]["deleted"], 2);
    assert_eq!(summary["rows"], 28 + 2);

    // With its id known, a contact deleted by hand meets a 404: still deleted.
    let (sb, dir, phones) = synced("mobivate");
    let id = sb
        .state()
        .mobivate
        .iter()
        .find(|c| format!("+{}", c.msisdn) == phones[4])
        .map(|c| c.id.clone())
        .unwrap();
    let url = sb.url();
    let gone = reqwest_delete(&format!("{url}/addressbook/contacts/{id}"));
    assert!(gone);
    dir.write("in.csv", csv_keeping(&phones, &without(&phones, &[4])));
    let out = sb.sync(&dir, "mobivate", &["--delete-missing"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = dir.report("in.report.csv");
    let row = report.iter().find(|l| l.line == 0).unwrap();
    assert_eq!(
        (
            row.outcome.as_str(),
            row.message.as_str(),
            row.contact_id.as_str()
        ),
        ("deleted", "already gone", id.as_str())
    );
}

/// Deletes by hand on the sandbox's Mobivate API, as a user would.
fn reqwest_delete(url: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .delete(url)
            .bearer_auth(KEY)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

/// SIGTERM while a deletion is out: the run stops within its grace, and the
/// report still has a row for every deletion (the one out `UNCONFIRMED`,
/// the one never sent `not_attempted`), exit 3.
#[cfg(unix)]
#[test]
fn an_interrupted_mirror_run_still_reports_every_deletion() {
    let (sb, dir, phones) = synced("mobivate");
    dir.write(
        "in.csv",
        csv_keeping(&phones, &without(&phones, &[20, 21, 22])),
    );
    let mut child = spawn_held(&sb, &dir, "mobivate");
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let report = dir.report("in.report.csv");
    assert_eq!(report.len(), 27 + 3);
    let mut fates: Vec<(String, String)> = report[27..]
        .iter()
        .map(|l| (l.outcome.clone(), l.code.clone()))
        .collect();
    fates.sort();
    assert_eq!(
        fates,
        [
            ("deleted".to_string(), String::new()),
            ("failed".to_string(), "UNCONFIRMED".to_string()),
            ("not_attempted".to_string(), String::new()),
        ]
    );
}
