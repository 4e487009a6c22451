//! The differential conformance cases with the Rust SDK (aws-sdk-s3): each
//! case runs against a Garage bucket directly and through the sidecar, and
//! what a client reads must be the same (status, S3 error code, body, ETag,
//! length, range, metadata, listed keys). The boto3 side of the suite is in
//! tests/python/test_*_conformance.py; docs/s3-compatibility.md counts both.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use support::{cluster, failure, garage_client, repo_root, Env, SidecarOptions};

const ACME: (&str, &str) = ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me");

/// What a client reads of one call, comparable across the two sides.
type Read = Result<String, (u16, String)>;

fn err<T: std::fmt::Debug, E>(
    what: &str,
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (u16, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let f = failure(what, r);
    (f.status, f.code)
}

/// Runs every case on one side: `bucket` and the `prefix` its keys get.
async fn cases(c: &Client, bucket: &str, prefix: &str) -> Vec<(&'static str, Read)> {
    let k = |s: &str| format!("{prefix}{s}");
    let body = b"0123456789abcdefghij".repeat(3);
    let mut out: Vec<(&'static str, Read)> = Vec::new();
    let r = c
        .put_object()
        .bucket(bucket)
        .key(k("a.json"))
        .content_type("application/json")
        .metadata("m", "1")
        .body(ByteStream::from(body.clone()))
        .send()
        .await;
    out.push((
        "put",
        r.map(|o| format!("{:?}", o.e_tag()))
            .map_err(|e| err("put", Err::<(), _>(e))),
    ));
    let r = c.get_object().bucket(bucket).key(k("a.json")).send().await;
    let read = match r {
        Ok(o) => {
            let head = format!(
                "{:?} {:?} {:?}",
                o.e_tag(),
                o.content_type(),
                o.content_length()
            );
            let bytes = o.body.collect().await.unwrap().into_bytes();
            Ok(format!("{head} {}", String::from_utf8_lossy(&bytes)))
        }
        Err(e) => Err(err("get", Err::<(), _>(e))),
    };
    out.push(("get", read));
    let r = c
        .get_object()
        .bucket(bucket)
        .key(k("a.json"))
        .range("bytes=2-5")
        .send()
        .await;
    let read = match r {
        Ok(o) => {
            let head = format!("{:?} {:?}", o.content_range(), o.content_length());
            let bytes = o.body.collect().await.unwrap().into_bytes();
            Ok(format!("{head} {}", String::from_utf8_lossy(&bytes)))
        }
        Err(e) => Err(err("range", Err::<(), _>(e))),
    };
    out.push(("range", read));
    let r = c.head_object().bucket(bucket).key(k("a.json")).send().await;
    out.push((
        "head",
        r.map(|o| {
            format!(
                "{:?} {:?} {:?}",
                o.e_tag(),
                o.content_length(),
                o.metadata()
            )
        })
        .map_err(|e| err("head", Err::<(), _>(e))),
    ));
    let r = c
        .get_object()
        .bucket(bucket)
        .key(k("missing.json"))
        .send()
        .await;
    out.push((
        "get missing",
        r.map(|_| String::new())
            .map_err(|e| err("get missing", Err::<(), _>(e))),
    ));
    let r = c
        .head_object()
        .bucket(bucket)
        .key(k("missing.json"))
        .send()
        .await;
    out.push((
        "head missing",
        r.map(|_| String::new())
            .map_err(|e| err("head missing", Err::<(), _>(e))),
    ));
    let r = c
        .copy_object()
        .bucket(bucket)
        .key(k("b.json"))
        .copy_source(format!("{bucket}/{}", k("a.json")))
        .send()
        .await;
    out.push((
        "copy",
        r.map(|o| format!("{:?}", o.copy_object_result().and_then(|r| r.e_tag())))
            .map_err(|e| err("copy", Err::<(), _>(e))),
    ));
    for name in ["c.json", "d/1.json", "d/2.json", "e.json"] {
        c.put_object()
            .bucket(bucket)
            .key(k(name))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    // ListObjectsV2 by pages of two, with and without a delimiter.
    for delimiter in [None, Some("/")] {
        let mut token: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let mut q = c
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .max_keys(2);
            if let Some(d) = delimiter {
                q = q.delimiter(d);
            }
            if let Some(t) = &token {
                q = q.continuation_token(t);
            }
            let p = q.send().await.unwrap();
            let keys: Vec<String> = p
                .contents()
                .iter()
                .filter_map(|o| o.key().map(|s| s[prefix.len()..].to_owned()))
                .collect();
            let prefixes: Vec<String> = p
                .common_prefixes()
                .iter()
                .filter_map(|cp| cp.prefix().map(|s| s[prefix.len()..].to_owned()))
                .collect();
            pages.push(format!("{keys:?} {prefixes:?} {:?}", p.is_truncated()));
            token = p.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        out.push(("list v2 pages", Ok(pages.join(" | "))));
    }
    let ids: Vec<ObjectIdentifier> = ["b.json", "c.json", "none.json"]
        .iter()
        .map(|n| ObjectIdentifier::builder().key(k(n)).build().unwrap())
        .collect();
    let r = c
        .delete_objects()
        .bucket(bucket)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<String> = r
        .deleted()
        .iter()
        .filter_map(|d| d.key().map(|s| s[prefix.len()..].to_owned()))
        .collect();
    deleted.sort();
    out.push((
        "delete objects",
        Ok(format!("{deleted:?} {}", r.errors().len())),
    ));
    for name in ["a.json", "d/1.json", "d/2.json", "e.json"] {
        c.delete_object()
            .bucket(bucket)
            .key(k(name))
            .send()
            .await
            .unwrap();
    }
    let r = c.get_object().bucket(bucket).key(k("a.json")).send().await;
    out.push((
        "get deleted",
        r.map(|_| String::new())
            .map_err(|e| err("get deleted", Err::<(), _>(e))),
    ));
    out
}

/// The bucket lifecycle on one side (a new bucket `name`).
async fn lifecycle(c: &Client, name: &str) -> Vec<(&'static str, Read)> {
    let mut out: Vec<(&'static str, Read)> = Vec::new();
    let r = c.create_bucket().bucket(name).send().await;
    out.push((
        "create",
        r.map(|_| String::new())
            .map_err(|e| err("create", Err::<(), _>(e))),
    ));
    let r = c.create_bucket().bucket(name).send().await;
    out.push((
        "create again",
        r.map(|_| String::new())
            .map_err(|e| err("create again", Err::<(), _>(e))),
    ));
    c.put_object()
        .bucket(name)
        .key("tickets/1.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap();
    let r = c.delete_bucket().bucket(name).send().await;
    out.push((
        "delete non-empty",
        r.map(|_| String::new())
            .map_err(|e| err("delete non-empty", Err::<(), _>(e))),
    ));
    c.delete_object()
        .bucket(name)
        .key("tickets/1.json")
        .send()
        .await
        .unwrap();
    let r = c.delete_bucket().bucket(name).send().await;
    out.push((
        "delete",
        r.map(|_| String::new())
            .map_err(|e| err("delete", Err::<(), _>(e))),
    ));
    let r = c.head_bucket().bucket(name).send().await;
    out.push((
        "head deleted",
        r.map(|_| String::new())
            .map_err(|e| err("head deleted", Err::<(), _>(e))),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_reads_the_same_from_garage_and_through_the_sidecar() {
    let eu = &cluster().eu();
    // The sidecar's own tenants file: the buckets it creates are kept
    // beside it, in this test's directory.
    let tenants = std::fs::read_to_string(repo_root().join("config/tenants.example.toml")).unwrap();
    let env = Env::start_with(&SidecarOptions {
        tenants: Some(tenants),
        ..SidecarOptions::default()
    })
    .await;
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let direct = garage_client(eu);
    let side = env.client(ACME);
    let g = cases(&direct, &eu.bucket, &format!("rust-conf-{n}/")).await;
    let s = cases(&side, "acme", &format!("tickets/rust-conf-{n}/")).await;
    assert_eq!(g.len(), s.len());
    for ((name, a), (_, b)) in g.iter().zip(&s) {
        assert_eq!(a, b, "{name}: Garage {a:?}, the sidecar {b:?}");
    }
    let g = lifecycle(&direct, &format!("rconf-g-{n}")).await;
    let s = lifecycle(&side, &format!("rconf-s-{n}")).await;
    for ((name, a), (_, b)) in g.iter().zip(&s) {
        assert_eq!(a, b, "{name}: Garage {a:?}, the sidecar {b:?}");
    }
    // The created bucket's registry is in this test's directory, not the repository.
    assert!(env.dir.path().join("tenants.buckets.toml").exists());
}
