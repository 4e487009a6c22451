//! What changes between two policies: for every tenant kind × category, where
//! a write goes under each, and which real tenants a change hits.
//!
//! A write's placement depends on the tenant's locality, its strictness and
//! the features that gate the category, nothing else (not the region it
//! migrates from, not the other features). So the diff compares, per
//! category present in both policies, the kinds `locality × strict ×
//! subsets of the category's gating features` (of either policy), with no
//! migration: every row of the report stands for all the tenants with that
//! locality and strictness and exactly those of the category's gating
//! features ([`PolicyDiff::affected`] matches them so). A kind the old
//! policy refuses (its locality is a region only the new one declares) has
//! no tenants yet and is left out; one the new policy refuses (its locality
//! was removed) is reported as `invalid tenant`.
//!
//! ```
//! use residency_policy::{diff, Policy};
//!
//! let old = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [regions.eu]\njurisdiction = \"EU\"\n[categories.chat_content]\nallowed = [\"eu\"]\n",
//!     "old.toml",
//! ).unwrap();
//! let new = Policy::from_toml(
//!     "version = \"2\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [regions.eu]\njurisdiction = \"EU\"\n[categories.chat_content]\nallowed = [\"us\"]\n",
//!     "new.toml",
//! ).unwrap();
//! let d = diff(&old, &new);
//! assert_eq!(d.changes().count(), 5);
//! assert!(d.to_string().lines().any(|l| l.starts_with("chat_content  no locality ") && l.ends_with("  eu → us")));
//! ```

use std::fmt;

use serde::Serialize;

use crate::category::{CategoryId, FeatureId};
use crate::decision::Decision;
use crate::policy::Policy;
use crate::prove::{subsets, TenantKind, MAX_ENUMERATED_FEATURES};
use crate::record::TenantRecord;
use crate::tenant::TenantId;

/// Where a write of one category goes for one tenant kind under one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Stored in this region.
    Placed {
        /// The region id.
        region: String,
        /// Why (`tenant_locality`, `category_region`, ...).
        reason: String,
        /// The region is outside the tenant's locality.
        out_of_locality: bool,
    },
    /// Refused.
    Denied {
        /// The reason label (`out_of_locality`, `feature_disabled`, ...).
        reason: String,
        /// The one-line explanation.
        explanation: String,
    },
    /// No such tenant under this policy: its record is refused (a locality
    /// the policy no longer declares).
    Invalid {
        /// The validation's reasons.
        reasons: Vec<String>,
    },
}

impl Outcome {
    /// Whether both put the data in the same place: the same region, the same
    /// denial reason, or both invalid (the wording of an explanation aside).
    pub fn same_placement(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Placed { region: a, .. }, Outcome::Placed { region: b, .. }) => a == b,
            (Outcome::Denied { reason: a, .. }, Outcome::Denied { reason: b, .. }) => a == b,
            (Outcome::Invalid { .. }, Outcome::Invalid { .. }) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Placed {
                region,
                out_of_locality,
                ..
            } => {
                f.write_str(region)?;
                if *out_of_locality {
                    f.write_str(" (out of locality)")?;
                }
                Ok(())
            }
            Outcome::Denied { reason, .. } => write!(f, "denied ({reason})"),
            Outcome::Invalid { .. } => f.write_str("invalid tenant"),
        }
    }
}

/// One tenant kind whose placement of one category changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementChange {
    /// The category id.
    pub category: String,
    /// The tenant kind (its features: those of the category's gating
    /// features it enables; no migration).
    pub kind: TenantKind,
    /// Under the old policy.
    pub old: Outcome,
    /// Under the new policy.
    pub new: Outcome,
}

/// The changes of one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryChanges {
    /// The category id.
    pub category: String,
    /// The features that gate the category in either policy: a kind's
    /// `features` says which of these it enables, and no others matter.
    pub features: Vec<String>,
    /// Every kind whose placement changes, in the kinds' order.
    pub changes: Vec<PlacementChange>,
}

/// The difference between two policies; see [`diff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    /// The old policy's version label.
    pub old_version: String,
    /// The new policy's version label.
    pub new_version: String,
    /// Regions only the new policy declares.
    pub regions_added: Vec<String>,
    /// Regions only the old policy declares.
    pub regions_removed: Vec<String>,
    /// Categories only the new policy declares.
    pub categories_added: Vec<String>,
    /// Categories only the old policy declares.
    pub categories_removed: Vec<String>,
    /// Features only the new policy declares.
    pub features_added: Vec<String>,
    /// Features only the old policy declares.
    pub features_removed: Vec<String>,
    /// The placement changes, grouped by category (only categories with a
    /// change; categories of both policies, in the old policy's order).
    pub categories: Vec<CategoryChanges>,
}

impl PolicyDiff {
    /// Whether nothing changes: no placement, no region, category or feature.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
            && self.regions_added.is_empty()
            && self.regions_removed.is_empty()
            && self.categories_added.is_empty()
            && self.categories_removed.is_empty()
            && self.features_added.is_empty()
            && self.features_removed.is_empty()
    }

    /// Every placement change, category by category.
    pub fn changes(&self) -> impl Iterator<Item = &PlacementChange> {
        self.categories.iter().flat_map(|c| &c.changes)
    }

    /// The real tenants a change hits (those would need a migration of that
    /// category's data), each with its changes, in the order given; tenants
    /// no change hits are left out.
    ///
    /// A tenant is of a change's kind when its locality and strictness are
    /// the kind's and it enables exactly the kind's features among those
    /// that gate the category ([`CategoryChanges::features`]).
    pub fn affected<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a TenantRecord>,
    ) -> Vec<(String, Vec<&PlacementChange>)> {
        let mut out = Vec::new();
        for t in tenants {
            let hits: Vec<&PlacementChange> = self
                .categories
                .iter()
                .flat_map(|group| {
                    group
                        .changes
                        .iter()
                        .filter(move |ch| is_of_kind(t, &ch.kind, &group.features))
                })
                .collect();
            if !hits.is_empty() {
                out.push((t.id.clone(), hits));
            }
        }
        out
    }
}

fn is_of_kind(t: &TenantRecord, kind: &TenantKind, features: &[String]) -> bool {
    t.locality == kind.locality
        && t.strict == kind.strict
        && features
            .iter()
            .all(|f| t.features.contains(f) == kind.features.contains(f))
}

/// Names in `a` that are not in `b`, in `a`'s order.
fn missing(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter()
        .filter(|x| !b.contains(x))
        .map(|x| (*x).to_owned())
        .collect()
}

/// The names of the features that gate `c`.
fn gate_names(policy: &Policy, c: CategoryId) -> Vec<String> {
    policy
        .feature_gates(c)
        .iter()
        .map(|f| policy.feature_name(f).to_owned())
        .collect()
}

/// The feature sets (by name) the diff's kinds take for one category: every
/// subset of its gating features, or, with more than
/// [`MAX_ENUMERATED_FEATURES`] of them, none, all, and all but one (a write
/// is allowed only with every gate on, and a denial compares by its label).
fn feature_names_sets(features: &[String]) -> Vec<Vec<String>> {
    if features.len() <= MAX_ENUMERATED_FEATURES {
        let ids: Vec<FeatureId> = (0..features.len()).map(|i| FeatureId(i as u8)).collect();
        return subsets(&ids)
            .into_iter()
            .map(|s| s.iter().map(|f| features[f.index()].clone()).collect())
            .collect();
    }
    let mut sets = vec![Vec::new(), features.to_vec()];
    for skip in features {
        sets.push(features.iter().filter(|f| *f != skip).cloned().collect());
    }
    sets
}

/// Where a write of category `c` goes for `kind` under `policy` (a feature
/// the policy does not declare is ignored under it: no gate of it can name
/// one).
fn outcome(policy: &Policy, kind: &TenantKind, c: CategoryId) -> Outcome {
    let mut record = kind.record();
    record
        .features
        .retain(|f| policy.feature_by_id(f).is_some());
    let tenant = match record.validate(policy, TenantId::new(0)) {
        Ok(t) => t,
        Err(reasons) => return Outcome::Invalid { reasons },
    };
    let decision = policy.place(
        &tenant,
        crate::Classification {
            category: c,
            by: crate::ClassifiedBy::Explicit,
        },
    );
    match decision {
        Decision::Allow(p) => Outcome::Placed {
            region: policy.region(p.region).id().to_owned(),
            reason: p.reason.as_str().to_owned(),
            out_of_locality: p.out_of_locality,
        },
        Decision::Deny(r) => Outcome::Denied {
            reason: r.as_str().to_owned(),
            explanation: decision.explain_for(policy, Some(&tenant)).to_string(),
        },
    }
}

/// Compares two policies: for every tenant kind × category of both, the
/// placement under each (see the module documentation), and the regions,
/// categories and features added or removed.
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let regions =
        |p: &Policy| -> Vec<String> { p.regions().map(|(_, r)| r.id().to_owned()).collect() };
    let (old_regions, new_regions) = (regions(old), regions(new));
    let old_r: Vec<&str> = old_regions.iter().map(String::as_str).collect();
    let new_r: Vec<&str> = new_regions.iter().map(String::as_str).collect();
    let old_c: Vec<&str> = old.categories().map(|(_, c)| c.id()).collect();
    let new_c: Vec<&str> = new.categories().map(|(_, c)| c.id()).collect();
    let old_f: Vec<&str> = old.features().iter().map(String::as_str).collect();
    let new_f: Vec<&str> = new.features().iter().map(String::as_str).collect();

    let mut localities: Vec<Option<String>> = vec![None];
    for r in old_r.iter().chain(&new_r) {
        let r = Some((*r).to_owned());
        if !localities.contains(&r) {
            localities.push(r);
        }
    }

    let mut categories = Vec::new();
    for (oc, cat) in old.categories() {
        let Some(nc) = new.category_by_id(cat.id()) else {
            continue;
        };
        let mut features = gate_names(old, oc);
        for f in gate_names(new, nc) {
            if !features.contains(&f) {
                features.push(f);
            }
        }
        let mut changes = Vec::new();
        for locality in &localities {
            for strict in [false, true] {
                if strict && locality.is_none() {
                    continue;
                }
                for enabled in feature_names_sets(&features) {
                    let kind = TenantKind {
                        locality: locality.clone(),
                        strict,
                        features: enabled,
                        migrating_from: None,
                    };
                    let (o, n) = (outcome(old, &kind, oc), outcome(new, &kind, nc));
                    // No tenant of a kind the old policy refuses (a locality
                    // in an added region) exists yet: nothing of it moves.
                    if !o.same_placement(&n) && !matches!(o, Outcome::Invalid { .. }) {
                        changes.push(PlacementChange {
                            category: cat.id().to_owned(),
                            kind,
                            old: o,
                            new: n,
                        });
                    }
                }
            }
        }
        if !changes.is_empty() {
            categories.push(CategoryChanges {
                category: cat.id().to_owned(),
                features,
                changes,
            });
        }
    }

    PolicyDiff {
        old_version: old.version().to_owned(),
        new_version: new.version().to_owned(),
        regions_added: missing(&new_r, &old_r),
        regions_removed: missing(&old_r, &new_r),
        categories_added: missing(&new_c, &old_c),
        categories_removed: missing(&old_c, &new_c),
        features_added: missing(&new_f, &old_f),
        features_removed: missing(&old_f, &new_f),
        categories,
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {} → {}", self.old_version, self.new_version)?;
        for (what, list) in [
            ("regions added", &self.regions_added),
            ("regions removed", &self.regions_removed),
            ("categories added", &self.categories_added),
            ("categories removed", &self.categories_removed),
            ("features added", &self.features_added),
            ("features removed", &self.features_removed),
        ] {
            if !list.is_empty() {
                writeln!(f, "{what}: {}", list.join(", "))?;
            }
        }
        if self.categories.is_empty() {
            return writeln!(f, "no placement changes");
        }
        // A kind of a gated category says which gates it has, even none.
        let kind_str = |group: &CategoryChanges, kind: &TenantKind| {
            let mut s = kind.to_string();
            if !group.features.is_empty() && kind.features.is_empty() {
                s.push_str(" features=[]");
            }
            s
        };
        let rows: Vec<(&str, String, String)> = self
            .categories
            .iter()
            .flat_map(|g| {
                g.changes.iter().map(move |ch| {
                    (
                        ch.category.as_str(),
                        kind_str(g, &ch.kind),
                        format!("{} → {}", ch.old, ch.new),
                    )
                })
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
        let w1 = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max(11);
        writeln!(f, "{:w0$}  {:w1$}  old → new", "category", "tenant kind")?;
        for (c, k, change) in rows {
            writeln!(f, "{c:w0$}  {k:w1$}  {change}")?;
        }
        Ok(())
    }
}
