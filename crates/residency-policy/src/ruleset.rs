//! A policy and its tenants, validated together: what decisions are made from.

use crate::classifier::{Classification, ClassifiedBy};
use crate::decision::{place, Decision, DenyReason, PlacementRequest};
use crate::error::ConfigErrors;
use crate::policy::Policy;
use crate::tenant::{RegionOrder, TenantId, Tenants};

/// A policy and the tenants validated against it.
///
/// Immutable; a reload builds a new one and swaps it in whole.
#[derive(Debug, Clone)]
pub struct Ruleset {
    policy: Policy,
    tenants: Tenants,
}

impl Ruleset {
    /// Parses both files.
    ///
    /// # Errors
    /// Every problem in the policy file; if the policy is valid, every problem
    /// in the tenants file.
    pub fn from_toml(
        policy_source: &str,
        policy_file: &str,
        tenants_source: &str,
        tenants_file: &str,
    ) -> Result<Ruleset, ConfigErrors> {
        let policy = Policy::from_toml(policy_source, policy_file)?;
        let tenants = Tenants::from_toml(tenants_source, tenants_file, &policy)?;
        Ok(Ruleset { policy, tenants })
    }

    /// Pairs a policy with tenants validated against it.
    pub fn new(policy: Policy, tenants: Tenants) -> Ruleset {
        Ruleset { policy, tenants }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// Classifies and places a write. Allocation-free.
    ///
    /// Order of checks: unknown tenant, classification (unknown explicit
    /// category, conflict with a key rule, unclassified), feature gate, then
    /// placement.
    pub fn decide(&self, req: &PlacementRequest<'_>) -> Decision {
        let Some(tenant) = self.tenants.get(req.tenant) else {
            return Decision::Deny(DenyReason::UnknownTenant);
        };
        self.decide_for(tenant, req.key, req.category, req.content_type)
    }

    /// Like [`Ruleset::decide`] for a tenant already looked up.
    pub fn decide_for(
        &self,
        tenant: TenantId,
        key: &str,
        category: Option<&str>,
        content_type: Option<&str>,
    ) -> Decision {
        match self.policy.classify(key, category, content_type) {
            Ok(class) => place(&self.policy, &self.tenants, tenant, class),
            Err(reason) => Decision::Deny(reason),
        }
    }

    /// Places an already classified payload.
    pub fn place(&self, tenant: TenantId, class: Classification) -> Decision {
        place(&self.policy, &self.tenants, tenant, class)
    }

    /// Where to look for an existing object (reads, deletes, heads).
    ///
    /// A key that a key rule places is looked for where that rule puts it (and,
    /// while the tenant migrates, in the old region too); any other key in
    /// every region the tenant may have data in ([`Tenants::read_order`]).
    /// Under `on_conflict = "explicit"` a label may place a key-rule key
    /// elsewhere, so such a key is looked for everywhere too.
    pub fn read_regions(&self, tenant: TenantId, key: &str) -> RegionOrder {
        let explicit_wins = self.policy.on_conflict() == crate::OnConflict::Explicit;
        if let Some(class) = self.policy.classify_key(key).filter(|_| !explicit_wins) {
            if let Decision::Allow(p) = self.place(tenant, class) {
                let mut order = RegionOrder::one(p.region);
                let t = self.tenants.tenant(tenant);
                if let Some(m) = t.migrating_from() {
                    order.push(m);
                }
                // A mirrored backup or log (`backups/<original key>`) was plain
                // `backups_and_logs` before it took the placement of what it
                // holds: one stored then is in the tenant's home region.
                if matches!(class.by, ClassifiedBy::BackupOf(_)) {
                    order.push(t.home_region(&self.policy));
                }
                return order;
            }
        }
        self.tenants.read_order(&self.policy, tenant)
    }
}
