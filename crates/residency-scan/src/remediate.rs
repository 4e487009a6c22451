//! A remediation plan from a scan's findings (`scan --plan FILE`), carried
//! out move by move through the migration's copy machinery
//! (`residency remediate FILE`): copy, verify, delete; resumable from its
//! journal (`FILE.done`).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use residency_migrate::Moved;
use residency_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::error::ScanError;
use crate::finding::{Finding, FindingKind};
use crate::reconcile::{self, MigrationView, Verdict};
use crate::scan::Scanner;
use crate::signed::AttestError;

/// One move of a plan: a line of the plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The tenant.
    pub tenant: String,
    /// The full key (the same in both regions' buckets).
    pub key: String,
    /// Where it is.
    pub from: String,
    /// Where the policy places it.
    pub to: String,
    /// Its category.
    pub category: Option<String>,
    /// Size in bytes, when scanned.
    pub size: u64,
    /// The finding's reason.
    pub reason: String,
}

/// How one move ended: a line of the journal (`<plan>.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The key.
    pub key: String,
    /// From where.
    pub from: String,
    /// To where.
    pub to: String,
    /// `moved`, `vanished`, `destination_taken` or `stale`.
    pub outcome: String,
    /// What it means.
    pub detail: String,
}

/// The journal of `plan`.
pub fn journal_path(plan: &Path) -> PathBuf {
    let mut p = plan.as_os_str().to_owned();
    p.push(".done");
    PathBuf::from(p)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
    move |source| ScanError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes the moves that fix the findings of `findings_path` (misplaced
/// objects and strict tenants' data outside their locality that the policy
/// places somewhere) to `plan`. Returns (moves, findings no move fixes).
///
/// # Errors
/// A file cannot be read or written.
pub fn write_plan(findings_path: &Path, plan: &Path) -> Result<(usize, usize), ScanError> {
    let reader = BufReader::new(std::fs::File::open(findings_path).map_err(io(findings_path))?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(plan).map_err(io(plan))?);
    let (mut moves, mut other) = (0, 0);
    for line in reader.lines() {
        let line = line.map_err(io(findings_path))?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Finding = serde_json::from_str(&line)
            .map_err(std::io::Error::from)
            .map_err(io(findings_path))?;
        let movable = matches!(
            f.kind,
            FindingKind::Misplaced | FindingKind::StrictOutsideLocality
        );
        match (movable, f.tenant, f.expected_region) {
            (true, Some(tenant), Some(to)) => {
                let m = Move {
                    tenant,
                    key: f.key,
                    from: f.region,
                    to,
                    category: f.category,
                    size: f.size,
                    reason: f.reason,
                };
                let mut line = serde_json::to_vec(&m).expect("serializes");
                line.push(b'\n');
                out.write_all(&line).map_err(io(plan))?;
                moves += 1;
            }
            _ => other += 1,
        }
    }
    out.flush().map_err(io(plan))?;
    Ok((moves, other))
}

/// What a remediation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Moves in the plan.
    pub planned: u64,
    /// Done by an earlier run (from the journal).
    pub already_done: u64,
    /// Copied, verified, deleted at the source.
    pub moved: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Gone from the source since the scan.
    pub vanished: u64,
    /// The destination already holds the key: left for a person.
    pub destination_taken: u64,
    /// The policy or the directory changed since the scan: not moved.
    pub stale: u64,
    /// Moves that failed (a region down, a copy that did not verify):
    /// run again.
    pub failed: Vec<String>,
}

/// Whether the current policy still sends `m` where the plan says, read
/// from the object's stored metadata (`Err`: why not).
async fn still_wanted(scanner: &Scanner, m: &Move) -> Result<Result<(), String>, AttestError> {
    let policy = scanner.policy();
    let Some(tenant) = scanner.lookup(&m.tenant).await? else {
        return Ok(Err(format!(
            "tenant {} is no longer in the directory",
            m.tenant
        )));
    };
    let (Some(from), Some(to)) = (policy.region_by_id(&m.from), policy.region_by_id(&m.to)) else {
        return Ok(Err("a region of the move is no longer declared".to_owned()));
    };
    if tenant.migrating_from() == Some(from) {
        return Ok(Err(format!(
            "a migration of {} from {} is open: `residency migrate` moves it",
            m.tenant, m.from
        )));
    }
    let Some((_, src)) = scanner.backends().iter().find(|(r, _)| *r == m.from) else {
        return Ok(Err(format!("region {} is not configured", m.from)));
    };
    let info = match src.head_object(&m.key).await {
        Ok(i) => i,
        Err(StoreError::NotFound { .. }) => return Ok(Ok(())), // the move says "vanished"
        Err(source) => {
            return Err(AttestError::Store {
                region: m.from.clone(),
                source,
            })
        }
    };
    let key = m
        .key
        .strip_prefix(&format!("{}/", m.tenant))
        .unwrap_or(&m.key);
    let v = reconcile::object_as_stored(
        policy,
        &tenant,
        from,
        key,
        &info.headers,
        &MigrationView::None,
    );
    Ok(match v {
        Verdict::Finding {
            expected: Some(e), ..
        } if e == to => Ok(()),
        Verdict::InPlace { .. } => Err(format!("the policy now places it in {}", m.from)),
        Verdict::Finding { expected, .. } => Err(format!(
            "the policy now places it in {}",
            expected.map_or("no region", |r| policy.region(r).id())
        )),
    })
}

/// Carries out `plan` (`parallel` moves at once), journaling each outcome
/// in `<plan>.done`; moves an earlier run journaled are skipped.
///
/// # Errors
/// The plan or journal cannot be read or written, or the directory failed.
pub async fn execute(
    scanner: &Scanner,
    plan: &Path,
    parallel: usize,
    progress: &(dyn Fn(&Done) + Sync),
) -> Result<Report, AttestError> {
    let journal = journal_path(plan);
    let mut done = HashSet::new();
    if let Ok(f) = std::fs::File::open(&journal) {
        for line in BufReader::new(f).lines() {
            let line = line.map_err(io(&journal))?;
            if let Ok(d) = serde_json::from_str::<Done>(&line) {
                done.insert((d.key, d.from, d.to));
            }
        }
    }
    let text = std::fs::read_to_string(plan).map_err(io(plan))?;
    let mut moves = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let m: Move = serde_json::from_str(line).map_err(|e| {
            AttestError::Usage(format!(
                "{} line {}: not a move: {e}",
                plan.display(),
                n + 1
            ))
        })?;
        moves.push(m);
    }
    let mut report = Report {
        planned: moves.len() as u64,
        ..Report::default()
    };
    let todo: Vec<Move> = moves
        .into_iter()
        .filter(|m| !done.contains(&(m.key.clone(), m.from.clone(), m.to.clone())))
        .collect();
    report.already_done = report.planned - todo.len() as u64;
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal)
        .map_err(io(&journal))?;
    let mut results = futures::stream::iter(todo)
        .map(|m| async move {
            let outcome = match still_wanted(scanner, &m).await {
                Err(e) => Err(e.to_string()),
                Ok(Err(why)) => Ok(("stale", why, 0)),
                Ok(Ok(())) => {
                    let region = |r: &str| {
                        scanner
                            .backends()
                            .iter()
                            .find(|(id, _)| id == r)
                            .map(|b| b.1.clone())
                    };
                    match (region(&m.from), region(&m.to)) {
                        (Some(src), Some(dst)) => {
                            match residency_migrate::move_object(&src, &m.from, &dst, &m.to, &m.key)
                                .await
                            {
                                Ok(Moved::Done { sha256, size }) => Ok((
                                    "moved",
                                    sha256.map_or_else(
                                        || {
                                            "an earlier run's copy matched: source deleted"
                                                .to_owned()
                                        },
                                        |h| format!("sha256 {h}"),
                                    ),
                                    size,
                                )),
                                Ok(Moved::Vanished) => Ok((
                                    "vanished",
                                    "gone from the source since the scan".to_owned(),
                                    0,
                                )),
                                Ok(Moved::DestinationTaken) => Ok((
                                    "destination_taken",
                                    format!(
                                        "{} already holds the key: nothing copied or deleted",
                                        m.to
                                    ),
                                    0,
                                )),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        _ => Err("a region of the move is not configured".to_owned()),
                    }
                }
            };
            (m, outcome)
        })
        .buffer_unordered(parallel.max(1));
    while let Some((m, outcome)) = results.next().await {
        match outcome {
            Err(e) => report
                .failed
                .push(format!("{} ({} -> {}): {e}", m.key, m.from, m.to)),
            Ok((kind, detail, size)) => {
                match kind {
                    "moved" => {
                        report.moved += 1;
                        report.bytes += size;
                    }
                    "vanished" => report.vanished += 1,
                    "destination_taken" => report.destination_taken += 1,
                    _ => report.stale += 1,
                }
                let d = Done {
                    key: m.key,
                    from: m.from,
                    to: m.to,
                    outcome: kind.to_owned(),
                    detail,
                };
                let mut line = serde_json::to_vec(&d).expect("serializes");
                line.push(b'\n');
                out.write_all(&line).map_err(io(&journal))?;
                out.flush().map_err(io(&journal))?;
                progress(&d);
            }
        }
    }
    Ok(report)
}
