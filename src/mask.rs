//! Secret masking. Every value read through `{{ secret.NAME }}` is registered here, together
//! with every value a template derived from it (see `template::render_tainted`), and every
//! string that may be printed, logged, journaled or reported passes through `Masker::mask`.
//!
//! A value is masked in the forms it takes on its way out of the process, not only literally:
//! JSON-escaped, percent-encoded (the WHATWG URL sets reqwest's parser applies to paths,
//! queries and user info, a whole component, and form encoding), and base64 at each of the
//! three alignments it can have inside a longer encoded text (an `Authorization: Basic` header
//! of `user:password`), the way CI systems mask secrets in logs.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

pub const MASK: &str = "***";

/// A base64 core shorter than this is not registered: it would hide unrelated text.
const MIN_ENCODED: usize = 4;

/// Shared, cheaply clonable set of secret values to hide.
#[derive(Clone, Default, Debug)]
pub struct Masker {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default, Debug)]
struct Inner {
    /// Every form of every secret, unique.
    patterns: Vec<String>,
    /// Built from `patterns` on the first `mask` after a change.
    matcher: Option<Arc<AhoCorasick>>,
}

// WHATWG URL percent-encode sets (what the `url` crate, and so reqwest, applies).
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
const SPECIAL_QUERY: &AsciiSet = &QUERY.add(b'\'');
const PATH: &AsciiSet = &QUERY.add(b'?').add(b'^').add(b'`').add(b'{').add(b'}');
const USERINFO: &AsciiSet = &PATH
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'|');
const COMPONENT: &AsciiSet = &USERINFO.add(b'$').add(b'%').add(b'&').add(b'+').add(b',');
/// application/x-www-form-urlencoded (spaces then become `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The forms `value` may take on its way out: itself, JSON-escaped, percent-encoded, base64.
pub fn encoded_forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if let Ok(j) = serde_json::to_string(value) {
        out.push(j[1..j.len() - 1].to_string());
    }
    for set in [
        QUERY,
        SPECIAL_QUERY,
        PATH,
        USERINFO,
        COMPONENT,
        NON_ALPHANUMERIC,
    ] {
        out.push(utf8_percent_encode(value, set).to_string());
    }
    out.push(
        utf8_percent_encode(value, FORM)
            .to_string()
            .replace("%20", "+"),
    );
    let bytes = value.as_bytes();
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3usize {
            // Encoded after `offset` unknown bytes and before unknown ones: only the characters
            // that depend on the value alone are certain.
            let mut buf = vec![0u8; offset];
            buf.extend_from_slice(bytes);
            let enc = engine.encode(&buf);
            let skip = [0, 2, 3][offset];
            let drop = usize::from(buf.len() % 3 != 0);
            if enc.len() >= skip + drop + MIN_ENCODED {
                out.push(enc[skip..enc.len() - drop].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Masker {
    pub fn new() -> Masker {
        Masker::default()
    }

    /// Registers a secret value (and its encoded forms). Empty values are ignored (masking ""
    /// would mangle everything).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if g.patterns.iter().any(|p| p == secret) {
            return;
        }
        for f in encoded_forms(secret) {
            if !f.is_empty() && !g.patterns.contains(&f) {
                g.patterns.push(f);
            }
        }
        g.matcher = None;
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .map(|s| s.patterns.is_empty())
            .unwrap_or(true)
    }

    fn matcher(&self) -> Option<Arc<AhoCorasick>> {
        {
            let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if g.patterns.is_empty() {
                return None;
            }
            if let Some(m) = &g.matcher {
                return Some(m.clone());
            }
        }
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if g.matcher.is_none() {
            // Leftmost-longest: a secret containing another is masked whole.
            let m = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&g.patterns)
                .ok()?;
            g.matcher = Some(Arc::new(m));
        }
        g.matcher.clone()
    }

    /// `text` with every registered secret (in any of its forms) replaced by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(m) = self.matcher() else {
            return Cow::Borrowed(text);
        };
        if !m.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        m.replace_all_with(text, &mut out, |_, _, dst| {
            dst.push_str(MASK);
            true
        });
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new();
        m.add("abc");
        m.add("abcdef");
        m.add("");
        assert_eq!(m.mask("x abcdef y abc z"), "x *** y *** z");
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_encoded_forms() {
        let m = Masker::new();
        m.add("p@ss w/rd\"x");
        for leak in [
            "https://h/x?t=p@ss%20w/rd%22x",
            "https://u:p%40ss%20w%2Frd%22x@h/",
            "token=p%40ss+w%2Frd%22x",
            "{\"t\":\"p@ss w/rd\\\"x\"}",
        ] {
            let masked = m.mask(leak);
            assert!(masked.contains(MASK), "{leak} -> {masked}");
            assert!(!masked.contains("ss"), "{leak} -> {masked}");
        }
        // Basic auth: base64("admin:" + secret), at whatever alignment it falls.
        for user in ["a:", "ad:", "adm:"] {
            let enc = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}p@ss w/rd\"x").as_bytes());
            let masked = m.mask(&enc);
            assert!(masked.contains(MASK), "{user}: {enc} -> {masked}");
            assert!(masked.len() < enc.len(), "{user}: {enc} -> {masked}");
        }
    }
}
