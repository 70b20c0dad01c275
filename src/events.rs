//! The one typed event stream of a run.
//!
//! Everything that watches a run (journal writer, progress display, webhooks, tracing) is a
//! subscriber of this stream, and `RunState` is a fold over it. Event names on the wire are
//! `"service.recovered"` style (SPEC §5).

use serde::{Deserialize, Serialize};

use crate::model::Mode;

/// One journaled event with its envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Strictly increasing within a run, starting at 1.
    pub seq: u64,
    /// UTC timestamp (RFC 3339).
    pub ts: jiff::Timestamp,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event")]
pub enum Event {
    #[serde(rename = "run.started")]
    RunStarted {
        run_id: String,
        mode: Mode,
        /// DR directory (absolute).
        dir: String,
        /// RTO clock start (RFC 3339); the run's start unless `--declared-at`.
        declared_at: jiff::Timestamp,
        /// Services in scope, by name.
        services: Vec<String>,
        /// Options the run was started with (parallel, eager, on_failure, ...).
        options: serde_json::Value,
        /// sha256 of the input files, to tell an operator what changed on resume.
        input_hash: String,
        /// The plan the run was started with, per service in scope (RTO, planned times, step
        /// names), so that status and reports need no re-plan. Added by the journal module;
        /// older journals without it still read (empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        plan: Vec<PlannedService>,
    },
    #[serde(rename = "run.resumed")]
    RunResumed {
        /// Human-readable description of what changed in the inputs, if anything.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
        input_hash: String,
    },
    #[serde(rename = "service.started")]
    ServiceStarted { service: String },
    #[serde(rename = "step.started")]
    StepStarted {
        service: String,
        step: String,
        attempt: u32,
        /// Rendered, secrets masked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    #[serde(rename = "step.attempt_failed")]
    StepAttemptFailed {
        service: String,
        step: String,
        attempt: u32,
        error: String,
        /// Last lines of output, secrets masked.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
    },
    #[serde(rename = "step.succeeded")]
    StepSucceeded {
        service: String,
        step: String,
        attempts: u32,
        duration_s: f64,
    },
    #[serde(rename = "step.failed")]
    StepFailed {
        service: String,
        step: String,
        attempts: u32,
        error: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
        /// An optional step's failure is a warning: the service goes on.
        #[serde(default)]
        optional: bool,
    },
    #[serde(rename = "step.skipped")]
    StepSkipped {
        service: String,
        step: String,
        reason: String,
    },
    #[serde(rename = "manual.waiting")]
    ManualWaiting {
        service: String,
        step: String,
        prompt: String,
    },
    #[serde(rename = "manual.approved")]
    ManualApproved {
        service: String,
        step: String,
        by: String,
    },
    #[serde(rename = "check.passed")]
    CheckPassed {
        service: String,
        check: String,
        polls: u32,
    },
    #[serde(rename = "check.failed")]
    CheckFailed {
        service: String,
        check: String,
        error: String,
    },
    #[serde(rename = "service.recovered")]
    ServiceRecovered {
        service: String,
        /// Seconds since the RTO clock start.
        recovered_s: f64,
    },
    #[serde(rename = "service.failed")]
    ServiceFailed { service: String, error: String },
    /// The service is not recovered by this run but counts as done (`--skip SERVICE`, work
    /// done by hand, or a step/mode filter that leaves nothing to do).
    #[serde(rename = "service.skipped")]
    ServiceSkipped { service: String, reason: String },
    #[serde(rename = "service.blocked")]
    ServiceBlocked {
        service: String,
        /// The failed (or blocked) essential dependency that blocks it.
        because: String,
    },
    #[serde(rename = "rollback.started")]
    RollbackStarted { service: String },
    #[serde(rename = "rto.breached")]
    RtoBreached { service: String, rto_s: f64 },
    #[serde(rename = "run.interrupted")]
    RunInterrupted { reason: String },
    #[serde(rename = "run.abandoned")]
    RunAbandoned {
        /// Who abandoned it (`user@host`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        by: String,
    },
    #[serde(rename = "run.finished")]
    RunFinished {
        /// "succeeded" or "failed".
        outcome: String,
        recovered: usize,
        failed: usize,
        blocked: usize,
    },
}

/// One service of the plan a run was started with (carried by `run.started`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PlannedService {
    pub name: String,
    #[serde(default)]
    pub tier: u32,
    /// Seconds; `None` only in hand-written journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    /// Planned start and ready time, seconds from the RTO clock's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Step names in playbook order (after `only` filtering), so status can show pending steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

impl Event {
    /// The wire name, e.g. `service.recovered`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run.started",
            Event::RunResumed { .. } => "run.resumed",
            Event::ServiceStarted { .. } => "service.started",
            Event::StepStarted { .. } => "step.started",
            Event::StepAttemptFailed { .. } => "step.attempt_failed",
            Event::StepSucceeded { .. } => "step.succeeded",
            Event::StepFailed { .. } => "step.failed",
            Event::StepSkipped { .. } => "step.skipped",
            Event::ManualWaiting { .. } => "manual.waiting",
            Event::ManualApproved { .. } => "manual.approved",
            Event::CheckPassed { .. } => "check.passed",
            Event::CheckFailed { .. } => "check.failed",
            Event::ServiceRecovered { .. } => "service.recovered",
            Event::ServiceFailed { .. } => "service.failed",
            Event::ServiceBlocked { .. } => "service.blocked",
            Event::RollbackStarted { .. } => "rollback.started",
            Event::RtoBreached { .. } => "rto.breached",
            Event::RunInterrupted { .. } => "run.interrupted",
            Event::ServiceSkipped { .. } => "service.skipped",
            Event::RunAbandoned { .. } => "run.abandoned",
            Event::RunFinished { .. } => "run.finished",
        }
    }

    /// The service the event is about, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::ServiceStarted { service }
            | Event::StepStarted { service, .. }
            | Event::StepAttemptFailed { service, .. }
            | Event::StepSucceeded { service, .. }
            | Event::StepFailed { service, .. }
            | Event::StepSkipped { service, .. }
            | Event::ManualWaiting { service, .. }
            | Event::ManualApproved { service, .. }
            | Event::CheckPassed { service, .. }
            | Event::CheckFailed { service, .. }
            | Event::ServiceRecovered { service, .. }
            | Event::ServiceFailed { service, .. }
            | Event::ServiceBlocked { service, .. }
            | Event::ServiceSkipped { service, .. }
            | Event::RollbackStarted { service }
            | Event::RtoBreached { service, .. } => Some(service),
            _ => None,
        }
    }
}

impl Event {
    /// The wire name of every event, in declaration order: the one list that webhook filters
    /// are checked against (a test keeps it equal to the enum's).
    pub const ALL: &'static [&'static str] = &[
        "run.started",
        "run.resumed",
        "service.started",
        "step.started",
        "step.attempt_failed",
        "step.succeeded",
        "step.failed",
        "step.skipped",
        "manual.waiting",
        "manual.approved",
        "check.passed",
        "check.failed",
        "service.recovered",
        "service.failed",
        "service.skipped",
        "service.blocked",
        "rollback.started",
        "rto.breached",
        "run.interrupted",
        "run.abandoned",
        "run.finished",
    ];
}

/// Webhook events sent outside a run (`diff`, `preflight --every`): not journaled, so not in
/// [`Event`].
pub const WEBHOOK_ONLY: &[&str] = &["graph.new_dependents", "preflight.changed"];

#[cfg(test)]
mod all_names {
    use super::Event;

    /// `Event::ALL` is exactly the enum's variants, in order: serde's error for an unknown
    /// variant lists them all.
    #[test]
    fn all_is_every_variant_in_order() {
        let err = serde_json::from_str::<Event>(r#"{"event": "no.such"}"#)
            .unwrap_err()
            .to_string();
        let listed = err
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("{err}"))
            .1;
        let names: Vec<&str> = listed
            .split(", ")
            .map(|n| n.trim_matches(|c: char| c == '`' || !c.is_ascii_graphic()))
            .map(|n| n.split('`').next().unwrap_or(n))
            .collect();
        assert_eq!(names, Event::ALL, "{err}");
    }
}
