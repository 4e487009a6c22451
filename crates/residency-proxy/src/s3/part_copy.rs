//! UploadPartCopy: a part of a multipart upload copied from an object of
//! the same bucket (a byte range of it, or all of it). The source is read
//! from the region that holds it and written as a part to the region of the
//! upload's key, as a GET and an UploadPart by the client would be: the
//! bytes land only where the upload's key is placed.

use residency_store::{ByteRange, Checksums, Operation, Outcome};
use residency_tower::StorageRequest;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::conditional::Conditions;
use super::input::{bucket_input, check_key, copy_source_key};
use super::output::{self, etag, outcome, region_header};
use super::{sse, Gateway};

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let (mut input, tenant) = bucket_input!(gw, req);
    input.key = super::shared::stored_key(&tenant, input.key)?;
    check_key(&input.key)?;
    super::buckets::check_reserved(&tenant, &input.key)?;
    if !(1..=10_000).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let src_key = super::shared::stored_key(
        &tenant,
        copy_source_key(&input.copy_source, &input.bucket)?.to_owned(),
    )?;
    let src_key = src_key.as_str();
    super::buckets::check_reserved(&tenant, src_key)?;
    let range = match &input.copy_source_range {
        Some(r) => Some(ByteRange::parse(r).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
            )
        })?),
        None => None,
    };
    // The source is read with its customer key, the part written with the
    // upload's (SSE-C); each travels only to the region it is for.
    let source_sse = sse::copy_source_key(
        input.copy_source_sse_customer_algorithm.as_deref(),
        input.copy_source_sse_customer_key.as_deref(),
        input.copy_source_sse_customer_key_md5.as_deref(),
    )?
    .map(|k| {
        Box::new(residency_store::Sse {
            customer: Some(k),
            ..Default::default()
        })
    });
    let part_sse = sse::customer_only(
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let echo = sse::echo(part_sse.as_deref());
    let source = gw
        .run(StorageRequest::for_resolved(
            tenant.clone(),
            Operation::Get {
                key: src_key.to_string(),
                range,
                sse: source_sse,
            },
        ))
        .await?;
    let got = outcome!(source.outcome, Get);
    // Each copy-source condition that fails is 412 (for a copy, "not
    // modified" is a failed precondition too).
    Conditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    }
    .check_copy_source(&got.info)?;
    let len = got
        .content_range
        .map_or(got.info.size, |(s, e, _)| e + 1 - s);
    if len > gw.max_object_bytes {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    let r = gw
        .run(StorageRequest::for_resolved(
            tenant,
            Operation::UploadPart {
                key: input.key,
                upload_id: input.upload_id,
                part_number: input.part_number as u32,
                body: got.body,
                checksums: Box::new(Checksums::default()),
                sse: part_sse,
            },
        ))
        .await?;
    let part = outcome!(&r.outcome, UploadPart);
    let output = UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        }),
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        ..Default::default()
    };
    Ok(region_header(S3Response::new(output), &r))
}
