//! `/metrics`: the Prometheus text exposition format (version 0.0.4), computed at each scrape
//! from the runs' folded states. The format is a handful of lines per family; what needs care
//! (label escaping, `HELP`/`TYPE` once per family, integer and float values) is here.
//!
//! Series are exported for the latest run and every unfinished one, labelled by `run_id`, so a
//! dashboard follows the current failover without old runs piling up series.

use std::fmt::Write as _;

use crate::preflight::Report as Preflight;
use crate::runstate::{RunState, ServiceStatus};

use super::view;

/// One run as the scrape sees it.
pub struct RunMetrics<'a> {
    pub state: &'a RunState,
    pub live: bool,
    pub counts: view::Counts,
    pub steps_failed: usize,
}

const STATUSES: [ServiceStatus; 8] = [
    ServiceStatus::Pending,
    ServiceStatus::Running,
    ServiceStatus::Verifying,
    ServiceStatus::Waiting,
    ServiceStatus::Recovered,
    ServiceStatus::Failed,
    ServiceStatus::Blocked,
    ServiceStatus::Skipped,
];

/// Label value escaping: backslash, double quote and newline (exposition format spec).
fn label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        let _ = if value.fract() == 0.0 && value.abs() < 1e15 {
            writeln!(self.out, " {}", value as i64)
        } else {
            writeln!(self.out, " {value:.3}")
        };
    }
}

/// The whole exposition.
pub fn render(runs: &[RunMetrics], sse_clients: usize, errors: usize) -> String {
    let mut o = String::new();
    let mut f = Family::start(
        &mut o,
        "meeseeks_run_info",
        "gauge",
        "Runs exported (the latest and every unfinished one); always 1.",
    );
    for r in runs {
        let st = r.state;
        f.sample(
            "meeseeks_run_info",
            &[
                ("run_id", &st.run_id),
                ("mode", st.mode.map(|m| m.as_str()).unwrap_or("")),
                ("state", view::shown_state(st, r.live)),
            ],
            1.0,
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_run_live",
        "gauge",
        "1 while a live process holds the run's lock.",
    );
    for r in runs {
        f.sample(
            "meeseeks_run_live",
            &[("run_id", &r.state.run_id)],
            f64::from(u8::from(r.live)),
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_run_elapsed_seconds",
        "gauge",
        "Seconds since the RTO clock started (frozen once the run is over).",
    );
    for r in runs {
        f.sample(
            "meeseeks_run_elapsed_seconds",
            &[("run_id", &r.state.run_id)],
            view::now_s(r.state),
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_services",
        "gauge",
        "Services of the run in each state.",
    );
    for r in runs {
        for s in STATUSES {
            f.sample(
                "meeseeks_services",
                &[("run_id", &r.state.run_id), ("state", s.as_str())],
                r.counts.get(s) as f64,
            );
        }
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_service_rto_seconds",
        "gauge",
        "Each service's RTO.",
    );
    for r in runs {
        for s in &r.state.services {
            if let Some(rto) = s.rto_s {
                f.sample(
                    "meeseeks_service_rto_seconds",
                    &[("run_id", &r.state.run_id), ("service", &s.name)],
                    rto,
                );
            }
        }
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_service_rto_remaining_seconds",
        "gauge",
        "Seconds to each service's RTO: RTO minus the time so far, or minus its recovery time once recovered (negative: breached).",
    );
    for r in runs {
        let now = view::now_s(r.state);
        for s in &r.state.services {
            let Some(rto) = s.rto_s else { continue };
            let left = match s.status {
                ServiceStatus::Skipped => continue,
                ServiceStatus::Recovered => rto - s.recovered_s.unwrap_or(now),
                _ => rto - now,
            };
            let tier = s
                .planned
                .as_ref()
                .map(|p| p.tier.to_string())
                .unwrap_or_default();
            f.sample(
                "meeseeks_service_rto_remaining_seconds",
                &[
                    ("run_id", &r.state.run_id),
                    ("service", &s.name),
                    ("tier", &tier),
                ],
                left,
            );
        }
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_rto_breaches_total",
        "counter",
        "RTO breaches journaled (rto.breached) in the run.",
    );
    for r in runs {
        f.sample(
            "meeseeks_rto_breaches_total",
            &[("run_id", &r.state.run_id)],
            r.state.breaches.len() as f64,
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_steps_failed_total",
        "counter",
        "Steps that failed (step.failed, after their retries) in the run.",
    );
    for r in runs {
        f.sample(
            "meeseeks_steps_failed_total",
            &[("run_id", &r.state.run_id)],
            r.steps_failed as f64,
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_approvals_waiting",
        "gauge",
        "Manual steps waiting for approval.",
    );
    for r in runs {
        f.sample(
            "meeseeks_approvals_waiting",
            &[("run_id", &r.state.run_id)],
            r.counts.get(ServiceStatus::Waiting) as f64,
        );
    }
    let mut f = Family::start(
        &mut o,
        "meeseeks_serve_sse_clients",
        "gauge",
        "Live-page event streams connected to this server.",
    );
    f.sample("meeseeks_serve_sse_clients", &[], sse_clients as f64);
    let mut f = Family::start(
        &mut o,
        "meeseeks_serve_unreadable_runs",
        "gauge",
        "Runs whose journal could not be read at this scrape.",
    );
    f.sample("meeseeks_serve_unreadable_runs", &[], errors as f64);
    o
}

/// The last recorded `meeseeks preflight` evaluation (`--every` records one per interval), so
/// that the dashboard that charts a run also alerts, before any disaster, on a failover that
/// would not work. Nothing is exported while the store holds no evaluation.
pub fn render_preflight(o: &mut String, p: Option<&Preflight>) {
    let Some(p) = p else { return };
    let mut f = Family::start(
        o,
        "meeseeks_preflight_ready",
        "gauge",
        "1 when every service was ready at the last recorded preflight.",
    );
    f.sample(
        "meeseeks_preflight_ready",
        &[],
        f64::from(u8::from(p.ready)),
    );
    let mut f = Family::start(
        o,
        "meeseeks_preflight_evaluated_timestamp_seconds",
        "gauge",
        "When the last recorded preflight ran (Unix seconds): alert when it is too old.",
    );
    f.sample(
        "meeseeks_preflight_evaluated_timestamp_seconds",
        &[],
        p.evaluated_at.as_millisecond() as f64 / 1000.0,
    );
    let mut f = Family::start(
        o,
        "meeseeks_preflight_services",
        "gauge",
        "Services per status at the last recorded preflight.",
    );
    for (status, n) in [
        ("ready", p.counts.ready),
        ("not_ready", p.counts.not_ready),
        ("unknown", p.counts.unknown),
    ] {
        f.sample(
            "meeseeks_preflight_services",
            &[("status", status)],
            n as f64,
        );
    }
    let mut f = Family::start(
        o,
        "meeseeks_preflight_service_ready",
        "gauge",
        "Per service at the last recorded preflight: 1 ready, 0 not ready, -1 unknown.",
    );
    for s in &p.services {
        let v = match s.status {
            crate::preflight::Status::Ready => 1.0,
            crate::preflight::Status::NotReady => 0.0,
            crate::preflight::Status::Unknown => -1.0,
        };
        f.sample(
            "meeseeks_preflight_service_ready",
            &[("service", &s.name)],
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn empty_exposition_has_every_family_once() {
        let text = render(&[], 2, 0);
        for name in [
            "meeseeks_run_info",
            "meeseeks_services",
            "meeseeks_service_rto_remaining_seconds",
            "meeseeks_rto_breaches_total",
            "meeseeks_steps_failed_total",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
        assert!(text.contains("\nmeeseeks_serve_sse_clients 2\n"), "{text}");
    }
}
