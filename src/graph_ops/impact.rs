//! `meeseeks impact SVC...`: the blast radius of losing a set of services.
//!
//! Rule (SPEC §6 leaves the details to us):
//! - **down**: every transitive *essential* dependent of a failed service. It cannot work, and
//!   must be recovered after what it depends on.
//! - **degraded**: every other service that still reaches a failed service when optional edges
//!   are followed too, i.e. whose every path to the failure crosses at least one optional edge.
//!   A soft dependent of a down-or-failed service is degraded; an essential dependent of a
//!   degraded service is degraded as well (it relies on something that is up but impaired), but
//!   never down: degradation propagates, outage does not cross an optional edge.
//! - **tightest RTO**: the smallest RTO among failed and down services (the ones that need a
//!   recovery); degraded services do not need one. On a tie a failed service is named before a
//!   down one (then by name).
//!
//! Two multi-source BFS passes over reverse edges: O(V+E).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Render, dur, md_cell, secs, table};
use crate::model::{Model, SvcId};

#[derive(Debug, Clone, Default, Serialize)]
pub struct TierImpact {
    pub failed: Vec<String>,
    pub down: Vec<String>,
    pub degraded: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tightest {
    pub service: String,
    pub rto_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImpactReport {
    pub schema: &'static str,
    /// Sorted by name (as every list here).
    pub failed: Vec<String>,
    pub down: Vec<String>,
    pub degraded: Vec<String>,
    /// Keyed by tier (as a string: JSON object keys).
    pub by_tier: BTreeMap<String, TierImpact>,
    pub tightest_rto: Option<Tightest>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Failed,
    Down,
    Degraded,
}

pub fn impact<S: AsRef<str>>(model: &Model, failed: &[S]) -> crate::Result<ImpactReport> {
    if failed.is_empty() {
        return Err(crate::Error::Usage(
            "impact needs at least one service".into(),
        ));
    }
    let n = model.services.len();
    let mut state = vec![State::Up; n];
    let mut q = VecDeque::new();
    for name in failed {
        let id = model.lookup(name.as_ref())?;
        if state[id] == State::Up {
            state[id] = State::Failed;
            q.push_back(id);
        }
    }
    let seeds: Vec<SvcId> = q.iter().copied().collect();
    // Pass 1: outage spreads through essential dependents only.
    while let Some(id) = q.pop_front() {
        for &t in &model.dependents[id] {
            if state[t] == State::Up {
                state[t] = State::Down;
                q.push_back(t);
            }
        }
    }
    // Pass 2: from everything failed or down, follow both kinds of dependents; whatever is
    // still up when reached is degraded.
    q.extend(seeds);
    q.extend((0..n).filter(|&i| state[i] == State::Down));
    while let Some(id) = q.pop_front() {
        for &t in model.dependents[id]
            .iter()
            .chain(&model.soft_dependents[id])
        {
            if state[t] == State::Up {
                state[t] = State::Degraded;
                q.push_back(t);
            }
        }
    }
    let mut report = ImpactReport {
        schema: "meeseeks.impact/v1",
        failed: Vec::new(),
        down: Vec::new(),
        degraded: Vec::new(),
        by_tier: BTreeMap::new(),
        tightest_rto: None,
    };
    let mut tightest: Option<SvcId> = None;
    for (id, st) in state.iter().enumerate() {
        let s = &model.services[id];
        let tier = report.by_tier.entry(s.tier.to_string());
        let name = s.name.clone();
        match st {
            State::Up => continue,
            State::Failed => {
                tier.or_default().failed.push(name.clone());
                report.failed.push(name);
            }
            State::Down => {
                tier.or_default().down.push(name.clone());
                report.down.push(name);
            }
            State::Degraded => {
                tier.or_default().degraded.push(name.clone());
                report.degraded.push(name);
                continue;
            }
        }
        // On a tie, a lost service itself is named before a dependent that goes down with
        // it: its RTO is the one that binds first.
        let key = |i: SvcId| (model.services[i].rto, state[i] != State::Failed);
        if tightest.is_none_or(|t| key(id) < key(t)) {
            tightest = Some(id);
        }
    }
    report.tightest_rto = tightest.map(|t| Tightest {
        service: model.name(t).to_string(),
        rto_s: secs(model.services[t].rto),
    });
    Ok(report)
}

impl ImpactReport {
    /// Tiers in numeric order (the string keys would sort "10" before "2").
    fn tiers(&self) -> Vec<(u32, &TierImpact)> {
        let mut v: Vec<(u32, &TierImpact)> = self
            .by_tier
            .iter()
            .map(|(k, t)| (k.parse().unwrap_or(u32::MAX), t))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "losing {} takes {} service(s) down and degrades {}",
            self.failed.join(", "),
            self.down.len(),
            self.degraded.len()
        );
        if let Some(t) = &self.tightest_rto {
            let _ = write!(
                s,
                "; tightest RTO affected: {} ({})",
                t.service,
                dur(std::time::Duration::from_secs_f64(t.rto_s))
            );
        }
        s
    }
}

impl Render for ImpactReport {
    fn text(&self) -> String {
        let mut out = self.summary();
        out.push_str("\n\n");
        let mut rows = vec![vec![
            "TIER".to_string(),
            "FAILED".into(),
            "DOWN".into(),
            "DEGRADED".into(),
        ]];
        for (t, ti) in self.tiers() {
            rows.push(vec![
                t.to_string(),
                ti.failed.len().to_string(),
                ti.down.len().to_string(),
                ti.degraded.len().to_string(),
            ]);
        }
        out.push_str(&table(&rows));
        let mut lines = String::new();
        for (t, ti) in self.tiers() {
            for (what, list) in [("down", &ti.down), ("degraded", &ti.degraded)] {
                if !list.is_empty() {
                    let _ = writeln!(lines, "tier {t} {what}: {}", list.join(", "));
                }
            }
        }
        if !lines.is_empty() {
            out.push('\n');
            out.push_str(&lines);
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("## Impact\n\n{}\n\n", md_cell(&self.summary()));
        out.push_str("| tier | failed | down | degraded |\n|---|---|---|---|\n");
        for (t, ti) in self.tiers() {
            let _ = writeln!(
                out,
                "| {t} | {} | {} | {} |",
                md_cell(&ti.failed.join(", ")),
                md_cell(&ti.down.join(", ")),
                md_cell(&ti.degraded.join(", "))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::{model, s, shop};

    #[test]
    fn down_and_degraded() {
        let r = impact(&shop(), &["recs"]).unwrap();
        assert!(r.down.is_empty());
        // checkout and search soft-depend on recs; web depends essentially on a degraded one.
        assert_eq!(r.degraded, ["checkout", "search", "web"]);
        assert_eq!(r.tightest_rto.as_ref().unwrap().service, "recs");

        let r = impact(&shop(), &["orders-db"]).unwrap();
        assert_eq!(r.failed, ["orders-db"]);
        assert_eq!(r.down, ["checkout", "orders", "web"]);
        assert!(r.degraded.is_empty());
        assert_eq!(r.by_tier["0"].down, ["checkout", "orders"]);
        assert_eq!(r.by_tier["1"].down, ["web"]);
        let t = r.tightest_rto.unwrap();
        assert_eq!((t.service.as_str(), t.rto_s), ("orders-db", 3600.0));
    }

    #[test]
    fn down_wins_over_degraded_and_multiple_failures() {
        // x ~> a and x -> b: losing a and b makes x down, not degraded.
        let m = model(vec![
            s("a", 1, 60, &[], &[]),
            s("b", 1, 60, &[], &[]),
            s("x", 0, 10, &["b"], &["a"]),
            s("y", 0, 5, &[], &["x"]),
        ]);
        let r = impact(&m, &["a", "b", "a"]).unwrap();
        assert_eq!(r.failed, ["a", "b"]);
        assert_eq!(r.down, ["x"]);
        assert_eq!(r.degraded, ["y"]);
        assert_eq!(r.tightest_rto.unwrap().service, "x");
        let v: serde_json::Value =
            serde_json::from_str(&impact(&m, &["a"]).unwrap().json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.impact/v1");
        assert_eq!(v["degraded"], serde_json::json!(["x", "y"]));
        assert_eq!(v["by_tier"]["0"]["degraded"], serde_json::json!(["x", "y"]));
    }

    /// Issue 10: `impact S` names S itself when a dependent has the same RTO (here `api`,
    /// which sorts first).
    #[test]
    fn tightest_rto_prefers_the_lost_service_on_a_tie() {
        let m = model(vec![
            s("db", 0, 30, &[], &[]),
            s("api", 0, 30, &["db"], &[]),
            s("web", 1, 60, &["api"], &[]),
        ]);
        let t = impact(&m, &["db"]).unwrap().tightest_rto.unwrap();
        assert_eq!((t.service.as_str(), t.rto_s), ("db", 1800.0));
        // A strictly tighter dependent still wins.
        let m = model(vec![
            s("db", 0, 30, &[], &[]),
            s("api", 0, 20, &["db"], &[]),
        ]);
        assert_eq!(
            impact(&m, &["db"]).unwrap().tightest_rto.unwrap().service,
            "api"
        );
    }

    #[test]
    fn unknown_service_suggests() {
        let e = impact(&shop(), &["chekout"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("`checkout`"));
    }

    #[test]
    fn text_snapshot() {
        insta::assert_snapshot!(impact(&shop(), &["orders-db", "recs"]).unwrap().text());
    }
}
