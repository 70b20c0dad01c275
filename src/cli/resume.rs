//! `meeseeks resume [RUN_ID]`: continue an interrupted, crashed or failed run where its
//! journal says it stopped.
//!
//! The journal is the truth: a step whose `step.succeeded` (or `step.skipped`) is journaled
//! never runs again; a step with `step.started` and no outcome was in flight when the process
//! died, so it runs again (after asking, when it is marked `idempotent = false`); failed
//! services are retried from their failed step and their blocked dependents become pending.
//! Graph and playbooks are re-read (an operator may have fixed one) and the differences from
//! what the run started with are printed and journaled in `run.resumed`. The RTO clock keeps
//! the run's original start.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::run::{OnFailureArg, RunFormat};
use super::{Global, VarArgs};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::exec::{Display, OnFailure, RunOptions, RunnerInput, Session, WalkMode};
use crate::journal::{RunLock, RunState, RunStatus, StateDir, lock::LockError};
use crate::load::LoadOptions;
use crate::mask::Masker;
use crate::model::{Model, VarValue};

/// Why a step or service was not run, as shown in status and reports.
pub const SKIP_REASON: &str = "skipped by operator (--skip)";

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    /// DR directory to re-load graph and playbooks from (default: the one the run was
    /// started with). Also where the state directory is looked for.
    #[command(flatten)]
    pub dir: super::DirFlag,
    /// State directory (default: DIR/.meeseeks, else ./.meeseeks).
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    /// Work done by hand: `SERVICE` counts as recovered, `SERVICE/STEP` as done (repeatable).
    #[arg(long = "skip", value_name = "SERVICE[/STEP]")]
    pub skip: Vec<String>,
    /// Approve manual steps automatically, and re-run in-flight non-idempotent steps without
    /// asking.
    #[arg(long)]
    pub yes: bool,
    /// Max services recovering at once (default: as the run was started).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Start each service as soon as its essential dependencies are recovered.
    #[arg(long)]
    pub eager: bool,
    /// What to do after a service fails (default: as the run was started).
    #[arg(long, value_enum)]
    pub on_failure: Option<OnFailureArg>,
    /// Run a failed service's rollback steps.
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    /// After a drill, leave what it started running (see `meeseeks cleanup`).
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

/// One `--skip` target, checked against the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    Service(String),
    Step(String, String),
}

fn parse_skip(model: &Model, in_scope: &BTreeSet<String>, s: &str) -> Result<Skip> {
    let (svc, step) = match s.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (s.trim(), None),
    };
    let Some(id) = model.id(svc).filter(|_| in_scope.contains(svc)) else {
        return Err(Error::Usage(format!(
            "--skip {s}: no service `{svc}` in this run{}",
            crate::suggest::did_you_mean(svc, in_scope.iter().map(|x| x.as_str()))
        )));
    };
    let Some(step) = step else {
        return Ok(Skip::Service(svc.to_string()));
    };
    let steps: Vec<&str> = model.services[id]
        .playbook
        .as_ref()
        .map(|p| p.steps.iter().map(|s| s.name.as_str()).collect())
        .unwrap_or_default();
    if !steps.contains(&step) {
        let known = if steps.is_empty() {
            String::new()
        } else {
            format!("; its steps: {}", steps.join(", "))
        };
        return Err(Error::Usage(format!(
            "--skip {s}: service `{svc}` has no step `{step}`{}{known}",
            crate::suggest::did_you_mean(step, steps.iter().copied())
        )));
    }
    Ok(Skip::Step(svc.to_string(), step.to_string()))
}

/// Asks on the terminal; anything but y/yes is a no.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub fn run(g: &Global, a: &ResumeArgs) -> Result<i32> {
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(|| a.dir.path().join(".meeseeks"));
    let sd = StateDir::open_existing(&state_dir)?;
    let run = sd.resolve(a.run_id.as_deref())?;
    let state_guard = sd.lock_state()?;
    // The lock first: everything below reads a journal that nobody else may be writing.
    let lock = RunLock::acquire(&run.path).map_err(|e| match e {
        LockError::Held { .. } => {
            Error::Locked(format!("cannot resume run {}: it is live ({e})", run.id))
        }
        other => other.into(),
    })?;
    let meta = run.read_meta()?;
    let st: RunState = run.load_state_locked()?;
    match st.state {
        RunStatus::Finished => {
            return Err(Error::Usage(format!(
                "run {} finished successfully; nothing to resume",
                run.id
            )));
        }
        RunStatus::Abandoned => {
            return Err(Error::Usage(format!(
                "run {} was abandoned{}; start a new run instead",
                run.id,
                st.abandoned_by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            )));
        }
        _ => {}
    }
    // Resuming a failed run makes it live again: not while another run is unfinished.
    let others: Vec<_> = sd
        .unfinished_runs()?
        .into_iter()
        .filter(|r| r.run_id != run.id)
        .collect();
    if !others.is_empty() {
        return Err(Error::Locked(crate::journal::store::unfinished_message(
            &others,
        )));
    }
    // From here on the run's lock marks it live for any `run` that checks.
    drop(state_guard);
    for w in &st.warnings {
        tracing::warn!("{w}");
    }

    // Re-load the inputs, with the variables the run was started with (`--var` overrides).
    let mut vars: BTreeMap<String, VarValue> = meta
        .options
        .get("var_values")
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), VarValue::String(v.as_str()?.to_string()))))
                .collect()
        })
        .unwrap_or_default();
    vars.extend(a.vars.map());
    let dir = a.dir.given().unwrap_or_else(|| PathBuf::from(&meta.dir));
    let opts = LoadOptions {
        cli_vars: vars.clone(),
        require_playbooks: true,
        graph_only: false,
    };
    let model = super::load_model(g, &dir, &opts)?;
    let files = super::run::input_files(&model);
    let changes = meta.input_changes(&crate::journal::store::input_digests(&files));
    let input_hash = crate::journal::input_hash(&files);
    // The run's scope: the services its `run.started` listed (a crash before that was
    // durable leaves none: then the scope options it was started with).
    let mut names: Vec<String> = Vec::new();
    for s in &st.services {
        if model.id(&s.name).is_some() {
            names.push(s.name.clone());
        } else {
            tracing::warn!(
                "service {} of run {} is no longer in the graph; left out",
                s.name,
                run.id
            );
        }
    }
    let spec = if !names.is_empty() {
        crate::plan::ScopeSpec {
            services: names,
            ..Default::default()
        }
    } else {
        scope_from_options(&meta.options)
    };
    let scope = crate::plan::select_scope(&model, &spec)?;
    let in_scope: BTreeSet<String> = scope
        .ids
        .iter()
        .map(|&i| model.name(i).to_string())
        .collect();

    let mut input = RunnerInput::from_state(&st);
    input.first_seq = st.last_seq + 1;
    input.input_hash = input_hash;
    // Killed before its first record was written: there is nothing to continue, so the run
    // starts its journal now (with `run.started`, the clock still from meta.json).
    let fresh = st.last_seq == 0;
    if fresh {
        input.resumed = None;
    } else if let Some(r) = input.resumed.as_mut() {
        r.changes = changes;
    }
    // Work done by hand.
    let mut skips = Vec::new();
    for s in &a.skip {
        skips.push(parse_skip(&model, &in_scope, s)?);
    }
    for s in skips {
        match s {
            Skip::Service(svc) => {
                if input.already_recovered.insert(svc.clone()) {
                    input.done_steps.remove(&svc);
                    input.prelude.push(Event::ServiceSkipped {
                        service: svc,
                        reason: SKIP_REASON.into(),
                    });
                }
            }
            Skip::Step(svc, step) => {
                if input.already_recovered.contains(&svc) {
                    continue;
                }
                if input
                    .done_steps
                    .entry(svc.clone())
                    .or_default()
                    .insert(step.clone())
                {
                    input.prelude.push(Event::StepSkipped {
                        service: svc,
                        step,
                        reason: SKIP_REASON.into(),
                    });
                }
            }
        }
    }
    if !g.quiet {
        if input.resumed.as_ref().is_none_or(|r| r.changes.is_empty()) {
            eprintln!("resuming run {}: inputs unchanged", run.id);
        } else {
            eprintln!(
                "resuming run {}: inputs changed since the run started:",
                run.id
            );
            for c in input.resumed.iter().flat_map(|r| r.changes.iter()) {
                eprintln!("  {c}");
            }
        }
    }

    // A step in flight when the run stopped runs again; unless it says that is unsafe.
    for s in &st.services {
        if input.already_recovered.contains(&s.name) || !in_scope.contains(&s.name) {
            continue;
        }
        let Some(unf) = s.unfinished_step() else {
            continue;
        };
        if input
            .done_steps
            .get(&s.name)
            .is_some_and(|d| d.contains(&unf.name))
        {
            continue;
        }
        let idempotent = model
            .id(&s.name)
            .and_then(|id| model.services[id].playbook.as_ref())
            .and_then(|p| p.steps.iter().find(|x| x.name == unf.name))
            .is_none_or(|x| x.idempotent);
        if idempotent {
            continue;
        }
        let question = format!(
            "step {} of {} was in flight when the run stopped; it is not idempotent. Run it again?",
            unf.name, s.name
        );
        let again = if a.yes {
            if !g.quiet {
                eprintln!(
                    "step {} of {} was in flight when the run stopped; it is not idempotent: running it again (--yes)",
                    unf.name, s.name
                );
            }
            true
        } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            ask(&question)
        } else {
            return Err(Error::Usage(format!(
                "step {step} of {svc} was in flight when the run stopped and is not idempotent \
                 (idempotent = false): check by hand whether it took effect, then resume with \
                 `--skip {svc}/{step}` if it did, or `--yes` to run it again",
                step = unf.name,
                svc = s.name
            )));
        };
        if !again {
            return Err(Error::Usage(format!(
                "not resumed: check step {step} of {svc} by hand, then resume with \
                 `--skip {svc}/{step}` if it took effect, or answer yes to run it again",
                step = unf.name,
                svc = s.name
            )));
        }
    }

    // Mode, walk and options as the run was started, unless overridden.
    let o = &meta.options;
    let mut ro = RunOptions::new(meta.mode, run.id.clone(), run.path.clone());
    let eager = a.eager || o.get("eager").and_then(|v| v.as_bool()).unwrap_or(false);
    ro.walk = if eager {
        WalkMode::Eager
    } else {
        WalkMode::Waves
    };
    ro.parallel = a
        .parallel
        .or_else(|| {
            o.get("parallel")
                .and_then(|v| v.as_u64())
                .map(|n| n as usize)
        })
        .unwrap_or(model.defaults.parallel);
    ro.on_failure = match a.on_failure {
        Some(OnFailureArg::Continue) => OnFailure::Continue,
        Some(OnFailureArg::Stop) => OnFailure::Stop,
        None if o.get("on_failure").and_then(|v| v.as_str()) == Some("stop") => OnFailure::Stop,
        None => OnFailure::Continue,
    };
    ro.rollback = a.rollback || o.get("rollback").and_then(|v| v.as_bool()) == Some(true);
    // The RTO clock keeps the run's original start.
    ro.declared_at = Some(st.declared_at.unwrap_or(meta.declared_at));
    ro.vars = vars;
    ro.kill_grace = a.kill_grace;
    ro.handle_signals = true;
    ro.cleanup = !a.no_cleanup;

    let masker = Masker::new();
    let mut attach: Vec<crate::exec::Attach> = Vec::new();
    {
        let dir = run.path.clone();
        let m = masker.clone();
        // The journal continues (torn tail cut) inside the run's runtime, which its writer
        // task needs; numbering goes on after the last record.
        let create = !dir.join(crate::journal::writer::JOURNAL_FILE).exists();
        attach.push(Box::new(move |runner| {
            let journal = if create {
                crate::journal::JournalWriter::create(&dir, m)?
            } else {
                let (journal, replay) = crate::journal::JournalWriter::append_existing(&dir, m)?;
                for w in replay.warnings {
                    tracing::warn!("{w}");
                }
                journal
            };
            runner.subscribe(Box::new(journal.clone()));
            runner.set_durability(Box::new(journal));
            Ok(())
        }));
    }
    let mut after: Vec<crate::exec::After> = Vec::new();
    super::run::attach_webhooks(
        &model,
        &masker,
        &ro.run_id,
        meta.mode,
        &mut attach,
        &mut after,
    );
    let session = Session {
        scope,
        opts: ro,
        input,
        display: Display::pick(g.quiet, g.no_progress),
        yes: a.yes,
        approvals: Some(std::sync::Arc::new(crate::exec::DropBoxApprovals)),
        subscribers: Vec::new(),
        durability: None,
        attach,
        after,
        masker,
    };
    let report = crate::exec::execute(model, session)?;
    // Held until the journal's last record is durable (awaited by the runner).
    drop(lock);
    super::run::finish(&report, a.format, a.strict)
}

/// The scope options a run was started with (`meta.json`), for a run that crashed before
/// `run.started` listed its services.
fn scope_from_options(o: &serde_json::Value) -> crate::plan::ScopeSpec {
    let strings = |k: &str| -> Vec<String> {
        o.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let tags = o
        .get("tags")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let p = t.as_array()?;
                    Some((
                        p.first()?.as_str()?.to_string(),
                        p.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    crate::plan::ScopeSpec {
        services: strings("services"),
        tags,
        max_tier: o.get("max_tier").and_then(|v| v.as_u64()).map(|n| n as u32),
    }
}
