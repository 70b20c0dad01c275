//! The improvement search: a seeded, deterministic local search over priority lists. Each step
//! changes the current best list where a breach (or, without breaches, the makespan) comes
//! from, decodes it both ways (list and strict, see `optimize`) with the walker, and keeps the
//! result when it is no worse. Steps are bounded by a budget of walks.

use crate::model::SvcId;
use crate::plan::optimize::{Candidate, Objective, Problem, Source};
use crate::plan::walker::WalkMode;

/// splitmix64: small, seedable, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Runs at most `budget` walks from `start`; stops early when `bound` (a lower bound on any
/// schedule's objective) is reached. Returns the best candidate and the walks used.
pub fn improve(
    p: &Problem,
    start: Candidate,
    budget: usize,
    seed: u64,
    bound: Objective,
) -> (Candidate, usize) {
    let mut rng = Rng::new(seed);
    let mut best = start;
    let mut cur = best.clone();
    let mut used = 0;
    let strict = p.parallel < p.g.len();
    let mut stale = 0usize;
    while used < budget && best.obj > bound {
        let Some(order) = propose(p, &cur, &mut rng) else {
            break;
        };
        let mut next = p.list(&order, Source::Search);
        used += 1;
        if strict && used < budget {
            let s = p.strict(&order, Source::Search);
            used += 1;
            if s.obj < next.obj {
                next = s;
            }
        }
        if next.obj <= cur.obj {
            if next.obj < best.obj {
                best = next.clone();
                stale = 0;
            }
            cur = next;
        }
        stale += 1;
        // A long plateau: restart from the best.
        if stale > 64 {
            cur = best.clone();
            stale = 0;
        }
    }
    (best, used)
}

/// A new priority list near `cur`'s: a service that waited on the way to a breach (or to the
/// end of the schedule) moves ahead of where it could have started, or one that held its slot
/// moves behind it. Keeps the list topological (and sorted by wave in waves mode).
fn propose(p: &Problem, cur: &Candidate, rng: &mut Rng) -> Option<Vec<SvcId>> {
    let g = &p.g;
    let w = &cur.walk;
    let order = &w.order;
    if order.len() < 2 {
        return None;
    }
    let mut pos = vec![0usize; g.n()];
    for (i, &id) in order.iter().enumerate() {
        pos[id] = i;
    }
    let rel = p.release_times(w);
    // The target: a random breached service, else the last to finish.
    let late: Vec<SvcId> = order
        .iter()
        .copied()
        .filter(|&id| w.ready[id] > p.rto[id])
        .collect();
    let target = if late.is_empty() {
        *order
            .iter()
            .max_by_key(|&&id| (w.ready[id], std::cmp::Reverse(id)))?
    } else {
        late[rng.below(late.len())]
    };
    // Up its binding chain, the services that waited after they were released.
    let mut waited = Vec::new();
    let mut x = target;
    loop {
        if w.start[x] > rel[x] {
            waited.push(x);
        }
        let Some(&d) = g
            .deps(x)
            .iter()
            .max_by_key(|&&d| (w.ready[d], std::cmp::Reverse(d)))
        else {
            break;
        };
        x = d;
    }
    let mut new = order.clone();
    if waited.is_empty() {
        // Nothing on the chain waited: swap two neighbours anywhere for variety.
        let i = rng.below(order.len() - 1);
        let (a, b) = (order[i], order[i + 1]);
        if related(p, a, b) {
            return Some(new);
        }
        new.swap(i, i + 1);
        return Some(new);
    }
    let x = waited[rng.below(waited.len())];
    // Where x could go: not before its dependencies (or its wave), ...
    let floor = floor_of(p, &pos, x);
    if rng.below(2) == 0 {
        // ... ahead of the first service that started after x was released.
        let first_after = order.partition_point(|&id| w.start[id] < rel[x]).max(floor);
        let to = if first_after >= pos[x] {
            return Some(new);
        } else if rng.below(2) == 0 {
            first_after
        } else {
            first_after + rng.below(pos[x] - first_after)
        };
        let v = new.remove(pos[x]);
        new.insert(to, v);
    } else {
        // ... or a service that held a slot while x waited moves behind x.
        let holders: Vec<SvcId> = order[floor..pos[x]]
            .iter()
            .copied()
            .filter(|&b| w.ready[b] > rel[x] && w.start[b] <= w.start[x])
            .filter(|&b| !p.g.deps(x).contains(&b))
            .collect();
        if holders.is_empty() {
            return Some(new);
        }
        let b = holders[rng.below(holders.len())];
        // Not behind its own dependents.
        let ceil = g
            .dependents(b)
            .iter()
            .map(|&t| pos[t])
            .min()
            .unwrap_or(usize::MAX)
            .min(pos[x] + 1);
        let ceil = if p.mode == WalkMode::Waves {
            ceil.min(wave_end(p, &pos, order, b))
        } else {
            ceil
        };
        if ceil <= pos[b] + 1 {
            return Some(new);
        }
        let v = new.remove(pos[b]);
        new.insert(ceil - 1, v);
    }
    Some(new)
}

/// Whether `b` must stay after `a` (a dependency, or a later wave in waves mode).
fn related(p: &Problem, a: SvcId, b: SvcId) -> bool {
    p.g.deps(b).contains(&a) || (p.mode == WalkMode::Waves && p.g.wave[a] != p.g.wave[b])
}

/// The first position `x` may take: after its dependencies and, in waves mode, after every
/// service of an earlier wave.
fn floor_of(p: &Problem, pos: &[usize], x: SvcId) -> usize {
    let deps = p.g.deps(x).iter().map(|&d| pos[d] + 1).max().unwrap_or(0);
    if p.mode == WalkMode::Waves {
        // The list is sorted by wave: x's wave starts after the last earlier-wave service.
        let k = p.g.wave[x] as usize;
        let before: usize = (0..k).map(|j| p.g.wave_members(j).len()).sum();
        deps.max(before)
    } else {
        deps
    }
}

/// One past the last position of `b`'s wave in a wave-sorted list.
fn wave_end(p: &Problem, _pos: &[usize], _order: &[SvcId], b: SvcId) -> usize {
    let k = p.g.wave[b] as usize;
    (0..=k).map(|j| p.g.wave_members(j).len()).sum()
}
