//! A policy snapshot and the tenants file validated against it, bundled for
//! the embedded default and the CLI.

use std::sync::Arc;

use crate::classifier::Classification;
use crate::decision::{Decision, PlacementRequest};
use crate::error::ConfigErrors;
use crate::lookup::TenantLookup;
use crate::policy::Policy;
use crate::reason::DenyReason;
use crate::region::RegionOrder;
use crate::tenant::TenantId;
use crate::tenants::Tenants;

/// A policy and the tenants file validated against it.
///
/// Immutable; a reload builds a new one and swaps it in whole. Decisions are
/// [`Policy`]'s ([`Policy::decide`] for a [`crate::Tenant`] the edge looked up
/// through a [`TenantLookup`]); the methods here look the tenant up in the
/// file first.
#[derive(Debug, Clone)]
pub struct Ruleset {
    policy: Policy,
    tenants: Arc<Tenants>,
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
        Ok(Ruleset::new(policy, tenants))
    }

    /// Pairs a policy with tenants validated against it.
    pub fn new(policy: Policy, tenants: Tenants) -> Ruleset {
        Ruleset {
            policy,
            tenants: Arc::new(tenants),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// The tenants, shared (what the file directory answers from).
    pub fn tenants_shared(&self) -> &Arc<Tenants> {
        &self.tenants
    }

    /// Classifies and places a write. Allocation-free.
    ///
    /// Order of checks: unknown tenant, then [`Policy::decide`].
    pub fn decide(&self, req: &PlacementRequest<'_>) -> Decision {
        let Some(tenant) = self.tenants.by_tenant_id(req.tenant) else {
            return Decision::Deny(DenyReason::UnknownTenant);
        };
        self.policy
            .decide(tenant, req.key, req.category, req.content_type)
    }

    /// Like [`Ruleset::decide`] for a tenant already looked up.
    pub fn decide_for(
        &self,
        tenant: TenantId,
        key: &str,
        category: Option<&str>,
        content_type: Option<&str>,
    ) -> Decision {
        self.policy
            .decide(self.tenants.tenant(tenant), key, category, content_type)
    }

    /// Places an already classified payload.
    pub fn place(&self, tenant: TenantId, class: Classification) -> Decision {
        self.policy.place(self.tenants.tenant(tenant), class)
    }

    /// Where to look for an existing object; see [`Policy::read_regions`].
    pub fn read_regions(&self, tenant: TenantId, key: &str) -> RegionOrder {
        self.policy.read_regions(self.tenants.tenant(tenant), key)
    }
}
