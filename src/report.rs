//! The per-row report, the rejects file and the end-of-run summary (SPEC §6).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codes::{Outcome, RowError};
use crate::record::Record;

/// The report's columns, in order.
pub const COLUMNS: [&str; 6] = ["line", "outcome", "code", "message", "phone", "contact_id"];

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
}

impl Target {
    /// `-` means stdout; anything else is a path.
    pub fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        }
    }

    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Target::Stdout => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
            Target::File(p) => Box::new(BufWriter::with_capacity(1 << 16, File::create(p)?)),
        })
    }

    /// A name for messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Stdout => "standard output".into(),
            Target::File(p) => p.display().to_string(),
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
pub struct ReportRow<'a> {
    /// Line where the record starts.
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
pub fn joined_codes(errors: &[RowError]) -> String {
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
pub fn joined_messages(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A cell as a spreadsheet will show it: a leading `=`, `+`, `-`, `@`, tab
/// or CR is defused with a `'` so the cell is never run as a formula.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The phone column keeps an E.164 `+`; anything else is neutralised.
fn neutralise_phone(cell: &str) -> std::borrow::Cow<'_, str> {
    let plus_digits = cell.len() > 1
        && cell.starts_with('+')
        && cell[1..].bytes().all(|b| b.is_ascii_digit() || b == b' ');
    if plus_digits {
        cell.into()
    } else {
        neutralise(cell)
    }
}

/// Writes report rows as CSV.
pub struct ReportWriter {
    out: csv::Writer<Box<dyn Write + Send>>,
    target: Target,
    codes: String,
    message: String,
}

impl ReportWriter {
    /// Creates the report and writes its header.
    pub fn create(target: &Target) -> Result<ReportWriter, WriteError> {
        let sink = target
            .open()
            .map_err(|e| WriteError::new("report", target, e))?;
        ReportWriter::from_writer(sink, target.clone())
    }

    /// A report over any writer (for tests).
    pub fn from_writer(
        sink: Box<dyn Write + Send>,
        target: Target,
    ) -> Result<ReportWriter, WriteError> {
        let mut out = csv::Writer::from_writer(sink);
        out.write_record(COLUMNS)
            .map_err(|e| WriteError::csv("report", &target, e))?;
        Ok(ReportWriter {
            out,
            target,
            codes: String::new(),
            message: String::new(),
        })
    }

    /// Appends one row.
    pub fn write(&mut self, row: &ReportRow<'_>) -> Result<(), WriteError> {
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
        let line = row.line.to_string();
        let fields: [&str; 6] = [
            line.as_str(),
            row.outcome.as_str(),
            &self.codes,
            &neutralise(&self.message),
            &neutralise_phone(row.phone),
            &neutralise(row.contact_id),
        ];
        self.out
            .write_record(fields)
            .map_err(|e| WriteError::csv("report", &self.target, e))?;
        Ok(())
    }

    /// Flushes the report.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.out
            .flush()
            .map_err(|e| WriteError::new("report", &self.target, e))
    }
}

/// Writes the input rows that ended `invalid` or `failed`, as they were read,
/// plus `error_code` and `error_message`: fix them and feed the file back.
pub struct RejectsWriter {
    out: csv::Writer<Box<dyn Write + Send>>,
    target: Target,
    width: usize,
}

impl RejectsWriter {
    /// Creates the file: a UTF-8 BOM, then the original header plus two columns.
    pub fn create(
        target: &Target,
        header: &[String],
        delimiter: u8,
    ) -> Result<RejectsWriter, WriteError> {
        let mut sink = target
            .open()
            .map_err(|e| WriteError::new("rejects file", target, e))?;
        sink.write_all(b"\xEF\xBB\xBF")
            .map_err(|e| WriteError::new("rejects file", target, e))?;
        let mut out = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_writer(sink);
        let mut cells: Vec<&str> = header.iter().map(String::as_str).collect();
        cells.extend(["error_code", "error_message"]);
        out.write_record(&cells)
            .map_err(|e| WriteError::csv("rejects file", target, e))?;
        Ok(RejectsWriter {
            out,
            target: target.clone(),
            width: header.len(),
        })
    }

    /// Appends one rejected row; cells are padded or cut to the header's width
    /// so the two error columns always line up.
    pub fn write(&mut self, record: &Record, errors: &[RowError]) -> Result<(), WriteError> {
        let mut cells: Vec<&str> = record.iter().take(self.width).collect();
        cells.resize(self.width, "");
        let codes = joined_codes(errors);
        let messages = joined_messages(errors);
        cells.push(&codes);
        cells.push(&messages);
        self.out
            .write_record(&cells)
            .map_err(|e| WriteError::csv("rejects file", &self.target, e))
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.out
            .flush()
            .map_err(|e| WriteError::new("rejects file", &self.target, e))
    }
}

/// End-of-run counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
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
    /// Wall-clock time of the run.
    pub duration: Duration,
}

impl Summary {
    /// Counts one row.
    pub fn record(&mut self, outcome: Outcome, errors: &[RowError]) {
        *self.outcomes.entry(outcome).or_default() += 1;
        for e in errors {
            *self.codes.entry(e.code.to_string()).or_default() += 1;
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Rows with this outcome.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Rows per second over the run.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.rows() as f64 / secs
        } else {
            0.0
        }
    }

    /// Whether any row ended `invalid`, `failed` or `not_attempted`.
    pub fn has_problems(&self) -> bool {
        self.outcomes.iter().any(|(o, n)| o.is_problem() && *n > 0)
    }

    /// The summary for people, several lines.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} rows in {:.2}s ({:.0} rows/s)\n",
            self.rows(),
            self.duration.as_secs_f64(),
            self.rows_per_second()
        );
        for (o, n) in &self.outcomes {
            s.push_str(&format!("  {:<14}{n}\n", o.as_str()));
        }
        if !self.codes.is_empty() {
            s.push_str("by code:\n");
            for (c, n) in &self.codes {
                s.push_str(&format!("  {c:<20}{n}\n"));
            }
        }
        if self.requests > 0 {
            s.push_str(&format!(
                "requests: {} (retries {}, 429s {})\n",
                self.requests, self.retries, self.throttled
            ));
        }
        s
    }

    /// The summary as JSON, for monitoring.
    pub fn to_json(&self) -> serde_json::Value {
        let outcomes: serde_json::Map<String, serde_json::Value> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), self.count(*o).into()))
            .collect();
        serde_json::json!({
            "rows": self.rows(),
            "outcomes": outcomes,
            "codes": self.codes,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "duration_seconds": self.duration.as_secs_f64(),
            "rows_per_second": self.rows_per_second(),
        })
    }

    /// Writes [`Summary::to_json`] to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), WriteError> {
        let target = Target::File(path.to_path_buf());
        let text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| WriteError::new("summary", &target, e))?;
        std::fs::write(path, text + "\n").map_err(|e| WriteError::new("summary", &target, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn report_joins_codes_and_neutralises_formulas() {
        let buf = Shared::default();
        let mut w = ReportWriter::from_writer(Box::new(buf.clone()), Target::Stdout).unwrap();
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
        w.finish().unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
        assert_eq!(neutralise_phone("+33612345678"), "+33612345678");
        assert_eq!(neutralise_phone("+1+1"), "'+1+1");
        assert_eq!(neutralise_phone("-5"), "'-5");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("ok"), "ok");
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
        assert!(s.human().contains("PHONE_INVALID"));
    }
}
