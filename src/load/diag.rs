//! Diagnostics that point into the user's files: file, line, column, the offending source
//! line, what is wrong and how to fix it. Rendered with miette; collected, never thrown, so
//! one broken table never hides the problems in the next one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource,
    SourceCode as _,
};

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
    /// Lookups answered by scanning instead (a few near the top of a big file, as when a
    /// handful of diagnostics are shown, do not need the index).
    scans: AtomicU32,
}

/// Largest graph file (graph.toml or a fragment) read: a 100 000-service graph is 12 MB.
pub const MAX_GRAPH_BYTES: u64 = 256 << 20;
/// Largest playbook or template read.
pub const MAX_PLAYBOOK_BYTES: u64 = 16 << 20;

/// Positions before this offset may be looked up by scanning, [`SCANS`] times per file.
const SCAN_BELOW: usize = 256 * 1024;
const SCANS: u32 = 64;

impl AsRef<[u8]> for SourceFile {
    fn as_ref(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            path,
            text,
            line_starts: OnceLock::new(),
            scans: AtomicU32::new(0),
        })
    }

    /// Reads a file for the loader: a regular file (a FIFO would block the load, a device might
    /// never end), at most `limit` bytes, valid UTF-8. Each refusal is a diagnostic saying
    /// why; invalid UTF-8 points at the first bad byte. `missing` is the help for a file that
    /// does not exist.
    pub fn read(path: &Path, limit: u64, missing: &str) -> Result<Arc<SourceFile>, Box<Diag>> {
        use std::io::Read as _;
        use std::os::unix::fs::FileTypeExt as _;
        let cannot =
            |why: String| Diag::error("io", format!("cannot read {}: {why}", path.display()));
        let io = |e: std::io::Error| {
            let d = cannot(e.to_string());
            match e.kind() {
                std::io::ErrorKind::NotFound => d.help(missing),
                std::io::ErrorKind::PermissionDenied => d.help("check the file's permissions"),
                _ => d,
            }
        };
        // `metadata` follows links: a link to /dev/zero is a device.
        let meta = std::fs::metadata(path).map_err(|e| Box::new(io(e)))?;
        let ft = meta.file_type();
        if !ft.is_file() {
            let what = if ft.is_dir() {
                "a directory"
            } else if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_char_device() || ft.is_block_device() {
                "a device"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            return Err(Box::new(cannot(format!("it is {what}, not a regular file")).help(
                "graph and playbook files must be plain files (a FIFO or device could block or never end)",
            )));
        }
        let too_big = || {
            cannot(format!("larger than {} MiB", limit >> 20))
                .help("split the graph into fragments (`include` in graph.toml), or check that this is the right file")
        };
        if meta.len() > limit {
            return Err(Box::new(too_big()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .map_err(|e| Box::new(io(e)))?;
        if bytes.len() as u64 > limit {
            return Err(Box::new(too_big()));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile::new(path.to_path_buf(), text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let byte = e.as_bytes()[at];
                // The text before the bad byte is the same in the lossy copy: the diagnostic
                // points into it, at the replacement character.
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let file = SourceFile::new(path.to_path_buf(), text);
                Err(Box::new(Diag::error("utf8", format!("invalid UTF-8 (byte 0x{byte:02X})"))
                    .at(&file, at..at + char::REPLACEMENT_CHARACTER.len_utf8())
                    .label("not UTF-8")
                    .help("TOML files must be UTF-8: re-save this file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")))
            }
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        if self.line_starts.get().is_none()
            && offset < SCAN_BELOW
            && self.scans.fetch_add(1, Ordering::Relaxed) < SCANS
        {
            let before = &self.text[..offset];
            let line = count_newlines(before.as_bytes()) + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = self.text[line_start..offset].chars().count() as u32 + 1;
            return (line, col);
        }
        let line = self.line_index(offset);
        let line_start = self.line_starts()[line - 1];
        let col = self.text[line_start..offset].chars().count() as u32 + 1;
        (line as u32, col)
    }

    /// 1-based line of a byte offset (`line_col(offset).0`, without counting columns).
    pub fn line(&self, offset: usize) -> u32 {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        self.line_index(offset) as u32
    }

    /// `line(offset)` of many offsets (in any order) in one pass over the text, without
    /// building the line index.
    pub fn lines(&self, offsets: &[usize]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..offsets.len() as u32).collect();
        if !offsets.is_sorted() {
            order.sort_unstable_by_key(|&i| offsets[i as usize]);
        }
        let bytes = self.text.as_bytes();
        let mut out = vec![0; offsets.len()];
        let (mut at, mut line) = (0, 1);
        for i in order {
            let offset = floor_char_boundary(&self.text, offsets[i as usize].min(bytes.len()));
            line += count_newlines(&bytes[at..offset]);
            at = offset;
            out[i as usize] = line;
        }
        out
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| line_starts(&self.text))
    }

    fn line_index(&self, offset: usize) -> usize {
        self.line_starts().partition_point(|&s| s <= offset).max(1)
    }
}

/// 0, then the offset just after each `\n`, scanning eight bytes at a time (a 12 MB graph.toml
/// has half a million lines; a byte-by-byte filter was 4% of `plan`).
fn line_starts(text: &str) -> Vec<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = ONES * b'\n' as u64;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 32 + 1);
    out.push(0);
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[at..at + 8]);
        let x = u64::from_le_bytes(a) ^ NL;
        // A newline in the word makes a zero byte in `x`, which sets that byte's high bit
        // here (false positives only after a true one, and they are checked below).
        if x.wrapping_sub(ONES) & !x & HIGH != 0 {
            for (i, &b) in a.iter().enumerate() {
                if b == b'\n' {
                    out.push(at + i + 1);
                }
            }
        }
        at += 8;
    }
    for (i, &b) in bytes[at..].iter().enumerate() {
        if b == b'\n' {
            out.push(at + i + 1);
        }
    }
    out
}

fn count_newlines(bytes: &[u8]) -> u32 {
    // Written so that it vectorizes.
    bytes.iter().map(|&b| (b == b'\n') as u32).sum()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What miette reads a diagnostic's source from: a file's text, shared rather than copied (a
/// 12 MB graph.toml used to be cloned for every diagnostic rendered), or a window of one of
/// its lines.
enum Source {
    File(Arc<SourceFile>),
    Excerpt(Excerpt),
}

impl miette::SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        match self {
            Source::File(f) => {
                f.text
                    .as_str()
                    .read_span(span, context_lines_before, context_lines_after)
            }
            Source::Excerpt(x) => x.read_span(span, context_lines_before, context_lines_after),
        }
    }
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
    /// A "did you mean" to fill in when the load is over (see [`Diagnostics::fill_hints`]).
    pub pending: Option<Box<PendingHint>>,
}

/// The help of a diagnostic about an unknown service name, left to fill in once every
/// diagnostic is known and sorted: only those printed first get a "did you mean" (each costs a
/// pass over every service name: 200 000 of them on a big graph would be quadratic).
/// The `render` of diagnostics whose hints were not filled in shows no help for them.
#[derive(Debug, Clone)]
pub struct PendingHint {
    pub name: String,
    /// The help when a close name is found, `{}` standing for it.
    pub found: String,
    /// The help otherwise.
    pub otherwise: String,
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
            pending: None,
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

    /// A help naming the service closest to `name`, computed later (see [`PendingHint`]).
    pub fn hint(mut self, name: &str, found: String, otherwise: String) -> Diag {
        self.pending = Some(Box::new(PendingHint {
            name: name.to_string(),
            found,
            otherwise,
        }));
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
        let message = shorten(&self.message, MAX_MESSAGE);
        // A grep-able first line, then miette's picture of the source line.
        match self.location() {
            Some(loc) => {
                let _ = writeln!(out, "{sev}[{}]: {loc}: {message}", self.code);
            }
            None => {
                let _ = writeln!(out, "{sev}[{}]: {message}", self.code);
            }
        }
        let help = self.help.as_deref().map(|h| shorten(h, MAX_MESSAGE));
        let Some(file) = &self.file else {
            if let Some(h) = &help {
                let _ = writeln!(out, "  help: {h}");
            }
            out.push('\n');
            return;
        };
        let mut d = MietteDiagnostic::new(message).with_severity(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
        let shown = Shown::new(&file.text, self.span.clone());
        let name = file.path.display().to_string();
        let (span, source) = match shown.excerpt {
            None => (shown.span, Source::File(file.clone())),
            Some(x) => (x.span.clone(), Source::Excerpt(x)),
        };
        d = d.with_label(LabeledSpan::new(
            Some(self.label.clone().unwrap_or_else(|| "here".into())),
            span.start,
            span.end - span.start,
        ));
        if let Some(h) = help {
            d = d.with_help(h);
        }
        let report = miette::Report::new(d)
            .with_source_code(NamedSource::new(name, source).with_language("toml"));
        let mut s = String::new();
        if handler.render_report(&mut s, report.as_ref()).is_ok() {
            // miette repeats the message as its first line; we already printed it.
            let body = s.split_once('\n').map(|(_, rest)| rest).unwrap_or(&s);
            out.push_str(body);
        }
        out.push('\n');
    }
}

/// Messages and helps are cut to this many characters when printed (a 10 MB key would
/// otherwise be printed whole in "unknown key `…`").
const MAX_MESSAGE: usize = 400;
/// Source lines are shown whole up to this many characters; a longer one around the problem
/// is shown as a window of this width (miette's renderer panics from column 65 536 on, and a
/// 10 MB line helps no one).
const MAX_COLUMNS: usize = 160;
/// A span over more lines than this (an unterminated string running to the end of the file)
/// is shown by its first line.
const MAX_SPAN_LINES: usize = 8;

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// What of a file a diagnostic shows: its span (cut to its first line when it covers too
/// many), and when a line to show is too long, a window of the span's line instead.
struct Shown {
    span: Range<usize>,
    excerpt: Option<Excerpt>,
}

impl Shown {
    fn new(text: &str, span: Range<usize>) -> Shown {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let mut end = floor_char_boundary(text, span.end.min(text.len())).max(start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = |from: usize| text[from..].find('\n').map_or(text.len(), |i| from + i);
        if count_newlines(&text.as_bytes()[start..end]) as usize > MAX_SPAN_LINES {
            end = line_end(start);
        }
        // The lines miette shows: one before, the span's, one after.
        let from = text[..line_start.saturating_sub(1)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let last = line_end(end);
        let to = if last < text.len() {
            line_end(last + 1)
        } else {
            last
        };
        let long = text[from..to]
            .split('\n')
            .any(|l| l.len() > MAX_COLUMNS && l.chars().count() > MAX_COLUMNS);
        if !long {
            return Shown {
                span: start..end,
                excerpt: None,
            };
        }
        let line = &text[line_start..line_end(start)];
        let col = text[line_start..start].chars().count();
        let first = col.saturating_sub(MAX_COLUMNS / 3);
        let byte_at = |c: usize| line.char_indices().nth(c).map_or(line.len(), |(i, _)| i);
        let (a, b) = (byte_at(first), byte_at(first + MAX_COLUMNS));
        let prefix = if a > 0 { "…" } else { "" };
        let suffix = if b < line.len() { "…" } else { "" };
        let s0 = prefix.len() + (start - line_start - a);
        let s1 = prefix.len() + (end.min(line_start + b).max(start) - line_start - a);
        Shown {
            span: start..end,
            excerpt: Some(Excerpt {
                line: count_newlines(&text.as_bytes()[..line_start]) as usize,
                column_shift: a as isize - prefix.len() as isize,
                // The newline lets a point just past the last character be shown.
                text: format!("{prefix}{}{suffix}\n", &line[a..b]),
                span: s0..s1,
            }),
        }
    }
}

/// A window of one long source line, shown by miette at the line's real number and columns.
struct Excerpt {
    text: String,
    /// The span in `text`.
    span: Range<usize>,
    /// 0-based line number of the line in its file.
    line: usize,
    /// Byte column in the line of a byte column in `text`: plus this.
    column_shift: isize,
}

impl Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        let column = (inner.column() as isize + self.column_shift).max(0) as usize;
        Ok(Box::new(miette::MietteSpanContents::new(
            inner.data(),
            *inner.span(),
            self.line + inner.line(),
            column,
            inner.line_count(),
        )))
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

    /// Fills in the pending hints of the diagnostics that [`Diagnostics::render`] prints (the
    /// first [`SUMMARISE_AFTER`] of each kind, once sorted) with the closest of `names`; the
    /// others, never printed, get the help without a suggestion. So the cost is a few passes
    /// over `names`, however many names are unknown.
    pub fn fill_hints(&mut self, names: &[&str]) {
        let mut shown: BTreeMap<(Severity, &str), usize> = BTreeMap::new();
        for d in &mut self.items {
            let n = shown.entry((d.severity, d.code)).or_default();
            *n += 1;
            if let Some(p) = d.pending.take() {
                let hint = (*n <= SUMMARISE_AFTER)
                    .then(|| crate::suggest::closest(&p.name, names.iter().copied()))
                    .flatten();
                d.help = Some(match hint {
                    Some(h) => p.found.replace("{}", h),
                    None => p.otherwise,
                });
            }
        }
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
    fn scanned_and_indexed_positions_agree() {
        let text: String = (0..3000).map(|i| format!("line {i} ç\n")).collect();
        let f = SourceFile::new("x.toml".into(), text.clone());
        let offsets: Vec<usize> = (0..text.len()).step_by(7).rev().collect();
        let lines = f.lines(&offsets);
        let g = SourceFile::new("y.toml".into(), text.clone());
        let _ = g.line(0); // builds the index
        for (k, &o) in offsets.iter().enumerate() {
            assert_eq!(f.line_col(o), g.line_col(o), "{o}");
            assert_eq!(lines[k], g.line(o), "{o}");
        }
    }

    #[test]
    fn newlines_are_all_found() {
        let text = "a\n\n0123456\n01234567\n\nxyz\u{e9}\n\n\n\n\n\n\n\n\n12\n";
        for cut in 0..text.len() {
            let Some(t) = text.get(..cut) else { continue };
            let slow: Vec<usize> = std::iter::once(0)
                .chain(
                    t.bytes()
                        .enumerate()
                        .filter(|&(_, b)| b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect();
            assert_eq!(line_starts(t), slow, "{t:?}");
        }
    }

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
