//! Residency's sidecar: an S3-compatible proxy in front of one bucket per
//! region. Applications point any S3 SDK at it; each tenant sees one virtual
//! bucket, and every object lands in the region its policy allows.

mod auth;
mod body;
pub mod config;
mod error;
mod s3;
pub mod server;

pub use config::Config;
pub use s3::Gateway;
pub use server::{run, serve, ServeError, ServeOptions, Sidecar};

use std::sync::Arc;

use residency_store::Backend;
use residency_tower::{AuditSink, TracingAuditSink};

/// The audit sink the sidecar uses.
pub(crate) fn audit_sink(
    _config: &Config,
    _backends: &[(String, Arc<dyn Backend>)],
) -> Arc<dyn AuditSink> {
    Arc::new(TracingAuditSink)
}

/// Flushes the audit sink on shutdown.
pub(crate) async fn flush_audit(_sink: &Arc<dyn AuditSink>) {}
