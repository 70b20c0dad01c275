//! `meeseeks graph`: the service graph as Graphviz DOT, Mermaid `flowchart` or JSON.
//!
//! Arrows always mean "depends on" (`checkout -> orders`), essential edges solid, optional edges
//! dashed. Waves are the global recovery waves (SPEC §1), computed on the whole graph even when
//! `--focus` shows a neighbourhood, so a service keeps its wave in every picture. The JSON form is
//! sorted (services by name, edges by from/to/kind) and pretty-printed one field per line, so that
//! a committed export diffs readably in version control.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Write as _;

use serde::Serialize;

use super::{dur, secs};
use crate::model::{Model, SvcId};
use crate::plan::{Scope, topo_order, waves};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// Layout direction of the picture (DOT and Mermaid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Recovery order left to right: wave 0 on the left.
    #[default]
    LeftRight,
    /// Recovery order top to bottom: wave 0 at the top.
    TopDown,
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `--focus SVC`: only its neighbourhood.
    pub focus: Option<String>,
    /// `--depth N`: hops from the focus, in both directions; `None` = unlimited.
    pub depth: Option<usize>,
    pub direction: Direction,
}

/// Services within `depth` hops of `focus`, following dependencies (both kinds) in one
/// direction and dependents (both kinds) in the other — not siblings reached by going up then
/// down. Two BFS passes: O(V+E).
pub fn neighbourhood(model: &Model, focus: SvcId, depth: Option<usize>) -> Vec<bool> {
    let n = model.services.len();
    let max = depth.unwrap_or(usize::MAX);
    let mut keep = vec![false; n];
    keep[focus] = true;
    for downward in [true, false] {
        let mut dist = vec![usize::MAX; n];
        dist[focus] = 0;
        let mut q = VecDeque::from([focus]);
        while let Some(id) = q.pop_front() {
            if dist[id] >= max {
                continue;
            }
            let (a, b) = if downward {
                let s = &model.services[id];
                (&s.depends_on, &s.soft_depends_on)
            } else {
                (&model.dependents[id], &model.soft_dependents[id])
            };
            for &next in a.iter().chain(b.iter()) {
                if dist[next] == usize::MAX {
                    dist[next] = dist[id] + 1;
                    keep[next] = true;
                    q.push_back(next);
                }
            }
        }
    }
    keep
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Essential,
    Optional,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Essential => "essential",
            EdgeKind::Optional => "optional",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonService {
    pub name: String,
    pub tier: u32,
    pub rto_s: f64,
    pub rpo_s: Option<f64>,
    pub stateful: bool,
    pub owner: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub soft_depends_on: Vec<String>,
    pub wave: u32,
    pub watch: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonGraph {
    pub schema: &'static str,
    pub services: Vec<JsonService>,
    pub edges: Vec<JsonEdge>,
}

/// The selected part of the graph, with global waves.
struct View<'a> {
    model: &'a Model,
    keep: Vec<bool>,
    wave: Vec<u32>,
}

impl<'a> View<'a> {
    fn new(model: &'a Model, opts: &ExportOptions) -> crate::Result<View<'a>> {
        let keep = match &opts.focus {
            Some(name) => neighbourhood(model, model.lookup(name)?, opts.depth),
            None => vec![true; model.services.len()],
        };
        let scope = Scope::all(model);
        let topo = topo_order(model, &scope);
        let wave = waves(model, &scope, &topo);
        Ok(View { model, keep, wave })
    }

    fn ids(&self) -> impl Iterator<Item = SvcId> + '_ {
        (0..self.model.services.len()).filter(|&i| self.keep[i])
    }

    /// Edges between kept services, sorted by (from, to, kind): ids are name-sorted.
    fn edges(&self) -> Vec<(SvcId, SvcId, EdgeKind)> {
        let mut out = Vec::new();
        for id in self.ids() {
            let s = &self.model.services[id];
            // Both lists are sorted by id; merge so that the output is sorted by target.
            let mut e: Vec<(SvcId, SvcId, EdgeKind)> = s
                .depends_on
                .iter()
                .map(|&d| (id, d, EdgeKind::Essential))
                .chain(
                    s.soft_depends_on
                        .iter()
                        .map(|&d| (id, d, EdgeKind::Optional)),
                )
                .filter(|&(_, d, _)| self.keep[d])
                .collect();
            e.sort_unstable();
            out.extend(e);
        }
        out
    }
}

/// Renders the graph (or the focus neighbourhood) in `format`.
pub fn export(model: &Model, opts: &ExportOptions, format: GraphFormat) -> crate::Result<String> {
    let view = View::new(model, opts)?;
    Ok(match format {
        GraphFormat::Json => super::to_json(&json_graph(&view)),
        GraphFormat::Dot => dot(&view, opts.direction),
        GraphFormat::Mermaid => mermaid(&view, opts.direction),
    })
}

/// The JSON document as data (for callers that embed it).
pub fn graph_json(model: &Model, opts: &ExportOptions) -> crate::Result<JsonGraph> {
    Ok(json_graph(&View::new(model, opts)?))
}

fn json_graph(view: &View) -> JsonGraph {
    let m = view.model;
    let names = |ids: &[SvcId]| -> Vec<String> {
        ids.iter()
            .filter(|&&d| view.keep[d])
            .map(|&d| m.name(d).to_string())
            .collect()
    };
    let services = view
        .ids()
        .map(|id| {
            let s = &m.services[id];
            JsonService {
                name: s.name.clone(),
                tier: s.tier,
                rto_s: secs(s.rto),
                rpo_s: s.rpo.map(secs),
                stateful: s.stateful,
                owner: s.owner.clone(),
                tags: s.tags.clone(),
                depends_on: names(&s.depends_on),
                soft_depends_on: names(&s.soft_depends_on),
                wave: view.wave[id],
                watch: s.watch,
            }
        })
        .collect();
    let edges = view
        .edges()
        .into_iter()
        .map(|(a, b, kind)| JsonEdge {
            from: m.name(a).to_string(),
            to: m.name(b).to_string(),
            kind,
        })
        .collect();
    JsonGraph {
        schema: "meeseeks.graph/v1",
        services,
        edges,
    }
}

/// Fill colours per tier: red for tier 0 down to grey for tier 3 and beyond.
fn tier_colour(tier: u32) -> &'static str {
    match tier {
        0 => "#f4a6a6",
        1 => "#f9d29d",
        2 => "#fbf0a8",
        _ => "#dddddd",
    }
}

pub(crate) fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dot(view: &View, dir: Direction) -> String {
    let m = view.model;
    let mut out = String::new();
    // Edges point from dependent to dependency, so Graphviz ranks dependencies after their
    // dependents; RL / BT puts them (wave 0) on the left / top, i.e. in recovery order.
    let rankdir = match dir {
        Direction::LeftRight => "RL",
        Direction::TopDown => "BT",
    };
    out.push_str("digraph meeseeks {\n");
    let _ = writeln!(out, "  rankdir={rankdir};");
    out.push_str("  node [style=filled, fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for id in view.ids() {
        let s = &m.services[id];
        // Tier is shown three ways (colour, border width, label) so it survives greyscale.
        let shape = if s.stateful { "cylinder" } else { "box" };
        let pen = if s.tier == 0 { "2" } else { "1" };
        let mut label = format!(
            "{}\ntier {} · RTO {} · wave {}",
            s.name,
            s.tier,
            dur(s.rto),
            view.wave[id]
        );
        if s.watch {
            label.push_str("\n(watched)");
        }
        let _ = writeln!(
            out,
            "  {} [label={}, shape={shape}, fillcolor=\"{}\", penwidth={pen}, tooltip={}];",
            dot_quote(&s.name),
            dot_quote(&label),
            tier_colour(s.tier),
            dot_quote(&format!("tier {}", s.tier)),
        );
    }
    // One rank per wave: services that recover together are drawn side by side.
    let mut by_wave: BTreeMap<u32, Vec<SvcId>> = BTreeMap::new();
    for id in view.ids() {
        by_wave.entry(view.wave[id]).or_default().push(id);
    }
    for (w, ids) in &by_wave {
        let _ = write!(out, "  subgraph wave_{w} {{ rank=same;");
        for &id in ids {
            let _ = write!(out, " {};", dot_quote(m.name(id)));
        }
        out.push_str(" }\n");
    }
    for (a, b, kind) in view.edges() {
        let attrs = match kind {
            EdgeKind::Essential => "",
            // Optional edges never order recovery: they must not move ranks either.
            EdgeKind::Optional => " [style=dashed, constraint=false]",
        };
        let _ = writeln!(
            out,
            "  {} -> {}{attrs};",
            dot_quote(m.name(a)),
            dot_quote(m.name(b))
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid labels: quotes become `#quot;`; node ids are `s<N>` so names need no escaping.
pub(crate) fn mermaid_label(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn mermaid(view: &View, dir: Direction) -> String {
    let m = view.model;
    let mut out = String::new();
    let d = match dir {
        Direction::LeftRight => "LR",
        Direction::TopDown => "TD",
    };
    let _ = writeln!(out, "flowchart {d}");
    for t in 0..4 {
        let stroke = if t == 0 { ",stroke-width:2px" } else { "" };
        let _ = writeln!(
            out,
            "  classDef tier{t} fill:{},stroke:#333{stroke}",
            tier_colour(t)
        );
    }
    // Node ids are `s<N>` in output order: service names may hold characters Mermaid ids cannot.
    let mut local = vec![usize::MAX; m.services.len()];
    for (k, id) in view.ids().enumerate() {
        local[id] = k;
        let s = &m.services[id];
        let (open, close) = if s.stateful { ("[(", ")]") } else { ("[", "]") };
        let _ = writeln!(
            out,
            "  s{k}{open}\"{}<br/>tier {} · RTO {} · wave {}\"{close}:::tier{}",
            mermaid_label(&s.name),
            s.tier,
            dur(s.rto),
            view.wave[id],
            s.tier.min(3)
        );
    }
    for (a, b, kind) in view.edges() {
        let arrow = match kind {
            EdgeKind::Essential => "-->",
            EdgeKind::Optional => "-.->",
        };
        let _ = writeln!(out, "  s{} {arrow} s{}", local[a], local[b]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::shop;

    #[test]
    fn json_is_sorted_and_complete() {
        let m = shop();
        let out = export(&m, &ExportOptions::default(), GraphFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["schema"], "meeseeks.graph/v1");
        let names: Vec<&str> = v["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let co = v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "checkout")
            .unwrap();
        assert_eq!(co["wave"], 2);
        assert_eq!(co["depends_on"], serde_json::json!(["orders", "payments"]));
        assert_eq!(co["soft_depends_on"], serde_json::json!(["recs"]));
        assert_eq!(co["watch"], true);
        assert_eq!(co["rto_s"], 7200.0);
        let edges: Vec<(String, String, String)> = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().unwrap().into(),
                    e["to"].as_str().unwrap().into(),
                    e["kind"].as_str().unwrap().into(),
                )
            })
            .collect();
        let mut se = edges.clone();
        se.sort();
        assert_eq!(edges, se);
        assert!(edges.contains(&("checkout".into(), "recs".into(), "optional".into())));
        assert_eq!(edges.len(), 6);
    }

    #[test]
    fn focus_takes_dependencies_and_dependents_not_siblings() {
        let m = shop();
        let opts = ExportOptions {
            focus: Some("orders".into()),
            depth: Some(1),
            ..Default::default()
        };
        let g = graph_json(&m, &opts).unwrap();
        let names: Vec<&str> = g.services.iter().map(|s| s.name.as_str()).collect();
        // payments is a sibling (checkout's other dependency): not in the neighbourhood.
        assert_eq!(names, ["checkout", "orders", "orders-db"]);
        let opts = ExportOptions {
            focus: Some("orders".into()),
            depth: None,
            ..Default::default()
        };
        let g = graph_json(&m, &opts).unwrap();
        let names: Vec<&str> = g.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["checkout", "orders", "orders-db", "web"]);
        // Both edge kinds are followed.
        let opts = ExportOptions {
            focus: Some("recs".into()),
            depth: Some(1),
            ..Default::default()
        };
        let g = graph_json(&m, &opts).unwrap();
        let names: Vec<&str> = g.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["checkout", "recs", "search"]);
    }

    #[test]
    fn focus_unknown_service_is_usage_error() {
        let m = shop();
        let opts = ExportOptions {
            focus: Some("ordrs".into()),
            ..Default::default()
        };
        let e = export(&m, &opts, GraphFormat::Dot).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("did you mean `orders`"), "{e}");
    }

    #[test]
    fn dot_snapshot() {
        let out = export(&shop(), &ExportOptions::default(), GraphFormat::Dot).unwrap();
        assert!(out.contains("subgraph wave_0 { rank=same;"));
        assert!(out.contains("\"checkout\" -> \"recs\" [style=dashed, constraint=false];"));
        insta::assert_snapshot!(out);
    }

    #[test]
    fn mermaid_snapshot() {
        let opts = ExportOptions {
            direction: Direction::TopDown,
            ..Default::default()
        };
        let out = export(&shop(), &opts, GraphFormat::Mermaid).unwrap();
        assert!(out.starts_with("flowchart TD\n"));
        assert!(out.contains("-.->"));
        insta::assert_snapshot!(out);
    }
}
