//! What the routing layer needs to know about a request, and what it attaches.

use std::sync::Arc;

use bytes::Bytes;
use residency_policy::{
    CategoryId, ClassifiedBy, RegionId, RegionOrder, Ruleset, Tenant, CATEGORY_HEADER,
};
use residency_store::{BoxError, OpKind, Operation};

use crate::handle::Resolved;

/// Where the routing layer sends an operation.
#[derive(Debug, Clone)]
pub enum Target {
    /// A write (or a multipart step): exactly this region.
    Region(RegionId),
    /// A read, delete or listing of data that may be in several regions: try
    /// (or merge) these, in order.
    Regions(RegionOrder),
}

/// The placement the layer attached to a request: which region(s), decided
/// under which ruleset snapshot, for which tenant.
#[derive(Debug, Clone)]
pub struct Route {
    /// The ruleset the decision was made under.
    pub rules: Arc<Ruleset>,
    /// The tenant, as the directory answered.
    pub tenant: Arc<Tenant>,
    /// Where to go.
    pub target: Target,
    /// The category, when the operation was classified.
    pub category: Option<CategoryId>,
    /// How it was classified.
    pub classified_by: Option<ClassifiedBy>,
    /// The backend's own upload id, for multipart steps (unwrapped from the
    /// signed id the client holds).
    pub backend_upload_id: Option<String>,
    /// The decision's reason label (`tenant_locality`, `tenant_regions`, ...).
    pub reason: &'static str,
    /// Written outside the tenant's selected region.
    pub out_of_locality: bool,
    /// The request id (for logs and the audit trail).
    pub request_id: Arc<str>,
    /// Where the tenant's keys of this request live in each regional
    /// bucket: `<tenant>/`, or `<tenant>/~bucket/<name>/` for a bucket the
    /// tenant created.
    pub prefix: Arc<str>,
    /// A multipart step whose upload the current rules no longer allow
    /// (a reload changed the placement since `CreateMultipartUpload`): the
    /// dispatch aborts the upload and answers this denial.
    pub revoked: Option<crate::Denied>,
}

impl Route {
    /// The tenant's id string (the prefix of its objects in every bucket).
    pub fn tenant_id(&self) -> &str {
        self.tenant.id()
    }

    /// The prefix of the request's keys in every regional bucket.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A region's id string.
    pub fn region_name(&self, r: RegionId) -> &str {
        self.rules.policy().region(r).id()
    }
}

/// What the routing layer reads from a request and attaches to it.
///
/// Implemented for [`StorageRequest`] (the embedded API and the sidecar's
/// S3 front-end, which parses S3 with s3s and resolves the tenant once at its
/// access check); an application may implement it for its own request type.
pub trait RoutableRequest {
    /// The tenant id, if known.
    fn tenant(&self) -> Option<&str>;
    /// The operation.
    fn op(&self) -> OpKind;
    /// The object key (a copy's destination); `None` for listings.
    fn key(&self) -> Option<&str>;
    /// The source key of a copy.
    fn source_key(&self) -> Option<&str> {
        None
    }
    /// A category named explicitly by the caller.
    fn category_hint(&self) -> Option<&str>;
    /// The payload's content type.
    fn content_type(&self) -> Option<&str>;
    /// The (signed) multipart upload id of a multipart step.
    fn upload_id(&self) -> Option<&str>;
    /// The snapshot and tenant the edge already resolved (else the layer
    /// looks the tenant up by [`RoutableRequest::tenant`]).
    fn resolved(&self) -> Option<&Resolved> {
        None
    }
    /// A request id the caller already has (else the layer makes one).
    fn request_id(&self) -> Option<&str> {
        None
    }
    /// The bucket the tenant created that the request addresses (its keys
    /// are then in that bucket's namespace); `None`: the tenant's own.
    fn created_bucket(&self) -> Option<&str> {
        self.resolved()
            .and_then(Resolved::created_bucket)
            .map(|b| b.name.as_str())
    }
    /// Attaches the route; the inner service reads it back.
    fn set_route(&mut self, route: Route);
}

/// A storage operation on behalf of a tenant: the embedded API's request.
#[derive(Debug)]
pub struct StorageRequest {
    /// Tenant id (empty when `resolved` names the tenant).
    pub tenant: String,
    /// The snapshot and tenant the caller resolved; the layer then decides
    /// under that snapshot and looks nothing up.
    pub resolved: Option<Resolved>,
    /// Explicit category, if the application knows it.
    pub category: Option<String>,
    /// The operation, with keys relative to the tenant's namespace.
    pub operation: Operation,
    /// A request id to carry into logs and the audit trail.
    pub request_id: Option<String>,
    /// Set by the routing layer.
    pub route: Option<Route>,
    /// Checks on the client's body of a put or part upload, run by the one
    /// wrapper the dispatch streams that body through (the sidecar's verify
    /// trailing checksums and bound the size); `None` checks nothing.
    pub body_checks: Option<Box<dyn BodyChecks>>,
}

impl StorageRequest {
    /// A request for `tenant`.
    pub fn new(tenant: impl Into<String>, operation: Operation) -> Self {
        Self {
            tenant: tenant.into(),
            resolved: None,
            category: None,
            operation,
            request_id: None,
            route: None,
            body_checks: None,
        }
    }

    /// A request for a tenant the caller already resolved.
    pub fn for_resolved(resolved: Resolved, operation: Operation) -> Self {
        Self {
            tenant: String::new(),
            resolved: Some(resolved),
            category: None,
            operation,
            request_id: None,
            route: None,
            body_checks: None,
        }
    }

    /// Names the category explicitly.
    #[must_use]
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Checks the client's body with `checks` (see [`BodyChecks`]).
    #[must_use]
    pub fn with_body_checks(mut self, checks: impl BodyChecks) -> Self {
        self.body_checks = Some(Box::new(checks));
        self
    }
}

impl RoutableRequest for StorageRequest {
    fn tenant(&self) -> Option<&str> {
        match &self.resolved {
            Some(r) => Some(r.tenant_record().id()),
            None => Some(&self.tenant),
        }
    }
    fn resolved(&self) -> Option<&Resolved> {
        self.resolved.as_ref()
    }
    fn op(&self) -> OpKind {
        self.operation.kind()
    }
    fn key(&self) -> Option<&str> {
        self.operation.key()
    }
    fn source_key(&self) -> Option<&str> {
        self.operation.source_key()
    }
    fn category_hint(&self) -> Option<&str> {
        if let Some(c) = self.category.as_deref() {
            return Some(c);
        }
        let meta = match &self.operation {
            Operation::Put { meta, .. } | Operation::CreateMultipart { meta, .. } => meta,
            Operation::Copy {
                meta: Some(meta), ..
            } => meta,
            _ => return None,
        };
        meta.headers
            .user_metadata
            .get(&CATEGORY_HEADER["x-amz-meta-".len()..])
            .map(String::as_str)
    }
    fn content_type(&self) -> Option<&str> {
        self.operation.content_type()
    }
    fn upload_id(&self) -> Option<&str> {
        self.operation.upload_id()
    }
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    fn set_route(&mut self, route: Route) {
        self.route = Some(route);
    }
}

/// Checks a caller hands the dispatch with a client's body (see
/// [`StorageRequest::body_checks`]): run
/// by the one wrapper that also counts the body and watches its end, so a
/// body streamed through the sidecar is wrapped once, not once per layer.
///
/// The sidecar's checks verify a trailing checksum, bound the size and
/// remember the S3 error of a failed body. With checks, the last chunk of a
/// body of known length is held back until the client's stream has ended and
/// [`BodyChecks::end`] has passed: a backend never receives all of a body
/// that then fails its checks.
pub trait BodyChecks: Send + Sync + 'static {
    /// Sees each chunk before it is passed on; an error ends the body with
    /// that error.
    ///
    /// # Errors
    /// Whatever makes the body unacceptable (too large, ...).
    fn chunk(&mut self, chunk: &Bytes) -> Result<(), BoxError>;
    /// The client's stream ended; an error fails the body (its held last
    /// chunk is then never passed on).
    ///
    /// # Errors
    /// A trailing checksum that does not match, or one announced and not sent.
    fn end(&mut self) -> Result<(), BoxError>;
    /// The client's stream itself failed with `error`.
    fn failed(&mut self, error: &BoxError);
}

impl std::fmt::Debug for dyn BodyChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyChecks")
    }
}
