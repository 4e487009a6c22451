//! Categories of data and their hosting rules.

use std::sync::Arc;

use crate::region::{RegionId, RegionSet};

/// A category declared in the policy, by its position in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryId(pub(crate) u16);

impl CategoryId {
    /// Position of the category in the policy's declaration order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An optional feature declared in the policy (`insights`, `nps`, `spam_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureId(pub(crate) u8);

impl FeatureId {
    /// Position of the feature in the policy's `features` list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The most features one policy may declare.
pub const MAX_FEATURES: usize = 64;

/// A set of enabled features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// Whether `f` is enabled.
    pub fn contains(self, f: FeatureId) -> bool {
        self.0 & (1u64 << f.0) != 0
    }

    /// The set with `f` added.
    #[must_use]
    pub fn with(self, f: FeatureId) -> FeatureSet {
        FeatureSet(self.0 | (1u64 << f.0))
    }

    /// The features in declaration order.
    pub fn iter(self) -> impl Iterator<Item = FeatureId> {
        let bits = self.0;
        (0..MAX_FEATURES as u8)
            .filter(move |i| bits & (1u64 << i) != 0)
            .map(FeatureId)
    }
}

/// Where a category may be hosted, as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostingRule {
    /// Hosted only in these regions; the order is the order of preference for
    /// tenants whose own region is not among them.
    Allowed(Vec<RegionId>),
    /// Placed exactly like another category ("Hosted in the same region where
    /// Subscriber's connected Zendesk Support account is Hosted").
    Follows(CategoryId),
    /// Placed in the tenant's selected region, or the default region when it has
    /// none ("Backups and Logs ... are also Hosted in the selected region").
    FollowsLocality,
}

/// A category and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub(crate) id: Arc<str>,
    pub(crate) description: Option<String>,
    pub(crate) rule: HostingRule,
    pub(crate) feature: Option<FeatureId>,
}

impl Category {
    /// The category id (`ticket_data`, `chat_content`, ...).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as a shared string (cheap to clone: for metric labels).
    pub fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }

    /// The policy's description of the category, if it gives one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The hosting rule as written.
    pub fn rule(&self) -> &HostingRule {
        &self.rule
    }

    /// The feature that must be enabled before this category may be written.
    pub fn feature(&self) -> Option<FeatureId> {
        self.feature
    }
}

/// A hosting rule with every `follows` resolved: what placement works from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) placement: ResolvedPlacement,
    /// Every feature gate along the `follows` chain (all must be enabled).
    pub(crate) gates: FeatureSet,
}

/// Where a category resolves to once `follows` chains are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResolvedPlacement {
    /// Allowed regions, plus the first one in the written order.
    Regions { set: RegionSet, first: RegionId },
    /// The tenant's locality (or the default region).
    Locality,
}
