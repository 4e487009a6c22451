//! `RoutingService`: decide in `call`, before the body is read.

use std::sync::Arc;
use std::task::{Context, Poll};

use residency_store::{BoxError, OpKind};
use tower::Service;

use crate::error::RoutingError;
use crate::handle::Snapshot;
use crate::metrics as m;
use crate::request::{RoutableRequest, Target};
use crate::routing::decide::{audit_record, route};
use crate::routing::RoutingFuture;
use crate::routing::Shared;
use residency_directory::Answer;
use residency_policy::Tenant;

/// Classifies and decides each request, attaches its [`crate::Route`], and
/// calls the inner service; a denied request never reaches it.
///
/// `poll_ready` delegates to the inner service; the decision itself is
/// synchronous and allocation-light, made in `call`.
#[derive(Clone)]
pub struct RoutingService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for RoutingService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingService").finish_non_exhaustive()
    }
}

impl<S> RoutingService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The operations whose audit record must be stored before they run in
/// durable audit mode: everything that changes stored data.
fn is_write(op: OpKind) -> bool {
    matches!(
        op,
        OpKind::Put
            | OpKind::Delete
            | OpKind::Copy
            | OpKind::CreateMultipart
            | OpKind::UploadPart
            | OpKind::CompleteMultipart
            | OpKind::AbortMultipart
    )
}

/// The service is cloned for a write that waits for its audit record (the
/// ready one is taken into the future, as tower's docs advise), so it must be
/// `Clone + Send + 'static`.
impl<S, R> Service<R> for RoutingService<S>
where
    R: RoutableRequest + Send + 'static,
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RoutingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // The tenant the edge resolved, under its snapshot.
        if let Some(r) = req.resolved() {
            let (snapshot, tenant) = (r.snapshot.clone(), r.tenant.clone());
            return self.decide(&snapshot, Ok(Some(tenant)), req);
        }
        // Else the request's tenant, looked up now under the snapshot in
        // force (a guard, not a clone, when the directory answers from
        // memory: the file, a cached tenant).
        let guard = self.shared.handle.snapshot();
        let lookup = guard
            .directory
            .tenant(guard.rules.policy(), req.tenant().unwrap_or(""));
        if let Some(answer) = lookup.now() {
            return self.decide(&guard, answer, req);
        }
        // A directory that must ask its source: the inner service is cloned
        // into the future (the ready one taken, as for a durable audit).
        let snapshot = arc_swap::Guard::into_inner(guard);
        let clone = self.inner.clone();
        let mut this = RoutingService {
            inner: std::mem::replace(&mut self.inner, clone),
            shared: self.shared.clone(),
        };
        RoutingFuture::Auditing {
            start: Box::pin(async move {
                let answer = {
                    let name = req.tenant().unwrap_or("");
                    snapshot
                        .directory
                        .tenant(snapshot.rules.policy(), name)
                        .await
                };
                match this.decide(&snapshot, answer, req) {
                    RoutingFuture::Inner { fut } => Ok(fut),
                    RoutingFuture::Auditing { start } => start.await,
                    RoutingFuture::Denied { denied } => {
                        Err(Box::new(RoutingError::Denied(denied.expect("a denial"))) as BoxError)
                    }
                    RoutingFuture::Failed { error } => Err(error.expect("an error")),
                }
            }),
        }
    }
}

impl<S> RoutingService<S> {
    /// Decides `req` under `snapshot` for the tenant the directory answered,
    /// and calls the inner service if it is allowed.
    fn decide<R>(
        &mut self,
        snapshot: &Snapshot,
        answer: Answer<Arc<Tenant>>,
        mut req: R,
    ) -> RoutingFuture<S::Future>
    where
        R: RoutableRequest + Send + 'static,
        S: Service<R> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
    {
        let tenant = match answer {
            Ok(t) => t,
            Err(e) => {
                // Fail closed: no decision without the directory's answer.
                m::directory_failed(&e);
                tracing::warn!(
                    tenant = req.tenant().unwrap_or(""),
                    error = %e,
                    "tenant directory could not answer: request refused, nothing sent to any region"
                );
                return RoutingFuture::Failed {
                    error: Some(Box::new(RoutingError::Directory(e))),
                };
            }
        };
        let op = req.op();
        let rules = &snapshot.rules;
        let result = route(rules, tenant, &req, op, &self.shared.codec);
        // An allowed write waits for its record to be stored (durable mode)
        // before anything is sent to the backend: a record may then describe
        // a write that failed, never a write without a record.
        let mut ack = None;
        if let Some(sink) = &self.shared.audit {
            let record = audit_record(rules, &req, op, &result);
            if result.is_ok() && is_write(op) {
                match sink.record_durable(record).into_ready() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return RoutingFuture::Auditing {
                            start: Box::pin(std::future::ready(Err(
                                Box::new(RoutingError::Audit(e)) as BoxError,
                            ))),
                        }
                    }
                    Err(pending) => ack = Some(pending),
                }
            } else {
                sink.record_decision(record);
            }
        }
        let policy = rules.policy();
        match result {
            Ok(route) => {
                let region = match &route.target {
                    Target::Region(r) => m::RegionLabel::One(*r),
                    Target::Regions(o) if o.len() == 1 => {
                        m::RegionLabel::One(o.iter().next().expect("one"))
                    }
                    Target::Regions(_) => m::RegionLabel::Any,
                };
                snapshot.metrics.request(policy, op, route.category, region);
                if route.out_of_locality {
                    if let Some(c) = route.category {
                        snapshot.metrics.out_of_locality(policy, c);
                    }
                }
                req.set_route(route);
                match ack {
                    None => RoutingFuture::Inner {
                        fut: self.inner.call(req),
                    },
                    Some(ack) => {
                        let clone = self.inner.clone();
                        let mut inner = std::mem::replace(&mut self.inner, clone);
                        RoutingFuture::Auditing {
                            start: Box::pin(async move {
                                ack.await
                                    .map_err(|e| Box::new(RoutingError::Audit(e)) as BoxError)?;
                                Ok(inner.call(req))
                            }),
                        }
                    }
                }
            }
            Err(refusal) => {
                snapshot
                    .metrics
                    .request(policy, op, refusal.category, m::RegionLabel::Denied);
                m::denied(refusal.denied.reason);
                tracing::debug!(
                    request_id = %refusal.request_id,
                    tenant = req.tenant().unwrap_or(""),
                    op = op.as_str(),
                    reason = refusal.denied.reason,
                    detail = %refusal.denied.detail,
                    "denied"
                );
                RoutingFuture::Denied {
                    denied: Some(refusal.denied),
                }
            }
        }
    }
}
