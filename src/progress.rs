//! The operator's view of a running sync: a progress bar on a terminal,
//! plain periodic log lines otherwise, nothing with `-q`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::codes::Outcome;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar on stderr.
    Bar,
    /// A log line every few seconds.
    Lines,
    /// Nothing.
    Silent,
}

/// Chooses the mode from facts the caller gathers, so it is testable without a TTY.
pub fn mode(stderr_is_terminal: bool, quiet: bool) -> Mode {
    match (quiet, stderr_is_terminal) {
        (true, _) => Mode::Silent,
        (false, true) => Mode::Bar,
        (false, false) => Mode::Lines,
    }
}

/// Counters shared with the workers.
#[derive(Debug, Default)]
pub struct Counts {
    /// Rows read from the file so far.
    pub read: AtomicU64,
    /// Rows whose fate is decided.
    pub done: AtomicU64,
    /// Rows added, updated or unchanged.
    pub ok: AtomicU64,
    /// Rows invalid, failed or not attempted.
    pub failed: AtomicU64,
}

impl Counts {
    /// Counts one finished row.
    pub fn record(&self, outcome: Outcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if outcome.is_problem() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A live progress display.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    /// The shared counters.
    pub counts: Arc<Counts>,
}

impl Progress {
    /// A display for `total` rows.
    pub fn new(mode: Mode, total: u64) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {msg}  ETA {eta}")
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
            counts: Arc::new(Counts::default()),
        }
    }

    /// Refreshes the display with the dispatcher's figures.
    pub fn tick(&mut self, requests: u64, rate: f64) {
        let read = self.counts.read.load(Ordering::Relaxed);
        let done = self.counts.done.load(Ordering::Relaxed);
        let ok = self.counts.ok.load(Ordering::Relaxed);
        let failed = self.counts.failed.load(Ordering::Relaxed);
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    bar.set_message(format!(
                        "read {read}  ok {ok}  invalid/failed {failed}  requests {requests}  {rate:.1} req/s"
                    ));
                }
            }
            Mode::Lines => {
                if self.last_line.elapsed() >= Duration::from_secs(10) {
                    self.last_line = Instant::now();
                    tracing::info!(
                        "progress: {done}/{} rows done, {read} read, ok {ok}, invalid/failed {failed}, {requests} requests, {rate:.1} req/s, {:.0}s elapsed",
                        self.total,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Mode::Silent => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_only_on_a_terminal_and_never_when_quiet() {
        assert_eq!(mode(true, false), Mode::Bar);
        assert_eq!(mode(false, false), Mode::Lines);
        assert_eq!(mode(true, true), Mode::Silent);
    }

    #[test]
    fn counts_split_ok_and_failed() {
        let c = Counts::default();
        c.record(Outcome::Added);
        c.record(Outcome::Failed);
        c.record(Outcome::Unchanged);
        assert_eq!(c.done.load(Ordering::Relaxed), 3);
        assert_eq!(c.ok.load(Ordering::Relaxed), 2);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
    }
}
