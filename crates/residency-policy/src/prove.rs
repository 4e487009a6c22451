//! An exhaustive proof of the placement invariants for one policy.
//!
//! The space that matters for placement is finite: a tenant is, as far as
//! [`Policy::place`], [`Policy::read_regions`] and [`Policy::read_order`]
//! can tell, its locality, whether it is strict, which features it enabled
//! and the region it migrates from (a [`TenantKind`]). [`prove`] runs every
//! kind × category × key shape through the real decision code and checks:
//!
//! - (a) an allowed write is placed only in a region of the category's
//!   allowed set ([`Policy::allowed_regions`]; a category that follows the
//!   locality goes to the tenant's home region);
//! - (b) a strict tenant's write is never outside its locality (it is denied
//!   rather than placed outside), and its reads never look outside its
//!   locality and the region it migrates from;
//! - (c) a denied write has a reason that holds for this tenant and category
//!   (a missing feature that gates the category, a strict tenant whose
//!   locality the category may not be hosted in), never a denial without one;
//! - and, so that the evidence is consistent: `out_of_locality` is set
//!   exactly when a write leaves the tenant's locality, and the reads of a key
//!   look in the region its write went to.
//!
//! The parser already refuses a policy whose data alone would break (a) or
//! (b) (an undeclared region, an empty allowed set, a `follows` cycle), so for
//! a parsed policy the proof checks `decide`'s code against the data: a
//! change to [`Policy::place`] or to the resolution of `follows` that placed
//! a write outside its set would be found here for the policies that ship,
//! not only for the random ones of the property tests.

use std::fmt;

use serde::Serialize;

use crate::category::{CategoryId, FeatureSet};
use crate::classifier::{Classification, ClassifiedBy, KeyRule};
use crate::decision::Decision;
use crate::policy::Policy;
use crate::reason::DenyReason;
use crate::record::TenantRecord;
use crate::region::{RegionId, RegionOrder};
use crate::tenant::{Tenant, TenantId};

/// Up to this many declared features, the kinds enable every subset of them;
/// beyond, only the features that gate some category are varied.
pub const MAX_ENUMERATED_FEATURES: usize = 12;

/// A class of tenants that placement cannot tell apart, by name (so that the
/// kinds of two policies compare).
///
/// Prints as `no locality`, `locality=eu strict features=[insights]`,
/// `locality=us migrating_from=eu`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TenantKind {
    /// The selected region (`None`: no locality add-on).
    pub locality: Option<String>,
    /// Never outside the locality (only with a locality).
    pub strict: bool,
    /// The enabled features, in the policy's declaration order.
    pub features: Vec<String>,
    /// The region a migration in progress moves the data away from.
    pub migrating_from: Option<String>,
}

impl TenantKind {
    /// Every tenant kind of `policy`: locality ∈ {none} ∪ regions, strict
    /// (only with a locality), features ⊆ the declared features, and
    /// migrating_from ∈ {none} ∪ regions other than the locality.
    ///
    /// Features: with at most [`MAX_ENUMERATED_FEATURES`] declared, every
    /// subset. With more, only the features that gate some category
    /// ([`Policy::feature_gates`]) are varied, since no decision looks at the
    /// others; should those still be more than [`MAX_ENUMERATED_FEATURES`],
    /// the subsets of each category's own gates (placement of a category
    /// depends on its gates only, so the proof stays exact). The space is
    /// ((1 + R) + 2·R²)·F kinds for R regions and F feature sets.
    pub fn space(policy: &Policy) -> Vec<TenantKind> {
        let regions: Vec<&str> = policy.regions().map(|(_, r)| r.id()).collect();
        let feature_sets = feature_sets(policy);
        let mut kinds = Vec::new();
        for locality in std::iter::once(None).chain(regions.iter().map(|r| Some(*r))) {
            for strict in [false, true] {
                if strict && locality.is_none() {
                    continue;
                }
                for features in &feature_sets {
                    let migrations = std::iter::once(None).chain(
                        regions
                            .iter()
                            .filter(|r| Some(**r) != locality)
                            .map(|r| Some(*r)),
                    );
                    for migrating_from in migrations {
                        kinds.push(TenantKind {
                            locality: locality.map(str::to_owned),
                            strict,
                            features: features
                                .iter()
                                .map(|f| policy.feature_name(f).to_owned())
                                .collect(),
                            migrating_from: migrating_from.map(str::to_owned),
                        });
                    }
                }
            }
        }
        kinds
    }

    /// The kind's directory record (tenant id `tenant-kind`).
    pub fn record(&self) -> TenantRecord {
        TenantRecord {
            id: "tenant-kind".to_owned(),
            locality: self.locality.clone(),
            strict: self.strict,
            features: self.features.clone(),
            bucket: None,
            migrating_from: self.migrating_from.clone(),
            migrated_from: None,
        }
    }

    /// The kind as a [`Tenant`] of `policy`, through [`TenantRecord::validate`].
    ///
    /// # Errors
    /// The validation's reasons: a region or feature `policy` does not declare.
    pub fn tenant(&self, policy: &Policy) -> Result<Tenant, Vec<String>> {
        self.record().validate(policy, TenantId::new(0))
    }
}

impl fmt::Display for TenantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.locality {
            None => f.write_str("no locality")?,
            Some(l) => write!(f, "locality={l}")?,
        }
        if self.strict {
            f.write_str(" strict")?;
        }
        if !self.features.is_empty() {
            write!(f, " features=[{}]", self.features.join(", "))?;
        }
        if let Some(m) = &self.migrating_from {
            write!(f, " migrating_from={m}")?;
        }
        Ok(())
    }
}

/// Every subset of `features`.
pub(crate) fn subsets(features: &[crate::FeatureId]) -> Vec<FeatureSet> {
    let mut sets = vec![FeatureSet::default()];
    for &f in features {
        let with: Vec<FeatureSet> = sets.iter().map(|s| s.with(f)).collect();
        sets.extend(with);
    }
    sets
}

/// The feature sets a tenant kind takes (see [`TenantKind::space`]).
fn feature_sets(policy: &Policy) -> Vec<FeatureSet> {
    let declared: Vec<crate::FeatureId> = (0..policy.features().len())
        .map(|i| crate::FeatureId(i as u8))
        .collect();
    if declared.len() <= MAX_ENUMERATED_FEATURES {
        return subsets(&declared);
    }
    let gating = policy
        .categories()
        .fold(FeatureSet::default(), |acc, (c, _)| {
            policy.feature_gates(c).iter().fold(acc, FeatureSet::with)
        });
    let gating: Vec<crate::FeatureId> = gating.iter().collect();
    if gating.len() <= MAX_ENUMERATED_FEATURES {
        return subsets(&gating);
    }
    let mut sets = Vec::new();
    for (c, _) in policy.categories() {
        let gates: Vec<crate::FeatureId> = policy.feature_gates(c).iter().collect();
        for s in subsets(&gates) {
            if !sets.contains(&s) {
                sets.push(s);
            }
        }
    }
    sets
}

/// One broken invariant: a tenant kind, a category and what went wrong, as
/// one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The tenant kind.
    pub kind: TenantKind,
    /// The category id.
    pub category: String,
    /// The region at fault, if one is.
    pub region: Option<String>,
    /// The one-line sentence (what [`fmt::Display`] prints).
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The outcome of [`prove`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    /// The policy's version label.
    pub version: String,
    /// How many tenant kinds were enumerated.
    pub kinds: usize,
    /// How many decisions were checked (writes and reads).
    pub cases: usize,
    /// Every broken invariant (empty: the policy proves clean).
    pub violations: Vec<Violation>,
}

impl Proof {
    /// Whether no invariant is broken.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(
                f,
                "policy {}: proved clean ({} cases over {} tenant kinds)",
                self.version, self.cases, self.kinds
            );
        }
        writeln!(
            f,
            "policy {}: {} violation(s) in {} cases over {} tenant kinds",
            self.version,
            self.violations.len(),
            self.cases,
            self.kinds
        )?;
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        Ok(())
    }
}

/// A key that `pattern` matches, if a simple one can be written: wildcards
/// become `x`, a class its first member, an alternation its first branch.
pub(crate) fn sample_key(rule: &KeyRule) -> Option<String> {
    let mut out = String::new();
    let mut chars = rule.pattern().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push('x');
            }
            '?' => out.push('x'),
            '\\' => out.push(chars.next()?),
            '[' => {
                let mut first = None;
                for d in chars.by_ref() {
                    if d == ']' && first.is_some() {
                        break;
                    }
                    if first.is_none() && !matches!(d, '!' | '^') {
                        first = Some(d);
                    }
                }
                out.push(first?);
            }
            '{' => {
                let mut taking = true;
                for d in chars.by_ref() {
                    match d {
                        '}' => break,
                        ',' => taking = false,
                        _ if taking => out.push(d),
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    if out.ends_with('/') {
        out.push('x');
    }
    rule.is_match(&out).then_some(out)
}

/// A way a payload reaches a category, with the key that does it (if any).
struct Shape {
    by: ClassifiedBy,
    key: Option<String>,
}

/// Every way `policy` classifies a payload into `c`: an explicit label, each
/// key rule (through a sample key, as classified by the real rules), each
/// backup prefix (`<prefix><category>/x` and `<prefix><sample key>`), each
/// content-type rule, the default category.
fn shapes(policy: &Policy, c: CategoryId) -> Vec<Shape> {
    let mut shapes = vec![Shape {
        by: ClassifiedBy::Explicit,
        key: None,
    }];
    let mut keys: Vec<String> = policy.key_rules().iter().filter_map(sample_key).collect();
    for prefix in policy.backup_prefixes() {
        keys.push(format!("{prefix}{}/x", policy.category(c).id()));
        for k in policy.key_rules().iter().filter_map(sample_key) {
            keys.push(format!("{prefix}{k}"));
        }
    }
    for key in keys {
        if let Some(class) = policy.classify_key(&key).filter(|k| k.category == c) {
            if !shapes.iter().any(|s| s.by == class.by) {
                shapes.push(Shape {
                    by: class.by,
                    key: Some(key),
                });
            }
        }
    }
    for (i, r) in policy.content_type_rules().iter().enumerate() {
        if r.category() == c {
            shapes.push(Shape {
                by: ClassifiedBy::ContentTypeRule(i),
                key: None,
            });
        }
    }
    if policy.default_category() == Some(c) {
        shapes.push(Shape {
            by: ClassifiedBy::Default,
            key: None,
        });
    }
    shapes
}

fn names(policy: &Policy, regions: impl Iterator<Item = RegionId>) -> String {
    let names: Vec<&str> = regions.map(|r| policy.region(r).id()).collect();
    format!("[{}]", names.join(", "))
}

fn shape_str(policy: &Policy, shape: &Shape) -> String {
    match (shape.by, &shape.key) {
        (ClassifiedBy::Explicit, _) => "explicit label".to_owned(),
        (ClassifiedBy::ContentTypeRule(i), _) => format!(
            "content-type rule {:?}",
            policy.content_type_rules()[i].pattern()
        ),
        (ClassifiedBy::Default, _) => "default category".to_owned(),
        (_, Some(key)) => format!("key {key:?}"),
        (by, None) => by.as_str().to_owned(),
    }
}

/// Proves the placement invariants of `policy` for every tenant kind ×
/// category × key shape (see the module documentation), by running
/// [`Policy::place`], [`Policy::read_regions`] and [`Policy::read_order`].
///
/// A kind that [`TenantRecord::validate`] refuses is itself a violation (the
/// space is built from the policy's own names, so it should never be).
pub fn prove(policy: &Policy) -> Proof {
    let kinds = TenantKind::space(policy);
    let mut proof = Proof {
        version: policy.version().to_owned(),
        kinds: kinds.len(),
        cases: 0,
        violations: Vec::new(),
    };
    let shapes: Vec<(CategoryId, Vec<Shape>)> = policy
        .categories()
        .map(|(c, _)| (c, shapes(policy, c)))
        .collect();
    for kind in &kinds {
        let tenant = match kind.tenant(policy) {
            Ok(t) => t,
            Err(reasons) => {
                proof.violations.push(Violation {
                    kind: kind.clone(),
                    category: String::new(),
                    region: None,
                    message: format!(
                        "tenant kind `{kind}` is refused by the policy: {}",
                        reasons.join("; ")
                    ),
                });
                continue;
            }
        };
        proof.cases += 1;
        check_reads(
            policy,
            kind,
            &tenant,
            None,
            &policy.read_order(&tenant),
            &mut proof.violations,
        );
        for (c, shapes) in &shapes {
            for shape in shapes {
                proof.cases += 1;
                let class = Classification {
                    category: *c,
                    by: shape.by,
                };
                let decision = policy.place(&tenant, class);
                let mut v = Check {
                    policy,
                    kind,
                    category: *c,
                    what: shape_str(policy, shape),
                    out: &mut proof.violations,
                };
                v.write(&tenant, &decision);
                if let Some(key) = &shape.key {
                    proof.cases += 1;
                    let reads = policy.read_regions(&tenant, key);
                    if let Decision::Allow(p) = decision {
                        if !reads.as_set().contains(p.region) {
                            v.push(
                                Some(p.region),
                                format!(
                                    "a read of {key:?} looks in {} but its write went to {}",
                                    names(policy, reads.iter()),
                                    policy.region(p.region).id()
                                ),
                            );
                        }
                    }
                    check_reads(policy, kind, &tenant, Some((*c, key)), &reads, v.out);
                } else if let Decision::Allow(p) = decision {
                    let reads = policy.read_order(&tenant);
                    if !reads.as_set().contains(p.region) {
                        v.push(
                            Some(p.region),
                            format!(
                                "reads look in {} but the write went to {}",
                                names(policy, reads.iter()),
                                policy.region(p.region).id()
                            ),
                        );
                    }
                }
            }
        }
    }
    proof
}

/// Invariant (b) for reads: a strict tenant's reads look only in its
/// locality and the region it migrates from.
fn check_reads(
    policy: &Policy,
    kind: &TenantKind,
    t: &Tenant,
    key: Option<(CategoryId, &str)>,
    reads: &RegionOrder,
    out: &mut Vec<Violation>,
) {
    if !t.is_strict() {
        return;
    }
    for r in reads.iter() {
        if Some(r) != t.locality() && Some(r) != t.migrating_from() {
            let (category, what) = match key {
                Some((c, k)) => (
                    policy.category(c).id().to_owned(),
                    format!("a read of {k:?} looks"),
                ),
                None => (String::new(), "its reads look".to_owned()),
            };
            out.push(Violation {
                kind: kind.clone(),
                category: category.clone(),
                region: Some(policy.region(r).id().to_owned()),
                message: format!(
                    "tenant kind `{kind}`{}: {what} in {}, outside the strict tenant's locality",
                    if category.is_empty() {
                        String::new()
                    } else {
                        format!(" × category {category}")
                    },
                    policy.region(r).id()
                ),
            });
        }
    }
}

/// The checks of one write decision.
struct Check<'a> {
    policy: &'a Policy,
    kind: &'a TenantKind,
    category: CategoryId,
    what: String,
    out: &'a mut Vec<Violation>,
}

impl Check<'_> {
    fn push(&mut self, region: Option<RegionId>, problem: String) {
        let category = self.policy.category(self.category).id();
        self.out.push(Violation {
            kind: self.kind.clone(),
            category: category.to_owned(),
            region: region.map(|r| self.policy.region(r).id().to_owned()),
            message: format!(
                "tenant kind `{}` × category {category} ({}): {problem}",
                self.kind, self.what
            ),
        });
    }

    /// Invariants (a), (b) and (c) for one write.
    fn write(&mut self, t: &Tenant, decision: &Decision) {
        let policy = self.policy;
        let c = self.category;
        let gates = policy.feature_gates(c);
        let missing = gates.iter().find(|f| !t.features().contains(*f));
        let allowed = policy.allowed_regions(c);
        match *decision {
            Decision::Allow(p) => {
                let region = policy.region(p.region).id();
                if p.category != c {
                    self.push(
                        Some(p.region),
                        format!(
                            "the write was placed as category {}",
                            policy.category(p.category).id()
                        ),
                    );
                }
                match allowed {
                    Some(set) if !set.contains(p.region) => self.push(
                        Some(p.region),
                        format!(
                            "write placed in {region}, outside the category's allowed regions {}",
                            names(policy, set.iter())
                        ),
                    ),
                    None if p.region != t.home_region(policy) => self.push(
                        Some(p.region),
                        format!(
                            "write placed in {region}, but the category follows the tenant's home region {}",
                            policy.region(t.home_region(policy)).id()
                        ),
                    ),
                    _ => {}
                }
                if t.is_strict() && Some(p.region) != t.locality() {
                    self.push(
                        Some(p.region),
                        format!("strict tenant's write placed in {region}, outside its locality"),
                    );
                }
                let outside = t.locality().is_some_and(|l| l != p.region);
                if p.out_of_locality != outside {
                    self.push(
                        Some(p.region),
                        format!(
                            "write placed in {region} with out_of_locality = {}, but it is {}the tenant's locality",
                            p.out_of_locality,
                            if outside { "outside " } else { "inside " }
                        ),
                    );
                }
                if let Some(f) = missing {
                    self.push(
                        Some(p.region),
                        format!(
                            "write placed in {region} although feature {:?}, which gates the category, is not enabled",
                            policy.feature_name(f)
                        ),
                    );
                }
            }
            Decision::Deny(reason) => {
                let holds = match reason {
                    DenyReason::FeatureDisabled { category, feature } => {
                        category == c && gates.contains(feature) && !t.features().contains(feature)
                    }
                    DenyReason::OutOfLocality { category } => {
                        category == c
                            && missing.is_none()
                            && t.is_strict()
                            && match (allowed, t.locality()) {
                                (Some(set), Some(l)) => !set.contains(l),
                                _ => false,
                            }
                    }
                    // Classification is done: none of these can hold for a
                    // classified payload of a known tenant.
                    DenyReason::UnknownTenant
                    | DenyReason::UnknownCategory
                    | DenyReason::Unclassified
                    | DenyReason::CategoryConflict { .. } => false,
                };
                if !holds {
                    self.push(
                        None,
                        format!(
                            "write denied as {} ({}), a reason that does not hold for this tenant and category",
                            reason.as_str(),
                            decision.explain_for(policy, Some(t))
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::ResolvedPlacement;
    use crate::region::RegionSet;

    const POLICY: &str = r#"
        version = "t"
        default_region = "us"
        features = ["insights"]
        backup_prefixes = ["backups/"]
        [regions.eu]
        jurisdiction = "EU"
        [regions.us]
        jurisdiction = "US"
        [categories.ticket_data]
        allowed = ["eu", "us"]
        [categories.chat_content]
        allowed = ["eu"]
        [categories.insights]
        allowed = ["us"]
        feature = "insights"
        [categories.backups_and_logs]
        follows = "locality"
        [[key_rules]]
        pattern = "chat/**"
        category = "chat_content"
        [[key_rules]]
        pattern = "{tickets,t}/*.json"
        category = "ticket_data"
        [[key_rules]]
        pattern = "backups/**"
        category = "backups_and_logs"
    "#;

    #[test]
    fn the_space_has_every_kind_once() {
        let p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let kinds = TenantKind::space(&p);
        // (none: 1 × 3 migrations + 2 regions × 2 strictness × 2 migrations) × 2 feature sets
        assert_eq!(kinds.len(), (3 + 2 * 2 * 2) * 2);
        for (i, k) in kinds.iter().enumerate() {
            assert!(!kinds[..i].contains(k));
            assert!(k.tenant(&p).is_ok(), "{k}");
        }
        let k = TenantKind {
            locality: Some("eu".into()),
            strict: true,
            features: vec!["insights".into()],
            migrating_from: None,
        };
        assert_eq!(k.to_string(), "locality=eu strict features=[insights]");
        assert_eq!(kinds[0].to_string(), "no locality");
    }

    #[test]
    fn sample_keys_match_their_rules() {
        let p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let keys: Vec<Option<String>> = p.key_rules().iter().map(sample_key).collect();
        assert_eq!(
            keys,
            [
                Some("chat/x".to_owned()),
                Some("tickets/x.json".to_owned()),
                Some("backups/x".to_owned())
            ]
        );
    }

    #[test]
    fn a_clean_policy_proves_clean() {
        let p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let proof = prove(&p);
        assert!(proof.is_clean(), "{proof}");
        assert!(proof.cases > proof.kinds * 4, "{proof}");
    }

    /// The parser refuses every policy whose data would break the
    /// invariants, so a broken one is made by hand: chat's resolved
    /// placement says "first allowed: us" while its set is {eu}, as a bug in
    /// the resolution of `follows` or in `place` would.
    #[test]
    fn a_broken_resolution_is_found() {
        let mut p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let chat = p.category_by_id("chat_content").unwrap();
        let eu = p.region_by_id("eu").unwrap();
        let us = p.region_by_id("us").unwrap();
        p.resolved_mut(chat).placement = ResolvedPlacement::Regions {
            set: RegionSet::EMPTY.with(eu),
            first: us,
        };
        let proof = prove(&p);
        assert!(!proof.is_clean());
        let first = proof
            .violations
            .iter()
            .find(|v| v.category == "chat_content")
            .unwrap();
        // Tenants without a locality: the default region us is not in {eu},
        // so they go to `first`, us.
        assert_eq!(first.kind.locality, None);
        assert_eq!(first.region.as_deref(), Some("us"));
        assert!(
            first.message.starts_with(
                "tenant kind `no locality` × category chat_content (explicit label): write placed in us, outside the category's allowed regions [eu]"
            ),
            "{}",
            first.message
        );
        for v in &proof.violations {
            assert_eq!(v.category, "chat_content", "{v}");
            assert!(!v.message.contains('\n'));
        }
        // The EU tenants with a locality in {eu} stay in eu: only the kinds
        // without a locality or with us break.
        assert!(proof
            .violations
            .iter()
            .filter(|v| v.category == "chat_content")
            .all(|v| v.kind.locality.as_deref() != Some("eu")));
    }

    /// What the data alone could break, the parser refuses: the proof is
    /// about the code.
    #[test]
    fn the_parser_refuses_a_set_outside_the_regions() {
        for allowed in ["[]", "[\"mars\"]"] {
            let broken = POLICY.replace(
                "[categories.chat_content]\n        allowed = [\"eu\"]",
                &format!("[categories.chat_content]\n        allowed = {allowed}"),
            );
            assert_ne!(broken, POLICY);
            assert!(Policy::from_toml(&broken, "p.toml").is_err(), "{allowed}");
        }
    }

    #[test]
    fn a_strict_read_outside_the_locality_is_found() {
        let p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let kind = TenantKind {
            locality: Some("eu".into()),
            strict: true,
            features: vec![],
            migrating_from: None,
        };
        let t = kind.tenant(&p).unwrap();
        let chat = p.category_by_id("chat_content").unwrap();
        let mut reads = RegionOrder::one(p.region_by_id("eu").unwrap());
        let mut out = Vec::new();
        check_reads(&p, &kind, &t, Some((chat, "chat/x")), &reads, &mut out);
        assert!(out.is_empty());
        reads.push(p.region_by_id("us").unwrap());
        check_reads(&p, &kind, &t, Some((chat, "chat/x")), &reads, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "tenant kind `locality=eu strict` × category chat_content: a read of \"chat/x\" looks in us, outside the strict tenant's locality"
        );
    }

    #[test]
    fn a_wrong_denial_is_found() {
        let p = Policy::from_toml(POLICY, "p.toml").unwrap();
        let kind = TenantKind {
            locality: Some("eu".into()),
            strict: false,
            features: vec![],
            migrating_from: None,
        };
        let t = kind.tenant(&p).unwrap();
        let chat = p.category_by_id("chat_content").unwrap();
        let mut out = Vec::new();
        let mut check = Check {
            policy: &p,
            kind: &kind,
            category: chat,
            what: "explicit label".into(),
            out: &mut out,
        };
        check.write(
            &t,
            &Decision::Deny(DenyReason::OutOfLocality { category: chat }),
        );
        check.write(&t, &Decision::Deny(DenyReason::Unclassified));
        assert_eq!(out.len(), 2);
        assert!(
            out[0].message.contains("denied as out_of_locality"),
            "{}",
            out[0]
        );
    }
}
