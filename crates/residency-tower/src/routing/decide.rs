//! From a request to a route: the policy decision for one operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use residency_policy::{CategoryId, Decision, DenyReason, RegionOrder, Ruleset, Tenant};
use residency_store::OpKind;

use crate::audit::{Decided, DecisionRecord};
use crate::error::Denied;
use crate::one_copy::placeable_regions;
use crate::request::{RoutableRequest, Route, Target};
use crate::upload_id::UploadIdCodec;

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// `<pid hex>-<sequence>`. On the hot path of every request without an id of
/// its own: the prefix is formatted once (`getpid` is a system call), the
/// sequence number by hand on the stack, so the `Arc` is the only allocation.
fn next_request_id() -> Arc<str> {
    static PREFIX: OnceLock<([u8; 9], usize)> = OnceLock::new();
    let (prefix, prefix_len) = PREFIX.get_or_init(|| {
        let hex = format!("{:x}-", std::process::id());
        let mut p = [0u8; 9]; // at most 8 hex digits and '-'
        p[..hex.len()].copy_from_slice(hex.as_bytes());
        (p, hex.len())
    });
    let mut n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 29]; // the prefix and at most 20 decimal digits
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i - prefix_len;
    buf[start..i].copy_from_slice(&prefix[..*prefix_len]);
    Arc::from(std::str::from_utf8(&buf[start..]).expect("ascii"))
}

/// A denial, with the category when one was found and the tenant when it is
/// known (for the audit trail).
pub(crate) struct Refusal {
    pub(crate) denied: Denied,
    pub(crate) category: Option<CategoryId>,
    pub(crate) tenant: Option<Arc<Tenant>>,
    pub(crate) request_id: Arc<str>,
}

fn refuse(
    reason: &'static str,
    detail: impl Into<String>,
    category: Option<CategoryId>,
    tenant: Option<&Arc<Tenant>>,
    request_id: &Arc<str>,
) -> Refusal {
    Refusal {
        denied: Denied {
            reason,
            detail: detail.into(),
        },
        category,
        tenant: tenant.cloned(),
        request_id: request_id.clone(),
    }
}

/// A route's fields that depend on the operation (the rest are the same
/// for every route of a request).
struct Parts {
    target: Target,
    category: Option<CategoryId>,
    classified_by: Option<residency_policy::ClassifiedBy>,
    backend_upload_id: Option<String>,
    reason: &'static str,
    out_of_locality: bool,
    revoked: Option<Denied>,
}

/// Decides one request (of kind `op`, as `req.op()` says) under `rules`, for
/// its tenant as the directory answered (`None`: the directory knows no
/// tenant of the name `req` gives). The tenant and the request id move into
/// the route (no reference count touched on the way).
pub(crate) fn route<R: RoutableRequest>(
    rules: &Arc<Ruleset>,
    tenant: Option<Arc<Tenant>>,
    req: &R,
    op: OpKind,
    codec: &UploadIdCodec,
) -> Result<Route, Refusal> {
    let request_id: Arc<str> = req
        .request_id()
        .map(Arc::from)
        .unwrap_or_else(next_request_id);
    let policy = rules.policy();
    let Some(tenant) = tenant else {
        let tenant_name = req.tenant().unwrap_or("");
        return Err(refuse(
            "unknown_tenant",
            format!("unknown tenant {tenant_name:?}"),
            None,
            None,
            &request_id,
        ));
    };
    let parts = decide_parts(policy, &tenant, req, op, codec, &request_id)?;
    let prefix: Arc<str> = match req.created_bucket() {
        None => Arc::from(format!("{}/", tenant.id())),
        Some(b) => Arc::from(format!(
            "{}/{}{b}/",
            tenant.id(),
            residency_policy::BUCKET_NAMESPACE
        )),
    };
    Ok(Route {
        prefix,
        rules: rules.clone(),
        tenant,
        target: parts.target,
        category: parts.category,
        classified_by: parts.classified_by,
        backend_upload_id: parts.backend_upload_id,
        reason: parts.reason,
        out_of_locality: parts.out_of_locality,
        request_id,
        revoked: parts.revoked,
    })
}

/// The operation-dependent part of [`route`].
fn decide_parts<R: RoutableRequest>(
    policy: &residency_policy::Policy,
    tenant: &Arc<Tenant>,
    req: &R,
    op: OpKind,
    codec: &UploadIdCodec,
    request_id: &Arc<str>,
) -> Result<Parts, Refusal> {
    // The decision is a pure function of (policy, tenant, request).
    let t: &Tenant = tenant;
    let key = req.key().unwrap_or("");
    let route = |target, category, classified_by, upload, reason, out_of_locality| Parts {
        target,
        category,
        classified_by,
        backend_upload_id: upload,
        reason,
        out_of_locality,
        revoked: None,
    };
    // Reads, lists and deletes: the tenant's regions in `order`, no category.
    let across = |order| {
        route(
            Target::Regions(order),
            None,
            None,
            None,
            "tenant_regions",
            false,
        )
    };
    match op {
        OpKind::Put | OpKind::CreateMultipart | OpKind::Copy => {
            match policy.decide(t, key, req.category_hint(), req.content_type()) {
                Decision::Allow(p) => Ok(route(
                    Target::Region(p.region),
                    Some(p.category),
                    Some(p.classified_by),
                    None,
                    p.reason.as_str(),
                    p.out_of_locality,
                )),
                d @ Decision::Deny(r) => {
                    let category = match r {
                        DenyReason::FeatureDisabled { category, .. }
                        | DenyReason::OutOfLocality { category } => Some(category),
                        DenyReason::CategoryConflict { explicit, .. } => Some(explicit),
                        _ => None,
                    };
                    let detail = d.explain_for(policy, Some(t)).to_string();
                    Err(refuse(
                        r.as_str(),
                        detail,
                        category,
                        Some(tenant),
                        request_id,
                    ))
                }
            }
        }
        OpKind::Delete => {
            // Wherever a copy might be: where reads look first, then every
            // other region, so that a copy the current rules hide (written
            // before a reload narrowed the tenant's regions) is deleted too.
            let mut order = policy.read_regions(t, key);
            for (r, _) in policy.regions() {
                order.push(r);
            }
            Ok(across(order))
        }
        OpKind::Get | OpKind::Head => {
            let order = policy.read_regions(t, key);
            Ok(across(order))
        }
        OpKind::List | OpKind::ListMultipartUploads => {
            let order = policy.read_order(t);
            Ok(across(order))
        }
        OpKind::UploadPart
        | OpKind::CompleteMultipart
        | OpKind::AbortMultipart
        | OpKind::ListParts => {
            let tenant_id = t.id();
            match req.upload_id().and_then(|id| codec.decode(id)) {
                Some(tok) if tok.tenant == tenant_id => match policy.region_by_id(&tok.region) {
                    Some(region) => {
                        let mut r = route(
                            Target::Region(region),
                            None,
                            None,
                            Some(tok.backend_id),
                            "upload_region",
                            false,
                        );
                        // Data is written (a part) or made visible (complete)
                        // only where the current rules could still place it.
                        let writes = matches!(op, OpKind::UploadPart | OpKind::CompleteMultipart);
                        if writes && !placeable_regions(policy, t, key).contains(region) {
                            r.reason = "placement_changed";
                            r.revoked = Some(Denied {
                                reason: "placement_changed",
                                detail: format!(
                                    "the placement changed since this upload was created: the current rules no longer allow {key:?} of tenant {tenant_id} in {}; the upload was aborted",
                                    tok.region
                                ),
                            });
                        }
                        Ok(r)
                    }
                    None => Err(refuse(
                        Denied::INVALID_UPLOAD_ID,
                        format!("the upload's region {:?} is no longer declared", tok.region),
                        None,
                        Some(tenant),
                        request_id,
                    )),
                },
                _ => Err(refuse(
                    Denied::INVALID_UPLOAD_ID,
                    "the upload id is unknown, forged, or belongs to another tenant",
                    None,
                    Some(tenant),
                    request_id,
                )),
            }
        }
    }
}

/// The audit record of a decision (built only when a sink is configured).
pub(crate) fn audit_record<R: RoutableRequest>(
    rules: &Arc<Ruleset>,
    req: &R,
    op: OpKind,
    result: &Result<Route, Refusal>,
) -> DecisionRecord {
    let (request_id, known, decided) = match result {
        Ok(r) => {
            let (regions, placed) = match &r.target {
                Target::Region(region) => (RegionOrder::one(*region), Some(*region)),
                Target::Regions(o) => (*o, None),
            };
            let decided = Decided {
                allowed: r.revoked.is_none(),
                category: r.category,
                classified_by: r.classified_by.map(|c| c.as_str()),
                regions,
                placed,
                reason: r.reason,
                out_of_locality: r.out_of_locality,
            };
            (&r.request_id, Some(&r.tenant), decided)
        }
        Err(f) => {
            let decided = Decided {
                allowed: false,
                category: f.category,
                classified_by: None,
                regions: RegionOrder::default(),
                placed: None,
                reason: f.denied.reason,
                out_of_locality: false,
            };
            (&f.request_id, f.tenant.as_ref(), decided)
        }
    };
    let record = DecisionRecord::new(
        rules,
        request_id.clone(),
        req.tenant().unwrap_or(""),
        known,
        op.as_str(),
        req.key().or(req.source_key()).unwrap_or(""),
        decided,
    );
    match req.created_bucket() {
        Some(b) => record.in_bucket(b),
        None => record,
    }
}

#[cfg(test)]
mod tests {
    use super::next_request_id;

    #[test]
    fn request_ids_are_pid_and_sequence() {
        let prefix = format!("{:x}-", std::process::id());
        let a = next_request_id();
        let b = next_request_id();
        let seq = |id: &str| -> u64 {
            id.strip_prefix(prefix.as_str())
                .expect("pid prefix")
                .parse()
                .expect("decimal sequence")
        };
        assert!(seq(&b) > seq(&a), "{a} then {b}");
    }
}
