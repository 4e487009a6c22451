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
                    // (A region's own `503 SlowDown`, S3 throttling, lands
                    // here too: it proves neither health nor failure.)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use residency_store::{Outcome, StoreError};
    use tower::{Layer, ServiceExt};

    use crate::dispatch::breaker::BreakerLayer;
    use crate::dispatch::call::RegionRequest;
    use crate::dispatch::limit::{is_share_refusal, FairLimitLayer};
    use crate::fair::TenantKey;
    use crate::metrics::RegionMetrics;

    #[tokio::test]
    async fn the_breaker_counts_a_share_refusal_as_neither_success_nor_failure() {
        let (acme, globex) = (TenantKey::of("acme"), TenantKey::of("globex"));
        let release = Arc::new(tokio::sync::Notify::new());
        let started = Arc::new(tokio::sync::Notify::new());
        // acme's calls hang until released; globex's find the region down.
        let inner = tower::service_fn({
            let (started, release) = (started.clone(), release.clone());
            move |req: RegionRequest| {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    if req.tenant == Some(acme) {
                        started.notify_one();
                        release.notified().await;
                        Ok(Outcome::Delete)
                    } else {
                        Err(StoreError::unavailable("connection refused"))
                    }
                }
            }
        });
        let m = Arc::new(RegionMetrics::new("eu".into()));
        let svc = BreakerLayer::new(m.clone(), 2, Duration::from_secs(60))
            .layer(FairLimitLayer::new(m, 2, 0.5).layer(inner));
        // acme holds its share of one.
        let held = tokio::spawn(svc.clone().oneshot(RegionRequest::test_delete(Some(acme))));
        started.notified().await;
        let first = svc
            .clone()
            .oneshot(RegionRequest::test_delete(Some(globex)))
            .await;
        assert!(first.unwrap_err().is_unavailable(), "one failure of two");
        for _ in 0..3 {
            let refused = svc
                .clone()
                .oneshot(RegionRequest::test_delete(Some(acme)))
                .await;
            assert!(is_share_refusal(&refused.unwrap_err()));
        }
        // Had the refusals counted as the region answering, this second
        // failure would be the first again and the circuit would stay closed.
        let second = svc
            .clone()
            .oneshot(RegionRequest::test_delete(Some(globex)))
            .await;
        assert!(second.unwrap_err().is_unavailable());
        let open = svc
            .clone()
            .oneshot(RegionRequest::test_delete(Some(globex)))
            .await
            .unwrap_err();
        assert!(
            open.to_string().contains("circuit is open"),
            "the circuit opened after two failures in a row: {open}"
        );
        release.notify_one();
        held.await.unwrap().unwrap();
    }
}
