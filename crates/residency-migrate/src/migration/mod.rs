//! The migration itself: plan, switch, copy and verify, delete.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use residency_policy::{Policy, Ruleset, Tenants};
use residency_store::{Backend, ListRequest, ObjectInfo, ObjectSummary, PartsQuery, StoreError};
use residency_tower::audit::AuditEvent;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::audit::MigrationAudit;
use crate::copy::{hash_object, same_meta, stream_copy, CopyError, CopyHooks};
use crate::error::{MigrateError, OpenMigration};
use crate::fault::{FaultAction, FaultKind, FaultPoint, Faults};
use crate::journal::{
    now_secs, DeleteAction, DeleteRecord, Journal, Outcome, Phase, Record, RecordCursor,
    SourceState, State, Totals, MAX_MISMATCHED,
};
use crate::placement::{Placer, Verdict, META_CATEGORY};
use crate::progress::{Counters, Progress, ProgressMode};
use crate::source::{Lease, TenantSource};
use crate::tenants_file;

/// Default assurance window: 30 days.
pub const DEFAULT_ASSURANCE: Duration = Duration::from_secs(30 * 86_400);
/// Default part size (and multipart threshold): 16 MiB.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// Listing pages processed ahead of the oldest unfinished one (bounds memory:
/// at most this many pages of keys are held).
const PAGES_AHEAD: usize = 4;
/// Attempts to copy one object before it is reported as mismatched.
const COPY_ATTEMPTS: u32 = 3;

/// What to migrate and how.
#[derive(Debug, Clone)]
pub struct MigrationOptions {
    /// The tenant id.
    pub tenant: String,
    /// The destination region id.
    pub to: String,
    /// Objects copied at once.
    pub parallel: usize,
    /// Time between "every object verified" and the deletion of the old
    /// copies. `None`: the window recorded when the migration started
    /// ([`DEFAULT_ASSURANCE`] for a new one).
    pub assurance: Option<Duration>,
    /// Part size of multipart copies.
    pub part_size: u64,
    /// Objects larger than this are copied as multipart uploads.
    pub multipart_threshold: u64,
    /// Edit the tenants file (switch at the start, clear `migrating_from`
    /// at the end). Off when the operator manages the file elsewhere.
    pub switch: bool,
    /// Stop at this fault point (tests).
    pub fault: Option<FaultPoint>,
    /// What the fault point does.
    pub fault_action: FaultAction,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// With the tenant directory: split each source region's keys into
    /// ranges of this many objects, which any worker (this run, and
    /// [`Migrator::join`] on other machines) leases and copies. `None`: this
    /// run copies everything itself (unless the migration already has
    /// ranges). For a joining worker, the size of its journal pages (a
    /// quarter of it, 10 to 1,000 keys).
    pub range_size: Option<u64>,
    /// How long [`Migrator::join`] waits for a migration with key ranges
    /// to appear before it gives up.
    pub join_wait: Duration,
}

impl MigrationOptions {
    /// Defaults: 16 objects at once, 16 MiB parts, switch the tenants file,
    /// the recorded (or 30-day) assurance window.
    pub fn new(tenant: impl Into<String>, to: impl Into<String>) -> Self {
        MigrationOptions {
            tenant: tenant.into(),
            to: to.into(),
            parallel: 16,
            assurance: None,
            part_size: DEFAULT_PART_SIZE,
            multipart_threshold: DEFAULT_PART_SIZE,
            switch: true,
            fault: None,
            fault_action: FaultAction::Error,
            progress: ProgressMode::Auto,
            range_size: None,
            join_wait: Duration::from_secs(60),
        }
    }
}

mod copy;
mod delete;
mod list;
mod plan;
mod ranges;
mod report;

use list::{record, with_retry, Lister};
pub use ranges::DEFAULT_RANGE_SIZE;
pub use report::Report;

/// Moves one tenant's data to a new region.
///
/// See the crate docs for the sequence. Every method is safe to run again
/// after a crash: the journal in the destination region says where to resume.
pub struct Migrator {
    policy: Policy,
    source: TenantSource,
    backends: Vec<(String, Arc<dyn Backend>)>,
    audit: Option<Arc<dyn MigrationAudit>>,
    opts: MigrationOptions,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("source", &self.source)
            .field(
                "regions",
                &self.backends.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            )
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Region ids and their backends.
type Regions = Vec<(String, Arc<dyn Backend>)>;

/// Everything a worker task needs.
struct RunCtx {
    id: String,
    tenant: String,
    bucket: String,
    prefix: String,
    from: String,
    to: String,
    dst: Arc<dyn Backend>,
    placer: Placer,
    part_size: u64,
    threshold: u64,
    faults: Faults,
    audit: Option<Arc<dyn MigrationAudit>>,
    counters: Arc<Counters>,
    /// The journal (multipart uploads are noted there).
    journal: Journal,
    /// When the migration started, by the destination's clock: an object
    /// found in the destination, identical to its source and stored since,
    /// was copied by an earlier (killed) run of this migration.
    started_dest: std::sync::OnceLock<SystemTime>,
}

struct Prepared {
    from: String,
    to: String,
    dst: Arc<dyn Backend>,
    sources: Vec<(String, Arc<dyn Backend>)>,
    placer: Placer,
    bucket: String,
    journal: Journal,
    /// Whether the tenants file already names the destination as locality
    /// with no migration in progress.
    settled: bool,
    /// The tenants file shows a migration to another region in progress:
    /// (from, to).
    open_in_file: Option<(String, String)>,
}

impl RunCtx {
    /// Stores a migration-wide event (no key) naming `regions`, before the
    /// caller's journal records the step it announces.
    async fn record_step(
        &self,
        op: &str,
        regions: &[&str],
        reason: &str,
    ) -> Result<(), MigrateError> {
        self.audit(op, "", None, regions, reason);
        self.flush_audit().await
    }

    /// Waits until every event recorded so far is stored.
    async fn flush_audit(&self) -> Result<(), MigrateError> {
        match &self.audit {
            Some(a) => a.flush().await.map_err(MigrateError::Audit),
            None => Ok(()),
        }
    }

    /// Whether an object the destination stored at `t` was stored by this
    /// migration (seconds, as S3 dates objects).
    fn stored_since_start(&self, t: SystemTime) -> bool {
        let secs = |t: SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        self.started_dest.get().is_some_and(|s| secs(t) >= secs(*s))
    }

    fn audit(&self, op: &str, key: &str, category: Option<&str>, regions: &[&str], reason: &str) {
        let Some(sink) = &self.audit else { return };
        sink.record(AuditEvent {
            time: AuditEvent::now(),
            request_id: format!("migration-{}", self.id),
            tenant: self.tenant.clone(),
            op: op.to_owned(),
            key: key.strip_prefix(&self.prefix).unwrap_or(key).to_owned(),
            category: category.map(str::to_owned),
            classified_by: None,
            decision: "allow".to_owned(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            bucket: Some(self.bucket.clone()),
            reason: reason.to_owned(),
            out_of_locality: false,
            policy_version: self.placer.rules().policy().version().to_owned(),
            store_region: self.to.clone(),
        });
    }
}
impl Migrator {
    /// A migrator for `opts.tenant`. `backends` maps every policy region to
    /// its backend; `tenants_path` is the tenants file the sidecar reads.
    pub fn new(
        policy: Policy,
        tenants_path: impl Into<PathBuf>,
        backends: Vec<(String, Arc<dyn Backend>)>,
        opts: MigrationOptions,
    ) -> Self {
        Migrator::with_source(
            policy,
            TenantSource::File(tenants_path.into()),
            backends,
            opts,
        )
    }

    /// A migrator for `opts.tenant` whose locality lives in `source`: the
    /// tenants file, or the PostgreSQL tenant directory (the switch and the
    /// finish are one transaction each there, and a lease per tenant
    /// migration keeps a second migrator out).
    pub fn with_source(
        policy: Policy,
        source: TenantSource,
        backends: Vec<(String, Arc<dyn Backend>)>,
        opts: MigrationOptions,
    ) -> Self {
        Migrator {
            policy,
            source,
            backends,
            audit: None,
            opts,
        }
    }

    /// Records every step (start, switch, each copy and deletion, finish)
    /// in this audit sink, each stored before the journal records the step.
    #[must_use]
    pub fn with_audit(mut self, sink: Arc<dyn MigrationAudit>) -> Self {
        self.audit = Some(sink);
        self
    }

    fn ctx(
        &self,
        p: Prepared,
        id: &str,
        counters: Arc<Counters>,
    ) -> (Arc<RunCtx>, Regions, Journal) {
        let ctx = RunCtx {
            id: id.to_owned(),
            tenant: self.opts.tenant.clone(),
            bucket: p.bucket,
            prefix: format!("{}/", self.opts.tenant),
            from: p.from,
            to: p.to,
            dst: p.dst,
            placer: p.placer,
            part_size: self.opts.part_size.max(5 << 20),
            threshold: self.opts.multipart_threshold,
            faults: Faults::new(self.opts.fault, self.opts.fault_action),
            audit: self.audit.clone(),
            counters,
            journal: p.journal.clone(),
            started_dest: std::sync::OnceLock::new(),
        };
        (Arc::new(ctx), p.sources, p.journal)
    }

    /// Starts or resumes the migration: switch the tenants file, copy and
    /// verify every object; then, if the assurance window has already passed
    /// (`--assurance 0s`), delete the old copies as [`Migrator::finish`] does.
    ///
    /// # Errors
    /// Bad arguments, another migration in progress, a backend that stays
    /// unavailable, a fault point. The journal stays consistent: run again.
    pub async fn run(&self) -> Result<Report, MigrateError> {
        self.leased(false).await
    }

    /// `--finish`: once every object is verified and the assurance window
    /// has passed, deletes the old copies (each only if its copy still
    /// verifies; objects written late are copied first), then removes
    /// `migrating_from` from the tenants file.
    ///
    /// # Errors
    /// As [`Migrator::run`]; [`MigrateError::NotReady`] before the copy is
    /// complete or before the window has passed (nothing is deleted).
    pub async fn finish(&self) -> Result<Report, MigrateError> {
        self.leased(true).await
    }

    /// Runs [`Migrator::execute`] under the tenant's migration lease when
    /// the locality lives in the directory: refused
    /// ([`MigrateError::Leased`]) while another migrator holds it, renewed
    /// while this one runs, released at the end. A lost lease stops the run
    /// (as a kill would: the journal is consistent).
    async fn leased(&self, finish: bool) -> Result<Report, MigrateError> {
        let TenantSource::Directory(d) = &self.source else {
            if self.opts.range_size.is_some() {
                return Err(MigrateError::Config(format!(
                    "key ranges (range_size) share a migration through the PostgreSQL tenant directory; tenant {} lives in the {}",
                    self.opts.tenant,
                    self.source.describe()
                )));
            }
            return self.execute(finish).await;
        };
        let mut lease = Lease::take(d, &self.opts.tenant).await?;
        let result = tokio::select! {
            r = self.execute(finish) => r,
            why = lease.lost() => Err(MigrateError::Conflict(format!(
                "{why}: this run stopped (the journal is consistent; run the same command again once the other migrator is done)"
            ))),
        };
        lease.release().await;
        result
    }

    /// A migration of the tenant to another region that is still open: in
    /// any region's journal, or in the tenants file (`migrating_from` set
    /// with another locality).
    async fn open_elsewhere(&self, p: &Prepared) -> Result<Option<OpenMigration>, MigrateError> {
        let finish = |to: &str| {
            format!(
                "residency migrate --tenant {} --to {to} --finish",
                self.opts.tenant
            )
        };
        for (region, backend) in &self.backends {
            if *region == self.opts.to {
                continue;
            }
            let j = Journal::new(backend.clone(), region, &self.opts.tenant);
            if let Some(s) = j.load_current().await? {
                if s.phase != Phase::Finished {
                    return Ok(Some(OpenMigration {
                        finish_command: finish(&s.to),
                        id: Some(s.id),
                        tenant: s.tenant,
                        from: s.from,
                        to: s.to,
                        phase: Some(s.phase),
                    }));
                }
            }
        }
        Ok(p.open_in_file.as_ref().map(|(from, to)| OpenMigration {
            id: None,
            tenant: self.opts.tenant.clone(),
            from: from.clone(),
            to: to.clone(),
            phase: None,
            finish_command: finish(to),
        }))
    }

    /// With the directory: waits until `max_staleness` has passed since the
    /// tenant's row last changed (the switch), so that a sidecar replica that
    /// missed the notification no longer writes to the old region when the
    /// copy (or the deletion, which copies late objects first) lists it.
    async fn wait_for_replicas(&self) -> Result<(), MigrateError> {
        match &self.source {
            TenantSource::Directory(d) => d.wait_for_replicas(&self.opts.tenant).await,
            TenantSource::File(_) => Ok(()),
        }
    }

    /// Aborts the multipart uploads that killed runs left open (noted in
    /// the journal before their first part), counting them and their parts'
    /// bytes.
    async fn abort_left_uploads(
        &self,
        ctx: &RunCtx,
        journal: &Journal,
        state: &mut State,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        let notes = journal.noted_uploads(&state.id).await?;
        if notes.is_empty() {
            return Ok(());
        }
        for (note_key, n) in notes {
            let mut bytes = 0u64;
            let mut marker = None;
            let mut open = true;
            loop {
                match with_retry(|| {
                    ctx.dst.list_parts(PartsQuery {
                        part_number_marker: marker,
                        max_parts: None,
                        ..PartsQuery::new(&n.key, &n.upload_id)
                    })
                })
                .await
                {
                    Ok(page) => {
                        bytes += page.parts.iter().map(|p| p.size).sum::<u64>();
                        marker = page.next_part_number_marker;
                        if marker.is_none() {
                            break;
                        }
                    }
                    Err(StoreError::NoSuchUpload { .. } | StoreError::NotFound { .. }) => {
                        open = false;
                        break;
                    }
                    Err(e) => return Err(MigrateError::store(&ctx.to, e)),
                }
            }
            if open {
                match with_retry(|| ctx.dst.abort_multipart(&n.key, &n.upload_id)).await {
                    Ok(()) => {
                        tracing::info!(key = %n.key, upload_id = %n.upload_id, bytes, "aborted a multipart upload left by a killed run");
                        for t in [&mut state.totals, &mut *run] {
                            t.aborted_uploads += 1;
                            t.aborted_upload_bytes += bytes;
                        }
                    }
                    Err(StoreError::NoSuchUpload { .. } | StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(MigrateError::store(&ctx.to, e)),
                }
            }
            journal.clear_upload(&note_key).await?;
        }
        journal.save_state(state).await
    }

    async fn execute(&self, finish: bool) -> Result<Report, MigrateError> {
        let started = Instant::now();
        let p = self.prepare().await?;
        let settled = p.settled;
        let journal = p.journal.clone();
        // One migration at a time per tenant, whatever its direction: a
        // second one would replace `migrating_from`, and reads would stop
        // looking in the region the first one moves from.
        if let Some(open) = self.open_elsewhere(&p).await? {
            return Err(MigrateError::Open(Box::new(open)));
        }
        let existing = journal.load_current().await?;
        let mut created = false;
        let mut state = match existing {
            Some(s) if s.phase != Phase::Finished && s.to != self.opts.to => {
                return Err(MigrateError::Open(Box::new(OpenMigration {
                    finish_command: format!(
                        "residency migrate --tenant {} --to {} --finish",
                        s.tenant, s.to
                    ),
                    id: Some(s.id),
                    tenant: s.tenant,
                    from: s.from,
                    to: s.to,
                    phase: Some(s.phase),
                })))
            }
            Some(s) if s.phase != Phase::Finished => s,
            Some(s) if s.to == self.opts.to && settled => {
                // Already done: running it again is harmless.
                let mut r = self.report(
                    &s,
                    Totals::default(),
                    started,
                    if finish { "finish" } else { "run" },
                );
                r.next_step = "nothing: the migration is finished".to_owned();
                return Ok(r);
            }
            _ if finish => {
                return Err(MigrateError::NotReady(format!(
                    "no migration of tenant {} to {} is in progress",
                    self.opts.tenant, self.opts.to
                )))
            }
            _ => {
                let now = now_secs();
                created = true;
                State {
                    version: 1,
                    id: format!("{now}-{}-to-{}", p.from, p.to),
                    tenant: self.opts.tenant.clone(),
                    to: p.to.clone(),
                    from: p.from.clone(),
                    started_at: now,
                    verified_at: None,
                    finished_at: None,
                    assurance_secs: self.opts.assurance.unwrap_or(DEFAULT_ASSURANCE).as_secs(),
                    phase: Phase::Copying,
                    switched: false,
                    sources: p
                        .sources
                        .iter()
                        .map(|(r, _)| SourceState {
                            region: r.clone(),
                            ..SourceState::default()
                        })
                        .collect(),
                    totals: Totals::default(),
                    mismatched_keys: Vec::new(),
                }
            }
        };
        let progress = Progress::start(
            self.opts.progress,
            if finish { "finish" } else { "migrate" },
        );
        let (ctx, sources, journal) = self.ctx(p, &state.id, progress.counters.clone());
        if created {
            // The event is stored before the journal shows the migration.
            ctx.record_step("migrate_start", &[&ctx.from, &ctx.to], "migration started")
                .await?;
            journal.create(&state).await?;
            tracing::info!(id = %state.id, tenant = %state.tenant, from = %state.from, to = %state.to, "migration started");
        }
        if let Some(t) = journal.current_stored_at().await? {
            let _ = ctx.started_dest.set(t);
        }
        if let Some(a) = self.opts.assurance {
            if a.as_secs() != state.assurance_secs {
                tracing::info!(
                    from = state.assurance_secs,
                    to = a.as_secs(),
                    "assurance window changed by the operator"
                );
                state.assurance_secs = a.as_secs();
                journal.save_state(&state).await?;
            }
        }
        let mut run = Totals::default();
        // (Not while other workers copy key ranges of this migration: their
        // uploads in flight are noted too.)
        if !created && state.phase != Phase::Finished && !self.ranges_leased(&state.id).await? {
            self.abort_left_uploads(&ctx, &journal, &mut state, &mut run)
                .await?;
        }

        // Switch: new writes go to the destination, reads try it first.
        if self.opts.switch && state.phase != Phase::Finished {
            let change = match &self.source {
                TenantSource::File(path) => tenants_file::would_change(
                    path,
                    &self.opts.tenant,
                    &state.to,
                    Some(&state.from),
                )
                .map_err(MigrateError::Config)?,
                TenantSource::Directory(d) => {
                    let r = d.record(&self.opts.tenant).await?;
                    r.locality.as_deref() != Some(state.to.as_str())
                        || r.migrating_from.as_deref() != Some(state.from.as_str())
                }
            };
            if change || !state.switched {
                // The event is stored before the switch and its journal entry.
                let reason = match &self.source {
                    TenantSource::File(_) => "tenants file: locality is the destination, reads fall back to the old region",
                    TenantSource::Directory(_) => "tenant directory: locality is the destination, reads fall back to the old region",
                };
                ctx.record_step("migrate_switch", &[&state.to, &state.from], reason)
                    .await?;
                match &self.source {
                    TenantSource::File(path) => {
                        tenants_file::edit_file(
                            path,
                            &self.opts.tenant,
                            &state.to,
                            Some(&state.from),
                        )
                        .map_err(MigrateError::Config)?;
                    }
                    TenantSource::Directory(d) => {
                        d.switch(&self.opts.tenant, &self.policy, &state.from, &state.to)
                            .await?;
                    }
                }
                state.switched = true;
                journal.save_state(&state).await?;
                match &self.source {
                    TenantSource::File(path) => tracing::info!(
                        file = %path.display(),
                        "tenants file switched: locality = {:?}, migrating_from = {:?} (the sidecar reloads it within seconds, or on SIGHUP)",
                        state.to, state.from
                    ),
                    TenantSource::Directory(d) => tracing::info!(
                        directory = %d.redacted_url(),
                        "tenant directory switched in one transaction: locality = {:?}, migrating_from = {:?} (every sidecar replica is notified at once)",
                        state.to, state.from
                    ),
                }
                ctx.faults.switched()?;
            }
        }

        // The disclosure ledger is looked up in the tenant's home region:
        // from the switch on it must be whole there (records.rs).
        if state.phase != Phase::Finished && (state.switched || !self.opts.switch) {
            let n =
                crate::records::sync_ledger(&state.tenant, &sources, &state.to, &ctx.dst).await?;
            if n > 0 {
                tracing::info!(objects = n, to = %state.to, "disclosure ledger copied to the destination and verified there");
            }
        }

        if state.phase == Phase::Copying {
            self.wait_for_replicas().await?;
            if finish {
                // --finish also completes an interrupted copy: it must not
                // delete anything before every object is verified anyway.
                tracing::info!("the copy is not complete: completing it first");
            }
            self.copy_phase(&ctx, &sources, &journal, &mut state, &mut run)
                .await?;
        }
        if state.phase == Phase::Copying {
            // Mismatches remain.
            let mut r = self.report(&state, run, started, "run");
            r.next_step = "some copies did not verify: investigate, then run the same command again (it retries them)".to_owned();
            return Ok(r);
        }
        // With the directory, a tenant with no data migrates at once: no old
        // copy is kept, so there is nothing to keep through a window (unless
        // the operator asked for one with --assurance).
        if matches!(self.source, TenantSource::Directory(_))
            && self.opts.assurance.is_none()
            && state.phase == Phase::Verified
            && state.totals.listed == 0
            && state.assurance_secs != 0
        {
            tracing::info!(
                tenant = %state.tenant,
                "the tenant has no objects in the other regions: the migration finishes at once (no assurance window)"
            );
            state.assurance_secs = 0;
            journal.save_state(&state).await?;
        }
        let verified_at = state.verified_at.unwrap_or(state.started_at);
        let until = verified_at + state.assurance_secs;
        if now_secs() < until {
            if finish {
                return Err(MigrateError::NotReady(format!(
                    "the assurance window of migration {} ends at {} (Unix time, {} s from now): nothing deleted",
                    state.id,
                    until,
                    until - now_secs()
                )));
            }
            let mut r = self.report(&state, run, started, "run");
            r.next_step = format!(
                "every object is verified in {}; old copies are kept until {} (Unix time): then run `residency migrate --tenant {} --to {} --finish`",
                state.to, until, state.tenant, state.to
            );
            return Ok(r);
        }
        if state.phase != Phase::Finished {
            self.wait_for_replicas().await?;
        }
        self.delete_phase(&ctx, &sources, &journal, &mut state, &mut run)
            .await?;
        let mut r = self.report(&state, run, started, if finish { "finish" } else { "run" });
        if state.phase == Phase::Finished {
            r.next_step = "nothing: the migration is finished".to_owned();
        } else {
            r.next_step =
                "some objects written late did not verify: investigate, then run `--finish` again"
                    .to_owned();
        }
        drop(progress);
        Ok(r)
    }

    fn report(
        &self,
        state: &State,
        run: Totals,
        started: Instant,
        command: &'static str,
    ) -> Report {
        let elapsed = started.elapsed().as_secs_f64();
        let kept = match state.phase {
            Phase::Verified | Phase::Deleting => {
                Some(state.verified_at.unwrap_or(state.started_at) + state.assurance_secs)
            }
            _ => None,
        };
        Report {
            command,
            migration_id: Some(state.id.clone()),
            tenant: state.tenant.clone(),
            from: state.from.clone(),
            to: state.to.clone(),
            phase: Some(state.phase),
            verified_at: state.verified_at,
            old_copies_kept_until: kept,
            finished_at: state.finished_at,
            totals: state.totals.clone(),
            copy_bytes_per_sec: run.copied_bytes as f64 / elapsed.max(0.001),
            this_run: run,
            mismatched_keys: state.mismatched_keys.iter().take(100).cloned().collect(),
            elapsed_secs: elapsed,
            next_step: String::new(),
        }
    }

    /// Counts what is left to list (for the progress display's totals).
    fn spawn_counter(
        &self,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        state: &State,
        deleting: bool,
    ) -> tokio::task::JoinHandle<()> {
        let jobs: Vec<(String, Arc<dyn Backend>, Option<String>)> = sources
            .iter()
            .filter_map(|(r, b)| {
                let s = state.sources.iter().find(|s| &s.region == r)?;
                let (done, after) = if deleting {
                    (s.deleted, s.delete_last_key.clone())
                } else {
                    (s.listed, s.last_key.clone())
                };
                (!done).then(|| (r.clone(), b.clone(), after))
            })
            .collect();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for (r, b, after) in jobs {
                let mut l = Lister::new(b, &r, &ctx.prefix, after);
                while !l.done {
                    let Ok(page) = l.next_page().await else {
                        return;
                    };
                    ctx.counters
                        .total_objects
                        .fetch_add(page.len() as u64, Ordering::Relaxed);
                    ctx.counters
                        .total_bytes
                        .fetch_add(page.iter().map(|o| o.size).sum(), Ordering::Relaxed);
                }
            }
            ctx.counters.counted.store(true, Ordering::Relaxed);
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
