//! A packed copy of a target's planner table ([`TargetMap`]), written by the
//! last run that changed the store and read by the next one instead of every
//! row: the unchanged nightly rerun loads a million numbers in a few dozen
//! milliseconds instead of half a second.
//!
//! A snapshot is used only when the store's generation is the one it was
//! taken at. The generation is moved on by triggers on every insert, update
//! and delete of a contact (schema 2), so no code path can change a contact
//! and leave a stale snapshot behind; a snapshot that does not read back
//! whole and consistent is ignored, and the rows are read instead.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Packed, StateError, Status, TargetMap, load_rows};

/// Bytes of one entry: key, fingerprint, id start, id length, status, flags.
const ENTRY: usize = 8 + 8 + 4 + 2 + 1 + 1;

/// Entries per chunk (a chunk holds whole entries: about 1 MiB).
const ENTRIES_PER_CHUNK: usize = 43_690;

/// Bytes of contact ids per chunk.
const IDS_PER_CHUNK: usize = 1 << 20;

/// Marks the layout of chunk 0.
const MAGIC: &[u8; 4] = b"CSM1";

/// The snapshot of `target`, if it is current and reads back whole.
pub(super) fn read(conn: &Connection, target: i64) -> rusqlite::Result<Option<TargetMap>> {
    let generation: i64 = conn.query_row("SELECT n FROM generation", [], |r| r.get(0))?;
    let mut stmt = conn
        .prepare_cached("SELECT generation, data FROM snapshots WHERE target = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![target])?;
    let Some(head) = rows.next()? else {
        return Ok(None);
    };
    if head.get::<_, i64>(0)? != generation {
        return Ok(None);
    }
    let head = head.get_ref(1)?.as_blob()?;
    let Some((count, bits, ids_len)) = parse_head(head) else {
        return Ok(None);
    };
    let mut map = TargetMap {
        entries: Vec::with_capacity(count),
        bits,
        ids: String::with_capacity(ids_len),
        ..TargetMap::default()
    };
    let mut ids = Vec::with_capacity(ids_len);
    while let Some(row) = rows.next()? {
        if row.get::<_, i64>(0)? != generation {
            return Ok(None);
        }
        let data = row.get_ref(1)?.as_blob()?;
        if map.entries.len() < count {
            if data.len() % ENTRY != 0 || map.entries.len() + data.len() / ENTRY > count {
                return Ok(None);
            }
            for e in data.chunks_exact(ENTRY) {
                let Some(entry) = parse_entry(e) else {
                    return Ok(None);
                };
                map.entries.push(entry);
            }
        } else {
            ids.extend_from_slice(data);
        }
    }
    if map.entries.len() != count || ids.len() != ids_len {
        return Ok(None);
    }
    let Ok(ids) = String::from_utf8(ids) else {
        return Ok(None);
    };
    map.ids = ids;
    Ok(map.reseal().then_some(map))
}

/// Writes a snapshot of `target` unless the current one is still valid.
pub(super) fn renew(conn: &Connection, path: &Path, target: i64) -> Result<(), StateError> {
    let sql = |e| StateError::sql(path, e);
    let current: Option<bool> = conn
        .query_row(
            "SELECT s.generation = g.n FROM snapshots s, generation g WHERE s.target = ?1 AND s.seq = 0",
            params![target],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    if current == Some(true) {
        return Ok(());
    }
    write(conn, path, target)
}

/// Replaces the snapshot of `target` by one of its rows as they are now.
pub(super) fn write(conn: &Connection, path: &Path, target: i64) -> Result<(), StateError> {
    let sql = |e| StateError::sql(path, e);
    let tx = conn.unchecked_transaction().map_err(sql)?;
    let map = load_rows(&tx, path, target)?;
    let generation: i64 = tx
        .query_row("SELECT n FROM generation", [], |r| r.get(0))
        .map_err(sql)?;
    tx.execute("DELETE FROM snapshots WHERE target = ?1", params![target])
        .map_err(sql)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO snapshots (target, seq, generation, data) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql)?;
    let mut head = Vec::with_capacity(24);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&(map.entries.len() as u64).to_le_bytes());
    head.extend_from_slice(&map.bits.to_le_bytes());
    head.extend_from_slice(&(map.ids.len() as u64).to_le_bytes());
    insert
        .execute(params![target, 0, generation, head])
        .map_err(sql)?;
    let mut seq = 1i64;
    let mut chunk = Vec::with_capacity(ENTRIES_PER_CHUNK * ENTRY);
    for group in map.entries.chunks(ENTRIES_PER_CHUNK) {
        chunk.clear();
        for (key, p) in group {
            chunk.extend_from_slice(&key.to_le_bytes());
            chunk.extend_from_slice(&p.fingerprint.to_le_bytes());
            chunk.extend_from_slice(&p.id_start.to_le_bytes());
            chunk.extend_from_slice(&p.id_len.to_le_bytes());
            chunk.push(p.status);
            chunk.push(u8::from(p.has_fingerprint));
        }
        insert
            .execute(params![target, seq, generation, chunk])
            .map_err(sql)?;
        seq += 1;
    }
    for ids in map.ids.as_bytes().chunks(IDS_PER_CHUNK) {
        insert
            .execute(params![target, seq, generation, ids])
            .map_err(sql)?;
        seq += 1;
    }
    drop(insert);
    tx.commit().map_err(sql)
}

fn parse_head(head: &[u8]) -> Option<(usize, u32, usize)> {
    let rest = head.strip_prefix(MAGIC)?;
    let count = u64::from_le_bytes(rest.get(0..8)?.try_into().ok()?);
    let bits = u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?);
    let ids_len = u64::from_le_bytes(rest.get(12..20)?.try_into().ok()?);
    if bits > 40 {
        return None;
    }
    Some((
        usize::try_from(count).ok()?,
        bits,
        usize::try_from(ids_len).ok()?,
    ))
}

fn parse_entry(e: &[u8]) -> Option<(u64, Packed)> {
    let key = u64::from_le_bytes(e.get(0..8)?.try_into().ok()?);
    let fingerprint = u64::from_le_bytes(e.get(8..16)?.try_into().ok()?);
    let id_start = u32::from_le_bytes(e.get(16..20)?.try_into().ok()?);
    let id_len = u16::from_le_bytes(e.get(20..22)?.try_into().ok()?);
    let status = *e.get(22)?;
    Status::from_code(i64::from(status))?;
    let has_fingerprint = match e.get(23)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some((
        key,
        Packed {
            fingerprint,
            id_start,
            id_len,
            status,
            has_fingerprint,
        },
    ))
}
