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
