//! Webhook subscriber (SPEC §5 "Notifications").
//!
//! A `Notifier` owns one background task per `[[notify]]` hook, each fed by its own bounded
//! queue. `send` only filters and `try_send`s a shared pointer to the record: it never awaits,
//! never blocks, and a full queue drops the notification (counted, warned once) rather than
//! slowing the recovery. Per-hook tasks keep each hook's events in order, and a dead Slack
//! endpoint does not delay a healthy JSON one. Every request has a timeout and a bounded number
//! of retries with exponential backoff; `close` drains what it can within a grace period.
//!
//! All text leaving the process goes through the run's `Masker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{Event, Record};
use crate::mask::Masker;
use crate::model::{Mode, Notify, NotifyFormat, fmt_duration};

/// `schema` of the JSON payload.
pub const SCHEMA: &str = "meeseeks.event/v1";

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
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            queue: 256,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(500),
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
    /// Still queued or in flight when `close`'s grace ran out.
    pub abandoned: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
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
}

/// Context every payload carries.
#[derive(Debug, Clone)]
struct RunInfo {
    run_id: String,
    mode: Option<Mode>,
    masker: Masker,
}

impl Notifier {
    /// Spawns one delivery task per hook with the default policy. `mode`, when known, is put
    /// in every payload so that a drill is never mistaken for a real failover in a channel.
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
            masker,
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
        Notifier { hooks }
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
                            endpoint(&h.notify.url)
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
                abandoned: 0,
            })
    }

    /// Counters so far, per hook, in `[[notify]]` order.
    pub fn hook_stats(&self) -> Vec<NotifyStats> {
        self.hooks
            .iter()
            .map(|h| NotifyStats {
                queued: h.counters.queued.load(Ordering::Relaxed),
                delivered: h.counters.delivered.load(Ordering::Relaxed),
                failed: h.counters.failed.load(Ordering::Relaxed),
                dropped: h.counters.dropped.load(Ordering::Relaxed),
                abandoned: 0,
            })
            .collect()
    }

    /// Stops accepting notifications and delivers what is queued, for at most `grace`; what is
    /// still pending then is abandoned (and reported in the stats and the log).
    pub async fn close(mut self, grace: Duration) -> NotifyStats {
        for h in &mut self.hooks {
            h.tx = None;
        }
        let deadline = tokio::time::Instant::now() + grace;
        for h in &mut self.hooks {
            if tokio::time::timeout_at(deadline, &mut h.task)
                .await
                .is_err()
            {
                h.task.abort();
            }
        }
        let mut s = self.stats();
        s.abandoned = s.queued.saturating_sub(s.delivered + s.failed);
        if s.abandoned > 0 || s.dropped > 0 || s.failed > 0 {
            tracing::warn!(
                "webhooks: {} delivered, {} failed, {} dropped (queue full), {} abandoned at exit",
                s.delivered,
                s.failed,
                s.dropped,
                s.abandoned
            );
        }
        s
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

/// What a log line may show of a webhook URL: scheme and host only. Webhook URLs (Slack's in
/// particular) carry their credential in the path.
fn endpoint(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "invalid url".to_string(),
    }
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
    while let Some(rec) = rx.recv().await {
        let body = match hook.format {
            NotifyFormat::Json => json_payload(&rec, &info.run_id, info.mode, &info.masker),
            NotifyFormat::Slack => {
                json!({ "text": slack_text(&rec, &info.run_id, info.mode, &info.masker) })
            }
        };
        let outcome = match &client {
            Some(c) => deliver(c, &hook.url, &body, &opts).await,
            None => Err("no HTTP client".to_string()),
        };
        match outcome {
            Ok(()) => counters.delivered.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(
                    "webhook #{} ({}): {} not delivered: {}",
                    index + 1,
                    endpoint(&hook.url),
                    rec.event.name(),
                    info.masker.mask(&e)
                );
                counters.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// POSTs `body` with retries. Retries network errors, timeouts, 5xx and 429; any other answer
/// is final (a 4xx will not fix itself).
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    opts: &NotifyOptions,
) -> Result<(), String> {
    let mut delay = opts.backoff;
    let mut attempt = 0;
    loop {
        let res = client.post(url).json(body).send().await;
        let err = match res {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let s = r.status();
                let retryable = s.is_server_error() || s.as_u16() == 429;
                let msg = format!("HTTP {}", s.as_u16());
                if !retryable {
                    return Err(msg);
                }
                msg
            }
            // reqwest's Display includes the URL, which may hold a token: keep the kind only.
            Err(e) if e.is_timeout() => format!("timed out after {}", fmt_duration(opts.timeout)),
            Err(e) if e.is_connect() => "connection failed".to_string(),
            Err(e) => format!("request failed: {}", e.without_url()),
        };
        if attempt >= opts.retries {
            return Err(format!("{err} (after {} attempts)", attempt + 1));
        }
        attempt += 1;
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
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
        Event::CleanupStarted { services } => format!(
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
    let targets: Vec<&Notify> = hooks.iter().filter(|h| wants(h, &msg.event)).collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let Some(client) = http_client(opts.timeout) else {
        return targets
            .iter()
            .map(|h| Delivery {
                endpoint: endpoint(&h.url),
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
        let (client, url, opts) = (client.clone(), h.url.clone(), opts.clone());
        set.spawn(async move { (i, deliver(&client, &url, &body, &opts).await) });
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
            endpoint: endpoint(&h.url),
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
