//! List scheduling in virtual time.
//!
//! Time is integer milliseconds from the RTO clock's start: integer arithmetic makes the
//! schedule exact and the output byte-identical across runs and machines. Both modes are
//! O((V + E) log V): a binary heap keyed by priority rank holds the services that may start,
//! a binary heap keyed by (time, rank) holds the completions.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{Model, SvcId};
use crate::plan::Scope;

/// `parallel` value meaning "no limit".
pub const UNLIMITED: usize = usize::MAX;

/// Milliseconds of virtual time.
pub type Ms = u64;

/// Planned start and ready time of every service in scope (indexed by id; 0 outside the scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub start: Vec<Ms>,
    pub ready: Vec<Ms>,
    pub makespan: Ms,
}

/// The inputs of one scheduling run, all indexed by service id.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub model: &'a Model,
    pub scope: &'a Scope,
    pub wave: &'a [u32],
    pub dur: &'a [Ms],
    /// Priority rank (0 = start first); must be unique within the scope.
    pub rank: &'a [u32],
    /// Max services running at once; `UNLIMITED` for none.
    pub parallel: usize,
}

/// Waves mode (SPEC §4): wave k starts when every service of wave k−1 is ready; within a wave,
/// at most `parallel` services run at once and a freed slot goes to the best-ranked service
/// still waiting (list scheduling of independent jobs).
pub fn waves(inp: Inputs<'_>) -> Schedule {
    let n = inp.model.services.len();
    let mut start = vec![0; n];
    let mut ready = vec![0; n];
    // Bucket the scope by wave (counting sort) then order each bucket by rank: linear plus
    // the sort inside buckets.
    let nwaves = inp
        .scope
        .ids
        .iter()
        .map(|&i| inp.wave[i] as usize + 1)
        .max()
        .unwrap_or(0);
    let mut buckets: Vec<Vec<SvcId>> = vec![Vec::new(); nwaves];
    for &id in &inp.scope.ids {
        buckets[inp.wave[id] as usize].push(id);
    }
    let parallel = inp.parallel.max(1);
    let mut t: Ms = 0;
    // Free-at times of the slots; a min-heap so the next job goes to the earliest free slot.
    let mut slots: BinaryHeap<Reverse<Ms>> = BinaryHeap::new();
    for bucket in &mut buckets {
        bucket.sort_unstable_by_key(|&i| inp.rank[i]);
        let mut end = t;
        slots.clear();
        for _ in 0..parallel.min(bucket.len()) {
            slots.push(Reverse(t));
        }
        for &id in bucket.iter() {
            let Some(Reverse(free)) = slots.pop() else {
                unreachable!("at least one slot per wave");
            };
            start[id] = free;
            ready[id] = free + inp.dur[id];
            end = end.max(ready[id]);
            slots.push(Reverse(ready[id]));
        }
        t = end;
    }
    Schedule {
        start,
        ready,
        makespan: t,
    }
}

/// Eager mode (SPEC §4): a service may start as soon as its essential dependencies are ready;
/// when more may start than `parallel` allows, the best-ranked ones start first.
/// With `UNLIMITED` every service starts at the latest ready time of its dependencies, so the
/// makespan equals the critical path length.
pub fn eager(inp: Inputs<'_>) -> Schedule {
    let model = inp.model;
    let n = model.services.len();
    let mut start = vec![0; n];
    let mut ready = vec![0; n];
    let mut indeg = vec![0u32; n];
    // rank → id, to key the ready heap by rank alone.
    let mut by_rank: Vec<SvcId> = vec![0; inp.scope.len()];
    let mut candidates: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    for &id in &inp.scope.ids {
        by_rank[inp.rank[id] as usize] = id;
        indeg[id] = model.services[id]
            .depends_on
            .iter()
            .filter(|&&d| inp.scope.member[d])
            .count() as u32;
        if indeg[id] == 0 {
            candidates.push(Reverse(inp.rank[id]));
        }
    }
    let mut running: BinaryHeap<Reverse<(Ms, u32)>> = BinaryHeap::new();
    let parallel = inp.parallel.max(1);
    let mut t: Ms = 0;
    let mut makespan: Ms = 0;
    loop {
        while running.len() < parallel {
            let Some(Reverse(r)) = candidates.pop() else {
                break;
            };
            let id = by_rank[r as usize];
            start[id] = t;
            ready[id] = t + inp.dur[id];
            running.push(Reverse((ready[id], r)));
        }
        let Some(Reverse((ft, _))) = running.peek().copied() else {
            break;
        };
        // Complete everything that finishes at `ft` before starting anything: a slot and a
        // dependency freed at the same instant are both available to the next start.
        t = ft;
        makespan = makespan.max(t);
        while let Some(&Reverse((f, r))) = running.peek() {
            if f != t {
                break;
            }
            running.pop();
            let id = by_rank[r as usize];
            for &dep in &model.dependents[id] {
                if inp.scope.member[dep] {
                    indeg[dep] -= 1;
                    if indeg[dep] == 0 {
                        candidates.push(Reverse(inp.rank[dep]));
                    }
                }
            }
        }
    }
    Schedule {
        start,
        ready,
        makespan,
    }
}
