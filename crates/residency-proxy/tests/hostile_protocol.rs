//! Protocol details a client relies on (issue "Hardening", items 2 and
//! 14-20): SigV2 replay, the credential scope's service, presigned URL
//! lifetime, virtual-hosted addressing with a port, control characters in
//! listings, Range as S3 reads it, CopyObject onto itself, the 1,024-byte key.
//!
//! Where Garage answers otherwise than S3 documents (ranges, copy onto
//! itself), the same request is sent to Garage directly and its answer
//! printed (`--nocapture`); the assertion is S3's documented answer.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use support::*;
use tempfile::TempDir;

type HmacSha1 = Hmac<sha1::Sha1>;

/// The headers of a request signed now with SigV4 for `service`, `host`
/// and `extra` signed too; the payload is empty.
fn v4_headers(
    key: (&str, &str),
    service: &str,
    method: &str,
    path: &str,
    query: &str,
    host: &str,
    extra: &[(&str, String)],
) -> Vec<(&'static str, String)> {
    let (datetime, _) = amz_date(SystemTime::now());
    let signer = Signer::new(key, "us-east-1", &datetime).for_service(service);
    let mut signed: Vec<(&str, String)> = vec![
        ("host", host.to_string()),
        ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
        ("x-amz-date", datetime.clone()),
    ];
    signed.extend(extra.iter().cloned());
    let (_, auth) = signer.seed(method, path, query, &signed, EMPTY_SHA256);
    let mut out: Vec<(&'static str, String)> = vec![
        ("host", host.to_string()),
        ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
        ("x-amz-date", datetime),
        ("authorization", auth),
    ];
    for (k, v) in extra {
        out.push((leak(k), v.clone()));
    }
    out
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The path and query of a presigned GET of `path`, valid `expires` seconds,
/// signed for `service`.
fn presigned(key: (&str, &str), service: &str, path: &str, host: &str, expires: u64) -> String {
    let (datetime, date) = amz_date(SystemTime::now());
    let signer = Signer::new(key, "us-east-1", &datetime).for_service(service);
    let cred = format!("{}%2F{date}%2Fus-east-1%2F{service}%2Faws4_request", key.0);
    let q = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}&X-Amz-Date={datetime}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
    );
    let (sig, _) = signer.seed(
        "GET",
        path,
        &q,
        &[("host", host.to_string())],
        "UNSIGNED-PAYLOAD",
    );
    format!("{path}?{q}&X-Amz-Signature={sig}")
}

/// A SigV2 signature (HMAC-SHA1, base64) of `string_to_sign`.
fn v2_signature(secret: &str, string_to_sign: &str) -> String {
    let mut m = HmacSha1::new_from_slice(secret.as_bytes()).expect("hmac key");
    m.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// `Date` and `Authorization: AWS ...` headers of a SigV2 request sent at `when`.
fn v2_headers(
    key: (&str, &str),
    method: &str,
    path: &str,
    host: &str,
    when: SystemTime,
) -> Vec<(&'static str, String)> {
    let date = httpdate::fmt_http_date(when);
    let sig = v2_signature(key.1, &format!("{method}\n\n\n{date}\n{path}"));
    vec![
        ("host", host.to_string()),
        ("date", date),
        ("authorization", format!("AWS {}:{sig}", key.0)),
    ]
}

/// A `multipart/form-data` POST upload of `body` to `key`, signed with SigV2
/// (`AWSAccessKeyId`, `policy`, `signature`): (content type, body).
fn v2_form(key_pair: (&str, &str), key: &str, body: &[u8]) -> (String, Vec<u8>) {
    let policy = base64::engine::general_purpose::STANDARD.encode(
        r#"{"expiration":"2099-01-01T00:00:00.000Z","conditions":[{"bucket":"acme"},["starts-with","$key","tickets/"]]}"#,
    );
    let signature = v2_signature(key_pair.1, &policy);
    let boundary = "residencyprotocolboundary";
    let mut out = Vec::new();
    for (name, value) in [
        ("key", key),
        ("AWSAccessKeyId", key_pair.0),
        ("policy", &policy),
        ("signature", &signature),
    ] {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(body);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

fn code_of(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default()
}

fn header<'a>(r: &'a RawResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A sidecar on two directory backends under `dir` (no Garage needed),
/// with extra top-level keys and extra tables.
async fn dir_sidecar(dir: &Path, top: &str, tables: &str) -> Running {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = format!(
        "listen = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\npolicy = {:?}\ntenants = {:?}\nupload_id_secret = \"protocol-tests\"\n{top}\n\n[regions.eu]\nkind = \"dir\"\npath = {:?}\n\n[regions.us]\nkind = \"dir\"\npath = {:?}\n\n[limits]\nshutdown_grace_secs = 1\n\n[audit]\nenabled = false\n\n{tables}\n",
        root.join("config/hosting-policy.toml").display().to_string(),
        root.join("config/tenants.example.toml").display().to_string(),
        dir.join("eu").display().to_string(),
        dir.join("us").display().to_string(),
    );
    let path = dir.join("residency.toml");
    std::fs::write(&path, text).expect("write config");
    start_sidecar(&path).await
}

/// A [`dir_sidecar`] in a fresh directory: (the directory, the sidecar,
/// its `host` header, an SDK client for `acme`). A test keeps the first two
/// (as `_dir`, `_sc` when it does not use them): dropping them removes the
/// directory and stops the sidecar.
async fn dir_sidecar_for_acme(top: &str, tables: &str) -> (TempDir, Running, String, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sc = dir_sidecar(dir.path(), top, tables).await;
    let host = sc.addr.to_string();
    let acme = proxy_client(&sc.endpoint, ACME.0, ACME.1, None);
    (dir, sc, host, acme)
}

/// A SigV2-signed form POST of `body` to `acme/<key>`.
async fn post_v2_form(sc: &Running, host: &str, key: &str, body: &[u8]) -> RawResponse {
    let (ct, form) = v2_form(ACME, key, body);
    let h = vec![
        ("host", host.to_string()),
        ("content-type", ct),
        ("content-length", form.len().to_string()),
    ];
    send_raw(sc.addr, "POST", "/acme", &h, &form).await
}

/// Every file under `dir` whose path ends with `suffix` (the hidden tree excluded).
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".residency") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Item 2: SigV2.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_is_refused_by_default() {
    bounded("sigv2 refused", async {
        let (dir, sc, host, acme) = dir_sidecar_for_acme("", "").await;
        put(&acme, "acme", "tickets/v2/a.txt", b"first").await;

        // A fresh SigV2 header, and one dated 2024 (the replay of the issue).
        for when in [
            SystemTime::now(),
            UNIX_EPOCH + Duration::from_secs(1_704_067_200),
        ] {
            let h = v2_headers(ACME, "GET", "/acme/tickets/v2/a.txt", &host, when);
            let r = send_raw(sc.addr, "GET", "/acme/tickets/v2/a.txt", &h, b"").await;
            assert_eq!(
                (r.status, code_of(&r.body).as_str()),
                (403, "AccessDenied"),
                "{r:?}"
            );
            assert!(r.body.contains("Signature Version 4"), "{}", r.body);
        }
        // A SigV2 PUT is not stored.
        let h = v2_headers(
            ACME,
            "PUT",
            "/acme/tickets/v2/a.txt",
            &host,
            SystemTime::now(),
        );
        let mut h = h;
        h.push(("content-length", "7".into()));
        let r = send_raw(sc.addr, "PUT", "/acme/tickets/v2/a.txt", &h, b"evil v2").await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "AccessDenied"),
            "{r:?}"
        );
        let on_disk = files_ending(dir.path(), "acme/tickets/v2/a.txt");
        assert_eq!(on_disk.len(), 1, "{on_disk:?}");
        assert_eq!(std::fs::read(&on_disk[0]).unwrap(), b"first");
        // A SigV2 presigned URL.
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let sig = v2_signature(
            ACME.1,
            &format!("GET\n\n\n{expires}\n/acme/tickets/v2/a.txt"),
        );
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("AWSAccessKeyId", ACME.0)
            .append_pair("Expires", &expires.to_string())
            .append_pair("Signature", &sig)
            .finish();
        let r = send_raw(
            sc.addr,
            "GET",
            &format!("/acme/tickets/v2/a.txt?{q}"),
            &[("host", host.clone())],
            b"",
        )
        .await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "AccessDenied"),
            "{r:?}"
        );
        // A SigV2 form POST (its signature is in the body).
        let r = post_v2_form(&sc, &host, "tickets/v2/form.txt", b"form v2").await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "AccessDenied"),
            "{r:?}"
        );
        assert!(files_ending(dir.path(), "acme/tickets/v2/form.txt").is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_when_allowed_must_be_fresh() {
    bounded("sigv2 allowed", async {
        let (dir, sc, host, acme) = dir_sidecar_for_acme("", "[auth]\nallow_sigv2 = true").await;
        put(&acme, "acme", "tickets/v2/b.txt", b"first").await;

        let path = "/acme/tickets/v2/b.txt";
        let h = v2_headers(ACME, "GET", path, &host, SystemTime::now());
        let r = send_raw(sc.addr, "GET", path, &h, b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "first"), "{r:?}");

        // Signed on 1 January 2024: replayed today, refused.
        let old = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let h = v2_headers(ACME, "GET", path, &host, old);
        let r = send_raw(sc.addr, "GET", path, &h, b"").await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "RequestTimeTooSkewed"),
            "{r:?}"
        );
        // A replayed PUT with another body changes nothing.
        let mut h = v2_headers(
            ACME,
            "PUT",
            path,
            &host,
            SystemTime::now() - Duration::from_secs(20 * 60),
        );
        h.push(("content-length", "8".into()));
        let r = send_raw(sc.addr, "PUT", path, &h, b"replayed").await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "RequestTimeTooSkewed"),
            "{r:?}"
        );
        let on_disk = files_ending(dir.path(), "acme/tickets/v2/b.txt");
        assert_eq!(std::fs::read(&on_disk[0]).unwrap(), b"first");
        // A SigV2 form POST is accepted when SigV2 is.
        let r = post_v2_form(&sc, &host, "tickets/v2/form.txt", b"form v2").await;
        assert!(r.status < 300, "{r:?}");
        let on_disk = files_ending(dir.path(), "acme/tickets/v2/form.txt");
        assert_eq!(std::fs::read(&on_disk[0]).unwrap(), b"form v2");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Items 16 and 17: presigned lifetime, credential scope.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_scope_must_name_s3_and_presign_lives_a_week_at_most() {
    bounded("scope and expiry", async {
        let (_dir, sc, host, acme) = dir_sidecar_for_acme("", "").await;
        put(&acme, "acme", "tickets/scope/a.txt", b"scoped").await;
        let path = "/acme/tickets/scope/a.txt";

        let h = v4_headers(ACME, "s3", "GET", path, "", &host, &[]);
        let r = send_raw(sc.addr, "GET", path, &h, b"").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "scoped"),
            "s3 scope: {r:?}"
        );
        for service in ["sts", "ec2"] {
            let h = v4_headers(ACME, service, "GET", path, "", &host, &[]);
            let r = send_raw(sc.addr, "GET", path, &h, b"").await;
            assert_eq!(
                (r.status, code_of(&r.body).as_str()),
                (400, "AuthorizationHeaderMalformed"),
                "{service}: {r:?}"
            );
            let url = presigned(ACME, service, path, &host, 60);
            let r = send_raw(sc.addr, "GET", &url, &[("host", host.clone())], b"").await;
            assert_eq!(
                (r.status, code_of(&r.body).as_str()),
                (400, "AuthorizationHeaderMalformed"),
                "presigned {service}: {r:?}"
            );
        }

        let url = presigned(ACME, "s3", path, &host, 604_800);
        let r = send_raw(sc.addr, "GET", &url, &[("host", host.clone())], b"").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "scoped"),
            "7 days: {r:?}"
        );
        for expires in [604_801, 31_536_000] {
            let url = presigned(ACME, "s3", path, &host, expires);
            let r = send_raw(sc.addr, "GET", &url, &[("host", host.clone())], b"").await;
            assert_eq!(
                (r.status, code_of(&r.body).as_str()),
                (400, "AuthorizationQueryParametersError"),
                "{expires} s: {r:?}"
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Item 15: virtual-hosted style with a port.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_with_a_port() {
    bounded("virtual host", async {
        let (_dir, sc, _, acme) =
            dir_sidecar_for_acme("virtual_host_domains = [\"s3.localhost\"]", "").await;
        put(&acme, "acme", "tickets/vhost/a.txt", b"virtual").await;

        let host = format!("acme.s3.localhost:{}", sc.addr.port());
        let h = v4_headers(ACME, "s3", "GET", "/tickets/vhost/a.txt", "", &host, &[]);
        let r = send_raw(sc.addr, "GET", "/tickets/vhost/a.txt", &h, b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "virtual"), "{r:?}");

        let q = "list-type=2&prefix=tickets%2Fvhost%2F";
        let h = v4_headers(ACME, "s3", "GET", "/", q, &host, &[]);
        let r = send_raw(sc.addr, "GET", &format!("/?{q}"), &h, b"").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            r.body.contains("<Key>tickets/vhost/a.txt</Key>"),
            "{}",
            r.body
        );

        // The bare domain with a port is the service endpoint (path style).
        let host = format!("s3.localhost:{}", sc.addr.port());
        let h = v4_headers(
            ACME,
            "s3",
            "GET",
            "/acme/tickets/vhost/a.txt",
            "",
            &host,
            &[],
        );
        let r = send_raw(sc.addr, "GET", "/acme/tickets/vhost/a.txt", &h, b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "virtual"), "{r:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Item 14: control characters in listing parameters.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parameters_with_control_characters_are_refused() {
    bounded("list control characters", async {
        let (_dir, _sc, _, acme) = dir_sidecar_for_acme("", "").await;
        put(&acme, "acme", "tickets/list/a.txt", b"a").await;
        for bad in [
            "a\u{0}b",
            "\u{1}",
            "x\u{1f}",
            "\u{7f}",
            "t\u{ffff}",
            "\u{fffe}",
        ] {
            let list = || acme.list_objects_v2().bucket("acme");
            for (what, request) in [
                ("prefix", list().prefix(bad)),
                ("delimiter", list().delimiter(bad)),
                ("start-after", list().start_after(bad)),
                ("token", list().continuation_token(bad)),
            ] {
                let r = within("list", request.send()).await;
                expect_s3_error(&format!("{what} {bad:?}"), r, 400, "InvalidArgument");
            }
            let r = within(
                "list uploads",
                acme.list_multipart_uploads()
                    .bucket("acme")
                    .key_marker(bad)
                    .send(),
            )
            .await;
            expect_s3_error(&format!("key-marker {bad:?}"), r, 400, "InvalidArgument");
        }
        // A tab-free ordinary listing still works and parses.
        let page = within(
            "list ok",
            acme.list_objects_v2()
                .bucket("acme")
                .prefix("tickets/list/")
                .delimiter("/")
                .send(),
        )
        .await
        .expect("list");
        assert_eq!(page.key_count(), Some(1));
    })
    .await;
}

// ---------------------------------------------------------------------------
// Item 20: the 1,024-byte limit is the client's key.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1024_byte_key_is_stored_on_a_directory_backend() {
    bounded("1024-byte key", async {
        let (dir, _sc, _, acme) = dir_sidecar_for_acme("", "").await;
        // Segments of at most 255 bytes (a file name's limit).
        let key_of = |len: usize| {
            let mut k = String::from("tickets/");
            while k.len() < len {
                let room = len - k.len();
                if room > 200 {
                    k.push_str(&"k".repeat(199));
                    k.push('/');
                } else {
                    k.push_str(&"z".repeat(room));
                }
            }
            k
        };
        for len in [1020, 1024] {
            let key = key_of(len);
            assert_eq!(key.len(), len);
            within(
                "put long key",
                acme.put_object()
                    .bucket("acme")
                    .key(&key)
                    .body(ByteStream::from_static(b"long"))
                    .send(),
            )
            .await
            .unwrap_or_else(|e| panic!("{len}-byte key: {e:?}"));
            let got = within(
                "get long key",
                acme.get_object().bucket("acme").key(&key).send(),
            )
            .await
            .expect("get long key");
            assert_eq!(
                got.body.collect().await.unwrap().into_bytes().as_ref(),
                b"long"
            );
            let on_disk = files_ending(dir.path(), &format!("acme/{key}"));
            assert_eq!(on_disk.len(), 1, "{len}: {on_disk:?}");
        }
        let key = key_of(1025);
        let r = within(
            "put 1025",
            acme.put_object()
                .bucket("acme")
                .key(&key)
                .body(ByteStream::from_static(b"long"))
                .send(),
        )
        .await;
        expect_s3_error("1025-byte key", r, 400, "KeyTooLongError");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Item 18: Range (differential against Garage).

/// A GET of `key` with `range`: (status, Content-Range, body) through `c`.
async fn ranged(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    range: &str,
) -> (u16, Option<String>, Vec<u8>) {
    match within(
        "ranged get",
        c.get_object().bucket(bucket).key(key).range(range).send(),
    )
    .await
    {
        Ok(out) => {
            let cr = out.content_range().map(str::to_string);
            let body = out
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec();
            // The SDK does not expose the status: a Content-Range means 206.
            (if cr.is_some() { 206 } else { 200 }, cr, body)
        }
        Err(e) => (
            e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
            None,
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_is_read_as_s3_reads_it() {
    bounded("range", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        let key = "tickets/protocol/range.txt";
        put(&acme, "acme", key, b"0123456789").await;
        let region = regions_holding("acme", key).await;
        let garage_region = cluster().region(region[0]).expect("region");
        let garage = garage_client(garage_region);
        let whole = b"0123456789".to_vec();
        // (range, S3's documented answer: status, Content-Range, body)
        let cases: Vec<(&str, u16, Option<&str>, Vec<u8>)> = vec![
            ("bytes=3-5", 206, Some("bytes 3-5/10"), b"345".to_vec()),
            ("bytes=7-", 206, Some("bytes 7-9/10"), b"789".to_vec()),
            ("bytes=-2", 206, Some("bytes 8-9/10"), b"89".to_vec()),
            (
                "bytes=2-100",
                206,
                Some("bytes 2-9/10"),
                b"23456789".to_vec(),
            ),
            // RFC 9110 / S3: an invalid range is ignored.
            ("bytes=5-2", 200, None, whole.clone()),
            // S3 serves one range only, and ignores a request for several.
            ("bytes=0-1,3-4", 200, None, whole.clone()),
            ("bytes=abc", 200, None, whole.clone()),
            ("items=0-1", 200, None, whole.clone()),
            // A last byte past the end is clamped, however large.
            (
                "bytes=0-18446744073709551615",
                206,
                Some("bytes 0-9/10"),
                whole.clone(),
            ),
            (
                "bytes=4-99999999999999999999999",
                206,
                Some("bytes 4-9/10"),
                b"456789".to_vec(),
            ),
            // Nothing of the object: 416 InvalidRange.
            ("bytes=10-", 416, None, b"InvalidRange".to_vec()),
            (
                "bytes=18446744073709551615-",
                416,
                None,
                b"InvalidRange".to_vec(),
            ),
        ];
        for (range, status, content_range, body) in cases {
            let theirs = ranged(
                &garage,
                &garage_region.bucket,
                &format!("acme/{key}"),
                range,
            )
            .await;
            println!(
                "{range:<34} Garage: {} {:?} {:?}",
                theirs.0,
                theirs.1,
                String::from_utf8_lossy(&theirs.2)
            );
            // Signed Range (the SDK signs it): served in two passes.
            let ours = ranged(&acme, "acme", key, range).await;
            assert_eq!(
                ours,
                (status, content_range.map(str::to_string), body.clone()),
                "{range} (signed)"
            );
            // The same range unsigned (on a request signed without it).
            let host = env.sidecar.addr.to_string();
            let path = format!("/acme/{key}");
            let mut h = v4_headers(ACME, "s3", "GET", &path, "", &host, &[]);
            h.push(("range", range.to_string()));
            let r = send_raw(env.sidecar.addr, "GET", &path, &h, b"").await;
            assert_eq!(r.status, status, "{range} (unsigned): {r:?}");
            assert_eq!(
                header(&r, "content-range"),
                content_range,
                "{range} (unsigned)"
            );
            // A presigned URL (its signature in the query) with the range.
            let url = presigned(ACME, "s3", &path, &host, 300);
            let h = vec![("host", host.clone()), ("range", range.to_string())];
            let r = send_raw(env.sidecar.addr, "GET", &url, &h, b"").await;
            assert_eq!(r.status, status, "{range} (presigned): {r:?}");
            if status < 300 {
                assert_eq!(r.body.as_bytes(), body.as_slice(), "{range} (presigned)");
            }
        }
        // HEAD reads its Range the same way (s3s parses it for HEAD too).
        let head = within(
            "head with an ignored range",
            acme.head_object()
                .bucket("acme")
                .key(key)
                .range("bytes=5-2")
                .send(),
        )
        .await
        .expect("HEAD with an ignored range");
        assert_eq!(head.content_length(), Some(10));
        // A wrong signature with such a range is still refused.
        let host = env.sidecar.addr.to_string();
        let path = format!("/acme/{key}");
        let mut h = v4_headers(
            GLOBEX,
            "s3",
            "GET",
            &path,
            "",
            &host,
            &[("range", "bytes=5-2".into())],
        );
        for (k, v) in h.iter_mut() {
            if *k == "authorization" {
                *v = v.replace(GLOBEX.0, ACME.0);
            }
        }
        let r = send_raw(env.sidecar.addr, "GET", &path, &h, b"").await;
        assert_eq!(
            (r.status, code_of(&r.body).as_str()),
            (403, "SignatureDoesNotMatch"),
            "{r:?}"
        );
        // Another tenant's key with such a range: still denied.
        let globex = env.client(GLOBEX);
        let r = within(
            "cross-tenant ranged get",
            globex
                .get_object()
                .bucket("acme")
                .key(key)
                .range("bytes=5-2")
                .send(),
        )
        .await;
        expect_s3_error(
            "globex reading acme with an ignored range",
            r,
            403,
            "AccessDenied",
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Item 19: CopyObject onto itself (differential against Garage).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_onto_itself_without_change_is_refused() {
    bounded("copy onto itself", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let acme = env.client(ACME);
        let key = "tickets/protocol/self.txt";
        put(&acme, "acme", key, b"self").await;
        let region = regions_holding("acme", key).await;
        let garage_region = cluster().region(region[0]).expect("region");
        let garage = garage_client(garage_region);
        let full = format!("acme/{key}");
        // Garage performs the copy (200); S3 answers 400 InvalidRequest.
        let theirs = within(
            "garage self copy",
            garage
                .copy_object()
                .bucket(&garage_region.bucket)
                .key(&full)
                .copy_source(format!("{}/{full}", garage_region.bucket))
                .send(),
        )
        .await;
        println!(
            "Garage, copy onto itself: {:?}",
            theirs
                .as_ref()
                .map(|_| "200")
                .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
        );

        let self_copy = || {
            acme.copy_object()
                .bucket("acme")
                .key(key)
                .copy_source(format!("acme/{key}"))
        };
        let r = within("self copy", self_copy().send()).await;
        let f = expect_s3_error("copy onto itself", r, 400, "InvalidRequest");
        assert!(f.message.contains("copy an object to itself"), "{f:?}");
        // COPY directive named explicitly: the same.
        let r = within(
            "self copy COPY",
            self_copy()
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
                .send(),
        )
        .await;
        expect_s3_error("copy onto itself (COPY)", r, 400, "InvalidRequest");
        // New metadata: a change, allowed.
        within(
            "self copy REPLACE",
            self_copy()
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .metadata("note", "changed")
                .send(),
        )
        .await
        .expect("copy onto itself with new metadata");
        let head = within("head", acme.head_object().bucket("acme").key(key).send())
            .await
            .expect("head");
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("note"))
                .map(String::as_str),
            Some("changed")
        );
        assert_eq!(backend_bytes(region[0], "acme", key).await, b"self");
    })
    .await;
}
