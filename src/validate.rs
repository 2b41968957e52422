//! `contact-sync validate`: checks every row and reports, sending nothing.

use std::ops::ControlFlow;
use std::time::Instant;

use crate::cli::ValidateArgs;
use crate::codes::Outcome;
use crate::columns::Field;
use crate::config::{Error, InputConfig, MaxInvalid, OutputConfig};
use crate::report::{Outputs, ReportRow, Summary};
use crate::run::{Ending, RunResult, default_threads, log_input_facts};
use crate::scan::{Keep, Verdict, scan_keeping};

/// Runs `validate`.
pub(crate) fn run(args: &ValidateArgs) -> Result<RunResult, Error> {
    let started = Instant::now();
    let mut input = InputConfig::from_args(&args.input)?;
    input.set_default_group(args.group_id.as_deref())?;
    let output = OutputConfig::from_args(&args.output, &input.source)?;
    let max_invalid = MaxInvalid::from_arg(args.max_invalid.as_deref())?;
    let mut opened = input.open()?;
    // Read as opened: a file still being written is read to the length it had.
    let bytes = opened.bytes.take();
    if let Some(choice) = opened.map.phone_choice() {
        tracing::info!("{choice}");
    }
    if let Some(warning) = opened.ignored_warning() {
        tracing::warn!("{warning}");
    }
    let map = opened.map.clone();
    let Outputs {
        mut report,
        mut rejects,
        summary: summary_file,
    } = Outputs::create(
        &output.report,
        output.rejects.as_ref(),
        output.summary_json.as_deref(),
        output.html.as_deref(),
        opened.reader.header(),
        opened.reader.delimiter(),
    )?;
    let mut summary = Summary::default();
    let mut failure = None;
    let threads = args.threads.unwrap_or_else(default_threads);
    let stats = scan_keeping(
        opened.reader,
        &map,
        &input.normalizer,
        threads,
        Keep::NumberOnly,
        |row| {
            let (outcome, errors): (Outcome, &[_]) = match &row.verdict {
                Verdict::Valid(_) => (Outcome::Valid, &[]),
                Verdict::Invalid(errors) => (Outcome::Invalid, errors),
            };
            let contact_id = map
                .get(Field::ContactId)
                .and_then(|i| row.record.get(i))
                .map(str::trim)
                .unwrap_or("");
            summary.record_at(row.record.line, outcome, errors);
            let written = report
                .write(&ReportRow {
                    line: row.record.line,
                    outcome,
                    errors,
                    note: &row.note,
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
        },
    )
    .map_err(|source| Error::Read {
        path: input.source.describe(),
        source,
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if let Some(warning) = bytes.as_ref().and_then(|b| b.size_warning()) {
        tracing::warn!("{warning}");
    }
    log_input_facts(&stats);
    summary.windows_1252_rows = stats.encoding.data_rows_1252();
    report.finish()?;
    if let Some(r) = rejects {
        r.finish()?;
    }
    // The same guard as sync's, decided on the same counts: a script's
    // pre-flight check refuses exactly the files the sync would.
    let invalid = summary.count(Outcome::Invalid);
    let ending = match max_invalid.filter(|m| m.exceeded(invalid, summary.rows())) {
        Some(limit) => {
            tracing::error!(
                "{}: a sync would send nothing (exit 2)",
                limit.refusal(invalid, summary.rows())
            );
            Ending::NothingSent
        }
        None => Ending::Finished,
    };
    RunResult::conclude(summary, started, summary_file, &output, ending, false)
}
