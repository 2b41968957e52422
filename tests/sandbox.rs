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
