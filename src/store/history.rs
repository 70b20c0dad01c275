//! Run history read from the journals of a state directory: measured recovery durations (for
//! `plan --estimates history`), the last successful drill of each service (for the audit's
//! `drill-stale` finding) and the last measured data-loss window (`rpo-exceeded`). Dry runs
//! are simulations and never count.

use std::collections::HashMap;

use super::Store;
use crate::model::Mode;
use crate::runstate::{RpoMeasurement, RunState, RunStatus, ServiceStatus};

#[derive(Debug, Default, Clone)]
pub struct History {
    /// Measured start→recovered durations (seconds) per service, from finished runs.
    pub durations: HashMap<String, Vec<f64>>,
    /// Latest moment each service was recovered in a real (not dry-run) drill.
    pub last_drill: HashMap<String, jiff::Timestamp>,
    /// Latest `rpo.measured` of each service (drill or failover), with its run id.
    pub last_rpo: HashMap<String, (RpoMeasurement, String)>,
    /// Runs that contributed.
    pub runs: usize,
    /// Runs that could not be read, with the reason.
    pub warnings: Vec<String>,
}

impl History {
    /// Reads the history of the store at `spec`, or `None` when it holds no run yet.
    pub fn read_spec(spec: &super::StoreSpec) -> crate::Result<Option<History>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::Error::io("cannot start the async runtime", e))?;
        rt.block_on(async {
            match Store::open(spec, false).await {
                Ok(s) => Ok(Some(History::read(&s).await?)),
                Err(crate::Error::Usage(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Reads every run of `store`.
    pub async fn read(store: &Store) -> crate::Result<History> {
        let mut h = History::default();
        for id in store.list().await? {
            let dry = store.meta(&id).await.map(|m| m.dry_run).unwrap_or(false);
            if dry {
                continue;
            }
            match store.state(&id).await {
                Ok(st) => {
                    h.add(&st);
                }
                Err(e) => h.warnings.push(format!("run {id}: {e}")),
            }
        }
        Ok(h)
    }

    /// Folds one run into the history.
    pub fn add(&mut self, st: &RunState) {
        let finished = matches!(st.state, RunStatus::Finished | RunStatus::Failed);
        let mut used = false;
        for s in &st.services {
            if let Some(m) = s.rpo {
                let e = self
                    .last_rpo
                    .entry(s.name.clone())
                    .or_insert_with(|| (m, st.run_id.clone()));
                if m.until >= e.0.until {
                    *e = (m, st.run_id.clone());
                }
                used = true;
            }
            if s.status != ServiceStatus::Recovered {
                continue;
            }
            // A service started more than once (resumed) spans an interruption: its wall
            // time is not a recovery duration.
            if finished
                && s.starts == 1
                && let (Some(a), Some(b)) = (s.started_s, s.recovered_s)
                && b >= a
            {
                self.durations
                    .entry(s.name.clone())
                    .or_default()
                    .push(b - a);
                used = true;
            }
            if st.mode == Some(Mode::Drill)
                && let (Some(start), Some(r)) = (st.declared_at, s.recovered_s)
                && let Ok(at) = start.checked_add(jiff::SignedDuration::from_secs_f64(r))
            {
                let e = self.last_drill.entry(s.name.clone()).or_insert(at);
                if at > *e {
                    *e = at;
                }
                used = true;
            }
        }
        if used {
            self.runs += 1;
        }
    }

    /// p90 of the measured durations per service (nearest-rank).
    pub fn p90(&self) -> HashMap<String, f64> {
        self.durations
            .iter()
            .map(|(k, v)| (k.clone(), percentile(v, 0.9)))
            .collect()
    }
}

/// Nearest-rank percentile of a non-empty sample.
pub fn percentile(sample: &[f64], p: f64) -> f64 {
    let mut v = sample.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_p90() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&[5.0], 0.9), 5.0);
        let v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 0.9), 18.0);
    }
}
