//! A bucket on any S3-compatible service, through `aws-sdk-s3`.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
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

use crate::backend::Backend;
use crate::body::{Body, BodyStream};
use crate::error::{BoxError, StoreError};
use crate::object::{
    BackendDescription, Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo,
    ObjectSummary, PartInfo, PartsPage, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;
use crate::s3_fast::FastPath;

/// How to reach one regional bucket.
#[derive(Clone)]
pub struct S3BackendConfig {
    /// The endpoint URL (`http://127.0.0.1:3900`); `None` for AWS's own.
    pub endpoint: Option<String>,
    /// The region to sign for (`eu-west-1`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (never printed by `Debug`).
    pub secret_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`). Default `true`: most
    /// self-hosted S3 services need it.
    pub force_path_style: bool,
    /// Time allowed to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Bound on calls without a long body (see [`S3Backend`]). Default 30 s.
    pub operation_timeout: Duration,
    /// A put on the lean path whose streamed body the service stops taking
    /// (no data handed to the connection for this long, while the body itself
    /// had data ready) is aborted as unavailable. Time the body spends waiting
    /// on its own source (a slow client) does not count. Default 30 s; must be
    /// more than zero. (The SDK path has the SDK's stalled-stream protection.)
    pub stall_timeout: Duration,
    /// Attempts per call, the first included. Default 2.
    pub max_attempts: u32,
    /// Put, get, head and delete take the lean outbound path (pooled hyper
    /// client, SigV4 with the signing key kept per day) instead of the SDK's
    /// orchestrator. Default `true`; `false` sends every call through the SDK.
    pub fast_path: bool,
}

impl fmt::Debug for S3BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BackendConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("force_path_style", &self.force_path_style)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("fast_path", &self.fast_path)
            .finish()
    }
}

impl S3BackendConfig {
    /// Starts a configuration for `bucket` in `region`.
    pub fn builder(bucket: impl Into<String>, region: impl Into<String>) -> S3BackendConfigBuilder {
        S3BackendConfigBuilder {
            config: S3BackendConfig {
                endpoint: None,
                region: region.into(),
                bucket: bucket.into(),
                access_key: String::new(),
                secret_key: String::new(),
                session_token: None,
                force_path_style: true,
                connect_timeout: Duration::from_secs(5),
                operation_timeout: Duration::from_secs(30),
                stall_timeout: Duration::from_secs(30),
                max_attempts: 2,
                fast_path: true,
            },
        }
    }

    /// Every problem with this configuration, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(3..=63).contains(&self.bucket.len()) {
            p.push(format!(
                "bucket {:?}: a bucket name has 3 to 63 characters",
                self.bucket
            ));
        }
        if self.region.trim().is_empty() {
            p.push("region is empty".to_owned());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            p.push("access key and secret key are required".to_owned());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                p.push(format!(
                    "endpoint {e:?} must start with http:// or https://"
                ));
            }
        }
        if self.max_attempts == 0 {
            p.push("max_attempts must be at least 1".to_owned());
        }
        if self.stall_timeout.is_zero() {
            p.push("stall_timeout must be more than zero".to_owned());
        }
        p
    }
}

/// Builds an [`S3BackendConfig`].
#[derive(Debug, Clone)]
pub struct S3BackendConfigBuilder {
    config: S3BackendConfig,
}

impl S3BackendConfigBuilder {
    /// Sets the endpoint URL.
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.endpoint = Some(url.into());
        self
    }

    /// Sets static credentials.
    #[must_use]
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.config.access_key = access_key.into();
        self.config.secret_key = secret_key.into();
        self
    }

    /// Sets a session token.
    #[must_use]
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.config.session_token = Some(token.into());
        self
    }

    /// Chooses path-style (`true`, the default) or virtual-host addressing.
    #[must_use]
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.config.force_path_style = yes;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }

    /// Sets the operation timeout.
    #[must_use]
    pub fn operation_timeout(mut self, t: Duration) -> Self {
        self.config.operation_timeout = t;
        self
    }

    /// Sets the stall timeout of streamed uploads on the lean path (see
    /// [`S3BackendConfig::stall_timeout`]).
    #[must_use]
    pub fn stall_timeout(mut self, t: Duration) -> Self {
        self.config.stall_timeout = t;
        self
    }

    /// Sets the number of attempts per call (1 = no retry).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Chooses the lean outbound path for put, get, head and delete (`true`,
    /// the default) or the SDK for every call.
    #[must_use]
    pub fn fast_path(mut self, yes: bool) -> Self {
        self.config.fast_path = yes;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// `InvalidArgument` listing every problem at once.
    pub fn build(self) -> Result<S3BackendConfig, StoreError> {
        let problems = self.config.problems();
        if problems.is_empty() {
            Ok(self.config)
        } else {
            Err(StoreError::invalid_argument(problems.join("; ")))
        }
    }
}

/// A bucket on any S3-compatible service, through `aws-sdk-s3`.
///
/// One client per backend (so per region), signing for that region. Bodies
/// stream both ways: a put sends the caller's stream with its length, a get
/// hands back the SDK's byte stream without collecting it.
///
/// **Retries**: the SDK's standard retry strategy with at most
/// [`S3BackendConfig::max_attempts`] attempts (default 2: one retry), and only
/// for bodies that can be replayed (bytes already in memory); a streamed body
/// is sent once. **Timeouts**: `connect_timeout` for every connection;
/// `operation_timeout` bounds every call that carries no body of unknown
/// duration (head, get until headers, delete, list, create/abort/list
/// multipart, location, health), and on the lean path also a put whose body
/// is already in memory (sending it and waiting for the answer). A streamed
/// put, upload-part, copy and complete are not bounded, since a large object
/// can legitimately take minutes; a transfer that stops moving is aborted
/// instead. On the lean path a streamed put fails as `Unavailable` when the
/// service has taken no body data for [`S3BackendConfig::stall_timeout`]
/// while the body had data ready (a client that is slow to send does not
/// count); once the whole body is handed over, the wait for the answer is
/// left to the caller (the proxy's `upload_response_timeout`). The SDK path
/// relies on the SDK's stalled-stream protection.
/// **Checksums**: the client's `Content-MD5` and `x-amz-checksum-*` values are
/// sent as they are, and the service verifies them; the SDK adds none of its
/// own (`request_checksum_calculation = WhenRequired`), so what reaches the
/// service is what the client sent.
///
/// ```no_run
/// # async fn f() -> Result<(), residency_store::StoreError> {
/// use residency_store::{Backend, S3Backend, S3BackendConfig};
/// let config = S3BackendConfig::builder("residency-eu", "eu-west-1")
///     .endpoint("http://127.0.0.1:3900")
///     .credentials("GK...", "secret")
///     .build()?;
/// let eu = S3Backend::new(config)?;
/// eu.health().await?;
/// assert_eq!(eu.location().await?.as_deref(), Some("eu-west-1"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct S3Backend {
    client: aws_sdk_s3::Client,
    config: S3BackendConfig,
    /// The lean path for the hot calls, when enabled and usable.
    fast: Option<Arc<FastPath>>,
}

impl S3Backend {
    /// Builds the client. No request is made: use [`Backend::health`] to check
    /// that the bucket is reachable.
    ///
    /// # Errors
    /// `InvalidArgument` when the configuration has problems.
    pub fn new(config: S3BackendConfig) -> Result<Self, StoreError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(StoreError::invalid_argument(problems.join("; ")));
        }
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
        let fast = if config.fast_path {
            match FastPath::new(&config) {
                Ok(f) => Some(Arc::new(f)),
                Err(why) => {
                    tracing::warn!(bucket = %config.bucket, "the lean S3 path is off, every call goes through the SDK: {why}");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            config,
            fast,
        })
    }

    /// The configuration this backend was built from.
    pub fn config(&self) -> &S3BackendConfig {
        &self.config
    }

    /// Whether put, get, head and delete take the lean path.
    pub fn uses_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// The SDK client, for calls this interface does not cover.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn bucket(&self) -> &str {
        &self.config.bucket
    }

    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let t = self.config.operation_timeout;
        tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
            Err(StoreError::unavailable(format!(
                "s3 bucket {} did not answer within {t:?}",
                self.config.bucket
            )))
        })
    }
}

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

/// Maps an S3 error answer (code from the error document, HTTP status) to
/// a [`StoreError`]; shared by the SDK and the lean path.
pub(crate) fn service_error(
    code: Option<String>,
    status: Option<u16>,
    message: String,
    key: &str,
    upload_id: Option<&str>,
    source: Option<BoxError>,
) -> StoreError {
    match (code.as_deref(), status) {
        (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => StoreError::not_found(key),
        (Some("NoSuchUpload"), _) => StoreError::no_such_upload(upload_id.unwrap_or("")),
        (Some("InvalidRange"), _) | (None, Some(416)) => StoreError::InvalidRange,
        (Some("BadDigest" | "XAmzContentChecksumMismatch" | "XAmzContentSHA256Mismatch"), _) => {
            StoreError::BadDigest { detail: message }
        }
        (Some("InvalidDigest"), _) => StoreError::InvalidDigest { detail: message },
        (_, Some(s)) if s >= 500 => StoreError::Unavailable {
            message: format!(
                "service error {} (HTTP {s}): {message}",
                code.as_deref().unwrap_or("(no code)")
            ),
            source,
        },
        _ => StoreError::Backend {
            code,
            status,
            message,
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
        let m: &PutMeta = $m;
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
            content_type: owned($o.content_type()),
            user_metadata: $o
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            cache_control: owned($o.cache_control()),
            content_disposition: owned($o.content_disposition()),
            content_encoding: owned($o.content_encoding()),
            content_language: owned($o.content_language()),
            checksums: checksums_of_output!($o),
            version_id: owned($o.version_id()),
        }
    };
}

/// `bytes 0-9/100` → `(0, 9, 100)`.
pub(crate) fn parse_content_range(s: &str) -> Option<(u64, u64, u64)> {
    let rest = s.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

/// `x-amz-copy-source`: `bucket/key`, the key URL-encoded except for `/`.
fn copy_source(bucket: &str, key: &str) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
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

#[async_trait]
impl Backend for S3Backend {
    fn describe(&self) -> BackendDescription {
        BackendDescription {
            kind: "s3",
            target: format!(
                "{}/{} ({})",
                self.config.endpoint.as_deref().unwrap_or("aws"),
                self.config.bucket,
                self.config.region
            ),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        if let Some(fast) = &self.fast {
            if let Some(len) = body.len_hint().or(meta.content_length) {
                if let Some(headers) = fast.put_headers(&meta, len) {
                    // Bytes in memory: bounded like a call without a long
                    // body. A stream: the lean path's stall watchdog.
                    let in_memory = body.as_bytes().is_some();
                    let put = fast.put(key, body, len, headers);
                    let mut out = if in_memory {
                        self.timed(put).await?
                    } else {
                        put.await?
                    };
                    if out.checksums.is_empty() {
                        out.checksums = meta.checksums.without_md5();
                    }
                    return Ok(out);
                }
            }
        }
        let (stream, len) = to_byte_stream(body, meta.content_length);
        let req = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .body(stream)
            .set_content_length(len)
            .set_content_md5(meta.checksums.content_md5.clone())
            .set_checksum_algorithm(compute_algorithm(&meta.checksums));
        let req = with_checksums!(req, meta.checksums.clone());
        let req = with_meta!(req, &meta);
        let out = req.send().await.map_err(|e| map_err(e, key, None))?;
        let mut checksums = checksums_of_output!(out);
        if checksums.is_empty() {
            checksums = meta.checksums.without_md5();
        }
        Ok(PutOutput {
            etag: out.e_tag().unwrap_or_default().to_owned(),
            checksums,
            version_id: owned(out.version_id()),
        })
    }

    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        if let Some(fast) = &self.fast {
            return self.timed(fast.get(key, range)).await;
        }
        let out = self
            .timed(async {
                self.client
                    .get_object()
                    .bucket(self.bucket())
                    .key(key)
                    .set_range(range.map(|r| r.to_header()))
                    .send()
                    .await
                    .map_err(|e| map_err(e, key, None))
            })
            .await?;
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

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        if let Some(fast) = &self.fast {
            return self.timed(fast.head(key)).await;
        }
        let out = self
            .timed(async {
                self.client
                    .head_object()
                    .bucket(self.bucket())
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| map_err(e, key, None))
            })
            .await?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        Ok(info_of_output!(out, key, size))
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        if let Some(fast) = &self.fast {
            return self.timed(fast.delete(key)).await;
        }
        self.timed(async {
            self.client
                .delete_object()
                .bucket(self.bucket())
                .key(key)
                .send()
                .await
                .map_err(|e| map_err(e, key, None))
        })
        .await?;
        Ok(())
    }

    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        let out = self
            .timed(async {
                self.client
                    .list_objects_v2()
                    .bucket(self.bucket())
                    .prefix(&request.prefix)
                    .set_delimiter(request.delimiter.clone())
                    .set_continuation_token(request.continuation_token.clone())
                    .set_start_after(request.start_after.clone())
                    .max_keys(i32::try_from(request.max_keys.min(1000)).unwrap_or(1000))
                    .send()
                    .await
                    .map_err(|e| map_err(e, &request.prefix, None))
            })
            .await?;
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

    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
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
        let out = req
            .send()
            .await
            .map_err(|e| match map_err(e, dst_key, None) {
                // The destination is written, so a missing key is the source.
                StoreError::NotFound { .. } => StoreError::not_found(src_key),
                other => other,
            })?;
        let result = out.copy_object_result();
        Ok(PutOutput {
            etag: result
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_owned(),
            checksums: result.map(|r| checksums_of_output!(r)).unwrap_or_default(),
            version_id: owned(out.version_id()),
        })
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
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
        let req = with_meta!(req, &meta);
        let out = self
            .timed(async { req.send().await.map_err(|e| map_err(e, key, None)) })
            .await?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Backend {
                code: None,
                status: None,
                message: "CreateMultipartUpload answered without an upload id".into(),
            })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        checksums: Checksums,
    ) -> Result<PartInfo, StoreError> {
        crate::multipart::check_part_number(part_number)?;
        let (stream, len) = to_byte_stream(body, None);
        let req = self
            .client
            .upload_part()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .part_number(to_i32(part_number))
            .body(stream)
            .set_content_length(len)
            .set_content_md5(checksums.content_md5.clone())
            .set_checksum_algorithm(compute_algorithm(&checksums));
        let req = with_checksums!(req, checksums.clone());
        let out = req
            .send()
            .await
            .map_err(|e| map_err(e, key, Some(upload_id)))?;
        let mut reported = checksums_of_output!(out);
        if reported.is_empty() {
            reported = checksums.without_md5();
        }
        Ok(PartInfo {
            part_number,
            etag: out.e_tag().unwrap_or_default().to_owned(),
            size: len.unwrap_or(0).max(0) as u64,
            checksums: reported,
            last_modified: SystemTime::now(),
        })
    }

    async fn complete_multipart(
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
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.timed(async {
            self.client
                .abort_multipart_upload()
                .bucket(self.bucket())
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| map_err(e, key, Some(upload_id)))
        })
        .await?;
        Ok(())
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        part_number_marker: Option<u32>,
        max_parts: Option<u32>,
    ) -> Result<PartsPage, StoreError> {
        let out = self
            .timed(async {
                self.client
                    .list_parts()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(upload_id)
                    .set_part_number_marker(part_number_marker.map(|n| n.to_string()))
                    .set_max_parts(max_parts.map(to_i32))
                    .send()
                    .await
                    .map_err(|e| map_err(e, key, Some(upload_id)))
            })
            .await?;
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

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        // Bounded: 100 pages of 1000 uploads.
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        for _ in 0..100 {
            let page = self
                .timed(async {
                    self.client
                        .list_multipart_uploads()
                        .bucket(self.bucket())
                        .prefix(prefix)
                        .set_key_marker(key_marker.clone())
                        .set_upload_id_marker(id_marker.clone())
                        .send()
                        .await
                        .map_err(|e| map_err(e, prefix, None))
                })
                .await?;
            out.extend(page.uploads().iter().map(|u| UploadInfo {
                key: u.key().unwrap_or_default().to_owned(),
                upload_id: u.upload_id().unwrap_or_default().to_owned(),
                initiated: time(u.initiated()),
            }));
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = owned(page.next_key_marker());
            id_marker = owned(page.next_upload_id_marker());
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn location(&self) -> Result<Option<String>, StoreError> {
        let out = self
            .timed(async {
                self.client
                    .get_bucket_location()
                    .bucket(self.bucket())
                    .send()
                    .await
                    .map_err(|e| map_err(e, "", None))
            })
            .await?;
        Ok(Some(normalize_location(
            out.location_constraint().map(|c| c.as_str()),
        )))
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.timed(async {
            self.client
                .head_bucket()
                .bucket(self.bucket())
                .send()
                .await
                .map_err(|e| map_err(e, "", None))
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(copy_source("b", "t/a b+c/é"), "b/t/a%20b%2Bc/%C3%A9");
        assert_eq!(normalize_location(None), "us-east-1");
        assert_eq!(normalize_location(Some("")), "us-east-1");
        assert_eq!(normalize_location(Some("EU")), "eu-west-1");
        assert_eq!(normalize_location(Some("eu-central-1")), "eu-central-1");
    }

    #[test]
    fn config_reports_every_problem() {
        let err = S3BackendConfig::builder("eu", "")
            .endpoint("localhost:3900")
            .build()
            .unwrap_err()
            .to_string();
        for needle in ["3 to 63", "region is empty", "secret key", "http://"] {
            assert!(err.contains(needle), "{err}");
        }
        let ok = S3BackendConfig::builder("residency-eu", "eu-west-1")
            .credentials("k", "s")
            .build()
            .unwrap();
        assert!(!format!("{ok:?}").contains("\"s\""));
        assert!(ok.force_path_style);
        assert_eq!(ok.max_attempts, 2);
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_unavailable() {
        // Port 9 (discard) is closed on test machines: the connection is refused.
        let config = S3BackendConfig::builder("residency-eu", "eu-west-1")
            .endpoint("http://127.0.0.1:9")
            .credentials("k", "s")
            .max_attempts(1)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let s3 = S3Backend::new(config).unwrap();
        let err = s3.head_object("acme/x").await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.http_status(), 503);
        let err = s3
            .put_object("acme/x", Body::from("x"), PutMeta::default())
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }

    /// The real-server settings from `RESIDENCY_TEST_S3_*`, or `None` (with a
    /// notice) when they are not set; with `RESIDENCY_REQUIRE_S3=1` missing
    /// settings fail the test instead.
    fn env_config() -> Option<S3BackendConfig> {
        let names = [
            "RESIDENCY_TEST_S3_ENDPOINT",
            "RESIDENCY_TEST_S3_REGION",
            "RESIDENCY_TEST_S3_BUCKET",
            "RESIDENCY_TEST_S3_ACCESS_KEY",
            "RESIDENCY_TEST_S3_SECRET_KEY",
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            if std::env::var("RESIDENCY_REQUIRE_S3").as_deref() == Ok("1") {
                panic!(
                    "RESIDENCY_REQUIRE_S3=1 but these are not set: {}",
                    missing.join(", ")
                );
            }
            eprintln!(
                "skipping the S3 backend test against a real server: set {}",
                missing.join(", ")
            );
            return None;
        }
        let v: Vec<String> = values.into_iter().flatten().collect();
        Some(
            S3BackendConfig::builder(&v[2], &v[1])
                .endpoint(&v[0])
                .credentials(&v[3], &v[4])
                .build()
                .expect("RESIDENCY_TEST_S3_* settings"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_against_a_real_server() {
        let Some(config) = env_config() else { return };
        let region = config.region.clone();
        let s3 = S3Backend::new(config).unwrap();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("conformance-{nanos}/");
        crate::conformance::run_all(&s3, &prefix).await;
        assert_eq!(s3.location().await.unwrap(), Some(region));
        // A key that does not exist in a bucket that does: NotFound, not Backend.
        let err = s3.head_object(&format!("{prefix}none")).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
}
