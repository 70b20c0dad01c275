//! Child processes in their own process group, so that a timeout or an operator's second
//! interrupt kills the whole tree (grandchildren too): SIGTERM to the group, then SIGKILL after a
//! grace period. stdout and stderr share one pipe (so their lines keep the order a terminal
//! would show) read into a bounded ring buffer (the last 64 KiB).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::spawn;

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
    /// The last `OUTPUT_LIMIT` bytes of stdout and stderr, in the order they were written.
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

/// Where a command named without a slash lives, looked up in `PATH` once per run rather than
/// by every spawn: `posix_spawnp` would try each `PATH` directory with `execve` while the
/// thread that spawns waits (8 failed `execve`s per step with `/usr/bin` eighth in `PATH`),
/// the way a shell's command hash saves the same walk. Only found paths are kept (a step may
/// install a tool another one uses), keyed by the `PATH` the child gets; a kept path that no
/// longer spawns is forgotten and the name looked up again.
mod path_cache {
    use std::ffi::{OsStr, OsString};
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, OnceLock};

    use crate::util::FastMap;

    /// By `PATH` value, then by name: looked up with borrowed keys, so a hit allocates nothing
    /// but the returned path.
    type Cache = FastMap<OsString, FastMap<String, PathBuf>>;

    fn cache() -> &'static Mutex<Cache> {
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        CACHE.get_or_init(Default::default)
    }

    /// The `PATH` the child sees: the last one `env` sets, else ours as it was when first
    /// asked (children get the environment meeseeks started with, see `spawn`).
    fn path_of(env: &[(String, String)]) -> Option<&OsStr> {
        static OURS: OnceLock<Option<OsString>> = OnceLock::new();
        match env.iter().rev().find(|(k, _)| k == "PATH") {
            Some((_, v)) => Some(OsStr::new(v)),
            None => OURS.get_or_init(|| std::env::var_os("PATH")).as_deref(),
        }
    }

    /// Where `name` runs from, and whether that came from the cache (a kept path may be stale:
    /// the caller forgets it and asks again if it no longer spawns). A path with a slash is
    /// taken as it is (relative to the child's working directory); a name is looked up in the
    /// child's `PATH` (relative entries taken from `cwd`, as the child would), and kept when
    /// found through a `PATH` of absolute entries only. `None`: not found.
    pub(super) fn locate(
        name: &str,
        env: &[(String, String)],
        cwd: &Path,
    ) -> Option<(PathBuf, bool)> {
        if name.contains('/') {
            return Some((PathBuf::from(name), false));
        }
        let Some(path) = path_of(env) else {
            return which::which_in(name, None::<&OsStr>, cwd)
                .ok()
                .map(|p| (p, false));
        };
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(path).and_then(|by_name| by_name.get(name)) {
            return Some((p.clone(), true));
        }
        let found = which::which_in(name, Some(path), cwd).ok()?;
        if std::env::split_paths(path).all(|d| d.is_absolute()) {
            cache
                .entry(path.to_os_string())
                .or_default()
                .insert(name.to_string(), found.clone());
        }
        Some((found, false))
    }

    pub(super) fn forget(name: &str, env: &[(String, String)]) {
        if let Some(path) = path_of(env) {
            let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(by_name) = cache.get_mut(path) {
                by_name.remove(name);
            }
        }
    }
}

/// One pipe for the child's stdout and stderr: the parent's non-blocking read end, and the
/// write end the child gets as its fds 1 and 2 (blocking, as a child expects). Made
/// non-blocking here, where its flags are known, rather than by tokio's checked constructor
/// (an fstat and two fcntls per step).
fn output_pipe() -> std::io::Result<(tokio::net::unix::pipe::Receiver, std::os::fd::OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    let r = std::os::fd::OwnedFd::from(r);
    // SAFETY: F_SETFL on a pipe read end we own; O_RDONLY is the access mode std::io::pipe
    // gave it (close-on-exec is a descriptor flag, not touched by F_SETFL).
    if unsafe {
        libc::fcntl(
            r.as_raw_fd(),
            libc::F_SETFL,
            libc::O_RDONLY | libc::O_NONBLOCK,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    let r = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(r)?;
    Ok((r, w.into()))
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
    // Our pid once: `std::process::id()` is a system call each time.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", PID.get_or_init(std::process::id))
}

/// How long an attempt waits for its output to end before it watches the child's exit itself.
const WATCH_EXIT_AFTER: Duration = Duration::from_millis(10);

/// Runs `program` in a new process group with `cwd` as working directory and `env` added.
/// `kill` kills everything the attempt started at once (SIGKILL).
///
/// A step outlives a runner that is killed (it is not tied to it with `PR_SET_PDEATHSIG`:
/// stopping a step halfway is not safer than letting it finish). `resume` finds what an
/// in-flight step left running by its `MEESEEKS_*` variables and stops it before the step runs
/// again.
pub async fn run(
    program: Program<'_>,
    cwd: &Path,
    env: &[(String, String)],
    tag: Option<Tag<'_>>,
    timeout: Duration,
    grace: Duration,
    kill: &CancellationToken,
) -> ProcResult {
    let mut argv: Vec<&OsStr> = Vec::new();
    let file = match program {
        Program::Shell(line) => {
            argv.extend(["/bin/sh", "-c", line].map(OsStr::new));
            "/bin/sh"
        }
        Program::Argv(a) => {
            argv.extend(a.iter().map(OsStr::new));
            match a.first() {
                Some(first) => first.as_str(),
                None => return spawn_failed("empty command".into()),
            }
        }
    };
    let token = attempt_token();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push((ATTEMPT_VAR, &token));
    if let Some(t) = tag {
        vars.extend([(SERVICE_VAR, t.service), (STEP_VAR, t.step)]);
    }
    let (mut out, write_end) = match output_pipe() {
        Ok(p) => p,
        Err(e) => return spawn_failed(format!("cannot create a pipe for the output: {e}")),
    };
    let mut located = path_cache::locate(file, env, cwd);
    let mut child = loop {
        let Some((path, from_cache)) = located else {
            let e = std::io::Error::from_raw_os_error(libc::ENOENT);
            return spawn_failed(format!("cannot start `{file}`: {e}"));
        };
        let spawned = spawn::spawn(&spawn::Spec {
            path: &path,
            argv: &argv,
            env: &vars,
            cwd,
            output: write_end.as_raw_fd(),
        });
        match spawned {
            Ok(c) => break c,
            // The binary found earlier is gone: look the name up again, as a shell would.
            Err(_) if from_cache => {
                path_cache::forget(file, env);
                located = path_cache::locate(file, env, cwd);
            }
            Err(e) => return spawn_failed(format!("cannot start `{file}`: {e}")),
        }
    };
    // Only the child holds the write end now: the read end sees EOF once the child (and
    // whatever inherited its output) is done.
    drop(write_end);
    let pgid = child.id();
    // If this future is dropped mid-attempt (a check aborted because another one failed), the
    // whole tree goes, not only the leader the child's own drop kills.
    let mut guard = TreeGuard(Some(Tree {
        pgid,
        token: token.clone(),
    }));
    // The output is read here, next to the wait, rather than by a task of its own.
    let mut ring = Ring::default();
    let mut chunk = vec![0u8; 8192];
    let mut open = true;
    let deadline = tokio::time::sleep(timeout);
    let cancelled = kill.cancelled();
    // The exit is watched once the output ends (the usual sign of it) or after a moment (a
    // child whose output a background process keeps open, or that closed it early): a short
    // step never needs the pidfd and its registration.
    let watch = tokio::time::sleep(WATCH_EXIT_AFTER);
    tokio::pin!(deadline, cancelled, watch);
    let mut watching = false;
    let exit = loop {
        tokio::select! {
            r = out.read(&mut chunk), if open => match r {
                Ok(0) | Err(_) => {
                    open = false;
                    watching = true;
                }
                Ok(n) => ring.push(&chunk[..n]),
            },
            _ = &mut watch, if !watching => watching = true,
            s = child.wait(), if watching => break match s {
                Ok(s) => Exit::Status(s),
                Err(e) => Exit::SpawnFailed(format!("wait failed: {e}")),
            },
            _ = &mut deadline => break Exit::TimedOut,
            _ = &mut cancelled => break Exit::Killed,
        }
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
    // Drain the pipe. A background grandchild may hold it open forever: bound the wait.
    if open {
        let _ = tokio::time::timeout(Duration::from_millis(250), async {
            while let Ok(n @ 1..) = out.read(&mut chunk).await {
                ring.push(&chunk[..n]);
            }
        })
        .await;
    }
    let (a, b) = ring.buf.as_slices();
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    ProcResult {
        exit,
        output: String::from_utf8_lossy(&v).into_owned(),
    }
}

fn spawn_failed(why: String) -> ProcResult {
    ProcResult {
        exit: Exit::SpawnFailed(why),
        output: String::new(),
    }
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
    async fn terminate(&self, child: &mut spawn::Child, grace: Duration, kill: &CancellationToken) {
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

    async fn run_argv(argv: &[&str], cwd: &Path, env: &[(String, String)]) -> ProcResult {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        run(
            Program::Argv(&argv),
            cwd,
            env,
            None,
            Duration::from_secs(10),
            Duration::from_secs(1),
            &CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn stdout_and_stderr_keep_the_order_they_were_written_in() {
        let r = run_argv(
            &[
                "sh",
                "-c",
                "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
            ],
            Path::new("/"),
            &[],
        )
        .await;
        assert!(r.success(), "{r:?}");
        let want: String = (1..=5).map(|i| format!("out{i}\nerr{i}\n")).collect();
        assert_eq!(r.output, want);
    }

    /// A tool written in an executable file under `dir`, printing `says`.
    fn tool(dir: &Path, says: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("mtool");
        std::fs::write(&p, format!("#!/bin/sh\necho {says}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn a_command_found_in_path_once_is_looked_up_again_when_it_disappears() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
        let env = vec![("PATH".to_string(), path)];
        // Not found yet: a miss is not remembered, so a tool installed later is found.
        let r = run_argv(&["mtool"], t.path(), &env).await;
        assert!(matches!(r.exit, Exit::SpawnFailed(_)), "{r:?}");
        tool(&b, "from-b");
        assert_eq!(
            run_argv(&["mtool"], t.path(), &env).await.output,
            "from-b\n"
        );
        // Remembered: spawned from b without walking PATH again...
        tool(&a, "from-a");
        assert_eq!(
            run_argv(&["mtool"], t.path(), &env).await.output,
            "from-b\n"
        );
        // ...until it no longer spawns: then looked up again, as a shell would.
        std::fs::remove_file(b.join("mtool")).unwrap();
        assert_eq!(
            run_argv(&["mtool"], t.path(), &env).await.output,
            "from-a\n"
        );
    }

    #[tokio::test]
    async fn argv0_is_the_name_as_written() {
        let r = run_argv(&["cat", "/proc/self/cmdline"], Path::new("/"), &[]).await;
        assert!(r.success(), "{r:?}");
        assert!(
            r.output.starts_with("cat\0/proc/self/cmdline"),
            "{:?}",
            r.output
        );
    }

    /// What the spawn sets up for a child: added variables replace inherited ones (the last
    /// of a name wins), stdin is /dev/null, no signal is blocked, SIGPIPE is at its default
    /// (the test harness ignores it, as Rust does), and the child leads its own group.
    #[tokio::test]
    async fn a_child_starts_with_our_environment_amended_and_clean_signals() {
        let env = vec![
            ("HOME".to_string(), "/first".to_string()),
            ("MEESEEKS_T_ADDED".to_string(), "yes".to_string()),
            ("HOME".to_string(), "/second".to_string()),
        ];
        let script = "echo home=$HOME added=$MEESEEKS_T_ADDED path=${PATH:+set}; \
            readlink /proc/self/fd/0; \
            set -- $(sed 's/.*) //' /proc/$$/stat); [ \"$3\" = $$ ] && echo leader";
        let r = run_argv(&["sh", "-c", script], Path::new("/"), &env).await;
        assert!(r.success(), "{r:?}");
        let lines: Vec<&str> = r.output.lines().collect();
        assert_eq!(
            lines,
            ["home=/second added=yes path=set", "/dev/null", "leader"]
        );
        // The child's own masks (a shell blocks signals of its own while it forks).
        let r = run_argv(&["grep", "^Sig", "/proc/self/status"], Path::new("/"), &[]).await;
        let mask = |name: &str| {
            let l = r.output.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{r:?}");
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{r:?}");
    }

    /// An attempt dropped mid-run (a check aborted) takes its process with it, reaped: no
    /// process and no zombie is left.
    #[tokio::test]
    async fn a_dropped_attempt_leaves_neither_process_nor_zombie() {
        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        let line = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let argv = ["sh", "-c", &line];
        let attempt = run_argv(&argv, t.path(), &[]);
        let r = tokio::time::timeout(Duration::from_millis(500), attempt).await;
        assert!(r.is_err(), "the attempt should still be running: {r:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&stat).exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = std::fs::read_to_string(&stat).ok();
        assert!(left.is_none(), "still there: {left:?}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_failure_naming_it() {
        let r = run_argv(&["meeseeks-no-such-tool"], Path::new("/"), &[]).await;
        match &r.exit {
            Exit::SpawnFailed(e) => assert_eq!(
                e,
                "cannot start `meeseeks-no-such-tool`: No such file or directory (os error 2)"
            ),
            other => panic!("{other:?}"),
        }
        let r = run_argv(&["./nope"], Path::new("/"), &[]).await;
        assert!(
            matches!(r.exit, Exit::SpawnFailed(ref e) if e.starts_with("cannot start `./nope`")),
            "{r:?}"
        );
    }

    #[test]
    fn last_lines_works() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
