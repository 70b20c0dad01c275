//! The event bus: stamps every `Event` with a sequence number and a UTC timestamp, masks it,
//! folds it into the run's live `RunState`, and hands the resulting `Record` to each
//! subscriber in order. The runner owns the bus, so there is exactly one writer and `seq` is
//! strictly increasing.

use crate::events::{Event, Record, Subscriber};
use crate::mask::Masker;
use crate::runstate::RunState;

pub struct Bus {
    next_seq: u64,
    subscribers: Vec<Box<dyn Subscriber>>,
    masker: Masker,
    /// The run's outcome so far: every record is folded in as it is emitted.
    state: RunState,
}

impl Bus {
    /// `first_seq` is 1 for a new run; resume continues after the journal's last record.
    pub fn new(first_seq: u64, masker: Masker) -> Bus {
        Bus::with_state(first_seq, masker, RunState::default())
    }

    /// A bus whose live state continues from `state` (a resumed run's replayed journal).
    pub fn with_state(first_seq: u64, masker: Masker, state: RunState) -> Bus {
        Bus {
            next_seq: first_seq.max(1),
            subscribers: Vec::new(),
            masker,
            state,
        }
    }

    /// The live fold of everything emitted (plus the prior state it started from).
    pub fn state(&self) -> &RunState {
        &self.state
    }

    pub fn into_state(self) -> RunState {
        self.state
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
        self.state.apply(&rec);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Collector;

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
        // The live fold saw both records.
        assert_eq!(bus.state().last_seq, 2);
        assert_eq!(
            bus.state().service("a").unwrap().steps[0].status,
            crate::runstate::StepStatus::Failed
        );
    }
}
