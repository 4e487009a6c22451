//! Where provider locations are: the shipped table of provider region names
//! (AWS, Google Cloud, Azure, Cloudflare R2) to ISO 3166-1 countries, and the
//! built-in jurisdictions (the EEA, the EU, the US) as member countries.
//!
//! A region of the policy is a jurisdiction; a location is inside it only if
//! its country is a member. `eu-west-2` (London) is in GB, which is not in the
//! EEA, whatever a policy file says.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The shipped provider table (`data/provider-locations.toml`).
pub const PROVIDER_LOCATIONS: &str = include_str!("../data/provider-locations.toml");

/// The parsed provider table.
#[derive(Debug)]
pub(crate) struct ProviderTable {
    /// Group name -> member countries (`EU` -> the 27 member states).
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    /// Built-in jurisdiction label -> member countries, groups expanded.
    pub(crate) jurisdictions: BTreeMap<String, Vec<String>>,
    /// Lower-cased location name -> (place: a country or a group, provider).
    pub(crate) locations: BTreeMap<String, (String, &'static str)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    groups: BTreeMap<String, Vec<String>>,
    jurisdictions: BTreeMap<String, Vec<String>>,
    aws: BTreeMap<String, String>,
    gcp: BTreeMap<String, String>,
    azure: BTreeMap<String, String>,
    r2: BTreeMap<String, String>,
}

/// Whether `s` looks like an ISO 3166-1 alpha-2 code (two ASCII capitals).
pub(crate) fn is_country_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

impl ProviderTable {
    fn parse(src: &str) -> Result<ProviderTable, String> {
        let raw: RawTable = toml::from_str(src).map_err(|e| e.to_string())?;
        let mut t = ProviderTable {
            groups: raw.groups,
            jurisdictions: BTreeMap::new(),
            locations: BTreeMap::new(),
        };
        for (name, members) in &raw.jurisdictions {
            let expanded = t.expand(members)?;
            t.jurisdictions.insert(name.clone(), expanded);
        }
        for (provider, table) in [
            ("AWS", &raw.aws),
            ("Google Cloud", &raw.gcp),
            ("Azure", &raw.azure),
            ("Cloudflare R2", &raw.r2),
        ] {
            for (name, place) in table {
                t.expand(std::slice::from_ref(place))?;
                let key = name.to_ascii_lowercase();
                if let Some((other, _)) = t.locations.get(&key) {
                    if other != place {
                        return Err(format!(
                            "location {name:?} is listed twice with different places"
                        ));
                    }
                    continue;
                }
                t.locations.insert(key, (place.clone(), provider));
            }
        }
        Ok(t)
    }

    /// Expands countries and group names into sorted, deduplicated countries.
    pub(crate) fn expand(&self, places: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for p in places {
            if let Some(g) = self.groups.get(p) {
                out.extend(g.iter().cloned());
            } else if is_country_code(p) {
                out.push(p.clone());
            } else {
                return Err(format!(
                    "{p:?} is neither an ISO 3166-1 alpha-2 country code nor a group ({})",
                    self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The place (country or group) and provider of a provider location name.
    pub(crate) fn location(&self, name: &str) -> Option<(&str, &'static str)> {
        self.locations
            .get(&name.to_ascii_lowercase())
            .map(|(p, prov)| (p.as_str(), *prov))
    }
}

/// The shipped table, parsed once.
pub(crate) static TABLE: LazyLock<ProviderTable> = LazyLock::new(|| {
    ProviderTable::parse(PROVIDER_LOCATIONS).expect("data/provider-locations.toml is valid")
});

/// The country (or group, e.g. `EU` for an R2 EU-jurisdiction bucket) of a
/// provider location name, and the provider, from the shipped table.
pub fn provider_location(name: &str) -> Option<(&'static str, &'static str)> {
    TABLE.location(name)
}

/// The member countries of a built-in jurisdiction (`EEA`, `EU`, `US`).
pub fn builtin_jurisdiction(label: &str) -> Option<&'static [String]> {
    TABLE.jurisdictions.get(label).map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses() {
        assert!(TABLE.locations.len() > 50);
        assert_eq!(TABLE.groups["EU"].len(), 27);
        assert_eq!(builtin_jurisdiction("EEA").unwrap().len(), 30);
    }
}
