//! The state directory: where runs live, how they are named and found.

use std::path::{Path, PathBuf};

use super::approve::Approval;
use super::lock::{self, RunLock};
use super::reader::{Replay, read_journal};
use super::writer::{BEGUN_FILE, JOURNAL_FILE};
use crate::error::{Error, Result};
use crate::runstate::{LockInfo, RunState, RunStatus, RunSummary};
use crate::store::{RunMeta, valid_run_id};

pub const RUNS_DIR: &str = "runs";
pub const META_FILE: &str = "meta.json";
/// Held (briefly) by `begin_run`, so that two `run` commands cannot both see "no unfinished
/// run" and start two concurrent failovers.
const STATE_LOCK_FILE: &str = "lock";

/// One run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    pub fn meta_path(&self) -> PathBuf {
        self.path.join(META_FILE)
    }

    pub fn read_meta(&self) -> Result<RunMeta> {
        let p = self.meta_path();
        let bytes =
            std::fs::read(&p).map_err(|e| Error::io(format!("cannot read {}", p.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
    }

    /// The journal's records. The journal is created with the run, and `journal.begun` once
    /// its first record is durable: a missing journal, or an empty one of a run that had
    /// begun, was deleted or truncated — an error, never a blank slate (replaying nothing
    /// would make `resume` run a whole failover again). An empty journal without the marker
    /// is a run that stopped before its first record: nothing of it ran.
    pub fn replay(&self) -> Result<Replay> {
        let p = self.journal_path();
        let damaged = |what: &str| {
            Error::Invalid(format!(
                "the journal of run {} ({}) {what}: its history is lost, so it cannot be \
                 shown or resumed from it. Restore the file from a backup, or give the run up \
                 with `meeseeks run --abandon {}` and check by hand what it did",
                self.id,
                p.display(),
                self.id
            ))
        };
        let meta = std::fs::symlink_metadata(&p);
        match meta {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged("is missing"));
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", p.display()), e)),
            Ok(m) if !m.is_file() => return Err(damaged("is not a regular file")),
            Ok(m) if m.len() == 0 && self.path.join(BEGUN_FILE).exists() => {
                return Err(damaged("is empty although the run had begun"));
            }
            Ok(_) => {}
        }
        read_journal(&p)
    }

    /// Who holds this run's lock (a live process), if anyone.
    pub fn holder(&self) -> Result<Option<LockInfo>> {
        lock::is_locked(&self.path)
            .map_err(|e| Error::io(format!("cannot probe the lock of {}", self.id), e))
    }

    /// RunState for readers that do not hold the lock (status, report, runs): the fold of the
    /// journal, plus the lock probe that tells a live run from one whose process died.
    pub fn load_state(&self) -> Result<RunState> {
        let replay = self.replay()?;
        let mut st = RunState::fold(&replay.records);
        if st.run_id.is_empty() {
            st.run_id = self.id.clone();
        }
        if st.mode.is_none()
            && let Ok(meta) = self.read_meta()
        {
            st.mode = Some(meta.mode);
            st.declared_at = st.declared_at.or(Some(meta.declared_at));
        }
        st.warnings.extend(replay.warnings);
        let holder = self.holder()?;
        st.set_liveness(holder);
        Ok(st)
    }

    /// RunState for the holder of the lock (resume, abandon): the fold alone, no probe.
    pub fn load_state_locked(&self) -> Result<RunState> {
        let replay = self.replay()?;
        let mut st = RunState::fold(&replay.records);
        if st.run_id.is_empty() {
            st.run_id = self.id.clone();
        }
        st.warnings.extend(replay.warnings);
        Ok(st)
    }

    pub fn approvals_dir(&self) -> PathBuf {
        self.path.join(super::approve::APPROVALS_DIR)
    }

    /// Approves the manual step `service` is waiting on (and, when given, only if it is
    /// `step`). Errors: unknown service (with a suggestion), a service with no manual step
    /// waiting, another step waiting, a run that is not live.
    pub fn approve(&self, service: &str, step: Option<&str>, by: Option<&str>) -> Result<Approval> {
        let st = self.load_state()?;
        let waiting = crate::store::waiting_step(&st, &self.id, service, step)?;
        let approval = Approval {
            service: service.to_string(),
            step: waiting,
            by: by.map(str::to_string).unwrap_or_else(crate::util::whoami),
            at: jiff::Timestamp::now(),
        };
        super::approve::drop_approval(&self.path, &approval).map_err(|e| {
            Error::io(
                format!("cannot write an approval in {}", self.path.display()),
                e,
            )
        })?;
        Ok(approval)
    }
}

/// The state directory (`DIR/.meeseeks` or `--state-dir`).
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens the state directory, creating it and `runs/` with mode 0700 (and tightening them
    /// if they exist with looser permissions).
    pub fn open(path: &Path) -> Result<StateDir> {
        let runs = path.join(RUNS_DIR);
        super::ensure_private_dir(path)
            .and_then(|_| super::ensure_private_dir(&runs))
            .map_err(|e| {
                Error::io(
                    format!("cannot create state directory {}", path.display()),
                    e,
                )
            })?;
        Ok(StateDir {
            root: path.to_path_buf(),
        })
    }

    /// Opens an existing state directory without creating anything (read-only commands).
    pub fn open_existing(path: &Path) -> Result<StateDir> {
        if !path.join(RUNS_DIR).is_dir() {
            return Err(Error::Usage(format!(
                "no runs in {}: no run was started with this state directory (see --state-dir)",
                path.display()
            )));
        }
        Ok(StateDir {
            root: path.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join(RUNS_DIR)
    }

    pub fn run_dir(&self, id: &str) -> RunDir {
        RunDir {
            id: id.to_string(),
            path: self.runs_dir().join(id),
        }
    }

    /// Creates the run's directory (0700) and its `meta.json` (0600). Fails if it exists.
    pub fn create_run(&self, run_id: &str, meta: &RunMeta) -> Result<RunDir> {
        if !valid_run_id(run_id) {
            return Err(Error::Usage(format!("invalid run id `{run_id}`")));
        }
        let rd = self.run_dir(run_id);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&rd.path)
                .map_err(|e| {
                    Error::io(
                        format!("cannot create run directory {}", rd.path.display()),
                        e,
                    )
                })?;
        }
        let json = serde_json::to_vec_pretty(meta)
            .map_err(|e| Error::Other(format!("cannot serialize run meta: {e}")))?;
        super::write_private_atomic(&rd.meta_path(), &json)
            .and_then(|_| super::sync_dir(&self.runs_dir()))
            .map_err(|e| Error::io(format!("cannot write {}", rd.meta_path().display()), e))?;
        // The journal exists from the start, so that a missing one means damage.
        super::writer::create_empty(&rd.journal_path())
            .and_then(|_| super::sync_dir(&rd.path))
            .map_err(|e| Error::io(format!("cannot create {}", rd.journal_path().display()), e))?;
        Ok(rd)
    }

    /// Everything `run` needs before its first event: refuses (exit 3) while an unfinished
    /// run exists, else creates the run directory and takes its lock. The check and the
    /// creation happen under the state directory's lock, so two `run`s cannot both pass.
    pub fn begin_run(&self, meta: &RunMeta) -> Result<(RunDir, RunLock)> {
        let _guard =
            RunLock::acquire_path(&self.root.join(STATE_LOCK_FILE)).map_err(|e| match e {
                lock::LockError::Held { .. } => Error::Locked(format!(
                    "another meeseeks process is starting a run in {} right now ({e})",
                    self.root.display()
                )),
                other => other.into(),
            })?;
        let unfinished = self.unfinished_runs()?;
        if !unfinished.is_empty() {
            return Err(Error::Locked(unfinished_message(&unfinished)));
        }
        let rd = self.create_run(&meta.run_id, meta)?;
        let lock = RunLock::acquire(&rd.path)?;
        Ok((rd, lock))
    }

    /// The state directory's lock, as `begin_run` holds it: `resume` takes it while it locks
    /// its run and checks that no other run is unfinished, so that a `run` starting at the same
    /// moment cannot slip in between.
    pub fn lock_state(&self) -> Result<RunLock> {
        RunLock::acquire_path(&self.root.join(STATE_LOCK_FILE)).map_err(|e| match e {
            lock::LockError::Held { .. } => Error::Locked(format!(
                "another meeseeks process is starting a run in {} right now ({e})",
                self.root.display()
            )),
            other => other.into(),
        })
    }

    /// Takes the lock of run `id` for `resume`, `cleanup` or `--abandon`: exit 3 while a live
    /// process holds it. Unless `others_unfinished_ok`, also refuses while another run is
    /// unfinished: a run made live again must be the only one. Both checks happen under the
    /// state directory's lock, so a `run` starting at the same moment cannot slip in between.
    pub fn acquire_run(&self, id: &str, others_unfinished_ok: bool) -> Result<(RunDir, RunLock)> {
        let run = self.open_run(id)?;
        let _guard = self.lock_state()?;
        let lock = RunLock::acquire(&run.path).map_err(|e| match e {
            lock::LockError::Held { .. } => Error::Locked(format!(
                "run {} is live, held by another process ({e})",
                run.id
            )),
            other => other.into(),
        })?;
        if !others_unfinished_ok {
            let others: Vec<RunSummary> = self
                .unfinished_runs()?
                .into_iter()
                .filter(|r| r.run_id != run.id)
                .collect();
            if !others.is_empty() {
                return Err(Error::Locked(unfinished_message(&others)));
            }
        }
        Ok((run, lock))
    }

    /// Run ids, oldest first.
    pub fn list_runs(&self) -> Result<Vec<String>> {
        let dir = self.runs_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()), e)),
        };
        let mut ids = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if valid_run_id(&name) && ent.path().join(META_FILE).is_file() {
                ids.push(name);
            }
        }
        // Ids carry the time to the second; within one second, order by the recorded start.
        let mut keyed: Vec<(String, Option<jiff::Timestamp>, String)> =
            Vec::with_capacity(ids.len());
        ids.sort();
        for (i, id) in ids.iter().enumerate() {
            let prefix = id.split('-').next().unwrap_or(id).to_string();
            let tie = |j: usize| {
                ids.get(j)
                    .is_some_and(|o| o.split('-').next() == Some(prefix.as_str()))
            };
            let created = if tie(i + 1) || (i > 0 && tie(i - 1)) {
                self.run_dir(id).read_meta().ok().map(|m| m.created_at)
            } else {
                None
            };
            keyed.push((prefix, created, id.clone()));
        }
        keyed.sort();
        Ok(keyed.into_iter().map(|(_, _, id)| id).collect())
    }

    /// The most recent run, if any.
    pub fn latest(&self) -> Result<Option<RunDir>> {
        Ok(self.list_runs()?.pop().map(|id| self.run_dir(&id)))
    }

    /// The run with this id, or the only run whose id starts with it. An unknown id is an
    /// error that lists the closest ids.
    pub fn open_run(&self, id: &str) -> Result<RunDir> {
        let ids = self.list_runs()?;
        let found = crate::store::pick_run(&ids, Some(id), &self.root.display().to_string())?;
        Ok(self.run_dir(&found))
    }

    /// `RUN_ID` given → that run; none → the latest.
    pub fn resolve(&self, id: Option<&str>) -> Result<RunDir> {
        match id {
            Some(id) => self.open_run(id),
            None => self
                .latest()?
                .ok_or_else(|| Error::Usage(format!("no runs in {}", self.root.display()))),
        }
    }

    /// Summaries of every run, oldest first (`meeseeks runs`). A run whose journal cannot be
    /// read is listed with its error as a warning rather than hiding the others.
    pub fn summaries(&self) -> Result<(Vec<RunSummary>, Vec<String>)> {
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for id in self.list_runs()? {
            match self.run_dir(&id).load_state() {
                Ok(st) => out.push(RunSummary::from_state(&st)),
                Err(e) => warnings.push(format!("run {id}: {e}")),
            }
        }
        Ok((out, warnings))
    }

    /// Runs that are neither finished nor abandoned (live, or interrupted/crashed). A run
    /// whose journal is unreadable counts as unfinished: better to refuse than to start a
    /// second failover on top of one we cannot read.
    pub fn unfinished_runs(&self) -> Result<Vec<RunSummary>> {
        let mut out = Vec::new();
        for id in self.list_runs()? {
            match self.run_dir(&id).load_state() {
                Ok(st) => {
                    let s = RunSummary::from_state(&st);
                    if s.is_unfinished() {
                        out.push(s);
                    }
                }
                Err(e) => out.push(RunSummary {
                    run_id: id.clone(),
                    mode: None,
                    state: RunStatus::Interrupted,
                    started_at: None,
                    last_at: None,
                    services: 0,
                    recovered: 0,
                    failed: 0,
                    blocked: 0,
                    breaches: 0,
                    cleanup: Default::default(),
                    holder: None,
                    problem: Some(e.to_string()),
                }),
            }
        }
        Ok(out)
    }
}

/// The message `run` prints when it refuses to start.
pub fn unfinished_message(runs: &[RunSummary]) -> String {
    let mut s = String::from("an unfinished run exists; two failovers must not run at once:\n");
    for r in runs {
        if let Some(p) = &r.problem {
            s.push_str(&format!(
                "  {} cannot be read: {p}\n  inspect it, then move its directory out of runs/ \
                 to start a new run\n",
                r.run_id
            ));
            continue;
        }
        let what = match &r.holder {
            Some(h) => format!("running (pid {} on {})", h.pid, h.host),
            None => "interrupted".to_string(),
        };
        s.push_str(&format!(
            "  {} {} {what}, {}/{} services recovered\n",
            r.run_id,
            r.mode.map(|m| m.as_str()).unwrap_or("?"),
            r.recovered,
            r.services
        ));
    }
    if let Some(r) = runs
        .iter()
        .find(|r| r.holder.is_none() && r.problem.is_none())
    {
        s.push_str(&format!(
            "resume it with `meeseeks resume {}`, or give it up with `meeseeks run --abandon {}`",
            r.run_id, r.run_id
        ));
    } else {
        s.push_str("wait for it to finish, or follow it with `meeseeks status`");
    }
    s
}
