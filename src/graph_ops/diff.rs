//! `meeseeks diff OLD NEW`: how the graph evolved, and who started depending on watched services.
//!
//! Services are matched by name. Reported: added/removed services, added/removed edges, edges
//! whose kind changed (optional ↔ essential), and changes of tier, RTO, RPO and `stateful`.
//!
//! **New dependents** of a watched service W (`watch = true` in NEW, or `--watch W`): the
//! services in D_new(W) \ D_old(W), where D(W) = the transitive *essential* dependents of W plus
//! its *direct* optional dependents. Transitive essential dependents all go down with W, so each
//! of them is a new stakeholder of W's availability; an optional dependent only degrades, and
//! only its direct users are told (what depends on a degraded service is not W's concern).
//! A service that is new in NEW counts as a new dependent when it depends on W.
//!
//! Complexity: O(V+E) (edge sets compared by binary search in the sorted adjacency lists, i.e.
//! O(E log d)) to diff, plus O((V+E)·⌈K/512⌉) for the new dependents of the K watched services
//! that a changed edge can reach (see `new_dependents`): a new dependent needs a new path to W,
//! which crosses an added or re-kinded edge whose head reaches W essentially, so watched
//! services far from every change are never looked at.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::export::EdgeKind;
use super::{Render, dur, md_cell, secs};
use crate::model::{Model, Notify, SvcId};
use crate::plan::{Scope, topo_order};

/// Webhook event sent when watched services gained dependents.
pub const NEW_DEPENDENTS_EVENT: &str = "graph.new_dependents";

#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// `--watch SVC` (in addition to `watch = true` in NEW); must exist in NEW.
    pub watch: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindChange {
    pub from: String,
    pub to: String,
    pub old_kind: EdgeKind,
    pub new_kind: EdgeKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    /// `tier`, `rto_s`, `rpo_s` or `stateful`.
    pub field: &'static str,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceChange {
    pub name: String,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub schema: &'static str,
    /// Every list is sorted.
    pub added_services: Vec<String>,
    pub removed_services: Vec<String>,
    pub added_edges: Vec<Edge>,
    pub removed_edges: Vec<Edge>,
    pub changed_edges: Vec<KindChange>,
    pub changed_services: Vec<ServiceChange>,
    /// Watched services considered.
    pub watched: Vec<String>,
    /// Watched service → its new dependents; only services that gained some.
    pub new_dependents: BTreeMap<String, Vec<String>>,
}

/// Kind of the edge `from -> to` in `m` (ids of `m`), by binary search in the sorted lists.
fn edge_kind(m: &Model, from: Option<SvcId>, to: Option<SvcId>) -> Option<EdgeKind> {
    let (s, to) = (&m.services[from?], to?);
    if s.depends_on.binary_search(&to).is_ok() {
        Some(EdgeKind::Essential)
    } else if s.soft_depends_on.binary_search(&to).is_ok() {
        Some(EdgeKind::Optional)
    } else {
        None
    }
}

fn edges_of(m: &Model, id: SvcId) -> impl Iterator<Item = (SvcId, EdgeKind)> + '_ {
    let s = &m.services[id];
    s.depends_on
        .iter()
        .map(|&d| (d, EdgeKind::Essential))
        .chain(s.soft_depends_on.iter().map(|&d| (d, EdgeKind::Optional)))
}

pub fn diff(old: &Model, new: &Model, opts: &DiffOptions) -> crate::Result<DiffReport> {
    let mut watched = vec![false; new.services.len()];
    for name in &opts.watch {
        watched[new.lookup(name)?] = true;
    }
    for (id, s) in new.services.iter().enumerate() {
        watched[id] |= s.watch;
    }

    let mut r = DiffReport {
        schema: "meeseeks.diff/v1",
        added_services: Vec::new(),
        removed_services: Vec::new(),
        added_edges: Vec::new(),
        removed_edges: Vec::new(),
        changed_edges: Vec::new(),
        changed_services: Vec::new(),
        watched: Vec::new(),
        new_dependents: BTreeMap::new(),
    };
    // Heads of edges that are new or re-kinded in NEW: the only places a new path can start.
    let mut fresh_essential = Vec::new();
    let mut fresh_soft = Vec::new();
    // Ids matched by name once, so that edges compare as integers.
    let old_of_new: Vec<Option<SvcId>> = new.services.iter().map(|s| old.id(&s.name)).collect();
    let mut new_of_old: Vec<Option<SvcId>> = vec![None; old.services.len()];
    for (n, o) in old_of_new.iter().enumerate() {
        if let Some(o) = o {
            new_of_old[*o] = Some(n);
        }
    }
    for (id, s) in new.services.iter().enumerate() {
        let o = old_of_new[id];
        match o {
            None => r.added_services.push(s.name.clone()),
            Some(o) => {
                let changes = field_changes(&old.services[o], s);
                if !changes.is_empty() {
                    r.changed_services.push(ServiceChange {
                        name: s.name.clone(),
                        changes,
                    });
                }
            }
        }
        for (d, kind) in edges_of(new, id) {
            let to = new.name(d);
            match edge_kind(old, o, old_of_new[d]) {
                Some(k) if k == kind => continue,
                Some(k) => r.changed_edges.push(KindChange {
                    from: s.name.clone(),
                    to: to.to_string(),
                    old_kind: k,
                    new_kind: kind,
                }),
                None => r.added_edges.push(Edge {
                    from: s.name.clone(),
                    to: to.to_string(),
                    kind,
                }),
            }
            match kind {
                EdgeKind::Essential => fresh_essential.push(d),
                EdgeKind::Optional => fresh_soft.push(d),
            }
        }
    }
    for (id, s) in old.services.iter().enumerate() {
        let n = new_of_old[id];
        if n.is_none() {
            r.removed_services.push(s.name.clone());
        }
        for (d, kind) in edges_of(old, id) {
            let to = old.name(d);
            if edge_kind(new, n, new_of_old[d]).is_none() {
                r.removed_edges.push(Edge {
                    from: s.name.clone(),
                    to: to.to_string(),
                    kind,
                });
            }
        }
    }
    // Services are name-sorted and visited in order, so most lists are sorted already; edges
    // are sorted by (from, to) per service but kinds interleave: sort to be sure.
    r.added_edges.sort();
    r.removed_edges.sort();

    // Watched services a fresh edge can reach: heads of fresh essential edges and everything
    // they essentially depend on; heads of fresh optional edges themselves.
    let mut reach = vec![false; new.services.len()];
    let mut stack = Vec::new();
    for &v in &fresh_essential {
        if !reach[v] {
            reach[v] = true;
            stack.push(v);
        }
    }
    while let Some(id) = stack.pop() {
        for &d in &new.services[id].depends_on {
            if !reach[d] {
                reach[d] = true;
                stack.push(d);
            }
        }
    }
    let mut reach_soft = vec![false; new.services.len()];
    for &v in &fresh_soft {
        reach_soft[v] = true;
    }

    let mut candidates = Vec::new();
    for w in (0..new.services.len()).filter(|&w| watched[w]) {
        r.watched.push(new.name(w).to_string());
        if reach[w] || reach_soft[w] {
            candidates.push(w);
        }
    }
    let gained_all = new_dependents(old, new, &old_of_new, &candidates);
    for (w, gained) in candidates.iter().zip(gained_all) {
        if !gained.is_empty() {
            // Pushed in id order, and ids are name-sorted: already sorted.
            let names: Vec<String> = gained.iter().map(|&s| new.name(s).to_string()).collect();
            r.new_dependents.insert(new.name(*w).to_string(), names);
        }
    }
    Ok(r)
}

/// Watched services per bitset pass: 8 × 64 bits, one cache line per service.
const WORDS: usize = 8;

#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u64; WORDS]);

/// For each watched service W of `watched` (ids in NEW): the services of NEW in D_new(W) but not
/// in D_old(W). One BFS per W would cost O(K·(V+E)) and walk the whole graph for every
/// low-level W; instead, watched services are taken 512 at a time and every service gets the set
/// of those it reaches through essential edges, computed dependencies-first as the OR of its
/// dependencies' sets and bits, in NEW and in OLD. D(W) ∋ s ⇔ W's bit is in s's essential set,
/// or s optionally depends on W directly. Time O((V+E)·⌈K/512⌉) for K watched services that a
/// changed edge can reach (few in a typical change), plus the output.
fn new_dependents(
    old: &Model,
    new: &Model,
    old_of_new: &[Option<SvcId>],
    watched: &[SvcId],
) -> Vec<Vec<SvcId>> {
    let mut out = vec![Vec::new(); watched.len()];
    if watched.is_empty() {
        return out;
    }
    let new_topo = topo_order(new, &Scope::all(new));
    let old_topo = topo_order(old, &Scope::all(old));
    let mut reach_new = vec![Line([0; WORDS]); new.services.len()];
    let mut reach_old = vec![Line([0; WORDS]); old.services.len()];
    let mut slot_new = vec![u32::MAX; new.services.len()];
    let mut slot_old = vec![u32::MAX; old.services.len()];
    for (base, chunk) in watched.chunks(WORDS * 64).enumerate() {
        let base = base * WORDS * 64;
        slot_new.fill(u32::MAX);
        slot_old.fill(u32::MAX);
        for (k, &w) in chunk.iter().enumerate() {
            slot_new[w] = k as u32;
            if let Some(o) = old_of_new[w] {
                slot_old[o] = k as u32;
            }
        }
        essential_sets(new, &new_topo, &slot_new, &mut reach_new);
        essential_sets(old, &old_topo, &slot_old, &mut reach_old);
        for (s, svc) in new.services.iter().enumerate() {
            let mut b = with_soft(&reach_new[s], &svc.soft_depends_on, &slot_new);
            if let Some(o) = old_of_new[s] {
                let before = with_soft(&reach_old[o], &old.services[o].soft_depends_on, &slot_old);
                for (w, x) in b.iter_mut().zip(before) {
                    *w &= !x;
                }
            }
            for (wi, &w) in b.iter().enumerate() {
                let mut w = w;
                while w != 0 {
                    let bit = w.trailing_zeros() as usize;
                    w &= w - 1;
                    out[base + wi * 64 + bit].push(s);
                }
            }
        }
    }
    out
}

/// `reach[s]` = bits of the slotted services that s reaches through essential edges (s itself
/// excluded), in topological order (dependencies first).
fn essential_sets(m: &Model, topo: &[SvcId], slot: &[u32], reach: &mut [Line]) {
    for &s in topo {
        let mut b = [0u64; WORDS];
        for &d in &m.services[s].depends_on {
            for (w, x) in b.iter_mut().zip(reach[d].0) {
                *w |= x;
            }
            if slot[d] != u32::MAX {
                b[slot[d] as usize / 64] |= 1 << (slot[d] % 64);
            }
        }
        reach[s] = Line(b);
    }
}

/// An essential set plus the bits of slotted services `soft` names directly.
fn with_soft(reach: &Line, soft: &[SvcId], slot: &[u32]) -> [u64; WORDS] {
    let mut b = reach.0;
    for &d in soft {
        if slot[d] != u32::MAX {
            b[slot[d] as usize / 64] |= 1 << (slot[d] % 64);
        }
    }
    b
}

/// `RTO 1h30m → 45m`, `tier 1 → 0`, `RPO none → 5m`.
pub(crate) fn change_text(c: &FieldChange) -> String {
    let v = |x: &serde_json::Value| match (c.field, x.as_f64()) {
        ("rto_s" | "rpo_s", Some(s)) => dur(std::time::Duration::from_secs_f64(s)),
        (_, _) if x.is_null() => "none".into(),
        _ => x.to_string(),
    };
    let f = match c.field {
        "rto_s" => "RTO",
        "rpo_s" => "RPO",
        f => f,
    };
    format!("{f} {} → {}", v(&c.old), v(&c.new))
}

fn field_changes(o: &crate::model::Service, n: &crate::model::Service) -> Vec<FieldChange> {
    let mut v = Vec::new();
    if o.tier != n.tier {
        v.push(FieldChange {
            field: "tier",
            old: o.tier.into(),
            new: n.tier.into(),
        });
    }
    if o.rto != n.rto {
        v.push(FieldChange {
            field: "rto_s",
            old: secs(o.rto).into(),
            new: secs(n.rto).into(),
        });
    }
    if o.rpo != n.rpo {
        v.push(FieldChange {
            field: "rpo_s",
            old: o.rpo.map(secs).into(),
            new: n.rpo.map(secs).into(),
        });
    }
    if o.stateful != n.stateful {
        v.push(FieldChange {
            field: "stateful",
            old: o.stateful.into(),
            new: n.stateful.into(),
        });
    }
    v
}

/// The webhooks of NEW that want `graph.new_dependents` (an empty `events` list means all).
pub fn new_dependents_webhooks(new: &Model) -> Vec<&Notify> {
    new.notify
        .iter()
        .filter(|n| n.events.is_empty() || n.events.iter().any(|e| e == NEW_DEPENDENTS_EVENT))
        .collect()
}

/// At most this many entries per section in text and Markdown (JSON has them all). New
/// dependents are never cut: they are the point of the command.
const SHOWN: usize = 100;

impl DiffReport {
    /// The webhook payload for `graph.new_dependents`, or `None` when there is nothing to say.
    pub fn notification(&self) -> Option<serde_json::Value> {
        if self.new_dependents.is_empty() {
            return None;
        }
        let text = self
            .new_dependents
            .iter()
            .map(|(w, d)| format!("{w} gained {} dependent(s): {}", d.len(), d.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        Some(serde_json::json!({
            "schema": "meeseeks.event/v1",
            "ts": jiff::Timestamp::now().to_string(),
            "event": NEW_DEPENDENTS_EVENT,
            "new_dependents": self.new_dependents,
            "text": text,
        }))
    }

    /// One line: how many services and edges were added, removed, changed.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} service(s) added, {} removed, {} changed; {} edge(s) added, {} removed, {} changed kind",
            self.added_services.len(),
            self.removed_services.len(),
            self.changed_services.len(),
            self.added_edges.len(),
            self.removed_edges.len(),
            self.changed_edges.len()
        )
    }

    /// Sections as (title, lines), empty ones left out.
    fn sections(&self) -> Vec<(&'static str, Vec<String>)> {
        let edge = |e: &Edge| {
            let arrow = match e.kind {
                EdgeKind::Essential => "->",
                EdgeKind::Optional => "~>",
            };
            format!("{} {arrow} {}", e.from, e.to)
        };
        let all = vec![
            ("services added", self.added_services.clone()),
            ("services removed", self.removed_services.clone()),
            (
                "services changed",
                self.changed_services
                    .iter()
                    .map(|s| {
                        let c: Vec<String> = s.changes.iter().map(change_text).collect();
                        format!("{}: {}", s.name, c.join(", "))
                    })
                    .collect(),
            ),
            ("edges added", self.added_edges.iter().map(edge).collect()),
            (
                "edges removed",
                self.removed_edges.iter().map(edge).collect(),
            ),
            (
                "edges changed kind",
                self.changed_edges
                    .iter()
                    .map(|c| {
                        format!(
                            "{} -> {}: {} → {}",
                            c.from,
                            c.to,
                            c.old_kind.as_str(),
                            c.new_kind.as_str()
                        )
                    })
                    .collect(),
            ),
        ];
        all.into_iter().filter(|(_, l)| !l.is_empty()).collect()
    }

    fn watch_line(&self) -> String {
        if self.new_dependents.is_empty() {
            format!(
                "no new dependents of the {} watched service(s)",
                self.watched.len()
            )
        } else {
            format!(
                "NEW DEPENDENTS of {} watched service(s) (transitive essential or direct optional):",
                self.new_dependents.len()
            )
        }
    }
}

impl Render for DiffReport {
    /// 1 when a watched service gained dependents (SPEC §3), else 0.
    fn exit_code(&self) -> i32 {
        if self.new_dependents.is_empty() {
            crate::error::exit::OK
        } else {
            crate::error::exit::NEGATIVE
        }
    }

    fn text(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        for (title, lines) in self.sections() {
            let _ = writeln!(out, "\n{title}:");
            for l in lines.iter().take(SHOWN) {
                let _ = writeln!(out, "  {l}");
            }
            if lines.len() > SHOWN {
                let _ = writeln!(
                    out,
                    "  … and {} more (--format json lists all)",
                    lines.len() - SHOWN
                );
            }
        }
        let _ = writeln!(out, "\n{}", self.watch_line());
        for (w, d) in &self.new_dependents {
            let _ = writeln!(out, "  {w}: {}", d.join(", "));
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("## Graph diff\n\n{}\n", self.summary());
        if !self.new_dependents.is_empty() {
            out.push_str("\n### ⚠ New dependents of watched services\n\n");
            out.push_str("| watched service | new dependents |\n|---|---|\n");
            for (w, d) in &self.new_dependents {
                let _ = writeln!(out, "| {} | {} |", md_cell(w), md_cell(&d.join(", ")));
            }
        } else {
            let _ = writeln!(out, "\n{}.", self.watch_line());
        }
        for (title, lines) in self.sections() {
            let _ = writeln!(out, "\n### {}{}\n", title[..1].to_uppercase(), &title[1..]);
            for l in lines.iter().take(SHOWN) {
                let _ = writeln!(out, "- `{}`", l.replace('`', "'"));
            }
            if lines.len() > SHOWN {
                let _ = writeln!(out, "- … and {} more", lines.len() - SHOWN);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::{model, rng, s, shop};

    /// OLD = the shop; NEW adds fraud (-> payments), moves search onto orders, makes
    /// checkout need recs essentially, removes nothing but an edge, changes RTO and tier.
    fn new_shop() -> Model {
        let mut parts = vec![
            s("orders-db", 0, 60, &[], &[]),
            s("orders", 0, 45, &["orders-db"], &[]),
            s("payments", 0, 90, &[], &[]),
            s("checkout", 0, 120, &["orders", "payments", "recs"], &[]),
            s("recs", 1, 240, &[], &[]),
            s("web", 1, 180, &["checkout"], &[]),
            s("fraud", 1, 60, &["payments"], &[]),
            s("search", 2, 240, &["orders"], &[]),
        ];
        parts[0].0.stateful = true;
        parts[2].0.watch = true;
        parts[4].0.watch = true;
        model(parts)
    }

    #[test]
    fn structural_changes() {
        let r = diff(&shop(), &new_shop(), &DiffOptions::default()).unwrap();
        assert_eq!(r.added_services, ["fraud"]);
        assert!(r.removed_services.is_empty());
        let added: Vec<(&str, &str)> = r
            .added_edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(added, [("fraud", "payments"), ("search", "orders")]);
        let removed: Vec<(&str, &str)> = r
            .removed_edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(removed, [("search", "recs")]);
        assert_eq!(r.changed_edges.len(), 1);
        assert_eq!(r.changed_edges[0].new_kind, EdgeKind::Essential);
        let changed: Vec<(&str, Vec<&str>)> = r
            .changed_services
            .iter()
            .map(|c| (c.name.as_str(), c.changes.iter().map(|f| f.field).collect()))
            .collect();
        assert_eq!(changed, [("orders", vec!["rto_s"]), ("recs", vec!["tier"])]);
    }

    #[test]
    fn new_dependents_of_watched_services() {
        let r = diff(&shop(), &new_shop(), &DiffOptions::default()).unwrap();
        // checkout was watched in OLD, not in NEW: only NEW's flags (and --watch) count.
        assert_eq!(r.watched, ["payments", "recs"]);
        // payments: fraud is new. recs: checkout was a soft dependent (already in D_old), but now
        // web depends on it transitively-essentially.
        assert_eq!(r.new_dependents["payments"], ["fraud"]);
        assert_eq!(r.new_dependents["recs"], ["web"]);
        assert_eq!(r.exit_code(), 1);
        let n = r.notification().unwrap();
        assert_eq!(n["event"], NEW_DEPENDENTS_EVENT);

        // --watch orders: search is new (direct); orders-db: search transitively.
        let r = diff(
            &shop(),
            &new_shop(),
            &DiffOptions {
                watch: vec!["orders-db".into()],
            },
        )
        .unwrap();
        assert_eq!(r.new_dependents["orders-db"], ["search"]);

        let e = diff(
            &shop(),
            &new_shop(),
            &DiffOptions {
                watch: vec!["payment".into()],
            },
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn silent_when_nothing_new_depends() {
        let m = new_shop();
        let r = diff(&m, &m, &DiffOptions::default()).unwrap();
        assert!(r.new_dependents.is_empty());
        assert!(r.added_edges.is_empty() && r.changed_services.is_empty());
        assert_eq!(r.exit_code(), 0);
        assert!(r.notification().is_none());
        // A soft dependent of a soft dependent is not W's concern; removing dependents is fine.
        let old = model(vec![
            {
                let mut w = s("w", 0, 60, &[], &[]);
                w.0.watch = true;
                w
            },
            s("a", 0, 60, &["w"], &[]),
            s("b", 0, 60, &[], &[]),
        ]);
        let new = model(vec![
            {
                let mut w = s("w", 0, 60, &[], &[]);
                w.0.watch = true;
                w
            },
            s("a", 0, 60, &[], &[]),
            s("b", 0, 60, &[], &["c"]),
            s("c", 0, 60, &[], &["w"]),
        ]);
        let r = diff(&old, &new, &DiffOptions::default()).unwrap();
        assert_eq!(r.new_dependents["w"], ["c"]);
        assert_eq!(r.removed_edges.len(), 1);
    }

    /// Random OLD/NEW pairs with more than 512 watched services (several bitset batches),
    /// checked against one BFS per watched service.
    #[test]
    fn new_dependents_match_brute_force() {
        let mut rnd = rng(0x2545F4914F6CDD1D);
        let n = 900;
        let name = |i: usize| format!("s{i:04}");
        let mut old_parts = Vec::new();
        let mut new_parts = Vec::new();
        for i in 0..n {
            let mut deps: Vec<String> = Vec::new();
            let mut soft: Vec<String> = Vec::new();
            if i > 0 {
                for _ in 0..rnd(3) {
                    deps.push(name(rnd(i as u64) as usize));
                }
                if rnd(4) == 0 {
                    soft.push(name(rnd(i as u64) as usize));
                }
            }
            let mut p = s(&name(i), 0, 60, &[], &[]);
            p.1 = deps.clone();
            p.2 = soft.clone();
            // Service 5 is new in NEW; every other service but a few watched in NEW.
            if i != 5 {
                old_parts.push(p.clone());
            }
            if i > 0 && rnd(5) == 0 {
                p.1.push(name(rnd(i as u64) as usize));
            }
            if i > 0 && rnd(10) == 0 {
                p.2.push(name(rnd(i as u64) as usize));
            }
            if i > 0 && rnd(10) == 0 {
                p.1.pop();
            }
            p.0.watch = rnd(10) != 0;
            new_parts.push(p);
        }
        let (old, new) = (model(old_parts), model(new_parts));
        let r = diff(&old, &new, &DiffOptions::default()).unwrap();
        assert!(r.watched.len() > 512);
        let d = |m: &Model, w: &str| -> std::collections::BTreeSet<String> {
            let mut set = std::collections::BTreeSet::new();
            let Some(w) = m.id(w) else { return set };
            let mut stack = vec![w];
            let mut seen = vec![false; m.services.len()];
            seen[w] = true;
            while let Some(id) = stack.pop() {
                for &t in &m.dependents[id] {
                    if !seen[t] {
                        seen[t] = true;
                        set.insert(m.name(t).to_string());
                        stack.push(t);
                    }
                }
            }
            for &t in &m.soft_dependents[w] {
                set.insert(m.name(t).to_string());
            }
            set
        };
        let mut total = 0;
        for w in &r.watched {
            let before = d(&old, w);
            let want: Vec<String> = d(&new, w).difference(&before).cloned().collect();
            let got = r.new_dependents.get(w).cloned().unwrap_or_default();
            assert_eq!(got, want, "watched {w}");
            total += got.len();
        }
        assert!(total > 100, "the test must exercise something: {total}");
    }

    #[test]
    fn webhooks_filtered_by_event() {
        let mut m = new_shop();
        m.notify = vec![
            Notify {
                url: "http://a".into(),
                events: vec!["run.started".into()],
                format: crate::model::NotifyFormat::Json,
                ..Default::default()
            },
            Notify {
                url: "http://b".into(),
                events: vec![NEW_DEPENDENTS_EVENT.into()],
                format: crate::model::NotifyFormat::Json,
                ..Default::default()
            },
            Notify {
                url: "http://c".into(),
                events: vec![],
                format: crate::model::NotifyFormat::Slack,
                ..Default::default()
            },
        ];
        let urls: Vec<&str> = new_dependents_webhooks(&m)
            .iter()
            .map(|n| n.url.as_str())
            .collect();
        assert_eq!(urls, ["http://b", "http://c"]);
    }

    #[test]
    fn text_snapshot() {
        let r = diff(&shop(), &new_shop(), &DiffOptions::default()).unwrap();
        insta::assert_snapshot!(r.text());
    }

    #[test]
    fn markdown_snapshot() {
        let r = diff(&shop(), &new_shop(), &DiffOptions::default()).unwrap();
        insta::assert_snapshot!(r.markdown());
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.diff/v1");
        assert_eq!(
            v["new_dependents"]["payments"],
            serde_json::json!(["fraud"])
        );
    }
}
