//! The file store: runs under a state directory on the runner's disk (the embedded default).
//!
//! Layout of a state directory (`DIR/.meeseeks` by default, created 0700, files 0600):
//!
//! ```text
//! STATE/lock                        held briefly while a run is being created (no two `run`s race)
//! STATE/runs/<run-id>/meta.json     what the run was started with (options, input hashes)
//! STATE/runs/<run-id>/journal.jsonl append-only events, one JSON `Record` per line
//! STATE/runs/<run-id>/lock          OS file lock of the live process (pid, host, since inside)
//! STATE/runs/<run-id>/approvals/    `meeseeks approve` drop-box, consumed by the runner
//! ```
//!
//! Only the holder of a run's lock writes its journal: the runner through the group-commit
//! [`writer::JournalHandle`], the CLI (`--abandon`) through [`writer::append_sync`] after taking
//! the lock. Approvals from another terminal are not journaled by the approving process: they
//! are dropped as files that the runner picks up and journals itself.
//!
//! `RunState` = fold(journal) ([`crate::runstate::RunState::fold`]) is the one replay used by
//! status, report, runs and resume.
//!
pub mod approve;
pub mod lock;
pub mod reader;
pub mod state_dir;
pub mod writer;

pub use crate::store::journal::JournalHandle;
pub use approve::{DropBoxApprovals, take_approval};
pub use lock::{LockError, RunLock};
pub use reader::{Replay, read_journal};
pub use state_dir::{RunDir, StateDir};
pub use writer::{JournalWriter, SyncPolicy};

/// Creates a directory (and missing parents) with mode 0700, and tightens an existing one:
/// the state directory holds rendered commands and outputs that other users must not read.
pub(crate) fn ensure_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// fsync a directory so that a file created (or renamed) in it survives a crash.
pub(crate) fn sync_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename, fsync
/// the directory), mode 0600.
pub(crate) fn write_private_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}
