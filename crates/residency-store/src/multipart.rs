//! Multipart rules shared by the local backends (S3 semantics).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checksum::{self, unquote};
use crate::error::StoreError;
use crate::object::{Checksums, CompletedPart, PartInfo, PartsPage};

/// S3's minimum size for every part but the last.
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's highest part number.
pub(crate) const MAX_PART_NUMBER: u32 = 10_000;

/// A stored part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub(crate) part_number: u32,
    pub(crate) md5: [u8; 16],
    pub(crate) size: u64,
    pub(crate) checksums: Checksums,
    pub(crate) last_modified_ms: u64,
}

impl PartRecord {
    pub(crate) fn info(&self) -> PartInfo {
        PartInfo {
            part_number: self.part_number,
            etag: checksum::etag_of(&self.md5),
            size: self.size,
            checksums: self.checksums.clone(),
            last_modified: from_millis(self.last_modified_ms),
        }
    }
}

pub(crate) fn check_part_number(part_number: u32) -> Result<(), StoreError> {
    if (1..=MAX_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(StoreError::invalid_argument(format!(
            "part number must be an integer between 1 and {MAX_PART_NUMBER}, got {part_number}"
        )))
    }
}

/// Checks a complete request against the stored parts and returns the parts
/// to assemble, in order, with the object's ETag.
///
/// # Errors
/// `InvalidArgument` (no parts), `InvalidPartOrder`, `InvalidPart`, `EntityTooSmall`.
pub(crate) fn select_parts<'a>(
    stored: &'a BTreeMap<u32, PartRecord>,
    requested: &[CompletedPart],
    min_part_size: u64,
) -> Result<(Vec<&'a PartRecord>, String), StoreError> {
    if requested.is_empty() {
        return Err(StoreError::invalid_argument(
            "you must specify at least one part",
        ));
    }
    let mut chosen = Vec::with_capacity(requested.len());
    let mut prev = 0;
    for (i, want) in requested.iter().enumerate() {
        if want.part_number <= prev {
            return Err(StoreError::InvalidPartOrder);
        }
        prev = want.part_number;
        let have = stored
            .get(&want.part_number)
            .ok_or(StoreError::InvalidPart {
                part_number: want.part_number,
            })?;
        if !unquote(&want.etag).eq_ignore_ascii_case(&hex::encode(have.md5)) {
            return Err(StoreError::InvalidPart {
                part_number: want.part_number,
            });
        }
        let c = &want.checksums;
        let h = &have.checksums;
        let pairs = [
            (&c.crc32, &h.crc32),
            (&c.crc32c, &h.crc32c),
            (&c.crc64nvme, &h.crc64nvme),
            (&c.sha1, &h.sha1),
            (&c.sha256, &h.sha256),
        ];
        if pairs
            .iter()
            .any(|(w, h)| w.is_some() && w.as_deref().map(str::trim) != h.as_deref())
        {
            return Err(StoreError::InvalidPart {
                part_number: want.part_number,
            });
        }
        if i + 1 < requested.len() && have.size < min_part_size {
            return Err(StoreError::EntityTooSmall {
                part_number: want.part_number,
            });
        }
        chosen.push(have);
    }
    let etag = checksum::multipart_etag(chosen.iter().map(|p| &p.md5));
    Ok((chosen, etag))
}

/// One page of a parts listing.
pub(crate) fn parts_page(
    stored: &BTreeMap<u32, PartRecord>,
    marker: Option<u32>,
    max_parts: Option<u32>,
) -> PartsPage {
    let max = max_parts.unwrap_or(1000).min(1000) as usize;
    let mut parts: Vec<PartInfo> = stored
        .range(marker.unwrap_or(0).saturating_add(1)..)
        .map(|(_, p)| p.info())
        .take(max + 1)
        .collect();
    let next_part_number_marker = if parts.len() > max {
        parts.truncate(max);
        parts.last().map(|p| p.part_number)
    } else {
        None
    };
    PartsPage {
        parts,
        next_part_number_marker,
    }
}

pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// A fresh upload id: 32 hex characters, unique within this process and
/// unlikely to repeat across processes (time, pid, counter, hashed).
pub(crate) fn new_upload_id() -> String {
    use md5::{Digest as _, Md5};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Md5::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    h.update((&COUNTER as *const AtomicU64 as usize).to_le_bytes());
    hex::encode(h.finalize())
}

/// Upload ids this crate issues are 32 lowercase hex characters; anything
/// else is unknown (and must never reach a path).
pub(crate) fn is_valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
