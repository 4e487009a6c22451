//! Bodies on their way to and from a region: counted into
//! `residency_bytes_total`, and a client's body checked by its caller's
//! [`BodyChecks`] and watched for its end (the upload-response timeout starts
//! there) and its failure (which says nothing about the region's health), in
//! one wrapper.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use residency_store::{Body, BodyStream, BoxError};

use crate::metrics as m;
use crate::request::BodyChecks;

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

/// A client's body on its way to a region, wrapped once: the caller's
/// checks, the byte count into `residency_bytes_total`, and the returned
/// watch told of its failure or its end.
pub(crate) fn counted_in(
    body: Body,
    metrics: &m::RegionMetrics,
    checks: Option<Box<dyn BodyChecks>>,
) -> (Body, Arc<BodyWatch>) {
    let watch = Arc::new(BodyWatch::default());
    let len = body.len_hint();
    let stream = ClientBody {
        inner: body.into_stream(),
        counter: metrics.bytes(m::Direction::In),
        watch: watch.clone(),
        checks,
        len,
        seen: 0,
        held: None,
        done: false,
    };
    (Body::from_stream(stream, len), watch)
}

struct ClientBody {
    inner: BodyStream,
    counter: metrics::Counter,
    watch: Arc<BodyWatch>,
    checks: Option<Box<dyn BodyChecks>>,
    len: Option<u64>,
    seen: u64,
    /// The last chunk, held until the client's stream ends (with checks).
    held: Option<Bytes>,
    done: bool,
}

impl ClientBody {
    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.done = true;
        self.held = None;
        self.watch.failed.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for ClientBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    this.counter.increment(chunk.len() as u64);
                    this.seen += chunk.len() as u64;
                    if let Some(checks) = &mut this.checks {
                        if let Err(e) = checks.chunk(&chunk) {
                            return this.fail(e);
                        }
                    }
                    let chunk = match this.held.take() {
                        // More than announced: pass it on (the backend refuses it).
                        Some(prev) => {
                            let mut b = Vec::with_capacity(prev.len() + chunk.len());
                            b.extend_from_slice(&prev);
                            b.extend_from_slice(&chunk);
                            Bytes::from(b)
                        }
                        None => chunk,
                    };
                    if this.len.is_some_and(|n| this.seen >= n) {
                        if this.checks.is_some() {
                            // The last byte: first see the client's stream end.
                            this.held = Some(chunk);
                            continue;
                        }
                        // A consumer that knows the length stops polling after
                        // the last byte: that is the end too.
                        this.watch.ended.notify_one();
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    if let Some(checks) = &mut this.checks {
                        checks.failed(&e);
                    }
                    return this.fail(e);
                }
                None => {
                    this.done = true;
                    if let Some(checks) = &mut this.checks {
                        if let Err(e) = checks.end() {
                            return this.fail(e);
                        }
                    }
                    // notify_one keeps the signal for a waiter that comes later.
                    this.watch.ended.notify_one();
                    return Poll::Ready(this.held.take().map(Ok));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Fails at the end (a trailing checksum that does not match) or when a
    /// chunk would pass `max` bytes.
    struct Checks {
        max: u64,
        seen: u64,
        end_ok: bool,
    }

    impl BodyChecks for Checks {
        fn chunk(&mut self, chunk: &Bytes) -> Result<(), BoxError> {
            self.seen += chunk.len() as u64;
            if self.seen > self.max {
                return Err("too large".into());
            }
            Ok(())
        }
        fn end(&mut self) -> Result<(), BoxError> {
            if self.end_ok {
                Ok(())
            } else {
                Err("bad trailer".into())
            }
        }
        fn failed(&mut self, _: &BoxError) {}
    }

    fn body(chunks: &[&'static str]) -> Body {
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        let items: Vec<Result<Bytes, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Body::from_stream(futures::stream::iter(items), Some(len))
    }

    async fn drain(body: Body) -> (Vec<Bytes>, Option<String>) {
        let mut stream = body.into_stream();
        let (mut got, mut err) = (Vec::new(), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => got.push(b),
                Err(e) => err = Some(e.to_string()),
            }
        }
        (got, err)
    }

    fn metrics() -> m::RegionMetrics {
        m::RegionMetrics::new("eu".into())
    }

    #[tokio::test]
    async fn a_body_that_fails_its_end_check_never_passes_its_last_chunk() {
        let checks = Checks {
            max: 100,
            seen: 0,
            end_ok: false,
        };
        let (b, watch) = counted_in(body(&["ab", "cd"]), &metrics(), Some(Box::new(checks)));
        let (got, err) = drain(b).await;
        assert_eq!(
            got,
            vec![Bytes::from_static(b"ab")],
            "the last chunk is held back"
        );
        assert_eq!(err.as_deref(), Some("bad trailer"));
        assert!(watch.failed());
    }

    #[tokio::test]
    async fn a_body_that_passes_its_checks_arrives_whole_and_ends() {
        let checks = Checks {
            max: 100,
            seen: 0,
            end_ok: true,
        };
        let (b, watch) = counted_in(body(&["ab", "cd"]), &metrics(), Some(Box::new(checks)));
        let (got, err) = drain(b).await;
        assert_eq!(got.concat(), b"abcd");
        assert_eq!(err, None);
        assert!(!watch.failed());
        // The end was signalled (notify_one keeps it for a later waiter).
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.ended())
            .await
            .expect("ended");
    }

    #[tokio::test]
    async fn a_chunk_over_the_bound_ends_the_body_with_the_checks_error() {
        let checks = Checks {
            max: 3,
            seen: 0,
            end_ok: true,
        };
        let (b, watch) = counted_in(
            body(&["ab", "cd", "ef"]),
            &metrics(),
            Some(Box::new(checks)),
        );
        let (got, err) = drain(b).await;
        assert_eq!(got, vec![Bytes::from_static(b"ab")]);
        assert_eq!(err.as_deref(), Some("too large"));
        assert!(watch.failed());
    }
}
