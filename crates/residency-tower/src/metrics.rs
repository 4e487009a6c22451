//! Metric names and recording helpers (through the `metrics` facade; install
//! any recorder, e.g. a Prometheus exporter, to collect them).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `residency_requests_total` | counter | `op`, `category`, `region`, `decision` |
//! | `residency_denied_total` | counter | `reason` |
//! | `residency_out_of_locality_total` | counter | `category` |
//! | `residency_bytes_total` | counter | `region`, `direction` (`in`: written, `out`: read) |
//! | `residency_backend_duration_seconds` | histogram | `region`, `op` |
//! | `residency_backend_errors_total` | counter | `region`, `code` |

use std::sync::Arc;

/// Requests decided, by operation, category, region and decision.
pub const REQUESTS_TOTAL: &str = "residency_requests_total";
/// Denials, by reason.
pub const DENIED_TOTAL: &str = "residency_denied_total";
/// Writes placed outside the tenant's locality, by category.
pub const OUT_OF_LOCALITY_TOTAL: &str = "residency_out_of_locality_total";
/// Body bytes moved, by region and direction.
pub const BYTES_TOTAL: &str = "residency_bytes_total";
/// Backend call latency, by region and operation.
pub const BACKEND_DURATION_SECONDS: &str = "residency_backend_duration_seconds";
/// Backend call failures, by region and S3 error code.
pub const BACKEND_ERRORS_TOTAL: &str = "residency_backend_errors_total";

/// A label value: static, or shared with the ruleset (no copy).
#[derive(Debug, Clone)]
pub enum Label {
    /// A fixed value.
    Static(&'static str),
    /// A region or category id.
    Shared(Arc<str>),
}

impl From<Label> for metrics::SharedString {
    fn from(l: Label) -> Self {
        match l {
            Label::Static(s) => metrics::SharedString::const_str(s),
            Label::Shared(a) => metrics::SharedString::from(a),
        }
    }
}

pub(crate) fn request(
    op: &'static str,
    category: Option<Arc<str>>,
    region: Label,
    decision: &'static str,
) {
    let category = category.map_or(Label::Static("none"), Label::Shared);
    metrics::counter!(
        REQUESTS_TOTAL,
        "op" => op,
        "category" => category,
        "region" => region,
        "decision" => decision
    )
    .increment(1);
}

pub(crate) fn denied(reason: &'static str) {
    metrics::counter!(DENIED_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn out_of_locality(category: Arc<str>) {
    metrics::counter!(OUT_OF_LOCALITY_TOTAL, "category" => Label::Shared(category)).increment(1);
}

pub(crate) fn backend_call(region: Arc<str>, op: &'static str, seconds: f64, error: Option<&str>) {
    metrics::histogram!(
        BACKEND_DURATION_SECONDS,
        "region" => Label::Shared(region.clone()),
        "op" => op
    )
    .record(seconds);
    if let Some(code) = error {
        metrics::counter!(
            BACKEND_ERRORS_TOTAL,
            "region" => Label::Shared(region),
            "code" => code.to_string()
        )
        .increment(1);
    }
}
