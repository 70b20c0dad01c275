//! Fuzzing on stable Rust: a mutation loop seeded from the repository's own inputs, with
//! `arbitrary` for structured graphs, over five targets (graph loader, playbook and template
//! loader, journal reader, observed JSON/CSV parsers, duration parsing). A panic anywhere in a
//! target is a crash: the input is saved, named by the hash of the panic site.
//!
//! There is no coverage instrumentation on stable: an input joins the corpus when it makes the
//! target behave in a way not seen before (a new set of diagnostic codes, a new error kind), a
//! cheap stand-in for new coverage.
//!
//! Shared by `examples/fuzz.rs` (runs for N minutes) and `tests/fuzz_smoke.rs` (CI: a few
//! hundred executions per target, fixed seed, plus every saved regression input).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

pub const TARGETS: &[&str] = &["graph", "playbook", "journal", "observed", "duration"];

/// Inputs larger than this are cut: the targets bound their own input sizes elsewhere.
const MAX_INPUT: usize = 256 * 1024;

/// xorshift64*: deterministic per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Where a target may write files (the loaders read a DR directory).
pub struct Scratch {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let tmp = tempfile::tempdir().expect("temp dir");
        Scratch {
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, pred: &dyn Fn(&Path) -> bool, out: &mut Vec<Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, pred, out);
        } else if pred(&p)
            && let Ok(b) = std::fs::read(&p)
        {
            out.push(b);
        }
    }
}

/// The seed corpus of `target`, from the repository's fixtures and examples.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let r = repo();
    let mut out = Vec::new();
    let is = |name: &'static str| move |p: &Path| p.file_name().is_some_and(|n| n == name);
    let in_playbooks = |p: &Path| {
        p.extension().is_some_and(|e| e == "toml")
            && p.components().any(|c| c.as_os_str() == "playbooks")
    };
    match target {
        "graph" => {
            for d in ["examples", "tests/fixtures"] {
                files_under(&r.join(d), &is("graph.toml"), &mut out);
            }
        }
        "playbook" => {
            for d in ["examples", "tests/fixtures", "playbooks"] {
                files_under(&r.join(d), &in_playbooks, &mut out);
            }
        }
        "journal" => {
            files_under(
                &r.join("tests/fixtures"),
                &|p| p.extension().is_some_and(|e| e == "jsonl"),
                &mut out,
            );
        }
        "observed" => {
            out.push(b"caller,callee,count\n# comment\nweb,checkout,500\ncheckout,orders,300\n\"orders-db\",orders,7\nloadgen,web,1000\n".to_vec());
            out.push(br#"{"data":[{"parent":"web","child":"checkout","callCount":500},{"parent":"checkout","child":"orders","callCount":3}]}"#.to_vec());
            out.push(br#"[{"parent":"orders","child":"orders-db","callCount":7}]"#.to_vec());
        }
        "duration" => {
            for s in [
                "90s",
                "5m",
                "1h30m",
                "7d",
                "2h 5min",
                "250ms",
                "1y",
                "0s",
                "18446744073709551615s",
                "99999999999h",
            ] {
                out.push(s.as_bytes().to_vec());
            }
        }
        _ => {}
    }
    out.retain(|s| !s.is_empty());
    out
}

const DICTIONARY: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ secret.X }}",
    "{{ env.HOME }}",
    "| upper",
    "[[steps]]",
    "[[checks]]",
    "[services.x]",
    "depends_on = [\"a\"]",
    "\"",
    "'''",
    "\"\"\"",
    "=",
    "\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\\u0000",
    "\\",
    "-",
    "1e999",
    "18446744073709551615",
    "9223372036854775808",
    "\"90s\"",
    "timeout",
    "retries",
    "rto",
    "tier",
    "run = ",
    "cmd = []",
    "http = { url = \"\" }",
    "null",
    "\"seq\":",
    "\"event\":",
    "\u{feff}",
    "\r\n",
    "#",
    "\t",
    "é",
    "\u{202e}",
    "0x",
    "inf",
    "nan",
];

/// One mutation of `input` (sometimes spliced with `other`).
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                v.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let t = DICTIONARY[rng.below(DICTIONARY.len())];
                v.splice(i..i, t.bytes());
            }
            4 if len > 0 => {
                // Duplicate a chunk (deep nesting, long lines, repeated keys).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = v[i..i + n].to_vec();
                let many = rng.below(8) == 0;
                let times = 1 + rng.below(if many { 5000 } else { 4 });
                let at = rng.below(v.len() + 1);
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                    if v.len() > MAX_INPUT {
                        break;
                    }
                }
            }
            5 if !other.is_empty() => {
                let a = rng.below(v.len() + 1);
                let b = rng.below(other.len());
                let n = 1 + rng.below((other.len() - b).min(256));
                v.splice(a..a, other[b..b + n].iter().copied());
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            7 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            8 if len > 0 => {
                // A digit run made huge or negative.
                let i = rng.below(len);
                let t: &[u8] = [b"99999999999999999999".as_slice(), b"-1", b"0"][rng.below(3)];
                v.splice(i..i, t.iter().copied());
            }
            _ => {
                let i = rng.below(len + 1);
                let set = b"\n\"'{}[]=,.:#";
                v.insert(i, set[rng.below(set.len())]);
            }
        }
    }
    v.truncate(MAX_INPUT);
    v
}

// ------------------------------------------------------------------------------------------
// Structured graphs (`arbitrary`)

#[derive(Arbitrary, Debug)]
struct GraphSpec {
    parallel: Option<u8>,
    rto: Option<u32>,
    vars: Vec<(u8, u16)>,
    services: Vec<SvcSpec>,
}

#[derive(Arbitrary, Debug)]
struct SvcSpec {
    name: u8,
    tier: u8,
    rto: Option<u32>,
    deps: Vec<u8>,
    soft: Vec<u8>,
    stateful: bool,
}

fn name(i: u8) -> String {
    format!("s{}", i % 64)
}

/// A graph.toml from arbitrary bytes: mostly valid, with duplicates, self-loops, cycles and
/// unknown names wherever the bytes put them.
pub fn structured_graph(bytes: &[u8]) -> Vec<u8> {
    let mut u = Unstructured::new(bytes);
    let Ok(g) = GraphSpec::arbitrary(&mut u) else {
        return b"[services.a]\ntier = 0\n".to_vec();
    };
    let mut s = String::from("[defaults]\n");
    if let Some(p) = g.parallel {
        s.push_str(&format!("parallel = {p}\n"));
    }
    if let Some(r) = g.rto {
        s.push_str(&format!("rto = \"{r}s\"\n"));
    }
    s.push_str("[vars]\n");
    for (k, v) in &g.vars {
        s.push_str(&format!("v{k} = {v}\n"));
    }
    for sv in &g.services {
        s.push_str(&format!(
            "[services.{}]\ntier = {}\n",
            name(sv.name),
            sv.tier % 5
        ));
        if let Some(r) = sv.rto {
            s.push_str(&format!("rto = \"{r}s\"\n"));
        }
        let list = |v: &[u8]| {
            v.iter()
                .map(|&d| format!("\"{}\"", name(d)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "depends_on = [{}]\nsoft_depends_on = [{}]\nstateful = {}\n",
            list(&sv.deps),
            list(&sv.soft),
            sv.stateful
        ));
    }
    s.into_bytes()
}

// ------------------------------------------------------------------------------------------
// Targets

/// What an execution did, for the novelty signal.
fn signal(parts: impl IntoIterator<Item = String>) -> u64 {
    let set: BTreeSet<String> = parts.into_iter().collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    set.hash(&mut h);
    h.finish()
}

fn diag_codes(d: &meeseeks::load::diag::Diagnostics) -> Vec<String> {
    d.items
        .iter()
        .map(|x| format!("{:?}:{}", x.severity, x.code))
        .collect()
}

fn load_dir(dir: &Path) -> (Option<meeseeks::model::Model>, Vec<String>) {
    let opts = meeseeks::load::LoadOptions::default();
    let loaded = meeseeks::load::load(dir, &opts);
    // Rendering the diagnostics is part of the target: a diagnostic that cannot be shown is
    // as bad as one that was never made.
    let text = loaded.diags.render(false);
    let mut sig = diag_codes(&loaded.diags);
    sig.push(format!("rendered:{}", text.len().min(1)));
    // What the commands do: a model with errors is never planned or run.
    let model = loaded.model.filter(|_| !loaded.diags.has_errors());
    (model, sig)
}

fn plan_all(model: &meeseeks::model::Model) -> String {
    let opts = meeseeks::plan::PlanOptions::default();
    match meeseeks::plan::build_plan(model, &opts) {
        Ok(p) => format!("plan:{}", p.services.len().min(3)),
        Err(_) => "plan:err".into(),
    }
}

fn graph_target(input: &[u8], s: &Scratch) -> u64 {
    let _ = std::fs::remove_dir_all(s.dir.join("playbooks"));
    std::fs::write(s.dir.join("graph.toml"), input).expect("write");
    let (model, mut sig) = load_dir(&s.dir);
    if let Some(m) = model {
        sig.push(plan_all(&m));
    }
    signal(sig)
}

const PLAYBOOK_GRAPH: &str = "[vars]\nsite = \"dc2\"\n[services.svc]\ntier = 0\nrto = \"1h\"\n[services.orders-db]\ntier = 0\n[services.checkout]\ntier = 1\n";

/// Renders every step and check of `model` as a run would, secrets registered for masking.
fn render_all(model: &meeseeks::model::Model) -> Vec<String> {
    use meeseeks::template::{Builtins, Renderer, describe};
    let masker = meeseeks::mask::Masker::new();
    let b = Builtins::new(
        "r1",
        meeseeks::model::Mode::Drill,
        "/s/r1".into(),
        "/dr".into(),
    );
    let r = Renderer::new(model, BTreeMap::new(), b, masker.clone());
    let mut sig = Vec::new();
    let ids: Vec<usize> = (0..model.services.len()).collect();
    let _ = r.prepare_secrets(&ids);
    let _ = meeseeks::template::missing_vars(model, &ids, meeseeks::model::Mode::Drill);
    for (id, svc) in model.services.iter().enumerate() {
        let Some(pb) = &svc.playbook else { continue };
        for st in pb.steps.iter().chain(&pb.rollback).chain(&pb.cleanup) {
            match r.render_step(id, st) {
                Ok(x) => {
                    let _ = describe(&x, &masker);
                    sig.push(format!("step:{}", x.kind.kind_name()));
                }
                Err(_) => sig.push("step:render-error".into()),
            }
        }
        for c in &pb.checks {
            sig.push(format!("check:{}", r.render_check(id, c).is_ok()));
        }
    }
    sig
}

fn playbook_target(input: &[u8], s: &Scratch) -> u64 {
    std::fs::write(s.dir.join("graph.toml"), PLAYBOOK_GRAPH).expect("write");
    std::fs::create_dir_all(s.dir.join("playbooks")).expect("mkdir");
    std::fs::write(s.dir.join("playbooks/svc.toml"), input).expect("write");
    let (model, mut sig) = load_dir(&s.dir);
    if let Some(m) = model {
        sig.extend(render_all(&m));
        sig.push(plan_all(&m));
    }
    signal(sig)
}

fn journal_target(input: &[u8], _s: &Scratch) -> u64 {
    match meeseeks::store::file::reader::parse_journal(input, "fuzz.jsonl") {
        Ok(replay) => {
            let st = meeseeks::runstate::RunState::fold(&replay.records);
            let input = meeseeks::exec::RunnerInput::from_state(&st);
            signal([
                format!("records:{}", replay.records.len().min(4)),
                format!("warnings:{}", replay.warnings.len().min(2)),
                format!("state:{:?}", st.state),
                format!("done:{}", input.already_recovered.len().min(2)),
            ])
        }
        Err(e) => signal([format!(
            "err:{}",
            e.to_string()
                .split(':')
                .nth(2)
                .unwrap_or("")
                .trim()
                .chars()
                .take(30)
                .collect::<String>()
        )]),
    }
}

static SHOP: Mutex<Option<meeseeks::model::Model>> = Mutex::new(None);

fn observed_target(input: &[u8], _s: &Scratch) -> u64 {
    use meeseeks::graph_ops::verify::{ObservedFormat, VerifyOptions, parse_observed, verify};
    let text = String::from_utf8_lossy(input);
    match parse_observed(&text, "fuzz", ObservedFormat::Auto) {
        Ok(obs) => {
            let mut g = SHOP.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                let loaded =
                    meeseeks::load::load(&repo().join("examples/shop"), &Default::default());
                *g = loaded.model;
            }
            let mut sig = vec![format!("edges:{}", obs.len().min(4))];
            if let Some(m) = g.as_ref() {
                let report = verify(m, &obs, &VerifyOptions::default());
                use meeseeks::graph_ops::Render;
                let _ = (report.text(), report.json(), report.markdown());
                sig.push(format!("exit:{}", report.exit_code()));
            }
            signal(sig)
        }
        Err(e) => signal([format!(
            "err:{}",
            e.to_string()
                .chars()
                .filter(|c| c.is_alphabetic())
                .take(40)
                .collect::<String>()
        )]),
    }
}

/// A duration string where the loaders read durations (graph `rto`, step `timeout`,
/// `retry_delay`, `wait`, check `interval`/`timeout`), then planned.
fn duration_target(input: &[u8], s: &Scratch) -> u64 {
    let d: String = String::from_utf8_lossy(input)
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\n' | '\r') && !c.is_control())
        .take(200)
        .collect();
    let graph = format!(
        "[defaults]\nrto = \"{d}\"\nestimate = \"{d}\"\n[services.a]\ntier = 0\nrto = \"{d}\"\nrpo = \"{d}\"\n"
    );
    let pb = format!(
        "[[steps]]\nname = \"w\"\nwait = \"{d}\"\ntimeout = \"{d}\"\nretry_delay = \"{d}\"\nestimate = \"{d}\"\nretries = 3\n[[checks]]\nname = \"c\"\ntcp = \"127.0.0.1:1\"\ninterval = \"{d}\"\ntimeout = \"{d}\"\n"
    );
    std::fs::write(s.dir.join("graph.toml"), graph).expect("write");
    std::fs::create_dir_all(s.dir.join("playbooks")).expect("mkdir");
    std::fs::write(s.dir.join("playbooks/a.toml"), pb).expect("write");
    let (model, mut sig) = load_dir(&s.dir);
    if let Some(m) = model {
        sig.push(plan_all(&m));
        for svc in &m.services {
            for st in svc.playbook.iter().flat_map(|p| &p.steps) {
                // What the runner computes from a step's durations.
                let _ = tokio::time::Instant::now().checked_add(st.effective_timeout());
                let _ = meeseeks::plan::step_estimate(st);
            }
        }
    }
    signal(sig)
}

pub fn run_target(target: &str, input: &[u8], s: &Scratch) -> u64 {
    match target {
        "graph" => graph_target(input, s),
        "playbook" => playbook_target(input, s),
        "journal" => journal_target(input, s),
        "observed" => observed_target(input, s),
        "duration" => duration_target(input, s),
        other => panic!(
            "unknown fuzz target `{other}` (targets: {})",
            TARGETS.join(", ")
        ),
    }
}

// ------------------------------------------------------------------------------------------
// The loop

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Installs a panic hook that records the panic (message and location) instead of printing it.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{loc}: {msg}"));
    }));
}

/// One execution; `Err(panic)` on a crash.
pub fn execute(target: &str, input: &[u8], s: &Scratch) -> Result<u64, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| run_target(target, input, s))).map_err(|_| {
        LAST_PANIC
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "panic".into())
    })
}

#[derive(Debug, Default)]
pub struct Figures {
    pub executions: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    /// Distinct panic sites, with one input each.
    pub crashes: BTreeMap<String, Vec<u8>>,
}

/// Runs `target` until `budget` elapses or `max_execs` executions, saving crashing inputs into
/// `crash_dir` (when given). Deterministic for a given `seed` and execution count.
pub fn fuzz(
    target: &str,
    seed: u64,
    budget: Duration,
    max_execs: u64,
    crash_dir: Option<&Path>,
) -> Figures {
    let s = Scratch::new();
    let mut rng = Rng::new(seed);
    let mut corpus = seeds(target);
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let mut f = Figures::default();
    let started = Instant::now();
    // Seeds first, as they are.
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    loop {
        if f.executions >= max_execs || started.elapsed() >= budget {
            break;
        }
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                let base = &corpus[rng.below(corpus.len())];
                let other = &corpus[rng.below(corpus.len())];
                if target == "graph" && rng.below(4) == 0 {
                    let bytes: Vec<u8> = (0..rng.below(512)).map(|_| rng.next() as u8).collect();
                    structured_graph(&bytes)
                } else {
                    mutate(&mut rng, base, other)
                }
            }
        };
        if let Some(dir) = crash_dir {
            // If the process itself dies (stack overflow, abort), this is the input.
            let _ = std::fs::write(dir.join("current"), &input);
        }
        f.executions += 1;
        match execute(target, &input, &s) {
            Ok(sig) => {
                if seen.insert(sig) && corpus.len() < 4096 {
                    corpus.push(input);
                }
            }
            Err(panic) => {
                let site = panic.lines().next().unwrap_or("").to_string();
                if let std::collections::btree_map::Entry::Vacant(slot) = f.crashes.entry(site) {
                    if let Some(dir) = crash_dir {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        slot.key().hash(&mut h);
                        let _ =
                            std::fs::write(dir.join(format!("{:016x}.bin", h.finish())), &input);
                        let _ =
                            std::fs::write(dir.join(format!("{:016x}.txt", h.finish())), &panic);
                    }
                    slot.insert(input);
                }
            }
        }
    }
    if let Some(dir) = crash_dir {
        let _ = std::fs::remove_file(dir.join("current"));
    }
    f.elapsed = started.elapsed();
    f.corpus = corpus.len();
    f
}

/// The saved regression inputs of `target` (`fuzz/regressions/TARGET/*`).
pub fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo().join("fuzz/regressions").join(target);
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push((e.path(), b));
            }
        }
    }
    out.sort();
    out
}
