//! What the lookups and the listening connection share: the bounded
//! caches (tenants, buckets, keys), when PostgreSQL last confirmed them,
//! and the listener that drops changed entries and confirms the rest.

use super::*;

/// When an entry was fetched, and under which listening connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub(super) fetched: Instant,
    pub(super) epoch: u64,
}

/// A tenant as fetched (or known absent), validated under one policy.
pub(super) struct TenantEntry {
    pub(super) id: String,
    pub(super) record: Option<(TenantRecord, u32)>,
    pub(super) generation: u64,
    pub(super) validated: Result<Option<Arc<Tenant>>, Vec<String>>,
    pub(super) stamp: Stamp,
}

impl TenantEntry {
    pub(super) fn build(
        id: String,
        record: Option<(TenantRecord, u32)>,
        policy: &Policy,
        stamp: Stamp,
    ) -> TenantEntry {
        let validated = match &record {
            None => Ok(None),
            Some((r, handle)) => match r.validate(policy, TenantId::new(*handle)) {
                Ok(t) => Ok(Some(Arc::new(t))),
                Err(reasons) => {
                    tracing::warn!(
                        tenant = %r.id,
                        reasons = %reasons.join("; "),
                        "tenant directory row refused: it does not validate against the policy"
                    );
                    metrics::counter!(METRIC_REFUSED).increment(1);
                    Err(reasons)
                }
            },
        };
        TenantEntry {
            id,
            record,
            generation: policy.generation(),
            validated,
            stamp,
        }
    }

    pub(super) fn answer(&self) -> Answer<Arc<Tenant>> {
        match &self.validated {
            Ok(t) => Ok(t.clone()),
            Err(reasons) => Err(DirectoryError::Refused {
                tenant: self.id.clone(),
                reasons: reasons.clone(),
            }),
        }
    }
}

#[derive(Clone)]
pub(super) struct BucketEntry {
    pub(super) tenant: Option<Arc<str>>,
    pub(super) stamp: Stamp,
}

/// A created bucket as fetched (or known absent).
#[derive(Clone)]
pub(super) struct CreatedEntry {
    pub(super) record: Option<Arc<crate::BucketRecord>>,
    pub(super) stamp: Stamp,
}

#[derive(Clone)]
pub(super) struct KeyEntry {
    pub(super) grant: Option<Arc<KeyGrant>>,
    pub(super) stamp: Stamp,
}

/// What the lookups and the listener share.
pub(super) struct Shared {
    pub(super) tenants: Cache<String, Arc<TenantEntry>>,
    pub(super) buckets: Cache<String, BucketEntry>,
    /// Buckets tenants created (the `buckets` table).
    pub(super) created: Cache<String, CreatedEntry>,
    pub(super) keys: Cache<String, KeyEntry>,
    /// Bumped each time the listening connection is (re)established.
    pub(super) epoch: AtomicU64,
    /// Bumped on every notification and reconnect (a fetch racing with one
    /// drops what it cached).
    pub(super) changes: AtomicU64,
    /// The last heartbeat of the current listening connection, in
    /// nanoseconds since `base`.
    pub(super) heartbeat: AtomicU64,
    pub(super) base: Instant,
    pub(super) up: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) max_staleness: Duration,
}

impl Shared {
    pub(super) fn stamp(&self) -> Stamp {
        Stamp {
            epoch: self.epoch.load(Ordering::Acquire),
            fetched: Instant::now(),
        }
    }

    pub(super) fn heartbeat_at(&self) -> Instant {
        self.base + Duration::from_nanos(self.heartbeat.load(Ordering::Acquire))
    }

    /// Whether an entry stamped `stamp` may still be served.
    pub(super) fn fresh(&self, stamp: &Stamp) -> bool {
        let confirmed = if stamp.epoch == self.epoch.load(Ordering::Acquire) {
            stamp.fetched.max(self.heartbeat_at())
        } else {
            stamp.fetched
        };
        Instant::now().saturating_duration_since(confirmed) <= self.max_staleness
    }

    pub(super) fn set_heartbeat(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.base).as_nanos() as u64;
        self.heartbeat.store(nanos.max(1), Ordering::Release);
        metrics::gauge!(METRIC_STALENESS).set(0.0);
    }

    pub(super) fn invalidate_everything(&self) {
        self.tenants.invalidate_all();
        self.buckets.invalidate_all();
        self.created.invalidate_all();
        self.keys.invalidate_all();
    }

    /// The listening connection is up (its `LISTEN` was sent at `at`).
    pub(super) fn reconnected(&self, at: Instant) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.set_heartbeat(at);
        self.invalidate_everything();
        self.up.store(true, Ordering::Release);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(super) fn down(&self, why: String) {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        if was_up {
            tracing::warn!(error = %why, "tenant directory: the notification connection is down; cached entries expire after max_staleness");
        } else {
            tracing::debug!(error = %why, "tenant directory: cannot reconnect the notification connection");
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        metrics::gauge!(METRIC_STALENESS).set(self.staleness().as_secs_f64());
    }

    pub(super) fn staleness(&self) -> Duration {
        Instant::now().saturating_duration_since(self.heartbeat_at())
    }

    pub(super) fn on_notification(&self, payload: &str) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        #[derive(serde::Deserialize)]
        struct Change {
            tenant: Option<String>,
            bucket: Option<String>,
            key: Option<String>,
            created_bucket: Option<String>,
            #[serde(default)]
            all: bool,
        }
        match serde_json::from_str::<Change>(payload) {
            Ok(c) if !c.all => {
                if let Some(t) = c.tenant {
                    self.tenants.invalidate(&t);
                }
                if let Some(b) = c.bucket {
                    self.buckets.invalidate(&b);
                }
                if let Some(k) = c.key {
                    self.keys.invalidate(&k);
                }
                if let Some(b) = c.created_bucket {
                    self.created.invalidate(&b);
                }
            }
            _ => self.invalidate_everything(),
        }
    }
}

/// The listening connection: `LISTEN`, heartbeats, reconnects with backoff
/// forever (until the directory is dropped).
///
/// A heartbeat is a `NOTIFY` on a channel of this connection's own: the
/// notification queue is in commit order, so when the ping comes back every
/// change committed before it was sent has been received and dropped from
/// the cache (the driver handles notifications in order); the cache is then
/// confirmed as of the ping's sending.
pub(super) async fn listen(
    shared: Arc<Shared>,
    config: tokio_postgres::Config,
    interval: Duration,
    timeout: Duration,
) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);
    let mut backoff = MIN_BACKOFF;
    let mut ping = 0u64;
    loop {
        let why = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
            Err(_) => format!("PostgreSQL did not answer within {timeout:?}"),
            Ok(Err(e)) => format!("cannot connect to PostgreSQL: {e}"),
            Ok(Ok((client, mut conn))) => {
                let s2 = shared.clone();
                let (pong_tx, mut pong_rx) = tokio::sync::watch::channel(ping);
                let mut driver = tokio::spawn(async move {
                    let mut messages = stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                                s2.on_notification(n.payload());
                            }
                            Ok(AsyncMessage::Notification(n)) => {
                                if let Ok(pong) = n.payload().parse::<u64>() {
                                    pong_tx.send_replace(pong);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return format!("the notification connection failed: {e}"),
                        }
                    }
                    "the notification connection closed".to_owned()
                });
                let why = async {
                    let sent = Instant::now();
                    let setup = async {
                        let pid: i32 = client
                            .query_one("SELECT pg_backend_pid()", &[])
                            .await?
                            .get(0);
                        let ping_channel = format!("{CHANNEL}_ping_{pid}");
                        client
                            .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {ping_channel}"))
                            .await?;
                        Ok::<_, tokio_postgres::Error>(ping_channel)
                    };
                    let ping_channel = match tokio::time::timeout(timeout, setup).await {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => return format!("LISTEN failed: {e}"),
                        Err(_) => return "LISTEN timed out".to_owned(),
                    };
                    shared.reconnected(sent);
                    tracing::info!("tenant directory: listening for changes");
                    backoff = MIN_BACKOFF;
                    loop {
                        tokio::select! {
                            r = &mut driver => return r.unwrap_or_else(|e| e.to_string()),
                            () = tokio::time::sleep(interval) => {}
                        }
                        ping += 1;
                        let sent = Instant::now();
                        let heartbeat = async {
                            client
                                .batch_execute(&format!("NOTIFY {ping_channel}, '{ping}'"))
                                .await
                                .map_err(|e| format!("heartbeat failed: {e}"))?;
                            pong_rx
                                .wait_for(|&pong| pong >= ping)
                                .await
                                .map(|_| ())
                                .map_err(|_| "the notification connection closed".to_owned())
                        };
                        match tokio::time::timeout(timeout, heartbeat).await {
                            Ok(Ok(())) => shared.set_heartbeat(sent),
                            Ok(Err(e)) => return e,
                            Err(_) => return format!("heartbeat: no answer within {timeout:?}"),
                        }
                    }
                }
                .await;
                driver.abort();
                why
            }
        };
        shared.down(why);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
