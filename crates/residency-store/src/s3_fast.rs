//! The lean outbound path of [`S3Backend`](crate::S3Backend) for the hot
//! object calls: put, get, head and delete.
//!
//! The SDK's orchestrator costs ~250 µs of CPU per call (config-bag layers,
//! interceptors, endpoint and auth resolution, a signing-key derivation per
//! request, several body and future wrappers): for a 4 KiB put that was ~60 %
//! of the sidecar's CPU (see `docs/performance.md`). This path sends the same
//! S3 request with a pooled `hyper` client (`TCP_NODELAY`, keep-alive, TLS via
//! rustls for `https://` endpoints) and SigV4 with `UNSIGNED-PAYLOAD`, the
//! signing key derived once per day (`aws-sigv4`'s own key derivation and
//! signature functions; the canonical request is built here, for the few
//! headers these calls carry).
//!
//! What it sends is what the SDK sent: the caller's `Content-MD5` and
//! `x-amz-checksum-*` values (the service verifies them), content type, user
//! metadata and the stored headers. Get and head ask for the stored checksums
//! (`x-amz-checksum-mode: ENABLED`) so they reach the client, which verifies
//! them end to end; this path does not recompute them.
//!
//! Calls it does not take (a checksum to compute as a trailer, a body of
//! unknown length, header values that are not valid HTTP) go to the SDK, as do
//! every other operation (multipart, list, copy, location, health).
//!
//! Timeouts: [`S3Backend`](crate::S3Backend) bounds head, get (until the
//! headers) and delete, and a put of bytes already in memory, with the
//! operation timeout. A put with a streamed body has a stall watchdog instead
//! (see [`FastPath::send`]): hyper stops polling a request body while the
//! socket is not writable, so a service that stops reading would otherwise
//! hold the upload forever.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures::Stream;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use crate::body::{Body, BodyStream};
use crate::error::{BoxError, StoreError};
use crate::object::{Checksums, GetOutput, ObjectInfo, PutMeta, PutOutput};
use crate::range::ByteRange;
use crate::s3::{parse_content_range, service_error, S3BackendConfig};

const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
/// Gets of at most this many bytes are read whole before they are answered
/// (see [`FastPath::get`]); larger ones stream.
const SMALL_BODY: u64 = 64 * 1024;

/// Idle pooled connections are closed after this, before a server would.
const POOL_IDLE: Duration = Duration::from_secs(20);
/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The lean client for one bucket.
pub(crate) struct FastPath {
    client: Client<HttpsConnector<HttpConnector>, OutBody>,
    /// `http://127.0.0.1:3900` (scheme and authority, no trailing slash).
    origin: String,
    /// The `Host` header value, signed.
    host: HeaderValue,
    /// `/bucket/` path-style, `/` virtual-host style.
    path_prefix: String,
    signer: Signer,
    max_attempts: u32,
    /// A streamed upload the service takes no data of for this long fails.
    stall_timeout: Duration,
    bucket: String,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("origin", &self.origin)
            .field("path_prefix", &self.path_prefix)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Builds the client; `Err` says why this bucket cannot use the lean path
    /// (the SDK then serves every call).
    pub(crate) fn new(config: &S3BackendConfig) -> Result<Self, String> {
        let endpoint = match &config.endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://s3.{}.amazonaws.com", config.region),
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let authority = uri
            .authority()
            .ok_or_else(|| format!("endpoint {endpoint:?} has no host"))?
            .as_str()
            .to_owned();
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("endpoint {endpoint:?} has a path"));
        }
        let (origin, host, path_prefix) = if config.force_path_style {
            (
                format!("{}://{authority}", if https { "https" } else { "http" }),
                authority,
                format!("/{}/", config.bucket),
            )
        } else {
            let host = format!("{}.{authority}", config.bucket);
            (
                format!("{}://{host}", if https { "https" } else { "http" }),
                host,
                "/".to_owned(),
            )
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(30)));
        let mut roots = rustls::RootCertStore::empty();
        if https {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted root certificates found on this system".into());
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            origin,
            host: HeaderValue::from_str(&host).map_err(|e| format!("host {host:?}: {e}"))?,
            path_prefix,
            signer: Signer::new(config),
            max_attempts: config.max_attempts.max(1),
            stall_timeout: config.stall_timeout,
            bucket: config.bucket.clone(),
        })
    }

    /// The headers of a put, or `None` when this path cannot send them.
    pub(crate) fn put_headers(&self, meta: &PutMeta, len: u64) -> Option<Headers> {
        if meta.checksums.compute.is_some() {
            return None;
        }
        let mut h = Headers::default();
        h.push("content-length", &len.to_string())?;
        let m = meta;
        for (name, value) in [
            ("content-type", &m.content_type),
            ("cache-control", &m.cache_control),
            ("content-disposition", &m.content_disposition),
            ("content-encoding", &m.content_encoding),
            ("content-language", &m.content_language),
            ("content-md5", &m.checksums.content_md5),
            ("x-amz-checksum-crc32", &m.checksums.crc32),
            ("x-amz-checksum-crc32c", &m.checksums.crc32c),
            ("x-amz-checksum-sha1", &m.checksums.sha1),
            ("x-amz-checksum-sha256", &m.checksums.sha256),
            ("x-amz-checksum-crc64nvme", &m.checksums.crc64nvme),
        ] {
            if let Some(v) = value {
                h.push(name, v)?;
            }
        }
        for (k, v) in &m.user_metadata {
            h.push(&format!("x-amz-meta-{}", k.to_ascii_lowercase()), v)?;
        }
        Some(h)
    }

    /// Sends a put whose headers came from [`FastPath::put_headers`].
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Body,
        len: u64,
        headers: Headers,
    ) -> Result<PutOutput, StoreError> {
        let replay = body.as_bytes().cloned();
        let mut first = Some(body);
        let resp = self
            .send(Method::PUT, key, &headers, replay.is_some(), || {
                match (first.take(), &replay) {
                    (Some(b), _) => OutBody::from_body(b, len),
                    (None, Some(bytes)) => OutBody::Full(Some(bytes.clone())),
                    (None, None) => OutBody::Full(None),
                }
            })
            .await?;
        let resp = self.check(resp, key).await?;
        let h = resp.headers();
        Ok(PutOutput {
            etag: header(h, "etag").unwrap_or_default(),
            checksums: checksums_of(h),
            version_id: header(h, "x-amz-version-id"),
        })
    }

    pub(crate) async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        let mut headers = Headers::default();
        headers.push("x-amz-checksum-mode", "ENABLED");
        if let Some(r) = range {
            headers.push("range", &r.to_header());
        }
        let resp = self
            .send(Method::GET, key, &headers, true, || OutBody::Full(None))
            .await?;
        let resp = self.check(resp, key).await?;
        let (parts, incoming) = resp.into_parts();
        let h = &parts.headers;
        let len = header(h, "content-length").and_then(|v| v.parse::<u64>().ok());
        let content_range = if range.is_some() {
            header(h, "content-range").and_then(|v| parse_content_range(&v))
        } else {
            None
        };
        let size = match content_range {
            Some((_, _, total)) => total,
            None => len.unwrap_or(0),
        };
        let info = info_of(h, key, size);
        let body = match len {
            // A small body is read whole before answering: the caller can
            // then send its head and body in one write (the service often
            // sends them in two segments), and the body skips the per-chunk
            // hand-off between hyper's connection task and the caller.
            Some(n) if n <= SMALL_BODY => {
                let bytes = incoming
                    .collect()
                    .await
                    .map_err(|e| {
                        StoreError::unavailable(format!(
                            "s3 bucket {}: reading {key}: {}",
                            self.bucket,
                            error_chain(&e)
                        ))
                    })?
                    .to_bytes();
                if bytes.len() as u64 != n {
                    return Err(StoreError::unavailable(format!(
                        "s3 bucket {}: reading {key}: {} bytes of {n}",
                        self.bucket,
                        bytes.len()
                    )));
                }
                Body::from_bytes(bytes)
            }
            _ => {
                let stream: BodyStream =
                    Box::pin(IncomingStream(sync_wrapper::SyncWrapper::new(incoming)));
                Body::from_stream(stream, len)
            }
        };
        Ok(GetOutput {
            info,
            body,
            content_range,
        })
    }

    pub(crate) async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        let mut headers = Headers::default();
        headers.push("x-amz-checksum-mode", "ENABLED");
        let resp = self
            .send(Method::HEAD, key, &headers, true, || OutBody::Full(None))
            .await?;
        let resp = self.check(resp, key).await?;
        let h = resp.headers();
        let size = header(h, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(info_of(h, key, size))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let resp = self
            .send(Method::DELETE, key, &Headers::default(), true, || {
                OutBody::Full(None)
            })
            .await?;
        self.check(resp, key).await?;
        Ok(())
    }

    /// Signs and sends; retries (up to `max_attempts`) when the request can be
    /// replayed and the failure is transient: no connection, or a 500/502/503/504.
    ///
    /// A streamed body is watched while the request is under way: when the
    /// service has taken no data for `stall_timeout` while the body was not
    /// waiting on its own source, the request is dropped (hyper then closes
    /// the connection) and the call fails as `Unavailable`, never retried.
    async fn send(
        &self,
        method: Method,
        key: &str,
        headers: &Headers,
        replayable: bool,
        mut body: impl FnMut() -> OutBody,
    ) -> Result<Response<Incoming>, StoreError> {
        let path = format!("{}{}", self.path_prefix, uri_encode_path(key));
        let mut attempt = 1;
        loop {
            let body = body();
            let progress = body.progress();
            let req = self.request(&method, &path, headers, body)?;
            let last = !replayable || attempt >= self.max_attempts;
            let call = self.client.request(req);
            let result = match progress {
                None => call.await,
                Some(p) => self.watched(call, &p).await?,
            };
            match result {
                Ok(resp) => {
                    let transient = matches!(resp.status().as_u16(), 500 | 502 | 503 | 504);
                    if !transient || last {
                        return Ok(resp);
                    }
                    tracing::debug!(bucket = %self.bucket, key, status = %resp.status(), attempt, "s3 call failed, retrying");
                }
                Err(e) => {
                    if last {
                        return Err(connect_error(&self.bucket, e));
                    }
                    tracing::debug!(bucket = %self.bucket, key, error = %e, attempt, "s3 call failed, retrying");
                }
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
    }

    /// Awaits `request` while its streamed body keeps moving (see
    /// [`FastPath::send`]). One timer, re-armed only when it fires: for the
    /// last progress plus `stall_timeout`, or while the body waits on its
    /// source, for a full `stall_timeout` from then. Once the whole body is
    /// handed over, the answer is awaited without a bound here.
    async fn watched<F: Future>(
        &self,
        request: F,
        progress: &Progress,
    ) -> Result<F::Output, StoreError> {
        let stall = self.stall_timeout;
        let mut request = pin!(request);
        let mut timer = pin!(tokio::time::sleep_until(progress.base + stall));
        loop {
            tokio::select! {
                biased;
                out = &mut request => return Ok(out),
                () = &mut timer => {
                    let (last, state) = progress.last();
                    let now = Instant::now();
                    match state {
                        Progress::DONE => return Ok(request.await),
                        Progress::WAITING => timer.as_mut().reset(now + stall),
                        _ if now >= last + stall => {
                            return Err(StoreError::unavailable(format!(
                                "s3 bucket {}: the backend stopped accepting the upload body for {stall:?} ({} of {} bytes sent)",
                                self.bucket,
                                progress.sent.load(Ordering::Relaxed),
                                progress.expected,
                            )));
                        }
                        _ => timer.as_mut().reset(last + stall),
                    }
                }
            }
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        headers: &Headers,
        body: OutBody,
    ) -> Result<Request<OutBody>, StoreError> {
        let signed = self.signer.sign(method.as_str(), &self.host, path, headers);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.origin));
        let h = req.headers_mut().expect("a fresh builder has headers");
        h.reserve(headers.0.len() + 5);
        h.insert(http::header::HOST, self.host.clone());
        h.insert(
            HeaderName::from_static("x-amz-content-sha256"),
            HeaderValue::from_static(UNSIGNED),
        );
        h.insert(HeaderName::from_static("x-amz-date"), signed.amz_date);
        if let Some(token) = &self.signer.token {
            h.insert(
                HeaderName::from_static("x-amz-security-token"),
                token.clone(),
            );
        }
        h.insert(http::header::AUTHORIZATION, signed.authorization);
        for (name, value) in &headers.0 {
            h.insert(name.clone(), value.clone());
        }
        req.body(body)
            .map_err(|e| StoreError::invalid_argument(format!("request for {path:?}: {e}")))
    }

    /// Passes a 2xx response through and turns anything else into the
    /// matching [`StoreError`], reading the S3 error body.
    async fn check(
        &self,
        resp: Response<Incoming>,
        key: &str,
    ) -> Result<Response<Incoming>, StoreError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let request_id = header(resp.headers(), "x-amz-request-id");
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
        let (code, message) = parse_error_body(&body);
        let message = message.unwrap_or_else(|| {
            let mut m = format!("HTTP {} from bucket {}", status.as_u16(), self.bucket);
            if let Some(id) = request_id {
                let _ = write!(m, " (request id {id})");
            }
            m
        });
        Err(service_error(
            code,
            Some(status.as_u16()),
            message,
            key,
            None,
            None,
        ))
    }
}

fn connect_error(bucket: &str, e: hyper_util::client::legacy::Error) -> StoreError {
    // A failure of the caller's own body stream (the client went away) is
    // not the service's.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(StoreError::IncompleteBody { expected, actual }) =
            s.downcast_ref::<StoreError>()
        {
            return StoreError::IncompleteBody {
                expected: *expected,
                actual: *actual,
            };
        }
        source = s.source();
    }
    let what = if e.is_connect() {
        "could not reach the service"
    } else {
        "the connection failed"
    };
    StoreError::Unavailable {
        message: format!("s3 bucket {bucket}: {what}: {}", error_chain(&e)),
        source: Some(Box::new(e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        let _ = write!(s, ": {x}");
        source = x.source();
    }
    s
}

fn slot_of<'a>(
    current: Option<&'static str>,
    code: &'a mut Option<String>,
    message: &'a mut Option<String>,
) -> Option<&'a mut String> {
    match current? {
        "code" => Some(code.get_or_insert_with(String::new)),
        _ => Some(message.get_or_insert_with(String::new)),
    }
}

/// `(Code, Message)` of an S3 error document.
fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut code, mut message) = (None, None);
    let mut current: Option<&'static str> = None;
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                current = match (depth, e.name().as_ref()) {
                    (2, b"Code") => Some("code"),
                    (2, b"Message") => Some("message"),
                    _ => None,
                };
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            Ok(Event::Text(t)) => {
                if let Some(slot) = slot_of(current, &mut code, &mut message) {
                    slot.push_str(&t.decode().unwrap_or_default());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(slot) = slot_of(current, &mut code, &mut message) {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        slot.push(c);
                    } else if let Some(s) = r
                        .decode()
                        .ok()
                        .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                    {
                        slot.push_str(s);
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    (
        code.filter(|c| !c.is_empty()),
        message.filter(|m| !m.is_empty()),
    )
}

fn header(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn checksums_of(h: &http::HeaderMap) -> Checksums {
    Checksums {
        content_md5: None,
        compute: None,
        crc32: header(h, "x-amz-checksum-crc32"),
        crc32c: header(h, "x-amz-checksum-crc32c"),
        sha1: header(h, "x-amz-checksum-sha1"),
        sha256: header(h, "x-amz-checksum-sha256"),
        crc64nvme: header(h, "x-amz-checksum-crc64nvme"),
    }
}

fn info_of(h: &http::HeaderMap, key: &str, size: u64) -> ObjectInfo {
    let user_metadata = h
        .iter()
        .filter_map(|(name, value)| {
            let k = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((k.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    ObjectInfo {
        key: key.to_owned(),
        size,
        etag: header(h, "etag").unwrap_or_default(),
        last_modified: header(h, "last-modified")
            .and_then(|v| httpdate::parse_http_date(&v).ok())
            .unwrap_or(UNIX_EPOCH),
        content_type: header(h, "content-type"),
        user_metadata,
        cache_control: header(h, "cache-control"),
        content_disposition: header(h, "content-disposition"),
        content_encoding: header(h, "content-encoding"),
        content_language: header(h, "content-language"),
        checksums: checksums_of(h),
        version_id: header(h, "x-amz-version-id"),
    }
}

/// Extra request headers, in the order they were added.
#[derive(Debug, Default, Clone)]
pub(crate) struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Adds a header; `None` when the name or value is not valid HTTP.
    fn push(&mut self, name: &str, value: &str) -> Option<()> {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value).ok()?;
        self.0.push((name, value));
        Some(())
    }
}

/// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
fn amz_dates(unix: u64) -> ([u8; 8], [u8; 16]) {
    // RFC 3339 (`2026-11-30T23:59:59Z`, whole seconds) without `-` and `:`.
    let rfc3339 = aws_smithy_types::DateTime::from_secs(i64::try_from(unix).unwrap_or(i64::MAX))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    let mut stamp = [b'0'; 16];
    for (slot, b) in stamp
        .iter_mut()
        .zip(rfc3339.bytes().filter(|b| !matches!(b, b'-' | b':')))
    {
        *slot = b;
    }
    let mut date = [0u8; 8];
    date.copy_from_slice(&stamp[..8]);
    (date, stamp)
}

/// Percent-encodes a key for the request path as S3 expects (`/` kept);
/// the same string is the canonical URI.
pub(crate) fn uri_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// SigV4 for one access key and region, `UNSIGNED-PAYLOAD`, the signing key
/// kept for the day it was derived for.
struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    token: Option<HeaderValue>,
    /// `(YYYYMMDD, key)` of the last day signed for.
    key: ArcSwapOption<([u8; 8], [u8; 32])>,
}

struct Signed {
    amz_date: HeaderValue,
    authorization: HeaderValue,
}

impl Signer {
    fn new(config: &S3BackendConfig) -> Self {
        Self {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
            region: config.region.clone(),
            token: config
                .session_token
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok()),
            key: ArcSwapOption::empty(),
        }
    }

    fn signing_key(&self, date: [u8; 8], now: SystemTime) -> [u8; 32] {
        if let Some(k) = self.key.load().as_ref() {
            if k.0 == date {
                return k.1;
            }
        }
        let derived =
            aws_sigv4::sign::v4::generate_signing_key(&self.secret_key, now, &self.region, "s3");
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        self.key.store(Some(Arc::new((date, key))));
        key
    }

    fn sign(&self, method: &str, host: &HeaderValue, path: &str, headers: &Headers) -> Signed {
        self.sign_at(SystemTime::now(), method, host, path, headers)
    }

    fn sign_at(
        &self,
        now: SystemTime,
        method: &str,
        host: &HeaderValue,
        path: &str,
        headers: &Headers,
    ) -> Signed {
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, stamp) = amz_dates(unix);
        let date_s = std::str::from_utf8(&date).expect("ascii digits");
        let stamp_s = std::str::from_utf8(&stamp).expect("ascii digits");
        // Canonical headers: every header sent, names lower-case and sorted,
        // values trimmed with inner runs of spaces folded.
        let mut signed: Vec<(&str, &[u8])> = Vec::with_capacity(headers.0.len() + 4);
        signed.push(("host", host.as_bytes()));
        signed.push(("x-amz-content-sha256", UNSIGNED.as_bytes()));
        signed.push(("x-amz-date", &stamp));
        if let Some(t) = &self.token {
            signed.push(("x-amz-security-token", t.as_bytes()));
        }
        for (n, v) in &headers.0 {
            signed.push((n.as_str(), v.as_bytes()));
        }
        signed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut canonical = String::with_capacity(256 + path.len());
        canonical.push_str(method);
        canonical.push('\n');
        canonical.push_str(path);
        canonical.push_str("\n\n");
        let mut names = String::with_capacity(96);
        for (i, (n, v)) in signed.iter().enumerate() {
            canonical.push_str(n);
            canonical.push(':');
            push_header_value(&mut canonical, v);
            canonical.push('\n');
            if i > 0 {
                names.push(';');
            }
            names.push_str(n);
        }
        canonical.push('\n');
        canonical.push_str(&names);
        canonical.push('\n');
        canonical.push_str(UNSIGNED);
        let scope = format!("{date_s}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp_s}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(date, now);
        let signature = aws_sigv4::sign::v4::calculate_signature(key, to_sign.as_bytes());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            self.access_key
        );
        Signed {
            amz_date: HeaderValue::from_bytes(&stamp).expect("ascii digits"),
            authorization: HeaderValue::from_str(&authorization)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        }
    }
}

/// A header value as SigV4 canonicalizes it: trimmed, runs of spaces folded
/// to one. (Values are visible ASCII: `HeaderValue::from_str` checked.)
fn push_header_value(out: &mut String, v: &[u8]) {
    let s = String::from_utf8_lossy(v);
    let mut space = false;
    for c in s.trim().chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The request body: bytes in memory (replayable) or the caller's stream,
/// checked against its declared length, its progress shared with the stall
/// watchdog.
pub(crate) enum OutBody {
    Full(Option<Bytes>),
    Stream {
        stream: BodyStream,
        expected: u64,
        sent: u64,
        progress: Arc<Progress>,
    },
}

impl OutBody {
    fn from_body(body: Body, len: u64) -> Self {
        match body.as_bytes() {
            Some(b) => OutBody::Full(Some(b.clone())),
            None => OutBody::Stream {
                stream: body.into_stream(),
                expected: len,
                sent: 0,
                progress: Arc::new(Progress::new(len)),
            },
        }
    }

    /// The progress of a streamed body, for the watchdog.
    fn progress(&self) -> Option<Arc<Progress>> {
        match self {
            OutBody::Full(_) => None,
            OutBody::Stream { progress, .. } => Some(progress.clone()),
        }
    }
}

/// How far a streamed request body has got: written by the body as hyper's
/// connection task polls it, read by the watchdog in [`FastPath::watched`].
pub(crate) struct Progress {
    /// When the request was made; the start counts as progress.
    base: Instant,
    /// Milliseconds from `base` to the last data frame handed to hyper,
    /// shifted left by 2, with the state in the low 2 bits: one word, so the
    /// watchdog never sees a new state with an old time.
    packed: AtomicU64,
    /// Bytes handed to hyper (for the error message).
    sent: AtomicU64,
    /// The declared length.
    expected: u64,
}

impl Progress {
    /// Hyper is taking data, or can take it but has not asked yet.
    const SENDING: u64 = 0;
    /// The last poll found the source not ready: the client is slow, not the
    /// service.
    const WAITING: u64 = 1;
    /// Every byte was handed to hyper.
    const DONE: u64 = 2;

    fn new(expected: u64) -> Self {
        // An empty body: hyper sends the head and never polls the body.
        let state = if expected == 0 {
            Self::DONE
        } else {
            Self::SENDING
        };
        Self {
            base: Instant::now(),
            packed: AtomicU64::new(state),
            sent: AtomicU64::new(0),
            expected,
        }
    }

    /// A data frame was handed to hyper; `done` when it was the last.
    fn frame(&self, sent: u64, done: bool) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        let state = if done { Self::DONE } else { Self::SENDING };
        self.sent.store(sent, Ordering::Relaxed);
        self.packed.store((ms << 2) | state, Ordering::Relaxed);
    }

    /// Sets the state, keeping the time (only the body writes).
    fn set_state(&self, state: u64) {
        let v = self.packed.load(Ordering::Relaxed);
        if v & 3 != state {
            self.packed.store((v & !3) | state, Ordering::Relaxed);
        }
    }

    /// The time of the last progress and the state.
    fn last(&self) -> (Instant, u64) {
        let v = self.packed.load(Ordering::Relaxed);
        (self.base + Duration::from_millis(v >> 2), v & 3)
    }
}

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            OutBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            OutBody::Stream {
                stream,
                expected,
                sent,
                progress,
            } => match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *sent += chunk.len() as u64;
                    if *sent > *expected {
                        return Poll::Ready(Some(Err(Box::new(StoreError::IncompleteBody {
                            expected: *expected,
                            actual: *sent,
                        }))));
                    }
                    // Hyper stops polling once the declared length is sent.
                    progress.frame(*sent, *sent == *expected);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if *sent != *expected => {
                    Poll::Ready(Some(Err(Box::new(StoreError::IncompleteBody {
                        expected: *expected,
                        actual: *sent,
                    }))))
                }
                Poll::Ready(None) => {
                    progress.set_state(Progress::DONE);
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    progress.set_state(Progress::WAITING);
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            OutBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OutBody::Stream { expected, sent, .. } => {
                SizeHint::with_exact(expected.saturating_sub(*sent))
            }
        }
    }
}

/// A response body as a stream of data chunks (trailers skipped).
struct IncomingStream(sync_wrapper::SyncWrapper<Incoming>);

impl Stream for IncomingStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let body = Pin::new(self.0.get_mut());
            match http_body::Body::poll_frame(body, cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3BackendConfig {
        S3BackendConfig::builder("residency-eu", "eu-west-1")
            .endpoint("http://127.0.0.1:3900")
            .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            .build()
            .unwrap()
    }

    #[test]
    fn dates() {
        let s = |u| {
            let (d, t) = amz_dates(u);
            (
                String::from_utf8(d.to_vec()).unwrap(),
                String::from_utf8(t.to_vec()).unwrap(),
            )
        };
        assert_eq!(s(0), ("19700101".into(), "19700101T000000Z".into()));
        assert_eq!(
            s(1_440_938_160),
            ("20150830".into(), "20150830T123600Z".into())
        );
        assert_eq!(s(951_782_400).0, "20000229");
        assert_eq!(s(1_796_083_199).1, "20261130T235959Z");
        assert_eq!(s(1_796_083_200).1, "20261201T000000Z");
    }

    /// The signature equals what `aws-sigv4`'s full request signer computes
    /// for the same request, headers with odd spacing and a session token
    /// included.
    #[test]
    fn signature_matches_aws_sigv4() {
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
        };
        use aws_sigv4::sign::v4::SigningParams;
        let mut cfg = config();
        cfg.session_token = Some("token/with+chars=".into());
        let signer = Signer::new(&cfg);
        let host = HeaderValue::from_static("127.0.0.1:3900");
        let mut headers = Headers::default();
        headers.push("content-length", "5").unwrap();
        headers.push("content-type", "text/plain").unwrap();
        headers
            .push("x-amz-meta-origin", "  two  spaces  ")
            .unwrap();
        headers.push("x-amz-checksum-crc32", "AAAAAA==").unwrap();
        let key = "tickets/a b+c/é~.json";
        let path = format!("/residency-eu/{}", uri_encode_path(key));
        let now = UNIX_EPOCH + Duration::from_secs(1_795_996_799);
        for _ in 0..2 {
            // twice: the second signature uses the cached key
            let ours = signer.sign_at(now, "PUT", &host, &path, &headers);
            let stamp = ours.amz_date.to_str().unwrap().to_owned();
            let all: Vec<(String, String)> = [
                ("host".to_string(), "127.0.0.1:3900".to_string()),
                ("x-amz-content-sha256".into(), UNSIGNED.into()),
                ("x-amz-date".into(), stamp.clone()),
                ("x-amz-security-token".into(), "token/with+chars=".into()),
            ]
            .into_iter()
            .chain(
                headers
                    .0
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())),
            )
            .collect();
            let identity = aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                Some("token/with+chars=".into()),
                None,
                "test",
            )
            .into();
            let mut settings = SigningSettings::default();
            settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
            settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
            settings.uri_path_normalization_mode =
                aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
            let params = SigningParams::builder()
                .identity(&identity)
                .region("eu-west-1")
                .name("s3")
                .time(now)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let signable = SignableRequest::new(
                "PUT",
                format!(
                    "http://127.0.0.1:3900/residency-eu/{}",
                    uri_encode_path(key)
                ),
                all.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instructions, theirs) = sign(signable, &params).unwrap().into_parts();
            let auth = ours.authorization.to_str().unwrap();
            assert!(
                auth.ends_with(&format!("Signature={theirs}")),
                "{auth} vs {theirs}"
            );
            let (their_headers, _) = instructions.into_parts();
            let their_auth = their_headers
                .iter()
                .find(|h| h.name() == "authorization")
                .map(|h| h.value().to_owned())
                .unwrap();
            assert_eq!(auth, their_auth);
        }
    }

    #[test]
    fn error_bodies() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The key &amp; more</Message><Resource>/b/k</Resource></Error>"#;
        assert_eq!(
            parse_error_body(body),
            (Some("NoSuchKey".into()), Some("The key & more".into()))
        );
        assert_eq!(parse_error_body(b""), (None, None));
        assert_eq!(parse_error_body(b"not xml <"), (None, None));
    }

    #[test]
    fn addressing() {
        let f = FastPath::new(&config()).unwrap();
        assert_eq!(f.origin, "http://127.0.0.1:3900");
        assert_eq!(f.path_prefix, "/residency-eu/");
        let mut c = config();
        c.force_path_style = false;
        c.endpoint = Some("http://localhost:9000/".into());
        let f = FastPath::new(&c).unwrap();
        assert_eq!(f.origin, "http://residency-eu.localhost:9000");
        assert_eq!(f.path_prefix, "/");
        c.endpoint = Some("http://localhost:9000/base".into());
        assert!(FastPath::new(&c).is_err());
        assert_eq!(uri_encode_path("t/a b+c/é"), "t/a%20b%2Bc/%C3%A9");
    }
}
