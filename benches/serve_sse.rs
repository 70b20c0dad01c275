//! `bench/serve_sse.sh`: `meeseeks serve` during a 2 000-service eager run.
//!
//! Every service waits on one `gate` service whose manual step holds the run until the page
//! and the clients are connected; the bench then approves it over HTTP and the other 2 000
//! services (`cmd = ["true"]`, `--eager --parallel 16`) recover as fast as the runner goes.
//! Measured, in the same run: events per second delivered on the SSE stream, delivery lag
//! (receive time − record timestamp) against `tail -F` of the same journal (the peer), CPU
//! seconds of `serve` against the runner's, the run page's size, and — with Chromium — the
//! page's longest main-thread task and its slowest answer to a probe while the stream pours.

#[path = "../tests/serve_support/cdp.rs"]
mod cdp;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const N: usize = 2000;

fn bin() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/meeseeks")
}

/// A layered DAG: service i needs gate and, for i >= 8, two earlier services.
fn write_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    let mut g = String::from("[defaults]\nrto = \"10m\"\n\n[services.gate]\ntier = 0\n");
    std::fs::write(
        dir.join("playbooks/gate.toml"),
        "[[steps]]\nname = \"go\"\nmanual = \"start the load\"\n",
    )
    .unwrap();
    for i in 0..N {
        let mut deps = vec!["\"gate\"".to_string()];
        if i >= 8 {
            deps.push(format!("\"s{:04}\"", i / 2));
            deps.push(format!("\"s{:04}\"", i - 7));
        }
        deps.dedup();
        g.push_str(&format!(
            "\n[services.s{i:04}]\ntier = {}\ndepends_on = [{}]\n",
            i % 4,
            deps.join(", ")
        ));
        std::fs::write(
            dir.join(format!("playbooks/s{i:04}.toml")),
            "[[steps]]\nname = \"noop\"\ncmd = [\"true\"]\n",
        )
        .unwrap();
    }
    std::fs::write(dir.join("graph.toml"), g).unwrap();
}

fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / tck
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms_since_epoch() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(
        bin().is_file(),
        "build the release binary first (cargo bench builds it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dr");
    write_dir(&dir);
    let state = tmp.path().join("state");
    let serve = Command::new(bin())
        .args(["-q", "serve"])
        .arg(&dir)
        .arg("--state-dir")
        .arg(&state)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut serve = Kill(serve);
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("listening on ")
        .trim_end_matches('/')
        .to_string();
    let serve_pid = serve.0.id();

    let run = Command::new(bin())
        .args(["-q", "run"])
        .arg(&dir)
        .arg("--state-dir")
        .arg(&state)
        .args(["--eager", "--parallel", "16", "--no-progress"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = Kill(run);
    let run_pid = run.0.id();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::new();
    // Until the gate waits.
    let t = Instant::now();
    let id = loop {
        if let Ok(r) = c.get(format!("{url}/api/runs")).send().await
            && let Ok(v) = r.json::<Value>().await
            && let Some(id) = v["runs"][0]["run_id"].as_str()
            && let Ok(r) = c.get(format!("{url}/api/runs/{id}")).send().await
            && let Ok(s) = r.json::<Value>().await
            && s["services"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["name"] == "gate" && x["status"] == "waiting")
            })
        {
            break id.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the gate never waited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let page_url = format!("{url}/runs/{id}");
    let page_html = c.get(&page_url).send().await.unwrap().text().await.unwrap();
    let journal = state.join("runs").join(&id).join("journal.jsonl");

    // The peer: tail -F of the journal, lines timestamped as they arrive.
    let mut tail = Kill(
        Command::new("tail")
            .args(["-n", "0", "-F"])
            .arg(&journal)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tail_out = tail.0.stdout.take().unwrap();
    let tail_lags = std::thread::spawn(move || {
        let mut lags = Vec::new();
        for l in BufReader::new(tail_out).lines().map_while(Result::ok) {
            let now = ms_since_epoch();
            if let Ok(v) = serde_json::from_str::<Value>(&l)
                && let Some(ts) = v["ts"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            {
                lags.push(now - ts.as_millisecond() as f64);
                if v["event"] == "run.finished" {
                    break;
                }
            }
        }
        lags
    });

    // The browser, if there is one: the page open before the load starts.
    let browser = cdp::chromium().map(|b| cdp::Browser::launch(&b, &page_url, 1400, 1000));
    let mut page = match &browser {
        Some(b) => Some(b.page().await),
        None => None,
    };
    let mut load_ms = None;
    if let Some(p) = page.as_mut() {
        let t = Instant::now();
        while p.eval("document.getElementById('h-conn') && document.getElementById('h-conn').textContent").await != "live" {
            assert!(t.elapsed() < Duration::from_secs(60), "page not live");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Long tasks from now on: the stream, not the page's first load (measured apart).
        let load = p
            .eval("performance.getEntriesByType('navigation')[0].duration")
            .await;
        load_ms = load.as_f64();
        p.eval("window.__long = []; new PerformanceObserver(l => l.getEntries().forEach(e => window.__long.push(e.duration))).observe({type: 'longtask'}); window.__notReloaded = true").await;
    }

    // The SSE client, from the page's position.
    let seq: u64 = page_html
        .split("data-seq=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let resp = c
        .get(format!("{page_url}/events?after={seq}"))
        .send()
        .await
        .unwrap();
    let sse = tokio::spawn(async move {
        let mut resp = resp;
        let (mut events, mut bytes, mut lags, mut buf) =
            (0usize, 0usize, Vec::new(), String::new());
        let mut last = Instant::now();
        'outer: while let Ok(Some(chunk)) = resp.chunk().await {
            let now = ms_since_epoch();
            bytes += chunk.len();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find("\n\n") {
                let block: String = buf.drain(..i + 2).collect();
                if let Some(d) = block.lines().find_map(|l| l.strip_prefix("data: "))
                    && block.contains("\nid: ") | block.starts_with("id: ")
                {
                    let v: Value = serde_json::from_str(d).unwrap();
                    events += 1;
                    if let Some(ts) = v["ts"]
                        .as_str()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    {
                        lags.push(now - ts.as_millisecond() as f64);
                    }
                    last = Instant::now();
                    if v["event"] == "run.finished" {
                        break 'outer;
                    }
                }
            }
        }
        (events, bytes, lags, last)
    });

    let cpu_serve0 = cpu_s(serve_pid);
    let cpu_run0 = cpu_s(run_pid);
    let t0 = Instant::now();
    let r = c
        .post(format!("{url}/api/runs/{id}/approve"))
        .json(&json!({"service": "gate", "by": "bench"}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );

    // Probe the page's main thread while the stream pours in.
    let mut probe_ms: Vec<f64> = Vec::new();
    let mut page_done = None;
    if let Some(p) = page.as_mut() {
        loop {
            let t = Instant::now();
            let rec = p
                .eval("document.querySelector('[data-h=recovered]').textContent")
                .await;
            probe_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if rec.as_str() == Some(&(N + 1).to_string()) {
                page_done = Some(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the page never showed every service recovered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (events, bytes, mut lags, last) = tokio::time::timeout(Duration::from_secs(120), sse)
        .await
        .unwrap()
        .unwrap();
    let stream_s = last.duration_since(t0).as_secs_f64();
    let run_cpu = cpu_s(run_pid) - cpu_run0;
    let _ = run.0.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let serve_cpu = cpu_s(serve_pid) - cpu_serve0;
    let mut tail_lags = tail_lags.join().unwrap();

    // Catch-up capacity: a client that reconnects from the start gets every frame at once.
    let t = Instant::now();
    let mut resp = c
        .get(format!("{page_url}/events?after=0"))
        .send()
        .await
        .unwrap();
    let (mut n, mut buf) = (0usize, Vec::new());
    while let Ok(Some(chunk)) = resp.chunk().await {
        n += chunk.windows(4).filter(|w| w == b"id: ").count();
        buf.extend_from_slice(&chunk);
        if buf.windows(12).any(|w| w == b"run.finished") {
            break;
        }
        buf.drain(..buf.len().saturating_sub(16));
    }
    let catchup = t.elapsed().as_secs_f64();

    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "meeseeks serve during a {N}-service eager run (--parallel 16, cmd = [\"true\"]), released by a web approval"
    );
    let _ = writeln!(
        o,
        "  run page             {} bytes ({} services, {:.0} bytes/service)",
        page_html.len(),
        N + 1,
        page_html.len() as f64 / (N + 1) as f64
    );
    let _ = writeln!(
        o,
        "  SSE live             {events} events, {bytes} bytes in {stream_s:.2} s: {:.0} events/s delivered",
        events as f64 / stream_s
    );
    let (p50, p99, max) = (
        pct(&mut lags, 0.5),
        pct(&mut lags, 0.99),
        pct(&mut lags, 1.0),
    );
    let (t50, t99) = (pct(&mut tail_lags, 0.5), pct(&mut tail_lags, 0.99));
    let _ = writeln!(
        o,
        "  delivery lag         SSE p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; tail -F p50 {t50:.0} ms, p99 {t99:.0} ms ({} lines)",
        tail_lags.len()
    );
    let _ = writeln!(
        o,
        "  lag ratio            SSE/tail -F p50 {:.1}x (+{:.0} ms), p99 {:.1}x",
        p50 / t50.max(1.0),
        p50 - t50,
        p99 / t99.max(1.0)
    );
    let _ = writeln!(
        o,
        "  CPU                  serve {serve_cpu:.2} s vs runner {run_cpu:.2} s: {:.2}x",
        serve_cpu / run_cpu.max(0.01)
    );
    let _ = writeln!(
        o,
        "  catch-up             {n} frames replayed in {catchup:.3} s: {:.0} events/s",
        n as f64 / catchup
    );
    if let Some(p) = page.as_mut() {
        let long: Vec<f64> =
            serde_json::from_value(p.eval("window.__long").await).unwrap_or_default();
        let reloaded = p.eval("window.__notReloaded === true").await != Value::Bool(true);
        let rows = p
            .eval("document.querySelectorAll('tr[data-svc]').length")
            .await;
        let mut probes = probe_ms.clone();
        let _ = writeln!(
            o,
            "  page (Chromium)      loads in {:.0} ms; all {} recovered on the page {:.2} s after the approval; {rows} rows; reloaded: {reloaded}",
            load_ms.unwrap_or(f64::NAN),
            N + 1,
            page_done.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN)
        );
        let _ = writeln!(
            o,
            "                       long tasks (>50 ms): {}, longest {:.0} ms; probe round trips p50 {:.0} ms, max {:.0} ms ({} probes)",
            long.len(),
            long.iter().cloned().fold(0.0, f64::max),
            pct(&mut probes, 0.5),
            pct(&mut probes, 1.0),
            probe_ms.len()
        );
    } else {
        let _ = writeln!(
            o,
            "  page (Chromium)      skipped: chromium is not installed"
        );
    }
    drop(page);
    drop(browser);
    drop(tail);
}
