//! The provider API key, held in a type that never prints it (SPEC §2: the key
//! appears in no log, report, error message or panic).
//!
//! There is deliberately no `Serialize`, and `Debug`/`Display` print
//! `[redacted]`; [`ApiKey::expose`] is the only way to read the value.

use std::ffi::OsString;
use std::fmt;

/// The environment variable the key is read from.
pub(crate) const ENV_VAR: &str = "CONTACT_SYNC_API_KEY";

/// The environment variable naming a file that holds the key (cron jobs,
/// systemd credentials, container secrets), read when [`ENV_VAR`] is unset.
pub(crate) const FILE_ENV_VAR: &str = "CONTACT_SYNC_API_KEY_FILE";

/// What `Debug` and `Display` print instead of the key.
pub(crate) const REDACTED: &str = "[redacted]";

/// A provider API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why no usable key was found; the message names the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    /// The variable is not set.
    #[error(
        "the API key is missing: set the environment variable {ENV_VAR}, or {FILE_ENV_VAR} to the path of a file holding it"
    )]
    Missing,
    /// The variable is set but empty or blank.
    #[error("the API key is empty: the environment variable {ENV_VAR} is set but blank")]
    Empty,
    /// The variable is not valid UTF-8.
    #[error("the API key is unreadable: the environment variable {ENV_VAR} is not valid UTF-8")]
    NotUnicode,
    /// Both variables are set: which one is meant is unclear.
    #[error("both {ENV_VAR} and {FILE_ENV_VAR} are set: unset one of them")]
    Both,
    /// The file named by the variable cannot be read.
    #[error("the API key file named by {FILE_ENV_VAR} ({path}) cannot be read: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// Why (an I/O error's words, never the content).
        reason: String,
    },
    /// The file named by the variable is empty or not UTF-8.
    #[error("the API key file named by {FILE_ENV_VAR} ({path}) is empty or not UTF-8 text")]
    FileEmpty {
        /// The file's path.
        path: String,
    },
}

impl ApiKey {
    /// Wraps a key as given.
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }

    /// Reads the key from `CONTACT_SYNC_API_KEY`, or else from the file named
    /// by `CONTACT_SYNC_API_KEY_FILE`, trimmed of surrounding whitespace. A key
    /// file that other users may read is used, with a warning.
    pub(crate) fn from_env() -> Result<ApiKey, SecretError> {
        let file = std::env::var_os(FILE_ENV_VAR).filter(|v| !v.is_empty());
        match (std::env::var_os(ENV_VAR), file) {
            (Some(_), Some(_)) => Err(SecretError::Both),
            (None, Some(path)) => {
                let path = std::path::PathBuf::from(path);
                let (key, warning) = ApiKey::from_file(&path)?;
                if let Some(w) = warning {
                    tracing::warn!("{w}");
                }
                Ok(key)
            }
            (value, None) => ApiKey::from_var(value),
        }
    }

    /// Reads the key from a file (the whole file, trimmed), with a warning
    /// when users other than its owner may read it.
    pub(crate) fn from_file(
        path: &std::path::Path,
    ) -> Result<(ApiKey, Option<String>), SecretError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SecretError::File {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| SecretError::FileEmpty {
            path: shown.clone(),
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(SecretError::FileEmpty { path: shown });
        }
        Ok((ApiKey(key.to_string()), exposure_warning(path)))
    }

    /// The rule of [`ApiKey::from_env`] applied to a variable's value (testable
    /// without touching the process environment).
    fn from_var(value: Option<OsString>) -> Result<ApiKey, SecretError> {
        let value = value.ok_or(SecretError::Missing)?;
        let value = value.into_string().map_err(|_| SecretError::NotUnicode)?;
        // A key pasted with a trailing newline would otherwise fail as a header value.
        let key = value.trim();
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(ApiKey(key.to_string()))
    }

    /// The key itself; call only where it is put on the wire.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key, plain or URL-encoded as in a
    /// query string, replaced by `[redacted]`: a last guard for messages that
    /// came from a server or an HTTP library and might echo it.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        let mut out = text.replace(&self.0, REDACTED);
        let encoded = form_urlencode(&self.0);
        if encoded != self.0 {
            out = out.replace(&encoded, REDACTED);
        }
        out
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A warning when a key file's mode lets its group or other users read it.
#[cfg(unix)]
fn exposure_warning(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "the API key file {} can be read by other users (mode {mode:03o}): make it readable by its owner only, e.g. chmod 600",
            path.display()
        )
    })
}

/// Permissions are not checked off Unix.
#[cfg(not(unix))]
fn exposure_warning(_path: &std::path::Path) -> Option<String> {
    None
}

/// `application/x-www-form-urlencoded` serialisation, as `Url::query_pairs_mut` writes it.
fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk_live_8f3a1c";

    #[test]
    fn debug_and_display_redact() {
        let key = ApiKey::new(SECRET.into());
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(format!("{key}"), "[redacted]");
        assert_eq!(format!("{key:#?}"), "[redacted]");
    }

    #[test]
    fn debug_of_a_containing_struct_redacts() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            key: ApiKey,
            other: Option<ApiKey>,
        }
        let c = Config {
            key: ApiKey::new(SECRET.into()),
            other: Some(ApiKey::new(SECRET.into())),
        };
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn expose_gives_the_key() {
        assert_eq!(ApiKey::new(SECRET.into()).expose(), SECRET);
    }

    #[test]
    fn env_value_is_required_non_empty_and_trimmed() {
        assert_eq!(ApiKey::from_var(None), Err(SecretError::Missing));
        assert_eq!(ApiKey::from_var(Some("".into())), Err(SecretError::Empty));
        assert_eq!(
            ApiKey::from_var(Some(" \n".into())),
            Err(SecretError::Empty)
        );
        let key = ApiKey::from_var(Some(format!("{SECRET}\n").into())).unwrap();
        assert_eq!(key.expose(), SECRET);
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_value_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'k', 0xff]);
        assert_eq!(ApiKey::from_var(Some(raw)), Err(SecretError::NotUnicode));
    }

    #[test]
    fn error_messages_name_the_variable_and_no_value() {
        for e in [
            SecretError::Missing,
            SecretError::Empty,
            SecretError::NotUnicode,
        ] {
            let msg = e.to_string();
            assert!(msg.contains(ENV_VAR), "{msg}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_read_trimmed_and_warned_about_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (key, warning) = ApiKey::from_file(&path).unwrap();
        assert_eq!(key.expose(), SECRET);
        assert_eq!(warning, None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = ApiKey::from_file(&path).unwrap().1.unwrap();
        assert!(
            warning.contains("644") && !warning.contains(SECRET),
            "{warning}"
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            ApiKey::from_file(&path),
            Err(SecretError::FileEmpty { .. })
        ));
        let missing = ApiKey::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains(FILE_ENV_VAR), "{missing}");
    }

    #[test]
    fn redact_replaces_plain_and_url_encoded_forms() {
        let key = ApiKey::new("a b/c+d".into());
        let text = "bad key a b/c+d in url ?apiKey=a+b%2Fc%2Bd&x=1";
        let out = key.redact(text);
        assert_eq!(out, "bad key [redacted] in url ?apiKey=[redacted]&x=1");
        assert_eq!(ApiKey::new(String::new()).redact("abc"), "abc");
    }

    #[test]
    fn form_urlencode_matches_url_query_pairs() {
        let key = "k€y /+?&=%~!";
        let mut url = reqwest::Url::parse("http://h/").unwrap();
        url.query_pairs_mut().append_pair("k", key);
        assert_eq!(
            url.query(),
            Some(format!("k={}", form_urlencode(key)).as_str())
        );
    }
}
