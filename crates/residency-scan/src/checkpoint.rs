//! The scan's state on disk: `checkpoint.json` (cursors, counts, how much of
//! `findings.jsonl` they cover) and `summary.json`, written atomically.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::ScanError;
use crate::summary::Summary;

/// One listing cursor: a region and a prefix, listed in key order from
/// after `after`; or (`file` set) an inventory data file, read from row
/// `rows` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub(crate) region: String,
    /// The prefix listed, or the inventory data file's key.
    pub(crate) prefix: String,
    pub(crate) after: Option<String>,
    pub(crate) done: bool,
    /// The index of the inventory data file in its manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<usize>,
    /// Rows of the data file already reconciled.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) rows: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `checkpoint.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) format: u32,
    pub(crate) summary: Summary,
    pub(crate) cursors: Vec<Cursor>,
    /// The length of `findings.jsonl` when this was written: what came
    /// after is found again on resume.
    pub(crate) findings_len: u64,
    pub(crate) pages: u64,
}

/// What the regions' tasks share.
pub(crate) struct Shared {
    pub(crate) summary: Summary,
    pub(crate) findings: BufWriter<File>,
    pub(crate) findings_len: u64,
    pub(crate) cursors: Vec<Cursor>,
    pub(crate) pages: u64,
    pub(crate) last_checkpoint: Instant,
}

/// Writes `value` as JSON to `path` through a temporary file and a rename:
/// a crash leaves the old file or the new one, never half of one.
pub(crate) fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ScanError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(ScanError::io(&tmp))?;
    serde_json::to_writer(&mut f, value)
        .map_err(std::io::Error::from)
        .map_err(ScanError::io(&tmp))?;
    f.sync_data().map_err(ScanError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(ScanError::io(path))
}

pub(crate) fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, ScanError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ScanError::Usage(format!(
                "{}: not a scan checkpoint ({e}); start afresh with --restart",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ScanError::io(path)(e)),
    }
}

/// The summary of a finished scan (`summary.json`).
///
/// # Errors
/// The file cannot be read or is not a summary.
pub fn read_summary(path: &Path) -> Result<Summary, ScanError> {
    let bytes = std::fs::read(path).map_err(ScanError::io(path))?;
    serde_json::from_slice(&bytes)
        .map_err(std::io::Error::from)
        .map_err(ScanError::io(path))
}

pub(crate) fn ctx_checkpoint(shared: &mut Shared, path: &Path) -> Result<(), ScanError> {
    shared.findings.flush().map_err(ScanError::io(path))?;
    let cp = Checkpoint {
        format: 1,
        summary: shared.summary.clone(),
        cursors: shared.cursors.clone(),
        findings_len: shared.findings_len,
        pages: shared.pages,
    };
    write_atomic(path, &cp)?;
    shared.last_checkpoint = Instant::now();
    Ok(())
}
