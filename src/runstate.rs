//! `RunState = fold(events)`: the one model of a run's outcome. The live runner folds the
//! records it emits into it (its end-of-run summary is a view of it), and status, report,
//! runs, resume and serve fold a store's journal into it: a crashed run, a finished run and a
//! live run are read by the same code.
//!
//! `apply` handles one record in O(1) (hash lookups by service and step name), so replaying a
//! journal is linear in its length. The fold is pure: whether a run without a terminal event
//! is live or crashed is decided afterwards by probing its lock ([`RunState::set_liveness`]).

use serde::Serialize;

use crate::events::{Event, PlannedService, Record};
use crate::model::Mode;
use crate::runconfig::RunConfig;

pub use crate::events::LockInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// No terminal event (yet): live if its lock is held, otherwise see `set_liveness`.
    #[default]
    Running,
    Finished,
    Failed,
    Interrupted,
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// Finished (either way) or abandoned: nothing more will happen unless resumed.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    #[default]
    Pending,
    Running,
    Verifying,
    Waiting,
    Recovered,
    Failed,
    Blocked,
    Skipped,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Pending => "pending",
            ServiceStatus::Running => "running",
            ServiceStatus::Verifying => "verifying",
            ServiceStatus::Waiting => "waiting",
            ServiceStatus::Recovered => "recovered",
            ServiceStatus::Failed => "failed",
            ServiceStatus::Blocked => "blocked",
            ServiceStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    #[default]
    Pending,
    Running,
    /// A manual step waiting for approval.
    Waiting,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepState {
    pub name: String,
    pub status: StepStatus,
    /// Attempts over the whole run, resumes included.
    pub attempts: u32,
    pub started_at: Option<jiff::Timestamp>,
    pub ended_at: Option<jiff::Timestamp>,
    pub duration_s: Option<f64>,
    /// Rendered action of the last attempt (secrets masked by the writer).
    pub action: Option<String>,
    pub last_error: Option<String>,
    /// Last output lines of the last failed attempt.
    pub last_output: String,
    /// The failure was of an `optional = true` step (a warning).
    pub optional: bool,
    pub skip_reason: Option<String>,
    pub prompt: Option<String>,
    pub approved_by: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CheckState {
    pub name: String,
    pub passed: bool,
    pub polls: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    pub name: String,
    pub status: ServiceStatus,
    /// From the plan in `run.started`.
    pub planned: Option<std::sync::Arc<PlannedService>>,
    pub rto_s: Option<f64>,
    /// First `service.started`, seconds from the RTO clock start.
    pub started_s: Option<f64>,
    /// Recovered, failed, blocked or skipped at (seconds from the clock start).
    pub ended_s: Option<f64>,
    pub recovered_s: Option<f64>,
    pub error: Option<String>,
    pub blocked_by: Option<String>,
    pub skip_reason: Option<String>,
    /// When `rto.breached` was journaled (seconds from the clock start).
    pub breached_at_s: Option<f64>,
    pub rolled_back: bool,
    /// How many times the service was started (more than 1 after a resume retried it).
    pub starts: u32,
    /// A drill's cleanup tore down what was brought up for it (`service.cleaned_up`): it no
    /// longer runs, whatever its status says it reached; `resume` recovers it again.
    pub cleaned_up: bool,
    /// Cleanup steps that failed for it (something may still be running).
    pub cleanup_failed: Vec<String>,
    /// Found by name with a scan: a playbook has a few steps and checks (tens at most), and
    /// a scan costs less than a hash map per service (built for every service in
    /// `run.started`, before the first step starts).
    pub steps: Vec<StepState>,
    pub checks: Vec<CheckState>,
    /// Measured data loss (`rpo.measured`, the latest), or why it could not be measured.
    pub rpo: Option<RpoMeasurement>,
    pub rpo_error: Option<String>,
}

/// `rpo.measured`: the newest write the recovered copy holds and the window from there to
/// `until` (negative: it holds writes made after it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RpoMeasurement {
    pub newest: jiff::Timestamp,
    pub until: jiff::Timestamp,
    pub window_s: f64,
    pub rpo_s: Option<f64>,
}

impl RpoMeasurement {
    /// `Some(true)` within the declared RPO, `Some(false)` over it, `None` without an RPO.
    pub fn met(&self) -> Option<bool> {
        self.rpo_s.map(|r| self.window_s <= r)
    }
}

impl ServiceState {
    fn new(name: &str) -> ServiceState {
        ServiceState {
            name: name.to_string(),
            ..ServiceState::default()
        }
    }

    fn step_mut(&mut self, name: &str) -> &mut StepState {
        let i = match self.steps.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.steps.push(StepState {
                    name: name.to_string(),
                    ..StepState::default()
                });
                self.steps.len() - 1
            }
        };
        &mut self.steps[i]
    }

    fn check_mut(&mut self, name: &str) -> &mut CheckState {
        let i = match self.checks.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.checks.push(CheckState {
                    name: name.to_string(),
                    ..CheckState::default()
                });
                self.checks.len() - 1
            }
        };
        &mut self.checks[i]
    }

    pub fn step(&self, name: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Recovered or skipped, and not torn down since by `meeseeks cleanup`: resume leaves it
    /// alone. A teardown by the drill's own closing cleanup (`closing_cleanup`, from
    /// [`RunState::closing_cleanup`]) does not undo it: resume finishes that cleanup rather
    /// than recovering again what the drill recovered.
    pub fn is_done(&self, closing_cleanup: bool) -> bool {
        (closing_cleanup || !self.cleaned_up)
            && matches!(
                self.status,
                ServiceStatus::Recovered | ServiceStatus::Skipped
            )
    }

    /// `step.succeeded` or `step.skipped` is journaled (and no cleanup undid it since): resume
    /// must not run it again.
    pub fn step_done(&self, name: &str) -> bool {
        !self.cleaned_up
            && self
                .step(name)
                .is_some_and(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
    }

    /// A step that was started but has no outcome (the process died during it); resume runs
    /// it again, or asks first if it is not idempotent.
    pub fn unfinished_step(&self) -> Option<&StepState> {
        self.steps
            .iter()
            .find(|s| matches!(s.status, StepStatus::Running | StepStatus::Waiting))
    }

    /// The (non-optional) step whose failure failed the service; resume retries from it.
    pub fn failed_step(&self) -> Option<&StepState> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Failed && !s.optional)
    }

    /// Attempts over all steps.
    pub fn attempts(&self) -> u32 {
        self.steps.iter().map(|s| s.attempts).sum()
    }

    /// `Some(true)` recovered within RTO, `Some(false)` breached or not recovered (failed,
    /// blocked), `None` not decided yet or no RTO known.
    pub fn rto_met(&self) -> Option<bool> {
        let rto = self.rto_s?;
        if self.breached_at_s.is_some() {
            return Some(false);
        }
        match self.status {
            ServiceStatus::Recovered => self.recovered_s.map(|r| r <= rto),
            ServiceStatus::Failed | ServiceStatus::Blocked => Some(false),
            _ => None,
        }
    }

    /// By how many seconds the RTO was exceeded, when the service recovered late.
    pub fn breached_by_s(&self) -> Option<f64> {
        let rto = self.rto_s?;
        self.recovered_s.map(|r| r - rto).filter(|d| *d > 0.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRecord {
    pub service: String,
    pub step: String,
    pub by: String,
    pub at: jiff::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Breach {
    pub service: String,
    pub rto_s: f64,
    pub at: jiff::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interruption {
    pub at: jiff::Timestamp,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resumption {
    pub at: jiff::Timestamp,
    pub changes: Vec<String>,
}

/// Where a run stands with the cleanup of what it brought up (drills only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CleanupStatus {
    /// A failover: nothing to clean up.
    #[default]
    NotApplicable,
    /// A drill whose stand-ins were not cleaned up (yet): `--no-cleanup`, a failed or
    /// interrupted drill, or a cleanup that never finished.
    Pending,
    /// Cleanup ran to the end, every step succeeded.
    Done,
    /// Cleanup ran to the end, some steps failed: check what is still running.
    Failed,
}

impl CleanupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupStatus::NotApplicable => "-",
            CleanupStatus::Pending => "pending",
            CleanupStatus::Done => "done",
            CleanupStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub run_id: String,
    pub mode: Option<Mode>,
    pub dir: Option<String>,
    /// RTO clock start.
    pub declared_at: Option<jiff::Timestamp>,
    pub state: RunStatus,
    /// From `run.finished`: "succeeded" or "failed".
    pub outcome: Option<String>,
    /// The configuration the run was started with (from `run.started`).
    pub config: Option<RunConfig>,
    pub input_hash: Option<String>,
    /// Timestamps of the first and last record.
    pub first_at: Option<jiff::Timestamp>,
    pub last_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    pub last_seq: u64,
    /// In `run.started` order, then first appearance.
    pub services: Vec<ServiceState>,
    index: crate::util::FastMap<String, usize>,
    pub approvals: Vec<ApprovalRecord>,
    pub breaches: Vec<Breach>,
    pub interruptions: Vec<Interruption>,
    pub resumes: Vec<Resumption>,
    pub abandoned_by: Option<String>,
    /// Replay warnings (torn tail) and liveness notes.
    pub warnings: Vec<String>,
    /// The drill's cleanup (see [`CleanupStatus`]).
    pub cleanup: CleanupStatus,
    /// The last cleanup started is the drill's own closing cleanup (not `meeseeks cleanup`).
    pub closing_cleanup: bool,
    /// Cleanup steps run and failed (`service/step: error`), over every cleanup of the run.
    pub cleanup_steps: usize,
    pub cleanup_failures: Vec<String>,
    /// Who ran it, in order: the holder that started it, then each one that resumed it.
    pub owners: Vec<LockInfo>,
    /// Live process holding the run (set by `set_liveness`).
    pub holder: Option<LockInfo>,
    /// No terminal event and nobody holds the lock: the process died without journaling
    /// `run.interrupted` (crash, SIGKILL, power loss).
    pub crashed: bool,
}

impl RunState {
    pub fn fold(records: &[Record]) -> RunState {
        let mut st = RunState::default();
        for r in records {
            st.apply(r);
        }
        st
    }

    pub fn service(&self, name: &str) -> Option<&ServiceState> {
        self.index.get(name).map(|&i| &self.services[i])
    }

    fn svc_mut(&mut self, name: &str) -> &mut ServiceState {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.services.push(ServiceState::new(name));
                self.index.insert(name.to_string(), self.services.len() - 1);
                self.services.len() - 1
            }
        };
        &mut self.services[i]
    }

    /// Seconds from the RTO clock start to `ts` (from the first record if the clock start
    /// is unknown, e.g. a journal without `run.started`).
    pub fn secs(&self, ts: jiff::Timestamp) -> f64 {
        match self.declared_at.or(self.first_at) {
            Some(t0) => ts.duration_since(t0).as_secs_f64(),
            None => 0.0,
        }
    }

    pub fn apply(&mut self, rec: &Record) {
        let ts = rec.ts;
        if self.first_at.is_none() {
            self.first_at = Some(ts);
        }
        self.last_at = Some(ts);
        self.last_seq = rec.seq;
        let at = self.secs(ts);
        match &rec.event {
            Event::RunStarted {
                run_id,
                mode,
                dir,
                declared_at,
                services,
                options,
                input_hash,
                plan,
                holder,
            } => {
                self.owners.extend(holder.iter().cloned());
                self.run_id = run_id.clone();
                self.mode = Some(*mode);
                if *mode == Mode::Drill && !options.dry_run {
                    self.cleanup = CleanupStatus::Pending;
                }
                self.dir = Some(dir.clone());
                self.declared_at = Some(*declared_at);
                self.config = Some(options.as_ref().clone());
                self.input_hash = Some(input_hash.clone());
                self.state = RunStatus::Running;
                // Sized once: growing 2 000 service states (and each one's steps) one push at
                // a time copied them over and over before the first step could start.
                self.services.reserve(services.len());
                self.index.reserve(services.len());
                for s in services {
                    self.svc_mut(s);
                }
                for p in plan {
                    let svc = self.svc_mut(&p.name);
                    svc.rto_s = p.rto_s;
                    svc.steps.reserve_exact(p.steps.len());
                    for step in &p.steps {
                        svc.step_mut(step);
                    }
                    svc.planned = Some(std::sync::Arc::clone(p));
                }
            }
            Event::RunResumed {
                changes,
                input_hash,
                holder,
            } => {
                self.owners.extend(holder.iter().cloned());
                self.state = RunStatus::Running;
                self.outcome = None;
                self.finished_at = None;
                self.input_hash = Some(input_hash.clone());
                self.resumes.push(Resumption {
                    at: ts,
                    changes: changes.clone(),
                });
            }
            Event::ServiceStarted { service } => {
                let s = self.svc_mut(service);
                if s.cleaned_up {
                    // Recovered again after a cleanup tore it down: none of its earlier steps
                    // count any more (a later resume must run them all again, and a later
                    // cleanup its cleanup steps).
                    s.cleaned_up = false;
                    s.cleanup_failed.clear();
                    for st in &mut s.steps {
                        st.status = StepStatus::Pending;
                    }
                }
                s.status = ServiceStatus::Running;
                s.starts += 1;
                s.started_s.get_or_insert(at);
                // A resumed retry starts clean; history stays in the steps.
                s.error = None;
                s.blocked_by = None;
                s.ended_s = None;
            }
            Event::StepStarted {
                service,
                step,
                attempt,
                action,
            } => {
                let s = self.svc_mut(service);
                // Cleanup (after a drill) and rollback (after a failure) steps run on a service
                // whose outcome is already decided: they must not make it look "running" again.
                // A resumed retry journals `service.started` first, which resets the status.
                if matches!(
                    s.status,
                    ServiceStatus::Pending
                        | ServiceStatus::Running
                        | ServiceStatus::Verifying
                        | ServiceStatus::Waiting
                ) {
                    s.status = ServiceStatus::Running;
                }
                let st = s.step_mut(step);
                st.status = StepStatus::Running;
                st.attempts = (st.attempts + 1).max(*attempt);
                if *attempt <= 1 || st.started_at.is_none() {
                    st.started_at = Some(ts);
                }
                st.ended_at = None;
                if action.is_some() {
                    st.action = action.clone();
                }
            }
            Event::StepAttemptFailed {
                service,
                step,
                attempt,
                error,
                output,
            } => {
                let st = self.svc_mut(service).step_mut(step);
                st.attempts = st.attempts.max(*attempt);
                st.last_error = Some(error.clone());
                st.last_output = output.clone();
            }
            Event::StepSucceeded {
                service,
                step,
                attempts,
                duration_s,
            } => {
                let st = self.svc_mut(service).step_mut(step);
                st.status = StepStatus::Succeeded;
                st.attempts = st.attempts.max(*attempts);
                st.duration_s = Some(*duration_s);
                st.ended_at = Some(ts);
            }
            Event::StepFailed {
                service,
                step,
                attempts,
                error,
                output,
                optional,
            } => {
                let st = self.svc_mut(service).step_mut(step);
                st.status = StepStatus::Failed;
                st.attempts = st.attempts.max(*attempts);
                st.last_error = Some(error.clone());
                if !output.is_empty() {
                    st.last_output = output.clone();
                }
                st.optional = *optional;
                st.ended_at = Some(ts);
                st.duration_s = st.started_at.map(|t| ts.duration_since(t).as_secs_f64());
            }
            Event::StepSkipped {
                service,
                step,
                reason,
            } => {
                let st = self.svc_mut(service).step_mut(step);
                st.status = StepStatus::Skipped;
                st.skip_reason = Some(reason.clone());
                st.ended_at = Some(ts);
            }
            Event::ManualWaiting {
                service,
                step,
                prompt,
            } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Waiting;
                let st = s.step_mut(step);
                st.status = StepStatus::Waiting;
                st.prompt = Some(prompt.clone());
                st.started_at.get_or_insert(ts);
            }
            Event::ManualApproved { service, step, by } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Running;
                let st = s.step_mut(step);
                if st.status == StepStatus::Waiting {
                    st.status = StepStatus::Running;
                }
                st.approved_by = Some(by.clone());
                self.approvals.push(ApprovalRecord {
                    service: service.clone(),
                    step: step.clone(),
                    by: by.clone(),
                    at: ts,
                });
            }
            Event::CheckPassed {
                service,
                check,
                polls,
            } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Verifying;
                let c = s.check_mut(check);
                c.passed = true;
                c.polls = *polls;
            }
            Event::CheckFailed {
                service,
                check,
                error,
            } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Verifying;
                let c = s.check_mut(check);
                c.passed = false;
                c.last_error = Some(error.clone());
            }
            Event::ServiceRecovered {
                service,
                recovered_s,
            } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Recovered;
                s.recovered_s = Some(*recovered_s);
                s.ended_s = Some(at);
            }
            Event::ServiceFailed { service, error } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Failed;
                s.error = Some(error.clone());
                s.ended_s = Some(at);
            }
            Event::ServiceSkipped { service, reason } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Skipped;
                s.skip_reason = Some(reason.clone());
                s.ended_s = Some(at);
            }
            Event::ServiceBlocked { service, because } => {
                let s = self.svc_mut(service);
                s.status = ServiceStatus::Blocked;
                s.blocked_by = Some(because.clone());
                s.ended_s = Some(at);
            }
            Event::RollbackStarted { service } => {
                self.svc_mut(service).rolled_back = true;
            }
            Event::RpoMeasured {
                service,
                newest,
                until,
                window_s,
                rpo_s,
            } => {
                let s = self.svc_mut(service);
                s.rpo = Some(RpoMeasurement {
                    newest: *newest,
                    until: *until,
                    window_s: *window_s,
                    rpo_s: *rpo_s,
                });
                s.rpo_error = None;
            }
            Event::RpoProbeFailed { service, error, .. } => {
                let s = self.svc_mut(service);
                s.rpo = None;
                s.rpo_error = Some(error.clone());
            }
            Event::RtoBreached { service, rto_s } => {
                let s = self.svc_mut(service);
                s.breached_at_s.get_or_insert(at);
                s.rto_s.get_or_insert(*rto_s);
                self.breaches.push(Breach {
                    service: service.clone(),
                    rto_s: *rto_s,
                    at: ts,
                });
            }
            Event::RunInterrupted { reason } => {
                self.state = RunStatus::Interrupted;
                self.interruptions.push(Interruption {
                    at: ts,
                    reason: reason.clone(),
                });
            }
            Event::RunAbandoned { by } => {
                self.state = RunStatus::Abandoned;
                self.abandoned_by = Some(by.clone()).filter(|b| !b.is_empty());
                self.finished_at = Some(ts);
            }
            Event::CleanupStarted { closing, .. } => {
                self.cleanup = CleanupStatus::Pending;
                self.closing_cleanup = *closing;
            }
            Event::ServiceCleanedUp { service, failed } => {
                let s = self.svc_mut(service);
                s.cleaned_up = true;
                s.cleanup_failed = failed.clone();
            }
            Event::CleanupFinished { steps, failures } => {
                self.cleanup = if failures.is_empty() {
                    CleanupStatus::Done
                } else {
                    CleanupStatus::Failed
                };
                self.cleanup_steps += steps;
                self.cleanup_failures.extend(failures.iter().cloned());
            }
            Event::RunFinished { outcome, .. } => {
                self.state = if outcome == "succeeded" {
                    RunStatus::Finished
                } else {
                    RunStatus::Failed
                };
                self.outcome = Some(outcome.clone());
                self.finished_at = Some(ts);
            }
        }
    }

    /// Applies the lock probe: a journal without a terminal event whose lock nobody holds
    /// belongs to a process that died (crash, SIGKILL): report it as interrupted.
    pub fn set_liveness(&mut self, holder: Option<LockInfo>) {
        self.holder = holder;
        if self.state == RunStatus::Running && self.holder.is_none() {
            self.state = RunStatus::Interrupted;
            self.crashed = true;
            self.warnings.push(format!(
                "no live process holds run {}: it stopped without journaling its end (crash \
                 or kill); `meeseeks resume {}` continues it",
                self.run_id, self.run_id
            ));
        }
    }

    /// Seconds of the run so far (clock start to last record).
    pub fn elapsed_s(&self) -> Option<f64> {
        self.last_at.map(|t| self.secs(t))
    }

    /// Whether this is a dry-run (from its configuration).
    pub fn dry_run(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.dry_run)
    }

    /// Services in each status.
    pub fn count(&self, status: ServiceStatus) -> usize {
        self.services.iter().filter(|s| s.status == status).count()
    }

    /// Seconds from the clock start to the last service outcome.
    pub fn makespan_s(&self) -> f64 {
        self.services
            .iter()
            .filter_map(|s| s.ended_s)
            .fold(0.0, f64::max)
    }

    /// Services that failed, or breached their RTO.
    pub fn negative(&self) -> bool {
        self.state == RunStatus::Failed
            || self
                .services
                .iter()
                .any(|s| matches!(s.status, ServiceStatus::Failed | ServiceStatus::Blocked))
    }
}

/// What `runs` lists, and what `run` reports when it refuses to start.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub mode: Option<Mode>,
    pub state: RunStatus,
    pub started_at: Option<jiff::Timestamp>,
    pub last_at: Option<jiff::Timestamp>,
    pub services: usize,
    pub recovered: usize,
    pub failed: usize,
    pub blocked: usize,
    pub breaches: usize,
    /// A drill's cleanup (failovers: not applicable).
    pub cleanup: CleanupStatus,
    /// The live process holding the run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<LockInfo>,
    /// Why the run could not be read (its journal is damaged), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl RunSummary {
    pub fn from_state(st: &RunState) -> RunSummary {
        let count = |s| st.services.iter().filter(|x| x.status == s).count();
        use ServiceStatus as S;
        RunSummary {
            run_id: st.run_id.clone(),
            mode: st.mode,
            state: st.state,
            started_at: st.first_at,
            last_at: st.last_at,
            services: st.services.len(),
            recovered: count(S::Recovered),
            failed: count(S::Failed),
            blocked: count(S::Blocked),
            breaches: st.breaches.len(),
            cleanup: st.cleanup,
            holder: st.holder.clone(),
            problem: None,
        }
    }

    /// Neither finished nor abandoned, or held by a live process (a failed run being
    /// resumed): blocks a new `run`.
    pub fn is_unfinished(&self) -> bool {
        matches!(self.state, RunStatus::Running | RunStatus::Interrupted) || self.holder.is_some()
    }
}
