//! The migrator's audit trail, and waiting until it is stored.
//!
//! Each step is recorded, and the record stored, before the journal says
//! the step happened: a killed run leaves at worst an event for a step the
//! journal does not show yet (the next run does it again, and records it
//! again), never a step without its event.

use futures::future::BoxFuture;
use residency_tower::audit::batch::BatchingAuditSink;
use residency_tower::audit::{AuditSink, MemoryAuditSink};

/// An [`AuditSink`] whose recorded events can be waited for.
pub trait MigrationAudit: AuditSink {
    /// Resolves once every event recorded before the call is stored.
    ///
    /// # Errors
    /// Some events could not be stored (the migration then stops: it does
    /// not journal a step whose event may be lost).
    fn flush(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl MigrationAudit for BatchingAuditSink {
    fn flush(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            BatchingAuditSink::flush(self)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl MigrationAudit for MemoryAuditSink {
    fn flush(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
