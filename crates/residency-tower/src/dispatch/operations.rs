//! Each operation in its region(s): the tenant's key prefix on the way in,
//! off on the way out.

use residency_store::{Operation, Outcome, StoreError};

use super::watch::{counted, counted_in};
use super::{concat, is_not_found, not_found, relative, strip_in_place, unexpected};
use super::{RegionalDispatch, StorageResponse};
use crate::error::{Denied, RoutingError};
use crate::request::{BodyChecks, Route, Target};

impl RegionalDispatch {
    /// Puts, parts, gets, heads and deletes inline; the other operations in
    /// [`Self::dispatch_rest`], boxed. This future is moved into its box on
    /// every request, so the size of its largest arm is a copy every request
    /// pays (copies and listings alone would add kilobytes).
    pub(super) async fn dispatch(
        self,
        mut route: Route,
        operation: Operation,
        checks: Option<Box<dyn BodyChecks>>,
    ) -> Result<StorageResponse, RoutingError> {
        let prefix = route.prefix.clone();
        let full = |k: &str| concat(&prefix, k);
        let upload_id = route.backend_upload_id.take();
        if let Some(denied) = route.revoked.take() {
            return Box::pin(self.abort_revoked(route, operation, upload_id, denied)).await;
        }
        match (operation, &route.target) {
            (Operation::Put { key, body, meta }, Target::Region(r)) => {
                let rb = self.region(&route, *r)?;
                let older = self.older_copies(&route, &key, *r, &prefix).await?;
                let (body, watch) = counted_in(body, &rb.metrics, checks);
                let key = full(&key);
                let op = Operation::Put {
                    key: key.clone(),
                    body,
                    meta,
                };
                let out = Self::call_with_body(&route, rb, op, Some(watch)).await?;
                self.remove_older_copies(&route, &key, rb, older).await?;
                Ok(self.served(out, rb))
            }
            (
                Operation::UploadPart {
                    key,
                    part_number,
                    body,
                    checksums,
                    sse,
                    ..
                },
                Target::Region(r),
            ) => {
                let rb = self.region(&route, *r)?;
                let (body, watch) = counted_in(body, &rb.metrics, checks);
                let op = Operation::UploadPart {
                    key: full(&key),
                    upload_id: upload_id.unwrap_or_default(),
                    part_number,
                    body,
                    checksums,
                    sse,
                };
                let out = Self::call_with_body(&route, rb, op, Some(watch)).await?;
                Ok(self.served(out, rb))
            }
            (Operation::Get { key, range, sse }, Target::Regions(order)) => {
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let op = Operation::Get {
                        key: key.clone(),
                        range,
                        sse: sse.clone(),
                    };
                    match Self::call(&route, rb, op).await {
                        Ok(Outcome::Get(mut out)) => {
                            strip_in_place(&mut out.info.key, &prefix);
                            out.body = counted(out.body, &rb.metrics);
                            return Ok(self.served(Outcome::Get(out), rb));
                        }
                        Ok(other) => return Err(unexpected(rb, &other)),
                        Err(e) if is_not_found(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(not_found(&key, &prefix))
            }
            (Operation::Head { key, sse }, Target::Regions(order)) => {
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let op = Operation::Head {
                        key: key.clone(),
                        sse: sse.clone(),
                    };
                    match Self::call(&route, rb, op).await {
                        Ok(Outcome::Head(mut info)) => {
                            strip_in_place(&mut info.key, &prefix);
                            return Ok(self.served(Outcome::Head(info), rb));
                        }
                        Ok(other) => return Err(unexpected(rb, &other)),
                        Err(e) if is_not_found(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(not_found(&key, &prefix))
            }
            (Operation::Delete { key }, Target::Regions(order)) => {
                // Deletes are idempotent: remove the key in every region (the
                // route names them all, see `decide`); a region that cannot be
                // reached fails the delete and says so.
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let op = Operation::Delete { key: key.clone() };
                    Self::call(&route, rb, op)
                        .await
                        .map_err(|e| delete_incomplete(e, &key, &prefix))?;
                }
                Ok(StorageResponse {
                    outcome: Outcome::Delete,
                    region: None,
                })
            }
            (op, _) => Box::pin(self.dispatch_rest(&route, op, upload_id, &prefix)).await,
        }
    }

    /// Multipart steps other than parts, copies and listings (see
    /// [`Self::dispatch`]).
    async fn dispatch_rest(
        &self,
        route: &Route,
        operation: Operation,
        upload_id: Option<String>,
        prefix: &str,
    ) -> Result<StorageResponse, RoutingError> {
        let full = |k: &str| concat(prefix, k);
        match (operation, &route.target) {
            (Operation::CreateMultipart { key, meta }, Target::Region(r)) => {
                self.create_multipart(route, *r, full(&key), meta).await
            }
            (Operation::CompleteMultipart { key, parts, .. }, Target::Region(r)) => {
                let rb = self.region(route, *r)?;
                let older = self.older_copies(route, &key, *r, prefix).await?;
                let key = full(&key);
                let op = Operation::CompleteMultipart {
                    key: key.clone(),
                    upload_id: upload_id.unwrap_or_default(),
                    parts,
                };
                let out = Self::call(route, rb, op).await?;
                self.remove_older_copies(route, &key, rb, older).await?;
                Ok(self.served(out, rb))
            }
            (Operation::AbortMultipart { key, .. }, Target::Region(r)) => {
                let rb = self.region(route, *r)?;
                let op = Operation::AbortMultipart {
                    key: full(&key),
                    upload_id: upload_id.unwrap_or_default(),
                };
                let out = Self::call(route, rb, op).await?;
                Ok(self.served(out, rb))
            }
            (
                Operation::ListParts {
                    key,
                    part_number_marker,
                    max_parts,
                    ..
                },
                Target::Region(r),
            ) => {
                let rb = self.region(route, *r)?;
                let op = Operation::ListParts {
                    key: full(&key),
                    upload_id: upload_id.unwrap_or_default(),
                    part_number_marker,
                    max_parts,
                };
                let out = Self::call(route, rb, op).await?;
                Ok(self.served(out, rb))
            }
            (
                Operation::Copy {
                    src_key,
                    dst_key,
                    meta,
                    sse,
                },
                Target::Region(dst),
            ) => {
                let older = self.older_copies(route, &dst_key, *dst, prefix).await?;
                let dst_key = full(&dst_key);
                let out = self
                    .copy(route, *dst, full(&src_key), dst_key.clone(), meta, sse)
                    .await?;
                let rb = self.region(route, *dst)?;
                self.remove_older_copies(route, &dst_key, rb, older).await?;
                Ok(out)
            }
            (Operation::List { request }, Target::Regions(order)) => {
                self.list(route, order, request, prefix).await
            }
            (Operation::ListMultipartUploads { prefix: p }, Target::Regions(order)) => {
                self.list_multipart_uploads(route, order, &p, prefix).await
            }
            (op, _) => Err(RoutingError::Denied(Denied {
                reason: "no_route",
                detail: format!(
                    "operation {} was routed to the wrong kind of target",
                    op.kind()
                ),
            })),
        }
    }
}

/// A delete that could not reach one region: the key may still be there.
fn delete_incomplete(e: RoutingError, full_key: &str, prefix: &str) -> RoutingError {
    match e {
        RoutingError::Store { region, source } if source.is_unavailable() => {
            let key = relative(full_key, prefix);
            RoutingError::Store {
                source: StoreError::unavailable(format!(
                    "the delete of {key:?} is incomplete: region {region} may hold a copy (even one the current rules hide) and is unavailable ({source}); retry the delete"
                )),
                region,
            }
        }
        e => e,
    }
}
