//! RTO analysis on top of a schedule: earliest times with unlimited parallelism, the critical
//! path, and the dependency chain behind a late service. All linear in V + E per call (chains
//! are as long as the graph is deep).

use crate::model::{Model, SvcId};
use crate::plan::Scope;
use crate::plan::walker::Ms;

/// Earliest ready time of every service with unlimited parallelism: its duration plus the
/// latest earliest-ready time of its essential dependencies (longest path). Indexed by id.
pub fn earliest_ready(model: &Model, scope: &Scope, topo: &[SvcId], dur: &[Ms]) -> Vec<Ms> {
    let mut ef = vec![0; model.services.len()];
    for &id in topo {
        let es = model.services[id]
            .depends_on
            .iter()
            .filter(|&&d| scope.member[d])
            .map(|&d| ef[d])
            .max()
            .unwrap_or(0);
        ef[id] = es + dur[id];
    }
    ef
}

/// The chain of essential dependencies that ends at `end`: from `end`, repeatedly step to the
/// dependency with the latest `ready` (the one `end` had to wait for; ties to the smaller id so
/// the answer is deterministic) until a service without dependencies. Returned root first.
pub fn binding_chain(model: &Model, scope: &Scope, end: SvcId, ready: &[Ms]) -> Vec<SvcId> {
    let mut chain = vec![end];
    let mut cur = end;
    loop {
        let mut best: Option<SvcId> = None;
        for &d in &model.services[cur].depends_on {
            if scope.member[d] && best.is_none_or(|b| ready[d] > ready[b]) {
                best = Some(d);
            }
        }
        match best {
            Some(d) => {
                chain.push(d);
                cur = d;
            }
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// The critical path: the longest chain of essential dependencies by estimated duration, i.e.
/// the lower bound on any schedule's makespan. Ends at the service with the latest earliest
/// ready time (ties to the smaller id).
pub fn critical_path(model: &Model, scope: &Scope, ef: &[Ms]) -> Vec<SvcId> {
    let mut end: Option<SvcId> = None;
    for &id in &scope.ids {
        if end.is_none_or(|e| ef[id] > ef[e]) {
            end = Some(id);
        }
    }
    match end {
        Some(e) => binding_chain(model, scope, e, ef),
        None => Vec::new(),
    }
}
