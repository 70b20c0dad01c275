//! Starting a step's process with a `vfork`-style `clone` of our own, and reaping it through a
//! pidfd.
//!
//! Why not `tokio::process::Command` (std's `Command` underneath): a step that sets any
//! variable made std copy our whole environment into a `BTreeMap` of owned strings and build
//! a fresh `envp` from it for every spawn, open `/dev/null` for stdin each time, and tokio
//! then registered its own reaper. On a 2 000-step run of `true`, std's spawn was 18 % of
//! meeseeks' own CPU samples and tokio's reaper setup 3 % (perf; `capture_env` alone 6 %). Here
//! the inherited environment is turned into C strings once per process, `/dev/null` is
//! opened once, and the child starts the way glibc's `posix_spawn` starts one — a clone that
//! shares our memory and suspends the calling thread until the child has called `execve` —
//! with less work on both sides (see [`clone_child`]): own process group, signal mask emptied,
//! SIGPIPE back to its default.
//!
//! The environment a child gets is the one meeseeks started with (read once), plus what the
//! caller adds; later changes to our own environment are not seen (nothing in meeseeks makes
//! them while it runs steps).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// What to start: the file to execute, `argv` (its first element is `argv[0]`), variables
/// that replace or extend the inherited environment (the last of a name wins), working
/// directory, and the fd that becomes the child's stdout and stderr.
pub struct Spec<'a> {
    pub path: &'a Path,
    pub argv: &'a [&'a OsStr],
    pub env: &'a [(&'a str, &'a str)],
    pub cwd: &'a Path,
    pub output: RawFd,
}

/// Our environment at first use, as `NAME=value` C strings next to their names.
fn inherited() -> &'static [(OsString, CString)] {
    static ENV: OnceLock<Vec<(OsString, CString)>> = OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
                kv.extend_from_slice(k.as_bytes());
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                Some((k, CString::new(kv).ok()?))
            })
            .collect()
    })
}

fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    match NULL.get_or_init(|| {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| e.to_string())
    }) {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(e) => Err(io::Error::other(format!("cannot open /dev/null: {e}"))),
    }
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in argument"))
}

/// Starts the child. Its pid leads a new process group.
pub fn spawn(spec: &Spec<'_>) -> io::Result<Child> {
    let path = cstring(spec.path.as_os_str().as_bytes())?;
    let cwd = cstring(spec.cwd.as_os_str().as_bytes())?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut argv_p: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv_p.push(std::ptr::null_mut());

    // The added variables, the last of each name kept, then every inherited one they do not
    // replace. A handful of names against a few dozen: a linear scan is the cheap way.
    let mut added: Vec<(&str, CString)> = Vec::with_capacity(spec.env.len());
    for (k, v) in spec.env.iter().rev() {
        if !added.iter().any(|(n, _)| n == k) {
            added.push((k, cstring(format!("{k}={v}").as_bytes())?));
        }
    }
    let base = inherited();
    let mut envp: Vec<*mut libc::c_char> = Vec::with_capacity(base.len() + added.len() + 1);
    for (k, kv) in base {
        if !added.iter().any(|(n, _)| n.as_bytes() == k.as_bytes()) {
            envp.push(kv.as_ptr().cast_mut());
        }
    }
    envp.extend(added.iter().map(|(_, kv)| kv.as_ptr().cast_mut()));
    envp.push(std::ptr::null_mut());

    let args = ChildArgs {
        path: path.as_ptr(),
        argv: argv_p.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        stdin: dev_null()?,
        output: spec.output,
        signals: child_signals(),
        errno: AtomicI32::new(0),
    };
    let pid = clone_child(&args)?;
    Ok(Child::new(pid))
}

/// What the child needs, prepared by the parent: the child itself must not allocate, lock or
/// unwind (it shares our memory while our thread is suspended), so it only reads this and makes
/// system calls.
struct ChildArgs<'a> {
    path: *const libc::c_char,
    argv: *const *mut libc::c_char,
    envp: *const *mut libc::c_char,
    cwd: *const libc::c_char,
    stdin: RawFd,
    output: RawFd,
    signals: &'a [(libc::c_int, libc::sighandler_t)],
    /// Set by the child when it fails before `execve` (or `execve` fails).
    errno: AtomicI32,
}

/// The signal dispositions a child sets before it unblocks signals: every standard signal
/// (but SIGKILL and SIGSTOP) to its default, or kept ignored if we ignore it (a child of
/// `nohup meeseeks` ignores SIGHUP too), SIGPIPE to its default always (Rust ignores it in its
/// own process), and any real-time signal we handle to its default.
///
/// Why: until `execve`, the child runs in our memory, so a handler of ours run by it (tokio's
/// for SIGINT, writing to the runtime's own pipe) would act as if we had been signalled. glibc's
/// `posix_spawn` asks the kernel for all 64 dispositions in every child and then resets the
/// handled ones (121 system calls before `execve`, strace); here the parent reads them once
/// and the child sets 30 or so without asking. A standard signal that gets a handler after this
/// snapshot is still safe (the child sets it to its default, or to ignored); only a real-time
/// signal handled from later on would not be reset, and nothing in meeseeks handles one.
fn child_signals() -> &'static [(libc::c_int, libc::sighandler_t)] {
    static SIGNALS: OnceLock<Vec<(libc::c_int, libc::sighandler_t)>> = OnceLock::new();
    SIGNALS.get_or_init(|| {
        let mut v = Vec::new();
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut now = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: reads a disposition into a zeroed struct; glibc refuses its own
            // internal signals (EINVAL), which are skipped.
            if unsafe { libc::sigaction(sig, std::ptr::null(), now.as_mut_ptr()) } != 0 {
                continue;
            }
            // SAFETY: sigaction succeeded, so it filled the struct.
            let handler = unsafe { now.assume_init() }.sa_sigaction;
            let standard = sig < libc::SIGRTMIN();
            let set = if sig == libc::SIGPIPE {
                Some(libc::SIG_DFL)
            } else if handler == libc::SIG_IGN {
                standard.then_some(libc::SIG_IGN)
            } else if standard || handler != libc::SIG_DFL {
                Some(libc::SIG_DFL)
            } else {
                None
            };
            v.extend(set.map(|h| (sig, h)));
        }
        v
    })
}

/// `rt_sigprocmask` itself rather than `pthread_sigmask`, which never blocks glibc's internal
/// signals: the parent blocks everything, as `posix_spawn` does, so that no handler runs in
/// the child while it shares our memory.
///
/// # Safety
/// `set` is a full kernel signal set (64 bits); `old`, if not null, receives one.
unsafe fn sigprocmask_raw(how: libc::c_int, set: *const u64, old: *mut u64) {
    // SAFETY: per the contract; the kernel's sigset is 8 bytes on Linux.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, 8usize) };
}

/// The child, on the stack `clone_child` gives it, in our memory, with every signal blocked:
/// dispositions, process group, stdin/stdout/stderr, working directory, signal mask, `execve`.
/// It only makes system calls (the binary is linked with BIND_NOW, so no lazy symbol lookup
/// runs here) and never returns: `execve` replaces it, or it records errno and exits with 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` of `clone_child`, alive until the child has exec'd or
    // exited (the parent's thread is suspended until then); every pointer in it is valid.
    unsafe {
        let a = &*(arg as *const ChildArgs<'_>);
        let fail = || -> ! {
            a.errno.store(*libc::__errno_location(), Ordering::Relaxed);
            libc::_exit(127)
        };
        let mut act: libc::sigaction = std::mem::zeroed();
        for &(sig, handler) in a.signals {
            act.sa_sigaction = handler;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        // Own group: signals to the group reach grandchildren, and the terminal's Ctrl-C
        // reaches only us, so the runner decides what happens to running steps.
        if libc::setpgid(0, 0) != 0 {
            fail()
        }
        for (from, to) in [(a.stdin, 0), (a.output, 1), (a.output, 2)] {
            if libc::dup2(from, to) < 0 {
                fail()
            }
        }
        if libc::chdir(a.cwd) != 0 {
            fail()
        }
        // No signal blocked in the new program (the parent blocked them all for the clone).
        let none = 0u64;
        sigprocmask_raw(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(a.path, a.argv.cast(), a.envp.cast());
        fail()
    }
}

/// Size of the stack a child runs on until `execve`: it makes a few system calls in one frame.
const CHILD_STACK: usize = 64 * 1024;

/// Clones a child that shares our memory (`CLONE_VM`) and suspends this thread until the
/// child has called `execve` or exited (`CLONE_VFORK`), as glibc's `posix_spawn` does, minus
/// what it does for every spawn that we do once: its file-action and attribute objects check
/// each fd against the fd limit (6 `prlimit64` calls), it maps and unmaps a fresh stack for the
/// child (the unmap flushes the TLB of every CPU running one of our threads), and its child
/// asks for all 64 signal dispositions (see [`child_signals`]). On 2 000 x `true` that took the
/// children from 129 system calls each before `execve` to 35, and made the run ~3 % faster
/// against `make -j16` (paired rounds, in the README).
fn clone_child(args: &ChildArgs<'_>) -> io::Result<libc::pid_t> {
    thread_local! {
        // One per thread, reused: this thread is suspended while its child uses it.
        static STACK: std::cell::RefCell<Vec<u128>> =
            std::cell::RefCell::new(vec![0; CHILD_STACK / 16]);
    }
    let pid = STACK.with_borrow_mut(|stack| {
        let all = u64::MAX;
        let mut old = 0u64;
        // SAFETY: the stack is ours and 16-byte aligned at its top; `args` outlives the
        // child's use of it (CLONE_VFORK: clone returns only after execve or exit); signals
        // are blocked around the clone and restored right after.
        unsafe {
            let top = stack.as_mut_ptr().add(stack.len()).cast::<libc::c_void>();
            sigprocmask_raw(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(args).cast_mut().cast(),
            );
            let e = io::Error::last_os_error();
            sigprocmask_raw(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 { Err(e) } else { Ok(pid) }
        }
    })?;
    match args.errno.load(Ordering::Relaxed) {
        0 => Ok(pid),
        errno => {
            // It has exited (127): reap it, and report why it could not start.
            let mut raw = 0;
            // SAFETY: our own child, not reaped yet.
            unsafe { libc::waitpid(pid, &mut raw, 0) };
            Err(io::Error::from_raw_os_error(errno))
        }
    }
}

/// A spawned child, reaped by `wait`/`try_wait`. Dropped before it was reaped, it is killed
/// (SIGKILL) and reaped in the background, so no zombie is left behind.
pub struct Child {
    pid: libc::pid_t,
    /// Readable once the child has exited; opened by the first `wait` that finds the child
    /// still running (most steps of a big run have exited by then, and never need one).
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// The kernel has no pidfd (before 5.3): `wait` polls.
    no_pidfd: bool,
    status: Option<ExitStatus>,
}

fn pidfd_open(pid: libc::pid_t) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd the kernel just gave us, owned by nothing else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) };
    // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped, so the fd
    // stays open and the same for the registration's whole life.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

impl Child {
    fn new(pid: libc::pid_t) -> Child {
        Child {
            pid,
            pidfd: None,
            no_pidfd: false,
            status: None,
        }
    }

    pub fn id(&self) -> i32 {
        self.pid
    }

    /// The exit status if the child has exited (and reaps it), without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut raw = 0;
        // SAFETY: waitpid on our own, not yet reaped, child.
        let r = unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) };
        match r {
            0 => Ok(None),
            r if r == self.pid => {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                Ok(Some(s))
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Waits for the child to exit. Cancel-safe: dropped mid-wait, nothing is lost.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut tick = Duration::from_millis(1);
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            if self.pidfd.is_none() && !self.no_pidfd {
                self.pidfd = pidfd_open(self.pid);
                self.no_pidfd = self.pidfd.is_none();
                // Opened after the check above: the exit may have come in between.
                continue;
            }
            match &self.pidfd {
                Some(fd) => {
                    let mut ready = fd.readable().await?;
                    ready.clear_ready();
                }
                None => {
                    tokio::time::sleep(tick).await;
                    tick = (tick * 2).min(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: our own child, not reaped yet, so the pid is still ours.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if let Ok(Some(_)) = self.try_wait() {
            return;
        }
        // Reaped in the background once it is gone. Wrapped so that the task, dropped
        // unfinished (its runtime shutting down), does not come back here and spawn again:
        // then, as outside a runtime, the kernel reaps it when we exit.
        let mut orphan = std::mem::ManuallyDrop::new(Child {
            pid: self.pid,
            pidfd: self.pidfd.take(),
            no_pidfd: self.no_pidfd,
            status: None,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = orphan.wait().await;
                orphan.status = Some(ExitStatus::from_raw(0));
                drop(std::mem::ManuallyDrop::into_inner(orphan));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(pid: i32) -> bool {
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Path::new(&stat).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        !Path::new(&stat).exists()
    }

    fn sleeper() -> Child {
        let (_r, w) = std::io::pipe().unwrap();
        spawn(&Spec {
            path: Path::new("/bin/sleep"),
            argv: &[OsStr::new("sleep"), OsStr::new("30")],
            env: &[],
            cwd: Path::new("/"),
            output: w.as_raw_fd(),
        })
        .unwrap()
    }

    /// Dropped while it runs, a child is killed and reaped in the background: no zombie.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_child_dropped_unreaped_is_killed_and_reaped() {
        let c = sleeper();
        let pid = c.id();
        drop(c);
        assert!(
            tokio::task::spawn_blocking(move || gone(pid))
                .await
                .unwrap(),
            "pid {pid} still in /proc (a zombie?)"
        );
    }

    /// Dropped while its runtime shuts down, the background reaping is dropped too, once,
    /// without coming back to spawn it again (no hang, no endless respawning); the killed
    /// child is left for us to reap, here by hand.
    #[test]
    fn a_child_dropped_as_its_runtime_shuts_down_is_left_to_reap_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pid = rt.block_on(async {
            let c = sleeper();
            let pid = c.id();
            drop(c);
            pid
        });
        drop(rt);
        let mut raw = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(pid, &mut raw, 0) };
        if r == pid {
            assert_eq!(ExitStatus::from_raw(raw).signal(), Some(libc::SIGKILL));
        } else {
            // Already dead when it was dropped, and reaped right there.
            assert_eq!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ECHILD)
            );
        }
    }

    #[tokio::test]
    async fn wait_and_try_wait_report_the_exit_status_once_reaped() {
        let mut c = sleeper();
        assert!(c.try_wait().unwrap().is_none());
        // SAFETY: our own child.
        unsafe { libc::kill(c.id(), libc::SIGTERM) };
        let s = c.wait().await.unwrap();
        assert_eq!(s.signal(), Some(libc::SIGTERM));
        assert_eq!(c.try_wait().unwrap(), Some(s));
    }

    /// Runs `argv` with `cwd`, its output into a pipe; returns the spawn result and what it
    /// wrote (empty if it did not start).
    fn run(path: &str, argv: &[&str], cwd: &str) -> (io::Result<ExitStatus>, String) {
        use std::io::Read;
        let (mut r, w) = std::io::pipe().unwrap();
        let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        let spawned = spawn(&Spec {
            path: Path::new(path),
            argv: &argv,
            env: &[("MEESEEKS_SPAWN_TEST", "yes")],
            cwd: Path::new(cwd),
            output: w.as_raw_fd(),
        });
        drop(w);
        let mut c = match spawned {
            Ok(c) => c,
            Err(e) => return (Err(e), String::new()),
        };
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (rt.block_on(c.wait()), out)
    }

    /// The bits of a `/proc/PID/status` mask line (`SigBlk:\t0000000000000000`).
    fn mask(status: &str, name: &str) -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    /// What the new program starts with: no signal blocked, none handled (no handler of ours
    /// survives), SIGPIPE not ignored although this process ignores it, its own process group,
    /// stdin from /dev/null, the working directory and the added variable.
    #[test]
    fn a_child_starts_clean_in_its_own_group_and_directory() {
        // SAFETY: reads our own disposition of SIGPIPE (Rust's runtime ignores it).
        let ours = unsafe {
            let mut now = MaybeUninit::<libc::sigaction>::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), now.as_mut_ptr());
            now.assume_init().sa_sigaction
        };
        assert_eq!(ours, libc::SIG_IGN);
        let script = "cat /proc/self/status; echo pgid=$(ps -o pgid= $$) pid=$$; \
                      pwd; readlink /proc/self/fd/0; echo var=$MEESEEKS_SPAWN_TEST";
        let (status, out) = run("/bin/sh", &["sh", "-c", script], "/usr");
        assert!(status.unwrap().success(), "{out}");
        // `cat` is the shell's child: it inherits what the shell started with, and its own
        // exec reset only handlers, so any blocked or ignored bit came from us.
        assert_eq!(mask(&out, "SigBlk:"), 0, "{out}");
        assert_eq!(
            mask(&out, "SigIgn:") & (1 << (libc::SIGPIPE - 1)),
            0,
            "{out}"
        );
        let ids = out.lines().find(|l| l.starts_with("pgid=")).unwrap();
        let (pgid, pid) = ids["pgid=".len()..].trim().split_once(" pid=").unwrap();
        assert_eq!(pgid.trim(), pid, "{out}");
        assert!(out.lines().any(|l| l == "/usr"), "{out}");
        assert!(out.lines().any(|l| l == "/dev/null"), "{out}");
        assert!(out.lines().any(|l| l == "var=yes"), "{out}");
    }

    /// A child that cannot start is an error with the reason (no exit status 127 to guess
    /// from), and is reaped: nothing is left behind.
    #[test]
    fn a_child_that_cannot_start_is_an_error_and_leaves_no_zombie() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let plain = plain.to_str().unwrap().to_string();
        // From a thread of its own name: a child that fails before `execve` still carries
        // it (comm), which tells its zombie from other tests' children.
        const NAME: &str = "spawn-failures";
        let errors = std::thread::Builder::new()
            .name(NAME.into())
            .spawn(move || {
                [
                    run("/bin/true", &["true"], "/no/such/directory"),
                    run(&plain, &["x"], "/"),
                    run("/no/such/program", &["x"], "/"),
                ]
                .map(|(r, _)| r.unwrap_err().raw_os_error())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            errors,
            [Some(libc::ENOENT), Some(libc::EACCES), Some(libc::ENOENT)]
        );
        let me = std::process::id().to_string();
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
                stat.contains(&format!("({NAME})")) && after.split(' ').nth(1) == Some(me.as_str())
            })
            .collect();
        assert!(left.is_empty(), "children left behind: {left:?}");
    }
}
