//! The tenants file as a [`Directory`]: parsed whole, validated against one
//! policy, answered from memory.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use residency_policy::{Policy, SecretRef, Tenant, Tenants};

use futures::future::BoxFuture;

use crate::{
    ActsFor, BucketError, BucketRecord, Directory, DirectoryError, DirectoryHealth, FileBuckets,
    KeyGrant, Lookup,
};

/// The tenants file, with every key's secret resolved once at load.
///
/// Validated against the policy it was parsed with: the sidecar swaps it
/// whole with that policy on a reload, so every lookup answers at once
/// ([`Lookup::ready`]) with no lock.
#[derive(Debug, Clone)]
pub struct FileDirectory {
    tenants: Arc<Tenants>,
    keys: Arc<HashMap<String, Arc<KeyGrant>>>,
    /// The buckets tenants created, when the sidecar keeps a registry.
    buckets: Option<Arc<FileBuckets>>,
}

impl FileDirectory {
    /// The directory of `tenants`; `resolve` reads each key's secret (from
    /// the file, the environment or a file it names).
    ///
    /// # Errors
    /// Every key whose secret cannot be read or is empty, one sentence each
    /// naming whose key it is.
    pub fn new(
        tenants: Arc<Tenants>,
        mut resolve: impl FnMut(&SecretRef) -> Result<String, String>,
    ) -> Result<Self, Vec<String>> {
        let mut keys = HashMap::new();
        let mut errors = Vec::new();
        let mut grant = |whose: String, access_key: &str, secret: &SecretRef, acts_for: ActsFor| {
            let problem = match resolve(secret) {
                Ok(v) if !v.is_empty() => {
                    keys.insert(
                        access_key.to_owned(),
                        Arc::new(KeyGrant::new(access_key, v, acts_for)),
                    );
                    return;
                }
                Ok(_) => "the secret is empty".to_owned(),
                Err(m) => m,
            };
            errors.push(format!("{whose} {access_key}: {problem}"));
        };
        for (_, t) in tenants.iter() {
            for k in t.keys() {
                grant(
                    format!("tenant {}: key", t.id()),
                    &k.access_key,
                    &k.secret,
                    ActsFor::Tenant(t.id().to_owned()),
                );
            }
        }
        for s in tenants.service_keys() {
            let ids = s
                .tenants
                .iter()
                .map(|&t| tenants.tenant(t).id().to_owned())
                .collect();
            grant(
                "service key".to_owned(),
                &s.access_key,
                &s.secret,
                ActsFor::Tenants(ids),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            tenants,
            keys: Arc::new(keys),
            buckets: None,
        })
    }

    /// The directory of `tenants` for callers that check no signatures (the
    /// embedded layer): it answers for tenants, and for no access key.
    pub fn without_keys(tenants: Arc<Tenants>) -> Self {
        Self {
            tenants,
            keys: Arc::default(),
            buckets: None,
        }
    }

    /// The same directory with the buckets tenants created, kept in
    /// `registry`.
    #[must_use]
    pub fn with_buckets(mut self, registry: Arc<FileBuckets>) -> Self {
        self.buckets = Some(registry);
        self
    }

    fn registry(&self) -> Result<&FileBuckets, BucketError> {
        self.buckets.as_deref().ok_or_else(|| {
            BucketError::Unsupported(
                "this tenants file has no bucket registry beside it".to_owned(),
            )
        })
    }

    /// The parsed file.
    pub fn file(&self) -> &Tenants {
        &self.tenants
    }

    /// Who an access key acts for, answered from memory.
    pub fn grant(&self, access_key: &str) -> Option<&Arc<KeyGrant>> {
        self.keys.get(access_key)
    }
}

impl Directory for FileDirectory {
    fn tenant<'a>(&'a self, _: &'a Policy, id: &'a str) -> Lookup<'a, Arc<Tenant>> {
        Lookup::ready(Ok(self
            .tenants
            .get(id)
            .map(|t| self.tenants.shared(t).clone())))
    }

    fn tenant_by_bucket<'a>(&'a self, _: &'a Policy, bucket: &'a str) -> Lookup<'a, Arc<Tenant>> {
        Lookup::ready(Ok(self
            .tenants
            .by_bucket(bucket)
            .map(|t| self.tenants.shared(t).clone())))
    }

    fn access_key<'a>(&'a self, access_key: &'a str) -> Lookup<'a, Arc<KeyGrant>> {
        Lookup::ready(Ok(self.keys.get(access_key).cloned()))
    }

    fn tenants<'a>(
        &'a self,
        _: &'a Policy,
    ) -> BoxStream<'a, Result<Arc<Tenant>, crate::DirectoryError>> {
        stream::iter(
            self.tenants
                .iter()
                .map(move |(t, _)| Ok(self.tenants.shared(t).clone())),
        )
        .boxed()
    }

    fn bucket<'a>(&'a self, name: &'a str) -> Lookup<'a, Arc<BucketRecord>> {
        Lookup::ready(Ok(self.buckets.as_ref().and_then(|b| b.get(name))))
    }

    fn buckets_of<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BucketRecord>, DirectoryError>> {
        let of = self
            .buckets
            .as_ref()
            .map(|b| b.of(tenant))
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(of)))
    }

    fn create_bucket(&self, record: BucketRecord) -> BoxFuture<'_, Result<(), BucketError>> {
        let configured = self
            .tenants
            .by_bucket(&record.name)
            .map(|t| self.tenants.tenant(t).id());
        let r = self
            .registry()
            .and_then(|reg| reg.create(record, configured));
        Box::pin(std::future::ready(r))
    }

    fn set_bucket_cors<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
        cors: Option<String>,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        let r = self
            .registry()
            .and_then(|reg| reg.set_cors(name, tenant, cors));
        Box::pin(std::future::ready(r))
    }

    fn delete_bucket<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        let r = self.registry().and_then(|reg| reg.delete(name, tenant));
        Box::pin(std::future::ready(r))
    }

    fn health(&self) -> DirectoryHealth {
        DirectoryHealth {
            source: "file",
            available: true,
            staleness: None,
            detail: None,
        }
    }
}
