//! The upload-response timeout, as a tower layer.
//!
//! The backend bounds its own calls; an upload (put, upload part) is bounded
//! here too once its body has been sent in full, so that a hung region
//! answers `Unavailable` within the timeout rather than never. The transfer
//! itself is not bounded: a large body may take minutes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use residency_store::{Outcome, StoreError};
use tower::Service;

use super::call::RegionRequest;

/// How long a region may take to answer once an upload's body is sent.
pub(crate) const DEFAULT_UPLOAD_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds the wait for a region's answer once a client's body is sent.
#[derive(Clone, Debug)]
pub(crate) struct UploadResponseTimeoutLayer {
    region: Arc<str>,
    limit: Duration,
}

impl UploadResponseTimeoutLayer {
    pub(crate) fn new(region: Arc<str>, limit: Duration) -> Self {
        Self { region, limit }
    }
}

impl<S> tower::Layer<S> for UploadResponseTimeoutLayer {
    type Service = UploadResponseTimeout<S>;

    fn layer(&self, inner: S) -> UploadResponseTimeout<S> {
        UploadResponseTimeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`UploadResponseTimeoutLayer`].
#[derive(Clone, Debug)]
pub(crate) struct UploadResponseTimeout<S> {
    inner: S,
    layer: UploadResponseTimeoutLayer,
}

type BoxedCall = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

impl<S> Service<RegionRequest> for UploadResponseTimeout<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = StoreError;
    /// Calls without a client body are not wrapped.
    type Future = Either<S::Future, BoxedCall>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        let Some(watch) = req.body.clone() else {
            return Either::Left(self.inner.call(req));
        };
        let fut = self.inner.call(req);
        let UploadResponseTimeoutLayer { region, limit } = self.layer.clone();
        Either::Right(Box::pin(async move {
            tokio::select! {
                r = fut => r,
                () = async {
                    watch.ended().await;
                    tokio::time::sleep(limit).await;
                } => Err(StoreError::unavailable(format!(
                    "region {region} did not answer within {limit:?} of the body's end"
                ))),
            }
        }))
    }
}
