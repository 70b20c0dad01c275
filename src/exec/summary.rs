//! The end-of-run summary printed to the operator (and, for a dry-run, the simulated timeline).

use std::fmt::Write;

use super::runner::{RunReport, ServiceStatus};

fn t(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let x = s.max(0.0).round() as u64;
            if x >= 3600 {
                format!("{}:{:02}:{:02}", x / 3600, x / 60 % 60, x % 60)
            } else {
                format!("{:02}:{:02}", x / 60, x % 60)
            }
        }
    }
}

impl RunReport {
    pub fn count(&self, st: ServiceStatus) -> usize {
        self.services.iter().filter(|s| s.status == st).count()
    }

    /// Human summary: a headline, then one row per service (ready time vs RTO, met or
    /// breached), then the last output lines of each failure. Dry-runs add the timeline.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let recovered =
            self.count(ServiceStatus::Recovered) + self.count(ServiceStatus::AlreadyRecovered);
        let verdict = if self.interrupted {
            "INTERRUPTED (resumable)"
        } else if self.exit_code == 0 {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        let kind = if self.dry_run {
            format!("dry-run ({})", self.mode)
        } else {
            self.mode.to_string()
        };
        let _ = writeln!(
            o,
            "{kind} {}: {verdict} — {recovered}/{} recovered, {} failed, {} blocked, {} not started; makespan {}",
            self.run_id,
            self.services.len(),
            self.count(ServiceStatus::Failed),
            self.count(ServiceStatus::Blocked),
            self.count(ServiceStatus::NotStarted) + self.count(ServiceStatus::Interrupted),
            t(Some(self.makespan_s)),
        );
        let w = self
            .services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            o,
            "\n{:w$}  {:>4}  {:<19}  {:>8}  {:>8}  {:>8}  RESULT",
            "SERVICE", "TIER", "STATUS", "STARTED", "READY", "RTO"
        );
        let mut met = 0;
        let mut breached = 0;
        for s in &self.services {
            let verdict = match (s.rto_met, s.ready_s) {
                (Some(true), Some(r)) => {
                    met += 1;
                    format!("met ({} to spare)", t(Some(s.rto_s - r)))
                }
                (Some(false), Some(r)) => {
                    breached += 1;
                    format!("BREACHED by {}", t(Some(r - s.rto_s)))
                }
                (Some(false), None) => {
                    breached += 1;
                    "BREACHED (not recovered)".into()
                }
                _ if s.status == ServiceStatus::AlreadyRecovered => "see earlier attempt".into(),
                _ => "-".into(),
            };
            let _ = writeln!(
                o,
                "{:w$}  {:>4}  {:<19}  {:>8}  {:>8}  {:>8}  {verdict}",
                s.name,
                s.tier,
                s.status.as_str(),
                t(s.started_s),
                t(s.ready_s),
                t(Some(s.rto_s)),
            );
        }
        let _ = writeln!(o, "\nRTO: {met} met, {breached} breached");
        let failures: Vec<_> = self
            .services
            .iter()
            .filter(|s| s.error.is_some() || s.blocked_by.is_some())
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(o, "\nFailures:");
            for s in failures {
                if let Some(e) = &s.error {
                    let _ = writeln!(o, "  {}: {e}", s.name);
                    for l in s.output.lines() {
                        let _ = writeln!(o, "    | {l}");
                    }
                } else if let Some(b) = &s.blocked_by {
                    let _ = writeln!(o, "  {}: blocked by {b}", s.name);
                }
            }
        }
        if self.cleaned_up > 0 {
            let _ = writeln!(
                o,
                "Cleanup: {} of {} steps succeeded",
                self.cleaned_up - self.cleanup_failures.len(),
                self.cleaned_up
            );
        }
        if !self.cleanup_failures.is_empty() {
            let _ = writeln!(o, "\nCleanup failures (check what is still running):");
            for f in &self.cleanup_failures {
                let _ = writeln!(o, "  {f}");
            }
        }
        if self.dry_run {
            o.push_str(&self.timeline());
        }
        o
    }

    /// A text Gantt chart of start → ready per service, scaled to 50 columns.
    pub fn timeline(&self) -> String {
        let mut o = String::from("\nSimulated timeline (from the RTO clock start):\n");
        let span = self.makespan_s.max(1e-9);
        let cols = 50.0;
        let w = self
            .services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        for s in &self.services {
            let (Some(a), Some(b)) = (s.started_s, s.ready_s) else {
                continue;
            };
            let start = ((a / span) * cols).round() as usize;
            let end = (((b / span) * cols).round() as usize).max(start + 1);
            let mut bar = " ".repeat(start);
            bar.push_str(&"#".repeat(end - start));
            let rto_mark = if b > s.rto_s { "  RTO BREACHED" } else { "" };
            let _ = writeln!(
                o,
                "  {:w$} |{bar:<51}| {} → {}{rto_mark}",
                s.name,
                t(Some(a)),
                t(Some(b)),
            );
        }
        o
    }
}
