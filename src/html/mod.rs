//! `--report-html PATH`: the run's summary, charts of outcomes and error
//! codes, and the rejected rows in a table that sorts and filters, in one
//! self-contained file (no network, no external script or font) for the
//! person who will not open a CSV. Every value goes through the template
//! engine's HTML escaping.

use std::io::Read;

use serde::Serialize;

use crate::codes::Outcome;
use crate::report::{Closing, Summary};

/// The template, kept beside this file.
const TEMPLATE: &str = include_str!("report.html");

/// How many rejected rows the page holds at most (the rest are in the report).
pub(crate) const MAX_ROWS: usize = 5_000;

/// One rejected row, as the report has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    /// The input line.
    pub line: String,
    /// `invalid` or `failed`.
    pub outcome: String,
    /// The codes, joined with `|`.
    pub code: String,
    /// The messages.
    pub message: String,
    /// The number, normalised or as written.
    pub phone: String,
    /// The provider's id, when known.
    pub contact_id: String,
}

/// The rejected rows (`invalid`, `failed`) of a report CSV, at most
/// [`MAX_ROWS`], and how many there are in all. Cells lose the `'` the
/// report puts before a would-be formula: the page shows them as text.
pub(crate) fn rejected_rows(report: impl Read) -> Result<(Vec<Row>, u64), csv::Error> {
    let mut rdr = csv::Reader::from_reader(report);
    let mut rows = Vec::new();
    let mut total = 0;
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        let cell = |i: usize| unneutralise(record.get(i).unwrap_or("")).to_string();
        let outcome = record.get(1).unwrap_or("");
        if outcome != Outcome::Invalid.as_str() && outcome != Outcome::Failed.as_str() {
            continue;
        }
        total += 1;
        if rows.len() < MAX_ROWS {
            rows.push(Row {
                line: cell(0),
                outcome: cell(1),
                code: cell(2),
                message: cell(3),
                phone: cell(4),
                contact_id: cell(5),
            });
        }
    }
    Ok((rows, total))
}

/// A report cell without the `'` that neutralised a formula.
fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A bar of a chart.
#[derive(Serialize)]
struct Bar {
    name: String,
    count: u64,
    /// Width in percent of the longest bar.
    percent: u64,
    /// The colour class.
    tone: &'static str,
}

/// A bar of the error-code chart.
#[derive(Serialize)]
struct CodeBar {
    code: String,
    count: u64,
    percent: u64,
    lines: String,
}

/// What the page shows besides the rows.
pub(crate) struct Page<'a> {
    /// The input's name.
    pub input: &'a str,
    /// The end-of-run counts.
    pub summary: &'a Summary,
    /// Where the outputs went and how the run ended.
    pub closing: &'a Closing<'a>,
    /// When the page was made (shown as is).
    pub generated: &'a str,
}

/// Renders the page.
pub(crate) fn render(
    page: &Page<'_>,
    rows: &[Row],
    total: u64,
) -> Result<String, minijinja::Error> {
    let summary = page.summary;
    let percent = |n: u64, max: u64| if max == 0 { 0 } else { (n * 100).div_ceil(max) };
    let max_outcome = summary.outcomes.values().copied().max().unwrap_or(0);
    let outcomes: Vec<Bar> = summary
        .outcomes
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(o, n)| Bar {
            name: o.as_str().to_string(),
            count: *n,
            percent: percent(*n, max_outcome),
            tone: tone(*o),
        })
        .collect();
    let codes = summary.top_codes();
    let max_code = codes.first().map_or(0, |(_, n)| *n);
    let codes: Vec<CodeBar> = codes
        .iter()
        .map(|(c, n)| CodeBar {
            code: c.to_string(),
            count: *n,
            percent: percent(*n, max_code),
            lines: summary
                .lines
                .get(*c)
                .map(|l| l.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        })
        .collect();
    let command = if summary.count(Outcome::Valid) > 0 {
        "validate"
    } else if [
        Outcome::WouldAdd,
        Outcome::WouldUpdate,
        Outcome::WouldDelete,
    ]
    .iter()
    .any(|o| summary.count(*o) > 0)
    {
        "sync --dry-run"
    } else {
        "sync"
    };
    let note = if total as usize > rows.len() {
        format!(
            "The first {} of {total} rejected rows; every row is in {}.",
            rows.len(),
            page.closing.report
        )
    } else {
        String::new()
    };
    let mut env = minijinja::Environment::new();
    // The name ends in .html: minijinja escapes every value for HTML.
    env.add_template("report.html", TEMPLATE)?;
    let context = minijinja::context! {
        command,
        input => page.input,
        headline => summary.headline(),
        exit_code => page.closing.exit_code,
        generated => page.generated,
        rows => summary.rows(),
        seconds => format!("{:.2}", summary.duration.as_secs_f64()),
        rows_per_second => format!("{:.0}", summary.rows_per_second()),
        requests => summary.requests,
        requests_per_second => format!("{:.1}", summary.requests_per_second()),
        retries => summary.retries,
        throttled => summary.throttled,
        outcomes => minijinja::Value::from(minijinja::value::Serde(&outcomes)),
        codes => minijinja::Value::from(minijinja::value::Serde(&codes)),
        next => summary.next(page.closing),
        rejected => total,
        note,
        table => minijinja::Value::from(minijinja::value::Serde(rows)),
        report => page.closing.report,
        rejects => page.closing.rejects,
    };
    env.get_template("report.html")?.render(context)
}

/// The colour of an outcome's bar.
fn tone(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Added | Outcome::Updated | Outcome::Unchanged | Outcome::Valid => "good",
        Outcome::Deleted => "warn",
        Outcome::WouldAdd | Outcome::WouldUpdate | Outcome::WouldDelete => "dry",
        Outcome::Invalid | Outcome::Failed => "bad",
        Outcome::NotAttempted => "warn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{ErrorCode, RowError};

    #[test]
    fn rejected_rows_are_read_back_without_the_formula_guard() {
        let report = "line,outcome,code,message,phone,contact_id\n\
                      2,added,,,+33611111111,\n\
                      3,invalid,PHONE_INVALID,bad,'=1+1,\n\
                      4,failed,API_2,x,+33622222222,'@id\n";
        let (rows, total) = rejected_rows(report.as_bytes()).unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].phone, "=1+1");
        assert_eq!(rows[1].contact_id, "@id");
        assert_eq!(unneutralise("'x"), "'x");
    }

    #[test]
    fn every_value_is_escaped() {
        let mut summary = Summary::default();
        summary.record_at(2, Outcome::Added, &[]);
        summary.record_at(
            3,
            Outcome::Invalid,
            &[RowError::new(ErrorCode::PhoneInvalid, "")],
        );
        let closing = Closing {
            report: "<b>r.csv",
            ..Closing::default()
        };
        let page = Page {
            input: "in\"&'.csv",
            summary: &summary,
            closing: &closing,
            generated: "now",
        };
        let rows = [Row {
            line: "3".into(),
            phone: "<script>alert(1)</script>\"&'".into(),
            ..Row::default()
        }];
        let html = render(&page, &rows, 1).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>r.csv"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&amp;&#x27;"),
            "{html}"
        );
        assert!(html.contains("in&quot;&amp;&#x27;.csv"));
        // Self-contained: nothing fetched from elsewhere.
        for outside in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!html.contains(outside), "{outside}");
        }
    }
}
