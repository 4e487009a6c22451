//! The embedded default backend: one local directory per region.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::RwLock;

use crate::backend::Backend;
use crate::body::Body;
use crate::checksum::{self, BodyHasher, Digests};
use crate::error::{BoxError, StoreError};
use crate::listing::{DirAction, Flow, Lister};
use crate::multipart::{self, from_millis, to_millis, PartRecord};
use crate::object::{
    BackendDescription, Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo,
    ObjectSummary, PartInfo, PartsPage, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;

/// The hidden tree's name at the root; no key may start with it.
const HIDDEN: &str = ".residency";
/// Temporary files older than this are left-overs of a crash and removed at open.
const STALE_TMP: Duration = Duration::from_secs(3600);
/// Read size when streaming a file out.
const READ_CHUNK: usize = 64 * 1024;

/// The headers kept with an object or an upload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Headers {
    content_type: Option<String>,
    user_metadata: BTreeMap<String, String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
}

impl From<&PutMeta> for Headers {
    fn from(m: &PutMeta) -> Self {
        Self {
            content_type: m.content_type.clone(),
            user_metadata: m.user_metadata.clone(),
            cache_control: m.cache_control.clone(),
            content_disposition: m.content_disposition.clone(),
            content_encoding: m.content_encoding.clone(),
            content_language: m.content_language.clone(),
        }
    }
}

/// `<root>/.residency/meta/<key>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMeta {
    size: u64,
    etag: String,
    last_modified_ms: u64,
    #[serde(flatten)]
    headers: Headers,
    #[serde(default)]
    checksums: Checksums,
}

impl StoredMeta {
    fn info(&self, key: &str) -> ObjectInfo {
        let h = self.headers.clone();
        ObjectInfo {
            key: key.to_owned(),
            size: self.size,
            etag: self.etag.clone(),
            last_modified: from_millis(self.last_modified_ms),
            content_type: h.content_type,
            user_metadata: h.user_metadata,
            cache_control: h.cache_control,
            content_disposition: h.content_disposition,
            content_encoding: h.content_encoding,
            content_language: h.content_language,
            checksums: self.checksums.clone(),
            version_id: None,
        }
    }
}

/// `<root>/.residency/uploads/<id>/upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadRecord {
    key: String,
    initiated_ms: u64,
    headers: Headers,
}

/// A file in the tmp dir, removed on drop unless it was renamed into place.
/// Dropping also covers a cancelled request (the future dropped mid-body).
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

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

/// Checks that `key` names a file inside the root and outside the hidden tree.
///
/// # Errors
/// `InvalidKey` with the reason.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| Err(StoreError::invalid_key(key, reason));
    if key.is_empty() {
        return bad("empty key");
    }
    if key.len() > crate::MAX_STORED_KEY_BYTES {
        return bad(&format!(
            "longer than {} bytes (1,024 for the key and 64 for a tenant prefix)",
            crate::MAX_STORED_KEY_BYTES
        ));
    }
    if key.contains('\0') {
        return bad("contains a NUL byte");
    }
    if key.starts_with('/') {
        return bad("absolute path");
    }
    for seg in key.split('/') {
        match seg {
            "" => return bad("empty path segment ('//' or a trailing '/')"),
            "." | ".." => return bad("'.' or '..' path segment"),
            s if s.len() > 255 => return bad("path segment longer than 255 bytes"),
            _ => {}
        }
    }
    if key.split('/').next() == Some(HIDDEN) {
        return bad("collides with the backend's hidden .residency tree");
    }
    Ok(())
}

fn conflict(key: &str) -> StoreError {
    StoreError::invalid_key(
        key,
        "conflicts with an existing object: a directory backend cannot hold both 'a' and 'a/...'",
    )
}

fn is_conflict(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::DirectoryNotEmpty
            | ErrorKind::AlreadyExists
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
}

fn write_json_durable<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut f = fs::File::create(path)?;
    io::Write::write_all(&mut f, &bytes)?;
    f.sync_all()
}

/// MD5 of a whole file: only when metadata is missing (a crash between the
/// two renames, or a file a person copied in by hand).
fn md5_file(path: &Path) -> io::Result<[u8; 16]> {
    let mut h = BodyHasher::new(&Checksums::default()).map_err(io::Error::other)?;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish().md5);
        }
        h.update(&buf[..n]);
    }
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

    /// Fails early (before a body is read) when the key cannot be created
    /// because of an existing object or directory.
    async fn precheck_conflict(&self, key: &str) -> Result<(), StoreError> {
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
    async fn receive(
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
        if let Some(expected) = declared {
            if expected != digests.len {
                return Err(StoreError::IncompleteBody {
                    expected,
                    actual: digests.len,
                });
            }
        }
        checksum::verify(expected, &digests)?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        Ok((tmp, digests))
    }

    /// Renames a received body and its metadata into place, atomically with
    /// respect to readers. With `upload`, the upload must still exist and is
    /// removed in the same step.
    async fn commit(
        &self,
        key: &str,
        mut data: TempFile,
        meta: &StoredMeta,
        upload: Option<&str>,
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

    /// The object's info, read from its metadata; rebuilt from the file when
    /// the metadata is missing or stale.
    fn load_info(root: &Path, key: &str, file_meta: &fs::Metadata) -> io::Result<ObjectInfo> {
        let meta_path = root.join(HIDDEN).join("meta").join(key);
        match read_json::<StoredMeta>(&meta_path) {
            Ok(m) if m.size == file_meta.len() => Ok(m.info(key)),
            _ => {
                let md5 = md5_file(&root.join(key))?;
                let m = StoredMeta {
                    size: file_meta.len(),
                    etag: checksum::etag_of(&md5),
                    last_modified_ms: to_millis(file_meta.modified().unwrap_or(SystemTime::now())),
                    headers: Headers::default(),
                    checksums: Checksums::default(),
                };
                Ok(m.info(key))
            }
        }
    }

    async fn read_upload(&self, key: &str, upload_id: &str) -> Result<UploadRecord, StoreError> {
        let path = self.upload_dir(upload_id)?.join("upload.json");
        let (k, id) = (key.to_owned(), upload_id.to_owned());
        blocking(move || match read_json::<UploadRecord>(&path) {
            Ok(u) if u.key == k => Ok(u),
            Ok(_) => Err(StoreError::no_such_upload(&id)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::no_such_upload(&id)),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn read_parts(&self, upload_id: &str) -> Result<BTreeMap<u32, PartRecord>, StoreError> {
        let dir = self.upload_dir(upload_id)?;
        let id = upload_id.to_owned();
        blocking(move || {
            let mut parts = BTreeMap::new();
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(StoreError::no_such_upload(&id))
                }
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with("part-") && name.ends_with(".json") {
                    match read_json::<PartRecord>(&entry.path()) {
                        Ok(p) => {
                            parts.insert(p.part_number, p);
                        }
                        // Vanished under us (replaced or aborted): skip.
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(parts)
        })
        .await
    }

    fn part_paths(dir: &Path, part_number: u32) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("part-{part_number:05}")),
            dir.join(format!("part-{part_number:05}.json")),
        )
    }
}

fn body_failed(e: BoxError, declared: Option<u64>, actual: u64) -> StoreError {
    match declared {
        Some(expected) => {
            tracing::debug!(error = %e, "request body failed");
            StoreError::IncompleteBody { expected, actual }
        }
        None => StoreError::Io(io::Error::other(e)),
    }
}

/// How a walk of one subtree ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walked {
    /// Keep walking.
    Continue,
    /// In first-only mode: a key was offered for the subtree's common prefix.
    Found,
    /// The page is full.
    Stop,
}

/// Walks `rel` (a directory key ending in `/`, or `""` for the root) in S3
/// key order, feeding the lister. In `first_only` mode it stops after the
/// first key offered (the subtree folds into one common prefix).
fn walk(
    root: &Path,
    rel: &str,
    lister: &mut Lister,
    first_only: bool,
) -> Result<Walked, StoreError> {
    let entries = match sorted_entries(root, rel) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            return Ok(Walked::Continue)
        }
        Err(e) => return Err(e.into()),
    };
    for (sort_name, is_dir) in entries {
        let key = format!("{rel}{sort_name}");
        if is_dir {
            let walked = match lister.dir_action(&key) {
                DirAction::Skip => Walked::Continue,
                DirAction::Descend => walk(root, &key, lister, first_only)?,
                DirAction::FirstOnly if first_only => walk(root, &key, lister, true)?,
                DirAction::FirstOnly => match walk(root, &key, lister, true)? {
                    Walked::Found => Walked::Continue,
                    w => w,
                },
            };
            if walked != Walked::Continue {
                return Ok(walked);
            }
        } else {
            if lister.skips(&key) {
                continue;
            }
            let path = root.join(&key);
            let flow = lister.offer(&key, || match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => {
                    let info = DirBackend::load_info(root, &key, &m)?;
                    Ok(Some(ObjectSummary {
                        key: key.clone(),
                        size: info.size,
                        etag: info.etag,
                        last_modified: info.last_modified,
                    }))
                }
                Ok(_) => Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            })?;
            if flow == Flow::Stop {
                return Ok(Walked::Stop);
            }
            if first_only {
                return Ok(Walked::Found);
            }
        }
    }
    Ok(Walked::Continue)
}

/// Entries of a directory as `(name or name + "/", is_dir)`, sorted so that
/// the walk yields keys in byte order (`a-c` < `a/` < `a0`). Symlinks, other
/// special files and names that are not UTF-8 are not objects.
fn sorted_entries(root: &Path, rel: &str) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if rel.is_empty() && name == HIDDEN {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            out.push((format!("{name}/"), true));
        } else if ft.is_file() {
            out.push((name, false));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The directory to start a listing from: the part of `prefix` up to its last
/// `/`, when that is a path keys can live under.
fn walk_start(prefix: &str) -> Option<&str> {
    let rel = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => return Some(""),
    };
    let segs: Vec<&str> = rel[..rel.len() - 1].split('/').collect();
    let ok = segs.iter().all(|s| !matches!(*s, "" | "." | ".."))
        && segs.first() != Some(&HIDDEN)
        && !rel.contains('\0');
    ok.then_some(rel)
}

fn stored_meta(digests_len: u64, etag: String, meta: &PutMeta, checksums: Checksums) -> StoredMeta {
    StoredMeta {
        size: digests_len,
        etag,
        last_modified_ms: to_millis(SystemTime::now()),
        headers: Headers::from(meta),
        checksums,
    }
}

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
        self.commit(key, tmp, &stored, None).await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: stored.checksums,
            version_id: None,
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
                headers: Headers {
                    content_type: src.info.content_type.clone(),
                    user_metadata: src.info.user_metadata.clone(),
                    cache_control: src.info.cache_control.clone(),
                    content_disposition: src.info.content_disposition.clone(),
                    content_encoding: src.info.content_encoding.clone(),
                    content_language: src.info.content_language.clone(),
                },
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
        self.commit(dst_key, tmp, &stored, None).await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: stored.checksums,
            version_id: None,
        })
    }

    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        check_key(key)?;
        self.precheck_conflict(key).await?;
        let id = multipart::new_upload_id();
        let record = UploadRecord {
            key: key.to_owned(),
            initiated_ms: to_millis(SystemTime::now()),
            headers: Headers::from(&meta),
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

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        checksums: Checksums,
    ) -> Result<PartInfo, StoreError> {
        multipart::check_part_number(part_number)?;
        self.read_upload(key, upload_id).await?;
        let (mut tmp, digests) = self.receive(body, None, &checksums).await?;
        let record = PartRecord {
            part_number,
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
        let dir = self.upload_dir(upload_id)?;
        let (data_path, json_path) = Self::part_paths(&dir, part_number);
        let _guard = self.namespace.write().await;
        let (dt, jt, id) = (
            tmp.path.clone(),
            json_tmp.path.clone(),
            upload_id.to_owned(),
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
            checksums: Checksums::default(),
        };
        self.commit(key, tmp, &stored, Some(upload_id)).await?;
        Ok(PutOutput {
            etag: stored.etag,
            checksums: Checksums::default(),
            version_id: None,
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

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        part_number_marker: Option<u32>,
        max_parts: Option<u32>,
    ) -> Result<PartsPage, StoreError> {
        self.read_upload(key, upload_id).await?;
        let parts = self.read_parts(upload_id).await?;
        Ok(multipart::parts_page(&parts, part_number_marker, max_parts))
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_tenant_prefix_does_not_count_against_the_1024_byte_key() {
        let key = |n: usize| {
            let mut k = String::from("acme");
            while k.len() < n {
                let seg = (n - k.len() - 1).min(200);
                k.push('/');
                k.push_str(&"k".repeat(seg));
            }
            k
        };
        assert_eq!(key(5 + 1024).len(), 5 + 1024);
        assert!(check_key(&key(5 + 1024)).is_ok());
        assert!(check_key(&key(crate::MAX_STORED_KEY_BYTES)).is_ok());
        let long = key(crate::MAX_STORED_KEY_BYTES + 1);
        assert_eq!(long.len(), crate::MAX_STORED_KEY_BYTES + 1);
        let e = check_key(&long).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    use super::*;
    use bytes::Bytes;

    async fn backend() -> (tempfile::TempDir, DirBackend) {
        let tmp = tempfile::tempdir().unwrap();
        let d = DirBackend::open(tmp.path().join("eu")).await.unwrap();
        (tmp, d)
    }

    fn tmp_entries(d: &DirBackend) -> Vec<PathBuf> {
        fs::read_dir(d.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[tokio::test]
    async fn bad_keys_are_rejected() {
        let (_t, d) = backend().await;
        for key in [
            "",
            "/etc/passwd",
            "../escape",
            "a/../../escape",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "nul\0byte",
            ".residency/meta/x",
            ".residency",
            &"x".repeat(256),
            &"a/".repeat(600),
        ] {
            let err = d
                .put_object(key, Body::from("x"), PutMeta::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{key:?}: {err:?}"
            );
            assert!(matches!(
                d.create_multipart(key, PutMeta::default()).await,
                Err(StoreError::InvalidKey { .. })
            ));
            assert!(matches!(
                d.delete_object(key).await,
                Err(StoreError::InvalidKey { .. })
            ));
            assert!(matches!(
                d.head_object(key).await,
                Err(StoreError::NotFound { .. })
            ));
        }
        // Look-alikes that are fine.
        for key in ["a/.residency/x", ".residency2", "..a", "a..", "a b/ü/x\\y"] {
            d.put_object(key, Body::from("x"), PutMeta::default())
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(d.head_object(key).await.unwrap().size, 1);
        }
        assert!(tmp_entries(&d).is_empty());
    }

    #[tokio::test]
    async fn files_are_named_by_key_and_hidden_tree_is_not_listed() {
        let (t, d) = backend().await;
        d.put_object(
            "acme/tickets/1.json",
            Body::from("{}"),
            PutMeta::with_content_type("application/json"),
        )
        .await
        .unwrap();
        let path = t.path().join("eu/acme/tickets/1.json");
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert!(t
            .path()
            .join("eu/.residency/meta/acme/tickets/1.json")
            .is_file());
        let page = d.list_objects(ListRequest::new("")).await.unwrap();
        let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["acme/tickets/1.json"]);
        let page = d.list_objects(ListRequest::new(".resi")).await.unwrap();
        assert!(page.objects.is_empty());
        let page = d.list_objects(ListRequest::new("../")).await.unwrap();
        assert!(page.objects.is_empty());
        let page = d
            .list_objects(ListRequest::new("").delimiter("/"))
            .await
            .unwrap();
        assert_eq!(page.common_prefixes, ["acme/"]);
        assert!(page.objects.is_empty());
    }

    #[tokio::test]
    async fn object_and_directory_conflicts() {
        let (_t, d) = backend().await;
        d.put_object("a", Body::from("x"), PutMeta::default())
            .await
            .unwrap();
        let err = d
            .put_object("a/b", Body::from("x"), PutMeta::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
        d.put_object("c/d", Body::from("x"), PutMeta::default())
            .await
            .unwrap();
        let err = d
            .put_object("c", Body::from("x"), PutMeta::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
        // Deleting "c" (a directory, not an object) changes nothing.
        d.delete_object("c").await.unwrap();
        assert!(d.head_object("c/d").await.is_ok());
        // Once c/d is gone, its empty directory goes too and c can be an object.
        d.delete_object("c/d").await.unwrap();
        d.put_object("c", Body::from("now a file"), PutMeta::default())
            .await
            .unwrap();
        assert!(matches!(d.head_object("c").await, Ok(info) if info.size == 10));
        assert!(tmp_entries(&d).is_empty());
    }

    #[tokio::test]
    async fn bad_digest_and_short_body_leave_nothing() {
        let (t, d) = backend().await;
        let meta = PutMeta {
            checksums: Checksums {
                sha256: crate::checksums_of(b"other").sha256,
                ..Checksums::default()
            },
            ..PutMeta::default()
        };
        let err = d
            .put_object("acme/x", Body::from("data"), meta)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BadDigest { .. }));
        let chunks: Vec<Result<Bytes, BoxError>> = vec![Ok(Bytes::from("abc"))];
        let err = d
            .put_object(
                "acme/x",
                Body::from_stream(futures::stream::iter(chunks), Some(10)),
                PutMeta::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::IncompleteBody {
                    expected: 10,
                    actual: 3
                }
            ),
            "{err:?}"
        );
        let chunks: Vec<Result<Bytes, BoxError>> =
            vec![Ok(Bytes::from("abc")), Err("client went away".into())];
        let err = d
            .put_object(
                "acme/x",
                Body::from_stream(futures::stream::iter(chunks), None),
                PutMeta::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        let meta = PutMeta {
            content_length: Some(2),
            ..PutMeta::default()
        };
        let chunks: Vec<Result<Bytes, BoxError>> = vec![Ok(Bytes::from("abc"))];
        let err = d
            .put_object(
                "acme/x",
                Body::from_stream(futures::stream::iter(chunks), None),
                meta,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::IncompleteBody { .. }), "{err:?}");
        assert!(tmp_entries(&d).is_empty());
        assert!(!t.path().join("eu/acme").exists());
    }

    #[tokio::test]
    async fn a_cancelled_upload_leaves_no_temp_file() {
        let (_t, d) = backend().await;
        // A body that yields one chunk and then never ends.
        let stream = futures::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("abc"))])
            .chain(futures::stream::pending());
        let put = d.put_object(
            "acme/slow",
            Body::from_stream(stream, None),
            PutMeta::default(),
        );
        let r = tokio::time::timeout(Duration::from_millis(200), put).await;
        assert!(r.is_err(), "the put must still be waiting for its body");
        assert!(tmp_entries(&d).is_empty());
        assert!(matches!(
            d.head_object("acme/slow").await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn survives_reopen_and_missing_metadata() {
        let (t, d) = backend().await;
        let meta = PutMeta {
            content_type: Some("text/plain".into()),
            checksums: Checksums {
                crc32c: crate::checksums_of(b"hello").crc32c,
                crc64nvme: crate::checksums_of(b"hello").crc64nvme,
                sha1: crate::checksums_of(b"hello").sha1,
                ..Checksums::default()
            },
            ..PutMeta::default()
        };
        let put = d
            .put_object("acme/a", Body::from("hello"), meta)
            .await
            .unwrap();
        assert!(put.checksums.crc32c.is_some() && put.checksums.sha1.is_some());
        drop(d);
        // A stale temp file from a crash long ago is cleaned at open.
        let stale = t.path().join("eu/.residency/tmp/body-stale");
        fs::write(&stale, b"junk").unwrap();
        let old = SystemTime::now() - Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let d = DirBackend::open(t.path().join("eu")).await.unwrap();
        assert!(!stale.exists());
        let info = d.head_object("acme/a").await.unwrap();
        assert_eq!(info.content_type.as_deref(), Some("text/plain"));
        assert_eq!(info.checksums, put.checksums);
        // A file dropped in by hand (no metadata) is still an object.
        fs::write(t.path().join("eu/acme/manual.txt"), b"hello").unwrap();
        let info = d.head_object("acme/manual.txt").await.unwrap();
        assert_eq!(info.etag, put.etag);
        assert_eq!(info.content_type, None);
        let page = d.list_objects(ListRequest::new("acme/")).await.unwrap();
        assert_eq!(page.objects.len(), 2);
    }

    #[tokio::test]
    async fn health_fails_when_the_directory_is_gone() {
        let (t, d) = backend().await;
        d.health().await.unwrap();
        fs::remove_dir_all(t.path().join("eu")).unwrap();
        let err = d.health().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(d.location().await.unwrap(), None);
        assert_eq!(d.describe().kind, "dir");
    }

    #[tokio::test]
    async fn upload_ids_never_reach_paths() {
        let (_t, d) = backend().await;
        for id in ["../../etc", "", "ABC", "0123456789abcdef0123456789abcdeg"] {
            let err = d
                .upload_part("k", id, 1, Body::from("x"), Checksums::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::NoSuchUpload { .. }),
                "{id}: {err:?}"
            );
        }
        // An upload id is bound to its key.
        let id = d
            .create_multipart("acme/k", PutMeta::default())
            .await
            .unwrap();
        let err = d.abort_multipart("acme/other", &id).await.unwrap_err();
        assert!(matches!(err, StoreError::NoSuchUpload { .. }));
        let err = d
            .upload_part("acme/k", &id, 0, Body::from("x"), Checksums::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument { .. }));
        d.abort_multipart("acme/k", &id).await.unwrap();
    }

    #[tokio::test]
    async fn small_parts_with_a_lower_minimum() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DirBackend::open(tmp.path())
            .await
            .unwrap()
            .with_min_part_size(1);
        let id = d
            .create_multipart("acme/m", PutMeta::default())
            .await
            .unwrap();
        let mut parts = vec![];
        for (n, s) in [(1, "ab"), (2, "cd"), (3, "e")] {
            let p = d
                .upload_part("acme/m", &id, n, Body::from(s), Checksums::default())
                .await
                .unwrap();
            parts.push(CompletedPart {
                part_number: n,
                etag: p.etag,
                checksums: p.checksums,
            });
        }
        let mut swapped = parts.clone();
        swapped.swap(0, 1);
        let err = d
            .complete_multipart("acme/m", &id, swapped)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidPartOrder));
        // Parts may be skipped.
        parts.remove(1);
        let out = d.complete_multipart("acme/m", &id, parts).await.unwrap();
        assert!(out.etag.ends_with("-2\""));
        let got = d
            .get_object("acme/m", None)
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        assert_eq!(got, "abe");
        assert!(tmp_entries(&d).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_never_mix_bytes_and_metadata() {
        let (_t, d) = backend().await;
        let d = std::sync::Arc::new(d);
        let mut tasks = vec![];
        for i in 0..16u8 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                let data = vec![i; 1000 + i as usize];
                d.put_object(
                    "acme/hot",
                    Body::from(data),
                    PutMeta::with_content_type(format!("x/{i}")),
                )
                .await
                .unwrap();
                let got = d.get_object("acme/hot", None).await.unwrap();
                let ct = got.info.content_type.clone().unwrap();
                let bytes = got.body.collect().await.unwrap();
                let n: u8 = ct[2..].parse().unwrap();
                assert_eq!(bytes.len(), 1000 + n as usize);
                assert!(bytes.iter().all(|b| *b == n));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(tmp_entries(&d).is_empty());
    }

    #[tokio::test]
    async fn listing_a_wide_tree_with_delimiter_and_pages() {
        let (_t, d) = backend().await;
        let mut keys = vec![];
        for t in ["acme", "globex"] {
            for i in 0..30 {
                keys.push(format!("{t}/tickets/{i:03}/body.json"));
                keys.push(format!("{t}/tickets/{i:03}.json"));
            }
        }
        for k in &keys {
            d.put_object(k, Body::from("x"), PutMeta::default())
                .await
                .unwrap();
        }
        keys.sort();
        // Every key, in order, by pages of 7.
        let mut token = None;
        let mut got = vec![];
        loop {
            let page = d
                .list_objects(ListRequest::new("").max_keys(7).continuation_token(token))
                .await
                .unwrap();
            got.extend(page.objects.into_iter().map(|o| o.key));
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(got, keys);
        // One level with a delimiter: 30 objects + 30 prefixes for acme.
        let page = d
            .list_objects(ListRequest::new("acme/tickets/").delimiter("/"))
            .await
            .unwrap();
        assert_eq!(page.objects.len(), 30);
        assert_eq!(page.common_prefixes.len(), 30);
        assert_eq!(page.common_prefixes[0], "acme/tickets/000/");
        let page = d
            .list_objects(ListRequest::new("").delimiter("/").max_keys(1))
            .await
            .unwrap();
        assert_eq!(page.common_prefixes, ["acme/"]);
        let next = d
            .list_objects(
                ListRequest::new("")
                    .delimiter("/")
                    .continuation_token(page.next_continuation_token),
            )
            .await
            .unwrap();
        assert_eq!(next.common_prefixes, ["globex/"]);
        assert!(next.next_continuation_token.is_none());
        let page = d
            .list_objects(ListRequest::new("").max_keys(0))
            .await
            .unwrap();
        assert!(page.objects.is_empty() && page.next_continuation_token.is_none());
    }
}
