//! `build_plan`: the whole planning report of one scope, as data. Renderers (`report::plan`)
//! only format it.

use std::collections::HashMap;

use crate::model::{Mode, Model, SvcId};
use crate::plan::analysis::{binding_chain, critical_path, earliest_ready};
use crate::plan::schedule::{self, Inputs, Ms, Schedule};
use crate::plan::{
    Estimate, EstimateSource, Ordering, Scope, ScopeSpec, ordering_and, select_scope,
};
use crate::util::join;

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
    build_plan_with(model, opts, crate::util::PARALLEL_MIN_SCOPE)
}

/// [`build_plan`], using a second thread when the scope has at least `min_scope` services
/// (tests force either way).
fn build_plan_with(model: &Model, opts: &PlanOptions, min_scope: usize) -> crate::Result<Plan> {
    let parallel = opts.parallel.unwrap_or(model.defaults.parallel);
    if parallel == 0 {
        return Err(crate::Error::Usage("--parallel must be at least 1".into()));
    }
    let scope = select_scope(model, &opts.scope)?;
    let par = scope.len() >= min_scope;
    // The analysis with unlimited parallelism needs no priorities: it is computed while the
    // ranks are.
    let (ord, (dur, ef, cp)) = ordering_and(
        model,
        &scope,
        opts.mode,
        opts.history.as_ref(),
        par,
        |topo, secs| {
            let mut dur: Vec<Ms> = vec![0; secs.len()];
            for &id in &scope.ids {
                dur[id] = to_ms(secs[id]);
            }
            let ef = earliest_ready(model, &scope, topo, &dur);
            let cp = critical_path(model, &scope, &ef);
            (dur, ef, cp)
        },
    );
    let Ordering {
        wave,
        mut estimates,
        deadline,
        rank,
        ..
    } = ord;
    let timeline = Timeline {
        model,
        scope: &scope,
        ef: &ef,
        wave: &wave,
        dur: &dur,
        deadline: &deadline,
        rank: &rank,
    };
    let inputs = Inputs {
        model,
        scope: &scope,
        wave: &wave,
        dur: &dur,
        rank: &rank,
        parallel,
    };
    // The eager schedule is the longest single step of the plan and only the choice of the
    // reported schedule depends on it, so it runs on a thread of its own while this one
    // computes the waves schedule and, when that is the one reported (the default), the
    // timeline and breaches as well.
    let (eager_sched, (waves_sched, waves_planned)) = join(
        par,
        || schedule::eager(inputs),
        || {
            let waves_sched = schedule::waves(inputs);
            let planned =
                (!opts.eager).then(|| timeline.build(&waves_sched, false, &mut estimates));
            (waves_sched, planned)
        },
    );
    // Eager list scheduling is not monotone: with a finite limit, releasing a service early
    // can occupy a slot a more urgent one needs a moment later, and the eager makespan can
    // exceed the waves one (Graham's anomalies). SPEC §4 promises eager is never slower, and
    // the wave schedule is itself a valid eager-compatible schedule, so the eager plan falls
    // back to it when it is shorter.
    let eager_fallback = eager_sched.makespan > waves_sched.makespan;
    let eager_sched = if eager_fallback {
        &waves_sched
    } else {
        &eager_sched
    };
    let (strategy, sched): (Strategy, &Schedule) = if opts.eager {
        (Strategy::Eager, eager_sched)
    } else {
        (Strategy::Waves, &waves_sched)
    };
    let cp_len = cp.last().map_or(0, |&e| ef[e]);
    let (services, breaches, unachievable) = match waves_planned {
        Some(planned) => planned,
        None => timeline.build(sched, par, &mut estimates),
    };

    Ok(Plan {
        strategy,
        mode: opts.mode,
        parallel,
        history: opts.history.is_some(),
        total_services: model.services.len(),
        waves: scope.ids.iter().map(|&i| wave[i] + 1).max().unwrap_or(0),
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

/// What the per-service part of a plan is computed from, besides the schedule.
struct Timeline<'a> {
    model: &'a Model,
    scope: &'a Scope,
    ef: &'a [Ms],
    wave: &'a [u32],
    dur: &'a [Ms],
    deadline: &'a [f64],
    rank: &'a [u32],
}

impl Timeline<'_> {
    /// The planned services of `sched` (in start order), the breaches and the unachievable
    /// RTOs: the services on this thread and the other two on a second one when `parallel`.
    /// Takes the estimates out of `estimates`.
    fn build(
        &self,
        sched: &Schedule,
        parallel: bool,
        estimates: &mut [Option<Estimate>],
    ) -> (Vec<PlannedService>, Vec<Breach>, Vec<Unachievable>) {
        let ((breaches, unachievable), services) = join(
            parallel,
            || (self.breaches(sched), self.unachievable()),
            || self.services(sched, estimates),
        );
        (services, breaches, unachievable)
    }

    fn rto(&self, id: SvcId) -> Ms {
        self.model.services[id].rto.as_millis() as Ms
    }

    /// Time between the last dependency in scope being ready (or 0) and the start of `id`.
    fn queued(&self, sched: &Schedule, id: SvcId) -> Ms {
        let deps_ready = self.model.services[id]
            .depends_on
            .iter()
            .filter(|&&d| self.scope.member[d])
            .map(|&d| sched.ready[d])
            .max()
            .unwrap_or(0);
        sched.start[id] - deps_ready
    }

    /// In planned start order, ties by priority.
    fn services(
        &self,
        sched: &Schedule,
        estimates: &mut [Option<Estimate>],
    ) -> Vec<PlannedService> {
        // A planned service is large: sort small keys, then build the services in that order.
        // Ranks are unique, so the unstable sort is deterministic.
        let mut order: Vec<(Ms, u32, SvcId)> = self
            .scope
            .ids
            .iter()
            .map(|&id| (sched.start[id], self.rank[id], id))
            .collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, _, id)| {
                let rto = self.rto(id);
                let ready = sched.ready[id];
                PlannedService {
                    id,
                    wave: self.wave[id],
                    start: sched.start[id],
                    ready,
                    rto,
                    slack: rto as i64 - ready as i64,
                    estimate: estimates[id].take().unwrap_or_else(|| Estimate {
                        secs: 0.0,
                        source: EstimateSource::Default,
                        steps: Vec::new(),
                        checks_secs: 0.0,
                    }),
                    dur: self.dur[id],
                    deadline: (self.deadline[id] * 1000.0).round() as i64,
                    earliest_ready: self.ef[id],
                    queued: self.queued(sched, id),
                }
            })
            .collect()
    }

    /// Worst first, then by name.
    fn breaches(&self, sched: &Schedule) -> Vec<Breach> {
        let late: Vec<SvcId> = (self.scope.ids.iter().copied())
            .filter(|&id| sched.ready[id] > self.rto(id))
            .collect();
        if late.is_empty() {
            return Vec::new();
        }
        // `queued` by id, for summing along breach chains.
        let mut queued = vec![0; self.model.services.len()];
        for &id in &self.scope.ids {
            queued[id] = self.queued(sched, id);
        }
        let mut breaches: Vec<Breach> = late
            .into_iter()
            .map(|id| {
                let rto = self.rto(id);
                let chain = binding_chain(self.model, self.scope, id, &sched.ready);
                Breach {
                    id,
                    by: sched.ready[id] - rto,
                    queued: chain.iter().map(|&c| queued[c]).sum(),
                    chain,
                    unachievable: self.ef[id] > rto,
                }
            })
            .collect();
        breaches.sort_by(|a, b| b.by.cmp(&a.by).then(a.id.cmp(&b.id)));
        breaches
    }

    /// By name.
    fn unachievable(&self) -> Vec<Unachievable> {
        (self.scope.ids.iter().copied())
            .filter(|&id| self.ef[id] > self.rto(id))
            .map(|id| Unachievable {
                id,
                earliest_ready: self.ef[id],
                rto: self.rto(id),
                chain: binding_chain(self.model, self.scope, id, self.ef),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Defaults, Service};
    use std::time::Duration;

    /// A layered random DAG of `n` services (splitmix64, fixed seed) with varied tiers, RTOs
    /// and durations (as history p90s), big enough to take the two-thread paths.
    pub(crate) fn big_graph(n: usize) -> (Model, HashMap<String, f64>) {
        let mut state = 42u64;
        let mut next = move |m: u64| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % m
        };
        let name = |i: usize| format!("s{:05}", (i * 7919) % n);
        let mut services = Vec::with_capacity(n);
        let mut history = HashMap::new();
        for i in 0..n {
            let mut deps: Vec<String> = Vec::new();
            if i > 0 {
                for _ in 0..next(5) {
                    // Mostly recent services (deep chains), some any earlier one.
                    let j = if next(3) > 0 {
                        i - 1 - next(i.min(200) as u64) as usize
                    } else {
                        next(i as u64) as usize
                    };
                    deps.push(name(j));
                }
                deps.sort();
                deps.dedup();
            }
            let rto = Duration::from_secs(60 + next(40_000));
            services.push((Service::new(name(i), next(4) as u32, rto), deps, vec![]));
            history.insert(name(i), next(600_000) as f64 / 1000.0);
        }
        let m = Model::from_parts(std::path::PathBuf::from("."), Defaults::default(), services);
        (m, history)
    }

    #[test]
    fn two_threads_plan_what_one_does() {
        let (m, history) = big_graph(6000);
        for parallel in [1, 16, 5000] {
            for eager in [false, true] {
                for history in [None, Some(history.clone())] {
                    let opts = PlanOptions {
                        parallel: Some(parallel),
                        eager,
                        history,
                        ..Default::default()
                    };
                    let one = build_plan_with(&m, &opts, usize::MAX).unwrap();
                    let two = build_plan_with(&m, &opts, 0).unwrap();
                    assert_eq!(format!("{one:?}"), format!("{two:?}"));
                    assert_eq!(
                        format!("{two:?}"),
                        format!("{:?}", build_plan(&m, &opts).unwrap())
                    );
                }
            }
        }
    }
}
