//! Bodies on their way to and from a region: counted into
//! `residency_bytes_total`, and a client's body watched for its end (the
//! upload-response timeout starts there) and its failure (which says nothing
//! about the region's health).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures::StreamExt;
use residency_store::Body;

use crate::metrics as m;

/// What became of a client's body on its way to a region.
#[derive(Debug, Default)]
pub(crate) struct BodyWatch {
    /// The body itself failed (a bad chunk signature, a client that went away).
    failed: AtomicBool,
    /// Notified when the body has been sent in full.
    ended: tokio::sync::Notify,
}

impl BodyWatch {
    /// Whether the client's body failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until the body has been sent in full.
    pub(crate) async fn ended(&self) {
        self.ended.notified().await;
    }
}

/// Counts body bytes read from a region into `residency_bytes_total` as they
/// stream.
pub(crate) fn counted(body: Body, metrics: &m::RegionMetrics) -> Body {
    let len = body.len_hint();
    let counter = metrics.bytes(m::Direction::Out);
    let stream = body.into_stream().inspect(move |chunk| {
        if let Ok(c) = chunk {
            counter.increment(c.len() as u64);
        }
    });
    Body::from_stream(stream, len)
}

/// Counts a client's body bytes on their way in, and reports its failure or
/// its end to the returned watch.
pub(crate) fn counted_in(body: Body, metrics: &m::RegionMetrics) -> (Body, Arc<BodyWatch>) {
    let watch = Arc::new(BodyWatch::default());
    let len = body.len_hint();
    let counter = metrics.bytes(m::Direction::In);
    let w = watch.clone();
    let end = watch.clone();
    let mut seen = 0u64;
    let stream = body
        .into_stream()
        .inspect(move |chunk| match chunk {
            Ok(c) => {
                counter.increment(c.len() as u64);
                seen += c.len() as u64;
                // A consumer that knows the length stops polling after the
                // last byte: that is the end too.
                if len.is_some_and(|n| seen >= n) {
                    w.ended.notify_one();
                }
            }
            Err(_) => w.failed.store(true, Ordering::Relaxed),
        })
        .chain(futures::stream::poll_fn(move |_| {
            // notify_one keeps the signal for a waiter that comes later.
            end.ended.notify_one();
            Poll::Ready(None)
        }));
    (Body::from_stream(stream, len), watch)
}
