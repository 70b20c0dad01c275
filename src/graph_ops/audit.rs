//! `meeseeks audit`: compliance findings on the graph and playbooks (SPEC §6).
//!
//! Every check is one linear pass (or a DP in topological order) over the graph:
//!
//! | id | severity | fires when |
//! |---|---|---|
//! | `stateful-no-backup` | error | `stateful = true` and no `backup` |
//! | `backup-exceeds-rpo` | error | `backup.schedule` > `rpo` (the RPO cannot be met) |
//! | `rto-inversion` | error | RTO < the RTO of a transitive essential dependency |
//! | `rto-unachievable` | error | longest chain of estimated durations ending at it > RTO |
//! | `spof` | error | its loss takes down ≥ `spof_share` of the *other* tier-0 services (and ≥ 2) |
//! | `no-playbook` | warning | no playbook |
//! | `no-health-check` | warning | a playbook with zero checks: "recovered" would mean nothing |
//! | `drill-stale` | warning | has a playbook, no successful drill within `drill_max_age` |
//! | `not-ready` | error | the last recorded `meeseeks preflight` found it not ready (or unknown) |
//! | `preflight-stale` | warning | has a playbook, no recorded preflight within `preflight_max_age` |
//!
//! Errors are targets that contradict each other or cannot be met; warnings are gaps in the
//! preparation. `drill-stale` needs the run history (`DrillHistory`); without it one `info`
//! note says the check was skipped.
//!
//! Complexity: O(V+E) for everything but `spof`, which is O((V+E)·⌈T/256⌉) for T tier-0
//! services (bitsets of 256 tier-0 services per pass, see `spof_counts`); plus the size of the
//! printed chains.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{ReportFormat, chain_names, dur, dur_s, md_cell, secs, table};
use crate::model::{Mode, Model, SvcId};
use crate::plan::{Scope, estimate, topo_order};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

pub const STATEFUL_NO_BACKUP: &str = "stateful-no-backup";
pub const BACKUP_EXCEEDS_RPO: &str = "backup-exceeds-rpo";
pub const RTO_INVERSION: &str = "rto-inversion";
pub const RTO_UNACHIEVABLE: &str = "rto-unachievable";
pub const SPOF: &str = "spof";
pub const NO_PLAYBOOK: &str = "no-playbook";
pub const NO_HEALTH_CHECK: &str = "no-health-check";
pub const DRILL_STALE: &str = "drill-stale";
pub const NOT_READY: &str = "not-ready";
pub const PREFLIGHT_STALE: &str = "preflight-stale";

/// Every finding kind with its severity (the table in the module doc).
pub const KINDS: &[(&str, Severity)] = &[
    (STATEFUL_NO_BACKUP, Severity::Error),
    (BACKUP_EXCEEDS_RPO, Severity::Error),
    (RTO_INVERSION, Severity::Error),
    (RTO_UNACHIEVABLE, Severity::Error),
    (SPOF, Severity::Error),
    (NO_PLAYBOOK, Severity::Warning),
    (NO_HEALTH_CHECK, Severity::Warning),
    (DRILL_STALE, Severity::Warning),
    (NOT_READY, Severity::Error),
    (PREFLIGHT_STALE, Severity::Warning),
];

fn kind_index(id: &str) -> usize {
    KINDS
        .iter()
        .position(|(k, _)| *k == id)
        .unwrap_or(KINDS.len())
}

fn severity_of(id: &str) -> Severity {
    KINDS
        .iter()
        .find(|(k, _)| *k == id)
        .map(|(_, s)| *s)
        .unwrap_or(Severity::Info)
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    /// `None` for a note about the audit itself.
    pub service: Option<String>,
    pub message: String,
    /// The dependency chain behind the finding, from the dependency to the service (or the
    /// affected services, for `spof`); empty when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// One line of supporting detail for humans.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub evidence: String,
    /// Sort key: the service's id (names are id-ordered), `usize::MAX` for notes.
    #[serde(skip)]
    svc: usize,
}

impl Finding {
    /// The line of detail shown under the message: the evidence, else the chain.
    pub fn detail(&self) -> String {
        if self.evidence.is_empty() && !self.chain.is_empty() {
            format!("recovery chain: {}", self.chain.join(" -> "))
        } else {
            self.evidence.clone()
        }
    }
}

/// Last successful drill per service, filled by the caller from the run journals
/// (`journal::history::History::last_drill`; see `cli::graph_ops::drill_history`).
#[derive(Debug, Clone, Default)]
pub struct DrillHistory {
    last_success: HashMap<String, jiff::Timestamp>,
}

impl DrillHistory {
    pub fn new() -> DrillHistory {
        DrillHistory::default()
    }

    /// Records a successful drill of `service` at `at`; the latest one is kept.
    pub fn record(&mut self, service: &str, at: jiff::Timestamp) {
        let e = self.last_success.entry(service.to_string()).or_insert(at);
        if at > *e {
            *e = at;
        }
    }

    pub fn last(&self, service: &str) -> Option<jiff::Timestamp> {
        self.last_success.get(service).copied()
    }
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// `--drill-max-age` (default 90 days).
    pub drill_max_age: Duration,
    /// `--spof-share` (default 0.30).
    pub spof_share: f64,
    /// `--allow ID`: finding kinds accepted (not reported, never fail the audit).
    pub allow: Vec<String>,
    /// The audit's "now", for `drill-stale`.
    pub now: jiff::Timestamp,
    /// Estimates used by `rto-unachievable` (a failover is what the RTO is for).
    pub mode: Mode,
    /// Recorded preflight statuses, for `not-ready` / `preflight-stale`; `None`: no
    /// evaluation was ever recorded, and both are skipped.
    pub preflight: Option<PreflightSeen>,
    /// `--preflight-max-age` (default 24h).
    pub preflight_max_age: Duration,
}

impl AuditOptions {
    pub fn new(now: jiff::Timestamp) -> AuditOptions {
        AuditOptions {
            drill_max_age: Duration::from_secs(90 * 86_400),
            spof_share: 0.30,
            allow: Vec::new(),
            now,
            mode: Mode::Failover,
            preflight: None,
            preflight_max_age: Duration::from_secs(86_400),
        }
    }
}

/// The last recorded preflight of each service: when, its status, and the first reason.
/// Filled by the caller from the state directory (see `cli::preflight::audit_input`).
#[derive(Debug, Clone, Default)]
pub struct PreflightSeen {
    last: HashMap<String, (jiff::Timestamp, String, String)>,
}

impl PreflightSeen {
    pub fn new() -> PreflightSeen {
        PreflightSeen::default()
    }

    /// `status` as people read it (`ready`, `not ready`, `unknown`); `why` empty when ready.
    pub fn record(&mut self, service: &str, at: jiff::Timestamp, status: &str, why: String) {
        self.last
            .insert(service.to_string(), (at, status.to_string(), why));
    }
}

/// `not-ready` and `preflight-stale`, from the recorded preflight history. Services without
/// a playbook are `no-playbook` already.
fn preflight_findings(model: &Model, opts: &AuditOptions, sink: &mut Sink) {
    let Some(seen) = &opts.preflight else { return };
    let max_age = opts.preflight_max_age.as_secs() as i64;
    for (id, s) in model.services.iter().enumerate() {
        if s.playbook.is_none() {
            continue;
        }
        let Some((at, status, why)) = seen.last.get(&s.name) else {
            sink.push(
                PREFLIGHT_STALE,
                id,
                "never checked by `meeseeks preflight`".into(),
                Vec::new(),
                String::new(),
            );
            continue;
        };
        let age = (opts.now.as_second() - at.as_second()).max(0);
        let ago = dur(Duration::from_secs(age as u64));
        if status != "ready" {
            sink.push(
                NOT_READY,
                id,
                format!("the last preflight ({ago} ago) found it {status}"),
                Vec::new(),
                why.clone(),
            );
        }
        if age > max_age {
            sink.push(
                PREFLIGHT_STALE,
                id,
                format!(
                    "last preflight {ago} ago (max {})",
                    dur(opts.preflight_max_age)
                ),
                Vec::new(),
                format!("last preflight: {at}"),
            );
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub error: usize,
    pub warning: usize,
    pub info: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub schema: &'static str,
    pub services: usize,
    pub counts: Counts,
    /// Sorted by severity, kind (in `KINDS` order), service.
    pub findings: Vec<Finding>,
    /// Findings left out by `--allow`, per kind.
    pub allowed: BTreeMap<String, usize>,
}

impl AuditReport {
    pub fn has_errors(&self) -> bool {
        self.counts.error > 0
    }

    /// 1 when any error finding remains (SPEC §3), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.has_errors() {
            crate::error::exit::NEGATIVE
        } else {
            crate::error::exit::OK
        }
    }
}

struct Sink<'a> {
    model: &'a Model,
    allow: Vec<bool>,
    findings: Vec<Finding>,
    allowed: BTreeMap<String, usize>,
}

impl Sink<'_> {
    fn allowed(&mut self, id: &'static str) -> bool {
        let k = KINDS.iter().position(|(x, _)| *x == id);
        if k.is_some_and(|k| self.allow[k]) {
            *self.allowed.entry(id.to_string()).or_default() += 1;
            true
        } else {
            false
        }
    }

    fn push(
        &mut self,
        id: &'static str,
        svc: SvcId,
        message: String,
        chain: Vec<String>,
        evidence: String,
    ) {
        if self.allowed(id) {
            return;
        }
        self.findings.push(Finding {
            id,
            severity: severity_of(id),
            service: Some(self.model.name(svc).to_string()),
            message,
            chain,
            evidence,
            svc,
        });
    }
}

pub fn audit(
    model: &Model,
    opts: &AuditOptions,
    drills: Option<&DrillHistory>,
) -> crate::Result<AuditReport> {
    audit_with(model, opts, drills, crate::util::PARALLEL_MIN_SCOPE)
}

/// [`audit`], on two threads from `threads_at` services on (tests force either way).
fn audit_with(
    model: &Model,
    opts: &AuditOptions,
    drills: Option<&DrillHistory>,
    threads_at: usize,
) -> crate::Result<AuditReport> {
    let mut allow = vec![false; KINDS.len()];
    for a in &opts.allow {
        match KINDS.iter().position(|(k, _)| k == a) {
            Some(k) => allow[k] = true,
            None => {
                let hint = crate::util::closest(a, KINDS.iter().map(|(k, _)| *k))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(crate::Error::Usage(format!(
                    "--allow: unknown finding `{a}`{hint}"
                )));
            }
        }
    }
    if !(opts.spof_share > 0.0 && opts.spof_share <= 1.0) {
        return Err(crate::Error::Usage(format!(
            "--spof-share must be in (0, 1], got {}",
            opts.spof_share
        )));
    }
    let new_sink = || Sink {
        model,
        allow: allow.clone(),
        findings: Vec::new(),
        allowed: BTreeMap::new(),
    };
    let scope = Scope::all(model);
    let topo = topo_order(model, &scope);
    // The checks are independent: on a big graph they run in two groups on two threads, and
    // the findings are joined in the order one thread would push them.
    let (mut sink, second) = crate::util::join(
        model.services.len() >= threads_at,
        || {
            let mut sink = new_sink();
            per_service(model, opts, drills, &mut sink);
            preflight_findings(model, opts, &mut sink);
            rto_inversion(model, &topo, &mut sink);
            sink
        },
        || {
            let mut sink = new_sink();
            rto_unachievable(model, &topo, opts.mode, &mut sink);
            spof(model, &topo, opts.spof_share, &mut sink);
            (sink.findings, sink.allowed)
        },
    );
    sink.findings.extend(second.0);
    for (k, n) in second.1 {
        *sink.allowed.entry(k).or_default() += n;
    }
    if drills.is_none() && !sink.allowed(DRILL_STALE) {
        sink.findings.push(Finding {
            id: DRILL_STALE,
            severity: Severity::Info,
            service: None,
            message: "skipped: no run history yet (drill-stale needs journals of past drills)"
                .into(),
            chain: Vec::new(),
            evidence: String::new(),
            svc: usize::MAX,
        });
    }
    let mut findings = sink.findings;
    // Integer keys: 180 000 findings on a generated 100k graph sort in a few milliseconds.
    findings.sort_unstable_by_key(|f| (f.severity, kind_index(f.id), f.svc));
    let mut counts = Counts::default();
    for f in &findings {
        match f.severity {
            Severity::Error => counts.error += 1,
            Severity::Warning => counts.warning += 1,
            Severity::Info => counts.info += 1,
        }
    }
    Ok(AuditReport {
        schema: "meeseeks.audit/v1",
        services: model.services.len(),
        counts,
        findings,
        allowed: sink.allowed,
    })
}

/// The checks that look at one service alone.
fn per_service(model: &Model, opts: &AuditOptions, drills: Option<&DrillHistory>, sink: &mut Sink) {
    let max_age = opts.drill_max_age.as_secs() as i64;
    for (id, s) in model.services.iter().enumerate() {
        if s.stateful && s.backup.is_none() {
            sink.push(
                STATEFUL_NO_BACKUP,
                id,
                "stateful service without a backup".into(),
                Vec::new(),
                String::new(),
            );
        }
        if let (Some(b), Some(rpo)) = (&s.backup, s.rpo)
            && b.schedule > rpo
        {
            sink.push(
                BACKUP_EXCEEDS_RPO,
                id,
                format!(
                    "backups every {} cannot meet its RPO of {}",
                    dur(b.schedule),
                    dur(rpo)
                ),
                Vec::new(),
                String::new(),
            );
        }
        match &s.playbook {
            None => sink.push(
                NO_PLAYBOOK,
                id,
                "no playbook: nothing tells how to recover it".into(),
                Vec::new(),
                format!("expected playbooks/{}.toml", s.name),
            ),
            Some(pb) => {
                if pb.checks.is_empty() {
                    sink.push(
                        NO_HEALTH_CHECK,
                        id,
                        "playbook has no [[checks]]: it counts as recovered without any evidence"
                            .into(),
                        Vec::new(),
                        pb.file.display().to_string(),
                    );
                }
                // Services without a playbook cannot be drilled; `no-playbook` covers them.
                if let Some(h) = drills {
                    match h.last(&s.name) {
                        None => sink.push(
                            DRILL_STALE,
                            id,
                            "never successfully drilled".into(),
                            Vec::new(),
                            String::new(),
                        ),
                        Some(t) => {
                            let age = opts.now.as_second() - t.as_second();
                            if age > max_age {
                                sink.push(
                                    DRILL_STALE,
                                    id,
                                    format!(
                                        "last successful drill {} ago (max {})",
                                        dur(Duration::from_secs(age as u64)),
                                        dur(opts.drill_max_age)
                                    ),
                                    Vec::new(),
                                    format!("last drill: {t}"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Follows argmax pointers from `id` to the service `target`, returning the chain from the
/// dependency to `id` (dependency first, like a recovery order).
fn follow(id: SvcId, target: SvcId, via: &[SvcId], stop_at_target: bool) -> Vec<SvcId> {
    let mut ids = vec![id];
    let mut cur = id;
    while via[cur] != usize::MAX && !(stop_at_target && cur == target) {
        cur = via[cur];
        ids.push(cur);
    }
    ids.reverse();
    ids
}

/// For each service, the largest RTO among its transitive essential dependencies, by one DP in
/// topological order (max is decomposable over dependencies), keeping the direct dependency it
/// came through (`via`) and the service responsible (`who`) to print the chain.
fn rto_inversion(model: &Model, topo: &[SvcId], sink: &mut Sink) {
    let n = model.services.len();
    let mut best = vec![Duration::ZERO; n];
    let mut who = vec![usize::MAX; n];
    let mut via = vec![usize::MAX; n];
    // RTOs repeat (whole minutes): format each value once, not twice per finding.
    let mut text: HashMap<Duration, String> = HashMap::new();
    let mut fmt = |d: Duration| text.entry(d).or_insert_with(|| dur(d)).clone();
    for &id in topo {
        for &d in &model.services[id].depends_on {
            let own = model.services[d].rto;
            // Prefer the dependency itself on ties: shorter chain.
            let (v, w) = if own >= best[d] {
                (own, d)
            } else {
                (best[d], who[d])
            };
            if who[id] == usize::MAX || v > best[id] {
                best[id] = v;
                who[id] = w;
                via[id] = d;
            }
        }
        let s = &model.services[id];
        if who[id] != usize::MAX && s.rto < best[id] {
            let ids = follow(id, who[id], &via, true);
            sink.push(
                RTO_INVERSION,
                id,
                format!(
                    "RTO {} is shorter than the RTO {} of {}, which it needs",
                    fmt(s.rto),
                    fmt(best[id]),
                    model.name(who[id])
                ),
                chain_names(&ids, model),
                // Rendered from `chain` (see `Finding::detail`): 48 000 inversions in a
                // generated 100k graph must not cost twice the strings.
                String::new(),
            );
        }
    }
}

/// Longest chain of estimated durations ending at each service (its earliest possible ready
/// time with unlimited parallelism), DP in topological order with an argmax pointer.
fn rto_unachievable(model: &Model, topo: &[SvcId], mode: Mode, sink: &mut Sink) {
    let n = model.services.len();
    let mut dur_of = vec![0.0f64; n];
    let mut finish = vec![0.0f64; n];
    let mut via = vec![usize::MAX; n];
    for &id in topo {
        dur_of[id] = estimate(model, id, mode).secs;
        let mut start = 0.0f64;
        for &d in &model.services[id].depends_on {
            if via[id] == usize::MAX || finish[d] > start {
                start = finish[d];
                via[id] = d;
            }
        }
        finish[id] = start + dur_of[id];
        let rto = secs(model.services[id].rto);
        if finish[id] > rto {
            let ids = follow(id, usize::MAX, &via, false);
            let steps: Vec<String> = ids
                .iter()
                .map(|&i| format!("{} ({})", model.name(i), dur_s(dur_of[i])))
                .collect();
            sink.push(
                RTO_UNACHIEVABLE,
                id,
                format!(
                    "its dependency chain alone takes {}, more than its RTO {}",
                    dur_s(finish[id]),
                    dur(model.services[id].rto)
                ),
                chain_names(&ids, model),
                format!("{} = {}", steps.join(" -> "), dur_s(finish[id])),
            );
        }
    }
}

/// Tier-0 services per bitset pass: 8 × 64 bits, one cache line per service.
const SPOF_WORDS: usize = 8;

#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u64; SPOF_WORDS]);

/// For each service X, how many tier-0 services other than X go down when X is lost, i.e. have
/// X among their transitive essential dependencies, plus up to `sample` of them.
///
/// Exact counting is a reachability problem, so a BFS per service would be O(V·(V+E)). Instead,
/// tier-0 services are taken 512 at a time: each service gets a 512-bit set of the tier-0
/// services (of this batch) that depend on it, computed dependents-first as the OR of its
/// essential dependents' sets (and their own bits). Popcounts accumulate across batches.
/// Time O((V+E)·⌈T/512⌉) for T tier-0 services, memory O(V+E); only services that some tier-0
/// service needs take part, in a compact array ordered so that a batch starts at its first
/// tier-0 service (nothing before it can get a bit).
pub fn spof_counts(model: &Model, topo: &[SvcId], sample: usize) -> (Vec<usize>, Vec<Vec<SvcId>>) {
    let n = model.services.len();
    let mut count = vec![0usize; n];
    let mut names: Vec<Vec<SvcId>> = vec![Vec::new(); n];
    let mut relevant = vec![false; n];
    let mut stack: Vec<SvcId> = (0..n).filter(|&i| model.services[i].tier == 0).collect();
    for &t in &stack {
        relevant[t] = true;
    }
    while let Some(id) = stack.pop() {
        for &d in &model.services[id].depends_on {
            if !relevant[d] {
                relevant[d] = true;
                stack.push(d);
            }
        }
    }
    // Dependents first; `pos` is the index in this order.
    let order: Vec<SvcId> = topo
        .iter()
        .rev()
        .copied()
        .filter(|&i| relevant[i])
        .collect();
    let mut pos = vec![u32::MAX; n];
    for (p, &id) in order.iter().enumerate() {
        pos[id] = p as u32;
    }
    // Dependents as compact positions (all smaller than the service's own).
    let mut off = Vec::with_capacity(order.len() + 1);
    let mut adj: Vec<u32> = Vec::new();
    off.push(0usize);
    for &id in &order {
        adj.extend(
            model.dependents[id]
                .iter()
                .filter(|&&t| relevant[t])
                .map(|&t| pos[t]),
        );
        off.push(adj.len());
    }
    let tier0: Vec<usize> = (0..order.len())
        .filter(|&p| model.services[order[p]].tier == 0)
        .collect();
    let mut bits = vec![Line([0; SPOF_WORDS]); order.len()];
    let per_pass = SPOF_WORDS * 64;
    // Positions before a batch's first tier-0 service hold no bit of it: they are not
    // recomputed, only cleared of the previous batch's bits.
    let mut clean_upto = 0;
    for (batch, chunk) in tier0.chunks(per_pass).enumerate() {
        let first = chunk[0];
        for line in &mut bits[clean_upto..first] {
            *line = Line([0; SPOF_WORDS]);
        }
        clean_upto = first;
        let mut next_slot = 0;
        for p in first..order.len() {
            let mut b = [0u64; SPOF_WORDS];
            for &q in &adj[off[p]..off[p + 1]] {
                let x = &bits[q as usize].0;
                for w in 0..SPOF_WORDS {
                    b[w] |= x[w];
                }
            }
            let c: u32 = b.iter().map(|w| w.count_ones()).sum();
            if c > 0 {
                let id = order[p];
                count[id] += c as usize;
                if names[id].len() < sample {
                    'words: for (wi, &w) in b.iter().enumerate() {
                        let mut w = w;
                        while w != 0 {
                            let bit = w.trailing_zeros() as usize;
                            w &= w - 1;
                            let k = batch * per_pass + wi * 64 + bit;
                            names[id].push(order[tier0[k]]);
                            if names[id].len() >= sample {
                                break 'words;
                            }
                        }
                    }
                }
            }
            // Its own bit after counting: X's loss taking X down is not news.
            if next_slot < chunk.len() && chunk[next_slot] == p {
                b[next_slot / 64] |= 1 << (next_slot % 64);
                next_slot += 1;
            }
            bits[p].0 = b;
        }
    }
    (count, names)
}

fn spof(model: &Model, topo: &[SvcId], share: f64, sink: &mut Sink) {
    let total = model.services.iter().filter(|s| s.tier == 0).count();
    if total == 0 {
        return;
    }
    // A loss that takes down a single other service is an ordinary dependency, not a shared
    // point of failure: require at least two.
    let threshold = ((share * total as f64).ceil() as usize).max(2);
    let (count, sample) = spof_counts(model, topo, 5);
    for (id, &c) in count.iter().enumerate() {
        if c >= threshold {
            let mut shown: Vec<&str> = sample[id].iter().map(|&i| model.name(i)).collect();
            shown.sort_unstable();
            let more = if c > shown.len() {
                format!(", … ({} more)", c - shown.len())
            } else {
                String::new()
            };
            sink.push(
                SPOF,
                id,
                format!(
                    "its loss takes down {c} of {total} tier-0 services ({:.0}%)",
                    100.0 * c as f64 / total as f64
                ),
                shown.iter().map(|s| s.to_string()).collect(),
                format!("down with it: {}{more}", shown.join(", ")),
            );
        }
    }
}

/// At most this many findings of one kind in text and Markdown (JSON has them all).
const SHOWN_PER_KIND: usize = 20;

impl AuditReport {
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Json => super::to_json(self),
            ReportFormat::Text => self.text(),
            ReportFormat::Markdown => self.markdown(),
        }
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "audit of {} services: {} error(s), {} warning(s), {} note(s)",
            self.services, self.counts.error, self.counts.warning, self.counts.info
        );
        if !self.allowed.is_empty() {
            let a: Vec<String> = self
                .allowed
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            let _ = write!(s, "; accepted by --allow: {}", a.join(", "));
        }
        s
    }

    /// Findings grouped by kind, at most `SHOWN_PER_KIND` each, with the count left out.
    fn shown(&self) -> Vec<(&Finding, Option<usize>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.findings.len() {
            let id = self.findings[i].id;
            let sev = self.findings[i].severity;
            let j = self.findings[i..]
                .iter()
                .position(|f| f.id != id || f.severity != sev)
                .map_or(self.findings.len(), |p| i + p);
            let group = &self.findings[i..j];
            for (k, f) in group.iter().take(SHOWN_PER_KIND).enumerate() {
                let more = group.len().saturating_sub(SHOWN_PER_KIND);
                let last = k + 1 == group.len().min(SHOWN_PER_KIND);
                out.push((f, (last && more > 0).then_some(more)));
            }
            i = j;
        }
        out
    }

    fn text(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        if self.findings.is_empty() {
            out.push_str("no findings\n");
            return out;
        }
        out.push('\n');
        let mut rows = vec![vec![
            "SEVERITY".to_string(),
            "FINDING".into(),
            "SERVICE".into(),
            "MESSAGE".into(),
        ]];
        for (f, more) in self.shown() {
            rows.push(vec![
                f.severity.as_str().into(),
                f.id.into(),
                f.service.clone().unwrap_or_else(|| "-".into()),
                f.message.clone(),
            ]);
            let detail = f.detail();
            if !detail.is_empty() {
                rows.push(vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("  {detail}"),
                ]);
            }
            if let Some(m) = more {
                rows.push(vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    format!(
                        "… and {m} more {} finding(s) (--format json lists all)",
                        f.id
                    ),
                ]);
            }
        }
        out.push_str(&table(&rows));
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("## Audit\n\n{}\n\n", md_cell(&self.summary()));
        if self.findings.is_empty() {
            out.push_str("No findings.\n");
            return out;
        }
        out.push_str(
            "| severity | finding | service | message | evidence |\n|---|---|---|---|---|\n",
        );
        for (f, more) in self.shown() {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} |",
                f.severity.as_str(),
                f.id,
                md_cell(f.service.as_deref().unwrap_or("")),
                md_cell(&f.message),
                md_cell(&f.detail())
            );
            if let Some(m) = more {
                let _ = writeln!(out, "| | `{}` | | … and {m} more | |", f.id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::{Part, model, pb, playbook, rng, s};
    use crate::model::Backup;

    fn now() -> jiff::Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn run(m: &Model) -> AuditReport {
        audit(m, &AuditOptions::new(now()), Some(&DrillHistory::new())).unwrap()
    }

    /// (id, service) of every finding of kind `id`.
    fn fired(r: &AuditReport, id: &str) -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.id == id)
            .map(|f| f.service.clone().unwrap_or_default())
            .collect()
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn stateful(mut p: Part, backup: Option<u64>, rpo: Option<u64>) -> Part {
        p.0.stateful = true;
        p.0.backup = backup.map(|b| Backup {
            schedule: minutes(b),
            retention: None,
            check: None,
        });
        p.0.rpo = rpo.map(minutes);
        p
    }

    #[test]
    fn stateful_no_backup_and_backup_exceeds_rpo() {
        let m = model(vec![
            pb(stateful(s("bare-db", 1, 60, &[], &[]), None, Some(5)), 1),
            pb(
                stateful(s("slow-backup-db", 1, 60, &[], &[]), Some(60), Some(5)),
                1,
            ),
            pb(stateful(s("good-db", 1, 60, &[], &[]), Some(5), Some(5)), 1),
            pb(
                stateful(s("no-rpo-db", 1, 60, &[], &[]), Some(600), None),
                1,
            ),
            pb(s("stateless", 1, 60, &[], &[]), 1),
        ]);
        let r = run(&m);
        assert_eq!(fired(&r, STATEFUL_NO_BACKUP), ["bare-db"]);
        assert_eq!(fired(&r, BACKUP_EXCEEDS_RPO), ["slow-backup-db"]);
        let f = r
            .findings
            .iter()
            .find(|f| f.id == BACKUP_EXCEEDS_RPO)
            .unwrap();
        assert_eq!(f.message, "backups every 1h cannot meet its RPO of 5m");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn rto_inversion_reports_the_chain_to_the_responsible_dependency() {
        let m = model(vec![
            pb(s("api", 0, 10, &["cache", "queue"], &["slow-soft"]), 1),
            pb(s("queue", 0, 20, &["db"], &[]), 1),
            pb(s("cache", 0, 15, &[], &[]), 1),
            pb(s("db", 0, 60, &[], &[]), 1),
            // Optional dependencies never order recovery: no inversion through them.
            pb(s("slow-soft", 0, 600, &[], &[]), 1),
            // Tighter dependencies than dependents: the normal, healthy case.
            pb(s("web", 0, 120, &["api"], &[]), 1),
        ]);
        let r = run(&m);
        assert_eq!(fired(&r, RTO_INVERSION), ["api", "queue"]);
        let api = r
            .findings
            .iter()
            .find(|f| f.id == RTO_INVERSION && f.service.as_deref() == Some("api"))
            .unwrap();
        assert_eq!(api.chain, ["db", "queue", "api"]);
        assert_eq!(
            api.message,
            "RTO 10m is shorter than the RTO 1h of db, which it needs"
        );
        let q = r
            .findings
            .iter()
            .find(|f| f.id == RTO_INVERSION && f.service.as_deref() == Some("queue"))
            .unwrap();
        assert_eq!(q.chain, ["db", "queue"]);
    }

    #[test]
    fn rto_unachievable_uses_the_longest_estimated_chain() {
        let m = model(vec![
            pb(s("db", 0, 25, &[], &[]), 20),
            pb(s("fast", 0, 25, &[], &[]), 1),
            // 20m (db) + 20m = 40m > 30m.
            pb(s("api", 0, 30, &["fast", "db"], &[]), 20),
            // 40m + 5m = 45m <= 60m.
            pb(s("web", 0, 60, &["api"], &[]), 5),
            // Optional edges do not delay recovery.
            pb(s("side", 0, 10, &[], &["db"]), 5),
        ]);
        let r = run(&m);
        assert_eq!(fired(&r, RTO_UNACHIEVABLE), ["api"]);
        let f = r
            .findings
            .iter()
            .find(|f| f.id == RTO_UNACHIEVABLE)
            .unwrap();
        assert_eq!(f.chain, ["db", "api"]);
        assert_eq!(f.evidence, "db (20m) -> api (20m) = 40m");
        assert!(fired(&r, RTO_INVERSION).is_empty());
    }

    #[test]
    fn spof_counts_other_tier0_services_down() {
        let m = model(vec![
            pb(s("db", 1, 60, &[], &[]), 1),
            pb(s("mid", 1, 60, &["db"], &[]), 1),
            pb(s("a", 0, 60, &["mid"], &[]), 1),
            pb(s("b", 0, 60, &["mid"], &[]), 1),
            pb(s("c", 0, 60, &["db"], &[]), 1),
            pb(s("d", 0, 60, &["lonely"], &[]), 1),
            pb(s("e", 0, 60, &[], &["db"]), 1),
            pb(s("lonely", 1, 60, &[], &[]), 1),
        ]);
        // 5 tier-0 services; 30% → 2 needed. db takes a, b, c (3); mid takes a, b (2);
        // lonely takes only d; e only soft-depends on db.
        let r = run(&m);
        assert_eq!(fired(&r, SPOF), ["db", "mid"]);
        let f = r.findings.iter().find(|f| f.id == SPOF).unwrap();
        assert_eq!(f.chain, ["a", "b", "c"]);
        assert_eq!(
            f.message,
            "its loss takes down 3 of 5 tier-0 services (60%)"
        );
        let mut o = AuditOptions::new(now());
        o.spof_share = 0.6;
        let r = audit(&m, &o, None).unwrap();
        assert_eq!(fired(&r, SPOF), ["db"]);
        o.spof_share = 0.61;
        let r = audit(&m, &o, None).unwrap();
        assert!(fired(&r, SPOF).is_empty());
        o.spof_share = 0.0;
        assert_eq!(audit(&m, &o, None).unwrap_err().exit_code(), 2);
    }

    /// Deterministic pseudo-random DAGs, more than 512 tier-0 services (several bitset
    /// batches), checked against one BFS per service.
    /// Two threads find what one finds, in the same order, on a graph with every kind.
    #[test]
    fn two_threads_audit_what_one_does() {
        let mut rnd = rng(0x2545f4914f6cdd1d);
        let name = |i: usize| format!("s{i:04}");
        let mut parts = Vec::new();
        for i in 0..600 {
            let deps: Vec<String> = (0..rnd(4))
                .filter(|_| i > 0)
                .map(|_| name(rnd(i as u64) as usize))
                .collect();
            let mut p = s(&name(i), rnd(3) as u32, 5 + rnd(120), &[], &[]);
            p.1 = deps;
            if rnd(5) == 0 {
                p = stateful(p, [None, Some(30)][rnd(2) as usize], Some(10));
            }
            if rnd(3) != 0 {
                p = pb(p, 1 + rnd(20));
            }
            parts.push(p);
        }
        let m = model(parts);
        let report = |threads_at| {
            let r = audit_with(&m, &AuditOptions::new(now()), None, threads_at).unwrap();
            (format!("{:?}", r.findings), format!("{:?}", r.allowed))
        };
        let one = report(usize::MAX);
        assert_eq!(one, report(0));
        for kind in ["stateful-no-backup", "rto-inversion", "spof", "no-playbook"] {
            assert!(one.0.contains(&format!("id: \"{kind}\"")), "no {kind}");
        }
    }

    #[test]
    fn spof_counts_match_brute_force() {
        let mut rnd = rng(0x9e3779b97f4a7c15);
        let n = 1400;
        let name = |i: usize| format!("s{i:04}");
        let mut parts = Vec::new();
        for i in 0..n {
            let deps: Vec<String> = (0..rnd(4))
                .filter(|_| i > 0)
                .map(|_| name(rnd(i as u64) as usize))
                .collect();
            let mut p = s(&name(i), (rnd(2)) as u32, 60, &[], &[]);
            p.1 = deps;
            parts.push(p);
        }
        let m = model(parts);
        let topo = topo_order(&m, &Scope::all(&m));
        let (count, sample) = spof_counts(&m, &topo, 3);
        assert!(m.services.iter().filter(|s| s.tier == 0).count() > 512);
        for x in 0..n {
            let mut seen = vec![false; n];
            let mut stack = vec![x];
            seen[x] = true;
            let mut c = 0;
            while let Some(id) = stack.pop() {
                for &t in &m.dependents[id] {
                    if !seen[t] {
                        seen[t] = true;
                        c += usize::from(m.services[t].tier == 0);
                        stack.push(t);
                    }
                }
            }
            assert_eq!(count[x], c, "service {}", m.name(x));
            assert_eq!(sample[x].len(), c.min(3));
            assert!(sample[x].iter().all(|&t| seen[t] && t != x));
        }
    }

    #[test]
    fn playbook_and_health_check_warnings() {
        let mut no_checks = s("no-checks", 1, 60, &[], &[]);
        no_checks.0.playbook = Some(Box::new(playbook(1, 0)));
        let m = model(vec![
            s("no-pb", 1, 60, &[], &[]),
            no_checks,
            pb(s("fine", 1, 60, &[], &[]), 1),
        ]);
        let r = run(&m);
        assert_eq!(fired(&r, NO_PLAYBOOK), ["no-pb"]);
        assert_eq!(fired(&r, NO_HEALTH_CHECK), ["no-checks"]);
        assert_eq!(r.counts.error, 0);
        assert_eq!(r.counts.warning, 4); // + drill-stale for the two playbooks never drilled
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn drill_stale_from_history_or_skipped() {
        let m = model(vec![
            pb(s("fresh", 1, 60, &[], &[]), 1),
            pb(s("old", 1, 60, &[], &[]), 1),
            pb(s("never", 1, 60, &[], &[]), 1),
            s("no-pb", 1, 60, &[], &[]),
        ]);
        let mut h = DrillHistory::new();
        h.record("fresh", "2026-11-01T00:00:00Z".parse().unwrap());
        h.record("old", "2026-01-01T00:00:00Z".parse().unwrap());
        h.record("old", "2025-01-01T00:00:00Z".parse().unwrap()); // older: ignored
        let r = audit(&m, &AuditOptions::new(now()), Some(&h)).unwrap();
        assert_eq!(fired(&r, DRILL_STALE), ["never", "old"]);
        assert!(r.findings.iter().all(|f| f.severity != Severity::Info));
        let mut o = AuditOptions::new(now());
        o.drill_max_age = Duration::from_secs(400 * 86_400);
        assert_eq!(
            fired(&audit(&m, &o, Some(&h)).unwrap(), DRILL_STALE),
            ["never"]
        );

        let r = audit(&m, &AuditOptions::new(now()), None).unwrap();
        let notes: Vec<&Finding> = r.findings.iter().filter(|f| f.id == DRILL_STALE).collect();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].severity, Severity::Info);
        assert_eq!(notes[0].service, None);
    }

    #[test]
    fn allow_accepts_a_kind() {
        let m = model(vec![pb(stateful(s("db", 1, 60, &[], &[]), None, None), 1)]);
        let mut o = AuditOptions::new(now());
        o.allow = vec![STATEFUL_NO_BACKUP.into(), DRILL_STALE.into()];
        let r = audit(&m, &o, None).unwrap();
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.allowed[STATEFUL_NO_BACKUP], 1);
        assert_eq!(r.exit_code(), 0);
        o.allow = vec!["stateful-nobackup".into()];
        let e = audit(&m, &o, None).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `stateful-no-backup`"),
            "{e}"
        );
    }

    #[test]
    fn clean_graph_is_clean() {
        let m = model(vec![
            pb(stateful(s("db", 0, 30, &[], &[]), Some(5), Some(15)), 5),
            pb(s("api", 0, 60, &["db"], &[]), 5),
            pb(s("web", 1, 90, &["api"], &["recs"]), 5),
            pb(s("recs", 2, 240, &[], &[]), 5),
        ]);
        let mut h = DrillHistory::new();
        for n in ["db", "api", "web", "recs"] {
            h.record(n, "2026-11-20T00:00:00Z".parse().unwrap());
        }
        let r = audit(&m, &AuditOptions::new(now()), Some(&h)).unwrap();
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.exit_code(), 0);
        insta::assert_snapshot!(r.render(ReportFormat::Text), @r"
        audit of 4 services: 0 error(s), 0 warning(s), 0 note(s)
        no findings
        ");
    }

    fn messy() -> Model {
        model(vec![
            stateful(s("orders-db", 0, 60, &[], &[]), Some(60), Some(5)),
            pb(s("orders", 0, 30, &["orders-db"], &[]), 20),
            pb(s("payments", 0, 30, &["orders-db"], &[]), 5),
            pb(s("checkout", 0, 20, &["orders", "payments"], &["recs"]), 5),
            pb(stateful(s("sessions", 1, 60, &[], &[]), None, None), 5),
            s("recs", 2, 240, &[], &[]),
        ])
    }

    #[test]
    fn text_snapshot() {
        let r = audit(&messy(), &AuditOptions::new(now()), None).unwrap();
        insta::assert_snapshot!(r.render(ReportFormat::Text));
    }

    #[test]
    fn markdown_and_json() {
        let r = audit(&messy(), &AuditOptions::new(now()), None).unwrap();
        insta::assert_snapshot!(r.render(ReportFormat::Markdown));
        let v: serde_json::Value = serde_json::from_str(&r.render(ReportFormat::Json)).unwrap();
        assert_eq!(v["schema"], "meeseeks.audit/v1");
        let f = &v["findings"][0];
        for k in ["id", "severity", "service", "message"] {
            assert!(f.get(k).is_some(), "{k} missing in {f}");
        }
    }
}
