//! Server-side encryption headers of a client's request, checked as S3
//! checks them and carried to the region as a [`residency_store::Sse`]; the
//! encryption the region reports, answered in S3's response headers.
//!
//! The customer key (SSE-C) goes only to the region's service: it is held
//! in a [`CustomerKey`], whose `Debug` prints its MD5, never the key.

use residency_store::{CustomerKey, ServerSide, Sse, SseReport};
use s3s::dto::ServerSideEncryption;
use s3s::{s3_error, S3Result};

const SSE_C: &str = "x-amz-server-side-encryption-customer";
const COPY_SSE_C: &str = "x-amz-copy-source-server-side-encryption-customer";

/// An SSE-C key from its three headers, or `None` when none is sent.
pub(super) fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
    what: &str,
) -> S3Result<Option<CustomerKey>> {
    match (algorithm, key) {
        (None, None) if md5.is_none() => Ok(None),
        (Some(a), Some(k)) => {
            if a != "AES256" {
                return Err(s3_error!(
                    InvalidEncryptionAlgorithmError,
                    "The encryption request you specified is not valid. The valid value is AES256."
                ));
            }
            CustomerKey::parse(a, k, md5, what)
                .map(Some)
                .map_err(|e| s3_error!(InvalidArgument, "{}", e))
        }
        (Some(_), None) | (None, None) => Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key ({what}-key)."
        )),
        (None, Some(_)) => Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm ({what}-algorithm)."
        )),
    }
}

/// The SSE-C key of a GET, HEAD or UploadPart, as a call's encryption.
pub(super) fn customer_only(
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
) -> S3Result<Option<Box<Sse>>> {
    Ok(customer_key(algorithm, key, md5, SSE_C)?.map(|k| {
        Box::new(Sse {
            customer: Some(k),
            ..Sse::default()
        })
    }))
}

/// The encryption of an object written (PutObject, CopyObject's
/// destination, CreateMultipartUpload).
pub(super) fn write_sse(
    server_side: Option<&ServerSideEncryption>,
    kms_key_id: Option<&str>,
    kms_context: Option<&str>,
    customer: Option<CustomerKey>,
) -> S3Result<Sse> {
    let server_side = match server_side.map(ServerSideEncryption::as_str) {
        None => None,
        Some("AES256") => Some(ServerSide::S3),
        Some("aws:kms") => Some(ServerSide::Kms {
            key_id: kms_key_id.map(str::to_owned),
            context: kms_context.map(str::to_owned),
        }),
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "The encryption method specified ({other:?}) is not supported: x-amz-server-side-encryption is AES256 or aws:kms"
            ))
        }
    };
    if !matches!(server_side, Some(ServerSide::Kms { .. }))
        && (kms_key_id.is_some() || kms_context.is_some())
    {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        ));
    }
    if server_side.is_some() && customer.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        ));
    }
    Ok(Sse {
        customer,
        copy_source_customer: None,
        server_side,
    })
}

/// The SSE-C key of a copy's source.
pub(super) fn copy_source_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    customer_key(algorithm, key, md5, COPY_SSE_C)
}

/// The encryption of a PutObject, CopyObject or CreateMultipartUpload input.
macro_rules! write_sse_of {
    ($input:ident) => {{
        let customer = sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
            "x-amz-server-side-encryption-customer",
        )?;
        sse::write_sse(
            $input.server_side_encryption.as_ref(),
            $input.ssekms_key_id.as_deref(),
            $input.ssekms_encryption_context.as_deref(),
            customer,
        )?
    }};
}
pub(super) use write_sse_of;

/// The encryption headers an output shape answers, from the region's report.
macro_rules! with_sse_report {
    ($out:expr, $r:expr) => {{
        let mut o = $out;
        let r: &residency_store::SseReport = $r;
        o.server_side_encryption = r
            .server_side
            .clone()
            .map(s3s::dto::ServerSideEncryption::from);
        o.ssekms_key_id = r.kms_key_id.clone();
        o.sse_customer_algorithm = r.customer_algorithm.clone();
        o.sse_customer_key_md5 = r.customer_key_md5.clone();
        o
    }};
}
pub(super) use with_sse_report;

/// What S3 answers for an SSE-C request that succeeded where the region
/// reports nothing (parts, multipart create): the algorithm and key MD5.
pub(super) fn echo(sse: Option<&Sse>) -> SseReport {
    let key = sse.and_then(|s| s.customer.as_ref());
    SseReport {
        customer_algorithm: key.map(|k| k.algorithm().to_owned()),
        customer_key_md5: key.map(|k| k.key_md5().to_owned()),
        ..SseReport::default()
    }
}
