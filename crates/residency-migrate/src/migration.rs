//! The migration itself: plan, switch, copy and verify, delete.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use residency_policy::{Policy, Ruleset, Tenants};
use residency_store::{Backend, ListRequest, ObjectInfo, ObjectSummary, StoreError};
use residency_tower::audit::AuditEvent;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::audit::MigrationAudit;
use crate::copy::{hash_object, same_meta, stream_copy, unquote, CopyError, CopyHooks};
use crate::error::{MigrateError, OpenMigration};
use crate::fault::{FaultAction, FaultKind, FaultPoint, Faults};
use crate::journal::{
    now_secs, DeleteAction, DeleteRecord, Journal, Outcome, Phase, Record, RecordCursor,
    SourceState, State, Totals, MAX_MISMATCHED,
};
use crate::placement::{Placer, Verdict, META_CATEGORY};
use crate::progress::{Counters, Progress, ProgressMode};
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
        }
    }
}

/// The outcome of a command, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `plan` (dry run), `run` or `finish`.
    pub command: &'static str,
    /// The migration id (none for a dry run without a journal).
    pub migration_id: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The tenant's home region before the migration.
    pub from: String,
    /// The destination.
    pub to: String,
    /// The phase reached (none for a dry run).
    pub phase: Option<Phase>,
    /// When every object was verified (Unix seconds).
    pub verified_at: Option<u64>,
    /// Old copies are kept until then (Unix seconds), when not deleted yet.
    pub old_copies_kept_until: Option<u64>,
    /// When the old copies were deleted (Unix seconds).
    pub finished_at: Option<u64>,
    /// Counters over the whole migration (from the journal): every run,
    /// killed ones included (a killed run's copies are counted by the run
    /// that finds them in the destination).
    pub totals: Totals,
    /// Counters of this invocation.
    pub this_run: Totals,
    /// Keys whose copy did not verify (at most 100 shown).
    pub mismatched_keys: Vec<String>,
    /// Seconds this invocation took.
    pub elapsed_secs: f64,
    /// Bytes copied per second by this invocation.
    pub copy_bytes_per_sec: f64,
    /// One line saying what is next.
    pub next_step: String,
}

impl Report {
    /// True when nothing failed verification.
    pub fn ok(&self) -> bool {
        self.totals.mismatched == 0 && self.this_run.mismatched == 0
    }

    /// The report for humans.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            s,
            "migration {} of tenant {}: {} -> {} ({})",
            self.migration_id.as_deref().unwrap_or("(dry run)"),
            self.tenant,
            self.from,
            self.to,
            self.phase.map(Phase::as_str).unwrap_or("plan")
        );
        let t = &self.totals;
        let _ = writeln!(s, "  listed in old regions  {:>10}", t.listed);
        let _ = writeln!(
            s,
            "  planned (to move)      {:>10}  {:.1} MiB",
            t.planned,
            mib(t.planned_bytes)
        );
        for (c, n) in &t.planned_by_category {
            let _ = writeln!(s, "    {c:<24}{n:>8}");
        }
        if self.command != "plan" {
            let _ = writeln!(
                s,
                "  copied                 {:>10}  {:.1} MiB",
                t.copied,
                mib(t.copied_bytes)
            );
            let _ = writeln!(s, "  verified               {:>10}", t.verified);
            let _ = writeln!(s, "  mismatched             {:>10}", t.mismatched);
            let _ = writeln!(s, "  superseded (newer in {}) {:>8}", self.to, t.superseded);
            let _ = writeln!(s, "  vanished (deleted by tenant) {:>4}", t.vanished);
        }
        let _ = writeln!(s, "  skipped by policy      {:>10}", t.skipped_by_policy);
        for (c, n) in &t.skipped_by_category {
            let _ = writeln!(s, "    {c:<24}{n:>8}");
        }
        if self.command != "plan" {
            let _ = writeln!(s, "  old copies deleted     {:>10}", t.deleted);
            if t.aborted_uploads > 0 {
                let _ = writeln!(
                    s,
                    "  uploads of killed runs aborted {:>2}  {:.1} MiB of parts",
                    t.aborted_uploads,
                    mib(t.aborted_upload_bytes)
                );
            }
            let _ = writeln!(
                s,
                "  this run: copied {} ({:.1} MiB), verified {}, deleted {} in {:.1}s ({:.1} MiB/s)",
                self.this_run.copied,
                mib(self.this_run.copied_bytes),
                self.this_run.verified,
                self.this_run.deleted,
                self.elapsed_secs,
                self.copy_bytes_per_sec / (1024.0 * 1024.0)
            );
        }
        for k in &self.mismatched_keys {
            let _ = writeln!(s, "  MISMATCH {k}");
        }
        let _ = writeln!(s, "next: {}", self.next_step);
        s
    }
}

/// Moves one tenant's data to a new region.
///
/// See the crate docs for the sequence. Every method is safe to run again
/// after a crash: the journal in the destination region says where to resume.
pub struct Migrator {
    policy: Policy,
    tenants_path: PathBuf,
    backends: Vec<(String, Arc<dyn Backend>)>,
    audit: Option<Arc<dyn MigrationAudit>>,
    opts: MigrationOptions,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("tenants_path", &self.tenants_path)
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

async fn with_retry<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Err(e) if e.is_unavailable() && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            r => return r,
        }
    }
}

/// Lists one region's objects under a prefix, page by page, from a key.
struct Lister {
    backend: Arc<dyn Backend>,
    region: String,
    prefix: String,
    start_after: Option<String>,
    token: Option<String>,
    done: bool,
}

impl Lister {
    fn new(
        backend: Arc<dyn Backend>,
        region: &str,
        prefix: &str,
        start_after: Option<String>,
    ) -> Self {
        Lister {
            backend,
            region: region.to_owned(),
            prefix: prefix.to_owned(),
            start_after,
            token: None,
            done: false,
        }
    }

    async fn next_page(&mut self) -> Result<Vec<ObjectSummary>, MigrateError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut req = ListRequest::new(self.prefix.clone()).max_keys(1000);
        if let Some(t) = &self.token {
            req = req.continuation_token(Some(t.clone()));
        } else if let Some(s) = &self.start_after {
            req = req.start_after(s.clone());
        }
        let page = with_retry(|| self.backend.list_objects(req.clone()))
            .await
            .map_err(|e| MigrateError::store(&self.region, e))?;
        self.token = page.next_continuation_token;
        if self.token.is_none() {
            self.done = true;
        }
        Ok(page.objects)
    }
}

fn record(obj: &ObjectSummary, outcome: Outcome) -> Record {
    Record {
        key: obj.key.clone(),
        size: obj.size,
        etag: obj.etag.clone(),
        outcome,
        copied: false,
        earlier_run: false,
        sha256: None,
        dest_etag: None,
        category: None,
        detail: None,
    }
}

impl RunCtx {
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

/// Copies and verifies one object (or finds it already there).
async fn migrate_object(
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
            Err(StoreError::NotFound { .. }) => {}
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
            },
        )
        .await
        {
            Ok(c) => c,
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
        let mut problems = Vec::new();
        if d.size != info.size {
            problems.push(format!("size {} != {}", d.size, info.size));
        }
        if unquote(&d.etag) != unquote(&copied.expected_etag) {
            problems.push(format!(
                "destination etag {} != {} computed while copying",
                d.etag, copied.expected_etag
            ));
        }
        if !same_meta(&d, &info) {
            problems.push("metadata differs".to_owned());
        }
        if !info.etag.contains('-') && unquote(&info.etag) != copied.md5_hex {
            problems.push(format!(
                "bytes read do not match the source etag {}",
                info.etag
            ));
        }
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

/// Deletes one old copy if (and only if) its copy is verified.
async fn delete_old_copy(
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
    /// A migrator for `opts.tenant`. `backends` maps every policy region to
    /// its backend; `tenants_path` is the tenants file the sidecar reads.
    pub fn new(
        policy: Policy,
        tenants_path: impl Into<PathBuf>,
        backends: Vec<(String, Arc<dyn Backend>)>,
        opts: MigrationOptions,
    ) -> Self {
        Migrator {
            policy,
            tenants_path: tenants_path.into(),
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

    fn prepare(&self) -> Result<Prepared, MigrateError> {
        let path = &self.tenants_path;
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|e| MigrateError::Config(format!("cannot read {file}: {e}")))?;
        let tenants = Tenants::from_toml(&src, &file, &self.policy)
            .map_err(|e| MigrateError::Config(e.to_string()))?;
        let tid = tenants.get(&self.opts.tenant).ok_or_else(|| {
            MigrateError::Config(format!("unknown tenant {:?}", self.opts.tenant))
        })?;
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
        let t = tenants.tenant(tid);
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
        let after = tenants_file::edit_source(&src, &self.opts.tenant, &to, Some(&from))
            .map_err(MigrateError::Config)?;
        let after = Tenants::from_toml(&after, &file, &self.policy).map_err(|e| {
            MigrateError::Config(format!("the switched tenants file would be invalid: {e}"))
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

    /// `--dry-run`: lists the tenant's objects in the other regions and says
    /// what would move (counts, bytes, per category). Writes nothing.
    ///
    /// # Errors
    /// Bad arguments, unreachable backends.
    pub async fn plan(&self) -> Result<Report, MigrateError> {
        let started = Instant::now();
        let p = self.prepare()?;
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
                "residency migrate --tenant {} --to {} (switches the tenants file, copies, verifies)",
                self.opts.tenant, self.opts.to
            ),
        })
    }

    /// Starts or resumes the migration: switch the tenants file, copy and
    /// verify every object; then, if the assurance window has already passed
    /// (`--assurance 0s`), delete the old copies as [`Migrator::finish`] does.
    ///
    /// # Errors
    /// Bad arguments, another migration in progress, a backend that stays
    /// unavailable, a fault point. The journal stays consistent: run again.
    pub async fn run(&self) -> Result<Report, MigrateError> {
        self.execute(false).await
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
        self.execute(true).await
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
                match with_retry(|| ctx.dst.list_parts(&n.key, &n.upload_id, marker, None)).await {
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
        let p = self.prepare()?;
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
            ctx.audit(
                "migrate_start",
                "",
                None,
                &[&ctx.from, &ctx.to],
                "migration started",
            );
            ctx.flush_audit().await?;
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
        if !created && state.phase != Phase::Finished {
            self.abort_left_uploads(&ctx, &journal, &mut state, &mut run)
                .await?;
        }

        // Switch: new writes go to the destination, reads try it first.
        if self.opts.switch && state.phase != Phase::Finished {
            let change = tenants_file::would_change(
                &self.tenants_path,
                &self.opts.tenant,
                &state.to,
                Some(&state.from),
            )
            .map_err(MigrateError::Config)?;
            if change || !state.switched {
                // The event is stored before the switch and its journal entry.
                ctx.audit(
                    "migrate_switch",
                    "",
                    None,
                    &[&state.to, &state.from],
                    "tenants file: locality is the destination, reads fall back to the old region",
                );
                ctx.flush_audit().await?;
                tenants_file::edit_file(
                    &self.tenants_path,
                    &self.opts.tenant,
                    &state.to,
                    Some(&state.from),
                )
                .map_err(MigrateError::Config)?;
                state.switched = true;
                journal.save_state(&state).await?;
                tracing::info!(
                    file = %self.tenants_path.display(),
                    "tenants file switched: locality = {:?}, migrating_from = {:?} (the sidecar reloads it within seconds, or on SIGHUP)",
                    state.to, state.from
                );
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

    async fn copy_phase(
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
        for (i, (region, backend)) in sources.iter().enumerate() {
            if state.sources[i].listed {
                continue;
            }
            self.copy_region(ctx, region, backend, journal, state, i, run)
                .await?;
        }
        if state.mismatched_keys.is_empty() {
            ctx.audit(
                "migrate_verified",
                "",
                None,
                &[&ctx.to],
                "every object is verified in the destination",
            );
            ctx.flush_audit().await?;
            state.phase = Phase::Verified;
            state.verified_at = Some(now_secs());
            journal.save_state(state).await?;
            tracing::info!(id = %state.id, "every object is verified in {}", state.to);
        }
        Ok(())
    }

    async fn find_source(
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
    async fn copy_region(
        &self,
        ctx: &Arc<RunCtx>,
        region: &str,
        backend: &Arc<dyn Backend>,
        journal: &Journal,
        state: &mut State,
        i: usize,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        struct PageAcc {
            records: Vec<Option<Record>>,
            remaining: usize,
            last_key: Option<String>,
        }
        let parallel = self.opts.parallel.max(1);
        let mut lister = Lister::new(
            backend.clone(),
            region,
            &ctx.prefix,
            state.sources[i].last_key.clone(),
        );
        let mut pages: BTreeMap<u64, PageAcc> = BTreeMap::new();
        let mut next_seq = state.sources[i].pages;
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
                    .write_segment(&state.id, region, "copy", flush_seq, &records)
                    .await?;
                ctx.faults.hit(FaultKind::Segment)?;
                let src = &mut state.sources[i];
                src.pages = flush_seq + 1;
                if acc.last_key.is_some() {
                    src.last_key = acc.last_key;
                }
                for r in &records {
                    state.totals.add_record(r);
                    run.add_run_record(r);
                    if r.outcome == Outcome::Mismatched {
                        state.mismatched_keys.push(r.key.clone());
                    }
                }
                if state.mismatched_keys.len() > MAX_MISMATCHED {
                    journal.save_state(state).await?;
                    return Err(MigrateError::Journal(format!(
                        "more than {MAX_MISMATCHED} copies did not verify: stopping"
                    )));
                }
                journal.save_state(state).await?;
                ctx.faults.hit(FaultKind::State)?;
                flush_seq += 1;
            }
        }
        state.sources[i].listed = true;
        journal.save_state(state).await?;
        Ok(())
    }

    async fn delete_phase(
        &self,
        ctx: &Arc<RunCtx>,
        sources: &[(String, Arc<dyn Backend>)],
        journal: &Journal,
        state: &mut State,
        run: &mut Totals,
    ) -> Result<(), MigrateError> {
        if state.phase == Phase::Verified {
            ctx.audit(
                "migrate_delete_start",
                "",
                None,
                &[&ctx.from],
                "assurance window passed: deleting verified old copies",
            );
            ctx.flush_audit().await?;
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
        ctx.audit(
            "migrate_records",
            "",
            None,
            &[&ctx.to],
            "audit chains and disclosure ledger: copy, verify in the destination, delete the old copies",
        );
        ctx.flush_audit().await?;
        let moved =
            crate::records::move_records(&state.tenant, sources, &state.to, &ctx.dst).await?;
        let r = &mut state.totals.records;
        r.audit_copied += moved.audit_copied;
        r.audit_deleted += moved.audit_deleted;
        r.ledger_copied += moved.ledger_copied;
        r.ledger_deleted += moved.ledger_deleted;
        run.records = moved;
        if self.opts.switch {
            tenants_file::edit_file(&self.tenants_path, &state.tenant, &state.to, None)
                .map_err(MigrateError::Config)?;
        }
        ctx.audit(
            "migrate_finish",
            "",
            None,
            &[&ctx.to],
            "old copies deleted; migrating_from removed from the tenants file",
        );
        ctx.flush_audit().await?;
        state.phase = Phase::Finished;
        state.finished_at = Some(now_secs());
        journal.save_state(state).await?;
        tracing::info!(id = %state.id, deleted = state.totals.deleted, "migration finished");
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
