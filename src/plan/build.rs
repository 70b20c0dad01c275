//! `build_plan`: the whole planning report of one scope, as data. Renderers (`report::plan`)
//! only format it.

use std::collections::HashMap;

use crate::model::{Mode, Model, SvcId};
use crate::plan::analysis::{binding_chain, critical_path, earliest_ready};
use crate::plan::schedule::{self, Inputs, Ms, Schedule};
use crate::plan::{Estimate, EstimateSource, ScopeSpec, ordering_with, select_scope};

/// Options of `meeseeks plan` (and of the run's planned timeline).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub scope: ScopeSpec,
    /// `--parallel N`; `None` → `defaults.parallel` of the graph.
    pub parallel: Option<usize>,
    /// `--eager`: the reported schedule is the eager one (both makespans are always given).
    pub eager: bool,
    /// Which steps count (a step may be `only = "failover"` or `"drill"`).
    pub mode: Mode,
    /// `--estimates history`: p90 of measured durations in seconds, by service name. Services
    /// without an entry keep their playbook (or default) estimate.
    pub history: Option<HashMap<String, f64>>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            scope: ScopeSpec::default(),
            parallel: None,
            eager: false,
            mode: Mode::Failover,
            history: None,
        }
    }
}

/// How services are released: at wave barriers or as soon as their dependencies are ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Waves,
    Eager,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Waves => "waves",
            Strategy::Eager => "eager",
        }
    }
}

/// One service in the planned timeline. Times are milliseconds from the RTO clock's start.
#[derive(Debug, Clone)]
pub struct PlannedService {
    pub id: SvcId,
    pub wave: u32,
    pub start: Ms,
    pub ready: Ms,
    pub rto: Ms,
    /// rto − ready; negative = predicted breach.
    pub slack: i64,
    pub estimate: Estimate,
    /// Estimate in ms (what the schedule used).
    pub dur: Ms,
    /// Modified deadline d'(s) in ms (may be negative when unachievable).
    pub deadline: i64,
    /// Ready time with unlimited parallelism (its longest dependency chain).
    pub earliest_ready: Ms,
    /// Time between its last dependency being ready (or 0) and its start: the wait for a slot
    /// under `parallel`, or for the wave barrier.
    pub queued: Ms,
}

/// A service predicted to miss its RTO.
#[derive(Debug, Clone)]
pub struct Breach {
    pub id: SvcId,
    pub by: Ms,
    /// The dependency chain that makes it late, root first, ending with the service: each
    /// element is the dependency its successor waited for last.
    pub chain: Vec<SvcId>,
    /// Total queueing (slot or wave-barrier waits) along the chain: the part of the lateness
    /// that more parallelism or eager mode could win back.
    pub queued: Ms,
    /// The chain alone, with unlimited parallelism, already exceeds the RTO.
    pub unachievable: bool,
}

/// A service whose RTO cannot be met even with unlimited parallelism.
#[derive(Debug, Clone)]
pub struct Unachievable {
    pub id: SvcId,
    pub earliest_ready: Ms,
    pub rto: Ms,
    /// Its longest dependency chain by estimated duration, root first.
    pub chain: Vec<SvcId>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub strategy: Strategy,
    pub mode: Mode,
    pub parallel: usize,
    /// `true` with `--estimates history`.
    pub history: bool,
    /// Number of services in the whole graph (the scope may be smaller).
    pub total_services: usize,
    pub waves: u32,
    pub makespan: Ms,
    pub makespan_waves: Ms,
    pub makespan_eager: Ms,
    /// The eager list schedule came out longer than the waves one (a list-scheduling anomaly
    /// under a finite `parallel`), so the eager plan keeps the wave barriers instead.
    pub eager_fallback: bool,
    pub critical_path: Vec<SvcId>,
    pub critical_path_len: Ms,
    /// In planned start order (ties by priority).
    pub services: Vec<PlannedService>,
    /// Worst first, then by name.
    pub breaches: Vec<Breach>,
    /// By name.
    pub unachievable: Vec<Unachievable>,
}

impl Plan {
    pub fn met(&self) -> usize {
        self.services.len() - self.breaches.len()
    }
}

/// Seconds to whole milliseconds (negative and NaN → 0).
pub fn to_ms(secs: f64) -> Ms {
    // `as` saturates: NaN and negatives become 0.
    (secs * 1000.0).round() as Ms
}

/// Plans the recovery of the scope selected by `opts`. Errors only on bad options (unknown
/// service in `--services`, a scope that selects nothing, `--parallel 0`).
pub fn build_plan(model: &Model, opts: &PlanOptions) -> crate::Result<Plan> {
    let parallel = opts.parallel.unwrap_or(model.defaults.parallel);
    if parallel == 0 {
        return Err(crate::Error::Usage("--parallel must be at least 1".into()));
    }
    let scope = select_scope(model, &opts.scope)?;
    let mut ord = ordering_with(model, &scope, opts.mode, opts.history.as_ref());
    let n = model.services.len();
    let mut dur: Vec<Ms> = vec![0; n];
    for &id in &scope.ids {
        dur[id] = to_ms(ord.dur[id]);
    }
    let inputs = Inputs {
        model,
        scope: &scope,
        wave: &ord.wave,
        dur: &dur,
        rank: &ord.rank,
        parallel,
    };
    let waves_sched = schedule::waves(inputs);
    let mut eager_sched = schedule::eager(inputs);
    // Eager list scheduling is not monotone: with a finite limit, releasing a service early
    // can occupy a slot a more urgent one needs a moment later, and the eager makespan can
    // exceed the waves one (Graham's anomalies). SPEC §4 promises eager is never slower, and
    // the wave schedule is itself a valid eager-compatible schedule, so the eager plan falls
    // back to it when it is shorter.
    let eager_fallback = eager_sched.makespan > waves_sched.makespan;
    if eager_fallback {
        eager_sched = waves_sched.clone();
    }
    let (strategy, sched): (Strategy, &Schedule) = if opts.eager {
        (Strategy::Eager, &eager_sched)
    } else {
        (Strategy::Waves, &waves_sched)
    };

    let ef = earliest_ready(model, &scope, &ord.topo, &dur);
    let cp = critical_path(model, &scope, &ef);
    let cp_len = cp.last().map_or(0, |&e| ef[e]);

    let mut services = Vec::with_capacity(scope.len());
    for &id in &scope.ids {
        let s = &model.services[id];
        let rto = s.rto.as_millis() as Ms;
        let deps_ready = s
            .depends_on
            .iter()
            .filter(|&&d| scope.member[d])
            .map(|&d| sched.ready[d])
            .max()
            .unwrap_or(0);
        services.push(PlannedService {
            id,
            wave: ord.wave[id],
            start: sched.start[id],
            ready: sched.ready[id],
            rto,
            slack: rto as i64 - sched.ready[id] as i64,
            estimate: ord.estimates[id].take().unwrap_or_else(|| Estimate {
                secs: 0.0,
                source: EstimateSource::Default,
                steps: Vec::new(),
                checks_secs: 0.0,
            }),
            dur: dur[id],
            deadline: (ord.deadline[id] * 1000.0).round() as i64,
            earliest_ready: ef[id],
            queued: sched.start[id] - deps_ready,
        });
    }
    // `queued` by id, for summing along breach chains.
    let mut queued = vec![0; n];
    for p in &services {
        queued[p.id] = p.queued;
    }

    let mut breaches: Vec<Breach> = services
        .iter()
        .filter(|p| p.slack < 0)
        .map(|p| {
            let chain = binding_chain(model, &scope, p.id, &sched.ready);
            Breach {
                id: p.id,
                by: p.ready - p.rto,
                queued: chain.iter().map(|&c| queued[c]).sum(),
                chain,
                unachievable: p.earliest_ready > p.rto,
            }
        })
        .collect();
    breaches.sort_by(|a, b| b.by.cmp(&a.by).then(a.id.cmp(&b.id)));

    let unachievable = services
        .iter()
        .filter(|p| p.earliest_ready > p.rto)
        .map(|p| Unachievable {
            id: p.id,
            earliest_ready: p.earliest_ready,
            rto: p.rto,
            chain: binding_chain(model, &scope, p.id, &ef),
        })
        .collect();

    // Ranks are unique, so the unstable sort is deterministic.
    services.sort_unstable_by_key(|p| (p.start, ord.rank[p.id]));

    Ok(Plan {
        strategy,
        mode: opts.mode,
        parallel,
        history: opts.history.is_some(),
        total_services: n,
        waves: scope
            .ids
            .iter()
            .map(|&i| ord.wave[i] + 1)
            .max()
            .unwrap_or(0),
        makespan: sched.makespan,
        makespan_waves: waves_sched.makespan,
        makespan_eager: eager_sched.makespan,
        eager_fallback,
        critical_path: cp,
        critical_path_len: cp_len,
        services,
        breaches,
        unachievable,
    })
}
