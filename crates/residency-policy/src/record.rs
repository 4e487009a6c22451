//! A tenant as a directory stores it (names, not indices), and its
//! validation against a policy.
//!
//! The tenants file and the PostgreSQL directory both hold tenants by name:
//! a locality is `"eu"`, a feature `"data_center_locations"`. A [`Tenant`]
//! names them by the policy's indices, so a record becomes a `Tenant` only
//! through [`TenantRecord::validate`] against the policy in force; a record
//! that names what the policy does not declare is refused, with every reason.
//!
//! ```
//! use residency_policy::{Policy, TenantId, TenantRecord};
//!
//! let policy = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [regions.eu]\njurisdiction = \"EU\"\n\
//!      [categories.chat_content]\nallowed = [\"us\", \"eu\"]\n",
//!     "policy.toml",
//! ).unwrap();
//! let mut acme = TenantRecord::new("acme");
//! acme.locality = Some("eu".into());
//! acme.strict = true;
//! let tenant = acme.validate(&policy, TenantId::new(0)).unwrap();
//! assert_eq!(policy.region(tenant.locality().unwrap()).id(), "eu");
//! assert_eq!(TenantRecord::of(&tenant, &policy), acme.clone().with_default_bucket());
//!
//! acme.locality = Some("mars".into());
//! let refused = acme.validate(&policy, TenantId::new(0)).unwrap_err();
//! assert!(refused[0].contains("\"mars\", which is not a region of the policy"));
//! ```

use crate::category::FeatureSet;
use crate::policy::Policy;
use crate::region::RegionId;
use crate::tenant::{Tenant, TenantId};
use crate::tenants::valid_bucket;

/// A tenant's directory record: what the tenants file's `[[tenants]]` entry
/// and the PostgreSQL `tenants` row hold (credentials apart).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantRecord {
    /// The tenant id (1-63 of `a-z 0-9 - _ .`, starting with a letter or digit).
    pub id: String,
    /// The selected region's id, if the tenant has the locality add-on.
    pub locality: Option<String>,
    /// Never outside the locality.
    pub strict: bool,
    /// Optional features the tenant enabled, by id.
    pub features: Vec<String>,
    /// The virtual bucket (`None`: the tenant id).
    pub bucket: Option<String>,
    /// The region a migration in progress moves the tenant's data away from.
    pub migrating_from: Option<String>,
    /// The region the last finished migration moved it from.
    pub migrated_from: Option<String>,
}

/// Whether `id` is a valid tenant id.
pub(crate) fn valid_tenant_id(id: &str) -> bool {
    let mut b = id.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
        && id.len() <= 63
}

impl TenantRecord {
    /// A record with only an id: no locality, no features, the id as bucket.
    pub fn new(id: impl Into<String>) -> TenantRecord {
        TenantRecord {
            id: id.into(),
            ..TenantRecord::default()
        }
    }

    /// The same record with its bucket spelled out (`bucket = id` when unset).
    pub fn with_default_bucket(mut self) -> TenantRecord {
        if self.bucket.is_none() {
            self.bucket = Some(self.id.clone());
        }
        self
    }

    /// The virtual bucket: `bucket`, or the tenant id.
    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or(&self.id)
    }

    /// The record of a validated tenant (names resolved through `policy`,
    /// the bucket spelled out).
    pub fn of(tenant: &Tenant, policy: &Policy) -> TenantRecord {
        let region = |r: Option<RegionId>| r.map(|r| policy.region(r).id().to_owned());
        TenantRecord {
            id: tenant.id().to_owned(),
            locality: region(tenant.locality()),
            strict: tenant.is_strict(),
            features: tenant
                .features()
                .iter()
                .map(|f| policy.feature_name(f).to_owned())
                .collect(),
            bucket: Some(tenant.bucket().to_owned()),
            migrating_from: region(tenant.migrating_from()),
            migrated_from: region(tenant.migrated_from()),
        }
    }

    /// Checks the record against `policy` and builds the [`Tenant`] (with no
    /// credentials: a directory answers for access keys separately) under
    /// `handle`.
    ///
    /// # Errors
    /// Every problem, one sentence each naming the tenant: an invalid id or
    /// bucket, a locality or migration region the policy does not declare, a
    /// feature it does not declare, `strict` without a locality.
    pub fn validate(&self, policy: &Policy, handle: TenantId) -> Result<Tenant, Vec<String>> {
        let id = &self.id;
        let mut errors = Vec::new();
        if !valid_tenant_id(id) {
            errors.push(format!("tenant id {id:?} must be 1-63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"));
        }
        let mut region = |what: &str, name: &Option<String>, hint: &str| {
            let name = name.as_ref()?;
            let r = policy.region_by_id(name);
            if r.is_none() {
                errors.push(format!(
                    "tenant {id:?} {what} {name:?}, which is not a region of the policy{hint}"
                ));
            }
            r
        };
        let locality = region("has locality", &self.locality, "");
        let migrating_from = region("is migrating from", &self.migrating_from, "");
        let migrated_from = region(
            "was migrated from",
            &self.migrated_from,
            " (remove `migrated_from`)",
        );
        if self.strict && self.locality.is_none() {
            errors.push(format!("tenant {id:?} is strict but has no locality: strict means never outside the locality, so set `locality`"));
        }
        let mut features = FeatureSet::default();
        for f in &self.features {
            match policy.feature_by_id(f) {
                Some(fid) => features = features.with(fid),
                None => errors.push(format!(
                    "tenant {id:?} enables feature {f:?}, which the policy does not declare"
                )),
            }
        }
        let bucket = self.bucket().to_owned();
        if !valid_bucket(&bucket) {
            errors.push(format!("tenant {id:?} has bucket {bucket:?}, which is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-'); set `bucket`"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Tenant {
            handle,
            id: id.clone(),
            locality,
            strict: self.strict,
            features,
            bucket,
            keys: Vec::new(),
            migrating_from,
            migrated_from,
        })
    }
}
