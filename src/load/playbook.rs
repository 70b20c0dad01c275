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
    Check, CheckKind, HttpSpec, Mode, Model, Playbook, RpoProbe, Service, Step, StepKind,
};

const PLAYBOOK_KEYS: &[&str] = &[
    "description",
    "vars",
    "steps",
    "checks",
    "rollback",
    "cleanup",
    "rpo_probe",
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
    "env",
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
            rpo_probe_needs_stateful(&model.services[id], &pb, &file, diags);
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
    pb.rpo_probe = read_rpo_probe(&mut cx, root);
    pb.secrets = std::mem::take(&mut cx.secrets);
    pb.envs = std::mem::take(&mut cx.envs);
    pb.templates = std::mem::take(&mut cx.templates);
    Some(pb)
}

/// `[rpo_probe]` (SPEC §10): exactly one of `run` / `cmd` (templates checked like a check's),
/// and an optional `timeout`.
fn read_rpo_probe(cx: &mut Ctx<'_, '_>, root: &DeTable<'_>) -> Option<RpoProbe> {
    const KEYS: &[&str] = &["run", "cmd", "timeout"];
    let (key, v) = root.get_key_value("rpo_probe")?;
    let line = cx.r.file.line_col(key.span().start).0;
    let t = cx.r.table("rpo_probe", v)?;
    cx.r.unknown_keys(t, KEYS, "[rpo_probe]");
    let kinds = kinds_present(t, &KEYS[..2]);
    let kind = match kinds.as_slice() {
        [] => {
            cx.r.err("rpo-probe", key.span(), "[rpo_probe] has no command")
                .help("give it `run = \"...\"` or `cmd = [...]`: a read-only command that prints the newest write the service holds, as an RFC 3339 timestamp");
            None
        }
        [("run", _)] => t
            .get("run")
            .and_then(|v| cx.tstring("run", v))
            .map(CheckKind::Run),
        [(_, _)] => t
            .get("cmd")
            .and_then(|v| read_cmd(cx, v))
            .map(CheckKind::Cmd),
        [(_, a), (_, b), ..] => {
            let second = if a.start > b.start { a } else { b };
            cx.r.err(
                "rpo-probe",
                second.clone(),
                "[rpo_probe] has both `run` and `cmd`",
            )
            .help("keep one: `cmd` (argv, no shell) where no shell is needed");
            None
        }
    };
    let timeout = t
        .get("timeout")
        .and_then(|v| cx.r.positive_duration("timeout", v))
        .unwrap_or(RpoProbe::DEFAULT_TIMEOUT);
    Some(RpoProbe {
        kind: kind?,
        timeout,
        line,
    })
}

/// A data-loss window only means something for a service that holds data: `[rpo_probe]` is an
/// error on a service that is not `stateful = true`.
fn rpo_probe_needs_stateful(
    svc: &Service,
    pb: &Playbook,
    file: &Arc<SourceFile>,
    diags: &mut Diagnostics,
) {
    let Some(probe) = &pb.rpo_probe else { return };
    if svc.stateful {
        return;
    }
    let start: usize = file
        .text
        .split_inclusive('\n')
        .take(probe.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let len = file.text[start..]
        .find('\n')
        .unwrap_or(file.text.len() - start);
    diags.push(
        Diag::error(
            "rpo-probe",
            format!("[rpo_probe] on `{}`, which is not a stateful service", svc.name),
        )
        .at(file, start..start + len)
        .label("only stateful services have a data-loss window")
        .help(format!(
            "set `stateful = true` (and its `rpo`) under [services.{}] in graph.toml, or remove [rpo_probe]",
            svc.name
        )),
    );
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
    let env = t
        .get("env")
        .map(|v| read_step_env(cx, v, kind.as_ref()))
        .unwrap_or_default();
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
        line,
        env,
    })
}

/// `env = { NAME = "template", ... }` of a step: names must be valid environment variable
/// names, values are templates (checked like any other), and only `run`/`cmd` steps start a
/// process that could receive them.
fn read_step_env(
    cx: &mut Ctx<'_, '_>,
    v: &SV<'_>,
    kind: Option<&StepKind>,
) -> Vec<(String, String)> {
    let Some(t) = cx.r.table("env", v) else {
        return Vec::new();
    };
    if let Some(k) = kind
        && !matches!(k, StepKind::Run(_) | StepKind::Cmd(_))
    {
        cx.r.err(
            "value",
            v.span(),
            format!("`env` has no effect on a `{}` step", k.kind_name()),
        )
        .help("only `run` and `cmd` steps start a process; remove `env` here");
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, val) in t.iter() {
        let name = k.get_ref().to_string();
        let valid = name
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if name.is_empty() || !valid {
            cx.r.err(
                "value",
                k.span(),
                format!("`{name}` is not an environment variable name"),
            )
            .help("use letters, digits and `_`, not starting with a digit, e.g. PGPASSWORD");
            continue;
        }
        if let Some(s) = cx.tstring(&name, val) {
            if s.contains('\0') {
                cx.r.err(
                    "value",
                    val.span(),
                    format!("env `{name}` contains a NUL byte"),
                );
                continue;
            }
            out.push((name, s));
        }
    }
    out
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
    Some(Check {
        name: name?,
        kind: kind?,
        interval,
        timeout,
        healthy_after,
        line,
    })
}
