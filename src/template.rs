//! Rendering playbook templates with real values at execution time, and secret masking.
//!
//! Variables, highest precedence first: `--var`, the playbook's `[vars]`, graph `[vars]`,
//! built-ins. `env.NAME` and `secret.NAME` read the environment; every secret value read is
//! registered in the `Masker` so it never reaches a log, journal, report or dry-run output.
//! Undefined variables were already rejected at load time; rendering is strict anyway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Environment, UndefinedBehavior};

use crate::mask::Masker;
use crate::model::{Check, CheckKind, HttpSpec, Mode, Model, Step, StepKind, SvcId, VarValue};

/// Built-in variables of a run.
#[derive(Debug, Clone)]
pub struct Builtins {
    pub run_id: String,
    pub mode: Mode,
    pub run_dir: PathBuf,
    pub dr_dir: PathBuf,
    /// Path of the running meeseeks executable.
    pub meeseeks: PathBuf,
}

impl Builtins {
    /// Built-ins for a run, with `meeseeks` = the current executable.
    pub fn new(run_id: &str, mode: Mode, run_dir: PathBuf, dr_dir: PathBuf) -> Builtins {
        let meeseeks = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("meeseeks"));
        Builtins {
            run_id: run_id.to_string(),
            mode,
            run_dir,
            dr_dir,
            meeseeks,
        }
    }
}

#[derive(Debug)]
struct EnvObject {
    /// Secrets register their value for masking.
    masker: Option<Masker>,
}

impl Object for EnvObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let v = std::env::var(name).ok()?;
        if let Some(m) = &self.masker {
            m.add(&v);
        }
        Some(Value::from(v))
    }
}

pub struct Renderer<'m> {
    model: &'m Model,
    env: Environment<'static>,
    cli_vars: BTreeMap<String, VarValue>,
    builtins: Builtins,
    masker: Masker,
}

#[derive(Debug, thiserror::Error)]
#[error("{service}: cannot render `{template}`: {message}")]
pub struct RenderError {
    pub service: String,
    pub template: String,
    pub message: String,
}

impl<'m> Renderer<'m> {
    pub fn new(
        model: &'m Model,
        cli_vars: BTreeMap<String, VarValue>,
        builtins: Builtins,
        masker: Masker,
    ) -> Renderer<'m> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Commands, not HTML: never escape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Renderer {
            model,
            env,
            cli_vars,
            builtins,
            masker,
        }
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Reads every secret the in-scope playbooks reference and registers it for masking up
    /// front, so that a secret echoed by any step is masked even before it was rendered.
    /// Returns the `env.`/`secret.` names that are not set, as "service: secret.NAME".
    pub fn prepare_secrets(&self, services: &[SvcId]) -> Vec<String> {
        let mut missing = Vec::new();
        for &id in services {
            let s = &self.model.services[id];
            let Some(pb) = &s.playbook else { continue };
            for name in &pb.secrets {
                match std::env::var(name) {
                    Ok(v) => self.masker.add(&v),
                    Err(_) => missing.push(format!("{}: secret.{name}", s.name)),
                }
            }
            for name in &pb.envs {
                if std::env::var(name).is_err() {
                    missing.push(format!("{}: env.{name}", s.name));
                }
            }
        }
        missing
    }

    /// The template context of one service, precedence applied.
    pub fn context(&self, id: SvcId) -> Value {
        let s = &self.model.services[id];
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        let b = &self.builtins;
        map.insert("service".into(), Value::from(s.name.clone()));
        map.insert("run_id".into(), Value::from(b.run_id.clone()));
        map.insert("mode".into(), Value::from(b.mode.as_str()));
        map.insert(
            "run_dir".into(),
            Value::from(b.run_dir.display().to_string()),
        );
        map.insert("dr_dir".into(), Value::from(b.dr_dir.display().to_string()));
        map.insert(
            "meeseeks".into(),
            Value::from(b.meeseeks.display().to_string()),
        );
        for (k, v) in &self.model.vars {
            map.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        if let Some(pb) = &s.playbook {
            for (k, v) in &pb.vars {
                map.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
            }
        }
        for (k, v) in &self.cli_vars {
            map.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        map.insert("env".into(), Value::from_object(EnvObject { masker: None }));
        map.insert(
            "secret".into(),
            Value::from_object(EnvObject {
                masker: Some(self.masker.clone()),
            }),
        );
        Value::from(map)
    }

    /// Renders one template string for service `id`.
    pub fn render(&self, id: SvcId, ctx: &Value, template: &str) -> Result<String, RenderError> {
        if !template.contains("{{") && !template.contains("{%") {
            return Ok(template.to_string());
        }
        self.env.render_str(template, ctx).map_err(|e| RenderError {
            service: self.model.services[id].name.clone(),
            template: self.masker.mask(template).into_owned(),
            message: self.masker.mask(&e.to_string()).into_owned(),
        })
    }

    fn http(&self, id: SvcId, ctx: &Value, h: &HttpSpec) -> Result<HttpSpec, RenderError> {
        let mut headers = BTreeMap::new();
        for (k, v) in &h.headers {
            headers.insert(k.clone(), self.render(id, ctx, v)?);
        }
        Ok(HttpSpec {
            method: h.method.clone(),
            url: self.render(id, ctx, &h.url)?,
            headers,
            body: h
                .body
                .as_ref()
                .map(|b| self.render(id, ctx, b))
                .transpose()?,
            expect_status: h.expect_status.clone(),
            expect_body: h
                .expect_body
                .as_ref()
                .map(|b| self.render(id, ctx, b))
                .transpose()?,
        })
    }

    fn argv(&self, id: SvcId, ctx: &Value, argv: &[String]) -> Result<Vec<String>, RenderError> {
        argv.iter().map(|a| self.render(id, ctx, a)).collect()
    }

    /// A copy of `step` with every template rendered. The result may contain secrets: show it
    /// only through `display_step` / the masker.
    pub fn render_step(&self, id: SvcId, step: &Step) -> Result<Step, RenderError> {
        let ctx = self.context(id);
        let kind = match &step.kind {
            StepKind::Run(s) => StepKind::Run(self.render(id, &ctx, s)?),
            StepKind::Cmd(a) => StepKind::Cmd(self.argv(id, &ctx, a)?),
            StepKind::Http(h) => StepKind::Http(self.http(id, &ctx, h)?),
            StepKind::Tcp(s) => StepKind::Tcp(self.render(id, &ctx, s)?),
            StepKind::Wait(d) => StepKind::Wait(*d),
            StepKind::Manual(s) => StepKind::Manual(self.render(id, &ctx, s)?),
        };
        Ok(Step {
            kind,
            ..step.clone()
        })
    }

    pub fn render_check(&self, id: SvcId, check: &Check) -> Result<Check, RenderError> {
        let ctx = self.context(id);
        let kind = match &check.kind {
            CheckKind::Http(h) => CheckKind::Http(self.http(id, &ctx, h)?),
            CheckKind::Tcp(s) => CheckKind::Tcp(self.render(id, &ctx, s)?),
            CheckKind::Run(s) => CheckKind::Run(self.render(id, &ctx, s)?),
            CheckKind::Cmd(a) => CheckKind::Cmd(self.argv(id, &ctx, a)?),
        };
        Ok(Check {
            kind,
            ..check.clone()
        })
    }
}

/// Quotes an argv element for display the way a shell user would read it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One-line human description of a rendered step action, secrets masked.
pub fn describe_step(kind: &StepKind, masker: &Masker) -> String {
    let text = match kind {
        StepKind::Run(s) => format!("run: {s}"),
        StepKind::Cmd(a) => format!(
            "cmd: {}",
            a.iter()
                .map(|x| shell_quote(x))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        StepKind::Http(h) => describe_http(h),
        StepKind::Tcp(s) => format!("tcp: connect {s}"),
        StepKind::Wait(d) => format!("wait: {}", crate::model::fmt_duration(*d)),
        StepKind::Manual(s) => format!("manual: {s}"),
    };
    masker.mask(&text).into_owned()
}

/// One-line human description of a rendered check, secrets masked.
pub fn describe_check(kind: &CheckKind, masker: &Masker) -> String {
    let text = match kind {
        CheckKind::Http(h) => describe_http(h),
        CheckKind::Tcp(s) => format!("tcp: connect {s}"),
        CheckKind::Run(s) => format!("run: {s}"),
        CheckKind::Cmd(a) => format!(
            "cmd: {}",
            a.iter()
                .map(|x| shell_quote(x))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    masker.mask(&text).into_owned()
}

fn describe_http(h: &HttpSpec) -> String {
    let mut s = format!("http: {} {}", h.method, h.url);
    for (k, v) in &h.headers {
        s.push_str(&format!(" -H '{k}: {v}'"));
    }
    if let Some(b) = &h.body {
        s.push_str(&format!(" body={b}"));
    }
    if !h.expect_status.is_empty() {
        let st: Vec<String> = h.expect_status.iter().map(|x| x.to_string()).collect();
        s.push_str(&format!(" expect={}", st.join(",")));
    }
    if let Some(b) = &h.expect_body {
        s.push_str(&format!(" expect_body={b:?}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Defaults, Playbook, Service};
    use std::time::Duration;

    fn model() -> Model {
        let mut s = Service::new("api", 0, Duration::from_secs(60));
        let mut pb = Playbook::default();
        pb.vars.insert("replicas".into(), serde_json::json!(6));
        pb.vars.insert("site".into(), serde_json::json!("pb-site"));
        pb.secrets.insert("MEESEEKS_TEST_TOKEN".into());
        s.playbook = Some(Box::new(pb));
        let mut m = Model::from_parts(
            PathBuf::from("/dr"),
            Defaults::default(),
            vec![(s, vec![], vec![])],
        );
        m.vars
            .insert("site".into(), serde_json::json!("graph-site"));
        m.vars.insert("region".into(), serde_json::json!("south"));
        m
    }

    #[test]
    fn precedence_and_masking() {
        let m = model();
        // SAFETY: test-only; no other thread in this test reads this variable concurrently.
        unsafe { std::env::set_var("MEESEEKS_TEST_TOKEN", "s3cr3t-value") };
        let mut cli = BTreeMap::new();
        cli.insert("region".to_string(), serde_json::json!("north"));
        let b = Builtins::new("r1", Mode::Drill, "/state/r1".into(), "/dr".into());
        let r = Renderer::new(&m, cli, b, Masker::new());
        assert!(r.prepare_secrets(&[0]).is_empty());
        let ctx = r.context(0);
        let out = r
            .render(0, &ctx, "{{ service }} {{ mode }} {{ site }} {{ region }} {{ replicas }} {{ secret.MEESEEKS_TEST_TOKEN }}")
            .unwrap();
        assert_eq!(out, "api drill pb-site north 6 s3cr3t-value");
        assert_eq!(r.masker().mask(&out), "api drill pb-site north 6 ***");
        assert!(r.render(0, &ctx, "{{ nope }}").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b-c"), "a/b-c");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
