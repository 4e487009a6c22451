//! `RoutingService`: decide in `call`, before the body is read.

use std::sync::Arc;
use std::task::{Context, Poll};

use residency_store::{BoxError, OpKind};
use tower::Service;

use crate::error::RoutingError;
use crate::metrics as m;
use crate::request::{RoutableRequest, Target};
use crate::routing::decide::{audit_record, route};
use crate::routing::RoutingFuture;
use crate::routing::Shared;

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

    fn call(&mut self, mut req: R) -> Self::Future {
        // The snapshot the edge resolved the tenant under, else the one in
        // force now (a guard, not a clone: the route takes the only reference
        // it needs).
        let resolved = req.resolved().map(|r| (r.snapshot.clone(), r.tenant));
        let guard;
        let (snapshot, tenant) = match &resolved {
            Some((snapshot, tenant)) => (&**snapshot, Some(*tenant)),
            None => {
                guard = self.shared.handle.snapshot();
                (&**guard, None)
            }
        };
        let rules = &snapshot.rules;
        // Once: for an http request it is parsed from the method and query.
        let op = req.op();
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
