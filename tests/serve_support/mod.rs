//! Shared by the `serve` tests: the real binary as a server and as a drill of
//! `tests/fixtures/war-room` (stand-ins on ports the OS picked), stopped on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

// The serve tests' crates have no `mod common` (its exec helpers are not theirs): the binary
// helpers come in alone.
#[path = "../common/cli.rs"]
mod cli;
pub use cli::{copy_dir, meeseeks};

pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/war-room")
}

/// A private copy of the fixture beside the test's state directory: a DR directory is locked
/// by the drill acting on it, so two tests must not drill the same one at once.
pub fn dr_dir(state: &Path) -> PathBuf {
    let dir = state.with_file_name("dr");
    if !dir.exists() {
        copy_dir(&fixture(), &dir);
    }
    dir
}

/// A port nobody listens on right now (the OS picks it; released before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `meeseeks serve` on an OS-picked port; SIGTERM on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(state: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = meeseeks();
        cmd.arg("serve")
            .arg(dr_dir(state))
            .arg("--state-dir")
            .arg(state)
            .args(extra);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its address");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .trim_end_matches('/')
            .replace("0.0.0.0", "127.0.0.1");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A drill of the fixture; killed (and its stand-ins stopped) on drop if still running.
pub struct Drill {
    pub child: Child,
    pub state: PathBuf,
    pub run_id: String,
}

impl Drill {
    pub fn start(state: &Path, extra: &[&str]) -> Drill {
        let (db, api) = (free_port(), free_port());
        let child = meeseeks()
            .arg("drill")
            .arg(dr_dir(state))
            .arg("--state-dir")
            .arg(state)
            .args(["--no-progress", "--var"])
            .arg(format!("db_port={db}"))
            .arg("--var")
            .arg(format!("api_port={api}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let runs = state.join("runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let run_id = loop {
            let id = std::fs::read_dir(&runs).ok().and_then(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| !n.starts_with('.'))
            });
            if let Some(id) = id {
                break id;
            }
            assert!(Instant::now() < deadline, "the drill created no run");
            std::thread::sleep(Duration::from_millis(20));
        };
        Drill {
            child,
            state: state.to_path_buf(),
            run_id,
        }
    }

    /// Waits (bounded) for the drill to end; returns its exit code and output.
    pub fn finish(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                use std::io::Read;
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut out);
                }
                return (st.code(), out);
            }
            assert!(
                Instant::now() < deadline,
                "the drill did not finish in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(
            self.state
                .join("runs")
                .join(&self.run_id)
                .join("journal.jsonl"),
        )
        .unwrap_or_default()
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Stand-ins a killed drill left running.
        let dir = self.state.join("runs").join(&self.run_id);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.filter_map(Result::ok) {
                if e.path().extension().is_some_and(|x| x == "pid") {
                    let _ = meeseeks()
                        .args(["stub", "--stop", "--pidfile"])
                        .arg(e.path())
                        .output();
                }
            }
        }
    }
}

/// Polls `f` every 50 ms until it returns Some, for at most `within`.
pub async fn until<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads Server-Sent Events from a response: (event name, id, data) per event.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

impl Sse {
    pub fn new(resp: reqwest::Response) -> Sse {
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (comments and `retry:` skipped), or None at the end of the stream.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut ev = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("an SSE event in time")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
