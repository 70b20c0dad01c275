//! Exact search for small scopes: the best schedule of all, so that the plan can say that no
//! order of these services does better.
//!
//! Every schedule is matched or beaten (each service done no later) by the strict decoding of
//! its own start order: services start in that order, each as early as its dependencies (or
//! wave), a free slot and the previous start allow. Our objective only grows with completion
//! times, so searching start orders is enough. The search builds orders one service at a time
//! (depth first, most urgent first), bounds each partial order by the best completion it could
//! still have, and drops a partial order when another with the same services placed is at
//! least as good in every respect (time, slots, finish times, breaches, lateness, makespan).

use std::collections::HashMap;

use crate::model::SvcId;
use crate::plan::optimize::{Objective, Problem};
use crate::plan::walker::{Ms, WalkMode};

/// Most services the exact search takes on.
pub const MAX_SERVICES: usize = 12;

/// Most partial orders it expands before giving up (a few hundred milliseconds at worst).
const MAX_NODES: usize = 400_000;

/// Partial orders kept per set of placed services for the dominance test.
const MAX_KEPT: usize = 48;

pub struct Exact {
    /// The best start order found (ids), when better than `upper`.
    pub order: Option<Vec<SvcId>>,
    /// The search finished: nothing does better than the result (or `upper`).
    pub proven: bool,
}

#[derive(Clone)]
struct Node {
    placed: u32,
    t_last: Ms,
    /// Free times of the slots, sorted.
    slots: Vec<Ms>,
    fin: Vec<Ms>,
    obj: Objective,
}

struct Ctx<'a> {
    k: usize,
    ids: Vec<SvcId>,
    dur: Vec<Ms>,
    rto: Vec<Ms>,
    wave: Vec<u32>,
    deps: Vec<u32>,
    dependents: Vec<u32>,
    /// Local indices in topological order, and by urgency (child order).
    topo: Vec<usize>,
    urgency: Vec<usize>,
    mode: WalkMode,
    best: Objective,
    best_order: Option<Vec<usize>>,
    nodes: usize,
    memo: HashMap<u32, Vec<Node>>,
    path: Vec<usize>,
    _p: std::marker::PhantomData<&'a ()>,
}

/// Searches for a schedule strictly better than `upper`.
pub fn search(p: &Problem, upper: Objective) -> Exact {
    let g = &p.g;
    let k = g.len();
    debug_assert!(k <= MAX_SERVICES);
    let ids = g.ids.clone();
    let mut local = vec![usize::MAX; g.n()];
    for (i, &id) in ids.iter().enumerate() {
        local[id] = i;
    }
    let mask = |list: &[SvcId]| list.iter().fold(0u32, |m, &d| m | 1 << local[d]);
    let deps: Vec<u32> = ids.iter().map(|&id| mask(g.deps(id))).collect();
    let dependents: Vec<u32> = ids.iter().map(|&id| mask(g.dependents(id))).collect();
    let mut topo = Vec::with_capacity(k);
    let mut done = 0u32;
    while topo.len() < k {
        for (i, &d) in deps.iter().enumerate() {
            if done & (1 << i) == 0 && d & !done == 0 {
                topo.push(i);
                done |= 1 << i;
            }
        }
    }
    let mut urgency: Vec<usize> = (0..k).collect();
    urgency.sort_by_key(|&i| {
        let id = ids[i];
        (
            p.keys.achievable[id].saturating_sub(p.dur[id] as i64),
            p.keys.tier[id],
            id,
        )
    });
    let slots = p.parallel.min(k).max(1);
    let mut ctx = Ctx {
        k,
        dur: ids.iter().map(|&id| p.dur[id]).collect(),
        rto: ids.iter().map(|&id| p.rto[id]).collect(),
        wave: ids.iter().map(|&id| g.wave[id]).collect(),
        ids,
        deps,
        dependents,
        topo,
        urgency,
        mode: p.mode,
        best: upper,
        best_order: None,
        nodes: 0,
        memo: HashMap::new(),
        path: Vec::with_capacity(k),
        _p: std::marker::PhantomData,
    };
    let root = Node {
        placed: 0,
        t_last: 0,
        slots: vec![0; slots],
        fin: vec![0; k],
        obj: Objective::default(),
    };
    let finished = ctx.dfs(&root);
    Exact {
        order: ctx
            .best_order
            .map(|o| o.into_iter().map(|i| ctx.ids[i]).collect()),
        proven: finished,
    }
}

impl Ctx<'_> {
    /// Returns false when the node budget ran out.
    fn dfs(&mut self, node: &Node) -> bool {
        if node.placed.count_ones() as usize == self.k {
            if node.obj < self.best {
                self.best = node.obj;
                self.best_order = Some(self.path.clone());
            }
            return true;
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return false;
        }
        if self.bound(node) >= self.best || self.dominated(node) {
            return true;
        }
        // In waves mode the order is sorted by wave: only the lowest unplaced wave may go next.
        let min_wave = (0..self.k)
            .filter(|&i| node.placed & (1 << i) == 0)
            .map(|i| self.wave[i])
            .min()
            .unwrap_or(0);
        let barrier = (0..self.k)
            .filter(|&i| node.placed & (1 << i) != 0 && self.wave[i] < min_wave)
            .map(|i| node.fin[i])
            .max()
            .unwrap_or(0);
        for c in 0..self.k {
            let j = self.urgency[c];
            if node.placed & (1 << j) != 0 || self.deps[j] & !node.placed != 0 {
                continue;
            }
            if self.mode == WalkMode::Waves && self.wave[j] != min_wave {
                continue;
            }
            let released = match self.mode {
                WalkMode::Eager => (0..self.k)
                    .filter(|&d| self.deps[j] & (1 << d) != 0)
                    .map(|d| node.fin[d])
                    .max()
                    .unwrap_or(0),
                WalkMode::Waves => barrier,
            };
            let start = node.t_last.max(released).max(node.slots[0]);
            let end = start + self.dur[j];
            let mut child = node.clone();
            child.placed |= 1 << j;
            child.t_last = start;
            child.slots[0] = end;
            for s in child.slots.iter_mut() {
                *s = (*s).max(start);
            }
            child.slots.sort_unstable();
            child.fin[j] = end;
            if end > self.rto[j] {
                child.obj.breaches += 1;
                child.obj.lateness += end - self.rto[j];
            }
            child.obj.makespan = child.obj.makespan.max(end);
            self.path.push(j);
            let ok = self.dfs(&child);
            self.path.pop();
            if !ok {
                return false;
            }
        }
        true
    }

    /// A lower bound on the objective of every completion of `node`: each unplaced service
    /// starts no earlier than the last start, the first free slot and its dependencies'
    /// (bounded) finish times.
    fn bound(&self, node: &Node) -> Objective {
        let floor = node.t_last.max(node.slots[0]);
        let mut eft = node.fin.clone();
        let mut o = node.obj;
        for &j in &self.topo {
            if node.placed & (1 << j) != 0 {
                continue;
            }
            let est = (0..self.k)
                .filter(|&d| self.deps[j] & (1 << d) != 0)
                .map(|d| eft[d])
                .max()
                .unwrap_or(0)
                .max(floor);
            eft[j] = est + self.dur[j];
            if eft[j] > self.rto[j] {
                o.breaches += 1;
                o.lateness += eft[j] - self.rto[j];
            }
            o.makespan = o.makespan.max(eft[j]);
        }
        o
    }

    /// Whether a partial order already explored with the same services placed is at least as
    /// good as `node` in every respect; records `node` otherwise.
    fn dominated(&mut self, node: &Node) -> bool {
        // Nothing starts before the last start any more: times below it are all the same.
        let t = node.t_last;
        // Finish times matter for services with dependents still to place and, in waves
        // mode, for every service (the next wave opens after the last of them).
        let waves = self.mode == WalkMode::Waves;
        let sig = |n: &Node| -> Vec<Ms> {
            (0..self.k)
                .map(|i| {
                    let placed = n.placed & (1 << i) != 0;
                    if placed && (waves || self.dependents[i] & !n.placed != 0) {
                        n.fin[i].max(t)
                    } else {
                        0
                    }
                })
                .collect()
        };
        let mine = sig(node);
        let le = |a: &Node| {
            a.t_last <= node.t_last
                && a.obj.breaches <= node.obj.breaches
                && a.obj.lateness <= node.obj.lateness
                && a.obj.makespan <= node.obj.makespan
                && a.slots.iter().zip(&node.slots).all(|(x, y)| x.max(&t) <= y)
                && sig(a).iter().zip(&mine).all(|(x, y)| x <= y)
        };
        let kept = self.memo.entry(node.placed).or_default();
        if kept.iter().any(le) {
            return true;
        }
        if kept.len() < MAX_KEPT {
            kept.push(node.clone());
        }
        false
    }
}
