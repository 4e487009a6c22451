//! Request bodies on their way to a region: decoded by s3s (aws-chunked
//! chunk signatures verified there), trailing checksums verified here, and the
//! first failure remembered so the client gets the right S3 error.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use crc_fast::{CrcAlgorithm, Digest as Crc};
use futures::Stream;
use residency_store::{Body, BoxError};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode};
use sha1::Digest as _;

/// The first error a streamed body hit, to report instead of the backend's
/// view of it (which only sees "the body failed").
#[derive(Clone, Default)]
pub(crate) struct BodyFailure(Arc<Mutex<Option<S3Error>>>);

impl BodyFailure {
    fn set(&self, e: S3Error) {
        let mut g = self.0.lock().expect("body failure lock");
        if g.is_none() {
            *g = Some(e);
        }
    }

    /// The recorded failure, if any.
    pub(crate) fn take(&self) -> Option<S3Error> {
        self.0.lock().expect("body failure lock").take()
    }
}

enum Hasher {
    Crc(Crc, bool),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn for_header(name: &str) -> Option<Hasher> {
        Some(match name {
            "x-amz-checksum-crc32" => Hasher::Crc(Crc::new(CrcAlgorithm::Crc32IsoHdlc), true),
            "x-amz-checksum-crc32c" => Hasher::Crc(Crc::new(CrcAlgorithm::Crc32Iscsi), true),
            "x-amz-checksum-crc64nvme" => Hasher::Crc(Crc::new(CrcAlgorithm::Crc64Nvme), false),
            "x-amz-checksum-sha1" => Hasher::Sha1(sha1::Sha1::new()),
            "x-amz-checksum-sha256" => Hasher::Sha256(sha2::Sha256::new()),
            _ => return None,
        })
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Crc(c, _) => c.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Crc(c, true) => B64.encode((c.finalize() as u32).to_be_bytes()),
            Hasher::Crc(c, false) => B64.encode(c.finalize().to_be_bytes()),
            Hasher::Sha1(h) => B64.encode(h.finalize()),
            Hasher::Sha256(h) => B64.encode(h.finalize()),
        }
    }
}

/// A trailing checksum to verify when the body ends.
pub(crate) struct Trailer {
    pub(crate) header: String,
    pub(crate) handle: s3s::TrailingHeaders,
}

struct Incoming {
    inner: StreamingBlob,
    failure: BodyFailure,
    trailer: Option<(Hasher, Trailer)>,
    done: bool,
    /// The announced (decoded) length, if any.
    expected: Option<u64>,
    /// Bytes received so far.
    seen: u64,
    /// The most bytes accepted, whatever the framing (a chunked body
    /// declares no length up front).
    max: u64,
    /// The chunk that completed the announced length, held back until the
    /// client's stream has ended. A consumer that knows the length (the
    /// backend's HTTP client) stops polling after the last byte, so without
    /// this the end of the stream (the final chunk's signature, the trailer's
    /// signature, the trailing checksum) would never be checked and a bad
    /// upload would be stored.
    held: Option<Bytes>,
}

impl Incoming {
    /// Remembers the S3 answer for a body that s3s's decoder failed. The
    /// decoder's error types (`AwsChunkedStreamError`, `UploadStreamError`
    /// in s3s 0.14) live in private modules and cannot be downcast to, so
    /// their `Display` names the variant this matches on; an unknown one is
    /// answered `IncompleteBody` with its message.
    fn fail(&mut self, e: &(dyn std::error::Error + 'static)) {
        self.done = true;
        self.held = None;
        let msg = e.to_string();
        let s3 = if msg.contains("SignatureMismatch") {
            S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "a chunk signature does not match",
            )
        } else if msg.contains("Sha256Mismatch") {
            // What S3 answers when the payload's SHA-256 is not the signed one
            // (e.g. a body longer or shorter than its Content-Length).
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            e
        } else if msg.contains("Incomplete") || msg.contains("FormatError") {
            S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                "the request body is incomplete or malformed",
            )
        } else {
            S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                format!("the request body failed: {msg}"),
            )
        };
        self.failure.set(s3);
    }

    /// At the end of the client's stream: the trailing checksum, if one was
    /// announced, must match the bytes received.
    fn check_trailer(&mut self) -> Result<(), BoxError> {
        let Some((h, t)) = self.trailer.take() else {
            return Ok(());
        };
        let want = t
            .handle
            .read(|hs| {
                hs.get(t.header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .flatten();
        let got = h.finish();
        match want {
            Some(w) if w.trim() == got => Ok(()),
            Some(_) => {
                self.failure.set(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!(
                        "the {} you specified did not match the calculated checksum",
                        t.header
                    ),
                ));
                Err("trailing checksum mismatch".into())
            }
            None => {
                self.failure.set(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!("the trailer {} was announced but not sent", t.header),
                ));
                Err("trailing checksum missing".into())
            }
        }
    }
}

impl Stream for Incoming {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some((h, _)) = &mut self.trailer {
                        h.update(&chunk);
                    }
                    self.seen += chunk.len() as u64;
                    if self.seen > self.max {
                        self.done = true;
                        self.held = None;
                        self.failure.set(S3Error::with_message(
                            S3ErrorCode::EntityTooLarge,
                            "Your proposed upload exceeds the maximum allowed object size.",
                        ));
                        metrics::counter!("residency_rejected_total", "reason" => "entity_too_large")
                            .increment(1);
                        return Poll::Ready(Some(Err(
                            "the body is larger than max_object_bytes".into()
                        )));
                    }
                    let chunk = match self.held.take() {
                        // More than announced: pass it on (the backend refuses it).
                        Some(prev) => {
                            let mut b = Vec::with_capacity(prev.len() + chunk.len());
                            b.extend_from_slice(&prev);
                            b.extend_from_slice(&chunk);
                            Bytes::from(b)
                        }
                        None => chunk,
                    };
                    if self.expected.is_some_and(|n| self.seen >= n) {
                        // The last byte: first see the client's stream end.
                        self.held = Some(chunk);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.fail(&*e);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    if let Err(e) = self.check_trailer() {
                        self.held = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(self.held.take().map(Ok));
                }
            }
        }
    }
}

/// Wraps an s3s body as a store body.
pub(crate) fn incoming(
    blob: Option<StreamingBlob>,
    len: Option<u64>,
    max: u64,
    trailer: Option<Trailer>,
    failure: &BodyFailure,
) -> Body {
    let Some(blob) = blob else {
        return Body::empty();
    };
    let trailer = trailer.and_then(|t| Hasher::for_header(&t.header).map(|h| (h, t)));
    Body::from_stream(
        Incoming {
            inner: blob,
            failure: failure.clone(),
            trailer,
            done: false,
            expected: len,
            seen: 0,
            max,
            held: None,
        },
        len,
    )
}

/// A store body on its way to the client, with its exact length when known
/// (so the response carries `Content-Length`).
pub(crate) struct Outgoing {
    inner: residency_store::BodyStream,
    remaining: Option<u64>,
}

impl Outgoing {
    #[allow(clippy::new_ret_no_self)] // wraps itself in the s3s body type
    pub(crate) fn new(body: Body) -> StreamingBlob {
        let remaining = body.len_hint();
        StreamingBlob::new(Outgoing {
            inner: body.into_stream(),
            remaining,
        })
    }
}

impl Stream for Outgoing {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &r {
            if let Some(n) = &mut self.remaining {
                *n = n.saturating_sub(chunk.len() as u64);
            }
        }
        r
    }
}

impl s3s::stream::ByteStream for Outgoing {
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        match self.remaining {
            Some(n) => s3s::stream::RemainingLength::new_exact(n as usize),
            None => s3s::stream::RemainingLength::unknown(),
        }
    }
}
