//! The recorded history of preflight evaluations, in the state directory.
//!
//! Layout: `STATE/preflight/<UTC timestamp>.json` (one `meeseeks.preflight/v1` report per
//! file, written atomically, mode 0600, in a 0700 directory). File names sort by time. After
//! each write the history is pruned to the newest [`KEEP`] evaluations (a little over four
//! days at `--every 30m`, ~17 hours at `--every 5m`).
//!
//! The interface — [`PreflightLog::record`], [`PreflightLog::latest`],
//! [`PreflightLog::history`] — is all the rest of the program uses, so that the storage can
//! move behind the state store (file or etcd) without its users noticing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Problem, Report, Status};
use crate::error::{Error, Result};

/// Sub-directory of the state directory.
pub const DIR: &str = "preflight";
/// Evaluations kept.
pub const KEEP: usize = 200;

/// The last recorded status of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub at: jiff::Timestamp,
    pub status: Status,
    /// The first problem, when not ready.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone)]
pub struct PreflightLog {
    state_dir: PathBuf,
}

impl PreflightLog {
    /// The history under `state_dir` (nothing is created until the first `record`).
    pub fn new(state_dir: &Path) -> PreflightLog {
        PreflightLog {
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.state_dir.join(DIR)
    }

    /// Records `report` durably and prunes the history; returns the file written.
    pub fn record(&self, report: &Report) -> Result<PathBuf> {
        let dir = self.dir();
        let ctx = |e| {
            Error::io(
                format!("cannot record the preflight in {}", dir.display()),
                e,
            )
        };
        crate::store::file::ensure_private_dir(&self.state_dir).map_err(ctx)?;
        crate::store::file::ensure_private_dir(&dir).map_err(ctx)?;
        let bytes = serde_json::to_vec(report).map_err(|e| Error::Other(e.to_string()))?;
        // Microseconds: two evaluations never start within the same one, but a clock that
        // stepped back could still collide: take the next free name.
        let mut micros = report.evaluated_at.as_microsecond();
        let path = loop {
            let p = dir.join(file_name(micros));
            if !p.exists() {
                break p;
            }
            micros += 1;
        };
        crate::store::file::write_private_atomic(&path, &bytes).map_err(ctx)?;
        let files = self.files()?;
        for old in files.iter().take(files.len().saturating_sub(KEEP)) {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!("cannot prune {}: {e}", old.display());
            }
        }
        Ok(path)
    }

    /// The recorded files, oldest first (none when nothing was recorded yet).
    fn files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn read(path: &Path) -> Option<Report> {
        let parsed = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Report>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "ignoring unreadable preflight record {}: {e}",
                    path.display()
                );
                None
            }
        }
    }

    /// The newest readable evaluation.
    pub fn latest(&self) -> Result<Option<Report>> {
        Ok(self.files()?.iter().rev().find_map(|p| Self::read(p)))
    }

    /// Every readable evaluation, oldest first.
    pub fn history(&self) -> Result<Vec<Report>> {
        Ok(self.files()?.iter().filter_map(|p| Self::read(p)).collect())
    }

    /// Per service, its status in the newest evaluation that covered it (evaluations may
    /// cover different scopes).
    pub fn last_seen(&self) -> Result<BTreeMap<String, Seen>> {
        let mut seen = BTreeMap::new();
        for r in self.history()? {
            for s in r.services {
                seen.insert(
                    s.name,
                    Seen {
                        at: r.evaluated_at,
                        status: s.status,
                        problem: s.problems.into_iter().next(),
                    },
                );
            }
        }
        Ok(seen)
    }
}

fn file_name(micros: i64) -> String {
    let t = jiff::Timestamp::from_microsecond(micros).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!(
        "{}.{:06}Z.json",
        t.strftime("%Y%m%dT%H%M%S"),
        micros.rem_euclid(1_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    fn report(at: &str, status: Status) -> Report {
        Report {
            schema: super::super::SCHEMA.into(),
            ready: status == Status::Ready,
            evaluated_at: at.parse().unwrap(),
            duration_s: 0.1,
            dir: "/dr".into(),
            mode: Mode::Failover,
            counts: Default::default(),
            services: vec![super::super::ServiceResult {
                name: "db".into(),
                status,
                problems: Vec::new(),
                checked: 1,
                certificates: Vec::new(),
                backup: None,
            }],
        }
    }

    #[test]
    fn records_in_order_private_and_pruned() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let log = PreflightLog::new(tmp.path());
        assert_eq!(log.latest().unwrap(), None);
        let base: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut last = None;
        for i in 0..(KEEP as i64 + 3) {
            let at = base + jiff::SignedDuration::from_secs(i * 60);
            let st = if i % 2 == 0 {
                Status::Ready
            } else {
                Status::NotReady
            };
            let p = log.record(&report(&at.to_string(), st)).unwrap();
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            last = Some(at);
        }
        let dir_mode = std::fs::metadata(tmp.path().join(DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let h = log.history().unwrap();
        assert_eq!(h.len(), KEEP);
        assert!(h.windows(2).all(|w| w[0].evaluated_at < w[1].evaluated_at));
        assert_eq!(log.latest().unwrap().unwrap().evaluated_at, last.unwrap());
        // The first three (oldest) were pruned.
        assert_eq!(
            h[0].evaluated_at,
            base + jiff::SignedDuration::from_secs(3 * 60)
        );
        let seen = log.last_seen().unwrap();
        assert_eq!(seen["db"].status, Status::Ready);
    }

    #[test]
    fn same_instant_gets_distinct_files() {
        let tmp = tempfile::tempdir().unwrap();
        let log = PreflightLog::new(tmp.path());
        let a = log
            .record(&report("2026-11-26T12:00:00Z", Status::Ready))
            .unwrap();
        let b = log
            .record(&report("2026-11-26T12:00:00Z", Status::NotReady))
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            log.latest().unwrap().unwrap().services[0].status,
            Status::NotReady
        );
        std::fs::write(
            tmp.path().join(DIR).join("99999999T999999.000000Z.json"),
            "{torn",
        )
        .unwrap();
        // An unreadable newest record is skipped, not fatal.
        assert_eq!(
            log.latest().unwrap().unwrap().services[0].status,
            Status::NotReady
        );
    }
}
