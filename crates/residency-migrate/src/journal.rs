//! The durable journal, stored in the destination region.
//!
//! ```text
//! _migrations/<tenant>/current.json                          {"id": ...}: the latest migration
//! _migrations/<tenant>/<id>/state.json                       phase, cursors, totals
//! _migrations/<tenant>/<id>/<source region>/copy-<seq>.jsonl    one record per object of listing page <seq>
//! _migrations/<tenant>/<id>/<source region>/delete-<seq>.jsonl  one record per old copy deleted
//! _migrations/<tenant>/<id>/uploads/<hash>.json               a multipart upload of a copy in flight
//! _migrations/<tenant>/<id>/<source region>/range-<n>/state.json       a key range's cursor and totals
//! _migrations/<tenant>/<id>/<source region>/range-<n>/copy-<seq>.jsonl one record per object of the range's page <seq>
//! ```
//!
//! A migration shared by several workers (`--range-size`, `--join`) splits
//! each source region's keys into ranges leased from the tenant directory
//! (`migration_ranges`): each range has its own cursor (`state.json` of the
//! range) and copy segments, so a range whose worker was killed resumes
//! after its last stored page, by whichever worker takes it over. Once
//! every range is done the coordinator adds the ranges' totals to the
//! migration's state and records each range's page count there
//! ([`SourceState::ranges`]): the delete phase reads the ranges' segments
//! in key order as it reads a single worker's.
//!
//! A multipart copy notes its upload (key and upload id) right after
//! creating it, before the first part, and removes the note once the upload
//! is completed or aborted. A note that is still there when a run starts was
//! left by a killed run: the upload is aborted (S3 keeps, and bills, the
//! parts of an upload nobody completes) and counted in the totals.
//!
//! S3 has no append, so the journal grows by small new objects. The source
//! is listed in key order, one page (≤ 1000 keys) at a time; a page's
//! segment is stored once every object of the page has an outcome, and
//! pages are stored in order, so every segment is sorted and the segments
//! together are sorted too. `state.json` is stored after each segment and
//! names the last key covered (`last_key`): a restart lists again after that
//! key, so it costs O(1) reads of the journal however large the tenant is,
//! and at most the pages in flight are redone (objects found already copied
//! are re-verified, not copied again). The delete phase merges the source
//! listing with the copy segments, both in key order, in O(page) memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use residency_store::{Backend, Body, PutMeta, StoreError};
use serde::{Deserialize, Serialize};

use crate::error::MigrateError;
pub use crate::phase::Phase;

/// Counters of a migration (cumulative in the journal, or for one run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Objects listed in the source regions.
    pub listed: u64,
    /// Objects whose placement is now the destination.
    pub planned: u64,
    /// Their bytes.
    pub planned_bytes: u64,
    /// Objects whose bytes were copied.
    pub copied: u64,
    /// Bytes copied.
    pub copied_bytes: u64,
    /// Objects verified in the destination (copied, or found already there
    /// with identical bytes and metadata).
    pub verified: u64,
    /// Objects whose copy did not match after every retry.
    pub mismatched: u64,
    /// Objects that policy keeps outside the destination (or denies).
    pub skipped_by_policy: u64,
    /// Of those, per category (`denied:<reason>` for denials).
    pub skipped_by_category: BTreeMap<String, u64>,
    /// Objects the tenant rewrote in the destination meanwhile (newer there).
    pub superseded: u64,
    /// Objects deleted by the tenant while being copied.
    pub vanished: u64,
    /// Old copies deleted.
    pub deleted: u64,
    /// Planned objects per category.
    pub planned_by_category: BTreeMap<String, u64>,
    /// Multipart uploads left open by killed runs, aborted by a later run.
    pub aborted_uploads: u64,
    /// Bytes of the parts those uploads held (copied, then discarded).
    pub aborted_upload_bytes: u64,
    /// The tenant's audit and disclosure records moved to the destination.
    pub records: crate::records::RecordsMoved,
    /// Key ranges the copy was split into (`--range-size`), or, for one
    /// run, the ranges this worker completed.
    #[serde(skip_serializing_if = "is_zero")]
    pub ranges: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Totals {
    /// Adds a key range's copy counters (its segments' records).
    pub(crate) fn add_totals(&mut self, o: &Totals) {
        self.listed += o.listed;
        self.planned += o.planned;
        self.planned_bytes += o.planned_bytes;
        self.copied += o.copied;
        self.copied_bytes += o.copied_bytes;
        self.verified += o.verified;
        self.mismatched += o.mismatched;
        self.skipped_by_policy += o.skipped_by_policy;
        self.superseded += o.superseded;
        self.vanished += o.vanished;
        self.deleted += o.deleted;
        self.aborted_uploads += o.aborted_uploads;
        self.aborted_upload_bytes += o.aborted_upload_bytes;
        for (c, n) in &o.skipped_by_category {
            *self.skipped_by_category.entry(c.clone()).or_default() += n;
        }
        for (c, n) in &o.planned_by_category {
            *self.planned_by_category.entry(c.clone()).or_default() += n;
        }
    }

    /// Counts a record of this run: what an earlier run copied is not.
    pub(crate) fn add_run_record(&mut self, r: &Record) {
        self.add_record(r);
        if r.copied && r.earlier_run {
            self.copied -= 1;
            self.copied_bytes -= r.size;
        }
    }

    pub(crate) fn add_record(&mut self, r: &Record) {
        self.listed += 1;
        match r.outcome {
            Outcome::Verified | Outcome::Mismatched | Outcome::Superseded | Outcome::Vanished => {
                self.planned += 1;
                self.planned_bytes += r.size;
                if let Some(c) = &r.category {
                    *self.planned_by_category.entry(c.clone()).or_default() += 1;
                }
            }
            Outcome::Skipped => {}
        }
        match r.outcome {
            Outcome::Verified => self.verified += 1,
            Outcome::Mismatched => self.mismatched += 1,
            Outcome::Superseded => self.superseded += 1,
            Outcome::Vanished => self.vanished += 1,
            Outcome::Skipped => {
                self.skipped_by_policy += 1;
                let c = r.category.clone().unwrap_or_else(|| "unknown".into());
                *self.skipped_by_category.entry(c).or_default() += 1;
            }
        }
        if r.copied {
            self.copied += 1;
            self.copied_bytes += r.size;
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// In the destination with identical bytes and metadata.
    Verified,
    /// Policy keeps it out of the destination.
    Skipped,
    /// The copy did not match after every retry.
    Mismatched,
    /// The destination holds a newer version written by the tenant.
    Superseded,
    /// The tenant deleted it while it was being copied.
    Vanished,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The full key (`<tenant>/...`).
    pub key: String,
    /// Size of the source object.
    pub size: u64,
    /// ETag of the source object (the version that was copied).
    pub etag: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Whether the bytes were copied by this migration (false: found
    /// already there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copied: bool,
    /// Copied by an earlier run that was killed before journaling it: found
    /// in the destination, identical, stored since the migration started.
    /// Counted in the migration's totals, not in this run's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier_run: bool,
    /// SHA-256 (hex) of the bytes, computed while copying or re-verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// ETag of the destination object when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_etag: Option<String>,
    /// The object's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Why it was skipped or mismatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Per source region cursors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceState {
    /// The region id.
    pub region: String,
    /// Copy segments stored (the next is `copy-<pages>`).
    pub pages: u64,
    /// The last key covered by the stored copy segments.
    pub last_key: Option<String>,
    /// Every object of the region has an outcome.
    pub listed: bool,
    /// Delete segments stored.
    pub delete_pages: u64,
    /// The last key covered by the stored delete segments.
    pub delete_last_key: Option<String>,
    /// The copy segment the delete phase had reached (where a restart
    /// resumes reading the copy records).
    pub delete_copy_seq: u64,
    /// The delete phase for this region is complete.
    pub deleted: bool,
    /// The copy was shared by workers through key ranges: the number of
    /// copy segments of each range, in key order (empty: one worker, the
    /// segments are `copy-0 .. copy-<pages>` of the region).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<u64>,
}

/// A key range's cursor and totals (`range-<n>/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct RangeState {
    /// Copy segments stored (the next is `copy-<pages>`).
    pub(crate) pages: u64,
    /// The last key covered by the stored segments.
    pub(crate) last_key: Option<String>,
    /// Every key of the range has an outcome.
    pub(crate) listed: bool,
    /// Counters over the range's stored segments.
    pub(crate) totals: Totals,
    /// Keys whose copy did not match.
    pub(crate) mismatched_keys: Vec<String>,
}

/// The journal folder of a key range's segments (below the migration's).
pub(crate) fn range_folder(region: &str, range_no: i32) -> String {
    format!("{region}/range-{range_no:06}")
}

/// What the delete phase did with one old copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteAction {
    /// Deleted: its copy in the destination was verified.
    Deleted,
    /// Kept: policy keeps it in this region, or its copy did not verify.
    Kept,
    /// Already gone (deleted by the tenant meanwhile).
    Gone,
}

/// One line of a delete segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRecord {
    /// The full key.
    pub key: String,
    /// Size of the old copy.
    pub size: u64,
    /// ETag of the old copy.
    pub etag: String,
    /// What was done.
    pub action: DeleteAction,
    /// The object was copied (or re-verified) by the delete phase itself:
    /// it was written after the copy phase had listed its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Why it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// The migration id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The destination region.
    pub to: String,
    /// The tenant's home region before the switch.
    pub from: String,
    /// When the migration started (Unix seconds).
    pub started_at: u64,
    /// When every object was verified.
    #[serde(default)]
    pub verified_at: Option<u64>,
    /// When the old copies were all deleted.
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// The assurance window asked for at the start, in seconds.
    pub assurance_secs: u64,
    /// The phase.
    pub phase: Phase,
    /// Whether the tenants file was switched.
    #[serde(default)]
    pub switched: bool,
    /// One entry per source region.
    pub sources: Vec<SourceState>,
    /// Cumulative counters over the stored segments.
    #[serde(default)]
    pub totals: Totals,
    /// Keys whose copy did not match (retried by the next run).
    #[serde(default)]
    pub mismatched_keys: Vec<String>,
}

/// At most this many mismatched keys are kept in the state; more stop the
/// migration (something is badly wrong and wants a human).
pub(crate) const MAX_MISMATCHED: usize = 10_000;

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[derive(Debug, Serialize, Deserialize)]
struct Current {
    id: String,
}

/// A multipart upload a copy has started (`uploads/<hash>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadNote {
    /// The object key the upload creates.
    pub(crate) key: String,
    /// The destination's upload id.
    pub(crate) upload_id: String,
}

/// Reads and writes the journal in the destination backend.
#[derive(Clone)]
pub(crate) struct Journal {
    backend: Arc<dyn Backend>,
    region: String,
    tenant: String,
}

impl Journal {
    pub(crate) fn new(backend: Arc<dyn Backend>, region: &str, tenant: &str) -> Self {
        Journal {
            backend,
            region: region.to_owned(),
            tenant: tenant.to_owned(),
        }
    }

    fn current_key(&self) -> String {
        format!("_migrations/{}/current.json", self.tenant)
    }

    fn state_key(&self, id: &str) -> String {
        format!("_migrations/{}/{id}/state.json", self.tenant)
    }

    fn segment_key(&self, id: &str, source: &str, kind: &str, seq: u64) -> String {
        format!(
            "_migrations/{}/{id}/{source}/{kind}-{seq:010}.jsonl",
            self.tenant
        )
    }

    fn uploads_prefix(&self, id: &str) -> String {
        format!("_migrations/{}/{id}/uploads/", self.tenant)
    }

    /// Notes a multipart upload before its first part is sent; returns the
    /// note's key (for [`Journal::clear_upload`]).
    pub(crate) async fn note_upload(
        &self,
        id: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<String, MigrateError> {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(format!("{key}\n{upload_id}").as_bytes());
        let name = hex::encode(&h[..16]);
        let note_key = format!("{}{name}.json", self.uploads_prefix(id));
        let data = serde_json::to_vec(&UploadNote {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        })
        .map_err(|e| MigrateError::Journal(e.to_string()))?;
        self.put(&note_key, data, "application/json").await?;
        Ok(note_key)
    }

    /// Removes an upload's note (the upload was completed or aborted).
    pub(crate) async fn clear_upload(&self, note_key: &str) -> Result<(), MigrateError> {
        let mut attempt = 0u32;
        loop {
            match self.backend.delete_object(note_key).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(e) if e.is_unavailable() && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(MigrateError::store(&self.region, e)),
            }
        }
    }

    /// The uploads noted and not cleared: those of killed runs (when no
    /// run is in progress).
    pub(crate) async fn noted_uploads(
        &self,
        id: &str,
    ) -> Result<Vec<(String, UploadNote)>, MigrateError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let mut req = residency_store::ListRequest::new(self.uploads_prefix(id)).max_keys(1000);
            req = req.continuation_token(token.clone());
            let page = self
                .backend
                .list_objects(req)
                .await
                .map_err(|e| MigrateError::store(&self.region, e))?;
            for o in page.objects {
                let Some(data) = self.get(&o.key).await? else {
                    continue;
                };
                let note: UploadNote = serde_json::from_slice(&data)
                    .map_err(|e| MigrateError::Journal(format!("{}: {e}", o.key)))?;
                out.push((o.key, note));
            }
            token = page.next_continuation_token;
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, MigrateError> {
        let mut last = None;
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.backend.get_object(key, None).await {
                Ok(out) => match out.body.collect().await {
                    Ok(b) => return Ok(Some(b)),
                    Err(e) => last = Some(e),
                },
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) if e.is_unavailable() => last = Some(e),
                Err(e) => return Err(MigrateError::store(&self.region, e)),
            }
        }
        Err(MigrateError::store(
            &self.region,
            last.unwrap_or_else(|| StoreError::unavailable("journal read failed")),
        ))
    }

    async fn put(&self, key: &str, data: Vec<u8>, content_type: &str) -> Result<(), MigrateError> {
        let data = Bytes::from(data);
        let mut last = None;
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self
                .backend
                .put_object(
                    key,
                    Body::from_bytes(data.clone()),
                    PutMeta::with_content_type(content_type),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_unavailable() => last = Some(e),
                Err(e) => return Err(MigrateError::store(&self.region, e)),
            }
        }
        Err(MigrateError::store(
            &self.region,
            last.unwrap_or_else(|| StoreError::unavailable("journal write failed")),
        ))
    }

    /// The latest migration's state, if any.
    pub(crate) async fn load_current(&self) -> Result<Option<State>, MigrateError> {
        let Some(cur) = self.get(&self.current_key()).await? else {
            return Ok(None);
        };
        let cur: Current = serde_json::from_slice(&cur)
            .map_err(|e| MigrateError::Journal(format!("{}: {e}", self.current_key())))?;
        let key = self.state_key(&cur.id);
        let Some(state) = self.get(&key).await? else {
            // current.json is written after the first state: a missing state
            // means it was removed by hand.
            return Err(MigrateError::Journal(format!(
                "{key} is missing although {} names it",
                self.current_key()
            )));
        };
        serde_json::from_slice(&state).map_err(|e| MigrateError::Journal(format!("{key}: {e}")))
    }

    /// When `current.json` was stored, by the destination's clock: the
    /// start of the current migration as the destination dates its objects.
    pub(crate) async fn current_stored_at(&self) -> Result<Option<SystemTime>, MigrateError> {
        match self.backend.head_object(&self.current_key()).await {
            Ok(i) => Ok(Some(i.last_modified)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(MigrateError::store(&self.region, e)),
        }
    }

    /// Stores a new migration's first state, then points `current.json` at it.
    pub(crate) async fn create(&self, state: &State) -> Result<(), MigrateError> {
        self.save_state(state).await?;
        let cur = serde_json::to_vec(&Current {
            id: state.id.clone(),
        })
        .map_err(|e| MigrateError::Journal(e.to_string()))?;
        self.put(&self.current_key(), cur, "application/json").await
    }

    fn range_state_key(&self, id: &str, folder: &str) -> String {
        format!("_migrations/{}/{id}/{folder}/state.json", self.tenant)
    }

    /// A key range's state (a new one when none is stored yet).
    pub(crate) async fn load_range(
        &self,
        id: &str,
        folder: &str,
    ) -> Result<RangeState, MigrateError> {
        let key = self.range_state_key(id, folder);
        match self.get(&key).await? {
            None => Ok(RangeState::default()),
            Some(data) => serde_json::from_slice(&data)
                .map_err(|e| MigrateError::Journal(format!("{key}: {e}"))),
        }
    }

    pub(crate) async fn save_range(
        &self,
        id: &str,
        folder: &str,
        state: &RangeState,
    ) -> Result<(), MigrateError> {
        let data =
            serde_json::to_vec_pretty(state).map_err(|e| MigrateError::Journal(e.to_string()))?;
        self.put(&self.range_state_key(id, folder), data, "application/json")
            .await
    }

    pub(crate) async fn save_state(&self, state: &State) -> Result<(), MigrateError> {
        let data =
            serde_json::to_vec_pretty(state).map_err(|e| MigrateError::Journal(e.to_string()))?;
        self.put(&self.state_key(&state.id), data, "application/json")
            .await
    }

    pub(crate) async fn write_segment<R: Serialize>(
        &self,
        id: &str,
        source: &str,
        kind: &str,
        seq: u64,
        records: &[R],
    ) -> Result<(), MigrateError> {
        let mut data = Vec::with_capacity(records.len() * 160);
        for r in records {
            serde_json::to_writer(&mut data, r)
                .map_err(|e| MigrateError::Journal(e.to_string()))?;
            data.push(b'\n');
        }
        self.put(
            &self.segment_key(id, source, kind, seq),
            data,
            "application/x-ndjson",
        )
        .await
    }

    /// The delete records of a segment, or nothing if it was never stored.
    pub(crate) async fn try_read_deletes(
        &self,
        id: &str,
        source: &str,
        seq: u64,
    ) -> Result<Vec<DeleteRecord>, MigrateError> {
        let key = self.segment_key(id, source, "delete", seq);
        let Some(data) = self.get(&key).await? else {
            return Ok(Vec::new());
        };
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l).map_err(|e| MigrateError::Journal(format!("{key}: {e}")))
            })
            .collect()
    }

    pub(crate) async fn read_segment(
        &self,
        id: &str,
        source: &str,
        kind: &str,
        seq: u64,
    ) -> Result<Vec<Record>, MigrateError> {
        let key = self.segment_key(id, source, kind, seq);
        let Some(data) = self.get(&key).await? else {
            return Err(MigrateError::Journal(format!(
                "{key} is missing although the state counts it"
            )));
        };
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l).map_err(|e| MigrateError::Journal(format!("{key}: {e}")))
            })
            .collect()
    }
}

/// Reads a source region's copy records in key order, one segment at a time
/// (a single worker's segments, or each key range's in turn).
pub(crate) struct RecordCursor {
    journal: Journal,
    id: String,
    /// (folder, seq) of every copy segment, in key order.
    segments: Vec<(String, u64)>,
    next_seq: u64,
    buf: std::collections::VecDeque<Record>,
}

impl RecordCursor {
    pub(crate) fn new(journal: Journal, state: &State, source: &SourceState) -> Self {
        let segments = if source.ranges.is_empty() {
            (0..source.pages)
                .map(|seq| (source.region.clone(), seq))
                .collect()
        } else {
            source
                .ranges
                .iter()
                .enumerate()
                .flat_map(|(n, &pages)| {
                    let folder = range_folder(&source.region, n as i32);
                    (0..pages).map(move |seq| (folder.clone(), seq))
                })
                .collect()
        };
        RecordCursor {
            journal,
            id: state.id.clone(),
            segments,
            next_seq: source.delete_copy_seq,
            buf: Default::default(),
        }
    }

    /// The copy segment whose records are being read (a restart may resume
    /// reading there).
    pub(crate) fn position(&self) -> u64 {
        self.next_seq
            .saturating_sub(u64::from(!self.buf.is_empty()))
    }

    /// The record for `key`, skipping records for smaller keys. Keys must be
    /// asked for in increasing order.
    pub(crate) async fn find(&mut self, key: &str) -> Result<Option<Record>, MigrateError> {
        loop {
            while let Some(front) = self.buf.front() {
                match front.key.as_str().cmp(key) {
                    std::cmp::Ordering::Less => {
                        self.buf.pop_front();
                    }
                    std::cmp::Ordering::Equal => return Ok(self.buf.pop_front()),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
            let Some((folder, seq)) = usize::try_from(self.next_seq)
                .ok()
                .and_then(|i| self.segments.get(i))
            else {
                return Ok(None);
            };
            let recs = self
                .journal
                .read_segment(&self.id, folder, "copy", *seq)
                .await?;
            self.next_seq += 1;
            self.buf.extend(recs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use residency_store::MemoryBackend;

    fn rec(key: &str, outcome: Outcome) -> Record {
        Record {
            key: key.into(),
            size: 3,
            etag: "\"e\"".into(),
            outcome,
            copied: outcome == Outcome::Verified,
            earlier_run: false,
            sha256: None,
            dest_etag: None,
            category: Some("ticket_data".into()),
            detail: None,
        }
    }

    #[tokio::test]
    async fn state_and_segments_round_trip_and_cursor_merges() {
        let j = Journal::new(Arc::new(MemoryBackend::new("eu")), "eu", "acme");
        assert!(j.load_current().await.unwrap().is_none());
        let mut state = State {
            version: 1,
            id: "m1".into(),
            tenant: "acme".into(),
            to: "eu".into(),
            from: "us".into(),
            started_at: 1,
            verified_at: None,
            finished_at: None,
            assurance_secs: 0,
            phase: Phase::Copying,
            switched: true,
            sources: vec![SourceState {
                region: "us".into(),
                ..Default::default()
            }],
            totals: Totals::default(),
            mismatched_keys: vec![],
        };
        j.create(&state).await.unwrap();
        let a = [
            rec("acme/a", Outcome::Verified),
            rec("acme/b", Outcome::Skipped),
        ];
        let b = [rec("acme/c", Outcome::Verified)];
        j.write_segment("m1", "us", "copy", 0, &a).await.unwrap();
        j.write_segment("m1", "us", "copy", 1, &b).await.unwrap();
        state.sources[0].pages = 2;
        for r in a.iter().chain(&b) {
            state.totals.add_record(r);
        }
        j.save_state(&state).await.unwrap();
        let back = j.load_current().await.unwrap().unwrap();
        assert_eq!(back, state);
        assert_eq!(back.totals.verified, 2);
        assert_eq!(back.totals.skipped_by_policy, 1);

        let mut c = RecordCursor::new(j.clone(), &state, &state.sources[0]);
        assert!(c.find("acme/0").await.unwrap().is_none());
        assert_eq!(
            c.find("acme/b").await.unwrap().unwrap().outcome,
            Outcome::Skipped
        );
        assert!(c.find("acme/bb").await.unwrap().is_none());
        assert_eq!(c.find("acme/c").await.unwrap().unwrap().key, "acme/c");
        assert!(c.find("acme/d").await.unwrap().is_none());
    }
}
