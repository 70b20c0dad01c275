//! The base of the run pipeline: the one typed event stream of a run, and the interfaces
//! everything around a run plugs into.
//!
//! Everything that watches a run (the store's journal writer, progress display, webhooks,
//! tracing, `serve`) is a [`Subscriber`] of this stream, and `RunState` is a fold over it, for
//! readers of a journal and for the live run alike. Approvals of manual steps come in through
//! an [`ApprovalSource`]. Event names on the wire are `"service.recovered"` style (SPEC §5).
//! This module depends on nothing but the model's plain types, so every other module may
//! depend on it without a cycle.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::model::Mode;

pub mod bus;

pub use bus::{
    Collector, Durability, DurableCallback, JournalFailure, Subscriber, TracingSubscriber,
};

/// Who holds a run's lock (a file lock or a store lease): written by the holder so that a
/// refused second process, `status` and `serve` can say who runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    pub since: jiff::Timestamp,
    /// `user@host` of the holder (older lock files do not have it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl LockInfo {
    /// This process.
    pub fn current() -> LockInfo {
        LockInfo {
            pid: std::process::id(),
            host: crate::util::hostname(),
            since: jiff::Timestamp::now(),
            name: crate::util::whoami(),
        }
    }
}

/// The answer of an [`ApprovalSource`] about one manual step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Pending,
    /// Approved by whom (user name, `--yes`, ...).
    Approved(String),
    Rejected(String),
}

/// Where approvals of manual steps come from (`--yes`, a terminal prompt, the run's store).
pub trait ApprovalSource: Send + Sync {
    /// Non-blocking: has the manual step `step` of `service` been approved yet?
    fn check(&self, service: &str, step: &str, prompt: &str) -> Approval;
}

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
        /// Options the run was started with (parallel, eager, on_failure, scope, ...): the
        /// run's typed configuration, as in `meta.json`.
        options: Box<crate::runconfig::RunConfig>,
        /// sha256 of the input files, to tell an operator what changed on resume.
        input_hash: String,
        /// The plan the run was started with, per service in scope (RTO, planned times, step
        /// names), so that status and reports need no re-plan. Added by the journal module;
        /// older journals without it still read (empty). Shared (`Arc`): the record is cloned
        /// for the journal and each service's state keeps its entry, and on 2 000 services
        /// copying ~12 000 names each time held up the first step by milliseconds.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        plan: Vec<std::sync::Arc<PlannedService>>,
        /// Who runs it (the holder of its lock).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<LockInfo>,
    },
    #[serde(rename = "run.resumed")]
    RunResumed {
        /// Human-readable description of what changed in the inputs, if anything.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
        input_hash: String,
        /// Who runs it from now on (the new holder of its lock): the journal shows one owner
        /// at a time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<LockInfo>,
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
    /// A stateful service's `[rpo_probe]` ran once it recovered: the newest write it holds,
    /// and the data-loss window from there to `until` (`until − newest`; negative when it
    /// holds writes made after `until`).
    #[serde(rename = "rpo.measured")]
    RpoMeasured {
        service: String,
        newest: jiff::Timestamp,
        /// Where the window ends: the declared disaster (RTO clock start) in a failover; in a
        /// drill, where production never stopped writing, the moment the probe ran.
        until: jiff::Timestamp,
        window_s: f64,
        /// The service's declared RPO, if any.
        rpo_s: Option<f64>,
    },
    /// The `[rpo_probe]` failed or printed no timestamp; the service stays recovered.
    #[serde(rename = "rpo.probe_failed")]
    RpoProbeFailed {
        service: String,
        error: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
    },
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
    /// A drill's cleanup begins (after the drill, or `meeseeks cleanup`).
    #[serde(rename = "cleanup.started")]
    CleanupStarted {
        /// Services whose cleanup steps run, dependents first.
        services: Vec<String>,
        /// The drill's own closing cleanup (it recovered everything and now tears it down), as
        /// opposed to `meeseeks cleanup`. A resume of a run killed during its closing cleanup
        /// finishes the cleanup; it does not recover again what the drill already recovered.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        closing: bool,
    },
    /// The cleanup steps of one service ran: what the drill brought up for it is torn down,
    /// so it no longer counts as recovered (a resume recovers it again).
    #[serde(rename = "service.cleaned_up")]
    ServiceCleanedUp {
        service: String,
        /// Cleanup steps of this service that failed (something may still be running).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<String>,
    },
    #[serde(rename = "cleanup.finished")]
    CleanupFinished {
        /// Cleanup steps run, and those that failed (`service/step: error`).
        steps: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failures: Vec<String>,
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

/// Webhook events sent outside a run (`diff`, `preflight --every`): not journaled, so not in
/// [`Event`].
pub const WEBHOOK_ONLY: &[&str] = &["graph.new_dependents", "preflight.changed"];

impl Event {
    /// Every event name, in the order of the enum: the one list webhooks subscribe from (a
    /// test keeps it equal to the enum's variants).
    pub const NAMES: &'static [&'static str] = &[
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
        "rpo.measured",
        "rpo.probe_failed",
        "rto.breached",
        "run.interrupted",
        "run.abandoned",
        "cleanup.started",
        "service.cleaned_up",
        "cleanup.finished",
        "run.finished",
    ];

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
            Event::RpoMeasured { .. } => "rpo.measured",
            Event::RpoProbeFailed { .. } => "rpo.probe_failed",
            Event::RtoBreached { .. } => "rto.breached",
            Event::RunInterrupted { .. } => "run.interrupted",
            Event::ServiceSkipped { .. } => "service.skipped",
            Event::RunAbandoned { .. } => "run.abandoned",
            Event::CleanupStarted { .. } => "cleanup.started",
            Event::ServiceCleanedUp { .. } => "service.cleaned_up",
            Event::CleanupFinished { .. } => "cleanup.finished",
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
            | Event::ServiceCleanedUp { service, .. }
            | Event::RpoMeasured { service, .. }
            | Event::RpoProbeFailed { service, .. }
            | Event::RtoBreached { service, .. } => Some(service),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `rpo.measured` in words, shared by the progress display, webhooks and reports.

/// A measured RPO window (`rpo.measured`'s `window_s`) for humans: `0.153s`, `-2.000s`,
/// `1h2m5s`. Windows are usually sub-second, so milliseconds show.
pub fn fmt_rpo_window(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let a = secs.abs();
    if a < 60.0 {
        format!("{sign}{a:.3}s")
    } else {
        let d = Duration::from_secs(a.round() as u64);
        format!("{sign}{}", crate::model::fmt_duration(d))
    }
}

/// The measured window against the RPO, in words: "0.153s (RPO 5s: met)".
pub fn rpo_verdict(window_s: f64, rpo_s: Option<f64>) -> String {
    let rpo = |r: f64| crate::model::fmt_duration(Duration::from_secs_f64(r.max(0.0)));
    if window_s < 0.0 {
        return format!(
            "none: it holds writes up to {} after the disaster",
            fmt_rpo_window(-window_s)
        );
    }
    let w = fmt_rpo_window(window_s);
    match rpo_s {
        Some(r) if window_s <= r => format!("{w} (RPO {}: met)", rpo(r)),
        Some(r) => format!(
            "{w} (RPO {}: EXCEEDED by {})",
            rpo(r),
            fmt_rpo_window(window_s - r)
        ),
        None => format!("{w} (no RPO declared)"),
    }
}

/// The window exceeds the declared RPO.
pub fn rpo_exceeded(window_s: f64, rpo_s: Option<f64>) -> bool {
    rpo_s.is_some_and(|r| window_s > r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NAMES` is the list webhooks are validated against: it must hold every variant's name
    /// exactly once (a missing one could not be subscribed to).
    #[test]
    fn names_list_every_event_once() {
        let mut seen = std::collections::BTreeSet::new();
        for n in Event::NAMES {
            assert!(seen.insert(*n), "{n} twice");
        }
        let samples = [
            Event::ServiceSkipped {
                service: "a".into(),
                reason: String::new(),
            },
            Event::CleanupStarted {
                services: vec![],
                closing: true,
            },
            Event::ServiceCleanedUp {
                service: "a".into(),
                failed: vec![],
            },
            Event::CleanupFinished {
                steps: 0,
                failures: vec![],
            },
            Event::RunAbandoned { by: String::new() },
        ];
        for e in &samples {
            assert!(Event::NAMES.contains(&e.name()), "{} missing", e.name());
        }
        assert_eq!(Event::NAMES.len(), 26);
    }

    /// `NAMES` is exactly the enum's variants, in order: serde's error for an unknown variant
    /// lists them all.
    #[test]
    fn names_are_every_variant_in_order() {
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
        assert_eq!(names, Event::NAMES, "{err}");
    }

    #[test]
    fn rpo_verdicts() {
        assert_eq!(rpo_verdict(0.1534, Some(5.0)), "0.153s (RPO 5s: met)");
        assert_eq!(
            rpo_verdict(7.0, Some(5.0)),
            "7.000s (RPO 5s: EXCEEDED by 2.000s)"
        );
        assert_eq!(rpo_verdict(0.2, None), "0.200s (no RPO declared)");
        assert_eq!(
            rpo_verdict(-0.25, Some(5.0)),
            "none: it holds writes up to 0.250s after the disaster"
        );
        assert_eq!(fmt_rpo_window(3725.0), "1h2m5s");
        assert!(
            rpo_exceeded(5.001, Some(5.0))
                && !rpo_exceeded(5.0, Some(5.0))
                && !rpo_exceeded(9.0, None)
        );
    }
}
