//! The HTML of the war-room pages, rendered on the server from a `RunState` (so every page
//! works without JavaScript), and the pieces the live stream sends: one service's table row,
//! one waiting-approval item, one activity line. The browser swaps those pieces in place;
//! the same functions render the first page and every later delta, so the two never differ.
//!
//! Every string that comes from a journal, a graph or a playbook goes through `esc`.

use std::fmt::Write as _;

use crate::events::Record;
use crate::report::fmt::fmt_secs_fit as fmt_dur;
use crate::report::html::esc;
use crate::report::run::{last_lines, printable};
use crate::runstate::{RunState, RunStatus, ServiceState, ServiceStatus, StepStatus};

/// Below this share of its RTO left, a countdown turns amber (red once it is spent).
pub const AMBER_SHARE: f64 = 0.25;
/// Output lines shown per service.
pub const OUTPUT_LINES: usize = 6;
/// Rows per table chunk on the run page.
const CHUNK_ROWS: usize = 40;
/// The run table's columns (every chunk has the same, so the columns line up).
const COLS: &str = "<colgroup><col class=\"c-n\"><col class=\"c-s\"><col class=\"c-step\"><col class=\"c-el\">\
<col class=\"c-rto\"><col class=\"c-tl\"><col class=\"c-out\"></colgroup>";
/// Activity lines shown on the run page.
pub const LOG_LINES: usize = 40;

const STYLE: &str = include_str!("assets/style.css");
const RUN_JS: &str = include_str!("assets/run.js");
const RUNS_JS: &str = include_str!("assets/runs.js");
const GRAPH_JS: &str = include_str!("assets/graph.js");

/// Which script a page carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Script {
    None,
    Run,
    Runs,
    Graph,
}

/// A whole page: inline style and script, nothing fetched from elsewhere.
pub fn page(title: &str, active: &str, body_attrs: &str, body: &str, script: Script) -> String {
    let mut o = String::with_capacity(body.len() + STYLE.len() + RUN_JS.len() + 512);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · meeseeks</title><style>{STYLE}</style></head>\n<body{body_attrs}>\n",
        esc(title)
    );
    o.push_str(&nav(active));
    o.push_str("<main>\n");
    o.push_str(body);
    o.push_str("</main>\n");
    let js = match script {
        Script::None => "",
        Script::Run => RUN_JS,
        Script::Runs => RUNS_JS,
        Script::Graph => GRAPH_JS,
    };
    if !js.is_empty() {
        let _ = writeln!(o, "<script>{js}</script>");
    }
    o.push_str("</body></html>\n");
    o
}

/// The bar at the top of every page (also injected into the served plan report).
pub fn nav(active: &str) -> String {
    let mut o = String::from("<nav class=\"top\"><b>meeseeks</b>");
    for (href, label) in [("/", "Runs"), ("/plan", "Plan"), ("/graph", "Graph")] {
        let class = if label == active { " class=\"on\"" } else { "" };
        let _ = write!(o, "<a href=\"{href}\"{class}>{label}</a>");
    }
    o.push_str("<a href=\"/metrics\">Metrics</a></nav>\n");
    o
}

/// An error page body.
pub fn error_body(title: &str, detail: &str) -> String {
    format!(
        "<h1>{}</h1>\n<pre class=\"err\">{}</pre>\n",
        esc(title),
        esc(&printable(detail))
    )
}

fn ms(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

fn fmt_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn clock(ts: jiff::Timestamp) -> String {
    ts.strftime("%H:%M:%S").to_string()
}

// ---------------------------------------------------------------------------------------------
// Runs list

/// One line of the runs list.
pub struct RunRow {
    pub state: RunState,
    pub live: bool,
    pub holder: Option<String>,
}

/// `running` with nobody holding the lock is a run whose process died: say so.
pub fn shown_state(st: &RunState, live: bool) -> &'static str {
    if st.state == RunStatus::Running && !live {
        "interrupted"
    } else {
        st.state.as_str()
    }
}

/// Where a drill stands with tearing down what it started (`RunState::cleanup`).
pub fn cleanup_text(st: &RunState) -> String {
    use crate::runstate::CleanupStatus;
    match st.cleanup {
        CleanupStatus::NotApplicable => "n/a (failover)".into(),
        CleanupStatus::Pending if !st.state.is_terminal() => "not yet".into(),
        CleanupStatus::Pending => "pending (meeseeks cleanup)".into(),
        CleanupStatus::Done => format!("yes ({} steps)", st.cleanup_steps),
        CleanupStatus::Failed => format!(
            "partly ({} of {} steps failed)",
            st.cleanup_failures.len(),
            st.cleanup_steps
        ),
    }
}

fn count(st: &RunState, s: ServiceStatus) -> usize {
    st.services.iter().filter(|x| x.status == s).count()
}

/// The `<tbody>` rows of the runs list, newest first.
pub fn runs_rows(rows: &[RunRow]) -> String {
    let mut o = String::new();
    for r in rows.iter().rev() {
        let st = &r.state;
        let state = shown_state(st, r.live);
        let breaches = st.breaches.len();
        let _ = writeln!(
            o,
            "<tr><td><a href=\"/runs/{id}\">{id}</a></td><td>{mode}</td>\
             <td><span class=\"st st-{state}\">{state}</span>{holder}</td>\
             <td>{rec} / {total}</td><td class=\"{fc}\">{failed}</td><td class=\"{bc}\">{blocked}</td>\
             <td class=\"{rc}\">{breaches}</td><td>{started}</td><td>{cleanup}</td></tr>",
            id = esc(&st.run_id),
            mode = esc(st.mode.map(|m| m.as_str()).unwrap_or("?")),
            holder = r
                .holder
                .as_ref()
                .map(|h| format!(" <small>{}</small>", esc(h)))
                .unwrap_or_default(),
            rec = count(st, ServiceStatus::Recovered),
            total = st.services.len(),
            failed = count(st, ServiceStatus::Failed),
            fc = if count(st, ServiceStatus::Failed) > 0 {
                "bad"
            } else {
                ""
            },
            blocked = count(st, ServiceStatus::Blocked),
            bc = if count(st, ServiceStatus::Blocked) > 0 {
                "bad"
            } else {
                ""
            },
            rc = if breaches > 0 { "bad" } else { "" },
            started = st.first_at.map(fmt_ts).unwrap_or_else(|| "-".into()),
            cleanup = esc(&cleanup_text(st)),
        );
    }
    o
}

pub fn runs_page(
    rows: &[RunRow],
    warnings: &[String],
    state_dir: &str,
    preflight: Option<&crate::preflight::Report>,
) -> String {
    let mut b = String::from("<h1>Runs</h1>\n");
    let _ = writeln!(
        b,
        "<p class=\"sub\">State directory <code>{}</code>. Newest first; a live run updates by \
         itself.</p>",
        esc(state_dir)
    );
    if let Some(p) = preflight {
        preflight_line(&mut b, p);
    }
    if rows.is_empty() {
        b.push_str(
            "<p id=\"none\">No runs yet. Start one with <code>meeseeks drill DIR</code>.</p>\n",
        );
    }
    b.push_str(
        "<table class=\"runs\"><thead><tr><th>run</th><th>mode</th><th>state</th>\
         <th>recovered</th><th>failed</th><th>blocked</th><th>RTO breaches</th><th>started</th>\
         <th>cleaned up</th></tr></thead>\n<tbody id=\"runs\">\n",
    );
    b.push_str(&runs_rows(rows));
    b.push_str("</tbody></table>\n");
    for w in warnings {
        let _ = writeln!(b, "<p class=\"warn\">{}</p>", esc(w));
    }
    let live = rows.iter().any(|r| r.live);
    page(
        "Runs",
        "Runs",
        &format!(" data-page=\"runs\" data-live=\"{}\"", u8::from(live)),
        &b,
        Script::Runs,
    )
}

/// One line: would a failover work now, by the last recorded preflight, and what is not ready.
fn preflight_line(b: &mut String, p: &crate::preflight::Report) {
    let at = p.evaluated_at.strftime("%Y-%m-%d %H:%M:%S UTC");
    let c = &p.counts;
    if p.ready {
        let _ = writeln!(
            b,
            "<p id=\"preflight\" class=\"ok\">Preflight {at}: all {} services ready.</p>",
            c.ready
        );
        return;
    }
    let names: Vec<String> = p
        .services
        .iter()
        .filter(|s| s.status != crate::preflight::Status::Ready)
        .take(8)
        .map(|s| format!("{} ({})", esc(&s.name), s.status.as_str().replace('_', " ")))
        .collect();
    let more = (c.not_ready + c.unknown).saturating_sub(names.len());
    let _ = writeln!(
        b,
        "<p id=\"preflight\" class=\"warn\">Preflight {at}: {} ready, {} not ready, {} unknown: \
         {}{}.</p>",
        c.ready,
        c.not_ready,
        c.unknown,
        names.join(", "),
        if more > 0 {
            format!(", … ({more} more)")
        } else {
            String::new()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// A run

/// What the run page shows besides the folded state.
pub struct RunView<'a> {
    pub state: &'a RunState,
    pub live: bool,
    pub holder: Option<String>,
    pub seq: u64,
    pub log: &'a [String],
    pub steps_failed: usize,
    pub counts: Counts,
    pub token_required: bool,
    pub read_only: bool,
    pub error: Option<&'a str>,
}

/// Seconds from the RTO clock start to now, or to the end of a run that is over (its
/// countdowns stop). An interrupted run's clock keeps going (SPEC §1).
pub fn now_s(st: &RunState) -> f64 {
    match (is_frozen(st), st.finished_at.or(st.last_at)) {
        (true, Some(t)) => st.secs(t),
        _ => st.secs(jiff::Timestamp::now()),
    }
}

fn is_frozen(st: &RunState) -> bool {
    matches!(
        st.state,
        RunStatus::Finished | RunStatus::Failed | RunStatus::Abandoned
    )
}

fn t0(st: &RunState) -> Option<jiff::Timestamp> {
    st.declared_at.or(st.first_at)
}

/// How many services are in each status, kept up to date record by record (a full count per
/// record would make a big run's stream quadratic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([usize; 8]);

impl Counts {
    pub fn of(st: &RunState) -> Counts {
        let mut c = Counts::default();
        for s in &st.services {
            c.0[s.status as usize] += 1;
        }
        c
    }

    /// A service went from `from` (None: it is new) to `to`.
    pub fn moved(&mut self, from: Option<ServiceStatus>, to: Option<ServiceStatus>) {
        if let Some(f) = from {
            self.0[f as usize] = self.0[f as usize].saturating_sub(1);
        }
        if let Some(t) = to {
            self.0[t as usize] += 1;
        }
    }

    pub fn get(&self, s: ServiceStatus) -> usize {
        self.0[s as usize]
    }
}

/// The run-wide figures every delta carries (JSON).
pub fn head_json(st: &RunState, live: bool, c: &Counts, steps_failed: usize) -> serde_json::Value {
    use ServiceStatus as S;
    serde_json::json!({
        "state": shown_state(st, live),
        "live": live,
        "total": st.services.len(),
        "pending": c.get(S::Pending),
        "running": c.get(S::Running) + c.get(S::Verifying),
        "waiting": c.get(S::Waiting),
        "recovered": c.get(S::Recovered),
        "failed": c.get(S::Failed),
        "blocked": c.get(S::Blocked),
        "skipped": c.get(S::Skipped),
        "breaches": st.breaches.len(),
        "steps_failed": steps_failed,
        // Countdowns stop when the run is over; an interrupted run's clock goes on.
        "frozen": is_frozen(st),
        "end_s": round1(now_s(st)),
    })
}

/// Services by wave (from the plan in `run.started`), each wave by planned start then name.
fn by_wave(st: &RunState) -> Vec<(Option<u32>, Vec<&ServiceState>)> {
    let mut v: Vec<&ServiceState> = st.services.iter().collect();
    let key = |s: &ServiceState| {
        let p = s.planned.as_ref();
        (
            p.and_then(|p| p.wave).unwrap_or(u32::MAX),
            p.and_then(|p| p.start_s).unwrap_or(f64::MAX),
        )
    };
    v.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut out: Vec<(Option<u32>, Vec<&ServiceState>)> = Vec::new();
    for s in v {
        let w = s.planned.as_ref().and_then(|p| p.wave);
        match out.last_mut() {
            Some((lw, list)) if *lw == w => list.push(s),
            _ => out.push((w, vec![s])),
        }
    }
    out
}

/// The timeline's initial scale (seconds): the planned makespan or the time so far, whichever
/// is longer, plus a margin. The page grows it as the run goes on.
fn scale_s(st: &RunState) -> f64 {
    let planned = st
        .services
        .iter()
        .filter_map(|s| s.planned.as_ref().and_then(|p| p.ready_s))
        .fold(0.0, f64::max);
    (planned.max(now_s(st)) * 1.1).max(10.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The step to show for a service: the one waiting or running, else what ended it.
fn current_step(s: &ServiceState) -> String {
    let find = |st: StepStatus| s.steps.iter().rev().find(|x| x.status == st);
    match s.status {
        ServiceStatus::Waiting => find(StepStatus::Waiting)
            .map(|x| format!("approval: {}", x.name))
            .unwrap_or_else(|| "waiting".into()),
        ServiceStatus::Running => match find(StepStatus::Running) {
            Some(x) if x.attempts > 1 => format!("{} (attempt {})", x.name, x.attempts),
            Some(x) => x.name.clone(),
            None => "starting".into(),
        },
        ServiceStatus::Verifying => {
            let passed = s.checks.iter().filter(|c| c.passed).count();
            match s.checks.iter().find(|c| !c.passed) {
                Some(c) => format!(
                    "checks {passed}/{}: {}{}",
                    s.checks.len(),
                    c.name,
                    c.last_error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
                None => format!("checks {passed}/{} passed", s.checks.len()),
            }
        }
        ServiceStatus::Failed => match (&s.error, s.failed_step()) {
            (Some(e), _) => e.clone(),
            (None, Some(x)) => format!(
                "{}: {}",
                x.name,
                x.last_error.as_deref().unwrap_or("failed")
            ),
            (None, None) => "failed".into(),
        },
        ServiceStatus::Blocked => format!(
            "blocked by {}",
            s.blocked_by.as_deref().unwrap_or("a failed dependency")
        ),
        ServiceStatus::Skipped => s.skip_reason.clone().unwrap_or_else(|| "skipped".into()),
        ServiceStatus::Recovered => "recovered".into(),
        ServiceStatus::Pending => String::new(),
    }
}

/// RTO cell: class and text at `now` (seconds from the clock start).
pub fn rto_cell(s: &ServiceState, now: f64) -> (&'static str, String) {
    let Some(rto) = s.rto_s else {
        return ("", "-".into());
    };
    match s.status {
        ServiceStatus::Recovered => match (s.recovered_s, s.rto_met()) {
            (Some(r), Some(true)) => ("rto-ok", format!("met, {} spare", fmt_dur(rto - r))),
            (Some(r), _) => ("rto-red", format!("BREACHED by {}", fmt_dur(r - rto))),
            _ => ("rto-ok", "met".into()),
        },
        ServiceStatus::Skipped => ("", "skipped".into()),
        _ => {
            let left = rto - now;
            if left <= 0.0 || s.breached_at_s.is_some() {
                (
                    "rto-red",
                    format!("BREACHED {} ago", fmt_dur((-left).max(0.0))),
                )
            } else if left <= rto * AMBER_SHARE {
                ("rto-amber", format!("{} left", fmt_dur(left)))
            } else {
                ("rto-ok", format!("{} left", fmt_dur(left)))
            }
        }
    }
}

/// Which output to show: the last step that captured some (failed attempts carry theirs).
fn last_output(s: &ServiceState) -> Option<(&str, &str)> {
    s.steps
        .iter()
        .rev()
        .find(|x| !x.last_output.trim().is_empty())
        .map(|x| (x.name.as_str(), x.last_output.as_str()))
}

/// One service's row of the run table. `now` is seconds from the clock start.
pub fn service_row(s: &ServiceState, now: f64) -> String {
    let mut o = String::with_capacity(600);
    let status = s.status.as_str();
    let a = s.started_s.map(round1);
    let b = s.recovered_s.or(s.ended_s).map(round1);
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let tier = s.planned.as_ref().map(|p| p.tier).unwrap_or(0);
    let _ = write!(
        o,
        "<tr data-svc=\"{name}\" data-st=\"{status}\" data-a=\"{a}\" data-b=\"{b}\" data-rto=\"{rto}\" class=\"r-{status}\">\
         <td class=\"n\">{name} <small>t{tier}</small></td><td><span class=\"st st-{status}\">{status}</span></td>\
         <td class=\"step\">{step}</td>",
        name = esc(&s.name),
        a = opt(a),
        b = opt(b),
        rto = opt(s.rto_s),
        step = esc(&current_step(s)),
    );
    let elapsed = match (a, b) {
        (Some(a), Some(b)) => fmt_dur(b - a),
        (Some(a), None) => fmt_dur((now - a).max(0.0).floor()),
        _ => "-".into(),
    };
    let (class, text) = rto_cell(s, now);
    let _ = write!(
        o,
        "<td class=\"el\">{}</td><td class=\"rto {class}\">{}</td><td class=\"tl\"><div class=\"bars\">",
        esc(&elapsed),
        esc(&text)
    );
    if let Some(p) = &s.planned
        && let (Some(pa), Some(pb)) = (p.start_s, p.ready_s)
    {
        let _ = write!(
            o,
            "<i class=\"pl\" style=\"--a:{};--b:{}\" title=\"planned {} – {}\"></i>",
            round1(pa),
            round1(pb),
            esc(&fmt_dur(pa)),
            esc(&fmt_dur(pb))
        );
    }
    if let Some(a) = a {
        let end = b.unwrap_or_else(|| round1(now.max(a)));
        let live = if b.is_none() { " data-live=\"1\"" } else { "" };
        let _ = write!(
            o,
            "<i class=\"ac ac-{status}{late}\" style=\"--a:{a};--b:{end}\"{live}></i>",
            late = if s.rto_met() == Some(false) {
                " late"
            } else {
                ""
            },
        );
    }
    if let Some(rto) = s.rto_s {
        let _ = write!(
            o,
            "<i class=\"rt\" style=\"--a:{}\" title=\"RTO {}\"></i>",
            round1(rto),
            esc(&fmt_dur(rto))
        );
    }
    o.push_str("</div></td><td class=\"out\">");
    if let Some((step, out)) = last_output(s) {
        let lines = last_lines(out, OUTPUT_LINES);
        let _ = write!(
            o,
            "<details><summary>{} ({} lines)</summary><pre>{}</pre></details>",
            esc(step),
            lines.len(),
            esc(&printable(&lines.join("\n")))
        );
    }
    o.push_str("</td></tr>");
    o
}

/// The waiting-for-approval item of a service, or "" when it waits for nothing.
pub fn waiting_item(st: &RunState, s: &ServiceState, read_only: bool) -> String {
    if s.status != ServiceStatus::Waiting {
        return String::new();
    }
    let Some(step) = s.steps.iter().find(|x| x.status == StepStatus::Waiting) else {
        return String::new();
    };
    let since = step
        .started_at
        .map(|t| format!(" <small>waiting since {}</small>", clock(t)))
        .unwrap_or_default();
    let button = if read_only {
        "<small>(read-only page)</small>".to_string()
    } else {
        format!(
            "<button type=\"button\" class=\"approve\" data-svc=\"{}\" data-step=\"{}\">Approve</button>",
            esc(&s.name),
            esc(&step.name)
        )
    };
    format!(
        "<li data-w=\"{svc}\"><b>{svc}</b> · {step}{since}<br><q>{prompt}</q> {button} \
         <span class=\"msg\"></span><noscript><code>meeseeks approve {run} {svc}</code></noscript></li>",
        svc = esc(&s.name),
        step = esc(&step.name),
        prompt = esc(step.prompt.as_deref().unwrap_or("")),
        run = esc(&st.run_id),
    )
}

/// One line of the activity feed (plain text; the page sets it as text): the terminal's
/// progress line for the record, without the output lines it may carry. `rto` maps services
/// to their RTO in seconds.
pub fn describe(rec: &Record, rto: &std::collections::HashMap<String, f64>) -> Option<String> {
    let text = crate::progress::describe(&rec.event, rto, false)?;
    let first = text.lines().next().unwrap_or("");
    Some(format!("{} {}", clock(rec.ts), printable(first)))
}

fn counts_html(v: &serde_json::Value) -> String {
    let mut o = String::from("<ul class=\"counts\">");
    for (key, label) in [
        ("total", "services"),
        ("recovered", "recovered"),
        ("running", "running"),
        ("waiting", "waiting"),
        ("pending", "pending"),
        ("failed", "failed"),
        ("blocked", "blocked"),
        ("breaches", "RTO breaches"),
        ("steps_failed", "steps failed"),
    ] {
        let _ = write!(
            o,
            "<li class=\"c-{key}\"><b data-h=\"{key}\">{}</b> {label}</li>",
            v[key].as_u64().unwrap_or(0)
        );
    }
    o.push_str("</ul>");
    o
}

pub fn run_page(v: &RunView) -> String {
    let st = v.state;
    let now = now_s(st);
    let head = head_json(st, v.live, &v.counts, v.steps_failed);
    let state = shown_state(st, v.live);
    let mut b = String::with_capacity(st.services.len() * 700 + 4096);
    let _ = writeln!(
        b,
        "<header><h1>Run {id} <span class=\"mode\">{mode}</span> \
         <span id=\"h-state\" class=\"st st-{state}\">{state}</span></h1>",
        id = esc(&st.run_id),
        mode = esc(st.mode.map(|m| m.as_str()).unwrap_or("?")),
    );
    let clock_start = t0(st)
        .map(|t| format!("RTO clock started {}", fmt_ts(t)))
        .unwrap_or_else(|| "no records yet".into());
    let holder = match &v.holder {
        Some(h) => format!("runner: {}", esc(h)),
        None if st.state.is_terminal() => String::new(),
        None => "no live runner: <code>meeseeks resume</code> continues it".into(),
    };
    let _ = writeln!(
        b,
        "<p class=\"sub\">{} · elapsed <b id=\"h-elapsed\">{}</b> · <span id=\"h-live\">{holder}</span> \
         · <span id=\"h-conn\" class=\"conn\">static page</span></p>",
        esc(&clock_start),
        esc(&fmt_dur(now.max(0.0).floor())),
    );
    b.push_str(&counts_html(&head));
    b.push_str("</header>\n");
    if let Some(e) = v.error {
        let _ = writeln!(b, "<pre class=\"err\">{}</pre>", esc(&printable(e)));
    }
    // Waiting for approval.
    let items: String = st
        .services
        .iter()
        .map(|s| waiting_item(st, s, v.read_only))
        .collect();
    let _ = writeln!(
        b,
        "<section id=\"waiting\" class=\"{cls}\"><h2>Waiting for approval</h2>\
         <p class=\"who\"><label>Your name (journaled) <input id=\"by\" autocomplete=\"name\" size=\"18\"></label>\
         <label id=\"tokbox\"{tokhide}>Token <input id=\"tok\" type=\"password\" size=\"18\"></label></p>\
         <noscript><p>Approving needs JavaScript; or run the command shown.</p></noscript>\
         <ul id=\"wl\">{items}</ul><p class=\"none\">Nothing waits for approval.</p></section>",
        cls = if items.is_empty() { "empty" } else { "" },
        tokhide = if v.token_required { "" } else { " hidden" },
    );
    // Services by wave.
    let scale = scale_s(st).round();
    let _ = writeln!(
        b,
        "<section><h2>Services</h2>\
         <p class=\"legend\"><i class=\"pl\"></i> planned <i class=\"ac ac-running\"></i> running \
         <i class=\"ac ac-recovered\"></i> recovered <i class=\"ac ac-recovered late\"></i> late \
         <i class=\"ac ac-failed\"></i> failed <i class=\"rt\"></i> RTO</p>\
         <div id=\"svc\" style=\"--scale:{scale}\"><table class=\"svc\">{COLS}<thead><tr><th>service</th><th>status</th>\
         <th>current step</th><th>elapsed</th><th>RTO</th><th class=\"tlh\">planned vs actual\
         <div class=\"axis\">{axis}</div></th><th>output</th></tr></thead></table>",
        axis = axis(scale),
    );
    // Small tables in chunks that the browser skips laying out while they are off screen
    // (`content-visibility` does nothing for the rows of one big table): a change to one row
    // of a 2 000-service run costs the layout of its chunk, not of the whole run.
    for (wave, list) in by_wave(st) {
        let title = match wave {
            Some(w) => format!("Wave {w}"),
            None => "Not in the plan".into(),
        };
        let _ = writeln!(
            b,
            "<div class=\"wave\"><h3>{} <small>{} services</small></h3>",
            esc(&title),
            list.len()
        );
        for chunk in list.chunks(CHUNK_ROWS) {
            let _ = write!(b, "<div class=\"chunk\"><table class=\"svc\">{COLS}<tbody>");
            for s in chunk {
                b.push_str(&service_row(s, now));
                b.push('\n');
            }
            b.push_str("</tbody></table></div>\n");
        }
        b.push_str("</div>\n");
    }
    b.push_str("</div></section>\n");
    // Activity.
    b.push_str("<section><h2>Activity</h2><ol id=\"log\">");
    for l in v.log.iter().rev() {
        let _ = write!(b, "<li>{}</li>", esc(l));
    }
    b.push_str("</ol></section>\n");
    let attrs = format!(
        " data-page=\"run\" data-run=\"{id}\" data-seq=\"{seq}\" data-t0=\"{t0}\" data-now=\"{nowms}\" \
         data-amber=\"{AMBER_SHARE}\" data-token=\"{tok}\" data-head=\"{head}\"",
        id = esc(&st.run_id),
        seq = v.seq,
        t0 = t0(st).map(ms).unwrap_or(0),
        nowms = jiff::Timestamp::now().as_millisecond(),
        tok = u8::from(v.token_required),
        head = esc(&head.to_string()),
    );
    page(
        &format!("Run {}", st.run_id),
        "Runs",
        &attrs,
        &b,
        Script::Run,
    )
}

/// Five labels along the timeline header (the page rewrites them when the scale grows).
fn axis(scale: f64) -> String {
    (0..=4)
        .map(|i| {
            format!(
                "<span style=\"--a:{}\">{}</span>",
                scale * i as f64 / 4.0,
                esc(&fmt_dur((scale * i as f64 / 4.0).round()))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, PlannedService};

    const EVIL: &str = "<img src=x onerror=alert(1)>\"'&";

    fn state() -> RunState {
        let rec = |seq: u64, event: Event| Record {
            seq,
            ts: jiff::Timestamp::from_second(1_800_000_000 + seq as i64).unwrap(),
            event,
        };
        let svc = |n: &str| PlannedService {
            name: n.into(),
            tier: 0,
            rto_s: Some(60.0),
            wave: Some(0),
            start_s: Some(0.0),
            ready_s: Some(5.0),
            depends_on: vec![],
            steps: vec![EVIL.into()],
        };
        RunState::fold(&[
            rec(
                1,
                Event::RunStarted {
                    run_id: "R".into(),
                    mode: crate::model::Mode::Drill,
                    dir: EVIL.into(),
                    declared_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
                    services: vec!["a".into(), "b".into()],
                    options: Box::new(crate::runconfig::RunConfig::new(crate::model::Mode::Drill)),
                    input_hash: String::new(),
                    plan: vec![svc("a").into(), svc("b").into()],
                    holder: None,
                },
            ),
            rec(
                2,
                Event::ServiceStarted {
                    service: "a".into(),
                },
            ),
            rec(
                3,
                Event::StepStarted {
                    service: "a".into(),
                    step: EVIL.into(),
                    attempt: 1,
                    action: Some(EVIL.into()),
                },
            ),
            rec(
                4,
                Event::StepFailed {
                    service: "a".into(),
                    step: EVIL.into(),
                    attempts: 1,
                    error: EVIL.into(),
                    output: format!("line\n{EVIL}"),
                    optional: false,
                },
            ),
            rec(
                5,
                Event::ServiceFailed {
                    service: "a".into(),
                    error: EVIL.into(),
                },
            ),
            rec(
                6,
                Event::ServiceStarted {
                    service: "b".into(),
                },
            ),
            rec(
                7,
                Event::ManualWaiting {
                    service: "b".into(),
                    step: EVIL.into(),
                    prompt: EVIL.into(),
                },
            ),
        ])
    }

    #[test]
    fn journal_strings_are_escaped_everywhere() {
        let st = state();
        let log = vec![
            describe(
                &Record {
                    seq: 9,
                    ts: jiff::Timestamp::UNIX_EPOCH,
                    event: Event::ServiceFailed {
                        service: "a".into(),
                        error: EVIL.into(),
                    },
                },
                &Default::default(),
            )
            .unwrap(),
        ];
        let page = run_page(&RunView {
            state: &st,
            live: true,
            holder: Some(EVIL.into()),
            seq: 7,
            log: &log,
            steps_failed: 1,
            counts: Counts::of(&st),
            token_required: false,
            read_only: false,
            error: Some(EVIL),
        });
        let row = service_row(st.service("a").unwrap(), 10.0);
        let item = waiting_item(&st, st.service("b").unwrap(), false);
        assert!(item.contains("class=\"approve\""));
        let runs = runs_rows(&[RunRow {
            state: st.clone(),
            live: false,
            holder: Some(EVIL.into()),
        }]);
        for html in [&page, &row, &item, &runs] {
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("onerror=alert(1)>\""), "{html}");
        }
        assert!(
            row.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"),
            "{row}"
        );
        // Read-only pages carry no button.
        assert!(!waiting_item(&st, st.service("b").unwrap(), true).contains("<button"));
    }

    #[test]
    fn countdown_turns_amber_then_red() {
        let mut st = state();
        let s = st.service("b").unwrap().clone();
        assert_eq!(rto_cell(&s, 10.0).0, "rto-ok");
        assert_eq!(rto_cell(&s, 60.0 - 60.0 * AMBER_SHARE + 1.0).0, "rto-amber");
        assert_eq!(rto_cell(&s, 61.0).0, "rto-red");
        st.apply(&Record {
            seq: 8,
            ts: jiff::Timestamp::from_second(1_800_000_030).unwrap(),
            event: Event::ServiceRecovered {
                service: "b".into(),
                recovered_s: 30.0,
            },
        });
        let (class, text) = rto_cell(st.service("b").unwrap(), 100.0);
        assert_eq!((class, text.as_str()), ("rto-ok", "met, 30s spare"));
    }

    #[test]
    fn counts_follow_moves() {
        let st = state();
        let mut c = Counts::of(&st);
        assert_eq!(c.get(ServiceStatus::Failed), 1);
        assert_eq!(c.get(ServiceStatus::Waiting), 1);
        c.moved(Some(ServiceStatus::Waiting), Some(ServiceStatus::Running));
        c.moved(None, Some(ServiceStatus::Pending));
        assert_eq!(c.get(ServiceStatus::Waiting), 0);
        assert_eq!(c.get(ServiceStatus::Running), 1);
        assert_eq!(c.get(ServiceStatus::Pending), 1);
    }
}
