//! Graph intelligence (SPEC §6): export, deps, impact, audit, diff and verify.
//!
//! Every analysis here is a pure function of one or two `&Model`s (plus parsed input for
//! `verify`): no I/O, no async, so the CLI only loads files, calls one function and prints the
//! report it gets back. Every algorithm is linear in V+E (or output-sensitive where the output
//! itself can be larger; each module says so), so they stay usable on 100 000-service graphs.
//!
//! Reports render themselves as text (aligned, no colour), JSON (`"schema":
//! "meeseeks.<kind>/v1"`, stable, sorted) and, where it is useful in a PR comment, Markdown.

pub mod audit;
pub mod deps;
pub mod diff;
pub mod draw;
pub mod export;
pub mod history;
pub mod impact;
pub mod import;
pub mod verify;

use std::time::Duration;

use crate::model::{Model, SvcId, fmt_duration};

/// Output format of a graph report (`--format`). Every report has text, JSON and Markdown;
/// the ones that draw (`diff`, `history`) have more. Each command's clap `ValueEnum` lists
/// exactly the formats it accepts (see `cli::graph_ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
    Mermaid,
    Dot,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Text => "text",
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Mermaid => "mermaid",
            ReportFormat::Dot => "dot",
        }
    }
}

/// A report of a graph operation (`deps`, `impact`, `audit`, `diff`, `verify`, `history`):
/// one way to render it in every format and to turn it into an exit code, so that the CLI
/// handles every report alike.
pub trait Render: serde::Serialize {
    /// Aligned, uncoloured text for a terminal.
    fn text(&self) -> String;
    /// For a pull-request comment or a wiki page.
    fn markdown(&self) -> String;
    /// `"schema": "meeseeks.<kind>/v1"`, every list sorted.
    fn json(&self) -> String {
        to_json(self)
    }
    /// The drawing formats (html, mermaid, dot), for the reports that have them.
    fn drawing(&self, _format: ReportFormat) -> Option<String> {
        None
    }
    /// The command's exit code for this outcome (SPEC §3): 0 unless the report says so.
    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
    fn render(&self, format: ReportFormat) -> crate::Result<String> {
        match format {
            ReportFormat::Text => Ok(self.text()),
            ReportFormat::Json => Ok(self.json()),
            ReportFormat::Markdown => Ok(self.markdown()),
            other => self.drawing(other).ok_or_else(|| {
                crate::Error::Usage(format!("this report has no `{}` format", other.as_str()))
            }),
        }
    }
}

/// Seconds as the float used by every JSON shape (SPEC §8).
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(crate) fn dur(d: Duration) -> String {
    fmt_duration(d)
}

/// Seconds (as float) rendered like a TOML duration.
pub(crate) fn dur_s(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return format!("{s}s");
    }
    fmt_duration(Duration::from_secs_f64(s))
}

pub(crate) fn chain_names(ids: &[SvcId], model: &Model) -> Vec<String> {
    ids.iter().map(|&i| model.name(i).to_string()).collect()
}

/// Aligned columns, two spaces apart; the last column is not padded.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(c);
                let pad = width[i] - c.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Escapes a Markdown table cell.
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Small hand-built graphs shared by the tests of every graph operation.

    use std::path::PathBuf;
    use std::time::Duration;

    use crate::model::{Check, CheckKind, Defaults, Model, Playbook, Service, Step, StepKind};

    pub type Part = (Service, Vec<String>, Vec<String>);

    /// A seeded xorshift generator for random test graphs: `rnd(k)` is in `0..k`.
    pub fn rng(mut x: u64) -> impl FnMut(u64) -> u64 {
        move |k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % k
        }
    }

    pub fn s(name: &str, tier: u32, rto_min: u64, deps: &[&str], soft: &[&str]) -> Part {
        (
            Service::new(name, tier, Duration::from_secs(rto_min * 60)),
            deps.iter().map(|s| s.to_string()).collect(),
            soft.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// A playbook of one step taking `minutes` and `checks` health checks.
    pub fn playbook(minutes: u64, checks: usize) -> Playbook {
        Playbook {
            file: PathBuf::from("playbooks/x.toml"),
            steps: vec![Step {
                name: "recover".into(),
                kind: StepKind::Run("true".into()),
                timeout: None,
                retries: 0,
                retry_delay: Step::DEFAULT_RETRY_DELAY,
                estimate: Some(Duration::from_secs(minutes * 60)),
                only: None,
                optional: false,
                idempotent: true,
                preflight: true,
                line: 1,
                env: Vec::new(),
            }],
            checks: (0..checks)
                .map(|i| Check {
                    name: format!("check {i}"),
                    kind: CheckKind::Tcp("127.0.0.1:1".into()),
                    interval: Check::DEFAULT_INTERVAL,
                    timeout: Check::DEFAULT_TIMEOUT,
                    healthy_after: 1,
                    preflight: true,
                    line: 1,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// `part` with a one-step playbook of `minutes` and one health check.
    pub fn pb(mut part: Part, minutes: u64) -> Part {
        part.0.playbook = Some(Box::new(playbook(minutes, 1)));
        part
    }

    pub fn model(parts: Vec<Part>) -> Model {
        Model::from_parts(PathBuf::from("."), Defaults::default(), parts)
    }

    /// The shop: web -> checkout -> {orders -> orders-db, payments}; checkout ~> recs;
    /// search ~> recs.
    pub fn shop() -> Model {
        let mut parts = vec![
            s("orders-db", 0, 60, &[], &[]),
            s("orders", 0, 90, &["orders-db"], &[]),
            s("payments", 0, 90, &[], &[]),
            s("checkout", 0, 120, &["orders", "payments"], &["recs"]),
            s("recs", 2, 240, &[], &[]),
            s("web", 1, 180, &["checkout"], &[]),
            s("search", 2, 240, &[], &["recs"]),
        ];
        parts[0].0.stateful = true;
        parts[3].0.watch = true;
        model(parts)
    }
}
