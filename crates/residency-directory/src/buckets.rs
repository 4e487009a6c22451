//! The buckets tenants create (S3 CreateBucket), beside the one bucket each
//! tenant is configured with: a registry kept by the directory.
//!
//! The PostgreSQL directory keeps them in its `buckets` table (shared by
//! every replica). The file directory keeps them in a local file beside the
//! tenants file ([`FileBuckets`], `<tenants stem>.buckets.toml`), written
//! only by the one process that holds its lock: where that file is
//! read-only, or another process (a second replica on the same volume)
//! holds it, CreateBucket and DeleteBucket are refused with an error that
//! names the PostgreSQL directory; lookups still answer.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A bucket a tenant created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The bucket's name (unique per deployment, with every tenant's
    /// configured bucket).
    pub name: String,
    /// The tenant that owns it.
    pub tenant: String,
    /// When it was created (RFC 3339, UTC).
    pub created: String,
    /// The `LocationConstraint` it was created with (a region id of the
    /// policy), if any: GetBucketLocation answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The category of objects written without one whose key no key rule
    /// classifies (`x-residency-default-category` on CreateBucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_category: Option<String>,
    /// Its CORS rules (PutBucketCors), as the sidecar stores them (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<String>,
}

impl BucketRecord {
    /// A record created now.
    pub fn new(name: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tenant: tenant.into(),
            created: rfc3339(SystemTime::now()),
            location: None,
            default_category: None,
            cors: None,
        }
    }
}

/// The modification time of `path` (`None`: absent or unreadable).
fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `at` as an RFC 3339 UTC time to the second.
fn rfc3339(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why a bucket could not be created or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    /// The name is taken: by the same tenant (`by_you`), or by another
    /// tenant or a configured bucket.
    #[error("bucket {name:?} already exists")]
    Taken {
        /// The name.
        name: String,
        /// The caller's tenant owns it already.
        by_you: bool,
    },
    /// No such created bucket (a configured bucket is not one).
    #[error("bucket {0:?} does not exist")]
    NotFound(String),
    /// This directory cannot record buckets (read-only or shared file, a
    /// directory of the application's own).
    #[error("{0}")]
    Unsupported(String),
    /// The directory cannot answer now: nothing was changed.
    #[error("the tenant directory is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    #[serde(default)]
    buckets: Vec<BucketRecord>,
}

/// The file directory's bucket registry (see the module documentation).
#[derive(Debug)]
pub struct FileBuckets {
    path: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<BucketRecord>>>,
    /// Serializes writers (a create and a delete in flight at once).
    write: Mutex<()>,
    /// `Ok(lock file held for the process's life)`, or why this process
    /// may not write the registry.
    writable: Result<File, String>,
    /// The file's modification time when it was last read (a process that
    /// does not own the registry reads it again when it changed).
    seen: Mutex<Option<SystemTime>>,
}

const SHARED: &str = "a bucket registry shared by replicas needs the PostgreSQL directory ([directory] url in residency.toml)";

impl FileBuckets {
    /// The registry file for the tenants file at `tenants`:
    /// `<dir>/<stem>.buckets.toml`.
    pub fn path_for(tenants: &Path) -> PathBuf {
        let stem = tenants
            .file_stem()
            .map_or_else(|| "tenants".into(), |s| s.to_string_lossy().into_owned());
        tenants.with_file_name(format!("{stem}.buckets.toml"))
    }

    /// The registry beside the tenants file `tenants`, one per file per
    /// process (a reload attaches the same registry again).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn beside(tenants: &Path) -> Result<Arc<FileBuckets>, String> {
        static OPEN: OnceLock<Mutex<BTreeMap<PathBuf, Arc<FileBuckets>>>> = OnceLock::new();
        let path = Self::path_for(tenants);
        let key = fs::canonicalize(path.parent().unwrap_or(Path::new(".")))
            .map(|d| d.join(path.file_name().unwrap_or_default()))
            .unwrap_or_else(|_| path.clone());
        let mut open = OPEN
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = open.get(&key) {
            return Ok(r.clone());
        }
        let r = Arc::new(Self::open(path)?);
        open.insert(key, r.clone());
        Ok(r)
    }

    /// Opens the registry at `path` (absent: empty) and takes its lock if
    /// it can.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn open(path: PathBuf) -> Result<FileBuckets, String> {
        let seen = modified(&path);
        let buckets = Self::load(&path)?;
        let writable = Self::lock(&path);
        Ok(FileBuckets {
            path,
            buckets: RwLock::new(buckets),
            write: Mutex::default(),
            writable,
            seen: Mutex::new(seen),
        })
    }

    fn load(path: &Path) -> Result<BTreeMap<String, Arc<BucketRecord>>, String> {
        let records = match fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str::<RegistryFile>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .buckets
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(records
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect())
    }

    /// In a process that does not own the registry: reads the file again
    /// if it changed since it was last read (a file that no longer parses
    /// keeps what was read before).
    fn refresh(&self) {
        if self.writable.is_ok() {
            return;
        }
        let now = modified(&self.path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return;
        }
        if let Ok(map) = Self::load(&self.path) {
            *self.buckets.write().unwrap_or_else(|e| e.into_inner()) = map;
            *seen = now;
        }
    }

    fn lock(path: &Path) -> Result<File, String> {
        let lock_path = path.with_extension("toml.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                format!(
                    "the bucket registry {} cannot be written ({e}): {SHARED}",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(_) => Err(format!(
                "the bucket registry {} is in use by another process: {SHARED}",
                path.display()
            )),
        }
    }

    /// The registry's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why this process may not create or delete buckets, if it may not.
    pub fn read_only(&self) -> Option<&str> {
        self.writable.as_ref().err().map(String::as_str)
    }

    /// The created bucket `name`.
    pub fn get(&self, name: &str) -> Option<Arc<BucketRecord>> {
        self.refresh();
        self.read().get(name).cloned()
    }

    /// The buckets `tenant` created, by name.
    pub fn of(&self, tenant: &str) -> Vec<BucketRecord> {
        self.refresh();
        self.read()
            .values()
            .filter(|b| b.tenant == tenant)
            .map(|b| (**b).clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<BucketRecord>>> {
        self.buckets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `record` unless its name is taken (`configured`: whether a
    /// tenant is configured with that bucket name, and which).
    ///
    /// # Errors
    /// See [`BucketError`]; nothing is changed on error.
    pub fn create(
        &self,
        record: BucketRecord,
        configured: Option<&str>,
    ) -> Result<(), BucketError> {
        if let Some(owner) = configured {
            return Err(BucketError::Taken {
                by_you: owner == record.tenant,
                name: record.name,
            });
        }
        self.change(|map| {
            if let Some(b) = map.get(&record.name) {
                return Err(BucketError::Taken {
                    by_you: b.tenant == record.tenant,
                    name: record.name.clone(),
                });
            }
            map.insert(record.name.clone(), Arc::new(record.clone()));
            Ok(())
        })
    }

    /// Removes the created bucket `name` of `tenant`.
    ///
    /// # Errors
    /// See [`BucketError`]; nothing is changed on error.
    pub fn delete(&self, name: &str, tenant: &str) -> Result<(), BucketError> {
        self.change(|map| match map.get(name) {
            Some(b) if b.tenant == tenant => {
                map.remove(name);
                Ok(())
            }
            _ => Err(BucketError::NotFound(name.to_owned())),
        })
    }

    /// Sets (or with `None` removes) the CORS rules of the created bucket
    /// `name` of `tenant`.
    ///
    /// # Errors
    /// See [`BucketError`]; nothing is changed on error.
    pub fn set_cors(
        &self,
        name: &str,
        tenant: &str,
        cors: Option<String>,
    ) -> Result<(), BucketError> {
        self.change(|map| match map.get(name) {
            Some(b) if b.tenant == tenant => {
                let mut b = (**b).clone();
                b.cors = cors;
                map.insert(name.to_owned(), Arc::new(b));
                Ok(())
            }
            _ => Err(BucketError::NotFound(name.to_owned())),
        })
    }

    /// Applies `f` to a copy of the registry, writes the copy to the file
    /// (a new file renamed over the old, synced), then serves it.
    fn change(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Arc<BucketRecord>>) -> Result<(), BucketError>,
    ) -> Result<(), BucketError> {
        if let Err(why) = &self.writable {
            return Err(BucketError::Unsupported(why.clone()));
        }
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read().clone();
        f(&mut next)?;
        self.save(&next).map_err(|e| {
            BucketError::Unavailable(format!(
                "cannot write the bucket registry {}: {e}",
                self.path.display()
            ))
        })?;
        *self.buckets.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    fn save(&self, map: &BTreeMap<String, Arc<BucketRecord>>) -> std::io::Result<()> {
        let file = RegistryFile {
            buckets: map.values().map(|b| (**b).clone()).collect(),
        };
        let body = toml::to_string(&file).map_err(std::io::Error::other)?;
        let text = format!(
            "# Buckets tenants created through the sidecar (S3 CreateBucket).\n\
             # Written by the sidecar that holds {}.lock: do not edit while it runs.\n\n{body}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let tmp = self.path.with_extension("toml.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_615_999);
        assert_eq!(rfc3339(t), "2026-12-07T03:59:59Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn create_persist_delete() {
        let dir = std::env::temp_dir().join(format!("residency-buckets-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = FileBuckets::path_for(&dir.join("tenants.toml"));
        assert_eq!(path, dir.join("tenants.buckets.toml"));
        let reg = FileBuckets::open(path.clone()).unwrap();
        assert!(reg.read_only().is_none());
        let mut rec = BucketRecord::new("photos", "acme");
        rec.default_category = Some("attachments".into());
        reg.create(rec.clone(), None).unwrap();
        // Taken by the same tenant, by another, by a configured bucket.
        assert_eq!(
            reg.create(BucketRecord::new("photos", "acme"), None),
            Err(BucketError::Taken {
                name: "photos".into(),
                by_you: true
            })
        );
        assert!(matches!(
            reg.create(BucketRecord::new("photos", "globex"), None),
            Err(BucketError::Taken { by_you: false, .. })
        ));
        assert!(matches!(
            reg.create(BucketRecord::new("acme-files", "acme"), Some("acme")),
            Err(BucketError::Taken { by_you: true, .. })
        ));
        // A second process (here: a second open) may read, not write.
        let other = FileBuckets::open(path.clone()).unwrap();
        assert_eq!(other.get("photos").as_deref(), Some(&rec));
        assert!(other.read_only().unwrap().contains("PostgreSQL"));
        assert!(matches!(
            other.create(BucketRecord::new("more", "acme"), None),
            Err(BucketError::Unsupported(_))
        ));
        assert_eq!(
            reg.delete("photos", "globex"),
            Err(BucketError::NotFound("photos".into()))
        );
        reg.delete("photos", "acme").unwrap();
        assert!(reg.get("photos").is_none());
        // A bucket the owner creates later is seen by the other process.
        std::thread::sleep(std::time::Duration::from_millis(20));
        reg.create(BucketRecord::new("later", "acme"), None)
            .unwrap();
        assert_eq!(
            other.get("later").map(|b| b.tenant.clone()).as_deref(),
            Some("acme")
        );
        drop(other);
        drop(reg);
        let again = FileBuckets::open(path).unwrap();
        let names: Vec<String> = again.of("acme").into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["later"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
