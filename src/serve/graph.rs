//! `/graph` and `/plan`: the DR directory's graph and plan, read afresh at each request (an
//! operator may be fixing `graph.toml` during the incident).
//!
//! The graph page draws services in columns by wave (essential edges solid, optional dashed).
//! Each service is a link to `/graph?service=NAME`, which renders its blast radius
//! (`impact`) and what it needs (`deps`) and highlights both in the drawing: it works without
//! JavaScript. With JavaScript the same panel comes from `/api/graph/NAME` without a reload.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use super::view::{self, Script};
use crate::graph_ops::{deps, impact};
use crate::load::LoadOptions;
use crate::model::{Mode, Model};
use crate::plan::{PlanOptions, build_plan};
use crate::report::fmt::fmt_secs_fit as fmt_dur;
use crate::report::html::esc;

/// Graphs larger than this are listed, not drawn (a drawing of thousands of boxes helps no
/// one; the list and the panel still work).
pub const MAX_DRAWN: usize = 400;

/// Loads the DR directory; diagnostics rendered without colour on error.
pub fn load(dir: &Path, graph_only: bool) -> crate::Result<Model> {
    let loaded = crate::load::load(
        dir,
        &LoadOptions {
            graph_only,
            ..Default::default()
        },
    );
    loaded.into_result(false).map(|(m, _)| m)
}

/// `/plan`: the HTML plan report (`meeseeks plan --format html`), with the site's bar on top.
pub fn plan_page(dir: &Path, eager: bool, drill: bool) -> Result<String, String> {
    let model = load(dir, false).map_err(|e| e.to_string())?;
    let plan = build_plan(
        &model,
        &PlanOptions {
            eager,
            mode: if drill { Mode::Drill } else { Mode::Failover },
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let html = crate::report::plan::render_html(&plan, &model);
    let bar = format!(
        "<style>{}</style>{}<p style=\"margin:4px 2em;font:13px sans-serif\">Schedule: \
         <a href=\"/plan\">waves</a> · <a href=\"/plan?eager=1\">eager</a> · \
         <a href=\"/plan?drill=1\">drill</a></p>",
        NAV_STYLE,
        view::nav("Plan")
    );
    Ok(match html.find("<body>") {
        Some(i) => format!("{}{bar}{}", &html[..i + 6], &html[i + 6..]),
        None => format!("{bar}{html}"),
    })
}

/// Enough style for the bar injected into the plan report (which has its own styles).
const NAV_STYLE: &str = "nav.top{display:flex;gap:1.2em;align-items:center;padding:8px 2em;\
background:#1f2937;color:#fff;font:14px sans-serif}nav.top a{color:#cbd5e1;text-decoration:none}\
nav.top a.on{color:#fff;font-weight:bold}";

/// What a click on `service` shows: its panel, and the names to highlight.
pub struct Detail {
    pub html: String,
    pub down: Vec<String>,
    pub degraded: Vec<String>,
    pub needs: Vec<String>,
    pub optional: Vec<String>,
}

pub fn detail(model: &Model, service: &str) -> crate::Result<Detail> {
    let imp = impact::impact(model, &[service])?;
    let dep = deps::deps(model, service)?;
    let svc = &model.services[model.lookup(service)?];
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<h2>{}</h2><p>tier {} · RTO {}{}{}</p>",
        esc(service),
        svc.tier,
        esc(&fmt_dur(svc.rto.as_secs_f64())),
        svc.owner
            .as_ref()
            .map(|o| format!(" · owner {}", esc(o)))
            .unwrap_or_default(),
        if svc.stateful { " · stateful" } else { "" }
    );
    let _ = writeln!(
        h,
        "<h3>If it goes down</h3><p><b class=\"down\">{}</b> go down, <b class=\"degraded\">{}</b> degrade{}</p>",
        imp.down.len(),
        imp.degraded.len(),
        imp.tightest_rto
            .as_ref()
            .map(|t| format!(
                "; tightest RTO affected: {} ({})",
                esc(&t.service),
                esc(&fmt_dur(t.rto_s))
            ))
            .unwrap_or_default()
    );
    if !imp.by_tier.is_empty() {
        h.push_str("<table><tr><th>tier</th><th>down</th><th>degraded</th></tr>");
        for (tier, t) in &imp.by_tier {
            if t.down.is_empty() && t.degraded.is_empty() {
                continue;
            }
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(tier),
                links(&t.down),
                links(&t.degraded)
            );
        }
        h.push_str("</table>");
    }
    let _ = writeln!(
        h,
        "<h3>What it needs</h3><p><b class=\"needs\">{}</b> essential, <b>{}</b> optional, transitively</p>",
        dep.essential.len(),
        dep.optional.len()
    );
    if !dep.essential.is_empty() || !dep.optional.is_empty() {
        h.push_str(
            "<table><tr><th>service</th><th>kind</th><th>tier</th><th>RTO</th><th>path</th></tr>",
        );
        for (kind, list) in [("essential", &dep.essential), ("optional", &dep.optional)] {
            for n in list.iter() {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    links(std::slice::from_ref(&n.name)),
                    n.tier,
                    esc(&fmt_dur(n.rto_s)),
                    esc(&deps::path_text(n))
                );
            }
        }
        h.push_str("</table>");
    }
    Ok(Detail {
        html: h,
        down: imp.down,
        degraded: imp.degraded,
        needs: dep.essential.into_iter().map(|n| n.name).collect(),
        optional: dep.optional.into_iter().map(|n| n.name).collect(),
    })
}

fn links(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "<a href=\"/graph?service={}\" data-svc=\"{}\">{}</a>",
                esc(&query_escape(n)),
                esc(n),
                esc(n)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Service names are `[A-Za-z0-9._-]` (the loader refuses others), but a link must not trust
/// that.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Detail {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "html": self.html,
            "down": self.down,
            "degraded": self.degraded,
            "needs": self.needs,
            "optional": self.optional,
        })
    }
}

/// The graph page, with `selected`'s panel when one is given.
pub fn graph_page(model: &Model, selected: Option<&str>) -> crate::Result<String> {
    let plan = build_plan(model, &PlanOptions::default())?;
    let n = model.services.len();
    let mut wave = vec![0u32; n];
    for p in &plan.services {
        wave[p.id] = p.wave;
    }
    let detail = match selected {
        Some(s) if model.id(s).is_some() => Some(detail(model, s)?),
        Some(s) => {
            return Err(crate::Error::UnknownService {
                name: s.to_string(),
                suggestion: crate::suggest::closest(
                    s,
                    model.services.iter().map(|x| x.name.as_str()),
                )
                .map(str::to_string),
            });
        }
        None => None,
    };
    let mut class = vec![""; n];
    if let Some(d) = &detail {
        for (list, c) in [
            (&d.optional, "h-optional"),
            (&d.needs, "h-needs"),
            (&d.degraded, "h-degraded"),
            (&d.down, "h-down"),
        ] {
            for name in list.iter() {
                if let Some(i) = model.id(name) {
                    class[i] = c;
                }
            }
        }
        if let Some(i) = selected.and_then(|s| model.id(s)) {
            class[i] = "h-sel";
        }
    }
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Graph</h1><p class=\"sub\"><code>{}</code>: {} services, {} waves. Click a service \
         for its blast radius and what it needs.</p>\
         <p class=\"legend\"><i class=\"g-sel\"></i> selected <i class=\"g-down\"></i> goes down \
         <i class=\"g-degraded\"></i> degrades <i class=\"g-needs\"></i> needs (essential) \
         <i class=\"g-optional\"></i> needs (optional) — solid edge: essential, dashed: optional</p>",
        esc(&model.dir.display().to_string()),
        n,
        plan.waves
    );
    b.push_str("<div class=\"graph\"><div class=\"draw\">");
    if n <= MAX_DRAWN {
        b.push_str(&svg(model, &wave, &class));
    } else {
        let _ = writeln!(
            b,
            "<p>{n} services: too many to draw ({MAX_DRAWN} at most); pick one from the list.</p>"
        );
    }
    b.push_str("</div><aside id=\"detail\">");
    match &detail {
        Some(d) => b.push_str(&d.html),
        None => b.push_str("<p>Select a service.</p>"),
    }
    b.push_str("</aside></div>\n<h2>Services by tier</h2><div class=\"tiers\">");
    let mut by_tier: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, s) in model.services.iter().enumerate() {
        by_tier.entry(s.tier).or_default().push(i);
    }
    for (tier, mut ids) in by_tier {
        ids.sort_by(|a, b| model.services[*a].name.cmp(&model.services[*b].name));
        let _ = write!(b, "<p><b>tier {tier}</b> ");
        for id in ids {
            let name = &model.services[id].name;
            let _ = write!(
                b,
                "<a href=\"/graph?service={}\" data-svc=\"{}\" class=\"{}\">{}</a> ",
                esc(&query_escape(name)),
                esc(name),
                class[id],
                esc(name)
            );
        }
        b.push_str("</p>");
    }
    b.push_str("</div>\n");
    Ok(view::page(
        "Graph",
        "Graph",
        " data-page=\"graph\"",
        &b,
        Script::Graph,
    ))
}

/// Columns by wave, rows by name within a wave.
fn svg(model: &Model, wave: &[u32], class: &[&str]) -> String {
    let (col_w, row_h, box_w, box_h, pad) = (200.0, 30.0, 160.0, 22.0, 12.0);
    let mut cols: Vec<Vec<usize>> = Vec::new();
    for (id, &w) in wave.iter().enumerate() {
        let w = w as usize;
        if cols.len() <= w {
            cols.resize(w + 1, Vec::new());
        }
        cols[w].push(id);
    }
    let mut pos = vec![(0.0f64, 0.0f64); model.services.len()];
    for (c, ids) in cols.iter_mut().enumerate() {
        ids.sort_by(|a, b| model.services[*a].name.cmp(&model.services[*b].name));
        for (r, &id) in ids.iter().enumerate() {
            pos[id] = (pad + c as f64 * col_w, pad + 18.0 + r as f64 * row_h);
        }
    }
    let rows = cols.iter().map(Vec::len).max().unwrap_or(0);
    let (w, h) = (
        pad * 2.0 + cols.len() as f64 * col_w,
        pad * 2.0 + 18.0 + rows as f64 * row_h,
    );
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"service graph by wave\">"
    );
    for c in 0..cols.len() {
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" fill=\"#666\">wave {c}</text>",
            pad + c as f64 * col_w,
            pad + 6.0
        );
    }
    for (id, s) in model.services.iter().enumerate() {
        let (x2, y2) = pos[id];
        for (deps, dash) in [
            (&s.depends_on, ""),
            (&s.soft_depends_on, " stroke-dasharray=\"4 3\""),
        ] {
            for &d in deps.iter() {
                let (x1, y1) = pos[d];
                let _ = write!(
                    o,
                    "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#9aa5b1\"{dash}/>",
                    x1 + box_w,
                    y1 + box_h / 2.0,
                    x2,
                    y2 + box_h / 2.0
                );
            }
        }
    }
    for (id, s) in model.services.iter().enumerate() {
        let (x, y) = pos[id];
        let _ = write!(
            o,
            "<a href=\"/graph?service={q}\" data-svc=\"{n}\" class=\"{c}\"><rect x=\"{x}\" y=\"{y}\" width=\"{box_w}\" \
             height=\"{box_h}\" rx=\"4\"/><text x=\"{tx}\" y=\"{ty}\">{n} <tspan fill=\"#666\">t{t}</tspan></text>\
             <title>{n}: tier {t}, RTO {rto}</title></a>",
            q = esc(&query_escape(&s.name)),
            n = esc(&s.name),
            c = class[id],
            tx = x + 6.0,
            ty = y + 15.0,
            t = s.tier,
            rto = esc(&fmt_dur(s.rto.as_secs_f64())),
        );
    }
    o.push_str("</svg>");
    o
}
