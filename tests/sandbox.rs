//! `contact-sync sandbox` as a user runs it: foreground, one log line per
//! request, clean stop on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[cfg(unix)]
#[test]
fn sandbox_command_serves_logs_each_request_and_stops_on_sigint() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .args(["sandbox", "--port", "0"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| {
            let start = l.find("http://127.0.0.1:")?;
            let rest = &l[start + "http://".len()..];
            Some(
                rest[..rest.find('/').unwrap_or(rest.len())]
                    .trim()
                    .to_string(),
            )
        })
        .expect("the sandbox prints its address");
    let mut conn = TcpStream::connect(&url).unwrap();
    write!(
        conn,
        "GET /v1/group/list?apiKey=sandbox-key HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"sandbox\""), "{answer}");
    let logged = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("/v1/group/list"));
    let logged = logged.expect("the request is logged");
    assert!(logged.contains("200"), "{logged}");
    assert!(
        !logged.contains("sandbox-key"),
        "the key is not logged: {logged}"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `--provider sandbox` stands for the user's own account: the group given
/// with `--group-id`, and those a `groupId` column names, exist there (they
/// used to fail every row `API_404`). The standalone server keeps refusing
/// unknown groups (robust.rs relies on its JSON 404).
#[test]
fn the_built_in_sandbox_creates_the_groups_it_is_given() {
    use crate::util::{Dir, code, outcomes, stderr};
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname\n0612345678,Ada\n0698765432,Grace\n",
    );
    let out = dir.run(&[
        "sync",
        "in.csv",
        "--provider",
        "sandbox",
        "--group-id",
        "12345",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(outcomes(&dir.report("in.report.csv"))["added"], 2, "{err}");
    assert!(
        err.contains("sandbox group \"12345\" now holds 2 contacts"),
        "{err}"
    );

    // A groupId column: each row to its group, the empty cell to --group-id.
    dir.write(
        "groups.csv",
        "phone,groupId\n0612345678,north\n0698765432,south\n0611111111,\n",
    );
    let out = dir.run(&[
        "sync",
        "groups.csv",
        "--provider",
        "sandbox",
        "--group-id",
        "main",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(
        outcomes(&dir.report("groups.report.csv"))["added"],
        3,
        "{err}"
    );
    for group in ["north", "south", "main"] {
        assert!(
            err.contains(&format!("sandbox group \"{group}\" now holds 1 contacts")),
            "{group}: {err}"
        );
    }
}
