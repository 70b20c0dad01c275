//! `build_plan`: the whole planning report of one scope, as data. Renderers (`report::plan`)
//! only format it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Mode, Model, SvcId};
use crate::plan::analysis::{critical_path, earliest_ready};
use crate::plan::optimize::{self, Chosen, Objective, Problem};
use crate::plan::rules::Keys;
use crate::plan::walker::{Ms, ScopeGraph, WalkMode};
use crate::plan::{
    Estimate, EstimateSource, Ordering, Scope, ScopeSpec, ordering_and, select_scope,
};
use crate::util::join;

pub use crate::plan::optimize::{Optimality, Source};
pub use crate::plan::rules::Rule;

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
    /// `--search-budget N`: most walks of the improvement search per mode (0: off); `None`:
    /// [`default_search_budget`].
    pub search_budget: Option<usize>,
    /// Run the exact search on scopes of at most 12 services (default). Off, the plan is what
    /// the rules and the improvement search find (the quality benchmark compares both).
    pub exact: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            scope: ScopeSpec::default(),
            parallel: None,
            eager: false,
            mode: Mode::Failover,
            history: None,
            search_budget: None,
            exact: true,
        }
    }
}

/// Walks of improvement search the whole default budget pays for, shared out over the
/// services: each walk costs O((V + E) log V), so the search costs about as much as this many
/// services walked once, whatever the size of the scope.
const SEARCH_WORK: usize = 400_000;

/// Fewer walks than this are not worth starting a search for.
const SEARCH_MIN: usize = 8;

/// Most walks of the default budget.
const SEARCH_MAX: usize = 2000;

/// The seed of the improvement search (it is deterministic: same input, same plan).
pub const SEARCH_SEED: u64 = 0x6d65_6573_6565_6b73;

/// The default `--search-budget` for a scope of `n` services: [`SEARCH_WORK`] / n walks, at
/// most 2 000, and none below 8 (from about 50 000 services on, the plan is the best of the
/// portfolio: linear time).
pub fn default_search_budget(n: usize) -> usize {
    let b = (SEARCH_WORK / n.max(1)).min(SEARCH_MAX);
    if b < SEARCH_MIN { 0 } else { b }
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

    fn walk_mode(self) -> WalkMode {
        match self {
            Strategy::Waves => WalkMode::Waves,
            Strategy::Eager => WalkMode::Eager,
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
    /// The dependency it waited for last (the latest ready), if it has any in scope.
    pub waited_for: Option<SvcId>,
    /// The plan holds it back: it starts only after every service planned before it has
    /// started, leaving a slot free meanwhile for a more urgent service.
    pub held: bool,
}

/// A service predicted to miss its RTO.
#[derive(Debug, Clone)]
pub struct Breach {
    pub id: SvcId,
    pub by: Ms,
    /// The dependency chain that makes it late, ending with the service: each element is the
    /// dependency its successor waited for last. The whole chain (root first) for the
    /// [`EXPANDED`] worst breaches, its last [`CHAIN_TAIL`] services for the others, so that
    /// the plan stays linear in the size of the graph.
    pub chain: Vec<SvcId>,
    /// Length of the whole chain.
    pub chain_len: usize,
    /// The first service of the whole chain (the root cause).
    pub chain_root: SvcId,
    /// Total queueing (slot or wave-barrier waits) along the whole chain: the part of the
    /// lateness that more parallelism or eager mode could win back.
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
    /// Its longest dependency chain by estimated duration, ending with it: whole (root first)
    /// for the first [`EXPANDED`] (by name), the last [`CHAIN_TAIL`] services for the others.
    pub chain: Vec<SvcId>,
    pub chain_len: usize,
    pub chain_root: SvcId,
}

/// Breaches (worst first) and unachievable RTOs (by name) whose whole chain the plan carries.
pub const EXPANDED: usize = 20;
/// Services kept from the end of the other chains.
pub const CHAIN_TAIL: usize = 8;

/// What the improvement of the schedule did, and how good the result is.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// Walks of the improvement search allowed per mode (0: off).
    pub budget: usize,
    /// Walks used for the reported schedule's mode.
    pub evaluations: usize,
    pub seed: u64,
    /// Every rule of the portfolio with its schedule's objective (reported mode).
    pub rules: Vec<(Rule, Objective)>,
    /// What found the reported schedule.
    pub chosen_by: Source,
    pub optimality: Optimality,
}

impl SearchReport {
    /// The best single rule (the first of equals) and its objective.
    pub fn best_rule(&self) -> Option<(Rule, Objective)> {
        self.rules.iter().copied().min_by_key(|&(_, o)| o)
    }
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
    /// No schedule of the reported mode can be shorter: eager, max(critical path,
    /// Σ durations / parallel); waves, the sum over waves of max(longest service,
    /// Σ durations / parallel).
    pub makespan_lower_bound: Ms,
    /// A lower bound on `objective`: no schedule of this mode has fewer breaches, less
    /// lateness or a shorter makespan (each on its own).
    pub lower_bound: Objective,
    /// The eager plan walks the waves plan's order (without the barriers): nothing found for
    /// eager mode did better.
    pub eager_fallback: bool,
    /// The reported schedule's breaches, total lateness and makespan.
    pub objective: Objective,
    pub search: SearchReport,
    pub critical_path: Vec<SvcId>,
    pub critical_path_len: Ms,
    /// In planned start order: the priority list a run walks.
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

    /// Total lateness of the predicted breaches.
    pub fn lateness(&self) -> Ms {
        self.objective.lateness
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

/// The ordering a run of `scope` walks: the plan's priority list for `walk` mode (its planned
/// start order, with the services it holds back), so that the run does what the plan
/// predicted. `parallel == 0` means unlimited.
pub fn run_ordering(
    model: &Model,
    scope: &Scope,
    mode: Mode,
    walk: WalkMode,
    parallel: usize,
) -> Ordering {
    let par = scope.len() >= crate::util::PARALLEL_MIN_SCOPE;
    let parallel = if parallel == 0 { usize::MAX } else { parallel };
    let opts = PlanOptions {
        mode,
        ..Default::default()
    };
    let setup = Setup::new(model, scope, &opts, parallel, par);
    let strategy = match walk {
        WalkMode::Waves => Strategy::Waves,
        WalkMode::Eager => Strategy::Eager,
    };
    let chosen = setup.choose(strategy, par);
    let mut ord = setup.ord;
    ord.rank = chosen.holds.rank.to_vec();
    ord.held = chosen.holds.held;
    ord
}

/// What a run takes from its plan: the planned services of its own mode (in planned start
/// order) and the priority list it walks. The same schedule as [`build_plan`]'s for that mode,
/// without planning the other one, which a plan report shows beside it but a run never walks:
/// a waves run plans no eager schedule, and an eager run plans the waves schedule only when
/// its own rules miss the lower bound (only then can the waves order do better).
pub fn build_run_plan(
    model: &Model,
    opts: &PlanOptions,
) -> crate::Result<(Vec<PlannedService>, Priority)> {
    let (scope, setup, par) = prepare(model, opts, crate::util::PARALLEL_MIN_SCOPE)?;
    let strategy = if opts.eager {
        Strategy::Eager
    } else {
        Strategy::Waves
    };
    let chosen = setup.choose(strategy, par);
    let mut estimates = setup.ord.estimates.clone();
    let timeline = setup.timeline(model, &scope);
    let services = timeline.services(&chosen, &timeline.queued(&chosen), &mut estimates);
    let priority = Priority::of(&services, model.services.len());
    Ok((services, priority))
}

/// The breaches and lateness that `parallel` slots force whatever the order, dependencies
/// aside: every service takes at least `p` (the shortest estimate), so a slot finishes at most
/// one service per `p`, and the `k`-th service to finish (of any schedule) is ready no sooner
/// than `slot(k) = ceil(k / parallel) * p`. No schedule does better than the best assignment
/// of services to those times:
/// - lateness: the times matched to the RTOs in ascending order (for a convex cost of
///   time - RTO, the sorted matching is the cheapest);
/// - breaches: not that matching (times 10, 20 against RTOs 9, 15 breach both, while the
///   RTO of 15 alone can be met at 10), but the most RTOs that can be met, greedily: by
///   ascending RTO, each takes the next time if it is in time, else it is given up.
///
/// With equal estimates (a graph planned on `defaults.estimate`) this is what the best
/// schedules reach when the slots, not the dependencies, are what is short: the plan is then
/// proven optimal without a search (a run of 2 000 such services used to search for ~50 ms
/// before its first step, for nothing). O(n log n): one sort of the RTOs.
fn capacity_bound(ids: &[SvcId], dur: &[Ms], rto: &[Ms], parallel: usize) -> (usize, Ms) {
    let p = ids.iter().map(|&i| dur[i]).min().unwrap_or(0);
    if p == 0 || parallel == 0 || parallel >= ids.len() {
        return (0, 0);
    }
    let mut deadlines: Vec<Ms> = ids.iter().map(|&i| rto[i]).collect();
    deadlines.sort_unstable();
    let slot = |k: usize| ((k / parallel) as Ms + 1).saturating_mul(p);
    let (mut met, mut lateness) = (0, 0);
    for (k, &d) in deadlines.iter().enumerate() {
        lateness += slot(k).saturating_sub(d);
        if slot(met) <= d {
            met += 1;
        }
    }
    (deadlines.len() - met, lateness)
}

/// A plan's priority list as a run takes it: by service id, the rank (its place in the
/// planned start order; `u32::MAX` outside the scope) and whether the plan holds it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    pub rank: Vec<u32>,
    pub held: Vec<bool>,
}

impl Plan {
    /// What a run walks to do what this plan predicts (see [`ordering_from`]).
    pub fn priority(&self) -> Priority {
        Priority::of(&self.services, self.total_services)
    }
}

impl Priority {
    /// The priority list of `services` (planned, in start order) among `total` services.
    fn of(services: &[PlannedService], total: usize) -> Priority {
        let mut rank = vec![u32::MAX; total];
        let mut held = vec![false; total];
        for (r, p) in services.iter().enumerate() {
            rank[p.id] = r as u32;
            held[p.id] = p.held;
        }
        Priority { rank, held }
    }
}

/// The ordering a run of `scope` walks with a plan's priority list (made for the same scope,
/// mode and parallelism): the priority of [`run_ordering`] without planning again.
pub fn ordering_from(model: &Model, scope: &Scope, mode: Mode, priority: &Priority) -> Ordering {
    let par = scope.len() >= crate::util::PARALLEL_MIN_SCOPE;
    let mut ord = ordering_and(model, scope, mode, None, par, |_, _| (), |_, _| ()).0;
    ord.rank = priority.rank.clone();
    ord.held = priority.held.clone();
    ord
}

/// [`build_plan`], using a second thread when the scope has at least `min_scope` services
/// (tests force either way).
fn build_plan_with(model: &Model, opts: &PlanOptions, min_scope: usize) -> crate::Result<Plan> {
    let (scope, mut setup, par) = prepare(model, opts, min_scope)?;
    let parallel = setup.parallel;
    // Both modes are planned: the report gives both makespans, and the eager plan may walk
    // the waves plan's order.
    let (waves, eager) = setup.choose_both(par);
    let (strategy, chosen) = if opts.eager {
        (Strategy::Eager, &eager)
    } else {
        (Strategy::Waves, &waves)
    };
    // The planned services take their estimates: the setup needs them no more.
    let mut estimates = std::mem::take(&mut setup.ord.estimates);
    let Setup { ef, cp, budget, .. } = &setup;
    let (services, breaches, unachievable) =
        setup
            .timeline(model, &scope)
            .build(chosen, par, &mut estimates);
    let cp_len = cp.last().map_or(0, |&e| ef[e]);
    let lower_bound = setup.bound(strategy);
    Ok(Plan {
        strategy,
        mode: opts.mode,
        parallel,
        history: opts.history.is_some(),
        total_services: model.services.len(),
        waves: setup.g.waves() as u32,
        makespan: chosen.walk.makespan,
        makespan_waves: waves.walk.makespan,
        makespan_eager: eager.walk.makespan,
        makespan_lower_bound: lower_bound.makespan,
        lower_bound,
        eager_fallback: eager.source == Source::WavesOrder,
        objective: chosen.obj,
        search: SearchReport {
            budget: *budget,
            evaluations: chosen.evaluations,
            seed: SEARCH_SEED,
            rules: chosen.rules.clone(),
            chosen_by: chosen.source,
            optimality: chosen.optimality,
        },
        critical_path: cp.clone(),
        critical_path_len: cp_len,
        services,
        breaches,
        unachievable,
    })
}

/// The scope `opts` selects and what its plans are made from; `true` when the scope has at
/// least `min_scope` services (then the work is split over two threads).
fn prepare(
    model: &Model,
    opts: &PlanOptions,
    min_scope: usize,
) -> crate::Result<(Scope, Setup, bool)> {
    let parallel = opts.parallel.unwrap_or(model.defaults.parallel);
    if parallel == 0 {
        return Err(crate::Error::Usage("--parallel must be at least 1".into()));
    }
    let scope = select_scope(model, &opts.scope)?;
    let par = scope.len() >= min_scope;
    let setup = Setup::new(model, &scope, opts, parallel, par);
    Ok((scope, setup, par))
}

/// Everything both modes are planned from.
struct Setup {
    ord: Ordering,
    g: Arc<ScopeGraph>,
    dur: Vec<Ms>,
    rto: Vec<Ms>,
    ef: Vec<Ms>,
    cp: Vec<SvcId>,
    keys: Keys,
    parallel: usize,
    budget: usize,
    exact: bool,
    /// [`capacity_bound`] of the scope: (breaches, lateness).
    capacity: (usize, Ms),
}

impl Setup {
    fn new(model: &Model, scope: &Scope, opts: &PlanOptions, parallel: usize, par: bool) -> Setup {
        // What the schedules are made from: the scope graph beside the waves; durations,
        // earliest ready times and the critical path beside the modified deadlines.
        let (ord, g, (dur, ef, cp, rto, tier)) = ordering_and(
            model,
            scope,
            opts.mode,
            opts.history.as_ref(),
            par,
            |_, wave| Arc::new(ScopeGraph::new(model, scope, wave)),
            |topo, secs| {
                let n = model.services.len();
                let (mut dur, mut rto, mut tier) = (vec![0; n], vec![0; n], vec![0; n]);
                for &id in &scope.ids {
                    dur[id] = to_ms(secs[id]);
                    rto[id] = model.services[id].rto.as_millis() as Ms;
                    tier[id] = model.services[id].tier;
                }
                let ef = earliest_ready(model, scope, topo, &dur);
                let cp = critical_path(model, scope, &ef);
                (dur, ef, cp, rto, tier)
            },
        );
        // The bound sorts every RTO: beside the keys.
        let (capacity, keys) = join(
            par,
            || capacity_bound(&g.ids, &dur, &rto, parallel),
            || Keys::new(&g, &ord.topo, &ord.deadline, &dur, &rto, &tier, &ef),
        );
        Setup {
            capacity,
            budget: opts
                .search_budget
                .unwrap_or_else(|| default_search_budget(scope.len())),
            ord,
            g,
            dur,
            rto,
            ef,
            cp,
            keys,
            parallel,
            exact: opts.exact,
        }
    }

    fn problem(&self, strategy: Strategy) -> Problem<'_> {
        Problem {
            g: self.g.clone(),
            mode: strategy.walk_mode(),
            parallel: self.parallel,
            dur: &self.dur,
            rto: &self.rto,
            keys: &self.keys,
        }
    }

    /// A lower bound on the objective of any schedule in `strategy`: the breaches and
    /// lateness of the unachievable RTOs alone or of the parallelism ([`capacity_bound`]),
    /// whichever is larger, and the makespan bound.
    fn bound(&self, strategy: Strategy) -> Objective {
        let mut b = Objective::default();
        for &id in &self.g.ids {
            if self.ef[id] > self.rto[id] {
                b.breaches += 1;
                b.lateness += self.ef[id] - self.rto[id];
            }
        }
        // Each is a lower bound on its own, so their larger one is too.
        b.breaches = b.breaches.max(self.capacity.0);
        b.lateness = b.lateness.max(self.capacity.1);
        let p = self.parallel as u128;
        let share = |total: Ms| (total as u128).div_ceil(p) as Ms;
        b.makespan = match strategy {
            Strategy::Eager => {
                let total: Ms = self.g.ids.iter().map(|&i| self.dur[i]).sum();
                let cp = self.cp.last().map_or(0, |&e| self.ef[e]);
                cp.max(share(total))
            }
            Strategy::Waves => (0..self.g.waves())
                .map(|k| {
                    let m = self.g.wave_members(k);
                    let longest = m.iter().map(|&i| self.dur[i]).max().unwrap_or(0);
                    longest.max(share(m.iter().map(|&i| self.dur[i]).sum()))
                })
                .sum(),
        };
        b
    }

    fn choose(&self, strategy: Strategy, par: bool) -> Chosen {
        match strategy {
            Strategy::Waves => self.choose_mode(Strategy::Waves),
            Strategy::Eager => {
                // An eager schedule the rules find at its lower bound is what `choose_both`
                // gives too (no search runs, and the waves order cannot beat the bound): the
                // waves plan and its search are not needed.
                let bound = self.bound(Strategy::Eager);
                let rules =
                    optimize::choose(&self.problem(Strategy::Eager), 0, SEARCH_SEED, false, bound);
                if rules.obj == bound {
                    rules
                } else {
                    self.choose_both(par).1
                }
            }
        }
    }

    fn timeline<'a>(&'a self, model: &'a Model, scope: &'a Scope) -> Timeline<'a> {
        Timeline {
            model,
            scope,
            g: &self.g,
            topo: &self.ord.topo,
            ef: &self.ef,
            wave: &self.ord.wave,
            dur: &self.dur,
            deadline: &self.ord.deadline,
        }
    }

    fn choose_mode(&self, strategy: Strategy) -> Chosen {
        optimize::choose(
            &self.problem(strategy),
            self.budget,
            SEARCH_SEED,
            self.exact,
            self.bound(strategy),
        )
    }

    /// The waves and the eager plan, side by side when `par`.
    fn choose_both(&self, par: bool) -> (Chosen, Chosen) {
        // The improvement search costs about the same at any scope size (its budget shrinks as
        // the scope grows, ~400 000 service visits per mode): worth a second thread whenever it
        // runs, not only on large scopes (a 2 000-service plan, or the run that plans it, waits
        // ~35 ms less).
        let searching = self.budget >= 8 && self.budget * self.g.len() >= 50_000;
        let (eager, waves) = join(
            par || searching,
            || self.choose_mode(Strategy::Eager),
            || self.choose_mode(Strategy::Waves),
        );
        // On large scopes the extra walk is spent only when eager came out worse than waves.
        let eager = if self.g.len() < optimize::LARGE_SCOPE || eager.obj > waves.obj {
            optimize::adopt_waves_order(
                &self.problem(Strategy::Eager),
                eager,
                &waves.walk.order,
                self.bound(Strategy::Eager),
            )
        } else {
            eager
        };
        (waves, eager)
    }
}

/// What the per-service part of a plan is computed from, besides the schedule.
struct Timeline<'a> {
    model: &'a Model,
    scope: &'a Scope,
    g: &'a ScopeGraph,
    topo: &'a [SvcId],
    ef: &'a [Ms],
    wave: &'a [u32],
    dur: &'a [Ms],
    deadline: &'a [f64],
}

/// Per service (by id): the dependency it waited for last, the length of its whole chain of
/// such dependencies (itself included), and a sum along that chain. Linear.
struct Chains {
    next: Vec<Option<SvcId>>,
    len: Vec<u32>,
    sum: Vec<Ms>,
    root: Vec<SvcId>,
}

impl Chains {
    /// `at[id]`: the time a dependency counts by (latest first; ties to the first listed);
    /// `own[id]`: what each service adds to the sum.
    fn new(g: &ScopeGraph, topo: &[SvcId], at: &[Ms], own: impl Fn(SvcId) -> Ms) -> Chains {
        let n = g.n();
        let mut c = Chains {
            next: vec![None; n],
            len: vec![0; n],
            sum: vec![0; n],
            root: vec![0; n],
        };
        for &id in topo {
            let mut best: Option<SvcId> = None;
            for &d in g.deps(id) {
                if best.is_none_or(|b| at[d] > at[b]) {
                    best = Some(d);
                }
            }
            c.next[id] = best;
            c.len[id] = 1 + best.map_or(0, |b| c.len[b]);
            c.sum[id] = own(id) + best.map_or(0, |b| c.sum[b]);
            c.root[id] = best.map_or(id, |b| c.root[b]);
        }
        c
    }

    /// The chain ending at `id`, root first: whole, or its last `tail` services.
    fn chain(&self, id: SvcId, whole: bool) -> Vec<SvcId> {
        let keep = if whole {
            self.len[id] as usize
        } else {
            CHAIN_TAIL.min(self.len[id] as usize)
        };
        let mut out = Vec::with_capacity(keep);
        let mut cur = Some(id);
        while let Some(c) = cur {
            if out.len() == keep {
                break;
            }
            out.push(c);
            cur = self.next[c];
        }
        out.reverse();
        out
    }
}

impl Timeline<'_> {
    /// The planned services of `chosen` (in start order), the breaches and the unachievable
    /// RTOs: the breaches on a second thread when `parallel`.
    /// Takes the estimates out of `estimates`.
    fn build(
        &self,
        chosen: &Chosen,
        parallel: bool,
        estimates: &mut [Option<Estimate>],
    ) -> (Vec<PlannedService>, Vec<Breach>, Vec<Unachievable>) {
        let queued = self.queued(chosen);
        // The breaches (a sort, the chains) take about as long as the services and the
        // unachievable RTOs together (23 ms against 15 + 11 on the breach-heavy 100 000-service
        // graph).
        let (breaches, (services, unachievable)) = join(
            parallel,
            || self.breaches(chosen, &queued),
            || {
                (
                    self.services(chosen, &queued, estimates),
                    self.unachievable(),
                )
            },
        );
        (services, breaches, unachievable)
    }

    fn rto(&self, id: SvcId) -> Ms {
        self.model.services[id].rto.as_millis() as Ms
    }

    /// By id: time between the last dependency in scope being ready (or 0) and the start.
    fn queued(&self, chosen: &Chosen) -> Vec<Ms> {
        let w = &chosen.walk;
        let mut q = vec![0; self.model.services.len()];
        for &id in &self.scope.ids {
            let deps_ready = self
                .g
                .deps(id)
                .iter()
                .map(|&d| w.ready[d])
                .max()
                .unwrap_or(0);
            q[id] = w.start[id] - deps_ready;
        }
        q
    }

    /// In planned start order: the walker's hand-out order.
    fn services(
        &self,
        chosen: &Chosen,
        queued: &[Ms],
        estimates: &mut [Option<Estimate>],
    ) -> Vec<PlannedService> {
        let w = &chosen.walk;
        let held = &chosen.holds.held;
        w.order
            .iter()
            .map(|&id| {
                let rto = self.rto(id);
                let ready = w.ready[id];
                let mut waited_for: Option<SvcId> = None;
                for &d in self.g.deps(id) {
                    if waited_for.is_none_or(|b| w.ready[d] > w.ready[b]) {
                        waited_for = Some(d);
                    }
                }
                PlannedService {
                    id,
                    wave: self.wave[id],
                    start: w.start[id],
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
                    queued: queued[id],
                    waited_for,
                    held: held.get(id).copied().unwrap_or(false),
                }
            })
            .collect()
    }

    /// Worst first, then by name.
    fn breaches(&self, chosen: &Chosen, queued: &[Ms]) -> Vec<Breach> {
        let w = &chosen.walk;
        let mut late: Vec<(Ms, SvcId)> = (self.scope.ids.iter().copied())
            .filter(|&id| w.ready[id] > self.rto(id))
            .map(|id| (w.ready[id] - self.rto(id), id))
            .collect();
        if late.is_empty() {
            return Vec::new();
        }
        late.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // The walk's hand-out order is a topological order of the scope.
        let chains = Chains::new(self.g, &w.order, &w.ready, |id| queued[id]);
        late.into_iter()
            .enumerate()
            .map(|(k, (by, id))| Breach {
                id,
                by,
                chain: chains.chain(id, k < EXPANDED),
                chain_len: chains.len[id] as usize,
                chain_root: chains.root[id],
                queued: chains.sum[id],
                unachievable: self.ef[id] > self.rto(id),
            })
            .collect()
    }

    /// By name.
    fn unachievable(&self) -> Vec<Unachievable> {
        let ids: Vec<SvcId> = (self.scope.ids.iter().copied())
            .filter(|&id| self.ef[id] > self.rto(id))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let chains = Chains::new(self.g, self.topo, self.ef, |_| 0);
        ids.into_iter()
            .enumerate()
            .map(|(k, id)| Unachievable {
                id,
                earliest_ready: self.ef[id],
                rto: self.rto(id),
                chain: chains.chain(id, k < EXPANDED),
                chain_len: chains.len[id] as usize,
                chain_root: chains.root[id],
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
    fn two_threads_plan_what_one_does_and_a_run_walks_it() {
        let (m, history) = big_graph(6000);
        // 10 000 >= the 6 000 services: no contention, where an eager run skips the waves plan.
        for parallel in [1, 16, 5000, 10_000] {
            for eager in [false, true] {
                for history in [None, Some(history.clone())] {
                    // A small search budget: the search runs, and a debug build walks slowly.
                    let opts = PlanOptions {
                        parallel: Some(parallel),
                        eager,
                        history,
                        search_budget: Some(4),
                        ..Default::default()
                    };
                    let one = build_plan_with(&m, &opts, usize::MAX).unwrap();
                    let two = build_plan_with(&m, &opts, 0).unwrap();
                    assert_eq!(format!("{one:?}"), format!("{two:?}"));
                    assert_eq!(
                        format!("{two:?}"),
                        format!("{:?}", build_plan(&m, &opts).unwrap())
                    );
                    // A run walks this schedule, though it plans its own mode only (an eager
                    // run plans waves only when its rules miss the bound).
                    let (services, priority) = build_run_plan(&m, &opts).unwrap();
                    assert_eq!(format!("{services:?}"), format!("{:?}", two.services));
                    assert_eq!(priority, two.priority());
                }
            }
        }
    }
}
