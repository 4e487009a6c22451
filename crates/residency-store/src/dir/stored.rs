//! What is kept beside the bytes: `<root>/.residency/meta/<key>` for an
//! object, `upload.json` for an upload, both JSON.

use std::fs;
use std::io::{self, ErrorKind, Read as _};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{DirBackend, HIDDEN, READ_CHUNK};
use crate::checksum::{self, BodyHasher};
use crate::multipart::{from_millis, to_millis};
use crate::object::{Checksums, ObjectInfo, PutMeta, StoredHeaders};

/// `<root>/.residency/meta/<key>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredMeta {
    pub(super) size: u64,
    pub(super) etag: String,
    pub(super) last_modified_ms: u64,
    #[serde(flatten)]
    pub(super) headers: StoredHeaders,
    #[serde(default)]
    pub(super) checksums: Checksums,
}

impl StoredMeta {
    pub(super) fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size: self.size,
            etag: self.etag.clone(),
            last_modified: from_millis(self.last_modified_ms),
            headers: self.headers.clone(),
            checksums: self.checksums.clone(),
            version_id: None,
            sse: Default::default(),
        }
    }
}

/// `<root>/.residency/uploads/<id>/upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UploadRecord {
    pub(super) key: String,
    pub(super) initiated_ms: u64,
    pub(super) headers: StoredHeaders,
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
}

pub(super) fn write_json_durable<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut f = fs::File::create(path)?;
    io::Write::write_all(&mut f, &bytes)?;
    f.sync_all()
}

/// MD5 of a whole file: only when metadata is missing (a crash between the
/// two renames, or a file a person copied in by hand).
pub(super) fn md5_file(path: &Path) -> io::Result<[u8; 16]> {
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
    /// The object's info, read from its metadata; rebuilt from the file when
    /// the metadata is missing or stale.
    pub(super) fn load_info(
        root: &Path,
        key: &str,
        file_meta: &fs::Metadata,
    ) -> io::Result<ObjectInfo> {
        let meta_path = root.join(HIDDEN).join("meta").join(key);
        match read_json::<StoredMeta>(&meta_path) {
            Ok(m) if m.size == file_meta.len() => Ok(m.info(key)),
            _ => {
                let md5 = md5_file(&root.join(key))?;
                let m = StoredMeta {
                    size: file_meta.len(),
                    etag: checksum::etag_of(&md5),
                    last_modified_ms: to_millis(file_meta.modified().unwrap_or(SystemTime::now())),
                    headers: StoredHeaders::default(),
                    checksums: Default::default(),
                };
                Ok(m.info(key))
            }
        }
    }
}

pub(super) fn stored_meta(
    digests_len: u64,
    etag: String,
    meta: &PutMeta,
    checksums: Checksums,
) -> StoredMeta {
    StoredMeta {
        size: digests_len,
        etag,
        last_modified_ms: to_millis(SystemTime::now()),
        headers: meta.headers.clone(),
        checksums,
    }
}
