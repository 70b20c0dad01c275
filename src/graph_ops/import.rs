//! `meeseeks import backstage`: a graph fragment from Backstage catalog files.
//!
//! Read from each YAML document (files may hold several, `---`-separated):
//!
//! | Backstage | graph fragment |
//! |---|---|
//! | `kind: Component` / `kind: Resource` | one `[services.NAME]` (other kinds — System, API, Domain, Group, … — are ignored; `kind: Location` targets that are relative files are followed) |
//! | `metadata.name` (`metadata.namespace`) | `NAME` (`NAMESPACE.NAME` outside the `default` namespace) |
//! | annotation `meeseeks.io/tier` | `tier` (an integer 0–100); absent: the `default_tier` (3) and a warning |
//! | annotation `meeseeks.io/rto` | `rto` (a duration, `"30m"`); absent: none (graph `[defaults] rto`) |
//! | `spec.owner` (`group:default/team-a`) | `owner = "team-a"` |
//! | `spec.dependsOn` (`component:default/x`, `resource:x`) | `depends_on` (Component and Resource refs only) |
//! | `spec.lifecycle`, `spec.type`, `spec.system` | `tags.lifecycle`, `tags.type`, `tags.system` |
//!
//! **Re-import** updates only what came from the catalog. The values the previous import wrote
//! are kept in a record beside the fragment (`<fragment>.catalog.json`); a key whose value in
//! the fragment still equals its recorded value is the catalog's and is updated (or removed
//! when the catalog no longer has it); a key whose value differs was edited by hand and is
//! kept, and so is every key the import never writes (`rpo`, `watch`, `soft_depends_on`, …).
//! A service gone from the catalog is removed, unless it carries hand-edited or hand-added
//! keys (then it is kept, and said). Importing the same catalog twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, Table, Value};

/// Annotation holding a component's tier.
pub const TIER_ANNOTATION: &str = "meeseeks.io/tier";
/// Annotation holding a component's RTO (a duration).
pub const RTO_ANNOTATION: &str = "meeseeks.io/rto";
/// Tier of a component without [`TIER_ANNOTATION`]: the least critical of the usual four,
/// so that nothing unannotated outranks what a team declared critical.
pub const DEFAULT_TIER: u32 = 3;

/// Keys an import writes, in the order they are written.
const CATALOG_KEYS: &[&str] = &["tier", "rto", "owner", "depends_on", "tags"];

/// One Component or Resource of the catalog, as the fragment will hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    /// Where it was defined: `file (document N)`.
    pub origin: String,
    /// Catalog key → value (JSON, to compare and record).
    pub keys: BTreeMap<&'static str, serde_json::Value>,
}

/// What reading catalog files found.
#[derive(Debug, Default)]
pub struct Catalog {
    pub entities: Vec<Entity>,
    /// Files named by `kind: Location` targets, to read too.
    pub locations: Vec<PathBuf>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Entities of other kinds (System, API, …) left out, by kind.
    pub ignored: BTreeMap<String, usize>,
    /// Components / resources without a tier annotation.
    pub untiered: Vec<String>,
}

#[derive(Deserialize)]
struct RawEntity {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: Option<yaml_serde::Value>,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, yaml_serde::Value>,
}

/// `[kind:][namespace/]name` → (kind, service name); `default_kind` when the ref has none.
fn parse_ref(r: &str, default_kind: &str) -> (String, String) {
    let (kind, rest) = match r.split_once(':') {
        Some((k, rest)) => (k.to_ascii_lowercase(), rest),
        None => (default_kind.to_string(), r),
    };
    let name = match rest.split_once('/') {
        Some((ns, n)) => service_name(Some(ns), n),
        None => service_name(None, rest),
    };
    (kind, name)
}

/// The service name of a Backstage entity: `name` in the `default` namespace, else
/// `namespace.name` (both are `[a-z0-9A-Z._-]`, which service names accept).
fn service_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        None | Some("default") | Some("") => name.to_string(),
        Some(ns) => format!("{ns}.{name}"),
    }
}

fn scalar(v: &yaml_serde::Value) -> Option<String> {
    match v {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Catalog {
    /// Reads one catalog file's text; `source` names it in messages, `dir` resolves Location
    /// targets.
    pub fn read(&mut self, text: &str, source: &str, dir: &Path) {
        for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
            let n = i + 1;
            let raw = match Option::<RawEntity>::deserialize(doc) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    let at = e
                        .location()
                        .map(|l| format!("{source}:{}:{}", l.line(), l.column()))
                        .unwrap_or_else(|| format!("{source} (document {n})"));
                    self.errors
                        .push(format!("{at}: not a Backstage catalog entity: {e}"));
                    // A syntax error ends the stream: later documents cannot be found.
                    if e.location().is_some() && !e.to_string().contains("invalid type") {
                        break;
                    }
                    continue;
                }
            };
            self.entity(raw, &format!("{source} (document {n})"), dir);
        }
    }

    fn entity(&mut self, raw: RawEntity, origin: &str, dir: &Path) {
        let kind = raw.kind.unwrap_or_default();
        let spec = raw.spec.unwrap_or(yaml_serde::Value::Null);
        let field = |k: &str| spec.get(k).and_then(scalar);
        match kind.as_str() {
            "Component" | "Resource" => {}
            "Location" => {
                let mut targets: Vec<String> = field("target").into_iter().collect();
                if let Some(yaml_serde::Value::Sequence(s)) = spec.get("targets") {
                    targets.extend(s.iter().filter_map(scalar));
                }
                for t in targets {
                    if t.contains("://") {
                        self.warnings.push(format!(
                            "{origin}: Location target {t} is a URL: not followed (pass the file)"
                        ));
                    } else {
                        self.locations.push(dir.join(t));
                    }
                }
                return;
            }
            "" => {
                self.errors.push(format!(
                    "{origin}: no `kind`: not a Backstage catalog entity"
                ));
                return;
            }
            other => {
                *self.ignored.entry(other.to_string()).or_default() += 1;
                return;
            }
        }
        let Some(name) = raw.metadata.name.as_deref() else {
            self.errors
                .push(format!("{origin}: {kind} without `metadata.name`"));
            return;
        };
        let name = service_name(raw.metadata.namespace.as_deref(), name);
        let origin = format!("{origin}, {kind} {name}");
        if !crate::load::valid_service_name(&name) {
            self.errors.push(format!(
                "{origin}: `{name}` cannot be a service name (letters, digits, `-`, `_`, `.`)"
            ));
            return;
        }
        let mut keys = BTreeMap::new();
        let ann = &raw.metadata.annotations;
        match ann.get(TIER_ANNOTATION).map(scalar) {
            Some(Some(t)) => match t.trim().parse::<u32>() {
                Ok(t) if t <= 100 => {
                    keys.insert("tier", t.into());
                }
                _ => {
                    self.errors.push(format!(
                        "{origin}: annotation {TIER_ANNOTATION}: \"{t}\" is not a tier (an integer, 0 = most critical)"
                    ));
                    return;
                }
            },
            Some(None) => {
                self.errors.push(format!(
                    "{origin}: annotation {TIER_ANNOTATION} must be a string such as \"1\""
                ));
                return;
            }
            None => {
                self.untiered.push(name.clone());
                keys.insert("tier", DEFAULT_TIER.into());
            }
        }
        if let Some(v) = ann.get(RTO_ANNOTATION) {
            match scalar(v) {
                Some(s) if humantime::parse_duration(s.trim()).is_ok_and(|d| !d.is_zero()) => {
                    keys.insert("rto", s.trim().into());
                }
                other => {
                    self.errors.push(format!(
                        "{origin}: annotation {RTO_ANNOTATION}: {} is not a duration such as \"30m\" or \"1h30m\"",
                        other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "a non-string".into())
                    ));
                    return;
                }
            }
        }
        if let Some(o) = field("owner") {
            keys.insert("owner", parse_ref(&o, "group").1.into());
        }
        let mut deps = BTreeSet::new();
        if let Some(yaml_serde::Value::Sequence(s)) = spec.get("dependsOn") {
            for r in s.iter().filter_map(scalar) {
                // dependsOn refs name their kind; a bare name is read as a component.
                let (k, n) = parse_ref(&r, "component");
                if k == "component" || k == "resource" {
                    if n != name {
                        deps.insert(n);
                    }
                } else {
                    self.warnings.push(format!(
                        "{origin}: dependsOn {r}: only components and resources become dependencies"
                    ));
                }
            }
        }
        if !deps.is_empty() {
            keys.insert("depends_on", deps.into_iter().collect::<Vec<_>>().into());
        }
        let mut tags = serde_json::Map::new();
        for k in ["lifecycle", "system", "type"] {
            if let Some(v) = field(k) {
                let v = if k == "system" {
                    parse_ref(&v, "system").1
                } else {
                    v
                };
                tags.insert(k.to_string(), v.into());
            }
        }
        if !tags.is_empty() {
            keys.insert("tags", tags.into());
        }
        self.entities.push(Entity { name, origin, keys });
    }

    /// Entities by name; the same name twice is an error naming both places.
    pub fn by_name(&mut self) -> BTreeMap<String, Entity> {
        let mut out: BTreeMap<String, Entity> = BTreeMap::new();
        for e in std::mem::take(&mut self.entities) {
            if let Some(first) = out.get(&e.name) {
                if first.keys != e.keys {
                    self.errors.push(format!(
                        "service `{}` is defined twice: {} and {}",
                        e.name, first.origin, e.origin
                    ));
                }
                continue;
            }
            out.insert(e.name.clone(), e);
        }
        out
    }
}

/// What the previous import wrote, per service and key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    pub services: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

pub const RECORD_SCHEMA: &str = "meeseeks.import-record/v1";

/// How one re-import changed the fragment.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// `service.key` kept as edited by hand although the catalog says otherwise.
    pub kept_edits: Vec<String>,
    /// Services gone from the catalog, kept for their hand-written keys.
    pub kept_services: Vec<String>,
}

/// A TOML value as JSON, to compare with the record (formatting and comments ignored).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::String(s) => s.value().clone().into(),
        Value::Integer(i) => (*i.value()).into(),
        Value::Float(f) => (*f.value()).into(),
        Value::Boolean(b) => (*b.value()).into(),
        Value::Datetime(d) => d.value().to_string().into(),
        Value::Array(a) => a.iter().map(to_json).collect::<Vec<_>>().into(),
        Value::InlineTable(t) => t
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn item_json(i: &Item) -> Option<serde_json::Value> {
    match i {
        Item::Value(v) => Some(to_json(v)),
        Item::Table(t) => Some(
            t.iter()
                .filter_map(|(k, v)| Some((k.to_string(), item_json(v)?)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        ),
        _ => None,
    }
}

fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Number(n) => n.as_i64().unwrap_or_default().into(),
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Array(a) => a.iter().map(from_json).collect::<toml_edit::Array>().into(),
        serde_json::Value::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in o {
                t.insert(k, from_json(v));
            }
            t.into()
        }
        serde_json::Value::Null => "".into(),
    }
}

const HEADER: &str = "\
# Imported from the Backstage catalog by `meeseeks import backstage`.
# Re-importing updates only the keys that came from the catalog (tier, rto, owner, depends_on,
# tags): a value edited here by hand is kept, and so is any key added here (rpo, watch, …).
";

/// Applies the catalog to the fragment `doc` (empty for a first import), given the record of
/// the previous import; returns the new record and what changed.
pub fn apply(
    doc: &mut DocumentMut,
    record: &Record,
    catalog: &BTreeMap<String, Entity>,
) -> (Record, Outcome) {
    let mut out = Outcome::default();
    let mut next = Record {
        schema: RECORD_SCHEMA.into(),
        services: BTreeMap::new(),
    };
    if doc.as_table().is_empty() && doc.decor().prefix().is_none() {
        doc.decor_mut().set_prefix(HEADER);
    }
    if !doc.contains_table("services") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("services", Item::Table(t));
    }
    let services = doc["services"]
        .as_table_mut()
        .expect("`services` was just made a table");
    let empty = BTreeMap::new();
    for (name, e) in catalog {
        let prev = record.services.get(name).unwrap_or(&empty);
        if !services.contains_key(name) {
            services.insert(name, Item::Table(Table::new()));
            out.added.push(name.clone());
        }
        let Some(t) = services[name.as_str()].as_table_mut() else {
            // A hand-written non-table: leave it, the loader will say what is wrong.
            out.kept_services.push(name.clone());
            continue;
        };
        let mut changed = false;
        for &k in CATALOG_KEYS {
            let cur = t.get(k).and_then(item_json);
            let was = prev.get(k);
            let new = e.keys.get(k);
            let mine = match (&cur, was) {
                // Absent (never written, or deleted by hand): the catalog's to fill.
                (None, _) => true,
                // As the last import wrote it: the catalog's.
                (Some(c), Some(w)) => c == w,
                // Present and never written by an import: hand-written.
                (Some(_), None) => false,
            };
            if !mine {
                if new.is_some_and(|n| Some(n) != cur.as_ref()) {
                    out.kept_edits.push(format!("{name}.{k}"));
                }
                // Still recorded as the catalog last wrote it, so that it stays a hand edit.
                if let Some(w) = was {
                    next.services
                        .entry(name.clone())
                        .or_default()
                        .insert(k.into(), w.clone());
                }
                continue;
            }
            match new {
                Some(n) => {
                    if cur.as_ref() != Some(n) {
                        t.insert(k, Item::Value(from_json(n)));
                        changed = true;
                    }
                    next.services
                        .entry(name.clone())
                        .or_default()
                        .insert(k.into(), n.clone());
                }
                None => {
                    if cur.is_some() {
                        t.remove(k);
                        changed = true;
                    }
                }
            }
        }
        if changed && !out.added.contains(name) {
            out.updated.push(name.clone());
        }
    }
    // Services the previous import wrote that the catalog no longer has.
    for (name, prev) in &record.services {
        if catalog.contains_key(name) {
            continue;
        }
        let Some(t) = services.get(name).and_then(Item::as_table) else {
            continue;
        };
        let all_mine = t.iter().all(|(k, v)| {
            prev.get(k)
                .is_some_and(|w| item_json(v).as_ref() == Some(w))
        });
        if all_mine {
            services.remove(name);
            out.removed.push(name.clone());
        } else {
            out.kept_services.push(name.clone());
        }
    }
    (next, out)
}

/// Adds `entry` (a path relative to the DR directory) to graph.toml's top-level `include`
/// unless one of its globs already matches it; returns whether graph.toml changed. Comments
/// and formatting of graph.toml are kept (toml_edit).
pub fn ensure_included(graph: &mut DocumentMut, entry: &str) -> Result<bool, String> {
    let matches = |glob: &str| {
        globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(entry))
    };
    match graph.get_mut("include") {
        None => {
            let mut a = toml_edit::Array::new();
            a.push(entry);
            // Top-level keys must come before the first table: toml_edit places a new
            // root key there, after the file's header comment if it has one.
            let header = take_header(graph);
            graph.insert("include", Item::Value(a.into()));
            if let Some(mut k) = graph.as_table_mut().key_mut("include") {
                k.leaf_decor_mut().set_prefix(header);
            }
            Ok(true)
        }
        Some(Item::Value(Value::Array(a))) => {
            if a.iter().any(|v| v.as_str().is_some_and(matches)) {
                return Ok(false);
            }
            a.push(entry);
            Ok(true)
        }
        Some(_) => Err("`include` in graph.toml is not an array of globs".into()),
    }
}

/// Takes the header comment off the document's first table: the comment lines before it up
/// to the last blank line (the lines right above a table are about that table), leaving one
/// blank line before the table.
fn take_header(graph: &mut DocumentMut) -> String {
    let Some((_, first)) = graph.as_table_mut().iter_mut().next() else {
        return String::new();
    };
    let table = match first {
        Item::Table(t) if t.is_implicit() => match t.iter_mut().next() {
            Some((_, Item::Table(sub))) => sub,
            _ => return String::new(),
        },
        Item::Table(t) => t,
        _ => return String::new(),
    };
    let prefix = table
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    match prefix.rfind("\n\n") {
        Some(i) => {
            table.decor_mut().set_prefix(prefix[i + 1..].to_string());
            prefix[..i + 1].to_string()
        }
        None => {
            table.decor_mut().set_prefix(format!("\n{prefix}"));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        assert_eq!(
            parse_ref("component:default/x", "c"),
            ("component".into(), "x".into())
        );
        assert_eq!(
            parse_ref("resource:x", "c"),
            ("resource".into(), "x".into())
        );
        assert_eq!(
            parse_ref("Component:ops/x", "c"),
            ("component".into(), "ops.x".into())
        );
        assert_eq!(
            parse_ref("team-a", "group"),
            ("group".into(), "team-a".into())
        );
    }

    #[test]
    fn include_added_once_and_globs_respected() {
        let mut g: DocumentMut = "# the graph\n\n# defaults\n[defaults]\nrto = \"1h\"\n"
            .parse()
            .unwrap();
        assert!(ensure_included(&mut g, "imported/backstage.toml").unwrap());
        assert!(!ensure_included(&mut g, "imported/backstage.toml").unwrap());
        assert_eq!(
            g.to_string(),
            "# the graph\ninclude = [\"imported/backstage.toml\"]\n\n# defaults\n[defaults]\nrto = \"1h\"\n"
        );
        // A comment right above the first table is that table's.
        let mut g: DocumentMut = "# web\n[services.web]\ntier = 1\n".parse().unwrap();
        assert!(ensure_included(&mut g, "a.toml").unwrap());
        assert_eq!(
            g.to_string(),
            "include = [\"a.toml\"]\n\n# web\n[services.web]\ntier = 1\n"
        );
        let mut g: DocumentMut = "include = [\"imported/*.toml\"]\n".parse().unwrap();
        assert!(!ensure_included(&mut g, "imported/backstage.toml").unwrap());
        let mut g: DocumentMut = "include = [\"teams/*.toml\"]\n".parse().unwrap();
        assert!(ensure_included(&mut g, "imported/backstage.toml").unwrap());
        assert_eq!(
            g.to_string(),
            "include = [\"teams/*.toml\", \"imported/backstage.toml\"]\n"
        );
        let mut g: DocumentMut = "include = \"x\"\n".parse().unwrap();
        assert!(ensure_included(&mut g, "a.toml").is_err());
    }
}
