//! An in-memory backend **for unit tests only**.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::backend::Backend;
use crate::body::Body;
use crate::checksum::{self, BodyHasher};
use crate::error::StoreError;
use crate::listing::{Flow, Lister};
use crate::multipart::{self, PartRecord};
use crate::object::{
    BackendDescription, Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo,
    ObjectSummary, PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;

#[derive(Debug, Clone)]
struct StoredObject {
    data: Bytes,
    info: ObjectInfo,
}

#[derive(Debug)]
struct Upload {
    key: String,
    meta: PutMeta,
    initiated: SystemTime,
    parts: BTreeMap<u32, (PartRecord, Bytes)>,
}

impl Upload {
    /// Each uploaded part's record, by part number.
    fn part_records(&self) -> BTreeMap<u32, PartRecord> {
        self.parts
            .iter()
            .map(|(n, (r, _))| (*n, r.clone()))
            .collect()
    }
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, StoredObject>,
    uploads: HashMap<String, Upload>,
}

/// An in-memory backend **for unit tests only**.
///
/// It keeps whole objects in memory (the one backend that buffers bodies)
/// and forgets everything when dropped. It follows the same S3 semantics as
/// the other backends and can be told to fail, so that callers can test
/// fail-closed behaviour:
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use residency_store::{Backend, Body, MemoryBackend, PutMeta};
/// let eu = MemoryBackend::new("eu");
/// eu.put_object("acme/a.txt", Body::from("hi"), PutMeta::default()).await.unwrap();
/// eu.set_unavailable(true);
/// let err = eu.head_object("acme/a.txt").await.unwrap_err();
/// assert_eq!(err.http_status(), 503);
/// # });
/// ```
#[derive(Debug)]
pub struct MemoryBackend {
    name: String,
    state: Mutex<State>,
    unavailable: AtomicBool,
    calls: AtomicU64,
    min_part_size: u64,
}

impl MemoryBackend {
    /// An empty backend; `name` shows in [`Backend::describe`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(State::default()),
            unavailable: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            min_part_size: multipart::MIN_PART_SIZE,
        }
    }

    /// Sets the minimum size of every part but the last (S3: 5 MiB, the default).
    #[must_use]
    pub fn with_min_part_size(mut self, bytes: u64) -> Self {
        self.min_part_size = bytes;
        self
    }

    /// While `true`, every operation fails with [`StoreError::Unavailable`]
    /// and changes nothing, as a region that is down.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// How many operations were called (including failed ones): lets a test
    /// assert that a request never reached this region.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The stored keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// The bytes of a stored object.
    pub fn object_bytes(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.get(key).map(|o| o.data.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check_available()
    }

    /// Checked again after a body was read: a region that went down
    /// meanwhile stores nothing.
    fn check_available(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(format!(
                "memory backend {} is set unavailable",
                self.name
            )))
        } else {
            Ok(())
        }
    }

    fn upload<'a>(
        state: &'a mut State,
        key: &str,
        upload_id: &str,
    ) -> Result<&'a mut Upload, StoreError> {
        match state.uploads.get_mut(upload_id) {
            Some(u) if u.key == key => Ok(u),
            _ => Err(StoreError::no_such_upload(upload_id)),
        }
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::invalid_key(key, "empty key"));
    }
    if key.len() > crate::MAX_STORED_KEY_BYTES {
        return Err(StoreError::invalid_key(
            key,
            format!(
                "longer than {} bytes (1,024 for the key and 64 for a tenant prefix)",
                crate::MAX_STORED_KEY_BYTES
            ),
        ));
    }
    Ok(())
}

/// Reads and verifies a body (memory only: it is buffered).
async fn read_verified(
    body: Body,
    declared: Option<u64>,
    expected: &Checksums,
) -> Result<(Bytes, checksum::Digests), StoreError> {
    let mut hasher = BodyHasher::new(expected)?;
    let declared = body.len_hint().or(declared);
    let mut buf = BytesMut::new();
    let mut stream = body.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| StoreError::Unavailable {
            message: "request body failed".into(),
            source: Some(e),
        })?;
        hasher.update(&chunk);
        buf.extend_from_slice(&chunk);
    }
    let digests = hasher.finish();
    checksum::verify_ended(declared, expected, &digests)?;
    Ok((buf.freeze(), digests))
}

fn info_from(
    key: &str,
    meta: &PutMeta,
    size: u64,
    etag: String,
    checksums: Checksums,
) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size,
        etag,
        last_modified: SystemTime::now(),
        headers: meta.headers.clone(),
        checksums,
        version_id: None,
        sse: Default::default(),
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn describe(&self) -> BackendDescription {
        BackendDescription {
            kind: "memory",
            target: self.name.clone(),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        self.enter()?;
        check_key(key)?;
        let (data, digests) = read_verified(body, meta.content_length, &meta.checksums).await?;
        self.check_available()?;
        let checksums = digests.checksums.clone();
        let info = info_from(key, &meta, digests.len, digests.etag(), checksums.clone());
        let etag = info.etag.clone();
        let mut state = self.lock();
        if meta.create_only && state.objects.contains_key(key) {
            return Err(StoreError::precondition_failed(key));
        }
        state
            .objects
            .insert(key.to_owned(), StoredObject { data, info });
        Ok(PutOutput {
            etag,
            checksums,
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        self.enter()?;
        let obj = self
            .lock()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::not_found(key))?;
        let size = obj.info.size;
        let (data, content_range) = match range {
            Some(r) => {
                let (start, end) = r.resolve(size)?;
                (
                    obj.data.slice(start as usize..=end as usize),
                    Some((start, end, size)),
                )
            }
            None => (obj.data, None),
        };
        Ok(GetOutput {
            info: obj.info,
            body: Body::from_bytes(data),
            content_range,
        })
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.enter()?;
        self.lock()
            .objects
            .get(key)
            .map(|o| o.info.clone())
            .ok_or_else(|| StoreError::not_found(key))
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.enter()?;
        check_key(key)?;
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        self.enter()?;
        let mut lister = Lister::new(&request)?;
        let state = self.lock();
        let from = lister.seek_from().to_owned();
        for (key, obj) in state.objects.range(from..) {
            if !key.starts_with(lister.prefix()) {
                break;
            }
            let summary = || {
                Ok(Some(ObjectSummary {
                    key: key.clone(),
                    size: obj.info.size,
                    etag: obj.info.etag.clone(),
                    last_modified: obj.info.last_modified,
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
        self.enter()?;
        check_key(dst_key)?;
        let mut state = self.lock();
        let src = state
            .objects
            .get(src_key)
            .cloned()
            .ok_or_else(|| StoreError::not_found(src_key))?;
        let mut info = match meta {
            Some(meta) => info_from(
                dst_key,
                &meta,
                src.info.size,
                src.info.etag.clone(),
                src.info.checksums.clone(),
            ),
            None => src.info.clone(),
        };
        info.key = dst_key.to_owned();
        info.last_modified = SystemTime::now();
        let out = PutOutput {
            etag: info.etag.clone(),
            checksums: info.checksums.clone(),
            version_id: None,
            sse: Default::default(),
        };
        state.objects.insert(
            dst_key.to_owned(),
            StoredObject {
                data: src.data,
                info,
            },
        );
        Ok(out)
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        self.enter()?;
        check_key(key)?;
        let id = multipart::new_upload_id();
        self.lock().uploads.insert(
            id.clone(),
            Upload {
                key: key.to_owned(),
                meta,
                initiated: SystemTime::now(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        self.enter()?;
        multipart::check_part_number(part.part_number)?;
        Self::upload(&mut self.lock(), part.key, part.upload_id)?;
        let (data, digests) = read_verified(part.body, None, &part.checksums).await?;
        self.check_available()?;
        let record = PartRecord {
            part_number: part.part_number,
            md5: digests.md5,
            size: digests.len,
            checksums: digests.checksums,
            last_modified_ms: multipart::to_millis(SystemTime::now()),
        };
        let info = record.info();
        let mut state = self.lock();
        let upload = Self::upload(&mut state, part.key, part.upload_id)?;
        upload.parts.insert(part.part_number, (record, data));
        Ok(info)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        self.enter()?;
        let mut state = self.lock();
        let upload = Self::upload(&mut state, key, upload_id)?;
        let records = upload.part_records();
        let (chosen, etag) = multipart::select_parts(&records, &parts, self.min_part_size)?;
        let mut data = BytesMut::new();
        for p in &chosen {
            data.extend_from_slice(&upload.parts[&p.part_number].1);
        }
        let info = info_from(
            key,
            &upload.meta,
            data.len() as u64,
            etag.clone(),
            Checksums::default(),
        );
        state.uploads.remove(upload_id);
        state.objects.insert(
            key.to_owned(),
            StoredObject {
                data: data.freeze(),
                info,
            },
        );
        Ok(PutOutput {
            etag,
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.enter()?;
        let mut state = self.lock();
        Self::upload(&mut state, key, upload_id)?;
        state.uploads.remove(upload_id);
        Ok(())
    }

    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.enter()?;
        let mut state = self.lock();
        let upload = Self::upload(&mut state, query.key, query.upload_id)?;
        let records = upload.part_records();
        Ok(multipart::parts_page(
            &records,
            query.part_number_marker,
            query.max_parts,
        ))
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        self.enter()?;
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
        self.enter()?;
        Ok(None)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.enter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{execute, OpKind, Operation, Outcome};

    #[tokio::test]
    async fn unavailable_changes_nothing() {
        let m = MemoryBackend::new("us");
        m.put_object("acme/a", Body::from("1"), PutMeta::default())
            .await
            .unwrap();
        m.set_unavailable(true);
        let err = m
            .put_object("acme/b", Body::from("2"), PutMeta::default())
            .await
            .unwrap_err();
        assert!(err.is_unavailable());
        assert!(m
            .delete_object("acme/a")
            .await
            .unwrap_err()
            .is_unavailable());
        assert!(m
            .list_objects(ListRequest::new(""))
            .await
            .unwrap_err()
            .is_unavailable());
        assert!(m.health().await.is_err());
        assert_eq!(m.keys(), ["acme/a"]);
        assert_eq!(m.calls(), 5);
        m.set_unavailable(false);
        m.health().await.unwrap();
        assert_eq!(m.object_bytes("acme/a").unwrap(), "1");
    }

    #[tokio::test]
    async fn every_operation_through_execute() {
        let m = MemoryBackend::new("eu").with_min_part_size(1);
        let run = |op: Operation| {
            let kind = op.kind();
            let m = &m;
            async move {
                let out = execute(m, op).await.unwrap();
                assert_eq!(out.kind(), kind);
                out
            }
        };
        let put = Operation::Put {
            key: "acme/a".into(),
            body: Body::from("hello"),
            meta: Default::default(),
        };
        assert_eq!(put.key(), Some("acme/a"));
        run(put).await;
        let Outcome::Get(g) = run(Operation::Get {
            key: "acme/a".into(),
            range: Some(ByteRange::Suffix { len: 2 }),
            sse: Default::default(),
        })
        .await
        else {
            panic!()
        };
        assert_eq!(g.body.collect().await.unwrap(), "lo");
        run(Operation::Head {
            key: "acme/a".into(),
            sse: Default::default(),
        })
        .await;
        let copy = Operation::Copy {
            src_key: "acme/a".into(),
            dst_key: "acme/b".into(),
            meta: Some(Box::new(PutMeta::with_content_type("text/plain"))),
            sse: Default::default(),
        };
        assert_eq!(
            (copy.key(), copy.source_key(), copy.content_type()),
            (Some("acme/b"), Some("acme/a"), Some("text/plain"))
        );
        run(copy).await;
        let list = Operation::List {
            request: ListRequest::new("acme/"),
        };
        assert_eq!((list.key(), list.prefix()), (None, Some("acme/")));
        let Outcome::List(page) = run(list).await else {
            panic!()
        };
        assert_eq!(page.objects.len(), 2);
        run(Operation::Delete {
            key: "acme/b".into(),
        })
        .await;
        let Outcome::CreateMultipart(id) = run(Operation::CreateMultipart {
            key: "acme/m".into(),
            meta: Default::default(),
        })
        .await
        else {
            panic!()
        };
        let Outcome::UploadPart(p) = run(Operation::UploadPart {
            key: "acme/m".into(),
            upload_id: id.clone(),
            part_number: 1,
            body: Body::from("part"),
            checksums: Default::default(),
            sse: Default::default(),
        })
        .await
        else {
            panic!()
        };
        let Outcome::ListParts(parts) = run(Operation::ListParts {
            key: "acme/m".into(),
            upload_id: id.clone(),
            part_number_marker: None,
            max_parts: None,
        })
        .await
        else {
            panic!()
        };
        assert_eq!(parts.parts.len(), 1);
        let Outcome::ListMultipartUploads(ups) = run(Operation::ListMultipartUploads {
            prefix: "acme/".into(),
        })
        .await
        else {
            panic!()
        };
        assert_eq!(ups.len(), 1);
        let complete = Operation::CompleteMultipart {
            key: "acme/m".into(),
            upload_id: id.clone(),
            parts: vec![CompletedPart {
                part_number: 1,
                etag: p.etag,
                checksums: Default::default(),
            }],
        };
        assert_eq!(complete.upload_id(), Some(id.as_str()));
        run(complete).await;
        let id2 = m
            .create_multipart("acme/n", PutMeta::default())
            .await
            .unwrap();
        run(Operation::AbortMultipart {
            key: "acme/n".into(),
            upload_id: id2,
        })
        .await;
        assert_eq!(m.keys(), ["acme/a", "acme/m"]);

        assert!(OpKind::Put.is_write() && !OpKind::Get.is_write() && !OpKind::ListParts.is_write());
        assert_eq!(OpKind::ALL.len(), 12);
        let names: std::collections::BTreeSet<_> = OpKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 12);
        assert_eq!(OpKind::CompleteMultipart.to_string(), "complete_multipart");
    }
}
