//! What the sandbox does to a request before serving it: rate limiting, injected
//! faults and latency, all drawn from one seeded PRNG so a run can be replayed;
//! plus the hostile modes that do not draw (reordered bulk results, the form
//! of `Retry-After`, a base URL that is not the API, the key echoed in errors).
//!
//! Pure: the clock is passed in, nothing here touches the network.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::rng::SplitMix64;

/// A token bucket: `burst` tokens at most, refilled at `rate` tokens a second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be positive and `burst` at least 1 (the
    /// configuration checks both before this is built).
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // A tiny rate can mean a wait beyond what Duration holds.
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.max(1)
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Served normally.
    None,
    /// Answered 429 with `Retry-After: secs`; nothing applied.
    RateLimited {
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// Answered with an injected 5xx; nothing applied.
    ServerError,
    /// Connection closed before anything is applied; no response.
    Drop,
    /// Applied, then the connection is closed without a response.
    Lose,
    /// Applied, then answered 200 with a body that never ends.
    Oversize,
    /// Applied, then answered 200 without the documented body (SMS Partner
    /// `{}`, Mobivate `{"success": true}` without its `record`).
    Hollow,
    /// Answered with a provider error (SMS Partner code 90 under the
    /// configured status, Mobivate 400); nothing applied.
    Coded,
}

impl Fault {
    /// The name used in logs, or `None` for a normal request.
    pub(crate) fn name(self) -> Option<&'static str> {
        match self {
            Fault::None => None,
            Fault::RateLimited { .. } => Some("rate_limited"),
            Fault::ServerError => Some("server_error"),
            Fault::Drop => Some("dropped"),
            Fault::Lose => Some("lost"),
            Fault::Oversize => Some("oversized"),
            Fault::Hollow => Some("hollow"),
            Fault::Coded => Some("coded"),
        }
    }
}

/// The fate of one request: a fault (or none) and a delay before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What is done to the request.
    pub fault: Fault,
    /// How long the server waits before handling it.
    pub delay: Duration,
}

/// The stress settings a [`FaultPlan`] applies.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSettings {
    /// Requests a second, `None` for no limit.
    pub rate: Option<f64>,
    /// Bucket size.
    pub burst: u32,
    /// Share of requests answered with an injected 5xx.
    pub fault_rate: f64,
    /// Share of reads (listings, detail lookups) answered with an injected
    /// 5xx on top of `fault_rate`: a listing that fails while writes pass.
    pub read_fault_rate: f64,
    /// Share of requests whose connection is dropped before anything is applied.
    pub drop_rate: f64,
    /// Share of requests applied, then left without a response.
    pub lose_rate: f64,
    /// Share of requests applied, then answered with a body that never ends.
    pub oversize_rate: f64,
    /// Share of write requests applied, then answered 200 without the documented body.
    pub hollow_rate: f64,
    /// Share of write requests answered with a provider error, nothing applied.
    pub coded_rate: f64,
    /// HTTP status of injected SMS Partner coded errors (`coded_rate`).
    pub coded_status: u16,
    /// Fixed delay added to every request.
    pub latency: Duration,
    /// Upper bound of an extra uniform random delay.
    pub jitter: Duration,
    /// Return SMS Partner bulk results in a shuffled order.
    pub reorder_bulk: bool,
    /// How a 429's `Retry-After` is written.
    pub retry_after: RetryAfterForm,
    /// A fixed `Retry-After` in seconds instead of the time until the next token.
    pub retry_after_secs: Option<u64>,
    /// Answer every API request as a server that is not the API would.
    pub misdirect: Option<Misdirect>,
    /// Put the API key the request carried into every error message.
    pub echo_key: bool,
    /// List contacts, when no sort order is asked for, in an order that
    /// every write reshuffles (an API that promises none).
    pub unstable_listing: bool,
}

/// How the sandbox writes a 429's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RetryAfterForm {
    /// Delay-seconds, e.g. `Retry-After: 2`.
    #[default]
    Seconds,
    /// An HTTP date (IMF-fixdate), e.g. `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
    Date,
    /// Something that is neither: `Retry-After: in a moment`.
    Garbage,
    /// No `Retry-After` header at all.
    None,
}

/// What a server that is not the API answers, for `--misdirect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Misdirect {
    /// `404 Not Found`, plain text, on every path (a host without this API).
    #[value(name = "404")]
    NotFound,
    /// `200` with an HTML page on every path (a web site, a captive portal).
    Html,
}

impl Default for FaultSettings {
    /// A calm server: no limit, no faults, no latency.
    fn default() -> FaultSettings {
        FaultSettings {
            rate: None,
            burst: 1,
            fault_rate: 0.0,
            read_fault_rate: 0.0,
            drop_rate: 0.0,
            lose_rate: 0.0,
            oversize_rate: 0.0,
            hollow_rate: 0.0,
            coded_rate: 0.0,
            coded_status: 500,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder_bulk: false,
            retry_after: RetryAfterForm::Seconds,
            retry_after_secs: None,
            misdirect: None,
            echo_key: false,
            unstable_listing: false,
        }
    }
}

/// Decides, request by request, which fault (if any) and which delay apply.
///
/// Every decision draws exactly two numbers from the PRNG, whatever the outcome,
/// so the same seed and the same order of requests give the same faults.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    settings: FaultSettings,
    bucket: Option<TokenBucket>,
    rng: SplitMix64,
}

impl FaultPlan {
    /// A plan starting at `now` with a full bucket.
    pub fn new(settings: FaultSettings, seed: u64, now: Instant) -> FaultPlan {
        let bucket = settings
            .rate
            .map(|rate| TokenBucket::new(rate, settings.burst, now));
        FaultPlan {
            settings,
            bucket,
            rng: SplitMix64::new(seed),
        }
    }

    /// The fate of the next request, arriving at `now`, taken as a write.
    pub fn decide(&mut self, now: Instant) -> Decision {
        self.decide_for(now, true)
    }

    /// The fate of the next request, arriving at `now`. Hollow answers and
    /// coded errors stand for the provider's verdict on a change, so a read
    /// (`write` false: a listing, a detail) drawn for one is served normally;
    /// the draws are the same either way.
    pub(crate) fn decide_for(&mut self, now: Instant, write: bool) -> Decision {
        let draw = self.rng.next_f64();
        let jitter_draw = self.rng.next_f64();
        let s = &self.settings;
        let delay = s.latency + s.jitter.mul_f64(jitter_draw);
        let limited = match self.bucket.as_mut() {
            Some(bucket) => bucket.try_take(now).err(),
            None => None,
        };
        let fault = if let Some(wait) = limited {
            Fault::RateLimited {
                retry_after: retry_after_secs(wait),
            }
        } else if draw < s.fault_rate {
            Fault::ServerError
        } else if draw < s.fault_rate + s.drop_rate {
            Fault::Drop
        } else if draw < s.fault_rate + s.drop_rate + s.lose_rate {
            Fault::Lose
        } else if draw < s.fault_rate + s.drop_rate + s.lose_rate + s.oversize_rate {
            Fault::Oversize
        } else if draw < s.fault_rate + s.drop_rate + s.lose_rate + s.oversize_rate + s.hollow_rate
        {
            Fault::Hollow
        } else if draw
            < s.fault_rate
                + s.drop_rate
                + s.lose_rate
                + s.oversize_rate
                + s.hollow_rate
                + s.coded_rate
        {
            Fault::Coded
        } else {
            Fault::None
        };
        let fault = match fault {
            Fault::Hollow | Fault::Coded if !write => Fault::None,
            other => other,
        };
        // The top of the same draw, so the sequence does not change.
        let fault = match fault {
            Fault::None if !write && draw >= 1.0 - s.read_fault_rate => Fault::ServerError,
            other => other,
        };
        Decision { fault, delay }
    }
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered with an injected 5xx.
    pub server_error: u64,
    /// Connections dropped before anything was applied.
    pub dropped: u64,
    /// Requests applied whose response was never sent.
    pub lost: u64,
    /// Requests applied, then answered with a body that never ends.
    #[serde(default)]
    pub oversized: u64,
    /// Requests applied, then answered `200 {}`.
    #[serde(default)]
    pub hollow: u64,
    /// Requests answered with an injected provider error.
    #[serde(default)]
    pub coded: u64,
    /// Requests that were given a non-zero delay.
    pub delayed: u64,
}

impl FaultCounts {
    /// Counts one decision.
    pub(crate) fn record(&mut self, decision: &Decision) {
        match decision.fault {
            Fault::None => {}
            Fault::RateLimited { .. } => self.rate_limited += 1,
            Fault::ServerError => self.server_error += 1,
            Fault::Drop => self.dropped += 1,
            Fault::Lose => self.lost += 1,
            Fault::Oversize => self.oversized += 1,
            Fault::Hollow => self.hollow += 1,
            Fault::Coded => self.coded += 1,
        }
        if !decision.delay.is_zero() {
            self.delayed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> FaultSettings {
        FaultSettings::default()
    }

    #[test]
    fn bucket_allows_burst_then_refuses_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3, t0);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.try_take(t1).is_ok());
        assert!(b.try_take(t1).is_err());
        // A long pause refills up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(t2).is_ok());
        }
        assert!(b.try_take(t2).is_err());
    }

    #[test]
    fn a_tiny_rate_does_not_overflow() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1e-300, 1, t0);
        assert!(b.try_take(t0).is_ok());
        assert_eq!(b.try_take(t0), Err(Duration::MAX));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(100)), 100);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn plan_rate_limits_past_the_burst() {
        let t0 = Instant::now();
        let settings = FaultSettings {
            rate: Some(0.5),
            burst: 2,
            ..quiet()
        };
        let mut plan = FaultPlan::new(settings, 1, t0);
        assert_eq!(plan.decide(t0).fault, Fault::None);
        assert_eq!(plan.decide(t0).fault, Fault::None);
        assert_eq!(plan.decide(t0).fault, Fault::RateLimited { retry_after: 2 });
    }

    #[test]
    fn plan_faults_follow_rates_and_seed() {
        let settings = FaultSettings {
            fault_rate: 0.2,
            drop_rate: 0.2,
            lose_rate: 0.2,
            ..quiet()
        };
        let t0 = Instant::now();
        let run = |seed| {
            let mut plan = FaultPlan::new(settings.clone(), seed, t0);
            (0..2000).map(|_| plan.decide(t0).fault).collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same faults");
        assert_ne!(a, run(43), "another seed, other faults");
        let count = |f: Fault| a.iter().filter(|x| **x == f).count();
        for f in [Fault::ServerError, Fault::Drop, Fault::Lose, Fault::None] {
            let n = count(f);
            // 20% (40% for None) of 2000, with a wide margin.
            let expected = if f == Fault::None { 800 } else { 400 };
            assert!(n.abs_diff(expected) < 120, "{f:?}: {n}");
        }
    }

    #[test]
    fn certain_faults_always_happen() {
        let t0 = Instant::now();
        for (settings, fault) in [
            (
                FaultSettings {
                    fault_rate: 1.0,
                    ..quiet()
                },
                Fault::ServerError,
            ),
            (
                FaultSettings {
                    drop_rate: 1.0,
                    ..quiet()
                },
                Fault::Drop,
            ),
            (
                FaultSettings {
                    lose_rate: 1.0,
                    ..quiet()
                },
                Fault::Lose,
            ),
            (
                FaultSettings {
                    oversize_rate: 1.0,
                    ..quiet()
                },
                Fault::Oversize,
            ),
            (
                FaultSettings {
                    hollow_rate: 1.0,
                    ..quiet()
                },
                Fault::Hollow,
            ),
            (
                FaultSettings {
                    coded_rate: 1.0,
                    ..quiet()
                },
                Fault::Coded,
            ),
            (quiet(), Fault::None),
        ] {
            let mut plan = FaultPlan::new(settings, 9, t0);
            for _ in 0..100 {
                assert_eq!(plan.decide(t0).fault, fault);
            }
        }
    }

    #[test]
    fn new_fault_kinds_leave_the_old_draws_alone() {
        // Shares of the newer kinds come after the older ones: a seed that
        // replayed a run before they existed replays it still.
        let old = FaultSettings {
            fault_rate: 0.1,
            drop_rate: 0.1,
            lose_rate: 0.1,
            ..quiet()
        };
        let new = FaultSettings {
            oversize_rate: 0.1,
            hollow_rate: 0.1,
            coded_rate: 0.1,
            ..old.clone()
        };
        let t0 = Instant::now();
        let (mut a, mut b) = (FaultPlan::new(old, 4, t0), FaultPlan::new(new, 4, t0));
        let mut seen = FaultCounts::default();
        for _ in 0..2000 {
            let (x, y) = (a.decide(t0), b.decide(t0));
            if x.fault != Fault::None {
                assert_eq!(x.fault, y.fault);
            }
            seen.record(&y);
        }
        assert!(
            seen.oversized > 100 && seen.hollow > 100 && seen.coded > 100,
            "{seen:?}"
        );
    }

    #[test]
    fn reads_are_never_hollow_nor_coded() {
        let settings = FaultSettings {
            hollow_rate: 0.5,
            coded_rate: 0.5,
            ..quiet()
        };
        let t0 = Instant::now();
        let mut plan = FaultPlan::new(settings, 2, t0);
        for _ in 0..100 {
            assert_eq!(plan.decide_for(t0, false).fault, Fault::None);
            assert_ne!(plan.decide_for(t0, true).fault, Fault::None);
        }
    }

    #[test]
    fn delay_is_latency_plus_bounded_jitter() {
        let t0 = Instant::now();
        let settings = FaultSettings {
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(50),
            ..quiet()
        };
        let mut plan = FaultPlan::new(settings, 5, t0);
        let delays: Vec<Duration> = (0..500).map(|_| plan.decide(t0).delay).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(100) && *d < Duration::from_millis(150))
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies");
        let mut counts = FaultCounts::default();
        counts.record(&Decision {
            fault: Fault::Lose,
            delay: delays[0],
        });
        assert_eq!((counts.lost, counts.delayed), (1, 1));
    }
}
