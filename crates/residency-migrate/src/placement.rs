//! Where each of the tenant's objects belongs once its locality is the
//! destination: decided by the same rules the sidecar applies to writes.

use residency_policy::{Decision, OnConflict, RegionId, Ruleset, TenantId};

/// User metadata key of an explicit category (`x-amz-meta-residency-category`).
pub(crate) const META_CATEGORY: &str = "residency-category";

/// What to do with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its placement is now the destination: copy it there.
    Move { category: String },
    /// Policy keeps it where it is (or in another region than the
    /// destination), e.g. call recordings are US-only.
    Stay { category: String, region: String },
    /// Policy no longer allows it anywhere (e.g. a feature was disabled):
    /// left alone and reported.
    Denied { reason: String },
}

/// Decides each object with the tenant's locality set to the destination.
#[derive(Debug)]
pub(crate) struct Placer {
    /// The rules as they are after the switch.
    rules: Ruleset,
    tenant: TenantId,
    to: RegionId,
}

impl Placer {
    pub(crate) fn new(rules: Ruleset, tenant: TenantId, to: RegionId) -> Self {
        Placer { rules, tenant, to }
    }

    pub(crate) fn rules(&self) -> &Ruleset {
        &self.rules
    }

    /// The verdict from the key alone, when no stored metadata could change
    /// it: a key rule classifies the key and an explicit category could not
    /// override it (`on_conflict` is not `explicit`).
    pub(crate) fn by_key(&self, key: &str) -> Option<Verdict> {
        let policy = self.rules.policy();
        if policy.on_conflict() == OnConflict::Explicit {
            return None;
        }
        let class = policy.classify_key(key)?;
        Some(self.verdict(self.rules.place(self.tenant, class)))
    }

    /// The verdict from the key and the object's stored metadata (as the
    /// original write carried them).
    pub(crate) fn with_meta(
        &self,
        key: &str,
        content_type: Option<&str>,
        explicit_category: Option<&str>,
    ) -> Verdict {
        self.verdict(
            self.rules
                .decide_for(self.tenant, key, explicit_category, content_type),
        )
    }

    fn verdict(&self, d: Decision) -> Verdict {
        let policy = self.rules.policy();
        match d {
            Decision::Allow(p) => {
                let category = policy.category(p.category).id().to_owned();
                if p.region == self.to {
                    Verdict::Move { category }
                } else {
                    Verdict::Stay {
                        category,
                        region: policy.region(p.region).id().to_owned(),
                    }
                }
            }
            Decision::Deny(r) => Verdict::Denied {
                reason: r.as_str().to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placer(tenants: &str) -> Placer {
        let policy = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/hosting-policy.toml"
        ))
        .unwrap();
        let rules = Ruleset::from_toml(&policy, "p", tenants, "t").unwrap();
        let t = rules.tenants().get("initech").unwrap();
        let eu = rules.policy().region_by_id("eu").unwrap();
        Placer::new(rules, t, eu)
    }

    #[test]
    fn us_only_categories_stay() {
        let p =
            placer("[[tenants]]\nid = \"initech\"\nlocality = \"eu\"\nmigrating_from = \"us\"\n");
        assert_eq!(
            p.by_key("tickets/1.json"),
            Some(Verdict::Move {
                category: "ticket_data".into()
            })
        );
        assert_eq!(
            p.by_key("talk/recordings/1.mp3"),
            Some(Verdict::Stay {
                category: "call_recordings".into(),
                region: "us".into()
            })
        );
        // No key rule: the stored content type decides.
        assert_eq!(p.by_key("misc/x.bin"), None);
        assert!(matches!(
            p.with_meta("misc/x.vtt", Some("text/vtt"), None),
            Verdict::Move { .. }
        ));
        // Audio alone is no call recording (issue 18, item 7).
        assert!(matches!(
            p.with_meta("misc/x.wav", Some("audio/wav"), None),
            Verdict::Denied { .. }
        ));
        assert!(matches!(
            p.with_meta("misc/x.bin", None, Some("ticket_data")),
            Verdict::Move { .. }
        ));
        assert!(matches!(
            p.with_meta("misc/x.bin", None, None),
            Verdict::Denied { .. }
        ));
    }
}
