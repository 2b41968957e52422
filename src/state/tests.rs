//! Tests of the state store on temporary files.

use std::future::Future;

use super::*;

fn key() -> ApiKey {
    ApiKey::new("k-123".into())
}

fn target_key(group: &str) -> TargetKey {
    TargetKey {
        provider: "smspartner".into(),
        base_url: "https://api.example".into(),
        group: group.into(),
    }
}

fn sent(phone: &str, kind: Status, id: Option<&str>, fp: u64) -> Sent {
    Sent {
        phone: phone.into(),
        kind,
        contact_id: id.map(str::to_string),
        fingerprint: fp,
        fields: "{}".into(),
    }
}

#[test]
fn phone_keys_are_e164_digits_only() {
    assert_eq!(phone_key("+33612345678"), Some(33612345678));
    assert_eq!(phone_key("33612345678"), None);
    assert_eq!(phone_key("+"), None);
    assert_eq!(phone_key("+1234567890123456"), None);
    assert_eq!(phone_key("+33 6"), None);
}

#[test]
fn the_target_map_gives_back_what_went_in() {
    let mut map = TargetMap::default();
    let a = Entry {
        contact_id: Some("id-a".into()),
        fingerprint: Some(7),
        status: Status::Confirmed,
    };
    let b = Entry {
        contact_id: None,
        fingerprint: None,
        status: Status::Known,
    };
    map.insert("+33611111111", &a);
    map.insert("+33622222222", &b);
    map.seal();
    assert_eq!(map.get("+33611111111"), Some(a));
    assert_eq!(map.get("+33622222222"), Some(b));
    assert_eq!(map.get("+33633333333"), None);
    assert_eq!(map.len(), 2);
}

#[tokio::test]
async fn sends_go_pending_then_confirmed_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let store = Store::open(&path, &key(), false).unwrap();
    let target = store.target(&target_key("g1")).unwrap();
    let writer = StateWriter::start(store).unwrap();
    writer
        .commit(Update::Pending {
            target,
            rows: vec![
                sent("+33611111111", Status::PendingAdd, None, 1),
                sent("+33622222222", Status::PendingAdd, None, 2),
                sent("+33633333333", Status::PendingAdd, None, 3),
            ],
        })
        .await
        .unwrap();
    writer.send(Update::Confirmed {
        target,
        row: sent("+33611111111", Status::Confirmed, Some("c1"), 1),
    });
    writer.send(Update::Refused {
        target,
        phone: "+33633333333".into(),
    });
    writer.close().unwrap();

    let store = Store::open(&path, &key(), false).unwrap();
    let map = store.load(target).unwrap();
    assert_eq!(
        map.get("+33611111111"),
        Some(Entry {
            contact_id: Some("c1".into()),
            fingerprint: Some(1),
            status: Status::Confirmed
        })
    );
    assert_eq!(
        map.get("+33622222222").map(|e| e.status),
        Some(Status::PendingAdd)
    );
    assert_eq!(
        map.get("+33633333333"),
        None,
        "a refused first add leaves nothing"
    );
    let summary = &store.summaries().unwrap()[0];
    assert_eq!(
        (summary.numbers, summary.managed, summary.pending),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn settled_waits_until_what_was_queued_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let store = Store::open(&path, &key(), false).unwrap();
    let target = store.target(&target_key("g1")).unwrap();
    let writer = StateWriter::start(store).unwrap();
    let settled = writer.settled();
    // Nothing queued: open at once.
    settled.wait().await;
    // Another connection holds the write lock, so the writer cannot commit.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer.send(Update::Confirmed {
        target,
        row: sent("+33611111111", Status::Confirmed, Some("c1"), 1),
    });
    let mut wait = std::pin::pin!(settled.wait());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        wait.as_mut().poll(&mut cx).is_pending(),
        "a change still queued keeps the gate shut"
    );
    blocker.execute_batch("COMMIT").unwrap();
    wait.await;
    let seen: Option<String> = blocker
        .query_row(
            "SELECT contact_id FROM contacts WHERE phone = '+33611111111'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seen.as_deref(), Some("c1"), "committed once the gate opens");
    writer.close().unwrap();
}

#[test]
fn another_key_is_another_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let store = Store::open(&path, &key(), false).unwrap();
    let mine = store.target(&target_key("g1")).unwrap();
    drop(store);
    let other = Store::open(&path, &ApiKey::new("another".into()), false).unwrap();
    assert_eq!(other.find_target(&target_key("g1")).unwrap(), None);
    assert_ne!(other.target(&target_key("g1")).unwrap(), mine);
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(5).any(|w| w == b"k-123"),
        "the key itself is never stored"
    );
}

#[test]
fn foreign_newer_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("g.sqlite");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    assert!(Store::open(&garbage, &key(), false).is_err());

    let foreign = dir.path().join("f.sqlite");
    let conn = Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE notes (t TEXT);").unwrap();
    drop(conn);
    let err = Store::open(&foreign, &key(), false).err().unwrap();
    assert!(
        err.to_string().contains("not a contact-sync state store"),
        "{err}"
    );

    let newer = dir.path().join("n.sqlite");
    drop(Store::open(&newer, &key(), false).unwrap());
    let conn = Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&newer, &key(), false).err().unwrap();
    assert!(err.to_string().contains("newer contact-sync"), "{err}");
}

#[test]
fn a_lock_is_refused_while_held_and_taken_over_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let held = Lock::acquire(&path).unwrap();
    assert!(matches!(
        Lock::acquire(&path),
        Err(StateError::Locked { .. })
    ));
    drop(held);
    // A lock file naming a process that is gone.
    std::fs::write(dir.path().join("s.sqlite.lock"), "4000000000\n").unwrap();
    assert!(Lock::acquire(&path).is_ok());
}

#[test]
fn a_large_target_map_finds_every_number_and_nothing_else() {
    let mut map = TargetMap::default();
    let entry = |i: u64| Entry {
        contact_id: i.is_multiple_of(3).then(|| format!("id{i}")),
        fingerprint: Some(i),
        status: Status::Confirmed,
    };
    for i in 0..10_000u64 {
        map.insert(&format!("+336{:08}", i * 7), &entry(i));
    }
    map.seal();
    for i in 0..10_000u64 {
        assert_eq!(map.get(&format!("+336{:08}", i * 7)), Some(entry(i)), "{i}");
        assert_eq!(map.get(&format!("+336{:08}", i * 7 + 1)), None, "{i}");
    }
}

#[tokio::test]
async fn managed_contacts_go_pending_delete_then_away_or_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let store = Store::open(&path, &key(), false).unwrap();
    let target = store.target(&target_key("g1")).unwrap();
    let writer = StateWriter::start(store).unwrap();
    for (phone, id) in [("+33611111111", "c1"), ("+33622222222", "c2")] {
        writer
            .commit(Update::Confirmed {
                target,
                row: sent(phone, Status::Confirmed, Some(id), 1),
            })
            .await
            .unwrap();
    }
    // Only listed: never managed, never a deletion candidate.
    writer
        .commit(Update::Known {
            target,
            entries: vec![("+33633333333".into(), "c3".into())],
        })
        .await
        .unwrap();
    for phone in ["+33611111111", "+33622222222"] {
        writer
            .commit(Update::PendingDelete {
                target,
                phone: phone.into(),
            })
            .await
            .unwrap();
    }
    writer.send(Update::Deleted {
        target,
        phone: "+33611111111".into(),
    });
    writer.close().unwrap();

    let store = Store::open(&path, &key(), false).unwrap();
    assert_eq!(store.managed_count(target).unwrap(), 1);
    let mut managed = Vec::new();
    store.each_managed(target, |m| managed.push(m)).unwrap();
    assert_eq!(
        managed,
        vec![Managed {
            phone: "+33622222222".into(),
            contact_id: Some("c2".into()),
            fields: "{}".into(),
            status: Status::PendingDelete,
        }],
        "the deleted one is gone, the unanswered one pending, the listed one not managed"
    );
    assert_eq!(store.summaries().unwrap()[0].pending, 1);
    let writer = StateWriter::start(store).unwrap();
    writer.send(Update::Kept {
        target,
        phone: "+33622222222".into(),
        status: Status::Confirmed,
    });
    writer.close().unwrap();
    let store = Store::open(&path, &key(), false).unwrap();
    assert_eq!(
        store
            .load(target)
            .unwrap()
            .get("+33622222222")
            .map(|e| e.status),
        Some(Status::Confirmed)
    );
}

#[cfg(unix)]
#[test]
fn the_store_its_journal_files_and_its_lock_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let lock = Lock::acquire(&path).unwrap();
    assert_eq!(mode(&dir.path().join("s.db.lock")), 0o600);
    let store = Store::open(&path, &key(), false).unwrap();
    assert_eq!(mode(&path), 0o600);
    for side in ["s.db-wal", "s.db-shm"] {
        let p = dir.path().join(side);
        assert!(p.exists(), "{side} is there while the store is open");
        assert_eq!(mode(&p), 0o600, "{side}");
    }
    drop(store);
    drop(lock);
}

/// A store whose target `g1` holds 300 numbers (a third with ids), written
/// through the writer so that its close leaves a snapshot.
fn store_with_snapshot(path: &std::path::Path) -> (i64, Vec<String>) {
    let store = Store::open(path, &key(), false).unwrap();
    let target = store.target(&target_key("g1")).unwrap();
    let writer = StateWriter::start(store).unwrap();
    let phones: Vec<String> = (0..300).map(|i| format!("+336{:08}", i * 37)).collect();
    for (i, p) in phones.iter().enumerate() {
        let id = (i % 3 == 0).then(|| format!("id-{i}"));
        writer.send(Update::Confirmed {
            target,
            row: sent(p, Status::Confirmed, id.as_deref(), i as u64),
        });
    }
    writer.close().unwrap();
    (target, phones)
}

fn entries(map: &TargetMap, phones: &[String]) -> Vec<Option<Entry>> {
    phones.iter().map(|p| map.get(p)).collect()
}

#[test]
fn a_closed_writer_leaves_a_snapshot_that_loads_like_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let (target, phones) = store_with_snapshot(&path);
    let store = Store::open(&path, &key(), false).unwrap();
    let from_snapshot = snapshot::read(&store.conn, target)
        .unwrap()
        .expect("current");
    let from_rows = load_rows(&store.conn, &path, target).unwrap();
    assert_eq!(from_snapshot.len(), 300);
    assert_eq!(
        entries(&from_snapshot, &phones),
        entries(&from_rows, &phones)
    );
    assert_eq!(from_snapshot.get("+33600000001"), None);
    // And the planner gets it: a fingerprint changed in the snapshot alone
    // (no contact written, so still current) shows through `load`.
    let first: Vec<u8> = store
        .conn
        .query_row(
            "SELECT data FROM snapshots WHERE target = ?1 AND seq = 1",
            [target],
            |r| r.get(0),
        )
        .unwrap();
    let mut tampered = first.clone();
    tampered[8] ^= 0xFF;
    store
        .conn
        .execute(
            "UPDATE snapshots SET data = ?1 WHERE target = ?2 AND seq = 1",
            params![tampered, target],
        )
        .unwrap();
    let loaded = store.load(target).unwrap();
    assert_ne!(entries(&loaded, &phones), entries(&from_rows, &phones));
}

#[test]
fn any_change_to_a_contact_or_a_damaged_snapshot_falls_back_to_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let (target, phones) = store_with_snapshot(&path);
    let store = Store::open(&path, &key(), false).unwrap();
    // A change by a statement this code never wrote: the generation moves on.
    store
        .conn
        .execute(
            "UPDATE contacts SET fingerprint = 4242 WHERE phone = ?1",
            [&phones[5]],
        )
        .unwrap();
    assert!(
        snapshot::read(&store.conn, target).unwrap().is_none(),
        "stale"
    );
    assert_eq!(
        store
            .load(target)
            .unwrap()
            .get(&phones[5])
            .unwrap()
            .fingerprint,
        Some(4242)
    );
    // Renewed, then damaged in every way a chunk can be: never used.
    snapshot::renew(&store.conn, &path, target).unwrap();
    assert!(snapshot::read(&store.conn, target).unwrap().is_some());
    for damage in ["x'00'", "x''", "zeroblob(24)"] {
        snapshot::write(&store.conn, &path, target).unwrap();
        store
            .conn
            .execute(
                &format!("UPDATE snapshots SET data = {damage} WHERE target = ?1 AND seq = 1"),
                [target],
            )
            .unwrap();
        assert!(
            snapshot::read(&store.conn, target).unwrap().is_none(),
            "{damage}"
        );
        let map = store.load(target).unwrap();
        assert_eq!(
            map.get(&phones[5]).unwrap().fingerprint,
            Some(4242),
            "{damage}"
        );
        assert_eq!(map.len(), 300);
    }
}
