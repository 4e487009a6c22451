//! The routing service's future: a denial, or the inner service's future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use residency_store::BoxError;

use crate::error::{Denied, RoutingError};

pin_project! {
    /// Either the inner service's future or an immediate denial.
    #[project = RoutingFutureProj]
    #[allow(missing_docs)] // pin_project_lite cannot document enum fields
    pub enum RoutingFuture<F> {
        /// Refused by policy; the inner service was not called.
        Denied {
            denied: Option<Denied>,
        },
        /// Allowed; the inner service is running.
        Inner {
            #[pin]
            fut: F,
        },
    }
}

impl<F, T, E> Future for RoutingFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RoutingFutureProj::Denied { denied } => {
                let d = denied
                    .take()
                    .expect("RoutingFuture polled after completion");
                Poll::Ready(Err(Box::new(RoutingError::Denied(d))))
            }
            RoutingFutureProj::Inner { fut } => fut.poll(cx).map_err(Into::into),
        }
    }
}
