//! `meeseeks serve` over HTTP: the real binary on 127.0.0.1, a real drill of
//! `tests/fixtures/war-room` (stand-ins on OS-picked ports), a real HTTP client.

mod serve_support;

use std::time::Duration;

use serde_json::{Value, json};
use serve_support::{Drill, Server, Sse, client, meeseeks, until};

const WAIT: Duration = Duration::from_secs(60);

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post(c: &reqwest::Client, url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut req = c.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// Every page and API of a live drill, SSE resume, and an approval from the web that the
/// running drill consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_drill_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let srv = Server::start(&state, &[], &[]);
    let c = client();

    // Before any run.
    assert_eq!(
        get(&c, &format!("{}/healthz", srv.url)).await,
        (200, "ok\n".into())
    );
    let (code, body) = get(&c, &format!("{}/", srv.url)).await;
    assert_eq!(code, 200);
    assert!(body.contains("No runs yet"), "{body}");

    let mut drill = Drill::start(&state, &[]);
    let id = drill.run_id.clone();
    let run_url = format!("{}/runs/{id}", srv.url);

    // The run reaches its manual step: api waits for approval.
    let status: Value = until(WAIT, "api waiting for approval", || {
        let (c, url) = (c.clone(), format!("{}/api/runs/{id}", srv.url));
        async move {
            let v: Value = c.get(&url).send().await.ok()?.json().await.ok()?;
            let api = v["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "api")?;
            (api["status"] == "waiting").then_some(v)
        }
    })
    .await;
    assert_eq!(status["schema"], "meeseeks.status/v1");
    assert_eq!(status["state"], "running");

    // The runs list.
    let (code, body) = get(&c, &format!("{}/", srv.url)).await;
    assert_eq!(code, 200);
    assert!(body.contains(&format!("href=\"/runs/{id}\"")), "{body}");
    assert!(body.contains("st-running"), "{body}");
    let runs: Value = get_json(&c, &format!("{}/api/runs", srv.url)).await;
    assert_eq!(runs["runs"][0]["run_id"], id.as_str());
    assert_eq!(runs["runs"][0]["live"], true);
    assert_eq!(runs["runs"][0]["cleaned_up"], "not yet");

    // The run page: rendered on the server, every service by wave, the approval item.
    let (code, page) = get(&c, &run_url).await;
    assert_eq!(code, 200);
    for svc in ["db", "cache", "api", "web", "reports", "batch"] {
        assert!(
            page.contains(&format!("<tr data-svc=\"{svc}\"")),
            "{svc} row"
        );
    }
    assert!(page.contains("Wave 0") && page.contains("Wave 2"));
    assert!(
        page.contains("class=\"approve\" data-svc=\"api\""),
        "approve button"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "nothing external"
    );
    let seq: u64 = page
        .split("data-seq=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("data-seq");
    assert!(seq >= 5, "{seq}");
    // A prefix of the id finds the run too; an unknown id is a 404.
    assert_eq!(
        get(&c, &format!("{}/runs/{}", srv.url, &id[..10])).await.0,
        200
    );
    assert_eq!(get(&c, &format!("{}/runs/nope", srv.url)).await.0, 404);

    // SSE from the start: ids are the journal's sequence numbers, 1, 2, 3...
    let resp = c.get(format!("{run_url}/events")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = Sse::new(resp);
    let head = sse.next(WAIT).await.unwrap();
    assert_eq!(head.event, "head");
    let mut ids = Vec::new();
    while ids.len() < 4 {
        let ev = sse.next(WAIT).await.unwrap();
        let d: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(d["seq"].as_u64(), ev.id);
        ids.push(ev.id.unwrap());
    }
    assert_eq!(ids, vec![1, 2, 3, 4]);

    // Resume: Last-Event-ID 3 sends record 4 first, and only deltas (a service's row).
    let resp = c
        .get(format!("{run_url}/events"))
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    let mut resumed = Sse::new(resp);
    assert_eq!(resumed.next(WAIT).await.unwrap().event, "head");
    let first = resumed.next(WAIT).await.unwrap();
    assert_eq!(first.id, Some(4));
    // `?after=` (a page's first connection) does the same; the header wins over it.
    let resp = c
        .get(format!("{run_url}/events?after=1"))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let mut both = Sse::new(resp);
    both.next(WAIT).await.unwrap();
    assert_eq!(both.next(WAIT).await.unwrap().id, Some(3));
    // Keep a stream open at the page's position to see the approval arrive live.
    let resp = c
        .get(format!("{run_url}/events?after={seq}"))
        .send()
        .await
        .unwrap();
    let mut live = Sse::new(resp);

    // Metrics while api waits.
    let (code, m) = get(&c, &format!("{}/metrics", srv.url)).await;
    assert_eq!(code, 200);
    let waiting = format!("meeseeks_services{{run_id=\"{id}\",state=\"waiting\"}} 1");
    assert!(m.contains(&waiting), "{m}");
    assert!(
        m.contains(&format!("meeseeks_approvals_waiting{{run_id=\"{id}\"}} 1")),
        "{m}"
    );
    assert!(m.contains("meeseeks_service_rto_remaining_seconds{"), "{m}");
    assert!(
        m.contains(&format!("meeseeks_run_live{{run_id=\"{id}\"}} 1")),
        "{m}"
    );
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("meeseeks_"), "{line}");
        let v = line.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }

    // Approvals: bad requests first.
    let approve = format!("{}/api/runs/{id}/approve", srv.url);
    let (code, _) = post(&c, &approve, json!({"service": "api"}), None).await;
    assert_eq!(code, 400, "no `by`");
    let (code, _) = post(&c, &approve, json!({"service": "api", "by": "  "}), None).await;
    assert_eq!(code, 400, "empty `by`");
    let (code, v) = post(
        &c,
        &approve,
        json!({"service": "nope", "by": "alice"}),
        None,
    )
    .await;
    assert_eq!(code, 404, "{v}");
    let (code, v) = post(&c, &approve, json!({"service": "db", "by": "alice"}), None).await;
    assert_eq!(code, 409, "db waits for nothing: {v}");
    let (code, v) = post(
        &c,
        &approve,
        json!({"service": "api", "step": "other", "by": "alice"}),
        None,
    )
    .await;
    assert_eq!(code, 409, "a stale page's step: {v}");
    let (code, v) = post(
        &c,
        &format!("{}/api/runs/nope/approve", srv.url),
        json!({"service": "api", "by": "alice"}),
        None,
    )
    .await;
    assert_eq!(code, 404, "{v}");
    // The real one.
    let (code, v) = post(
        &c,
        &approve,
        json!({"service": "api", "step": "on-call confirms the smoke test", "by": "alice"}),
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["by"], "alice (web, 127.0.0.1)");

    // The running drill consumes it and goes on: the stream shows it, then api recovers.
    let mut seen_approved = false;
    loop {
        let ev = live.next(WAIT).await.expect("the stream goes on");
        if ev.event != "message" {
            continue;
        }
        let d: Value = serde_json::from_str(&ev.data).unwrap();
        assert!(ev.id.unwrap() > seq);
        if d["event"] == "manual.approved" {
            assert_eq!(d["service"], "api");
            assert_eq!(d["wait"], "", "the approval item goes away");
            seen_approved = true;
        }
        if d["event"] == "service.recovered" && d["service"] == "api" {
            assert!(d["row"].as_str().unwrap().contains("data-st=\"recovered\""));
            break;
        }
    }
    assert!(seen_approved);
    let (code, out) = drill.finish(WAIT);
    // reports fails by design (and blocks batch): exit 1; everything else recovered.
    assert_eq!(code, Some(1), "{out}");
    let journal = drill.journal();
    let approved: Value = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["event"] == "manual.approved")
        .expect("manual.approved journaled");
    assert_eq!(approved["service"], "api");
    assert_eq!(approved["step"], "on-call confirms the smoke test");
    assert_eq!(approved["by"], "alice (web, 127.0.0.1)");
    // Once it is over, approving is a conflict, and the list says it was cleaned up.
    let (code, _) = post(&c, &approve, json!({"service": "api", "by": "alice"}), None).await;
    assert_eq!(code, 409);
    let v: Value = until(WAIT, "the run to show as failed", || {
        let (c, url) = (c.clone(), format!("{}/api/runs", srv.url));
        async move {
            let v: Value = c.get(&url).send().await.ok()?.json().await.ok()?;
            (v["runs"][0]["state"] == "failed").then_some(v)
        }
    })
    .await;
    // A failed drill keeps its stand-ins for `resume`: its cleanup is pending.
    assert_eq!(v["runs"][0]["cleaned_up"], "pending (meeseeks cleanup)");
    assert_eq!(v["runs"][0]["breaches"], 1);
    // The metrics follow the journal through the run's hub: wait until it saw the end.
    let m: String = until(WAIT, "the metrics to show the run's end", || {
        let (c, url) = (c.clone(), format!("{}/metrics", srv.url));
        async move {
            let m = c.get(&url).send().await.ok()?.text().await.ok()?;
            m.contains(",mode=\"drill\",state=\"failed\"} 1")
                .then_some(m)
        }
    })
    .await;
    assert!(
        m.contains(&format!("meeseeks_steps_failed_total{{run_id=\"{id}\"}} 1")),
        "{m}"
    );
    assert!(
        m.contains(&format!("meeseeks_rto_breaches_total{{run_id=\"{id}\"}} 1")),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "meeseeks_services{{run_id=\"{id}\",state=\"recovered\"}} 4"
        )),
        "{m}"
    );

    // The plan and the graph of the DR directory.
    let (code, plan) = get(&c, &format!("{}/plan", srv.url)).await;
    assert_eq!(code, 200, "{plan}");
    assert!(
        plan.contains("<svg") && plan.contains("critical path"),
        "the plan report"
    );
    assert!(plan.contains("<nav class=\"top\">"));
    let (code, g) = get(&c, &format!("{}/graph", srv.url)).await;
    assert_eq!(code, 200);
    assert!(g.contains("href=\"/graph?service=db\""), "{g}");
    let (code, g) = get(&c, &format!("{}/graph?service=db", srv.url)).await;
    assert_eq!(code, 200);
    // Losing db takes down api, web (through api), reports and batch.
    assert!(g.contains("<b class=\"down\">4</b> go down"), "{g}");
    assert!(g.contains("data-svc=\"web\" class=\"h-down\""), "{g}");
    let v: Value = get_json(&c, &format!("{}/api/graph/web", srv.url)).await;
    assert_eq!(v["needs"], json!(["api", "cache", "db"]));
    assert_eq!(v["optional"], json!(["reports"]));
    assert_eq!(
        get(&c, &format!("{}/graph?service=nope", srv.url)).await.0,
        404
    );
    assert_eq!(get(&c, &format!("{}/api/graph/nope", srv.url)).await.0, 404);
    assert_eq!(get(&c, &format!("{}/nowhere", srv.url)).await.0, 404);
}

#[tokio::test]
async fn tokens_and_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tok = tmp.path().join("token");
    std::fs::write(&tok, "correct-horse-battery\n").unwrap();
    let c = client();
    let body = json!({"service": "api", "by": "alice"});

    let srv = Server::start(&state, &["--token-file", tok.to_str().unwrap()], &[]);
    let url = format!("{}/api/runs/none/approve", srv.url);
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        post(&c, &url, body.clone(), Some("wrong")).await.0,
        401,
        "wrong token"
    );
    assert_eq!(
        post(&c, &url, body.clone(), Some("correct-horse-batter"))
            .await
            .0,
        401,
        "a prefix"
    );
    // The right token gets past the door (then: no such run).
    assert_eq!(
        post(&c, &url, body.clone(), Some("correct-horse-battery"))
            .await
            .0,
        404
    );
    // Pages are readable without it (a browser cannot put a header on a link).
    assert_eq!(get(&c, &format!("{}/", srv.url)).await.0, 200);
    drop(srv);

    // MEESEEKS_TOKEN, and read-only: approvals refused even with the right token.
    let srv = Server::start(&state, &["--read-only"], &[("MEESEEKS_TOKEN", "envtoken")]);
    let url = format!("{}/api/runs/none/approve", srv.url);
    assert_eq!(post(&c, &url, body.clone(), Some("nope")).await.0, 401);
    let (code, v) = post(&c, &url, body.clone(), Some("envtoken")).await;
    assert_eq!(code, 403, "{v}");
    drop(srv);
    let srv = Server::start(&state, &["--read-only"], &[]);
    let (code, v) = post(
        &c,
        &format!("{}/api/runs/none/approve", srv.url),
        body.clone(),
        None,
    )
    .await;
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("read-only"));
}

#[test]
fn a_token_is_required_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = meeseeks()
        .arg("serve")
        .arg(serve_support::dr_dir(&state))
        .arg("--state-dir")
        .arg(&state)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("without a token") && err.contains("--token-file"),
        "{err}"
    );
    // An empty token file is refused too, not taken for "no token".
    let tok = tmp.path().join("token");
    std::fs::write(&tok, "\n").unwrap();
    let out = meeseeks()
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tok)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty token"));
    // A bad address is bad usage.
    let out = meeseeks()
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // With a token it starts (and answers on loopback).
    let srv = Server::start(
        &state,
        &["--listen", "0.0.0.0:0"],
        &[("MEESEEKS_TOKEN", "t0ken")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(async { get(&client(), &format!("{}/healthz", srv.url)).await.0 });
    assert_eq!(code, 200);
}

#[test]
fn report_format_otlp_of_a_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut drill = Drill::start(&state, &["--yes"]);
    let (code, out) = drill.finish(WAIT);
    assert_eq!(code, Some(1), "{out}");
    let run = |extra: &[&str]| {
        meeseeks()
            .args(["report", "--format", "otlp", "--state-dir"])
            .arg(&state)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failed services: exit 1 like every report"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    let root = &spans[0];
    let trace = root["traceId"].as_str().unwrap();
    assert_eq!(trace.len(), 32);
    assert!(spans.iter().all(|s| s["traceId"] == trace));
    // A span per service under the root, a span per step under its service.
    for svc in ["db", "cache", "api", "web", "reports", "batch"] {
        let s = spans
            .iter()
            .find(|s| s["name"] == svc)
            .unwrap_or_else(|| panic!("{svc}"));
        assert_eq!(s["parentSpanId"], root["spanId"]);
    }
    let api = spans.iter().find(|s| s["name"] == "api").unwrap();
    let manual = spans
        .iter()
        .find(|s| s["name"] == "on-call confirms the smoke test")
        .unwrap();
    assert_eq!(manual["parentSpanId"], api["spanId"]);
    assert_eq!(manual["events"][0]["name"], "manual.approved");
    let reports = spans.iter().find(|s| s["name"] == "reports").unwrap();
    assert_eq!(reports["status"]["code"], 2);
    for s in spans {
        let a: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let b: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(a <= b, "{s}");
    }
    // Deterministic: the same run renders the same ids, to a file with --out too.
    let file = tmp.path().join("trace.json");
    run(&["--out", file.to_str().unwrap()]);
    let again: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        again["resourceSpans"][0]["scopeSpans"][0]["spans"],
        v["resourceSpans"][0]["scopeSpans"][0]["spans"]
    );
}

/// The last recorded `meeseeks preflight` is on the runs page, in `/metrics` and at
/// `/api/preflight`, read from the same store; nothing is exported before one is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_preflight_is_on_the_page_and_in_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let c = client();
    let srv = Server::start(&state, &[], &[]);
    let (code, _) = get(&c, &format!("{}/api/preflight", srv.url)).await;
    assert_eq!(code, 404, "nothing recorded yet");
    let (_, metrics) = get(&c, &format!("{}/metrics", srv.url)).await;
    assert!(!metrics.contains("meeseeks_preflight"), "{metrics}");

    // A real evaluation, recorded in the state directory the server reads.
    let out = meeseeks()
        .arg("preflight")
        .arg(serve_support::dr_dir(&state))
        .arg("--state-dir")
        .arg(&state)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    assert!(!services.is_empty());

    let api = get_json(&c, &format!("{}/api/preflight", srv.url)).await;
    assert_eq!(api["evaluated_at"], report["evaluated_at"]);
    assert_eq!(api["ready"], report["ready"]);
    let (code, metrics) = get(&c, &format!("{}/metrics", srv.url)).await;
    assert_eq!(code, 200);
    let ready = u8::from(report["ready"].as_bool().unwrap());
    assert!(
        metrics.contains(&format!("\nmeeseeks_preflight_ready {ready}\n")),
        "{metrics}"
    );
    for s in services {
        let v = match s["status"].as_str().unwrap() {
            "ready" => "1",
            "not_ready" => "0",
            _ => "-1",
        };
        let line = format!(
            "\nmeeseeks_preflight_service_ready{{service=\"{}\"}} {v}\n",
            s["name"].as_str().unwrap()
        );
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }
    let (_, page) = get(&c, &format!("{}/", srv.url)).await;
    assert!(page.contains("id=\"preflight\""), "{page}");
}
