//! The ruleset in force, swappable at run time without locking the hot path.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use residency_policy::{Ruleset, Tenant, TenantId};

use crate::metrics::RuleMetrics;

/// A shared handle on the ruleset in force.
///
/// Readers take a snapshot with one atomic load (no lock); a reload validates
/// the new files first and then swaps the whole ruleset in at once, so a
/// request is decided entirely under one version.
#[derive(Clone, Debug)]
pub struct RulesetHandle {
    inner: Arc<ArcSwap<Snapshot>>,
}

/// A ruleset and what the routing layer derives from it once per load.
pub(crate) struct Snapshot {
    pub(crate) rules: Arc<Ruleset>,
    /// Metric handles labelled with this ruleset's names.
    pub(crate) metrics: RuleMetrics,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rules.fmt(f)
    }
}

impl Snapshot {
    fn new(rules: Ruleset) -> Self {
        Self {
            metrics: RuleMetrics::new(rules.policy()),
            rules: Arc::new(rules),
        }
    }
}

impl RulesetHandle {
    /// A handle serving `rules`.
    pub fn new(rules: Ruleset) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(Snapshot::new(rules))),
        }
    }

    /// The ruleset in force now.
    pub fn load(&self) -> Arc<Ruleset> {
        self.inner.load().rules.clone()
    }

    /// The snapshot in force now, without touching its reference count.
    pub(crate) fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.inner.load()
    }

    /// Resolves a request's tenant once, under the ruleset in force now.
    ///
    /// `find` looks the tenant up in that ruleset (`Ok(None)`: the request
    /// names no tenant, e.g. a listing of buckets). The [`Resolved`] pins the
    /// snapshot: the routing layer decides under it, so a reload between the
    /// edge's check and the decision cannot make them differ.
    ///
    /// # Errors
    /// Whatever `find` returns.
    pub fn resolve<E>(
        &self,
        find: impl FnOnce(&Ruleset) -> Result<Option<TenantId>, E>,
    ) -> Result<Option<Resolved>, E> {
        let snapshot = self.inner.load_full();
        Ok(find(&snapshot.rules)?.map(|tenant| Resolved { snapshot, tenant }))
    }

    /// Replaces the ruleset; requests already decided keep their snapshot.
    pub fn store(&self, rules: Ruleset) {
        self.inner.store(Arc::new(Snapshot::new(rules)));
    }
}

/// A ruleset snapshot and the tenant resolved in it, once per request, by
/// the edge (the sidecar's access check, or an application calling the
/// layer); handed down in the request (an `http` extension, or
/// [`crate::StorageRequest::resolved`]) so that nothing below looks the
/// tenant up again.
#[derive(Clone)]
pub struct Resolved {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) tenant: TenantId,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("tenant", &self.tenant_record().id())
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// The ruleset the tenant was resolved under.
    pub fn rules(&self) -> &Arc<Ruleset> {
        &self.snapshot.rules
    }

    /// The tenant's handle in that ruleset.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The tenant.
    pub fn tenant_record(&self) -> &Tenant {
        self.snapshot.rules.tenants().tenant(self.tenant)
    }
}
