//! The per-service driver: one task per running service walks its playbook — steps with
//! retries and backoff, manual approvals, checks polled until healthy, rollback — and reports
//! to the runner's loop through one ordered channel. Every step's `step.started` is durable
//! before its command starts (write-ahead), so a crash never hides a side effect from
//! `resume`; when the journal cannot make it durable, the step does not start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Msg, Outcome, Shared};
use crate::events::{Approval, Event};
use crate::exec::options::FAILURE_LINES;
use crate::model::{Check, Mode, Step, StepKind, SvcId};
use crate::plan;
use crate::template::{self, Renderer};
use crate::util::last_lines;

pub(super) struct DoneGuard {
    pub(super) tx: Option<mpsc::UnboundedSender<Msg>>,
    pub(super) id: SvcId,
}

impl DoneGuard {
    fn event(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Event(ev));
        }
    }

    /// Journals `ev` and waits until it is durable (write-ahead for side effects), or with
    /// `written_enough` only until it is written (see [`Msg::EventDurable`]). `false`: the
    /// journal failed (or the runner is gone), so whatever `ev` announces must not happen.
    async fn event_durable(&self, ev: Event, written_enough: bool) -> bool {
        let Some(tx) = &self.tx else { return false };
        let (ack, done) = tokio::sync::oneshot::channel();
        let msg = Msg::EventDurable {
            ev,
            written_enough,
            ack,
        };
        if tx.send(msg).is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }

    fn done(mut self, o: Outcome) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Done(self.id, o));
        }
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Done(
                self.id,
                Outcome::Failed {
                    error: "internal error: the service's task ended unexpectedly".into(),
                    output: String::new(),
                },
            ));
        }
    }
}

pub(super) enum StepEnd {
    Ok,
    Failed { error: String, output: String },
    Interrupted,
}

pub(super) fn sh_renderer(sh: &Shared) -> Renderer<'_> {
    Renderer::new(
        &sh.model,
        sh.cli_vars.clone(),
        sh.builtins.clone(),
        sh.masker.clone(),
    )
}

/// Walks one service's playbook.
pub(super) async fn drive(
    sh: Arc<Shared>,
    id: SvcId,
    g: DoneGuard,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let outcome = drive_inner(&sh, id, &g, &stop, &kill).await;
    if matches!(outcome, Outcome::Recovered) {
        let r = sh_renderer(&sh);
        let clock = (sh.mode, sh.declared_at);
        let m = crate::exec::rpo::measure(&*sh.executor, &r, &sh.model, id, clock, &kill);
        if let Some(ev) = m.await {
            g.event(ev);
        }
    }
    let outcome = match outcome {
        Outcome::Failed { error, output } if sh.rollback => {
            rollback(&sh, id, &g, &kill).await;
            Outcome::Failed { error, output }
        }
        o => o,
    };
    g.done(outcome);
}

async fn drive_inner(
    sh: &Arc<Shared>,
    id: SvcId,
    g: &DoneGuard,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Outcome {
    let svc = &sh.model.services[id];
    let name = svc.name.as_str();
    let Some(pb) = &svc.playbook else {
        if sh.executor.is_simulated() {
            tokio::time::sleep(sh.model.defaults.estimate).await;
            return Outcome::Recovered;
        }
        return Outcome::Failed {
            error: "no playbook".into(),
            output: String::new(),
        };
    };
    let renderer = sh_renderer(sh);
    let done = sh.done_steps.get(name);
    for step in &pb.steps {
        if !step.runs_in(sh.mode) {
            g.event(Event::StepSkipped {
                service: name.into(),
                step: step.name.clone(),
                reason: format!("runs in {} mode only", other(sh.mode)),
            });
            continue;
        }
        // Done earlier in this run (succeeded, or skipped by the operator): its outcome is
        // journaled already; a new record would only overwrite why it was skipped.
        if done.is_some_and(|d| d.contains(&step.name)) {
            continue;
        }
        if stop.is_cancelled() {
            return Outcome::Interrupted;
        }
        match run_step(sh, &renderer, id, g, step, &step.name, stop, kill).await {
            StepEnd::Ok => {}
            StepEnd::Interrupted => return Outcome::Interrupted,
            StepEnd::Failed { .. } if step.optional => {}
            StepEnd::Failed { error, output } => {
                return Outcome::Failed {
                    error: format!("step \"{}\" failed: {error}", step.name),
                    output,
                };
            }
        }
    }
    if pb.checks.is_empty() {
        return Outcome::Recovered;
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in pb.checks.iter().enumerate() {
        let check = match renderer.render_check(id, c) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("check \"{}\": {e}", c.name),
                    output: String::new(),
                };
            }
        };
        let (sh, stop, kill) = (sh.clone(), stop.clone(), kill.clone());
        let tx = g.tx.clone();
        set.spawn(async move {
            let r = poll_check(&sh, &check, &stop, &kill).await;
            if let Some(tx) = tx {
                let service = sh.model.name(id).to_string();
                let ev = match &r {
                    Ok(polls) => Some(Event::CheckPassed {
                        service,
                        check: check.name.clone(),
                        polls: *polls,
                    }),
                    Err(Some(e)) => Some(Event::CheckFailed {
                        service,
                        check: check.name.clone(),
                        error: e.clone(),
                    }),
                    Err(None) => None,
                };
                if let Some(ev) = ev {
                    let _ = tx.send(Msg::Event(ev));
                }
            }
            (i, r)
        });
    }
    let mut result = Outcome::Recovered;
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(_))) => {}
            Ok((i, Err(Some(e)))) => {
                if matches!(result, Outcome::Recovered) {
                    result = Outcome::Failed {
                        error: format!("check \"{}\" failed: {e}", pb.checks[i].name),
                        output: String::new(),
                    };
                    // One failed check decides: stop polling the others.
                    set.abort_all();
                }
            }
            Ok((_, Err(None))) => result = Outcome::Interrupted,
            Err(e) if e.is_cancelled() => {}
            Err(_) => {
                result = Outcome::Failed {
                    error: "internal error in a check".into(),
                    output: String::new(),
                }
            }
        }
    }
    result
}

pub(super) fn other(m: Mode) -> Mode {
    match m {
        Mode::Drill => Mode::Failover,
        Mode::Failover => Mode::Drill,
    }
}

/// Polls `check` every `interval` until `healthy_after` consecutive successes (Ok(polls)), or
/// its timeout (Err(Some(last error))), or an interrupt (Err(None)).
async fn poll_check(
    sh: &Shared,
    check: &Check,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Result<u32, Option<String>> {
    let deadline = after(check.timeout);
    let need = check.healthy_after.max(1);
    let (mut polls, mut streak) = (0u32, 0u32);
    let mut last_err = String::from("no probe completed");
    loop {
        polls += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let t = left.min(Check::PROBE_TIMEOUT).max(Duration::from_millis(1));
        let a = sh.executor.probe(check, t, kill).await;
        if a.killed {
            return Err(None);
        }
        if a.ok {
            streak += 1;
            if streak >= need {
                return Ok(polls);
            }
        } else {
            streak = 0;
            last_err = a.error;
            tracing::debug!(check = %check.name, error = %sh.masker.mask(&last_err), "probe failed");
        }
        if after(check.interval) > deadline {
            return Err(Some(format!(
                "not healthy after {} ({polls} polls; last: {last_err})",
                crate::model::fmt_duration(check.timeout)
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(check.interval) => {}
            _ = stop.cancelled() => return Err(None),
        }
    }
}

/// Runs one step with retries and exponential backoff; emits its events under `label`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_step(
    sh: &Shared,
    renderer: &Renderer<'_>,
    id: SvcId,
    g: &DoneGuard,
    step: &Step,
    label: &str,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> StepEnd {
    let service = sh.model.name(id);
    let step = match renderer.render_step(id, step) {
        Ok(s) => s,
        Err(e) => {
            let e = e.to_string();
            g.event(Event::StepFailed {
                service: service.into(),
                step: label.into(),
                attempts: 0,
                error: e.clone(),
                output: String::new(),
                optional: step.optional,
            });
            return StepEnd::Failed {
                error: e,
                output: String::new(),
            };
        }
    };
    let started = Instant::now();
    if let StepKind::Manual(prompt) = &step.kind {
        return manual(sh, service, g, &step, label, prompt, started, stop).await;
    }
    let attempts = step.retries + 1;
    let mut backoff = crate::backoff::Backoff::new(step.retry_delay);
    for attempt in 1..=attempts {
        // A step that may run twice needs its start only written (see `Msg::EventDurable`);
        // one marked `idempotent = false` waits for the fsync, so that `resume` always knows
        // to ask before it runs again.
        let start = Event::StepStarted {
            service: service.into(),
            step: label.into(),
            attempt,
            action: Some(template::describe(&step, &sh.masker)),
        };
        let durable = g.event_durable(start, step.idempotent).await;
        if !durable {
            // Not on disk: running the step now could leave a side effect no journal knows.
            return StepEnd::Interrupted;
        }
        let call = crate::exec::executor::Call {
            service,
            label,
            stop,
            kill,
        };
        let a = sh
            .executor
            .step(&step, step.effective_timeout(), call)
            .await;
        if a.ok {
            g.event(Event::StepSucceeded {
                service: service.into(),
                step: label.into(),
                attempts: attempt,
                duration_s: started.elapsed().as_secs_f64(),
            });
            return StepEnd::Ok;
        }
        if a.killed {
            return StepEnd::Interrupted;
        }
        let output = last_lines(&a.output, FAILURE_LINES);
        if attempt == attempts {
            g.event(Event::StepFailed {
                service: service.into(),
                step: label.into(),
                attempts: attempt,
                error: a.error.clone(),
                output: output.clone(),
                optional: step.optional,
            });
            return StepEnd::Failed {
                error: a.error,
                output,
            };
        }
        g.event(Event::StepAttemptFailed {
            service: service.into(),
            step: label.into(),
            attempt,
            error: a.error,
            output,
        });
        // Backoff is cancellable: after an interrupt no new attempt starts.
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.cancelled() => return StepEnd::Interrupted,
        }
    }
    StepEnd::Interrupted
}

#[allow(clippy::too_many_arguments)]
async fn manual(
    sh: &Shared,
    service: &str,
    g: &DoneGuard,
    step: &Step,
    label: &str,
    prompt: &str,
    started: Instant,
    stop: &CancellationToken,
) -> StepEnd {
    g.event(Event::StepStarted {
        service: service.into(),
        step: label.into(),
        attempt: 1,
        action: Some(template::describe_step(&step.kind, &sh.masker)),
    });
    g.event(Event::ManualWaiting {
        service: service.into(),
        step: label.into(),
        prompt: prompt.into(),
    });
    let by = if sh.executor.is_simulated() {
        // Dry-run: the operator's answer takes the step's planning estimate.
        let secs = plan::step_estimate(step).secs;
        tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
        "dry-run".to_string()
    } else {
        loop {
            match sh.approvals.check(service, label, prompt) {
                Approval::Approved(by) => break by,
                Approval::Rejected(by) => {
                    let error = format!("rejected by {by}");
                    g.event(Event::StepFailed {
                        service: service.into(),
                        step: label.into(),
                        attempts: 1,
                        error: error.clone(),
                        output: String::new(),
                        optional: step.optional,
                    });
                    return StepEnd::Failed {
                        error,
                        output: String::new(),
                    };
                }
                Approval::Pending => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(sh.approval_poll) => {}
                _ = stop.cancelled() => return StepEnd::Interrupted,
            }
        }
    };
    g.event(Event::ManualApproved {
        service: service.into(),
        step: label.into(),
        by,
    });
    g.event(Event::StepSucceeded {
        service: service.into(),
        step: label.into(),
        attempts: 1,
        duration_s: started.elapsed().as_secs_f64(),
    });
    StepEnd::Ok
}

/// `--rollback`: a failed service's rollback steps, in order, stopping at the first failure.
/// Not interruptible by the first interrupt: leaving a half-rolled-back service is worse.
async fn rollback(sh: &Arc<Shared>, id: SvcId, g: &DoneGuard, kill: &CancellationToken) {
    let Some(pb) = &sh.model.services[id].playbook else {
        return;
    };
    if pb.rollback.is_empty() {
        return;
    }
    g.event(Event::RollbackStarted {
        service: sh.model.name(id).into(),
    });
    let never = CancellationToken::new();
    let renderer = sh_renderer(sh);
    for step in &pb.rollback {
        if !step.runs_in(sh.mode) {
            continue;
        }
        let label = format!("rollback/{}", step.name);
        match run_step(sh, &renderer, id, g, step, &label, &never, kill).await {
            StepEnd::Ok => {}
            _ if step.optional => {}
            _ => return,
        }
    }
}

/// `now + d`, saturating: an absurd duration means "never", not a panic.
pub(super) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
