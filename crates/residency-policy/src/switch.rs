//! "All Service Data which is available for Data Locality ... can only be
//! Hosted in a single Data Locality": a tenants change may not move a
//! tenant's home region unless it records the migration that moves its data.
//!
//! A change of a tenant's locality alone sends new writes to the new region
//! and leaves every object written before in the old one: the tenant's data
//! is split across two localities, and reads of the old objects answer 404.
//! `residency migrate` is the one way to move a tenant; each tenants file it
//! writes records the move:
//!
//! | step | the tenant's entry |
//! |---|---|
//! | before | `locality = "us"` (or none: the default region) |
//! | switch | `locality = "eu"`, `migrating_from = "us"` |
//! | `--finish` | `locality = "eu"`, `migrated_from = "us"` |
//!
//! [`unrecorded_switches`] compares the tenants served now with a new file
//! and returns every tenant whose home region changes without such a record
//! (`migrating_from` or `migrated_from` naming the old home region). A reload
//! that missed the switch (the migration finished between two polls) is
//! accepted through `migrated_from`. Every source of tenants calls it: the
//! sidecar's reload, `residency check --previous`, `residency tenants set`.
//!
//! ```
//! use residency_policy::{unrecorded_switches, Policy, Tenants};
//! let policy = Policy::from_toml(r#"
//!     version = "1"
//!     default_region = "us"
//!     [regions.eu]
//!     jurisdiction = "EEA"
//!     [regions.us]
//!     jurisdiction = "US"
//!     [categories.ticket_data]
//!     allowed = ["eu", "us"]
//! "#, "policy.toml").unwrap();
//! let t = |s: &str| Tenants::from_toml(s, "tenants.toml", &policy).unwrap();
//! let now = t("[[tenants]]\nid = \"acme\"\nlocality = \"us\"\n");
//! let edited = t("[[tenants]]\nid = \"acme\"\nlocality = \"eu\"\n");
//! let switched = t("[[tenants]]\nid = \"acme\"\nlocality = \"eu\"\nmigrating_from = \"us\"\n");
//! let refused = unrecorded_switches(&policy, &now, &policy, &edited);
//! assert_eq!(refused[0].to_string(), "acme: us -> eu");
//! assert!(unrecorded_switches(&policy, &now, &policy, &switched).is_empty());
//! ```

use std::fmt;

use crate::{Policy, Tenants};

/// A tenant whose home region a tenants change moves without a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnrecordedSwitch {
    /// The tenant id.
    pub tenant: String,
    /// Its home region now (region id).
    pub from: String,
    /// Its home region in the new file.
    pub to: String,
}

impl fmt::Display for UnrecordedSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.tenant, self.from, self.to)
    }
}

/// Every tenant of both `old` and `new` whose home region (its locality, or
/// the policy's default region without one) differs, unless the new entry
/// records the move: `migrating_from` or `migrated_from` names the old home
/// region. Tenants without a locality in both files are not compared (their
/// region is the policy's default, not a choice of the tenants file); added
/// and removed tenants are not switches.
///
/// Each file is read against its own policy (a reload may change both), and
/// regions are compared by id.
pub fn unrecorded_switches(
    old_policy: &Policy,
    old: &Tenants,
    new_policy: &Policy,
    new: &Tenants,
) -> Vec<UnrecordedSwitch> {
    let mut out = Vec::new();
    for (_, n) in new.iter() {
        let Some(oid) = old.get(n.id()) else {
            continue;
        };
        let o = old.tenant(oid);
        if o.locality().is_none() && n.locality().is_none() {
            continue;
        }
        let from = old_policy.region(o.home_region(old_policy)).id();
        let to = new_policy.region(n.home_region(new_policy)).id();
        if from == to {
            continue;
        }
        let recorded = [n.migrating_from(), n.migrated_from()]
            .into_iter()
            .flatten()
            .any(|r| new_policy.region(r).id() == from);
        if !recorded {
            out.push(UnrecordedSwitch {
                tenant: n.id().to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
    }
    out
}

/// [`unrecorded_switches`] as a refusal: `Err` names the tenants (up to 5)
/// and says to use `residency migrate`.
///
/// # Errors
/// At least one tenant's home region changes without a recorded migration.
pub fn refuse_unrecorded_switches(
    old_policy: &Policy,
    old: &Tenants,
    new_policy: &Policy,
    new: &Tenants,
) -> Result<(), String> {
    let found = unrecorded_switches(old_policy, old, new_policy, new);
    let Some(first) = found.first() else {
        return Ok(());
    };
    let named = found
        .iter()
        .take(5)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let more = if found.len() > 5 { ", ..." } else { "" };
    Err(format!(
        "the new tenants file changes the locality of {} tenant(s) without a migration ({named}{more}): their data would be split across regions (\"can only be Hosted in a single Data Locality\"); move a tenant with `residency migrate --tenant {} --to {}`, which switches the tenants file itself (migrating_from = {:?})",
        found.len(),
        first.tenant,
        first.to,
        first.from
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        version = "1"
        default_region = "us"
        [regions.eu]
        jurisdiction = "EEA"
        [regions.us]
        jurisdiction = "US"
        [regions.uk]
        jurisdiction = "UK"
        [categories.ticket_data]
        allowed = ["eu", "us", "uk"]
    "#;

    fn policy() -> Policy {
        Policy::from_toml(POLICY, "policy.toml").unwrap()
    }

    fn tenants(p: &Policy, entries: &[&str]) -> Tenants {
        let src: String = entries
            .iter()
            .enumerate()
            .map(|(i, e)| format!("[[tenants]]\nid = \"ten{i}\"\n{e}\n"))
            .collect();
        Tenants::from_toml(&src, "tenants.toml", p).unwrap()
    }

    fn refused(old: &[&str], new: &[&str]) -> Vec<String> {
        let p = policy();
        unrecorded_switches(&p, &tenants(&p, old), &p, &tenants(&p, new))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_locality_change_without_a_migration_is_refused() {
        assert_eq!(
            refused(&["locality = \"us\""], &["locality = \"eu\""]),
            ["ten0: us -> eu"]
        );
        // Buying the add-on with another region than the default moves data.
        assert_eq!(refused(&[""], &["locality = \"eu\""]), ["ten0: us -> eu"]);
        // Dropping it sends the tenant back to the default region.
        assert_eq!(refused(&["locality = \"eu\""], &[""]), ["ten0: eu -> us"]);
        // A migrating_from that names another region does not record this move.
        assert_eq!(
            refused(
                &["locality = \"us\""],
                &["locality = \"eu\"\nmigrating_from = \"uk\""]
            ),
            ["ten0: us -> eu"]
        );
        // Ending a migration by hand (back to where it came from) is a switch too.
        assert_eq!(
            refused(
                &["locality = \"eu\"\nmigrating_from = \"us\""],
                &["locality = \"us\""]
            ),
            ["ten0: eu -> us"]
        );
    }

    #[test]
    fn every_step_of_residency_migrate_is_accepted() {
        let before = ["locality = \"us\""];
        let switched = ["locality = \"eu\"\nmigrating_from = \"us\""];
        let finished = ["locality = \"eu\"\nmigrated_from = \"us\""];
        assert!(refused(&before, &switched).is_empty());
        assert!(refused(&switched, &finished).is_empty());
        // A sidecar that polled before the switch and after --finish.
        assert!(refused(&before, &finished).is_empty());
        // Same from a tenant without the add-on (home: the default region).
        assert!(refused(&[""], &["locality = \"eu\"\nmigrating_from = \"us\""]).is_empty());
        // The next migration replaces migrated_from with migrating_from.
        assert!(refused(&finished, &["locality = \"uk\"\nmigrating_from = \"eu\""]).is_empty());
    }

    #[test]
    fn what_does_not_move_data_is_accepted() {
        // The add-on with the default region: the home region stays.
        assert!(refused(&[""], &["locality = \"us\""]).is_empty());
        assert!(refused(&["locality = \"us\""], &[""]).is_empty());
        // New and removed tenants, other fields.
        assert!(refused(
            &["locality = \"eu\""],
            &["locality = \"eu\"", "locality = \"us\""]
        )
        .is_empty());
        assert!(refused(
            &["locality = \"eu\"", "locality = \"us\""],
            &["locality = \"eu\""]
        )
        .is_empty());
        assert!(refused(
            &["locality = \"eu\""],
            &["locality = \"eu\"\nstrict = true"]
        )
        .is_empty());
        // A stale migrated_from does not let the tenant move again.
        assert_eq!(
            refused(
                &["locality = \"eu\"\nmigrated_from = \"us\""],
                &["locality = \"us\"\nmigrated_from = \"us\""]
            ),
            ["ten0: eu -> us"]
        );
    }

    #[test]
    fn the_refusal_names_the_tenants_and_the_command() {
        let p = policy();
        let old = tenants(&p, &["locality = \"us\""; 7]);
        let new = tenants(&p, &["locality = \"eu\""; 7]);
        let e = refuse_unrecorded_switches(&p, &old, &p, &new).unwrap_err();
        assert!(e.contains("7 tenant(s)"), "{e}");
        assert!(e.contains("ten0: us -> eu, ten1: us -> eu"), "{e}");
        assert!(e.contains(", ..."), "{e}");
        assert!(e.contains("residency migrate --tenant ten0 --to eu"), "{e}");
        assert!(refuse_unrecorded_switches(&p, &old, &p, &old).is_ok());
    }

    #[test]
    fn a_policy_change_is_compared_by_region_id() {
        // The new policy declares the regions in another order.
        let old_p = policy();
        let new_p = Policy::from_toml(
            r#"
            version = "2"
            default_region = "us"
            [regions.uk]
            jurisdiction = "UK"
            [regions.us]
            jurisdiction = "US"
            [regions.eu]
            jurisdiction = "EEA"
            [categories.ticket_data]
            allowed = ["eu", "us", "uk"]
            "#,
            "policy.toml",
        )
        .unwrap();
        let old = tenants(&old_p, &["locality = \"eu\""]);
        let new = tenants(&new_p, &["locality = \"eu\""]);
        assert!(unrecorded_switches(&old_p, &old, &new_p, &new).is_empty());
    }
}
