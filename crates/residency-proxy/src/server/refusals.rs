//! The refusals the server makes before s3s sees a request: a declared size
//! over the limit, an unsigned or oversized form, a client that stopped
//! sending its body.

use s3s::S3ErrorCode;

use crate::client_body::ClientBody;
use crate::error;
use crate::form::{self, FormFields};

/// The most a form upload's fields (before its file) may take.
pub(super) const FORM_FIELDS_CAP: usize = 1024 * 1024;

/// The declared length of an upload's payload: `x-amz-decoded-content-length`
/// (aws-chunked bodies), else `Content-Length`. `Err` when a header is not a
/// number.
fn declared_length(headers: &http::HeaderMap) -> Result<Option<u64>, ()> {
    let h = headers
        .get("x-amz-decoded-content-length")
        .or_else(|| headers.get(http::header::CONTENT_LENGTH));
    match h {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or(()),
    }
}

/// Refuses, before anything is routed, an upload whose declared size is over
/// `max_object_bytes` (the body is never read).
pub(super) fn check_size(
    req: &http::Request<hyper::body::Incoming>,
    max_object_bytes: u64,
) -> Option<http::Response<s3s::Body>> {
    match declared_length(req.headers()) {
        Ok(Some(n)) if n > max_object_bytes => {
            metrics::counter!("residency_rejected_total", "reason" => "entity_too_large")
                .increment(1);
            Some(error::response(
                S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size.",
                http::StatusCode::BAD_REQUEST,
            ))
        }
        Ok(_) => None,
        Err(()) => Some(error::response(
            S3ErrorCode::InvalidArgument,
            "The content length is not a valid number.",
            http::StatusCode::BAD_REQUEST,
        )),
    }
}

/// Reads a form upload's fields before anything else, and refuses an
/// unsigned one (or one whose fields are too large) before its file is read.
pub(super) async fn check_form(
    parts: &http::request::Parts,
    body: &mut ClientBody<hyper::body::Incoming>,
) -> Option<http::Response<s3s::Body>> {
    if parts.method != http::Method::POST {
        return None;
    }
    let boundary = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(form::boundary)?;
    let signed_otherwise = parts.headers.contains_key(http::header::AUTHORIZATION)
        || parts
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature="));
    match form::read_fields(body, &boundary, FORM_FIELDS_CAP).await {
        FormFields::Read { signed: false, .. } if !signed_otherwise => {
            metrics::counter!("residency_rejected_total", "reason" => "anonymous_form")
                .increment(1);
            Some(error::response(
                S3ErrorCode::AccessDenied,
                "Anonymous form uploads are not allowed: sign the form (x-amz-signature and policy fields).",
                http::StatusCode::FORBIDDEN,
            ))
        }
        FormFields::Read { prefix, .. } | FormFields::Incomplete { prefix } => {
            body.set_prefix(prefix);
            None
        }
        FormFields::TooLarge => Some(error::response(
            S3ErrorCode::MaxPostPreDataLengthExceededError,
            "Your POST request fields preceding the upload file were too large.",
            http::StatusCode::BAD_REQUEST,
        )),
    }
}

/// S3's answer to a client that stopped sending its body (or trickled it).
pub(super) fn request_timeout() -> http::Response<s3s::Body> {
    error::response(
                S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the timeout period.",
        http::StatusCode::BAD_REQUEST,
    )
}
