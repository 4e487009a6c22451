//! The audit trail: one structured event per routing decision.
//!
//! Events go to an [`AuditSink`]. [`TracingAuditSink`] logs them;
//! [`MemoryAuditSink`] keeps them for tests; the batching sink that stores
//! hash-chained batches under `_audit/<tenant>/` in the region where the
//! described object was placed lives in [`batch`].

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub mod batch;

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
    b.iter().map(|&c| char::from(c)).collect()
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where audit events go. `record` must not block: sinks buffer.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one event.
    fn record(&self, event: AuditEvent);
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
