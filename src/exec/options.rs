//! What the runner needs besides the model: the run's typed configuration plus what is decided
//! when it starts (id, directory, clock start, the plan's timeline), and prior progress for
//! `resume`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::events::Event;
use crate::model::Mode;
use crate::runconfig::RunConfig;
use crate::runstate::RunState;

use super::walker::WalkMode;

/// How many output lines of a failed step are shown to the operator.
pub const FAILURE_LINES: usize = 20;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's typed configuration (journaled in `run.started`).
    pub config: RunConfig,
    /// RTO clock start; `None` = now.
    pub declared_at: Option<jiff::Timestamp>,
    pub run_id: String,
    /// The run's directory (absolute): rendered as `{{ run_dir }}`, where stand-ins keep their
    /// pidfiles and logs.
    pub run_dir: PathBuf,
    /// How often a waiting manual step asks its approval source.
    pub approval_poll: Duration,
    /// Listen to SIGINT/SIGTERM (the binary does; library tests use `Interrupter`).
    pub handle_signals: bool,
    /// Planned (start_s, ready_s) per service name, from the planner; journaled in
    /// `run.started` so status and reports compare planned with actual.
    pub planned: BTreeMap<String, (f64, f64)>,
    /// The plan's priority list (`Plan::priority`), when the caller planned this run; else the
    /// runner plans it.
    pub priority: Option<crate::plan::Priority>,
}

impl RunOptions {
    pub fn new(mode: Mode, run_id: impl Into<String>, run_dir: PathBuf) -> RunOptions {
        RunOptions::from_config(RunConfig::new(mode), run_id, run_dir)
    }

    pub fn from_config(
        config: RunConfig,
        run_id: impl Into<String>,
        run_dir: PathBuf,
    ) -> RunOptions {
        RunOptions {
            config,
            declared_at: None,
            run_id: run_id.into(),
            run_dir,
            approval_poll: Duration::from_millis(250),
            handle_signals: false,
            planned: BTreeMap::new(),
            priority: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    pub fn walk(&self) -> WalkMode {
        if self.config.eager {
            WalkMode::Eager
        } else {
            WalkMode::Waves
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
    /// The state replayed from the journal (resume): the live run folds on from it, so its
    /// summary covers the whole run, earlier attempts included.
    pub prior: Option<RunState>,
    /// The holder of the run's lock (journaled in `run.started` / `run.resumed`).
    pub holder: Option<crate::events::LockInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct Resumed {
    pub changes: Vec<String>,
}

impl RunnerInput {
    /// Prior progress replayed from a run's journal (resume): services recovered or skipped
    /// (and not torn down since by a cleanup) are not started again, steps whose
    /// `step.succeeded`/`step.skipped` is journaled are skipped, and numbering continues after
    /// the last record. Set `resumed.changes` and `input_hash` from the run's meta.
    pub fn from_state(state: &RunState) -> RunnerInput {
        let mut input = RunnerInput {
            first_seq: state.last_seq + 1,
            resumed: Some(Resumed::default()),
            input_hash: state.input_hash.clone().unwrap_or_default(),
            prior: Some(state.clone()),
            ..Default::default()
        };
        input.already_breached = state.breaches.iter().map(|b| b.service.clone()).collect();
        for s in &state.services {
            if s.is_done(state.closing_cleanup) {
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
