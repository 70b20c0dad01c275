//! `playbooks/<service>.toml` → `Playbook`, with template variables checked at load time.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::diag::{Diag, Diagnostics, SourceFile};
use super::value::{Reader, SV, to_var};
use super::{BUILTIN_VARS, LoadOptions};
use crate::model::{
    Check, CheckKind, HttpSpec, Mode, Model, Playbook, PreflightProbe, Step, StepKind,
};

const PLAYBOOK_KEYS: &[&str] = &[
    "description",
    "vars",
    "steps",
    "checks",
    "rollback",
    "cleanup",
    "preflight",
];
pub(super) const STEP_KINDS: &[&str] = &["run", "cmd", "http", "tcp", "wait", "manual"];
const STEP_KEYS: &[&str] = &[
    "name",
    "run",
    "cmd",
    "http",
    "tcp",
    "wait",
    "manual",
    "timeout",
    "retries",
    "retry_delay",
    "estimate",
    "only",
    "optional",
    "idempotent",
    "preflight",
];
const CHECK_KINDS: &[&str] = &["http", "tcp", "run", "cmd"];
const CHECK_KEYS: &[&str] = &[
    "name",
    "http",
    "tcp",
    "run",
    "cmd",
    "interval",
    "timeout",
    "healthy_after",
    "preflight",
];
const HTTP_KEYS: &[&str] = &[
    "method",
    "url",
    "headers",
    "body",
    "expect_status",
    "expect_body",
];
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub(super) fn load_playbooks(
    model: &mut Model,
    name_spans: &[Range<usize>],
    gfile: &Arc<SourceFile>,
    opts: &LoadOptions,
    diags: &mut Diagnostics,
) {
    let pdir = model.dir.join("playbooks");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    match std::fs::read_dir(&pdir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                    files.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => diags.push(Diag::error(
            "io",
            format!("cannot read {}: {e}", pdir.display()),
        )),
    }
    files.sort();
    let graph_vars: BTreeSet<&str> = model.vars.keys().map(String::as_str).collect();
    let cli_vars: BTreeSet<&str> = opts.cli_vars.keys().map(String::as_str).collect();
    let mut loaded: Vec<(usize, Playbook)> = Vec::new();
    let cache = RefCell::new(super::uses::Cache::new(model.dir.clone()));
    for path in &files {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diag::error(
                    "io",
                    format!("cannot read {}: {e}", path.display()),
                ));
                continue;
            }
        };
        let file = SourceFile::new(path.clone(), text);
        let id = model.id(stem);
        if id.is_none() {
            let hint = model.suggest(stem).map(str::to_string);
            diags.push(
                Diag::error(
                    "unknown-playbook",
                    format!("playbook for `{stem}`, which is not a service in graph.toml"),
                )
                .at(&file, 0..0)
                .help(match hint {
                    Some(h) => format!(
                        "did you mean playbooks/{h}.toml? The file name must be the service name"
                    ),
                    None => format!("add [services.{stem}] to graph.toml, or remove this file"),
                }),
            );
        }
        let defined = Defined {
            graph: &graph_vars,
            cli: &cli_vars,
        };
        let pb = read_playbook(&file, path, &defined, &cache, diags);
        if let (Some(id), Some(pb)) = (id, pb) {
            loaded.push((id, pb));
        }
    }
    for (id, pb) in loaded {
        model.services[id].playbook = Some(Box::new(pb));
    }
    // Thousands of services without a playbook (a freshly imported graph) must not cost a
    // diagnostic each: the first few are shown where they are, the rest counted in one line.
    const SHOWN: usize = 5;
    let missing: Vec<usize> = (0..model.services.len())
        .filter(|&id| model.services[id].playbook.is_none())
        .collect();
    let diag = |msg: String| {
        if opts.require_playbooks {
            Diag::error("no-playbook", msg)
        } else {
            Diag::warning("no-playbook", msg)
        }
    };
    for &id in missing.iter().take(SHOWN) {
        let s = &model.services[id];
        let msg = format!(
            "service `{}` has no playbook (expected {})",
            s.name,
            Path::new("playbooks")
                .join(format!("{}.toml", s.name))
                .display()
        );
        diags.push(diag(msg).at(gfile, name_spans[id].clone()).help(format!(
            "create playbooks/{}.toml with its recovery steps and checks (`meeseeks init` scaffolds one)",
            s.name
        )));
    }
    if missing.len() > SHOWN {
        diags.push(diag(format!(
            "... and {} more services have no playbook",
            missing.len() - SHOWN
        )));
    }
}

/// Variable names a playbook's templates may use.
pub(super) struct Defined<'a> {
    graph: &'a BTreeSet<&'a str>,
    cli: &'a BTreeSet<&'a str>,
}

pub(super) struct Ctx<'a, 'b> {
    pub r: Reader<'a>,
    pub defined: &'b Defined<'b>,
    pub playbook_vars: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub envs: BTreeSet<String>,
    /// Inside a template file: its parameter names (`{{ with.NAME }}`).
    pub with_params: Option<Vec<String>>,
    /// Templates read so far in this load (`uses` steps).
    pub cache: &'b RefCell<super::uses::Cache>,
    /// Checks contributed by `uses` steps, appended to the playbook's checks.
    pub extra_checks: Vec<Check>,
    /// Local template files expanded into this playbook.
    pub templates: BTreeSet<std::path::PathBuf>,
}

impl Ctx<'_, '_> {
    /// Checks a template string: syntax, and every variable it reads is defined.
    pub fn template(&mut self, s: &str, span: Range<usize>) {
        if !s.contains("{{") && !s.contains("{%") {
            return;
        }
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let tmpl = match env.template_from_str(s) {
            Ok(t) => t,
            Err(e) => {
                self.r
                    .err(
                        "template",
                        span,
                        format!(
                            "template syntax error: {}",
                            e.detail().unwrap_or("invalid template")
                        ),
                    )
                    .help("templates use Jinja syntax: {{ name }}");
                return;
            }
        };
        let mut vars: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
        vars.sort();
        for v in vars {
            let (root, rest) = match v.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (v.as_str(), None),
            };
            match root {
                "env" | "secret" => match rest {
                    Some(name) => {
                        if root == "env" {
                            self.envs.insert(name.to_string());
                        } else {
                            self.secrets.insert(name.to_string());
                        }
                    }
                    None => {
                        self.r
                            .err(
                                "template",
                                span.clone(),
                                format!("`{root}` must be used as `{root}.NAME`"),
                            )
                            .help(format!("e.g. {{{{ {root}.DNS_TOKEN }}}}"));
                    }
                },
                // `{{ with.NAME }}` was spliced in before this check (see `uses`): what is
                // left is an unknown parameter or a use the splice does not support.
                "with" => self.with_var(rest, span.clone()),
                // Placeholders written by `meeseeks init`: say what to do, not "undefined".
                _ if root.starts_with("TODO") => {
                    self.r
                        .err(
                            "todo",
                            span.clone(),
                            format!("placeholder `{root}` still to fill in"),
                        )
                        .label("replace this placeholder")
                        .help(format!(
                            "replace {{{{ {root} }}}} with the real value (left by `meeseeks init`)"
                        ));
                }
                _ if BUILTIN_VARS.contains(&root)
                    || self.defined.graph.contains(root)
                    || self.defined.cli.contains(root)
                    || self.playbook_vars.contains(root) => {}
                _ => {
                    let mut known: Vec<&str> = BUILTIN_VARS.to_vec();
                    known.extend(self.defined.graph.iter().copied());
                    known.extend(self.defined.cli.iter().copied());
                    known.extend(self.playbook_vars.iter().map(String::as_str));
                    let hint = crate::util::closest(root, known.iter().copied());
                    let mut d = self.r.err(
                        "undefined-var",
                        span.clone(),
                        format!("undefined template variable `{root}`"),
                    );
                    d.label = Some(format!("`{root}` is not defined"));
                    d.help = Some(match hint {
                        Some(h) => format!(
                            "did you mean `{h}`? Otherwise define it in this playbook's [vars], graph.toml's [vars] or with --var {root}=..."
                        ),
                        None => format!(
                            "define it in this playbook's [vars], graph.toml's [vars] or with --var {root}=..."
                        ),
                    });
                }
            }
        }
    }

    fn with_var(&mut self, name: Option<&str>, span: Range<usize>) {
        let Some(params) = &self.with_params else {
            self.r
                .err(
                    "template",
                    span,
                    "`with` is only defined inside a template (playbooks/_templates/ or the library)",
                )
                .help("in a playbook, pass values to a template with `with = { ... }` on a `uses` step");
            return;
        };
        let name = name.unwrap_or("").split('.').next().unwrap_or("");
        if params.iter().any(|p| p == name) {
            self.r
                .err(
                    "template",
                    span,
                    format!("`with.{name}` may only be used as a whole `{{{{ with.{name} }}}}`"),
                )
                .help("parameter values are spliced into the text at load time: filters, tests and {% %} blocks cannot apply to them");
        } else {
            let hint = crate::util::closest(name, params.iter().map(String::as_str));
            let mut d = self.r.err(
                "unknown-param",
                span,
                format!("`with.{name}` is not a parameter of this template"),
            );
            d.help = Some(match hint {
                Some(h) => format!("did you mean `with.{h}`? Declare parameters under [params]"),
                None => format!("declare it under [params.{name}]"),
            });
        }
    }

    fn tstring(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        let s = self.r.string(key, v)?;
        self.template(&s, v.span());
        Some(s)
    }
}

fn read_playbook(
    file: &Arc<SourceFile>,
    path: &Path,
    defined: &Defined<'_>,
    cache: &RefCell<super::uses::Cache>,
    diags: &mut Diagnostics,
) -> Option<Playbook> {
    let table = super::parse(file, diags);
    let root = table.get_ref();
    let mut cx = Ctx {
        r: Reader { file, diags },
        defined,
        playbook_vars: BTreeSet::new(),
        secrets: BTreeSet::new(),
        envs: BTreeSet::new(),
        with_params: None,
        cache,
        extra_checks: Vec::new(),
        templates: BTreeSet::new(),
    };
    cx.r.unknown_keys(root, PLAYBOOK_KEYS, "a playbook");
    let mut pb = Playbook {
        file: path.to_path_buf(),
        ..Default::default()
    };
    if let Some(v) = root.get("description") {
        cx.r.string("description", v);
    }
    if let Some(v) = root.get("vars")
        && let Some(t) = cx.r.table("vars", v)
    {
        for (k, v) in t.iter() {
            super::check_var_name(&mut cx.r, k.get_ref(), k.span());
            cx.playbook_vars.insert(k.get_ref().to_string());
            pb.vars.insert(k.get_ref().to_string(), to_var(v.get_ref()));
        }
    }
    pb.steps = read_steps(&mut cx, root.get("steps"), "steps", true);
    pb.rollback = read_steps(&mut cx, root.get("rollback"), "rollback", false);
    pb.cleanup = read_steps(&mut cx, root.get("cleanup"), "cleanup", false);
    if let Some(v) = root.get("checks")
        && let Some(arr) = cx.r.array("checks", v)
    {
        let mut names: HashMap<String, u32> = HashMap::new();
        for (i, item) in arr.iter().enumerate() {
            if let Some(c) = read_check(&mut cx, item, i) {
                if let Some(first) = names.get(&c.name) {
                    cx.r.err(
                        "duplicate-name",
                        item.span(),
                        format!("duplicate check name `{}`", c.name),
                    )
                    .help(format!(
                        "the first check with this name is on line {first}; names must be unique"
                    ));
                } else {
                    names.insert(c.name.clone(), c.line);
                }
                pb.checks.push(c);
            }
        }
    }
    pb.checks.append(&mut cx.extra_checks);
    pb.preflight = read_preflight_probes(&mut cx, root.get("preflight"));
    pb.secrets = std::mem::take(&mut cx.secrets);
    pb.envs = std::mem::take(&mut cx.envs);
    pb.templates = std::mem::take(&mut cx.templates);
    Some(pb)
}

fn read_steps(
    cx: &mut Ctx<'_, '_>,
    v: Option<&SV<'_>>,
    section: &str,
    require_name: bool,
) -> Vec<Step> {
    let Some(v) = v else { return Vec::new() };
    let Some(arr) = cx.r.array(section, v) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(arr.len());
    let mut names: HashMap<String, u32> = HashMap::new();
    for (i, item) in arr.iter().enumerate() {
        // Duplicate names are checked on the raw name, so that a step broken in another way
        // still gets this problem reported too.
        let table = item.get_ref().as_table();
        let uses = table.and_then(|t| t.get("uses"));
        // A `uses` step without a name is named after its template.
        let name = table
            .and_then(|t| t.get("name").or(uses))
            .and_then(|n| n.get_ref().as_str().map(|s| (s.to_string(), n.span())));
        let mut raw_dup = false;
        if let Some((name, span)) = name {
            let line = cx.r.file.line_col(item.span().start).0;
            if let Some(first) = names.get(&name) {
                raw_dup = true;
                cx.r.err("duplicate-name", span, format!("duplicate step name `{name}` in [[{section}]]"))
                    .label("used again here")
                    .help(format!("the first step with this name is on line {first}; step names identify steps on resume and must be unique"));
            } else {
                names.insert(name, line);
            }
        }
        if let (Some(t), Some(_)) = (table, uses) {
            if let Some((steps, mut checks)) = super::uses::expand(cx, item, t, section) {
                // Expanded names take part in the uniqueness rule too (a hand-written step
                // could be called `k8s/scale/scale`).
                for st in &steps {
                    if let Some(first) = names.get(&st.name) {
                        if !raw_dup {
                            cx.r.err("duplicate-name", t.get("uses").map_or(item.span(), |u| u.span()), format!("this template's step `{}` collides with the step of that name in [[{section}]]", st.name))
                                .help(format!("the other step is on line {first}; give this `uses` step a distinct `name`"));
                        }
                    } else {
                        names.insert(st.name.clone(), st.line);
                    }
                }
                out.extend(steps);
                cx.extra_checks.append(&mut checks);
            }
            continue;
        }
        if let Some(step) = read_step(cx, item, section, i, require_name) {
            out.push(step);
        }
    }
    out
}

fn read_http(cx: &mut Ctx<'_, '_>, v: &SV<'_>) -> Option<HttpSpec> {
    let t = cx.r.table("http", v)?;
    cx.r.unknown_keys(t, HTTP_KEYS, "http");
    let url = match t.get("url") {
        Some(u) => cx.tstring("url", u),
        None => {
            cx.r.err("missing-key", v.span(), "`http` needs a `url`");
            None
        }
    };
    let mut method = "GET".to_string();
    if let Some(m) = t.get("method")
        && let Some(s) = cx.r.string("method", m)
    {
        let up = s.to_ascii_uppercase();
        if HTTP_METHODS.contains(&up.as_str()) {
            method = up;
        } else {
            cx.r.err("value", m.span(), format!("unknown HTTP method `{s}`"))
                .help(format!("use one of {}", HTTP_METHODS.join(", ")));
        }
    }
    let mut headers = BTreeMap::new();
    if let Some(h) = t.get("headers")
        && let Some(ht) = cx.r.table("headers", h)
    {
        for (k, hv) in ht.iter() {
            if let Some(s) = cx.tstring(k.get_ref(), hv) {
                headers.insert(k.get_ref().to_string(), s);
            }
        }
    }
    let body = t.get("body").and_then(|b| cx.tstring("body", b));
    let expect_body = t
        .get("expect_body")
        .and_then(|b| cx.tstring("expect_body", b));
    let mut expect_status = Vec::new();
    if let Some(es) = t.get("expect_status") {
        let items: Vec<&SV<'_>> = match es.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![es],
        };
        for it in items {
            if let Some(n) = cx.r.int_in("expect_status", it, 100, 599) {
                expect_status.push(n as u16);
            }
        }
    }
    Some(HttpSpec {
        method,
        url: url?,
        headers,
        body,
        expect_status,
        expect_body,
    })
}

fn read_cmd(cx: &mut Ctx<'_, '_>, v: &SV<'_>) -> Option<Vec<String>> {
    let items = cx.r.strings("cmd", v)?;
    if items.is_empty() {
        cx.r.err("value", v.span(), "`cmd` is empty").help(
            "give the program and its arguments, e.g. cmd = [\"systemctl\", \"start\", \"nginx\"]",
        );
        return None;
    }
    for (s, span) in &items {
        cx.template(s, span.clone());
    }
    Some(items.into_iter().map(|(s, _)| s).collect())
}

fn read_tcp(cx: &mut Ctx<'_, '_>, v: &SV<'_>) -> Option<String> {
    let s = cx.tstring("tcp", v)?;
    if !s.contains("{{")
        && s.rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        cx.r.err(
            "value",
            v.span(),
            format!("`tcp` = \"{s}\" is not host:port"),
        )
        .help("e.g. tcp = \"10.1.2.3:5432\"");
        return None;
    }
    Some(s)
}

/// The keys among `kinds` present in `t`, for the exactly-one-kind rule.
fn kinds_present<'t>(t: &'t DeTable<'_>, kinds: &[&str]) -> Vec<(&'t str, Range<usize>)> {
    t.iter()
        .filter(|(k, _)| kinds.contains(&k.get_ref().as_ref()))
        .map(|(k, _)| (k.get_ref().as_ref(), k.span()))
        .collect()
}

pub(super) fn read_step(
    cx: &mut Ctx<'_, '_>,
    item: &SV<'_>,
    section: &str,
    index: usize,
    require_name: bool,
) -> Option<Step> {
    let t = cx.r.table(section, item)?;
    let line = cx.r.file.line_col(item.span().start).0;
    cx.r.unknown_keys(t, STEP_KEYS, &format!("a [[{section}]] step"));
    let name = match t.get("name") {
        Some(n) => cx.r.string("name", n),
        None if require_name => {
            cx.r.err("missing-key", item.span(), format!("step #{} in [[{section}]] has no `name`", index + 1))
                .help("give every step a unique `name`: it identifies the step in the journal and on resume");
            None
        }
        None => Some(format!("{section} #{}", index + 1)),
    };
    let kinds = kinds_present(t, STEP_KINDS);
    let kind = match kinds.len() {
        0 => {
            cx.r.err(
                "step-kind",
                item.span(),
                format!("step #{} in [[{section}]] has no action", index + 1),
            )
            .help(format!("give it exactly one of: {}", STEP_KINDS.join(", ")));
            None
        }
        1 => {
            let (k, _) = kinds[0];
            let v = t.get(k).expect("present");
            match k {
                "run" => cx.tstring("run", v).map(StepKind::Run),
                "cmd" => read_cmd(cx, v).map(StepKind::Cmd),
                "http" => read_http(cx, v).map(StepKind::Http),
                "tcp" => read_tcp(cx, v).map(StepKind::Tcp),
                "wait" => cx.r.duration("wait", v).map(StepKind::Wait),
                "manual" => cx.tstring("manual", v).map(StepKind::Manual),
                _ => None,
            }
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
            cx.r.err(
                "step-kind",
                kinds[1].1.clone(),
                format!("a step has several actions: {}", names.join(", ")),
            )
            .label("second action")
            .help("a step does exactly one thing: split it into several [[steps]]");
            None
        }
    };
    let timeout = t
        .get("timeout")
        .and_then(|v| cx.r.positive_duration("timeout", v));
    let retries = t
        .get("retries")
        .and_then(|v| cx.r.int_in("retries", v, 0, 100))
        .unwrap_or(0) as u32;
    let retry_delay = t
        .get("retry_delay")
        .and_then(|v| cx.r.duration("retry_delay", v))
        .unwrap_or(Step::DEFAULT_RETRY_DELAY);
    let estimate = t.get("estimate").and_then(|v| cx.r.duration("estimate", v));
    let mut only = None;
    if let Some(v) = t.get("only")
        && let Some(s) = cx.r.string("only", v)
    {
        match s.as_str() {
            "failover" => only = Some(Mode::Failover),
            "drill" => only = Some(Mode::Drill),
            _ => {
                cx.r.err("value", v.span(), format!("`only` = \"{s}\" is not a mode"))
                    .help("use only = \"failover\" or only = \"drill\"");
            }
        }
    }
    let optional = t
        .get("optional")
        .and_then(|v| cx.r.bool("optional", v))
        .unwrap_or(false);
    let idempotent = t
        .get("idempotent")
        .and_then(|v| cx.r.bool("idempotent", v))
        .unwrap_or(true);
    let preflight = read_preflight_flag(cx, t);
    Some(Step {
        name: name?,
        kind: kind?,
        timeout,
        retries,
        retry_delay,
        estimate,
        only,
        optional,
        idempotent,
        preflight,
        line,
    })
}

pub(super) fn read_check(cx: &mut Ctx<'_, '_>, item: &SV<'_>, index: usize) -> Option<Check> {
    let t = cx.r.table("checks", item)?;
    let line = cx.r.file.line_col(item.span().start).0;
    cx.r.unknown_keys(t, CHECK_KEYS, "a [[checks]] entry");
    let kinds = kinds_present(t, CHECK_KINDS);
    let kind = match kinds.len() {
        0 => {
            cx.r.err(
                "check-kind",
                item.span(),
                format!("check #{} has no probe", index + 1),
            )
            .help(format!(
                "give it exactly one of: {}",
                CHECK_KINDS.join(", ")
            ));
            None
        }
        1 => {
            let (k, _) = kinds[0];
            let v = t.get(k).expect("present");
            match k {
                "http" => read_http(cx, v).map(CheckKind::Http),
                "tcp" => read_tcp(cx, v).map(CheckKind::Tcp),
                "run" => cx.tstring("run", v).map(CheckKind::Run),
                "cmd" => read_cmd(cx, v).map(CheckKind::Cmd),
                _ => None,
            }
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
            cx.r.err(
                "check-kind",
                kinds[1].1.clone(),
                format!("a check has several probes: {}", names.join(", ")),
            )
            .help("split it into several [[checks]]: all of them must pass");
            None
        }
    };
    let name = match t.get("name") {
        Some(n) => cx.r.string("name", n),
        None => kind
            .as_ref()
            .map(|k: &CheckKind| format!("{} check #{}", k.kind_name(), index + 1)),
    };
    let interval = t
        .get("interval")
        .and_then(|v| cx.r.positive_duration("interval", v))
        .unwrap_or(Check::DEFAULT_INTERVAL);
    let timeout = t
        .get("timeout")
        .and_then(|v| cx.r.positive_duration("timeout", v))
        .unwrap_or(Check::DEFAULT_TIMEOUT);
    let healthy_after = t
        .get("healthy_after")
        .and_then(|v| cx.r.int_in("healthy_after", v, 1, 1000))
        .unwrap_or(1) as u32;
    if timeout < interval {
        cx.r.warn(
            "value",
            item.span(),
            format!(
                "check timeout ({}) is shorter than its interval ({})",
                crate::model::fmt_duration(timeout),
                crate::model::fmt_duration(interval)
            ),
        )
        .help("the check gets a single poll; raise `timeout` or lower `interval`");
    }
    let _ = Duration::ZERO;
    let preflight = read_preflight_flag(cx, t);
    Some(Check {
        name: name?,
        kind: kind?,
        interval,
        timeout,
        healthy_after,
        preflight,
        line,
    })
}

/// `preflight = false` on a step or check: `meeseeks preflight` leaves it unprobed.
fn read_preflight_flag(cx: &mut Ctx<'_, '_>, t: &DeTable<'_>) -> bool {
    t.get("preflight")
        .and_then(|v| cx.r.bool("preflight", v))
        .unwrap_or(true)
}

const PREFLIGHT_KINDS: &[&str] = &["cmd", "run", "http", "tcp"];
const PREFLIGHT_KEYS: &[&str] = &[
    "name",
    "cmd",
    "run",
    "http",
    "tcp",
    "timeout",
    "expect_status",
    "expect_body",
    "max",
];

/// `[[preflight]]`: read-only probes of the service's readiness (`meeseeks preflight`).
fn read_preflight_probes(cx: &mut Ctx<'_, '_>, v: Option<&SV<'_>>) -> Vec<PreflightProbe> {
    let Some(arr) = v.and_then(|v| cx.r.array("preflight", v)) else {
        return Vec::new();
    };
    let mut out: Vec<PreflightProbe> = Vec::with_capacity(arr.len());
    for (i, item) in arr.iter().enumerate() {
        let Some(p) = read_preflight_probe(cx, item, i) else {
            continue;
        };
        if let Some(first) = out.iter().find(|q| q.name == p.name) {
            let first = first.line;
            cx.r.err(
                "duplicate-name",
                item.span(),
                format!("duplicate [[preflight]] name `{}`", p.name),
            )
            .help(format!(
                "the first probe with this name is on line {first}; names must be unique"
            ));
        }
        out.push(p);
    }
    out
}

fn read_preflight_probe(
    cx: &mut Ctx<'_, '_>,
    item: &SV<'_>,
    index: usize,
) -> Option<PreflightProbe> {
    let t = cx.r.table("preflight", item)?;
    let line = cx.r.file.line_col(item.span().start).0;
    cx.r.unknown_keys(t, PREFLIGHT_KEYS, "a [[preflight]] probe");
    let kinds = kinds_present(t, PREFLIGHT_KINDS);
    let kind = match kinds.as_slice() {
        [(k, _)] => {
            let v = t.get(*k).expect("present");
            match *k {
                "cmd" => read_cmd(cx, v).map(CheckKind::Cmd),
                "run" => cx.tstring("run", v).map(CheckKind::Run),
                "http" => read_http(cx, v).map(CheckKind::Http),
                _ => read_tcp(cx, v).map(CheckKind::Tcp),
            }
        }
        [] => {
            cx.r.err(
                "check-kind",
                item.span(),
                format!("[[preflight]] #{} has no probe", index + 1),
            )
            .help("give it exactly one read-only probe: cmd, run, http or tcp");
            None
        }
        [_, (_, second), ..] => {
            cx.r.err(
                "check-kind",
                second.clone(),
                "a [[preflight]] probe does exactly one thing",
            )
            .help("split it into several [[preflight]] entries");
            None
        }
    };
    let name = match t.get("name") {
        Some(n) => cx.r.string("name", n),
        None => kind
            .as_ref()
            .map(|k| format!("{} preflight #{}", k.kind_name(), index + 1)),
    };
    let timeout = t
        .get("timeout")
        .and_then(|v| cx.r.positive_duration("timeout", v))
        .unwrap_or(PreflightProbe::DEFAULT_TIMEOUT);
    let is_command = matches!(kind, Some(CheckKind::Cmd(_) | CheckKind::Run(_)));
    let mut kind = kind;
    let mut expect_body = None;
    if let Some(v) = t.get("expect_body") {
        let body = cx.tstring("expect_body", v);
        match &mut kind {
            // Beside `http = { ... }` or inside it: the same expectation.
            Some(CheckKind::Http(h)) => h.expect_body = body.or(h.expect_body.take()),
            Some(CheckKind::Tcp(_)) => {
                cx.r.err(
                    "value",
                    v.span(),
                    "`expect_body` does not apply to a tcp probe",
                )
                .help("a tcp probe only checks that a connection is accepted");
            }
            _ => expect_body = body,
        }
    }
    if let Some(v) = t.get("expect_status") {
        let items: Vec<&SV<'_>> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![v],
        };
        let statuses: Vec<u16> = items
            .into_iter()
            .filter_map(|it| cx.r.int_in("expect_status", it, 100, 599))
            .map(|n| n as u16)
            .collect();
        match &mut kind {
            Some(CheckKind::Http(h)) => h.expect_status = statuses,
            Some(_) => {
                cx.r.err(
                    "value",
                    v.span(),
                    "`expect_status` applies to http probes only",
                )
                .help(
                    "a command probe passes when it exits 0; use expect_body or max for its output",
                );
            }
            None => {}
        }
    }
    let mut max = None;
    if let Some(v) = t.get("max") {
        let n = match v.get_ref() {
            DeValue::Integer(_) | DeValue::Float(_) => super::value::to_var(v.get_ref()).as_f64(),
            _ => None,
        };
        match n {
            None => {
                cx.r.err("type", v.span(), "`max` must be a number")
                    .help("e.g. max = 5 (the probe's last line of output must be a number <= 5)");
            }
            Some(_) if !is_command && kind.is_some() => {
                cx.r.err(
                    "value",
                    v.span(),
                    "`max` applies to cmd and run probes only",
                )
                .help("it bounds the number the command prints, e.g. replication lag in seconds");
            }
            Some(n) => max = Some(n),
        }
    }
    Some(PreflightProbe {
        name: name?,
        kind: kind?,
        timeout,
        expect_body,
        max,
        line,
    })
}
