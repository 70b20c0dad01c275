//! The portfolio of priority rules. Each rule is a way to choose among the services that may
//! start; every rule is run through the walker on the simulated clock and the plan keeps the
//! best result (fewest breaches, then least total lateness, then shortest makespan).
//!
//! Deadline-based rules use deadlines in which an unachievable RTO (its dependency chain alone
//! exceeds it) does not propagate to its dependencies: it will be breached whatever the order,
//! and pulling its whole chain ahead would only make services that can still meet their RTO
//! late as well. Only the classic modified-deadline rule (SPEC §4) keeps the full propagation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::SvcId;
use crate::plan::walker::{Ms, ReadyQueue, ScopeGraph};

/// A priority rule of the portfolio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Earliest modified deadline d′ (SPEC §4), ties by tier then name.
    ModifiedDeadline,
    /// Earliest d′, with unachievable RTOs not propagated upstream.
    AchievableDeadline,
    /// Latest start first: d′ − duration (least slack).
    LatestStart,
    /// Earliest own RTO first.
    Edf,
    /// Baker–Bertrand's dynamic rule: earliest max(d′, now + duration).
    BakerBertrand,
    /// Longest remaining path first (duration plus the longest chain of dependents).
    LongestPath,
    /// Most critical tier first, then earliest RTO.
    TierRto,
    /// First ready, first started (ties by name).
    Fifo,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::ModifiedDeadline,
        Rule::AchievableDeadline,
        Rule::LatestStart,
        Rule::Edf,
        Rule::BakerBertrand,
        Rule::LongestPath,
        Rule::TierRto,
        Rule::Fifo,
    ];

    /// The rule tried on large scopes (see `optimize::LARGE_SCOPE`): the one with the fewest
    /// breaches on the quality benchmark's 200- and 2 000-service graphs (bench/plan_quality.sh)
    /// and on both 100 000-service shapes of bench/plan_vs_tsort.sh.
    pub const LARGE: [Rule; 1] = [Rule::BakerBertrand];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ModifiedDeadline => "modified-deadline",
            Rule::AchievableDeadline => "achievable-deadline",
            Rule::LatestStart => "latest-start",
            Rule::Edf => "earliest-rto",
            Rule::BakerBertrand => "baker-bertrand",
            Rule::LongestPath => "longest-path",
            Rule::TierRto => "tier-then-rto",
            Rule::Fifo => "first-ready",
        }
    }
}

/// Per-service numbers the rules read, by id, in milliseconds.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Classic modified deadlines.
    pub deadline: Vec<i64>,
    /// Modified deadlines without the propagation of unachievable RTOs.
    pub achievable: Vec<i64>,
    /// Duration plus the longest chain of dependents' durations.
    pub tail: Vec<Ms>,
    pub rto: Vec<Ms>,
    pub tier: Vec<u32>,
    pub dur: Vec<Ms>,
}

impl Keys {
    /// `topo`: the scope in topological order; `deadline`: the classic modified deadlines in
    /// seconds (`plan::modified_deadlines`); `ef`: earliest ready times (unlimited slots).
    pub fn new(
        g: &ScopeGraph,
        topo: &[SvcId],
        deadline: &[f64],
        dur: &[Ms],
        rto: &[Ms],
        tier: &[u32],
        ef: &[Ms],
    ) -> Keys {
        let n = g.n();
        let mut achievable = vec![i64::MAX; n];
        let mut tail = vec![0; n];
        for &id in topo.iter().rev() {
            let (mut a, mut t) = (rto[id] as i64, 0);
            for &s in g.dependents(id) {
                if ef[s] <= rto[s] {
                    a = a.min(achievable[s] - dur[s] as i64);
                }
                t = t.max(tail[s]);
            }
            achievable[id] = a;
            tail[id] = t + dur[id];
        }
        Keys {
            // Milliseconds, as the planner's durations: the same rounding as the reports'.
            deadline: deadline
                .iter()
                .map(|&d| (d * 1000.0).round() as i64)
                .collect(),
            achievable,
            tail,
            rto: rto.to_vec(),
            tier: tier.to_vec(),
            dur: dur.to_vec(),
        }
    }

    /// Ranks (0 = first) of a static rule, by id; `None` for the dynamic rules.
    pub fn static_rank(&self, g: &ScopeGraph, rule: Rule) -> Option<Vec<u32>> {
        let key = |id: SvcId| -> (i64, i64) {
            match rule {
                Rule::ModifiedDeadline => (self.deadline[id], 0),
                Rule::AchievableDeadline => (self.achievable[id], 0),
                Rule::LatestStart => (self.achievable[id] - self.dur[id] as i64, 0),
                Rule::Edf => (self.rto[id] as i64, 0),
                Rule::LongestPath => (-(self.tail[id] as i64), 0),
                Rule::TierRto => (self.tier[id] as i64, self.rto[id] as i64),
                Rule::BakerBertrand | Rule::Fifo => (0, 0),
            }
        };
        if matches!(rule, Rule::BakerBertrand | Rule::Fifo) {
            return None;
        }
        let mut keys: Vec<((i64, i64), u32, SvcId)> = g
            .ids
            .iter()
            .map(|&id| (key(id), self.tier[id], id))
            .collect();
        keys.sort_unstable();
        Some(ranks_of(g.n(), keys.iter().map(|k| k.2)))
    }
}

/// Ranks by id from ids in rank order (`u32::MAX` for ids not listed).
pub fn ranks_of(n: usize, order: impl Iterator<Item = SvcId>) -> Vec<u32> {
    let mut rank = vec![u32::MAX; n];
    for (r, id) in order.enumerate() {
        rank[id] = r as u32;
    }
    rank
}

/// Baker–Bertrand's dynamic priority: the ready service with the smallest max(d′, now + dur),
/// ties by tier then name. A service is *due* once d′ − dur < now: from then on its priority
/// is now + dur (shortest first), before that it is d′. Two heaps and a third to move
/// services between them as the clock advances: O(log n) per operation.
pub struct DueQueue<'a> {
    keys: &'a Keys,
    now: i64,
    /// Not due yet: by (d′, tier, id), and by (d′ − dur, id) to find those that fall due.
    by_deadline: BinaryHeap<Reverse<(i64, u32, SvcId)>>,
    by_latest: BinaryHeap<Reverse<(i64, SvcId)>>,
    /// Due: by (dur, tier, id).
    due: BinaryHeap<Reverse<(Ms, u32, SvcId)>>,
    /// 0 = not queued, 1 = not due, 2 = due.
    place: Vec<u8>,
}

impl<'a> DueQueue<'a> {
    /// A queue of services among `n`, `in_scope` of which can be pushed.
    pub fn new(keys: &'a Keys, n: usize, in_scope: usize) -> DueQueue<'a> {
        DueQueue {
            keys,
            now: 0,
            // Room for every service of the scope in each heap (each is pushed once): they
            // never grow (a copy into fresh memory each time); what a walk does not use is
            // address space only.
            by_deadline: BinaryHeap::with_capacity(in_scope),
            by_latest: BinaryHeap::with_capacity(in_scope),
            due: BinaryHeap::with_capacity(in_scope),
            place: vec![0; n],
        }
    }

    fn latest(&self, id: SvcId) -> i64 {
        self.keys.achievable[id].saturating_sub(self.keys.dur[id] as i64)
    }

    fn make_due(&mut self, id: SvcId) {
        self.place[id] = 2;
        self.due
            .push(Reverse((self.keys.dur[id], self.keys.tier[id], id)));
    }
}

impl ReadyQueue for DueQueue<'_> {
    fn push(&mut self, id: SvcId) {
        if self.latest(id) < self.now {
            self.make_due(id);
        } else {
            self.place[id] = 1;
            self.by_deadline
                .push(Reverse((self.keys.achievable[id], self.keys.tier[id], id)));
            self.by_latest.push(Reverse((self.latest(id), id)));
        }
    }

    fn set_now(&mut self, now: Ms) {
        self.now = now as i64;
        while let Some(&Reverse((l, id))) = self.by_latest.peek() {
            if l >= self.now {
                break;
            }
            self.by_latest.pop();
            if self.place[id] == 1 {
                self.make_due(id);
            }
        }
    }

    fn pop(&mut self) -> Option<SvcId> {
        while let Some(&Reverse((_, _, id))) = self.by_deadline.peek() {
            if self.place[id] == 1 {
                break;
            }
            self.by_deadline.pop();
        }
        let a = self.by_deadline.peek().map(|&Reverse(k)| k);
        let b = self.due.peek().map(|&Reverse(k)| k);
        // Priority of the best not-due service: d′; of the best due one: now + dur.
        let take_due = match (a, b) {
            (None, None) => return None,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some((d, ta, ia)), Some((dur, tb, ib))) => {
                (self.now.saturating_add(dur as i64), tb, ib) < (d, ta, ia)
            }
        };
        let id = if take_due {
            self.due.pop().map(|Reverse(k)| k.2)
        } else {
            self.by_deadline.pop().map(|Reverse(k)| k.2)
        };
        if let Some(id) = id {
            self.place[id] = 0;
        }
        id
    }
}

/// First ready, first started: by (time it became ready, tier, id).
pub struct FifoQueue<'a> {
    tier: &'a [u32],
    now: Ms,
    heap: BinaryHeap<Reverse<(Ms, u32, SvcId)>>,
}

impl<'a> FifoQueue<'a> {
    pub fn new(tier: &'a [u32]) -> FifoQueue<'a> {
        FifoQueue {
            tier,
            now: 0,
            heap: BinaryHeap::new(),
        }
    }
}

impl ReadyQueue for FifoQueue<'_> {
    fn push(&mut self, id: SvcId) {
        self.heap.push(Reverse((self.now, self.tier[id], id)));
    }
    fn set_now(&mut self, now: Ms) {
        self.now = now;
    }
    fn pop(&mut self) -> Option<SvcId> {
        self.heap.pop().map(|Reverse(k)| k.2)
    }
}
