//! Phase 1 of an evaluation: read the playbooks of the services in scope, render every
//! template as a run would, look programs up, and turn what needs the network or a command
//! into probe jobs. Nothing here starts a process or opens a connection.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Options, Problem, ServiceResult, Status};
use crate::mask::Masker;
use crate::model::{Check, CheckKind, HttpSpec, Model, Preflight, Step, StepKind, SvcId};
use crate::plan::Scope;
use crate::template::{Builtins, Renderer};

/// A probe to run in phase 2. Connection probes are shared by every item that targets the
/// same endpoint (2 000 services' checks often point at a handful of load balancers).
#[derive(Debug, Clone)]
pub(super) enum Job {
    Connect {
        host: String,
        port: u16,
        tls: bool,
        timeout: Duration,
    },
    /// A `[[preflight]]` HTTP request, with the expectations in its spec.
    Http { spec: HttpSpec, timeout: Duration },
    Command {
        program: Program,
        timeout: Duration,
        expect: Expect,
    },
}

#[derive(Debug, Clone)]
pub(super) enum Program {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) enum Expect {
    /// Exit 0, and the output checks of a `[[preflight]]` command.
    Output {
        expect_body: Option<String>,
        max: Option<f64>,
    },
    /// `backup.check`: the last line is the last backup's time (RFC 3339).
    Backup {
        rpo: Option<Duration>,
        schedule: Duration,
    },
}

/// One thing of a service waiting for a job's outcome.
#[derive(Debug)]
pub(super) struct Item {
    /// Index in `Inspection::services`.
    pub service: usize,
    pub check: String,
    pub file: String,
    pub line: u32,
    pub job: usize,
}

#[derive(Debug)]
pub(super) struct Inspection {
    /// One per service in scope, in scope order, with the problems found without probing.
    pub services: Vec<ServiceResult>,
    pub items: Vec<Item>,
    pub jobs: Vec<Job>,
}

/// Where an item is declared, and what to call it.
struct Origin<'a> {
    check: String,
    file: &'a str,
    line: u32,
}

/// The playbook being inspected.
struct Pb<'a> {
    /// Index in `Inspection::services`.
    k: usize,
    id: SvcId,
    /// Relative to the DR directory.
    file: &'a str,
    /// `env.X` / `secret.X` it uses that this environment does not set.
    missing: &'a [(&'a str, String)],
}

/// What a rendered step or check would touch, as far as preflight cares.
enum Action {
    Program(String),
    Url(String),
    Tcp(String),
    Nothing,
}

impl Action {
    fn of_step(k: &StepKind) -> Action {
        match k {
            StepKind::Cmd(argv) => Action::program(argv),
            StepKind::Run(line) => Action::shell(line),
            StepKind::Http(h) => Action::Url(h.url.clone()),
            StepKind::Tcp(addr) => Action::Tcp(addr.clone()),
            StepKind::Wait(_) | StepKind::Manual(_) => Action::Nothing,
        }
    }

    fn of_check(k: &CheckKind) -> Action {
        match k {
            CheckKind::Cmd(argv) => Action::program(argv),
            CheckKind::Run(line) => Action::shell(line),
            CheckKind::Http(h) => Action::Url(h.url.clone()),
            CheckKind::Tcp(addr) => Action::Tcp(addr.clone()),
        }
    }

    fn program(argv: &[String]) -> Action {
        argv.first()
            .map_or(Action::Nothing, |p| Action::Program(p.clone()))
    }

    fn shell(line: &str) -> Action {
        plain_command(line).map_or(Action::Nothing, |w| Action::Program(w.to_string()))
    }
}

struct Inspector<'m> {
    model: &'m Model,
    renderer: Renderer<'m>,
    opts: &'m Options,
    /// Working directory of commands in a run (relative programs resolve against it).
    cwd: PathBuf,
    path_var: Option<OsString>,
    /// Program → the problem with it, if any.
    programs: HashMap<String, Option<String>>,
    jobs: Vec<Job>,
    connects: HashMap<(String, u16, bool, Duration), usize>,
    items: Vec<Item>,
}

pub(super) fn inspect(model: &Model, scope: &Scope, opts: &Options, masker: &Masker) -> Inspection {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let builtins = Builtins::new(
        "preflight",
        opts.mode,
        abs(&opts.state_dir).join("runs").join("preflight"),
        abs(&model.dir),
    );
    let renderer = Renderer::new(model, opts.cli_vars.clone(), builtins, masker.clone());
    // Registers every secret value for masking before anything is rendered (the missing
    // ones are reported where they are used, below).
    renderer.prepare_secrets(&scope.ids);
    let mut ins = Inspector {
        model,
        renderer,
        opts,
        cwd: model.dir.clone(),
        path_var: std::env::var_os("PATH"),
        programs: HashMap::new(),
        jobs: Vec::new(),
        connects: HashMap::new(),
        items: Vec::new(),
    };
    let services = scope
        .ids
        .iter()
        .enumerate()
        .map(|(k, &id)| ins.service(k, id))
        .collect();
    Inspection {
        services,
        items: ins.items,
        jobs: ins.jobs,
    }
}

/// `path` relative to the DR directory, for problems' `file`.
fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

fn problem(o: &Origin<'_>, status: Status, reason: String) -> Problem {
    Problem {
        check: o.check.clone(),
        reason,
        file: o.file.to_string(),
        line: o.line,
        status,
    }
}

impl Inspector<'_> {
    fn service(&mut self, k: usize, id: SvcId) -> ServiceResult {
        let s = &self.model.services[id];
        let mut out = ServiceResult {
            name: s.name.clone(),
            status: Status::Ready,
            problems: Vec::new(),
            checked: 0,
            certificates: Vec::new(),
            backup: None,
        };
        match &s.playbook {
            None => out.problems.push(Problem {
                check: "playbook".into(),
                reason: format!(
                    "no playbook: `meeseeks run` refuses to start without playbooks/{}.toml",
                    s.name
                ),
                file: "graph.toml".into(),
                line: s.line,
                status: Status::NotReady,
            }),
            Some(pb) => {
                let file = relative(&self.model.dir, &pb.file);
                // `env.X` / `secret.X` a run would not find: reported at each use.
                let missing: Vec<(&str, String)> = pb
                    .secrets
                    .iter()
                    .map(|n| ("secret", n))
                    .chain(pb.envs.iter().map(|n| ("env", n)))
                    .filter(|(_, n)| std::env::var_os(n).is_none())
                    .map(|(root, n)| (root, n.clone()))
                    .collect();
                let cx = Pb {
                    k,
                    id,
                    file: &file,
                    missing: &missing,
                };
                for step in pb.steps.iter().filter(|st| st.runs_in(self.opts.mode)) {
                    self.step(&cx, "step", step, true, &mut out);
                }
                for c in &pb.checks {
                    self.check(&cx, c, &mut out);
                }
                // Rollback and cleanup talk to endpoints that may only exist mid-recovery:
                // their templates and programs are checked, not their targets.
                for (section, steps) in [("rollback", &pb.rollback), ("cleanup", &pb.cleanup)] {
                    for step in steps {
                        self.step(&cx, section, step, false, &mut out);
                    }
                }
                for p in &pb.preflight {
                    self.preflight_probe(&cx, p, &mut out);
                }
            }
        }
        if let Some(b) = &s.backup
            && let Some(cmd) = &b.check
        {
            let o = Origin {
                check: "backup.check".into(),
                file: "graph.toml",
                line: s.line,
            };
            out.checked += 1;
            let ctx = std::cell::OnceCell::new();
            match self.renderer.render(id, &ctx, cmd) {
                Ok(line) => self.item(
                    k,
                    &o,
                    Job::Command {
                        program: Program::Shell(line),
                        timeout: Preflight::DEFAULT_TIMEOUT,
                        expect: Expect::Backup {
                            rpo: s.rpo,
                            schedule: b.schedule,
                        },
                    },
                ),
                Err(e) => out.problems.push(problem(
                    &o,
                    Status::NotReady,
                    format!("cannot render: {}", e.message),
                )),
            }
        }
        out
    }

    fn step(
        &mut self,
        pb: &Pb<'_>,
        section: &str,
        step: &Step,
        network: bool,
        out: &mut ServiceResult,
    ) {
        let o = Origin {
            check: format!("{section}:{}", step.name),
            file: pb.file,
            line: step.line,
        };
        let rendered = self
            .renderer
            .render_step(pb.id, step)
            .map(|r| Action::of_step(&r.kind))
            .map_err(|e| (format!("{:?}", step.kind), e.message));
        self.entry(pb, &o, rendered, step.preflight, network, out);
    }

    fn check(&mut self, pb: &Pb<'_>, c: &Check, out: &mut ServiceResult) {
        let o = Origin {
            check: format!("check:{}", c.name),
            file: pb.file,
            line: c.line,
        };
        let rendered = self
            .renderer
            .render_check(pb.id, c)
            .map(|r| Action::of_check(&r.kind))
            .map_err(|e| (format!("{:?}", c.kind), e.message));
        self.entry(pb, &o, rendered, c.preflight, true, out);
    }

    /// A step or check, rendered (or the raw text and why it does not render): its program
    /// is looked up and, with `network`, its target becomes a connection probe, unless it
    /// says `preflight = false`.
    fn entry(
        &mut self,
        pb: &Pb<'_>,
        o: &Origin<'_>,
        rendered: Result<Action, (String, String)>,
        probe: bool,
        network: bool,
        out: &mut ServiceResult,
    ) {
        out.checked += 1;
        let action = match rendered {
            Ok(a) => a,
            Err((raw, message)) => {
                out.problems
                    .push(render_problem(o, &raw, pb.missing, &message));
                return;
            }
        };
        if !probe {
            return;
        }
        match action {
            Action::Program(p) => self.program(o, &p, out),
            Action::Url(url) if network => self.url(pb.k, o, &url, out),
            Action::Tcp(addr) if network => {
                self.tcp(pb.k, o, &addr, self.opts.connect_timeout, out)
            }
            _ => {}
        }
    }

    fn preflight_probe(&mut self, pb: &Pb<'_>, p: &Preflight, out: &mut ServiceResult) {
        let (k, id) = (pb.k, pb.id);
        let o = Origin {
            check: format!("preflight:{}", p.name),
            file: pb.file,
            line: p.line,
        };
        out.checked += 1;
        // Rendered as the check it looks like: the same fields, the same rules.
        let as_check = Check {
            name: p.name.clone(),
            kind: p.kind.clone(),
            interval: Check::DEFAULT_INTERVAL,
            timeout: p.timeout,
            healthy_after: 1,
            preflight: true,
            line: p.line,
        };
        let ctx = std::cell::OnceCell::new();
        let rendered = self.renderer.render_check(id, &as_check).and_then(|c| {
            let body = p
                .expect_body
                .as_ref()
                .map(|b| self.renderer.render(id, &ctx, b))
                .transpose()?;
            Ok((c.kind, body))
        });
        let (kind, expect_body) = match rendered {
            Ok(r) => r,
            Err(e) => {
                let raw = format!("{:?} {:?}", p.kind, p.expect_body);
                out.problems
                    .push(render_problem(&o, &raw, pb.missing, &e.message));
                return;
            }
        };
        let output = |program| Job::Command {
            program,
            timeout: p.timeout,
            expect: Expect::Output {
                expect_body: expect_body.clone(),
                max: p.max,
            },
        };
        match kind {
            CheckKind::Cmd(argv) => self.item(k, &o, output(Program::Argv(argv))),
            CheckKind::Run(line) => self.item(k, &o, output(Program::Shell(line))),
            CheckKind::Http(spec) => self.item(
                k,
                &o,
                Job::Http {
                    spec,
                    timeout: p.timeout,
                },
            ),
            CheckKind::Tcp(addr) => self.tcp(k, &o, &addr, p.timeout, out),
        }
    }

    fn item(&mut self, k: usize, o: &Origin<'_>, job: Job) {
        let key = match &job {
            Job::Connect {
                host,
                port,
                tls,
                timeout,
            } => Some((host.clone(), *port, *tls, *timeout)),
            _ => None,
        };
        let index = match key {
            Some(key) => *self.connects.entry(key).or_insert_with(|| {
                self.jobs.push(job);
                self.jobs.len() - 1
            }),
            None => {
                self.jobs.push(job);
                self.jobs.len() - 1
            }
        };
        self.items.push(Item {
            service: k,
            check: o.check.clone(),
            file: o.file.to_string(),
            line: o.line,
            job: index,
        });
    }

    /// A step's or check's URL: a connection probe to its host (TLS for https).
    fn url(&mut self, k: usize, o: &Origin<'_>, url: &str, out: &mut ServiceResult) {
        match url_target(url) {
            Ok((host, port, tls)) => self.item(
                k,
                o,
                Job::Connect {
                    host,
                    port,
                    tls,
                    timeout: self.opts.connect_timeout,
                },
            ),
            Err(e) => out.problems.push(problem(o, Status::NotReady, e)),
        }
    }

    fn tcp(
        &mut self,
        k: usize,
        o: &Origin<'_>,
        addr: &str,
        timeout: Duration,
        out: &mut ServiceResult,
    ) {
        match host_port(addr) {
            Some((host, port)) => self.item(
                k,
                o,
                Job::Connect {
                    host,
                    port,
                    tls: false,
                    timeout,
                },
            ),
            None => out.problems.push(problem(
                o,
                Status::NotReady,
                format!("`{addr}` is not host:port"),
            )),
        }
    }

    /// Whether `program` would start on this host: PATH lookup, or for a path (relative to the
    /// DR directory, the working directory of a run's commands) that it is an executable file.
    fn program(&mut self, o: &Origin<'_>, program: &str, out: &mut ServiceResult) {
        let (path_var, cwd) = (&self.path_var, &self.cwd);
        let found = self
            .programs
            .entry(program.to_string())
            .or_insert_with(|| match which::which_in(program, path_var.as_ref(), cwd) {
                Ok(_) => None,
                Err(_) if program.contains('/') => Some(format!(
                    "`{program}` does not exist or is not executable (relative paths start from the DR directory)"
                )),
                Err(_) => Some(format!(
                    "`{program}` is not installed on this host (not found on PATH)"
                )),
            });
        if let Some(reason) = found {
            out.problems
                .push(problem(o, Status::NotReady, reason.clone()));
        }
    }
}

/// A render failure, naming the missing secret or environment variable when that is the cause.
fn render_problem(o: &Origin<'_>, raw: &str, missing: &[(&str, String)], message: &str) -> Problem {
    let used: Vec<String> = missing
        .iter()
        .filter(|(root, name)| mentions(raw, &format!("{root}.{name}")))
        .map(|(root, name)| match *root {
            "secret" => format!("secret `{name}` is not set (export {name} before a run)"),
            _ => format!("environment variable `{name}` is not set"),
        })
        .collect();
    let reason = if used.is_empty() {
        format!("template does not render: {message}")
    } else {
        used.join("; ")
    };
    problem(o, Status::NotReady, reason)
}

/// `text` contains `name` as a whole identifier path (`secret.DB` is not in `secret.DB_RO`).
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let after = text[i + name.len()..].chars().next();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Words a shell runs without looking a program up, or that start compound commands.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "[[", "alias", "break", "case", "cd", "command", "continue", "echo",
    "eval", "exec", "exit", "export", "false", "for", "function", "if", "local", "printf", "read",
    "readonly", "return", "set", "shift", "source", "test", "time", "trap", "true", "type",
    "ulimit", "umask", "unset", "until", "wait", "while", "{", "(",
];

/// The program a `run` line starts, when that is plain to see: leading `NAME=value`
/// assignments skipped, no quoting, expansion or builtin in the way. `None` otherwise (the
/// line is then only rendered, not second-guessed).
pub(super) fn plain_command(line: &str) -> Option<&str> {
    let plain = |w: &str| {
        w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./+@%:,".contains(&b))
    };
    for word in line.split_whitespace() {
        if let Some((name, value)) = word.split_once('=')
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && plain(value)
        {
            continue;
        }
        if !plain(word) || word.starts_with('-') || SHELL_WORDS.contains(&word) {
            return None;
        }
        return Some(word);
    }
    None
}

/// `(host, port, tls)` of an http(s) URL.
fn url_target(url: &str) -> Result<(String, u16, bool), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    let tls = match u.scheme() {
        "https" => true,
        "http" => false,
        s => return Err(format!("unsupported URL scheme `{s}` in `{url}`")),
    };
    let host = match u.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(format!("URL `{url}` has no host")),
    };
    let port = u
        .port_or_known_default()
        .ok_or_else(|| format!("URL `{url}` has no port"))?;
    Ok((host, port, tls))
}

/// `host:port` (IPv6 hosts in brackets).
fn host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands() {
        assert_eq!(plain_command("kubectl get pods"), Some("kubectl"));
        assert_eq!(
            plain_command("  KUBECONFIG=/x/y kubectl get"),
            Some("kubectl")
        );
        assert_eq!(
            plain_command("/usr/bin/pg_ctl promote"),
            Some("/usr/bin/pg_ctl")
        );
        assert_eq!(plain_command("cd /tmp && make"), None);
        assert_eq!(plain_command("\"$TOOL\" run"), None);
        assert_eq!(plain_command("$(which x) y"), None);
        assert_eq!(plain_command("set -e\nfoo"), None);
        assert_eq!(plain_command(""), None);
    }

    #[test]
    fn targets() {
        assert_eq!(
            url_target("https://lb.internal/api").unwrap(),
            ("lb.internal".into(), 443, true)
        );
        assert_eq!(
            url_target("http://[::1]:8080/x").unwrap(),
            ("::1".into(), 8080, false)
        );
        assert!(url_target("ftp://x/").is_err());
        assert_eq!(host_port("[::1]:5432"), Some(("::1".into(), 5432)));
        assert_eq!(host_port("db:5432"), Some(("db".into(), 5432)));
        assert_eq!(host_port("db"), None);
    }

    #[test]
    fn mentions_whole_names() {
        assert!(mentions("Bearer {{ secret.DB }}", "secret.DB"));
        assert!(!mentions("{{ secret.DB_RO }}", "secret.DB"));
    }
}
