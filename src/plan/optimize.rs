//! Choosing the schedule: the objective, the portfolio of priority rules, the improvement
//! search and the plan's priority list (with the services it holds back).
//!
//! Objective, in this order: fewest predicted RTO breaches, then least total lateness (the sum
//! of every breach's lateness), then shortest makespan.
//!
//! Every schedule considered is a walk of the walker on the simulated clock, decoded from a
//! priority list in one of two ways: *list* (whenever a slot is free, the best-ranked ready
//! service starts: Graham's list scheduling) or *strict* (services start in exactly the list's
//! order, so a slot may stay free for a service that becomes ready a moment later). Strict
//! decoding of the right list reaches an optimal schedule for any objective that only grows
//! with completion times (ours does), which list decoding cannot always do.
//!
//! The chosen schedule becomes the run's priority list — its services in planned start order —
//! plus the set of services that start later than a free slot and their readiness allowed
//! (held: the walker starts them only after every service before them in the list). Walking
//! that list reproduces the chosen schedule exactly; the plan's timeline is that walk.

use std::sync::Arc;

use crate::model::SvcId;
use crate::plan::rules::{DueQueue, FifoQueue, Keys, Rule, ranks_of};
use crate::plan::walker::{
    Holds, Ms, RankQueue, ReadyQueue, ScopeGraph, Walk, WalkMode, Walker, simulate,
    simulate_following,
};
use crate::plan::{exact, search};

/// Fewest breaches, then least total lateness, then shortest makespan (the field order is the
/// comparison order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Objective {
    pub breaches: usize,
    pub lateness: Ms,
    pub makespan: Ms,
}

/// What a planning problem needs, by id (0 outside the scope).
pub struct Problem<'a> {
    pub g: Arc<ScopeGraph>,
    pub mode: WalkMode,
    /// Max services at once (`usize::MAX`: no limit).
    pub parallel: usize,
    pub dur: &'a [Ms],
    pub rto: &'a [Ms],
    pub keys: &'a Keys,
}

/// How a schedule was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rule(Rule),
    /// The improvement search, starting from the best rule.
    Search,
    /// The exact search (small scopes).
    Exact,
    /// Eager mode: the waves plan's order, without the barriers.
    WavesOrder,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rule(r) => r.as_str(),
            Source::Search => "search",
            Source::Exact => "exact",
            Source::WavesOrder => "waves-order",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub walk: Walk,
    pub obj: Objective,
    pub source: Source,
    /// Decoded strictly (it may leave a slot free on purpose); else a list schedule.
    pub strict: bool,
}

impl Problem<'_> {
    pub fn objective(&self, w: &Walk) -> Objective {
        let mut o = Objective {
            makespan: w.makespan,
            ..Default::default()
        };
        for &id in &self.g.ids {
            if w.ready[id] > self.rto[id] {
                o.breaches += 1;
                o.lateness += w.ready[id] - self.rto[id];
            }
        }
        o
    }

    fn walk<Q: ReadyQueue>(&self, q: Q, holds: Option<Holds>) -> Walk {
        simulate(
            Walker::with_queue(self.g.clone(), self.mode, self.parallel, q, holds, &[]),
            self.dur,
        )
    }

    fn candidate(&self, walk: Walk, source: Source, strict: bool) -> Candidate {
        Candidate {
            obj: self.objective(&walk),
            walk,
            source,
            strict,
        }
    }

    /// The schedule of one rule (list decoding).
    pub fn rule(&self, rule: Rule) -> Candidate {
        let walk = match self.keys.static_rank(&self.g, rule) {
            Some(rank) => self.walk(self.rank_queue(&rank), None),
            None if rule == Rule::BakerBertrand => {
                self.walk(DueQueue::new(self.keys, self.g.n(), self.g.len()), None)
            }
            None => self.walk(FifoQueue::new(&self.keys.tier), None),
        };
        self.candidate(walk, Source::Rule(rule), false)
    }

    fn rank_queue(&self, rank: &[u32]) -> RankQueue {
        RankQueue::new(Holds::from_rank(&self.g, rank, &[]).rank)
    }

    /// List decoding of `order` (ids, best first).
    pub fn list(&self, order: &[SvcId], source: Source) -> Candidate {
        let rank = ranks_of(self.g.n(), order.iter().copied());
        let walk = self.walk(self.rank_queue(&rank), None);
        self.candidate(walk, source, false)
    }

    /// Strict decoding of `order`: services start in exactly this order. `order` must be a
    /// topological order (and, in waves mode, sorted by wave).
    pub fn strict(&self, order: &[SvcId], source: Source) -> Candidate {
        let rank: Arc<[u32]> = ranks_of(self.g.n(), order.iter().copied()).into();
        let by_rank: Arc<[SvcId]> = order.into();
        let mut held = vec![false; self.g.n()];
        for &id in order {
            held[id] = true;
        }
        let holds = Holds {
            rank: rank.clone(),
            by_rank,
            held,
        };
        let walk = self.walk(RankQueue::new(rank), Some(holds));
        self.candidate(walk, source, true)
    }

    /// When each service of `walk` could have started as far as its dependencies (eager) or
    /// its wave (waves) are concerned.
    pub fn release_times(&self, walk: &Walk) -> Vec<Ms> {
        let g = &self.g;
        let mut rel = vec![0; g.n()];
        match self.mode {
            WalkMode::Eager => {
                for &id in &g.ids {
                    rel[id] = g.deps(id).iter().map(|&d| walk.ready[d]).max().unwrap_or(0);
                }
            }
            WalkMode::Waves => {
                let mut open = 0;
                for k in 0..g.waves() {
                    let mut end = open;
                    for &id in g.wave_members(k) {
                        rel[id] = open;
                        end = end.max(walk.ready[id]);
                    }
                    open = end;
                }
            }
        }
        rel
    }

    /// The priority list and holds that make the walker reproduce `c`'s walk. A list schedule
    /// never leaves a slot free while a service waits, so it holds nothing back and its own
    /// order reproduces it; a strict one holds back the services the walker would otherwise
    /// start earlier (found by walking it, see `walker::simulate_following`).
    /// Returns them with the walker's walk of them (the plan's timeline).
    pub fn priority_of(&self, c: &Candidate) -> (Holds, Walk) {
        let walk = &c.walk;
        let rank: Arc<[u32]> = ranks_of(self.g.n(), walk.order.iter().copied()).into();
        let by_rank: Arc<[SvcId]> = walk.order.clone().into();
        let (held, walk) = if c.strict {
            let (held, again) = simulate_following(
                self.g.clone(),
                self.mode,
                self.parallel,
                &walk.order,
                walk,
                self.dur,
            );
            // The walk with holds is the schedule (the module doc says why), though services
            // that start at the same instant may be handed out in another order; the plan is
            // what the walker does in any case.
            debug_assert_eq!(
                (&again.start, &again.ready),
                (&walk.start, &walk.ready),
                "the walker reproduces the chosen schedule"
            );
            (held, again)
        } else {
            (Vec::new(), walk.clone())
        };
        let holds = Holds {
            rank,
            by_rank,
            held: if held.iter().any(|&h| h) {
                held
            } else {
                Vec::new()
            },
        };
        // A run walks that list as the schedule did (checked in debug builds and by the
        // property tests, which compare the plan with the walk of its priority list).
        debug_assert_eq!(self.walk_holds(&holds), walk);
        (holds, walk)
    }

    /// The walk of a priority list with its holds: what a run does with it.
    pub fn walk_holds(&self, holds: &Holds) -> Walk {
        self.walk(
            RankQueue::new(holds.rank.clone()),
            (!holds.held.is_empty()).then(|| holds.clone()),
        )
    }
}

/// How sure the plan is that no schedule does better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimality {
    /// The exact search finished: no order of the services does better.
    Exact,
    /// The schedule meets the lower bounds (the breaches and lateness of the unachievable
    /// RTOs alone, and the makespan bound).
    LowerBound,
    /// Slots for everyone: every service starts as soon as its dependencies (or wave) allow.
    NoContention,
    /// Not proven.
    Unknown,
}

impl Optimality {
    pub fn as_str(self) -> &'static str {
        match self {
            Optimality::Exact => "exact",
            Optimality::LowerBound => "lower-bound",
            Optimality::NoContention => "no-contention",
            Optimality::Unknown => "unknown",
        }
    }
}

/// The schedule chosen for one mode, and how it was found.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The walker's walk of the chosen priority list (the plan's timeline).
    pub walk: Walk,
    /// The priority list and the services it holds back: what a run walks.
    pub holds: Holds,
    pub obj: Objective,
    pub source: Source,
    /// Every rule of the portfolio and its schedule's objective, in portfolio order.
    pub rules: Vec<(Rule, Objective)>,
    /// Walks of the improvement search (and exact search results tried).
    pub evaluations: usize,
    pub optimality: Optimality,
}

/// From this many services on, the portfolio is [`Rule::LARGE`]: the plan stays a few walks,
/// linear in the graph.
pub const LARGE_SCOPE: usize = 20_000;

/// The rules tried on a scope of `n` services.
pub fn portfolio(n: usize) -> &'static [Rule] {
    if n >= LARGE_SCOPE {
        &Rule::LARGE
    } else {
        &Rule::ALL
    }
}

/// Chooses the schedule of `p`: the best of the portfolio, then the exact search (small
/// scopes) or at most `budget` walks of improvement search from it. `bound` is a lower bound
/// on the objective of any schedule.
pub fn choose(p: &Problem, budget: usize, seed: u64, exact: bool, bound: Objective) -> Chosen {
    let portfolio = portfolio(p.g.len());
    let mut rules = Vec::with_capacity(portfolio.len());
    let mut best: Option<Candidate> = None;
    for &rule in portfolio {
        let c = p.rule(rule);
        rules.push((rule, c.obj));
        if best.as_ref().is_none_or(|b| c.obj < b.obj) {
            best = Some(c);
        }
    }
    let Some(mut best) = best else {
        unreachable!("the portfolio is not empty")
    };
    let mut evaluations = 0;
    let mut optimality = Optimality::Unknown;
    if p.parallel >= p.g.len() {
        optimality = Optimality::NoContention;
    } else {
        let mut left = budget;
        if exact && p.g.len() <= exact::MAX_SERVICES && best.obj > bound {
            let e = exact::search(p, best.obj);
            if let Some(order) = e.order {
                let c = p.strict(&order, Source::Exact);
                evaluations += 1;
                if c.obj < best.obj {
                    best = c;
                }
            }
            if e.proven {
                optimality = Optimality::Exact;
                left = 0;
            }
        }
        if left > 0 && best.obj > bound {
            let (b, used) = search::improve(p, best, left, seed, bound);
            best = b;
            evaluations += used;
        }
    }
    if best.obj == bound && optimality == Optimality::Unknown {
        optimality = Optimality::LowerBound;
    }
    Chosen::of(p, &best, rules, evaluations, optimality)
}

impl Chosen {
    /// `c`, with the priority list that reproduces it and the walker's walk of that list.
    fn of(
        p: &Problem,
        c: &Candidate,
        rules: Vec<(Rule, Objective)>,
        evaluations: usize,
        optimality: Optimality,
    ) -> Chosen {
        let (holds, walk) = p.priority_of(c);
        Chosen {
            holds,
            obj: p.objective(&walk),
            walk,
            source: c.source,
            rules,
            evaluations,
            optimality,
        }
    }
}

/// Eager mode: the waves plan's order walked without the barriers is at least as good as the
/// waves plan (every service done no later), so it replaces `eager` when it is better.
pub fn adopt_waves_order(
    p: &Problem,
    eager: Chosen,
    waves_order: &[SvcId],
    bound: Objective,
) -> Chosen {
    let c = p.strict(waves_order, Source::WavesOrder);
    if c.obj >= eager.obj {
        return eager;
    }
    let optimality = if c.obj == bound {
        Optimality::LowerBound
    } else {
        eager.optimality
    };
    Chosen::of(p, &c, eager.rules, eager.evaluations + 1, optimality)
}
