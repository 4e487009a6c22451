//! What a decision does not say by itself: copies hosted outside the tenant's
//! locality by a sub-processor or by an enabled feature, and where the product
//! assumes what the hosting policy does not say.
//!
//! Computed on demand for `explain`, `policy show` and reports (they
//! allocate); the per-request decision stays allocation-free.

use std::fmt;

use crate::category::{CategoryId, FeatureId};
use crate::decision::Decision;
use crate::policy::{FeatureExport, Policy, SubProcessor};
use crate::reason::DenyReason;
use crate::region::RegionId;
use crate::ruleset::Ruleset;
use crate::tenant::TenantId;

/// Why a tenant without the Data Center Location add-on is hosted in the
/// default region: the product's assumption, not the hosting policy's word.
pub const DEFAULT_REGION_ASSUMPTION: &str = "product assumption, not the hosting policy's word: the policy says where data is hosted only for tenants with the Data Center Location add-on; tenants without it are placed in the policy file's default_region";

/// Something a decision's region alone does not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    /// The tenant has no locality add-on: its region is the product's
    /// assumption ([`DEFAULT_REGION_ASSUMPTION`]).
    DefaultRegionAssumption {
        /// The default region.
        region: RegionId,
    },
    /// A sub-processor hosts its own copy of the category outside the
    /// tenant's locality (Residency does not store it).
    SubProcessorCopy {
        /// The sub-processor.
        sub_processor: &'a SubProcessor,
        /// The category.
        category: CategoryId,
    },
    /// An enabled feature copies (part of) the category's data to another
    /// region.
    FeatureExport {
        /// The export.
        export: &'a FeatureExport,
        /// The category.
        category: CategoryId,
    },
}

impl Note<'_> {
    /// Whether the note is a warning: a copy outside the tenant's locality.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Note::DefaultRegionAssumption { .. })
    }

    /// A one-line human text.
    pub fn display<'p>(&'p self, policy: &'p Policy) -> impl fmt::Display + 'p {
        NoteText { note: self, policy }
    }
}

struct NoteText<'a> {
    note: &'a Note<'a>,
    policy: &'a Policy,
}

impl fmt::Display for NoteText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.policy;
        match *self.note {
            Note::DefaultRegionAssumption { region } => write!(
                f,
                "tenant has no Data Center Location add-on: region {} is a {DEFAULT_REGION_ASSUMPTION}",
                p.region(region).id()
            ),
            Note::SubProcessorCopy {
                sub_processor: s,
                category,
            } => {
                write!(
                    f,
                    "{} also hosts {} in {}, outside the tenant's locality (a third-party copy Residency does not store)",
                    s.name(),
                    p.category(category).id(),
                    s.hosts_in().join(", ")
                )?;
                if let Some(seed) = s.seed() {
                    write!(f, ": \"{seed}\"")?;
                }
                Ok(())
            }
            Note::FeatureExport { export, category } => {
                let to = p.region(export.to());
                write!(
                    f,
                    "feature {} is enabled: {} of {} are copied to {} ({})",
                    p.feature_name(export.feature()),
                    export.what().unwrap_or("data"),
                    p.category(category).id(),
                    to.id(),
                    to.jurisdiction()
                )?;
                if let Some(seed) = export.seed() {
                    write!(f, ": \"{seed}\"")?;
                }
                Ok(())
            }
        }
    }
}

impl Decision {
    /// The category the decision placed or refused to place (none when the
    /// payload could not be classified, or its labels conflict).
    pub fn category(&self) -> Option<CategoryId> {
        match *self {
            Decision::Allow(p) => Some(p.category),
            Decision::Deny(
                DenyReason::FeatureDisabled { category, .. }
                | DenyReason::OutOfLocality { category },
            ) => Some(category),
            Decision::Deny(_) => None,
        }
    }
}

impl Policy {
    /// The exports that enabling `feature` starts for a tenant whose data
    /// lives in `home`: those that copy data to another region.
    pub fn exports_leaving(
        &self,
        feature: FeatureId,
        home: RegionId,
    ) -> impl Iterator<Item = &FeatureExport> {
        self.feature_exports()
            .iter()
            .filter(move |e| e.feature() == feature && e.to() != home)
    }
}

impl Ruleset {
    /// The notes for a tenant's decision about `category` (or for the tenant
    /// alone when `category` is `None`): the default-region assumption for a
    /// tenant without the add-on, sub-processor copies outside its locality,
    /// and exports of enabled features out of it.
    pub fn notes(&self, tenant: TenantId, category: Option<CategoryId>) -> Vec<Note<'_>> {
        let p = self.policy();
        let t = self.tenants().tenant(tenant);
        let mut out = Vec::new();
        let Some(home) = t.locality() else {
            out.push(Note::DefaultRegionAssumption {
                region: p.default_region(),
            });
            return out;
        };
        let Some(category) = category else {
            return out;
        };
        for s in p.sub_processors_of(category) {
            if s.outside(p.region(home)) {
                out.push(Note::SubProcessorCopy {
                    sub_processor: s,
                    category,
                });
            }
        }
        for f in t.features().iter() {
            for e in p.exports_leaving(f, home) {
                if e.categories().contains(&category) {
                    out.push(Note::FeatureExport {
                        export: e,
                        category,
                    });
                }
            }
        }
        out
    }

    /// The notes for a decision (see [`Ruleset::notes`]); none for an unknown
    /// tenant.
    pub fn decision_notes(&self, tenant: &str, decision: &Decision) -> Vec<Note<'_>> {
        match self.tenants().get(tenant) {
            Some(t) => self.notes(t, decision.category()),
            None => Vec::new(),
        }
    }
}
