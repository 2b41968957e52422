//! Adaptive send rate (AIMD), as plain arithmetic: a 429 halves the rate, and
//! the rate climbs back linearly in time, never above the configured
//! `--rate` nor below a floor. The pacer applies the result; nothing here
//! sleeps or reads a clock (times are passed in as offsets from a start).

use std::time::Duration;

/// The adaptive rate state.
///
/// A burst of 429s caused by one rate counts once: a 429 only lowers the rate
/// when its request was sent *after* the previous decrease (TCP's "once per
/// window"), since requests already in flight were paced at the old rate.
///
/// Recovery is linear in *time* since the last decrease, not in answers:
/// `max(base, max/4) / RECOVERY_SECS` requests/s per second, where `base` is
/// the rate right after that decrease. Climbing back from one halving to the
/// rate that drew the 429 thus takes about `RECOVERY_SECS`, and from the floor
/// to `max` about `4 · RECOVERY_SECS` whatever the floor. Time spent idle —
/// a server-requested pause (`Retry-After`) included — counts as recovery, so
/// a long pause is never read as "slow down for good"; the floor
/// (`FLOOR_SHARE` of `max` by default) keeps the rate useful meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Aimd {
    max: f64,
    min: f64,
    /// The rate right after the last decrease.
    base: f64,
    /// When the last decrease happened.
    last_decrease: Option<Duration>,
}

impl Aimd {
    /// Halving on a 429 (TCP's choice).
    pub(crate) const DECREASE_FACTOR: f64 = 0.5;
    /// Seconds to climb back from a halving to the rate that drew the 429.
    pub(crate) const RECOVERY_SECS: f64 = 10.0;
    /// The default floor, as a share of the configured rate: a tenth, so a
    /// throttled run slows by 10× at worst, never to a crawl.
    pub(crate) const FLOOR_SHARE: f64 = 0.01;

    /// Starts at `max` requests/s, never going below `min` (clamped to
    /// `max`). Both must be finite and positive; the dispatcher validates them.
    pub(crate) fn new(max: f64, min: f64) -> Self {
        let min = min.min(max);
        Self {
            max,
            min,
            base: max,
            last_decrease: None,
        }
    }

    /// The target rate at `now`, requests/s.
    pub(crate) fn rate_at(&self, now: Duration) -> f64 {
        match self.last_decrease {
            None => self.max,
            Some(at) => {
                let elapsed = now.saturating_sub(at).as_secs_f64();
                let slope = self.base.max(self.max / 4.0) / Self::RECOVERY_SECS;
                (self.base + slope * elapsed).min(self.max)
            }
        }
    }

    /// The configured ceiling, requests/s.
    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    /// Records a 429 for a request sent at `sent_at`, received at `now`;
    /// returns whether the rate dropped.
    pub(crate) fn on_throttled(&mut self, sent_at: Duration, now: Duration) -> bool {
        if self.last_decrease.is_some_and(|at| sent_at < at) {
            return false;
        }
        let current = self.rate_at(now);
        let lowered = (current * Self::DECREASE_FACTOR).max(self.min);
        self.base = lowered;
        self.last_decrease = Some(now);
        lowered < current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn starts_at_max_and_never_exceeds_it() {
        let a = Aimd::new(10.0, 1.0);
        assert_eq!(a.rate_at(secs(0.0)), 10.0);
        assert_eq!(a.rate_at(secs(1e6)), 10.0);
    }

    #[test]
    fn a_429_halves_the_rate() {
        let mut a = Aimd::new(10.0, 1.0);
        assert!(a.on_throttled(secs(1.0), secs(1.1)));
        assert_eq!(a.rate_at(secs(1.1)), 5.0);
    }

    #[test]
    fn a_burst_of_429s_from_one_window_counts_once() {
        let mut a = Aimd::new(16.0, 1.0);
        // Four requests in flight, all sent before the first 429 arrived.
        assert!(a.on_throttled(secs(1.00), secs(1.20)));
        assert!(!a.on_throttled(secs(1.05), secs(1.21)));
        assert!(!a.on_throttled(secs(1.10), secs(1.25)));
        assert!(!a.on_throttled(secs(1.19), secs(1.30)));
        assert_eq!(a.rate_at(secs(1.20)), 8.0);
        // A request sent after the decrease and still throttled counts again
        // (from the rate recovered meanwhile: 0.3 s at 0.8/s per second).
        assert!(a.on_throttled(secs(1.40), secs(1.50)));
        assert!((a.rate_at(secs(1.50)) - (8.0 + 0.8 * 0.3) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn never_below_the_floor() {
        let mut a = Aimd::new(8.0, 1.5);
        for i in 0..20 {
            let t = f64::from(i) * 0.01;
            a.on_throttled(secs(t), secs(t));
        }
        assert_eq!(a.rate_at(secs(0.19)), 1.5);
        a.on_throttled(secs(0.2), secs(0.2));
        assert_eq!(a.rate_at(secs(0.2)), 1.5);
    }

    #[test]
    fn floor_above_max_is_clamped() {
        let a = Aimd::new(0.5, 2.0);
        assert_eq!(a.rate_at(Duration::ZERO), 0.5);
    }

    #[test]
    fn recovery_from_one_halving_takes_recovery_secs() {
        for max in [5.0, 100.0, 1000.0] {
            let mut a = Aimd::new(max, max / 10.0);
            a.on_throttled(secs(0.0), secs(0.0));
            assert_eq!(a.rate_at(secs(0.0)), max / 2.0);
            // Linear: half-way after half the time.
            let mid = a.rate_at(secs(Aimd::RECOVERY_SECS / 2.0));
            assert!((mid - 0.75 * max).abs() < 1e-9, "{max}: {mid}");
            assert!(a.rate_at(secs(Aimd::RECOVERY_SECS * 0.99)) < max);
            assert_eq!(a.rate_at(secs(Aimd::RECOVERY_SECS)), max);
        }
    }

    #[test]
    fn from_the_floor_the_rate_is_back_within_four_recovery_periods() {
        let mut a = Aimd::new(5.0, 0.5);
        // A server that throttles everything for a while: down to the floor.
        for i in 0..10 {
            let t = f64::from(i);
            a.on_throttled(secs(t), secs(t));
        }
        assert_eq!(a.rate_at(secs(9.0)), 0.5);
        assert!(a.rate_at(secs(9.0 + 2.0 * Aimd::RECOVERY_SECS)) > 2.5);
        assert_eq!(a.rate_at(secs(9.0 + 4.0 * Aimd::RECOVERY_SECS)), 5.0);
    }

    #[test]
    fn a_long_server_pause_is_not_slow_down_forever() {
        // 429 + Retry-After 3600: one halving, then an hour of silence.
        let mut a = Aimd::new(5.0, 0.5);
        assert!(a.on_throttled(secs(10.0), secs(10.0)));
        assert_eq!(a.rate_at(secs(3610.0)), 5.0);
        // The first request after the pause, throttled again, halves from
        // the recovered rate, not from the floor.
        assert!(a.on_throttled(secs(3610.0), secs(3610.1)));
        assert_eq!(a.rate_at(secs(3610.1)), 2.5);
    }

    #[test]
    fn rate_stays_within_bounds_under_any_sequence() {
        let mut a = Aimd::new(20.0, 0.5);
        let mut t = 0.0;
        for i in 0..10_000u32 {
            t += 0.01;
            if i % 97 == 0 || i % 13 == 0 {
                a.on_throttled(secs((t - 0.05f64).max(0.0)), secs(t));
            }
            let r = a.rate_at(secs(t));
            assert!((0.5..=20.0).contains(&r), "{r}");
        }
    }
}
