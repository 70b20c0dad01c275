//! Rendering of steps and checks with the real values, at execution time.
//!
//! Stand-in until the lead's `crate::template` lands; kept private to `exec` so that swapping it
//! is one file. Variables, highest precedence first: `--var`, playbook `[vars]`, graph `[vars]`,
//! built-ins (`service`, `run_id`, `mode`, `run_dir`, `dr_dir`, `meeseeks`). `env.NAME` and
//! `secret.NAME` read the environment; secret values are registered in the `Masker` the moment
//! they are read, before anything could print them.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Environment, UndefinedBehavior};

use crate::mask::Masker;
use crate::model::{Check, CheckKind, HttpSpec, Model, Step, StepKind, SvcId, VarValue};

/// Built-in variables of a run.
#[derive(Debug, Clone)]
pub struct Builtins {
    pub run_id: String,
    pub mode: String,
    pub run_dir: String,
    pub dr_dir: String,
    pub meeseeks: String,
}

#[derive(Debug)]
struct EnvVars {
    masker: Option<Masker>,
}

impl Object for EnvVars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let v = std::env::var(key.as_str()?).ok()?;
        if let Some(m) = &self.masker {
            m.add(&v);
        }
        Some(Value::from(v))
    }
}

/// serde_json → minijinja without minijinja's `serde` feature.
fn json_value(v: &VarValue) -> Value {
    match v {
        VarValue::Null => Value::from(()),
        VarValue::Bool(b) => Value::from(*b),
        VarValue::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.as_f64().unwrap_or(0.0))),
        VarValue::String(s) => Value::from(s.clone()),
        VarValue::Array(a) => Value::from(a.iter().map(json_value).collect::<Vec<_>>()),
        VarValue::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

pub struct Renderer {
    env: Environment<'static>,
    cli_vars: BTreeMap<String, VarValue>,
    builtins: Builtins,
    masker: Masker,
}

impl Renderer {
    pub fn new(cli_vars: BTreeMap<String, VarValue>, builtins: Builtins, masker: Masker) -> Self {
        let mut env = Environment::new();
        // An undefined variable must fail loudly, never render as "" mid-failover.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Commands and URLs are not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Renderer {
            env,
            cli_vars,
            builtins,
            masker,
        }
    }

    fn context(&self, model: &Model, id: SvcId) -> Value {
        let mut vars: BTreeMap<String, Value> = BTreeMap::new();
        let b = &self.builtins;
        vars.insert("service".into(), Value::from(model.name(id)));
        vars.insert("run_id".into(), Value::from(b.run_id.clone()));
        vars.insert("mode".into(), Value::from(b.mode.clone()));
        vars.insert("run_dir".into(), Value::from(b.run_dir.clone()));
        vars.insert("dr_dir".into(), Value::from(b.dr_dir.clone()));
        vars.insert("meeseeks".into(), Value::from(b.meeseeks.clone()));
        let layers = [
            Some(&model.vars),
            model.services[id].playbook.as_ref().map(|p| &p.vars),
            Some(&self.cli_vars),
        ];
        for layer in layers.into_iter().flatten() {
            for (k, v) in layer {
                vars.insert(k.clone(), json_value(v));
            }
        }
        vars.insert("env".into(), Value::from_object(EnvVars { masker: None }));
        vars.insert(
            "secret".into(),
            Value::from_object(EnvVars {
                masker: Some(self.masker.clone()),
            }),
        );
        Value::from(vars)
    }

    fn render(&self, ctx: &Value, what: &str, s: &str) -> Result<String, String> {
        if !s.contains("{{") && !s.contains("{%") {
            return Ok(s.to_string());
        }
        self.env
            .render_str(s, ctx.clone())
            .map_err(|e| format!("cannot render {what}: {e}"))
    }

    fn http(&self, ctx: &Value, h: &HttpSpec) -> Result<HttpSpec, String> {
        Ok(HttpSpec {
            method: self.render(ctx, "method", &h.method)?,
            url: self.render(ctx, "url", &h.url)?,
            headers: h
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.render(ctx, "header", v)?)))
                .collect::<Result<_, String>>()?,
            body: h
                .body
                .as_ref()
                .map(|b| self.render(ctx, "body", b))
                .transpose()?,
            expect_status: h.expect_status.clone(),
            expect_body: h
                .expect_body
                .as_ref()
                .map(|b| self.render(ctx, "expect_body", b))
                .transpose()?,
        })
    }

    /// The step with every template rendered.
    pub fn step(&self, model: &Model, id: SvcId, step: &Step) -> Result<Step, String> {
        let ctx = self.context(model, id);
        let kind = match &step.kind {
            StepKind::Run(s) => StepKind::Run(self.render(&ctx, "run", s)?),
            StepKind::Cmd(argv) => StepKind::Cmd(
                argv.iter()
                    .map(|a| self.render(&ctx, "cmd", a))
                    .collect::<Result<_, _>>()?,
            ),
            StepKind::Http(h) => StepKind::Http(self.http(&ctx, h)?),
            StepKind::Tcp(a) => StepKind::Tcp(self.render(&ctx, "tcp", a)?),
            StepKind::Wait(d) => StepKind::Wait(*d),
            StepKind::Manual(p) => StepKind::Manual(self.render(&ctx, "manual", p)?),
        };
        Ok(Step {
            kind,
            ..step.clone()
        })
    }

    pub fn check(&self, model: &Model, id: SvcId, check: &Check) -> Result<Check, String> {
        let ctx = self.context(model, id);
        let kind = match &check.kind {
            CheckKind::Http(h) => CheckKind::Http(self.http(&ctx, h)?),
            CheckKind::Tcp(a) => CheckKind::Tcp(self.render(&ctx, "tcp", a)?),
            CheckKind::Run(s) => CheckKind::Run(self.render(&ctx, "run", s)?),
            CheckKind::Cmd(argv) => CheckKind::Cmd(
                argv.iter()
                    .map(|a| self.render(&ctx, "cmd", a))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Check {
            kind,
            ..check.clone()
        })
    }
}

/// One-line description of a rendered action, for events and dry-run output (mask it before
/// printing: the bus does).
pub fn describe_step(kind: &StepKind) -> String {
    match kind {
        StepKind::Run(s) => format!("run: {s}"),
        StepKind::Cmd(argv) => format!("cmd: {}", shell_words(argv)),
        StepKind::Http(h) => describe_http(h),
        StepKind::Tcp(a) => format!("tcp: connect {a}"),
        StepKind::Wait(d) => format!("wait: {}", crate::model::fmt_duration(*d)),
        StepKind::Manual(p) => format!("manual: {p}"),
    }
}

pub fn describe_check(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Http(h) => describe_http(h),
        CheckKind::Tcp(a) => format!("tcp: connect {a}"),
        CheckKind::Run(s) => format!("run: {s}"),
        CheckKind::Cmd(argv) => format!("cmd: {}", shell_words(argv)),
    }
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
        let st: Vec<String> = h.expect_status.iter().map(u16::to_string).collect();
        s.push_str(&format!(" expect={}", st.join("|")));
    }
    if let Some(b) = &h.expect_body {
        s.push_str(&format!(" expect_body={b:?}"));
    }
    s
}

/// argv joined so that a human can copy it into a shell.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
