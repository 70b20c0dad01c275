//! What a run was started with, typed once: the CLI's raw arguments become a [`RunConfig`]
//! before any work starts (ripgrep's low → high args); `meta.json` stores it, `run.started`
//! journals it, and `resume` reads it back and applies only what the operator gives again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Mode;

/// `--on-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Keep recovering everything that is not blocked.
    #[default]
    Continue,
    /// Start nothing new after the first failure.
    Stop,
}

/// The services a run covers, as selected on the command line (always closed over essential
/// dependencies when applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<u32>,
}

impl ScopeConfig {
    pub fn spec(&self) -> crate::plan::ScopeSpec {
        crate::plan::ScopeSpec {
            services: self.services.clone(),
            tags: self.tags.iter().cloned().collect(),
            max_tier: self.max_tier,
        }
    }
}

/// A run's configuration. Serialized into `meta.json` and `run.started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub mode: Mode,
    /// Start each service as soon as its essential dependencies are recovered (else waves).
    pub eager: bool,
    /// Max services recovering at once; 0 = unlimited.
    pub parallel: usize,
    pub on_failure: OnFailure,
    /// Run a failed service's `rollback` steps.
    pub rollback: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// After a drill that succeeded, run the `cleanup` steps of every started service.
    pub cleanup: bool,
    /// Exit 1 when any RTO was breached, even if every service recovered.
    #[serde(default)]
    pub strict: bool,
    /// SIGTERM → SIGKILL grace when a step times out.
    #[serde(with = "humantime_serde")]
    pub kill_grace: Duration,
    #[serde(default)]
    pub scope: ScopeConfig,
    /// `--var k=v` values. Plain variables (secrets come from the environment at render
    /// time), kept so that `resume` runs the same commands; meta.json and journals are 0600.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

impl RunConfig {
    /// Defaults of a new run in `mode`.
    pub fn new(mode: Mode) -> RunConfig {
        RunConfig {
            mode,
            eager: false,
            parallel: 8,
            on_failure: OnFailure::Continue,
            rollback: false,
            dry_run: false,
            cleanup: true,
            strict: false,
            kill_grace: Duration::from_secs(5),
            scope: ScopeConfig::default(),
            vars: BTreeMap::new(),
        }
    }

    /// `--var` values as template variables.
    pub fn var_values(&self) -> BTreeMap<String, crate::model::VarValue> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), crate::model::VarValue::String(v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut c = RunConfig::new(Mode::Drill);
        c.eager = true;
        c.kill_grace = Duration::from_millis(1500);
        c.scope.tags.push(("team".into(), "payments".into()));
        c.vars.insert("dr_site".into(), "dc2".into());
        let j = serde_json::to_string(&c).unwrap();
        assert!(j.contains("\"kill_grace\":\"1s 500ms\""), "{j}");
        let back: RunConfig = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
    }
}
