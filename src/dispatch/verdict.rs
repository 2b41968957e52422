//! How an answer is taken: the one classification of a complete response,
//! made from its status *and* body together. Each provider supplies its own
//! (`Provider::classify`); the dispatcher decides retries from it, the
//! provider's parsers read rows from it, so the two can never disagree.

use std::time::Duration;

#[cfg(test)]
use crate::codes::ErrorCode;
use crate::codes::RowError;

/// What a complete answer means for the call that drew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The call did what was asked; the caller reads the body.
    Success,
    /// Transient (429, a 5xx without a provider error): send again, waiting
    /// at least `after` when the server said so.
    Retry {
        /// The server's `Retry-After`, if it gave a readable one.
        after: Option<Duration>,
    },
    /// The provider refused this request for a reason of its own, or the
    /// answer cannot be read: a row matter, not retried.
    Refused(RowError),
    /// The provider refused the key or the account: no other request can
    /// succeed, the run must stop.
    Fatal(RowError),
    /// Not this provider's API answering: a 404 without its JSON error body,
    /// an HTML page, a redirect. Several in a row stop the run (check `--base-url`).
    Misdirected(RowError),
}

impl Verdict {
    /// Whether the answer came in the provider's own shape (success, a
    /// refusal or a stop it documents), proof that the base URL is right.
    pub(crate) fn is_the_providers(&self) -> bool {
        matches!(
            self,
            Verdict::Success | Verdict::Refused(_) | Verdict::Fatal(_)
        )
    }
}

/// Whether `status` is worth another try when the body says nothing more:
/// 429 and every 5xx but 501 Not Implemented, which will not change by itself.
pub(crate) fn transient_status(status: u16) -> bool {
    status == 429 || ((500..600).contains(&status) && status != 501)
}

/// Whether the body is an HTML (or XML) page rather than JSON: its first
/// non-blank byte is `<`. A JSON API never answers so.
pub(crate) fn looks_like_markup(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// The classification that knows no provider: 2xx succeeds, 429 and 5xx
/// (but 501) are transient, anything else is refused with `HTTP_<status>`.
/// Used by the dispatcher's tests, which know no provider.
#[cfg(test)]
pub(crate) fn by_status(status: u16, retry_after: Option<Duration>, _body: &[u8]) -> Verdict {
    if (200..300).contains(&status) {
        Verdict::Success
    } else if transient_status(status) {
        Verdict::Retry { after: retry_after }
    } else {
        Verdict::Refused(RowError::new(
            ErrorCode::Http(status),
            format!("HTTP {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_classification() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(by_status(200, None, b""), Verdict::Success);
        assert_eq!(by_status(204, after, b""), Verdict::Success);
        for s in [429, 500, 502, 503, 599] {
            assert_eq!(by_status(s, after, b""), Verdict::Retry { after }, "{s}");
        }
        for s in [301, 400, 401, 404, 501] {
            assert!(
                matches!(by_status(s, after, b""), Verdict::Refused(e) if e.code == ErrorCode::Http(s)),
                "{s}"
            );
        }
    }

    #[test]
    fn markup_is_recognised_by_its_first_byte() {
        assert!(looks_like_markup(b"<!DOCTYPE html><html>"));
        assert!(looks_like_markup(b"\r\n  <html>"));
        assert!(looks_like_markup(b"<?xml version=\"1.0\"?>"));
        assert!(!looks_like_markup(b"{\"a\": \"<b>\"}"));
        assert!(!looks_like_markup(b""));
        assert!(!looks_like_markup(b"Not Found"));
    }

    #[test]
    fn only_answers_in_the_providers_shape_prove_the_base_url() {
        let e = RowError::new(ErrorCode::Http(404), "x");
        assert!(Verdict::Success.is_the_providers());
        assert!(Verdict::Refused(e.clone()).is_the_providers());
        assert!(Verdict::Fatal(e.clone()).is_the_providers());
        assert!(!Verdict::Misdirected(e).is_the_providers());
        assert!(!Verdict::Retry { after: None }.is_the_providers());
    }
}
