//! Buckets shared by tenants (`[[shared_buckets]]`): an existing
//! application's one bucket per kind of data, the tenant named by each
//! request, in the first segment of the key (`attachments/<tenant>/...`) or
//! in the signed header `x-residency-tenant`.
//!
//! A shared bucket's objects live in each tenant's namespace like a created
//! bucket's (`<tenant>/~bucket/<name>/<key>`), so each tenant's data is
//! placed, migrated, erased and scanned as its own; with the tenant in the
//! key, `<tenant>/` is taken off the key before it is classified and stored
//! and put back in every key, prefix and marker answered.

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use residency_tower::directory::BucketRecord;
use residency_tower::{Current, Resolved};
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

use super::buckets::{signed_header, TENANT_HEADER};
use crate::config::{SharedBucket, TenantFrom};
use crate::error::directory_error;

/// The shared buckets of the configuration, by name: the record a request
/// is resolved with (its tenant filled in per request) and where the
/// tenant is named.
#[derive(Debug, Default)]
pub(crate) struct SharedBuckets(HashMap<String, (Arc<BucketRecord>, TenantFrom)>);

impl SharedBuckets {
    pub(crate) fn new(config: &[SharedBucket]) -> Self {
        SharedBuckets(
            config
                .iter()
                .map(|b| {
                    let mut r = BucketRecord::new(b.name.clone(), String::new());
                    r.default_category = b.default_category.clone();
                    (b.name.clone(), (Arc::new(r), b.tenant_from))
                })
                .collect(),
        )
    }

    /// Whether `name` is a shared bucket.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The names, for ListBuckets.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The tenant a request to the shared bucket `bucket` names, resolved
    /// (`Ok(None)`: `bucket` is not shared). A request that names no tenant
    /// is refused with how to name one, except HeadBucket (the bucket
    /// exists for every tenant) and DeleteBucket (refused by its handler).
    pub(crate) async fn resolve(
        &self,
        current: &Current,
        cx: &S3AccessContext<'_>,
        bucket: &str,
    ) -> S3Result<Option<Option<Resolved>>> {
        let Some((record, mode)) = self.0.get(bucket) else {
            return Ok(None);
        };
        let named = match mode {
            TenantFrom::Header => from_header(cx)?,
            TenantFrom::Key => match cx.s3_path() {
                S3Path::Object { key, .. } => first_segment(key),
                _ => {
                    from_header(cx)?.or_else(|| listing_prefix(cx).and_then(|p| first_segment(&p)))
                }
            },
        };
        let Some(id) = named else {
            if matches!(cx.s3_op().name(), "HeadBucket" | "DeleteBucket") {
                return Ok(Some(None));
            }
            let how = match mode {
                TenantFrom::Key => "as the first segment of the key or of the listing prefix (<tenant>/...), or in the signed header x-residency-tenant",
                TenantFrom::Header => "in the signed header x-residency-tenant",
            };
            return Err(s3_error!(
                InvalidArgument,
                "bucket {bucket} is shared by tenants: name the tenant {how}"
            ));
        };
        let policy = current.rules().policy();
        let Some(tenant) = current
            .directory()
            .tenant(policy, &id)
            .await
            .map_err(directory_error)?
        else {
            return Err(s3_error!(
                AccessDenied,
                "bucket {bucket}: tenant {id:?} is not in the directory"
            ));
        };
        let mut record = (**record).clone();
        record.tenant = id;
        let resolved = current.resolved(tenant).in_bucket(Arc::new(record));
        Ok(Some(Some(match mode {
            TenantFrom::Key => resolved.with_tenant_in_keys(),
            TenantFrom::Header => resolved,
        })))
    }
}

fn first_segment(key: &str) -> Option<String> {
    key.split_once('/')
        .map(|(t, _)| t)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn from_header(cx: &S3AccessContext<'_>) -> S3Result<Option<String>> {
    let Some(v) = cx.headers().get(TENANT_HEADER) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| s3_error!(InvalidArgument, "{TENANT_HEADER} is not a tenant id"))?;
    if !signed_header(cx.headers(), cx.uri(), TENANT_HEADER) {
        return Err(s3_error!(
            AccessDenied,
            "{TENANT_HEADER} must be signed (include it in SignedHeaders)"
        ));
    }
    Ok(Some(v.to_owned()))
}

/// The `prefix` query parameter of a listing, decoded.
fn listing_prefix(cx: &S3AccessContext<'_>) -> Option<String> {
    cx.uri().query()?.split('&').find_map(|kv| {
        let v = kv.strip_prefix("prefix=")?;
        Some(
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned(),
        )
    })
}

/// A client's key without its `<tenant>/` segment, in a bucket whose keys
/// carry it (else the key as it is).
pub(super) fn stored_key(tenant: &Resolved, key: String) -> S3Result<String> {
    if !tenant.tenant_in_keys() {
        return Ok(key);
    }
    let id = tenant.tenant_record().id();
    match key.strip_prefix(id).and_then(|k| k.strip_prefix('/')) {
        Some(rest) if !rest.is_empty() => Ok(rest.to_owned()),
        _ => Err(s3_error!(
            AccessDenied,
            "in bucket {}, tenant {id}'s keys begin with {id}/",
            tenant.bucket_name()
        )),
    }
}

/// A key as the client knows it (`<tenant>/` put back where it was taken off).
pub(super) fn client_key(tenant: &Resolved, key: String) -> String {
    if tenant.tenant_in_keys() {
        format!("{}/{key}", tenant.tenant_record().id())
    } else {
        key
    }
}

/// A listing's prefix without the tenant's segment; `None`: it names none
/// of the tenant's keys (the listing is empty).
pub(super) fn listing_prefix_param(tenant: &Resolved, p: Option<&str>) -> Option<String> {
    let p = p.unwrap_or_default();
    if !tenant.tenant_in_keys() {
        return Some(p.to_owned());
    }
    let own = format!("{}/", tenant.tenant_record().id());
    match p.strip_prefix(&own) {
        Some(rest) => Some(rest.to_owned()),
        None if own.starts_with(p) => Some(String::new()),
        None => None,
    }
}

/// A listing's marker (start-after, marker, key-marker) without the
/// tenant's segment: `Some(None)` before all of the tenant's keys, `None`
/// after all of them (the listing is empty).
pub(super) fn listing_marker_param(tenant: &Resolved, m: Option<String>) -> Option<Option<String>> {
    if !tenant.tenant_in_keys() {
        return Some(m);
    }
    let Some(m) = m.filter(|m| !m.is_empty()) else {
        return Some(None);
    };
    let own = format!("{}/", tenant.tenant_record().id());
    if let Some(rest) = m.strip_prefix(&own) {
        return Some(Some(rest.to_owned()));
    }
    (m < own).then_some(None)
}
