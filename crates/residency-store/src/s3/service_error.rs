//! An S3 error answer (the code of the error document, the HTTP status) as
//! a [`StoreError`]: the one mapping both outbound paths use.

use crate::error::{BoxError, StoreError};

/// Maps an S3 error answer (code from the error document, HTTP status) to
/// a [`StoreError`]; shared by the SDK and the lean path.
pub(super) fn service_error(
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
