//! `[limits]`: the bounds that protect the sidecar.

use serde::Deserialize;

use super::DEFAULT_RELOAD_MAX_TENANT_DROP_PERCENT;

/// Bounds that protect the sidecar.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests served at once; more get `503 SlowDown`.
    pub max_concurrent_requests: usize,
    /// In-flight backend calls per region.
    pub per_region_concurrency: usize,
    /// Seconds a client has to send its request headers, counted from the
    /// connection's accept: a connection that sends nothing (or only part of
    /// an HTTP/2 preface) is closed after it too.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without a byte from the client while
    /// the sidecar is reading it; then the request fails with
    /// `400 RequestTimeout` and the connection is closed. Distinct from a
    /// backend's `stall_timeout_secs` (the region not taking the body).
    pub client_body_idle_secs: u64,
    /// Slowest client body accepted, in bytes per second: after a first
    /// `client_body_idle_secs` of grace, each window of
    /// `client_body_idle_secs` spent waiting for the client must bring at
    /// least this rate, else `400 RequestTimeout`. Time the sidecar spends not
    /// reading (a region slow to take the body) does not count.
    pub client_min_bytes_per_sec: u64,
    /// Share of `per_region_concurrency` one tenant may hold or wait for in
    /// a region (0 < share <= 1); its calls over it get `503 SlowDown` at once.
    pub per_tenant_region_share: f64,
    /// Open client connections at most; further connections wait in the
    /// listen backlog (unaccepted) until one closes.
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Largest object (or part) body accepted, by its declared length
    /// (`x-amz-decoded-content-length`, else `Content-Length`); larger gets
    /// `400 EntityTooLarge` before anything is routed. Default 5 GiB, S3's
    /// single-PUT limit.
    pub max_object_bytes: u64,
    /// Largest request head (request line and headers) in bytes; larger gets
    /// `431`. At least 8192 (hyper's minimum buffer).
    pub max_header_bytes: usize,
    /// Consecutive unavailable failures of a region that open its circuit:
    /// its calls then fail fast with 503 for `circuit_cooldown_ms`, then one
    /// probe goes through. 0 disables the breaker.
    pub circuit_failures: u32,
    /// Milliseconds a region's open circuit fails fast before a probe.
    pub circuit_cooldown_ms: u64,
    /// Seconds a region has to answer an upload once its body has been sent
    /// in full; then the upload fails with 503 (a hung backend).
    pub upload_response_timeout_secs: u64,
    /// A reload that would remove more than this share (in percent) of the
    /// tenants served now is refused as invalid (the old configuration keeps
    /// serving); one that would remove every tenant is always refused.
    /// 0 to 100, default 50.
    pub reload_max_tenant_drop_percent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1024,
            per_region_concurrency: 256,
            header_read_timeout_secs: 30,
            client_body_idle_secs: 20,
            client_min_bytes_per_sec: 1024,
            per_tenant_region_share: 0.5,
            max_connections: 4096,
            shutdown_grace_secs: 30,
            max_object_bytes: 5 * 1024 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            circuit_failures: 5,
            circuit_cooldown_ms: 2_000,
            upload_response_timeout_secs: 30,
            reload_max_tenant_drop_percent: DEFAULT_RELOAD_MAX_TENANT_DROP_PERCENT,
        }
    }
}

impl Limits {
    /// The connection and client-body limits out of range, one message each.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut range = |name: &str, v: u64, lo: u64, hi: u64, unit: &str| {
            if v < lo || v > hi {
                out.push(format!(
                    "limits.{name} = {v} is out of range: give {lo} to {hi}{unit}"
                ));
            }
        };
        range(
            "client_body_idle_secs",
            self.client_body_idle_secs,
            1,
            3600,
            " seconds",
        );
        range(
            "client_min_bytes_per_sec",
            self.client_min_bytes_per_sec,
            1,
            1 << 30,
            " bytes per second",
        );
        range(
            "max_connections",
            self.max_connections as u64,
            1,
            1_000_000,
            "",
        );
        range(
            "header_read_timeout_secs",
            self.header_read_timeout_secs,
            1,
            3600,
            " seconds",
        );
        let share = self.per_tenant_region_share;
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            out.push(format!(
                "limits.per_tenant_region_share = {share} is out of range: give a fraction above 0 and at most 1 (0.5: one tenant may hold half of a region's per_region_concurrency)"
            ));
        }
        out
    }
}
