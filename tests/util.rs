//! A temporary directory, a way to run the real binary in it, and readers
//! for what it leaves behind.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Output;
use std::process::{Child, ChildStderr, Command as StdCommand, Stdio};

use assert_cmd::Command;
use contact_sync::sandbox::faults::FaultSettings;
use contact_sync::sandbox::{ContactInput, SandboxConfig, SandboxHandle, SandboxState};

/// A scratch directory that is the working directory of every command run in it.
pub struct Dir {
    tmp: tempfile::TempDir,
    /// The user's state directory of the runs in this dir (never the real one).
    state: tempfile::TempDir,
}

/// One parsed report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 0 for a deletion (an empty `line`).
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
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// What the runs in this dir take as the user's state directory.
    pub fn state_home(&self) -> PathBuf {
        self.state.path().to_path_buf()
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
        cmd.env("XDG_STATE_HOME", self.state_home());
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
                // Mirror-mode deletions follow the input's rows with an empty line.
                line: if r[0].is_empty() {
                    0
                } else {
                    r[0].parse().expect("line number")
                },
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

pub const KEY: &str = "test-key-5f2b9c";

/// A sandbox served by its own runtime while the test runs the binary.
pub struct Sandbox {
    rt: tokio::runtime::Runtime,
    handle: Option<SandboxHandle>,
}

impl Sandbox {
    pub fn start(stress: FaultSettings) -> Sandbox {
        Sandbox::seeded(stress, 1)
    }

    /// A sandbox whose faults draw from `seed`.
    pub fn seeded(stress: FaultSettings, seed: u64) -> Sandbox {
        Sandbox::with_groups(stress, seed, &["g1", "g2"])
    }

    /// A sandbox holding the SMS Partner groups `groups`.
    pub fn with_groups(stress: FaultSettings, seed: u64, groups: &[&str]) -> Sandbox {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = SandboxConfig {
            api_key: KEY.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            stress,
            seed,
            ..SandboxConfig::default()
        };
        let handle = rt.block_on(contact_sync::sandbox::start(config)).unwrap();
        Sandbox {
            rt,
            handle: Some(handle),
        }
    }

    pub fn calm() -> Sandbox {
        Sandbox::start(FaultSettings::default())
    }

    pub fn handle(&self) -> &SandboxHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.handle().base_url()
    }

    pub fn state(&self) -> SandboxState {
        self.handle().snapshot()
    }

    /// Phones held in an SMS Partner group, each with how many times it appears.
    pub fn group_phones(&self, group: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self.state().group(group) {
            *m.entry(c.phone.clone()).or_default() += 1;
        }
        m
    }

    pub fn seed_group(&self, group: &str, phones: &[&str]) -> Vec<String> {
        let contacts = phones.iter().map(|p| ContactInput {
            phone_number: Some(p.to_string()),
            firstname: Some("Old".into()),
            ..ContactInput::default()
        });
        self.handle().seed_smspartner(group, contacts).unwrap()
    }
}

impl Sandbox {
    /// Runs `sync in.csv` in `dir` against this sandbox with `provider`
    /// (SMS Partner into group `g1` unless `extra` names another) and `extra` flags.
    pub fn sync(&self, dir: &Dir, provider: &str, extra: &[&str]) -> std::process::Output {
        let url = self.url();
        let mut args = vec!["in.csv", "--provider", provider, "--base-url", &url];
        if provider == "smspartner" && !extra.contains(&"--group-id") {
            args.extend(["--group-id", "g1"]);
        }
        args.extend(extra);
        sync(dir, &args)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

pub fn sync(dir: &Dir, args: &[&str]) -> std::process::Output {
    dir.command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .arg("sync")
        .args(args)
        .output()
        .unwrap()
}

/// A `-vv` run's stdout, stderr and the named output files hold no trace of the key.
pub fn assert_key_absent(out: &std::process::Output, dir: &Dir, files: &[&str]) {
    let mut everything = vec![
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(out),
    ];
    everything.extend(files.iter().map(|f| dir.read(f)));
    let everything = everything.join("\n");
    assert!(
        everything.contains("DEBUG") || everything.contains("TRACE"),
        "-vv logged"
    );
    assert!(!everything.contains(KEY), "the key leaked");
}

pub fn outcomes(report: &[Line]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in report {
        *m.entry(l.outcome.clone()).or_default() += 1;
    }
    m
}

/// `n` distinct valid French mobile numbers in E.164.
pub fn numbers(n: usize, offset: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("+336{:08}", 10_000_000 + offset + i * 7))
        .collect()
}

pub fn csv_of(phones: &[String]) -> String {
    let mut s = String::from("phone,firstname,lastname\n");
    for (i, p) in phones.iter().enumerate() {
        s.push_str(&format!("{p},First{i},Last{i}\n"));
    }
    s
}

/// Requests of any kind the sandbox received.
pub fn requests(sb: &Sandbox) -> u64 {
    sb.state()
        .counters
        .requests
        .values()
        .flat_map(|m| m.values())
        .sum()
}

/// The binary, started in `dir` with the test key and `args`, stderr piped.
pub fn spawn(dir: &Dir, args: &[&str], stdin: Stdio) -> Child {
    StdCommand::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .current_dir(dir.path(""))
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("TMPDIR", dir.path(""))
        .env("XDG_STATE_HOME", dir.state_home())
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads stderr until a line contains `needle` (waiting on the process, not the clock).
pub fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, needle: &str) {
    for line in lines.by_ref() {
        if line.unwrap().contains(needle) {
            return;
        }
    }
    panic!("stderr ended before {needle:?}");
}

pub fn signal(child: &Child, sig: &str) {
    let ok = StdCommand::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

pub fn stderr_lines(child: &mut Child) -> std::io::Lines<BufReader<ChildStderr>> {
    BufReader::new(child.stderr.take().unwrap()).lines()
}

/// Starts `-v sync in.csv` on Mobivate at `url` with `extra` flags, in the
/// background; returns the child and its stderr lines.
pub fn spawn_mobivate(
    dir: &Dir,
    url: &str,
    extra: &[&str],
) -> (Child, std::io::Lines<BufReader<ChildStderr>>) {
    let mut args = vec![
        "-v",
        "sync",
        "in.csv",
        "--provider",
        "mobivate",
        "--base-url",
        url,
    ];
    args.extend(extra);
    let mut child = spawn(dir, &args, Stdio::null());
    let lines = stderr_lines(&mut child);
    (child, lines)
}

/// Runs `sync` with `args` in `dir` like [`sync`], but kills the process and
/// fails the test if it has not ended after `limit`: a guard against a run
/// that hangs, not a measure of speed.
pub fn sync_or_hang(dir: &Dir, args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let mut full = vec!["sync"];
    full.extend(args);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("contact-sync"))
        .current_dir(dir.path(""))
        .env("CONTACT_SYNC_API_KEY", KEY)
        .env("XDG_STATE_HOME", dir.state_home())
        .env_remove("RUST_LOG")
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the run hung: {}", stderr(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
