//! The tenant's records move with its data: the audit chains
//! (`_audit/<tenant>/`) and the disclosure ledger (`_disclosure/<tenant>/`).
//!
//! "Backups and audit logs ... are also Hosted in the selected region": once
//! a tenant's locality is the destination, its records belong there too.
//!
//! - **Disclosure ledger**: copied as soon as the tenants file is switched
//!   (every run while the migration is open, and again at `--finish`):
//!   `residency disclosure` looks for a tenant's ledger in its home region,
//!   so from the switch on it must find the whole chain there, not start a
//!   new one. Each entry is copied byte for byte when the destination lacks
//!   it; the head when the source's records more entries. Then the ledger is
//!   verified in the destination ([`Ledger::verify`]). An entry present in
//!   both regions with different bytes (the ledger was appended in both) is
//!   a conflict: nothing is deleted, a human must look.
//! - **Audit chains**: at `--finish`, every batch under `_audit/<tenant>/`
//!   in a source region is copied byte for byte to the destination; each
//!   writer's HEAD record there becomes the highest one found (its `region`
//!   the destination, where the batch it names now is). Then the chains are
//!   verified in the destination alone ([`verify_chain_moved`]: events that
//!   name the source region as their store region are accepted there).
//! - **Deletion**: only at `--finish` (the same point as the data's old
//!   copies), only after the destination verified, and only of objects whose
//!   bytes the destination holds identically.
//!
//! Every step is idempotent: a killed run leaves at worst copies in both
//! regions, and the next `--finish` completes the move.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use residency_disclosure::Ledger;
use residency_store::{
    Backend, BackendDescription, Body, ByteRange, CompletedPart, GetOutput, ListPage, ListRequest,
    ObjectInfo, ObjectSummary, PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput,
    StoreError, UploadInfo,
};
use residency_tower::audit::batch::{audit_prefix, verify_chain_moved};
use serde::{Deserialize, Serialize};

use crate::error::MigrateError;

/// What the move of the records did (cumulative in the journal's totals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordsMoved {
    /// Audit objects (batches and HEAD records) copied to the destination.
    pub audit_copied: u64,
    /// Audit objects deleted in the source regions.
    pub audit_deleted: u64,
    /// Disclosure ledger objects (entries and head) copied.
    pub ledger_copied: u64,
    /// Disclosure ledger objects deleted in the source regions.
    pub ledger_deleted: u64,
}

fn store(region: &str) -> impl Fn(StoreError) -> MigrateError + '_ {
    move |e| MigrateError::store(region, e)
}

async fn list_keys(
    backend: &dyn Backend,
    region: &str,
    prefix: &str,
) -> Result<Vec<String>, MigrateError> {
    Ok(list_all(backend, region, prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect())
}

/// Every object under `prefix`, all pages.
async fn list_all(
    backend: &dyn Backend,
    region: &str,
    prefix: &str,
) -> Result<Vec<ObjectSummary>, MigrateError> {
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let page = backend
            .list_objects(ListRequest::new(prefix).continuation_token(token))
            .await
            .map_err(store(region))?;
        objects.extend(page.objects);
        token = page.next_continuation_token;
        if token.is_none() {
            return Ok(objects);
        }
    }
}

async fn read(
    backend: &dyn Backend,
    region: &str,
    key: &str,
) -> Result<Option<Bytes>, MigrateError> {
    match backend.get_object(key, None).await {
        Ok(out) => out.body.collect().await.map(Some).map_err(store(region)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(MigrateError::store(region, e)),
    }
}

async fn write(
    backend: &dyn Backend,
    region: &str,
    key: &str,
    bytes: Bytes,
) -> Result<(), MigrateError> {
    backend
        .put_object(
            key,
            Body::from(bytes),
            PutMeta::with_content_type("application/json"),
        )
        .await
        .map(|_| ())
        .map_err(store(region))
}

async fn delete(backend: &dyn Backend, region: &str, key: &str) -> Result<(), MigrateError> {
    match backend.delete_object(key).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(MigrateError::store(region, e)),
    }
}

/// Copies `key` from a source to the destination unless the destination
/// holds the same bytes. `Err` when it holds other bytes.
async fn copy_exact(
    src: (&str, &dyn Backend),
    dst: (&str, &dyn Backend),
    key: &str,
) -> Result<bool, MigrateError> {
    let Some(bytes) = read(src.1, src.0, key).await? else {
        return Ok(false);
    };
    match read(dst.1, dst.0, key).await? {
        Some(there) if there == bytes => Ok(false),
        Some(_) => Err(MigrateError::Records(format!(
            "{key} differs between {} and {} (written in both regions): nothing of the tenant's records deleted; compare the two and keep one",
            src.0, dst.0
        ))),
        None => {
            write(dst.1, dst.0, key, bytes).await?;
            Ok(true)
        }
    }
}

/// The `_disclosure/<tenant>/` prefix (the ledger's entries and head).
fn ledger_prefix(tenant: &str) -> String {
    format!("_disclosure/{tenant}/")
}

#[derive(Deserialize)]
struct LedgerHead {
    entries: u64,
}

fn head_entries(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<LedgerHead>(bytes)
        .ok()
        .map(|h| h.entries)
}

/// Copies the tenant's disclosure ledger from every source region to the
/// destination and verifies it there. Returns the objects copied.
///
/// # Errors
/// A backend failure; an entry present in two regions with different bytes
/// (`Records`); the ledger in the destination does not verify (`Records`).
pub(crate) async fn sync_ledger(
    tenant: &str,
    sources: &[(String, Arc<dyn Backend>)],
    to: &str,
    dst: &Arc<dyn Backend>,
) -> Result<u64, MigrateError> {
    let prefix = ledger_prefix(tenant);
    let head_key = format!("{prefix}head.json");
    let mut copied = 0;
    let mut found = false;
    for (region, src) in sources {
        let keys = list_keys(src.as_ref(), region, &prefix).await?;
        found |= !keys.is_empty();
        for key in keys.iter().filter(|k| **k != head_key) {
            if copy_exact((region, src.as_ref()), (to, dst.as_ref()), key).await? {
                copied += 1;
            }
        }
        if keys.contains(&head_key) {
            let Some(head) = read(src.as_ref(), region, &head_key).await? else {
                continue;
            };
            let there = read(dst.as_ref(), to, &head_key).await?;
            let newer = match (&there, head_entries(&head)) {
                (None, _) => true,
                (Some(t), Some(n)) => head_entries(t).is_none_or(|m| n > m),
                (Some(_), None) => false,
            };
            if newer {
                write(dst.as_ref(), to, &head_key, head).await?;
                copied += 1;
            }
        }
    }
    if found {
        let report = Ledger::new(tenant, to, dst.clone())
            .verify()
            .await
            .map_err(|e| MigrateError::Records(format!("disclosure ledger in {to}: {e}")))?;
        if !report.ok {
            return Err(MigrateError::Records(format!(
                "the disclosure ledger of {tenant} does not verify in {to} after the copy: {}; nothing of it deleted",
                report.problems.join("; ")
            )));
        }
    }
    Ok(copied)
}

/// `(writer, seq)` of a HEAD record's JSON, and the JSON itself.
fn head_seq(bytes: &[u8]) -> Option<(u64, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some((v.get("seq")?.as_u64()?, v))
}

/// Moves the tenant's audit chains and disclosure ledger from every source
/// region to the destination: copy, verify in the destination, delete the
/// old copies. Called at `--finish`, after the data's old copies are gone.
///
/// # Errors
/// A backend failure, a conflict, or records that do not verify in the
/// destination (`Records`: nothing of them is deleted).
pub(crate) async fn move_records(
    tenant: &str,
    sources: &[(String, Arc<dyn Backend>)],
    to: &str,
    dst: &Arc<dyn Backend>,
) -> Result<RecordsMoved, MigrateError> {
    let mut moved = RecordsMoved {
        ledger_copied: sync_ledger(tenant, sources, to, dst).await?,
        ..RecordsMoved::default()
    };

    // Audit: copy every batch, keep the highest HEAD of each writer.
    let prefix = audit_prefix(tenant);
    let mut listed: Vec<(usize, Vec<String>)> = Vec::new();
    // writer folder → (seq, HEAD JSON) of the highest HEAD seen.
    let mut heads: BTreeMap<String, (u64, serde_json::Value)> = BTreeMap::new();
    // (source index, key) → the HEAD record's bytes as read.
    let mut head_bytes: BTreeMap<(usize, String), Bytes> = BTreeMap::new();
    for (i, (region, src)) in sources.iter().enumerate() {
        let keys = list_keys(src.as_ref(), region, &prefix).await?;
        for key in &keys {
            if let Some(writer) = key.strip_suffix("/HEAD.json") {
                if let Some(bytes) = read(src.as_ref(), region, key).await? {
                    if let Some((seq, v)) = head_seq(&bytes) {
                        if heads.get(writer).is_none_or(|(s, _)| seq > *s) {
                            heads.insert(writer.to_owned(), (seq, v));
                        }
                    }
                    head_bytes.insert((i, key.clone()), bytes);
                }
            } else if copy_exact((region, src.as_ref()), (to, dst.as_ref()), key).await? {
                moved.audit_copied += 1;
            }
        }
        listed.push((i, keys));
    }
    for (writer, (seq, mut head)) in heads {
        let key = format!("{writer}/HEAD.json");
        let there = read(dst.as_ref(), to, &key).await?;
        if there
            .as_deref()
            .and_then(head_seq)
            .is_some_and(|(s, _)| s >= seq)
        {
            continue;
        }
        // The batch it names is in the destination now.
        head["region"] = serde_json::Value::String(to.to_owned());
        let bytes =
            serde_json::to_vec(&head).map_err(|e| MigrateError::Records(format!("{key}: {e}")))?;
        write(dst.as_ref(), to, &key, Bytes::from(bytes)).await?;
        moved.audit_copied += 1;
    }
    let pairs: Vec<(String, String)> = sources
        .iter()
        .map(|(r, _)| (r.clone(), to.to_owned()))
        .collect();
    // The picture once the old copies are gone: the destination, and in
    // each source only what a running sidecar stored there since the
    // listing (its chain goes on; its HEAD in the destination may name
    // those batches). Each region is a snapshot (HEAD records read before
    // the listing, so that every batch they name is listed): a sidecar
    // storing batches meanwhile cannot make the check see a HEAD ahead of
    // its chain.
    let mut after: Vec<(String, Arc<dyn Backend>)> = vec![(
        to.to_owned(),
        snapshot(to, dst, &prefix, &BTreeSet::new()).await?,
    )];
    // A HEAD that a running sidecar rewrote since it was read stays (it
    // names a batch stored after the listing): neither hidden nor deleted.
    for (i, keys) in &mut listed {
        let (region, src) = &sources[*i];
        let mut kept = Vec::new();
        for ((_, key), then) in head_bytes.iter().filter(|((j, _), _)| j == i) {
            if read(src.as_ref(), region, key).await?.as_ref() != Some(then) {
                kept.push(key.clone());
            }
        }
        keys.retain(|k| !kept.contains(k));
        let hidden = keys.iter().cloned().collect();
        after.push((
            region.clone(),
            snapshot(region, src, &prefix, &hidden).await?,
        ));
    }
    let report = verify_chain_moved(&after, tenant, &pairs)
        .await
        .map_err(store(to))?;
    if !report.ok {
        let problems: Vec<String> = report
            .writers
            .iter()
            .flat_map(|w| w.problems.iter().map(move |p| format!("{}: {p}", w.writer)))
            .take(10)
            .collect();
        return Err(MigrateError::Records(format!(
            "the audit chains of {tenant} do not verify in {to} after the copy: {}; nothing of them deleted",
            problems.join("; ")
        )));
    }

    // Both verified in the destination: the old copies go.
    for (i, keys) in listed {
        let (region, src) = &sources[i];
        for key in keys {
            delete(src.as_ref(), region, &key).await?;
            moved.audit_deleted += 1;
        }
    }
    let lprefix = ledger_prefix(tenant);
    let mut ledger_keys = Vec::new();
    for (region, src) in sources {
        let keys = list_keys(src.as_ref(), region, &lprefix).await?;
        for key in keys.iter().filter(|k| !k.ends_with("/head.json")) {
            if copy_exact((region, src.as_ref()), (to, dst.as_ref()), key).await? {
                return Err(MigrateError::Records(format!(
                    "the disclosure ledger of {tenant} was appended in {region} during the move ({key}): run --finish again"
                )));
            }
        }
        ledger_keys.push((region, src, keys));
    }
    for (region, src, keys) in ledger_keys {
        for key in keys {
            delete(src.as_ref(), region, &key).await?;
            moved.ledger_deleted += 1;
        }
    }
    Ok(moved)
}

/// `backend`'s objects under `prefix` frozen for the verifier: HEAD records
/// read first, then the listing (without `hidden`: keys about to be
/// deleted). Batches never change, so they are read live.
async fn snapshot(
    region: &str,
    backend: &Arc<dyn Backend>,
    prefix: &str,
    hidden: &BTreeSet<String>,
) -> Result<Arc<dyn Backend>, MigrateError> {
    let mut heads = BTreeMap::new();
    for key in list_keys(backend.as_ref(), region, prefix).await? {
        if key.ends_with("/HEAD.json") && !hidden.contains(&key) {
            if let Some(b) = read(backend.as_ref(), region, &key).await? {
                heads.insert(key, b);
            }
        }
    }
    let mut objects = list_all(backend.as_ref(), region, prefix).await?;
    objects.retain(|o| {
        !hidden.contains(&o.key) && (!o.key.ends_with("/HEAD.json") || heads.contains_key(&o.key))
    });
    Ok(Arc::new(Snapshot {
        inner: backend.clone(),
        objects,
        heads,
    }))
}

/// See [`snapshot`]: listings and HEAD records as they were; the verifier
/// only lists and reads.
struct Snapshot {
    inner: Arc<dyn Backend>,
    objects: Vec<ObjectSummary>,
    heads: BTreeMap<String, Bytes>,
}

#[async_trait]
impl Backend for Snapshot {
    fn describe(&self) -> BackendDescription {
        self.inner.describe()
    }
    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        self.inner.put_object(key, body, meta).await
    }
    async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        let mut out = self.inner.get_object(key, range).await?;
        if let Some(b) = self.heads.get(key) {
            out.info.size = b.len() as u64;
            out.body = Body::from(b.clone());
            out.content_range = None;
        }
        Ok(out)
    }
    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.inner.head_object(key).await
    }
    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete_object(key).await
    }
    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        Ok(ListPage {
            objects: self
                .objects
                .iter()
                .filter(|o| o.key.starts_with(&request.prefix))
                .cloned()
                .collect(),
            ..ListPage::default()
        })
    }
    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError> {
        self.inner.copy_object(src_key, dst_key, meta).await
    }
    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        self.inner.create_multipart(key, meta).await
    }
    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        self.inner.upload_part(part).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.inner.list_parts(query).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        self.inner.list_multipart_uploads(prefix).await
    }
    async fn location(&self) -> Result<Option<String>, StoreError> {
        self.inner.location().await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}
