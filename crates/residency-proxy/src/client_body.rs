//! A client's request body as the sidecar reads it, bounded in idle time and
//! in rate, so that a client that stops sending (or trickles) cannot hold a
//! request, its permits and its region forever.
//!
//! Only time spent waiting for the client counts: from the moment a read of
//! the body finds nothing to the moment bytes arrive. When the sidecar does
//! not read (the region is slow to take the body, which the backend's own
//! `stall_timeout_secs` bounds), the client is not blamed.
//!
//! - idle: one wait longer than `idle` fails the body;
//! - rate: after a first `idle` of waiting (the grace), each further window
//!   of `idle` spent waiting must bring `min_rate × idle` bytes.
//!
//! A failure is recorded in the [`ClientTimeout`] flag the server reads to
//! answer `400 RequestTimeout` whatever layer saw the body fail.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long and how slowly a client may send its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Longest wait for the next byte; also the grace and the rate window.
    pub(crate) idle: Duration,
    /// Slowest rate accepted after the grace, in bytes per second.
    pub(crate) min_rate: u64,
}

/// Set once the client's body failed one of its limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientTimeout(Arc<AtomicBool>);

impl ClientTimeout {
    /// Whether the body failed a limit.
    pub(crate) fn fired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a client body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBodyError {
    /// No byte for `idle`.
    #[error("the client sent no body bytes for {0:?}")]
    Idle(Duration),
    /// Too few bytes in a window.
    #[error("the client sent {bytes} body bytes in {window:?}, under the minimum rate of {min_rate} bytes per second")]
    TooSlow {
        /// Bytes received in the window.
        bytes: u64,
        /// The window.
        window: Duration,
        /// The minimum rate.
        min_rate: u64,
    },
}

/// A request body under [`BodyLimits`], optionally preceded by bytes already
/// read off it (a form's fields, read to check them first).
pub(crate) struct ClientBody<B> {
    inner: B,
    prefix: Option<Bytes>,
    limits: BodyLimits,
    flag: ClientTimeout,
    sleep: Pin<Box<Sleep>>,
    /// When the current wait for the client began (the idle bound).
    waiting_since: Option<Instant>,
    /// Up to when the current wait is counted in the grace or window.
    accounted: Option<Instant>,
    /// Waiting time left in the grace.
    grace_left: Duration,
    /// Waiting time and bytes of the current rate window.
    window_waited: Duration,
    window_bytes: u64,
    failed: bool,
}

impl<B> ClientBody<B> {
    pub(crate) fn new(inner: B, limits: BodyLimits, flag: ClientTimeout) -> Self {
        ClientBody {
            inner,
            prefix: None,
            limits,
            flag,
            sleep: Box::pin(tokio::time::sleep(limits.idle)),
            waiting_since: None,
            accounted: None,
            grace_left: limits.idle,
            window_waited: Duration::ZERO,
            window_bytes: 0,
            failed: false,
        }
    }

    /// Sends `prefix` (bytes already read off the body) before the rest.
    pub(crate) fn set_prefix(&mut self, prefix: Bytes) {
        if !prefix.is_empty() {
            self.prefix = Some(prefix);
        }
    }

    /// Counts `d` of waiting: first against the grace, then the window.
    fn waited(&mut self, mut d: Duration) {
        if !self.grace_left.is_zero() {
            let g = d.min(self.grace_left);
            self.grace_left -= g;
            d -= g;
            if self.grace_left.is_zero() {
                // Bytes of the grace do not count towards the first window.
                self.window_bytes = 0;
            }
        }
        self.window_waited += d;
    }

    /// Checks a window that is complete; starts the next one.
    fn end_window(&mut self) -> Result<(), ClientBodyError> {
        let window = self.limits.idle;
        if self.window_waited < window {
            return Ok(());
        }
        let want = self
            .limits
            .min_rate
            .saturating_mul(window.as_secs_f64().ceil() as u64);
        if self.window_bytes < want {
            return Err(ClientBodyError::TooSlow {
                bytes: self.window_bytes,
                window,
                min_rate: self.limits.min_rate,
            });
        }
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        Ok(())
    }

    fn fail(&mut self, e: ClientBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.flag.0.store(true, Ordering::Relaxed);
        metrics::counter!("residency_rejected_total", "reason" => "client_body_timeout")
            .increment(1);
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.waiting_since = None;
                    if let Some(acc) = this.accounted.take() {
                        this.waited(acc.elapsed());
                    }
                    if let Some(d) = frame.data_ref() {
                        this.window_bytes += d.len() as u64;
                    }
                    if let Err(e) = this.end_window() {
                        return this.fail(e);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(other) => {
                    this.waiting_since = None;
                    this.accounted = None;
                    return Poll::Ready(other.map(|r| r.map_err(Into::into)));
                }
                Poll::Pending => {}
            }
            let now = Instant::now();
            let since = *this.waiting_since.get_or_insert(now);
            let accounted = *this.accounted.get_or_insert(now);
            let idle_deadline = since + this.limits.idle;
            if now >= idle_deadline {
                return this.fail(ClientBodyError::Idle(this.limits.idle));
            }
            let phase_left = if this.grace_left.is_zero() {
                this.limits.idle.saturating_sub(this.window_waited)
            } else {
                this.grace_left
            };
            let phase_deadline = accounted + phase_left;
            if now >= phase_deadline {
                // The grace or a rate window ended during this wait.
                this.waited(now - accounted);
                this.accounted = Some(now);
                if let Err(e) = this.end_window() {
                    return this.fail(e);
                }
                continue;
            }
            this.sleep.as_mut().reset(idle_deadline.min(phase_deadline));
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && (self.failed || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        let p = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        if p > 0 {
            let lower = h.lower() + p;
            let upper = h.upper().map(|u| u + p);
            h = SizeHint::default();
            h.set_lower(lower);
            if let Some(u) = upper {
                h.set_upper(u);
            }
        }
        h
    }
}
