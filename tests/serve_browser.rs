//! The run page in a real browser: headless Chromium (Debian's `chromium`) loads the page of
//! a live drill from `meeseeks serve`, watches services move from pending to recovered through
//! the event stream (without reloading), and approves the drill's manual step with the
//! page's Approve button. Skips only when Chromium is not installed.
//!
//! With `MEESEEKS_SCREENSHOTS=DIR` it also writes the README's screenshots into DIR.

#[path = "serve_support/cdp.rs"]
mod cdp;
mod serve_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::{Drill, Server};

const WAIT: Duration = Duration::from_secs(60);

async fn statuses(page: &mut cdp::Page) -> HashMap<String, String> {
    let v = page
        .eval("JSON.stringify([...document.querySelectorAll('tr[data-svc]')].map(r => [r.dataset.svc, r.dataset.st]))")
        .await;
    let pairs: Vec<(String, String)> = serde_json::from_str(v.as_str().unwrap()).unwrap();
    pairs.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_follows_a_drill_and_approves() {
    let Some(bin) = cdp::chromium() else {
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
        return;
    };
    let shots = std::env::var_os("MEESEEKS_SCREENSHOTS").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let srv = Server::start(&state, &[], &[]);
    let mut drill = Drill::start(&state, &[]);
    let url = format!("{}/runs/{}", srv.url, drill.run_id);
    let browser = cdp::Browser::launch(&bin, &url, 1400, 1000);
    let mut page = browser.page().await;

    // Wait for the page and its stream; mark the window: a reload would lose the mark.
    let deadline = Instant::now() + WAIT;
    loop {
        let ok = page
            .eval("document.readyState === 'complete' && !!document.getElementById('h-conn') && document.getElementById('h-conn').textContent === 'live'")
            .await;
        if ok == Value::Bool(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the page never went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    page.eval("window.__notReloaded = true").await;
    let first = statuses(&mut page).await;
    assert_eq!(first.len(), 6, "{first:?}");
    // web needs api, which waits for a human: it is pending when the page opens.
    assert_eq!(first["web"], "pending", "{first:?}");

    // Services recover under our eyes; api comes to wait for approval.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let now = statuses(&mut page).await;
        for (k, v) in &now {
            let h = seen.entry(k.clone()).or_default();
            if h.last() != Some(v) {
                h.push(v.clone());
            }
        }
        let button = page
            .eval("!!document.querySelector('#wl button.approve[data-svc=\"api\"]')")
            .await;
        if now["db"] == "recovered" && now["api"] == "waiting" && button == Value::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "api never waited on the page: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["db"].last().unwrap(), "recovered");
    assert_eq!(
        page.eval("document.getElementById('waiting').classList.contains('empty')")
            .await,
        Value::Bool(false)
    );
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir).unwrap();
        // Let the countdowns tick once more before the picture.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        page.screenshot(&dir.join("serve-run.png")).await;
    }

    // Approve from the page: a name typed once, then the button, like a person.
    page.eval("localStorage.removeItem('meeseeks.by')").await;
    page.click("#wl button.approve[data-svc=\"api\"]").await;
    let msg = page
        .eval("document.querySelector('#wl li[data-w=\"api\"] .msg').textContent")
        .await;
    assert_eq!(
        msg, "type your name above first",
        "no name yet: the page asks for one"
    );
    page.type_into("#by", "bob").await;
    page.click("#wl button.approve[data-svc=\"api\"]").await;
    let journal_has_it = || drill.journal().contains("\"by\":\"bob (web, 127.0.0.1)\"");
    let deadline = Instant::now() + WAIT;
    while !journal_has_it() {
        assert!(
            Instant::now() < deadline,
            "the approval never reached the journal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        page.eval("localStorage.getItem('meeseeks.by')").await,
        "bob",
        "the name is remembered"
    );

    // The drill goes on; the page shows api and web recovered, the approval item gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let now = statuses(&mut page).await;
        let item = page
            .eval("!!document.querySelector('#wl li[data-w=\"api\"]')")
            .await;
        if now["api"] == "recovered" && now["web"] == "recovered" && item == Value::Bool(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "api/web never showed recovered: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = drill.finish(WAIT);
    assert_eq!(code, Some(1), "reports fails by design: {out}");
    // The final state arrives too: failed run, blocked batch, web's RTO breached.
    let deadline = Instant::now() + WAIT;
    loop {
        let state = page
            .eval("document.getElementById('h-state').textContent")
            .await;
        if state == "failed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never showed failed: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = statuses(&mut page).await;
    assert_eq!(now["batch"], "blocked");
    assert_eq!(now["reports"], "failed");
    let web_rto = page
        .eval("document.querySelector('tr[data-svc=\"web\"] td.rto').className")
        .await;
    assert!(web_rto.as_str().unwrap().contains("rto-red"), "{web_rto}");
    assert_eq!(
        page.eval("window.__notReloaded === true").await,
        Value::Bool(true),
        "every change came through the stream, without a reload"
    );

    if let Some(dir) = &shots {
        page.navigate(&format!("{}/plan", srv.url)).await;
        page.screenshot(&dir.join("serve-plan.png")).await;
        page.navigate(&format!("{}/graph", srv.url)).await;
        page.click("a[data-svc=\"db\"]").await;
        let deadline = Instant::now() + WAIT;
        while page
            .eval("document.querySelectorAll('a.h-down').length")
            .await
            .as_u64()
            < Some(1)
        {
            assert!(Instant::now() < deadline, "the graph panel never filled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        page.screenshot(&dir.join("serve-graph.png")).await;
    }
    drop(page);
    drop(browser);
}
