//! The CI part of fuzzing (`examples/fuzz.rs` is the long one): every target for a fixed
//! number of executions from a fixed seed, and every saved regression input replayed. Both
//! are deterministic; a panic in any target fails the test with the input that caused it.

#[path = "../fuzz/engine.rs"]
mod engine;

use std::time::Duration;

/// Executions per target: a few seconds each in a debug build.
const EXECS: u64 = 300;

/// The first problem of `target`, if any.
fn check(target: &str) -> Option<String> {
    for (path, input) in engine::regressions(target) {
        let s = engine::Scratch::new();
        if let Err(p) = engine::execute(target, &input, &s) {
            return Some(format!(
                "{target}: regression input {} panics again: {p}",
                path.display()
            ));
        }
    }
    let f = engine::fuzz(target, 0x5eed, Duration::from_secs(3600), EXECS, None);
    assert_eq!(f.executions, EXECS);
    let (site, input) = f.crashes.iter().next()?;
    Some(format!(
        "{target}: {} crash(es); first: {site}\ninput ({} bytes): {:?}",
        f.crashes.len(),
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(2000)])
    ))
}

/// One test for all targets: the panic hook that records crashes is process-wide.
#[test]
fn fuzz_every_target_briefly_and_replay_regressions() {
    engine::quiet_panics();
    let problems: Vec<String> = engine::TARGETS.iter().filter_map(|t| check(t)).collect();
    // The default hook back, so that the failure below is printed.
    let _ = std::panic::take_hook();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
