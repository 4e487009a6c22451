//! The one place where every failure becomes an S3 error.

use residency_store::{BoxError, StoreError};
use residency_tower::RoutingError;
use s3s::{S3Error, S3ErrorCode};

fn code(s: &str) -> S3ErrorCode {
    S3ErrorCode::from_bytes(s.as_bytes()).unwrap_or(S3ErrorCode::InternalError)
}

/// Maps a backend error to the S3 error a client sees.
pub(crate) fn store_error(e: &StoreError) -> S3Error {
    let mut err = S3Error::with_message(code(e.s3_code()), e.to_string());
    if let Ok(status) = http::StatusCode::from_u16(e.http_status()) {
        err.set_status_code(status);
    }
    err
}

/// Maps whatever the routing stack returned to an S3 error.
pub(crate) fn to_s3(e: BoxError) -> S3Error {
    match e.downcast::<RoutingError>() {
        Ok(re) => match *re {
            RoutingError::Denied(d) => {
                let (c, status) = match d.reason {
                    "invalid_upload_id" => (S3ErrorCode::NoSuchUpload, http::StatusCode::NOT_FOUND),
                    _ => (S3ErrorCode::AccessDenied, http::StatusCode::FORBIDDEN),
                };
                let mut err = S3Error::with_message(c, format!("{}: {}", d.reason, d.detail));
                err.set_status_code(status);
                err
            }
            RoutingError::NoBackend(r) => S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("region {r} has no backend"),
            ),
            RoutingError::Audit(e) => {
                tracing::error!(error = %e, "audit record not stored: failing the write closed");
                S3Error::with_message(S3ErrorCode::ServiceUnavailable, e.to_string())
            }
            RoutingError::NotFound { key } => store_error(&StoreError::NotFound { key }),
            RoutingError::InvalidArgument { message } => {
                store_error(&StoreError::InvalidArgument { message })
            }
            RoutingError::Store { region, source } => {
                if source.is_unavailable() {
                    tracing::warn!(region = %region, error = %source, "region unavailable: failing closed");
                }
                store_error(&source)
            }
        },
        Err(other) => {
            tracing::error!(error = %other, "internal error");
            S3Error::with_message(S3ErrorCode::InternalError, "internal error")
        }
    }
}
