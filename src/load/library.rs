//! Reusable playbook templates (SPEC §9): finding them and reading their header.
//!
//! A template is looked up in `DIR/playbooks/_templates/<name>.toml` first, then in the
//! library shipped inside the binary (the repository's `playbooks/` directory, embedded by
//! `build.rs`). This module reads a template's `description` and `[params]`; its `[[steps]]`
//! and `[[checks]]` are read by the playbook loader when a `uses` step is expanded (see
//! `load::uses`), with the same rules and diagnostics as a playbook's own steps.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diag, Diagnostics, SourceFile};
use super::read::{Reader, SV};
use super::tree::Value;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/library.rs"));
}

/// Directory (under a DR directory's `playbooks/`) holding the DR directory's own templates.
pub const LOCAL_DIR: &str = "_templates";

const TEMPLATE_KEYS: &[&str] = &["description", "params", "steps", "checks"];
const PARAM_KEYS: &[&str] = &["required", "default", "doc", "type"];

/// Where a template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `DIR/playbooks/_templates/<name>.toml`.
    Local(PathBuf),
    /// The library embedded in the binary.
    Builtin,
}

/// The declared type of a parameter: values are checked against it where they are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Bool,
    Duration,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
        }
    }

    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" => ParamType::String,
            "integer" => ParamType::Integer,
            "bool" => ParamType::Bool,
            "duration" => ParamType::Duration,
            _ => return None,
        })
    }
}

/// A parameter value: TOML scalars only (it is spliced into strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    /// The text spliced in place of `{{ with.NAME }}`.
    pub fn text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// As a TOML literal (for `meeseeks templates` and `init`).
    pub fn toml(&self) -> String {
        match self {
            Scalar::String(s) => toml_string(s),
            other => other.text(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Scalar::String(_) => "a string",
            Scalar::Integer(_) => "an integer",
            Scalar::Float(_) => "a float",
            Scalar::Bool(_) => "a boolean",
        }
    }
}

/// A TOML basic string literal.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub required: bool,
    pub default: Option<Scalar>,
    pub doc: String,
    pub ty: Option<ParamType>,
    /// Span of the parameter's name in the template file.
    pub span: Range<usize>,
}

/// A template's header, and its file (re-parsed for its steps at each expansion).
#[derive(Debug, Clone)]
pub struct TemplateDef {
    pub name: String,
    pub origin: Origin,
    pub file: Arc<SourceFile>,
    pub description: String,
    /// In file order.
    pub params: Vec<Param>,
}

impl TemplateDef {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Template names are paths under `_templates/`: keep them to simple segments so a name can
/// never climb out of the directory.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
}

/// The embedded library: (name, TOML source), sorted by name.
pub fn builtin() -> &'static [(&'static str, &'static str)] {
    embedded::EMBEDDED
}

fn local_root(dr_dir: &Path) -> PathBuf {
    dr_dir.join("playbooks").join(LOCAL_DIR)
}

/// Names of the templates in `DIR/playbooks/_templates/`, sorted.
pub fn local_names(dr_dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "toml")
                && let Ok(rel) = p.with_extension("").strip_prefix(root)
            {
                let name: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(name.join("/"));
            }
        }
    }
    let root = local_root(dr_dir);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Every template visible from `dr_dir` (local ones shadow the library), sorted by name.
pub fn all_names(dr_dir: Option<&Path>) -> Vec<(String, Origin)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    if let Some(d) = dr_dir {
        for n in local_names(d) {
            let path = local_root(d).join(format!("{n}.toml"));
            seen.insert(n.clone());
            out.push((n, Origin::Local(path)));
        }
    }
    for (n, _) in builtin() {
        if seen.insert(n.to_string()) {
            out.push((n.to_string(), Origin::Builtin));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The source of template `name`: local first, then the library. `Ok(None)` when unknown;
/// a local file that cannot be read is a diagnostic.
fn find_source(
    dr_dir: Option<&Path>,
    name: &str,
) -> Result<Option<(Origin, Arc<SourceFile>)>, Box<Diag>> {
    if !valid_name(name) {
        return Ok(None);
    }
    if let Some(d) = dr_dir {
        let path = local_root(d).join(format!("{name}.toml"));
        if std::fs::symlink_metadata(&path).is_ok() {
            let file = SourceFile::read(&path, super::diag::MAX_PLAYBOOK_BYTES, "")?;
            return Ok(Some((Origin::Local(path), file)));
        }
    }
    Ok(builtin().iter().find(|(n, _)| *n == name).map(|(n, text)| {
        (
            Origin::Builtin,
            SourceFile::new(
                PathBuf::from(format!("<library>/{n}.toml")),
                text.to_string(),
            ),
        )
    }))
}

/// Finds and reads template `name`'s header. `Ok(None)`: no such template, or one that cannot
/// be used; problems in (or reading) the template file are diagnostics pointing into it.
pub fn load(
    dr_dir: Option<&Path>,
    name: &str,
    diags: &mut Diagnostics,
) -> std::io::Result<Option<TemplateDef>> {
    match find_source(dr_dir, name) {
        Ok(Some((origin, file))) => Ok(read_header(name, origin, &file, diags)),
        Ok(None) => Ok(None),
        Err(d) => {
            diags.push(*d);
            Ok(None)
        }
    }
}

/// Reads `description` and `[params]`; `None` when the file is too broken to use.
pub fn read_header(
    name: &str,
    origin: Origin,
    file: &Arc<SourceFile>,
    diags: &mut Diagnostics,
) -> Option<TemplateDef> {
    let before = diags.errors();
    let table = super::parse(file, diags);
    let root = table.get_ref();
    let mut r = Reader { file, diags };
    r.unknown_keys(root, TEMPLATE_KEYS, "a template");
    let description = match root.get("description") {
        Some(v) => r.string("description", v).unwrap_or_default(),
        None => {
            r.err(
                "template-def",
                0..0,
                format!("template `{name}` has no `description`"),
            )
            .help("start the file with description = \"what this template does\"");
            String::new()
        }
    };
    let mut params = Vec::new();
    if let Some(v) = root.get("params")
        && let Some(t) = r.table("params", v)
    {
        for (k, pv) in t.iter() {
            let pname = k.get_ref().to_string();
            if let Some(p) = read_param(&mut r, &pname, k.span(), pv) {
                params.push(p);
            }
        }
    }
    params.sort_by_key(|p| p.span.start);
    for key in ["steps", "checks"] {
        if let Some(v) = root.get(key) {
            r.array(key, v);
        }
    }
    if root.get("steps").is_none() && root.get("checks").is_none() {
        r.err(
            "template-def",
            0..0,
            format!("template `{name}` has neither [[steps]] nor [[checks]]"),
        );
    }
    if r.diags.errors() > before {
        return None;
    }
    Some(TemplateDef {
        name: name.to_string(),
        origin,
        file: file.clone(),
        description,
        params,
    })
}

fn read_param(r: &mut Reader<'_>, name: &str, span: Range<usize>, v: &SV<'_>) -> Option<Param> {
    let what = format!("[params.{name}]");
    let t = r.table(&what, v)?;
    r.unknown_keys(t, PARAM_KEYS, &what);
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        r.err(
            "template-def",
            span.clone(),
            format!("parameter name `{name}` must be letters, digits and `_`"),
        )
        .help("it is referred to as {{ with.NAME }}");
    }
    let required = t
        .get("required")
        .and_then(|x| r.bool("required", x))
        .unwrap_or(false);
    let ty = match t.get("type") {
        Some(x) => {
            let s = r.string("type", x)?;
            match ParamType::parse(&s) {
                Some(ty) => Some(ty),
                None => {
                    r.err("value", x.span(), format!("unknown parameter type `{s}`"))
                        .help("use one of: string, integer, bool, duration");
                    None
                }
            }
        }
        None => None,
    };
    let doc = match t.get("doc") {
        Some(x) => r.string("doc", x).unwrap_or_default(),
        None => {
            r.err(
                "template-def",
                span.clone(),
                format!("parameter `{name}` has no `doc`"),
            )
            .help("document every parameter: doc = \"what it is, with an example\"");
            String::new()
        }
    };
    let default = match t.get("default") {
        Some(x) => match check_value(r, name, ty, x) {
            Ok(s) => Some(s),
            Err(()) => return None,
        },
        None => None,
    };
    match (required, &default) {
        (true, Some(_)) => {
            r.err(
                "template-def",
                span.clone(),
                format!("parameter `{name}` is required and has a default"),
            )
            .help("drop `required = true` or the `default`");
        }
        (false, None) => {
            r.err(
                "template-def",
                span.clone(),
                format!("parameter `{name}` needs `required = true` or a `default`"),
            );
        }
        _ => {}
    }
    Some(Param {
        name: name.to_string(),
        required,
        default,
        doc,
        ty,
        span,
    })
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Checks a parameter value (a `with` entry or a default) against the declared type. A string
/// holding a template (`"{{ replicas }}"`) is accepted for any type: its value is only known
/// when the run renders it.
pub(super) fn check_value(
    r: &mut Reader<'_>,
    name: &str,
    ty: Option<ParamType>,
    v: &SV<'_>,
) -> Result<Scalar, ()> {
    let scalar = match v.get_ref() {
        Value::String(s) => Scalar::String(s.to_string()),
        Value::Integer(i) => match i.to_i64() {
            Some(n) => Scalar::Integer(n),
            None => {
                r.err("type", v.span(), format!("`{name}`: integer out of range"));
                return Err(());
            }
        },
        Value::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => Scalar::Float(x),
            Err(_) => {
                r.err("type", v.span(), format!("`{name}`: invalid float"));
                return Err(());
            }
        },
        Value::Boolean(b) => Scalar::Bool(*b),
        other => {
            r.err(
                "param-type",
                v.span(),
                format!(
                    "parameter `{name}` must be a string, number or boolean, found {}",
                    other.type_str()
                ),
            )
            .label("not a scalar")
            .help("template parameters are spliced into strings: give a single value");
            return Err(());
        }
    };
    let Some(ty) = ty else { return Ok(scalar) };
    let ok = match (&scalar, ty) {
        (Scalar::String(s), _) if is_template(s) => true,
        (Scalar::String(_), ParamType::String) => true,
        (Scalar::Integer(_), ParamType::Integer) => true,
        (Scalar::Bool(_), ParamType::Bool) => true,
        (Scalar::String(s), ParamType::Duration) => {
            if let Err(e) = crate::model::duration::parse(s) {
                r.err(
                    "param-type",
                    v.span(),
                    format!("parameter `{name}`: invalid duration \"{s}\": {e}"),
                )
                .label("expected a duration")
                .help("durations look like \"90s\", \"5m\", \"1h30m\"");
                return Err(());
            }
            true
        }
        _ => false,
    };
    if !ok {
        let example = match ty {
            ParamType::String => format!("{name} = \"...\""),
            ParamType::Integer => format!("{name} = 3"),
            ParamType::Bool => format!("{name} = true"),
            ParamType::Duration => format!("{name} = \"5m\""),
        };
        let expected = match ty {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Bool => "true or false",
            ParamType::Duration => "a duration string",
        };
        r.err(
            "param-type",
            v.span(),
            format!(
                "parameter `{name}` must be {expected}, found {}",
                scalar.type_name()
            ),
        )
        .label(format!("expected {expected}"))
        .help(format!("e.g. {example}"));
        return Err(());
    }
    Ok(scalar)
}

/// Templates read during one load, and the diagnostics already reported inside template files
/// (a broken template used by fifty playbooks is reported once).
#[derive(Debug, Default)]
pub(super) struct Cache {
    pub dir: PathBuf,
    pub defs: HashMap<String, Option<Arc<TemplateDef>>>,
    reported: HashSet<(PathBuf, usize, usize, String)>,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache {
            dir,
            ..Default::default()
        }
    }

    pub fn get(&mut self, name: &str, diags: &mut Diagnostics) -> Option<Arc<TemplateDef>> {
        if let Some(d) = self.defs.get(name) {
            return d.clone();
        }
        let mut scratch = Diagnostics::default();
        let def = match load(Some(&self.dir), name, &mut scratch) {
            Ok(d) => d,
            Err(e) => {
                scratch.push(Diag::error(
                    "io",
                    format!("cannot read template `{name}`: {e}"),
                ));
                None
            }
        };
        // A template that exists but is broken must not also be reported as unknown.
        let found = def.is_some() || scratch.has_errors();
        self.merge(scratch, diags);
        let def = def.map(Arc::new);
        if found {
            self.defs.insert(name.to_string(), def.clone());
        }
        def
    }

    /// Moves diagnostics pointing into template files to `diags`, each at most once.
    pub fn merge(&mut self, scratch: Diagnostics, diags: &mut Diagnostics) {
        for d in scratch.items {
            let key = (
                d.file.as_ref().map(|f| f.path.clone()).unwrap_or_default(),
                d.span.start,
                d.span.end,
                d.message.clone(),
            );
            if self.reported.insert(key) {
                diags.push(d);
            }
        }
    }
}

/// Renders the header for `meeseeks templates NAME`.
pub fn describe(def: &TemplateDef) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let origin = match &def.origin {
        Origin::Builtin => "built-in".to_string(),
        Origin::Local(p) => p.display().to_string(),
    };
    let _ = writeln!(out, "{} ({origin})", def.name);
    for line in def.description.trim().lines() {
        let _ = writeln!(out, "  {}", line.trim());
    }
    out.push('\n');
    if def.params.is_empty() {
        let _ = writeln!(out, "parameters: none");
    } else {
        let _ = writeln!(out, "parameters:");
        let w = def.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let tw = def
            .params
            .iter()
            .map(|p| p.ty.map_or(0, |t| t.as_str().len()))
            .max()
            .unwrap_or(0);
        for p in &def.params {
            let req = match &p.default {
                Some(d) => format!("default {}", d.toml()),
                None => "required".to_string(),
            };
            let ty = p.ty.map_or("", |t| t.as_str());
            let _ = writeln!(out, "  {:w$}  {:tw$}  {req}", p.name, ty);
            for line in p.doc.lines() {
                let _ = writeln!(out, "  {:w$}  {:tw$}    {line}", "", "");
            }
        }
    }
    out
}

/// A placeholder for a value the user must fill in: an undefined template variable, so the
/// playbook fails validation ("undefined template variable `TODO_data_dir`", with file and
/// line) until it is replaced, whatever the parameter's type.
pub fn todo(what: &str) -> String {
    toml_string(&format!("{{{{ TODO_{what} }}}}"))
}

/// A `[[steps]]` entry using `def`: `values` (name, TOML literal) first, every other required
/// parameter a `todo` placeholder (for `meeseeks templates NAME` and `meeseeks init`).
pub fn usage_snippet(def: &TemplateDef, values: &[(String, String)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "[[steps]]");
    let _ = writeln!(out, "uses = {}", toml_string(&def.name));
    let mut with: Vec<String> = Vec::new();
    for p in &def.params {
        if let Some((_, v)) = values.iter().find(|(k, _)| *k == p.name) {
            with.push(format!("{} = {v}", p.name));
        } else if p.required {
            with.push(format!("{} = {}", p.name, todo(&p.name)));
        }
    }
    let _ = writeln!(out, "with = {{ {} }}", with.join(", "));
    out
}

/// A diagnostic for `uses = NAME` naming no template, with the closest name as a hint.
pub(super) fn unknown(name: &str, dr_dir: Option<&Path>) -> Diag {
    let names = all_names(dr_dir);
    let hint = crate::suggest::closest(name, names.iter().map(|(n, _)| n.as_str()));
    let d = Diag::error("unknown-template", format!("unknown template `{name}`"))
        .label("no such template");
    match hint {
        Some(h) => d.help(format!(
            "did you mean `{h}`? (`meeseeks templates` lists them; a DR directory's own go in playbooks/{LOCAL_DIR}/)"
        )),
        None => d.help(format!(
            "`meeseeks templates` lists the library; a DR directory's own templates go in playbooks/{LOCAL_DIR}/<name>.toml"
        )),
    }
}
