//! The runner: an actor loop (`tokio::select!`) over driver messages, operator interrupts, RTO
//! deadlines and journal failures, each handled by one small method of [`Walk`]. It owns the
//! walker (which service may start now) and the event bus (which stamps, masks and folds every
//! event into the live `RunState` and hands it to the subscribers). Each running service is a
//! task ([`driver`]) that walks its playbook and reports through one ordered channel.
//!
//! Real runs and dry-runs are this same code: only the `Executor` differs, and a dry-run is
//! driven on a runtime with paused (virtual) time, so sleeps, backoffs, polling intervals and RTO
//! deadlines all happen in virtual time.
//!
//! The journal is the truth: no step starts unless its `step.started` is durable, and when the
//! journal fails (a full disk, a lost store lease) the run starts nothing more, says why, and
//! exits non-zero — resumable once the cause is fixed.

mod cleanup;
mod driver;
mod signals;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use cleanup::pending_cleanup;
pub use signals::Interrupter;

use super::bus::Bus;
use super::executor::Executor;
use super::options::{RunOptions, RunnerInput};
use super::walker::{SvcState, Walker};
use crate::events::{ApprovalSource, Durability, Event, JournalFailure, Subscriber};
use crate::mask::Masker;
use crate::model::{Mode, Model, SvcId, VarValue};
use crate::plan::{self, Scope};
use crate::runstate::{RunState, RunStatus};
use crate::template::Builtins;

/// How a service's driver ended.
pub(super) enum Outcome {
    Recovered,
    Failed { error: String, output: String },
    Interrupted,
}

pub(super) enum Msg {
    Event(Event),
    /// Journal this, then answer once it is durable (`true`) or cannot be (`false`):
    /// `step.started` must be on disk before the step's side effects can happen, or a crash in
    /// between would hide from `resume` that the step may have run.
    ///
    /// With `written_enough`, answered once the event is written where `resume` on this host
    /// would read it (see `Durability::on_written`): enough before a step that may safely run
    /// twice. A host that dies before the fsync loses `step.started`, and `resume` then runs
    /// the step again, as it does with any step started and not finished; a runner that dies
    /// leaves the record for `resume`, which stops what the step left running.
    EventDurable {
        ev: Event,
        written_enough: bool,
        ack: oneshot::Sender<bool>,
    },
    Done(SvcId, Outcome),
    CleanupDone,
}

/// Everything a driver task needs, shared read-only.
pub(super) struct Shared {
    pub(super) model: Arc<Model>,
    pub(super) cli_vars: BTreeMap<String, VarValue>,
    pub(super) builtins: Builtins,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) approvals: Arc<dyn ApprovalSource>,
    pub(super) mode: Mode,
    pub(super) rollback: bool,
    pub(super) approval_poll: Duration,
    pub(super) done_steps: BTreeMap<String, BTreeSet<String>>,
    pub(super) masker: Masker,
    /// RTO clock start: where measured RPO windows end (`rpo`).
    pub(super) declared_at: jiff::Timestamp,
}

impl Shared {
    fn new(
        model: Arc<Model>,
        opts: &RunOptions,
        executor: Arc<dyn Executor>,
        approvals: Arc<dyn ApprovalSource>,
        done_steps: BTreeMap<String, BTreeSet<String>>,
        masker: Masker,
    ) -> Shared {
        Shared {
            builtins: Builtins::new(
                &opts.run_id,
                opts.mode(),
                opts.run_dir.clone(),
                model.dir.clone(),
            ),
            model,
            cli_vars: opts.config.var_values(),
            executor,
            approvals,
            mode: opts.mode(),
            rollback: opts.config.rollback,
            approval_poll: opts.approval_poll,
            done_steps,
            masker,
            declared_at: opts.declared_at.unwrap_or_else(jiff::Timestamp::now),
        }
    }
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
            Some(left) => self
                .origin
                .checked_add(left)
                .unwrap_or_else(|| self.origin + Duration::from_secs(100 * 365 * 24 * 3600)),
            None => self.origin,
        }
    }
}

/// What a run ended with: its state (the same fold `status` and `report` make of the
/// journal) and the exit code the CLI returns.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub state: RunState,
    pub exit_code: i32,
    /// Stopped by the operator (SIGINT/SIGTERM or an `Interrupter`).
    pub interrupted: bool,
    /// The journal failed: nothing more was done once it did.
    pub journal_failure: Option<JournalFailure>,
}

pub struct Runner {
    model: Arc<Model>,
    scope: Scope,
    opts: RunOptions,
    input: RunnerInput,
    executor: Arc<dyn Executor>,
    approvals: Arc<dyn ApprovalSource>,
    masker: Masker,
    subscribers: Vec<Box<dyn Subscriber>>,
    durability: Option<Arc<dyn Durability>>,
    int_tx: mpsc::UnboundedSender<()>,
    int_rx: mpsc::UnboundedReceiver<()>,
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
            model,
            scope,
            opts,
            input,
            executor,
            approvals,
            masker,
            subscribers: Vec::new(),
            durability: None,
            int_tx,
            int_rx,
        }
    }

    pub fn subscribe(&mut self, sub: Box<dyn Subscriber>) {
        self.subscribers.push(sub);
    }

    /// The journal: step side effects wait for durability, and its failure stops the run.
    pub fn set_durability(&mut self, d: Arc<dyn Durability>) {
        self.durability = Some(d);
    }

    pub fn interrupter(&self) -> Interrupter {
        Interrupter(self.int_tx.clone())
    }

    pub async fn run(mut self) -> RunOutcome {
        let mut w = Walk::new(&mut self);
        w.begin(&mut self.input);
        let durability = self.durability.clone();
        let journal_failed = async move {
            match durability {
                Some(d) => d.failed().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(journal_failed);
        let mut journal_watch = true;
        loop {
            w.breaches_due();
            // A dry-run's clock is paused: every driver finishing at this instant reports
            // before anything new starts, as in the plan (a slot and a dependency freed at the
            // same instant are both there for the next start).
            if w.opts.config.dry_run {
                tokio::task::yield_now().await;
            }
            w.start_ready();
            if w.walker.is_done() {
                break;
            }
            let next_deadline = w.deadlines.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                // Drain driver events first so that records keep their causal order.
                biased;
                msg = w.rx.recv() => match msg {
                    Some(msg) => w.on_message(msg),
                    None => break,
                },
                f = &mut journal_failed, if journal_watch => {
                    journal_watch = false;
                    w.on_journal_failure(f);
                }
                _ = signals::interrupt(&mut w.signals, &mut self.int_rx) => w.on_interrupt(),
                _ = sleep_until(next_deadline) => w.on_deadline(),
            }
        }
        if w.should_clean_up() {
            w.clean_up(&mut self.int_rx).await;
        }
        w.finish().await
    }
}

/// The state of one walk: everything the loop's handlers share.
struct Walk {
    model: Arc<Model>,
    scope: Scope,
    opts: RunOptions,
    ord: plan::Ordering,
    walker: Walker,
    bus: Bus,
    clock: Clock,
    shared: Arc<Shared>,
    durability: Option<Arc<dyn Durability>>,
    deadlines: BinaryHeap<Reverse<(Instant, SvcId)>>,
    breached: Vec<bool>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    stop: CancellationToken,
    kill: CancellationToken,
    signals: signals::Signals,
    interrupts: u32,
    any_failed: bool,
    journal_failure: Option<JournalFailure>,
}

impl Walk {
    fn new(r: &mut Runner) -> Walk {
        let model = r.model.clone();
        let n = model.services.len();
        let opts = r.opts.clone();
        // The plan's priority list: the run walks the order the plan chose.
        let ord = match &opts.priority {
            Some(p) => plan::ordering_from(&model, &r.scope, opts.mode(), p),
            None => plan::run_ordering(
                &model,
                &r.scope,
                opts.mode(),
                opts.walk(),
                opts.config.parallel,
            ),
        };
        let mut already = vec![false; n];
        for name in &r.input.already_recovered {
            if let Some(id) = model.id(name) {
                already[id] = true;
            }
        }
        let walker = Walker::new(
            &model,
            &r.scope,
            &ord,
            opts.walk(),
            opts.config.parallel,
            &already,
        );
        let now_ts = jiff::Timestamp::now();
        let dry = opts.config.dry_run;
        let clock = Clock {
            origin: Instant::now(),
            origin_ts: opts.declared_at.filter(|_| dry).unwrap_or(now_ts),
            declared_at: opts.declared_at.unwrap_or(now_ts),
        };
        let shared = Arc::new(Shared::new(
            model.clone(),
            &opts,
            r.executor.clone(),
            r.approvals.clone(),
            std::mem::take(&mut r.input.done_steps),
            r.masker.clone(),
        ));
        // Every secret of the scope is read and registered for masking before anything runs,
        // so a secret echoed by any step is masked even before its own template is rendered.
        for missing in driver::sh_renderer(&shared).prepare_secrets(&r.scope.ids) {
            tracing::warn!("not set in the environment: {missing}");
        }
        let mut breached = vec![false; n];
        for name in &r.input.already_breached {
            if let Some(id) = model.id(name) {
                breached[id] = true;
            }
        }
        let deadlines = r
            .scope
            .ids
            .iter()
            .filter(|&&i| !already[i] && !breached[i])
            .map(|&i| Reverse((clock.deadline(model.services[i].rto), i)))
            .collect();
        let mut bus = Bus::with_state(
            r.input.first_seq,
            r.masker.clone(),
            r.input.prior.take().unwrap_or_default(),
        );
        for s in std::mem::take(&mut r.subscribers) {
            bus.subscribe(s);
        }
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        Walk {
            model,
            scope: r.scope.clone(),
            ord,
            walker,
            bus,
            clock,
            shared,
            durability: r.durability.clone(),
            deadlines,
            breached,
            tx,
            rx,
            stop: CancellationToken::new(),
            kill: CancellationToken::new(),
            signals: signals::Signals::new(opts.handle_signals),
            interrupts: 0,
            any_failed: false,
            journal_failure: None,
            opts,
        }
    }

    fn emit(&mut self, ev: Event) -> u64 {
        self.bus.emit(self.clock.now_ts(), ev)
    }

    /// `run.started` (or `run.resumed`), then what the operator decided on resume.
    fn begin(&mut self, input: &mut RunnerInput) {
        let first = match input.resumed.take() {
            None => Event::RunStarted {
                run_id: self.opts.run_id.clone(),
                mode: self.opts.mode(),
                dir: self.model.dir.display().to_string(),
                declared_at: self.clock.declared_at,
                services: self
                    .scope
                    .ids
                    .iter()
                    .map(|&i| self.model.name(i).to_string())
                    .collect(),
                options: Box::new(self.opts.config.clone()),
                input_hash: input.input_hash.clone(),
                plan: planned(&self.model, &self.scope, &self.ord, &self.opts),
                holder: input.holder.clone(),
            },
            Some(r) => Event::RunResumed {
                changes: r.changes,
                input_hash: input.input_hash.clone(),
                holder: input.holder.clone(),
            },
        };
        self.emit(first);
        for e in std::mem::take(&mut input.prelude) {
            self.emit(e);
        }
    }

    /// The one breach path: journals (and so notifies) `rto.breached` for `id` once, when its
    /// RTO elapsed and it is not recovered.
    fn breach(&mut self, id: SvcId) {
        if self.breached[id] || self.walker.state(id) == SvcState::Recovered {
            return;
        }
        self.breached[id] = true;
        let ev = Event::RtoBreached {
            service: self.model.name(id).to_string(),
            rto_s: self.model.services[id].rto.as_secs_f64(),
        };
        self.emit(ev);
    }

    /// Deadlines already past (a `--declared-at` long ago, resume, or elapsed meanwhile) are
    /// journaled before anything else happens.
    fn breaches_due(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((t, id))) = self.deadlines.peek() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            self.breach(id);
        }
    }

    fn on_deadline(&mut self) {
        if let Some(Reverse((_, id))) = self.deadlines.pop() {
            self.breach(id);
        }
    }

    /// Starts every service the walker allows now, each on its own driver task.
    fn start_ready(&mut self) {
        if self.opts.config.dry_run && !self.rx.is_empty() {
            return;
        }
        while let Some(id) = self.walker.next_ready() {
            self.emit(Event::ServiceStarted {
                service: self.model.name(id).to_string(),
            });
            let guard = driver::DoneGuard {
                tx: Some(self.tx.clone()),
                id,
            };
            tokio::spawn(driver::drive(
                self.shared.clone(),
                id,
                guard,
                self.stop.clone(),
                self.kill.clone(),
            ));
        }
    }

    fn on_message(&mut self, msg: Msg) {
        match msg {
            Msg::Event(ev) => {
                self.emit(ev);
            }
            Msg::EventDurable {
                ev,
                written_enough,
                ack,
            } => self.emit_durable(ev, ack, written_enough),
            Msg::Done(id, outcome) => self.on_done(id, outcome),
            Msg::CleanupDone => {}
        }
    }

    /// Journals `ev` and answers `ack` once it is durable (with `written`: once it is written,
    /// see [`Msg::EventDurable`]): at once without a journal, never (`false`) once the journal
    /// has failed.
    fn emit_durable(&mut self, ev: Event, ack: oneshot::Sender<bool>, written: bool) {
        if self.journal_failure.is_some() {
            let _ = ack.send(false);
            return;
        }
        let seq = self.emit(ev);
        match &self.durability {
            None => {
                let _ = ack.send(true);
            }
            Some(d) => {
                let done: crate::events::DurableCallback = Box::new(move |r| {
                    let _ = ack.send(r.is_ok());
                });
                if written {
                    d.on_written(seq, done)
                } else {
                    d.on_durable(seq, done)
                }
            }
        }
    }

    fn on_done(&mut self, id: SvcId, outcome: Outcome) {
        let name = self.model.name(id).to_string();
        let at = self.clock.since_declared();
        match outcome {
            Outcome::Recovered => {
                self.emit(Event::ServiceRecovered {
                    service: name,
                    recovered_s: at,
                });
                self.walker.complete(id, true);
            }
            Outcome::Failed { error, .. } => {
                self.any_failed = true;
                self.emit(Event::ServiceFailed {
                    service: name,
                    error,
                });
                for (b, cause) in self.walker.complete(id, false) {
                    let ev = Event::ServiceBlocked {
                        service: self.model.name(b).to_string(),
                        because: self.model.name(cause).to_string(),
                    };
                    self.emit(ev);
                }
                if self.opts.config.on_failure == crate::runconfig::OnFailure::Stop {
                    self.walker.stop();
                }
            }
            Outcome::Interrupted => self.walker.release(id),
        }
    }

    fn on_interrupt(&mut self) {
        self.interrupts += 1;
        if self.interrupts == 1 {
            self.walker.stop();
            self.stop.cancel();
            tracing::warn!(
                "interrupted: starting nothing new; running steps finish within their timeouts \
                 (interrupt again to kill them)"
            );
        } else {
            self.kill.cancel();
            tracing::warn!("interrupted again: killing running steps");
        }
    }

    /// The journal failed: nothing may start any more (its `step.started` could not be made
    /// durable). A lost lock means another runner may be taking over: running steps are
    /// killed now. A write failure lets them finish within their timeouts, as a first Ctrl-C
    /// does; their outcome cannot be journaled, so `resume` runs them again.
    fn on_journal_failure(&mut self, f: JournalFailure) {
        tracing::error!("{f}: starting nothing more");
        self.walker.stop();
        self.stop.cancel();
        if matches!(f, JournalFailure::LostLock(_)) {
            self.kill.cancel();
        }
        self.journal_failure = Some(f);
    }

    /// A drill cleans up after itself when it succeeded. A failed or interrupted drill keeps
    /// what it started, so that `resume` continues it where it failed (`meeseeks cleanup`
    /// tears it down instead); `--no-cleanup` keeps it in any case.
    fn should_clean_up(&self) -> bool {
        self.opts.mode() == Mode::Drill
            && self.opts.config.cleanup
            && self.interrupts == 0
            && self.journal_failure.is_none()
            && !self.failed()
    }

    fn failed(&self) -> bool {
        self.any_failed
            || self.walker.remaining() > 0
            || self
                .scope
                .ids
                .iter()
                .any(|&i| self.walker.state(i) == SvcState::Blocked)
    }

    /// After a drill: cleanup steps of every service that was started (also by an earlier
    /// attempt of this run), dependents first, so that nothing the drill brought up is left.
    async fn clean_up(&mut self, int_rx: &mut mpsc::UnboundedReceiver<()>) {
        let todo = pending_cleanup(&self.model, self.bus.state());
        if todo.is_empty() {
            return;
        }
        tokio::spawn(cleanup::cleanup_all(
            self.shared.clone(),
            todo,
            self.tx.clone(),
            self.kill.clone(),
            true,
        ));
        loop {
            tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Some(Msg::CleanupDone) | None => break,
                    Some(msg) => self.on_message(msg),
                },
                _ = signals::interrupt(&mut self.signals, int_rx) => {
                    // The operator wants out: kill the running cleanup step.
                    self.interrupts += 1;
                    self.kill.cancel();
                }
            }
        }
    }

    /// Journals the run's end (and waits until it is durable), then hands back the state.
    async fn finish(mut self) -> RunOutcome {
        // RTOs that elapse exactly at the end still count.
        self.breaches_due();
        let interrupted = self.interrupts > 0;
        let failed = self.failed();
        let last = if let Some(f) = &self.journal_failure {
            Event::RunInterrupted {
                reason: f.to_string(),
            }
        } else if interrupted {
            Event::RunInterrupted {
                reason: "interrupted by the operator (SIGINT/SIGTERM)".into(),
            }
        } else {
            let count = |st: SvcState| {
                self.scope
                    .ids
                    .iter()
                    .filter(|&&i| self.walker.state(i) == st)
                    .count()
            };
            Event::RunFinished {
                outcome: if failed { "failed" } else { "succeeded" }.into(),
                recovered: count(SvcState::Recovered),
                failed: count(SvcState::Failed),
                blocked: count(SvcState::Blocked),
            }
        };
        let seq = self.emit(last);
        if self.journal_failure.is_none()
            && let Some(d) = &self.durability
            && let Err(e) = d.durable(seq).await
        {
            tracing::error!("{e}");
            self.journal_failure = Some(e);
        }
        self.bus.finish();
        let exit_code = match &self.journal_failure {
            Some(JournalFailure::LostLock(_)) => crate::error::exit::LOCKED,
            Some(JournalFailure::Io(_)) => crate::error::exit::NEGATIVE,
            None if interrupted => crate::error::exit::INTERRUPTED,
            None if failed => crate::error::exit::NEGATIVE,
            None => crate::error::exit::OK,
        };
        let mut state = self.bus.into_state();
        if self.journal_failure.is_some() {
            // In memory the run ended; on disk it did not: say what `status` will say.
            state.state = RunStatus::Interrupted;
        }
        RunOutcome {
            state,
            exit_code,
            interrupted,
            journal_failure: self.journal_failure,
        }
    }
}

/// The plan carried by `run.started`, so status and reports need no re-plan.
fn planned(
    model: &Model,
    scope: &Scope,
    ord: &plan::Ordering,
    opts: &RunOptions,
) -> Vec<std::sync::Arc<crate::events::PlannedService>> {
    let mode = opts.mode();
    scope
        .ids
        .iter()
        .map(|&id| {
            let s = &model.services[id];
            let times = opts.planned.get(&s.name);
            std::sync::Arc::new(crate::events::PlannedService {
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
            })
        })
        .collect()
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `meeseeks cleanup`: runs the cleanup steps still pending in `state` (see
/// [`pending_cleanup`]) outside a walk, journaled through `subscribers` (the run's journal
/// continues after `state.last_seq`). Returns the state after cleanup.
#[allow(clippy::too_many_arguments)]
pub async fn cleanup_run(
    model: Arc<Model>,
    state: RunState,
    opts: &RunOptions,
    executor: Arc<dyn Executor>,
    masker: Masker,
    subscribers: Vec<Box<dyn Subscriber>>,
    durability: Option<Arc<dyn Durability>>,
) -> RunState {
    let todo = pending_cleanup(&model, &state);
    let shared = Arc::new(Shared::new(
        model.clone(),
        opts,
        executor,
        Arc::new(crate::approvals::NeverApprove),
        BTreeMap::new(),
        masker.clone(),
    ));
    let ids: Vec<SvcId> = todo.iter().map(|(id, _)| *id).collect();
    driver::sh_renderer(&shared).prepare_secrets(&ids);
    let mut bus = Bus::with_state(state.last_seq + 1, masker, state);
    for s in subscribers {
        bus.subscribe(s);
    }
    if todo.is_empty() {
        bus.finish();
        return bus.into_state();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    tokio::spawn(cleanup::cleanup_all(shared, todo, tx, kill.clone(), false));
    let mut signals = signals::Signals::new(opts.handle_signals);
    let (_int_tx, mut int_rx) = mpsc::unbounded_channel();
    let mut failed = false;
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(Msg::Event(ev)) => {
                    bus.emit(jiff::Timestamp::now(), ev);
                }
                // Cleanup waits for durability either way (its steps are few).
                Some(Msg::EventDurable { ev, ack, .. }) => {
                    if failed {
                        let _ = ack.send(false);
                        continue;
                    }
                    let seq = bus.emit(jiff::Timestamp::now(), ev);
                    let ok = match &durability {
                        Some(d) => d.durable(seq).await.is_ok(),
                        None => true,
                    };
                    failed |= !ok;
                    if !ok {
                        // No step starts unjournaled; the rest stays pending.
                        kill.cancel();
                    }
                    let _ = ack.send(ok);
                }
                Some(Msg::CleanupDone) | None => break,
                Some(Msg::Done(..)) => {}
            },
            _ = signals::interrupt(&mut signals, &mut int_rx) => kill.cancel(),
        }
    }
    if let Some(d) = &durability
        && !failed
        && let Err(e) = d.durable(bus.last_seq()).await
    {
        tracing::error!("{e}");
    }
    bus.finish();
    bus.into_state()
}
