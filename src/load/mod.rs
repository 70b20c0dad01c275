//! Loading a DR directory: `graph.toml` + `playbooks/*.toml` → `Model`, with every problem
//! reported at once as a diagnostic pointing at file, line and column.
//!
//! Files are parsed into a span-preserving tree (`tree`, the same semantics and syntax errors
//! as `toml`'s `DeTable`, at a fraction of its cost on big graphs) and walked by hand instead
//! of `#[serde(deny_unknown_fields)]`, because serde stops at the first error and one broken
//! service must not hide the problems of the next.

pub mod diag;
mod gvalue;
pub mod library;
mod playbook;
pub mod tree;
mod uses;
mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

pub use diag::{Diag, Diagnostics, Severity, SourceFile};
use gvalue::{Reader, SV};

use crate::model::{Backup, Defaults, Model, Notify, NotifyFormat, Service, SvcId, VarValue};
use crate::util::{PARALLEL_MIN_SCOPE, join};

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
    "preflight.changed",
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

/// Parses a playbook or template: `toml`'s `DeTable`, which `uses` expansion builds on.
fn parse<'i>(
    file: &'i Arc<SourceFile>,
    diags: &mut Diagnostics,
) -> toml::Spanned<toml::de::DeTable<'i>> {
    let (table, errors) = toml::de::DeTable::parse_recoverable(&file.text);
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

/// Parses graph.toml into the compact tree (same syntax errors as [`parse`], a fraction of
/// its time and memory on a 100 000-service graph).
fn parse_graph<'i>(file: &'i Arc<SourceFile>, diags: &mut Diagnostics) -> tree::Doc<'i> {
    let (table, errors) = tree::parse(&file.text);
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

fn load_files(dir: &Path, graph_path: &Path, opts: &LoadOptions) -> Loaded {
    let mut diags = Diagnostics::default();
    let Some(gfile) = read_file(graph_path, &mut diags) else {
        return Loaded { model: None, diags };
    };
    let table = parse_graph(&gfile, &mut diags);
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
            vars.insert(k.get_ref().to_string(), gvalue::to_var(v.get_ref()));
        }
    }

    let notify = root
        .get("notify")
        .map(|v| read_notify(&mut r, v))
        .unwrap_or_default();

    // Services in name order (the tree iterates keys in order), and beside them their tables
    // in the tree: dependency names are resolved straight from there (no copy of 400 000
    // names, no second 400-byte record per service).
    let mut entries: Vec<(&SV<'_>, Range<usize>)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    if let Some(v) = root.get("services")
        && let Some(t) = r.table("services", v)
    {
        entries.reserve_exact(t.len());
        names.reserve_exact(t.len());
        for (k, v) in t.iter() {
            if v.get_ref().as_table().is_some() {
                entries.push((v, k.span()));
                names.push(k.get_ref());
            } else {
                // Not a service: reported (and left out) here.
                read_service(&mut r, k.get_ref(), k.span(), v, &defaults);
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
    debug_assert!(names.is_sorted(), "ids are positions in name order");
    let name_spans: Vec<Range<usize>> = entries.iter().map(|e| e.1.clone()).collect();
    let ids = NameIds::new(&names);
    let (mut services, lists) = read_services(
        &gfile,
        r.diags,
        &entries,
        &names,
        &ids,
        &defaults,
        PARALLEL_MIN_SCOPE,
    );
    drop(ids);
    // What is left of `Model::finish`, in two halves: on a big graph the name index (a copy
    // of every name) is built and the lines numbered on a second thread while this one
    // derives the dependents and checks for cycles.
    let ((index, lines), (dependents, soft_dependents)) = join(
        services.len() >= PARALLEL_MIN_SCOPE,
        || {
            let starts: Vec<usize> = name_spans.iter().map(|s| s.start).collect();
            (crate::model::name_index(&services), gfile.lines(&starts))
        },
        || {
            let reverse = crate::model::reverse_lists(&services);
            report_cycles(&services, &reverse.0, &lists, &gfile, r.diags);
            reverse
        },
    );
    drop(lists);
    drop(names);
    drop(entries);
    table.drop_in_parallel(PARALLEL_MIN_SCOPE);
    for (svc, line) in services.iter_mut().zip(lines) {
        svc.line = line;
    }
    let mut model = Model {
        dir: dir.to_path_buf(),
        defaults,
        vars,
        notify,
        services,
        index,
        dependents,
        soft_dependents,
    };

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

fn check_var_name(r: &mut impl VarErrors, name: &str, span: Range<usize>) {
    if BUILTIN_VARS.contains(&name) || name == "env" || name == "secret" || name == "with" {
        let d = Diag::error(
            "reserved-var",
            format!("`{name}` is a built-in variable and cannot be redefined"),
        )
        .at(r.file(), span)
        .help(format!(
            "rename it; built-ins are {}, env, secret",
            BUILTIN_VARS.join(", ")
        ));
        r.push(d);
    }
}

/// Where [`check_var_name`] reports: the graph's reader or a playbook's.
trait VarErrors {
    fn file(&self) -> &Arc<SourceFile>;
    fn push(&mut self, d: Diag);
}

impl VarErrors for gvalue::Reader<'_> {
    fn file(&self) -> &Arc<SourceFile> {
        self.file
    }
    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }
}

impl VarErrors for value::Reader<'_> {
    fn file(&self) -> &Arc<SourceFile> {
        self.file
    }
    fn push(&mut self, d: Diag) {
        self.diags.push(d);
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
        let check = read_backup_check(r, b);
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

/// `backup.check`: the command `meeseeks preflight` runs to learn the last backup's time.
fn read_backup_check(r: &mut Reader<'_>, b: &tree::Table<'_>) -> Option<String> {
    let v = b.get("check")?;
    let s = r.string("check", v)?;
    if s.trim().is_empty() {
        r.err("value", v.span(), "`backup.check` is empty")
            .help("a read-only command printing the last backup time (RFC 3339), e.g. check = \"pgbackrest info --output=json | jq -r '.[0].backup[-1].timestamp.stop | todate'\"");
        return None;
    }
    Some(s)
}

/// Reads the service tables `entries` (in name order; `names[i]` is the name of entry `i`)
/// and resolves their dependency lists, in two halves (on two threads from `threads_at`
/// services on). The diagnostics come out in the order one pass would push them: every
/// table's first, then every dependency list's.
fn read_services<'t, 'i>(
    file: &Arc<SourceFile>,
    diags: &mut Diagnostics,
    entries: &[(&'t SV<'i>, Range<usize>)],
    names: &[&str],
    ids: &NameIds<'_>,
    defaults: &Defaults,
    threads_at: usize,
) -> (Vec<Service>, Vec<DepLists<'t, 'i>>) {
    let half = |lo: usize, hi: usize| {
        let mut read_diags = Diagnostics::default();
        let mut dep_diags = Diagnostics::default();
        let mut services = Vec::with_capacity(hi - lo);
        let mut lists = Vec::with_capacity(hi - lo);
        let mut resolver = Resolver {
            ids,
            names,
            stamp: vec![usize::MAX; names.len()],
        };
        for (id, (v, span)) in entries.iter().enumerate().take(hi).skip(lo) {
            let name = names[id];
            let mut r = Reader {
                file,
                diags: &mut read_diags,
            };
            let Some((mut svc, (deps, soft))) =
                read_service(&mut r, name, span.clone(), v, defaults)
            else {
                unreachable!("entries are tables");
            };
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
    let ((s2, l2, r2, d2), (mut services, mut lists, mut read, mut deps)) =
        join(n >= threads_at, || half(mid, n), || half(0, mid));
    services.extend(s2);
    lists.extend(l2);
    read.items.extend(r2.items);
    deps.items.extend(d2.items);
    diags.items.extend(read.items);
    diags.items.extend(deps.items);
    (services, lists)
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

/// A small fast hasher for service names: each 8-byte word is mixed in with a folded 64×64→128
/// bit multiply (as wyhash and foldhash do), several times faster than SipHash on short names.
/// The input is the user's own graph file: hash flooding is not a threat worth SipHash's cost
/// on 400 000 lookups. (rustc's FxHash was tried first: its low bits collide on names like
/// `svc-000123`.)
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl NameHasher {
    fn add(&mut self, word: u64) {
        let m = u128::from(self.0 ^ word) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.add(bytes.len() as u64 ^ 0xa076_1d64_78bd_642f);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<NameHasher>>;

/// Service name → id. Names of up to 23 bytes (nearly all) are kept inside the hash table's
/// slots: resolving 400 000 dependency names was dominated by cache misses, first on the
/// slot and then on the name it pointed to in the 12 MB source text; now there is one.
struct NameIds<'a> {
    short: HashMap<ShortName, u32, std::hash::BuildHasherDefault<NameHasher>>,
    long: FastMap<&'a str, SvcId>,
}

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
        if b.len() > 23 {
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
        let mut ids = NameIds {
            short: HashMap::with_capacity_and_hasher(names.len(), Default::default()),
            long: FastMap::default(),
        };
        for (i, &n) in names.iter().enumerate() {
            match ShortName::new(n) {
                Some(k) => {
                    ids.short.insert(k, i as u32);
                }
                None => {
                    ids.long.insert(n, i);
                }
            }
        }
        ids
    }

    fn get(&self, name: &str) -> Option<SvcId> {
        match ShortName::new(name) {
            Some(k) => self.short.get(&k).map(|&i| i as SvcId),
            None => self.long.get(name).copied(),
        }
    }
}

/// Turns dependency names into ids, one list at a time, with a diagnostic for each name that
/// is unknown, the service itself, or listed twice.
struct Resolver<'a> {
    ids: &'a NameIds<'a>,
    /// All names in order, for "did you mean" hints.
    names: &'a [&'a str],
    /// `stamp[d]` = the list that last listed `d`: duplicates found in O(1), even in a list of
    /// 100 000 names.
    stamp: Vec<usize>,
}

impl Resolver<'_> {
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
            match self.ids.get(name) {
                Some(d) if d == id => {
                    r.err(
                        "self-dependency",
                        span,
                        format!("service `{name}` depends on itself"),
                    )
                    .help(format!("remove `{name}` from its own `{key}`"));
                }
                Some(d) => {
                    if self.stamp[d] == list {
                        r.warn(
                            "duplicate-dependency",
                            span,
                            format!("`{name}` is listed twice in `{key}`"),
                        );
                    } else {
                        self.stamp[d] = list;
                        out.push(d);
                        each(r, (d, span));
                    }
                }
                None => {
                    let hint = crate::util::closest(name, self.names.iter().copied());
                    let mut d = r.err(
                        "unknown-dependency",
                        span,
                        format!("`{svc}` {key} unknown service `{name}`"),
                    );
                    d.label = Some("no such service in graph.toml".into());
                    d.help = Some(match hint {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => format!("declare it with a [services.{name}] table"),
                    });
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
    lists: &[DepLists<'_, '_>],
    file: &Arc<SourceFile>,
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
        // The first time `to` is listed in `from`'s depends_on (later ones were duplicates).
        let span = lists[from]
            .0
            .and_then(|v| v.get_ref().as_array())
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get_ref().as_str() == Some(services[to].name.as_str()))
            })
            .map(|x| x.span())
            .unwrap_or(0..0);
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
        let entries: Vec<(&SV<'_>, Range<usize>)> =
            services.iter().map(|(k, v)| (v, k.span())).collect();
        let names: Vec<&str> = services.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
        let ids = NameIds::new(&names);
        let read = |threads_at| {
            let mut diags = Diagnostics::default();
            let defaults = Defaults::default();
            let (svcs, _) = read_services(
                &file, &mut diags, &entries, &names, &ids, &defaults, threads_at,
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
}
