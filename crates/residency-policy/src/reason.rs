//! Why a decision went the way it did: the stable labels of logs, metrics
//! and JSON.

use crate::category::{CategoryId, FeatureId};

/// Why an allowed write went to its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowReason {
    /// The tenant's selected region is allowed for the category.
    TenantLocality,
    /// The category cannot be hosted in the tenant's region; it went to one it
    /// may be hosted in (recorded as out of locality).
    CategoryRegion,
    /// No locality add-on: the policy's default region.
    DefaultRegion,
    /// No locality add-on and the default region is not allowed: the first
    /// allowed region.
    FirstAllowedRegion,
    /// The category follows the tenant's locality (backups and logs).
    FollowsLocality,
}

impl AllowReason {
    /// Stable label for JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowReason::TenantLocality => "tenant_locality",
            AllowReason::CategoryRegion => "category_region",
            AllowReason::DefaultRegion => "default_region",
            AllowReason::FirstAllowedRegion => "first_allowed_region",
            AllowReason::FollowsLocality => "follows_locality",
        }
    }
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The tenant is not in the tenants file.
    UnknownTenant,
    /// The explicit category is not declared by the policy.
    UnknownCategory,
    /// No rule classifies the payload and there is no default category.
    Unclassified,
    /// The explicit category contradicts the key rule (`on_conflict = "deny"`).
    CategoryConflict {
        /// The category the request named.
        explicit: CategoryId,
        /// The category the key rule gives.
        by_key: CategoryId,
    },
    /// The category needs an optional feature the tenant has not enabled.
    FeatureDisabled {
        /// The category.
        category: CategoryId,
        /// The missing feature.
        feature: FeatureId,
    },
    /// A strict tenant, and the category may not be hosted in its locality.
    OutOfLocality {
        /// The category.
        category: CategoryId,
    },
}

impl DenyReason {
    /// Stable label for JSON, logs and metrics (`unknown_tenant`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::UnknownTenant => "unknown_tenant",
            DenyReason::UnknownCategory => "unknown_category",
            DenyReason::Unclassified => "unclassified",
            DenyReason::CategoryConflict { .. } => "category_conflict",
            DenyReason::FeatureDisabled { .. } => "feature_disabled",
            DenyReason::OutOfLocality { .. } => "out_of_locality",
        }
    }
}
