//! Measured RPO (SPEC §10, `[rpo_probe]`): how much data a recovery lost.
//!
//! A stateful service's playbook may declare a read-only probe printing the newest write the
//! recovered copy holds (RFC 3339, its last non-empty line of output). The data-loss window
//! runs from that write to the disaster; it is journaled as `rpo.measured` beside the
//! declared `rpo`:
//! - in a failover, the disaster is the RTO clock start (`--declared-at`, else the run's
//!   start): declare the moment it happened, or the window also counts the time until then;
//! - in a drill, production keeps writing and the DR copy replicates until it is promoted:
//!   the window ends when the probe runs, an upper bound of the replication lag at the
//!   promotion (it also counts the checks' time). Overstating a loss is the safe side.
//!
//! When: once, after the service's checks pass and before it counts as recovered.
//! - A promotion first replays everything the replica had received (WAL, relay log): only then
//!   does the probe see every write the DR site kept. Probed before the first step, a standby
//!   whose replay lags what it received would overstate the loss.
//! - In a drill, the DR copy a playbook promotes only exists once its steps have run.
//! - Its dependents (the applications) start only after it is recovered, so none of their new
//!   writes can pass for replicated data.
//!
//! The probe's time (bounded by its `timeout`) counts in the service's recovery time. A probe
//! that fails or prints no timestamp journals `rpo.probe_failed`; the service stays recovered.
//! Dry-runs execute nothing, so they measure nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::executor::Executor;
use super::process::last_lines;
use crate::events::Event;
use crate::model::{Check, Mode, Model, SvcId};
use crate::template::Renderer;

/// Output lines kept with a failed probe.
const OUTPUT_LINES: usize = 10;

/// Runs service `id`'s `[rpo_probe]`, if it has one; the event to journal, or `None` (no probe,
/// a dry-run, or interrupted).
pub async fn measure(
    executor: &dyn Executor,
    renderer: &Renderer<'_>,
    model: &Model,
    id: SvcId,
    (mode, declared_at): (Mode, jiff::Timestamp),
    kill: &CancellationToken,
) -> Option<Event> {
    let svc = &model.services[id];
    let probe = svc.playbook.as_ref()?.rpo_probe.as_ref()?;
    if executor.is_simulated() {
        return None;
    }
    let service = svc.name.clone();
    let failed = |error: String, output: &str| Event::RpoProbeFailed {
        service: service.clone(),
        error,
        output: last_lines(output, OUTPUT_LINES),
    };
    let check = Check {
        name: "rpo_probe".into(),
        kind: probe.kind.clone(),
        interval: Duration::ZERO,
        timeout: probe.timeout,
        healthy_after: 1,
        preflight: true,
        line: probe.line,
    };
    let check = match renderer.render_check(id, &check) {
        Ok(c) => c,
        Err(e) => return Some(failed(e.to_string(), "")),
    };
    let started = jiff::Timestamp::now();
    let a = executor.probe(&check, probe.timeout, kill).await;
    if a.killed {
        return None;
    }
    if !a.ok {
        return Some(failed(a.error, &a.output));
    }
    let newest = match newest_write(&a.output) {
        Ok(t) => t,
        Err(e) => return Some(failed(e, &a.output)),
    };
    let until = match mode {
        Mode::Failover => declared_at,
        Mode::Drill => started,
    };
    Some(Event::RpoMeasured {
        service,
        newest,
        until,
        window_s: until.duration_since(newest).as_secs_f64(),
        rpo_s: svc.rpo.map(|d| d.as_secs_f64()),
    })
}

/// The timestamp on the probe's last non-empty line.
fn newest_write(output: &str) -> Result<jiff::Timestamp, String> {
    let Some(line) = output.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Err("the probe printed nothing (expected the newest write, RFC 3339)".into());
    };
    line.parse()
        .map_err(|e| format!("the probe's last line {line:?} is not an RFC 3339 timestamp ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_non_empty_line_is_the_timestamp() {
        let t = newest_write("NOTICE: something\n2026-11-30T14:48:32.403309Z\n\n").unwrap();
        assert_eq!(t.to_string(), "2026-11-30T14:48:32.403309Z");
        let t = newest_write("2026-11-30T15:48:32+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-30T14:48:32Z");
        let e = newest_write("  \n").unwrap_err();
        assert!(e.contains("printed nothing"), "{e}");
        let e = newest_write("(nil)\n").unwrap_err();
        assert!(e.contains("\"(nil)\" is not an RFC 3339 timestamp"), "{e}");
    }
}
