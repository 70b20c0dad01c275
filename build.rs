//! Embeds the template library (the repository's top-level `playbooks/` directory) into the
//! binary: generates `$OUT_DIR/library.rs` with one `include_str!` per `*.toml` file, keyed by
//! its path relative to `playbooks/` without the extension (`k8s/scale`). A generated table
//! rather than a crate like `include_dir`: no new dependency, and the list is sorted, so
//! `meeseeks templates` output is stable.

use std::path::{Path, PathBuf};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            let rel = p.strip_prefix(root).expect("under root").with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, p));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("playbooks");
    println!("cargo:rerun-if-changed=playbooks");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    // Directories are watched for added/removed files; each file for edits.
    for (_, p) in &files {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    files.sort();
    let mut src = String::from(
        "/// The shipped template library: (name, TOML source), sorted by name.\npub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for (name, p) in &files {
        src.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            p.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("library.rs");
    std::fs::write(out, src).expect("write generated library table");
}
