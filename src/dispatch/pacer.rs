//! The send pacer: a governor quota at the current adaptive rate. Governor
//! quotas are fixed, so a rate change installs a fresh limiter; the AIMD
//! arithmetic itself lives in [`super::aimd`]. Times are tokio's, so tests
//! on a paused clock see the rate recover.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::aimd::Aimd;

/// Slack the quota allows, in seconds of sending: enough to absorb late
/// wake-ups (about 0.2–0.4 ms each, measured), small enough that no window of
/// one second sees more than 2% above the rate. See [`burst_for`].
const BURST_SLACK_SECS: f64 = 0.02;

/// Rate changes smaller than this share of the installed rate wait until they
/// add up, so that recovery does not rebuild the limiter on every request.
const REINSTALL_THRESHOLD: f64 = 0.05;

/// The quota burst at `rate` requests/s: one request plus whole requests of
/// 20 ms worth, so 1 below 50/s, 5 at 200/s, 21 at 1000/s. At most
/// `rate + burst − 1` requests leave in any one-second window.
///
/// With a burst of 1, every wake-up that comes late is lost for good: measured
/// (test `pacing_accuracy`) −1.6% at 50/s, −5% at 200/s, −15% at 1000/s,
/// about −0.3% at 10/s. A burst equal to the rate would release a whole
/// second's requests at once.
pub(crate) fn burst_for(rate: f64) -> NonZeroU32 {
    let extra = (rate * BURST_SLACK_SECS).floor();
    let burst = if extra.is_finite() && extra >= 0.0 {
        1.0 + extra.min(f64::from(u32::MAX - 1))
    } else {
        1.0
    };
    NonZeroU32::new(burst as u32).unwrap_or(NonZeroU32::MIN)
}

/// Builds the limiter for `rate` with `burst`, `None` if the rate is not a
/// usable period (the configuration is validated, so this does not happen).
fn limiter(rate: f64, burst: NonZeroU32) -> Option<DefaultDirectRateLimiter> {
    let period = Duration::try_from_secs_f64(1.0 / rate).ok()?;
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

struct State {
    aimd: Aimd,
    limiter: Arc<DefaultDirectRateLimiter>,
    installed: f64,
}

/// Paces attempts at an adaptive rate, shared by every task of a dispatcher.
pub(crate) struct Pacer {
    state: Mutex<State>,
    /// A fixed burst, or `None` for [`burst_for`] at each rate.
    burst: Option<NonZeroU32>,
    epoch: Instant,
    rate_bits: AtomicU64,
}

impl Pacer {
    /// A pacer starting at `max` requests/s, never going below `min`.
    /// `None` when `max` does not make a quota.
    pub(crate) fn new(max: f64, min: f64, burst: Option<NonZeroU32>) -> Option<Self> {
        let first = limiter(max, burst.unwrap_or_else(|| burst_for(max)))?;
        // The floor must make a quota too; a bad one falls back to the max.
        let min = if limiter(min, NonZeroU32::MIN).is_some() {
            min
        } else {
            max
        };
        Some(Self {
            state: Mutex::new(State {
                aimd: Aimd::new(max, min),
                limiter: Arc::new(first),
                installed: max,
            }),
            burst,
            epoch: Instant::now(),
            rate_bits: AtomicU64::new(max.to_bits()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the current quota allows one more attempt, first bringing
    /// the quota up to the rate recovered since the last 429.
    pub(crate) async fn ready(&self) {
        let limiter = {
            let mut state = self.lock();
            self.install(&mut state, false);
            Arc::clone(&state.limiter)
        };
        limiter.until_ready().await;
    }

    /// The rate currently paced at, requests/s.
    pub(crate) fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Records a 429 for an attempt sent at `sent_at`.
    pub(crate) fn on_throttled(&self, sent_at: Instant) {
        let now = self.epoch.elapsed();
        let sent = sent_at.saturating_duration_since(self.epoch);
        let mut state = self.lock();
        if state.aimd.on_throttled(sent, now) {
            self.install(&mut state, true);
        }
    }

    /// Installs a limiter at the AIMD rate of now if it moved enough (always
    /// after a decrease, and when reaching the ceiling).
    fn install(&self, state: &mut State, decreased: bool) {
        let rate = state.aimd.rate_at(self.epoch.elapsed());
        let moved = (rate - state.installed).abs() / state.installed;
        let at_max = rate >= state.aimd.max();
        if !(decreased || moved >= REINSTALL_THRESHOLD || at_max) || rate == state.installed {
            return;
        }
        let burst = self.burst.unwrap_or_else(|| burst_for(rate));
        let Some(fresh) = limiter(rate, burst) else {
            return;
        };
        // A fresh limiter would release its whole burst at once on top of what
        // the old one just sent; start it empty instead, as if just used.
        let _ = fresh.check_n(burst);
        state.limiter = Arc::new(fresh);
        state.installed = rate;
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        tracing::debug!(rate, "send rate changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_small_and_grows_with_rate() {
        assert_eq!(burst_for(0.1).get(), 1);
        assert_eq!(burst_for(5.0).get(), 1);
        assert_eq!(burst_for(49.9).get(), 1);
        assert_eq!(burst_for(50.0).get(), 2);
        assert_eq!(burst_for(200.0).get(), 5);
        assert_eq!(burst_for(1000.0).get(), 21);
        assert_eq!(burst_for(f64::INFINITY).get(), 1);
        assert_eq!(burst_for(f64::NAN).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_lowers_the_reported_rate_and_time_restores_it() {
        let p = Pacer::new(100.0, 10.0, None).unwrap();
        assert_eq!(p.rate(), 100.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        p.on_throttled(Instant::now());
        assert_eq!(p.rate(), 50.0);
        // Sent before the decrease: same window, no second halving.
        p.on_throttled(p.epoch);
        assert_eq!(p.rate(), 50.0);
        tokio::time::advance(Duration::from_secs_f64(Aimd::RECOVERY_SECS)).await;
        p.ready().await;
        assert_eq!(p.rate(), 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn small_recoveries_do_not_reinstall_the_limiter() {
        let p = Pacer::new(100.0, 10.0, None).unwrap();
        p.on_throttled(Instant::now());
        let before = Arc::as_ptr(&p.lock().limiter);
        // 0.05 s: +0.25/s, under the threshold.
        tokio::time::advance(Duration::from_millis(50)).await;
        p.ready().await;
        assert_eq!(Arc::as_ptr(&p.lock().limiter), before);
        assert_eq!(p.rate(), 50.0);
        // 1 s: +5/s, 10%: reinstalled.
        tokio::time::advance(Duration::from_secs(1)).await;
        p.ready().await;
        assert_ne!(Arc::as_ptr(&p.lock().limiter), before);
        assert!(p.rate() > 50.0);
    }

    #[test]
    fn unusable_rates_are_refused() {
        assert!(Pacer::new(0.0, 0.0, None).is_none());
        assert!(Pacer::new(-1.0, 0.0, None).is_none());
        assert!(Pacer::new(f64::NAN, 0.0, None).is_none());
        assert!(Pacer::new(1e-300, 1e-300, None).is_none());
    }
}
