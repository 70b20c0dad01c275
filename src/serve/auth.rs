//! Who may approve: the bearer token and the listen-address rule.
//!
//! The token travels in the `Authorization: Bearer TOKEN` header, never in a cookie, so a
//! page on another site cannot make the operator's browser send it (no CSRF). It is compared
//! in constant time over SHA-256 digests of both sides: neither its content nor its length
//! leaks through the time a wrong guess takes.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token an approval must carry; only its digest is kept.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    pub fn new(secret: &str) -> Token {
        Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&d).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// `Authorization: Bearer TOKEN` (scheme case-insensitive, RFC 7235).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Whether every address the server listens on is a loopback address.
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
}

/// Reads the token: `--token-file` first (trailing newline trimmed), else `MEESEEKS_TOKEN`.
/// An empty token is an error, not "no token".
pub fn load_token(
    file: Option<&std::path::Path>,
    env: Option<String>,
) -> crate::Result<Option<Token>> {
    let (secret, from) = match (file, env) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                crate::Error::Usage(format!("cannot read --token-file {}: {e}", p.display()))
            })?;
            warn_if_readable_by_others(p);
            (
                text.trim_end_matches(['\n', '\r']).to_string(),
                format!("--token-file {}", p.display()),
            )
        }
        (None, Some(v)) => (v, "MEESEEKS_TOKEN".to_string()),
        (None, None) => return Ok(None),
    };
    if secret.trim().is_empty() {
        return Err(crate::Error::Usage(format!(
            "{from} holds an empty token; put a long random string in it (e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(Some(Token::new(&secret)))
}

fn warn_if_readable_by_others(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p)
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} is readable by other users (chmod 600 it)",
            p.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let t = Token::new("s3cret-token");
        assert!(t.matches("s3cret-token"));
        assert!(!t.matches("s3cret-tokeN"));
        assert!(!t.matches("s3cret-token "));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn loopback_rule() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(all_loopback(&[a("127.0.0.1:8080")]));
        assert!(all_loopback(&[a("[::1]:8080"), a("127.0.0.2:1")]));
        assert!(!all_loopback(&[a("0.0.0.0:8080")]));
        assert!(!all_loopback(&[a("127.0.0.1:1"), a("10.0.0.1:1")]));
        assert!(!all_loopback(&[]));
    }

    #[test]
    fn empty_token_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tok");
        std::fs::write(&p, "\n").unwrap();
        assert!(load_token(Some(&p), None).is_err());
        assert!(load_token(None, Some(String::new())).is_err());
        std::fs::write(&p, "abc\n").unwrap();
        assert!(load_token(Some(&p), None).unwrap().unwrap().matches("abc"));
        assert!(load_token(None, None).unwrap().is_none());
    }
}
