//! Parsing and validating a policy file: every problem reported at once,
//! each with its line.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::{FastMap, FeatureExport, Policy, SubProcessor};
use crate::category::{
    Category, CategoryId, FeatureId, FeatureSet, HostingRule, Resolved, ResolvedPlacement,
    MAX_FEATURES,
};
use crate::classifier::{ContentTypeRule, KeyRule, OnConflict};
use crate::error::{ConfigErrors, Diagnostics};
use crate::geo;
use crate::region::{Region, RegionId, RegionSet, MAX_REGIONS};

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
    backup_prefixes: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    jurisdictions: IndexMap<String, Spanned<RawJurisdiction>>,
    #[serde(default)]
    locations: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    regions: IndexMap<String, Spanned<RawRegion>>,
    #[serde(default)]
    categories: IndexMap<String, Spanned<RawCategory>>,
    #[serde(default)]
    key_rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    content_type_rules: Vec<Spanned<RawContentTypeRule>>,
    #[serde(default)]
    sub_processors: Vec<Spanned<RawSubProcessor>>,
    #[serde(default)]
    feature_exports: Vec<Spanned<RawFeatureExport>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJurisdiction {
    countries: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContentTypeRule {
    pattern: Spanned<String>,
    category: Spanned<String>,
    keys: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubProcessor {
    name: Spanned<String>,
    hosts_in: Spanned<Vec<Spanned<String>>>,
    categories: Vec<Spanned<String>>,
    seed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeatureExport {
    feature: Spanned<String>,
    to: Spanned<String>,
    categories: Vec<Spanned<String>>,
    what: Option<String>,
    seed: Option<String>,
}

/// A third party that hosts its own copy of some categories (the seed's

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    jurisdiction: Spanned<String>,
    #[serde(default)]
    locations: Vec<Spanned<String>>,
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
        // Jurisdictions: member countries (the policy's, else the shipped ones).
        let mut jurisdictions: HashMap<&str, Vec<String>> = HashMap::new();
        for (label, j) in &raw.jurisdictions {
            let places: Vec<String> = j
                .get_ref()
                .countries
                .iter()
                .map(|c| c.get_ref().clone())
                .collect();
            match geo::TABLE.expand(&places) {
                Ok(members) if !members.is_empty() => {
                    jurisdictions.insert(label.as_str(), members);
                }
                Ok(_) => diag.push(
                    Some(j.span()),
                    format!("jurisdiction {label:?} has no member countries"),
                ),
                Err(e) => diag.push(Some(j.span()), format!("jurisdiction {label:?}: {e}")),
            }
        }
        // The policy's own locations (private data centres, Garage, MinIO).
        let mut own_locations: HashMap<String, String> = HashMap::new();
        for (name, place) in &raw.locations {
            if let Err(e) = geo::TABLE.expand(std::slice::from_ref(place.get_ref())) {
                diag.push(Some(place.span()), format!("location {name:?}: {e}"));
                continue;
            }
            if let Some((known, provider)) = geo::TABLE.location(name) {
                if known != place.get_ref() {
                    diag.push(
                        Some(place.span()),
                        format!(
                            "location {name:?} is {provider}'s, in {known}: a policy cannot place it in {:?}",
                            place.get_ref()
                        ),
                    );
                    continue;
                }
            }
            own_locations.insert(name.to_ascii_lowercase(), place.get_ref().clone());
        }
        for (id, r) in raw.regions.iter().take(MAX_REGIONS) {
            if !valid_id(id) {
                diag.push(
                    Some(r.span()),
                    format!("region id {id:?} must be lowercase letters, digits, '_' or '-', starting with a letter"),
                );
            }
            let raw_region = r.get_ref();
            let label = raw_region.jurisdiction.get_ref();
            let members = jurisdictions
                .get(label.as_str())
                .cloned()
                .or_else(|| geo::builtin_jurisdiction(label).map(<[String]>::to_vec))
                .unwrap_or_default();
            if members.is_empty() && !raw_region.locations.is_empty() {
                diag.push(
                    Some(raw_region.jurisdiction.span()),
                    format!(
                        "region {id:?}: jurisdiction {label:?} declares no member countries, so its locations cannot be checked; add [jurisdictions.{label}] countries = [\"<ISO 3166-1 code>\", ...]"
                    ),
                );
            }
            let mut places = Vec::new();
            for loc in &raw_region.locations {
                let name = loc.get_ref();
                let found = own_locations
                    .get(&name.to_ascii_lowercase())
                    .map(|p| (p.as_str(), "the policy's [locations]"))
                    .or_else(|| geo::TABLE.location(name));
                let Some((place, source)) = found else {
                    diag.push(
                        Some(loc.span()),
                        format!(
                            "region {id:?}: location {name:?} is not a known provider region; say where it is in the policy's [locations] table: {name:?} = \"<ISO 3166-1 code>\""
                        ),
                    );
                    places.push(String::new());
                    continue;
                };
                if !members.is_empty() {
                    let countries = geo::TABLE.expand(&[place.to_string()]).unwrap_or_default();
                    let outside: Vec<&str> = countries
                        .iter()
                        .filter(|c| members.binary_search(c).is_err())
                        .map(String::as_str)
                        .collect();
                    if !outside.is_empty() {
                        diag.push(
                            Some(loc.span()),
                            format!(
                                "region {id:?}: location {name:?} is in {place} ({source}), which is not a member of jurisdiction {label:?}; remove it from the region's locations",
                            ),
                        );
                    }
                }
                places.push(place.to_string());
            }
            regions.push(Region {
                id: id.as_str().into(),
                jurisdiction: label.clone(),
                locations: raw_region
                    .locations
                    .iter()
                    .map(|l| l.get_ref().clone())
                    .collect(),
                places,
                members,
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

        // Backup and log prefixes: `category_backups` is the older spelling of
        // a one-prefix `backup_prefixes`.
        let mut backup_prefixes = Vec::new();
        match (&raw.backup_prefixes, &raw.category_backups) {
            (Some(_), Some(c)) => diag.push(
                Some(c.span()),
                "give backup_prefixes or category_backups, not both (category_backups = \"p/\" is the older spelling of backup_prefixes = [\"p/\"])",
            ),
            (Some(list), None) => {
                for p in list.get_ref() {
                    if p.get_ref().is_empty() || !p.get_ref().ends_with('/') {
                        diag.push(Some(p.span()), "a backup prefix must be a key prefix ending in '/'");
                    }
                    backup_prefixes.push(p.get_ref().clone());
                }
            }
            (None, Some(p)) => {
                if p.get_ref().is_empty() || !p.get_ref().ends_with('/') {
                    diag.push(
                        Some(p.span()),
                        "category_backups must be a key prefix ending in '/'",
                    );
                }
                backup_prefixes.push(p.get_ref().clone());
            }
            (None, None) => {}
        }

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
        let all_regions: RegionSet = (0..regions.len() as u8).map(RegionId).collect();
        let mut content_type_rules = Vec::new();
        for r in &raw.content_type_rules {
            let r = r.get_ref();
            let cat = lookup_category(&r.category, "content-type rule", diag);
            let scope = match &r.keys {
                None => None,
                Some(k) => match KeyRule::new(k.get_ref(), cat.unwrap_or(CategoryId(0))) {
                    Ok(rule) => Some(rule),
                    Err(e) => {
                        diag.push(
                            Some(k.span()),
                            format!(
                                "content-type rule keys {:?} is invalid: {}",
                                k.get_ref(),
                                e.kind()
                            ),
                        );
                        None
                    }
                },
            };
            // "A content type alone must not move a payload to a narrower
            // region": an unscoped rule may only name a category that can be
            // hosted wherever the tenant's data can.
            if let (Some(c), None) = (cat, &r.keys) {
                if let ResolvedPlacement::Regions { set, .. } = resolved[c.index()].placement {
                    if set != all_regions {
                        let names: Vec<&str> =
                            set.iter().map(|x| &*regions[x.index()].id).collect();
                        diag.push(
                            Some(r.pattern.span()),
                            format!(
                                "content-type rule {:?} names category {:?}, which may only be hosted in [{}]: a content type alone must not move a payload to a narrower region; remove the rule or limit it to a key space with keys = \"<glob>\"",
                                r.pattern.get_ref(),
                                r.category.get_ref(),
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
            match ContentTypeRule::new(r.pattern.get_ref(), cat.unwrap_or(CategoryId(0))) {
                Some(mut rule) => {
                    rule.scope = scope;
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

        // Sub-processors: third-party copies, shown beside the decisions.
        let mut sub_processors = Vec::new();
        for sp in &raw.sub_processors {
            let sp = sp.get_ref();
            let hosts_in: Vec<String> = sp
                .hosts_in
                .get_ref()
                .iter()
                .map(|h| h.get_ref().clone())
                .collect();
            let countries = match geo::TABLE.expand(&hosts_in) {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => {
                    diag.push(
                        Some(sp.hosts_in.span()),
                        format!("sub-processor {:?}: hosts_in is empty", sp.name.get_ref()),
                    );
                    Vec::new()
                }
                Err(e) => {
                    diag.push(
                        Some(sp.hosts_in.span()),
                        format!("sub-processor {:?}: {e}", sp.name.get_ref()),
                    );
                    Vec::new()
                }
            };
            if sp.name.get_ref().trim().is_empty() {
                diag.push(Some(sp.name.span()), "a sub-processor needs a name");
            }
            let categories = sp
                .categories
                .iter()
                .filter_map(|c| lookup_category(c, "sub-processor", diag))
                .collect();
            sub_processors.push(SubProcessor {
                name: sp.name.get_ref().clone(),
                hosts_in,
                countries,
                categories,
                seed: sp.seed.clone(),
            });
        }

        // Feature exports: enabling a feature copies data to a region.
        let mut feature_exports = Vec::new();
        for fe in &raw.feature_exports {
            let fe = fe.get_ref();
            let feature = feature_by_id(fe.feature.get_ref());
            if feature.is_none() {
                diag.push(
                    Some(fe.feature.span()),
                    format!(
                        "feature export names feature {:?}, which is not declared in `features`",
                        fe.feature.get_ref()
                    ),
                );
            }
            let to = region_by_id(fe.to.get_ref());
            if to.is_none() {
                diag.push(
                    Some(fe.to.span()),
                    format!(
                        "feature export goes to region {:?}, which is not declared",
                        fe.to.get_ref()
                    ),
                );
            }
            let categories = fe
                .categories
                .iter()
                .filter_map(|c| lookup_category(c, "feature export", diag))
                .collect();
            if let (Some(feature), Some(to)) = (feature, to) {
                feature_exports.push(FeatureExport {
                    feature,
                    to,
                    categories,
                    what: fe.what.clone(),
                    seed: fe.seed.clone(),
                });
            }
        }

        if !diag.is_empty() {
            return None;
        }
        Some(Policy {
            generation: super::next_generation(),
            version: raw.version.into_inner(),
            default_region: default_region?,
            features,
            default_category,
            on_conflict,
            backup_prefixes,
            regions,
            sub_processors,
            feature_exports,
            categories,
            resolved,
            category_index,
            key_rules,
            content_type_rules,
        })
    }
}
