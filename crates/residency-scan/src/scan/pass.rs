//! One scan pass over a region: each page of keys (listed, or read from an
//! inventory) reconciled, its findings written, its cursor moved and
//! checkpointed.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use residency_policy::{CategoryId, RegionId, Tenant};
use residency_store::{Backend, ListRequest, ObjectSummary, StoreError};

use super::{now_secs, ScanError, ScanOptions, Scanner, FINDINGS_FILE};
use crate::checkpoint::{ctx_checkpoint, Shared};
use crate::finding::{Finding, FindingKind};
use crate::inventory::InventoryDelta;
use crate::progress::Progress;
use crate::reconcile::{self, MigrationView, Stored, Verdict};
use crate::retained::Retention;
use crate::summary::UNCLASSIFIED;

/// One listed key, reconciled.
pub(super) struct Reconciled {
    object: ObjectSummary,
    /// The tenant it counts for (`None`: unowned).
    tenant: Option<Arc<Tenant>>,
    /// Counted as a record (not in a category cell).
    record: bool,
    /// A record an erased tenant's erasure statement keeps (its tenant is
    /// not in the directory any more).
    retained_for: Option<String>,
    category: Option<CategoryId>,
    finding: Option<Finding>,
}

pub(super) struct Ctx<'a> {
    pub(super) scanner: &'a Scanner,
    pub(super) opts: &'a ScanOptions,
    pub(super) shared: &'a Mutex<Shared>,
    pub(super) checkpoint_path: &'a Path,
    pub(super) progress: &'a Progress,
}

/// The tenant last looked up, and the migration views computed for it (keys
/// come in order, so a tenant's keys are together).
#[derive(Default)]
pub(super) struct TenantCache {
    current: Option<(String, Option<Arc<Tenant>>)>,
    views: HashMap<String, MigrationView>,
    /// Tenants not in the directory whose records were seen → their latest
    /// erasure statement, if any.
    erasures: HashMap<String, Option<Arc<Retention>>>,
}

impl Ctx<'_> {
    pub(super) async fn region(
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
                    .map_err(ScanError::store(name))
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
                let listed = backend
                    .list_objects(req)
                    .await
                    .map_err(ScanError::store(name))?;
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
                retained_for: None,
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
                    retained_for: None,
                    category: None,
                    finding: None,
                }))
            }
            Stored::Record {
                kind,
                tenant: Some(t),
            } => {
                let Some(tenant) = self.tenant(&t, cache).await? else {
                    if let Some(r) = self.retained(region, &object, &t, cache).await? {
                        return Ok(Pending::Done(r));
                    }
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
            Err(source) => return Err(ScanError::store(region)(source)),
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
                retained_for: None,
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
                retained_for: None,
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

    /// A record of a tenant the directory does not know, kept by that
    /// tenant's erasure statement: counted for the tenant, and a finding
    /// once its retention has ended. `None`: no statement keeps it.
    async fn retained(
        &self,
        region: &str,
        object: &ObjectSummary,
        tenant: &str,
        cache: &mut TenantCache,
    ) -> Result<Option<Reconciled>, ScanError> {
        let erasure = match cache.erasures.get(tenant) {
            Some(e) => e.clone(),
            None => {
                let e = crate::retained::latest(&self.scanner.backends, tenant)
                    .await
                    .map_err(|(region, source)| ScanError::Store { region, source })?
                    .map(Arc::new);
                cache.erasures.insert(tenant.to_owned(), e.clone());
                e
            }
        };
        let Some(e) = erasure else {
            return Ok(None);
        };
        let Some(kept) = e.kept.iter().find(|k| object.key.starts_with(&k.prefix)) else {
            return Ok(None);
        };
        let finding = kept.until.filter(|u| *u <= now_secs()).map(|until| Finding {
            kind: FindingKind::RecordOutOfPlace,
            region: region.to_owned(),
            key: object.key.clone(),
            tenant: Some(tenant.to_owned()),
            category: None,
            expected_region: None,
            size: object.size,
            reason: format!(
                "{} of tenant {tenant:?}, erased at {}, kept past the end of their retention ({}): delete them",
                kept.what,
                httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(e.erased_at)),
                httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(until)),
            ),
        });
        Ok(Some(Reconciled {
            object: object.clone(),
            tenant: None,
            record: true,
            retained_for: Some(tenant.to_owned()),
            category: None,
            finding,
        }))
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
                (None, true) => match &r.retained_for {
                    Some(t) => s.summary.record(t, region, r.object.size),
                    None => s.summary.shared_records.add(r.object.size),
                },
                (None, false) => s.summary.unowned.add(r.object.size),
                (Some(t), true) => s.summary.record(t.id(), region, r.object.size),
                (Some(t), false) => s.summary.object(
                    t.id(),
                    r.category.map_or(UNCLASSIFIED, |c| policy.category(c).id()),
                    region,
                    r.object.size,
                ),
            }
            if let Some(f) = &r.finding {
                let owned = r.tenant.is_some() || r.retained_for.is_some();
                s.summary
                    .finding(f.kind, f.tenant.as_deref().filter(|_| owned));
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
pub(super) enum Advance {
    /// A listing: past this key.
    After(Option<String>),
    /// An inventory file: this many rows read.
    Rows(u64),
}

/// A listed key before its HEAD (if it needs one).
pub(super) enum Pending {
    Done(Reconciled),
    Head {
        object: ObjectSummary,
        tenant: Arc<Tenant>,
        view: MigrationView,
    },
}
