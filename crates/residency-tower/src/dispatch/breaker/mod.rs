//! A region's circuit breaker, as a tower layer (after linkerd's `breaker/`:
//! the accrual policy in its own module, the service only admits calls and
//! classifies their answers).
//!
//! Each region counts consecutive "unavailable" failures (unreachable, timed
//! out, 5xx). After `threshold` of them the region's circuit opens for
//! `cooldown`: calls fail at once with `Unavailable` (503) without touching
//! the backend, so a dead region costs its callers nothing and a hung one
//! holds no more connections. After the cooldown one probe call goes through
//! (half-open); its success closes the circuit, its failure opens it for
//! another cooldown. Other errors (not found, bad digest, access denied) say
//! the backend is alive and count as successes; a call whose client body
//! failed teaches nothing. The gauge `residency_circuit_open{region}` is 1
//! while a region's circuit is open or half-open, and
//! `residency_circuit_transitions_total{region,to}` counts state changes.

mod consecutive_failures;
mod service;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use consecutive_failures::ConsecutiveFailures;
pub(crate) use service::Breaker;

use crate::metrics::RegionMetrics;

/// Consecutive unavailable failures that open a region's circuit by default.
pub(crate) const DEFAULT_THRESHOLD: u32 = 5;
/// How long an open circuit fails fast by default before one probe.
pub(crate) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(2);

/// Wraps a region's service in its circuit breaker.
#[derive(Clone, Debug)]
pub(crate) struct BreakerLayer {
    state: Arc<ConsecutiveFailures>,
    metrics: Arc<RegionMetrics>,
}

impl BreakerLayer {
    /// A breaker for the region `metrics` counts (0 disables it).
    pub(crate) fn new(metrics: Arc<RegionMetrics>, threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Arc::new(ConsecutiveFailures::new(
                metrics.region().clone(),
                threshold,
                cooldown,
            )),
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker::new(inner, self.state.clone(), self.metrics.clone())
    }
}
