//! The planner: decides, per valid row, whether it is an add, an update or
//! unchanged, and groups adds into bulk batches. Pure: no I/O.

use std::collections::HashMap;

use crate::normalize::Contact;

/// What to do with one valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the contact.
    Add,
    /// Update the contact with this id.
    Update(String),
    /// Identical to what was last sent: no request.
    Unchanged(String),
}

/// What is known of a number on the provider (from the file, or later a state store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The provider's contact id.
    pub contact_id: String,
    /// Fingerprint of what was last sent, when known.
    pub fingerprint: Option<u64>,
}

/// Decides the action for `contact`, given what is known of its number and
/// the fingerprint of what would be sent now.
pub fn plan(contact: &Contact, known: Option<&Known>, fingerprint: u64) -> Action {
    if !contact.contact_id.is_empty() {
        return match known {
            Some(k) if k.contact_id == contact.contact_id && k.fingerprint == Some(fingerprint) => {
                Action::Unchanged(k.contact_id.clone())
            }
            _ => Action::Update(contact.contact_id.clone()),
        };
    }
    match known {
        Some(k) if k.fingerprint == Some(fingerprint) => Action::Unchanged(k.contact_id.clone()),
        Some(k) => Action::Update(k.contact_id.clone()),
        None => Action::Add,
    }
}

/// Collects adds into per-target batches of at most `max` rows.
#[derive(Debug)]
pub struct Batcher<T> {
    max: usize,
    open: HashMap<String, Vec<T>>,
}

impl<T> Batcher<T> {
    /// Batches of at most `max` (at least 1) items.
    pub fn new(max: usize) -> Batcher<T> {
        Batcher {
            max: max.max(1),
            open: HashMap::new(),
        }
    }

    /// Adds `item` to `target`'s batch; returns the batch when it is full.
    pub fn push(&mut self, target: &str, item: T) -> Option<(String, Vec<T>)> {
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
    pub fn drain(&mut self) -> Vec<(String, Vec<T>)> {
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

    #[test]
    fn contact_id_updates_and_unknown_numbers_add() {
        assert_eq!(plan(&contact(""), None, 1), Action::Add);
        assert_eq!(plan(&contact("c9"), None, 1), Action::Update("c9".into()));
        let known = Known {
            contact_id: "k1".into(),
            fingerprint: Some(7),
        };
        assert_eq!(
            plan(&contact(""), Some(&known), 8),
            Action::Update("k1".into())
        );
        assert_eq!(
            plan(&contact(""), Some(&known), 7),
            Action::Unchanged("k1".into())
        );
        // The file's id wins over a different remembered id.
        assert_eq!(
            plan(&contact("c9"), Some(&known), 7),
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
