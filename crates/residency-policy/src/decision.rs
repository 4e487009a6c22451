//! Placement decisions and their one-line reasons.

use std::fmt;

use crate::category::{CategoryId, ResolvedPlacement};
use crate::classifier::{Classification, ClassifiedBy};
use crate::policy::Policy;
use crate::reason::{AllowReason, DenyReason};
use crate::region::{RegionId, RegionOrder, RegionSet};
use crate::tenant::{Tenant, TenantId};
use crate::tenants::Tenants;

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
    pub fn explain<'a>(&'a self, policy: &'a Policy, tenants: &Tenants) -> Explanation<'a> {
        let tenant = self.placement().map(|p| tenants.tenant(p.tenant));
        self.explain_for(policy, tenant)
    }

    /// Like [`Decision::explain`] for the tenant the decision was made for
    /// (`None` for a denial before any tenant was found).
    pub fn explain_for<'a>(
        &'a self,
        policy: &'a Policy,
        tenant: Option<&Tenant>,
    ) -> Explanation<'a> {
        Explanation {
            decision: self,
            policy,
            locality: tenant.and_then(Tenant::locality),
        }
    }
}

impl Policy {
    /// Classifies and places a write for a tenant the edge already looked up.
    /// Pure and allocation-free.
    ///
    /// Order of checks: classification (unknown explicit category, conflict
    /// with a key rule, unclassified), feature gate, then placement.
    pub fn decide(
        &self,
        tenant: &Tenant,
        key: &str,
        category: Option<&str>,
        content_type: Option<&str>,
    ) -> Decision {
        match self.classify(key, category, content_type) {
            Ok(class) => self.place(tenant, class),
            Err(reason) => Decision::Deny(reason),
        }
    }

    /// Places a classified payload for a tenant. Allocation-free.
    pub fn place(&self, t: &Tenant, class: Classification) -> Decision {
        let policy = self;
        let tenant = t.handle();
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

    /// Where to look for an existing object (reads, deletes, heads).
    ///
    /// A key that a key rule places is looked for where that rule puts it (and,
    /// while the tenant migrates, in the old region too); any other key in
    /// every region the tenant may have data in ([`Policy::read_order`]).
    /// Under `on_conflict = "explicit"` a label may place a key-rule key
    /// elsewhere, so such a key is looked for everywhere too.
    pub fn read_regions(&self, t: &Tenant, key: &str) -> RegionOrder {
        let explicit_wins = self.on_conflict() == crate::OnConflict::Explicit;
        if let Some(class) = self.classify_key(key).filter(|_| !explicit_wins) {
            if let Decision::Allow(p) = self.place(t, class) {
                let mut order = RegionOrder::one(p.region);
                if let Some(m) = t.migrating_from() {
                    order.push(m);
                }
                // A mirrored backup or log (`backups/<original key>`) was plain
                // `backups_and_logs` before it took the placement of what it
                // holds: one stored then is in the tenant's home region.
                if matches!(class.by, ClassifiedBy::BackupOf(_)) {
                    order.push(t.home_region(self));
                }
                return order;
            }
        }
        self.read_order(t)
    }

    /// Every region where the policy places some category for `t` (by an
    /// explicit label, so every category counts): where its objects, and
    /// the records that describe them, may be.
    pub fn placeable_regions(&self, t: &Tenant) -> RegionSet {
        let mut set = RegionSet::EMPTY;
        for (category, _) in self.categories() {
            let class = Classification {
                category,
                by: ClassifiedBy::Explicit,
            };
            if let Decision::Allow(p) = self.place(t, class) {
                set = set.with(p.region);
            }
        }
        set
    }

    /// Every region where a tenant may have data, in the order reads try them:
    /// home region first, then the region it is migrating from, then the others
    /// in declaration order. A strict tenant's only region is its locality
    /// (plus the migration source while migrating).
    pub fn read_order(&self, t: &Tenant) -> RegionOrder {
        let mut order = RegionOrder::default();
        order.push(t.home_region(self));
        if let Some(m) = t.migrating_from() {
            order.push(m);
        }
        if !t.is_strict() {
            for (r, _) in self.regions() {
                order.push(r);
            }
        }
        order
    }
}

/// A decision's one-line explanation; see [`Decision::explain`].
pub struct Explanation<'a> {
    decision: &'a Decision,
    policy: &'a Policy,
    /// The tenant's selected region (the one reason that names it).
    locality: Option<RegionId>,
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
                        self.locality.map_or("-", |l| p.region(l).id())
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
