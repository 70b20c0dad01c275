//! HTTP steps and checks against hostile answers (issue 12 item 5): an endless or dripping body
//! is read only as far as needed (nothing for a status-only check, at most 1 MiB for
//! `expect_body`), and the timeout bounds the whole exchange, body included. The servers are
//! real TCP servers on 127.0.0.1 writing raw HTTP/1.1.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meeseeks::exec::probe;
use meeseeks::model::HttpSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves every connection a 200 whose body never ends: `chunk` bytes of `fill`, then `pause`,
/// forever. `prefix` is sent first.
async fn endless(prefix: &'static str, fill: u8, chunk: usize, pause: Duration) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(prefix.as_bytes()).await.is_err()
                {
                    return;
                }
                let data = vec![fill; chunk];
                loop {
                    if s.write_all(&data).await.is_err() {
                        return;
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}/")
}

fn spec(url: &str, expect_body: Option<&str>) -> HttpSpec {
    HttpSpec {
        method: "GET".into(),
        url: url.into(),
        headers: BTreeMap::new(),
        body: None,
        expect_status: vec![],
        expect_body: expect_body.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_only_check_reads_no_body() {
    let url = endless("", b'a', 64 * 1024, Duration::ZERO).await;
    let client = probe::http_client().unwrap();
    let r = probe::http(&client, &spec(&url, None), Duration::from_secs(30)).await;
    assert_eq!(r, Ok("HTTP 200 OK".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_body_stops_reading_once_found_or_at_the_limit() {
    let url = endless("status: ready\n", b'a', 64 * 1024, Duration::ZERO).await;
    let client = probe::http_client().unwrap();
    let r = probe::http(&client, &spec(&url, Some("ready")), Duration::from_secs(30)).await;
    assert_eq!(r, Ok("HTTP 200 OK".to_string()));

    let r = probe::http(&client, &spec(&url, Some("never")), Duration::from_secs(30)).await;
    let (err, excerpt) = r.unwrap_err();
    assert!(err.contains("within its first 1 MiB"), "{err}");
    assert!(excerpt.starts_with("status: ready"), "{excerpt}");
    assert!(
        excerpt.len() < 1024,
        "the excerpt is bounded: {}",
        excerpt.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_bounds_a_dripping_body() {
    // One byte every 50 ms: the limit is never reached, the text never comes.
    let url = endless("", b'a', 1, Duration::from_millis(50)).await;
    let client = probe::http_client().unwrap();
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let r = probe::http(&client, &spec(&url, Some("never")), timeout).await;
    let (err, _) = r.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    // Generous: the point is that it returns, not how fast.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
