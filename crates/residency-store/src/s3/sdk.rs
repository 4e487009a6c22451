//! The SDK outbound path of [`S3Backend`](super::S3Backend): every call
//! through `aws-sdk-s3`'s orchestrator.
//!
//! **Retries** happen here and only here for this path: the SDK's standard
//! retry strategy with `max_attempts` (see [`SdkPath::new`]); bodies in memory
//! are replayable, a streamed body is sent once. Timeouts are the caller's
//! ([`S3Backend`](super::S3Backend) bounds each call).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart as SdkCompletedPart,
    MetadataDirective,
};
use bytes::Bytes;
use futures::Stream;
use http_body::{Frame, SizeHint};

use super::config::S3BackendConfig;
use super::path::encode_key;
use super::service_error::service_error;
use super::sse::{sse_of_output, with_copy_source_key, with_customer_key, with_sse};
use crate::body::{Body, BodyStream};
use crate::error::{BoxError, StoreError};
use crate::object::{
    Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo, ObjectSummary,
    PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, StoredHeaders, UploadInfo,
};
use crate::range::{parse_content_range, ByteRange};
use crate::sse::Sse;

/// Maps an SDK error: not found / no such upload to their variants,
/// unreachable / timeout / 5xx to `Unavailable`, the rest to `Backend`.
fn map_err<E>(err: SdkError<E, HttpResponse>, key: &str, upload_id: Option<&str>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = |what: &str, err: SdkError<E, HttpResponse>| StoreError::Unavailable {
        message: format!("{what}: {}", DisplayErrorContext(&err)),
        source: Some(Box::new(err)),
    };
    match err {
        SdkError::TimeoutError(_) => unavailable("timed out", err),
        SdkError::DispatchFailure(_) => unavailable("could not reach the service", err),
        SdkError::ResponseError(_) => unavailable("unreadable response", err),
        SdkError::ServiceError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            let message = err
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            service_error(code, status, message, key, upload_id, Some(Box::new(err)))
        }
        other => StoreError::Backend {
            code: None,
            status: None,
            message: DisplayErrorContext(&other).to_string(),
        },
    }
}

/// A [`BodyStream`] as an `http-body` body with its exact length, so the SDK
/// sends `Content-Length` and streams the bytes.
struct StreamHttpBody {
    stream: BodyStream,
    remaining: Option<u64>,
}

impl http_body::Body for StreamHttpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(r) = &mut self.remaining {
                    *r = r.saturating_sub(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining.map(SizeHint::with_exact).unwrap_or_default()
    }
}

/// A body for the SDK: bytes in memory stay replayable (so retries work),
/// streams are sent once.
fn to_byte_stream(body: Body, declared: Option<u64>) -> (ByteStream, Option<i64>) {
    let len = body.len_hint().or(declared);
    if let Some(b) = body.as_bytes() {
        return (ByteStream::from(b.clone()), len.map(|n| n as i64));
    }
    let stream = body.into_stream();
    (
        ByteStream::from_body_1_x(StreamHttpBody {
            stream,
            remaining: len,
        }),
        len.map(|n| n as i64),
    )
}

/// The SDK's response body as a [`Body`] stream, chunk by chunk.
struct SdkStream(Pin<Box<ByteStream>>);

impl Stream for SdkStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(|e| Box::new(e) as BoxError)))
    }
}

fn time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// Reads the `checksum_*` getters every S3 output type has.
macro_rules! checksums_of_output {
    ($o:expr) => {
        Checksums {
            content_md5: None,
            compute: None,
            crc32: owned($o.checksum_crc32()),
            crc32c: owned($o.checksum_crc32_c()),
            sha1: owned($o.checksum_sha1()),
            sha256: owned($o.checksum_sha256()),
            crc64nvme: owned($o.checksum_crc64_nvme()),
        }
    };
}

/// Sets the `checksum_*` fields every S3 input builder has.
/// A checksum the client sent as a trailer (`Checksums::compute`): the SDK
/// computes it and sends it as a trailer too, so the backend verifies and
/// stores it.
fn compute_algorithm(c: &Checksums) -> Option<ChecksumAlgorithm> {
    let any_value = c.crc32.is_some()
        || c.crc32c.is_some()
        || c.sha1.is_some()
        || c.sha256.is_some()
        || c.crc64nvme.is_some();
    c.compute
        .as_deref()
        .filter(|_| !any_value)
        .map(|a| ChecksumAlgorithm::from(a.to_ascii_uppercase().as_str()))
}

macro_rules! with_checksums {
    ($b:expr, $c:expr) => {{
        let c: Checksums = $c;
        $b.set_checksum_crc32(c.crc32)
            .set_checksum_crc32_c(c.crc32c)
            .set_checksum_sha1(c.sha1)
            .set_checksum_sha256(c.sha256)
            .set_checksum_crc64_nvme(c.crc64nvme)
    }};
}

/// Sets content type, metadata and the other stored headers.
macro_rules! with_meta {
    ($b:expr, $m:expr) => {{
        let m: &StoredHeaders = &$m.headers;
        let metadata: HashMap<String, String> = m
            .user_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        $b.set_content_type(m.content_type.clone())
            .set_metadata((!metadata.is_empty()).then_some(metadata))
            .set_cache_control(m.cache_control.clone())
            .set_content_disposition(m.content_disposition.clone())
            .set_content_encoding(m.content_encoding.clone())
            .set_content_language(m.content_language.clone())
    }};
}

/// Builds an [`ObjectInfo`] from a HeadObject or GetObject output.
macro_rules! info_of_output {
    ($o:expr, $key:expr, $size:expr) => {
        ObjectInfo {
            key: $key.to_owned(),
            size: $size,
            etag: $o.e_tag().unwrap_or_default().to_owned(),
            last_modified: time($o.last_modified()),
            headers: StoredHeaders {
                content_type: owned($o.content_type()),
                user_metadata: $o
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                cache_control: owned($o.cache_control()),
                content_disposition: owned($o.content_disposition()),
                content_encoding: owned($o.content_encoding()),
                content_language: owned($o.content_language()),
            },
            checksums: checksums_of_output!($o),
            version_id: owned($o.version_id()),
            sse: sse_of_output!($o),
        }
    };
}

/// The `(key marker, upload id marker)` of the next page of uploads.
pub(super) type UploadMarkers = (Option<String>, Option<String>);

/// The SDK client for one bucket.
#[derive(Debug, Clone)]
pub(super) struct SdkPath {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl SdkPath {
    /// Builds the client (no request is made).
    pub(super) fn new(config: &S3BackendConfig) -> Self {
        let creds = Credentials::new(
            config.access_key.clone(),
            config.secret_key.clone(),
            config.session_token.clone(),
            None,
            "residency",
        );
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(creds)
            .force_path_style(config.force_path_style)
            // This path's one retry policy.
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.connect_timeout)
                    .build(),
            )
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(e) = &config.endpoint {
            b = b.endpoint_url(e);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: config.bucket.clone(),
        }
    }

    pub(super) fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A put; the caller fills in checksums the service did not report.
    pub(super) async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: &PutMeta,
    ) -> Result<PutOutput, StoreError> {
        let (stream, len) = to_byte_stream(body, meta.content_length);
        let req = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .body(stream)
            .set_content_length(len)
            .set_content_md5(meta.checksums.content_md5.clone())
            .set_checksum_algorithm(compute_algorithm(&meta.checksums))
            .set_if_none_match(meta.create_only.then(|| "*".to_string()));
        let req = with_checksums!(req, meta.checksums.clone());
        let req = with_meta!(req, meta);
        let req = with_sse!(req, &meta.sse);
        let out = req.send().await.map_err(|e| map_err(e, key, None))?;
        Ok(PutOutput {
            etag: out.e_tag().unwrap_or_default().to_owned(),
            checksums: checksums_of_output!(out),
            version_id: owned(out.version_id()),
            sse: sse_of_output!(out),
        })
    }

    pub(super) async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
        sse: &Sse,
    ) -> Result<GetOutput, StoreError> {
        let req = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .set_range(range.map(|r| r.to_header()));
        let out = with_customer_key!(req, sse)
            .send()
            .await
            .map_err(|e| map_err(e, key, None))?;
        let len = out.content_length().map(|n| n.max(0) as u64);
        let content_range = if range.is_some() {
            out.content_range().and_then(parse_content_range)
        } else {
            None
        };
        let size = match content_range {
            Some((_, _, total)) => total,
            None => len.unwrap_or(0),
        };
        let info = info_of_output!(out, key, size);
        let body = Body::from_stream(SdkStream(Box::pin(out.body)), len);
        Ok(GetOutput {
            info,
            body,
            content_range,
        })
    }

    pub(super) async fn head_object(&self, key: &str, sse: &Sse) -> Result<ObjectInfo, StoreError> {
        let req = self.client.head_object().bucket(self.bucket()).key(key);
        let out = with_customer_key!(req, sse)
            .send()
            .await
            .map_err(|e| map_err(e, key, None))?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        Ok(info_of_output!(out, key, size))
    }

    pub(super) async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(e, key, None))?;
        Ok(())
    }

    pub(super) async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(&request.prefix)
            .set_delimiter(request.delimiter.clone())
            .set_continuation_token(request.continuation_token.clone())
            .set_start_after(request.start_after.clone())
            .max_keys(i32::try_from(request.max_keys.min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| map_err(e, &request.prefix, None))?;
        let objects = out
            .contents()
            .iter()
            .map(|o| ObjectSummary {
                key: o.key().unwrap_or_default().to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().unwrap_or_default().to_owned(),
                last_modified: time(o.last_modified()),
            })
            .collect();
        let common_prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| owned(p.prefix()))
            .collect();
        let truncated = out.is_truncated().unwrap_or(false);
        Ok(ListPage {
            objects,
            common_prefixes,
            next_continuation_token: if truncated {
                owned(out.next_continuation_token())
            } else {
                None
            },
        })
    }

    pub(super) async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
        sse: &Sse,
    ) -> Result<PutOutput, StoreError> {
        let mut req = self
            .client
            .copy_object()
            .bucket(self.bucket())
            .key(dst_key)
            .copy_source(copy_source(self.bucket(), src_key));
        if let Some(meta) = &meta {
            req = with_meta!(req.metadata_directive(MetadataDirective::Replace), meta);
        }
        let req = with_sse!(req, sse);
        let out = with_copy_source_key!(req, sse).send().await.map_err(|e| {
            match map_err(e, dst_key, None) {
                // The destination is written, so a missing key is the source.
                StoreError::NotFound { .. } => StoreError::not_found(src_key),
                other => other,
            }
        })?;
        let result = out.copy_object_result();
        Ok(PutOutput {
            etag: result
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_owned(),
            checksums: result.map(|r| checksums_of_output!(r)).unwrap_or_default(),
            version_id: owned(out.version_id()),
            sse: sse_of_output!(out),
        })
    }

    pub(super) async fn create_multipart(
        &self,
        key: &str,
        meta: &PutMeta,
    ) -> Result<String, StoreError> {
        let req = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .set_checksum_algorithm(
                meta.checksum_algorithm
                    .as_deref()
                    .map(ChecksumAlgorithm::from),
            );
        let req = with_meta!(req, meta);
        let out = with_sse!(req, &meta.sse)
            .send()
            .await
            .map_err(|e| map_err(e, key, None))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Backend {
                code: None,
                status: None,
                message: "CreateMultipartUpload answered without an upload id".into(),
            })
    }

    pub(super) async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        let (stream, len) = to_byte_stream(part.body, None);
        let req = self
            .client
            .upload_part()
            .bucket(self.bucket())
            .key(part.key)
            .upload_id(part.upload_id)
            .part_number(to_i32(part.part_number))
            .body(stream)
            .set_content_length(len)
            .set_content_md5(part.checksums.content_md5.clone())
            .set_checksum_algorithm(compute_algorithm(&part.checksums));
        let req = with_checksums!(req, part.checksums.clone());
        let out = with_customer_key!(req, &part.sse)
            .send()
            .await
            .map_err(|e| map_err(e, part.key, Some(part.upload_id)))?;
        let mut reported = checksums_of_output!(out);
        if reported.is_empty() {
            reported = part.checksums.without_md5();
        }
        Ok(PartInfo {
            part_number: part.part_number,
            etag: out.e_tag().unwrap_or_default().to_owned(),
            size: len.unwrap_or(0).max(0) as u64,
            checksums: reported,
            last_modified: SystemTime::now(),
        })
    }

    pub(super) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        let parts = parts
            .into_iter()
            .map(|p| {
                let b = SdkCompletedPart::builder()
                    .part_number(to_i32(p.part_number))
                    .e_tag(p.etag);
                with_checksums!(b, p.checksums).build()
            })
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_err(e, key, Some(upload_id)))?;
        Ok(PutOutput {
            etag: out.e_tag().unwrap_or_default().to_owned(),
            checksums: checksums_of_output!(out),
            version_id: owned(out.version_id()),
            sse: Default::default(),
        })
    }

    pub(super) async fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| map_err(e, key, Some(upload_id)))?;
        Ok(())
    }

    pub(super) async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        let out = self
            .client
            .list_parts()
            .bucket(self.bucket())
            .key(query.key)
            .upload_id(query.upload_id)
            .set_part_number_marker(query.part_number_marker.map(|n| n.to_string()))
            .set_max_parts(query.max_parts.map(to_i32))
            .send()
            .await
            .map_err(|e| map_err(e, query.key, Some(query.upload_id)))?;
        let parts = out
            .parts()
            .iter()
            .map(|p| PartInfo {
                part_number: p.part_number().unwrap_or(0).max(0) as u32,
                etag: p.e_tag().unwrap_or_default().to_owned(),
                size: p.size().unwrap_or(0).max(0) as u64,
                checksums: checksums_of_output!(p),
                last_modified: time(p.last_modified()),
            })
            .collect();
        let next_part_number_marker = if out.is_truncated().unwrap_or(false) {
            out.next_part_number_marker().and_then(|m| m.parse().ok())
        } else {
            None
        };
        Ok(PartsPage {
            parts,
            next_part_number_marker,
        })
    }

    /// One page of uploads and the markers of the next (`None`: the last).
    pub(super) async fn list_uploads_page(
        &self,
        prefix: &str,
        (key_marker, id_marker): UploadMarkers,
    ) -> Result<(Vec<UploadInfo>, Option<UploadMarkers>), StoreError> {
        let page = self
            .client
            .list_multipart_uploads()
            .bucket(self.bucket())
            .prefix(prefix)
            .set_key_marker(key_marker)
            .set_upload_id_marker(id_marker)
            .send()
            .await
            .map_err(|e| map_err(e, prefix, None))?;
        let uploads = page
            .uploads()
            .iter()
            .map(|u| UploadInfo {
                key: u.key().unwrap_or_default().to_owned(),
                upload_id: u.upload_id().unwrap_or_default().to_owned(),
                initiated: time(u.initiated()),
            })
            .collect();
        let next = (
            owned(page.next_key_marker()),
            owned(page.next_upload_id_marker()),
        );
        let more = page.is_truncated().unwrap_or(false) && (next.0.is_some() || next.1.is_some());
        Ok((uploads, more.then_some(next)))
    }

    /// The bucket's region.
    pub(super) async fn location(&self) -> Result<String, StoreError> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(self.bucket())
            .send()
            .await
            .map_err(|e| map_err(e, "", None))?;
        Ok(normalize_location(
            out.location_constraint().map(|c| c.as_str()),
        ))
    }

    pub(super) async fn health(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(self.bucket())
            .send()
            .await
            .map_err(|e| map_err(e, "", None))?;
        Ok(())
    }
}

/// `x-amz-copy-source`: `bucket/key`, the key URL-encoded except for `/`.
fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", encode_key(key))
}

/// GetBucketLocation's answer as a region: empty means `us-east-1`, and the
/// legacy `EU` means `eu-west-1`.
fn normalize_location(constraint: Option<&str>) -> String {
    match constraint.map(str::trim) {
        None | Some("") => "us-east-1".to_owned(),
        Some("EU") => "eu-west-1".to_owned(),
        Some(r) => r.to_owned(),
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(copy_source("b", "t/a b+c/é"), "b/t/a%20b%2Bc/%C3%A9");
        assert_eq!(normalize_location(None), "us-east-1");
        assert_eq!(normalize_location(Some("")), "us-east-1");
        assert_eq!(normalize_location(Some("EU")), "eu-west-1");
        assert_eq!(normalize_location(Some("eu-central-1")), "eu-central-1");
    }
}
