//! The hosting policy: regions, categories and their rules, classification rules.
//!
//! The type and its lookups are here; parsing and validation of the policy
//! file in `parse.rs`.

mod parse;

use std::collections::HashMap;

/// Lookups by id on the hot path: a fast hasher (keys come from config files).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::category::{Category, CategoryId, FeatureId, FeatureSet, Resolved, ResolvedPlacement};
use crate::classifier::{Classification, ClassifiedBy, ContentTypeRule, KeyRule, OnConflict};
use crate::geo;
use crate::reason::DenyReason;
use crate::region::{Region, RegionId, RegionSet};

/// A validated hosting policy.
///
/// Built from TOML with [`Policy::from_toml`]; immutable afterwards. All
/// lookups used on the hot path are allocation-free.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique per parse in this process: what a tenant record was validated
    /// against (see [`Policy::generation`]).
    generation: u64,
    version: String,
    default_region: RegionId,
    features: Vec<String>,
    default_category: Option<CategoryId>,
    on_conflict: OnConflict,
    backup_prefixes: Vec<String>,
    regions: Vec<Region>,
    sub_processors: Vec<SubProcessor>,
    feature_exports: Vec<FeatureExport>,
    categories: Vec<Category>,
    resolved: Vec<Resolved>,
    category_index: FastMap<String, CategoryId>,
    key_rules: Vec<KeyRule>,
    content_type_rules: Vec<ContentTypeRule>,
}

/// "Hosted by Zendesk's third party service provider, Twilio, in the US
/// only"). Residency does not store that copy; it says where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubProcessor {
    pub(crate) name: String,
    pub(crate) hosts_in: Vec<String>,
    pub(crate) countries: Vec<String>,
    pub(crate) categories: Vec<CategoryId>,
    pub(crate) seed: Option<String>,
}

impl SubProcessor {
    /// The sub-processor's name (`Twilio`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it hosts, as written (countries or groups: `["US"]`).
    pub fn hosts_in(&self) -> &[String] {
        &self.hosts_in
    }

    /// The countries it may host in (groups expanded, sorted).
    pub fn countries(&self) -> &[String] {
        &self.countries
    }

    /// The categories it holds a copy of.
    pub fn categories(&self) -> &[CategoryId] {
        &self.categories
    }

    /// The seed's words, as quoted in the policy.
    pub fn seed(&self) -> Option<&str> {
        self.seed.as_deref()
    }

    /// Whether its copy is outside `region` (a country it hosts in is not a
    /// member of the region's jurisdiction).
    pub fn outside(&self, region: &Region) -> bool {
        self.countries.iter().any(|c| !region.is_member(c))
    }
}

/// An optional feature that, once enabled, copies some of a category's data to
/// a region whatever the tenant's locality (the seed's "Default ticket fields
/// exported to Insights ... cannot be disabled").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureExport {
    pub(crate) feature: FeatureId,
    pub(crate) to: RegionId,
    pub(crate) categories: Vec<CategoryId>,
    pub(crate) what: Option<String>,
    pub(crate) seed: Option<String>,
}

impl FeatureExport {
    /// The feature whose enabling copies the data.
    pub fn feature(&self) -> FeatureId {
        self.feature
    }

    /// The region the copy goes to.
    pub fn to(&self) -> RegionId {
        self.to
    }

    /// The categories whose data (or part of it) is copied.
    pub fn categories(&self) -> &[CategoryId] {
        &self.categories
    }

    /// What is copied, in the policy's words (`default ticket fields ...`).
    pub fn what(&self) -> Option<&str> {
        self.what.as_deref()
    }

    /// The seed's words, as quoted in the policy.
    pub fn seed(&self) -> Option<&str> {
        self.seed.as_deref()
    }
}

/// The next policy generation (1, 2, ... per process).
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Policy {
    /// A number unique to this parse of a policy in this process (a clone
    /// keeps it). A [`crate::Tenant`] validated against one policy names
    /// regions and features by that policy's indices: a directory that
    /// caches tenants keeps the generation they were validated under and
    /// validates them again for another.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The policy's version label.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Region for tenants without the locality add-on.
    pub fn default_region(&self) -> RegionId {
        self.default_region
    }

    /// Every declared region, in declaration order.
    pub fn regions(&self) -> impl ExactSizeIterator<Item = (RegionId, &Region)> {
        self.regions
            .iter()
            .enumerate()
            .map(|(i, r)| (RegionId(i as u8), r))
    }

    /// A region's details.
    pub fn region(&self, id: RegionId) -> &Region {
        &self.regions[id.index()]
    }

    /// Looks a region up by its id string.
    pub fn region_by_id(&self, id: &str) -> Option<RegionId> {
        self.regions
            .iter()
            .position(|r| &*r.id == id)
            .map(|i| RegionId(i as u8))
    }

    /// All declared regions as a set.
    pub fn all_regions(&self) -> RegionSet {
        (0..self.regions.len() as u8).map(RegionId).collect()
    }

    /// The declared features, in declaration order.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// A feature's id string.
    pub fn feature_name(&self, f: FeatureId) -> &str {
        &self.features[f.index()]
    }

    /// Looks a feature up by its id string.
    pub fn feature_by_id(&self, id: &str) -> Option<FeatureId> {
        self.features
            .iter()
            .position(|f| f == id)
            .map(|i| FeatureId(i as u8))
    }

    /// Every category, in declaration order.
    pub fn categories(&self) -> impl ExactSizeIterator<Item = (CategoryId, &Category)> {
        self.categories
            .iter()
            .enumerate()
            .map(|(i, c)| (CategoryId(i as u16), c))
    }

    /// A category's details.
    pub fn category(&self, id: CategoryId) -> &Category {
        &self.categories[id.index()]
    }

    /// Looks a category up by its id string (no allocation).
    pub fn category_by_id(&self, id: &str) -> Option<CategoryId> {
        self.category_index.get(id).copied()
    }

    /// The regions a category may be placed in, once `follows` is resolved
    /// (`None`: it follows the tenant's locality, so any region).
    pub fn allowed_regions(&self, c: CategoryId) -> Option<RegionSet> {
        match self.resolved[c.index()].placement {
            ResolvedPlacement::Regions { set, .. } => Some(set),
            ResolvedPlacement::Locality => None,
        }
    }

    /// Every feature that must be enabled for a category (its own and those of
    /// the categories it follows).
    pub fn feature_gates(&self, c: CategoryId) -> FeatureSet {
        self.resolved[c.index()].gates
    }

    pub(crate) fn resolved(&self, c: CategoryId) -> Resolved {
        self.resolved[c.index()]
    }

    /// A category's resolved placement, to corrupt by hand in tests (the
    /// parser builds no policy that breaks the invariants).
    #[cfg(test)]
    pub(crate) fn resolved_mut(&mut self, c: CategoryId) -> &mut Resolved {
        &mut self.resolved[c.index()]
    }

    /// The default category for unclassifiable payloads, if any.
    pub fn default_category(&self) -> Option<CategoryId> {
        self.default_category
    }

    /// What happens when an explicit category contradicts a key rule.
    pub fn on_conflict(&self) -> OnConflict {
        self.on_conflict
    }

    /// The key prefixes of backups and logs (`backups/`, `logs/`): a key
    /// `<prefix><category id>/...` or `<prefix><original key>` takes the
    /// placement of what it holds.
    pub fn backup_prefixes(&self) -> &[String] {
        &self.backup_prefixes
    }

    /// The sub-processors: third parties that host their own copy of some
    /// categories.
    pub fn sub_processors(&self) -> &[SubProcessor] {
        &self.sub_processors
    }

    /// The sub-processors that hold a copy of a category.
    pub fn sub_processors_of(&self, c: CategoryId) -> impl Iterator<Item = &SubProcessor> {
        self.sub_processors
            .iter()
            .filter(move |s| s.categories.contains(&c))
    }

    /// The feature exports: enabling a feature copies data to a region.
    pub fn feature_exports(&self) -> &[FeatureExport] {
        &self.feature_exports
    }

    /// Where a provider location is: a location some region declares (its
    /// country from the policy's `[locations]` or the provider table), else
    /// the shipped provider table. A country code or a group (`EU`).
    pub fn location_place(&self, location: &str) -> Option<&str> {
        self.regions
            .iter()
            .find_map(|r| r.location_place(location))
            .or_else(|| geo::provider_location(location).map(|(p, _)| p))
    }

    /// The startup location check: whether a bucket of `region` that reports
    /// `reported` (its GetBucketLocation) may hold the region's data.
    ///
    /// # Errors
    /// A message naming the reported location's country when it is not one of
    /// the region's declared locations (whose countries are members of the
    /// region's jurisdiction by construction).
    pub fn check_location(&self, region: RegionId, reported: &str) -> Result<(), String> {
        let r = self.region(region);
        if r.contains_location(reported) {
            return Ok(());
        }
        let where_ = match self.location_place(reported) {
            Some(p) if r.members.is_empty() => format!(" (in {p})"),
            Some(p) => {
                let inside = geo::TABLE
                    .expand(&[p.to_string()])
                    .is_ok_and(|cs| !cs.is_empty() && cs.iter().all(|c| r.is_member(c)));
                if inside {
                    format!(
                        " (in {p}, a member of {}, but not declared for the region)",
                        r.jurisdiction
                    )
                } else {
                    format!(" (in {p}, not a member of {})", r.jurisdiction)
                }
            }
            None => " (not a known provider location)".to_string(),
        };
        Err(format!(
            "location {reported:?}{where_} is not one of region {}'s locations {:?} ({})",
            r.id, r.locations, r.jurisdiction
        ))
    }

    /// The key rules, in order (first match wins).
    pub fn key_rules(&self) -> &[KeyRule] {
        &self.key_rules
    }

    /// The content-type rules, in order (first match wins).
    pub fn content_type_rules(&self) -> &[ContentTypeRule] {
        &self.content_type_rules
    }

    /// The category a key alone places, if any: a category backup prefix, then
    /// the key rules in order.
    ///
    /// "Hosting" includes storing "for archival, backup and log purposes": a
    /// key under a backup prefix takes the placement of what it holds, either
    /// `<prefix><category id>/...` or a mirrored `<prefix><original key>` (the
    /// rest classified by these same rules). Only a rest that nothing
    /// classifies falls through to the key rules (`backups/**` →
    /// `backups_and_logs`).
    pub fn classify_key(&self, key: &str) -> Option<Classification> {
        let key = crate::in_bucket_key(key);
        for prefix in &self.backup_prefixes {
            let Some(rest) = key.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if let Some((cat, _)) = rest.split_once('/') {
                if let Some(id) = self.category_by_id(cat) {
                    return Some(Classification {
                        category: id,
                        by: ClassifiedBy::CategoryBackup,
                    });
                }
            }
            if let Some(inner) = self.classify_key(rest) {
                let by = match inner.by {
                    ClassifiedBy::KeyRule(i) => ClassifiedBy::BackupOf(i),
                    other => other,
                };
                return Some(Classification {
                    category: inner.category,
                    by,
                });
            }
        }
        self.key_rules
            .iter()
            .position(|r| r.is_match(key))
            .map(|i| Classification {
                category: self.key_rules[i].category,
                by: ClassifiedBy::KeyRule(i),
            })
    }

    /// Classifies a payload.
    ///
    /// # Errors
    /// `UnknownCategory` for an explicit category the policy does not declare,
    /// `CategoryConflict` when it contradicts a key rule under
    /// `on_conflict = "deny"`, `Unclassified` when nothing matches and there is
    /// no default category.
    pub fn classify(
        &self,
        key: &str,
        explicit: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Classification, DenyReason> {
        let key = crate::in_bucket_key(key);
        let by_key = self.classify_key(key);
        if let Some(name) = explicit {
            let category = self
                .category_by_id(name)
                .ok_or(DenyReason::UnknownCategory)?;
            if let Some(k) = by_key {
                if k.category != category {
                    match self.on_conflict {
                        OnConflict::Deny => {
                            return Err(DenyReason::CategoryConflict {
                                explicit: category,
                                by_key: k.category,
                            })
                        }
                        OnConflict::KeyRule => return Ok(k),
                        OnConflict::Explicit => {}
                    }
                }
            }
            return Ok(Classification {
                category,
                by: ClassifiedBy::Explicit,
            });
        }
        if let Some(k) = by_key {
            return Ok(k);
        }
        if let Some(ct) = content_type {
            if let Some(i) = self
                .content_type_rules
                .iter()
                .position(|r| r.is_match(ct) && r.scope.as_ref().is_none_or(|s| s.is_match(key)))
            {
                return Ok(Classification {
                    category: self.content_type_rules[i].category,
                    by: ClassifiedBy::ContentTypeRule(i),
                });
            }
        }
        self.default_category
            .map(|category| Classification {
                category,
                by: ClassifiedBy::Default,
            })
            .ok_or(DenyReason::Unclassified)
    }
}
