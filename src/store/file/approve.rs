//! `meeseeks approve RUN_ID SERVICE`: approving a manual step from another terminal.
//!
//! Only the lock holder writes the journal, so the approving process does not append to it:
//! it drops `RUN_DIR/approvals/<service>.json` (atomic rename, 0600) naming the step it saw
//! waiting, who approved and when. The runner polls for that file while the step waits
//! ([`DropBoxApprovals`]), consumes it, and journals `manual.approved` itself.

use std::path::{Path, PathBuf};

use crate::events::ApprovalSource;

pub const APPROVALS_DIR: &str = "approvals";

pub use crate::store::Approval;

/// Drops `approval` for the runner of the run in `run_dir` (atomic, 0600).
pub(super) fn drop_approval(run_dir: &Path, approval: &Approval) -> std::io::Result<()> {
    let dir = run_dir.join(APPROVALS_DIR);
    super::ensure_private_dir(&dir)?;
    let path = approval_path(run_dir, &approval.service);
    let json = serde_json::to_vec_pretty(approval).map_err(std::io::Error::other)?;
    super::write_private_atomic(&path, &json)
}

/// Approvals dropped by `meeseeks approve RUN_ID SERVICE` into a run's directory.
pub struct DropBoxApprovals {
    pub run_dir: PathBuf,
}

impl ApprovalSource for DropBoxApprovals {
    fn check(&self, service: &str, step: &str, _prompt: &str) -> crate::events::Approval {
        match take_approval(&self.run_dir, service, step) {
            Ok(Some(a)) => crate::events::Approval::Approved(a.by),
            Ok(None) => crate::events::Approval::Pending,
            Err(e) => {
                tracing::warn!("cannot read approvals in {}: {e}", self.run_dir.display());
                crate::events::Approval::Pending
            }
        }
    }
}

/// File name for a service: names are safe file names in practice, but anything outside
/// `[A-Za-z0-9._-]` is hex-escaped so no name can point outside the directory.
fn approval_path(run_dir: &Path, service: &str) -> PathBuf {
    let mut name = String::new();
    for b in service.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !name.is_empty()) {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02x}"));
        }
    }
    run_dir.join(APPROVALS_DIR).join(format!("{name}.json"))
}

/// Consumes the approval for `service`'s `step`, if one was dropped. An approval for another
/// step (left over from an earlier wait) is discarded, never applied to the wrong step.
pub fn take_approval(
    run_dir: &Path,
    service: &str,
    step: &str,
) -> std::io::Result<Option<Approval>> {
    let path = approval_path(run_dir, service);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&path)?;
    match serde_json::from_slice::<Approval>(&bytes) {
        Ok(a) if a.service == service && a.step == step => Ok(Some(a)),
        Ok(a) => {
            tracing::warn!(
                "discarding an approval of {}/{} by {}: {service}/{step} is waiting now",
                a.service,
                a.step,
                a.by
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!("discarding unreadable approval {}: {e}", path.display());
            Ok(None)
        }
    }
}
