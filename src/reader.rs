//! Streams records out of a CSV byte stream with constant memory: encoding
//! detection (UTF-8, Windows-1252 row by row, UTF-16 by its byte-order mark),
//! Excel's `sep=X` line, delimiter sniffing, physical line numbers, and
//! per-row problems (ragged, undecodable, oversized) reported as values.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::record::Record;

/// Longest accepted field, in bytes.
pub(crate) const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Longest accepted record, in bytes.
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// The input's character encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-16 when the file starts with its byte-order mark; else each row
    /// UTF-8 when it is valid UTF-8, Windows-1252 when it is not.
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

/// How `auto` decoded the rows read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EncodingStats {
    /// The file is UTF-16 with a byte-order mark (`"UTF-16LE"`, `"UTF-16BE"`).
    pub utf16: Option<&'static str>,
    /// Rows (header included) with non-ASCII characters read as UTF-8.
    pub utf8_rows: u64,
    /// Rows (header included) that were not valid UTF-8, read as Windows-1252.
    pub windows_1252_rows: u64,
    /// The first few lines read as Windows-1252, for the log.
    pub windows_1252_lines: Vec<u64>,
    /// The header row is one of them.
    pub header_windows_1252: bool,
    /// With `--encoding windows-1252` or `latin1`: the encoding forced, and
    /// the rows (header included) that are valid UTF-8 with accents, which
    /// it garbles.
    pub forced: Option<&'static str>,
    /// Those rows.
    pub garbled_rows: u64,
    /// The first few of their lines.
    pub garbled_lines: Vec<u64>,
}

/// `line 3`, `lines 3, 7`, `lines 3, 7, 9, 12, 15 …` when there are more than named.
fn line_list(lines: &[u64], count: u64) -> String {
    let named = lines
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let more = if count > lines.len() as u64 {
        " …"
    } else {
        ""
    };
    let word = if count == 1 { "line" } else { "lines" };
    format!("{word} {named}{more}")
}

/// `1 row`, `3 rows`.
fn rows(n: u64) -> String {
    format!("{n} {}", if n == 1 { "row" } else { "rows" })
}

/// How many Windows-1252 lines [`EncodingStats`] names.
const NAMED_LINES: usize = 5;

impl EncodingStats {
    /// Data rows (the header left out) decoded as Windows-1252.
    pub(crate) fn data_rows_1252(&self) -> u64 {
        self.windows_1252_rows
            .saturating_sub(u64::from(self.header_windows_1252))
    }

    /// A log line saying how the file was decoded when that is worth saying:
    /// `Some((true, _))` is a warning (the file mixes encodings).
    pub(crate) fn describe(&self) -> Option<(bool, String)> {
        if let Some(name) = self.utf16 {
            return Some((
                false,
                format!("the file is {name} (it starts with a byte-order mark)"),
            ));
        }
        if let Some(forced) = self.forced {
            if self.garbled_rows == 0 {
                return None;
            }
            return Some((
                true,
                format!(
                    "--encoding {forced}: {} valid UTF-8 with accents ({}), which {forced} garbles (é reads as Ã©); without --encoding, each row is read in the encoding it was written in",
                    if self.garbled_rows == 1 {
                        "1 row is".to_string()
                    } else {
                        format!("{} are", rows(self.garbled_rows))
                    },
                    line_list(&self.garbled_lines, self.garbled_rows)
                ),
            ));
        }
        if self.windows_1252_rows == 0 {
            return None;
        }
        if self.utf8_rows == 0 {
            Some((
                false,
                "the file is not UTF-8: it was read as Windows-1252 (what Excel writes)"
                    .to_string(),
            ))
        } else {
            // Each row was read the way it was written: no --encoding would do better.
            Some((
                true,
                format!(
                    "the file mixes encodings, so each row was decoded on its own: {} with accents in UTF-8, {} in Windows-1252 ({}); check those rows' accents (no --encoding reads both kinds right)",
                    rows(self.utf8_rows),
                    rows(self.windows_1252_rows),
                    line_list(&self.windows_1252_lines, self.windows_1252_rows)
                ),
            ))
        }
    }
}

/// The bytes under the CSV parser: as read, or UTF-16 turned into UTF-8.
enum Source<R> {
    Bytes(R),
    Utf16(Utf16Reader<R>),
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Bytes(r) => r.read(out),
            Source::Utf16(r) => r.read(out),
        }
    }
}

/// Decodes a UTF-16 stream (its byte-order mark removed) to UTF-8 as it is read.
struct Utf16Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    raw: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// The decoder was given the end of the input and took all of it: it
    /// must not be called again (encoding_rs panics).
    finished: bool,
}

impl<R: Read> Utf16Reader<R> {
    /// `first` holds the bytes already read from `inner`, BOM included.
    fn new(inner: R, encoding: &'static encoding_rs::Encoding, first: &[u8]) -> Self {
        let mut raw = vec![0u8; CHUNK.max(first.len())];
        raw[..first.len()].copy_from_slice(first);
        Utf16Reader {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            raw,
            start: 0,
            end: first.len(),
            eof: false,
            finished: false,
        }
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A UTF-8 character needs up to 4 bytes; callers give at least that.
        if out.len() < 4 {
            return Err(io::Error::other(
                "internal: UTF-16 read into a buffer under 4 bytes",
            ));
        }
        loop {
            if self.finished {
                return Ok(0);
            }
            if self.start == self.end && !self.eof {
                let n = read_retrying(&mut self.inner, &mut self.raw)?;
                self.start = 0;
                self.end = n;
                self.eof = n == 0;
            }
            let (result, read, written, _) =
                self.decoder
                    .decode_to_utf8(&self.raw[self.start..self.end], out, self.eof);
            self.start += read;
            // Found by the property tests: a file with an odd byte count
            // ends in a replacement character, and the next read called
            // the finished decoder again.
            self.finished = self.eof && result == encoding_rs::CoderResult::InputEmpty;
            if written > 0 || self.eof {
                return Ok(written);
            }
        }
    }
}

/// A streaming CSV reader over any byte source.
pub struct CsvReader<R> {
    src: Source<R>,
    core: csv_core::Reader,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Line number of the next unread byte.
    line: u64,
    /// The last byte read was a CR whose line break is counted once the
    /// next byte shows it is not the CR of a CRLF.
    cr_pending: bool,
    encoding: Encoding,
    stats: EncodingStats,
    delimiter: u8,
    header: Vec<String>,
    /// The header's line (2 after a `sep=` line).
    header_line: u64,
    /// The input's size in bytes, when known (a regular file).
    size_hint: Option<u64>,
}

impl<R: Read> CsvReader<R> {
    /// Opens `src`: decodes UTF-16 or strips a UTF-8 BOM, honours a `sep=X`
    /// first line, sniffs the delimiter, reads the header.
    pub fn new(mut src: R, opts: ReaderOptions) -> Result<CsvReader<R>, ReadError> {
        let mut buf = vec![0u8; CHUNK];
        let (mut len, mut eof) = fill(&mut src, &mut buf)?;
        let mut stats = EncodingStats {
            forced: match opts.encoding {
                Encoding::Windows1252 => Some("windows-1252"),
                Encoding::Latin1 => Some("latin1"),
                Encoding::Utf8 | Encoding::Auto => None,
            },
            ..EncodingStats::default()
        };
        let utf16 = match buf[..len] {
            [0xFF, 0xFE, ..] => Some((encoding_rs::UTF_16LE, "UTF-16LE")),
            [0xFE, 0xFF, ..] => Some((encoding_rs::UTF_16BE, "UTF-16BE")),
            _ => None,
        };
        let src = match utf16 {
            Some((encoding, name)) if opts.encoding == Encoding::Auto => {
                stats.utf16 = Some(name);
                let mut decoded = Utf16Reader::new(src, encoding, &buf[..len]);
                (len, eof) = fill(&mut decoded, &mut buf)?;
                Source::Utf16(decoded)
            }
            _ => Source::Bytes(src),
        };
        let mut pos = 0;
        if buf[..len].starts_with(b"\xEF\xBB\xBF") {
            pos = 3;
        }
        let mut line = 1;
        let mut delimiter = opts.delimiter;
        if let Some((sep, skip)) = sep_line(&buf[pos..len]) {
            delimiter = delimiter.or(Some(sep));
            pos += skip;
            line = 2;
        }
        let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(&buf[pos..len]));
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
            line,
            cr_pending: false,
            encoding: opts.encoding,
            stats,
            delimiter,
            header: Vec::new(),
            header_line: 1,
            size_hint: None,
        };
        let mut rec = Record::default();
        match reader.read_raw(&mut rec)? {
            None => return Err(ReadError::Empty),
            Some(RecordStatus::Malformed(why)) => return Err(ReadError::BadHeader(why)),
            Some(RecordStatus::Ok) => {}
        }
        reader.header = rec.iter().map(|h| h.trim().to_string()).collect();
        reader.header_line = rec.line;
        reader.stats.header_windows_1252 = reader.stats.windows_1252_rows > 0;
        Ok(reader)
    }

    /// The header's cells, trimmed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The field separator in use.
    pub(crate) fn delimiter(&self) -> u8 {
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
                return Ok(Some(self.fit_to_header(rec)));
            }
            if status == RecordStatus::Ok && self.is_header_again(rec) {
                return Ok(Some(RecordStatus::Malformed(format!(
                    "this row repeats the header of line {}: files joined end to end? its data rows are read as usual",
                    self.header_line
                ))));
            }
            return Ok(Some(status));
        }
    }

    /// Whether `rec` holds the header's cells again.
    fn is_header_again(&self, rec: &Record) -> bool {
        rec.len() == self.header.len() && rec.iter().zip(&self.header).all(|(c, h)| c.trim() == h)
    }

    /// Records the input's size in bytes, so tables can be sized once.
    pub(crate) fn set_size_hint(&mut self, bytes: u64) {
        self.size_hint = Some(bytes);
    }

    /// The input's size in bytes, when known.
    pub(crate) fn size_hint(&self) -> Option<u64> {
        self.size_hint
    }

    /// How `auto` decoded the rows read so far.
    pub(crate) fn encoding_stats(&self) -> &EncodingStats {
        &self.stats
    }

    /// A row whose field count differs from the header's: extra empty
    /// fields at its end are dropped, missing trailing ones are empty
    /// (SPEC §3); any other difference is malformed.
    fn fit_to_header(&self, rec: &mut Record) -> RecordStatus {
        let want = self.header.len();
        if rec.len() < want {
            while rec.len() < want {
                rec.push("");
            }
            return RecordStatus::Ok;
        }
        let mut extra =
            (want..rec.len()).filter(|&i| rec.get(i).is_some_and(|c| !c.trim().is_empty()));
        match extra.next_back() {
            None => {
                rec.truncate(want);
                RecordStatus::Ok
            }
            Some(last) => RecordStatus::Malformed(format!(
                "the row has {} cells with something in them but the header has only {want} columns: \
                 a cell may hold the delimiter {} without quotes around the cell",
                last + 1,
                delimiter_name(self.delimiter)
            )),
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
        let mut scan = RecordScan::new(self.delimiter);
        let mut nout = 0;
        let mut nend = 0;
        // Set once the record outgrows MAX_RECORD_BYTES: content is discarded from then on.
        let mut overflow = false;
        loop {
            self.refill()?;
            let input = &self.buf[self.pos..self.len];
            let at_end = input.is_empty();
            let (res, nin, o, e) =
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            scan.bytes(&input[..nin], &mut self.line, &mut self.cr_pending);
            self.pos += nin;
            nout += o;
            nend += e;
            // Raw bytes count too: a line of delimiters alone writes no
            // output but one field end per byte.
            if scan.raw > MAX_RECORD_BYTES as u64 {
                overflow = true;
            }
            use csv_core::ReadRecordResult as R;
            match res {
                R::InputEmpty => {}
                R::OutputFull => {
                    if overflow || self.out.len() >= MAX_RECORD_BYTES {
                        overflow = true;
                    } else {
                        let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                        self.out.resize(grown, 0);
                    }
                }
                R::OutputEndsFull => {
                    if !overflow {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                }
                R::Record => {
                    if self.cr_pending && at_end {
                        // A CR that ends the file ends its last line.
                        self.cr_pending = false;
                        self.line += 1;
                    }
                    rec.line = scan.start_line.unwrap_or(self.line);
                    if at_end && let Some(quote_line) = scan.unclosed_quote() {
                        let swallowed = scan.last_line.saturating_sub(quote_line);
                        return Ok(Some(RecordStatus::Malformed(format!(
                            "a quote opened on line {quote_line} is never closed: it swallowed the {} after it, to the end of the file; close the quote or remove it",
                            lines(swallowed)
                        ))));
                    }
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
            if overflow {
                // Content past the limit is discarded, so buffers stop growing.
                nout = 0;
                nend = 0;
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
        if matches!(self.encoding, Encoding::Latin1 | Encoding::Windows1252)
            && !bytes.is_ascii()
            && std::str::from_utf8(bytes).is_ok()
        {
            self.stats.garbled_rows += 1;
            if self.stats.garbled_lines.len() < NAMED_LINES {
                self.stats.garbled_lines.push(rec.line);
            }
        }
        let text: Cow<'_, str> = match self.encoding {
            Encoding::Latin1 => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
            Encoding::Windows1252 => windows_1252(bytes),
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(e) => {
                    return RecordStatus::Malformed(format!(
                        "the row is not valid UTF-8 (byte {}); without --encoding utf-8 such a row is read as Windows-1252",
                        e.valid_up_to() + 1
                    ));
                }
            },
            Encoding::Auto => match std::str::from_utf8(bytes) {
                Ok(s) => {
                    if self.stats.utf16.is_none() && !s.is_ascii() {
                        self.stats.utf8_rows += 1;
                    }
                    Cow::Borrowed(s)
                }
                Err(_) => {
                    self.stats.windows_1252_rows += 1;
                    if self.stats.windows_1252_lines.len() < NAMED_LINES {
                        self.stats.windows_1252_lines.push(rec.line);
                    }
                    windows_1252(bytes)
                }
            },
        };
        if matches!(text, Cow::Borrowed(_)) {
            let mut start = 0;
            for &end in &self.ends[..nend] {
                rec.push(unescape(text.get(start..end).unwrap_or_default()));
                start = end;
            }
        } else {
            // Decoding changed byte offsets: decode cell by cell instead.
            let mut start = 0;
            for &end in &self.ends[..nend] {
                let cell = &self.out[start..end];
                match self.encoding {
                    Encoding::Latin1 => rec.push(unescape(
                        &cell.iter().map(|&b| b as char).collect::<String>(),
                    )),
                    _ => rec.push(unescape(&windows_1252(cell))),
                }
                start = end;
            }
        }
        RecordStatus::Ok
    }
}

/// A cell without the `'` that a report or rejects file puts before a
/// leading `=` `+` `-` `@` tab or CR (SPEC §6), so a rejects file fed back
/// sends the original value: the inverse of [`crate::report::neutralise`].
/// A run of `'` before such a character loses one, so a value that itself
/// began with `'=` comes back whole.
pub fn unescape(cell: &str) -> &str {
    if cell.starts_with('\'') && formula_after_quotes(cell) {
        &cell[1..]
    } else {
        cell
    }
}

/// Whether `cell`, past any leading `'`, starts with a character a
/// spreadsheet runs as a formula: `=` `+` `-` `@` tab CR.
pub(crate) fn formula_after_quotes(cell: &str) -> bool {
    matches!(
        cell.trim_start_matches('\'').as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// A delimiter in words, for messages.
pub(crate) fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        b',' => "\",\" (comma)".into(),
        b';' => "\";\" (semicolon)".into(),
        b'|' => "\"|\" (pipe)".into(),
        other => format!("\"{}\"", char::from(other)),
    }
}

/// Fills `buf` from `src` as far as it goes: the bytes read, and whether the
/// stream ended. Stops 4 bytes short so a decoding reader always has room.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut len = 0;
    while buf.len() - len >= 4 {
        let n = read_retrying(src, &mut buf[len..])?;
        if n == 0 {
            return Ok((len, true));
        }
        len += n;
    }
    Ok((len, false))
}

/// Excel's `sep=X` first line (optionally quoted): the delimiter X and the
/// bytes the line takes, its line end included.
fn sep_line(start: &[u8]) -> Option<(u8, usize)> {
    let (body, quoted) = match start.first() {
        Some(b'"') => (&start[1..], 1),
        _ => (start, 0),
    };
    if body.len() < 5 || !body[..4].eq_ignore_ascii_case(b"sep=") {
        return None;
    }
    let sep = body[4];
    if !sep.is_ascii() || matches!(sep, b'\r' | b'\n' | b'"') {
        return None;
    }
    let mut at = quoted + 5;
    if quoted == 1 {
        if start.get(at) != Some(&b'"') {
            return None;
        }
        at += 1;
    }
    match &start[at..] {
        [] => Some((sep, at)),
        [b'\n', ..] => Some((sep, at + 1)),
        [b'\r', b'\n', ..] => Some((sep, at + 2)),
        [b'\r', ..] => Some((sep, at + 1)),
        _ => None,
    }
}

fn windows_1252(bytes: &[u8]) -> Cow<'_, str> {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
}

/// `1 line`, `3 lines`.
fn lines(n: u64) -> String {
    format!("{n} {}", if n == 1 { "line" } else { "lines" })
}

/// Where a quoted field stands, as csv_core reads one (RFC 4180: a quote
/// opens a field only at its start; `""` inside is a quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// A quote inside a quoted field: it closes the field unless another follows.
    MaybeClosed,
}

/// What one record's raw bytes tell, gathered as they stream by: where it
/// starts, its size, and whether a quote is still open.
struct RecordScan {
    delimiter: u8,
    /// Line of the record's first byte that is not a line break.
    start_line: Option<u64>,
    /// Raw bytes of the record from its first byte (blank lines before it
    /// do not count).
    raw: u64,
    quote: Quote,
    /// Line of the quote that opened the last quoted field.
    open_quote_line: Option<u64>,
    /// Line of the last byte taken in.
    last_line: u64,
}

impl RecordScan {
    fn new(delimiter: u8) -> RecordScan {
        RecordScan {
            delimiter,
            start_line: None,
            raw: 0,
            quote: Quote::FieldStart,
            open_quote_line: None,
            last_line: 0,
        }
    }

    /// Takes in `bytes`, counting line breaks into `line`: LF, CRLF, or a
    /// CR alone (old Mac exports), whose count waits in `cr_pending` for
    /// the next byte.
    fn bytes(&mut self, bytes: &[u8], line: &mut u64, cr_pending: &mut bool) {
        let mut i = 0;
        while i < bytes.len() {
            // Inside a record, a run of bytes that are no line break or
            // quote only adds to the size and, outside quotes, leaves the
            // state its last byte gives (a delimiter starts a field).
            if !*cr_pending && self.start_line.is_some() {
                let run = bytes[i..]
                    .iter()
                    .position(|&b| matches!(b, b'\n' | b'\r' | b'"'))
                    .unwrap_or(bytes.len() - i);
                if run > 0 {
                    i += run;
                    self.raw += run as u64;
                    self.last_line = *line;
                    if self.quote != Quote::Quoted {
                        self.quote = if bytes[i - 1] == self.delimiter {
                            Quote::FieldStart
                        } else {
                            Quote::Unquoted
                        };
                    }
                    continue;
                }
            }
            let b = bytes[i];
            i += 1;
            if *cr_pending && b != b'\n' {
                *line += 1;
            }
            self.last_line = *line;
            *cr_pending = b == b'\r';
            if b == b'\n' {
                *line += 1;
            }
            if self.start_line.is_none() {
                if b == b'\n' || b == b'\r' {
                    continue;
                }
                self.start_line = Some(*line);
            }
            self.raw += 1;
            self.quote = match (self.quote, b) {
                (Quote::FieldStart, b'"') => {
                    self.open_quote_line = Some(*line);
                    Quote::Quoted
                }
                (Quote::Quoted, b'"') => Quote::MaybeClosed,
                (Quote::Quoted, _) => Quote::Quoted,
                (Quote::MaybeClosed, b'"') => Quote::Quoted,
                (_, b'\n' | b'\r') => Quote::FieldStart,
                (_, d) if d == self.delimiter => Quote::FieldStart,
                _ => Quote::Unquoted,
            };
        }
    }

    /// The line of the quote still open at the end of the input, if one is.
    fn unclosed_quote(&self) -> Option<u64> {
        (self.quote == Quote::Quoted)
            .then_some(self.open_quote_line)
            .flatten()
    }
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
pub(crate) fn sniff_delimiter(start: &[u8]) -> u8 {
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
    fn a_quote_opening_a_field_after_any_delimiter_is_tracked_to_the_end() {
        for delimiter in [",", ";", "\t", "|"] {
            let input = format!("a{d}b\n1{d}2\n3{d}\"open\n4{d}5\n", d = delimiter);
            let (_, rows) = read_all(input.as_bytes(), ReaderOptions::default());
            assert!(
                matches!(rows.last(), Some((3, RecordStatus::Malformed(m), _))
                    if m.contains("a quote opened on line 3 is never closed")),
                "{delimiter:?}: {rows:?}"
            );
            // A quote inside a field opens nothing.
            let input = format!("a{d}b\n1{d}2\n3{d}x\"y\n4{d}5\n", d = delimiter);
            let (_, rows) = read_all(input.as_bytes(), ReaderOptions::default());
            assert!(rows.iter().all(|r| r.1 == RecordStatus::Ok), "{rows:?}");
            assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3, 4]);
        }
    }

    #[test]
    fn ragged_rows_are_malformed_and_reading_goes_on() {
        let (_, rows) = read_all(b"a,b\n1,2,3\n4,5,,x\n5,6\n", ReaderOptions::default());
        assert!(
            matches!(rows[0].1, RecordStatus::Malformed(ref m) if m.contains("3 cells") && m.contains("only 2 columns")),
            "{rows:?}"
        );
        assert!(matches!(rows[1].1, RecordStatus::Malformed(ref m) if m.contains("4 cells")));
        assert_eq!(rows[2].1, RecordStatus::Ok);
        assert_eq!(rows[2].0, 4);
    }

    #[test]
    fn trailing_empty_fields_do_not_make_a_row_ragged() {
        let (_, rows) = read_all(
            b"a;b;c\n1;2;3;;\n4;5\n6\n7;8;9; ;\t\n",
            ReaderOptions::default(),
        );
        let cells: Vec<_> = rows.iter().map(|r| (&r.1, r.2.clone())).collect();
        assert_eq!(
            cells,
            vec![
                (&RecordStatus::Ok, vec!["1".into(), "2".into(), "3".into()]),
                (
                    &RecordStatus::Ok,
                    vec!["4".into(), "5".into(), String::new()]
                ),
                (
                    &RecordStatus::Ok,
                    vec!["6".into(), String::new(), String::new()]
                ),
                (&RecordStatus::Ok, vec!["7".into(), "8".into(), "9".into()]),
            ]
        );
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
    fn auto_decodes_each_row_on_its_own_and_counts_them() {
        let input = b"phone,name\n1,Zo\xC3\xA9\n2,Ren\xE9e\n3,ok\n4,Andr\xC3\xA9\n";
        let mut r = CsvReader::new(&input[..], ReaderOptions::default()).unwrap();
        let mut rec = Record::default();
        let mut names = Vec::new();
        while let Some(status) = r.next_record(&mut rec).unwrap() {
            assert_eq!(status, RecordStatus::Ok);
            names.push(rec.get(1).unwrap().to_string());
        }
        assert_eq!(names, ["Zoé", "Renée", "ok", "André"]);
        let stats = r.encoding_stats();
        assert_eq!((stats.utf8_rows, stats.windows_1252_rows), (2, 1));
        assert_eq!(stats.windows_1252_lines, [3]);
        let (warn, text) = stats.describe().unwrap();
        assert!(warn);
        assert_eq!(
            text,
            "the file mixes encodings, so each row was decoded on its own: 2 rows with accents in UTF-8, 1 row in Windows-1252 (line 3); check those rows' accents (no --encoding reads both kinds right)"
        );
        // A file all in Windows-1252 is said so, not warned about.
        let mut r = CsvReader::new(&b"T\xE9l\n1\n"[..], ReaderOptions::default()).unwrap();
        while r.next_record(&mut rec).unwrap().is_some() {}
        assert!(!r.encoding_stats().describe().unwrap().0);
        // Plain UTF-8 needs no word.
        let mut r = CsvReader::new("tél\n1\n".as_bytes(), ReaderOptions::default()).unwrap();
        while r.next_record(&mut rec).unwrap().is_some() {}
        assert_eq!(r.encoding_stats().describe(), None);
    }

    #[test]
    fn a_forced_single_byte_encoding_names_the_utf8_rows_it_garbles() {
        let input = b"phone,name\n1,Zo\xC3\xA9\n2,Ren\xE9e\n3,ok\n4,Andr\xC3\xA9\n";
        for (encoding, name) in [
            (Encoding::Windows1252, "windows-1252"),
            (Encoding::Latin1, "latin1"),
        ] {
            let opts = ReaderOptions {
                encoding,
                ..ReaderOptions::default()
            };
            let mut r = CsvReader::new(&input[..], opts).unwrap();
            let mut rec = Record::default();
            while r.next_record(&mut rec).unwrap().is_some() {}
            let (warn, text) = r.encoding_stats().describe().unwrap();
            assert!(warn);
            assert_eq!(
                text,
                format!(
                    "--encoding {name}: 2 rows are valid UTF-8 with accents (lines 2, 5), which {name} garbles (é reads as Ã©); without --encoding, each row is read in the encoding it was written in"
                )
            );
            // A file all in that encoding gets no word.
            let mut r = CsvReader::new(&b"T\xE9l\n1\n"[..], opts).unwrap();
            while r.next_record(&mut rec).unwrap().is_some() {}
            assert_eq!(r.encoding_stats().describe(), None);
        }
        assert_eq!(line_list(&[1, 2, 3], 3), "lines 1, 2, 3");
        assert_eq!(line_list(&[4], 1), "line 4");
        assert_eq!(line_list(&[1, 2], 9), "lines 1, 2 …");
    }

    #[test]
    fn forced_utf8_rejects_undecodable_rows_and_says_what_would_read_them() {
        let (_, rows) = read_all(
            b"phone,name\n1,Zo\xC3\xA9\n2,Ren\xE9e\n3,ok\n",
            ReaderOptions {
                encoding: Encoding::Utf8,
                ..ReaderOptions::default()
            },
        );
        assert_eq!(rows[0].1, RecordStatus::Ok);
        assert!(
            matches!(rows[1].1, RecordStatus::Malformed(ref m) if m.contains("UTF-8") && m.contains("Windows-1252")),
            "{rows:?}"
        );
        assert_eq!(rows[2].1, RecordStatus::Ok);
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in text.encode_utf16() {
            let bytes = if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            out.extend(bytes);
        }
        out
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_decoded() {
        let text = "Téléphone\tPrénom\r\n06 12 34 56 78\tZoé\r\n\r\n\"07\t51\"\t😀\r\n";
        for big_endian in [false, true] {
            let (h, rows) = read_all(&utf16(text, big_endian), ReaderOptions::default());
            assert_eq!(h, vec!["Téléphone", "Prénom"]);
            assert_eq!(rows.len(), 2);
            assert_eq!(
                (rows[0].0, rows[0].2.clone()),
                (2, vec!["06 12 34 56 78".into(), "Zoé".into()])
            );
            assert_eq!(
                (rows[1].0, rows[1].2.clone()),
                (4, vec!["07\t51".into(), "😀".into()])
            );
        }
        // Longer than one chunk: characters split across reads survive.
        let mut long = String::from("name\n");
        for i in 0..20_000 {
            long.push_str(&format!("é{i}😀\n"));
        }
        let (_, rows) = read_all(&utf16(&long, false), ReaderOptions::default());
        assert_eq!(rows.len(), 20_000);
        assert_eq!(rows[19_999].2, vec!["é19999😀"]);
        assert_eq!(rows[19_999].0, 20_001);
    }

    #[test]
    fn excel_sep_line_sets_the_delimiter_and_keeps_physical_lines() {
        for input in [
            &b"sep=;\nphone;name\n1;a,b\n"[..],
            b"SEP=;\r\nphone;name\r\n1;a,b\r\n",
            b"\"sep=;\"\nphone;name\n1;a,b\n",
            b"\xEF\xBB\xBFsep=;\nphone;name\n1;a,b\n",
        ] {
            let mut r = CsvReader::new(input, ReaderOptions::default()).unwrap();
            assert_eq!(r.delimiter(), b';');
            assert_eq!(r.header(), ["phone", "name"]);
            let mut rec = Record::default();
            r.next_record(&mut rec).unwrap();
            assert_eq!((rec.line, rec.get(1)), (3, Some("a,b")));
        }
        let (h, _) = read_all(b"sep=|\na|b\n", ReaderOptions::default());
        assert_eq!(h, ["a", "b"]);
        // --delimiter wins, and the line is still not the header.
        let r = CsvReader::new(
            &b"sep=;\nphone,name\n"[..],
            ReaderOptions {
                delimiter: Some(b','),
                ..ReaderOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.header(), ["phone", "name"]);
        // Not a sep line.
        assert_eq!(sep_line(b"separator;x\n"), None);
        assert_eq!(sep_line(b"sep=;;\n"), None);
        assert_eq!(sep_line(b"sep=\n"), None);
        assert_eq!(sep_line(b"sep=;"), Some((b';', 5)));
    }

    #[test]
    fn a_quote_before_a_formula_character_is_removed() {
        let (_, rows) = read_all(
            b"phone,name,x\n'+33612345678,'=cmd,'-1\n'0612345678,it's,''@\n",
            ReaderOptions::default(),
        );
        assert_eq!(rows[0].2, ["+33612345678", "=cmd", "-1"]);
        // Two quotes lose one: what `neutralise` makes of a value `'@`.
        assert_eq!(rows[1].2, ["'0612345678", "it's", "'@"]);
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
