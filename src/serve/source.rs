//! The one seam between `serve` and where runs are stored.
//!
//! Everything the web server reads or writes goes through [`RunSource`]: list the runs, read
//! a run's journal records after a cursor, wait until more may have arrived, probe whether a
//! live process holds the run, and approve a manual step. [`FileSource`] implements it over a
//! state directory (`DIR/.meeseeks`); a store with a native watch (etcd) implements the same
//! five methods and overrides [`RunSource::changed`]. Nothing else in `serve` knows which
//! store it has.
//!
//! Tailing the file store is a bounded poll ([`POLL`], 100 ms), not inotify: the state
//! directory may sit on NFS or in a bind-mounted volume where inotify never hears another
//! host's or container's writes, the journal is group-committed anyway (records arrive in
//! batches), a poll costs one `stat` per watched run per tick, and it needs no extra
//! dependency. A record is on the page at most 100 ms after it is durable.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::events::Record;
use crate::runstate::LockInfo;
use crate::store::Approval;
use crate::store::file::{self, StateDir};

/// How often the file store is polled for new journal records while someone watches a run.
pub const POLL: Duration = Duration::from_millis(100);

/// A position in one run's record stream. `seq` is the last record returned (0 = none); `pos`
/// is the store's own position after it (a byte offset in the journal file for the file
/// store, a revision for a store that has them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub pos: u64,
}

/// Records read after a cursor.
#[derive(Debug, Default)]
pub struct Chunk {
    pub records: Vec<Record>,
    pub next: Cursor,
    /// The store went backwards (the journal was replaced or truncated past the cursor):
    /// readers must drop what they folded and start again from `Cursor::default()`.
    pub reset: bool,
}

/// Why an approval was refused, mapped to an HTTP status by the server.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// Unknown run or service (404).
    #[error("{0}")]
    NotFound(String),
    /// Nothing waiting, another step waiting, or no live runner (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (500).
    #[error("{0}")]
    Store(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where `serve` finds runs. Methods are blocking (call them from `spawn_blocking`) except
/// `changed`, which is a future.
pub trait RunSource: Send + Sync + 'static {
    /// Run ids, oldest first (no runs yet: empty).
    fn list_runs(&self) -> Result<Vec<String>>;
    /// Complete records after `cursor`, in order. A partly written last record is left for
    /// the next call.
    fn read(&self, run: &str, cursor: Cursor) -> Result<Chunk>;
    /// The live process holding the run, if any (none: finished, or its process died).
    fn holder(&self, run: &str) -> Result<Option<LockInfo>>;
    /// Approves the manual step `service` waits on, as `meeseeks approve` does: the runner
    /// that holds the run picks it up and journals `manual.approved`. With `step`, refuses
    /// unless that very step is the one waiting (a page may be stale).
    fn approve(
        &self,
        run: &str,
        service: &str,
        step: Option<&str>,
        by: &str,
    ) -> std::result::Result<Approval, ApproveError>;
    /// Resolves when `read(run, cursor)` may return more. The default waits one [`POLL`]
    /// (the file store); a store with a watch resolves as soon as it hears of a write.
    fn changed(&self, _run: &str, _cursor: Cursor) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(POLL))
    }
}

/// Exact id, or the only id starting with `id`.
pub fn resolve(ids: &[String], id: &str) -> Option<String> {
    if ids.iter().any(|x| x == id) {
        return Some(id.to_string());
    }
    let mut prefixed = ids.iter().filter(|x| !id.is_empty() && x.starts_with(id));
    match (prefixed.next(), prefixed.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

/// The file store: `STATE/runs/<id>/journal.jsonl`, the lock file, the approvals drop-box.
pub struct FileSource {
    root: PathBuf,
}

impl FileSource {
    pub fn new(state_dir: PathBuf) -> FileSource {
        FileSource { root: state_dir }
    }

    /// The run's directory. Ids come from `list_runs` (the server resolves every id from the
    /// URL against it first); anything that could leave `runs/` is refused all the same.
    fn run_dir(&self, run: &str) -> Result<file::RunDir> {
        let safe = !run.is_empty()
            && !run.starts_with('.')
            && run
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !safe {
            return Err(Error::Usage(format!("invalid run id `{run}`")));
        }
        Ok(file::RunDir {
            id: run.to_string(),
            path: self.root.join(file::state_dir::RUNS_DIR).join(run),
        })
    }
}

impl RunSource for FileSource {
    fn list_runs(&self) -> Result<Vec<String>> {
        match StateDir::open_existing(&self.root) {
            Ok(sd) => sd.list_runs(),
            // No state directory yet: no run was started here (the first `run` creates it).
            Err(Error::Usage(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn read(&self, run: &str, cursor: Cursor) -> Result<Chunk> {
        let path = self.run_dir(run)?.journal_path();
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            // The run directory exists before its journal does.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Chunk {
                    next: cursor,
                    ..Chunk::default()
                });
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let len = f
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
            .len();
        if len == cursor.pos {
            return Ok(Chunk {
                next: cursor,
                ..Chunk::default()
            });
        }
        let (start, reset) = if len < cursor.pos {
            (0, true)
        } else {
            (cursor.pos, false)
        };
        let mut bytes = Vec::with_capacity((len - start) as usize);
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.take(len - start).read_to_end(&mut bytes))
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        // Only whole lines: the writer may be in the middle of one.
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let replay = file::reader::parse_journal(&bytes[..complete], &path.display().to_string())?;
        let after = if reset { 0 } else { cursor.seq };
        let records: Vec<Record> = replay
            .records
            .into_iter()
            .filter(|r| r.seq > after)
            .collect();
        if let Some(first) = records.first()
            && !reset
            && first.seq <= cursor.seq
        {
            return Err(Error::Invalid(format!(
                "{}: sequence number {} does not follow {}",
                path.display(),
                first.seq,
                cursor.seq
            )));
        }
        let seq = records
            .last()
            .map_or(if reset { 0 } else { cursor.seq }, |r| r.seq);
        Ok(Chunk {
            records,
            next: Cursor {
                seq,
                pos: start + complete as u64,
            },
            reset,
        })
    }

    fn holder(&self, run: &str) -> Result<Option<LockInfo>> {
        self.run_dir(run)?.holder()
    }

    fn approve(
        &self,
        run: &str,
        service: &str,
        step: Option<&str>,
        by: &str,
    ) -> std::result::Result<Approval, ApproveError> {
        let rd = self
            .run_dir(run)
            .map_err(|e| ApproveError::NotFound(e.to_string()))?;
        rd.approve(service, step, Some(by)).map_err(approve_error)
    }
}

/// How a store's refusal of an approval maps to the server's answer.
fn approve_error(e: Error) -> ApproveError {
    match e {
        Error::UnknownService { .. } => ApproveError::NotFound(e.to_string()),
        Error::Usage(m) if m.starts_with("unknown run") => ApproveError::NotFound(m),
        Error::Usage(m) => ApproveError::Conflict(m),
        other => ApproveError::Store(other.to_string()),
    }
}

/// The etcd store: records read by key range after the cursor's sequence number, and a
/// watch on the run's journal wakes the readers as soon as a record is committed.
pub struct EtcdSource {
    store: crate::store::etcd::EtcdStore,
    handle: tokio::runtime::Handle,
}

impl EtcdSource {
    /// Call inside the server's runtime (the store's connection lives on it).
    pub fn new(store: crate::store::etcd::EtcdStore) -> EtcdSource {
        EtcdSource {
            store,
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// `RunSource` methods run on blocking threads (`spawn_blocking`): the store is async.
    fn block<T>(&self, f: impl Future<Output = T>) -> T {
        self.handle.block_on(f)
    }
}

impl RunSource for EtcdSource {
    fn list_runs(&self) -> Result<Vec<String>> {
        self.block(self.store.list())
    }

    fn read(&self, run: &str, cursor: Cursor) -> Result<Chunk> {
        let records = self.block(self.store.replay_after(run, cursor.seq))?;
        let seq = records.last().map_or(cursor.seq, |r| r.seq);
        Ok(Chunk {
            records,
            next: Cursor { seq, pos: seq },
            reset: false,
        })
    }

    fn holder(&self, run: &str) -> Result<Option<LockInfo>> {
        self.block(self.store.holder(run))
    }

    fn approve(
        &self,
        run: &str,
        service: &str,
        step: Option<&str>,
        by: &str,
    ) -> std::result::Result<Approval, ApproveError> {
        self.block(self.store.approve(run, service, step, Some(by)))
            .map_err(approve_error)
    }

    fn changed(&self, run: &str, cursor: Cursor) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        let run = run.to_string();
        Box::pin(async move {
            // Wakes on the next committed record (or after a while, to notice a lock gone).
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                store.wait_record(&run, cursor.seq + 1),
            )
            .await;
        })
    }
}
