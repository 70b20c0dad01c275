//! The walker decides *which service may start now* and takes completions back. It does no I/O
//! and knows nothing about time, so the runner (real or simulated) drives it and it is tested on
//! tiny graphs with a controlled completion order.
//!
//! Rules (SPEC §4, §5):
//! - waves mode: wave k opens when every service of wave k−1 is terminal (recovered, failed or
//!   blocked); eager mode: a service is ready as soon as its essential dependencies in scope are
//!   recovered;
//! - at most `parallel` services run at once; among the ready ones the planner's priority rank
//!   (earliest modified deadline, then tier, then name) goes first;
//! - when a service fails, its transitive essential dependents in scope become `blocked`;
//! - `stop()` (from `--on-failure stop` or a signal) starts nothing new.
//!
//! Every operation is O(degree · log n), so a walk is O((V + E) log V).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{Model, SvcId};
use crate::plan::{Ordering, Scope};

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

#[derive(Debug, Clone)]
pub struct Walker {
    mode: WalkMode,
    parallel: usize,
    state: Vec<SvcState>,
    rank: Vec<u32>,
    /// In-scope essential dependencies not yet recovered (eager readiness).
    waiting_on: Vec<u32>,
    /// Essential dependents in scope (copied so the walker owns everything it needs).
    dependents: Vec<Vec<SvcId>>,
    wave: Vec<u32>,
    /// Services per wave, and how many of them are not terminal yet (waves mode).
    by_wave: Vec<Vec<SvcId>>,
    open_in_wave: Vec<usize>,
    current_wave: usize,
    /// Min-heap on (rank, id).
    ready: BinaryHeap<Reverse<(u32, SvcId)>>,
    running: usize,
    stopped: bool,
    /// Services not terminal and not running, in or out of the ready heap.
    remaining: usize,
}

impl Walker {
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
        let n = model.services.len();
        let mut state = vec![SvcState::Out; n];
        let mut waiting_on = vec![0u32; n];
        let mut dependents = vec![Vec::new(); n];
        let max_wave = scope.ids.iter().map(|&i| ord.wave[i]).max().unwrap_or(0) as usize;
        let mut by_wave = vec![Vec::new(); max_wave + 1];
        for &id in &scope.ids {
            state[id] = SvcState::Pending;
            waiting_on[id] = model.services[id]
                .depends_on
                .iter()
                .filter(|&&d| scope.member[d])
                .count() as u32;
            dependents[id] = model.dependents[id]
                .iter()
                .copied()
                .filter(|&t| scope.member[t])
                .collect();
            by_wave[ord.wave[id] as usize].push(id);
        }
        let open_in_wave = by_wave.iter().map(Vec::len).collect();
        let mut w = Walker {
            mode,
            parallel: if parallel == 0 { usize::MAX } else { parallel },
            state,
            rank: ord.rank.clone(),
            waiting_on,
            dependents,
            wave: ord.wave.clone(),
            by_wave,
            open_in_wave,
            current_wave: 0,
            ready: BinaryHeap::new(),
            running: 0,
            stopped: false,
            remaining: scope.len(),
        };
        for &id in &scope.ids {
            if already_recovered.get(id).copied().unwrap_or(false) {
                w.settle(id, SvcState::Recovered);
            }
        }
        match mode {
            WalkMode::Eager => {
                for &id in &scope.ids {
                    if w.state[id] == SvcState::Pending && w.waiting_on[id] == 0 {
                        w.push_ready(id);
                    }
                }
            }
            WalkMode::Waves => w.open_waves(),
        }
        w
    }

    fn push_ready(&mut self, id: SvcId) {
        self.ready.push(Reverse((self.rank[id], id)));
    }

    /// Marks `id` terminal and updates readiness counters (not the running count).
    fn settle(&mut self, id: SvcId, st: SvcState) {
        if self.state[id] != SvcState::Running {
            self.remaining -= 1;
        }
        self.state[id] = st;
        self.open_in_wave[self.wave[id] as usize] -= 1;
        if st == SvcState::Recovered {
            for i in 0..self.dependents[id].len() {
                let t = self.dependents[id][i];
                self.waiting_on[t] -= 1;
                if self.mode == WalkMode::Eager
                    && self.waiting_on[t] == 0
                    && self.state[t] == SvcState::Pending
                {
                    self.push_ready(t);
                }
            }
        }
    }

    /// Waves mode: while the current wave is fully terminal, open the next one.
    fn open_waves(&mut self) {
        loop {
            if self.current_wave >= self.by_wave.len() {
                return;
            }
            let cur = self.current_wave;
            if self.open_in_wave[cur] > 0 {
                // Hand out the wave's services once, when it opens.
                if !self.by_wave[cur].is_empty() {
                    let ids = std::mem::take(&mut self.by_wave[cur]);
                    for &id in &ids {
                        if self.state[id] == SvcState::Pending {
                            self.push_ready(id);
                        }
                    }
                }
                return;
            }
            self.by_wave[cur] = Vec::new();
            self.current_wave += 1;
        }
    }

    /// The next service to start, if the concurrency limit and the readiness rules allow one.
    /// The caller must start it (it is counted as running).
    pub fn next_ready(&mut self) -> Option<SvcId> {
        if self.stopped || self.running >= self.parallel {
            return None;
        }
        while let Some(Reverse((_, id))) = self.ready.pop() {
            // A service blocked after it became ready is skipped lazily.
            if self.state[id] == SvcState::Pending {
                self.state[id] = SvcState::Running;
                self.running += 1;
                self.remaining -= 1;
                return Some(id);
            }
        }
        None
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
            let mut queue = vec![id];
            let mut head = 0;
            while head < queue.len() {
                let cause = queue[head];
                head += 1;
                for i in 0..self.dependents[cause].len() {
                    let t = self.dependents[cause][i];
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Defaults, Mode, Service};
    use crate::plan::{self, Scope};
    use std::path::PathBuf;
    use std::time::Duration;

    fn model(spec: &[(&str, u64, &[&str])]) -> Model {
        Model::from_parts(
            PathBuf::from("."),
            Defaults::default(),
            spec.iter()
                .map(|(n, rto, deps)| {
                    (
                        Service::new(*n, 1, Duration::from_secs(*rto)),
                        deps.iter().map(|s| s.to_string()).collect(),
                        vec![],
                    )
                })
                .collect(),
        )
    }

    fn walker(m: &Model, mode: WalkMode, parallel: usize) -> Walker {
        let scope = Scope::all(m);
        let ord = plan::ordering(m, &scope, Mode::Failover);
        Walker::new(m, &scope, &ord, mode, parallel, &[])
    }

    fn drain(w: &mut Walker, m: &Model) -> Vec<String> {
        std::iter::from_fn(|| w.next_ready())
            .map(|i| m.name(i).to_string())
            .collect()
    }

    fn id(m: &Model, n: &str) -> SvcId {
        m.id(n).unwrap()
    }

    // db ← api ← web ; cache ← web ; batch (independent, slow wave 0)
    fn shop() -> Model {
        model(&[
            ("db", 1000, &[]),
            ("cache", 1000, &[]),
            ("api", 600, &["db"]),
            ("web", 900, &["api", "cache"]),
            ("batch", 5000, &[]),
        ])
    }

    #[test]
    fn eager_starts_dependents_as_soon_as_their_deps_recover() {
        let m = shop();
        let mut w = walker(&m, WalkMode::Eager, 0);
        let mut first = drain(&mut w, &m);
        first.sort();
        assert_eq!(first, ["batch", "cache", "db"]);
        assert!(w.complete(id(&m, "db"), true).is_empty());
        // api is ready although batch and cache still run.
        assert_eq!(drain(&mut w, &m), ["api"]);
        w.complete(id(&m, "api"), true);
        assert!(drain(&mut w, &m).is_empty(), "web still waits for cache");
        w.complete(id(&m, "cache"), true);
        assert_eq!(drain(&mut w, &m), ["web"]);
        w.complete(id(&m, "web"), true);
        assert!(!w.is_done());
        w.complete(id(&m, "batch"), true);
        assert!(w.is_done());
    }

    #[test]
    fn waves_wait_for_the_whole_previous_wave() {
        let m = shop();
        let mut w = walker(&m, WalkMode::Waves, 0);
        assert_eq!(drain(&mut w, &m).len(), 3);
        w.complete(id(&m, "db"), true);
        assert!(
            drain(&mut w, &m).is_empty(),
            "wave 1 waits for batch and cache"
        );
        w.complete(id(&m, "cache"), true);
        w.complete(id(&m, "batch"), true);
        assert_eq!(drain(&mut w, &m), ["api"]);
        w.complete(id(&m, "api"), true);
        assert_eq!(drain(&mut w, &m), ["web"]);
        w.complete(id(&m, "web"), true);
        assert!(w.is_done());
    }

    #[test]
    fn parallel_limit_and_priority_order() {
        // Tightest modified deadline first: db (feeds api with rto 600) before the rest.
        let m = shop();
        let mut w = walker(&m, WalkMode::Eager, 1);
        assert_eq!(drain(&mut w, &m), ["db"]);
        w.complete(id(&m, "db"), true);
        // api (deadline 600) beats cache (900-300=600 → tie on deadline, tier, then name).
        assert_eq!(drain(&mut w, &m), ["api"]);
        w.complete(id(&m, "api"), true);
        assert_eq!(drain(&mut w, &m), ["cache"]);
        w.complete(id(&m, "cache"), true);
        assert_eq!(drain(&mut w, &m), ["web"]);
        w.complete(id(&m, "web"), true);
        assert_eq!(drain(&mut w, &m), ["batch"]);
        w.complete(id(&m, "batch"), true);
        assert!(w.is_done());
    }

    #[test]
    fn failure_blocks_transitive_dependents_only() {
        let m = shop();
        for mode in [WalkMode::Eager, WalkMode::Waves] {
            let mut w = walker(&m, mode, 0);
            drain(&mut w, &m);
            let blocked = w.complete(id(&m, "db"), false);
            let names: Vec<(&str, &str)> = blocked
                .iter()
                .map(|&(a, b)| (m.name(a), m.name(b)))
                .collect();
            assert_eq!(names, [("api", "db"), ("web", "api")]);
            w.complete(id(&m, "cache"), true);
            assert!(!w.is_done());
            w.complete(id(&m, "batch"), true);
            assert!(w.is_done());
            assert_eq!(w.state(id(&m, "web")), SvcState::Blocked);
            assert_eq!(w.state(id(&m, "cache")), SvcState::Recovered);
        }
    }

    #[test]
    fn stop_starts_nothing_new() {
        let m = shop();
        let mut w = walker(&m, WalkMode::Eager, 1);
        assert_eq!(drain(&mut w, &m), ["db"]);
        w.stop();
        w.complete(id(&m, "db"), true);
        assert!(drain(&mut w, &m).is_empty());
        assert!(w.is_done());
        assert_eq!(w.state(id(&m, "api")), SvcState::Pending);
    }

    #[test]
    fn already_recovered_services_are_not_handed_out() {
        let m = shop();
        let scope = Scope::all(&m);
        let ord = plan::ordering(&m, &scope, Mode::Failover);
        let mut done = vec![false; m.services.len()];
        done[id(&m, "db")] = true;
        done[id(&m, "cache")] = true;
        for mode in [WalkMode::Eager, WalkMode::Waves] {
            let mut w = Walker::new(&m, &scope, &ord, mode, 0, &done);
            let mut got = drain(&mut w, &m);
            got.sort();
            if mode == WalkMode::Eager {
                assert_eq!(got, ["api", "batch"]);
            } else {
                assert_eq!(got, ["batch"]);
                w.complete(id(&m, "batch"), true);
                assert_eq!(drain(&mut w, &m), ["api"]);
            }
        }
    }

    #[test]
    fn empty_waves_are_skipped_and_everything_recovered_is_done() {
        let m = model(&[("a", 10, &[]), ("b", 10, &["a"])]);
        let scope = Scope::all(&m);
        let ord = plan::ordering(&m, &scope, Mode::Failover);
        let w = Walker::new(&m, &scope, &ord, WalkMode::Waves, 4, &[true, true]);
        assert!(w.is_done());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::model::{Defaults, Mode, Service};
    use crate::plan::{self, Scope};
    use proptest::prelude::*;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A random DAG (edges only to lower indices), a parallel limit, a mode, and for each
    /// completion a choice of which running service finishes and whether it fails.
    /// (dependencies per service, parallel, eager, completion picks).
    type Case = (Vec<Vec<usize>>, usize, bool, Vec<(usize, bool)>);

    fn case() -> impl Strategy<Value = Case> {
        (1usize..25)
            .prop_flat_map(|n| {
                let deps = (0..n)
                    .map(|i| proptest::collection::vec(0..i.max(1), 0..3.min(i + 1)))
                    .collect::<Vec<_>>();
                (
                    deps,
                    0usize..4,
                    any::<bool>(),
                    proptest::collection::vec((0usize..100, proptest::bool::weighted(0.15)), 60),
                )
            })
            .prop_map(|(deps, p, eager, picks)| {
                let deps = deps
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| d.into_iter().filter(|&j| j < i).collect())
                    .collect();
                (deps, p, eager, picks)
            })
    }

    proptest! {
        #[test]
        fn walk_invariants((deps, parallel, eager, picks) in case()) {
            let n = deps.len();
            let name = |i: usize| format!("s{i:03}");
            let m = Model::from_parts(
                PathBuf::from("."),
                Defaults::default(),
                (0..n)
                    .map(|i| {
                        (
                            Service::new(name(i), 1, Duration::from_secs(60)),
                            deps[i].iter().map(|&j| name(j)).collect(),
                            vec![],
                        )
                    })
                    .collect(),
            );
            let scope = Scope::all(&m);
            let ord = plan::ordering(&m, &scope, Mode::Failover);
            let mode = if eager { WalkMode::Eager } else { WalkMode::Waves };
            let mut w = Walker::new(&m, &scope, &ord, mode, parallel, &[]);
            let mut running: Vec<SvcId> = Vec::new();
            let mut picks = picks.into_iter().cycle();
            let mut steps = 0;
            loop {
                while let Some(id) = w.next_ready() {
                    // Every essential dependency is recovered before a service starts.
                    for &d in &m.services[id].depends_on {
                        prop_assert_eq!(w.state(d), SvcState::Recovered);
                    }
                    if !eager {
                        // Waves: every earlier-wave service is terminal.
                        for j in 0..n {
                            if ord.wave[j] < ord.wave[id] {
                                prop_assert!(w.state(j).is_terminal());
                            }
                        }
                    }
                    running.push(id);
                    prop_assert!(parallel == 0 || running.len() <= parallel);
                }
                if w.is_done() {
                    break;
                }
                prop_assert!(!running.is_empty(), "not done but nothing runs: deadlock");
                let (k, fail) = picks.next().unwrap();
                let id = running.swap_remove(k % running.len());
                for (b, cause) in w.complete(id, !fail) {
                    prop_assert!(m.services[b].depends_on.contains(&cause));
                }
                steps += 1;
                prop_assert!(steps <= n);
            }
            // Everything ends terminal; blocked exactly when a dependency is failed/blocked.
            for i in 0..n {
                let st = w.state(i);
                prop_assert!(st.is_terminal(), "{} is {:?}", i, st);
                let bad_dep = m.services[i]
                    .depends_on
                    .iter()
                    .any(|&d| matches!(w.state(d), SvcState::Failed | SvcState::Blocked));
                prop_assert_eq!(st == SvcState::Blocked, bad_dep);
            }
        }
    }
}
