//! Server-side encryption end to end with `aws-sdk-s3`: SSE-C through the
//! sidecar to a Garage region (which encrypts with the client's key: a plain
//! read of the stored object is refused), the algorithm and key MD5 in the
//! answers; SSE-S3 and SSE-KMS, which the test regions do not declare (Garage
//! would store the object unencrypted), refused with 501 naming the region
//! and nothing stored. The boto3 differential cases are
//! `tests/python/test_sse_conformance.py`.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine as _;
use md5::Digest as _;
use support::*;

const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_through_the_sidecar_is_encrypted_in_the_region() {
    bounded("sse_c", async {
        let env = Env::start().await;
        let c = env.client(ACME);
        let key = "tickets/sse-rust/c.json";
        let (k, md5) = (b64(&KEY), b64(&md5::Md5::digest(KEY)));
        let put = c
            .put_object()
            .bucket("acme")
            .key(key)
            .body(ByteStream::from_static(b"{\"sse\":1}"))
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k)
            .sse_customer_key_md5(&md5)
            .send();
        let out = succeeds("put", put).await;
        assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(out.sse_customer_key_md5(), Some(md5.as_str()));
        let head = c
            .head_object()
            .bucket("acme")
            .key(key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k)
            .sse_customer_key_md5(&md5)
            .send();
        let h = succeeds("head", head).await;
        assert_eq!(h.sse_customer_key_md5(), Some(md5.as_str()));
        let get = c
            .get_object()
            .bucket("acme")
            .key(key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k)
            .sse_customer_key_md5(&md5)
            .send();
        let g = succeeds("get", get).await;
        assert_eq!(g.sse_customer_algorithm(), Some("AES256"));
        let body = g.body.collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], b"{\"sse\":1}");
        let plain = within(
            "get without key",
            c.get_object().bucket("acme").key(key).send(),
        )
        .await;
        expect_s3_error("get without key", plain, 400, "InvalidRequest");
        // In the region, the object is encrypted: no plain read.
        let eu = cluster().eu();
        let direct = garage_client(eu)
            .get_object()
            .bucket(&eu.bucket)
            .key(format!("acme/{key}"))
            .send();
        assert_eq!(
            failure("direct get", within("direct", direct).await).status,
            400
        );
        let bad = c
            .put_object()
            .bucket("acme")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k)
            .sse_customer_key_md5(b64(&[0u8; 16]))
            .send();
        let f = expect_s3_error(
            "wrong md5",
            within("put", bad).await,
            400,
            "InvalidArgument",
        );
        assert!(f.message.contains("MD5"), "{f:?}");
        assert!(!f.message.contains(&k));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encryption_the_region_does_not_honour_is_refused_and_nothing_stored() {
    bounded("sse_refused", async {
        let env = Env::start().await;
        let c = env.client(ACME);
        let key = "tickets/sse-rust/refused.json";
        for sse in [ServerSideEncryption::Aes256, ServerSideEncryption::AwsKms] {
            let put = c
                .put_object()
                .bucket("acme")
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .server_side_encryption(sse.clone())
                .send();
            let f = expect_s3_error("put", within("put", put).await, 501, "NotImplemented");
            assert!(f.message.starts_with("region eu: "), "{f:?}");
            assert!(f.message.contains("nothing was stored"), "{f:?}");
        }
        assert!(regions_holding("acme", key).await.is_empty());
    })
    .await;
}
