//! A temporary directory, a way to run the real binary in it, and readers
//! for what it leaves behind.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;

/// A scratch directory that is the working directory of every command run in it.
pub struct Dir {
    tmp: tempfile::TempDir,
}

/// One parsed report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: u64,
    pub outcome: String,
    pub code: String,
    pub message: String,
    pub phone: String,
    pub contact_id: String,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write input");
        p
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::cargo_bin("contact-sync").expect("binary");
        cmd.current_dir(self.tmp.path());
        cmd.env_remove("RUST_LOG");
        cmd
    }

    /// Runs the binary with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run binary")
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read output")
    }

    pub fn report(&self, name: &str) -> Vec<Line> {
        parse_report(&self.read(name))
    }
}

pub fn parse_report(text: &str) -> Vec<Line> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().expect("report header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        vec!["line", "outcome", "code", "message", "phone", "contact_id"]
    );
    rdr.records()
        .map(|r| {
            let r = r.expect("report row");
            Line {
                line: r[0].parse().expect("line number"),
                outcome: r[1].to_string(),
                code: r[2].to_string(),
                message: r[3].to_string(),
                phone: r[4].to_string(),
                contact_id: r[5].to_string(),
            }
        })
        .collect()
}

pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("exit code (not killed by a signal)")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (line, outcome, code) triples, the usual thing to assert on.
pub fn triples(lines: &[Line]) -> Vec<(u64, &str, &str)> {
    lines
        .iter()
        .map(|l| (l.line, l.outcome.as_str(), l.code.as_str()))
        .collect()
}
