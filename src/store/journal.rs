//! A run's journal writer, whatever the store: one task per run that commits in groups.
//!
//! Callers never wait to append: [`JournalHandle::emit`] assigns the next sequence number and a
//! UTC timestamp and queues the record on an unbounded channel. The writer task takes
//! everything queued and hands it to its store's [`Sink`] as one batch (one write and one
//! fsync for files, one fenced transaction per chunk for etcd); records that arrive meanwhile
//! form the next batch. So a burst of N events costs one commit, not N, while each batch is
//! still durable before anyone is told so. Code that must not go on before an event is
//! durable (a step's side effects, reporting a run finished) awaits [`JournalHandle::durable`].
//!
//! Sequence numbers are assigned under the same lock that enqueues, so the store's order is
//! the sequence order whatever the number of concurrent emitters. After the first failed
//! batch nothing more is written: a journal with a hole would not replay.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::events::{Durability, Event, JournalFailure, Record, Subscriber};
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

/// Where a store commits a journal's batches. `write` makes the batch durable (or says why it
/// cannot), and hands it back so its buffers are reused.
pub trait Sink: Send + 'static {
    fn write(&mut self, batch: Batch) -> SinkWrite<'_>;
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
    /// Batches written (each one write and, in `Group` mode, one fsync).
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
    tokio::spawn(writer_task(rx, sink, masker, state_tx, fence));
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
        let mut rx = self.inner.durable.clone();
        let waited = rx
            .wait_for(|d| d.seq >= seq || d.error.is_some() || d.closed)
            .await
            .map(|d| d.clone());
        // Err: the sender is gone (the task ended); its last state says how.
        let snapshot = waited.unwrap_or_else(|_| rx.borrow().clone());
        if snapshot.seq >= seq {
            return Ok(());
        }
        match snapshot.error {
            Some(f) => Err(f),
            None => Err(Failure::Io(format!(
                "journal {} closed before record {seq} was written",
                self.inner.name
            ))),
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
async fn writer_task(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut sink: Box<dyn Sink>,
    masker: Masker,
    state: watch::Sender<Durable>,
    mut fence: Option<watch::Receiver<Option<Failure>>>,
) {
    let mut batch = Batch::default();
    let mut error: Option<Failure> = None;
    let mut stop = false;
    while !stop {
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
        let first = tokio::select! {
            m = rx.recv() => m,
            f = fenced => {
                // Never again: the fence only goes up.
                fence = None;
                if let Some(f) = f.filter(|_| error.is_none()) {
                    tracing::error!("journal fenced: {f}");
                    error = Some(f.clone());
                    state.send_modify(|d| d.error = Some(f));
                }
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut closers = Vec::new();
        let mut take = |msg: Msg, b: &mut Batch| match msg {
            Msg::Rec(rec) => {
                serialize_line(&rec, &masker, &mut b.buf);
                b.ends.push(b.buf.len());
                b.seqs.push(rec.seq);
            }
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
                Ok(()) => state.send_modify(|d| {
                    d.seq = seq;
                    d.batches += 1;
                }),
                Err(f) => {
                    tracing::error!("journal write failed: {f}");
                    error = Some(f.clone());
                    state.send_modify(|d| d.error = Some(f));
                }
            }
        }
        batch.clear();
        for c in closers {
            let _ = c.send(match &error {
                None => Ok(()),
                Some(f) => Err(f.clone()),
            });
        }
    }
    state.send_modify(|d| d.closed = true);
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
