//! Streams records out of a CSV byte stream with constant memory: encoding
//! detection, delimiter sniffing, physical line numbers, and per-row
//! problems (ragged, undecodable, oversized) reported as values.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::record::Record;

/// Longest accepted field, in bytes.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Longest accepted record, in bytes.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// The input's character encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-8 (BOM stripped) when valid, else Windows-1252.
    Auto,
    /// UTF-8; undecodable rows are malformed.
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// Windows-1252 (French Excel exports).
    #[value(name = "windows-1252", alias = "cp1252")]
    Windows1252,
    /// ISO-8859-1.
    #[value(name = "latin1", alias = "iso-8859-1")]
    Latin1,
}

/// How to read the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Field separator; sniffed from the header line when `None`.
    pub delimiter: Option<u8>,
    /// Character encoding.
    pub encoding: Encoding,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            delimiter: None,
            encoding: Encoding::Auto,
        }
    }
}

/// A file-level problem that stops the run.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying stream failed.
    #[error("cannot read input: {0}")]
    Io(#[from] io::Error),
    /// The input holds no header row.
    #[error("the file is empty: a header row is required")]
    Empty,
    /// The header itself cannot be used.
    #[error("the header row is unusable: {0}")]
    BadHeader(String),
}

/// Whether a record read cleanly or why it is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// Cells decoded and the field count matches the header.
    Ok,
    /// The row is `ROW_MALFORMED`; the message says why.
    Malformed(String),
}

/// Which encoding `auto` has settled on so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    Undecided,
    Utf8,
    Windows1252,
}

/// A streaming CSV reader over any byte source.
pub struct CsvReader<R> {
    src: R,
    core: csv_core::Reader,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Line number of the next unread byte.
    line: u64,
    encoding: Encoding,
    decided: Decided,
    delimiter: u8,
    header: Vec<String>,
}

impl<R: Read> CsvReader<R> {
    /// Opens `src`: strips a BOM, sniffs the delimiter, reads the header.
    pub fn new(mut src: R, opts: ReaderOptions) -> Result<CsvReader<R>, ReadError> {
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0;
        while len < buf.len() {
            let n = read_retrying(&mut src, &mut buf[len..])?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let eof = len < buf.len();
        let mut pos = 0;
        let mut decided = Decided::Undecided;
        if buf[..len].starts_with(b"\xEF\xBB\xBF") {
            pos = 3;
            if opts.encoding == Encoding::Auto {
                decided = Decided::Utf8;
            }
        }
        let delimiter = opts
            .delimiter
            .unwrap_or_else(|| sniff_delimiter(&buf[pos..len]));
        let core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        let mut reader = CsvReader {
            src,
            core,
            buf,
            pos,
            len,
            eof,
            out: vec![0; 1024],
            ends: vec![0; 32],
            line: 1,
            encoding: opts.encoding,
            decided,
            delimiter,
            header: Vec::new(),
        };
        let mut rec = Record::default();
        match reader.read_raw(&mut rec)? {
            None => return Err(ReadError::Empty),
            Some(RecordStatus::Malformed(why)) => return Err(ReadError::BadHeader(why)),
            Some(RecordStatus::Ok) => {}
        }
        reader.header = rec.iter().map(|h| h.trim().to_string()).collect();
        Ok(reader)
    }

    /// The header's cells, trimmed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The field separator in use.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Reads the next non-blank record into `rec`; `None` at end of input.
    pub fn next_record(&mut self, rec: &mut Record) -> Result<Option<RecordStatus>, ReadError> {
        loop {
            let Some(status) = self.read_raw(rec)? else {
                return Ok(None);
            };
            if status == RecordStatus::Ok && rec.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            if status == RecordStatus::Ok && rec.len() != self.header.len() {
                let why = format!(
                    "the row has {} fields but the header has {}",
                    rec.len(),
                    self.header.len()
                );
                return Ok(Some(RecordStatus::Malformed(why)));
            }
            return Ok(Some(status));
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.pos < self.len || self.eof {
            return Ok(());
        }
        let n = read_retrying(&mut self.src, &mut self.buf)?;
        self.pos = 0;
        self.len = n;
        self.eof = n == 0;
        Ok(())
    }

    /// Reads one record as csv_core splits it, decoding its cells.
    fn read_raw(&mut self, rec: &mut Record) -> Result<Option<RecordStatus>, ReadError> {
        rec.clear();
        let mut start_line: Option<u64> = None;
        let mut nout = 0;
        let mut nend = 0;
        // Set once the record outgrows MAX_RECORD_BYTES: content is discarded from then on.
        let mut overflow = false;
        loop {
            self.refill()?;
            let input = &self.buf[self.pos..self.len];
            let (res, nin, o, e) =
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            let consumed = &input[..nin];
            if start_line.is_none()
                && let Some(first) = consumed.iter().position(|&b| b != b'\n' && b != b'\r')
            {
                start_line = Some(self.line + count_newlines(&consumed[..first]));
            }
            self.line += count_newlines(consumed);
            self.pos += nin;
            nout += o;
            nend += e;
            use csv_core::ReadRecordResult as R;
            match res {
                R::InputEmpty => {}
                R::OutputFull => {
                    if overflow || self.out.len() >= MAX_RECORD_BYTES {
                        overflow = true;
                        nout = 0;
                    } else {
                        let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                        self.out.resize(grown, 0);
                    }
                }
                R::OutputEndsFull => {
                    if overflow {
                        nend = 0;
                    } else {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                }
                R::Record => {
                    rec.line = start_line.unwrap_or(self.line);
                    if overflow {
                        return Ok(Some(RecordStatus::Malformed(format!(
                            "the record is longer than {} bytes",
                            MAX_RECORD_BYTES
                        ))));
                    }
                    return Ok(Some(self.decode(rec, nend)));
                }
                R::End => return Ok(None),
            }
        }
    }

    /// Decodes the buffered cells into `rec`.
    fn decode(&mut self, rec: &mut Record, nend: usize) -> RecordStatus {
        let mut start = 0;
        for (i, &end) in self.ends[..nend].iter().enumerate() {
            if end - start > MAX_FIELD_BYTES {
                return RecordStatus::Malformed(format!(
                    "field {} is longer than {} bytes",
                    i + 1,
                    MAX_FIELD_BYTES
                ));
            }
            start = end;
        }
        let bytes = &self.out[..start];
        let text: Cow<'_, str> = match (self.encoding, self.decided) {
            (Encoding::Latin1, _) => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
            (Encoding::Windows1252, _) | (Encoding::Auto, Decided::Windows1252) => {
                windows_1252(bytes)
            }
            (Encoding::Utf8, _) | (Encoding::Auto, Decided::Utf8) => {
                match std::str::from_utf8(bytes) {
                    Ok(s) => Cow::Borrowed(s),
                    Err(e) => {
                        return RecordStatus::Malformed(format!(
                            "the row is not valid UTF-8 (byte {}); a file saved by Excel may need --encoding windows-1252",
                            e.valid_up_to() + 1
                        ));
                    }
                }
            }
            (Encoding::Auto, Decided::Undecided) => match std::str::from_utf8(bytes) {
                Ok(s) => {
                    if !s.is_ascii() {
                        self.decided = Decided::Utf8;
                    }
                    Cow::Borrowed(s)
                }
                Err(_) => {
                    self.decided = Decided::Windows1252;
                    windows_1252(bytes)
                }
            },
        };
        if matches!(text, Cow::Borrowed(_)) {
            let mut start = 0;
            for &end in &self.ends[..nend] {
                rec.push(text.get(start..end).unwrap_or_default());
                start = end;
            }
        } else {
            // Decoding changed byte offsets: decode cell by cell instead.
            let mut start = 0;
            for &end in &self.ends[..nend] {
                let cell = &self.out[start..end];
                match self.encoding {
                    Encoding::Latin1 => {
                        rec.push(&cell.iter().map(|&b| b as char).collect::<String>())
                    }
                    _ => rec.push(&windows_1252(cell)),
                }
                start = end;
            }
        }
        RecordStatus::Ok
    }
}

fn windows_1252(bytes: &[u8]) -> Cow<'_, str> {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn read_retrying<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match src.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The most frequent of `,` `;` tab `|` outside quotes on the first line; `,` if none.
pub fn sniff_delimiter(start: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for &b in start {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for i in 1..CANDIDATES.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    CANDIDATES[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (u64, RecordStatus, Vec<String>);

    fn read_all(input: &[u8], opts: ReaderOptions) -> (Vec<String>, Vec<Row>) {
        let mut r = CsvReader::new(input, opts).unwrap();
        let header = r.header().to_vec();
        let mut rows = Vec::new();
        let mut rec = Record::default();
        while let Some(status) = r.next_record(&mut rec).unwrap() {
            rows.push((rec.line, status, rec.iter().map(String::from).collect()));
        }
        (header, rows)
    }

    #[test]
    fn sniffs_each_delimiter_and_ignores_quoted_ones() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a|b|c"), b'|');
        assert_eq!(sniff_delimiter(b"\"x;y;z\",b\n"), b',');
        assert_eq!(sniff_delimiter(b"phone\n"), b',');
    }

    #[test]
    fn line_numbers_survive_quoted_newlines_and_blank_lines() {
        let input = b"phone,name\n1,\"a\nb\"\n\n\n2,c\r\n,\n3,d";
        let (_, rows) = read_all(input, ReaderOptions::default());
        let lines: Vec<u64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![2, 6, 8]);
        assert_eq!(rows[0].2, vec!["1", "a\nb"]);
        assert_eq!(rows[2].2, vec!["3", "d"]);
    }

    #[test]
    fn ragged_rows_are_malformed_and_reading_goes_on() {
        let (_, rows) = read_all(b"a,b\n1,2,3\n4\n5,6\n", ReaderOptions::default());
        assert!(matches!(rows[0].1, RecordStatus::Malformed(ref m) if m.contains("3 fields")));
        assert!(matches!(rows[1].1, RecordStatus::Malformed(_)));
        assert_eq!(rows[2].1, RecordStatus::Ok);
        assert_eq!(rows[2].0, 4);
    }

    #[test]
    fn bom_is_stripped_and_windows_1252_detected() {
        let (h, _) = read_all(b"\xEF\xBB\xBFphone\tname\n1\tx\n", ReaderOptions::default());
        assert_eq!(h, vec!["phone", "name"]);
        let (h, rows) = read_all(
            b"T\xE9l\xE9phone;Pr\xE9nom\n1;Ren\xE9e\n",
            ReaderOptions::default(),
        );
        assert_eq!(h, vec!["Téléphone", "Prénom"]);
        assert_eq!(rows[0].2, vec!["1", "Renée"]);
    }

    #[test]
    fn auto_locked_to_utf8_rejects_a_later_undecodable_row() {
        let (_, rows) = read_all(
            "phone,name\n1,Zoé\n2,Ren\u{e9}e\n".as_bytes(),
            ReaderOptions::default(),
        );
        assert!(rows.iter().all(|r| r.1 == RecordStatus::Ok));
        let (_, rows) = read_all(
            b"phone,name\n1,Zo\xC3\xA9\n2,Ren\xE9e\n3,ok\n",
            ReaderOptions::default(),
        );
        assert_eq!(rows[0].1, RecordStatus::Ok);
        assert!(matches!(rows[1].1, RecordStatus::Malformed(ref m) if m.contains("UTF-8")));
        assert_eq!(rows[2].1, RecordStatus::Ok);
    }

    #[test]
    fn oversized_field_and_record_are_malformed_without_stopping() {
        let mut input = b"phone,name\n1,".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_FIELD_BYTES + 1));
        input.extend(b"\n2,");
        input.extend(std::iter::repeat_n(b'y', 3 * MAX_RECORD_BYTES));
        input.extend(b"\n3,z\n");
        let (_, rows) = read_all(&input, ReaderOptions::default());
        assert_eq!(rows.len(), 3);
        assert!(matches!(rows[0].1, RecordStatus::Malformed(ref m) if m.contains("field 2")));
        assert!(matches!(rows[1].1, RecordStatus::Malformed(ref m) if m.contains("record")));
        assert_eq!((rows[2].0, &rows[2].1), (4, &RecordStatus::Ok));
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(
            CsvReader::new(&b""[..], ReaderOptions::default()),
            Err(ReadError::Empty)
        ));
        assert!(matches!(
            CsvReader::new(&b"\n\n"[..], ReaderOptions::default()),
            Err(ReadError::Empty)
        ));
    }
}
