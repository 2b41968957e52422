//! Adaptive send rate (AIMD), as plain arithmetic: a 429 halves the rate, and
//! successes bring it back linearly in time, never above the configured
//! `--rate` nor below a floor. The pacer applies the result; nothing here
//! sleeps or reads a clock (times are passed in as offsets from a start).

use std::time::Duration;

/// The adaptive rate state.
///
/// A burst of 429s caused by one rate counts once: a 429 only lowers the rate
/// when its request was sent *after* the previous decrease (TCP's "once per
/// window"), since requests already in flight were paced at the old rate.
///
/// Recovery adds, per success, `recovery_base / (recovery_secs · rate)`: at
/// `rate` successes a second that is a steady `recovery_base / recovery_secs`
/// requests/s per second, whatever the scale, where `recovery_base` is the
/// rate right after the last decrease. Climbing back to the rate that drew the
/// 429 thus takes about `recovery_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    max: f64,
    min: f64,
    rate: f64,
    decrease_factor: f64,
    recovery_secs: f64,
    recovery_base: f64,
    last_decrease: Option<Duration>,
}

impl Aimd {
    /// Halving on a 429 (TCP's choice).
    pub const DECREASE_FACTOR: f64 = 0.5;
    /// Seconds to climb back from a halving to the rate that drew the 429.
    pub const RECOVERY_SECS: f64 = 10.0;

    /// Starts at `max` requests/s, never going below `min` (clamped to
    /// `max`). Both must be finite and positive; the dispatcher validates them.
    pub fn new(max: f64, min: f64) -> Self {
        let min = min.min(max);
        Self {
            max,
            min,
            rate: max,
            decrease_factor: Self::DECREASE_FACTOR,
            recovery_secs: Self::RECOVERY_SECS,
            recovery_base: max,
            last_decrease: None,
        }
    }

    /// The current target rate, requests/s.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The configured ceiling, requests/s.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The floor, requests/s.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Records a 429 for a request sent at `sent_at`, received at `now`;
    /// returns whether the rate dropped.
    pub fn on_throttled(&mut self, sent_at: Duration, now: Duration) -> bool {
        if self.last_decrease.is_some_and(|at| sent_at < at) {
            return false;
        }
        self.last_decrease = Some(now);
        let lowered = (self.rate * self.decrease_factor).max(self.min);
        let changed = lowered < self.rate;
        self.rate = lowered;
        self.recovery_base = lowered;
        changed
    }

    /// Records an answered request that was not throttled; returns whether the
    /// rate rose.
    pub fn on_success(&mut self) -> bool {
        if self.rate >= self.max {
            return false;
        }
        let step = self.recovery_base / (self.recovery_secs * self.rate);
        self.rate = (self.rate + step).min(self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn starts_at_max_and_successes_do_not_exceed_it() {
        let mut a = Aimd::new(10.0, 0.1);
        assert_eq!(a.rate(), 10.0);
        assert!(!a.on_success());
        assert_eq!(a.rate(), 10.0);
    }

    #[test]
    fn a_429_halves_the_rate() {
        let mut a = Aimd::new(10.0, 0.1);
        assert!(a.on_throttled(secs(1.0), secs(1.1)));
        assert_eq!(a.rate(), 5.0);
    }

    #[test]
    fn a_burst_of_429s_from_one_window_counts_once() {
        let mut a = Aimd::new(16.0, 0.1);
        // Four requests in flight, all sent before the first 429 arrived.
        assert!(a.on_throttled(secs(1.00), secs(1.20)));
        assert!(!a.on_throttled(secs(1.05), secs(1.21)));
        assert!(!a.on_throttled(secs(1.10), secs(1.25)));
        assert!(!a.on_throttled(secs(1.19), secs(1.30)));
        assert_eq!(a.rate(), 8.0);
        // A request sent after the decrease and still throttled counts again.
        assert!(a.on_throttled(secs(1.40), secs(1.50)));
        assert_eq!(a.rate(), 4.0);
    }

    #[test]
    fn never_below_the_floor() {
        let mut a = Aimd::new(8.0, 1.5);
        let mut t = 0.0;
        for _ in 0..20 {
            t += 1.0;
            a.on_throttled(secs(t), secs(t + 0.1));
        }
        assert_eq!(a.rate(), 1.5);
        assert!(!a.on_throttled(secs(100.0), secs(100.1)));
    }

    #[test]
    fn floor_above_max_is_clamped() {
        let a = Aimd::new(0.5, 2.0);
        assert_eq!(a.min(), 0.5);
        assert_eq!(a.rate(), 0.5);
    }

    /// Simulates one second of successes at the current rate.
    fn one_second(a: &mut Aimd) {
        let n = a.rate().round() as usize;
        for _ in 0..n {
            a.on_success();
        }
    }

    #[test]
    fn recovery_is_additive_and_takes_about_recovery_secs() {
        for max in [10.0, 100.0, 1000.0] {
            let mut a = Aimd::new(max, 0.1);
            a.on_throttled(secs(0.0), secs(0.0));
            let half = max / 2.0;
            assert_eq!(a.rate(), half);
            // Linear: one second adds about half/RECOVERY_SECS.
            one_second(&mut a);
            let gained = a.rate() - half;
            let expected = half / Aimd::RECOVERY_SECS;
            assert!(
                (gained - expected).abs() < expected * 0.15,
                "{max}: {gained}"
            );
            let mut seconds = 1;
            while a.rate() < max && seconds < 100 {
                one_second(&mut a);
                seconds += 1;
            }
            assert_eq!(a.rate(), max);
            assert!((9..=12).contains(&seconds), "{max}: {seconds} s");
        }
    }

    #[test]
    fn rate_stays_within_bounds_under_any_sequence() {
        let mut a = Aimd::new(20.0, 0.5);
        let mut t = 0.0;
        for i in 0..10_000u32 {
            t += 0.01;
            if i % 97 == 0 || i % 13 == 0 {
                a.on_throttled(secs((t - 0.05f64).max(0.0)), secs(t));
            } else {
                a.on_success();
            }
            assert!((0.5..=20.0).contains(&a.rate()), "{}", a.rate());
        }
    }
}
