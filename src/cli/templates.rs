//! `meeseeks templates [NAME]`: list the template library, or show one template.

use clap::Args;

use super::Global;
use crate::error::{Error, Result, exit};
use crate::load::Diagnostics;
use crate::load::library::{self, Origin};

#[derive(Args, Debug)]
pub struct TemplatesArgs {
    /// Template to show (e.g. k8s/scale); without it, list them all.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// DR directory whose playbooks/_templates/ are listed too (they shadow the library).
    #[command(flatten)]
    pub dir: super::DirFlag,
}

pub fn run(g: &Global, a: &TemplatesArgs) -> Result<i32> {
    let text = match &a.name {
        None => list(&a.dir.path()),
        Some(name) => show(g, &a.dir.path(), name)?,
    };
    super::emit(None, &text)?;
    Ok(exit::OK)
}

fn list(dir: &std::path::Path) -> String {
    let names = library::all_names(Some(dir));
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for (name, origin) in names {
        let mut diags = Diagnostics::default();
        let desc = match library::load(Some(dir), &name, &mut diags) {
            Ok(Some(def)) => first_sentence(&def.description),
            _ => "(invalid: `meeseeks templates NAME` shows why)".to_string(),
        };
        let origin = match origin {
            Origin::Builtin => "built-in".to_string(),
            Origin::Local(_) => "local".to_string(),
        };
        rows.push((name, origin, desc));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, origin, desc) in rows {
        out.push_str(&format!("{name:w$}  {origin:8}  {desc}\n"));
    }
    out.push_str("\n`meeseeks templates NAME` shows a template's parameters and steps.\n");
    out
}

/// The description's first sentence, on one line, at most `SUMMARY_WIDTH` characters.
fn first_sentence(s: &str) -> String {
    const SUMMARY_WIDTH: usize = 80;
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    // A sentence ends at ". " that does not close an abbreviation ("e.g. ", "i.e. ").
    let mut end = one.len();
    let mut from = 0;
    while let Some(i) = one[from..].find(". ") {
        let at = from + i;
        if !(one[..at].ends_with("e.g") || one[..at].ends_with("i.e")) {
            end = at + 1;
            break;
        }
        from = at + 2;
    }
    let sentence = &one[..end];
    if sentence.chars().count() <= SUMMARY_WIDTH {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(SUMMARY_WIDTH - 1).collect();
    // Cut at a word boundary.
    match cut.rfind(' ') {
        Some(i) => format!("{}…", &cut[..i]),
        None => format!("{cut}…"),
    }
}

fn show(g: &Global, dir: &std::path::Path, name: &str) -> Result<String> {
    let mut diags = Diagnostics::default();
    let def = library::load(Some(dir), name, &mut diags)
        .map_err(|e| Error::io(format!("cannot read template `{name}`"), e))?;
    if diags.has_errors() {
        return Err(Error::Invalid(diags.render(g.color_stderr())));
    }
    let Some(def) = def else {
        let names = library::all_names(Some(dir));
        let hint = crate::suggest::closest(name, names.iter().map(|(n, _)| n.as_str()));
        return Err(Error::Usage(match hint {
            Some(h) => format!(
                "unknown template `{name}` (did you mean `{h}`?); `meeseeks templates` lists them"
            ),
            None => format!("unknown template `{name}`; `meeseeks templates` lists them"),
        }));
    };
    let mut out = library::describe(&def);
    out.push_str("\nusage:\n");
    for l in library::usage_snippet(&def, &[]).lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out.push_str("\nsource:\n");
    for l in def.file.text.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_is_the_first_sentence_within_80_chars() {
        assert_eq!(super::first_sentence("Short. Then more."), "Short.");
        assert_eq!(
            super::first_sentence("Wait (e.g. never\n cold). Then."),
            "Wait (e.g. never cold)."
        );
        let long = "word ".repeat(40);
        let s = super::first_sentence(&long);
        assert!(s.chars().count() <= 80 && s.ends_with('…'), "{s}");
    }
}
