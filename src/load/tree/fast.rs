//! A scanner for the plain TOML most graph files are made of, in place of `toml_parser`'s
//! lexer and event parser for the pieces it can read.
//!
//! A 100 000-service `graph.toml` is ~3.6 million tokens; lexing them, turning them into
//! events and building the tree from the events was most of `meeseeks plan`'s time on it.
//! This scanner reads one piece of the document (see `try_chunks`) line by line and accepts
//! only lines of these forms, with spaces or tabs between the parts:
//!
//! - blank lines and `# comments`;
//! - table headers of bare keys: `[services.orders-db]`;
//! - `bare-key = value`, where a value is a basic string without escapes (`"20m"`), a decimal
//!   integer without sign or `_` (`0`, `42`), `true`, `false`, or a one-line array of those
//!   (`["a", "b",]`);
//!
//! each optionally followed by a comment. Anything else (quoted or dotted keys, escapes,
//! literal or multi-line strings, floats, dates, inline tables, `[[arrays]]`, nested or
//! multi-line arrays, `\r`, odd control bytes) makes it give up on the whole piece, which then
//! goes through `toml_parser` as before. The answer for an accepted piece is what
//! `Parser::document_events` would have made of `toml_parser`'s events for it: the same
//! headers and key/value pairs with the same spans and decoded values, handed to the same
//! `finish_table` / `start_table` / `capture_key_value` calls, so duplicate keys and table
//! redefinitions are found (and worded) by the same code. The property tests in `tree.rs`
//! compare whole trees and errors with `toml`'s own parser on documents made of such lines
//! and of near misses.

use std::borrow::Cow;

use super::{Array, Integer, Key, Node, Value};

/// What a piece is made of, in document order.
pub(super) enum Item<'i> {
    /// `[path.key]` written at `start..end`.
    Header {
        path: Vec<Key<'i>>,
        key: Key<'i>,
        start: u32,
        end: u32,
    },
    /// `key = value`
    KeyVal(Key<'i>, Node<'i>),
}

/// The items of `text[start..end]`, or `None` when a line is not of the plain forms.
pub(super) fn scan(text: &str, start: usize, end: usize) -> Option<Vec<Item<'_>>> {
    let mut s = Scanner {
        text,
        b: &text.as_bytes()[..end],
        i: start,
    };
    let mut items = Vec::with_capacity((end - start) / 24);
    while s.i < s.b.len() {
        s.skip_ws();
        match s.peek() {
            None => break,
            Some(b'\n') => {
                s.i += 1;
                continue;
            }
            Some(b'#') => {}
            Some(b'[') => items.push(s.header()?),
            Some(_) => {
                let key = s.bare_key()?;
                s.skip_ws();
                if s.peek() != Some(b'=') {
                    return None;
                }
                s.i += 1;
                s.skip_ws();
                let value = match s.peek()? {
                    b'[' => s.array()?,
                    _ => s.scalar()?,
                };
                items.push(Item::KeyVal(key, value));
            }
        }
        s.end_of_line()?;
    }
    Some(items)
}

struct Scanner<'i> {
    text: &'i str,
    /// The document's bytes up to the end of the piece.
    b: &'i [u8],
    i: usize,
}

/// Bytes of a bare key.
fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Bytes allowed in a basic string without escapes and in a comment: tab, printable ASCII and
/// UTF-8 beyond ASCII (the text is already valid UTF-8). `"` and `\` are checked apart.
fn is_plain_byte(c: u8) -> bool {
    c == b'\t' || (c >= 0x20 && c != 0x7f)
}

impl<'i> Scanner<'i> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// Whitespace, an optional comment, then a newline or the end of the piece.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.i += 1;
                Some(())
            }
            Some(b'#') => {
                self.i += 1;
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        self.i += 1;
                        return Some(());
                    }
                    if !is_plain_byte(c) {
                        return None;
                    }
                    self.i += 1;
                }
                Some(())
            }
            Some(_) => None,
        }
    }

    fn bare_key(&mut self) -> Option<Key<'i>> {
        let start = self.i;
        while self.peek().is_some_and(is_key_byte) {
            self.i += 1;
        }
        (self.i > start).then(|| Key {
            start: start as u32,
            end: self.i as u32,
            name: Cow::Borrowed(&self.text[start..self.i]),
        })
    }

    /// `[a.b.c]`, no whitespace inside; not `[[`.
    fn header(&mut self) -> Option<Item<'i>> {
        let start = self.i;
        self.i += 1;
        let mut keys = Vec::new();
        loop {
            keys.push(self.bare_key()?);
            match self.peek()? {
                b'.' => self.i += 1,
                b']' => break,
                _ => return None,
            }
        }
        // `toml`'s nesting limit is far away; deep paths are left to the full parser.
        if keys.len() > 8 {
            return None;
        }
        self.i += 1;
        let key = keys.pop()?;
        Some(Item::Header {
            path: keys,
            key,
            start: start as u32,
            end: self.i as u32,
        })
    }

    /// A string, integer or boolean, followed by something that may end a value.
    fn scalar(&mut self) -> Option<Node<'i>> {
        let start = self.i;
        let value = match self.peek()? {
            b'"' => {
                self.i += 1;
                let from = self.i;
                loop {
                    let c = self.peek()?;
                    if c == b'"' {
                        break;
                    }
                    if c == b'\\' || !is_plain_byte(c) {
                        return None;
                    }
                    self.i += 1;
                }
                let s = &self.text[from..self.i];
                self.i += 1;
                // `""` followed by `"` opens a multi-line string.
                if s.is_empty() && self.peek() == Some(b'"') {
                    return None;
                }
                Value::String(Cow::Borrowed(s))
            }
            b'0'..=b'9' => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                let digits = &self.text[start..self.i];
                if digits.len() > 1 && digits.starts_with('0') {
                    return None;
                }
                Value::Integer(Integer {
                    text: Cow::Borrowed(digits),
                    radix: 10,
                })
            }
            b't' if self.b[start..].starts_with(b"true") => {
                self.i += 4;
                Value::Boolean(true)
            }
            b'f' if self.b[start..].starts_with(b"false") => {
                self.i += 5;
                Value::Boolean(false)
            }
            _ => return None,
        };
        // `42x`, `1979-05-27`, `1.5`, `truex`: not ours.
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\n' | b'#' | b',' | b']') => {}
            Some(_) => return None,
        }
        Some(Node {
            start: start as u32,
            end: self.i as u32,
            value,
        })
    }

    /// `[v, v, ...]` on one line, of scalars, an optional trailing comma.
    fn array(&mut self) -> Option<Node<'i>> {
        let start = self.i;
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek()? == b']' {
                break;
            }
            items.push(self.scalar()?);
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.i += 1;
        Some(Node {
            start: start as u32,
            end: self.i as u32,
            value: Value::Array(Array {
                items,
                of_tables: false,
            }),
        })
    }
}
