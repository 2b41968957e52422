//! `--report-html`: one self-contained page, every cell escaped.

use crate::util::{Dir, code, stderr};

#[test]
fn the_html_report_holds_the_summary_charts_and_rejected_rows_as_inert_text() {
    let dir = Dir::new();
    let evil = "<script>alert(\"&'\")</script>";
    dir.write(
        "in.csv",
        format!(
            "phone,firstname\n0611111111,Ann\n\"{}\",Bob\n0622222222,\"{evil}{}\"\n",
            evil.replace('"', "\"\""),
            "x".repeat(40)
        ),
    );
    let out = dir.run(&["validate", "in.csv", "--report-html", "in.html"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("html report: in.html"),
        "{}",
        stderr(&out)
    );
    let html = dir.read("in.html");
    // Only the page's own inline script; the cells' stay text.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("alert(\""), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&quot;&amp;&#x27;&quot;)&lt;&#x2f;script&gt;"));
    // Self-contained: no external script, style, font or image.
    for outside in ["<link", "src=", "@import", "url(", "@font-face"] {
        assert!(!html.contains(outside), "{outside}");
    }
    // The summary, both charts, the table with each rejected row and its code.
    for part in [
        "3 rows in ",
        "id=\"outcomes-chart\"",
        "id=\"codes-chart\"",
        "<option value=\"PHONE_INVALID\">PHONE_INVALID (1)</option>",
        "FIRSTNAME_TOO_LONG",
        "Rejected rows (2)",
        "<td class=\"line\">3</td>",
        "<td class=\"line\">4</td>",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    assert!(
        !html.contains("<td class=\"line\">2</td>"),
        "a valid row is not rejected"
    );
    assert!(!dir.path("in.html.partial").exists());
}

#[test]
fn the_html_report_needs_the_report_in_a_file_and_is_not_the_input() {
    let dir = Dir::new();
    dir.write("in.csv", "phone\n0611111111\n");
    let out = dir.run(&[
        "validate",
        "in.csv",
        "--report",
        "-",
        "--report-html",
        "x.html",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--report-html"), "{}", stderr(&out));
    let out = dir.run(&["validate", "in.csv", "--report-html", "in.csv"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--report-html in.csv is the input file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(dir.read("in.csv"), "phone\n0611111111\n");
}
