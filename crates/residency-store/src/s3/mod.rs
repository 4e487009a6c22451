//! A bucket on any S3-compatible service: [`S3Backend`].
//!
//! Two outbound paths serve it, chosen per call here and nowhere else:
//! `lean/` (a pooled hyper client with SigV4 signing, for put, get, head and
//! delete) and `sdk.rs` (`aws-sdk-s3`, for every call, and for the hot calls
//! the lean path cannot send). Imports go one way: this module uses both
//! paths, the paths use `config.rs` and `service_error.rs`, never each other.

mod config;
mod lean;
mod path;
mod sdk;
mod service_error;
mod sse;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

pub use config::{S3BackendConfig, S3BackendConfigBuilder};
#[cfg(feature = "bench")]
pub use lean::BenchSigner;

use crate::backend::Backend;
use crate::body::Body;
use crate::error::StoreError;
use crate::object::{
    BackendDescription, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo, PartInfo,
    PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;
use crate::sse::{Sse, SseSupport};
use lean::LeanPath;
use sdk::SdkPath;

/// A bucket on any S3-compatible service, through `aws-sdk-s3`.
///
/// One client per backend (so per region), signing for that region. Bodies
/// stream both ways: a put sends the caller's stream with its length, a get
/// hands back the SDK's byte stream without collecting it.
///
/// **Retries**: at most [`S3BackendConfig::max_attempts`] attempts (default
/// 2: one retry), and only for bodies that can be replayed (bytes already in
/// memory); a streamed body is sent once. Each outbound path retries in one
/// place: the SDK path through the SDK's standard retry strategy (`sdk.rs`,
/// [`RetryConfig`](aws_sdk_s3::config::retry::RetryConfig)), the lean path in
/// `lean/retry.rs`. This layer itself never retries. **Timeouts**: `connect_timeout` for every connection;
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
pub struct S3Backend {
    sdk: SdkPath,
    config: S3BackendConfig,
    /// The lean path for the hot calls, when enabled and usable.
    lean: Option<Arc<LeanPath>>,
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
        let lean = if config.fast_path {
            match LeanPath::new(&config) {
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
            sdk: SdkPath::new(&config),
            config,
            lean,
        })
    }

    /// The configuration this backend was built from.
    pub fn config(&self) -> &S3BackendConfig {
        &self.config
    }

    /// Whether put, get, head and delete take the lean path.
    pub fn uses_fast_path(&self) -> bool {
        self.lean.is_some()
    }

    /// The SDK client, for calls this interface does not cover.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        self.sdk.client()
    }

    /// Bounds a call by the operation timeout (see [`S3Backend`]): the one
    /// place either path's calls are timed.
    async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let t = self.config.operation_timeout;
        tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
            Err(StoreError::unavailable(format!(
                "s3 bucket {} did not answer within {t:?}",
                self.config.bucket
            )))
        })
    }

    /// Sends a put on the lean path, or gives the body back when that path
    /// cannot take it (off, unknown length, a checksum to compute, headers
    /// that are not valid HTTP).
    async fn lean_put(
        &self,
        key: &str,
        body: Body,
        meta: &PutMeta,
    ) -> Result<Result<PutOutput, StoreError>, Body> {
        let Some(lean) = &self.lean else {
            return Err(body);
        };
        let Some(len) = body.len_hint().or(meta.content_length) else {
            return Err(body);
        };
        let Some(headers) = lean.put_headers(meta, len) else {
            return Err(body);
        };
        // Bytes in memory: bounded like a call without a long body. A
        // stream: the lean path's stall watchdog.
        let in_memory = body.as_bytes().is_some();
        let put = lean.put(key, body, len, headers);
        Ok(if in_memory {
            self.timed(put).await
        } else {
            put.await
        })
    }
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
        // Encryption headers travel through the SDK path only.
        let mut out = if meta.sse.is_empty() {
            match self.lean_put(key, body, &meta).await {
                Ok(sent) => sent?,
                Err(body) => self.sdk.put_object(key, body, &meta).await?,
            }
        } else {
            self.sdk.put_object(key, body, &meta).await?
        };
        // A service that reports no checksums stored the ones it verified.
        if out.checksums.is_empty() {
            out.checksums = meta.checksums.without_md5();
        }
        Ok(out)
    }

    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        match &self.lean {
            Some(lean) => self.timed(lean.get(key, range)).await,
            None => {
                self.timed(self.sdk.get_object(key, range, &Sse::default()))
                    .await
            }
        }
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        match &self.lean {
            Some(lean) => self.timed(lean.head(key)).await,
            None => self.timed(self.sdk.head_object(key, &Sse::default())).await,
        }
    }

    fn sse_support(&self) -> SseSupport {
        self.config.sse.clone()
    }

    async fn get_object_sse(
        &self,
        key: &str,
        range: Option<ByteRange>,
        sse: &Sse,
    ) -> Result<GetOutput, StoreError> {
        if sse.is_empty() {
            return self.get_object(key, range).await;
        }
        self.timed(self.sdk.get_object(key, range, sse)).await
    }

    async fn head_object_sse(&self, key: &str, sse: &Sse) -> Result<ObjectInfo, StoreError> {
        if sse.is_empty() {
            return self.head_object(key).await;
        }
        self.timed(self.sdk.head_object(key, sse)).await
    }

    async fn copy_object_sse(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
        sse: &Sse,
    ) -> Result<PutOutput, StoreError> {
        self.sdk.copy_object(src_key, dst_key, meta, sse).await
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        match &self.lean {
            Some(lean) => self.timed(lean.delete(key)).await,
            None => self.timed(self.sdk.delete_object(key)).await,
        }
    }

    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        self.timed(self.sdk.list_objects(request)).await
    }

    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError> {
        self.sdk
            .copy_object(src_key, dst_key, meta, &Sse::default())
            .await
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        self.timed(self.sdk.create_multipart(key, &meta)).await
    }

    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        crate::multipart::check_part_number(part.part_number)?;
        self.sdk.upload_part(part).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        self.sdk.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.timed(self.sdk.abort_multipart(key, upload_id)).await
    }

    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.timed(self.sdk.list_parts(query)).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        // Bounded: 100 pages of 1000 uploads; each page is timed, not the walk.
        let mut out = Vec::new();
        let mut markers = (None, None);
        for _ in 0..100 {
            let (uploads, next) = self
                .timed(self.sdk.list_uploads_page(prefix, markers))
                .await?;
            out.extend(uploads);
            match next {
                Some(m) => markers = m,
                None => break,
            }
        }
        Ok(out)
    }

    async fn location(&self) -> Result<Option<String>, StoreError> {
        self.timed(self.sdk.location()).await.map(Some)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.timed(self.sdk.health()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

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
