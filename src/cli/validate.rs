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
    };
    let loaded = crate::load::load(&a.dir.dir, &opts);
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
            "ok: {} services, {edges} dependencies ({soft} optional), {playbooks} playbooks — {}",
            m.services.len(),
            count_line(diags.errors(), diags.warnings())
        );
    }
    Ok(exit::OK)
}
