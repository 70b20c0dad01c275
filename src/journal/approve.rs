//! `meeseeks approve RUN_ID SERVICE`: approving a manual step from another terminal.
//!
//! Only the lock holder writes the journal, so the approving process does not append to it:
//! it drops `RUN_DIR/approvals/<service>.json` (atomic rename, 0600) naming the step it saw
//! waiting, who approved and when. The runner polls for that file while the step waits
//! ([`wait_for_approval`]), consumes it, and journals `manual.approved` itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::{ServiceStatus, StepStatus};
use super::store::RunDir;
use crate::error::{Error, Result};

pub const APPROVALS_DIR: &str = "approvals";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub service: String,
    /// The manual step that was waiting when the operator approved.
    pub step: String,
    /// `user@host`, or what `--by` said.
    pub by: String,
    pub at: jiff::Timestamp,
}

/// Approves the manual step `service` is waiting on in the run. Errors: unknown service (with
/// a suggestion), a service with no manual step waiting, a run that is not live.
pub fn approve(run: &RunDir, service: &str, by: Option<&str>) -> Result<Approval> {
    let st = run.load_state()?;
    let Some(svc) = st.service(service) else {
        let names = st.services.iter().map(|s| s.name.as_str());
        return Err(Error::UnknownService {
            name: service.to_string(),
            suggestion: crate::suggest::closest(service, names).map(str::to_string),
        });
    };
    let waiting = svc
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Waiting)
        .filter(|_| svc.status == ServiceStatus::Waiting);
    let Some(step) = waiting else {
        return Err(Error::Usage(format!(
            "service `{service}` of run {} has no manual step waiting for approval (it is {})",
            run.id,
            svc.status.as_str()
        )));
    };
    if st.holder.is_none() {
        return Err(Error::Usage(format!(
            "run {} is {}: no runner is waiting for this approval; `meeseeks resume {}` will ask \
             again",
            run.id,
            st.state.as_str(),
            run.id
        )));
    }
    let approval = Approval {
        service: service.to_string(),
        step: step.name.clone(),
        by: by.map(str::to_string).unwrap_or_else(super::whoami),
        at: jiff::Timestamp::now(),
    };
    let dir = run.approvals_dir();
    super::ensure_private_dir(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let path = approval_path(&run.path, service);
    let json = serde_json::to_vec_pretty(&approval)
        .map_err(|e| Error::Other(format!("cannot serialize approval: {e}")))?;
    super::write_private_atomic(&path, &json)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(approval)
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

/// Polls for an approval of `service`/`step` every `interval` until one arrives. The runner
/// races this against a TTY prompt or `--yes`; dropping the future stops polling.
pub async fn wait_for_approval(
    run_dir: &Path,
    service: &str,
    step: &str,
    interval: Duration,
) -> std::io::Result<Approval> {
    loop {
        if let Some(a) = take_approval(run_dir, service, step)? {
            return Ok(a);
        }
        tokio::time::sleep(interval).await;
    }
}
