//! The listings a client may ask for, over the tenant's keys in every
//! region it may have data in: ListObjectsV2, ListObjects (v1, still the
//! default of many tools) and ListObjectVersions (the buckets are not
//! versioned: each object is its own `null` version, as S3 answers for an
//! unversioned bucket; tools and test suites clean up with it).
//!
//! ListMultipartUploads pages the same way: key-marker and upload-id-marker,
//! max-uploads, common prefixes with a delimiter.
//!
//! With `encoding-type=url` (botocore asks for it on every listing and
//! decodes the answer) the keys, prefixes, markers and the delimiter are
//! percent-encoded in the answer, as S3 does.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use residency_policy::BUCKET_NAMESPACE;
use residency_store::{ListPage, ListRequest, Operation, Outcome};
use residency_tower::{Resolved, StorageRequest};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::input::{bucket_input, check_list_param};
use super::output::{self, etag, outcome};
use super::shared;
use super::Gateway;

/// What stays literal in an url-encoded listing: the unreserved characters
/// (`/` is encoded, as Garage does: botocore leaves a v1 answer's `Prefix`
/// encoded, so the client sees the same string either way).
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes `s` when the client asked for `encoding-type=url`.
struct Encode(bool);

impl Encode {
    fn of(t: Option<&EncodingType>) -> Encode {
        Encode(t.is_some_and(|t| t.as_str() == EncodingType::URL))
    }

    fn s(&self, s: String) -> String {
        if self.0 {
            utf8_percent_encode(&s, KEEP).to_string()
        } else {
            s
        }
    }

    fn opt(&self, s: Option<String>) -> Option<String> {
        s.map(|s| self.s(s))
    }
}

/// One page of the tenant's keys.
struct Page {
    page: ListPage,
    max_keys: usize,
}

impl Page {
    /// Lists up to `max_keys` (0-1000) keys and common prefixes after
    /// `start_after` or from `token`.
    async fn list(
        gw: &Gateway,
        tenant: Resolved,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        (after_name, after): (&str, Option<String>),
        token: Option<String>,
        max_keys: Option<i32>,
    ) -> S3Result<Page> {
        check_list_param("prefix", prefix)?;
        check_list_param("delimiter", delimiter)?;
        check_list_param(after_name, after.as_deref())?;
        check_list_param("continuation-token", token.as_deref())?;
        let max_keys = max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        // In a shared bucket whose keys begin with `<tenant>/`, the
        // tenant's own namespace is listed without it.
        let (Some(prefix), Some(after)) = (
            shared::listing_prefix_param(&tenant, prefix),
            shared::listing_marker_param(&tenant, after),
        ) else {
            return Ok(Page {
                page: ListPage::default(),
                max_keys,
            });
        };
        let prefix = prefix.as_str();
        let configured = tenant.created_bucket().is_none();
        if configured && prefix.starts_with(BUCKET_NAMESPACE) {
            // No key of a configured bucket is there (they are refused).
            return Ok(Page {
                page: ListPage::default(),
                max_keys,
            });
        }
        let request = |n: usize| {
            let mut request = ListRequest::new(prefix).max_keys(n.max(1));
            if let Some(d) = delimiter {
                request = request.delimiter(d.to_owned());
            }
            request
        };
        let mut first = request(max_keys).continuation_token(token);
        if let Some(a) = after {
            first = first.start_after(past_rolled_up(a, prefix, delimiter));
        }
        let mut page = Self::run(gw, &tenant, first).await?;
        if configured {
            // The buckets the tenant created keep their objects under
            // `~bucket/` of its namespace: a listing of its configured
            // bucket leaves them out, and goes on after them when the page
            // ended among them.
            let reserved = |k: &str| k.starts_with(BUCKET_NAMESPACE);
            let last = page
                .objects
                .last()
                .map(|o| o.key.as_str())
                .into_iter()
                .chain(page.common_prefixes.last().map(String::as_str))
                .max();
            let ended_inside = last.is_some_and(reserved);
            page.objects.retain(|o| !reserved(&o.key));
            page.common_prefixes.retain(|p| !reserved(p));
            if ended_inside && page.next_continuation_token.is_some() {
                let kept = page.objects.len() + page.common_prefixes.len();
                let rest = request(max_keys.saturating_sub(kept))
                    .start_after(format!("{BUCKET_NAMESPACE}{}", char::MAX));
                let rest = Self::run(gw, &tenant, rest).await?;
                page.objects.extend(rest.objects);
                page.common_prefixes.extend(rest.common_prefixes);
                page.next_continuation_token = rest.next_continuation_token;
            }
        }
        if tenant.tenant_in_keys() {
            for o in &mut page.objects {
                o.key = shared::client_key(&tenant, std::mem::take(&mut o.key));
            }
            for p in &mut page.common_prefixes {
                *p = shared::client_key(&tenant, std::mem::take(p));
            }
        }
        Ok(Page { page, max_keys })
    }

    async fn run(gw: &Gateway, tenant: &Resolved, request: ListRequest) -> S3Result<ListPage> {
        let r = gw
            .run(StorageRequest::for_resolved(
                tenant.clone(),
                Operation::List { request },
            ))
            .await?;
        Ok(outcome!(r.outcome, List))
    }

    fn truncated(&self) -> bool {
        self.page.next_continuation_token.is_some()
    }

    fn objects(&self) -> impl Iterator<Item = &residency_store::ObjectSummary> {
        self.page.objects.iter().take(self.max_keys)
    }

    fn prefixes(&self, enc: &Encode) -> Option<Vec<CommonPrefix>> {
        let p: Vec<CommonPrefix> = self
            .page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc.s(p.clone())),
            })
            .collect();
        (!p.is_empty()).then_some(p)
    }

    /// The greatest key or common prefix of the page: where the next page
    /// starts.
    fn last(&self) -> Option<String> {
        let key = self.objects().last().map(|o| &o.key);
        let prefix = self.page.common_prefixes.last();
        key.into_iter().chain(prefix).max().cloned()
    }
}

/// A marker that is itself a common prefix (`photos/` with delimiter `/`)
/// means "after every key that rolls up into it": listing after the
/// greatest string that starts with it skips them, as S3 does.
fn past_rolled_up(marker: String, prefix: &str, delimiter: Option<&str>) -> String {
    let rolled_up = delimiter.filter(|d| !d.is_empty()).is_some_and(|d| {
        marker
            .strip_prefix(prefix)
            .and_then(|rest| rest.find(d).map(|i| i + d.len() == rest.len()))
            .unwrap_or(false)
    });
    if rolled_up {
        format!("{marker}{}", char::MAX)
    } else {
        marker
    }
}

fn object(o: &residency_store::ObjectSummary, enc: &Encode) -> Object {
    Object {
        key: Some(enc.s(o.key.clone())),
        size: Some(o.size as i64),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(Timestamp::from(o.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

pub(super) async fn v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let (input, tenant) = bucket_input!(gw, req);
    let page = Page::list(
        gw,
        tenant,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        ("start-after", input.start_after.clone()),
        input.continuation_token.clone(),
        input.max_keys,
    )
    .await?;
    let enc = Encode::of(input.encoding_type.as_ref());
    let contents: Vec<Object> = page.objects().map(|o| object(o, &enc)).collect();
    let prefixes = page.prefixes(&enc);
    let key_count = (contents.len() + prefixes.as_ref().map_or(0, Vec::len)) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: enc.opt(input.prefix),
        delimiter: enc.opt(input.delimiter),
        max_keys: Some(page.max_keys as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        start_after: enc.opt(input.start_after),
        is_truncated: Some(page.truncated()),
        next_continuation_token: page.page.next_continuation_token.clone(),
        contents: Some(contents),
        common_prefixes: prefixes,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListObjects (v1): `marker` instead of a continuation token;
/// `NextMarker` only with a delimiter (S3's documented answer: without
/// one, the client continues from the last key).
pub(super) async fn v1(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let (input, tenant) = bucket_input!(gw, req);
    let marker = input.marker.clone().filter(|m| !m.is_empty());
    let page = Page::list(
        gw,
        tenant,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        ("marker", marker),
        None,
        input.max_keys,
    )
    .await?;
    let enc = Encode::of(input.encoding_type.as_ref());
    let next_marker = (page.truncated() && input.delimiter.is_some())
        .then(|| page.last())
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(enc.s(input.prefix.unwrap_or_default())),
        delimiter: enc.opt(input.delimiter),
        marker: Some(enc.s(input.marker.unwrap_or_default())),
        next_marker: enc.opt(next_marker),
        max_keys: Some(page.max_keys as i32),
        is_truncated: Some(page.truncated()),
        contents: Some(page.objects().map(|o| object(o, &enc)).collect()),
        common_prefixes: page.prefixes(&enc),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListObjectVersions of an unversioned bucket: each object as its `null`
/// version (the latest), no delete markers.
pub(super) async fn versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let (input, tenant) = bucket_input!(gw, req);
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    // Each key has one version: after (key, its version) is after the key.
    let page = Page::list(
        gw,
        tenant,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        ("key-marker", key_marker),
        None,
        input.max_keys,
    )
    .await?;
    let enc = Encode::of(input.encoding_type.as_ref());
    let versions: Vec<ObjectVersion> = page
        .objects()
        .map(|o| ObjectVersion {
            key: Some(enc.s(o.key.clone())),
            size: Some(o.size as i64),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(Timestamp::from(o.last_modified)),
            is_latest: Some(true),
            version_id: Some("null".to_owned()),
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let (next_key, next_version) = if page.truncated() {
        let last = page.last();
        let is_key = last
            .as_ref()
            .is_some_and(|l| page.objects().last().is_some_and(|o| &o.key == l));
        (last, is_key.then(|| "null".to_owned()))
    } else {
        (None, None)
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc.s(input.prefix.unwrap_or_default())),
        delimiter: enc.opt(input.delimiter),
        key_marker: Some(enc.s(input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        next_key_marker: enc.opt(next_key),
        next_version_id_marker: next_version,
        max_keys: Some(page.max_keys as i32),
        is_truncated: Some(page.truncated()),
        versions: Some(versions),
        common_prefixes: page.prefixes(&enc),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListMultipartUploads: the uploads of every region, in key order (a
/// key's uploads by initiation), after (key-marker, upload-id-marker),
/// keys rolled up into common prefixes by the delimiter, up to
/// max-uploads entries, with the markers of the next page when truncated.
pub(super) async fn uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let (input, tenant) = bucket_input!(gw, req);
    check_list_param("prefix", input.prefix.as_deref())?;
    check_list_param("delimiter", input.delimiter.as_deref())?;
    check_list_param("key-marker", input.key_marker.as_deref())?;
    check_list_param("upload-id-marker", input.upload_id_marker.as_deref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let tenant_is_configured = tenant.created_bucket().is_none();
    // A shared bucket with the tenant in its keys: the tenant's namespace
    // is listed, its keys answered with `<tenant>/` (the markers compare
    // with them as the client sent them).
    let mut all = match shared::listing_prefix_param(&tenant, Some(&prefix)) {
        None => Vec::new(),
        Some(stored) => {
            let r = gw
                .run(StorageRequest::for_resolved(
                    tenant.clone(),
                    Operation::ListMultipartUploads { prefix: stored },
                ))
                .await?;
            outcome!(r.outcome, ListMultipartUploads)
        }
    };
    for u in &mut all {
        u.key = shared::client_key(&tenant, std::mem::take(&mut u.key));
    }
    if tenant_is_configured {
        // Uploads into the buckets the tenant created are theirs.
        all.retain(|u| !u.key.starts_with(BUCKET_NAMESPACE));
    }
    all.sort_by(|a, b| {
        (&a.key, a.initiated, &a.upload_id).cmp(&(&b.key, b.initiated, &b.upload_id))
    });
    let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().filter(|m| !m.is_empty());
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut next: Option<(String, Option<String>)> = None;
    // After the marker's upload (a key's uploads are in initiation order,
    // not id order), else after every upload of the marker's key.
    let start = id_marker
        .as_ref()
        .and_then(|id| {
            all.iter()
                .position(|u| u.key == key_marker && u.upload_id == *id)
        })
        .map_or_else(|| all.partition_point(|u| u.key <= key_marker), |i| i + 1);
    for u in all.into_iter().skip(start) {
        let rolled = delimiter.as_deref().and_then(|d| {
            let rest = u.key.get(prefix.len()..)?;
            rest.find(d)
                .map(|i| u.key[..prefix.len() + i + d.len()].to_owned())
        });
        if let Some(p) = &rolled {
            // Listed on this page already, or the marker is this prefix
            // (the client passed back its NextKeyMarker).
            if prefixes.last() == Some(p) || key_marker == *p {
                continue;
            }
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match rolled {
            Some(p) => {
                next = Some((p.clone(), None));
                prefixes.push(p);
            }
            None => {
                next = Some((u.key.clone(), Some(u.upload_id.clone())));
                uploads.push(MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: Some(Timestamp::from(u.initiated)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
    }
    let (next_key, next_id) = match (truncated, next) {
        (true, Some((k, id))) => (Some(k), id),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: (!prefixes.is_empty()).then(|| {
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect()
        }),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_that_is_a_common_prefix_skips_its_keys() {
        let past = past_rolled_up("p/photos/".into(), "p/", Some("/"));
        assert!(past.as_str() > "p/photos/zzzz/last.jpg");
        assert!(past.as_str() < "p/photos0");
        assert_eq!(
            past_rolled_up("p/photos/a.jpg".into(), "p/", Some("/")),
            "p/photos/a.jpg"
        );
        assert_eq!(past_rolled_up("p/photos/".into(), "p/", None), "p/photos/");
    }

    #[test]
    fn url_encoding_encodes_slash_plus_space_and_percent() {
        let enc = Encode(true);
        assert_eq!(enc.s("a/b c+d%e".into()), "a%2Fb%20c%2Bd%25e");
        assert_eq!(Encode(false).s("a b".into()), "a b");
    }
}
