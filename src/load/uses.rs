//! Expanding `uses = "NAME"` / `with = { ... }` steps at load time (SPEC §9), so `plan`,
//! `--dry-run` and `validate` see the real steps.
//!
//! How parameters reach the template's strings: every `{{ with.NAME }}` in the template is
//! replaced *textually*, before the template's steps are read, by the parameter's value
//! (numbers and booleans written as text). A value may itself hold a template
//! (`context = "{{ dr_site }}"`): it survives the splice and is checked and rendered later like
//! any playbook template, against the using playbook's variables. Under keys that are not
//! strings (`healthy_after`, `retries`, `expect_status`, `optional`, `idempotent`), a string
//! that is exactly `"{{ with.NAME }}"` takes the value's own TOML type, so
//! `healthy_after = "{{ with.n }}"` reads as an integer. Durations are strings already:
//! `timeout = "{{ with.timeout }}"` just works.
//!
//! Why not render with minijinja and a `with` object? The other variables (`dr_site`,
//! `secret.X`) are unknown at load time and must stay templates; minijinja has no mode that
//! renders some variables and leaves the rest as source text. Textual splicing keeps one
//! rendering path (the run's), and the strings `plan`/`--dry-run` show are the ones that run.
//! The price: `with.NAME` may only appear as a whole `{{ with.NAME }}` (no filters or `{% if %}`
//! on it); any other use is a load error pointing into the template.
//!
//! Expansion rules:
//! - template step `S` of a `uses` step named `N` (default: the template name) becomes `N/S`;
//!   template check `C` becomes a service check `N/C`;
//! - `timeout`, `retries`, `retry_delay`, `only`, `optional` and `idempotent` on the `uses`
//!   step apply to every expanded step that does not set its own;
//! - `estimate` on the `uses` step is the estimate of the whole group: the first expanded step
//!   carries it and the others count zero;
//! - in `[[rollback]]` / `[[cleanup]]` a template's checks are ignored;
//! - templates cannot use other templates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use super::diag::Diagnostics;
use super::library::{self, Scalar};
use super::read::{Reader, SV};
use super::steps::{
    Ctx, STEP_KINDS, STEP_SETTINGS, read_check, read_only, read_preflight_flag, read_step,
};
use super::tree::{Node, Table, Value};
use crate::model::{Check, Mode, Step};

/// Keys of a `uses` step: the template, its parameters, and the step-level settings that
/// apply to every expanded step.
/// `name`, `uses`, `with`, then the step settings it applies to every expanded step.
static USES_KEYS: std::sync::LazyLock<Vec<&str>> = std::sync::LazyLock::new(|| {
    ["name", "uses", "with"]
        .iter()
        .chain(STEP_SETTINGS)
        .copied()
        .collect()
});

/// Step-level settings of a `uses` step, applied to the expanded steps that do not set them.
#[derive(Default)]
struct Overrides {
    timeout: Option<Duration>,
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    estimate: Option<Duration>,
    only: Option<Mode>,
    optional: Option<bool>,
    idempotent: Option<bool>,
    preflight: Option<bool>,
}

/// The steps and checks a `uses` step expands to; `None` after reporting why it cannot.
pub(super) fn expand(
    cx: &mut Ctx<'_, '_>,
    item: &SV<'_>,
    t: &Table<'_>,
    section: &str,
) -> Option<(Vec<Step>, Vec<Check>)> {
    let errors_before = cx.r.diags.errors();
    let line = cx.r.file.line_col(item.span().start).0;
    for k in STEP_KINDS {
        if let Some((key, _)) = t.get_key_value(k) {
            cx.r.err(
                "step-kind",
                key.span(),
                format!("a `uses` step cannot also have `{k}`"),
            )
            .label("the template provides the actions")
            .help("split it: one [[steps]] with `uses`, another with this action");
        }
    }
    cx.r.unknown_keys_but(t, &USES_KEYS, STEP_KINDS, "a `uses` step");

    let uses_v = t.get("uses").expect("caller checked");
    let name = cx.r.string("uses", uses_v)?;
    if !library::valid_name(&name) {
        cx.r.err(
            "unknown-template",
            uses_v.span(),
            format!("`{name}` is not a valid template name"),
        )
        .help("template names are paths like `k8s/scale`: letters, digits, `-`, `_`, `.`, separated by `/`");
        return None;
    }
    let def = {
        let mut cache = cx.cache.borrow_mut();
        let def = cache.get(&name, cx.r.diags);
        if def.is_none() {
            if cache.defs.contains_key(&name) {
                drop(cache);
                cx.r.err(
                    "template",
                    uses_v.span(),
                    format!("template `{name}` is invalid (see the errors in its file)"),
                );
            } else {
                let dir = cache.dir.clone();
                drop(cache);
                cx.r.diags
                    .push(library::unknown(&name, Some(&dir)).at(cx.r.file, uses_v.span()));
            }
        }
        def
    };
    let step_name = match t.get("name") {
        Some(n) => cx.r.string("name", n),
        None => Some(name.clone()),
    };
    let overrides = read_overrides(cx, t);

    // Parameters.
    let Some(def) = def else {
        // Still check the values' own templates: one run of `validate` shows every problem.
        if let Some(wt) = t.get("with").and_then(|w| w.get_ref().as_table()) {
            for (_, v) in wt.iter() {
                if let Some(s) = v.get_ref().as_str() {
                    cx.template(s, v.span());
                }
            }
        }
        return None;
    };
    let mut values: BTreeMap<String, Scalar> = BTreeMap::new();
    let mut given: HashSet<String> = HashSet::new();
    let with_span = t.get("with").map(|w| w.span());
    if let Some(w) = t.get("with")
        && let Some(wt) = cx.r.table("with", w)
    {
        for (k, v) in wt.iter() {
            let pname = k.get_ref().as_ref();
            let Some(p) = def.param(pname) else {
                let hint =
                    crate::suggest::closest(pname, def.params.iter().map(|p| p.name.as_str()));
                let known: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
                let mut d =
                    cx.r.err(
                        "unknown-param",
                        k.span(),
                        format!("template `{name}` has no parameter `{pname}`"),
                    )
                    .label("unknown parameter");
                d.help = Some(match hint {
                    Some(h) => format!("did you mean `{h}`? (parameters: {})", known.join(", ")),
                    None if known.is_empty() => "this template takes no parameters".to_string(),
                    None => format!("parameters: {}", known.join(", ")),
                });
                continue;
            };
            given.insert(pname.to_string());
            if let Ok(s) = library::check_value(&mut cx.r, pname, p.ty, v) {
                if let Scalar::String(text) = &s {
                    // Checked here, against this playbook's variables, so a typo in a value is
                    // reported where the user wrote it.
                    cx.template(text, v.span());
                }
                values.insert(pname.to_string(), s);
            }
        }
    }
    for p in &def.params {
        if given.contains(&p.name) {
            continue;
        }
        match &p.default {
            Some(d) => {
                values.insert(p.name.clone(), d.clone());
            }
            None => {
                let span = with_span.clone().unwrap_or_else(|| uses_v.span());
                cx.r.err(
                    "missing-param",
                    span,
                    format!("template `{name}` needs parameter `{}`", p.name),
                )
                .label(format!("`{}` missing here", p.name))
                .help(format!(
                    "add it to `with`: {} = ...  ({})",
                    p.name,
                    p.doc.trim()
                ));
            }
        }
    }
    if cx.r.diags.errors() > errors_before {
        return None;
    }
    let step_name = step_name?;

    // Steps and checks, read from the template file with the values spliced in.
    let file = def.file.clone();
    let table = super::parse(&file, &mut Diagnostics::default());
    let root = table.get_ref();
    let mut scratch = Diagnostics::default();
    let mut tcx = Ctx {
        r: Reader {
            file: &file,
            diags: &mut scratch,
        },
        defined: cx.defined,
        playbook_vars: cx.playbook_vars.clone(),
        secrets: Default::default(),
        envs: Default::default(),
        with_params: Some(def.params.iter().map(|p| p.name.clone()).collect()),
        cache: cx.cache,
        extra_checks: Vec::new(),
        templates: Default::default(),
    };
    let texts: Vec<(String, Scalar, String)> = values
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), v.text()))
        .collect();
    let splice = Splice::new(&texts);
    let mut steps = Vec::new();
    let mut seen = HashSet::new();
    if let Some(arr) = root.get("steps").and_then(|v| v.get_ref().as_array()) {
        for (i, s) in arr.iter().enumerate() {
            let s = substitute(s, &splice, false);
            let Some(st) = s.get_ref().as_table() else {
                tcx.r.table("steps", &s);
                continue;
            };
            if let Some((k, _)) = st.get_key_value("uses") {
                tcx.r
                    .err(
                        "nested-uses",
                        k.span(),
                        "a template cannot use another template",
                    )
                    .help("copy the other template's steps into this one");
                continue;
            }
            if let Some(n) = st.get("name")
                && let Some(n) = n.get_ref().as_str()
                && !seen.insert(n.to_string())
            {
                tcx.r
                    .err(
                        "duplicate-name",
                        s.span(),
                        format!("duplicate step name `{n}` in the template"),
                    )
                    .help("step names must be unique: they identify steps on resume");
            }
            if let Some(mut step) = read_step(&mut tcx, &s, "steps", i, true) {
                step.name = format!("{step_name}/{}", step.name);
                step.line = line;
                apply(&mut step, st, &overrides, steps.is_empty());
                steps.push(step);
            }
        }
    }
    let mut checks = Vec::new();
    if let Some(arr) = root.get("checks").and_then(|v| v.get_ref().as_array()) {
        for (i, c) in arr.iter().enumerate() {
            let c = substitute(c, &splice, false);
            if let Some(mut check) = read_check(&mut tcx, &c, i) {
                check.name = format!("{step_name}/{}", check.name);
                check.line = line;
                checks.push(check);
            }
        }
    }
    let secrets = std::mem::take(&mut tcx.secrets);
    let envs = std::mem::take(&mut tcx.envs);
    drop(tcx);
    cx.secrets.extend(secrets);
    cx.envs.extend(envs);
    if let library::Origin::Local(p) = &def.origin {
        cx.templates.insert(p.clone());
    }
    let failed = scratch.has_errors();
    cx.cache.borrow_mut().merge(scratch, cx.r.diags);
    if failed {
        // Say where the broken template is used from, once per use.
        cx.r.err(
            "template",
            uses_v.span(),
            format!("template `{name}` cannot be expanded (see the errors in its file)"),
        );
        return None;
    }
    if section != "steps" && !checks.is_empty() {
        checks.clear();
    }
    Some((steps, checks))
}

fn read_overrides(cx: &mut Ctx<'_, '_>, t: &Table<'_>) -> Overrides {
    Overrides {
        timeout: t
            .get("timeout")
            .and_then(|v| cx.r.positive_duration("timeout", v)),
        retries: t
            .get("retries")
            .and_then(|v| cx.r.int_in("retries", v, 0, 100))
            .map(|n| n as u32),
        retry_delay: t
            .get("retry_delay")
            .and_then(|v| cx.r.duration("retry_delay", v)),
        estimate: t.get("estimate").and_then(|v| cx.r.duration("estimate", v)),
        only: t.get("only").and_then(|v| read_only(&mut cx.r, v)),
        optional: t.get("optional").and_then(|v| cx.r.bool("optional", v)),
        idempotent: t.get("idempotent").and_then(|v| cx.r.bool("idempotent", v)),
        preflight: read_preflight_flag(&mut cx.r, t),
    }
}

/// Applies the `uses` step's settings to an expanded step that does not set its own.
fn apply(step: &mut Step, own: &Table<'_>, o: &Overrides, first: bool) {
    let unset = |k: &str| !own.contains_key(k);
    if let Some(v) = o.timeout
        && unset("timeout")
    {
        step.timeout = Some(v);
    }
    if let Some(v) = o.retries
        && unset("retries")
    {
        step.retries = v;
    }
    if let Some(v) = o.retry_delay
        && unset("retry_delay")
    {
        step.retry_delay = v;
    }
    if let Some(v) = o.only
        && unset("only")
    {
        step.only = Some(v);
    }
    if let Some(v) = o.optional
        && unset("optional")
    {
        step.optional = v;
    }
    if let Some(v) = o.idempotent
        && unset("idempotent")
    {
        step.idempotent = v;
    }
    if let Some(v) = o.preflight
        && unset("preflight")
    {
        step.preflight = v;
    }
    if let Some(v) = o.estimate {
        step.estimate = Some(if first { v } else { Duration::ZERO });
    }
}

/// Parameter values ready to splice: as text, and as typed TOML values for strings that are
/// exactly one reference.
struct Splice<'a> {
    text: HashMap<&'a str, &'a str>,
    typed: HashMap<&'a str, Value<'a>>,
}

impl<'a> Splice<'a> {
    /// `texts` holds each value's name, value and text.
    fn new(texts: &'a [(String, Scalar, String)]) -> Splice<'a> {
        let mut text = HashMap::new();
        let mut typed = HashMap::new();
        for (name, v, t) in texts {
            text.insert(name.as_str(), t.as_str());
            let value = match v {
                Scalar::String(s) => Value::String(s.as_str().into()),
                Scalar::Bool(b) => Value::Boolean(*b),
                Scalar::Integer(n) => Value::Integer((*n).into()),
                Scalar::Float(x) => Value::Float((*x).into()),
            };
            typed.insert(name.as_str(), value);
        }
        Splice { text, typed }
    }
}

/// Keys whose value is not a string: there, a string that is exactly one `{{ with.NAME }}`
/// takes the value's own type (`healthy_after = "{{ with.n }}"` reads as an integer).
/// Everywhere else the value is spliced as text (an argv element stays a string).
const TYPED_KEYS: &[&str] = &[
    "healthy_after",
    "retries",
    "expect_status",
    "optional",
    "idempotent",
];

/// Replaces `{{ with.NAME }}` (whitespace inside the braces optional) by the values in
/// `values`, in every string of `v`; under `TYPED_KEYS`, a string that is exactly one such
/// reference takes the value's type. References to names not in `values` are left for the template check to
/// report.
fn substitute<'i>(v: &SV<'i>, values: &Splice<'i>, typed_ok: bool) -> SV<'i> {
    let out = match v.get_ref() {
        Value::String(s) => {
            let refs = with_refs(s);
            if refs.is_empty() {
                v.get_ref().clone()
            } else if typed_ok
                && refs.len() == 1
                && refs[0].0 == (0..s.len())
                && let Some(val) = values.typed.get(refs[0].1.as_str())
            {
                val.clone()
            } else {
                let mut text = String::with_capacity(s.len());
                let mut last = 0;
                for (r, name) in &refs {
                    if let Some(val) = values.text.get(name.as_str()) {
                        text.push_str(&s[last..r.start]);
                        text.push_str(val);
                        last = r.end;
                    }
                }
                text.push_str(&s[last..]);
                Value::String(text.into())
            }
        }
        Value::Array(a) => Value::Array(a.map(|x| substitute(x, values, typed_ok))),
        Value::Table(t) => Value::Table(t.map(|k, x| {
            let typed = TYPED_KEYS.contains(&k.get_ref().as_ref());
            substitute(x, values, typed)
        })),
        other => other.clone(),
    };
    Node::new(v.span(), out)
}

/// Byte ranges and names of the `{{ with.NAME }}` references in `s`.
pub(super) fn with_refs(s: &str) -> Vec<(Range<usize>, String)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find("{{") {
        let start = i + off;
        let mut j = start + 2;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if s[j..].starts_with("with.") {
            j += 5;
            let ns = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            let name = &s[ns..j];
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if !name.is_empty() && s[j..].starts_with("}}") {
                out.push((start..j + 2, name.to_string()));
                i = j + 2;
                continue;
            }
        }
        i = start + 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_simple_refs_only() {
        let r = with_refs("a {{ with.x }}-{{with.y_2}} {{ with.z | upper }} {{ other }}");
        let names: Vec<&str> = r.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["x", "y_2"]);
        assert_eq!(r[0].0, 2..14);
    }

    #[test]
    fn splices_text_and_types() {
        let text = "a = \"--replicas={{ with.n }}\"\nretries = \"{{ with.n }}\"\nd = \"{{ with.n }}\"\nc = [\"{{ with.ctx }}\", \"{{ with.unknown }}\"]\n";
        let (t, errors) = super::super::tree::parse(text);
        assert!(errors.is_empty());
        let texts = vec![
            ("n".to_string(), Scalar::Integer(6), "6".to_string()),
            (
                "ctx".to_string(),
                Scalar::String("{{ dr_site }}".into()),
                "{{ dr_site }}".to_string(),
            ),
        ];
        let values = Splice::new(&texts);
        let whole = Node::new(0..0, Value::Table(t.get_ref().clone()));
        let out = substitute(&whole, &values, false);
        let tt = out.get_ref().as_table().unwrap();
        assert_eq!(
            tt.get("a").unwrap().get_ref().as_str(),
            Some("--replicas=6")
        );
        let retries = tt.get("retries").unwrap().get_ref();
        assert!(
            matches!(retries, Value::Integer(i) if i.to_i64() == Some(6)),
            "{retries:?}"
        );
        assert_eq!(tt.get("d").unwrap().get_ref().as_str(), Some("6"));
        let c = tt.get("c").unwrap().get_ref().as_array().unwrap();
        assert_eq!(c[0].get_ref().as_str(), Some("{{ dr_site }}"));
        assert_eq!(c[1].get_ref().as_str(), Some("{{ with.unknown }}"));
    }
}
