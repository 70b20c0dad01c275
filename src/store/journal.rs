//! A run's journal writer, whatever the store: one task per run that commits in groups.
//!
//! Callers never wait to append: [`JournalHandle::emit`] assigns the next sequence number and a
//! UTC timestamp and queues the record on an unbounded channel. The writer task takes
//! everything queued and hands it to its store's [`Sink`] as one batch (one write for files,
//! one fenced transaction per chunk for etcd); records that arrive meanwhile form the next
//! batch. A file is fsynced apart, one sync at a time covering every batch written before it,
//! while the next batches are written. So a burst of N events costs one commit, not N, while
//! each record is still durable before anyone is told so. Code that must not go on before an
//! event is durable (a non-idempotent step's side effects, reporting a run finished) awaits
//! [`JournalHandle::durable`]; a step that may run twice waits for
//! [`JournalHandle::on_written`] only.
//!
//! Sequence numbers are assigned under the same lock that enqueues, so the store's order is
//! the sequence order whatever the number of concurrent emitters. After the first failed
//! batch nothing more is written: a journal with a hole would not replay.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::events::{Durability, DurableCallback, Event, JournalFailure, Record, Subscriber};
use crate::mask::Masker;

/// Why a batch could not be made durable (what the runner sees as a journal failure).
pub type Failure = JournalFailure;

/// Records serialized for one commit: JSON lines in `buf` (each ending at `ends[i]`, newline
/// included) with their sequence numbers.
#[derive(Debug, Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    pub ends: Vec<usize>,
    pub seqs: Vec<u64>,
}

impl Batch {
    /// The records, one line each (newline included).
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut start = 0;
        self.ends.iter().zip(&self.seqs).map(move |(&end, &seq)| {
            let line = &self.buf[start..end];
            start = end;
            (seq, line)
        })
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.seqs.clear();
    }
}

/// What a [`Sink`] returns: the batch back (to reuse its buffers) and whether it is durable.
pub type SinkWrite<'a> = Pin<Box<dyn Future<Output = (Batch, Result<(), Failure>)> + Send + 'a>>;

/// What [`Sink::sync`] returns: resolves once everything written before it was called is
/// durable, or with why it is not.
pub type SinkSync = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// Where a store commits a journal's batches. `write` makes the batch durable (or says why it
/// cannot), and hands it back so its buffers are reused — unless the sink `syncs_apart`.
pub trait Sink: Send + 'static {
    fn write(&mut self, batch: Batch) -> SinkWrite<'_>;

    /// `write` only writes where this host reads it back (a file's page cache), and
    /// [`Sink::sync`] makes it durable: the writer then writes the next batches while a sync
    /// runs (see [`JournalHandle::on_written`]).
    fn syncs_apart(&self) -> bool {
        false
    }

    /// Makes everything written so far durable (only called when `syncs_apart`).
    fn sync(&mut self) -> SinkSync {
        Box::pin(async { Ok(()) })
    }
}

/// Serializes one record as a JSON line with every registered secret masked. Masking walks
/// the JSON values rather than the text, so a secret that JSON escaping would alter (quotes,
/// backslashes, control characters) is still found.
pub(crate) fn serialize_line(rec: &Record, masker: &Masker, out: &mut Vec<u8>) {
    let fixed;
    let rec = if has_non_finite(&rec.event) {
        // JSON has no NaN/inf: serde_json would write `null`, which does not read back as a
        // number, and one unreadable line in the middle makes the whole run unresumable.
        tracing::error!(
            "journal: non-finite number in {}; written as 0",
            rec.event.name()
        );
        let mut r = rec.clone();
        zero_non_finite(&mut r.event);
        fixed = r;
        &fixed
    } else {
        rec
    };
    if masker.is_empty() {
        // Serializing our own types into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, rec);
    } else {
        let mut v = serde_json::to_value(rec).unwrap_or(serde_json::Value::Null);
        mask_value(&mut v, masker);
        let _ = serde_json::to_writer(&mut *out, &v);
    }
    out.push(b'\n');
}

fn floats_mut(ev: &mut Event) -> Vec<&mut f64> {
    match ev {
        Event::StepSucceeded { duration_s, .. } => vec![duration_s],
        Event::ServiceRecovered { recovered_s, .. } => vec![recovered_s],
        Event::RtoBreached { rto_s, .. } => vec![rto_s],
        Event::RunStarted { plan, .. } => plan
            .iter_mut()
            .map(std::sync::Arc::make_mut)
            .flat_map(|p| [&mut p.rto_s, &mut p.start_s, &mut p.ready_s])
            .filter_map(Option::as_mut)
            .collect(),
        _ => Vec::new(),
    }
}

fn has_non_finite(ev: &Event) -> bool {
    match ev {
        Event::StepSucceeded { duration_s: x, .. }
        | Event::ServiceRecovered { recovered_s: x, .. }
        | Event::RtoBreached { rto_s: x, .. } => !x.is_finite(),
        Event::RunStarted { plan, .. } => plan.iter().any(|p| {
            [p.rto_s, p.start_s, p.ready_s]
                .iter()
                .flatten()
                .any(|x| !x.is_finite())
        }),
        _ => false,
    }
}

fn zero_non_finite(ev: &mut Event) {
    for x in floats_mut(ev) {
        if !x.is_finite() {
            *x = 0.0;
        }
    }
}

fn mask_value(v: &mut serde_json::Value, masker: &Masker) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(m) = masker.mask(s) {
                *s = m;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_value(x, masker)),
        Value::Object(o) => {
            // Keys could carry a secret too (e.g. options maps); rebuild only if one does.
            if o.keys()
                .any(|k| matches!(masker.mask(k), std::borrow::Cow::Owned(_)))
            {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    mask_value(&mut x, masker);
                    o.insert(masker.mask(&k).into_owned(), x);
                }
            } else {
                o.values_mut().for_each(|x| mask_value(x, masker));
            }
        }
        _ => {}
    }
}

enum Msg {
    Rec(Box<Record>),
    /// Call this once record `seq` is durable (or can no longer be). Sent after the record
    /// on the same channel, so it is answered right after the batch that holds the record.
    Wait(u64, DurableCallback),
    /// Call this once record `seq` is written (see [`JournalHandle::on_written`]).
    WaitWritten(u64, DurableCallback),
    Close(oneshot::Sender<Result<(), Failure>>),
}

#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every record with `seq <=` this is written and fsynced.
    seq: u64,
    /// The first write error; nothing is written after it.
    error: Option<Failure>,
    /// The writer task has stopped.
    closed: bool,
    /// Batches written (each one write; in `Group` mode fsynced apart, often several at once).
    batches: u64,
}

struct Inner {
    tx: mpsc::UnboundedSender<Msg>,
    /// The last sequence number handed out; locked while enqueueing so that channel order is
    /// sequence order.
    seq: Mutex<u64>,
    durable: watch::Receiver<Durable>,
    /// What to call the journal in messages (a path, a store key prefix).
    name: String,
}

/// A cheap, clonable handle to a run's journal writer.
#[derive(Clone)]
pub struct JournalHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalHandle")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// Starts the writer task of a journal whose last durable record is `last_seq` (needs a
/// tokio runtime).
pub(crate) fn spawn(
    name: String,
    sink: Box<dyn Sink>,
    last_seq: u64,
    masker: Masker,
    fence: Option<watch::Receiver<Option<Failure>>>,
) -> JournalHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(Durable {
        seq: last_seq,
        ..Durable::default()
    });
    tokio::spawn(writer_task(rx, sink, masker, state_tx, fence, name.clone()));
    JournalHandle {
        inner: Arc::new(Inner {
            tx,
            seq: Mutex::new(last_seq),
            durable: state_rx,
            name,
        }),
    }
}

impl JournalHandle {
    /// Journals `event` now: assigns the next sequence number and the current UTC time, queues
    /// it without blocking, and returns the record (to hand to other subscribers).
    pub fn emit(&self, event: Event) -> Record {
        let mut seq = self.inner.seq.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        let rec = Record {
            seq: *seq,
            ts: jiff::Timestamp::now(),
            event,
        };
        self.send(Msg::Rec(Box::new(rec.clone())));
        rec
    }

    /// Journals a record built by the caller (an event bus that numbers records itself).
    /// Its sequence number is kept if it follows the last one; otherwise (a caller bug) it is
    /// renumbered, because a journal whose numbers go backwards would not replay. Returns the
    /// sequence number written.
    pub fn append(&self, mut rec: Record) -> u64 {
        let mut seq = self.inner.seq.lock().unwrap_or_else(|e| e.into_inner());
        if rec.seq <= *seq {
            tracing::warn!(
                "journal: record {} ({}) does not follow {}; renumbered",
                rec.seq,
                rec.event.name(),
                *seq
            );
            rec.seq = *seq + 1;
        }
        *seq = rec.seq;
        let n = rec.seq;
        self.send(Msg::Rec(Box::new(rec)));
        n
    }

    fn send(&self, msg: Msg) {
        if self.inner.tx.send(msg).is_err() {
            // Only after close() or a dead runtime; durable() reports it to whoever cares.
            tracing::error!("journal {} is closed; event lost", self.inner.name);
        }
    }

    /// The last sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        *self.inner.seq.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once every record with `seq <=` `seq` is written and durable.
    pub async fn durable(&self, seq: u64) -> Result<(), Failure> {
        if let Some(r) = self.settled(seq) {
            return r;
        }
        let (tx, rx) = oneshot::channel();
        self.on_durable(seq, Box::new(move |r| drop(tx.send(r))));
        match rx.await {
            Ok(r) => r,
            // The writer dropped the callback unanswered (it cannot: it answers every waiter
            // before it stops); its last state says how.
            Err(_) => self
                .settled(seq)
                .unwrap_or_else(|| Err(closed_before(&self.inner.name, seq))),
        }
    }

    /// Calls `done` once record `seq` is durable, or with the failure that means it never
    /// will be: from the writer task, right after the batch that holds it (no task waits).
    pub fn on_durable(&self, seq: u64, done: DurableCallback) {
        self.wait(seq, done, Msg::Wait)
    }

    /// Calls `done` once record `seq` is written where a `resume` on this host reads it even
    /// if this process dies right after (a file's page cache): that may be before it is
    /// durable against the host's death. For a sink that does not sync apart (etcd), once it
    /// is durable. Or with the failure that means it never will be.
    pub fn on_written(&self, seq: u64, done: DurableCallback) {
        self.wait(seq, done, Msg::WaitWritten)
    }

    fn wait(&self, seq: u64, done: DurableCallback, msg: fn(u64, DurableCallback) -> Msg) {
        if let Some(r) = self.settled(seq) {
            return done(r);
        }
        if let Err(mpsc::error::SendError(Msg::Wait(_, done) | Msg::WaitWritten(_, done))) =
            self.inner.tx.send(msg(seq, done))
        {
            // The writer has stopped: what it left is all there is.
            done(
                self.settled(seq)
                    .unwrap_or_else(|| Err(closed_before(&self.inner.name, seq))),
            );
        }
    }

    /// The answer for `seq` if the writer's state already gives it.
    fn settled(&self, seq: u64) -> Option<Result<(), Failure>> {
        let d = self.inner.durable.borrow();
        if d.seq >= seq {
            Some(Ok(()))
        } else if let Some(f) = &d.error {
            Some(Err(f.clone()))
        } else if d.closed {
            Some(Err(closed_before(&self.inner.name, seq)))
        } else {
            None
        }
    }

    /// Everything emitted so far is durable.
    pub async fn sync(&self) -> Result<(), Failure> {
        self.durable(self.last_seq()).await
    }

    /// Writes and fsyncs everything queued, then stops the writer. Records emitted through
    /// other clones after this are lost (and logged as errors).
    pub async fn close(self) -> Result<(), Failure> {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Close(tx)).is_err() {
            // Already stopped: report whether everything made it.
            return self.sync().await;
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => self.sync().await,
        }
    }

    /// What the journal is called in messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Batches written so far (for tests and the benchmark: N events in far fewer batches is
    /// what group commit buys).
    pub fn batches(&self) -> u64 {
        self.inner.durable.borrow().batches
    }
}

/// Batches larger than this are split, to bound memory on a burst.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// `fence`: the store's own word that appending is over (a lost lease): from then on nothing
/// is written, exactly as after a failed batch.
///
/// With a sink that syncs apart (a file), a batch is written as soon as it is taken, and one
/// sync at a time makes everything written so far durable: records that come in while a sync
/// runs are written at once (their `on_written` waiters answered) and made durable by the
/// next sync. Otherwise each write is the commit.
async fn writer_task(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut sink: Box<dyn Sink>,
    masker: Masker,
    state: watch::Sender<Durable>,
    mut fence: Option<watch::Receiver<Option<Failure>>>,
    name: String,
) {
    let apart = sink.syncs_apart();
    let mut batch = Batch::default();
    let mut error: Option<Failure> = None;
    // No more messages are taken (closed, or every handle dropped).
    let mut stop = false;
    // Callbacks of `on_durable` / `on_written`. A waiter only ever waits for a record sent
    // before it, so once that record's batch is written (durable) it is settled.
    let mut waiters: Vec<(u64, DurableCallback)> = Vec::new();
    let mut written_waiters: Vec<(u64, DurableCallback)> = Vec::new();
    let mut closers = Vec::new();
    let mut durable_seq = state.borrow().seq;
    let mut written_seq = durable_seq;
    // The sync in flight and the last record it makes durable.
    let mut syncing: Option<(u64, SinkSync)> = None;
    loop {
        if apart && syncing.is_none() && error.is_none() && written_seq > durable_seq {
            syncing = Some((written_seq, sink.sync()));
        }
        if stop && syncing.is_none() {
            break;
        }
        let fenced = async {
            match fence.as_mut() {
                Some(f) => f
                    .wait_for(|x| x.is_some())
                    .await
                    .ok()
                    .and_then(|x| x.clone()),
                None => std::future::pending().await,
            }
        };
        let synced = async {
            match syncing.as_mut() {
                Some((_, f)) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv(), if !stop => match m {
                None => stop = true,
                Some(first) => {
                    let mut take = |msg: Msg, b: &mut Batch| match msg {
                        Msg::Rec(rec) => {
                            serialize_line(&rec, &masker, &mut b.buf);
                            b.ends.push(b.buf.len());
                            b.seqs.push(rec.seq);
                        }
                        Msg::Wait(seq, done) => waiters.push((seq, done)),
                        Msg::WaitWritten(seq, done) => written_waiters.push((seq, done)),
                        Msg::Close(tx) => closers.push(tx),
                    };
                    take(first, &mut batch);
                    while batch.buf.len() < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(msg) => take(msg, &mut batch),
                            Err(_) => break,
                        }
                    }
                    if !closers.is_empty() {
                        stop = true;
                    }
                    if let (Some(&seq), None) = (batch.seqs.last(), &error) {
                        let (b, res) = sink.write(batch).await;
                        batch = b;
                        match res {
                            Ok(()) => {
                                written_seq = seq;
                                if !apart {
                                    durable_seq = seq;
                                }
                                // No wake-up: nobody waits on the watch for progress (waiters
                                // are called below); readers of `seq` and `batches` see it.
                                state.send_if_modified(|d| {
                                    d.seq = durable_seq;
                                    d.batches += 1;
                                    false
                                });
                            }
                            Err(f) => {
                                tracing::error!("journal write failed: {f}");
                                error = Some(f.clone());
                                state.send_modify(|d| d.error = Some(f));
                            }
                        }
                    }
                    batch.clear();
                }
            },
            r = synced => {
                let (seq, _) = syncing.take().expect("a sync was in flight");
                match r {
                    Ok(()) => {
                        durable_seq = seq;
                        state.send_if_modified(|d| {
                            d.seq = seq;
                            false
                        });
                    }
                    Err(f) => {
                        tracing::error!("journal sync failed: {f}");
                        if error.is_none() {
                            error = Some(f.clone());
                            state.send_modify(|d| d.error = Some(f));
                        }
                    }
                }
            }
            f = fenced => {
                // Never again: the fence only goes up.
                fence = None;
                if let Some(f) = f.filter(|_| error.is_none()) {
                    tracing::error!("journal fenced: {f}");
                    error = Some(f.clone());
                    state.send_modify(|d| d.error = Some(f));
                }
            }
        }
        answer(&mut written_waiters, written_seq, error.as_ref());
        answer(&mut waiters, durable_seq, error.as_ref());
    }
    for c in closers {
        let _ = c.send(match &error {
            None => Ok(()),
            Some(f) => Err(f.clone()),
        });
    }
    state.send_modify(|d| d.closed = true);
    for (seq, done) in waiters.into_iter().chain(written_waiters) {
        done(Err(error
            .clone()
            .unwrap_or_else(|| closed_before(&name, seq))));
    }
}

/// What waiting for record `seq` of journal `name` ends with once the writer has stopped
/// without writing it.
fn closed_before(name: &str, seq: u64) -> Failure {
    Failure::Io(format!(
        "journal {name} closed before record {seq} was written"
    ))
}

/// Calls back every waiter whose record is durable, and every waiter at all once the journal
/// has failed; keeps the others (a record not sent yet).
fn answer(waiters: &mut Vec<(u64, DurableCallback)>, durable: u64, error: Option<&Failure>) {
    let settled = waiters.extract_if(.., |(seq, _)| *seq <= durable || error.is_some());
    for (seq, done) in settled {
        match error {
            Some(f) if seq > durable => done(Err(f.clone())),
            _ => done(Ok(())),
        }
    }
}

/// The journal is one more subscriber of the record stream.
impl Subscriber for JournalHandle {
    fn on_record(&mut self, rec: &Record) {
        self.append(rec.clone());
    }
}

/// ... and the runner's durability: write-ahead for steps, and the first write error stops
/// the run (nothing is written after it).
impl Durability for JournalHandle {
    fn durable(
        &self,
        seq: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), JournalFailure>> + Send + '_>> {
        Box::pin(JournalHandle::durable(self, seq))
    }

    fn on_durable(&self, seq: u64, done: DurableCallback) {
        JournalHandle::on_durable(self, seq, done)
    }

    fn on_written(&self, seq: u64, done: DurableCallback) {
        JournalHandle::on_written(self, seq, done)
    }

    fn failed(&self) -> Pin<Box<dyn Future<Output = JournalFailure> + Send + '_>> {
        let mut rx = self.inner.durable.clone();
        Box::pin(async move {
            let error = rx
                .wait_for(|d| d.error.is_some())
                .await
                .map(|d| d.error.clone());
            match error {
                Ok(Some(f)) => f,
                Ok(None) => std::future::pending().await,
                // The writer stopped without an error (closed): never a failure.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every batch from the `fail_from`-th on (1-based), the way a full disk would.
    struct FailingSink {
        batches: u32,
        fail_from: u32,
    }

    impl Sink for FailingSink {
        fn write(&mut self, batch: Batch) -> SinkWrite<'_> {
            self.batches += 1;
            let fail = self.batches >= self.fail_from;
            Box::pin(async move {
                let r = if fail {
                    Err(Failure::Io("disk full".into()))
                } else {
                    Ok(())
                };
                (batch, r)
            })
        }
    }

    fn started(service: &str) -> Event {
        Event::ServiceStarted {
            service: service.to_string(),
        }
    }

    /// `on_durable` callbacks, collected as (seq, ok).
    type Seen = Arc<Mutex<Vec<(u64, bool)>>>;

    fn recorder() -> (Seen, impl Fn(u64) -> DurableCallback) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let make = move |seq: u64| -> DurableCallback {
            let s = s.clone();
            Box::new(move |r: Result<(), Failure>| s.lock().unwrap().push((seq, r.is_ok())))
        };
        (seen, make)
    }

    #[tokio::test]
    async fn callbacks_follow_the_batch_that_holds_their_record_and_a_failure_answers_all() {
        let j = spawn(
            "test".into(),
            Box::new(FailingSink {
                batches: 0,
                fail_from: 2,
            }),
            0,
            Masker::new(),
            None,
        );
        let (seen, cb) = recorder();
        let a = j.emit(started("a")).seq;
        j.on_durable(a, cb(a));
        j.durable(a).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(a, true)]);
        // Already durable: answered at once, on the caller's thread.
        j.on_durable(a, cb(a));
        assert_eq!(seen.lock().unwrap().len(), 2);

        // The second batch fails: its waiter hears it, and so does any later one.
        let b = j.emit(started("b")).seq;
        j.on_durable(b, cb(b));
        assert!(j.durable(b).await.is_err());
        let c = j.emit(started("c")).seq;
        j.on_durable(c, cb(c));
        assert!(j.durable(c).await.is_err());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(a, true), (a, true), (b, false), (c, false)]
        );
    }

    #[tokio::test]
    async fn a_waiter_for_a_record_never_sent_is_answered_when_the_journal_closes() {
        let j = spawn(
            "test".into(),
            Box::new(FailingSink {
                batches: 0,
                fail_from: u32::MAX,
            }),
            0,
            Masker::new(),
            None,
        );
        let (seen, cb) = recorder();
        let a = j.emit(started("a")).seq;
        // A misuse (waiting for a record nobody sent) must not hang its waiter forever.
        j.on_durable(a + 5, cb(a + 5));
        j.on_durable(a, cb(a));
        j.clone().close().await.unwrap();
        let got = seen.lock().unwrap().clone();
        assert_eq!(got, vec![(a, true), (a + 5, false)]);
        let err = j.durable(a + 5).await.unwrap_err();
        assert!(err.to_string().contains("closed before record"), "{err}");
    }

    /// Writes at once and syncs apart, like a file: each sync waits for a go from the test
    /// (`true`: it succeeds, `false`: it fails) and reports, when it starts, how many records
    /// were written so far (what it covers).
    struct HeldSyncSink {
        written: Arc<Mutex<Vec<u64>>>,
        go: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<bool>>>,
        started: mpsc::UnboundedSender<usize>,
    }

    impl Sink for HeldSyncSink {
        fn write(&mut self, batch: Batch) -> SinkWrite<'_> {
            self.written.lock().unwrap().extend(&batch.seqs);
            Box::pin(async move { (batch, Ok(())) })
        }

        fn syncs_apart(&self) -> bool {
            true
        }

        fn sync(&mut self) -> SinkSync {
            let _ = self.started.send(self.written.lock().unwrap().len());
            let go = self.go.clone();
            Box::pin(async move {
                match go.lock().await.recv().await {
                    Some(true) => Ok(()),
                    _ => Err(Failure::Io("fsync failed".into())),
                }
            })
        }
    }

    /// A journal over a `HeldSyncSink`: the handle, the sender of go's, and the receiver of
    /// sync starts.
    fn held() -> (
        JournalHandle,
        mpsc::UnboundedSender<bool>,
        mpsc::UnboundedReceiver<usize>,
    ) {
        let (go_tx, go_rx) = mpsc::unbounded_channel();
        let (started_tx, started_rx) = mpsc::unbounded_channel();
        let sink = HeldSyncSink {
            written: Arc::default(),
            go: Arc::new(tokio::sync::Mutex::new(go_rx)),
            started: started_tx,
        };
        let j = spawn("test".into(), Box::new(sink), 0, Masker::new(), None);
        (j, go_tx, started_rx)
    }

    /// The next sync's start (what it covers), or `None` if none starts within 5 s.
    async fn next_sync(syncs: &mut mpsc::UnboundedReceiver<usize>) -> Option<usize> {
        tokio::time::timeout(std::time::Duration::from_secs(5), syncs.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits (bounded) until `seen` holds `n` answers.
    async fn answers(seen: &Seen, n: usize) -> Vec<(u64, bool)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        seen.lock().unwrap().clone()
    }

    /// With a sink that syncs apart, a record is written (and its `on_written` waiter
    /// answered) while the sync before it still runs; it is durable only after a sync that
    /// started once it was written; `close` waits for that last sync.
    #[tokio::test]
    async fn records_are_written_while_a_sync_runs_and_durable_after_the_next() {
        let (j, go, mut syncs) = held();
        let (written, w) = recorder();
        let (durable, d) = recorder();
        let a = j.emit(started("a")).seq;
        j.on_written(a, w(a));
        j.on_durable(a, d(a));
        // The first sync covers `a` and is held.
        assert_eq!(next_sync(&mut syncs).await, Some(1));
        assert_eq!(answers(&written, 1).await, vec![(a, true)]);
        assert!(
            durable.lock().unwrap().is_empty(),
            "durable before its sync"
        );

        // `b` comes in during that sync: written at once, not durable with `a`.
        let b = j.emit(started("b")).seq;
        j.on_written(b, w(b));
        j.on_durable(b, d(b));
        assert_eq!(answers(&written, 2).await, vec![(a, true), (b, true)]);
        go.send(true).unwrap();
        assert_eq!(answers(&durable, 1).await, vec![(a, true)]);
        // The next sync starts after `b` was written, so it covers both records.
        assert_eq!(next_sync(&mut syncs).await, Some(2));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            durable.lock().unwrap().len(),
            1,
            "b durable before its sync"
        );

        let c = j.emit(started("c")).seq;
        let closing = tokio::spawn(j.clone().close());
        go.send(true).unwrap();
        // `c` needs one more sync before `close` returns.
        assert_eq!(next_sync(&mut syncs).await, Some(3));
        assert!(!closing.is_finished());
        go.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), closing)
            .await
            .expect("close waits for its last sync only")
            .unwrap()
            .unwrap();
        assert_eq!(answers(&durable, 2).await, vec![(a, true), (b, true)]);
        j.durable(c).await.unwrap();
    }

    /// A failed sync fails the records it was to make durable, and every later one, even
    /// those already written: the journal stops there.
    #[tokio::test]
    async fn a_failed_sync_fails_the_journal() {
        let (j, go, mut syncs) = held();
        let a = j.emit(started("a")).seq;
        assert_eq!(next_sync(&mut syncs).await, Some(1));
        go.send(false).unwrap();
        let err = j.durable(a).await.unwrap_err();
        assert!(err.to_string().contains("fsync failed"), "{err}");
        let (seen, cb) = recorder();
        let b = j.emit(started("b")).seq;
        j.on_written(b, cb(b));
        j.on_durable(b, cb(b));
        assert_eq!(answers(&seen, 2).await, vec![(b, false), (b, false)]);
        assert!(j.clone().close().await.is_err());
    }
}
