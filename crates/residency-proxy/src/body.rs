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
use residency_tower::BodyChecks;
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

/// The sidecar's checks on a client's body after s3s decoded it (chunk
/// signatures are verified by s3s): the size bound, the trailing checksum,
/// and the S3 error to answer when the body fails. The tower's one body
/// wrapper runs them (`residency_tower::BodyChecks`), so the body is not
/// wrapped again here.
struct ProxyChecks {
    failure: BodyFailure,
    trailer: Option<(Hasher, Trailer)>,
    seen: u64,
    max: u64,
}

impl ProxyChecks {
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

impl BodyChecks for ProxyChecks {
    fn chunk(&mut self, chunk: &Bytes) -> Result<(), BoxError> {
        if let Some((h, _)) = &mut self.trailer {
            h.update(chunk);
        }
        self.seen += chunk.len() as u64;
        if self.seen > self.max {
            self.failure.set(S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size.",
            ));
            metrics::counter!("residency_rejected_total", "reason" => "entity_too_large")
                .increment(1);
            return Err("the body is larger than max_object_bytes".into());
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), BoxError> {
        self.check_trailer()
    }

    fn failed(&mut self, e: &BoxError) {
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
}

/// A client's streamed body as the tower takes it, with the sidecar's checks
/// on it for the dispatch to run (`len`: the declared length, `max`:
/// `max_object_bytes`). A failure is recorded in `failure`.
pub(crate) fn incoming(
    blob: Option<StreamingBlob>,
    len: Option<u64>,
    max: u64,
    trailer: Option<Trailer>,
    failure: &BodyFailure,
) -> (Body, impl BodyChecks) {
    let trailer = trailer.and_then(|t| Hasher::for_header(&t.header).map(|h| (h, t)));
    let checks = ProxyChecks {
        failure: failure.clone(),
        trailer,
        seen: 0,
        max,
    };
    let body = match blob {
        Some(blob) => Body::from_stream(blob, len),
        None => Body::empty(),
    };
    (body, checks)
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
