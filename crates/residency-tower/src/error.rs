//! Why the routing layer refused or failed a request.

use residency_store::StoreError;

/// A request refused by policy before anything was sent to a backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("denied ({reason}): {detail}")]
pub struct Denied {
    /// Stable reason label (`unknown_tenant`, `feature_disabled`, `out_of_locality`,
    /// `category_conflict`, `unclassified`, `unknown_category`, `invalid_upload_id`,
    /// `cross_region_copy`, `no_tenant`).
    pub reason: &'static str,
    /// One line of why.
    pub detail: String,
}

impl Denied {
    /// The reason of a multipart step whose upload id is unknown, forged or
    /// another tenant's: answered as S3's `NoSuchUpload` (404), not a denial.
    pub const INVALID_UPLOAD_ID: &'static str = "invalid_upload_id";

    /// The S3 error code and HTTP status a denial is answered with.
    fn s3_answer(&self) -> (&'static str, u16) {
        if self.reason == Self::INVALID_UPLOAD_ID {
            ("NoSuchUpload", 404)
        } else {
            ("AccessDenied", 403)
        }
    }
}

/// Every way a routed operation can fail. [`RoutingError::s3_code`] and
/// [`RoutingError::http_status`] are the one table of S3 answers (the store's
/// for a backend's failure); the proxy builds its S3 errors from them.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Refused by policy; nothing happened.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The chosen region has no backend configured (a deployment error).
    #[error("region {0} has no backend configured")]
    NoBackend(String),
    /// The region's backend failed. For a region that is down this is
    /// `StoreError::Unavailable`: the request fails, it is never sent elsewhere.
    #[error("region {region}: {source}")]
    Store {
        /// The region whose backend failed.
        region: String,
        /// The backend's error.
        #[source]
        source: StoreError,
    },
    /// The object is in none of the regions the route names.
    #[error("no such key: {key}")]
    NotFound {
        /// The key, relative to the tenant.
        key: String,
    },
    /// An argument the routing layer reads itself is invalid (a listing's
    /// continuation token it did not issue): the client's error.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// The write's audit record could not be stored (durable audit mode):
    /// the write was not sent to the backend (fail closed).
    #[error("audit trail unavailable: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The tenant directory could not answer for the request's tenant
    /// (unavailable, or the tenant's record is invalid): nothing was sent
    /// to any region (fail closed).
    #[error(transparent)]
    Directory(#[from] residency_directory::DirectoryError),
}

impl RoutingError {
    /// The S3 error code to answer with.
    pub fn s3_code(&self) -> &str {
        match self {
            RoutingError::Denied(d) => d.s3_answer().0,
            RoutingError::NoBackend(_) => "ServiceUnavailable",
            RoutingError::Store { source, .. } => source.s3_code(),
            RoutingError::NotFound { .. } => "NoSuchKey",
            RoutingError::InvalidArgument { .. } => "InvalidArgument",
            RoutingError::Audit(_) => "ServiceUnavailable",
            RoutingError::Directory(e) => directory_answer(e).0,
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            RoutingError::Denied(d) => d.s3_answer().1,
            RoutingError::NoBackend(_) => 503,
            RoutingError::Store { source, .. } => source.http_status(),
            RoutingError::NotFound { .. } => 404,
            RoutingError::InvalidArgument { .. } => 400,
            RoutingError::Audit(_) => 503,
            RoutingError::Directory(e) => directory_answer(e).1,
        }
    }
}

/// The S3 answer to a directory that could not answer for a tenant: 503
/// while it is unavailable (the client may retry), 403 for a tenant whose
/// record is invalid (refused until an operator fixes it).
pub(crate) fn directory_answer(e: &residency_directory::DirectoryError) -> (&'static str, u16) {
    match e {
        residency_directory::DirectoryError::Unavailable(_) => ("ServiceUnavailable", 503),
        residency_directory::DirectoryError::Refused { .. } => ("AccessDenied", 403),
    }
}
