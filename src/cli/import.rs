//! `meeseeks import backstage PATH... [-C DIR] [--out FILE]`: reads Backstage catalog files,
//! writes (or updates) a graph fragment and adds it to graph.toml's `include` (see
//! `graph_ops::import` for the mapping and the re-import rules).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{DirFlag, Global};
use crate::error::{Error, Result};
use crate::graph_ops::import::{self, Catalog, Record};

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Subcommand, Debug)]
pub enum ImportSource {
    /// Backstage catalog YAML (catalog-info.yaml): Components and Resources become services.
    Backstage(BackstageArgs),
}

#[derive(Args, Debug)]
pub struct BackstageArgs {
    /// Catalog files, or directories searched for *.yaml / *.yml.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub dir: DirFlag,
    /// The fragment to write (default: DIR/imported/backstage.toml).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(g: &Global, a: &ImportArgs) -> Result<i32> {
    match &a.source {
        ImportSource::Backstage(b) => backstage(g, b),
    }
}

/// YAML files under `dir`, sorted, recursively (hidden directories skipped).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if p.is_dir() && !hidden {
            yaml_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file and a rename: a crash leaves the old
/// file or the new one, never half of one.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp-import");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

fn parse_toml(path: &Path) -> Result<Option<toml_edit::DocumentMut>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.parse().map(Some).map_err(|e: toml_edit::TomlError| {
            Error::Invalid(format!("error: {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

fn backstage(g: &Global, a: &BackstageArgs) -> Result<i32> {
    let dir = a.dir.path();
    let mut queue = Vec::new();
    for p in &a.paths {
        if p.is_dir() {
            yaml_files(p, &mut queue)?;
        } else {
            queue.push(p.clone());
        }
    }
    let mut catalog = Catalog::default();
    let mut seen = BTreeSet::new();
    let mut files = 0;
    while let Some(file) = (!queue.is_empty()).then(|| queue.remove(0)) {
        let key = file.canonicalize().unwrap_or_else(|_| file.clone());
        if !seen.insert(key) {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
        let parent = file.parent().unwrap_or(Path::new("."));
        catalog.read(&text, &file.display().to_string(), parent);
        files += 1;
        queue.append(&mut catalog.locations);
    }
    let entities = catalog.by_name();
    if !catalog.errors.is_empty() {
        let mut msg = String::new();
        for e in &catalog.errors {
            msg.push_str(&format!("error: {e}\n"));
        }
        msg.push_str(&format!(
            "{} problem(s) in the catalog; nothing was written\n",
            catalog.errors.len()
        ));
        return Err(Error::Invalid(msg));
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| dir.join("imported").join("backstage.toml"));
    let record_path = out.with_extension("catalog.json");
    let mut doc = parse_toml(&out)?.unwrap_or_default();
    let record: Record = match std::fs::read_to_string(&record_path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            Error::Invalid(format!(
                "error: {}:{}:{}: {e}\n  (the record of the last import; delete it to treat every key of the fragment as hand-written)\n",
                record_path.display(),
                e.line(),
                e.column()
            ))
        })?,
        Err(_) => Record::default(),
    };
    let (next, outcome) = import::apply(&mut doc, &record, &entities);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    write_atomic(&out, &doc.to_string())?;
    let mut rec = serde_json::to_string_pretty(&next).unwrap_or_default();
    rec.push('\n');
    write_atomic(&record_path, &rec)?;

    let include = include_fragment(&dir, &out)?;
    if !g.quiet {
        report(
            &catalog,
            &entities,
            &outcome,
            files,
            &out,
            include.as_deref(),
        );
    }
    Ok(crate::error::exit::OK)
}

/// Adds the fragment to DIR/graph.toml's `include` (creating graph.toml when there is none);
/// returns a line saying what happened, if anything did.
fn include_fragment(dir: &Path, out: &Path) -> Result<Option<String>> {
    let abs_dir = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    let abs_out = out
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot read {}", out.display()), e))?;
    let Ok(rel) = abs_out.strip_prefix(&abs_dir) else {
        return Ok(Some(format!(
            "warning: {} is outside {}: not added to graph.toml's include",
            out.display(),
            dir.display()
        )));
    };
    let rel = rel.to_string_lossy().replace('\\', "/");
    let graph_path = dir.join("graph.toml");
    let mut graph = parse_toml(&graph_path)?.unwrap_or_default();
    let changed = import::ensure_included(&mut graph, &rel)
        .map_err(|e| Error::Invalid(format!("error: {}: {e}\n", graph_path.display())))?;
    if !changed {
        return Ok(None);
    }
    write_atomic(&graph_path, &graph.to_string())?;
    Ok(Some(format!(
        "added \"{rel}\" to include in {}",
        graph_path.display()
    )))
}

fn report(
    catalog: &Catalog,
    entities: &std::collections::BTreeMap<String, import::Entity>,
    o: &import::Outcome,
    files: usize,
    out: &Path,
    include: Option<&str>,
) {
    let list = |v: &[String]| {
        let mut s = v.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 10 {
            s.push_str(&format!(", … ({} more)", v.len() - 10));
        }
        s
    };
    println!(
        "{} service(s) from {files} catalog file(s) into {}: {} added, {} updated, {} removed",
        entities.len(),
        out.display(),
        o.added.len(),
        o.updated.len(),
        o.removed.len()
    );
    if !catalog.ignored.is_empty() {
        let kinds: Vec<String> = catalog
            .ignored
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        println!("ignored (not services): {}", kinds.join(", "));
    }
    if !o.kept_edits.is_empty() {
        println!("kept as edited by hand: {}", list(&o.kept_edits));
    }
    if !o.kept_services.is_empty() {
        println!(
            "gone from the catalog, kept for their hand-written keys: {}",
            list(&o.kept_services)
        );
    }
    if !catalog.untiered.is_empty() {
        eprintln!(
            "warning: {} without the {} annotation got tier {} (least critical): {}",
            catalog.untiered.len(),
            import::TIER_ANNOTATION,
            import::DEFAULT_TIER,
            list(&catalog.untiered)
        );
    }
    let missing: BTreeSet<&str> = entities
        .values()
        .filter_map(|e| e.keys.get("depends_on"))
        .filter_map(|v| v.as_array())
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|d| !entities.contains_key(*d))
        .collect();
    if !missing.is_empty() {
        let m: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        eprintln!(
            "warning: dependencies not in the catalog files read (define them in graph.toml or another fragment): {}",
            list(&m)
        );
    }
    for w in &catalog.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(i) = include {
        println!("{i}");
    }
}
