//! Multipart uploads across regions: the backend's upload ids are signed on
//! the way out (with their region and tenant, see [`crate::UploadIdCodec`]),
//! and an upload the current rules no longer allow is aborted.

use residency_policy::{RegionId, RegionOrder};
use residency_store::{Operation, Outcome, PutMeta, StoreError};

use super::{concat, strip_in_place, unexpected, RegionalDispatch, StorageResponse};
use crate::error::{Denied, RoutingError};
use crate::request::{Route, Target};

impl RegionalDispatch {
    /// Creates an upload of `key` (the backend's key) and signs its id.
    pub(super) async fn create_multipart(
        &self,
        route: &Route,
        r: RegionId,
        key: String,
        meta: Box<PutMeta>,
    ) -> Result<StorageResponse, RoutingError> {
        let rb = self.region(route, r)?;
        match Self::call(route, rb, Operation::CreateMultipart { key, meta }).await? {
            Outcome::CreateMultipart(id) => {
                let signed = self.codec.encode(&rb.name, route.tenant_id(), &id);
                Ok(self.served(Outcome::CreateMultipart(signed), rb))
            }
            other => Err(unexpected(rb, &other)),
        }
    }

    /// The tenant's uploads under `p` in every region of `order`, their ids
    /// signed, in key order.
    pub(super) async fn list_multipart_uploads(
        &self,
        route: &Route,
        order: &RegionOrder,
        p: &str,
        prefix: &str,
    ) -> Result<StorageResponse, RoutingError> {
        let mut all = Vec::new();
        for r in order.iter() {
            let rb = self.region(route, r)?;
            let op = Operation::ListMultipartUploads {
                prefix: concat(prefix, p),
            };
            let ups = match Self::call(route, rb, op).await? {
                Outcome::ListMultipartUploads(ups) => ups,
                other => return Err(unexpected(rb, &other)),
            };
            for mut u in ups {
                u.upload_id = self.codec.encode(&rb.name, route.tenant_id(), &u.upload_id);
                strip_in_place(&mut u.key, prefix);
                all.push(u);
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(StorageResponse {
            outcome: Outcome::ListMultipartUploads(all),
            region: None,
        })
    }

    /// A multipart step of an upload the current rules no longer allow:
    /// aborts the upload in its region, then answers the denial.
    pub(super) async fn abort_revoked(
        self,
        route: Route,
        operation: Operation,
        upload_id: Option<String>,
        mut denied: Denied,
    ) -> Result<StorageResponse, RoutingError> {
        if let (Some(key), Target::Region(r), Some(upload_id)) =
            (operation.key(), &route.target, upload_id)
        {
            let rb = self.region(&route, *r)?;
            let key = concat(route.prefix(), key);
            match Self::call(&route, rb, Operation::AbortMultipart { key, upload_id }).await {
                Ok(_) => {}
                Err(RoutingError::Store { source, .. })
                    if matches!(source, StoreError::NotFound { .. })
                        || source.s3_code() == "NoSuchUpload" => {}
                Err(e) => {
                    tracing::warn!(request_id = %route.request_id, error = %e, "cannot abort an upload whose placement changed");
                    denied.detail = denied.detail.replace(
                        "the upload was aborted",
                        &format!("aborting the upload failed ({e}); abort it yourself"),
                    );
                }
            }
        }
        Err(RoutingError::Denied(denied))
    }
}
