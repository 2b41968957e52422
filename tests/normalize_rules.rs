//! Issue 8, normalisation points: a URL reaches the provider exactly as the
//! user wrote it.

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
