//! The interfaces around the record stream: [`Subscriber`] (anything that watches a run) and
//! [`Durability`] (the journal, as the runner waits on it), plus two general subscribers.
//!
//! Subscribers must not block: the journal writer queues the record for its group-commit task,
//! the progress display draws, webhooks enqueue into a bounded queue.

use std::future::Future;
use std::pin::Pin;

use super::Record;

/// Anything that watches a run.
pub trait Subscriber: Send {
    fn on_record(&mut self, rec: &Record);
    /// Called once after the last record (flush, clear progress bars, ...).
    fn finish(&mut self) {}
}

/// What [`Durability::on_durable`] calls with the outcome.
pub type DurableCallback = Box<dyn FnOnce(Result<(), JournalFailure>) + Send>;

/// Why records can no longer be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalFailure {
    /// A write or sync failed (disk full, I/O error, store unreachable): nothing more is
    /// journaled, so nothing more may be done.
    Io(String),
    /// The run's lock (a store lease) was lost: another runner may own the run now, and this
    /// one must neither append nor act any more (fencing).
    LostLock(String),
}

impl std::fmt::Display for JournalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalFailure::Io(m) => write!(f, "the journal cannot be written: {m}"),
            JournalFailure::LostLock(m) => write!(f, "this runner lost the run's lock: {m}"),
        }
    }
}

/// The journal as the runner sees it: it waits until the record with sequence number `seq`
/// is durable before a step's side effects may happen (write-ahead) and before it reports the
/// run as finished, and it learns at once when the journal fails.
pub trait Durability: Send + Sync {
    fn durable(
        &self,
        seq: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), JournalFailure>> + Send + '_>>;
    /// Calls `done` once the record `seq` is durable (or can no longer be): what `durable`
    /// answers, without a task waiting for it (one per step start, on a 2 000-step run).
    fn on_durable(&self, seq: u64, done: DurableCallback);
    /// Calls `done` once the record `seq` would be read by a `resume` on this host if this
    /// process died now: written, maybe not yet durable against the host's death. By
    /// default, once it is durable.
    fn on_written(&self, seq: u64, done: DurableCallback) {
        self.on_durable(seq, done)
    }
    /// Resolves when the journal fails (write error, lost lock); pending while it works.
    fn failed(&self) -> Pin<Box<dyn Future<Output = JournalFailure> + Send + '_>>;
}

/// Forwards every record to `tracing` (target `meeseeks::event`, level info),
/// so `RUST_LOG` and `--log-format json` give a machine-readable event log on stderr.
pub struct TracingSubscriber;

impl Subscriber for TracingSubscriber {
    fn on_record(&mut self, rec: &Record) {
        let json = serde_json::to_string(&rec.event).unwrap_or_default();
        let name = rec.event.name();
        let service = rec.event.service().unwrap_or("");
        // Info, not warn: failures already reach the operator through the progress display;
        // this is the machine log, on demand (`-v`, `RUST_LOG`).
        tracing::info!(target: "meeseeks::event", seq = rec.seq, event = name, service, "{json}");
    }
}

/// A subscriber that keeps every record; for tests and for building the end-of-run summary.
#[derive(Clone, Default)]
pub struct Collector(pub std::sync::Arc<std::sync::Mutex<Vec<Record>>>);

impl Collector {
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Subscriber for Collector {
    fn on_record(&mut self, rec: &Record) {
        if let Ok(mut v) = self.0.lock() {
            v.push(rec.clone());
        }
    }
}
