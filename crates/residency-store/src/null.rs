//! A backend that stores nothing: the sidecar's own ceiling in benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::backend::Backend;
use crate::body::Body;
use crate::checksum;
use crate::error::StoreError;
use crate::listing::{Flow, Lister};
use crate::multipart::{self, PartRecord};
use crate::object::{
    BackendDescription, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo, ObjectSummary,
    PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, StoredHeaders, UploadInfo,
};
use crate::range::ByteRange;

/// 64 KiB of zeros: every byte a [`NullBackend`] ever serves comes from here.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// What a [`NullBackend`] remembers of an object: never its bytes.
#[derive(Debug, Clone)]
struct Record {
    size: u64,
    etag: String,
    content_type: Option<String>,
    last_modified: SystemTime,
}

#[derive(Debug)]
struct Upload {
    key: String,
    content_type: Option<String>,
    initiated: SystemTime,
    parts: BTreeMap<u32, PartRecord>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Record>,
    uploads: HashMap<String, Upload>,
}

/// A backend that accepts and discards writes: **for benchmarks only**.
///
/// It measures what the layers in front of it cost (the sidecar's ceiling)
/// with no storage behind them. Semantics:
///
/// - **writes** (`put_object`, `upload_part`) read the whole body chunk by
///   chunk and drop each chunk at once, so the client's upload (and any chunk
///   signature or trailing checksum the caller verifies while it streams) is
///   consumed exactly as a real backend would. A body shorter or longer than
///   its declared length fails with `IncompleteBody`. Checksums given in
///   [`PutMeta`] are **not** verified (that would cost CPU a real S3 backend
///   spends on the server side, not in the sidecar) and are echoed back.
/// - it remembers, per key, only the size, a content type and an ETag: the
///   ETag is **not** an MD5 of the data (nothing is hashed) but a
///   deterministic 32-hex value derived from the size, quoted like an S3 ETag.
/// - **reads** (`get_object`, `head_object`) of a key it has answer with that
///   metadata and a body of that many zero bytes (ranges honoured), streamed
///   from one static buffer; an unknown key is `NotFound`. `copy_object`
///   copies the record; `delete_object` forgets it; `list_objects` lists what
///   it has. Multipart uploads keep part sizes only (no minimum part size).
/// - `location` is `None` (no location check applies) and `health` is always
///   fine. Memory use grows only with the number of distinct keys.
#[derive(Debug)]
pub struct NullBackend {
    name: String,
    state: Mutex<State>,
}

impl NullBackend {
    /// An empty null backend; `name` shows in [`Backend::describe`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads and drops `body`; returns its length.
    async fn drain(body: Body, declared: Option<u64>) -> Result<u64, StoreError> {
        let expected = body.len_hint().or(declared);
        let mut seen = 0u64;
        let mut stream = body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::Unavailable {
                message: "body stream failed".into(),
                source: Some(e),
            })?;
            seen += chunk.len() as u64;
        }
        if let Some(n) = expected {
            if n != seen {
                return Err(StoreError::IncompleteBody {
                    expected: n,
                    actual: seen,
                });
            }
        }
        Ok(seen)
    }

    fn fake_md5(size: u64, salt: u64) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&size.to_be_bytes());
        m[8..].copy_from_slice(&salt.to_be_bytes());
        m
    }

    fn info(key: &str, r: &Record) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size: r.size,
            etag: r.etag.clone(),
            last_modified: r.last_modified,
            headers: StoredHeaders {
                content_type: r.content_type.clone(),
                ..StoredHeaders::default()
            },
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        }
    }

    fn record(&self, key: &str) -> Result<Record, StoreError> {
        self.lock()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }
}

/// `len` zero bytes in chunks of at most 64 KiB, without allocating them.
fn zeros(len: u64) -> Body {
    let chunk = ZEROS.len() as u64;
    let n = len.div_ceil(chunk);
    let stream = futures::stream::iter((0..n).map(move |i| {
        let this = (len - i * chunk).min(chunk) as usize;
        Ok(Bytes::from_static(&ZEROS[..this]))
    }));
    Body::from_stream(stream, Some(len))
}

#[async_trait]
impl Backend for NullBackend {
    fn describe(&self) -> BackendDescription {
        BackendDescription {
            kind: "null",
            target: self.name.clone(),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        let size = Self::drain(body, meta.content_length).await?;
        let etag = checksum::etag_of(&Self::fake_md5(size, 0));
        let record = Record {
            size,
            etag: etag.clone(),
            content_type: meta.headers.content_type,
            last_modified: SystemTime::now(),
        };
        {
            let mut state = self.lock();
            match state.objects.get_mut(key) {
                Some(r) => *r = record,
                None => {
                    state.objects.insert(key.to_owned(), record);
                }
            }
        }
        Ok(PutOutput {
            etag,
            checksums: meta.checksums.without_md5(),
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        let r = self.record(key)?;
        let (body, content_range) = match range {
            Some(range) => {
                let (first, last) = range.resolve(r.size)?;
                (zeros(last - first + 1), Some((first, last, r.size)))
            }
            None => (zeros(r.size), None),
        };
        Ok(GetOutput {
            info: Self::info(key, &r),
            body,
            content_range,
        })
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        let r = self.record(key)?;
        Ok(Self::info(key, &r))
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        let mut lister = Lister::new(&request)?;
        let state = self.lock();
        let from = lister.seek_from().to_owned();
        for (key, r) in state.objects.range(from..) {
            if !key.starts_with(lister.prefix()) {
                break;
            }
            let summary = || {
                Ok(Some(ObjectSummary {
                    key: key.clone(),
                    size: r.size,
                    etag: r.etag.clone(),
                    last_modified: r.last_modified,
                }))
            };
            if lister.offer(key, summary)? == Flow::Stop {
                break;
            }
        }
        Ok(lister.finish())
    }

    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError> {
        let mut r = self.record(src_key)?;
        if let Some(m) = meta {
            r.content_type = m.headers.content_type;
        }
        r.last_modified = SystemTime::now();
        let etag = r.etag.clone();
        self.lock().objects.insert(dst_key.to_owned(), r);
        Ok(PutOutput {
            etag,
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        let id = multipart::new_upload_id();
        self.lock().uploads.insert(
            id.clone(),
            Upload {
                key: key.to_owned(),
                content_type: meta.headers.content_type,
                initiated: SystemTime::now(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        multipart::check_part_number(part.part_number)?;
        self.with_upload(part.key, part.upload_id, |_| Ok(()))?;
        let size = Self::drain(part.body, None).await?;
        let record = PartRecord {
            part_number: part.part_number,
            md5: Self::fake_md5(size, u64::from(part.part_number)),
            size,
            checksums: part.checksums.without_md5(),
            last_modified_ms: multipart::to_millis(SystemTime::now()),
        };
        let info = record.info();
        self.with_upload(part.key, part.upload_id, |u| {
            u.parts.insert(part.part_number, record);
            Ok(())
        })?;
        Ok(info)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        let mut state = self.lock();
        let upload = match state.uploads.get(upload_id) {
            Some(u) if u.key == key => u,
            _ => {
                return Err(StoreError::NoSuchUpload {
                    upload_id: upload_id.to_owned(),
                })
            }
        };
        let (chosen, etag) = multipart::select_parts(&upload.parts, &parts, 0)?;
        let size = chosen.iter().map(|p| p.size).sum();
        let record = Record {
            size,
            etag: etag.clone(),
            content_type: upload.content_type.clone(),
            last_modified: SystemTime::now(),
        };
        state.uploads.remove(upload_id);
        state.objects.insert(key.to_owned(), record);
        Ok(PutOutput {
            etag,
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.with_upload(key, upload_id, |_| Ok(()))?;
        self.lock().uploads.remove(upload_id);
        Ok(())
    }

    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.with_upload(query.key, query.upload_id, |u| {
            Ok(multipart::parts_page(
                &u.parts,
                query.part_number_marker,
                query.max_parts,
            ))
        })
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        let state = self.lock();
        let mut out: Vec<UploadInfo> = state
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .map(|(id, u)| UploadInfo {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: u.initiated,
            })
            .collect();
        out.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        Ok(out)
    }

    async fn location(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl NullBackend {
    fn with_upload<T>(
        &self,
        key: &str,
        upload_id: &str,
        f: impl FnOnce(&mut Upload) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        match state.uploads.get_mut(upload_id) {
            Some(u) if u.key == key => f(u),
            _ => Err(StoreError::NoSuchUpload {
                upload_id: upload_id.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn discards_but_remembers_sizes() {
        let b = NullBackend::new("null");
        let out = b
            .put_object("t/a", Body::from("hello"), PutMeta::default())
            .await
            .unwrap();
        assert_eq!(out.etag.len(), 34);
        let info = b.head_object("t/a").await.unwrap();
        assert_eq!(info.size, 5);
        let got = b.get_object("t/a", None).await.unwrap();
        assert_eq!(got.body.collect().await.unwrap(), &[0u8; 5][..]);
        let big = 200 * 1024;
        b.put_object("t/b", Body::from(vec![1u8; big]), PutMeta::default())
            .await
            .unwrap();
        let got = b
            .get_object("t/b", Some(ByteRange::From { first: 10 }))
            .await
            .unwrap();
        assert_eq!(got.content_range, Some((10, big as u64 - 1, big as u64)));
        assert_eq!(got.body.collect().await.unwrap().len(), big - 10);
        assert_eq!(
            b.list_objects(ListRequest::new("t/"))
                .await
                .unwrap()
                .objects
                .len(),
            2
        );
        b.delete_object("t/a").await.unwrap();
        assert!(matches!(
            b.get_object("t/a", None).await,
            Err(StoreError::NotFound { .. })
        ));
        let short = Body::from_stream(futures::stream::iter([Ok(Bytes::from("ab"))]), Some(3));
        assert!(matches!(
            b.put_object("t/c", short, PutMeta::default()).await,
            Err(StoreError::IncompleteBody { .. })
        ));
    }
}
