//! The lean path's one retry policy.
//!
//! This is the only place the lean path decides to try again; the SDK path
//! has its own (the SDK's standard strategy, set in `sdk.rs`), and
//! [`S3Backend`](crate::S3Backend) above them never retries.

use std::time::Duration;

use http::StatusCode;

/// Up to `max_attempts` tries of a request whose body can be replayed, when
/// the failure is transient (no connection, or a 500/502/503/504), with a
/// short linear pause between them.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    max_attempts: u32,
}

impl RetryPolicy {
    /// At least one attempt.
    pub(super) fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
        }
    }

    /// Whether attempt `attempt` (the first is 1) is the last one.
    pub(super) fn is_last(self, attempt: u32, replayable: bool) -> bool {
        !replayable || attempt >= self.max_attempts
    }

    /// An answer worth another attempt.
    pub(super) fn is_transient(status: StatusCode) -> bool {
        matches!(status.as_u16(), 500 | 502 | 503 | 504)
    }

    /// The pause before attempt `attempt`.
    pub(super) fn backoff(attempt: u32) -> Duration {
        Duration::from_millis(50 * u64::from(attempt))
    }
}
