//! Diagnostics that point into the user's files: file, line, column, the offending source
//! line, what is wrong and how to fix it. Rendered with miette; collected, never thrown, so
//! one broken table never hides the problems in the next one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One loaded file and its text, shared by the diagnostics that point into it.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as shown to the user.
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of each line start, built on first use (positions are looked up for every
    /// service of a 100 000-service graph: scanning from the top each time would be quadratic).
    line_starts: OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            path,
            text,
            line_starts: OnceLock::new(),
        })
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr_newlines(&self.text))
                .collect()
        });
        let line = starts.partition_point(|&s| s <= offset).max(1);
        let line_start = starts[line - 1];
        let col = self.text[line_start..offset].chars().count() as u32 + 1;
        (line as u32, col)
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i + 1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Debug, Clone)]
pub struct Diag {
    pub severity: Severity,
    /// Short stable kind, e.g. `unknown-key`; used to summarise floods of the same problem.
    pub code: &'static str,
    pub message: String,
    /// File the problem is in; `None` for problems about the directory as a whole.
    pub file: Option<Arc<SourceFile>>,
    pub span: Range<usize>,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: None,
            span: 0..0,
            label: None,
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(code, message)
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, span: Range<usize>) -> Diag {
        self.file = Some(file.clone());
        self.span = span;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Diag {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    /// `path:line:col`, or just the path / nothing when the problem has no position.
    pub fn location(&self) -> Option<String> {
        let f = self.file.as_ref()?;
        let (l, c) = f.line_col(self.span.start);
        Some(format!("{}:{l}:{c}", f.path.display()))
    }

    fn render_into(&self, out: &mut String, handler: &GraphicalReportHandler) {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // A grep-able first line, then miette's picture of the source line.
        match self.location() {
            Some(loc) => {
                let _ = writeln!(out, "{sev}[{}]: {loc}: {}", self.code, self.message);
            }
            None => {
                let _ = writeln!(out, "{sev}[{}]: {}", self.code, self.message);
            }
        }
        let Some(file) = &self.file else {
            if let Some(h) = &self.help {
                let _ = writeln!(out, "  help: {h}");
            }
            out.push('\n');
            return;
        };
        let mut d =
            MietteDiagnostic::new(self.message.clone()).with_severity(match self.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            });
        let len = self.span.end.saturating_sub(self.span.start);
        d = d.with_label(LabeledSpan::new(
            Some(self.label.clone().unwrap_or_else(|| "here".into())),
            self.span.start.min(file.text.len()),
            len.min(file.text.len().saturating_sub(self.span.start)),
        ));
        if let Some(h) = &self.help {
            d = d.with_help(h.clone());
        }
        let report = miette::Report::new(d).with_source_code(
            NamedSource::new(file.path.display().to_string(), file.text.clone())
                .with_language("toml"),
        );
        let mut s = String::new();
        if handler.render_report(&mut s, report.as_ref()).is_ok() {
            // miette repeats the message as its first line; we already printed it.
            let body = s.split_once('\n').map(|(_, rest)| rest).unwrap_or(&s);
            out.push_str(body);
        }
        out.push('\n');
    }
}

/// All the problems found in one load.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diag>,
}

/// Above this many diagnostics of one kind, print only the first few and a count.
const SUMMARISE_AFTER: usize = 5;

impl Diagnostics {
    pub fn push(&mut self, d: Diag) {
        self.items.push(d);
    }

    pub fn errors(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Errors first, then by file and position, so the report reads top to bottom.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            a.severity
                .cmp(&b.severity)
                .then_with(|| {
                    let pa = a.file.as_ref().map(|f| f.path.as_path());
                    let pb = b.file.as_ref().map(|f| f.path.as_path());
                    pa.cmp(&pb)
                })
                .then(a.span.start.cmp(&b.span.start))
        });
    }

    /// Renders every diagnostic (floods of one kind summarised) and a closing count line.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1);
        let mut by_code: BTreeMap<(Severity, &str), usize> = BTreeMap::new();
        let mut out = String::new();
        for d in &self.items {
            let n = by_code.entry((d.severity, d.code)).or_default();
            *n += 1;
            if *n <= SUMMARISE_AFTER {
                d.render_into(&mut out, &handler);
            }
        }
        for ((sev, code), n) in &by_code {
            if *n > SUMMARISE_AFTER {
                let what = if *sev == Severity::Error {
                    "error"
                } else {
                    "warning"
                };
                let _ = writeln!(
                    out,
                    "... and {} more {what}s of kind [{code}] (first {SUMMARISE_AFTER} shown above)\n",
                    n - SUMMARISE_AFTER
                );
            }
        }
        let (e, w) = (self.errors(), self.warnings());
        if e + w > 0 {
            let _ = writeln!(out, "{}", count_line(e, w));
        }
        out
    }
}

pub fn count_line(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// Path relative to `base` when possible, for shorter messages.
pub fn display_path(base: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        let f = SourceFile::new("x.toml".into(), "ab\nçd\n\nz".into());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(1), (1, 2));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(5), (2, 2)); // after the 2-byte ç
        assert_eq!(f.line_col(7), (3, 1));
        assert_eq!(f.line_col(8), (4, 1));
        assert_eq!(f.line_col(999), (4, 2));
    }
}
