//! One process per run: an OS file lock (`flock`) on `RUN_DIR/lock`.
//!
//! The lock is tied to an open file description, so it disappears with the process however
//! it dies (crash, SIGKILL, power loss): a run whose journal has no terminal event and whose
//! lock is free was interrupted, one whose lock is held is live. The holder writes its pid, host
//! and start time into the file so that a refused second process can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub const LOCK_FILE: &str = "lock";

pub use crate::runstate::LockInfo;
pub use crate::util::hostname;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("{} is locked by {}", path.display(), holder_text(info))]
    Held {
        path: PathBuf,
        /// `None` if the holder has not written its identity yet (or the file is unreadable).
        info: Option<LockInfo>,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn holder_text(info: &Option<LockInfo>) -> String {
    match info {
        Some(i) => format!(
            "pid {} on host {} since {}",
            i.pid,
            i.host,
            i.since.strftime("%Y-%m-%d %H:%M:%SZ")
        ),
        None => "another process (identity not written yet)".to_string(),
    }
}

impl From<LockError> for crate::Error {
    fn from(e: LockError) -> crate::Error {
        match e {
            LockError::Held { .. } => crate::Error::Locked(e.to_string()),
            LockError::Io { path, source } => {
                crate::Error::io(format!("cannot lock {}", path.display()), source)
            }
        }
    }
}

/// Exclusive lock on a run (or, for `lock_path`, any lock file); released on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    info: LockInfo,
}

impl RunLock {
    /// Takes the lock of the run in `run_dir`, without waiting for it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, LockError> {
        RunLock::acquire_path(&run_dir.join(LOCK_FILE))
    }

    /// Takes the lock at `path` (created 0600), without waiting for it.
    pub fn acquire_path(path: &Path) -> Result<RunLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = open_lock_file(path).map_err(io_err)?;
        // A `status` probe holds a shared lock for a few microseconds: retry briefly so that it
        // cannot make a real acquisition fail by bad luck.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        info: read_info(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        let info = LockInfo::current();
        let text = serde_json::to_string(&info).unwrap_or_default();
        (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.flush()
        })()
        .map_err(io_err)?;
        Ok(RunLock {
            file,
            path: path.to_path_buf(),
            info,
        })
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear our identity while still holding the lock, so nobody reads a stale holder; the
        // lock itself goes when the file is closed.
        let _ = self.file.set_len(0);
    }
}

/// Who holds the lock of the run in `run_dir`, if anyone (a live process). Uses a shared lock
/// as probe so that it never looks like a holder itself for more than an instant.
pub fn is_locked(run_dir: &Path) -> std::io::Result<Option<LockInfo>> {
    probe(&run_dir.join(LOCK_FILE))
}

/// `Ok(None)`: free (or no lock file: the run was never started by a live process).
/// `Ok(Some(info))`: held; `info` may be a placeholder (pid 0) if the holder has not written yet.
pub fn probe(path: &Path) -> std::io::Result<Option<LockInfo>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(read_info(&mut file).unwrap_or(LockInfo {
            pid: 0,
            host: String::new(),
            since: jiff::Timestamp::UNIX_EPOCH,
            name: String::new(),
        }))),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn read_info(file: &mut File) -> Option<LockInfo> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_lock_in_same_process_fails_and_names_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(LOCK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = RunLock::acquire(dir.path()).unwrap_err();
        match &err {
            LockError::Held { info: Some(i), .. } => {
                assert_eq!(i.pid, std::process::id());
                assert_eq!(i.host, hostname());
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert_eq!(crate::Error::from(err).exit_code(), 3);
        assert_eq!(is_locked(dir.path()).unwrap().unwrap().pid, held.info().pid);
        drop(held);
        assert!(is_locked(dir.path()).unwrap().is_none());
        let again = RunLock::acquire(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn lock_held_by_another_process_is_refused_then_released() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join(LOCK_FILE);
        // flock(1) holds the lock in a real child process until its stdin closes.
        if std::process::Command::new("flock")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("flock(1) not installed; skipping");
            return;
        }
        let mut child = std::process::Command::new("flock")
            .arg("-x")
            .arg(&lock_path)
            .arg("-c")
            .arg("echo locked; read _")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the child says it holds the lock (no sleep as synchronisation).
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 7];
        out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"locked\n");
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(LockError::Held { .. })
        ));
        assert!(is_locked(dir.path()).unwrap().is_some());
        drop(child.stdin.take());
        child.wait().unwrap();
        let l = RunLock::acquire(dir.path()).unwrap();
        drop(l);
    }
}
