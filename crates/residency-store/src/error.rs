//! The one error type every backend returns.

/// A boxed error, as passed between services and inside streaming bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage operation failed.
///
/// Backends translate their own failures into these variants so that the
/// caller (the tower layer, the sidecar) maps them to S3 responses in one
/// place: [`StoreError::s3_code`] and [`StoreError::http_status`] give the S3
/// error code and HTTP status to answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist (S3 `NoSuchKey`).
    #[error("no such key: {key}")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// The multipart upload does not exist, was completed or aborted, or
    /// belongs to another key (S3 `NoSuchUpload`).
    #[error("no such upload: {upload_id}")]
    NoSuchUpload {
        /// The upload id that was given.
        upload_id: String,
    },
    /// The key cannot be stored by this backend (escapes the directory,
    /// collides with the backend's own files or with another object).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected, in one line.
        reason: String,
    },
    /// The requested range is malformed or cannot be satisfied (S3 `InvalidRange`, 416).
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    /// A checksum sent with the data does not match the data (S3 `BadDigest`).
    /// Nothing was stored.
    #[error("bad digest: {detail}")]
    BadDigest {
        /// Which checksum did not match.
        detail: String,
    },
    /// A checksum sent with the data is not valid base64 of the right size
    /// (S3 `InvalidDigest`). Nothing was stored.
    #[error("invalid digest: {detail}")]
    InvalidDigest {
        /// Which checksum was malformed.
        detail: String,
    },
    /// The body ended before (or ran past) its declared length (S3 `IncompleteBody`).
    #[error("body length {actual} does not match the declared length {expected}")]
    IncompleteBody {
        /// The declared length.
        expected: u64,
        /// The number of bytes actually received.
        actual: u64,
    },
    /// A part named in a complete-multipart request is missing or its ETag or
    /// checksum does not match (S3 `InvalidPart`).
    #[error("invalid part {part_number}")]
    InvalidPart {
        /// The offending part number.
        part_number: u32,
    },
    /// Parts in a complete-multipart request are not in ascending order (S3 `InvalidPartOrder`).
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum part size (S3 `EntityTooSmall`).
    #[error("part {part_number} is smaller than the minimum part size")]
    EntityTooSmall {
        /// The offending part number.
        part_number: u32,
    },
    /// A request argument is invalid (bad continuation token, part number out
    /// of range, ...) (S3 `InvalidArgument`).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// The backend cannot be reached, timed out or answered with a server
    /// error. The sidecar answers `503 ServiceUnavailable`; callers must fail
    /// closed (never retry the write in another region).
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What happened, for logs.
        message: String,
        /// The underlying cause, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other error answered by the backend, with its S3 code and HTTP
    /// status kept so that the proxy can pass them on.
    #[error("backend error {}{}: {message}", code.as_deref().unwrap_or("(no code)"), status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Backend {
        /// The S3 error code, e.g. `AccessDenied`.
        code: Option<String>,
        /// The HTTP status the backend answered with.
        status: Option<u16>,
        /// The backend's message.
        message: String,
    },
    /// The backend cannot honour the encryption the request asks for (SSE-C
    /// on a directory, SSE-KMS on a region without KMS keys): S3
    /// `NotImplemented`, 501. Nothing was stored.
    #[error("{message}")]
    EncryptionUnsupported {
        /// What cannot be honoured, and by which backend.
        message: String,
    },
    /// The encryption asked for is not allowed in this region (a KMS key id
    /// of another region): S3 `AccessDenied`, 403. Nothing was stored.
    #[error("{message}")]
    EncryptionDenied {
        /// Why.
        message: String,
    },
    /// A local I/O error (directory backend).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The S3 error code to answer with (`NoSuchKey`, `ServiceUnavailable`, ...).
    pub fn s3_code(&self) -> &str {
        match self {
            Self::NotFound { .. } => "NoSuchKey",
            Self::NoSuchUpload { .. } => "NoSuchUpload",
            Self::InvalidKey { .. } => "InvalidArgument",
            Self::InvalidRange => "InvalidRange",
            Self::BadDigest { .. } => "BadDigest",
            Self::InvalidDigest { .. } => "InvalidDigest",
            Self::IncompleteBody { .. } => "IncompleteBody",
            Self::InvalidPart { .. } => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::EntityTooSmall { .. } => "EntityTooSmall",
            Self::InvalidArgument { .. } => "InvalidArgument",
            Self::Unavailable { .. } => "ServiceUnavailable",
            Self::Backend { code, .. } => code.as_deref().unwrap_or("InternalError"),
            Self::EncryptionUnsupported { .. } => "NotImplemented",
            Self::EncryptionDenied { .. } => "AccessDenied",
            Self::Io(_) => "InternalError",
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::NoSuchUpload { .. } => 404,
            Self::InvalidRange => 416,
            Self::InvalidKey { .. }
            | Self::BadDigest { .. }
            | Self::InvalidDigest { .. }
            | Self::IncompleteBody { .. }
            | Self::InvalidPart { .. }
            | Self::InvalidPartOrder
            | Self::EntityTooSmall { .. }
            | Self::InvalidArgument { .. } => 400,
            Self::Unavailable { .. } => 503,
            Self::Backend { status, .. } => status.unwrap_or(500),
            Self::EncryptionUnsupported { .. } => 501,
            Self::EncryptionDenied { .. } => 403,
            Self::Io(_) => 500,
        }
    }

    /// True when the backend could not be reached or failed on its side:
    /// the request's outcome is unknown and the region must be treated as down.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Shorthand for [`StoreError::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// A create-only write found an object at the key (S3 `412
    /// PreconditionFailed`).
    pub fn precondition_failed(key: &str) -> Self {
        Self::Backend {
            code: Some("PreconditionFailed".into()),
            status: Some(412),
            message: format!("{key}: an object has this key (the write was create-only)"),
        }
    }

    /// True for a write whose precondition did not hold (HTTP 412), from
    /// this crate's backends or an S3 service.
    pub fn is_precondition_failed(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                status: Some(412),
                ..
            }
        ) || matches!(self, Self::Backend { code: Some(c), .. } if c == "PreconditionFailed")
    }

    pub(crate) fn invalid_key(key: &str, reason: impl Into<String>) -> Self {
        Self::InvalidKey {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(key: &str) -> Self {
        Self::NotFound {
            key: key.to_owned(),
        }
    }

    pub(crate) fn no_such_upload(upload_id: &str) -> Self {
        Self::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        }
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(StoreError::not_found("k").s3_code(), "NoSuchKey");
        assert_eq!(StoreError::not_found("k").http_status(), 404);
        assert_eq!(StoreError::unavailable("down").http_status(), 503);
        assert_eq!(
            StoreError::unavailable("down").s3_code(),
            "ServiceUnavailable"
        );
        let e = StoreError::Backend {
            code: Some("AccessDenied".into()),
            status: Some(403),
            message: "no".into(),
        };
        assert_eq!(e.s3_code(), "AccessDenied");
        assert_eq!(e.http_status(), 403);
        assert!(e.to_string().contains("AccessDenied (HTTP 403)"));
        assert_eq!(StoreError::InvalidRange.http_status(), 416);
    }
}
