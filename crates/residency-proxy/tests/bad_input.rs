//! Hostile requests, hand-built (the SDK would refuse to send most of them):
//! each gets the right S3 error, and neither regional bucket changes.
//!
//! Run with `--nocapture` to see the table of answers.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a case's request is authenticated.
#[derive(Debug, Clone)]
enum Auth {
    /// Signed now with the key.
    Signed((&'static str, &'static str)),
    /// Signed `ago` in the past.
    SignedAgo((&'static str, &'static str), Duration),
    /// This `Authorization` header verbatim (plus a fresh x-amz-date).
    Header(String),
    /// A valid signature, cut after `n` characters.
    Truncated(usize),
    /// A presigned query string valid for `expires` seconds from `ago` in the past.
    Presigned { ago: Duration, expires: u64 },
}

/// What the request's body is.
#[derive(Debug, Clone)]
enum Payload {
    Bytes(Vec<u8>),
    /// A `Content-Length` of `declared` and `sent` bytes, then the write side closed.
    Short {
        declared: usize,
        sent: usize,
    },
    /// A `Content-Length` of `declared`, `sent` (more) bytes, signed for all of them.
    Long {
        declared: usize,
        sent: usize,
    },
    /// Headers declaring `length`, no body sent.
    Declared {
        content_length: u64,
        decoded: Option<u64>,
    },
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    query: &'static str,
    headers: Vec<(&'static str, String)>,
    payload: Payload,
    auth: Auth,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, method: &'static str, path: impl Into<String>) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        query: "",
        headers: Vec::new(),
        payload: Payload::Bytes(Vec::new()),
        auth: Auth::Signed(ACME),
        status: 400,
        code: "InvalidArgument",
    }
}

impl Case {
    fn body(mut self, b: &[u8]) -> Self {
        self.payload = Payload::Bytes(b.to_vec());
        self
    }
    fn payload(mut self, p: Payload) -> Self {
        self.payload = p;
        self
    }
    fn query(mut self, q: &'static str) -> Self {
        self.query = q;
        self
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    fn auth(mut self, a: Auth) -> Self {
        self.auth = a;
        self
    }
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
}

fn code_of(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default()
}

/// The canonical URI of a path as SigV4 wants it: decoded once, then every
/// byte but the unreserved ones and `/` percent-encoded (`%2E` becomes `.`).
fn canonical_uri(path: &str) -> String {
    let b = path.as_bytes();
    let mut raw = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                raw.push(v);
                i += 3;
                continue;
            }
        }
        raw.push(b[i]);
        i += 1;
    }
    raw.iter()
        .map(|&c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// The request's bytes: head and body.
fn build(c: &Case, addr: SocketAddr) -> (Vec<u8>, Option<usize>) {
    let host = addr.to_string();
    let (body, send_len, declared): (Vec<u8>, Option<usize>, Option<String>) = match &c.payload {
        Payload::Bytes(b) => (b.clone(), None, Some(b.len().to_string())),
        Payload::Short { declared, sent } => (vec![b'x'; *sent], None, Some(declared.to_string())),
        Payload::Long { declared, sent } => (vec![b'y'; *sent], None, Some(declared.to_string())),
        Payload::Declared { content_length, .. } => {
            (Vec::new(), Some(0), Some(content_length.to_string()))
        }
    };
    let hash = match &c.payload {
        Payload::Declared { .. } => "UNSIGNED-PAYLOAD".to_string(),
        _ => sha256_hex(&body),
    };
    let when = match &c.auth {
        Auth::SignedAgo(_, ago) => SystemTime::now() - *ago,
        Auth::Presigned { ago, .. } => SystemTime::now() - *ago,
        _ => SystemTime::now(),
    };
    let (datetime, _) = amz_date(when);
    let mut signed: Vec<(&str, String)> = vec![("host", host.clone())];
    let mut query = c.query.to_string();
    let mut auth_header = None;
    match &c.auth {
        Auth::Presigned { expires, .. } => {
            let s = Signer::new(ACME, "us-east-1", &datetime);
            let cred = format!("{}%2F{}", ACME.0, s.scope().replace('/', "%2F"));
            let mut q = format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}&X-Amz-Date={datetime}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
            );
            if !query.is_empty() {
                q = format!("{query}&{q}");
            }
            let (sig, _) = s.seed(
                c.method,
                &canonical_uri(&c.path),
                &q,
                &signed,
                "UNSIGNED-PAYLOAD",
            );
            query = format!("{q}&X-Amz-Signature={sig}");
        }
        auth => {
            signed.push(("x-amz-content-sha256", hash.clone()));
            signed.push(("x-amz-date", datetime.clone()));
            for (k, v) in &c.headers {
                signed.push((k, v.clone()));
            }
            if let Payload::Declared {
                decoded: Some(d), ..
            } = &c.payload
            {
                signed.push(("x-amz-decoded-content-length", d.to_string()));
            }
            let key = match auth {
                Auth::Signed(k) | Auth::SignedAgo(k, _) => *k,
                _ => ACME,
            };
            let s = Signer::new(key, "us-east-1", &datetime);
            let (_, a) = s.seed(c.method, &canonical_uri(&c.path), &query, &signed, &hash);
            auth_header = Some(match auth {
                Auth::Header(h) => h.clone(),
                Auth::Truncated(n) => a[..*n].to_string(),
                _ => a,
            });
        }
    }
    let target = if query.is_empty() {
        c.path.clone()
    } else {
        format!("{}?{query}", c.path)
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", c.method);
    for (k, v) in &signed {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(a) = auth_header {
        head.push_str(&format!("authorization: {a}\r\n"));
    }
    if let Some(l) = declared {
        head.push_str(&format!("content-length: {l}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body[..send_len.unwrap_or(body.len())]);
    (bytes, send_len)
}

/// Sends the request (then closes the write side if asked), reads the response.
async fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> (u16, String) {
    within("raw exchange", async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(bytes).await;
        if half_close {
            // The only way to say "that was all" for a short body.
            let _ = s.shutdown().await;
        }
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_s3_errors_and_change_nothing() {
    bounded("bad input", async {
        let _exclusive = BUCKETS.write().await;
        let env = Env::start_with(&SidecarOptions::with_limits(
            "max_object_bytes = 1048576\nmax_header_bytes = 16384",
        ))
        .await;
        let addr = env.sidecar.addr;
        // Another tenant's object, to be reached for.
        let globex = env.client(GLOBEX);
        put(&globex, "globex", "tickets/bad-input/secret.txt", b"globex only").await;
        let before = snapshot().await;

        let ok_auth = {
            let (dt, _) = amz_date(SystemTime::now());
            Signer::new(ACME, "us-east-1", &dt).scope()
        };
        let cases = vec![
            case("key with ..", "PUT", "/acme/tickets/../../globex/tickets/x").body(b"evil"),
            case("key with %2E%2E", "PUT", "/acme/tickets/%2E%2E/%2E%2E/globex/tickets/x")
                .body(b"evil"),
            case("key with ./", "PUT", "/acme/tickets/./x").body(b"evil"),
            case("key with NUL", "PUT", "/acme/tickets/a%00b").body(b"evil"),
            case("key with newline", "PUT", "/acme/tickets/a%0Ab").body(b"evil"),
            case("key with ESC", "PUT", "/acme/tickets/a%1Bb").body(b"evil"),
            case("GET key with ..", "GET", "/acme/tickets/../../globex/tickets/bad-input/secret.txt"),
            case("2 KiB key", "PUT", format!("/acme/tickets/{}", "k".repeat(2048)))
                .body(b"evil")
                .expect(400, "KeyTooLongError"),
            case("invalid UTF-8 key", "PUT", "/acme/tickets/%FF%FE").body(b"evil")
                .expect(400, "InvalidURI"),
            case("malformed Authorization", "PUT", "/acme/tickets/bad-auth")
                .body(b"evil")
                .auth(Auth::Header("AWS4-HMAC-SHA256 garbage".into()))
                .expect(400, "InvalidRequest"),
            case("Authorization without signature", "PUT", "/acme/tickets/bad-auth")
                .body(b"evil")
                .auth(Auth::Header(format!(
                    "AWS4-HMAC-SHA256 Credential={}/{ok_auth}, SignedHeaders=host;x-amz-content-sha256;x-amz-date",
                    ACME.0
                )))
                .expect(400, "InvalidRequest"),
            case("truncated signature", "PUT", "/acme/tickets/bad-auth")
                .body(b"evil")
                .auth(Auth::Truncated(150))
                .expect(403, "SignatureDoesNotMatch"),
            case("wrong secret", "PUT", "/acme/tickets/bad-auth")
                .body(b"evil")
                .auth(Auth::Signed((ACME.0, "not-the-secret")))
                .expect(403, "SignatureDoesNotMatch"),
            case("unknown access key", "PUT", "/acme/tickets/bad-auth")
                .body(b"evil")
                .auth(Auth::Signed(("NOSUCHKEY", "whatever")))
                .expect(403, "InvalidAccessKeyId"),
            case("replayed 20 min later", "PUT", "/acme/tickets/replayed")
                .body(b"evil")
                .auth(Auth::SignedAgo(ACME, Duration::from_secs(20 * 60)))
                .expect(403, "RequestTimeTooSkewed"),
            case("expired presigned URL", "GET", "/globex/tickets/bad-input/secret.txt")
                .auth(Auth::Presigned { ago: Duration::from_secs(3600), expires: 60 })
                .expect(403, "AccessDenied"),
            case("another tenant's bucket", "GET", "/globex/tickets/bad-input/secret.txt")
                .expect(403, "AccessDenied"),
            case("copy source in another tenant", "PUT", "/acme/tickets/stolen")
                .header("x-amz-copy-source", "globex/tickets/bad-input/secret.txt")
                .expect(403, "AccessDenied"),
            case("copy source with ..", "PUT", "/acme/tickets/stolen")
                .header("x-amz-copy-source", "acme/../globex/tickets/bad-input/secret.txt"),
            case("body longer than Content-Length", "PUT", "/acme/tickets/long")
                .payload(Payload::Long { declared: 5, sent: 64 })
                .expect(400, "XAmzContentSHA256Mismatch"),
            case("body shorter than Content-Length", "PUT", "/acme/tickets/short")
                .payload(Payload::Short { declared: 100, sent: 10 })
                .expect(400, "IncompleteBody"),
            case("object over max_object_bytes", "PUT", "/acme/tickets/huge")
                .payload(Payload::Declared { content_length: 2 << 20, decoded: None })
                .expect(400, "EntityTooLarge"),
            case("aws-chunked over max_object_bytes", "PUT", "/acme/tickets/huge")
                .payload(Payload::Declared { content_length: 100, decoded: Some(5 << 30) })
                .expect(400, "EntityTooLarge"),
            case("garbage CompleteMultipartUpload XML", "POST", "/acme/tickets/mp")
                .query("uploadId=bm90LWFuLXVwbG9hZA")
                .body(b"<CompleteMultipartUpload><Part><<garbage")
                .expect(400, "MalformedXML"),
            case("oversized headers", "GET", "/acme/tickets/x")
                .header("x-amz-meta-big", "b".repeat(32 * 1024))
                .expect(431, ""),
        ];

        let mut table = Vec::new();
        let mut wrong = Vec::new();
        for c in &cases {
            let (bytes, _) = build(c, addr);
            let short = matches!(c.payload, Payload::Short { .. });
            let (status, text) = exchange(addr, &bytes, short).await;
            let code = code_of(&text);
            table.push(format!("| {} | {} {} | {status} {code} |", c.name, c.status, c.code));
            if status != c.status || code != c.code {
                wrong.push(format!(
                    "{}: expected {} {}, got {status} {code}: {}",
                    c.name,
                    c.status,
                    c.code,
                    text.lines().last().unwrap_or_default()
                ));
            }
        }

        // A list with another tenant's prefix sees nothing of theirs.
        let acme = env.client(ACME);
        for prefix in ["globex/", "../globex/", "/globex/", "tickets/../../globex/"] {
            let out = within(
                "list",
                acme.list_objects_v2().bucket("acme").prefix(prefix).send(),
            )
            .await
            .expect("list");
            let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
            table.push(format!(
                "| list acme with prefix {prefix:?} | 200, nothing of globex | 200, {} keys |",
                keys.len()
            ));
            if !keys.is_empty() {
                wrong.push(format!("list with prefix {prefix:?} returned {keys:?}"));
            }
        }

        eprintln!("\n| hostile request | expected | answer |\n|---|---|---|");
        for row in &table {
            eprintln!("{row}");
        }
        let after = snapshot().await;
        assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
        assert_eq!(before, after, "a hostile request changed a bucket");
    })
    .await;
}

/// A client that never finishes its headers is disconnected within the
/// header-read timeout, and so is one that sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_at_the_header_read_timeout() {
    bounded("slow headers", async {
        let _shared = BUCKETS.read().await;
        let env =
            Env::start_with(&SidecarOptions::with_limits("header_read_timeout_secs = 1")).await;
        for (what, partial) in [
            (
                "partial head",
                &b"GET /acme/tickets/x HTTP/1.1\r\nhost: a\r\nx-slow: "[..],
            ),
            ("one byte", &b"G"[..]),
        ] {
            let mut s = TcpStream::connect(env.sidecar.addr).await.expect("connect");
            s.write_all(partial).await.expect("write");
            let t0 = Instant::now();
            let mut buf = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
            let took = t0.elapsed();
            eprintln!(
                "{what}: closed after {took:?} ({} bytes answered)",
                buf.len()
            );
            assert!(r.is_ok(), "{what}: connection still open after 10 s");
            assert!(
                took < Duration::from_secs(4),
                "{what}: closed only after {took:?}"
            );
        }
    })
    .await;
}
