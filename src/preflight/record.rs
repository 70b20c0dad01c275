//! The recorded history of preflight evaluations, in the run store (file or etcd).
//!
//! Layout: the store's `preflight` documents ([`crate::store::docs`]), one
//! `meeseeks.preflight/v1` report each, keyed `<UTC timestamp>.json` so that keys sort by time:
//! `STATE/preflight/*.json` (atomic, 0600 in a 0700 directory) or `PREFIX/preflight/*.json` on
//! etcd. After each write the history is pruned to the newest [`KEEP`] evaluations (a little
//! over four days at `--every 30m`, ~17 hours at `--every 5m`).
//!
//! The interface — [`PreflightLog::record`], [`PreflightLog::latest`],
//! [`PreflightLog::history`], [`PreflightLog::last_seen`] — is all the rest of the program
//! uses.

use std::collections::BTreeMap;

use super::{Problem, Report, Status};
use crate::error::{Error, Result};
use crate::store::StoreSpec;
use crate::store::docs::Docs;

/// The store's document kind (sub-directory of the state directory).
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
    store: StoreSpec,
}

impl PreflightLog {
    /// The history in `store` (nothing is created until the first `record`).
    pub fn new(store: &StoreSpec) -> PreflightLog {
        PreflightLog {
            store: store.clone(),
        }
    }

    async fn docs(&self) -> Result<Docs> {
        Docs::open(&self.store, DIR).await
    }

    /// Records `report` durably and prunes the history; returns where it was written.
    pub async fn record(&self, report: &Report) -> Result<String> {
        let docs = self.docs().await?;
        let bytes = serde_json::to_vec(report).map_err(|e| Error::Other(e.to_string()))?;
        // Microseconds: two evaluations never start within the same one, but a clock that
        // stepped back (or two hosts watching one store) could still collide: take the next
        // free key.
        let mut micros = report.evaluated_at.as_microsecond();
        let key = loop {
            let k = key_name(micros);
            if docs.create(&k, &bytes).await? {
                break k;
            }
            micros += 1;
        };
        let keys = docs.keys().await?;
        let old = &keys[..keys.len().saturating_sub(KEEP)];
        if let Err(e) = docs.delete(old).await {
            tracing::warn!("cannot prune the preflight history: {e}");
        }
        Ok(format!("{}/{key}", docs.describe()))
    }

    fn parse(key: &str, bytes: &[u8]) -> Option<Report> {
        match serde_json::from_slice::<Report>(bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("ignoring unreadable preflight record {key}: {e}");
                None
            }
        }
    }

    /// The newest readable evaluation.
    pub async fn latest(&self) -> Result<Option<Report>> {
        let docs = self.docs().await?;
        // Usually the newest is readable: read one, and everything only when it is not.
        for limit in [Some(1), None] {
            let newest = docs.newest(limit).await?;
            if let Some(r) = newest.iter().find_map(|(k, b)| Self::parse(k, b)) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Every readable evaluation, oldest first.
    pub async fn history(&self) -> Result<Vec<Report>> {
        let docs = self.docs().await?;
        let mut all = docs.newest(None).await?;
        all.reverse();
        Ok(all.iter().filter_map(|(k, b)| Self::parse(k, b)).collect())
    }

    /// Per service, its status in the newest evaluation that covered it (evaluations may
    /// cover different scopes).
    pub async fn last_seen(&self) -> Result<BTreeMap<String, Seen>> {
        let mut seen = BTreeMap::new();
        for r in self.history().await? {
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

    /// Runs one of the methods above from code that is not async (`plan`, `audit`).
    pub fn blocking<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the async runtime", e))?
            .block_on(f)
    }
}

fn key_name(micros: i64) -> String {
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

    fn log(dir: &std::path::Path) -> PreflightLog {
        PreflightLog::new(&StoreSpec::File(dir.to_path_buf()))
    }

    #[tokio::test]
    async fn records_in_order_private_and_pruned() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let log = log(tmp.path());
        assert_eq!(log.latest().await.unwrap(), None);
        let base: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut last = None;
        for i in 0..(KEEP as i64 + 3) {
            let at = base + jiff::SignedDuration::from_secs(i * 60);
            let st = if i % 2 == 0 {
                Status::Ready
            } else {
                Status::NotReady
            };
            let p = log.record(&report(&at.to_string(), st)).await.unwrap();
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            last = Some(at);
        }
        let dir_mode = std::fs::metadata(tmp.path().join(DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let h = log.history().await.unwrap();
        assert_eq!(h.len(), KEEP);
        assert!(h.windows(2).all(|w| w[0].evaluated_at < w[1].evaluated_at));
        assert_eq!(
            log.latest().await.unwrap().unwrap().evaluated_at,
            last.unwrap()
        );
        // The first three (oldest) were pruned.
        assert_eq!(
            h[0].evaluated_at,
            base + jiff::SignedDuration::from_secs(3 * 60)
        );
        let seen = log.last_seen().await.unwrap();
        assert_eq!(seen["db"].status, Status::Ready);
    }

    #[tokio::test]
    async fn same_instant_gets_distinct_files() {
        let tmp = tempfile::tempdir().unwrap();
        let log = log(tmp.path());
        let a = log
            .record(&report("2026-11-26T12:00:00Z", Status::Ready))
            .await
            .unwrap();
        let b = log
            .record(&report("2026-11-26T12:00:00Z", Status::NotReady))
            .await
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            log.latest().await.unwrap().unwrap().services[0].status,
            Status::NotReady
        );
        std::fs::write(
            tmp.path().join(DIR).join("99999999T999999.000000Z.json"),
            "{torn",
        )
        .unwrap();
        // An unreadable newest record is skipped, not fatal.
        assert_eq!(
            log.latest().await.unwrap().unwrap().services[0].status,
            Status::NotReady
        );
    }
}
