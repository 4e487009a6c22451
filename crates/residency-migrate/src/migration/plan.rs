//! Plan: the checks before anything moves ([`Migrator::prepare`]) and
//! `--dry-run` ([`Migrator::plan`]).

use residency_policy::{Tenant, TenantRecord};

use super::*;

impl Migrator {
    pub(super) async fn prepare(&self) -> Result<Prepared, MigrateError> {
        let to_id = self.policy.region_by_id(&self.opts.to).ok_or_else(|| {
            MigrateError::Config(format!(
                "unknown region {:?} (the policy declares {})",
                self.opts.to,
                self.policy
                    .regions()
                    .map(|(_, r)| r.id().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        // The tenant as its source has it now.
        let (t, file_src): (Tenant, Option<(String, String)>) = match &self.source {
            TenantSource::File(path) => {
                let file = path.display().to_string();
                let src = std::fs::read_to_string(path)
                    .map_err(|e| MigrateError::Config(format!("cannot read {file}: {e}")))?;
                let tenants = Tenants::from_toml(&src, &file, &self.policy)
                    .map_err(|e| MigrateError::Config(e.to_string()))?;
                let tid = tenants.get(&self.opts.tenant).ok_or_else(|| {
                    MigrateError::Config(format!("unknown tenant {:?}", self.opts.tenant))
                })?;
                (tenants.tenant(tid).clone(), Some((file, src)))
            }
            TenantSource::Directory(d) => {
                let record = d.record(&self.opts.tenant).await?;
                (crate::source::from_record(&record, &self.policy)?, None)
            }
        };
        let from_id = match (t.locality(), t.migrating_from()) {
            (Some(l), Some(m)) if l == to_id => m,
            _ => t.home_region(&self.policy),
        };
        let settled = t.locality() == Some(to_id) && t.migrating_from().is_none();
        let open_in_file = match (t.locality(), t.migrating_from()) {
            (Some(l), Some(m)) if l != to_id => Some((
                self.policy.region(m).id().to_owned(),
                self.policy.region(l).id().to_owned(),
            )),
            _ => None,
        };
        let from = self.policy.region(from_id).id().to_owned();
        let to = self.opts.to.clone();
        // The tenants as they are after the switch.
        let after = match file_src {
            Some((file, src)) => {
                let after = tenants_file::edit_source(&src, &self.opts.tenant, &to, Some(&from))
                    .map_err(MigrateError::Config)?;
                Tenants::from_toml(&after, &file, &self.policy).map_err(|e| {
                    MigrateError::Config(format!("the switched tenants file would be invalid: {e}"))
                })?
            }
            None => {
                let mut record = TenantRecord::of(&t, &self.policy);
                record.locality = Some(to.clone());
                record.migrating_from = Some(from.clone());
                let switched = crate::source::from_record(&record, &self.policy).map_err(|e| {
                    MigrateError::Config(format!("the switched tenant would be invalid: {e}"))
                })?;
                crate::source::single(switched)?
            }
        };
        let tid = after.get(&self.opts.tenant).ok_or_else(|| {
            MigrateError::Config(format!("unknown tenant {:?}", self.opts.tenant))
        })?;
        let placer = Placer::new(Ruleset::new(self.policy.clone(), after), tid, to_id);
        let backend = |r: &str| {
            self.backends
                .iter()
                .find(|(id, _)| id == r)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| MigrateError::Config(format!("region {r} has no backend")))
        };
        let dst = backend(&to)?;
        let mut sources = Vec::new();
        for (_, r) in self.policy.regions() {
            if r.id() != to {
                sources.push((r.id().to_owned(), backend(r.id())?));
            }
        }
        Ok(Prepared {
            from,
            journal: Journal::new(dst.clone(), &to, &self.opts.tenant),
            to,
            dst,
            sources,
            placer,
            bucket: t.bucket().to_owned(),
            settled,
            open_in_file,
        })
    }

    /// `--dry-run`: lists the tenant's objects in the other regions and says
    /// what would move (counts, bytes, per category). Writes nothing.
    ///
    /// # Errors
    /// Bad arguments, unreachable backends.
    pub async fn plan(&self) -> Result<Report, MigrateError> {
        let started = Instant::now();
        let p = self.prepare().await?;
        let from = p.from.clone();
        let progress = Progress::start(self.opts.progress, "plan");
        let (ctx, sources, _) = self.ctx(p, "plan", progress.counters.clone());
        let mut totals = Totals::default();
        for (region, backend) in sources {
            let mut lister = Lister::new(backend.clone(), &region, &ctx.prefix, None);
            while !lister.done {
                let page = lister.next_page().await?;
                let results: Vec<Result<Record, MigrateError>> = futures::stream::iter(page)
                    .map(|o| {
                        let (ctx, backend) = (ctx.clone(), backend.clone());
                        async move {
                            let rel = o.key.strip_prefix(&ctx.prefix).unwrap_or(&o.key).to_owned();
                            let v = match ctx.placer.by_key(&rel) {
                                Some(v) => v,
                                None => match with_retry(|| backend.head_object(&o.key)).await {
                                    Ok(i) => ctx.placer.with_meta(
                                        &rel,
                                        i.headers.content_type.as_deref(),
                                        i.headers
                                            .user_metadata
                                            .get(META_CATEGORY)
                                            .map(String::as_str),
                                    ),
                                    Err(StoreError::NotFound { .. }) => {
                                        return Ok(record(&o, Outcome::Vanished))
                                    }
                                    Err(e) => return Err(MigrateError::store(&ctx.to, e)),
                                },
                            };
                            Ok(match v {
                                Verdict::Move { category } => Record {
                                    category: Some(category),
                                    ..record(&o, Outcome::Verified)
                                },
                                Verdict::Stay { category, .. } => Record {
                                    category: Some(category),
                                    ..record(&o, Outcome::Skipped)
                                },
                                Verdict::Denied { reason } => Record {
                                    category: Some(format!("denied:{reason}")),
                                    ..record(&o, Outcome::Skipped)
                                },
                            })
                        }
                    })
                    .buffered(self.opts.parallel.max(1))
                    .collect()
                    .await;
                for r in results {
                    let r = r?;
                    progress.object_done(r.size);
                    totals.add_record(&r);
                }
            }
        }
        // A plan copies nothing: only the planning counters are meaningful.
        totals.verified = 0;
        Ok(Report {
            command: "plan",
            migration_id: None,
            tenant: self.opts.tenant.clone(),
            from,
            to: self.opts.to.clone(),
            phase: None,
            verified_at: None,
            old_copies_kept_until: None,
            finished_at: None,
            this_run: totals.clone(),
            totals,
            mismatched_keys: Vec::new(),
            elapsed_secs: started.elapsed().as_secs_f64(),
            copy_bytes_per_sec: 0.0,
            next_step: format!(
                "residency migrate --tenant {} --to {} (switches the tenant in the {}, copies, verifies)",
                self.opts.tenant,
                self.opts.to,
                self.source.describe()
            ),
        })
    }
}
