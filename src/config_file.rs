//! `--config PATH`: a TOML file holding any input, output and sync option and
//! the column map, merged into the command line before clap checks it.
//!
//! One mechanism serves flags and file: each key of the file is the long name
//! of a flag (`group-id`, `max-retries`, `dry-run`), and becomes that flag,
//! appended to the arguments unless the command line gave the flag itself;
//! clap then parses and checks the whole as if typed. Flags win over the file
//! (per field for `[map]`). The API key is never read from the file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, NEEDS_SWITCH, NEGATIONS};
use crate::columns::Field;

/// The subcommands that take `--config`.
pub(crate) const SUBCOMMANDS: [&str; 2] = ["validate", "sync"];

/// Keys that are not a flag: the input file (the positional argument) and the
/// log format (a global flag).
const EXTRA_KEYS: [&str; 2] = ["file", "log-format"];

/// Flags that have no place in a config file.
const NOT_KEYS: [&str; 5] = ["help", "version", "config", "verbose", "quiet"];

/// Why the command line and its config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// clap refused the arguments (usage, `--help`, `--version` included).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The config file is unreadable or wrong.
    #[error("{0}")]
    File(String),
}

/// A config file key, as the file spells it and as a flag takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// The key (a flag's long name).
    pub name: String,
    /// The flag's help line.
    pub help: String,
    /// The kind of value: `true/false`, a string, a list, a table.
    pub kind: KeyKind,
    /// The subcommands the key applies to.
    pub commands: Vec<&'static str>,
}

/// What value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `true` or `false` (a switch).
    Bool,
    /// One value (string or number).
    Value,
    /// A path, relative to the config file's directory.
    Path,
    /// A list of strings (a repeatable flag).
    List,
    /// The `[map]` table: field = header.
    Map,
}

impl KeyKind {
    /// How the configuration reference names the kind.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            KeyKind::Bool => "true/false",
            KeyKind::Value => "value",
            KeyKind::Path => "path",
            KeyKind::List => "list of strings",
            KeyKind::Map => "table field = \"header\"",
        }
    }
}

/// Every key a config file may hold, from the clap definitions of
/// `validate` and `sync`, in definition order.
pub(crate) fn keys() -> Vec<Key> {
    let cmd = Cli::command();
    let mut keys: Vec<Key> = Vec::new();
    for name in SUBCOMMANDS {
        let Some(sub) = cmd.find_subcommand(name) else {
            continue;
        };
        let args = sub.get_arguments().chain(
            cmd.get_arguments()
                .filter(|a| a.get_long().is_some_and(|l| EXTRA_KEYS.contains(&l))),
        );
        for arg in args {
            if arg.is_hide_set() {
                continue;
            }
            let key = match arg.get_long() {
                // A switch's negation is a flag only: the file says `false`.
                Some(long) if NEGATIONS.iter().any(|(_, off)| *off == long) => continue,
                Some(long) if !NOT_KEYS.contains(&long) => long.to_string(),
                None if arg.get_id() == "file" => "file".to_string(),
                _ => continue,
            };
            if let Some(k) = keys.iter_mut().find(|k| k.name == key) {
                k.commands.push(name);
                continue;
            }
            let kind = if key == "map" {
                KeyKind::Map
            } else if key == "file" || arg.get_value_names() == Some(&["PATH".into()]) {
                KeyKind::Path
            } else {
                match arg.get_action() {
                    ArgAction::SetTrue => KeyKind::Bool,
                    ArgAction::Append => KeyKind::List,
                    _ => KeyKind::Value,
                }
            };
            keys.push(Key {
                name: key,
                help: arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
                kind,
                commands: vec![name],
            });
        }
    }
    // `state show|rebuild|forget --config` take the target's keys.
    if let Some(state) = cmd
        .find_subcommand("state")
        .and_then(|s| s.find_subcommand("show"))
    {
        for arg in state.get_arguments() {
            if let Some(k) = keys
                .iter_mut()
                .find(|k| Some(k.name.as_str()) == arg.get_long())
            {
                k.commands.push("state");
            }
        }
    }
    keys
}

/// The configuration reference's table (docs/configuration.md holds it, and
/// a test keeps the two equal): every key, where it applies, its value, its
/// meaning (the flag's help line).
pub fn reference_table() -> String {
    let mut out = String::from("| key | commands | value | meaning |\n|---|---|---|---|\n");
    for k in keys() {
        let kind = match negation(&k.name) {
            Some(off) => format!("{} (off for one run: `--{off}`)", k.kind.describe()),
            None => k.kind.describe().to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name,
            k.commands.join(", "),
            kind,
            k.help.replace('|', "\\|")
        ));
    }
    out
}

/// The flag that turns the switch `key` off, when it is one.
pub fn negation(key: &str) -> Option<&'static str> {
    NEGATIONS
        .iter()
        .find(|(on, _)| *on == key)
        .map(|(_, off)| *off)
}

/// Parses the command line, merging in the `--config` file when one is
/// given: the arguments clap sees are the command line's followed by the
/// file's flags that the command line did not set.
pub fn parse<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // A lenient first pass, only to learn the subcommand, the config path and
    // which flags the command line set: the file may supply the required ones.
    let mut lenient = Cli::command();
    for name in SUBCOMMANDS {
        lenient = lenient.mut_subcommand(name, |s| {
            s.mut_arg("file", |a| a.required(false)).mut_args(|a| {
                if a.get_id() == "provider" {
                    a.required(false)
                } else {
                    a
                }
            })
        });
    }
    let (merged, config) = match lenient.try_get_matches_from(&args) {
        Ok(matches) => merged_args(&args, &matches)?,
        // The strict pass below words the error (or prints --help).
        Err(_) => (args.clone(), None),
    };
    match Cli::command().try_get_matches_from(&merged) {
        Ok(matches) => Ok(Cli::from_arg_matches(&matches)?),
        // The command line alone parsed: the file's values are at fault.
        Err(e) if config.is_some() && e.use_stderr() => Err(ConfigError::File(format!(
            "--config {}: {}",
            config.unwrap_or_default().display(),
            e.render()
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The arguments with the config file's flags appended, or as given when no
/// `--config` is.
/// Also returns the config file's path, when one was given.
fn merged_args(
    args: &[OsString],
    matches: &ArgMatches,
) -> Result<(Vec<OsString>, Option<PathBuf>), ConfigError> {
    // The innermost subcommand (`sync`, `state show`) and its definition.
    let mut sub = matches;
    let mut cmd = Cli::command();
    while let Some((name, m)) = sub.subcommand() {
        let Some(c) = cmd.find_subcommand(name).cloned() else {
            return Ok((args.to_vec(), None));
        };
        cmd = c;
        sub = m;
    }
    let Some(path) = sub.try_get_one::<PathBuf>("config").ok().flatten() else {
        return Ok((args.to_vec(), None));
    };
    let table = read(path)?;
    let given = |id: &str| {
        [matches, sub]
            .iter()
            // `value_source` panics on an id the matches do not define.
            .any(|m| {
                m.try_get_raw(id).is_ok() && m.value_source(id) == Some(ValueSource::CommandLine)
            })
    };
    // A key the subcommand has no flag for is skipped: a sync config also
    // serves `validate` and `state`.
    let applies = |key: &str| {
        key == "log-format"
            || cmd
                .get_arguments()
                .any(|a| a.get_long() == Some(key) || (key == "file" && a.get_id() == "file"))
    };
    let cli_maps: Vec<Field> = sub
        .try_get_many::<String>("map")
        .ok()
        .flatten()
        .into_iter()
        .flatten()
        .filter_map(|m| m.split_once('=').and_then(|(f, _)| Field::from_name(f)))
        .collect();
    let base = path.parent().unwrap_or(Path::new(""));
    let mut flags = flags(&table, &applies, base, path)?;
    // The command line turned `switch` off.
    let off = |switch: &str| negation(switch).is_some_and(|n| given(&n.replace('-', "_")));
    flags.retain(|f| match f {
        Flag::Map(field, _) => !cli_maps.contains(field),
        // A switch the command line turns off (`--no-dry-run`), and the
        // values that mean something only with it.
        Flag::Switch(name) if off(name) => false,
        Flag::Value(name, _)
            if NEEDS_SWITCH
                .iter()
                .any(|(flag, switch)| flag == name && off(switch)) =>
        {
            false
        }
        // Nor a key whose flag conflicts with one given (`state` against
        // `--no-state`): the command line wins there too.
        other => {
            let id = other.id();
            let conflicts = cmd
                .get_arguments()
                .find(|a| a.get_id() == id.as_str())
                .map(|a| cmd.get_arg_conflicts_with(a))
                .unwrap_or_default();
            !given(&id) && !conflicts.iter().any(|c| given(c.get_id().as_str()))
        }
    });
    // The file's flags go before a `--`, after which all is positional.
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut merged = args[..end].to_vec();
    let mut file = None;
    for flag in flags {
        match flag {
            Flag::File(p) => file = Some(p),
            other => merged.push(other.to_arg()),
        }
    }
    merged.extend_from_slice(&args[end..]);
    if let Some(p) = file {
        // After `--`, a file named like a flag stays a file.
        merged.push("--".into());
        merged.push(p.into_os_string());
    }
    Ok((merged, Some(path.clone())))
}

/// One flag a config key stands for.
#[derive(Debug, Clone, PartialEq)]
enum Flag {
    /// `--NAME` (a switch).
    Switch(String),
    /// `--NAME=VALUE` (one of possibly several).
    Value(String, OsString),
    /// `--map=FIELD=HEADER`.
    Map(Field, String),
    /// The input file.
    File(PathBuf),
}

impl Flag {
    /// The clap id of the flag's argument.
    fn id(&self) -> String {
        match self {
            Flag::Switch(n) | Flag::Value(n, _) => n.replace('-', "_"),
            Flag::Map(..) => "map".into(),
            Flag::File(_) => "file".into(),
        }
    }

    fn to_arg(&self) -> OsString {
        match self {
            Flag::Switch(n) => format!("--{n}").into(),
            Flag::Value(n, v) => {
                let mut s = OsString::from(format!("--{n}="));
                s.push(v);
                s
            }
            Flag::Map(f, h) => format!("--map={}={h}", f.name()).into(),
            Flag::File(p) => p.clone().into_os_string(),
        }
    }
}

/// Reads and parses the file, refusing a key no flag has.
pub(crate) fn read(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::File(format!("--config {}: cannot read it: {e}", path.display()))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::File(format!(
            "--config {}: not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let known = keys();
    for key in table.keys() {
        if known.iter().any(|k| &k.name == key) {
            continue;
        }
        return Err(ConfigError::File(unknown_key(path, key, &known)));
    }
    Ok(table)
}

/// The message for a key no flag has: the closest valid key, and where the
/// API key goes when it looks like one.
fn unknown_key(path: &Path, key: &str, known: &[Key]) -> String {
    let folded: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if let Some((on, _)) = NEGATIONS.iter().find(|(_, off)| *off == key) {
        return format!(
            "--config {}: unknown key {key:?}: --{key} is a command-line flag; in a config file write {on} = false (or leave {on} out)",
            path.display()
        );
    }
    if folded.contains("key") || folded.contains("token") || folded.contains("secret") {
        return format!(
            "--config {}: unknown key {key:?}: the API key is never read from a config file; set the environment variable {} or name a file holding it in {}",
            path.display(),
            crate::secret::ENV_VAR,
            crate::secret::FILE_ENV_VAR
        );
    }
    match closest(key, known.iter().map(|k| k.name.as_str())) {
        Some(name) => format!(
            "--config {}: unknown key {key:?}; the closest valid key is {name:?} (every key is a flag's long name, see docs/configuration.md)",
            path.display()
        ),
        None => format!("--config {}: unknown key {key:?}", path.display()),
    }
}

/// The flags `table` stands for, of the keys that `applies` to the subcommand.
fn flags(
    table: &toml::Table,
    applies: &dyn Fn(&str) -> bool,
    base: &Path,
    path: &Path,
) -> Result<Vec<Flag>, ConfigError> {
    let known = keys();
    let mut out = Vec::new();
    let bad = |key: &str, expected: &str, value: &toml::Value| {
        ConfigError::File(format!(
            "--config {}: key {key:?}: expected {expected}, found {} {}",
            path.display(),
            value.type_str(),
            value
        ))
    };
    for (name, value) in table {
        let Some(key) = known.iter().find(|k| &k.name == name) else {
            continue;
        };
        if !applies(name) {
            continue;
        }
        match key.kind {
            KeyKind::Bool => match value {
                toml::Value::Boolean(true) => out.push(Flag::Switch(name.clone())),
                toml::Value::Boolean(false) => {}
                other => return Err(bad(name, "true or false", other)),
            },
            KeyKind::Value => out.push(Flag::Value(
                name.clone(),
                scalar(value)
                    .ok_or_else(|| bad(name, "a string or a number", value))?
                    .into(),
            )),
            KeyKind::Path => {
                let toml::Value::String(s) = value else {
                    return Err(bad(name, "a path (a string)", value));
                };
                let p = resolve(base, s);
                if name == "file" {
                    out.push(Flag::File(p));
                } else {
                    out.push(Flag::Value(name.clone(), p.into_os_string()));
                }
            }
            KeyKind::List => {
                let items: Vec<&toml::Value> = match value {
                    toml::Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                for item in items {
                    let toml::Value::String(s) = item else {
                        return Err(bad(name, "a string or a list of strings", item));
                    };
                    out.push(Flag::Value(name.clone(), s.into()));
                }
            }
            KeyKind::Map => {
                let toml::Value::Table(t) = value else {
                    return Err(bad(
                        name,
                        "a table such as [map] phoneNumber = \"Mobile\"",
                        value,
                    ));
                };
                for (field, header) in t {
                    let f = Field::from_name(field).ok_or_else(|| {
                        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                        let closest = closest(field, names.iter().copied());
                        ConfigError::File(format!(
                            "--config {}: [map] has unknown field {field:?}{}; fields are {}",
                            path.display(),
                            closest
                                .map(|c| format!(" (did you mean {c:?}?)"))
                                .unwrap_or_default(),
                            names.join(", ")
                        ))
                    })?;
                    let toml::Value::String(h) = header else {
                        return Err(bad(&format!("map.{field}"), "a header (a string)", header));
                    };
                    out.push(Flag::Map(f, h.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// A string or number as a flag value.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// A path from the file: `-` stays, a relative one is taken from the file's directory.
fn resolve(base: &Path, s: &str) -> PathBuf {
    let p = Path::new(s);
    if s == "-" || p.is_absolute() || base.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `contact-sync config check PATH [FILE]`: parses the file as a run
/// would, checks every setting (no input read, no key needed, nothing sent),
/// and with an input file resolves the column map against its header.
/// Prints what it found on stdout; a problem is an `Err` (exit 2).
pub(crate) fn check(path: &Path, file: Option<&Path>) -> Result<u8, crate::config::Error> {
    use crate::cli::Command;
    use crate::config::{Error, InputConfig, OutputConfig};
    let usage = |e: ConfigError| match e {
        ConfigError::Clap(c) => Error::Usage(format!(
            "{}: {}",
            path.display(),
            c.render()
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
        )),
        ConfigError::File(m) => Error::Usage(m),
    };
    let table = read(path).map_err(usage)?;
    let command = if table.contains_key("provider") {
        "sync"
    } else {
        "validate"
    };
    let mut args: Vec<OsString> = vec![
        "contact-sync".into(),
        command.into(),
        "--config".into(),
        path.into(),
    ];
    // The input to map: FILE, else the config's own when it exists.
    let from_config = table
        .get("file")
        .and_then(toml::Value::as_str)
        .map(|f| resolve(path.parent().unwrap_or(Path::new("")), f));
    let input = file
        .map(Path::to_path_buf)
        .or_else(|| from_config.clone().filter(|p| p.exists()));
    match &input {
        Some(f) => {
            args.push("--".into());
            args.push(f.into());
        }
        // A stand-in so the settings can be checked without an input.
        None if from_config.is_none() => args.push("-".into()),
        None => {}
    }
    let cli = parse(args).map_err(usage)?;
    let mut out = String::new();
    let input_args = match &cli.command {
        Command::Sync(a) => {
            crate::sync::check(a)?;
            out.push_str(&format!(
                "{}: valid: settings for `contact-sync sync` ({} keys)\n",
                path.display(),
                table.len()
            ));
            if a.provider != crate::cli::ProviderKind::Sandbox {
                match crate::secret::ApiKey::from_env() {
                    Ok(_) => out.push_str("API key: found in the environment\n"),
                    Err(e) => out.push_str(&format!(
                        "API key: not usable here ({e}); a sync will need it\n"
                    )),
                }
            }
            a.input.clone()
        }
        Command::Validate(a) => {
            let mut i = InputConfig::from_args(&a.input)?;
            i.set_default_group(a.group_id.as_deref())?;
            OutputConfig::from_args(&a.output, &i.source)?;
            crate::config::MaxInvalid::from_arg(a.max_invalid.as_deref())?;
            out.push_str(&format!(
                "{}: valid: settings for `contact-sync validate` ({} keys; no provider, so not for sync)\n",
                path.display(),
                table.len()
            ));
            a.input.clone()
        }
        _ => return Err(Error::Runtime("config check parsed another command".into())),
    };
    match &input {
        Some(f) => out.push_str(&column_map(f, &input_args)?),
        None => match from_config {
            Some(p) => out.push_str(&format!(
                "column map not checked: the config's file {} does not exist (yet); pass a sample export as FILE to check it\n",
                p.display()
            )),
            None => out.push_str("column map not checked: pass an input file as FILE to check it\n"),
        },
    }
    print!("{out}");
    Ok(crate::codes::exit::OK)
}

/// The column map `config check` prints: which column each field reads from
/// input `f` (opened with `input`), and the columns ignored.
fn column_map(f: &Path, input: &crate::cli::InputArgs) -> Result<String, crate::config::Error> {
    let opened = crate::config::InputConfig::from_args(input)?.open()?;
    let header = opened.reader.header();
    let mut out = format!("columns of {}:\n", f.display());
    for field in Field::ALL {
        if let Some(i) = opened.map.get(field) {
            let name = header.get(i).map(String::as_str).unwrap_or("");
            out.push_str(&format!(
                "  {:<12} <- {} (column {})\n",
                field.name(),
                crate::words::quote(name),
                i + 1
            ));
        }
    }
    if !opened.ignored.is_empty() {
        out.push_str(&format!("  ignored: {}\n", opened.ignored.join(", ")));
    }
    Ok(out)
}

/// The candidate closest to `key`: one it begins (or that begins it), else
/// the fewest edits away, case aside.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    candidates
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let prefix = lower.starts_with(&key) || key.starts_with(&lower);
            ((!prefix, distance(&key, &lower)), c)
        })
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance between two keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("group_id", "group-id"), 1);
        assert_eq!(distance("rate", "rate"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn keys_are_the_flags() {
        let keys = keys();
        let find = |n: &str| keys.iter().find(|k| k.name == n);
        assert_eq!(find("dry-run").map(|k| k.kind), Some(KeyKind::Bool));
        assert_eq!(find("map").map(|k| k.kind), Some(KeyKind::Map));
        assert_eq!(find("report").map(|k| k.kind), Some(KeyKind::Path));
        assert_eq!(find("file").map(|k| k.kind), Some(KeyKind::Path));
        assert_eq!(find("date-format").map(|k| k.kind), Some(KeyKind::List));
        assert_eq!(find("rate").map(|k| k.commands.clone()), Some(vec!["sync"]));
        assert_eq!(
            find("group-id").map(|k| k.commands.clone()),
            Some(vec!["validate", "sync", "state"])
        );
        assert!(find("log-format").is_some());
        for absent in ["config", "help", "threads", "verbose", "quiet"] {
            assert!(find(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn every_switch_key_has_its_negation_on_the_same_commands() {
        let cmd = Cli::command();
        let longs = |path: &[&str]| -> Vec<String> {
            let mut c = &cmd;
            for p in path {
                c = c.find_subcommand(p).unwrap_or(c);
            }
            c.get_arguments()
                .filter_map(|a| a.get_long().map(String::from))
                .collect()
        };
        for key in keys().iter().filter(|k| k.kind == KeyKind::Bool) {
            let off = negation(&key.name)
                .unwrap_or_else(|| panic!("{} has no --no-{} in NEGATIONS", key.name, key.name));
            for command in &key.commands {
                let path: &[&str] = if *command == "state" {
                    &["state", "show"]
                } else {
                    &[command]
                };
                assert!(
                    longs(path).contains(&off.to_string()),
                    "{command} lacks --{off}"
                );
            }
        }
        // Each value that needs a switch is refused without it (clap's `requires`).
        for (flag, switch) in NEEDS_SWITCH {
            let args = [
                "contact-sync",
                "sync",
                "f.csv",
                "--provider",
                "sandbox",
                &format!("--{flag}"),
                "x",
            ];
            assert!(
                Cli::command().try_get_matches_from(args).is_err(),
                "--{flag} without --{switch}"
            );
        }
    }

    #[test]
    fn unknown_keys_name_the_closest() {
        let msg = unknown_key(Path::new("c.toml"), "group_id", &keys());
        assert!(
            msg.contains("\"group_id\"") && msg.contains("\"group-id\""),
            "{msg}"
        );
        assert_eq!(
            closest("phone", ["date", "phoneNumber"].into_iter()),
            Some("phoneNumber")
        );
        assert_eq!(
            closest("Rates", ["rate", "state"].into_iter()),
            Some("rate")
        );
        let msg = unknown_key(Path::new("c.toml"), "api_key", &keys());
        assert!(msg.contains("CONTACT_SYNC_API_KEY"), "{msg}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        assert_eq!(
            resolve(Path::new("/etc/cs"), "r.csv"),
            PathBuf::from("/etc/cs/r.csv")
        );
        assert_eq!(
            resolve(Path::new("/etc/cs"), "/tmp/r.csv"),
            PathBuf::from("/tmp/r.csv")
        );
        assert_eq!(resolve(Path::new("/etc/cs"), "-"), PathBuf::from("-"));
        assert_eq!(resolve(Path::new(""), "r.csv"), PathBuf::from("r.csv"));
    }
}
