//! SIGINT and SIGTERM, counted from the moment the run starts: the first
//! stops the sending, the second ends the run at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::config::Error;

/// The stop signals received so far; cheap to clone.
#[derive(Clone)]
pub(super) struct Signals {
    count: watch::Receiver<u32>,
    raised: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers now (from here on a signal no longer kills the
    /// process) and counts signals in a task. Call inside the runtime.
    pub(super) fn install() -> Result<Signals, Error> {
        let (tx, count) = watch::channel(0u32);
        let raised = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&raised);
        let cannot = |e: std::io::Error| Error::Runtime(format!("cannot handle signals: {e}"));
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            // Registered here, not when the task first runs.
            let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
            let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    flag.store(true, Ordering::SeqCst);
                    tx.send_modify(|c| *c += 1);
                }
            });
        }
        #[cfg(not(unix))]
        {
            let _ = cannot;
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                    tx.send_modify(|c| *c += 1);
                }
            });
        }
        Ok(Signals { count, raised })
    }

    /// A flag raised by the first signal, for code that is not async.
    pub(super) fn raised(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.raised)
    }

    /// Resolves once `n` signals have come.
    pub(super) async fn at_least(&self, n: u32) {
        let mut count = self.count.clone();
        if count.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
