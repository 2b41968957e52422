//! The state store (SPEC §5): per target and number, what this tool last
//! sent, the provider's contact id and whether the send is confirmed, in one
//! SQLite file. The planner asks it "known? same fingerprint? id?" so that a
//! rerun of an unchanged file costs no request; results are committed in
//! small transactions as they arrive, so a crash loses at most what was in
//! flight, and a send recorded as pending is settled by the next run.

mod lock;
mod schema;
mod snapshot;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub(crate) use lock::Lock;
pub(crate) use writer::{Sent, Settled, StateWriter, Update};

/// A contact this tool synced from a file row and saw confirmed (mirror
/// mode's candidates for deletion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Managed {
    /// The E.164 number.
    pub phone: String,
    /// The provider's id, when known (a bulk add returns none).
    pub contact_id: Option<String>,
    /// The fields last sent, as a JSON object under SPEC field names.
    pub fields: String,
    /// Where it stands now.
    pub status: Status,
}

use crate::secret::ApiKey;

/// Why the store cannot be used: exit 2, never a silent reset.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// The file cannot be opened or read.
    #[error("state store {path}: {message}")]
    Unusable {
        /// The store's path.
        path: String,
        /// What went wrong, with what to do.
        message: String,
    },
    /// Another run holds the store.
    #[error(
        "state store {path} is in use by another run (process {pid}); wait for it to finish. If no run is going on, delete {lock}"
    )]
    Locked {
        /// The store's path.
        path: String,
        /// The other process.
        pid: u32,
        /// The lock file.
        lock: String,
    },
}

impl StateError {
    fn unusable(path: &Path, message: impl Into<String>) -> StateError {
        StateError::Unusable {
            path: path.display().to_string(),
            message: message.into(),
        }
    }

    fn sql(path: &Path, e: rusqlite::Error) -> StateError {
        StateError::unusable(path, e.to_string())
    }
}

/// What a store's target is: one address book on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetKey {
    /// `smspartner`, `mobivate` or `sandbox`.
    pub provider: String,
    /// The API base URL.
    pub base_url: String,
    /// The SMS Partner group (empty for Mobivate).
    pub group: String,
}

/// Where a number stands in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The last send was answered with success.
    Confirmed,
    /// An add left and its answer was not recorded: it may have been applied.
    PendingAdd,
    /// An update left and its answer was not recorded.
    PendingUpdate,
    /// Learnt from a listing: the provider holds it, this tool did not send it.
    Known,
    /// A deletion (mirror mode) left and its answer was not recorded: the
    /// contact may be gone. Settled by the next run: updated (or added) again
    /// when the file holds the number, deleted again with `--delete-missing`.
    PendingDelete,
}

impl Status {
    fn code(self) -> i64 {
        match self {
            Status::Confirmed => 0,
            Status::PendingAdd => 1,
            Status::PendingUpdate => 2,
            Status::Known => 3,
            Status::PendingDelete => 4,
        }
    }

    fn from_code(code: i64) -> Option<Status> {
        Some(match code {
            0 => Status::Confirmed,
            1 => Status::PendingAdd,
            2 => Status::PendingUpdate,
            3 => Status::Known,
            4 => Status::PendingDelete,
            _ => return None,
        })
    }
}

/// What the store knows of one number, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The provider's id, when known (a bulk add returns none).
    pub contact_id: Option<String>,
    /// Fingerprint of what was last sent (none for a number only listed).
    pub fingerprint: Option<u64>,
    /// Confirmed, pending or only known.
    pub status: Status,
}

/// Every number of one target, in memory for the planner: compact, since a
/// nightly file may hold a million rows — 24 bytes a number, ids in one
/// string, entries grouped by a hash of the number with an offset table over
/// the groups (about four a group), so a lookup touches two cache lines
/// instead of the twenty a binary search over the whole table would.
#[derive(Debug, Default)]
pub(crate) struct TargetMap {
    entries: Vec<(u64, Packed)>,
    /// `buckets[b]..buckets[b + 1]` are the entries whose hash falls in bucket `b`.
    buckets: Vec<u32>,
    /// log2 of the number of buckets.
    bits: u32,
    ids: String,
}

#[derive(Debug, Clone, Copy)]
struct Packed {
    fingerprint: u64,
    id_start: u32,
    id_len: u16,
    status: u8,
    has_fingerprint: bool,
}

/// The digits of an E.164 number as an integer (`None` for anything else).
pub(crate) fn phone_key(phone: &str) -> Option<u64> {
    let digits = phone.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The bucket of `key` among `2^bits`.
fn bucket_of(key: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (crate::hash::mix(key) >> (64 - bits)) as usize
    }
}

impl TargetMap {
    #[cfg(test)]
    fn insert(&mut self, phone: &str, entry: &Entry) {
        self.insert_parts(
            phone,
            entry.contact_id.as_deref(),
            entry.fingerprint,
            entry.status,
        );
    }

    fn insert_parts(
        &mut self,
        phone: &str,
        contact_id: Option<&str>,
        fingerprint: Option<u64>,
        status: Status,
    ) {
        let Some(key) = phone_key(phone) else { return };
        let (id_start, id_len) = match contact_id {
            Some(id) if id.len() <= usize::from(u16::MAX) && self.ids.len() < u32::MAX as usize => {
                let start = self.ids.len() as u32;
                self.ids.push_str(id);
                (start, id.len() as u16)
            }
            _ => (0, 0),
        };
        self.entries.push((
            key,
            Packed {
                fingerprint: fingerprint.unwrap_or(0),
                id_start,
                id_len,
                status: status.code() as u8,
                has_fingerprint: fingerprint.is_some(),
            },
        ));
    }

    /// Groups the entries for lookups; call once after the last insert.
    fn seal(&mut self) {
        self.bits = Self::bits_for(self.entries.len());
        let bits = self.bits;
        self.entries
            .sort_unstable_by_key(|(k, _)| (bucket_of(*k, bits), *k));
        self.index();
        self.entries.shrink_to_fit();
        self.ids.shrink_to_fit();
    }

    /// Indexes entries read back from a snapshot, after checking they are
    /// what [`TargetMap::seal`] leaves; `false` (and unusable) when not.
    fn reseal(&mut self) -> bool {
        let bits = self.bits;
        if bits != Self::bits_for(self.entries.len()) {
            return false;
        }
        let ordered = self
            .entries
            .windows(2)
            .all(|w| (bucket_of(w[0].0, bits), w[0].0) < (bucket_of(w[1].0, bits), w[1].0));
        let ids_fit = self.entries.iter().all(|(_, p)| {
            let end = p.id_start as usize + usize::from(p.id_len);
            end <= self.ids.len()
                && self.ids.is_char_boundary(p.id_start as usize)
                && self.ids.is_char_boundary(end)
        });
        if !ordered || !ids_fit {
            return false;
        }
        self.index();
        true
    }

    /// log2 of the number of buckets for `len` entries (about four a bucket).
    fn bits_for(len: usize) -> u32 {
        (len / 4).max(1).next_power_of_two().trailing_zeros()
    }

    /// Builds the bucket offsets of entries already in bucket order.
    fn index(&mut self) {
        let bits = self.bits;
        self.buckets = vec![0; (1usize << bits) + 1];
        for (k, _) in &self.entries {
            self.buckets[bucket_of(*k, bits) + 1] += 1;
        }
        for b in 1..self.buckets.len() {
            self.buckets[b] += self.buckets[b - 1];
        }
    }

    /// What the store knows of `phone`.
    pub(crate) fn get(&self, phone: &str) -> Option<Entry> {
        self.get_key(phone_key(phone)?)
    }

    /// What the store knows of the number with these E.164 digits.
    pub(crate) fn get_key(&self, key: u64) -> Option<Entry> {
        let b = bucket_of(key, self.bits);
        let (start, end) = (*self.buckets.get(b)?, *self.buckets.get(b + 1)?);
        let group = self.entries.get(start as usize..end as usize)?;
        let p = &group.iter().find(|(k, _)| *k == key)?.1;
        let contact_id = (p.id_len > 0).then(|| {
            let start = p.id_start as usize;
            self.ids
                .get(start..start + usize::from(p.id_len))
                .unwrap_or("")
                .to_string()
        });
        Some(Entry {
            contact_id,
            fingerprint: p.has_fingerprint.then_some(p.fingerprint),
            status: Status::from_code(i64::from(p.status)).unwrap_or(Status::Known),
        })
    }

    /// Numbers held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// An open store: its connection and the account it is used with.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    account: String,
}

/// Counts for `state show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetSummary {
    /// The target.
    pub key: TargetKey,
    /// Numbers held.
    pub numbers: u64,
    /// Numbers synced by this tool and confirmed.
    pub managed: u64,
    /// Sends whose answer was never recorded.
    pub pending: u64,
    /// When the last run on it ended (Unix seconds), if one did.
    pub last_sync: Option<i64>,
}

impl Store {
    /// Opens (creating it when `create`) the store at `path` for the account
    /// of `key`. `read_only` opens without writing anything (a dry run).
    pub(crate) fn open(path: &Path, key: &ApiKey, read_only: bool) -> Result<Store, StateError> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StateError::unusable(path, format!("cannot create its directory: {e}"))
                })?;
            }
            // SQLite gives its -wal and -shm files the mode of the database.
            crate::private::precreate(path)
                .map_err(|e| StateError::unusable(path, format!("cannot create it: {e}")))?;
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StateError::unusable(path, format!("cannot open it: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| StateError::sql(path, e))?;
        schema::prepare(&conn, path, read_only)?;
        let salt = schema::salt(&conn, path)?;
        let account = account_fingerprint(key, &salt);
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            account,
        })
    }

    /// A store for a dry run: read-only, or empty when the file does not exist.
    pub(crate) fn open_existing(path: &Path, key: &ApiKey) -> Result<Option<Store>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        Store::open(path, key, true).map(Some)
    }

    /// The id of `key`'s target, if the store has one.
    pub(crate) fn find_target(&self, key: &TargetKey) -> Result<Option<i64>, StateError> {
        self.conn
            .query_row(
                "SELECT id FROM targets WHERE provider = ?1 AND base_url = ?2 AND account = ?3 AND group_id = ?4",
                params![key.provider, key.base_url, self.account, key.group],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StateError::sql(&self.path, e))
    }

    /// The id of `key`'s target, created when new.
    pub(crate) fn target(&self, key: &TargetKey) -> Result<i64, StateError> {
        if let Some(id) = self.find_target(key)? {
            return Ok(id);
        }
        self.conn
            .execute(
                "INSERT INTO targets (provider, base_url, account, group_id) VALUES (?1, ?2, ?3, ?4)",
                params![key.provider, key.base_url, self.account, key.group],
            )
            .map_err(|e| StateError::sql(&self.path, e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every number of target `target`, for the planner: from the snapshot
    /// the last run left when nothing changed since, else row by row.
    pub(crate) fn load(&self, target: i64) -> Result<TargetMap, StateError> {
        match snapshot::read(&self.conn, target) {
            Ok(Some(map)) => return Ok(map),
            Ok(None) => {}
            Err(e) => tracing::debug!("state snapshot unreadable ({e}); reading the rows"),
        }
        load_rows(&self.conn, &self.path, target)
    }

    /// How many contacts of `target` are managed (synced by this tool and confirmed).
    pub(crate) fn managed_count(&self, target: i64) -> Result<u64, StateError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM contacts WHERE target = ?1 AND managed = 1",
                params![target],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| StateError::sql(&self.path, e))
    }

    /// Calls `each` with every managed contact of `target`, one at a time
    /// (the store may hold millions: the caller keeps only what it needs).
    pub(crate) fn each_managed(
        &self,
        target: i64,
        mut each: impl FnMut(Managed),
    ) -> Result<(), StateError> {
        let sql = |e| StateError::sql(&self.path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT phone, contact_id, fields, status FROM contacts
                 WHERE target = ?1 AND managed = 1 ORDER BY phone",
            )
            .map_err(sql)?;
        let mut rows = stmt.query(params![target]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let status: i64 = row.get(3).map_err(sql)?;
            each(Managed {
                phone: row.get(0).map_err(sql)?,
                contact_id: row.get(1).map_err(sql)?,
                fields: row
                    .get::<_, Option<String>>(2)
                    .map_err(sql)?
                    .unwrap_or_else(|| "{}".into()),
                status: Status::from_code(status).ok_or_else(|| {
                    StateError::unusable(
                        &self.path,
                        format!("unknown status {status}: the file is damaged"),
                    )
                })?,
            });
        }
        Ok(())
    }

    /// Every target of this store (any account), with counts.
    pub(crate) fn summaries(&self) -> Result<Vec<TargetSummary>, StateError> {
        let sql = |e| StateError::sql(&self.path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.provider, t.base_url, t.group_id, t.last_sync,
                        COUNT(c.phone),
                        COALESCE(SUM(c.managed), 0),
                        COALESCE(SUM(c.status IN (1, 2, 4)), 0)
                 FROM targets t LEFT JOIN contacts c ON c.target = t.id
                 GROUP BY t.id ORDER BY t.id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TargetSummary {
                    key: TargetKey {
                        provider: r.get(0)?,
                        base_url: r.get(1)?,
                        group: r.get(2)?,
                    },
                    last_sync: r.get(3)?,
                    numbers: r.get::<_, i64>(4)? as u64,
                    managed: r.get::<_, i64>(5)? as u64,
                    pending: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Notes that a run on `target` went through to its end.
    pub(crate) fn mark_finished(&self, target: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE targets SET last_sync = ?2 WHERE id = ?1",
                params![target, now()],
            )
            .map(|_| ())
            .map_err(|e| StateError::sql(&self.path, e))
    }
}

/// Every number of target `target`, read row by row.
fn load_rows(conn: &Connection, path: &Path, target: i64) -> Result<TargetMap, StateError> {
    let sql = |e| StateError::sql(path, e);
    let mut stmt = conn
        .prepare("SELECT phone, contact_id, fingerprint, status FROM contacts WHERE target = ?1")
        .map_err(sql)?;
    let count: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM contacts WHERE target = ?1",
            params![target],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let mut rows = stmt.query(params![target]).map_err(sql)?;
    let mut map = TargetMap {
        entries: Vec::with_capacity(usize::try_from(count).unwrap_or(0)),
        ..TargetMap::default()
    };
    while let Some(row) = rows.next().map_err(sql)? {
        // Borrowed, not copied: a million numbers load in a fraction of a second.
        let phone = row.get_ref(0).map_err(sql)?.as_str().unwrap_or("");
        let status: i64 = row.get(3).map_err(sql)?;
        let status = Status::from_code(status).ok_or_else(|| {
            StateError::unusable(
                path,
                format!("unknown status {status}: the file is damaged"),
            )
        })?;
        let contact_id = row.get_ref(1).map_err(sql)?.as_str_or_null().map_err(|e| {
            StateError::unusable(
                path,
                format!("a contact id is not text ({e}): the file is damaged"),
            )
        })?;
        let fingerprint = row.get::<_, Option<i64>>(2).map_err(sql)?.map(|f| f as u64);
        map.insert_parts(phone, contact_id, fingerprint, status);
    }
    map.seal();
    Ok(map)
}

/// A slow salted hash of the key, so the store tells accounts apart without
/// holding anything that gives the key back cheaply.
fn account_fingerprint(key: &ApiKey, salt: &[u8]) -> String {
    use argon2::{Algorithm, Argon2, Params, Version};
    let mut out = [0u8; 32];
    let hashed = Params::new(8 * 1024, 2, 1, Some(out.len()))
        .map(|p| Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
        .and_then(|a| a.hash_password_into(key.expose().as_bytes(), salt, &mut out));
    if hashed.is_err() {
        // Only a salt shorter than 8 bytes fails, and the store writes 16.
        return String::new();
    }
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default store for a target: one file per provider, host and group in
/// the user's state directory (`$XDG_STATE_HOME/contact-sync` on Linux).
pub(crate) fn default_path(key: &TargetKey) -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "contact-sync")?;
    let dir = dirs
        .state_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
    let host = reqwest::Url::parse(&key.base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!("-{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "default".into());
    let group = if key.group.is_empty() {
        String::new()
    } else {
        format!("-{}", key.group)
    };
    let name: String = format!("{}-{host}{group}", key.provider)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(dir.join(format!("{name}.sqlite")))
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
