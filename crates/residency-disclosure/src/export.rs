//! Exports: the bulk-transfer limits, and the manifest written with the objects.
//!
//! "In no event will any Group Member transfer Personal Information to a
//! Requesting Authority in a massive, disproportionate, and indiscriminate
//! manner that goes beyond what is necessary in a democratic society."
//! A whole-tenant or wildcard scope is never exported; a scope over a limit
//! is exported only when that limit is raised explicitly, with a reason, by
//! two different privacy team members (the one exporting and a second
//! approver). Across requests, one authority's exports in a half year are
//! capped (`max_authority_objects`, `max_authority_bytes`), so that many
//! narrow requests do not add up to a bulk transfer.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::request::Scope;

/// The bounds of one export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Objects at most (default 100).
    pub max_objects: u64,
    /// Bytes at most (default 1 GiB).
    pub max_bytes: u64,
    /// Distinct data categories at most (default 3), classified by the
    /// policy's key rules.
    pub max_categories: u64,
    /// Objects at most exported to one authority (name and country) per
    /// half year, over all its requests and tenants (default 1000).
    pub max_authority_objects: u64,
    /// Bytes at most exported to one authority per half year (default 10 GiB).
    pub max_authority_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 100,
            max_bytes: 1 << 30,
            max_categories: 3,
            max_authority_objects: 1000,
            max_authority_bytes: 10 << 30,
        }
    }
}

/// One of the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// Number of objects.
    Objects,
    /// Total bytes.
    Bytes,
    /// Distinct categories.
    Categories,
    /// Objects exported to one authority per half year.
    AuthorityObjects,
    /// Bytes exported to one authority per half year.
    AuthorityBytes,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 5] = [
        Limit::Objects,
        Limit::Bytes,
        Limit::Categories,
        Limit::AuthorityObjects,
        Limit::AuthorityBytes,
    ];

    /// `objects`, `bytes` or `categories`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Objects => "objects",
            Limit::Bytes => "bytes",
            Limit::Categories => "categories",
            Limit::AuthorityObjects => "authority_objects",
            Limit::AuthorityBytes => "authority_bytes",
        }
    }

    /// This limit's value in `limits`.
    pub fn of(self, limits: &Limits) -> u64 {
        match self {
            Limit::Objects => limits.max_objects,
            Limit::Bytes => limits.max_bytes,
            Limit::Categories => limits.max_categories,
            Limit::AuthorityObjects => limits.max_authority_objects,
            Limit::AuthorityBytes => limits.max_authority_bytes,
        }
    }

    pub(crate) fn set(self, limits: &mut Limits, v: u64) {
        match self {
            Limit::Objects => limits.max_objects = v,
            Limit::Bytes => limits.max_bytes = v,
            Limit::Categories => limits.max_categories = v,
            Limit::AuthorityObjects => limits.max_authority_objects = v,
            Limit::AuthorityBytes => limits.max_authority_bytes = v,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit raised for one export: `objects=500`, `bytes=2GiB`, `categories=4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRaise {
    /// Which limit.
    pub limit: Limit,
    /// Its new value.
    pub to: u64,
}

impl FromStr for LimitRaise {
    type Err = String;
    fn from_str(s: &str) -> Result<LimitRaise, String> {
        let bad = || format!("{s:?} is not a limit like objects=500, bytes=2GiB or categories=4");
        let (name, value) = s.split_once('=').ok_or_else(bad)?;
        let limit = Limit::ALL
            .into_iter()
            .find(|l| l.as_str() == name.trim())
            .ok_or_else(bad)?;
        let value = value.trim();
        let (digits, unit) = value
            .find(|c: char| !c.is_ascii_digit())
            .map_or((value, ""), |i| value.split_at(i));
        let mult: u64 = match (limit, unit) {
            (_, "") => 1,
            (Limit::Bytes | Limit::AuthorityBytes, "KiB") => 1 << 10,
            (Limit::Bytes | Limit::AuthorityBytes, "MiB") => 1 << 20,
            (Limit::Bytes | Limit::AuthorityBytes, "GiB") => 1 << 30,
            (Limit::Bytes | Limit::AuthorityBytes, "TiB") => 1 << 40,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let to = n.checked_mul(mult).ok_or_else(bad)?;
        Ok(LimitRaise { limit, to })
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The export directory: created, or empty.
    pub dir: PathBuf,
    /// Limits raised for this export.
    pub raises: Vec<LimitRaise>,
    /// Why the limits are raised (required with `raises`).
    pub reason: Option<String>,
    /// Who exports (recorded when there is no signer).
    pub by: String,
    /// The privacy team member exporting: required.
    pub signer: Option<crate::signing::Signer>,
}

/// One exported object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// The key within the tenant (`tickets/1.json`).
    pub key: String,
    /// The region it was read from.
    pub region: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 (hex) of its bytes.
    pub sha256: String,
    /// Its last-modified time (RFC 3339).
    pub last_modified: String,
    /// Its category (`unclassified` when no rule places it).
    pub category: String,
    /// The file, relative to the export directory (`objects/<key>`).
    pub file: String,
}

/// `manifest.json` of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The request id.
    pub request: String,
    /// The tenant.
    pub tenant: String,
    /// When (RFC 3339).
    pub exported_at: String,
    /// Who.
    pub exported_by: String,
    /// The scope of the request.
    pub scope: Scope,
    /// The limits that applied (raised ones included).
    pub limits: Limits,
    /// The objects, in key order.
    pub objects: Vec<ManifestObject>,
    /// Keys named in the scope that no region holds.
    pub missing: Vec<String>,
    /// Number of objects.
    pub total_objects: u64,
    /// Sum of their sizes.
    pub total_bytes: u64,
    /// The distinct categories.
    pub categories: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_parse() {
        let r: LimitRaise = "objects=500".parse().unwrap();
        assert_eq!((r.limit, r.to), (Limit::Objects, 500));
        let r: LimitRaise = "bytes=2GiB".parse().unwrap();
        assert_eq!(r.to, 2 << 30);
        assert!("objects=5GiB".parse::<LimitRaise>().is_err());
        assert!("files=5".parse::<LimitRaise>().is_err());
        assert!("objects".parse::<LimitRaise>().is_err());
    }
}
