//! `meeseeks deps SVC`: everything SVC needs, transitively, with the shortest path to each.
//!
//! *Essential* needs are reached through essential edges only: SVC cannot be recovered before
//! them. *Optional* needs are the rest of what SVC reaches when optional edges are followed too
//! (`checkout ~> recs`, or an optional need of an essential dependency): SVC runs degraded
//! without them. Paths come from BFS, so each is a shortest one (ties: smallest name first,
//! because adjacency lists are name-sorted). Two BFS passes: O(V+E), plus the paths printed.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde::Serialize;

use super::export::EdgeKind;
use super::{Render, dur, md_cell, secs, table};
use crate::model::{Model, SvcId};

#[derive(Debug, Clone, Serialize)]
pub struct Need {
    pub name: String,
    pub tier: u32,
    pub rto_s: f64,
    pub hops: usize,
    /// From SVC to this service, both included.
    pub path: Vec<String>,
    /// Kind of each edge of `path` (`path.len() - 1` entries).
    pub edge_kinds: Vec<EdgeKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DepsReport {
    pub schema: &'static str,
    pub service: String,
    /// Sorted by hops, then name.
    pub essential: Vec<Need>,
    /// Sorted by hops, then name.
    pub optional: Vec<Need>,
}

/// BFS from `from`; `soft` says whether optional edges are followed. Returns parent pointers
/// (`usize::MAX` = unreached) with the kind of the edge used, and the visit order.
fn bfs(model: &Model, from: SvcId, soft: bool) -> (Vec<(SvcId, EdgeKind)>, Vec<SvcId>) {
    let n = model.services.len();
    let mut parent = vec![(usize::MAX, EdgeKind::Essential); n];
    parent[from] = (from, EdgeKind::Essential);
    let mut order = Vec::new();
    let mut q = VecDeque::from([from]);
    while let Some(id) = q.pop_front() {
        let s = &model.services[id];
        let soft_edges: &[SvcId] = if soft { &s.soft_depends_on } else { &[] };
        let next = s
            .depends_on
            .iter()
            .map(|&d| (d, EdgeKind::Essential))
            .chain(soft_edges.iter().map(|&d| (d, EdgeKind::Optional)));
        for (d, kind) in next {
            if parent[d].0 == usize::MAX {
                parent[d] = (id, kind);
                order.push(d);
                q.push_back(d);
            }
        }
    }
    (parent, order)
}

fn need(model: &Model, from: SvcId, to: SvcId, parent: &[(SvcId, EdgeKind)]) -> Need {
    let mut ids = vec![to];
    let mut kinds = Vec::new();
    let mut cur = to;
    while cur != from {
        let (p, k) = parent[cur];
        kinds.push(k);
        ids.push(p);
        cur = p;
    }
    ids.reverse();
    kinds.reverse();
    let s = &model.services[to];
    Need {
        name: s.name.clone(),
        tier: s.tier,
        rto_s: secs(s.rto),
        hops: kinds.len(),
        path: ids.iter().map(|&i| model.name(i).to_string()).collect(),
        edge_kinds: kinds,
    }
}

pub fn deps(model: &Model, service: &str) -> crate::Result<DepsReport> {
    let from = model.lookup(service)?;
    let (ess_parent, ess_order) = bfs(model, from, false);
    let (all_parent, all_order) = bfs(model, from, true);
    let mut essential: Vec<Need> = ess_order
        .iter()
        .map(|&d| need(model, from, d, &ess_parent))
        .collect();
    let mut optional: Vec<Need> = all_order
        .iter()
        .filter(|&&d| ess_parent[d].0 == usize::MAX)
        .map(|&d| need(model, from, d, &all_parent))
        .collect();
    for v in [&mut essential, &mut optional] {
        v.sort_by(|a, b| a.hops.cmp(&b.hops).then_with(|| a.name.cmp(&b.name)));
    }
    Ok(DepsReport {
        schema: "meeseeks.deps/v1",
        service: model.services[from].name.clone(),
        essential,
        optional,
    })
}

/// `a -> b ~> c`: `->` essential, `~>` optional.
pub fn path_text(n: &Need) -> String {
    let mut out = n.path[0].clone();
    for (name, kind) in n.path[1..].iter().zip(&n.edge_kinds) {
        out.push_str(match kind {
            EdgeKind::Essential => " -> ",
            EdgeKind::Optional => " ~> ",
        });
        out.push_str(name);
    }
    out
}

impl Render for DepsReport {
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} needs {} service(s) to recover, {} more optionally",
            self.service,
            self.essential.len(),
            self.optional.len()
        );
        for (title, list) in [
            ("essential (recovered before it)", &self.essential),
            (
                "optional (runs degraded without them; `~>` = optional edge)",
                &self.optional,
            ),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title}:");
            let mut rows = vec![vec![
                "  SERVICE".to_string(),
                "TIER".into(),
                "RTO".into(),
                "PATH".into(),
            ]];
            for n in list {
                rows.push(vec![
                    format!("  {}", n.name),
                    n.tier.to_string(),
                    dur(std::time::Duration::from_secs_f64(n.rto_s)),
                    path_text(n),
                ]);
            }
            out.push_str(&table(&rows));
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("## What `{}` needs\n", self.service);
        for (title, list) in [("Essential", &self.essential), ("Optional", &self.optional)] {
            let _ = writeln!(out, "\n### {title} ({})\n", list.len());
            if list.is_empty() {
                out.push_str("None.\n");
                continue;
            }
            out.push_str("| service | tier | RTO | path |\n|---|---|---|---|\n");
            for n in list {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | `{}` |",
                    md_cell(&n.name),
                    n.tier,
                    dur(std::time::Duration::from_secs_f64(n.rto_s)),
                    md_cell(&path_text(n))
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::shop;

    #[test]
    fn essential_and_optional_with_paths() {
        let r = deps(&shop(), "web").unwrap();
        let ess: Vec<String> = r.essential.iter().map(path_text).collect();
        assert_eq!(
            ess,
            [
                "web -> checkout",
                "web -> checkout -> orders",
                "web -> checkout -> payments",
                "web -> checkout -> orders -> orders-db",
            ]
        );
        let opt: Vec<String> = r.optional.iter().map(path_text).collect();
        assert_eq!(opt, ["web -> checkout ~> recs"]);
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.deps/v1");
        assert_eq!(
            v["essential"][3]["path"],
            serde_json::json!(["web", "checkout", "orders", "orders-db"])
        );
        assert_eq!(
            v["optional"][0]["edge_kinds"],
            serde_json::json!(["essential", "optional"])
        );
    }

    #[test]
    fn shortest_path_wins_and_essential_beats_optional() {
        use crate::graph_ops::fixtures::{model, s};
        // a -> b -> c -> d and a -> d directly; a ~> c too, but c is essential via b.
        let m = model(vec![
            s("a", 0, 60, &["b", "d"], &["c"]),
            s("b", 0, 60, &["c"], &[]),
            s("c", 0, 60, &["d"], &[]),
            s("d", 0, 60, &[], &[]),
        ]);
        let r = deps(&m, "a").unwrap();
        let ess: Vec<String> = r.essential.iter().map(path_text).collect();
        assert_eq!(ess, ["a -> b", "a -> d", "a -> b -> c"]);
        assert!(r.optional.is_empty());
    }

    #[test]
    fn leaf_and_unknown() {
        let m = shop();
        let r = deps(&m, "orders-db").unwrap();
        assert!(r.essential.is_empty() && r.optional.is_empty());
        assert_eq!(deps(&m, "nope").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn text_snapshot() {
        insta::assert_snapshot!(deps(&shop(), "web").unwrap().text());
    }
}
