//! What an authority asked for: the request as recorded when it is opened.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::error::DisclosureError;

/// The kind of legal instrument, as counted in the transparency report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// A subpoena or other compulsory demand for records.
    Subpoena,
    /// A court order.
    CourtOrder,
    /// A search warrant.
    SearchWarrant,
    /// An emergency request ("imminent risk of serious harm").
    Emergency,
    /// A national-security request.
    NationalSecurity,
    /// Anything else, including informal requests ("does not have to be made
    /// in writing").
    Other,
}

impl RequestType {
    /// Every type.
    pub const ALL: [RequestType; 6] = [
        RequestType::Subpoena,
        RequestType::CourtOrder,
        RequestType::SearchWarrant,
        RequestType::Emergency,
        RequestType::NationalSecurity,
        RequestType::Other,
    ];

    /// The id used in the ledger, on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Subpoena => "subpoena",
            RequestType::CourtOrder => "court_order",
            RequestType::SearchWarrant => "search_warrant",
            RequestType::Emergency => "emergency",
            RequestType::NationalSecurity => "national_security",
            RequestType::Other => "other",
        }
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestType {
    type Err = String;
    fn from_str(s: &str) -> Result<RequestType, String> {
        let norm = s.replace('-', "_");
        RequestType::ALL
            .into_iter()
            .find(|t| t.as_str() == norm)
            .ok_or_else(|| {
                format!(
                    "unknown request type {s:?}: one of {}",
                    RequestType::ALL.map(RequestType::as_str).join(", ")
                )
            })
    }
}

/// The data a request asks for, inside one tenant.
///
/// Either specific object keys, or a narrow prefix with a time range (on the
/// objects' last-modified time), or — recorded as asked, but never exported —
/// the whole tenant. Keys and the prefix are relative to the tenant's
/// namespace (`tickets/123/comment.json`, not `acme/tickets/...`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Specific object keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The authority asked for everything the tenant holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_tenant: bool,
    /// First day (UTC, inclusive) of the objects' last-modified range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Date>,
    /// Last day (UTC, inclusive) of the objects' last-modified range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Date>,
}

/// Characters that make a key or prefix a pattern rather than a name.
const WILDCARDS: [char; 5] = ['*', '?', '[', '{', '}'];

impl Scope {
    /// Checks that the scope says what it asks for.
    ///
    /// # Errors
    /// `Invalid` for an empty scope, a prefix without a time range, an
    /// inverted range, an empty or absolute key.
    pub fn validate(&self) -> Result<(), DisclosureError> {
        let invalid = |m: &str| Err(DisclosureError::Invalid(m.to_owned()));
        if self.keys.is_empty() && self.prefix.is_none() && !self.whole_tenant {
            return invalid("the scope is empty: give object keys (--key), a prefix with a time range (--prefix --from --to), or --whole-tenant");
        }
        if self.whole_tenant && (!self.keys.is_empty() || self.prefix.is_some()) {
            return invalid("--whole-tenant cannot be combined with keys or a prefix");
        }
        if !self.keys.is_empty() && self.prefix.is_some() {
            return invalid("give either object keys or a prefix, not both");
        }
        if self.prefix.is_some() && (self.from.is_none() || self.to.is_none()) {
            return invalid("a prefix scope needs a time range: --from and --to");
        }
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f > t {
                return Err(DisclosureError::Invalid(format!(
                    "the time range is inverted: {f} is after {t}"
                )));
            }
        }
        for k in &self.keys {
            if k.is_empty() || k.starts_with('/') {
                return Err(DisclosureError::Invalid(format!(
                    "key {k:?}: keys are relative to the tenant (tickets/1.json)"
                )));
            }
        }
        Ok(())
    }

    /// Why this scope is a bulk transfer that no raised limit can allow, if
    /// it is: the whole tenant, an empty prefix, or a wildcard.
    pub fn bulk_reason(&self) -> Option<String> {
        if self.whole_tenant {
            return Some("the scope is the whole tenant".to_owned());
        }
        if let Some(p) = &self.prefix {
            if p.trim_matches('/').is_empty() {
                return Some(format!("the prefix {p:?} selects the whole tenant"));
            }
            if p.contains(WILDCARDS) {
                return Some(format!("the prefix {p:?} is a wildcard"));
            }
        }
        self.keys
            .iter()
            .find(|k| k.contains(WILDCARDS))
            .map(|k| format!("the key {k:?} is a wildcard"))
    }

    /// Whether an object last modified at `t` is inside the time range.
    pub fn in_range(&self, t: SystemTime) -> bool {
        self.from.is_none_or(|f| t >= f.start()) && self.to.is_none_or(|to| t < to.end())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.whole_tenant {
            f.write_str("whole tenant")?;
        } else if let Some(p) = &self.prefix {
            write!(f, "prefix {p}")?;
        } else {
            write!(f, "keys {}", self.keys.join(", "))?;
        }
        match (self.from, self.to) {
            (Some(a), Some(b)) => write!(f, ", modified {a}..{b}"),
            (Some(a), None) => write!(f, ", modified from {a}"),
            (None, Some(b)) => write!(f, ", modified until {b}"),
            (None, None) => Ok(()),
        }
    }
}

/// The pseudo-tenant of requests whose customer is not known (seed 4.1.2:
/// the authority "does not know the customer’s identity"). Its ledger is
/// kept in the policy's default region; nothing is exported for it.
pub const UNATTRIBUTED: &str = "_unattributed";

/// A request as received, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRequest {
    /// The tenant whose data is asked for.
    pub tenant: String,
    /// The requesting authority ("Bundeskriminalamt").
    pub authority: String,
    /// The authority's country, ISO 3166-1 alpha-2 (`DE`).
    pub country: String,
    /// The legal basis the authority cites.
    pub legal_basis: String,
    /// When the request was received.
    pub received: Date,
    /// The kind of instrument.
    pub request_type: RequestType,
    /// The data asked for.
    pub scope: Scope,
    /// Set when the law prohibits notifying the customer: the reason (the
    /// order, the statute). A flag without a reason is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_prohibited: Option<String>,
}

impl NewRequest {
    /// Checks every field; the country is upper-cased.
    ///
    /// # Errors
    /// `Invalid`, naming the first bad field.
    pub fn validate(&mut self) -> Result<(), DisclosureError> {
        let required = |v: &str, what: &str| {
            if v.trim().is_empty() {
                Err(DisclosureError::Invalid(format!("{what} is required")))
            } else {
                Ok(())
            }
        };
        required(&self.tenant, "the tenant")?;
        required(&self.authority, "the requesting authority")?;
        required(&self.legal_basis, "the legal basis")?;
        self.country = self.country.trim().to_ascii_uppercase();
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DisclosureError::Invalid(format!(
                "country {:?} is not an ISO 3166-1 alpha-2 code like DE or US",
                self.country
            )));
        }
        if let Some(reason) = &self.notice_prohibited {
            if reason.trim().is_empty() {
                return Err(DisclosureError::Invalid(
                    "a request that legally prohibits notice must carry the reason (--notice-prohibited-reason)".to_owned(),
                ));
            }
        }
        if self.tenant == UNATTRIBUTED
            && self.scope.keys.is_empty()
            && self.scope.prefix.is_none()
            && !self.scope.whole_tenant
        {
            // No customer is known, so no keys can be named.
            return Ok(());
        }
        self.scope.validate()
    }
}

/// A recorded request: what was received, with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureRequest {
    /// `<tenant>-<n>`, numbered per tenant from 1.
    pub id: String,
    /// What was received.
    #[serde(flatten)]
    pub request: NewRequest,
}

/// Splits a request id `<tenant>-<n>` into the tenant and the number.
///
/// # Errors
/// `Invalid` when the id has no `-<n>` suffix.
pub fn parse_request_id(id: &str) -> Result<(&str, u64), DisclosureError> {
    id.rsplit_once('-')
        .and_then(|(t, n)| {
            let n: u64 = n.parse().ok()?;
            (!t.is_empty() && n > 0).then_some((t, n))
        })
        .ok_or_else(|| {
            DisclosureError::Invalid(format!(
                "{id:?} is not a request id like acme-1 (<tenant>-<number>)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_request_id("acme-1").unwrap(), ("acme", 1));
        assert_eq!(parse_request_id("big-corp-12").unwrap(), ("big-corp", 12));
        assert!(parse_request_id("acme").is_err());
        assert!(parse_request_id("acme-0").is_err());
        assert!(parse_request_id("-3").is_err());
    }

    #[test]
    fn bulk_scopes() {
        let whole = Scope {
            whole_tenant: true,
            ..Scope::default()
        };
        assert!(whole.bulk_reason().is_some());
        let wild = Scope {
            keys: vec!["tickets/*".into()],
            ..Scope::default()
        };
        assert!(wild.bulk_reason().unwrap().contains("wildcard"));
        let root = Scope {
            prefix: Some("/".into()),
            ..Scope::default()
        };
        assert!(root.bulk_reason().is_some());
        let narrow = Scope {
            prefix: Some("tickets/42/".into()),
            ..Scope::default()
        };
        assert!(narrow.bulk_reason().is_none());
    }
}
