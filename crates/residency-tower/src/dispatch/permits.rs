//! A region's permits: at most `n` calls at once in the region, the others
//! wait in FIFO order. It does what `tower::limit::ConcurrencyLimit` does,
//! without its per-clone `PollSemaphore` (a boxed acquire future allocated
//! for every clone): the region stack is cloned for every call, and the A/B
//! of `benches/layer.rs` showed that clone and acquire cost ~+20 % on a PUT
//! and +75 % on a HEAD of the in-memory dispatch. Here a free permit is taken
//! with `try_acquire_owned` (no allocation); only a call that must wait boxes
//! its wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use residency_store::{Outcome, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

use super::call::RegionRequest;

/// See the module docs.
#[derive(Clone, Debug)]
pub(crate) struct RegionPermitsLayer {
    semaphore: Arc<Semaphore>,
}

impl RegionPermitsLayer {
    /// `n` permits (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(n.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for RegionPermitsLayer {
    type Service = RegionPermits<S>;

    fn layer(&self, inner: S) -> RegionPermits<S> {
        RegionPermits {
            inner,
            semaphore: self.semaphore.clone(),
        }
    }
}

/// See [`RegionPermitsLayer`].
#[derive(Clone, Debug)]
pub(crate) struct RegionPermits<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
}

type Waiting = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

impl<S> Service<RegionRequest> for RegionPermits<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = StoreError;
    type Future = PermitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => PermitFuture::Running {
                fut: self.inner.call(req),
                _permit: permit,
            },
            Err(_) => {
                // Every permit is taken: wait for one, then call (the inner
                // services of a region stack are always ready).
                let semaphore = self.semaphore.clone();
                let mut inner = self.inner.clone();
                PermitFuture::Waiting {
                    fut: Box::pin(async move {
                        let _permit = semaphore.acquire_owned().await.map_err(|_| {
                            StoreError::unavailable("the region's permits are closed")
                        })?;
                        std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                        inner.call(req).await
                    }),
                }
            }
        }
    }
}

pin_project! {
    /// [`RegionPermits`]' response future: holds its permit until the call
    /// ends.
    #[project = Proj]
    pub(crate) enum PermitFuture<F> {
        /// A permit was free: the call runs holding it.
        Running { #[pin] fut: F, _permit: OwnedSemaphorePermit },
        /// Waiting for a permit, then the call (boxed: the rare path).
        Waiting { fut: Waiting },
    }
}

impl<F> Future for PermitFuture<F>
where
    F: Future<Output = Result<Outcome, StoreError>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Running { fut, .. } => fut.poll(cx),
            Proj::Waiting { fut } => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A backend call that takes 20 ms and counts how many run at once.
    #[derive(Clone)]
    struct Slow {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<RegionRequest> for Slow {
        type Response = Outcome;
        type Error = StoreError;
        type Future = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: RegionRequest) -> Self::Future {
            let (now, most) = (self.now.clone(), self.most.clone());
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(Outcome::Delete)
            })
        }
    }

    fn request() -> RegionRequest {
        RegionRequest {
            op: residency_store::Operation::Delete { key: "k".into() },
            tenant: None,
            body: None,
        }
    }

    #[tokio::test]
    async fn at_most_n_calls_run_at_once_and_the_others_wait_their_turn() {
        let slow = Slow {
            now: Arc::default(),
            most: Arc::default(),
        };
        let svc = tower::Layer::layer(&RegionPermitsLayer::new(3), slow.clone());
        let calls = (0..10).map(|_| {
            let mut s = svc.clone();
            async move { s.call(request()).await }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok), "every call ran");
        assert_eq!(
            slow.most.load(Ordering::SeqCst),
            3,
            "never more than 3 at once"
        );
        assert_eq!(
            svc.semaphore.available_permits(),
            3,
            "every permit returned"
        );
    }
}
