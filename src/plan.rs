//! The planner: decides, per valid row, whether it is an add, an update or
//! unchanged, and groups adds into bulk batches. Pure: no I/O.

use std::collections::HashMap;

use crate::normalize::Contact;
use crate::state::{Entry, Status};

/// What to do with one valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Create the contact (an "already exists" answer turns it into an update).
    Add,
    /// Update the contact with this id.
    Update(String),
    /// Identical to what was last sent and confirmed: no request.
    Unchanged(Option<String>),
}

/// Decides the action for `contact`, given what the state store knows of its
/// number and the fingerprint of what would be sent now. `full` ignores the
/// fingerprints (every row is sent once).
pub(crate) fn plan(
    contact: &Contact,
    known: Option<&Entry>,
    fingerprint: u64,
    full: bool,
) -> Action {
    let same =
        |k: &Entry| !full && k.status == Status::Confirmed && k.fingerprint == Some(fingerprint);
    if !contact.contact_id.is_empty() {
        return match known {
            Some(k) if same(k) && k.contact_id.as_deref() == Some(contact.contact_id.as_str()) => {
                Action::Unchanged(k.contact_id.clone())
            }
            _ => Action::Update(contact.contact_id.clone()),
        };
    }
    match known {
        Some(k) if same(k) => Action::Unchanged(k.contact_id.clone()),
        // A pending add may or may not have gone through: add again, and an
        // "already exists" answer settles it without a duplicate.
        Some(Entry {
            status: Status::PendingAdd,
            contact_id: None,
            ..
        }) => Action::Add,
        Some(Entry {
            contact_id: Some(id),
            ..
        }) => Action::Update(id.clone()),
        // Known without an id (added in bulk): the add path finds it.
        Some(_) | None => Action::Add,
    }
}

/// Collects adds into per-target batches of at most `max` rows.
#[derive(Debug)]
pub(crate) struct Batcher<T> {
    max: usize,
    open: HashMap<String, Vec<T>>,
}

impl<T> Batcher<T> {
    /// Batches of at most `max` (at least 1) items.
    pub(crate) fn new(max: usize) -> Batcher<T> {
        Batcher {
            max: max.max(1),
            open: HashMap::new(),
        }
    }

    /// Adds `item` to `target`'s batch; returns the batch when it is full.
    pub(crate) fn push(&mut self, target: &str, item: T) -> Option<(String, Vec<T>)> {
        let batch = self.open.entry(target.to_string()).or_default();
        batch.push(item);
        if batch.len() >= self.max {
            let full = std::mem::take(batch);
            self.open.remove(target);
            return Some((target.to_string(), full));
        }
        None
    }

    /// Every partial batch, emptied.
    pub(crate) fn drain(&mut self) -> Vec<(String, Vec<T>)> {
        let mut all: Vec<_> = self.open.drain().filter(|(_, b)| !b.is_empty()).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str) -> Contact {
        Contact {
            phone: "+33612345678".into(),
            contact_id: id.into(),
            ..Contact::default()
        }
    }

    fn entry(id: Option<&str>, fp: Option<u64>, status: Status) -> Entry {
        Entry {
            contact_id: id.map(str::to_string),
            fingerprint: fp,
            status,
        }
    }

    #[test]
    fn the_store_decides_add_update_or_unchanged() {
        let c = contact("");
        assert_eq!(plan(&c, None, 1, false), Action::Add);
        let confirmed = entry(Some("k1"), Some(7), Status::Confirmed);
        assert_eq!(
            plan(&c, Some(&confirmed), 7, false),
            Action::Unchanged(Some("k1".into()))
        );
        assert_eq!(
            plan(&c, Some(&confirmed), 8, false),
            Action::Update("k1".into())
        );
        // --full sends it anyway.
        assert_eq!(
            plan(&c, Some(&confirmed), 7, true),
            Action::Update("k1".into())
        );
        // Added in bulk: no id, same data → unchanged; changed → the add path finds it.
        let bulk = entry(None, Some(7), Status::Confirmed);
        assert_eq!(plan(&c, Some(&bulk), 7, false), Action::Unchanged(None));
        assert_eq!(plan(&c, Some(&bulk), 8, false), Action::Add);
        // Pending sends are never unchanged.
        let pending_add = entry(None, Some(7), Status::PendingAdd);
        assert_eq!(plan(&c, Some(&pending_add), 7, false), Action::Add);
        let pending_update = entry(Some("k1"), Some(7), Status::PendingUpdate);
        assert_eq!(
            plan(&c, Some(&pending_update), 7, false),
            Action::Update("k1".into())
        );
        // A deletion whose answer was lost, and the file holds the number
        // again: sent again (a 404 on the id then adds it back).
        let pending_delete = entry(Some("k1"), Some(7), Status::PendingDelete);
        assert_eq!(
            plan(&c, Some(&pending_delete), 7, false),
            Action::Update("k1".into())
        );
        let pending_delete = entry(None, Some(7), Status::PendingDelete);
        assert_eq!(plan(&c, Some(&pending_delete), 7, false), Action::Add);
        // Only listed: the id is known, what it holds is not.
        let listed = entry(Some("k2"), None, Status::Known);
        assert_eq!(
            plan(&c, Some(&listed), 7, false),
            Action::Update("k2".into())
        );
    }

    #[test]
    fn a_file_id_updates_unless_confirmed_identical() {
        let c = contact("c9");
        assert_eq!(plan(&c, None, 1, false), Action::Update("c9".into()));
        let same = entry(Some("c9"), Some(1), Status::Confirmed);
        assert_eq!(
            plan(&c, Some(&same), 1, false),
            Action::Unchanged(Some("c9".into()))
        );
        // The file's id wins over a different remembered id.
        let other = entry(Some("k1"), Some(1), Status::Confirmed);
        assert_eq!(
            plan(&c, Some(&other), 1, false),
            Action::Update("c9".into())
        );
    }

    #[test]
    fn batches_fill_per_target_and_drain_the_rest() {
        let mut b = Batcher::new(2);
        assert_eq!(b.push("g1", 1), None);
        assert_eq!(b.push("g2", 2), None);
        assert_eq!(b.push("g1", 3), Some(("g1".into(), vec![1, 3])));
        assert_eq!(b.drain(), vec![("g2".into(), vec![2])]);
        assert_eq!(b.drain(), vec![]);
    }
}
