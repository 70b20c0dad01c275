//! Network actions: one HTTP request with expectations, one TCP connect. Both bounded by a
//! timeout; errors are one readable line.

use std::time::Duration;

use crate::model::HttpSpec;

/// The HTTP client shared by every step and check of a run (connection pooling, one TLS setup).
pub fn http_client() -> Result<reqwest::Client, String> {
    // reqwest is built without a default crypto provider; install ring once per process.
    // An error only means it is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("meeseeks/", env!("CARGO_PKG_VERSION")))
        // Health endpoints are polled repeatedly: do not let a half-dead pooled connection turn
        // into a false negative.
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// How much of a response body is read: enough for `expect_body` and the excerpt shown on
/// failure, never the whole of a multi-gigabyte answer.
pub const BODY_LIMIT: usize = 1 << 20;

/// How much of the body a failure shows.
const EXCERPT: usize = 512;

/// Outcome of one HTTP attempt: `Ok(status line)` or `Err(reason, body excerpt)`. `timeout`
/// bounds the whole exchange (connect, request, headers and the part of the body read).
pub async fn http(
    client: &reqwest::Client,
    spec: &HttpSpec,
    timeout: Duration,
) -> Result<String, (String, String)> {
    match tokio::time::timeout(timeout, exchange(client, spec, timeout)).await {
        Ok(r) => r,
        Err(_) => Err((
            format!("timed out after {}", crate::model::fmt_duration(timeout)),
            String::new(),
        )),
    }
}

async fn exchange(
    client: &reqwest::Client,
    spec: &HttpSpec,
    timeout: Duration,
) -> Result<String, (String, String)> {
    let method =
        reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            (
                format!("invalid HTTP method `{}`", spec.method),
                String::new(),
            )
        })?;
    let mut req = client.request(method, &spec.url).timeout(timeout);
    for (k, v) in &spec.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &spec.body {
        req = req.body(b.clone());
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| (describe(&e), String::new()))?;
    let status = resp.status();
    let status_ok = if spec.expect_status.is_empty() {
        status.is_success()
    } else {
        spec.expect_status.contains(&status.as_u16())
    };
    // Read only what is needed: nothing for a status-only check, up to the expected text (or
    // the limit) for `expect_body`, an excerpt for a failure. Dropping the response closes the
    // connection on whatever is left.
    let want = spec.expect_body.as_deref().map(str::as_bytes);
    let limit = match (status_ok, want) {
        (true, None) => return Ok(format!("HTTP {status}")),
        (false, _) => EXCERPT + 1,
        (true, Some(_)) => BODY_LIMIT,
    };
    let mut body: Vec<u8> = Vec::new();
    let mut found = false;
    while body.len() < limit {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                return Err((format!("HTTP {status}: {}", describe(&e)), excerpt(&body)));
            }
        };
        let from = body.len().saturating_sub(want.map_or(0, |w| w.len()));
        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
        if status_ok
            && let Some(w) = want
            && memchr::memmem::find(&body[from..], w).is_some()
        {
            found = true;
            break;
        }
    }
    if !status_ok {
        let want = if spec.expect_status.is_empty() {
            "2xx".to_string()
        } else {
            spec.expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join("|")
        };
        return Err((format!("HTTP {status}, expected {want}"), excerpt(&body)));
    }
    if !found {
        let within = if body.len() >= BODY_LIMIT {
            " within its first 1 MiB"
        } else {
            ""
        };
        return Err((
            format!(
                "HTTP {status}, body does not contain {:?}{within}",
                spec.expect_body.as_deref().unwrap_or_default()
            ),
            excerpt(&body),
        ));
    }
    Ok(format!("HTTP {status}"))
}

/// The start of a body, as text, for the operator.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT)];
    let mut b = String::from_utf8_lossy(head).into_owned();
    if head.len() < body.len() {
        b.push('…');
    }
    b
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    // The chain carries the useful part ("Connection refused").
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Succeeds when a TCP connection to `addr` (`host:port`) is established within `timeout`.
pub async fn tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("tcp {addr}: {e}")),
        Err(_) => Err(format!(
            "tcp {addr}: timed out after {}",
            crate::model::fmt_duration(timeout)
        )),
    }
}
