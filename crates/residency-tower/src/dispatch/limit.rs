//! A region's fair concurrency limit, one layer: a tenant over its share of
//! the region's permits ([`TenantShare`]) is refused at once (`503
//! SlowDown`), never queued; the others take one of the region's permits or
//! wait for one in FIFO order.
//!
//! It does what `tower::limit::ConcurrencyLimit` does plus the share, without
//! `ConcurrencyLimit`'s per-clone `PollSemaphore` (a boxed acquire future
//! for every clone): a free permit is taken with `try_acquire` (no
//! allocation) and only a call that must wait boxes its wait. Share and
//! permit are held by one [`Place`] (one `Arc` per call): the share and the
//! permits were two layers before, and their two guards, futures and `Arc`s
//! were a measurable part of a HEAD in `benches/layer.rs`.
//!
//! The breaker sits above this layer, so that an open circuit fails fast
//! without waiting for a permit a hung call holds; it counts this layer's
//! refusal as neither a success nor a failure of the region
//! ([`is_share_refusal`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use residency_store::{Outcome, StoreError};
use tokio::sync::Semaphore;
use tower::Service;

use super::call::RegionRequest;
use crate::fair::TenantShare;
use crate::metrics::RegionMetrics;

/// The S3 code of a call refused because its tenant is over its share.
const SHARE_REFUSAL: &str = "SlowDown";

/// Whether `e` is this layer's refusal of a tenant over its share (which
/// says nothing about the region's health).
pub(crate) fn is_share_refusal(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { code: Some(c), status: Some(503), .. } if c == SHARE_REFUSAL)
}

/// A region's permits and its tenants' shares of them.
#[derive(Debug)]
struct RegionLimit {
    permits: Semaphore,
    share: TenantShare,
    metrics: Arc<RegionMetrics>,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub(crate) struct FairLimitLayer {
    limit: Arc<RegionLimit>,
}

impl FairLimitLayer {
    /// `permits` calls at once (at least one) in the region `metrics` counts,
    /// `fraction` of them per tenant.
    pub(crate) fn new(metrics: Arc<RegionMetrics>, permits: usize, fraction: f64) -> Self {
        Self {
            limit: Arc::new(RegionLimit {
                permits: Semaphore::new(permits.max(1)),
                share: TenantShare::new(permits, fraction),
                metrics,
            }),
        }
    }
}

impl<S> tower::Layer<S> for FairLimitLayer {
    type Service = FairLimit<S>;

    fn layer(&self, inner: S) -> FairLimit<S> {
        FairLimit {
            inner,
            limit: self.limit.clone(),
        }
    }
}

/// See [`FairLimitLayer`].
#[derive(Clone, Debug)]
pub(crate) struct FairLimit<S> {
    inner: S,
    limit: Arc<RegionLimit>,
}

/// A call's place in the region: its tenant's count in the share (if
/// counted) and, once taken, one permit. Both are given back when dropped.
#[derive(Debug)]
struct Place {
    limit: Arc<RegionLimit>,
    tenant: Option<u64>,
    permit: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.permit {
            self.limit.permits.add_permits(1);
        }
        if let Some(key) = self.tenant {
            self.limit.share.leave(key);
        }
    }
}

type Waiting = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

impl<S> Service<RegionRequest> for FairLimit<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = StoreError;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        let limit = &self.limit;
        let tenant = match req.tenant {
            Some(t) => match limit.share.enter(t) {
                Some(counted) => counted,
                None => return LimitFuture::refused(limit),
            },
            None => None,
        };
        let mut place = Place {
            limit: limit.clone(),
            tenant,
            permit: false,
        };
        if let Ok(permit) = limit.permits.try_acquire() {
            permit.forget();
            place.permit = true;
            return LimitFuture::Running {
                fut: self.inner.call(req),
                _place: place,
            };
        }
        // Every permit is taken: wait for one, then call (the inner services
        // of a region stack are always ready).
        let mut inner = self.inner.clone();
        LimitFuture::Waiting {
            fut: Box::pin(async move {
                match place.limit.permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => {
                        return Err(StoreError::unavailable("the region's permits are closed"))
                    }
                }
                place.permit = true;
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                let out = inner.call(req).await;
                drop(place);
                out
            }),
        }
    }
}

pin_project! {
    /// [`FairLimit`]'s response future: holds the call's place until the
    /// call ends.
    #[project = Proj]
    pub(crate) enum LimitFuture<F> {
        /// Over the tenant's share: refused before anything was sent.
        Refused { error: Option<StoreError> },
        /// A permit was free: the call runs holding its place.
        Running { #[pin] fut: F, _place: Place },
        /// Waiting for a permit, then the call (boxed: the rare path).
        Waiting { fut: Waiting },
    }
}

impl<F> LimitFuture<F> {
    fn refused(limit: &RegionLimit) -> Self {
        limit.metrics.error(SHARE_REFUSAL);
        LimitFuture::Refused {
            error: Some(StoreError::Backend {
                code: Some(SHARE_REFUSAL.into()),
                status: Some(503),
                message: format!(
                    "this tenant already has {} calls in region {}, its share: please reduce your request rate",
                    limit.share.limit().unwrap_or_default(),
                    limit.metrics.region()
                ),
            }),
        }
    }
}

impl<F> Future for LimitFuture<F>
where
    F: Future<Output = Result<Outcome, StoreError>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Refused { error } => Poll::Ready(Err(error.take().expect("polled after ready"))),
            Proj::Running { fut, .. } => fut.poll(cx),
            Proj::Waiting { fut } => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use residency_policy::Ruleset;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::fair::TenantKey;

    #[tokio::test]
    async fn a_tenant_over_its_share_is_refused_at_once_and_its_place_given_back() {
        let rules = Arc::new(
            Ruleset::from_toml(
                include_str!("../../../../config/hosting-policy.toml"),
                "hosting-policy.toml",
                include_str!("../../../../config/tenants.example.toml"),
                "tenants.example.toml",
            )
            .unwrap(),
        );
        let acme = rules.tenants().get("acme").unwrap();
        let acme = || Some(TenantKey::of(rules.tenants().tenant(acme).id()));
        let layer = FairLimitLayer::new(Arc::new(RegionMetrics::new("eu".into())), 2, 0.5);
        let limit = layer.limit.clone();
        // A call with a tenant holds its place until released.
        let started = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let inner = tower::service_fn({
            let (started, release) = (started.clone(), release.clone());
            move |req: RegionRequest| {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    if req.tenant.is_some() {
                        started.notify_one();
                        release.notified().await;
                    }
                    Ok::<_, StoreError>(Outcome::Delete)
                }
            }
        });
        let svc = layer.layer(inner);
        // Without a tenant: not counted in a share.
        svc.clone()
            .oneshot(RegionRequest::test_delete(None))
            .await
            .unwrap();
        assert_eq!(limit.share.in_flight("acme"), 0);
        let held = tokio::spawn(svc.clone().oneshot(RegionRequest::test_delete(acme())));
        started.notified().await;
        assert_eq!(limit.share.in_flight("acme"), 1);
        assert_eq!(limit.permits.available_permits(), 1);
        let err = svc
            .clone()
            .oneshot(RegionRequest::test_delete(acme()))
            .await
            .unwrap_err();
        assert_eq!(err.s3_code(), "SlowDown");
        assert!(is_share_refusal(&err));
        assert_eq!(
            limit.permits.available_permits(),
            1,
            "a refusal takes no permit"
        );
        release.notify_one();
        held.await.unwrap().unwrap();
        assert_eq!(limit.share.in_flight("acme"), 0);
        assert_eq!(limit.permits.available_permits(), 2);
    }

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

    #[tokio::test]
    async fn at_most_n_calls_run_at_once_and_the_others_wait_their_turn() {
        let slow = Slow {
            now: Arc::default(),
            most: Arc::default(),
        };
        // The whole region to one tenant: only the permits bound it.
        let layer = FairLimitLayer::new(Arc::new(RegionMetrics::new("eu".into())), 3, 1.0);
        let svc = layer.layer(slow.clone());
        let calls = (0..10).map(|_| {
            let mut s = svc.clone();
            async move {
                s.call(RegionRequest::test_delete(Some(TenantKey::of("acme"))))
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok), "every call ran");
        assert_eq!(
            slow.most.load(Ordering::SeqCst),
            3,
            "never more than 3 at once"
        );
        assert_eq!(
            layer.limit.permits.available_permits(),
            3,
            "every permit returned"
        );
    }
}
