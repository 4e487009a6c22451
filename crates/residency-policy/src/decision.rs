//! Placement decisions and their one-line reasons.

use std::fmt;

use crate::category::{CategoryId, FeatureId, ResolvedPlacement};
use crate::classifier::{Classification, ClassifiedBy};
use crate::policy::Policy;
use crate::region::RegionId;
use crate::tenant::{TenantId, Tenants};

/// What a request asks to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementRequest<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Object key within the tenant's namespace.
    pub key: &'a str,
    /// Category named explicitly by the request, if any.
    pub category: Option<&'a str>,
    /// The payload's `Content-Type`, if any.
    pub content_type: Option<&'a str>,
}

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

/// Where an allowed request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The region.
    pub region: RegionId,
    /// The tenant (its bucket names the namespace within the region's bucket).
    pub tenant: TenantId,
    /// The category.
    pub category: CategoryId,
    /// How the category was found.
    pub classified_by: ClassifiedBy,
    /// Why this region.
    pub reason: AllowReason,
    /// The region is outside the tenant's selected locality.
    pub out_of_locality: bool,
}

/// A placement decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Store (or read) in this placement.
    Allow(Placement),
    /// Refuse; nothing is stored.
    Deny(DenyReason),
}

impl Decision {
    /// The placement, when allowed.
    pub fn placement(&self) -> Option<&Placement> {
        match self {
            Decision::Allow(p) => Some(p),
            Decision::Deny(_) => None,
        }
    }

    /// `"allow"` or `"deny"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow(_) => "allow",
            Decision::Deny(_) => "deny",
        }
    }

    /// The reason label (`tenant_locality`, `feature_disabled`, ...).
    pub fn reason_str(&self) -> &'static str {
        match self {
            Decision::Allow(p) => p.reason.as_str(),
            Decision::Deny(r) => r.as_str(),
        }
    }

    /// A one-line human explanation (allocates only when displayed).
    pub fn explain<'a>(&'a self, policy: &'a Policy, tenants: &'a Tenants) -> Explanation<'a> {
        Explanation {
            decision: self,
            policy,
            tenants,
        }
    }
}

/// Places a classified payload for a tenant. Allocation-free.
pub(crate) fn place(
    policy: &Policy,
    tenants: &Tenants,
    tenant: TenantId,
    class: Classification,
) -> Decision {
    let t = tenants.tenant(tenant);
    let resolved = policy.resolved(class.category);
    // "Insights is optional and disabled by default" (and NPS, spam filter):
    // a gated category is denied in every region until the feature is on.
    if let Some(feature) = resolved.gates.iter().find(|f| !t.features().contains(*f)) {
        return Decision::Deny(DenyReason::FeatureDisabled {
            category: class.category,
            feature,
        });
    }
    let allow = |region, reason, out_of_locality| {
        Decision::Allow(Placement {
            region,
            tenant,
            category: class.category,
            classified_by: class.by,
            reason,
            out_of_locality,
        })
    };
    match resolved.placement {
        ResolvedPlacement::Locality => {
            allow(t.home_region(policy), AllowReason::FollowsLocality, false)
        }
        ResolvedPlacement::Regions { set, first } => match t.locality() {
            Some(home) if set.contains(home) => allow(home, AllowReason::TenantLocality, false),
            Some(_) if t.is_strict() => Decision::Deny(DenyReason::OutOfLocality {
                category: class.category,
            }),
            Some(_) => {
                let default = policy.default_region();
                let region = if set.contains(default) {
                    default
                } else {
                    first
                };
                allow(region, AllowReason::CategoryRegion, true)
            }
            None if set.contains(policy.default_region()) => {
                allow(policy.default_region(), AllowReason::DefaultRegion, false)
            }
            None => allow(first, AllowReason::FirstAllowedRegion, false),
        },
    }
}

/// A decision's one-line explanation; see [`Decision::explain`].
pub struct Explanation<'a> {
    decision: &'a Decision,
    policy: &'a Policy,
    tenants: &'a Tenants,
}

fn classified(policy: &Policy, c: CategoryId, by: ClassifiedBy) -> String {
    let name = policy.category(c).id();
    match by {
        ClassifiedBy::Explicit => format!("category {name} (explicit)"),
        ClassifiedBy::KeyRule(i) => {
            format!(
                "category {name} (key rule {:?})",
                policy.key_rules()[i].pattern()
            )
        }
        ClassifiedBy::CategoryBackup => {
            format!("category {name} (a backup of {name} data, by its key prefix)")
        }
        ClassifiedBy::BackupOf(i) => format!(
            "category {name} (a backup or log of a key the key rule {:?} places)",
            policy.key_rules()[i].pattern()
        ),
        ClassifiedBy::ContentTypeRule(i) => format!(
            "category {name} (content-type rule {:?})",
            policy.content_type_rules()[i].pattern()
        ),
        ClassifiedBy::Default => format!("category {name} (policy default_category)"),
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.policy;
        match self.decision {
            Decision::Allow(pl) => {
                let t = self.tenants.tenant(pl.tenant);
                let region = p.region(pl.region).id();
                let what = classified(p, pl.category, pl.classified_by);
                match pl.reason {
                    AllowReason::TenantLocality => write!(
                        f,
                        "{what} may be hosted in {region}, the tenant's selected region"
                    ),
                    AllowReason::CategoryRegion => write!(
                        f,
                        "{what} cannot be hosted in the tenant's region {}; placed in {region} (out of locality, tenant not strict)",
                        t.locality().map_or("-", |l| p.region(l).id())
                    ),
                    AllowReason::DefaultRegion => write!(
                        f,
                        "{what}; tenant has no locality add-on: default region {region}"
                    ),
                    AllowReason::FirstAllowedRegion => write!(
                        f,
                        "{what}; tenant has no locality add-on and the default region is not allowed: {region}"
                    ),
                    AllowReason::FollowsLocality => write!(
                        f,
                        "{what} follows the tenant's selected region: {region}"
                    ),
                }
            }
            Decision::Deny(r) => match *r {
                DenyReason::UnknownTenant => f.write_str("unknown tenant"),
                DenyReason::UnknownCategory => f.write_str("the explicit category is not declared by the policy"),
                DenyReason::Unclassified => f.write_str(
                    "no key or content-type rule matches and the policy has no default_category",
                ),
                DenyReason::CategoryConflict { explicit, by_key } => write!(
                    f,
                    "explicit category {} contradicts the key rule's category {} (on_conflict = deny)",
                    p.category(explicit).id(),
                    p.category(by_key).id()
                ),
                DenyReason::FeatureDisabled { category, feature } => write!(
                    f,
                    "category {} needs feature {:?}, which the tenant has not enabled (optional and disabled by default)",
                    p.category(category).id(),
                    p.feature_name(feature)
                ),
                DenyReason::OutOfLocality { category } => {
                    let allowed: Vec<&str> = p
                        .allowed_regions(category)
                        .map(|s| s.iter().map(|r| p.region(r).id()).collect())
                        .unwrap_or_default();
                    write!(
                        f,
                        "category {} may only be hosted in [{}], outside the strict tenant's locality",
                        p.category(category).id(),
                        allowed.join(", ")
                    )
                }
            },
        }
    }
}
