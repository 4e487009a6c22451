//! The S3 front-end: each S3 operation becomes a [`StorageRequest`] for the
//! tenant that owns the virtual bucket, and goes through the same
//! `RoutingLayer` an embedded user would use.

use residency_store::{ByteRange, Checksums, CompletedPart, Operation, Outcome, PutMeta};
use residency_tower::{
    RegionalDispatch, Resolved, RoutingService, RulesetHandle, StorageRequest, StorageResponse,
};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};
use tower::{Service, ServiceExt};

use crate::body::{incoming, BodyFailure};
use crate::error::to_s3;

pub(crate) mod buckets;
mod conditional;
mod copy;
pub(crate) mod cors;
mod input;
mod key_lock;
mod list;
mod output;
mod part_copy;
mod refused;
pub(crate) mod shared;
mod sse;
mod tagging;
mod tags;
mod write_condition;

use input::{
    bucket_input, category_of, check_key, checksums_of, object_input, put_meta, trailer,
    trailer_algorithm, user_metadata,
};
use output::{etag, head_output, outcome, region_header, with_checksums};
use sse::{with_sse_report, write_sse_of};
use write_condition::WriteCondition;

/// The sidecar's S3 implementation.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) rules: RulesetHandle,
    pub(crate) stack: RoutingService<RegionalDispatch>,
    /// Largest object or part body, whatever its framing.
    pub(crate) max_object_bytes: u64,
    /// Buckets shared by tenants (`[[shared_buckets]]`).
    pub(crate) shared: std::sync::Arc<shared::SharedBuckets>,
    /// Per-key locks for the writes that read before they write.
    pub(crate) locks: key_lock::KeyLocks,
}

impl Gateway {
    /// The tenant that owns a virtual bucket, as the access check resolved
    /// it (resolved here only when no access check ran).
    async fn tenant(&self, extensions: &http::Extensions, bucket: &str) -> S3Result<Resolved> {
        if let Some(r) = extensions.get::<Resolved>() {
            if r.bucket_name() == bucket {
                return Ok(r.clone());
            }
        }
        if self.shared.contains(bucket) {
            return Err(s3_error!(
                InvalidArgument,
                "bucket {bucket} is shared by tenants: the request names no tenant"
            ));
        }
        buckets::resolve(&self.rules.current(), bucket)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
    }

    async fn run(&self, req: StorageRequest) -> Result<StorageResponse, S3Error> {
        let mut svc = self.stack.clone();
        let ready = svc.ready().await.map_err(to_s3)?;
        ready.call(req).await.map_err(to_s3)
    }

    /// Runs a request whose body streams from the client: a body failure is
    /// reported as what it was (bad chunk signature, bad trailing checksum).
    async fn run_streaming(
        &self,
        req: StorageRequest,
        failure: &BodyFailure,
    ) -> Result<StorageResponse, S3Error> {
        match self.run(req).await {
            Ok(r) => Ok(r),
            Err(e) => Err(failure.take().unwrap_or(e)),
        }
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailer = trailer(&req);
        let (input, tenant) = object_input!(self, req);
        let mut user = user_metadata(input.metadata)?;
        buckets::default_category(&tenant, &input.key, &mut user);
        if let Some(t) = &input.tagging {
            tags::store(&mut user, &tags::from_header(t)?);
        }
        let cond = WriteCondition {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
        };
        let _guard =
            write_condition::locked(self, &tenant, &input.bucket, &input.key, &cond).await?;
        let failure = BodyFailure::default();
        let len = input.content_length.map(|n| n as u64);
        let mut meta = put_meta!(input, user.clone());
        // The framing of a streamed upload is not the object's encoding.
        meta.headers.content_encoding =
            meta.headers.content_encoding.filter(|e| e != "aws-chunked");
        meta.content_length = len;
        meta.checksums = checksums_of!(input);
        meta.sse = write_sse_of!(input);
        // Also asked of the region, which decides it atomically where it can.
        meta.create_only = cond.is_create_only();
        let (body, checks) = incoming(input.body, len, self.max_object_bytes, trailer, &failure);
        let mut sreq = StorageRequest::for_resolved(
            tenant,
            Operation::Put {
                key: input.key,
                body,
                meta: Box::new(meta),
            },
        )
        .with_body_checks(checks);
        sreq.category = category_of(&user);
        let r = self.run_streaming(sreq, &failure).await?;
        let out = outcome!(&r.outcome, Put);
        let output = with_checksums!(
            PutObjectOutput {
                e_tag: Some(etag(&out.etag)),
                version_id: out.version_id.clone(),
                ..Default::default()
            },
            &out.checksums
        );
        let output = with_sse_report!(output, &out.sse);
        Ok(region_header(S3Response::new(output), &r))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (input, tenant) = object_input!(self, req);
        conditional::check_version(input.version_id.as_deref())?;
        let range = match &input.range {
            Some(r) => {
                Some(ByteRange::parse(&r.to_header_string()).map_err(|_| s3_error!(InvalidRange))?)
            }
            None => None,
        };
        let sse = sse::customer_only(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let r = self
            .run(StorageRequest::for_resolved(
                tenant,
                Operation::Get {
                    key: input.key,
                    range,
                    sse,
                },
            ))
            .await?;
        let out = outcome!(r.outcome, Get);
        let info = &out.info;
        conditional::of!(input).check(info)?;
        let head = head_output(info);
        // S3 sends an object's checksums only when asked (x-amz-checksum-mode:
        // ENABLED), and never for a range.
        let sums = range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let (content_length, content_range) = match out.content_range {
            Some((start, end, total)) => (
                Some((end + 1 - start) as i64),
                Some(format!("bytes {start}-{end}/{total}")),
            ),
            None => (Some(info.size as i64), None),
        };
        let output = GetObjectOutput {
            body: Some(crate::body::Outgoing::new(out.body)),
            content_length,
            content_range,
            content_type: head.content_type,
            e_tag: head.e_tag,
            last_modified: head.last_modified,
            metadata: head.metadata,
            tag_count: tags::count(&info.headers.user_metadata),
            cache_control: head.cache_control,
            content_disposition: head.content_disposition,
            content_encoding: head.content_encoding,
            content_language: head.content_language,
            checksum_crc32: if sums { head.checksum_crc32 } else { None },
            checksum_crc32c: if sums { head.checksum_crc32c } else { None },
            checksum_crc64nvme: if sums { head.checksum_crc64nvme } else { None },
            checksum_sha1: if sums { head.checksum_sha1 } else { None },
            checksum_sha256: if sums { head.checksum_sha256 } else { None },
            accept_ranges: Some("bytes".into()),
            server_side_encryption: head.server_side_encryption,
            ssekms_key_id: head.ssekms_key_id,
            sse_customer_algorithm: head.sse_customer_algorithm,
            sse_customer_key_md5: head.sse_customer_key_md5,
            ..Default::default()
        };
        let mut resp = S3Response::new(output);
        if let Some(region) = &r.region {
            if let Ok(v) = http::HeaderValue::from_str(region) {
                resp.headers.insert("x-residency-region", v);
            }
        }
        if range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (input, tenant) = object_input!(self, req);
        conditional::check_version(input.version_id.as_deref())?;
        let sse = sse::customer_only(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let r = self
            .run(StorageRequest::for_resolved(
                tenant,
                Operation::Head {
                    key: input.key,
                    sse,
                },
            ))
            .await?;
        let info = outcome!(&r.outcome, Head);
        conditional::of!(input).check(info)?;
        let mut out = head_output(info);
        // S3 sends an object's checksums only when asked.
        let asked = input
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        if !asked {
            out.checksum_crc32 = None;
            out.checksum_crc32c = None;
            out.checksum_crc64nvme = None;
            out.checksum_sha1 = None;
            out.checksum_sha256 = None;
            out.checksum_type = None;
        }
        Ok(region_header(S3Response::new(out), &r))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (input, tenant) = object_input!(self, req);
        self.run(StorageRequest::for_resolved(
            tenant,
            Operation::Delete { key: input.key },
        ))
        .await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let (input, tenant) = bucket_input!(self, req);
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects request"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let key = obj.key;
            let stored = shared::stored_key(&tenant, key.clone()).and_then(|k| {
                check_key(&k)?;
                buckets::check_reserved(&tenant, &k)?;
                Ok(k)
            });
            let stored = match stored {
                Ok(k) => k,
                Err(e) => {
                    errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(key),
                        message: e.message().map(str::to_string),
                        version_id: None,
                    });
                    continue;
                }
            };
            match self
                .run(StorageRequest::for_resolved(
                    tenant.clone(),
                    Operation::Delete { key: stored },
                ))
                .await
            {
                Ok(_) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(key),
                    message: e.message().map(str::to_string),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::v2(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::v1(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list::versions(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (input, tenant) = object_input!(self, req);
        let mut user = user_metadata(input.metadata)?;
        buckets::default_category(&tenant, &input.key, &mut user);
        if let Some(t) = &input.tagging {
            tags::store(&mut user, &tags::from_header(t)?);
        }
        let mut meta = put_meta!(input, user.clone());
        meta.checksum_algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_string());
        meta.sse = write_sse_of!(input);
        let echo = sse::echo(Some(&meta.sse));
        let echo_key = shared::client_key(&tenant, input.key.clone());
        let mut sreq = StorageRequest::for_resolved(
            tenant,
            Operation::CreateMultipart {
                key: input.key.clone(),
                meta: Box::new(meta),
            },
        );
        sreq.category = category_of(&user);
        let r = self.run(sreq).await?;
        let id = outcome!(&r.outcome, CreateMultipart);
        let output = CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(echo_key),
            upload_id: Some(id.clone()),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        };
        let output = with_sse_report!(output, &echo);
        Ok(region_header(S3Response::new(output), &r))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailer = trailer(&req);
        let (input, tenant) = object_input!(self, req);
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let failure = BodyFailure::default();
        let len = input.content_length.map(|n| n as u64);
        let compute = trailer_algorithm(&trailer);
        let (body, checks) = incoming(input.body, len, self.max_object_bytes, trailer, &failure);
        let mut checksums = checksums_of!(input);
        checksums.compute = compute;
        let sse = sse::customer_only(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let echo = sse::echo(sse.as_deref());
        let op = Operation::UploadPart {
            key: input.key,
            upload_id: input.upload_id,
            part_number: input.part_number as u32,
            body,
            checksums: Box::new(checksums),
            sse,
        };
        let r = self
            .run_streaming(
                StorageRequest::for_resolved(tenant, op).with_body_checks(checks),
                &failure,
            )
            .await?;
        let p = outcome!(&r.outcome, UploadPart);
        let output = with_checksums!(
            UploadPartOutput {
                e_tag: Some(etag(&p.etag)),
                ..Default::default()
            },
            &p.checksums
        );
        let output = with_sse_report!(output, &echo);
        Ok(region_header(S3Response::new(output), &r))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        part_copy::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (input, tenant) = object_input!(self, req);
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .ok_or_else(|| s3_error!(MalformedXML, "the request lists no parts"))?;
        let mut list = Vec::with_capacity(parts.len());
        for p in parts {
            let (Some(n), Some(e)) = (p.part_number, p.e_tag) else {
                return Err(s3_error!(
                    MalformedXML,
                    "every part needs a PartNumber and an ETag"
                ));
            };
            list.push(CompletedPart {
                part_number: n as u32,
                etag: format!("\"{}\"", e.value()),
                checksums: Checksums {
                    crc32: p.checksum_crc32,
                    crc32c: p.checksum_crc32c,
                    crc64nvme: p.checksum_crc64nvme,
                    sha1: p.checksum_sha1,
                    sha256: p.checksum_sha256,
                    content_md5: None,
                    compute: None,
                },
            });
        }
        let cond = WriteCondition {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
        };
        let _guard =
            write_condition::locked(self, &tenant, &input.bucket, &input.key, &cond).await?;
        let op = Operation::CompleteMultipart {
            key: input.key.clone(),
            upload_id: input.upload_id,
            parts: list,
        };
        let echo = shared::client_key(&tenant, input.key.clone());
        let r = self.run(StorageRequest::for_resolved(tenant, op)).await?;
        let out = outcome!(&r.outcome, CompleteMultipart);
        let output = with_checksums!(
            CompleteMultipartUploadOutput {
                bucket: Some(input.bucket),
                key: Some(echo),
                e_tag: Some(etag(&out.etag)),
                ..Default::default()
            },
            &out.checksums
        );
        Ok(region_header(S3Response::new(output), &r))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (input, tenant) = object_input!(self, req);
        let op = Operation::AbortMultipart {
            key: input.key,
            upload_id: input.upload_id,
        };
        self.run(StorageRequest::for_resolved(tenant, op)).await?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let (input, tenant) = object_input!(self, req);
        let echo = shared::client_key(&tenant, input.key.clone());
        let op = Operation::ListParts {
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number_marker: input.part_number_marker.map(|n| n.max(0) as u32),
            max_parts: input.max_parts.map(|n| n.clamp(1, 1000) as u32),
        };
        let r = self.run(StorageRequest::for_resolved(tenant, op)).await?;
        let page = outcome!(r.outcome, ListParts);
        let parts = page
            .parts
            .iter()
            .map(|p| {
                with_checksums!(
                    Part {
                        part_number: Some(p.part_number as i32),
                        e_tag: Some(etag(&p.etag)),
                        size: Some(p.size as i64),
                        last_modified: Some(Timestamp::from(p.last_modified)),
                        ..Default::default()
                    },
                    &p.checksums
                )
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(echo),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            max_parts: input.max_parts,
            is_truncated: Some(page.next_part_number_marker.is_some()),
            next_part_number_marker: page.next_part_number_marker.map(|n| n as i32),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        list::uploads(self, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put(self, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get(self, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete(self, req).await
    }

    async fn put_bucket_replication(
        &self,
        req: S3Request<PutBucketReplicationInput>,
    ) -> S3Result<S3Response<PutBucketReplicationOutput>> {
        refused::put_replication(self, req).await
    }

    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        refused::get_replication(self, req).await
    }

    async fn put_bucket_website(
        &self,
        req: S3Request<PutBucketWebsiteInput>,
    ) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
        refused::put_website(self, req).await
    }

    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        refused::get_website(self, req).await
    }

    async fn put_bucket_inventory_configuration(
        &self,
        req: S3Request<PutBucketInventoryConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketInventoryConfigurationOutput>> {
        refused::put_inventory(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        if !self.shared.contains(&req.input.bucket) {
            self.tenant(&req.extensions, &req.input.bucket).await?;
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.list_all(req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.put_cors(req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.get_cors(req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.delete_cors(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.create(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete(req).await
    }
}

/// Helper to make the shared pieces visible to `server`.
pub(crate) fn gateway(
    rules: RulesetHandle,
    stack: RoutingService<RegionalDispatch>,
    max_object_bytes: u64,
    shared: std::sync::Arc<shared::SharedBuckets>,
) -> Gateway {
    Gateway {
        rules,
        stack,
        max_object_bytes,
        shared,
        locks: key_lock::KeyLocks::default(),
    }
}
