//! Small shared helpers.

/// From this many services on, independent parts of loading, planning, rendering the plan's
/// JSON and auditing run side by side on two threads (see [`join`]). Starting and joining a
/// thread costs some tens of microseconds; at this size the overlapped parts take some
/// hundreds each and two threads are already measurably faster (a 4096-service plan: ~2.4 →
/// ~2.0 ms), below it the gain shrinks towards that cost. The usual graph, tens to hundreds
/// of services, stays on one thread.
pub const PARALLEL_MIN_SCOPE: usize = 4096;

/// Runs `a` and `b` and returns both results: side by side, `a` on a scoped thread and `b` on
/// this one, when `parallel`; else one after the other on this thread, so that small inputs
/// do not pay for starting a thread. A panic in either is propagated.
pub fn join<A: Send, B>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if !parallel {
        let a = a();
        return (a, b());
    }
    std::thread::scope(|s| {
        let h = s.spawn(a);
        let b = b();
        let a = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (a, b)
    })
}

/// The last `n` lines of `text` (trailing blank space dropped).
pub fn last_lines(text: &str, n: usize) -> String {
    let t = text.trim_end();
    let mut start = t.len();
    for _ in 0..n {
        match t[..start].rfind('\n') {
            Some(i) => start = i,
            None => return t.to_string(),
        }
    }
    t[start + 1..].to_string()
}

/// The host name (gethostname(2)), or "unknown".
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `user@host` of the current process, for approvals, abandon records and lock holders.
pub fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("{user}@{}", hostname())
}
