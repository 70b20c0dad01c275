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

fn kill_pid(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe { libc::kill(pid, sig) };
}

/// Environment variables that mark every process an attempt starts, grandchildren included
/// (the environment is inherited through fork, exec and `setsid`). A process that escaped its
/// process group is still found by them (the way Jenkins' process tree killer finds a build's
/// daemons), and `resume` finds what a crashed runner left behind (see `kill_orphans`).
pub const ATTEMPT_VAR: &str = "MEESEEKS_ATTEMPT";
pub const SERVICE_VAR: &str = "MEESEEKS_SERVICE";
pub const STEP_VAR: &str = "MEESEEKS_STEP";
/// Already set for every command by the executor; `kill_orphans` matches on it (run ids are
/// unique: a timestamp and a random part).
pub const RUN_ID_VAR: &str = "MEESEEKS_RUN_ID";

/// What an attempt belongs to, for the variables above. Checks' probes use `step = "check:NAME"`.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    pub service: &'a str,
    pub step: &'a str,
}

/// A unique value of `MEESEEKS_ATTEMPT`: this runner's pid, and a counter.
fn attempt_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

/// Runs `program` in a new process group with `cwd` as working directory and `env` added.
/// `kill` kills everything the attempt started at once (SIGKILL).
///
/// A step outlives a runner that is killed (it is not tied to it with `PR_SET_PDEATHSIG`: that
/// needs a `pre_exec` hook, which makes std fork the whole runner for every step instead of
/// `posix_spawn`, and doubled the cost of a 2 000-step run). `resume` finds what an in-flight
/// step left running by its `MEESEEKS_*` variables and stops it before the step runs again.
pub async fn run(
    program: Program<'_>,
    cwd: &Path,
    env: &[(String, String)],
    tag: Option<Tag<'_>>,
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
    let token = attempt_token();
    cmd.current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(ATTEMPT_VAR, &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own group: signals to the group reach grandchildren, and the terminal's Ctrl-C
        // reaches only us, so the runner decides what happens to running steps.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(t) = tag {
        cmd.env(SERVICE_VAR, t.service).env(STEP_VAR, t.step);
    }
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
    // whole tree goes, not only the leader `kill_on_drop` would kill.
    let mut guard = TreeGuard(Some(Tree {
        pgid,
        token: token.clone(),
    }));
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
    let tree = Tree { pgid, token };
    match exit {
        Exit::TimedOut => {
            tree.signal(libc::SIGTERM);
            tree.terminate(&mut child, grace, kill).await;
        }
        Exit::Killed => {
            tree.signal(libc::SIGKILL);
            let _ = child.wait().await;
        }
        _ => {}
    }
    // The leader is gone: what is left in the group was started on purpose (a daemon).
    guard.0 = None;
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

/// Everything one attempt started: its process group, and every process carrying its
/// `MEESEEKS_ATTEMPT` token (those that left the group with `setsid` or `setpgid`).
struct Tree {
    pgid: i32,
    token: String,
}

impl Tree {
    /// Live (not zombie) members.
    fn members(&self) -> Vec<i32> {
        let want = format!("{ATTEMPT_VAR}={}", self.token);
        scan_procs(|p| (self.pgid > 0 && p.pgrp == self.pgid) || p.env_has(&want))
    }

    fn signal(&self, sig: i32) {
        if self.pgid > 0 {
            killpg(self.pgid, sig);
        }
        for pid in self.members() {
            kill_pid(pid, sig);
        }
    }

    /// After SIGTERM: reaps the leader as soon as it exits (a zombie leader would keep the
    /// group "alive" for the whole grace), waits until no member is left, at most `grace`, then
    /// SIGKILLs what remains.
    async fn terminate(
        &self,
        child: &mut tokio::process::Child,
        grace: Duration,
        kill: &CancellationToken,
    ) {
        let deadline = tokio::time::Instant::now() + grace;
        let mut tick = Duration::from_millis(5);
        let mut reaped = false;
        loop {
            if !reaped && let Ok(Some(_)) = child.try_wait() {
                reaped = true;
            }
            if reaped && self.members().is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                r = child.wait(), if !reaped => { reaped = r.is_ok(); }
                _ = tokio::time::sleep(tick) => {}
                _ = kill.cancelled() => break,
            }
            tick = (tick * 2).min(Duration::from_millis(100));
        }
        self.signal(libc::SIGKILL);
        let _ = child.wait().await;
    }
}

struct TreeGuard(Option<Tree>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.signal(libc::SIGKILL);
        }
    }
}

/// One process as `/proc` shows it.
struct ProcInfo {
    pgrp: i32,
    environ: Option<Vec<u8>>,
    pid: i32,
}

impl ProcInfo {
    fn environ(&mut self) -> &[u8] {
        if self.environ.is_none() {
            self.environ =
                Some(std::fs::read(format!("/proc/{}/environ", self.pid)).unwrap_or_default());
        }
        self.environ.as_deref().unwrap_or_default()
    }

    fn env_has(&mut self, entry: &str) -> bool {
        self.environ()
            .split(|&b| b == 0)
            .any(|e| e == entry.as_bytes())
    }

    fn env_var(&mut self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.environ()
            .split(|&b| b == 0)
            .find_map(|e| e.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The pids of the live (not zombie) processes, other than this one, for which `want` holds.
/// Processes of other users are skipped (their environment cannot be read, and a step cannot
/// have started them without privileges we would then have anyway).
fn scan_procs(mut want: impl FnMut(&mut ProcInfo) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let pgrp = f.nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
        if state == "Z" || state == "X" {
            continue;
        }
        let mut p = ProcInfo {
            pgrp,
            environ: None,
            pid,
        };
        if want(&mut p) {
            out.push(pid);
        }
    }
    out
}

/// A process left running by a runner that died (see `kill_orphans`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: i32,
    pub service: String,
    pub step: String,
    /// Its command line, for the operator.
    pub command: String,
}

/// Finds the processes that attempts of run `run_id` started and that still run
/// although their runner is gone, for the steps in `in_flight` ((service, step label) pairs
/// whose `step.started` has no outcome in the journal) and for health-check probes; sends them
/// SIGTERM, waits at most `grace` for them to exit, then SIGKILLs the rest. Processes started
/// by steps that finished (a daemon a step brought up on purpose) are left alone.
///
/// `resume` calls this before anything runs, so that a step is never running twice.
pub fn kill_orphans(run_id: &str, in_flight: &[(String, String)], grace: Duration) -> Vec<Orphan> {
    let run_entry = format!("{RUN_ID_VAR}={run_id}");
    let me = format!("{}.", std::process::id());
    let mut found = Vec::new();
    let pids = scan_procs(|p| {
        if !p.env_has(&run_entry) {
            return false;
        }
        // Our own attempts (none yet when resume starts, but be exact).
        if p.env_var(ATTEMPT_VAR).is_some_and(|t| t.starts_with(&me)) {
            return false;
        }
        let service = p.env_var(SERVICE_VAR).unwrap_or_default();
        let step = p.env_var(STEP_VAR).unwrap_or_default();
        let hit = step.starts_with("check:")
            || in_flight.iter().any(|(s, l)| *s == service && *l == step);
        if hit {
            let command = std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .trim_end_matches('\0')
                        .replace('\0', " ")
                })
                .unwrap_or_default();
            found.push(Orphan {
                pid: p.pid,
                service,
                step,
                command,
            });
        }
        hit
    });
    if pids.is_empty() {
        return found;
    }
    for &pid in &pids {
        kill_pid(pid, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .map(|i| s[i + 1..].trim_start().starts_with(['Z', 'X']))
            })
            .is_some_and(|zombie| !zombie)
    };
    while std::time::Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in &pids {
        if alive(pid) {
            kill_pid(pid, libc::SIGKILL);
        }
    }
    found
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
