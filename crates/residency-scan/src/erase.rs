//! Offboarding: every object of a departing tenant deleted in every region,
//! its records kept for their retention period, and a signed erasure
//! statement (`residency erase`, checked by `residency attest verify`).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use futures::{StreamExt as _, TryStreamExt as _};
use residency_policy::Tenant;
use residency_store::ListRequest;
use serde::{Deserialize, Serialize};

use crate::scan::Scanner;
use crate::signed::{sign, store_in_home, AttestError, Attestation, TenantRecord};
use crate::summary::Count;

/// The erasure statement's format label.
pub const FORMAT: &str = crate::retained::ERASURE_FORMAT;

/// Records kept after an erasure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// What they are.
    pub what: String,
    /// Their prefix in each region's bucket.
    pub prefix: String,
    /// Region → objects and bytes kept.
    pub regions: BTreeMap<String, Count>,
    /// The rule that keeps them.
    pub why: String,
    /// Until when (Unix seconds); `None`: as long as the statement is kept.
    pub until: Option<u64>,
}

/// The signed part of an erasure statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// [`FORMAT`].
    pub format: String,
    /// The tenant.
    pub tenant: String,
    /// When every object was deleted (Unix seconds).
    pub erased_at: u64,
    /// The hosting policy's version and SHA-256.
    pub policy_version: String,
    /// SHA-256 of the policy file.
    pub policy_sha256: String,
    /// The tenant's directory record at the time.
    pub record: TenantRecord,
    /// Category → region → objects and bytes deleted.
    pub deleted: BTreeMap<String, BTreeMap<String, Count>>,
    /// Incomplete multipart uploads aborted, per region.
    pub uploads_aborted: BTreeMap<String, u64>,
    /// What was kept.
    pub kept: Vec<Kept>,
}

/// What an erasure would delete (the dry run) and what it keeps.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Category → region → objects and bytes to delete.
    pub delete: BTreeMap<String, BTreeMap<String, Count>>,
    /// Objects to delete in all.
    pub objects: u64,
    /// Records kept.
    pub kept: Vec<Kept>,
}

/// Plans `tenant`'s erasure: its objects per category × region (from a
/// scan of its keys) and its records, kept for `retention_secs`.
///
/// # Errors
/// The scan failed.
pub async fn plan(
    scanner: &Scanner,
    tenant: &Tenant,
    now: u64,
    retention_secs: u64,
) -> Result<Plan, AttestError> {
    let t = tenant.id();
    let summary = scanner.scan_tenant(t).await?;
    let mine = summary.tenants.get(t).cloned().unwrap_or_default();
    let objects = mine
        .cells
        .values()
        .flat_map(|r| r.values())
        .map(|c| c.objects)
        .sum();
    let mut kept = Vec::new();
    let until = now.saturating_add(retention_secs);
    for (what, prefix, why, until) in [
        (
            "audit batches",
            residency_audit::batch::audit_prefix(t),
            "retention of the audit trail of every decision and write",
            Some(until),
        ),
        (
            "disclosure ledger",
            format!("_disclosure/{t}/"),
            "retention of the record of government data requests",
            Some(until),
        ),
        (
            "migration journals",
            format!("_migrations/{t}/"),
            "evidence of where the data was moved",
            Some(until),
        ),
        (
            "attestations",
            format!("_attestations/{t}/"),
            "the signed statements, this erasure's included",
            None,
        ),
    ] {
        let mut regions = BTreeMap::new();
        for (region, b) in scanner.backends() {
            let mut c = Count::default();
            let mut after: Option<String> = None;
            loop {
                let mut req = ListRequest::new(prefix.clone());
                if let Some(a) = after.take() {
                    req = req.start_after(a);
                }
                let page = b
                    .list_objects(req)
                    .await
                    .map_err(|source| AttestError::Store {
                        region: region.clone(),
                        source,
                    })?;
                for o in &page.objects {
                    c.add(o.size);
                }
                after = page.objects.last().map(|o| o.key.clone());
                if page.next_continuation_token.is_none() || after.is_none() {
                    break;
                }
            }
            if c.objects > 0 {
                regions.insert(region.clone(), c);
            }
        }
        kept.push(Kept {
            what: what.to_owned(),
            prefix,
            regions,
            why: why.to_owned(),
            until,
        });
    }
    Ok(Plan {
        delete: mine.cells,
        objects,
        kept,
    })
}

/// Deletes every object and incomplete upload under `<tenant>/` in every
/// region (16 at once per region), checks that nothing is left, then signs
/// and stores the erasure statement in the tenant's home region.
///
/// # Errors
/// A region failed, or still holds objects of the tenant after the
/// deletion (the statement is then not written).
pub async fn erase(
    scanner: &Scanner,
    tenant: &Tenant,
    plan: Plan,
    key: &SigningKey,
    policy_sha256: &str,
    now: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Attestation, String), AttestError> {
    let t = tenant.id();
    let prefix = format!("{t}/");
    let mut uploads_aborted = BTreeMap::new();
    let deleted = std::sync::atomic::AtomicU64::new(0);
    for (region, b) in scanner.backends() {
        let failed = |source| AttestError::Store {
            region: region.clone(),
            source,
        };
        let uploads = b.list_multipart_uploads(&prefix).await.map_err(failed)?;
        for u in &uploads {
            b.abort_multipart(&u.key, &u.upload_id)
                .await
                .map_err(|source| AttestError::Store {
                    region: region.clone(),
                    source,
                })?;
        }
        if !uploads.is_empty() {
            uploads_aborted.insert(region.clone(), uploads.len() as u64);
        }
        let mut previous: Option<String> = None;
        loop {
            // Always the first page: what is deleted is gone from it.
            let page = b
                .list_objects(ListRequest::new(prefix.clone()))
                .await
                .map_err(|source| AttestError::Store {
                    region: region.clone(),
                    source,
                })?;
            if page.objects.is_empty() {
                break;
            }
            // A page that starts where the last one did: the deletes were
            // answered but did not take (never loop on it).
            let first = page.objects[0].key.clone();
            if previous.as_deref() == Some(first.as_str()) {
                return Err(AttestError::Usage(format!(
                    "region {region} still lists {first} after deleting it: no erasure statement written; run again"
                )));
            }
            previous = Some(first);
            futures::stream::iter(page.objects)
                .map(|o| async move {
                    b.delete_object(&o.key)
                        .await
                        .map_err(|source| AttestError::Store {
                            region: region.clone(),
                            source,
                        })
                })
                .buffer_unordered(16)
                .try_for_each(|()| {
                    let n = deleted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(n);
                    async { Ok(()) }
                })
                .await?;
        }
        // Nothing of the tenant's may be left, in any region.
        let left = b
            .list_objects(ListRequest::new(prefix.clone()).max_keys(1))
            .await
            .map_err(|source| AttestError::Store {
                region: region.clone(),
                source,
            })?;
        if !left.objects.is_empty() {
            return Err(AttestError::Usage(format!(
                "region {region} still holds {} after the deletion: no erasure statement written; run again",
                left.objects[0].key
            )));
        }
    }
    let policy = scanner.policy();
    let erasure = Erasure {
        format: FORMAT.to_owned(),
        tenant: t.to_owned(),
        erased_at: now,
        policy_version: policy.version().to_owned(),
        policy_sha256: policy_sha256.to_owned(),
        record: TenantRecord::of(policy, tenant),
        deleted: plan.delete,
        uploads_aborted,
        kept: plan.kept,
    };
    let attestation = sign(&erasure, key);
    let name = format!("_attestations/{t}/erasure-{now}.json");
    let at = store_in_home(scanner, tenant, &name, &attestation).await?;
    Ok((attestation, at))
}

/// What differs between an erasure statement and the buckets now: any
/// object under `<tenant>/` in any region, any kept record gone before its
/// retention ends.
///
/// # Errors
/// A region could not be listed.
pub async fn still_holds(
    scanner: &Scanner,
    erasure: &Erasure,
    now: u64,
) -> Result<Vec<String>, AttestError> {
    let mut diff = Vec::new();
    for (region, b) in scanner.backends() {
        let left = b
            .list_objects(ListRequest::new(format!("{}/", erasure.tenant)).max_keys(1))
            .await
            .map_err(|source| AttestError::Store {
                region: region.clone(),
                source,
            })?;
        if let Some(o) = left.objects.first() {
            diff.push(format!(
                "{region} holds {} (erased tenant's namespace)",
                o.key
            ));
        }
        for k in &erasure.kept {
            let Some(count) = k.regions.get(region) else {
                continue;
            };
            if k.until.is_some_and(|u| u <= now) {
                continue;
            }
            let page = b
                .list_objects(ListRequest::new(k.prefix.clone()).max_keys(1))
                .await
                .map_err(|source| AttestError::Store {
                    region: region.clone(),
                    source,
                })?;
            if page.objects.is_empty() && count.objects > 0 {
                diff.push(format!(
                    "{} in {region}: kept by the statement ({}), gone before the end of their retention",
                    k.what, k.why
                ));
            }
        }
    }
    Ok(diff)
}
