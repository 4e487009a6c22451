//! The lean path's request body and its progress (read by the stall
//! watchdog), and the response body as a stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{Body, BodyStream};
use crate::error::{BoxError, StoreError};

/// The request body: bytes in memory (replayable) or the caller's stream,
/// checked against its declared length, its progress shared with the stall
/// watchdog.
pub(crate) enum OutBody {
    Full(Option<Bytes>),
    Stream {
        stream: BodyStream,
        expected: u64,
        sent: u64,
        progress: Arc<Progress>,
    },
}

impl OutBody {
    pub(super) fn from_body(body: Body, len: u64) -> Self {
        match body.as_bytes() {
            Some(b) => OutBody::Full(Some(b.clone())),
            None => OutBody::Stream {
                stream: body.into_stream(),
                expected: len,
                sent: 0,
                progress: Arc::new(Progress::new(len)),
            },
        }
    }

    /// The progress of a streamed body, for the watchdog.
    pub(super) fn progress(&self) -> Option<Arc<Progress>> {
        match self {
            OutBody::Full(_) => None,
            OutBody::Stream { progress, .. } => Some(progress.clone()),
        }
    }
}

/// How far a streamed request body has got: written by the body as hyper's
/// connection task polls it, read by the watchdog in [`LeanPath::watched`](super::LeanPath).
pub(crate) struct Progress {
    /// When the request was made; the start counts as progress.
    pub(super) base: Instant,
    /// Milliseconds from `base` to the last data frame handed to hyper,
    /// shifted left by 2, with the state in the low 2 bits: one word, so the
    /// watchdog never sees a new state with an old time.
    packed: AtomicU64,
    /// Bytes handed to hyper (for the error message).
    pub(super) sent: AtomicU64,
    /// The declared length.
    pub(super) expected: u64,
}

impl Progress {
    /// Hyper is taking data, or can take it but has not asked yet.
    pub(super) const SENDING: u64 = 0;
    /// The last poll found the source not ready: the client is slow, not the
    /// service.
    pub(super) const WAITING: u64 = 1;
    /// Every byte was handed to hyper.
    pub(super) const DONE: u64 = 2;

    fn new(expected: u64) -> Self {
        // An empty body: hyper sends the head and never polls the body.
        let state = if expected == 0 {
            Self::DONE
        } else {
            Self::SENDING
        };
        Self {
            base: Instant::now(),
            packed: AtomicU64::new(state),
            sent: AtomicU64::new(0),
            expected,
        }
    }

    /// A data frame was handed to hyper; `done` when it was the last.
    fn frame(&self, sent: u64, done: bool) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        let state = if done { Self::DONE } else { Self::SENDING };
        self.sent.store(sent, Ordering::Relaxed);
        self.packed.store((ms << 2) | state, Ordering::Relaxed);
    }

    /// Sets the state, keeping the time (only the body writes).
    fn set_state(&self, state: u64) {
        let v = self.packed.load(Ordering::Relaxed);
        if v & 3 != state {
            self.packed.store((v & !3) | state, Ordering::Relaxed);
        }
    }

    /// The time of the last progress and the state.
    pub(super) fn last(&self) -> (Instant, u64) {
        let v = self.packed.load(Ordering::Relaxed);
        (self.base + Duration::from_millis(v >> 2), v & 3)
    }
}

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            OutBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            OutBody::Stream {
                stream,
                expected,
                sent,
                progress,
            } => match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *sent += chunk.len() as u64;
                    if *sent > *expected {
                        return Poll::Ready(Some(Err(Box::new(StoreError::IncompleteBody {
                            expected: *expected,
                            actual: *sent,
                        }))));
                    }
                    // Hyper stops polling once the declared length is sent.
                    progress.frame(*sent, *sent == *expected);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if *sent != *expected => {
                    Poll::Ready(Some(Err(Box::new(StoreError::IncompleteBody {
                        expected: *expected,
                        actual: *sent,
                    }))))
                }
                Poll::Ready(None) => {
                    progress.set_state(Progress::DONE);
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    progress.set_state(Progress::WAITING);
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            OutBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OutBody::Stream { expected, sent, .. } => {
                SizeHint::with_exact(expected.saturating_sub(*sent))
            }
        }
    }
}

/// A response body as a stream of data chunks (trailers skipped).
pub(super) struct IncomingStream(pub(super) sync_wrapper::SyncWrapper<Incoming>);

impl Stream for IncomingStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let body = Pin::new(self.0.get_mut());
            match http_body::Body::poll_frame(body, cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
