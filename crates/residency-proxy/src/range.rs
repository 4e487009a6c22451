//! A GET's `Range` header as S3 reads it, where s3s reads it more strictly.
//!
//! S3 follows RFC 9110: a `Range` it cannot use is ignored (200, the whole
//! object): a malformed one, `bytes=5-2`, several ranges. A last byte past the
//! object is clamped (`bytes=0-18446744073709551615` is 206 with the whole
//! object); only a first byte past the end is `416 InvalidRange`. s3s answers
//! `400 InvalidRange` to all of these, while parsing the operation's input,
//! after the signature and access checks.
//!
//! The header cannot simply be rewritten before s3s: SDKs sign `Range` (it is
//! in `SignedHeaders`), so the rewritten request would fail its signature. So
//! such a request is served in two passes (see `server.rs`):
//!
//! 1. the request as sent goes through s3s, which verifies its signature (and
//!    date, and presigned expiry) and our access check, which records the
//!    verified access key in a [`crate::auth::Verified`] slot the server put
//!    in the request's extensions; s3s then refuses the `Range` before any
//!    operation runs (no side effect: GET and HEAD only);
//! 2. if the slot was filled, the same request, with the `Range` replaced by
//!    [`fix`]'s answer and its signature removed, goes through s3s again
//!    carrying [`crate::auth::VerifiedEarlier`], which the access check takes
//!    in place of a signature. Only the server can put an extension on a
//!    request, so a client cannot skip the signature this way, and the one
//!    header that differs is derived from the signed value.

use http::HeaderValue;
use s3s::service::S3Service;

use crate::auth::{Verified, VerifiedEarlier};

/// What to do with a `Range` header before s3s parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeFix {
    /// s3s reads it as S3 does.
    Keep,
    /// S3 ignores it: serve the whole object.
    Drop,
    /// S3 clamps it: this is the same range in a form s3s reads.
    Replace(HeaderValue),
}

/// The largest offset s3s accepts in a range (it refuses larger ones).
const S3S_MAX: u64 = i64::MAX as u64;

/// A decimal number, saturating at [`S3S_MAX`] (no object is that large, so
/// a larger first byte stays unsatisfiable and a larger last byte means "to
/// the end"); `None` unless all ASCII digits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().map_or(S3S_MAX, |n| n.min(S3S_MAX)))
}

/// How S3 reads `value`, in terms of what s3s will do with it.
pub(crate) fn fix(value: &HeaderValue) -> RangeFix {
    let Some(normal) = value.to_str().ok().and_then(normal_form) else {
        return RangeFix::Drop;
    };
    if normal.as_bytes() == value.as_bytes() {
        return RangeFix::Keep;
    }
    match HeaderValue::from_str(&normal) {
        Ok(v) if s3s::dto::Range::parse(&normal).is_ok() => RangeFix::Replace(v),
        _ => RangeFix::Drop,
    }
}

/// The range S3 serves for a header, written as s3s reads it; `None` when S3
/// ignores the header.
fn normal_form(text: &str) -> Option<String> {
    let spec = text.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => number(n).map(|n| format!("bytes=-{n}")),
        (a, "") => number(a).map(|a| format!("bytes={a}-")),
        (a, b) => match (number(a)?, number(b)?) {
            (first, last) if last < first => None,
            (first, last) if last == S3S_MAX => Some(format!("bytes={first}-")),
            (first, last) => Some(format!("bytes={first}-{last}")),
        },
    }
}

/// The query of `uri` without a presigned URL's signature parameters.
fn without_presign(uri: &http::Uri) -> http::Uri {
    const SIGNING: [&str; 10] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
    ];
    let Some(q) = uri.query() else {
        return uri.clone();
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if !SIGNING.contains(&&*k) {
            kept.append_pair(&k, &v);
        }
    }
    let kept = kept.finish();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{kept}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    http::Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// Serves a GET or HEAD whose `Range` S3 reads differently from s3s, in the
/// two passes `range.rs` explains: the request as signed (s3s verifies it,
/// then refuses the range before any operation runs), then, if that request's
/// signature and access were granted, the request with the range as S3 reads
/// it and without its signature, marked as verified.
pub(crate) async fn serve_fixed(
    s3: &S3Service,
    mut req: http::Request<hyper::body::Incoming>,
    fix: RangeFix,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    let verified = Verified::default();
    let (method, uri, version) = (req.method().clone(), req.uri().clone(), req.version());
    let mut headers = req.headers().clone();
    req.extensions_mut().insert(verified.clone());
    let first = s3.call(req.map(s3s::Body::from)).await?;
    let Some(access_key) = verified.0.get().cloned() else {
        return Ok(first);
    };
    if first.status().is_success() {
        return Ok(first);
    }
    for h in [
        http::header::AUTHORIZATION,
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
    match fix {
        RangeFix::Drop => {
            headers.remove(http::header::RANGE);
        }
        RangeFix::Replace(v) => {
            headers.insert(http::header::RANGE, v);
        }
        RangeFix::Keep => {}
    }
    let mut second = http::Request::new(s3s::Body::empty());
    *second.method_mut() = method;
    *second.uri_mut() = without_presign(&uri);
    *second.version_mut() = version;
    *second.headers_mut() = headers;
    second.extensions_mut().insert(VerifiedEarlier(access_key));
    s3.call(second).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> RangeFix {
        fix(&HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn reads_ranges_as_s3_does() {
        for keep in [
            "bytes=0-9",
            "bytes=5-",
            "bytes=-3",
            "bytes=100-200",
            "bytes=-0",
        ] {
            assert_eq!(f(keep), RangeFix::Keep, "{keep}");
        }
        for drop in [
            "bytes=5-2",
            "bytes=0-1,3-4",
            "bytes=0-1, 3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "bytes=1",
            "nonsense",
        ] {
            assert_eq!(f(drop), RangeFix::Drop, "{drop}");
        }
        let replaced = |s: &str| match f(s) {
            RangeFix::Replace(v) => v.to_str().unwrap().to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(replaced("bytes=0-18446744073709551615"), "bytes=0-");
        assert_eq!(replaced("bytes=3-99999999999999999999999"), "bytes=3-");
        // A first byte no object reaches stays unsatisfiable (416).
        assert_eq!(
            replaced("bytes=18446744073709551615-"),
            format!("bytes={S3S_MAX}-")
        );
        assert_eq!(
            replaced("bytes=-99999999999999999999"),
            format!("bytes=-{S3S_MAX}")
        );
    }

    #[test]
    fn the_second_pass_carries_no_signature() {
        let uri: http::Uri = "/acme/k?response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=K%2F20261205%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00"
            .parse()
            .unwrap();
        assert_eq!(
            without_presign(&uri).to_string(),
            "/acme/k?response-content-type=text%2Fplain"
        );
        let uri: http::Uri = "/acme/k?AWSAccessKeyId=K&Expires=1&Signature=x"
            .parse()
            .unwrap();
        assert_eq!(without_presign(&uri).to_string(), "/acme/k");
    }
}
