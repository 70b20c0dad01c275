//! The improvement search: a seeded, deterministic local search over priority lists. Each step
//! changes the current best list where a breach (or, without breaches, the makespan) comes
//! from, decodes it both ways (list and strict, see `optimize`) with the walker, and keeps the
//! result when it is no worse. Steps are bounded by a budget of walks.

use crate::model::SvcId;
use crate::plan::optimize::{Candidate, Objective, Problem, Source};
use crate::plan::walker::{Ms, Walk, WalkMode};

/// splitmix64: small, seedable, and the same sequence on every machine (the search's, and the
/// benchmarks' graph generators').
#[derive(Debug, Clone)]
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
            // Nothing to change here (every neighbour is bound to the next): go back to the
            // best, or stop if this is the best.
            if cur.obj == best.obj {
                break;
            }
            cur = best.clone();
            continue;
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
        // Stuck for a while: start again from the best, shaken by a few random moves
        // (iterated local search).
        if stale > 64 {
            stale = 0;
            let mut order = best.walk.order.clone();
            for _ in 0..3 {
                random_move(p, &mut order, rng.below(usize::MAX));
            }
            cur = p.list(&order, Source::Search);
            used += 1;
        }
    }
    (best, used)
}

/// A new priority list near `cur`'s (a few tries to find one that differs): a service that
/// waited on the way to a breach (or to the end of the schedule) moves ahead of where it could
/// have started, or one that held its slot meanwhile moves behind it; now and then two
/// neighbours swap, for variety. Keeps the list topological (and sorted by wave in waves
/// mode).
fn propose(p: &Problem, cur: &Candidate, rng: &mut Rng) -> Option<Vec<SvcId>> {
    let w = &cur.walk;
    let order = &w.order;
    if order.len() < 2 {
        return None;
    }
    let mut pos = vec![0usize; p.g.n()];
    for (i, &id) in order.iter().enumerate() {
        pos[id] = i;
    }
    let rel = p.release_times(w);
    let late: Vec<SvcId> = order
        .iter()
        .copied()
        .filter(|&id| w.ready[id] > p.rto[id])
        .collect();
    let last = *order
        .iter()
        .max_by_key(|&&id| (w.ready[id], std::cmp::Reverse(id)))?;
    for attempt in 0..32 {
        let mut new = order.clone();
        // Now and then, and when nothing targeted works: a random service moves anywhere
        // it may go.
        if rng.below(6) == 0 || attempt >= 16 {
            if random_move(p, &mut new, rng.below(usize::MAX)) {
                return Some(new);
            }
            continue;
        }
        // The target: mostly a breached service, else the last to finish (makespan).
        let target = if !late.is_empty() && rng.below(4) > 0 {
            late[rng.below(late.len())]
        } else {
            last
        };
        let waited = waited_on_chain(p, w, &rel, target);
        if waited.is_empty() {
            continue;
        }
        let x = waited[rng.below(waited.len())];
        // Where x may go: not before its dependencies (or its wave).
        let floor = floor_of(p, &pos, x);
        if rng.below(2) == 0 {
            // Ahead of the first service that started after x was released, or anywhere
            // between there and where it is.
            let first_after = order.partition_point(|&id| w.start[id] < rel[x]).max(floor);
            if first_after >= pos[x] {
                continue;
            }
            let to = if rng.below(2) == 0 {
                first_after
            } else {
                first_after + rng.below(pos[x] - first_after)
            };
            let v = new.remove(pos[x]);
            new.insert(to, v);
        } else {
            // A service that held a slot while x waited moves behind x (not behind its own
            // dependents, nor out of its wave).
            let holders: Vec<SvcId> = order[floor..pos[x]]
                .iter()
                .copied()
                .filter(|&b| w.ready[b] > rel[x] && w.start[b] <= w.start[x])
                .filter(|&b| !p.g.deps(x).contains(&b))
                .collect();
            if holders.is_empty() {
                continue;
            }
            let b = holders[rng.below(holders.len())];
            let mut ceil =
                p.g.dependents(b)
                    .iter()
                    .map(|&t| pos[t])
                    .min()
                    .unwrap_or(usize::MAX)
                    .min(pos[x] + 1);
            if p.mode == WalkMode::Waves {
                ceil = ceil.min(wave_end(p, b));
            }
            if ceil <= pos[b] + 1 {
                continue;
            }
            let v = new.remove(pos[b]);
            new.insert(ceil - 1, v);
        }
        return Some(new);
    }
    None
}

/// Moves a random service of `order` to a random place it may take (`pick` chooses both).
/// Returns whether the list changed.
fn random_move(p: &Problem, order: &mut Vec<SvcId>, pick: usize) -> bool {
    let mut pos = vec![0usize; p.g.n()];
    for (i, &id) in order.iter().enumerate() {
        pos[id] = i;
    }
    let x = order[pick % order.len()];
    let (floor, ceil) = (floor_of(p, &pos, x), ceil_of(p, &pos, x));
    if ceil <= floor + 1 {
        return false;
    }
    // In the list without x, x may go before any index in floor..ceil - 1.
    let to = floor + (pick / order.len()) % (ceil - floor);
    if to == pos[x] {
        return false;
    }
    let v = order.remove(pos[x]);
    order.insert(to, v);
    true
}

/// Up the binding chain of `target` (each time the dependency ready last), the services that
/// waited after they were released.
fn waited_on_chain(p: &Problem, w: &Walk, rel: &[Ms], target: SvcId) -> Vec<SvcId> {
    let mut waited = Vec::new();
    let mut x = target;
    loop {
        if w.start[x] > rel[x] {
            waited.push(x);
        }
        let Some(&d) =
            p.g.deps(x)
                .iter()
                .max_by_key(|&&d| (w.ready[d], std::cmp::Reverse(d)))
        else {
            return waited;
        };
        x = d;
    }
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

/// One past the last position `x` may take: before its dependents and, in waves mode, within
/// its wave.
fn ceil_of(p: &Problem, pos: &[usize], x: SvcId) -> usize {
    let dependents =
        p.g.dependents(x)
            .iter()
            .map(|&t| pos[t])
            .min()
            .unwrap_or(p.g.len());
    if p.mode == WalkMode::Waves {
        dependents.min(wave_end(p, x))
    } else {
        dependents
    }
}

/// One past the last position of `b`'s wave in a wave-sorted list.
fn wave_end(p: &Problem, b: SvcId) -> usize {
    let k = p.g.wave[b] as usize;
    (0..=k).map(|j| p.g.wave_members(j).len()).sum()
}
