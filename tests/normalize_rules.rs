//! Issue 8, normalisation points: a URL reaches the provider exactly as the
//! user wrote it, and a date's year has four digits and lies in 1900–2100.

use crate::util::*;

#[test]
fn urls_arrive_at_the_provider_byte_for_byte() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111"]);
    let dir = Dir::new();
    // Two bulk adds and one update by id; the last cell has spaces around it.
    dir.write(
        "in.csv",
        format!(
            "phone,firstname,url,contactId\n\
             0622222222,Add1,http://example.com,\n\
             0633333333,Add2,HTTP://EXAMPLE.COM/Path,\n\
             0611111111,Upd,  HttpS://Example.COM/a?b=c#d  ,{}\n",
            ids[0]
        ),
    );
    let out = sb.sync(&dir, "smspartner", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        triples(&dir.report("in.report.csv")),
        vec![(2, "added", ""), (3, "added", ""), (4, "updated", "")]
    );
    let state = sb.state();
    let mut got: Vec<(&str, &str)> = state
        .group("g1")
        .iter()
        .map(|c| (c.phone.as_str(), c.url.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("+33611111111", "HttpS://Example.COM/a?b=c#d"),
            ("+33622222222", "http://example.com"),
            ("+33633333333", "HTTP://EXAMPLE.COM/Path"),
        ]
    );
}

#[test]
fn urls_arrive_at_mobivate_byte_for_byte() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,url\n0622222222,http://example.com\n0633333333,HTTP://EXAMPLE.COM/Path\n",
    );
    let out = sb.sync(&dir, "mobivate", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut got: Vec<(String, String)> = sb
        .state()
        .mobivate
        .iter()
        .map(|c| {
            let url = c.meta.get("URL").and_then(|v| v.as_str()).unwrap_or("");
            (c.msisdn.clone(), url.to_string())
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("33622222222".to_string(), "http://example.com".to_string()),
            (
                "33633333333".to_string(),
                "HTTP://EXAMPLE.COM/Path".to_string()
            ),
        ]
    );
}

#[test]
fn a_url_the_parser_would_repair_is_url_invalid() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,url\n\
         0622222222,http:example.com\n\
         0633333333,https://example.com/my page\n\
         0644444444,https://example.com/ok\n",
    );
    let out = dir.run(&["validate", "in.csv", "--report", "r.csv"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        triples(&dir.report("r.csv")),
        vec![
            (2, "invalid", "URL_INVALID"),
            (3, "invalid", "URL_INVALID"),
            (4, "valid", "")
        ]
    );
}

#[test]
fn a_two_digit_year_read_by_percent_capital_y_is_date_invalid() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,birthday\n\
         0622222222,31/12/1999\n\
         0633333333,31/12/99\n\
         0644444444,31/12/0099\n\
         0655555555,01/01/2101\n",
    );
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--date-format",
        "%d/%m/%Y",
        "--report",
        "-",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = parse_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        triples(&report),
        vec![
            (2, "valid", ""),
            (3, "invalid", "DATE_INVALID"),
            (4, "invalid", "DATE_INVALID"),
            (5, "invalid", "DATE_INVALID"),
        ]
    );
    assert!(
        report[1].message.contains("fewer than four digits")
            && report[1].message.contains("--date-format %d/%m/%y"),
        "{:?}",
        report[1].message
    );
    assert!(
        report[2]
            .message
            .contains("the year 99 is outside 1900–2100"),
        "{:?}",
        report[2].message
    );
    assert!(
        report[3]
            .message
            .contains("the year 2101 is outside 1900–2100"),
        "{:?}",
        report[3].message
    );
}

#[test]
fn nothing_of_a_row_with_a_two_digit_year_is_sent() {
    let sb = Sandbox::calm();
    let ids = sb.seed_group("g1", &["+33611111111"]);
    let before = sb.state().group("g1").to_vec();
    let dir = Dir::new();
    dir.write(
        "in.csv",
        format!(
            "phone,firstname,birthday,contactId\n\
             0622222222,Good,31/12/1999,\n\
             0633333333,New,31/12/99,\n\
             0611111111,Changed,31/12/99,{}\n",
            ids[0]
        ),
    );
    let out = sb.sync(&dir, "smspartner", &["--date-format", "%d/%m/%Y"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        triples(&dir.report("in.report.csv")),
        vec![
            (2, "added", ""),
            (3, "invalid", "DATE_INVALID"),
            (4, "invalid", "DATE_INVALID"),
        ]
    );
    let state = sb.state();
    let group = state.group("g1");
    assert_eq!(group.len(), 2, "{group:?}");
    assert_eq!(
        group[0], before[0],
        "the contact behind the bad row changed"
    );
    assert_eq!(
        (group[1].phone.as_str(), group[1].date.as_str()),
        ("+33622222222", "1999-12-31")
    );
    assert_eq!(state.counters.total("POST /v1/contact/update"), 0);
}
