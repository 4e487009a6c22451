//! Batching audit sink: hash-chained JSON-lines batches under
//! `_audit/<tenant>/` in the region where each described object was placed.
//!
//! DESIGN.md, "Backups and logs": "an audit event is stored where the object
//! it describes was placed, a denial's in the tenant's locality (default
//! region if none)". The caller says which in [`AuditEvent::store_region`];
//! [`BatchingAuditSink`] groups events per (tenant, store region) and stores
//! each group as one object in that region's backend.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use residency_store::{Backend, MemoryBackend};
//! use residency_audit::{AuditEvent, AuditSink};
//! use residency_audit::batch::{
//!     read_events, verify_chain, BatchConfig, BatchingAuditSink, WriterId,
//! };
//!
//! let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
//! let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
//! let regions = vec![("eu".to_owned(), eu), ("us".to_owned(), us)];
//! let sink = BatchingAuditSink::new(
//!     regions.clone(),
//!     WriterId::new("web-1").unwrap(),
//!     BatchConfig::default(),
//! );
//! sink.record(AuditEvent {
//!     time: AuditEvent::now(),
//!     request_id: "req-1".into(),
//!     tenant: "acme".into(),
//!     op: "put".into(),
//!     key: "tickets/1.json".into(),
//!     category: Some("ticket_data".into()),
//!     classified_by: Some("key_rule".into()),
//!     decision: "allow".into(),
//!     regions: vec!["eu".into()],
//!     bucket: Some("acme".into()),
//!     reason: "locality".into(),
//!     out_of_locality: false,
//!     policy_version: "2017-11-01".into(),
//!     store_region: "eu".into(),
//! });
//! sink.shutdown().await.unwrap(); // stores what is buffered
//!
//! assert!(verify_chain(&regions, "acme").await.unwrap().ok);
//! assert_eq!(read_events(&regions, "acme").await.unwrap().len(), 1);
//! # });
//! ```
//!
//! # Stored form
//!
//! ```text
//! _audit/<tenant>/<writer>/<seq, 12 digits>.jsonl   one batch, in its events' store region
//! _audit/<tenant>/<writer>/HEAD.json                {"seq","sha256","region"} of the latest batch
//! ```
//!
//! A batch's first line is a header, `{"chain":1,"tenant","writer","seq",
//! "prev_sha256","count","first_time","last_time"}`, then one [`AuditEvent`]
//! per line, every line ending with `\n`. `<tenant>` is the tenant id with
//! every byte outside `[A-Za-z0-9._-]` percent-encoded (see [`audit_prefix`]).
//!
//! There is one chain per tenant per writer instance: `seq` counts that
//! tenant's batches from 0 across all regions, and `prev_sha256` is the
//! SHA-256 (hex) of the whole previous batch object of the chain (empty for
//! seq 0), wherever that batch is. The HEAD record is written after each
//! batch into **every region that holds batches of the chain** (the batch's
//! own region first, which must succeed; the others best-effort), so removing
//! the end of a chain is detected unless the HEAD is rewritten in all of them.
//! [`verify_chain`] reads them all and checks the highest.
//!
//! # Delivery
//!
//! [`AuditSink::record`] never blocks and never waits for I/O: it pushes into
//! an unbounded channel read by a background task. A batch is stored when
//! its group reaches [`BatchConfig::max_events`], when its oldest event is
//! [`BatchConfig::max_age`] old, on [`BatchingAuditSink::flush`] and on
//! [`BatchingAuditSink::shutdown`] (or when the sink is dropped).
//!
//! In [`AuditMode::Durable`] (the default), [`AuditSink::record_durable`]
//! (what the routing layer calls for every allowed write) also returns a
//! [`DurableAck`] that resolves once the batch holding the record, and every
//! earlier batch of its tenant's chain, is stored: group commit. A tenant's
//! waiting records are sealed into one batch as soon as its chain has no
//! store in flight (after [`BatchConfig::commit_window`], default 0); the
//! records that arrive while it is stored go into the next batch together,
//! so concurrent writes share one backend write. A record not stored within
//! [`BatchConfig::commit_timeout`] fails its write ([`AuditError::Timeout`]);
//! it stays queued and may still be stored. In [`AuditMode::Batched`] the ack
//! resolves at once and a crash loses whatever was not stored yet.
//!
//! A batch is sealed (numbered and hashed) once, then stored; a store that
//! fails is logged, kept in memory and retried with exponential backoff,
//! byte-for-byte the same, so the chain never forks. A tenant's batches are
//! stored in seq order: a later batch waits for an earlier one that cannot be
//! stored yet, so at rest a chain never has a gap. Memory is bounded by
//! [`BatchConfig::max_buffered_events`] (buffered plus unstored): beyond it
//! new events are dropped, counted in `residency_audit_dropped_total` and
//! logged, never inserted into a chain out of order.
//!
//! # Metrics
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `residency_audit_dropped_total` | counter | `reason` (`overflow`, `closed`, `unknown_region`) |
//! | `residency_audit_batches_total` | counter | `region` |
//! | `residency_audit_write_errors_total` | counter | `region` |
//! | `residency_audit_pending_batches` | gauge | |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use residency_store::{Backend, Body, PutMeta, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

use super::{AuditError, AuditEvent, AuditSink, DecisionRecord, DurableAck};

mod format;
mod verify;

pub use format::audit_prefix;
pub use verify::{read_events, verify_chain, verify_chain_moved, ChainReport, WriterReport};

use format::{batch_key, encode_batch, head_key, HeadRecord};

use crate::chain::HashChain;

/// Events not stored, by reason: `overflow` (the in-memory bound was
/// reached), `closed` (recorded after shutdown), `unknown_region` (no backend
/// for the event's `store_region`).
pub const AUDIT_DROPPED_TOTAL: &str = "residency_audit_dropped_total";
/// Batches stored, by region.
pub const AUDIT_BATCHES_TOTAL: &str = "residency_audit_batches_total";
/// Failed batch stores (each is retried), by region.
pub const AUDIT_WRITE_ERRORS_TOTAL: &str = "residency_audit_write_errors_total";
/// Batches sealed but not stored yet.
pub const AUDIT_PENDING_BATCHES: &str = "residency_audit_pending_batches";
/// Durable records not stored within the commit timeout (their writes failed).
pub const AUDIT_COMMIT_TIMEOUTS_TOTAL: &str = "residency_audit_commit_timeouts_total";
/// Records per stored batch (durable mode's group commit), by region.
pub const AUDIT_BATCH_EVENTS: &str = "residency_audit_batch_events";

/// Whether a write waits for its audit record to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// [`AuditSink::record_durable`] answers once the batch holding the
    /// record is stored in its region (group commit: the records that arrive
    /// while a tenant's batch is being stored share the next batch). A crash
    /// loses no record of an acknowledged write.
    #[default]
    Durable,
    /// [`AuditSink::record_durable`] answers at once; records are stored by
    /// size or age ([`BatchConfig::max_events`], [`BatchConfig::max_age`]).
    /// A crash loses the records not stored yet (up to `max_age` of them),
    /// and nothing in the chain shows it.
    Batched,
}

impl AuditMode {
    /// `durable` or `batched`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Durable => "durable",
            AuditMode::Batched => "batched",
        }
    }
}

/// When batches are stored, and how much is kept in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Durable (the default) or batched acknowledgement of writes.
    pub mode: AuditMode,
    /// Durable mode: how long a tenant's first waiting record is held before
    /// its batch is sealed, to gather more records into one write (default
    /// 0: sealed as soon as the tenant's previous batch is stored).
    pub commit_window: Duration,
    /// Durable mode: a record not stored within this fails its write
    /// ([`AuditError::Timeout`]; default 5 s).
    pub commit_timeout: Duration,
    /// A (tenant, region) group is stored once it holds this many events
    /// (default 500).
    pub max_events: usize,
    /// ... or once its oldest event is this old (default 5 s).
    pub max_age: Duration,
    /// Events kept in memory at most, buffered or waiting for a store that
    /// failed (default 100 000); beyond it new events are dropped.
    pub max_buffered_events: usize,
    /// How long `flush` and `shutdown` wait for batches to be stored
    /// (default 10 s).
    pub flush_timeout: Duration,
    /// The first retry delay after a failed store, doubled on each failure
    /// (default 100 ms) ...
    pub retry_min_backoff: Duration,
    /// ... up to this (default 30 s).
    pub retry_max_backoff: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            mode: AuditMode::Durable,
            commit_window: Duration::ZERO,
            commit_timeout: Duration::from_secs(5),
            max_events: 500,
            max_age: Duration::from_secs(5),
            max_buffered_events: 100_000,
            flush_timeout: Duration::from_secs(10),
            retry_min_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(30),
        }
    }
}

/// A writer instance's id: the folder of its chains under `_audit/<tenant>/`.
/// 1 to 128 bytes of `[A-Za-z0-9._-]`, not starting with `.`.
///
/// Two sinks must never share an id (their chains would fork):
/// [`WriterId::for_this_process`] is unique per host, process and sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriterId(String);

/// A writer id that cannot be used in a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid audit writer id {id:?}: {reason}")]
pub struct InvalidWriterId {
    /// The rejected id.
    pub id: String,
    /// Why.
    pub reason: &'static str,
}

impl WriterId {
    /// Checks `id`.
    ///
    /// # Errors
    /// [`InvalidWriterId`] when it is empty, longer than 128 bytes, starts
    /// with `.` or has a byte outside `[A-Za-z0-9._-]`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidWriterId> {
        let id = id.into();
        let reason = if id.is_empty() {
            "empty"
        } else if id.len() > 128 {
            "longer than 128 bytes"
        } else if id.starts_with('.') {
            "starts with '.'"
        } else if !id.bytes().all(is_id_byte) {
            "only A-Z a-z 0-9 . _ - are allowed"
        } else {
            return Ok(Self(id));
        };
        Err(InvalidWriterId { id, reason })
    }

    /// `<hostname>-<pid>-<unix ms>`: the host (sanitized), this process, and
    /// the time of the call, made strictly increasing within the process so
    /// that two sinks never get the same id.
    pub fn for_this_process() -> Self {
        static LAST_MS: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let prev = LAST_MS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(0);
        let ms = now.max(prev + 1);
        let host: String = hostname()
            .chars()
            .map(|c| {
                if c.is_ascii() && is_id_byte(c as u8) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let host = host.trim_start_matches('.');
        let host = if host.is_empty() { "host" } else { host };
        Self(format!("{host}-{}-{ms}", std::process::id()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// The host name, without a dependency: Linux's proc file, then the
/// environment.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Why `flush` or `shutdown` did not store everything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFlushError {
    /// Some batches could not be stored within
    /// [`BatchConfig::flush_timeout`]. After `flush` they stay in memory and
    /// are retried; after `shutdown` they are lost (and logged).
    #[error("{batches} audit batch(es) with {events} event(s) not stored yet")]
    Pending {
        /// Batches not stored.
        batches: usize,
        /// Events in them.
        events: usize,
    },
    /// The sink was already shut down.
    #[error("the audit sink is shut down")]
    Closed,
}

type Reply = oneshot::Sender<Result<(), AuditFlushError>>;
/// Answers a durable record once its batch is stored.
type AckTx = oneshot::Sender<Result<(), AuditError>>;

// Events are nearly every message: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Command {
    Event(Entry, Option<AckTx>),
    Flush(Reply),
    Shutdown(Reply),
}

/// One event line of a batch: an owned event, or the routing layer's record
/// (serialized from it directly, to the same JSON).
#[allow(clippy::large_enum_variant)]
enum Entry {
    Event(AuditEvent),
    Decision(DecisionRecord),
}

impl Entry {
    fn time(&self) -> &str {
        match self {
            Entry::Event(e) => &e.time,
            Entry::Decision(d) => d.time(),
        }
    }

    fn tenant(&self) -> &str {
        match self {
            Entry::Event(e) => &e.tenant,
            Entry::Decision(d) => d.tenant(),
        }
    }

    fn store_region(&self) -> &str {
        match self {
            Entry::Event(e) => &e.store_region,
            Entry::Decision(d) => d.store_region(),
        }
    }

    fn request_id(&self) -> &str {
        match self {
            Entry::Event(e) => &e.request_id,
            Entry::Decision(d) => d.request_id(),
        }
    }
}

impl serde::Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Event(e) => e.serialize(serializer),
            Entry::Decision(d) => d.serialize(serializer),
        }
    }
}

/// An [`AuditSink`] storing hash-chained batches of events in the regions'
/// backends (see the [module docs](self)).
pub struct BatchingAuditSink {
    tx: mpsc::UnboundedSender<Command>,
    writer: WriterId,
    mode: AuditMode,
    commit_timeout: Duration,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for BatchingAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingAuditSink")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl BatchingAuditSink {
    /// Starts the sink's background task. `backends` maps each region id to
    /// its backend; events whose `store_region` is not among them are dropped
    /// (and counted).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(
        backends: Vec<(String, Arc<dyn Backend>)>,
        writer: WriterId,
        config: BatchConfig,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (mode, commit_timeout) = (config.mode, config.commit_timeout);
        let worker = Worker {
            backends: backends.into_iter().collect(),
            writer: writer.0.clone(),
            config,
            open: BTreeMap::new(),
            chains: BTreeMap::new(),
            buffered: 0,
            overflowing: false,
            waiters: Vec::new(),
            jobs: JoinSet::new(),
            job_tenants: HashMap::new(),
        };
        let task = tokio::spawn(worker.run(rx));
        Self {
            tx,
            writer,
            mode,
            commit_timeout,
            task: Mutex::new(Some(task)),
        }
    }

    /// This sink's writer id (the folder of its chains).
    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    /// Durable or batched.
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Stores every event recorded before this call: closes every open
    /// group into a batch and waits until those batches (and earlier ones)
    /// are stored, retrying failed stores at once. Events recorded meanwhile
    /// keep being batched.
    ///
    /// # Errors
    /// [`AuditFlushError::Pending`] when some were not stored within
    /// [`BatchConfig::flush_timeout`] (they stay queued and are retried);
    /// [`AuditFlushError::Closed`] after `shutdown`.
    pub async fn flush(&self) -> Result<(), AuditFlushError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(reply))
            .map_err(|_| AuditFlushError::Closed)?;
        rx.await.unwrap_or(Err(AuditFlushError::Closed))
    }

    /// Stops taking events (later ones are dropped and counted), stores
    /// everything buffered like [`flush`](Self::flush), and ends the
    /// background task. Call it before the runtime stops; dropping the sink
    /// does the same in the background without a way to wait for it.
    ///
    /// # Errors
    /// [`AuditFlushError::Pending`] when some batches could not be stored
    /// within [`BatchConfig::flush_timeout`]: they are lost (and logged);
    /// [`AuditFlushError::Closed`] when already shut down.
    pub async fn shutdown(&self) -> Result<(), AuditFlushError> {
        let (reply, rx) = oneshot::channel();
        let result = match self.tx.send(Command::Shutdown(reply)) {
            Ok(()) => rx.await.unwrap_or(Err(AuditFlushError::Closed)),
            Err(_) => Err(AuditFlushError::Closed),
        };
        let task = self.task.lock().expect("audit task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }
}

impl BatchingAuditSink {
    fn send(&self, entry: Entry) {
        if self.tx.send(Command::Event(entry, None)).is_err() {
            dropped("closed");
        }
    }

    /// Queues `entry` and answers once its batch is stored (durable mode),
    /// at once in batched mode.
    fn send_durable(&self, entry: Entry) -> DurableAck {
        if self.mode == AuditMode::Batched {
            self.send(entry);
            return DurableAck::stored();
        }
        let (ack, rx) = oneshot::channel();
        if self.tx.send(Command::Event(entry, Some(ack))).is_err() {
            dropped("closed");
            return DurableAck::failed(AuditError::Unavailable("the audit sink is shut down"));
        }
        let timeout = self.commit_timeout;
        DurableAck::new(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(AuditError::Unavailable("the audit sink stopped")),
                Err(_) => {
                    metrics::counter!(AUDIT_COMMIT_TIMEOUTS_TOTAL).increment(1);
                    Err(AuditError::Timeout(timeout))
                }
            }
        })
    }
}

impl AuditSink for BatchingAuditSink {
    fn record(&self, event: AuditEvent) {
        self.send(Entry::Event(event));
    }

    /// Queues the record as it is: its line is serialized from it when the
    /// batch is sealed, with no owned copy in between.
    fn record_decision(&self, decision: DecisionRecord) {
        self.send(Entry::Decision(decision));
    }

    /// In [`AuditMode::Durable`], resolves once the batch holding the record
    /// (and every earlier batch of its tenant's chain) is stored, or fails
    /// after [`BatchConfig::commit_timeout`].
    fn record_durable(&self, decision: DecisionRecord) -> DurableAck {
        self.send_durable(Entry::Decision(decision))
    }

    fn record_event_durable(&self, event: AuditEvent) -> DurableAck {
        self.send_durable(Entry::Event(event))
    }
}

fn dropped(reason: &'static str) {
    metrics::counter!(AUDIT_DROPPED_TOTAL, "reason" => reason).increment(1);
}

/// Events of one (tenant, region) not yet in a batch.
struct OpenGroup {
    events: Vec<Entry>,
    /// When the group must be stored: its first event's arrival + max_age.
    deadline: Instant,
    /// Durable records waiting: sealed at this time (first one's arrival +
    /// commit window) once the tenant's chain is idle.
    commit_at: Option<Instant>,
    acks: Vec<AckTx>,
}

/// A numbered, hashed batch: its bytes never change, so retries cannot fork
/// the chain.
struct SealedBatch {
    tenant: String,
    region: String,
    seq: u64,
    key: String,
    sha256: String,
    bytes: Bytes,
    events: usize,
}

/// One tenant's chain for this writer.
#[derive(Default)]
struct Chain {
    /// The seq the next sealed batch gets.
    next_seq: u64,
    /// The SHA-256 of the last sealed batch (empty before seq 0).
    link: HashChain,
    /// Sealed batches not stored yet, in seq order; the front is stored next.
    queue: VecDeque<Queued>,
    in_flight: bool,
    /// Consecutive failed stores of the front batch.
    attempts: u32,
    /// No store before this (backoff after a failure).
    retry_at: Option<Instant>,
    /// Regions holding stored batches of this chain (each keeps a HEAD).
    regions: BTreeSet<String>,
}

impl Chain {
    /// Every batch below this seq is stored.
    fn stored_below(&self) -> u64 {
        self.queue.front().map_or(self.next_seq, |q| q.batch.seq)
    }

    /// No batch being stored or waiting: a durable group may be sealed.
    fn idle(&self) -> bool {
        !self.in_flight && self.queue.is_empty()
    }
}

/// A sealed batch and the durable records waiting for it.
struct Queued {
    batch: Arc<SealedBatch>,
    acks: Vec<AckTx>,
}

/// A `flush` or `shutdown` call waiting for chains to be stored up to a seq.
struct Waiter {
    reply: Reply,
    targets: Vec<(String, u64)>,
    deadline: Instant,
}

struct Worker {
    backends: HashMap<String, Arc<dyn Backend>>,
    writer: String,
    config: BatchConfig,
    /// Keyed by tenant, then store region (two levels, so that an event
    /// finds its group by `&str` without copying either name).
    open: BTreeMap<String, BTreeMap<String, OpenGroup>>,
    chains: BTreeMap<String, Chain>,
    /// Events buffered or sealed and not stored.
    buffered: usize,
    /// Dropping events for lack of room (logged once per episode).
    overflowing: bool,
    waiters: Vec<Waiter>,
    jobs: JoinSet<(String, Result<(), StoreError>)>,
    job_tenants: HashMap<tokio::task::Id, String>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut receiving = true;
        let mut shutdowns: Vec<Reply> = Vec::new();
        let mut closing_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.seal_due(now);
            self.start_stores(now);
            self.answer_waiters(now);
            if let Some(deadline) = closing_deadline {
                if (self.open.is_empty() && self.pending_batches() == 0) || now >= deadline {
                    break;
                }
            }
            let wake = self
                .next_wake(closing_deadline)
                .unwrap_or_else(|| now + Duration::from_secs(86_400));
            tokio::select! {
                cmd = rx.recv(), if receiving => match cmd {
                    Some(cmd) => {
                        // `now` above is from before the wait: read the clock
                        // again. Everything already queued is taken before
                        // sealing, so that concurrent records share a batch.
                        let now = Instant::now();
                        let mut next = Some(cmd);
                        let mut taken = 0;
                        while let Some(cmd) = next.take() {
                            match cmd {
                                Command::Event(e, ack) => self.add(e, ack, now),
                                Command::Flush(reply) => self.flush(reply, now),
                                Command::Shutdown(reply) => {
                                    // Takes what is already queued, then sees `None`.
                                    rx.close();
                                    shutdowns.push(reply);
                                }
                            }
                            taken += 1;
                            if taken < 4096 {
                                next = rx.try_recv().ok();
                            }
                        }
                    }
                    None => {
                        receiving = false;
                        self.seal_all();
                        self.retry_now();
                        closing_deadline = Some(Instant::now() + self.config.flush_timeout);
                    }
                },
                Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => {
                    let (tenant, result) = match done {
                        Ok((id, out)) => {
                            self.job_tenants.remove(&id);
                            out
                        }
                        Err(e) => {
                            let tenant = self.job_tenants.remove(&e.id()).unwrap_or_default();
                            (tenant, Err(StoreError::unavailable(format!("audit store task failed: {e}"))))
                        }
                    };
                    self.stored(tenant, result, Instant::now());
                }
                () = sleep_until(wake) => {}
            }
        }
        // Out of time (or done): whatever is left is lost.
        self.jobs.abort_all();
        let (batches, events) = self.pending();
        let result = if batches == 0 {
            Ok(())
        } else {
            tracing::error!(
                target: "residency::audit",
                batches,
                events,
                "audit sink stopped with batches not stored: their events are lost"
            );
            Err(AuditFlushError::Pending { batches, events })
        };
        for w in std::mem::take(&mut self.waiters) {
            let r = self.waiter_result(&w.targets);
            let _ = w.reply.send(r);
        }
        // Durable records still waiting: their writes fail (the senders are
        // dropped with the worker, which their acks read as "stopped").
        for reply in shutdowns {
            let _ = reply.send(result.clone());
        }
    }

    fn add(&mut self, event: Entry, ack: Option<AckTx>, now: Instant) {
        let refuse = |ack: Option<AckTx>, why: &'static str| {
            if let Some(ack) = ack {
                let _ = ack.send(Err(AuditError::Unavailable(why)));
            }
        };
        if !self.backends.contains_key(event.store_region()) {
            refuse(ack, "no backend for the record's region");
            dropped("unknown_region");
            tracing::error!(
                target: "residency::audit",
                tenant = %event.tenant(),
                region = %event.store_region(),
                request_id = %event.request_id(),
                "audit event for a region without a backend: dropped"
            );
            return;
        }
        if self.buffered >= self.config.max_buffered_events {
            refuse(ack, "the audit buffer is full (batches cannot be stored)");
            dropped("overflow");
            if !self.overflowing {
                self.overflowing = true;
                tracing::error!(
                    target: "residency::audit",
                    buffered = self.buffered,
                    "audit buffer full (batches cannot be stored): dropping new events"
                );
            }
            return;
        }
        self.buffered += 1;
        let deadline = now + self.config.max_age;
        let max_events = self.config.max_events.max(1);
        let (tenant, region) = (event.tenant(), event.store_region());
        if !self.open.contains_key(tenant) {
            self.open.insert(tenant.to_owned(), BTreeMap::new());
        }
        let regions = self.open.get_mut(tenant).expect("inserted above");
        if !regions.contains_key(region) {
            let group = OpenGroup {
                events: Vec::new(),
                deadline,
                commit_at: None,
                acks: Vec::new(),
            };
            regions.insert(region.to_owned(), group);
        }
        let group = regions.get_mut(region).expect("inserted above");
        group.events.push(event);
        if let Some(ack) = ack {
            group.acks.push(ack);
            group
                .commit_at
                .get_or_insert(now + self.config.commit_window);
        }
        if group.events.len() >= max_events {
            let last = group.events.last().expect("pushed above");
            let (tenant, region) = (last.tenant().to_owned(), last.store_region().to_owned());
            if let Some(group) = self.take_group(&tenant, &region) {
                self.seal(tenant, region, group);
            }
        }
    }

    /// Removes an open group (and its tenant's entry once empty).
    fn take_group(&mut self, tenant: &str, region: &str) -> Option<OpenGroup> {
        let regions = self.open.get_mut(tenant)?;
        let group = regions.remove(region);
        if regions.is_empty() {
            self.open.remove(tenant);
        }
        group
    }

    /// Open groups, across tenants.
    fn open_groups(&self) -> impl Iterator<Item = &OpenGroup> {
        self.open.values().flat_map(|r| r.values())
    }

    /// Numbers, encodes and hashes a group as the chain's next batch.
    fn seal(&mut self, tenant: String, region: String, group: OpenGroup) {
        let OpenGroup { events, acks, .. } = group;
        let chain = self.chains.entry(tenant.clone()).or_default();
        let seq = chain.next_seq;
        let bytes = encode_batch(&tenant, &self.writer, seq, chain.link.head(), &events);
        let sha256 = chain.link.append(&bytes).to_owned();
        chain.next_seq += 1;
        let batch = Arc::new(SealedBatch {
            key: batch_key(&tenant, &self.writer, seq),
            tenant,
            region,
            seq,
            sha256,
            bytes: Bytes::from(bytes),
            events: events.len(),
        });
        chain.queue.push_back(Queued { batch, acks });
        self.report_pending();
    }

    /// Seals the groups whose age is up and, in durable mode, the groups
    /// with waiting records whose tenant's chain is idle (group commit: one
    /// batch per tenant and region stored at a time, the next one gathers
    /// everything that arrived meanwhile).
    fn seal_due(&mut self, now: Instant) {
        let chains = &self.chains;
        let due: Vec<(String, String)> = self
            .open
            .iter()
            .flat_map(|(t, regions)| {
                let idle = chains.get(t).is_none_or(Chain::idle);
                regions
                    .iter()
                    .filter(move |(_, g)| {
                        g.deadline <= now || (idle && g.commit_at.is_some_and(|c| c <= now))
                    })
                    .map(move |(r, _)| (t.clone(), r.clone()))
            })
            .collect();
        for (tenant, region) in due {
            if let Some(group) = self.take_group(&tenant, &region) {
                self.seal(tenant, region, group);
            }
        }
    }

    fn seal_all(&mut self) {
        for (tenant, regions) in std::mem::take(&mut self.open) {
            for (region, group) in regions {
                self.seal(tenant.clone(), region, group);
            }
        }
    }

    /// Failed stores are retried now rather than after their backoff.
    fn retry_now(&mut self) {
        for chain in self.chains.values_mut() {
            chain.retry_at = None;
        }
    }

    fn flush(&mut self, reply: Reply, now: Instant) {
        self.seal_all();
        self.retry_now();
        let targets: Vec<(String, u64)> = self
            .chains
            .iter()
            .filter(|(_, c)| !c.queue.is_empty())
            .map(|(t, c)| (t.clone(), c.next_seq))
            .collect();
        if targets.is_empty() {
            let _ = reply.send(Ok(()));
        } else {
            self.waiters.push(Waiter {
                reply,
                targets,
                deadline: now + self.config.flush_timeout,
            });
        }
    }

    /// Starts storing the front batch of every chain that is idle and not
    /// backing off. One store per chain at a time keeps the chain in order.
    fn start_stores(&mut self, now: Instant) {
        for (tenant, chain) in &mut self.chains {
            if chain.in_flight || chain.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let Some(batch) = chain.queue.front().map(|q| q.batch.clone()) else {
                continue;
            };
            let Some(home) = self.backends.get(&batch.region).cloned() else {
                continue; // cannot happen: checked in `add`
            };
            let others: Vec<(String, Arc<dyn Backend>)> = chain
                .regions
                .iter()
                .filter(|r| **r != batch.region)
                .filter_map(|r| self.backends.get(r).map(|b| (r.clone(), b.clone())))
                .collect();
            let head = HeadRecord {
                seq: batch.seq,
                sha256: batch.sha256.clone(),
                region: batch.region.clone(),
            };
            let head_key = head_key(tenant, &self.writer);
            chain.in_flight = true;
            let t = tenant.clone();
            let handle = self.jobs.spawn(async move {
                let result = store(&batch, home.as_ref(), &others, &head_key, &head).await;
                (t, result)
            });
            self.job_tenants.insert(handle.id(), tenant.clone());
        }
    }

    /// A store finished.
    fn stored(&mut self, tenant: String, result: Result<(), StoreError>, now: Instant) {
        let Some(chain) = self.chains.get_mut(&tenant) else {
            return;
        };
        chain.in_flight = false;
        match result {
            Ok(()) => {
                if let Some(Queued { batch, acks }) = chain.queue.pop_front() {
                    self.buffered -= batch.events;
                    metrics::counter!(AUDIT_BATCHES_TOTAL, "region" => batch.region.clone())
                        .increment(1);
                    metrics::histogram!(AUDIT_BATCH_EVENTS, "region" => batch.region.clone())
                        .record(batch.events as f64);
                    chain.regions.insert(batch.region.clone());
                    for ack in acks {
                        let _ = ack.send(Ok(()));
                    }
                }
                chain.attempts = 0;
                chain.retry_at = None;
                if self.overflowing && self.buffered < self.config.max_buffered_events {
                    self.overflowing = false;
                    tracing::warn!(target: "residency::audit", "audit buffer has room again");
                }
            }
            Err(error) => {
                chain.attempts = chain.attempts.saturating_add(1);
                let backoff = self
                    .config
                    .retry_min_backoff
                    .saturating_mul(1u32 << (chain.attempts - 1).min(20))
                    .min(self.config.retry_max_backoff);
                chain.retry_at = Some(now + backoff);
                if let Some(Queued { batch, .. }) = chain.queue.front() {
                    metrics::counter!(AUDIT_WRITE_ERRORS_TOTAL, "region" => batch.region.clone())
                        .increment(1);
                    tracing::error!(
                        target: "residency::audit",
                        tenant = %tenant,
                        region = %batch.region,
                        seq = batch.seq,
                        attempt = chain.attempts,
                        retry_in_ms = backoff.as_millis() as u64,
                        error = %error,
                        "audit batch not stored: kept in memory, retrying"
                    );
                }
            }
        }
        self.report_pending();
    }

    fn answer_waiters(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiters.len() {
            let done = self.waiters[i]
                .targets
                .iter()
                .all(|(t, seq)| self.chains.get(t).is_some_and(|c| c.stored_below() >= *seq));
            if done || self.waiters[i].deadline <= now {
                let w = self.waiters.swap_remove(i);
                let r = self.waiter_result(&w.targets);
                let _ = w.reply.send(r);
            } else {
                i += 1;
            }
        }
    }

    /// `Ok` when every target is stored, else what is missing.
    fn waiter_result(&self, targets: &[(String, u64)]) -> Result<(), AuditFlushError> {
        let (mut batches, mut events) = (0, 0);
        for (tenant, seq) in targets {
            if let Some(chain) = self.chains.get(tenant) {
                for b in chain
                    .queue
                    .iter()
                    .map(|q| &q.batch)
                    .take_while(|b| b.seq < *seq)
                {
                    batches += 1;
                    events += b.events;
                }
            }
        }
        if batches == 0 {
            Ok(())
        } else {
            Err(AuditFlushError::Pending { batches, events })
        }
    }

    fn next_wake(&self, closing: Option<Instant>) -> Option<Instant> {
        // A durable group's commit time counts only while its chain is idle
        // (else the store in flight wakes the loop when it ends).
        let groups = self.open.iter().flat_map(|(t, regions)| {
            let idle = self.chains.get(t).is_none_or(Chain::idle);
            regions.values().map(move |g| match g.commit_at {
                Some(c) if idle => c.min(g.deadline),
                _ => g.deadline,
            })
        });
        let retries = self
            .chains
            .values()
            .filter(|c| !c.in_flight && !c.queue.is_empty())
            .filter_map(|c| c.retry_at);
        let waiters = self.waiters.iter().map(|w| w.deadline);
        groups.chain(retries).chain(waiters).chain(closing).min()
    }

    fn pending_batches(&self) -> usize {
        self.chains.values().map(|c| c.queue.len()).sum()
    }

    /// Unstored batches and their events, plus events not yet in a batch.
    fn pending(&self) -> (usize, usize) {
        let batches = self.pending_batches() + self.open_groups().count();
        (batches, self.buffered)
    }

    fn report_pending(&self) {
        metrics::gauge!(AUDIT_PENDING_BATCHES).set(self.pending_batches() as f64);
    }
}

/// Stores one batch, then its chain's HEAD: in the batch's region (must
/// succeed; retried with the batch), then in the chain's other regions
/// (best-effort: the next batch rewrites them).
async fn store(
    batch: &SealedBatch,
    home: &dyn Backend,
    others: &[(String, Arc<dyn Backend>)],
    head_key: &str,
    head: &HeadRecord,
) -> Result<(), StoreError> {
    home.put_object(
        &batch.key,
        Body::from_bytes(batch.bytes.clone()),
        PutMeta::with_content_type("application/x-ndjson"),
    )
    .await?;
    let head = Bytes::from(serde_json::to_vec(head).expect("head serializes"));
    put_head(home, head_key, &head).await?;
    for (region, backend) in others {
        if let Err(error) = put_head(backend.as_ref(), head_key, &head).await {
            tracing::warn!(
                target: "residency::audit",
                tenant = %batch.tenant,
                region = %region,
                seq = batch.seq,
                error = %error,
                "audit HEAD not updated in this region (the next batch retries)"
            );
        }
    }
    Ok(())
}

async fn put_head(backend: &dyn Backend, key: &str, head: &Bytes) -> Result<(), StoreError> {
    backend
        .put_object(
            key,
            Body::from_bytes(head.clone()),
            PutMeta::with_content_type("application/json"),
        )
        .await
        .map(drop)
}
