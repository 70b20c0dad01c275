//! The services of a big graph file read without a tree of the whole file.
//!
//! A generated 100 000-service `graph.toml` is nearly all `[services.NAME]` tables of a few
//! plain lines (`tier = 1`, `rto = "20m"`, `depends_on = ["a", "b"]`). Building the spanned
//! tree of all of it (a table per service, a node per dependency name: ~70 MB) and then
//! reading the services out of it was the biggest part of `meeseeks plan`'s time on such a
//! file, and the tree's memory the biggest part of its page faults. Here each service table
//! is scanned by the tree's own plain-line scanner, made into a small table of its own, read
//! by the loader's usual reader, and dropped before the next: the memory is reused, and the
//! two halves of the file are read on two threads.
//!
//! This is only a faster way to the same model. The caller uses it when everything before the
//! first `[services.` line parses without error and defines no `services`, and from that line
//! on there is nothing but `[services.NAME]` tables of plain lines (see `tree::fast`), each key
//! once. Anything else, and any diagnostic its reader gives, makes [`read`] answer `None`,
//! and the caller loads the file the usual way, which reports the problem as it always has.

use std::ops::Range;

use super::tree::{self, Key, Node, PlainItem, Table, Value};

/// Where the services part starts: the first line that starts with `[services.`.
pub(super) fn services_start(text: &str) -> Option<usize> {
    if text.starts_with("[services.") {
        return Some(0);
    }
    text.find("\n[services.").map(|i| i + 1)
}

/// Bytes scanned at a time (cut before a line-starting `[`): the items of one piece are all
/// that is held besides the services read.
const PIECE: usize = 1 << 16;

/// Reads `text[from..]` (`from` at a line start): every `[services.NAME]` table is handed to
/// `read(name, name_span, table)`, in file order, the results in two halves (to be used in
/// place rather than copied into one). `None` as soon as a line is not plain, a header is not
/// `[services.NAME]`, a table has a key twice, or `read` says `None`. On two threads (the
/// second half of the text on another) when `par`.
pub(super) fn read<T: Send>(
    text: &str,
    from: usize,
    par: bool,
    read: &(impl Fn(&str, Range<usize>, &Node<'_>) -> Option<T> + Sync),
) -> Option<[Vec<T>; 2]> {
    let mid = if par {
        tree::cut_after(text, from + (text.len() - from) / 2, 1)
    } else {
        text.len()
    };
    // The first half has room for the services of both, so that they can be appended to it
    // without moving it.
    let (second, first) = crate::util::join(
        mid < text.len(),
        || half(text, mid, text.len(), text.len() - mid, read),
        || half(text, from, mid, text.len() - from, read),
    );
    Some([first?, second?])
}

/// Room for the services of `bytes` of text: no service table is shorter than this, so the
/// vector never grows (a copy of everything read so far, into fresh memory, each time); the
/// room not used costs address space only.
const MIN_SERVICE_BYTES: usize = 20;

/// The services of `text[start..end]`, which starts at a header line (or is empty), in a
/// vector with room for those of `room_for` bytes.
fn half<T>(
    text: &str,
    start: usize,
    end: usize,
    room_for: usize,
    read: &impl Fn(&str, Range<usize>, &Node<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(room_for / MIN_SERVICE_BYTES + 1);
    // The header being read: its name and its span, and the entries so far.
    let mut current: Option<(Key<'_>, Range<usize>)> = None;
    let mut entries: Vec<(Key<'_>, Node<'_>)> = Vec::new();
    let mut pos = start;
    while pos < end {
        let cut = tree::cut_after(&text[..end], pos, PIECE);
        for item in tree::scan_plain(text, pos, cut)? {
            match item {
                PlainItem::Header {
                    path,
                    key,
                    start,
                    end,
                } => {
                    if let Some((name, span)) = current.take() {
                        out.push(service(name, span, &mut entries, read)?);
                    }
                    if path.len() != 1 || path[0].get_ref() != "services" {
                        return None;
                    }
                    current = Some((key, start as usize..end as usize));
                }
                PlainItem::KeyVal(k, v) => {
                    current.as_ref()?;
                    entries.push((k, v));
                }
            }
        }
        pos = cut;
    }
    if let Some((name, span)) = current {
        out.push(service(name, span, &mut entries, read)?);
    }
    Some(out)
}

/// One service table of `entries` (emptied, the vector kept), read by `read`.
fn service<'i, T>(
    name: Key<'_>,
    header: Range<usize>,
    entries: &mut Vec<(Key<'i>, Node<'i>)>,
    read: &impl Fn(&str, Range<usize>, &Node<'_>) -> Option<T>,
) -> Option<T> {
    // A key written twice is a TOML error: the usual path words it. (A handful of keys.)
    for (i, (k, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(o, _)| o.get_ref() == k.get_ref()) {
            return None;
        }
    }
    let table = Table::of_entries(std::mem::take(entries));
    let node = Node::new(header, Value::Table(table));
    let out = read(name.get_ref(), name.span(), &node);
    // The vector serves the next table (one allocation per half, not one per service).
    if let Some(t) = node.into_table() {
        *entries = t.into_entries();
        entries.clear();
    }
    out
}

/// The names in a `depends_on`-like list, if it is an array of plain strings: each as where
/// it is written in the text (quotes excluded), `start << 32 | end` (see [`written`]).
pub(super) fn name_spans(text: &str, list: &Node<'_>) -> Option<Vec<usize>> {
    let arr = list.get_ref().as_array()?;
    arr.iter()
        .map(|item| {
            let s = item.get_ref().as_str()?;
            let span = item.span();
            // The scanner's strings are plain (no escapes): the text between the quotes.
            let inner = span.start + 1..span.end - 1;
            (text.get(inner.clone()) == Some(s)).then_some(inner.start << 32 | inner.end)
        })
        .collect()
}

// Two 32-bit offsets in one `usize` (a graph file is under 4 GiB; see `tree::parse`).
const _: () = assert!(usize::BITS >= 64);

/// The name at `at` of [`name_spans`].
pub(super) fn written(text: &str, at: usize) -> &str {
    &text[at >> 32..at & 0xffff_ffff]
}

/// Where the table whose header names its service at `header` lists `name` in `key` (the
/// string, quotes included, as the tree's spans are), for a diagnostic. A plain table (what
/// [`read`] accepts) has one `key = [...]` line.
pub(super) fn listed(text: &str, header: usize, key: &str, name: &str) -> Option<Range<usize>> {
    let body = &text[header..];
    let end = body.find("\n[").unwrap_or(body.len());
    let mut at = header;
    for line in body[..end].split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '\t']);
        let is_key = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start_matches([' ', '\t']).starts_with('='));
        if is_key {
            let quoted = format!("\"{name}\"");
            let i = line.find(&quoted)?;
            return Some(at + i..at + i + quoted.len());
        }
        at += line.len();
    }
    None
}
