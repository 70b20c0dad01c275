//! The etcd store: runs kept in an etcd cluster (Raft, across sites), so that the runner can
//! lose its host and a standby runner elsewhere takes over.
//!
//! Keys under the store's prefix `P`:
//!
//! ```text
//! P/lock                          held briefly while a run is created or taken (lease-bound)
//! P/index/<run-id>                one per run (listing without reading journals)
//! P/runs/<run-id>/meta            RunMeta (JSON), written once
//! P/runs/<run-id>/journal/<seq>   one Record (JSON) per key, seq zero-padded to 20 digits
//! P/runs/<run-id>/begun           written with the first record
//! P/runs/<run-id>/lock            LockInfo of the holder, bound to the holder's lease
//! P/runs/<run-id>/approvals/<svc> an Approval dropped by `approve` / `serve`
//! P/preflight/<timestamp>.json    a recorded `preflight` evaluation (`docs`; newest 200 kept)
//! ```
//!
//! The run's lock is a lease (TTL default 10 s, `?ttl=` in the URL) kept alive by the holder.
//! Every journal append is a transaction conditioned on the lock key still carrying the
//! holder's lease (fencing): a runner that lost its lease — a partition, a paused process —
//! can never append again, and learns it either from its keep-alive or from its next append.
//! Group commit maps to one transaction per chunk of a batch.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;

use super::journal::{Batch, Failure, JournalHandle, Sink, SinkWrite, spawn};
use super::{Approval, RunMeta};
use crate::error::{Error, Result};
use crate::events::{ApprovalSource, Event, Record};
use crate::mask::Masker;
use crate::runstate::{LockInfo, RunState, RunStatus, RunSummary};

/// Default lease TTL of a run's lock.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Bound on one request to the cluster (a dead member must not hang a command).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Records per journal transaction (etcd's default limit is 128 operations) and bytes
/// (its default request limit is 1.5 MiB).
const TXN_RECORDS: usize = 100;
const TXN_BYTES: usize = 1 << 20;

/// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=DURATION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSpec {
    pub endpoints: Vec<String>,
    /// Key prefix, without a trailing `/` (e.g. `/meeseeks/shop`).
    pub prefix: String,
    pub ttl: Duration,
    /// Where runs keep local files on this host (`DIR/.meeseeks`): stand-ins' pidfiles, logs.
    pub local: PathBuf,
}

impl EtcdSpec {
    pub fn parse(url: &str, local: PathBuf) -> Result<EtcdSpec> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "--store {url}: {why} (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=10s])"
            ))
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("not an etcd:// URL"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hosts, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, format!("/{}", p.trim_matches('/'))),
            None => (rest, "/meeseeks".to_string()),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no endpoint"));
        }
        if prefix == "/" {
            return Err(bad("the prefix must not be empty"));
        }
        let mut ttl = DEFAULT_TTL;
        for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("ttl", v)) => {
                    ttl = humantime::parse_duration(v)
                        .ok()
                        .filter(|d| *d >= Duration::from_secs(2) && *d <= Duration::from_secs(3600))
                        .ok_or_else(|| bad("ttl must be a duration from 2s to 1h"))?;
                }
                _ => return Err(bad(&format!("unknown option `{kv}`"))),
            }
        }
        Ok(EtcdSpec {
            endpoints,
            prefix,
            ttl,
            local,
        })
    }
}

impl std::fmt::Display for EtcdSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect();
        write!(f, "etcd://{}{}", hosts.join(","), self.prefix)
    }
}

fn etcd_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("etcd: cannot {what}: {e}"))
}

/// A request to the cluster, bounded by [`REQUEST_TIMEOUT`], and sent again while the member
/// it reached is unavailable (down, or electing a leader: such a request was not applied, so
/// sending it again is safe) — the client balances over every endpoint, so the next try
/// usually reaches a live member.
async fn bounded<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match tokio::time::timeout(REQUEST_TIMEOUT, f()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if unavailable(&e) && started.elapsed() < REQUEST_TIMEOUT => {
                tracing::debug!("etcd: {what}: {e}; trying again");
            }
            Ok(Err(e)) => return Err(etcd_err(what, e)),
            Err(_) => {
                return Err(etcd_err(
                    what,
                    format!(
                        "no answer within {}",
                        humantime::format_duration(REQUEST_TIMEOUT)
                    ),
                ));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// The request did not reach a working member (so it was not applied).
fn unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    spec: EtcdSpec,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.spec)
    }
}

impl EtcdStore {
    pub async fn connect(spec: &EtcdSpec) -> Result<EtcdStore> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = bounded(&format!("connect to {spec}"), || {
            Client::connect(spec.endpoints.clone(), Some(opts.clone()))
        })
        .await?;
        Ok(EtcdStore {
            client,
            spec: spec.clone(),
        })
    }

    pub fn spec(&self) -> &EtcdSpec {
        &self.spec
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.spec.prefix)
    }

    fn run_key(&self, id: &str, rest: &str) -> String {
        self.key(&format!("runs/{id}/{rest}"))
    }

    fn journal_prefix(&self, id: &str) -> String {
        self.run_key(id, "journal/")
    }

    pub fn local_run_dir(&self, id: &str) -> PathBuf {
        self.spec.local.join("runs").join(id)
    }

    async fn get_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = bounded("read", || {
            let mut kv = self.client.kv_client();
            async move { kv.get(key, None).await }
        })
        .await?;
        Ok(r.kvs().first().map(|k| k.value().to_vec()))
    }

    /// Run ids, oldest first (ids sort by time).
    pub async fn list(&self) -> Result<Vec<String>> {
        let prefix = self.key("index/");
        let r = bounded("list runs", || {
            let (mut kv, p) = (self.client.kv_client(), prefix.clone());
            async move {
                kv.get(p, Some(GetOptions::new().with_prefix().with_keys_only()))
                    .await
            }
        })
        .await?;
        let mut ids: Vec<String> = r
            .kvs()
            .iter()
            .filter_map(|k| k.key_str().ok()?.strip_prefix(&prefix).map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub async fn resolve(&self, id: Option<&str>) -> Result<String> {
        super::pick_run(&self.list().await?, id, &self.spec.to_string())
    }

    pub async fn meta(&self, id: &str) -> Result<RunMeta> {
        let bytes = self
            .get_value(&self.run_key(id, "meta"))
            .await?
            .ok_or_else(|| Error::Usage(format!("unknown run `{id}` in {}", self.spec)))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{}: meta of run {id}: {e}", self.spec)))
    }

    /// The journal's records in order. Like the file store, a run that had begun but has no
    /// record left is an error, never a blank slate.
    pub async fn replay(&self, id: &str) -> Result<Vec<Record>> {
        let records = self.replay_after(id, 0).await?;
        if records.is_empty() && self.get_value(&self.run_key(id, "begun")).await?.is_some() {
            return Err(Error::Invalid(format!(
                "the journal of run {id} in {} is empty although the run had begun: its history \
                 is lost. Give the run up with `meeseeks run --abandon {id}` and check by hand \
                 what it did",
                self.spec
            )));
        }
        Ok(records)
    }

    /// The journal's records with a sequence number above `after`, in order.
    pub async fn replay_after(&self, id: &str, after: u64) -> Result<Vec<Record>> {
        let prefix = self.journal_prefix(id);
        let end = prefix_end(&prefix);
        let kv = self.client.kv_client();
        let mut records: Vec<Record> = Vec::new();
        let mut from = format!("{prefix}{:020}", after + 1);
        loop {
            let opts = GetOptions::new()
                .with_range(end.clone())
                .with_sort(SortTarget::Key, SortOrder::Ascend)
                .with_limit(1000);
            let r = bounded("read the journal", || {
                let (mut kv, from, opts) = (kv.clone(), from.clone(), opts.clone());
                async move { kv.get(from, Some(opts)).await }
            })
            .await?;
            for k in r.kvs() {
                let key = k.key_str().unwrap_or("?");
                let rec: Record = serde_json::from_slice(k.value()).map_err(|e| {
                    Error::Invalid(format!(
                        "{}: journal record {key} is damaged: {e}",
                        self.spec
                    ))
                })?;
                if let Some(prev) = records.last()
                    && rec.seq <= prev.seq
                {
                    return Err(Error::Invalid(format!(
                        "{}: journal record {key} is out of order (seq {} after {})",
                        self.spec, rec.seq, prev.seq
                    )));
                }
                records.push(rec);
            }
            match (r.more(), r.kvs().last()) {
                (true, Some(last)) => {
                    let mut next = last.key().to_vec();
                    next.push(0);
                    from = String::from_utf8_lossy(&next).into_owned();
                }
                _ => break,
            }
        }
        Ok(records)
    }

    /// Returns once record `seq` of run `id` exists (a watch: no polling of the journal).
    pub async fn wait_record(&self, id: &str, seq: u64) -> Result<()> {
        let key = format!("{}{seq:020}", self.journal_prefix(id));
        let mut stream = bounded("watch the journal", || {
            let (mut w, k) = (self.client.watch_client(), key.clone());
            async move { w.watch(k, None).await }
        })
        .await?;
        if self.get_value(&key).await?.is_some() {
            return Ok(());
        }
        while let Ok(Some(resp)) = stream.message().await {
            if resp
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Put)
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Who holds the run's lock (a live lease), if anyone.
    pub async fn holder(&self, id: &str) -> Result<Option<LockInfo>> {
        Ok(self
            .get_value(&self.run_key(id, "lock"))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    pub async fn state(&self, id: &str) -> Result<RunState> {
        let records = self.replay(id).await?;
        let mut st = RunState::fold(&records);
        if st.run_id.is_empty() {
            st.run_id = id.to_string();
        }
        if st.mode.is_none()
            && let Ok(meta) = self.meta(id).await
        {
            st.mode = Some(meta.mode);
            st.declared_at = st.declared_at.or(Some(meta.declared_at));
        }
        st.set_liveness(self.holder(id).await?);
        Ok(st)
    }

    pub async fn summaries(&self) -> Result<(Vec<RunSummary>, Vec<String>)> {
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for id in self.list().await? {
            match self.state(&id).await {
                Ok(st) => out.push(RunSummary::from_state(&st)),
                Err(e) => warnings.push(format!("run {id}: {e}")),
            }
        }
        Ok((out, warnings))
    }

    /// Runs neither finished nor abandoned; a run that cannot be read counts as unfinished.
    pub async fn unfinished(&self) -> Result<Vec<RunSummary>> {
        let mut out = Vec::new();
        for id in self.list().await? {
            match self.state(&id).await {
                Ok(st) => {
                    let s = RunSummary::from_state(&st);
                    if s.is_unfinished() {
                        out.push(s);
                    }
                }
                Err(e) => {
                    let mut s = RunSummary::from_state(&RunState::default());
                    s.run_id = id.clone();
                    s.state = RunStatus::Interrupted;
                    s.problem = Some(e.to_string());
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    async fn grant(&self, ttl: Duration) -> Result<i64> {
        let r = bounded("grant a lease", || {
            let mut lease = self.client.lease_client();
            async move { lease.grant(ttl.as_secs().max(1) as i64, None).await }
        })
        .await?;
        Ok(r.id())
    }

    async fn revoke(&self, id: i64) {
        let mut lease = self.client.lease_client();
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, lease.revoke(id)).await;
    }

    /// Puts `key` = `value` bound to `lease` if nobody holds it; `Ok(false)` when held.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        Ok(bounded("take a lock", || {
            let (mut kv, txn) = (self.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await?
        .succeeded())
    }

    /// The store-wide lock held while a run is created or taken, so that two runners cannot
    /// both see "no unfinished run" and start two failovers. Waits up to a few seconds for
    /// another runner to finish creating its run.
    async fn lock_store(&self) -> Result<StoreLock> {
        let key = self.key("lock");
        let lease = self.grant(Duration::from_secs(10)).await?;
        let me = serde_json::to_vec(&LockInfo::current()).unwrap_or_default();
        for _ in 0..50 {
            if self.put_if_absent(&key, me.clone(), lease).await? {
                return Ok(StoreLock {
                    store: self.clone(),
                    lease,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.revoke(lease).await;
        Err(Error::Locked(format!(
            "another meeseeks process is starting or taking a run in {} right now",
            self.spec
        )))
    }

    /// Takes the lock of run `id` with a fresh lease, kept alive from now on.
    async fn lock_run(&self, id: &str) -> Result<std::result::Result<EtcdLease, Option<LockInfo>>> {
        let key = self.run_key(id, "lock");
        let lease = self.grant(self.spec.ttl).await?;
        let info = LockInfo::current();
        let value = serde_json::to_vec(&info).unwrap_or_default();
        if !self.put_if_absent(&key, value, lease).await? {
            self.revoke(lease).await;
            return Ok(Err(self.holder(id).await?));
        }
        Ok(Ok(EtcdLease::start(self.clone(), id, lease, info).await?))
    }

    pub async fn begin(&self, meta: &RunMeta) -> Result<EtcdLease> {
        if !super::valid_run_id(&meta.run_id) {
            return Err(Error::Usage(format!("invalid run id `{}`", meta.run_id)));
        }
        let guard = self.lock_store().await?;
        let unfinished = self.unfinished().await?;
        if !unfinished.is_empty() {
            guard.release().await;
            return Err(Error::Locked(super::file::state_dir::unfinished_message(
                &unfinished,
            )));
        }
        let id = &meta.run_id;
        let json = serde_json::to_vec_pretty(meta)
            .map_err(|e| Error::Other(format!("cannot serialize run meta: {e}")))?;
        let meta_key = self.run_key(id, "meta");
        let txn = Txn::new()
            .when([Compare::create_revision(
                meta_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put(meta_key, json, None),
                TxnOp::put(
                    self.key(&format!("index/{id}")),
                    meta.created_at.to_string(),
                    None,
                ),
            ]);
        let created = bounded("create the run", || {
            let (mut kv, txn) = (self.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await;
        let lease = match created {
            Ok(r) if r.succeeded() => self.lock_run(id).await,
            Ok(_) => Err(Error::Usage(format!("run {id} exists already"))),
            Err(e) => Err(e),
        };
        guard.release().await;
        match lease? {
            Ok(l) => Ok(l),
            Err(_) => Err(Error::Locked(format!(
                "run {id} was taken by another process"
            ))),
        }
    }

    /// Takes the lock of an existing run. With `wait`, waits (watching the lock key) until
    /// the holder's lease is gone — a standby runner waiting to take over.
    pub async fn acquire(
        &self,
        id: &str,
        others_unfinished_ok: bool,
        wait: bool,
    ) -> Result<EtcdLease> {
        let id = self.resolve(Some(id)).await?;
        loop {
            let guard = self.lock_store().await?;
            let taken = self.lock_run(&id).await;
            let taken = match taken {
                Ok(Ok(lease)) => {
                    if !others_unfinished_ok {
                        let others: Vec<RunSummary> = match self.unfinished().await {
                            Ok(u) => u.into_iter().filter(|r| r.run_id != id).collect(),
                            Err(e) => {
                                lease.release().await;
                                guard.release().await;
                                return Err(e);
                            }
                        };
                        if !others.is_empty() {
                            lease.release().await;
                            guard.release().await;
                            return Err(Error::Locked(super::file::state_dir::unfinished_message(
                                &others,
                            )));
                        }
                    }
                    Ok(lease)
                }
                Ok(Err(holder)) => Err(holder),
                Err(e) => {
                    guard.release().await;
                    return Err(e);
                }
            };
            guard.release().await;
            match taken {
                Ok(lease) => return Ok(lease),
                Err(holder) if !wait => {
                    let who = match holder {
                        Some(h) => format!(
                            "held by {} (pid {} on {}) since {}",
                            if h.name.is_empty() { "?" } else { &h.name },
                            h.pid,
                            h.host,
                            h.since.strftime("%Y-%m-%d %H:%M:%SZ")
                        ),
                        None => "held by another process".to_string(),
                    };
                    return Err(Error::Locked(format!(
                        "run {id} is live, {who}; `meeseeks resume {id} --wait` takes over once \
                         its lease expires"
                    )));
                }
                Err(_) => self.wait_free(&self.run_key(&id, "lock")).await?,
            }
        }
    }

    /// Returns once `key` is absent (its lease expired or was revoked).
    async fn wait_free(&self, key: &str) -> Result<()> {
        let mut stream = bounded("watch the run's lock", || {
            let (mut w, k) = (self.client.watch_client(), key.to_string());
            async move { w.watch(k, None).await }
        })
        .await?;
        // Gone already (between the failed take and the watch)?
        if self.get_value(key).await?.is_none() {
            return Ok(());
        }
        tracing::warn!("waiting for the run's lock {key} to be free");
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp
                        .events()
                        .iter()
                        .any(|e| e.event_type() == EventType::Delete)
                    {
                        return Ok(());
                    }
                }
                Ok(None) | Err(_) => {
                    // The watch broke (a member died): poll until it is free instead.
                    loop {
                        if self.get_value(key).await.ok().flatten().is_none() {
                            return Ok(());
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    pub async fn approve(
        &self,
        id: &str,
        service: &str,
        step: Option<&str>,
        by: Option<&str>,
    ) -> Result<Approval> {
        let st = self.state(id).await?;
        let waiting = super::waiting_step(&st, id, service, step)?;
        let approval = Approval {
            service: service.to_string(),
            step: waiting,
            by: by.map(str::to_string).unwrap_or_else(crate::util::whoami),
            at: jiff::Timestamp::now(),
        };
        let json = serde_json::to_vec(&approval).unwrap_or_default();
        let key = self.run_key(id, &format!("approvals/{}", key_part(service)));
        bounded("write the approval", || {
            let (mut kv, k, v) = (self.client.kv_client(), key.clone(), json.clone());
            async move { kv.put(k, v, None).await }
        })
        .await?;
        Ok(approval)
    }

    fn doc_prefix(&self, kind: &str) -> String {
        self.key(&format!("{kind}/"))
    }

    /// See [`super::docs::Docs::create`].
    pub async fn create_doc(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<bool> {
        let k = format!("{}{key}", self.doc_prefix(kind));
        let txn = Txn::new()
            .when([Compare::create_revision(k.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k.as_str(), bytes.to_vec(), None)]);
        Ok(bounded(&format!("write {kind}"), || {
            let (mut kv, txn) = (self.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await?
        .succeeded())
    }

    /// See [`super::docs::Docs::keys`].
    pub async fn doc_keys(&self, kind: &str) -> Result<Vec<String>> {
        let prefix = self.doc_prefix(kind);
        let r = bounded(&format!("list {kind}"), || {
            let (mut kv, p) = (self.client.kv_client(), prefix.clone());
            async move {
                kv.get(p, Some(GetOptions::new().with_prefix().with_keys_only()))
                    .await
            }
        })
        .await?;
        let mut keys: Vec<String> = r
            .kvs()
            .iter()
            .filter_map(|k| k.key_str().ok()?.strip_prefix(&prefix).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// See [`super::docs::Docs::newest`]: one range request, sorted by key, newest first.
    pub async fn newest_docs(
        &self,
        kind: &str,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = self.doc_prefix(kind);
        let r = bounded(&format!("read {kind}"), || {
            let (mut kv, p) = (self.client.kv_client(), prefix.clone());
            let mut o = GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Key, SortOrder::Descend);
            if let Some(l) = limit {
                o = o.with_limit(l as i64);
            }
            async move { kv.get(p, Some(o)).await }
        })
        .await?;
        Ok(r.kvs()
            .iter()
            .filter_map(|k| {
                let key = k.key_str().ok()?.strip_prefix(&prefix)?.to_string();
                Some((key, k.value().to_vec()))
            })
            .collect())
    }

    /// See [`super::docs::Docs::delete`].
    pub async fn delete_docs(&self, kind: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let prefix = self.doc_prefix(kind);
        // etcd refuses transactions of more than 128 operations by default (--max-txn-ops).
        for chunk in keys.chunks(100) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::delete(format!("{prefix}{k}"), None))
                .collect();
            let txn = Txn::new().and_then(ops);
            bounded(&format!("prune {kind}"), || {
                let (mut kv, txn) = (self.client.kv_client(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Records of run `id` with `seq >= from`, then every new one as it is committed.
    pub async fn watch(
        &self,
        id: &str,
        from: u64,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Record>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let prefix = self.journal_prefix(id);
        let first = format!("{prefix}{:020}", from.max(1));
        let end = prefix_end(&prefix);
        let r = bounded("read the journal", || {
            let (mut kv, first, end) = (self.client.kv_client(), first.clone(), end.clone());
            async move {
                let opts = GetOptions::new()
                    .with_range(end)
                    .with_sort(SortTarget::Key, SortOrder::Ascend);
                kv.get(first, Some(opts)).await
            }
        })
        .await?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        let mut last = from.saturating_sub(1);
        for k in r.kvs() {
            if let Ok(rec) = serde_json::from_slice::<Record>(k.value()) {
                last = rec.seq;
                let _ = tx.send(Ok(rec)).await;
            }
        }
        let s = bounded("watch the journal", || {
            let (mut w, first, end) = (self.client.watch_client(), first.clone(), end.clone());
            async move {
                let opts = WatchOptions::new()
                    .with_range(end)
                    .with_start_revision(rev + 1);
                w.watch(first, Some(opts)).await
            }
        })
        .await?;
        tokio::spawn(async move {
            let mut stream = s;
            while let Ok(Some(resp)) = stream.message().await {
                for e in resp.events() {
                    if e.event_type() != EventType::Put {
                        continue;
                    }
                    let Some(kv) = e.kv() else { continue };
                    match serde_json::from_slice::<Record>(kv.value()) {
                        Ok(rec) if rec.seq > last => {
                            last = rec.seq;
                            if tx.send(Ok(rec)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let _ = tx.send(Err(Error::Invalid(e.to_string()))).await;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// The end of the key range of everything starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// A service name as one key segment (`/` and anything unusual escaped).
fn key_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The store-wide lock: see [`EtcdStore::lock_store`].
struct StoreLock {
    store: EtcdStore,
    lease: i64,
}

impl StoreLock {
    async fn release(self) {
        self.store.revoke(self.lease).await;
    }
}

/// A run's lock, held: a lease kept alive by a background task. `lost` turns `Some` once the
/// lease is gone (expired while this process was paused or cut off, or revoked): from then on
/// nothing is appended and the runner stops.
pub struct EtcdLease {
    store: EtcdStore,
    pub id: String,
    lease: i64,
    info: LockInfo,
    lost: watch::Receiver<Option<Failure>>,
    stop: Arc<tokio::sync::Notify>,
}

impl EtcdLease {
    async fn start(store: EtcdStore, id: &str, lease: i64, info: LockInfo) -> Result<EtcdLease> {
        let (lost_tx, lost) = watch::channel(None);
        let stop = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(keep_alive(
            store.clone(),
            lease,
            store.spec.ttl,
            lost_tx,
            stop.clone(),
        ));
        Ok(EtcdLease {
            store,
            id: id.to_string(),
            lease,
            info,
            lost,
            stop,
        })
    }

    pub fn holder(&self) -> LockInfo {
        self.info.clone()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.store.local_run_dir(&self.id)
    }

    pub async fn meta(&self) -> Result<RunMeta> {
        self.store.meta(&self.id).await
    }

    pub async fn state(&self) -> Result<RunState> {
        let records = self.store.replay(&self.id).await?;
        let mut st = RunState::fold(&records);
        if st.run_id.is_empty() {
            st.run_id = self.id.clone();
        }
        Ok(st)
    }

    /// The run's journal, appended with fenced transactions.
    pub async fn journal(&self, masker: Masker) -> Result<JournalHandle> {
        let records = self.store.replay(&self.id).await?;
        let last = records.last().map(|r| r.seq).unwrap_or(0);
        let sink = EtcdSink {
            store: self.store.clone(),
            lease: self.lease,
            lock_key: self.store.run_key(&self.id, "lock"),
            journal_prefix: self.store.journal_prefix(&self.id),
            begun_key: (last == 0).then(|| self.store.run_key(&self.id, "begun")),
            lost: self.lost.clone(),
        };
        Ok(spawn(
            format!("{}{}", self.store.spec, self.store.journal_prefix(&self.id)),
            Box::new(sink),
            last,
            masker,
            Some(self.lost.clone()),
        ))
    }

    /// Approvals of this run's manual steps, delivered by a watch (within a second).
    pub async fn approvals(&self) -> Arc<dyn ApprovalSource> {
        let prefix = self.store.run_key(&self.id, "approvals/");
        let src = Arc::new(EtcdApprovals {
            store: self.store.clone(),
            prefix: prefix.clone(),
            pending: Mutex::new(HashMap::new()),
        });
        let s2 = src.clone();
        tokio::spawn(async move { s2.follow().await });
        src
    }

    /// Appends one event outside a runner (`run --abandon`), fenced like any append.
    pub async fn append(&self, event: Event) -> Result<Record> {
        let records = self.store.replay(&self.id).await?;
        let rec = Record {
            seq: records.last().map(|r| r.seq).unwrap_or(0) + 1,
            ts: jiff::Timestamp::now(),
            event,
        };
        let mut batch = Batch::default();
        super::journal::serialize_line(&rec, &Masker::new(), &mut batch.buf);
        batch.ends.push(batch.buf.len());
        batch.seqs.push(rec.seq);
        let mut sink = EtcdSink {
            store: self.store.clone(),
            lease: self.lease,
            lock_key: self.store.run_key(&self.id, "lock"),
            journal_prefix: self.store.journal_prefix(&self.id),
            begun_key: Some(self.store.run_key(&self.id, "begun")),
            lost: self.lost.clone(),
        };
        let (_, r) = sink.write(batch).await;
        r.map_err(|f| Error::Locked(f.to_string()))?;
        Ok(rec)
    }

    /// Gives the lock up now (a clean exit): a standby runner need not wait for the TTL.
    pub async fn release(self) {
        self.stop.notify_one();
        self.store.revoke(self.lease).await;
    }
}

impl Drop for EtcdLease {
    fn drop(&mut self) {
        // Without an explicit release the keep-alive stops and the lease expires by itself.
        self.stop.notify_one();
    }
}

/// Keeps a lease alive (every third of its TTL); reports its loss: the server answered TTL 0
/// (it expired: this process was paused or cut off for longer than the TTL), or the cluster
/// could not be reached for a whole TTL (it has expired there by now).
async fn keep_alive(
    store: EtcdStore,
    lease: i64,
    ttl: Duration,
    lost: watch::Sender<Option<Failure>>,
    stop: Arc<tokio::sync::Notify>,
) {
    let period = ttl / 3;
    let mut last_ok = tokio::time::Instant::now();
    let mut stream = None;
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if stream.is_none() {
            let mut lc = store.client.lease_client();
            stream = tokio::time::timeout(REQUEST_TIMEOUT, lc.keep_alive(lease))
                .await
                .ok()
                .and_then(|r| r.ok());
        }
        let answer = match stream.as_mut() {
            Some((keeper, s)) => {
                let sent = tokio::time::timeout(REQUEST_TIMEOUT, keeper.keep_alive()).await;
                match sent {
                    Ok(Ok(())) => tokio::time::timeout(REQUEST_TIMEOUT, s.message())
                        .await
                        .ok()
                        .and_then(|m| m.ok())
                        .flatten()
                        .map(|r| r.ttl()),
                    _ => None,
                }
            }
            None => None,
        };
        match answer {
            Some(t) if t > 0 => last_ok = tokio::time::Instant::now(),
            Some(_) => {
                let _ = lost.send(Some(Failure::LostLock(
                    "its lease expired (was this process paused or cut off?); another runner \
                     may have taken the run over"
                        .into(),
                )));
                return;
            }
            None => {
                // The stream broke (a member died): open a new one next time.
                stream = None;
                if last_ok.elapsed() >= ttl {
                    let _ = lost.send(Some(Failure::LostLock(format!(
                        "etcd could not be reached to keep its lease for {}",
                        humantime::format_duration(ttl)
                    ))));
                    return;
                }
            }
        }
    }
}

/// Commits journal batches as fenced transactions: every chunk is written only if the run's
/// lock key still carries this runner's lease.
struct EtcdSink {
    store: EtcdStore,
    lease: i64,
    lock_key: String,
    journal_prefix: String,
    /// Written with the first chunk of a journal that had no record yet.
    begun_key: Option<String>,
    lost: watch::Receiver<Option<Failure>>,
}

impl EtcdSink {
    /// One fenced transaction, retried through transient errors (a leader election) for up to
    /// the lease's TTL.
    async fn commit(&mut self, ops: Vec<TxnOp>) -> std::result::Result<(), Failure> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            if let Some(f) = self.lost.borrow().clone() {
                return Err(f);
            }
            let txn = Txn::new()
                .when([Compare::lease(
                    self.lock_key.clone(),
                    CompareOp::Equal,
                    self.lease,
                )])
                .and_then(ops.clone());
            let mut kv = self.store.client.kv_client();
            match tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(txn)).await {
                Ok(Ok(r)) if r.succeeded() => return Ok(()),
                Ok(Ok(_)) => {
                    return Err(Failure::LostLock(
                        "the run's lock no longer carries this runner's lease (it expired or \
                         another runner took the run over)"
                            .into(),
                    ));
                }
                Ok(Err(e)) if started.elapsed() < self.store.spec.ttl => {
                    tracing::warn!("etcd append failed, retrying: {e}");
                }
                Err(_) if started.elapsed() < self.store.spec.ttl => {
                    tracing::warn!("etcd append timed out, retrying");
                }
                Ok(Err(e)) => return Err(Failure::Io(format!("etcd: {e}"))),
                Err(_) => {
                    return Err(Failure::Io(format!(
                        "etcd: no answer for {}",
                        humantime::format_duration(self.store.spec.ttl)
                    )));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

impl Sink for EtcdSink {
    fn write(&mut self, batch: Batch) -> SinkWrite<'_> {
        Box::pin(async move {
            let mut ops: Vec<TxnOp> = Vec::new();
            let mut bytes = 0;
            let lines: Vec<(u64, Vec<u8>)> = batch
                .lines()
                .map(|(seq, line)| (seq, line.strip_suffix(b"\n").unwrap_or(line).to_vec()))
                .collect();
            for (seq, line) in lines {
                if let Some(k) = self.begun_key.take() {
                    ops.push(TxnOp::put(k, "1", None));
                }
                bytes += line.len();
                ops.push(TxnOp::put(
                    format!("{}{seq:020}", self.journal_prefix),
                    line,
                    None,
                ));
                if ops.len() >= TXN_RECORDS || bytes >= TXN_BYTES {
                    if let Err(f) = self.commit(std::mem::take(&mut ops)).await {
                        return (batch, Err(f));
                    }
                    bytes = 0;
                }
            }
            let r = if ops.is_empty() {
                Ok(())
            } else {
                self.commit(ops).await
            };
            (batch, r)
        })
    }
}

/// Approvals dropped into the store for this run: a watch keeps `pending` current, the
/// runner's poll takes from it (and deletes the key).
struct EtcdApprovals {
    store: EtcdStore,
    prefix: String,
    pending: Mutex<HashMap<String, Approval>>,
}

impl EtcdApprovals {
    fn take(&self, a: Approval) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(a.service.clone(), a);
        }
    }

    async fn follow(self: Arc<Self>) {
        loop {
            let mut kv = self.store.client.kv_client();
            let got = tokio::time::timeout(
                REQUEST_TIMEOUT,
                kv.get(self.prefix.clone(), Some(GetOptions::new().with_prefix())),
            )
            .await;
            let Ok(Ok(r)) = got else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            for k in r.kvs() {
                if let Ok(a) = serde_json::from_slice::<Approval>(k.value()) {
                    self.take(a);
                }
            }
            let rev = r.header().map(|h| h.revision()).unwrap_or(0);
            let mut w = self.store.client.watch_client();
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(rev + 1);
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(REQUEST_TIMEOUT, w.watch(self.prefix.clone(), Some(opts)))
                    .await
            else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            while let Ok(Some(resp)) = stream.message().await {
                for e in resp.events() {
                    if e.event_type() == EventType::Put
                        && let Some(kv) = e.kv()
                        && let Ok(a) = serde_json::from_slice::<Approval>(kv.value())
                    {
                        self.take(a);
                    }
                }
            }
            // The watch broke (a member died): read again and watch anew.
            if Arc::strong_count(&self) == 1 {
                return;
            }
        }
    }
}

impl ApprovalSource for EtcdApprovals {
    fn check(&self, service: &str, step: &str, _prompt: &str) -> crate::events::Approval {
        let found = self.pending.lock().ok().and_then(|mut p| p.remove(service));
        let Some(a) = found else {
            return crate::events::Approval::Pending;
        };
        let key = format!("{}{}", self.prefix, key_part(service));
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut kv = store.client.kv_client();
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, kv.delete(key, None)).await;
        });
        if a.step == step {
            crate::events::Approval::Approved(a.by)
        } else {
            tracing::warn!(
                "discarding an approval of {}/{} by {}: {service}/{step} is waiting now",
                a.service,
                a.step,
                a.by
            );
            crate::events::Approval::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        let s =
            EtcdSpec::parse("etcd://h1:2379,h2:2379/dr/shop?ttl=4s", PathBuf::from("/x")).unwrap();
        assert_eq!(s.endpoints, ["http://h1:2379", "http://h2:2379"]);
        assert_eq!(s.prefix, "/dr/shop");
        assert_eq!(s.ttl, Duration::from_secs(4));
        assert_eq!(s.to_string(), "etcd://h1:2379,h2:2379/dr/shop");
        let d = EtcdSpec::parse("etcd://h1:2379", PathBuf::new()).unwrap();
        assert_eq!((d.prefix.as_str(), d.ttl), ("/meeseeks", DEFAULT_TTL));
        for bad in [
            "etcd:///x",
            "etcd://h:1/",
            "etcd://h:1/x?ttl=1ms",
            "etcd://h:1/x?color=red",
            "http://h:1/x",
        ] {
            assert!(EtcdSpec::parse(bad, PathBuf::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_ranges_and_parts() {
        assert_eq!(prefix_end("/m/runs/a/journal/"), "/m/runs/a/journal0");
        assert_eq!(key_part("api/v2 x"), "api%2fv2%20x");
    }
}
