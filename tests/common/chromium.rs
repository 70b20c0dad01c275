//! Headless Chromium for the HTML reports: `dump_dom(file)` is the DOM the browser built
//! from a page, or `None` (and a note) when no Chromium is installed. Included with
//! `#[path = "common/chromium.rs"] mod chromium;` by the tests that need it.

use std::path::{Path, PathBuf};

fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Opens `html` in headless Chromium (a fresh profile, no network chatter) and returns the
/// DOM it rendered; `None` when Chromium is absent (the caller's test then skips that part).
pub fn dump_dom(html: &Path) -> Option<String> {
    let Some(chrome) = browser() else {
        eprintln!("skipped the browser rendering: no chromium on PATH");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
