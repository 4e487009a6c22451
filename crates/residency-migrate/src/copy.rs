//! Streaming copy between two backends, hashing the bytes as they pass.
//!
//! The source body is pumped chunk by chunk into the destination write
//! through a small channel (a few chunks in flight), so an object is never
//! held in memory. Objects above the multipart threshold are sent as a
//! multipart upload whose parts are themselves streams of known length.
//! While the bytes pass, MD5 (whole object and per part) and SHA-256 are
//! computed: the MD5s give the ETag the destination must report, the SHA-256
//! goes into the journal.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest as _, Md5};
use residency_store::{
    Backend, Body, BodyStream, BoxError, CompletedPart, ObjectInfo, PartUpload, PutMeta, StoreError,
};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::error::MigrateError;
use crate::fault::{FaultKind, Faults};
use crate::journal::Journal;

/// What the copy computed.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    /// MD5 of the whole object (hex).
    pub(crate) md5_hex: String,
    /// SHA-256 of the whole object (hex).
    pub(crate) sha256_hex: String,
    /// The ETag the destination must report: `"<md5>"`, or the multipart
    /// ETag of the parts sent.
    pub(crate) expected_etag: String,
}

impl Copied {
    /// What is wrong with the copy `dest` (the destination's own account)
    /// of the source `src`: size, the ETag computed while copying, the
    /// metadata, and the bytes read against the source's ETag. Empty: it
    /// verifies.
    pub(crate) fn problems(&self, src: &ObjectInfo, dest: &ObjectInfo) -> Vec<String> {
        let mut problems = Vec::new();
        if dest.size != src.size {
            problems.push(format!("size {} != {}", dest.size, src.size));
        }
        if unquote(&dest.etag) != unquote(&self.expected_etag) {
            problems.push(format!(
                "destination etag {} != {} computed while copying",
                dest.etag, self.expected_etag
            ));
        }
        if !same_meta(dest, src) {
            problems.push("metadata differs".to_owned());
        }
        if !src.etag.contains('-') && unquote(&src.etag) != self.md5_hex {
            problems.push(format!(
                "bytes read do not match the source etag {}",
                src.etag
            ));
        }
        problems
    }
}

/// Why a copy failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The source backend failed (or its stream broke).
    Source(StoreError),
    /// The destination backend failed.
    Dest(StoreError),
    /// The source yielded a different number of bytes than announced.
    Length { expected: u64, got: u64 },
    /// The upload could not be noted in the journal, or a fault point was
    /// reached (the upload is then left open, as a crash would leave it).
    Stop(MigrateError),
}

/// What a copy tells the journal, and where it may stop (tests).
#[derive(Clone, Copy, Default)]
pub(crate) struct CopyHooks<'a> {
    /// Notes each multipart upload (journal, migration id) before its
    /// first part, and clears the note once completed or aborted.
    pub(crate) journal: Option<(&'a Journal, &'a str)>,
    /// Counts parts for the `after_part:N` fault point.
    pub(crate) faults: Option<&'a Faults>,
    /// The destination had no object at the key: a single-request copy is
    /// then create-only (`If-None-Match: *`), so that it fails with
    /// `PreconditionFailed` instead of overwriting a write that landed in
    /// between, where the store decides it (not Garage v1.x; a multipart
    /// copy has no such guard).
    pub(crate) create_only: bool,
}

/// The metadata to store with the copy: exactly the source's.
pub(crate) fn meta_of(info: &ObjectInfo) -> PutMeta {
    PutMeta {
        headers: info.headers.clone(),
        content_length: Some(info.size),
        checksums: Default::default(),
        checksum_algorithm: None,
        sse: Default::default(),
        create_only: false,
    }
}

/// Whether two objects carry the same metadata.
pub(crate) fn same_meta(a: &ObjectInfo, b: &ObjectInfo) -> bool {
    a.headers == b.headers
}

/// The bare hex of an ETag.
pub(crate) fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// A channel receiver as a body stream (`Sync`, as `Body` wants).
struct ChannelStream(mpsc::Receiver<Result<Bytes, BoxError>>);

impl Stream for ChannelStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The source stream, read part by part.
struct Pump {
    stream: BodyStream,
    leftover: Option<Bytes>,
    md5: Md5,
    sha256: Sha256,
    read: u64,
}

impl Pump {
    /// Sends exactly `len` bytes into `tx`; returns the MD5 of those bytes.
    async fn send(
        &mut self,
        len: u64,
        tx: mpsc::Sender<Result<Bytes, BoxError>>,
    ) -> Result<[u8; 16], CopyError> {
        let mut part_md5 = Md5::new();
        let mut remaining = len;
        while remaining > 0 {
            let mut chunk = match self.leftover.take() {
                Some(c) => c,
                None => match self.stream.next().await {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        let _ = tx.send(Err("source stream failed".into())).await;
                        return Err(CopyError::Source(StoreError::Unavailable {
                            message: "source stream failed".into(),
                            source: Some(e),
                        }));
                    }
                    None => {
                        let _ = tx.send(Err("source ended early".into())).await;
                        return Err(CopyError::Length {
                            expected: self.read + remaining,
                            got: self.read,
                        });
                    }
                },
            };
            if chunk.is_empty() {
                continue;
            }
            if chunk.len() as u64 > remaining {
                self.leftover = Some(chunk.split_off(remaining as usize));
            }
            remaining -= chunk.len() as u64;
            self.read += chunk.len() as u64;
            part_md5.update(&chunk);
            self.md5.update(&chunk);
            self.sha256.update(&chunk);
            if tx.send(Ok(chunk)).await.is_err() {
                // The destination stopped reading: its error explains why.
                break;
            }
        }
        Ok(part_md5.finalize().into())
    }

    /// Checks that the source has nothing after the announced length.
    async fn finish(mut self) -> Result<([u8; 16], [u8; 32]), CopyError> {
        let extra = match self.leftover.take() {
            Some(c) => c.len() as u64,
            None => 0,
        };
        let mut extra = extra;
        while let Some(c) = self.stream.next().await {
            extra += c
                .map_err(|e| {
                    CopyError::Source(StoreError::Unavailable {
                        message: "source stream failed".into(),
                        source: Some(e),
                    })
                })?
                .len() as u64;
        }
        if extra > 0 {
            return Err(CopyError::Length {
                expected: self.read,
                got: self.read + extra,
            });
        }
        Ok((self.md5.finalize().into(), self.sha256.finalize().into()))
    }
}

const CHANNEL_CHUNKS: usize = 4;

/// Streams `body` (the source object described by `info`) into `dst` at `key`.
pub(crate) async fn stream_copy(
    dst: &Arc<dyn Backend>,
    key: &str,
    info: &ObjectInfo,
    body: Body,
    part_size: u64,
    multipart_threshold: u64,
    hooks: CopyHooks<'_>,
) -> Result<Copied, CopyError> {
    let size = info.size;
    let mut pump = Pump {
        stream: body.into_stream(),
        leftover: None,
        md5: Md5::new(),
        sha256: Sha256::new(),
        read: 0,
    };
    let meta = meta_of(info);
    if size <= multipart_threshold {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let meta = PutMeta {
            create_only: hooks.create_only,
            ..meta
        };
        let put = dst.put_object(key, Body::from_stream(ChannelStream(rx), Some(size)), meta);
        let (sent, put) = tokio::join!(pump.send(size, tx), put);
        put.map_err(CopyError::Dest)?;
        sent?;
        let (md5, sha) = pump.finish().await?;
        return Ok(Copied {
            md5_hex: hex::encode(md5),
            sha256_hex: hex::encode(sha),
            expected_etag: format!("\"{}\"", hex::encode(md5)),
        });
    }
    let upload_id = dst
        .create_multipart(key, meta)
        .await
        .map_err(CopyError::Dest)?;
    let note = match hooks.journal {
        Some((journal, id)) => match journal.note_upload(id, key, &upload_id).await {
            Ok(n) => Some((journal, n)),
            Err(e) => {
                let _ = dst.abort_multipart(key, &upload_id).await;
                return Err(CopyError::Stop(e));
            }
        },
        None => None,
    };
    let result = copy_parts(dst, key, &upload_id, size, part_size, &mut pump, hooks).await;
    let result = match result {
        // A fault point: stop as a crash would, the upload left open.
        Err(CopyError::Stop(e)) => return Err(CopyError::Stop(e)),
        r => r,
    };
    let outcome = finish_upload(dst, key, &upload_id, result, pump).await;
    if let Some((journal, n)) = note {
        if let Err(e) = journal.clear_upload(&n).await {
            // The note stays: the next run aborts an upload that is already
            // completed or aborted, which is harmless.
            tracing::warn!(key, error = %e, "could not remove the note of a finished upload");
        }
    }
    outcome
}

/// Uploads the parts of a multipart copy.
async fn copy_parts(
    dst: &Arc<dyn Backend>,
    key: &str,
    upload_id: &str,
    size: u64,
    part_size: u64,
    pump: &mut Pump,
    hooks: CopyHooks<'_>,
) -> Result<(Vec<CompletedPart>, Vec<[u8; 16]>), CopyError> {
    let mut parts = Vec::new();
    let mut md5s = Vec::new();
    let mut offset = 0u64;
    let mut number = 1u32;
    while offset < size {
        let len = part_size.min(size - offset);
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let up = dst.upload_part(PartUpload::new(
            key,
            upload_id,
            number,
            Body::from_stream(ChannelStream(rx), Some(len)),
        ));
        let (sent, up) = tokio::join!(pump.send(len, tx), up);
        let info = up.map_err(CopyError::Dest)?;
        md5s.push(sent?);
        parts.push(CompletedPart {
            part_number: number,
            etag: info.etag,
            checksums: Default::default(),
        });
        if let Some(f) = hooks.faults {
            f.hit(FaultKind::Part).map_err(CopyError::Stop)?;
        }
        offset += len;
        number += 1;
    }
    Ok((parts, md5s))
}

/// Completes the upload (or aborts it after a failure).
async fn finish_upload(
    dst: &Arc<dyn Backend>,
    key: &str,
    upload_id: &str,
    result: Result<(Vec<CompletedPart>, Vec<[u8; 16]>), CopyError>,
    pump: Pump,
) -> Result<Copied, CopyError> {
    let (parts, md5s) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = dst.abort_multipart(key, upload_id).await;
            return Err(e);
        }
    };
    let (md5, sha) = match pump.finish().await {
        Ok(v) => v,
        Err(e) => {
            let _ = dst.abort_multipart(key, upload_id).await;
            return Err(e);
        }
    };
    if let Err(e) = dst.complete_multipart(key, upload_id, parts).await {
        let _ = dst.abort_multipart(key, upload_id).await;
        return Err(CopyError::Dest(e));
    }
    let mut all = Md5::new();
    for m in &md5s {
        all.update(m);
    }
    Ok(Copied {
        md5_hex: hex::encode(md5),
        sha256_hex: hex::encode(sha),
        expected_etag: format!("\"{}-{}\"", hex::encode(all.finalize()), md5s.len()),
    })
}

/// SHA-256 (hex) and length of a whole object, read as a stream.
pub(crate) async fn hash_object(
    backend: &Arc<dyn Backend>,
    key: &str,
) -> Result<(String, u64, ObjectInfo), StoreError> {
    let out = backend.get_object(key, None).await?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut s = out.body.into_stream();
    while let Some(c) = s.next().await {
        let c = c.map_err(|e| StoreError::Unavailable {
            message: "stream failed".into(),
            source: Some(e),
        })?;
        n += c.len() as u64;
        h.update(&c);
    }
    Ok((hex::encode(h.finalize()), n, out.info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use residency_store::MemoryBackend;

    async fn copy_and_check(size: usize, part: u64, threshold: u64) {
        let src: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
        let dst: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut meta = PutMeta::with_content_type("application/x-test");
        meta.headers
            .user_metadata
            .insert("owner".into(), "ops".into());
        src.put_object("t/k", Body::from(data.clone()), meta)
            .await
            .unwrap();
        let got = src.get_object("t/k", None).await.unwrap();
        let info = got.info.clone();
        // Re-chunk the body into odd pieces to exercise part boundaries.
        let bytes = got.body.collect().await.unwrap();
        let chunks: Vec<Result<Bytes, BoxError>> = bytes
            .chunks(777)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures::stream::iter(chunks), Some(size as u64));
        let c = stream_copy(
            &dst,
            "t/k",
            &info,
            body,
            part,
            threshold,
            CopyHooks::default(),
        )
        .await
        .unwrap();
        let head = dst.head_object("t/k").await.unwrap();
        assert_eq!(head.etag, c.expected_etag);
        assert_eq!(head.size, size as u64);
        assert!(same_meta(&head, &info));
        let (sha, n, _) = hash_object(&dst, "t/k").await.unwrap();
        assert_eq!((sha, n), (c.sha256_hex.clone(), size as u64));
        if size as u64 <= threshold {
            assert_eq!(unquote(&info.etag), c.md5_hex);
        }
    }

    #[tokio::test]
    async fn single_part_and_multipart_copies_verify() {
        copy_and_check(0, 5 << 20, 6 << 20).await;
        copy_and_check(10_000, 5 << 20, 6 << 20).await;
        copy_and_check((11 << 20) + 5, 5 << 20, 6 << 20).await;
    }

    #[tokio::test]
    async fn short_source_fails() {
        let dst: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
        let src: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
        src.put_object("t/k", Body::from("abc"), PutMeta::default())
            .await
            .unwrap();
        let mut info = src.head_object("t/k").await.unwrap();
        info.size = 10;
        let body = Body::from_stream(
            futures::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("abc"))]),
            None,
        );
        assert!(stream_copy(
            &dst,
            "t/k",
            &info,
            body,
            5 << 20,
            6 << 20,
            CopyHooks::default()
        )
        .await
        .is_err());
        assert!(dst.head_object("t/k").await.is_err(), "nothing stored");
    }
}
