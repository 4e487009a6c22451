//! Object tagging on backends without it (Garage answers `501` to every
//! tagging call and ignores `x-amz-tagging`): an object's tags are a
//! reserved user-metadata entry of the object itself, so they live in the
//! object's own region and go wherever the object goes (a migration copies
//! them with it).
//!
//! PutObjectTagging and DeleteObjectTagging are a copy of the object onto
//! itself in its region, its content headers and user metadata kept and only
//! the reserved entry replaced: routed and audited as a copy (a write of that
//! key), denied like any copy when the object is not in the region its key
//! is placed in now (a copy never moves data between regions).

use residency_store::{ObjectInfo, Operation, Outcome};
use residency_tower::{Resolved, StorageRequest};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::conditional::check_version;
use super::input::{bucket_input, check_key, object_input};
use super::output::{self, outcome};
use super::tags::{from_tag_set, meta_with, stored, Tags};
use super::Gateway;

/// The object's metadata, read from the region that holds it.
pub(crate) async fn head(gw: &Gateway, tenant: &Resolved, key: &str) -> S3Result<ObjectInfo> {
    let r = gw
        .run(StorageRequest::for_resolved(
            tenant.clone(),
            Operation::Head {
                key: key.to_string(),
                // Tags of an SSE-C object: the region refuses a HEAD
                // without its key (documented).
                sse: None,
            },
        ))
        .await?;
    Ok(*outcome!(r.outcome, Head))
}

/// Replaces an object's tags: a copy of it onto itself in its region,
/// while holding the key's lock (two tag changes through this sidecar do not
/// interleave their read and write).
async fn replace(
    gw: &Gateway,
    tenant: Resolved,
    bucket: &str,
    key: String,
    tags: Tags,
) -> S3Result<()> {
    let _guard = gw.locks.lock(bucket, &key).await;
    let info = head(gw, &tenant, &key).await?;
    if stored(&info.headers.user_metadata) == tags {
        return Ok(());
    }
    let meta = meta_with(&info, &tags);
    gw.run(StorageRequest::for_resolved(
        tenant,
        Operation::Copy {
            src_key: key.clone(),
            dst_key: key,
            meta: Some(Box::new(meta)),
            sse: None,
        },
    ))
    .await?;
    Ok(())
}

pub(super) async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let (input, tenant) = object_input!(gw, req);
    check_version(input.version_id.as_deref())?;
    let tags = from_tag_set(input.tagging.tag_set)?;
    replace(gw, tenant, &input.bucket, input.key, tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput::default()))
}

pub(super) async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let (input, tenant) = object_input!(gw, req);
    check_version(input.version_id.as_deref())?;
    let info = head(gw, &tenant, &input.key).await?;
    let tag_set = stored(&info.headers.user_metadata)
        .into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect();
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set,
        version_id: None,
    }))
}

pub(super) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let (input, tenant) = object_input!(gw, req);
    check_version(input.version_id.as_deref())?;
    replace(gw, tenant, &input.bucket, input.key, Vec::new()).await?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
