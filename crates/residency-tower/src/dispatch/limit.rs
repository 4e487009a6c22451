//! A region's fair concurrency limit: each tenant's share of the region's
//! permits ([`TenantShare`], refused at once when over it), then the permits
//! themselves (`permits.rs`, waited for). The breaker
//! sits between the two, so that an open circuit fails fast without waiting
//! for a permit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use residency_store::{Outcome, StoreError};
use tower::Service;

use super::call::RegionRequest;
use crate::fair::{OwnedShareGuard, TenantShare};
use crate::metrics::RegionMetrics;

/// Refuses a tenant's call over its share of a region's permits.
#[derive(Clone, Debug)]
pub(crate) struct TenantShareLayer {
    share: Arc<TenantShare>,
    metrics: Arc<RegionMetrics>,
}

impl TenantShareLayer {
    /// `fraction` of `permits` per tenant in the region `metrics` counts.
    pub(crate) fn new(metrics: Arc<RegionMetrics>, permits: usize, fraction: f64) -> Self {
        Self {
            share: Arc::new(TenantShare::new(permits, fraction)),
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for TenantShareLayer {
    type Service = TenantShareLimit<S>;

    fn layer(&self, inner: S) -> TenantShareLimit<S> {
        TenantShareLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`TenantShareLayer`].
#[derive(Clone, Debug)]
pub(crate) struct TenantShareLimit<S> {
    inner: S,
    layer: TenantShareLayer,
}

impl<S> Service<RegionRequest> for TenantShareLimit<S>
where
    S: Service<RegionRequest, Response = Outcome, Error = StoreError>,
{
    type Response = Outcome;
    type Error = StoreError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RegionRequest) -> Self::Future {
        let TenantShareLayer { share, metrics } = &self.layer;
        let guard = match (&req.tenant, share.limit()) {
            (Some(tenant), Some(limit)) => match share.try_enter_owned(*tenant) {
                Some(g) => Some(g),
                None => {
                    metrics.error("SlowDown");
                    return ResponseFuture::Refused {
                        error: Some(StoreError::Backend {
                            code: Some("SlowDown".into()),
                            status: Some(503),
                            message: format!(
                                "this tenant already has {limit} calls in region {}, its share: please reduce your request rate",
                                metrics.region()
                            ),
                        }),
                    };
                }
            },
            _ => None,
        };
        ResponseFuture::Inner {
            fut: self.inner.call(req),
            _guard: guard,
        }
    }
}

pin_project! {
    /// The share's response future: holds the tenant's place until the call
    /// ends.
    #[project = Proj]
    pub(crate) enum ResponseFuture<F> {
        /// Over the tenant's share: refused before anything was sent.
        Refused { error: Option<StoreError> },
        /// Counted in the tenant's share.
        Inner { #[pin] fut: F, _guard: Option<OwnedShareGuard> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Outcome, StoreError>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Refused { error } => Poll::Ready(Err(error.take().expect("polled after ready"))),
            Proj::Inner { fut, .. } => fut.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use residency_policy::Ruleset;
    use residency_store::Operation;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::fair::TenantKey;

    #[tokio::test]
    async fn the_request_names_the_tenant() {
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
        let layer = TenantShareLayer::new(Arc::new(RegionMetrics::new("eu".into())), 2, 0.5);
        let share = layer.share.clone();
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
        let req = |tenant| RegionRequest {
            op: Operation::Delete { key: "k".into() },
            tenant,
            body: None,
        };
        // Without a tenant: not counted.
        svc.clone().oneshot(req(None)).await.unwrap();
        assert_eq!(share.in_flight("acme"), 0);
        let held = tokio::spawn(
            svc.clone()
                .oneshot(req(Some(TenantKey::of(rules.tenants().tenant(acme).id())))),
        );
        started.notified().await;
        assert_eq!(share.in_flight("acme"), 1);
        let err = svc
            .clone()
            .oneshot(req(Some(TenantKey::of(rules.tenants().tenant(acme).id()))))
            .await
            .unwrap_err();
        assert_eq!(err.s3_code(), "SlowDown");
        release.notify_one();
        held.await.unwrap().unwrap();
        assert_eq!(share.in_flight("acme"), 0);
    }
}
