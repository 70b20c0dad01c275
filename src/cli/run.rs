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
    /// Give up an unfinished run (default: the latest) so that a new run may start; runs
    /// nothing. Write `DIR --abandon` or `--abandon=RUN_ID` when also giving a DR directory.
    #[arg(long, value_name = "RUN_ID", num_args = 0..=1, default_missing_value = "")]
    pub abandon: Option<String>,
}

/// The input files of a run (paths relative to the DR directory, contents), whose hashes let
/// `resume` tell the operator what changed.
pub(crate) fn input_files(model: &crate::model::Model) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut add = |p: &std::path::Path| {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            model.dir.join(p)
        };
        if let Ok(bytes) = std::fs::read(&abs) {
            let rel = abs.strip_prefix(&model.dir).unwrap_or(&abs).to_path_buf();
            files.push((rel, bytes));
        }
    };
    model.files.iter().for_each(|f| add(f));
    // Local templates the playbooks' `uses` steps expanded are inputs too (each once).
    let mut templates = std::collections::BTreeSet::new();
    for s in &model.services {
        if let Some(pb) = &s.playbook {
            add(&pb.file);
            templates.extend(pb.templates.iter());
        }
    }
    for t in templates {
        add(t);
    }
    files
}

pub fn run(g: &Global, a: &RunArgs, force_drill: bool) -> Result<i32> {
    if let Some(id) = &a.abandon {
        let state_dir = a
            .state_dir
            .clone()
            .unwrap_or_else(|| a.dir.path().join(".meeseeks"));
        let id = Some(id.as_str()).filter(|s| !s.is_empty());
        let (text, code) = crate::journal::cmd::cmd_abandon(&state_dir, id)?;
        let _ = g;
        super::emit(None, &text)?;
        return Ok(code);
    }
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
    let model = super::load_model(g, &a.dir.path(), &opts)?;
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
    let run_id = crate::journal::new_run_id(jiff::Timestamp::now());
    let declared_at = a.declared_at.unwrap_or_else(jiff::Timestamp::now);
    let options = serde_json::json!({
        "parallel": a.parallel.unwrap_or(model.defaults.parallel),
        "eager": a.eager,
        "on_failure": format!("{:?}", a.on_failure).to_lowercase(),
        "rollback": a.rollback,
        "services": a.scope.services,
        "tags": a.scope.tags,
        "max_tier": a.scope.max_tier,
        "vars": a.vars.map().keys().collect::<Vec<_>>(),
        // `resume` runs the same commands: it needs the values, not only the names. They are
        // plain variables (secrets come from the environment) and meta.json is 0600.
        "var_values": a.vars.vars.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    let files = input_files(&model);
    let masker = Masker::new();
    // A dry-run writes nothing: no lock, no journal; the run dir is only rendered into
    // templates.
    let (run_dir, lock, input_hash) = if a.dry_run {
        (state_dir.join("runs").join(&run_id), None, String::new())
    } else {
        let meta = crate::journal::RunMeta::new(
            &run_id,
            mode,
            &model.dir,
            declared_at,
            false,
            options,
            &files,
        );
        let (run, lock) = crate::journal::StateDir::open(&state_dir)?.begin_run(&meta)?;
        (run.path, Some(lock), meta.input_hash)
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
    ro.declared_at = Some(declared_at);
    ro.vars = a.vars.map();
    ro.kill_grace = a.kill_grace;
    ro.handle_signals = true;
    ro.cleanup = !a.no_cleanup;
    // The planner's timeline goes into `run.started` (planned vs actual in status/report).
    match crate::plan::build_plan(
        &model,
        &crate::plan::PlanOptions {
            scope: a.scope.spec(),
            parallel: Some(ro.parallel),
            eager: a.eager,
            mode,
            history: None,
        },
    ) {
        Ok(plan) => {
            for p in &plan.services {
                ro.planned.insert(
                    model.name(p.id).to_string(),
                    (p.start as f64 / 1000.0, p.ready as f64 / 1000.0),
                );
            }
        }
        Err(e) => tracing::warn!("no planned timeline for this run: {e}"),
    }
    let display = Display::pick(g.quiet, g.no_progress);
    let mut attach: Vec<crate::exec::Attach> = Vec::new();
    if lock.is_some() {
        let dir = ro.run_dir.clone();
        let m = masker.clone();
        attach.push(Box::new(move |runner| {
            let journal = crate::journal::JournalWriter::create(&dir, m)?;
            runner.subscribe(Box::new(journal.clone()));
            runner.set_durability(Box::new(journal));
            Ok(())
        }));
    }
    let mut after: Vec<crate::exec::After> = Vec::new();
    if !a.dry_run {
        attach_webhooks(&model, &masker, &ro.run_id, mode, &mut attach, &mut after);
    }
    let session = Session {
        scope,
        opts: ro,
        input: RunnerInput {
            first_seq: 1,
            input_hash,
            ..Default::default()
        },
        display,
        yes: a.yes,
        approvals: Some(std::sync::Arc::new(crate::exec::DropBoxApprovals)),
        subscribers: Vec::new(),
        durability: None,
        attach,
        after,
        masker,
    };
    let report = crate::exec::execute(model, session)?;
    // The lock is held until the journal's last record is durable (awaited by the runner).
    drop(lock);
    finish(&report, a.format, a.strict)
}

/// Prints a finished walk's summary (text or `meeseeks.run/v1` JSON) and picks the exit code:
/// the report's own, or 1 with `--strict` when an RTO was breached. Shared by run and resume.
pub(crate) fn finish(
    report: &crate::exec::RunReport,
    format: RunFormat,
    strict: bool,
) -> Result<i32> {
    let text = match format {
        RunFormat::Text => format!("\n{}", report.render_text()),
        RunFormat::Json => {
            let mut v = serde_json::to_value(report).map_err(|e| Error::Other(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("schema".into(), "meeseeks.run/v1".into());
            }
            format!("{v:#}\n")
        }
    };
    super::emit(None, &text)?;
    let breached = report.services.iter().any(|s| s.rto_met == Some(false));
    if strict && breached && report.exit_code == crate::error::exit::OK {
        return Ok(crate::error::exit::NEGATIVE);
    }
    Ok(report.exit_code)
}

/// Subscribes the graph's `[[notify]]` webhooks to a run (nothing when there are none). The
/// notifier needs a runtime, so it starts in an `attach` hook; a dead webhook never holds the
/// operator for long: bounded grace at exit.
pub(crate) fn attach_webhooks(
    model: &crate::model::Model,
    masker: &crate::mask::Masker,
    run_id: &str,
    mode: crate::model::Mode,
    attach: &mut Vec<crate::exec::Attach>,
    after: &mut Vec<crate::exec::After>,
) {
    if model.notify.is_empty() {
        return;
    }
    let sub = crate::exec::NotifySubscriber::default();
    let (hooks, m, id, s2) = (
        model.notify.clone(),
        masker.clone(),
        run_id.to_string(),
        sub.clone(),
    );
    attach.push(Box::new(move |runner| {
        *s2.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(crate::notify::Notifier::new(&hooks, m, &id, Some(mode)));
        runner.subscribe(Box::new(s2));
        Ok(())
    }));
    after.push(Box::new(move || {
        Box::pin(async move { sub.close(Duration::from_secs(5)).await })
    }));
}
