//! `meeseeks preflight`: would a failover work *now*? (SPEC §10, issue 15)
//!
//! Read-only by construction. An evaluation has two phases:
//! 1. `inspect` (synchronous, no I/O beyond `stat`): every template of the services in scope is
//!    rendered with the variables, environment and secrets a run would have; every program a
//!    `cmd`/`run` step or check would start is looked up on PATH; every `http`/`tcp` target
//!    becomes a connection probe. Steps and checks are only *read*: nothing of a playbook's
//!    recovery is ever started.
//! 2. `probe` (async, bounded): the probes run as tokio tasks, at most `parallel` at once (one
//!    semaphore, no thread per probe). Connection probes resolve the host, connect, and for
//!    https complete a TLS handshake to read the certificate (no HTTP request is sent to a
//!    step's endpoint). The only commands ever executed are the playbooks' own `[[preflight]]`
//!    probes and the graph's `backup.check` commands, which their authors declare read-only.
//!
//! The result is a [`Report`] (`meeseeks.preflight/v1`): per service `ready`, `not_ready` or
//! `unknown`, with every problem's reason and the file:line to look at. `record` keeps the
//! history of evaluations; `watch` re-evaluates on an interval and reports transitions.

mod inspect;
mod net;
mod probe;
pub mod record;
pub mod render;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::mask::Masker;
use crate::model::{Mode, Model, VarValue};
use crate::plan::Scope;

pub const SCHEMA: &str = "meeseeks.preflight/v1";

/// Readiness of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ready,
    /// Something a failover needs is broken now.
    NotReady,
    /// A probe could not decide (its output was unreadable, the run was interrupted, ...).
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::NotReady => "not_ready",
            Status::Unknown => "unknown",
        }
    }

    /// For humans: `not ready` rather than `not_ready`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::NotReady => "not ready",
            Status::Unknown => "unknown",
        }
    }

    /// The worse of two statuses: not ready beats unknown beats ready.
    fn worst(self, other: Status) -> Status {
        let rank = |s: Status| match s {
            Status::Ready => 0,
            Status::Unknown => 1,
            Status::NotReady => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that is wrong, and where to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// What was checked: `step:NAME`, `check:NAME`, `rollback:NAME`, `cleanup:NAME`,
    /// `preflight:NAME`, `backup.check` or `playbook`.
    pub check: String,
    /// Why it is not ready, secrets masked.
    pub reason: String,
    /// Relative to the DR directory.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// The status this problem gives its service (`not_ready` or `unknown`).
    pub status: Status,
}

/// A TLS certificate seen on an https target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// `host:port`.
    pub target: String,
    pub not_after: jiff::Timestamp,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// Whether a run would trust it (same roots and rules as the executor's HTTP client).
    pub trusted: bool,
}

/// What `backup.check` reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSeen {
    pub last: jiff::Timestamp,
    pub age_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceResult {
    pub name: String,
    pub status: Status,
    pub problems: Vec<Problem>,
    /// How many things were inspected or probed (templates, programs, connections, commands).
    #[serde(default)]
    pub checked: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSeen>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ready: usize,
    pub not_ready: usize,
    pub unknown: usize,
}

/// `meeseeks.preflight/v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// Every service in scope is ready.
    pub ready: bool,
    pub evaluated_at: jiff::Timestamp,
    pub duration_s: f64,
    /// The DR directory (absolute).
    pub dir: String,
    pub mode: Mode,
    pub counts: Counts,
    /// In name order.
    pub services: Vec<ServiceResult>,
}

impl Report {
    /// 0 when every service is ready, else 1 (SPEC §10: "exit 0 all ready").
    pub fn exit_code(&self) -> i32 {
        if self.ready {
            crate::error::exit::OK
        } else {
            crate::error::exit::NEGATIVE
        }
    }

    pub fn service(&self, name: &str) -> Option<&ServiceResult> {
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.services[i])
    }

    /// Status of each service, by name.
    pub fn statuses(&self) -> BTreeMap<String, Status> {
        self.services
            .iter()
            .map(|s| (s.name.clone(), s.status))
            .collect()
    }
}

/// The outcome of one probe job, before it is attributed to the items waiting for it.
#[derive(Debug, Clone, Default)]
struct JobResult {
    problems: Vec<(Status, String)>,
    certificate: Option<Certificate>,
    backup: Option<BackupSeen>,
}

impl JobResult {
    fn problem(status: Status, reason: String) -> JobResult {
        JobResult {
            problems: vec![(status, reason)],
            ..JobResult::default()
        }
    }
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which steps count (`only = "drill"` / `"failover"`) and the `mode` variable.
    pub mode: Mode,
    /// `--var k=v`.
    pub cli_vars: BTreeMap<String, VarValue>,
    /// Probes in flight at once.
    pub parallel: usize,
    /// Bound on resolving + connecting (+ TLS handshake) to one step/check target.
    pub connect_timeout: Duration,
    /// A certificate with fewer days left than this makes its service not ready.
    pub cert_min_days: i64,
    /// The state directory: `run_dir` renders under it, as it would in a run.
    pub state_dir: PathBuf,
}

impl Options {
    pub fn new(state_dir: PathBuf) -> Options {
        Options {
            mode: Mode::Failover,
            cli_vars: BTreeMap::new(),
            parallel: 64,
            connect_timeout: Duration::from_secs(5),
            cert_min_days: 14,
            state_dir,
        }
    }
}

/// How old something is, to the two largest units (`45s`, `12m30s`, `5h12m`, `40d3h`): a
/// backup 2 525 days old is not better described to the millisecond.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(n, _)| s >= *n) else {
        return "0s".into();
    };
    let mut out = String::new();
    let mut rest = s;
    for (n, u) in &units[first..(first + 2).min(units.len())] {
        let q = rest / n;
        rest %= n;
        if q > 0 {
            out.push_str(&format!("{q}{u}"));
        }
    }
    out
}

/// Evaluates every service of `scope`. Cancelling `cancel` kills running probe commands and
/// reports what was not evaluated as `unknown`.
pub async fn evaluate(
    model: &Model,
    scope: &Scope,
    opts: &Options,
    masker: &Masker,
    cancel: &CancellationToken,
) -> Report {
    let started = Instant::now();
    let evaluated_at = jiff::Timestamp::now();
    let plan = inspect::inspect(model, scope, opts, masker);
    let ctx = Arc::new(probe::Ctx::new(model, opts, cancel.clone()));
    let results = probe::run_all(ctx, plan.jobs, opts.parallel, cancel).await;
    let mut services = plan.services;
    for item in plan.items {
        let r = &results[item.job];
        let svc = &mut services[item.service];
        svc.checked += 1;
        for (status, reason) in &r.problems {
            svc.problems.push(Problem {
                check: item.check.clone(),
                reason: reason.clone(),
                file: item.file.clone(),
                line: item.line,
                status: *status,
            });
        }
        if let Some(c) = &r.certificate
            && !svc.certificates.iter().any(|x| x.target == c.target)
        {
            svc.certificates.push(c.clone());
        }
        if let Some(b) = &r.backup {
            svc.backup = Some(b.clone());
        }
    }
    let mut counts = Counts::default();
    for s in &mut services {
        for p in &mut s.problems {
            // Reasons may quote command output and rendered URLs.
            if let std::borrow::Cow::Owned(m) = masker.mask(&p.reason) {
                p.reason = m;
            }
        }
        s.problems
            .sort_by(|a, b| (a.line, &a.check).cmp(&(b.line, &b.check)));
        s.problems.dedup();
        s.status = s
            .problems
            .iter()
            .fold(Status::Ready, |acc, p| acc.worst(p.status));
        match s.status {
            Status::Ready => counts.ready += 1,
            Status::NotReady => counts.not_ready += 1,
            Status::Unknown => counts.unknown += 1,
        }
    }
    Report {
        schema: SCHEMA.to_string(),
        ready: counts.not_ready == 0 && counts.unknown == 0,
        evaluated_at,
        duration_s: started.elapsed().as_secs_f64(),
        dir: std::path::absolute(&model.dir)
            .unwrap_or_else(|_| model.dir.clone())
            .display()
            .to_string(),
        mode: opts.mode,
        counts,
        services,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        let a = |s| super::age(std::time::Duration::from_millis(s));
        assert_eq!(a(0), "0s");
        assert_eq!(a(45_900), "45s");
        assert_eq!(a(750_000), "12m30s");
        assert_eq!(a(3_600_000), "1h");
        assert_eq!(a(218_000_000_000), "2523d3h");
    }
}
