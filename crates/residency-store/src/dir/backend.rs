//! The [`Backend`] calls of [`DirBackend`].

use std::fs;
use std::io::{self, ErrorKind};
use std::time::SystemTime;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncSeekExt;

use super::key::check_key;
use super::stored::{
    read_json, stored_meta, sync_dir, write_json_durable, StoredMeta, UploadRecord,
};
use super::walk::{walk, walk_start};
use super::{blocking, DirBackend, HIDDEN, READ_CHUNK};
use crate::backend::Backend;
use crate::body::Body;
use crate::error::{BoxError, StoreError};
use crate::listing::Lister;
use crate::multipart::{self, from_millis, to_millis, PartRecord};
use crate::object::{
    BackendDescription, Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo,
    PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;

#[async_trait]
impl Backend for DirBackend {
    fn describe(&self) -> BackendDescription {
        BackendDescription {
            kind: "dir",
            target: self.root.display().to_string(),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        check_key(key)?;
        self.precheck_conflict(key).await?;
        let (tmp, digests) = self
            .receive(body, meta.content_length, &meta.checksums)
            .await?;
        let stored = stored_meta(
            digests.len,
            digests.etag(),
            &meta,
            digests.checksums.clone(),
        );
        self.commit(key, tmp, &stored, None, meta.create_only)
            .await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: stored.checksums,
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        if check_key(key).is_err() {
            return Err(StoreError::not_found(key));
        }
        let guard = self.namespace.read().await;
        let (root, k, path) = (self.root.clone(), key.to_owned(), self.data_path(key));
        let (file, info) = blocking(move || {
            let file = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    return Err(StoreError::not_found(&k))
                }
                Err(e) => return Err(e.into()),
            };
            let m = file.metadata()?;
            if !m.is_file() {
                return Err(StoreError::not_found(&k));
            }
            let info = DirBackend::load_info(&root, &k, &m)?;
            Ok((file, info))
        })
        .await?;
        drop(guard);
        let size = info.size;
        let (start, end, content_range) = match range {
            Some(r) => {
                let (s, e) = r.resolve(size)?;
                (s, e + 1, Some((s, e, size)))
            }
            None => (0, size, None),
        };
        let mut file = tokio::fs::File::from_std(file);
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        let len = end - start;
        let reader = tokio::io::AsyncReadExt::take(file, len);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
            .map(|r| r.map_err(|e| Box::new(e) as BoxError));
        Ok(GetOutput {
            info,
            body: Body::from_stream(stream, Some(len)),
            content_range,
        })
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        if check_key(key).is_err() {
            return Err(StoreError::not_found(key));
        }
        let _guard = self.namespace.read().await;
        let (root, k, path) = (self.root.clone(), key.to_owned(), self.data_path(key));
        blocking(move || match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(DirBackend::load_info(&root, &k, &m)?),
            Ok(_) => Err(StoreError::not_found(&k)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Err(StoreError::not_found(&k))
            }
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let _guard = self.namespace.write().await;
        let (root, data, meta) = (self.root.clone(), self.data_path(key), self.meta_path(key));
        blocking(move || {
            match fs::symlink_metadata(&data) {
                Ok(m) if m.is_file() || m.file_type().is_symlink() => fs::remove_file(&data)?,
                // A directory of other keys, or nothing: no such object.
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    return Ok(())
                }
                Err(e) => return Err(e.into()),
            }
            match fs::remove_file(&meta) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            // Drop directories the key leaves empty, so that `a` can later
            // be an object again once `a/b` is gone.
            let meta_root = root.join(HIDDEN).join("meta");
            for (mut p, stop) in [(data, root.clone()), (meta, meta_root)] {
                while p.pop() && p != stop && p.starts_with(&stop) {
                    if fs::remove_dir(&p).is_err() {
                        break;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        let mut lister = Lister::new(&request)?;
        if lister.is_stopped() {
            return Ok(lister.finish());
        }
        let Some(start) = walk_start(&request.prefix).map(str::to_owned) else {
            return Ok(lister.finish());
        };
        let root = self.root.clone();
        blocking(move || {
            walk(&root, &start, &mut lister, false)?;
            Ok(lister.finish())
        })
        .await
    }

    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError> {
        check_key(dst_key)?;
        self.precheck_conflict(dst_key).await?;
        let src = self.get_object(src_key, None).await?;
        let stored = match meta {
            Some(m) => stored_meta(
                src.info.size,
                src.info.etag.clone(),
                &m,
                src.info.checksums.clone(),
            ),
            None => StoredMeta {
                size: src.info.size,
                etag: src.info.etag.clone(),
                last_modified_ms: to_millis(SystemTime::now()),
                headers: src.info.headers.clone(),
                checksums: src.info.checksums.clone(),
            },
        };
        let (tmp, digests) = self
            .receive(src.body, Some(src.info.size), &Checksums::default())
            .await?;
        // A multipart source keeps its `-N` ETag, as in S3; otherwise the
        // fresh MD5 guards against a source replaced while we copied.
        let stored = if stored.etag.contains('-') {
            stored
        } else {
            StoredMeta {
                etag: digests.etag(),
                ..stored
            }
        };
        self.commit(dst_key, tmp, &stored, None, false).await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: stored.checksums,
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        check_key(key)?;
        self.precheck_conflict(key).await?;
        let id = multipart::new_upload_id();
        let record = UploadRecord {
            key: key.to_owned(),
            initiated_ms: to_millis(SystemTime::now()),
            headers: meta.headers,
        };
        let staging = self.new_temp("upload");
        let dir = self.upload_dir(&id)?;
        let sp = staging.path.clone();
        blocking(move || {
            fs::create_dir(&sp)?;
            write_json_durable(&sp.join("upload.json"), &record)?;
            fs::rename(&sp, &dir)?;
            Ok(())
        })
        .await?;
        // Renamed into place: nothing to remove (remove_file on a dir is a no-op error).
        drop(staging);
        Ok(id)
    }

    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        multipart::check_part_number(part.part_number)?;
        self.read_upload(part.key, part.upload_id).await?;
        let (mut tmp, digests) = self.receive(part.body, None, &part.checksums).await?;
        let record = PartRecord {
            part_number: part.part_number,
            md5: digests.md5,
            size: digests.len,
            checksums: digests.checksums.clone(),
            last_modified_ms: to_millis(SystemTime::now()),
        };
        let mut json_tmp = self.new_temp("part");
        {
            let (p, r) = (json_tmp.path.clone(), record.clone());
            blocking(move || Ok(write_json_durable(&p, &r)?)).await?;
        }
        let dir = self.upload_dir(part.upload_id)?;
        let (data_path, json_path) = Self::part_paths(&dir, part.part_number);
        let _guard = self.namespace.write().await;
        let (dt, jt, id) = (
            tmp.path.clone(),
            json_tmp.path.clone(),
            part.upload_id.to_owned(),
        );
        blocking(move || {
            if !dir.is_dir() {
                return Err(StoreError::no_such_upload(&id));
            }
            fs::rename(&dt, &data_path)?;
            fs::rename(&jt, &json_path)?;
            sync_dir(&dir)?;
            Ok(())
        })
        .await?;
        tmp.persisted = true;
        json_tmp.persisted = true;
        Ok(record.info())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        let upload = self.read_upload(key, upload_id).await?;
        let stored_parts = self.read_parts(upload_id).await?;
        let (chosen, etag) = multipart::select_parts(&stored_parts, &parts, self.min_part_size)?;
        let chosen: Vec<PartRecord> = chosen.into_iter().cloned().collect();
        let dir = self.upload_dir(upload_id)?;
        let tmp = self.new_temp("body");
        let tp = tmp.path.clone();
        let total = blocking(move || {
            let mut out = fs::File::create(&tp)?;
            let mut total = 0u64;
            for p in &chosen {
                let (data_path, _) = DirBackend::part_paths(&dir, p.part_number);
                let mut part = fs::File::open(&data_path)?;
                let n = io::copy(&mut part, &mut out)?;
                if n != p.size {
                    // Replaced while we read it: the caller's view is stale.
                    return Err(StoreError::InvalidPart {
                        part_number: p.part_number,
                    });
                }
                total += n;
            }
            out.sync_all()?;
            Ok(total)
        })
        .await?;
        let stored = StoredMeta {
            size: total,
            etag,
            last_modified_ms: to_millis(SystemTime::now()),
            headers: upload.headers,
            checksums: Default::default(),
        };
        self.commit(key, tmp, &stored, Some(upload_id), false)
            .await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.read_upload(key, upload_id).await?;
        let dir = self.upload_dir(upload_id)?;
        let trash = self.new_temp("trash");
        let (tp, id) = (trash.path.clone(), upload_id.to_owned());
        {
            let _guard = self.namespace.write().await;
            let tp = tp.clone();
            blocking(move || match fs::rename(&dir, &tp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::no_such_upload(&id)),
                Err(e) => Err(e.into()),
            })
            .await?;
        }
        blocking(move || {
            let _ = fs::remove_dir_all(&tp);
            Ok(())
        })
        .await
    }

    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.read_upload(query.key, query.upload_id).await?;
        let parts = self.read_parts(query.upload_id).await?;
        Ok(multipart::parts_page(
            &parts,
            query.part_number_marker,
            query.max_parts,
        ))
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        let dir = self.uploads_dir();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let Ok(id) = entry.file_name().into_string() else {
                    continue;
                };
                if !multipart::is_valid_upload_id(&id) {
                    continue;
                }
                match read_json::<UploadRecord>(&entry.path().join("upload.json")) {
                    Ok(u) if u.key.starts_with(&prefix) => out.push(UploadInfo {
                        key: u.key,
                        upload_id: id,
                        initiated: from_millis(u.initiated_ms),
                    }),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            out.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
            Ok(out)
        })
        .await
    }

    async fn location(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn health(&self) -> Result<(), StoreError> {
        let root = self.root.clone();
        let probe = self.new_temp("health");
        let p = probe.path.clone();
        let res = blocking(move || {
            if !root.is_dir() {
                return Err(StoreError::unavailable(format!(
                    "{} is not a directory",
                    root.display()
                )));
            }
            write_json_durable(&p, &"ok").map_err(|e| StoreError::Unavailable {
                message: format!("{} is not writable", root.display()),
                source: Some(Box::new(e)),
            })
        })
        .await;
        drop(probe);
        res
    }
}
