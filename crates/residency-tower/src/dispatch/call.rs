//! What one region call carries through the region's stack: the backend
//! operation, the tenant whose share it counts in, the client body it
//! streams. Every layer of the stack (`region.rs`) takes it.

use std::sync::Arc;

use residency_policy::{Ruleset, TenantId};
use residency_store::Operation;

use super::watch::BodyWatch;

/// The tenant a region call is made for (its share is counted).
#[derive(Debug, Clone)]
pub(crate) struct TenantRef {
    rules: Arc<Ruleset>,
    tenant: TenantId,
}

impl TenantRef {
    pub(crate) fn new(rules: Arc<Ruleset>, tenant: TenantId) -> Self {
        Self { rules, tenant }
    }

    /// The tenant's id string.
    pub(crate) fn id(&self) -> &str {
        self.rules.tenants().tenant(self.tenant).id()
    }
}

/// One backend call in a region: keys are the backend's (tenant-prefixed),
/// upload ids the backend's own.
#[derive(Debug)]
pub(crate) struct RegionRequest {
    /// Boxed: the request is handed down through every layer of the stack
    /// by value, and an inline `Operation` (432 bytes) is copied at each.
    pub(crate) op: Box<Operation>,
    /// Counted in this tenant's share; `None` counts nothing.
    pub(crate) tenant: Option<TenantRef>,
    /// A client's body streamed by this call, watched for its end and failure.
    pub(crate) body: Option<Arc<BodyWatch>>,
}
