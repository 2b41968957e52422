//! Every command of the docs, run as a reader would run it: README.md and
//! every page under docs/ (the directory is listed, so a new page is covered
//! without being named here), from a copy of the repository's samples, with
//! the pages' own `export` lines, against a sandbox.
//!
//! What counts as a command:
//! - in a ```` ```console ```` block or a fence with no language: the lines
//!   starting with `$ ` (the others are output);
//! - in a ```` ```sh ```` / ```` ```bash ```` block or an indented (4-space)
//!   block: every line but comments (`\` continues a line). Output shown on
//!   a page goes in a ```` ```text ```` (or `csv`, `json`, …) fence, which
//!   holds no command;
//! - in prose, a `` `contact-sync …` `` code span.
//!
//! How each is checked:
//! - a shell line runs in `sh` from the copy's root, after the page's earlier
//!   `export` lines; it must end with status 0 or 1 (1: the samples hold
//!   invalid rows on purpose), and so must every `contact-sync` it starts,
//!   with no error line on stderr;
//! - a crontab line (five schedule fields first) runs as cron runs it: `%`
//!   ends the command (`\%` is a `%`), an empty environment but `HOME`,
//!   `LOGNAME`, `SHELL=/bin/sh`, `PATH=/usr/bin:/bin`, from the home directory;
//! - a systemd unit (an ```` ```ini ```` fence): its `ExecStart=` runs as
//!   systemd runs it — no shell, an empty environment but systemd's `PATH`,
//!   `HOME`/`USER` and the unit's `Environment=`, `%d` the directory holding
//!   the `LoadCredential=` files, from `/`;
//! - `contact-sync sandbox …` (a server) is started on a free port, must
//!   print where it listens, and must stop with status 0 on Ctrl-C;
//! - a synopsis — a block after the marker `<!-- doc-test: synopsis -->`, or
//!   a code span holding a placeholder (`FILE`, `<FILE>`, `a|b`, `…`) or no
//!   argument — is not run: its subcommand's `--help` must work and show
//!   each `--flag` it names.
//!
//! What is not run, always said where it is decided:
//! - a block after the marker `<!-- doc-test: skip: REASON -->` (benchmarks,
//!   hour-long fault campaigns, curl sessions against a server);
//! - the lines of [`NOT_RUN`], each with its reason (`cargo test`, the
//!   install steps that the new-user walk-through covers).
//!
//! What is rewritten ([`rewrite`]): `cargo run --release --` is the built
//! binary; the Mobivate host and SMS Partner's API go to the sandbox
//! (`--base-url` added where a line has none); the system paths a job uses
//! (`/etc/contact-sync`, `/var/log/contact-sync`, …, `/usr/local/bin`) live
//! under the copy; a key written `...` or `…` is the sandbox's key. The
//! files the pages name that the repository does not hold are [`FIXTURES`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{Dir, KEY, Sandbox, csv_of, numbers, signal, stderr_lines, wait_for};

/// The host the Mobivate examples use, standing for the one Mobivate gives.
const MOBIVATE_EXAMPLES: [&str; 2] = [
    "https://<host given by Mobivate>",
    "https://api.mobivate.example",
];

/// System paths a job uses, kept under the copy's `sys/`.
const SYSTEM_PATHS: [&str; 5] = [
    "/etc/contact-sync",
    "/var/log/contact-sync",
    "/var/lib/contact-sync",
    "/data/export",
    "/tmp/",
];

/// Lines that are not run, by how they start, and why.
const NOT_RUN: [(&str, &str); 3] = [
    ("cargo test", "the test suite itself, which CI runs anyway"),
    (
        "git clone",
        "the install steps: the new-user walk-through runs them on a fresh clone",
    ),
    (
        "cargo install",
        "the install steps: the new-user walk-through runs them on a fresh clone",
    ),
];

/// Files the pages name as examples of the user's own, and what they hold.
const FIXTURES: [(&str, Fixture); 10] = [
    ("contacts.csv", Fixture::CleanExport),
    ("export.csv", Fixture::CleanExport),
    ("export-excel.csv", Fixture::Sample("excel-fr.csv")),
    ("crm.csv", Fixture::Text(CRM)),
    ("clients-be.csv", Fixture::Text(BELGIAN)),
    ("nightly.toml", Fixture::Sample("nightly-smspartner.toml")),
    ("sys/data/export/customers.csv", Fixture::CleanExport),
    ("sys/etc/contact-sync/key", Fixture::Key),
    ("sys/etc/contact-sync/smspartner.key", Fixture::Key),
    (
        "sys/var/lib/contact-sync/customers.deleted.csv",
        Fixture::Text(BACKUP),
    ),
];

/// A CRM export whose phone column has an unusual name, dates day first.
const CRM: &str = "Name,Cell B,Born\nAda,06 12 34 56 78,31/12/1999\n";
/// Belgian national numbers.
const BELGIAN: &str = "phone,firstname\n0470 12 34 56,Lotte\n0471 23 45 67,Jef\n";
/// A deletion backup, as mirror mode writes it.
const BACKUP: &str = "phoneNumber,firstname,lastname,date,url,custom1,custom2,custom3,custom4,groupId,alias\n+33612345678,Ada,,,,,,,,12345,\n";

/// Where a fixture's content comes from.
#[derive(Clone, Copy)]
enum Fixture {
    /// A file of `samples/` (configs pointed at the sandbox).
    Sample(&'static str),
    /// A nightly export: 20 valid rows and 1 invalid (under a 5% guard).
    CleanExport,
    /// The key, mode 600.
    Key,
    /// This text.
    Text(&'static str),
}

/// How a command is checked.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Shell,
    Cron,
    Server,
    /// A systemd unit's `ExecStart=`, with the unit's `Environment=` and
    /// `LoadCredential=` lines.
    Systemd(Vec<String>),
    Synopsis,
    Skipped(String),
}

/// One command of a page.
#[derive(Debug, Clone, PartialEq)]
struct Cmd {
    line: usize,
    text: String,
    kind: Kind,
}

/// A marker before a block.
#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Skip(String),
    Synopsis,
}

/// The marker a line holds, if any.
fn marker(line: &str) -> Option<Result<Marker, String>> {
    let rest = line.trim().strip_prefix("<!-- doc-test:")?;
    let rest = rest.trim().strip_suffix("-->").unwrap_or(rest).trim();
    Some(if rest == "synopsis" {
        Ok(Marker::Synopsis)
    } else if let Some(reason) = rest.strip_prefix("skip:") {
        Ok(Marker::Skip(reason.trim().to_string()))
    } else {
        Err(format!("unknown doc-test marker {line:?}"))
    })
}

/// Whether `line` is a crontab entry (five schedule fields, or `@daily` …).
fn is_cron(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.first().is_some_and(|w| w.starts_with('@'))
        || (words.len() > 5
            && words[..5]
                .iter()
                .all(|w| w.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c))))
}

/// The crontab line as cron runs it: the command before the first `%` that
/// is not escaped, `\%` unescaped; and what follows that `%`, which cron
/// feeds to the command's standard input (`None` when there is no such `%`).
fn cron_command(line: &str) -> (String, Option<String>) {
    let schedule = if line.trim_start().starts_with('@') {
        1
    } else {
        5
    };
    let mut rest = line.trim_start();
    for _ in 0..schedule {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    let mut out = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.peek().map(|&(_, c)| c) == Some('%') => {
                out.push('%');
                chars.next();
            }
            '%' => return (out, Some(rest[i + 1..].to_string())),
            c => out.push(c),
        }
    }
    (out, None)
}

/// Whether a word of a synopsis is a placeholder rather than a value.
fn is_placeholder(word: &str) -> bool {
    word.contains(['<', '[', '|', '…'])
        || word.contains("...")
        || (word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
}

/// The kind of a shell line of a block with no marker.
fn line_kind(text: &str) -> Kind {
    if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| text.starts_with(p)) {
        return Kind::Skipped(why.to_string());
    }
    if is_cron(text) {
        return Kind::Cron;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.first() == Some(&"contact-sync") && words.get(1) == Some(&"sandbox") {
        return Kind::Server;
    }
    Kind::Shell
}

/// The commands of a page, in order.
fn commands(page: &str) -> Result<Vec<Cmd>, String> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut pending: Option<(usize, Marker)> = None;
    let mut i = 0;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    let mut blank_before = true;
    while i < lines.len() {
        let line = lines[i];
        let number = i + 1;
        if let Some(m) = marker(line) {
            pending = Some((number, m?));
            i += 1;
            continue;
        }
        let fence = line.trim_start().strip_prefix("```");
        let indented = blank_before
            && (line.starts_with("    ") || line.starts_with('\t'))
            && !line.trim().is_empty()
            && !line.trim_start().starts_with(['-', '*', '|']);
        if fence.is_none() && !indented {
            if line.trim().is_empty() {
                inline(&paragraph, &mut out);
                paragraph.clear();
            } else {
                if let Some((at, _)) = pending {
                    return Err(format!(
                        "line {at}: a doc-test marker not followed by a block"
                    ));
                }
                paragraph.push((number, line));
            }
            blank_before = line.trim().is_empty();
            i += 1;
            continue;
        }
        inline(&paragraph, &mut out);
        paragraph.clear();
        // The block's lines, and whether only `$ ` lines are commands.
        let mut block: Vec<(usize, String)> = Vec::new();
        let (prompted, data) = if let Some(lang) = fence {
            let lang = lang.trim();
            let indent = line.len() - line.trim_start().len();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                let l = lines[i];
                block.push((i + 1, l.get(indent..).unwrap_or(l.trim_start()).to_string()));
                i += 1;
            }
            i += 1;
            if lang == "ini" {
                // A systemd unit: its ExecStart lines are commands.
                let settings: Vec<String> = block
                    .iter()
                    .map(|(_, l)| l.trim().to_string())
                    .filter(|l| l.starts_with("Environment=") || l.starts_with("LoadCredential="))
                    .collect();
                for (n, l) in &block {
                    if let Some(exec) = l.trim().strip_prefix("ExecStart=") {
                        out.push(Cmd {
                            line: *n,
                            text: exec.to_string(),
                            kind: match &pending {
                                Some((_, Marker::Skip(why))) => Kind::Skipped(why.clone()),
                                _ => Kind::Systemd(settings.clone()),
                            },
                        });
                    }
                }
                pending = None;
                blank_before = false;
                continue;
            }
            match lang {
                "" | "console" => (true, false),
                "sh" | "bash" | "shell" => (false, false),
                _ => (false, true),
            }
        } else {
            let indent = line.len() - line.trim_start().len();
            while i < lines.len()
                && (lines[i].trim().is_empty()
                    || lines[i].len() - lines[i].trim_start().len() >= indent)
            {
                block.push((i + 1, lines[i].trim().to_string()));
                i += 1;
            }
            (false, false)
        };
        blank_before = false;
        let marker = pending.take();
        if data {
            if let Some((at, _)) = marker {
                return Err(format!("line {at}: a doc-test marker before a data block"));
            }
            continue;
        }
        // Joined continuation lines.
        let mut joined: Vec<(usize, String)> = Vec::new();
        let mut open: Option<(usize, String)> = None;
        for (n, l) in block {
            let l = if prompted {
                match (&open, l.strip_prefix("$ ")) {
                    (Some(_), _) => l,
                    (None, Some(cmd)) => cmd.to_string(),
                    (None, None) => continue,
                }
            } else {
                l
            };
            let (start, mut text) = open.take().unwrap_or((n, String::new()));
            if let Some(head) = l.strip_suffix('\\') {
                text.push_str(head);
                open = Some((start, text));
                continue;
            }
            text.push_str(&l);
            let t = text.trim();
            if !t.is_empty() && !t.starts_with('#') {
                joined.push((start, t.to_string()));
            }
        }
        for (n, text) in joined {
            let kind = match &marker {
                Some((_, Marker::Skip(why))) => Kind::Skipped(why.clone()),
                Some((_, Marker::Synopsis)) => Kind::Synopsis,
                None => line_kind(&text),
            };
            out.push(Cmd {
                line: n,
                text,
                kind,
            });
        }
    }
    inline(&paragraph, &mut out);
    if let Some((at, _)) = pending {
        return Err(format!(
            "line {at}: a doc-test marker not followed by a block"
        ));
    }
    Ok(out)
}

/// The `` `contact-sync …` `` code spans of a paragraph.
fn inline(paragraph: &[(usize, &str)], out: &mut Vec<Cmd>) {
    let Some(&(first, _)) = paragraph.first() else {
        return;
    };
    let text: Vec<&str> = paragraph.iter().map(|(_, l)| l.trim()).collect();
    let text = text.join(" ");
    // Odd pieces of a split on backticks are the code spans.
    for (k, span) in text.split('`').enumerate() {
        let span = span.trim();
        if k % 2 == 0 || !(span.starts_with("contact-sync ") || span == "contact-sync") {
            continue;
        }
        let words: Vec<&str> = span.split_whitespace().skip(1).collect();
        let synopsis = words.iter().any(|w| is_placeholder(w))
            || words.iter().all(|w| {
                w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
            });
        out.push(Cmd {
            line: first,
            text: span.to_string(),
            kind: if synopsis {
                Kind::Synopsis
            } else {
                line_kind(span)
            },
        });
    }
}

/// A copy of the repository's root, with a sandbox and a shell set up to run
/// a page's commands.
struct Site {
    dir: Dir,
    sandbox: Sandbox,
    bin: PathBuf,
    log: PathBuf,
}

impl Site {
    fn new() -> Site {
        let sandbox = Sandbox::with_groups(Default::default(), 1, &["1234", "12345"]);
        let dir = Dir::new();
        let url = sandbox.url();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(dir.path("samples")).unwrap();
        for entry in std::fs::read_dir(root.join("samples")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            std::fs::write(dir.path("samples").join(&name), sample(&name, &url)).unwrap();
        }
        for (name, fixture) in FIXTURES {
            let path = dir.path(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let bytes = match fixture {
                Fixture::Sample(s) => sample(s, &url),
                Fixture::CleanExport => {
                    let mut text = csv_of(&numbers(20, 0));
                    text.push_str("06 12\n");
                    text.into_bytes()
                }
                Fixture::Key => KEY.as_bytes().to_vec(),
                Fixture::Text(t) => t.as_bytes().to_vec(),
            };
            std::fs::write(&path, bytes).unwrap();
            set_private(&path);
        }
        // The job's configs, where the cron lines keep them.
        for (name, from) in [
            ("nightly.toml", "nightly-smspartner.toml"),
            ("nightly-smspartner.toml", "nightly-smspartner.toml"),
        ] {
            let path = dir.path("sys/etc/contact-sync").join(name);
            std::fs::write(path, sample(from, &url)).unwrap();
        }
        std::fs::copy(
            root.join("samples/contacts.csv"),
            dir.path("sys/etc/contact-sync/contacts.csv"),
        )
        .unwrap();
        for d in [
            "home",
            "sys/var/log/contact-sync",
            "sys/tmp",
            ".bin",
            ".log",
        ] {
            std::fs::create_dir_all(dir.path(d)).unwrap();
        }
        let (bin, log) = (dir.path(".bin"), dir.path(".log"));
        let real = assert_cmd::cargo::cargo_bin("contact-sync");
        // The binary, recording each run's status and stderr.
        script(
            &bin.join("contact-sync"),
            &format!(
                "#!/bin/sh\nf=$(mktemp '{log}/run.XXXXXX') || exit 99\n'{real}' \"$@\" 2>\"$f.err\"\nrc=$?\ncat \"$f.err\" >&2\necho \"$rc $*\" > \"$f\"\nexit $rc\n",
                log = log.display(),
                real = real.display()
            ),
        );
        // What the cron lines call with the exit code, and an editor that
        // writes the key into the file it is given.
        script(
            &bin.join("contact-sync-alert"),
            "#!/bin/sh\ncase \"$1\" in 0|1) exit 0;; *) exit 1;; esac\n",
        );
        script(
            &bin.join("editor"),
            &format!("#!/bin/sh\nprintf '%s\\n' '{KEY}' > \"$1\"\n"),
        );
        let cargo_bin = dir.path("home/.cargo/bin");
        std::fs::create_dir_all(&cargo_bin).unwrap();
        std::os::unix::fs::symlink(bin.join("contact-sync"), cargo_bin.join("contact-sync"))
            .unwrap();
        Site {
            dir,
            sandbox,
            bin,
            log,
        }
    }

    /// `text` with the rewrites of the module comment.
    fn rewrite(&self, text: &str) -> String {
        let url = self.sandbox.url();
        let mut t = text.replace("cargo run --release -- ", "contact-sync ");
        for host in MOBIVATE_EXAMPLES {
            t = t.replace(host, &url);
        }
        t = self.system_paths(&t);
        for placeholder in ["=...", "=…"] {
            t = t.replace(
                &format!("CONTACT_SYNC_API_KEY{placeholder}"),
                &format!("CONTACT_SYNC_API_KEY={KEY}"),
            );
        }
        if t.contains("--provider smspartner") && !t.contains("--base-url") {
            t = t.replace(
                "--provider smspartner",
                &format!("--provider smspartner --base-url {url}"),
            );
        }
        t
    }

    /// `text` with the system paths of a job moved under the copy, in one
    /// pass (a moved path is under a temporary directory, which `/tmp/`
    /// must not move again); a path starts a word, a value or a redirection.
    fn system_paths(&self, text: &str) -> String {
        let bin = format!("{}/", self.bin.display());
        let mut moves: Vec<(&str, String)> = vec![("/usr/local/bin/", bin)];
        for p in SYSTEM_PATHS {
            let to = self.dir.path("sys").join(p.trim_start_matches('/'));
            let to = to.display().to_string();
            moves.push((p, if p.ends_with('/') { to + "/" } else { to }));
        }
        let mut out = String::new();
        let mut rest = text;
        let mut boundary = true;
        while let Some(c) = rest.chars().next() {
            if boundary && let Some((from, to)) = moves.iter().find(|(f, _)| rest.starts_with(f)) {
                out.push_str(to);
                rest = &rest[from.len()..];
                boundary = false;
                continue;
            }
            boundary = c.is_whitespace() || "=\"'>(<:".contains(c);
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// Runs a unit's `ExecStart=` command as systemd would: no shell, an
    /// empty environment but systemd's `PATH` and the unit's `Environment=`,
    /// `%d` the credentials directory holding the `LoadCredential=` files.
    fn systemd(&self, settings: &[String], exec: &str) -> Result<(), String> {
        let creds = self.dir.path("credentials");
        std::fs::create_dir_all(&creds).unwrap();
        let specifiers = |s: &str| {
            s.replace("%d", &creds.display().to_string())
                .replace("%%", "%")
        };
        let mut cmd = Command::new("timeout");
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            // What systemd sets for a service with User=.
            .env("HOME", self.dir.path("home"))
            .env("USER", "contact-sync")
            .env("LOGNAME", "contact-sync")
            .current_dir("/");
        for setting in settings {
            let setting = self.rewrite(setting);
            if let Some(cred) = setting.strip_prefix("LoadCredential=") {
                let (name, from) = cred
                    .split_once(':')
                    .ok_or("LoadCredential= without a path")?;
                std::fs::copy(from, creds.join(name))
                    .map_err(|e| format!("LoadCredential={cred}: {e}"))?;
            } else if let Some(env) = setting.strip_prefix("Environment=") {
                let (k, v) = env.split_once('=').ok_or("Environment= without a value")?;
                cmd.env(k, specifiers(v));
            }
        }
        let exec = specifiers(exec);
        cmd.arg("120").args(exec.split_whitespace());
        self.check(cmd, exec.contains("contact-sync"))
    }

    /// Runs a shell line (`cron`: as cron would) after `prelude`; returns
    /// what went wrong, if anything.
    fn shell(&self, prelude: &[String], text: &str, cron: bool) -> Result<(), String> {
        // A command that waits for ever fails here rather than hanging CI.
        let mut cmd = Command::new("timeout");
        cmd.args(["120", "/bin/sh"]);
        let home = self.dir.path("home");
        if cron {
            let (command, stdin) = cron_command(text);
            if let Some(stdin) = stdin {
                return Err(format!(
                    "cron ends the command at the first `%` (write `\\%`): it would run `{command}` with {stdin:?} as its input"
                ));
            }
            cmd.env_clear()
                .env("HOME", &home)
                .env("LOGNAME", "doctest")
                .env("SHELL", "/bin/sh")
                .env("PATH", "/usr/bin:/bin")
                .current_dir(&home)
                .arg("-c")
                .arg(command);
        } else {
            let path = format!(
                "{}:{}",
                self.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let script = prelude
                .iter()
                .map(String::as_str)
                .chain([text])
                .collect::<Vec<_>>()
                .join("\n");
            cmd.env("PATH", path)
                .env("HOME", &home)
                .env("EDITOR", self.bin.join("editor"))
                .env("XDG_STATE_HOME", self.dir.state_home())
                .env_remove("CONTACT_SYNC_API_KEY")
                .env_remove("CONTACT_SYNC_API_KEY_FILE")
                .env_remove("RUST_LOG")
                .current_dir(self.dir.path(""))
                .arg("-c")
                .arg(script);
        }
        self.check(cmd, text.contains("contact-sync "))
    }

    /// Runs `cmd` (no input); returns what went wrong, if anything: a status
    /// above 1, or a run of the binary (at least one when `runs_binary`)
    /// that ended above 1 or logged an error.
    fn check(&self, mut cmd: Command, runs_binary: bool) -> Result<(), String> {
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let status = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let runs = self.runs();
        let mut problems = Vec::new();
        if status > 1 {
            problems.push(format!("the command ended with status {status}: {err}"));
        }
        if runs_binary && runs.is_empty() {
            problems.push(format!("contact-sync never ran: {err}"));
        }
        for (rc, args, err) in runs {
            if rc > 1 || err.contains("error:") || err.contains("\"level\":\"ERROR\"") {
                problems.push(format!("`contact-sync {args}` exited {rc}: {err}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The runs of the binary since the last call: status, arguments, stderr.
    fn runs(&self) -> Vec<(i32, String, String)> {
        let mut runs = Vec::new();
        for entry in std::fs::read_dir(&self.log).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".err") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let (rc, args) = text
                .trim_end()
                .split_once(' ')
                .unwrap_or((text.trim_end(), ""));
            let err_path = PathBuf::from(format!("{}.err", path.display()));
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            runs.push((rc.parse().unwrap_or(-1), args.to_string(), err));
            std::fs::remove_file(&path).unwrap();
            let _ = std::fs::remove_file(err_path);
        }
        runs
    }

    /// Starts a `contact-sync sandbox …` line on a free port, waits until it
    /// listens, stops it with Ctrl-C.
    fn server(&self, text: &str) -> Result<(), String> {
        let mut args: Vec<String> = text.split_whitespace().skip(1).map(String::from).collect();
        match args.iter().position(|a| a == "--port") {
            Some(p) if p + 1 < args.len() => args[p + 1] = "0".into(),
            _ => args.extend(["--port".into(), "0".into()]),
        }
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = stderr_lines(&mut child);
        wait_for(&mut lines, "http://127.0.0.1:");
        signal(&child, "INT");
        let status = child.wait().unwrap();
        match status.code() {
            Some(0) => Ok(()),
            other => Err(format!("the server ended with {other:?} on Ctrl-C")),
        }
    }

    /// Checks a synopsis: its subcommand's help works and shows its flags.
    fn synopsis(&self, text: &str) -> Result<(), String> {
        let words: Vec<&str> = text.split_whitespace().skip(1).collect();
        let path: Vec<&str> = words
            .iter()
            .take_while(|w| !w.starts_with('-') && !is_placeholder(w))
            .copied()
            .collect();
        let out = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "`contact-sync {} --help` failed: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            let flag = flag.split('=').next().unwrap_or(flag);
            if !help.contains(flag) {
                return Err(format!(
                    "`contact-sync {} --help` has no {flag}",
                    path.join(" ")
                ));
            }
        }
        Ok(())
    }
}

/// A sample's bytes; a config pointed at the sandbox.
fn sample(name: &str, url: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(root.join("samples").join(name)).unwrap();
    if !name.ends_with(".toml") {
        return bytes;
    }
    let mut text = String::from_utf8(bytes).unwrap();
    for host in MOBIVATE_EXAMPLES {
        text = text.replace(host, url);
    }
    if !text.contains("base-url") {
        text = format!("base-url = \"{url}\"\n{text}");
    }
    text.into_bytes()
}

/// An executable script.
fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Mode 600: a key file readable by others would only warn, but a warning
/// is not what the pages show.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// Runs every command of one page; returns the problems, and the copy and
/// sandbox the commands ran against.
fn run_page(page: &Path) -> (Vec<String>, Option<Site>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = page
        .strip_prefix(root)
        .unwrap_or(page)
        .display()
        .to_string();
    let text = std::fs::read_to_string(page).unwrap();
    let cmds = match commands(&text) {
        Ok(c) => c,
        Err(e) => return (vec![format!("{name}: {e}")], None),
    };
    let started = std::time::Instant::now();
    let site = Site::new();
    let mut prelude: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for cmd in cmds {
        let text = site.rewrite(&cmd.text);
        eprintln!("{name}:{}: {:?} {}", cmd.line, cmd.kind, cmd.text);
        let at = started.elapsed();
        let result = match &cmd.kind {
            Kind::Skipped(_) => Ok(()),
            Kind::Synopsis => site.synopsis(&text),
            Kind::Server => site.server(&text),
            Kind::Cron => site.shell(&prelude, &text, true),
            Kind::Systemd(settings) => site.systemd(settings, &text),
            Kind::Shell => {
                let r = site.shell(&prelude, &text, false);
                if text.starts_with("export ") {
                    prelude.push(text.clone());
                }
                r
            }
        };
        eprintln!("{name}:{}: {:.1?}", cmd.line, started.elapsed() - at);
        if let Err(e) = result {
            problems.push(format!("{name}:{}: `{}`: {e}", cmd.line, cmd.text));
        }
    }
    (problems, Some(site))
}

#[test]
fn every_command_of_the_docs_runs() {
    let pages = pages();
    // The listing found the pages (a moved docs/ must not pass by finding none).
    for known in [
        "README.md",
        "docs/getting-started.md",
        "docs/providers/mobivate.md",
    ] {
        assert!(
            pages.iter().any(|p| p.ends_with(known)),
            "{known} not found among {pages:?}"
        );
    }
    // Pages in parallel, each with its own copy and sandbox: a page's
    // commands are a reader's session, in order.
    let runs: Vec<(PathBuf, Vec<String>, Option<Site>)> = std::thread::scope(|s| {
        let handles: Vec<_> = pages
            .chunks(1)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| {
                            let (problems, site) = run_page(p);
                            (p.clone(), problems, site)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let problems: Vec<&str> = runs
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(String::as_str))
        .collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
    let site = |page: &str| {
        runs.iter()
            .find(|(p, _, _)| p.ends_with(page))
            .and_then(|(_, _, s)| s.as_ref())
            .unwrap()
    };
    // The guide's real sync reached the provider: the sample's 43 valid rows,
    // and its files are where it says.
    let guide = site("docs/getting-started.md");
    assert_eq!(guide.sandbox.group_phones("1234").len(), 43);
    assert!(guide.dir.path("contacts.report.html").exists());
    assert!(
        guide
            .dir
            .path("home/.config/contact-sync/contacts.summary.json")
            .exists()
    );
    // The Mobivate import reached its address book (the sample's first row).
    let mobivate = site("docs/providers/mobivate.md");
    assert_eq!(
        mobivate
            .sandbox
            .state()
            .counters
            .received
            .mobivate_add_count("33647203213"),
        1
    );
    assert!(mobivate.dir.path("samples/excel-fr.report.html").exists());
    // The cron lines' job ran, and wrote where they say.
    let cron = site("docs/cron.md");
    assert!(
        cron.dir
            .path("sys/var/log/contact-sync/customers.json")
            .exists()
    );
    assert_eq!(cron.sandbox.group_phones("12345").len(), 21);
}

/// No command escapes the parser: every line of a page that starts a
/// `contact-sync` command (after a `$ ` prompt, environment assignments or
/// a crontab schedule) outside a data fence (`text`, `json`, …) is one of
/// the page's commands — a page whose blocks the parser did not recognise
/// would otherwise pass with nothing run.
#[test]
fn every_command_line_of_every_page_is_found() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for page in pages() {
        let name = page.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&page).unwrap();
        let cmds = commands(&text).unwrap();
        // In a fence: whether it holds data (no command).
        let mut fence: Option<bool> = None;
        for line in text.lines() {
            if let Some(lang) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(!matches!(
                        lang.trim(),
                        "" | "console" | "sh" | "bash" | "shell"
                    )),
                };
                continue;
            }
            let data = match fence {
                Some(data) => data,
                // Prose, unless indented as code.
                None => !line.starts_with("    "),
            };
            let l = line.trim();
            let l = l.strip_prefix("$ ").unwrap_or(l);
            let starts = l
                .split_whitespace()
                .find(|w| !w.contains('=') && !is_cron_field(w));
            if data || !starts.is_some_and(|w| w == "contact-sync" || w.ends_with("/contact-sync"))
            {
                continue;
            }
            assert!(
                cmds.iter()
                    .any(|c| c.text.contains(l.trim_end_matches('\\').trim_end())),
                "{name}: {l:?} is not among the commands found: {cmds:?}"
            );
            total += 1;
        }
    }
    assert!(total > 50, "only {total} command lines found");
}

/// A word of a crontab schedule.
fn is_cron_field(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_ascii_digit() || "*/,-".contains(c))
}

#[test]
fn the_parser_finds_each_kind_of_command() {
    let page = "\
Intro `contact-sync validate a.csv --report -` and `contact-sync man` and
`contact-sync sync FILE --dry-run`.

```console
$ contact-sync validate x.csv
output line
```

    contact-sync sandbox --port 8080
    30 2 * * *  /usr/local/bin/contact-sync sync --config job.toml --max-invalid 5\\% 2>>log; echo % rest
    cargo test

<!-- doc-test: skip: a benchmark -->

    bench/sync.sh bulk

<!-- doc-test: synopsis -->

    contact-sync validate <FILE>

```text
$ contact-sync not a command
```

```ini
[Service]
Environment=A=%d/k
ExecStart=/usr/local/bin/contact-sync -q sync --config /etc/j.toml
```
";
    let cmds = commands(page).unwrap();
    let kinds: Vec<(&str, &Kind)> = cmds.iter().map(|c| (c.text.as_str(), &c.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("contact-sync validate a.csv --report -", &Kind::Shell),
            ("contact-sync man", &Kind::Synopsis),
            ("contact-sync sync FILE --dry-run", &Kind::Synopsis),
            ("contact-sync validate x.csv", &Kind::Shell),
            ("contact-sync sandbox --port 8080", &Kind::Server),
            (
                "30 2 * * *  /usr/local/bin/contact-sync sync --config job.toml --max-invalid 5\\% 2>>log; echo % rest",
                &Kind::Cron
            ),
            ("cargo test", &Kind::Skipped(NOT_RUN[0].1.into())),
            ("bench/sync.sh bulk", &Kind::Skipped("a benchmark".into())),
            ("contact-sync validate <FILE>", &Kind::Synopsis),
            (
                "/usr/local/bin/contact-sync -q sync --config /etc/j.toml",
                &Kind::Systemd(vec!["Environment=A=%d/k".into()])
            ),
        ]
    );
    assert_eq!(
        cron_command(&cmds[5].text),
        (
            "/usr/local/bin/contact-sync sync --config job.toml --max-invalid 5% 2>>log; echo "
                .into(),
            Some(" rest".into())
        )
    );
    assert_eq!(cron_command("@daily  a 5\\% b"), ("a 5% b".into(), None));
    assert!(commands("<!-- doc-test: skip: x -->\n\ntext\n").is_err());
}
