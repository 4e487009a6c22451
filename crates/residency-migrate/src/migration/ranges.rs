//! Key ranges: one migration shared by several workers on several machines
//! (issue 16, item 6). A tenant of 10^8 objects at ~300 objects/s is four
//! days for one process.
//!
//! With the tenant directory and `--range-size N`, the run holding the
//! tenant's lease (the coordinator) lists each source region and writes a
//! key range every N keys to `migration_ranges` while it lists; the last
//! range of a region has no end, and marks the region's plan complete.
//! Every worker, the coordinator included and any number of
//! `residency migrate --join` on other machines, leases a pending range
//! (`FOR UPDATE SKIP LOCKED`: two workers never take the same one), renews
//! the lease while it copies and verifies the range's keys, journals them
//! under the range's own cursor in the destination, and marks the range
//! done. A worker that dies leaves its range leased until the lease
//! expires; another worker then takes it over and resumes after the range's
//! last stored page (objects found already copied are verified, not copied
//! again). Workers wait while a range is leased by a live holder, and stop
//! once every range of a complete plan is done; the coordinator then adds
//! the ranges' totals to the migration's state and goes on as a single
//! worker does (verified, assurance window, delete).

use residency_directory::postgres::{
    claim_range, finish_range, last_range, list_ranges, plan_range, range_counts, ranged_migration,
    release_range, Client, MigrationRange,
};

use super::copy::{Cursor, Pass};
use super::*;
use crate::journal::{range_folder, RangeState};
use crate::source::{DirectorySource, RangeLease};

/// A suggested number of objects per key range (`--range-size`): at
/// ~300 objects/s per worker, about half a minute of work per range.
pub const DEFAULT_RANGE_SIZE: u64 = 10_000;

/// A key range, in its own journal cursor.
struct RangePass {
    id: String,
    folder: String,
    st: RangeState,
}

impl Pass for RangePass {
    fn folder(&self) -> String {
        self.folder.clone()
    }

    fn pages(&self) -> u64 {
        self.st.pages
    }

    fn mismatched(&self) -> usize {
        self.st.mismatched_keys.len()
    }

    fn cursor(&mut self) -> Cursor<'_> {
        let st = &mut self.st;
        Cursor {
            pages: &mut st.pages,
            last_key: &mut st.last_key,
            listed: &mut st.listed,
            totals: &mut st.totals,
            mismatched_keys: &mut st.mismatched_keys,
        }
    }

    async fn save(&self, journal: &Journal) -> Result<(), MigrateError> {
        journal.save_range(&self.id, &self.folder, &self.st).await
    }
}

impl Migrator {
    /// The journal page size of a range's copy: a quarter of a range, so a
    /// range taken over resumes after its last stored quarter.
    fn range_page_size(&self) -> usize {
        let size = self.opts.range_size.unwrap_or(DEFAULT_RANGE_SIZE);
        usize::try_from(size / 4).unwrap_or(1000).clamp(10, 1000)
    }

    /// Whether this run copies through key ranges: with the directory, when
    /// asked to (`range_size`) or when the migration already has ranges (a
    /// coordinator resumed without the flag keeps them).
    pub(super) async fn ranged(
        &self,
        migration_id: &str,
    ) -> Result<Option<(&DirectorySource, Client)>, MigrateError> {
        let TenantSource::Directory(d) = &self.source else {
            return Ok(None);
        };
        let client = d.connect().await?;
        if self.opts.range_size.is_some()
            || ranged_migration(&client, &self.opts.tenant)
                .await
                .map_err(|e| d.error(e))?
                .as_deref()
                == Some(migration_id)
        {
            return Ok(Some((d, client)));
        }
        Ok(None)
    }

    /// Whether a worker holds a live lease on a key range of the migration.
    pub(super) async fn ranges_leased(&self, migration_id: &str) -> Result<bool, MigrateError> {
        let TenantSource::Directory(d) = &self.source else {
            return Ok(false);
        };
        let client = d.connect().await?;
        let c = range_counts(&client, &self.opts.tenant, migration_id)
            .await
            .map_err(|e| d.error(e))?;
        Ok(c.leased > 0)
    }

    /// The coordinator's copy through key ranges: plans the ranges of
    /// every region not copied yet while working ranges like any worker,
    /// then adds the ranges' totals to the migration's state.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_ranged(
        &self,
        d: &DirectorySource,
        client: &Client,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        journal: &Journal,
        state: &mut State,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        let open: Regions = sources
            .iter()
            .enumerate()
            .filter(|(i, _)| !state.sources[*i].listed)
            .map(|(_, s)| s.clone())
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let size = self.opts.range_size.unwrap_or(DEFAULT_RANGE_SIZE).max(1);
        let plan = async {
            for (region, backend) in &open {
                self.plan_region(d, client, ctx, region, backend, size)
                    .await?;
            }
            Ok::<_, MigrateError>(())
        };
        let ((), mine) = tokio::try_join!(plan, self.work_ranges(d, ctx, &open, journal))?;
        run.add_totals(&mine);
        run.ranges += mine.ranges;

        // Every range is done: their totals become the migration's.
        let ranges = list_ranges(client, &ctx.tenant, &ctx.id)
            .await
            .map_err(|e| d.error(e))?;
        for i in 0..state.sources.len() {
            if state.sources[i].listed {
                continue;
            }
            let region = state.sources[i].region.clone();
            let mut pages = Vec::new();
            for r in ranges.iter().filter(|r| r.region == region) {
                let folder = range_folder(&region, r.range_no);
                let st = journal.load_range(&ctx.id, &folder).await?;
                if usize::try_from(r.range_no).ok() != Some(pages.len()) || !r.done || !st.listed {
                    return Err(MigrateError::Journal(format!(
                        "range {} of {region} (migration {}) is not complete although every range was reported done",
                        r.range_no, ctx.id
                    )));
                }
                state.totals.add_totals(&st.totals);
                state.totals.ranges += 1;
                state.mismatched_keys.extend(st.mismatched_keys);
                pages.push(st.pages);
            }
            let s = &mut state.sources[i];
            s.ranges = pages;
            s.listed = true;
        }
        journal.save_state(state).await?;
        tracing::info!(
            id = %ctx.id,
            ranges = state.totals.ranges,
            by_this_worker = run.ranges,
            "every key range is done"
        );
        Ok(())
    }

    /// Lists `region` and plans a range every `size` keys, after the last
    /// range already planned (a resumed coordinator goes on where it was).
    async fn plan_region(
        &self,
        d: &DirectorySource,
        client: &Client,
        ctx: &RunCtx,
        region: &str,
        backend: &Arc<dyn Backend>,
        size: u64,
    ) -> Result<(), MigrateError> {
        let (tenant, id) = (&ctx.tenant, &ctx.id);
        let (mut no, mut after) = match last_range(client, tenant, id, region)
            .await
            .map_err(|e| d.error(e))?
        {
            Some(r) => match r.end_key {
                None => return Ok(()),
                Some(end) => (r.range_no + 1, end),
            },
            None => (0, String::new()),
        };
        let mut lister = Lister::new(
            backend.clone(),
            region,
            &ctx.prefix,
            (!after.is_empty()).then(|| after.clone()),
        );
        let mut n = 0u64;
        while !lister.done {
            for o in lister.next_page().await? {
                n += 1;
                if n == size {
                    plan_range(client, tenant, id, region, no, &after, Some(&o.key))
                        .await
                        .map_err(|e| d.error(e))?;
                    no += 1;
                    after = o.key;
                    n = 0;
                }
            }
        }
        plan_range(client, tenant, id, region, no, &after, None)
            .await
            .map_err(|e| d.error(e))?;
        tracing::info!(region, ranges = no + 1, "key ranges planned");
        Ok(())
    }

    /// Leases and copies ranges of `sources` until every range of their
    /// complete plans is done. Answers this worker's counters (`ranges`:
    /// the ranges it completed).
    async fn work_ranges(
        &self,
        d: &DirectorySource,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        journal: &Journal,
    ) -> Result<Totals, MigrateError> {
        let client = Arc::new(d.connect().await?);
        let poll = (d.lease_ttl / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        let mut mine = Totals::default();
        loop {
            let claimed = claim_range(&*client, &ctx.tenant, &ctx.id, &d.holder, d.lease_ttl)
                .await
                .map_err(|e| d.error(e))?;
            let Some(r) = claimed else {
                let c = range_counts(&*client, &ctx.tenant, &ctx.id)
                    .await
                    .map_err(|e| d.error(e))?;
                let planned = sources.iter().all(|(s, _)| c.complete_regions.contains(s));
                if planned && c.done == c.planned {
                    return Ok(mine);
                }
                if !planned && !c.coordinator_live {
                    // Only the coordinator plans: it died mid-plan.
                    return Err(MigrateError::NotReady(format!(
                        "the key ranges of migration {} are not all planned and no migrator holds the tenant's lease: run the coordinator again (`residency migrate --tenant {} --to {} --range-size N`), then join",
                        ctx.id, ctx.tenant, ctx.to
                    )));
                }
                // Ranges not planned yet, or leased by live workers (one
                // that dies leaves its range to expire: it is taken then).
                tokio::time::sleep(poll).await;
                continue;
            };
            let Some((_, backend)) = sources.iter().find(|(s, _)| *s == r.region) else {
                return Err(MigrateError::Config(format!(
                    "range {} of migration {} lists region {}, which this worker does not copy from",
                    r.range_no, r.migration_id, r.region
                )));
            };
            tracing::info!(region = %r.region, range = r.range_no, start_after = %r.start_after, end_key = r.end_key.as_deref().unwrap_or("(end)"), "key range leased");
            let mut lease = RangeLease::start(d, client.clone(), r.clone());
            let mut run = Totals::default();
            let result = tokio::select! {
                res = self.copy_range(ctx, &r, backend, journal, &mut run) => res,
                why = lease.lost() => Err(MigrateError::Conflict(format!(
                    "{why}: this worker stopped (the range's journal is consistent; the worker holding it now resumes it)"
                ))),
            };
            drop(lease);
            let st = match result {
                Ok(st) => st,
                Err(e) => {
                    // Given back at once: another worker may take it. (A
                    // fault point stands for a kill: the range is left to
                    // expire, as a dead worker's is.)
                    if !matches!(e, MigrateError::Fault(_)) {
                        let _ = release_range(&*client, &r, &d.holder).await;
                    }
                    return Err(e);
                }
            };
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let finished = finish_range(
                &*client,
                &r,
                &d.holder,
                count(st.totals.listed),
                count(st.totals.copied),
            )
            .await
            .map_err(|e| d.error(e))?;
            if !finished {
                return Err(MigrateError::Conflict(format!(
                    "range {} of {} was taken over by another worker before this one marked it done (its lease expired): this worker stopped",
                    r.range_no, r.region
                )));
            }
            mine.add_totals(&run);
            mine.ranges += 1;
        }
    }

    /// Copies and verifies one range's keys, resuming after its journal's
    /// last stored page.
    async fn copy_range(
        &self,
        ctx: &Arc<RunCtx>,
        r: &MigrationRange,
        backend: &Arc<dyn Backend>,
        journal: &Journal,
        run: &mut Totals,
    ) -> Result<RangeState, MigrateError> {
        let folder = range_folder(&r.region, r.range_no);
        let st = journal.load_range(&ctx.id, &folder).await?;
        if st.listed {
            // Copied by a worker that died before marking it done.
            return Ok(st);
        }
        if st.pages > 0 {
            tracing::info!(region = %r.region, range = r.range_no, pages = st.pages, "resuming a key range after its last stored page");
        }
        let after = st
            .last_key
            .clone()
            .or_else(|| (!r.start_after.is_empty()).then(|| r.start_after.clone()));
        let lister = Lister::new(backend.clone(), &r.region, &ctx.prefix, after)
            .range(r.end_key.clone(), self.range_page_size());
        let mut pass = RangePass {
            id: ctx.id.clone(),
            folder,
            st,
        };
        self.copy_pass(ctx, &r.region, backend, journal, lister, &mut pass, run)
            .await?;
        Ok(pass.st)
    }

    /// `--join`: works key ranges of the tenant's migration to `opts.to`
    /// that a coordinator (`residency migrate --range-size N`) planned in the
    /// tenant directory, until every range is done. Takes no tenant lease,
    /// does not switch, verify the whole migration or delete anything: the
    /// coordinator does.
    ///
    /// # Errors
    /// [`MigrateError::Config`] without the directory;
    /// [`MigrateError::NotReady`] when no migration with key ranges appears
    /// within `join_wait`; as [`Migrator::run`] otherwise.
    pub async fn join(&self) -> Result<Report, MigrateError> {
        let started = Instant::now();
        let TenantSource::Directory(d) = &self.source else {
            return Err(MigrateError::Config(format!(
                "--join shares a migration through the PostgreSQL tenant directory (tenants = \"postgresql://...\"); tenant {} lives in the {}",
                self.opts.tenant,
                self.source.describe()
            )));
        };
        let dst = self
            .backends
            .iter()
            .find(|(r, _)| *r == self.opts.to)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| {
                MigrateError::Config(format!("region {} has no backend", self.opts.to))
            })?;
        let journal = Journal::new(dst, &self.opts.to, &self.opts.tenant);
        let client = d.connect().await?;
        let poll = (d.lease_ttl / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        let deadline = Instant::now() + self.opts.join_wait;
        let state = loop {
            let ranged = ranged_migration(&client, &self.opts.tenant)
                .await
                .map_err(|e| d.error(e))?;
            if let Some(s) = journal.load_current().await? {
                if s.to == self.opts.to && ranged.as_deref() == Some(s.id.as_str()) {
                    break s;
                }
            }
            if Instant::now() >= deadline {
                return Err(MigrateError::NotReady(format!(
                    "no migration of tenant {} to {} with key ranges appeared within {:?}: start one with `residency migrate --tenant {} --to {} --range-size N`, then join it",
                    self.opts.tenant, self.opts.to, self.opts.join_wait, self.opts.tenant, self.opts.to
                )));
            }
            tokio::time::sleep(poll).await;
        };
        drop(client);
        let p = self.prepare().await?;
        let progress = Progress::start(self.opts.progress, "join");
        let (ctx, sources, journal) = self.ctx(p, &state.id, progress.counters.clone());
        if let Some(t) = journal.current_stored_at().await? {
            let _ = ctx.started_dest.set(t);
        }
        let mut run = Totals::default();
        if state.phase == Phase::Copying {
            let open: Regions = sources
                .iter()
                .filter(|(r, _)| state.sources.iter().any(|s| s.region == *r && !s.listed))
                .cloned()
                .collect();
            if !open.is_empty() {
                let mine = self.work_ranges(d, &ctx, &open, &journal).await?;
                run.add_totals(&mine);
                run.ranges = mine.ranges;
            }
        }
        ctx.flush_audit().await?;
        drop(progress);
        let state = journal.load_current().await?.unwrap_or(state);
        let mut r = self.report(&state, run, started, "join");
        r.next_step = format!(
            "nothing for this worker: every key range is done; the coordinator (`residency migrate --tenant {} --to {}`) verifies the migration and goes on",
            state.tenant, state.to
        );
        Ok(r)
    }
}
