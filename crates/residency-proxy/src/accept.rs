//! Accepting client connections: a bound on open connections, back-off when
//! `accept` fails (out of file descriptors, say), and a bound on the time from
//! accept to the first request byte.
//!
//! - `max_connections`: a connection is served only while fewer are open;
//!   one more per listener waits accepted but unserved, the others wait,
//!   unaccepted, in the kernel's listen backlog.
//! - `accept` errors: the loop waits 5 ms, doubling to 1 s, before trying
//!   again (a failing accept otherwise spins a core), and logs at most one
//!   line a second with the number of errors it did not log. The counter
//!   `residency_accept_errors_total{listener}` counts every error.
//! - first bytes: a connection must send enough to tell its protocol (HTTP/1
//!   or the whole 24-byte HTTP/2 preface) within the header-read timeout,
//!   else it is closed; HTTP/1 then has that timeout for its head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);
const OPEN: &str = "residency_connections_open";
const ERRORS: &str = "residency_accept_errors_total";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An open client connection: counted in `residency_connections_open` and
/// in `max_connections` until dropped.
pub(crate) struct OpenConnection {
    /// `None` for a listener without a bound (nothing counted).
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            metrics::gauge!(OPEN).decrement(1.0);
        }
    }
}

/// A listener's accept loop state.
pub(crate) struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    open: Option<Arc<Semaphore>>,
    backoff: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Acceptor {
    /// The bound on open connections, `max_connections` of them, for one
    /// or more listeners ([`Acceptor::new`]).
    pub(crate) fn bound(max_connections: Option<usize>) -> Option<Arc<Semaphore>> {
        if max_connections.is_some() {
            metrics::gauge!(OPEN).set(0.0);
        }
        max_connections.map(|n| Arc::new(Semaphore::new(n)))
    }

    /// Accepts on `listener`; `open` (from [`Acceptor::bound`]) bounds the
    /// open connections, counted with those of every listener sharing it.
    pub(crate) fn new(
        listener: TcpListener,
        name: &'static str,
        open: Option<Arc<Semaphore>>,
    ) -> Acceptor {
        metrics::counter!(ERRORS, "listener" => name).absolute(0);
        Acceptor {
            listener,
            name,
            open,
            backoff: FIRST_BACKOFF,
            last_log: None,
            suppressed: 0,
        }
    }

    /// The next connection, once it may be open; errors are counted,
    /// logged (rate-limited) and waited out.
    ///
    /// The bound is taken after the accept: a connection accepted while the
    /// bound is reached waits here, unserved, and this listener accepts no
    /// other until it is served. Taken before, an idle listener would hold a
    /// share of the bound that another listener of the same address
    /// (`serve --runtime per-core`) needs for the connections queued at it.
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr, OpenConnection) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = FIRST_BACKOFF;
                    let permit = match &self.open {
                        Some(s) => Some(s.clone().acquire_owned().await.expect("never closed")),
                        None => None,
                    };
                    if permit.is_some() {
                        metrics::gauge!(OPEN).increment(1.0);
                    }
                    return (stream, peer, OpenConnection { permit });
                }
                Err(e) => {
                    metrics::counter!(ERRORS, "listener" => self.name).increment(1);
                    let now = Instant::now();
                    if self
                        .last_log
                        .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
                    {
                        tracing::warn!(
                            listener = self.name,
                            error = %e,
                            suppressed = self.suppressed,
                            backoff_ms = self.backoff.as_millis() as u64,
                            "accept failed; backing off (suppressed: errors not logged since the last line)"
                        );
                        self.last_log = Some(now);
                        self.suppressed = 0;
                    } else {
                        self.suppressed += 1;
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Waits until `stream` has sent enough to tell its protocol: any byte that
/// is not the start of the HTTP/2 preface, or the whole preface. `false`
/// when `timeout` ran out first or the client closed.
pub(crate) async fn first_bytes(stream: &TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return false,
        };
        if n == 0 {
            return false;
        }
        if buf[..n] != H2_PREFACE[..n] || n == H2_PREFACE.len() {
            return true;
        }
        // Part of the HTTP/2 preface: peek again once more may have come.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(10)))
            .await
            .is_err()
        {
            return false;
        }
    }
}
