//! The ruleset in force, swappable at run time without locking the hot path.

use std::sync::Arc;

use arc_swap::ArcSwap;
use residency_policy::Ruleset;

/// A shared handle on the ruleset in force.
///
/// Readers take a snapshot with one atomic load (no lock); a reload validates
/// the new files first and then swaps the whole ruleset in at once, so a
/// request is decided entirely under one version.
#[derive(Clone, Debug)]
pub struct RulesetHandle {
    inner: Arc<ArcSwap<Ruleset>>,
}

impl RulesetHandle {
    /// A handle serving `rules`.
    pub fn new(rules: Ruleset) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(rules)),
        }
    }

    /// The ruleset in force now.
    pub fn load(&self) -> Arc<Ruleset> {
        self.inner.load_full()
    }

    /// Replaces the ruleset; requests already decided keep their snapshot.
    pub fn store(&self, rules: Ruleset) {
        self.inner.store(Arc::new(rules));
    }
}
