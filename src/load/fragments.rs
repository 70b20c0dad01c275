//! Graph fragments: `include = ["teams/*.toml", "generated/**/*.toml"]` in graph.toml.
//!
//! A fragment holds `[services.*]` tables and may have its own `[vars]`, seen by the playbooks
//! of its services only (above graph.toml's `[vars]`, below the playbook's own). Globs are
//! relative to the DR directory and only graph.toml has them: a fragment cannot include
//! further files, so there are no include chains or cycles to follow; graph.toml matching one
//! of its own globs is an error. Files come in a fixed order (the globs as written, each one's
//! matches sorted by path; a file matched twice is read once), so a load never depends on the
//! order a directory lists its entries in.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diag, Diagnostics, MAX_GRAPH_BYTES, SourceFile};
use super::read::{Reader, SV};
use super::tree::{Doc, Table};
use crate::model::VarValue;

/// Keys of a fragment's top level.
const FRAGMENT_KEYS: &[&str] = &["services", "vars"];
/// Keys only graph.toml may have.
const GRAPH_ONLY_KEYS: &[&str] = &["defaults", "notify", "include", "state"];

/// The fragment files graph.toml's `include` (= `v`) names, in load order, each with its path
/// relative to `dir`.
pub(super) fn find(r: &mut Reader<'_>, dir: &Path, graph: &Path, v: &SV<'_>) -> Vec<PathBuf> {
    let Some(globs) = r.strings("include", v) else {
        return Vec::new();
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        // `*` stays within one directory, and does not pick up hidden (editor swap) files.
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let base = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let graph = std::fs::canonicalize(graph).unwrap_or_else(|_| graph.to_path_buf());
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (pattern, span) in globs {
        if Path::new(&pattern).is_absolute() || pattern.is_empty() {
            r.err(
                "include",
                span,
                format!("`{pattern}` is not a relative glob"),
            )
            .help(
                "include globs are relative to the DR directory, e.g. include = [\"teams/*.toml\"]",
            );
            continue;
        }
        let full = format!(
            "{}/{pattern}",
            glob::Pattern::escape(&base.to_string_lossy())
        );
        let paths = match glob::glob_with(&full, options) {
            Ok(p) => p,
            Err(e) => {
                r.err(
                    "include",
                    span,
                    format!("invalid glob `{pattern}`: {}", e.msg),
                )
                .help("globs use `*` (within a directory), `**` (any depth), `?` and `[abc]`");
                continue;
            }
        };
        let mut matched = Vec::new();
        for p in paths {
            match p {
                Ok(p) if p.is_dir() => {}
                Ok(p) => matched.push(p),
                Err(e) => {
                    r.err("io", span.clone(), format!("include `{pattern}`: {e}"));
                }
            }
        }
        matched.sort();
        if matched.is_empty() {
            r.warn(
                "include",
                span.clone(),
                format!("`{pattern}` matches no file"),
            )
            .help("check the glob (relative to the DR directory), or remove it");
        }
        for p in matched {
            let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if canonical == graph {
                r.err(
                    "include",
                    span.clone(),
                    format!("`{pattern}` matches {} itself", p.display()),
                )
                .help("graph.toml cannot include itself: narrow the glob, e.g. \"teams/*.toml\"");
                continue;
            }
            if seen.insert(canonical) {
                let rel = p.strip_prefix(base).map(Path::to_path_buf).unwrap_or(p);
                out.push(rel);
            }
        }
    }
    out
}

/// Reads the fragments `rel` (relative to `dir`); those that cannot be read are diagnostics
/// and left out. Returns each file read with its relative path.
pub(super) fn read(
    dir: &Path,
    rel: Vec<PathBuf>,
    diags: &mut Diagnostics,
) -> Vec<(PathBuf, Arc<SourceFile>)> {
    let mut out = Vec::with_capacity(rel.len());
    for r in rel {
        match SourceFile::read(&dir.join(&r), MAX_GRAPH_BYTES, "") {
            Ok(f) => out.push((r, f)),
            Err(d) => diags.push(*d),
        }
    }
    out
}

/// Parses `files`, half of them on a second thread when there are `threads_at` or more.
pub(super) fn parse<'f>(
    files: &'f [(PathBuf, Arc<SourceFile>)],
    diags: &mut Diagnostics,
    threads_at: usize,
) -> Vec<Doc<'f>> {
    let half = |part: &'f [(PathBuf, Arc<SourceFile>)]| {
        let mut d = Diagnostics::default();
        let docs: Vec<Doc<'f>> = part.iter().map(|(_, f)| super::parse(f, &mut d)).collect();
        (docs, d)
    };
    let (a, b) = files.split_at(files.len() / 2);
    let ((mut docs, d1), (more, d2)) =
        crate::util::join(files.len() >= threads_at, || half(a), || half(b));
    docs.extend(more);
    diags.items.extend(d1.items);
    diags.items.extend(d2.items);
    docs
}

/// Checks a fragment's top-level keys and returns its `[vars]`.
pub(super) fn read_root(r: &mut Reader<'_>, root: &Table<'_>) -> BTreeMap<String, VarValue> {
    for (k, _) in root.iter() {
        let key = k.get_ref().as_ref();
        if GRAPH_ONLY_KEYS.contains(&key) {
            let help = if key == "include" {
                "fragments cannot include other files (so includes never chain or loop): list this glob in graph.toml's `include`".to_string()
            } else {
                format!("move `{key}` to graph.toml: it applies to the whole graph")
            };
            r.err(
                "unknown-key",
                k.span(),
                format!("`{key}` belongs in graph.toml, not in a fragment"),
            )
            .help(help);
        }
    }
    r.unknown_keys_but(root, FRAGMENT_KEYS, GRAPH_ONLY_KEYS, "a graph fragment");
    let mut vars = BTreeMap::new();
    if let Some(v) = root.get("vars")
        && let Some(t) = r.table("vars", v)
    {
        for (k, v) in t.iter() {
            super::check_var_name(r, k.get_ref(), k.span());
            vars.insert(k.get_ref().to_string(), super::read::to_var(v.get_ref()));
        }
    }
    vars
}

/// A diagnostic for service `name` defined a second time at `span` of `file`, the first time
/// at line `first_line` of `first_file`.
pub(super) fn duplicate(
    name: &str,
    file: &Arc<SourceFile>,
    span: std::ops::Range<usize>,
    first_file: &Path,
    first_line: u32,
    dir: &Path,
) -> Diag {
    let shown = |p: &Path| super::diag::display_path(dir, p).display().to_string();
    Diag::error(
        "duplicate-service",
        format!(
            "service `{name}` is defined twice: in {} and in {}",
            shown(first_file),
            shown(&file.path)
        ),
    )
    .at(file, span)
    .label("defined again here")
    .help(format!(
        "the first definition is at {}:{first_line}; a service lives in one file: remove or rename one of them",
        shown(first_file)
    ))
}
