//! The tenants file as a [`Directory`]: parsed whole, validated against one
//! policy, answered from memory.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use residency_policy::{Policy, SecretRef, Tenant, Tenants};

use crate::{ActsFor, Directory, DirectoryHealth, KeyGrant, Lookup};

/// The tenants file, with every key's secret resolved once at load.
///
/// Validated against the policy it was parsed with: the sidecar swaps it
/// whole with that policy on a reload, so every lookup answers at once
/// ([`Lookup::ready`]) with no lock.
#[derive(Debug, Clone)]
pub struct FileDirectory {
    tenants: Arc<Tenants>,
    keys: Arc<HashMap<String, Arc<KeyGrant>>>,
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
        })
    }

    /// The directory of `tenants` for callers that check no signatures (the
    /// embedded layer): it answers for tenants, and for no access key.
    pub fn without_keys(tenants: Arc<Tenants>) -> Self {
        Self {
            tenants,
            keys: Arc::default(),
        }
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

    fn health(&self) -> DirectoryHealth {
        DirectoryHealth {
            source: "file",
            available: true,
            staleness: None,
            detail: None,
        }
    }
}
