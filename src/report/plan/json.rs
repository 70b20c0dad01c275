//! `meeseeks.plan/v1` (SPEC §8, with more fields): summary fields pretty-printed, then one
//! compact line per service, breach and unachievable RTO. Every line is bounded — a breach
//! carries the end of its chain, its root and its length, and every service names the
//! dependency it waited for last (`waited_for`), from which any chain can be rebuilt — so the
//! report is linear in services + edges.

use std::io::{self, Write};

use serde::Serialize;

use super::secs;
use crate::model::{Model, SvcId};
use crate::plan::{Breach, CHAIN_TAIL, Plan, PlannedService, Unachievable};
use crate::util::PARALLEL_MIN_SCOPE;

#[cfg(test)]
fn secs_i(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

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
    waited_for: Option<&'a str>,
    held: bool,
}

/// `chain`: the end of the dependency chain (at most `CHAIN_TAIL` services, ending with the
/// service), `chain_length` the whole chain's, `chain_root` its first service. The reference
/// of [`write_breach_line`].
#[cfg(test)]
#[derive(Serialize)]
struct JsonBreach<'a> {
    service: &'a str,
    by_s: f64,
    chain: Vec<&'a str>,
    chain_length: usize,
    chain_root: &'a str,
    queued_s: f64,
    unachievable: bool,
}

/// The reference of [`write_unachievable_line`].
#[cfg(test)]
#[derive(Serialize)]
struct JsonUnachievable<'a> {
    service: &'a str,
    earliest_ready_s: f64,
    rto_s: f64,
    chain: Vec<&'a str>,
    chain_length: usize,
    chain_root: &'a str,
}

#[derive(Serialize)]
struct JsonRule {
    rule: &'static str,
    rto_breached: usize,
    total_lateness_s: f64,
    makespan_s: f64,
}

#[derive(Serialize)]
struct JsonSearch {
    /// What found the schedule: a rule's name, "search", "exact" or "waves-order".
    chosen_by: &'static str,
    best_rule: Option<&'static str>,
    best_rule_breaches: Option<usize>,
    rules: Vec<JsonRule>,
    budget: usize,
    walks: usize,
    seed: u64,
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
    /// In the order the plan minimises them.
    objective: [&'static str; 3],
    total_lateness_s: f64,
    makespan_lower_bound_s: f64,
    /// Proven optimal ("optimality" says how).
    optimal: bool,
    optimality: &'static str,
    search: JsonSearch,
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
        waited_for: p.waited_for.map(|d| model.name(d)),
        held: p.held,
    }
}

/// `serde_json::to_writer(out, &json_service(..))`, byte for byte, without serde (a third of
/// the report's cost with serde on a 100 000-service plan); `service_line_is_what_serde_writes`
/// checks it is the same bytes.
fn write_service_line(out: &mut Vec<u8>, p: &PlannedService, cx: &Ctx<'_>) {
    let s = &cx.model.services[p.id];
    out.extend_from_slice(b"{\"name\":");
    cx.name(out, p.id);
    out.extend_from_slice(b",\"tier\":");
    json_u64(out, s.tier as u64);
    out.extend_from_slice(b",\"wave\":");
    json_u64(out, p.wave as u64);
    out.extend_from_slice(b",\"depends_on\":[");
    for (k, &d) in s.depends_on.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        cx.name(out, d);
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
    out.extend_from_slice(b",\"waited_for\":");
    match p.waited_for {
        Some(d) => cx.name(out, d),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if p.held {
        b",\"held\":true}"
    } else {
        b",\"held\":false}"
    });
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
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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
    // Sign, whole seconds, point and up to three decimals.
    if ms < 0 {
        out.push(b'-');
    }
    json_u64(out, a / 1000);
    let f = a % 1000;
    if f == 0 {
        out.extend_from_slice(b".0");
    } else {
        let tail = [
            b'.',
            b'0' + (f / 100) as u8,
            b'0' + (f / 10 % 10) as u8,
            b'0' + (f % 10) as u8,
        ];
        let len = if f.is_multiple_of(100) {
            2
        } else if f.is_multiple_of(10) {
            3
        } else {
            4
        };
        out.extend_from_slice(&tail[..len]);
    }
}

fn json_f64(out: &mut Vec<u8>, x: f64) {
    let _ = serde_json::to_writer(&mut *out, &x);
}

/// `meeseeks.plan/v1` (SPEC §8), services in planned start order. The summary fields are
/// pretty-printed; each service, breach and unachievable RTO is one compact line, which keeps
/// a 100 000-service plan small, fast to write and still diffable line by line.
pub fn render_json(plan: &Plan, model: &Model) -> String {
    let mut out = Vec::with_capacity(256 + plan.services.len() * LINE_BYTES);
    // Writing into a Vec cannot fail.
    let _ = write_json(&mut out, plan, model);
    // serde_json writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// [`render_json`] written to `w`. From `PARALLEL_MIN_SCOPE` services on, a second thread
/// renders the second half of the service lines while this one renders and writes the first.
pub fn write_json<W: Write + ?Sized>(w: &mut W, plan: &Plan, model: &Model) -> io::Result<()> {
    write_json_with(w, plan, model, plan.services.len() >= PARALLEL_MIN_SCOPE)
}

/// Bytes reserved per service line (a generated plan's lines average about 350).
const LINE_BYTES: usize = 360;

/// Lines (services, breaches or unachievable RTOs) rendered as one piece: about 1.5 MB of
/// service lines, 1 MB of breaches.
const CHUNK: usize = 4096;

/// Writes are batched into about this many bytes (each write to a file costs some
/// microseconds of its own).
const WRITE_BYTES: usize = 1 << 20;

/// What the lines are rendered with: the model, and every service name of the plan already
/// written as a JSON string. A name is written ~15 times on average (its line, its
/// dependents' `depends_on` and `waited_for`, breach chains): quoted and escaped once, each
/// is then one copy.
struct Ctx<'a> {
    model: &'a Model,
    /// The quoted names, one after the other; `at[id]..at[id + 1]` is service `id`'s.
    quoted: Vec<u8>,
    at: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(model: &'a Model, plan: &Plan) -> Ctx<'a> {
        let n = model.services.len();
        // Only a plan's services are named in its lines (its scope is closed over
        // dependencies); the others get an empty slot.
        let mut named = vec![false; n];
        for p in &plan.services {
            named[p.id] = true;
        }
        let mut quoted = Vec::with_capacity(plan.services.len() * 16);
        let mut at = Vec::with_capacity(n + 1);
        at.push(0);
        for (s, named) in model.services.iter().zip(named) {
            if named {
                json_str(&mut quoted, &s.name);
            }
            at.push(quoted.len());
        }
        Ctx { model, quoted, at }
    }

    /// Service `id`'s name as a JSON string.
    fn name(&self, out: &mut Vec<u8>, id: SvcId) {
        match self.quoted.get(self.at[id]..self.at[id + 1]) {
            Some(q) if !q.is_empty() => out.extend_from_slice(q),
            _ => json_str(out, self.model.name(id)),
        }
    }
}

/// A piece of the report after its head, in output order.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// Service lines; `true` for the piece with the array's first line.
    Services(&'a [PlannedService], bool),
    Breaches(&'a [Breach], bool),
    Unachievable(&'a [Unachievable], bool),
    /// Closing one array and opening the next (or the end of the report).
    Text(&'static str),
}

/// The pieces of `plan`'s report after its head: the service lines, then the end of that
/// array, the breaches and unachievable RTOs, each array in pieces of [`CHUNK`] lines.
fn parts(plan: &Plan) -> Vec<Part<'_>> {
    /// `items` in pieces (`part(piece, is_first)`), then the array's end.
    fn array<'a, T>(out: &mut Vec<Part<'a>>, items: &'a [T], part: fn(&'a [T], bool) -> Part<'a>) {
        out.extend(
            items
                .chunks(CHUNK)
                .enumerate()
                .map(|(k, c)| part(c, k == 0)),
        );
        out.push(Part::Text(if items.is_empty() { "]" } else { "\n  ]" }));
    }
    let mut out = Vec::new();
    array(&mut out, &plan.services, Part::Services);
    out.push(Part::Text(",\n  \"breaches\": ["));
    array(&mut out, &plan.breaches, Part::Breaches);
    out.push(Part::Text(",\n  \"unachievable\": ["));
    array(&mut out, &plan.unachievable, Part::Unachievable);
    out.push(Part::Text("\n}\n"));
    out
}

impl Part<'_> {
    fn render(self, out: &mut Vec<u8>, cx: &Ctx<'_>) {
        match self {
            Part::Services(s, first) => {
                json_lines(out, s, first, |o, p| write_service_line(o, p, cx))
            }
            Part::Breaches(b, first) => {
                json_lines(out, b, first, |o, b| write_breach_line(o, b, cx))
            }
            Part::Unachievable(u, first) => {
                json_lines(out, u, first, |o, u| write_unachievable_line(o, u, cx))
            }
            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
        }
    }
}

/// Most pieces rendered ahead of the one being waited for (bounds memory to a few MB).
const AHEAD: usize = 4;

/// [`write_json`], on two threads when `par`. Writing a 74 MB report to a file costs about as
/// much as rendering it, so writes and rendering overlap: a second thread renders pieces in
/// order of need and hands them over, while this one writes them in order, and renders a
/// piece itself whenever the next to write is not ready yet (the pieces are claimed from
/// one counter, so neither thread idles while a piece is left). Only this thread writes, so
/// `w` need not be `Send` (stdout's lock is not). Before, the service lines were rendered two
/// pieces at a time side by side and then written, and the breaches on one thread: on the
/// breach-heavy 100 000-service plan (74 MB to a file) the whole `plan` now takes 0.83 of
/// that time (median of 21 paired runs).
fn write_json_with<W: Write + ?Sized>(
    w: &mut W,
    plan: &Plan,
    model: &Model,
    par: bool,
) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(WRITE_BYTES, &mut *w);
    let mut head = Vec::with_capacity(4096);
    json_head(&mut head, plan, model);
    w.write_all(&head)?;
    let parts = parts(plan);
    let cx = Ctx::new(model, plan);
    if par {
        write_parts_on_two_threads(&mut w, &parts, &cx)?;
    } else {
        let mut buf = Vec::new();
        for part in &parts {
            buf.clear();
            part.render(&mut buf, &cx);
            w.write_all(&buf)?;
        }
    }
    w.flush()
}

fn write_parts_on_two_threads<W: Write + ?Sized>(
    w: &mut W,
    parts: &[Part<'_>],
    cx: &Ctx<'_>,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::mpsc;
    let next = AtomicUsize::new(0);
    let claim = || next.fetch_add(1, Relaxed);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(2);
    // Written buffers go back to the renderer: no fresh 1.5 MB buffer per piece.
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            loop {
                let i = claim();
                let Some(part) = parts.get(i) else { break };
                let mut buf = free_rx.try_recv().unwrap_or_default();
                buf.clear();
                part.render(&mut buf, cx);
                // Closed: this thread's writes failed; stop.
                if done_tx.send((i, buf)).is_err() {
                    break;
                }
            }
        });
        // Dropped when this closure returns, early on a write error too: a renderer blocked
        // on a full channel then wakes up and ends, and the scope can join it.
        let done_rx = done_rx;
        // Rendered pieces not yet written, by index.
        let mut ready: std::collections::BTreeMap<usize, Vec<u8>> = Default::default();
        let mut own = Vec::new();
        for i in 0..parts.len() {
            let buf = loop {
                if let Some(b) = ready.remove(&i) {
                    break b;
                }
                if let Ok((k, b)) = done_rx.try_recv() {
                    ready.insert(k, b);
                    continue;
                }
                // Render the next unclaimed piece here while the one needed is on its way
                // (claims go in order: if `i` is not claimed yet, this claims it).
                if ready.len() < AHEAD {
                    let k = claim();
                    if let Some(part) = parts.get(k) {
                        let mut b = std::mem::take(&mut own);
                        b.clear();
                        part.render(&mut b, cx);
                        ready.insert(k, b);
                        continue;
                    }
                }
                // Piece `i` is being rendered on the other thread: wait for it. (That thread
                // only ends early on a panic, which the scope passes on.)
                match done_rx.recv() {
                    Ok((k, b)) => ready.insert(k, b),
                    Err(_) => return Err(io::Error::other("the renderer thread stopped")),
                };
            };
            w.write_all(&buf)?;
            if own.capacity() == 0 {
                own = buf;
            } else {
                let _ = free_tx.send(buf);
            }
        }
        Ok(())
    })
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
        objective: ["rto_breaches", "total_lateness", "makespan"],
        total_lateness_s: secs(plan.lateness()),
        makespan_lower_bound_s: secs(plan.makespan_lower_bound),
        optimal: plan.search.optimality != crate::plan::Optimality::Unknown,
        optimality: plan.search.optimality.as_str(),
        search: json_search(plan),
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

fn json_search(plan: &Plan) -> JsonSearch {
    let s = &plan.search;
    let best = s.best_rule();
    JsonSearch {
        chosen_by: s.chosen_by.as_str(),
        best_rule: best.map(|(r, _)| r.as_str()),
        best_rule_breaches: best.map(|(_, o)| o.breaches),
        rules: s
            .rules
            .iter()
            .map(|&(r, o)| JsonRule {
                rule: r.as_str(),
                rto_breached: o.breaches,
                total_lateness_s: secs(o.lateness),
                makespan_s: secs(o.makespan),
            })
            .collect(),
        budget: s.budget,
        walks: s.evaluations,
        seed: s.seed,
    }
}

/// One compact line per item, each after `\n    ` (`,\n    ` unless `first` and the first
/// of the array).
fn json_lines<T>(out: &mut Vec<u8>, items: &[T], first: bool, line: impl Fn(&mut Vec<u8>, &T)) {
    for (k, it) in items.iter().enumerate() {
        out.extend_from_slice(if first && k == 0 {
            b"\n    "
        } else {
            b",\n    "
        });
        line(out, it);
    }
}

/// A JSON array of names.
fn json_names(out: &mut Vec<u8>, cx: &Ctx<'_>, ids: &[SvcId]) {
    out.push(b'[');
    for (k, &d) in ids.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        cx.name(out, d);
    }
    out.push(b']');
}

/// The end of a chain: its last [`CHAIN_TAIL`] services.
fn chain_tail(chain: &[SvcId]) -> &[SvcId] {
    &chain[chain.len().saturating_sub(CHAIN_TAIL)..]
}

/// `,"chain":[…],"chain_length":N,"chain_root":"…"`.
fn json_chain(out: &mut Vec<u8>, cx: &Ctx<'_>, chain: &[SvcId], len: usize, root: SvcId) {
    out.extend_from_slice(b",\"chain\":");
    json_names(out, cx, chain_tail(chain));
    out.extend_from_slice(b",\"chain_length\":");
    json_u64(out, len as u64);
    out.extend_from_slice(b",\"chain_root\":");
    cx.name(out, root);
}

/// `serde_json::to_writer(out, &JsonBreach { .. })`, byte for byte, without serde.
fn write_breach_line(out: &mut Vec<u8>, b: &Breach, cx: &Ctx<'_>) {
    out.extend_from_slice(b"{\"service\":");
    cx.name(out, b.id);
    out.extend_from_slice(b",\"by_s\":");
    json_ms(out, b.by as i128);
    json_chain(out, cx, &b.chain, b.chain_len, b.chain_root);
    out.extend_from_slice(b",\"queued_s\":");
    json_ms(out, b.queued as i128);
    out.extend_from_slice(if b.unachievable {
        b",\"unachievable\":true}"
    } else {
        b",\"unachievable\":false}"
    });
}

/// `serde_json::to_writer(out, &JsonUnachievable { .. })`, byte for byte, without serde.
fn write_unachievable_line(out: &mut Vec<u8>, u: &Unachievable, cx: &Ctx<'_>) {
    out.extend_from_slice(b"{\"service\":");
    cx.name(out, u.id);
    out.extend_from_slice(b",\"earliest_ready_s\":");
    json_ms(out, u.earliest_ready as i128);
    out.extend_from_slice(b",\"rto_s\":");
    json_ms(out, u.rto as i128);
    json_chain(out, cx, &u.chain, u.chain_len, u.chain_root);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service, breach and unachievable line of `plan`, hand-written and by serde.
    fn lines_both_ways(plan: &Plan, model: &Model) {
        assert!(!plan.services.is_empty());
        let cx = Ctx::new(model, plan);
        for p in &plan.services {
            let mut ours = Vec::new();
            write_service_line(&mut ours, p, &cx);
            let theirs = serde_json::to_string(&json_service(p, model)).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
        let names = |ids: &[SvcId]| -> Vec<&str> {
            chain_tail(ids).iter().map(|&i| model.name(i)).collect()
        };
        for b in &plan.breaches {
            let mut ours = Vec::new();
            write_breach_line(&mut ours, b, &cx);
            let theirs = serde_json::to_string(&JsonBreach {
                service: model.name(b.id),
                by_s: secs(b.by),
                chain: names(&b.chain),
                chain_length: b.chain_len,
                chain_root: model.name(b.chain_root),
                queued_s: secs(b.queued),
                unachievable: b.unachievable,
            })
            .unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
        for u in &plan.unachievable {
            let mut ours = Vec::new();
            write_unachievable_line(&mut ours, u, &cx);
            let theirs = serde_json::to_string(&JsonUnachievable {
                service: model.name(u.id),
                earliest_ready_s: secs(u.earliest_ready),
                rto_s: secs(u.rto),
                chain: names(&u.chain),
                chain_length: u.chain_len,
                chain_root: model.name(u.chain_root),
            })
            .unwrap();
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

    /// The report of `plan` in one piece on one thread, and written on one and two threads.
    fn json_both_ways(plan: &Plan, model: &Model) {
        let mut whole = Vec::new();
        json_head(&mut whole, plan, model);
        let cx = Ctx::new(model, plan);
        json_lines(&mut whole, &plan.services, true, |o, p| {
            write_service_line(o, p, &cx)
        });
        whole.extend_from_slice(if plan.services.is_empty() {
            b"]"
        } else {
            b"\n  ]"
        });
        // Each line rendered alone, then joined: the reference the pieces must add up to.
        fn line<T>(item: &T, write: fn(&mut Vec<u8>, &T, &Ctx<'_>), cx: &Ctx<'_>) -> Vec<u8> {
            let mut o = Vec::new();
            write(&mut o, item, cx);
            o
        }
        let breaches = plan
            .breaches
            .iter()
            .map(|b| line(b, write_breach_line, &cx));
        let unachievable = plan
            .unachievable
            .iter()
            .map(|u| line(u, write_unachievable_line, &cx));
        for (key, lines) in [
            ("breaches", breaches.collect::<Vec<_>>()),
            ("unachievable", unachievable.collect()),
        ] {
            whole.extend_from_slice(format!(",\n  \"{key}\": [").as_bytes());
            for (k, l) in lines.iter().enumerate() {
                whole.extend_from_slice(if k == 0 { b"\n    " } else { b",\n    " });
                whole.extend_from_slice(l);
            }
            whole.extend_from_slice(if lines.is_empty() { b"]" } else { b"\n  ]" });
        }
        whole.extend_from_slice(b"\n}\n");
        let whole = String::from_utf8(whole).unwrap();
        for par in [false, true] {
            let mut written = Vec::new();
            write_json_with(&mut written, plan, model, par).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), whole, "par {par}");
        }
        assert_eq!(render_json(plan, model), whole);
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
    fn json_on_two_threads_is_the_same_bytes() {
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
        lines_both_ways(&plan, &model);
        json_both_ways(&plan, &model);
        // A write error is returned, wherever it happens.
        let len = render_json(&plan, &model).len();
        for left in [0, 100, len / 2, len - 1] {
            for par in [false, true] {
                let e = write_json_with(&mut Fails { left }, &plan, &model, par).unwrap_err();
                assert_eq!(e.to_string(), "disk full");
            }
        }
        // On two threads anyway: a plan of one service and a small one.
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
}
