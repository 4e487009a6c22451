//! `RoutingService`: decide in `call`, before the body is read.

use std::sync::Arc;
use std::task::{Context, Poll};

use residency_store::BoxError;
use tower::Service;

use crate::metrics as m;
use crate::request::{RoutableRequest, Target};
use crate::routing::decide::{audit_event, route};
use crate::routing::layer::Shared;
use crate::routing::RoutingFuture;

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

impl<S, R> Service<R> for RoutingService<S>
where
    R: RoutableRequest,
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RoutingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let rules = self.shared.handle.load();
        let result = route(&rules, &req, &self.shared.codec);
        if let Some(sink) = &self.shared.audit {
            sink.record(audit_event(&rules, &req, &result));
        }
        let policy = rules.policy();
        let op = req.op().as_str();
        match result {
            Ok(route) => {
                let category = route.category.map(|c| policy.category(c).shared_id());
                let region = match &route.target {
                    Target::Region(r) => m::Label::Shared(policy.region(*r).shared_id()),
                    Target::Regions(o) if o.len() == 1 => {
                        m::Label::Shared(policy.region(o.iter().next().expect("one")).shared_id())
                    }
                    Target::Regions(_) => m::Label::Static("any"),
                };
                m::request(op, category, region, "allow");
                if route.out_of_locality {
                    if let Some(c) = route.category {
                        m::out_of_locality(policy.category(c).shared_id());
                    }
                }
                req.set_route(route);
                RoutingFuture::Inner {
                    fut: self.inner.call(req),
                }
            }
            Err(refusal) => {
                let category = refusal.category.map(|c| policy.category(c).shared_id());
                m::request(op, category, m::Label::Static("none"), "deny");
                m::denied(refusal.denied.reason);
                tracing::debug!(
                    request_id = %refusal.request_id,
                    tenant = req.tenant().unwrap_or(""),
                    op,
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
