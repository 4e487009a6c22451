//! The ruleset in force, swappable at run time without locking the hot path.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use residency_policy::Ruleset;

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

    /// Replaces the ruleset; requests already decided keep their snapshot.
    pub fn store(&self, rules: Ruleset) {
        self.inner.store(Arc::new(Snapshot::new(rules)));
    }
}
