//! `meeseeks audit`: compliance findings on the graph and playbooks (SPEC §6).
//!
//! Every check is one linear pass (or a DP in topological order) over the graph:
//!
//! | id | severity | fires when |
//! |---|---|---|
//! | `stateful-no-backup` | error | `stateful = true` and no `backup` |
//! | `backup-exceeds-rpo` | error | `backup.schedule` > `rpo` (the RPO cannot be met) |
//! | `rpo-exceeded` | error | the last data-loss window a run measured (`[rpo_probe]`) > `rpo` |
//! | `rto-inversion` | error | RTO < the RTO of a transitive essential dependency |
//! | `rto-unachievable` | error | longest chain of estimated durations ending at it > RTO |
//! | `spof` | error | its loss takes down ≥ 2 services and ≥ `spof_share` of the rest of the graph weighted by tier, or of the *other* tier-0 services |
//! | `no-playbook` | warning | no playbook |
//! | `no-health-check` | warning | a playbook with zero checks: "recovered" would mean nothing |
//! | `drill-stale` | warning | has a playbook, no successful drill within `drill_max_age` |
//! | `not-ready` | error | the last recorded `meeseeks preflight` found it not ready (or unknown) |
//! | `preflight-stale` | warning | has a playbook, no recorded preflight within `preflight_max_age` |
//!
//! Errors are targets that contradict each other or cannot be met; warnings are gaps in the
//! preparation. `drill-stale` and `rpo-exceeded` need the run history (`DrillHistory`); without
//! it one `info` note says `drill-stale` was skipped.
//!
//! Complexity: O(V+E) for everything but `spof`, which counts every service's transitive
//! dependents with bitsets of 512 services per pass, O((V+E)·V/1024) word operations (see
//! `spof_losses`); plus the size of the printed chains.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{Render, chain_names, dur, dur_s, md_cell, secs, table};
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
pub const RPO_EXCEEDED: &str = "rpo-exceeded";
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
    (RPO_EXCEEDED, Severity::Error),
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
    last_rpo: HashMap<String, MeasuredRpo>,
}

/// A data-loss window a run measured (`rpo.measured`).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredRpo {
    pub window_s: f64,
    pub newest: jiff::Timestamp,
    /// Where the window ended (the disaster, or when a drill read it).
    pub until: jiff::Timestamp,
    pub run_id: String,
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

    /// Records a measured data-loss window of `service`; the latest (by `until`) is kept.
    pub fn record_rpo(&mut self, service: &str, m: MeasuredRpo) {
        match self.last_rpo.get_mut(service) {
            Some(e) if e.until > m.until => {}
            Some(e) => *e = m,
            None => {
                self.last_rpo.insert(service.to_string(), m);
            }
        }
    }

    pub fn last_rpo(&self, service: &str) -> Option<&MeasuredRpo> {
        self.last_rpo.get(service)
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
                let hint = crate::suggest::did_you_mean(a, KINDS.iter().map(|(k, _)| *k));
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
        if let (Some(h), Some(rpo)) = (drills, s.rpo)
            && let Some(m) = h.last_rpo(&s.name)
            && m.window_s > rpo.as_secs_f64()
        {
            sink.push(
                RPO_EXCEEDED,
                id,
                format!(
                    "the last measured data-loss window, {}, exceeds its RPO of {}",
                    crate::events::fmt_rpo_window(m.window_s),
                    dur(rpo)
                ),
                Vec::new(),
                format!(
                    "run {}: newest write on the recovered copy {}, until {}",
                    m.run_id, m.newest, m.until
                ),
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

/// Services per bitset pass: 8 × 64 bits, one cache line per service.
const SPOF_WORDS: usize = 8;

#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u64; SPOF_WORDS]);

/// Weight of a service of `tier` in the SPOF share: 8 for tier 0, 4, 2, then 1 from tier 3 on
/// (each tier counts half the one above it).
pub fn spof_weight(tier: u32) -> u64 {
    8 >> tier.min(3)
}

/// What losing one service takes down: its transitive essential dependents (itself excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loss {
    /// How many services go down.
    pub down: usize,
    /// Their summed [`spof_weight`].
    pub weight: u64,
    /// How many of them are tier 0.
    pub tier0: usize,
    /// Up to `sample` of them, most critical tier first.
    pub sample: Vec<SvcId>,
}

/// For each service X, what its loss takes down ([`Loss`]).
///
/// Exact counting is a reachability problem, so a BFS per service would be O(V·(V+E)). Instead,
/// services are taken 512 at a time: each service gets a 512-bit set of the services (of this
/// batch) that depend on it, computed dependents-first as the OR of its essential dependents'
/// sets (and their own bits). Weighted popcounts (one mask per weight class) accumulate across
/// batches. In dependents-first order a service's bits can only come from services before it,
/// so a batch starts at its own first position: the passes cost Σ (V − 512·b)·d̄, i.e.
/// O((V+E)·V/1024) word operations, 8 words at a time, and O(V+E) memory. Services that no
/// service depends on are left out.
pub fn spof_losses(model: &Model, topo: &[SvcId], sample: usize) -> Vec<Loss> {
    let n = model.services.len();
    // Dependents first; `pos` is the index in this order.
    let order: Vec<SvcId> = topo.iter().rev().copied().collect();
    let mut pos = vec![u32::MAX; n];
    for (p, &id) in order.iter().enumerate() {
        pos[id] = p as u32;
    }
    // Dependents as compact positions (all smaller than the service's own).
    let mut off = Vec::with_capacity(order.len() + 1);
    let mut adj: Vec<u32> = Vec::new();
    off.push(0usize);
    for &id in &order {
        adj.extend(model.dependents[id].iter().map(|&t| pos[t]));
        off.push(adj.len());
    }
    let per_pass = SPOF_WORDS * 64;
    let tier_of = |p: usize| model.services[order[p]].tier.min(3) as usize;
    // The batches of one parity (the two halves run on two threads on a big graph; they
    // alternate so that each gets early, long batches and late, short ones alike).
    let half = |parity: usize| -> Vec<Loss> {
        let mut loss = vec![Loss::default(); n];
        // Every service is a target: the bits are positions of `order`.
        let mut bits = vec![Line([0; SPOF_WORDS]); order.len()];
        // Positions before a batch hold no bit of it: only cleared of the previous batch's bits.
        let mut clean_upto = 0;
        for (batch, first) in (0..order.len()).step_by(per_pass).enumerate() {
            if batch % 2 != parity {
                continue;
            }
            let last = (first + per_pass).min(order.len());
            // Bits of this batch by weight class (tier 0, 1, 2, 3+).
            let mut class = [[0u64; SPOF_WORDS]; 4];
            for p in first..last {
                let k = p - first;
                class[tier_of(p)][k / 64] |= 1 << (k % 64);
            }
            for line in &mut bits[clean_upto..first] {
                *line = Line([0; SPOF_WORDS]);
            }
            clean_upto = first;
            for p in first..order.len() {
                let mut b = [0u64; SPOF_WORDS];
                for &q in &adj[off[p]..off[p + 1]] {
                    let x = &bits[q as usize].0;
                    for w in 0..SPOF_WORDS {
                        b[w] |= x[w];
                    }
                }
                if b != [0; SPOF_WORDS] {
                    let l = &mut loss[order[p]];
                    for (c, mask) in class.iter().enumerate() {
                        let k: u32 = b.iter().zip(mask).map(|(x, m)| (x & m).count_ones()).sum();
                        l.down += k as usize;
                        l.weight += u64::from(k) * spof_weight(c as u32);
                        if c == 0 {
                            l.tier0 += k as usize;
                        }
                    }
                    // Most critical first, across batches: a later batch's tier-0 service
                    // replaces an earlier batch's tier-2 one.
                    let tier3 = |id: SvcId| model.services[id].tier.min(3) as usize;
                    'classes: for (c, mask) in class.iter().enumerate() {
                        for (wi, (&x, &m)) in b.iter().zip(mask).enumerate() {
                            let mut w = x & m;
                            while w != 0 {
                                let slot = if l.sample.len() < sample {
                                    l.sample.len()
                                } else {
                                    match l
                                        .sample
                                        .iter()
                                        .enumerate()
                                        .max_by_key(|(_, t)| tier3(**t))
                                    {
                                        Some((i, &t)) if tier3(t) > c => i,
                                        // Later classes are less critical still.
                                        _ => break 'classes,
                                    }
                                };
                                let bit = w.trailing_zeros() as usize;
                                w &= w - 1;
                                let id = order[batch * per_pass + wi * 64 + bit];
                                if slot == l.sample.len() {
                                    l.sample.push(id);
                                } else {
                                    l.sample[slot] = id;
                                }
                            }
                        }
                    }
                }
                // Its own bit after counting: X's loss taking X down is not news.
                if p < last {
                    let k = p - first;
                    b[k / 64] |= 1 << (k % 64);
                }
                bits[p].0 = b;
            }
        }
        loss
    };
    let (mut loss, other) =
        crate::util::join(n >= crate::util::PARALLEL_MIN_SCOPE, || half(0), || half(1));
    let tier3 = |id: &SvcId| model.services[*id].tier.min(3);
    for (l, o) in loss.iter_mut().zip(other) {
        l.down += o.down;
        l.weight += o.weight;
        l.tier0 += o.tier0;
        if !o.sample.is_empty() {
            // Each half sampled its most critical; together, the most critical of both.
            l.sample.extend(o.sample);
            l.sample.sort_by_key(tier3);
            l.sample.truncate(sample);
        }
    }
    loss
}
/// `spof` (see docs/graph-ops.md): X is a single point of failure when its loss takes down at
/// least 2 services and either at least `share` of the rest of the graph, weighted by tier
/// ([`spof_weight`]), or at least `share` of the *other* tier-0 services.
fn spof(model: &Model, topo: &[SvcId], share: f64, sink: &mut Sink) {
    let total: u64 = model.services.iter().map(|s| spof_weight(s.tier)).sum();
    let tier0 = model.services.iter().filter(|s| s.tier == 0).count();
    let losses = spof_losses(model, topo, 5);
    for (id, l) in losses.iter().enumerate() {
        // A loss that takes down a single other service is an ordinary dependency, not a
        // shared point of failure.
        if l.down < 2 {
            continue;
        }
        let own = &model.services[id];
        let rest = total - spof_weight(own.tier);
        let other_tier0 = tier0 - usize::from(own.tier == 0);
        let weighted = l.weight as f64 / rest.max(1) as f64;
        let t0 = if other_tier0 > 0 {
            l.tier0 as f64 / other_tier0 as f64
        } else {
            0.0
        };
        // Shares are compared with a little tolerance: 3 of 10 is 30%, whatever f64 says.
        if weighted + 1e-9 < share && (t0 + 1e-9 < share || l.tier0 < 2) {
            continue;
        }
        let mut shown: Vec<&str> = l.sample.iter().map(|&i| model.name(i)).collect();
        shown.sort_unstable();
        let more = if l.down > shown.len() {
            format!(", … ({} more)", l.down - shown.len())
        } else {
            String::new()
        };
        sink.push(
            SPOF,
            id,
            format!(
                "its loss takes down {} service(s), {:.0}% of the rest of the graph weighted by \
                 tier, and {} of {other_tier0} other tier-0 services",
                l.down,
                100.0 * weighted,
                l.tier0
            ),
            shown.iter().map(|s| s.to_string()).collect(),
            format!("down with it: {}{more}", shown.join(", ")),
        );
    }
}

/// At most this many findings of one kind in text and Markdown (JSON has them all).
const SHOWN_PER_KIND: usize = 20;

impl AuditReport {
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
}

impl Render for AuditReport {
    /// 1 when any error finding remains (SPEC §3), else 0.
    fn exit_code(&self) -> i32 {
        if self.has_errors() {
            crate::error::exit::NEGATIVE
        } else {
            crate::error::exit::OK
        }
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
        // Weights: tier 0 = 8, tier 1 = 4; 52 in all. db takes mid, a, b, c: 28 of the other
        // 48 (58%), 3 of 5 tier-0 (60%); mid takes a, b: 16 of 48 (33%); lonely takes only d;
        // e only soft-depends on db.
        let r = run(&m);
        assert_eq!(fired(&r, SPOF), ["db", "mid"]);
        let f = r.findings.iter().find(|f| f.id == SPOF).unwrap();
        assert_eq!(f.chain, ["a", "b", "c", "mid"]);
        assert_eq!(
            f.message,
            "its loss takes down 4 service(s), 58% of the rest of the graph weighted by tier, \
             and 3 of 5 other tier-0 services"
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

    /// Shared infrastructure (issue 10): with tier 0 for datastores, a tier-1 service
    /// registry that ten services need is a SPOF although no tier-0 service depends on it;
    /// and a tier-0 service is not counted in its own tier-0 share.
    #[test]
    fn spof_finds_shared_infrastructure() {
        let mut parts = vec![
            pb(s("db-a", 0, 30, &[], &[]), 1),
            pb(s("db-b", 0, 30, &[], &[]), 1),
            pb(s("registry", 1, 30, &[], &[]), 1),
            pb(s("gateway", 1, 60, &["svc1", "svc2", "svc3"], &[]), 1),
        ];
        for i in 1..=10 {
            let db = if i % 2 == 1 { "db-a" } else { "db-b" };
            let tier = if i <= 5 { 1 } else { 2 };
            parts.push(pb(
                s(&format!("svc{i}"), tier, 60, &["registry", db], &[]),
                1,
            ));
        }
        let m = model(parts);
        let r = run(&m);
        let spofs = fired(&r, SPOF);
        assert!(spofs.contains(&"registry".to_string()), "{spofs:?}");
        assert!(!spofs.iter().any(|s| s.starts_with("svc")), "{spofs:?}");
        let f = r
            .findings
            .iter()
            .find(|f| f.id == SPOF && f.service.as_deref() == Some("registry"))
            .unwrap();
        assert!(
            f.message
                .starts_with("its loss takes down 11 service(s), 68%"),
            "{}",
            f.message
        );

        // Two tier-0 services, one needing the other: 1 of 1 *other* tier-0 service is 100%,
        // but one service down is an ordinary dependency, not a SPOF.
        let m = model(vec![
            pb(s("core", 0, 30, &[], &[]), 1),
            pb(s("api", 0, 30, &["core"], &[]), 1),
            pb(s("x", 3, 30, &[], &[]), 1),
            pb(s("y", 3, 30, &[], &[]), 1),
            pb(s("z", 3, 30, &[], &[]), 1),
        ]);
        assert!(fired(&run(&m), SPOF).is_empty());
    }

    /// Deterministic pseudo-random DAGs of more than 512 services (several bitset batches),
    /// every loss checked against one BFS per service.
    #[test]
    fn spof_losses_match_brute_force() {
        let mut rnd = rng(0x9e3779b97f4a7c15);
        let n = 1400;
        let name = |i: usize| format!("s{i:04}");
        let mut parts = Vec::new();
        for i in 0..n {
            let deps: Vec<String> = (0..rnd(4))
                .filter(|_| i > 0)
                .map(|_| name(rnd(i as u64) as usize))
                .collect();
            let mut p = s(&name(i), rnd(5) as u32, 60, &[], &[]);
            p.1 = deps;
            parts.push(p);
        }
        let m = model(parts);
        let topo = topo_order(&m, &Scope::all(&m));
        let losses = spof_losses(&m, &topo, 3);
        let mut big = 0;
        for x in 0..n {
            let mut seen = vec![false; n];
            let mut stack = vec![x];
            seen[x] = true;
            let mut want = Loss::default();
            while let Some(id) = stack.pop() {
                for &t in &m.dependents[id] {
                    if !seen[t] {
                        seen[t] = true;
                        let tier = m.services[t].tier;
                        want.down += 1;
                        want.weight += spof_weight(tier);
                        want.tier0 += usize::from(tier == 0);
                        stack.push(t);
                    }
                }
            }
            let got = &losses[x];
            assert_eq!(
                (got.down, got.weight, got.tier0),
                (want.down, want.weight, want.tier0),
                "service {}",
                m.name(x)
            );
            assert_eq!(got.sample.len(), want.down.min(3));
            assert!(got.sample.iter().all(|&t| seen[t] && t != x));
            // Most critical first: no sampled service of a lower tier than one left out.
            if let Some(worst) = got.sample.iter().map(|&t| m.services[t].tier.min(3)).max() {
                let better_left_out = (0..n).any(|t| {
                    seen[t]
                        && t != x
                        && !got.sample.contains(&t)
                        && m.services[t].tier.min(3) < worst
                });
                assert!(!better_left_out, "service {}", m.name(x));
            }
            big += usize::from(want.down > 512);
        }
        assert!(big >= 5, "the test must cross batches: {big}");
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
            // Optional: with `web -> api`, db would take down the rest of this small graph.
            pb(s("web", 1, 90, &[], &["api", "recs"]), 5),
            pb(s("recs", 2, 240, &[], &[]), 5),
        ]);
        let mut h = DrillHistory::new();
        for n in ["db", "api", "web", "recs"] {
            h.record(n, "2026-11-20T00:00:00Z".parse().unwrap());
        }
        let r = audit(&m, &AuditOptions::new(now()), Some(&h)).unwrap();
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.exit_code(), 0);
        insta::assert_snapshot!(r.text(), @r"
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
        insta::assert_snapshot!(r.text());
    }

    #[test]
    fn markdown_and_json() {
        let r = audit(&messy(), &AuditOptions::new(now()), None).unwrap();
        insta::assert_snapshot!(r.markdown());
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.audit/v1");
        let f = &v["findings"][0];
        for k in ["id", "severity", "service", "message"] {
            assert!(f.get(k).is_some(), "{k} missing in {f}");
        }
    }
}
