//! One self-contained HTML file: inline CSS and SVG Gantt, no external assets.

use std::fmt::Write;

use super::*;

pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn status_color(s: &ServiceState) -> &'static str {
    match s.status {
        ServiceStatus::Recovered if s.rto_met() == Some(false) => "#e8a33d",
        ServiceStatus::Recovered => "#3b9b4b",
        ServiceStatus::Failed | ServiceStatus::Blocked => "#d04545",
        ServiceStatus::Skipped => "#9a9a9a",
        _ => "#4a7fd0",
    }
}

/// A round tick interval giving at most 8 ticks over `max_t` seconds.
fn nice_step(max_t: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 43200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| max_t / s <= 8.0)
        .unwrap_or_else(|| (max_t / 8.0 / 86400.0).ceil() * 86400.0)
}

/// Inline SVG Gantt: a grey planned bar above the actual bar, a red tick at the RTO.
pub fn svg_gantt(st: &RunState) -> String {
    let label_w = 170.0;
    let chart_w = 720.0;
    let row_h = 26.0;
    let top = 24.0;
    let mut max_t: f64 = 1.0;
    for s in &st.services {
        if let Some(p) = &s.planned {
            max_t = max_t.max(p.ready_s.unwrap_or(0.0));
        }
        if let Some((_, b)) = actual_span(st, s) {
            max_t = max_t.max(b);
        }
        max_t = max_t.max(s.rto_s.unwrap_or(0.0));
    }
    let max_t = max_t * 1.05;
    let x = |t: f64| label_w + (t.max(0.0) / max_t) * chart_w;
    let h = top + row_h * st.services.len() as f64 + 10.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12" role="img" aria-label="planned vs actual recovery timeline">"#,
        w = label_w + chart_w + 20.0
    );
    let step = nice_step(max_t);
    let mut k = 0;
    while step * k as f64 <= max_t {
        let t = step * k as f64;
        k += 1;
        let xx = x(t);
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{h:.1}" stroke="#e4e4e4"/><text x="{xx:.1}" y="14" text-anchor="middle" fill="#666">{}</text>"##,
            esc(&fmt_dur(t))
        );
    }
    for (i, s) in st.services.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            o,
            r##"<text x="4" y="{:.1}" fill="#222">{}</text>"##,
            y + 16.0,
            esc(&s.name)
        );
        if let Some(p) = &s.planned
            && let (Some(a), Some(b)) = (p.start_s, p.ready_s)
        {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="8" fill="#cfd6df"><title>planned {} – {}</title></rect>"##,
                x(a),
                y + 3.0,
                (x(b) - x(a)).max(1.0),
                esc(&fmt_dur(a)),
                esc(&fmt_dur(b))
            );
        }
        if let Some((a, b)) = actual_span(st, s) {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="11" fill="{}"><title>{} {} – {}</title></rect>"##,
                x(a),
                y + 12.0,
                (x(b) - x(a)).max(1.0),
                status_color(s),
                esc(s.status.as_str()),
                esc(&fmt_dur(a)),
                esc(&fmt_dur(b))
            );
        }
        if let Some(rto) = s.rto_s {
            let _ = writeln!(
                o,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#d04545" stroke-width="2"><title>RTO {}</title></line>"##,
                y + 1.0,
                y + 25.0,
                esc(&fmt_dur(rto)),
                xx = x(rto)
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

pub fn html(st: &RunState) -> String {
    let mut o = String::new();
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>meeseeks run {id}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f3f3f3; }}
.recovered {{ color: #2d7a3a; }} .failed, .blocked, .breached {{ color: #b52f2f; font-weight: bold; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
.legend span {{ display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Run {id} ({mode})</h1>
<p><b>State:</b> {state}<br>{clock}<br>{summary}</p>
"#,
        id = esc(&st.run_id),
        state = esc(st.state.as_str()),
        clock = esc(&clock_line(st)),
        summary = esc(&summary_line(st)),
    );
    o.push_str("<table><thead><tr>");
    for h in SERVICE_HEADER {
        let _ = write!(o, "<th>{}</th>", esc(&h.to_lowercase()));
    }
    o.push_str("</tr></thead><tbody>\n");
    for (s, row) in st.services.iter().zip(service_rows(st)) {
        o.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let class = match i {
                1 => s.status.as_str(),
                6 if s.rto_met() == Some(false) => "breached",
                _ => "",
            };
            if class.is_empty() {
                let _ = write!(o, "<td>{}</td>", esc(c));
            } else {
                let _ = write!(o, r#"<td class="{class}">{}</td>"#, esc(c));
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n");
    let rpo = rpo_rows(st);
    if !rpo.is_empty() {
        let _ = write!(o, "<h2>{}</h2>\n<table><thead><tr>", esc(RPO_TITLE));
        for h in RPO_HEADER {
            let _ = write!(o, "<th>{}</th>", esc(&h.to_lowercase()));
        }
        o.push_str("</tr></thead><tbody>\n");
        for r in rpo {
            o.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                if i == 5 && c.starts_with("EXCEEDED") {
                    let _ = write!(o, r#"<td class="breached">{}</td>"#, esc(c));
                } else {
                    let _ = write!(o, "<td>{}</td>", esc(c));
                }
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table>\n");
    }
    o.push_str("<h2>Timeline</h2>\n");
    o.push_str(r##"<p class="legend"><span style="background:#cfd6df"></span>planned<span style="background:#3b9b4b"></span>recovered<span style="background:#e8a33d"></span>recovered late<span style="background:#d04545"></span>failed<span style="background:#4a7fd0"></span>in progress &nbsp;<b style="color:#d04545">|</b> RTO</p>"##);
    o.push('\n');
    o.push_str(&svg_gantt(st));
    let f = failures(st);
    if !f.is_empty() {
        o.push_str("<h2>Failures</h2>\n");
        for (svc, title, output) in f {
            let _ = writeln!(o, "<h3>{}</h3><p>{}</p>", esc(&svc), esc(&title));
            let lines = last_lines(&output, OUTPUT_LINES);
            if !lines.is_empty() {
                let _ = writeln!(o, "<pre>{}</pre>", esc(&printable(&lines.join("\n"))));
            }
        }
    }
    if !st.approvals.is_empty() {
        o.push_str("<h2>Approvals</h2>\n<table><thead><tr><th>service</th><th>step</th><th>by</th><th>at</th></tr></thead><tbody>\n");
        for a in &st.approvals {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.service),
                esc(&a.step),
                esc(&a.by),
                esc(&fmt_ts(a.at))
            );
        }
        o.push_str("</tbody></table>\n");
    }
    if !st.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &st.warnings {
            let _ = writeln!(o, "<li>{}</li>", esc(w));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body></html>\n");
    o
}
