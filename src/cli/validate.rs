//! `meeseeks validate [DIR]`: every problem at once, exit 2 if any error.

use clap::Args;

use super::{DirArg, Global, VarArgs};
use crate::error::{Result, exit};
use crate::load::{LoadOptions, diag::count_line};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub vars: VarArgs,
}

pub fn run(g: &Global, a: &ValidateArgs) -> Result<i32> {
    let opts = LoadOptions {
        cli_vars: a.vars.map(),
        require_playbooks: true,
        graph_only: false,
        keep_sources: false,
    };
    let mut loaded = crate::load::load(&a.dir.path(), &opts);
    if let Some(m) = &loaded.model {
        // Secrets are rarely present where `validate` runs (CI): a warning, not an error.
        for (name, what) in missing_env(m) {
            loaded.diags.push(
                crate::load::Diag::warning(
                    "env-unset",
                    format!("{name}: {what} is not set in this environment"),
                )
                .help(
                    "it must be set when `meeseeks run` starts, which refuses to begin without it",
                ),
            );
        }
    }
    let color = g.color_stderr();
    let diags = &loaded.diags;
    if !diags.is_empty() {
        eprint!("{}", diags.render(color));
    }
    if diags.has_errors() {
        return Ok(exit::USAGE);
    }
    if !g.quiet {
        let m = loaded.model.as_ref().expect("no errors means a model");
        let edges: usize = m.services.iter().map(|s| s.depends_on.len()).sum();
        let soft: usize = m.services.iter().map(|s| s.soft_depends_on.len()).sum();
        let playbooks = m.services.iter().filter(|s| s.playbook.is_some()).count();
        println!(
            "ok: {} services, {edges} essential + {soft} optional dependencies, {playbooks} playbooks — {}",
            m.services.len(),
            count_line(diags.errors(), diags.warnings())
        );
    }
    Ok(exit::OK)
}

/// `env.`/`secret.` references whose variable is unset: (service, "secret.NAME").
pub fn missing_env(m: &crate::model::Model) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in &m.services {
        let Some(pb) = &s.playbook else { continue };
        for (kind, names) in [("secret", &pb.secrets), ("env", &pb.envs)] {
            for n in names {
                if std::env::var_os(n).is_none() {
                    out.push((s.name.clone(), format!("{kind}.{n}")));
                }
            }
        }
    }
    out
}
