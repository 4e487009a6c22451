//! Residency's sidecar: an S3-compatible proxy in front of one bucket per
//! region. Applications point any S3 SDK at it; each tenant sees one virtual
//! bucket, and every object lands in the region its policy allows.

mod accept;
mod auth;
mod body;
mod client_body;
pub mod config;
mod error;
mod form;
mod gate;
mod host;
pub mod migrations;
mod range;
mod s3;
pub mod server;
mod tls;

pub use config::Config;
pub use s3::Gateway;
pub use server::{run, serve, ServeError, ServeOptions, Sidecar};

use std::sync::Arc;
use std::time::Duration;

use residency_store::Backend;
use residency_tower::audit::batch::{BatchConfig, BatchingAuditSink, WriterId};

/// The audit sink the sidecar uses: hash-chained batches under
/// `_audit/<tenant>/` in the region each described object was placed in.
pub(crate) fn audit_sink(
    config: &Config,
    backends: &[(String, Arc<dyn Backend>)],
) -> Arc<BatchingAuditSink> {
    let batch = BatchConfig {
        max_events: config.audit.batch_events.max(1),
        max_age: Duration::from_secs(config.audit.flush_secs.max(1)),
        mode: config.audit.mode,
        commit_window: Duration::from_millis(config.audit.commit_window_ms),
        commit_timeout: Duration::from_millis(config.audit.commit_timeout_ms),
        ..BatchConfig::default()
    };
    Arc::new(BatchingAuditSink::new(
        backends.to_vec(),
        WriterId::for_this_process(),
        batch,
    ))
}

/// Stores what the audit sink still holds (on shutdown).
pub(crate) async fn flush_audit(sink: &BatchingAuditSink) {
    match sink.shutdown().await {
        Ok(()) => tracing::info!("audit log flushed"),
        Err(e) => tracing::error!(error = %e, "audit log: some events could not be stored"),
    }
}
