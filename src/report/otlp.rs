//! `meeseeks report --format otlp`: a run as OpenTelemetry spans, in the OTLP/JSON encoding
//! (what an OTLP/HTTP collector accepts at `/v1/traces` with `Content-Type:
//! application/json`), so a drill can be opened in Jaeger or any OpenTelemetry backend next
//! to the services' own traces.
//!
//! One trace per run: a root span for the run, a child span per service (from its first
//! start to its recovery, failure or block), and under it a span per step. Ids are derived
//! from the run id (SHA-256), so rendering the same run twice gives the same trace, and a
//! backend that receives it again de-duplicates instead of showing two runs. Encoding per the
//! OTLP specification: ids in lowercase hex, times as decimal strings of Unix nanoseconds,
//! 64-bit integers as strings, enums as numbers.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::runstate::{RunState, RunStatus, ServiceState, ServiceStatus, StepStatus};

const SPAN_KIND_INTERNAL: u8 = 1;
const STATUS_UNSET: u8 = 0;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

fn hex_id(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut bytes = d[..len].to_vec();
    // An all-zero id is invalid in OTLP.
    if bytes.iter().all(|&b| b == 0) {
        bytes[len - 1] = 1;
    }
    crate::util::hex(&bytes)
}

/// The trace id of a run (16 bytes, hex).
pub fn trace_id(run_id: &str) -> String {
    hex_id(&["meeseeks.trace", run_id], 16)
}

/// A span id (8 bytes, hex): the run's root with no path, else service, then step.
pub fn span_id(run_id: &str, path: &[&str]) -> String {
    let mut parts = vec!["meeseeks.span", run_id];
    parts.extend_from_slice(path);
    hex_id(&parts, 8)
}

fn nanos(t: jiff::Timestamp) -> String {
    t.as_nanosecond().to_string()
}

fn s(key: &str, v: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": v } })
}

fn i(key: &str, v: i64) -> Value {
    json!({ "key": key, "value": { "intValue": v.to_string() } })
}

fn f(key: &str, v: f64) -> Value {
    json!({ "key": key, "value": { "doubleValue": v } })
}

fn b(key: &str, v: bool) -> Value {
    json!({ "key": key, "value": { "boolValue": v } })
}

fn status(code: u8, message: Option<&str>) -> Value {
    match message {
        Some(m) if code == STATUS_ERROR => json!({ "code": code, "message": m }),
        _ => json!({ "code": code }),
    }
}

/// The instant `secs` after the RTO clock start.
fn at(t0: jiff::Timestamp, secs: f64) -> jiff::Timestamp {
    let d = jiff::SignedDuration::from_secs_f64(secs.max(0.0));
    t0.checked_add(d).unwrap_or(t0)
}

fn service_span(
    st: &RunState,
    svc: &ServiceState,
    t0: jiff::Timestamp,
    end: jiff::Timestamp,
) -> Vec<Value> {
    let run_id = st.run_id.as_str();
    let sid = span_id(run_id, &[&svc.name]);
    let start = svc.started_s.map(|x| at(t0, x));
    let stop = svc
        .recovered_s
        .or(svc.ended_s)
        .map(|x| at(t0, x))
        .unwrap_or(end);
    // A service that never started (blocked, or still pending) is an instant at its end.
    let start = start.unwrap_or(stop).min(stop);
    let mut attrs = vec![
        s("meeseeks.service", &svc.name),
        s("meeseeks.status", svc.status.as_str()),
        i("meeseeks.attempts", i64::from(svc.attempts())),
    ];
    if let Some(p) = &svc.planned {
        attrs.push(i("meeseeks.tier", i64::from(p.tier)));
        if let Some(w) = p.wave {
            attrs.push(i("meeseeks.wave", i64::from(w)));
        }
        if let Some(r) = p.ready_s {
            attrs.push(f("meeseeks.planned_ready_s", r));
        }
    }
    if let Some(rto) = svc.rto_s {
        attrs.push(f("meeseeks.rto_s", rto));
    }
    if let Some(r) = svc.recovered_s {
        attrs.push(f("meeseeks.recovered_s", r));
    }
    if let Some(met) = svc.rto_met() {
        attrs.push(b("meeseeks.rto_met", met));
    }
    if let Some(by) = svc.breached_by_s() {
        attrs.push(f("meeseeks.rto_breached_by_s", by));
    }
    if let Some(e) = &svc.error {
        attrs.push(s("meeseeks.error", e));
    }
    if let Some(x) = &svc.blocked_by {
        attrs.push(s("meeseeks.blocked_by", x));
    }
    if let Some(x) = &svc.skip_reason {
        attrs.push(s("meeseeks.skip_reason", x));
    }
    let (code, msg) = match svc.status {
        ServiceStatus::Recovered if svc.rto_met() == Some(false) => {
            (STATUS_ERROR, Some("recovered after its RTO".to_string()))
        }
        ServiceStatus::Recovered | ServiceStatus::Skipped => (STATUS_OK, None),
        ServiceStatus::Failed => (STATUS_ERROR, svc.error.clone().or(Some("failed".into()))),
        ServiceStatus::Blocked => (
            STATUS_ERROR,
            Some(format!(
                "blocked by {}",
                svc.blocked_by.as_deref().unwrap_or("a failed dependency")
            )),
        ),
        _ => (STATUS_UNSET, None),
    };
    let events: Vec<Value> = svc
        .breached_at_s
        .map(|x| {
            json!({
                "timeUnixNano": nanos(at(t0, x)),
                "name": "rto.breached",
                "attributes": [f("meeseeks.rto_s", svc.rto_s.unwrap_or(0.0))],
            })
        })
        .into_iter()
        .collect();
    let mut spans = vec![json!({
        "traceId": trace_id(run_id),
        "spanId": sid,
        "parentSpanId": span_id(run_id, &[]),
        "name": svc.name,
        "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": nanos(start),
        "endTimeUnixNano": nanos(stop),
        "attributes": attrs,
        "events": events,
        "status": status(code, msg.as_deref()),
    })];
    for step in &svc.steps {
        let Some(s0) = step.started_at else { continue };
        let s1 = step.ended_at.unwrap_or(end).max(s0);
        let mut attrs = vec![
            s("meeseeks.service", &svc.name),
            s("meeseeks.step", &step.name),
            s("meeseeks.status", step.status.as_str()),
            i("meeseeks.attempts", i64::from(step.attempts)),
        ];
        if let Some(a) = &step.action {
            attrs.push(s("meeseeks.action", a));
        }
        if let Some(e) = &step.last_error {
            attrs.push(s("meeseeks.error", e));
        }
        if step.optional {
            attrs.push(b("meeseeks.optional", true));
        }
        if let Some(x) = &step.approved_by {
            attrs.push(s("meeseeks.approved_by", x));
        }
        if let Some(x) = &step.skip_reason {
            attrs.push(s("meeseeks.skip_reason", x));
        }
        let code = match step.status {
            StepStatus::Succeeded | StepStatus::Skipped => STATUS_OK,
            StepStatus::Failed if !step.optional => STATUS_ERROR,
            _ => STATUS_UNSET,
        };
        let events: Vec<Value> = st
            .approvals
            .iter()
            .filter(|a| a.service == svc.name && a.step == step.name)
            .map(|a| {
                json!({
                    "timeUnixNano": nanos(a.at),
                    "name": "manual.approved",
                    "attributes": [s("meeseeks.approved_by", &a.by)],
                })
            })
            .collect();
        spans.push(json!({
            "traceId": trace_id(run_id),
            "spanId": span_id(run_id, &[&svc.name, &step.name]),
            "parentSpanId": sid,
            "name": step.name,
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": nanos(s0),
            "endTimeUnixNano": nanos(s1),
            "attributes": attrs,
            "events": events,
            "status": status(code, step.last_error.as_deref()),
        }));
    }
    spans
}

/// The OTLP/JSON document of a run.
pub fn render(st: &RunState) -> Value {
    let run_id = st.run_id.as_str();
    let now = jiff::Timestamp::now();
    let t0 = st.declared_at.or(st.first_at).unwrap_or(now);
    let end = st.finished_at.or(st.last_at).unwrap_or(t0).max(t0);
    let start = st.first_at.unwrap_or(t0).min(t0);
    let count = |x: ServiceStatus| st.services.iter().filter(|s| s.status == x).count() as i64;
    let mut root_attrs = vec![
        s("meeseeks.run_id", run_id),
        s("meeseeks.mode", st.mode.map(|m| m.as_str()).unwrap_or("")),
        s("meeseeks.state", st.state.as_str()),
        i("meeseeks.services", st.services.len() as i64),
        i("meeseeks.recovered", count(ServiceStatus::Recovered)),
        i("meeseeks.failed", count(ServiceStatus::Failed)),
        i("meeseeks.blocked", count(ServiceStatus::Blocked)),
        i("meeseeks.rto_breaches", st.breaches.len() as i64),
    ];
    if let Some(o) = &st.outcome {
        root_attrs.push(s("meeseeks.outcome", o));
    }
    if let Some(d) = &st.dir {
        root_attrs.push(s("meeseeks.dir", d));
    }
    let root_code = match st.state {
        RunStatus::Finished if !st.negative() => STATUS_OK,
        RunStatus::Finished | RunStatus::Failed | RunStatus::Abandoned | RunStatus::Interrupted => {
            STATUS_ERROR
        }
        RunStatus::Running => STATUS_UNSET,
    };
    let root_msg = (root_code == STATUS_ERROR).then(|| format!("run {}", st.state.as_str()));
    let events: Vec<Value> = st
        .interruptions
        .iter()
        .map(|x| json!({"timeUnixNano": nanos(x.at), "name": "run.interrupted", "attributes": [s("meeseeks.reason", &x.reason)]}))
        .chain(st.resumes.iter().map(|x| json!({"timeUnixNano": nanos(x.at), "name": "run.resumed", "attributes": []})))
        .collect();
    let mut spans = vec![json!({
        "traceId": trace_id(run_id),
        "spanId": span_id(run_id, &[]),
        "name": format!("{} {run_id}", st.mode.map(|m| m.as_str()).unwrap_or("run")),
        "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": nanos(start),
        "endTimeUnixNano": nanos(end),
        "attributes": root_attrs,
        "events": events,
        "status": status(root_code, root_msg.as_deref()),
    })];
    for svc in &st.services {
        spans.extend(service_span(st, svc, t0, end));
    }
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                s("service.name", "meeseeks"),
                s("service.version", env!("CARGO_PKG_VERSION")),
            ] },
            "scopeSpans": [{
                "scope": { "name": "meeseeks", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, PlannedService, Record};

    fn rec(seq: u64, secs: i64, event: Event) -> Record {
        Record {
            seq,
            ts: jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap(),
            event,
        }
    }

    fn sample() -> RunState {
        let plan = |n: &str| PlannedService {
            name: n.into(),
            tier: 1,
            rto_s: Some(60.0),
            wave: Some(0),
            start_s: Some(0.0),
            ready_s: Some(10.0),
            depends_on: vec![],
            steps: vec!["go".into()],
        };
        RunState::fold(&[
            rec(
                1,
                0,
                Event::RunStarted {
                    run_id: "R1".into(),
                    mode: crate::model::Mode::Drill,
                    dir: "/dr".into(),
                    declared_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
                    services: vec!["a".into(), "b".into()],
                    options: Box::new(crate::runconfig::RunConfig::new(crate::model::Mode::Drill)),
                    input_hash: "h".into(),
                    plan: vec![plan("a").into(), plan("b").into()],
                    holder: None,
                },
            ),
            rec(
                2,
                1,
                Event::ServiceStarted {
                    service: "a".into(),
                },
            ),
            rec(
                3,
                1,
                Event::StepStarted {
                    service: "a".into(),
                    step: "go".into(),
                    attempt: 1,
                    action: Some("true".into()),
                },
            ),
            rec(
                4,
                3,
                Event::StepSucceeded {
                    service: "a".into(),
                    step: "go".into(),
                    attempts: 1,
                    duration_s: 2.0,
                },
            ),
            rec(
                5,
                4,
                Event::ServiceRecovered {
                    service: "a".into(),
                    recovered_s: 4.0,
                },
            ),
            rec(
                6,
                4,
                Event::ServiceStarted {
                    service: "b".into(),
                },
            ),
            rec(
                7,
                4,
                Event::StepStarted {
                    service: "b".into(),
                    step: "go".into(),
                    attempt: 1,
                    action: None,
                },
            ),
            rec(
                8,
                5,
                Event::StepFailed {
                    service: "b".into(),
                    step: "go".into(),
                    attempts: 1,
                    error: "exit status 3".into(),
                    output: String::new(),
                    optional: false,
                },
            ),
            rec(
                9,
                5,
                Event::ServiceFailed {
                    service: "b".into(),
                    error: "step go failed".into(),
                },
            ),
            rec(
                10,
                6,
                Event::RunFinished {
                    outcome: "failed".into(),
                    recovered: 1,
                    failed: 1,
                    blocked: 0,
                },
            ),
        ])
    }

    #[test]
    fn one_trace_with_a_span_per_service_and_step() {
        let v = render(&sample());
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "meeseeks"
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        // root + 2 services + 2 steps
        assert_eq!(spans.len(), 5);
        let trace = trace_id("R1");
        assert_eq!(trace.len(), 32);
        assert!(spans.iter().all(|s| s["traceId"] == trace.as_str()));
        let root = &spans[0];
        assert!(root.get("parentSpanId").is_none());
        let a = spans.iter().find(|s| s["name"] == "a").unwrap();
        assert_eq!(a["parentSpanId"], root["spanId"]);
        assert_eq!(a["status"]["code"], STATUS_OK);
        assert_eq!(a["startTimeUnixNano"], "1800000001000000000");
        assert_eq!(a["endTimeUnixNano"], "1800000004000000000");
        let b = spans.iter().find(|s| s["name"] == "b").unwrap();
        assert_eq!(b["status"]["code"], STATUS_ERROR);
        let b_step = spans
            .iter()
            .find(|s| s["name"] == "go" && s["parentSpanId"] == b["spanId"])
            .unwrap();
        assert_eq!(b_step["status"]["message"], "exit status 3");
        let attr = |span: &Value, k: &str| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["key"] == k)
                .map(|x| x["value"].clone())
        };
        assert_eq!(attr(a, "meeseeks.tier").unwrap()["intValue"], "1");
        assert_eq!(attr(a, "meeseeks.rto_s").unwrap()["doubleValue"], 60.0);
        assert_eq!(attr(a, "meeseeks.rto_met").unwrap()["boolValue"], true);
        assert_eq!(
            attr(b, "meeseeks.error").unwrap()["stringValue"],
            "step go failed"
        );
        // Span ids are unique within the trace.
        let mut ids: Vec<&str> = spans
            .iter()
            .map(|s| s["spanId"].as_str().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), spans.len());
    }

    #[test]
    fn ids_are_deterministic_per_run() {
        assert_eq!(render(&sample()), render(&sample()));
        assert_ne!(trace_id("R1"), trace_id("R2"));
        assert_ne!(span_id("R1", &["a", "go"]), span_id("R1", &["b", "go"]));
        // Length-prefixed parts: ("a/b", "c") and ("a", "b/c") differ.
        assert_ne!(span_id("R", &["a/b", "c"]), span_id("R", &["a", "b/c"]));
    }
}
