//! `playbooks/<service>.toml` → `Playbook`, with template variables checked at load time.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::LoadOptions;
use super::diag::{Diag, Diagnostics, MAX_PLAYBOOK_BYTES, SourceFile};
use super::library::Cache;
use super::read::{Reader, SV, to_var};
use super::steps::{Ctx, Defined, read_check, read_preflight, read_rpo_probe, read_step};
use super::tree;
use crate::model::{Model, Playbook, Source, Step, VarValue};

const PLAYBOOK_KEYS: &[&str] = &[
    "description",
    "vars",
    "steps",
    "checks",
    "rollback",
    "cleanup",
    "preflight",
    "rpo_probe",
];
/// Where the services were defined: diagnostics about a service point there, and a
/// fragment's `[vars]` reach the playbooks of its services.
pub(super) struct GraphAt<'a> {
    /// The graph files (`Service::file` indexes them).
    pub files: &'a [&'a Arc<SourceFile>],
    /// By service id: the span of its name in its `[services.NAME]` header.
    pub name_spans: &'a [Range<usize>],
    /// By file: the variables its services' playbooks see above graph.toml's.
    pub scoped_vars: &'a [BTreeMap<String, VarValue>],
}

pub(super) fn load_playbooks(
    model: &mut Model,
    at: &GraphAt<'_>,
    opts: &LoadOptions,
    diags: &mut Diagnostics,
) {
    let pdir = model.dir.join("playbooks");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    match std::fs::read_dir(&pdir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let p = e.path();
                // Anything named *.toml but a directory is read, so that a FIFO or a device
                // is refused with a reason instead of skipped in silence. The entry's type
                // comes with the directory listing (no stat per file); a link is followed.
                let dir = match e.file_type() {
                    Ok(t) if t.is_symlink() => p.is_dir(),
                    Ok(t) => t.is_dir(),
                    Err(_) => p.is_dir(),
                };
                if p.extension().is_some_and(|x| x == "toml") && !dir {
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
    // One directory: ordering by file name is ordering by path, without comparing the
    // common prefix component by component.
    files.sort_unstable_by(|a, b| a.file_name().cmp(&b.file_name()));
    // Read, then parsed, on two threads when there are many (opening, reading and parsing
    // are most of a small playbook's cost); checked below in file order, one after the
    // other, as before (templates are cached and their errors reported once, at their first
    // use in that order). Parsed and checked a block at a time: a tree is several times its
    // text, and 100 000 of them at once would double a big load's memory.
    let half = files.len() / 2;
    let two = files.len() >= super::FILES_THREADS_AT;
    let read = |part: &[std::path::PathBuf]| -> Vec<Result<Arc<SourceFile>, Box<Diag>>> {
        part.iter()
            .map(|p| SourceFile::read(p, MAX_PLAYBOOK_BYTES, ""))
            .collect()
    };
    let (mut read_files, second) =
        crate::util::join(two, || read(&files[..half]), || read(&files[half..]));
    read_files.extend(second);
    let (texts, mut read_errors): (Vec<_>, Vec<_>) = read_files
        .into_iter()
        .map(|r| match r {
            Ok(f) => (Some(f), None),
            Err(d) => (None, Some(d)),
        })
        .unzip();
    // Each file's tree and its syntax errors (the first of its own diagnostics).
    fn parse(part: &[Option<Arc<SourceFile>>]) -> Vec<Option<(tree::Doc<'_>, Diagnostics)>> {
        part.iter()
            .map(|f| {
                let f = f.as_ref()?;
                let mut own = Diagnostics::default();
                Some((super::parse(f, &mut own), own))
            })
            .collect()
    }
    const BLOCK: usize = 4096;
    if opts.keep_sources {
        model.sources.0.reserve(files.len());
    }
    let graph_vars: BTreeSet<&str> = model.vars.keys().map(String::as_str).collect();
    let cli_vars: BTreeSet<&str> = opts.cli_vars.keys().map(String::as_str).collect();
    let mut loaded: Vec<(usize, Playbook)> = Vec::new();
    let cache = RefCell::new(Cache::new(model.dir.clone()));
    for (b, block) in texts.chunks(BLOCK).enumerate() {
        let mid = block.len() / 2;
        let (mut parsed, second) = crate::util::join(
            block.len() >= super::FILES_THREADS_AT,
            || parse(&block[..mid]),
            || parse(&block[mid..]),
        );
        parsed.extend(second);
        for (j, doc) in parsed.into_iter().enumerate() {
            let i = b * BLOCK + j;
            let path = &files[i];
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let (Some(file), Some((doc, mut own))) = (&texts[i], doc) else {
                if let Some(d) = read_errors[i].take() {
                    diags.push(*d);
                }
                continue;
            };
            let id = model.id(stem);
            if id.is_none() {
                diags.push(
                    Diag::error(
                        "unknown-playbook",
                        format!("playbook for `{stem}`, which is not a service in graph.toml"),
                    )
                    .at(file, 0..0)
                    .hint(
                        stem,
                        "did you mean playbooks/{}.toml? The file name must be the service name"
                            .into(),
                        format!("add [services.{stem}] to graph.toml, or remove this file"),
                    ),
                );
            }
            let defined = Defined {
                graph: &graph_vars,
                cli: &cli_vars,
            };
            let stateful = id.map(|id| model.services[id].stateful);
            let scoped = id.map(|id| &at.scoped_vars[model.services[id].file]);
            // Its own list (from its syntax errors on), so that counting its errors does not
            // count the graph's (thousands, in a broken generated graph) once per playbook.
            let pb = read_playbook(
                file, &doc, path, &defined, &cache, stateful, scoped, &mut own,
            );
            if opts.keep_sources {
                model.sources.0.insert(path.clone(), Source(file.clone()));
            }
            diags.items.append(&mut own.items);
            if let (Some(id), Some(pb)) = (id, pb) {
                loaded.push((id, pb));
            }
        }
    }
    for (id, pb) in loaded {
        model.services[id].playbook = Some(Box::new(pb));
    }
    if opts.keep_sources {
        for def in cache.borrow().defs.values().flatten() {
            if let super::library::Origin::Local(p) = &def.origin {
                model.sources.0.insert(p.clone(), Source(def.file.clone()));
            }
        }
    }
    // Thousands of services without a playbook (a freshly imported graph) must not cost a
    // diagnostic each: the first few are shown where they are, the rest counted in one line.
    const SHOWN: usize = 5;
    let mut missing = (0..model.services.len()).filter(|&id| model.services[id].playbook.is_none());
    let shown: Vec<usize> = missing.by_ref().take(SHOWN).collect();
    let more = missing.count();
    let diag = |msg: String| {
        if opts.require_playbooks {
            Diag::error("no-playbook", msg)
        } else {
            Diag::warning("no-playbook", msg)
        }
    };
    for id in shown {
        let s = &model.services[id];
        let msg = format!(
            "service `{}` has no playbook (expected {})",
            s.name,
            Path::new("playbooks")
                .join(format!("{}.toml", s.name))
                .display()
        );
        diags.push(diag(msg).at(at.files[s.file], at.name_spans[id].clone()).help(format!(
            "create playbooks/{}.toml with its recovery steps and checks (`meeseeks init` scaffolds one)",
            s.name
        )));
    }
    if more > 0 {
        diags.push(diag(format!(
            "... and {more} more services have no playbook"
        )));
    }
}

/// Reads one playbook from its tree `table`; `diags` holds this playbook's diagnostics only.
#[allow(clippy::too_many_arguments)]
fn read_playbook(
    file: &Arc<SourceFile>,
    table: &tree::Doc<'_>,
    path: &Path,
    defined: &Defined<'_>,
    cache: &RefCell<Cache>,
    stateful: Option<bool>,
    scoped: Option<&BTreeMap<String, VarValue>>,
    diags: &mut Diagnostics,
) -> Option<Playbook> {
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
    // A fragment's [vars], below the playbook's own (read next, they replace these).
    for (k, v) in scoped.into_iter().flatten() {
        cx.playbook_vars.insert(k.clone());
        pb.vars.insert(k.clone(), v.clone());
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
    if let Some(v) = root.get("checks") {
        pb.checks = read_unique(&mut cx, v, "checks", "check", |cx, item, i| {
            read_check(cx, item, i).map(|c| (c.name.clone(), c.line, c))
        });
    }
    if let Some(v) = root.get("preflight") {
        pb.preflight = read_unique(&mut cx, v, "preflight", "preflight probe", |cx, item, i| {
            read_preflight(cx, item, i).map(|p| (p.name.clone(), p.line, p))
        });
    }
    if let Some(v) = root.get("rpo_probe") {
        if stateful == Some(false) {
            cx.r.err(
                "rpo-probe",
                v.span(),
                "[rpo_probe] is for stateful services: this service is not `stateful = true`",
            )
            .help("set `stateful = true` on the service in graph.toml, or remove [rpo_probe]");
        }
        pb.rpo_probe = read_rpo_probe(&mut cx, v);
    }
    pb.checks.append(&mut cx.extra_checks);
    if pb.steps.is_empty() && pb.checks.is_empty() && !cx.r.diags.has_errors() {
        cx.r.err(
            "empty-playbook",
            0..0,
            "this playbook has no [[steps]] and no [[checks]]: recovering the service would do and verify nothing",
        )
        .help("add its recovery steps, or at least a [[checks]] entry telling when the service is up");
    }
    pb.secrets = std::mem::take(&mut cx.secrets);
    pb.envs = std::mem::take(&mut cx.envs);
    pb.templates = std::mem::take(&mut cx.templates);
    Some(pb)
}

/// The entries of the array `v` (`[[section]]`) read by `read`, each name used once.
fn read_unique<T>(
    cx: &mut Ctx<'_, '_>,
    v: &SV<'_>,
    section: &str,
    what: &str,
    mut read: impl FnMut(&mut Ctx<'_, '_>, &SV<'_>, usize) -> Option<(String, u32, T)>,
) -> Vec<T> {
    let Some(arr) = cx.r.array(section, v) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(arr.len());
    let mut names: HashMap<String, u32> = HashMap::new();
    for (i, item) in arr.iter().enumerate() {
        let Some((name, line, x)) = read(cx, item, i) else {
            continue;
        };
        if let Some(first) = names.get(&name) {
            cx.r.err(
                "duplicate-name",
                item.span(),
                format!("duplicate {what} name `{name}`"),
            )
            .help(format!(
                "the first {what} with this name is on line {first}; names must be unique"
            ));
        } else {
            names.insert(name, line);
        }
        out.push(x);
    }
    out
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
