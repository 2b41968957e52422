//! Stable codes shown to users: row outcomes, error codes and exit codes, each
//! with the exact string the report and the docs use.

use std::fmt;

/// What happened to one input row, as written in the report's `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// `validate`: the row is fine.
    Valid,
    /// Dry run: the row would be added.
    WouldAdd,
    /// Dry run: the row would update an existing contact.
    WouldUpdate,
    /// Dry run (mirror mode): the contact would be deleted.
    WouldDelete,
    /// The contact was created.
    Added,
    /// An existing contact was updated.
    Updated,
    /// Identical to what was last sent; no request made.
    Unchanged,
    /// Mirror mode: the contact left the file (or opted out) and was deleted.
    Deleted,
    /// The row failed validation and was not sent.
    Invalid,
    /// The provider refused the row or could not be reached.
    Failed,
    /// The run stopped before this row was sent.
    NotAttempted,
}

impl Outcome {
    /// Every outcome, in report order.
    pub(crate) const ALL: [Outcome; 11] = [
        Outcome::Valid,
        Outcome::WouldAdd,
        Outcome::WouldUpdate,
        Outcome::WouldDelete,
        Outcome::Added,
        Outcome::Updated,
        Outcome::Unchanged,
        Outcome::Deleted,
        Outcome::Invalid,
        Outcome::Failed,
        Outcome::NotAttempted,
    ];

    /// The string written in the report.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::WouldAdd => "would_add",
            Outcome::WouldUpdate => "would_update",
            Outcome::WouldDelete => "would_delete",
            Outcome::Added => "added",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
            Outcome::NotAttempted => "not_attempted",
        }
    }

    /// Whether this outcome makes the exit code non-zero.
    pub(crate) fn is_problem(self) -> bool {
        matches!(
            self,
            Outcome::Invalid | Outcome::Failed | Outcome::NotAttempted
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a row is `invalid` or `failed`, as written in the report's `code` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// Wrong field count, undecodable bytes, or an oversized field/record.
    RowMalformed,
    /// No phone number in the row.
    PhoneMissing,
    /// Not a valid phone number.
    PhoneInvalid,
    /// Valid, but not a mobile number (`--mobile-only`).
    PhoneNotMobile,
    /// First name over 32 characters.
    FirstnameTooLong,
    /// Last name over 32 characters.
    LastnameTooLong,
    /// Not a real calendar date in an accepted format.
    DateInvalid,
    /// Not an absolute http(s) URL.
    UrlInvalid,
    /// Same number (and group) as an earlier row.
    DuplicatePhone,
    /// An empty group cell with no `--group-id` to fall back to.
    GroupMissing,
    /// The opt-out cell is neither a yes nor a no.
    OptOutInvalid,
    /// A provider error code (`API_<n>`).
    Api(i64),
    /// An HTTP error status with no provider code (`HTTP_<status>`).
    Http(u16),
    /// Connection or timeout failure after the retries.
    Network,
    /// Credentials rejected.
    Auth,
    /// Sent, but no answer came (interrupted, or lost on every retry): it may have been applied.
    Unconfirmed,
    /// An answer that cannot be read (too large, not the documented shape,
    /// bulk results that do not match the batch): it may have been applied.
    ResponseInvalid,
    /// The lookup of existing contacts could not complete within its request budget.
    ListingFailed,
    /// A fault of this tool (a bug), never of the data or the provider's answer.
    Internal,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::RowMalformed => f.write_str("ROW_MALFORMED"),
            ErrorCode::PhoneMissing => f.write_str("PHONE_MISSING"),
            ErrorCode::PhoneInvalid => f.write_str("PHONE_INVALID"),
            ErrorCode::PhoneNotMobile => f.write_str("PHONE_NOT_MOBILE"),
            ErrorCode::FirstnameTooLong => f.write_str("FIRSTNAME_TOO_LONG"),
            ErrorCode::LastnameTooLong => f.write_str("LASTNAME_TOO_LONG"),
            ErrorCode::DateInvalid => f.write_str("DATE_INVALID"),
            ErrorCode::UrlInvalid => f.write_str("URL_INVALID"),
            ErrorCode::DuplicatePhone => f.write_str("DUPLICATE_PHONE"),
            ErrorCode::GroupMissing => f.write_str("GROUP_MISSING"),
            ErrorCode::OptOutInvalid => f.write_str("OPTOUT_INVALID"),
            ErrorCode::Api(n) => write!(f, "API_{n}"),
            ErrorCode::Http(s) => write!(f, "HTTP_{s}"),
            ErrorCode::Network => f.write_str("NETWORK"),
            ErrorCode::Auth => f.write_str("AUTH"),
            ErrorCode::Unconfirmed => f.write_str("UNCONFIRMED"),
            ErrorCode::ResponseInvalid => f.write_str("RESPONSE_INVALID"),
            ErrorCode::ListingFailed => f.write_str("LISTING_FAILED"),
            ErrorCode::Internal => f.write_str("INTERNAL"),
        }
    }
}

/// One problem with one row: a stable code and an English message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The stable code.
    pub code: ErrorCode,
    /// What is wrong, for a human.
    pub message: String,
}

impl RowError {
    /// A problem with the given code and message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RowError {
            code,
            message: message.into(),
        }
    }
}

/// Process exit codes (SPEC §2); cron relies on them.
pub(crate) mod exit {
    /// Every row ended well.
    pub(crate) const OK: u8 = 0;
    /// The run finished, but some rows are `invalid` or `failed`.
    pub(crate) const ROWS_FAILED: u8 = 1;
    /// Nothing was sent: usage, configuration or input-file error.
    pub(crate) const NOTHING_SENT: u8 = 2;
    /// Aborted mid-run: credentials rejected, interrupted, or too many failures.
    pub(crate) const ABORTED: u8 = 3;
}
