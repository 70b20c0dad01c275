//! Connection probes: resolve, connect and, for https, a TLS handshake that reads the server's
//! certificate. No request is ever sent: a step's endpoint (`POST /api/pools/...`) must not
//! see anything but a connection.
//!
//! Trust is decided by the same verifier the executor's HTTP client uses
//! (`rustls-platform-verifier`: the system's roots, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured),
//! so "trusted here" means "a run's request would be accepted". The verdict is recorded rather
//! than enforced, so that an untrusted or expired certificate is still read and reported.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Certificate, JobResult, Status};
use crate::model::fmt_duration;

/// What TLS probes share during one evaluation.
pub(super) struct Tls {
    provider: Arc<CryptoProvider>,
    /// `Err` when this host has no CA certificates: validity is then unknown.
    verifier: Result<Arc<rustls_platform_verifier::Verifier>, String>,
}

impl Tls {
    /// Loads the system's roots (again for each evaluation, so that `--every` sees changes).
    pub fn new() -> Tls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map(Arc::new)
            .map_err(|e| e.to_string());
        Tls { provider, verifier }
    }
}

/// Records the platform verifier's verdict instead of failing the handshake with it.
#[derive(Debug)]
struct Capture {
    inner: Option<Arc<rustls_platform_verifier::Verifier>>,
    provider: Arc<CryptoProvider>,
    verdict: Mutex<Option<Result<(), String>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("no CA certificates on this host".to_string()),
        };
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn fail(status: Status, reason: String) -> JobResult {
    JobResult::problem(status, reason)
}

/// Resolves `host`, connects to `port` and, with `tls`, reads the certificate; all within
/// `timeout`.
pub(super) async fn connect(
    tls_ctx: &Tls,
    host: &str,
    port: u16,
    tls: bool,
    timeout: Duration,
    cert_min_days: i64,
) -> JobResult {
    let deadline = Instant::now() + timeout;
    let within = fmt_duration(timeout);
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return fail(
                    Status::NotReady,
                    format!("`{host}` does not resolve: no answer within {within}"),
                );
            }
            Ok(Err(e)) => {
                return fail(Status::NotReady, format!("`{host}` does not resolve: {e}"));
            }
            Ok(Ok(a)) => a.collect(),
        };
    if addrs.is_empty() {
        return fail(
            Status::NotReady,
            format!("`{host}` does not resolve: no address"),
        );
    }
    let mut last = String::new();
    let mut stream = None;
    for a in &addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {
                last = format!("no connection within {within}");
                break;
            }
        }
    }
    let Some(stream) = stream else {
        return fail(
            Status::NotReady,
            format!("{host}:{port} does not accept connections: {last}"),
        );
    };
    if !tls {
        return JobResult::default();
    }
    handshake(
        tls_ctx,
        stream,
        host,
        port,
        deadline,
        &within,
        cert_min_days,
    )
    .await
}

async fn handshake(
    ctx: &Tls,
    stream: TcpStream,
    host: &str,
    port: u16,
    deadline: Instant,
    within: &str,
    cert_min_days: i64,
) -> JobResult {
    let target = format!("{host}:{port}");
    let capture = Arc::new(Capture {
        inner: ctx.verifier.as_ref().ok().cloned(),
        provider: ctx.provider.clone(),
        verdict: Mutex::new(None),
    });
    let config = match rustls::ClientConfig::builder_with_provider(ctx.provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(capture.clone())
            .with_no_client_auth(),
        Err(e) => return fail(Status::Unknown, format!("TLS setup failed: {e}")),
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        return fail(
            Status::NotReady,
            format!("`{host}` is not a valid TLS server name"),
        );
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
        Err(_) => {
            return fail(
                Status::NotReady,
                format!("{target}: no TLS handshake within {within}"),
            );
        }
        Ok(Err(e)) => {
            return fail(
                Status::NotReady,
                format!("{target}: TLS handshake failed: {e}"),
            );
        }
        Ok(Ok(s)) => s,
    };
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    drop(tls);
    let verdict = capture
        .verdict
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| Err("no certificate was presented".into()));
    let Some(not_after) = der.as_deref().and_then(not_after) else {
        return fail(
            Status::NotReady,
            format!("{target}: cannot read the server's certificate"),
        );
    };
    let now = jiff::Timestamp::now();
    let days_left = (not_after.as_second() - now.as_second()).div_euclid(86_400);
    let mut out = JobResult {
        certificate: Some(Certificate {
            target: target.clone(),
            not_after,
            days_left,
            trusted: verdict.is_ok(),
        }),
        ..JobResult::default()
    };
    let problem = match verdict {
        Err(_) if not_after < now => Some((
            Status::NotReady,
            format!(
                "TLS certificate of {target} expired {} days ago (not after {not_after})",
                -days_left
            ),
        )),
        Err(e) if ctx.verifier.is_err() => Some((
            Status::Unknown,
            format!("cannot tell whether the TLS certificate of {target} is trusted: {e}"),
        )),
        Err(e) => Some((
            Status::NotReady,
            format!("TLS certificate of {target} would be rejected by a run: {e}"),
        )),
        Ok(()) if days_left < cert_min_days => Some((
            Status::NotReady,
            format!(
                "TLS certificate of {target} expires in {days_left} day{} (not after {not_after}), under the {cert_min_days}-day minimum (--cert-min-days)",
                if days_left == 1 { "" } else { "s" }
            ),
        )),
        Ok(()) => None,
    };
    out.problems.extend(problem);
    out
}

/// The end of a DER certificate's validity.
fn not_after(der: &[u8]) -> Option<jiff::Timestamp> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}
