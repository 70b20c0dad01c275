//! `meeseeks stub`: a stand-in HTTP/TCP service for rehearsals, demos and tests (SPEC §7).
//!
//! A stub serves `GET /healthz` (503 until `--ready-after` has elapsed, then the first
//! `--fail-checks` answers are still 503, then 200 `ok`), `GET /` (one identity line),
//! `GET /requests` (how many requests it served) and answers 200 to anything else, so that
//! playbook `http` steps (e.g. "POST /api/pools/x") have something to talk to. An optional
//! `--tcp-listen` address accepts connections and closes them, as a database-like stand-in.
//!
//! `--detach` re-executes the current binary as `meeseeks stub ...` in a new session and returns
//! only when the child is listening and has written its pidfile, so a playbook step that starts
//! a stub can be followed at once by checks. The child reports readiness (or the reason it
//! could not start) through an inherited pipe, so the parent never polls. `--stop` is the
//! idempotent counterpart used by `[[cleanup]]` steps.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;

/// Exit code for an operation that ran and failed (port taken, child died, ...).
const FAILED: i32 = crate::error::exit::NEGATIVE;
/// How long `--stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long `--detach` waits for the child to report that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on draining open connections after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

/// A stand-in HTTP/TCP service for rehearsals, demos and tests (`meeseeks stub`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StubArgs {
    /// Name the stub reports in `GET /` and in its messages.
    #[arg(long, default_value = "stub")]
    pub name: String,
    /// HTTP listen address, e.g. 127.0.0.1:18080.
    #[arg(long, value_name = "ADDR", required_unless_present = "stop")]
    pub listen: Option<String>,
    /// /healthz answers 503 until this long after start, then 200 `ok`.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = parse_duration)]
    pub ready_after: Duration,
    /// The first K /healthz answers after readiness are still 503.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub fail_checks: u64,
    /// Extra plain TCP listener that accepts connections and closes them.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,
    /// Exit by itself after this long, so a crashed demo never leaks a process forever.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// Run in the background; return once it listens and has written --pidfile.
    #[arg(long, requires = "pidfile", conflicts_with = "stop")]
    pub detach: bool,
    /// Stop the stub whose pid is in --pidfile (SIGTERM, then SIGKILL) and remove the file.
    #[arg(long, requires = "pidfile", conflicts_with_all = ["listen", "tcp_listen"])]
    pub stop: bool,
    /// Where the stub's pid is written (atomically) once it listens.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Internal: file descriptor on which a detached child reports readiness to its parent.
    #[arg(long, hide = true, value_name = "FD")]
    pub ready_fd: Option<i32>,
}

/// Runs `meeseeks stub` and returns the process exit code.
///
/// Operational failures (address in use, child died, ...) are printed as one line on stderr and
/// give exit code 1; inconsistent arguments are `Error::Usage`.
pub fn run(args: &StubArgs) -> crate::Result<i32> {
    if args.stop {
        let pidfile = args
            .pidfile
            .as_deref()
            .ok_or_else(|| crate::Error::Usage("--stop needs --pidfile FILE".into()))?;
        return Ok(stop(pidfile));
    }
    if args.listen.is_none() {
        return Err(crate::Error::Usage(
            "meeseeks stub needs --listen ADDR (or --stop)".into(),
        ));
    }
    if args.detach {
        if args.pidfile.is_none() {
            return Err(crate::Error::Usage("--detach needs --pidfile FILE".into()));
        }
        return Ok(detach(args));
    }
    Ok(foreground(args))
}

// ------------------------------------------------------------------------------------------
// Serving

/// Shared state of a running stub.
struct Shared {
    name: String,
    addr: SocketAddr,
    ready_at: Instant,
    /// /healthz failures still to give after readiness.
    fail_left: AtomicU64,
    requests: AtomicU64,
}

/// A stub whose sockets are bound but which does not serve yet.
pub struct Bound {
    http: tokio::net::TcpListener,
    tcp: Option<tokio::net::TcpListener>,
    shared: Arc<Shared>,
}

impl Bound {
    /// Binds the HTTP (and optional TCP) listeners described by `args`. The readiness clock
    /// (`--ready-after`) starts now. Errors are one human line (e.g. "127.0.0.1:18080: address
    /// already in use").
    pub async fn bind(args: &StubArgs) -> Result<Bound, String> {
        let listen = args.listen.as_deref().ok_or("--listen ADDR is required")?;
        let http = bind_one(listen).await?;
        let tcp = match args.tcp_listen.as_deref() {
            Some(a) => Some(bind_one(a).await?),
            None => None,
        };
        let addr = http.local_addr().map_err(|e| format!("{listen}: {e}"))?;
        Ok(Bound {
            http,
            tcp,
            shared: Arc::new(Shared {
                name: args.name.clone(),
                addr,
                ready_at: Instant::now() + args.ready_after,
                fail_left: AtomicU64::new(args.fail_checks),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The bound plain TCP address, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains open connections (bounded).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let Bound { http, tcp, shared } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let tcp_task = tcp.map(|l| {
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        // Accept and drop: the connection closes at once, which is all a
                        // "port open" check needs.
                        r = l.accept() => if let Err(e) = r {
                            tracing::debug!("stub tcp accept: {e}");
                            // Avoid a hot loop on e.g. EMFILE.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        },
                        _ = stop_rx.changed() => break,
                    }
                }
            })
        });
        let app = router(shared);
        let mut graceful_rx = stop_rx.clone();
        let server = axum::serve(http, app).with_graceful_shutdown(async move {
            let _ = graceful_rx.changed().await;
        });
        let server = tokio::spawn(async move { server.await });
        shutdown.await;
        let _ = stop_tx.send(true);
        // Idle keep-alive clients must not keep a stopping stub alive.
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, server).await;
        if let Some(t) = tcp_task {
            let _ = t.await;
        }
    }
}

async fn bind_one(addr: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {}", io_reason(&e)))
}

/// The OS error text without Rust's "(os error 98)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(identity))
        .route("/requests", get(requests))
        .fallback(anything)
        .with_state(shared)
}

async fn healthz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if Instant::now() < s.ready_at {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string());
    }
    // Decrement only while positive, so concurrent probes never underflow the counter.
    let failed = s
        .fail_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1));
    match failed {
        Ok(k) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failing ({} more)", k - 1),
        ),
        Err(_) => (StatusCode::OK, "ok".to_string()),
    }
}

async fn identity(State(s): State<Arc<Shared>>) -> String {
    s.requests.fetch_add(1, Ordering::Relaxed);
    format!("meeseeks stub {} on {}\n", s.name, s.addr)
}

async fn requests(State(s): State<Arc<Shared>>) -> String {
    // This request counts too, so the answer is never stale by one.
    let n = s.requests.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{n}\n")
}

/// Anything else succeeds, so playbook `http` steps (enable a pool, flip a flag) can target a
/// stub.
async fn anything(State(s): State<Arc<Shared>>, method: Method, uri: Uri) -> String {
    s.requests.fetch_add(1, Ordering::Relaxed);
    format!("{} {} {}: ok\n", s.name, method, uri.path())
}

// ------------------------------------------------------------------------------------------
// Foreground

fn foreground(args: &StubArgs) -> i32 {
    let mut ready = args.ready_fd.and_then(ready_pipe);
    let fail = |ready: &mut Option<std::fs::File>, msg: String| {
        if let Some(f) = ready.as_mut() {
            let _ = writeln!(f, "error: {msg}");
        }
        eprintln!("meeseeks stub {}: {msg}", args.name);
        FAILED
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&mut ready, format!("cannot start runtime: {e}")),
    };
    rt.block_on(async {
        let bound = match Bound::bind(args).await {
            Ok(b) => b,
            Err(msg) => return fail(&mut ready, msg),
        };
        // Signal handlers before announcing readiness: a stop right after start must be graceful.
        let shutdown = match shutdown_signal(args.ttl, args.name.clone()) {
            Ok(s) => s,
            Err(msg) => return fail(&mut ready, msg),
        };
        let pid = std::process::id();
        if let Some(p) = &args.pidfile
            && let Err(e) = write_pidfile(p, pid, &bound.http_addr().to_string())
        {
            return fail(
                &mut ready,
                format!("cannot write pidfile {}: {}", p.display(), io_reason(&e)),
            );
        }
        let tcp = bound
            .tcp_addr()
            .map(|a| format!(", tcp on {a}"))
            .unwrap_or_default();
        println!(
            "meeseeks stub {} listening on http://{}{tcp} (pid {pid})",
            args.name,
            bound.http_addr()
        );
        if let Some(mut f) = ready.take() {
            let _ = writeln!(f, "ok {pid} {}", bound.http_addr());
            // Dropping closes the pipe: the parent sees EOF and returns.
        }
        bound.serve(shutdown).await;
        if let Some(p) = &args.pidfile {
            remove_pidfile_if_ours(p, pid);
        }
        0
    })
}

/// The readiness pipe inherited from a detaching parent.
fn ready_pipe(fd: i32) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    // stdio is never a readiness pipe; refusing it avoids closing our own stderr by mistake.
    if fd <= 2 {
        return None;
    }
    // SAFETY: fd was passed by our parent via --ready-fd and is owned by nobody else here.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Completes on SIGTERM, SIGINT or when the TTL elapses.
fn shutdown_signal(
    ttl: Option<Duration>,
    name: String,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        let ttl = async {
            match ttl {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = ttl => "ttl elapsed",
        };
        eprintln!("meeseeks stub {name}: stopping ({why})");
    })
}

// ------------------------------------------------------------------------------------------
// Pidfiles

/// Contents: the pid on the first line (what every pidfile reader expects), then the listen
/// address, so that an idempotent `--detach` can tell "already running here" from a clash.
fn write_pidfile(path: &Path, pid: u32, listen: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{pid}"));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{pid}\nlisten={listen}\n"))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

struct PidInfo {
    pid: i32,
    listen: Option<String>,
}

fn read_pidfile(path: &Path) -> std::io::Result<Option<PidInfo>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let pid = lines
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no valid pid on line 1")
        })?;
    let listen = lines.find_map(|l| l.strip_prefix("listen=").map(str::to_string));
    Ok(Some(PidInfo { pid, listen }))
}

fn remove_pidfile_if_ours(path: &Path, pid: u32) {
    if let Ok(Some(info)) = read_pidfile(path)
        && info.pid == pid as i32
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    // A zombie still answers kill(0) until reaped; it no longer serves anything.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// Whether `pid` looks like a meeseeks stub, so a stale pidfile whose pid was reused by an
/// unrelated process never gets it killed. Without /proc we cannot tell and trust the file.
fn is_stub(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            args.iter().any(|a| *a == b"stub") && args.iter().any(|a| *a == b"--pidfile")
        }
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Waits until `pid` is gone or `limit` elapses. Uses a pidfd where available (wakes exactly on
/// exit, even for a process that is not our child), else polls briefly.
fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    // SAFETY: plain syscalls on integers; the fd is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd >= 0 {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 || left.is_zero() || !alive(pid) {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        unsafe { libc::close(pidfd) };
    }
    // Fallback (no pidfd) and final verdict.
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// ------------------------------------------------------------------------------------------
// --stop

fn stop(pidfile: &Path) -> i32 {
    let shown = pidfile.display();
    let info = match read_pidfile(pidfile) {
        Ok(Some(i)) => i,
        Ok(None) => {
            println!("no pidfile at {shown}: nothing to stop");
            return 0;
        }
        Err(e) => {
            // A pidfile we cannot parse names no process we could safely signal.
            println!(
                "unreadable pidfile {shown} ({}): removing it, nothing to stop",
                io_reason(&e)
            );
            let _ = std::fs::remove_file(pidfile);
            return 0;
        }
    };
    let pid = info.pid;
    if !alive(pid) {
        println!("stub pid {pid} is not running: removing stale pidfile {shown}");
        let _ = std::fs::remove_file(pidfile);
        return 0;
    }
    if !is_stub(pid) {
        println!(
            "pid {pid} from {shown} is not a meeseeks stub (pid reused?): not signalling it, \
             removing the stale pidfile"
        );
        let _ = std::fs::remove_file(pidfile);
        return 0;
    }
    // SAFETY: plain signal to a process we just checked.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            eprintln!(
                "meeseeks stub: cannot stop pid {pid} from {shown}: {}",
                io_reason(&e)
            );
            return FAILED;
        }
    }
    let how = if wait_gone(pid, STOP_GRACE) {
        "stopped"
    } else {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if !wait_gone(pid, Duration::from_secs(2)) {
            eprintln!("meeseeks stub: pid {pid} survived SIGKILL; pidfile {shown} kept");
            return FAILED;
        }
        "killed (did not stop within 5s of SIGTERM)"
    };
    let _ = std::fs::remove_file(pidfile);
    println!("stub pid {pid} {how}; removed {shown}");
    0
}

// ------------------------------------------------------------------------------------------
// --detach

/// The argv of the detached child: the same stub without `--detach`, with an absolute pidfile
/// (the child changes nothing, but `--stop` from another directory must find the same file).
fn child_argv(args: &StubArgs, pidfile: &Path, ready_fd: i32) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["stub".into(), "--name".into(), args.name.clone().into()];
    if let Some(l) = &args.listen {
        v.extend(["--listen".into(), l.into()]);
    }
    v.extend([
        "--ready-after".into(),
        crate::model::fmt_duration(args.ready_after).into(),
        "--fail-checks".into(),
        args.fail_checks.to_string().into(),
    ]);
    if let Some(t) = &args.tcp_listen {
        v.extend(["--tcp-listen".into(), t.into()]);
    }
    if let Some(ttl) = args.ttl {
        v.extend(["--ttl".into(), crate::model::fmt_duration(ttl).into()]);
    }
    v.extend([
        "--pidfile".into(),
        pidfile.as_os_str().to_owned(),
        "--ready-fd".into(),
        ready_fd.to_string().into(),
    ]);
    v
}

fn detach(args: &StubArgs) -> i32 {
    match detach_inner(args) {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(msg) => {
            eprintln!("meeseeks stub {}: {msg}", args.name);
            FAILED
        }
    }
}

fn detach_inner(args: &StubArgs) -> Result<String, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let pidfile = args.pidfile.as_deref().ok_or("--detach needs --pidfile")?;
    let pidfile = std::path::absolute(pidfile)
        .map_err(|e| format!("bad pidfile {}: {e}", pidfile.display()))?;
    let shown = pidfile.display();

    // Idempotent start: a resumed run may re-run the step that already started this stub.
    if let Ok(Some(info)) = read_pidfile(&pidfile)
        && alive(info.pid)
        && is_stub(info.pid)
    {
        if info.listen.as_deref() == args.listen.as_deref() {
            return Ok(format!(
                "meeseeks stub {} already running (pid {}) on {}",
                args.name,
                info.pid,
                info.listen.as_deref().unwrap_or("?")
            ));
        }
        return Err(format!(
            "another stub (pid {}) already runs with pidfile {shown}; stop it with \
             `meeseeks stub --stop --pidfile {shown}`",
            info.pid
        ));
    }

    if let Some(dir) = pidfile.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {}", dir.display(), io_reason(&e)))?;
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the meeseeks executable: {e}"))?;
    let mut log_path = pidfile.as_os_str().to_owned();
    log_path.push(".log");
    let log_path = PathBuf::from(log_path);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {}", log_path.display(), io_reason(&e)))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;

    // Both ends are close-on-exec; only the child's copy of the write end is made inheritable
    // (in pre_exec), so no other process spawned concurrently keeps the pipe open.
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("cannot create pipe: {e}"))?;
    let wfd = writer.as_raw_fd();

    let mut cmd = std::process::Command::new(&exe);
    cmd.args(child_argv(args, &pidfile, wfd))
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: only async-signal-safe calls (setsid, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::fcntl(wfd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(wfd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    // Our copy of the write end must go, or we would never see EOF if the child dies.
    drop(writer);
    let child_pid = child.id();

    // Read the child's one-line report on a helper thread so the wait is bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let r = reader.read_to_string(&mut s).map(|_| s);
        let _ = tx.send(r);
    });
    let report = rx.recv_timeout(START_TIMEOUT);
    let line = match report {
        Ok(Ok(s)) => s.lines().next().unwrap_or("").to_string(),
        Ok(Err(e)) => format!("error: reading child status: {e}"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the stub did not start listening within {}s; killed it (log: {})",
                START_TIMEOUT.as_secs(),
                log_path.display()
            ));
        }
    };
    if line.starts_with("ok ") {
        // Reap the child when it eventually exits, so a long-lived caller (tests, a library
        // user) never accumulates a zombie that would still look alive to kill(pid, 0).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let addr = line.split_whitespace().nth(2).unwrap_or("?");
        return Ok(format!(
            "meeseeks stub {} started (pid {child_pid}) on http://{addr}; pidfile {shown}",
            args.name
        ));
    }
    // The child failed before becoming ready: make sure it is gone and say why.
    let status = child.wait().ok();
    let reason = match line.strip_prefix("error: ") {
        Some(r) => r.to_string(),
        None => match status {
            Some(s) => format!(
                "the stub exited before listening ({s}); see {}",
                log_path.display()
            ),
            None => format!(
                "the stub exited before listening; see {}",
                log_path.display()
            ),
        },
    };
    Err(reason)
}
