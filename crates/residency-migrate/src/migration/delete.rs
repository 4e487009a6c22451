//! Delete (`--finish`): one old copy ([`delete_old_copy`]), and the
//! delete phase after the assurance window.

use super::copy::migrate_object;
use super::*;

/// Deletes one old copy if (and only if) its copy is verified.
pub(super) async fn delete_old_copy(
    ctx: Arc<RunCtx>,
    src_region: String,
    src: Arc<dyn Backend>,
    obj: ObjectSummary,
    rec: Option<Record>,
) -> Result<(DeleteRecord, Option<Record>), MigrateError> {
    let key = obj.key.clone();
    let mk = |action, late, detail: Option<String>| DeleteRecord {
        key: obj.key.clone(),
        size: obj.size,
        etag: obj.etag.clone(),
        action,
        late,
        detail,
    };
    let journaled = rec.filter(|r| r.size == obj.size && r.etag == obj.etag);
    let (verified, late, fresh) = match &journaled {
        Some(r) if r.outcome == Outcome::Skipped => {
            return Ok((mk(DeleteAction::Kept, false, r.detail.clone()), None))
        }
        Some(r) if matches!(r.outcome, Outcome::Verified | Outcome::Superseded) => {
            // Still there? (The tenant may have rewritten it: then it is
            // newer than this old copy, which may go.)
            match with_retry(|| ctx.dst.head_object(&key)).await {
                Ok(_) => (true, false, None),
                Err(StoreError::NotFound { .. }) => {
                    let r =
                        migrate_object(ctx.clone(), src_region.clone(), src.clone(), obj.clone())
                            .await?;
                    (
                        matches!(r.outcome, Outcome::Verified | Outcome::Superseded),
                        true,
                        Some(r),
                    )
                }
                Err(e) => return Err(MigrateError::store(&ctx.to, e)),
            }
        }
        _ => {
            // Written (or changed) after the copy phase listed it, or not
            // verified: copy and verify it now.
            let r =
                migrate_object(ctx.clone(), src_region.clone(), src.clone(), obj.clone()).await?;
            (
                matches!(r.outcome, Outcome::Verified | Outcome::Superseded),
                true,
                Some(r),
            )
        }
    };
    if !verified {
        let detail = fresh
            .as_ref()
            .map(|r| format!("{:?}: {}", r.outcome, r.detail.clone().unwrap_or_default()));
        let action = match &fresh {
            Some(r) if r.outcome == Outcome::Vanished => DeleteAction::Gone,
            _ => DeleteAction::Kept,
        };
        return Ok((mk(action, late, detail), fresh));
    }
    with_retry(|| src.delete_object(&key))
        .await
        .map_err(|e| MigrateError::store(&src_region, e))?;
    ctx.faults.hit(FaultKind::Delete)?;
    ctx.audit(
        "migrate_delete",
        &key,
        fresh
            .as_ref()
            .or(journaled.as_ref())
            .and_then(|r| r.category.as_deref()),
        &[&src_region],
        "old copy deleted after verification and the assurance window",
    );
    Ok((mk(DeleteAction::Deleted, late, None), fresh))
}

impl Migrator {
    pub(super) async fn delete_phase(
        &self,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        journal: &Journal,
        state: &mut State,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        if state.phase == Phase::Verified {
            ctx.record_step(
                "migrate_delete_start",
                &[&ctx.from],
                "assurance window passed: deleting verified old copies",
            )
            .await?;
            state.phase = Phase::Deleting;
            journal.save_state(state).await?;
        }
        ctx.counters.objects.store(0, Ordering::Relaxed);
        ctx.counters.bytes.store(0, Ordering::Relaxed);
        let counter = self.spawn_counter(ctx, sources, state, true);
        let _abort_counter = AbortOnDrop(counter);
        let parallel = self.opts.parallel.max(1);
        let mut late_mismatches = 0u64;
        for (i, (region, backend)) in sources.iter().enumerate() {
            if state.sources[i].deleted {
                continue;
            }
            let mut cursor = RecordCursor::new(journal.clone(), state, &state.sources[i]);
            // A crash after deleting, before the page's state was stored:
            // the page's intent segment names what may have been deleted;
            // those now gone were deleted (they are not listed again).
            let mut carry: Vec<DeleteRecord> = Vec::new();
            for r in journal
                .try_read_deletes(&state.id, region, state.sources[i].delete_pages)
                .await?
            {
                if r.action != DeleteAction::Deleted {
                    continue;
                }
                if let Err(StoreError::NotFound { .. }) =
                    with_retry(|| backend.head_object(&r.key)).await
                {
                    carry.push(DeleteRecord { detail: None, ..r });
                }
            }
            let mut lister = Lister::new(
                backend.clone(),
                region,
                &ctx.prefix,
                state.sources[i].delete_last_key.clone(),
            );
            loop {
                let objs = if lister.done {
                    Vec::new()
                } else {
                    lister.next_page().await?
                };
                if objs.is_empty() && !lister.done {
                    continue;
                }
                if objs.is_empty() && carry.is_empty() {
                    break;
                }
                let seq = state.sources[i].delete_pages;
                let last_key = objs
                    .last()
                    .map(|o| o.key.clone())
                    .or_else(|| state.sources[i].delete_last_key.clone());
                // Intent first: what this page may delete.
                let intent: Vec<DeleteRecord> = carry
                    .iter()
                    .cloned()
                    .chain(objs.iter().map(|o| DeleteRecord {
                        key: o.key.clone(),
                        size: o.size,
                        etag: o.etag.clone(),
                        action: DeleteAction::Deleted,
                        late: false,
                        detail: Some("intent".to_owned()),
                    }))
                    .collect();
                journal
                    .write_segment(&state.id, region, "delete", seq, &intent)
                    .await?;
                let mut work = Vec::with_capacity(objs.len());
                for o in objs {
                    let rec = cursor.find(&o.key).await?;
                    work.push((o, rec));
                }
                let n = work.len();
                let mut results: Vec<Option<(DeleteRecord, Option<Record>)>> = vec![None; n];
                let mut tasks = JoinSet::new();
                let mut work = work.into_iter().enumerate();
                loop {
                    while tasks.len() < parallel {
                        let Some((idx, (o, rec))) = work.next() else {
                            break;
                        };
                        let (ctx, region, backend) = (ctx.clone(), region.clone(), backend.clone());
                        tasks.spawn(async move {
                            (idx, delete_old_copy(ctx, region, backend, o, rec).await)
                        });
                    }
                    let Some(joined) = tasks.join_next().await else {
                        break;
                    };
                    let (idx, r) = joined
                        .map_err(|e| MigrateError::Journal(format!("a delete task failed: {e}")))?;
                    results[idx] = Some(r?);
                }
                let mut records = std::mem::take(&mut carry);
                state.totals.deleted += records.len() as u64;
                for (d, fresh) in results.into_iter().flatten() {
                    ctx.counters.objects.fetch_add(1, Ordering::Relaxed);
                    if let Some(f) = &fresh {
                        // Late objects: count their copy like the copy phase.
                        if f.copied {
                            state.totals.copied += 1;
                            state.totals.copied_bytes += f.size;
                        }
                        if f.copied && !f.earlier_run {
                            run.copied += 1;
                            run.copied_bytes += f.size;
                        }
                        if f.outcome == Outcome::Mismatched {
                            late_mismatches += 1;
                        }
                    }
                    if d.action == DeleteAction::Deleted {
                        state.totals.deleted += 1;
                        run.deleted += 1;
                    }
                    records.push(d);
                }
                // The page's migrate_delete (and late migrate_copy) events
                // are stored before the page that counts them.
                ctx.flush_audit().await?;
                journal
                    .write_segment(&state.id, region, "delete", seq, &records)
                    .await?;
                ctx.faults.hit(FaultKind::Segment)?;
                let s = &mut state.sources[i];
                s.delete_pages = seq + 1;
                s.delete_last_key = last_key;
                s.delete_copy_seq = cursor.position();
                journal.save_state(state).await?;
                ctx.faults.hit(FaultKind::State)?;
            }
            state.sources[i].deleted = true;
            journal.save_state(state).await?;
        }
        if late_mismatches > 0 {
            run.mismatched += late_mismatches;
            // Keep the phase: `--finish` again retries them.
            for s in &mut state.sources {
                s.deleted = false;
                s.delete_last_key = None;
                s.delete_copy_seq = 0;
            }
            journal.save_state(state).await?;
            return Ok(());
        }
        // The tenant's records follow its data: copied, verified in the
        // destination, then deleted in the old regions.
        ctx.record_step("migrate_records", &[&ctx.to], "audit chains and disclosure ledger: copy, verify in the destination, delete the old copies")
            .await?;
        let moved =
            crate::records::move_records(&state.tenant, sources, &state.to, &ctx.dst).await?;
        let r = &mut state.totals.records;
        r.audit_copied += moved.audit_copied;
        r.audit_deleted += moved.audit_deleted;
        r.ledger_copied += moved.ledger_copied;
        r.ledger_deleted += moved.ledger_deleted;
        run.records = moved;
        if self.opts.switch {
            match &self.source {
                TenantSource::File(path) => {
                    tenants_file::edit_file(path, &state.tenant, &state.to, None)
                        .map_err(MigrateError::Config)?;
                }
                TenantSource::Directory(d) => d.finish(&state.tenant, &state.to).await?,
            }
        }
        ctx.record_step(
            "migrate_finish",
            &[&ctx.to],
            "old copies deleted; migrating_from removed from the tenant's record",
        )
        .await?;
        state.phase = Phase::Finished;
        state.finished_at = Some(now_secs());
        journal.save_state(state).await?;
        tracing::info!(id = %state.id, deleted = state.totals.deleted, "migration finished");
        Ok(())
    }
}
