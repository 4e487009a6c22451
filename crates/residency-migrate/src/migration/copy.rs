//! Copy and verify: one object ([`migrate_object`]), one source region,
//! the copy phase of a run.

use super::*;

/// Copies and verifies one object (or finds it already there).
pub(super) async fn migrate_object(
    ctx: Arc<RunCtx>,
    src_region: String,
    src: Arc<dyn Backend>,
    obj: ObjectSummary,
) -> Result<Record, MigrateError> {
    let key = obj.key.as_str();
    let rel = key.strip_prefix(&ctx.prefix).unwrap_or(key);
    let serr = |e| MigrateError::store(&src_region, e);
    let derr = |e| MigrateError::store(&ctx.to, e);
    let mut src_info: Option<ObjectInfo> = None;
    let verdict = match ctx.placer.by_key(rel) {
        Some(v) => v,
        None => match with_retry(|| src.head_object(key)).await {
            Ok(i) => {
                let v = ctx.placer.with_meta(
                    rel,
                    i.headers.content_type.as_deref(),
                    i.headers
                        .user_metadata
                        .get(META_CATEGORY)
                        .map(String::as_str),
                );
                src_info = Some(i);
                v
            }
            Err(StoreError::NotFound { .. }) => return Ok(record(&obj, Outcome::Vanished)),
            Err(e) => return Err(serr(e)),
        },
    };
    let category = match verdict {
        Verdict::Move { category } => category,
        Verdict::Stay { category, region } => {
            return Ok(Record {
                category: Some(category),
                detail: Some(format!("policy places it in {region}")),
                ..record(&obj, Outcome::Skipped)
            })
        }
        Verdict::Denied { reason } => {
            return Ok(Record {
                category: Some(format!("denied:{reason}")),
                detail: Some(format!("policy denies it now: {reason}")),
                ..record(&obj, Outcome::Skipped)
            })
        }
    };
    let base = Record {
        category: Some(category.clone()),
        ..record(&obj, Outcome::Verified)
    };
    let mut problem = String::new();
    for attempt in 0..COPY_ATTEMPTS {
        let mut dest_absent = false;
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        // Is it in the destination already (an earlier run, or the tenant)?
        match with_retry(|| ctx.dst.head_object(key)).await {
            Ok(d) => {
                let s = match &src_info {
                    Some(i) => i.clone(),
                    None => match with_retry(|| src.head_object(key)).await {
                        Ok(i) => {
                            src_info = Some(i.clone());
                            i
                        }
                        Err(StoreError::NotFound { .. }) => {
                            return Ok(record(&obj, Outcome::Vanished))
                        }
                        Err(e) => return Err(serr(e)),
                    },
                };
                // Stored since the migration started, identical: copied by
                // an earlier run that was killed before journaling it. It
                // counts as copied (the totals count every copy) and gets
                // its audit event (the killed run's may not be stored).
                let earlier = ctx.stored_since_start(d.last_modified);
                let found = |rec: Record| {
                    if earlier {
                        ctx.audit(
                            "migrate_copy",
                            key,
                            Some(&category),
                            &[&src_region, &ctx.to],
                            "verified (copied by an interrupted run)",
                        );
                    }
                    Ok(Record {
                        copied: earlier,
                        earlier_run: earlier,
                        ..rec
                    })
                };
                if d.size == s.size && same_meta(&d, &s) {
                    if d.etag == s.etag {
                        // Both ETags computed by the servers from the bytes.
                        return found(Record {
                            size: s.size,
                            etag: s.etag,
                            dest_etag: Some(d.etag),
                            ..base
                        });
                    }
                    // Same size and metadata, other ETag (a multipart copy by
                    // an earlier run): compare the bytes.
                    let (a, b) = tokio::join!(hash_object(&src, key), hash_object(&ctx.dst, key));
                    match (a, b) {
                        (Ok((sa, na, si)), Ok((sb, nb, di)))
                            if sa == sb && na == nb && si.etag == s.etag && di.etag == d.etag =>
                        {
                            return found(Record {
                                size: s.size,
                                etag: s.etag,
                                sha256: Some(sa),
                                dest_etag: Some(d.etag),
                                ..base
                            });
                        }
                        (Err(StoreError::NotFound { .. }), _) => {
                            return Ok(record(&obj, Outcome::Vanished))
                        }
                        (Err(e), _) if !e.is_unavailable() => return Err(serr(e)),
                        (_, Err(e))
                            if !e.is_unavailable() && !matches!(e, StoreError::NotFound { .. }) =>
                        {
                            return Err(derr(e))
                        }
                        _ => {}
                    }
                }
                if d.last_modified > s.last_modified && d.etag != s.etag {
                    // Written after the source version: the tenant wrote it
                    // through the switched sidecar. Never overwrite it.
                    return Ok(Record {
                        outcome: Outcome::Superseded,
                        size: s.size,
                        etag: s.etag,
                        dest_etag: Some(d.etag),
                        ..base
                    });
                }
            }
            Err(StoreError::NotFound { .. }) => dest_absent = true,
            Err(e) => return Err(derr(e)),
        }
        // Copy, streaming.
        let got = match with_retry(|| src.get_object(key, None)).await {
            Ok(g) => g,
            Err(StoreError::NotFound { .. }) => return Ok(record(&obj, Outcome::Vanished)),
            Err(e) => return Err(serr(e)),
        };
        let info = got.info;
        let copied = match stream_copy(
            &ctx.dst,
            key,
            &info,
            got.body,
            ctx.part_size,
            ctx.threshold,
            CopyHooks {
                journal: Some((&ctx.journal, &ctx.id)),
                faults: Some(&ctx.faults),
                create_only: dest_absent,
            },
        )
        .await
        {
            Ok(c) => c,
            Err(CopyError::Dest(e)) if e.is_precondition_failed() => {
                // Written since the HEAD above (the tenant, through the
                // switched sidecar): the create-only copy left it alone.
                let d = with_retry(|| ctx.dst.head_object(key)).await.ok();
                return Ok(Record {
                    outcome: Outcome::Superseded,
                    size: info.size,
                    etag: info.etag,
                    dest_etag: d.map(|d| d.etag),
                    detail: Some(format!("written in {} during the copy", ctx.to)),
                    ..base
                });
            }
            Err(CopyError::Stop(e)) => return Err(e),
            Err(CopyError::Source(e)) | Err(CopyError::Dest(e))
                if e.is_unavailable() && attempt + 1 < COPY_ATTEMPTS =>
            {
                tracing::warn!(key, error = %e, "copy failed; retrying");
                continue;
            }
            Err(CopyError::Length { expected, got }) => {
                problem = format!("source yielded {got} bytes, expected {expected}");
                continue;
            }
            Err(CopyError::Source(e)) => return Err(serr(e)),
            Err(CopyError::Dest(e)) => return Err(derr(e)),
        };
        ctx.faults.hit(FaultKind::Copy)?;
        // Verify: the destination's own account of what it stored.
        let d = with_retry(|| ctx.dst.head_object(key))
            .await
            .map_err(derr)?;
        let problems = copied.problems(&info, &d);
        if problems.is_empty() {
            // The tenant may have deleted it while it was being copied (the
            // sidecar deletes in every region): do not resurrect it.
            if let Err(StoreError::NotFound { .. }) = src.head_object(key).await {
                if let Ok(now) = ctx.dst.head_object(key).await {
                    if now.etag == d.etag {
                        let _ = ctx.dst.delete_object(key).await;
                    }
                }
                return Ok(record(&obj, Outcome::Vanished));
            }
            ctx.audit(
                "migrate_copy",
                key,
                Some(&category),
                &[&src_region, &ctx.to],
                "verified",
            );
            return Ok(Record {
                size: info.size,
                etag: info.etag,
                copied: true,
                sha256: Some(copied.sha256_hex),
                dest_etag: Some(d.etag),
                ..base
            });
        }
        problem = problems.join("; ");
        tracing::warn!(key, attempt, problem = %problem, "copy did not verify");
    }
    Ok(Record {
        outcome: Outcome::Mismatched,
        detail: Some(problem),
        ..base
    })
}
impl Migrator {
    pub(super) async fn copy_phase(
        &self,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        journal: &Journal,
        state: &mut State,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        let counter = self.spawn_counter(ctx, sources, state, false);
        let _abort_counter = AbortOnDrop(counter);
        // Retry what did not verify last time.
        if !state.mismatched_keys.is_empty() {
            let keys = std::mem::take(&mut state.mismatched_keys);
            for key in keys {
                let Some((region, src)) = self.find_source(sources, &key).await? else {
                    state.totals.mismatched -= 1;
                    state.totals.vanished += 1;
                    continue;
                };
                let info = with_retry(|| src.head_object(&key))
                    .await
                    .map_err(|e| MigrateError::store(&region, e))?;
                let obj = ObjectSummary {
                    key: key.clone(),
                    size: info.size,
                    etag: info.etag.clone(),
                    last_modified: info.last_modified,
                };
                let r = migrate_object(ctx.clone(), region, src, obj).await?;
                if r.outcome != Outcome::Mismatched {
                    state.totals.mismatched -= 1;
                    match r.outcome {
                        Outcome::Verified => state.totals.verified += 1,
                        Outcome::Superseded => state.totals.superseded += 1,
                        Outcome::Vanished => state.totals.vanished += 1,
                        _ => {}
                    }
                    if r.copied {
                        state.totals.copied += 1;
                        state.totals.copied_bytes += r.size;
                    }
                    if r.copied && !r.earlier_run {
                        run.copied += 1;
                        run.copied_bytes += r.size;
                    }
                } else {
                    state.mismatched_keys.push(key);
                }
            }
            ctx.flush_audit().await?;
            journal.save_state(state).await?;
        }
        let ranged = if state.sources.iter().any(|s| !s.listed) {
            self.ranged(&state.id).await?
        } else {
            None
        };
        if let Some((d, client)) = ranged {
            self.copy_ranged(d, &client, ctx, sources, journal, state, run)
                .await?;
        } else {
            for (i, (region, backend)) in sources.iter().enumerate() {
                if state.sources[i].listed {
                    continue;
                }
                self.copy_region(ctx, region, backend, journal, state, i, run)
                    .await?;
            }
        }
        if state.mismatched_keys.is_empty() {
            ctx.record_step(
                "migrate_verified",
                &[&ctx.to],
                "every object is verified in the destination",
            )
            .await?;
            state.phase = Phase::Verified;
            state.verified_at = Some(now_secs());
            journal.save_state(state).await?;
            tracing::info!(id = %state.id, "every object is verified in {}", state.to);
        }
        Ok(())
    }

    pub(super) async fn find_source(
        &self,
        sources: &[(String, Arc<dyn Backend>)],
        key: &str,
    ) -> Result<Option<(String, Arc<dyn Backend>)>, MigrateError> {
        for (r, b) in sources {
            match with_retry(|| b.head_object(key)).await {
                Ok(_) => return Ok(Some((r.clone(), b.clone()))),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(MigrateError::store(r, e)),
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_region(
        &self,
        ctx: &Arc<RunCtx>,
        region: &str,
        backend: &Arc<dyn Backend>,
        journal: &Journal,
        state: &mut State,
        i: usize,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        let lister = Lister::new(
            backend.clone(),
            region,
            &ctx.prefix,
            state.sources[i].last_key.clone(),
        );
        self.copy_pass(
            ctx,
            region,
            backend,
            journal,
            lister,
            &mut WholeRegion { state, i },
            run,
        )
        .await
    }

    /// Copies and verifies what `lister` lists, journaling page by page in
    /// `pass` (a whole region, or a key range).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_pass(
        &self,
        ctx: &Arc<RunCtx>,
        region: &str,
        backend: &Arc<dyn Backend>,
        journal: &Journal,
        mut lister: Lister,
        pass: &mut impl Pass,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        struct PageAcc {
            records: Vec<Option<Record>>,
            remaining: usize,
            last_key: Option<String>,
        }
        let parallel = self.opts.parallel.max(1);
        let mut pages: BTreeMap<u64, PageAcc> = BTreeMap::new();
        let mut next_seq = pass.pages();
        let mut flush_seq = next_seq;
        let mut queue: VecDeque<(u64, usize, ObjectSummary)> = VecDeque::new();
        let mut tasks: JoinSet<(u64, usize, Result<Record, MigrateError>)> = JoinSet::new();
        loop {
            while tasks.len() < parallel {
                if let Some((seq, idx, obj)) = queue.pop_front() {
                    let (ctx, region, backend) = (ctx.clone(), region.to_owned(), backend.clone());
                    tasks.spawn(async move {
                        (seq, idx, migrate_object(ctx, region, backend, obj).await)
                    });
                    continue;
                }
                if lister.done || pages.len() >= PAGES_AHEAD {
                    break;
                }
                let objs = lister.next_page().await?;
                if objs.is_empty() {
                    continue;
                }
                let seq = next_seq;
                next_seq += 1;
                pages.insert(
                    seq,
                    PageAcc {
                        records: vec![None; objs.len()],
                        remaining: objs.len(),
                        last_key: objs.last().map(|o| o.key.clone()),
                    },
                );
                queue.extend(objs.into_iter().enumerate().map(|(n, o)| (seq, n, o)));
            }
            let Some(joined) = tasks.join_next().await else {
                if queue.is_empty() && lister.done {
                    break;
                }
                continue;
            };
            let (seq, idx, rec) =
                joined.map_err(|e| MigrateError::Journal(format!("a copy task failed: {e}")))?;
            let rec = rec?;
            ctx.counters.objects.fetch_add(1, Ordering::Relaxed);
            if rec.copied && !rec.earlier_run {
                ctx.counters.bytes.fetch_add(rec.size, Ordering::Relaxed);
            }
            if let Some(acc) = pages.get_mut(&seq) {
                acc.records[idx] = Some(rec);
                acc.remaining -= 1;
            }
            // Store finished pages, in order.
            while pages.get(&flush_seq).is_some_and(|a| a.remaining == 0) {
                let acc = pages.remove(&flush_seq).expect("checked");
                let records: Vec<Record> = acc.records.into_iter().flatten().collect();
                // The page's migrate_copy events (recorded by the copies)
                // are stored before the page that counts them.
                ctx.flush_audit().await?;
                journal
                    .write_segment(&ctx.id, &pass.folder(), "copy", flush_seq, &records)
                    .await?;
                ctx.faults.hit(FaultKind::Segment)?;
                pass.add_page(flush_seq, acc.last_key, &records, run);
                if pass.mismatched() > MAX_MISMATCHED {
                    pass.save(journal).await?;
                    return Err(MigrateError::Journal(format!(
                        "more than {MAX_MISMATCHED} copies did not verify: stopping"
                    )));
                }
                pass.save(journal).await?;
                ctx.faults.hit(FaultKind::State)?;
                flush_seq += 1;
            }
        }
        pass.listed();
        pass.save(journal).await?;
        Ok(())
    }
}

/// Where a copy pass keeps its cursor and counters: the migration's state
/// (one worker copies a whole region) or a key range's.
pub(super) trait Pass {
    /// The journal folder of its copy segments.
    fn folder(&self) -> String;
    /// Copy segments stored.
    fn pages(&self) -> u64;
    /// Keys whose copy did not match.
    fn mismatched(&self) -> usize;
    /// The fields a stored segment advances, wherever they live.
    fn cursor(&mut self) -> Cursor<'_>;
    /// Stores the cursor and counters.
    async fn save(&self, journal: &Journal) -> Result<(), MigrateError>;

    /// Counts a stored segment `seq` covering keys up to `last_key`.
    fn add_page(
        &mut self,
        seq: u64,
        last_key: Option<String>,
        records: &[Record],
        run: &mut Totals,
    ) {
        let c = self.cursor();
        *c.pages = seq + 1;
        if last_key.is_some() {
            *c.last_key = last_key;
        }
        for r in records {
            c.totals.add_record(r);
            run.add_run_record(r);
            if r.outcome == Outcome::Mismatched {
                c.mismatched_keys.push(r.key.clone());
            }
        }
    }

    /// Every key has an outcome.
    fn listed(&mut self) {
        *self.cursor().listed = true;
    }
}

/// What a [`Pass`] advances: a source region's cursor and the migration's
/// counters, or a key range's own.
pub(super) struct Cursor<'a> {
    pub(super) pages: &'a mut u64,
    pub(super) last_key: &'a mut Option<String>,
    pub(super) listed: &'a mut bool,
    pub(super) totals: &'a mut Totals,
    pub(super) mismatched_keys: &'a mut Vec<String>,
}

/// A whole source region, in the migration's state.
struct WholeRegion<'a> {
    state: &'a mut State,
    i: usize,
}

impl Pass for WholeRegion<'_> {
    fn folder(&self) -> String {
        self.state.sources[self.i].region.clone()
    }

    fn pages(&self) -> u64 {
        self.state.sources[self.i].pages
    }

    fn mismatched(&self) -> usize {
        self.state.mismatched_keys.len()
    }

    fn cursor(&mut self) -> Cursor<'_> {
        let State {
            sources,
            totals,
            mismatched_keys,
            ..
        } = &mut *self.state;
        let src = &mut sources[self.i];
        Cursor {
            pages: &mut src.pages,
            last_key: &mut src.last_key,
            listed: &mut src.listed,
            totals,
            mismatched_keys,
        }
    }

    async fn save(&self, journal: &Journal) -> Result<(), MigrateError> {
        journal.save_state(self.state).await
    }
}
