//! `meeseeks history [DIR] [--since DATE] [--watch SVC] [--format ...]`: walks the git history
//! of the graph files with the `git` command (see docs/graph-ops.md for why not a git crate).
//!
//! One `git log --first-parent --raw` lists the commits that touched the DR directory with the
//! blob ids of the files they changed; the graph files' state (path → blob) is replayed from
//! it. A commit's graph is graph.toml plus every file its `include` globs match, written from
//! the blobs (one long-lived `git cat-file --batch`) into a scratch directory and loaded with
//! the loader, so fragments, diagnostics and validation are exactly those of every other
//! command. Commits that change no graph file (playbooks only, or a file no `include` names)
//! are skipped without loading anything.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use clap::Args;

use super::graph_ops::emit_report;
use super::{DirArg, Global};
use crate::error::{Error, Result};
use crate::graph_ops::ReportFormat;
use crate::graph_ops::history::{CommitMeta, HistoryReport};
use crate::load::{LoadOptions, Loaded};
use crate::model::Model;

super::graph_ops::formats!(
    /// `history`: the reports plus the HTML page with its charts.
    HistoryFormatArg { Text, Json, Markdown, Html }
);

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Only commits after this date (anything `git log --since` accepts: 2026-01-01,
    /// "3 months ago").
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Follow this service's dependents over time (repeatable or comma-separated); its new
    /// dependents are reported whether or not it has `watch = true`.
    #[arg(long, value_name = "SVC", value_delimiter = ',')]
    pub watch: Vec<String>,
    #[arg(long, value_enum, default_value_t = HistoryFormatArg::Text)]
    pub format: HistoryFormatArg,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn git_error(what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Usage("history needs the `git` command on PATH".into())
    } else {
        Error::io(format!("cannot run git {what}"), e)
    }
}

/// `git -C dir ARGS`, its stdout (exit 2 with git's message when it fails).
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| git_error(args[0], e))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// A long-lived `git cat-file --batch`: blob contents by id.
struct Blobs {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Blobs {
    fn start(top: &Path) -> Result<Blobs> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(top)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| git_error("cat-file", e))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Blobs {
            child,
            stdin,
            stdout,
        })
    }

    fn get(&mut self, id: &str) -> Result<Vec<u8>> {
        let io = |e| Error::io("git cat-file", e);
        writeln!(self.stdin, "{id}").map_err(io)?;
        self.stdin.flush().map_err(io)?;
        let mut header = String::new();
        self.stdout.read_line(&mut header).map_err(io)?;
        // `<id> blob <size>`, or `<id> missing`.
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Other(format!("git cat-file: {}", header.trim())))?;
        let mut buf = vec![0; size + 1];
        self.stdout.read_exact(&mut buf).map_err(io)?;
        buf.pop();
        Ok(buf)
    }
}

impl Drop for Blobs {
    fn drop(&mut self) {
        // Closing stdin ends `cat-file --batch`; wait so that no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let p =
            std::env::temp_dir().join(format!("meeseeks-history-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)
            .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The scratch copy of one commit's graph files, updated file by file from commit to commit.
struct Checkout {
    scratch: Scratch,
    /// Path → blob id of what the scratch directory holds.
    written: BTreeMap<String, String>,
    graph_name: String,
}

impl Checkout {
    /// Brings the scratch directory to `files` (writes what changed, removes what went away)
    /// and loads it with the loader, graph only.
    fn load(&mut self, files: &BTreeMap<String, String>, blobs: &mut Blobs) -> Result<Loaded> {
        for (rel, blob) in files {
            if self.written.get(rel) != Some(blob) {
                let dest = self.scratch.0.join(rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
                }
                std::fs::write(&dest, blobs.get(blob)?)
                    .map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))?;
                self.written.insert(rel.clone(), blob.clone());
            }
        }
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|k| !files.contains_key(*k))
            .cloned()
            .collect();
        for rel in gone {
            let _ = std::fs::remove_file(self.scratch.0.join(&rel));
            self.written.remove(&rel);
        }
        let opts = LoadOptions {
            graph_only: true,
            ..Default::default()
        };
        Ok(crate::load::load(
            &self.scratch.0.join(&self.graph_name),
            &opts,
        ))
    }
}

/// A commit's graph, or its first error (located in the commit's file).
type LoadedGraph = std::result::Result<Model, String>;

impl Checkout {
    /// The model of a load, or its first error located in the commit's file (`dr/graph.toml:
    /// 12:3: …`), not in the scratch copy.
    fn graph(&self, loaded: Loaded, prefix: &str) -> LoadedGraph {
        match loaded.model {
            Some(m) if !loaded.diags.has_errors() => Ok(m),
            _ => Err(loaded
                .diags
                .items
                .iter()
                .find(|d| d.severity == crate::load::Severity::Error)
                .map(|d| match &d.file {
                    Some(f) => {
                        let (line, col) = f.line_col(d.span.start);
                        let rel = f.path.strip_prefix(&self.scratch.0).unwrap_or(&f.path);
                        format!("{prefix}{}:{line}:{col}: {}", rel.display(), d.message)
                    }
                    None => d.message.clone(),
                })
                .unwrap_or_else(|| "invalid graph".into())),
        }
    }
}

/// One commit of the log with its raw changes under the DR directory (paths relative to it).
struct LogCommit {
    meta: CommitMeta,
    parent: Option<String>,
    /// (path, new blob id, or `None` when deleted).
    changes: Vec<(String, Option<String>)>,
}

/// Parses `git log -z --raw --no-renames --format=%x01%H%x00%P%x00%an%x00%aI%x00%s`.
fn parse_log(out: &[u8], prefix: &str) -> Vec<LogCommit> {
    let text = String::from_utf8_lossy(out);
    let mut commits = Vec::new();
    for rec in text.split('\x01').filter(|r| !r.is_empty()) {
        let mut f = rec.split('\0');
        let mut next = || f.next().unwrap_or("").to_string();
        let (commit, parents, author, date, summary) = (next(), next(), next(), next(), next());
        let parent = parents.split_whitespace().next().map(str::to_string);
        let mut changes = Vec::new();
        let rest: Vec<&str> = f.collect();
        let mut i = 0;
        while i + 1 < rest.len() {
            let meta = rest[i].trim_start_matches('\n');
            if !meta.starts_with(':') {
                i += 1;
                continue;
            }
            // `:old_mode new_mode old_id new_id STATUS`, then the path.
            let parts: Vec<&str> = meta[1..].split_whitespace().collect();
            let path = rest[i + 1];
            i += 2;
            if parts.len() < 5 {
                continue;
            }
            let Some(rel) = path.strip_prefix(prefix) else {
                continue;
            };
            let blob =
                (!parts[4].starts_with('D') && parts[1] != "160000").then(|| parts[3].to_string());
            changes.push((rel.to_string(), blob));
        }
        commits.push(LogCommit {
            meta: CommitMeta {
                commit,
                date,
                author,
                summary,
            },
            parent,
            changes,
        });
    }
    commits
}

/// Files that can hold graph data: `.toml` outside playbooks/ and the state directory.
fn graph_candidate(rel: &str) -> bool {
    rel.ends_with(".toml") && !rel.starts_with("playbooks/") && !rel.starts_with(".meeseeks/")
}

/// The `include` globs of a graph.toml: read from the top-level part only (before the first
/// table), so that a 10 000-service file is not parsed twice per commit.
fn include_globs(graph: &str) -> Vec<String> {
    let mut head = String::new();
    for line in graph.lines() {
        if line.trim_start().starts_with('[') && !head.trim_end().ends_with([',', '[']) {
            break;
        }
        head.push_str(line);
        head.push('\n');
    }
    let Ok(t) = head.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    t.get("include")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The files of a commit's graph: `graph` itself and whatever its include globs match.
fn graph_files(
    state: &BTreeMap<String, String>,
    graph: &str,
    globs: &[String],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(b) = state.get(graph) {
        out.insert(graph.to_string(), b.clone());
    }
    let matchers: Vec<globset::GlobMatcher> = globs
        .iter()
        .filter_map(|g| {
            globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .ok()
        })
        .map(|g| g.compile_matcher())
        .collect();
    if !matchers.is_empty() {
        for (p, b) in state {
            if p != graph && matchers.iter().any(|m| m.is_match(p)) {
                out.insert(p.clone(), b.clone());
            }
        }
    }
    out
}

pub fn run(g: &Global, a: &HistoryArgs) -> Result<i32> {
    let path = a.dir.path();
    // A lone graph file is accepted as everywhere else: its directory, that file name.
    let (dir, graph_name) = if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "graph.toml".into());
        (
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            name,
        )
    } else {
        (path, "graph.toml".to_string())
    };
    let top_out = git(&dir, &["rev-parse", "--show-toplevel", "--show-prefix"])?;
    let top_text = String::from_utf8_lossy(&top_out);
    let mut lines = top_text.lines();
    let top = PathBuf::from(lines.next().unwrap_or("."));
    let prefix = lines.next().unwrap_or("").to_string();

    let mut args = vec![
        "log".to_string(),
        "--first-parent".into(),
        "--diff-merges=first-parent".into(),
        "--raw".into(),
        "-z".into(),
        "--no-abbrev".into(),
        "--no-renames".into(),
        "--reverse".into(),
        "--format=%x01%H%x00%P%x00%an%x00%aI%x00%s".into(),
    ];
    if let Some(s) = &a.since {
        args.push(format!("--since={s}"));
    }
    args.push("--".into());
    args.push(if prefix.is_empty() {
        ".".into()
    } else {
        prefix.clone()
    });
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = parse_log(&git(&top, &argv)?, &prefix);

    // The state before the first commit listed: its parent's tree.
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    if let Some(p) = log.first().and_then(|c| c.parent.as_deref()) {
        let spec = if prefix.is_empty() { "." } else { &prefix };
        let out = git(&top, &["ls-tree", "-r", "-z", "--full-tree", p, "--", spec])?;
        for entry in String::from_utf8_lossy(&out).split('\0') {
            // `<mode> blob <id>\t<path>`
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut m = meta.split_whitespace();
            if let (Some(_), Some("blob"), Some(id), Some(rel)) =
                (m.next(), m.next(), m.next(), path.strip_prefix(&prefix))
                && graph_candidate(rel)
            {
                state.insert(rel.to_string(), id.to_string());
            }
        }
    }

    // Which commits changed the graph, and with which files: cheap (blob ids, and graph.toml's
    // head for its include globs), in order.
    let mut blobs = Blobs::start(&top)?;
    let mut globs: (String, Vec<String>) = (String::new(), Vec::new());
    let mut jobs: Vec<(Option<CommitMeta>, BTreeMap<String, String>)> = Vec::new();
    let mut prev_files: Option<BTreeMap<String, String>> = None;
    // The graph before the window (with --since, or when the history starts at a merge):
    // the first commit listed is compared with it, not with nothing.
    if let Some(b) = state.get(&graph_name).cloned() {
        globs = (
            b.clone(),
            include_globs(&String::from_utf8_lossy(&blobs.get(&b)?)),
        );
        let files = graph_files(&state, &graph_name, &globs.1);
        jobs.push((None, files.clone()));
        prev_files = Some(files);
    }
    for c in log {
        let mut touched = false;
        for (rel, blob) in c.changes {
            if !graph_candidate(&rel) {
                continue;
            }
            touched = true;
            match blob {
                Some(b) => state.insert(rel, b),
                None => state.remove(&rel),
            };
        }
        if !touched {
            continue;
        }
        // The include globs only change when graph.toml does.
        let graph_blob = state.get(&graph_name).cloned().unwrap_or_default();
        if graph_blob != globs.0 {
            let text = if graph_blob.is_empty() {
                Vec::new()
            } else {
                blobs.get(&graph_blob)?
            };
            globs = (
                graph_blob.clone(),
                include_globs(&String::from_utf8_lossy(&text)),
            );
        }
        let files = graph_files(&state, &graph_name, &globs.1);
        if prev_files.as_ref() == Some(&files) {
            continue;
        }
        prev_files = Some(files.clone());
        // No graph at this commit (not yet created, or deleted): nothing to compare.
        if files.contains_key(&graph_name) {
            jobs.push((Some(c.meta), files));
        }
    }
    drop(blobs);

    // Loading dominates (one whole graph per commit) and commits load independently: two
    // workers (each with its own scratch copy and `git cat-file`) load alternate commits
    // ahead, the comparisons run here in order. Each worker runs at most two graphs ahead.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2)
        .min(jobs.len().max(1));
    let mut report = HistoryReport::new(a.watch.clone());
    let mut prev: Option<Model> = None;
    std::thread::scope(|scope| -> Result<()> {
        let mut rxs = Vec::new();
        for k in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<LoadedGraph>>(2);
            rxs.push(rx);
            let (jobs, top, graph_name, prefix) = (&jobs, &top, &graph_name, &prefix);
            scope.spawn(move || {
                let start = || -> Result<(Blobs, Checkout)> {
                    Ok((
                        Blobs::start(top)?,
                        Checkout {
                            scratch: Scratch::new()?,
                            written: BTreeMap::new(),
                            graph_name: graph_name.clone(),
                        },
                    ))
                };
                let (mut blobs, mut checkout) = match start() {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for (_, files) in jobs.iter().skip(k).step_by(workers) {
                    let r = checkout
                        .load(files, &mut blobs)
                        .map(|l| checkout.graph(l, prefix));
                    let stop = r.is_err();
                    // The receiver gone (an error there) ends this worker too.
                    if tx.send(r).is_err() || stop {
                        return;
                    }
                }
            });
        }
        for (i, (meta, _)) in jobs.iter().enumerate() {
            let loaded = rxs[i % workers]
                .recv()
                .map_err(|_| Error::Other("a history worker stopped".into()))??;
            match (meta, loaded) {
                (None, Ok(m)) => prev = Some(m),
                (None, Err(_)) => {}
                (Some(meta), Ok(m)) => {
                    report.push(meta.clone(), prev.as_ref(), &m);
                    prev = Some(m);
                }
                (Some(meta), Err(first)) => report.push_invalid(meta.clone(), prev.as_ref(), first),
            }
        }
        Ok(())
    })?;
    for w in &a.watch {
        if let Some(m) = &prev
            && m.id(w).is_none()
            && !report.commits.iter().any(|c| c.dependents.contains_key(w))
        {
            m.lookup(w)?;
        }
    }
    if report.commits.is_empty() && !g.quiet {
        eprintln!(
            "no commit changed {} in {}{}",
            graph_name,
            dir.display(),
            a.since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default()
        );
    }
    emit_report(&report, ReportFormat::from(a.format), a.out.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_globs_read_from_the_head_only() {
        let g = "# graph\ninclude = [\n  \"teams/*.toml\",\n  \"gen/**/*.toml\",\n]\n\n[defaults]\nrto = \"1h\"\n[services.a]\ntier = 0\n";
        assert_eq!(include_globs(g), ["teams/*.toml", "gen/**/*.toml"]);
        assert!(include_globs("[services.a]\ntier = 0\n").is_empty());
    }

    #[test]
    fn graph_files_follow_the_globs() {
        let state: BTreeMap<String, String> = [
            ("graph.toml", "g"),
            ("teams/a.toml", "a"),
            ("teams/sub/b.toml", "b"),
            ("other.toml", "o"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = graph_files(&state, "graph.toml", &["teams/*.toml".into()]);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["graph.toml", "teams/a.toml"]);
    }
}
