//! Reads, normalises and de-duplicates every row of a file, in input order:
//! the front half of the pipeline that `validate` and `sync` share.
//!
//! A reader thread cuts the stream into batches, worker threads normalise them
//! in parallel (phone parsing dominates the cost), and the calling thread puts
//! batches back in order, applies the first-row-wins duplicate rule and hands
//! each row to a sink. Channels are bounded, so memory stays constant.
//!
//! Some rules are about a whole column (SPEC §4: a date column is read as
//! Excel serial numbers only when every non-empty cell is one). A file is
//! streamed, so the decision is taken on a look-ahead: the first
//! [`LOOKAHEAD_ROWS`] rows (at most [`LOOKAHEAD_BYTES`]) are read before any
//! row is normalised, and what they show holds for the whole file. Both
//! passes of `sync` read the same first rows, so they decide alike.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use crate::codes::{ErrorCode, RowError};
use crate::columns::{ColumnMap, Field};
use crate::normalize::{ColumnFacts, Contact, FactsFinder, Normalizer};
use crate::reader::{CsvReader, EncodingStats, ReadError, RecordStatus};
use crate::record::Record;

const BATCH: usize = 512;

/// Rows read ahead to decide column-wide rules before the first row is checked.
pub(crate) const LOOKAHEAD_ROWS: usize = 1000;

/// Bytes of text the look-ahead holds at most, whatever the row count.
pub(crate) const LOOKAHEAD_BYTES: usize = 8 << 20;

/// The verdict on one row after validation and de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The row can be sent.
    Valid(Box<Contact>),
    /// The row has problems, in column order.
    Invalid(Vec<RowError>),
}

/// One input row with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedRow {
    /// The row as read (its `line` is where it starts).
    pub record: Record,
    /// What validation made of it.
    pub verdict: Verdict,
    /// The E.164 number of an invalid row whose phone cell itself is valid.
    pub phone: Option<String>,
    /// What the report's message says about a valid row (`; `-joined notes:
    /// a placeholder date left out, a name cut …); empty when nothing.
    pub note: String,
}

impl CheckedRow {
    /// The normalised number, or the raw phone cell of an invalid row.
    pub(crate) fn phone<'a>(&'a self, map: &ColumnMap) -> &'a str {
        match &self.verdict {
            Verdict::Valid(c) => &c.phone,
            Verdict::Invalid(_) => match &self.phone {
                Some(p) => p,
                None => map
                    .get(Field::PhoneNumber)
                    .and_then(|i| self.record.get(i))
                    .unwrap_or(""),
            },
        }
    }
}

/// Remembers the first line of each (number, group); the first row wins.
///
/// An open-addressing table of 12-byte slots (the key, and the line as a
/// `u32`: one cache miss a row), at most 3/4 full, sized once from the
/// file's expected row count: a million numbers take 24 MiB, where a
/// `HashMap<u64, u64>` took 32 and 48 while it doubled.
#[derive(Default)]
pub(crate) struct Dedup {
    slots: Vec<Slot>,
    /// Numbers held.
    len: usize,
    /// First lines past `u32::MAX` (files of more than four billion lines).
    big_lines: HashMap<u64, u64>,
    groups: HashMap<String, u64>,
    /// First lines of (number, group) past the 16,383rd group, whose index
    /// does not fit above the digits.
    many_groups: HashMap<(u64, u64), u64>,
}

/// One slot of [`Dedup`]: a key (0: free) split in halves to keep 12 bytes.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: [u32; 2],
    /// The first line, [`BIG_LINE`] when it is in `big_lines`.
    line: u32,
}

impl Slot {
    fn key(self) -> u64 {
        u64::from(self.key[0]) | (u64::from(self.key[1]) << 32)
    }
}

/// E.164 numbers have at most 15 digits (< 2^50): the group index sits above them.
const GROUP_SHIFT: u32 = 50;

/// The line stored for a first line too large for a `u32`.
const BIG_LINE: u32 = u32::MAX;

impl Dedup {
    /// Room for about `rows` numbers before the first doubling (at most 2^26).
    pub(crate) fn with_capacity(rows: usize) -> Dedup {
        let mut dedup = Dedup::default();
        if rows > 0 {
            let slots = (rows.min(1 << 26) * 4 / 3 + 1)
                .next_power_of_two()
                .max(1024);
            dedup.slots = vec![Slot::default(); slots];
        }
        dedup
    }

    /// `Some(first_line)` when an earlier row had the same number and group.
    pub(crate) fn check(&mut self, contact: &Contact, line: u64) -> Option<u64> {
        let digits: u64 = contact.phone.trim_start_matches('+').parse().ok()?;
        let next = self.groups.len() as u64;
        let group = if contact.group_id.is_empty() {
            0
        } else {
            *self
                .groups
                .entry(contact.group_id.clone())
                .or_insert(next + 1)
        };
        let Some(key) = table_key(digits, group) else {
            return match self.many_groups.entry((digits, group)) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(line);
                    None
                }
            };
        };
        if key == 0 {
            return None;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let at = self.slot(key);
        let slot = &mut self.slots[at];
        if slot.key() == key {
            return Some(match slot.line {
                BIG_LINE => self.big_lines.get(&key).copied().unwrap_or(line),
                small => u64::from(small),
            });
        }
        slot.key = [key as u32, (key >> 32) as u32];
        slot.line = match u32::try_from(line) {
            Ok(small) if small != BIG_LINE => small,
            _ => {
                self.big_lines.insert(key, line);
                BIG_LINE
            }
        };
        self.len += 1;
        None
    }

    /// Reads, before [`check`](Dedup::check) takes them one by one, the slot
    /// each valid row of a batch hashes to: the loads are independent, so the
    /// processor overlaps their cache misses instead of waiting on each in
    /// turn. Changes nothing; only the memory is brought near.
    fn warm(&self, rows: &[CheckedRow]) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut seen = 0u32;
        for row in rows {
            if let Verdict::Valid(contact) = &row.verdict
                && let Ok(digits) = contact.phone.trim_start_matches('+').parse::<u64>()
            {
                let group = if contact.group_id.is_empty() {
                    Some(0)
                } else {
                    self.groups.get(&contact.group_id).copied()
                };
                if let Some(key) = group.and_then(|g| table_key(digits, g)) {
                    seen ^= self.slots[(crate::hash::mix(key) as usize) & mask].key[0];
                }
            }
        }
        std::hint::black_box(seen);
    }

    /// The slot holding `key`, or the free one where it belongs.
    fn slot(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut slot = (crate::hash::mix(key) as usize) & mask;
        while self.slots[slot].key() != 0 && self.slots[slot].key() != key {
            slot = (slot + 1) & mask;
        }
        slot
    }

    /// Doubles the table (1,024 slots at first) and places every key again.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        for slot in old {
            if slot.key() != 0 {
                let at = self.slot(slot.key());
                self.slots[at] = slot;
            }
        }
    }
}

/// The table's key for a number and a group index: the index above the
/// digits, `None` when it does not fit there.
fn table_key(digits: u64, group: u64) -> Option<u64> {
    (group >> (64 - GROUP_SHIFT) == 0).then_some(digits | (group << GROUP_SHIFT))
}

/// Counts of what the scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScanStats {
    /// Data rows handed to the sink.
    pub rows: u64,
    /// How the rows were decoded.
    pub encoding: EncodingStats,
    /// What the look-ahead decided about the columns.
    pub facts: ColumnFacts,
}

type Batch = (u64, Vec<(Record, RecordStatus)>);
type Checked = (u64, Vec<CheckedRow>);

/// What a scan keeps of a valid row's [`Contact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Every field: what a sync sends.
    Contact,
    /// The number and group only (what `validate` reports and de-duplicates
    /// on): the other fields are freed on the worker that built them, not
    /// on the thread that puts rows in order, which is the scan's bottleneck.
    NumberOnly,
}

/// Streams every data row of `reader` through `normalizer` and the duplicate
/// rule to `sink`, in input order, on `workers` threads. The sink may stop the
/// scan early by returning `Break`.
pub(crate) fn scan<R: Read + Send>(
    reader: CsvReader<R>,
    map: &ColumnMap,
    normalizer: &Normalizer,
    workers: usize,
    sink: impl FnMut(CheckedRow) -> ControlFlow<()>,
) -> Result<ScanStats, ReadError> {
    scan_keeping(reader, map, normalizer, workers, Keep::Contact, sink)
}

/// [`scan`], keeping of each valid row's contact what `keep` says.
pub(crate) fn scan_keeping<R: Read + Send>(
    mut reader: CsvReader<R>,
    map: &ColumnMap,
    normalizer: &Normalizer,
    workers: usize,
    keep: Keep,
    mut sink: impl FnMut(CheckedRow) -> ControlFlow<()>,
) -> Result<ScanStats, ReadError> {
    let workers = workers.max(1);
    let mut stats = ScanStats::default();
    let LookAhead {
        rows: ahead,
        ended,
        facts,
        expected_rows,
    } = look_ahead(&mut reader, map)?;
    stats.facts = facts;
    let normalizer = &normalizer.with_facts(stats.facts);
    let encoding = std::thread::scope(|s| {
        let (work_tx, work_rx) = sync_channel::<Batch>(workers * 2);
        let (done_tx, done_rx) = sync_channel::<Checked>(workers * 2);
        let work_rx = Arc::new(Mutex::new(work_rx));
        // One token per batch between the reader and the in-order hand-over:
        // however late one batch is, no more than this many are held.
        let in_flight = workers * 4;
        let (token_tx, token_rx) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            let _ = token_tx.send(());
        }

        let read = s.spawn(move || -> Result<EncodingStats, ReadError> {
            let mut seq = 0u64;
            let mut ahead = ahead.into_iter();
            loop {
                let mut batch = Vec::with_capacity(BATCH);
                let at_end = fill_batch(&mut batch, &mut ahead, ended, &mut reader)?;
                if !batch.is_empty()
                    && (token_rx.recv().is_err() || work_tx.send((seq, batch)).is_err())
                {
                    // the consumer stopped early
                    return Ok(reader.encoding_stats().clone());
                }
                seq += 1;
                if at_end {
                    return Ok(reader.encoding_stats().clone());
                }
            }
        });

        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            s.spawn(move || {
                while let Some((seq, batch)) = next_batch(&work_rx) {
                    let checked = batch
                        .into_iter()
                        .map(|(record, status)| {
                            check_keeping(record, status, map, normalizer, keep)
                        })
                        .collect();
                    if done_tx.send((seq, checked)).is_err() {
                        return;
                    }
                }
            });
        }
        // Only the workers hold these now: when they stop, the reader's send fails.
        drop(work_rx);
        drop(done_tx);

        let mut dedup = Dedup::with_capacity(expected_rows);
        let mut pending: BTreeMap<u64, Vec<CheckedRow>> = BTreeMap::new();
        let mut next = 0u64;
        'outer: for (seq, rows) in done_rx.iter() {
            pending.insert(seq, rows);
            while let Some(rows) = pending.remove(&next) {
                next += 1;
                // Never blocks: at most `in_flight` tokens exist.
                let _ = token_tx.try_send(());
                dedup.warm(&rows);
                for mut row in rows {
                    mark_duplicate(&mut row, &mut dedup);
                    stats.rows += 1;
                    if sink(row).is_break() {
                        break 'outer;
                    }
                }
            }
        }
        drop(done_rx);
        drop(token_tx);
        match read.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    stats.encoding = encoding;
    Ok(stats)
}

/// Fills `batch` up to [`BATCH`] rows: the look-ahead's first, then the
/// reader's. `true` when the file has no more.
fn fill_batch<R: Read>(
    batch: &mut Vec<(Record, RecordStatus)>,
    ahead: &mut impl Iterator<Item = (Record, RecordStatus)>,
    ended: bool,
    reader: &mut CsvReader<R>,
) -> Result<bool, ReadError> {
    let mut rec = Record::default();
    while batch.len() < BATCH {
        if let Some(row) = ahead.next() {
            batch.push(row);
            continue;
        }
        if ended {
            return Ok(true);
        }
        match reader.next_record(&mut rec)? {
            Some(status) => {
                // The next record is sized like this one: no regrowth per row.
                let next = Record::with_capacity(rec.text_len() + 16, rec.len());
                batch.push((std::mem::replace(&mut rec, next), status));
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// [`check`], keeping of a valid row's contact what `keep` says.
fn check_keeping(
    record: Record,
    status: RecordStatus,
    map: &ColumnMap,
    normalizer: &Normalizer,
    keep: Keep,
) -> CheckedRow {
    let mut row = check(record, status, map, normalizer);
    if keep == Keep::NumberOnly
        && let Verdict::Valid(contact) = &mut row.verdict
    {
        let full = std::mem::take(&mut **contact);
        **contact = Contact {
            phone: full.phone,
            group_id: full.group_id,
            ..Contact::default()
        };
    }
    row
}

/// The first rows of a file, read before any is checked.
struct LookAhead {
    rows: Vec<(Record, RecordStatus)>,
    /// Whether they are the whole file.
    ended: bool,
    /// What they show of the columns.
    facts: ColumnFacts,
    /// Rows to expect, from the file's size and the look-ahead's row length
    /// (0: unknown), so the duplicate table is sized once instead of
    /// doubling on the way.
    expected_rows: usize,
}

/// Reads up to [`LOOKAHEAD_ROWS`] rows ([`LOOKAHEAD_BYTES`] at most) and
/// decides the column facts from them.
fn look_ahead<R: Read>(reader: &mut CsvReader<R>, map: &ColumnMap) -> Result<LookAhead, ReadError> {
    let mut rows = Vec::new();
    let mut bytes = 0;
    let mut ended = false;
    let mut finder = FactsFinder::default();
    while rows.len() < LOOKAHEAD_ROWS && bytes < LOOKAHEAD_BYTES {
        let mut rec = Record::default();
        match reader.next_record(&mut rec)? {
            Some(status) => {
                if status == RecordStatus::Ok {
                    finder.observe(map, &rec);
                }
                bytes += rec.text_len();
                rows.push((rec, status));
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let expected_rows = match reader.size_hint() {
        Some(size) if !ended && !rows.is_empty() => {
            let per_row = (bytes / rows.len()).max(8) as u64;
            usize::try_from(size / per_row).unwrap_or(usize::MAX)
        }
        _ => 0,
    };
    Ok(LookAhead {
        rows,
        ended,
        facts: finder.finish(),
        expected_rows,
    })
}

/// The duplicate rule: a valid row whose number (and group) an earlier row
/// had becomes `invalid`, naming the first row's line.
fn mark_duplicate(row: &mut CheckedRow, dedup: &mut Dedup) {
    if let Verdict::Valid(contact) = &row.verdict
        && let Some(first) = dedup.check(contact, row.record.line)
    {
        let message = format!(
            "the number {} already appears on line {first}; the first row wins",
            contact.phone
        );
        row.phone = Some(contact.phone.clone());
        row.note.clear();
        row.verdict = Verdict::Invalid(vec![RowError::new(ErrorCode::DuplicatePhone, message)]);
    }
}

fn next_batch(rx: &Mutex<Receiver<Batch>>) -> Option<Batch> {
    rx.lock().ok()?.recv().ok()
}

/// Validates one record (everything but the duplicate rule).
pub(crate) fn check(
    record: Record,
    status: RecordStatus,
    map: &ColumnMap,
    normalizer: &Normalizer,
) -> CheckedRow {
    let mut note = String::new();
    let (verdict, phone) = match status {
        RecordStatus::Malformed(why) => (
            Verdict::Invalid(vec![RowError::new(ErrorCode::RowMalformed, why)]),
            None,
        ),
        RecordStatus::Ok => match normalizer.normalize_noted(map, &record, &mut note) {
            Ok(contact) => (Verdict::Valid(Box::new(contact)), None),
            Err(errors) => {
                note.clear();
                (Verdict::Invalid(errors), normalizer.phone_of(map, &record))
            }
        },
    };
    CheckedRow {
        record,
        verdict,
        phone,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(phone: &str, group: &str) -> Contact {
        Contact {
            phone: phone.into(),
            group_id: group.into(),
            ..Contact::default()
        }
    }

    #[test]
    fn every_first_line_is_kept_across_growth() {
        let mut d = Dedup::with_capacity(100);
        let phone = |i: u64| contact(&format!("+336{:08}", i * 7919 % 100_000_000), "");
        for i in 0..5_000u64 {
            assert_eq!(d.check(&phone(i), i + 2), None, "row {i}");
        }
        for i in 0..5_000u64 {
            assert_eq!(d.check(&phone(i), 9_999_999), Some(i + 2), "row {i}");
        }
        for g in 0..20_000 {
            let group = format!("g{g}");
            assert_eq!(
                d.check(&contact("+33611111111", &group), 3),
                None,
                "{group}"
            );
        }
        assert_eq!(d.check(&contact("+33611111111", "g19999"), 4), Some(3));
        let huge = u64::from(u32::MAX) + 7;
        assert_eq!(d.check(&contact("+15555550100", ""), huge), None);
        assert_eq!(d.check(&contact("+15555550100", ""), huge + 1), Some(huge));
    }

    #[test]
    fn first_row_wins_per_number_and_group() {
        let mut d = Dedup::default();
        assert_eq!(d.check(&contact("+33612345678", ""), 2), None);
        assert_eq!(d.check(&contact("+33612345679", ""), 3), None);
        assert_eq!(d.check(&contact("+33612345678", ""), 4), Some(2));
        assert_eq!(d.check(&contact("+33612345678", "g1"), 5), None);
        assert_eq!(d.check(&contact("+33612345678", "g1"), 6), Some(5));
        assert_eq!(d.check(&contact("+33612345678", "g2"), 7), None);
    }
}
