//! Signed statements of where one tenant's data is (`residency attest`).
//!
//! A statement holds the policy's version and SHA-256, the tenant's
//! directory record, its objects and bytes per category × region and its
//! findings (from a scan of that tenant made for the statement), and the
//! heads of its audit chains and disclosure ledger. It is signed with
//! Ed25519 (`ed25519-dalek`) over the exact bytes of the statement's JSON,
//! stored in the tenant's home region under `_attestations/<tenant>/` and
//! printed. Verifying checks the signature against the expected public key
//! and, with access to the buckets, gathers the same evidence again: a
//! changed byte of an audit batch, an object added or removed, or a new
//! finding makes the statement no longer hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use residency_policy::Tenant;
use residency_store::{Backend, ListRequest, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::finding::FindingKind;
use crate::scan::Scanner;
use crate::signed::store;
pub use crate::signed::{
    sign, signing_key, store_in_home, verify_signature, AttestError, Attestation, TenantRecord,
};
use crate::summary::Count;

/// The statement's format label.
pub const FORMAT: &str = "residency-attestation/1";

/// One audit chain's head, as a statement records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The writer (folder under `_audit/<tenant>/`).
    pub writer: String,
    /// Batches stored.
    pub batches: u64,
    /// Events in them.
    pub events: u64,
    /// The latest batch a HEAD record names.
    pub head: Option<u64>,
    /// SHA-256 of that batch's bytes.
    pub head_sha256: Option<String>,
    /// `residency audit verify` found the chain intact.
    pub intact: bool,
}

/// What a statement says that the buckets can show again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Category → region → objects and bytes.
    pub placement: BTreeMap<String, BTreeMap<String, Count>>,
    /// Region → internal records (audit, journals, ledger, attestations).
    pub records: BTreeMap<String, Count>,
    /// Findings of the tenant's scan, per kind (zero kinds left out).
    pub findings: BTreeMap<FindingKind, u64>,
    /// The tenant's audit chains.
    pub audit_chains: Vec<ChainHead>,
    /// SHA-256 of the disclosure ledger's `head.json` in the home region.
    pub disclosure_ledger_sha256: Option<String>,
}

/// The signed part of an attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// [`FORMAT`].
    pub format: String,
    /// The tenant.
    pub tenant: String,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// The hosting policy's version.
    pub policy_version: String,
    /// The hosting policy file's SHA-256 (hex).
    pub policy_sha256: String,
    /// The tenant's directory record.
    pub record: TenantRecord,
    /// The scan made for the statement: its id and when it finished.
    pub scan_id: String,
    /// When that scan finished (Unix seconds).
    pub scanned_at: u64,
    /// What the buckets showed.
    pub evidence: Evidence,
}

/// Where a tenant's attestation made at `created_at` is stored.
pub fn attestation_key(tenant: &str, created_at: u64) -> String {
    format!("_attestations/{tenant}/{created_at}.json")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn read_object(
    b: &dyn Backend,
    region: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, AttestError> {
    match b.get_object(key, None).await {
        Ok(out) => Ok(Some(
            out.body.collect().await.map_err(store(region))?.to_vec(),
        )),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(store(region)(e)),
    }
}

/// Gathers the evidence for `tenant`: a scan of its keys (into a temporary
/// folder), its audit chains verified, its ledger's head.
///
/// # Errors
/// A region, the directory or the scan failed.
pub async fn gather(
    scanner: &Scanner,
    tenant: &Tenant,
) -> Result<(Evidence, crate::Summary), AttestError> {
    let policy = scanner.policy();
    let backends = scanner.backends();
    let t = tenant.id();
    let summary = scanner.scan_tenant(t).await?;
    let mine = summary.tenants.get(t).cloned().unwrap_or_default();

    let moved = residency_migrate::record_moves(backends, t)
        .await
        .map_err(|e| AttestError::Usage(format!("the migration journals of {t}: {e}")))?;
    let report = residency_audit::batch::verify_chain_moved(backends, t, &moved)
        .await
        .map_err(store("*"))?;
    let mut audit_chains = Vec::new();
    for w in &report.writers {
        let mut head_sha256 = None;
        if let Some(n) = w.head {
            let suffix = format!("/{}/{n:012}.jsonl", w.writer);
            'found: for (region, b) in backends.iter().filter(|(r, _)| w.regions.contains(r)) {
                let prefix = format!("{}{}/", residency_audit::batch::audit_prefix(t), w.writer);
                let page = b
                    .list_objects(ListRequest::new(prefix).start_after(format!(
                        "{}{}/{:012}",
                        residency_audit::batch::audit_prefix(t),
                        w.writer,
                        n.saturating_sub(1)
                    )))
                    .await
                    .map_err(store(region))?;
                for o in page.objects.iter().filter(|o| o.key.ends_with(&suffix)) {
                    if let Some(bytes) = read_object(b.as_ref(), region, &o.key).await? {
                        head_sha256 = Some(sha256_hex(&bytes));
                        break 'found;
                    }
                }
            }
        }
        audit_chains.push(ChainHead {
            writer: w.writer.clone(),
            batches: w.batches,
            events: w.events,
            head: w.head,
            head_sha256,
            intact: w.problems.is_empty(),
        });
    }
    let home = policy.region(tenant.home_region(policy)).id();
    let ledger = match backends.iter().find(|(r, _)| r == home) {
        Some((r, b)) => read_object(b.as_ref(), r, &format!("_disclosure/{t}/head.json"))
            .await?
            .map(|bytes| sha256_hex(&bytes)),
        None => None,
    };
    let evidence = Evidence {
        placement: mine.cells,
        // For the reader: audit batches grow with every request, and each
        // attestation adds one record, so `still_holds` does not compare them.
        records: mine.records,
        findings: summary
            .findings
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
            .collect(),
        audit_chains,
        disclosure_ledger_sha256: ledger,
    };
    Ok((evidence, summary))
}

/// Makes, signs and stores `tenant`'s attestation (in its home region).
///
/// # Errors
/// An unknown tenant, or what [`gather`] reports, or the home region
/// refusing the write.
pub async fn create(
    scanner: &Scanner,
    tenant: &str,
    key: &SigningKey,
    policy_sha256: &str,
    created_at: u64,
) -> Result<(Attestation, String), AttestError> {
    let policy = scanner.policy();
    let Some(t) = scanner.lookup(tenant).await? else {
        return Err(AttestError::Usage(format!("unknown tenant {tenant:?}")));
    };
    let (evidence, summary) = gather(scanner, &t).await?;
    let statement = Statement {
        format: FORMAT.to_owned(),
        tenant: tenant.to_owned(),
        created_at,
        policy_version: policy.version().to_owned(),
        policy_sha256: policy_sha256.to_owned(),
        record: TenantRecord::of(policy, &t),
        scan_id: summary.scan_id.clone(),
        scanned_at: summary.finished_at.unwrap_or(created_at),
        evidence,
    };
    let attestation = sign(&statement, key);
    let at = store_in_home(
        scanner,
        &t,
        &attestation_key(tenant, created_at),
        &attestation,
    )
    .await?;
    Ok((attestation, at))
}

/// What differs between a statement's evidence and the buckets now (empty:
/// it still holds).
///
/// # Errors
/// The tenant is gone from the directory, or gathering failed.
pub async fn still_holds(
    scanner: &Scanner,
    statement: &Statement,
) -> Result<Vec<String>, AttestError> {
    let Some(t) = scanner.lookup(&statement.tenant).await? else {
        return Ok(vec![format!(
            "tenant {} is no longer in the directory",
            statement.tenant
        )]);
    };
    let (now, _) = gather(scanner, &t).await?;
    let was = &statement.evidence;
    let mut diff = Vec::new();
    let cells = |e: &Evidence| {
        let mut m = BTreeMap::new();
        for (c, regions) in &e.placement {
            for (r, n) in regions {
                m.insert(format!("{c} in {r}"), *n);
            }
        }
        m
    };
    let (a, b) = (cells(was), cells(&now));
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (
            a.get(k).copied().unwrap_or_default(),
            b.get(k).copied().unwrap_or_default(),
        );
        if x != y {
            diff.push(format!(
                "{k}: attested {} object(s), {} bytes; now {} object(s), {} bytes",
                x.objects, x.bytes, y.objects, y.bytes
            ));
        }
    }
    if was.findings != now.findings {
        diff.push(format!(
            "findings: attested {:?}, now {:?}",
            was.findings, now.findings
        ));
    }
    for w in &was.audit_chains {
        match now.audit_chains.iter().find(|n| n.writer == w.writer) {
            None => diff.push(format!("audit chain {}: gone", w.writer)),
            Some(n) if !n.intact => diff.push(format!(
                "audit chain {}: no longer intact (`residency audit verify --tenant {}` says where)",
                w.writer, statement.tenant
            )),
            Some(n) if n.batches < w.batches || (n.head == w.head && n.head_sha256 != w.head_sha256) => {
                diff.push(format!(
                    "audit chain {}: attested {} batch(es) up to HEAD {:?} ({}), now {} batch(es) up to {:?} ({})",
                    w.writer,
                    w.batches,
                    w.head,
                    w.head_sha256.as_deref().unwrap_or("-"),
                    n.batches,
                    n.head,
                    n.head_sha256.as_deref().unwrap_or("-")
                ))
            }
            Some(_) => {}
        }
    }
    if was.disclosure_ledger_sha256.is_some()
        && now.disclosure_ledger_sha256 != was.disclosure_ledger_sha256
    {
        diff.push("disclosure ledger: its head changed since the statement".to_owned());
    }
    Ok(diff)
}

/// The statements stored for a tenant, newest last (keys only).
///
/// # Errors
/// The home region cannot be listed.
pub async fn stored(
    backend: &Arc<dyn Backend>,
    region: &str,
    tenant: &str,
) -> Result<Vec<String>, AttestError> {
    let page = backend
        .list_objects(ListRequest::new(format!("_attestations/{tenant}/")))
        .await
        .map_err(store(region))?;
    Ok(page.objects.into_iter().map(|o| o.key).collect())
}
