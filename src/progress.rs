//! Progress display: a subscriber of the run's event stream.
//!
//! - `Bars`: indicatif multi-progress on a TTY — an overall bar plus one line per running service
//!   with its current step and elapsed time; notable events are printed above the bars.
//! - `Lines`: plain timestamped lines (not a TTY, `--no-progress`, and dry-run where the time is
//!   virtual and shown relative to the RTO clock start: `T+00:01:30`).
//!
//! Records reaching a subscriber are already masked by the bus.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Record, Subscriber};
use crate::report::fmt::{fmt_clock as fmt_secs, fmt_secs_fit};
use crate::util::last_lines;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// indicatif bars (only sensible on a TTY).
    Bars,
    /// Plain timestamped lines.
    Lines,
    /// Nothing but the final result.
    Quiet,
}

impl Display {
    /// Bars on a TTY unless `--no-progress`; nothing with `-q`.
    pub fn pick(quiet: bool, no_progress: bool) -> Display {
        use std::io::IsTerminal;
        if quiet {
            Display::Quiet
        } else if no_progress || !std::io::stderr().is_terminal() {
            Display::Lines
        } else {
            Display::Bars
        }
    }
}

/// Prints one line for the operator (above progress bars when there are some).
pub type Printer = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The progress subscriber for `display`, and, for bars, the printer that writes above them
/// (for terminal prompts). A dry-run's action list is its product: it goes to stdout, with
/// times relative to the RTO clock (virtual time).
pub fn subscriber(
    display: Display,
    rto: HashMap<String, f64>,
    dry_run: bool,
) -> (Option<Box<dyn Subscriber>>, Option<Printer>) {
    match (display, dry_run) {
        (Display::Quiet, _) => (None, None),
        (_, true) => (
            Some(Box::new(Lines::new(std::io::stdout(), rto, true))),
            None,
        ),
        (Display::Lines, false) => (
            Some(Box::new(Lines::new(std::io::stderr(), rto, false))),
            None,
        ),
        (Display::Bars, false) => {
            let bars = Bars::new(rto);
            let p = bars.printer();
            (Some(Box::new(bars)), Some(p))
        }
    }
}

fn indent(text: &str, lines: usize) -> String {
    let t = last_lines(text, lines);
    if t.is_empty() {
        return String::new();
    }
    t.lines()
        .map(|l| format!("\n    | {l}"))
        .collect::<String>()
}

/// The human sentence for a record, or `None` for records not worth a line.
pub(crate) fn describe(ev: &Event, rto: &HashMap<String, f64>, dry_run: bool) -> Option<String> {
    Some(match ev {
        Event::RunStarted {
            run_id,
            mode,
            services,
            ..
        } => {
            let what = if dry_run { "dry-run of" } else { "run" };
            format!("{what} {run_id} ({mode}): {} services", services.len())
        }
        Event::RunResumed { .. } => "run resumed".into(),
        Event::ServiceStarted { service } => format!("{service}: started"),
        Event::StepStarted {
            service,
            step,
            attempt,
            action,
        } => {
            let a = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let act = action
                .as_deref()
                .map(|a| format!(": {a}"))
                .unwrap_or_default();
            format!("{service}: step \"{step}\"{a}{act}")
        }
        Event::StepAttemptFailed {
            service,
            step,
            attempt,
            error,
            output,
        } => format!(
            "{service}: step \"{step}\" attempt {attempt} failed: {error}; retrying{}",
            indent(output, 5)
        ),
        Event::StepSucceeded {
            service,
            step,
            duration_s,
            ..
        } => {
            if dry_run {
                return None;
            }
            format!(
                "{service}: step \"{step}\" ok ({})",
                fmt_secs_fit(*duration_s)
            )
        }
        Event::StepFailed {
            service,
            step,
            attempts,
            error,
            output,
            optional,
        } => {
            let what = if *optional {
                "failed (optional, going on)"
            } else {
                "FAILED"
            };
            format!(
                "{service}: step \"{step}\" {what} after {attempts} attempt(s): {error}{}",
                indent(output, 10)
            )
        }
        Event::StepSkipped {
            service,
            step,
            reason,
        } => format!("{service}: step \"{step}\" skipped: {reason}"),
        Event::ManualWaiting {
            service,
            step,
            prompt,
        } => format!("{service}: manual step \"{step}\" waits for approval: {prompt}"),
        Event::ManualApproved {
            service, step, by, ..
        } => format!("{service}: manual step \"{step}\" approved by {by}"),
        Event::CheckPassed {
            service,
            check,
            polls,
        } => format!("{service}: check \"{check}\" passed ({polls} polls)"),
        Event::CheckFailed {
            service,
            check,
            error,
        } => format!("{service}: check \"{check}\" FAILED: {error}"),
        Event::ServiceRecovered {
            service,
            recovered_s,
        } => {
            let r = rto.get(service).copied().unwrap_or(f64::INFINITY);
            let verdict = if *recovered_s <= r {
                "RTO met"
            } else {
                "RTO BREACHED"
            };
            format!(
                "{service}: RECOVERED at {} (RTO {}, {verdict})",
                fmt_secs(*recovered_s),
                fmt_secs(r)
            )
        }
        Event::ServiceFailed { service, error } => format!("{service}: FAILED: {error}"),
        Event::ServiceBlocked { service, because } => {
            format!("{service}: BLOCKED (depends on {because})")
        }
        Event::RollbackStarted { service } => format!("{service}: rolling back"),
        Event::RpoMeasured {
            service,
            newest,
            window_s,
            rpo_s,
            ..
        } => format!(
            "{service}: newest write on the recovered copy {newest}; data-loss window {}",
            crate::events::rpo_verdict(*window_s, *rpo_s)
        ),
        Event::RpoProbeFailed {
            service,
            error,
            output,
        } => format!(
            "{service}: RPO not measured: the rpo_probe failed: {error}{}",
            indent(output, 5)
        ),
        Event::RtoBreached { service, rto_s } => {
            format!(
                "{service}: RTO {} BREACHED (not recovered yet)",
                fmt_secs(*rto_s)
            )
        }
        Event::RunInterrupted { reason } => format!("run interrupted: {reason}"),
        Event::RunAbandoned { .. } => "run abandoned".into(),
        Event::ServiceSkipped { service, reason } => format!("{service}: skipped: {reason}"),
        Event::CleanupStarted { services, .. } => {
            format!(
                "cleanup: tearing down what the drill started ({} services, dependents first)",
                services.len()
            )
        }
        Event::ServiceCleanedUp { service, failed } => {
            if failed.is_empty() {
                format!("{service}: cleaned up")
            } else {
                format!(
                    "{service}: cleanup FAILED ({}): check what still runs",
                    failed.join(", ")
                )
            }
        }
        Event::CleanupFinished { steps, failures } => format!(
            "cleanup finished: {} of {steps} steps succeeded",
            steps - failures.len().min(*steps)
        ),
        Event::RunFinished {
            outcome,
            recovered,
            failed,
            blocked,
        } => format!(
            "run finished: {outcome} ({recovered} recovered, {failed} failed, {blocked} blocked)"
        ),
    })
}

/// How to approve from another terminal.
fn approve_hint(run_id: &str, service: &str) -> String {
    if run_id.is_empty() {
        return String::new();
    }
    format!(" (or from another terminal: meeseeks approve {run_id} {service})")
}

/// Plain timestamped lines.
pub struct Lines<W: Write + Send> {
    out: W,
    rto: HashMap<String, f64>,
    /// Show times relative to the RTO clock start (dry-run: virtual time).
    dry_run: bool,
    declared_at: Option<jiff::Timestamp>,
    run_id: String,
}

impl<W: Write + Send> Lines<W> {
    /// `rto`: RTO seconds per service name (to say "met" or "breached").
    pub fn new(out: W, rto: HashMap<String, f64>, dry_run: bool) -> Self {
        Lines {
            out,
            rto,
            dry_run,
            declared_at: None,
            run_id: String::new(),
        }
    }
}

impl<W: Write + Send> Subscriber for Lines<W> {
    fn on_record(&mut self, rec: &Record) {
        if let Event::RunStarted {
            declared_at,
            run_id,
            ..
        } = &rec.event
        {
            self.declared_at = Some(*declared_at);
            self.run_id = run_id.clone();
        }
        let Some(mut line) = describe(&rec.event, &self.rto, self.dry_run) else {
            return;
        };
        if let (Event::ManualWaiting { service, .. }, false) = (&rec.event, self.dry_run) {
            line.push_str(&approve_hint(&self.run_id, service));
        }
        let when = match (self.dry_run, self.declared_at) {
            (true, Some(d)) => format!("T+{}", fmt_secs(rec.ts.duration_since(d).as_secs_f64())),
            _ => rec.ts.strftime("%H:%M:%S").to_string(),
        };
        let _ = writeln!(self.out, "{when} {line}");
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// indicatif bars on a terminal.
pub struct Bars {
    mp: MultiProgress,
    overall: ProgressBar,
    running: HashMap<String, ProgressBar>,
    rto: HashMap<String, f64>,
    style: ProgressStyle,
    run_id: String,
}

impl Bars {
    pub fn new(rto: HashMap<String, f64>) -> Bars {
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = mp.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} services {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        let style =
            ProgressStyle::with_template("  {spinner} {prefix:24!} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Bars {
            mp,
            overall,
            running: HashMap::new(),
            rto,
            style,
            run_id: String::new(),
        }
    }

    /// Prints a line above the bars (for the TTY approval prompt).
    pub fn printer(&self) -> Printer {
        let mp = self.mp.clone();
        std::sync::Arc::new(move |line: &str| {
            let _ = mp.println(line);
        })
    }

    fn done(&mut self, service: &str) {
        if let Some(pb) = self.running.remove(service) {
            pb.finish_and_clear();
            self.mp.remove(&pb);
        }
        self.overall.inc(1);
    }
}

impl Subscriber for Bars {
    fn on_record(&mut self, rec: &Record) {
        let ev = &rec.event;
        match ev {
            Event::RunStarted {
                services, run_id, ..
            } => {
                self.overall.set_length(services.len() as u64);
                self.run_id = run_id.clone();
            }
            Event::ServiceStarted { service } => {
                let pb = self.mp.add(ProgressBar::new_spinner());
                pb.set_style(self.style.clone());
                pb.set_prefix(service.clone());
                pb.set_message("starting");
                pb.enable_steady_tick(Duration::from_millis(120));
                self.running.insert(service.clone(), pb);
            }
            Event::StepStarted { service, step, .. } => {
                if let Some(pb) = self.running.get(service) {
                    pb.set_message(step.clone());
                }
            }
            Event::CheckPassed { .. } | Event::CheckFailed { .. } => {}
            Event::ManualWaiting { service, .. } => {
                if let Some(pb) = self.running.get(service) {
                    pb.set_message("waiting for approval");
                }
            }
            _ => {}
        }
        if matches!(
            ev,
            Event::StepSucceeded { .. }
                | Event::StepStarted { .. }
                | Event::ServiceStarted { .. }
                | Event::CheckPassed { .. }
        ) {
            // Shown by the bars themselves.
        } else if let Some(mut line) = describe(ev, &self.rto, false) {
            if let Event::ManualWaiting { service, .. } = ev {
                line.push_str(&approve_hint(&self.run_id, service));
            }
            let _ = self
                .mp
                .println(format!("{} {line}", rec.ts.strftime("%H:%M:%S")));
        }
        match ev {
            Event::ServiceRecovered { service, .. } | Event::ServiceFailed { service, .. } => {
                self.done(service)
            }
            Event::ServiceBlocked { .. } => self.overall.inc(1),
            Event::RunFinished { .. } | Event::RunInterrupted { .. } => {
                self.overall.finish_and_clear();
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        for (_, pb) in self.running.drain() {
            pb.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.mp.clear();
    }
}
