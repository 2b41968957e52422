//! `contact-sync validate`: checks every row and reports, sending nothing.

use std::ops::ControlFlow;
use std::time::Instant;

use crate::cli::ValidateArgs;
use crate::codes::{Outcome, exit};
use crate::columns::Field;
use crate::config::{Error, InputConfig, OutputConfig};
use crate::report::{RejectsWriter, ReportRow, ReportWriter, Summary};
use crate::scan::{Verdict, scan};

/// What a finished run leaves behind.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The end-of-run counts.
    pub summary: Summary,
    /// The process exit code (SPEC §2).
    pub exit_code: u8,
    /// Where the report went, for the closing line.
    pub report: String,
}

impl RunResult {
    /// Stamps the duration, writes the JSON summary when asked, and picks the
    /// exit code: `stopped` (2 or 3) when the run did not go through, else
    /// 1 when some rows are not fine, else 0.
    pub fn conclude(
        mut summary: Summary,
        started: Instant,
        output: &OutputConfig,
        stopped: Option<u8>,
    ) -> Result<RunResult, Error> {
        summary.duration = started.elapsed();
        if let Some(path) = &output.summary_json {
            summary.write_json(path)?;
        }
        let exit_code = match stopped {
            Some(code) => code,
            None if summary.has_problems() => exit::ROWS_FAILED,
            None => exit::OK,
        };
        Ok(RunResult {
            summary,
            exit_code,
            report: output.report.describe(),
        })
    }
}

/// Worker threads to use when not told.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `validate`.
pub fn run(args: &ValidateArgs) -> Result<RunResult, Error> {
    let started = Instant::now();
    let input = InputConfig::from_args(&args.input)?;
    let output = OutputConfig::from_args(&args.output, &input.source)?;
    let opened = input.open()?;
    if !opened.ignored.is_empty() {
        tracing::warn!(
            "ignoring columns with no matching field: {}",
            opened.ignored.join(", ")
        );
    }
    let map = opened.map.clone();
    let mut report = ReportWriter::create(&output.report)?;
    let mut rejects = match &output.rejects {
        Some(t) => Some(RejectsWriter::create(
            t,
            opened.reader.header(),
            opened.reader.delimiter(),
        )?),
        None => None,
    };
    let mut summary = Summary::default();
    let mut failure = None;
    let threads = args.threads.unwrap_or_else(default_threads);
    scan(opened.reader, &map, &input.normalizer, threads, |row| {
        let (outcome, errors): (Outcome, &[_]) = match &row.verdict {
            Verdict::Valid(_) => (Outcome::Valid, &[]),
            Verdict::Invalid(errors) => (Outcome::Invalid, errors),
        };
        let contact_id = map
            .get(Field::ContactId)
            .and_then(|i| row.record.get(i))
            .map(str::trim)
            .unwrap_or("");
        summary.record(outcome, errors);
        let written = report
            .write(&ReportRow {
                line: row.record.line,
                outcome,
                errors,
                note: "",
                phone: row.phone(&map),
                contact_id,
            })
            .and_then(|()| match (&mut rejects, outcome) {
                (Some(r), Outcome::Invalid) => r.write(&row.record, errors),
                _ => Ok(()),
            });
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })
    .map_err(|source| Error::Read {
        path: input.source.describe(),
        source,
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    report.finish()?;
    if let Some(r) = rejects {
        r.finish()?;
    }
    RunResult::conclude(summary, started, &output, None)
}
