//! The configured regions, found by the [`RegionId`] a route names.
//!
//! Regions are configured by name; a route names them by the id of its
//! ruleset snapshot. The table from one to the other is built once per
//! snapshot (a reload may renumber regions) and reused by every request
//! decided under it.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use residency_policy::{RegionId, Ruleset};
use residency_store::Backend;

use super::region::Region;
use crate::error::RoutingError;

/// The regions, by slot, and the snapshot's table of slots.
pub(crate) struct Router {
    regions: Vec<Region>,
    index: ArcSwapOption<RegionIndex>,
}

/// Each of a ruleset's regions' slot in [`Router::regions`].
struct RegionIndex {
    /// Held, so that its address is not reused by another snapshot while
    /// this table is cached.
    rules: Arc<Ruleset>,
    slots: Vec<Option<usize>>,
}

impl Router {
    pub(crate) fn new(regions: Vec<Region>) -> Self {
        Self {
            regions,
            index: ArcSwapOption::empty(),
        }
    }

    /// The region `r` of `rules`.
    ///
    /// # Errors
    /// [`RoutingError::NoBackend`] when that region has no backend.
    pub(crate) fn get(&self, rules: &Arc<Ruleset>, r: RegionId) -> Result<&Region, RoutingError> {
        let cached = self.index.load();
        let slot = match &*cached {
            Some(ix) if Arc::ptr_eq(&ix.rules, rules) => ix.slots[r.index()],
            _ => {
                let ix = self.index_for(rules);
                let slot = ix.slots[r.index()];
                self.index.store(Some(Arc::new(ix)));
                slot
            }
        };
        slot.map(|s| &self.regions[s])
            .ok_or_else(|| RoutingError::NoBackend(rules.policy().region(r).id().to_string()))
    }

    fn index_for(&self, rules: &Arc<Ruleset>) -> RegionIndex {
        let slots = rules
            .policy()
            .regions()
            .map(|(_, region)| self.regions.iter().position(|rb| &*rb.name == region.id()))
            .collect();
        RegionIndex {
            rules: rules.clone(),
            slots,
        }
    }

    /// The backend serving a region name, if configured.
    pub(crate) fn backend(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.regions
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| &r.backend)
    }

    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }
}
