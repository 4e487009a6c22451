//! The adequacy table: which authorities' countries lift the hold.
//!
//! Seed (Government Data Request Policy, 4.2.1): "If the Requesting
//! Authority is in a country that does not provide an adequate level of
//! protection for the personal information in accordance with applicable
//! data protection laws, then Zendesk will also put the request on hold to
//! notify and consult with the competent data protection authorities".
//!
//! The table ships as data (`data/adequacy.toml`): the EEA members and the
//! countries with an EU adequacy decision, each with what the decision
//! covers. Only a decision that covers the country as a whole (`full`) lifts
//! the hold; a partial one (Canada's, commercial organisations; the United
//! States', DPF-certified organisations) does not cover an authority.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::DisclosureError;

/// What an adequacy decision covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Covers {
    /// The country as a whole.
    Full,
    /// Only commercial organisations under a sector law (Canada, PIPEDA).
    Commercial,
    /// Only organisations certified under the EU-US Data Privacy Framework.
    DpfCertified,
}

/// One adequacy decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The country's name.
    pub name: String,
    /// The Commission decision.
    pub decision: String,
    /// What it covers.
    pub covers: Covers,
    /// Why a partial decision does not cover an authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The table: EEA members and adequacy decisions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adequacy {
    /// When the table was last checked.
    pub as_of: String,
    /// Where it comes from.
    pub source: String,
    /// The EEA member countries.
    pub eea: BTreeSet<String>,
    /// Countries with a decision, by ISO 3166-1 alpha-2 code.
    #[serde(default)]
    pub adequate: BTreeMap<String, Decision>,
}

/// Why a request is, or is not, held for consultation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The authority's country.
    pub country: String,
    /// Whether the request must be put on hold and the competent data
    /// protection authority consulted before anything is disclosed.
    pub consult: bool,
    /// Why, in words (the table's entry or its absence).
    pub reason: String,
}

/// The table shipped with the crate.
pub(crate) const BUILTIN: &str = include_str!("../data/adequacy.toml");

impl Adequacy {
    /// The shipped table.
    pub fn builtin() -> Adequacy {
        Adequacy::from_toml(BUILTIN).expect("the shipped adequacy table is valid")
    }

    /// Parses a table.
    ///
    /// # Errors
    /// `Invalid` for malformed TOML or a code that is not two upper-case letters.
    pub fn from_toml(source: &str) -> Result<Adequacy, DisclosureError> {
        let t: Adequacy = toml::from_str(source)
            .map_err(|e| DisclosureError::Invalid(format!("adequacy table: {e}")))?;
        for c in t.eea.iter().chain(t.adequate.keys()) {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(DisclosureError::Invalid(format!(
                    "adequacy table: {c:?} is not an ISO 3166-1 alpha-2 code"
                )));
            }
        }
        Ok(t)
    }

    /// Whether `country` is an EEA member.
    pub fn is_eea(&self, country: &str) -> bool {
        self.eea.contains(&country.to_ascii_uppercase())
    }

    /// Whether a request from an authority in `country` for data hosted in
    /// the EEA (`eea_hosted`) must be held for consultation, and why.
    pub fn assess(&self, country: &str, eea_hosted: bool) -> Assessment {
        let country = country.trim().to_ascii_uppercase();
        let (consult, reason) = if !eea_hosted {
            (
                false,
                "the data in scope is not hosted in the EEA".to_owned(),
            )
        } else if self.is_eea(&country) {
            (false, format!("{country} is in the EEA"))
        } else {
            match self.adequate.get(&country) {
                Some(d) if d.covers == Covers::Full => (
                    false,
                    format!("{} has an EU adequacy decision ({})", d.name, d.decision),
                ),
                Some(d) => (
                    true,
                    format!(
                        "the EU adequacy decision for {} ({}) covers {} only{}: held to consult the competent data protection authority",
                        d.name,
                        d.decision,
                        match d.covers {
                            Covers::Commercial => "commercial organisations",
                            Covers::DpfCertified => "organisations certified under the Data Privacy Framework",
                            Covers::Full => "the country",
                        },
                        d.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                ),
                None => (
                    true,
                    format!(
                        "{country} is outside the EEA and has no EU adequacy decision: held to consult the competent data protection authority"
                    ),
                ),
            }
        };
        Assessment {
            country,
            consult,
            reason,
        }
    }
}
