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
}
