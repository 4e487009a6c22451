//! Tenants: who owns data, where their contract says it lives, and the
//! credentials that act for them in the sidecar.

use std::fmt;

use crate::category::FeatureSet;
use crate::policy::Policy;
use crate::region::RegionId;

/// A tenant's handle in the directory it was looked up in (today: its
/// position in the tenants file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub(crate) u32);

impl TenantId {
    /// A handle (a directory's own numbering of the tenants it answers for).
    pub fn new(n: u32) -> TenantId {
        TenantId(n)
    }

    /// Position of the tenant in its directory.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a secret comes from. Its value is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Written in the tenants file.
    Inline(String),
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (trailing newline trimmed).
    File(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretRef::Env(v) => write!(f, "Env({v:?})"),
            SecretRef::File(p) => write!(f, "File({p:?})"),
        }
    }
}

/// A credential that acts for exactly one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// The access key id clients sign with.
    pub access_key: String,
    /// Where its secret comes from.
    pub secret: SecretRef,
}

/// A credential of a multi-tenant application server: it may address the
/// virtual buckets of the listed tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    /// The access key id clients sign with.
    pub access_key: String,
    /// Where its secret comes from.
    pub secret: SecretRef,
    /// The tenants it may act for.
    pub tenants: Vec<TenantId>,
}

/// A tenant and its data-locality contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub(crate) handle: TenantId,
    pub(crate) id: String,
    pub(crate) locality: Option<RegionId>,
    pub(crate) strict: bool,
    pub(crate) features: FeatureSet,
    pub(crate) bucket: String,
    pub(crate) keys: Vec<TenantKey>,
    pub(crate) migrating_from: Option<RegionId>,
    pub(crate) migrated_from: Option<RegionId>,
}

impl Tenant {
    /// The tenant's handle in its directory (what a [`crate::Placement`]
    /// names).
    pub fn handle(&self) -> TenantId {
        self.handle
    }

    /// The tenant id (also the prefix of its objects in every regional bucket).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The selected region (`None`: no locality add-on).
    pub fn locality(&self) -> Option<RegionId> {
        self.locality
    }

    /// Whether the tenant's data must never leave its locality.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The optional features the tenant enabled.
    pub fn features(&self) -> FeatureSet {
        self.features
    }

    /// The tenant's virtual bucket in the sidecar.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The tenant's own credentials.
    pub fn keys(&self) -> &[TenantKey] {
        &self.keys
    }

    /// The region the tenant's data is being migrated away from, if a migration
    /// is in progress (reads try the locality first, then this region).
    pub fn migrating_from(&self) -> Option<RegionId> {
        self.migrating_from
    }

    /// The region the tenant's last finished migration moved it from
    /// (`migrated_from`, written by `residency migrate --finish`). It does
    /// not change placement; it records the move, so that a reload that
    /// never saw the migration's switch accepts the new locality.
    pub fn migrated_from(&self) -> Option<RegionId> {
        self.migrated_from
    }

    /// The tenant's home region: its locality, or the policy's default region.
    pub fn home_region(&self, policy: &Policy) -> RegionId {
        self.locality.unwrap_or(policy.default_region())
    }
}

/// Which principal an access key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// A tenant key: acts for this tenant only.
    Tenant(TenantId),
    /// A service key: index into [`crate::Tenants::service_keys`].
    Service(usize),
}
