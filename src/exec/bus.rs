//! The event bus: stamps every `Event` with a sequence number and a UTC timestamp, and hands the
//! resulting `Record` to each subscriber in order. The runner owns the bus, so there is exactly
//! one writer and `seq` is strictly increasing.
//!
//! Subscribers must not block: the journal writer queues the record for its group-commit task,
//! the progress display draws, webhooks enqueue into a bounded queue.

use std::future::Future;
use std::io;
use std::pin::Pin;

use crate::events::{Event, Record};
use crate::mask::Masker;

/// Anything that watches a run.
pub trait Subscriber: Send {
    fn on_record(&mut self, rec: &Record);
    /// Called once after the last record (flush, clear progress bars, ...).
    fn finish(&mut self) {}
}

/// Lets the runner wait until the record with sequence number `seq` is durable (the journal's
/// fsync), before it reports the run as finished.
pub trait Durability: Send + Sync {
    fn durable(&self, seq: u64) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
}

pub struct Bus {
    next_seq: u64,
    subscribers: Vec<Box<dyn Subscriber>>,
    masker: Masker,
}

impl Bus {
    /// `first_seq` is 1 for a new run; resume continues after the journal's last record.
    pub fn new(first_seq: u64, masker: Masker) -> Bus {
        Bus {
            next_seq: first_seq.max(1),
            subscribers: Vec::new(),
            masker,
        }
    }

    pub fn subscribe(&mut self, sub: Box<dyn Subscriber>) {
        self.subscribers.push(sub);
    }

    /// Publishes `event` at time `ts`; returns its sequence number. Free text fields are masked
    /// here too, as a last line of defence: a secret echoed by a command must never reach a
    /// subscriber.
    pub fn emit(&mut self, ts: jiff::Timestamp, event: Event) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let rec = Record {
            seq,
            ts,
            event: mask_event(&self.masker, event),
        };
        for s in &mut self.subscribers {
            s.on_record(&rec);
        }
        seq
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn finish(&mut self) {
        for s in &mut self.subscribers {
            s.finish();
        }
    }
}

fn mask_event(m: &Masker, mut ev: Event) -> Event {
    if m.is_empty() {
        return ev;
    }
    let fix = |s: &mut String| {
        if let std::borrow::Cow::Owned(o) = m.mask(s) {
            *s = o;
        }
    };
    match &mut ev {
        Event::StepStarted {
            action: Some(a), ..
        } => fix(a),
        Event::StepAttemptFailed { error, output, .. }
        | Event::StepFailed { error, output, .. }
        | Event::RpoProbeFailed { error, output, .. } => {
            fix(error);
            fix(output);
        }
        Event::ManualWaiting { prompt, .. } => fix(prompt),
        Event::CheckFailed { error, .. } | Event::ServiceFailed { error, .. } => fix(error),
        _ => {}
    }
    ev
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_increases_and_secrets_are_masked() {
        let m = Masker::new();
        m.add("hunter2");
        let mut bus = Bus::new(1, m);
        let c = Collector::default();
        bus.subscribe(Box::new(c.clone()));
        let ts = jiff::Timestamp::UNIX_EPOCH;
        bus.emit(
            ts,
            Event::ServiceStarted {
                service: "a".into(),
            },
        );
        bus.emit(
            ts,
            Event::StepFailed {
                service: "a".into(),
                step: "s".into(),
                attempts: 1,
                error: "bad password hunter2".into(),
                output: "hunter2\n".into(),
                optional: false,
            },
        );
        let recs = c.records();
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        let json = serde_json::to_string(&recs[1]).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(bus.last_seq(), 2);
    }
}
