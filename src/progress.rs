//! The operator's view of a running sync: a progress bar on a terminal,
//! plain periodic log lines otherwise, nothing with `-q`.
//!
//! One set of counters feeds everything shown: rows finished are the rows
//! ok plus the rows with a problem, so the figures always add up. Rates are
//! the ones achieved over the last few seconds, never the configured
//! `--rate`. While the provider's listing is read, rows stand still: the
//! display says what it is doing instead of stretching an ETA to years.
//! The formatting and the arithmetic are pure ([`Figures`], [`Meter`],
//! [`describe`]) and tested without a terminal or a clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::codes::Outcome;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An indicatif bar on stderr.
    Bar,
    /// A log line every few seconds.
    Lines,
    /// Nothing.
    Silent,
}

/// Chooses the mode from facts the caller gathers, so it is testable without a TTY.
pub(crate) fn mode(stderr_is_terminal: bool, quiet: bool) -> Mode {
    match (quiet, stderr_is_terminal) {
        (true, _) => Mode::Silent,
        (false, true) => Mode::Bar,
        (false, false) => Mode::Lines,
    }
}

/// Counters shared with the report writer: every finished row counts once,
/// in one of the two.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Rows added, updated, unchanged (or would be, in a dry run).
    ok: AtomicU64,
    /// Rows invalid, failed or not attempted.
    problems: AtomicU64,
}

impl Counts {
    /// Counts one finished row.
    pub(crate) fn record(&self, outcome: Outcome) {
        if outcome.is_problem() {
            self.problems.fetch_add(1, Ordering::Relaxed);
        } else {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (ok, problems) so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.problems.load(Ordering::Relaxed),
        )
    }
}

/// Listings of the provider's contacts under way, and the contacts they have read.
#[derive(Debug, Default)]
pub(crate) struct ListingGauge {
    running: AtomicU32,
    contacts: AtomicU64,
}

/// Marks a listing under way until dropped.
pub(crate) struct ListingGuard<'a>(&'a ListingGauge);

impl ListingGauge {
    /// A listing starts; it ends when the guard is dropped.
    pub(crate) fn start(&self) -> ListingGuard<'_> {
        if self.running.fetch_add(1, Ordering::Relaxed) == 0 {
            // A new listing: "so far" counts from zero again.
            self.contacts.store(0, Ordering::Relaxed);
        }
        ListingGuard(self)
    }

    /// A page of `n` contacts was read.
    pub(crate) fn page(&self, n: usize) {
        self.contacts.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The contacts listed so far when a listing is under way, else `None`.
    pub(crate) fn now(&self) -> Option<u64> {
        (self.running.load(Ordering::Relaxed) > 0).then(|| self.contacts.load(Ordering::Relaxed))
    }
}

impl Drop for ListingGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What is shown at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Figures {
    /// Rows of the file.
    pub total: u64,
    /// Rows finished fine.
    pub ok: u64,
    /// Rows finished with a problem.
    pub problems: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Contacts read so far by a listing under way, if one is.
    pub listing: Option<u64>,
}

impl Figures {
    /// Rows finished.
    pub(crate) fn done(&self) -> u64 {
        self.ok + self.problems
    }
}

/// Achieved rates, measured over a sliding window of samples.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    window: Duration,
    /// (time since the start, rows finished, requests sent).
    samples: VecDeque<(Duration, u64, u64)>,
}

/// Rows and requests per second, when enough time has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Rates {
    /// Rows finished per second.
    pub rows: Option<f64>,
    /// Requests sent per second.
    pub requests: Option<f64>,
}

impl Meter {
    /// The shortest span a rate is computed over.
    const MIN_SPAN: Duration = Duration::from_secs(1);

    /// A meter averaging over `window`.
    pub(crate) fn new(window: Duration) -> Meter {
        Meter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records the counters at `at` (time since the start).
    pub(crate) fn observe(&mut self, at: Duration, done: u64, requests: u64) {
        self.samples.push_back((at, done, requests));
        // Keep one sample at or before the window's start, so the span is whole.
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
    }

    /// Forgets every sample: what follows is measured afresh.
    pub(crate) fn restart(&mut self) {
        self.samples.clear();
    }

    /// The rates between the oldest and the newest sample kept.
    pub(crate) fn rates(&self) -> Rates {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return Rates::default();
        };
        let span = last.0.saturating_sub(first.0);
        if span < Self::MIN_SPAN {
            return Rates::default();
        }
        let per_second = |a: u64, b: u64| Some(b.saturating_sub(a) as f64 / span.as_secs_f64());
        Rates {
            rows: per_second(first.1, last.1),
            requests: per_second(first.2, last.2),
        }
    }
}

/// The rates shown: requests per second over the last seconds, and rows
/// per second since the last listing ended (the rows that stood still while
/// it ran say nothing of the time left).
#[derive(Debug, Clone)]
pub(crate) struct Speed {
    requests: Meter,
    rows: Meter,
}

impl Default for Speed {
    fn default() -> Speed {
        Speed {
            requests: Meter::new(Duration::from_secs(5)),
            rows: Meter::new(Duration::from_secs(5)),
        }
    }
}

impl Speed {
    /// Records `figures` at `at` (time since the start) and returns the rates.
    pub(crate) fn observe(&mut self, at: Duration, figures: &Figures) -> Rates {
        self.requests.observe(at, figures.done(), figures.requests);
        if figures.listing.is_some() {
            self.rows.restart();
        }
        self.rows.observe(at, figures.done(), figures.requests);
        Rates {
            rows: self.rows.rates().rows,
            requests: self.requests.rates().requests,
        }
    }
}

/// The time left at `rows_per_second` for what remains of `figures`: none
/// while a listing runs, before any row has been seen to finish, or once done.
pub(crate) fn eta(figures: &Figures, rates: Rates) -> Option<Duration> {
    let left = figures.total.saturating_sub(figures.done());
    let rate = rates.rows.filter(|r| *r > 0.0)?;
    if figures.listing.is_some() || left == 0 {
        return None;
    }
    Some(Duration::from_secs_f64((left as f64 / rate).ceil()))
}

/// `45s`, `3m05s`, `2h07m`, `3d04h`.
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// What goes after the row count: outcomes, requests, the achieved rate and
/// the ETA — or, while the provider's contacts are listed, that instead.
pub(crate) fn describe(figures: &Figures, rates: Rates) -> String {
    let mut parts = Vec::new();
    match figures.listing {
        Some(n) => parts.push(format!(
            "listing the contacts already on the provider ({n} so far)"
        )),
        None => {
            parts.push(format!("ok {}", figures.ok));
            parts.push(format!("invalid/failed {}", figures.problems));
        }
    }
    parts.push(format!(
        "{} {}",
        figures.requests,
        if figures.requests == 1 {
            "request"
        } else {
            "requests"
        }
    ));
    if let Some(r) = rates.requests {
        parts.push(format!("{r:.1} req/s"));
    }
    if let Some(left) = eta(figures, rates) {
        parts.push(format!("ETA {}", short_duration(left)));
    }
    parts.join(", ")
}

/// A live progress display.
pub(crate) struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    speed: Speed,
    /// The shared counters.
    pub counts: Arc<Counts>,
}

impl Progress {
    /// How often a line is logged when there is no bar.
    const LINE_EVERY: Duration = Duration::from_secs(10);

    /// A display for `total` rows.
    pub(crate) fn new(mode: Mode, total: u64) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} rows  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            mode,
            bar,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            speed: Speed::default(),
            counts: Arc::new(Counts::default()),
        }
    }

    /// Refreshes the display: `requests` sent so far, and the contacts a
    /// listing under way has read, if one is.
    pub(crate) fn tick(&mut self, requests: u64, listing: Option<u64>) {
        let (ok, problems) = self.counts.get();
        let figures = Figures {
            total: self.total,
            ok,
            problems,
            requests,
            listing,
        };
        let rates = self.speed.observe(self.started.elapsed(), &figures);
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(figures.done());
                    bar.set_message(describe(&figures, rates));
                    bar.tick();
                }
            }
            Mode::Lines => {
                if self.last_line.elapsed() >= Self::LINE_EVERY {
                    self.last_line = Instant::now();
                    tracing::info!(
                        "progress: {}/{} rows, {}, {} elapsed",
                        figures.done(),
                        self.total,
                        describe(&figures, rates),
                        short_duration(self.started.elapsed())
                    );
                }
            }
            Mode::Silent => {}
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn bar_only_on_a_terminal_and_never_when_quiet() {
        assert_eq!(mode(true, false), Mode::Bar);
        assert_eq!(mode(false, false), Mode::Lines);
        assert_eq!(mode(true, true), Mode::Silent);
    }

    #[test]
    fn every_finished_row_counts_once_and_the_figures_add_up() {
        let c = Counts::default();
        for o in [
            Outcome::Added,
            Outcome::Failed,
            Outcome::Unchanged,
            Outcome::Invalid,
            Outcome::NotAttempted,
            Outcome::WouldAdd,
        ] {
            c.record(o);
        }
        assert_eq!(c.get(), (3, 3));
        let (ok, problems) = c.get();
        let f = Figures {
            total: 10,
            ok,
            problems,
            ..Figures::default()
        };
        assert_eq!(f.done(), 6);
    }

    #[test]
    fn the_rate_is_the_achieved_one_over_the_window() {
        let mut m = Meter::new(secs(5.0));
        assert_eq!(m.rates(), Rates::default(), "nothing seen yet");
        m.observe(secs(0.0), 0, 0);
        m.observe(secs(0.5), 10, 5);
        assert_eq!(
            m.rates().requests,
            None,
            "half a second is too short to say"
        );
        m.observe(secs(2.0), 40, 20);
        assert_eq!(m.rates().requests, Some(10.0));
        assert_eq!(m.rates().rows, Some(20.0));
        // Slower now: the window forgets the fast start.
        for t in 3..=20 {
            m.observe(secs(t as f64), 40 + (t - 2) * 2, 20 + (t - 2));
        }
        let r = m.rates();
        assert_eq!(r.requests, Some(1.0));
        assert_eq!(r.rows, Some(2.0));
        // Stalled: zero, not the last rate seen.
        for t in 21..=30 {
            m.observe(secs(t as f64), 76, 38);
        }
        assert_eq!(m.rates().rows, Some(0.0));
        m.restart();
        m.observe(secs(31.0), 76, 38);
        assert_eq!(m.rates(), Rates::default(), "measured afresh");
    }

    #[test]
    fn no_eta_while_listing_before_rows_finish_or_when_done() {
        let f = Figures {
            total: 1000,
            ok: 100,
            ..Figures::default()
        };
        let going = Rates {
            rows: Some(10.0),
            requests: Some(1.0),
        };
        assert_eq!(eta(&f, going), Some(secs(90.0)));
        let listing = Figures {
            listing: Some(40),
            ..f
        };
        assert_eq!(eta(&listing, going), None);
        let stalled = Rates {
            rows: Some(0.0),
            ..going
        };
        assert_eq!(eta(&f, stalled), None, "no row finished lately: no guess");
        assert_eq!(eta(&f, Rates::default()), None);
        let done = Figures { ok: 1000, ..f };
        assert_eq!(eta(&done, going), None);
    }

    #[test]
    fn after_a_listing_the_eta_counts_from_its_end() {
        let mut speed = Speed::default();
        let mut f = Figures {
            total: 1000,
            ..Figures::default()
        };
        // Ten seconds of listing: requests go, rows stand still.
        for t in 0..=10 {
            f.requests = t * 10;
            f.listing = Some(t * 200);
            let r = speed.observe(secs(t as f64), &f);
            assert_eq!(eta(&f, r), None);
            if t >= 1 {
                assert_eq!(r.requests, Some(10.0), "t={t}");
            }
        }
        // Then 100 rows a second.
        f.listing = None;
        for t in 11..=13 {
            f.ok = (t - 10) * 100;
            f.requests = 100 + (t - 10) * 10;
            let r = speed.observe(secs(t as f64), &f);
            if t == 13 {
                assert_eq!(r.rows, Some(100.0));
                assert_eq!(eta(&f, r), Some(secs(7.0)));
            }
        }
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(secs(0.0)), "0s");
        assert_eq!(short_duration(secs(45.0)), "45s");
        assert_eq!(short_duration(secs(185.0)), "3m05s");
        assert_eq!(short_duration(secs(7620.0)), "2h07m");
        assert_eq!(short_duration(secs(273_600.0)), "3d04h");
    }

    #[test]
    fn the_line_says_what_is_happening() {
        let f = Figures {
            total: 1000,
            ok: 90,
            problems: 10,
            requests: 12,
            listing: None,
        };
        let r = Rates {
            rows: Some(50.0),
            requests: Some(4.3),
        };
        assert_eq!(
            describe(&f, r),
            "ok 90, invalid/failed 10, 12 requests, 4.3 req/s, ETA 18s"
        );
        assert_eq!(
            describe(&f, Rates::default()),
            "ok 90, invalid/failed 10, 12 requests"
        );
        let listing = Figures {
            listing: Some(340),
            requests: 1,
            ..f
        };
        assert_eq!(
            describe(&listing, r),
            "listing the contacts already on the provider (340 so far), 1 request, 4.3 req/s"
        );
    }

    #[test]
    fn usage_md_shows_the_bar_as_describe_writes_it() {
        let doc = include_str!("../docs/usage.md");
        let sending = Figures {
            total: 2000,
            ok: 346,
            problems: 0,
            requests: 450,
            listing: None,
        };
        let listing = Figures {
            total: 2000,
            ok: 0,
            problems: 0,
            requests: 43,
            listing: Some(780),
        };
        for (f, requests) in [(sending, 38.8), (listing, 35.8)] {
            let rates = Rates {
                rows: Some(38.5),
                requests: Some(requests),
            };
            let line = format!("{}/{} rows  {}\n", f.done(), f.total, describe(&f, rates));
            assert!(doc.contains(&line), "usage.md lacks: {line}");
        }
    }

    #[test]
    fn a_listing_shows_until_its_guard_is_dropped() {
        let g = ListingGauge::default();
        assert_eq!(g.now(), None);
        {
            let _a = g.start();
            g.page(20);
            assert_eq!(g.now(), Some(20));
            let _b = g.start();
            g.page(5);
            assert_eq!(g.now(), Some(25));
        }
        assert_eq!(g.now(), None);
        let _c = g.start();
        assert_eq!(g.now(), Some(0), "a new listing counts from zero");
    }
}
