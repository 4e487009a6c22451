//! What the S3 front-end answers: S3 output shapes from the store's results.

use std::collections::BTreeMap;

use residency_store::{Checksums, ObjectInfo, Outcome};
use residency_tower::StorageResponse;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Response};

pub(super) fn etag(s: &str) -> ETag {
    ETag::Strong(s.trim_matches('"').to_string())
}

/// User metadata as answered: without the entry the sidecar keeps tags in.
pub(super) fn meta_out(m: &BTreeMap<String, String>) -> Option<Metadata> {
    let shown: Metadata = m
        .iter()
        .filter(|(k, _)| k.as_str() != super::tags::RESERVED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!shown.is_empty()).then_some(shown)
}

pub(super) fn region_header<T>(mut resp: S3Response<T>, r: &StorageResponse) -> S3Response<T> {
    if let Some(region) = &r.region {
        if let Ok(v) = http::HeaderValue::from_str(region) {
            resp.headers.insert("x-residency-region", v);
        }
    }
    resp
}

pub(super) fn unexpected(o: &Outcome) -> S3Error {
    tracing::error!(kind = %o.kind(), "unexpected outcome kind");
    S3Error::new(S3ErrorCode::InternalError)
}

/// Fills the `checksum_*` fields every S3 output shape has from our
/// [`Checksums`].
macro_rules! with_checksums {
    ($out:expr, $c:expr) => {{
        let mut o = $out;
        let c: &Checksums = $c;
        o.checksum_crc32 = c.crc32.clone();
        o.checksum_crc32c = c.crc32c.clone();
        o.checksum_crc64nvme = c.crc64nvme.clone();
        o.checksum_sha1 = c.sha1.clone();
        o.checksum_sha256 = c.sha256.clone();
        o
    }};
}

pub(super) use with_checksums;

/// The outcome a handler's operation must have (by value or by reference);
/// anything else is a bug in the dispatch, answered as an internal error.
macro_rules! outcome {
    ($outcome:expr, $kind:ident) => {
        match $outcome {
            Outcome::$kind(o) => o,
            #[allow(unreachable_patterns)]
            other => return Err(output::unexpected(&other)),
        }
    };
}
pub(super) use outcome;

pub(super) fn head_output(info: &ObjectInfo) -> HeadObjectOutput {
    let out = with_checksums!(
        HeadObjectOutput {
            content_length: Some(info.size as i64),
            content_type: info.headers.content_type.clone(),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(Timestamp::from(info.last_modified)),
            metadata: meta_out(&info.headers.user_metadata),
            cache_control: info.headers.cache_control.clone(),
            content_disposition: info.headers.content_disposition.clone(),
            content_encoding: info.headers.content_encoding.clone(),
            content_language: info.headers.content_language.clone(),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        },
        &info.checksums
    );
    super::sse::with_sse_report!(out, &info.sse)
}
