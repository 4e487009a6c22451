//! What the scan reads of an erased tenant's erasure statement: which of
//! its records the statement keeps, and until when. Only these fields are
//! read (the statement is `residency erase`'s, its signature is checked by
//! `attest verify`, not here).

use std::sync::Arc;

use residency_store::{Backend, ListRequest, StoreError};
use serde::Deserialize;

/// The erasure statement's format label.
pub(crate) const ERASURE_FORMAT: &str = "residency-erasure/1";

/// Records an erasure statement keeps.
#[derive(Debug, Deserialize)]
pub(crate) struct KeptRecords {
    /// What they are ("audit batches").
    pub(crate) what: String,
    /// Their prefix in each region's bucket.
    pub(crate) prefix: String,
    /// Until when (Unix seconds); `None`: as long as the statement is kept.
    pub(crate) until: Option<u64>,
}

/// The part of an erasure statement the scan reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Retention {
    format: String,
    tenant: String,
    /// When the tenant's objects were deleted (Unix seconds).
    pub(crate) erased_at: u64,
    /// What was kept.
    pub(crate) kept: Vec<KeptRecords>,
}

#[derive(Deserialize)]
struct Signed {
    statement: Retention,
}

/// The newest erasure statement stored for `tenant` in any region, or
/// `None`.
///
/// # Errors
/// A region that cannot be listed or read: (region, error).
pub(crate) async fn latest(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
) -> Result<Option<Retention>, (String, StoreError)> {
    let mut newest: Option<(String, usize)> = None;
    for (i, (region, b)) in backends.iter().enumerate() {
        let page = b
            .list_objects(ListRequest::new(format!("_attestations/{tenant}/erasure-")))
            .await
            .map_err(|e| (region.clone(), e))?;
        if let Some(o) = page.objects.last() {
            if newest.as_ref().is_none_or(|(k, _)| o.key > *k) {
                newest = Some((o.key.clone(), i));
            }
        }
    }
    let Some((key, i)) = newest else {
        return Ok(None);
    };
    let (region, b) = &backends[i];
    let bytes = match b.get_object(&key, None).await {
        Ok(out) => out.body.collect().await.map_err(|e| (region.clone(), e))?,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err((region.clone(), e)),
    };
    let statement = serde_json::from_slice::<Signed>(&bytes)
        .ok()
        .map(|s| s.statement)
        .filter(|r| r.format == ERASURE_FORMAT && r.tenant == tenant);
    if statement.is_none() {
        tracing::warn!(%region, %key, "not an erasure statement of this tenant: the records it would keep are reported");
    }
    Ok(statement)
}
