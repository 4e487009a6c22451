//! The scan loop: each region's bucket listed page by page (regions at
//! once), each key reconciled, findings streamed to `findings.jsonl`, the
//! cursors and counts checkpointed so that a killed scan resumes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use residency_directory::Directory;
use residency_migrate::ProgressMode;
use residency_policy::{CategoryId, Policy, RegionId, Tenant};
use residency_store::{Backend, ListRequest, ObjectSummary, StoreError};

use crate::checkpoint::{
    ctx_checkpoint, read_checkpoint, read_summary, write_atomic, Cursor, Shared,
};
pub use crate::error::ScanError;
use crate::finding::{Finding, FindingKind};
use crate::inventory::{InventoryDelta, Manifest};
use crate::progress::Progress;
use crate::reconcile::{self, MigrationView, Stored, Verdict};
use crate::summary::{Summary, UNCLASSIFIED};

/// `findings.jsonl`: one [`Finding`] per line.
pub const FINDINGS_FILE: &str = "findings.jsonl";
/// `summary.json`: the [`Summary`] of the last complete scan.
pub const SUMMARY_FILE: &str = "summary.json";
/// `checkpoint.json`: where a running scan is (removed when it completes).
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// What to scan, and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The output folder (findings, summary, checkpoint, report).
    pub out: PathBuf,
    /// Only this tenant's objects and records.
    pub tenant: Option<String>,
    /// Only these regions (empty: every region).
    pub regions: Vec<String>,
    /// Objects whose metadata is read (HEAD) at once, per region.
    pub parallel: usize,
    /// Keys per LIST page (S3 caps it at 1000).
    pub page_size: usize,
    /// Time between checkpoints (zero: after every page).
    pub checkpoint_every: Duration,
    /// Start afresh even when the folder holds an unfinished scan.
    pub restart: bool,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// The hosting policy file's SHA-256 (hex), recorded in the summary.
    pub policy_sha256: String,
    /// Tests: abort the process (as `kill -9` would) once this many pages
    /// are reconciled and their findings written, before their checkpoint.
    pub abort_after_pages: Option<u64>,
    /// Region → the S3 Inventory report read instead of listing it. With
    /// no `regions`, only these regions are scanned.
    pub inventories: Vec<(String, Manifest)>,
}

impl ScanOptions {
    /// Defaults: every region, 16 HEADs at once, 1000 keys per page, a
    /// checkpoint every 2 s.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ScanOptions {
            out: out.into(),
            tenant: None,
            regions: Vec::new(),
            parallel: 16,
            page_size: 1000,
            checkpoint_every: Duration::from_secs(2),
            restart: false,
            progress: ProgressMode::Quiet,
            policy_sha256: String::new(),
            abort_after_pages: None,
            inventories: Vec::new(),
        }
    }
}

/// What a finished scan produced.
#[derive(Debug)]
pub struct Outcome {
    /// The counts and findings per kind.
    pub summary: Summary,
    /// It went on from a checkpoint.
    pub resumed: bool,
    /// `findings.jsonl`.
    pub findings_path: PathBuf,
    /// `summary.json`.
    pub summary_path: PathBuf,
}

/// Reconciles every stored object of the regions against `policy` and the
/// tenants of `directory`.
pub struct Scanner {
    policy: Arc<Policy>,
    directory: Arc<dyn Directory>,
    backends: Vec<(String, Arc<dyn Backend>)>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field(
                "regions",
                &self.backends.iter().map(|b| &b.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Scanner {
    /// A scanner over `backends` (region id → the region's bucket).
    pub fn new(
        policy: Arc<Policy>,
        directory: Arc<dyn Directory>,
        backends: Vec<(String, Arc<dyn Backend>)>,
    ) -> Self {
        Scanner {
            policy,
            directory,
            backends,
        }
    }

    /// The policy it decides with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The regions' backends.
    pub fn backends(&self) -> &[(String, Arc<dyn Backend>)] {
        &self.backends
    }

    /// A tenant as the directory has it now.
    ///
    /// # Errors
    /// The directory could not answer.
    pub async fn lookup(&self, tenant: &str) -> Result<Option<Arc<Tenant>>, ScanError> {
        Ok(self.directory.tenant(&self.policy, tenant).await?)
    }

    /// Scans one tenant's keys into a temporary folder (what an attestation
    /// or an erasure plan starts from) and returns the summary.
    ///
    /// # Errors
    /// As [`Scanner::run`].
    pub async fn scan_tenant(&self, tenant: &str) -> Result<Summary, ScanError> {
        let out = tempfile::tempdir().map_err(ScanError::io(&std::env::temp_dir()))?;
        let mut opts = ScanOptions::new(out.path());
        opts.tenant = Some(tenant.to_owned());
        Ok(self.run(&opts).await?.summary)
    }

    /// The regions asked for: `--region`, else the inventories' regions
    /// (empty: every region). An inventory's region must be known and
    /// asked for, once.
    fn selected(opts: &ScanOptions) -> Result<Vec<String>, ScanError> {
        let mut seen: Vec<&str> = Vec::new();
        for (r, m) in &opts.inventories {
            if seen.contains(&r.as_str()) {
                return Err(ScanError::Usage(format!(
                    "two inventories for region {r:?}: give one manifest per region"
                )));
            }
            seen.push(r);
            if !opts.regions.is_empty() && !opts.regions.contains(r) {
                return Err(ScanError::Usage(format!(
                    "the inventory {} is of region {r:?}, which --region leaves out",
                    m.path.display()
                )));
            }
        }
        Ok(if opts.regions.is_empty() {
            opts.inventories.iter().map(|i| i.0.clone()).collect()
        } else {
            opts.regions.clone()
        })
    }

    /// The prefixes that hold `tenant`'s keys (every key without a tenant).
    fn prefixes(tenant: Option<&str>) -> Vec<String> {
        match tenant {
            None => vec![String::new()],
            Some(t) => vec![
                format!("{t}/"),
                residency_audit::batch::audit_prefix(t),
                format!("_migrations/{t}/"),
                format!("_disclosure/{t}/"),
                format!("_attestations/{t}/"),
            ],
        }
    }

    /// Scans, resuming from the folder's checkpoint when it holds one of the
    /// same scan (same tenant and regions) and `restart` is not set.
    ///
    /// # Errors
    /// [`ScanError::Usage`] for an unknown region or a checkpoint of another
    /// scan; a region or the directory that fails stops the scan (the
    /// checkpoint stays: run again to resume).
    pub async fn run(&self, opts: &ScanOptions) -> Result<Outcome, ScanError> {
        let selected = Self::selected(opts)?;
        let regions: Vec<(String, Arc<dyn Backend>, RegionId)> = {
            let mut out = Vec::new();
            for r in selected.iter().chain(opts.inventories.iter().map(|i| &i.0)) {
                if !self.backends.iter().any(|(id, _)| id == r) {
                    let known: Vec<&str> = self.backends.iter().map(|b| b.0.as_str()).collect();
                    return Err(ScanError::Usage(format!(
                        "unknown region {r:?}: the configuration has {}",
                        known.join(", ")
                    )));
                }
            }
            for (id, backend) in &self.backends {
                if !selected.is_empty() && !selected.contains(id) {
                    continue;
                }
                let rid = self.policy.region_by_id(id).ok_or_else(|| {
                    ScanError::Usage(format!("region {id:?} is not declared by the policy"))
                })?;
                out.push((id.clone(), backend.clone(), rid));
            }
            out
        };
        std::fs::create_dir_all(&opts.out).map_err(ScanError::io(&opts.out))?;
        let checkpoint_path = opts.out.join(CHECKPOINT_FILE);
        let findings_path = opts.out.join(FINDINGS_FILE);
        let summary_path = opts.out.join(SUMMARY_FILE);
        let region_names: Vec<String> = regions.iter().map(|r| r.0.clone()).collect();
        let previous_total = read_summary(&summary_path)
            .ok()
            .filter(|s| s.complete && s.tenant_filter == opts.tenant)
            .map(|s| s.listed.objects);

        let resumed = if opts.restart {
            None
        } else {
            read_checkpoint(&checkpoint_path)?
        };
        let (shared, resumed) = match resumed {
            Some(cp) => {
                let same_inventories = cp.summary.inventory.len() == opts.inventories.len()
                    && cp
                        .summary
                        .inventory
                        .iter()
                        .zip(&opts.inventories)
                        .all(|(n, (r, m))| {
                            let now = m.note(r);
                            (&n.region, &n.manifest, n.created_at)
                                == (&now.region, &now.manifest, now.created_at)
                        });
                if cp.summary.tenant_filter != opts.tenant
                    || cp.summary.regions != region_names
                    || !same_inventories
                {
                    return Err(ScanError::Usage(format!(
                        "{} holds an unfinished scan of {} in [{}]; resume it with the same --tenant, --region and --inventory, or start afresh with --restart",
                        opts.out.display(),
                        cp.summary.tenant_filter.as_deref().map_or("every tenant".to_owned(), |t| format!("tenant {t}")),
                        cp.summary.regions.join(", ")
                    )));
                }
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&findings_path)
                    .map_err(ScanError::io(&findings_path))?;
                // What was written after the checkpoint is found again.
                f.set_len(cp.findings_len)
                    .map_err(ScanError::io(&findings_path))?;
                f.seek(SeekFrom::End(0))
                    .map_err(ScanError::io(&findings_path))?;
                tracing::info!(
                    scan = %cp.summary.scan_id,
                    pages = cp.pages,
                    listed = cp.summary.listed.objects,
                    "resuming the scan from its checkpoint"
                );
                let shared = Shared {
                    summary: cp.summary,
                    findings: BufWriter::new(f),
                    findings_len: cp.findings_len,
                    cursors: cp.cursors,
                    pages: cp.pages,
                    last_checkpoint: Instant::now(),
                };
                (shared, true)
            }
            None => {
                let f = File::create(&findings_path).map_err(ScanError::io(&findings_path))?;
                let started_at = now_secs();
                let summary = Summary {
                    scan_id: format!("{started_at}-{}", std::process::id()),
                    started_at,
                    policy_version: self.policy.version().to_owned(),
                    policy_sha256: opts.policy_sha256.clone(),
                    tenant_filter: opts.tenant.clone(),
                    regions: region_names.clone(),
                    inventory: opts.inventories.iter().map(|(r, m)| m.note(r)).collect(),
                    ..Summary::default()
                }
                .with_kinds();
                let mut cursors = Vec::new();
                for r in &region_names {
                    if let Some((_, m)) = opts.inventories.iter().find(|i| &i.0 == r) {
                        for (i, (f, _)) in m.files.iter().enumerate() {
                            cursors.push(Cursor {
                                region: r.clone(),
                                prefix: f.key.clone(),
                                after: None,
                                done: false,
                                file: Some(i),
                                rows: 0,
                            });
                        }
                        continue;
                    }
                    for p in Self::prefixes(opts.tenant.as_deref()) {
                        cursors.push(Cursor {
                            region: r.clone(),
                            prefix: p,
                            after: None,
                            done: false,
                            file: None,
                            rows: 0,
                        });
                    }
                }
                let shared = Shared {
                    summary,
                    findings: BufWriter::new(f),
                    findings_len: 0,
                    cursors,
                    pages: 0,
                    last_checkpoint: Instant::now(),
                };
                (shared, false)
            }
        };
        let already = shared.summary.listed.objects;
        let shared = Mutex::new(shared);
        let progress = Progress::start(opts.progress, already, previous_total);
        let ctx = Ctx {
            scanner: self,
            opts,
            shared: &shared,
            checkpoint_path: &checkpoint_path,
            progress: &progress,
        };
        let result = futures::future::try_join_all(
            regions
                .iter()
                .map(|(name, backend, rid)| ctx.region(name, backend.as_ref(), *rid)),
        )
        .await;
        drop(progress);
        let mut shared = shared.into_inner().expect("no task panicked holding it");
        if let Err(e) = result {
            // Keep what was done: the next run resumes from here.
            let _ = ctx_checkpoint(&mut shared, &checkpoint_path);
            return Err(e);
        }
        shared
            .findings
            .flush()
            .map_err(ScanError::io(&findings_path))?;
        shared.summary.complete = true;
        shared.summary.finished_at = Some(now_secs());
        write_atomic(&summary_path, &shared.summary)?;
        match std::fs::remove_file(&checkpoint_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ScanError::io(&checkpoint_path)(e))
            }
            _ => {}
        }
        Ok(Outcome {
            summary: shared.summary,
            resumed,
            findings_path,
            summary_path,
        })
    }
}

/// One listed key, reconciled.
struct Reconciled {
    object: ObjectSummary,
    /// The tenant it counts for (`None`: unowned).
    tenant: Option<Arc<Tenant>>,
    /// Counted as a record (not in a category cell).
    record: bool,
    category: Option<CategoryId>,
    finding: Option<Finding>,
}

struct Ctx<'a> {
    scanner: &'a Scanner,
    opts: &'a ScanOptions,
    shared: &'a Mutex<Shared>,
    checkpoint_path: &'a Path,
    progress: &'a Progress,
}

/// The tenant last looked up, and the migration views computed for it (keys
/// come in order, so a tenant's keys are together).
#[derive(Default)]
struct TenantCache {
    current: Option<(String, Option<Arc<Tenant>>)>,
    views: HashMap<String, MigrationView>,
}

impl Ctx<'_> {
    async fn region(
        &self,
        name: &str,
        backend: &dyn Backend,
        rid: RegionId,
    ) -> Result<(), ScanError> {
        let mut cache = TenantCache::default();
        let page_size = self.opts.page_size.clamp(1, 1000);
        let list = |prefix: &str, after: Option<String>| {
            let mut req = ListRequest::new(prefix).max_keys(page_size);
            if let Some(after) = after {
                req = req.start_after(after);
            }
            async move {
                backend
                    .list_objects(req)
                    .await
                    .map_err(|source| ScanError::Store {
                        region: name.to_owned(),
                        source,
                    })
            }
        };
        loop {
            // The next unfinished cursor of this region.
            let cursor = {
                let s = self.shared.lock().expect("lock");
                s.cursors
                    .iter()
                    .position(|c| c.region == name && !c.done)
                    .map(|i| (i, s.cursors[i].clone()))
            };
            let Some((index, cursor)) = cursor else {
                return Ok(());
            };
            if let Some(file) = cursor.file {
                self.inventory_file(name, backend, rid, (index, file, cursor.rows), &mut cache)
                    .await?;
                continue;
            }
            let mut page = list(&cursor.prefix, cursor.after.clone()).await?;
            loop {
                let last = page.objects.last().map(|o| o.key.clone());
                let done = page.next_continuation_token.is_none() || last.is_none();
                // The next page is listed while this one is reconciled.
                let next = async {
                    match (&last, done) {
                        (Some(after), false) => {
                            list(&cursor.prefix, Some(after.clone())).await.map(Some)
                        }
                        _ => Ok(None),
                    }
                };
                let objects = std::mem::take(&mut page.objects);
                let this = self.reconcile_page(name, rid, backend, objects, &mut cache);
                let (next, reconciled) = futures::join!(next, this);
                self.apply(name, index, reconciled?, Advance::After(last), done, None)?;
                match next? {
                    Some(p) => page = p,
                    None => break,
                }
            }
        }
    }

    /// Reconciles an inventory data file of `region` from row `rows` on
    /// (cursor `index`), page by page; each finding is checked against the
    /// live bucket.
    async fn inventory_file(
        &self,
        name: &str,
        backend: &dyn Backend,
        rid: RegionId,
        (index, file, rows): (usize, usize, u64),
        cache: &mut TenantCache,
    ) -> Result<(), ScanError> {
        let manifest = &self
            .opts
            .inventories
            .iter()
            .find(|i| i.0 == name)
            .expect("a region with a file cursor has an inventory")
            .1;
        let mut rows = manifest.rows(file, rows)?;
        let prefixes = Scanner::prefixes(self.opts.tenant.as_deref());
        let page_size = self.opts.page_size.clamp(1, 1000);
        loop {
            let skipped = rows.skipped;
            let (objects, done) = rows.page(page_size)?;
            let mut delta = InventoryDelta {
                rows: objects.len() as u64,
                skipped: rows.skipped - skipped,
                ..InventoryDelta::default()
            };
            let objects = objects
                .into_iter()
                .filter(|o| prefixes.iter().any(|p| o.key.starts_with(p.as_str())))
                .collect();
            let page = self
                .reconcile_page(name, rid, backend, objects, cache)
                .await?;
            let page = self
                .confirm(name, rid, backend, page, cache, &mut delta)
                .await?;
            let advance = Advance::Rows(rows.consumed);
            self.apply(name, index, page, advance, done, Some(delta))?;
            if done {
                return Ok(());
            }
        }
    }

    /// Checks each finding of an inventory page against the live bucket (a
    /// LIST at its key, at once): one deleted since is left out, one
    /// written again since is reconciled as it is now.
    async fn confirm(
        &self,
        name: &str,
        rid: RegionId,
        backend: &dyn Backend,
        page: Vec<Reconciled>,
        cache: &mut TenantCache,
        delta: &mut InventoryDelta,
    ) -> Result<Vec<Reconciled>, ScanError> {
        let live: Vec<Option<Option<ObjectSummary>>> = futures::stream::iter(&page)
            .map(|r| async move {
                if r.finding.is_none() {
                    return Ok::<_, ScanError>(None);
                }
                let key = &r.object.key;
                let req = ListRequest::new(key.as_str()).max_keys(1);
                let listed =
                    backend
                        .list_objects(req)
                        .await
                        .map_err(|source| ScanError::Store {
                            region: name.to_owned(),
                            source,
                        })?;
                Ok(Some(listed.objects.into_iter().find(|o| &o.key == key)))
            })
            .buffered(self.opts.parallel.max(1))
            .try_collect()
            .await?;
        let mut out = Vec::with_capacity(page.len());
        for (r, live) in page.into_iter().zip(live) {
            match live {
                None => out.push(r),
                Some(None) => delta.gone_since += 1,
                Some(Some(now)) if crate::inventory::unchanged(&r.object, &now) => {
                    delta.confirmed += 1;
                    out.push(r);
                }
                Some(Some(now)) => {
                    delta.changed_since += 1;
                    let pending = self.classify(name, rid, now, cache).await?;
                    out.extend(self.finish(name, rid, backend, pending).await?);
                }
            }
        }
        Ok(out)
    }

    /// Reconciles one page's keys, in order (HEADs run at once).
    async fn reconcile_page(
        &self,
        name: &str,
        rid: RegionId,
        backend: &dyn Backend,
        objects: Vec<ObjectSummary>,
        cache: &mut TenantCache,
    ) -> Result<Vec<Reconciled>, ScanError> {
        let mut pending = Vec::with_capacity(objects.len());
        for o in objects {
            pending.push(self.classify(name, rid, o, cache).await?);
        }
        futures::stream::iter(pending)
            .map(|r| self.finish(name, rid, backend, r))
            .buffered(self.opts.parallel.max(1))
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await
    }

    /// The verdict that needs no HEAD, or the object marked to be HEADed.
    async fn classify(
        &self,
        region: &str,
        rid: RegionId,
        object: ObjectSummary,
        cache: &mut TenantCache,
    ) -> Result<Pending, ScanError> {
        let policy = &*self.scanner.policy;
        let stored = reconcile::parse_key(&object.key);
        let unowned = |reason: String, kind: FindingKind, tenant: Option<String>| {
            Ok(Pending::Done(Reconciled {
                finding: Some(Finding {
                    kind,
                    region: region.to_owned(),
                    key: object.key.clone(),
                    tenant: tenant.clone(),
                    category: None,
                    expected_region: None,
                    size: object.size,
                    reason,
                }),
                tenant: None,
                record: false,
                category: None,
                object: object.clone(),
            }))
        };
        match stored {
            Stored::NoTenant => unowned(
                "the key has no tenant prefix (<tenant>/...)".to_owned(),
                FindingKind::UnknownTenant,
                None,
            ),
            Stored::UnknownInternal => unowned(
                "an internal folder Residency does not write".to_owned(),
                FindingKind::RecordOutOfPlace,
                None,
            ),
            Stored::Record { kind, tenant: None } => {
                let v = reconcile::record(policy, kind, None, rid, &MigrationView::None);
                debug_assert!(matches!(v, Verdict::InPlace { .. }));
                Ok(Pending::Done(Reconciled {
                    object,
                    tenant: None,
                    record: true,
                    category: None,
                    finding: None,
                }))
            }
            Stored::Record {
                kind,
                tenant: Some(t),
            } => {
                let Some(tenant) = self.tenant(&t, cache).await? else {
                    return unowned(
                        format!(
                            "{} of tenant {t:?}, which the directory does not know",
                            kind.label()
                        ),
                        FindingKind::UnknownTenant,
                        Some(t.into_owned()),
                    );
                };
                let view = self.view(&tenant, region, rid, cache).await?;
                let v = reconcile::record(policy, kind, Some(&tenant), rid, &view);
                Ok(Pending::Done(self.verdict(region, object, tenant, true, v)))
            }
            Stored::Object { tenant: t, key } => {
                let Some(tenant) = self.tenant(t, cache).await? else {
                    return unowned(
                        format!("tenant {t:?} is not in the directory"),
                        FindingKind::UnknownTenant,
                        Some(t.to_owned()),
                    );
                };
                let view = self.view(&tenant, region, rid, cache).await?;
                if reconcile::needs_metadata(policy, key) {
                    return Ok(Pending::Head {
                        object,
                        tenant,
                        view,
                    });
                }
                let v = reconcile::object(policy, &tenant, rid, key, None, None, &view);
                Ok(Pending::Done(
                    self.verdict(region, object, tenant, false, v),
                ))
            }
        }
    }

    /// HEADs an object whose metadata decides its category. An object
    /// deleted since it was listed is left out.
    async fn finish(
        &self,
        region: &str,
        rid: RegionId,
        backend: &dyn Backend,
        pending: Pending,
    ) -> Result<Option<Reconciled>, ScanError> {
        let (object, tenant, view) = match pending {
            Pending::Done(r) => return Ok(Some(r)),
            Pending::Head {
                object,
                tenant,
                view,
            } => (object, tenant, view),
        };
        let info = match backend.head_object(&object.key).await {
            Ok(info) => info,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(ScanError::Store {
                    region: region.to_owned(),
                    source,
                })
            }
        };
        let key = &object.key[tenant.id().len() + 1..];
        let v = reconcile::object_as_stored(
            &self.scanner.policy,
            &tenant,
            rid,
            key,
            &info.headers,
            &view,
        );
        Ok(Some(self.verdict(region, object, tenant, false, v)))
    }

    fn verdict(
        &self,
        region: &str,
        object: ObjectSummary,
        tenant: Arc<Tenant>,
        record: bool,
        v: Verdict,
    ) -> Reconciled {
        let policy = &*self.scanner.policy;
        match v {
            Verdict::InPlace { category } => Reconciled {
                object,
                tenant: Some(tenant),
                record,
                category,
                finding: None,
            },
            Verdict::Finding {
                kind,
                category,
                expected,
                reason,
            } => Reconciled {
                finding: Some(Finding {
                    kind,
                    region: region.to_owned(),
                    key: object.key.clone(),
                    tenant: Some(tenant.id().to_owned()),
                    category: category.map(|c| policy.category(c).id().to_owned()),
                    expected_region: expected.map(|r| policy.region(r).id().to_owned()),
                    size: object.size,
                    reason,
                }),
                object,
                tenant: Some(tenant),
                record,
                category,
            },
        }
    }

    /// The tenant named `id`, from the one-entry cache or the directory.
    async fn tenant(
        &self,
        id: &str,
        cache: &mut TenantCache,
    ) -> Result<Option<Arc<Tenant>>, ScanError> {
        if let Some((cid, t)) = &cache.current {
            if cid == id {
                return Ok(t.clone());
            }
        }
        let t = self
            .scanner
            .directory
            .tenant(&self.scanner.policy, id)
            .await?;
        cache.current = Some((id.to_owned(), t.clone()));
        cache.views.clear();
        Ok(t)
    }

    /// How `tenant`'s migrations bear on `region`.
    async fn view(
        &self,
        tenant: &Tenant,
        region: &str,
        rid: RegionId,
        cache: &mut TenantCache,
    ) -> Result<MigrationView, ScanError> {
        if tenant.migrated_from() == Some(rid) && tenant.migrating_from() != Some(rid) {
            return Ok(MigrationView::Finished);
        }
        if tenant.migrating_from() != Some(rid) {
            return Ok(MigrationView::None);
        }
        if let Some(v) = cache.views.get(region) {
            return Ok(v.clone());
        }
        let statuses = residency_migrate::migration_status(
            &self.scanner.backends,
            Some(tenant.id()),
            now_secs(),
        )
        .await
        .map_err(|e| ScanError::Journals {
            tenant: tenant.id().to_owned(),
            source: e,
        })?;
        let view = match statuses
            .iter()
            .find(|m| m.from == region && m.finished_at.is_none())
        {
            Some(m) if m.overdue => MigrationView::Overdue(format!(
                "its assurance window ended {} s ago without `{}`",
                m.overdue_secs, m.finish_command
            )),
            _ => MigrationView::Open,
        };
        cache.views.insert(region.to_owned(), view.clone());
        Ok(view)
    }

    /// Counts a page, writes its findings, moves its cursor, checkpoints.
    fn apply(
        &self,
        region: &str,
        index: usize,
        page: Vec<Reconciled>,
        advance: Advance,
        done: bool,
        inventory: Option<InventoryDelta>,
    ) -> Result<(), ScanError> {
        let mut guard = self.shared.lock().expect("lock");
        let s = &mut *guard;
        let findings_path = self.opts.out.join(FINDINGS_FILE);
        for r in &page {
            s.summary.listed(region, r.object.size);
            let policy = &*self.scanner.policy;
            match (&r.tenant, r.record) {
                (None, _) => s.summary.unowned.add(r.object.size),
                (Some(t), true) => s.summary.record(t.id(), region, r.object.size),
                (Some(t), false) => s.summary.object(
                    t.id(),
                    r.category.map_or(UNCLASSIFIED, |c| policy.category(c).id()),
                    region,
                    r.object.size,
                ),
            }
            if let Some(f) = &r.finding {
                s.summary
                    .finding(f.kind, f.tenant.as_deref().filter(|_| r.tenant.is_some()));
                let mut line = serde_json::to_vec(f).expect("a finding serializes");
                line.push(b'\n');
                s.findings
                    .write_all(&line)
                    .map_err(ScanError::io(&findings_path))?;
                s.findings_len += line.len() as u64;
                self.progress.finding();
            }
        }
        self.progress.listed(page.len() as u64);
        if let Some(d) = inventory {
            if let Some(note) = s.summary.inventory.iter_mut().find(|n| n.region == region) {
                d.add_to(note);
            }
        }
        let c = &mut s.cursors[index];
        match advance {
            Advance::After(Some(last)) => c.after = Some(last),
            Advance::After(None) => {}
            Advance::Rows(rows) => c.rows = rows,
        }
        c.done = done;
        s.pages += 1;
        if self.opts.abort_after_pages == Some(s.pages) {
            // As `kill -9` after the findings reached the file, before the
            // checkpoint that covers them.
            let _ = s.findings.flush();
            eprintln!(
                "residency scan: aborting after {} page(s) (test fault)",
                s.pages
            );
            std::process::abort();
        }
        if s.last_checkpoint.elapsed() >= self.opts.checkpoint_every {
            ctx_checkpoint(s, self.checkpoint_path)?;
        }
        Ok(())
    }
}

/// How far a page moves its cursor.
enum Advance {
    /// A listing: past this key.
    After(Option<String>),
    /// An inventory file: this many rows read.
    Rows(u64),
}

/// A listed key before its HEAD (if it needs one).
enum Pending {
    Done(Reconciled),
    Head {
        object: ObjectSummary,
        tenant: Arc<Tenant>,
        view: MigrationView,
    },
}
