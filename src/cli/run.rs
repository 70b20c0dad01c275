//! `meeseeks run [DIR]`, `meeseeks drill [DIR]` (= `run --drill`) and `meeseeks resume`: the
//! arguments become a typed `RunConfig` (run) or overrides of the recorded one (resume), and
//! `session` does the rest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{DirArg, DirFlag, Global, ScopeArgs, VarArgs};
use crate::error::{Error, Result};
use crate::load::LoadOptions;
use crate::model::Mode;
use crate::progress::Display;
use crate::runconfig::{OnFailure, RunConfig, ScopeConfig};
use crate::session::{self, Frontend, ResumeOverrides};
use crate::store::StoreSpec;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunFormat {
    #[default]
    Text,
    Json,
}

/// Where runs are kept, first given wins: `--store URL` (or `MEESEEKS_STORE`), `--state-dir`,
/// graph.toml's `[state] store`, `DIR/.meeseeks`. Flags beat the file: a drill on a laptop can
/// point a directory that declares the team's etcd at a scratch state directory.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// The run store: a state directory path, or etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
    /// Default: graph.toml's [state] store, else DIR/.meeseeks.
    #[arg(
        long,
        value_name = "URL",
        env = "MEESEEKS_STORE",
        conflicts_with = "state_dir"
    )]
    pub store: Option<String>,
    /// State directory (runs, journals, reports). Default: DIR/.meeseeks.
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The store for DR directory `dir`, reading its graph.toml's `[state] store` when no flag
    /// names one.
    pub fn spec(&self, dir: &Path) -> Result<StoreSpec> {
        let declared = match (&self.store, &self.state_dir) {
            (None, None) => crate::load::declared_store(dir)?,
            _ => None,
        };
        self.resolve(dir, declared.as_deref())
    }

    /// The store for a loaded model (its `[state] store` already read).
    pub fn spec_for(&self, model: &crate::model::Model) -> Result<StoreSpec> {
        self.resolve(&model.dir, model.store.as_deref())
    }

    /// Paths are made absolute here, once: flags' against the working directory, graph.toml's
    /// against the DR directory.
    fn resolve(&self, dir: &Path, declared: Option<&str>) -> Result<StoreSpec> {
        let local = session::absolute(&dir.join(".meeseeks"));
        let spec = match (&self.store, &self.state_dir, declared) {
            (Some(url), _, _) => StoreSpec::parse(url, local)?,
            (None, Some(p), _) => StoreSpec::File(p.clone()),
            (None, None, Some(url)) => match StoreSpec::parse(url, local)? {
                StoreSpec::File(p) => StoreSpec::File(dir.join(p)),
                other => other,
            },
            (None, None, None) => StoreSpec::File(local),
        };
        Ok(match spec {
            StoreSpec::File(p) => StoreSpec::File(session::absolute(&p)),
            other => other,
        })
    }
}

/// Options shared by `run`/`drill` and `resume` (one definition: resume takes the same flags,
/// and without them keeps what the run was started with).
#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    /// Max services recovering at once (0 = unlimited). Default: graph.toml's
    /// defaults.parallel (resume: as the run was started).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Start each service as soon as its essential dependencies are recovered (default: waves).
    #[arg(long)]
    pub eager: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Approve manual steps automatically (resume: also re-run in-flight non-idempotent
    /// steps without asking).
    #[arg(long)]
    pub yes: bool,
    /// What to do after a service fails (default: continue; resume: as the run was started).
    #[arg(long, value_enum)]
    pub on_failure: Option<OnFailure>,
    /// Run a failed service's rollback steps.
    #[arg(long)]
    pub rollback: bool,
    /// After a drill, leave what it started running (default: a drill that succeeded runs
    /// every started service's `cleanup` steps, dependents first). See `meeseeks cleanup`.
    #[arg(long)]
    pub no_cleanup: bool,
    /// Exit 1 when any RTO was breached, even if every service recovered.
    #[arg(long)]
    pub strict: bool,
    /// Format of the final result on stdout (`json`: `meeseeks.run/v1`).
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    pub format: RunFormat,
    /// Time between SIGTERM and SIGKILL when a step times out (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kill_grace: Option<Duration>,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ExecArgs {
    fn frontend(&self, g: &Global) -> Frontend {
        Frontend {
            display: Display::pick(g.quiet, g.no_progress),
            yes: self.yes,
            quiet: g.quiet,
        }
    }
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
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// When the disaster was declared (RFC 3339): the RTO clock's start. Default: now.
    #[arg(long, value_name = "RFC3339")]
    pub declared_at: Option<jiff::Timestamp>,
    /// Give up an unfinished run (default: the latest) so that a new run may start; runs
    /// nothing. Write `DIR --abandon` or `--abandon=RUN_ID` when also giving a DR directory.
    #[arg(long, value_name = "RUN_ID", num_args = 0..=1, default_missing_value = "")]
    pub abandon: Option<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    /// DR directory to re-load graph and playbooks from (default: the one the run was
    /// started with), and whose `.meeseeks/` holds the run (default: the current directory's).
    #[command(flatten)]
    pub dir: DirFlag,
    /// Work done by hand: `SERVICE` counts as recovered, `SERVICE/STEP` as done (repeatable).
    #[arg(long = "skip", value_name = "SERVICE[/STEP]")]
    pub skip: Vec<String>,
    /// If another runner holds the run, wait until its lock is free (its lease expired or it
    /// exited), then take over: a standby runner in another site.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// The typed configuration of a new run.
fn config(a: &RunArgs, mode: Mode, default_parallel: usize) -> RunConfig {
    let e = &a.exec;
    let mut c = RunConfig::new(mode);
    c.eager = e.eager;
    c.parallel = e.parallel.unwrap_or(default_parallel);
    c.on_failure = e.on_failure.unwrap_or_default();
    c.rollback = e.rollback;
    c.dry_run = a.dry_run;
    c.cleanup = !e.no_cleanup;
    c.strict = e.strict;
    if let Some(k) = e.kill_grace {
        c.kill_grace = k;
    }
    c.scope = ScopeConfig {
        services: a.scope.services.clone(),
        tags: a.scope.tags.clone(),
        max_tier: a.scope.max_tier,
    };
    c.vars = e.vars.vars.iter().cloned().collect();
    c
}

pub fn run(g: &Global, a: &RunArgs, force_drill: bool) -> Result<i32> {
    if let Some(id) = &a.abandon {
        let spec = a.exec.store.spec(&a.dir.path())?;
        let id = Some(id.as_str()).filter(|s| !s.is_empty());
        let rt = crate::exec::runtime(false)?;
        super::emit(None, &rt.block_on(session::abandon(&spec, id))?)?;
        return Ok(crate::error::exit::OK);
    }
    if let Some(t) = a.declared_at
        && t > jiff::Timestamp::now()
    {
        return Err(Error::Usage(format!(
            "--declared-at {t} is in the future: it is when the disaster was declared"
        )));
    }
    let opts = LoadOptions {
        cli_vars: a.exec.vars.map(),
        require_playbooks: true,
        graph_only: false,
        keep_sources: true,
    };
    let model = super::load_model(g, &a.dir.path(), &opts)?;
    let mode = if a.drill || force_drill {
        Mode::Drill
    } else {
        Mode::Failover
    };
    let cfg = config(a, mode, model.defaults.parallel);
    let spec = a.exec.store.spec_for(&model)?;
    let declared_at = a.declared_at.unwrap_or_else(jiff::Timestamp::now);
    let fe = a.exec.frontend(g);
    // One runtime for preparing and running: a store's connection and lease live on it.
    let rt = crate::exec::runtime(cfg.dry_run)?;
    let outcome = rt.block_on(async {
        let prepared = session::start(model, cfg, &spec, declared_at).await?;
        session::execute(prepared, &fe).await
    })?;
    finish(outcome, &a.exec)
}

pub fn resume(g: &Global, a: &ResumeArgs) -> Result<i32> {
    let e = &a.exec;
    let over = ResumeOverrides {
        dir: a.dir.given(),
        parallel: e.parallel,
        eager: e.eager,
        on_failure: e.on_failure,
        rollback: e.rollback,
        no_cleanup: e.no_cleanup,
        strict: e.strict,
        kill_grace: e.kill_grace,
        vars: e.vars.vars.iter().cloned().collect(),
        skip: a.skip.clone(),
        wait: a.wait,
    };
    let spec = e.store.spec(&a.dir.path())?;
    let fe = e.frontend(g);
    let rt = crate::exec::runtime(false)?;
    let outcome = rt.block_on(async {
        let prepared = session::resume(&spec, a.run_id.as_deref(), &over, &fe, |dir, cfg| {
            let opts = LoadOptions {
                cli_vars: cfg.var_values(),
                require_playbooks: true,
                graph_only: false,
                keep_sources: true,
            };
            super::load_model(g, dir, &opts)
        })
        .await?;
        session::execute(prepared, &fe).await
    })?;
    finish(outcome, e)
}

/// Prints a run's summary (text or `meeseeks.run/v1` JSON) and picks the exit code: the
/// run's own, or 1 with `--strict` when an RTO was breached.
fn finish(outcome: crate::exec::RunOutcome, e: &ExecArgs) -> Result<i32> {
    let strict = outcome.state.config.as_ref().is_some_and(|c| c.strict) || e.strict;
    if let Some(f) = &outcome.journal_failure {
        eprintln!(
            "error: {f}. Nothing more was started. Once the cause is fixed, `meeseeks resume {}` \
             continues the run from its journal",
            outcome.state.run_id
        );
    }
    let st = &outcome.state;
    let text = match e.format {
        RunFormat::Text => format!("\n{}", crate::report::run::summary(st, outcome.exit_code)),
        RunFormat::Json => crate::report::run::run_json(st, outcome.exit_code),
    };
    super::emit(None, &text)?;
    let breached = st.services.iter().any(|s| s.rto_met() == Some(false));
    if strict && breached && outcome.exit_code == crate::error::exit::OK {
        return Ok(crate::error::exit::NEGATIVE);
    }
    Ok(outcome.exit_code)
}
