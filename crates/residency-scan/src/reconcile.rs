//! One stored key against the current policy and its tenant's record: a pure
//! function, so that every rule of the scan is tested without a bucket.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use residency_policy::{
    CategoryId, Decision, DenyReason, OnConflict, Policy, RegionId, RegionSet, Tenant,
    CATEGORY_HEADER,
};

use crate::finding::FindingKind;

/// What a key of a region's bucket is, by its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// `<tenant>/<key>`: a tenant's object.
    Object { tenant: &'a str, key: &'a str },
    /// `_audit/`, `_migrations/`, `_disclosure/`: an internal record.
    Record {
        kind: RecordKind,
        /// `None` for records shared by every tenant (disclosure reports).
        tenant: Option<Cow<'a, str>>,
    },
    /// A key under another `_` folder: nothing Residency writes.
    UnknownInternal,
    /// A key without a `/`: no tenant namespace.
    NoTenant,
}

/// The internal records Residency stores beside the tenants' objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// `_audit/<tenant, percent-encoded>/...`: hash-chained audit batches,
    /// stored in the region of the objects they describe.
    Audit,
    /// `_migrations/<tenant>/...`: migration journals, in the destination.
    Migration,
    /// `_disclosure/<tenant>/...`: the disclosure ledger, in the home region.
    Disclosure,
    /// `_disclosure/_reports/...`: transparency reports (no tenant).
    DisclosureReports,
    /// `_attestations/<tenant>/...`: signed statements, in the home region.
    Attestation,
}

impl RecordKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            RecordKind::Audit => "audit batch",
            RecordKind::Migration => "migration journal",
            RecordKind::Disclosure => "disclosure ledger",
            RecordKind::DisclosureReports => "disclosure report",
            RecordKind::Attestation => "attestation",
        }
    }
}

/// Splits a bucket key into what it stores.
pub(crate) fn parse_key(key: &str) -> Stored<'_> {
    let Some((first, rest)) = key.split_once('/') else {
        return Stored::NoTenant;
    };
    let segment = |rest: &str| rest.split_once('/').map(|(t, _)| t.to_owned());
    match first {
        "_audit" => match rest.split_once('/') {
            Some((seg, _)) => Stored::Record {
                kind: RecordKind::Audit,
                tenant: Some(decode_segment(seg)),
            },
            None => Stored::UnknownInternal,
        },
        "_attestations" => match segment(rest) {
            Some(t) => Stored::Record {
                kind: RecordKind::Attestation,
                tenant: Some(Cow::Owned(t)),
            },
            None => Stored::UnknownInternal,
        },
        "_migrations" => match segment(rest) {
            Some(t) => Stored::Record {
                kind: RecordKind::Migration,
                tenant: Some(Cow::Owned(t)),
            },
            None => Stored::UnknownInternal,
        },
        "_disclosure" => match rest.split_once('/') {
            Some(("_reports", _)) => Stored::Record {
                kind: RecordKind::DisclosureReports,
                tenant: None,
            },
            Some((t, _)) => Stored::Record {
                kind: RecordKind::Disclosure,
                tenant: Some(Cow::Owned(t.to_owned())),
            },
            None => Stored::UnknownInternal,
        },
        f if f.starts_with('_') => Stored::UnknownInternal,
        tenant => Stored::Object { tenant, key: rest },
    }
}

/// The tenant id an `_audit/` segment names (the writer percent-encodes it).
fn decode_segment(seg: &str) -> Cow<'_, str> {
    match seg {
        "%" => Cow::Borrowed(""),
        s => percent_decode_str(s).decode_utf8_lossy(),
    }
}

/// Whether the object's stored metadata (content type, explicit category)
/// can change its classification: no key rule classifies the key, or an
/// explicit category wins over key rules. Only then is the object HEADed.
pub(crate) fn needs_metadata(policy: &Policy, key: &str) -> bool {
    policy.on_conflict() == OnConflict::Explicit || policy.classify_key(key).is_none()
}

/// The migration state of a tenant as far as one region is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MigrationView {
    /// The region is not a migration source of the tenant.
    None,
    /// The region is the source of the tenant's open migration, still within
    /// its assurance window (or not yet verified): old copies belong here.
    Open,
    /// The region is the source of a migration whose window has passed
    /// without `--finish` (the one-line reason says since when).
    Overdue(String),
    /// The region is the source of a finished migration.
    Finished,
}

/// The verdict on one object or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Where it belongs.
    InPlace { category: Option<CategoryId> },
    /// Reported.
    Finding {
        kind: FindingKind,
        category: Option<CategoryId>,
        expected: Option<RegionId>,
        reason: String,
    },
}

fn finding(
    kind: FindingKind,
    category: Option<CategoryId>,
    expected: Option<RegionId>,
    reason: String,
) -> Verdict {
    Verdict::Finding {
        kind,
        category,
        expected,
        reason,
    }
}

/// A tenant's object `key` (without the tenant prefix) found in `region`,
/// with its stored content type and explicit category (when it was HEADed).
pub(crate) fn object(
    policy: &Policy,
    tenant: &Tenant,
    region: RegionId,
    key: &str,
    content_type: Option<&str>,
    explicit: Option<&str>,
    migration: &MigrationView,
) -> Verdict {
    let rname = |r: RegionId| policy.region(r).id();
    let cname = |c: CategoryId| policy.category(c).id();
    let t = tenant.id();
    let decision = policy.decide(tenant, key, explicit, content_type);
    let (category, expected) = match decision {
        Decision::Allow(p) if p.region == region => {
            return Verdict::InPlace {
                category: Some(p.category),
            }
        }
        Decision::Allow(p) => (Some(p.category), Some(p.region)),
        Decision::Deny(DenyReason::FeatureDisabled { category, feature }) => {
            return finding(
                FindingKind::FeatureRemoved,
                Some(category),
                None,
                format!(
                    "{} needs the feature {}, which tenant {t} does not have: the policy allows it in no region",
                    cname(category),
                    policy.feature_name(feature)
                ),
            )
        }
        Decision::Deny(DenyReason::OutOfLocality { category }) => {
            let locality = tenant.locality().map_or("-", rname);
            let kind = if tenant.locality() == Some(region) {
                FindingKind::Misplaced
            } else {
                FindingKind::StrictOutsideLocality
            };
            return finding(
                kind,
                Some(category),
                None,
                format!(
                    "tenant {t} is strict to {locality} and {} may not be hosted there: no region allows it, found in {}",
                    cname(category),
                    rname(region)
                ),
            );
        }
        Decision::Deny(r) => {
            let why = match r {
                DenyReason::UnknownCategory => format!(
                    "its stored category {:?} is not declared by the policy",
                    explicit.unwrap_or("")
                ),
                DenyReason::CategoryConflict { explicit, by_key } => format!(
                    "its stored category {} contradicts the key rule's {}",
                    cname(explicit),
                    cname(by_key)
                ),
                _ => format!(
                    "no key rule matches, and neither a stored category nor the content type {:?} classifies it",
                    content_type.unwrap_or("")
                ),
            };
            return finding(FindingKind::Unclassifiable, None, None, why);
        }
    };
    let category_label = category.map_or("?", cname);
    let expected_label = expected.map_or("-", rname);
    match migration {
        MigrationView::Open => return Verdict::InPlace { category },
        MigrationView::Overdue(since) => {
            return finding(
                FindingKind::MigrationLeftover,
                category,
                expected,
                format!(
                    "old copy of {category_label} left in {} by tenant {t}'s migration to {expected_label}: {since}",
                    rname(region)
                ),
            )
        }
        MigrationView::Finished => {
            return finding(
                FindingKind::MigrationLeftover,
                category,
                expected,
                format!(
                    "old copy of {category_label} left in {} after tenant {t}'s migration (now in {expected_label}) finished",
                    rname(region)
                ),
            )
        }
        MigrationView::None => {}
    }
    if tenant.is_strict() && tenant.locality().is_some_and(|l| l != region) {
        return finding(
            FindingKind::StrictOutsideLocality,
            category,
            expected,
            format!(
                "tenant {t} is strict to {expected_label}: its {category_label} is in {}",
                rname(region)
            ),
        );
    }
    finding(
        FindingKind::Misplaced,
        category,
        expected,
        format!(
            "{category_label} of tenant {t} belongs in {expected_label}, found in {}",
            rname(region)
        ),
    )
}

/// [`object`] decided from the object's stored headers (its content type
/// and `x-amz-meta-residency-category`), as a HEAD returned them.
pub(crate) fn object_as_stored(
    policy: &Policy,
    tenant: &Tenant,
    region: RegionId,
    key: &str,
    headers: &residency_store::StoredHeaders,
    migration: &MigrationView,
) -> Verdict {
    let explicit = headers
        .user_metadata
        .get(&CATEGORY_HEADER["x-amz-meta-".len()..])
        .map(String::as_str);
    object(
        policy,
        tenant,
        region,
        key,
        headers.content_type.as_deref(),
        explicit,
        migration,
    )
}

/// Every region where the current policy places some category of `tenant`:
/// where its objects, and so their audit records, may be.
pub(crate) fn data_regions(policy: &Policy, tenant: &Tenant) -> RegionSet {
    policy
        .placeable_regions(tenant)
        .with(tenant.home_region(policy))
}

/// An internal record of `tenant` (or of no tenant) found in `region`.
pub(crate) fn record(
    policy: &Policy,
    kind: RecordKind,
    tenant: Option<&Tenant>,
    region: RegionId,
    migration: &MigrationView,
) -> Verdict {
    let Some(tenant) = tenant else {
        return Verdict::InPlace { category: None };
    };
    let rname = |r: RegionId| policy.region(r).id();
    let t = tenant.id();
    let home = tenant.home_region(policy);
    let allowed = match kind {
        RecordKind::Disclosure | RecordKind::Attestation => RegionSet::EMPTY.with(home),
        RecordKind::Audit | RecordKind::Migration => data_regions(policy, tenant),
        RecordKind::DisclosureReports => return Verdict::InPlace { category: None },
    };
    if allowed.contains(region) {
        return Verdict::InPlace { category: None };
    }
    match migration {
        MigrationView::Open => Verdict::InPlace { category: None },
        MigrationView::Overdue(since) => finding(
            FindingKind::MigrationLeftover,
            None,
            Some(home),
            format!(
                "{} of tenant {t} left in {} by its migration to {}: {since}",
                kind.label(),
                rname(region),
                rname(home)
            ),
        ),
        MigrationView::Finished => finding(
            FindingKind::MigrationLeftover,
            None,
            Some(home),
            format!(
                "{} of tenant {t} left in {} after its migration to {} finished",
                kind.label(),
                rname(region),
                rname(home)
            ),
        ),
        MigrationView::None => {
            let regions: Vec<&str> = allowed.iter().map(rname).collect();
            finding(
                FindingKind::RecordOutOfPlace,
                None,
                Some(home),
                format!(
                    "{} of tenant {t} in {}, where the tenant has no data: it belongs in {}",
                    kind.label(),
                    rname(region),
                    regions.join(" or ")
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use residency_policy::Ruleset;

    const TENANTS: &str = r#"
[[tenants]]
id = "acme"
locality = "eu"

[[tenants]]
id = "strictco"
locality = "eu"
strict = true

[[tenants]]
id = "globex"
locality = "us"
"#;

    fn rules() -> Ruleset {
        let policy = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/hosting-policy.toml"
        ))
        .expect("shipped policy");
        Ruleset::from_toml(&policy, "policy", TENANTS, "tenants").expect("valid")
    }

    fn tenant<'a>(r: &'a Ruleset, id: &str) -> &'a Tenant {
        r.tenants().tenant(r.tenants().get(id).expect("tenant"))
    }

    fn region(r: &Ruleset, id: &str) -> RegionId {
        r.policy().region_by_id(id).expect("region")
    }

    fn kind(v: &Verdict) -> Option<FindingKind> {
        match v {
            Verdict::InPlace { .. } => None,
            Verdict::Finding { kind, .. } => Some(*kind),
        }
    }

    #[test]
    fn keys_are_split_by_layout() {
        assert_eq!(
            parse_key("acme/tickets/1.json"),
            Stored::Object {
                tenant: "acme",
                key: "tickets/1.json"
            }
        );
        assert_eq!(
            parse_key("_audit/a%2Fb/w1/000000000001.jsonl"),
            Stored::Record {
                kind: RecordKind::Audit,
                tenant: Some(Cow::Borrowed("a/b"))
            }
        );
        assert_eq!(
            parse_key("_migrations/acme/m1/state.json"),
            Stored::Record {
                kind: RecordKind::Migration,
                tenant: Some(Cow::Borrowed("acme"))
            }
        );
        assert_eq!(
            parse_key("_disclosure/_reports/2026-H1.json"),
            Stored::Record {
                kind: RecordKind::DisclosureReports,
                tenant: None
            }
        );
        assert_eq!(parse_key("_tmp/x"), Stored::UnknownInternal);
        assert_eq!(parse_key("_audit"), Stored::NoTenant);
        assert_eq!(parse_key("loose.txt"), Stored::NoTenant);
    }

    #[test]
    fn objects_in_their_region_pass_and_elsewhere_are_misplaced() {
        let r = rules();
        let (p, acme) = (r.policy(), tenant(&r, "acme"));
        let none = MigrationView::None;
        let ok = object(
            p,
            acme,
            region(&r, "eu"),
            "tickets/1.json",
            None,
            None,
            &none,
        );
        assert!(
            matches!(ok, Verdict::InPlace { category: Some(_) }),
            "{ok:?}"
        );
        let bad = object(
            p,
            acme,
            region(&r, "us"),
            "tickets/1.json",
            None,
            None,
            &none,
        );
        match bad {
            Verdict::Finding {
                kind,
                expected,
                reason,
                ..
            } => {
                assert_eq!(kind, FindingKind::Misplaced);
                assert_eq!(expected, Some(region(&r, "eu")));
                assert!(reason.contains("belongs in eu, found in us"), "{reason}");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn strict_tenants_and_migrations_have_their_own_kinds() {
        let r = rules();
        let p = r.policy();
        let strict = tenant(&r, "strictco");
        let v = object(
            p,
            strict,
            region(&r, "us"),
            "tickets/1.json",
            None,
            None,
            &MigrationView::None,
        );
        assert_eq!(kind(&v), Some(FindingKind::StrictOutsideLocality));
        let acme = tenant(&r, "acme");
        let us = region(&r, "us");
        let open = object(
            p,
            acme,
            us,
            "tickets/1.json",
            None,
            None,
            &MigrationView::Open,
        );
        assert_eq!(kind(&open), None);
        let over = MigrationView::Overdue("window ended 3 days ago".into());
        let v = object(p, acme, us, "tickets/1.json", None, None, &over);
        assert_eq!(kind(&v), Some(FindingKind::MigrationLeftover));
        let v = object(
            p,
            acme,
            us,
            "tickets/1.json",
            None,
            None,
            &MigrationView::Finished,
        );
        assert_eq!(kind(&v), Some(FindingKind::MigrationLeftover));
    }

    #[test]
    fn unclassifiable_objects_are_reported() {
        let r = rules();
        let acme = tenant(&r, "acme");
        let v = object(
            r.policy(),
            acme,
            region(&r, "eu"),
            "misc/blob",
            None,
            Some("no_such_category"),
            &MigrationView::None,
        );
        assert_eq!(kind(&v), Some(FindingKind::Unclassifiable));
    }

    #[test]
    fn records_belong_where_the_tenant_has_data() {
        let r = rules();
        let p = r.policy();
        let strict = tenant(&r, "strictco");
        let none = MigrationView::None;
        let eu = region(&r, "eu");
        let us = region(&r, "us");
        let ok = record(p, RecordKind::Disclosure, Some(strict), eu, &none);
        assert_eq!(kind(&ok), None);
        let bad = record(p, RecordKind::Disclosure, Some(strict), us, &none);
        assert_eq!(kind(&bad), Some(FindingKind::RecordOutOfPlace));
        let bad = record(p, RecordKind::Audit, Some(strict), us, &none);
        assert_eq!(kind(&bad), Some(FindingKind::RecordOutOfPlace));
        let shared = record(p, RecordKind::DisclosureReports, None, us, &none);
        assert_eq!(kind(&shared), None);
    }
}
