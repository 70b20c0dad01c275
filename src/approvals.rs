//! Where approvals of manual steps come from, besides the run's store (`meeseeks approve`
//! from another terminal or host, and `serve`'s Approve button, which the store delivers).
//! The runner polls its source about once a second while a service waits; only that service
//! waits.
//!
//! Sources: `AutoApprove` (`--yes`), `TtyApproval` (prompt on the terminal), `NeverApprove`;
//! `Either` combines two (the TTY and the store, whichever answers first).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

pub use crate::events::{Approval, ApprovalSource};

/// `--yes`.
pub struct AutoApprove;

impl ApprovalSource for AutoApprove {
    fn check(&self, _: &str, _: &str, _: &str) -> Approval {
        Approval::Approved("--yes".into())
    }
}

/// Never approves: a run without a TTY and without `--yes` waits for `meeseeks approve`.
pub struct NeverApprove;

impl ApprovalSource for NeverApprove {
    fn check(&self, _: &str, _: &str, _: &str) -> Approval {
        Approval::Pending
    }
}

/// First answer of `a`, else of `b`.
pub struct Either<A, B>(pub A, pub B);

impl<A: ApprovalSource, B: ApprovalSource + ?Sized> ApprovalSource for Either<A, Arc<B>> {
    fn check(&self, service: &str, step: &str, prompt: &str) -> Approval {
        match self.0.check(service, step, prompt) {
            Approval::Pending => self.1.check(service, step, prompt),
            a => a,
        }
    }
}

/// Prompts on the terminal (stderr, answer on stdin). Prompts are asked one at a time, in the
/// order services reach them; each is asked on its own thread so the runner never blocks.
pub use crate::progress::Printer;

#[derive(Default)]
pub struct TtyApproval {
    answers: Arc<Mutex<HashMap<(String, String), Approval>>>,
    /// Serialises prompts: two services must not both read stdin.
    prompt_lock: Arc<Mutex<()>>,
    printer: Option<Printer>,
}

impl TtyApproval {
    pub fn new() -> TtyApproval {
        TtyApproval::default()
    }

    /// Prompts through `printer` (e.g. above indicatif bars) instead of raw stderr.
    pub fn with_printer(printer: Printer) -> TtyApproval {
        TtyApproval {
            printer: Some(printer),
            ..Default::default()
        }
    }
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into())
}

impl ApprovalSource for TtyApproval {
    fn check(&self, service: &str, step: &str, prompt: &str) -> Approval {
        let key = (service.to_string(), step.to_string());
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = answers.get(&key) {
            return a.clone();
        }
        answers.insert(key.clone(), Approval::Pending);
        let answers = self.answers.clone();
        let lock = self.prompt_lock.clone();
        let prompt = prompt.to_string();
        let printer = self.printer.clone();
        std::thread::spawn(move || {
            let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
            let text = format!(
                "[{}] manual step \"{}\": {}\n  approve? [y/N] ",
                key.0, key.1, prompt
            );
            match &printer {
                Some(p) => p(text.trim_end()),
                None => {
                    let mut err = std::io::stderr();
                    let _ = write!(err, "\n{text}");
                    let _ = err.flush();
                }
            }
            let mut line = String::new();
            let answer = match std::io::stdin().lock().read_line(&mut line) {
                Ok(n) if n > 0 && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") => {
                    Approval::Approved(user())
                }
                // EOF: no operator at the terminal any more; keep waiting for `meeseeks approve`.
                Ok(0) | Err(_) => return,
                _ => Approval::Rejected(user()),
            };
            answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, answer);
        });
        Approval::Pending
    }
}
