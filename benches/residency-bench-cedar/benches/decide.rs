//! Classify + decide: residency-policy against the same decisions expressed in
//! `cedar-policy`, in the same run, over the same pre-generated request mix.
//!
//! Run: `cargo bench -p residency-bench-cedar --bench decide`.
//!
//! The policy is `config/hosting-policy.toml` (21 key rules) with three more
//! content-type rules appended (4 in all); 1,000 generated tenants (eu, us or no
//! locality; some strict; random optional features).
//!
//! What each side does, per request:
//!
//! - **residency, classify+decide**: `Ruleset::decide`: tenant lookup by id,
//!   classification (explicit category > `backups/<category>/` > glob key
//!   rules > content-type rules), feature gate, placement.
//! - **cedar, classify+decide**: the same tenant lookup in a `HashMap` the team
//!   keeps next to its cedar entities (it needs the tenant's home region to
//!   order the candidate regions), the *same* classifier
//!   (`Policy::classify`, globset underneath, so the classifier cost is
//!   identical), then one `Authorizer::is_authorized` call per candidate
//!   region, in order (home region, default region, the others), until one
//!   is allowed.
//! - **decide, pre-classified**: both sides again, with the classification
//!   computed up front; what remains is tenant lookup + placement
//!   (residency) or tenant lookup + the cedar calls (cedar).
//!
//! Before measuring, the setup asserts that both paths agree on every request
//! of the mix (allow/deny, region, out-of-locality, deny reason): a mismatch
//! aborts the bench.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression,
};
use criterion::{Criterion, Throughput};
use residency_policy::{Classification, Decision, DenyReason, PlacementRequest, Ruleset};

/// The shipped policy, plus three content-type rules (4 in all).
fn policy_source() -> String {
    let mut p = include_str!("../../../config/hosting-policy.toml").to_string();
    p.push_str(
        r#"
[[content_type_rules]]
pattern = "application/vnd.ms-*"
category = "attachments"

[[content_type_rules]]
pattern = "image/*"
category = "attachments"

[[content_type_rules]]
pattern = "text/html"
category = "guide_content"
"#,
    );
    p
}

/// The hosting decision in Cedar, as a team would write it: a tenant may write
/// a category into a region when the category may be hosted there (or it
/// follows the locality and the region is the tenant's home), unless the
/// category needs a feature the tenant has not enabled, or the tenant is
/// strict and the region is not its locality.
const CEDAR_POLICIES: &str = r#"
@reason("category_region")
permit (principal is Tenant, action == Action::"write", resource is Region)
when { context.category.allowed.contains(resource) };

@reason("follows_locality")
permit (principal is Tenant, action == Action::"write", resource is Region)
when { context.category.follows_locality && resource == principal.home };

@reason("feature_disabled")
forbid (principal is Tenant, action == Action::"write", resource is Region)
when { !principal.features.containsAll(context.category.gates) };

@reason("out_of_locality")
forbid (principal is Tenant, action == Action::"write", resource is Region)
when { principal.strict && resource != principal.home };
"#;

/// A deterministic generator (xorshift64*), so every run measures the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TENANTS: usize = 1_000;
const MIX: usize = 4_096;

/// 1,000 tenants: 40% eu, 35% us, 25% without the locality add-on; a fifth of
/// those with a locality strict; each optional feature on for ~30%.
fn tenants_source(rng: &mut Rng) -> String {
    let mut s = String::new();
    for i in 0..TENANTS {
        s.push_str(&format!("[[tenants]]\nid = \"tenant-{i:04}\"\n"));
        let locality = match rng.below(100) {
            0..=39 => Some("eu"),
            40..=74 => Some("us"),
            _ => None,
        };
        if let Some(l) = locality {
            s.push_str(&format!("locality = \"{l}\"\n"));
            if rng.chance(20) {
                s.push_str("strict = true\n");
            }
        }
        let features: Vec<String> = ["insights", "nps", "spam_filter"]
            .iter()
            .filter(|_| rng.chance(30))
            .map(|f| format!("\"{f}\""))
            .collect();
        s.push_str(&format!("features = [{}]\n", features.join(", ")));
    }
    s
}

/// One pre-generated request.
struct Req {
    tenant: String,
    key: String,
    category: Option<&'static str>,
    content_type: Option<&'static str>,
}

/// A realistic write mix: mostly keys a key rule places (tickets and users
/// heaviest), backups of one category, keys no rule matches that fall to a
/// content type (or to nothing: denied), explicit categories (agreeing,
/// contradicting, unknown), and ~2% unknown tenants.
fn request_mix(rng: &mut Rng) -> Vec<Req> {
    type Shape = (
        u64,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    // (weight, key prefix, key suffix, explicit category, content type)
    const SHAPES: &[Shape] = &[
        (
            20,
            "tickets/",
            "/comment.json",
            None,
            Some("application/json"),
        ),
        (8, "users/", ".json", None, None),
        (
            8,
            "attachments/",
            "/invoice.pdf",
            None,
            Some("application/pdf"),
        ),
        (2, "guide/attachments/", "/manual.pdf", None, None),
        (2, "guide/images/", "/logo.png", None, Some("image/png")),
        (4, "guide/articles/", ".html", None, Some("text/html")),
        (2, "insights/2026/", ".csv", None, None),
        (2, "nps/list-", ".csv", None, None),
        (1, "screencasts/", ".webm", None, None),
        (1, "custom-resources/", ".json", None, None),
        (1, "spam/model-", ".bin", None, None),
        (6, "chat/", ".json", None, None),
        (3, "talk/recordings/", ".wav", None, Some("audio/wav")),
        (1, "talk/voicemails/", ".wav", None, None),
        (2, "talk/transcriptions/", ".txt", None, None),
        (2, "sms/", ".json", None, None),
        (2, "explore/app/", ".json", None, None),
        (1, "explore/connectors/", ".json", None, None),
        (3, "messages/thread-", ".json", None, None),
        (2, "backups/2026-11-", ".tar", None, None),
        (3, "logs/app-", ".log", None, None),
        (1, "backups/chat_content/", ".tar", None, None),
        (1, "backups/call_recordings/", ".tar", None, None),
        // No key rule: the content type decides, or nothing does.
        (3, "uploads/", ".mp3", None, Some("audio/mpeg")),
        (1, "uploads/", ".vtt", None, Some("text/vtt; charset=utf-8")),
        (
            2,
            "uploads/",
            ".xlsx",
            None,
            Some("application/vnd.ms-excel"),
        ),
        (2, "uploads/", ".jpg", None, Some("image/jpeg")),
        (1, "pages/", ".html", None, Some("text/html")),
        (1, "blobs/", "", None, Some("application/octet-stream")),
        (1, "blobs/", "", None, None),
        // Explicit categories.
        (2, "misc/", ".json", Some("user_data"), None),
        (1, "chat/", ".json", Some("chat_content"), None),
        (1, "chat/", ".json", Some("ticket_data"), None),
        (1, "misc/", ".bin", Some("nope"), None),
        (1, "misc/", ".csv", Some("nps_lists"), None),
    ];
    let total: u64 = SHAPES.iter().map(|s| s.0).sum();
    (0..MIX)
        .map(|_| {
            let mut pick = rng.below(total);
            let &(_, prefix, suffix, category, content_type) = SHAPES
                .iter()
                .find(|s| {
                    if pick < s.0 {
                        true
                    } else {
                        pick -= s.0;
                        false
                    }
                })
                .expect("weights cover the range");
            let tenant = if rng.chance(2) {
                format!("stranger-{}", rng.below(100))
            } else {
                format!("tenant-{:04}", rng.below(TENANTS as u64))
            };
            Req {
                tenant,
                key: format!("{prefix}{}{suffix}", rng.below(1_000_000)),
                category,
                content_type,
            }
        })
        .collect()
}

/// What the team keeps next to its cedar entities for each tenant.
struct CedarTenant {
    uid: EntityUid,
    locality: Option<usize>,
    /// Candidate regions in the order they are asked: home, default, others.
    candidates: Vec<usize>,
}

/// The cedar side: policies, entities and the uids it builds requests from.
struct CedarModel {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    action: EntityUid,
    tenants: HashMap<String, CedarTenant>,
    /// By `CategoryId::index()`.
    categories: Vec<EntityUid>,
    /// By `RegionId::index()`.
    regions: Vec<EntityUid>,
    feature_forbid: PolicyId,
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(ty).expect("type name"),
        EntityId::new(id),
    )
}

impl CedarModel {
    /// Builds the Cedar entities from the same policy and tenants files: the
    /// categories' allowed regions and feature gates (with `follows` resolved),
    /// each tenant's home region, strictness and features.
    fn new(rules: &Ruleset) -> CedarModel {
        let p = rules.policy();
        let policies = PolicySet::from_str(CEDAR_POLICIES).expect("cedar policies parse");
        let feature_forbid = policies
            .policies()
            .find(|pol| pol.annotation("reason") == Some("feature_disabled"))
            .expect("feature policy")
            .id()
            .clone();
        let regions: Vec<EntityUid> = p.regions().map(|(_, r)| uid("Region", r.id())).collect();
        let mut entities: Vec<Entity> = regions
            .iter()
            .map(|r| Entity::new_no_attrs(r.clone(), HashSet::new()))
            .collect();
        let mut categories = Vec::new();
        for (cid, c) in p.categories() {
            let cu = uid("Category", c.id());
            let allowed = p.allowed_regions(cid);
            let attrs =
                HashMap::from([
                    (
                        "allowed".to_string(),
                        RestrictedExpression::new_set(
                            allowed.into_iter().flat_map(|s| s.iter()).map(|r| {
                                RestrictedExpression::new_entity_uid(regions[r.index()].clone())
                            }),
                        ),
                    ),
                    (
                        "follows_locality".to_string(),
                        RestrictedExpression::new_bool(allowed.is_none()),
                    ),
                    (
                        "gates".to_string(),
                        RestrictedExpression::new_set(p.feature_gates(cid).iter().map(|f| {
                            RestrictedExpression::new_string(p.feature_name(f).to_string())
                        })),
                    ),
                ]);
            entities.push(Entity::new(cu.clone(), attrs, HashSet::new()).expect("category"));
            categories.push(cu);
        }
        let default = p.default_region().index();
        let mut tenants = HashMap::new();
        for (_, t) in rules.tenants().iter() {
            let tu = uid("Tenant", t.id());
            let locality = t.locality().map(|r| r.index());
            let home = locality.unwrap_or(default);
            let mut candidates = vec![home];
            for r in std::iter::once(default).chain(0..regions.len()) {
                if !candidates.contains(&r) {
                    candidates.push(r);
                }
            }
            let attrs =
                HashMap::from([
                    (
                        "home".to_string(),
                        RestrictedExpression::new_entity_uid(regions[home].clone()),
                    ),
                    (
                        "strict".to_string(),
                        RestrictedExpression::new_bool(t.is_strict()),
                    ),
                    (
                        "features".to_string(),
                        RestrictedExpression::new_set(t.features().iter().map(|f| {
                            RestrictedExpression::new_string(p.feature_name(f).to_string())
                        })),
                    ),
                ]);
            entities.push(Entity::new(tu.clone(), attrs, HashSet::new()).expect("tenant"));
            tenants.insert(
                t.id().to_string(),
                CedarTenant {
                    uid: tu,
                    locality,
                    candidates,
                },
            );
        }
        CedarModel {
            authorizer: Authorizer::new(),
            policies,
            entities: Entities::from_entities(entities, None).expect("entities"),
            action: uid("Action", "write"),
            tenants,
            categories,
            regions,
            feature_forbid,
        }
    }

    /// Tenant lookup, then the cedar calls for an already classified payload.
    fn decide_classified(
        &self,
        tenant: &str,
        class: Result<Classification, DenyReason>,
    ) -> Outcome {
        let Some(t) = self.tenants.get(tenant) else {
            return Outcome::Deny("unknown_tenant");
        };
        let class = match class {
            Ok(c) => c,
            Err(r) => return Outcome::Deny(r.as_str()),
        };
        let category = &self.categories[class.category.index()];
        let mut feature_denied = false;
        for &region in &t.candidates {
            let context = Context::from_pairs([(
                "category".to_string(),
                RestrictedExpression::new_entity_uid(category.clone()),
            )])
            .expect("context");
            let request = Request::new(
                t.uid.clone(),
                self.action.clone(),
                self.regions[region].clone(),
                context,
                None,
            )
            .expect("request");
            let response = self
                .authorizer
                .is_authorized(&request, &self.policies, &self.entities);
            if response.decision() == cedar_policy::Decision::Allow {
                return Outcome::Allow {
                    region,
                    out_of_locality: t.locality.is_some_and(|l| l != region),
                };
            }
            feature_denied |= response
                .diagnostics()
                .reason()
                .any(|id| *id == self.feature_forbid);
        }
        Outcome::Deny(if feature_denied {
            "feature_disabled"
        } else {
            "out_of_locality"
        })
    }
}

/// A decision reduced to what both sides can state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow {
        region: usize,
        out_of_locality: bool,
    },
    Deny(&'static str),
}

impl From<Decision> for Outcome {
    fn from(d: Decision) -> Outcome {
        match d {
            Decision::Allow(p) => Outcome::Allow {
                region: p.region.index(),
                out_of_locality: p.out_of_locality,
            },
            Decision::Deny(r) => Outcome::Deny(r.as_str()),
        }
    }
}

struct Fixture {
    rules: Ruleset,
    cedar: CedarModel,
    mix: Vec<Req>,
    /// The mix's classifications, for the pre-classified variants.
    classified: Vec<Result<Classification, DenyReason>>,
}

impl Fixture {
    fn new() -> Fixture {
        let mut rng = Rng(0x5eed_1e55_ca11_ab1e);
        let tenants = tenants_source(&mut rng);
        let rules = Ruleset::from_toml(&policy_source(), "policy", &tenants, "tenants")
            .expect("bench policy and tenants are valid");
        assert!(rules.policy().key_rules().len() >= 20);
        assert_eq!(rules.policy().content_type_rules().len(), 4);
        assert_eq!(rules.tenants().len(), TENANTS);
        let cedar = CedarModel::new(&rules);
        let mix = request_mix(&mut rng);
        let classified = mix
            .iter()
            .map(|r| rules.policy().classify(&r.key, r.category, r.content_type))
            .collect();
        Fixture {
            rules,
            cedar,
            mix,
            classified,
        }
    }

    fn residency(&self, r: &Req) -> Decision {
        self.rules.decide(&PlacementRequest {
            tenant: &r.tenant,
            key: &r.key,
            category: r.category,
            content_type: r.content_type,
        })
    }

    fn residency_classified(&self, r: &Req, class: Result<Classification, DenyReason>) -> Decision {
        let Some(t) = self.rules.tenants().get(&r.tenant) else {
            return Decision::Deny(DenyReason::UnknownTenant);
        };
        match class {
            Ok(c) => self.rules.place(t, c),
            Err(reason) => Decision::Deny(reason),
        }
    }

    fn cedar(&self, r: &Req) -> Outcome {
        let class = self
            .rules
            .policy()
            .classify(&r.key, r.category, r.content_type);
        self.cedar.decide_classified(&r.tenant, class)
    }

    /// Both paths must agree on every request; prints the mix's shape.
    fn assert_agreement(&self) {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut out_of_locality = 0;
        let mut cedar_calls = 0;
        for (r, &class) in self.mix.iter().zip(&self.classified) {
            let res = Outcome::from(self.residency(r));
            let pre = Outcome::from(self.residency_classified(r, class));
            let ced = self.cedar(r);
            let ced_pre = self.cedar.decide_classified(&r.tenant, class);
            assert!(
                res == ced && res == pre && res == ced_pre,
                "residency and cedar disagree on tenant {} key {} category {:?} content type {:?}: \
                 residency {res:?}, pre-classified {pre:?}, cedar {ced:?}, cedar pre-classified {ced_pre:?}",
                r.tenant,
                r.key,
                r.category,
                r.content_type,
            );
            let label = match res {
                Outcome::Allow {
                    out_of_locality: ool,
                    ..
                } => {
                    out_of_locality += usize::from(ool);
                    "allow"
                }
                Outcome::Deny(reason) => reason,
            };
            *counts.entry(label).or_default() += 1;
            // `is_authorized` calls the cedar path made: none before a
            // tenant and a category are known, then one per candidate asked.
            if let (Some(t), Ok(_)) = (self.cedar.tenants.get(&r.tenant), class) {
                cedar_calls += match ced {
                    Outcome::Allow { region, .. } => {
                        1 + t.candidates.iter().position(|&c| c == region).unwrap()
                    }
                    Outcome::Deny(_) => t.candidates.len(),
                };
            }
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        eprintln!(
            "mix: {} requests, {} tenants; residency and cedar agree on every one; {counts:?}, \
             {out_of_locality} allowed out of locality; {:.2} cedar is_authorized calls per request",
            self.mix.len(),
            self.rules.tenants().len(),
            cedar_calls as f64 / self.mix.len() as f64,
        );
    }
}

fn bench(c: &mut Criterion) {
    let f = Fixture::new();
    f.assert_agreement();
    let n = f.mix.len();

    // One decision per iteration, cycling through the mix: the reported time
    // is per decision.
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("residency/classify+decide", |b| {
        b.iter(|| {
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(f.residency(black_box(&f.mix[i])))
        })
    });
    g.bench_function("cedar/classify+decide", |b| {
        b.iter(|| {
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(f.cedar(black_box(&f.mix[i])))
        })
    });
    g.bench_function("residency/decide (pre-classified)", |b| {
        b.iter(|| {
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(f.residency_classified(black_box(&f.mix[i]), f.classified[i]))
        })
    });
    g.bench_function("cedar/decide (pre-classified)", |b| {
        b.iter(|| {
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(
                f.cedar
                    .decide_classified(black_box(&f.mix[i].tenant), f.classified[i]),
            )
        })
    });
    g.finish();
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn`
// has no docs for the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
