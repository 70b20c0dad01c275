//! A compact spanned TOML tree, built from `toml_parser` events, for the loader.
//!
//! # Why not `toml::de::DeTable`
//!
//! On a 100 000-service graph (12 MB, ~424 000 edges) `DeTable::parse_recoverable` was a quarter
//! of `meeseeks plan`'s CPU time and alone peaked at ~340 MB: every table is a `BTreeMap` whose
//! first leaf node holds 11 slots of 96 bytes (a 3-key service table costs ~1 KB), values carry
//! 16-byte spans, and the parser keeps 24-byte events for the whole file. Here a table is a
//! `Vec` of entries sorted once at the end, spans are `u32` pairs, events are 12 bytes, and
//! strings borrow from the source text unless they have escapes.
//!
//! # Why a port, not new TOML semantics
//!
//! Diagnostics are the contract: file:line:col, messages, and the shape of the tree after a
//! syntax error (the loader keeps reporting problems after one). So the tree is built by the
//! same code paths that build `DeTable`, just with another representation:
//! - tokens, events, syntax errors and their order come from `toml_parser` itself (lexer, push
//!   parser, `ValidateWhitespace`, `RecursionGuard` with `toml`'s limit of 80), exactly as
//!   `toml::de::parser::parse_document` drives them;
//! - scalars and keys are decoded by `toml_parser`'s decoders (escapes, radixes, `_`, floats,
//!   datetimes via `toml_datetime`) into `Cow`s that borrow from the source;
//! - the event-to-tree pass below is a function-by-function port of `toml` 1.2.2's
//!   `de/parser/{document,key,value,array,inline_table}.rs` (MIT/Apache-2.0): the same event
//!   handling, the same implicit/dotted/inline table rules, the same recovery, the same error
//!   texts, spans and order; error messages are formatted as `toml::de::Error` formats them.
//!
//! # The one shortcut
//!
//! Pieces of the document made only of plain lines (`[a.b]`, `key = "string"`, integers,
//! booleans, one-line arrays of those, comments) are read by a small scanner ([`fast`])
//! instead of the lexer and event parser: on a 100 000-service graph that halves the
//! instructions spent parsing. The scanner hands the same keys and values to the same
//! table-building calls, and gives up on a whole piece at the first line it is not sure of.
//! The tests at the bottom compare this parser with `DeTable::parse_recoverable` (values,
//! spans, errors) on edge cases and on random inputs built from TOML fragments, plain lines
//! and near misses among them, each cut into pieces in several ways.
//!
//! Differences that are not observable by the loader: tables iterate in key order (as
//! `DeTable` without `preserve_order` does) but are searched by binary search after parsing;
//! while parsing, tables of more than [`INDEX_AT`] keys are indexed by a hash map (so a
//! 100 000-service `[services]` stays linear).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::ops::Range;

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::{EventKind, EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, Expected, ParseError, Raw, Source, Span};

pub use toml_datetime::Datetime;

/// `toml`'s nesting limit (arrays, inline tables, dotted key length).
const LIMIT: u32 = 80;

mod fast;

/// What the plain-line scanner reads a piece into (see [`scan_plain`]).
pub use fast::Item as PlainItem;

/// Tables with more keys than this get a hash index while parsing.
pub const INDEX_AT: usize = 16;

// ------------------------------------------------------------------------------------------
// The tree

/// A value with the byte range it was written at.
#[derive(Debug, Clone)]
pub struct Node<'i> {
    start: u32,
    end: u32,
    value: Value<'i>,
}

impl<'i> Node<'i> {
    pub fn new(span: Range<usize>, value: Value<'i>) -> Self {
        Node {
            start: span.start as u32,
            end: span.end as u32,
            value,
        }
    }

    pub fn get_ref(&self) -> &Value<'i> {
        &self.value
    }

    pub fn span(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A table key (decoded) with the byte range it was written at.
#[derive(Debug, Clone)]
pub struct Key<'i> {
    start: u32,
    end: u32,
    name: Cow<'i, str>,
}

impl<'i> Key<'i> {
    /// The decoded key (a `Cow`, as `DeTable` keys are).
    pub fn get_ref(&self) -> &Cow<'i, str> {
        &self.name
    }

    pub fn span(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    fn tspan(&self) -> Span {
        Span::new_unchecked(self.start as usize, self.end as usize)
    }
}

#[derive(Debug, Clone)]
pub enum Value<'i> {
    String(Cow<'i, str>),
    Integer(Integer<'i>),
    Float(Float<'i>),
    Boolean(bool),
    Datetime(Datetime),
    Array(Array<'i>),
    Table(Table<'i>),
}

impl<'i> Value<'i> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table<'i>> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'i>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn type_str(&self) -> &'static str {
        match self {
            Value::String(..) => "string",
            Value::Integer(..) => "integer",
            Value::Float(..) => "float",
            Value::Boolean(..) => "boolean",
            Value::Datetime(..) => "datetime",
            Value::Array(..) => "array",
            Value::Table(..) => "table",
        }
    }
}

/// An integer as written (sign and digits, `_` and radix prefix removed), like `DeInteger`.
#[derive(Debug, Clone)]
pub struct Integer<'i> {
    text: Cow<'i, str>,
    radix: u32,
}

impl Integer<'_> {
    /// Digits for [`i64::from_str_radix`] with [`Integer::radix`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn radix(&self) -> u32 {
        self.radix
    }

    /// The value, or `None` when it does not fit an `i64`.
    pub fn to_i64(&self) -> Option<i64> {
        i64::from_str_radix(&self.text, self.radix).ok()
    }
}

impl From<i64> for Integer<'_> {
    fn from(n: i64) -> Self {
        Integer {
            text: Cow::Owned(n.to_string()),
            radix: 10,
        }
    }
}

/// A float as written (`_` removed), like `DeFloat`.
#[derive(Debug, Clone)]
pub struct Float<'i> {
    text: Cow<'i, str>,
}

impl Float<'_> {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<f64> for Float<'_> {
    fn from(x: f64) -> Self {
        Float {
            text: Cow::Owned(x.to_string()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Array<'i> {
    items: Vec<Node<'i>>,
    of_tables: bool,
}

impl<'i> std::ops::Deref for Array<'i> {
    type Target = [Node<'i>];
    fn deref(&self) -> &[Node<'i>] {
        &self.items
    }
}

impl<'i> Array<'i> {
    /// A copy with every item replaced by `f(item)`.
    pub fn map(&self, mut f: impl FnMut(&Node<'i>) -> Node<'i>) -> Array<'i> {
        Array {
            items: self.items.iter().map(&mut f).collect(),
            of_tables: self.of_tables,
        }
    }
}

/// A table: entries sorted by key once parsing is done.
#[derive(Debug, Clone, Default)]
pub struct Table<'i> {
    entries: Vec<(Key<'i>, Node<'i>)>,
    /// Id in the parser's hash index (0: not indexed).
    id: u32,
    implicit: bool,
    dotted: bool,
    inline: bool,
}

impl<'i> Table<'i> {
    pub fn get(&self, key: &str) -> Option<&Node<'i>> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The key (with its span) and the value of `key`.
    pub fn get_key_value(&self, key: &str) -> Option<(&Key<'i>, &Node<'i>)> {
        self.position(key)
            .map(|i| (&self.entries[i].0, &self.entries[i].1))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// A copy with every value replaced by `f(key, value)` (keys, order and spans kept).
    pub fn map(&self, mut f: impl FnMut(&Key<'i>, &Node<'i>) -> Node<'i>) -> Table<'i> {
        Table {
            entries: self
                .entries
                .iter()
                .map(|(k, v)| (k.clone(), f(k, v)))
                .collect(),
            id: 0,
            implicit: self.implicit,
            dotted: self.dotted,
            inline: self.inline,
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.entries.len() <= 8 {
            self.entries.iter().position(|(k, _)| k.name == key)
        } else {
            self.entries
                .binary_search_by(|(k, _)| k.name.as_ref().cmp(key))
                .ok()
        }
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Key<'i>, &Node<'i>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A parsed document: the root table.
#[derive(Debug, Clone, Default)]
pub struct Doc<'i> {
    root: Table<'i>,
}

impl<'i> Doc<'i> {
    pub fn get_ref(&self) -> &Table<'i> {
        &self.root
    }

    /// Drops the tree, the biggest table's entries half on a second thread when it has at
    /// least `threads_at` of them (freeing a 100 000-service tree is a million nodes).
    pub fn drop_in_parallel(mut self, threads_at: usize) {
        let biggest = self
            .root
            .entries
            .iter_mut()
            .filter_map(|(_, v)| match &mut v.value {
                Value::Table(t) => Some(t),
                _ => None,
            })
            .max_by_key(|t| t.entries.len());
        if let Some(t) = biggest
            && t.entries.len() >= threads_at.max(2)
        {
            let half = t.entries.split_off(t.entries.len() / 2);
            crate::util::join(true, move || drop(half), move || drop(self));
        }
    }
}

/// A syntax (or TOML semantics) error, worded as `toml::de::Error::message()` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    pub message: String,
    pub span: Option<Range<usize>>,
}

/// Parses a document, recovering from errors as `DeTable::parse_recoverable` does.
pub fn parse(text: &str) -> (Doc<'_>, Vec<TomlError>) {
    parse_in_chunks(text, CHUNK_BYTES)
}

/// Bytes in a piece of the document before it is cut at the next header.
const CHUNK_BYTES: usize = 1 << 16;

/// Parses `text` a piece at a time so that neither its tokens (24 bytes each, ~4 million for a
/// 100 000-service graph) nor its events are ever all in memory.
///
/// The document is cut before a `[` that starts a line, once at least `chunk` bytes are in the
/// piece. Each piece is read by [`fast::scan`] when it is made only of plain lines, else by
/// `toml_parser`'s lexer and parser on its own, and then goes straight into the tree. As long
/// as no piece has an error of any kind (syntax, decoding or duplicate keys), every piece is
/// valid TOML by itself that ends with a newline, so the parser leaves it at the start of an
/// expression with nothing carried over, and what reaches the tree is exactly what the whole
/// document would give. (A cut inside a multi-line string or array leaves the piece before it
/// unterminated: an error.) At the first error of any kind the pieces are thrown away and the
/// whole document is parsed in one go ([`parse_whole`]), which reports every error in
/// `toml`'s order (syntax errors first). Broken files are small in practice; a broken big one
/// costs one extra parse.
fn parse_in_chunks(text: &str, chunk: usize) -> (Doc<'_>, Vec<TomlError>) {
    if text.len() >= u32::MAX as usize {
        let error = TomlError {
            message: "file too large (4 GiB or more)".into(),
            span: None,
        };
        return (Doc::default(), vec![error]);
    }
    try_chunks(text, chunk).unwrap_or_else(|| parse_whole(text))
}

/// One piece of the document, read.
enum Piece<'i> {
    /// By `toml_parser`: its events, with spans in the whole document.
    Events(Vec<Ev>),
    /// By [`fast::scan`].
    Plain(Vec<fast::Item<'i>>),
}

/// Where the piece starting at `pos` ends: before the first line-starting `[` at least
/// `chunk` bytes on (at least one), or at the end of the text.
pub(super) fn cut_after(text: &str, pos: usize, chunk: usize) -> usize {
    let b = text.as_bytes();
    let mut from = (pos + chunk.max(1)).min(b.len());
    while from < b.len() {
        match b[from..].iter().position(|&c| c == b'[') {
            Some(at) if b[from + at - 1] == b'\n' => return from + at,
            Some(at) => from += at + 1,
            None => break,
        }
    }
    b.len()
}

/// `toml_parser`'s events for `text[start..end]`, or `None` on a syntax error.
fn piece_events(text: &str, start: usize, end: usize) -> Option<Vec<Ev>> {
    let source = Source::new(&text[start..end]);
    let tokens = source.lex().into_vec();
    // A multi-line string left open runs to the end of the piece; the parser takes it as a
    // value (only decoding, later, would find it unterminated): a cut inside it.
    if let Some(last) = tokens.iter().rev().find(|t| t.kind() != TokenKind::Eof) {
        let raw = &source.input()[last.span().start()..last.span().end()];
        let open = match last.kind() {
            TokenKind::MlBasicString => raw.len() < 6 || !raw.ends_with("\"\"\""),
            TokenKind::MlLiteralString => raw.len() < 6 || !raw.ends_with("'''"),
            _ => false,
        };
        if open {
            return None;
        }
    }
    let mut clean = NoErrors(true);
    let events = events(source, &tokens, start as u32, &mut clean);
    clean.0.then_some(events)
}

/// `toml_parser`'s events for the `tokens` of `source`, as `toml` drives its parser, with
/// spans moved `offset` bytes on (where `source` starts in the document).
fn events(
    source: Source<'_>,
    tokens: &[Token],
    offset: u32,
    errors: &mut dyn ErrorSink,
) -> Vec<Ev> {
    let mut events = Events {
        evs: Vec::with_capacity(tokens.len()),
        offset,
    };
    let mut ws = ValidateWhitespace::new(&mut events, source);
    let mut guard = RecursionGuard::new(&mut ws, LIMIT);
    toml_parser::parser::parse_document(tokens, &mut guard, errors);
    events.evs
}

/// The piece of `text` starting at `pos`, read, and where it ends; `None` on a syntax error.
fn read_piece(text: &str, pos: usize, chunk: usize) -> (Option<Piece<'_>>, usize) {
    let mut end = cut_after(text, pos, chunk);
    let piece = match fast::scan(text, pos, end) {
        Some(items) => Some(Piece::Plain(items)),
        None => piece_events(text, pos, end)
            .or_else(|| {
                // The cut may be inside a multi-line string or array that holds a line
                // starting with `[`: then the rest goes as one piece (rare: the memory saving
                // is lost, not the result).
                end = text.len();
                piece_events(text, pos, end)
            })
            .map(Piece::Events),
    };
    (piece, end)
}

/// [`parse_in_chunks`], or `None` when the document has an error and must be parsed whole.
///
/// Two stages in a pipeline, on two threads: reading the pieces on one, building the tree
/// from them on the other, with at most two pieces in flight between them. A document of one
/// piece (every playbook, most graphs) is read and built on this thread.
fn try_chunks(text: &str, chunk: usize) -> Option<(Doc<'_>, Vec<TomlError>)> {
    if cut_after(text, 0, chunk) == text.len() {
        let (piece, _) = read_piece(text, 0, chunk);
        return build(text, std::iter::once(piece).filter(|_| !text.is_empty()));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Piece<'_>>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut pos = 0;
            while pos < text.len() {
                let (piece, end) = read_piece(text, pos, chunk);
                // A closed receiver means the tree builder gave up: stop too.
                let failed = piece.is_none();
                if tx.send(piece).is_err() || failed {
                    return;
                }
                pos = end;
            }
        });
        build(text, rx)
    })
}

/// The tree from the pieces of `text` in order, or `None` at the first piece with an error.
fn build<'i>(
    text: &'i str,
    pieces: impl IntoIterator<Item = Option<Piece<'i>>>,
) -> Option<(Doc<'i>, Vec<TomlError>)> {
    let mut p = Parser {
        text,
        ix: Index::default(),
    };
    let mut state = State::default();
    let mut errors = Sink(Vec::new());
    for piece in pieces {
        match piece? {
            Piece::Events(evs) => {
                let mut input = Input { evs: &evs, pos: 0 };
                if !matches!(
                    p.document_events(&mut state, &mut input, &mut errors),
                    Step::Done
                ) {
                    return None;
                }
            }
            Piece::Plain(items) => p.plain_items(&mut state, items, &mut errors),
        }
        if !errors.0.is_empty() {
            return None;
        }
    }
    p.finish_table(&mut state, &mut errors);
    drop(p);
    let mut root = state.root;
    finish(&mut root);
    Some((Doc { root }, errors.0))
}

/// The whole document at once, as `toml` does: all its tokens, then all its events.
fn parse_whole(text: &str) -> (Doc<'_>, Vec<TomlError>) {
    let mut errors = Sink(Vec::new());
    let source = Source::new(text);
    let events = events(source, &source.lex().into_vec(), 0, &mut errors);
    let mut input = Input {
        evs: &events,
        pos: 0,
    };
    let mut p = Parser {
        text,
        ix: Index::default(),
    };
    let mut state = State::default();
    // Stopping early or running out of events is the end of the document here.
    let _ = p.document_events(&mut state, &mut input, &mut errors);
    p.finish_table(&mut state, &mut errors);
    drop(events);
    drop(p);
    let mut root = state.root;
    finish(&mut root);
    (Doc { root }, errors.0)
}

/// Records whether any syntax error was reported.
struct NoErrors(bool);

impl ErrorSink for NoErrors {
    fn report_error(&mut self, _: ParseError) {
        self.0 = false;
    }
}

/// How [`Parser::document_events`] ended.
enum Step {
    /// All events used.
    Done,
    /// `toml` stops building the tree here (a key without `=`, or too many dots).
    Stopped,
    /// An expression needed events past the end of the slice.
    OutOfEvents,
}

/// Sorts every table by key (recursively), as `DeTable` iterates.
fn finish(t: &mut Table<'_>) {
    if !t.entries.is_sorted_by(|a, b| a.0.name <= b.0.name) {
        t.entries.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
    }
    for (_, v) in &mut t.entries {
        finish_value(&mut v.value);
    }
}

fn finish_value(v: &mut Value<'_>) {
    match v {
        Value::Table(t) => finish(t),
        Value::Array(a) => {
            for x in &mut a.items {
                finish_value(&mut x.value);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// Events and errors

/// `toml_parser::parser::Event` in 12 bytes instead of 24.
#[derive(Debug, Clone, Copy)]
struct Ev {
    start: u32,
    end: u32,
    kind: EventKind,
    enc: Option<Encoding>,
}

impl Ev {
    fn span(&self) -> Span {
        Span::new_unchecked(self.start as usize, self.end as usize)
    }

    fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Events of a piece; `offset`: where the piece starts in the document.
struct Events {
    evs: Vec<Ev>,
    offset: u32,
}

impl Events {
    fn push(&mut self, kind: EventKind, enc: Option<Encoding>, span: Span) {
        self.evs.push(Ev {
            start: self.offset + span.start() as u32,
            end: self.offset + span.end() as u32,
            kind,
            enc,
        });
    }
}

impl EventReceiver for Events {
    fn std_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::StdTableOpen, None, span);
    }
    fn std_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::StdTableClose, None, span);
    }
    fn array_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::ArrayTableOpen, None, span);
    }
    fn array_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::ArrayTableClose, None, span);
    }
    fn inline_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
        self.push(EventKind::InlineTableOpen, None, span);
        true
    }
    fn inline_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::InlineTableClose, None, span);
    }
    fn array_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
        self.push(EventKind::ArrayOpen, None, span);
        true
    }
    fn array_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::ArrayClose, None, span);
    }
    fn simple_key(&mut self, span: Span, enc: Option<Encoding>, _: &mut dyn ErrorSink) {
        self.push(EventKind::SimpleKey, enc, span);
    }
    fn key_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::KeySep, None, span);
    }
    fn key_val_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::KeyValSep, None, span);
    }
    fn scalar(&mut self, span: Span, enc: Option<Encoding>, _: &mut dyn ErrorSink) {
        self.push(EventKind::Scalar, enc, span);
    }
    fn value_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::ValueSep, None, span);
    }
    fn whitespace(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::Whitespace, None, span);
    }
    fn comment(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::Comment, None, span);
    }
    fn newline(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::Newline, None, span);
    }
    fn error(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.push(EventKind::Error, None, span);
    }
}

/// Collects errors worded as `toml::de::Error::new` words them.
struct Sink(Vec<TomlError>);

impl ErrorSink for Sink {
    fn report_error(&mut self, error: ParseError) {
        let mut message = String::new();
        message.push_str(error.description());
        if let Some(expected) = error.expected() {
            message.push_str(", expected ");
            if expected.is_empty() {
                message.push_str("nothing");
            } else {
                for (i, expected) in expected.iter().enumerate() {
                    if i != 0 {
                        message.push_str(", ");
                    }
                    match expected {
                        Expected::Literal(desc) => message.push_str(&render_literal(desc)),
                        Expected::Description(desc) => message.push_str(desc),
                        _ => message.push_str("etc"),
                    }
                }
            }
        }
        let span = error.unexpected().map(|s| s.start()..s.end());
        self.0.push(TomlError { message, span });
    }
}

fn render_literal(literal: &str) -> String {
    match literal {
        "\n" => "newline".to_owned(),
        "`" => "'`'".to_owned(),
        s if s.chars().all(|c| c.is_ascii_control()) => {
            format!("`{}`", s.escape_debug())
        }
        s => format!("`{s}`"),
    }
}

fn report(errors: &mut dyn ErrorSink, e: ParseError) {
    errors.report_error(e);
}

// ------------------------------------------------------------------------------------------
// Event → tree (port of toml 1.2.2 `de/parser`)

struct Input<'e> {
    evs: &'e [Ev],
    pos: usize,
}

impl Input<'_> {
    fn next_token(&mut self) -> Option<Ev> {
        let e = self.evs.get(self.pos).copied();
        if e.is_some() {
            self.pos += 1;
        }
        e
    }

    fn peek(&self, i: usize) -> Option<EventKind> {
        self.evs.get(self.pos + i).map(|e| e.kind)
    }
}

/// The items of `text[start..end]` when every line is of the plain forms [`fast`] reads (the
/// piece must start at a line start), else `None`. For the loader's reader of plain
/// service tables, which makes its own small tables of them ([`Table::of_entries`]).
pub(super) fn scan_plain(text: &str, start: usize, end: usize) -> Option<Vec<PlainItem<'_>>> {
    fast::scan(text, start, end)
}

impl<'i> Table<'i> {
    /// A table of these entries (distinct keys), iterated in key order as a parsed one is.
    pub(super) fn of_entries(entries: Vec<(Key<'i>, Node<'i>)>) -> Table<'i> {
        let mut t = Table {
            entries,
            ..Default::default()
        };
        finish(&mut t);
        t
    }

    /// The entries back (their vector to be reused).
    pub(super) fn into_entries(self) -> Vec<(Key<'i>, Node<'i>)> {
        self.entries
    }
}

impl<'i> Node<'i> {
    /// The table this node is, if it is one.
    pub(super) fn into_table(self) -> Option<Table<'i>> {
        match self.value {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// Hash index of the big tables being built: (table id, key) → entry position.
#[derive(Default)]
struct Index {
    map: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
    hasher: foldhash::fast::FixedState,
    next_id: u32,
    /// Tables where two keys' 64-bit hashes collided: a miss there is checked by a scan.
    collided: Vec<u32>,
}

/// The map's keys are already hashes: pass them through.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Index {
    fn hash(&self, id: u32, key: &str) -> u64 {
        self.hasher.hash_one((id, key))
    }

    fn add(&mut self, t: &Table<'_>, pos: usize) {
        let h = self.hash(t.id, &t.entries[pos].0.name);
        if let Some(&other) = self.map.get(&h) {
            if t.entries
                .get(other as usize)
                .is_none_or(|o| o.0.name != t.entries[pos].0.name)
            {
                // A true 64-bit collision (or a stale slot of a dropped table): keep it simple
                // and correct, the colliding key is found by a scan.
                if !self.collided.contains(&t.id) {
                    self.collided.push(t.id);
                }
            }
            return;
        }
        self.map.insert(h, pos as u32);
    }
}

impl<'i> Table<'i> {
    /// Position of `key` while parsing (entries not yet sorted).
    fn find(&self, ix: &Index, key: &str) -> Option<usize> {
        if self.id == 0 {
            return self.entries.iter().position(|(k, _)| k.name == key);
        }
        if let Some(&p) = ix.map.get(&ix.hash(self.id, key))
            && self
                .entries
                .get(p as usize)
                .is_some_and(|e| e.0.name == key)
        {
            return Some(p as usize);
        }
        if ix.collided.contains(&self.id) {
            return self.entries.iter().position(|(k, _)| k.name == key);
        }
        None
    }

    fn push(&mut self, ix: &mut Index, key: Key<'i>, node: Node<'i>) -> usize {
        self.entries.push((key, node));
        let pos = self.entries.len() - 1;
        if self.id != 0 {
            ix.add(self, pos);
        } else if self.entries.len() > INDEX_AT {
            ix.next_id += 1;
            self.id = ix.next_id;
            for i in 0..self.entries.len() {
                ix.add(self, i);
            }
        }
        pos
    }

    fn remove(&mut self, ix: &mut Index, pos: usize) -> (Key<'i>, Node<'i>) {
        if self.id != 0 {
            let h = ix.hash(self.id, &self.entries[pos].0.name);
            if ix.map.get(&h) == Some(&(pos as u32)) {
                ix.map.remove(&h);
            }
            let last = self.entries.len() - 1;
            if last != pos {
                let h = ix.hash(self.id, &self.entries[last].0.name);
                if let Some(slot) = ix.map.get_mut(&h)
                    && *slot == last as u32
                {
                    *slot = pos as u32;
                }
            }
        }
        self.entries.swap_remove(pos)
    }

    /// `BTreeMap::insert`: a present key keeps its span, its value is replaced.
    fn insert(&mut self, ix: &mut Index, key: Key<'i>, node: Node<'i>) {
        match self.find(ix, &key.name) {
            Some(p) => self.entries[p].1 = node,
            None => {
                self.push(ix, key, node);
            }
        }
    }
}

/// Before a big table (the `[services.*]` of a generated graph: 100 000 entries of ~80
/// bytes) grows its entries again, room for as many more as the rest of the document holds
/// at the rate seen so far, and as much room in the keys' index. Growing both by doubling
/// copied (rehashed) every entry about once more and faulted in each new buffer, on the
/// thread that builds the tree: inserting the `[services.*]` tables took 5.5 % of its
/// samples on a 100 000-service graph, 3.4 % now (perf; what is left is hashing the names
/// and first touching the memory the entries need anyway). An overestimate costs address
/// space only (pages never touched are never faulted in); an underestimate grows again, by
/// this rule or by doubling.
fn reserve_for_the_rest(table: &mut Table<'_>, ix: &mut Index, at: usize, text_len: usize) {
    const FROM: usize = 1024;
    let n = table.entries.len();
    if n < FROM || n < table.entries.capacity() || at == 0 {
        return;
    }
    let expected = (n as u128 * text_len as u128 / at as u128) as usize;
    let more = expected.saturating_sub(n) + FROM;
    table.entries.reserve(more);
    // Its keys' index too, which would otherwise rehash as it doubles.
    if table.id != 0 {
        ix.map.reserve(more);
    }
}

struct Parser<'i> {
    text: &'i str,
    ix: Index,
}

struct TableHeader<'i> {
    path: Vec<Key<'i>>,
    key: Option<Key<'i>>,
    span: Span,
    is_array: bool,
}

#[derive(Default)]
struct State<'i> {
    root: Table<'i>,
    current_table: Table<'i>,
    current_header: Option<TableHeader<'i>>,
}

impl<'i> Parser<'i> {
    fn raw(&self, ev: Ev) -> Raw<'i> {
        let text = self.text.get(ev.range()).unwrap_or("");
        Raw::new_unchecked(text, ev.enc, ev.span())
    }

    /// The loop of `document::document`, over the events given; the caller finishes the
    /// last table.
    fn document_events(
        &mut self,
        state: &mut State<'i>,
        input: &mut Input<'_>,
        errors: &mut dyn ErrorSink,
    ) -> Step {
        while let Some(event) = input.next_token() {
            match event.kind {
                EventKind::InlineTableOpen
                | EventKind::InlineTableClose
                | EventKind::ArrayOpen
                | EventKind::ArrayClose
                | EventKind::Scalar
                | EventKind::ValueSep
                | EventKind::Error
                | EventKind::KeySep
                | EventKind::KeyValSep
                | EventKind::StdTableClose
                | EventKind::ArrayTableClose => continue,
                EventKind::StdTableOpen | EventKind::ArrayTableOpen => {
                    self.finish_table(state, errors);
                    let header = self.on_table(event, input, errors);
                    self.start_table(state, header, errors);
                }
                EventKind::SimpleKey => {
                    let (path, key) = self.on_key(event, input, errors);
                    let Some(key) = key else {
                        return Step::Stopped;
                    };
                    let Some(next_event) = input.next_token() else {
                        return Step::OutOfEvents;
                    };
                    let keyval_event = if next_event.kind == EventKind::Whitespace {
                        let Some(next_event) = input.next_token() else {
                            return Step::OutOfEvents;
                        };
                        next_event
                    } else {
                        next_event
                    };
                    if keyval_event.kind != EventKind::KeyValSep {
                        return Step::Stopped;
                    }
                    if input.peek(0) == Some(EventKind::Whitespace) {
                        let _ = input.next_token();
                    }
                    let value = self.value(input, errors);
                    self.capture_key_value(state, path, key, value, errors);
                }
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
            }
        }
        Step::Done
    }

    /// What `document_events` does with the events of a piece of plain lines, from the lines
    /// [`fast::scan`] read: the same calls with the same keys and values.
    fn plain_items(
        &mut self,
        state: &mut State<'i>,
        items: Vec<fast::Item<'i>>,
        errors: &mut dyn ErrorSink,
    ) {
        for item in items {
            match item {
                fast::Item::Header {
                    path,
                    key,
                    start,
                    end,
                } => {
                    self.finish_table(state, errors);
                    let header = TableHeader {
                        path,
                        key: Some(key),
                        span: Span::new_unchecked(start as usize, end as usize),
                        is_array: false,
                    };
                    self.start_table(state, header, errors);
                }
                fast::Item::KeyVal(key, value) => {
                    self.capture_key_value(state, Vec::new(), key, value, errors);
                }
            }
        }
    }

    /// `document::on_table`
    fn on_table(
        &mut self,
        open_event: Ev,
        input: &mut Input<'_>,
        errors: &mut dyn ErrorSink,
    ) -> TableHeader<'i> {
        let is_array = open_event.kind == EventKind::ArrayTableOpen;
        let mut current_path = None;
        let mut current_key = None;
        let mut current_span = open_event.span();
        while let Some(event) = input.next_token() {
            match event.kind {
                EventKind::InlineTableOpen
                | EventKind::InlineTableClose
                | EventKind::ArrayOpen
                | EventKind::ArrayClose
                | EventKind::Scalar
                | EventKind::ValueSep
                | EventKind::Error
                | EventKind::KeySep
                | EventKind::KeyValSep
                | EventKind::StdTableOpen
                | EventKind::ArrayTableOpen
                | EventKind::Comment
                | EventKind::Newline => continue,
                EventKind::ArrayTableClose | EventKind::StdTableClose => {
                    current_span = current_span.append(event.span());
                    break;
                }
                EventKind::SimpleKey => {
                    let (path, key) = self.on_key(event, input, errors);
                    current_path = Some(path);
                    current_key = key;
                }
                EventKind::Whitespace => {}
            }
        }
        TableHeader {
            path: current_path.unwrap_or_default(),
            key: current_key,
            span: current_span,
            is_array,
        }
    }

    /// `document::State::capture_key_value`
    fn capture_key_value(
        &mut self,
        state: &mut State<'i>,
        path: Vec<Key<'i>>,
        key: Key<'i>,
        value: Node<'i>,
        errors: &mut dyn ErrorSink,
    ) {
        let dotted = !path.is_empty();
        let ix = &mut self.ix;
        let Some(parent_table) = descend_path(&mut state.current_table, ix, &path, dotted, errors)
        else {
            return;
        };
        // "Likewise, using dotted keys to redefine tables already defined in [table] form is
        // not allowed"
        if dotted && !parent_table.implicit {
            report(
                errors,
                ParseError::new("duplicate key").with_unexpected(key.tspan()),
            );
            return;
        }
        match parent_table.find(ix, &key.name) {
            None => {
                parent_table.push(ix, key, value);
            }
            Some(p) => {
                let old_span = parent_table.entries[p].0.tspan();
                report(
                    errors,
                    ParseError::new("duplicate key")
                        .with_unexpected(key.tspan())
                        .with_context(old_span),
                );
            }
        }
    }

    /// `document::State::finish_table`
    fn finish_table(&mut self, state: &mut State<'i>, errors: &mut dyn ErrorSink) {
        let prev_table = std::mem::take(&mut state.current_table);
        let Some(header) = state.current_header.take() else {
            state.root = prev_table;
            return;
        };
        let Some(key) = header.key else {
            return;
        };
        let mut prev_table = prev_table;
        // Sorted now, while its entries are at hand in the cache, rather than in the final
        // pass over the whole tree (which then only checks). Tables without a hash index
        // are searched by scanning, so their order does not matter meanwhile; a key added
        // later is sorted in by that final pass.
        if prev_table.id == 0 && !prev_table.entries.is_sorted_by(|a, b| a.0.name <= b.0.name) {
            prev_table
                .entries
                .sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
        }
        let header_span = header.span.start()..header.span.end();
        let prev_table = Node::new(header_span.clone(), Value::Table(prev_table));
        let ix = &mut self.ix;
        let Some(parent_table) = descend_path(&mut state.root, ix, &header.path, false, errors)
        else {
            return;
        };
        if header.is_array {
            let key_span = key.tspan();
            let pos = match parent_table.find(ix, &key.name) {
                Some(p) => p,
                None => {
                    let array = Array {
                        items: Vec::new(),
                        of_tables: true,
                    };
                    parent_table.push(ix, key, Node::new(header_span, Value::Array(array)))
                }
            };
            let entry = &mut parent_table.entries[pos].1;
            match &mut entry.value {
                Value::Array(array) if array.of_tables => array.items.push(prev_table),
                _ => {
                    let old_span = Span::new_unchecked(entry.start as usize, entry.end as usize);
                    report(
                        errors,
                        ParseError::new("duplicate key")
                            .with_unexpected(key_span)
                            .with_context(old_span),
                    );
                }
            }
        } else {
            reserve_for_the_rest(parent_table, ix, header_span.start, self.text.len());
            parent_table.insert(ix, key, prev_table);
        }
    }

    /// `document::State::start_table`
    fn start_table(
        &mut self,
        state: &mut State<'i>,
        header: TableHeader<'i>,
        errors: &mut dyn ErrorSink,
    ) {
        if !header.is_array {
            // 1. Look up the table on start to ensure the duplicate_key error points to the
            //    right line
            // 2. Ensure any child tables from an implicit table are preserved
            let ix = &mut self.ix;
            let parent = descend_path(&mut state.root, ix, &header.path, false, errors);
            if let (Some(parent_table), Some(key)) = (parent, &header.key)
                && let Some(pos) = parent_table.find(ix, &key.name)
            {
                let (old_key, old_value) = parent_table.remove(ix, pos);
                match old_value.value {
                    Value::Table(t) if t.implicit && !t.dotted => {
                        state.current_table = t;
                    }
                    // Since tables cannot be defined more than once, redefining such tables
                    // using a [table] header is not allowed. Likewise, using dotted keys to
                    // redefine tables already defined in [table] form is not allowed.
                    old_value => {
                        report(
                            errors,
                            ParseError::new("duplicate key")
                                .with_unexpected(key.tspan())
                                .with_context(old_key.tspan()),
                        );
                        if let Value::Table(t) = old_value {
                            state.current_table = t;
                        }
                    }
                }
            }
        }
        state.current_table.implicit = false;
        state.current_table.dotted = false;
        state.current_header = Some(header);
    }

    /// `key::on_key`
    fn on_key(
        &mut self,
        key_event: Ev,
        input: &mut Input<'_>,
        errors: &mut dyn ErrorSink,
    ) -> (Vec<Key<'i>>, Option<Key<'i>>) {
        let mut result_path = Vec::new();
        let mut result_key = None;
        let mut current_key = Some(key_event);
        if more_key(input) {
            while let Some(event) = input.next_token() {
                match event.kind {
                    EventKind::StdTableOpen
                    | EventKind::ArrayTableOpen
                    | EventKind::InlineTableOpen
                    | EventKind::InlineTableClose
                    | EventKind::ArrayOpen
                    | EventKind::ArrayClose
                    | EventKind::Scalar
                    | EventKind::ValueSep
                    | EventKind::Comment
                    | EventKind::Newline
                    | EventKind::KeyValSep
                    | EventKind::StdTableClose
                    | EventKind::ArrayTableClose
                    | EventKind::Error => continue,
                    EventKind::SimpleKey => {
                        current_key = Some(event);
                        if !more_key(input) {
                            break;
                        }
                    }
                    EventKind::Whitespace => {}
                    EventKind::KeySep => {
                        self.close_key(&mut current_key, &mut result_path, &mut result_key, errors);
                    }
                }
            }
        }
        self.close_key(&mut current_key, &mut result_path, &mut result_key, errors);
        if LIMIT as usize <= result_path.len() {
            report(errors, ParseError::new("recursion limit"));
            return (Vec::new(), None);
        }
        (result_path, result_key)
    }

    /// `key::State::close_key`
    fn close_key(
        &mut self,
        current_key: &mut Option<Ev>,
        result_path: &mut Vec<Key<'i>>,
        result_key: &mut Option<Key<'i>>,
        errors: &mut dyn ErrorSink,
    ) {
        let Some(key) = current_key.take() else {
            return;
        };
        let raw = self.raw(key);
        let decoded = match fast_key(raw.as_str(), key.enc) {
            Some(k) => k,
            None => {
                let mut decoded = Cow::Borrowed("");
                raw.decode_key(&mut decoded, errors);
                decoded
            }
        };
        let key = Key {
            start: key.start,
            end: key.end,
            name: decoded,
        };
        if let Some(last_key) = result_key.replace(key) {
            result_path.push(last_key);
        }
    }

    /// `value::value`
    fn value(&mut self, input: &mut Input<'_>, errors: &mut dyn ErrorSink) -> Node<'i> {
        if let Some(event) = input.next_token() {
            match event.kind {
                EventKind::InlineTableOpen => return self.on_inline_table(event, input, errors),
                EventKind::ArrayOpen => return self.on_array(event, input, errors),
                EventKind::Scalar => return self.on_scalar(event, errors),
                _ => {}
            }
        }
        Node::new(0..0, Value::Integer(Integer::default()))
    }

    /// `value::on_scalar`
    fn on_scalar(&mut self, event: Ev, errors: &mut dyn ErrorSink) -> Node<'i> {
        let raw = self.raw(event);
        let (kind, decoded) = match fast_scalar(raw.as_str(), event.enc) {
            Some(fast) => fast,
            None => {
                let mut decoded = Cow::Borrowed("");
                let kind = raw.decode_scalar(&mut decoded, errors);
                (kind, decoded)
            }
        };
        let value = match kind {
            ScalarKind::String => Value::String(decoded),
            ScalarKind::Boolean(b) => Value::Boolean(b),
            ScalarKind::DateTime => {
                let value = match decoded.parse::<Datetime>() {
                    Ok(value) => value,
                    Err(err) => {
                        report(
                            errors,
                            ParseError::new(err.to_string()).with_unexpected(event.span()),
                        );
                        Datetime {
                            date: None,
                            time: None,
                            offset: None,
                        }
                    }
                };
                Value::Datetime(value)
            }
            ScalarKind::Float => Value::Float(Float { text: decoded }),
            ScalarKind::Integer(radix) => Value::Integer(Integer {
                text: decoded,
                radix: radix.value(),
            }),
        };
        Node {
            start: event.start,
            end: event.end,
            value,
        }
    }

    /// `array::on_array`
    fn on_array(
        &mut self,
        open_event: Ev,
        input: &mut Input<'_>,
        errors: &mut dyn ErrorSink,
    ) -> Node<'i> {
        let mut items = Vec::new();
        let mut close_end = open_event.end;
        let mut current_value: Option<Node<'i>> = None;
        while let Some(event) = input.next_token() {
            close_end = event.end;
            match event.kind {
                EventKind::StdTableOpen
                | EventKind::ArrayTableOpen
                | EventKind::InlineTableClose
                | EventKind::SimpleKey
                | EventKind::KeySep
                | EventKind::KeyValSep
                | EventKind::StdTableClose
                | EventKind::ArrayTableClose => break,
                EventKind::Error => continue,
                EventKind::InlineTableOpen => {
                    current_value = Some(self.on_inline_table(event, input, errors));
                }
                EventKind::ArrayOpen => {
                    current_value = Some(self.on_array(event, input, errors));
                }
                EventKind::Scalar => {
                    current_value = Some(self.on_scalar(event, errors));
                }
                EventKind::ValueSep => {
                    if let Some(v) = current_value.take() {
                        items.push(v);
                    }
                }
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
                EventKind::ArrayClose => {
                    if let Some(v) = current_value.take() {
                        items.push(v);
                    }
                    break;
                }
            }
        }
        Node {
            start: open_event.start,
            end: close_end,
            value: Value::Array(Array {
                items,
                of_tables: false,
            }),
        }
    }

    /// `inline_table::on_inline_table`
    fn on_inline_table(
        &mut self,
        open_event: Ev,
        input: &mut Input<'_>,
        errors: &mut dyn ErrorSink,
    ) -> Node<'i> {
        let mut result = Table {
            inline: true,
            ..Table::default()
        };
        let mut close_end = open_event.end;
        let mut current_key: Option<(Vec<Key<'i>>, Key<'i>)> = None;
        let mut current_value: Option<Node<'i>> = None;
        while let Some(event) = input.next_token() {
            close_end = event.end;
            match event.kind {
                EventKind::StdTableOpen
                | EventKind::ArrayTableOpen
                | EventKind::StdTableClose
                | EventKind::ArrayClose
                | EventKind::ArrayTableClose
                | EventKind::KeySep => break,
                EventKind::Error => continue,
                EventKind::SimpleKey => {
                    let (path, key) = self.on_key(event, input, errors);
                    if let Some(key) = key {
                        current_key = Some((path, key));
                    }
                }
                EventKind::KeyValSep => {}
                EventKind::InlineTableOpen => {
                    current_value = Some(self.on_inline_table(event, input, errors));
                }
                EventKind::ArrayOpen => {
                    current_value = Some(self.on_array(event, input, errors));
                }
                EventKind::Scalar => {
                    current_value = Some(self.on_scalar(event, errors));
                }
                EventKind::ValueSep => {
                    self.inline_finish_value(
                        &mut current_key,
                        &mut current_value,
                        &mut result,
                        errors,
                    );
                }
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
                EventKind::InlineTableClose => {
                    self.inline_finish_value(
                        &mut current_key,
                        &mut current_value,
                        &mut result,
                        errors,
                    );
                    break;
                }
            }
        }
        Node {
            start: open_event.start,
            end: close_end,
            value: Value::Table(result),
        }
    }

    /// `inline_table::State::finish_value`
    fn inline_finish_value(
        &mut self,
        current_key: &mut Option<(Vec<Key<'i>>, Key<'i>)>,
        current_value: &mut Option<Node<'i>>,
        result: &mut Table<'i>,
        errors: &mut dyn ErrorSink,
    ) {
        let (Some((path, key)), Some(value)) = (current_key.take(), current_value.take()) else {
            return;
        };
        let ix = &mut self.ix;
        let Some(table) = inline_descend_path(result, ix, &path, true, errors) else {
            return;
        };
        // "Likewise, using dotted keys to redefine tables already defined in [table] form is
        // not allowed"
        let mixed_table_types = table.dotted == path.is_empty();
        if mixed_table_types {
            report(
                errors,
                ParseError::new("duplicate key").with_unexpected(key.tspan()),
            );
        } else {
            match table.find(ix, &key.name) {
                None => {
                    table.push(ix, key, value);
                }
                Some(p) => {
                    let old_span = table.entries[p].0.tspan();
                    report(
                        errors,
                        ParseError::new("duplicate key")
                            .with_unexpected(key.tspan())
                            .with_context(old_span),
                    );
                }
            }
        }
    }
}

/// What `toml_parser`'s key decoder gives, without running it, for the keys almost every file
/// is made of: bare keys (`depends_on`) and basic strings without escapes. `None`: decode.
/// (`fast_paths_agree_with_the_decoders` checks both against the decoders.)
fn fast_key(raw: &str, enc: Option<Encoding>) -> Option<Cow<'_, str>> {
    match enc {
        None if !raw.is_empty()
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(Cow::Borrowed(raw))
        }
        Some(Encoding::BasicString) => plain_basic_string(raw).map(Cow::Borrowed),
        _ => None,
    }
}

/// The scalar decoder's result for basic strings without escapes, `true`, `false` and plain
/// decimal integers; `None`: decode.
fn fast_scalar(raw: &str, enc: Option<Encoding>) -> Option<(ScalarKind, Cow<'_, str>)> {
    match enc {
        Some(Encoding::BasicString) => {
            plain_basic_string(raw).map(|s| (ScalarKind::String, Cow::Borrowed(s)))
        }
        None => match raw.as_bytes() {
            b"true" => Some((ScalarKind::Boolean(true), Cow::Borrowed(raw))),
            b"false" => Some((ScalarKind::Boolean(false), Cow::Borrowed(raw))),
            [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => Some((
                ScalarKind::Integer(toml_parser::decoder::IntegerRadix::Dec),
                Cow::Borrowed(raw),
            )),
            b"0" => Some((
                ScalarKind::Integer(toml_parser::decoder::IntegerRadix::Dec),
                Cow::Borrowed(raw),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The content of `"..."` when it needs no decoding: no escape, no quote, no control byte.
fn plain_basic_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    inner
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f))
        .then_some(inner)
}

/// `key::more_key`
fn more_key(input: &Input<'_>) -> bool {
    let first = input.peek(0);
    let second = input.peek(1);
    first == Some(EventKind::KeySep)
        || (first == Some(EventKind::Whitespace) && second == Some(EventKind::KeySep))
}

fn node_tspan(n: &Node<'_>) -> Span {
    Span::new_unchecked(n.start as usize, n.end as usize)
}

/// `document::descend_path`
fn descend_path<'t, 'i>(
    mut table: &'t mut Table<'i>,
    ix: &mut Index,
    path: &[Key<'i>],
    dotted: bool,
    errors: &mut dyn ErrorSink,
) -> Option<&'t mut Table<'i>> {
    for key in path {
        let pos = match table.find(ix, &key.name) {
            Some(p) => p,
            None => {
                let new_table = Table {
                    implicit: true,
                    dotted,
                    ..Table::default()
                };
                let node = Node {
                    start: key.start,
                    end: key.end,
                    value: Value::Table(new_table),
                };
                table.push(ix, key.clone(), node)
            }
        };
        let spanned = &mut table.entries[pos].1;
        let old_span = node_tspan(spanned);
        table = match &mut spanned.value {
            Value::Array(array) => {
                if !array.of_tables {
                    report(
                        errors,
                        ParseError::new("cannot extend value of type array with a dotted key")
                            .with_unexpected(key.tspan())
                            .with_context(old_span),
                    );
                    return None;
                }
                let last_child = array.items.last_mut()?;
                match &mut last_child.value {
                    Value::Table(table) => table,
                    existing => {
                        report(
                            errors,
                            ParseError::new(format!(
                                "cannot extend value of type {} with a dotted key",
                                existing.type_str()
                            ))
                            .with_unexpected(key.tspan())
                            .with_context(old_span),
                        );
                        return None;
                    }
                }
            }
            Value::Table(child) => {
                if child.inline {
                    report(
                        errors,
                        ParseError::new(
                            "cannot extend value of type inline table with a dotted key",
                        )
                        .with_unexpected(key.tspan()),
                    );
                    return None;
                }
                if dotted && child.implicit {
                    child.dotted = true;
                }
                if dotted && !child.implicit {
                    report(
                        errors,
                        ParseError::new("duplicate key").with_unexpected(key.tspan()),
                    );
                    return None;
                }
                child
            }
            existing => {
                report(
                    errors,
                    ParseError::new(format!(
                        "cannot extend value of type {} with a dotted key",
                        existing.type_str()
                    ))
                    .with_unexpected(key.tspan())
                    .with_context(old_span),
                );
                return None;
            }
        };
    }
    Some(table)
}

/// `inline_table::descend_path`
fn inline_descend_path<'t, 'i>(
    mut table: &'t mut Table<'i>,
    ix: &mut Index,
    path: &[Key<'i>],
    dotted: bool,
    errors: &mut dyn ErrorSink,
) -> Option<&'t mut Table<'i>> {
    for key in path {
        let pos = match table.find(ix, &key.name) {
            Some(p) => p,
            None => {
                let new_table = Table {
                    implicit: true,
                    dotted,
                    inline: true,
                    ..Table::default()
                };
                let node = Node {
                    start: key.start,
                    end: key.end,
                    value: Value::Table(new_table),
                };
                table.push(ix, key.clone(), node)
            }
        };
        let spanned = &mut table.entries[pos].1;
        let old_span = node_tspan(spanned);
        table = match &mut spanned.value {
            Value::Table(child) => {
                if dotted && !child.implicit {
                    report(
                        errors,
                        ParseError::new("duplicate key").with_unexpected(key.tspan()),
                    );
                    return None;
                }
                child
            }
            existing => {
                report(
                    errors,
                    ParseError::new(format!(
                        "cannot extend value of type {} with a dotted key",
                        existing.type_str()
                    ))
                    .with_unexpected(key.tspan())
                    .with_context(old_span),
                );
                return None;
            }
        };
    }
    Some(table)
}

impl Default for Integer<'_> {
    fn default() -> Self {
        Integer {
            text: Cow::Borrowed("0"),
            radix: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;
    use toml::Spanned;
    use toml::de::{DeTable, DeValue};

    /// A big table is given room for the rest of the document at the rate seen so far
    /// instead of doubling: 10 000 `[services.*]` end in a table with less than twice the
    /// first estimate's slack (doubling would leave 16 384 slots), the same tree either way.
    #[test]
    fn a_big_table_reserves_for_the_rest_of_the_document() {
        let mut text = String::from("[defaults]\nrto = \"1h\"\n\n");
        for i in 0..10_000 {
            let _ = write!(text, "[services.s{i:05}]\ntier = {}\n\n", i % 4);
        }
        let (doc, errors) = parse(&text);
        assert!(errors.is_empty());
        let Some(Value::Table(services)) = doc.get_ref().get("services").map(|n| n.get_ref())
        else {
            panic!("no services table");
        };
        assert_eq!(services.entries.len(), 10_000);
        assert!(
            services.entries.capacity() < 10_000 + 4 * 1024,
            "capacity {}",
            services.entries.capacity()
        );
    }

    // --- A dump of both trees in one format, to compare them. ---

    fn dump(v: &Node<'_>, out: &mut String) {
        let _ = write!(out, "@{:?}", v.span());
        match v.get_ref() {
            Value::String(s) => {
                let _ = write!(out, "s{s:?}");
            }
            Value::Integer(i) => {
                let _ = write!(out, "i{}/{}", i.as_str(), i.radix());
            }
            Value::Float(f) => {
                let _ = write!(out, "f{}", f.as_str());
            }
            Value::Boolean(b) => {
                let _ = write!(out, "b{b}");
            }
            Value::Datetime(d) => {
                let _ = write!(out, "d{d}");
            }
            Value::Array(a) => {
                out.push('[');
                for x in a.iter() {
                    dump(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Table(t) => dump_table(t, out),
        }
    }

    fn dump_table(t: &Table<'_>, out: &mut String) {
        out.push('{');
        for (k, v) in t.iter() {
            let _ = write!(out, "{:?}@{:?}=", k.get_ref(), k.span());
            dump(v, out);
            out.push(',');
        }
        out.push('}');
    }

    fn dump_de(v: &Spanned<DeValue<'_>>, out: &mut String) {
        let _ = write!(out, "@{:?}", v.span());
        match v.get_ref() {
            DeValue::String(s) => {
                let _ = write!(out, "s{s:?}");
            }
            DeValue::Integer(i) => {
                let _ = write!(out, "i{}/{}", i.as_str(), i.radix());
            }
            DeValue::Float(f) => {
                let _ = write!(out, "f{}", f.as_str());
            }
            DeValue::Boolean(b) => {
                let _ = write!(out, "b{b}");
            }
            DeValue::Datetime(d) => {
                let _ = write!(out, "d{d}");
            }
            DeValue::Array(a) => {
                out.push('[');
                for x in a.iter() {
                    dump_de(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            DeValue::Table(t) => dump_de_table(t, out),
        }
    }

    fn dump_de_table(t: &DeTable<'_>, out: &mut String) {
        out.push('{');
        for (k, v) in t.iter() {
            let _ = write!(out, "{:?}@{:?}=", k.get_ref(), k.span());
            dump_de(v, out);
            out.push(',');
        }
        out.push('}');
    }

    /// Parses with both parsers, and ours both in one piece and cut at every header; panics
    /// with both results when they differ.
    #[track_caller]
    fn same_as_toml(text: &str) -> (Doc<'_>, Vec<TomlError>) {
        let (doc, errors) = parse(text);
        let mut ours = String::new();
        dump_table(doc.get_ref(), &mut ours);
        for chunk in [0, 1, 3, 10] {
            let (d, e) = parse_in_chunks(text, chunk);
            let mut cut = String::new();
            dump_table(d.get_ref(), &mut cut);
            assert_eq!(
                (&cut, &e),
                (&ours, &errors),
                "cut at {chunk} bytes: {text:?}"
            );
        }
        let (de, de_errors) = DeTable::parse_recoverable(text);
        let mut theirs = String::new();
        dump_de_table(de.get_ref(), &mut theirs);
        let de_errors: Vec<TomlError> = de_errors
            .iter()
            .map(|e| TomlError {
                message: e.message().to_string(),
                span: e.span(),
            })
            .collect();
        assert_eq!(
            (&ours, &errors),
            (&theirs, &de_errors),
            "tree or errors differ from toml's for {text:?}"
        );
        (doc, errors)
    }

    fn get<'a, 'i>(t: &'a Table<'i>, path: &str) -> &'a Node<'i> {
        let mut parts = path.split('.');
        let mut node = t.get(parts.next().unwrap()).unwrap();
        for p in parts {
            node = match p.parse::<usize>() {
                Ok(i) => &node.get_ref().as_array().unwrap()[i],
                Err(_) => node.get_ref().as_table().unwrap().get(p).unwrap(),
            };
        }
        node
    }

    fn s<'a>(t: &'a Table<'_>, path: &str) -> &'a str {
        get(t, path).get_ref().as_str().unwrap()
    }

    #[test]
    fn strings_of_every_kind_with_escapes() {
        let text = r#"basic = "a\tb\n\"q\" \u00e9 \U0001F600 \\"
literal = 'C:\no\escapes'
ml = """
first
  second \
    joined"""
mll = '''
raw \n line'''
plain = "no escapes"
"#;
        let (doc, errors) = same_as_toml(text);
        assert!(errors.is_empty(), "{errors:?}");
        let t = doc.get_ref();
        assert_eq!(s(t, "basic"), "a\tb\n\"q\" é 😀 \\");
        assert_eq!(s(t, "literal"), r"C:\no\escapes");
        assert_eq!(s(t, "ml"), "first\n  second joined");
        assert_eq!(s(t, "mll"), "raw \\n line");
        // Strings without escapes borrow from the source.
        match get(t, "plain").get_ref() {
            Value::String(Cow::Borrowed(b)) => assert_eq!(*b, "no escapes"),
            other => panic!("{other:?}"),
        }
        let at = text.find("\"no escapes").unwrap();
        assert_eq!(get(t, "plain").span(), at..at + 12);
        assert_eq!(&text[get(t, "plain").span()], "\"no escapes\"");
    }

    #[test]
    fn numbers_booleans_and_datetimes() {
        let text = "a = 1_000\nb = 0xdead_BEEF\nc = 0o755\nd = 0b1010\ne = -17\nf = +3.5e-2\n\
                    g = 1_0.0_1\nh = inf\ni = -nan\nj = true\nk = false\n\
                    l = 1979-05-27T07:32:00Z\nm = 1979-05-27\nn = 07:32:00\no = 99999999999999999999\n";
        let (doc, errors) = same_as_toml(text);
        assert!(errors.is_empty(), "{errors:?}");
        let t = doc.get_ref();
        let int = |k: &str| match get(t, k).get_ref() {
            Value::Integer(i) => i.to_i64(),
            other => panic!("{other:?}"),
        };
        assert_eq!(int("a"), Some(1000));
        assert_eq!(int("b"), Some(0xdead_beef));
        assert_eq!(int("c"), Some(0o755));
        assert_eq!(int("d"), Some(10));
        assert_eq!(int("e"), Some(-17));
        assert_eq!(int("o"), None, "out of i64 range");
        let float = |k: &str| match get(t, k).get_ref() {
            Value::Float(f) => f.as_str().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(float("f"), "+3.5e-2");
        assert_eq!(float("g"), "10.01");
        assert!(matches!(get(t, "j").get_ref(), Value::Boolean(true)));
        assert!(matches!(get(t, "k").get_ref(), Value::Boolean(false)));
        assert_eq!(get(t, "l").get_ref().type_str(), "datetime");
        match get(t, "m").get_ref() {
            Value::Datetime(d) => assert_eq!(d.to_string(), "1979-05-27"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dotted_keys_and_headers_build_nested_tables() {
        let text =
            "a.b.c = 1\na.b.d = 2\n\"quoted.key\".x = 3\n[t.u]\nv = 4\n[t]\nw = 5\n[t.u.z]\n";
        let (doc, errors) = same_as_toml(text);
        assert!(errors.is_empty(), "{errors:?}");
        let t = doc.get_ref();
        assert_eq!(get(t, "a.b.c").span(), 8..9);
        assert!(
            get(t, "a.b")
                .get_ref()
                .as_table()
                .unwrap()
                .get("d")
                .is_some()
        );
        assert!(t.get("quoted.key").is_some());
        assert!(get(t, "t.u.v").get_ref().type_str() == "integer");
        assert!(get(t, "t.w").get_ref().type_str() == "integer");
        assert!(get(t, "t.u.z").get_ref().as_table().unwrap().is_empty());
        // `[t]` after `[t.u]` re-opens the implicit table: the key points at the header.
        let (k, _) = t.iter().find(|(k, _)| k.get_ref() == "t").unwrap();
        assert_eq!(&text[k.span()], "t");
        assert_eq!(k.span().start, text.find("[t]").unwrap() + 1);
    }

    #[test]
    fn arrays_of_tables_and_inline_tables() {
        let text = "[[steps]]\nname = \"a\"\nhttp = { url = \"u\", expect_status = [200, 204], h.x = 1 }\n\
                    [[steps]]\nname = \"b\"\n[steps.sub]\nk = 1\n[[steps.list]]\nn = 1\n[[steps.list]]\nn = 2\n\
                    nested = [[1, 2], [\"x\"], [{ a = 1 }]]\n";
        let (doc, errors) = same_as_toml(text);
        assert!(errors.is_empty(), "{errors:?}");
        let t = doc.get_ref();
        assert_eq!(get(t, "steps").get_ref().as_array().unwrap().len(), 2);
        assert_eq!(s(t, "steps.0.name"), "a");
        assert_eq!(s(t, "steps.0.http.url"), "u");
        assert_eq!(
            get(t, "steps.0.http.expect_status")
                .get_ref()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(get(t, "steps.0.http.h.x").get_ref().type_str() == "integer");
        assert_eq!(s(t, "steps.1.name"), "b");
        assert!(get(t, "steps.1.sub.k").get_ref().type_str() == "integer");
        assert_eq!(
            get(t, "steps.1.list").get_ref().as_array().unwrap().len(),
            2
        );
        // A table of an array of tables spans its header.
        assert_eq!(&text[get(t, "steps.1").span()], "[[steps]]");
        assert_eq!(
            get(t, "steps.1.list.1.nested.2.0.a").get_ref().type_str(),
            "integer"
        );
    }

    #[test]
    fn duplicate_keys_and_redefinitions_are_errors_with_spans() {
        let text = "a = 1\na = 2\n[t]\nx = 1\n[t]\ny = 2\nv = { p = 1, p = 2 }\n\
                    [s]\nq.r = 1\n[s.q]\n[[arr]]\n[arr]\nz = 1\nz.w = 2\n";
        let (doc, errors) = same_as_toml(text);
        let msgs: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.message.as_str(), &text[e.span.clone().unwrap()]))
            .collect();
        assert!(msgs.contains(&("duplicate key", "a")), "{msgs:?}");
        assert!(msgs.contains(&("duplicate key", "t")), "{msgs:?}");
        assert!(msgs.contains(&("duplicate key", "p")), "{msgs:?}");
        assert!(msgs.contains(&("duplicate key", "q")), "{msgs:?}");
        assert!(msgs.contains(&("duplicate key", "arr")), "{msgs:?}");
        assert!(
            msgs.contains(&("cannot extend value of type integer with a dotted key", "z")),
            "{msgs:?}"
        );
        let second_a = text.find("a = 2").unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e.span == Some(second_a..second_a + 1))
        );
        // The first definition wins; the table re-opened by mistake keeps both keys.
        let t = doc.get_ref();
        assert_eq!(&text[get(t, "a").span()], "1");
        assert!(get(t, "t.x").get_ref().type_str() == "integer");
        assert!(get(t, "t.y").get_ref().type_str() == "integer");
    }

    #[test]
    fn syntax_errors_recover_and_later_errors_are_still_reported() {
        let text = "[services.a]\ntier = \"x\nrto = 1979-13-45\n[services.b]\ntier = 1\n\
                    tier = 2\nx = 0b102\n[services.b]\n";
        let (doc, errors) = same_as_toml(text);
        let found: Vec<(&str, usize)> = errors
            .iter()
            .map(|e| (e.message.as_str(), e.span.clone().unwrap().start))
            .collect();
        let at = |s: &str| text.find(s).unwrap();
        let expect = [
            ("invalid basic string, expected `\"`", at("\"x") + 2),
            ("invalid date, expected month between 01 and 12", at("1979")),
            ("duplicate key", at("tier = 2")),
            ("invalid binary number", at("102") + 2),
            ("duplicate key", text.rfind("b]").unwrap()),
        ];
        for e in expect {
            assert!(found.contains(&e), "{e:?} not in {found:?}");
        }
        assert!(get(doc.get_ref(), "services.b.tier").span().start > 0);
    }

    #[test]
    fn a_big_table_is_indexed_and_sorted() {
        let mut text = String::new();
        // Reverse order, with a re-opened implicit table and a duplicate in the middle.
        for i in (0..500).rev() {
            let _ = writeln!(text, "[services.s{i:03}]\ntier = {}", i % 4);
            if i == 250 {
                let _ = writeln!(text, "[services.s400]\ntier = 9");
                let _ = writeln!(text, "[services.zz.deep]\n[services.zz]\nk = 1");
            }
        }
        let (doc, errors) = same_as_toml(&text);
        // `[services.s400]` twice, and then its `tier` twice.
        assert_eq!(errors.len(), 2, "{errors:?}");
        let services = get(doc.get_ref(), "services").get_ref().as_table().unwrap();
        assert_eq!(services.len(), 501);
        let names: Vec<&str> = services.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
        assert!(names.is_sorted());
        assert_eq!(names[0], "s000");
        assert!(services.get("s123").is_some());
        assert!(services.get("zz").is_some());
        assert!(services.get("s500").is_none());
    }

    /// Runs the real decoders on `raw` (lexed alone, so its encoding is the lexer's).
    fn decoded(raw: &str, key: bool) -> Option<(Option<ScalarKind>, String, bool)> {
        let tokens: Vec<Token> = Source::new(raw).lex().collect();
        let t = tokens.first()?;
        if t.span().end() != raw.len() {
            return None;
        }
        let enc = match t.kind() {
            TokenKind::BasicString => Some(Encoding::BasicString),
            TokenKind::LiteralString => Some(Encoding::LiteralString),
            TokenKind::MlBasicString => Some(Encoding::MlBasicString),
            TokenKind::MlLiteralString => Some(Encoding::MlLiteralString),
            TokenKind::Atom => None,
            _ => return None,
        };
        let r = Raw::new_unchecked(raw, enc, Span::new_unchecked(0, raw.len()));
        let mut errors = NoErrors(true);
        let mut out = Cow::Borrowed("");
        if key {
            r.decode_key(&mut out, &mut errors);
            let fast = fast_key(raw, enc);
            if let Some(f) = &fast {
                assert!(errors.0, "fast path taken for a key with errors: {raw:?}");
                assert_eq!(f, &out, "key {raw:?}");
                assert!(matches!(f, Cow::Borrowed(_)));
            }
            Some((None, out.into_owned(), fast.is_some()))
        } else {
            let kind = r.decode_scalar(&mut out, &mut errors);
            let fast = fast_scalar(raw, enc);
            if let Some((k, f)) = &fast {
                assert!(
                    errors.0,
                    "fast path taken for a scalar with errors: {raw:?}"
                );
                assert_eq!(*k, kind, "scalar {raw:?}");
                if !matches!(kind, ScalarKind::Boolean(_)) {
                    assert_eq!(f, &out, "scalar {raw:?}");
                }
            }
            Some((Some(kind), out.into_owned(), fast.is_some()))
        }
    }

    #[test]
    fn fast_paths_agree_with_the_decoders() {
        let cases = [
            "a",
            "depends_on",
            "svc-000123",
            "A_b-9",
            "-",
            "_",
            "é",
            "a.b",
            "a b",
            "",
            "\"plain\"",
            "\"\"",
            "\"tab\there\"",
            "\"esc\\n\"",
            "\"q\\\"q\"",
            "\"\u{1}\"",
            "\"\u{7f}\"",
            "\"é ✓\"",
            "\"open",
            "'lit'",
            "0",
            "00",
            "01",
            "1",
            "42",
            "-1",
            "+1",
            "1_000",
            "0x1f",
            "1e3",
            "1.5",
            "true",
            "false",
            "True",
            "tru",
            "truee",
            "inf",
            "nan",
            "1979-05-27",
            "07:32:00",
            "99999999999999999999",
        ];
        let mut taken = 0;
        for c in cases {
            for key in [true, false] {
                if let Some((_, _, fast)) = decoded(c, key) {
                    taken += fast as usize;
                }
            }
        }
        assert!(taken >= 15, "{taken}");
    }

    #[test]
    fn the_index_hash_does_not_collide_on_numbered_names() {
        // A collision is handled (by a scan), but must stay rare: FxHash had 2.8% of these.
        let b = foldhash::fast::FixedState::default();
        let mut hs: Vec<u64> = (0..100_000)
            .map(|i| b.hash_one((1u32, format!("svc-{i:06}").as_str())))
            .collect();
        hs.sort_unstable();
        hs.dedup();
        assert_eq!(hs.len(), 100_000);
    }

    #[test]
    fn valid_documents_are_parsed_in_pieces_and_broken_ones_in_one() {
        let text = "top = 1\n[a]\nx = [\n  1,\n]\n[[b]]\ny = { z = 1 }\n[a.c]\n[c]\nk = '''\n[not a header]\n'''\n";
        assert!(try_chunks(text, 0).is_some());
        same_as_toml(text);
        // An array left open before a header: the piece before the cut cannot parse cleanly.
        let broken = "a = [1,\n[b]\nc = 1\n";
        assert!(try_chunks(broken, 0).is_none());
        same_as_toml(broken);
    }

    #[test]
    fn plain_lines_are_read_by_the_scanner_and_others_are_not() {
        let plain = "# graph\n\ntop = 1\n[services.a-1]\ntier = 0\t# c\nrto = \"20m\"\n  deps = [\"b\", \"c\",]\non = true\n[services.b]\nx = []\ns = \"é ✓\"";
        assert!(fast::scan(plain, 0, plain.len()).is_some());
        let (_, errors) = same_as_toml(plain);
        assert!(errors.is_empty());
        for line in [
            "x = 'lit'",
            "x = \"esc\\n\"",
            "x = \"\"\"ml\"\"\"",
            "x = 1.5",
            "x = -1",
            "x = 01",
            "x = 1979-05-27",
            "x = { a = 1 }",
            "x = [[1]]",
            "x = [1,\n2]",
            "a.b = 1",
            "\"q\" = 1",
            "[[t]]",
            "[ t ]",
            "x = 1\r\n",
            "x = 1 # \u{1}",
            "\u{feff}x = 1",
        ] {
            assert!(fast::scan(line, 0, line.len()).is_none(), "{line:?}");
            same_as_toml(&format!("[t]\n{line}\n[u]\ny = 2\n"));
        }
    }

    /// Edge cases from the TOML spec and from broken input, each compared with `toml`.
    #[test]
    fn same_trees_and_errors_as_toml_on_edge_cases() {
        let cases = [
            "",
            "\u{feff}a = 1",
            "a = 1\r\nb = 2\r\n",
            "a = 1 # comment\n# only a comment",
            "a",
            "a =",
            "= 1",
            "a = 1 b = 2",
            "[a",
            "[a]]",
            "[[a]",
            "[]",
            "[a.]",
            "a.b = 1\na = 2",
            "a = 2\na.b = 1",
            "[a]\nb.c = 1\n[a.b]\nd = 1",
            "[a.b]\n[a]\nb = 1",
            "[a]\n[a.b]\n[a]",
            "[[a]]\n[a.b]\nc = 1",
            "a = []\n[[a]]",
            "a = [1]\n[a.b]",
            "a = { b = 1 }\n[a]\n",
            "a = { b = 1 }\na.c = 2",
            "a = { b = 1, }",
            "a = { b = 1\n, c = 2 }",
            "a = { b.c = 1, b.d = 2 }",
            "a = { b = {}, b.c = 1 }",
            "a = { b.c = 1, b = 2 }",
            "a = [1 2]",
            "a = [1,,2]",
            "a = [,]",
            "a = [1, 'x', [], {}, 2.5, true, 1979-05-27]",
            "a = \"unterminated",
            "a = \"bad \\q escape\"",
            "a = \"\\u00\"",
            "a = 'multi\nline'",
            "a = \"\"\"\n\"\"\"",
            "a = 0x",
            "a = 0b2",
            "a = 01",
            "a = 1__2",
            "a = _1",
            "a = 1.",
            "a = .1",
            "a = 1e",
            "a = +0x1",
            "a = -0",
            "a = nan\nb = -inf",
            "a = tru",
            "a = True",
            "a = 1979-05-27 07:32:00",
            "a = 1979-02-30",
            "a = 25:00:00",
            "a = 1979-05-27T07:32:00.999999+07:00",
            "\"\" = 1",
            "'' = 1",
            "\"a\\nb\" = 1",
            "'''ml''' = 1",
            "a . b = 1",
            "a.\"b.c\".d = 1",
            "[ a . b ]\nc = 1",
            "[a]\n[[a]]",
            "[[a]]\n[a]",
            "[[a.b]]\n[[a]]",
            "[[a]]\n[[a.b]]\nx = 1\n[[a]]\n[[a.b]]\ny = 2",
            "a = 1\n[[a.b]]",
            "a = \"x\"\nb = a",
            "a = { x = [ { y = 1 } ] }\n[a.x]",
            "x = [[[[[[[[[[1]]]]]]]]]]",
            "a = 1\u{0}",
            "a = \"\u{7f}\"",
            "# \u{1}",
            "a = 1\n\n\n[b]\n\n\nc = 2\n\t  \n",
            "a=1\nb=2\n[c]\nd=3",
            "[services.x]\ndepends_on = [\"a\", \"b\",\n  \"c\", # comment\n]\n",
            "[services.x]\ndepends_on = [\"a\" \"b\"]\ntier = 0\n",
        ];
        for case in cases {
            same_as_toml(case);
        }
        // Deep nesting hits the same limits.
        same_as_toml(&format!("a = {}1{}", "[".repeat(100), "]".repeat(100)));
        same_as_toml(&format!("a = {}{}", "{b = ".repeat(100), "}".repeat(100)));
        let long_key = vec!["k"; 100].join(".");
        same_as_toml(&format!("{long_key} = 1"));
        same_as_toml(&format!("[{long_key}]"));
    }

    mod random {
        use super::same_as_toml;
        use proptest::prelude::*;

        /// Lines that are valid, invalid, or valid only in some contexts.
        const LINES: &[&str] = &[
            "[a]",
            "[a.b]",
            "[b]",
            "[a.b.c]",
            "[[a]]",
            "[[a.b]]",
            "[[c]]",
            "[c.d]",
            "a = 1",
            "b = 2",
            "a.b = 3",
            "b.c = 'x'",
            "c = { d = 1, e.f = 2 }",
            "d = [1, 2, 3]",
            "e = [{ x = 1 }, { x = 2 }]",
            "f = \"esc\\t\\u00e9\"",
            "g = \"\"\"multi\nline\"\"\"",
            "h = 1979-05-27T07:32:00Z",
            "i = 0x1F",
            "j = 1_000.5",
            "k = true",
            "\"q k\" = 1",
            "a",
            "= 1",
            "x = ",
            "y = [1, 2",
            "z = { a = 1",
            "[broken",
            "w = \"open",
            "v = 1979-13-45",
            "u = 0b102",
            "t = 1 2",
            "# comment",
            "",
            "   ",
            "c.d.e = 1",
            "d = 4",
            "s = {}",
            // Plain lines (read without toml_parser) and near misses.
            "[svc.a-1]",
            "[svc.b_2]\t# c",
            "tier = 0",
            "tier = 00",
            "tier = +1",
            "tier = 12x",
            "rto = \"20m\"",
            "rto = \"\"",
            "rto = \"\"\"",
            "rto = \"é\t✓\" # done",
            "rto = \"a\"b",
            "  deps = [\"a\", \"b\",]",
            "deps=[ ]",
            "deps = [\"a\" \"b\"]",
            "deps = [,]",
            "deps = [\"a\",,]",
            "deps = [true, 1, \"x\"]",
            "on = true",
            "on = truex",
            "on = false # off",
            "on = 1 # \u{7f}",
            "x = 1\r",
            "[ svc.c ]",
            "[svc .d]",
            "[svc.]",
            "svc.e = 1",
            "1 = 2",
        ];

        fn doc() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(LINES), 0..14).prop_map(|ls| ls.join("\n"))
        }

        /// A document with a few bytes replaced by TOML punctuation, to reach odd states.
        fn mutated() -> impl Strategy<Value = String> {
            (
                doc(),
                prop::collection::vec((any::<prop::sample::Index>(), 0usize..12), 0..4),
            )
                .prop_map(|(d, edits)| {
                    const PUNCT: &[u8] = b"[]{}=,.\"'#\n ";
                    let mut b = d.into_bytes();
                    for (at, p) in edits {
                        if !b.is_empty() {
                            let i = at.index(b.len());
                            b[i] = PUNCT[p];
                        }
                    }
                    String::from_utf8(b).unwrap_or_default()
                })
        }

        /// Mostly valid documents: unique keys, headers re-using a few names, values that
        /// span lines or contain brackets.
        fn valid_doc() -> impl Strategy<Value = String> {
            const VALUES: &[&str] = &[
                "1",
                "\"[x]\"",
                "'''\n[not.a.header]\n'''",
                "[\n  1,\n  2,\n]",
                "[[1], [\"]\"]]",
                "{ a = 1, b.c = [2] }",
                "1979-05-27",
                "\"\"\"\n[[also.not]]\n\"\"\"",
            ];
            prop::collection::vec((0usize..4, 0usize..3, 0usize..VALUES.len()), 0..30).prop_map(
                |lines| {
                    let mut out = String::new();
                    for (i, (kind, name, value)) in lines.into_iter().enumerate() {
                        let line = match kind {
                            0 => format!("[t{i}]"),
                            1 => format!("[h{name}.t{i}]"),
                            2 => format!("[[arr{name}]]"),
                            _ => format!("k{i} = {}", VALUES[value]),
                        };
                        out.push_str(&line);
                        out.push('\n');
                    }
                    out
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn fast_paths_agree_with_the_decoders_on_random_tokens(
                raw in "[\"'a-z0-9_\\-+. \\\\\t\u{1}\u{7f}é]{0,8}"
            ) {
                for key in [true, false] {
                    super::decoded(&raw, key);
                    super::decoded(&format!("\"{raw}\""), key);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn same_as_toml_on_valid_documents_cut_in_pieces(d in valid_doc()) {
                let (_, errors) = same_as_toml(&d);
                prop_assert!(errors.is_empty(), "{errors:?}");
                prop_assert!(super::super::try_chunks(&d, 0).is_some());
            }

            #[test]
            fn same_as_toml_on_random_documents(d in doc()) {
                same_as_toml(&d);
            }

            #[test]
            fn same_as_toml_on_mutated_documents(d in mutated()) {
                same_as_toml(&d);
            }
        }
    }
}
