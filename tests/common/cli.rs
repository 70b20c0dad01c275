//! The real binary, run by the tests as a person would: one command builder with a clean
//! environment, its output as (exit code, stdout, stderr), and DR directories in temp dirs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The real binary, with nothing of the developer's environment that would change what it
/// does: no colour, no log filter, no run store or API token from the shell, no terminal on
/// stdin (a manual step waits for `approve` instead of prompting). Tests add what they need.
pub fn meeseeks() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meeseeks"));
    c.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("MEESEEKS_STORE")
        .env_remove("MEESEEKS_TOKEN")
        .stdin(Stdio::null());
    c
}

/// [`meeseeks`] run in `dir` (a DR directory, or where its state lives).
pub fn meeseeks_in(dir: &Path) -> Command {
    let mut c = meeseeks();
    c.current_dir(dir);
    c
}

/// Runs `c`: (exit code, stdout, stderr); -1 when a signal ended it.
pub fn output(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("run meeseeks");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary with `args`: (exit code, stdout, stderr).
pub fn bin(args: &[&str]) -> (i32, String, String) {
    output(meeseeks().args(args))
}

/// Writes `text` to `dir/rel`, creating its directories.
pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A DR directory in a temp dir holding `files` (path relative to it, text).
pub fn dr(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, text) in files {
        write(d.path(), p, text);
    }
    d
}

/// `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies the directory `from` into `to` (created), leaving out run state (`.meeseeks`), so a
/// test drills its own copy of a fixture: a DR directory is locked by the run acting on it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != ".meeseeks" {
                copy_dir(&e.path(), &target);
            }
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
