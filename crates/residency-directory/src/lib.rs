//! The tenant directory: who a tenant is, which virtual bucket it owns, and
//! who an access key acts for.
//!
//! Every part of Residency that needs a tenant asks a [`Directory`]: the
//! sidecar's access check and SigV4 (by access key and bucket), the
//! embedded layer (by tenant id), migrate, disclosure, audit and the CLI
//! (by id, and every tenant for reports). Two sources implement it:
//! [`FileDirectory`], the tenants file (the embedded default), and the
//! PostgreSQL directory (production: `PgDirectory` in the module `postgres`,
//! behind the cargo feature `postgres`).
//!
//! A lookup answers a [`Lookup`]: a future that is already complete when
//! the source answers from memory (the file, a cached tenant: no
//! allocation, no lock), and a boxed future when it must ask the database.
//! Tenants are validated against the [`Policy`] the caller decides under
//! (their regions and features are that policy's indices): a source that
//! caches them validates again when it is asked under another policy
//! ([`Policy::generation`]).
//!
//! Failures are typed, never a guess: [`DirectoryError::Unavailable`] when
//! the source cannot answer (the edge fails the request closed with 503),
//! [`DirectoryError::Refused`] when the tenant's record does not validate
//! against the policy (that tenant alone is refused).
//!
//! ```
//! use residency_directory::{Directory, FileDirectory};
//! use residency_policy::{Policy, Tenants};
//!
//! let policy = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [categories.chat_content]\nallowed = [\"us\"]\n",
//!     "policy.toml",
//! ).unwrap();
//! let tenants = Tenants::from_toml(
//!     "[[tenants]]\nid = \"acme\"\nbucket = \"acme-files\"\n\
//!      [[tenants.keys]]\naccess_key = \"AKACME\"\nsecret_key = \"s3cr3t\"\n",
//!     "tenants.toml",
//!     &policy,
//! ).unwrap();
//! let dir = FileDirectory::new(tenants.into(), |_| Ok("s3cr3t".to_owned())).unwrap();
//! // The file answers from memory: the lookup is complete without an executor.
//! let acme = dir.tenant_by_bucket(&policy, "acme-files").now().unwrap().unwrap().unwrap();
//! assert_eq!(acme.id(), "acme");
//! let grant = dir.access_key("AKACME").now().unwrap().unwrap().unwrap();
//! assert!(grant.may_act_for(&acme));
//! assert_eq!(grant.secret(), "s3cr3t");
//! assert!(dir.tenant(&policy, "globex").now().unwrap().unwrap().is_none());
//! ```
//!
//! # An application's own tenants table
//!
//! An application that already keeps its tenants implements [`Directory`]
//! over them and hands it to the layer with
//! `residency_tower::RulesetHandle::with_directory`. Each tenant becomes a
//! [`Tenant`] through [`residency_policy::TenantRecord::validate`] against
//! the policy the caller decides under; a lookup that must wait for a
//! database returns [`Lookup::pending`], one answered from memory
//! [`Lookup::ready`].
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//!
//! use futures::stream::{self, BoxStream, StreamExt};
//! use residency_directory::{Directory, DirectoryError, DirectoryHealth, KeyGrant, Lookup};
//! use residency_policy::{Policy, Tenant, TenantId, TenantRecord};
//!
//! /// The application's own table: tenant id -> (region, plan features).
//! #[derive(Debug)]
//! struct AppTenants(HashMap<String, (Option<String>, Vec<String>)>);
//!
//! impl AppTenants {
//!     fn build(&self, policy: &Policy, id: &str) -> Result<Option<Arc<Tenant>>, DirectoryError> {
//!         let Some((region, features)) = self.0.get(id) else { return Ok(None) };
//!         let mut record = TenantRecord::new(id);
//!         record.locality = region.clone();
//!         record.features = features.clone();
//!         record
//!             .validate(policy, TenantId::new(0))
//!             .map(|t| Some(Arc::new(t)))
//!             .map_err(|reasons| DirectoryError::Refused { tenant: id.to_owned(), reasons })
//!     }
//! }
//!
//! impl Directory for AppTenants {
//!     fn tenant<'a>(&'a self, policy: &'a Policy, id: &'a str) -> Lookup<'a, Arc<Tenant>> {
//!         Lookup::ready(self.build(policy, id))
//!     }
//!     fn tenant_by_bucket<'a>(&'a self, policy: &'a Policy, bucket: &'a str) -> Lookup<'a, Arc<Tenant>> {
//!         Lookup::ready(self.build(policy, bucket)) // the bucket is the tenant id here
//!     }
//!     fn access_key<'a>(&'a self, _: &'a str) -> Lookup<'a, Arc<KeyGrant>> {
//!         Lookup::ready(Ok(None)) // embedded: the application checks its own clients
//!     }
//!     fn tenants<'a>(&'a self, policy: &'a Policy) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>> {
//!         stream::iter(self.0.keys())
//!             .filter_map(move |id| async move { self.build(policy, id).transpose() })
//!             .boxed()
//!     }
//!     fn health(&self) -> DirectoryHealth {
//!         DirectoryHealth { source: "app", available: true, staleness: None, detail: None }
//!     }
//! }
//!
//! let policy = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [regions.eu]\njurisdiction = \"EU\"\n[categories.chat_content]\nallowed = [\"eu\", \"us\"]\n",
//!     "policy.toml",
//! ).unwrap();
//! let app = AppTenants(HashMap::from([
//!     ("acme".to_owned(), (Some("eu".to_owned()), vec![])),
//!     ("bad".to_owned(), (Some("mars".to_owned()), vec![])),
//! ]));
//! let acme = app.tenant(&policy, "acme").now().unwrap().unwrap().unwrap();
//! assert_eq!(policy.region(acme.locality().unwrap()).id(), "eu");
//! // A record the policy refuses refuses that tenant, with the reason.
//! let bad = app.tenant(&policy, "bad").now().unwrap().unwrap_err();
//! assert!(bad.to_string().contains("mars"));
//! ```

mod buckets;
mod file;
mod lookup;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use residency_policy::{Policy, Tenant};

pub use buckets::{BucketError, BucketRecord, FileBuckets};
pub use file::FileDirectory;
pub use lookup::Lookup;
#[cfg(feature = "postgres")]
pub use postgres::{DirectoryKey, PgDirectory, PgError, PgOptions};

/// Why a directory could not answer for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The source cannot answer now (database unreachable, a cached entry
    /// older than `max_staleness`): the request fails closed (503), it is
    /// never decided by a guess.
    #[error("the tenant directory is unavailable: {0}")]
    Unavailable(String),
    /// The tenant's record does not validate against the policy in force
    /// (a row written past the CLI): that tenant is refused, every other
    /// tenant keeps serving.
    #[error("tenant {tenant:?} is refused: its directory record is invalid: {}", reasons.join("; "))]
    Refused {
        /// The tenant id.
        tenant: String,
        /// Every problem found, one sentence each.
        reasons: Vec<String>,
    },
}

/// What a lookup answers: the thing, `None` when the directory knows no such
/// tenant (or key), or why it cannot say.
pub type Answer<T> = Result<Option<T>, DirectoryError>;

/// Who an access key acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActsFor {
    /// A tenant key: this tenant only (by id).
    Tenant(String),
    /// A service key of a multi-tenant application: these tenants (by id).
    Tenants(Vec<String>),
}

/// An access key, its secret (SigV4 needs the secret itself) and whom it
/// acts for. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyGrant {
    access_key: String,
    secret: String,
    acts_for: ActsFor,
}

impl fmt::Debug for KeyGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyGrant")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("acts_for", &self.acts_for)
            .finish()
    }
}

impl KeyGrant {
    /// A grant of `access_key` with `secret`.
    pub fn new(
        access_key: impl Into<String>,
        secret: impl Into<String>,
        acts_for: ActsFor,
    ) -> Self {
        Self {
            access_key: access_key.into(),
            secret: secret.into(),
            acts_for,
        }
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret access key.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whom the key acts for.
    pub fn acts_for(&self) -> &ActsFor {
        &self.acts_for
    }

    /// Whether the key may act for `tenant`.
    pub fn may_act_for(&self, tenant: &Tenant) -> bool {
        match &self.acts_for {
            ActsFor::Tenant(t) => t == tenant.id(),
            ActsFor::Tenants(ts) => ts.iter().any(|t| t == tenant.id()),
        }
    }

    /// Who the key is, for an error message: `tenant acme` or `this service key`.
    pub fn who(&self) -> String {
        match &self.acts_for {
            ActsFor::Tenant(t) => format!("tenant {t}"),
            ActsFor::Tenants(_) => "this service key".to_owned(),
        }
    }
}

/// The directory's state, for `/readyz` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryHealth {
    /// `file` or `postgresql`.
    pub source: &'static str,
    /// Whether the source answers now.
    pub available: bool,
    /// How long since the source last confirmed what is cached (`None`: it
    /// always answers from its own copy, as the file does).
    pub staleness: Option<Duration>,
    /// Why it is unavailable, when it is.
    pub detail: Option<String>,
}

/// The answer of a directory that keeps no bucket registry.
fn no_registry<'a>() -> BoxFuture<'a, Result<(), BucketError>> {
    Box::pin(std::future::ready(Err(BucketError::Unsupported(
        "this tenant directory keeps no bucket registry".to_owned(),
    ))))
}

/// Where tenants are looked up. See the crate documentation.
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// The tenant with this id, validated against `policy`.
    fn tenant<'a>(&'a self, policy: &'a Policy, id: &'a str) -> Lookup<'a, Arc<Tenant>>;

    /// The tenant that owns this virtual bucket, validated against `policy`.
    fn tenant_by_bucket<'a>(
        &'a self,
        policy: &'a Policy,
        bucket: &'a str,
    ) -> Lookup<'a, Arc<Tenant>>;

    /// Who an access key acts for, with its secret.
    fn access_key<'a>(&'a self, access_key: &'a str) -> Lookup<'a, Arc<KeyGrant>>;

    /// Every tenant, for reports (in a stable order: by id for the database,
    /// file order for the file). A record that does not validate comes as
    /// its [`DirectoryError::Refused`] and the stream goes on.
    fn tenants<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>>;

    /// The tenants with a migration open (`migrating_from` set), for the
    /// sidecar's migration gauges. By default every tenant, filtered; a
    /// database answers it with one query.
    fn migrating<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>> {
        use futures::StreamExt;
        self.tenants(policy)
            .filter(|t| {
                std::future::ready(t.as_ref().map_or(true, |t| t.migrating_from().is_some()))
            })
            .boxed()
    }

    /// The directory's state now.
    fn health(&self) -> DirectoryHealth;

    /// A bucket a tenant created (S3 CreateBucket), by name; a tenant's
    /// configured bucket is not one ([`Directory::tenant_by_bucket`]). By
    /// default none: a directory without a bucket registry.
    fn bucket<'a>(&'a self, name: &'a str) -> Lookup<'a, Arc<BucketRecord>> {
        let _ = name;
        Lookup::ready(Ok(None))
    }

    /// The buckets `tenant` created, by name.
    fn buckets_of<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BucketRecord>, DirectoryError>> {
        let _ = tenant;
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Records a bucket a tenant creates; its name must not be taken by a
    /// created or a configured bucket.
    fn create_bucket(&self, record: BucketRecord) -> BoxFuture<'_, Result<(), BucketError>> {
        let _ = record;
        no_registry()
    }

    /// Sets (`None`: removes) the CORS rules of the created bucket `name`
    /// of `tenant`, as the caller serialized them.
    fn set_bucket_cors<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
        cors: Option<String>,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        let _ = (name, tenant, cors);
        no_registry()
    }

    /// Removes the created bucket `name` of `tenant` from the registry (the
    /// caller checked that it is empty in every region).
    fn delete_bucket<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        let _ = (name, tenant);
        no_registry()
    }
}
