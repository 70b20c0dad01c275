//! Small shared helpers.

/// From this many services on, independent parts of loading, planning, rendering the plan's
/// JSON and auditing run side by side on two threads (see [`join`]). Starting and joining a
/// thread costs some tens of microseconds; at this size the overlapped parts take some
/// hundreds each and two threads are already measurably faster (a 4096-service plan: ~2.4 →
/// ~2.0 ms), below it the gain shrinks towards that cost. The usual graph, tens to hundreds
/// of services, stays on one thread.
pub const PARALLEL_MIN_SCOPE: usize = 4096;

/// Maps keyed by names from the user's own files (services, steps, the commands they run):
/// hash flooding is not a threat worth SipHash's cost on 400 000 lookups, so they use
/// foldhash (a fixed seed: the same graph loads the same way every time).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Lower-case hex of `bytes`. A run's meta.json holds a sha256 per input file (2 001 on a
/// 2 000-service directory), and a `write!` per byte was a millisecond of the run's start.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(super::hex(&[]), "");
    }
}
