//! The breaker's service: admits a call or fails it fast, then reports the
//! answer's class.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use residency_store::{Outcome, StoreError};
use tower::Service;

use super::consecutive_failures::{Admitted, Class, ConsecutiveFailures};
use crate::dispatch::call::RegionRequest;
use crate::dispatch::limit::is_share_refusal;
use crate::dispatch::watch::BodyWatch;
use crate::metrics::RegionMetrics;

/// A region's service behind its circuit breaker.
#[derive(Clone, Debug)]
pub(crate) struct Breaker<S> {
    inner: S,
    state: Arc<ConsecutiveFailures>,
    metrics: Arc<RegionMetrics>,
}

impl<S> Breaker<S> {
    pub(super) fn new(
        inner: S,
        state: Arc<ConsecutiveFailures>,
        metrics: Arc<RegionMetrics>,
    ) -> Self {
        Self {
            inner,
            state,
            metrics,
        }
    }
}

impl<S> Service<RegionRequest> for Breaker<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError>,
{
    type Response = Outcome;
    type Error = StoreError;
    type Future = ResponseFuture<S::Future>;

    /// The inner service's readiness. In a region's stack that is always
    /// ready (the permit is awaited inside the call's future, after
    /// admission), so an open circuit fails fast without waiting for one.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        match self.state.admit() {
            Ok(admitted) => ResponseFuture::Admitted {
                client_body: req.body.clone(),
                fut: self.inner.call(req),
                admitted: Some(admitted),
            },
            Err(wait) => {
                // Counted as what the caller gets, so that "region down"
                // alerts keep firing while the circuit spares the backend.
                self.metrics.error("ServiceUnavailable");
                let region = self.metrics.region();
                ResponseFuture::Open {
                    error: Some(StoreError::unavailable(if wait.is_zero() {
                        format!("region {region} is failing: a probe call is testing it")
                    } else {
                        format!(
                            "region {region} is failing: its circuit is open for {} ms more",
                            wait.as_millis()
                        )
                    })),
                }
            }
        }
    }
}

pin_project! {
    /// The breaker's response future.
    #[project = Proj]
    pub(crate) enum ResponseFuture<F> {
        /// The circuit is open: failed before anything was sent.
        Open { error: Option<StoreError> },
        /// Admitted: reports the answer's class when it comes.
        Admitted {
            #[pin]
            fut: F,
            admitted: Option<Admitted>,
            client_body: Option<Arc<BodyWatch>>,
        },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Outcome, StoreError>>,
{
    type Output = Result<Outcome, StoreError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Open { error } => Poll::Ready(Err(error.take().expect("polled after ready"))),
            Proj::Admitted {
                fut,
                admitted,
                client_body,
            } => {
                let result = std::task::ready!(fut.poll(cx));
                let class = match &result {
                    // The client's own body failed: the backend's error is
                    // the client's doing and says nothing about the region.
                    Err(_) if client_body.as_ref().is_some_and(|w| w.failed()) => Class::Unknown,
                    // The tenant was over its share: the region was not asked.
                    Err(e) if is_share_refusal(e) => Class::Unknown,
                    Err(e) if e.is_unavailable() => Class::Unavailable,
                    Err(_) | Ok(_) => Class::Answered,
                };
                if let Some(a) = admitted.take() {
                    a.report(class);
                }
                Poll::Ready(result)
            }
        }
    }
}
