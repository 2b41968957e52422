//! `--config`: a TOML file under the flags, the key from the environment
//! only, `config check`, completions and the man page.

use std::path::{Path, PathBuf};

use crate::util::{Dir, KEY, Sandbox, code, outcomes, stderr};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

const ROWS: &str = "phone,firstname\n0611111111,Ann\n0622222222,Bob\n";

/// A dir holding `in.csv` (two rows) and `job.toml`: a sync of it into
/// group g2 of `sb`, plus `extra` lines.
fn job(sb: &Sandbox, extra: &str) -> Dir {
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    dir.write(
        "job.toml",
        format!(
            "file = \"in.csv\"\nprovider = \"smspartner\"\nbase-url = \"{}\"\ngroup-id = \"g2\"\n{extra}",
            sb.url()
        ),
    );
    dir
}

#[test]
fn the_file_sets_options_and_flags_win() {
    let sb = Sandbox::calm();
    let dir = job(
        &sb,
        "report = \"from-config.csv\"\nrejects = \"rejects.csv\"\n",
    );
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .args(["sync", "--config", "job.toml", "--report", "from-flag.csv"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The flag's report, not the file's; the file's rejects and group.
    assert!(dir.path("from-flag.csv").exists());
    assert!(!dir.path("from-config.csv").exists());
    assert!(dir.path("rejects.csv").exists());
    assert_eq!(sb.group_phones("g2").len(), 2);
    assert!(sb.group_phones("g1").is_empty());
    assert_eq!(outcomes(&dir.report("from-flag.csv"))["added"], 2);
}

#[test]
fn state_commands_take_the_target_from_the_config() {
    let sb = Sandbox::calm();
    let dir = job(&sb, "rate = 50\n");
    let out = crate::util::sync(&dir, &["--config", "job.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = dir.run(&["state", "show", "--config", "job.toml"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(shown.contains("group g2"), "{shown}");
    assert!(!shown.contains("no state store"), "{shown}");
    // A flag still wins: another group has no store yet.
    let out = dir.run(&["state", "show", "--config", "job.toml", "--group-id", "g1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no state store"));
}

#[test]
fn a_flag_wins_over_a_key_it_conflicts_with() {
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    dir.write("job.toml", "provider = \"sandbox\"\nstate = \"job.db\"\n");
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml", "--no-state"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !dir.path("job.db").exists(),
        "--no-state won over the file's state"
    );
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dir.path("job.db").exists(), "the file's state is used");
}

#[test]
fn a_flag_wins_per_field_of_the_map() {
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", "Cell,Home,Name\n0611111111,0622222222,Ann\n");
    dir.write(
        "job.toml",
        "[map]\nphoneNumber = \"Home\"\nfirstname = \"Name\"\n",
    );
    let url = sb.url();
    let out = crate::util::sync(
        &dir,
        &[
            "in.csv",
            "--config",
            "job.toml",
            "--provider",
            "smspartner",
            "--base-url",
            &url,
            "--group-id",
            "g1",
            "--map",
            "phoneNumber=Cell",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let phones = sb.group_phones("g1");
    assert_eq!(phones.keys().collect::<Vec<_>>(), ["+33611111111"]);
    assert_eq!(sb.state().group("g1")[0].firstname, "Ann");
}

#[test]
fn an_unknown_key_is_named_with_the_closest_valid_one() {
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    dir.write("job.toml", "provider = \"sandbox\"\nmax_retries = 3\n");
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("\"max_retries\"") && err.contains("\"max-retries\""),
        "{err}"
    );
    assert!(!dir.path("in.report.csv").exists(), "nothing is written");
}

#[test]
fn the_key_is_never_read_from_the_file() {
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    dir.write(
        "job.toml",
        format!("provider = \"sandbox\"\napi-key = \"{KEY}\"\n"),
    );
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("CONTACT_SYNC_API_KEY_FILE"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn a_wrong_value_names_the_config_file() {
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    dir.write("job.toml", "provider = \"sandbox\"\ndry-run = \"yes\"\n");
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("job.toml: key \"dry-run\": expected true or false"),
        "{}",
        stderr(&out)
    );
    dir.write("job.toml", "provider = \"carrier-pigeon\"\n");
    let out = dir.run(&["sync", "in.csv", "--config", "job.toml"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("--config job.toml: invalid value 'carrier-pigeon'"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn the_key_comes_from_the_file_named_in_the_environment_with_a_warning_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::calm();
    let dir = Dir::new();
    dir.write("in.csv", ROWS);
    let key = dir.write("key", format!("{KEY}\n"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = sb.url();
    let args = [
        "sync",
        "in.csv",
        "--provider",
        "smspartner",
        "--base-url",
        &url,
        "--group-id",
        "g1",
        "-vv",
    ];
    // The key from the file only, or from both variables.
    let run = |both: bool| {
        let mut cmd = dir.command();
        if both {
            cmd.env("CONTACT_SYNC_API_KEY", KEY);
        } else {
            cmd.env_remove("CONTACT_SYNC_API_KEY");
        }
        cmd.env("CONTACT_SYNC_API_KEY_FILE", &key)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("can be read by other users (mode 644)"),
        "{}",
        stderr(&out)
    );
    crate::util::assert_key_absent(&out, &dir, &["in.report.csv"]);
    assert_eq!(sb.group_phones("g1").len(), 2);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("other users"), "{}", stderr(&out));

    // Both set: which is meant is unclear.
    let out = run(true);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unset one"), "{}", stderr(&out));
}

#[test]
fn config_check_passes_on_the_samples_and_shows_the_column_map() {
    let dir = Dir::new();
    for (config, column) in [
        (
            "nightly-smspartner.toml",
            "phoneNumber  <- \"phone\" (column 1)",
        ),
        (
            "mobivate-import.toml",
            "phoneNumber  <- \"Téléphone\" (column 1)",
        ),
    ] {
        let out = dir
            .command()
            .env_remove("CONTACT_SYNC_API_KEY")
            .args(["config", "check", sample(config).to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(code(&out), 0, "{config}: {stdout}{}", stderr(&out));
        assert!(stdout.contains("valid"), "{stdout}");
        assert!(stdout.contains(column), "{stdout}");
        assert!(stdout.contains("API key: not usable here"), "{stdout}");
    }
    assert!(
        dir.path("").read_dir().unwrap().next().is_none(),
        "check writes nothing"
    );
}

#[test]
fn config_check_refuses_a_bad_config_and_a_map_the_file_does_not_fit() {
    let dir = Dir::new();
    dir.write("job.toml", "provider = \"mobivate\"\n");
    let out = dir.run(&["config", "check", "job.toml"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--base-url"), "{}", stderr(&out));

    dir.write(
        "job.toml",
        "provider = \"sandbox\"\n[map]\nphoneNumber = \"Cell\"\n",
    );
    dir.write("in.csv", ROWS);
    let out = dir.run(&["config", "check", "job.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("column map not checked"));
    let out = dir.run(&["config", "check", "job.toml", "in.csv"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("\"Cell\""), "{}", stderr(&out));

    dir.write("job.toml", "[map]\nphone = \"Cell\"\n");
    let out = dir.run(&["config", "check", "job.toml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("did you mean \"phoneNumber\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_nightly_sample_drives_a_sandbox_run() {
    let dir = Dir::new();
    std::fs::copy(sample("contacts.csv"), dir.path("contacts.csv")).unwrap();
    std::fs::copy(sample("nightly-smspartner.toml"), dir.path("nightly.toml")).unwrap();
    // The provider and group from the command line, all else from the file.
    let out = dir.run(&[
        "sync",
        "--config",
        "nightly.toml",
        "--provider",
        "sandbox",
        "--group-id",
        "sandbox",
    ]);
    assert_eq!(
        code(&out),
        1,
        "the sample has invalid rows: {}",
        stderr(&out)
    );
    let counts = outcomes(&dir.report("contacts.report.csv"));
    assert_eq!(counts["added"], 43, "{counts:?}");
    assert_eq!(counts["invalid"], 11, "{counts:?}");
    assert!(dir.read("contacts.rejects.csv").contains("error_code"));
    let summary: serde_json::Value =
        serde_json::from_str(&dir.read("contacts.summary.json")).unwrap();
    assert_eq!(summary["outcomes"]["added"], 43, "{summary}");
    // log-format = "json" from the file: every stderr line is JSON.
    for line in stderr(&out).lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }
    // The same file serves validate, which skips the sync-only keys.
    let out = dir.run(&["validate", "--config", "nightly.toml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or("").to_string();
    let summary: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        summary["fields"]["summary"]["outcomes"]["valid"], 43,
        "{last}"
    );
    assert_eq!(
        summary["fields"]["rejects"], "contacts.rejects.csv",
        "{last}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let dir = Dir::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = dir.run(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["validate", "sync", "dry-run", "config", "completions"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
}

#[test]
fn completions_and_the_man_page_piped_to_a_reader_that_stops_end_quietly() {
    use std::process::{Command, Stdio};
    for args in [["completions", "bash"], ["man", "--"]] {
        let args: Vec<&str> = args.into_iter().filter(|a| *a != "--").collect();
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("contact-sync"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before a byte is read, like `| head -0`.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn the_man_page_holds_every_flag_and_the_examples() {
    use clap::CommandFactory;
    let dir = Dir::new();
    let out = dir.run(&["man"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    let cmd = contact_sync::cli::Cli::command();
    let nested = cmd.get_subcommands().flat_map(|s| s.get_subcommands());
    for sub in cmd.get_subcommands().chain(nested) {
        for arg in sub.get_arguments() {
            if let (Some(long), false) = (arg.get_long(), arg.is_hide_set()) {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&roff), "{} --{long} missing", sub.get_name());
            }
        }
    }
    assert!(
        page.contains("nightly.toml"),
        "the examples are in the page"
    );
}

#[test]
fn help_shows_the_three_uses() {
    for args in [&["--help"][..], &["sync", "--help"]] {
        let out = Dir::new().run(args);
        assert_eq!(code(&out), 0);
        let help = String::from_utf8_lossy(&out.stdout);
        for use_ in ["Nightly job", "One-off import", "Dry run"] {
            assert!(help.contains(use_), "{args:?}: {help}");
        }
    }
}

#[test]
fn the_configuration_reference_matches_the_flags() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let table = contact_sync::config_file::reference_table();
    if std::env::var_os("UPDATE_DOCS").is_some() && !doc.contains(&table) {
        let start = doc.find("| key | commands |").unwrap();
        let end = doc[start..]
            .find("\n\n")
            .map_or(doc.len(), |e| start + e + 1);
        let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc.contains(&table),
        "docs/configuration.md's table differs from the flags; run UPDATE_DOCS=1 cargo test --test integration config::the_configuration_reference"
    );
}

#[test]
fn the_config_check_example_is_what_it_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let start = doc.find("```text\n").unwrap() + "```text\n".len();
    let shown = &doc[start..start + doc[start..].find("```").unwrap()];
    let out = Dir::new()
        .command()
        .current_dir(root)
        .env_remove("CONTACT_SYNC_API_KEY")
        .env_remove("CONTACT_SYNC_API_KEY_FILE")
        .args(["config", "check", "samples/nightly-smspartner.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), shown);
}

/// Runs `sync --config job.toml` in `dir` with `extra` flags; it must exit 0.
fn run_job(dir: &Dir, extra: &[&str]) {
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .args(["sync", "--config", "job.toml"])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{extra:?}: {}", stderr(&out));
}

/// A switch a config file turns on is turned off for one run by its
/// `--no-X` flag; and a flag turns on what the file leaves off.
#[test]
fn a_no_flag_turns_off_a_switch_the_file_turns_on_and_the_reverse() {
    let sb = Sandbox::calm();
    let dir = job(&sb, "dry-run = true\n");
    let run = |extra: &[&str]| {
        run_job(&dir, extra);
        outcomes(&dir.report("in.report.csv"))
    };
    assert_eq!(run(&[])["would_add"], 2);
    assert!(sb.group_phones("g2").is_empty());
    // The last of --dry-run / --no-dry-run wins, as in ripgrep.
    assert_eq!(run(&["--no-dry-run", "--dry-run"])["would_add"], 2);
    assert!(sb.group_phones("g2").is_empty());
    assert_eq!(run(&["--no-dry-run"])["added"], 2);
    assert_eq!(sb.group_phones("g2").len(), 2);

    // The reverse: the file says false, the flag turns it on.
    let dir = job(&sb, "dry-run = false\n");
    let out = dir
        .command()
        .env("CONTACT_SYNC_API_KEY", KEY)
        .args([
            "sync",
            "--config",
            "job.toml",
            "--dry-run",
            "--group-id",
            "g1",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(outcomes(&dir.report("in.report.csv"))["would_add"], 2);
    assert!(sb.group_phones("g1").is_empty());
}

/// `--no-delete-missing` also drops the file's `max-delete` (which means
/// nothing without it, and clap would refuse alone): the nightly mirror job
/// can be run once without deleting.
#[test]
fn no_delete_missing_turns_the_files_mirror_mode_off() {
    let sb = Sandbox::calm();
    let dir = job(&sb, "delete-missing = true\nmax-delete = \"100%\"\n");
    let run = |extra: &[&str]| run_job(&dir, extra);
    run(&[]);
    assert_eq!(sb.group_phones("g2").len(), 2);
    // Bob leaves the export.
    dir.write("in.csv", "phone,firstname\n0611111111,Ann\n");
    run(&["--no-delete-missing"]);
    assert_eq!(sb.group_phones("g2").len(), 2, "nothing deleted");
    assert!(!dir.path("in.deleted.csv").exists());
    run(&[]);
    assert_eq!(
        sb.group_phones("g2").len(),
        1,
        "the file's mirror mode deletes"
    );
}

/// The input switches, on `validate`, and `no-state` with `--use-state`.
#[test]
fn every_switch_of_a_config_has_a_flag_that_turns_it_off() {
    let dir = Dir::new();
    dir.write(
        "in.csv",
        "phone,firstname\n0611111111,Maximilienne-Alexandrine-Eleonore\n0140000000,Bob\n",
    );
    dir.write(
        "v.toml",
        "file = \"in.csv\"\ntruncate-names = true\nmobile-only = true\n",
    );
    let codes = |extra: &[&str]| {
        let out = dir
            .command()
            .args(["validate", "--config", "v.toml"])
            .args(extra)
            .output()
            .unwrap();
        assert!(code(&out) <= 1, "{extra:?}: {}", stderr(&out));
        dir.report("in.report.csv")
            .into_iter()
            .map(|l| l.code)
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&[]), ["", "PHONE_NOT_MOBILE"]);
    assert_eq!(
        codes(&["--no-truncate-names"]),
        ["FIRSTNAME_TOO_LONG", "PHONE_NOT_MOBILE"]
    );
    assert_eq!(codes(&["--no-mobile-only"]), ["", ""]);

    // no-state = true in the file; --use-state brings the store back.
    let sb = Sandbox::calm();
    let dir = job(&sb, "no-state = true\n");
    let stores = |dir: &Dir| {
        walk(&dir.state_home())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
            .count()
    };
    let out = crate::util::sync(&dir, &["--config", "job.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stores(&dir), 0);
    let out = crate::util::sync(&dir, &["--config", "job.toml", "--use-state"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stores(&dir), 1);

    // The negations are flags, not keys: the file says false.
    dir.write("bad.toml", "no-dry-run = true\n");
    let out = dir.run(&["config", "check", "bad.toml"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("dry-run = false"), "{}", stderr(&out));

    // Completions and the man page know them.
    let out = dir.run(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--no-dry-run"));
    let out = dir.run(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no\\-delete\\-missing"));
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
