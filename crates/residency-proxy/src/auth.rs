//! Client credentials → tenant: SigV4 secrets from the tenants file, and the
//! rule that a key acts only for its tenant (or a service key's tenants).

use std::sync::{Arc, OnceLock};

use residency_tower::RulesetHandle;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::PostObjectInput;
use s3s::path::S3Path;
use s3s::{s3_error, S3Request, S3Result};

use crate::error::directory_error;

/// Looks up secrets by access key in the tenant directory in force.
#[derive(Clone)]
pub(crate) struct TenantAuth {
    pub(crate) rules: RulesetHandle,
}

#[async_trait::async_trait]
impl S3Auth for TenantAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let directory = self.rules.directory();
        match directory
            .access_key(access_key)
            .await
            .map_err(directory_error)?
        {
            Some(grant) => Ok(SecretKey::from(grant.secret())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
        }
    }
}

/// A slot the server puts in a request's extensions; the access check fills
/// it with the access key once the signature was verified and access granted
/// (see `range.rs` for why the server needs to know).
#[derive(Clone, Debug, Default)]
pub(crate) struct Verified(pub(crate) Arc<OnceLock<String>>);

/// Put by the server (never by a client: extensions are not on the wire) on
/// the second pass of a request whose signature s3s verified on the first
/// pass: the access check takes this key in place of a signature.
#[derive(Clone, Debug)]
pub(crate) struct VerifiedEarlier(pub(crate) String);

/// Decides whether the signed key may address the request's bucket.
#[derive(Clone)]
pub(crate) struct TenantAccess {
    pub(crate) rules: RulesetHandle,
    /// `[auth] allow_sigv2`: the request gate refuses SigV2 headers and
    /// URLs; a SigV2 form POST is signed inside its body, so it is refused
    /// here, once s3s has read the form's fields.
    pub(crate) allow_sigv2: bool,
    /// Buckets shared by tenants: the tenant comes from each request.
    pub(crate) shared: Arc<crate::s3::shared::SharedBuckets>,
}

#[async_trait::async_trait]
impl S3Access for TenantAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let access_key = match cx.credentials() {
            Some(c) => c.access_key.clone(),
            None => match cx.extensions_mut().get::<VerifiedEarlier>() {
                Some(v) => v.0.clone(),
                None => {
                    return Err(s3_error!(
                        AccessDenied,
                        "anonymous requests are not allowed: sign with a tenant or service key"
                    ))
                }
            },
        };
        self.grant(cx, &access_key).await?;
        if let Some(slot) = cx.extensions_mut().get::<Verified>() {
            let _ = slot.0.set(access_key);
        }
        Ok(())
    }

    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        // A SigV4 form names its region in `x-amz-credential`; a SigV2 form
        // (`AWSAccessKeyId`, `signature`) names none.
        if !self.allow_sigv2 && req.credentials.is_some() && req.region.is_none() {
            return Err(s3_error!(
                AccessDenied,
                "AWS Signature Version 2 is not accepted: sign requests with Signature Version 4 (AWS4-HMAC-SHA256)"
            ));
        }
        Ok(())
    }
}

impl TenantAccess {
    /// Checks that `access_key` may address the request's bucket and, when
    /// it names one, resolves its tenant once: the handlers and the routing
    /// layer decide under that snapshot and look nothing up again.
    async fn grant(&self, cx: &mut S3AccessContext<'_>, access_key: &str) -> S3Result<()> {
        let current = self.rules.current();
        let directory = current.directory();
        let Some(grant) = directory
            .access_key(access_key)
            .await
            .map_err(directory_error)?
        else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => &**bucket,
        };
        // A new bucket has no owner yet: the handler decides whose it is.
        if cx.s3_op().name() == "CreateBucket" {
            return Ok(());
        }
        let resolved = match self.shared.resolve(&current, &*cx, bucket).await? {
            // A shared bucket named with no tenant (HeadBucket).
            Some(None) => return Ok(()),
            Some(Some(r)) => Some(r),
            None => crate::s3::buckets::resolve(&current, bucket).await?,
        };
        let Some(resolved) = resolved else {
            return Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            ));
        };
        if !grant.may_act_for(resolved.tenant_record()) {
            return Err(s3_error!(
                AccessDenied,
                "{} may not act for bucket {}",
                grant.who(),
                bucket
            ));
        }
        cx.extensions_mut().insert(resolved);
        Ok(())
    }
}
