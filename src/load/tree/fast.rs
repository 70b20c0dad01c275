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
pub enum Item<'i> {
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
        scratch: Vec::new(),
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
    /// Items of the array being read.
    scratch: Vec<Node<'i>>,
}

/// Byte classes, looked up by table (this loop runs over every byte of a 12 MB graph).
const KEY: u8 = 1;
/// Ends the plain part of a basic string: `"`, `\\`, a control byte other than tab.
const STR_STOP: u8 = 2;
/// Not allowed in a comment: a control byte other than tab.
const CONTROL: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            t[c] |= KEY;
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            t[c] |= STR_STOP | CONTROL;
        }
        if b == b'"' || b == b'\\' {
            t[c] |= STR_STOP;
        }
        c += 1;
    }
    t
};

fn is(class: u8, c: u8) -> bool {
    CLASS[c as usize] & class != 0
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
                let rest = &self.b[self.i + 1..];
                let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                if rest[..len].iter().any(|&c| is(CONTROL, c)) {
                    return None;
                }
                self.i = (self.i + 1 + len + 1).min(self.b.len());
                Some(())
            }
            Some(_) => None,
        }
    }

    fn bare_key(&mut self) -> Option<Key<'i>> {
        let start = self.i;
        let rest = &self.b[start..];
        self.i += rest.iter().position(|&c| !is(KEY, c)).unwrap_or(rest.len());
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
        // Mostly `[services.NAME]`: room for two keys, one allocation.
        let mut keys = Vec::with_capacity(2);
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
                let from = self.i + 1;
                let len = self.b[from..].iter().position(|&c| is(STR_STOP, c))?;
                if self.b[from + len] != b'"' {
                    return None;
                }
                self.i = from + len;
                let s = &self.text[from..self.i];
                self.i += 1;
                // `""` followed by `"` opens a multi-line string.
                if s.is_empty() && self.peek() == Some(b'"') {
                    return None;
                }
                Value::String(Cow::Borrowed(s))
            }
            b'0'..=b'9' => {
                let rest = &self.b[start..];
                self.i += rest
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
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
        // Collected in a reused buffer, then copied into a vector of the exact size: growing
        // 100 000 small vectors by doubling was a fifth of this scanner's time.
        self.scratch.clear();
        loop {
            self.skip_ws();
            if self.peek()? == b']' {
                break;
            }
            let item = self.scalar()?;
            self.scratch.push(item);
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
                items: self.scratch.drain(..).collect(),
                of_tables: false,
            }),
        })
    }
}
