//! Rendering playbook templates with real values at execution time, and secret masking.
//!
//! Variables, highest precedence first: `--var`, the playbook's `[vars]`, graph `[vars]`,
//! built-ins. `env.NAME` and `secret.NAME` read the environment; every secret value read is
//! registered in the `Masker` so it never reaches a log, journal, report or dry-run output.
//! Undefined variables were already rejected at load time; rendering is strict anyway.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
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

/// Which values `secret.NAME` yields: the real ones, or a stand-in used to find out which
/// parts of a rendered string derive from a secret (see `render_tainted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Real,
    /// Every character of every secret shifted by this much within its class.
    StandIn(u8),
}

#[derive(Debug)]
struct EnvObject {
    /// `None`: `env.NAME`. `Some`: `secret.NAME`, registered for masking when real.
    secret: Option<(Secrets, Masker)>,
}

impl Object for EnvObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let v = std::env::var(name).ok()?;
        match &self.secret {
            None => Some(Value::from(v)),
            Some((Secrets::Real, m)) => {
                m.add(&v);
                Some(Value::from(v))
            }
            Some((Secrets::StandIn(k), _)) => Some(Value::from(stand_in(&v, *k))),
        }
    }
}

/// The `env` and `secret` objects of a template context.
pub fn env_objects(secrets: Secrets, masker: &Masker) -> (Value, Value) {
    (
        Value::from_object(EnvObject { secret: None }),
        Value::from_object(EnvObject {
            secret: Some((secrets, masker.clone())),
        }),
    )
}

/// `v` with every ASCII letter and digit shifted by `k` within its class: same length, same
/// shape (a number stays a number, a hostname a hostname), different at every alphanumeric
/// position.
fn stand_in(v: &str, k: u8) -> String {
    let rot = |c: char, base: u8, n: u8| (base + (c as u8 - base + k) % n) as char;
    v.chars()
        .map(|c| match c {
            '0'..='9' => rot(c, b'0', 10),
            'a'..='z' => rot(c, b'a', 26),
            'A'..='Z' => rot(c, b'A', 26),
            _ => c,
        })
        .collect()
}

/// A rendered string shorter than this is masked whole; a derived part shorter than this is
/// masked with its neighbours, so that one secret-derived character never masks every such
/// character of every log line.
const MIN_DERIVED: usize = 4;

/// Renders `template` with `ctx(Secrets::Real)` and registers in `masker` every part of the
/// result that derives from a secret, whatever the template did to it (`| upper`, `[4:]`,
/// `| reverse`, `| replace`, `~` concatenation, `| urlencode`, conditions on it).
///
/// Taint by difference: the template is rendered again with each secret replaced by two
/// different stand-ins of the same shape; the characters of the output that change are the
/// ones derived from a secret. Registering them (and their encoded forms, see `mask`) masks
/// them in every log, journal line, report and dry-run output, and in the output of the
/// commands that receive them. A template whose stand-in rendering fails is masked whole.
/// Templates that do not mention `secret` render once.
pub fn render_tainted(
    env: &Environment<'_>,
    template: &str,
    ctx: &dyn Fn(Secrets) -> Value,
    masker: &Masker,
) -> Result<String, minijinja::Error> {
    let out = env.render_str(template, ctx(Secrets::Real))?;
    if !template.contains("secret") {
        return Ok(out);
    }
    let real: Vec<char> = out.chars().collect();
    let mut tainted = vec![false; real.len()];
    for k in [1, 7] {
        let alt: Vec<char> = match env.render_str(template, ctx(Secrets::StandIn(k))) {
            Ok(a) => a.chars().collect(),
            Err(_) => {
                tainted.iter_mut().for_each(|t| *t = true);
                break;
            }
        };
        if alt.len() == real.len() {
            for (i, t) in tainted.iter_mut().enumerate() {
                *t |= real[i] != alt[i];
            }
        } else {
            // A length-changing transformation: everything between the common prefix and
            // the common suffix.
            let pre = real.iter().zip(&alt).take_while(|(a, b)| a == b).count();
            let suf = real
                .iter()
                .rev()
                .zip(alt.iter().rev())
                .take_while(|(a, b)| a == b)
                .count()
                .min(real.len() - pre);
            for t in &mut tainted[pre..real.len() - suf] {
                *t = true;
            }
        }
    }
    for (start, end) in derived_runs(&tainted) {
        masker.add(&real[start..end].iter().collect::<String>());
    }
    Ok(out)
}

/// The runs of tainted characters: runs separated by at most two untainted characters (which
/// a stand-in matched by chance, or a separator inside a secret) are one, and each run is
/// widened to `MIN_DERIVED` characters.
fn derived_runs(tainted: &[bool]) -> Vec<(usize, usize)> {
    let n = tainted.len();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        if !tainted[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && tainted[i] {
            i += 1;
        }
        match runs.last_mut() {
            Some(last) if start - last.1 <= 2 => last.1 = i,
            _ => runs.push((start, i)),
        }
    }
    for r in &mut runs {
        // Alternately left and right: the neighbours on both sides are the likeliest to be
        // part of the same word.
        let mut left = true;
        while r.1 - r.0 < MIN_DERIVED.min(n) {
            if (left && r.0 > 0) || r.1 == n {
                r.0 -= 1;
            } else {
                r.1 += 1;
            }
            left = !left;
        }
    }
    runs
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
    fn context(&self, id: SvcId) -> Value {
        self.context_with(id, Secrets::Real)
    }

    fn context_with(&self, id: SvcId, secrets: Secrets) -> Value {
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
        let (env, secret) = env_objects(secrets, &self.masker);
        map.insert("env".into(), env);
        map.insert("secret".into(), secret);
        Value::from(map)
    }

    /// Renders one template string for service `id`, registering every part of the result
    /// derived from a secret for masking (see `render_tainted`). `ctx` holds the service's
    /// context (`self.context(id)`), built on first need and shared by the strings of one
    /// step or check: most strings (`true`, a path, a port) hold no template, and building
    /// the context for every step was 1.5 % of a 2 000-step run's own CPU.
    pub fn render(
        &self,
        id: SvcId,
        ctx: &OnceCell<Value>,
        template: &str,
    ) -> Result<String, RenderError> {
        if !template.contains("{{") && !template.contains("{%") {
            return Ok(template.to_string());
        }
        let ctx = ctx.get_or_init(|| self.context(id));
        let ctx_of = |s: Secrets| match s {
            Secrets::Real => ctx.clone(),
            other => self.context_with(id, other),
        };
        render_tainted(&self.env, template, &ctx_of, &self.masker).map_err(|e| RenderError {
            service: self.model.services[id].name.clone(),
            template: self.masker.mask(template).into_owned(),
            message: self.masker.mask(&e.to_string()).into_owned(),
        })
    }

    fn http(
        &self,
        id: SvcId,
        ctx: &OnceCell<Value>,
        h: &HttpSpec,
    ) -> Result<HttpSpec, RenderError> {
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

    fn argv(
        &self,
        id: SvcId,
        ctx: &OnceCell<Value>,
        argv: &[String],
    ) -> Result<Vec<String>, RenderError> {
        argv.iter().map(|a| self.render(id, ctx, a)).collect()
    }

    /// A copy of `step` with every template rendered. The result may contain secrets: show it
    /// only through `display_step` / the masker.
    pub fn render_step(&self, id: SvcId, step: &Step) -> Result<Step, RenderError> {
        let ctx = OnceCell::new();
        let kind = match &step.kind {
            StepKind::Run(s) => StepKind::Run(self.render(id, &ctx, s)?),
            StepKind::Cmd(a) => StepKind::Cmd(self.argv(id, &ctx, a)?),
            StepKind::Http(h) => StepKind::Http(self.http(id, &ctx, h)?),
            StepKind::Tcp(s) => StepKind::Tcp(self.render(id, &ctx, s)?),
            StepKind::Wait(d) => StepKind::Wait(*d),
            StepKind::Manual(s) => StepKind::Manual(self.render(id, &ctx, s)?),
        };
        let env = step
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.render(id, &ctx, v)?)))
            .collect::<Result<_, RenderError>>()?;
        Ok(Step {
            kind,
            env,
            ..step.clone()
        })
    }

    pub fn render_check(&self, id: SvcId, check: &Check) -> Result<Check, RenderError> {
        let ctx = OnceCell::new();
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

/// A masker that knows the values of every secret the playbooks of `services` read (for text
/// shown before a run's own masker exists, e.g. orphans `resume` stops).
pub fn secrets_masker(model: &Model, services: &[SvcId]) -> Masker {
    let m = Masker::new();
    for &id in services {
        for name in model.services[id]
            .playbook
            .iter()
            .flat_map(|p| p.secrets.iter())
        {
            if let Ok(v) = std::env::var(name) {
                m.add(&v);
            }
        }
    }
    m
}

/// An `env.NAME` / `secret.NAME` a run needs that is not set in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// `secret.NAME` or `env.NAME`.
    pub var: String,
    /// Where it is used: `playbooks/db.toml:12 (db, step "promote")`.
    pub used_at: Vec<String>,
}

/// Every template string of a step (action and `env`).
fn step_templates(step: &Step) -> Vec<&str> {
    let mut v: Vec<&str> = match &step.kind {
        StepKind::Run(s) | StepKind::Tcp(s) | StepKind::Manual(s) => vec![s],
        StepKind::Cmd(a) => a.iter().map(String::as_str).collect(),
        StepKind::Http(h) => http_templates(h),
        StepKind::Wait(_) => Vec::new(),
    };
    v.extend(step.env.iter().map(|(_, t)| t.as_str()));
    v
}

fn check_templates(check: &Check) -> Vec<&str> {
    match &check.kind {
        CheckKind::Http(h) => http_templates(h),
        CheckKind::Tcp(s) | CheckKind::Run(s) => vec![s],
        CheckKind::Cmd(a) => a.iter().map(String::as_str).collect(),
    }
}

fn http_templates(h: &HttpSpec) -> Vec<&str> {
    let mut v = vec![h.url.as_str()];
    v.extend(h.headers.values().map(String::as_str));
    v.extend(h.body.as_deref());
    v.extend(h.expect_body.as_deref());
    v
}

/// The `env.`/`secret.` variables `templates` read.
fn env_refs<'t>(templates: impl IntoIterator<Item = &'t str>) -> BTreeSet<String> {
    let env = Environment::new();
    let mut out = BTreeSet::new();
    for t in templates {
        if !t.contains("env.") && !t.contains("secret.") {
            continue;
        }
        if let Ok(tmpl) = env.template_from_str(t) {
            out.extend(
                tmpl.undeclared_variables(true)
                    .into_iter()
                    .filter(|v| v.starts_with("env.") || v.starts_with("secret.")),
            );
        }
    }
    out
}

fn is_set(var: &str) -> bool {
    let name = var.split_once('.').map_or(var, |(_, n)| n);
    std::env::var_os(name).is_some()
}

/// The `env.NAME` / `secret.NAME` variables that the playbooks of `services` (steps in `mode`,
/// checks, rollback and cleanup) and the graph's `[[notify]]` hooks read and that are not set
/// in the environment, each with every place it is used. `run` and `resume` refuse to start
/// while any is missing: a failover must not stop half-way on a variable the shell lacked.
pub fn missing_vars(model: &Model, services: &[SvcId], mode: Mode) -> Vec<MissingVar> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rel = |p: &std::path::Path| {
        p.strip_prefix(&model.dir)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    for &id in services {
        let s = &model.services[id];
        let Some(pb) = &s.playbook else { continue };
        // Cheap first: most playbooks have everything they need.
        let names = pb
            .secrets
            .iter()
            .map(|n| format!("secret.{n}"))
            .chain(pb.envs.iter().map(|n| format!("env.{n}")));
        if names.into_iter().all(|v| is_set(&v)) {
            continue;
        }
        let file = rel(&pb.file);
        let sections = [
            ("step", &pb.steps),
            ("rollback step", &pb.rollback),
            ("cleanup step", &pb.cleanup),
        ];
        for (what, steps) in sections {
            for st in steps.iter().filter(|st| st.runs_in(mode)) {
                for v in env_refs(step_templates(st)) {
                    if !is_set(&v) {
                        found.entry(v).or_default().push(format!(
                            "{file}:{} ({}, {what} \"{}\")",
                            st.line, s.name, st.name
                        ));
                    }
                }
            }
        }
        for c in &pb.checks {
            for v in env_refs(check_templates(c)) {
                if !is_set(&v) {
                    found.entry(v).or_default().push(format!(
                        "{file}:{} ({}, check \"{}\")",
                        c.line, s.name, c.name
                    ));
                }
            }
        }
    }
    for (i, n) in model.notify.iter().enumerate() {
        let templates =
            std::iter::once(n.url.as_str()).chain(n.headers.values().map(String::as_str));
        for v in env_refs(templates) {
            if !is_set(&v) {
                found.entry(v).or_default().push(format!(
                    "graph.toml:{} ([[notify]] #{})",
                    n.line,
                    i + 1
                ));
            }
        }
    }
    found
        .into_iter()
        .map(|(var, used_at)| MissingVar { var, used_at })
        .collect()
}

/// The error `run` and `resume` stop with when variables are missing (`None` when none is).
pub fn missing_vars_error(missing: &[MissingVar]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let mut msg = format!(
        "{} variable{} not set in the environment; nothing was executed:\n",
        missing.len(),
        if missing.len() == 1 { " is" } else { "s are" }
    );
    for m in missing {
        msg.push_str(&format!("  {}: used at {}\n", m.var, m.used_at.join(", ")));
    }
    msg.push_str(
        "help: export them in the shell that runs meeseeks (`secret.NAME` and `env.NAME` read the environment variable NAME); `meeseeks run --dry-run` shows what would run without them",
    );
    Some(msg)
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

/// `describe_step`, followed by the step's environment (`env`), secrets masked.
pub fn describe(step: &Step, masker: &Masker) -> String {
    let text = describe_step(&step.kind, masker);
    if step.env.is_empty() {
        return text;
    }
    let env: Vec<String> = step
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(&masker.mask(v))))
        .collect();
    format!("{text} (env {})", env.join(" "))
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
        let ctx = OnceCell::new();
        let out = r
            .render(0, &ctx, "{{ service }} {{ mode }} {{ site }} {{ region }} {{ replicas }} {{ secret.MEESEEKS_TEST_TOKEN }}")
            .unwrap();
        assert_eq!(out, "api drill pb-site north 6 s3cr3t-value");
        assert_eq!(r.masker().mask(&out), "api drill pb-site north 6 ***");
        assert!(r.render(0, &ctx, "{{ nope }}").is_err());
    }

    #[test]
    fn derived_values_are_registered() {
        let m = model();
        // SAFETY: test-only; no other test reads or writes this variable.
        unsafe { std::env::set_var("MEESEEKS_TEST_DERIVED", "Abc-123-xyz") };
        let b = Builtins::new("r1", Mode::Drill, "/state/r1".into(), "/dr".into());
        let r = Renderer::new(&m, BTreeMap::new(), b, Masker::new());
        let ctx = OnceCell::new();
        let t = "a={{ secret.MEESEEKS_TEST_DERIVED | upper }} b={{ secret.MEESEEKS_TEST_DERIVED[4:] }} \
                 c={{ secret.MEESEEKS_TEST_DERIVED | reverse }} d={{ secret.MEESEEKS_TEST_DERIVED | replace('-', '') }} \
                 e={{ 'x' ~ secret.MEESEEKS_TEST_DERIVED[:2] ~ 'y' }} f={{ replicas }}";
        let out = r.render(0, &ctx, t).unwrap();
        assert_eq!(
            out,
            "a=ABC-123-XYZ b=123-xyz c=zyx-321-cbA d=Abc123xyz e=xAby f=6"
        );
        assert_eq!(r.masker().mask(&out), "a=*** b=*** c=*** d=*** e=*** f=6");
        // The pieces are masked wherever they appear (a command echoing them).
        assert_eq!(r.masker().mask("got ABC-123-XYZ"), "got ***");
        // No secret: one rendering, nothing registered.
        let plain = Renderer::new(
            &m,
            BTreeMap::new(),
            Builtins::new("r1", Mode::Drill, "/s".into(), "/dr".into()),
            Masker::new(),
        );
        plain
            .render(0, &OnceCell::new(), "{{ site | upper }}")
            .unwrap();
        assert!(plain.masker().is_empty());
    }

    #[test]
    fn derived_runs_merge_and_widen() {
        let t = |s: &str| s.chars().map(|c| c == '1').collect::<Vec<_>>();
        assert_eq!(derived_runs(&t("0011011000")), vec![(2, 7)]);
        assert_eq!(derived_runs(&t("1000000001")), vec![(0, 4), (6, 10)]);
        assert_eq!(derived_runs(&t("0001100000")), vec![(2, 6)]);
        assert_eq!(derived_runs(&t("01")), vec![(0, 2)]);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b-c"), "a/b-c");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
