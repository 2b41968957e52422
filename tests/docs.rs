//! The commands of the getting-started guide and the provider pages, run as
//! a reader would run them from the repository's root; those aimed at a
//! real provider go to a sandbox through `--base-url`.

use std::path::Path;

use crate::util::{Dir, KEY, Sandbox, code, stderr};

const PAGES: [&str; 3] = [
    "docs/getting-started.md",
    "docs/providers/smspartner.md",
    "docs/providers/mobivate.md",
];

/// The host the Mobivate examples use, standing for the one Mobivate gives.
const MOBIVATE_EXAMPLE: &str = "https://api.mobivate.example";

/// The `$ contact-sync …` lines of a page's console blocks.
fn commands(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_console = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if let (true, Some(cmd)) = (in_console, line.strip_prefix("$ contact-sync ")) {
            out.push(cmd.to_string());
        }
    }
    out
}

/// The repository's samples, with the configs pointed at the sandbox.
fn samples_in(dir: &Dir, url: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path("samples")).unwrap();
    for entry in std::fs::read_dir(root.join("samples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut bytes = std::fs::read(&path).unwrap();
        if name.ends_with(".toml") {
            let text = String::from_utf8(bytes)
                .unwrap()
                .replace(MOBIVATE_EXAMPLE, url);
            let text = if text.contains("base-url") {
                text
            } else {
                format!("base-url = \"{url}\"\n{text}")
            };
            bytes = text.into_bytes();
        }
        std::fs::write(dir.path("samples").join(name), bytes).unwrap();
    }
}

#[test]
fn every_command_of_the_guide_and_the_provider_pages_runs() {
    let sb = Sandbox::with_groups(Default::default(), 1, &["1234"]);
    let url = sb.url();
    let dir = Dir::new();
    samples_in(&dir, &url);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for page in PAGES {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let cmds = commands(&text);
        assert!(!cmds.is_empty(), "{page} has no command");
        for cmd in cmds {
            let mut args: Vec<String> = cmd
                .split_whitespace()
                .map(|a| {
                    if a == MOBIVATE_EXAMPLE {
                        url.clone()
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            if args.iter().any(|a| a == "smspartner") && !args.iter().any(|a| a == "--base-url") {
                args.extend(["--base-url".to_string(), url.clone()]);
            }
            let out = dir
                .command()
                .env("CONTACT_SYNC_API_KEY", KEY)
                .args(&args)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert!(
                code(&out) <= 1,
                "{page}: `contact-sync {cmd}` exited {}: {err}",
                code(&out)
            );
            assert!(
                !err.contains("error:"),
                "{page}: `contact-sync {cmd}`: {err}"
            );
        }
    }
    // The guide's real sync reached the provider: the sample's 43 valid rows.
    assert_eq!(sb.group_phones("1234").len(), 43);
    // And the Mobivate import its address book (the excel-fr sample's first row).
    assert_eq!(
        sb.state()
            .counters
            .received
            .mobivate_add_count("33647203213"),
        1
    );
    assert!(dir.path("contacts.report.html").exists());
    assert!(dir.path("samples/excel-fr.report.html").exists());
}
