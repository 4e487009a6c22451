//! Receiving a body into a temporary file and renaming it into place.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::key::{conflict, is_conflict};
use super::stored::{sync_dir, write_json_durable, StoredMeta};
use super::{blocking, DirBackend};
use crate::body::Body;
use crate::checksum::{self, BodyHasher, Digests};
use crate::error::{BoxError, StoreError};
use crate::object::Checksums;

/// A file in the tmp dir, removed on drop unless it was renamed into place.
/// Dropping also covers a cancelled request (the future dropped mid-body).
pub(super) struct TempFile {
    pub(super) path: PathBuf,
    pub(super) persisted: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl DirBackend {
    /// Fails early (before a body is read) when the key cannot be created
    /// because of an existing object or directory.
    pub(super) async fn precheck_conflict(&self, key: &str) -> Result<(), StoreError> {
        let root = self.root.clone();
        let k = key.to_owned();
        blocking(move || {
            let mut path = root.clone();
            let segs: Vec<&str> = k.split('/').collect();
            for (i, seg) in segs.iter().enumerate() {
                path.push(seg);
                match fs::symlink_metadata(&path) {
                    Ok(m) if i + 1 < segs.len() && !m.is_dir() => return Err(conflict(&k)),
                    Ok(m) if i + 1 == segs.len() && m.is_dir() => return Err(conflict(&k)),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
        .await
    }

    /// Streams `body` into a temporary file, hashing it; checks its length and
    /// checksums. On any error the temporary file is gone.
    pub(super) async fn receive(
        &self,
        body: Body,
        declared: Option<u64>,
        expected: &Checksums,
    ) -> Result<(TempFile, Digests), StoreError> {
        let mut hasher = BodyHasher::new(expected)?;
        let declared = body.len_hint().or(declared);
        let tmp = self.new_temp("body");
        let mut file = tokio::fs::File::create(&tmp.path).await?;
        let mut stream = body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_failed(e, declared, hasher.len()))?;
            hasher.update(&chunk);
            if let Some(d) = declared {
                if hasher.len() > d {
                    return Err(StoreError::IncompleteBody {
                        expected: d,
                        actual: hasher.len(),
                    });
                }
            }
            file.write_all(&chunk).await?;
        }
        let digests = hasher.finish();
        checksum::verify_ended(declared, expected, &digests)?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        Ok((tmp, digests))
    }

    /// Renames a received body and its metadata into place, atomically with
    /// respect to readers. With `upload`, the upload must still exist and is
    /// removed in the same step. With `create_only`, nothing is stored when
    /// an object has the key (`PreconditionFailed`).
    pub(super) async fn commit(
        &self,
        key: &str,
        mut data: TempFile,
        meta: &StoredMeta,
        upload: Option<&str>,
        create_only: bool,
    ) -> Result<(), StoreError> {
        let mut meta_tmp = self.new_temp("meta");
        {
            let (p, m) = (meta_tmp.path.clone(), meta.clone());
            blocking(move || Ok(write_json_durable(&p, &m)?)).await?;
        }
        let upload_dir = upload.map(|id| self.upload_dir(id)).transpose()?;
        let trash = self.new_temp("trash");
        let _guard = self.namespace.write().await;
        let data_path = self.data_path(key);
        let meta_path = self.meta_path(key);
        let k = key.to_owned();
        let (dt, mt) = (data.path.clone(), meta_tmp.path.clone());
        let trash_path = trash.path.clone();
        let upload_id = upload.map(str::to_owned);
        blocking(move || {
            if let Some(dir) = &upload_dir {
                if !dir.is_dir() {
                    return Err(StoreError::no_such_upload(
                        upload_id.as_deref().unwrap_or(""),
                    ));
                }
            }
            let data_parent = data_path.parent().unwrap_or(Path::new("/")).to_owned();
            fs::create_dir_all(&data_parent).map_err(|e| {
                if is_conflict(&e) {
                    conflict(&k)
                } else {
                    e.into()
                }
            })?;
            if data_path.is_dir() {
                return Err(conflict(&k));
            }
            // Decided under the namespace lock every writer of this
            // directory (in this process) holds.
            if create_only && data_path.exists() {
                return Err(StoreError::precondition_failed(&k));
            }
            if let Some(p) = meta_path.parent() {
                fs::create_dir_all(p)?;
            }
            fs::rename(&mt, &meta_path)?;
            fs::rename(&dt, &data_path).map_err(|e| {
                if is_conflict(&e) {
                    conflict(&k)
                } else {
                    e.into()
                }
            })?;
            sync_dir(&data_parent)?;
            if let Some(p) = meta_path.parent() {
                sync_dir(p)?;
            }
            if let Some(dir) = &upload_dir {
                // Out of the namespace at once; emptied below, off the lock.
                fs::rename(dir, &trash_path)?;
            }
            Ok(())
        })
        .await?;
        data.persisted = true;
        meta_tmp.persisted = true;
        drop(_guard);
        if upload.is_some() {
            let p = trash.path.clone();
            blocking(move || {
                let _ = fs::remove_dir_all(p);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

pub(super) fn body_failed(e: BoxError, declared: Option<u64>, actual: u64) -> StoreError {
    match declared {
        Some(expected) => {
            tracing::debug!(error = %e, "request body failed");
            StoreError::IncompleteBody { expected, actual }
        }
        None => StoreError::Io(io::Error::other(e)),
    }
}
