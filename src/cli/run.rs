//! `meeseeks run [DIR]` and `meeseeks drill [DIR]` (= `run --drill`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{DirArg, Global, ScopeArgs, VarArgs};
use crate::error::{Error, Result};
use crate::exec::{Display, OnFailure, RunOptions, RunnerInput, Session, WalkMode};
use crate::load::LoadOptions;
use crate::mask::Masker;
use crate::model::Mode;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailureArg {
    /// Keep recovering everything that is not blocked.
    Continue,
    /// Start nothing new after the first failure.
    Stop,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// A drill: run the steps meant for drills (`only = "drill"`), not those for failovers.
    #[arg(long)]
    pub drill: bool,
    /// Execute nothing: print every action, fully rendered (secrets masked), then the
    /// simulated timeline and predicted RTO results.
    #[arg(long)]
    pub dry_run: bool,
    /// Max services recovering at once (0 = unlimited); default: graph.toml's defaults.parallel.
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Start each service as soon as its essential dependencies are recovered (default: waves).
    #[arg(long)]
    pub eager: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Approve manual steps automatically.
    #[arg(long)]
    pub yes: bool,
    /// What to do after a service fails.
    #[arg(long, value_enum, default_value_t = OnFailureArg::Continue)]
    pub on_failure: OnFailureArg,
    /// Run a failed service's rollback steps.
    #[arg(long)]
    pub rollback: bool,
    /// When the disaster was declared (RFC 3339): the RTO clock's start. Default: now.
    #[arg(long, value_name = "RFC3339")]
    pub declared_at: Option<jiff::Timestamp>,
    /// State directory (runs, journals, reports). Default: DIR/.meeseeks.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// After a drill, leave what it started running (default: run every started service's
    /// `cleanup` steps, dependents first). Clean up later with `meeseeks cleanup`.
    #[arg(long)]
    pub no_cleanup: bool,
    /// Exit 1 when any RTO was breached, even if every service recovered.
    #[arg(long)]
    pub strict: bool,
    /// Format of the final result on stdout (`json`: `meeseeks.run/v1`).
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    pub format: RunFormat,
    /// Time between SIGTERM and SIGKILL when a step times out.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_grace: Duration,
}

pub fn run(g: &Global, a: &RunArgs, force_drill: bool) -> Result<i32> {
    let opts = LoadOptions {
        cli_vars: a.vars.map(),
        require_playbooks: true,
        graph_only: false,
    };
    if let Some(t) = a.declared_at
        && t > jiff::Timestamp::now()
    {
        return Err(Error::Usage(format!(
            "--declared-at {t} is in the future: it is when the disaster was declared"
        )));
    }
    let model = super::load_model(g, &a.dir.dir, &opts)?;
    let scope = crate::plan::select_scope(&model, &a.scope.spec())?;
    let mode = if a.drill || force_drill {
        Mode::Drill
    } else {
        Mode::Failover
    };
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(|| model.dir.join(".meeseeks"));
    let run_id = crate::exec::new_run_id();
    let run_dir = if a.dry_run {
        // A dry-run writes nothing; the path is only rendered into templates.
        state_dir.join("runs").join(&run_id)
    } else {
        crate::exec::create_run_dir(&state_dir, &run_id).map_err(|e| {
            Error::io(
                format!("cannot create the run directory in {}", state_dir.display()),
                e,
            )
        })?
    };
    let mut ro = RunOptions::new(mode, run_id, run_dir);
    ro.walk = if a.eager {
        WalkMode::Eager
    } else {
        WalkMode::Waves
    };
    ro.parallel = a.parallel.unwrap_or(model.defaults.parallel);
    ro.on_failure = match a.on_failure {
        OnFailureArg::Continue => OnFailure::Continue,
        OnFailureArg::Stop => OnFailure::Stop,
    };
    ro.rollback = a.rollback;
    ro.dry_run = a.dry_run;
    ro.declared_at = a.declared_at;
    ro.vars = a.vars.map();
    ro.kill_grace = a.kill_grace;
    ro.handle_signals = true;
    ro.cleanup = !a.no_cleanup;
    let display = Display::pick(g.quiet, g.no_progress);
    let session = Session {
        scope,
        opts: ro,
        input: RunnerInput {
            first_seq: 1,
            ..Default::default()
        },
        display,
        yes: a.yes,
        approvals: None,
        subscribers: Vec::new(),
        durability: None,
        masker: Masker::new(),
    };
    let report = crate::exec::execute(model, session)?;
    let text = match a.format {
        RunFormat::Text => format!("\n{}", report.render_text()),
        RunFormat::Json => {
            let mut v = serde_json::to_value(&report).map_err(|e| Error::Other(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("schema".into(), "meeseeks.run/v1".into());
            }
            format!("{v:#}\n")
        }
    };
    super::emit(None, &text)?;
    let breached = report.services.iter().any(|s| s.rto_met == Some(false));
    if a.strict && breached && report.exit_code == crate::error::exit::OK {
        return Ok(crate::error::exit::NEGATIVE);
    }
    Ok(report.exit_code)
}
