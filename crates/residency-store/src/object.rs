//! Object metadata and the inputs and outputs of backend operations.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::body::Body;

/// Integrity checksums, base64-encoded exactly as S3 carries them in
/// `Content-MD5` and `x-amz-checksum-*` headers.
///
/// On writes they are passed to the backend, which verifies them against the
/// data and refuses the write (`BadDigest`) on a mismatch; on reads they are
/// what the backend reports for the object. S3 services accept
/// `Content-MD5` plus at most one `x-amz-checksum-*` value per request; the
/// local backends verify every value given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checksums {
    /// `Content-MD5`: base64 of the 16-byte MD5 (writes only; reads report the ETag instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    /// `x-amz-checksum-crc32`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    /// `x-amz-checksum-crc32c`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    /// `x-amz-checksum-sha1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// `x-amz-checksum-sha256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `x-amz-checksum-crc64nvme`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// An algorithm (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`) whose
    /// value the backend computes and stores although none is given here:
    /// the client sent it as a trailer, which the caller verifies while the
    /// body streams. Writes only.
    #[serde(skip)]
    pub compute: Option<String>,
}

impl Checksums {
    /// True when no checksum is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The values by their HTTP header names (`content-md5`,
    /// `x-amz-checksum-*`), in a fixed order.
    pub fn named(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("content-md5", self.content_md5.as_deref()),
            ("x-amz-checksum-crc32", self.crc32.as_deref()),
            ("x-amz-checksum-crc32c", self.crc32c.as_deref()),
            ("x-amz-checksum-sha1", self.sha1.as_deref()),
            ("x-amz-checksum-sha256", self.sha256.as_deref()),
            ("x-amz-checksum-crc64nvme", self.crc64nvme.as_deref()),
        ]
    }

    /// The `x-amz-checksum-*` values of an HTTP answer (`Content-MD5` is
    /// never answered: the ETag stands for it).
    pub fn from_http(h: &http::HeaderMap) -> Self {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            content_md5: None,
            compute: None,
            crc32: get("x-amz-checksum-crc32"),
            crc32c: get("x-amz-checksum-crc32c"),
            sha1: get("x-amz-checksum-sha1"),
            sha256: get("x-amz-checksum-sha256"),
            crc64nvme: get("x-amz-checksum-crc64nvme"),
        }
    }

    /// The same checksums without `Content-MD5` (what an object reports).
    pub(crate) fn without_md5(&self) -> Self {
        Self {
            content_md5: None,
            ..self.clone()
        }
    }
}

/// The headers stored with an object and answered on GET and HEAD: one set,
/// shared by a write ([`PutMeta`]), a read ([`ObjectInfo`]) and the
/// directory backend's metadata files (whose JSON fields these are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredHeaders {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// User metadata: the `x-amz-meta-*` headers without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
}

impl StoredHeaders {
    /// The standard headers (all but user metadata) by their HTTP names, in
    /// a fixed order.
    pub fn standard(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("content-type", self.content_type.as_deref()),
            ("cache-control", self.cache_control.as_deref()),
            ("content-disposition", self.content_disposition.as_deref()),
            ("content-encoding", self.content_encoding.as_deref()),
            ("content-language", self.content_language.as_deref()),
        ]
    }

    /// The stored headers of an HTTP answer (a GET or HEAD of S3).
    pub fn from_http(h: &http::HeaderMap) -> Self {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            content_type: get("content-type"),
            user_metadata: h
                .iter()
                .filter_map(|(name, value)| {
                    let k = name.as_str().strip_prefix("x-amz-meta-")?;
                    Some((k.to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            cache_control: get("cache-control"),
            content_disposition: get("content-disposition"),
            content_encoding: get("content-encoding"),
            content_language: get("content-language"),
        }
    }
}

/// What is stored with an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutMeta {
    /// Content type, user metadata and the other stored headers.
    pub headers: StoredHeaders,
    /// `Content-Length`, when the caller knows it. A body with a known length
    /// takes precedence; the two must agree.
    pub content_length: Option<u64>,
    /// Checksums of the body, verified by the backend (ignored by
    /// `create_multipart` and `copy_object`).
    pub checksums: Checksums,
    /// `x-amz-checksum-algorithm` (`CRC32`, `CRC32C`, `SHA1`, `SHA256`,
    /// `CRC64NVME`): for `create_multipart`, the algorithm the parts will carry.
    pub checksum_algorithm: Option<String>,
    /// The encryption asked for (SSE-C key, SSE-S3, SSE-KMS); empty for none.
    pub sse: crate::Sse,
    /// Create only (`If-None-Match: *`, `put_object` only): store nothing
    /// when an object has the key, and fail with `PreconditionFailed`
    /// ([`crate::StoreError::is_precondition_failed`]). The memory and
    /// directory backends decide it atomically within their process; the S3
    /// backend sends the header, which S3 honours and some S3-compatible
    /// stores (Garage v1.x) ignore, overwriting.
    pub create_only: bool,
}

impl PutMeta {
    /// Metadata with just a content type.
    pub fn with_content_type(content_type: impl Into<String>) -> Self {
        Self {
            headers: StoredHeaders {
                content_type: Some(content_type.into()),
                ..StoredHeaders::default()
            },
            ..Self::default()
        }
    }
}

/// What a backend knows about a stored object (HEAD, GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key in the backend's bucket.
    pub key: String,
    /// Size of the whole object in bytes.
    pub size: u64,
    /// The ETag as on the wire, quoted: `"<md5 hex>"`, or `"<hex>-<parts>"`
    /// for a multipart object.
    pub etag: String,
    /// Last modification time.
    pub last_modified: SystemTime,
    /// Content type, user metadata and the other stored headers.
    pub headers: StoredHeaders,
    /// The checksums the backend reports for the object.
    pub checksums: Checksums,
    /// The version id, on a versioned S3 bucket.
    pub version_id: Option<String>,
    /// The encryption the service reports for the object.
    pub sse: crate::SseReport,
}

/// One entry of a listing: S3 list answers carry no content type or user metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag, quoted as on the wire.
    pub etag: String,
    /// Last modification time.
    pub last_modified: SystemTime,
}

/// The answer to a successful write (put, copy, complete multipart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutput {
    /// The new object's ETag, quoted.
    pub etag: String,
    /// The checksums the backend verified or computed.
    pub checksums: Checksums,
    /// The version id, on a versioned S3 bucket.
    pub version_id: Option<String>,
    /// The encryption the service reports for the write.
    pub sse: crate::SseReport,
}

/// The answer to a GET.
#[derive(Debug)]
pub struct GetOutput {
    /// The object's metadata (`info.size` is the size of the whole object).
    pub info: ObjectInfo,
    /// The selected bytes, streamed. Its length hint is the number of bytes served.
    pub body: Body,
    /// For a range request: the inclusive `(start, end)` offsets served and
    /// the object's total size, as in `Content-Range: bytes start-end/total`.
    pub content_range: Option<(u64, u64, u64)>,
}

/// A ListObjectsV2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Group keys sharing the prefix up to this delimiter into common prefixes.
    pub delimiter: Option<String>,
    /// An opaque token from a previous page's `next_continuation_token`.
    pub continuation_token: Option<String>,
    /// Only keys strictly after this one.
    pub start_after: Option<String>,
    /// At most this many objects plus common prefixes (S3 caps it at 1000).
    pub max_keys: usize,
}

impl ListRequest {
    /// A request for all keys under `prefix`, 1000 per page, no delimiter.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            delimiter: None,
            continuation_token: None,
            start_after: None,
            max_keys: 1000,
        }
    }

    /// Sets the delimiter.
    #[must_use]
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Continues after a previous page.
    #[must_use]
    pub fn continuation_token(mut self, token: Option<String>) -> Self {
        self.continuation_token = token;
        self
    }

    /// Starts after this key.
    #[must_use]
    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
}

impl Default for ListRequest {
    fn default() -> Self {
        Self::new("")
    }
}

/// One page of a listing. Objects and common prefixes are each in
/// lexicographic byte order of their keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The objects on this page.
    pub objects: Vec<ObjectSummary>,
    /// The common prefixes on this page (each ends with the delimiter).
    pub common_prefixes: Vec<String>,
    /// Set when there are more results: pass it as `continuation_token`.
    pub next_continuation_token: Option<String>,
}

/// The answer to an upload-part request, and one entry of a parts listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// The part number (1..=10000).
    pub part_number: u32,
    /// The part's ETag, quoted.
    pub etag: String,
    /// The part's size in bytes.
    pub size: u64,
    /// The part's checksums.
    pub checksums: Checksums,
    /// When the part was uploaded.
    pub last_modified: SystemTime,
}

/// One part named in a complete-multipart request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// The part number.
    pub part_number: u32,
    /// The ETag returned by `upload_part` (quoted or not).
    pub etag: String,
    /// The checksums returned by `upload_part`, when the client sends them.
    pub checksums: Checksums,
}

/// One page of a parts listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartsPage {
    /// The parts, in part-number order.
    pub parts: Vec<PartInfo>,
    /// Set when there are more parts: pass it as `part_number_marker`.
    pub next_part_number_marker: Option<u32>,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The key the upload will create.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
    /// When the upload was created.
    pub initiated: SystemTime,
}

/// What kind of backend, and where it stores, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendDescription {
    /// `s3`, `dir` or `memory`.
    pub kind: &'static str,
    /// The bucket (with endpoint and region) or directory.
    pub target: String,
}

impl std::fmt::Display for BackendDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.target)
    }
}

/// One part for [`crate::Backend::upload_part`]: the upload it belongs to,
/// its number, its bytes and their checksums.
#[derive(Debug)]
pub struct PartUpload<'a> {
    /// Object key of the upload.
    pub key: &'a str,
    /// Upload id.
    pub upload_id: &'a str,
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// Part bytes.
    pub body: crate::Body,
    /// Checksums to verify, as for a put.
    pub checksums: Checksums,
    /// SSE-C: the upload's customer key (empty: none).
    pub sse: crate::Sse,
}

impl<'a> PartUpload<'a> {
    /// Part `part_number` of upload `upload_id` of `key`, with no checksums
    /// to verify (set [`Self::checksums`] for some).
    pub fn new(key: &'a str, upload_id: &'a str, part_number: u32, body: crate::Body) -> Self {
        Self {
            key,
            upload_id,
            part_number,
            body,
            checksums: Checksums::default(),
            sse: crate::Sse::default(),
        }
    }
}

/// What [`crate::Backend::list_parts`] lists: the parts of one upload after
/// `part_number_marker`, at most `max_parts` (default 1000).
#[derive(Debug, Clone, Copy)]
pub struct PartsQuery<'a> {
    /// Object key of the upload.
    pub key: &'a str,
    /// Upload id.
    pub upload_id: &'a str,
    /// List parts after this number.
    pub part_number_marker: Option<u32>,
    /// At most this many parts.
    pub max_parts: Option<u32>,
}

impl<'a> PartsQuery<'a> {
    /// The first page of the parts of upload `upload_id` of `key`.
    pub fn new(key: &'a str, upload_id: &'a str) -> Self {
        Self {
            key,
            upload_id,
            part_number_marker: None,
            max_parts: None,
        }
    }
}
