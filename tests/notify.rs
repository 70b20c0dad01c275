//! Webhook delivery against a real HTTP server on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use meeseeks::events::{Event, Record};
use meeseeks::mask::Masker;
use meeseeks::model::{Mode, Notify, NotifyFormat};
use meeseeks::notify::{Message, Notifier, NotifyOptions, send_once_with};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// What the receiving server saw, in arrival order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Body(String, Value),
    /// A `/hang` request arrived and is being held.
    Held,
    /// The test released the held requests.
    Released,
    /// `Notifier::send` returned (recorded by the test itself).
    SendReturned,
}

#[derive(Clone)]
struct Srv {
    log: mpsc::UnboundedSender<Seen>,
    flaky_calls: Arc<AtomicU32>,
    release: watch::Receiver<bool>,
}

async fn hook(
    State(s): State<Srv>,
    Path(kind): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match kind.as_str() {
        "flaky" => {
            // 500 first, then 200: the notifier must retry.
            let n = s.flaky_calls.fetch_add(1, Ordering::SeqCst);
            let _ = s.log.send(Seen::Body(kind, v));
            if n == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        "gone" => {
            let _ = s.log.send(Seen::Body(kind, v));
            StatusCode::NOT_FOUND
        }
        "hang" => {
            let _ = s.log.send(Seen::Held);
            let mut r = s.release.clone();
            let _ = r.wait_for(|x| *x).await;
            StatusCode::OK
        }
        _ => {
            let _ = s.log.send(Seen::Body(kind, v));
            StatusCode::OK
        }
    }
}

struct Server {
    base: String,
    log_tx: mpsc::UnboundedSender<Seen>,
    rx: mpsc::UnboundedReceiver<Seen>,
    flaky_calls: Arc<AtomicU32>,
    release: watch::Sender<bool>,
}

impl Server {
    async fn start() -> Server {
        let (tx, rx) = mpsc::unbounded_channel();
        let (release, release_rx) = watch::channel(false);
        let flaky_calls = Arc::new(AtomicU32::new(0));
        let app = Router::new()
            .route("/hooks/{kind}", post(hook))
            .with_state(Srv {
                log: tx.clone(),
                flaky_calls: flaky_calls.clone(),
                release: release_rx,
            });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        Server {
            base,
            log_tx: tx,
            rx,
            flaky_calls,
            release,
        }
    }

    fn hook(&self, kind: &str, format: NotifyFormat, events: &[&str]) -> Notify {
        Notify {
            url: format!("{}/hooks/{kind}", self.base),
            events: events.iter().map(|s| s.to_string()).collect(),
            format,
            ..Default::default()
        }
    }

    async fn next(&mut self) -> Seen {
        self.rx.recv().await.expect("server log closed")
    }

    /// Everything logged so far, without waiting.
    fn drain(&mut self) -> Vec<Seen> {
        let mut v = Vec::new();
        while let Ok(x) = self.rx.try_recv() {
            v.push(x);
        }
        v
    }
}

fn rec(seq: u64, event: Event) -> Record {
    Record {
        seq,
        ts: "2026-11-26T12:00:00Z".parse().unwrap(),
        event,
    }
}

fn fast() -> NotifyOptions {
    NotifyOptions {
        backoff: Duration::from_millis(10),
        ..NotifyOptions::default()
    }
}

const RUN: &str = "20261126T120000Z-abcd";

#[tokio::test]
async fn json_payload_carries_schema_run_and_masked_record() {
    let mut srv = Server::start().await;
    let masker = Masker::new();
    masker.add("hunter2");
    let n = Notifier::with_options(
        &[srv.hook("json", NotifyFormat::Json, &[])],
        masker,
        RUN,
        Some(Mode::Failover),
        fast(),
    );
    n.send(&rec(
        7,
        Event::ServiceFailed {
            service: "payments".into(),
            error: "login with password hunter2 refused".into(),
        },
    ));
    let Seen::Body(kind, v) = srv.next().await else {
        panic!("expected a body")
    };
    assert_eq!(kind, "json");
    assert_eq!(v["schema"], "meeseeks.event/v1");
    assert_eq!(v["run_id"], RUN);
    assert_eq!(v["mode"], "failover");
    assert_eq!(v["event"], "service.failed");
    assert_eq!(v["seq"], 7);
    assert_eq!(v["service"], "payments");
    assert_eq!(v["error"], "login with password *** refused");
    let stats = n.close(Duration::from_secs(10)).await;
    assert_eq!((stats.queued, stats.delivered, stats.failed), (1, 1, 0));
}

#[tokio::test]
async fn slack_payload_is_a_human_one_liner() {
    let mut srv = Server::start().await;
    let n = Notifier::with_options(
        &[srv.hook("slack", NotifyFormat::Slack, &[])],
        Masker::new(),
        RUN,
        Some(Mode::Drill),
        fast(),
    );
    n.send(&rec(
        1,
        Event::RtoBreached {
            service: "checkout".into(),
            rto_s: 1800.0,
        },
    ));
    let Seen::Body(_, v) = srv.next().await else {
        panic!()
    };
    assert_eq!(
        v,
        serde_json::json!({ "text": format!("[drill] :rotating_light: checkout RTO breached (30m) — run {RUN}") })
    );
    n.close(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn events_filter_selects_what_each_hook_receives() {
    let mut srv = Server::start().await;
    let n = Notifier::with_options(
        &[srv.hook(
            "filtered",
            NotifyFormat::Json,
            &["service.failed", "run.finished"],
        )],
        Masker::new(),
        RUN,
        None,
        fast(),
    );
    let started = |s: &str| Event::ServiceStarted { service: s.into() };
    n.send(&rec(1, started("a")));
    n.send(&rec(
        2,
        Event::ServiceFailed {
            service: "a".into(),
            error: "boom".into(),
        },
    ));
    n.send(&rec(3, started("b")));
    n.send(&rec(
        4,
        Event::RunFinished {
            outcome: "failed".into(),
            recovered: 0,
            failed: 1,
            blocked: 0,
        },
    ));
    // After close every queued notification has been delivered: the log is final.
    let stats = n.close(Duration::from_secs(10)).await;
    assert_eq!(stats.queued, 2);
    let got: Vec<(String, u64)> = srv
        .drain()
        .into_iter()
        .map(|s| match s {
            Seen::Body(_, v) => (
                v["event"].as_str().unwrap().to_string(),
                v["seq"].as_u64().unwrap(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            ("service.failed".to_string(), 2),
            ("run.finished".to_string(), 4)
        ]
    );
}

#[tokio::test]
async fn retries_a_500_then_delivers() {
    let mut srv = Server::start().await;
    let n = Notifier::with_options(
        &[srv.hook("flaky", NotifyFormat::Json, &[])],
        Masker::new(),
        RUN,
        None,
        fast(),
    );
    n.send(&rec(
        1,
        Event::ServiceStarted {
            service: "x".into(),
        },
    ));
    let stats = n.close(Duration::from_secs(10)).await;
    assert_eq!((stats.delivered, stats.failed), (1, 0));
    assert_eq!(srv.flaky_calls.load(Ordering::SeqCst), 2);
    let seen = srv.drain();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the retry sends the same body");
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let mut srv = Server::start().await;
    let n = Notifier::with_options(
        &[srv.hook("gone", NotifyFormat::Json, &[])],
        Masker::new(),
        RUN,
        None,
        fast(),
    );
    n.send(&rec(
        1,
        Event::ServiceStarted {
            service: "x".into(),
        },
    ));
    let stats = n.close(Duration::from_secs(10)).await;
    assert_eq!((stats.delivered, stats.failed), (0, 1));
    assert_eq!(srv.drain().len(), 1);
}

#[tokio::test]
async fn a_hanging_hook_delays_neither_send_nor_the_other_hooks() {
    let mut srv = Server::start().await;
    let opts = NotifyOptions { queue: 4, ..fast() };
    let n = Notifier::with_options(
        &[
            srv.hook("hang", NotifyFormat::Slack, &[]),
            srv.hook("live", NotifyFormat::Json, &[]),
        ],
        Masker::new(),
        RUN,
        None,
        opts,
    );
    // First event: wait until the dead hook holds it, so it is provably stuck.
    n.send(&rec(
        1,
        Event::ServiceStarted {
            service: "s1".into(),
        },
    ));
    let mut live = 0;
    loop {
        match srv.next().await {
            Seen::Held => break,
            Seen::Body(k, _) if k == "live" => live += 1,
            other => panic!("{other:?}"),
        }
    }
    // Far more than the queue holds: send must return every time, dropping the excess.
    for seq in 2..=40 {
        n.send(&rec(
            seq,
            Event::ServiceStarted {
                service: "s".into(),
            },
        ));
    }
    srv.log_tx.send(Seen::SendReturned).unwrap();
    let per_hook = n.hook_stats();
    assert!(per_hook[0].dropped > 0, "{per_hook:?}");
    // What the live hook accepted arrives while the dead hook is still held.
    let live_accepted = per_hook[1].queued;
    let mut order = Vec::new();
    while live < live_accepted {
        match srv.next().await {
            Seen::Body(k, _) if k == "live" => live += 1,
            other => order.push(other),
        }
    }
    // Only now release the dead hook.
    srv.release.send(true).unwrap();
    srv.log_tx.send(Seen::Released).unwrap();
    // Deliveries to one hook are concurrent: more requests to the dead hook may be held.
    assert!(
        order
            .iter()
            .all(|s| *s == Seen::SendReturned || *s == Seen::Held),
        "all sends returned before the held request was released: {order:?}"
    );
    let stats = n.close(Duration::from_secs(30)).await;
    assert_eq!(stats.abandoned, 0, "{stats:?}");
}

#[tokio::test]
async fn close_is_bounded_by_its_grace_when_the_hook_never_answers() {
    let mut srv = Server::start().await;
    let n = Notifier::with_options(
        &[srv.hook("hang", NotifyFormat::Json, &[])],
        Masker::new(),
        RUN,
        None,
        fast(),
    );
    n.send(&rec(
        1,
        Event::ServiceStarted {
            service: "x".into(),
        },
    ));
    n.send(&rec(
        2,
        Event::ServiceStarted {
            service: "y".into(),
        },
    ));
    assert_eq!(srv.next().await, Seen::Held);
    // The request is held until the 5s client timeout; a 50ms grace must win.
    let stats = n.close(Duration::from_millis(50)).await;
    assert_eq!(stats.abandoned, 2, "{stats:?}");
}

#[tokio::test]
async fn refused_endpoint_fails_after_retries_without_blocking() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let n = Notifier::with_options(
        &[Notify {
            url,
            events: vec![],
            format: NotifyFormat::Json,
            ..Default::default()
        }],
        Masker::new(),
        RUN,
        None,
        fast(),
    );
    n.send(&rec(
        1,
        Event::ServiceStarted {
            service: "x".into(),
        },
    ));
    let stats = n.close(Duration::from_secs(30)).await;
    assert_eq!((stats.delivered, stats.failed), (0, 1));
}

#[tokio::test]
async fn send_once_reaches_every_matching_hook() {
    let mut srv = Server::start().await;
    let hooks = [
        srv.hook("json", NotifyFormat::Json, &["graph.new_dependents"]),
        srv.hook("slack", NotifyFormat::Slack, &[]),
        srv.hook("other", NotifyFormat::Json, &["run.finished"]),
    ];
    let masker = Masker::new();
    masker.add("s3cr3t");
    let msg = Message {
        event: "graph.new_dependents".into(),
        json: serde_json::json!({"schema": "meeseeks.diff/v1", "new_dependents": {"payments": ["fraud-v2"]}, "note": "s3cr3t"}),
        text: ":eyes: payments gained dependents: fraud-v2 (s3cr3t)".into(),
    };
    let res = send_once_with(&hooks, &masker, &msg, Duration::from_secs(30), &fast()).await;
    assert_eq!(res.len(), 2, "the run.finished-only hook is filtered out");
    assert!(res.iter().all(|d| d.result.is_ok()), "{res:?}");
    let mut got = srv.drain();
    got.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        got,
        [
            Seen::Body(
                "json".into(),
                serde_json::json!({"schema": "meeseeks.diff/v1", "new_dependents": {"payments": ["fraud-v2"]}, "note": "***"})
            ),
            Seen::Body(
                "slack".into(),
                serde_json::json!({"text": ":eyes: payments gained dependents: fraud-v2 (***)"})
            ),
        ]
    );
}
