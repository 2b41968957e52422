//! What `validate` and `sync` share: the result a finished run leaves
//! behind, and what both log about the input.

use std::time::Instant;

use crate::codes::exit;
use crate::config::{Error, OutputConfig};
use crate::report::{Closing, Summary, SummaryFile};
use crate::scan::ScanStats;

/// What a finished run leaves behind.
#[derive(Debug, Clone)]
pub(crate) struct RunResult {
    /// The end-of-run counts.
    pub summary: Summary,
    /// The process exit code (SPEC §2).
    pub exit_code: u8,
    /// Where the report went, for the closing lines.
    pub report: String,
    /// Where the rejects went, when asked for.
    pub rejects: Option<String>,
    /// Where the HTML report went, when asked for.
    pub html: Option<String>,
    /// Why the run stopped early, printed after the summary.
    pub error: Option<String>,
}

/// How a run ended, before the JSON summary is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every row went through its course.
    Finished,
    /// Nothing was sent on purpose (e.g. `--max-invalid`): exit 2.
    NothingSent,
    /// Every row went through its course, but a fault of this tool (a
    /// panicking task) failed some: exit 1, with the message.
    Faulted(String),
    /// Stopped after sending may have begun: exit 3, with the reason when
    /// the log has not said it already.
    Aborted(Option<String>),
}

impl RunResult {
    /// Stamps the duration, writes the JSON summary when asked, and picks the
    /// exit code. `sent` says whether any request may have gone out, which
    /// turns a failure to write the summary into exit 3 rather than 2.
    pub(crate) fn conclude(
        mut summary: Summary,
        started: Instant,
        summary_file: Option<SummaryFile>,
        outputs: &OutputConfig,
        ending: Ending,
        sent: bool,
    ) -> Result<RunResult, Error> {
        summary.duration = started.elapsed();
        let (mut exit_code, mut error) = match ending {
            Ending::Finished if summary.has_problems() => (exit::ROWS_FAILED, None),
            Ending::Finished => (exit::OK, None),
            Ending::NothingSent => (exit::NOTHING_SENT, None),
            Ending::Faulted(why) => (exit::ROWS_FAILED, Some(why)),
            Ending::Aborted(why) => (exit::ABORTED, why),
        };
        let html = outputs.html.as_ref().map(|p| p.display().to_string());
        let rejects = outputs.rejects.as_ref().map(|r| r.describe());
        let report = outputs.report.describe();
        let closing = Closing {
            report: &report,
            rejects: rejects.as_deref(),
            html: html.as_deref(),
            exit_code,
        };
        if let Some(file) = summary_file
            && let Err(e) = file.write(&summary, &closing, &outputs.report, &outputs.input)
        {
            if !sent {
                return Err(e.into());
            }
            exit_code = exit::ABORTED;
            error.get_or_insert_with(|| e.to_string());
        }
        Ok(RunResult {
            summary,
            exit_code,
            report,
            rejects,
            html,
            error,
        })
    }

    /// Where the outputs went and how the run ended.
    pub(crate) fn closing(&self) -> Closing<'_> {
        Closing {
            report: &self.report,
            rejects: self.rejects.as_deref(),
            html: self.html.as_deref(),
            exit_code: self.exit_code,
        }
    }

    /// The end-of-run summary for people.
    pub(crate) fn render(&self) -> String {
        self.summary.render(&self.closing())
    }
}

/// The SMS Partner groups the built-in sandbox (`--provider sandbox`) is
/// started with: the one given (`--group-id`, else the sandbox's default
/// group), then those the file's `groupId` column names, each once — so a
/// sync to the sandbox finds every group it sends to, as the user's real
/// account would have them.
#[cfg(feature = "sandbox")]
pub(crate) fn sandbox_groups<'a>(
    given: &str,
    file_groups: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut groups = vec![given.to_string()];
    for g in file_groups {
        if !g.is_empty() && !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    groups
}

/// Worker threads to use when not told.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Logs what the scan learnt about the file as a whole: how it was decoded,
/// a date column read as Excel serial numbers, a file with no data rows.
pub(crate) fn log_input_facts(stats: &ScanStats) {
    match stats.encoding.describe() {
        Some((true, text)) => tracing::warn!("{text}"),
        Some((false, text)) => tracing::info!("{text}"),
        None => {}
    }
    if stats.facts.serial_dates {
        tracing::info!(
            "the date column holds Excel serial numbers (days since 1900): they are read as dates"
        );
    }
    if stats.rows == 0 {
        tracing::warn!("the file has a header but no data rows: nothing to do");
    }
}

#[cfg(all(test, feature = "sandbox"))]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_holds_the_given_group_and_the_files() {
        let file: Vec<String> = vec!["".into(), "b".into(), "a".into(), "b".into()];
        assert_eq!(sandbox_groups("a", &file), vec!["a", "b"]);
        assert_eq!(sandbox_groups("sandbox", &[]), vec!["sandbox"]);
    }
}
