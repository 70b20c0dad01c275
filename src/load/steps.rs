//! Reading steps and checks (of a playbook or a template), with every template string
//! checked at load time: syntax, variables, filters.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::BUILTIN_VARS;
use super::library::Cache;
use super::read::{Reader, SV};
use super::tree::{Table, Value};
use crate::model::{Check, CheckKind, HttpSpec, Mode, Preflight, RpoProbe, Step, StepKind};

pub(super) const STEP_KINDS: &[&str] = &["run", "cmd", "http", "tcp", "wait", "manual"];
/// Settings of a step, which a `uses` step may also set for the steps it expands to.
pub(super) const STEP_SETTINGS: &[&str] = &[
    "timeout",
    "retries",
    "retry_delay",
    "estimate",
    "only",
    "optional",
    "idempotent",
    "preflight",
    "env",
];
/// `name`, one of `STEP_KINDS`, `STEP_SETTINGS`.
static STEP_KEYS: std::sync::LazyLock<Vec<&str>> = std::sync::LazyLock::new(|| {
    ["name"]
        .iter()
        .chain(STEP_KINDS)
        .chain(STEP_SETTINGS)
        .copied()
        .collect()
});
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
const PREFLIGHT_KEYS: &[&str] = &[
    "name",
    "http",
    "tcp",
    "run",
    "cmd",
    "timeout",
    "max",
    "expect_body",
    "expect_status",
];
const COMMAND_KINDS: &[&str] = &["run", "cmd"];
const RPO_PROBE_KEYS: &[&str] = &["run", "cmd", "timeout"];
const HTTP_KEYS: &[&str] = &[
    "method",
    "url",
    "headers",
    "body",
    "expect_status",
    "expect_body",
];
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Variable names a playbook's templates may use.
pub(super) struct Defined<'a> {
    pub graph: &'a BTreeSet<&'a str>,
    pub cli: &'a BTreeSet<&'a str>,
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
    pub cache: &'b RefCell<Cache>,
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
        if !self.known_names(s, span.clone()) {
            return;
        }
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
                    let hint = crate::suggest::closest(root, known.iter().copied());
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
            let hint = crate::suggest::closest(name, params.iter().map(String::as_str));
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

    /// Checks what only rendering would find in a template that compiles: a filter or test
    /// that does not exist, or a tag reading another template file (`include`, `import`,
    /// `from`, `extends`: there are none to read). `false` when something was reported.
    fn known_names(&mut self, s: &str, span: Range<usize>) -> bool {
        use minijinja::machinery::{Token, tokenize};
        let tokens: Vec<Token<'_>> = tokenize(s, false, Default::default())
            .map_while(|t| t.ok().map(|(t, _)| t))
            .collect();
        let mut ok = true;
        for (i, t) in tokens.iter().enumerate() {
            let next = |k: usize| match tokens.get(i + k) {
                Some(Token::Ident(n)) => Some(*n),
                _ => None,
            };
            let problem = match t {
                Token::BlockStart => match next(1) {
                    Some(tag @ ("include" | "import" | "from" | "extends")) => {
                        Some((format!("`{{% {tag} %}}` cannot be used in a playbook"), "a playbook's templates are single strings: there is no other template file to read".to_string()))
                    }
                    Some("filter") => next(2).and_then(unknown_filter),
                    _ => None,
                },
                Token::Pipe => next(1).and_then(unknown_filter),
                Token::Ident("is") => match next(1) {
                    Some("not") => next(2).and_then(unknown_test),
                    n => n.and_then(unknown_test),
                },
                _ => None,
            };
            if let Some((msg, help)) = problem {
                self.r.err("template", span.clone(), msg).help(help);
                ok = false;
            }
        }
        ok
    }

    fn tstring(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        let s = self.r.string(key, v)?;
        self.template(&s, v.span());
        Some(s)
    }

    /// A shell command line (see [`Reader::command`]) that is a template.
    fn tcommand(&mut self, key: &str, v: &SV<'_>) -> Option<String> {
        let s = self.r.command(key, v)?;
        self.template(&s, v.span());
        Some(s)
    }
}

/// The filters and tests templates may use: those of the environment that renders them at
/// run time (`template::Renderer`: minijinja's built-ins).
fn builtins() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(minijinja::Environment::new)
}

/// (message, help) when `name` is not a filter.
fn unknown_filter(name: &str) -> Option<(String, String)> {
    let err = builtins().empty_state().apply_filter(name, &[]).err()?;
    (err.kind() == minijinja::ErrorKind::UnknownFilter).then(|| {
        (
            format!("unknown template filter `{name}`"),
            "use one of minijinja's built-in filters (upper, lower, trim, replace, default, join, …): https://docs.rs/minijinja/latest/minijinja/filters/".to_string(),
        )
    })
}

/// (message, help) when `name` is not a test (`x is defined`).
fn unknown_test(name: &str) -> Option<(String, String)> {
    let err = builtins().empty_state().perform_test(name, &[]).err()?;
    (err.kind() == minijinja::ErrorKind::UnknownTest).then(|| {
        (
            format!("unknown template test `{name}`"),
            "use one of minijinja's built-in tests (defined, none, number, string, …): https://docs.rs/minijinja/latest/minijinja/tests/".to_string(),
        )
    })
}

fn read_http(cx: &mut Ctx<'_, '_>, v: &SV<'_>) -> Option<HttpSpec> {
    let t = cx.r.table("http", v)?;
    cx.r.unknown_keys(t, HTTP_KEYS, "http");
    let url = match t.get("url") {
        Some(u) => cx
            .tstring("url", u)
            .filter(|s| cx.r.http_url("url", s, u.span())),
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
                if s.contains(['\r', '\n', '\0']) {
                    cx.r.err(
                        "value",
                        hv.span(),
                        format!("header `{}` contains a line break or NUL byte", k.get_ref()),
                    )
                    .help("an HTTP header value is one line of text");
                    continue;
                }
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
            Value::Array(a) => a.iter().collect(),
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
    let mut ok = true;
    for (i, (s, span)) in items.iter().enumerate() {
        if s.contains('\0') {
            cx.r.err(
                "value",
                span.clone(),
                "a `cmd` argument contains a NUL byte",
            )
            .help(
                "an argument cannot hold a NUL byte (the kernel ends it there): remove the \\u0000",
            );
            ok = false;
        } else if i == 0 && s.trim().is_empty() {
            cx.r.err("value", span.clone(), "the program of `cmd` is empty")
                .help("the first element is the program to run, e.g. cmd = [\"systemctl\", \"start\", \"nginx\"]");
            ok = false;
        }
        cx.template(s, span.clone());
    }
    ok.then(|| items.into_iter().map(|(s, _)| s).collect())
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

/// `only = "failover" | "drill"`.
pub(super) fn read_only(r: &mut Reader<'_>, v: &SV<'_>) -> Option<Mode> {
    let s = r.str("only", v)?;
    match s {
        "failover" => Some(Mode::Failover),
        "drill" => Some(Mode::Drill),
        _ => {
            r.err("value", v.span(), format!("`only` = \"{s}\" is not a mode"))
                .help("use only = \"failover\" or only = \"drill\"");
            None
        }
    }
}

/// The keys among `kinds` present in `t`, for the exactly-one-kind rule.
fn kinds_present<'t>(t: &'t Table<'_>, kinds: &[&str]) -> Vec<(&'t str, Range<usize>)> {
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
    cx.r.unknown_keys(t, &STEP_KEYS, &format!("a [[{section}]] step"));
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
                "run" => cx.tcommand("run", v).map(StepKind::Run),
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
    let only = t.get("only").and_then(|v| read_only(&mut cx.r, v));
    let optional = t
        .get("optional")
        .and_then(|v| cx.r.bool("optional", v))
        .unwrap_or(false);
    let idempotent = t
        .get("idempotent")
        .and_then(|v| cx.r.bool("idempotent", v))
        .unwrap_or(true);
    let preflight = read_preflight_flag(&mut cx.r, t).unwrap_or(true);
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
        preflight,
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

/// `preflight = false` on a step or check.
pub(super) fn read_preflight_flag(r: &mut Reader<'_>, t: &Table<'_>) -> Option<bool> {
    t.get("preflight").and_then(|v| r.bool("preflight", v))
}

pub(super) fn read_check(cx: &mut Ctx<'_, '_>, item: &SV<'_>, index: usize) -> Option<Check> {
    let what = Probe {
        kinds: CHECK_KINDS,
        code: "check-kind",
        none: format!("check #{} has no probe", index + 1),
        several: "a check has several probes",
        split: "split it into several [[checks]]: all of them must pass",
    };
    let (t, line, kind, name) = probe_entry(cx, item, "checks", CHECK_KEYS, "check", index, &what)?;
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
    Some(Check {
        name: name?,
        kind: kind?,
        interval,
        timeout,
        healthy_after,
        preflight: read_preflight_flag(&mut cx.r, t).unwrap_or(true),
        line,
    })
}

/// How a probe-like entry is worded in its diagnostics.
struct Probe<'a> {
    /// The keys that are probes here (some of `CHECK_KINDS`).
    kinds: &'a [&'a str],
    code: &'static str,
    /// Message when it has none.
    none: String,
    /// Message (before the list) when it has several.
    several: &'a str,
    /// Help when it has several.
    split: &'a str,
}

/// The one probe (`http`, `tcp`, `run`, `cmd`) of a check, preflight entry or RPO probe.
fn read_probe(
    cx: &mut Ctx<'_, '_>,
    item: &SV<'_>,
    t: &Table<'_>,
    what: &Probe<'_>,
) -> Option<CheckKind> {
    let kinds = kinds_present(t, what.kinds);
    match kinds.len() {
        0 => {
            cx.r.err(what.code, item.span(), what.none.clone())
                .help(format!("give it exactly one of: {}", what.kinds.join(", ")));
            None
        }
        1 => {
            let (k, _) = kinds[0];
            let v = t.get(k).expect("present");
            match k {
                "http" => read_http(cx, v).map(CheckKind::Http),
                "tcp" => read_tcp(cx, v).map(CheckKind::Tcp),
                "run" => cx.tcommand("run", v).map(CheckKind::Run),
                "cmd" => read_cmd(cx, v).map(CheckKind::Cmd),
                _ => None,
            }
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
            cx.r.err(
                what.code,
                kinds[1].1.clone(),
                format!("{}: {}", what.several, names.join(", ")),
            )
            .help(what.split);
            None
        }
    }
}

/// What a `[[checks]]` or `[[preflight]]` entry (`item`, the `index`th of `section`) starts
/// with: its table and line, its probe, and its name (default `<kind> <noun> #N`).
#[allow(clippy::type_complexity)]
fn probe_entry<'v, 'i>(
    cx: &mut Ctx<'_, '_>,
    item: &'v SV<'i>,
    section: &str,
    keys: &[&str],
    noun: &str,
    index: usize,
    what: &Probe<'_>,
) -> Option<(&'v Table<'i>, u32, Option<CheckKind>, Option<String>)> {
    let t = cx.r.table(section, item)?;
    let line = cx.r.file.line_col(item.span().start).0;
    cx.r.unknown_keys(t, keys, &format!("a [[{section}]] entry"));
    let kind = read_probe(cx, item, t, what);
    let name = match t.get("name") {
        Some(n) => cx.r.string("name", n),
        None => kind
            .as_ref()
            .map(|k| format!("{} {noun} #{}", k.kind_name(), index + 1)),
    };
    Some((t, line, kind, name))
}

/// A `[[preflight]]` entry.
pub(super) fn read_preflight(
    cx: &mut Ctx<'_, '_>,
    item: &SV<'_>,
    index: usize,
) -> Option<Preflight> {
    let what = Probe {
        kinds: CHECK_KINDS,
        code: "check-kind",
        none: format!("preflight probe #{} has no probe", index + 1),
        several: "a preflight probe has several probes",
        split: "split it into several [[preflight]] entries: all of them must pass",
    };
    let (t, line, kind, name) = probe_entry(
        cx,
        item,
        "preflight",
        PREFLIGHT_KEYS,
        "preflight",
        index,
        &what,
    )?;
    let timeout = t
        .get("timeout")
        .and_then(|v| cx.r.positive_duration("timeout", v))
        .unwrap_or(Preflight::DEFAULT_TIMEOUT);
    let mut max = None;
    if let Some(v) = t.get("max") {
        max = match v.get_ref() {
            Value::Integer(i) => i.to_i64().map(|n| n as f64),
            Value::Float(f) => f.as_str().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        };
        if max.is_none() {
            cx.r.err("type", v.span(), "`max` must be a finite number")
                .label("expected a number")
                .help(
                    "e.g. max = 30 (the command's output, read as a number, must be at most this)",
                );
        } else if !matches!(kind, None | Some(CheckKind::Run(_) | CheckKind::Cmd(_))) {
            cx.r.err("value", v.span(), "`max` applies to `cmd` and `run` probes only")
                .help("it bounds the number the command prints; an http probe has expect_status / expect_body");
        }
    }
    // Expectations may also stand beside the probe: `expect_body` for a command's output (or
    // an http body), `expect_status` for http.
    let mut kind = kind;
    let mut expect_body = None;
    if let Some(v) = t.get("expect_body") {
        let body = cx.tstring("expect_body", v);
        match &mut kind {
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
            Value::Array(a) => a.iter().collect(),
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
    Some(Preflight {
        name: name?,
        kind: kind?,
        timeout,
        expect_body,
        max,
        line,
    })
}

/// The `[rpo_probe]` table: `run` or `cmd`, and `timeout`.
pub(super) fn read_rpo_probe(cx: &mut Ctx<'_, '_>, item: &SV<'_>) -> Option<RpoProbe> {
    let t = cx.r.table("rpo_probe", item)?;
    let line = cx.r.file.line_col(item.span().start).0;
    cx.r.unknown_keys(t, RPO_PROBE_KEYS, "[rpo_probe]");
    let what = Probe {
        kinds: COMMAND_KINDS,
        code: "check-kind",
        none: "[rpo_probe] has no command".to_string(),
        several: "[rpo_probe] has several commands",
        split: "give it one command printing the newest replicated timestamp (RFC 3339)",
    };
    let kind = read_probe(cx, item, t, &what);
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
