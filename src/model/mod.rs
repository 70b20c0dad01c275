//! The model: plain data loaded from `graph.toml` and `playbooks/*.toml`.
//!
//! No I/O and no async here. Template strings are kept unrendered: they are checked at load
//! time (see `load`) and rendered with real values only at execution time (see `template`).
//! Services are stored sorted by name and addressed by index (`SvcId`), so that every graph
//! algorithm works on dense integer ids and stays linear in the size of the graph.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod duration;
pub use duration::fmt_duration;

/// Index of a service in `Model::services` (sorted by name).
pub type SvcId = usize;

/// A template variable value (from `[vars]` or `--var`).
pub type VarValue = serde_json::Value;

#[derive(Debug, Clone)]
pub struct Model {
    /// The DR directory the model was loaded from.
    pub dir: PathBuf,
    /// The graph files read, relative to `dir`: graph.toml first, then its fragments
    /// (`include`) in load order. Inputs of a run, like the playbooks.
    pub files: Vec<PathBuf>,
    pub defaults: Defaults,
    pub vars: BTreeMap<String, VarValue>,
    pub notify: Vec<Notify>,
    /// `[state] store` in graph.toml: where this directory's runs live, unless `--store`,
    /// `MEESEEKS_STORE` or `--state-dir` say otherwise. A path is relative to `dir`.
    pub store: Option<String>,
    /// Sorted by name, each name once: a service's id is its position, found by name with a
    /// binary search ([`Model::id`]). (A hash map of the names cloned every name: ~10 % of
    /// loading a 100 000-service graph, for a handful of lookups by most commands.)
    pub services: Vec<Service>,
    /// Essential dependents (reverse of `depends_on`), sorted by id.
    pub dependents: Vec<Vec<SvcId>>,
    /// Optional dependents (reverse of `soft_depends_on`), sorted by id.
    pub soft_dependents: Vec<Vec<SvcId>>,
    /// The files the loader read, when asked to keep them (`LoadOptions::keep_sources`).
    pub sources: Sources,
}

/// The bytes of a file the loader read.
#[derive(Clone)]
pub struct Source(pub std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>);

impl AsRef<[u8]> for Source {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// The files the loader read (graph, fragments, playbooks, local templates), by absolute
/// path: a run hashes its inputs from these, the bytes it actually loaded, rather than
/// reading every file a second time (2 001 files for a 2 000-service run).
#[derive(Clone, Default)]
pub struct Sources(pub HashMap<PathBuf, Source>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sources({} files)", self.0.len())
    }
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub rto: Duration,
    pub parallel: usize,
    pub estimate: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            rto: Duration::from_secs(3600),
            parallel: 8,
            estimate: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    #[default]
    Json,
    Slack,
}

#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// May be a template (`{{ secret.HOOK_URL }}`, `{{ env.X }}`, graph `[vars]`): rendered at
    /// send time, secrets masked wherever the URL could be shown.
    pub url: String,
    /// Event names (`run.started`, ...); empty means every event.
    pub events: Vec<String>,
    pub format: NotifyFormat,
    /// Extra request headers (templates, like `url`), e.g. `Authorization`.
    pub headers: std::collections::BTreeMap<String, String>,
    /// 1-based line of the `[[notify]]` entry in graph.toml.
    pub line: u32,
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub schedule: Duration,
    pub retention: Option<Duration>,
    /// A read-only shell command (run with `/bin/sh -c`) printing the time of the last
    /// backup (RFC 3339).
    pub check: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub tier: u32,
    /// Effective RTO (the service's own, else `defaults.rto`).
    pub rto: Duration,
    pub rpo: Option<Duration>,
    pub stateful: bool,
    pub backup: Option<Backup>,
    pub owner: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Essential dependencies, sorted by id, unknown names dropped (reported by the loader).
    pub depends_on: Vec<SvcId>,
    /// Optional dependencies, sorted by id.
    pub soft_depends_on: Vec<SvcId>,
    pub watch: bool,
    /// Boxed: most of a service's size otherwise, and a 100 000-service graph without
    /// playbooks would carry 20 MB of empty ones.
    pub playbook: Option<Box<Playbook>>,
    /// The file that defines the service: an index in `Model::files` (0: graph.toml).
    pub file: usize,
    /// 1-based line of the `[services.NAME]` header in that file.
    pub line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Failover,
    Drill,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Failover => "failover",
            Mode::Drill => "drill",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Playbook {
    pub file: PathBuf,
    pub vars: BTreeMap<String, VarValue>,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    pub rollback: Vec<Step>,
    pub cleanup: Vec<Step>,
    /// Names read through `{{ secret.NAME }}` (their values are masked everywhere).
    pub secrets: std::collections::BTreeSet<String>,
    /// Names read through `{{ env.NAME }}`.
    pub envs: std::collections::BTreeSet<String>,
    /// The DR directory's own template files (`playbooks/_templates/`) this playbook's `uses`
    /// steps expanded: inputs of a run, like the playbook file itself. (Built-in templates
    /// are part of the binary, identified by its version.)
    pub templates: std::collections::BTreeSet<PathBuf>,
    /// `[[preflight]]`: read-only probes telling whether the service can be recovered now.
    pub preflight: Vec<Preflight>,
    /// `[rpo_probe]` (stateful services only): prints the newest replicated timestamp.
    pub rpo_probe: Option<RpoProbe>,
}

/// A `[[preflight]]` entry: a read-only probe, never anything that changes state.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    pub name: String,
    /// Same kinds as a check (`http`'s `expect_status` / `expect_body` are its expectations).
    pub kind: CheckKind,
    /// Bound on the probe.
    pub timeout: Duration,
    /// For `cmd` / `run`: the output must contain this text (an http probe keeps it in its
    /// `HttpSpec`).
    pub expect_body: Option<String>,
    /// For `cmd` / `run`: stdout (its last line), read as a number, must be at most this.
    pub max: Option<f64>,
    /// 1-based line in the playbook file.
    pub line: u32,
}

impl Preflight {
    pub const DEFAULT_TIMEOUT: Duration = Check::PROBE_TIMEOUT;
}

/// `[rpo_probe]`: a read-only command printing the newest replicated timestamp (RFC 3339).
#[derive(Debug, Clone, PartialEq)]
pub struct RpoProbe {
    /// `CheckKind::Run` or `CheckKind::Cmd` only.
    pub kind: CheckKind,
    pub timeout: Duration,
    pub line: u32,
}

impl RpoProbe {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Accepted statuses; empty means any 2xx.
    pub expect_status: Vec<u16>,
    pub expect_body: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Shell command line, run with `/bin/sh -c`.
    Run(String),
    /// argv, no shell.
    Cmd(Vec<String>),
    Http(HttpSpec),
    /// `host:port`; succeeds when a TCP connection is established.
    Tcp(String),
    Wait(Duration),
    /// Prompt shown to the operator.
    Manual(String),
}

impl StepKind {
    pub fn kind_name(&self) -> &'static str {
        match self {
            StepKind::Run(_) => "run",
            StepKind::Cmd(_) => "cmd",
            StepKind::Http(_) => "http",
            StepKind::Tcp(_) => "tcp",
            StepKind::Wait(_) => "wait",
            StepKind::Manual(_) => "manual",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    /// Per-attempt timeout as written; `None` means the executor's default.
    pub timeout: Option<Duration>,
    /// Extra attempts after the first.
    pub retries: u32,
    /// Delay before the first retry, doubled after each failed attempt.
    pub retry_delay: Duration,
    pub estimate: Option<Duration>,
    pub only: Option<Mode>,
    pub optional: bool,
    pub idempotent: bool,
    /// `preflight = false`: `meeseeks preflight` does not probe this step.
    pub preflight: bool,
    /// 1-based line in the playbook file.
    pub line: u32,
    /// `env = { NAME = "template" }`: added to a `run`/`cmd` step's environment. The way to
    /// hand a command a secret: arguments are visible to every user in `ps`, the environment
    /// only to the process's owner.
    pub env: Vec<(String, String)>,
}

impl Step {
    /// Default per-attempt timeout when a step sets none (an SRE never wants an unbounded step).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(5);

    /// The timeout actually applied to one attempt.
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    /// Whether this step runs in `mode`.
    pub fn runs_in(&self, mode: Mode) -> bool {
        self.only.is_none_or(|m| m == mode)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Http(HttpSpec),
    Tcp(String),
    Run(String),
    Cmd(Vec<String>),
}

impl CheckKind {
    pub fn kind_name(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Run(_) => "run",
            CheckKind::Cmd(_) => "cmd",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    /// Time between two polls.
    pub interval: Duration,
    /// Overall time allowed to become healthy.
    pub timeout: Duration,
    /// Consecutive successes needed.
    pub healthy_after: u32,
    /// `preflight = false`: `meeseeks preflight` does not probe this check.
    pub preflight: bool,
    pub line: u32,
}

impl Check {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// Bound on a single probe (one HTTP request, one TCP connect, one command).
    pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The reverse adjacency lists of `services`: (essential dependents, optional dependents) of
/// each service, sorted by id.
pub fn reverse_lists(services: &[Service]) -> (Vec<Vec<SvcId>>, Vec<Vec<SvcId>>) {
    let n = services.len();
    // Count first, so that each list is allocated once at its final size (growing 100 000
    // lists by doubling was ~5% of loading a big graph).
    let mut counts = vec![(0usize, 0usize); n];
    for s in services {
        for &d in &s.depends_on {
            counts[d].0 += 1;
        }
        for &d in &s.soft_depends_on {
            counts[d].1 += 1;
        }
    }
    let mut dependents: Vec<Vec<SvcId>> = counts.iter().map(|c| Vec::with_capacity(c.0)).collect();
    let mut soft: Vec<Vec<SvcId>> = counts.iter().map(|c| Vec::with_capacity(c.1)).collect();
    drop(counts);
    for (i, s) in services.iter().enumerate() {
        for &d in &s.depends_on {
            dependents[d].push(i);
        }
        for &d in &s.soft_depends_on {
            soft[d].push(i);
        }
    }
    (dependents, soft)
}

impl Model {
    pub fn id(&self, name: &str) -> Option<SvcId> {
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
    }

    pub fn name(&self, id: SvcId) -> &str {
        &self.services[id].name
    }

    /// The closest known service name, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        crate::suggest::closest(name, self.services.iter().map(|s| s.name.as_str()))
    }

    /// Looks a service up by name, with a helpful error when it does not exist.
    pub fn lookup(&self, name: &str) -> Result<SvcId, crate::Error> {
        self.id(name).ok_or_else(|| crate::Error::UnknownService {
            name: name.to_string(),
            suggestion: self.suggest(name).map(str::to_string),
        })
    }

    /// Builds the reverse adjacency lists (`dependents`, `soft_dependents`) alone.
    pub fn finish_dependents(&mut self) {
        (self.dependents, self.soft_dependents) = reverse_lists(&self.services);
    }

    /// Assembles a model from services (any order; they are sorted by name). Dependencies are
    /// given by name in `deps` / `soft` maps. For tests and generators.
    pub fn from_parts(
        dir: PathBuf,
        defaults: Defaults,
        mut services: Vec<(Service, Vec<String>, Vec<String>)>,
    ) -> Model {
        services.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let index: HashMap<String, SvcId> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.name.clone(), i))
            .collect();
        let services = services
            .into_iter()
            .map(|(mut s, deps, soft)| {
                let mut d: Vec<SvcId> = deps.iter().filter_map(|n| index.get(n).copied()).collect();
                d.sort_unstable();
                d.dedup();
                let mut o: Vec<SvcId> = soft.iter().filter_map(|n| index.get(n).copied()).collect();
                o.sort_unstable();
                o.dedup();
                s.depends_on = d;
                s.soft_depends_on = o;
                s
            })
            .collect();
        let mut m = Model {
            dir,
            files: Vec::new(),
            defaults,
            vars: BTreeMap::new(),
            notify: Vec::new(),
            store: None,
            services,
            dependents: Vec::new(),
            soft_dependents: Vec::new(),
            sources: Sources::default(),
        };
        m.finish_dependents();
        m
    }
}

impl Service {
    /// A service with defaults, for tests and generators.
    pub fn new(name: impl Into<String>, tier: u32, rto: Duration) -> Service {
        Service {
            name: name.into(),
            tier,
            rto,
            rpo: None,
            stateful: false,
            backup: None,
            owner: None,
            tags: BTreeMap::new(),
            depends_on: Vec::new(),
            soft_depends_on: Vec::new(),
            watch: false,
            playbook: None,
            file: 0,
            line: 0,
        }
    }
}
