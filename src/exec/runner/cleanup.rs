//! A drill's cleanup: the `cleanup` steps of every service the drill started, dependents first,
//! journaled like any other work (`cleanup.started`, the steps as `cleanup/<name>`,
//! `service.cleaned_up`, `cleanup.finished`) so that `runs`, `status` and `report` tell whether
//! what a drill brought up is still running, and `resume` knows what was torn down.
//!
//! A cleanup step whose `step.succeeded` is journaled (since the service was last recovered)
//! never runs again, and a service cleaned up without failures is not cleaned up twice: a
//! cleanup interrupted halfway continues where it stopped.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::driver::{DoneGuard, StepEnd, run_step, sh_renderer};
use super::{Msg, Shared};
use crate::events::Event;
use crate::model::{Model, SvcId};
use crate::runstate::{RunState, StepStatus};

/// What still needs cleaning up in `state`: services the run started that were not cleaned
/// up without failures yet, dependents first; and per service, its cleanup steps that already
/// succeeded (skipped).
pub fn pending_cleanup(model: &Model, state: &RunState) -> Vec<(SvcId, Vec<String>)> {
    let scope = crate::plan::Scope::all(model);
    crate::plan::topo_order(model, &scope)
        .into_iter()
        .rev()
        .filter_map(|id| {
            let s = state.service(model.name(id))?;
            if s.starts == 0 || (s.cleaned_up && s.cleanup_failed.is_empty()) {
                return None;
            }
            let done = s
                .steps
                .iter()
                .filter(|st| st.name.starts_with("cleanup/") && st.status == StepStatus::Succeeded)
                .map(|st| st.name.clone())
                .collect();
            Some((id, done))
        })
        .collect()
}

/// Runs the cleanup steps of `todo` in order (each step once with its retries; a failure is
/// recorded and cleanup goes on: leaving the rest running would be worse). Reports
/// `Msg::CleanupDone` at the end.
pub(super) async fn cleanup_all(
    sh: Arc<Shared>,
    todo: Vec<(SvcId, Vec<String>)>,
    tx: mpsc::UnboundedSender<Msg>,
    kill: CancellationToken,
    closing: bool,
) {
    let renderer = sh_renderer(&sh);
    let never = CancellationToken::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    let _ = tx.send(Msg::Event(Event::CleanupStarted {
        closing,
        services: todo
            .iter()
            .map(|(id, _)| sh.model.name(*id).to_string())
            .collect(),
    }));
    let mut interrupted = false;
    for (id, done) in todo {
        let name = sh.model.name(id).to_string();
        let mut failed = Vec::new();
        if let Some(pb) = &sh.model.services[id].playbook {
            let mut g = DoneGuard {
                tx: Some(tx.clone()),
                id,
            };
            for step in pb.cleanup.iter().filter(|s| s.runs_in(sh.mode)) {
                let label = format!("cleanup/{}", step.name);
                if done.contains(&label) {
                    continue;
                }
                ran += 1;
                match run_step(&sh, &renderer, id, &g, step, &label, &never, &kill).await {
                    StepEnd::Ok => {}
                    StepEnd::Failed { error, .. } => {
                        let msg = format!("{name}/{}: {}", step.name, sh.masker.mask(&error));
                        failed.push(step.name.clone());
                        failures.push(msg);
                    }
                    StepEnd::Interrupted => {
                        // Killed by the operator, or the journal failed: what is not journaled
                        // as cleaned up stays pending for the next `meeseeks cleanup`.
                        interrupted = true;
                        break;
                    }
                }
            }
            g.tx = None;
        }
        if interrupted {
            break;
        }
        let _ = tx.send(Msg::Event(Event::ServiceCleanedUp {
            service: name,
            failed,
        }));
    }
    if !interrupted {
        let _ = tx.send(Msg::Event(Event::CleanupFinished {
            steps: ran,
            failures,
        }));
    }
    let _ = tx.send(Msg::CleanupDone);
}
