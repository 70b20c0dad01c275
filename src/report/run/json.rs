//! JSON reports: `meeseeks.status/v1`, `meeseeks.report/v1`, `meeseeks.runs/v1`.

use serde_json::{Value, json};

use crate::runstate::{CleanupStatus, RunState, RunSummary, ServiceStatus, StepStatus};

/// `meeseeks status --format json` (`meeseeks.status/v1`, SPEC §8), plus more fields.
pub fn status_json(st: &RunState) -> Value {
    json_with(st, false)
}

/// The core of `report --format json`: status/v1 plus outputs, actions and plan data.
pub fn report_json(st: &RunState) -> Value {
    let mut v = json_with(st, true);
    v["schema"] = json!("meeseeks.report/v1");
    v
}

/// `meeseeks report --format json`.
pub fn json(st: &RunState) -> String {
    pretty(&report_json(st))
}

/// What `run`, `drill` and `resume` print with `--format json` (`meeseeks.run/v1`): the
/// status of the run as it ended, plus its exit code, makespan and each service's ready time.
pub fn run_json(st: &RunState, exit_code: i32) -> String {
    let mut v = json_with(st, false);
    v["schema"] = json!("meeseeks.run/v1");
    v["exit_code"] = json!(exit_code);
    v["dry_run"] = json!(st.dry_run());
    v["interrupted"] = json!(st.state == crate::runstate::RunStatus::Interrupted);
    v["makespan_s"] = json!(round3(st.makespan_s()));
    if let Some(services) = v["services"].as_array_mut() {
        for (o, s) in services.iter_mut().zip(&st.services) {
            o["ready_s"] = json!(s.recovered_s.map(round3));
        }
    }
    pretty(&v)
}

/// `meeseeks runs --format json`.
pub fn runs_json(runs: &[RunSummary], warnings: &[String]) -> String {
    pretty(&json!({
        "schema": "meeseeks.runs/v1",
        "runs": runs,
        "warnings": warnings,
    }))
}

pub(super) fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn json_with(st: &RunState, detail: bool) -> Value {
    let this = st;
    let services: Vec<Value> = this
        .services
        .iter()
        .map(|s| {
            let steps: Vec<Value> = s
                .steps
                .iter()
                .map(|st| {
                    let mut o = json!({
                        "name": st.name,
                        "status": st.status.as_str(),
                        "attempts": st.attempts,
                    });
                    if let Some(d) = st.duration_s {
                        o["duration_s"] = json!(round3(d));
                    }
                    if let Some(e) = &st.last_error {
                        o["error"] = json!(e);
                    }
                    if st.optional {
                        o["optional"] = json!(true);
                    }
                    if let Some(r) = &st.skip_reason {
                        o["skip_reason"] = json!(r);
                    }
                    if let Some(b) = &st.approved_by {
                        o["approved_by"] = json!(b);
                    }
                    if st.status == StepStatus::Waiting
                        && let Some(p) = &st.prompt
                    {
                        o["prompt"] = json!(p);
                    }
                    if detail {
                        if !st.last_output.is_empty() {
                            o["output"] = json!(st.last_output);
                        }
                        if let Some(a) = &st.action {
                            o["action"] = json!(a);
                        }
                    }
                    o
                })
                .collect();
            let mut o = json!({
                "name": s.name,
                "status": s.status.as_str(),
                "recovered_s": s.recovered_s.map(round3),
                "rto_s": s.rto_s,
                "rto_met": s.rto_met(),
                "steps": steps,
            });
            if let Some(p) = &s.planned {
                o["tier"] = json!(p.tier);
                if let Some(w) = p.wave {
                    o["wave"] = json!(w);
                }
                o["planned_start_s"] = json!(p.start_s);
                o["planned_ready_s"] = json!(p.ready_s);
            }
            if let Some(b) = s.breached_by_s() {
                o["breached_by_s"] = json!(round3(b));
            }
            if let Some(t) = s.started_s {
                o["started_s"] = json!(round3(t));
            }
            if let Some(t) = s.ended_s {
                o["ended_s"] = json!(round3(t));
            }
            if let Some(e) = &s.error {
                o["error"] = json!(e);
            }
            if let Some(b) = &s.blocked_by {
                o["blocked_by"] = json!(b);
            }
            if let Some(r) = &s.skip_reason {
                o["skip_reason"] = json!(r);
            }
            o["attempts"] = json!(s.attempts());
            if let Some(r) = &s.rpo {
                o["rpo"] = json!({
                    "newest": r.newest,
                    "until": r.until,
                    "window_s": round3(r.window_s),
                    "rpo_s": r.rpo_s,
                    "met": r.met(),
                });
            } else if let Some(e) = &s.rpo_error {
                o["rpo"] = json!({ "error": e });
            }
            if s.cleaned_up {
                o["cleaned_up"] = json!(true);
            }
            if detail {
                o["checks"] = json!(
                    s.checks
                        .iter()
                        .map(|c| json!({"name": c.name, "passed": c.passed, "polls": c.polls, "error": c.last_error}))
                        .collect::<Vec<_>>()
                );
                o["rolled_back"] = json!(s.rolled_back);
            }
            o
        })
        .collect();
    let count = |st: ServiceStatus| this.services.iter().filter(|s| s.status == st).count();
    let mut v = json!({
        "schema": "meeseeks.status/v1",
        "run_id": this.run_id,
        "mode": this.mode.map(|m| m.as_str()),
        "state": this.state.as_str(),
        "outcome": this.outcome,
        "declared_at": this.declared_at,
        "first_at": this.first_at,
        "last_at": this.last_at,
        "elapsed_s": this.elapsed_s().map(round3),
        "summary": {
            "services": this.services.len(),
            "recovered": count(ServiceStatus::Recovered),
            "failed": count(ServiceStatus::Failed),
            "blocked": count(ServiceStatus::Blocked),
            "skipped": count(ServiceStatus::Skipped),
            "breached": this.services.iter().filter(|s| s.rto_met() == Some(false)).count(),
        },
        "services": services,
        "approvals": this.approvals,
        "breaches": this.breaches.iter().map(|b| json!({
            "service": b.service, "rto_s": b.rto_s, "at": b.at, "at_s": round3(this.secs(b.at)),
        })).collect::<Vec<_>>(),
        "interruptions": this.interruptions,
        "resumes": this.resumes,
        "warnings": this.warnings,
    });
    if let Some(h) = &this.holder {
        v["holder"] = json!(h);
    }
    if !this.owners.is_empty() {
        v["owners"] = json!(this.owners);
    }
    if this.crashed {
        v["crashed"] = json!(true);
    }
    if let Some(b) = &this.abandoned_by {
        v["abandoned_by"] = json!(b);
    }
    if this.cleanup != CleanupStatus::NotApplicable {
        v["cleanup"] = json!({
            "status": this.cleanup,
            "steps": this.cleanup_steps,
            "failures": this.cleanup_failures,
        });
    }
    if detail {
        v["options"] = json!(this.config);
        v["input_hash"] = json!(this.input_hash);
        v["dir"] = json!(this.dir);
    }
    v
}
