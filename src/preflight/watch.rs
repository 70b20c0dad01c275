//! `meeseeks preflight --every DUR`: evaluate, record, and on a change of any service's status
//! send the `preflight.changed` webhook, until interrupted.
//!
//! A change is judged against the last recorded status of each service (so that restarting
//! the watcher neither repeats nor swallows a transition). A service with no recorded status
//! counts as a change only when it is not ready: the first evaluation announces what is
//! broken, not everything that works.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::record::PreflightLog;
use super::{Options, Problem, Report, Status};
use crate::mask::Masker;
use crate::model::Model;
use crate::notify::Message;
use crate::plan::Scope;

pub const EVENT: &str = "preflight.changed";

/// One service whose status changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub service: String,
    /// `None`: never evaluated before.
    pub from: Option<Status>,
    pub to: Status,
    pub problems: Vec<Problem>,
}

/// The services of `report` whose status differs from `before`.
pub fn changes(before: &BTreeMap<String, Status>, report: &Report) -> Vec<Change> {
    report
        .services
        .iter()
        .filter(|s| match before.get(&s.name) {
            Some(&old) => old != s.status,
            None => s.status != Status::Ready,
        })
        .map(|s| Change {
            service: s.name.clone(),
            from: before.get(&s.name).copied(),
            to: s.status,
            problems: s.problems.clone(),
        })
        .collect()
}

/// The `preflight.changed` notification: JSON for `format = "json"` hooks, one text for
/// Slack-style ones.
pub fn message(report: &Report, changes: &[Change]) -> Message {
    let json = json!({
        "schema": "meeseeks.preflight.changed/v1",
        "event": EVENT,
        "ts": report.evaluated_at,
        "dir": report.dir,
        "ready": report.ready,
        "counts": report.counts,
        "changed": changes,
    });
    const SHOWN: usize = 10;
    let mut lines = vec![format!(
        "{} preflight of {}: {} ready, {} not ready, {} unknown",
        if report.ready {
            ":white_check_mark:"
        } else {
            ":rotating_light:"
        },
        report.dir,
        report.counts.ready,
        report.counts.not_ready,
        report.counts.unknown
    )];
    for c in changes.iter().take(SHOWN) {
        let from = c.from.map(Status::label).unwrap_or("new");
        let why = c
            .problems
            .first()
            .map(|p| format!(": {} ({}:{}): {}", p.check, p.file, p.line, p.reason))
            .unwrap_or_default();
        lines.push(format!("• {} {from} → {}{why}", c.service, c.to.label()));
    }
    if changes.len() > SHOWN {
        lines.push(format!("… and {} more", changes.len() - SHOWN));
    }
    Message {
        event: EVENT.to_string(),
        json,
        text: lines.join("\n"),
    }
}

/// What the watch loop reports to its caller after each evaluation.
pub struct Evaluated<'a> {
    pub report: &'a Report,
    pub changes: &'a [Change],
    /// Problems with recording or notifying (warnings: the watch goes on).
    pub warnings: Vec<String>,
}

/// Evaluates every `every` until `cancel` fires. `load` is called before each evaluation:
/// graph and playbooks are re-read, so a fix made while watching is picked up; when it fails
/// (say a playbook being edited is invalid), `on_error` is told and that round is skipped.
pub async fn run(
    every: Duration,
    opts: &Options,
    log: &PreflightLog,
    cancel: &CancellationToken,
    load: &mut dyn FnMut() -> crate::Result<(Model, Scope)>,
    on_report: &mut dyn FnMut(Evaluated<'_>),
    on_error: &mut dyn FnMut(&crate::Error),
) {
    let mut before: BTreeMap<String, Status> = match log.last_seen().await {
        Ok(seen) => seen.into_iter().map(|(k, v)| (k, v.status)).collect(),
        Err(e) => {
            on_error(&e);
            BTreeMap::new()
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let (model, scope) = match load() {
            Ok(m) => m,
            Err(e) => {
                on_error(&e);
                continue;
            }
        };
        let masker = Masker::new();
        let report = super::evaluate(&model, &scope, opts, &masker, cancel).await;
        if cancel.is_cancelled() {
            // Interrupted mid-way: a partial evaluation is neither recorded nor announced.
            return;
        }
        let mut warnings = Vec::new();
        if let Err(e) = log.record(&report).await {
            warnings.push(e.to_string());
        }
        let ch = changes(&before, &report);
        if !ch.is_empty() && !model.notify.is_empty() {
            let msg = message(&report, &ch);
            let within = every.clamp(Duration::from_secs(1), Duration::from_secs(30));
            for d in crate::notify::send_once(&model.notify, &masker, &msg, within).await {
                if let Err(e) = d.result {
                    warnings.push(format!("webhook {} failed: {e}", d.endpoint));
                }
            }
        }
        before.extend(report.statuses());
        on_report(Evaluated {
            report: &report,
            changes: &ch,
            warnings,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;
    use crate::preflight::{Counts, ServiceResult};

    fn report(statuses: &[(&str, Status)]) -> Report {
        Report {
            schema: crate::preflight::SCHEMA.into(),
            ready: statuses.iter().all(|s| s.1 == Status::Ready),
            evaluated_at: "2026-11-26T12:00:00Z".parse().unwrap(),
            duration_s: 0.0,
            dir: "/dr".into(),
            mode: Mode::Failover,
            counts: Counts::default(),
            services: statuses
                .iter()
                .map(|(n, s)| ServiceResult {
                    name: n.to_string(),
                    status: *s,
                    problems: Vec::new(),
                    checked: 0,
                    certificates: Vec::new(),
                    backup: None,
                })
                .collect(),
        }
    }

    #[test]
    fn transitions_only() {
        use Status::*;
        let first = report(&[("a", Ready), ("b", NotReady)]);
        let ch = changes(&BTreeMap::new(), &first);
        assert_eq!(ch.len(), 1);
        assert_eq!(
            (ch[0].service.as_str(), ch[0].from, ch[0].to),
            ("b", None, NotReady)
        );
        let before = first.statuses();
        assert!(changes(&before, &first).is_empty());
        let second = report(&[("a", NotReady), ("b", Ready)]);
        let ch = changes(&before, &second);
        let got: Vec<_> = ch
            .iter()
            .map(|c| (c.service.as_str(), c.from, c.to))
            .collect();
        assert_eq!(
            got,
            [("a", Some(Ready), NotReady), ("b", Some(NotReady), Ready)]
        );
        let m = message(&second, &ch);
        assert_eq!(m.json["changed"][0]["from"], "ready");
        assert_eq!(m.json["changed"][0]["to"], "not_ready");
        assert!(m.text.contains("a ready → not ready"), "{}", m.text);
    }
}
