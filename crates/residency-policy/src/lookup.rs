//! Where the edge finds a tenant: by id, by virtual bucket, by access key.
//!
//! Decisions never look a tenant up: the edge resolves the tenant once per
//! request through a [`TenantLookup`] and hands the [`Tenant`] to the pure
//! decision ([`crate::Policy::decide`]). [`crate::Tenants`] (the tenants
//! file) is the embedded implementation; a directory service implements the
//! same questions.
//!
//! ```
//! use residency_policy::{Policy, TenantLookup, Tenants};
//!
//! let policy = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [categories.chat_content]\nallowed = [\"us\"]\n",
//!     "policy.toml",
//! ).unwrap();
//! let tenants = Tenants::from_toml(
//!     "[[tenants]]\nid = \"acme\"\nbucket = \"acme-files\"\n",
//!     "tenants.toml",
//!     &policy,
//! ).unwrap();
//! let acme = tenants.by_virtual_bucket("acme-files").unwrap();
//! assert_eq!(acme.id(), "acme");
//! assert!(tenants.by_tenant_id("globex").is_none());
//! // The decision is a pure function of the policy, the tenant and the request.
//! let d = policy.decide(acme, "chat/1.json", Some("chat_content"), None);
//! assert_eq!(d.reason_str(), "default_region");
//! ```

use crate::tenant::{KeyOwner, Tenant};

/// The tenant questions the edge asks, once per request.
pub trait TenantLookup {
    /// The tenant with this id.
    fn by_tenant_id(&self, id: &str) -> Option<&Tenant>;
    /// The tenant that owns this virtual bucket.
    fn by_virtual_bucket(&self, bucket: &str) -> Option<&Tenant>;
    /// Who an access key acts for.
    fn by_access_key(&self, access_key: &str) -> Option<KeyOwner>;
    /// Whether a key's owner may act for `tenant`.
    fn key_may_act_for(&self, owner: KeyOwner, tenant: &Tenant) -> bool;
}
