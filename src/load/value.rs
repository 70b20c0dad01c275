//! Typed reads from spanned TOML values (`toml`'s `DeValue`: playbooks and templates; graph.toml
//! is read through `gvalue` from the compact tree), each failure a diagnostic (never an early return that
//! would hide the next problem).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diag, Diagnostics, SourceFile};

pub type SV<'i> = Spanned<DeValue<'i>>;

/// A just-recorded diagnostic, to add a label or help to.
pub struct DiagRef<'a>(&'a mut Diag);

impl DiagRef<'_> {
    pub fn label(self, label: impl Into<String>) -> Self {
        self.0.label = Some(label.into());
        self
    }

    pub fn help(self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
}

impl std::ops::Deref for DiagRef<'_> {
    type Target = Diag;
    fn deref(&self) -> &Diag {
        self.0
    }
}

impl std::ops::DerefMut for DiagRef<'_> {
    fn deref_mut(&mut self) -> &mut Diag {
        self.0
    }
}

/// Context for reading one file: where diagnostics point and where they go.
pub struct Reader<'a> {
    pub file: &'a Arc<SourceFile>,
    pub diags: &'a mut Diagnostics,
}

impl Reader<'_> {
    pub fn err(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: impl Into<String>,
    ) -> DiagRef<'_> {
        self.diags.push(Diag::error(code, msg).at(self.file, span));
        DiagRef(self.diags.items.last_mut().expect("just pushed"))
    }

    pub fn warn(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: impl Into<String>,
    ) -> DiagRef<'_> {
        self.diags
            .push(Diag::warning(code, msg).at(self.file, span));
        DiagRef(self.diags.items.last_mut().expect("just pushed"))
    }

    fn type_err(&mut self, key: &str, v: &SV<'_>, expected: &str) {
        let found = v.get_ref().type_str();
        self.err(
            "type",
            v.span(),
            format!("`{key}` must be {expected}, found {found}"),
        )
        .label(format!("expected {expected}"));
    }

    pub fn string(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.type_err(key, v, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, key: &str, v: &SV<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_err(key, v, "true or false");
                None
            }
        }
    }

    pub fn int(&mut self, key: &str, v: &SV<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.err("type", v.span(), format!("`{key}`: integer out of range"));
                        None
                    }
                }
            }
            _ => {
                self.type_err(key, v, "an integer");
                None
            }
        }
    }

    /// An integer within `lo..=hi`, with a message saying what the bound means.
    pub fn int_in(&mut self, key: &str, v: &SV<'_>, lo: i64, hi: i64) -> Option<i64> {
        let n = self.int(key, v)?;
        if n < lo || n > hi {
            self.err("value", v.span(), format!("`{key}` = {n} is out of range"))
                .help(format!("`{key}` must be between {lo} and {hi}"));
            return None;
        }
        Some(n)
    }

    pub fn duration(&mut self, key: &str, v: &SV<'_>) -> Option<Duration> {
        let s = match v.get_ref() {
            DeValue::String(s) => s,
            _ => {
                self.err(
                    "duration",
                    v.span(),
                    format!(
                        "`{key}` must be a duration string, found {}",
                        v.get_ref().type_str()
                    ),
                )
                .help(format!(
                    "write it as a string with a unit, e.g. `{key} = \"90s\"`, \"5m\", \"1h30m\""
                ));
                return None;
            }
        };
        match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    "duration",
                    v.span(),
                    format!("`{key}`: invalid duration \"{s}\": {e}"),
                )
                .help("durations look like \"90s\", \"5m\", \"1h30m\", \"250ms\"");
                None
            }
        }
    }

    /// A duration that must be strictly positive (timeouts, intervals, RTOs).
    pub fn positive_duration(&mut self, key: &str, v: &SV<'_>) -> Option<Duration> {
        let d = self.duration(key, v)?;
        if d.is_zero() {
            self.err(
                "value",
                v.span(),
                format!("`{key}` must be greater than zero"),
            );
            return None;
        }
        Some(d)
    }

    pub fn table<'v, 'i>(&mut self, key: &str, v: &'v SV<'i>) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_err(key, v, "a table");
                None
            }
        }
    }

    pub fn array<'v, 'i>(&mut self, key: &str, v: &'v SV<'i>) -> Option<&'v [SV<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(&a[..]),
            _ => {
                self.type_err(key, v, "an array");
                None
            }
        }
    }

    /// An array of strings, each with its span.
    pub fn strings(&mut self, key: &str, v: &SV<'_>) -> Option<Vec<(String, Range<usize>)>> {
        let arr = self.array(key, v)?;
        let mut out = Vec::with_capacity(arr.len());
        for item in arr {
            if let Some(s) = self.string(key, item) {
                out.push((s, item.span()));
            }
        }
        Some(out)
    }

    /// Reports keys of `t` that are not in `known`, suggesting the closest known key.
    pub fn unknown_keys(&mut self, t: &DeTable<'_>, known: &[&str], what: &str) {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if !known.contains(&key) {
                let hint = crate::util::closest(key, known.iter().copied());
                let mut d = self.err(
                    "unknown-key",
                    k.span(),
                    format!("unknown key `{key}` in {what}"),
                );
                d.label = Some("not a known key".into());
                d.help = Some(match hint {
                    Some(h) => format!("did you mean `{h}`? (known keys: {})", known.join(", ")),
                    None => format!("known keys: {}", known.join(", ")),
                });
            }
        }
    }
}

/// Converts a TOML value to a template variable value.
pub fn to_var(v: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .map(J::from)
            .unwrap_or_else(|_| J::String(i.as_str().to_string())),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(J::Number)
            .unwrap_or_else(|| J::String(f.as_str().to_string())),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(a.iter().map(|x| to_var(x.get_ref())).collect()),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_var(x.get_ref())))
                .collect(),
        ),
    }
}
