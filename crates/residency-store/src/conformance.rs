//! The behaviour every [`Backend`] must show, as one suite that runs against
//! any of them: the local backends in this crate's tests, a real S3 server
//! (Garage) in the end-to-end tests.
//!
//! Enabled by the `conformance` feature. Every check works under the given
//! key prefix and deletes what it wrote, so a shared bucket can be used.
//! Checks panic on failure, like assertions.
//!
//! ```no_run
//! # async fn f(backend: &dyn residency_store::Backend) {
//! residency_store::conformance::run_all(backend, "conformance-1/").await;
//! # }
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{
    checksums_of, Backend, Body, BoxError, ByteRange, Checksums, CompletedPart, ListRequest,
    PartUpload, PartsQuery, PutMeta, StoreError, StoredHeaders,
};

/// S3's minimum part size, used so the suite passes on real S3 services.
const PART: usize = 5 * 1024 * 1024;

/// Runs every check under `prefix` (which should end with `/`).
pub async fn run_all(backend: &dyn Backend, prefix: &str) {
    health(backend).await;
    put_get_head(backend, prefix).await;
    streaming_bodies(backend, prefix).await;
    ranges(backend, prefix).await;
    missing_objects(backend, prefix).await;
    bad_digest_stores_nothing(backend, prefix).await;
    listing(backend, prefix).await;
    copy(backend, prefix).await;
    copy_onto_itself(backend, prefix).await;
    multipart(backend, prefix).await;
    multipart_errors(backend, prefix).await;
    assert_prefix_empty(backend, prefix).await;
}

async fn put(backend: &dyn Backend, key: &str, data: &'static [u8]) {
    backend
        .put_object(
            key,
            Body::from_bytes(Bytes::from_static(data)),
            PutMeta::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

async fn get_bytes(backend: &dyn Backend, key: &str, range: Option<ByteRange>) -> Bytes {
    backend
        .get_object(key, range)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .body
        .collect()
        .await
        .unwrap()
}

/// Deletes every object under `prefix`.
pub async fn clean(backend: &dyn Backend, prefix: &str) {
    let mut token = None;
    loop {
        let page = backend
            .list_objects(ListRequest::new(prefix).continuation_token(token))
            .await
            .unwrap();
        for o in &page.objects {
            backend.delete_object(&o.key).await.unwrap();
        }
        token = page.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    for u in backend.list_multipart_uploads(prefix).await.unwrap() {
        let _ = backend.abort_multipart(&u.key, &u.upload_id).await;
    }
}

async fn assert_prefix_empty(backend: &dyn Backend, prefix: &str) {
    let page = backend
        .list_objects(ListRequest::new(prefix))
        .await
        .unwrap();
    assert!(page.objects.is_empty(), "left behind: {:?}", page.objects);
}

/// `health` succeeds on a working backend.
pub async fn health(backend: &dyn Backend) {
    backend.health().await.expect("health");
}

/// Put, get and head agree on bytes, ETag, content type, user metadata and
/// checksums; a second put replaces the object.
pub async fn put_get_head(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}tickets/1.json");
    let data = b"{\"subject\":\"hello\"}";
    let sums = checksums_of(data);
    let meta = PutMeta {
        headers: StoredHeaders {
            content_type: Some("application/json".into()),
            user_metadata: BTreeMap::from([("origin".to_string(), "test".to_string())]),
            cache_control: Some("no-cache".into()),
            content_disposition: Some("inline".into()),
            ..StoredHeaders::default()
        },
        checksums: Checksums {
            content_md5: sums.content_md5.clone(),
            // S3 accepts one x-amz-checksum-* per request.
            sha256: sums.sha256.clone(),
            ..Checksums::default()
        },
        ..PutMeta::default()
    };
    let out = backend
        .put_object(&key, Body::from_bytes(Bytes::from_static(data)), meta)
        .await
        .expect("put");
    let md5_hex = "\"".to_string() + &md5_hex(data) + "\"";
    assert_eq!(out.etag, md5_hex);

    let head = backend.head_object(&key).await.expect("head");
    assert_eq!(head.key, key);
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.etag, md5_hex);
    assert_eq!(
        head.headers.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        head.headers.user_metadata.get("origin").map(String::as_str),
        Some("test")
    );
    assert_eq!(head.headers.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(head.headers.content_disposition.as_deref(), Some("inline"));

    let got = backend.get_object(&key, None).await.expect("get");
    assert_eq!(got.info.etag, md5_hex);
    assert_eq!(got.info.size, data.len() as u64);
    assert!(got.content_range.is_none());
    assert_eq!(got.body.len_hint(), Some(data.len() as u64));
    assert_eq!(got.body.collect().await.unwrap(), &data[..]);

    put(backend, &key, b"v2").await;
    assert_eq!(get_bytes(backend, &key, None).await, "v2");
    // The new object does not inherit the old content type (S3 services
    // fill in a default of their own).
    let head = backend.head_object(&key).await.unwrap();
    assert!(
        matches!(
            head.headers.content_type.as_deref(),
            None | Some("binary/octet-stream" | "application/octet-stream")
        ),
        "{:?}",
        head.headers.content_type
    );
    backend.delete_object(&key).await.expect("delete");
    assert!(matches!(
        backend.head_object(&key).await,
        Err(StoreError::NotFound { .. })
    ));
}

fn md5_hex(data: &[u8]) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(checksums_of(data).content_md5.unwrap())
        .unwrap();
    hex::encode(raw)
}

/// A body streamed in many chunks, with and without a known length, is
/// stored whole, and reads stream back.
pub async fn streaming_bodies(backend: &dyn Backend, prefix: &str) {
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let n = 40;
    let stream = || {
        futures::stream::iter((0..n).map({
            let c = chunk.clone();
            move |_| Ok::<_, BoxError>(c.clone())
        }))
    };
    let key = format!("{prefix}stream/known");
    let total = (chunk.len() * n) as u64;
    backend
        .put_object(
            &key,
            Body::from_stream(stream(), Some(total)),
            PutMeta::default(),
        )
        .await
        .expect("put stream");
    assert_eq!(backend.head_object(&key).await.unwrap().size, total);
    let got = get_bytes(backend, &key, None).await;
    assert_eq!(got.len() as u64, total);
    assert!(got.iter().all(|b| *b == 7));
    backend.delete_object(&key).await.unwrap();
}

/// S3 range semantics, including clamping and unsatisfiable ranges.
pub async fn ranges(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}range");
    put(backend, &key, b"0123456789").await;
    let cases = [
        ("bytes=0-4", "01234", (0, 4)),
        ("bytes=5-", "56789", (5, 9)),
        ("bytes=-3", "789", (7, 9)),
        ("bytes=8-100", "89", (8, 9)),
        ("bytes=3-3", "3", (3, 3)),
    ];
    for (header, want, (s, e)) in cases {
        let r = ByteRange::parse(header).unwrap();
        let got = backend.get_object(&key, Some(r)).await.expect(header);
        assert_eq!(got.content_range, Some((s, e, 10)), "{header}");
        assert_eq!(got.info.size, 10, "{header}");
        assert_eq!(got.body.collect().await.unwrap(), want, "{header}");
    }
    let err = backend
        .get_object(&key, Some(ByteRange::From { first: 10 }))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRange), "{err:?}");
    backend.delete_object(&key).await.unwrap();
}

/// Reads of missing keys are `NotFound`; deleting one succeeds.
pub async fn missing_objects(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}missing/nothing-here");
    assert!(matches!(
        backend.head_object(&key).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        backend.get_object(&key, None).await,
        Err(StoreError::NotFound { .. })
    ));
    backend.delete_object(&key).await.expect("delete missing");
    let err = backend
        .copy_object(&key, &format!("{prefix}missing/dst"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

/// A body that does not match its checksum is refused and nothing is stored
/// (not even replacing an existing object).
pub async fn bad_digest_stores_nothing(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}digest");
    let wrong = checksums_of(b"something else");
    for checksums in [
        Checksums {
            content_md5: wrong.content_md5.clone(),
            ..Checksums::default()
        },
        Checksums {
            sha256: wrong.sha256.clone(),
            ..Checksums::default()
        },
        Checksums {
            crc32: wrong.crc32.clone(),
            ..Checksums::default()
        },
    ] {
        let meta = PutMeta {
            checksums: checksums.clone(),
            ..PutMeta::default()
        };
        let err = backend
            .put_object(&key, Body::from("payload"), meta)
            .await
            .unwrap_err();
        // AWS answers BadDigest; Garage answers InvalidDigest for a
        // mismatching x-amz-checksum-* (BadDigest for Content-MD5).
        let refused = match err {
            StoreError::BadDigest { .. } => true,
            StoreError::InvalidDigest { .. } => checksums.content_md5.is_none(),
            _ => false,
        };
        assert!(refused, "{checksums:?}: {err:?}");
        assert!(matches!(
            backend.head_object(&key).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    put(backend, &key, b"original").await;
    let meta = PutMeta {
        checksums: Checksums {
            content_md5: wrong.content_md5,
            ..Checksums::default()
        },
        ..PutMeta::default()
    };
    assert!(backend
        .put_object(&key, Body::from("new"), meta)
        .await
        .is_err());
    assert_eq!(get_bytes(backend, &key, None).await, "original");
    backend.delete_object(&key).await.unwrap();
}

/// Listing order (byte order, `a-c` before `a/b`), pagination with opaque
/// tokens, delimiters, start-after and prefixes.
pub async fn listing(backend: &dyn Backend, prefix: &str) {
    let p = format!("{prefix}list/");
    let names = ["a-c", "a/b", "a/c/d", "a0", "b", "c/x", "c/y", "é"];
    for n in names.iter().rev() {
        put(backend, &format!("{p}{n}"), b"x").await;
    }
    let all: Vec<String> = names.iter().map(|n| format!("{p}{n}")).collect();

    let page = backend.list_objects(ListRequest::new(&p)).await.unwrap();
    let keys: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, all);
    assert!(page.next_continuation_token.is_none());
    assert!(page
        .objects
        .iter()
        .all(|o| o.size == 1 && o.etag.len() == 34));

    // Pages of 3 add up to the whole listing.
    let mut token = None;
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let page = backend
            .list_objects(ListRequest::new(&p).max_keys(3).continuation_token(token))
            .await
            .unwrap();
        assert!(page.objects.len() <= 3);
        paged.extend(page.objects.into_iter().map(|o| o.key));
        pages += 1;
        token = page.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, all);
    assert_eq!(pages, 3);

    // Delimiter.
    let page = backend
        .list_objects(ListRequest::new(&p).delimiter("/"))
        .await
        .unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| &o.key[p.len()..]).collect();
    assert_eq!(keys, ["a-c", "a0", "b", "é"]);
    assert_eq!(page.common_prefixes, [format!("{p}a/"), format!("{p}c/")]);

    // Delimiter with pages of 2: objects and prefixes both count.
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let page = backend
            .list_objects(
                ListRequest::new(&p)
                    .delimiter("/")
                    .max_keys(2)
                    .continuation_token(token),
            )
            .await
            .unwrap();
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(
            page.objects
                .into_iter()
                .map(|o| o.key[p.len()..].to_string()),
        );
        seen.extend(
            page.common_prefixes
                .into_iter()
                .map(|c| c[p.len()..].to_string()),
        );
        token = page.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["a-c", "a/", "a0", "b", "c/", "é"]);

    // Prefix inside a "directory", and a partial segment.
    let page = backend
        .list_objects(ListRequest::new(format!("{p}a/")).delimiter("/"))
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].key, format!("{p}a/b"));
    assert_eq!(page.common_prefixes, [format!("{p}a/c/")]);
    let page = backend
        .list_objects(ListRequest::new(format!("{p}a")))
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 4);

    // Start-after.
    let page = backend
        .list_objects(ListRequest::new(&p).start_after(format!("{p}a0")))
        .await
        .unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| &o.key[p.len()..]).collect();
    assert_eq!(keys, ["b", "c/x", "c/y", "é"]);

    // Nothing under an unknown prefix.
    let page = backend
        .list_objects(ListRequest::new(format!("{p}zzz/")))
        .await
        .unwrap();
    assert!(page.objects.is_empty() && page.common_prefixes.is_empty());

    for k in &all {
        backend.delete_object(k).await.unwrap();
    }
}

/// Copy keeps the metadata by default and replaces it when asked.
pub async fn copy(backend: &dyn Backend, prefix: &str) {
    let src = format!("{prefix}copy/src");
    let meta = PutMeta {
        headers: StoredHeaders {
            content_type: Some("text/plain".into()),
            user_metadata: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..StoredHeaders::default()
        },
        ..PutMeta::default()
    };
    let put = backend
        .put_object(&src, Body::from("copy me"), meta)
        .await
        .unwrap();
    let dst = format!("{prefix}copy/dst one");
    let out = backend.copy_object(&src, &dst, None).await.expect("copy");
    assert_eq!(out.etag, put.etag);
    let head = backend.head_object(&dst).await.unwrap();
    assert_eq!(head.headers.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        head.headers.user_metadata.get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(get_bytes(backend, &dst, None).await, "copy me");

    let dst2 = format!("{prefix}copy/dst2");
    backend
        .copy_object(
            &src,
            &dst2,
            Some(PutMeta::with_content_type("application/x-new")),
        )
        .await
        .expect("copy replace");
    let head = backend.head_object(&dst2).await.unwrap();
    assert_eq!(
        head.headers.content_type.as_deref(),
        Some("application/x-new")
    );
    assert!(head.headers.user_metadata.is_empty());
    for k in [&src, &dst, &dst2] {
        backend.delete_object(k).await.unwrap();
    }
}

/// A copy of an object onto itself with new metadata (how the sidecar
/// changes an object's tags without moving it): the same bytes and ETag,
/// only the metadata replaced.
pub async fn copy_onto_itself(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}copy/self");
    let headers = StoredHeaders {
        content_type: Some("application/json".into()),
        cache_control: Some("no-cache".into()),
        user_metadata: BTreeMap::from([("kept".to_string(), "yes".to_string())]),
        ..StoredHeaders::default()
    };
    let put = backend
        .put_object(
            &key,
            Body::from("stays where it is"),
            PutMeta {
                headers: headers.clone(),
                ..PutMeta::default()
            },
        )
        .await
        .unwrap();
    let mut replaced = headers.clone();
    replaced
        .user_metadata
        .insert("residency-tagging".into(), "a=1".into());
    let out = backend
        .copy_object(
            &key,
            &key,
            Some(PutMeta {
                headers: replaced.clone(),
                ..PutMeta::default()
            }),
        )
        .await
        .expect("copy onto itself");
    assert_eq!(out.etag, put.etag);
    let head = backend.head_object(&key).await.unwrap();
    assert_eq!(head.headers, replaced);
    assert_eq!(head.etag, put.etag);
    assert_eq!(get_bytes(backend, &key, None).await, "stays where it is");
    backend.delete_object(&key).await.unwrap();
}

/// Create, upload (one part twice), list, complete: the object is the parts
/// in order and its ETag is `"<hex>-2"`; the upload is gone afterwards.
pub async fn multipart(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}mp/big.bin");
    let id = backend
        .create_multipart(&key, PutMeta::with_content_type("application/x-big"))
        .await
        .expect("create");
    let uploads = backend.list_multipart_uploads(prefix).await.unwrap();
    assert!(
        uploads.iter().any(|u| u.upload_id == id && u.key == key),
        "{uploads:?}"
    );

    let p1 = Bytes::from(vec![1u8; PART]);
    let p2 = Bytes::from_static(b"tail");
    // Part 1 uploaded twice: the second one counts.
    backend
        .upload_part(PartUpload::new(&key, &id, 1, Body::from(vec![9u8; PART])))
        .await
        .unwrap();
    let sums = checksums_of(&p1);
    let part1 = backend
        .upload_part(PartUpload {
            checksums: Checksums {
                content_md5: sums.content_md5.clone(),
                ..Checksums::default()
            },
            ..PartUpload::new(&key, &id, 1, Body::from_bytes(p1.clone()))
        })
        .await
        .expect("part 1");
    let part2 = backend
        .upload_part(PartUpload::new(&key, &id, 2, Body::from_bytes(p2.clone())))
        .await
        .expect("part 2");
    assert_eq!(part1.part_number, 1);

    let parts = backend
        .list_parts(PartsQuery::new(&key, &id))
        .await
        .unwrap();
    let numbers: Vec<u32> = parts.parts.iter().map(|p| p.part_number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(parts.parts[0].etag, part1.etag);
    assert_eq!(parts.parts[0].size, PART as u64);
    let page = backend
        .list_parts(PartsQuery {
            part_number_marker: None,
            max_parts: Some(1),
            ..PartsQuery::new(&key, &id)
        })
        .await
        .unwrap();
    assert_eq!(page.parts.len(), 1);
    assert_eq!(page.next_part_number_marker, Some(1));
    let page = backend
        .list_parts(PartsQuery {
            part_number_marker: Some(1),
            max_parts: None,
            ..PartsQuery::new(&key, &id)
        })
        .await
        .unwrap();
    assert_eq!(page.parts.len(), 1);
    assert_eq!(page.parts[0].part_number, 2);

    let out = backend
        .complete_multipart(
            &key,
            &id,
            vec![
                CompletedPart {
                    part_number: 1,
                    etag: part1.etag.clone(),
                    checksums: Default::default(),
                },
                CompletedPart {
                    part_number: 2,
                    etag: part2.etag.clone(),
                    checksums: Default::default(),
                },
            ],
        )
        .await
        .expect("complete");
    assert!(out.etag.ends_with("-2\""), "{}", out.etag);
    let head = backend.head_object(&key).await.unwrap();
    assert_eq!(head.size, (PART + 4) as u64);
    assert_eq!(
        head.headers.content_type.as_deref(),
        Some("application/x-big")
    );
    assert_eq!(head.etag, out.etag);
    let tail = get_bytes(backend, &key, Some(ByteRange::Suffix { len: 6 })).await;
    assert_eq!(tail, &b"\x01\x01tail"[..]);
    let uploads = backend.list_multipart_uploads(prefix).await.unwrap();
    assert!(!uploads.iter().any(|u| u.upload_id == id));
    let err = backend
        .list_parts(PartsQuery::new(&key, &id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    backend.delete_object(&key).await.unwrap();
}

/// Unknown uploads, wrong ETags, small parts, abort.
pub async fn multipart_errors(backend: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}mp/errors");
    let id = backend
        .create_multipart(&key, PutMeta::default())
        .await
        .unwrap();
    let small = backend
        .upload_part(PartUpload::new(&key, &id, 1, Body::from("small")))
        .await
        .unwrap();
    let last = backend
        .upload_part(PartUpload::new(&key, &id, 2, Body::from("last")))
        .await
        .unwrap();
    let part = |n, etag: &str| CompletedPart {
        part_number: n,
        etag: etag.to_owned(),
        checksums: Default::default(),
    };

    // A wrong ETag.
    let err = backend
        .complete_multipart(
            &key,
            &id,
            vec![part(1, "\"00000000000000000000000000000000\"")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.s3_code(), "InvalidPart", "{err:?}");
    // A bad digest on a part.
    let err = backend
        .upload_part(PartUpload {
            checksums: Checksums {
                content_md5: checksums_of(b"xyz").content_md5,
                ..Checksums::default()
            },
            ..PartUpload::new(&key, &id, 3, Body::from("abc"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadDigest { .. }), "{err:?}");

    // A part other than the last below 5 MiB: S3 refuses it (EntityTooSmall);
    // some services (Garage) accept it, then the upload is complete.
    let small_first = backend
        .complete_multipart(&key, &id, vec![part(1, &small.etag), part(2, &last.etag)])
        .await;
    match small_first {
        Err(err) => {
            assert_eq!(err.s3_code(), "EntityTooSmall", "{err:?}");
            backend.abort_multipart(&key, &id).await.expect("abort");
        }
        Ok(_) => backend.delete_object(&key).await.unwrap(),
    }
    let err = backend
        .upload_part(PartUpload::new(&key, &id, 1, Body::from("x")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    let err = backend
        .complete_multipart(&key, &id, vec![part(1, &small.etag)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    assert!(matches!(
        backend.head_object(&key).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DirBackend, MemoryBackend};

    #[tokio::test]
    async fn local_backends_enforce_the_minimum_part_size() {
        let m = MemoryBackend::new("eu");
        let tmp = tempfile::tempdir().unwrap();
        let d = DirBackend::open(tmp.path()).await.unwrap();
        for b in [&m as &dyn Backend, &d] {
            let id = b.create_multipart("k", PutMeta::default()).await.unwrap();
            let mut parts = vec![];
            for n in [1, 2] {
                let p = b
                    .upload_part(PartUpload::new("k", &id, n, Body::from("x")))
                    .await
                    .unwrap();
                parts.push(CompletedPart {
                    part_number: n,
                    etag: p.etag,
                    checksums: p.checksums,
                });
            }
            let err = b.complete_multipart("k", &id, parts).await.unwrap_err();
            assert!(matches!(err, StoreError::EntityTooSmall { part_number: 1 }));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_backends_decide_create_only_puts() {
        let m = MemoryBackend::new("eu");
        let tmp = tempfile::tempdir().unwrap();
        let d = DirBackend::open(tmp.path()).await.unwrap();
        let create_only = || PutMeta {
            create_only: true,
            ..PutMeta::default()
        };
        for b in [&m as &dyn Backend, &d] {
            b.put_object("k", Body::from("first"), create_only())
                .await
                .expect("a new key is created");
            let err = b
                .put_object("k", Body::from("second"), create_only())
                .await
                .unwrap_err();
            assert!(err.is_precondition_failed(), "{err:?}");
            assert_eq!(
                (err.http_status(), err.s3_code()),
                (412, "PreconditionFailed")
            );
            assert_eq!(get_bytes(b, "k", None).await, "first");
            // Many create-only writers of one key: exactly one wins.
            let wins = futures::future::join_all((0..8).map(|i| {
                b.put_object(
                    "race",
                    Body::from(bytes::Bytes::from(format!("writer {i}"))),
                    create_only(),
                )
            }))
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count();
            assert_eq!(wins, 1);
            b.put_object("k", Body::from("third"), PutMeta::default())
                .await
                .expect("an unconditional put overwrites");
            assert_eq!(get_bytes(b, "k", None).await, "third");
        }
    }

    #[tokio::test]
    async fn memory_backend_conforms() {
        let m = MemoryBackend::new("eu");
        run_all(&m, "acme/").await;
        assert!(m.keys().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dir_backend_conforms() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DirBackend::open(tmp.path().join("eu")).await.unwrap();
        run_all(&d, "acme/").await;
        // Nothing left: no objects, no temporary files, no uploads, no metadata.
        let hidden = tmp.path().join("eu/.residency");
        for sub in ["tmp", "uploads", "meta"] {
            let left: Vec<_> = std::fs::read_dir(hidden.join(sub)).unwrap().collect();
            assert!(left.is_empty(), "{sub}: {left:?}");
        }
        let top: Vec<_> = std::fs::read_dir(tmp.path().join("eu"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, [".residency"]);
    }
}
