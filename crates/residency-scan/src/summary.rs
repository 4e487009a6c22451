//! What a scan counted: objects and bytes per tenant × category × region,
//! findings per kind. Bounded by the number of tenants, categories and
//! regions, never by the number of objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::FindingKind;
use crate::inventory::InventoryNote;

/// Objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

/// One tenant's share of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSummary {
    /// Category (`unclassified` when none could be found) → region → count.
    pub cells: BTreeMap<String, BTreeMap<String, Count>>,
    /// Region → the tenant's internal records there (audit, journals,
    /// disclosure ledger).
    pub records: BTreeMap<String, Count>,
    /// Findings per kind.
    pub findings: BTreeMap<FindingKind, u64>,
}

/// Adds one object of `bytes` to `map[key]` (the key is allocated only
/// the first time).
fn count_in(map: &mut BTreeMap<String, Count>, key: &str, bytes: u64) {
    match map.get_mut(key) {
        Some(c) => c.add(bytes),
        None => {
            let mut c = Count::default();
            c.add(bytes);
            map.insert(key.to_owned(), c);
        }
    }
}

/// The label of objects no category was found for.
pub const UNCLASSIFIED: &str = "unclassified";

/// What a scan found, as `summary.json` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The scan's id (its start, Unix seconds, and the process id).
    pub scan_id: String,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// When it finished (Unix seconds); `None` while it runs.
    pub finished_at: Option<u64>,
    /// Every region was listed to its end.
    pub complete: bool,
    /// The hosting policy's version.
    pub policy_version: String,
    /// The hosting policy's SHA-256 (hex), over its file as loaded.
    #[serde(default)]
    pub policy_sha256: String,
    /// Only this tenant's keys were listed (`--tenant`).
    pub tenant_filter: Option<String>,
    /// The regions listed.
    pub regions: Vec<String>,
    /// Every key listed.
    pub listed: Count,
    /// Region → keys listed there.
    pub per_region: BTreeMap<String, Count>,
    /// Findings per kind (every kind present, zero included).
    pub findings: BTreeMap<FindingKind, u64>,
    /// Tenant → its share. Keys of no known tenant are under
    /// [`Summary::unowned`].
    pub tenants: BTreeMap<String, TenantSummary>,
    /// Keys no tenant of the directory owns.
    pub unowned: Count,
    /// Records of no one tenant (the transparency reports under
    /// `_disclosure/_reports/`).
    #[serde(default)]
    pub shared_records: Count,
    /// The S3 Inventory reports read instead of listing (`--inventory`),
    /// one per region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryNote>,
}

impl Summary {
    /// Every finding, all kinds together.
    pub fn total_findings(&self) -> u64 {
        self.findings.values().sum()
    }

    /// Whether nothing was reported and every region was listed.
    pub fn is_clean(&self) -> bool {
        self.complete && self.total_findings() == 0
    }

    pub(crate) fn with_kinds(mut self) -> Self {
        for k in FindingKind::ALL {
            self.findings.entry(k).or_insert(0);
        }
        self
    }

    /// A tenant's object counted in `category` × `region` (no allocation
    /// once the cell exists: this runs for every key).
    pub(crate) fn object(&mut self, tenant: &str, category: &str, region: &str, bytes: u64) {
        let cells = &mut self.tenant(tenant).cells;
        if !cells.contains_key(category) {
            cells.insert(category.to_owned(), BTreeMap::new());
        }
        let by_region = cells.get_mut(category).expect("inserted");
        count_in(by_region, region, bytes);
    }

    /// A tenant's internal record counted in `region`.
    pub(crate) fn record(&mut self, tenant: &str, region: &str, bytes: u64) {
        count_in(&mut self.tenant(tenant).records, region, bytes);
    }

    pub(crate) fn listed(&mut self, region: &str, bytes: u64) {
        self.listed.add(bytes);
        count_in(&mut self.per_region, region, bytes);
    }

    pub(crate) fn finding(&mut self, kind: FindingKind, tenant: Option<&str>) {
        *self.findings.entry(kind).or_insert(0) += 1;
        if let Some(t) = tenant {
            *self.tenant(t).findings.entry(kind).or_insert(0) += 1;
        }
    }

    fn tenant(&mut self, tenant: &str) -> &mut TenantSummary {
        if !self.tenants.contains_key(tenant) {
            self.tenants
                .insert(tenant.to_owned(), TenantSummary::default());
        }
        self.tenants.get_mut(tenant).expect("inserted")
    }
}
