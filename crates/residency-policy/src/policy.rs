//! The hosting policy: regions, categories and their rules, classification rules.

use std::collections::HashMap;

/// Lookups by id on the hot path: a fast hasher (keys come from config files).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::category::{
    Category, CategoryId, FeatureId, FeatureSet, HostingRule, Resolved, ResolvedPlacement,
    MAX_FEATURES,
};
use crate::classifier::{Classification, ClassifiedBy, ContentTypeRule, KeyRule, OnConflict};
use crate::decision::DenyReason;
use crate::error::{ConfigErrors, Diagnostics};
use crate::region::{Region, RegionId, RegionSet, MAX_REGIONS};

/// A validated hosting policy.
///
/// Built from TOML with [`Policy::from_toml`]; immutable afterwards. All
/// lookups used on the hot path are allocation-free.
#[derive(Debug, Clone)]
pub struct Policy {
    version: String,
    default_region: RegionId,
    features: Vec<String>,
    default_category: Option<CategoryId>,
    on_conflict: OnConflict,
    category_backups: Option<String>,
    regions: Vec<Region>,
    categories: Vec<Category>,
    resolved: Vec<Resolved>,
    category_index: FastMap<String, CategoryId>,
    key_rules: Vec<KeyRule>,
    content_type_rules: Vec<ContentTypeRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<String>,
    default_region: Spanned<String>,
    #[serde(default)]
    features: Vec<Spanned<String>>,
    default_category: Option<Spanned<String>>,
    on_conflict: Option<Spanned<String>>,
    category_backups: Option<Spanned<String>>,
    #[serde(default)]
    regions: IndexMap<String, Spanned<RawRegion>>,
    #[serde(default)]
    categories: IndexMap<String, Spanned<RawCategory>>,
    #[serde(default)]
    key_rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    content_type_rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    jurisdiction: String,
    #[serde(default)]
    locations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    description: Option<String>,
    allowed: Option<Spanned<Vec<Spanned<String>>>>,
    follows: Option<Spanned<String>>,
    feature: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: Spanned<String>,
    category: Spanned<String>,
}

/// Whether `id` is a well-formed region, category or feature id.
pub(crate) fn valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        && id.len() <= 63
}

impl Policy {
    /// Parses and validates a policy file.
    ///
    /// `file` names the source in error messages.
    ///
    /// # Errors
    /// Every problem found, each with its line: TOML syntax, unknown keys,
    /// an undeclared region, feature or category, a `follows` cycle, an empty
    /// allowed set, duplicate ids, invalid patterns.
    pub fn from_toml(source: &str, file: &str) -> Result<Policy, ConfigErrors> {
        let mut diag = Diagnostics::new(file, source);
        let raw: RawPolicy = match toml::from_str(source) {
            Ok(r) => r,
            Err(e) => {
                diag.push_toml(&e);
                return Err(diag.finish().unwrap_err());
            }
        };
        let policy = Self::build(raw, &mut diag);
        diag.finish()?;
        Ok(policy.expect("a policy is built whenever no error was recorded"))
    }

    fn build(raw: RawPolicy, diag: &mut Diagnostics<'_>) -> Option<Policy> {
        if raw.version.get_ref().trim().is_empty() {
            diag.push(Some(raw.version.span()), "version must not be empty");
        }

        // Regions.
        let mut regions = Vec::new();
        if raw.regions.is_empty() {
            diag.push(
                None,
                "no regions declared: add at least one [regions.<id>] table",
            );
        }
        if raw.regions.len() > MAX_REGIONS {
            diag.push(
                None,
                format!("at most {MAX_REGIONS} regions may be declared"),
            );
        }
        for (id, r) in raw.regions.iter().take(MAX_REGIONS) {
            if !valid_id(id) {
                diag.push(
                    Some(r.span()),
                    format!("region id {id:?} must be lowercase letters, digits, '_' or '-', starting with a letter"),
                );
            }
            regions.push(Region {
                id: id.as_str().into(),
                jurisdiction: r.get_ref().jurisdiction.clone(),
                locations: r.get_ref().locations.clone(),
            });
        }
        let region_by_id = |s: &str| {
            regions
                .iter()
                .position(|r| &*r.id == s)
                .map(|i| RegionId(i as u8))
        };
        let default_region = region_by_id(raw.default_region.get_ref());
        if default_region.is_none() {
            diag.push(
                Some(raw.default_region.span()),
                format!(
                    "default_region {:?} is not a declared region",
                    raw.default_region.get_ref()
                ),
            );
        }

        // Features.
        let mut features: Vec<String> = Vec::new();
        for f in &raw.features {
            if !valid_id(f.get_ref()) {
                diag.push(
                    Some(f.span()),
                    format!("feature id {:?} is not a valid id", f.get_ref()),
                );
            } else if features.contains(f.get_ref()) {
                diag.push(
                    Some(f.span()),
                    format!("feature {:?} is declared twice", f.get_ref()),
                );
            } else {
                features.push(f.get_ref().clone());
            }
        }
        if features.len() > MAX_FEATURES {
            diag.push(
                None,
                format!("at most {MAX_FEATURES} features may be declared"),
            );
            features.truncate(MAX_FEATURES);
        }
        let feature_by_id = |s: &str| {
            features
                .iter()
                .position(|f| f == s)
                .map(|i| FeatureId(i as u8))
        };

        // Categories: ids first, so that `follows` may name a later one.
        if raw.categories.is_empty() {
            diag.push(None, "no categories declared: add [categories.<id>] tables");
        }
        let mut category_index = FastMap::default();
        for (i, (id, c)) in raw.categories.iter().enumerate() {
            if !valid_id(id) {
                diag.push(
                    Some(c.span()),
                    format!("category id {id:?} is not a valid id"),
                );
            }
            category_index.insert(id.clone(), CategoryId(i as u16));
        }
        let mut categories = Vec::new();
        for (id, c) in &raw.categories {
            let span = c.span();
            let c = c.get_ref();
            let feature = c.feature.as_ref().and_then(|f| {
                let found = feature_by_id(f.get_ref());
                if found.is_none() {
                    diag.push(
                        Some(f.span()),
                        format!(
                            "category {id:?} names feature {:?}, which is not declared in `features`",
                            f.get_ref()
                        ),
                    );
                }
                found
            });
            let rule = match (&c.allowed, &c.follows) {
                (Some(_), Some(f)) => {
                    diag.push(
                        Some(f.span()),
                        format!("category {id:?} has both `allowed` and `follows`: give one"),
                    );
                    None
                }
                (None, None) => {
                    diag.push(
                        Some(span),
                        format!("category {id:?} has neither `allowed` nor `follows`"),
                    );
                    None
                }
                (Some(allowed), None) => {
                    if allowed.get_ref().is_empty() {
                        diag.push(
                            Some(allowed.span()),
                            format!("category {id:?} has an empty allowed set: it could never be stored"),
                        );
                    }
                    let mut list = Vec::new();
                    for r in allowed.get_ref() {
                        match region_by_id(r.get_ref()) {
                            Some(rid) if list.contains(&rid) => diag.push(
                                Some(r.span()),
                                format!("category {id:?} lists region {:?} twice", r.get_ref()),
                            ),
                            Some(rid) => list.push(rid),
                            None => diag.push(
                                Some(r.span()),
                                format!(
                                    "category {id:?} allows region {:?}, which is not declared",
                                    r.get_ref()
                                ),
                            ),
                        }
                    }
                    Some(HostingRule::Allowed(list))
                }
                (None, Some(f)) => {
                    if f.get_ref() == "locality" {
                        Some(HostingRule::FollowsLocality)
                    } else if let Some(&target) = category_index.get(f.get_ref()) {
                        Some(HostingRule::Follows(target))
                    } else {
                        diag.push(
                            Some(f.span()),
                            format!(
                                "category {id:?} follows {:?}, which is neither a declared category nor \"locality\"",
                                f.get_ref()
                            ),
                        );
                        None
                    }
                }
            };
            categories.push(Category {
                id: id.as_str().into(),
                description: c.description.clone(),
                // A placeholder keeps indices aligned; the error is already recorded.
                rule: rule.unwrap_or(HostingRule::Allowed(Vec::new())),
                feature,
            });
        }

        // Resolve `follows` chains, reporting cycles.
        let mut resolved = Vec::with_capacity(categories.len());
        for (i, (id, c)) in raw.categories.iter().enumerate() {
            let mut seen = vec![i];
            let mut gates = FeatureSet::default();
            let mut cur = i;
            let placement = loop {
                if let Some(f) = categories[cur].feature {
                    gates = gates.with(f);
                }
                match &categories[cur].rule {
                    HostingRule::Allowed(list) => {
                        break list.first().map(|&first| ResolvedPlacement::Regions {
                            set: list.iter().copied().collect::<RegionSet>(),
                            first,
                        })
                    }
                    HostingRule::FollowsLocality => break Some(ResolvedPlacement::Locality),
                    HostingRule::Follows(next) => {
                        if seen.contains(&next.index()) {
                            let names: Vec<&str> = seen
                                .iter()
                                .map(|&k| &*categories[k].id)
                                .chain([&*categories[next.index()].id])
                                .collect();
                            diag.push(
                                c.get_ref().follows.as_ref().map(|f| f.span()),
                                format!(
                                    "category {id:?} is in a `follows` cycle: {}",
                                    names.join(" -> ")
                                ),
                            );
                            break None;
                        }
                        seen.push(next.index());
                        cur = next.index();
                    }
                }
            };
            resolved.push(Resolved {
                placement: placement.unwrap_or(ResolvedPlacement::Locality),
                gates,
            });
        }

        let lookup_category = |s: &Spanned<String>, what: &str, diag: &mut Diagnostics<'_>| {
            let found = category_index.get(s.get_ref()).copied();
            if found.is_none() {
                diag.push(
                    Some(s.span()),
                    format!(
                        "{what} names category {:?}, which is not declared",
                        s.get_ref()
                    ),
                );
            }
            found
        };

        let default_category = raw
            .default_category
            .as_ref()
            .and_then(|c| lookup_category(c, "default_category", diag));

        let on_conflict = match &raw.on_conflict {
            None => OnConflict::Deny,
            Some(s) => OnConflict::parse(s.get_ref()).unwrap_or_else(|| {
                diag.push(
                    Some(s.span()),
                    format!(
                        "on_conflict must be \"deny\", \"key_rule\" or \"explicit\", not {:?}",
                        s.get_ref()
                    ),
                );
                OnConflict::Deny
            }),
        };

        let category_backups = raw.category_backups.as_ref().map(|p| {
            if p.get_ref().is_empty() || !p.get_ref().ends_with('/') {
                diag.push(
                    Some(p.span()),
                    "category_backups must be a key prefix ending in '/'",
                );
            }
            p.get_ref().clone()
        });

        let mut key_rules = Vec::new();
        for r in &raw.key_rules {
            let r = r.get_ref();
            let cat = lookup_category(&r.category, "key rule", diag);
            match KeyRule::new(r.pattern.get_ref(), cat.unwrap_or(CategoryId(0))) {
                Ok(rule) => {
                    if cat.is_some() {
                        key_rules.push(rule)
                    }
                }
                Err(e) => diag.push(
                    Some(r.pattern.span()),
                    format!(
                        "key rule pattern {:?} is invalid: {}",
                        r.pattern.get_ref(),
                        e.kind()
                    ),
                ),
            }
        }
        let mut content_type_rules = Vec::new();
        for r in &raw.content_type_rules {
            let r = r.get_ref();
            let cat = lookup_category(&r.category, "content-type rule", diag);
            match ContentTypeRule::new(r.pattern.get_ref(), cat.unwrap_or(CategoryId(0))) {
                Some(rule) => {
                    if cat.is_some() {
                        content_type_rules.push(rule)
                    }
                }
                None => diag.push(
                    Some(r.pattern.span()),
                    format!(
                        "content-type pattern {:?} is invalid: expected type/subtype, where either may be '*' or end in '*'",
                        r.pattern.get_ref()
                    ),
                ),
            }
        }

        if !diag.is_empty() {
            return None;
        }
        Some(Policy {
            version: raw.version.into_inner(),
            default_region: default_region?,
            features,
            default_category,
            on_conflict,
            category_backups,
            regions,
            categories,
            resolved,
            category_index,
            key_rules,
            content_type_rules,
        })
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

    /// The default category for unclassifiable payloads, if any.
    pub fn default_category(&self) -> Option<CategoryId> {
        self.default_category
    }

    /// What happens when an explicit category contradicts a key rule.
    pub fn on_conflict(&self) -> OnConflict {
        self.on_conflict
    }

    /// The key prefix under which `<prefix><category>/...` is a backup of one
    /// category's data.
    pub fn category_backups(&self) -> Option<&str> {
        self.category_backups.as_deref()
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
    pub fn classify_key(&self, key: &str) -> Option<Classification> {
        if let Some(prefix) = self.category_backups.as_deref() {
            if let Some(rest) = key.strip_prefix(prefix) {
                if let Some((cat, _)) = rest.split_once('/') {
                    if let Some(id) = self.category_by_id(cat) {
                        return Some(Classification {
                            category: id,
                            by: ClassifiedBy::CategoryBackup,
                        });
                    }
                }
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
            if let Some(i) = self.content_type_rules.iter().position(|r| r.is_match(ct)) {
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
