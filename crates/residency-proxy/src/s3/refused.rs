//! Bucket features that would copy a tenant's data out of the region the
//! policy places it in (replication to another bucket, a public website, an
//! inventory report written elsewhere): refused with the reason, never
//! passed to a region. Reading their configuration answers as S3 does for a
//! bucket that has none.

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use super::input::bucket_input;
use super::Gateway;

fn refused(what: &str) -> S3Error {
    s3_error!(
        MethodNotAllowed,
        "Residency refuses {}: it would copy objects out of the region the hosting policy places them in",
        what
    )
}

pub(super) async fn put_replication(
    gw: &Gateway,
    req: S3Request<PutBucketReplicationInput>,
) -> S3Result<S3Response<PutBucketReplicationOutput>> {
    bucket_input!(gw, req);
    Err(refused("bucket replication"))
}

pub(super) async fn put_website(
    gw: &Gateway,
    req: S3Request<PutBucketWebsiteInput>,
) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
    bucket_input!(gw, req);
    Err(refused("website hosting"))
}

pub(super) async fn put_inventory(
    gw: &Gateway,
    req: S3Request<PutBucketInventoryConfigurationInput>,
) -> S3Result<S3Response<PutBucketInventoryConfigurationOutput>> {
    bucket_input!(gw, req);
    Err(refused(
        "inventory reports (they list every key into another bucket)",
    ))
}

pub(super) async fn get_replication(
    gw: &Gateway,
    req: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    bucket_input!(gw, req);
    Err(s3_error!(
        ReplicationConfigurationNotFoundError,
        "The replication configuration was not found"
    ))
}

pub(super) async fn get_website(
    gw: &Gateway,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    bucket_input!(gw, req);
    Err(s3_error!(
        NoSuchWebsiteConfiguration,
        "The specified bucket does not have a website configuration"
    ))
}
