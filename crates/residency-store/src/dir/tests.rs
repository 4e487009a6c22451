#[test]
fn a_tenant_prefix_does_not_count_against_the_1024_byte_key() {
    let key = |n: usize| {
        let mut k = String::from("acme");
        while k.len() < n {
            let seg = (n - k.len() - 1).min(200);
            k.push('/');
            k.push_str(&"k".repeat(seg));
        }
        k
    };
    assert_eq!(key(5 + 1024).len(), 5 + 1024);
    assert!(check_key(&key(5 + 1024)).is_ok());
    assert!(check_key(&key(crate::MAX_STORED_KEY_BYTES)).is_ok());
    let long = key(crate::MAX_STORED_KEY_BYTES + 1);
    assert_eq!(long.len(), crate::MAX_STORED_KEY_BYTES + 1);
    let e = check_key(&long).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;

use super::key::check_key;
use super::*;
use crate::backend::Backend;
use crate::body::Body;
use crate::error::{BoxError, StoreError};
use crate::object::PartUpload;
use crate::object::{Checksums, CompletedPart, ListRequest, PutMeta, StoredHeaders};

async fn backend() -> (tempfile::TempDir, DirBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = DirBackend::open(tmp.path().join("eu")).await.unwrap();
    (tmp, d)
}

fn tmp_entries(d: &DirBackend) -> Vec<PathBuf> {
    fs::read_dir(d.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn bad_keys_are_rejected() {
    let (_t, d) = backend().await;
    for key in [
        "",
        "/etc/passwd",
        "../escape",
        "a/../../escape",
        "a/./b",
        ".",
        "a//b",
        "a/",
        "nul\0byte",
        ".residency/meta/x",
        ".residency",
        &"x".repeat(256),
        &"a/".repeat(600),
    ] {
        let err = d
            .put_object(key, Body::from("x"), PutMeta::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{key:?}: {err:?}"
        );
        assert!(matches!(
            d.create_multipart(key, PutMeta::default()).await,
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            d.delete_object(key).await,
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            d.head_object(key).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    // Look-alikes that are fine.
    for key in ["a/.residency/x", ".residency2", "..a", "a..", "a b/ü/x\\y"] {
        d.put_object(key, Body::from("x"), PutMeta::default())
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(d.head_object(key).await.unwrap().size, 1);
    }
    assert!(tmp_entries(&d).is_empty());
}

#[tokio::test]
async fn files_are_named_by_key_and_hidden_tree_is_not_listed() {
    let (t, d) = backend().await;
    d.put_object(
        "acme/tickets/1.json",
        Body::from("{}"),
        PutMeta::with_content_type("application/json"),
    )
    .await
    .unwrap();
    let path = t.path().join("eu/acme/tickets/1.json");
    assert_eq!(fs::read(&path).unwrap(), b"{}");
    assert!(t
        .path()
        .join("eu/.residency/meta/acme/tickets/1.json")
        .is_file());
    let page = d.list_objects(ListRequest::new("")).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["acme/tickets/1.json"]);
    let page = d.list_objects(ListRequest::new(".resi")).await.unwrap();
    assert!(page.objects.is_empty());
    let page = d.list_objects(ListRequest::new("../")).await.unwrap();
    assert!(page.objects.is_empty());
    let page = d
        .list_objects(ListRequest::new("").delimiter("/"))
        .await
        .unwrap();
    assert_eq!(page.common_prefixes, ["acme/"]);
    assert!(page.objects.is_empty());
}

#[tokio::test]
async fn object_and_directory_conflicts() {
    let (_t, d) = backend().await;
    d.put_object("a", Body::from("x"), PutMeta::default())
        .await
        .unwrap();
    let err = d
        .put_object("a/b", Body::from("x"), PutMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    d.put_object("c/d", Body::from("x"), PutMeta::default())
        .await
        .unwrap();
    let err = d
        .put_object("c", Body::from("x"), PutMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    // Deleting "c" (a directory, not an object) changes nothing.
    d.delete_object("c").await.unwrap();
    assert!(d.head_object("c/d").await.is_ok());
    // Once c/d is gone, its empty directory goes too and c can be an object.
    d.delete_object("c/d").await.unwrap();
    d.put_object("c", Body::from("now a file"), PutMeta::default())
        .await
        .unwrap();
    assert!(matches!(d.head_object("c").await, Ok(info) if info.size == 10));
    assert!(tmp_entries(&d).is_empty());
}

#[tokio::test]
async fn bad_digest_and_short_body_leave_nothing() {
    let (t, d) = backend().await;
    let meta = PutMeta {
        checksums: Checksums {
            sha256: crate::checksums_of(b"other").sha256,
            ..Checksums::default()
        },
        ..PutMeta::default()
    };
    let err = d
        .put_object("acme/x", Body::from("data"), meta)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadDigest { .. }));
    let chunks: Vec<Result<Bytes, BoxError>> = vec![Ok(Bytes::from("abc"))];
    let err = d
        .put_object(
            "acme/x",
            Body::from_stream(futures::stream::iter(chunks), Some(10)),
            PutMeta::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IncompleteBody {
                expected: 10,
                actual: 3
            }
        ),
        "{err:?}"
    );
    let chunks: Vec<Result<Bytes, BoxError>> =
        vec![Ok(Bytes::from("abc")), Err("client went away".into())];
    let err = d
        .put_object(
            "acme/x",
            Body::from_stream(futures::stream::iter(chunks), None),
            PutMeta::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    let meta = PutMeta {
        content_length: Some(2),
        ..PutMeta::default()
    };
    let chunks: Vec<Result<Bytes, BoxError>> = vec![Ok(Bytes::from("abc"))];
    let err = d
        .put_object(
            "acme/x",
            Body::from_stream(futures::stream::iter(chunks), None),
            meta,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IncompleteBody { .. }), "{err:?}");
    assert!(tmp_entries(&d).is_empty());
    assert!(!t.path().join("eu/acme").exists());
}

#[tokio::test]
async fn a_cancelled_upload_leaves_no_temp_file() {
    let (_t, d) = backend().await;
    // A body that yields one chunk and then never ends.
    let stream = futures::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("abc"))])
        .chain(futures::stream::pending());
    let put = d.put_object(
        "acme/slow",
        Body::from_stream(stream, None),
        PutMeta::default(),
    );
    let r = tokio::time::timeout(Duration::from_millis(200), put).await;
    assert!(r.is_err(), "the put must still be waiting for its body");
    assert!(tmp_entries(&d).is_empty());
    assert!(matches!(
        d.head_object("acme/slow").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn survives_reopen_and_missing_metadata() {
    let (t, d) = backend().await;
    let meta = PutMeta {
        headers: StoredHeaders {
            content_type: Some("text/plain".into()),
            ..StoredHeaders::default()
        },
        checksums: Checksums {
            crc32c: crate::checksums_of(b"hello").crc32c,
            crc64nvme: crate::checksums_of(b"hello").crc64nvme,
            sha1: crate::checksums_of(b"hello").sha1,
            ..Checksums::default()
        },
        ..PutMeta::default()
    };
    let put = d
        .put_object("acme/a", Body::from("hello"), meta)
        .await
        .unwrap();
    assert!(put.checksums.crc32c.is_some() && put.checksums.sha1.is_some());
    drop(d);
    // A stale temp file from a crash long ago is cleaned at open.
    let stale = t.path().join("eu/.residency/tmp/body-stale");
    fs::write(&stale, b"junk").unwrap();
    let old = SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let d = DirBackend::open(t.path().join("eu")).await.unwrap();
    assert!(!stale.exists());
    let info = d.head_object("acme/a").await.unwrap();
    assert_eq!(info.headers.content_type.as_deref(), Some("text/plain"));
    assert_eq!(info.checksums, put.checksums);
    // A file dropped in by hand (no metadata) is still an object.
    fs::write(t.path().join("eu/acme/manual.txt"), b"hello").unwrap();
    let info = d.head_object("acme/manual.txt").await.unwrap();
    assert_eq!(info.etag, put.etag);
    assert_eq!(info.headers.content_type, None);
    let page = d.list_objects(ListRequest::new("acme/")).await.unwrap();
    assert_eq!(page.objects.len(), 2);
}

#[tokio::test]
async fn health_fails_when_the_directory_is_gone() {
    let (t, d) = backend().await;
    d.health().await.unwrap();
    fs::remove_dir_all(t.path().join("eu")).unwrap();
    let err = d.health().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(d.location().await.unwrap(), None);
    assert_eq!(d.describe().kind, "dir");
}

#[tokio::test]
async fn upload_ids_never_reach_paths() {
    let (_t, d) = backend().await;
    for id in ["../../etc", "", "ABC", "0123456789abcdef0123456789abcdeg"] {
        let err = d
            .upload_part(PartUpload::new("k", id, 1, Body::from("x")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NoSuchUpload { .. }),
            "{id}: {err:?}"
        );
    }
    // An upload id is bound to its key.
    let id = d
        .create_multipart("acme/k", PutMeta::default())
        .await
        .unwrap();
    let err = d.abort_multipart("acme/other", &id).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }));
    let err = d
        .upload_part(PartUpload::new("acme/k", &id, 0, Body::from("x")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }));
    d.abort_multipart("acme/k", &id).await.unwrap();
}

#[tokio::test]
async fn small_parts_with_a_lower_minimum() {
    let tmp = tempfile::tempdir().unwrap();
    let d = DirBackend::open(tmp.path())
        .await
        .unwrap()
        .with_min_part_size(1);
    let id = d
        .create_multipart("acme/m", PutMeta::default())
        .await
        .unwrap();
    let mut parts = vec![];
    for (n, s) in [(1, "ab"), (2, "cd"), (3, "e")] {
        let p = d
            .upload_part(PartUpload::new("acme/m", &id, n, Body::from(s)))
            .await
            .unwrap();
        parts.push(CompletedPart {
            part_number: n,
            etag: p.etag,
            checksums: p.checksums,
        });
    }
    let mut swapped = parts.clone();
    swapped.swap(0, 1);
    let err = d
        .complete_multipart("acme/m", &id, swapped)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidPartOrder));
    // Parts may be skipped.
    parts.remove(1);
    let out = d.complete_multipart("acme/m", &id, parts).await.unwrap();
    assert!(out.etag.ends_with("-2\""));
    let got = d
        .get_object("acme/m", None)
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(got, "abe");
    assert!(tmp_entries(&d).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_mix_bytes_and_metadata() {
    let (_t, d) = backend().await;
    let d = std::sync::Arc::new(d);
    let mut tasks = vec![];
    for i in 0..16u8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let data = vec![i; 1000 + i as usize];
            d.put_object(
                "acme/hot",
                Body::from(data),
                PutMeta::with_content_type(format!("x/{i}")),
            )
            .await
            .unwrap();
            let got = d.get_object("acme/hot", None).await.unwrap();
            let ct = got.info.headers.content_type.clone().unwrap();
            let bytes = got.body.collect().await.unwrap();
            let n: u8 = ct[2..].parse().unwrap();
            assert_eq!(bytes.len(), 1000 + n as usize);
            assert!(bytes.iter().all(|b| *b == n));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(tmp_entries(&d).is_empty());
}

#[tokio::test]
async fn listing_a_wide_tree_with_delimiter_and_pages() {
    let (_t, d) = backend().await;
    let mut keys = vec![];
    for t in ["acme", "globex"] {
        for i in 0..30 {
            keys.push(format!("{t}/tickets/{i:03}/body.json"));
            keys.push(format!("{t}/tickets/{i:03}.json"));
        }
    }
    for k in &keys {
        d.put_object(k, Body::from("x"), PutMeta::default())
            .await
            .unwrap();
    }
    keys.sort();
    // Every key, in order, by pages of 7.
    let mut token = None;
    let mut got = vec![];
    loop {
        let page = d
            .list_objects(ListRequest::new("").max_keys(7).continuation_token(token))
            .await
            .unwrap();
        got.extend(page.objects.into_iter().map(|o| o.key));
        token = page.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(got, keys);
    // One level with a delimiter: 30 objects + 30 prefixes for acme.
    let page = d
        .list_objects(ListRequest::new("acme/tickets/").delimiter("/"))
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 30);
    assert_eq!(page.common_prefixes.len(), 30);
    assert_eq!(page.common_prefixes[0], "acme/tickets/000/");
    let page = d
        .list_objects(ListRequest::new("").delimiter("/").max_keys(1))
        .await
        .unwrap();
    assert_eq!(page.common_prefixes, ["acme/"]);
    let next = d
        .list_objects(
            ListRequest::new("")
                .delimiter("/")
                .continuation_token(page.next_continuation_token),
        )
        .await
        .unwrap();
    assert_eq!(next.common_prefixes, ["globex/"]);
    assert!(next.next_continuation_token.is_none());
    let page = d
        .list_objects(ListRequest::new("").max_keys(0))
        .await
        .unwrap();
    assert!(page.objects.is_empty() && page.next_continuation_token.is_none());
}
