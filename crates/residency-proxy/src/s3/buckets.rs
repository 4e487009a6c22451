//! Buckets a tenant creates: CreateBucket, DeleteBucket, ListBuckets,
//! HeadBucket and GetBucketLocation over the directory's bucket registry.
//!
//! A created bucket's objects live in the tenant's namespace of every
//! region, under `<tenant>/~bucket/<name>/` (the routing layer adds the
//! prefix), so placement, migration, erasure and the scan treat them as the
//! tenant's data; the tenant's configured bucket keeps `<tenant>/<key>`, and
//! its keys under `~bucket/` are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use residency_policy::{Policy, RegionId, BUCKET_NAMESPACE};
use residency_store::{ListRequest, Operation, Outcome};
use residency_tower::directory::{ActsFor, BucketError, BucketRecord, KeyGrant};
use residency_tower::{Current, Resolved, StorageRequest};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use super::output::{self, outcome};
use super::Gateway;
use crate::error::directory_error;

/// The header a service key names the tenant of a new bucket with (signed).
pub(crate) const TENANT_HEADER: &str = "x-residency-tenant";
/// The header that gives a new bucket a default category.
pub(crate) const DEFAULT_CATEGORY_HEADER: &str = "x-residency-default-category";

/// The tenant that owns `bucket` (configured or created), resolved under
/// `current`; `None`: no such bucket.
pub(crate) async fn resolve(current: &Current, bucket: &str) -> S3Result<Option<Resolved>> {
    let directory = current.directory();
    let policy = current.rules().policy();
    if let Some(t) = directory
        .tenant_by_bucket(policy, bucket)
        .await
        .map_err(directory_error)?
    {
        return Ok(Some(current.resolved(t)));
    }
    let Some(record) = directory.bucket(bucket).await.map_err(directory_error)? else {
        return Ok(None);
    };
    let tenant = directory
        .tenant(policy, &record.tenant)
        .await
        .map_err(directory_error)?;
    Ok(tenant.map(|t| current.resolved(t).in_bucket(record)))
}

/// Refuses a key under the created buckets' namespace in a tenant's
/// configured bucket (it would read or write another bucket's objects).
pub(super) fn check_reserved(tenant: &Resolved, key: &str) -> S3Result<()> {
    if tenant.created_bucket().is_none() && key.starts_with(BUCKET_NAMESPACE) {
        return Err(s3_error!(
            InvalidArgument,
            "keys under {BUCKET_NAMESPACE} are reserved: the buckets a tenant creates keep their objects there"
        ));
    }
    Ok(())
}

/// The default category of the bucket `tenant` addresses, for a write of
/// `key` that names none, when no key rule classifies the key.
pub(super) fn default_for(tenant: &Resolved, key: &str) -> Option<String> {
    let category = tenant.created_bucket()?.default_category.clone()?;
    tenant
        .rules()
        .policy()
        .classify_key(key)
        .is_none()
        .then_some(category)
}

/// Gives a write in a bucket with a default category that category, when
/// the client named none and no key rule classifies the key; it is stored
/// with the object (`x-amz-meta-residency-category`), so that `migrate`
/// and `scan` place it as the sidecar did.
pub(super) fn default_category(tenant: &Resolved, key: &str, user: &mut BTreeMap<String, String>) {
    const META: &str = "residency-category";
    if user.contains_key(META) {
        return;
    }
    if let Some(category) = default_for(tenant, key) {
        user.insert(META.to_owned(), category);
    }
}

/// The signed access key of a request, and who it acts for.
async fn grant<T>(current: &Current, req: &S3Request<T>) -> S3Result<Arc<KeyGrant>> {
    let access_key = req
        .credentials
        .as_ref()
        .map(|c| c.access_key.as_str())
        .ok_or_else(|| s3_error!(AccessDenied))?;
    current
        .directory()
        .access_key(access_key)
        .await
        .map_err(directory_error)?
        .ok_or_else(|| s3_error!(AccessDenied))
}

/// Whether a request with these headers and URI signed `header` (SigV4
/// `SignedHeaders`, in the `Authorization` header or a presigned URL's
/// query).
pub(crate) fn signed_header(headers: &http::HeaderMap, uri: &http::Uri, header: &str) -> bool {
    let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return uri.query().is_some_and(|q| {
            q.split('&').any(|kv| {
                kv.strip_prefix("X-Amz-SignedHeaders=").is_some_and(|v| {
                    v.split("%3B")
                        .flat_map(|s| s.split(';'))
                        .any(|h| h == header)
                })
            })
        });
    };
    auth.split(',').any(|part| {
        part.trim()
            .strip_prefix("SignedHeaders=")
            .is_some_and(|v| v.split(';').any(|h| h == header))
    })
}

/// The tenant a CreateBucket is for: a tenant key's own, or the one a
/// service key names in `x-residency-tenant` (signed; optional when the
/// key acts for one tenant).
fn owner<T>(req: &S3Request<T>, grant: &KeyGrant) -> S3Result<String> {
    let named = req
        .headers
        .get(TENANT_HEADER)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "{TENANT_HEADER} is not a tenant id"))?;
    if named.is_some() && !signed_header(&req.headers, &req.uri, TENANT_HEADER) {
        return Err(s3_error!(
            AccessDenied,
            "{TENANT_HEADER} must be signed (include it in SignedHeaders)"
        ));
    }
    match (grant.acts_for(), named) {
        (ActsFor::Tenant(t), None) => Ok(t.clone()),
        (ActsFor::Tenant(t), Some(n)) if *t == n => Ok(n),
        (ActsFor::Tenants(ts), Some(n)) if ts.contains(&n) => Ok(n),
        (ActsFor::Tenants(ts), None) if ts.len() == 1 => Ok(ts[0].clone()),
        (ActsFor::Tenants(_), None) => Err(s3_error!(
            InvalidArgument,
            "this service key acts for several tenants: name the new bucket's tenant in the signed header {TENANT_HEADER}"
        )),
        (_, Some(n)) => Err(s3_error!(
            AccessDenied,
            "{} may not create buckets for tenant {n:?}",
            grant.who()
        )),
    }
}

/// The region a `LocationConstraint` names: a region id of the policy or
/// one of the locations a region declares (`eu-central-1`).
fn region_named(policy: &Policy, constraint: &str) -> Option<RegionId> {
    policy.region_by_id(constraint).or_else(|| {
        policy
            .regions()
            .find(|(_, r)| r.locations().iter().any(|l| l == constraint))
            .map(|(id, _)| id)
    })
}

pub(super) fn bucket_error(e: BucketError) -> S3Error {
    match e {
        BucketError::Taken { by_you: true, name } => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it ({name})"
        ),
        BucketError::Taken { by_you: false, .. } => s3_error!(
            BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
        ),
        BucketError::NotFound(_) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        BucketError::Unsupported(why) => {
            s3_error!(NotImplemented, "buckets cannot be created or deleted here: {why}")
        }
        BucketError::Unavailable(why) => s3_error!(
            ServiceUnavailable,
            "the tenant directory is unavailable, nothing was changed: {why}"
        ),
    }
}

impl Gateway {
    pub(super) async fn create(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let current = self.rules.current();
        let grant = grant(&current, &req).await?;
        let tenant_id = owner(&req, &grant)?;
        let policy = current.rules().policy();
        let name = req.input.bucket.clone();
        if self.shared.contains(&name) {
            return Err(bucket_error(BucketError::Taken {
                name,
                by_you: false,
            }));
        }
        if !residency_policy::valid_bucket(&name) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid: 3-63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
            ));
        }
        let tenant = current
            .directory()
            .tenant(policy, &tenant_id)
            .await
            .map_err(directory_error)?
            .ok_or_else(|| {
                s3_error!(AccessDenied, "tenant {tenant_id:?} is not in the directory")
            })?;
        let mut record = BucketRecord::new(name.clone(), tenant_id.clone());
        let constraint = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|c| c.as_str().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(c) = constraint {
            let home = tenant.home_region(policy);
            let Some(region) = region_named(policy, &c) else {
                return Err(s3_error!(
                    InvalidLocationConstraint,
                    "The specified location-constraint is not valid: {c:?} is neither a region of the hosting policy nor a location one declares"
                ));
            };
            if region != home {
                return Err(s3_error!(
                    InvalidLocationConstraint,
                    "tenant {tenant_id}'s data is hosted in {} under its hosting policy: a bucket in {} cannot be honoured (objects are placed by the policy, not by the bucket)",
                    policy.region(home).id(),
                    policy.region(region).id()
                ));
            }
            record.location = Some(c);
        }
        if let Some(v) = req.headers.get(DEFAULT_CATEGORY_HEADER) {
            let c = v.to_str().unwrap_or_default().trim();
            if policy.category_by_id(c).is_none() {
                return Err(s3_error!(
                    InvalidArgument,
                    "{DEFAULT_CATEGORY_HEADER}: {c:?} is not a category of the hosting policy"
                ));
            }
            record.default_category = Some(c.to_owned());
        }
        let category = record.default_category.clone();
        current
            .directory()
            .create_bucket(record)
            .await
            .map_err(bucket_error)?;
        tracing::info!(bucket = %name, tenant = %tenant_id, default_category = ?category, "bucket created");
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    pub(super) async fn delete(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        if self.shared.contains(&req.input.bucket) {
            return Err(s3_error!(
                MethodNotAllowed,
                "bucket {} is shared by tenants ([[shared_buckets]] in residency.toml): it is not deleted through S3",
                req.input.bucket
            ));
        }
        let tenant = self.tenant(&req.extensions, &req.input.bucket).await?;
        let Some(record) = tenant.created_bucket().cloned() else {
            return Err(s3_error!(
                MethodNotAllowed,
                "bucket {} is tenant {}'s configured bucket: it is removed with the tenant, not by DeleteBucket",
                req.input.bucket,
                tenant.tenant_record().id()
            ));
        };
        // Empty in every region the tenant may have data in (a region that
        // cannot answer fails the request: never a false success).
        let r = self
            .run(StorageRequest::for_resolved(
                tenant.clone(),
                Operation::List {
                    request: ListRequest::new("").max_keys(1),
                },
            ))
            .await?;
        let page = outcome!(r.outcome, List);
        if !page.objects.is_empty() || !page.common_prefixes.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        // Uploads left open would leave their parts behind: abort them.
        let r = self
            .run(StorageRequest::for_resolved(
                tenant.clone(),
                Operation::ListMultipartUploads {
                    prefix: String::new(),
                },
            ))
            .await?;
        for u in outcome!(r.outcome, ListMultipartUploads) {
            self.run(StorageRequest::for_resolved(
                tenant.clone(),
                Operation::AbortMultipart {
                    key: u.key,
                    upload_id: u.upload_id,
                },
            ))
            .await?;
        }
        self.rules
            .current()
            .directory()
            .delete_bucket(&record.name, &record.tenant)
            .await
            .map_err(bucket_error)?;
        tracing::info!(bucket = %record.name, tenant = %record.tenant, "bucket deleted");
        let mut resp = S3Response::new(DeleteBucketOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(super) async fn location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let tenant = self.tenant(&req.extensions, &req.input.bucket).await?;
        let policy = tenant.rules().policy();
        // The constraint the bucket was created with, else the tenant's home
        // region's first location; "us-east-1" is answered as S3 does, with
        // an empty constraint.
        let loc = match tenant.created_bucket().and_then(|b| b.location.clone()) {
            Some(l) => policy
                .region_by_id(&l)
                .and_then(|r| policy.region(r).locations().first().cloned())
                .unwrap_or(l),
            None => {
                let home = policy.region(tenant.tenant_record().home_region(policy));
                home.locations().first().cloned().unwrap_or_default()
            }
        };
        let constraint =
            (loc != "us-east-1" && !loc.is_empty()).then(|| BucketLocationConstraint::from(loc));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    pub(super) async fn list_all(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let current = self.rules.current();
        let directory = current.directory();
        let grant = grant(&current, &req).await?;
        // The key's own tenant, or a service key's tenants, as the directory
        // answers for each now, with the buckets each created; sorted by
        // name, as S3 lists buckets.
        let ids = match grant.acts_for() {
            ActsFor::Tenant(t) => std::slice::from_ref(t),
            ActsFor::Tenants(ts) => ts.as_slice(),
        };
        let mut buckets = Vec::with_capacity(ids.len());
        for id in ids {
            let tenant = directory
                .tenant(current.rules().policy(), id)
                .await
                .map_err(directory_error)?;
            if let Some(t) = tenant {
                buckets.push(Bucket {
                    name: Some(t.bucket().to_string()),
                    creation_date: Some(Timestamp::from(std::time::SystemTime::UNIX_EPOCH)),
                    bucket_region: None,
                });
            }
            for b in directory.buckets_of(id).await.map_err(directory_error)? {
                let created = Timestamp::parse(TimestampFormat::DateTime, &b.created)
                    .unwrap_or_else(|_| Timestamp::from(std::time::SystemTime::UNIX_EPOCH));
                buckets.push(Bucket {
                    name: Some(b.name),
                    creation_date: Some(created),
                    bucket_region: None,
                });
            }
        }
        for name in self.shared.names() {
            buckets.push(Bucket {
                name: Some(name.to_owned()),
                creation_date: Some(Timestamp::from(std::time::SystemTime::UNIX_EPOCH)),
                bucket_region: None,
            });
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }
}
