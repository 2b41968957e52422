//! The per-row report, the rejects file and the end-of-run summary (SPEC §6).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::codes::{Outcome, RowError};
use crate::record::Record;

/// The report's columns, in order.
pub(crate) const COLUMNS: [&str; 6] = ["line", "outcome", "code", "message", "phone", "contact_id"];

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
}

impl Target {
    /// `-` means stdout; anything else is a path.
    pub(crate) fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        }
    }

    fn open(&self) -> io::Result<Sink> {
        Ok(match self {
            Target::Stdout => Sink::Stdout(io::stdout()),
            Target::File(p) => Sink::File(PartialFile::create(p)?),
        })
    }

    /// A name for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Stdout => "standard output".into(),
            Target::File(p) => p.display().to_string(),
        }
    }
}

/// The path a file output is written to while the run lasts.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// A file written as `<path>.partial` and moved to `<path>` when the run
/// ends, so the final path always holds a whole file; a killed run leaves
/// the `.partial` with everything flushed so far.
///
/// A path that is not a regular file (`/dev/null`, a FIFO, `/dev/stderr`) is
/// written in place: renaming a file over it would replace the device.
#[derive(Debug)]
pub(crate) struct PartialFile {
    path: PathBuf,
    /// `None` when writing in place.
    partial: Option<PathBuf>,
    file: File,
}

impl PartialFile {
    /// Creates (or replaces) `<path>.partial`, naming one left by an earlier run.
    pub(crate) fn create(path: &Path) -> io::Result<PartialFile> {
        if is_special(path) {
            return Ok(PartialFile {
                path: path.to_path_buf(),
                partial: None,
                file: std::fs::OpenOptions::new().write(true).open(path)?,
            });
        }
        let partial = partial_path(path);
        if partial.exists() {
            tracing::warn!(
                "{} was left by a run that did not finish; it holds the rows that run finished, and this run replaces it",
                partial.display()
            );
        }
        let file = crate::private::create(&partial)?;
        Ok(PartialFile {
            path: path.to_path_buf(),
            partial: Some(partial),
            file,
        })
    }

    /// Flushes to disk and moves the file to its final path.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        let Some(partial) = &self.partial else {
            return self.file.flush();
        };
        self.file.sync_all()?;
        drop(self.file);
        std::fs::rename(partial, &self.path)
    }

    /// Removes the partial file: the run stopped before writing anything worth keeping.
    pub(crate) fn discard(self) {
        drop(self.file);
        if let Some(partial) = &self.partial {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// Whether `path` exists and is something other than a regular file or a
/// directory: a device, a FIFO, a socket (symlinks followed).
pub(crate) fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Where a writer's bytes go.
#[derive(Debug)]
enum Sink {
    Stdout(io::Stdout),
    File(PartialFile),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.file.flush(),
        }
    }
}

impl Sink {
    fn commit(self) -> io::Result<()> {
        match self {
            Sink::Stdout(mut s) => s.flush(),
            Sink::File(f) => f.commit(),
        }
    }

    fn discard(self) {
        if let Sink::File(f) = self {
            f.discard();
        }
    }
}

/// Buffer of the CSV writers; flushed when full and at least once a second.
const BUFFER: usize = 1 << 16;

/// How often buffered rows reach the file while a run lasts.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A CSV writer over a [`Sink`] that flushes at least once a second.
struct CsvOut {
    out: csv::Writer<Sink>,
    target: Target,
    what: &'static str,
    flushed: Instant,
    since_check: u32,
}

impl CsvOut {
    fn new(target: &Target, what: &'static str, sink: Sink, delimiter: u8) -> CsvOut {
        let out = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .buffer_capacity(BUFFER)
            .from_writer(sink);
        CsvOut {
            out,
            target: target.clone(),
            what,
            flushed: Instant::now(),
            since_check: 0,
        }
    }

    fn error(&self, source: impl Into<io::Error>) -> WriteError {
        WriteError::new(self.what, &self.target, source)
    }

    fn write<I, T>(&mut self, record: I) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.out
            .write_record(record)
            .map_err(|e| WriteError::csv(self.what, &self.target, e))?;
        // Looking at the clock every row would cost more than the row.
        self.since_check += 1;
        if self.since_check >= 256 {
            self.since_check = 0;
            self.flush_if_due()?;
        }
        Ok(())
    }

    fn flush_if_due(&mut self) -> Result<(), WriteError> {
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        self.flushed = Instant::now();
        self.out.flush().map_err(|e| self.error(e))
    }

    fn commit(self) -> Result<(), WriteError> {
        let (target, what) = (self.target.clone(), self.what);
        let sink = self
            .out
            .into_inner()
            .map_err(|e| WriteError::new(what, &target, e.into_error()))?;
        sink.commit().map_err(|e| WriteError::new(what, &target, e))
    }

    fn discard(self) {
        if let Ok(sink) = self.out.into_inner() {
            sink.discard();
        }
    }
}

/// A report or rejects file cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {what} {path}: {source}")]
pub struct WriteError {
    what: &'static str,
    path: String,
    #[source]
    source: io::Error,
}

impl WriteError {
    fn new(what: &'static str, target: &Target, source: impl Into<io::Error>) -> WriteError {
        WriteError {
            what,
            path: target.describe(),
            source: source.into(),
        }
    }

    fn csv(what: &'static str, target: &Target, e: csv::Error) -> WriteError {
        // Keep the I/O error itself, so its kind (e.g. a broken pipe) is visible.
        let source = if e.is_io_error() {
            match e.into_kind() {
                csv::ErrorKind::Io(io) => io,
                _ => io::Error::other("CSV write failed"),
            }
        } else {
            io::Error::other(e)
        };
        WriteError::new(what, target, source)
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportRow<'a> {
    /// Line where the record starts; 0 for a row that is no input row (a
    /// mirror-mode deletion), written empty.
    pub line: u64,
    /// What happened.
    pub outcome: Outcome,
    /// Problems (empty when fine).
    pub errors: &'a [RowError],
    /// Message when there is no error (e.g. why a row is unchanged); may be empty.
    pub note: &'a str,
    /// Normalised number, or the raw cell.
    pub phone: &'a str,
    /// Provider's id, when known.
    pub contact_id: &'a str,
}

/// `|`-joined codes of `errors`, in order.
pub(crate) fn joined_codes(errors: &[RowError]) -> String {
    let mut s = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            s.push('|');
        }
        s.push_str(&e.code.to_string());
    }
    s
}

/// `; `-joined messages of `errors`, in order.
pub(crate) fn joined_messages(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A cell as a spreadsheet will show it: a leading `=`, `+`, `-`, `@`, tab
/// or CR is defused with a `'` so the cell is never run as a formula (SPEC
/// §6). A cell that already starts with `'`s and one of those characters
/// gets one more `'`, so the reader's removal of one `'` ([`crate::reader`]) gives
/// back exactly `cell`: the one rule of the report, the rejects file and the
/// deletion backup.
pub(crate) fn neutralise(cell: &str) -> Cow<'_, str> {
    if crate::reader::formula_after_quotes(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Whether `c` is shown escaped in the report: C0 and C1 control characters,
/// DEL, and the invisible format characters that reorder or hide text
/// (bidirectional overrides and isolates, zero-width characters, a BOM).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `cell` with every hidden character written visibly: `\0`, `\t`, `\n`,
/// `\r`, else `\u{XX}`. A report line is then one physical line with no
/// NUL byte, no terminal escape and no text reordered out of sight.
pub(crate) fn visible(cell: &str) -> Cow<'_, str> {
    if !cell.chars().any(is_hidden) {
        return cell.into();
    }
    let mut out = String::with_capacity(cell.len() + 8);
    for c in cell.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_hidden(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// A text cell of the report: hidden characters made visible, then neutralised.
pub(crate) fn report_cell(cell: &str) -> Cow<'_, str> {
    match visible(cell) {
        Cow::Borrowed(b) => neutralise(b),
        Cow::Owned(o) => Cow::Owned(neutralise(&o).into_owned()),
    }
}

/// `+` then digits (spaces allowed): a number whose `+` a spreadsheet shows as text.
fn is_e164(cell: &str) -> bool {
    cell.len() > 1
        && cell.starts_with('+')
        && cell[1..].bytes().all(|b| b.is_ascii_digit() || b == b' ')
}

/// The report's phone column keeps an E.164 `+`; anything else is a [`report_cell`].
fn report_phone(cell: &str) -> Cow<'_, str> {
    if is_e164(cell) {
        cell.into()
    } else {
        report_cell(cell)
    }
}

/// Writes report rows as CSV.
pub(crate) struct ReportWriter {
    out: CsvOut,
    codes: String,
    message: String,
}

impl ReportWriter {
    /// Creates the report (as `<path>.partial` until [`ReportWriter::finish`]) and writes its header.
    pub(crate) fn create(target: &Target) -> Result<ReportWriter, WriteError> {
        let sink = target
            .open()
            .map_err(|e| WriteError::new("report", target, e))?;
        let mut out = CsvOut::new(target, "report", sink, b',');
        out.write(COLUMNS)?;
        // A run killed at once still leaves a report with its header, never 0 bytes.
        out.flush()?;
        Ok(ReportWriter {
            out,
            codes: String::new(),
            message: String::new(),
        })
    }

    /// Appends one row.
    pub(crate) fn write(&mut self, row: &ReportRow<'_>) -> Result<(), WriteError> {
        self.codes.clear();
        self.message.clear();
        for (i, e) in row.errors.iter().enumerate() {
            if i > 0 {
                self.codes.push('|');
                self.message.push_str("; ");
            }
            use std::fmt::Write as _;
            let _ = write!(self.codes, "{}", e.code);
            self.message.push_str(&e.message);
        }
        if row.errors.is_empty() {
            self.message.push_str(row.note);
        }
        let line = if row.line == 0 {
            String::new()
        } else {
            row.line.to_string()
        };
        let fields: [&str; 6] = [
            line.as_str(),
            row.outcome.as_str(),
            &self.codes,
            &report_cell(&self.message),
            &report_phone(row.phone),
            &report_cell(row.contact_id),
        ];
        self.out.write(fields)
    }

    /// Writes out what is buffered if the last flush is a second old.
    pub(crate) fn flush_if_due(&mut self) -> Result<(), WriteError> {
        self.out.flush_if_due()
    }

    /// Writes out what is buffered; the file stays at its `.partial` path.
    pub(crate) fn flush(&mut self) -> Result<(), WriteError> {
        self.out.flush()
    }

    /// Flushes the report and moves it to its final path.
    pub(crate) fn finish(self) -> Result<(), WriteError> {
        self.out.commit()
    }

    /// Removes the report: the run stopped before any row was written.
    pub(crate) fn discard(self) {
        self.out.discard();
    }
}

/// Writes the input rows that ended `invalid` or `failed`, as they were read,
/// plus `error_code` and `error_message`: fix them and feed the file back.
pub(crate) struct RejectsWriter {
    out: CsvOut,
    width: usize,
}

impl RejectsWriter {
    /// Creates the file: a UTF-8 BOM, then the original header plus two columns.
    pub(crate) fn create(
        target: &Target,
        header: &[String],
        delimiter: u8,
    ) -> Result<RejectsWriter, WriteError> {
        let mut sink = target
            .open()
            .map_err(|e| WriteError::new("rejects file", target, e))?;
        sink.write_all(b"\xEF\xBB\xBF")
            .map_err(|e| WriteError::new("rejects file", target, e))?;
        let mut out = CsvOut::new(target, "rejects file", sink, delimiter);
        let mut cells: Vec<Cow<'_, str>> = header.iter().map(|h| neutralise(h)).collect();
        cells.extend(["error_code".into(), "error_message".into()]);
        out.write(cells.iter().map(|c| c.as_bytes()))?;
        Ok(RejectsWriter {
            out,
            width: header.len(),
        })
    }

    /// Appends one rejected row; cells are padded or cut to the header's width
    /// so the two error columns always line up.
    pub(crate) fn write(&mut self, record: &Record, errors: &[RowError]) -> Result<(), WriteError> {
        let mut cells: Vec<Cow<'_, str>> = record.iter().take(self.width).map(neutralise).collect();
        cells.resize(self.width, "".into());
        let codes = joined_codes(errors);
        let messages = joined_messages(errors);
        cells.push(neutralise(&codes));
        cells.push(neutralise(&messages));
        self.out.write(cells.iter().map(|c| c.as_bytes()))
    }

    /// Writes out what is buffered if the last flush is a second old.
    pub(crate) fn flush_if_due(&mut self) -> Result<(), WriteError> {
        self.out.flush_if_due()
    }

    /// Writes out what is buffered; the file stays at its `.partial` path.
    pub(crate) fn flush(&mut self) -> Result<(), WriteError> {
        self.out.flush()
    }

    /// Flushes the file and moves it to its final path.
    pub(crate) fn finish(self) -> Result<(), WriteError> {
        self.out.commit()
    }

    /// Removes the file: the run stopped before any row was written.
    pub(crate) fn discard(self) {
        self.out.discard();
    }
}

/// The backup of mirror-mode deletions: each contact's last-sent fields,
/// written and flushed before its deletion is sent. Appended to, never
/// truncated, so a run killed mid-deletion and its rerun lose nothing.
pub(crate) struct BackupWriter {
    out: csv::Writer<File>,
    target: Target,
    columns: Vec<&'static str>,
}

impl BackupWriter {
    /// Opens `path` for appending, writing the header when it is new or
    /// empty; refuses a file whose header is not the backup's. `groups`:
    /// the provider has groups (SMS Partner), so the backup has `groupId`.
    pub(crate) fn open(path: &Path, groups: bool) -> Result<BackupWriter, WriteError> {
        // SPEC field names, so `sync` reads the backup back as input: every
        // field but the id and the opt-out, and `groupId` only for a provider
        // with groups (an empty group column would make every row `GROUP_MISSING`).
        use crate::columns::Field;
        let columns: Vec<&'static str> = Field::ALL
            .into_iter()
            .filter(|f| !matches!(f, Field::ContactId | Field::OptOut))
            .filter(|f| groups || *f != Field::GroupId)
            .map(Field::name)
            .collect();
        let target = Target::File(path.to_path_buf());
        let err = |e: io::Error| WriteError::new("deletion backup", &target, e);
        let mut file = crate::private::options()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(err)?;
        crate::private::restrict(&file).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            use std::io::{BufRead, Read, Seek};
            file.seek(io::SeekFrom::Start(0)).map_err(err)?;
            let mut first = String::new();
            io::BufReader::new((&file).take(4096))
                .read_line(&mut first)
                .map_err(err)?;
            if first.trim_end() != columns.join(",") {
                return Err(err(io::Error::other(
                    "it exists and is not a deletion backup (its first line is not the backup's header); give --deleted-backup another path",
                )));
            }
        }
        let mut out = csv::WriterBuilder::new().from_writer(file);
        if len == 0 {
            out.write_record(&columns)
                .and_then(|()| out.flush().map_err(csv::Error::from))
                .map_err(|e| WriteError::csv("deletion backup", &target, e))?;
        }
        Ok(BackupWriter {
            out,
            target,
            columns,
        })
    }

    /// Appends one contact (its fields as the state store keeps them, a JSON
    /// object under SPEC field names) and flushes it to the file.
    pub(crate) fn write(&mut self, fields: &str) -> Result<(), WriteError> {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(fields).unwrap_or_default();
        let cells: Vec<Cow<'_, str>> = self
            .columns
            .iter()
            .map(|name| {
                let value = obj.get(*name).and_then(|v| v.as_str()).unwrap_or("");
                if *name == "phoneNumber" && is_e164(value) {
                    value.into()
                } else {
                    neutralise(value)
                }
            })
            .collect();
        self.out
            .write_record(cells.iter().map(|c| c.as_bytes()))
            .map_err(|e| WriteError::csv("deletion backup", &self.target, e))?;
        self.out
            .flush()
            .map_err(|e| WriteError::new("deletion backup", &self.target, e))
    }
}

/// The files written from the summary at the end of the run (the JSON
/// summary, the HTML report), created before the run starts.
#[derive(Debug)]
pub(crate) struct SummaryFile {
    json: Option<(PartialFile, Target)>,
    html: Option<(PartialFile, Target)>,
}

impl SummaryFile {
    /// Creates each `<path>.partial`, so an unwritable path stops the run
    /// before it starts; `None` when neither file is asked for.
    pub(crate) fn create(
        json: Option<&Path>,
        html: Option<&Path>,
    ) -> Result<Option<SummaryFile>, WriteError> {
        let open = |path: &Path, what: &'static str| {
            let target = Target::File(path.to_path_buf());
            PartialFile::create(path)
                .map(|f| (f, target.clone()))
                .map_err(|e| WriteError::new(what, &target, e))
        };
        let json = json.map(|p| open(p, "summary")).transpose()?;
        let html = match html.map(|p| open(p, "HTML report")).transpose() {
            Ok(h) => h,
            Err(e) => {
                if let Some((f, _)) = json {
                    f.discard();
                }
                return Err(e);
            }
        };
        Ok((json.is_some() || html.is_some()).then_some(SummaryFile { json, html }))
    }

    /// Writes the JSON summary and the HTML report (its rows read back from
    /// `report`), and moves each file to its final path.
    pub(crate) fn write(
        self,
        summary: &Summary,
        closing: &Closing<'_>,
        report: &Target,
        input: &str,
    ) -> Result<(), WriteError> {
        if let Some((mut file, target)) = self.json {
            let text = serde_json::to_string_pretty(&summary.to_json())
                .map_err(|e| WriteError::new("summary", &target, e))?;
            file.file
                .write_all((text + "\n").as_bytes())
                .and_then(|()| file.commit())
                .map_err(|e| WriteError::new("summary", &target, e))?;
        }
        if let Some((mut file, target)) = self.html {
            let fail = |e: String| WriteError::new("HTML report", &target, io::Error::other(e));
            let (rows, total) = match report {
                Target::File(p) => {
                    let f = std::fs::File::open(p)
                        .or_else(|_| std::fs::File::open(partial_path(p)))
                        .map_err(|e| fail(format!("cannot read the report back: {e}")))?;
                    crate::html::rejected_rows(io::BufReader::new(f))
                        .map_err(|e| fail(format!("cannot read the report back: {e}")))?
                }
                Target::Stdout => (Vec::new(), 0),
            };
            let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
            let page = crate::html::Page {
                input,
                summary,
                closing,
                generated: &generated,
            };
            let html = crate::html::render(&page, &rows, total).map_err(|e| fail(e.to_string()))?;
            file.file
                .write_all(html.as_bytes())
                .and_then(|()| file.commit())
                .map_err(|e| WriteError::new("HTML report", &target, e))?;
        }
        Ok(())
    }

    /// Removes the files: the run stopped before it started.
    pub(crate) fn discard(self) {
        for (f, _) in self.json.into_iter().chain(self.html) {
            f.discard();
        }
    }
}

/// Every output of a run, created together before anything is sent.
pub(crate) struct Outputs {
    /// The per-row report.
    pub report: ReportWriter,
    /// The rejects file, if asked for.
    pub rejects: Option<RejectsWriter>,
    /// The JSON summary, if asked for.
    pub summary: Option<SummaryFile>,
}

impl Outputs {
    /// Creates every output; if one cannot be created, none is left behind.
    pub(crate) fn create(
        report: &Target,
        rejects: Option<&Target>,
        summary: Option<&Path>,
        html: Option<&Path>,
        header: &[String],
        delimiter: u8,
    ) -> Result<Outputs, WriteError> {
        let report = ReportWriter::create(report)?;
        let rejects = match rejects.map(|t| RejectsWriter::create(t, header, delimiter)) {
            Some(Err(e)) => {
                report.discard();
                return Err(e);
            }
            other => other.transpose()?,
        };
        let summary = match SummaryFile::create(summary, html) {
            Err(e) => {
                report.discard();
                if let Some(r) = rejects {
                    r.discard();
                }
                return Err(e);
            }
            Ok(s) => s,
        };
        Ok(Outputs {
            report,
            rejects,
            summary,
        })
    }

    /// Removes every output: the run stopped before any row was written.
    pub(crate) fn discard(self) {
        self.report.discard();
        if let Some(r) = self.rejects {
            r.discard();
        }
        if let Some(s) = self.summary {
            s.discard();
        }
    }
}

/// End-of-run counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    /// Rows per outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Rows per error code (a row with two codes counts for both).
    pub codes: BTreeMap<String, u64>,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retried requests.
    pub retries: u64,
    /// 429 responses seen.
    pub throttled: u64,
    /// Data rows that were not UTF-8 and were decoded as Windows-1252.
    pub windows_1252_rows: u64,
    /// Wall-clock time of the run.
    pub duration: Duration,
    /// Report rows that are mirror-mode deletions (counted in `outcomes` too).
    pub deletions: u64,
    /// The first few input lines of each error code, to find them quickly.
    pub lines: BTreeMap<String, Vec<u64>>,
}

/// How many line numbers of each code the summary keeps.
pub(crate) const FIRST_LINES: usize = 5;

/// How many codes the text summary lists before "and N more".
const TOP_CODES: usize = 6;

/// Where a run's outputs went and how it ended: the end of the summary.
#[derive(Debug, Clone, Default)]
pub(crate) struct Closing<'a> {
    /// The report, as [`Target::describe`] names it.
    pub report: &'a str,
    /// The rejects file, when asked for.
    pub rejects: Option<&'a str>,
    /// The HTML report, when asked for.
    pub html: Option<&'a str>,
    /// The process exit code.
    pub exit_code: u8,
}

impl Summary {
    /// Counts one row.
    #[cfg(test)]
    fn record(&mut self, outcome: Outcome, errors: &[RowError]) {
        self.record_at(0, outcome, errors);
    }

    /// Counts one row from input line `line` (0: no line, a deletion),
    /// keeping the first few lines of each of its codes.
    pub(crate) fn record_at(&mut self, line: u64, outcome: Outcome, errors: &[RowError]) {
        *self.outcomes.entry(outcome).or_default() += 1;
        for e in errors {
            let code = e.code.to_string();
            if line > 0 {
                let lines = self.lines.entry(code.clone()).or_default();
                if lines.len() < FIRST_LINES && lines.last() != Some(&line) {
                    lines.push(line);
                }
            }
            *self.codes.entry(code).or_default() += 1;
        }
    }

    /// Error codes, the most frequent first (then by name).
    pub(crate) fn top_codes(&self) -> Vec<(&str, u64)> {
        let mut codes: Vec<(&str, u64)> =
            self.codes.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        codes
    }

    /// Requests per second over the run.
    pub(crate) fn requests_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// The end-of-run summary for people, readable at a glance: the counts
    /// per outcome, the top error codes with their first lines, the time
    /// and rates, where the outputs went, and what to do next.
    pub(crate) fn render(&self, closing: &Closing<'_>) -> String {
        let mut s = self.headline();
        s.push('\n');
        let width = self
            .outcomes
            .values()
            .max()
            .map_or(1, |n| n.to_string().len());
        for (o, n) in self.outcomes.iter().filter(|(_, n)| **n > 0) {
            s.push_str(&format!("  {:<14}{n:>width$}\n", o.as_str()));
        }
        let codes = self.top_codes();
        if !codes.is_empty() {
            s.push_str("problems, most frequent first:\n");
            let width = codes
                .iter()
                .map(|(_, n)| n.to_string().len())
                .max()
                .unwrap_or(1);
            for (code, n) in codes.iter().take(TOP_CODES) {
                s.push_str(&format!(
                    "  {code:<20}{n:>width$}  {}\n",
                    self.where_(code, *n)
                ));
            }
            if codes.len() > TOP_CODES {
                let more = codes.len() - TOP_CODES;
                let rest: u64 = codes[TOP_CODES..].iter().map(|(_, n)| n).sum();
                s.push_str(&format!(
                    "  … and {more} more {} ({rest} {}): see the report\n",
                    if more == 1 { "code" } else { "codes" },
                    if rest == 1 { "time" } else { "times" }
                ));
            }
        }
        if self.deletions > 0 {
            s.push_str(&format!(
                "deletions: {} of the rows above (mirror mode)\n",
                self.deletions
            ));
        }
        if self.windows_1252_rows > 0 {
            s.push_str(&format!(
                "decoded as Windows-1252: {} {}\n",
                self.windows_1252_rows,
                if self.windows_1252_rows == 1 {
                    "row"
                } else {
                    "rows"
                }
            ));
        }
        if self.requests > 0 {
            s.push_str(&format!(
                "requests: {} (retries {}, 429s {})\n",
                self.requests, self.retries, self.throttled
            ));
        }
        s.push_str(&format!("report: {}\n", closing.report));
        if let Some(r) = closing.rejects {
            s.push_str(&format!("rejects: {r}\n"));
        }
        if let Some(h) = closing.html {
            s.push_str(&format!("html report: {h}\n"));
        }
        if let Some(next) = self.next_step(closing) {
            s.push_str(&format!("next: {next}\n"));
        }
        s
    }

    /// `lines 4, 9, 17 …` for a code: where to look first.
    fn where_(&self, code: &str, n: u64) -> String {
        let lines = self.lines.get(code).map(Vec::as_slice).unwrap_or(&[]);
        if lines.is_empty() {
            return String::new();
        }
        let list: Vec<String> = lines.iter().map(u64::to_string).collect();
        format!(
            "{} {}{}",
            if lines.len() == 1 { "line" } else { "lines" },
            list.join(", "),
            if n > lines.len() as u64 { ", …" } else { "" }
        )
    }

    /// What the person at the terminal should do now, if anything.
    fn next_step(&self, closing: &Closing<'_>) -> Option<String> {
        let invalid = self.count(Outcome::Invalid);
        let failed = self.count(Outcome::Failed);
        let not_attempted = self.count(Outcome::NotAttempted);
        let rows = |n: u64| {
            if n == 1 {
                "1 row".to_string()
            } else {
                format!("{n} rows")
            }
        };
        let the_invalid = |n: u64| {
            if n == 1 {
                "the invalid row".to_string()
            } else {
                format!("the {n} invalid rows")
            }
        };
        let codes = |outcome_codes: &[&str]| {
            self.top_codes()
                .iter()
                .any(|(c, _)| outcome_codes.iter().any(|o| c.starts_with(o)))
        };
        if closing.exit_code == crate::codes::exit::ABORTED {
            if codes(&["AUTH"]) {
                return Some(format!(
                    "the provider refused the API key: check {} (or the file {} names), then run again",
                    crate::secret::ENV_VAR,
                    crate::secret::FILE_ENV_VAR
                ));
            }
            return Some(format!(
                "the run stopped early ({} not sent): run it again to finish; rows already sent are not sent twice",
                rows(not_attempted + failed)
            ));
        }
        if closing.exit_code == crate::codes::exit::NOTHING_SENT {
            return Some(match closing.rejects {
                Some(r) if invalid > 0 => format!(
                    "nothing was sent: fix {} in {r} (or the export), then run again",
                    the_invalid(invalid)
                ),
                _ => "nothing was sent: see the error above, fix it, then run again".into(),
            });
        }
        let mut steps = Vec::new();
        if invalid > 0 {
            steps.push(match closing.rejects {
                Some(r) => format!(
                    "fix {} in {r} and run again with it as the input",
                    the_invalid(invalid)
                ),
                None => format!(
                    "fix {} listed as invalid in {} (--rejects PATH writes them to a file you can fix and feed back)",
                    rows(invalid),
                    closing.report
                ),
            });
        }
        if failed > 0 {
            steps.push(format!(
                "{} failed to go through: run again later, rows already sent are not sent twice (docs/error-codes.md explains each code)",
                rows(failed)
            ));
        }
        let would = self.count(Outcome::WouldAdd)
            + self.count(Outcome::WouldUpdate)
            + self.count(Outcome::WouldDelete);
        if would > 0 {
            steps.push(format!(
                "run again without --dry-run to send {}",
                rows(would)
            ));
        }
        if steps.is_empty() && invalid == 0 && self.count(Outcome::Valid) > 0 {
            steps.push("the file is ready: sync it".into());
        }
        (!steps.is_empty()).then(|| steps.join("; "))
    }

    /// What to do next, as [`Summary::render`] words it (for the JSON log).
    pub(crate) fn next(&self, closing: &Closing<'_>) -> Option<String> {
        self.next_step(closing)
    }

    /// Rows counted.
    pub(crate) fn rows(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Rows with this outcome.
    pub(crate) fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Rows per second over the run.
    pub(crate) fn rows_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.rows() as f64 / secs
        } else {
            0.0
        }
    }

    /// Whether any row ended `invalid`, `failed` or `not_attempted`.
    pub(crate) fn has_problems(&self) -> bool {
        self.outcomes.iter().any(|(o, n)| o.is_problem() && *n > 0)
    }

    /// The summary's first line: `54 rows in 0.05s (1107 rows/s)`, with
    /// the request rate achieved when requests were sent.
    pub(crate) fn headline(&self) -> String {
        let rows = self.rows();
        let requests = if self.requests > 0 {
            format!(", {:.1} requests/s", self.requests_per_second())
        } else {
            String::new()
        };
        format!(
            "{rows} {} in {:.2}s ({:.0} rows/s{requests})",
            if rows == 1 { "row" } else { "rows" },
            self.duration.as_secs_f64(),
            self.rows_per_second()
        )
    }

    /// The summary as JSON, for monitoring.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let outcomes: serde_json::Map<String, serde_json::Value> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), self.count(*o).into()))
            .collect();
        serde_json::json!({
            "rows": self.rows(),
            "outcomes": outcomes,
            "deletions": self.deletions,
            "codes": self.codes,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "windows_1252_rows": self.windows_1252_rows,
            "duration_seconds": self.duration.as_secs_f64(),
            "rows_per_second": self.rows_per_second(),
        })
    }
}

/// The fate of one row, on its way to the report writer.
pub(crate) struct Done {
    pub(crate) seq: u64,
    pub(crate) line: u64,
    pub(crate) outcome: Outcome,
    pub(crate) errors: Vec<RowError>,
    pub(crate) note: String,
    pub(crate) phone: String,
    pub(crate) contact_id: String,
    pub(crate) record: Option<Record>,
}

/// Writes results in input order as they arrive, returning each row's
/// window slot, and flushes at least once a second. A write error stops the
/// sending through `stop` (exit 3); rows keep being counted and their slots returned, so
/// the run still winds down in order.
pub(crate) async fn write_in_order(
    done_rx: &mut mpsc::UnboundedReceiver<Done>,
    report: &mut ReportWriter,
    rejects: &mut Option<RejectsWriter>,
    permits: &Semaphore,
    counts: &crate::progress::Counts,
    stop: impl Fn(&WriteError),
) -> (Summary, Option<WriteError>) {
    let mut summary = Summary::default();
    let mut failed: Option<WriteError> = None;
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        let done = tokio::select! {
            done = done_rx.recv() => done,
            _ = tick.tick() => {
                if failed.is_none() {
                    let flushed = report.flush_if_due().and_then(|()| match rejects {
                        Some(r) => r.flush_if_due(),
                        None => Ok(()),
                    });
                    if let Err(e) = flushed {
                        stop(&e);
                        failed = Some(e);
                    }
                }
                continue;
            }
        };
        let Some(done) = done else { break };
        // Counted as it finishes, not when its turn to be written comes:
        // the updates of one batch finish in any order.
        counts.record(done.outcome);
        // Most rows come in order: they skip the map.
        let mut ready = if done.seq == next {
            Some(done)
        } else {
            pending.insert(done.seq, done);
            None
        };
        while let Some(d) = ready.take().or_else(|| pending.remove(&next)) {
            next += 1;
            summary.record_at(d.line, d.outcome, &d.errors);
            if d.line == 0 {
                summary.deletions += 1;
            }
            permits.add_permits(1);
            if failed.is_some() {
                continue;
            }
            let written = report.write(&ReportRow {
                line: d.line,
                outcome: d.outcome,
                errors: &d.errors,
                note: &d.note,
                phone: &d.phone,
                contact_id: &d.contact_id,
            });
            let written = match (written, rejects.as_mut(), &d.record) {
                (Ok(()), Some(r), Some(rec))
                    if matches!(d.outcome, Outcome::Invalid | Outcome::Failed) =>
                {
                    r.write(rec, &d.errors)
                }
                (result, _, _) => result,
            };
            if let Err(e) = written {
                stop(&e);
                failed = Some(e);
            }
        }
    }
    (summary, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;

    #[test]
    fn report_joins_codes_and_neutralises_formulas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let target = Target::File(path.clone());
        let mut w = ReportWriter::create(&target).unwrap();
        let errors = [
            RowError::new(ErrorCode::PhoneInvalid, "=HYPERLINK(x) is not a number"),
            RowError::new(ErrorCode::DateInvalid, "bad date"),
        ];
        w.write(&ReportRow {
            line: 7,
            outcome: Outcome::Invalid,
            errors: &errors,
            note: "",
            phone: "=1+2",
            contact_id: "",
        })
        .unwrap();
        w.write(&ReportRow {
            line: 8,
            outcome: Outcome::Valid,
            errors: &[],
            note: "",
            phone: "+33612345678",
            contact_id: "@x",
        })
        .unwrap();
        w.flush().unwrap();
        assert!(
            !path.exists(),
            "the report stays .partial until the run ends"
        );
        assert!(partial_path(&path).exists());
        w.finish().unwrap();
        assert!(!partial_path(&path).exists());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "line,outcome,code,message,phone,contact_id");
        assert_eq!(
            lines[1],
            "7,invalid,PHONE_INVALID|DATE_INVALID,'=HYPERLINK(x) is not a number; bad date,'=1+2,"
        );
        assert_eq!(lines[2], "8,valid,,,+33612345678,'@x");
    }

    #[test]
    fn phone_plus_is_kept_only_before_digits() {
        assert_eq!(report_phone("+33612345678"), "+33612345678");
        assert_eq!(report_phone("+1+1"), "'+1+1");
        assert_eq!(report_phone("-5"), "'-5");
        assert_eq!(report_phone("\t+1"), "\\t+1");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("ok"), "ok");
    }

    #[test]
    fn the_reader_gives_back_every_neutralised_cell() {
        for cell in [
            "=1+2",
            "+33612345678",
            "-5",
            "@x",
            "\tx",
            "\rx",
            "'=x",
            "''=x",
            "'x",
            "'",
            "",
            "ok",
            "'+'",
            "'''@",
        ] {
            assert_eq!(crate::reader::unescape(&neutralise(cell)), cell, "{cell:?}");
        }
        assert_eq!(neutralise("'=x"), "''=x");
        assert_eq!(neutralise("'x"), "'x");
    }

    #[test]
    fn hidden_characters_are_shown_escaped_in_report_cells() {
        assert_eq!(visible("a\0b\nc\rd\te"), "a\\0b\\nc\\rd\\te");
        assert_eq!(visible("\u{1b}[31m"), "\\u{1B}[31m");
        assert_eq!(
            visible("x\u{202E}y\u{7F}\u{85}"),
            "x\\u{202E}y\\u{7F}\\u{85}"
        );
        assert_eq!(visible("Zoë +33"), "Zoë +33");
        // Escaped first, then neutralised: a leading tab is no longer a tab.
        assert_eq!(report_cell("\t=1"), "\\t=1");
        assert_eq!(report_cell("=1\0"), "'=1\\0");
    }

    #[test]
    fn rejects_cells_are_neutralised_but_keep_their_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rej.csv");
        let target = Target::File(path.clone());
        let header = vec!["phone".to_string(), "=note".to_string()];
        let mut w = RejectsWriter::create(&target, &header, b';').unwrap();
        let mut rec = Record::default();
        rec.push("+33 6");
        rec.push("=HYPERLINK(\"x\")\0");
        w.write(&rec, &[RowError::new(ErrorCode::PhoneInvalid, "-bad")])
            .unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.trim_start_matches('\u{FEFF}').lines().collect();
        assert_eq!(lines[0], "phone;'=note;error_code;error_message");
        assert_eq!(
            lines[1],
            "'+33 6;\"'=HYPERLINK(\"\"x\"\")\0\";PHONE_INVALID;'-bad"
        );
    }

    #[test]
    fn summary_counts_outcomes_and_codes() {
        let mut s = Summary::default();
        s.record(Outcome::Valid, &[]);
        s.record(
            Outcome::Invalid,
            &[
                RowError::new(ErrorCode::PhoneInvalid, ""),
                RowError::new(ErrorCode::Api(15), ""),
            ],
        );
        assert_eq!(s.rows(), 2);
        assert!(s.has_problems());
        let j = s.to_json();
        assert_eq!(j["outcomes"]["valid"], 1);
        assert_eq!(j["outcomes"]["added"], 0);
        assert_eq!(j["codes"]["API_15"], 1);
        assert!(s.render(&Closing::default()).contains("PHONE_INVALID"));
    }

    fn row_error(code: ErrorCode) -> [RowError; 1] {
        [RowError::new(code, "")]
    }

    #[test]
    fn the_summary_lists_codes_by_frequency_with_their_first_lines() {
        let mut s = Summary::default();
        for line in 2..=9 {
            s.record_at(line, Outcome::Invalid, &row_error(ErrorCode::PhoneInvalid));
        }
        s.record_at(12, Outcome::Invalid, &row_error(ErrorCode::DateInvalid));
        s.record_at(13, Outcome::Added, &[]);
        let text = s.render(&Closing {
            report: "in.report.csv",
            rejects: Some("in.rejects.csv"),
            html: None,
            exit_code: crate::codes::exit::ROWS_FAILED,
        });
        let phone = text
            .find("PHONE_INVALID       8  lines 2, 3, 4, 5, 6, …")
            .unwrap();
        let date = text.find("DATE_INVALID        1  line 12\n").unwrap();
        assert!(phone < date, "{text}");
        assert!(
            !text.contains("updated"),
            "only outcomes that occurred: {text}"
        );
        assert!(text.contains("rejects: in.rejects.csv\n"), "{text}");
        assert!(
            text.ends_with(
                "next: fix the 9 invalid rows in in.rejects.csv and run again with it as the input\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_next_step_fits_how_the_run_ended() {
        let next = |s: &Summary, exit_code: u8| {
            s.next(&Closing {
                report: "r.csv",
                exit_code,
                ..Closing::default()
            })
        };
        let mut s = Summary::default();
        s.record_at(2, Outcome::Valid, &[]);
        assert_eq!(next(&s, 0).as_deref(), Some("the file is ready: sync it"));
        let mut s = Summary::default();
        s.record_at(2, Outcome::Added, &[]);
        assert_eq!(next(&s, 0), None);
        s.record_at(3, Outcome::WouldAdd, &[]);
        assert_eq!(
            next(&s, 0).as_deref(),
            Some("run again without --dry-run to send 1 row")
        );
        let mut s = Summary::default();
        s.record_at(2, Outcome::Failed, &row_error(ErrorCode::Auth));
        s.record_at(3, Outcome::NotAttempted, &[]);
        assert!(next(&s, 3).unwrap().contains(crate::secret::ENV_VAR));
        let mut s = Summary::default();
        s.record_at(2, Outcome::Failed, &row_error(ErrorCode::Unconfirmed));
        s.record_at(3, Outcome::NotAttempted, &[]);
        assert!(next(&s, 3).unwrap().contains("2 rows not sent"));
        assert!(next(&s, 1).unwrap().contains("run again later"));
        assert!(
            next(&Summary::default(), 2)
                .unwrap()
                .starts_with("nothing was sent")
        );
    }

    #[test]
    fn more_than_six_codes_end_with_a_count_of_the_rest() {
        let mut s = Summary::default();
        for (i, code) in [
            ErrorCode::PhoneInvalid,
            ErrorCode::PhoneMissing,
            ErrorCode::DateInvalid,
            ErrorCode::UrlInvalid,
            ErrorCode::DuplicatePhone,
            ErrorCode::FirstnameTooLong,
            ErrorCode::LastnameTooLong,
            ErrorCode::GroupMissing,
        ]
        .into_iter()
        .enumerate()
        {
            s.record_at(i as u64 + 2, Outcome::Invalid, &row_error(code));
        }
        let text = s.render(&Closing::default());
        assert!(text.contains("… and 2 more codes (2 times)"), "{text}");
    }
}
