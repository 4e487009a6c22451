//! CopyObject within the tenant's bucket: the copy stays in the region of
//! the destination key (a source in another region is refused by the
//! dispatch); metadata and tagging directives; destination conditions.

use residency_store::{Operation, Outcome, PutMeta};
use residency_tower::StorageRequest;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::conditional::Conditions;
use super::input::{
    bucket_input, category_of, check_key, copy_source_key, object_input, put_meta, user_metadata,
};
use super::output::{self, etag, outcome, region_header};
use super::sse::{self, with_sse_report, write_sse_of};
use super::write_condition::{self, WriteCondition};
use super::{buckets, shared, tagging, tags, Gateway};

pub(super) async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let cond = WriteCondition::from_headers(&req.headers)?;
    let (input, tenant) = object_input!(gw, req);
    let src_key = shared::stored_key(
        &tenant,
        copy_source_key(&input.copy_source, &input.bucket)?.to_owned(),
    )?;
    let src_key = src_key.as_str();
    buckets::check_reserved(&tenant, src_key)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // S3 refuses a copy that would change nothing (and Garage performs
    // it): only new metadata, storage class, redirect, encryption or
    // checksum algorithm make copying an object onto itself a change.
    let changes_something = replace
        || input.storage_class.is_some()
        || input.website_redirect_location.is_some()
        || input.server_side_encryption.is_some()
        || input.sse_customer_algorithm.is_some()
        || input.ssekms_key_id.is_some()
        || input.checksum_algorithm.is_some();
    if src_key == input.key && !changes_something {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    // Copy-source conditions (x-amz-copy-source-if-*), decided on the
    // source as a HEAD finds it just before the copy: each that fails is
    // 412 ("not modified" is a failed precondition for a copy).
    let source_conditions = Conditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    if source_conditions.any() {
        let info = tagging::head(gw, &tenant, src_key).await?;
        source_conditions.check_copy_source(&info)?;
    }
    let mut copy_sse = write_sse_of!(input);
    copy_sse.copy_source_customer = sse::copy_source_key(
        input.copy_source_sse_customer_algorithm.as_deref(),
        input.copy_source_sse_customer_key.as_deref(),
        input.copy_source_sse_customer_key_md5.as_deref(),
    )?;
    let new_tags = tags::of_copy(input.tagging_directive.as_ref(), input.tagging.as_deref())?;
    let (meta, category) = if replace {
        let mut user = user_metadata(input.metadata)?;
        buckets::default_category(&tenant, &input.key, &mut user);
        let tags = match new_tags {
            Some(t) => t,
            None => tags::stored(
                &tagging::head(gw, &tenant, src_key)
                    .await?
                    .headers
                    .user_metadata,
            ),
        };
        tags::store(&mut user, &tags);
        let category = category_of(&user);
        let meta = put_meta!(input, user);
        (Some(meta), category)
    } else if let Some(tags) = new_tags {
        // The source's headers and metadata, with new tags.
        let info = tagging::head(gw, &tenant, src_key).await?;
        let category = buckets::default_for(&tenant, &input.key);
        (Some(tags::meta_with(&info, &tags)), category)
    } else {
        // The copy keeps the source's metadata; in a bucket with a default
        // category, a key no rule classifies takes it.
        (None, buckets::default_for(&tenant, &input.key))
    };
    let _guard = write_condition::locked(gw, &tenant, &input.bucket, &input.key, &cond).await?;
    let mut sreq = StorageRequest::for_resolved(
        tenant,
        Operation::Copy {
            src_key: src_key.to_string(),
            dst_key: input.key,
            meta: meta.map(Box::new),
            sse: (!copy_sse.is_empty()).then(|| Box::new(copy_sse)),
        },
    );
    sreq.category = category;
    let r = gw.run(sreq).await?;
    let out = outcome!(&r.outcome, Copy);
    let output = CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&out.etag)),
            last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let output = with_sse_report!(output, &out.sse);
    Ok(region_header(S3Response::new(output), &r))
}
