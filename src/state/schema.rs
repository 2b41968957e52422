//! The store's schema: recognised by `PRAGMA application_id`, versioned by
//! `PRAGMA user_version`, brought up to date by ordered migrations.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::StateError;

/// Marks a SQLite file as a contact-sync store ("CSYN").
const APPLICATION_ID: i64 = 0x4353_594E;

/// The migrations, in order: the store's version is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: targets, and per number what was last sent.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE targets (
         id INTEGER PRIMARY KEY,
         provider TEXT NOT NULL,
         base_url TEXT NOT NULL,
         account TEXT NOT NULL,
         group_id TEXT NOT NULL,
         last_sync INTEGER,
         UNIQUE (provider, base_url, account, group_id)
     );
     CREATE TABLE contacts (
         target INTEGER NOT NULL REFERENCES targets (id),
         phone TEXT NOT NULL,
         contact_id TEXT,
         fields TEXT,
         fingerprint INTEGER,
         status INTEGER NOT NULL,
         managed INTEGER NOT NULL DEFAULT 0,
         updated_at INTEGER NOT NULL,
         PRIMARY KEY (target, phone)
     ) WITHOUT ROWID;",
    // 2: a packed copy of each target's planner table, valid while the
    // generation it was taken at is current; any change to a contact, by any
    // statement, moves the generation on.
    "CREATE TABLE generation (n INTEGER NOT NULL);
     INSERT INTO generation (n) VALUES (0);
     CREATE TRIGGER contacts_inserted AFTER INSERT ON contacts
         BEGIN UPDATE generation SET n = n + 1; END;
     CREATE TRIGGER contacts_updated AFTER UPDATE ON contacts
         BEGIN UPDATE generation SET n = n + 1; END;
     CREATE TRIGGER contacts_deleted AFTER DELETE ON contacts
         BEGIN UPDATE generation SET n = n + 1; END;
     CREATE TABLE snapshots (
         target INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         generation INTEGER NOT NULL,
         data BLOB NOT NULL,
         PRIMARY KEY (target, seq)
     );",
];

/// Checks the file is ours and current, creating or migrating it unless `read_only`.
pub(super) fn prepare(conn: &Connection, path: &Path, read_only: bool) -> Result<(), StateError> {
    let pragma = |name: &str| -> Result<i64, StateError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| {
                StateError::unusable(
                    path,
                    format!("cannot be read as a SQLite database ({e}); if it is damaged, move it away and run `contact-sync state rebuild`"),
                )
            })
    };
    let app = pragma("application_id")?;
    let version = pragma("user_version")?;
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| StateError::sql(path, e))?;
    let fresh = app == 0 && version == 0 && tables == 0;
    if !fresh && app != APPLICATION_ID {
        return Err(StateError::unusable(
            path,
            "is not a contact-sync state store (another program's database?); give --state another path",
        ));
    }
    let latest = MIGRATIONS.len() as i64;
    if version > latest {
        return Err(StateError::unusable(
            path,
            format!(
                "was written by a newer contact-sync (schema {version}, this one knows up to {latest}); upgrade contact-sync"
            ),
        ));
    }
    if read_only {
        if version < latest && !fresh {
            return Err(StateError::unusable(
                path,
                "has an older schema; run a sync without --dry-run once to upgrade it",
            ));
        }
        return Ok(());
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| StateError::sql(path, e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| StateError::sql(path, e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = i as i64 + 1;
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| StateError::sql(path, e))?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| tx.pragma_update(None, "user_version", next))
            .and_then(|()| tx.commit())
            .map_err(|e| {
                StateError::unusable(path, format!("cannot upgrade it to schema {next}: {e}"))
            })?;
    }
    Ok(())
}

/// The store's salt for the account fingerprint, made on first use.
pub(super) fn salt(conn: &Connection, path: &Path) -> Result<Vec<u8>, StateError> {
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'salt'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| StateError::sql(path, e))?;
    if let Some(salt) = stored {
        return Ok(salt);
    }
    let mut salt = vec![0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| StateError::unusable(path, format!("no randomness for its salt: {e}")))?;
    conn.execute("INSERT INTO meta (key, value) VALUES ('salt', ?1)", [&salt])
        .map_err(|e| StateError::sql(path, e))?;
    Ok(salt)
}
