//! `meeseeks init [DIR] [--from graph.toml]`: scaffold a DR directory.
//!
//! Writes a commented `graph.toml` (or copies `--from`'s) and one playbook per service. A
//! playbook uses a library template when the service's tags suggest one (`engine = "postgres"`,
//! `platform = "kubernetes"`, ...), else it holds a TODO step. Every value the user must supply
//! is a `{{ TODO_... }}` placeholder: an undefined template variable, so `meeseeks validate`
//! points at each one (file, line, column) until it is filled. Existing files are never
//! overwritten: running `init` again on a grown graph only adds the missing playbooks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Global;
use crate::error::{Error, Result, exit};
use crate::load::library::{self, toml_string};
use crate::load::{LoadOptions, diag::display_path};
use crate::model::{Model, Service, fmt_duration};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to scaffold (created if missing).
    #[command(flatten)]
    pub dir: super::DirArg,
    /// Existing graph file to scaffold playbooks for (copied to DIR/graph.toml when that does
    /// not exist). Default: DIR/graph.toml if it exists, else an example graph.
    #[arg(long, value_name = "GRAPH")]
    pub from: Option<PathBuf>,
}

/// Tag words that suggest a library template, most specific first: a database tag wins over
/// the platform it runs on.
const HINTS: &[(&[&str], &str)] = &[
    (
        &["postgres", "postgresql", "pg"],
        "postgres/promote-replica",
    ),
    (&["mysql", "mariadb"], "mysql/promote-replica"),
    (&["redis", "valkey"], "redis/promote-replica"),
    (&["kafka"], "kafka/failover-consumer-group"),
    (&["dns"], "dns/switch-record"),
    (&["lb", "loadbalancer", "load-balancer"], "lb/enable-pool"),
    (&["systemd"], "systemd/start"),
    (&["k8s", "kubernetes", "kube"], "k8s/scale"),
];

/// The template a service's tags suggest (matching tag values, then tag keys), if any.
pub fn suggest_template(s: &Service) -> Option<&'static str> {
    let words: Vec<String> = s
        .tags
        .values()
        .chain(s.tags.keys())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    HINTS
        .iter()
        .find(|(keys, _)| words.iter().any(|w| keys.contains(&w.as_str())))
        .map(|(_, t)| *t)
}

/// What `init` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(PathBuf),
    /// Already there: left untouched.
    Kept(PathBuf),
}

/// Scaffolds `dir`; returns what happened to each file, in order.
pub fn scaffold(dir: &Path, from: Option<&Path>) -> Result<Vec<Outcome>> {
    std::fs::create_dir_all(dir.join("playbooks"))
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let graph_path = dir.join("graph.toml");
    let mut out = Vec::new();
    let source: PathBuf = match from {
        Some(f) => {
            if graph_path.exists() {
                out.push(Outcome::Kept(graph_path.clone()));
            } else {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Error::io(format!("cannot read {}", f.display()), e))?;
                write_new(&graph_path, &text)?;
                out.push(Outcome::Created(graph_path.clone()));
            }
            f.to_path_buf()
        }
        None => {
            if graph_path.exists() {
                out.push(Outcome::Kept(graph_path.clone()));
            } else {
                write_new(&graph_path, EXAMPLE_GRAPH)?;
                out.push(Outcome::Created(graph_path.clone()));
            }
            graph_path.clone()
        }
    };
    let loaded = crate::load::load(&source, &LoadOptions::default());
    let model = match loaded.model {
        Some(m) if !loaded.diags.has_errors() => m,
        _ => return Err(Error::Invalid(loaded.diags.render(false))),
    };
    for s in &model.services {
        let p = dir.join("playbooks").join(format!("{}.toml", s.name));
        if p.exists() {
            out.push(Outcome::Kept(p));
            continue;
        }
        write_new(&p, &playbook(&model, s))?;
        out.push(Outcome::Created(p));
    }
    Ok(out)
}

/// Creates `path`, failing if it exists (even if it appeared since we looked).
fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// The scaffolded playbook of `s`.
pub fn playbook(model: &Model, s: &Service) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Recovery playbook of `{}` (tier {}, RTO {}).",
        s.name,
        s.tier,
        fmt_duration(s.rto)
    );
    let _ = writeln!(
        out,
        "# Steps run in order; the service counts as recovered when every [[checks]] passes.\n\
         # Every {{{{ TODO_... }}}} fails `meeseeks validate` until you replace it.\n"
    );
    let tmpl = suggest_template(s).and_then(|name| {
        let mut diags = crate::load::Diagnostics::default();
        library::load(None, name, &mut diags).ok().flatten()
    });
    match tmpl {
        Some(def) => {
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
            let _ = writeln!(
                out,
                "# Suggested by its tags ({}): `meeseeks templates {}` documents every parameter.",
                tags.join(", "),
                def.name
            );
            let mut values = Vec::new();
            for p in &def.params {
                let v = match p.name.as_str() {
                    "deployment" => Some(toml_string(&s.name)),
                    "unit" => Some(toml_string(&format!("{}.service", s.name))),
                    "context" if model.vars.contains_key("dr_site") => {
                        Some(toml_string("{{ dr_site }}"))
                    }
                    _ => None,
                };
                if let Some(v) = v {
                    values.push((p.name.clone(), v));
                }
            }
            out.push_str(&library::usage_snippet(&def, &values));
        }
        None => {
            let _ = writeln!(
                out,
                "# No template matched its tags; `meeseeks templates` lists the library.\n\
                 # Replace this step with the real ones (run, cmd, http, tcp, wait, manual)."
            );
            let _ = writeln!(out, "[[steps]]");
            let _ = writeln!(out, "name = \"recover {}\"", s.name);
            let _ = writeln!(
                out,
                "manual = {}",
                toml_string(&format!("{{{{ TODO_recovery_steps }}}} for {}", s.name))
            );
        }
    }
    let _ = writeln!(
        out,
        "\n# How to tell it is back, e.g.:\n\
         # [[checks]]\n\
         # name = \"healthz\"\n\
         # http = {{ url = \"http://{}.example/healthz\", expect_status = 200 }}\n\
         # timeout = \"5m\"",
        s.name
    );
    out
}

const EXAMPLE_GRAPH: &str = r#"# The service graph: who depends on whom, and how fast each must be back.
# Reference: SPEC §2.1. `meeseeks validate` checks it; `meeseeks plan` schedules it.

[defaults]
rto = "1h"          # recovery time objective of services that set none
parallel = 8        # services recovering at once (--parallel overrides)
estimate = "5m"     # planning estimate of a service without a playbook

[vars]              # template variables every playbook sees as {{ name }}
dr_site = "dc2"

# [[notify]]        # webhooks, e.g. a chat channel
# url = "https://hooks.example/dr"
# events = ["run.started", "service.failed", "rto.breached", "run.finished"]
# format = "slack"

[services.app-db]
tier = 0            # 0 = most critical
rto = "20m"
rpo = "5m"
stateful = true
backup = { schedule = "15m", retention = "7d" }
owner = "dba"
tags = { engine = "postgres" }    # tags pick the playbook template `init` suggests

[services.app]
tier = 0
rto = "30m"
depends_on = ["app-db"]           # essential: recovered only once app-db is healthy
# soft_depends_on = ["search"]    # optional: works degraded without it
owner = "web"
tags = { platform = "kubernetes" }
"#;

pub fn run(g: &Global, a: &InitArgs) -> Result<i32> {
    let dir = a.dir.path();
    let outcomes = scaffold(&dir, a.from.as_deref())?;
    if !g.quiet {
        let mut text = String::new();
        let mut created = 0;
        for o in &outcomes {
            match o {
                Outcome::Created(p) => {
                    created += 1;
                    let _ = writeln!(text, "created  {}", display_path(&dir, p).display());
                }
                Outcome::Kept(p) => {
                    let _ = writeln!(
                        text,
                        "kept     {}  (exists; not overwritten)",
                        display_path(&dir, p).display()
                    );
                }
            }
        }
        if created > 0 {
            let _ = writeln!(
                text,
                "\nnext: replace every {{{{ TODO_... }}}} in the playbooks, then `meeseeks validate {}`",
                dir.display()
            );
        } else {
            let _ = writeln!(text, "\nnothing to do: every file exists already");
        }
        super::emit(None, &text)?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn svc(tags: &[(&str, &str)]) -> Service {
        let mut s = Service::new("x", 0, Duration::from_secs(60));
        s.tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    #[test]
    fn tags_pick_the_most_specific_template() {
        assert_eq!(suggest_template(&svc(&[])), None);
        assert_eq!(suggest_template(&svc(&[("domain", "orders")])), None);
        assert_eq!(
            suggest_template(&svc(&[("engine", "PostgreSQL")])),
            Some("postgres/promote-replica")
        );
        // The database wins over the platform it runs on.
        assert_eq!(
            suggest_template(&svc(&[("platform", "kubernetes"), ("engine", "redis")])),
            Some("redis/promote-replica")
        );
        assert_eq!(suggest_template(&svc(&[("k8s", "yes")])), Some("k8s/scale"));
        // Every suggestion names a shipped template.
        for (_, t) in HINTS {
            assert!(
                library::builtin().iter().any(|(n, _)| n == t),
                "{t} is not in the library"
            );
        }
    }
}
