//! What one region call carries through the region's stack: the backend
//! operation, the tenant whose share it counts in, the client body it
//! streams. Every layer of the stack (`region.rs`) takes it.

use std::sync::Arc;

use residency_store::Operation;

use super::watch::BodyWatch;
use crate::fair::TenantKey;

/// One backend call in a region: keys are the backend's (tenant-prefixed),
/// upload ids the backend's own.
#[derive(Debug)]
pub(crate) struct RegionRequest {
    /// Inline: an `Operation` is at most 128 bytes (its large fields are
    /// boxed), so handing the request down the stack by value copies little;
    /// boxing it here cost an allocation per call.
    pub(crate) op: Operation,
    /// Counted in this tenant's share; `None` counts nothing.
    pub(crate) tenant: Option<TenantKey>,
    /// A client's body streamed by this call, watched for its end and failure.
    pub(crate) body: Option<Arc<BodyWatch>>,
}

#[cfg(test)]
impl RegionRequest {
    /// A delete of `k` on behalf of `tenant`, for the layers' unit tests.
    pub(crate) fn test_delete(tenant: Option<TenantKey>) -> Self {
        RegionRequest {
            op: Operation::Delete { key: "k".into() },
            tenant,
            body: None,
        }
    }
}
