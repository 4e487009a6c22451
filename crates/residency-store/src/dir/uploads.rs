//! A multipart upload on disk: `<root>/.residency/uploads/<id>/` with
//! `upload.json` and `part-00001{,.json}`, ...

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::stored::{read_json, UploadRecord};
use super::{blocking, DirBackend};
use crate::error::StoreError;
use crate::multipart::PartRecord;

impl DirBackend {
    pub(super) async fn read_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, StoreError> {
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

    pub(super) async fn read_parts(
        &self,
        upload_id: &str,
    ) -> Result<BTreeMap<u32, PartRecord>, StoreError> {
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

    pub(super) fn part_paths(dir: &Path, part_number: u32) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("part-{part_number:05}")),
            dir.join(format!("part-{part_number:05}.json")),
        )
    }
}
