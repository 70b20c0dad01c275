//! One tailer per watched run, shared by every page, stream and scrape of that run.
//!
//! A hub reads the run's records through the [`RunSource`] as they are appended, folds each
//! into its `RunState` (the same fold as `status` and `report`), and turns each into one
//! Server-Sent Events frame: the record's sequence number as the event id, and as data the
//! delta the page applies — the changed service's row and approval item, re-rendered by
//! [`view`], the run-wide counts and one activity line. Frames are rendered once and kept, so a
//! client that reconnects with `Last-Event-ID: N` is sent exactly the frames after N, and a
//! hundred watchers cost one tail.
//!
//! A hub lives while someone uses it, then [`IDLE`] longer; it stops polling when the server
//! shuts down.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::source::{Chunk, Cursor, RunSource};
use super::view;
use crate::events::{Event, Record};
use crate::runstate::LockInfo;
use crate::runstate::RunState;

/// A hub nobody has used for this long stops tailing.
pub const IDLE: Duration = Duration::from_secs(60);
/// How often a running run's lock is probed (a runner that died shows as interrupted).
const PROBE: Duration = Duration::from_secs(1);
/// At most this much is sent in one write to a client catching up.
const MAX_WRITE: usize = 256 * 1024;

pub struct Frame {
    pub seq: u64,
    pub bytes: Bytes,
}

/// What a hub knows about its run.
pub struct Inner {
    pub state: RunState,
    pub frames: Vec<Frame>,
    pub cursor: Cursor,
    pub holder: Option<LockInfo>,
    pub steps_failed: usize,
    pub counts: view::Counts,
    /// RTO of each service in seconds, for the activity lines.
    rto: HashMap<String, f64>,
    /// The last activity lines, oldest first.
    pub log: VecDeque<String>,
    /// Why the journal cannot be read, if it cannot.
    pub error: Option<String>,
    /// The first read is done (pages wait for it).
    pub ready: bool,
    /// Bumped when something without a sequence number changed (liveness, an error): clients
    /// are sent a `head` frame.
    pub meta_version: u64,
    /// Bumped when the journal went backwards: clients reload.
    pub epoch: u64,
}

impl Inner {
    fn new(id: &str) -> Inner {
        let mut state = RunState::default();
        state.run_id = id.to_string();
        Inner {
            state,
            frames: Vec::new(),
            cursor: Cursor::default(),
            holder: None,
            steps_failed: 0,
            counts: view::Counts::default(),
            rto: HashMap::new(),
            log: VecDeque::new(),
            error: None,
            ready: false,
            meta_version: 0,
            epoch: 0,
        }
    }

    pub fn live(&self) -> bool {
        self.holder.is_some()
    }

    pub fn holder_text(&self) -> Option<String> {
        self.holder.as_ref().map(|h| {
            format!(
                "pid {} on {} since {}",
                h.pid,
                h.host,
                h.since.strftime("%H:%M:%SZ")
            )
        })
    }

    fn head_frame(&self) -> Bytes {
        let head = self.head();
        let mut d = json!({ "head": head, "live_text": self.holder_text() });
        if let Some(e) = &self.error {
            d["error"] = json!(e);
        }
        Bytes::from(format!("event: head\ndata: {d}\n\n"))
    }

    pub fn head(&self) -> serde_json::Value {
        view::head_json(&self.state, self.live(), &self.counts, self.steps_failed)
    }

    /// Folds one record and renders its frame.
    fn apply(&mut self, rec: &Record, read_only: bool) {
        let service = rec.event.service();
        let before = service
            .and_then(|n| self.state.service(n))
            .map(|s| s.status);
        self.state.apply(rec);
        match &rec.event {
            Event::RunStarted { .. } | Event::RunResumed { .. } => {
                self.counts = view::Counts::of(&self.state);
                self.rto = (self.state.services.iter())
                    .filter_map(|s| Some((s.name.clone(), s.rto_s?)))
                    .collect();
            }
            _ => {
                let after = service
                    .and_then(|n| self.state.service(n))
                    .map(|s| s.status);
                if before != after {
                    self.counts.moved(before, after);
                }
            }
        }
        if matches!(rec.event, Event::StepFailed { .. }) {
            self.steps_failed += 1;
        }
        let line = view::describe(rec, &self.rto);
        if let Some(l) = &line {
            if self.log.len() == view::LOG_LINES {
                self.log.pop_front();
            }
            self.log.push_back(l.clone());
        }
        let mut d = json!({
            "seq": rec.seq,
            "ts": rec.ts,
            "event": rec.event.name(),
            "head": self.head(),
            "log": line,
        });
        match &rec.event {
            // The set of services (or the plan) changed: the page renders itself again.
            Event::RunStarted { .. } | Event::RunResumed { .. } => d["reload"] = json!(true),
            ev => {
                if let Some(s) = ev.service().and_then(|n| self.state.service(n)) {
                    d["service"] = json!(s.name);
                    d["row"] = json!(view::service_row(s, view::now_s(&self.state)));
                    d["wait"] = json!(view::waiting_item(&self.state, s, read_only));
                }
            }
        }
        self.frames.push(Frame {
            seq: rec.seq,
            bytes: Bytes::from(format!("id: {}\ndata: {d}\n\n", rec.seq)),
        });
    }
}

pub struct Hub {
    pub id: String,
    read_only: bool,
    inner: RwLock<Inner>,
    /// Bumped after every change; streams wait on it.
    version: watch::Sender<u64>,
    clients: AtomicUsize,
    touched: Mutex<Instant>,
}

impl Hub {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.touched.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn ingest(&self, chunk: Chunk) -> bool {
        if chunk.records.is_empty() && !chunk.reset {
            return false;
        }
        let mut inner = self.write();
        if chunk.reset {
            let epoch = inner.epoch + 1;
            let holder = inner.holder.take();
            *inner = Inner::new(&self.id);
            inner.epoch = epoch;
            inner.holder = holder;
            inner.ready = true;
        }
        for r in &chunk.records {
            inner.apply(r, self.read_only);
        }
        inner.cursor = chunk.next;
        inner.error = None;
        true
    }

    /// Waits (bounded) until the first read is done.
    pub async fn ready(&self) {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.read().ready {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// An SSE stream of the frames after `after`, then live ones, until `stop`.
    pub fn stream(
        self: &Arc<Self>,
        after: u64,
        stop: CancellationToken,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + use<>
    {
        let (meta, epoch) = {
            let i = self.read();
            (i.meta_version, i.epoch)
        };
        let client = Client {
            hub: self.clone(),
            seq: after,
            meta,
            epoch,
            rx: self.version.subscribe(),
            stop,
            greeted: false,
            done: false,
        };
        self.clients.fetch_add(1, Ordering::SeqCst);
        futures_util::stream::unfold(client, |mut c| async move {
            let bytes = c.next().await?;
            Some((Ok(bytes), c))
        })
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }
}

struct Client {
    hub: Arc<Hub>,
    seq: u64,
    meta: u64,
    epoch: u64,
    rx: watch::Receiver<u64>,
    stop: CancellationToken,
    greeted: bool,
    done: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.hub.clients.fetch_sub(1, Ordering::SeqCst);
        self.hub.touch();
    }
}

impl Client {
    /// What is due to the client now, if anything.
    fn collect(&mut self) -> Option<Bytes> {
        let inner = self.hub.read();
        if inner.epoch != self.epoch {
            self.done = true;
            return Some(Bytes::from_static(b"event: reload\ndata: {}\n\n"));
        }
        let mut out: Vec<u8> = Vec::new();
        if inner.meta_version != self.meta {
            self.meta = inner.meta_version;
            out.extend_from_slice(&inner.head_frame());
        }
        let start = inner.frames.partition_point(|f| f.seq <= self.seq);
        for f in &inner.frames[start..] {
            out.extend_from_slice(&f.bytes);
            self.seq = f.seq;
            if out.len() >= MAX_WRITE {
                break;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            // Reconnect after 2 s; then the run-wide figures as they are now.
            let head = self.hub.read().head_frame();
            let mut b = b"retry: 2000\n\n".to_vec();
            b.extend_from_slice(&head);
            return Some(Bytes::from(b));
        }
        loop {
            if let Some(b) = self.collect() {
                return Some(b);
            }
            tokio::select! {
                r = self.rx.changed() => if r.is_err() { return None },
                // A comment line keeps proxies from closing an idle stream.
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                _ = self.stop.cancelled() => return None,
            }
        }
    }
}

/// Every hub, by run id.
pub struct Hubs {
    source: Arc<dyn RunSource>,
    map: Mutex<HashMap<String, Arc<Hub>>>,
    stop: CancellationToken,
    read_only: bool,
}

impl Hubs {
    /// `read_only`: approval items are rendered without their button.
    pub fn new(source: Arc<dyn RunSource>, stop: CancellationToken, read_only: bool) -> Hubs {
        Hubs {
            source,
            map: Mutex::new(HashMap::new()),
            stop,
            read_only,
        }
    }

    pub fn source(&self) -> &Arc<dyn RunSource> {
        &self.source
    }

    /// Cancelled when the server shuts down.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// SSE clients connected, over every run.
    pub fn clients(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|h| h.clients()).sum()
    }

    /// The hub of run `id` (an id from `list_runs`), started on first use; its first read is
    /// done when this returns.
    pub async fn get(self: &Arc<Self>, id: &str) -> Arc<Hub> {
        let hub = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(id) {
                Some(h) => h.clone(),
                None => {
                    let (version, _) = watch::channel(0);
                    let hub = Arc::new(Hub {
                        id: id.to_string(),
                        read_only: self.read_only,
                        inner: RwLock::new(Inner::new(id)),
                        version,
                        clients: AtomicUsize::new(0),
                        touched: Mutex::new(Instant::now()),
                    });
                    map.insert(id.to_string(), hub.clone());
                    tokio::spawn(tail(self.clone(), hub.clone()));
                    hub
                }
            }
        };
        hub.touch();
        hub.ready().await;
        hub
    }
}

/// The tail loop of one hub.
async fn tail(hubs: Arc<Hubs>, hub: Arc<Hub>) {
    let source = hubs.source.clone();
    let mut last_probe: Option<Instant> = None;
    loop {
        let mut changed = false;
        let probe_due = last_probe.is_none_or(|t| t.elapsed() >= PROBE);
        // A finished run is probed too: `resume` may take it up again.
        if probe_due {
            last_probe = Some(Instant::now());
            let (src, id) = (source.clone(), hub.id.clone());
            if let Ok(Ok(holder)) = tokio::task::spawn_blocking(move || src.holder(&id)).await {
                let mut inner = hub.write();
                if inner.holder.as_ref().map(|h| h.pid) != holder.as_ref().map(|h| h.pid)
                    || inner.holder.is_some() != holder.is_some()
                {
                    inner.holder = holder;
                    inner.meta_version += 1;
                    changed = true;
                }
            }
        }
        let cursor = hub.read().cursor;
        let (src, id) = (source.clone(), hub.id.clone());
        let read = tokio::task::spawn_blocking(move || src.read(&id, cursor)).await;
        changed |= match read {
            Ok(Ok(chunk)) => hub.ingest(chunk),
            Ok(Err(e)) => set_error(&hub, e.to_string()),
            Err(e) => set_error(&hub, format!("journal reader stopped: {e}")),
        };
        let terminal = hub.read().state.state.is_terminal();
        {
            let mut inner = hub.write();
            if !inner.ready {
                inner.ready = true;
                changed = true;
            }
        }
        if changed {
            hub.bump();
        }
        let idle = hub.clients() == 0
            && hub
                .touched
                .lock()
                .map(|t| t.elapsed() >= IDLE)
                .unwrap_or(true);
        if idle {
            let mut map = hubs.map.lock().unwrap_or_else(|e| e.into_inner());
            // Re-checked under the map lock: a page may have just picked this hub up.
            let still_idle = hub.clients() == 0
                && hub
                    .touched
                    .lock()
                    .map(|t| t.elapsed() >= IDLE)
                    .unwrap_or(true);
            if still_idle {
                map.remove(&hub.id);
                return;
            }
        }
        let cursor = hub.read().cursor;
        let wait = if terminal {
            // Nothing more is expected; a resume is noticed within a second.
            Box::pin(tokio::time::sleep(PROBE))
        } else {
            source.changed(&hub.id, cursor)
        };
        tokio::select! {
            _ = wait => {}
            _ = hubs.stop.cancelled() => return,
        }
    }
}

fn set_error(hub: &Hub, e: String) -> bool {
    let mut inner = hub.write();
    if inner.error.as_deref() == Some(e.as_str()) {
        return false;
    }
    tracing::warn!("run {}: {e}", hub.id);
    inner.error = Some(e);
    inner.meta_version += 1;
    true
}
