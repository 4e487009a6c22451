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
//!
//! Handles are registered on first use of each label set and then kept (per
//! ruleset snapshot for the request counters, per region for the backend
//! metrics), so a request costs no registry lookup. They are kept for the
//! recorder in force at first use; under another recorder (a thread-local
//! one, or a global one installed after the first request) metrics are
//! registered on each use as before. (A recorder that drops idle metrics
//! would lose increments made through a handle kept across the drop; the
//! sidecar's Prometheus exporter sets no idle timeout.)

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Histogram};
use residency_policy::{CategoryId, Policy, RegionId};
use residency_store::OpKind;

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

/// The address of the recorder in force on this thread now: handles cached
/// under one recorder must not be used under another.
fn recorder_id() -> usize {
    metrics::with_recorder(|r| (r as *const dyn metrics::Recorder).cast::<()>() as usize)
}

/// Whether handles cached for `owner` may be used now. The first recorder
/// seen owns the cache; under any other recorder (a thread-local one in a
/// test, or the global one installed after the first request) callers
/// register afresh, uncached, so no increment is ever lost.
fn owns(owner: &OnceLock<usize>) -> bool {
    let now = recorder_id();
    *owner.get_or_init(|| now) == now
}

/// Handles filled in on first use.
type Slots<H> = Box<[OnceLock<H>]>;

fn slots<H>(n: usize) -> Slots<H> {
    (0..n).map(|_| OnceLock::new()).collect()
}

/// Metric handles registered once per label set and reused: a registration
/// builds a label vector and looks it up in the recorder's registry, which
/// showed in the per-request profile. Slots fill on first use, so only label
/// sets that occur are ever registered (as before: nothing new on /metrics).
pub(crate) struct HandleTable<H> {
    owner: OnceLock<usize>,
    slots: Slots<H>,
}

impl<H> HandleTable<H> {
    /// A table of `n` slots.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            owner: OnceLock::new(),
            slots: slots(n),
        }
    }

    /// Runs `f` on the handle in `slot`, registered by `register` on first
    /// use (and every time, uncached, when the slot is out of range or
    /// another recorder is in force).
    pub(crate) fn with<R>(
        &self,
        slot: usize,
        register: impl FnOnce() -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
        match self.slots.get(slot) {
            Some(s) if owns(&self.owner) => f(s.get_or_init(register)),
            _ => f(&register()),
        }
    }
}

/// Where a decided request goes, as the `region` label says it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RegionLabel {
    /// Denied: `none`.
    Denied,
    /// Several regions: `any`.
    Any,
    /// One region: its id.
    One(RegionId),
}

/// The request counters of one ruleset snapshot (their labels name its
/// categories and regions, so a reload starts a new set).
pub(crate) struct RuleMetrics {
    owner: OnceLock<usize>,
    /// Category slots per op: the policy's categories and `none`.
    categories: usize,
    /// Region slots per row: `none`, `any` and the policy's regions.
    regions: usize,
    /// `residency_requests_total`, one row per (op, category), filled in
    /// lazily (most combinations never occur).
    requests: Slots<Slots<Counter>>,
    /// `residency_out_of_locality_total`, by category.
    out_of_locality: Slots<Counter>,
}

impl RuleMetrics {
    pub(crate) fn new(policy: &Policy) -> Self {
        let categories = policy.categories().len() + 1;
        Self {
            owner: OnceLock::new(),
            categories,
            regions: policy.regions().len() + 2,
            requests: slots(OpKind::ALL.len() * categories),
            out_of_locality: slots(categories - 1),
        }
    }

    /// Counts one decision in `residency_requests_total`.
    pub(crate) fn request(
        &self,
        policy: &Policy,
        op: OpKind,
        category: Option<CategoryId>,
        region: RegionLabel,
    ) {
        let register = || {
            let category = category.map_or(Label::Static("none"), |c| {
                Label::Shared(policy.category(c).shared_id())
            });
            let (region, decision) = match region {
                RegionLabel::Denied => (Label::Static("none"), "deny"),
                RegionLabel::Any => (Label::Static("any"), "allow"),
                RegionLabel::One(r) => (Label::Shared(policy.region(r).shared_id()), "allow"),
            };
            metrics::counter!(
                REQUESTS_TOTAL,
                "op" => op.as_str(),
                "category" => category,
                "region" => region,
                "decision" => decision
            )
        };
        let cat = category.map_or(0, |c| c.index() + 1);
        let col = match region {
            RegionLabel::Denied => 0,
            RegionLabel::Any => 1,
            RegionLabel::One(r) => 2 + r.index(),
        };
        // Out of range only for ids of another ruleset (never passed here).
        let row = (cat < self.categories && col < self.regions)
            .then(|| self.requests.get(op as usize * self.categories + cat))
            .flatten();
        match row {
            Some(row) if owns(&self.owner) => {
                let row = row.get_or_init(|| slots(self.regions));
                row[col].get_or_init(register).increment(1);
            }
            _ => register().increment(1),
        }
    }

    /// Counts a write placed outside the tenant's locality.
    pub(crate) fn out_of_locality(&self, policy: &Policy, category: CategoryId) {
        let register = || {
            metrics::counter!(
                OUT_OF_LOCALITY_TOTAL,
                "category" => Label::Shared(policy.category(category).shared_id())
            )
        };
        match self.out_of_locality.get(category.index()) {
            Some(s) if owns(&self.owner) => s.get_or_init(register).increment(1),
            _ => register().increment(1),
        }
    }
}

pub(crate) fn denied(reason: &'static str) {
    metrics::counter!(DENIED_TOTAL, "reason" => reason).increment(1);
}

/// A request refused because the tenant directory could not answer, counted
/// with the denials (`directory_unavailable`, `directory_record_invalid`).
pub(crate) fn directory_failed(e: &residency_directory::DirectoryError) {
    denied(match e {
        residency_directory::DirectoryError::Unavailable(_) => "directory_unavailable",
        residency_directory::DirectoryError::Refused { .. } => "directory_record_invalid",
    });
}

/// S3 error codes whose `residency_backend_errors_total` handles are cached
/// (the codes of the store's own errors); any other code is registered on
/// each use.
const CACHED_CODES: [&str; 12] = [
    "NoSuchKey",
    "NoSuchUpload",
    "InvalidArgument",
    "InvalidRange",
    "BadDigest",
    "InvalidDigest",
    "IncompleteBody",
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "ServiceUnavailable",
    "InternalError",
];

/// Which way body bytes went, for `residency_bytes_total`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    /// Written to the region.
    In,
    /// Read from it.
    Out,
}

impl std::fmt::Debug for RegionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RegionMetrics").field(&self.region).finish()
    }
}

/// One region's backend metrics, with their handles cached.
pub(crate) struct RegionMetrics {
    region: Arc<str>,
    /// `residency_backend_duration_seconds`, by op.
    durations: HandleTable<Histogram>,
    /// `residency_backend_errors_total`, by [`CACHED_CODES`].
    errors: HandleTable<Counter>,
    /// `residency_bytes_total`: in, out.
    bytes: HandleTable<Counter>,
}

impl RegionMetrics {
    pub(crate) fn new(region: Arc<str>) -> Self {
        Self {
            region,
            durations: HandleTable::new(OpKind::ALL.len()),
            errors: HandleTable::new(CACHED_CODES.len()),
            bytes: HandleTable::new(2),
        }
    }

    /// The region these metrics are labelled with.
    pub(crate) fn region(&self) -> &Arc<str> {
        &self.region
    }

    /// Records a backend call's duration and, if it failed, its S3 error code.
    pub(crate) fn backend_call(&self, op: OpKind, seconds: f64, error: Option<&str>) {
        self.durations.with(
            op as usize,
            || {
                metrics::histogram!(
                    BACKEND_DURATION_SECONDS,
                    "region" => Label::Shared(self.region.clone()),
                    "op" => op.as_str()
                )
            },
            |h| h.record(seconds),
        );
        if let Some(code) = error {
            self.error(code);
        }
    }

    /// Counts one failure with this S3 error code.
    pub(crate) fn error(&self, code: &str) {
        match CACHED_CODES.iter().position(|c| *c == code) {
            Some(i) => self.errors.with(
                i,
                || {
                    metrics::counter!(
                        BACKEND_ERRORS_TOTAL,
                        "region" => Label::Shared(self.region.clone()),
                        "code" => CACHED_CODES[i]
                    )
                },
                |c| c.increment(1),
            ),
            None => metrics::counter!(
                BACKEND_ERRORS_TOTAL,
                "region" => Label::Shared(self.region.clone()),
                "code" => code.to_owned()
            )
            .increment(1),
        }
    }

    /// The `residency_bytes_total` counter for one direction (a body stream
    /// keeps it while it runs).
    pub(crate) fn bytes(&self, direction: Direction) -> Counter {
        let (slot, label) = match direction {
            Direction::In => (0, "in"),
            Direction::Out => (1, "out"),
        };
        self.bytes.with(
            slot,
            || {
                metrics::counter!(
                    BYTES_TOTAL,
                    "region" => Label::Shared(self.region.clone()),
                    "direction" => label
                )
            },
            Counter::clone,
        )
    }
}
