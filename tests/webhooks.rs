//! Webhooks that misbehave cost the run nothing (issue 12 item 6): deliveries are concurrent
//! per hook, a silent endpoint (accepts, never answers) is abandoned at exit without waiting,
//! every notification is accounted for, and `[[notify]]` URLs and headers may carry secrets.
//! The endpoints are real TCP servers on 127.0.0.1.

mod common;
use common::write;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meeseeks::events::{Event, Record};
use meeseeks::mask::Masker;
use meeseeks::model::{Notify, NotifyFormat};
use meeseeks::notify::{Notifier, NotifyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that reads each request head, logs it, and answers 200 only once `together`
/// requests are held at the same time (`together = 0`: never answers).
async fn server(together: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(tokio::sync::Notify::new());
    let count = Arc::new(Mutex::new(0usize));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (log, held, count) = (log2.clone(), held.clone(), count.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req).into_owned();
                log.lock().unwrap().push(head);
                if together == 0 {
                    // Silent: hold the connection, never answer.
                    let _ = s.read(&mut buf).await;
                    std::future::pending::<()>().await;
                }
                let n = {
                    let mut c = count.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n >= together {
                    held.notify_waiters();
                } else {
                    held.notified().await;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (base, log)
}

fn rec(seq: u64) -> Record {
    Record {
        seq,
        ts: "2026-11-26T12:00:00Z".parse().unwrap(),
        event: Event::ServiceStarted {
            service: format!("s{seq}"),
        },
    }
}

fn hook(url: String) -> Notify {
    Notify {
        url,
        format: NotifyFormat::Json,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_one_hook_are_concurrent() {
    // The server answers only once three requests are in flight at once: one-at-a-time
    // delivery would never see an answer.
    let (base, log) = server(3).await;
    let n = Notifier::with_options(
        &[hook(format!("{base}/h"))],
        Masker::new(),
        "r1",
        None,
        NotifyOptions {
            timeout: Duration::from_secs(20),
            ..NotifyOptions::default()
        },
    );
    for seq in 1..=3 {
        n.send(&rec(seq));
    }
    let stats = n.close(Duration::from_secs(30)).await;
    assert_eq!(stats.delivered, 3, "{stats:?} {:?}", log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_hook_is_abandoned_at_exit_without_waiting_and_counted() {
    let (silent, _) = server(0).await;
    let n = Notifier::with_options(
        &[hook(format!("{silent}/h"))],
        Masker::new(),
        "r1",
        None,
        NotifyOptions {
            timeout: Duration::from_millis(300),
            concurrency: 2,
            queue: 4,
            ..NotifyOptions::default()
        },
    );
    n.send(&rec(1));
    // Until the first request has timed out: the hook is known silent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while n.stats().failed == 0 {
        assert!(
            Instant::now() < deadline,
            "the first delivery never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for seq in 2..=20 {
        n.send(&rec(seq));
    }
    let started = Instant::now();
    let stats = n.close(Duration::from_secs(60)).await;
    // Before: close waited for every queued delivery to time out in turn, retries included.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "close waited {:?} for a silent hook",
        started.elapsed()
    );
    assert!(stats.abandoned > 0 && stats.dropped > 0, "{stats:?}");
    // Nothing is lost silently: every notification is accounted for.
    assert_eq!(
        stats.delivered + stats.failed + stats.abandoned + stats.dropped,
        20,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_silent_templated_hook_exits_promptly_and_masks_its_secret() {
    let (silent, log) = server(0).await;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        &format!(
            r#"
[vars]
channel = "dr-room"

[[notify]]
url = "{silent}/hooks/{{{{ channel }}}}/{{{{ secret.MS_HOOK_TOKEN }}}}"
headers = {{ Authorization = "Bearer {{{{ secret.MS_HOOK_TOKEN | upper }}}}" }}

[services.a]
tier = 0
rto = "5m"
"#
        ),
    );
    write(
        dir,
        "playbooks/a.toml",
        "[[steps]]\nname = \"s\"\nrun = \"true\"\n",
    );
    let dir2 = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        common::meeseeks()
            .env("MS_HOOK_TOKEN", "hook-s3cret")
            .args(["run", "."])
            .current_dir(&dir2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("abandoned at exit"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("s3cret"), "{stderr}");
    let journal = std::fs::read_dir(dir.join(".meeseeks/runs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).unwrap_or_default())
        .collect::<String>();
    assert!(!journal.to_lowercase().contains("s3cret"), "{journal}");
    // Rendered at send time: the endpoint got the secret in its path and header.
    let heads = log.lock().unwrap().join("\n");
    assert!(
        heads.contains("POST /hooks/dr-room/hook-s3cret "),
        "{heads}"
    );
    assert!(
        heads
            .to_lowercase()
            .contains("authorization: bearer hook-s3cret"),
        "{heads}"
    );
}
