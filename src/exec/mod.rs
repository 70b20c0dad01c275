//! Execution: the walker (pure), the executor (real and simulated), and the runner actor loop.
//!
//! Entry point: [`execute`] inside the runtime [`runtime`] builds (a paused, virtual-time one
//! for `--dry-run`). Everything that watches or feeds a run plugs into [`Session`], chosen by
//! the caller (the CLI, through `session`): the subscribers of the record stream (store
//! journal, progress display, webhooks), the journal's durability, where approvals come from,
//! and prior progress for resume. This module knows none of them by name: it depends on
//! `events` (the interfaces), `runstate` (the outcome it folds), `plan`, `template` and the
//! model only.

pub mod bus;
pub mod executor;
pub mod options;
pub mod probe;
pub mod process;
pub mod rpo;
pub mod runner;
mod spawn;
pub mod walker;

pub use bus::Bus;
pub use executor::{Executor, RealExecutor, SimExecutor};
pub use options::{FAILURE_LINES, Resumed, RunOptions, RunnerInput};
pub use runner::{Interrupter, RunOutcome, Runner, cleanup_run, pending_cleanup};
pub use walker::{WalkMode, Walker};

use std::sync::Arc;

use crate::events::{ApprovalSource, Durability, Subscriber, TracingSubscriber};
use crate::mask::Masker;
use crate::model::Model;
use crate::plan::Scope;

/// Everything a run needs besides the model; built by the caller (`run`, `drill`, `resume`).
pub struct Session {
    pub scope: Scope,
    pub opts: RunOptions,
    pub input: RunnerInput,
    /// Where approvals of manual steps come from (`--yes`, a terminal, the store).
    pub approvals: Arc<dyn ApprovalSource>,
    /// Who watches the run: the journal, the progress display, webhooks.
    pub subscribers: Vec<Box<dyn Subscriber>>,
    /// The journal, whose durability gates every step's side effects.
    pub durability: Option<Arc<dyn Durability>>,
    pub masker: Masker,
}

/// The runtime a run needs: a multi-threaded one, or for a dry-run a current-thread one with
/// paused (virtual) time, so that a walk of hours is simulated in milliseconds.
///
/// Two workers per core rather than tokio's one: starting a step suspends the worker that
/// starts it until the child has called `execve` (see `spawn`), and with one worker per core
/// the runnable tasks (other steps' output and exits, the next starts) waited behind those
/// suspended workers. 2 000 x `true` against `make -j16` on 2 cores, paired rounds: 1.053x with
/// 2 workers, 0.98–1.00x with 4 to 16.
pub fn runtime(dry_run: bool) -> crate::Result<tokio::runtime::Runtime> {
    if dry_run {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores * 2)
            .enable_all()
            .build()
    }
    .map_err(|e| crate::Error::io("cannot start the async runtime", e))
}

/// Runs (or, with `dry_run`, simulates) a recovery until it ends. Call it inside
/// [`runtime`]`(dry_run)`.
pub async fn execute(model: Arc<Model>, s: Session) -> crate::Result<RunOutcome> {
    let executor = executor_for(&model, &s.opts);
    let mut runner = Runner::new(
        model,
        s.scope,
        s.opts,
        s.input,
        executor,
        s.approvals,
        s.masker,
    );
    // Only when someone listens: formatting every record as JSON is not free.
    if tracing::enabled!(target: "meeseeks::event", tracing::Level::INFO) {
        runner.subscribe(Box::new(TracingSubscriber));
    }
    for sub in s.subscribers {
        runner.subscribe(sub);
    }
    if let Some(d) = s.durability {
        runner.set_durability(d);
    }
    // The runner's loop runs on a worker, not on the thread that called `block_on`: the
    // services' tasks it starts and hears from then mostly share its worker, rather than
    // waking the calling thread for every message (2 000 x `true`: ~2 % less wall time,
    // paired rounds against make).
    match tokio::spawn(runner.run()).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The simulated executor for a dry-run, else the real one (steps see the run's identity in
/// their environment).
pub fn executor_for(model: &Model, opts: &RunOptions) -> Arc<dyn Executor> {
    if opts.config.dry_run {
        return Arc::new(SimExecutor);
    }
    let env: Vec<(String, String)> = vec![
        ("MEESEEKS_RUN_ID".into(), opts.run_id.clone()),
        ("MEESEEKS_MODE".into(), opts.mode().as_str().into()),
        (
            "MEESEEKS_RUN_DIR".into(),
            opts.run_dir.display().to_string(),
        ),
        ("MEESEEKS_DR_DIR".into(), model.dir.display().to_string()),
    ];
    Arc::new(RealExecutor::new(
        model.dir.clone(),
        env,
        opts.config.kill_grace,
    ))
}
