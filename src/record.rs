//! One decoded input record: its cells and the line it starts on.

/// A decoded data row: its cells as UTF-8 and where it starts in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// 1-based physical line where the record starts (the header is line 1).
    pub line: u64,
    text: String,
    ends: Vec<usize>,
}

impl Record {
    /// A record from its cells (for tests and callers that build rows by hand).
    pub fn from_cells<S: AsRef<str>>(line: u64, cells: &[S]) -> Record {
        let mut r = Record {
            line,
            ..Record::default()
        };
        for c in cells {
            r.push(c.as_ref());
        }
        r
    }

    /// An empty record with room for `bytes` of text in `cells` cells.
    pub(crate) fn with_capacity(bytes: usize, cells: usize) -> Record {
        Record {
            line: 0,
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(cells),
        }
    }

    /// Bytes of text held.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Empties the record, keeping its allocations.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Appends a cell.
    pub(crate) fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// Keeps the first `n` cells.
    pub(crate) fn truncate(&mut self, n: usize) {
        if n < self.ends.len() {
            self.ends.truncate(n);
            self.text.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no cells.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Cell `i`, if the record has that many.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// The cells in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip() {
        let r = Record::from_cells(3, &["a", "", "ç"]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(0), Some("a"));
        assert_eq!(r.get(1), Some(""));
        assert_eq!(r.get(2), Some("ç"));
        assert_eq!(r.get(3), None);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec!["a", "", "ç"]);
    }

    #[test]
    fn truncate_keeps_the_first_cells() {
        let mut r = Record::from_cells(3, &["a", "bé", "", "c"]);
        r.truncate(2);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec!["a", "bé"]);
        r.push("d");
        assert_eq!(r.iter().collect::<Vec<_>>(), vec!["a", "bé", "d"]);
        r.truncate(5);
        assert_eq!(r.len(), 3);
        r.truncate(0);
        assert!(r.is_empty());
        assert_eq!(r.text_len(), 0);
    }
}
