//! Renderers of a [`Plan`]: text (terminal), json (`meeseeks.plan/v1`), markdown (audit file
//! with a Mermaid gantt) and html (one self-contained file with inline SVG).
//!
//! All of them are pure functions of the plan and the model, and print times from integer
//! milliseconds, so the same input always gives byte-identical output. Pictures (Mermaid, SVG)
//! are capped in size so that a 100 000-service plan stays readable; tables are complete.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use serde::Serialize;

use crate::model::{Model, SvcId, fmt_duration};
use crate::plan::Ms;
use crate::plan::{Plan, PlannedService};
use crate::util::PARALLEL_MIN_SCOPE;

/// Most services drawn in a Mermaid gantt or an SVG picture.
pub const MAX_DRAWN: usize = 300;
/// Most breaches listed in the text summary (json/markdown/html list them all).
const MAX_TEXT_BREACHES: usize = 20;

fn secs(ms: Ms) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
fn secs_i(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Human duration from milliseconds: `1h2m3s`, `45s`, `7.5s`, `-4m`, `0s`.
pub fn fmt_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let mut rest = ms.unsigned_abs();
    let h = rest / 3_600_000;
    rest %= 3_600_000;
    let m = rest / 60_000;
    rest %= 60_000;
    let s = rest / 1000;
    let frac = rest % 1000;
    let mut out = String::from(sign);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if frac > 0 {
        let f = format!("{frac:03}");
        let _ = write!(out, "{s}.{}s", f.trim_end_matches('0'));
    } else if s > 0 || (h == 0 && m == 0) {
        let _ = write!(out, "{s}s");
    }
    out
}

fn fmt_u(ms: Ms) -> String {
    fmt_ms(ms as i64)
}

fn chain_names(model: &Model, chain: &[SvcId], sep: &str) -> String {
    chain
        .iter()
        .map(|&c| model.name(c))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Services grouped by wave, each group in planned start order.
fn by_wave(plan: &Plan) -> Vec<Vec<&PlannedService>> {
    let mut groups: Vec<Vec<&PlannedService>> = vec![Vec::new(); plan.waves as usize];
    for p in &plan.services {
        groups[p.wave as usize].push(p);
    }
    groups
}

fn critical_set(plan: &Plan, n: usize) -> Vec<bool> {
    let mut on = vec![false; n];
    for &c in &plan.critical_path {
        on[c] = true;
    }
    on
}

fn breached_set(plan: &Plan, n: usize) -> Vec<bool> {
    let mut on = vec![false; n];
    for b in &plan.breaches {
        on[b.id] = true;
    }
    on
}

fn estimates_line(plan: &Plan, model: &Model) -> String {
    let (mut pb, mut def, mut hist) = (0, 0, 0);
    for p in &plan.services {
        match p.estimate.source {
            crate::plan::EstimateSource::Playbook => pb += 1,
            crate::plan::EstimateSource::Default => def += 1,
            crate::plan::EstimateSource::History => hist += 1,
        }
    }
    let mut parts = Vec::new();
    if hist > 0 {
        parts.push(format!("{hist} from history (p90 of finished runs)"));
    }
    if pb > 0 {
        parts.push(format!("{pb} from playbooks"));
    }
    if def > 0 {
        parts.push(format!(
            "{def} defaults.estimate {} (no playbook)",
            fmt_duration(model.defaults.estimate)
        ));
    }
    parts.join(", ")
}

/// How a playbook estimate is made (SPEC §4), printed under the tables.
const ESTIMATE_RULE: &str = "A playbook estimate is the sum of its steps (each step's `estimate`, else its `wait`, \
else its timeout/4, else 30s) plus its checks (interval × (healthy_after − 1), the slowest check).";

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn scope_line(plan: &Plan) -> String {
    if plan.services.len() == plan.total_services {
        format!("{} services", plan.services.len())
    } else {
        format!(
            "{} of {} services (scope)",
            plan.services.len(),
            plan.total_services
        )
    }
}

fn makespan_line(plan: &Plan) -> String {
    let mut s = format!(
        "waves {} · eager {}",
        fmt_u(plan.makespan_waves),
        fmt_u(plan.makespan_eager)
    );
    if plan.eager_fallback {
        s.push_str(" (eager keeps the wave barriers: releasing early would be slower here)");
    }
    s
}

fn rto_line(plan: &Plan) -> String {
    let mut s = format!(
        "{} met · {} breached (predicted)",
        plan.met(),
        plan.breaches.len()
    );
    if !plan.unachievable.is_empty() {
        let _ = write!(
            s,
            " · {} unachievable even with unlimited parallelism",
            plan.unachievable.len()
        );
    }
    s
}

// ------------------------------------------------------------------------------------------
// text

/// The terminal report: a summary readable in ten seconds, then the per-wave table.
pub fn render_text(plan: &Plan, model: &Model) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Recovery plan: {}, {} waves, {} mode, parallel {}, {} schedule",
        scope_line(plan),
        plan.waves,
        plan.mode,
        plan.parallel,
        plan.strategy.as_str()
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "  makespan       {}", makespan_line(plan));
    let _ = writeln!(o, "  RTOs           {}", rto_line(plan));
    let _ = writeln!(
        o,
        "  critical path  {}: {}",
        fmt_u(plan.critical_path_len),
        chain_names(model, &plan.critical_path, " -> ")
    );
    let _ = writeln!(o, "  estimates      {}", estimates_line(plan, model));

    if !plan.breaches.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Predicted RTO breaches (worst first):");
        let w = plan
            .breaches
            .iter()
            .take(MAX_TEXT_BREACHES)
            .map(|b| model.name(b.id).len())
            .max()
            .unwrap_or(0);
        for b in plan.breaches.iter().take(MAX_TEXT_BREACHES) {
            let mut why = String::new();
            if b.unachievable {
                why.push_str("; the chain alone exceeds the RTO");
            } else if b.queued > 0 {
                let _ = write!(why, "; {} of waiting for slots/waves", fmt_u(b.queued));
            }
            let _ = writeln!(
                o,
                "  {:<w$}  late by {:<8}  chain: {}{}",
                model.name(b.id),
                fmt_u(b.by),
                chain_names(model, &b.chain, " -> "),
                why,
            );
        }
        if plan.breaches.len() > MAX_TEXT_BREACHES {
            let _ = writeln!(
                o,
                "  ... and {} more (see --format json)",
                plan.breaches.len() - MAX_TEXT_BREACHES
            );
        }
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "RTO unachievable even with unlimited parallelism ({}):",
            plan.unachievable.len()
        );
        for u in plan.unachievable.iter().take(MAX_TEXT_BREACHES) {
            let _ = writeln!(
                o,
                "  {}  needs {}, RTO {}: {}",
                model.name(u.id),
                fmt_u(u.earliest_ready),
                fmt_u(u.rto),
                chain_names(model, &u.chain, " -> ")
            );
        }
        if plan.unachievable.len() > MAX_TEXT_BREACHES {
            let _ = writeln!(
                o,
                "  ... and {} more (see --format json)",
                plan.unachievable.len() - MAX_TEXT_BREACHES
            );
        }
    }

    // The table: all columns aligned across waves.
    let header = [
        "SERVICE", "TIER", "START", "READY", "RTO", "SLACK", "ESTIMATE", "SOURCE",
    ];
    let groups = by_wave(plan);
    let rows: Vec<Vec<[String; 8]>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|p| {
                    let s = &model.services[p.id];
                    [
                        s.name.clone(),
                        s.tier.to_string(),
                        fmt_u(p.start),
                        fmt_u(p.ready),
                        fmt_u(p.rto),
                        if p.slack < 0 {
                            format!("{} BREACH", fmt_ms(p.slack))
                        } else {
                            fmt_ms(p.slack)
                        },
                        fmt_u(p.dur),
                        p.estimate.source.as_str().to_string(),
                    ]
                })
                .collect()
        })
        .collect();
    let mut width = header.map(str::len);
    for r in rows.iter().flatten() {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |o: &mut String, cells: &[&str]| {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            // Numbers right-aligned, names left-aligned.
            let right = (1..=6).contains(&i);
            let pad = width[i] - c.chars().count();
            if right {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.extend(std::iter::repeat_n(' ', pad));
            }
            l.push_str("  ");
        }
        let _ = writeln!(o, "{}", l.trim_end());
    };
    for (k, (g, r)) in groups.iter().zip(rows.iter()).enumerate() {
        let first = g.iter().map(|p| p.start).min().unwrap_or(0);
        let last = g.iter().map(|p| p.ready).max().unwrap_or(0);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Wave {k} ({}, {} -> {})",
            plural(g.len(), "service", "services"),
            fmt_u(first),
            fmt_u(last)
        );
        line(&mut o, &header);
        for row in r {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut o, &cells);
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{ESTIMATE_RULE}");
    o
}

// ------------------------------------------------------------------------------------------
// json

// The per-service line as serde types: the reference that `write_service_line` is tested
// against (and the schema, readably).
#[cfg(test)]
#[derive(Serialize)]
struct JsonStep<'a> {
    name: &'a str,
    estimate_s: f64,
    rule: &'static str,
}

#[cfg(test)]
#[derive(Serialize)]
struct JsonService<'a> {
    name: &'a str,
    tier: u32,
    wave: u32,
    depends_on: Names<'a>,
    start_s: f64,
    ready_s: f64,
    rto_s: f64,
    slack_s: f64,
    estimate_s: f64,
    estimate_source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    estimate_steps: Vec<JsonStep<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate_checks_s: Option<f64>,
    modified_deadline_s: f64,
    earliest_ready_s: f64,
    queued_s: f64,
}

#[derive(Serialize)]
struct JsonBreach<'a> {
    service: &'a str,
    by_s: f64,
    chain: Vec<&'a str>,
    queued_s: f64,
    unachievable: bool,
}

#[derive(Serialize)]
struct JsonUnachievable<'a> {
    service: &'a str,
    earliest_ready_s: f64,
    rto_s: f64,
    chain: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema: &'static str,
    mode: &'static str,
    run_mode: &'static str,
    parallel: usize,
    estimates: &'static str,
    services_in_scope: usize,
    services_total: usize,
    waves: u32,
    makespan_s: f64,
    makespan_waves_s: f64,
    makespan_eager_s: f64,
    eager_fallback: bool,
    critical_path: Vec<&'a str>,
    critical_path_s: f64,
    rto_met: usize,
    rto_breached: usize,
}

fn names<'a>(model: &'a Model, ids: &[SvcId]) -> Vec<&'a str> {
    ids.iter().map(|&i| model.name(i)).collect()
}

/// Service names serialized straight from ids (no intermediate Vec per service).
#[cfg(test)]
struct Names<'a> {
    model: &'a Model,
    ids: &'a [SvcId],
}

#[cfg(test)]
impl Serialize for Names<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ids.iter().map(|&i| self.model.name(i)))
    }
}

/// Appends `"key": [` then one compact JSON object per line, then `]`.
fn json_array<T: Serialize>(out: &mut Vec<u8>, key: &str, items: impl Iterator<Item = T>) {
    out.extend_from_slice(format!(",\n  \"{key}\": [").as_bytes());
    let mut first = true;
    for it in items {
        out.extend_from_slice(if first { b"\n    " } else { b",\n    " });
        first = false;
        // Serializing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &it);
    }
    out.extend_from_slice(if first { b"]" } else { b"\n  ]" });
}

/// The serde form of a service's line (the reference for [`write_service_line`]).
#[cfg(test)]
fn json_service<'a>(p: &'a PlannedService, model: &'a Model) -> JsonService<'a> {
    let s = &model.services[p.id];
    let playbook =
        s.playbook.is_some() && p.estimate.source == crate::plan::EstimateSource::Playbook;
    JsonService {
        name: &s.name,
        tier: s.tier,
        wave: p.wave,
        depends_on: Names {
            model,
            ids: &s.depends_on,
        },
        start_s: secs(p.start),
        ready_s: secs(p.ready),
        rto_s: secs(p.rto),
        slack_s: secs_i(p.slack),
        estimate_s: secs(p.dur),
        estimate_source: p.estimate.source.as_str(),
        estimate_steps: if playbook {
            p.estimate
                .steps
                .iter()
                .map(|st| JsonStep {
                    name: &st.name,
                    estimate_s: st.secs,
                    rule: st.rule,
                })
                .collect()
        } else {
            Vec::new()
        },
        estimate_checks_s: playbook.then_some(p.estimate.checks_secs),
        modified_deadline_s: secs_i(p.deadline),
        earliest_ready_s: secs(p.earliest_ready),
        queued_s: secs(p.queued),
    }
}

/// `serde_json::to_writer(out, &json_service(..))`, byte for byte, without serde.
fn write_service_line(out: &mut Vec<u8>, p: &PlannedService, model: &Model) {
    let s = &model.services[p.id];
    out.extend_from_slice(b"{\"name\":");
    json_str(out, &s.name);
    out.extend_from_slice(b",\"tier\":");
    json_u64(out, s.tier as u64);
    out.extend_from_slice(b",\"wave\":");
    json_u64(out, p.wave as u64);
    out.extend_from_slice(b",\"depends_on\":[");
    for (k, &d) in s.depends_on.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        json_str(out, model.name(d));
    }
    out.extend_from_slice(b"],\"start_s\":");
    json_ms(out, p.start as i128);
    out.extend_from_slice(b",\"ready_s\":");
    json_ms(out, p.ready as i128);
    out.extend_from_slice(b",\"rto_s\":");
    json_ms(out, p.rto as i128);
    out.extend_from_slice(b",\"slack_s\":");
    json_ms(out, p.slack as i128);
    out.extend_from_slice(b",\"estimate_s\":");
    json_ms(out, p.dur as i128);
    out.extend_from_slice(b",\"estimate_source\":");
    json_str(out, p.estimate.source.as_str());
    let playbook =
        s.playbook.is_some() && p.estimate.source == crate::plan::EstimateSource::Playbook;
    if playbook && !p.estimate.steps.is_empty() {
        out.extend_from_slice(b",\"estimate_steps\":[");
        for (k, st) in p.estimate.steps.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            json_str(out, &st.name);
            out.extend_from_slice(b",\"estimate_s\":");
            json_f64(out, st.secs);
            out.extend_from_slice(b",\"rule\":");
            json_str(out, st.rule);
            out.push(b'}');
        }
        out.push(b']');
    }
    if playbook {
        out.extend_from_slice(b",\"estimate_checks_s\":");
        json_f64(out, p.estimate.checks_secs);
    }
    out.extend_from_slice(b",\"modified_deadline_s\":");
    json_ms(out, p.deadline as i128);
    out.extend_from_slice(b",\"earliest_ready_s\":");
    json_ms(out, p.earliest_ready as i128);
    out.extend_from_slice(b",\"queued_s\":");
    json_ms(out, p.queued as i128);
    out.push(b'}');
}

/// A JSON string as serde_json writes it; the escaping is serde_json's own when needed.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn json_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let i = digits(&mut buf, n);
    out.extend_from_slice(&buf[i..]);
}

/// Writes `n` in decimal at the end of `buf`, two digits at a time; returns where it starts.
fn digits(buf: &mut [u8; 20], mut n: u64) -> usize {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// `ms / 1000.0` as serde_json writes that f64 (shortest round trip: for these magnitudes the
/// decimal milliseconds with trailing zeros cut, and `.0` when whole), without formatting a
/// float. Outside ±10^12 ms it is serde_json's own formatting.
fn json_ms(out: &mut Vec<u8>, ms: i128) {
    if ms.unsigned_abs() >= 1_000_000_000_000 {
        json_f64(out, ms as f64 / 1000.0);
        return;
    }
    let a = ms.unsigned_abs() as u64;
    // Sign, whole seconds, point and up to three decimals, written in one go.
    let mut buf = [0u8; 20];
    let mut start = digits(&mut buf, a / 1000);
    if ms < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    let mut tail = [b'.', b'0', b'0', b'0'];
    let f = a % 1000;
    let len = if f == 0 {
        2
    } else {
        tail[1] = b'0' + (f / 100) as u8;
        tail[2] = b'0' + (f / 10 % 10) as u8;
        tail[3] = b'0' + (f % 10) as u8;
        if f.is_multiple_of(100) {
            2
        } else if f.is_multiple_of(10) {
            3
        } else {
            4
        }
    };
    out.reserve(buf.len() - start + len);
    out.extend_from_slice(&buf[start..]);
    out.extend_from_slice(&tail[..len]);
}

fn json_f64(out: &mut Vec<u8>, x: f64) {
    let _ = serde_json::to_writer(&mut *out, &x);
}

/// `meeseeks.plan/v1` (SPEC §8), services in planned start order. The summary fields are
/// pretty-printed; each service, breach and unachievable RTO is one compact line, which keeps
/// a 100 000-service plan small, fast to write and still diffable line by line.
pub fn render_json(plan: &Plan, model: &Model) -> String {
    let mut out = Vec::with_capacity(256 + plan.services.len() * LINE_BYTES);
    if plan.services.len() >= PARALLEL_MIN_SCOPE {
        // Writing into a Vec cannot fail.
        let _ = json_pipelined(&mut out, plan, model, chunk_of(plan));
    } else {
        json_whole(&mut out, plan, model);
    }
    // serde_json writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// [`render_json`] written to `w`; a large plan is rendered on two threads and written while
/// it is rendered (see [`json_pipelined`]).
pub fn write_json<W: Write + ?Sized>(w: &mut W, plan: &Plan, model: &Model) -> io::Result<()> {
    if plan.services.len() >= PARALLEL_MIN_SCOPE {
        json_pipelined(w, plan, model, chunk_of(plan))
    } else {
        let mut out = Vec::with_capacity(256 + plan.services.len() * LINE_BYTES);
        json_whole(&mut out, plan, model);
        w.write_all(&out)
    }
}

/// Bytes reserved per service line (a generated plan's lines average about 310).
const LINE_BYTES: usize = 320;

/// Services per piece of [`json_pipelined`]: a 32nd of the plan, so that the two threads end
/// within a small piece of each other and writing starts early, and at most 4096 (about
/// 1.3 MB of output, a few milliseconds of rendering) to bound the buffers. Handing a piece
/// over costs a few microseconds, rendering even the smallest piece far more.
fn chunk_of(plan: &Plan) -> usize {
    (plan.services.len() / 32).clamp(64, CHUNK)
}

const CHUNK: usize = 4096;

/// Pieces are written in batches of about this many bytes.
const WRITE_BYTES: usize = 1 << 20;

/// The whole report on this thread.
fn json_whole(out: &mut Vec<u8>, plan: &Plan, model: &Model) {
    json_head(out, plan, model);
    json_services(out, &plan.services, model, true);
    json_tail(out, plan, model);
}

/// The report written to `w` in pieces of `chunk` services, in order, while a second thread
/// renders pieces too: the service lines are nearly all of the cost. Both threads take the
/// next piece not yet taken; this one writes each piece as soon as it and those before it are
/// done, and renders one itself whenever the next to write is not ready. Written pieces'
/// buffers are reused. Stops at the first write error.
fn json_pipelined<W: Write + ?Sized>(
    w: &mut W,
    plan: &Plan,
    model: &Model,
    chunk: usize,
) -> io::Result<()> {
    let chunks: Vec<&[PlannedService]> = plan.services.chunks(chunk).collect();
    let render = |j: usize, buf: &mut Vec<u8>| {
        buf.reserve(chunks[j].len() * LINE_BYTES);
        json_services(buf, chunks[j], model, j == 0);
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let pieces = Pieces {
        state: Mutex::new(PiecesState {
            done: vec![None; chunks.len()],
            free: Vec::new(),
            worker_gone: false,
        }),
        ready: Condvar::new(),
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // Tells this thread waiting for a piece that no more will come, even on a panic
            // (which the scope then propagates).
            let _gone = Gone(&pieces);
            while !stop.load(Ordering::Relaxed) {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= chunks.len() {
                    break;
                }
                let mut buf = pieces.lock().free.pop().unwrap_or_default();
                render(j, &mut buf);
                pieces.lock().done[j] = Some(buf);
                pieces.ready.notify_one();
            }
        });
        let result = (|| {
            // Few large writes: each write to a file costs some microseconds of its own (more
            // than rendering a small piece).
            let mut w = io::BufWriter::with_capacity(WRITE_BYTES, &mut *w);
            let mut head = Vec::with_capacity(4096);
            json_head(&mut head, plan, model);
            w.write_all(&head)?;
            for i in 0..chunks.len() {
                let buf = loop {
                    if let Some(buf) = pieces.lock().done[i].take() {
                        break buf;
                    }
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j < chunks.len() {
                        let mut buf = pieces.lock().free.pop().unwrap_or_default();
                        render(j, &mut buf);
                        if j == i {
                            break buf;
                        }
                        pieces.lock().done[j] = Some(buf);
                        continue;
                    }
                    // Piece i is being rendered by the other thread.
                    let mut st = pieces.lock();
                    while st.done[i].is_none() && !st.worker_gone {
                        st = pieces.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    match st.done[i].take() {
                        Some(buf) => break buf,
                        // The other thread panicked: the scope propagates it.
                        None => return Ok(()),
                    }
                };
                w.write_all(&buf)?;
                let mut buf = buf;
                buf.clear();
                pieces.lock().free.push(buf);
            }
            let mut tail = Vec::with_capacity(256 + plan.breaches.len() * 128);
            json_tail(&mut tail, plan, model);
            w.write_all(&tail)?;
            w.flush()
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// The pieces of [`json_pipelined`] rendered and not yet written, and spare buffers.
struct Pieces {
    state: Mutex<PiecesState>,
    /// Notified when a piece is done or the rendering thread ends.
    ready: Condvar,
}

struct PiecesState {
    done: Vec<Option<Vec<u8>>>,
    free: Vec<Vec<u8>>,
    worker_gone: bool,
}

impl Pieces {
    fn lock(&self) -> std::sync::MutexGuard<'_, PiecesState> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the rendering thread as gone when dropped.
struct Gone<'a>(&'a Pieces);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.lock().worker_gone = true;
        self.0.ready.notify_all();
    }
}

/// The summary fields, and the opening of the services array.
fn json_head(out: &mut Vec<u8>, plan: &Plan, model: &Model) {
    let head = JsonPlan {
        schema: "meeseeks.plan/v1",
        mode: plan.strategy.as_str(),
        run_mode: plan.mode.as_str(),
        parallel: plan.parallel,
        estimates: if plan.history { "history" } else { "playbook" },
        services_in_scope: plan.services.len(),
        services_total: plan.total_services,
        waves: plan.waves,
        makespan_s: secs(plan.makespan),
        makespan_waves_s: secs(plan.makespan_waves),
        makespan_eager_s: secs(plan.makespan_eager),
        eager_fallback: plan.eager_fallback,
        critical_path: names(model, &plan.critical_path),
        critical_path_s: secs(plan.critical_path_len),
        rto_met: plan.met(),
        rto_breached: plan.breaches.len(),
    };
    let _ = serde_json::to_writer_pretty(&mut *out, &head);
    // Reopen the object to append the arrays.
    if out.last() == Some(&b'}') {
        out.pop();
        while out.last() == Some(&b'\n') {
            out.pop();
        }
    }
    out.extend_from_slice(b",\n  \"services\": [");
}

/// One line per service, written by hand (a third of the report's cost with serde on a
/// 100 000-service plan); `service_line_is_what_serde_writes` checks it is the same bytes.
/// `first`: the first line of the array follows (no comma before it).
fn json_services(out: &mut Vec<u8>, services: &[PlannedService], model: &Model, first: bool) {
    for (i, p) in services.iter().enumerate() {
        out.extend_from_slice(if first && i == 0 {
            b"\n    "
        } else {
            b",\n    "
        });
        write_service_line(out, p, model);
    }
}

/// The end of the services array, the breaches and unachievable RTOs, the closing brace.
fn json_tail(out: &mut Vec<u8>, plan: &Plan, model: &Model) {
    out.extend_from_slice(if plan.services.is_empty() {
        b"]"
    } else {
        b"\n  ]"
    });
    json_array(
        out,
        "breaches",
        plan.breaches.iter().map(|b| JsonBreach {
            service: model.name(b.id),
            by_s: secs(b.by),
            chain: names(model, &b.chain),
            queued_s: secs(b.queued),
            unachievable: b.unachievable,
        }),
    );
    json_array(
        out,
        "unachievable",
        plan.unachievable.iter().map(|u| JsonUnachievable {
            service: model.name(u.id),
            earliest_ready_s: secs(u.earliest_ready),
            rto_s: secs(u.rto),
            chain: names(model, &u.chain),
        }),
    );
    out.extend_from_slice(b"\n}\n");
}

// ------------------------------------------------------------------------------------------
// markdown

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Mermaid task names may not contain `:` `#` `;` (they delimit the task syntax).
fn mermaid_name(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, ':' | '#' | ';') { '_' } else { c })
        .collect()
}

/// The audit report: summary, breaches, a Mermaid gantt, the per-wave table and where every
/// estimate came from.
pub fn render_markdown(plan: &Plan, model: &Model) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Recovery plan\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| Scope | {} in {} waves |",
        scope_line(plan),
        plan.waves
    );
    let _ = writeln!(
        o,
        "| Schedule | {} mode, {}, parallel {} |",
        plan.mode,
        plan.strategy.as_str(),
        plan.parallel
    );
    let _ = writeln!(o, "| Makespan | {} |", makespan_line(plan));
    let _ = writeln!(o, "| RTOs | {} |", rto_line(plan));
    let _ = writeln!(
        o,
        "| Critical path | {}: {} |",
        fmt_u(plan.critical_path_len),
        md_cell(&chain_names(model, &plan.critical_path, " → "))
    );
    let _ = writeln!(
        o,
        "| Estimates | {} |",
        md_cell(&estimates_line(plan, model))
    );

    if !plan.breaches.is_empty() {
        let _ = writeln!(o, "\n## Predicted RTO breaches\n");
        let _ = writeln!(
            o,
            "| Service | Late by | Dependency chain | Waiting on the chain | Unachievable |"
        );
        let _ = writeln!(o, "|---|---:|---|---:|---|");
        for b in &plan.breaches {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                md_cell(model.name(b.id)),
                fmt_u(b.by),
                md_cell(&chain_names(model, &b.chain, " → ")),
                fmt_u(b.queued),
                if b.unachievable { "yes" } else { "no" }
            );
        }
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(
            o,
            "\n## RTOs unachievable even with unlimited parallelism\n"
        );
        let _ = writeln!(o, "| Service | Needs at least | RTO | Dependency chain |");
        let _ = writeln!(o, "|---|---:|---:|---|");
        for u in &plan.unachievable {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                md_cell(model.name(u.id)),
                fmt_u(u.earliest_ready),
                fmt_u(u.rto),
                md_cell(&chain_names(model, &u.chain, " → "))
            );
        }
    }

    // Mermaid gantt. `dateFormat x` reads integer milliseconds, so the bars are exact; the axis
    // shows clock time from the epoch, i.e. elapsed time from the declaration.
    let _ = writeln!(o, "\n## Timeline\n");
    if plan.services.len() > MAX_DRAWN {
        let _ = writeln!(
            o,
            "The chart shows the first {MAX_DRAWN} of {} services by planned start.\n",
            plan.services.len()
        );
    }
    let crit = critical_set(plan, model.services.len());
    let breached = breached_set(plan, model.services.len());
    let _ = writeln!(o, "```mermaid\ngantt");
    let _ = writeln!(
        o,
        "    title Planned recovery ({} mode)",
        plan.strategy.as_str()
    );
    let _ = writeln!(o, "    dateFormat x");
    let _ = writeln!(o, "    axisFormat %H:%M:%S");
    let _ = writeln!(o, "    todayMarker off");
    let drawn: Vec<&PlannedService> = plan.services.iter().take(MAX_DRAWN).collect();
    let mut groups: Vec<Vec<&PlannedService>> = vec![Vec::new(); plan.waves as usize];
    for p in &drawn {
        groups[p.wave as usize].push(p);
    }
    for (k, g) in groups.iter().enumerate() {
        if g.is_empty() {
            continue;
        }
        let _ = writeln!(o, "    section Wave {k}");
        for p in g {
            let tag = if breached[p.id] {
                "crit, "
            } else if crit[p.id] {
                "active, "
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "    {} :{}{}, {}",
                mermaid_name(model.name(p.id)),
                tag,
                p.start,
                p.ready
            );
        }
    }
    let late: Vec<&PlannedService> = drawn.iter().copied().filter(|p| p.slack < 0).collect();
    if !late.is_empty() {
        let _ = writeln!(o, "    section RTO deadlines missed");
        for p in late {
            let _ = writeln!(
                o,
                "    {} RTO :milestone, crit, {}, {}",
                mermaid_name(model.name(p.id)),
                p.rto,
                p.rto
            );
        }
    }
    let _ = writeln!(o, "```");
    let _ = writeln!(
        o,
        "\nRed: predicted RTO breach. Highlighted: critical path. Times are elapsed from the \
         declaration of the disaster (the axis reads them as a clock from 00:00:00)."
    );

    let _ = writeln!(o, "\n## Schedule by wave\n");
    let _ = writeln!(
        o,
        "| Wave | Service | Tier | Start | Ready | RTO | Slack | Estimate | Source |"
    );
    let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (k, g) in by_wave(plan).iter().enumerate() {
        for p in g {
            let s = &model.services[p.id];
            let slack = if p.slack < 0 {
                format!("**{}**", fmt_ms(p.slack))
            } else {
                fmt_ms(p.slack)
            };
            let _ = writeln!(
                o,
                "| {k} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&s.name),
                s.tier,
                fmt_u(p.start),
                fmt_u(p.ready),
                fmt_u(p.rto),
                slack,
                fmt_u(p.dur),
                p.estimate.source.as_str()
            );
        }
    }

    let with_steps: Vec<&PlannedService> = plan
        .services
        .iter()
        .filter(|p| p.estimate.source == crate::plan::EstimateSource::Playbook)
        .collect();
    if !with_steps.is_empty() {
        let _ = writeln!(o, "\n## Where the playbook estimates come from\n");
        let _ = writeln!(o, "{ESTIMATE_RULE}\n");
        let _ = writeln!(o, "| Service | Step | Estimate | Rule |");
        let _ = writeln!(o, "|---|---|---:|---|");
        for p in with_steps {
            let name = md_cell(model.name(p.id));
            for st in &p.estimate.steps {
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | {} |",
                    md_cell(&st.name),
                    fmt_u(crate::plan::to_ms(st.secs)),
                    st.rule
                );
            }
            let _ = writeln!(
                o,
                "| {name} | *checks* | {} | interval × (healthy_after − 1) |",
                fmt_u(crate::plan::to_ms(p.estimate.checks_secs))
            );
        }
    }
    o
}

// ------------------------------------------------------------------------------------------
// html

fn esc(s: &str) -> String {
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

/// A tick step giving at most ~10 ticks over `span` ms.
fn tick_step(span: Ms) -> Ms {
    const STEPS: [Ms; 14] = [
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

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

const LABEL_W: f64 = 200.0;
const CHART_W: f64 = 820.0;
const ROW_H: f64 = 20.0;

fn gantt_svg(plan: &Plan, model: &Model) -> String {
    let drawn: Vec<&PlannedService> = plan.services.iter().take(MAX_DRAWN).collect();
    let crit = critical_set(plan, model.services.len());
    // The axis covers the makespan and the RTOs a little beyond it; farther RTOs get an arrow
    // at the right edge rather than squashing every bar.
    let max_rto = drawn.iter().map(|p| p.rto).max().unwrap_or(0);
    let end = plan
        .makespan
        .max(max_rto.min(plan.makespan + plan.makespan / 2))
        .max(1);
    let x = |ms: Ms| LABEL_W + (ms.min(end) as f64) * CHART_W / end as f64;
    let top = 24.0;
    let h = top + ROW_H * drawn.len() as f64 + 10.0;
    let w = LABEL_W + CHART_W + 20.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="planned recovery timeline">"#
    );
    let step = tick_step(end);
    let mut t = 0;
    while t <= end {
        let _ = writeln!(
            o,
            r#"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1:.1}" class="grid"/><text x="{0:.1}" y="16" class="tick">{2}</text>"#,
            x(t),
            h - 10.0,
            fmt_u(t)
        );
        t += step;
    }
    for (row, p) in drawn.iter().enumerate() {
        let y = top + ROW_H * row as f64;
        let name = model.name(p.id);
        let class = if p.slack < 0 {
            "bar late"
        } else if crit[p.id] {
            "bar crit"
        } else {
            "bar ok"
        };
        let bw = (x(p.ready) - x(p.start)).max(1.5);
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="label">{}</text>"#,
            LABEL_W - 6.0,
            y + 14.0,
            esc(&truncate(name, 28))
        );
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" class="{class}"><title>{}: start {}, ready {}, RTO {}, slack {}</title></rect>"#,
            x(p.start),
            y + 4.0,
            ROW_H - 8.0,
            esc(name),
            fmt_u(p.start),
            fmt_u(p.ready),
            fmt_u(p.rto),
            fmt_ms(p.slack)
        );
        let rclass = if p.slack < 0 { "rto missed" } else { "rto" };
        if p.rto <= end {
            let _ = writeln!(
                o,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" class="{rclass}"><title>{3} RTO {4}</title></line>"#,
                x(p.rto),
                y + 1.0,
                y + ROW_H - 1.0,
                esc(name),
                fmt_u(p.rto)
            );
        } else {
            let xe = x(end);
            let _ = writeln!(
                o,
                r#"<path d="M{:.1} {:.1} l6 6 l-6 6 z" class="{rclass}"><title>{} RTO {} (beyond the axis)</title></path>"#,
                xe + 2.0,
                y + 4.0,
                esc(name),
                fmt_u(p.rto)
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

fn graph_svg(plan: &Plan, model: &Model) -> String {
    const COL_W: f64 = 210.0;
    const NODE_W: f64 = 170.0;
    const NODE_H: f64 = 22.0;
    const GAP: f64 = 8.0;
    let n = model.services.len();
    let crit = critical_set(plan, n);
    let breached = breached_set(plan, n);
    // Column per wave; within a column, planned start order. Only the first MAX_DRAWN
    // services by wave are drawn.
    let mut pos: Vec<Option<(f64, f64)>> = vec![None; n];
    let mut drawn = Vec::new();
    let mut rows_max = 0usize;
    for (k, g) in by_wave(plan).iter().enumerate() {
        for (r, p) in g.iter().enumerate() {
            if drawn.len() >= MAX_DRAWN {
                break;
            }
            pos[p.id] = Some((10.0 + COL_W * k as f64, 10.0 + (NODE_H + GAP) * r as f64));
            drawn.push(*p);
            rows_max = rows_max.max(r + 1);
        }
    }
    let cols = drawn.iter().map(|p| p.wave + 1).max().unwrap_or(0) as f64;
    let w = 20.0 + COL_W * cols;
    let h = 20.0 + (NODE_H + GAP) * rows_max as f64;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="dependency graph by wave">"#
    );
    for p in &drawn {
        let Some((x2, y2)) = pos[p.id] else { continue };
        for &d in &model.services[p.id].depends_on {
            if let Some((x1, y1)) = pos[d] {
                let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2.0);
                let (ex, ey) = (x2, y2 + NODE_H / 2.0);
                let mx = (sx + ex) / 2.0;
                let class = if crit[d] && crit[p.id] {
                    "edge crit"
                } else {
                    "edge"
                };
                let _ = writeln!(
                    o,
                    r#"<path d="M{sx:.1} {sy:.1} C{mx:.1} {sy:.1} {mx:.1} {ey:.1} {ex:.1} {ey:.1}" class="{class}"/>"#
                );
            }
        }
    }
    for p in &drawn {
        let Some((x, y)) = pos[p.id] else { continue };
        let name = model.name(p.id);
        let class = if breached[p.id] {
            "node late"
        } else if crit[p.id] {
            "node crit"
        } else {
            "node"
        };
        let _ = writeln!(
            o,
            r#"<g class="{class}"><title>{} (wave {}, tier {}, ready {}, RTO {})</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="4"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            esc(name),
            p.wave,
            model.services[p.id].tier,
            fmt_u(p.ready),
            fmt_u(p.rto),
            x + 6.0,
            y + 15.0,
            esc(&truncate(name, 24))
        );
    }
    o.push_str("</svg>\n");
    o
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}\
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

/// One self-contained HTML file: no script, no external asset, inline SVG Gantt with RTO
/// deadlines marked, and the dependency graph drawn by wave.
pub fn render_html(plan: &Plan, model: &Model) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>meeseeks recovery plan</title>\n<style>{CSS}</style>\n</head>\n<body>"
    );
    let _ = writeln!(o, "<h1>Recovery plan</h1>");
    let _ = writeln!(o, "<table class=\"summary\">");
    let rows = [
        (
            "Scope",
            format!("{} in {} waves", scope_line(plan), plan.waves),
        ),
        (
            "Schedule",
            format!(
                "{} mode, {}, parallel {}",
                plan.mode,
                plan.strategy.as_str(),
                plan.parallel
            ),
        ),
        ("Makespan", makespan_line(plan)),
        ("RTOs", rto_line(plan)),
        (
            "Critical path",
            format!(
                "{}: {}",
                fmt_u(plan.critical_path_len),
                chain_names(model, &plan.critical_path, " → ")
            ),
        ),
        ("Estimates", estimates_line(plan, model)),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(o, "</table>");

    if !plan.breaches.is_empty() {
        let _ = writeln!(o, "<h2>Predicted RTO breaches</h2>\n<table>");
        let _ = writeln!(
            o,
            "<tr><th>Service</th><th class=\"n\">Late by</th><th>Dependency chain</th><th class=\"n\">Waiting on the chain</th><th>Unachievable</th></tr>"
        );
        for b in &plan.breaches {
            let _ = writeln!(
                o,
                "<tr class=\"late\"><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(model.name(b.id)),
                fmt_u(b.by),
                esc(&chain_names(model, &b.chain, " → ")),
                fmt_u(b.queued),
                if b.unachievable { "yes" } else { "no" }
            );
        }
        let _ = writeln!(o, "</table>");
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(
            o,
            "<h2>RTOs unachievable even with unlimited parallelism</h2>\n<table>"
        );
        let _ = writeln!(
            o,
            "<tr><th>Service</th><th class=\"n\">Needs at least</th><th class=\"n\">RTO</th><th>Dependency chain</th></tr>"
        );
        for u in &plan.unachievable {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(model.name(u.id)),
                fmt_u(u.earliest_ready),
                fmt_u(u.rto),
                esc(&chain_names(model, &u.chain, " → "))
            );
        }
        let _ = writeln!(o, "</table>");
    }

    let _ = writeln!(o, "<h2>Timeline ({} schedule)</h2>", plan.strategy.as_str());
    let _ = writeln!(
        o,
        "<p class=\"legend\"><span style=\"background:#4c9a6a\"></span>meets its RTO<span style=\"background:#1f6feb\"></span>critical path<span style=\"background:#cf222e\"></span>predicted breach<span style=\"background:#8c959f\"></span>RTO deadline</p>"
    );
    if plan.services.len() > MAX_DRAWN {
        let _ = writeln!(
            o,
            "<p>The chart shows the first {MAX_DRAWN} of {} services by planned start.</p>",
            plan.services.len()
        );
    }
    let _ = writeln!(
        o,
        "<div class=\"scroll\">\n{}</div>",
        gantt_svg(plan, model)
    );
    let _ = writeln!(o, "<h2>Dependency graph by wave</h2>");
    if plan.services.len() > MAX_DRAWN {
        let _ = writeln!(
            o,
            "<p>The picture shows the first {MAX_DRAWN} of {} services, by wave.</p>",
            plan.services.len()
        );
    }
    let _ = writeln!(
        o,
        "<div class=\"scroll\">\n{}</div>",
        graph_svg(plan, model)
    );

    let _ = writeln!(o, "<h2>Schedule by wave</h2>\n<table>");
    let _ = writeln!(
        o,
        "<tr><th class=\"n\">Wave</th><th>Service</th><th class=\"n\">Tier</th><th class=\"n\">Start</th><th class=\"n\">Ready</th><th class=\"n\">RTO</th><th class=\"n\">Slack</th><th class=\"n\">Estimate</th><th>Source</th></tr>"
    );
    for (k, g) in by_wave(plan).iter().enumerate() {
        for p in g {
            let s = &model.services[p.id];
            let _ = writeln!(
                o,
                "<tr{}><td class=\"n\">{k}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                if p.slack < 0 { " class=\"late\"" } else { "" },
                esc(&s.name),
                s.tier,
                fmt_u(p.start),
                fmt_u(p.ready),
                fmt_u(p.rto),
                fmt_ms(p.slack),
                fmt_u(p.dur),
                p.estimate.source.as_str()
            );
        }
    }
    let _ = writeln!(o, "</table>\n</body>\n</html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service line of `plan`, hand-written and by serde.
    fn lines_both_ways(plan: &Plan, model: &Model) {
        assert!(!plan.services.is_empty());
        for p in &plan.services {
            let mut ours = Vec::new();
            write_service_line(&mut ours, p, model);
            let theirs = serde_json::to_string(&json_service(p, model)).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
    }

    #[test]
    fn service_line_is_what_serde_writes() {
        use crate::plan::{PlanOptions, build_plan};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan-shop");
        let (model, _) = crate::load::load(&dir, &Default::default())
            .into_result(false)
            .unwrap();
        for mode in [crate::model::Mode::Failover, crate::model::Mode::Drill] {
            for eager in [false, true] {
                let opts = PlanOptions {
                    scope: Default::default(),
                    parallel: Some(2),
                    eager,
                    mode,
                    history: None,
                    ..Default::default()
                };
                lines_both_ways(&build_plan(&model, &opts).unwrap(), &model);
            }
        }
        // Names that need escaping, odd durations, no playbooks.
        let d = |ms| std::time::Duration::from_millis(ms);
        let services = vec![
            (
                crate::model::Service::new("a\"quoted\"", 0, d(1)),
                vec![],
                vec![],
            ),
            (
                crate::model::Service::new("tab\tname", 1, d(61_001)),
                vec!["a\"quoted\"".into()],
                vec![],
            ),
            (
                crate::model::Service::new("plain", 3, d(7_200_250)),
                vec!["tab\tname".into()],
                vec![],
            ),
        ];
        let defaults = crate::model::Defaults {
            rto: d(3_600_000),
            parallel: 1,
            estimate: d(90_125),
        };
        let model = Model::from_parts(".".into(), defaults, services);
        let opts = PlanOptions {
            scope: Default::default(),
            parallel: None,
            eager: false,
            mode: crate::model::Mode::Failover,
            history: None,
            ..Default::default()
        };
        lines_both_ways(&build_plan(&model, &opts).unwrap(), &model);
    }

    #[test]
    fn milliseconds_print_as_serde_prints_their_f64() {
        let mut values: Vec<i128> = (-3000..200_000).collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x % 2_000_000_000_000) as i128 - 1_000_000_000_000);
        }
        values.extend([
            999_999_999_999,
            1_000_000_000_000,
            -1_000_000_000_000,
            u64::MAX as i128,
        ]);
        for ms in values {
            let mut ours = Vec::new();
            json_ms(&mut ours, ms);
            let theirs = serde_json::to_string(&(ms as f64 / 1000.0)).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{ms} ms");
        }
    }

    #[test]
    fn strings_and_integers_print_as_serde_prints_them() {
        for s in [
            "",
            "svc-1",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "é ✓ \u{7f}",
            "</script>",
        ] {
            let mut ours = Vec::new();
            json_str(&mut ours, s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
        for n in [0, 1, 9, 10, 99, 100, 12345, u32::MAX as u64, u64::MAX] {
            let mut ours = Vec::new();
            json_u64(&mut ours, n);
            assert_eq!(String::from_utf8(ours).unwrap(), n.to_string());
        }
    }

    /// The report of `plan` rendered whole on one thread, and in pieces on two threads.
    fn json_both_ways(plan: &Plan, model: &Model) {
        let mut whole = Vec::new();
        json_whole(&mut whole, plan, model);
        let whole = String::from_utf8(whole).unwrap();
        for chunk in [1, 7, 1000, CHUNK] {
            let mut piecewise = Vec::new();
            json_pipelined(&mut piecewise, plan, model, chunk).unwrap();
            assert_eq!(
                String::from_utf8(piecewise).unwrap(),
                whole,
                "chunk {chunk}"
            );
        }
        let mut written = Vec::new();
        write_json(&mut written, plan, model).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            render_json(plan, model)
        );
    }

    /// Accepts `left` bytes, then fails.
    struct Fails {
        left: usize,
    }

    impl Write for Fails {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_in_pieces_is_the_same_bytes() {
        use crate::plan::{PlanOptions, build_plan};
        let (model, history) = crate::plan::big_graph(5000);
        let opts = PlanOptions {
            parallel: Some(8),
            history: Some(history),
            ..Default::default()
        };
        let plan = build_plan(&model, &opts).unwrap();
        assert!(plan.services.len() >= PARALLEL_MIN_SCOPE);
        assert!(!plan.breaches.is_empty() && !plan.unachievable.is_empty());
        json_both_ways(&plan, &model);
        // A write error stops the rendering and is returned, wherever it happens.
        let len = render_json(&plan, &model).len();
        for left in [0, 100, len / 2, len - 1] {
            for chunk in [7, CHUNK] {
                let e = json_pipelined(&mut Fails { left }, &plan, &model, chunk).unwrap_err();
                assert_eq!(e.to_string(), "disk full");
            }
        }
        // In pieces anyway: a plan of one service and a small one.
        let d = std::time::Duration::from_secs;
        let one = Model::from_parts(
            ".".into(),
            Default::default(),
            vec![(crate::model::Service::new("a", 1, d(60)), vec![], vec![])],
        );
        json_both_ways(&build_plan(&one, &Default::default()).unwrap(), &one);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan-shop");
        let (shop, _) = crate::load::load(&dir, &Default::default())
            .into_result(false)
            .unwrap();
        json_both_ways(&build_plan(&shop, &Default::default()).unwrap(), &shop);
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(fmt_ms(0), "0s");
        assert_eq!(fmt_ms(45_000), "45s");
        assert_eq!(fmt_ms(7_500), "7.5s");
        assert_eq!(fmt_ms(750_000), "12m30s");
        assert_eq!(fmt_ms(3_600_000), "1h");
        assert_eq!(fmt_ms(3_723_000), "1h2m3s");
        assert_eq!(fmt_ms(-240_000), "-4m");
    }
}
