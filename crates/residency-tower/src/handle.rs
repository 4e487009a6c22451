//! The ruleset in force, swappable at run time without locking the hot path.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use residency_directory::{Directory, FileDirectory};
use residency_policy::{Ruleset, Tenant};

use crate::metrics::RuleMetrics;

/// A shared handle on the ruleset in force and the tenant directory it
/// looks tenants up in.
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
    /// Where tenants are looked up under these rules.
    pub(crate) directory: Arc<dyn Directory>,
    /// The directory was made from `rules`' tenants file (a reload makes it
    /// again from the new file); else it is a source of its own, kept.
    directory_from_file: bool,
    /// Metric handles labelled with this ruleset's names.
    pub(crate) metrics: RuleMetrics,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rules.fmt(f)
    }
}

impl Snapshot {
    fn new(rules: Ruleset, directory: Option<Arc<dyn Directory>>) -> Self {
        let directory_from_file = directory.is_none();
        let directory = directory.unwrap_or_else(|| {
            Arc::new(FileDirectory::without_keys(rules.tenants_shared().clone()))
        });
        Self {
            metrics: RuleMetrics::new(rules.policy()),
            rules: Arc::new(rules),
            directory,
            directory_from_file,
        }
    }
}

impl RulesetHandle {
    /// A handle serving `rules`, its tenants looked up in its tenants file.
    pub fn new(rules: Ruleset) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(Snapshot::new(rules, None))),
        }
    }

    /// A handle serving `rules` (their policy; their tenants file is not
    /// used), its tenants looked up in `directory`.
    pub fn with_directory(rules: Ruleset, directory: Arc<dyn Directory>) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(Snapshot::new(rules, Some(directory)))),
        }
    }

    /// The ruleset in force now.
    pub fn load(&self) -> Arc<Ruleset> {
        self.inner.load().rules.clone()
    }

    /// The tenant directory in force now.
    pub fn directory(&self) -> Arc<dyn Directory> {
        self.inner.load().directory.clone()
    }

    /// The snapshot in force now, without touching its reference count.
    pub(crate) fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.inner.load()
    }

    /// The ruleset and directory in force now, pinned: look the request's
    /// tenant up in [`Current::directory`] under [`Current::rules`]' policy,
    /// then hand it down with [`Current::resolved`], so that the routing
    /// layer decides under the same snapshot (a reload between the edge's
    /// check and the decision cannot make them differ).
    pub fn current(&self) -> Current {
        Current {
            snapshot: self.inner.load_full(),
        }
    }

    /// Replaces the ruleset; requests already decided keep their snapshot.
    /// A handle made with [`RulesetHandle::new`] looks tenants up in the new
    /// tenants file; one made with a directory keeps its directory.
    pub fn store(&self, rules: Ruleset) {
        let now = self.inner.load();
        let directory = (!now.directory_from_file).then(|| now.directory.clone());
        self.inner.store(Arc::new(Snapshot::new(rules, directory)));
    }

    /// Replaces the ruleset and the directory at once.
    pub fn store_with(&self, rules: Ruleset, directory: Arc<dyn Directory>) {
        self.inner
            .store(Arc::new(Snapshot::new(rules, Some(directory))));
    }
}

/// The ruleset and directory in force when a request arrived; see
/// [`RulesetHandle::current`].
#[derive(Clone, Debug)]
pub struct Current {
    snapshot: Arc<Snapshot>,
}

impl Current {
    /// The ruleset.
    pub fn rules(&self) -> &Arc<Ruleset> {
        &self.snapshot.rules
    }

    /// The directory to look tenants up in (under `rules().policy()`).
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.snapshot.directory
    }

    /// The tenant the edge looked up, pinned to this snapshot.
    pub fn resolved(&self, tenant: Arc<Tenant>) -> Resolved {
        Resolved {
            snapshot: self.snapshot.clone(),
            tenant,
            bucket: None,
            tenant_in_keys: false,
        }
    }
}

/// A ruleset snapshot and the tenant resolved under it, once per request, by
/// the edge (the sidecar's access check, or an application calling the
/// layer); handed down in the request (an `http` extension, or
/// [`crate::StorageRequest::resolved`]) so that nothing below looks the
/// tenant up again.
#[derive(Clone)]
pub struct Resolved {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) tenant: Arc<Tenant>,
    /// A bucket the tenant created (its objects live under
    /// `<tenant>/~bucket/<name>/`); `None`: the tenant's configured bucket.
    pub(crate) bucket: Option<Arc<residency_directory::BucketRecord>>,
    /// The client's keys begin with `<tenant>/` (a bucket shared by
    /// tenants, the tenant named by the key): the edge strips it before the
    /// request is routed and puts it back in what it answers.
    pub(crate) tenant_in_keys: bool,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("tenant", &self.tenant.id())
            .field("bucket", &self.bucket.as_ref().map(|b| &b.name))
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// The ruleset the tenant was resolved under.
    pub fn rules(&self) -> &Arc<Ruleset> {
        &self.snapshot.rules
    }

    /// The tenant.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The tenant (as a plain reference).
    pub fn tenant_record(&self) -> &Tenant {
        &self.tenant
    }

    /// The same tenant, addressed through a bucket it created: keys of
    /// requests carrying it are in that bucket's namespace.
    #[must_use]
    pub fn in_bucket(mut self, bucket: Arc<residency_directory::BucketRecord>) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// The same, for a shared bucket whose client keys begin with
    /// `<tenant>/`.
    #[must_use]
    pub fn with_tenant_in_keys(mut self) -> Self {
        self.tenant_in_keys = true;
        self
    }

    /// Whether the client's keys begin with `<tenant>/` (see
    /// [`Resolved::with_tenant_in_keys`]).
    pub fn tenant_in_keys(&self) -> bool {
        self.tenant_in_keys
    }

    /// The created bucket addressed, if not the tenant's configured one.
    pub fn created_bucket(&self) -> Option<&Arc<residency_directory::BucketRecord>> {
        self.bucket.as_ref()
    }

    /// The name of the virtual bucket addressed (created or configured).
    pub fn bucket_name(&self) -> &str {
        match &self.bucket {
            Some(b) => &b.name,
            None => self.tenant.bucket(),
        }
    }
}
