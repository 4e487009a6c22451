//! Residency's audit trail: one structured event per routing decision, and
//! its storage.
//!
//! The routing layer (`residency-tower`, which re-exports this crate as
//! `residency_tower::audit`) hands each decision to an [`AuditSink`]; the
//! storage side ([`batch`]: hash-chained batches, their format and their
//! verification) and the hash chain itself ([`chain`], which the disclosure
//! ledger uses too) live here.
//!
//! The routing layer hands each decision to an [`AuditSink`] as a
//! [`DecisionRecord`] (ids into the ruleset snapshot, names looked up when
//! read); a sink that stores or logs it as it is never copies the names, and
//! the default [`AuditSink::record_decision`] turns it into an owned
//! [`AuditEvent`] for sinks that only take those. Both serialize to the same
//! JSON. [`TracingAuditSink`] logs them;
//! [`MemoryAuditSink`] keeps them for tests; the batching sink that stores
//! hash-chained batches under `_audit/<tenant>/` in the region where the
//! described object was placed lives in [`batch`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use residency_policy::{CategoryId, RegionId, RegionOrder, Ruleset, Tenant};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

pub mod batch;
pub mod chain;

/// One routing decision, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When the decision was made (RFC 3339, UTC).
    pub time: String,
    /// The request id.
    pub request_id: String,
    /// Tenant id as given by the request (may be unknown).
    pub tenant: String,
    /// Operation (`put`, `get`, ...).
    pub op: String,
    /// Object key, or the listing prefix.
    pub key: String,
    /// Category, when classified.
    pub category: Option<String>,
    /// How the category was found (`key_rule`, `explicit`, ...).
    pub classified_by: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// The region(s) the request was sent to, in order.
    pub regions: Vec<String>,
    /// The tenant's namespace in the regional bucket (its bucket name).
    pub bucket: Option<String>,
    /// Reason label.
    pub reason: String,
    /// Written outside the tenant's selected region.
    pub out_of_locality: bool,
    /// The policy version the decision was made under.
    pub policy_version: String,
    /// Where this event is stored: the region the object was placed in, or
    /// for a denial the tenant's own region.
    pub store_region: String,
}

impl AuditEvent {
    /// The current time in the audit format.
    pub fn now() -> String {
        rfc3339(SystemTime::now())
    }
}

/// A time as RFC 3339 UTC with milliseconds.
///
/// Integer arithmetic into a fixed buffer: this runs once per audited request,
/// and the float formatting it replaces showed in the 4 KiB PUT profile.
pub fn rfc3339(t: SystemTime) -> String {
    Timestamp::at(t).as_str().to_owned()
}

/// An RFC 3339 UTC time with milliseconds, held inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Timestamp([u8; 24]);

impl Timestamp {
    fn now() -> Self {
        Self::at(SystemTime::now())
    }

    fn at(t: SystemTime) -> Self {
        let ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let secs = ms / 1000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = (secs % 86_400) as u32;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        fn put(b: &mut [u8], mut v: u32) {
            for c in b.iter_mut().rev() {
                *c = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        put(&mut b[0..4], y.clamp(0, 9999) as u32);
        put(&mut b[5..7], m);
        put(&mut b[8..10], d);
        put(&mut b[11..13], rem / 3600);
        put(&mut b[14..16], rem / 60 % 60);
        put(&mut b[17..19], rem % 60);
        put(&mut b[20..23], (ms % 1000) as u32);
        Self(b)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits and separators")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Days since 1970-01-01 to a civil date `(year, month, day)`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Julian day 2,440,588 is 1970-01-01.
    let d = i32::try_from(z + 2_440_588)
        .ok()
        .and_then(|jd| time::Date::from_julian_day(jd).ok())
        .unwrap_or(time::Date::MAX);
    (
        i64::from(d.year()),
        u32::from(u8::from(d.month())),
        u32::from(d.day()),
    )
}

/// A routing decision as the routing layer hands it to an [`AuditSink`].
///
/// It holds the ruleset snapshot the decision was made under and ids into
/// it, plus the request's own key (and an unknown tenant's name): building one
/// copies nothing else, and each name is looked up when read. It serializes to
/// exactly the JSON of [`DecisionRecord::to_event`], so a sink can store it as
/// it is and [`batch::read_events`] reads it back as an [`AuditEvent`].
///
/// ```
/// use std::sync::Mutex;
/// use residency_audit::{AuditEvent, AuditSink, DecisionRecord};
///
/// /// Keeps every decision as a JSON line, with no owned copy in between.
/// #[derive(Default)]
/// struct JsonLines(Mutex<Vec<u8>>);
///
/// impl JsonLines {
///     fn push(&self, line: &impl serde::Serialize) {
///         let mut out = self.0.lock().unwrap();
///         serde_json::to_writer(&mut *out, line).expect("serializes");
///         out.push(b'\n');
///     }
/// }
///
/// impl AuditSink for JsonLines {
///     fn record(&self, event: AuditEvent) {
///         self.push(&event);
///     }
///     fn record_decision(&self, decision: DecisionRecord) {
///         self.push(&decision);
///     }
/// }
/// # let _ = JsonLines::default();
/// ```
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    time: Timestamp,
    request_id: Arc<str>,
    rules: Arc<Ruleset>,
    tenant: TenantName,
    op: &'static str,
    key: Box<str>,
    category: Option<CategoryId>,
    classified_by: Option<&'static str>,
    allowed: bool,
    regions: RegionOrder,
    reason: &'static str,
    out_of_locality: bool,
    store_region: RegionId,
    /// A bucket the tenant created, when the request addressed one.
    created_bucket: Option<Box<str>>,
}

#[derive(Debug, Clone)]
enum TenantName {
    Known(Arc<Tenant>),
    /// As the request gave it (not in the ruleset).
    Unknown(Box<str>),
}

/// What the routing layer decided, for [`DecisionRecord::new`].
#[derive(Debug)]
pub struct Decided {
    /// Allowed (else denied).
    pub allowed: bool,
    /// The category, when classified.
    pub category: Option<CategoryId>,
    /// How it was classified.
    pub classified_by: Option<&'static str>,
    /// The regions the request was sent to (empty for a denial).
    pub regions: RegionOrder,
    /// The one region an allowed write was placed in.
    pub placed: Option<RegionId>,
    /// The decision's reason label.
    pub reason: &'static str,
    /// Written outside the tenant's selected region.
    pub out_of_locality: bool,
}

impl DecisionRecord {
    /// Records a decision made now. `tenant` is the request's tenant as
    /// given, `known` the tenant when the directory has it.
    pub fn new(
        rules: &Arc<Ruleset>,
        request_id: Arc<str>,
        tenant: &str,
        known: Option<&Arc<Tenant>>,
        op: &'static str,
        key: &str,
        d: Decided,
    ) -> Self {
        let policy = rules.policy();
        // "an audit event is stored where the object it describes was
        // placed", a denial's (or a read's) in the tenant's own region.
        let store_region = d
            .placed
            .unwrap_or_else(|| known.map_or(policy.default_region(), |t| t.home_region(policy)));
        Self {
            time: Timestamp::now(),
            request_id,
            rules: rules.clone(),
            tenant: match known {
                Some(t) => TenantName::Known(t.clone()),
                None => TenantName::Unknown(tenant.into()),
            },
            op,
            key: key.into(),
            category: d.category,
            classified_by: d.classified_by,
            allowed: d.allowed,
            regions: d.regions,
            reason: d.reason,
            out_of_locality: d.out_of_locality,
            store_region,
            created_bucket: None,
        }
    }

    /// The same record, of a request that addressed `bucket`, a bucket the
    /// tenant created (recorded as the event's `bucket`).
    #[must_use]
    pub fn in_bucket(mut self, bucket: &str) -> Self {
        self.created_bucket = Some(bucket.into());
        self
    }

    /// When the decision was made (RFC 3339, UTC).
    pub fn time(&self) -> &str {
        self.time.as_str()
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Tenant id as given by the request (may be unknown).
    pub fn tenant(&self) -> &str {
        match &self.tenant {
            TenantName::Known(t) => t.id(),
            TenantName::Unknown(name) => name,
        }
    }

    /// Operation (`put`, `get`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// Object key, or the listing prefix.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Category, when classified.
    pub fn category(&self) -> Option<&str> {
        self.category.map(|c| self.rules.policy().category(c).id())
    }

    /// How the category was found (`key_rule`, `explicit`, ...).
    pub fn classified_by(&self) -> Option<&'static str> {
        self.classified_by
    }

    /// `allow` or `deny`.
    pub fn decision(&self) -> &'static str {
        if self.allowed {
            "allow"
        } else {
            "deny"
        }
    }

    /// The region(s) the request was sent to, in order.
    pub fn regions(&self) -> impl Iterator<Item = &str> + '_ {
        let policy = self.rules.policy();
        self.regions.iter().map(move |r| policy.region(r).id())
    }

    /// The tenant's namespace in the regional bucket (`None` for an unknown
    /// tenant).
    pub fn bucket(&self) -> Option<&str> {
        if let Some(b) = &self.created_bucket {
            return Some(b);
        }
        match &self.tenant {
            TenantName::Known(t) => Some(t.bucket()),
            TenantName::Unknown(_) => None,
        }
    }

    /// Reason label.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Written outside the tenant's selected region.
    pub fn out_of_locality(&self) -> bool {
        self.out_of_locality
    }

    /// The policy version the decision was made under.
    pub fn policy_version(&self) -> &str {
        self.rules.policy().version()
    }

    /// Where this event is stored: the region the object was placed in, or
    /// for a denial (or a read) the tenant's own region.
    pub fn store_region(&self) -> &str {
        self.rules.policy().region(self.store_region).id()
    }

    /// The decision as an owned [`AuditEvent`] (every name copied).
    pub fn to_event(&self) -> AuditEvent {
        AuditEvent {
            time: self.time().to_owned(),
            request_id: self.request_id().to_owned(),
            tenant: self.tenant().to_owned(),
            op: self.op.to_owned(),
            key: self.key().to_owned(),
            category: self.category().map(str::to_owned),
            classified_by: self.classified_by.map(str::to_owned),
            decision: self.decision().to_owned(),
            regions: self.regions().map(str::to_owned).collect(),
            bucket: self.bucket().map(str::to_owned),
            reason: self.reason.to_owned(),
            out_of_locality: self.out_of_locality,
            policy_version: self.policy_version().to_owned(),
            store_region: self.store_region().to_owned(),
        }
    }
}

impl From<DecisionRecord> for AuditEvent {
    fn from(d: DecisionRecord) -> Self {
        d.to_event()
    }
}

/// The fields of [`AuditEvent`], in its order, with the same names.
impl Serialize for DecisionRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Regions<'a>(&'a DecisionRecord);
        impl Serialize for Regions<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.regions())
            }
        }
        let mut s = serializer.serialize_struct("AuditEvent", 14)?;
        s.serialize_field("time", self.time())?;
        s.serialize_field("request_id", self.request_id())?;
        s.serialize_field("tenant", self.tenant())?;
        s.serialize_field("op", self.op)?;
        s.serialize_field("key", self.key())?;
        s.serialize_field("category", &self.category())?;
        s.serialize_field("classified_by", &self.classified_by)?;
        s.serialize_field("decision", self.decision())?;
        s.serialize_field("regions", &Regions(self))?;
        s.serialize_field("bucket", &self.bucket())?;
        s.serialize_field("reason", self.reason)?;
        s.serialize_field("out_of_locality", &self.out_of_locality)?;
        s.serialize_field("policy_version", self.policy_version())?;
        s.serialize_field("store_region", self.store_region())?;
        s.end()
    }
}

/// A record's regions joined with `,` (for logs).
struct RegionList<'a>(&'a DecisionRecord);

impl fmt::Display for RegionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.regions().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r)?;
        }
        Ok(())
    }
}

/// Where audit events go. `record` must not block: sinks buffer.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one event.
    fn record(&self, event: AuditEvent);

    /// Takes one routing decision (what the routing layer calls). The
    /// default copies it into an [`AuditEvent`] for [`record`](Self::record);
    /// a sink that can use the record as it is (serialize it, log its
    /// fields) overrides this to skip the copies.
    fn record_decision(&self, decision: DecisionRecord) {
        self.record(decision.to_event());
    }

    /// Takes one routing decision of a write and answers once it is stored.
    ///
    /// The routing layer calls this for every allowed write (put, copy,
    /// delete, multipart steps) and sends the write to the backend only once
    /// the returned [`DurableAck`] resolves `Ok`; an `Err` fails the request
    /// (503, nothing written). The default records it with
    /// [`record_decision`](Self::record_decision) and answers at once: a
    /// sink that does not store durably acknowledges nothing more than it
    /// did. [`batch::BatchingAuditSink`] in [`batch::AuditMode::Durable`]
    /// answers once the batch holding the record is stored in its region.
    fn record_durable(&self, decision: DecisionRecord) -> DurableAck {
        self.record_decision(decision);
        DurableAck::stored()
    }

    /// Like [`record_durable`](Self::record_durable) for an owned event
    /// (what a caller outside the routing layer, e.g. the migrator, writes).
    fn record_event_durable(&self, event: AuditEvent) -> DurableAck {
        self.record(event);
        DurableAck::stored()
    }
}

/// Why an audit record could not be stored durably: the write it describes
/// must fail (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The record's batch was not stored within the commit timeout
    /// (`[audit] commit_timeout_ms`). It stays queued and is retried, so it
    /// may still be stored later: the record then describes a write that was
    /// refused.
    #[error("the audit record was not stored within {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
    /// The sink cannot take the record (buffer full, shut down, no backend
    /// for the record's region).
    #[error("the audit record cannot be stored: {0}")]
    Unavailable(&'static str),
}

/// Resolves once an audit record is stored (see
/// [`AuditSink::record_durable`]).
#[must_use = "a durable record is only acknowledged by awaiting it"]
pub struct DurableAck(AckState);

enum AckState {
    Done(Option<Result<(), AuditError>>),
    Pending(std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AuditError>> + Send>>),
}

impl DurableAck {
    /// Already stored (or a sink that does not wait).
    pub fn stored() -> Self {
        Self(AckState::Done(Some(Ok(()))))
    }

    /// Already failed.
    pub fn failed(error: AuditError) -> Self {
        Self(AckState::Done(Some(Err(error))))
    }

    /// Resolves with `fut`.
    pub fn new(
        fut: impl std::future::Future<Output = Result<(), AuditError>> + Send + 'static,
    ) -> Self {
        Self(AckState::Pending(Box::pin(fut)))
    }

    /// The result when it is known without waiting, else the ack back.
    ///
    /// # Errors
    /// `Err(self)` when the record is still being stored.
    pub fn into_ready(self) -> Result<Result<(), AuditError>, Self> {
        match self.0 {
            AckState::Done(Some(r)) => Ok(r),
            other => Err(Self(other)),
        }
    }
}

impl fmt::Debug for DurableAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            AckState::Done(r) => f.debug_tuple("DurableAck").field(r).finish(),
            AckState::Pending(_) => f.write_str("DurableAck(pending)"),
        }
    }
}

impl std::future::Future for DurableAck {
    type Output = Result<(), AuditError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            AckState::Done(r) => {
                std::task::Poll::Ready(r.take().expect("DurableAck polled after completion"))
            }
            AckState::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Logs each event at INFO through `tracing` (target `residency::audit`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, e: AuditEvent) {
        tracing::info!(
            target: "residency::audit",
            request_id = %e.request_id,
            tenant = %e.tenant,
            op = %e.op,
            key = %e.key,
            category = e.category.as_deref().unwrap_or("-"),
            decision = %e.decision,
            regions = %e.regions.join(","),
            reason = %e.reason,
            out_of_locality = e.out_of_locality,
            "decision"
        );
    }

    fn record_decision(&self, d: DecisionRecord) {
        tracing::info!(
            target: "residency::audit",
            request_id = %d.request_id(),
            tenant = %d.tenant(),
            op = %d.op(),
            key = %d.key(),
            category = d.category().unwrap_or("-"),
            decision = %d.decision(),
            regions = %RegionList(&d),
            reason = %d.reason(),
            out_of_locality = d.out_of_locality(),
            "decision"
        );
    }
}

/// Keeps events in memory (tests and examples).
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditSink {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().expect("audit lock").clone()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: AuditEvent) {
        self.events.lock().expect("audit lock").push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_times() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.000Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_868_799_999);
        assert_eq!(rfc3339(t), "2000-02-29T23:59:59.999Z");
    }
}
