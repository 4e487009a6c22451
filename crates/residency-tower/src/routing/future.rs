//! The routing service's future: a denial, or the inner service's future.

use std::future::Future;
use std::pin::Pin as StdPin;
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
        /// Failed before a decision (the tenant directory could not
        /// answer); the inner service was not called.
        Failed {
            error: Option<BoxError>,
        },
        /// Allowed; the inner service is running.
        Inner {
            #[pin]
            fut: F,
        },
        /// Allowed write in durable audit mode: waiting for its audit record
        /// to be stored, then it calls the inner service.
        Auditing {
            start: StdPin<Box<dyn Future<Output = Result<F, BoxError>> + Send>>,
        },
    }
}

impl<F, T, E> Future for RoutingFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let RoutingFutureProj::Auditing { start } = self.as_mut().project() {
            match start.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(fut)) => self.set(RoutingFuture::Inner { fut }),
            }
        }
        match self.project() {
            RoutingFutureProj::Denied { denied } => {
                let d = denied
                    .take()
                    .expect("RoutingFuture polled after completion");
                Poll::Ready(Err(Box::new(RoutingError::Denied(d))))
            }
            RoutingFutureProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("RoutingFuture polled after completion"))),
            RoutingFutureProj::Inner { fut } => fut.poll(cx).map_err(Into::into),
            RoutingFutureProj::Auditing { .. } => unreachable!("replaced above"),
        }
    }
}
