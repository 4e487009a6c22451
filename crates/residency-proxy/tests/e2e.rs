//! End to end: `aws-sdk-s3` against the sidecar, the sidecar against two real
//! Garage servers (one per region). Every placement is checked by reading the
//! regional buckets directly; every refusal is checked to change nothing.
//!
//! One Garage pair serves the whole binary (see `support::cluster`); each test
//! runs its own sidecar and writes under its own key prefix. Tests that assert
//! "nothing changed" in the buckets hold `support::BUCKETS` exclusively.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::copy_object::{CopyObjectError, CopyObjectOutput};
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, ChecksumAlgorithm, CompletedMultipartUpload,
    CompletedPart, Delete, MetadataDirective, ObjectIdentifier, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use support::*;

/// A PutObject of a body that must not be stored: the answer, to check.
async fn try_put(
    c: &Client,
    bucket: &str,
    key: &str,
) -> Result<PutObjectOutput, SdkError<PutObjectError, HttpResponse>> {
    within(
        "put",
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"must not be stored"))
            .send(),
    )
    .await
}

/// A CopyObject of `source` (`bucket/key`) to `bucket/key`: the answer, to check.
async fn try_copy(
    c: &Client,
    bucket: &str,
    key: &str,
    source: &str,
) -> Result<CopyObjectOutput, SdkError<CopyObjectError, HttpResponse>> {
    within(
        "copy",
        c.copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(source)
            .send(),
    )
    .await
}

/// Asserts the status and S3 error code of a raw answer.
fn assert_raw_error(r: &RawResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.body.contains(&format!("<Code>{code}</Code>")), "{r:?}");
}

/// Asserts that neither bucket changed since `before`, once a refused
/// upload's aborted backend call has had a moment to end.
async fn assert_unchanged_since(before: &BTreeMap<String, String>, what: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(before, &snapshot().await, "{what}");
}

/// An `aws-chunked` PUT of `chunks` to `path?query` by ACME, signed now:
/// `framing` is its `x-amz-content-sha256`, `extra` headers are signed too,
/// and `frame` builds the body from the signer and the seed signature.
async fn put_aws_chunked(
    addr: SocketAddr,
    path: &str,
    query: &str,
    framing: &str,
    chunks: &[&[u8]],
    extra: &[(&'static str, String)],
    frame: impl Fn(&Signer, &str) -> Vec<u8>,
) -> RawResponse {
    let (datetime, _) = amz_date(SystemTime::now());
    let s = Signer::new(ACME, "us-east-1", &datetime);
    // The framed length does not depend on the signatures' values.
    let framed_len = frame(&s, &"0".repeat(64)).len();
    let decoded_len: usize = chunks.iter().map(|c| c.len()).sum();
    let mut headers = vec![
        ("host", addr.to_string()),
        ("content-encoding", "aws-chunked".to_string()),
        ("content-length", framed_len.to_string()),
        ("x-amz-content-sha256", framing.to_string()),
        ("x-amz-date", datetime.clone()),
        ("x-amz-decoded-content-length", decoded_len.to_string()),
    ];
    headers.extend_from_slice(extra);
    let (seed, auth) = s.seed("PUT", path, query, &headers, framing);
    let body = frame(&s, &seed);
    assert_eq!(body.len(), framed_len);
    headers.push(("authorization", auth));
    let target = match query {
        "" => path.to_string(),
        q => format!("{path}?{q}"),
    };
    send_raw(addr, "PUT", &target, &headers, &body).await
}

fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    let v = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
}

/// The signer's output matches the AWS documentation's streaming example
/// (the values s3s checks in its own tests), so the hand-signed requests below
/// are valid SigV4.
#[test]
fn sigv4_signer_matches_the_aws_streaming_example() {
    let s = Signer::new(
        (
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        "us-east-1",
        "20130524T000000Z",
    );
    let headers = [
        ("content-encoding", "aws-chunked".to_string()),
        ("content-length", "66824".to_string()),
        ("host", "s3.amazonaws.com".to_string()),
        (
            "x-amz-content-sha256",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string(),
        ),
        ("x-amz-date", "20130524T000000Z".to_string()),
        ("x-amz-decoded-content-length", "66560".to_string()),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY".to_string()),
    ];
    let (seed, _) = s.seed(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        &headers,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    );
    assert_eq!(
        seed,
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    );
    let c1 = s.chunk(&seed, &[b'a'; 64 * 1024]);
    assert_eq!(
        c1,
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );
    let c2 = s.chunk(&c1, &[b'a'; 1024]);
    assert_eq!(
        c2,
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
    );
    assert_eq!(amz_date(SystemTime::UNIX_EPOCH).0, "19700101T000000Z");
    assert_eq!(
        amz_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_199)).0,
        "20240229T235959Z"
    );
}

/// Objects land exactly where the seed table says, at `<tenant>/<key>` in one
/// regional bucket and not the other; the SDK's streaming uploads (aws-chunked
/// with a CRC32 trailer) are decoded, and the stored bytes are the payload, not
/// the framing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_follows_the_seed_table() {
    bounded("placement", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let recorder = Recorder::default();
        let acme = env.recorded_client(ACME, &recorder);
        let globex = env.client(GLOBEX);
        let initech = env.client(INITECH);
        let eurobank = env.client(EUROBANK);
        let service = env.client(SERVICE);
        // (client, tenant/bucket, key, expected region) — literals from the seed table.
        let cases: Vec<(&Client, &str, &str, &str)> = vec![
            (&acme, "acme", "chat/placement/session.txt", "eu"),
            (&globex, "globex", "chat/placement/session.txt", "eu"),
            (&acme, "acme", "talk/recordings/placement/call.wav", "us"),
            (&acme, "acme", "tickets/placement/1.json", "eu"),
            (&globex, "globex", "tickets/placement/1.json", "us"),
            (&initech, "initech", "tickets/placement/1.json", "us"),
            (&eurobank, "eurobank", "tickets/placement/1.json", "eu"),
            (&acme, "acme", "insights/placement/report.json", "us"),
            (
                &acme,
                "acme",
                "backups/chat_content/placement/2024-01-01.tar",
                "eu",
            ),
            (&acme, "acme", "backups/placement/full.tar", "eu"),
            (&globex, "globex", "backups/placement/full.tar", "us"),
            (&globex, "globex", "guide/images/placement/logo.png", "us"),
            (&service, "acme", "users/placement/svc.json", "eu"),
            (&service, "globex", "users/placement/svc.json", "us"),
        ];
        for (i, &(c, tenant, key, region)) in cases.iter().enumerate() {
            let body = format!("{tenant} {key} payload ").repeat(50);
            // A file body is a streaming body: the SDK sends it aws-chunked with
            // a CRC32 trailer; over plain HTTP it signs every chunk and the
            // trailer (over HTTPS it would send them unsigned: that shape is
            // hand-built in `unsigned_trailer_upload_checks_its_crc32`).
            // In-memory bodies elsewhere get a signed payload and a CRC32 header.
            let file = env.dir.path().join(format!("body-{i}"));
            std::fs::write(&file, &body).expect("write body file");
            let stream = ByteStream::from_path(&file).await.expect("file body");
            let sent = within(
                "put",
                c.put_object().bucket(tenant).key(key).body(stream).send(),
            )
            .await;
            sent.unwrap_or_else(|e| panic!("put {tenant}/{key}: {e:?}"));
            assert_placed(tenant, key, region).await;
            assert_eq!(
                backend_bytes(region, tenant, key).await,
                body.as_bytes(),
                "{tenant}/{key}: the backend must hold the decoded payload"
            );
            assert_eq!(get(c, tenant, key).await, body.as_bytes(), "{tenant}/{key}");
        }
        // The SDK really sent streaming aws-chunked uploads with a CRC32 trailer.
        let sent = recorder.take();
        let streamed: Vec<_> = sent
            .iter()
            .filter(|h| h.contains_key("x-amz-trailer"))
            .collect();
        assert_eq!(streamed.len(), 6, "acme's uploads: {sent:?}");
        for h in streamed {
            assert_eq!(
                h.get("x-amz-trailer").map(String::as_str),
                Some("x-amz-checksum-crc32")
            );
            assert!(h
                .get("content-encoding")
                .is_some_and(|v| v.contains("aws-chunked")));
            assert_eq!(
                h.get("x-amz-content-sha256").map(String::as_str),
                Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
            );
        }
    })
    .await;
}

/// Every refusal answers with the right S3 status and code, and neither
/// regional bucket changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_return_s3_errors_and_change_nothing() {
    bounded("refusals", async {
        let _exclusive = BUCKETS.write().await;
        let env = Env::start().await;
        let ep = env.sidecar.endpoint.clone();
        let before = snapshot().await;
        let body = || ByteStream::from_static(b"must not be stored");
        let k = "tickets/refused/1.json";

        // Authentication.
        let c = proxy_client(&ep, "NOSUCHKEYEXAMPLE", "whatever", None);
        expect_s3_error(
            "unknown key",
            try_put(&c, "acme", k).await,
            403,
            "InvalidAccessKeyId",
        );
        let c = proxy_client(&ep, ACME.0, "not-the-secret", None);
        expect_s3_error(
            "wrong secret",
            try_put(&c, "acme", k).await,
            403,
            "SignatureDoesNotMatch",
        );
        expect_s3_error(
            "wrong secret (get)",
            c.get_object().bucket("acme").key(k).send().await,
            403,
            "SignatureDoesNotMatch",
        );
        let c = skewed_client(&ep, ACME, Duration::from_secs(20 * 60));
        expect_s3_error(
            "clock 20 minutes behind",
            try_put(&c, "acme", k).await,
            403,
            "RequestTimeTooSkewed",
        );
        // A clock 5 minutes off is within the allowed skew (read-only check).
        let c = skewed_client(&ep, ACME, Duration::from_secs(5 * 60));
        within(
            "head bucket (5 min skew)",
            c.head_bucket().bucket("acme").send(),
        )
        .await
        .expect("5 minutes of skew is allowed");

        // Authorisation: a key acts only for its tenant(s).
        let acme = env.client(ACME);
        let f = expect_s3_error(
            "acme key on globex bucket",
            try_put(&acme, "globex", k).await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("globex"), "{f:?}");
        expect_s3_error(
            "acme key lists globex",
            acme.list_objects_v2().bucket("globex").send().await,
            403,
            "AccessDenied",
        );
        expect_s3_error(
            "acme key reads globex",
            acme.get_object().bucket("globex").key(k).send().await,
            403,
            "AccessDenied",
        );
        let service = env.client(SERVICE);
        expect_s3_error(
            "service key for eurobank",
            try_put(&service, "eurobank", k).await,
            403,
            "AccessDenied",
        );
        expect_s3_error(
            "unknown bucket",
            try_put(&acme, "nosuchtenant", k).await,
            404,
            "NoSuchBucket",
        );

        // Policy: strict locality, unclassifiable payloads, disabled features,
        // a category label contradicting the key rule.
        let eurobank = env.client(EUROBANK);
        let f = expect_s3_error(
            "eurobank call recording",
            try_put(&eurobank, "eurobank", "talk/recordings/x").await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("out_of_locality"), "{f:?}");
        let f = expect_s3_error(
            "eurobank multipart call recording",
            eurobank
                .create_multipart_upload()
                .bucket("eurobank")
                .key("talk/recordings/y")
                .send()
                .await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("out_of_locality"), "{f:?}");
        let put_to_acme = || acme.put_object().bucket("acme");
        for (what, request) in [
            (
                "unclassified key",
                put_to_acme()
                    .key("misc/refused/blob.bin")
                    .content_type("application/octet-stream"),
            ),
            (
                "nps without the feature",
                put_to_acme().key("nps/refused/list.csv"),
            ),
            (
                "label contradicting the key rule",
                put_to_acme()
                    .key("chat/refused/moved.txt")
                    .metadata("residency-category", "call_recordings"),
            ),
        ] {
            let r = request.body(body()).send().await;
            expect_s3_error(what, r, 403, "AccessDenied");
        }

        // Unsupported operations.
        expect_s3_error(
            "PutBucketVersioning",
            acme.put_bucket_versioning()
                .bucket("acme")
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await,
            501,
            "NotImplemented",
        );
        expect_s3_error(
            "GetObjectAcl",
            acme.get_object_acl().bucket("acme").key(k).send().await,
            501,
            "NotImplemented",
        );

        // Forged multipart upload ids.
        expect_s3_error(
            "UploadPart with a forged upload id",
            acme.upload_part()
                .bucket("acme")
                .key(k)
                .upload_id("forged-upload-id")
                .part_number(1)
                .body(body())
                .send()
                .await,
            404,
            "NoSuchUpload",
        );
        expect_s3_error(
            "Complete with a forged upload id",
            acme.complete_multipart_upload()
                .bucket("acme")
                .key(k)
                .upload_id("forged-upload-id")
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(
                            CompletedPart::builder()
                                .part_number(1)
                                .e_tag("\"x\"")
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await,
            404,
            "NoSuchUpload",
        );

        assert_eq!(
            before,
            snapshot().await,
            "a refused request changed a regional bucket"
        );
    })
    .await;
}

/// An object placed by its content type alone (no key rule) is found again by
/// a new sidecar process on the same configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_placed_by_content_type_is_read_after_restart() {
    bounded("restart", async {
        let _shared = BUCKETS.read().await;
        let mut env = Env::start().await;
        let key = "uploads/captions.vtt";
        let audio = (0u8..=255).cycle().take(40_000).collect::<Vec<u8>>();
        within(
            "put voice",
            env.client(ACME)
                .put_object()
                .bucket("acme")
                .key(key)
                .content_type("text/vtt")
                .body(ByteStream::from(audio.clone()))
                .send(),
        )
        .await
        .expect("put uploads/captions.vtt");
        // text/vtt: transcriptions, which follow ticket data: acme is EU.
        // (No audio/* rule: a content type alone never narrows the region.)
        assert_placed("acme", key, "eu").await;

        env.restart().await;
        let c = env.client(ACME);
        let out = within("get voice", c.get_object().bucket("acme").key(key).send())
            .await
            .expect("get after restart");
        assert_eq!(out.content_type(), Some("text/vtt"));
        let got = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(got.as_ref(), audio.as_slice());
        let head = within("head voice", c.head_object().bucket("acme").key(key).send())
            .await
            .expect("head after restart");
        assert_eq!(head.content_length(), Some(audio.len() as i64));
    })
    .await;
}

const MIB: usize = 1024 * 1024;

/// Multipart uploads stay in the region chosen at Create; ListParts and
/// ListMultipartUploads see them; Complete assembles them there; Abort leaves
/// nothing; upload ids cannot be forged or used by another tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_stay_in_their_region() {
    bounded("multipart", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        // (key, content type, expected region)
        // (key, content type, expected region, CRC32 parts). With a checksum
        // algorithm named at Create the part checksums go into Complete; without
        // one they must not (Garage, like S3, keeps no part checksum then).
        let cases = [
            (
                "talk/recordings/multipart/voice.bin",
                Some("audio/mpeg"),
                "us",
                true,
            ),
            ("chat/multipart/transcript.txt", None, "eu", false),
        ];
        for (key, ct, region, crc) in cases {
            let created = within(
                "create",
                acme.create_multipart_upload()
                    .bucket("acme")
                    .key(key)
                    .set_content_type(ct.map(str::to_string))
                    .set_checksum_algorithm(crc.then_some(ChecksumAlgorithm::Crc32))
                    .send(),
            )
            .await
            .unwrap_or_else(|e| panic!("create {key}: {e:?}"));
            let id = created.upload_id().expect("upload id").to_string();
            let part1 = vec![b'a'; 5 * MIB];
            let part2 = b"the last part".to_vec();
            let mut done = Vec::new();
            for (n, data) in [(1, &part1), (2, &part2)] {
                let out = within(
                    "upload part",
                    acme.upload_part()
                        .bucket("acme")
                        .key(key)
                        .upload_id(&id)
                        .part_number(n)
                        .body(ByteStream::from(data.clone()))
                        .send(),
                )
                .await
                .unwrap_or_else(|e| panic!("part {n} of {key}: {e:?}"));
                done.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .e_tag(out.e_tag().expect("etag"))
                        .set_checksum_crc32(
                            out.checksum_crc32().filter(|_| crc).map(str::to_string),
                        )
                        .build(),
                );
            }
            // The upload is in progress in its region only.
            let snap = snapshot().await;
            let in_region: Vec<_> = snap
                .keys()
                .filter(|k| k.contains(":upload:") && k.contains(&format!("acme/{key}")))
                .collect();
            assert_eq!(in_region.len(), 1, "{in_region:?}");
            assert!(
                in_region[0].starts_with(&format!("{region}:")),
                "{in_region:?}"
            );

            let sizes: Vec<_> = list_parts(&acme, "acme", key, &id)
                .await
                .iter()
                .map(|p| (p.part_number(), p.size()))
                .collect();
            assert_eq!(
                sizes,
                [
                    (Some(1), Some(part1.len() as i64)),
                    (Some(2), Some(part2.len() as i64))
                ]
            );
            let uploads = list_uploads(&acme, "acme", key).await;
            let listed: Vec<_> = uploads
                .iter()
                .map(|u| {
                    (
                        u.key().unwrap_or_default(),
                        u.upload_id().unwrap_or_default(),
                    )
                })
                .collect();
            assert_eq!(listed, [(key, id.as_str())]);

            // Another tenant cannot use this upload id, even through a service key.
            let service = env.client(SERVICE);
            expect_s3_error(
                "globex uses acme's upload id",
                service
                    .list_parts()
                    .bucket("globex")
                    .key(key)
                    .upload_id(&id)
                    .send()
                    .await,
                404,
                "NoSuchUpload",
            );
            // An id redirected to the other region, or to another tenant, is rejected.
            let other = if region == "eu" { "us" } else { "eu" };
            let redirected = id.replacen(&format!("r1.{region}."), &format!("r1.{other}."), 1);
            assert_ne!(redirected, id, "upload ids name their region: {id}");
            expect_s3_error(
                "upload id redirected to another region",
                acme.list_parts()
                    .bucket("acme")
                    .key(key)
                    .upload_id(&redirected)
                    .send()
                    .await,
                404,
                "NoSuchUpload",
            );
            let stolen = id.replacen(".acme.", ".globex.", 1);
            expect_s3_error(
                "upload id relabelled for another tenant",
                service
                    .list_parts()
                    .bucket("globex")
                    .key(key)
                    .upload_id(&stolen)
                    .send()
                    .await,
                404,
                "NoSuchUpload",
            );

            within(
                "complete",
                acme.complete_multipart_upload()
                    .bucket("acme")
                    .key(key)
                    .upload_id(&id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(done))
                            .build(),
                    )
                    .send(),
            )
            .await
            .unwrap_or_else(|e| panic!("complete {key}: {e:?}"));
            assert_placed("acme", key, region).await;
            let mut want = part1.clone();
            want.extend_from_slice(&part2);
            let got = backend_bytes(region, "acme", key).await;
            assert!(got == want, "{key}: assembled object differs");
            assert!(get(&acme, "acme", key).await == want);
        }

        // Abort leaves nothing in either region.
        let key = "tickets/multipart/aborted.json";
        let id = create_upload(&acme, "acme", key).await;
        within(
            "part",
            acme.upload_part()
                .bucket("acme")
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"abandoned"))
                .send(),
        )
        .await
        .expect("part");
        abort_upload(&acme, "acme", key, &id).await;
        let ups = list_uploads(&acme, "acme", key).await;
        assert!(ups.is_empty(), "{ups:?}");
        assert!(regions_holding("acme", key).await.is_empty());
        let snap = snapshot().await;
        assert!(
            !snap.keys().any(|k| k.contains(&format!("acme/{key}"))),
            "aborted upload left something: {snap:?}"
        );
    })
    .await;
}

/// A hand-signed `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` upload: correct chunk
/// signatures store the decoded bytes; one corrupted chunk gets 403
/// SignatureDoesNotMatch and leaves nothing in either region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_chunked_upload_verifies_every_chunk() {
    bounded("aws-chunked", async {
        let _exclusive = BUCKETS.write().await;
        let env = Env::start().await;
        let addr = env.sidecar.addr;
        let chunk1 = vec![b'x'; 64 * 1024];
        let chunk2: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let chunk3 = b"tail".to_vec();
        let chunks: [&[u8]; 3] = [&chunk1, &chunk2, &chunk3];
        let decoded_len: usize = chunks.iter().map(|c| c.len()).sum();

        let upload = |key: &'static str, corrupt: Option<usize>| async move {
            put_aws_chunked(
                addr,
                &format!("/acme/{key}"),
                "",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                &chunks,
                &[("content-type", "text/plain".to_string())],
                |s, seed| s.chunked_body(seed, &chunks, corrupt),
            )
            .await
        };

        // Corrupted second chunk: refused, nothing stored anywhere.
        let before = snapshot().await;
        let key = "chat/chunked/corrupted.txt";
        let r = upload(key, Some(1)).await;
        assert_raw_error(&r, 403, "SignatureDoesNotMatch");
        assert!(regions_holding("acme", key).await.is_empty());
        // The backend call is aborted with the body: give Garage a moment, then
        // check that neither bucket changed at all.
        assert_unchanged_since(&before, "a refused upload left data behind").await;

        // A corrupted first chunk, for good measure.
        let r = upload("chat/chunked/corrupted-first.txt", Some(0)).await;
        assert_raw_error(&r, 403, "SignatureDoesNotMatch");
        assert_unchanged_since(&before, "a refused upload left data behind").await;

        // The SDK's shape over HTTP (signed chunks and a signed CRC32 trailer)
        // with a wrong trailer signature: refused, nothing stored.
        let key = "chat/chunked/bad-trailer-signature.txt";
        let crc = crc32_b64(&chunks.concat());
        let trailer = ("x-amz-checksum-crc32", crc.as_str());
        let upload_with_trailer = |bad_trailer_signature: bool| async move {
            put_aws_chunked(
                addr,
                &format!("/acme/{key}"),
                "",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                &chunks,
                &[("x-amz-trailer", "x-amz-checksum-crc32".to_string())],
                |s, seed| {
                    s.chunked_body_with_trailer(seed, &chunks, trailer, bad_trailer_signature)
                },
            )
            .await
        };
        let r = upload_with_trailer(true).await;
        assert_raw_error(&r, 403, "SignatureDoesNotMatch");
        assert_unchanged_since(&before, "a refused upload left data behind").await;
        // The same upload with the right trailer signature is stored.
        let r = upload_with_trailer(false).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(backend_bytes("eu", "acme", key).await == chunks.concat());

        // Correct signatures: 200 and the decoded bytes, not the framing.
        let key = "chat/chunked/good.txt";
        let r = upload(key, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_placed("acme", key, "eu").await;
        let stored = backend_bytes("eu", "acme", key).await;
        let want: Vec<u8> = chunks.concat();
        assert_eq!(stored.len(), decoded_len);
        assert!(
            stored == want,
            "the stored bytes are not the decoded payload"
        );
        let got = get(&env.client(ACME), "acme", key).await;
        assert!(got == want);
    })
    .await;
}

/// ListObjectsV2 merges both regions in key order, pages across them with
/// continuation tokens, and groups by delimiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_merges_regions_in_key_order() {
    bounded("list", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        let base = "lists/merge/";
        // No key rule matches lists/**: the category label places each object,
        // chat content in the EU and call recordings in the US.
        let mut expected = Vec::new();
        for i in 0..10 {
            let key = format!("{base}k{i:02}");
            let (category, region) = if i % 3 == 0 {
                ("call_recordings", "us")
            } else {
                ("chat_content", "eu")
            };
            put_labelled(&acme, &key, category, &key).await;
            assert_placed("acme", &key, region).await;
            expected.push(key);
        }
        for (key, category) in [
            (format!("{base}sub-eu/a"), "chat_content"),
            (format!("{base}sub-eu/b"), "chat_content"),
            (format!("{base}sub-us/a"), "call_recordings"),
        ] {
            put_labelled(&acme, &key, category, "x").await;
        }

        // Pages of 3 across both regions.
        let mut all = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = within(
                "list",
                acme.list_objects_v2()
                    .bucket("acme")
                    .prefix(base)
                    .delimiter("/")
                    .max_keys(3)
                    .set_continuation_token(token.take())
                    .send(),
            )
            .await
            .expect("list");
            pages += 1;
            assert!(pages < 20, "pagination does not end");
            let keys: Vec<String> = page
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            let prefixes: Vec<String> = page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string))
                .collect();
            assert!(keys.len() + prefixes.len() <= 3, "{keys:?} {prefixes:?}");
            all.extend(keys);
            all.extend(prefixes);
            match page.next_continuation_token() {
                Some(t) => {
                    assert_eq!(page.is_truncated(), Some(true));
                    token = Some(t.to_string());
                }
                None => {
                    assert_ne!(page.is_truncated(), Some(true));
                    break;
                }
            }
        }
        expected.push(format!("{base}sub-eu/"));
        expected.push(format!("{base}sub-us/"));
        assert_eq!(all, expected, "merged listing, in key order");
        assert_eq!(pages, 4);

        // Without a delimiter, everything under the prefix, one page.
        let page = within(
            "list all",
            acme.list_objects_v2().bucket("acme").prefix(base).send(),
        )
        .await
        .expect("list");
        let keys: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 13);
        assert!(page.common_prefixes().is_empty());
        // Another tenant's listing does not see acme's objects.
        assert!(list_keys(&env.client(GLOBEX), "globex", base)
            .await
            .is_empty());
    })
    .await;
}

/// GetObject with Range, HeadObject, DeleteObject, DeleteObjects (across both
/// regions), HeadBucket and GetBucketLocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_and_bucket_operations() {
    bounded("objects", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        let key = "tickets/ops/range.txt";
        let body = b"0123456789abcdefghij";
        within(
            "put",
            acme.put_object()
                .bucket("acme")
                .key(key)
                .content_type("text/plain")
                .metadata("origin", "e2e")
                .body(ByteStream::from_static(body))
                .send(),
        )
        .await
        .expect("put");

        let out = within(
            "range get",
            acme.get_object()
                .bucket("acme")
                .key(key)
                .range("bytes=2-5")
                .send(),
        )
        .await
        .expect("range get");
        assert_eq!(out.content_range(), Some("bytes 2-5/20"));
        assert_eq!(out.content_length(), Some(4));
        assert_eq!(
            out.body.collect().await.unwrap().into_bytes().as_ref(),
            b"2345"
        );
        let out = within(
            "suffix range",
            acme.get_object()
                .bucket("acme")
                .key(key)
                .range("bytes=-3")
                .send(),
        )
        .await
        .expect("suffix range");
        assert_eq!(
            out.body.collect().await.unwrap().into_bytes().as_ref(),
            b"hij"
        );

        let head = within("head", acme.head_object().bucket("acme").key(key).send())
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(body.len() as i64));
        assert_eq!(head.content_type(), Some("text/plain"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("e2e")
        );
        assert!(head.e_tag().is_some());

        expect_s3_error(
            "get missing",
            acme.get_object()
                .bucket("acme")
                .key("tickets/ops/missing")
                .send()
                .await,
            404,
            "NoSuchKey",
        );
        let f = failure(
            "head missing",
            acme.head_object()
                .bucket("acme")
                .key("tickets/ops/missing")
                .send()
                .await,
        );
        assert_eq!(f.status, 404);

        // DeleteObject.
        within(
            "delete",
            acme.delete_object().bucket("acme").key(key).send(),
        )
        .await
        .expect("delete");
        assert!(regions_holding("acme", key).await.is_empty());
        within(
            "delete again",
            acme.delete_object().bucket("acme").key(key).send(),
        )
        .await
        .expect("deleting a missing key succeeds");

        // DeleteObjects across both regions (and a key placed by content type).
        let keys = [
            "chat/ops/a.txt",
            "talk/recordings/ops/b.wav",
            "tickets/ops/c.json",
        ];
        for k in keys {
            put(&acme, "acme", k, b"to delete").await;
        }
        within(
            "put by content type",
            acme.put_object()
                .bucket("acme")
                .key("talk/voicemails/ops/d.mp3")
                .content_type("audio/mpeg")
                .body(ByteStream::from_static(b"to delete"))
                .send(),
        )
        .await
        .expect("put");
        assert_placed("acme", "chat/ops/a.txt", "eu").await;
        assert_placed("acme", "talk/recordings/ops/b.wav", "us").await;
        assert_placed("acme", "talk/voicemails/ops/d.mp3", "us").await;
        let mut delete = Delete::builder();
        for k in keys.iter().copied().chain(["talk/voicemails/ops/d.mp3"]) {
            delete = delete.objects(ObjectIdentifier::builder().key(k).build().unwrap());
        }
        let out = within(
            "delete objects",
            acme.delete_objects()
                .bucket("acme")
                .delete(delete.build().unwrap())
                .send(),
        )
        .await
        .expect("delete objects");
        assert!(out.errors().is_empty(), "{:?}", out.errors());
        assert_eq!(out.deleted().len(), 4);
        for k in keys.iter().copied().chain(["talk/voicemails/ops/d.mp3"]) {
            assert!(
                regions_holding("acme", k).await.is_empty(),
                "{k} not deleted"
            );
        }

        // Buckets.
        within("head bucket", acme.head_bucket().bucket("acme").send())
            .await
            .expect("head bucket");
        let f = failure(
            "head another tenant's bucket",
            acme.head_bucket().bucket("globex").send().await,
        );
        assert_eq!(f.status, 403);
        let loc = within(
            "location acme",
            acme.get_bucket_location().bucket("acme").send(),
        )
        .await
        .expect("location");
        assert_eq!(
            loc.location_constraint(),
            Some(&BucketLocationConstraint::EuWest1)
        );
        // us-east-1 is answered as S3 does: no constraint.
        for (key, bucket) in [(GLOBEX, "globex"), (INITECH, "initech")] {
            let loc = within(
                "location",
                env.client(key).get_bucket_location().bucket(bucket).send(),
            )
            .await
            .expect("location");
            assert!(
                loc.location_constraint()
                    .is_none_or(|c| c.as_str().is_empty() || c.as_str() == "us-east-1"),
                "{bucket}: {loc:?}"
            );
        }
    })
    .await;
}

/// CopyObject within a region works; a copy whose destination must live in
/// another region than the source is denied and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_stays_within_a_region() {
    bounded("copy", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        let src = "tickets/copy/src.json";
        put(&acme, "acme", src, b"{\"ticket\":1}").await;
        assert_placed("acme", src, "eu").await;

        // Same region (ticket data → ticket data, and → chat content: both EU for acme).
        for dst in ["tickets/copy/dst.json", "chat/copy/dst.json"] {
            try_copy(&acme, "acme", dst, &format!("acme/{src}"))
                .await
                .unwrap_or_else(|e| panic!("copy to {dst}: {e:?}"));
            assert_placed("acme", dst, "eu").await;
            assert_eq!(backend_bytes("eu", "acme", dst).await, b"{\"ticket\":1}");
        }
        // Replacing metadata keeps the copy in its region.
        within(
            "copy replace",
            acme.copy_object()
                .bucket("acme")
                .key("tickets/copy/replaced.json")
                .copy_source(format!("acme/{src}"))
                .metadata_directive(MetadataDirective::Replace)
                .content_type("application/json")
                .send(),
        )
        .await
        .expect("copy with REPLACE");
        assert_placed("acme", "tickets/copy/replaced.json", "eu").await;

        // Insights go to the US: copying EU ticket data there is refused.
        let dst = "insights/copy/dst.json";
        let f = expect_s3_error(
            "cross-region copy",
            try_copy(&acme, "acme", dst, &format!("acme/{src}")).await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("cross_region_copy"), "{f:?}");
        assert!(regions_holding("acme", dst).await.is_empty());
        // And the other way round: a US recording copied into EU-only chat.
        let rec = "talk/recordings/copy/call.wav";
        put(&acme, "acme", rec, b"RIFF").await;
        let f = expect_s3_error(
            "cross-region copy (us → eu)",
            try_copy(&acme, "acme", "chat/copy/call.wav", &format!("acme/{rec}")).await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("cross_region_copy"), "{f:?}");
        assert!(regions_holding("acme", "chat/copy/call.wav")
            .await
            .is_empty());
        // A copy from another tenant's bucket is refused.
        let service = env.client(SERVICE);
        expect_s3_error(
            "copy across tenants",
            try_copy(
                &service,
                "globex",
                "tickets/copy/stolen.json",
                &format!("acme/{src}"),
            )
            .await,
            403,
            "AccessDenied",
        );
        assert!(regions_holding("globex", "tickets/copy/stolen.json")
            .await
            .is_empty());
        // A missing source is 404.
        expect_s3_error(
            "copy of a missing source",
            try_copy(
                &acme,
                "acme",
                "tickets/copy/none.json",
                "acme/tickets/copy/missing.json",
            )
            .await,
            404,
            "NoSuchKey",
        );
    })
    .await;
}

/// The shape SDKs send over HTTPS by default, built by hand (`aws-sdk-s3`
/// signs chunks over plain HTTP): a signed seed, unsigned chunks and a CRC32
/// trailer. A correct trailer stores the decoded bytes; a wrong one gets 400
/// BadDigest and leaves nothing in either region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_trailer_upload_checks_its_crc32() {
    bounded("unsigned trailer", async {
        let _exclusive = BUCKETS.write().await;
        let env = Env::start().await;
        let addr = env.sidecar.addr;
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let chunks: [&[u8]; 2] = [&data[..65_536], &data[65_536..]];
        let crc = crc32_b64(&data);
        // A PUT of `chunks` to `path?query` with `trailer` as its CRC32.
        let send = |path: String, query: String, trailer: String, sdk_algorithm: bool| async move {
            let mut extra = vec![("x-amz-trailer", "x-amz-checksum-crc32".to_string())];
            if sdk_algorithm {
                extra.push(("x-amz-sdk-checksum-algorithm", "CRC32".to_string()));
            }
            put_aws_chunked(
                addr,
                &path,
                &query,
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                &chunks,
                &extra,
                |_, _| unsigned_chunked_body(&chunks, "x-amz-checksum-crc32", &trailer),
            )
            .await
        };
        let upload =
            |key: &str, trailer: String| send(format!("/acme/{key}"), String::new(), trailer, true);

        let before = snapshot().await;
        let key = "chat/trailer/wrong-crc.bin";
        let r = upload(key, "AAAAAA==".to_string()).await;
        assert_raw_error(&r, 400, "BadDigest");
        assert_unchanged_since(&before, "a refused upload left data behind").await;
        assert!(regions_holding("acme", key).await.is_empty());

        // The same check on UploadPart: the part is refused and not recorded.
        let acme = env.client(ACME);
        let key = "chat/trailer/part.bin";
        let id = create_upload(&acme, "acme", key).await;
        let query = format!("partNumber=1&uploadId={id}");
        let r = send(format!("/acme/{key}"), query, "AAAAAA==".to_string(), false).await;
        assert_raw_error(&r, 400, "BadDigest");
        let parts = list_parts(&acme, "acme", key, &id).await;
        assert!(parts.is_empty(), "{parts:?}");
        abort_upload(&acme, "acme", key, &id).await;
        assert_unchanged_since(&before, "a refused part left data behind").await;

        let key = "chat/trailer/good.bin";
        let r = upload(key, crc.clone()).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_placed("acme", key, "eu").await;
        let stored = backend_bytes("eu", "acme", key).await;
        assert!(
            stored == data,
            "the stored bytes are not the decoded payload"
        );
        let head = within(
            "head",
            env.client(ACME)
                .head_object()
                .bucket("acme")
                .key(key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send(),
        )
        .await
        .expect("head");
        assert_eq!(head.content_length(), Some(data.len() as i64));
    })
    .await;
}
