//! One region: its backend behind a stack of small layers.
//!
//! ```text
//! Breaker            an open circuit: 503 at once, nothing sent
//!   FairLimit        a tenant over its share: 503 SlowDown at once;
//!                    else waits for one of the region's permits
//!     Instrument     duration and error code per call
//!       UploadResponseTimeout  a hung region answers within the bound
//!         BackendService       the region's `Backend`
//! ```
//!
//! Every layer is ready at once (the permit is awaited inside the call's
//! future), so a slow or stalled region queues its own calls and never holds
//! back another region's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use residency_store::{Backend, OpKind, Outcome, StoreError};
// tokio's clock, as the breaker's.
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};

use super::breaker::{Breaker, BreakerLayer};
use super::call::RegionRequest;
use super::limit::{FairLimit, FairLimitLayer};
use super::timeout::{UploadResponseTimeout, UploadResponseTimeoutLayer};
use crate::error::RoutingError;
use crate::metrics::RegionMetrics;

/// The region's backend as a service.
#[derive(Clone)]
pub(crate) struct BackendService(Arc<dyn Backend>);

impl Service<RegionRequest> for BackendService {
    type Response = Outcome;
    type Error = StoreError;
    type Future = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        let backend = self.0.clone();
        Box::pin(async move { residency_store::execute(&*backend, req.op).await })
    }
}

/// Records each call's duration and error code (`residency_backend_*`).
#[derive(Clone)]
pub(crate) struct Instrument<S> {
    inner: S,
    metrics: Arc<RegionMetrics>,
}

impl<S> Service<RegionRequest> for Instrument<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError>,
{
    type Response = Outcome;
    type Error = StoreError;
    type Future = InstrumentFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        InstrumentFuture {
            op: req.op.kind(),
            start: Instant::now(),
            metrics: self.metrics.clone(),
            fut: self.inner.call(req),
        }
    }
}

pin_project! {
    /// [`Instrument`]'s response future.
    pub(crate) struct InstrumentFuture<F> {
        #[pin]
        fut: F,
        op: OpKind,
        start: Instant,
        metrics: Arc<RegionMetrics>,
    }
}

impl<F> Future for InstrumentFuture<F>
where
    F: Future<Output = Result<Outcome, StoreError>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.fut.poll(cx));
        this.metrics.backend_call(
            *this.op,
            this.start.elapsed().as_secs_f64(),
            result.as_ref().err().map(StoreError::s3_code),
        );
        Poll::Ready(result)
    }
}

type Stack = Breaker<FairLimit<Instrument<UploadResponseTimeout<BackendService>>>>;

/// How each region's stack is configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StackConfig {
    pub(crate) concurrency: usize,
    pub(crate) tenant_share: f64,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) upload_response_timeout: Duration,
}

/// A configured region.
pub(crate) struct Region {
    pub(crate) name: Arc<str>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) metrics: Arc<RegionMetrics>,
    /// Locked only while a call's future is built (no layer awaits in
    /// `call`): cheaper than cloning the stack's eight `Arc`s per call.
    stack: std::sync::Mutex<Stack>,
}

impl Region {
    pub(crate) fn new(name: Arc<str>, backend: Arc<dyn Backend>, config: StackConfig) -> Self {
        let metrics = Arc::new(RegionMetrics::new(name.clone()));
        let stack = ServiceBuilder::new()
            .layer(BreakerLayer::new(
                metrics.clone(),
                config.breaker_threshold,
                config.breaker_cooldown,
            ))
            .layer(FairLimitLayer::new(
                metrics.clone(),
                config.concurrency,
                config.tenant_share,
            ))
            .layer_fn(|inner| Instrument {
                inner,
                metrics: metrics.clone(),
            })
            .layer(UploadResponseTimeoutLayer::new(
                name.clone(),
                config.upload_response_timeout,
            ))
            .service(BackendService(backend.clone()));
        Self {
            name,
            backend,
            metrics,
            stack: std::sync::Mutex::new(stack),
        }
    }

    /// Sends one call through the region's stack.
    ///
    /// # Errors
    /// The backend's error, or a layer's refusal, from this region.
    pub(crate) async fn call(&self, req: RegionRequest) -> Result<Outcome, RoutingError> {
        let fut = {
            let mut svc = self.stack.lock().unwrap_or_else(|p| p.into_inner());
            // Every layer is ready at once (the permit is awaited in the
            // call's future): a waker that is never woken is enough.
            match svc.poll_ready(&mut Context::from_waker(std::task::Waker::noop())) {
                Poll::Ready(Ok(())) => svc.call(req),
                Poll::Ready(Err(source)) => return Err(self.error(source)),
                Poll::Pending => {
                    return Err(self.error(StoreError::unavailable(
                        "the region's stack was not ready (a layer that waits in poll_ready?)",
                    )))
                }
            }
        };
        fut.await.map_err(|source| self.error(source))
    }

    fn error(&self, source: StoreError) -> RoutingError {
        RoutingError::Store {
            region: self.name.to_string(),
            source,
        }
    }
}
