//! The lean outbound path of [`S3Backend`](crate::S3Backend) for the hot
//! object calls: put, get, head and delete.
//!
//! Files: `sign.rs` (SigV4), `body.rs` (the request body and the stall
//! watchdog's progress), `response.rs` (reading answers and errors),
//! `retry.rs` (this path's one retry policy).
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
//! (see [`LeanPath::send`]): hyper stops polling a request body while the
//! socket is not writable, so a service that stops reading would otherwise
//! hold the upload forever.

mod body;
mod response;
mod retry;
mod sign;

use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::config::S3BackendConfig;
use super::path::encode_key;
use super::service_error::service_error;
use crate::body::{Body, BodyStream};
use crate::error::StoreError;
use crate::object::{Checksums, GetOutput, ObjectInfo, PutMeta, PutOutput};
use crate::range::{parse_content_range, ByteRange};
use body::{IncomingStream, OutBody, Progress};
use response::{connect_error, error_chain, header, info_of, parse_error_body};
use retry::RetryPolicy;
use sign::{Headers, Signer, UNSIGNED};

#[cfg(feature = "bench")]
pub use sign::BenchSigner;

/// Gets of at most this many bytes are read whole before they are answered
/// (see [`LeanPath::get`]); larger ones stream.
const SMALL_BODY: u64 = 64 * 1024;

/// Idle pooled connections are closed after this, before a server would.
const POOL_IDLE: Duration = Duration::from_secs(20);
/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

type HttpClient = Client<HttpsConnector<HttpConnector>, OutBody>;

/// The lean client for one bucket.
pub(crate) struct LeanPath {
    /// One connection pool per thread that calls: hyper's client drives each
    /// connection in a task it spawns on the caller's runtime, so with one
    /// runtime per core (`serve --runtime per-core`) a request and its
    /// outbound connection stay on one thread, and no request waits on a
    /// connection another thread drives.
    clients: thread_local::ThreadLocal<HttpClient>,
    connector: HttpsConnector<HttpConnector>,
    /// `http://127.0.0.1:3900` (scheme and authority, no trailing slash).
    origin: String,
    /// The `Host` header value, signed.
    host: HeaderValue,
    /// `/bucket/` path-style, `/` virtual-host style.
    path_prefix: String,
    signer: Signer,
    retry: RetryPolicy,
    /// A streamed upload the service takes no data of for this long fails.
    stall_timeout: Duration,
    bucket: String,
}

impl std::fmt::Debug for LeanPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanPath")
            .field("origin", &self.origin)
            .field("path_prefix", &self.path_prefix)
            .finish_non_exhaustive()
    }
}

impl LeanPath {
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
        Ok(Self {
            clients: thread_local::ThreadLocal::new(),
            connector,
            origin,
            host: HeaderValue::from_str(&host).map_err(|e| format!("host {host:?}: {e}"))?,
            path_prefix,
            signer: Signer::new(config),
            retry: RetryPolicy::new(config.max_attempts),
            stall_timeout: config.stall_timeout,
            bucket: config.bucket.clone(),
        })
    }

    /// This thread's client (built on its first call).
    fn client(&self) -> &HttpClient {
        self.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(self.connector.clone())
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
        let named = m.headers.standard().into_iter().chain(m.checksums.named());
        for (name, value) in named {
            if let Some(v) = value {
                h.push(name, v)?;
            }
        }
        for (k, v) in &m.headers.user_metadata {
            h.push(&format!("x-amz-meta-{}", k.to_ascii_lowercase()), v)?;
        }
        if m.create_only {
            h.push("if-none-match", "*")?;
        }
        Some(h)
    }

    /// Sends a put whose headers came from [`LeanPath::put_headers`].
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
            checksums: Checksums::from_http(h),
            version_id: header(h, "x-amz-version-id"),
            sse: crate::SseReport::from_http(h),
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

    /// Signs and sends; retries as [`RetryPolicy`] says (the only retry loop
    /// of this path).
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
        let path = format!("{}{}", self.path_prefix, encode_key(key));
        let mut attempt = 1;
        loop {
            let body = body();
            let progress = body.progress();
            let req = self.request(&method, &path, headers, body)?;
            let last = self.retry.is_last(attempt, replayable);
            let call = self.client().request(req);
            let result = match progress {
                None => call.await,
                Some(p) => self.watched(call, &p).await?,
            };
            match result {
                Ok(resp) => {
                    if !RetryPolicy::is_transient(resp.status()) || last {
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
            tokio::time::sleep(RetryPolicy::backoff(attempt)).await;
        }
    }

    /// Awaits `request` while its streamed body keeps moving (see
    /// [`LeanPath::send`]). One timer, re-armed only when it fires: for the
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A path-style configuration for a Garage on 127.0.0.1 (never reached).
    pub(in crate::s3::lean) fn config() -> S3BackendConfig {
        S3BackendConfig::builder("residency-eu", "eu-west-1")
            .endpoint("http://127.0.0.1:3900")
            .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            .build()
            .unwrap()
    }

    #[test]
    fn addressing() {
        let f = LeanPath::new(&config()).unwrap();
        assert_eq!(f.origin, "http://127.0.0.1:3900");
        assert_eq!(f.path_prefix, "/residency-eu/");
        let mut c = config();
        c.force_path_style = false;
        c.endpoint = Some("http://localhost:9000/".into());
        let f = LeanPath::new(&c).unwrap();
        assert_eq!(f.origin, "http://residency-eu.localhost:9000");
        assert_eq!(f.path_prefix, "/");
        c.endpoint = Some("http://localhost:9000/base".into());
        assert!(LeanPath::new(&c).is_err());
        assert_eq!(encode_key("t/a b+c/é"), "t/a%20b%2Bc/%C3%A9");
    }
}
