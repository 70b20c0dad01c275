//! Execution: the walker (pure), the executor (real and simulated), the runner actor loop,
//! and the event bus that feeds every subscriber.
//!
//! Entry point: `execute(model, Session)` (blocking; builds its own runtime — a paused,
//! virtual-time one for `--dry-run`). Everything that watches or feeds a run plugs into
//! `Session`:
//! - `subscribers`: more `Subscriber`s of the record stream (journal writer, webhooks); each
//!   gets every `Record` (seq + UTC ts + masked event) in order, and `finish()` at the end;
//! - `durability`: the runner awaits `durable(seq)` of `run.finished` / `run.interrupted`
//!   before returning;
//! - `input: RunnerInput`: prior progress for resume (`already_recovered`, `done_steps`,
//!   `first_seq`, `resumed`), and the RTO clock start is `opts.declared_at`;
//! - `approvals`: an `ApprovalSource` polled about once a second while a manual step waits
//!   (`meeseeks approve`); `--yes` and the TTY prompt are built in.

pub mod approval;
pub mod bus;
pub mod executor;
pub mod probe;
pub mod process;
pub mod rpo;
pub mod runner;
pub mod walker;

pub use approval::{Approval, ApprovalSource, AutoApprove, NeverApprove, TtyApproval};
pub use bus::{Bus, Collector, Durability, Subscriber, TracingSubscriber};
pub use executor::{Executor, RealExecutor, SimExecutor};
pub use runner::{
    Interrupter, OnFailure, RunOptions, RunReport, Runner, RunnerInput, ServiceReport,
    ServiceStatus, cleanup_services,
};
pub use walker::{WalkMode, Walker};
pub mod summary;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use crate::mask::Masker;
use crate::model::Model;
use crate::plan::Scope;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// indicatif bars (only sensible on a TTY).
    Bars,
    /// Plain timestamped lines.
    Lines,
    /// Nothing but the final result.
    Quiet,
}

impl Display {
    /// Bars on a TTY unless `--no-progress`; nothing with `-q`.
    pub fn pick(quiet: bool, no_progress: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if no_progress || !std::io::stderr().is_terminal() {
            Display::Lines
        } else {
            Display::Bars
        }
    }
}

/// Everything a run needs besides the model; built by the CLI (`run`, `drill`, `resume`).
pub struct Session {
    pub scope: Scope,
    pub opts: RunOptions,
    pub input: RunnerInput,
    pub display: Display,
    /// `--yes`: approve manual steps automatically.
    pub yes: bool,
    /// Where approvals come from besides `--yes` and the TTY (the journal's `meeseeks approve`).
    pub approvals: Option<Arc<dyn ApprovalSource>>,
    /// More subscribers (journal, webhooks).
    pub subscribers: Vec<Box<dyn Subscriber>>,
    pub durability: Option<Box<dyn Durability>>,
    /// Hooks run inside the run's tokio runtime just before the walk starts: for subscribers
    /// that need a runtime to exist (the journal's group-commit writer task).
    pub attach: Vec<Attach>,
    /// Async hooks run inside the runtime after the walk ended and the journal is durable
    /// (flush webhooks with a grace period).
    pub after: Vec<After>,
    pub masker: Masker,
}

/// See `Session::after`.
pub type After =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// Webhooks (`[[notify]]`) as a subscriber; `close` in an `After` hook delivers what is queued.
#[derive(Clone, Default)]
pub struct NotifySubscriber(pub Arc<std::sync::Mutex<Option<crate::notify::Notifier>>>);

impl Subscriber for NotifySubscriber {
    fn on_record(&mut self, rec: &crate::events::Record) {
        if let Ok(g) = self.0.lock()
            && let Some(n) = g.as_ref()
        {
            n.send(rec);
        }
    }
}

impl NotifySubscriber {
    /// Stops accepting records and waits up to `grace` for queued deliveries.
    pub async fn close(&self, grace: std::time::Duration) {
        let n = self.0.lock().ok().and_then(|mut g| g.take());
        if let Some(n) = n {
            n.close(grace).await;
        }
    }
}

/// See `Session::attach`.
pub type Attach = Box<dyn FnOnce(&mut Runner) -> crate::Result<()> + Send>;

/// The journal is one more subscriber of the record stream, and the runner's durability hook.
impl Subscriber for crate::journal::JournalHandle {
    fn on_record(&mut self, rec: &crate::events::Record) {
        self.append(rec.clone());
    }
}

impl Durability for crate::journal::JournalHandle {
    fn durable(
        &self,
        seq: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + '_>> {
        Box::pin(crate::journal::JournalHandle::durable(self, seq))
    }
}

/// Approvals dropped by `meeseeks approve RUN_ID SERVICE` into the run directory.
pub struct DropBoxApprovals;

impl ApprovalSource for DropBoxApprovals {
    fn check(&self, run_dir: &Path, service: &str, step: &str, _prompt: &str) -> Approval {
        match crate::journal::take_approval(run_dir, service, step) {
            Ok(Some(a)) => Approval::Approved(a.by),
            Ok(None) => Approval::Pending,
            Err(e) => {
                tracing::warn!("cannot read approvals in {}: {e}", run_dir.display());
                Approval::Pending
            }
        }
    }
}

/// Runs (or, with `opts.dry_run`, simulates in virtual time) a recovery, blocking until it ends.
/// Builds its own tokio runtime: call it from synchronous code.
pub fn execute(model: Model, mut s: Session) -> crate::Result<RunReport> {
    let model = Arc::new(model);
    let dry = s.opts.dry_run;
    let executor: Arc<dyn Executor> = if dry {
        Arc::new(SimExecutor)
    } else {
        let mut env: Vec<(String, String)> = vec![
            ("MEESEEKS_RUN_ID".into(), s.opts.run_id.clone()),
            ("MEESEEKS_MODE".into(), s.opts.mode.as_str().into()),
            (
                "MEESEEKS_RUN_DIR".into(),
                s.opts.run_dir.display().to_string(),
            ),
        ];
        env.push(("MEESEEKS_DR_DIR".into(), model.dir.display().to_string()));
        Arc::new(
            RealExecutor::new(model.dir.clone(), env, s.opts.kill_grace)
                .map_err(crate::Error::Other)?,
        )
    };
    let rto: HashMap<String, f64> = s
        .scope
        .ids
        .iter()
        .map(|&i| {
            (
                model.name(i).to_string(),
                model.services[i].rto.as_secs_f64(),
            )
        })
        .collect();
    let mut printer = None;
    let display: Option<Box<dyn Subscriber>> = match (s.display, dry) {
        (Display::Quiet, _) => None,
        // A dry-run's action list is its product: stdout, in virtual time.
        (_, true) => Some(Box::new(crate::progress::Lines::new(
            std::io::stdout(),
            rto,
            true,
        ))),
        (Display::Lines, false) => Some(Box::new(crate::progress::Lines::new(
            std::io::stderr(),
            rto,
            false,
        ))),
        (Display::Bars, false) => {
            let bars = crate::progress::Bars::new(rto);
            printer = Some(bars.printer());
            Some(Box::new(bars))
        }
    };
    let fallback: Arc<dyn ApprovalSource> = s.approvals.take().unwrap_or(Arc::new(NeverApprove));
    let approvals: Arc<dyn ApprovalSource> = if s.yes {
        Arc::new(AutoApprove)
    } else if std::io::stdin().is_terminal() && !dry {
        let tty = match printer {
            Some(p) => TtyApproval::with_printer(p),
            None => TtyApproval::new(),
        };
        Arc::new(approval::Either(tty, ArcSource(fallback)))
    } else {
        fallback
    };
    let masker = s.masker.clone();
    let mut runner = Runner::new(model, s.scope, s.opts, s.input, executor, approvals, masker);
    if let Some(d) = display {
        runner.subscribe(d);
    }
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
    let rt = if dry {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .map_err(|e| crate::Error::io("cannot start the async runtime", e))?;
    rt.block_on(async move {
        for a in s.attach {
            a(&mut runner)?;
        }
        let report = runner.run().await;
        for a in s.after {
            a().await;
        }
        Ok(report)
    })
}

struct ArcSource(Arc<dyn ApprovalSource>);

impl ApprovalSource for ArcSource {
    fn check(&self, run_dir: &Path, service: &str, step: &str, prompt: &str) -> Approval {
        self.0.check(run_dir, service, step, prompt)
    }
}
