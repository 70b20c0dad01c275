//! Loading a DR directory: `graph.toml` + `playbooks/*.toml` → `Model`, with every problem
//! reported at once as a diagnostic pointing at file, line and column.
//!
//! Files are parsed with `toml`'s span-preserving `DeTable` and walked by hand instead of
//! `#[serde(deny_unknown_fields)]`, because serde stops at the first error and one broken
//! service must not hide the problems of the next.

pub mod diag;
pub mod library;
mod playbook;
mod uses;
mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::de::DeTable;

pub use diag::{Diag, Diagnostics, Severity, SourceFile};
use value::{Reader, SV};

use crate::model::{Backup, Defaults, Model, Notify, NotifyFormat, Service, SvcId, VarValue};

/// Event names a `[[notify]]` hook may subscribe to.
pub const NOTIFY_EVENTS: &[&str] = &[
    "run.started",
    "run.resumed",
    "service.started",
    "step.started",
    "step.attempt_failed",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "manual.waiting",
    "manual.approved",
    "check.passed",
    "check.failed",
    "service.recovered",
    "service.failed",
    "service.blocked",
    "rollback.started",
    "rto.breached",
    "run.interrupted",
    "run.abandoned",
    "run.finished",
    "graph.new_dependents",
];

/// Template variables every playbook sees (SPEC §2.2), besides `env` and `secret`.
pub const BUILTIN_VARS: &[&str] = &["service", "run_id", "mode", "run_dir", "dr_dir", "meeseeks"];

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var k=v`: defined for every playbook, highest precedence.
    pub cli_vars: BTreeMap<String, VarValue>,
    /// A service without a playbook is an error (`run`, `validate`) rather than a warning.
    pub require_playbooks: bool,
    /// Skip `playbooks/` entirely (graph-only commands on a lone graph file).
    pub graph_only: bool,
}

/// The result of a load: a model when the input is usable, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub model: Option<Model>,
    pub diags: Diagnostics,
}

impl Loaded {
    /// The model, or `Error::Invalid` carrying the rendered diagnostics.
    pub fn into_result(self, color: bool) -> crate::Result<(Model, Diagnostics)> {
        match self.model {
            Some(m) if !self.diags.has_errors() => Ok((m, self.diags)),
            _ => Err(crate::Error::Invalid(self.diags.render(color))),
        }
    }
}

/// Loads `dir` (a DR directory) or, when `path` is a file, that graph file alone.
pub fn load(path: &Path, opts: &LoadOptions) -> Loaded {
    if path.is_file() {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let o = LoadOptions {
            graph_only: true,
            ..opts.clone()
        };
        return load_files(&dir, path, &o);
    }
    load_files(path, &path.join("graph.toml"), opts)
}

fn read_file(path: &Path, diags: &mut Diagnostics) -> Option<Arc<SourceFile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(SourceFile::new(path.to_path_buf(), text)),
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "a DR directory needs a graph.toml (see `meeseeks init`), or pass the directory as an argument"
            } else {
                "check the file's permissions"
            };
            diags
                .push(Diag::error("io", format!("cannot read {}: {e}", path.display())).help(hint));
            None
        }
    }
}

/// Parses TOML, reporting syntax errors and returning the best-effort table.
fn parse<'i>(file: &'i Arc<SourceFile>, diags: &mut Diagnostics) -> toml::Spanned<DeTable<'i>> {
    let (table, errors) = DeTable::parse_recoverable(&file.text);
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        diags.push(
            Diag::error(
                "syntax",
                format!("TOML syntax error: {}", e.message().trim()),
            )
            .at(file, span)
            .label("here"),
        );
    }
    table
}

/// A service as read from graph.toml, before names are resolved.
struct RawService {
    svc: Service,
    deps: Vec<(String, Range<usize>)>,
    soft: Vec<(String, Range<usize>)>,
    name_span: Range<usize>,
}

fn load_files(dir: &Path, graph_path: &Path, opts: &LoadOptions) -> Loaded {
    let mut diags = Diagnostics::default();
    let Some(gfile) = read_file(graph_path, &mut diags) else {
        return Loaded { model: None, diags };
    };
    let table = parse(&gfile, &mut diags);
    let mut r = Reader {
        file: &gfile,
        diags: &mut diags,
    };
    let root = table.get_ref();
    r.unknown_keys(
        root,
        &["defaults", "vars", "notify", "services"],
        "graph.toml",
    );

    let mut defaults = Defaults::default();
    if let Some(v) = root.get("defaults")
        && let Some(t) = r.table("defaults", v)
    {
        r.unknown_keys(t, &["rto", "parallel", "estimate"], "[defaults]");
        if let Some(v) = t.get("rto")
            && let Some(d) = r.positive_duration("rto", v)
        {
            defaults.rto = d;
        }
        if let Some(v) = t.get("parallel")
            && let Some(n) = r.int_in("parallel", v, 1, 100_000)
        {
            defaults.parallel = n as usize;
        }
        if let Some(v) = t.get("estimate")
            && let Some(d) = r.duration("estimate", v)
        {
            defaults.estimate = d;
        }
    }

    let mut vars = BTreeMap::new();
    if let Some(v) = root.get("vars")
        && let Some(t) = r.table("vars", v)
    {
        for (k, v) in t.iter() {
            check_var_name(&mut r, k.get_ref(), k.span());
            vars.insert(k.get_ref().to_string(), value::to_var(v.get_ref()));
        }
    }

    let notify = root
        .get("notify")
        .map(|v| read_notify(&mut r, v))
        .unwrap_or_default();

    let mut raws: Vec<RawService> = Vec::new();
    if let Some(v) = root.get("services")
        && let Some(t) = r.table("services", v)
    {
        raws.reserve(t.len());
        for (k, v) in t.iter() {
            if let Some(raw) = read_service(&mut r, k.get_ref(), k.span(), v, &defaults) {
                raws.push(raw);
            }
        }
    } else if root.get("services").is_none() {
        r.diags.push(
            Diag::error("no-services", "graph.toml declares no services")
                .at(&gfile, 0..0)
                .help(
                    "add a table per service, e.g.\n[services.orders-db]\ntier = 0\nrto = \"20m\"",
                ),
        );
    }

    // Resolve names to ids.
    raws.sort_by(|a, b| a.svc.name.cmp(&b.svc.name));
    let index: HashMap<String, SvcId> = raws
        .iter()
        .enumerate()
        .map(|(i, s)| (s.svc.name.clone(), i))
        .collect();
    let names: Vec<String> = raws.iter().map(|s| s.svc.name.clone()).collect();
    let mut services: Vec<Service> = Vec::with_capacity(raws.len());
    let mut dep_spans: Vec<Vec<Range<usize>>> = Vec::with_capacity(raws.len());
    let mut name_spans = Vec::with_capacity(raws.len());
    for (id, raw) in raws.into_iter().enumerate() {
        let RawService {
            mut svc,
            deps,
            soft,
            name_span,
        } = raw;
        let mut resolve = |list: Vec<(String, Range<usize>)>,
                           key: &str,
                           spans: &mut Vec<Range<usize>>|
         -> Vec<SvcId> {
            let mut out: Vec<(SvcId, Range<usize>)> = Vec::with_capacity(list.len());
            for (name, span) in list {
                match index.get(&name) {
                    Some(&d) if d == id => {
                        r.err(
                            "self-dependency",
                            span,
                            format!("service `{name}` depends on itself"),
                        )
                        .help(format!("remove `{name}` from its own `{key}`"));
                    }
                    Some(&d) => {
                        if out.iter().any(|(x, _)| *x == d) {
                            r.warn(
                                "duplicate-dependency",
                                span,
                                format!("`{name}` is listed twice in `{key}`"),
                            );
                        } else {
                            out.push((d, span));
                        }
                    }
                    None => {
                        let hint = crate::util::closest(&name, index.keys().map(String::as_str));
                        let mut d = r.err(
                            "unknown-dependency",
                            span,
                            format!("`{}` {key} unknown service `{name}`", svc.name),
                        );
                        d.label = Some("no such service in graph.toml".into());
                        d.help = Some(match hint {
                            Some(h) => format!("did you mean `{h}`?"),
                            None => format!("declare it with a [services.{name}] table"),
                        });
                    }
                }
            }
            out.sort_by_key(|(d, _)| *d);
            let ids = out.iter().map(|(d, _)| *d).collect();
            spans.extend(out.into_iter().map(|(_, s)| s));
            ids
        };
        let mut spans = Vec::new();
        svc.depends_on = resolve(deps, "depends_on", &mut spans);
        let mut soft_spans = Vec::new();
        svc.soft_depends_on = resolve(soft, "soft_depends_on", &mut soft_spans);
        for (&d, span) in svc.soft_depends_on.iter().zip(&soft_spans) {
            if svc.depends_on.binary_search(&d).is_ok() {
                r.err(
                    "dependency-both",
                    span.clone(),
                    format!("`{}` is both an essential and an optional dependency", names[d]),
                )
                .help("keep it in `depends_on` (recovery needs it) or in `soft_depends_on` (works degraded without it), not both");
            }
        }
        dep_spans.push(spans);
        name_spans.push(name_span);
        services.push(svc);
    }

    let mut model = Model {
        dir: dir.to_path_buf(),
        defaults,
        vars,
        notify,
        services,
        index,
        dependents: Vec::new(),
        soft_dependents: Vec::new(),
    };
    model.finish();
    report_cycles(&model, &dep_spans, &gfile, r.diags);

    if !opts.graph_only {
        playbook::load_playbooks(&mut model, &name_spans, &gfile, opts, &mut diags);
    }
    diags.sort();
    Loaded {
        model: Some(model),
        diags,
    }
}

/// Service names end up in file names, DOT ids and CLI arguments: keep them simple.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

fn check_var_name(r: &mut Reader<'_>, name: &str, span: Range<usize>) {
    if BUILTIN_VARS.contains(&name) || name == "env" || name == "secret" || name == "with" {
        r.err(
            "reserved-var",
            span,
            format!("`{name}` is a built-in variable and cannot be redefined"),
        )
        .help(format!(
            "rename it; built-ins are {}, env, secret",
            BUILTIN_VARS.join(", ")
        ));
    }
}

fn read_notify(r: &mut Reader<'_>, v: &SV<'_>) -> Vec<Notify> {
    let Some(arr) = r.array("notify", v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in arr {
        let Some(t) = r.table("notify", item) else {
            continue;
        };
        r.unknown_keys(t, &["url", "events", "format"], "[[notify]]");
        let url = match t.get("url") {
            Some(u) => r.string("url", u).inspect(|s| {
                if !(s.starts_with("http://") || s.starts_with("https://")) {
                    r.err(
                        "value",
                        u.span(),
                        format!("webhook url `{s}` must start with http:// or https://"),
                    );
                }
            }),
            None => {
                r.err("missing-key", item.span(), "[[notify]] needs a `url`");
                None
            }
        };
        let mut events = Vec::new();
        if let Some(e) = t.get("events")
            && let Some(list) = r.strings("events", e)
        {
            for (name, span) in list {
                if !NOTIFY_EVENTS.contains(&name.as_str()) {
                    let hint = crate::util::closest(&name, NOTIFY_EVENTS.iter().copied());
                    let mut d = r.err("value", span, format!("unknown event `{name}`"));
                    d.help = Some(match hint {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => format!("events: {}", NOTIFY_EVENTS.join(", ")),
                    });
                }
                events.push(name);
            }
        }
        let mut format = NotifyFormat::Json;
        if let Some(f) = t.get("format")
            && let Some(s) = r.string("format", f)
        {
            match s.as_str() {
                "json" => format = NotifyFormat::Json,
                "slack" => format = NotifyFormat::Slack,
                _ => {
                    r.err("value", f.span(), format!("unknown notify format `{s}`"))
                        .help("use \"json\" or \"slack\"");
                }
            }
        }
        if let Some(url) = url {
            out.push(Notify {
                url,
                events,
                format,
            });
        }
    }
    out
}

const SERVICE_KEYS: &[&str] = &[
    "tier",
    "rto",
    "rpo",
    "stateful",
    "backup",
    "owner",
    "tags",
    "depends_on",
    "soft_depends_on",
    "watch",
];

fn read_service(
    r: &mut Reader<'_>,
    name: &str,
    name_span: Range<usize>,
    v: &SV<'_>,
    defaults: &Defaults,
) -> Option<RawService> {
    if !valid_service_name(name) {
        r.err(
            "service-name",
            name_span.clone(),
            format!("invalid service name `{name}`"),
        )
        .help(
            "use letters, digits, `-`, `_` and `.` (it becomes a file name: playbooks/<name>.toml)",
        );
    }
    let t = r.table(&format!("services.{name}"), v)?;
    r.unknown_keys(t, SERVICE_KEYS, &format!("[services.{name}]"));
    let mut svc = Service::new(name, 0, defaults.rto);
    svc.line = r.file.line_col(name_span.start).0;
    match t.get("tier") {
        Some(v) => {
            if let Some(n) = r.int_in("tier", v, 0, 100) {
                svc.tier = n as u32;
            }
        }
        None => {
            r.err(
                "missing-key",
                name_span.clone(),
                format!("service `{name}` has no `tier`"),
            )
            .help("add `tier = 0` (most critical) … `tier = 3`");
        }
    }
    if let Some(v) = t.get("rto")
        && let Some(d) = r.positive_duration("rto", v)
    {
        svc.rto = d;
    }
    if let Some(v) = t.get("rpo") {
        svc.rpo = r.duration("rpo", v);
    }
    if let Some(v) = t.get("stateful") {
        svc.stateful = r.bool("stateful", v).unwrap_or(false);
    }
    if let Some(v) = t.get("watch") {
        svc.watch = r.bool("watch", v).unwrap_or(false);
    }
    if let Some(v) = t.get("owner") {
        svc.owner = r.string("owner", v);
    }
    if let Some(v) = t.get("tags") {
        svc.tags = r.string_map("tags", v).unwrap_or_default();
    }
    if let Some(v) = t.get("backup")
        && let Some(b) = r.table("backup", v)
    {
        r.unknown_keys(b, &["schedule", "retention"], "backup");
        let schedule = match b.get("schedule") {
            Some(s) => r.positive_duration("schedule", s),
            None => {
                r.err(
                    "missing-key",
                    v.span(),
                    "`backup` needs a `schedule` (how often a backup is taken)",
                )
                .help("e.g. backup = { schedule = \"15m\", retention = \"7d\" }");
                None
            }
        };
        let retention = b.get("retention").and_then(|x| r.duration("retention", x));
        if let Some(schedule) = schedule {
            svc.backup = Some(Backup {
                schedule,
                retention,
            });
        }
    }
    let deps = t
        .get("depends_on")
        .and_then(|v| r.strings("depends_on", v))
        .unwrap_or_default();
    let soft = t
        .get("soft_depends_on")
        .and_then(|v| r.strings("soft_depends_on", v))
        .unwrap_or_default();
    Some(RawService {
        svc,
        deps,
        soft,
        name_span,
    })
}

/// Finds every cycle of essential dependencies (one per strongly connected component) and
/// reports it whole: `a -> b -> c -> a`. Linear: Tarjan's SCC plus one walk per component.
fn report_cycles(
    model: &Model,
    dep_spans: &[Vec<Range<usize>>],
    file: &Arc<SourceFile>,
    diags: &mut Diagnostics,
) {
    use petgraph::graph::{DiGraph, NodeIndex};
    let n = model.services.len();
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, 0);
    for _ in 0..n {
        g.add_node(());
    }
    for (i, s) in model.services.iter().enumerate() {
        for &d in &s.depends_on {
            g.add_edge(NodeIndex::new(i), NodeIndex::new(d), ());
        }
    }
    let mut comp = vec![usize::MAX; n];
    let sccs = petgraph::algo::tarjan_scc(&g);
    for (ci, scc) in sccs.iter().enumerate() {
        for v in scc {
            comp[v.index()] = ci;
        }
    }
    let mut seen_comp = BTreeSet::new();
    for scc in &sccs {
        if scc.len() < 2 {
            continue;
        }
        let start = scc.iter().map(|v| v.index()).min().unwrap_or(0);
        let ci = comp[start];
        if !seen_comp.insert(ci) {
            continue;
        }
        // Walk inside the component, always to the smallest-id dependency in it, until a node
        // repeats: that closes a cycle.
        let mut pos: HashMap<SvcId, usize> = HashMap::new();
        let mut path = vec![start];
        pos.insert(start, 0);
        let mut cur = start;
        let cycle = loop {
            let next = model.services[cur]
                .depends_on
                .iter()
                .copied()
                .find(|&d| comp[d] == ci)
                .expect("a node of a non-trivial SCC has an edge inside it");
            if let Some(&p) = pos.get(&next) {
                let mut c = path[p..].to_vec();
                c.push(next);
                break c;
            }
            pos.insert(next, path.len());
            path.push(next);
            cur = next;
        };
        let names: Vec<&str> = cycle.iter().map(|&i| model.name(i)).collect();
        let (from, to) = (cycle[0], cycle[1]);
        let span = model.services[from]
            .depends_on
            .iter()
            .position(|&d| d == to)
            .and_then(|k| dep_spans[from].get(k).cloned())
            .unwrap_or(0..0);
        diags.push(
            Diag::error("cycle", format!("dependency cycle: {}", names.join(" -> ")))
                .at(file, span)
                .label("this edge closes the cycle")
                .help("essential dependencies must form a DAG: break the cycle, or make one edge a `soft_depends_on` if that service works degraded without the other"),
        );
    }
}
