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

/// Outcome of one HTTP attempt: `Ok(status line)` or `Err(reason, body excerpt)`.
pub async fn http(
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
    let resp = req
        .send()
        .await
        .map_err(|e| (describe(&e), String::new()))?;
    let status = resp.status();
    // Read the body within the same overall timeout (set on the request).
    let body = resp
        .text()
        .await
        .map_err(|e| (format!("HTTP {status}: {}", describe(&e)), String::new()))?;
    let status_ok = if spec.expect_status.is_empty() {
        status.is_success()
    } else {
        spec.expect_status.contains(&status.as_u16())
    };
    let excerpt = || {
        let mut b: String = body.chars().take(512).collect();
        if b.len() < body.len() {
            b.push('…');
        }
        b
    };
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
        return Err((format!("HTTP {status}, expected {want}"), excerpt()));
    }
    if let Some(want) = &spec.expect_body
        && !body.contains(want.as_str())
    {
        return Err((
            format!("HTTP {status}, body does not contain {want:?}"),
            excerpt(),
        ));
    }
    Ok(format!("HTTP {status}"))
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
