//! The scan loop: each region's bucket listed page by page (regions at
//! once), each key reconciled, findings streamed to `findings.jsonl`, the
//! cursors and counts checkpointed so that a killed scan resumes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use residency_directory::Directory;
use residency_migrate::ProgressMode;
use residency_policy::{Policy, RegionId, Tenant};
use residency_store::Backend;

use crate::checkpoint::{
    ctx_checkpoint, read_checkpoint, read_summary, write_atomic, Cursor, Shared,
};
pub use crate::error::ScanError;
use crate::inventory::Manifest;
use crate::progress::Progress;
use crate::summary::Summary;

mod pass;
use pass::Ctx;

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

pub(super) fn now_secs() -> u64 {
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
