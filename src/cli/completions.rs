//! `meeseeks completions SHELL` and `meeseeks man`: generated from the clap definitions, so
//! they can never disagree with the commands.

use clap::{Args, CommandFactory};

use super::Cli;
use crate::error::{Error, Result};

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for `shell` to stdout, e.g.
/// `meeseeks completions bash > /etc/bash_completion.d/meeseeks`.
pub fn completions(a: &CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics on a write error, and `| head` is not one.
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "meeseeks", &mut out);
    super::emit_with(None, |w| w.write_all(&out))?;
    Ok(crate::error::exit::OK)
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand's own page (`meeseeks man plan > meeseeks-plan.1`); default: the main
    /// page, which lists every subcommand.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// Writes the man page (roff) to stdout: `meeseeks man > meeseeks.1`, or one subcommand's
/// with its options.
pub fn man(a: &ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    let page = match &a.command {
        None => cmd,
        Some(name) => {
            let Some(sub) = cmd.find_subcommand(name) else {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                let hint = crate::suggest::did_you_mean(name, names.iter().copied());
                return Err(Error::Usage(format!("no command `{name}`{hint}")));
            };
            let full = format!("meeseeks-{}", sub.get_name());
            sub.clone().bin_name(full.clone()).display_name(full)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::io("cannot render the man page", e))?;
    super::emit_with(None, |w| w.write_all(&out))?;
    Ok(crate::error::exit::OK)
}
