//! Wiring a run's pieces together — the one path that starts a run, the one that resumes it,
//! cleans it up or abandons it — so that the CLI only turns arguments into a `RunConfig` and
//! picks the display, and tests drive exactly what the binary does.
//!
//! A run needs: the model and scope, a store lease (the run's lock) with its journal, the DR
//! directory's lock (two failovers of one DR directory never run at once, whatever store each
//! uses), the subscribers (journal, progress, webhooks) and where approvals come from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::approvals::{AutoApprove, Either, NeverApprove, TtyApproval};
use crate::error::{Error, Result};
use crate::events::{ApprovalSource, Durability, Event, Subscriber};
use crate::exec::{RunOptions, RunOutcome, RunnerInput, Session};
use crate::mask::Masker;
use crate::model::{Mode, Model, Source};
use crate::plan::Scope;
use crate::progress::Display;
use crate::runconfig::RunConfig;
use crate::runstate::{RunState, RunStatus};
use crate::store::{Lease, RunMeta, Store, StoreSpec};

/// Why a step or service was not run, as shown in status and reports.
pub const SKIP_REASON: &str = "skipped by operator (--skip)";

/// What the person at the terminal chose about output and questions.
#[derive(Debug, Clone, Copy)]
pub struct Frontend {
    pub display: Display,
    /// `--yes`: approve manual steps, and answer yes to resume's questions.
    pub yes: bool,
    pub quiet: bool,
}

impl Frontend {
    /// A yes/no question: `--yes` answers yes; a terminal asks; otherwise `Err(refusal)`.
    fn confirm(&self, question: &str, refusal: String) -> Result<bool> {
        if self.yes {
            if !self.quiet {
                eprintln!("{question} yes (--yes)");
            }
            return Ok(true);
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(Error::Usage(refusal));
        }
        eprint!("{question} [y/N] ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return Ok(false);
        }
        Ok(matches!(
            line.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }
}

/// The DR directory's lock (`DIR/.meeseeks/active.lock`), held by whoever acts on the DR
/// directory's services with a file store (run, resume, cleanup): a state directory's own lock
/// only covers runs of that state directory, and two state directories must not fail over the
/// same services at once. A shared store (etcd) needs none: its lease is the one lock, held
/// across hosts, and a standby runner on this same host must be able to take a run over from
/// a paused one.
pub struct DrLock(#[allow(dead_code)] crate::store::file::RunLock);

impl DrLock {
    /// The lock when `store` is a file store; nothing for a shared store.
    pub fn for_store(store: &StoreSpec, dr_dir: &Path) -> Result<Option<DrLock>> {
        match store {
            StoreSpec::File(_) => DrLock::acquire(dr_dir).map(Some),
            StoreSpec::Etcd(_) => Ok(None),
        }
    }

    pub fn acquire(dr_dir: &Path) -> Result<DrLock> {
        let dir = dr_dir.join(".meeseeks");
        crate::store::file::ensure_private_dir(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        crate::store::file::RunLock::acquire_path(&dir.join("active.lock"))
            .map(DrLock)
            .map_err(|e| match e {
                crate::store::file::LockError::Held { .. } => Error::Locked(format!(
                    "the DR directory {} is being acted on by another meeseeks process ({e}); \
                     two failovers of one DR directory must not run at once",
                    dr_dir.display()
                )),
                other => other.into(),
            })
    }
}

/// A run ready to execute: started ([`start`]) or resumed ([`resume`]).
pub struct Prepared {
    pub model: Arc<Model>,
    pub scope: Scope,
    pub opts: RunOptions,
    pub input: RunnerInput,
    /// `None` for a dry-run, which writes nothing.
    lease: Option<Lease>,
    _dr_lock: Option<DrLock>,
}

impl Prepared {
    pub fn run_id(&self) -> &str {
        &self.opts.run_id
    }
}

/// The input files of a run (paths relative to the DR directory, contents), whose hashes let
/// `resume` tell the operator what changed: the bytes the loader read when it kept them
/// (`Model::sources`), else read now.
pub fn input_files(model: &Model) -> Vec<(PathBuf, Source)> {
    let mut files = Vec::new();
    let mut add = |p: &Path| {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            model.dir.join(p)
        };
        let bytes = match model.sources.0.get(&abs) {
            Some(b) => b.clone(),
            None => match std::fs::read(&abs) {
                Ok(b) => Source(Arc::new(b)),
                Err(_) => return,
            },
        };
        let rel = abs.strip_prefix(&model.dir).unwrap_or(&abs).to_path_buf();
        files.push((rel, bytes));
    };
    model.files.iter().for_each(|f| add(f));
    // Local templates the playbooks' `uses` steps expanded are inputs too (each once).
    let mut templates = BTreeSet::new();
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

/// What a run takes from its plan: the planned (start, ready) seconds by service, journaled
/// in `run.started` (planned vs actual in status and reports), and the priority list the
/// runner walks (so the run follows the plan).
type RunPlan = (BTreeMap<String, (f64, f64)>, crate::plan::Priority);

/// Plans the run once (see [`RunPlan`]); `None` (with a warning) if it cannot be planned.
fn plan_run(model: &Model, config: &RunConfig) -> Option<RunPlan> {
    let po = crate::plan::PlanOptions {
        scope: config.scope.spec(),
        parallel: Some(config.parallel),
        eager: config.eager,
        mode: config.mode,
        history: None,
        ..Default::default()
    };
    match crate::plan::build_run_plan(model, &po) {
        Ok((services, priority)) => {
            let planned = services
                .iter()
                .map(|p| {
                    (
                        model.name(p.id).to_string(),
                        (p.start as f64 / 1000.0, p.ready as f64 / 1000.0),
                    )
                })
                .collect();
            Some((planned, priority))
        }
        Err(e) => {
            tracing::warn!("no planned timeline for this run: {e}");
            None
        }
    }
}

/// Starts a new run of `model` (its directory absolute, as the loader makes it): refuses
/// (exit 3) while the store has an unfinished run or the DR directory is locked; a dry-run
/// takes no lock and writes nothing.
pub async fn start(
    model: Model,
    config: RunConfig,
    store: &StoreSpec,
    declared_at: jiff::Timestamp,
) -> Result<Prepared> {
    let scope = crate::plan::select_scope(&model, &config.scope.spec())?;
    // Before anything runs (or is journaled): every variable the run needs. A dry-run only
    // warns (it executes nothing).
    let missing = crate::template::missing_vars(&model, &scope.ids, config.mode);
    if !config.dry_run
        && let Some(msg) = crate::template::missing_vars_error(&missing)
    {
        return Err(Error::Invalid(msg));
    }
    // Planned on a second thread while the run is created and its inputs hashed (the run
    // waits for the plan before its first step).
    let model = Arc::new(model);
    let planning = {
        let (model, config) = (model.clone(), config.clone());
        tokio::task::spawn_blocking(move || plan_run(&model, &config))
    };
    let run_id = crate::store::new_run_id(jiff::Timestamp::now());
    let (lease, dr_lock, run_dir, input_hash) = if config.dry_run {
        // Only rendered into templates: a dry-run creates nothing.
        let run_dir = match store {
            StoreSpec::File(p) => absolute(p).join("runs").join(&run_id),
            StoreSpec::Etcd(e) => e.local.join("runs").join(&run_id),
        };
        (None, None, run_dir, String::new())
    } else {
        let spec = store;
        let store = Store::open(spec, true).await?;
        let dr_lock = match DrLock::for_store(spec, &model.dir) {
            Ok(l) => l,
            Err(e) => {
                // Most often the DR directory is busy with a run of this same store: say which
                // run and how to resume or abandon it, rather than only "locked".
                return Err(match store.unfinished().await {
                    Ok(u) if !u.is_empty() => {
                        Error::Locked(crate::store::file::state_dir::unfinished_message(&u))
                    }
                    _ => e,
                });
            }
        };
        // Read only by a run that goes ahead (a dry-run writes no meta; a locked directory
        // ends here).
        let files = input_files(&model);
        let meta = RunMeta::new(&run_id, &config, &model.dir, declared_at, &files);
        let lease = store.begin(&meta).await?;
        let run_dir = lease.run_dir();
        (Some(lease), dr_lock, run_dir, meta.input_hash)
    };
    let mut opts = RunOptions::from_config(config, run_id, run_dir);
    opts.declared_at = Some(declared_at);
    opts.handle_signals = true;
    if let Ok(Some((planned, priority))) = planning.await {
        opts.planned = planned;
        opts.priority = Some(priority);
    }
    Ok(Prepared {
        model,
        scope,
        opts,
        input: RunnerInput {
            first_seq: 1,
            input_hash,
            holder: lease.as_ref().map(|l| l.holder()),
            ..Default::default()
        },
        lease,
        _dr_lock: dr_lock,
    })
}

/// What the operator may change when resuming (everything else is as the run started).
#[derive(Debug, Clone, Default)]
pub struct ResumeOverrides {
    /// Another DR directory to re-load graph and playbooks from.
    pub dir: Option<PathBuf>,
    pub parallel: Option<usize>,
    pub eager: bool,
    pub on_failure: Option<crate::runconfig::OnFailure>,
    pub rollback: bool,
    pub no_cleanup: bool,
    pub strict: bool,
    pub kill_grace: Option<Duration>,
    pub vars: BTreeMap<String, String>,
    /// Work done by hand: `SERVICE` or `SERVICE/STEP`.
    pub skip: Vec<String>,
    /// Wait until the run's lock is free, then take over (a standby runner).
    pub wait: bool,
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

/// Resumes run `id` (default: the latest) of the store: takes its lock (exit 3 while a live
/// process holds it, or while another run is unfinished), replays its journal, re-loads graph
/// and playbooks from the run's DR directory (or `over.dir`) and says what changed, applies
/// `--skip`, and asks before re-running an in-flight step that is not idempotent. The RTO
/// clock keeps the run's original start.
pub async fn resume(
    store: &StoreSpec,
    id: Option<&str>,
    over: &ResumeOverrides,
    fe: &Frontend,
    load: impl FnOnce(&Path, &RunConfig) -> Result<Model>,
) -> Result<Prepared> {
    let spec = store;
    let store = Store::open(spec, false).await?;
    let id = store.resolve(id).await?;
    let lease = store.acquire(&id, false, over.wait).await?;
    let meta = lease.meta().await?;
    let st: RunState = lease.state().await?;
    match st.state {
        RunStatus::Finished => {
            return Err(Error::Usage(format!(
                "run {id} finished successfully; nothing to resume"
            )));
        }
        RunStatus::Abandoned => {
            return Err(Error::Usage(format!(
                "run {id} was abandoned{}; start a new run instead",
                st.abandoned_by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            )));
        }
        _ => {}
    }
    for w in &st.warnings {
        tracing::warn!("{w}");
    }

    // The configuration the run was started with, and what the operator changes now.
    let mut config = meta.config.clone();
    if let Some(p) = over.parallel {
        config.parallel = p;
    }
    config.eager |= over.eager;
    if let Some(f) = over.on_failure {
        config.on_failure = f;
    }
    config.rollback |= over.rollback;
    if over.no_cleanup {
        config.cleanup = false;
    }
    config.strict |= over.strict;
    if let Some(k) = over.kill_grace {
        config.kill_grace = k;
    }
    config.vars.extend(over.vars.clone());

    let dir = over.dir.clone().unwrap_or_else(|| PathBuf::from(&meta.dir));
    let model = load(&dir, &config)?;
    let dr_lock = DrLock::for_store(spec, &model.dir)?;
    let files = input_files(&model);
    let changes = meta.input_changes(&crate::store::input_digests(&files));
    let input_hash = crate::store::input_hash(&files);

    // The run's scope: the services its `run.started` listed (a crash before that was
    // durable leaves none: then the scope options it was started with).
    let mut names: Vec<String> = Vec::new();
    for s in &st.services {
        if model.id(&s.name).is_some() {
            names.push(s.name.clone());
        } else {
            tracing::warn!(
                "service {} of run {id} is no longer in the graph; left out",
                s.name
            );
        }
    }
    let spec = if names.is_empty() {
        config.scope.spec()
    } else {
        crate::plan::ScopeSpec {
            services: names,
            ..Default::default()
        }
    };
    let scope = crate::plan::select_scope(&model, &spec)?;
    // Before anything runs: every variable the rest of the run needs.
    let missing = crate::template::missing_vars(&model, &scope.ids, meta.mode);
    if let Some(msg) = crate::template::missing_vars_error(&missing) {
        return Err(Error::Invalid(msg));
    }
    // A runner that was killed may have left a step's processes running: they go before the
    // step can run a second time.
    let in_flight: Vec<(String, String)> = st
        .services
        .iter()
        .flat_map(|s| {
            s.steps
                .iter()
                .filter(|x| x.status == crate::runstate::StepStatus::Running)
                .map(|x| (s.name.clone(), x.name.clone()))
        })
        .collect();
    let shown = crate::template::secrets_masker(&model, &scope.ids);
    for o in crate::exec::process::kill_orphans(&id, &in_flight, config.kill_grace) {
        let command = shown.mask(&o.command).into_owned();
        let step = if o.step.is_empty() {
            String::new()
        } else {
            format!(" / {}", o.step)
        };
        eprintln!(
            "stopped pid {} left running by the previous runner ({}{step}): {command}",
            o.pid, o.service
        );
    }
    let in_scope: BTreeSet<String> = scope
        .ids
        .iter()
        .map(|&i| model.name(i).to_string())
        .collect();

    let mut input = RunnerInput::from_state(&st);
    input.input_hash = input_hash;
    input.holder = Some(lease.holder());
    // Stopped before its first record was durable: nothing of it ran, so the run starts its
    // journal now (with `run.started`, the clock still from meta.json).
    if st.last_seq == 0 {
        input.resumed = None;
        input.prior = None;
    } else if let Some(r) = input.resumed.as_mut() {
        r.changes = changes;
    }
    for s in &over.skip {
        match parse_skip(&model, &in_scope, s)? {
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
    if !fe.quiet {
        match input.resumed.as_ref().map(|r| &r.changes) {
            Some(c) if !c.is_empty() => {
                eprintln!("resuming run {id}: inputs changed since the run started:");
                for c in c {
                    eprintln!("  {c}");
                }
            }
            _ => eprintln!("resuming run {id}: inputs unchanged"),
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
            .and_then(|i| model.services[i].playbook.as_ref())
            .and_then(|p| p.steps.iter().find(|x| x.name == unf.name))
            .is_none_or(|x| x.idempotent);
        if idempotent {
            continue;
        }
        let (step, svc) = (&unf.name, &s.name);
        let again = fe.confirm(
            &format!(
                "step {step} of {svc} was in flight when the run stopped; it is not idempotent. \
                 Run it again?"
            ),
            format!(
                "step {step} of {svc} was in flight when the run stopped and is not idempotent \
                 (idempotent = false): check by hand whether it took effect, then resume with \
                 `--skip {svc}/{step}` if it did, or `--yes` to run it again"
            ),
        )?;
        if !again {
            return Err(Error::Usage(format!(
                "not resumed: check step {step} of {svc} by hand, then resume with \
                 `--skip {svc}/{step}` if it took effect, or answer yes to run it again"
            )));
        }
    }

    let mut opts = RunOptions::from_config(config, id.clone(), lease.run_dir());
    opts.declared_at = Some(st.declared_at.unwrap_or(meta.declared_at));
    opts.handle_signals = true;
    opts.planned = st
        .services
        .iter()
        .filter_map(|s| {
            let p = s.planned.as_ref()?;
            Some((s.name.clone(), (p.start_s?, p.ready_s?)))
        })
        .collect();
    Ok(Prepared {
        model: Arc::new(model),
        scope,
        opts,
        input,
        lease: Some(lease),
        _dr_lock: dr_lock,
    })
}

/// RTO seconds per service in scope, for the progress display's "met"/"breached".
fn rto_map(model: &Model, scope: &Scope) -> HashMap<String, f64> {
    scope
        .ids
        .iter()
        .map(|&i| {
            (
                model.name(i).to_string(),
                model.services[i].rto.as_secs_f64(),
            )
        })
        .collect()
}

/// Runs a prepared run to its end: journal (when not a dry-run), progress display, webhooks,
/// approvals from `--yes`, the terminal and the store. The run's lock is held until its last
/// record is durable. Call it inside [`crate::exec::runtime`]`(dry_run)`, the same runtime
/// that prepared the run (a store's connection and lease keep-alive live on it).
pub async fn execute(p: Prepared, fe: &Frontend) -> Result<RunOutcome> {
    let dry = p.opts.config.dry_run;
    let Prepared {
        model,
        scope,
        opts,
        input,
        lease,
        _dr_lock,
    } = p;
    let (display, printer) = crate::progress::subscriber(fe.display, rto_map(&model, &scope), dry);
    let store_approvals: Arc<dyn ApprovalSource> = match &lease {
        Some(l) => l.approvals().await,
        None => Arc::new(NeverApprove),
    };
    let approvals: Arc<dyn ApprovalSource> = if fe.yes {
        Arc::new(AutoApprove)
    } else if std::io::stdin().is_terminal() && !dry {
        let tty = match printer {
            Some(p) => TtyApproval::with_printer(p),
            None => TtyApproval::new(),
        };
        Arc::new(Either(tty, store_approvals))
    } else {
        store_approvals
    };
    let masker = Masker::new();
    {
        let mut subscribers: Vec<Box<dyn Subscriber>> = Vec::new();
        let mut durability: Option<Arc<dyn Durability>> = None;
        if let Some(l) = &lease {
            let journal = l.journal(masker.clone()).await?;
            durability = Some(Arc::new(journal.clone()));
            subscribers.push(Box::new(journal));
        }
        subscribers.extend(display);
        let notify = (!dry && !model.notify.is_empty()).then(|| {
            let hooks = crate::notify::render_hooks(
                &model.notify,
                &model.vars,
                &opts.run_id,
                Some(opts.mode()),
                &masker,
            );
            crate::notify::NotifySubscriber::start(
                &hooks,
                masker.clone(),
                &opts.run_id,
                opts.mode(),
            )
        });
        if let Some(n) = &notify {
            subscribers.push(Box::new(n.clone()));
        }
        let session = Session {
            scope,
            opts,
            input,
            approvals,
            subscribers,
            durability,
            masker,
        };
        let outcome = crate::exec::execute(model, session).await?;
        if let Some(n) = notify {
            n.close(crate::notify::EXIT_GRACE).await;
        }
        // The lease goes only now: the runner awaited its last record's durability.
        if let Some(l) = lease {
            l.release().await;
        }
        Ok(outcome)
    }
}

/// `meeseeks cleanup`: the cleanup steps still pending for a drill's services, dependents
/// first, journaled in the run (under its lock and the DR directory's). Returns the state
/// after cleanup.
pub async fn cleanup(
    store: &StoreSpec,
    id: Option<&str>,
    fe: &Frontend,
    kill_grace: Option<Duration>,
    load: impl FnOnce(&Path) -> Result<Model>,
) -> Result<RunState> {
    {
        let spec = store;
        let store = Store::open(spec, false).await?;
        let id = store.resolve(id).await?;
        let lease = store.acquire(&id, true, false).await?;
        let meta = lease.meta().await?;
        if meta.mode != Mode::Drill {
            return Err(Error::Usage(format!(
                "run {id} is a {}: cleanup undoes drills only",
                meta.mode
            )));
        }
        let state = lease.state().await?;
        let model = load(Path::new(&meta.dir))?;
        let _dr_lock = DrLock::for_store(spec, &model.dir)?;
        let mut config = meta.config.clone();
        if let Some(k) = kill_grace {
            config.kill_grace = k;
        }
        let mut opts = RunOptions::from_config(config, id.clone(), lease.run_dir());
        opts.handle_signals = true;
        let masker = Masker::new();
        let journal = lease.journal(masker.clone()).await?;
        let mut subs: Vec<Box<dyn Subscriber>> = vec![Box::new(journal.clone())];
        let (display, _) = crate::progress::subscriber(
            match fe.display {
                Display::Quiet => Display::Quiet,
                _ => Display::Lines,
            },
            HashMap::new(),
            false,
        );
        subs.extend(display);
        let model = Arc::new(model);
        let executor = crate::exec::executor_for(&model, &opts);
        let state = crate::exec::cleanup_run(
            model,
            state,
            &opts,
            executor,
            masker,
            subs,
            Some(Arc::new(journal)),
        )
        .await;
        lease.release().await;
        Ok(state)
    }
}

/// `meeseeks run --abandon [RUN_ID]` (default: the latest unfinished run): journals
/// `run.abandoned` so that a new run may start. Refused (exit 3) while a process runs it.
pub async fn abandon(store: &StoreSpec, id: Option<&str>) -> Result<String> {
    {
        let store = Store::open(store, false).await?;
        let id = match id {
            Some(id) => store.resolve(Some(id)).await?,
            None => match store.unfinished().await?.last() {
                Some(r) => r.run_id.clone(),
                None => {
                    return Err(Error::Usage(format!(
                        "no unfinished run in {} to abandon",
                        store.describe()
                    )));
                }
            },
        };
        let lease = store.acquire(&id, true, false).await.map_err(|e| match e {
            Error::Locked(m) => Error::Locked(format!("cannot abandon run {id}: {m}")),
            other => other,
        })?;
        let st = lease.state().await?;
        if matches!(
            st.state,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Abandoned
        ) {
            return Err(Error::Usage(format!(
                "run {id} is {} already; nothing to abandon",
                st.state.as_str()
            )));
        }
        lease
            .append(Event::RunAbandoned {
                by: crate::util::whoami(),
            })
            .await?;
        lease.release().await;
        let done = st.count(crate::runstate::ServiceStatus::Recovered);
        Ok(format!(
            "abandoned run {id} ({done}/{} services recovered); a new run may start\n",
            st.services.len()
        ))
    }
}

/// `path` made absolute against the working directory (not resolving links: a state
/// directory that does not exist yet has no canonical form).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
