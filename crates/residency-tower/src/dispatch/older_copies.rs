//! One object per key per tenant (see [`crate::one_copy`]): a write that may
//! move a key looks for its older copies first, and removes them once the new
//! copy is stored, before it is acknowledged.

use std::future::Future;
use std::pin::Pin;

use futures::future::Either;
use residency_policy::{RegionId, RegionOrder};
use residency_store::{Operation, StoreError};

use super::region::Region;
use super::{concat, is_not_found, RegionalDispatch};
use crate::error::RoutingError;
use crate::one_copy;
use crate::request::Route;

type StepFuture<'a, T> = Either<
    std::future::Ready<Result<T, RoutingError>>,
    Pin<Box<dyn Future<Output = Result<T, RoutingError>> + Send + 'a>>,
>;

impl RegionalDispatch {
    /// The regions holding an older copy of `key` (relative to the tenant)
    /// that a write into `target` would leave behind. A write placed by a key
    /// rule looks nowhere (a ready future: no backend call, nothing boxed).
    ///
    /// # Errors
    /// A region that may hold a copy and cannot answer: the write is refused
    /// (503, with the reason) before anything changed.
    pub(super) fn older_copies<'a>(
        &'a self,
        route: &'a Route,
        key: &str,
        target: RegionId,
        prefix: &str,
    ) -> StepFuture<'a, RegionOrder> {
        let look_in = one_copy::older_copy_regions(
            route.rules.policy(),
            &route.tenant,
            key,
            target,
            route.classified_by,
        );
        if look_in.is_empty() {
            return Either::Left(std::future::ready(Ok(look_in)));
        }
        let full_key = concat(prefix, key);
        let key = key.to_string();
        Either::Right(Box::pin(async move {
            let heads = look_in.iter().map(|r| {
                let op = Operation::Head {
                    key: full_key.clone(),
                    sse: None,
                };
                async move {
                    let rb = self.region(route, r)?;
                    Ok::<_, RoutingError>((r, Self::call(route, rb, op).await))
                }
            });
            let mut found = RegionOrder::default();
            for head in futures::future::join_all(heads).await {
                match head? {
                    (r, Ok(_)) => found.push(r),
                    // A HEAD without the customer key of an SSE-C object
                    // is refused with 400: the object is there.
                    (r, Err(RoutingError::Store { source, .. })) if source.http_status() == 400 => {
                        found.push(r)
                    }
                    (_, Err(e)) if is_not_found(&e) => {}
                    (_, Err(RoutingError::Store { region, source })) if source.is_unavailable() => {
                        return Err(RoutingError::Store {
                            source: StoreError::unavailable(format!(
                                "cannot write {key:?} to {}: region {region} may hold an older copy of this key and is unavailable ({source}); the write was refused before anything changed, so that no stale copy remains",
                                route.region_name(target)
                            )),
                            region,
                        });
                    }
                    (_, Err(e)) => return Err(e),
                }
            }
            Ok(found)
        }))
    }

    /// Removes the older copies `older` of `full_key` once the new one is
    /// stored in `written`. A removal that fails fails the write: it is not
    /// acknowledged (the client retries it, which finds and removes the old
    /// copy again), and reads keep choosing one copy meanwhile.
    pub(super) fn remove_older_copies<'a>(
        &'a self,
        route: &'a Route,
        full_key: &str,
        written: &'a Region,
        older: RegionOrder,
    ) -> StepFuture<'a, ()> {
        if older.is_empty() {
            return Either::Left(std::future::ready(Ok(())));
        }
        let full_key = full_key.to_string();
        Either::Right(Box::pin(async move {
            for r in older.iter() {
                let rb = self.region(route, r)?;
                let op = Operation::Delete {
                    key: full_key.clone(),
                };
                if let Err(e) = Self::call(route, rb, op).await {
                    let key = full_key.strip_prefix(route.prefix()).unwrap_or(&full_key);
                    tracing::warn!(
                        request_id = %route.request_id,
                        key,
                        written = %written.name,
                        older = %rb.name,
                        error = %e,
                        "the older copy of a moved key could not be removed: the write is not acknowledged"
                    );
                    return Err(RoutingError::Store {
                        region: rb.name.to_string(),
                        source: StoreError::unavailable(format!(
                            "{key:?} was written to {}, but its older copy in {} could not be removed ({e}): the write is not acknowledged; retry it",
                            written.name, rb.name
                        )),
                    });
                }
                tracing::debug!(request_id = %route.request_id, from = %rb.name, to = %written.name, "moved key: older copy removed");
            }
            Ok(())
        }))
    }
}
