//! Child processes in their own process group, so that a timeout or an operator's second
//! interrupt kills the whole tree (grandchildren too): SIGTERM to the group, then SIGKILL after a
//! grace period. stdout and stderr go into one bounded ring buffer (the last 64 KiB).

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How much output is kept per attempt.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// What to execute.
#[derive(Debug, Clone)]
pub enum Program<'a> {
    /// `/bin/sh -c LINE`.
    Shell(&'a str),
    /// argv, no shell.
    Argv(&'a [String]),
}

#[derive(Debug)]
pub enum Exit {
    Status(ExitStatus),
    /// The attempt's timeout elapsed; the group was killed.
    TimedOut,
    /// Killed on request (the operator's second interrupt).
    Killed,
    SpawnFailed(String),
}

#[derive(Debug)]
pub struct ProcResult {
    pub exit: Exit,
    /// The last `OUTPUT_LIMIT` bytes of stdout and stderr, interleaved as they arrived.
    pub output: String,
}

impl ProcResult {
    pub fn success(&self) -> bool {
        matches!(&self.exit, Exit::Status(s) if s.success())
    }

    /// A one-line reason for a failed attempt.
    pub fn error(&self, timeout: Duration) -> String {
        match &self.exit {
            Exit::Status(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(s)) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => s.to_string(),
            },
            Exit::TimedOut => format!("timed out after {}", crate::model::fmt_duration(timeout)),
            Exit::Killed => "killed (interrupted)".into(),
            Exit::SpawnFailed(e) => e.clone(),
        }
    }
}

#[derive(Default)]
struct Ring {
    buf: VecDeque<u8>,
}

impl Ring {
    fn push(&mut self, data: &[u8]) {
        if data.len() >= OUTPUT_LIMIT {
            self.buf.clear();
            self.buf.extend(&data[data.len() - OUTPUT_LIMIT..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(OUTPUT_LIMIT);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, ring: Arc<Mutex<Ring>>) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut g) = ring.lock() {
                    g.push(&chunk[..n]);
                }
            }
        }
    }
}

fn killpg(pgid: i32, sig: i32) -> bool {
    // SAFETY: killpg has no memory-safety preconditions; a stale pgid only yields ESRCH.
    unsafe { libc::killpg(pgid, sig) == 0 }
}

/// Runs `program` in a new process group with `cwd` as working directory and `env` added.
/// `kill` kills the group at once (SIGKILL).
pub async fn run(
    program: Program<'_>,
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    grace: Duration,
    kill: &CancellationToken,
) -> ProcResult {
    let mut cmd = match program {
        Program::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
        Program::Argv(argv) => {
            let Some((first, rest)) = argv.split_first() else {
                return ProcResult {
                    exit: Exit::SpawnFailed("empty command".into()),
                    output: String::new(),
                };
            };
            let mut c = Command::new(first);
            c.args(rest);
            c
        }
    };
    cmd.current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own group: signals to the group reach grandchildren, and the terminal's Ctrl-C
        // reaches only us, so the runner decides what happens to running steps.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let what = match program {
                Program::Shell(_) => "/bin/sh".to_string(),
                Program::Argv(a) => a[0].clone(),
            };
            return ProcResult {
                exit: Exit::SpawnFailed(format!("cannot start `{what}`: {e}")),
                output: String::new(),
            };
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    // If this future is dropped mid-attempt (a check aborted because another one failed), the
    // whole group goes, not only the leader `kill_on_drop` would kill.
    let mut guard = GroupGuard(pgid);
    let ring = Arc::new(Mutex::new(Ring::default()));
    let mut readers = tokio::task::JoinSet::new();
    if let Some(o) = child.stdout.take() {
        readers.spawn(pump(o, ring.clone()));
    }
    if let Some(e) = child.stderr.take() {
        readers.spawn(pump(e, ring.clone()));
    }

    let exit = tokio::select! {
        s = child.wait() => match s {
            Ok(s) => Exit::Status(s),
            Err(e) => Exit::SpawnFailed(format!("wait failed: {e}")),
        },
        _ = tokio::time::sleep(timeout) => Exit::TimedOut,
        _ = kill.cancelled() => Exit::Killed,
    };
    match exit {
        Exit::TimedOut => {
            if pgid > 0 {
                killpg(pgid, libc::SIGTERM);
                terminate_group(pgid, grace, kill).await;
            }
            let _ = child.wait().await;
        }
        Exit::Killed => {
            if pgid > 0 {
                killpg(pgid, libc::SIGKILL);
            }
            let _ = child.wait().await;
        }
        _ => {}
    }
    // The leader is gone: what is left in the group was started on purpose (a daemon).
    guard.0 = 0;
    // Drain the pipes. A background grandchild may hold them open forever: bound the wait.
    let drained = tokio::time::timeout(Duration::from_millis(250), async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        readers.abort_all();
    }
    let output = {
        let g = ring.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = g.buf.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    };
    ProcResult { exit, output }
}

struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 > 0 {
            killpg(self.0, libc::SIGKILL);
        }
    }
}

/// After SIGTERM: wait until every member of the group is gone, at most `grace`, then SIGKILL
/// the group. The leader may exit at once while a grandchild ignores SIGTERM, so this watches the
/// group, not the leader.
async fn terminate_group(pgid: i32, grace: Duration, kill: &CancellationToken) {
    let deadline = tokio::time::Instant::now() + grace;
    let mut tick = Duration::from_millis(10);
    while tokio::time::Instant::now() < deadline {
        // Signal 0 probes for existence; ESRCH means the group is empty.
        if !killpg(pgid, 0) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = kill.cancelled() => break,
        }
        tick = (tick * 2).min(Duration::from_millis(100));
    }
    killpg(pgid, libc::SIGKILL);
}

pub use crate::util::last_lines;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_tail() {
        let mut r = Ring::default();
        r.push(&vec![b'a'; OUTPUT_LIMIT - 1]);
        r.push(b"xyz");
        assert_eq!(r.buf.len(), OUTPUT_LIMIT);
        assert_eq!(r.buf.back(), Some(&b'z'));
        r.push(&vec![b'b'; OUTPUT_LIMIT + 10]);
        assert!(r.buf.iter().all(|&c| c == b'b'));
    }

    #[test]
    fn last_lines_works() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
