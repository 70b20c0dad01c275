//! The HTML toolkit shared by the reports: escaping, the time axis, and one SVG Gantt renderer
//! (rows of bars on a time axis, with deadline markers). Times are integer milliseconds from the
//! RTO clock's start, so that a picture is byte-identical from one run to the next.

use std::fmt::Write as _;

use crate::report::fmt::{Precision, fmt_ms};

/// The reports' stylesheet: page, tables, and the classes [`Gantt::svg`] draws with (`tick`,
/// `label`, `grid`, `bar …`, `rto …`).
pub const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.late td{background:#ffebe9}\
.summary th{background:#f6f8fa;width:140px}.scroll{overflow-x:auto;border:1px solid #d0d7de;padding:4px}\
svg text{font:12px system-ui,sans-serif}.tick{fill:#57606a;text-anchor:middle}\
.label{text-anchor:end;fill:#1f2328}.grid{stroke:#eaeef2}\
.bar.ok{fill:#4c9a6a}.bar.crit{fill:#1f6feb}.bar.late{fill:#cf222e}\
.rto{stroke:#8c959f;stroke-width:2;fill:#8c959f}.rto.missed{stroke:#cf222e;fill:#cf222e;stroke-dasharray:3 2}\
.edge{fill:none;stroke:#afb8c1}.edge.crit{stroke:#1f6feb;stroke-width:2}\
.node rect{fill:#f6f8fa;stroke:#8c959f}.node.crit rect{fill:#ddf4ff;stroke:#1f6feb;stroke-width:2}\
.node.late rect{fill:#ffebe9;stroke:#cf222e;stroke-width:2}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A table: a header row, then one row per item with its class (`""` for none), numeric
/// columns right-aligned (class `n`). Cells are escaped; headers are not.
pub fn table<const N: usize>(
    o: &mut String,
    header: &[&str; N],
    numeric: &[bool; N],
    rows: impl Iterator<Item = (&'static str, [String; N])>,
) {
    let class = |k: usize| if numeric[k] { " class=\"n\"" } else { "" };
    o.push_str("<table>\n<tr>");
    for (k, h) in header.iter().enumerate() {
        let _ = write!(o, "<th{}>{h}</th>", class(k));
    }
    o.push_str("</tr>\n");
    for (row_class, row) in rows {
        if row_class.is_empty() {
            o.push_str("<tr>");
        } else {
            let _ = write!(o, "<tr class=\"{row_class}\">");
        }
        for (k, c) in row.iter().enumerate() {
            let _ = write!(o, "<td{}>{}</td>", class(k), esc(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

/// A chart's legend: a colour swatch before each label.
pub fn legend(items: &[(&str, &str)]) -> String {
    let mut o = String::from("<p class=\"legend\">");
    for (colour, label) in items {
        let _ = write!(
            o,
            "<span style=\"background:{colour}\"></span>{}",
            esc(label)
        );
    }
    o.push_str("</p>");
    o
}

/// A picture in a scrolling box, after its legend (none when empty) and `note` (e.g. that it
/// shows only the first services).
pub fn figure(o: &mut String, legend_items: &[(&str, &str)], note: Option<String>, svg: &str) {
    if !legend_items.is_empty() {
        let _ = writeln!(o, "{}", legend(legend_items));
    }
    if let Some(n) = note {
        let _ = writeln!(o, "<p>{}</p>", esc(&n));
    }
    let _ = writeln!(o, "<div class=\"scroll\">\n{svg}</div>");
}

/// `s` cut to `max` characters, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A round tick step giving at most ~10 ticks over `span` ms.
pub fn tick_step(span: u64) -> u64 {
    const STEPS: [u64; 14] = [
        1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
        3_600_000, 7_200_000, 21_600_000, 86_400_000,
    ];
    for s in STEPS {
        if span / s <= 10 {
            return s;
        }
    }
    span.div_ceil(10).max(1)
}

/// The end of a time axis over `span` ms whose rows carry deadlines up to `max_marker`: the
/// span and the deadlines a little beyond it (half the span again); farther deadlines get an
/// arrow at the right edge rather than squashing every bar.
pub fn axis_end(span: u64, max_marker: u64) -> u64 {
    span.max(max_marker.min(span + span / 2)).max(1)
}

/// Where a bar sits in its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The whole row.
    Full,
    /// The upper third (e.g. the planned bar above the actual one).
    Upper,
    /// The lower two thirds.
    Lower,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub start: u64,
    pub end: u64,
    /// CSS class (the page's stylesheet colours it).
    pub class: &'static str,
    /// Tooltip.
    pub title: String,
    pub lane: Lane,
}

/// A vertical mark across the row (an RTO deadline).
#[derive(Debug, Clone)]
pub struct Marker {
    pub at: u64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub bars: Vec<Bar>,
    pub markers: Vec<Marker>,
}

/// A Gantt chart: one row per service on a time axis from 0 to `end` ms. Markers beyond the
/// axis are drawn as an arrow at its right edge.
#[derive(Debug, Clone)]
pub struct Gantt<'a> {
    /// CSS class of the `<svg>`.
    pub class: &'a str,
    pub aria_label: &'a str,
    pub end: u64,
    pub rows: Vec<Row>,
}

pub const LABEL_W: f64 = 200.0;
pub const CHART_W: f64 = 820.0;
pub const ROW_H: f64 = 20.0;
/// Longest label drawn (in characters).
const LABEL_CHARS: usize = 28;

impl Gantt<'_> {
    pub fn svg(&self) -> String {
        let end = self.end.max(1);
        let x = |ms: u64| LABEL_W + (ms.min(end) as f64) * CHART_W / end as f64;
        let top = 24.0;
        let h = top + ROW_H * self.rows.len() as f64 + 10.0;
        let w = LABEL_W + CHART_W + 20.0;
        let p = Precision::for_span(end);
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="{}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
            self.class,
            esc(self.aria_label)
        );
        let step = tick_step(end);
        let mut t = 0;
        while t <= end {
            let _ = writeln!(
                o,
                r#"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1:.1}" class="grid"/><text x="{0:.1}" y="16" class="tick">{2}</text>"#,
                x(t),
                h - 10.0,
                fmt_ms(t as i64, p)
            );
            t += step;
        }
        for (i, row) in self.rows.iter().enumerate() {
            let y = top + ROW_H * i as f64;
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" class="label">{}</text>"#,
                LABEL_W - 6.0,
                y + 14.0,
                esc(&truncate(&row.label, LABEL_CHARS))
            );
            for b in &row.bars {
                let (dy, bh) = match b.lane {
                    Lane::Full => (4.0, ROW_H - 8.0),
                    Lane::Upper => (2.0, 5.0),
                    Lane::Lower => (8.0, ROW_H - 10.0),
                };
                let bw = (x(b.end) - x(b.start)).max(1.5);
                let _ = writeln!(
                    o,
                    r#"<rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="{bh:.1}" class="{}"><title>{}</title></rect>"#,
                    x(b.start),
                    y + dy,
                    b.class,
                    esc(&b.title)
                );
            }
            for m in &row.markers {
                if m.at <= end {
                    let _ = writeln!(
                        o,
                        r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" class="{3}"><title>{4}</title></line>"#,
                        x(m.at),
                        y + 1.0,
                        y + ROW_H - 1.0,
                        m.class,
                        esc(&m.title)
                    );
                } else {
                    let _ = writeln!(
                        o,
                        r#"<path d="M{:.1} {:.1} l6 6 l-6 6 z" class="{}"><title>{} (beyond the axis)</title></path>"#,
                        x(end) + 2.0,
                        y + 4.0,
                        m.class,
                        esc(&m.title)
                    );
                }
            }
        }
        o.push_str("</svg>\n");
        o
    }
}
