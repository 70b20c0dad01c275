//! The runner: an actor loop (`tokio::select!`) over service completions, driver events,
//! operator interrupts and RTO deadlines. It owns the walker and the event bus; each running
//! service is a task ("driver") that walks its playbook — steps with retries and backoff, manual
//! approvals, checks polled until healthy, rollback — and reports through one ordered channel.
//!
//! Real runs and dry-runs are this same code: only the `Executor` differs, and a dry-run is
//! driven on a runtime with paused (virtual) time, so sleeps, backoffs, polling intervals and RTO
//! deadlines all happen in virtual time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::approval::{Approval, ApprovalSource};
use super::bus::{Bus, Durability, Subscriber};
use super::executor::Executor;
use super::process::last_lines;
use super::walker::{SvcState, WalkMode, Walker};
use crate::events::Event;
use crate::mask::Masker;
use crate::model::{Check, Mode, Model, Step, StepKind, SvcId, VarValue};
use crate::plan::{self, Scope};
use crate::template::{self, Builtins, Renderer};

/// `--on-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Keep recovering everything that is not blocked.
    #[default]
    Continue,
    /// Start nothing new after the first failure.
    Stop,
}

/// How many output lines of a failed step are shown to the operator.
pub const FAILURE_LINES: usize = 20;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    pub walk: WalkMode,
    /// Max services recovering at once; 0 = unlimited.
    pub parallel: usize,
    pub on_failure: OnFailure,
    /// Run a failed service's `rollback` steps.
    pub rollback: bool,
    pub dry_run: bool,
    /// RTO clock start; `None` = now.
    pub declared_at: Option<jiff::Timestamp>,
    pub run_id: String,
    pub run_dir: PathBuf,
    /// `--var k=v`.
    pub vars: BTreeMap<String, VarValue>,
    /// SIGTERM → SIGKILL grace when a step times out.
    pub kill_grace: Duration,
    /// How often a waiting manual step asks its approval source.
    pub approval_poll: Duration,
    /// Listen to SIGINT/SIGTERM (the binary does; library tests use `Interrupter`).
    pub handle_signals: bool,
    /// After a drill, run the `cleanup` steps of every service that was started.
    pub cleanup: bool,
    /// Planned (start_s, ready_s) per service name, from the planner; journaled in
    /// `run.started` so status and reports compare planned with actual.
    pub planned: BTreeMap<String, (f64, f64)>,
}

impl RunOptions {
    pub fn new(mode: Mode, run_id: impl Into<String>, run_dir: PathBuf) -> RunOptions {
        RunOptions {
            mode,
            walk: WalkMode::Waves,
            parallel: 8,
            on_failure: OnFailure::Continue,
            rollback: false,
            dry_run: false,
            declared_at: None,
            run_id: run_id.into(),
            run_dir,
            vars: BTreeMap::new(),
            kill_grace: Duration::from_secs(5),
            approval_poll: Duration::from_secs(1),
            handle_signals: false,
            cleanup: true,
            planned: BTreeMap::new(),
        }
    }
}

/// Prior progress of the same run (resume), and the journal position to continue from.
#[derive(Debug, Clone, Default)]
pub struct RunnerInput {
    /// Services recovered earlier: never started again.
    pub already_recovered: BTreeSet<String>,
    /// Per service, steps whose `step.succeeded` is journaled: skipped.
    pub done_steps: BTreeMap<String, BTreeSet<String>>,
    /// Sequence number of the first event this runner emits (1 for a new run).
    pub first_seq: u64,
    /// `Some` when resuming: `run.resumed` is emitted instead of `run.started`.
    pub resumed: Option<Resumed>,
    /// sha256 of the input files (for `run.started` / `run.resumed`).
    pub input_hash: String,
    /// Events journaled right after `run.started` / `run.resumed`, before anything runs: what
    /// the operator decided on resume (`--skip`: `service.skipped`, `step.skipped`). The
    /// matching services must be in `already_recovered` and steps in `done_steps`.
    pub prelude: Vec<Event>,
    /// Services whose `rto.breached` is journaled already (resume): not journaled twice.
    pub already_breached: BTreeSet<String>,
    /// Services started by an earlier attempt of this run (resume): a drill's cleanup covers
    /// them too, as `meeseeks cleanup` would.
    pub started_earlier: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Resumed {
    pub changes: Vec<String>,
}

impl RunnerInput {
    /// Prior progress replayed from a run's journal (resume): services recovered or skipped
    /// are not started again, steps whose `step.succeeded`/`step.skipped` is journaled are
    /// skipped, and numbering continues after the last record. Set `resumed.changes` and
    /// `input_hash` from the run's meta.
    pub fn from_state(state: &crate::journal::RunState) -> RunnerInput {
        let mut input = RunnerInput {
            first_seq: state.last_seq + 1,
            resumed: Some(Resumed::default()),
            input_hash: state.input_hash.clone().unwrap_or_default(),
            ..Default::default()
        };
        input.already_breached = state.breaches.iter().map(|b| b.service.clone()).collect();
        input.started_earlier = state
            .services
            .iter()
            .filter(|s| s.starts > 0)
            .map(|s| s.name.clone())
            .collect();
        for s in &state.services {
            if s.is_done() {
                input.already_recovered.insert(s.name.clone());
                continue;
            }
            let done: BTreeSet<String> = s
                .steps
                .iter()
                .filter(|st| s.step_done(&st.name))
                .map(|st| st.name.clone())
                .collect();
            if !done.is_empty() {
                input.done_steps.insert(s.name.clone(), done);
            }
        }
        input
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Recovered,
    /// Recovered by an earlier attempt of this run (resume).
    AlreadyRecovered,
    Failed,
    Blocked,
    /// Not started: `--on-failure stop`, or the run was interrupted first.
    NotStarted,
    /// Was running when the run was interrupted.
    Interrupted,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Recovered => "recovered",
            ServiceStatus::AlreadyRecovered => "recovered (earlier)",
            ServiceStatus::Failed => "failed",
            ServiceStatus::Blocked => "blocked",
            ServiceStatus::NotStarted => "not started",
            ServiceStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub tier: u32,
    pub status: ServiceStatus,
    /// Seconds from the RTO clock start.
    pub started_s: Option<f64>,
    pub ready_s: Option<f64>,
    pub rto_s: f64,
    /// `Some(false)` once the RTO elapsed without recovery.
    pub rto_met: Option<bool>,
    pub error: Option<String>,
    /// Last output lines of the failed step (masked).
    pub output: String,
    pub blocked_by: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub interrupted: bool,
    pub exit_code: i32,
    /// Seconds from the RTO clock start to the last completion.
    pub makespan_s: f64,
    /// In the order services were started (then the others, by name).
    pub services: Vec<ServiceReport>,
    /// Cleanup steps that failed after a drill ("service/step: error").
    pub cleanup_failures: Vec<String>,
    /// Cleanup steps that ran after a drill.
    pub cleaned_up: usize,
}

/// Lets tests and embedders deliver what SIGINT would: first call stops scheduling, second
/// kills running steps.
#[derive(Clone)]
pub struct Interrupter(mpsc::UnboundedSender<&'static str>);

impl Interrupter {
    pub fn interrupt(&self) {
        let _ = self.0.send("interrupt");
    }
}

enum Outcome {
    Recovered,
    Failed { error: String, output: String },
    Interrupted,
}

enum Msg {
    Event(Event),
    /// Journal this, then answer once it is durable: `step.started` must be on disk before
    /// the step's side effects can happen, or a crash in between would hide from `resume`
    /// that the step may have run.
    EventDurable(Event, tokio::sync::oneshot::Sender<()>),
    Done(SvcId, Outcome),
    CleanupDone(usize, Vec<String>),
}

/// Everything a driver task needs, shared read-only.
struct Shared {
    model: Arc<Model>,
    cli_vars: BTreeMap<String, VarValue>,
    builtins: Builtins,
    executor: Arc<dyn Executor>,
    approvals: Arc<dyn ApprovalSource>,
    mode: Mode,
    rollback: bool,
    run_dir: PathBuf,
    approval_poll: Duration,
    done_steps: BTreeMap<String, BTreeSet<String>>,
    masker: Masker,
}

/// The RTO clock: `declared_at` in wall time, anchored to the runtime's (possibly virtual)
/// monotonic clock at the runner's start.
#[derive(Clone, Copy)]
struct Clock {
    origin: Instant,
    origin_ts: jiff::Timestamp,
    declared_at: jiff::Timestamp,
}

impl Clock {
    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    fn now_ts(&self) -> jiff::Timestamp {
        let e = jiff::SignedDuration::try_from(self.elapsed()).unwrap_or_default();
        self.origin_ts.saturating_add(e).unwrap_or(self.origin_ts)
    }

    /// Seconds since the disaster was declared.
    fn since_declared(&self) -> f64 {
        let before = self
            .origin_ts
            .duration_since(self.declared_at)
            .as_secs_f64();
        before + self.elapsed().as_secs_f64()
    }

    /// The instant at which `rto` since the declaration elapses (possibly in the past).
    fn deadline(&self, rto: Duration) -> Instant {
        let before = self.origin_ts.duration_since(self.declared_at);
        let before = Duration::try_from(before).unwrap_or_default();
        match rto.checked_sub(before) {
            Some(left) => self.origin + left,
            None => self.origin,
        }
    }
}

pub struct Runner {
    model: Arc<Model>,
    scope: Scope,
    opts: RunOptions,
    input: RunnerInput,
    executor: Arc<dyn Executor>,
    approvals: Arc<dyn ApprovalSource>,
    masker: Masker,
    bus: Bus,
    durability: Option<Arc<dyn Durability>>,
    int_tx: mpsc::UnboundedSender<&'static str>,
    int_rx: mpsc::UnboundedReceiver<&'static str>,
}

impl Runner {
    pub fn new(
        model: Arc<Model>,
        scope: Scope,
        opts: RunOptions,
        input: RunnerInput,
        executor: Arc<dyn Executor>,
        approvals: Arc<dyn ApprovalSource>,
        masker: Masker,
    ) -> Runner {
        let (int_tx, int_rx) = mpsc::unbounded_channel();
        Runner {
            bus: Bus::new(input.first_seq, masker.clone()),
            model,
            scope,
            opts,
            input,
            executor,
            approvals,
            masker,
            durability: None,
            int_tx,
            int_rx,
        }
    }

    pub fn subscribe(&mut self, sub: Box<dyn Subscriber>) {
        self.bus.subscribe(sub);
    }

    /// The runner awaits durability of `run.finished` / `run.interrupted` before returning.
    pub fn set_durability(&mut self, d: Box<dyn Durability>) {
        self.durability = Some(Arc::from(d));
    }

    pub fn interrupter(&self) -> Interrupter {
        Interrupter(self.int_tx.clone())
    }

    pub async fn run(mut self) -> RunReport {
        let model = self.model.clone();
        let n = model.services.len();
        let opts = self.opts.clone();
        let ord = plan::ordering(&model, &self.scope, opts.mode);
        let mut already = vec![false; n];
        for name in &self.input.already_recovered {
            if let Some(id) = model.id(name) {
                already[id] = true;
            }
        }
        let mut walker = Walker::new(
            &model,
            &self.scope,
            &ord,
            opts.walk,
            opts.parallel,
            &already,
        );
        let now_ts = jiff::Timestamp::now();
        let clock = Clock {
            origin: Instant::now(),
            origin_ts: opts.declared_at.filter(|_| opts.dry_run).unwrap_or(now_ts),
            declared_at: opts.declared_at.unwrap_or(now_ts),
        };
        let shared = Arc::new(Shared {
            model: model.clone(),
            cli_vars: opts.vars.clone(),
            builtins: Builtins::new(
                &opts.run_id,
                opts.mode,
                opts.run_dir.clone(),
                model.dir.clone(),
            ),
            executor: self.executor.clone(),
            approvals: self.approvals.clone(),
            mode: opts.mode,
            rollback: opts.rollback,
            run_dir: opts.run_dir.clone(),
            approval_poll: opts.approval_poll,
            done_steps: std::mem::take(&mut self.input.done_steps),
            masker: self.masker.clone(),
        });

        // Every secret of the scope is read and registered for masking before anything runs,
        // so a secret echoed by any step is masked even before its own template is rendered.
        for missing in sh_renderer(&shared).prepare_secrets(&self.scope.ids) {
            tracing::warn!("not set in the environment: {missing}");
        }

        let first = match self.input.resumed.take() {
            None => Event::RunStarted {
                run_id: opts.run_id.clone(),
                mode: opts.mode,
                dir: model.dir.display().to_string(),
                declared_at: clock.declared_at,
                services: self
                    .scope
                    .ids
                    .iter()
                    .map(|&i| model.name(i).to_string())
                    .collect(),
                options: serde_json::json!({
                    "parallel": opts.parallel,
                    "eager": opts.walk == WalkMode::Eager,
                    "on_failure": opts.on_failure,
                    "rollback": opts.rollback,
                    "dry_run": opts.dry_run,
                    "vars": opts.vars.keys().collect::<Vec<_>>(),
                }),
                input_hash: self.input.input_hash.clone(),
                plan: planned(&model, &self.scope, &ord, &opts),
            },
            Some(r) => Event::RunResumed {
                changes: r.changes,
                input_hash: self.input.input_hash.clone(),
            },
        };
        self.bus.emit(clock.now_ts(), first);
        for e in std::mem::take(&mut self.input.prelude) {
            self.bus.emit(clock.now_ts(), e);
        }

        let mut started_s = vec![None; n];
        let mut ready_s = vec![None; n];
        let mut failure: Vec<Option<(String, String)>> = vec![None; n];
        let mut blocked_by = vec![None; n];
        let mut interrupted_svc = vec![false; n];
        let mut breached = vec![false; n];
        for name in &self.input.already_breached {
            if let Some(id) = model.id(name) {
                breached[id] = true;
            }
        }
        let mut start_order = Vec::with_capacity(self.scope.len());
        let mut deadlines: BinaryHeap<Reverse<(Instant, SvcId)>> = self
            .scope
            .ids
            .iter()
            .filter(|&&i| !already[i] && !self.input.already_breached.contains(model.name(i)))
            .map(|&i| Reverse((clock.deadline(model.services[i].rto), i)))
            .collect();

        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let mut signals = if opts.handle_signals {
            Signals::new()
        } else {
            Signals::none()
        };
        let mut interrupts = 0u32;
        let mut any_failed = false;
        let mut last_done = 0.0f64;

        loop {
            // Deadlines already past (a `--declared-at` long ago, or resume) are journaled
            // before anything else happens.
            while let Some(&Reverse((t, id))) = deadlines.peek() {
                if t > Instant::now() {
                    break;
                }
                deadlines.pop();
                if walker.state(id) != SvcState::Recovered {
                    breached[id] = true;
                    self.bus.emit(
                        clock.now_ts(),
                        Event::RtoBreached {
                            service: model.name(id).to_string(),
                            rto_s: model.services[id].rto.as_secs_f64(),
                        },
                    );
                }
            }
            while let Some(id) = walker.next_ready() {
                started_s[id] = Some(clock.since_declared());
                start_order.push(id);
                self.bus.emit(
                    clock.now_ts(),
                    Event::ServiceStarted {
                        service: model.name(id).to_string(),
                    },
                );
                let guard = DoneGuard {
                    tx: Some(tx.clone()),
                    id,
                };
                tokio::spawn(drive(shared.clone(), id, guard, stop.clone(), kill.clone()));
            }
            if walker.is_done() {
                break;
            }
            let next_deadline = deadlines.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                // Drain driver events first so that records keep their causal order.
                biased;
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    match msg {
                        Msg::Event(ev) => {
                            self.bus.emit(clock.now_ts(), ev);
                        }
                        Msg::EventDurable(ev, ack) => {
                            let seq = self.bus.emit(clock.now_ts(), ev);
                            ack_when_durable(self.durability.clone(), seq, ack);
                        }
                        Msg::CleanupDone(..) => {}
                        Msg::Done(id, outcome) => {
                            let name = model.name(id).to_string();
                            let at = clock.since_declared();
                            last_done = last_done.max(at);
                            match outcome {
                                Outcome::Recovered => {
                                    ready_s[id] = Some(at);
                                    self.bus.emit(clock.now_ts(), Event::ServiceRecovered { service: name, recovered_s: at });
                                    walker.complete(id, true);
                                }
                                Outcome::Failed { error, output } => {
                                    any_failed = true;
                                    self.bus.emit(clock.now_ts(), Event::ServiceFailed { service: name, error: error.clone() });
                                    failure[id] = Some((error, output));
                                    for (b, cause) in walker.complete(id, false) {
                                        blocked_by[b] = Some(model.name(cause).to_string());
                                        self.bus.emit(clock.now_ts(), Event::ServiceBlocked {
                                            service: model.name(b).to_string(),
                                            because: model.name(cause).to_string(),
                                        });
                                    }
                                    if opts.on_failure == OnFailure::Stop {
                                        walker.stop();
                                    }
                                }
                                Outcome::Interrupted => {
                                    interrupted_svc[id] = true;
                                    walker.release(id);
                                }
                            }
                        }
                    }
                }
                _ = interrupt(&mut signals, &mut self.int_rx) => {
                    interrupts += 1;
                    if interrupts == 1 {
                        walker.stop();
                        stop.cancel();
                        tracing::warn!("interrupted: starting nothing new; running steps finish within their timeouts (interrupt again to kill them)");
                    } else {
                        kill.cancel();
                        tracing::warn!("interrupted again: killing running steps");
                    }
                }
                _ = sleep_until(next_deadline) => {
                    if let Some(Reverse((_, id))) = deadlines.pop()
                        && walker.state(id) != SvcState::Recovered
                    {
                        breached[id] = true;
                        self.bus.emit(clock.now_ts(), Event::RtoBreached {
                            service: model.name(id).to_string(),
                            rto_s: model.services[id].rto.as_secs_f64(),
                        });
                    }
                }
            }
        }
        // After a drill: cleanup steps of every service that was started, dependents first, so
        // that nothing the drill brought up is left running.
        let mut cleanup_failures = Vec::new();
        let mut cleaned_up = 0;
        if opts.cleanup && opts.mode == Mode::Drill && interrupts == 0 {
            let ids: Vec<SvcId> = ord
                .topo
                .iter()
                .rev()
                .copied()
                .filter(|&i| {
                    started_s[i].is_some() || self.input.started_earlier.contains(model.name(i))
                })
                .collect();
            tokio::spawn(cleanup_all(shared.clone(), ids, tx.clone(), kill.clone()));
            loop {
                tokio::select! {
                    biased;
                    msg = rx.recv() => match msg {
                        Some(Msg::Event(ev)) => { self.bus.emit(clock.now_ts(), ev); }
                        Some(Msg::EventDurable(ev, ack)) => {
                            let seq = self.bus.emit(clock.now_ts(), ev);
                            ack_when_durable(self.durability.clone(), seq, ack);
                        }
                        Some(Msg::CleanupDone(n, f)) => { cleaned_up = n; cleanup_failures = f; break; }
                        Some(Msg::Done(..)) => {}
                        None => break,
                    },
                    _ = interrupt(&mut signals, &mut self.int_rx) => {
                        // The operator wants out: kill the running cleanup step.
                        interrupts += 1;
                        kill.cancel();
                    }
                }
            }
        }

        // RTOs that elapse exactly at the end still count.
        while let Some(Reverse((t, id))) = deadlines.pop() {
            if t <= Instant::now() && walker.state(id) != SvcState::Recovered {
                breached[id] = true;
                self.bus.emit(
                    clock.now_ts(),
                    Event::RtoBreached {
                        service: model.name(id).to_string(),
                        rto_s: model.services[id].rto.as_secs_f64(),
                    },
                );
            }
        }

        let interrupted = interrupts > 0;
        let count = |st: SvcState| {
            self.scope
                .ids
                .iter()
                .filter(|&&i| walker.state(i) == st)
                .count()
        };
        let (recovered, failed, blocked) = (
            count(SvcState::Recovered),
            count(SvcState::Failed),
            count(SvcState::Blocked),
        );
        let last = if interrupted {
            Event::RunInterrupted {
                reason: "interrupted by the operator (SIGINT/SIGTERM)".into(),
            }
        } else {
            Event::RunFinished {
                outcome: if any_failed || blocked > 0 || walker.remaining() > 0 {
                    "failed".into()
                } else {
                    "succeeded".into()
                },
                recovered,
                failed,
                blocked,
            }
        };
        let seq = self.bus.emit(clock.now_ts(), last);
        if let Some(d) = &self.durability
            && let Err(e) = d.durable(seq).await
        {
            tracing::error!("the journal could not be made durable: {e}");
        }
        self.bus.finish();

        let exit_code = if interrupted {
            crate::error::exit::INTERRUPTED
        } else if any_failed || blocked > 0 || walker.remaining() > 0 {
            crate::error::exit::NEGATIVE
        } else {
            crate::error::exit::OK
        };
        let mut order = start_order;
        let mut seen = vec![false; n];
        for &i in &order {
            seen[i] = true;
        }
        order.extend(self.scope.ids.iter().copied().filter(|&i| !seen[i]));
        let services = order
            .into_iter()
            .map(|id| {
                let s = &model.services[id];
                let status = if already[id] {
                    ServiceStatus::AlreadyRecovered
                } else if interrupted_svc[id] {
                    ServiceStatus::Interrupted
                } else {
                    match walker.state(id) {
                        SvcState::Recovered => ServiceStatus::Recovered,
                        SvcState::Failed => ServiceStatus::Failed,
                        SvcState::Blocked => ServiceStatus::Blocked,
                        _ => ServiceStatus::NotStarted,
                    }
                };
                let rto_s = s.rto.as_secs_f64();
                let (error, output) = failure[id].clone().unwrap_or_default();
                ServiceReport {
                    name: s.name.clone(),
                    tier: s.tier,
                    status,
                    started_s: started_s[id],
                    ready_s: ready_s[id],
                    rto_s,
                    rto_met: match ready_s[id] {
                        Some(r) => Some(r <= rto_s),
                        None if breached[id] => Some(false),
                        None => None,
                    },
                    error: (!error.is_empty()).then(|| self.masker.mask(&error).into_owned()),
                    output: self.masker.mask(&output).into_owned(),
                    blocked_by: blocked_by[id].clone(),
                }
            })
            .collect();
        RunReport {
            run_id: opts.run_id.clone(),
            mode: opts.mode,
            dry_run: opts.dry_run,
            interrupted,
            exit_code,
            makespan_s: last_done,
            services,
            cleanup_failures,
            cleaned_up,
        }
    }
}

/// The plan carried by `run.started`, so status and reports need no re-plan.
fn planned(
    model: &Model,
    scope: &Scope,
    ord: &plan::Ordering,
    opts: &RunOptions,
) -> Vec<crate::events::PlannedService> {
    let mode = opts.mode;
    scope
        .ids
        .iter()
        .map(|&id| {
            let s = &model.services[id];
            let times = opts.planned.get(&s.name);
            crate::events::PlannedService {
                name: s.name.clone(),
                tier: s.tier,
                rto_s: Some(s.rto.as_secs_f64()),
                wave: Some(ord.wave[id]),
                start_s: times.map(|t| t.0),
                ready_s: times.map(|t| t.1),
                depends_on: s
                    .depends_on
                    .iter()
                    .filter(|&&d| scope.member[d])
                    .map(|&d| model.name(d).to_string())
                    .collect(),
                steps: s
                    .playbook
                    .iter()
                    .flat_map(|p| p.steps.iter())
                    .filter(|st| st.runs_in(mode))
                    .map(|st| st.name.clone())
                    .collect(),
            }
        })
        .collect()
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    fn none() -> Signals {
        Signals {
            int: None,
            term: None,
        }
    }
}

async fn recv_sig(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

async fn interrupt(s: &mut Signals, rx: &mut mpsc::UnboundedReceiver<&'static str>) {
    tokio::select! {
        _ = recv_sig(&mut s.int) => {}
        _ = recv_sig(&mut s.term) => {}
        Some(_) = rx.recv() => {}
    }
}

/// `meeseeks cleanup`: runs the cleanup steps of `ids` (give them dependents first), outside a
/// walk, with `subscribers` watching. Returns (steps run, failures).
#[allow(clippy::too_many_arguments)]
pub async fn cleanup_services(
    model: Arc<Model>,
    ids: Vec<SvcId>,
    opts: &RunOptions,
    executor: Arc<dyn Executor>,
    masker: Masker,
    subscribers: Vec<Box<dyn Subscriber>>,
) -> (usize, Vec<String>) {
    let shared = Arc::new(Shared {
        model: model.clone(),
        cli_vars: opts.vars.clone(),
        builtins: Builtins::new(
            &opts.run_id,
            opts.mode,
            opts.run_dir.clone(),
            model.dir.clone(),
        ),
        executor,
        approvals: Arc::new(super::approval::NeverApprove),
        mode: opts.mode,
        rollback: false,
        run_dir: opts.run_dir.clone(),
        approval_poll: opts.approval_poll,
        done_steps: BTreeMap::new(),
        masker: masker.clone(),
    });
    sh_renderer(&shared).prepare_secrets(&ids);
    let mut bus = Bus::new(1, masker);
    for s in subscribers {
        bus.subscribe(s);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    tokio::spawn(cleanup_all(shared, ids, tx, kill.clone()));
    let mut signals = if opts.handle_signals {
        Signals::new()
    } else {
        Signals::none()
    };
    let (_int_tx, mut int_rx) = mpsc::unbounded_channel();
    let mut result = (0, Vec::new());
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(Msg::Event(ev)) => {
                    bus.emit(jiff::Timestamp::now(), ev);
                }
                Some(Msg::EventDurable(ev, ack)) => {
                    bus.emit(jiff::Timestamp::now(), ev);
                    let _ = ack.send(());
                }
                Some(Msg::CleanupDone(n, f)) => {
                    result = (n, f);
                    break;
                }
                Some(Msg::Done(..)) => {}
                None => break,
            },
            _ = interrupt(&mut signals, &mut int_rx) => kill.cancel(),
        }
    }
    bus.finish();
    result
}

/// Runs the cleanup steps of `ids` in order (each step once with its retries; a failure is
/// recorded and cleanup goes on: leaving the rest running would be worse).
async fn cleanup_all(
    sh: Arc<Shared>,
    ids: Vec<SvcId>,
    tx: mpsc::UnboundedSender<Msg>,
    kill: CancellationToken,
) {
    let renderer = sh_renderer(&sh);
    let never = CancellationToken::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for id in ids {
        let Some(pb) = &sh.model.services[id].playbook else {
            continue;
        };
        let mut g = DoneGuard {
            tx: Some(tx.clone()),
            id,
        };
        for step in pb.cleanup.iter().filter(|s| s.runs_in(sh.mode)) {
            let label = format!("cleanup/{}", step.name);
            ran += 1;
            match run_step(&sh, &renderer, id, &g, step, &label, &never, &kill).await {
                StepEnd::Ok => {}
                StepEnd::Failed { error, .. } => failures.push(format!(
                    "{}/{}: {}",
                    sh.model.name(id),
                    step.name,
                    sh.masker.mask(&error)
                )),
                StepEnd::Interrupted => {
                    failures.push(format!("{}/{}: interrupted", sh.model.name(id), step.name))
                }
            }
        }
        g.tx = None;
    }
    let _ = tx.send(Msg::CleanupDone(ran, failures));
}

/// Sends the driver's outcome; if the driver panics, reports the service failed instead of
/// leaving the runner waiting forever.
/// Answers `ack` once record `seq` is durable (at once without a journal). A journal that
/// cannot sync is logged, not fatal: the run goes on, as it does for other records.
fn ack_when_durable(
    d: Option<Arc<dyn Durability>>,
    seq: u64,
    ack: tokio::sync::oneshot::Sender<()>,
) {
    match d {
        None => {
            let _ = ack.send(());
        }
        Some(d) => {
            tokio::spawn(async move {
                if let Err(e) = d.durable(seq).await {
                    tracing::error!("the journal could not be made durable: {e}");
                }
                let _ = ack.send(());
            });
        }
    }
}

struct DoneGuard {
    tx: Option<mpsc::UnboundedSender<Msg>>,
    id: SvcId,
}

impl DoneGuard {
    fn event(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Event(ev));
        }
    }

    /// Journals `ev` and waits until it is durable (write-ahead for side effects).
    async fn event_durable(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            let (ack, done) = tokio::sync::oneshot::channel();
            if tx.send(Msg::EventDurable(ev, ack)).is_ok() {
                let _ = done.await;
            }
        }
    }

    fn done(mut self, o: Outcome) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Done(self.id, o));
        }
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Done(
                self.id,
                Outcome::Failed {
                    error: "internal error: the service's task ended unexpectedly".into(),
                    output: String::new(),
                },
            ));
        }
    }
}

enum StepEnd {
    Ok,
    Failed { error: String, output: String },
    Interrupted,
}

fn sh_renderer(sh: &Shared) -> Renderer<'_> {
    Renderer::new(
        &sh.model,
        sh.cli_vars.clone(),
        sh.builtins.clone(),
        sh.masker.clone(),
    )
}

/// Walks one service's playbook.
async fn drive(
    sh: Arc<Shared>,
    id: SvcId,
    g: DoneGuard,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let outcome = drive_inner(&sh, id, &g, &stop, &kill).await;
    let outcome = match outcome {
        Outcome::Failed { error, output } if sh.rollback => {
            rollback(&sh, id, &g, &kill).await;
            Outcome::Failed { error, output }
        }
        o => o,
    };
    g.done(outcome);
}

async fn drive_inner(
    sh: &Arc<Shared>,
    id: SvcId,
    g: &DoneGuard,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Outcome {
    let svc = &sh.model.services[id];
    let name = svc.name.as_str();
    let Some(pb) = &svc.playbook else {
        if sh.executor.is_simulated() {
            tokio::time::sleep(sh.model.defaults.estimate).await;
            return Outcome::Recovered;
        }
        return Outcome::Failed {
            error: "no playbook".into(),
            output: String::new(),
        };
    };
    let renderer = sh_renderer(sh);
    let done = sh.done_steps.get(name);
    for step in &pb.steps {
        if !step.runs_in(sh.mode) {
            g.event(Event::StepSkipped {
                service: name.into(),
                step: step.name.clone(),
                reason: format!("runs in {} mode only", other(sh.mode)),
            });
            continue;
        }
        // Done earlier in this run (succeeded, or skipped by the operator): its outcome is
        // journaled already; a new record would only overwrite why it was skipped.
        if done.is_some_and(|d| d.contains(&step.name)) {
            continue;
        }
        if stop.is_cancelled() {
            return Outcome::Interrupted;
        }
        match run_step(sh, &renderer, id, g, step, &step.name, stop, kill).await {
            StepEnd::Ok => {}
            StepEnd::Interrupted => return Outcome::Interrupted,
            StepEnd::Failed { .. } if step.optional => {}
            StepEnd::Failed { error, output } => {
                return Outcome::Failed {
                    error: format!("step \"{}\" failed: {error}", step.name),
                    output,
                };
            }
        }
    }
    if pb.checks.is_empty() {
        return Outcome::Recovered;
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in pb.checks.iter().enumerate() {
        let check = match renderer.render_check(id, c) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("check \"{}\": {e}", c.name),
                    output: String::new(),
                };
            }
        };
        let (sh, stop, kill) = (sh.clone(), stop.clone(), kill.clone());
        let tx = g.tx.clone();
        set.spawn(async move {
            let r = poll_check(&sh, &check, &stop, &kill).await;
            if let Some(tx) = tx {
                let service = sh.model.name(id).to_string();
                let ev = match &r {
                    Ok(polls) => Some(Event::CheckPassed {
                        service,
                        check: check.name.clone(),
                        polls: *polls,
                    }),
                    Err(Some(e)) => Some(Event::CheckFailed {
                        service,
                        check: check.name.clone(),
                        error: e.clone(),
                    }),
                    Err(None) => None,
                };
                if let Some(ev) = ev {
                    let _ = tx.send(Msg::Event(ev));
                }
            }
            (i, r)
        });
    }
    let mut result = Outcome::Recovered;
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(_))) => {}
            Ok((i, Err(Some(e)))) => {
                if matches!(result, Outcome::Recovered) {
                    result = Outcome::Failed {
                        error: format!("check \"{}\" failed: {e}", pb.checks[i].name),
                        output: String::new(),
                    };
                    // One failed check decides: stop polling the others.
                    set.abort_all();
                }
            }
            Ok((_, Err(None))) => result = Outcome::Interrupted,
            Err(e) if e.is_cancelled() => {}
            Err(_) => {
                result = Outcome::Failed {
                    error: "internal error in a check".into(),
                    output: String::new(),
                }
            }
        }
    }
    result
}

fn other(m: Mode) -> Mode {
    match m {
        Mode::Drill => Mode::Failover,
        Mode::Failover => Mode::Drill,
    }
}

/// Polls `check` every `interval` until `healthy_after` consecutive successes (Ok(polls)), or
/// its timeout (Err(Some(last error))), or an interrupt (Err(None)).
async fn poll_check(
    sh: &Shared,
    check: &Check,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Result<u32, Option<String>> {
    let deadline = Instant::now() + check.timeout;
    let need = check.healthy_after.max(1);
    let (mut polls, mut streak) = (0u32, 0u32);
    let mut last_err = String::from("no probe completed");
    loop {
        polls += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let t = left.min(Check::PROBE_TIMEOUT).max(Duration::from_millis(1));
        let a = sh.executor.probe(check, t, kill).await;
        if a.killed {
            return Err(None);
        }
        if a.ok {
            streak += 1;
            if streak >= need {
                return Ok(polls);
            }
        } else {
            streak = 0;
            last_err = a.error;
            tracing::debug!(check = %check.name, error = %sh.masker.mask(&last_err), "probe failed");
        }
        if Instant::now() + check.interval > deadline {
            return Err(Some(format!(
                "not healthy after {} ({polls} polls; last: {last_err})",
                crate::model::fmt_duration(check.timeout)
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(check.interval) => {}
            _ = stop.cancelled() => return Err(None),
        }
    }
}

/// Runs one step with retries and exponential backoff; emits its events under `label`.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    sh: &Shared,
    renderer: &Renderer<'_>,
    id: SvcId,
    g: &DoneGuard,
    step: &Step,
    label: &str,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> StepEnd {
    let service = sh.model.name(id);
    let step = match renderer.render_step(id, step) {
        Ok(s) => s,
        Err(e) => {
            let e = e.to_string();
            g.event(Event::StepFailed {
                service: service.into(),
                step: label.into(),
                attempts: 0,
                error: e.clone(),
                output: String::new(),
                optional: step.optional,
            });
            return StepEnd::Failed {
                error: e,
                output: String::new(),
            };
        }
    };
    let started = Instant::now();
    if let StepKind::Manual(prompt) = &step.kind {
        return manual(sh, service, g, &step, label, prompt, started, stop).await;
    }
    let attempts = step.retries + 1;
    let mut backoff = crate::backoff::Backoff::new(step.retry_delay);
    for attempt in 1..=attempts {
        g.event_durable(Event::StepStarted {
            service: service.into(),
            step: label.into(),
            attempt,
            action: Some(template::describe(&step, &sh.masker)),
        })
        .await;
        let call = super::executor::Call {
            service,
            label,
            stop,
            kill,
        };
        let a = sh
            .executor
            .step(&step, step.effective_timeout(), call)
            .await;
        if a.ok {
            g.event(Event::StepSucceeded {
                service: service.into(),
                step: label.into(),
                attempts: attempt,
                duration_s: started.elapsed().as_secs_f64(),
            });
            return StepEnd::Ok;
        }
        if a.killed {
            return StepEnd::Interrupted;
        }
        let output = last_lines(&a.output, FAILURE_LINES);
        if attempt == attempts {
            g.event(Event::StepFailed {
                service: service.into(),
                step: label.into(),
                attempts: attempt,
                error: a.error.clone(),
                output: output.clone(),
                optional: step.optional,
            });
            return StepEnd::Failed {
                error: a.error,
                output,
            };
        }
        g.event(Event::StepAttemptFailed {
            service: service.into(),
            step: label.into(),
            attempt,
            error: a.error,
            output,
        });
        // Backoff is cancellable: after an interrupt no new attempt starts.
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.cancelled() => return StepEnd::Interrupted,
        }
    }
    StepEnd::Interrupted
}

#[allow(clippy::too_many_arguments)]
async fn manual(
    sh: &Shared,
    service: &str,
    g: &DoneGuard,
    step: &Step,
    label: &str,
    prompt: &str,
    started: Instant,
    stop: &CancellationToken,
) -> StepEnd {
    g.event(Event::StepStarted {
        service: service.into(),
        step: label.into(),
        attempt: 1,
        action: Some(template::describe_step(&step.kind, &sh.masker)),
    });
    g.event(Event::ManualWaiting {
        service: service.into(),
        step: label.into(),
        prompt: prompt.into(),
    });
    let by = if sh.executor.is_simulated() {
        // Dry-run: the operator's answer takes the step's planning estimate.
        let secs = plan::step_estimate(step).secs;
        tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
        "dry-run".to_string()
    } else {
        loop {
            match sh.approvals.check(&sh.run_dir, service, label, prompt) {
                Approval::Approved(by) => break by,
                Approval::Rejected(by) => {
                    let error = format!("rejected by {by}");
                    g.event(Event::StepFailed {
                        service: service.into(),
                        step: label.into(),
                        attempts: 1,
                        error: error.clone(),
                        output: String::new(),
                        optional: step.optional,
                    });
                    return StepEnd::Failed {
                        error,
                        output: String::new(),
                    };
                }
                Approval::Pending => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(sh.approval_poll) => {}
                _ = stop.cancelled() => return StepEnd::Interrupted,
            }
        }
    };
    g.event(Event::ManualApproved {
        service: service.into(),
        step: label.into(),
        by,
    });
    g.event(Event::StepSucceeded {
        service: service.into(),
        step: label.into(),
        attempts: 1,
        duration_s: started.elapsed().as_secs_f64(),
    });
    StepEnd::Ok
}

/// `--rollback`: a failed service's rollback steps, in order, stopping at the first failure.
/// Not interruptible by the first interrupt: leaving a half-rolled-back service is worse.
async fn rollback(sh: &Arc<Shared>, id: SvcId, g: &DoneGuard, kill: &CancellationToken) {
    let Some(pb) = &sh.model.services[id].playbook else {
        return;
    };
    if pb.rollback.is_empty() {
        return;
    }
    g.event(Event::RollbackStarted {
        service: sh.model.name(id).into(),
    });
    let never = CancellationToken::new();
    let renderer = sh_renderer(sh);
    for step in &pb.rollback {
        if !step.runs_in(sh.mode) {
            continue;
        }
        let label = format!("rollback/{}", step.name);
        match run_step(sh, &renderer, id, g, step, &label, &never, kill).await {
            StepEnd::Ok => {}
            _ if step.optional => {}
            _ => return,
        }
    }
}
