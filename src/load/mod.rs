//! Loading a DR directory: `graph.toml` + `playbooks/*.toml` → `Model`, with every problem
//! reported at once as a diagnostic pointing at file, line and column.
//!
//! Every file (graph, playbook, template) is parsed into the one span-preserving tree (`tree`,
//! the same semantics and syntax errors as `toml`'s `DeTable`, at a fraction of its cost on big
//! graphs) and read through the one typed reader (`read`), by hand instead of
//! `#[serde(deny_unknown_fields)]`, because serde stops at the first error and one broken
//! service must not hide the problems of the next. One shortcut: a big graph.toml of plain
//! service tables has each table made into a small tree of its own and read by the same
//! reader (`plain`); anything else loads the usual way.
//!
//! Modules, each using only those below it: `playbook` (the playbooks of a directory) →
//! `uses` (template expansion) → `steps` (steps and checks, template strings checked) →
//! `library` (finding templates) → `read` → `tree`, `diag`; `plain` (big graph files of plain
//! service tables) uses only `tree`.

pub mod diag;
mod fragments;
pub mod library;
mod plain;
mod playbook;
mod read;
mod steps;
pub mod tree;
mod uses;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

pub use diag::{Diag, Diagnostics, Severity, SourceFile};
use read::{Reader, SV};

use crate::model::{
    Backup, Defaults, Model, Notify, NotifyFormat, Service, Source, SvcId, VarValue,
};
use crate::util::{FastMap, PARALLEL_MIN_SCOPE, join};

/// Event names a `[[notify]]` hook may subscribe to: every run event, and those sent outside
/// a run.
pub fn notify_events() -> impl Iterator<Item = &'static str> + Clone {
    crate::events::Event::NAMES
        .iter()
        .chain(crate::events::WEBHOOK_ONLY)
        .copied()
}

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
    /// Keep what was read in `Model::sources` (runs hash their inputs from it).
    pub keep_sources: bool,
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
/// Diagnostics name files as the user typed them; the model's paths (`dir`, playbook and
/// template files) are absolute, decided once here: steps run with the DR directory as their
/// working directory, so a relative `{{ dr_dir }}` or `{{ run_dir }}` would point elsewhere.
pub fn load(path: &Path, opts: &LoadOptions) -> Loaded {
    let mut loaded = if path.is_file() {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let o = LoadOptions {
            graph_only: true,
            ..opts.clone()
        };
        load_files(&dir, path, &o)
    } else {
        load_files(path, &path.join("graph.toml"), opts)
    };
    if let Some(m) = loaded.model.as_mut() {
        absolutize(m);
    }
    loaded
}

/// `[state] store = "URL"`: an etcd URL, `file://PATH` or a path (relative to the DR
/// directory). Checked for shape here; the store itself is opened by the command.
fn read_state(r: &mut Reader<'_>, root: &tree::Table<'_>) -> Option<String> {
    let v = root.get("state")?;
    let t = r.table("state", v)?;
    r.unknown_keys(t, &["store"], "[state]");
    let v = t.get("store")?;
    let url = r.string("store", v)?;
    let scheme_ok =
        !url.contains("://") || url.starts_with("etcd://") || url.starts_with("file://");
    if url.trim().is_empty() || !scheme_ok {
        r.err("value", v.span(), format!("unknown store `{url}`"))
            .label("here")
            .help(
                "a state directory path (relative to this directory), file://PATH, or \
                 etcd://HOST:PORT[,HOST:PORT...]/PREFIX",
            );
        return None;
    }
    // An etcd URL is checked whole here (endpoints, prefix, options), so that its mistakes
    // point at this line rather than surface when a command connects.
    if url.starts_with("etcd://")
        && let Err(e) = crate::store::etcd::EtcdSpec::parse(&url, std::path::PathBuf::new())
    {
        let why = e.to_string();
        let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
        r.err("value", v.span(), format!("invalid etcd store: {why}"))
            .label("here");
        return None;
    }
    Some(url)
}

/// The store `dir`'s graph.toml declares (`[state] store`), for commands that do not load the
/// model (`status`, `runs`, `report`, `approve`, `cleanup`, `resume`, `serve`). No graph.toml:
/// none. The file is parsed only when a line could declare it (a big graph costs nothing).
pub fn declared_store(dir: &Path) -> crate::Result<Option<String>> {
    let path = dir.join("graph.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let could = text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("[state") || l.starts_with("state") || l.starts_with("\"state")
    });
    if !could {
        return Ok(None);
    }
    let mut diags = Diagnostics::default();
    let Some(file) = read_file(&path, &mut diags) else {
        return Err(crate::Error::Invalid(diags.render(false)));
    };
    let table = parse(&file, &mut diags);
    let mut r = Reader {
        file: &file,
        diags: &mut diags,
    };
    let store = read_state(&mut r, table.get_ref());
    if diags.has_errors() {
        return Err(crate::Error::Invalid(diags.render(false)));
    }
    Ok(store)
}

/// Makes the model's paths absolute (see [`load`]); the DR directory canonical, so that a
/// run's meta names it the same way from any working directory.
fn absolutize(m: &mut Model) {
    let typed = m.dir.clone();
    let dir = if typed.as_os_str().is_empty() {
        Path::new(".")
    } else {
        typed.as_path()
    };
    let canonical = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
    // Files inside the DR directory keep their place under its canonical path.
    let abs = |p: &Path| match p.strip_prefix(&typed) {
        Ok(rel) if !typed.as_os_str().is_empty() || p.is_relative() => canonical.join(rel),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    };
    for s in &mut m.services {
        if let Some(pb) = s.playbook.as_mut() {
            pb.file = abs(&pb.file);
            pb.templates = pb.templates.iter().map(|t| abs(t)).collect();
        }
    }
    let sources = std::mem::take(&mut m.sources.0);
    m.sources.0 = sources.into_iter().map(|(p, f)| (abs(&p), f)).collect();
    m.dir = canonical;
}

fn read_file(path: &Path, diags: &mut Diagnostics) -> Option<Arc<SourceFile>> {
    let missing = "a DR directory needs a graph.toml (see `meeseeks init`), or pass the directory as an argument";
    SourceFile::read(path, diag::MAX_GRAPH_BYTES, missing)
        .map_err(|d| diags.push(*d))
        .ok()
}

/// Parses any file the loader reads (graph, playbook, template) into the one spanned tree,
/// every syntax error a diagnostic.
fn parse<'i>(file: &'i Arc<SourceFile>, diags: &mut Diagnostics) -> tree::Doc<'i> {
    parse_text(file, &file.text, diags)
}

/// [`parse`] of `text`, the file's text or a start of it.
fn parse_text<'i>(file: &Arc<SourceFile>, text: &'i str, diags: &mut Diagnostics) -> tree::Doc<'i> {
    let (table, errors) = tree::parse(text);
    for e in errors {
        let span = e.span.unwrap_or(0..0);
        diags.push(
            Diag::error("syntax", format!("TOML syntax error: {}", e.message.trim()))
                .at(file, span)
                .label("here"),
        );
    }
    table
}

/// From this size on, a graph file's services are read without a tree of the whole file when
/// they are plain tables (see `plain`); smaller files are not worth a second way.
const PLAIN_FROM_BYTES: usize = 1 << 16;

fn load_files(dir: &Path, graph_path: &Path, opts: &LoadOptions) -> Loaded {
    load_files_with(dir, graph_path, opts, PLAIN_FROM_BYTES)
}

/// [`load_files`], trying `plain` from `plain_from` bytes of graph.toml on; when it does not
/// apply, everything is loaded again the usual way (`plain_from` = `usize::MAX`).
fn load_files_with(dir: &Path, graph_path: &Path, opts: &LoadOptions, plain_from: usize) -> Loaded {
    let usual = || load_files_with(dir, graph_path, opts, usize::MAX);
    let mut diags = Diagnostics::default();
    let Some(gfile) = read_file(graph_path, &mut diags) else {
        return Loaded { model: None, diags };
    };
    // Where the services part starts, when it may be read without a tree: the tree is then
    // of what comes before it only.
    let plain_at = (gfile.text.len() >= plain_from)
        .then(|| plain::services_start(&gfile.text))
        .flatten();
    let table = match plain_at {
        Some(at) => parse_text(&gfile, &gfile.text[..at], &mut diags),
        None => parse(&gfile, &mut diags),
    };
    if plain_at.is_some()
        && (diags.has_errors()
            || table.get_ref().contains_key("services")
            || table.get_ref().contains_key("include"))
    {
        return usual();
    }
    let mut r = Reader {
        file: &gfile,
        diags: &mut diags,
    };
    let root = table.get_ref();
    r.unknown_keys(
        root,
        &["defaults", "vars", "notify", "services", "include", "state"],
        "graph.toml",
    );
    let store = read_state(&mut r, root);

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
            vars.insert(k.get_ref().to_string(), read::to_var(v.get_ref()));
        }
    }

    let notify = root
        .get("notify")
        .map(|v| read_notify(&mut r, v, &vars))
        .unwrap_or_default();

    // Fragments: read, and parsed on two threads when there are many.
    let fragments = match root.get("include") {
        Some(v) => {
            let rel = fragments::find(&mut r, dir, graph_path, v);
            fragments::read(dir, rel, r.diags)
        }
        None => Vec::new(),
    };
    let docs = fragments::parse(&fragments, r.diags, FILES_THREADS_AT);
    // Every graph file, graph.toml first: `Service::file` indexes these.
    let sources: Vec<&Arc<SourceFile>> = std::iter::once(&gfile)
        .chain(fragments.iter().map(|(_, f)| f))
        .collect();
    let roots: Vec<&tree::Table<'_>> = std::iter::once(root)
        .chain(docs.iter().map(tree::Doc::get_ref))
        .collect();
    // Each fragment's own [vars], for the playbooks of its services (none for graph.toml's
    // services: they see the graph's [vars]).
    let mut scoped_vars = vec![BTreeMap::new()];
    for (i, root) in roots.iter().enumerate().skip(1) {
        let mut r = Reader {
            file: sources[i],
            diags: &mut diags,
        };
        scoped_vars.push(fragments::read_root(&mut r, root));
    }

    // The services in name order (ids are positions in it), the spans of their names, and
    // where their dependencies are written.
    let (mut services, name_spans, edges) = match plain_at {
        Some(at) => match read_plain(&gfile, at, &defaults) {
            Some(read) => read,
            None => return usual(),
        },
        None => read_trees(&roots, &sources, &gfile, dir, &defaults, &mut diags),
    };
    #[cfg(test)]
    tests::READ_PLAIN.set(plain_at.is_some());
    // What is left of `Model::finish`, in two halves: on a big graph the lines are numbered
    // on a second thread while this one derives the dependents and checks for cycles.
    let (lines, (dependents, soft_dependents)) = join(
        services.len() >= PARALLEL_MIN_SCOPE,
        || header_lines(&services, &name_spans, &sources),
        || {
            let reverse = crate::model::reverse_lists(&services);
            report_cycles(
                &services,
                &reverse.0,
                &edges,
                &name_spans,
                &sources,
                &mut diags,
            );
            reverse
        },
    );
    drop(edges);
    table.drop_in_parallel(PARALLEL_MIN_SCOPE);
    drop(docs);
    for (svc, line) in services.iter_mut().zip(lines) {
        svc.line = line;
    }
    let graph_name = graph_path
        .strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| graph_path.to_path_buf());
    let mut model = Model {
        dir: dir.to_path_buf(),
        files: std::iter::once(graph_name)
            .chain(fragments.iter().map(|(rel, _)| rel.clone()))
            .collect(),
        defaults,
        vars,
        notify,
        store,
        services,
        dependents,
        soft_dependents,
        sources: Default::default(),
    };
    if opts.keep_sources {
        for f in &sources {
            model.sources.0.insert(f.path.clone(), Source((*f).clone()));
        }
    }

    if !opts.graph_only {
        let at = playbook::GraphAt {
            files: &sources,
            name_spans: &name_spans,
            scoped_vars: &scoped_vars,
        };
        playbook::load_playbooks(&mut model, &at, opts, &mut diags);
    }
    diags.sort();
    let names: Vec<&str> = model.services.iter().map(|s| s.name.as_str()).collect();
    diags.fill_hints(&names);
    drop(names);
    Loaded {
        model: Some(model),
        diags,
    }
}

/// The services of the graph files' trees (`roots`, graph.toml's first), in name order, the
/// spans of their names and their dependency lists as written, with every diagnostic.
fn read_trees<'t, 'i>(
    roots: &[&'t tree::Table<'i>],
    sources: &[&Arc<SourceFile>],
    gfile: &Arc<SourceFile>,
    dir: &Path,
    defaults: &Defaults,
    diags: &mut Diagnostics,
) -> (Vec<Service>, Vec<Range<usize>>, Edges<'t, 'i>) {
    // Services in name order, and beside them their tables in the trees: dependency names
    // are resolved straight from there (no copy of 400 000 names, no second 400-byte record
    // per service).
    let mut entries: Vec<Entry<'_, '_>> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut any_services = false;
    for (i, root) in roots.iter().enumerate() {
        let mut r = Reader {
            file: sources[i],
            diags,
        };
        let Some(v) = root.get("services") else {
            continue;
        };
        any_services = true;
        let Some(t) = r.table("services", v) else {
            continue;
        };
        entries.reserve(t.len());
        names.reserve(t.len());
        for (k, v) in t.iter() {
            if v.get_ref().as_table().is_some() {
                entries.push(Entry {
                    table: v,
                    span: k.span(),
                    file: i as u32,
                });
                names.push(k.get_ref());
            } else {
                // Not a service: reported (and left out) here.
                read_service(&mut r, k.get_ref(), k.span(), v, defaults);
            }
        }
    }
    if !any_services {
        diags.push(
            Diag::error("no-services", "graph.toml declares no services")
                .at(gfile, 0..0)
                .help(
                    "add a table per service, e.g.\n[services.orders-db]\ntier = 0\nrto = \"20m\"",
                ),
        );
    }
    if sources.len() > 1 {
        // Each tree iterates its keys in order; together they are merged by name, a name
        // defined twice being an error at its second definition (in load order).
        (entries, names) = merge_by_name(entries, names, sources, dir, diags);
    }
    debug_assert!(names.is_sorted(), "ids are positions in name order");
    let ids = NameIds::new(&names);
    let (services, lists) = read_services(
        sources,
        diags,
        &entries,
        &names,
        &ids,
        defaults,
        PARALLEL_MIN_SCOPE,
    );
    drop(ids);
    let spans = entries.iter().map(|e| e.span.clone()).collect();
    (services, spans, Edges::Tree(lists))
}

/// The services of graph.toml from `at` on, read by `plain` (see there for when it
/// applies): in name order, dependencies resolved, with the spans of their names. `None`
/// when anything there is not plain, or the usual way would give a diagnostic (an unknown,
/// duplicate or self dependency, a name defined twice, ...): the caller then loads the usual
/// way, which reports it.
fn read_plain<'t, 'i>(
    file: &Arc<SourceFile>,
    at: usize,
    defaults: &Defaults,
) -> Option<(Vec<Service>, Vec<Range<usize>>, Edges<'t, 'i>)> {
    let text = file.text.as_str();
    // While reading, a service's `line` is where its name starts in the text, and its
    // dependency lists hold where their names are written (`plain::name_spans`); both are
    // resolved in place below, so that there is no second record per service to copy.
    let read = |name: &str, span: Range<usize>, table: &tree::Node<'_>| {
        let mut quiet = Diagnostics::default();
        let mut r = Reader {
            file,
            diags: &mut quiet,
        };
        let (mut svc, (deps, soft)) = read_service(&mut r, name, span.clone(), table, defaults)?;
        let list = |v: Option<&SV<'_>>| v.map_or(Some(Vec::new()), |v| plain::name_spans(text, v));
        svc.depends_on = list(deps)?;
        svc.soft_depends_on = list(soft)?;
        svc.line = u32::try_from(span.start).ok()?;
        quiet.items.is_empty().then_some(svc)
    };
    let par = text.len() - at >= PLAIN_THREADS_FROM;
    let [mut first, mut second] = plain::read(text, at, par, &read)?;
    // Each name as written in its header (the same as the service's own), so that the
    // services can be changed while the index borrows the names.
    let written = |s: &Service| &text[s.line as usize..s.line as usize + s.name.len()];
    // Name order (a generated file is in it already); a name twice is a TOML error.
    let sorted = |v: &[Service]| v.is_sorted_by(|a, b| a.name < b.name);
    let in_order = sorted(&first)
        && sorted(&second)
        && match (first.last(), second.first()) {
            (Some(a), Some(b)) => a.name < b.name,
            _ => true,
        };
    if !in_order {
        first.append(&mut second);
        first.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if first.windows(2).any(|w| w[0].name == w[1].name) {
            return None;
        }
    }
    if first.is_empty() && second.is_empty() {
        return None;
    }
    let names: Vec<&str> = first.iter().chain(&second).map(written).collect();
    let ids = NameIds::new(&names);
    let resolve = |lo: usize, services: &mut [Service]| -> Option<()> {
        let mut resolver = Resolver::new(&ids, names.len());
        for (k, svc) in services.iter_mut().enumerate() {
            let id = lo + k;
            let mut resolve = |list: &mut Vec<SvcId>, tag: usize| -> Option<()> {
                for x in list.iter_mut() {
                    *x = resolver.admit(id, tag, plain::written(text, *x)).ok()?;
                }
                list.sort_unstable();
                Some(())
            };
            resolve(&mut svc.depends_on, 2 * id)?;
            resolve(&mut svc.soft_depends_on, 2 * id + 1)?;
            let both = |d: &SvcId| svc.depends_on.binary_search(d).is_ok();
            if svc.soft_depends_on.iter().any(both) {
                return None;
            }
        }
        Some(())
    };
    // Each half where it was read (after a sort, all in the first).
    let lo = first.len();
    let (b, a) = join(
        par && !second.is_empty(),
        || resolve(lo, &mut second),
        || resolve(0, &mut first),
    );
    a?;
    b?;
    drop(ids);
    drop(names);
    // The first half has room for both (see `plain::read`).
    first.append(&mut second);
    let spans = first
        .iter()
        .map(|s| s.line as usize..s.line as usize + s.name.len())
        .collect();
    Some((first, spans, Edges::Plain))
}

/// From this many bytes of plain service tables on, they are read on two threads.
const PLAIN_THREADS_FROM: usize = 1 << 18;

/// Where each service's dependencies are written, for the diagnostic of a cycle.
enum Edges<'t, 'i> {
    /// The `depends_on` and `soft_depends_on` nodes, by service id.
    Tree(Vec<DepLists<'t, 'i>>),
    /// In the text after each service's name in its header (`name_spans`): its table.
    Plain,
}

impl Edges<'_, '_> {
    /// Where `from` first lists `to` in its `depends_on` (later ones were duplicates).
    fn span(
        &self,
        services: &[Service],
        name_spans: &[Range<usize>],
        text: &str,
        from: SvcId,
        to: SvcId,
    ) -> Range<usize> {
        let to = services[to].name.as_str();
        let found = match self {
            Edges::Tree(lists) => lists[from]
                .0
                .and_then(|v| v.get_ref().as_array())
                .and_then(|a| a.iter().find(|x| x.get_ref().as_str() == Some(to)))
                .map(|x| x.span()),
            Edges::Plain => plain::listed(text, name_spans[from].start, "depends_on", to),
        };
        found.unwrap_or(0..0)
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

fn read_notify(
    r: &mut Reader<'_>,
    v: &SV<'_>,
    vars: &BTreeMap<String, crate::model::VarValue>,
) -> Vec<Notify> {
    let Some(arr) = r.array("notify", v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in arr {
        let Some(t) = r.table("notify", item) else {
            continue;
        };
        r.unknown_keys(t, &["url", "events", "format", "headers"], "[[notify]]");
        let known = |name: &str| ["run_id", "mode"].contains(&name) || vars.contains_key(name);
        let url = match t.get("url") {
            Some(u) => r.string("url", u).filter(|s| {
                // A template (`{{ secret.HOOK }}`) is checked for what it may use, then the
                // URL's literal part like any other (it is rendered at send time).
                notify_template(r, s, u.span(), &known);
                r.http_url("url", s, u.span())
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
                if !notify_events().any(|e| e == name) {
                    let hint = crate::suggest::closest(&name, notify_events());
                    let mut d = r.err("value", span, format!("unknown event `{name}`"));
                    d.help = Some(match hint {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => {
                            format!("events: {}", notify_events().collect::<Vec<_>>().join(", "))
                        }
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
        let mut headers = BTreeMap::new();
        if let Some(h) = t.get("headers")
            && let Some(ht) = r.table("headers", h)
        {
            for (k, hv) in ht.iter() {
                if let Some(s) = r.string(k.get_ref(), hv) {
                    notify_template(r, &s, hv.span(), &known);
                    headers.insert(k.get_ref().to_string(), s);
                }
            }
        }
        if let Some(url) = url {
            out.push(Notify {
                url,
                events,
                format,
                headers,
                line: r.file.line_col(item.span().start).0,
            });
        }
    }
    out
}

/// Checks a `[[notify]]` URL or header that is a template: Jinja syntax, and only what is
/// known when a notification is sent (graph `[vars]`, `env.NAME`, `secret.NAME`, `run_id`,
/// `mode`). Returns whether `s` is a template.
fn notify_template(
    r: &mut Reader<'_>,
    s: &str,
    span: Range<usize>,
    known: &dyn Fn(&str) -> bool,
) -> bool {
    if !s.contains("{{") && !s.contains("{%") {
        return false;
    }
    let env = minijinja::Environment::new();
    let tmpl = match env.template_from_str(s) {
        Ok(t) => t,
        Err(e) => {
            r.err(
                "template",
                span,
                format!(
                    "template syntax error: {}",
                    e.detail().unwrap_or("invalid template")
                ),
            )
            .help("templates use Jinja syntax: {{ secret.HOOK_TOKEN }}");
            return true;
        }
    };
    let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    used.sort();
    for v in used {
        let (root, rest) = v
            .split_once('.')
            .map_or((v.as_str(), None), |(a, b)| (a, Some(b)));
        let ok = match root {
            "env" | "secret" => rest.is_some(),
            _ => known(root),
        };
        if !ok {
            r.err(
                "undefined-var",
                span.clone(),
                format!("`{v}` cannot be used in a [[notify]] template"),
            )
            .help("a webhook may use `secret.NAME`, `env.NAME`, graph [vars], `run_id` and `mode`");
        }
    }
    true
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

fn read_service<'t, 'i>(
    r: &mut Reader<'_>,
    name: &str,
    name_span: Range<usize>,
    v: &'t SV<'i>,
    defaults: &Defaults,
) -> Option<(Service, DepLists<'t, 'i>)> {
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
    // The key names in messages are only formatted when there is a problem to report.
    let Some(t) = v.get_ref().as_table() else {
        r.table(&format!("services.{name}"), v);
        return None;
    };
    // One pass over the keys (rather than a lookup per known key: 100 000 tables).
    let mut f = ServiceFields::default();
    for (k, v) in t.iter() {
        match k.get_ref().as_ref() {
            "tier" => f.tier = Some(v),
            "rto" => f.rto = Some(v),
            "rpo" => f.rpo = Some(v),
            "stateful" => f.stateful = Some(v),
            "backup" => f.backup = Some(v),
            "owner" => f.owner = Some(v),
            "tags" => f.tags = Some(v),
            "depends_on" => f.depends_on = Some(v),
            "soft_depends_on" => f.soft_depends_on = Some(v),
            "watch" => f.watch = Some(v),
            _ => f.unknown = true,
        }
    }
    if f.unknown {
        r.unknown_keys(t, SERVICE_KEYS, &format!("[services.{name}]"));
    }
    let mut svc = Service::new(name, 0, defaults.rto);
    match f.tier {
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
    if let Some(v) = f.rto
        && let Some(d) = r.positive_duration("rto", v)
    {
        svc.rto = d;
    }
    if let Some(v) = f.rpo {
        svc.rpo = r.duration("rpo", v);
    }
    if let Some(v) = f.stateful {
        svc.stateful = r.bool("stateful", v).unwrap_or(false);
    }
    if let Some(v) = f.watch {
        svc.watch = r.bool("watch", v).unwrap_or(false);
    }
    if let Some(v) = f.owner {
        svc.owner = r.string("owner", v);
    }
    if let Some(v) = f.tags {
        svc.tags = r.string_map("tags", v).unwrap_or_default();
    }
    if let Some(v) = f.backup
        && let Some(b) = r.table("backup", v)
    {
        r.unknown_keys(b, &["schedule", "retention", "check"], "backup");
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
        let check = b.get("check").and_then(|x| r.command("check", x));
        if let Some(schedule) = schedule {
            svc.backup = Some(Backup {
                schedule,
                retention,
                check,
            });
        }
    }
    Some((svc, (f.depends_on, f.soft_depends_on)))
}

/// Reads the service tables `entries` (in name order; `names[i]` is the name of entry `i`)
/// and resolves their dependency lists, in two halves (on two threads from `threads_at`
/// services on). The diagnostics come out in the order one pass would push them: every
/// table's first, then every dependency list's.
fn read_services<'t, 'i>(
    files: &[&Arc<SourceFile>],
    diags: &mut Diagnostics,
    entries: &[Entry<'t, 'i>],
    names: &[&str],
    ids: &NameIds<'_>,
    defaults: &Defaults,
    threads_at: usize,
) -> (Vec<Service>, Vec<DepLists<'t, 'i>>) {
    // `cap`: the first half is allocated at the size of both, so that appending the second
    // does not copy 100 000 services into a new array (the peak of a big load).
    let half = |lo: usize, hi: usize, cap: usize| {
        let mut read_diags = Diagnostics::default();
        let mut dep_diags = Diagnostics::default();
        let mut services = Vec::with_capacity(cap);
        let mut lists = Vec::with_capacity(cap);
        let mut resolver = Resolver::new(ids, names.len());
        for (id, e) in entries.iter().enumerate().take(hi).skip(lo) {
            let name = names[id];
            let file = files[e.file as usize];
            let mut r = Reader {
                file,
                diags: &mut read_diags,
            };
            let Some((mut svc, (deps, soft))) =
                read_service(&mut r, name, e.span.clone(), e.table, defaults)
            else {
                unreachable!("entries are tables");
            };
            svc.file = e.file as usize;
            let mut r = Reader {
                file,
                diags: &mut dep_diags,
            };
            let dep_ids = deps.map_or_else(Vec::new, |v| {
                resolver.resolve(&mut r, id, 2 * id, name, "depends_on", v, |_, _| {})
            });
            let soft_ids = soft.map_or_else(Vec::new, |v| {
                resolver.resolve(&mut r, id, 2 * id + 1, name, "soft_depends_on", v, |r, (d, span)| {
                    if dep_ids.binary_search(&d).is_ok() {
                        r.err(
                            "dependency-both",
                            span,
                            format!("`{}` is both an essential and an optional dependency", names[d]),
                        )
                        .help("keep it in `depends_on` (recovery needs it) or in `soft_depends_on` (works degraded without it), not both");
                    }
                })
            });
            svc.depends_on = dep_ids;
            svc.soft_depends_on = soft_ids;
            services.push(svc);
            lists.push((deps, soft));
        }
        (services, lists, read_diags, dep_diags)
    };
    let (n, mid) = (entries.len(), entries.len() / 2);
    let ((s2, l2, r2, d2), (mut services, mut lists, mut read, mut deps)) = join(
        n >= threads_at,
        || half(mid, n, n - mid),
        || half(0, mid, n),
    );
    services.extend(s2);
    lists.extend(l2);
    read.items.extend(r2.items);
    deps.items.extend(d2.items);
    diags.items.extend(read.items);
    diags.items.extend(deps.items);
    (services, lists)
}

/// From this many files on, half of the graph's fragments are parsed, and half of the
/// playbooks read, on a second thread (a thread costs tens of microseconds; opening and
/// reading a small file about ten).
const FILES_THREADS_AT: usize = 64;

/// A service table in one of the graph files.
struct Entry<'t, 'i> {
    table: &'t SV<'i>,
    /// Of the service's name in its `[services.NAME]` header.
    span: Range<usize>,
    /// Index of its file (0: graph.toml).
    file: u32,
}

/// The entries (and their names) of several files in name order, the files' order keeping
/// the first definition of a name defined twice; each later one is an error.
fn merge_by_name<'t, 'i, 'n>(
    entries: Vec<Entry<'t, 'i>>,
    names: Vec<&'n str>,
    files: &[&Arc<SourceFile>],
    dir: &Path,
    diags: &mut Diagnostics,
) -> (Vec<Entry<'t, 'i>>, Vec<&'n str>) {
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    // Stable: for one name, the file loaded first comes first.
    order.sort_by(|&a, &b| names[a as usize].cmp(names[b as usize]));
    let mut slots: Vec<Option<Entry<'t, 'i>>> = entries.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    let mut out_names: Vec<&'n str> = Vec::with_capacity(slots.len());
    for i in order {
        let e = slots[i as usize].take().expect("each entry once");
        let name = names[i as usize];
        if out_names.last() == Some(&name) {
            let first: &Entry<'_, '_> = out.last().expect("a name has an entry");
            let first_file = files[first.file as usize];
            diags.push(fragments::duplicate(
                name,
                files[e.file as usize],
                e.span.clone(),
                &first_file.path,
                first_file.line(first.span.start),
                dir,
            ));
            continue;
        }
        out.push(e);
        out_names.push(name);
    }
    (out, out_names)
}

/// The line of each service's header (its name at `spans[id]` in its file), one pass over
/// each file.
fn header_lines(
    services: &[Service],
    spans: &[Range<usize>],
    files: &[&Arc<SourceFile>],
) -> Vec<u32> {
    if files.len() == 1 {
        let starts: Vec<usize> = spans.iter().map(|s| s.start).collect();
        return files[0].lines(&starts);
    }
    let mut by_file: Vec<(Vec<usize>, Vec<usize>)> = vec![Default::default(); files.len()];
    for (i, (svc, span)) in services.iter().zip(spans).enumerate() {
        let f = &mut by_file[svc.file];
        f.0.push(i);
        f.1.push(span.start);
    }
    let mut out = vec![0; services.len()];
    for (f, (which, starts)) in by_file.iter().enumerate() {
        for (i, line) in which.iter().zip(files[f].lines(starts)) {
            out[*i] = line;
        }
    }
    out
}

/// The values of a service table, by key.
#[derive(Default)]
struct ServiceFields<'t, 'i> {
    tier: Option<&'t SV<'i>>,
    rto: Option<&'t SV<'i>>,
    rpo: Option<&'t SV<'i>>,
    stateful: Option<&'t SV<'i>>,
    backup: Option<&'t SV<'i>>,
    owner: Option<&'t SV<'i>>,
    tags: Option<&'t SV<'i>>,
    depends_on: Option<&'t SV<'i>>,
    soft_depends_on: Option<&'t SV<'i>>,
    watch: Option<&'t SV<'i>>,
    unknown: bool,
}

/// A service's `depends_on` and `soft_depends_on`, as written.
type DepLists<'t, 'i> = (Option<&'t SV<'i>>, Option<&'t SV<'i>>);

/// Service name → id. Names of up to 23 bytes (nearly all) are kept inside the hash table's
/// slots: resolving 400 000 dependency names was dominated by cache misses, first on the
/// slot and then on the name it pointed to in the 12 MB source text; now there is one. The
/// short names are in two tables by the last bit of their last byte, built side by side on
/// big graphs (100 000 inserts took ~13 ms on one thread).
struct NameIds<'a> {
    short: [FastMap<ShortName, u32>; 2],
    long: FastMap<&'a str, SvcId>,
}

/// Which of the two short-name tables holds `name`.
fn half_of(name: &str) -> usize {
    name.as_bytes().last().map_or(0, |b| (b & 1) as usize)
}

/// The longest name kept inside a hash table's slot.
const SHORT_NAME: usize = 23;

/// A name of up to 23 bytes, zero-padded, its length in the last byte.
#[derive(PartialEq, Eq)]
struct ShortName([u64; 3]);

impl std::hash::Hash for ShortName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for w in self.0 {
            state.write_u64(w);
        }
    }
}

impl ShortName {
    fn new(name: &str) -> Option<ShortName> {
        let b = name.as_bytes();
        if b.len() > SHORT_NAME {
            return None;
        }
        let mut buf = [0u8; 24];
        buf[..b.len()].copy_from_slice(b);
        buf[23] = b.len() as u8;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some(ShortName([word(0), word(1), word(2)]))
    }
}

impl<'a> NameIds<'a> {
    fn new(names: &[&'a str]) -> Self {
        let table = |half: usize| {
            let mut t: FastMap<ShortName, u32> =
                HashMap::with_capacity_and_hasher(names.len() / 2 + 1, Default::default());
            for (i, &n) in names.iter().enumerate() {
                if half_of(n) == half
                    && let Some(k) = ShortName::new(n)
                {
                    t.insert(k, i as u32);
                }
            }
            t
        };
        let (one, zero) = join(names.len() >= PARALLEL_MIN_SCOPE, || table(1), || table(0));
        let long = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.len() > SHORT_NAME)
            .map(|(i, &n)| (n, i))
            .collect();
        NameIds {
            short: [zero, one],
            long,
        }
    }

    fn get(&self, name: &str) -> Option<SvcId> {
        match ShortName::new(name) {
            Some(k) => self.short[half_of(name)].get(&k).map(|&i| i as SvcId),
            None => self.long.get(name).copied(),
        }
    }
}

/// Turns dependency names into ids, one list at a time, with a diagnostic for each name that
/// is unknown, the service itself, or listed twice.
struct Resolver<'a> {
    ids: &'a NameIds<'a>,
    /// `stamp[d]` = the list that last listed `d`: duplicates found in O(1), even in a list of
    /// 100 000 names.
    stamp: Vec<usize>,
}

/// Why a dependency name is not taken (see [`Resolver::admit`]).
enum Refused {
    Unknown,
    Itself,
    Twice,
}

impl<'a> Resolver<'a> {
    fn new(ids: &'a NameIds<'a>, n: usize) -> Self {
        Resolver {
            ids,
            stamp: vec![usize::MAX; n],
        }
    }

    /// The id of `name` as a dependency of service `id` in the list `list` (a number of
    /// its own for each list), or why it is not one: the one rule both ways of reading a
    /// graph apply.
    fn admit(&mut self, id: SvcId, list: usize, name: &str) -> Result<SvcId, Refused> {
        match self.ids.get(name) {
            None => Err(Refused::Unknown),
            Some(d) if d == id => Err(Refused::Itself),
            Some(d) if self.stamp[d] == list => Err(Refused::Twice),
            Some(d) => {
                self.stamp[d] = list;
                Ok(d)
            }
        }
    }

    /// Resolves the list `key` (= `v`) of service `id` (`svc`); `list` identifies the list.
    /// Returns the ids sorted, each once; `each` sees every kept id with its span.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        r: &mut Reader<'_>,
        id: SvcId,
        list: usize,
        svc: &str,
        key: &str,
        v: &SV<'_>,
        mut each: impl FnMut(&mut Reader<'_>, (SvcId, Range<usize>)),
    ) -> Vec<SvcId> {
        let Some(arr) = r.array(key, v) else {
            return Vec::new();
        };
        let mut out: Vec<SvcId> = Vec::with_capacity(arr.len());
        for item in arr {
            let Some(name) = r.str(key, item) else {
                continue;
            };
            let span = item.span();
            match self.admit(id, list, name) {
                Ok(d) => {
                    out.push(d);
                    each(r, (d, span));
                }
                Err(Refused::Itself) => {
                    r.err(
                        "self-dependency",
                        span,
                        format!("service `{name}` depends on itself"),
                    )
                    .help(format!("remove `{name}` from its own `{key}`"));
                }
                Err(Refused::Twice) => {
                    r.warn(
                        "duplicate-dependency",
                        span,
                        format!("`{name}` is listed twice in `{key}`"),
                    );
                }
                Err(Refused::Unknown) => {
                    let mut d = r.err(
                        "unknown-dependency",
                        span,
                        format!("`{svc}` {key} unknown service `{name}`"),
                    );
                    d.label = Some("no such service in graph.toml".into());
                    d.pending = Some(Box::new(diag::PendingHint {
                        name: name.to_string(),
                        found: "did you mean `{}`?".into(),
                        otherwise: format!("declare it with a [services.{name}] table"),
                    }));
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// Finds every cycle of essential dependencies (one per strongly connected component) and
/// reports it whole: `a -> b -> c -> a`. Linear: Tarjan's SCC plus one walk per component.
fn report_cycles(
    services: &[Service],
    dependents: &[Vec<SvcId>],
    edges: &Edges<'_, '_>,
    name_spans: &[Range<usize>],
    files: &[&Arc<SourceFile>],
    diags: &mut Diagnostics,
) {
    use petgraph::graph::{DiGraph, NodeIndex};
    let n = services.len();
    // The usual case, no cycle, is settled by one topological sort (Kahn) without building
    // a graph.
    let mut indeg: Vec<usize> = services.iter().map(|s| s.depends_on.len()).collect();
    let mut ready: Vec<SvcId> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut sorted = 0;
    while let Some(i) = ready.pop() {
        sorted += 1;
        for &j in &dependents[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.push(j);
            }
        }
    }
    if sorted == n {
        return;
    }
    drop(indeg);
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, 0);
    for _ in 0..n {
        g.add_node(());
    }
    for (i, s) in services.iter().enumerate() {
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
            let next = services[cur]
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
        let names: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
        let (from, to) = (cycle[0], cycle[1]);
        let file = files[services[from].file];
        let span = edges.span(services, name_spans, &file.text, from, to);
        diags.push(
            Diag::error("cycle", format!("dependency cycle: {}", names.join(" -> ")))
                .at(file, span)
                .label("this edge closes the cycle")
                .help("essential dependencies must form a DAG: break the cycle, or make one edge a `soft_depends_on` if that service works degraded without the other"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_ids_find_short_and_long_names() {
        let long = "a-service-name-longer-than-twenty-three-bytes";
        let names = ["", "a", "svc-000001", "exactly-23-bytes-long-x", long];
        assert_eq!(names[3].len(), 23);
        let ids = NameIds::new(&names);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(ids.get(n), Some(i), "{n}");
        }
        for missing in [
            "b",
            "svc-00000",
            "svc-0000010",
            "exactly-23-bytes-long-y",
            &long[1..],
        ] {
            assert_eq!(ids.get(missing), None, "{missing}");
        }
    }

    /// The two-thread reading of services gives what one thread gives: the same services,
    /// dependencies and diagnostics in the same order, with problems in both halves.
    #[test]
    fn services_read_on_two_threads_match_one_thread() {
        let mut text = String::from("[defaults]\nrto = \"1h\"\n");
        for i in 0..40 {
            text.push_str(&format!("[services.s{i:02}]\n"));
            if i % 7 != 3 {
                text.push_str("tier = 1\n");
            }
            match i % 5 {
                0 => text.push_str(&format!("depends_on = [\"s{:02}\", \"nope{i}\"]\n", i + 1)),
                1 => text.push_str(&format!("depends_on = [\"s{i:02}\"]\n")),
                2 => text.push_str(&format!(
                    "depends_on = [\"s{:02}\"]\nsoft_depends_on = [\"s{:02}\", \"s{:02}\"]\n",
                    (i + 3) % 40,
                    (i + 3) % 40,
                    (i + 1) % 40
                )),
                3 => text.push_str(&format!(
                    "depends_on = [\"s{:02}\", \"s{:02}\"]\nrto = 5\n",
                    (i + 2) % 40,
                    (i + 2) % 40
                )),
                _ => text.push_str("colour = \"red\"\n"),
            }
        }
        let file = SourceFile::new("graph.toml".into(), text);
        let (doc, errors) = tree::parse(&file.text);
        assert!(errors.is_empty(), "{errors:?}");
        let services = doc
            .get_ref()
            .get("services")
            .unwrap()
            .get_ref()
            .as_table()
            .unwrap();
        let entries: Vec<Entry<'_, '_>> = services
            .iter()
            .map(|(k, v)| Entry {
                table: v,
                span: k.span(),
                file: 0,
            })
            .collect();
        let names: Vec<&str> = services.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
        let ids = NameIds::new(&names);
        let read = |threads_at| {
            let mut diags = Diagnostics::default();
            let defaults = Defaults::default();
            let (svcs, _) = read_services(
                &[&file],
                &mut diags,
                &entries,
                &names,
                &ids,
                &defaults,
                threads_at,
            );
            let svcs: Vec<String> = svcs.iter().map(|s| format!("{s:?}")).collect();
            let diags: Vec<String> = diags
                .items
                .iter()
                .map(|d| format!("{} {:?} {} {:?}", d.code, d.span, d.message, d.help))
                .collect();
            (svcs, diags)
        };
        let one = read(usize::MAX);
        let two = read(0);
        assert_eq!(one, two);
        let codes: BTreeSet<&str> = one.1.iter().map(|d| d.split(' ').next().unwrap()).collect();
        for code in [
            "unknown-dependency",
            "self-dependency",
            "dependency-both",
            "duplicate-dependency",
            "missing-key",
            "unknown-key",
        ] {
            assert!(codes.contains(code), "{code} not in {codes:?}");
        }
    }

    /// A graph.toml of `n` plain services (a preamble, then `[services.*]` tables with every
    /// key `plain` takes, comments, blank lines, odd spacing), in name order or not.
    fn plain_graph(n: usize, seed: u64, sorted: bool) -> String {
        let mut x = seed | 1;
        let mut rand = move |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m as u64) as usize
        };
        let mut t = String::from(
            "# preamble\n[defaults]\nrto = \"2h\"\nparallel = 4\n\n[vars]\nregion = \"eu\"\n\n",
        );
        let mut order: Vec<usize> = (0..n).collect();
        if !sorted {
            for i in (1..n).rev() {
                order.swap(i, rand(i + 1));
            }
        }
        for &i in &order {
            t.push_str(&format!("[services.svc-{i:05}]   # service {i}\n"));
            t.push_str(&format!("tier = {}\n", rand(4)));
            if rand(4) > 0 {
                t.push_str(&format!("rto = \"{}m\"\n", 5 + rand(300)));
            }
            if i > 0 {
                let k = rand(5).min(i);
                let mut deps: Vec<usize> = (0..k).map(|_| rand(i)).collect();
                deps.sort_unstable();
                deps.dedup();
                let list: Vec<String> = deps.iter().map(|d| format!("\"svc-{d:05}\"")).collect();
                let trailing = if rand(3) == 0 && k > 0 { "," } else { "" };
                t.push_str(&format!("depends_on = [{}{trailing}]\n", list.join(", ")));
                if rand(5) == 0 {
                    let soft = (0..i).find(|d| !deps.contains(d)).unwrap_or(0);
                    if !deps.contains(&soft) {
                        t.push_str(&format!("\tsoft_depends_on = [ \"svc-{soft:05}\" ]\n"));
                    }
                }
            }
            match rand(6) {
                0 => t.push_str("stateful = true\nrpo = \"5m\"\n"),
                1 => t.push_str("watch = true\n"),
                2 => t.push_str(&format!("owner = \"team-{}\"\n", rand(9))),
                _ => {}
            }
            if rand(3) == 0 {
                t.push('\n');
            }
        }
        t
    }

    /// Loads `text` as graph.toml both ways: with `plain` tried at any size, and the usual
    /// way. The models and diagnostics must be the same. Returns whether `plain` read the
    /// services (rather than handing them back to the usual way).
    fn both_ways(text: &str) -> bool {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("graph.toml");
        std::fs::write(&path, text).unwrap();
        let opts = LoadOptions {
            graph_only: true,
            ..Default::default()
        };
        READ_PLAIN.set(false);
        let plain = load_files_with(tmp.path(), &path, &opts, 0);
        let plain_read = READ_PLAIN.get();
        let usual = load_files_with(tmp.path(), &path, &opts, usize::MAX);
        let shown = |m: &Option<Model>| {
            m.as_ref().map(|m| {
                format!(
                    "{:?}",
                    (
                        (&m.dir, &m.files, &m.defaults, &m.vars, &m.notify, &m.store),
                        (&m.services, &m.dependents, &m.soft_dependents)
                    )
                )
            })
        };
        assert!(shown(&plain.model) == shown(&usual.model), "{text}");
        let (pd, ud) = (plain.diags.render(false), usual.diags.render(false));
        assert!(pd == ud, "plain:\n{pd}\nusual:\n{ud}");
        plain_read
    }

    thread_local! {
        /// Whether the last load on this thread read its services the plain way.
        pub(super) static READ_PLAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn plain_graphs_load_as_the_usual_way_loads_them() {
        // Big enough for two threads (PLAIN_THREADS_FROM), sorted and not; small ones.
        let big = plain_graph(3000, 7, true);
        assert!(big.len() >= PLAIN_THREADS_FROM, "{}", big.len());
        assert!(both_ways(&big));
        assert!(both_ways(&plain_graph(3000, 11, false)));
        for seed in 1..20 {
            assert!(both_ways(&plain_graph(
                1 + seed as usize * 7,
                seed,
                seed % 2 == 0
            )));
        }
        // A cycle is read the plain way, and reported at the same edge.
        let cycle = plain_graph(50, 3, true).replace(
            "[services.svc-00000]",
            "[services.svc-00000]\ndepends_on = [\"svc-00049\"]",
        );
        assert!(both_ways(&cycle));
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("graph.toml"), &cycle).unwrap();
        let loaded = load(
            tmp.path(),
            &LoadOptions {
                graph_only: true,
                ..Default::default()
            },
        );
        assert!(
            loaded
                .diags
                .items
                .iter()
                .any(|d| d.code == "cycle" && d.span != (0..0))
        );
    }

    /// Whatever `plain` does not take, or that would give a diagnostic, goes the usual way:
    /// the same diagnostics, at the same places.
    #[test]
    fn plain_hands_anything_else_to_the_usual_way() {
        let base = plain_graph(40, 5, true);
        assert!(both_ways(&base));
        // A service added at the end (its name sorts last), with `extra` lines.
        let with = |extra: &str| format!("{base}[services.zz]\ntier = 1\n{extra}\n");
        let long = "a".repeat(130);
        let edits: Vec<(&str, String)> = vec![
            ("unknown dependency", with("depends_on = [\"svc-0001\"]")),
            ("self dependency", with("depends_on = [\"zz\"]")),
            (
                "listed twice",
                with("depends_on = [\"svc-00001\", \"svc-00001\"]"),
            ),
            (
                "both kinds",
                with("depends_on = [\"svc-00001\"]\nsoft_depends_on = [\"svc-00001\"]"),
            ),
            (
                "defined twice",
                format!("{base}[services.svc-00003]\ntier = 1\n"),
            ),
            ("unknown key", with("colour = \"red\"")),
            ("key twice", with("watch = true\nwatch = false")),
            ("bad rto", with("rto = \"5x\"")),
            ("bad tier", format!("{base}[services.zz]\ntier = 200\n")),
            ("no tier", format!("{base}[services.zz]\nrto = \"1h\"\n")),
            ("not a list", with("depends_on = \"svc-00001\"")),
            ("not names", with("depends_on = [1]")),
            ("tags", with("tags = { team = \"a\" }")),
            (
                "backup table",
                format!("{base}[services.svc-00019.backup]\nschedule = \"1h\"\n"),
            ),
            ("vars after", format!("{base}[vars]\nzone = \"b\"\n")),
            ("escape", with("owner = \"a\\\"b\"")),
            (
                "multi-line list",
                with("soft_depends_on = [\n  \"svc-00001\",\n]"),
            ),
            (
                "services table",
                base.replace("[vars]", "[services]\n[vars]"),
            ),
            (
                "name too long",
                format!("{base}[services.{long}]\ntier = 1\n"),
            ),
            (
                "preamble error",
                base.replace("parallel = 4", "parallel = "),
            ),
            ("CRLF", base.replace('\n', "\r\n")),
        ];
        assert!(
            both_ways(&with("depends_on = [\"svc-00001\"]")),
            "a plain addition"
        );
        for (what, text) in edits {
            assert_ne!(text, base, "{what}: the edit did not apply");
            assert!(!both_ways(&text), "{what}: taken the plain way");
        }
    }
}
