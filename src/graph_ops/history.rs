//! `meeseeks history`: how the graph evolved, commit by commit (the git walk is in
//! `cli::history`; this module turns consecutive graphs into the report).
//!
//! Each commit that changed the graph is compared with the previous graph by
//! [`diff`](super::diff::diff): services and edges added and removed, tier and RTO changes, and
//! the *new dependents* of watched services (`watch = true` at that commit, or `--watch`), with
//! the same rule as `meeseeks diff`. The commit that creates the graph lists its services as
//! added and no new dependents (there is nothing they could be new against). A commit whose
//! graph does not load is listed with the first error and skipped for comparison: the next
//! valid graph is compared with the last valid one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::HtmlEscape;
use serde::Serialize;

use super::diff::{DiffOptions, FieldChange, change_text as field_text, diff};
use super::export::EdgeKind;
use super::{Render, md_cell};
use crate::model::{Model, SvcId};

#[derive(Debug, Clone, Serialize)]
pub struct EdgeRef {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub service: String,
    /// `field` is `tier` or `rto_s`.
    #[serde(flatten)]
    pub change: FieldChange,
}

/// One commit that changed the graph.
#[derive(Debug, Clone, Serialize)]
pub struct CommitEntry {
    pub commit: String,
    /// Author date, RFC 3339.
    pub date: String,
    pub author: String,
    pub summary: String,
    /// Size of the graph at this commit (edges of both kinds).
    pub services: usize,
    pub edges: usize,
    pub services_added: Vec<String>,
    pub services_removed: Vec<String>,
    pub edges_added: Vec<EdgeRef>,
    pub edges_removed: Vec<EdgeRef>,
    /// Tier and RTO changes.
    pub changed: Vec<Change>,
    pub new_dependents: BTreeMap<String, Vec<String>>,
    /// For each `--watch` service: how many services depend on it (transitive essential
    /// dependents plus direct optional ones, the set `diff` watches) at this commit.
    pub dependents: BTreeMap<String, usize>,
    /// Why this commit's graph could not be loaded (it is then left out of the comparison).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who made a commit, and when.
#[derive(Debug, Clone)]
pub struct CommitMeta {
    pub commit: String,
    pub date: String,
    pub author: String,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub schema: &'static str,
    /// The `--watch` services.
    pub watch: Vec<String>,
    /// Oldest first.
    pub commits: Vec<CommitEntry>,
}

/// Edges of both kinds.
pub fn edge_count(m: &Model) -> usize {
    m.services
        .iter()
        .map(|s| s.depends_on.len() + s.soft_depends_on.len())
        .sum()
}

/// |D(w)|: transitive essential dependents of `w` plus its direct optional dependents (the
/// set whose growth `diff` reports), by one BFS: O(V+E).
pub fn dependents_of(m: &Model, w: SvcId) -> usize {
    let mut seen = vec![false; m.services.len()];
    seen[w] = true;
    let mut stack = vec![w];
    let mut n = 0;
    while let Some(id) = stack.pop() {
        for &t in &m.dependents[id] {
            if !seen[t] {
                seen[t] = true;
                n += 1;
                stack.push(t);
            }
        }
    }
    n + m.soft_dependents[w].iter().filter(|&&t| !seen[t]).count()
}

impl HistoryReport {
    pub fn new(watch: Vec<String>) -> HistoryReport {
        HistoryReport {
            schema: "meeseeks.history/v1",
            watch,
            commits: Vec::new(),
        }
    }

    /// Adds a commit whose graph is `cur`, compared with `prev` (the last valid graph, if
    /// any).
    pub fn push(&mut self, meta: CommitMeta, prev: Option<&Model>, cur: &Model) {
        let empty;
        let (old, first) = match prev {
            Some(p) => (p, false),
            None => {
                empty = Model::from_parts(cur.dir.clone(), Default::default(), Vec::new());
                (&empty, true)
            }
        };
        // Watched services that exist at this commit (a --watch service may come later).
        let watch: Vec<String> = self
            .watch
            .iter()
            .filter(|w| cur.id(w).is_some())
            .cloned()
            .collect();
        let d = diff(old, cur, &DiffOptions { watch })
            .expect("watched services were filtered to those of the graph");
        let edge = |e: super::diff::Edge| EdgeRef {
            from: e.from,
            to: e.to,
            kind: e.kind,
        };
        let mut edges_added: Vec<EdgeRef> = d.added_edges.into_iter().map(edge).collect();
        let mut edges_removed: Vec<EdgeRef> = d.removed_edges.into_iter().map(edge).collect();
        // An edge that changed kind is one edge removed and one added.
        for c in d.changed_edges {
            edges_removed.push(EdgeRef {
                from: c.from.clone(),
                to: c.to.clone(),
                kind: c.old_kind,
            });
            edges_added.push(EdgeRef {
                from: c.from,
                to: c.to,
                kind: c.new_kind,
            });
        }
        let changed = d
            .changed_services
            .into_iter()
            .flat_map(|s| {
                let name = s.name;
                s.changes
                    .into_iter()
                    .filter(|f| f.field == "tier" || f.field == "rto_s")
                    .map(move |change| Change {
                        service: name.clone(),
                        change,
                    })
            })
            .collect();
        let dependents = self
            .watch
            .iter()
            .filter_map(|w| Some((w.clone(), dependents_of(cur, cur.id(w)?))))
            .collect();
        self.commits.push(CommitEntry {
            commit: meta.commit,
            date: meta.date,
            author: meta.author,
            summary: meta.summary,
            services: cur.services.len(),
            edges: edge_count(cur),
            services_added: d.added_services,
            services_removed: d.removed_services,
            edges_added,
            edges_removed,
            changed,
            new_dependents: if first {
                BTreeMap::new()
            } else {
                d.new_dependents
            },
            dependents,
            error: None,
        });
    }

    /// Adds a commit whose graph does not load; the size shown is the last valid one's.
    pub fn push_invalid(&mut self, meta: CommitMeta, prev: Option<&Model>, error: String) {
        // The last valid graph still stands: its dependents too.
        let dependents = self
            .commits
            .iter()
            .rev()
            .find(|c| c.error.is_none())
            .map(|c| c.dependents.clone())
            .unwrap_or_default();
        self.commits.push(CommitEntry {
            commit: meta.commit,
            date: meta.date,
            author: meta.author,
            summary: meta.summary,
            services: prev.map_or(0, |m| m.services.len()),
            edges: prev.map_or(0, edge_count),
            services_added: Vec::new(),
            services_removed: Vec::new(),
            edges_added: Vec::new(),
            edges_removed: Vec::new(),
            changed: Vec::new(),
            new_dependents: BTreeMap::new(),
            dependents,
            error: Some(error),
        });
    }

    pub fn has_new_dependents(&self) -> bool {
        self.commits.iter().any(|c| !c.new_dependents.is_empty())
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

/// `2026-11-30` of an RFC 3339 date.
fn day(date: &str) -> &str {
    &date[..date.len().min(10)]
}

fn edge_text(e: &EdgeRef) -> String {
    let arrow = match e.kind {
        EdgeKind::Essential => "->",
        EdgeKind::Optional => "~>",
    };
    format!("{} {arrow} {}", e.from, e.to)
}

fn change_text(c: &Change) -> String {
    format!("{}: {}", c.service, field_text(&c.change))
}

/// At most this many names per line in text and Markdown (JSON has them all).
const SHOWN: usize = 20;

fn capped(v: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = v.into_iter().collect();
    let mut s = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > SHOWN {
        let _ = write!(s, ", … ({} more)", v.len() - SHOWN);
    }
    s
}

impl CommitEntry {
    /// Change lines for text and Markdown, each with its marker.
    fn lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(("!", format!("graph does not load: {e}")));
        }
        if !self.services_added.is_empty() {
            out.push((
                "+",
                format!("services: {}", capped(self.services_added.clone())),
            ));
        }
        if !self.services_removed.is_empty() {
            out.push((
                "-",
                format!("services: {}", capped(self.services_removed.clone())),
            ));
        }
        if !self.edges_added.is_empty() {
            out.push((
                "+",
                format!("edges: {}", capped(self.edges_added.iter().map(edge_text))),
            ));
        }
        if !self.edges_removed.is_empty() {
            out.push((
                "-",
                format!(
                    "edges: {}",
                    capped(self.edges_removed.iter().map(edge_text))
                ),
            ));
        }
        if !self.changed.is_empty() {
            out.push(("~", capped(self.changed.iter().map(change_text))));
        }
        for (w, d) in &self.new_dependents {
            out.push(("!", format!("{w} gained dependents: {}", d.join(", "))));
        }
        out
    }
}

impl Render for HistoryReport {
    fn text(&self) -> String {
        let mut out = format!("{} commit(s) changed the graph", self.commits.len());
        if let (Some(a), Some(b)) = (self.commits.first(), self.commits.last()) {
            let _ = write!(
                out,
                " from {} to {}: {} → {} services, {} → {} edges",
                day(&a.date),
                day(&b.date),
                a.services - a.services_added.len() + a.services_removed.len(),
                b.services,
                a.edges - a.edges_added.len() + a.edges_removed.len(),
                b.edges
            );
        }
        out.push('\n');
        for c in &self.commits {
            let _ = writeln!(
                out,
                "\n{} {} {}  {}",
                day(&c.date),
                short(&c.commit),
                c.author,
                c.summary
            );
            let _ = writeln!(out, "  {} services, {} edges", c.services, c.edges);
            for (mark, l) in c.lines() {
                let _ = writeln!(out, "  {mark} {l}");
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "## Graph history\n\n{} commit(s) changed the graph.\n\n| date | commit | author | summary | services | edges | changes |\n|---|---|---|---|---|---|---|\n",
            self.commits.len()
        );
        for c in &self.commits {
            let changes: Vec<String> = c
                .lines()
                .into_iter()
                .map(|(m, l)| format!("{m} {}", md_cell(&l)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} |",
                day(&c.date),
                short(&c.commit),
                md_cell(&c.author),
                md_cell(&c.summary),
                c.services,
                c.edges,
                changes.join("<br>")
            );
        }
        out
    }

    fn drawing(&self, format: super::ReportFormat) -> Option<String> {
        (format == super::ReportFormat::Html).then(|| self.html())
    }
}

const CHART_W: f64 = 860.0;
const CHART_H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 36.0;

/// A line chart over the commits (x = commit index, so that a busy day does not squash):
/// one polyline per series, a dot per commit with a tooltip, date ticks under the axis.
fn line_chart(
    title: &str,
    dates: &[&str],
    tips: &[String],
    series: &[(&str, &str, Vec<f64>)],
) -> String {
    let n = dates.len();
    // A whole number per grid line (4 of them).
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(1.0f64, f64::max);
    let max = (max / 4.0).ceil() * 4.0;
    let x = |i: usize| {
        if n <= 1 {
            PAD_L + CHART_W / 2.0
        } else {
            PAD_L + CHART_W * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| 10.0 + CHART_H - CHART_H * v / max;
    let (w, h) = (PAD_L + CHART_W + 40.0, CHART_H + PAD_B + 14.0);
    let mut o = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        HtmlEscape(title)
    );
    o.push('\n');
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            o,
            r#"<line x1="{PAD_L}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" class="grid"/><text x="{2:.1}" y="{3:.1}" class="ytick">{4}</text>"#,
            y(v),
            PAD_L + CHART_W,
            PAD_L - 6.0,
            y(v) + 4.0,
            v.round()
        );
    }
    let ticks = n.clamp(1, 8);
    for k in 0..ticks {
        let i = if ticks == 1 {
            0
        } else {
            k * (n - 1) / (ticks - 1)
        };
        if let Some(d) = dates.get(i) {
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" class="xtick">{}</text>"#,
                x(i),
                CHART_H + 30.0,
                HtmlEscape(day(d))
            );
        }
    }
    for (name, class, values) in series {
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline class="line {class}" points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            HtmlEscape(name)
        );
        for (i, &v) in values.iter().enumerate() {
            let _ = writeln!(
                o,
                r#"<circle class="dot {class}" cx="{:.1}" cy="{:.1}" r="3"><title>{}: {v} — {}</title></circle>"#,
                x(i),
                y(v),
                HtmlEscape(name),
                HtmlEscape(&tips[i])
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
td.date{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.alert td{background:#fff8c5}tr.invalid td{background:#ffebe9}\
svg text{font:11px system-ui,sans-serif}.grid{stroke:#eaeef2}.ytick{text-anchor:end;fill:#57606a}.xtick{text-anchor:middle;fill:#57606a}\
.line{fill:none;stroke-width:2}.line.services{stroke:#1f6feb}.line.edges{stroke:#8250df}.line.dependents{stroke:#cf222e}\
.dot.services{fill:#1f6feb}.dot.edges{fill:#8250df}.dot.dependents{fill:#cf222e}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
code{font:12px ui-monospace,monospace}";

impl HistoryReport {
    /// One self-contained page (no script, no external asset): the graph's size over time,
    /// each `--watch` service's dependents over time, and the commits.
    fn html(&self) -> String {
        let dates: Vec<&str> = self.commits.iter().map(|c| c.date.as_str()).collect();
        let tips: Vec<String> = self
            .commits
            .iter()
            .map(|c| format!("{} {} ({})", short(&c.commit), c.summary, day(&c.date)))
            .collect();
        let mut o = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meeseeks — graph history</title><style>",
        );
        o.push_str(CSS);
        o.push_str("</style></head><body>\n<h1>Graph history</h1>\n");
        let _ = writeln!(
            o,
            "<p>{} commit(s) changed the graph{}.</p>",
            self.commits.len(),
            match (self.commits.first(), self.commits.last()) {
                (Some(a), Some(b)) => format!(
                    ", {} to {}; now {} services and {} edges",
                    HtmlEscape(day(&a.date)),
                    HtmlEscape(day(&b.date)),
                    b.services,
                    b.edges
                ),
                _ => String::new(),
            }
        );
        o.push_str("<h2 id=\"size\">Size of the graph</h2>\n<p class=\"legend\"><span style=\"background:#1f6feb\"></span>services<span style=\"background:#8250df\"></span>edges</p>\n");
        o.push_str(&line_chart(
            "services and edges per commit",
            &dates,
            &tips,
            &[
                (
                    "services",
                    "services",
                    self.commits.iter().map(|c| c.services as f64).collect(),
                ),
                (
                    "edges",
                    "edges",
                    self.commits.iter().map(|c| c.edges as f64).collect(),
                ),
            ],
        ));
        for w in &self.watch {
            let _ = writeln!(
                o,
                "<h2 class=\"watched\">Dependents of <code>{}</code></h2>\n<p>Transitive essential dependents plus direct optional ones, as <code>meeseeks diff</code> watches them.</p>",
                HtmlEscape(w)
            );
            let values: Vec<f64> = self
                .commits
                .iter()
                .map(|c| c.dependents.get(w).copied().unwrap_or(0) as f64)
                .collect();
            o.push_str(&line_chart(
                &format!("dependents of {w} per commit"),
                &dates,
                &tips,
                &[(w.as_str(), "dependents", values)],
            ));
        }
        o.push_str("<h2>Commits</h2>\n<table class=\"commits\"><tr><th>date</th><th>commit</th><th>author</th><th>summary</th><th>services</th><th>edges</th><th>changes</th></tr>\n");
        for c in &self.commits {
            let class = if c.error.is_some() {
                " class=\"invalid\""
            } else if !c.new_dependents.is_empty() {
                " class=\"alert\""
            } else {
                ""
            };
            let changes: Vec<String> = c
                .lines()
                .into_iter()
                .map(|(m, l)| format!("{m} {}", HtmlEscape(&l)))
                .collect();
            let _ = writeln!(
                o,
                "<tr{class}><td class=\"date\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                HtmlEscape(day(&c.date)),
                HtmlEscape(short(&c.commit)),
                HtmlEscape(&c.author),
                HtmlEscape(&c.summary),
                c.services,
                c.edges,
                changes.join("<br>")
            );
        }
        o.push_str("</table>\n</body></html>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_ops::fixtures::{model, s, shop};

    fn meta(n: u32) -> CommitMeta {
        CommitMeta {
            commit: format!("{n:040x}"),
            date: format!("2026-11-{:02}T10:00:00Z", n + 1),
            author: "Ada".into(),
            summary: format!("change {n}"),
        }
    }

    #[test]
    fn commits_compared_in_order() {
        let v1 = shop();
        let mut parts = vec![
            s("orders-db", 0, 60, &[], &[]),
            s("orders", 0, 45, &["orders-db"], &[]),
            s("payments", 0, 90, &[], &[]),
            s("checkout", 0, 120, &["orders", "payments"], &["recs"]),
            s("recs", 2, 240, &[], &[]),
            s("web", 1, 180, &["checkout"], &[]),
            s("fraud", 1, 60, &["payments"], &[]),
        ];
        parts[2].0.watch = true;
        let v2 = model(parts);
        let mut h = HistoryReport::new(vec!["orders-db".into()]);
        h.push(meta(1), None, &v1);
        h.push_invalid(
            meta(2),
            Some(&v1),
            "graph.toml:3:1: TOML syntax error".into(),
        );
        h.push(meta(3), Some(&v1), &v2);
        let c = &h.commits;
        assert_eq!(c[0].services_added.len(), 7);
        assert!(c[0].new_dependents.is_empty(), "nothing is new at creation");
        assert_eq!(c[0].dependents["orders-db"], 3);
        assert_eq!(c[1].services, 7);
        assert!(c[1].error.is_some());
        assert_eq!(
            c[1].dependents["orders-db"], 3,
            "the last valid graph still stands"
        );
        assert_eq!(c[2].services_added, ["fraud"]);
        assert_eq!(c[2].services_removed, ["search"]);
        assert_eq!(c[2].changed.len(), 1);
        assert_eq!(change_text(&c[2].changed[0]), "orders: RTO 1h30m → 45m");
        assert_eq!(c[2].new_dependents["payments"], ["fraud"]);
        assert!(h.has_new_dependents());
        // A report of the past: new dependents are reported, not a failure (`diff` in CI is
        // the gate).
        assert_eq!(h.exit_code(), 0);
        let v: serde_json::Value = serde_json::from_str(&h.json()).unwrap();
        assert_eq!(v["schema"], "meeseeks.history/v1");
        for k in [
            "commit",
            "date",
            "author",
            "summary",
            "services",
            "edges",
            "services_added",
            "services_removed",
            "edges_added",
            "edges_removed",
            "new_dependents",
        ] {
            assert!(v["commits"][2].get(k).is_some(), "{k}");
        }
        assert_eq!(v["commits"][2]["edges_removed"][0]["from"], "search");
        insta::assert_snapshot!(h.text());
    }
}
