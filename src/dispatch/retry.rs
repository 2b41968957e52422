//! Retry policy as pure functions: which attempt results are worth another try
//! (after vector's `HttpRetryLogic`), how long to wait (exponential backoff with
//! full jitter, never less than the server's `Retry-After`), and parsing of
//! `Retry-After` itself. Nothing here sleeps or touches the network.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

/// How an attempt failed below HTTP, reduced to what the retry policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkKind {
    /// The TCP/TLS connection could not be established.
    Connect,
    /// The connect or request timeout elapsed.
    Timeout,
    /// The connection failed or closed while the request was sent or before
    /// the response head arrived.
    Closed,
    /// The response body could not be read to the end.
    Body,
    /// The response body was larger than the cap: the connection was dropped
    /// unread, and the answer counts as lost (the request may have been applied).
    Oversized,
    /// The request could not be built (bad URL, header…); sending it again
    /// cannot help.
    Invalid,
}

/// What one attempt produced, as seen by the retry policy: the answer's
/// [`Verdict`](super::Verdict) reduced to "final" or "transient".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptResult {
    /// A complete answer that is final: success, a refusal, or a stop.
    Final {
        /// The HTTP status code.
        status: u16,
    },
    /// A complete answer worth another try (429, a 5xx without a provider error).
    Transient {
        /// The HTTP status code.
        status: u16,
        /// The parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// No complete answer was received.
    Network(NetworkKind),
}

/// Whether an attempt result deserves another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryDecision {
    /// Final: hand the result to the caller.
    Done,
    /// Transient: try again, waiting at least `after` when the server said so.
    Retry {
        /// The server's `Retry-After`, a lower bound on the wait.
        after: Option<Duration>,
    },
}

/// Classifies an attempt result: transient answers and network failures
/// (an oversized body included) are worth another try; final answers, and
/// requests that cannot be built, are not.
pub(crate) fn classify(result: &AttemptResult) -> RetryDecision {
    match *result {
        AttemptResult::Final { .. } | AttemptResult::Network(NetworkKind::Invalid) => {
            RetryDecision::Done
        }
        AttemptResult::Transient { retry_after, .. } => RetryDecision::Retry { after: retry_after },
        AttemptResult::Network(_) => RetryDecision::Retry { after: None },
    }
}

/// The wait before retry number `retry` (0 for the first retry): a uniform
/// draw in `[0, min(cap, base·2^retry))` ("full jitter"), raised to
/// `retry_after` when the server asked for more. `draw` is in `[0, 1)`.
pub(crate) fn backoff(
    retry: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
    draw: f64,
) -> Duration {
    let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
    let ceiling = base.saturating_mul(factor).min(cap);
    let draw = if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let jittered = ceiling.mul_f64(draw);
    match retry_after {
        Some(after) => jittered.max(after),
        None => jittered,
    }
}

/// Retry limits and backoff parameters for one dispatcher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt, at most.
    pub max_retries: u32,
    /// The backoff ceiling of the first retry; it doubles with each retry.
    pub base_delay: Duration,
    /// The backoff ceiling never exceeds this.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for (`--max-retry-after`); a server
    /// asking for more stops the sending ([`RetryStep::TooLong`]).
    pub max_retry_after: Duration,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryStep {
    /// Send again after this wait.
    After(Duration),
    /// The result is final (not transient, or retries used up): hand it over.
    Stop,
    /// The server asked for a pause longer than
    /// [`max_retry_after`](RetryPolicy::max_retry_after): stop sending.
    TooLong(Duration),
}

impl RetryPolicy {
    /// The step after an attempt that produced `result`; `retries_done`
    /// counts the retries already made for this call. A `Retry-After` beyond
    /// the cap wins over everything, used-up retries included: the server
    /// said no request will do before then.
    pub(crate) fn next_step(
        &self,
        retries_done: u32,
        result: &AttemptResult,
        draw: f64,
    ) -> RetryStep {
        match classify(result) {
            RetryDecision::Done => RetryStep::Stop,
            RetryDecision::Retry { after: Some(after) } if after > self.max_retry_after => {
                RetryStep::TooLong(after)
            }
            RetryDecision::Retry { .. } if retries_done >= self.max_retries => RetryStep::Stop,
            RetryDecision::Retry { after } => RetryStep::After(backoff(
                retries_done,
                self.base_delay,
                self.max_delay,
                after,
                draw,
            )),
        }
    }
}

/// Parses a `Retry-After` value, either delay-seconds or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime form), into a wait from `now`. A date in
/// the past means no wait; anything else unparsable is `None`.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only, so the only failure is overflow: treat as "very long".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|fmt| NaiveDateTime::parse_from_str(value, fmt).ok())
                .map(|naive| naive.and_utc())
        })?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(status: u16) -> AttemptResult {
        AttemptResult::Transient {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn transient_answers_are_retried() {
        for s in [429, 500, 502, 503] {
            assert_eq!(
                classify(&transient(s)),
                RetryDecision::Retry { after: None },
                "{s}"
            );
        }
    }

    #[test]
    fn final_answers_are_not_retried_whatever_their_status() {
        // The status alone decides nothing: a provider error in a 500 is final.
        for s in [200, 201, 302, 400, 401, 404, 500, 503] {
            assert_eq!(
                classify(&AttemptResult::Final { status: s }),
                RetryDecision::Done,
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_is_carried_into_the_decision() {
        let r = AttemptResult::Transient {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            classify(&r),
            RetryDecision::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn network_failures_are_retried_except_invalid_requests() {
        for k in [
            NetworkKind::Connect,
            NetworkKind::Timeout,
            NetworkKind::Closed,
            NetworkKind::Body,
            NetworkKind::Oversized,
        ] {
            assert_eq!(
                classify(&AttemptResult::Network(k)),
                RetryDecision::Retry { after: None }
            );
        }
        assert_eq!(
            classify(&AttemptResult::Network(NetworkKind::Invalid)),
            RetryDecision::Done
        );
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let base = 100 * MS;
        let cap = 1000 * MS;
        // A draw just below 1 shows the ceiling.
        let top = |retry| backoff(retry, base, cap, None, 0.999_999);
        assert!(top(0) > 99 * MS && top(0) < base);
        assert!(top(1) > 199 * MS && top(1) < 200 * MS);
        assert!(top(2) > 399 * MS && top(2) < 400 * MS);
        assert!(top(3) > 799 * MS && top(3) < 800 * MS);
        assert!(top(4) > 999 * MS && top(4) < cap);
        assert!(top(60) > 999 * MS && top(60) < cap);
        assert!(top(u32::MAX) < cap);
    }

    #[test]
    fn backoff_is_fully_jittered() {
        let base = 100 * MS;
        assert_eq!(backoff(2, base, 10 * base, None, 0.0), Duration::ZERO);
        assert_eq!(backoff(2, base, 10 * base, None, 0.5), 200 * MS);
        assert_eq!(backoff(2, base, 10 * base, None, 0.25), 100 * MS);
    }

    #[test]
    fn backoff_never_shorter_than_retry_after() {
        let base = 100 * MS;
        let after = Some(5000 * MS);
        assert_eq!(backoff(0, base, 10 * base, after, 0.0), 5000 * MS);
        assert_eq!(backoff(0, base, 10 * base, after, 0.9), 5000 * MS);
        // A short Retry-After does not shorten a longer jittered wait.
        assert_eq!(backoff(3, base, 10 * base, Some(MS), 0.5), 400 * MS);
    }

    #[test]
    fn backoff_tolerates_bad_draws() {
        let base = 100 * MS;
        assert_eq!(backoff(0, base, base, None, f64::NAN), Duration::ZERO);
        assert_eq!(backoff(0, base, base, None, -3.0), Duration::ZERO);
        assert_eq!(backoff(0, base, base, None, 7.0), base);
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay: 100 * MS,
            max_delay: 1000 * MS,
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn policy_stops_after_max_retries() {
        let p = policy();
        assert_eq!(
            p.next_step(0, &transient(503), 0.5),
            RetryStep::After(50 * MS)
        );
        assert_eq!(
            p.next_step(1, &transient(503), 0.5),
            RetryStep::After(100 * MS)
        );
        assert_eq!(p.next_step(2, &transient(503), 0.5), RetryStep::Stop);
        assert_eq!(
            p.next_step(0, &AttemptResult::Final { status: 400 }, 0.5),
            RetryStep::Stop
        );
    }

    #[test]
    fn policy_stops_the_sending_on_an_excessive_retry_after() {
        let p = policy();
        let r = |secs| AttemptResult::Transient {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            p.next_step(0, &r(60), 0.5),
            RetryStep::After(Duration::from_secs(60))
        );
        assert_eq!(
            p.next_step(0, &r(61), 0.5),
            RetryStep::TooLong(Duration::from_secs(61))
        );
        // Even with the retries used up: the server said when to come back.
        assert_eq!(
            p.next_step(2, &r(61), 0.5),
            RetryStep::TooLong(Duration::from_secs(61))
        );
        assert_eq!(p.next_step(2, &r(60), 0.5), RetryStep::Stop);
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_http_dates() {
        let ten = Some(Duration::from_secs(10));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now()),
            ten
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now()),
            ten
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:10 2015", now()), ten);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        for v in ["", "soon", "-5", "1.5", "Wed, 99 Oct 2015 07:28:10 GMT"] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }
}
