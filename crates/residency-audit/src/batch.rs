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
//! A writer that closes an idle chain to bound its memory
//! ([`BatchConfig::max_chains`]) starts that tenant's next chain in the
//! folder `<writer>.<n>` (`n` counts the closings), as a restarted writer
//! would start a new one.
//!
//! There is one chain per tenant per writer folder: `seq` counts that
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
//! | `residency_audit_chains_closed_total` | counter | |

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
mod worker;

pub use format::audit_prefix;
pub use verify::{read_events, verify_chain, verify_chain_moved, ChainReport, WriterReport};

use format::{batch_key, chain_writer, encode_batch, head_key, HeadRecord};
use worker::Worker;

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
/// Idle chains closed to bound memory ([`BatchConfig::max_chains`]).
pub const AUDIT_CHAINS_CLOSED_TOTAL: &str = "residency_audit_chains_closed_total";
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
    /// Tenant chains kept in memory at most (default 2 000): past it the
    /// least recently used idle ones are closed (each is complete as
    /// stored), and a closed tenant's next batch starts a new chain in the
    /// writer's next folder (`<writer>.<n>`). Bounds the writer's memory
    /// when it writes for very many tenants.
    pub max_chains: usize,
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
            max_chains: 2_000,
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
        let worker = Worker::new(backends, writer.0.clone(), config);
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
