//! One object per key per tenant: which regions may hold another copy of a
//! key, and which copy a read sees when two exist.
//!
//! A write placed by a label (explicit category) or a content type may land
//! in another region than the key's current copy. The dispatch then looks for
//! older copies in the regions named by [`older_copy_regions`] before writing
//! (a region that cannot answer fails the write, 503, before anything
//! changed), writes, removes the older copies, and only then acknowledges.
//! A write placed by a key rule always lands in the same region for a tenant
//! and looks nowhere else (no extra backend call).
//!
//! When two copies do exist (a crash between the write and the removal, or a
//! removal that failed and was answered with an error), every read picks the
//! same one: the copy in the first region of [`Policy::read_regions`] for
//! that key, which is the order GET and HEAD try. A listing that finds a key
//! in two regions keeps that copy too ([`preferred`]), so its size matches GET.
//! See docs/policy-authoring.md ("One object per key").

use residency_policy::{
    ClassifiedBy, Decision, OnConflict, Policy, RegionId, RegionOrder, RegionSet, Tenant,
};

/// Whether a key rule fixes `key`'s placement: every write of it lands in the
/// region of that rule's category (an explicit label either names the same
/// category or is denied or overruled), so no write can move it. Not so under
/// `on_conflict = "explicit"`, where a label overrides the key rule.
pub(crate) fn key_rule_fixes(policy: &Policy, key: &str) -> bool {
    policy.on_conflict() != OnConflict::Explicit && policy.classify_key(key).is_some()
}

/// Every region where the current rules could place `key` for `tenant`, by
/// any label, content type or default: the regions a copy of it could have
/// been written to under these rules.
pub(crate) fn placeable_regions(policy: &Policy, tenant: &Tenant, key: &str) -> RegionSet {
    if policy.on_conflict() != OnConflict::Explicit {
        if let Some(class) = policy.classify_key(key) {
            return match policy.place(tenant, class) {
                Decision::Allow(p) => RegionSet::EMPTY.with(p.region),
                Decision::Deny(_) => RegionSet::EMPTY,
            };
        }
    }
    policy.placeable_regions(tenant)
}

/// The regions a write of `key` into `target` must look in for an older copy
/// (in read order): none for a write placed by a key rule; otherwise every
/// region other than `target` that the tenant reads from and where the rules
/// could have placed this key. A region the tenant's policy could never place
/// the key in is not looked at, so its outage does not fail the write.
pub(crate) fn older_copy_regions(
    policy: &Policy,
    tenant: &Tenant,
    key: &str,
    target: RegionId,
    classified_by: Option<ClassifiedBy>,
) -> RegionOrder {
    let mut out = RegionOrder::default();
    let by_key_rule = matches!(
        classified_by,
        Some(ClassifiedBy::KeyRule(_) | ClassifiedBy::CategoryBackup)
    );
    let explicit_wins = policy.on_conflict() == OnConflict::Explicit;
    if (by_key_rule && !explicit_wins) || key_rule_fixes(policy, key) {
        return out;
    }
    let placeable = placeable_regions(policy, tenant, key);
    for r in policy.read_order(tenant).iter() {
        if r != target && placeable.contains(r) {
            out.push(r);
        }
    }
    out
}

/// Of two copies of `key` found in regions `a` and `b`, the one reads see:
/// the first in the key's read order (GET and HEAD stop there).
pub(crate) fn preferred(
    policy: &Policy,
    tenant: &Tenant,
    key: &str,
    a: RegionId,
    b: RegionId,
) -> RegionId {
    for r in policy.read_regions(tenant, key).iter() {
        if r == a || r == b {
            return r;
        }
    }
    a
}
