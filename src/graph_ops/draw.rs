//! `meeseeks diff --format html|mermaid|dot`: a picture of what changed between two graphs.
//!
//! Drawn: every service that was added, removed or changed (tier, RTO, RPO, `stateful`), both
//! ends of every edge added, removed or re-kinded, the watched services that gained
//! dependents with those dependents, and — as grey context — every service within
//! `context` hops of those (following both edge kinds in both directions, in either graph);
//! `None` draws the whole graph. Colours: added green, removed red, changed amber, context
//! grey; optional edges dashed. Columns are recovery waves (NEW's, OLD's for removed
//! services), so the picture reads in recovery order like `meeseeks graph`.
//!
//! Selection is two BFS passes over both graphs: O(V+E); at most [`MAX_NODES`] services are
//! drawn (changed ones first), the rest are counted in a note.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use minijinja::HtmlEscape;

use super::Render;
use super::diff::{DiffReport, change_text};
use super::export::{EdgeKind, dot_quote as quote, mermaid_label};
use super::{ReportFormat, dur};
use crate::model::Model;
use crate::plan::{Scope, topo_order, waves};

/// Beyond this many services a drawing stops being readable (and Mermaid stops rendering).
pub const MAX_NODES: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Added,
    Removed,
    Changed,
    Context,
}

impl Status {
    const ALL: [Status; 4] = [
        Status::Added,
        Status::Removed,
        Status::Changed,
        Status::Context,
    ];

    fn class(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
            Status::Context => "context",
        }
    }

    /// (stroke, fill)
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            Status::Added => ("#1a7f37", "#dafbe1"),
            Status::Removed => ("#cf222e", "#ffebe9"),
            Status::Changed => ("#9a6700", "#fff8c5"),
            Status::Context => ("#8c959f", "#f6f8fa"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub status: Status,
    pub tier: u32,
    pub wave: u32,
    /// Second label line: tier and RTO, or what changed.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub status: Status,
}

/// What a drawing of the diff shows.
#[derive(Debug, Clone, Default)]
pub struct Picture {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    /// Services that the selection wanted but [`MAX_NODES`] left out.
    pub left_out: usize,
    pub summary: String,
    pub new_dependents: BTreeMap<String, Vec<String>>,
}

/// Selects and lays out the picture of `r` (the diff of `old` and `new`).
pub fn picture(old: &Model, new: &Model, r: &DiffReport, context: Option<usize>) -> Picture {
    let mut status: BTreeMap<&str, Status> = BTreeMap::new();
    for s in &r.added_services {
        status.insert(s, Status::Added);
    }
    for s in &r.removed_services {
        status.insert(s, Status::Removed);
    }
    for c in &r.changed_services {
        status.insert(&c.name, Status::Changed);
    }
    let mut links: BTreeMap<(&str, &str), (EdgeKind, Status)> = BTreeMap::new();
    let mut focus: BTreeSet<&str> = status.keys().copied().collect();
    for e in &r.added_edges {
        links.insert((&e.from, &e.to), (e.kind, Status::Added));
    }
    for e in &r.removed_edges {
        links.insert((&e.from, &e.to), (e.kind, Status::Removed));
    }
    for c in &r.changed_edges {
        links.insert((&c.from, &c.to), (c.new_kind, Status::Changed));
    }
    for (a, b) in links.keys() {
        focus.insert(a);
        focus.insert(b);
    }
    for (w, ds) in &r.new_dependents {
        focus.insert(w);
        focus.extend(ds.iter().map(String::as_str));
    }
    // Context: services within `context` hops of the focus, in either graph.
    let mut dist: BTreeMap<&str, usize> = focus.iter().map(|&n| (n, 0)).collect();
    let everything = context.is_none();
    if everything {
        for m in [old, new] {
            for s in &m.services {
                dist.entry(&s.name).or_insert(1);
            }
        }
    } else if let Some(max) = context {
        let mut q: VecDeque<&str> = focus.iter().copied().collect();
        while let Some(n) = q.pop_front() {
            let d = dist[n];
            if d >= max {
                continue;
            }
            for m in [old, new] {
                let Some(id) = m.id(n) else { continue };
                let s = &m.services[id];
                let next = s
                    .depends_on
                    .iter()
                    .chain(&s.soft_depends_on)
                    .chain(&m.dependents[id])
                    .chain(&m.soft_dependents[id]);
                for &t in next {
                    let name = m.name(t);
                    if !dist.contains_key(name) {
                        dist.insert(name, d + 1);
                        q.push_back(name);
                    }
                }
            }
        }
    }
    // Changed services first, then context by distance, each by name.
    let mut order: Vec<(&str, usize)> = dist.into_iter().collect();
    order.sort_by_key(|&(n, d)| (d, n));
    let left_out = order.len().saturating_sub(MAX_NODES);
    order.truncate(MAX_NODES);
    let drawn: BTreeSet<&str> = order.iter().map(|&(n, _)| n).collect();

    let wave_of = |m: &Model| {
        let scope = Scope::all(m);
        waves(m, &scope, &topo_order(m, &scope))
    };
    let (new_waves, old_waves) = (wave_of(new), wave_of(old));
    let changes: BTreeMap<&str, String> = r
        .changed_services
        .iter()
        .map(|c| {
            let t: Vec<String> = c.changes.iter().map(change_text).collect();
            (c.name.as_str(), t.join(", "))
        })
        .collect();
    let mut nodes = Vec::with_capacity(drawn.len());
    for &name in &drawn {
        let (m, waves) = match new.id(name) {
            Some(_) => (new, &new_waves),
            None => (old, &old_waves),
        };
        let Some(id) = m.id(name) else { continue };
        let s = &m.services[id];
        let st = status.get(name).copied().unwrap_or(Status::Context);
        nodes.push(Node {
            name: name.to_string(),
            status: st,
            tier: s.tier,
            wave: waves[id],
            detail: changes
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("tier {} · RTO {}", s.tier, dur(s.rto))),
        });
    }
    // Every edge between drawn services: changed ones with their status, the rest as context.
    let mut all: BTreeMap<(String, String), (EdgeKind, Status)> = BTreeMap::new();
    for m in [old, new] {
        for s in m
            .services
            .iter()
            .filter(|s| drawn.contains(s.name.as_str()))
        {
            let edges = s
                .depends_on
                .iter()
                .map(|&d| (d, EdgeKind::Essential))
                .chain(s.soft_depends_on.iter().map(|&d| (d, EdgeKind::Optional)));
            for (d, kind) in edges {
                let to = m.name(d);
                if drawn.contains(to) {
                    let st = links
                        .get(&(s.name.as_str(), to))
                        .copied()
                        .unwrap_or((kind, Status::Context));
                    all.entry((s.name.clone(), to.to_string())).or_insert(st);
                }
            }
        }
    }
    Picture {
        nodes,
        links: all
            .into_iter()
            .map(|((from, to), (kind, status))| Link {
                from,
                to,
                kind,
                status,
            })
            .collect(),
        left_out,
        summary: r.summary(),
        new_dependents: r.new_dependents.clone(),
    }
}

impl Picture {
    pub fn render(&self, format: ReportFormat) -> Option<String> {
        match format {
            ReportFormat::Dot => Some(self.dot()),
            ReportFormat::Mermaid => Some(self.mermaid()),
            ReportFormat::Html => Some(self.html()),
            _ => None,
        }
    }

    /// Each drawn node's place in `nodes`, by name (links name their ends).
    fn node_index(&self) -> BTreeMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect()
    }

    fn dot(&self) -> String {
        let mut o = String::from(
            "digraph meeseeks_diff {\n  rankdir=RL;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
        );
        let _ = writeln!(o, "  label={};\n  labelloc=t;", quote(&self.summary));
        for n in &self.nodes {
            let (stroke, fill) = n.status.colours();
            let style = if n.status == Status::Removed {
                "\"rounded,filled,dashed\""
            } else {
                "\"rounded,filled\""
            };
            let pen = if n.status == Status::Context { 1 } else { 2 };
            let _ = writeln!(
                o,
                "  {} [label={}, color=\"{stroke}\", fillcolor=\"{fill}\", style={style}, penwidth={pen}, tooltip={}];",
                quote(&n.name),
                quote(&format!("{}\n{}", n.name, n.detail)),
                quote(n.status.class())
            );
        }
        for l in &self.links {
            let (stroke, _) = l.status.colours();
            let mut attrs = format!("color=\"{stroke}\"");
            if l.status != Status::Context {
                attrs.push_str(", penwidth=2");
            }
            if l.kind == EdgeKind::Optional {
                attrs.push_str(", style=dashed, constraint=false");
            }
            let _ = writeln!(o, "  {} -> {} [{attrs}];", quote(&l.from), quote(&l.to));
        }
        if self.left_out > 0 {
            let _ = writeln!(
                o,
                "  note [shape=plaintext, style=\"\", label=\"… {} more services not drawn\"];",
                self.left_out
            );
        }
        o.push_str("}\n");
        o
    }

    fn mermaid(&self) -> String {
        let mut o = String::from("flowchart LR\n");
        for st in Status::ALL {
            let (stroke, fill) = st.colours();
            let dash = if st == Status::Removed {
                ",stroke-dasharray:4 3"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "  classDef {} fill:{fill},stroke:{stroke},stroke-width:2px{dash}",
                st.class()
            );
        }
        let index = self.node_index();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                o,
                "  s{i}[\"{}<br/>{}\"]:::{}",
                mermaid_label(&n.name),
                mermaid_label(&n.detail),
                n.status.class()
            );
        }
        // Mermaid draws dependencies to the right of their dependents with `-->`; flip the
        // arrows (dependency --> dependent) so that the picture reads in recovery order.
        for (k, l) in self.links.iter().enumerate() {
            let arrow = match l.kind {
                EdgeKind::Essential => "-->",
                EdgeKind::Optional => "-.->",
            };
            let _ = writeln!(
                o,
                "  s{} {arrow} s{}",
                index[l.to.as_str()],
                index[l.from.as_str()]
            );
            let (stroke, _) = l.status.colours();
            let _ = writeln!(o, "  linkStyle {k} stroke:{stroke},stroke-width:2px");
        }
        if self.left_out > 0 {
            let _ = writeln!(o, "  more[\"… {} more services not drawn\"]", self.left_out);
        }
        o
    }

    fn html(&self) -> String {
        const COL_W: f64 = 230.0;
        const NODE_W: f64 = 190.0;
        const NODE_H: f64 = 34.0;
        const GAP: f64 = 10.0;
        let mut cols: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            cols.entry(n.wave).or_default().push(i);
        }
        let mut pos = vec![(0.0, 0.0); self.nodes.len()];
        let mut rows = 0;
        for (c, ids) in cols.values().enumerate() {
            for (r, &i) in ids.iter().enumerate() {
                pos[i] = (10.0 + COL_W * c as f64, 10.0 + (NODE_H + GAP) * r as f64);
            }
            rows = rows.max(ids.len());
        }
        let index = self.node_index();
        let w = 20.0 + COL_W * cols.len().max(1) as f64;
        let h = 20.0 + (NODE_H + GAP) * rows.max(1) as f64;
        let mut o = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meeseeks — graph diff</title><style>",
        );
        o.push_str("body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}h1{font-size:22px}h2{font-size:17px;margin-top:24px}\
.scroll{overflow:auto;border:1px solid #d0d7de;padding:4px}svg text{font:12px system-ui,sans-serif}svg text.detail{font-size:10px;fill:#57606a}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle;border:2px solid}\
.edge{fill:none;stroke-width:1.5}.edge.optional{stroke-dasharray:5 4}.edge.added,.edge.removed,.edge.changed{stroke-width:2.5}\
code{font:12px ui-monospace,monospace}");
        for st in Status::ALL {
            let (stroke, fill) = st.colours();
            let c = st.class();
            let dash = if st == Status::Removed {
                "stroke-dasharray:5 3;"
            } else {
                ""
            };
            let _ = write!(
                o,
                ".node.{c} rect{{fill:{fill};stroke:{stroke};stroke-width:2;{dash}}}.edge.{c}{{stroke:{stroke}}}.legend .{c}{{background:{fill};border-color:{stroke}}}"
            );
        }
        o.push_str("</style></head><body>\n<h1>Graph diff</h1>\n");
        let _ = writeln!(o, "<p class=\"summary\">{}</p>", HtmlEscape(&self.summary));
        if !self.new_dependents.is_empty() {
            o.push_str(
                "<h2>⚠ New dependents of watched services</h2>\n<ul class=\"new-dependents\">\n",
            );
            for (w, d) in &self.new_dependents {
                let _ = writeln!(
                    o,
                    "<li><code>{}</code>: {}</li>",
                    HtmlEscape(w),
                    HtmlEscape(&d.join(", "))
                );
            }
            o.push_str("</ul>\n");
        }
        o.push_str("<p class=\"legend\"><span class=\"added\"></span>added<span class=\"removed\"></span>removed<span class=\"changed\"></span>changed<span class=\"context\"></span>unchanged (context) · dashed edge: optional · columns: recovery waves</p>\n");
        if self.left_out > 0 {
            let _ = writeln!(
                o,
                "<p>{} more services are not drawn (the picture is limited to {MAX_NODES}; use --format json for every change).</p>",
                self.left_out
            );
        }
        let _ = writeln!(
            o,
            "<div class=\"scroll\"><svg xmlns=\"http://www.w3.org/2000/svg\" class=\"diff\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"graph diff\">"
        );
        for l in &self.links {
            let (Some(&a), Some(&b)) = (index.get(l.to.as_str()), index.get(l.from.as_str()))
            else {
                continue;
            };
            // From the dependency's right side to the dependent's left side.
            let (x1, y1) = (pos[a].0 + NODE_W, pos[a].1 + NODE_H / 2.0);
            let (x2, y2) = (pos[b].0, pos[b].1 + NODE_H / 2.0);
            let mx = (x1 + x2) / 2.0;
            let kind = match l.kind {
                EdgeKind::Essential => "essential",
                EdgeKind::Optional => "optional",
            };
            let _ = writeln!(
                o,
                "<path class=\"edge {} {kind}\" d=\"M{x1:.1} {y1:.1} C{mx:.1} {y1:.1} {mx:.1} {y2:.1} {x2:.1} {y2:.1}\"><title>{} {} {} ({})</title></path>",
                l.status.class(),
                HtmlEscape(&l.from),
                if l.kind == EdgeKind::Essential {
                    "->"
                } else {
                    "~>"
                },
                HtmlEscape(&l.to),
                l.status.class()
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let (x, y) = pos[i];
            let _ = writeln!(
                o,
                "<g class=\"node {}\"><title>{} ({}): {}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"5\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text><text class=\"detail\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                n.status.class(),
                HtmlEscape(&n.name),
                n.status.class(),
                HtmlEscape(&n.detail),
                x + 6.0,
                y + 14.0,
                HtmlEscape(&n.name),
                x + 6.0,
                y + 28.0,
                HtmlEscape(&n.detail)
            );
        }
        o.push_str("</svg></div>\n</body></html>\n");
        o
    }
}

/// `diff`'s report with its picture: what the command renders when a drawing is asked for.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct DiffView {
    pub report: DiffReport,
    #[serde(skip)]
    pub picture: Option<Picture>,
}

impl Render for DiffView {
    fn text(&self) -> String {
        self.report.text()
    }
    fn markdown(&self) -> String {
        self.report.markdown()
    }
    fn drawing(&self, format: ReportFormat) -> Option<String> {
        self.picture.as_ref()?.render(format)
    }
    fn exit_code(&self) -> i32 {
        self.report.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::diff::{DiffOptions, diff};
    use crate::graph_ops::fixtures::{model, s, shop};

    /// The shop, then: fraud -> payments added, search removed, orders' RTO tightened,
    /// checkout ~> recs made essential; payments watched.
    fn pair() -> (Model, Model) {
        let mut parts = vec![
            s("orders-db", 0, 60, &[], &[]),
            s("orders", 0, 45, &["orders-db"], &[]),
            s("payments", 0, 90, &[], &[]),
            s("checkout", 0, 120, &["orders", "payments", "recs"], &[]),
            s("recs", 2, 240, &[], &[]),
            s("web", 1, 180, &["checkout"], &[]),
            s("fraud", 1, 60, &["payments"], &[]),
        ];
        parts[0].0.stateful = true;
        parts[2].0.watch = true;
        (shop(), model(parts))
    }

    fn drawn(p: &Picture) -> Vec<(&str, Status)> {
        p.nodes
            .iter()
            .map(|n| (n.name.as_str(), n.status))
            .collect()
    }

    #[test]
    fn statuses_and_context() {
        let (old, new) = pair();
        let r = diff(&old, &new, &DiffOptions::default()).unwrap();
        let p = picture(&old, &new, &r, Some(0));
        let mut nodes = drawn(&p);
        nodes.sort();
        assert_eq!(
            nodes,
            [
                ("checkout", Status::Context),
                ("fraud", Status::Added),
                ("orders", Status::Changed),
                ("payments", Status::Context),
                ("recs", Status::Context),
                ("search", Status::Removed),
            ]
        );
        let links: Vec<(&str, &str, Status)> = p
            .links
            .iter()
            .map(|l| (l.from.as_str(), l.to.as_str(), l.status))
            .collect();
        assert!(links.contains(&("fraud", "payments", Status::Added)));
        assert!(links.contains(&("search", "recs", Status::Removed)));
        assert!(links.contains(&("checkout", "recs", Status::Changed)));
        assert!(links.contains(&("checkout", "payments", Status::Context)));
        // One hop more brings orders-db and web in as context; `all` the whole union.
        let p1 = picture(&old, &new, &r, Some(1));
        assert!(drawn(&p1).contains(&("orders-db", Status::Context)));
        assert!(drawn(&p1).contains(&("web", Status::Context)));
        assert_eq!(picture(&old, &new, &r, None).nodes.len(), 8);
    }

    #[test]
    fn formats() {
        let (old, new) = pair();
        let r = diff(&old, &new, &DiffOptions::default()).unwrap();
        let p = picture(&old, &new, &r, Some(1));
        let dot = p.render(ReportFormat::Dot).unwrap();
        assert!(
            dot.contains("\"fraud\" -> \"payments\" [color=\"#1a7f37\", penwidth=2];"),
            "{dot}"
        );
        assert!(
            dot.contains("\"search\" -> \"recs\" [color=\"#cf222e\", penwidth=2, style=dashed"),
            "{dot}"
        );
        assert!(
            dot.contains("\"orders\" [label=\"orders\\nRTO 1h30m → 45m\", color=\"#9a6700\""),
            "{dot}"
        );
        let mm = p.render(ReportFormat::Mermaid).unwrap();
        assert!(mm.starts_with("flowchart LR\n"));
        assert!(mm.contains(":::added"));
        assert_eq!(mm.matches("linkStyle").count(), p.links.len());
        let html = p.render(ReportFormat::Html).unwrap();
        assert_eq!(html.matches("<g class=\"node ").count(), p.nodes.len());
        assert!(html.contains("<code>payments</code>: fraud"));
        for forbidden in ["<script", " src=", "href=", "url(", "@import", "<link"] {
            assert!(!html.contains(forbidden), "{forbidden}");
        }
        assert!(p.render(ReportFormat::Text).is_none());
    }
}
