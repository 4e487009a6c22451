//! Copies stay within the destination's region: a copy whose source is in
//! another region is denied (it would move data between regions).

use residency_policy::RegionId;
use residency_store::{Operation, PutMeta, Sse};

use super::{is_not_found, not_found, RegionalDispatch, StorageResponse};
use crate::error::{Denied, RoutingError};
use crate::request::Route;

impl RegionalDispatch {
    /// Copies `src` to `dst_key` (both the backend's keys) in `dst`; when the
    /// source is not there, probes the tenant's other regions to tell a
    /// cross-region copy (denied) from a missing source (not found).
    pub(super) async fn copy(
        &self,
        route: &Route,
        dst: RegionId,
        src: String,
        dst_key: String,
        meta: Option<Box<PutMeta>>,
        sse: Option<Box<Sse>>,
    ) -> Result<StorageResponse, RoutingError> {
        let rb = self.region(route, dst)?;
        // The source is looked up with its own customer key (SSE-C), if any.
        let src_sse = sse.as_ref().and_then(|s| {
            s.copy_source_customer.as_ref().map(|k| {
                Box::new(Sse {
                    customer: Some(k.clone()),
                    ..Sse::default()
                })
            })
        });
        let head = |key: String| Operation::Head {
            key,
            sse: src_sse.clone(),
        };
        let found = match Self::call(route, rb, head(src.clone())).await {
            // A HEAD of an SSE-C object without (or with the wrong) key is
            // refused with 400: the source is here, and the copy answers
            // as the region does.
            Err(RoutingError::Store { source, .. }) if source.http_status() == 400 => Ok(()),
            other => other.map(|_| ()),
        };
        match found {
            Ok(()) => {
                let op = Operation::Copy {
                    src_key: src,
                    dst_key,
                    meta,
                    sse,
                };
                let out = Self::call(route, rb, op).await?;
                Ok(self.served(out, rb))
            }
            Err(e) if is_not_found(&e) => {
                let order = route.rules.policy().read_order(&route.tenant);
                for r in order.iter().filter(|r| *r != dst) {
                    let other = self.region(route, r)?;
                    match Self::call(route, other, head(src.clone())).await {
                        Ok(_) => {
                            return Err(RoutingError::Denied(Denied {
                                reason: "cross_region_copy",
                                detail: format!(
                                    "the source is stored in {} and the destination must be in {}: a copy never moves data between regions",
                                    other.name, rb.name
                                ),
                            }))
                        }
                        Err(e) if is_not_found(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                let prefix = route.prefix();
                Err(not_found(&src, prefix))
            }
            Err(e) => Err(e),
        }
    }
}
