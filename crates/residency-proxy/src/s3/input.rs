//! What the S3 front-end reads from a client's request: user metadata,
//! checksums, the announced trailer, and the checks on keys and listing
//! parameters made before anything is routed.

use std::collections::BTreeMap;

use residency_policy::CATEGORY_HEADER;
use s3s::dto::{CopySource, Metadata};
use s3s::{s3_error, S3Request, S3Result};

use crate::body::Trailer;

const META_CATEGORY: &str = "residency-category";

/// The algorithm of an announced trailing checksum (`x-amz-checksum-crc32` → `crc32`).
pub(super) fn trailer_algorithm(t: &Option<Trailer>) -> Option<String> {
    t.as_ref()
        .and_then(|t| t.header.strip_prefix("x-amz-checksum-"))
        .map(str::to_string)
}

/// The checksums a PutObject or UploadPart input carries.
macro_rules! checksums_of {
    ($input:ident) => {
        Checksums {
            content_md5: $input.content_md5,
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            crc64nvme: $input.checksum_crc64nvme,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
            compute: None,
        }
    };
}
pub(super) use checksums_of;

/// The stored headers every object-writing input carries (PutObject,
/// CopyObject with `REPLACE`, CreateMultipartUpload).
macro_rules! put_meta {
    ($input:ident, $user:expr) => {
        PutMeta {
            headers: residency_store::StoredHeaders {
                content_type: $input.content_type,
                user_metadata: $user,
                cache_control: $input.cache_control,
                content_disposition: $input.content_disposition,
                content_encoding: $input.content_encoding,
                content_language: $input.content_language,
            },
            ..Default::default()
        }
    };
}
pub(super) use put_meta;

/// A bucket operation's input and the tenant the access check resolved.
macro_rules! bucket_input {
    ($gateway:expr, $req:ident) => {{
        let input = $req.input;
        let tenant = $gateway.tenant(&$req.extensions, &input.bucket).await?;
        (input, tenant)
    }};
}
pub(super) use bucket_input;

/// An object operation's input and the tenant the access check resolved,
/// its key checked before anything is routed.
macro_rules! object_input {
    ($gateway:expr, $req:ident) => {{
        let (mut input, tenant) = bucket_input!($gateway, $req);
        input.key = crate::s3::shared::stored_key(&tenant, input.key)?;
        check_key(&input.key)?;
        crate::s3::buckets::check_reserved(&tenant, &input.key)?;
        (input, tenant)
    }};
}
pub(super) use object_input;

/// A write's user metadata, names lowercased; the name the sidecar keeps
/// tags under is refused (see [`super::tagging::RESERVED`]).
pub(super) fn user_metadata(m: Option<Metadata>) -> S3Result<BTreeMap<String, String>> {
    let meta = m
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        })
        .unwrap_or_default();
    super::tags::refuse_reserved(&meta)?;
    Ok(meta)
}

/// The trailing checksum a streaming upload announces (`x-amz-trailer`).
pub(super) fn trailer<T>(req: &S3Request<T>) -> Option<Trailer> {
    let header = req
        .headers
        .get("x-amz-trailer")?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_lowercase();
    let handle = req.trailing_headers.clone()?;
    Some(Trailer { header, handle })
}

/// Characters that may not appear in a key or a listing parameter: C0 and
/// C1 controls (NUL included) and the noncharacters U+FFFE and U+FFFF, none
/// of which an XML 1.0 listing can carry.
fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// The longest key a client may use, in bytes, as in S3. It counts the
/// client's key only: the tenant prefix the sidecar adds is not the client's.
const MAX_KEY_BYTES: usize = 1024;

/// Refuses keys that are unsafe to hand on, before anything is routed:
/// control characters (NUL included), and `.` or `..` path segments, which
/// tools and directory backends resolve as paths (`tickets/../../other/x`).
/// s3s checks the length of a key in the path; a copy source or a
/// DeleteObjects key is checked here.
pub(super) fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    if key.chars().any(is_unsafe_char) {
        return Err(s3_error!(
            InvalidArgument,
            "object keys may not contain control characters"
        ));
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(s3_error!(
            InvalidArgument,
            "object keys may not contain \".\" or \"..\" path segments"
        ));
    }
    Ok(())
}

/// Refuses a listing parameter (prefix, delimiter, start-after, marker,
/// continuation token) with a character the XML answer cannot carry: echoed
/// raw, it would make the whole answer unparseable.
pub(super) fn check_list_param(name: &str, value: Option<&str>) -> S3Result<()> {
    match value {
        Some(v) if v.chars().any(is_unsafe_char) => Err(s3_error!(
            InvalidArgument,
            "{} may not contain control characters",
            name
        )),
        _ => Ok(()),
    }
}

/// A category named by header: the `x-amz-meta-residency-category` metadata.
pub(super) fn category_of(meta: &BTreeMap<String, String>) -> Option<String> {
    debug_assert!(CATEGORY_HEADER.ends_with(META_CATEGORY));
    meta.get(META_CATEGORY).cloned()
}

/// The key of a copy source, which must be in the same virtual bucket: a
/// tenant sees only its own objects (service keys included).
pub(super) fn copy_source_key<'a>(source: &'a CopySource, bucket: &str) -> S3Result<&'a str> {
    let CopySource::Bucket {
        bucket: src_bucket,
        key,
        ..
    } = source
    else {
        return Err(s3_error!(
            NotImplemented,
            "access-point copy sources are not supported"
        ));
    };
    check_key(key)?;
    if &**src_bucket != bucket {
        return Err(s3_error!(
            AccessDenied,
            "the copy source must be in the same bucket"
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn unsafe_keys_are_refused() {
        for bad in [
            "..",
            "a/../b",
            "./a",
            "a/.",
            "a\0b",
            "a\nb",
            "a\u{1b}b",
            "a\u{7f}",
            "a\u{85}",
            "a\u{fffe}",
            "a\u{ffff}",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a..b", "...", "a/.hidden", "tickets/1/comment.json", "é/ü"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
        // The client's key counts, up to S3's 1,024 bytes.
        assert!(check_key(&"k".repeat(1024)).is_ok());
        let long = check_key(&"k".repeat(1025)).unwrap_err();
        assert_eq!(long.code().as_str(), "KeyTooLongError");
    }
}
