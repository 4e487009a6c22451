//! The storage interface every backend implements.

use async_trait::async_trait;

use crate::body::Body;
use crate::error::StoreError;
use crate::object::{
    BackendDescription, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo, PartInfo,
    PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;
use crate::sse::{Sse, SseSupport};

/// One regional bucket (or directory).
///
/// Keys are full keys in the bucket: the caller adds the `<tenant>/` prefix;
/// the backend knows nothing of tenants or policy. Semantics follow S3: keys
/// list in lexicographic byte order, deletes are idempotent, ETags are quoted
/// MD5 hex (`-N` suffixed for multipart objects).
///
/// The trait is object safe: callers hold `Arc<dyn Backend>`.
///
/// Every method may fail with [`StoreError::Unavailable`] when the backend
/// cannot be reached; callers must fail closed.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// What this backend is and where it stores, for logs.
    fn describe(&self) -> BackendDescription;

    /// Stores an object, replacing any object with the same key. Checksums in
    /// `meta` are verified; on a mismatch nothing is stored.
    ///
    /// # Errors
    /// `BadDigest`, `InvalidDigest`, `IncompleteBody`, `InvalidKey`, `Unavailable`, `Backend`, `Io`.
    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError>;

    /// Reads an object, or the part of it selected by `range`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidRange`, `Unavailable`, `Backend`, `Io`.
    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError>;

    /// Reads an object's metadata.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`, `Backend`, `Io`.
    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError>;

    /// The encryption this backend honours (default: none, so that
    /// [`crate::execute`] refuses every request that asks for some).
    fn sse_support(&self) -> SseSupport {
        SseSupport::default()
    }

    /// [`Self::get_object`] with a customer key (SSE-C). The default refuses
    /// any encryption and reads plainly without.
    ///
    /// # Errors
    /// As `get_object`; `EncryptionUnsupported`.
    async fn get_object_sse(
        &self,
        key: &str,
        range: Option<ByteRange>,
        sse: &Sse,
    ) -> Result<GetOutput, StoreError> {
        refuse_sse(self.describe().kind, sse)?;
        self.get_object(key, range).await
    }

    /// [`Self::head_object`] with a customer key (SSE-C).
    ///
    /// # Errors
    /// As `head_object`; `EncryptionUnsupported`.
    async fn head_object_sse(&self, key: &str, sse: &Sse) -> Result<ObjectInfo, StoreError> {
        refuse_sse(self.describe().kind, sse)?;
        self.head_object(key).await
    }

    /// [`Self::copy_object`] with the source's customer key and the
    /// destination's encryption.
    ///
    /// # Errors
    /// As `copy_object`; `EncryptionUnsupported`.
    async fn copy_object_sse(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
        sse: &Sse,
    ) -> Result<PutOutput, StoreError> {
        refuse_sse(self.describe().kind, sse)?;
        self.copy_object(src_key, dst_key, meta).await
    }

    /// Deletes an object. Deleting a missing object succeeds, as in S3.
    ///
    /// # Errors
    /// `InvalidKey`, `Unavailable`, `Backend`, `Io`.
    async fn delete_object(&self, key: &str) -> Result<(), StoreError>;

    /// Lists objects (ListObjectsV2 semantics).
    ///
    /// # Errors
    /// `InvalidArgument` (bad continuation token), `Unavailable`, `Backend`, `Io`.
    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError>;

    /// Copies an object within this backend. `meta: None` copies the source's
    /// metadata; `Some` replaces it (S3 `MetadataDirective: REPLACE`).
    ///
    /// # Errors
    /// `NotFound` (source), `InvalidKey`, `Unavailable`, `Backend`, `Io`.
    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError>;

    /// Starts a multipart upload and returns its upload id.
    ///
    /// # Errors
    /// `InvalidKey`, `Unavailable`, `Backend`, `Io`.
    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError>;

    /// Uploads (or replaces) one part. Its checksums are verified like for
    /// `put_object`.
    ///
    /// # Errors
    /// `NoSuchUpload`, `InvalidArgument` (part number outside 1..=10000),
    /// `BadDigest`, `InvalidDigest`, `IncompleteBody`, `Unavailable`, `Backend`, `Io`.
    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError>;

    /// Assembles the named parts into the object and ends the upload.
    ///
    /// # Errors
    /// `NoSuchUpload`, `InvalidPart`, `InvalidPartOrder`, `EntityTooSmall`,
    /// `Unavailable`, `Backend`, `Io`.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError>;

    /// Abandons an upload and drops its parts.
    ///
    /// # Errors
    /// `NoSuchUpload`, `Unavailable`, `Backend`, `Io`.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;

    /// Lists the parts uploaded so far (see [`PartsQuery`]).
    ///
    /// # Errors
    /// `NoSuchUpload`, `Unavailable`, `Backend`, `Io`.
    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError>;

    /// Lists the uploads in progress whose key starts with `prefix`, ordered
    /// by key then initiation time.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`, `Io`.
    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError>;

    /// Where the bucket is, as its provider says (S3: GetBucketLocation, the
    /// empty answer meaning `us-east-1`). `None` for local backends.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn location(&self) -> Result<Option<String>, StoreError>;

    /// A cheap reachability check (S3: HeadBucket; directory: it exists and
    /// is writable).
    ///
    /// # Errors
    /// `Unavailable` when the backend cannot serve requests.
    async fn health(&self) -> Result<(), StoreError>;
}

/// Refuses a call that asks for encryption from a backend that honours none.
///
/// # Errors
/// `EncryptionUnsupported` when `sse` is not empty.
pub(crate) fn refuse_sse(kind: &str, sse: &Sse) -> Result<(), StoreError> {
    if sse.is_empty() {
        Ok(())
    } else {
        SseSupport::default().resolve(kind, &mut sse.clone())
    }
}
