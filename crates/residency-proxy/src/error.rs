//! The one place where every failure becomes an S3 error: the routing
//! stack's typed errors ([`to_s3`]) and the server's own refusals
//! ([`response`]), written by s3s like every other S3 answer.

use residency_store::BoxError;
use residency_tower::RoutingError;
use s3s::{S3Error, S3ErrorCode};

/// The S3 error code named `s` (a code s3s does not know is kept as sent).
pub(crate) fn code(s: &str) -> S3ErrorCode {
    S3ErrorCode::from_bytes(s.as_bytes())
        .unwrap_or_else(|| S3ErrorCode::Custom(s.to_owned().into()))
}

/// An S3 error with this code, HTTP status and message.
pub(crate) fn s3_error(code: S3ErrorCode, status: u16, message: String) -> S3Error {
    let mut err = S3Error::with_message(code, message);
    if let Ok(status) = http::StatusCode::from_u16(status) {
        err.set_status_code(status);
    }
    err
}

/// Maps whatever the routing stack returned to an S3 error: the code and
/// status [`RoutingError`] gives (the store's for a backend failure), with
/// the cause logged where an operator must see it.
pub(crate) fn to_s3(e: BoxError) -> S3Error {
    let re = match e.downcast::<RoutingError>() {
        Ok(re) => re,
        Err(other) => {
            tracing::error!(error = %other, "internal error");
            return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
        }
    };
    let message = match &*re {
        RoutingError::Denied(d) => format!("{}: {}", d.reason, d.detail),
        RoutingError::NoBackend(r) => format!("region {r} has no backend"),
        RoutingError::Audit(e) => {
            tracing::error!(error = %e, "audit record not stored: failing the write closed");
            e.to_string()
        }
        RoutingError::Store { region, source } => {
            if source.is_unavailable() {
                tracing::warn!(region = %region, error = %source, "region unavailable: failing closed");
            }
            match source {
                // The reason names the region the object is placed in.
                residency_store::StoreError::EncryptionUnsupported { .. }
                | residency_store::StoreError::EncryptionDenied { .. } => {
                    format!("region {region}: {source}")
                }
                _ => source.to_string(),
            }
        }
        RoutingError::NotFound { key } => format!("no such key: {key}"),
        RoutingError::InvalidArgument { message } => message.clone(),
        RoutingError::Directory(e) => e.to_string(),
    };
    // A backend's code s3s does not know is answered as an internal error.
    let code =
        S3ErrorCode::from_bytes(re.s3_code().as_bytes()).unwrap_or(S3ErrorCode::InternalError);
    s3_error(code, re.http_status(), message)
}

/// The S3 answer when the tenant directory cannot answer for a request's
/// key or bucket (the access check, SigV4): 503 while it is unavailable,
/// 403 for a tenant whose record is invalid. Never a guess.
pub(crate) fn directory_error(e: residency_tower::directory::DirectoryError) -> S3Error {
    tracing::warn!(error = %e, "tenant directory could not answer: request refused");
    to_s3(Box::new(RoutingError::Directory(e)))
}

/// The HTTP answer for an error the server gives before s3s sees the request
/// (the request gate, size and form checks, load shedding, timeouts).
pub(crate) fn response(
    code: S3ErrorCode,
    message: &str,
    status: http::StatusCode,
) -> http::Response<s3s::Body> {
    let status_code = status.as_u16();
    match s3_error(code, status_code, message.to_owned()).to_http_response() {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "could not write an S3 error");
            let mut resp = http::Response::new(s3s::Body::empty());
            *resp.status_mut() = status;
            resp
        }
    }
}
