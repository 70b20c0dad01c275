//! Secret masking. Every value read through `{{ secret.NAME }}` is registered here, and every
//! string that may be printed, logged, journaled or reported passes through `Masker::mask`.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

pub const MASK: &str = "***";

/// Shared, cheaply clonable set of secret values to hide.
#[derive(Clone, Default, Debug)]
pub struct Masker {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Masker {
    pub fn new() -> Masker {
        Masker::default()
    }

    /// Registers a secret value. Empty values are ignored (masking "" would mangle everything).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so that a secret containing another is masked whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.read().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// `text` with every registered secret replaced by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| text.contains(s.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
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
}
