//! What a scan reports about one stored object.

use serde::{Deserialize, Serialize};

/// Why an object is reported. Each kind has a stable label (JSON, metrics,
/// the HTML report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Its region is not where the current policy places it for its tenant
    /// and category.
    Misplaced,
    /// A strict tenant's data outside the tenant's locality.
    StrictOutsideLocality,
    /// Data of a category gated by a feature the tenant no longer has.
    FeatureRemoved,
    /// An old copy left in a migration's source region: the migration
    /// finished, or its assurance window passed without `--finish`.
    MigrationLeftover,
    /// An object or record of a tenant the directory does not know, or a key
    /// with no tenant prefix.
    UnknownTenant,
    /// No key rule, stored category or content type classifies it (or the
    /// stored category is unknown or contradicts the key rule).
    Unclassifiable,
    /// An internal record (audit, migration journal, disclosure ledger) in a
    /// region where its tenant has no data to record, or an unknown internal
    /// folder.
    RecordOutOfPlace,
}

impl FindingKind {
    /// Every kind, in report order.
    pub const ALL: [FindingKind; 7] = [
        FindingKind::Misplaced,
        FindingKind::StrictOutsideLocality,
        FindingKind::FeatureRemoved,
        FindingKind::MigrationLeftover,
        FindingKind::UnknownTenant,
        FindingKind::Unclassifiable,
        FindingKind::RecordOutOfPlace,
    ];

    /// The stable label (`misplaced`, `strict_outside_locality`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Misplaced => "misplaced",
            FindingKind::StrictOutsideLocality => "strict_outside_locality",
            FindingKind::FeatureRemoved => "feature_removed",
            FindingKind::MigrationLeftover => "migration_leftover",
            FindingKind::UnknownTenant => "unknown_tenant",
            FindingKind::Unclassifiable => "unclassifiable",
            FindingKind::RecordOutOfPlace => "record_out_of_place",
        }
    }

    /// What the kind means, in a few words (the report's legend).
    pub fn meaning(self) -> &'static str {
        match self {
            FindingKind::Misplaced => "not in the region the policy places it in",
            FindingKind::StrictOutsideLocality => "a strict tenant's data outside its locality",
            FindingKind::FeatureRemoved => "data of a feature the tenant no longer has",
            FindingKind::MigrationLeftover => "an old copy left by a migration",
            FindingKind::UnknownTenant => "no tenant of the directory owns it",
            FindingKind::Unclassifiable => "no rule classifies it",
            FindingKind::RecordOutOfPlace => "an internal record where it does not belong",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reported object: a line of `findings.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Why it is reported.
    pub kind: FindingKind,
    /// The region whose bucket holds it.
    pub region: String,
    /// The full key in that bucket.
    pub key: String,
    /// The tenant it belongs to, when the key names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Its category, when it could be classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Where the current policy would place it, when it places it anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_region: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The one-line reason.
    pub reason: String,
}
