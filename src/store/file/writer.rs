//! The journal writer: one task per run that owns the file and commits in groups.
//!
//! Callers never wait to append: [`JournalHandle::emit`] assigns the next sequence number and a
//! UTC timestamp and queues the record on an unbounded channel. The writer task takes
//! everything queued, writes it with one `write`, and fsyncs it on a blocking thread; records
//! that arrive meanwhile form the next batch. So a burst of N events costs one fsync, not N,
//! while each batch is still durable before anyone is told so. Code that must not go on
//! before an event is on disk (reporting a run finished, acknowledging an approval) awaits
//! [`JournalHandle::durable`].
//!
//! Sequence numbers are assigned under the same lock that enqueues, so the file order is the
//! sequence order whatever the number of concurrent emitters.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::lock::{LOCK_FILE, RunLock};
use super::reader::{Replay, read_journal};
use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;

use crate::events::{Durability, Event, JournalFailure, Record, Subscriber};
use crate::mask::Masker;

pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Created (and its directory synced) once the journal's first record is durable: from then on
/// an empty journal is a truncated one, not a run that never began.
pub const BEGUN_FILE: &str = "journal.begun";

/// Creates an empty journal file (0600); it must not exist.
pub(crate) fn create_empty(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// When the writer fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// One write and one fsync per batch of whatever was queued (the normal mode).
    #[default]
    Group,
    /// One write and one fsync per record; only for measuring what group commit saves.
    PerRecord,
}

/// Opens journals and starts their writer task (needs a tokio runtime).
pub struct JournalWriter;

impl JournalWriter {
    /// Creates `run_dir/journal.jsonl` (0600, must not exist) and starts its writer.
    pub fn create(run_dir: &Path, masker: Masker) -> Result<JournalHandle> {
        JournalWriter::create_with(run_dir, masker, SyncPolicy::Group)
    }

    pub fn create_with(
        run_dir: &Path,
        masker: Masker,
        policy: SyncPolicy,
    ) -> Result<JournalHandle> {
        let path = run_dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot create journal {}", path.display()), e))?;
        // The new directory entry must survive a crash as well as the data written into it.
        super::sync_dir(run_dir)
            .map_err(|e| Error::io(format!("cannot sync {}", run_dir.display()), e))?;
        Ok(spawn(path, file, 0, masker, policy))
    }

    /// Continues an existing journal (resume). The caller must hold the run's lock. A torn
    /// last line left by a crash is cut off first (it was never acknowledged as durable) so
    /// that new records do not land after garbage; the replay's warnings say so.
    pub fn append_existing(run_dir: &Path, masker: Masker) -> Result<(JournalHandle, Replay)> {
        let path = run_dir.join(JOURNAL_FILE);
        let (file, replay) = open_for_append(&path)?;
        let handle = spawn(path, file, replay.last_seq(), masker, SyncPolicy::Group);
        Ok((handle, replay))
    }
}

/// Opens a journal for appending after checking it and cutting a torn tail.
fn open_for_append(path: &Path) -> Result<(File, Replay)> {
    let mut replay = read_journal(path)?;
    let ctx = |what: &str| format!("cannot {what} journal {}", path.display());
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(ctx("open"), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(ctx("stat"), e))?
        .len();
    if len > replay.valid_len {
        file.set_len(replay.valid_len)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(ctx("truncate the torn tail of"), e))?;
        replay.warnings.push(format!(
            "{}: removed {} bytes of an incomplete last line before appending",
            path.display(),
            len - replay.valid_len
        ));
    }
    Ok((file, replay))
}

/// Appends one event synchronously, outside a running writer (CLI commands such as
/// `run --abandon`). Taking `&RunLock` of this run proves that no runner is writing.
pub fn append_sync(
    run_dir: &Path,
    lock: &RunLock,
    event: Event,
    masker: &Masker,
) -> Result<Record> {
    if lock.path() != run_dir.join(LOCK_FILE) {
        return Err(Error::Other(format!(
            "internal: appending to {} requires its own lock, not {}",
            run_dir.display(),
            lock.path().display()
        )));
    }
    let path = run_dir.join(JOURNAL_FILE);
    let (mut file, replay) = open_for_append(&path)?;
    for w in &replay.warnings {
        tracing::warn!("{w}");
    }
    let rec = Record {
        seq: replay.last_seq() + 1,
        ts: jiff::Timestamp::now(),
        event,
    };
    let mut buf = Vec::new();
    serialize_line(&rec, masker, &mut buf);
    file.write_all(&buf)
        .and_then(|_| file.sync_data())
        .map_err(|e| Error::io(format!("cannot append to {}", path.display()), e))?;
    Ok(rec)
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
    Rec(Record),
    Close(oneshot::Sender<io::Result<()>>),
}

#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every record with `seq <=` this is written and fsynced.
    seq: u64,
    /// The first write/fsync error; nothing is written after it.
    error: Option<(io::ErrorKind, String)>,
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
    path: PathBuf,
}

/// A cheap, clonable handle to a run's journal writer.
#[derive(Clone)]
pub struct JournalHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalHandle")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn spawn(
    path: PathBuf,
    file: File,
    last_seq: u64,
    masker: Masker,
    policy: SyncPolicy,
) -> JournalHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(Durable {
        seq: last_seq,
        ..Durable::default()
    });
    let begun = path
        .parent()
        .map(|d| d.join(BEGUN_FILE))
        .filter(|m| last_seq == 0 && !m.exists());
    tokio::spawn(writer_task(rx, file, masker, policy, state_tx, begun));
    JournalHandle {
        inner: Arc::new(Inner {
            tx,
            seq: Mutex::new(last_seq),
            durable: state_rx,
            path,
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
        self.send(Msg::Rec(rec.clone()));
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
        self.send(Msg::Rec(rec));
        n
    }

    fn send(&self, msg: Msg) {
        if self.inner.tx.send(msg).is_err() {
            // Only after close() or a dead runtime; durable() reports it to whoever cares.
            tracing::error!(
                "journal {} is closed; event lost",
                self.inner.path.display()
            );
        }
    }

    /// The last sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        *self.inner.seq.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once every record with `seq <=` `seq` is written and fsynced.
    pub async fn durable(&self, seq: u64) -> io::Result<()> {
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
            Some((kind, msg)) => Err(io::Error::new(kind, msg)),
            None => Err(io::Error::other(format!(
                "journal {} closed before record {seq} was written",
                self.inner.path.display()
            ))),
        }
    }

    /// Everything emitted so far is durable.
    pub async fn sync(&self) -> io::Result<()> {
        self.durable(self.last_seq()).await
    }

    /// Writes and fsyncs everything queued, then stops the writer. Records emitted through
    /// other clones after this are lost (and logged as errors).
    pub async fn close(self) -> io::Result<()> {
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

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Batches written so far (for tests and the benchmark: N events in far fewer batches is
    /// what group commit buys).
    pub fn batches(&self) -> u64 {
        self.inner.durable.borrow().batches
    }
}

/// Batches larger than this are split, to bound memory on a burst.
const MAX_BATCH_BYTES: usize = 8 << 20;

async fn writer_task(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    file: File,
    masker: Masker,
    policy: SyncPolicy,
    state: watch::Sender<Durable>,
    mut begun: Option<PathBuf>,
) {
    let file = Arc::new(file);
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    // Line boundaries within `buf`, for PerRecord.
    let mut ends: Vec<usize> = Vec::new();
    let mut error: Option<(io::ErrorKind, String)> = None;
    let mut stop = false;
    while !stop {
        let Some(first) = rx.recv().await else { break };
        let mut closers = Vec::new();
        let mut last = None;
        let mut take = |msg: Msg, buf: &mut Vec<u8>, ends: &mut Vec<usize>| match msg {
            Msg::Rec(rec) => {
                serialize_line(&rec, &masker, buf);
                ends.push(buf.len());
                last = Some(rec.seq);
            }
            Msg::Close(tx) => closers.push(tx),
        };
        take(first, &mut buf, &mut ends);
        while buf.len() < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut buf, &mut ends),
                Err(_) => break,
            }
        }
        if !closers.is_empty() {
            stop = true;
        }
        if let (Some(seq), None) = (last, &error) {
            let f = Arc::clone(&file);
            let marker = begun.take();
            let (b, e, res) = tokio::task::spawn_blocking(move || {
                let res = write_batch(&f, &buf, &ends, policy).and_then(|_| match &marker {
                    Some(m) => mark_begun(m),
                    None => Ok(()),
                });
                (buf, ends, res)
            })
            .await
            .unwrap_or_else(|join| {
                (
                    Vec::new(),
                    Vec::new(),
                    Err(io::Error::other(join.to_string())),
                )
            });
            buf = b;
            ends = e;
            match res {
                Ok(()) => state.send_modify(|d| {
                    d.seq = seq;
                    d.batches += 1;
                }),
                Err(err) => {
                    tracing::error!("journal write failed: {err}");
                    error = Some((err.kind(), err.to_string()));
                    let err = error.clone();
                    state.send_modify(|d| d.error = err);
                }
            }
        }
        buf.clear();
        ends.clear();
        for c in closers {
            let _ = c.send(match &error {
                None => Ok(()),
                Some((k, m)) => Err(io::Error::new(*k, m.clone())),
            });
        }
    }
    state.send_modify(|d| d.closed = true);
}

/// Records that the journal holds a durable first record (see [`BEGUN_FILE`]).
fn mark_begun(marker: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(marker)?;
    match marker.parent() {
        Some(dir) => super::sync_dir(dir),
        None => Ok(()),
    }
}

fn write_batch(mut file: &File, buf: &[u8], ends: &[usize], policy: SyncPolicy) -> io::Result<()> {
    match policy {
        SyncPolicy::Group => {
            file.write_all(buf)?;
            file.sync_data()
        }
        SyncPolicy::PerRecord => {
            let mut start = 0;
            for &end in ends {
                file.write_all(&buf[start..end])?;
                file.sync_data()?;
                start = end;
            }
            Ok(())
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
        Box::pin(async move {
            JournalHandle::durable(self, seq)
                .await
                .map_err(|e| JournalFailure::Io(e.to_string()))
        })
    }

    fn failed(&self) -> Pin<Box<dyn Future<Output = JournalFailure> + Send + '_>> {
        let mut rx = self.inner.durable.clone();
        Box::pin(async move {
            let error = rx
                .wait_for(|d| d.error.is_some())
                .await
                .map(|d| d.error.as_ref().map(|e| e.1.clone()).unwrap_or_default());
            match error {
                Ok(e) => JournalFailure::Io(e),
                // The writer stopped without an error (closed): never a failure.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn started(service: &str) -> Event {
        Event::ServiceStarted {
            service: service.to_string(),
        }
    }

    #[tokio::test]
    async fn creates_a_private_journal_and_numbers_records() {
        let dir = tempfile::tempdir().unwrap();
        let j = JournalWriter::create(dir.path(), Masker::new()).unwrap();
        let r1 = j.emit(started("a"));
        let r2 = j.emit(started("b"));
        assert_eq!((r1.seq, r2.seq), (1, 2));
        j.durable(2).await.unwrap();
        // Durable means readable from the file now, before close.
        let replay = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(replay.records, vec![r1, r2]);
        j.close().await.unwrap();
        let mode = std::fs::metadata(dir.path().join(JOURNAL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A journal is created once; a second create must not truncate it.
        assert!(JournalWriter::create(dir.path(), Masker::new()).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_keeps_every_record_in_order_under_concurrent_appenders() {
        let dir = tempfile::tempdir().unwrap();
        let j = JournalWriter::create(dir.path(), Masker::new()).unwrap();
        let tasks = 16;
        let per_task = 400;
        let mut joins = Vec::new();
        for t in 0..tasks {
            let j = j.clone();
            joins.push(tokio::spawn(async move {
                let mut last = 0;
                for i in 0..per_task {
                    last = j.emit(started(&format!("svc-{t}-{i}"))).seq;
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                // Each emitter can wait for its own last record.
                j.durable(last).await.unwrap();
            }));
        }
        for h in joins {
            h.await.unwrap();
        }
        let batches = j.batches();
        j.close().await.unwrap();
        let replay = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        let n = (tasks * per_task) as u64;
        let seqs: Vec<u64> = replay.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        // Per task, its records appear in the order it emitted them.
        for t in 0..tasks {
            let mine: Vec<String> = replay
                .records
                .iter()
                .filter_map(|r| r.event.service().map(str::to_string))
                .filter(|s| s.starts_with(&format!("svc-{t}-")))
                .collect();
            let expect: Vec<String> = (0..per_task).map(|i| format!("svc-{t}-{i}")).collect();
            assert_eq!(mine, expect);
        }
        assert!(
            batches < n,
            "group commit should batch: {batches} batches for {n} records"
        );
    }

    #[tokio::test]
    async fn secrets_are_masked_even_when_json_escaping_changes_them() {
        let dir = tempfile::tempdir().unwrap();
        let masker = Masker::new();
        let secret = "hunter\"2\\x";
        masker.add(secret);
        let j = JournalWriter::create(dir.path(), masker).unwrap();
        j.emit(Event::StepAttemptFailed {
            service: "db".into(),
            step: "login".into(),
            attempt: 1,
            error: format!("auth failed for password {secret}"),
            output: format!("psql: {secret}\nbye"),
        });
        j.close().await.unwrap();
        let text = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        let escaped = serde_json::to_string(secret).unwrap();
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains(escaped.trim_matches('"')), "{text}");
        assert!(!text.contains("hunter"), "{text}");
        assert!(text.contains("password ***"), "{text}");
    }

    #[tokio::test]
    async fn non_finite_numbers_never_make_a_line_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let j = JournalWriter::create(dir.path(), Masker::new()).unwrap();
        j.emit(Event::StepSucceeded {
            service: "a".into(),
            step: "s".into(),
            attempts: 1,
            duration_s: f64::NAN,
        });
        j.emit(started("b"));
        j.close().await.unwrap();
        let replay = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(replay.records.len(), 2);
    }

    #[tokio::test]
    async fn append_existing_cuts_a_torn_tail_and_continues_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let j = JournalWriter::create(dir.path(), Masker::new()).unwrap();
        j.emit(started("a"));
        j.emit(started("b"));
        j.close().await.unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(br#"{"seq":3,"ts":"2026-"#).unwrap();
        }
        let (j, replay) = JournalWriter::append_existing(dir.path(), Masker::new()).unwrap();
        assert_eq!(replay.last_seq(), 2);
        assert_eq!(replay.warnings.len(), 2, "{:?}", replay.warnings);
        assert_eq!(j.emit(started("c")).seq, 3);
        j.close().await.unwrap();
        let replay = read_journal(&path).unwrap();
        assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
        assert_eq!(replay.last_seq(), 3);
    }

    #[tokio::test]
    async fn append_renumbers_out_of_order_records_and_durable_after_close_reports() {
        let dir = tempfile::tempdir().unwrap();
        let j = JournalWriter::create(dir.path(), Masker::new()).unwrap();
        let ts = jiff::Timestamp::now();
        assert_eq!(
            j.append(Record {
                seq: 5,
                ts,
                event: started("a")
            }),
            5
        );
        assert_eq!(
            j.append(Record {
                seq: 5,
                ts,
                event: started("b")
            }),
            6
        );
        let other = j.clone();
        j.close().await.unwrap();
        // Nothing emitted after close can become durable; saying so beats hanging.
        let seq = other.emit(started("late")).seq;
        assert!(other.durable(seq).await.is_err());
        other.durable(6).await.unwrap();
        let seqs: Vec<u64> = read_journal(&dir.path().join(JOURNAL_FILE))
            .unwrap()
            .records
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![5, 6]);
    }

    #[tokio::test]
    async fn per_record_policy_writes_the_same_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j =
            JournalWriter::create_with(dir.path(), Masker::new(), SyncPolicy::PerRecord).unwrap();
        for i in 0..10 {
            j.emit(started(&format!("s{i}")));
        }
        j.close().await.unwrap();
        assert_eq!(
            read_journal(&dir.path().join(JOURNAL_FILE))
                .unwrap()
                .last_seq(),
            10
        );
    }

    #[test]
    fn append_sync_needs_the_runs_own_lock() {
        let run = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(run.path().join(JOURNAL_FILE), b"").unwrap();
        let wrong = RunLock::acquire(other.path()).unwrap();
        assert!(
            append_sync(
                run.path(),
                &wrong,
                Event::RunAbandoned { by: "x".into() },
                &Masker::new()
            )
            .is_err()
        );
        let lock = RunLock::acquire(run.path()).unwrap();
        let rec = append_sync(
            run.path(),
            &lock,
            Event::RunAbandoned { by: "x".into() },
            &Masker::new(),
        )
        .unwrap();
        assert_eq!(rec.seq, 1);
        let rec = append_sync(
            run.path(),
            &lock,
            Event::RunInterrupted { reason: "y".into() },
            &Masker::new(),
        )
        .unwrap();
        assert_eq!(rec.seq, 2);
    }
}
