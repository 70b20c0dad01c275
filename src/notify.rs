//! Webhook subscriber (SPEC §5 "Notifications").
//!
//! A `Notifier` owns one background task per `[[notify]]` hook, each fed by its own bounded
//! queue. `send` only filters and `try_send`s a shared pointer to the record: it never awaits,
//! never blocks, and a full queue drops the notification (counted, reported) rather than
//! slowing the recovery. Each hook delivers up to `concurrency` notifications at once, so one
//! slow answer does not hold the next ones, and hooks never wait for each other; payloads carry
//! `seq`, so a receiver can restore the order. Every request has a timeout and a bounded number
//! of retries with the shared exponential backoff; a hook that let a request time out is
//! *silent*: it gets no retries, and `close` abandons what it still has at once instead of
//! waiting for it. `close` drains the other hooks within a short grace and reports, once per
//! hook, whatever was not delivered.
//!
//! Hook URLs and headers may be templates (`{{ secret.HOOK_TOKEN }}`): `render_hooks` renders
//! them when the run starts, and everything derived from a secret is masked wherever a URL or
//! an error could be shown. All text leaving the process goes through the run's `Masker`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::events::{Event, Record};
use crate::mask::Masker;
use crate::model::{Mode, Notify, NotifyFormat, VarValue, fmt_duration};

/// `schema` of the JSON payload.
pub const SCHEMA: &str = "meeseeks.event/v1";

/// How long the end of a run waits for webhooks still delivering (silent hooks: not at all).
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Delivery policy. `Default` is what runs use; tests shorten the backoff.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Notifications waiting per hook before new ones are dropped.
    pub queue: usize,
    /// Bound on one HTTP request (connect + response).
    pub timeout: Duration,
    /// Extra attempts after the first, on network errors, 5xx and 429.
    pub retries: u32,
    /// Delay before the first retry, doubled after each failed attempt.
    pub backoff: Duration,
    /// Deliveries in flight at once, per hook.
    pub concurrency: usize,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            queue: 256,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(500),
            concurrency: 8,
        }
    }
}

/// Counters of one notifier, summed over its hooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Accepted into a queue.
    pub queued: u64,
    /// Answered with 2xx.
    pub delivered: u64,
    /// Gave up after the retries (or a non-retryable answer).
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Still queued or in flight when `close`'s grace ran out (or the hook was silent).
    pub abandoned: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// A request to this hook timed out: it is not answering.
    silent: AtomicBool,
}

struct Hook {
    notify: Notify,
    /// `None` once closed.
    tx: Option<mpsc::Sender<Arc<Record>>>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

/// The webhook subscriber of one run. Create it inside a Tokio runtime.
pub struct Notifier {
    hooks: Vec<Hook>,
    masker: Masker,
    timeout: Duration,
}

/// Context every payload carries.
#[derive(Debug, Clone)]
struct RunInfo {
    run_id: String,
    mode: Option<Mode>,
    masker: Masker,
}

/// `hooks` with their URL and headers rendered (graph `vars`, `run_id`, `mode`, `env.NAME`,
/// `secret.NAME`), everything derived from a secret registered in `masker`. A hook that cannot
/// be rendered is left out, with a warning (the loader checked the templates; only the
/// environment can still be wrong).
pub fn render_hooks(
    hooks: &[Notify],
    vars: &BTreeMap<String, VarValue>,
    run_id: &str,
    mode: Option<Mode>,
    masker: &Masker,
) -> Vec<Notify> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let ctx = |secrets| {
        let mut map: BTreeMap<String, minijinja::Value> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                )
            })
            .collect();
        map.insert("run_id".into(), run_id.into());
        map.insert("mode".into(), mode.map(|m| m.as_str()).unwrap_or("").into());
        let (e, s) = crate::template::env_objects(secrets, masker);
        map.insert("env".into(), e);
        map.insert("secret".into(), s);
        minijinja::Value::from(map)
    };
    let render = |t: &str| -> Result<String, String> {
        if !t.contains("{{") && !t.contains("{%") {
            return Ok(t.to_string());
        }
        crate::template::render_tainted(&env, t, &ctx, masker).map_err(|e| e.to_string())
    };
    let mut out = Vec::with_capacity(hooks.len());
    for (i, h) in hooks.iter().enumerate() {
        let rendered = render(&h.url).and_then(|url| {
            let headers = h
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()?;
            Ok(Notify {
                url,
                headers,
                ..h.clone()
            })
        });
        match rendered {
            Ok(n) => out.push(n),
            Err(e) => tracing::warn!(
                "webhook #{} (graph.toml:{}) disabled: cannot render it: {}",
                i + 1,
                h.line,
                masker.mask(&e)
            ),
        }
    }
    out
}

impl Notifier {
    /// Spawns one delivery task per hook with the default policy. `mode`, when known, is put
    /// in every payload so that a drill is never mistaken for a real failover in a channel.
    /// `hooks` are used as given: render templated ones with `render_hooks` first.
    pub fn new(hooks: &[Notify], masker: Masker, run_id: &str, mode: Option<Mode>) -> Notifier {
        Notifier::with_options(hooks, masker, run_id, mode, NotifyOptions::default())
    }

    pub fn with_options(
        hooks: &[Notify],
        masker: Masker,
        run_id: &str,
        mode: Option<Mode>,
        opts: NotifyOptions,
    ) -> Notifier {
        let info = Arc::new(RunInfo {
            run_id: run_id.to_string(),
            mode,
            masker: masker.clone(),
        });
        let client = if hooks.is_empty() {
            None
        } else {
            http_client(opts.timeout)
        };
        let hooks = hooks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (tx, rx) = mpsc::channel(opts.queue.max(1));
                let counters = Arc::new(Counters::default());
                let task = tokio::spawn(worker(
                    i,
                    n.clone(),
                    client.clone(),
                    rx,
                    opts.clone(),
                    info.clone(),
                    counters.clone(),
                ));
                Hook {
                    notify: n.clone(),
                    tx: Some(tx),
                    task,
                    counters,
                }
            })
            .collect();
        Notifier {
            hooks,
            masker,
            timeout: opts.timeout,
        }
    }

    /// Queues `rec` for every hook that wants this event. Never blocks; when a hook's queue is
    /// full the notification is dropped and counted.
    pub fn send(&self, rec: &Record) {
        let name = rec.event.name();
        let mut shared: Option<Arc<Record>> = None;
        for (i, h) in self.hooks.iter().enumerate() {
            if !wants(&h.notify, name) {
                continue;
            }
            let Some(tx) = &h.tx else { continue };
            let rec = shared.get_or_insert_with(|| Arc::new(rec.clone())).clone();
            match tx.try_send(rec) {
                Ok(()) => {
                    h.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    // Warn on the first drop only: a dead hook under a busy run would otherwise
                    // flood the log; `close` reports the total.
                    if h.counters.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            "webhook #{} ({}) is not keeping up: dropping notifications",
                            i + 1,
                            endpoint(&h.notify.url, &self.masker)
                        );
                    }
                }
            }
        }
    }

    /// Counters so far, summed over the hooks.
    pub fn stats(&self) -> NotifyStats {
        self.hook_stats()
            .into_iter()
            .fold(NotifyStats::default(), |a, h| NotifyStats {
                queued: a.queued + h.queued,
                delivered: a.delivered + h.delivered,
                failed: a.failed + h.failed,
                dropped: a.dropped + h.dropped,
                abandoned: a.abandoned + h.abandoned,
            })
    }

    /// Counters so far, per hook, in `[[notify]]` order.
    pub fn hook_stats(&self) -> Vec<NotifyStats> {
        self.hooks.iter().map(|h| counts(&h.counters)).collect()
    }

    /// Stops accepting notifications and delivers what is queued, for at most `grace`; a
    /// silent hook is not waited for at all. What is still pending then is abandoned, and
    /// every hook that did not deliver everything is reported once.
    pub async fn close(mut self, grace: Duration) -> NotifyStats {
        for h in &mut self.hooks {
            h.tx = None;
        }
        let deadline = tokio::time::Instant::now() + grace;
        for h in &mut self.hooks {
            let wait = !h.counters.silent.load(Ordering::Relaxed);
            if !wait
                || tokio::time::timeout_at(deadline, &mut h.task)
                    .await
                    .is_err()
            {
                h.task.abort();
            }
        }
        let mut total = NotifyStats::default();
        for (i, h) in self.hooks.iter().enumerate() {
            let mut s = counts(&h.counters);
            s.abandoned = s.queued.saturating_sub(s.delivered + s.failed);
            if s.abandoned > 0 || s.dropped > 0 || s.failed > 0 {
                let why = if h.counters.silent.load(Ordering::Relaxed) {
                    format!(
                        " (the endpoint did not answer within {})",
                        fmt_duration(self.timeout)
                    )
                } else if s.abandoned > 0 {
                    format!(" (still pending after {})", fmt_duration(grace))
                } else {
                    String::new()
                };
                tracing::warn!(
                    "webhook #{} ({}): {} of {} notifications not delivered: {} failed, {} dropped (queue full), {} abandoned at exit{why}",
                    i + 1,
                    endpoint(&h.notify.url, &self.masker),
                    s.failed + s.dropped + s.abandoned,
                    s.queued + s.dropped,
                    s.failed,
                    s.dropped,
                    s.abandoned,
                );
            }
            total.queued += s.queued;
            total.delivered += s.delivered;
            total.failed += s.failed;
            total.dropped += s.dropped;
            total.abandoned += s.abandoned;
        }
        total
    }
}

fn counts(c: &Counters) -> NotifyStats {
    NotifyStats {
        queued: c.queued.load(Ordering::Relaxed),
        delivered: c.delivered.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        abandoned: 0,
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // A notifier dropped without `close` must not leave tasks retrying in the background.
        for h in &self.hooks {
            h.task.abort();
        }
    }
}

fn wants(n: &Notify, event: &str) -> bool {
    n.events.is_empty() || n.events.iter().any(|e| e == event)
}

/// What a log line may show of a webhook URL: scheme and host only (webhook URLs, Slack's in
/// particular, carry their credential in the path), masked (a templated host may hold one).
fn endpoint(url: &str, masker: &Masker) -> String {
    let shown = match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "invalid url".to_string(),
    };
    masker.mask(&shown).into_owned()
}

fn http_client(timeout: Duration) -> Option<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("meeseeks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            // Notifications never fail a run: say it once and deliver nothing.
            tracing::warn!("webhooks disabled: cannot build an HTTP client: {e}");
            None
        }
    }
}

async fn worker(
    index: usize,
    hook: Notify,
    client: Option<reqwest::Client>,
    mut rx: mpsc::Receiver<Arc<Record>>,
    opts: NotifyOptions,
    info: Arc<RunInfo>,
    counters: Arc<Counters>,
) {
    let hook = Arc::new(hook);
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(rec) = rx.recv().await {
        // Bounded: at most `concurrency` requests; the queue holds the rest.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        while inflight.try_join_next().is_some() {}
        let (hook, client, opts, info, counters) = (
            hook.clone(),
            client.clone(),
            opts.clone(),
            info.clone(),
            counters.clone(),
        );
        inflight.spawn(async move {
            let _permit = permit;
            let body = match hook.format {
                NotifyFormat::Json => json_payload(&rec, &info.run_id, info.mode, &info.masker),
                NotifyFormat::Slack => {
                    json!({ "text": slack_text(&rec, &info.run_id, info.mode, &info.masker) })
                }
            };
            let outcome = match &client {
                Some(c) => deliver(c, &hook, &body, &opts, &counters.silent).await,
                None => Err("no HTTP client".to_string()),
            };
            match outcome {
                Ok(()) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let first = counters.failed.fetch_add(1, Ordering::Relaxed) == 0;
                    let line = format!(
                        "webhook #{} ({}): {} not delivered: {}",
                        index + 1,
                        endpoint(&hook.url, &info.masker),
                        rec.event.name(),
                        info.masker.mask(&e)
                    );
                    // The first failure at once; the others are summed up by `close`.
                    if first {
                        tracing::warn!("{line}");
                    } else {
                        tracing::debug!("{line}");
                    }
                }
            }
        });
    }
    while inflight.join_next().await.is_some() {}
}

/// Whether an answer is worth another attempt: 5xx and 429 may pass, any other answer is final
/// (a 4xx will not fix itself). Network errors and timeouts are retried too.
fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status.as_u16() == 429
}

/// POSTs `body` with retries (see `retryable`) and the shared backoff. A timeout marks the
/// hook `silent`; a silent hook gets no retries until it answers again.
async fn deliver(
    client: &reqwest::Client,
    hook: &Notify,
    body: &Value,
    opts: &NotifyOptions,
    silent: &AtomicBool,
) -> Result<(), String> {
    let mut backoff = Backoff::new(opts.backoff);
    let mut attempt = 0;
    loop {
        let mut req = client.post(&hook.url).json(body);
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        let err = match req.send().await {
            Ok(r) if r.status().is_success() => {
                silent.store(false, Ordering::Relaxed);
                return Ok(());
            }
            Ok(r) => {
                silent.store(false, Ordering::Relaxed);
                let s = r.status();
                let msg = format!("HTTP {}", s.as_u16());
                if !retryable(s) {
                    return Err(msg);
                }
                msg
            }
            // reqwest's Display includes the URL, which may hold a token: keep the kind only.
            Err(e) if e.is_timeout() => {
                silent.store(true, Ordering::Relaxed);
                format!("timed out after {}", fmt_duration(opts.timeout))
            }
            Err(e) if e.is_connect() => "connection failed".to_string(),
            Err(e) => format!("request failed: {}", e.without_url()),
        };
        if attempt >= opts.retries || silent.load(Ordering::Relaxed) {
            return Err(format!("{err} (after {} attempts)", attempt + 1));
        }
        attempt += 1;
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

// ------------------------------------------------------------------------------------------
// Payloads

/// `{"schema":"meeseeks.event/v1","run_id":...,"mode":...,"seq":...,"ts":...,"event":...,...}`
/// with every string masked.
pub fn json_payload(rec: &Record, run_id: &str, mode: Option<Mode>, masker: &Masker) -> Value {
    let mut obj = Map::new();
    obj.insert("schema".into(), SCHEMA.into());
    obj.insert("run_id".into(), run_id.into());
    if let Some(m) = mode {
        obj.insert("mode".into(), m.as_str().into());
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(rec) {
        for (k, v) in fields {
            obj.entry(k).or_insert(v);
        }
    }
    let mut v = Value::Object(obj);
    mask_value(&mut v, masker);
    v
}

/// Masks every string (keys included) of a JSON value in place. Masking the serialised text
/// instead would miss secrets that contain characters JSON escapes.
pub fn mask_value(v: &mut Value, masker: &Masker) {
    if masker.is_empty() {
        return;
    }
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(m) = masker.mask(s) {
                *s = m;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_value(x, masker)),
        Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut x) in old {
                mask_value(&mut x, masker);
                o.insert(masker.mask(&k).into_owned(), x);
            }
        }
        _ => {}
    }
}

fn secs(s: f64) -> String {
    if s.is_finite() && s >= 0.0 {
        fmt_duration(Duration::from_secs_f64(s))
    } else {
        format!("{s}s")
    }
}

/// A human one-liner for Slack-compatible `{"text": ...}` payloads, masked.
pub fn slack_text(rec: &Record, run_id: &str, mode: Option<Mode>, masker: &Masker) -> String {
    // A drill must never read like a real outage in a channel.
    let tag = match mode {
        Some(Mode::Drill) => "[drill] ",
        _ => "",
    };
    let body = match &rec.event {
        Event::RunStarted { mode, services, .. } => format!(
            ":rocket: DR {mode} started: {} service{}",
            services.len(),
            if services.len() == 1 { "" } else { "s" }
        ),
        Event::RunResumed { .. } => ":arrow_forward: DR run resumed".to_string(),
        Event::ServiceStarted { service } => format!(":gear: {service} recovery started"),
        Event::StepStarted { service, step, .. } => format!(":gear: {service}: {step}"),
        Event::StepAttemptFailed {
            service,
            step,
            attempt,
            error,
            ..
        } => format!(":warning: {service}: \"{step}\" attempt {attempt} failed: {error}"),
        Event::StepSucceeded { service, step, .. } => {
            format!(":heavy_check_mark: {service}: {step}")
        }
        Event::StepFailed {
            service,
            step,
            error,
            optional,
            ..
        } => {
            if *optional {
                format!(":warning: {service}: optional step \"{step}\" failed: {error}")
            } else {
                format!(":x: {service}: step \"{step}\" failed: {error}")
            }
        }
        Event::StepSkipped {
            service,
            step,
            reason,
        } => format!(":fast_forward: {service}: \"{step}\" skipped ({reason})"),
        Event::ManualWaiting {
            service,
            step,
            prompt,
        } => format!(
            ":raised_hand: {service} waits for \"{step}\": {prompt} (approve: `meeseeks approve {run_id} {service}`)"
        ),
        Event::ManualApproved { service, step, by } => {
            format!(":ok_hand: {service}: \"{step}\" approved by {by}")
        }
        Event::CheckPassed { service, check, .. } => {
            format!(":heavy_check_mark: {service}: check {check} passed")
        }
        Event::CheckFailed {
            service,
            check,
            error,
        } => format!(":x: {service}: check {check} failed: {error}"),
        Event::ServiceRecovered {
            service,
            recovered_s,
        } => format!(
            ":white_check_mark: {service} recovered after {}",
            secs(*recovered_s)
        ),
        Event::ServiceFailed { service, error } => format!(":x: {service} failed: {error}"),
        Event::ServiceSkipped { service, reason } => {
            format!(":fast_forward: {service} skipped ({reason})")
        }
        Event::ServiceBlocked { service, because } => {
            format!(":no_entry: {service} blocked: {because} did not recover")
        }
        Event::RollbackStarted { service } => {
            format!(":leftwards_arrow_with_hook: {service} rolling back")
        }
        Event::RtoBreached { service, rto_s } => {
            format!(":rotating_light: {service} RTO breached ({})", secs(*rto_s))
        }
        Event::RpoMeasured {
            service,
            window_s,
            rpo_s,
            ..
        } => {
            let icon = if crate::events::rpo_exceeded(*window_s, *rpo_s) {
                ":rotating_light:"
            } else {
                ":floppy_disk:"
            };
            format!(
                "{icon} {service} data-loss window {}",
                crate::events::rpo_verdict(*window_s, *rpo_s)
            )
        }
        Event::RpoProbeFailed { service, error, .. } => {
            format!(":warning: {service} RPO not measured: {error}")
        }
        Event::RunInterrupted { reason } => {
            format!(
                ":double_vertical_bar: DR run interrupted ({reason}); resume with `meeseeks resume {run_id}`"
            )
        }
        Event::RunAbandoned { by } if !by.is_empty() => {
            format!(":wastebasket: DR run abandoned by {by}")
        }
        Event::RunAbandoned { .. } => ":wastebasket: DR run abandoned".to_string(),
        Event::CleanupStarted { services, .. } => format!(
            ":broom: cleanup of {} drilled service{} started",
            services.len(),
            if services.len() == 1 { "" } else { "s" }
        ),
        Event::ServiceCleanedUp { service, failed } if failed.is_empty() => {
            format!(":broom: {service} cleaned up")
        }
        Event::ServiceCleanedUp { service, failed } => format!(
            ":x: {service}: cleanup failed ({}): check what still runs",
            failed.join(", ")
        ),
        Event::CleanupFinished { steps, failures } => format!(
            ":broom: cleanup finished: {} of {steps} steps succeeded",
            steps - failures.len().min(*steps)
        ),
        Event::RunFinished {
            outcome,
            recovered,
            failed,
            blocked,
        } => {
            let icon = if outcome == "succeeded" {
                ":white_check_mark:"
            } else {
                ":x:"
            };
            format!(
                "{icon} DR run {outcome}: {recovered} recovered, {failed} failed, {blocked} blocked"
            )
        }
    };
    masker
        .mask(&format!("{tag}{body} — run {run_id}"))
        .into_owned()
}

// ------------------------------------------------------------------------------------------
// One-shot sends (outside a run, e.g. `meeseeks diff` alerting on new dependents)

/// A notification that is not a run event.
#[derive(Debug, Clone)]
pub struct Message {
    /// Event name used for the hooks' `events` filters, e.g. `graph.new_dependents`.
    pub event: String,
    /// Body for `format = "json"` hooks (the caller includes its own `schema`).
    pub json: Value,
    /// Text for `format = "slack"` hooks.
    pub text: String,
}

/// Outcome of a one-shot delivery to one hook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Scheme and host only (the path may hold a token).
    pub endpoint: String,
    pub result: Result<(), String>,
}

/// Sends `msg` to every hook that wants `msg.event`, concurrently, with the default retry
/// policy, and waits at most `within` overall. Results are in hook order; a hook still trying
/// when `within` elapses is reported as timed out.
pub async fn send_once(
    hooks: &[Notify],
    masker: &Masker,
    msg: &Message,
    within: Duration,
) -> Vec<Delivery> {
    send_once_with(hooks, masker, msg, within, &NotifyOptions::default()).await
}

pub async fn send_once_with(
    hooks: &[Notify],
    masker: &Masker,
    msg: &Message,
    within: Duration,
    opts: &NotifyOptions,
) -> Vec<Delivery> {
    // Outside a run: only the environment (and secrets) to render templated hooks with.
    let hooks = render_hooks(hooks, &BTreeMap::new(), "", None, masker);
    let targets: Vec<&Notify> = hooks.iter().filter(|h| wants(h, &msg.event)).collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let Some(client) = http_client(opts.timeout) else {
        return targets
            .iter()
            .map(|h| Delivery {
                endpoint: endpoint(&h.url, masker),
                result: Err("no HTTP client".into()),
            })
            .collect();
    };
    let mut json = msg.json.clone();
    mask_value(&mut json, masker);
    let slack = json!({ "text": masker.mask(&msg.text) });
    let mut set = tokio::task::JoinSet::new();
    for (i, h) in targets.iter().enumerate() {
        let body = match h.format {
            NotifyFormat::Json => json.clone(),
            NotifyFormat::Slack => slack.clone(),
        };
        let (client, hook, opts) = (client.clone(), (*h).clone(), opts.clone());
        set.spawn(async move {
            let silent = AtomicBool::new(false);
            (i, deliver(&client, &hook, &body, &opts, &silent).await)
        });
    }
    let mut results: Vec<Option<Result<(), String>>> = vec![None; targets.len()];
    let _ = tokio::time::timeout(within, async {
        while let Some(r) = set.join_next().await {
            if let Ok((i, res)) = r {
                results[i] = Some(res);
            }
        }
    })
    .await;
    set.abort_all();
    targets
        .iter()
        .zip(results)
        .map(|(h, r)| Delivery {
            endpoint: endpoint(&h.url, masker),
            result: r.unwrap_or_else(|| Err(format!("no answer within {}", fmt_duration(within)))),
        })
        .collect()
}

/// Webhooks (`[[notify]]`) as a subscriber of a run; [`NotifySubscriber::close`] delivers what
/// is queued, within a grace period, once the run ended.
#[derive(Clone, Default)]
pub struct NotifySubscriber(Arc<std::sync::Mutex<Option<Notifier>>>);

impl NotifySubscriber {
    /// Starts the hooks' delivery tasks (needs a tokio runtime).
    pub fn start(hooks: &[Notify], masker: Masker, run_id: &str, mode: Mode) -> NotifySubscriber {
        NotifySubscriber(Arc::new(std::sync::Mutex::new(Some(Notifier::new(
            hooks,
            masker,
            run_id,
            Some(mode),
        )))))
    }

    /// Stops accepting records and waits up to `grace` for queued deliveries.
    pub async fn close(&self, grace: Duration) {
        let n = self.0.lock().ok().and_then(|mut g| g.take());
        if let Some(n) = n {
            n.close(grace).await;
        }
    }
}

impl crate::events::Subscriber for NotifySubscriber {
    fn on_record(&mut self, rec: &Record) {
        if let Ok(g) = self.0.lock()
            && let Some(n) = g.as_ref()
        {
            n.send(rec);
        }
    }
}
