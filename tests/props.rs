//! Property tests (docs/security.md, "Fuzzing"): the reader, column mapping
//! and normaliser on generated and mutated files, and both providers'
//! response parsers on generated answers. `cargo fuzz` needs a nightly
//! toolchain and libFuzzer; these run on stable in the normal test suite.
//!
//! The short run takes each test's own case count; a campaign raises it,
//! in chunks with fixed seeds (docs/security.md, "Fuzzing"):
//! `PROPTEST_CASES=100000 PROPTEST_RNG_SEED=1 cargo test --release --test integration props::`.
//! A failure prints its minimal input: make it a regression test below.

use std::path::Path;

use contact_sync::columns::{ColumnMap, Field};
use contact_sync::normalize::{Contact, NormalizeOptions, Normalizer};
use contact_sync::provider::Provider;
use contact_sync::provider::mobivate::Mobivate;
use contact_sync::provider::smspartner::SmsPartner;
use contact_sync::reader::{CsvReader, Encoding, ReaderOptions, RecordStatus};
use contact_sync::record::Record;
use contact_sync::secret::ApiKey;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::util::*;

/// `short` cases, or `PROPTEST_CASES` when set (a campaign).
fn config(short: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(short);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The seed corpus: real export layouts, the samples, hostile files.
fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is there");
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// One byte-level mutation: overwrite, insert or delete at a position.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

/// Bytes that matter to a CSV reader, more often than chance gives them.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b",;\t|\"'\r\n\0=+-@ 0123456789\xef\xbb\xbf\xff\xfe\xc3\xa9".to_vec()),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (
            any::<usize>(),
            prop::collection::vec(interesting_byte(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Set(i, b) if len > 0 => bytes[i % len] = *b,
            Mutation::Insert(i, b) => {
                let at = i % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            _ => {}
        }
    }
    bytes
}

/// What the pipeline made of one file: per record, its line and either the
/// contact or the reason it is not one.
#[derive(Debug, PartialEq)]
enum Row {
    Contact(u64, Box<Contact>),
    Invalid(u64),
    Malformed(u64),
}

/// Reader + column mapping + normaliser, as validate runs them; checks the
/// per-row properties on the way. `None`: a file-level refusal.
fn pipeline(bytes: &[u8], encoding: Encoding) -> Option<Vec<Row>> {
    let opts = ReaderOptions {
        delimiter: None,
        encoding,
    };
    let mut reader = CsvReader::new(bytes, opts).ok()?;
    let header: Vec<String> = reader.header().to_vec();
    let headers: Vec<&str> = header.iter().map(String::as_str).collect();
    let (map, _) = ColumnMap::resolve(&headers, &[]).ok()?;
    let normalizer = Normalizer::new(NormalizeOptions {
        default_group: Some("g".into()),
        ..NormalizeOptions::default()
    })
    .unwrap();
    let mut rec = Record::default();
    let mut rows = Vec::new();
    let mut last_line = 0;
    while let Some(status) = reader.next_record(&mut rec).ok()? {
        assert!(
            rec.line > last_line,
            "lines increase: {} after {last_line}",
            rec.line
        );
        last_line = rec.line;
        match status {
            RecordStatus::Malformed(why) => {
                assert!(!why.is_empty());
                rows.push(Row::Malformed(rec.line));
            }
            RecordStatus::Ok => {
                assert_eq!(rec.len(), header.len(), "a well-formed row fits the header");
                match normalizer.normalize(&map, &rec) {
                    Ok(contact) => {
                        assert_phone_is_a_fixed_point(&normalizer, &contact.phone);
                        rows.push(Row::Contact(rec.line, Box::new(contact)));
                    }
                    Err(errors) => {
                        assert!(!errors.is_empty(), "an invalid row says why");
                        rows.push(Row::Invalid(rec.line));
                    }
                }
            }
        }
    }
    Some(rows)
}

/// A valid row's normalised phone is E.164 and normalises to itself.
fn assert_phone_is_a_fixed_point(normalizer: &Normalizer, phone: &str) {
    assert!(
        phone.len() > 2 && phone.starts_with('+') && phone[1..].bytes().all(|b| b.is_ascii_digit()),
        "E.164: {phone:?}"
    );
    let map = ColumnMap::from_positions(&[(Field::PhoneNumber, 0)]);
    let again = normalizer
        .normalize(&map, &Record::from_cells(2, &[phone]))
        .unwrap_or_else(|e| panic!("{phone} no longer parses: {e:?}"));
    assert_eq!(again.phone, phone);
}

/// A phone cell as people type them: digits with separators, prefixes,
/// letters and junk now and then.
fn phone_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        "0[67]( ?[0-9]{2}){4}",
        "\\+33 ?[67]( ?[0-9]{2}){4}",
        "00(33|44|49|1)[0-9]{8,11}",
        "\\+?[0-9 .()/-]{0,18}",
        "[0-9a-zA-Z+ éÉ\\x00\\t'=@-]{0,12}",
    ]
}

fn name_cell() -> impl Strategy<Value = String> {
    "[a-zA-Zéèçœ' \",;\\n\\r\\t=+@\\x00-]{0,40}"
}

fn date_cell() -> impl Strategy<Value = String> {
    prop_oneof!["", "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]", "[0-9/.-]{0,10}"]
}

/// A file of `rows` (phone, firstname, lastname, date) written with `delimiter`.
fn write_csv(rows: &[(String, String, String, String)], delimiter: u8) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    w.write_record(["phone", "firstname", "lastname", "date"])
        .unwrap();
    for (a, b, c, d) in rows {
        w.write_record([a, b, c, d]).unwrap();
    }
    w.into_inner().unwrap()
}

fn rows() -> impl Strategy<Value = Vec<(String, String, String, String)>> {
    prop::collection::vec((phone_cell(), name_cell(), name_cell(), date_cell()), 0..24)
}

/// Whether the reader skips this row as blank: every cell empty once the
/// `'` before a formula character is removed (campaign finding: a cell
/// `'\r` is a neutralised CR, so blank).
fn is_blank(r: &(String, String, String, String)) -> bool {
    [&r.0, &r.1, &r.2, &r.3]
        .iter()
        .all(|c| contact_sync::reader::unescape(c).trim().is_empty())
}

/// Line breaks in `s`: LF, CRLF, or CR alone.
fn line_breaks(s: &str) -> u64 {
    (s.matches('\n').count() + s.matches('\r').count() - s.matches("\r\n").count()) as u64
}

/// Every encoding the reader offers.
fn encoding() -> impl Strategy<Value = Encoding> {
    prop::sample::select(vec![
        Encoding::Auto,
        Encoding::Utf8,
        Encoding::Windows1252,
        Encoding::Latin1,
    ])
}

#[test]
fn the_corpus_as_it_is_reads_without_a_panic() {
    for file in corpus() {
        for enc in [Encoding::Auto, Encoding::Utf8, Encoding::Windows1252] {
            pipeline(&file, enc);
        }
    }
}

#[test]
fn mutated_corpus_files_read_with_every_property_holding() {
    let corpus = corpus();
    let n = corpus.len();
    let mut runner = TestRunner::new(config(1500));
    let strategy = (0..n, prop::collection::vec(mutation(), 1..6), encoding());
    runner
        .run(&strategy, |(i, mutations, enc)| {
            pipeline(&mutate(corpus[i].clone(), &mutations), enc);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_read_with_every_property_holding() {
    let mut runner = TestRunner::new(config(1500));
    let strategy = (
        prop::collection::vec(interesting_byte(), 0..600),
        encoding(),
    );
    runner
        .run(&strategy, |(bytes, enc)| {
            pipeline(&bytes, enc);
            Ok(())
        })
        .unwrap();
}

/// Campaign finding (an oracle mistake, not a reader bug): a row whose only
/// content is `'` + CR is blank once the reader removes the neutralising `'`.
#[test]
fn a_row_holding_only_a_neutralised_cr_is_blank() {
    let rows = vec![(
        String::new(),
        "'\r".to_string(),
        String::new(),
        String::new(),
    )];
    assert!(is_blank(&rows[0]));
    let read = pipeline(&write_csv(&rows, b','), Encoding::Auto).unwrap();
    assert!(read.is_empty(), "{read:?}");
}

#[test]
fn generated_files_give_one_row_per_record_on_its_own_line() {
    let mut runner = TestRunner::new(config(600));
    let strategy = (rows(), prop::sample::select(b",;\t|".to_vec()));
    runner
        .run(&strategy, |(rows, delimiter)| {
            let bytes = write_csv(&rows, delimiter);
            // Without blank rows the reader sees exactly the rows written,
            // each starting on the line the writer put it on.
            let blank = |r: &(String, String, String, String)| is_blank(r);
            let read = pipeline(&bytes, Encoding::Auto).expect("a phone column");
            let mut line = 2;
            let mut want = Vec::new();
            for r in &rows {
                if !blank(r) {
                    want.push(line);
                }
                line += [&r.0, &r.1, &r.2, &r.3]
                    .iter()
                    .map(|c| line_breaks(c))
                    .sum::<u64>()
                    + 1;
            }
            let got: Vec<u64> = read
                .iter()
                .map(|r| match r {
                    Row::Contact(l, _) | Row::Invalid(l) | Row::Malformed(l) => *l,
                })
                .collect();
            prop_assert_eq!(got, want);
            Ok(())
        })
        .unwrap();
}

/// Both providers' parsers on generated answers: no panic, a bulk success
/// accounts for every contact, and a key the server echoes never comes out.
#[test]
fn provider_answers_are_parsed_without_a_panic_or_the_key() {
    let key_text = "sk-live-7c1d0a";
    let key = ApiKey::new(key_text.into());
    let base = url::Url::parse("https://api.example/v1/").unwrap();
    let providers: Vec<Box<dyn Provider>> = vec![
        Box::new(SmsPartner::new(base.clone()).unwrap().redacting(&key)),
        Box::new(Mobivate::new(base).unwrap().redacting(&key)),
    ];
    let contact = |i: u8| Contact {
        phone: format!("+3361234567{i}"),
        ..Contact::default()
    };
    let mut runner = TestRunner::new(config(1500));
    runner
        .run(
            &(answer(key_text), status(), 0..3u8),
            |(body, status, n)| {
                let contacts: Vec<Contact> = (0..n).map(contact).collect();
                let refs: Vec<&Contact> = contacts.iter().collect();
                for p in &providers {
                    let clean = |s: String| {
                        assert!(!s.contains(key_text), "{}: the key leaked: {s}", p.name());
                    };
                    clean(format!("{:?}", p.classify(status, None, &body)));
                    match p.parse_add(&refs, status, &body) {
                        Ok(results) => prop_assert_eq!(results.len(), refs.len()),
                        Err(e) => clean(e.row_error().message.clone()),
                    }
                    if let Err(e) = p.parse_update("17", status, &body) {
                        clean(e.row_error().message.clone());
                    }
                    if let Err(e) = p.parse_delete(status, &body) {
                        clean(e.row_error().message.clone());
                    }
                    match p.parse_list(0, status, &body) {
                        Ok(page) => clean(format!("{page:?}")),
                        Err(e) => clean(e.row_error().message.clone()),
                    }
                    if let Err(e) = p.parse_detail(status, &body) {
                        clean(e.row_error().message.clone());
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![200u16, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
        1 => 100..600u16,
    ]
}

/// A provider's answer: JSON built from the documented names (sometimes
/// holding the key, as a careless server echoes it), or raw bytes.
fn answer(key: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let word = prop::sample::select(vec![
        "success",
        "code",
        "message",
        "contactId",
        "contact_id",
        "phoneNumber",
        "phone",
        "record",
        "id",
        "data",
        "contacts",
        "contactsList",
        "total",
        "errors",
        "error",
        "mobile",
        "groupId",
        "nextPage",
        "results",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (0..20i64).prop_map(serde_json::Value::from),
        "[ -~éà]{0,12}".prop_map(serde_json::Value::from),
        "\\+33[0-9]{9}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(format!("bad key {key}"))),
    ];
    let json = leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(word.clone(), inner, 0..6).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    });
    prop_oneof![
        4 => json.prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(format!("<html>{key}</html>").into_bytes()),
    ]
}

/// The real binary: `validate` and a dry run agree row for row, and the
/// report has one line per data row, in input order.
#[test]
fn validate_and_a_dry_run_agree_row_for_row() {
    let mut runner = TestRunner::new(config(6));
    runner
        .run(&rows(), |rows| {
            let dir = Dir::new();
            dir.write("in.csv", write_csv(&rows, b','));
            let v = dir.run(&["validate", "in.csv", "--report", "v.csv"]);
            let d = dir
                .command()
                .args([
                    "sync",
                    "in.csv",
                    "--provider",
                    "sandbox",
                    "--dry-run",
                    "--no-state",
                ])
                .args(["--report", "d.csv"])
                .output()
                .unwrap();
            prop_assert_eq!(code(&v), code(&d), "{} / {}", stderr(&v), stderr(&d));
            let (v, d) = (dir.report("v.csv"), dir.report("d.csv"));
            prop_assert_eq!(v.len(), d.len());
            let lines: Vec<u64> = v.iter().map(|l| l.line).collect();
            prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "in input order");
            let data_rows = rows.iter().filter(|r| !is_blank(r)).count();
            prop_assert_eq!(v.len(), data_rows);
            for (a, b) in v.iter().zip(&d) {
                let expected = if a.outcome == "valid" {
                    "would_add"
                } else {
                    a.outcome.as_str()
                };
                prop_assert_eq!(
                    (a.line, expected, &a.code),
                    (b.line, b.outcome.as_str(), &b.code)
                );
                prop_assert_eq!(&a.phone, &b.phone);
            }
            Ok(())
        })
        .unwrap();
}
