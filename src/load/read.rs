//! Typed reads from the spanned TOML tree (`tree`) of every file the loader reads (graph,
//! fragments, playbooks, templates), each failure a diagnostic (never an early return that
//! would hide the next problem).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::diag::{Diag, Diagnostics, SourceFile};
use super::tree::{Node, Table, Value};
use crate::model::duration::{DurationError, MAX_TEXT};

pub type SV<'i> = Node<'i>;

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
        self.str(key, v).map(str::to_string)
    }

    /// A shell command line (run with `/bin/sh -c`): not empty, no NUL byte (the kernel could
    /// not pass it to a process).
    pub fn command(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        let s = self.str(key, v)?;
        if s.trim().is_empty() {
            self.err("value", v.span(), format!("`{key}` is an empty command"))
                .help(format!(
                    "give the command line, e.g. {key} = \"systemctl start nginx\""
                ));
            return None;
        }
        if s.contains('\0') {
            self.err("value", v.span(), format!("`{key}` contains a NUL byte"))
                .help("a command line cannot hold a NUL byte: remove the \\u0000");
            return None;
        }
        Some(s.to_string())
    }

    /// Whether `s` (the value of `key`, at `span`) can be an http(s) URL; reports it when it
    /// cannot. A URL whose scheme is a template (`{{ base_url }}/x`) is known only when
    /// rendered; from a literal scheme on (`https://{{ host }}/x`) it is checked.
    pub fn http_url(&mut self, key: &str, s: &str, span: Range<usize>) -> bool {
        let literal = s.split("{{").next().unwrap_or(s);
        let problem = if literal.len() < s.len() {
            match literal.split_once("://") {
                Some((scheme, _)) if !matches!(scheme, "http" | "https") => {
                    Some(format!("the scheme `{scheme}` is not http or https"))
                }
                Some(_) => None,
                None if literal.is_empty() => None,
                None => Some("it does not start with http:// or https://".to_string()),
            }
        } else {
            match reqwest::Url::parse(s) {
                Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                    Some(format!("the scheme `{}` is not http or https", u.scheme()))
                }
                Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("it has no host".into()),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            }
        };
        let Some(why) = problem else {
            return true;
        };
        self.err(
            "value",
            span,
            format!("`{key}` = \"{s}\" is not an http(s) URL: {why}"),
        )
        .help("write it as http://host[:port]/path or https://host[:port]/path");
        false
    }

    /// A string, borrowed from the tree.
    pub fn str<'v>(&mut self, key: &str, v: &'v SV<'_>) -> Option<&'v str> {
        match v.get_ref() {
            Value::String(s) => Some(s),
            _ => {
                self.type_err(key, v, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, key: &str, v: &SV<'_>) -> Option<bool> {
        match v.get_ref() {
            Value::Boolean(b) => Some(*b),
            _ => {
                self.type_err(key, v, "true or false");
                None
            }
        }
    }

    pub fn int(&mut self, key: &str, v: &SV<'_>) -> Option<i64> {
        match v.get_ref() {
            Value::Integer(i) => match i.to_i64() {
                Some(n) => Some(n),
                None => {
                    self.err("type", v.span(), format!("`{key}`: integer out of range"));
                    None
                }
            },
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
            Value::String(s) => s,
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
        match crate::model::duration::parse(s) {
            Ok(d) => Some(d),
            Err(e @ DurationError::TooLong) => {
                self.err(
                    "duration",
                    v.span(),
                    format!("`{key}` = \"{s}\" is too long: {e}"),
                )
                .help(format!(
                    "no duration may exceed {MAX_TEXT}; write the real figure, e.g. \"4h\" or \"7d\""
                ));
                None
            }
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

    pub fn table<'v, 'i>(&mut self, key: &str, v: &'v SV<'i>) -> Option<&'v Table<'i>> {
        match v.get_ref() {
            Value::Table(t) => Some(t),
            _ => {
                self.type_err(key, v, "a table");
                None
            }
        }
    }

    pub fn array<'v, 'i>(&mut self, key: &str, v: &'v SV<'i>) -> Option<&'v [SV<'i>]> {
        match v.get_ref() {
            Value::Array(a) => Some(&a[..]),
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

    /// A table of string values.
    pub fn string_map(&mut self, key: &str, v: &SV<'_>) -> Option<BTreeMap<String, String>> {
        let t = self.table(key, v)?;
        let mut out = BTreeMap::new();
        for (k, val) in t.iter() {
            let name = format!("{key}.{}", k.get_ref());
            if let Some(s) = self.scalar_string(&name, val) {
                out.insert(k.get_ref().to_string(), s);
            }
        }
        Some(out)
    }

    /// A string, or a number/bool written as its text (tags like `zone = 2` are common).
    pub fn scalar_string(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        match v.get_ref() {
            Value::String(s) => Some(s.to_string()),
            Value::Integer(i) => Some(i.as_str().to_string()),
            Value::Float(f) => Some(f.as_str().to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => {
                self.type_err(key, v, "a string");
                None
            }
        }
    }

    /// Reports keys of `t` that are not in `known`, suggesting the closest known key.
    pub fn unknown_keys(&mut self, t: &Table<'_>, known: &[&str], what: &str) {
        self.unknown_keys_but(t, known, &[], what);
    }

    /// [`Reader::unknown_keys`], leaving out the keys in `elsewhere` (reported by the caller
    /// with a better message).
    pub fn unknown_keys_but(
        &mut self,
        t: &Table<'_>,
        known: &[&str],
        elsewhere: &[&str],
        what: &str,
    ) {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if !known.contains(&key) && !elsewhere.contains(&key) {
                let hint = crate::suggest::closest(key, known.iter().copied());
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
pub fn to_var(v: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::String(s) => J::String(s.to_string()),
        Value::Integer(i) => i
            .to_i64()
            .map(J::from)
            .unwrap_or_else(|| J::String(i.as_str().to_string())),
        Value::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(J::Number)
            .unwrap_or_else(|| J::String(f.as_str().to_string())),
        Value::Boolean(b) => J::Bool(*b),
        Value::Datetime(d) => J::String(d.to_string()),
        Value::Array(a) => J::Array(a.iter().map(|x| to_var(x.get_ref())).collect()),
        Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_var(x.get_ref())))
                .collect(),
        ),
    }
}
