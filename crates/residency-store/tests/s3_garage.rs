//! `S3Backend` against a real Garage server: the whole conformance suite on
//! the lean outbound path (the default) and on the SDK-only path, and what
//! the lean path must get right on its own (signing odd keys and metadata,
//! error mapping, a region that stops answering).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use residency_store::{
    Backend, Body, ByteRange, PutMeta, S3Backend, S3BackendConfig, StoreError, StoredHeaders,
};
use residency_testkit::{GarageCluster, RegionInfo};

fn backend(r: &RegionInfo, fast: bool) -> S3Backend {
    backend_with(r, fast, &r.secret_key)
}

fn backend_with(r: &RegionInfo, fast: bool, secret: &str) -> S3Backend {
    let config = S3BackendConfig::builder(&r.bucket, &r.region)
        .endpoint(&r.endpoint)
        .credentials(&r.access_key, secret)
        .fast_path(fast)
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("config");
    let b = S3Backend::new(config).expect("backend");
    assert_eq!(b.uses_fast_path(), fast);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_both_paths_against_garage() {
    let cluster = GarageCluster::builder().start().expect("garage");
    let eu = cluster.eu().clone();
    for fast in [true, false] {
        let s3 = backend(&eu, fast);
        let t = Instant::now();
        residency_store::conformance::run_all(&s3, &format!("conf-{fast}/")).await;
        eprintln!("conformance (fast path {fast}): {:.2?}", t.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_path_signs_keys_and_metadata_and_maps_errors() {
    let cluster = GarageCluster::builder().start().expect("garage");
    let eu = cluster.eu().clone();
    let fast = backend(&eu, true);
    let sdk = backend(&eu, false);

    // Keys with spaces, reserved and non-ASCII characters; metadata values
    // with runs of spaces (SigV4 folds them): written by one path, read by
    // the other, byte for byte.
    let keys = [
        "tickets/a b/c+d=e&f.json",
        "tickets/é/ü ~!*'()$,;:@.bin",
        "tickets/%41/percent",
        "tickets/deep/./dots/../x",
    ];
    for (i, key) in keys.iter().enumerate() {
        let (writer, reader) = if i % 2 == 0 {
            (&fast, &sdk)
        } else {
            (&sdk, &fast)
        };
        let meta = PutMeta {
            headers: StoredHeaders {
                content_type: Some("text/plain; charset=utf-8".into()),
                user_metadata: BTreeMap::from([
                    ("origin".to_string(), "two  spaces   here".to_string()),
                    ("tenant-id".to_string(), "acme".to_string()),
                ]),
                ..StoredHeaders::default()
            },
            ..PutMeta::default()
        };
        let data = Bytes::from(format!("payload of {key}"));
        let put = writer
            .put_object(key, Body::from(data.clone()), meta)
            .await
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
        let got = reader
            .get_object(key, None)
            .await
            .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
        assert_eq!(got.info.etag, put.etag, "{key}");
        assert_eq!(
            got.info
                .headers
                .user_metadata
                .get("origin")
                .map(String::as_str),
            Some("two  spaces   here"),
            "{key}"
        );
        assert_eq!(
            got.info.headers.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(got.body.collect().await.unwrap(), data, "{key}");
        let head = fast.head_object(key).await.unwrap();
        assert_eq!(head.size, data.len() as u64);
        assert!(head.last_modified > std::time::UNIX_EPOCH);
    }

    // A streamed body whose stream is shorter than declared is refused and
    // stores nothing.
    let key = "tickets/short";
    let chunks: Vec<Result<Bytes, residency_store::BoxError>> = vec![Ok(Bytes::from("abc"))];
    let err = fast
        .put_object(
            key,
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
    assert!(matches!(
        fast.head_object(key).await,
        Err(StoreError::NotFound { .. })
    ));

    // Ranges, and a range past the end.
    let got = fast
        .get_object(keys[0], Some(ByteRange::parse("bytes=0-6").unwrap()))
        .await
        .unwrap();
    assert_eq!(got.content_range.map(|r| (r.0, r.1)), Some((0, 6)));
    assert_eq!(got.body.collect().await.unwrap(), "payload");
    let err = fast
        .get_object(keys[0], Some(ByteRange::parse("bytes=9999-").unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRange), "{err:?}");

    // Wrong secret: the service refuses the signature; that is an error
    // with its S3 code, not a missing object.
    let bad = backend_with(&eu, true, "not-the-secret");
    for err in [
        bad.head_object(keys[0]).await.unwrap_err(),
        bad.get_object(keys[0], None).await.unwrap_err(),
        bad.put_object("tickets/x", Body::from("x"), PutMeta::default())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    status: Some(403),
                    ..
                }
            ),
            "{err:?}"
        );
    }
    for key in keys {
        fast.delete_object(key).await.unwrap();
        assert!(matches!(
            sdk.head_object(key).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    // The region stops: calls fail as unavailable (503 to the client), never
    // as a missing object, and within the timeouts.
    cluster.stop_region("eu").expect("stop eu");
    let t = Instant::now();
    for err in [
        fast.head_object(keys[0]).await.unwrap_err(),
        fast.put_object("tickets/y", Body::from("y"), PutMeta::default())
            .await
            .unwrap_err(),
    ] {
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.http_status(), 503);
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}
