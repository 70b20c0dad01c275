//! Operator interrupts: SIGINT/SIGTERM for the binary, an [`Interrupter`] for library callers
//! and tests. The first stops scheduling and lets running steps finish; the second kills them.

use tokio::sync::mpsc;

/// Lets tests and embedders deliver what SIGINT would: first call stops scheduling, second
/// kills running steps.
#[derive(Clone)]
pub struct Interrupter(pub(super) mpsc::UnboundedSender<()>);

impl Interrupter {
    pub fn interrupt(&self) {
        let _ = self.0.send(());
    }
}

pub(super) struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Listens to SIGINT and SIGTERM when `handle` (the binary), to nothing otherwise.
    pub(super) fn new(handle: bool) -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        if !handle {
            return Signals {
                int: None,
                term: None,
            };
        }
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }
}

async fn recv_sig(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

/// The next interrupt: a signal, or a call of an [`Interrupter`].
pub(super) async fn interrupt(s: &mut Signals, rx: &mut mpsc::UnboundedReceiver<()>) {
    tokio::select! {
        _ = recv_sig(&mut s.int) => {}
        _ = recv_sig(&mut s.term) => {}
        Some(_) = rx.recv() => {}
    }
}
