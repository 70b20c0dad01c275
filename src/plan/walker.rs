//! The walker decides *which service may start now* and takes completions back. It does no I/O
//! and knows nothing about time: the runner drives it on the real clock (or, for a dry-run, on
//! tokio's paused clock) and the planner drives it on a simulated clock ([`simulate`]), so the
//! plan's timeline and a run come from the same rules — there is one scheduler. It lives in
//! `plan` because both the planner and `exec` use it (`exec::walker` re-exports it).
//!
//! Rules (SPEC §4, §5):
//! - waves mode: wave k opens when every service of wave k−1 is terminal (recovered, failed or
//!   blocked); eager mode: a service is ready as soon as its essential dependencies in scope are
//!   recovered;
//! - at most `parallel` services run at once; among the ready ones the best of the ready queue
//!   goes first — for a run, the plan's priority list (its planned start order);
//! - a service the plan *holds* starts only once every service before it in the priority list
//!   has started (or is terminal): the plan left a slot free on purpose for a more urgent
//!   service that becomes ready a moment later (deliberate idle time, expressed as an order
//!   rather than a clock time so that a real run with other durations still follows it);
//! - when a service fails, its transitive essential dependents in scope become `blocked`;
//! - `stop()` (from `--on-failure stop` or a signal) starts nothing new.
//!
//! Every operation is O(degree · log n), so a walk is O((V + E) log V).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::model::{Model, SvcId};
use crate::plan::{Ordering, Scope};

/// Milliseconds of virtual time.
pub type Ms = u64;

/// `parallel` value meaning "no limit".
pub const UNLIMITED: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkMode {
    Waves,
    Eager,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcState {
    /// Not in scope.
    Out,
    Pending,
    Running,
    Recovered,
    Failed,
    Blocked,
}

impl SvcState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SvcState::Recovered | SvcState::Failed | SvcState::Blocked
        )
    }
}

/// The essential graph of one scope as the walker reads it (compressed adjacency, by id),
/// built once and shared by every walk over the scope.
#[derive(Debug, Clone)]
pub struct ScopeGraph {
    /// Services in scope, sorted by id.
    pub ids: Vec<SvcId>,
    pub member: Vec<bool>,
    /// Wave of every service in scope (`u32::MAX` outside).
    pub wave: Vec<u32>,
    /// Essential dependencies in scope, by id: `deps[dep_at[i]..dep_at[i + 1]]`.
    dep_at: Vec<u32>,
    deps: Vec<SvcId>,
    /// Essential dependents in scope, by id.
    dependent_at: Vec<u32>,
    dependents: Vec<SvcId>,
    /// Services of wave k: `by_wave[wave_at[k]..wave_at[k + 1]]`, by id within a wave.
    wave_at: Vec<u32>,
    by_wave: Vec<SvcId>,
    /// What a walk starts from: every service in scope pending, its number of dependencies
    /// in scope, and the size of every wave.
    initial_state: Vec<SvcState>,
    dep_count: Vec<u32>,
    wave_size: Vec<u32>,
}

impl ScopeGraph {
    pub fn new(model: &Model, scope: &Scope, wave: &[u32]) -> ScopeGraph {
        let (dep_at, deps) = csr(scope, |id| &model.services[id].depends_on);
        let (dependent_at, dependents) = csr(scope, |id| &model.dependents[id]);
        let waves = scope
            .ids
            .iter()
            .map(|&i| wave[i] as usize + 1)
            .max()
            .unwrap_or(0);
        let mut wave_at = vec![0u32; waves + 1];
        for &id in &scope.ids {
            wave_at[wave[id] as usize + 1] += 1;
        }
        for k in 0..waves {
            wave_at[k + 1] += wave_at[k];
        }
        let mut fill = wave_at.clone();
        let mut by_wave = vec![0; scope.len()];
        for &id in &scope.ids {
            let k = wave[id] as usize;
            by_wave[fill[k] as usize] = id;
            fill[k] += 1;
        }
        let n = scope.member.len();
        let mut initial_state = vec![SvcState::Out; n];
        let mut dep_count = vec![0; n];
        for &id in &scope.ids {
            initial_state[id] = SvcState::Pending;
            dep_count[id] = dep_at[id + 1] - dep_at[id];
        }
        ScopeGraph {
            ids: scope.ids.clone(),
            member: scope.member.clone(),
            wave: wave.to_vec(),
            dep_at,
            deps,
            dependent_at,
            dependents,
            wave_size: wave_at.windows(2).map(|w| w[1] - w[0]).collect(),
            wave_at,
            by_wave,
            initial_state,
            dep_count,
        }
    }

    /// Number of services in the model (ids run over `0..n()`).
    pub fn n(&self) -> usize {
        self.member.len()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Essential dependencies of `id` in scope.
    pub fn deps(&self, id: SvcId) -> &[SvcId] {
        &self.deps[self.dep_at[id] as usize..self.dep_at[id + 1] as usize]
    }

    /// Essential dependents of `id` in scope.
    pub fn dependents(&self, id: SvcId) -> &[SvcId] {
        &self.dependents[self.dependent_at[id] as usize..self.dependent_at[id + 1] as usize]
    }

    pub fn waves(&self) -> usize {
        self.wave_at.len() - 1
    }

    /// Services of wave `k`, by id.
    pub fn wave_members(&self, k: usize) -> &[SvcId] {
        &self.by_wave[self.wave_at[k] as usize..self.wave_at[k + 1] as usize]
    }
}

/// Compressed adjacency of `list` restricted to the scope: `(at, out)` with the neighbours of
/// `id` in `out[at[id]..at[id + 1]]`.
fn csr<'m>(scope: &Scope, list: impl Fn(SvcId) -> &'m [SvcId]) -> (Vec<u32>, Vec<SvcId>) {
    let n = scope.member.len();
    let mut at = Vec::with_capacity(n + 1);
    // At its final size (or a little over) from the start: growing 400 000 edges by doubling
    // copied them into fresh memory each time.
    let most: usize = scope.ids.iter().map(|&id| list(id).len()).sum();
    let mut out = Vec::with_capacity(most);
    at.push(0u32);
    for id in 0..n {
        if scope.member[id] {
            out.extend(list(id).iter().copied().filter(|&d| scope.member[d]));
        }
        at.push(out.len() as u32);
    }
    (at, out)
}

/// The ready services, best first. The walker pushes a service when it becomes ready and pops
/// the next one to start; a popped service that is no longer pending (blocked meanwhile) is
/// skipped by the walker.
pub trait ReadyQueue {
    fn push(&mut self, id: SvcId);
    fn pop(&mut self) -> Option<SvcId>;
    /// The simulated clock moved to `now` (for priorities that depend on time). Runs never
    /// call it.
    fn set_now(&mut self, _now: Ms) {}
}

/// A priority list: rank 0 starts first. Ranks are unique within the scope.
#[derive(Debug, Clone)]
pub struct RankQueue {
    rank: Arc<[u32]>,
    /// rank << 32 | id: one word per entry, and the id comes without a lookup.
    heap: BinaryHeap<Reverse<u64>>,
}

impl RankQueue {
    pub fn new(rank: Arc<[u32]>) -> RankQueue {
        RankQueue {
            rank,
            heap: BinaryHeap::new(),
        }
    }
}

impl ReadyQueue for RankQueue {
    fn push(&mut self, id: SvcId) {
        self.heap
            .push(Reverse((self.rank[id] as u64) << 32 | id as u32 as u64));
    }

    fn pop(&mut self) -> Option<SvcId> {
        self.heap
            .pop()
            .map(|Reverse(k)| (k & u32::MAX as u64) as SvcId)
    }
}

/// The plan's priority list and the services it holds (see the module doc).
#[derive(Debug, Clone)]
pub struct Holds {
    /// Rank (0 = first) by id.
    pub rank: Arc<[u32]>,
    /// Ids by rank.
    pub by_rank: Arc<[SvcId]>,
    /// By id; empty when nothing is held.
    pub held: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct Walker<Q = RankQueue> {
    g: Arc<ScopeGraph>,
    mode: WalkMode,
    parallel: usize,
    state: Vec<SvcState>,
    /// In-scope essential dependencies not yet recovered (eager readiness).
    waiting_on: Vec<u32>,
    /// Services per wave not terminal yet (waves mode), and the wave open now.
    open_in_wave: Vec<u32>,
    current_wave: usize,
    queue: Q,
    holds: Option<Holds>,
    /// Rank of the first service of the priority list that is still pending (holds only).
    frontier: usize,
    running: usize,
    stopped: bool,
    /// Services not terminal and not running.
    remaining: usize,
}

impl Walker<RankQueue> {
    /// A walk of `scope` in the order of `ord` (its priority ranks and held services).
    /// `already_recovered` (indexed by id; may be empty) marks services recovered by an earlier
    /// attempt of the same run (resume): they are never handed out and count as recovered.
    /// `parallel == 0` means unlimited.
    pub fn new(
        model: &Model,
        scope: &Scope,
        ord: &Ordering,
        mode: WalkMode,
        parallel: usize,
        already_recovered: &[bool],
    ) -> Walker {
        let g = Arc::new(ScopeGraph::new(model, scope, &ord.wave));
        let holds = Holds::from_rank(&g, &ord.rank, &ord.held);
        let queue = RankQueue::new(holds.rank.clone());
        let holds = (!holds.held.is_empty()).then_some(holds);
        Walker::with_queue(g, mode, parallel, queue, holds, already_recovered)
    }
}

impl Holds {
    /// From ranks by id (unique within the scope) and held flags by id (may be empty).
    pub fn from_rank(g: &ScopeGraph, rank: &[u32], held: &[bool]) -> Holds {
        // Ranks of a scope may come from a larger set: compact them to 0..len.
        let mut by_rank: Vec<SvcId> = g.ids.clone();
        by_rank.sort_unstable_by_key(|&i| rank[i]);
        let mut r = vec![u32::MAX; g.n()];
        for (k, &id) in by_rank.iter().enumerate() {
            r[id] = k as u32;
        }
        Holds {
            rank: r.into(),
            by_rank: by_rank.into(),
            held: if held.iter().any(|&h| h) {
                held.to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

impl<Q: ReadyQueue> Walker<Q> {
    /// A walk over `g` with `queue` choosing among ready services, and the plan's held
    /// services (`None`: nothing held). See [`Walker::new`] for the other arguments.
    pub fn with_queue(
        g: Arc<ScopeGraph>,
        mode: WalkMode,
        parallel: usize,
        queue: Q,
        holds: Option<Holds>,
        already_recovered: &[bool],
    ) -> Walker<Q> {
        // Copies of vectors built once per scope: cheaper than building them per walk.
        let state = g.initial_state.clone();
        let waiting_on = g.dep_count.clone();
        let open_in_wave = g.wave_size.clone();
        let remaining = g.len();
        let mut w = Walker {
            g,
            mode,
            parallel: if parallel == 0 { usize::MAX } else { parallel },
            state,
            waiting_on,
            open_in_wave,
            current_wave: 0,
            queue,
            holds,
            frontier: 0,
            running: 0,
            stopped: false,
            remaining,
        };
        if !already_recovered.is_empty() {
            for i in 0..w.g.ids.len() {
                let id = w.g.ids[i];
                if already_recovered.get(id).copied().unwrap_or(false) {
                    w.settle(id, SvcState::Recovered);
                }
            }
        }
        match mode {
            WalkMode::Eager => {
                for i in 0..w.g.ids.len() {
                    let id = w.g.ids[i];
                    if w.state[id] == SvcState::Pending && w.waiting_on[id] == 0 {
                        w.push_ready(id);
                    }
                }
            }
            WalkMode::Waves => {
                w.current_wave = usize::MAX;
                w.open_waves();
            }
        }
        w
    }

    fn push_ready(&mut self, id: SvcId) {
        push_ready(&mut self.queue, &self.holds, id);
    }

    /// Marks `id` terminal and updates readiness counters (not the running count).
    fn settle(&mut self, id: SvcId, st: SvcState) {
        // Disjoint borrows: the graph is read while the counters change.
        let Walker {
            g,
            mode,
            state,
            waiting_on,
            open_in_wave,
            queue,
            holds,
            remaining,
            ..
        } = self;
        if state[id] != SvcState::Running {
            *remaining -= 1;
        }
        state[id] = st;
        open_in_wave[g.wave[id] as usize] -= 1;
        if st == SvcState::Recovered {
            for &t in g.dependents(id) {
                waiting_on[t] -= 1;
                if *mode == WalkMode::Eager && waiting_on[t] == 0 && state[t] == SvcState::Pending {
                    push_ready(queue, holds, t);
                }
            }
        }
    }

    /// Waves mode: while the open wave is fully terminal, open the next one and hand out its
    /// pending services. `current_wave == usize::MAX` before the first wave opens.
    fn open_waves(&mut self) {
        let Walker {
            g,
            state,
            open_in_wave,
            current_wave,
            queue,
            holds,
            ..
        } = self;
        loop {
            if *current_wave != usize::MAX
                && (*current_wave >= g.waves() || open_in_wave[*current_wave] > 0)
            {
                return;
            }
            *current_wave = current_wave.wrapping_add(1);
            if *current_wave >= g.waves() {
                return;
            }
            for &id in g.wave_members(*current_wave) {
                if state[id] == SvcState::Pending {
                    push_ready(queue, holds, id);
                }
            }
        }
    }

    /// Whether a pending service may start as far as its dependencies (eager) or its wave
    /// (waves) are concerned.
    fn released(&self, id: SvcId) -> bool {
        match self.mode {
            WalkMode::Eager => self.waiting_on[id] == 0,
            WalkMode::Waves => (self.g.wave[id] as usize) <= self.current_wave,
        }
    }

    /// The next service to start, if the concurrency limit and the readiness rules allow one.
    /// The caller must start it (it is counted as running).
    pub fn next_ready(&mut self) -> Option<SvcId> {
        if self.stopped || self.running >= self.parallel {
            return None;
        }
        if let Some(h) = &self.holds {
            while self.frontier < h.by_rank.len()
                && self.state[h.by_rank[self.frontier]] != SvcState::Pending
            {
                self.frontier += 1;
            }
            // The frontier is the best-ranked pending service: a held one goes now if it is
            // released; else the queue (whose services all rank after it) decides.
            if let Some(&id) = h.by_rank.get(self.frontier)
                && h.held[id]
                && self.released(id)
            {
                return Some(self.take(id));
            }
        }
        while let Some(id) = self.queue.pop() {
            // A service blocked after it became ready is skipped lazily.
            if self.state[id] == SvcState::Pending {
                return Some(self.take(id));
            }
        }
        None
    }

    fn take(&mut self, id: SvcId) -> SvcId {
        self.state[id] = SvcState::Running;
        self.running += 1;
        self.remaining -= 1;
        id
    }

    /// A running service finished. Returns the services newly blocked by a failure, each with
    /// the failed or blocked dependency that blocks it, in breadth-first order.
    pub fn complete(&mut self, id: SvcId, recovered: bool) -> Vec<(SvcId, SvcId)> {
        debug_assert_eq!(self.state[id], SvcState::Running);
        self.running -= 1;
        let mut blocked = Vec::new();
        if recovered {
            self.settle(id, SvcState::Recovered);
        } else {
            self.settle(id, SvcState::Failed);
            let g = self.g.clone();
            let mut queue = vec![id];
            let mut head = 0;
            while head < queue.len() {
                let cause = queue[head];
                head += 1;
                for &t in g.dependents(cause) {
                    if self.state[t] == SvcState::Pending {
                        self.settle(t, SvcState::Blocked);
                        blocked.push((t, cause));
                        queue.push(t);
                    }
                }
            }
        }
        if self.mode == WalkMode::Waves {
            self.open_waves();
        }
        blocked
    }

    /// A running service was interrupted (not failed): it goes back to pending, blocks nobody,
    /// and is what a resume will start again.
    pub fn release(&mut self, id: SvcId) {
        debug_assert_eq!(self.state[id], SvcState::Running);
        self.running -= 1;
        self.remaining += 1;
        self.state[id] = SvcState::Pending;
        if let Some(h) = &self.holds {
            self.frontier = self.frontier.min(h.rank[id] as usize);
        }
    }

    /// Start nothing new from now on (`--on-failure stop`, or an operator's interrupt).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// True when nothing runs and nothing more will be handed out.
    pub fn is_done(&self) -> bool {
        // With nothing running, every pending service either is ready or waits (transitively)
        // on one that is: so `remaining == 0` is exact once `next()` returned `None`.
        self.running == 0 && (self.stopped || self.remaining == 0)
    }

    /// Services neither started nor terminal (not started because of `stop()`).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    pub fn state(&self, id: SvcId) -> SvcState {
        self.state[id]
    }

    pub fn states(&self) -> &[SvcState] {
        &self.state
    }

    pub fn queue_mut(&mut self) -> &mut Q {
        &mut self.queue
    }

    /// Takes back `id`, just handed out, and holds it at its place in the priority list
    /// (see [`simulate_following`]).
    fn hold_back(&mut self, id: SvcId) {
        self.release(id);
        if let Some(h) = &mut self.holds {
            h.held[id] = true;
        }
    }
}

/// Queues `id`, unless it is held: a held service waits at its place in the priority list.
fn push_ready<Q: ReadyQueue>(queue: &mut Q, holds: &Option<Holds>, id: SvcId) {
    if !holds.as_ref().is_some_and(|h| h.held[id]) {
        queue.push(id);
    }
}

/// Finds the services to hold so that walking `order` (ranks in that order) reproduces
/// `target`, a walk whose start order is `order` (e.g. a strict one): the walk is run, and a
/// service the walker hands out earlier than `target` starts it is held back instead. Returns
/// the held services (by id) and the walk, equal to `target` — the walker never starts a held
/// service before all those planned before it have started, which in `target` is when it
/// starts. Only the services the walker would really start too early are held, so a run stays
/// free to start anything else as soon as it may.
pub fn simulate_following(
    g: Arc<ScopeGraph>,
    mode: WalkMode,
    parallel: usize,
    order: &[SvcId],
    target: &Walk,
    dur: &[Ms],
) -> (Vec<bool>, Walk) {
    let n = g.n();
    let mut rank = vec![u32::MAX; n];
    for (r, &id) in order.iter().enumerate() {
        rank[id] = r as u32;
    }
    let rank: Arc<[u32]> = rank.into();
    let holds = Holds {
        rank: rank.clone(),
        by_rank: order.into(),
        held: vec![false; n],
    };
    let mut w = Walker::with_queue(
        g,
        mode,
        parallel,
        RankQueue::new(rank.clone()),
        Some(holds),
        &[],
    );
    // The first service of `order` not handed out yet.
    let mut handed = vec![false; n];
    let mut next = 0;
    let walk = walk_with(&mut w, dur, |w, id, t| {
        while next < order.len() && handed[order[next]] {
            next += 1;
        }
        // Too early; or at the right instant but before a service planned ahead of it that
        // also starts now (it matters when a zero-length service frees its slot within the
        // instant).
        let early = target.start[id] > t
            || (rank[id] as usize > next && next < order.len() && target.start[order[next]] == t);
        if early && !w.holds.as_ref().is_some_and(|h| h.held[id]) {
            w.hold_back(id);
            false
        } else {
            handed[id] = true;
            true
        }
    });
    let held = w.holds.map(|h| h.held).unwrap_or_default();
    (held, walk)
}

/// A walk simulated on a virtual clock in which every service takes `dur[id]` ms and
/// recovers: what the plan predicts. Completions at the same instant are all taken back
/// before anything new starts (a slot and a dependency freed at the same instant are both
/// available to the next start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Planned start and ready time by id (0 outside the scope).
    pub start: Vec<Ms>,
    pub ready: Vec<Ms>,
    pub makespan: Ms,
    /// Ids in the order the walker handed them out.
    pub order: Vec<SvcId>,
}

pub fn simulate<Q: ReadyQueue>(mut w: Walker<Q>, dur: &[Ms]) -> Walk {
    walk_with(&mut w, dur, |_, _, _| true)
}

/// [`simulate`], asking `accept(walker, id, now)` about every service handed out; a service
/// refused must have been given back to the walker.
fn walk_with<Q: ReadyQueue>(
    w: &mut Walker<Q>,
    dur: &[Ms],
    mut accept: impl FnMut(&mut Walker<Q>, SvcId, Ms) -> bool,
) -> Walk {
    let n = w.g.n();
    let mut start = vec![0; n];
    let mut ready = vec![0; n];
    let mut order = Vec::with_capacity(w.g.len());
    let mut running: BinaryHeap<Reverse<(Ms, SvcId)>> = BinaryHeap::new();
    let mut t: Ms = 0;
    w.queue.set_now(t);
    loop {
        while let Some(id) = w.next_ready() {
            if !accept(w, id, t) {
                continue;
            }
            start[id] = t;
            ready[id] = t + dur[id];
            order.push(id);
            running.push(Reverse((ready[id], id)));
        }
        let Some(&Reverse((ft, _))) = running.peek() else {
            break;
        };
        t = ft;
        // The clock moves before the completions: what they make ready is ready at `t`.
        w.queue.set_now(t);
        while let Some(&Reverse((f, id))) = running.peek() {
            if f != t {
                break;
            }
            running.pop();
            w.complete(id, true);
        }
    }
    debug_assert!(w.is_done());
    Walk {
        start,
        ready,
        makespan: t,
        order,
    }
}
