//! Validated settings built once from the raw flags, before any I/O starts:
//! nothing downstream re-checks them.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::cli::{InputArgs, OutputArgs};
use crate::columns::{ColumnMap, Field, MapError};
use crate::input::InputBytes;
use crate::normalize::{NormalizeOptions, Normalizer, OptionsError};
use crate::reader::{CsvReader, ReadError, ReaderOptions};
use crate::report::{Target, WriteError};

/// A problem that stops the run before (or instead of) sending anything: exit 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value is unusable.
    #[error("{0}")]
    Usage(String),
    /// The input cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The input is unreadable as a whole.
    #[error("{path}: {source}")]
    Read {
        /// The input's name.
        path: String,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The header cannot be mapped.
    #[error("{path}: {source}")]
    Map {
        /// The input's name.
        path: String,
        /// Why.
        #[source]
        source: MapError,
    },
    /// Normalisation options are wrong.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// An output cannot be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The input's bytes cannot be had (unreadable, too large to spool, not CSV).
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// The run's own machinery failed (runtime, sandbox, a worker).
    #[error("{0}")]
    Runtime(String),
    /// The run stopped after sending had begun (exit 3).
    #[error("{0}")]
    Aborted(String),
}

impl Error {
    /// The process exit code for this error (SPEC §2): 3 once anything may
    /// have been sent, else 2.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Aborted(_) => crate::codes::exit::ABORTED,
            _ => crate::codes::exit::NOTHING_SENT,
        }
    }
}

/// A share or a count of invalid rows beyond which nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MaxInvalid {
    /// At most this many invalid rows.
    Count(u64),
    /// At most this percentage of the rows.
    Percent(f64),
}

impl MaxInvalid {
    /// `N` or `N%`, given to `--max-invalid`.
    pub(crate) fn parse(s: &str) -> Result<MaxInvalid, Error> {
        MaxInvalid::parse_for("--max-invalid", s)
    }

    /// `N` or `N%`, given to `flag` (the same form serves `--max-delete`).
    pub(crate) fn parse_for(flag: &str, s: &str) -> Result<MaxInvalid, Error> {
        let bad = || {
            Error::Usage(format!(
                "{flag} {}: expected a count like 10 or a share like 5%",
                crate::words::quote(s)
            ))
        };
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if (0.0..=100.0).contains(&p) {
                    Ok(MaxInvalid::Percent(p))
                } else {
                    Err(bad())
                }
            }
            None => s.trim().parse().map(MaxInvalid::Count).map_err(|_| bad()),
        }
    }

    /// The flag's value parsed from `arg`, if given.
    pub(crate) fn from_arg(arg: Option<&str>) -> Result<Option<MaxInvalid>, Error> {
        arg.map(MaxInvalid::parse).transpose()
    }

    /// Why a run is refused by this limit: `3 of 4 rows are invalid, more than --max-invalid 25% allows`.
    pub(crate) fn refusal(self, invalid: u64, rows: u64) -> String {
        let limit = match self {
            MaxInvalid::Count(n) => n.to_string(),
            MaxInvalid::Percent(p) => format!("{p}%"),
        };
        format!("{invalid} of {rows} rows are invalid, more than --max-invalid {limit} allows")
    }

    /// Whether `invalid` of `rows` is more than allowed.
    pub(crate) fn exceeded(self, invalid: u64, rows: u64) -> bool {
        match self {
            MaxInvalid::Count(n) => invalid > n,
            MaxInvalid::Percent(p) => rows > 0 && (invalid as f64) * 100.0 > p * rows as f64,
        }
    }
}

/// Where the input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// A name for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// The default report path: `<input stem>.report.csv` in the current directory.
    pub(crate) fn default_report(&self) -> Target {
        let stem = match self {
            Source::Stdin => "stdin".to_string(),
            Source::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into()),
        };
        Target::File(PathBuf::from(format!("{stem}.report.csv")))
    }

    /// Opens the byte stream. A regular file is read up to the length it
    /// had when opened, as `sync` reads it: its bytes come back too, to tell
    /// whether the file grew meanwhile.
    pub(crate) fn open(&self) -> Result<(Box<dyn Read + Send>, Option<InputBytes>), Error> {
        match self {
            Source::Stdin => Ok((Box::new(io::stdin()), None)),
            Source::File(p) => {
                let file = File::open(p).map_err(|source| Error::Open {
                    path: p.display().to_string(),
                    source,
                })?;
                Ok(match InputBytes::regular(file) {
                    Ok(bytes) => (Box::new(bytes.reader()), Some(bytes)),
                    Err(other) => (Box::new(other), None),
                })
            }
        }
    }
}

/// Validated input settings.
#[derive(Debug, Clone)]
pub(crate) struct InputConfig {
    /// Where rows come from.
    pub source: Source,
    /// Delimiter and encoding.
    pub reader: ReaderOptions,
    /// `--map` overrides.
    pub overrides: Vec<(Field, String)>,
    /// The row normaliser.
    pub normalizer: Normalizer,
}

/// An opened input: reader past the header, and the resolved columns.
pub(crate) struct OpenInput {
    /// The record stream.
    pub reader: CsvReader<Box<dyn Read + Send>>,
    /// Which column holds which field.
    pub map: ColumnMap,
    /// Header cells no field uses.
    pub ignored: Vec<String>,
    /// A regular file's bytes as opened, when [`InputConfig::open`] opened it.
    pub(crate) bytes: Option<InputBytes>,
}

/// How many ignored columns the warning names; a hostile header can have
/// 100,000 of them, and one log line must stay readable.
const NAMED_IGNORED: usize = 20;

impl OpenInput {
    /// The warning naming the ignored columns (the first few, invisible
    /// characters named in words), if there are any.
    pub(crate) fn ignored_warning(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let named: Vec<_> = self
            .ignored
            .iter()
            .take(NAMED_IGNORED)
            .map(|h| {
                if h.chars().any(|c| crate::words::invisible(c).is_some()) {
                    crate::words::quote(h)
                } else {
                    h.clone()
                }
            })
            .collect();
        let more = self.ignored.len().saturating_sub(NAMED_IGNORED);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Some(format!(
            "ignoring columns with no matching field: {}{tail}",
            named.join(", ")
        ))
    }
}

impl InputConfig {
    /// Checks the input flags.
    pub(crate) fn from_args(args: &InputArgs) -> Result<InputConfig, Error> {
        let source = if args.file == Path::new("-") {
            Source::Stdin
        } else {
            Source::File(args.file.clone())
        };
        let delimiter = args.delimiter.as_deref().map(parse_delimiter).transpose()?;
        let overrides = args
            .map
            .iter()
            .map(|m| parse_map(m))
            .collect::<Result<Vec<_>, _>>()?;
        let normalizer = Normalizer::new(NormalizeOptions {
            default_region: args.default_region.clone(),
            date_formats: args.date_format.clone(),
            truncate_names: args.truncate_names,
            mobile_only: args.mobile_only,
            default_group: None,
        })?;
        Ok(InputConfig {
            source,
            reader: ReaderOptions {
                delimiter,
                encoding: args.encoding,
            },
            overrides,
            normalizer,
        })
    }

    /// Sets the group an empty `groupId` cell falls back to (`--group-id`).
    pub(crate) fn set_default_group(&mut self, group: Option<&str>) -> Result<(), Error> {
        let mut opts = self.normalizer.options().clone();
        opts.default_group = group.map(str::to_string);
        self.normalizer = Normalizer::new(opts)?;
        Ok(())
    }

    /// Opens the source, reads the header and maps its columns.
    pub(crate) fn open(&self) -> Result<OpenInput, Error> {
        let (stream, bytes) = self.source.open()?;
        let mut opened = self.open_stream(stream)?;
        opened.bytes = bytes;
        Ok(opened)
    }

    /// Reads the header of `stream` (this input's bytes) and maps its columns.
    pub(crate) fn open_stream(&self, stream: Box<dyn Read + Send>) -> Result<OpenInput, Error> {
        let mut reader = CsvReader::new(stream, self.reader).map_err(|source| Error::Read {
            path: self.source.describe(),
            source,
        })?;
        if let Source::File(path) = &self.source
            && let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
        {
            reader.set_size_hint(meta.len());
        }
        let headers: Vec<&str> = reader.header().iter().map(String::as_str).collect();
        let (map, ignored) =
            ColumnMap::resolve(&headers, &self.overrides).map_err(|source| Error::Map {
                path: self.source.describe(),
                source,
            })?;
        Ok(OpenInput {
            reader,
            map,
            ignored,
            bytes: None,
        })
    }
}

/// Validated output settings.
#[derive(Debug, Clone)]
pub(crate) struct OutputConfig {
    /// The per-row report.
    pub report: Target,
    /// The rejects file, if asked for.
    pub rejects: Option<Target>,
    /// The JSON summary, if asked for.
    pub summary_json: Option<PathBuf>,
    /// The HTML report, if asked for.
    pub html: Option<PathBuf>,
    /// The input's name, for the HTML report's title.
    pub input: String,
    /// The backup of mirror-mode deletions (sync `--delete-missing` only).
    pub backup: Option<PathBuf>,
}

impl OutputConfig {
    /// Resolves output paths against the input's defaults, and refuses any
    /// that is the input file (however reached) or another output.
    pub(crate) fn from_args(args: &OutputArgs, source: &Source) -> Result<OutputConfig, Error> {
        let report = args
            .report
            .as_deref()
            .map(Target::parse)
            .unwrap_or_else(|| source.default_report());
        let rejects = args.rejects.as_deref().map(Target::parse);
        if rejects == Some(Target::Stdout) && report == Target::Stdout {
            return Err(Error::Usage(
                "--report and --rejects cannot both go to standard output".into(),
            ));
        }
        if args.report_html.is_some() && report == Target::Stdout {
            return Err(Error::Usage(
                "--report-html is made from the report file: give --report a path, not -".into(),
            ));
        }
        let config = OutputConfig {
            report,
            rejects,
            summary_json: args.summary_json.clone(),
            html: args.report_html.clone(),
            input: source.describe(),
            backup: None,
        };
        config.check_paths(source)?;
        Ok(config)
    }

    /// Adds the deletion backup (`path`, else `<report stem>.deleted.csv`
    /// beside the report), checked like every other output.
    pub(crate) fn with_backup(
        mut self,
        path: Option<&Path>,
        source: &Source,
    ) -> Result<OutputConfig, Error> {
        let report = match &self.report {
            Target::File(p) => p.clone(),
            Target::Stdout => match source.default_report() {
                Target::File(p) => p,
                Target::Stdout => PathBuf::from("stdin.report.csv"),
            },
        };
        self.backup = Some(match path {
            Some(p) => p.to_path_buf(),
            None => default_backup(&report),
        });
        self.check_paths(source)?;
        Ok(self)
    }

    /// Every file output with its flag, final and partial paths included.
    fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let mut files = Vec::new();
        let mut add = |flag: &'static str, path: &Path| {
            files.push((flag, path.to_path_buf()));
            if !crate::report::is_special(path) {
                files.push((flag, crate::report::partial_path(path)));
            }
        };
        if let Target::File(p) = &self.report {
            add("--report", p);
        }
        if let Some(Target::File(p)) = &self.rejects {
            add("--rejects", p);
        }
        if let Some(p) = &self.summary_json {
            add("--summary-json", p);
        }
        if let Some(p) = &self.html {
            add("--report-html", p);
        }
        if let Some(p) = &self.backup {
            // Appended to in place: it has no partial path.
            files.push(("--deleted-backup", p.clone()));
        }
        files
    }

    /// Refuses an output that is the input or another output: writing it
    /// would destroy the other.
    fn check_paths(&self, source: &Source) -> Result<(), Error> {
        let files = self.files();
        let keys: Vec<Option<FileKey>> = files.iter().map(|(_, p)| FileKey::of(p)).collect();
        if let Source::File(input) = source
            && let Some(input_key) = FileKey::of(input)
        {
            for ((flag, path), key) in files.iter().zip(&keys) {
                if key.as_ref() == Some(&input_key) {
                    return Err(Error::Usage(format!(
                        "{flag} {} is the input file {} (the same file, however named): writing it would destroy the input; choose another path",
                        path.display(),
                        input.display()
                    )));
                }
            }
        }
        for (i, ((flag_a, path_a), key_a)) in files.iter().zip(&keys).enumerate() {
            for ((flag_b, path_b), key_b) in files.iter().zip(&keys).skip(i + 1) {
                // Two outputs to /dev/null (or a terminal) destroy nothing.
                if flag_a != flag_b
                    && key_a.is_some()
                    && key_a == key_b
                    && !crate::report::is_special(path_a)
                {
                    return Err(Error::Usage(format!(
                        "{flag_a} {} and {flag_b} {} are the same file: give each output its own path",
                        path_a.display(),
                        path_b.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `<report stem>.deleted.csv` beside the report: `in.report.csv` gives
/// `in.deleted.csv`, `out.csv` gives `out.deleted.csv`.
pub(crate) fn default_backup(report: &Path) -> PathBuf {
    let name = report
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let stem = name
        .strip_suffix(".report.csv")
        .or_else(|| name.strip_suffix(".csv"))
        .unwrap_or(&name);
    report.with_file_name(format!("{stem}.deleted.csv"))
}

/// What makes two paths the same file: its device and inode when it exists
/// (symlinks and hard links agree), else its resolved directory and name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileKey {
    #[cfg(unix)]
    Node(u64, u64),
    Path(PathBuf),
}

impl FileKey {
    fn of(path: &Path) -> Option<FileKey> {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            return Some(FileKey::Node(meta.dev(), meta.ino()));
        }
        if let Ok(real) = std::fs::canonicalize(path) {
            return Some(FileKey::Path(real));
        }
        let name = path.file_name()?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::canonicalize(parent).ok()?;
        Some(FileKey::Path(dir.join(name)))
    }
}

/// `,` `;` `|`, `tab`/`\t`, or any single ASCII character.
pub(crate) fn parse_delimiter(s: &str) -> Result<u8, Error> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" => Ok(s.as_bytes()[0]),
        _ => Err(Error::Usage(format!(
            "--delimiter {}: expected one character such as , ; | or the word tab",
            crate::words::quote(s)
        ))),
    }
}

/// `FIELD=HEADER`, FIELD one of the canonical names; `FIELD=` (empty HEADER)
/// unmaps FIELD, which [`ColumnMap::resolve`] then never auto-maps.
pub(crate) fn parse_map(s: &str) -> Result<(Field, String), Error> {
    let (field, header) = s.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "--map {}: expected FIELD=HEADER (or FIELD= to leave FIELD unmapped)",
            crate::words::quote(s)
        ))
    })?;
    let field = Field::from_name(field).ok_or_else(|| {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        Error::Usage(format!(
            "--map {}: unknown field {}; fields are {}",
            crate::words::quote(s),
            crate::words::quote(field),
            names.join(", ")
        ))
    })?;
    Ok((field, header.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_and_maps_parse() {
        assert_eq!(parse_delimiter("tab").unwrap(), b'\t');
        assert_eq!(parse_delimiter(";").unwrap(), b';');
        assert!(parse_delimiter(";;").is_err());
        assert_eq!(
            parse_map("phoneNumber=Cell B").unwrap(),
            (Field::PhoneNumber, "Cell B".into())
        );
        assert!(parse_map("colour=x").is_err());
        assert!(parse_map("phoneNumber").is_err());
        assert_eq!(parse_map("url=").unwrap(), (Field::Url, String::new()));
        assert_eq!(
            parse_map("contactId=Id").unwrap(),
            (Field::ContactId, "Id".into())
        );
    }

    #[test]
    fn the_deletion_backup_is_named_after_the_report() {
        assert_eq!(
            default_backup(Path::new("in.report.csv")),
            PathBuf::from("in.deleted.csv")
        );
        assert_eq!(
            default_backup(Path::new("/var/out/nightly.csv")),
            PathBuf::from("/var/out/nightly.deleted.csv")
        );
        assert_eq!(
            default_backup(Path::new("report")),
            PathBuf::from("report.deleted.csv")
        );
    }

    #[test]
    fn max_invalid_counts_and_shares() {
        assert_eq!(MaxInvalid::parse("10").unwrap(), MaxInvalid::Count(10));
        assert_eq!(MaxInvalid::parse("5%").unwrap(), MaxInvalid::Percent(5.0));
        assert!(MaxInvalid::parse("x").is_err());
        assert!(MaxInvalid::parse("150%").is_err());
        assert!(!MaxInvalid::Count(2).exceeded(2, 100));
        assert!(MaxInvalid::Count(2).exceeded(3, 100));
        assert!(!MaxInvalid::Percent(5.0).exceeded(5, 100));
        assert!(MaxInvalid::Percent(5.0).exceeded(6, 100));
    }

    #[test]
    fn default_report_is_named_after_the_input() {
        assert_eq!(
            Source::File("/data/export.csv".into()).default_report(),
            Target::File("export.report.csv".into())
        );
        assert_eq!(
            Source::Stdin.default_report(),
            Target::File("stdin.report.csv".into())
        );
    }
}
