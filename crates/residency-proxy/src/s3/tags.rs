//! An object's tags as the sidecar keeps them: checked as S3 checks them,
//! stored form-encoded in a reserved user-metadata entry of the object.

use std::collections::{BTreeMap, HashSet};

use residency_store::{ObjectInfo, PutMeta};
use s3s::dto::{Tag, TaggingDirective};
use s3s::{s3_error, S3Result};

/// The user-metadata name (`x-amz-meta-residency-tagging`) that holds an
/// object's tags, form-encoded (`k=v&k2=v2`). Clients may not set it.
pub(crate) const RESERVED: &str = "residency-tagging";

/// At most this many tags per object, as in S3.
const MAX_TAGS: usize = 10;
/// The longest tag key, in characters.
const MAX_KEY_CHARS: usize = 128;
/// The longest tag value, in characters.
const MAX_VALUE_CHARS: usize = 256;

/// One object's tags, in the order given.
pub(crate) type Tags = Vec<(String, String)>;

fn invalid_tag(msg: &'static str) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidTag, msg)
}

/// The characters S3 allows in a tag: letters, numbers and spaces
/// representable in UTF-8, and `+ - = . _ : / @`.
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c)
}

/// Checks a tag set as S3 does: at most 10 tags, unique keys of 1 to 128
/// characters, values of at most 256, S3's character set.
///
/// # Errors
/// `InvalidTag` (400) naming the rule broken.
pub(crate) fn validate(tags: &Tags) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(invalid_tag("Object tags cannot be greater than 10"));
    }
    let mut seen = HashSet::new();
    for (k, v) in tags {
        if k.is_empty() || !k.chars().all(allowed) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if k.chars().count() > MAX_KEY_CHARS {
            return Err(invalid_tag(
                "The TagKey you have provided is too long, max 128",
            ));
        }
        if !v.chars().all(allowed) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if !seen.insert(k.as_str()) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header (URL query encoded), checked.
///
/// # Errors
/// `InvalidTag` as [`validate`].
pub(crate) fn from_header(header: &str) -> S3Result<Tags> {
    let tags: Tags = form_urlencoded::parse(header.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    validate(&tags)?;
    Ok(tags)
}

/// The tags of a PutObjectTagging body, checked.
///
/// # Errors
/// `MalformedXML` for a tag without a key or value; `InvalidTag` as [`validate`].
pub(crate) fn from_tag_set(set: Vec<Tag>) -> S3Result<Tags> {
    let mut tags = Vec::with_capacity(set.len());
    for t in set {
        let (Some(k), Some(v)) = (t.key, t.value) else {
            return Err(s3_error!(MalformedXML, "every Tag needs a Key and a Value"));
        };
        tags.push((k, v));
    }
    validate(&tags)?;
    Ok(tags)
}

/// The tags a CopyObject sets: `Some` with `x-amz-tagging-directive:
/// REPLACE` (the `x-amz-tagging` header's, none without it), `None` to keep
/// the source's (`COPY`, the default; a `x-amz-tagging` header is then
/// ignored, as S3 does).
///
/// # Errors
/// `InvalidArgument` for another directive; `InvalidTag` as [`validate`].
pub(crate) fn of_copy(
    directive: Option<&TaggingDirective>,
    header: Option<&str>,
) -> S3Result<Option<Tags>> {
    match directive.map(TaggingDirective::as_str) {
        None | Some(TaggingDirective::COPY) => Ok(None),
        Some(TaggingDirective::REPLACE) => from_header(header.unwrap_or("")).map(Some),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Unknown tagging directive: it must be COPY or REPLACE"
        )),
    }
}

/// The tags stored in an object's user metadata.
pub(crate) fn stored(meta: &BTreeMap<String, String>) -> Tags {
    meta.get(RESERVED)
        .map(|s| {
            form_urlencoded::parse(s.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets (or, for no tags, removes) the reserved entry.
pub(crate) fn store(meta: &mut BTreeMap<String, String>, tags: &Tags) {
    if tags.is_empty() {
        meta.remove(RESERVED);
    } else {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in tags {
            s.append_pair(k, v);
        }
        meta.insert(RESERVED.to_string(), s.finish());
    }
}

/// Refuses client metadata that names the reserved entry.
///
/// # Errors
/// `InvalidArgument` (400).
pub(crate) fn refuse_reserved(meta: &BTreeMap<String, String>) -> S3Result<()> {
    if meta.contains_key(RESERVED) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-meta-residency-tagging is reserved: the sidecar keeps an object's tags there; set tags with x-amz-tagging or PutObjectTagging"
        ));
    }
    Ok(())
}

/// The number of tags an object has, for `x-amz-tagging-count` (absent
/// when none, as S3 sends it).
pub(crate) fn count(meta: &BTreeMap<String, String>) -> Option<i32> {
    let n = stored(meta).len();
    (n > 0).then_some(n as i32)
}

/// The metadata the copy of an object onto itself writes: its own stored
/// headers with the reserved entry replaced by `tags`.
pub(crate) fn meta_with(info: &ObjectInfo, tags: &Tags) -> PutMeta {
    let mut headers = info.headers.clone();
    store(&mut headers.user_metadata, tags);
    PutMeta {
        headers,
        ..PutMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_round_trip_through_the_reserved_entry() {
        let t = tags(&[("project", "a b+c"), ("ünï", "x=y&z"), ("empty", "")]);
        let mut meta = BTreeMap::new();
        store(&mut meta, &t);
        assert!(meta[RESERVED].is_ascii());
        assert_eq!(stored(&meta), t);
        assert_eq!(count(&meta), Some(3));
        store(&mut meta, &Vec::new());
        assert!(meta.is_empty());
        assert_eq!(count(&meta), None);
    }

    #[test]
    fn tag_sets_are_checked_as_s3_does() {
        let too_many: Tags = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        let long_key = tags(&[(&"k".repeat(129), "v")]);
        let long_value = tags(&[("k", &"v".repeat(257))]);
        for bad in [
            too_many,
            long_key,
            long_value,
            tags(&[("a", "1"), ("a", "2")]),
            tags(&[("", "1")]),
            tags(&[("a", "<b>")]),
            tags(&[("a#", "1")]),
        ] {
            let e = validate(&bad).unwrap_err();
            assert_eq!(e.code().as_str(), "InvalidTag", "{bad:?}");
        }
        let ten: Tags = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
        validate(&ten).unwrap();
        validate(&tags(&[(&"k".repeat(128), &"é".repeat(256))])).unwrap();
        assert_eq!(
            from_header("a=1&b=x%20y").unwrap(),
            tags(&[("a", "1"), ("b", "x y")])
        );
        assert!(from_header("a=1&a=2").is_err());
    }
}
