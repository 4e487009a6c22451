//! The embedded default backend: one local directory per region.
//!
//! Files: `key.rs` (which keys a directory can hold), `stored.rs` (the JSON
//! kept beside objects and uploads), `write.rs` (receiving a body and
//! renaming it into place), `uploads.rs` (multipart uploads on disk),
//! `walk.rs` (listing in S3 key order), `backend.rs` (the [`Backend`]
//! calls).
//!
//! [`Backend`]: crate::Backend

mod backend;
mod key;
mod stored;
mod uploads;
mod walk;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::RwLock;

use crate::error::StoreError;
use crate::multipart;
use write::TempFile;

/// The hidden tree's name at the root; no key may start with it.
const HIDDEN: &str = ".residency";
/// Temporary files older than this are left-overs of a crash and removed at open.
const STALE_TMP: Duration = Duration::from_secs(3600);
/// Read size when streaming a file out.
const READ_CHUNK: usize = 64 * 1024;

/// The embedded default backend: one local directory per region.
///
/// Objects are plain files named by their key, so a person can look inside
/// (`data/eu/acme/tickets/1.json`). Everything else lives in a hidden tree
/// that listings never show and keys may not name:
///
/// ```text
/// <root>/<key>                              object bytes
/// <root>/.residency/meta/<key>              JSON: size, ETag, content type, user metadata, checksums
/// <root>/.residency/tmp/                    writes in progress (same filesystem, renamed into place)
/// <root>/.residency/uploads/<id>/           a multipart upload: upload.json, part-00001{,.json}, ...
/// ```
///
/// Writes are atomic: the body streams into a temporary file while it is
/// hashed, is checked against the client's checksums, fsynced, then renamed
/// over the key (metadata first, then data, under a short namespace lock, then
/// the directory is fsynced). A failed or abandoned write leaves nothing behind.
///
/// Limits that S3 does not have: a key cannot both be an object and a
/// "directory" of other keys (`a` and `a/b`), keys may not contain empty, `.`
/// or `..` segments, and one directory should be served by one process.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use residency_store::{Backend, Body, DirBackend, PutMeta};
/// let tmp = tempfile::tempdir().unwrap();
/// let eu = DirBackend::open(tmp.path().join("eu")).await.unwrap();
/// eu.put_object("acme/tickets/1.json", Body::from("{}"), PutMeta::with_content_type("application/json"))
///     .await
///     .unwrap();
/// assert!(tmp.path().join("eu/acme/tickets/1.json").is_file());
/// # });
/// ```
#[derive(Debug)]
pub struct DirBackend {
    root: PathBuf,
    /// Held shared while a reader opens an object and its metadata, and
    /// exclusively while renames change the namespace, so a reader never pairs
    /// one version's bytes with another's metadata. Never held while a body streams.
    namespace: RwLock<()>,
    min_part_size: u64,
}

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e)))?
}

impl DirBackend {
    /// Opens (creating if needed) the directory `root`, and removes stale
    /// temporary files left by a crash.
    ///
    /// # Errors
    /// `Io` when the directory cannot be created.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root: PathBuf = root.into();
        let r = root.clone();
        blocking(move || {
            for sub in ["meta", "tmp", "uploads"] {
                fs::create_dir_all(r.join(HIDDEN).join(sub))?;
            }
            let now = SystemTime::now();
            for entry in fs::read_dir(r.join(HIDDEN).join("tmp"))? {
                let entry = entry?;
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP)
                    .unwrap_or(false);
                if old {
                    let p = entry.path();
                    let _ = fs::remove_file(&p).or_else(|_| fs::remove_dir_all(&p));
                }
            }
            Ok(())
        })
        .await?;
        Ok(Self {
            root,
            namespace: RwLock::new(()),
            min_part_size: multipart::MIN_PART_SIZE,
        })
    }

    /// Sets the minimum size of every part but the last (S3: 5 MiB, the default).
    #[must_use]
    pub fn with_min_part_size(mut self, bytes: u64) -> Self {
        self.min_part_size = bytes;
        self
    }

    /// The directory this backend stores into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(HIDDEN).join("meta").join(key)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(HIDDEN).join("tmp")
    }

    fn uploads_dir(&self) -> PathBuf {
        self.root.join(HIDDEN).join("uploads")
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, StoreError> {
        if multipart::is_valid_upload_id(upload_id) {
            Ok(self.uploads_dir().join(upload_id))
        } else {
            Err(StoreError::no_such_upload(upload_id))
        }
    }

    fn new_temp(&self, what: &str) -> TempFile {
        TempFile {
            path: self
                .tmp_dir()
                .join(format!("{what}-{}", multipart::new_upload_id())),
            persisted: false,
        }
    }
}

#[cfg(test)]
mod tests;
