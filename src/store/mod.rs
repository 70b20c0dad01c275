//! Where runs live: one interface over two implementations — files under `DIR/.meeseeks`
//! (the embedded default, [`file`]) and etcd (HA across sites) — so that nothing above it
//! knows which one it has. A store keeps, per run, its `RunMeta` (what it was started with),
//! its journal (append-only records, appended only by the holder of the run's lock, fenced),
//! its lock (a file lock or a lease, naming its holder) and the approvals dropped for its
//! manual steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::events::{ApprovalSource, Event, Record};
use crate::mask::Masker;
use crate::model::Mode;
use crate::runconfig::RunConfig;
use crate::runstate::{LockInfo, RunState, RunSummary};
use crate::util::hex;

pub mod docs;
pub mod etcd;
pub mod file;
pub mod history;
pub mod journal;

pub use journal::JournalHandle;

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

/// What a run was started with (`meta.json`, 0600). Written once, never changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunMeta {
    pub run_id: String,
    pub mode: Mode,
    /// DR directory, absolute and canonical: any command finds the run's inputs from any
    /// working directory.
    pub dir: String,
    pub created_at: jiff::Timestamp,
    /// RTO clock start.
    pub declared_at: jiff::Timestamp,
    #[serde(default)]
    pub dry_run: bool,
    /// The run's configuration (mode, parallel, eager, scope, on_failure, `--var` values...);
    /// secrets never appear here because they are read from the environment at render time.
    pub config: RunConfig,
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
        config: &RunConfig,
        dir: &Path,
        declared_at: jiff::Timestamp,
        files: &[(P, B)],
    ) -> RunMeta {
        RunMeta {
            run_id: run_id.to_string(),
            mode: config.mode,
            dir: dir.display().to_string(),
            created_at: jiff::Timestamp::now(),
            declared_at,
            dry_run: config.dry_run,
            config: config.clone(),
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

/// Run ids are file names: no separators, no dot-files, nothing exotic.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Picks a run among `ids` (oldest first): `id` itself, or the only run it is a prefix of;
/// none → the latest. An unknown id is an error that lists the closest ids.
pub fn pick_run(ids: &[String], id: Option<&str>, store: &str) -> Result<String> {
    let Some(id) = id else {
        return ids
            .last()
            .cloned()
            .ok_or_else(|| Error::Usage(format!("no runs in {store}")));
    };
    if ids.iter().any(|x| x == id) {
        return Ok(id.to_string());
    }
    let prefixed: Vec<&String> = ids.iter().filter(|x| x.starts_with(id)).collect();
    if prefixed.len() == 1 && !id.is_empty() {
        return Ok(prefixed[0].clone());
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
    Err(Error::Usage(format!("unknown run `{id}` in {store}{hint}")))
}

/// An approval of a manual step, from `meeseeks approve` or `serve`'s Approve button: dropped
/// into the store for the run's holder, which journals `manual.approved` itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub service: String,
    /// The manual step that was waiting when the operator approved.
    pub step: String,
    /// `user@host`, or what `--by` said.
    pub by: String,
    pub at: jiff::Timestamp,
}

/// Where a store is: `--store URL`, env `MEESEEKS_STORE`, `[state] store = "URL"` in
/// graph.toml, else the file store in `DIR/.meeseeks` (or `--state-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    File(PathBuf),
    Etcd(etcd::EtcdSpec),
}

impl StoreSpec {
    /// This host's directory for the store: the state directory itself, or where an etcd
    /// store keeps local files (stand-ins' pidfiles and logs).
    pub fn local(&self) -> &Path {
        match self {
            StoreSpec::File(p) => p,
            StoreSpec::Etcd(e) => &e.local,
        }
    }

    /// Parses a store URL: a path (or `file://PATH`) for the file store, or
    /// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=DURATION]`. `local` is where runs of a
    /// remote store keep their local files on this host (`DIR/.meeseeks`).
    pub fn parse(url: &str, local: PathBuf) -> Result<StoreSpec> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(StoreSpec::File(PathBuf::from(path)));
        }
        if url.starts_with("etcd://") {
            return Ok(StoreSpec::Etcd(etcd::EtcdSpec::parse(url, local)?));
        }
        if url.contains("://") {
            return Err(Error::Usage(format!(
                "unknown store `{url}`: expected a state directory path or etcd://HOST:PORT[,HOST:PORT...]/PREFIX"
            )));
        }
        Ok(StoreSpec::File(PathBuf::from(url)))
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::File(p) => write!(f, "{}", p.display()),
            StoreSpec::Etcd(e) => write!(f, "{e}"),
        }
    }
}

/// A store of runs. See the module documentation.
#[derive(Debug, Clone)]
pub enum Store {
    File(file::StateDir),
    Etcd(Box<etcd::EtcdStore>),
}

impl Store {
    /// Opens the store, creating it when `create` (commands that start runs); read-only
    /// commands never create anything.
    pub async fn open(spec: &StoreSpec, create: bool) -> Result<Store> {
        match spec {
            StoreSpec::File(p) => Ok(Store::File(if create {
                file::StateDir::open(p)?
            } else {
                file::StateDir::open_existing(p)?
            })),
            StoreSpec::Etcd(e) => Ok(Store::Etcd(Box::new(etcd::EtcdStore::connect(e).await?))),
        }
    }

    /// Where a run keeps local files on this host (stand-ins' pidfiles and logs rendered as
    /// `{{ run_dir }}`): absolute.
    pub fn local_run_dir(&self, id: &str) -> PathBuf {
        match self {
            Store::File(sd) => sd.run_dir(id).path,
            Store::Etcd(e) => e.local_run_dir(id),
        }
    }

    /// What to call the store in messages.
    pub fn describe(&self) -> String {
        match self {
            Store::File(sd) => sd.root().display().to_string(),
            Store::Etcd(e) => e.spec().to_string(),
        }
    }

    /// Run ids, oldest first.
    pub async fn list(&self) -> Result<Vec<String>> {
        match self {
            Store::File(sd) => sd.list_runs(),
            Store::Etcd(e) => e.list().await,
        }
    }

    /// `RUN_ID` (or a unique prefix) → that run; none → the latest.
    pub async fn resolve(&self, id: Option<&str>) -> Result<String> {
        match self {
            Store::File(sd) => Ok(sd.resolve(id)?.id),
            Store::Etcd(e) => e.resolve(id).await,
        }
    }

    pub async fn meta(&self, id: &str) -> Result<RunMeta> {
        match self {
            Store::File(sd) => sd.run_dir(id).read_meta(),
            Store::Etcd(e) => e.meta(id).await,
        }
    }

    /// The run's state for readers that do not hold its lock: the fold of its journal plus
    /// the lock probe that tells a live run from one whose process died.
    pub async fn state(&self, id: &str) -> Result<RunState> {
        match self {
            Store::File(sd) => sd.run_dir(id).load_state(),
            Store::Etcd(e) => e.state(id).await,
        }
    }

    /// Summaries of every run, oldest first; runs that cannot be read become warnings.
    pub async fn summaries(&self) -> Result<(Vec<RunSummary>, Vec<String>)> {
        match self {
            Store::File(sd) => sd.summaries(),
            Store::Etcd(e) => e.summaries().await,
        }
    }

    /// Runs neither finished nor abandoned (live, interrupted or crashed).
    pub async fn unfinished(&self) -> Result<Vec<RunSummary>> {
        match self {
            Store::File(sd) => sd.unfinished_runs(),
            Store::Etcd(e) => e.unfinished().await,
        }
    }

    /// Starts a run: refuses (exit 3) while an unfinished run exists, else creates it and takes
    /// its lock, atomically with respect to other runners of this store.
    pub async fn begin(&self, meta: &RunMeta) -> Result<Lease> {
        match self {
            Store::File(sd) => {
                let (run, lock) = sd.begin_run(meta)?;
                Ok(Lease {
                    id: run.id.clone(),
                    inner: LeaseInner::File { run, lock },
                })
            }
            Store::Etcd(e) => {
                let l = e.begin(meta).await?;
                Ok(Lease {
                    id: l.id.clone(),
                    inner: LeaseInner::Etcd(Box::new(l)),
                })
            }
        }
    }

    /// Takes the lock of an existing run (resume, cleanup, abandon): exit 3 while another
    /// process holds it, unless `wait` (then it waits until the holder is gone: a standby
    /// runner taking over). With `others_unfinished_ok = false`, also refuses while another
    /// run is unfinished (a run made live again must be the only one).
    pub async fn acquire(&self, id: &str, others_unfinished_ok: bool, wait: bool) -> Result<Lease> {
        match self {
            Store::File(sd) => loop {
                match sd.acquire_run(id, others_unfinished_ok) {
                    Ok((run, lock)) => {
                        return Ok(Lease {
                            id: run.id.clone(),
                            inner: LeaseInner::File { run, lock },
                        });
                    }
                    Err(Error::Locked(m)) if wait && m.contains(" is live") => {
                        // A file lock goes with its process: poll until it is gone.
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(e),
                }
            },
            Store::Etcd(e) => {
                let l = e.acquire(id, others_unfinished_ok, wait).await?;
                Ok(Lease {
                    id: l.id.clone(),
                    inner: LeaseInner::Etcd(Box::new(l)),
                })
            }
        }
    }

    /// Approves the manual step `service` waits on in run `id` (see `file::RunDir::approve`).
    pub async fn approve(
        &self,
        id: &str,
        service: &str,
        step: Option<&str>,
        by: Option<&str>,
    ) -> Result<Approval> {
        match self {
            Store::File(sd) => sd.run_dir(id).approve(service, step, by),
            Store::Etcd(e) => e.approve(id, service, step, by).await,
        }
    }
}

/// The lock of one run, held: only its holder appends to the run's journal. Released on drop.
pub struct Lease {
    pub id: String,
    inner: LeaseInner,
}

enum LeaseInner {
    File {
        run: file::RunDir,
        lock: file::RunLock,
    },
    Etcd(Box<etcd::EtcdLease>),
}

impl Lease {
    /// Who holds it: this process.
    pub fn holder(&self) -> LockInfo {
        match &self.inner {
            LeaseInner::File { lock, .. } => lock.info().clone(),
            LeaseInner::Etcd(l) => l.holder(),
        }
    }

    /// The run's local directory (see [`Store::local_run_dir`]).
    pub fn run_dir(&self) -> PathBuf {
        match &self.inner {
            LeaseInner::File { run, .. } => run.path.clone(),
            LeaseInner::Etcd(l) => l.run_dir(),
        }
    }

    pub async fn meta(&self) -> Result<RunMeta> {
        match &self.inner {
            LeaseInner::File { run, .. } => run.read_meta(),
            LeaseInner::Etcd(l) => l.meta().await,
        }
    }

    /// The run's state as its holder sees it: the fold of its journal, no liveness probe.
    pub async fn state(&self) -> Result<RunState> {
        match &self.inner {
            LeaseInner::File { run, .. } => run.load_state_locked(),
            LeaseInner::Etcd(l) => l.state().await,
        }
    }

    /// Opens the journal for appending (numbering continues after the last record; a torn
    /// tail is cut first). Needs a tokio runtime: starts the group-commit writer task.
    pub async fn journal(&self, masker: Masker) -> Result<JournalHandle> {
        match &self.inner {
            LeaseInner::File { run, .. } => {
                let (journal, replay) = file::JournalWriter::append_existing(&run.path, masker)?;
                for w in replay.warnings {
                    tracing::warn!("{w}");
                }
                Ok(journal)
            }
            LeaseInner::Etcd(l) => l.journal(masker).await,
        }
    }

    /// Approvals dropped for this run's manual steps (`meeseeks approve`, `serve`). Needs a
    /// tokio runtime (the etcd store watches for them).
    pub async fn approvals(&self) -> Arc<dyn ApprovalSource> {
        match &self.inner {
            LeaseInner::File { run, .. } => Arc::new(file::DropBoxApprovals {
                run_dir: run.path.clone(),
            }),
            LeaseInner::Etcd(l) => l.approvals().await,
        }
    }

    /// Appends one event outside a runner (`run --abandon`), durably.
    pub async fn append(&self, event: Event) -> Result<Record> {
        match &self.inner {
            LeaseInner::File { run, lock } => {
                file::writer::append_sync(&run.path, lock, event, &Masker::new())
            }
            LeaseInner::Etcd(l) => l.append(event).await,
        }
    }

    /// Gives the lock up now (a file lock goes with the file; an etcd lease is revoked, so a
    /// standby runner need not wait for its TTL).
    pub async fn release(self) {
        match self.inner {
            LeaseInner::File { .. } => {}
            LeaseInner::Etcd(l) => (*l).release().await,
        }
    }
}

/// The manual step `service` waits on in run `id` (and, when given, only if it is `step`):
/// what `approve` checks before dropping an approval. Errors: unknown service (with a
/// suggestion), nothing waiting, another step waiting, a run that is not live.
pub fn waiting_step(st: &RunState, id: &str, service: &str, step: Option<&str>) -> Result<String> {
    use crate::runstate::{ServiceStatus, StepStatus};
    let Some(svc) = st.service(service) else {
        let names = st.services.iter().map(|s| s.name.as_str());
        return Err(Error::UnknownService {
            name: service.to_string(),
            suggestion: crate::suggest::closest(service, names).map(str::to_string),
        });
    };
    let waiting = svc
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Waiting)
        .filter(|_| svc.status == ServiceStatus::Waiting);
    let Some(waiting) = waiting else {
        return Err(Error::Usage(format!(
            "service `{service}` of run {id} has no manual step waiting for approval (it is {})",
            svc.status.as_str()
        )));
    };
    if let Some(step) = step
        && step != waiting.name
    {
        return Err(Error::Usage(format!(
            "service `{service}` of run {id} waits on step `{}`, not `{step}`",
            waiting.name
        )));
    }
    if st.holder.is_none() {
        return Err(Error::Usage(format!(
            "run {id} is {}: no runner is waiting for this approval; `meeseeks resume {id}` will \
             ask again",
            st.state.as_str()
        )));
    }
    Ok(waiting.name.clone())
}
