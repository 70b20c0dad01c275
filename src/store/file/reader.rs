//! Reading a journal back: strict in the middle, tolerant at the tail.
//!
//! The writer appends whole lines and fsyncs them before anyone is told they are durable, so
//! after a crash only the last line can be incomplete (no newline, or garbage such as the zero
//! bytes some file systems leave after a power loss). That line was never acknowledged: it is
//! ignored with a warning. Anything unreadable before the last line means the file was damaged
//! or edited, and replaying around it could resume a failover from a wrong state: that is an
//! error naming the line.

use std::path::Path;

use crate::error::{Error, Result};
use crate::events::Record;

/// The records of a journal, in order, plus what was tolerated.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub records: Vec<Record>,
    pub warnings: Vec<String>,
    /// Byte length of the valid prefix (through the last good line's newline). A writer that
    /// continues the journal truncates to this, so a torn tail never ends up mid-file.
    pub valid_len: u64,
}

impl Replay {
    pub fn last_seq(&self) -> u64 {
        self.records.last().map(|r| r.seq).unwrap_or(0)
    }
}

/// Reads and checks the journal at `path`.
pub fn read_journal(path: &Path) -> Result<Replay> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read journal {}", path.display()), e))?;
    parse_journal(&bytes, &path.display().to_string())
}

/// Parses journal bytes; `name` is used in messages.
pub fn parse_journal(bytes: &[u8], name: &str) -> Result<Replay> {
    let mut replay = Replay::default();
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        line_no += 1;
        let (line, next, complete) = match bytes[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[pos..pos + i], pos + i + 1, true),
            None => (&bytes[pos..], bytes.len(), false),
        };
        let is_last = next >= bytes.len();
        if !complete {
            replay.warnings.push(format!(
                "{name}: ignoring the incomplete last line {line_no} ({} bytes, no newline): \
                 the process stopped while writing it",
                line.len()
            ));
            break;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            // Never written by the writer; harmless.
            pos = next;
            replay.valid_len = next as u64;
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(rec) => {
                if let Some(prev) = replay.records.last()
                    && rec.seq <= prev.seq
                {
                    return Err(Error::Invalid(format!(
                        "{name}:{line_no}: sequence number {} does not follow {} (the journal \
                         was edited or two writers wrote it)",
                        rec.seq, prev.seq
                    )));
                }
                replay.records.push(rec);
                replay.valid_len = next as u64;
            }
            Err(e) if is_last || rest_is_blank(&bytes[next..]) => {
                replay.warnings.push(format!(
                    "{name}: ignoring the unreadable last line {line_no} ({e}): the process \
                     stopped while writing it"
                ));
                break;
            }
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "{name}:{line_no}: corrupt journal line ({e}); only the last line may be \
                     incomplete, so the journal was damaged or edited"
                )));
            }
        }
        pos = next;
    }
    Ok(replay)
}

/// Zero bytes and whitespace only (what a file system may leave past the last real write).
fn rest_is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0 || b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn line(seq: u64, service: &str) -> String {
        let rec = Record {
            seq,
            ts: jiff::Timestamp::from_second(1_800_000_000 + seq as i64).unwrap(),
            event: Event::ServiceStarted {
                service: service.into(),
            },
        };
        serde_json::to_string(&rec).unwrap() + "\n"
    }

    #[test]
    fn reads_records_in_order() {
        let text = line(1, "a") + &line(2, "b");
        let r = parse_journal(text.as_bytes(), "j").unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.warnings.is_empty());
        assert_eq!(r.valid_len, text.len() as u64);
        assert_eq!(r.last_seq(), 2);
    }

    #[test]
    fn torn_last_line_is_tolerated_with_a_warning() {
        let good = line(1, "a") + &line(2, "b");
        let torn = line(3, "c");
        let text = good.clone() + &torn[..torn.len() / 2];
        let r = parse_journal(text.as_bytes(), "j").unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("line 3"), "{:?}", r.warnings);
        assert_eq!(r.valid_len, good.len() as u64);

        // A complete but unparsable last line, and zero bytes after it, are a torn tail too.
        let text = good.clone() + "{\"seq\":3,\"ts\n" + "\0\0\0\n";
        let r = parse_journal(text.as_bytes(), "j").unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn corrupt_middle_line_is_an_error_naming_the_line() {
        let text = line(1, "a") + "garbage\n" + &line(3, "c");
        let err = parse_journal(text.as_bytes(), "j").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("j:2:"), "{msg}");
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let text = line(1, "a") + &line(3, "b") + &line(2, "c");
        let msg = parse_journal(text.as_bytes(), "j").unwrap_err().to_string();
        assert!(msg.contains("j:3:") && msg.contains("sequence"), "{msg}");
    }

    #[test]
    fn empty_journal_is_empty() {
        let r = parse_journal(b"", "j").unwrap();
        assert!(r.records.is_empty() && r.warnings.is_empty());
    }

    proptest::proptest! {
        /// Whatever byte a crash cuts the file at, the replay is exactly the complete lines
        /// before the cut, with at most one warning.
        #[test]
        fn any_prefix_replays_to_the_complete_lines(n in 1usize..30, cut_frac in 0.0f64..=1.0) {
            let lines: Vec<String> = (1..=n as u64).map(|i| line(i, &"s".repeat(i as usize))).collect();
            let text = lines.concat();
            let cut = ((text.len() as f64) * cut_frac) as usize;
            let r = parse_journal(&text.as_bytes()[..cut], "j").unwrap();
            let mut complete = 0;
            let mut len = 0;
            for l in &lines {
                if len + l.len() <= cut {
                    len += l.len();
                    complete += 1;
                }
            }
            proptest::prop_assert_eq!(r.records.len(), complete);
            proptest::prop_assert_eq!(r.valid_len as usize, len);
            proptest::prop_assert!(r.warnings.len() <= 1);
            proptest::prop_assert_eq!(r.warnings.is_empty(), len == cut);
        }
    }
}
