//! `[[shared_buckets]]`: buckets an existing multi-tenant application keeps
//! one per kind of data, with the tenant in each request rather than in the
//! bucket (addressing modes, docs/s3-compatibility.md).

use serde::Deserialize;

/// Where a shared bucket's requests name their tenant.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TenantFrom {
    /// The first segment of the key (`<tenant>/...`), or of a listing's
    /// prefix.
    Key,
    /// The header `x-residency-tenant`, signed.
    Header,
}

/// One `[[shared_buckets]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SharedBucket {
    /// The bucket's name, as clients address it (not a tenant's configured
    /// bucket, nor one a tenant created).
    pub name: String,
    /// `key` or `header`.
    pub tenant_from: TenantFrom,
    /// The category of objects written without one whose key no key rule
    /// classifies (a category of the hosting policy).
    #[serde(default)]
    pub default_category: Option<String>,
}

/// What is wrong with the entries, one sentence each.
pub(super) fn problems(
    buckets: &[SharedBucket],
    policy: &residency_policy::Policy,
    tenants: Option<&residency_policy::Tenants>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for b in buckets {
        if !residency_policy::valid_bucket(&b.name) {
            out.push(format!(
                "[[shared_buckets]] {:?} is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')",
                b.name
            ));
        }
        if !seen.insert(&b.name) {
            out.push(format!("[[shared_buckets]] {:?} is declared twice", b.name));
        }
        if let Some(t) = tenants.and_then(|t| t.by_bucket(&b.name).map(|id| t.tenant(id).id())) {
            out.push(format!(
                "[[shared_buckets]] {:?} is tenant {t}'s configured bucket",
                b.name
            ));
        }
        if let Some(c) = &b.default_category {
            if policy.category_by_id(c).is_none() {
                out.push(format!(
                    "[[shared_buckets]] {:?}: default_category {c:?} is not a category of the hosting policy",
                    b.name
                ));
            }
        }
    }
    out
}
