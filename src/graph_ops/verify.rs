//! `meeseeks verify --observed FILE`: the declared graph against dependencies seen in traffic.
//!
//! FILE is Jaeger's dependencies JSON (`[{"parent","child","callCount"}]`, as returned by
//! `/api/dependencies`, bare or wrapped in `{"data": [...]}`) or CSV `caller,callee[,count]`
//! (optional header, `#` comments). In both, the caller depends on the callee.
//!
//! - **undeclared**: observed with at least `--min-calls` calls, caller in the graph, and not
//!   declared as an essential or optional dependency. The plan may start the caller before
//!   something it really needs. A callee missing from the graph is undeclared too (the graph
//!   lacks it altogether). Calls *from* services not in the graph (load generators, external
//!   clients) are only listed as unknown names. Self-calls are ignored.
//! - **unobserved**: declared, never observed, for callers that were observed calling something
//!   (any count: one call proves an edge exists; `--min-calls` only filters noise out of the
//!   undeclared list). Services never seen as callers are listed as not instrumented rather than
//!   flooding the report with every edge they declare.
//!
//! Linear: one hash map over the observed edges, binary searches in sorted adjacency lists.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::export::EdgeKind;
use super::{Render, md_cell, table};
use crate::model::{Model, SvcId};

/// One observed caller → callee edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub from: String,
    pub to: String,
    pub calls: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedFormat {
    /// `.json` / `.csv` by extension, else by content (JSON starts with `[` or `{`).
    Auto,
    Jaeger,
    Csv,
}

#[derive(Deserialize)]
struct JaegerDep {
    parent: String,
    child: String,
    #[serde(rename = "callCount", default = "one")]
    call_count: u64,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize)]
struct JaegerWrapped {
    data: Vec<JaegerDep>,
}

/// Reads and parses FILE. Errors name the file and the line (exit 2).
pub fn read_observed(path: &Path, format: ObservedFormat) -> crate::Result<Vec<Observed>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::Error::io(format!("cannot read {}", path.display()), e))?;
    let format = match (format, path.extension().and_then(|e| e.to_str())) {
        (ObservedFormat::Auto, Some("json")) => ObservedFormat::Jaeger,
        (ObservedFormat::Auto, Some("csv")) => ObservedFormat::Csv,
        (f, _) => f,
    };
    parse_observed(&text, &path.display().to_string(), format)
}

/// Parses observed dependencies; `source` names the input in error messages.
pub fn parse_observed(
    text: &str,
    source: &str,
    format: ObservedFormat,
) -> crate::Result<Vec<Observed>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = match format {
        ObservedFormat::Auto => match text.trim_start().chars().next() {
            Some('[' | '{') => ObservedFormat::Jaeger,
            _ => ObservedFormat::Csv,
        },
        f => f,
    };
    match format {
        ObservedFormat::Csv => parse_csv(text, source),
        _ => parse_jaeger(text, source),
    }
}

/// Invalid input (exit 2). `Error::Invalid` carries text already rendered for stderr.
fn bad_input(msg: String) -> crate::Error {
    crate::Error::Invalid(format!("error: {msg}\n"))
}

fn parse_jaeger(text: &str, source: &str) -> crate::Result<Vec<Observed>> {
    let err = |e: serde_json::Error| {
        bad_input(format!(
            "{source}:{}:{}: not Jaeger dependencies JSON ([{{\"parent\",\"child\",\"callCount\"}}]): {e}",
            e.line(),
            e.column()
        ))
    };
    let deps: Vec<JaegerDep> = if text.trim_start().starts_with('{') {
        serde_json::from_str::<JaegerWrapped>(text)
            .map_err(err)?
            .data
    } else {
        serde_json::from_str(text).map_err(err)?
    };
    Ok(deps
        .into_iter()
        .map(|d| Observed {
            from: d.parent,
            to: d.child,
            calls: d.call_count,
        })
        .collect())
}

/// Strips surrounding quotes from a CSV field; service names contain no commas or quotes.
fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

const HEADER_WORDS: &[&str] = &["caller", "parent", "source", "from", "client"];

fn parse_csv(text: &str, source: &str) -> crate::Result<Vec<Observed>> {
    let mut out = Vec::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(field).collect();
        let is_first = std::mem::take(&mut first);
        if is_first && HEADER_WORDS.contains(&cols[0].to_ascii_lowercase().as_str()) {
            continue;
        }
        if !(2..=3).contains(&cols.len()) {
            return Err(bad_input(format!(
                "{source}:{n}: expected `caller,callee[,count]`, got {} field(s): {line}",
                cols.len()
            )));
        }
        if cols[0].is_empty() || cols[1].is_empty() {
            return Err(bad_input(format!(
                "{source}:{n}: empty service name: {line}"
            )));
        }
        let calls = match cols.get(2) {
            None | Some(&"") => 1,
            Some(c) => c.parse::<u64>().map_err(|_| {
                bad_input(format!(
                    "{source}:{n}: call count `{c}` is not a non-negative integer"
                ))
            })?,
        };
        out.push(Observed {
            from: cols[0].to_string(),
            to: cols[1].to_string(),
            calls,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// `--min-calls N`: observed edges with fewer calls are noise (default 1).
    pub min_calls: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { min_calls: 1 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Undeclared {
    pub from: String,
    pub to: String,
    pub calls: u64,
    /// The callee is not in the graph at all.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub callee_unknown: bool,
    /// The graph declares the opposite direction (`to` depends on `from`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reverse_declared: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unobserved {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub schema: &'static str,
    /// Distinct observed edges (self-calls excluded), and how many fell below `min_calls`.
    pub observed_edges: usize,
    pub below_min_calls: usize,
    pub min_calls: u64,
    /// Sorted by (from, to).
    pub undeclared: Vec<Undeclared>,
    pub unobserved: Vec<Unobserved>,
    /// Observed names missing from the graph.
    pub unknown_services: Vec<String>,
    /// Services with declared dependencies never seen calling anything: not checked.
    pub not_instrumented: Vec<String>,
}

fn declared(m: &Model, from: SvcId, to: SvcId) -> bool {
    let s = &m.services[from];
    s.depends_on.binary_search(&to).is_ok() || s.soft_depends_on.binary_search(&to).is_ok()
}

pub fn verify(model: &Model, observed: &[Observed], opts: &VerifyOptions) -> VerifyReport {
    // Names resolved once; known pairs aggregated by sorting ids (duplicates — several files
    // concatenated, per-day exports — are summed), unknown ones in a small map.
    let mut known: Vec<(u32, u32, u64)> = Vec::with_capacity(observed.len());
    let mut other: HashMap<(&str, &str), (Option<SvcId>, u64)> = HashMap::new();
    let mut unknown = BTreeSet::new();
    for o in observed.iter().filter(|o| o.from != o.to) {
        let (f, t) = (model.id(&o.from), model.id(&o.to));
        match (f, t) {
            (Some(f), Some(t)) => known.push((f as u32, t as u32, o.calls)),
            _ => {
                if f.is_none() {
                    unknown.insert(o.from.as_str());
                }
                if t.is_none() {
                    unknown.insert(o.to.as_str());
                }
                let e = other.entry((&o.from, &o.to)).or_insert((f, 0));
                e.1 = e.1.saturating_add(o.calls);
            }
        }
    }
    known.sort_unstable_by_key(|&(f, t, _)| (f, t));
    let mut edges: Vec<(u32, u32, u64)> = Vec::with_capacity(known.len());
    for (f, t, c) in known {
        match edges.last_mut() {
            // Summed exports of a busy mesh can pass u64: saturate rather than wrap.
            Some(last) if last.0 == f && last.1 == t => last.2 = last.2.saturating_add(c),
            _ => edges.push((f, t, c)),
        }
    }
    let n = model.services.len();
    let mut caller_seen = vec![false; n];
    let mut undeclared = Vec::new();
    let mut below = 0;
    for &(f, t, c) in &edges {
        let (f, t) = (f as SvcId, t as SvcId);
        caller_seen[f] = true;
        if c < opts.min_calls {
            below += 1;
        } else if !declared(model, f, t) {
            undeclared.push(Undeclared {
                from: model.name(f).to_string(),
                to: model.name(t).to_string(),
                calls: c,
                callee_unknown: false,
                reverse_declared: declared(model, t, f),
            });
        }
    }
    // Calls into services missing from the graph, from services in it.
    for (&(from, to), &(f, c)) in &other {
        let Some(f) = f else { continue };
        caller_seen[f] = true;
        if c < opts.min_calls {
            below += 1;
        } else {
            undeclared.push(Undeclared {
                from: from.to_string(),
                to: to.to_string(),
                calls: c,
                callee_unknown: true,
                reverse_declared: false,
            });
        }
    }
    undeclared.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    // `edges` is sorted by caller then callee: each caller's observed callees are one slice.
    let mut unobserved = Vec::new();
    let mut not_instrumented = Vec::new();
    let mut i = 0;
    for (id, s) in model.services.iter().enumerate() {
        let start = i;
        while i < edges.len() && edges[i].0 as usize == id {
            i += 1;
        }
        if s.depends_on.is_empty() && s.soft_depends_on.is_empty() {
            continue;
        }
        if !caller_seen[id] {
            not_instrumented.push(s.name.clone());
            continue;
        }
        let got = &edges[start..i];
        let decl = s
            .depends_on
            .iter()
            .map(|&d| (d, EdgeKind::Essential))
            .chain(s.soft_depends_on.iter().map(|&d| (d, EdgeKind::Optional)));
        for (d, kind) in decl {
            if got.binary_search_by_key(&(d as u32), |e| e.1).is_err() {
                unobserved.push(Unobserved {
                    from: s.name.clone(),
                    to: model.name(d).to_string(),
                    kind,
                });
            }
        }
    }
    unobserved.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    VerifyReport {
        schema: "meeseeks.verify/v1",
        observed_edges: edges.len() + other.len(),
        below_min_calls: below,
        min_calls: opts.min_calls,
        undeclared,
        unobserved,
        unknown_services: unknown.into_iter().map(str::to_string).collect(),
        not_instrumented,
    }
}

/// `verify --suggest`: the TOML that declares the undeclared dependencies, one
/// `[services.NAME]` block per caller with its whole new `depends_on` (the declared entries
/// kept, the observed ones added), to replace the line in graph.toml.
///
/// Observed calls become *essential* dependencies (what the plan must order), except where
/// that would close a cycle of essential edges (the loader would refuse the graph): those are
/// suggested as `soft_depends_on`, with the reason in a comment. Calls into services missing
/// from the graph are comments only: declaring them needs the service (and its tier) first.
/// Cycles are found once, with the strongly connected components of the declared essential
/// graph plus every suggested edge: O(V+E).
pub fn suggest(model: &Model, r: &VerifyReport) -> String {
    use petgraph::graph::{DiGraph, NodeIndex};
    let n = model.services.len();
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, 0);
    for _ in 0..n {
        g.add_node(());
    }
    for (id, s) in model.services.iter().enumerate() {
        for &d in &s.depends_on {
            g.add_edge(NodeIndex::new(id), NodeIndex::new(d), ());
        }
    }
    let mut per_caller: std::collections::BTreeMap<&str, Vec<&Undeclared>> = Default::default();
    for u in &r.undeclared {
        per_caller.entry(u.from.as_str()).or_default().push(u);
        if let (Some(f), Some(t)) = (model.id(&u.from), model.id(&u.to)) {
            g.add_edge(NodeIndex::new(f), NodeIndex::new(t), ());
        }
    }
    let mut comp = vec![0usize; n];
    for (c, scc) in petgraph::algo::tarjan_scc(&g).iter().enumerate() {
        for v in scc {
            comp[v.index()] = c;
        }
    }
    let names =
        |ids: &[SvcId]| -> Vec<String> { ids.iter().map(|&d| model.name(d).to_string()).collect() };
    let list = |v: &[String]| -> String {
        let q: Vec<String> = v.iter().map(|x| format!("\"{x}\"")).collect();
        format!("[{}]", q.join(", "))
    };
    let mut out = String::from(
        "# Undeclared dependencies observed in traffic (meeseeks verify --suggest).\n\
         # In graph.toml, replace each service's depends_on / soft_depends_on with the line below\n\
         # (declared entries are kept).\n",
    );
    if per_caller.is_empty() {
        out.push_str("# Nothing to add: every observed dependency is declared.\n");
    }
    for (caller, list_u) in per_caller {
        let Some(id) = model.id(caller) else { continue };
        let s = &model.services[id];
        let mut hard = names(&s.depends_on);
        let mut soft = names(&s.soft_depends_on);
        let (mut added_hard, mut added_soft, mut notes) = (Vec::new(), Vec::new(), Vec::new());
        for u in list_u {
            match model.id(&u.to) {
                None => notes.push(format!(
                    "# {caller} calls {} ({} calls), which is not in the graph: add [services.{}] first",
                    u.to, u.calls, u.to
                )),
                Some(t) if comp[t] == comp[id] => {
                    soft.push(u.to.clone());
                    added_soft.push(format!("{} ({} calls)", u.to, u.calls));
                    notes.push(format!(
                        "# {caller} -> {} as essential would close a cycle of essential dependencies: suggested as optional",
                        u.to
                    ));
                }
                Some(_) => {
                    hard.push(u.to.clone());
                    added_hard.push(format!("{} ({} calls)", u.to, u.calls));
                }
            }
        }
        hard.sort();
        soft.sort();
        // A header with nothing under it would only duplicate the table when pasted.
        let only_notes = added_hard.is_empty() && added_soft.is_empty();
        let _ = write!(
            out,
            "\n{}[services.{caller}]",
            if only_notes { "# " } else { "" }
        );
        if s.line > 0 {
            let _ = write!(out, "  # graph.toml line {}", s.line);
        }
        out.push('\n');
        for n in &notes {
            let _ = writeln!(out, "{n}");
        }
        if !added_hard.is_empty() {
            let _ = writeln!(
                out,
                "depends_on = {}  # added: {}",
                list(&hard),
                added_hard.join(", ")
            );
        }
        if !added_soft.is_empty() {
            let _ = writeln!(
                out,
                "soft_depends_on = {}  # added: {}",
                list(&soft),
                added_soft.join(", ")
            );
        }
    }
    out
}

/// At most this many entries per list in text and Markdown (JSON has them all); undeclared
/// dependencies are never cut: they are what fails the command.
const SHOWN: usize = 100;

fn capped(list: &[String]) -> String {
    let mut s = list
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        let _ = write!(s, ", … and {} more", list.len() - SHOWN);
    }
    s
}

impl VerifyReport {
    fn summary(&self) -> String {
        let mut s = format!(
            "{} observed edge(s): {} undeclared, {} declared but unobserved",
            self.observed_edges,
            self.undeclared.len(),
            self.unobserved.len()
        );
        if self.below_min_calls > 0 {
            let _ = write!(
                s,
                " ({} below --min-calls {} ignored)",
                self.below_min_calls, self.min_calls
            );
        }
        s
    }

    fn note(u: &Undeclared) -> String {
        if u.callee_unknown {
            "callee not in the graph".into()
        } else if u.reverse_declared {
            format!("graph declares the reverse: {} -> {}", u.to, u.from)
        } else {
            String::new()
        }
    }
}

impl Render for VerifyReport {
    /// 1 when undeclared dependencies were observed (SPEC §3), else 0.
    fn exit_code(&self) -> i32 {
        if self.undeclared.is_empty() {
            crate::error::exit::OK
        } else {
            crate::error::exit::NEGATIVE
        }
    }

    fn text(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        if !self.undeclared.is_empty() {
            out.push_str(
                "\nUNDECLARED dependencies (seen in traffic, not in the graph: the plan may start a \
                 service before something it needs):\n",
            );
            let mut rows = vec![vec![
                "  CALLER".to_string(),
                "CALLEE".into(),
                "CALLS".into(),
                "NOTE".into(),
            ]];
            for u in &self.undeclared {
                rows.push(vec![
                    format!("  {}", u.from),
                    u.to.clone(),
                    u.calls.to_string(),
                    Self::note(u),
                ]);
            }
            out.push_str(&table(&rows));
        }
        if !self.unobserved.is_empty() {
            out.push_str(
                "\ndeclared but not observed (stale, or not exercised by the traffic sampled):\n",
            );
            let mut rows = vec![vec!["  FROM".to_string(), "TO".into(), "KIND".into()]];
            for u in self.unobserved.iter().take(SHOWN) {
                rows.push(vec![
                    format!("  {}", u.from),
                    u.to.clone(),
                    u.kind.as_str().into(),
                ]);
            }
            out.push_str(&table(&rows));
            if self.unobserved.len() > SHOWN {
                let _ = writeln!(out, "  … and {} more", self.unobserved.len() - SHOWN);
            }
        }
        if !self.unknown_services.is_empty() {
            let _ = writeln!(
                out,
                "\nobserved services missing from the graph: {}",
                capped(&self.unknown_services)
            );
        }
        if !self.not_instrumented.is_empty() {
            let _ = writeln!(
                out,
                "\nnever seen calling anything (dependencies not checked): {}",
                capped(&self.not_instrumented)
            );
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "## Observed vs declared dependencies\n\n{}\n",
            self.summary()
        );
        if !self.undeclared.is_empty() {
            out.push_str(
                "\n### Undeclared\n\n| caller | callee | calls | note |\n|---|---|---|---|\n",
            );
            for u in &self.undeclared {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    md_cell(&u.from),
                    md_cell(&u.to),
                    u.calls,
                    md_cell(&Self::note(u))
                );
            }
        }
        if !self.unobserved.is_empty() {
            out.push_str(
                "\n### Declared but not observed\n\n| from | to | kind |\n|---|---|---|\n",
            );
            for u in self.unobserved.iter().take(SHOWN) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    md_cell(&u.from),
                    md_cell(&u.to),
                    u.kind.as_str()
                );
            }
        }
        for (title, list) in [
            (
                "Observed services missing from the graph",
                &self.unknown_services,
            ),
            ("Never seen calling anything", &self.not_instrumented),
        ] {
            if !list.is_empty() {
                let _ = writeln!(out, "\n### {title}\n\n{}", md_cell(&capped(list)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::shop;

    const JAEGER: &str = r#"[
  {"parent": "web", "child": "checkout", "callCount": 500},
  {"parent": "checkout", "child": "orders", "callCount": 300},
  {"parent": "checkout", "child": "recs", "callCount": 20},
  {"parent": "checkout", "child": "fraud", "callCount": 40},
  {"parent": "orders", "child": "orders-db", "callCount": 900},
  {"parent": "orders", "child": "payments", "callCount": 2},
  {"parent": "orders-db", "child": "orders", "callCount": 7},
  {"parent": "loadgen", "child": "web", "callCount": 1000},
  {"parent": "web", "child": "web", "callCount": 5}
]"#;

    const CSV: &str = "caller,callee,count
# exported from the mesh
web,checkout,500
checkout,orders,300
checkout,recs,20
checkout,fraud,40
orders,orders-db,900
orders,payments,2
\"orders-db\",orders,7
loadgen,web,1000
web,web,5
";

    fn check(r: &VerifyReport) {
        let und: Vec<(&str, &str)> = r
            .undeclared
            .iter()
            .map(|u| (u.from.as_str(), u.to.as_str()))
            .collect();
        assert_eq!(
            und,
            [
                ("checkout", "fraud"),
                ("orders", "payments"),
                ("orders-db", "orders")
            ]
        );
        assert!(r.undeclared[0].callee_unknown);
        assert!(r.undeclared[2].reverse_declared);
        let unobs: Vec<(&str, &str)> = r
            .unobserved
            .iter()
            .map(|u| (u.from.as_str(), u.to.as_str()))
            .collect();
        // search never calls anything: not instrumented, not "unobserved".
        assert_eq!(unobs, [("checkout", "payments")]);
        assert_eq!(r.unknown_services, ["fraud", "loadgen"]);
        assert_eq!(r.not_instrumented, ["search"]);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn jaeger_json() {
        let obs = parse_observed(JAEGER, "deps.json", ObservedFormat::Auto).unwrap();
        assert_eq!(obs.len(), 9);
        check(&verify(&shop(), &obs, &VerifyOptions::default()));
        // The API's wrapped form too.
        let wrapped = format!("{{\"data\": {JAEGER}}}");
        let obs = parse_observed(&wrapped, "deps.json", ObservedFormat::Jaeger).unwrap();
        check(&verify(&shop(), &obs, &VerifyOptions::default()));
    }

    #[test]
    fn csv() {
        let obs = parse_observed(CSV, "deps.csv", ObservedFormat::Auto).unwrap();
        assert_eq!(obs.len(), 9);
        assert_eq!(obs[6].from, "orders-db");
        check(&verify(&shop(), &obs, &VerifyOptions::default()));
        // No header, no counts.
        let obs = parse_observed("a,b\nc,d,\n", "x", ObservedFormat::Csv).unwrap();
        assert_eq!(obs[1].calls, 1);
    }

    #[test]
    fn min_calls_filters_noise_in_both_formats() {
        for (text, fmt) in [(JAEGER, ObservedFormat::Jaeger), (CSV, ObservedFormat::Csv)] {
            let obs = parse_observed(text, "f", fmt).unwrap();
            let r = verify(&shop(), &obs, &VerifyOptions { min_calls: 10 });
            let und: Vec<&str> = r.undeclared.iter().map(|u| u.to.as_str()).collect();
            assert_eq!(und, ["fraud"]);
            assert_eq!(r.below_min_calls, 2);
            // A call below the threshold still proves the edge exists.
            assert_eq!(r.unobserved.len(), 1);
        }
    }

    #[test]
    fn clean_when_traffic_matches() {
        let csv = "web,checkout\ncheckout,orders\ncheckout,payments\ncheckout,recs\norders,orders-db\nsearch,recs\n";
        let obs = parse_observed(csv, "f", ObservedFormat::Csv).unwrap();
        let r = verify(&shop(), &obs, &VerifyOptions::default());
        assert!(r.undeclared.is_empty() && r.unobserved.is_empty(), "{r:?}");
        assert!(r.unknown_services.is_empty() && r.not_instrumented.is_empty());
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn bad_input_names_the_line() {
        let e = parse_observed("a,b\nc,d,many\n", "obs.csv", ObservedFormat::Csv).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "error: obs.csv:2: call count `many` is not a non-negative integer\n"
        );
        let e = parse_observed("a,b\n\nc\n", "obs.csv", ObservedFormat::Csv).unwrap_err();
        assert!(
            e.to_string().starts_with("error: obs.csv:3: expected"),
            "{e}"
        );
        let e = parse_observed("a,,3\n", "obs.csv", ObservedFormat::Csv).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("error: obs.csv:1: empty service name"),
            "{e}"
        );
        let bad = "[\n {\"parent\": \"a\", \"child\": \"b\"},\n {\"parent\": \"a\"}\n]";
        let e = parse_observed(bad, "deps.json", ObservedFormat::Auto).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("error: deps.json:3:"), "{e}");
        assert!(e.to_string().contains("missing field `child`"), "{e}");
        let e =
            parse_observed("[{\"parent\": \"a\",", "deps.json", ObservedFormat::Auto).unwrap_err();
        assert!(e.to_string().starts_with("error: deps.json:1:"), "{e}");
    }

    #[test]
    fn read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("deps.json");
        std::fs::write(&j, JAEGER).unwrap();
        let c = dir.path().join("deps.csv");
        std::fs::write(&c, CSV).unwrap();
        for p in [&j, &c] {
            let obs = read_observed(p, ObservedFormat::Auto).unwrap();
            check(&verify(&shop(), &obs, &VerifyOptions::default()));
        }
        let e = read_observed(&dir.path().join("none.csv"), ObservedFormat::Auto).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    /// Issue 12: call counts summed over duplicate pairs saturate instead of wrapping
    /// (a wrapped sum fell below --min-calls and hid the dependency).
    #[test]
    fn call_counts_saturate() {
        let big = u64::MAX - 1;
        let csv =
            format!("checkout,fraud,{big}\ncheckout,fraud,5\nweb,search,{big}\nweb,search,5\n");
        let obs = parse_observed(&csv, "f", ObservedFormat::Csv).unwrap();
        let r = verify(&shop(), &obs, &VerifyOptions { min_calls: 10 });
        let calls: Vec<(&str, u64)> = r
            .undeclared
            .iter()
            .map(|u| (u.to.as_str(), u.calls))
            .collect();
        assert_eq!(calls, [("fraud", u64::MAX), ("search", u64::MAX)]);
        assert_eq!(r.below_min_calls, 0);
    }

    #[test]
    fn suggest_merges_with_declared_and_avoids_cycles() {
        let obs = parse_observed(JAEGER, "deps.json", ObservedFormat::Auto).unwrap();
        let m = shop();
        let r = verify(&m, &obs, &VerifyOptions::default());
        let toml = suggest(&m, &r);
        insta::assert_snapshot!(toml);
        // What it suggests, applied, loads: no cycle, no unknown service.
        let mut parts = Vec::new();
        let doc: toml::Table = toml::from_str(&toml).unwrap();
        for s in &m.services {
            let mut deps: Vec<String> = s
                .depends_on
                .iter()
                .map(|&d| m.name(d).to_string())
                .collect();
            let mut soft: Vec<String> = s
                .soft_depends_on
                .iter()
                .map(|&d| m.name(d).to_string())
                .collect();
            if let Some(t) = doc.get("services").and_then(|x| x.get(&s.name)) {
                let get = |k: &str| -> Option<Vec<String>> {
                    t.get(k).map(|v| {
                        v.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap().to_string())
                            .collect()
                    })
                };
                deps = get("depends_on").unwrap_or(deps);
                soft = get("soft_depends_on").unwrap_or(soft);
            }
            let mut p = crate::graph_ops::fixtures::s(&s.name, s.tier, 60, &[], &[]);
            p.1 = deps;
            p.2 = soft;
            parts.push(p);
        }
        let fixed = crate::graph_ops::fixtures::model(parts);
        let topo = crate::plan::topo_order(&fixed, &crate::plan::Scope::all(&fixed));
        assert_eq!(
            topo.len(),
            fixed.services.len(),
            "the suggestion closed a cycle"
        );
        let again = verify(&fixed, &obs, &VerifyOptions::default());
        let left: Vec<&str> = again.undeclared.iter().map(|u| u.to.as_str()).collect();
        assert_eq!(
            left,
            ["fraud"],
            "only the service missing from the graph is left"
        );
    }

    #[test]
    fn text_snapshot() {
        let obs = parse_observed(JAEGER, "deps.json", ObservedFormat::Auto).unwrap();
        let r = verify(&shop(), &obs, &VerifyOptions { min_calls: 5 });
        insta::assert_snapshot!(r.text());
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.verify/v1");
        assert_eq!(v["undeclared"][0]["from"], "checkout");
    }
}
