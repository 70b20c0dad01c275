//! The state directory: where runs live, how they are named and found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lock::{self, LockInfo, RunLock};
use super::reader::{Replay, read_journal};
use super::state::{RunState, RunStatus};
use super::writer::JOURNAL_FILE;
use crate::error::{Error, Result};
use crate::model::Mode;

pub const RUNS_DIR: &str = "runs";
pub const META_FILE: &str = "meta.json";
/// Held (briefly) by `begin_run`, so that two `run` commands cannot both see "no unfinished
/// run" and start two concurrent failovers.
const STATE_LOCK_FILE: &str = "lock";

/// A run id: UTC time to the second, compact, then 4 hex characters from pid, clock and a
/// per-process random key. Ids sort by time (to the second; `list_runs` breaks ties).
pub fn new_run_id(now: jiff::Timestamp) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i128(now.as_nanosecond());
    h.write_i128(jiff::Timestamp::now().as_nanosecond());
    format!(
        "{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        (h.finish() & 0xffff) as u16
    )
}

/// One input file's digest, recorded so `resume` can say which files changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputDigest {
    pub path: String,
    pub sha256: String,
}

/// sha256 over the input files (graph.toml, playbooks): paths sorted, each path and content
/// length-prefixed so that moving bytes between files changes the hash.
pub fn input_hash<P: AsRef<Path>, B: AsRef<[u8]>>(files: &[(P, B)]) -> String {
    let mut sorted: Vec<(String, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_ref().to_string_lossy().into_owned(), b.as_ref()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (p, b) in sorted {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    hex(&h.finalize())
}

/// Per-file digests, sorted by path.
pub fn input_digests<P: AsRef<Path>, B: AsRef<[u8]>>(files: &[(P, B)]) -> Vec<InputDigest> {
    let mut v: Vec<InputDigest> = files
        .iter()
        .map(|(p, b)| InputDigest {
            path: p.as_ref().to_string_lossy().into_owned(),
            sha256: hex(&Sha256::digest(b.as_ref())),
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What a run was started with (`meta.json`, 0600). Written once, never changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunMeta {
    pub run_id: String,
    pub mode: Mode,
    /// DR directory (absolute).
    pub dir: String,
    pub created_at: jiff::Timestamp,
    /// RTO clock start.
    pub declared_at: jiff::Timestamp,
    #[serde(default)]
    pub dry_run: bool,
    /// CLI options (parallel, eager, scope, on_failure, vars...); secrets never appear here
    /// because they are read from the environment at render time.
    #[serde(default)]
    pub options: serde_json::Value,
    pub input_hash: String,
    #[serde(default)]
    pub inputs: Vec<InputDigest>,
    #[serde(default)]
    pub version: String,
}

impl RunMeta {
    /// Meta of a new run; `files` are the input files (path relative to the DR directory,
    /// contents) whose hashes let `resume` say what changed.
    pub fn new<P: AsRef<Path>, B: AsRef<[u8]>>(
        run_id: &str,
        mode: Mode,
        dir: &Path,
        declared_at: jiff::Timestamp,
        dry_run: bool,
        options: serde_json::Value,
        files: &[(P, B)],
    ) -> RunMeta {
        RunMeta {
            run_id: run_id.to_string(),
            mode,
            dir: dir.display().to_string(),
            created_at: jiff::Timestamp::now(),
            declared_at,
            dry_run,
            options,
            input_hash: input_hash(files),
            inputs: input_digests(files),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Human-readable differences between the recorded inputs and `now` (for `run.resumed`).
    pub fn input_changes(&self, now: &[InputDigest]) -> Vec<String> {
        let old: std::collections::HashMap<&str, &str> = self
            .inputs
            .iter()
            .map(|d| (d.path.as_str(), d.sha256.as_str()))
            .collect();
        let new: std::collections::HashMap<&str, &str> = now
            .iter()
            .map(|d| (d.path.as_str(), d.sha256.as_str()))
            .collect();
        let mut out = Vec::new();
        for d in now {
            match old.get(d.path.as_str()) {
                None => out.push(format!("{} added", d.path)),
                Some(h) if *h != d.sha256 => out.push(format!("{} changed", d.path)),
                _ => {}
            }
        }
        for d in &self.inputs {
            if !new.contains_key(d.path.as_str()) {
                out.push(format!("{} removed", d.path));
            }
        }
        out.sort();
        out
    }
}

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

    /// The journal's records (empty if the run never got as far as creating it).
    pub fn replay(&self) -> Result<Replay> {
        let p = self.journal_path();
        if !p.exists() {
            return Ok(Replay {
                warnings: vec![format!("{}: no journal yet", p.display())],
                ..Replay::default()
            });
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
}

/// What `runs` lists, and what `run` reports when it refuses to start.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub mode: Option<Mode>,
    pub state: RunStatus,
    pub started_at: Option<jiff::Timestamp>,
    pub last_at: Option<jiff::Timestamp>,
    pub services: usize,
    pub recovered: usize,
    pub failed: usize,
    pub blocked: usize,
    pub breaches: usize,
    /// The live process holding the run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<LockInfo>,
    /// Why the run could not be read (its journal is damaged), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl RunSummary {
    pub fn from_state(st: &RunState) -> RunSummary {
        let count = |s| st.services.iter().filter(|x| x.status == s).count();
        use super::state::ServiceStatus as S;
        RunSummary {
            run_id: st.run_id.clone(),
            mode: st.mode,
            state: st.state,
            started_at: st.first_at,
            last_at: st.last_at,
            services: st.services.len(),
            recovered: count(S::Recovered),
            failed: count(S::Failed),
            blocked: count(S::Blocked),
            breaches: st.breaches.len(),
            holder: st.holder.clone(),
            problem: None,
        }
    }

    /// Neither finished nor abandoned, or held by a live process (a failed run being
    /// resumed): blocks a new `run`.
    pub fn is_unfinished(&self) -> bool {
        matches!(self.state, RunStatus::Running | RunStatus::Interrupted) || self.holder.is_some()
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
        if ids.iter().any(|x| x == id) {
            return Ok(self.run_dir(id));
        }
        let prefixed: Vec<&String> = ids.iter().filter(|x| x.starts_with(id)).collect();
        if prefixed.len() == 1 && !id.is_empty() {
            return Ok(self.run_dir(prefixed[0]));
        }
        let closest = crate::suggest::ranked(id, ids.iter().map(String::as_str), 3);
        let hint = if prefixed.len() > 1 {
            format!(
                "; `{id}` matches {} runs, give more of the id",
                prefixed.len()
            )
        } else if closest.is_empty() {
            "; there are no runs yet".to_string()
        } else {
            format!("; closest: {}", closest.join(", "))
        };
        Err(Error::Usage(format!(
            "unknown run `{id}` in {}{hint}",
            self.root.display()
        )))
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

/// Run ids are file names: no separators, no dot-files, nothing exotic.
fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// What `resume` starts from: the run's lock held, its journal open for appending (torn tail
/// cut), the replayed state and what the run was started with.
pub struct Resumed {
    pub run: RunDir,
    pub lock: RunLock,
    pub journal: super::writer::JournalHandle,
    pub state: RunState,
    pub meta: RunMeta,
}

impl StateDir {
    /// Opens a run for `resume` (default: the latest run). Refused with exit 3 while another
    /// process holds it; an error for a run that succeeded or was abandoned. Needs a tokio
    /// runtime (starts the journal writer). The caller then journals `run.resumed` with
    /// `meta.input_changes(..)`.
    pub fn resume_run(&self, id: Option<&str>, masker: crate::mask::Masker) -> Result<Resumed> {
        let run = self.resolve(id)?;
        let lock = RunLock::acquire(&run.path).map_err(|e| match e {
            lock::LockError::Held { .. } => {
                Error::Locked(format!("cannot resume run {}: it is live ({e})", run.id))
            }
            other => other.into(),
        })?;
        let meta = run.read_meta()?;
        let (journal, replay) = super::writer::JournalWriter::append_existing(&run.path, masker)?;
        let mut state = RunState::fold(&replay.records);
        if state.run_id.is_empty() {
            state.run_id = run.id.clone();
        }
        state.warnings.extend(replay.warnings);
        match state.state {
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
                    state
                        .abandoned_by
                        .as_ref()
                        .map(|b| format!(" by {b}"))
                        .unwrap_or_default()
                )));
            }
            _ => {}
        }
        Ok(Resumed {
            run,
            lock,
            journal,
            state,
            meta,
        })
    }
}
