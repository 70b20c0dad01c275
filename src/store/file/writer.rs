//! The file store's journal: `journal.jsonl`, one JSON record per line, written by the
//! group-commit writer ([`crate::store::journal`]) through a [`FileSink`]: one `write` and one
//! fsync per batch, on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lock::{LOCK_FILE, RunLock};
use super::reader::{Replay, read_journal};
use crate::error::{Error, Result};
use crate::events::{Event, Record};
use crate::mask::Masker;
use crate::store::journal::{
    Batch, Failure, JournalHandle, Sink, SinkSync, SinkWrite, serialize_line, spawn,
};

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
        Ok(spawn_file(path, file, 0, masker, policy))
    }

    /// Continues an existing journal (resume). The caller must hold the run's lock. A torn
    /// last line left by a crash is cut off first (it was never acknowledged as durable) so
    /// that new records do not land after garbage; the replay's warnings say so.
    pub fn append_existing(run_dir: &Path, masker: Masker) -> Result<(JournalHandle, Replay)> {
        let path = run_dir.join(JOURNAL_FILE);
        let (file, replay) = open_for_append(&path)?;
        let handle = spawn_file(path, file, replay.last_seq(), masker, SyncPolicy::Group);
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

fn spawn_file(
    path: PathBuf,
    file: File,
    last_seq: u64,
    masker: Masker,
    policy: SyncPolicy,
) -> JournalHandle {
    let begun = path
        .parent()
        .map(|d| d.join(BEGUN_FILE))
        .filter(|m| last_seq == 0 && !m.exists());
    let sink = FileSink {
        file: Arc::new(file),
        policy,
        begun,
    };
    spawn(
        path.display().to_string(),
        Box::new(sink),
        last_seq,
        masker,
        None,
    )
}

/// Appends batches to the journal file. `Group`: one write per batch, and the writer task
/// fsyncs (`sync`) while it writes the next batches; `PerRecord`: one write and one fsync per
/// record, in `write`.
struct FileSink {
    file: Arc<File>,
    policy: SyncPolicy,
    /// Marker to create with the first durable batch.
    begun: Option<PathBuf>,
}

impl Sink for FileSink {
    fn write(&mut self, batch: Batch) -> SinkWrite<'_> {
        let file = Arc::clone(&self.file);
        let policy = self.policy;
        // In `Group` mode the first sync creates it.
        let marker = self.begun.take_if(|_| policy == SyncPolicy::PerRecord);
        Box::pin(async move {
            let r = tokio::task::spawn_blocking(move || {
                let res =
                    write_batch(&file, &batch.buf, &batch.ends, policy).and_then(
                        |_| match &marker {
                            Some(m) => mark_begun(m),
                            None => Ok(()),
                        },
                    );
                (batch, res)
            })
            .await;
            match r {
                Ok((b, res)) => (b, res.map_err(|e| Failure::Io(e.to_string()))),
                Err(join) => (Batch::default(), Err(Failure::Io(join.to_string()))),
            }
        })
    }

    fn syncs_apart(&self) -> bool {
        self.policy == SyncPolicy::Group
    }

    fn sync(&mut self) -> SinkSync {
        let file = Arc::clone(&self.file);
        let marker = self.begun.take();
        Box::pin(async move {
            let r = tokio::task::spawn_blocking(move || {
                file.sync_data().and_then(|_| match &marker {
                    Some(m) => mark_begun(m),
                    None => Ok(()),
                })
            })
            .await;
            match r {
                Ok(res) => res.map_err(|e| Failure::Io(e.to_string())),
                Err(join) => Err(Failure::Io(join.to_string())),
            }
        })
    }
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
        // Synced apart, by `FileSink::sync`.
        SyncPolicy::Group => file.write_all(buf),
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
