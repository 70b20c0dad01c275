//! `meeseeks serve`: the war room. A web server over the state directory that shows every run
//! live, lets the people on the bridge approve manual steps, and exports metrics.
//!
//! ```text
//! RunSource (source.rs) ──read/changed──▶ Hub per watched run (hub.rs) ──frames──▶ SSE clients
//!   file store today,                      fold → RunState, render deltas (view.rs)
//!   the lead's store later                           │
//!                                                    └──▶ run page, /metrics
//! ```
//!
//! Routes (SPEC §10): `/` runs, `/runs/{id}` a run live, `/runs/{id}/events` its Server-Sent
//! Events (event id = journal seq; `Last-Event-ID` or `?after=N` resumes after that record),
//! `/plan`, `/graph`, `/metrics`, `/healthz`, `POST /api/runs/{id}/approve`. Also JSON for
//! scripts and the pages' own use: `/api/runs`, `/api/runs/{id}` (`meeseeks.status/v1`),
//! `/api/graph/{service}`.
//!
//! Pages are rendered on the server (they work without JavaScript, and offline: no CDN, no
//! font, nothing fetched from elsewhere); a small inline script applies the deltas in place.

pub mod auth;
pub mod graph;
pub mod hub;
pub mod metrics;
pub mod source;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::auth::Token;
use self::hub::Hubs;
use self::source::{ApproveError, RunSource};

/// What the server needs, validated by the CLI.
pub struct Config {
    /// The DR directory (`/plan`, `/graph`).
    pub dir: PathBuf,
    /// Shown on the runs page.
    pub state_dir: PathBuf,
    /// The run store, where `meeseeks preflight --every` records its evaluations.
    pub store: crate::store::StoreSpec,
    pub token: Option<Token>,
    pub read_only: bool,
}

pub struct App {
    cfg: Config,
    hubs: Arc<Hubs>,
}

type Shared = Arc<App>;

/// The router over `source`. `stop` ends the event streams (graceful shutdown).
pub fn router(cfg: Config, source: Arc<dyn RunSource>, stop: CancellationToken) -> Router {
    let app = Arc::new(App {
        hubs: Arc::new(Hubs::new(source, stop, cfg.read_only)),
        cfg,
    });
    Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(run_events))
        .route("/plan", get(plan_page))
        .route("/graph", get(graph_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/runs/{id}/approve", post(approve))
        .route("/api/graph/{service}", get(api_graph))
        .route("/api/preflight", get(api_preflight))
        .fallback(not_found)
        .with_state(app)
}

/// Serves `router` on `listener` until `stop` (or SIGINT/SIGTERM) fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_stop.cancel();
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await })
    .await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, Html(body)).into_response();
    secure_headers(r.headers_mut());
    r
}

/// Pages embed their own script and style and fetch nothing from elsewhere: say so to the
/// browser, so that a string that escaped escaping still could not load or send anything.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    html_response(
        status,
        view::page(
            title,
            "",
            "",
            &view::error_body(title, detail),
            view::Script::None,
        ),
    )
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl App {
    /// The run id for a URL's id (exact, or a unique prefix), or why not.
    async fn resolve(&self, id: String) -> Result<String, (StatusCode, String)> {
        let src = self.hubs.source().clone();
        let ids = blocking(move || src.list_runs())
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        source::resolve(&ids, &id).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no run `{id}` in {}", self.cfg.state_dir.display()),
            )
        })
    }

    /// Every run folded (the runs list): the hub's state for watched runs, a fresh replay
    /// for the others.
    async fn all_runs(&self) -> Result<(Vec<view::RunRow>, Vec<String>), String> {
        let src = self.hubs.source().clone();
        blocking(move || {
            let ids = src.list_runs().map_err(|e| e.to_string())?;
            let mut rows = Vec::with_capacity(ids.len());
            let mut warnings = Vec::new();
            for id in ids {
                match src.read(&id, source::Cursor::default()) {
                    Ok(chunk) => {
                        let mut state = crate::runstate::RunState::fold(&chunk.records);
                        if state.run_id.is_empty() {
                            state.run_id = id.clone();
                        }
                        let holder = src.holder(&id).ok().flatten();
                        rows.push(view::RunRow {
                            live: holder.is_some(),
                            holder: holder.map(|h| format!("pid {} on {}", h.pid, h.host)),
                            state,
                        });
                    }
                    Err(e) => warnings.push(format!("run {id}: {e}")),
                }
            }
            Ok((rows, warnings))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

async fn runs_page(State(app): State<Shared>) -> Response {
    let preflight = app.last_preflight().await;
    match app.all_runs().await {
        Ok((rows, warnings)) => html_response(
            StatusCode::OK,
            view::runs_page(
                &rows,
                &warnings,
                &app.cfg.state_dir.display().to_string(),
                preflight.as_ref(),
            ),
        ),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot list runs", &e),
    }
}

async fn run_page(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match app.resolve(id).await {
        Ok(id) => id,
        Err((status, msg)) => return error_page(status, "Unknown run", &msg),
    };
    let hub = app.hubs.get(&id).await;
    let inner = hub.read();
    let log: Vec<String> = inner.log.iter().cloned().collect();
    let body = view::run_page(&view::RunView {
        state: &inner.state,
        live: inner.live(),
        holder: inner.holder_text(),
        seq: inner.state.last_seq,
        log: &log,
        steps_failed: inner.steps_failed,
        counts: inner.counts,
        token_required: app.cfg.token.is_some(),
        read_only: app.cfg.read_only,
        error: inner.error.as_deref(),
    });
    drop(inner);
    html_response(StatusCode::OK, body)
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

async fn run_events(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let id = match app.resolve(id).await {
        Ok(id) => id,
        Err((status, msg)) => return json_error(status, msg),
    };
    // The browser sends Last-Event-ID when it reconnects; a first connection says where its
    // page was rendered with `?after=`.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = last.or(q.after).unwrap_or(0);
    let hub = app.hubs.get(&id).await;
    let stream = hub.stream(after, app.hubs.stop_token());
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

#[derive(Deserialize)]
struct PlanQuery {
    eager: Option<String>,
    drill: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| !matches!(v, "0" | "false" | "no"))
}

async fn plan_page(State(app): State<Shared>, Query(q): Query<PlanQuery>) -> Response {
    let dir = app.cfg.dir.clone();
    let (eager, drill) = (flag(&q.eager), flag(&q.drill));
    match blocking(move || graph::plan_page(&dir, eager, drill)).await {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Cannot plan {}", app.cfg.dir.display()),
            &e,
        ),
    }
}

#[derive(Deserialize)]
struct GraphQuery {
    service: Option<String>,
}

async fn graph_page(State(app): State<Shared>, Query(q): Query<GraphQuery>) -> Response {
    let dir = app.cfg.dir.clone();
    let res = blocking(move || {
        let model = graph::load(&dir, true)?;
        graph::graph_page(&model, q.service.as_deref().filter(|s| !s.is_empty()))
    })
    .await;
    match res {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e @ crate::Error::UnknownService { .. }) => {
            error_page(StatusCode::NOT_FOUND, "Unknown service", &e.to_string())
        }
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Cannot read the graph of {}", app.cfg.dir.display()),
            &e.to_string(),
        ),
    }
}

async fn api_graph(State(app): State<Shared>, Path(service): Path<String>) -> Response {
    let dir = app.cfg.dir.clone();
    let res = blocking(move || {
        let model = graph::load(&dir, true)?;
        graph::detail(&model, &service)
    })
    .await;
    match res {
        Ok(d) => axum::Json(d.to_json()).into_response(),
        Err(e @ crate::Error::UnknownService { .. }) => {
            json_error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "See / for the runs, /plan, /graph, /metrics.",
    )
}

// ---------------------------------------------------------------------------------------------
// JSON

async fn api_runs(State(app): State<Shared>) -> Response {
    match app.all_runs().await {
        Ok((rows, warnings)) => {
            let runs: Vec<_> = rows
                .iter()
                .map(|r| {
                    let mut v =
                        serde_json::to_value(crate::runstate::RunSummary::from_state(&r.state))
                            .unwrap_or_default();
                    v["state"] = json!(view::shown_state(&r.state, r.live));
                    v["live"] = json!(r.live);
                    v["cleaned_up"] = json!(view::cleanup_text(&r.state));
                    v
                })
                .collect();
            let rows_html = view::runs_rows(&rows);
            axum::Json(json!({
                "schema": "meeseeks.runs/v1",
                "runs": runs,
                "warnings": warnings,
                "rows_html": rows_html,
            }))
            .into_response()
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_run(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match app.resolve(id).await {
        Ok(id) => id,
        Err((status, msg)) => return json_error(status, msg),
    };
    let hub = app.hubs.get(&id).await;
    let inner = hub.read();
    let mut st = inner.state.clone();
    let holder = inner.holder.clone();
    drop(inner);
    st.set_liveness(holder);
    axum::Json(crate::report::run::status_json(&st)).into_response()
}

#[derive(Deserialize)]
struct ApproveBody {
    service: String,
    step: Option<String>,
    by: String,
}

async fn approve(
    State(app): State<Shared>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(token) = &app.cfg.token {
        let ok = auth::bearer(&headers).is_some_and(|t| token.matches(t));
        if !ok {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "this server needs a token: send `Authorization: Bearer TOKEN`",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"meeseeks\""),
            );
            return r;
        }
    }
    if app.cfg.read_only {
        return json_error(
            StatusCode::FORBIDDEN,
            "this server is read-only (--read-only): approve from a terminal with `meeseeks approve`",
        );
    }
    let req: ApproveBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected JSON {{\"service\", \"step\"?, \"by\"}}: {e}"),
            );
        }
    };
    let by = req.by.trim();
    if by.is_empty() || by.chars().count() > 100 || by.chars().any(char::is_control) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "`by` must name who approves (1 to 100 printable characters)",
        );
    }
    let id = match app.resolve(id).await {
        Ok(id) => id,
        Err((status, msg)) => return json_error(status, msg),
    };
    // Who, as typed, and from where: anyone holding the token can type any name.
    let by = format!("{by} (web, {})", peer.ip());
    let src = app.hubs.source().clone();
    let (run, service, step) = (id.clone(), req.service.clone(), req.step.clone());
    let res = blocking(move || src.approve(&run, &service, step.as_deref(), &by)).await;
    match res {
        Ok(a) => {
            tracing::info!(
                "run {id}: {}/{} approved by {} from the web",
                a.service,
                a.step,
                a.by
            );
            axum::Json(json!({
                "run_id": id,
                "service": a.service,
                "step": a.step,
                "by": a.by,
                "at": a.at,
            }))
            .into_response()
        }
        Err(ApproveError::NotFound(m)) => json_error(StatusCode::NOT_FOUND, m),
        Err(ApproveError::Conflict(m)) => json_error(StatusCode::CONFLICT, m),
        Err(ApproveError::Store(m)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

// ---------------------------------------------------------------------------------------------
// Preflight

impl App {
    /// The last evaluation `meeseeks preflight` recorded in the store; none when it never ran
    /// (or the store cannot be read: the page and metrics still serve the runs, with a warning
    /// in the log).
    async fn last_preflight(&self) -> Option<crate::preflight::Report> {
        match crate::preflight::record::PreflightLog::new(&self.cfg.store)
            .latest()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read the preflight history: {e}");
                None
            }
        }
    }
}

/// The last recorded preflight as `meeseeks.preflight/v1` JSON; 404 while none is recorded.
async fn api_preflight(State(app): State<Shared>) -> Response {
    match app.last_preflight().await {
        Some(r) => axum::Json(r).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "no preflight recorded in this store yet: run `meeseeks preflight --every 30m`"
                .to_string(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics

async fn metrics(State(app): State<Shared>) -> Response {
    let preflight = app.last_preflight().await;
    let src = app.hubs.source().clone();
    let ids = match blocking(move || src.list_runs()).await {
        Ok(ids) => ids,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // The latest run, and any other a live process holds (a failed run being resumed). No
    // older run can be unfinished otherwise: `run` refuses to start while one is.
    let last = ids.last().cloned();
    let src = app.hubs.source().clone();
    let mut wanted: Vec<String> = blocking(move || {
        ids.iter()
            .rev()
            .skip(1)
            .filter(|id| matches!(src.holder(id), Ok(Some(_))))
            .cloned()
            .collect()
    })
    .await;
    wanted.reverse();
    wanted.extend(last);
    let mut hubs = Vec::new();
    for id in &wanted {
        hubs.push(app.hubs.get(id).await);
    }
    let guards: Vec<_> = hubs.iter().map(|h| h.read()).collect();
    let runs: Vec<metrics::RunMetrics> = guards
        .iter()
        .map(|g| metrics::RunMetrics {
            state: &g.state,
            live: g.live(),
            counts: g.counts,
            steps_failed: g.steps_failed,
        })
        .collect();
    let errors = guards.iter().filter(|g| g.error.is_some()).count();
    let mut text = metrics::render(&runs, app.hubs.clients(), errors);
    drop(guards);
    metrics::render_preflight(&mut text, preflight.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
