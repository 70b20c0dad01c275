//! The README's main command: a real drill of the bundled demo, stand-ins started and
//! health-checked over real HTTP/TCP, cleaned up afterwards, nothing left running.

mod common;

/// Live (non-zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !common::pid_dead(pid) {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

/// The demo listens on fixed ports: its drills must not overlap.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn drill_of_the_shop_demo_recovers_everything_and_leaves_nothing_running() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let out = common::meeseeks()
        .args(["drill", "--no-progress", "--state-dir"])
        .arg(state.path())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("SUCCEEDED — 27/27 recovered"), "{stdout}");
    assert!(stdout.contains("RTO: 27 met, 0 breached"), "{stdout}");
    assert!(
        stdout.contains("Cleanup: done, 27 of 27 steps succeeded"),
        "{stdout}"
    );
    // Real checks ran against the stand-ins.
    assert!(
        stderr.contains("checkout: check \"healthz\" passed"),
        "{stderr}"
    );
    let left = processes_mentioning(&state.path().display().to_string());
    assert!(left.is_empty(), "still running after the drill: {left:?}");
}

#[test]
fn a_drill_kept_running_is_cleaned_up_by_meeseeks_cleanup() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let needle = state.path().display().to_string();
    let out = common::meeseeks()
        .args(["drill", "-q", "--no-cleanup", "--state-dir"])
        .arg(state.path())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let running = processes_mentioning(&needle);
    assert_eq!(running.len(), 27, "one stand-in per service: {running:?}");
    let out = common::meeseeks()
        .args(["cleanup", "--no-progress", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("27 of 27 steps succeeded"), "{stdout}");
    // Dependents first: checkout stops before the databases it needs.
    let pos = |s: &str| stderr.find(&format!("{s}: step \"cleanup/")).expect(s);
    assert!(pos("checkout") < pos("orders-db"), "{stderr}");
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "still running after cleanup: {left:?}");
}
